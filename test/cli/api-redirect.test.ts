// The CLI's signed API calls never follow a redirect: API Gateway does not send one, and following it would resend
// the request's session token (x-amz-security-token, which fetch does not drop as it drops Authorization) to
// whatever origin the answer names, over plain HTTP if it says so.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli } from "./run.ts";

let redirecting: Server;
let elsewhere: Server;
const reached: string[] = [];

const listen = (server: Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );

beforeAll(async () => {
  elsewhere = createServer((request, response) => {
    reached.push(`${request.method} ${request.url} token=${request.headers["x-amz-security-token"] ?? "-"}`);
    response.writeHead(200, { "content-type": "application/json" }).end('{"items":[],"cursor":null}');
  });
  const target = await listen(elsewhere);
  redirecting = createServer((request, response) => {
    response.writeHead(307, { location: `${target}${request.url}` }).end();
  });
  await listen(redirecting);
});
afterAll(async () => {
  await Promise.all([redirecting, elsewhere].map((s) => new Promise((resolve) => s.close(resolve))));
});

it("refuses an API answer that redirects, and sends nothing where it points", async () => {
  const api = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}/prod`;
  const env = { AWS_SESSION_TOKEN: "session-token-of-the-operator" };
  const flows = await runCli(["flows", "--api", api, "--region", "eu-west-1", "--json"], { env });
  const panic = await runCli(["panic", "apply", "--reason", "INC-1", "--api", api, "--region", "eu-west-1"], {
    env,
  });
  expect(reached).toEqual([]);
  expect(flows.code, flows.stderr).toBe(1);
  expect(flows.stderr).toMatch(/redirect/);
  // Refused before anything reached the function: not an unknown outcome.
  expect(panic.code, panic.stderr).toBe(1);
  expect(panic.stderr).toMatch(/redirect/);
});
