// `calico-flows panic … --json` as a script reads it: every failure prints one JSON object on stdout, the CLI's own
// (a usage error, a kubeconfig it cannot read, a connection refused, another cluster) as the panic function's.
// The real binary, against the local HTTPS Kubernetes API and the handler behind a SigV4-verifying endpoint, and a
// plain HTTP server standing for what may answer in API Gateway's place.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type PanicHarness,
  type SigV4Gateway,
  startPanicHarness,
  startSigV4Gateway,
} from "../panic/harness.ts";
import { runCli } from "./run.ts";

const principals = new Map([
  ["AKIDTESTTESTTEST", { secretAccessKey: "test-secret", arn: "arn:aws:iam::123456789012:user/cli-tester" }],
]);

const scheduler = mockClient(SchedulerClient);
let h: PanicHarness;
let gateway: SigV4Gateway;
/** Answers every request with a status and a body that is no JSON object, as a proxy might. */
let odd: Server;
let oddUrl: string;
let dir: string;

beforeAll(async () => {
  h = await startPanicHarness();
  const runtime = h.runtime();
  gateway = await startSigV4Gateway((event) => h.invoke(event, runtime), principals);
  dir = mkdtempSync(join(tmpdir(), "cf-panic-json-"));
  odd = createServer((request, response) => {
    if (request.method === "DELETE") response.writeHead(504).end();
    else response.writeHead(403, { "content-type": "text/plain" }).end("Forbidden by the corporate proxy");
  });
  await new Promise<void>((resolve) => odd.listen(0, "127.0.0.1", resolve));
  oddUrl = `http://127.0.0.1:${(odd.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  scheduler.restore();
  await gateway?.close();
  await h?.close();
  await new Promise((resolve) => odd?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs `panic …` and reads its stdout as the one JSON object it must be. */
async function failing(args: string[]): Promise<{ code: number | null; json: unknown; stderr: string }> {
  const run = await runCli(["panic", ...args]);
  const lines = run.stdout.split("\n").filter((l) => l !== "");
  expect(lines, run.stderr).toHaveLength(1);
  return { code: run.code, json: JSON.parse(lines[0] as string), stderr: run.stderr };
}

describe("panic --json: the CLI's own failures", () => {
  // Defect: with --json these printed nothing on stdout (the message on stderr only), while the API's errors printed
  // `{"error": …}`: a script reading stdout found no JSON at all.
  it.each([
    [
      "neither --api nor --direct",
      ["status", "--json"],
      "choose one of --api URL (through the deployed API) or --direct (straight to the cluster with a kubeconfig)",
    ],
    [
      "--kubeconfig with --api",
      [
        "status",
        "--json",
        "--api",
        "https://abc123.execute-api.eu-west-1.amazonaws.com/v1",
        "--kubeconfig",
        "k",
      ],
      "--kubeconfig and --context go with --direct, not --api",
    ],
    [
      "--ttl with --direct and no schedule group",
      ["apply", "--json", "--direct", "--reason", "INC-1", "--ttl", "5"],
      "--ttl with --direct needs --schedule-group, --scheduler-role-arn and --expiry-function-arn (the deployed " +
        "stack's values); without them use --ttl 0 and revert by hand",
    ],
  ])("prints a usage error (%s) as JSON, exit 2", async (_, args, message) => {
    const { code, json, stderr } = await failing(args);
    expect({ code, json }).toEqual({ code: 2, json: { error: "usage", message } });
    expect(stderr).toBe(`error: ${message}\n`);
  });

  it("prints --direct into the stack's table without its --cluster as a usage error", async () => {
    const { code, json } = await failing(["status", "--json", "--direct", "--table", "calico-flows"]);
    expect(code).toBe(2);
    expect(json).toMatchObject({ error: "usage" });
    expect((json as { message: string }).message).toMatch(/^--table reaches a deployed stack/);
  });

  it("prints a kubeconfig it cannot read as JSON, exit 1", async () => {
    const missing = join(dir, "no-such-kubeconfig");
    const { code, json } = await failing([
      "status",
      "--json",
      "--direct",
      "--kubeconfig",
      missing,
      "--store",
      join(dir, "store"),
    ]);
    expect({ code, json }).toEqual({
      code: 1,
      json: {
        error: "cli",
        message: `cannot read kubeconfig ${missing}: ENOENT: no such file or directory, open '${missing}'`,
      },
    });
  });

  it("prints a kubeconfig for another EKS cluster than --cluster as JSON, exit 1", async () => {
    const kubeconfig = join(dir, "other-cluster.yaml");
    const arn = "arn:aws:eks:eu-west-1:123456789012:cluster/prod-us";
    writeFileSync(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{ name: "${arn}", cluster: { server: "https://127.0.0.1:1" } }]`,
        'users: [{ name: "u", user: { token: "t" } }]',
        `contexts: [{ name: "prod-us", context: { cluster: "${arn}", user: "u" } }]`,
        "current-context: prod-us",
        "",
      ].join("\n"),
    );
    const args = ["revert", "--json", "--direct", "--kubeconfig", kubeconfig, "--cluster", "prod-eu"];
    const { code, json } = await failing([...args, "--store", join(dir, "store")]);
    expect({ code, json }).toEqual({
      code: 1,
      json: {
        error: "cli",
        message:
          'kubeconfig context "prod-us" reaches EKS cluster "prod-us", not --cluster "prod-eu": choose "prod-eu"\'s ' +
          "context (--context), or --cluster prod-us",
      },
    });
  });

  it.each(["apply", "revert"])(
    "prints a connection refused to the API (%s) as JSON, exit 1",
    async (action) => {
      const port = await closedPort();
      const extra = action === "apply" ? ["--reason", "INC-1"] : [];
      const { code, json } = await failing([
        action,
        "--json",
        "--api",
        `http://127.0.0.1:${port}/v1`,
        ...extra,
      ]);
      expect({ code, json }).toEqual({
        code: 1,
        json: { error: "cli", message: `fetch failed: connect ECONNREFUSED 127.0.0.1:${port}` },
      });
    },
  );

  it("prints an API that serves another cluster than --cluster as JSON, exit 1, before anything changes", async () => {
    const { code, json } = await failing([
      "apply",
      "--json",
      "--api",
      gateway.url,
      "--reason",
      "INC-1",
      "--cluster",
      "prod-us",
    ]);
    expect({ code, json }).toEqual({
      code: 1,
      json: {
        error: "cli",
        message:
          `the API at ${gateway.url} answers for cluster "prod-eu", not "prod-us": give the API of "prod-us"'s ` +
          "stack, or --cluster prod-eu",
      },
    });
    expect(h.kube.store.get("globalnetworkpolicies.projectcalico.org", "allow-all")).toBeUndefined();
  });
});

describe("panic --json: answers that are no JSON object", () => {
  it("puts a text answer in an object of its own, exit 1", async () => {
    const { code, json } = await failing(["apply", "--json", "--api", oddUrl, "--reason", "INC-1"]);
    expect({ code, json }).toEqual({
      code: 1,
      json: { error: "http", status: 403, message: "Forbidden by the corporate proxy" },
    });
  });

  it("puts an empty 504 to a revert in an object of its own, exit 4 (it may have been carried out)", async () => {
    const { code, json, stderr } = await failing(["revert", "--json", "--api", oddUrl]);
    expect({ code, json }).toEqual({
      code: 4,
      json: { error: "http", status: 504, message: "HTTP 504 without a JSON body" },
    });
    expect(stderr).toMatch(
      /^error \(HTTP 504\): HTTP 504 without a JSON body\n!! the revert may have been carried out/,
    );
  });
});
