// callApi (cli/api-client.ts) against a loopback stand-in for API Gateway that answers each request as a test
// scripts it: which answers are sent again, and which never are.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, type ApiRequest, callApi } from "../../cli/api-client.ts";

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

let server: Server;
let api: string;
/** What the stand-in answers to the request numbered n (1-based); a 200 `{ ok: true }` when it returns undefined. */
let script: (n: number) => Answer | undefined;
/** The method of each request received, and when (ms since the epoch). */
const received: { method: string; at: number }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push({ method: req.method ?? "", at: Date.now() });
    const answer = script(received.length) ?? { status: 200, body: { ok: true } };
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    res.end(JSON.stringify(answer.body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(() => {
  server?.close();
});

beforeEach(() => {
  received.length = 0;
  script = () => undefined;
  // No jitter: a retry waits only what the API asked for, so that the tests do not wait on random backoffs.
  vi.spyOn(Math, "random").mockReturnValue(0);
  return () => vi.restoreAllMocks();
});

const credentials = async () => ({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" });
const call = (method: ApiRequest["method"]) =>
  callApi({
    api,
    method,
    path: "/panic",
    ...(method === "GET" ? {} : { body: { reason: "INC-42" } }),
    region: "eu-west-1",
    credentials,
  });
const statusOf = (outcome: unknown) => (outcome instanceof ApiError ? outcome.status : outcome);

const THROTTLED: Answer = { status: 429, body: { message: "Too Many Requests" } };
const TIMED_OUT: Answer = { status: 504, body: { message: "Endpoint request timed out" } };

describe("callApi when the API refuses or fails a request", () => {
  it.each(["GET", "POST", "DELETE"] as const)(
    "sends a %s refused by a throttle (429) again",
    async (method) => {
      script = (n) => (n === 1 ? THROTTLED : undefined);
      await expect(call(method)).resolves.toEqual({ ok: true });
      expect(received.map((r) => r.method)).toEqual([method, method]);
    },
  );

  it.each([502, 503, 504])("sends a GET answered %i by API Gateway again", async (status) => {
    script = (n) => (n === 1 ? { status, body: { message: "Internal server error" } } : undefined);
    await expect(call("GET")).resolves.toEqual({ ok: true });
    expect(received).toHaveLength(2);
  });

  it.each([
    ["POST", 504],
    ["POST", 502],
    ["DELETE", 504],
    ["DELETE", 503],
  ] as const)("never sends a %s answered %i again: the function may have acted", async (method, status) => {
    script = () => ({ status, body: { message: "Endpoint request timed out" } });
    expect(statusOf(await call(method).catch((error: unknown) => error))).toBe(status);
    expect(received).toHaveLength(1);
  });

  it("does not send again a GET the panic function itself answered 502, after its own retries", async () => {
    script = () => ({ status: 502, body: { error: "kube-unavailable", message: "HTTP 503: unavailable" } });
    expect(statusOf(await call("GET").catch((error: unknown) => error))).toBe(502);
    expect(received).toHaveLength(1);
  });

  it("does not send again a request the API refused for what it is (400, 403)", async () => {
    for (const status of [400, 403]) {
      received.length = 0;
      script = () => ({ status, body: { message: "no" } });
      expect(statusOf(await call("GET").catch((error: unknown) => error))).toBe(status);
      expect(received).toHaveLength(1);
    }
  });

  it("gives up after four requests, with the last answer", async () => {
    script = () => TIMED_OUT;
    const outcome = await call("GET").catch((error: unknown) => error);
    expect(String(outcome)).toBe("ApiError: API answered 504: Endpoint request timed out");
    expect(received).toHaveLength(4);
  });

  it("says the request id a failure was logged under", async () => {
    script = () => ({ status: 500, body: { message: "internal error", requestId: "c6af9ac6-7b61" } });
    const outcome = await call("GET").catch((error: unknown) => error);
    expect(String(outcome)).toBe("ApiError: API answered 500: internal error (request id c6af9ac6-7b61)");
  });

  it("waits as long as the API's Retry-After asks", async () => {
    script = (n) => (n === 1 ? { ...THROTTLED, headers: { "retry-after": "1" } } : undefined);
    await expect(call("POST")).resolves.toEqual({ ok: true });
    const [first, second] = received;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
  });
});
