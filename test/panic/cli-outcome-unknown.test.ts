// `calico-flows panic --api` when API Gateway answers for the function (its 504 after 29 s, a 502 when the function
// failed), or the function answers that its write was sent and not confirmed (`outcome: "unknown"`): an apply or a
// revert may have been carried out, which the CLI says, with an exit status of its own, and sends the caller to the
// status. Any other answer of the function's own is a failure as before.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyResult } from "aws-lambda";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli } from "../cli/run.ts";
import { type SigV4Gateway, startSigV4Gateway } from "./harness.ts";

// The suite's fake credentials (vitest.config.ts), which the CLI's default credential chain picks up.
const principals = new Map([
  ["AKIDTESTTESTTEST", { secretAccessKey: "test-secret", arn: "arn:aws:iam::123456789012:user/cli-tester" }],
]);
let gateway: SigV4Gateway;

/** API Gateway's 504; the function's own 502s for an apply whose reason asks for them. */
const TIMED_OUT = { statusCode: 504, body: JSON.stringify({ message: "Endpoint request timed out" }) };
const FUNCTION_502 = {
  statusCode: 502,
  body: JSON.stringify({
    error: "kube-unavailable",
    message: "reading globalnetworkpolicies/allow-all: timed out",
  }),
};
const WRITE_SENT = {
  statusCode: 502,
  body: JSON.stringify({
    error: "kube-unavailable",
    message:
      "creating globalnetworkpolicies/allow-all: no answer: the write was sent, and the API server may …",
    outcome: "unknown",
  }),
};

beforeAll(async () => {
  gateway = await startSigV4Gateway(
    async (event): Promise<APIGatewayProxyResult> =>
      event.body?.includes("own 502") ? FUNCTION_502 : event.body?.includes("sent") ? WRITE_SENT : TIMED_OUT,
    principals,
  );
});
afterAll(async () => gateway?.close());

const panic = (...args: string[]) => runCli(["panic", ...args, "--api", gateway.url]);

it("says an apply or a revert that API Gateway timed out may have been carried out, and exits 4", async () => {
  const [applied, reverted, failed, sent] = await Promise.all([
    panic("apply", "--reason", "INC-42"),
    panic("revert", "--json"),
    panic("apply", "--reason", "own 502"),
    panic("apply", "--reason", "write sent", "--json"),
  ]);
  expect(applied.code).toBe(4);
  expect(applied.stderr).toBe(
    "error (HTTP 504): Endpoint request timed out\n" +
      "!! the apply may have been carried out: API Gateway answered for the panic function, which may still have " +
      "applied the policy. Run `calico-flows panic status` before trying again\n",
  );
  expect(reverted.code).toBe(4);
  expect(reverted.stdout).toBe('{"message":"Endpoint request timed out"}\n');
  expect(reverted.stderr).toMatch(/^!! the revert may have been carried out: .* reverted the policy\. Run/m);
  // The function's own 502 says what it did: nothing, unless its write was sent.
  expect(sent.code).toBe(4);
  expect(sent.stdout).toBe(`${WRITE_SENT.body}\n`);
  expect(sent.stderr).toBe(
    `error (HTTP 502 kube-unavailable): ${JSON.parse(WRITE_SENT.body).message}\n` +
      "!! the apply may have been carried out: its change was sent to the Kubernetes API, which did not confirm " +
      "it. Run `calico-flows panic status` before trying again\n",
  );
  expect(failed.code).toBe(1);
  expect(failed.stderr).toBe(
    "error (HTTP 502 kube-unavailable): reading globalnetworkpolicies/allow-all: timed out\n",
  );
});

it("says an apply or a revert whose answer never came may have been carried out, and exits 4", async () => {
  // The request reaches the API and the connection drops before any answer (a proxy, a network change, a
  // reset): the function may have acted. A connection never made sent nothing: a plain failure.
  const bodies: string[] = [];
  const dropping = createServer((request, response) => {
    let text = "";
    request.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    request.on("end", () => {
      bodies.push(`${request.method} ${text}`);
      response.socket?.destroy();
    });
  });
  await new Promise<void>((resolve) => dropping.listen(0, "127.0.0.1", resolve));
  const api = `http://127.0.0.1:${(dropping.address() as AddressInfo).port}/prod`;
  try {
    const [applied, reverted, status] = await Promise.all([
      runCli(["panic", "apply", "--reason", "INC-43", "--api", api, "--region", "eu-west-1"]),
      runCli(["panic", "revert", "--api", api, "--region", "eu-west-1"]),
      runCli(["panic", "status", "--api", api, "--region", "eu-west-1"]),
    ]);
    expect(bodies.filter((b) => b.startsWith("POST")).map((b) => JSON.parse(b.slice(5)).reason)).toEqual([
      "INC-43",
    ]);
    expect(applied.code, applied.stderr).toBe(4);
    expect(applied.stderr).toMatch(
      /^!! the apply may have been carried out: the request was sent and no answer came\b.*Run `calico-flows panic status` before trying again$/m,
    );
    expect(reverted.code, reverted.stderr).toBe(4);
    expect(reverted.stderr).toMatch(/^!! the revert may have been carried out: the request was sent/m);
    // A status changes nothing: a failure to read, nothing more.
    expect(status.code, status.stderr).toBe(1);
    expect(status.stderr).not.toMatch(/may have been carried out/);
  } finally {
    await new Promise((resolve) => dropping.close(resolve));
  }
  // Nothing listens: the request was never sent.
  const refused = await runCli([
    "panic",
    "apply",
    "--reason",
    "INC-44",
    "--api",
    api,
    "--region",
    "eu-west-1",
  ]);
  expect(refused.code, refused.stderr).toBe(1);
  expect(refused.stderr).not.toMatch(/may have been carried out/);
});
