// The DynamoDB adapter held to the AWS documentation on errors, retries and TTL:
// - every error class of DynamoDB's developer guide ("Error handling with DynamoDB", "OK to retry?") is retried
//   with backoff and a bounded budget or thrown at once, through the stores' real client and an HTTP server on
//   loopback that answers like DynamoDB (and like a network that drops, cuts or never answers);
// - attempts are bounded: the SDK's retries and the stores' multiply, so every client the project gives a store
//   makes one HTTP request per call;
// - every item the stores write carries the table's TTL attribute, a Number of epoch seconds, `retentionDays`
//   after the time the item is about, and never one DynamoDB's TTL would ignore (five years or more in the past);
// - items past their TTL that DynamoDB has not deleted yet are still read (docs/flow-store.md, "TTL", says so).
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { type AttributeValue, GetItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { STORE_REQUEST_TIMEOUTS, storeClient } from "../../../functions/adapters/dynamo/client.ts";
import { DynamoCoverageStore } from "../../../functions/adapters/dynamo/coverage.ts";
import { startEmbeddedStore } from "../../../functions/adapters/dynamo/embedded.ts";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import { DynamoHolderHistory } from "../../../functions/adapters/dynamo/history.ts";
import { OLDEST_TTL_S } from "../../../functions/adapters/dynamo/keys.ts";
import { DynamoPanicAudit } from "../../../functions/adapters/dynamo/panic-audit.ts";
import {
  type CallReport,
  DEFAULT_RETRY,
  type RetryPolicy,
  StoreUnavailableError,
  withRetry,
} from "../../../functions/adapters/dynamo/retry.ts";
import { TTL_ATTRIBUTE } from "../../../functions/adapters/dynamo/schema.ts";
import { tableStores } from "../../../functions/adapters/dynamo/stores.ts";
import type { Holder } from "../../../functions/core/types.ts";
import { createRuntime, QUERY_RETRY } from "../../../functions/query/handler.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { forward, startFaultProxy } from "../../support/fault-proxy.ts";
import { at, CLUSTER, candidate, flow, pod } from "./fixtures.ts";

const DAY_S = 86_400;
const FAST: RetryPolicy = { attempts: 4, baseDelayMs: 0, maxDelayMs: 0 };
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

// A loopback server in front of dynalite whose answers a test scripts, request by request -------------------------

type Action =
  /** Answered as DynamoDB answers an error (JSON 1.0 `__type`), or with `body` as it is; not forwarded. */
  | { kind: "error"; status: number; type?: string; body?: string }
  /** The connection closed once the request was read: not forwarded. */
  | { kind: "reset" }
  /** Forwarded (so applied), then the connection closed before any answer. */
  | { kind: "lost-reset" }
  /** Forwarded (so applied), then half the answer and the connection closed. */
  | { kind: "truncated" }
  /** Never answered. */
  | { kind: "hang" }
  /** 200 with a body that is not JSON (something in between answered): not forwarded. */
  | { kind: "garbage" };

interface Scripted {
  endpoint: string;
  /** Requests received, by operation (`UpdateItem`, …). */
  count(operation?: string): number;
  /** The action for a request (the n-th, from 0, of its operation); undefined forwards it. */
  script(fn: (operation: string, n: number) => Action | undefined): void;
  close(): Promise<void>;
}

async function startScripted(target: string): Promise<Scripted> {
  const targetUrl = new URL(target);
  const counts = new Map<string, number>();
  let plan: (operation: string, n: number) => Action | undefined = () => undefined;
  const sockets = new Set<Socket>();
  const server = createServer((req, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
      const n = counts.get(operation) ?? 0;
      counts.set(operation, n + 1);
      const action = plan(operation, n);
      if (action?.kind === "hang") return;
      if (action?.kind === "reset") {
        req.socket.destroy();
        return;
      }
      if (action?.kind === "error" || action?.kind === "garbage") {
        const text =
          action.kind === "garbage"
            ? "<html><body>proxy says hello</body></html>"
            : (action.body ??
              JSON.stringify({
                __type: `com.amazonaws.dynamodb.v20120810#${action.type}`,
                message: "scripted",
              }));
        res.writeHead(action.kind === "garbage" ? 200 : action.status, {
          "Content-Type": "application/x-amz-json-1.0",
          "Content-Length": Buffer.byteLength(text),
        });
        res.end(text);
        return;
      }
      const answer = await forward(targetUrl, req.method ?? "POST", req.url ?? "/", req.headers, body);
      if (action?.kind === "lost-reset") {
        req.socket.destroy();
        return;
      }
      if (action?.kind === "truncated") {
        res.writeHead(answer.status, answer.headers);
        res.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)));
        setTimeout(() => req.socket.destroy(), 10);
        return;
      }
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    count: (operation) =>
      operation === undefined
        ? [...counts.values()].reduce((a, b) => a + b, 0)
        : (counts.get(operation) ?? 0),
    script(fn) {
      plan = fn;
      counts.clear();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: connections to it are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let ts: TestStore;
let proxy: Scripted;

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startScripted(ts.endpoint);
});

afterAll(async () => {
  await proxy?.close();
  await ts?.close();
});

afterEach(() => {
  proxy.script(() => undefined);
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

/** The stores' client, as the ingest function builds it, pointed at `endpoint`. */
function clientAt(endpoint: string, requestHandler?: Record<string, unknown>) {
  return storeClient({
    endpoint,
    region: "local",
    credentials: CREDENTIALS,
    ...(requestHandler === undefined ? {} : { requestHandler }),
  });
}

const getItem = (sk: string) =>
  new GetItemCommand({ TableName: ts.tableName, Key: { pk: { S: "REVIEW" }, sk: { S: sk } } });

const fresh = (): CallReport => ({ requests: 0, uncertain: false });

// Errors ------------------------------------------------------------------------------------------------------

describe("each DynamoDB error class, through the stores' client", () => {
  it.each([
    // Refused before they were applied: retried, and the request cannot have landed.
    ["ProvisionedThroughputExceededException", 400, "refused"],
    ["ThrottlingException", 400, "refused"],
    ["RequestLimitExceeded", 400, "refused"],
    // "Transaction conflict handling": a PutItem/UpdateItem on an item in an ongoing transaction is rejected.
    ["TransactionConflictException", 400, "refused"],
    // 5xx: retried, but the request may have been applied.
    ["InternalServerError", 500, "maybe-applied"],
    ["ServiceUnavailableException", 503, "maybe-applied"],
    // "OK to retry? No": thrown at once.
    ["ConditionalCheckFailedException", 400, "fatal"],
    ["ValidationException", 400, "fatal"],
    ["ResourceNotFoundException", 400, "fatal"],
    ["AccessDeniedException", 400, "fatal"],
    ["MissingAuthenticationTokenException", 400, "fatal"],
    ["UnrecognizedClientException", 400, "fatal"],
    // Only tables with a local secondary index raise it; this table has none, and no retry would shrink it.
    ["ItemCollectionSizeLimitExceededException", 400, "fatal"],
  ] as const)("%s (%i): %s", async (type, status, expected) => {
    const client = clientAt(proxy.endpoint);
    try {
      proxy.script((op, n) => (op === "GetItem" && n === 0 ? { kind: "error", status, type } : undefined));
      const report = fresh();
      const call = withRetry("GetItem", FAST, report, () => client.send(getItem("errors")));
      if (expected === "fatal") {
        await expect(call).rejects.toMatchObject({ name: type });
        expect(report).toEqual({ requests: 1, uncertain: false });
      } else {
        await expect(call).resolves.toBeDefined();
        expect(report).toEqual({ requests: 2, uncertain: expected === "maybe-applied" });
      }
      expect(proxy.count("GetItem")).toBe(expected === "fatal" ? 1 : 2);
    } finally {
      client.destroy();
    }
  });

  it("retries a 5xx whose body is not DynamoDB's (a load balancer's 502)", async () => {
    const client = clientAt(proxy.endpoint);
    try {
      proxy.script((op, n) =>
        op === "GetItem" && n === 0
          ? { kind: "error", status: 502, body: "<html>Bad Gateway</html>" }
          : undefined,
      );
      const report = fresh();
      await withRetry("GetItem", FAST, report, () => client.send(getItem("502")));
      expect(report).toEqual({ requests: 2, uncertain: true });
    } finally {
      client.destroy();
    }
  });

  it("reports a redelivery as a duplicate when its write first met a transaction conflict", async () => {
    const bucket = "2026-12-01T10:00:00.000Z";
    const f = flow(bucket, pod("192.168.60.1", "tc", "a"), pod("192.168.60.2", "tc", "b"), { packets: 3 });
    const client = clientAt(proxy.endpoint);
    const store = new DynamoFlowStore({ client, tableName: ts.tableName, retry: FAST });
    try {
      expect(await store.writeFlows([f], "tc-redelivery")).toMatchObject({ applied: 1, duplicates: 0 });
      proxy.script((op, n) =>
        op === "UpdateItem" && n === 0
          ? { kind: "error", status: 400, type: "TransactionConflictException" }
          : undefined,
      );
      // Rejected (never applied), sent again, refused by the token: a redelivery, nothing applied.
      expect(await store.writeFlows([f], "tc-redelivery")).toEqual({
        applied: 0,
        duplicates: 1,
        writeRequests: 2,
      });
    } finally {
      client.destroy();
    }
  });
});

describe("network failures, as the SDK surfaces them", () => {
  it("retries a refused connection, which sent nothing, even where a resend of a possibly applied write is not allowed", async () => {
    const client = clientAt(`http://127.0.0.1:${await closedPort()}`);
    try {
      const report = fresh();
      const call = withRetry("UpdateItem", FAST, report, () => client.send(getItem("refused")), {
        resendUnsure: false,
      });
      await expect(call).rejects.toThrow(StoreUnavailableError);
      await expect(call).rejects.toThrow(/failed after 4 tries/);
      await expect(call).rejects.toMatchObject({ cause: { code: "ECONNREFUSED" } });
      expect(report).toEqual({ requests: 4, uncertain: false });
    } finally {
      client.destroy();
    }
  });

  it("retries a connection closed before an answer, as possibly applied", async () => {
    const client = clientAt(proxy.endpoint);
    try {
      proxy.script((op, n) => (op === "GetItem" && n === 0 ? { kind: "reset" } : undefined));
      const report = fresh();
      await withRetry("GetItem", FAST, report, () => client.send(getItem("reset")));
      expect(report).toEqual({ requests: 2, uncertain: true });
      // Never sent again where a resend could count twice: the call fails, saying why.
      proxy.script((op, n) => (op === "GetItem" && n === 0 ? { kind: "reset" } : undefined));
      await expect(
        withRetry("UpdateItem", FAST, fresh(), () => client.send(getItem("reset")), { resendUnsure: false }),
      ).rejects.toThrow(/may have been applied; not sent again/);
    } finally {
      client.destroy();
    }
  });

  it.each([
    ["connection closed", "lost-reset"],
    ["answer cut off", "truncated"],
  ] as const)("applies a flow write whose answer was lost (%s) exactly once", async (_what, kind) => {
    const bucket = kind === "truncated" ? "2026-12-01T11:00:00.000Z" : "2026-12-01T11:01:00.000Z";
    const f = flow(bucket, pod("192.168.61.1", "lost", kind), pod("192.168.61.2", "lost", "b"), {
      packets: 5,
    });
    const client = clientAt(proxy.endpoint);
    const store = new DynamoFlowStore({ client, tableName: ts.tableName, retry: FAST });
    try {
      proxy.script((op, n) => (op === "UpdateItem" && n === 0 ? { kind } : undefined));
      // Applied, answer lost, sent again, refused by its token, read: it was ours, so it counts as applied.
      // The third request is the marker of the flow's hour (a PutItem, before it).
      expect(await store.writeFlows([f], `lost-${kind}`)).toEqual({
        applied: 1,
        duplicates: 0,
        writeRequests: 3,
      });
      expect(await store.writeFlows([f], `lost-${kind}`)).toMatchObject({ applied: 0, duplicates: 1 });
    } finally {
      client.destroy();
    }
    const direct = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
    const { items } = await direct.queryFlows({ cluster: CLUSTER, since: bucket, until: at(bucket, 59_999) });
    expect(items.map((i) => i.packets)).toEqual([5]);
  });

  it("gives up on a request with no answer after the request timeout and sends it again", async () => {
    const client = clientAt(proxy.endpoint, {
      ...STORE_REQUEST_TIMEOUTS,
      connectionTimeout: 500,
      requestTimeout: 300,
    });
    try {
      proxy.script((op, n) => (op === "GetItem" && n === 0 ? { kind: "hang" } : undefined));
      const report = fresh();
      await withRetry("GetItem", FAST, report, () => client.send(getItem("hang")));
      expect(report).toEqual({ requests: 2, uncertain: true });
    } finally {
      client.destroy();
    }
  });

  it("gives the stores' client a request timeout that throws, far below the SDK's 300 s socket default", async () => {
    const client = storeClient({ region: "local", credentials: CREDENTIALS });
    try {
      expect(await client.config.maxAttempts()).toBe(1);
      const handler = client.config.requestHandler as unknown as {
        configProvider: Promise<{
          requestTimeout?: number;
          connectionTimeout?: number;
          throwOnRequestTimeout?: boolean;
        }>;
      };
      const config = await handler.configProvider;
      expect(config.throwOnRequestTimeout).toBe(true);
      expect(config.requestTimeout).toBeGreaterThan(0);
      expect(config.connectionTimeout).toBeGreaterThan(0);
      // Ten requests and their backoff fit in the ingest function's two minutes.
      const backoff = 16_350;
      expect(DEFAULT_RETRY.attempts * (config.requestTimeout ?? Infinity) + backoff).toBeLessThan(120_000);
    } finally {
      client.destroy();
    }
  });

  it("fails at once on an answer that cannot be read (nothing says whether it is worth another try)", async () => {
    const client = clientAt(proxy.endpoint);
    try {
      proxy.script((op, n) => (op === "GetItem" && n === 0 ? { kind: "garbage" } : undefined));
      const report = fresh();
      await expect(withRetry("GetItem", FAST, report, () => client.send(getItem("garbage")))).rejects.toThrow(
        /Deserialization error/,
      );
      expect(report.requests).toBe(1);
    } finally {
      client.destroy();
    }
  });
});

// Bounds ------------------------------------------------------------------------------------------------------

describe("attempts are bounded", () => {
  it("makes exactly `attempts` HTTP requests through the stores' client, then fails with the last error", async () => {
    const client = clientAt(proxy.endpoint);
    try {
      proxy.script((op) =>
        op === "GetItem" ? { kind: "error", status: 400, type: "ThrottlingException" } : undefined,
      );
      const report = fresh();
      const call = withRetry("GetItem", { attempts: 6, baseDelayMs: 0, maxDelayMs: 0 }, report, () =>
        client.send(getItem("bound")),
      );
      await expect(call).rejects.toThrow(StoreUnavailableError);
      await expect(call).rejects.toMatchObject({ cause: { name: "ThrottlingException" } });
      expect(proxy.count("GetItem")).toBe(6);
      expect(report.requests).toBe(6);
    } finally {
      client.destroy();
    }
  });

  it("multiplies with a client's own retries (why the project's clients make none), and counts them all", async () => {
    const client = ts.clientFor(proxy.endpoint, { maxAttempts: 3 });
    proxy.script((op) =>
      op === "GetItem" ? { kind: "error", status: 400, type: "ThrottlingException" } : undefined,
    );
    const report = fresh();
    await expect(
      withRetry("GetItem", { attempts: 2, baseDelayMs: 0, maxDelayMs: 0 }, report, () =>
        client.send(getItem("x")),
      ),
    ).rejects.toThrow(StoreUnavailableError);
    expect(proxy.count("GetItem")).toBe(6);
    // An SDK retry hides which request was applied: counted, and taken as possibly applied.
    expect(report).toEqual({ requests: 6, uncertain: true });
  });

  it("waits at most about 16 s between the default policy's ten requests", async () => {
    const delays: number[] = [];
    const random = vi.spyOn(Math, "random").mockReturnValue(0.999_999);
    // Sleeps are recorded, not waited: the policy's waiting is what is measured, not the clock.
    const timer = vi.spyOn(globalThis, "setTimeout").mockImplementation(((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      fn();
      return 0 as unknown as NodeJS.Timeout;
    }) as typeof setTimeout);
    const report = fresh();
    try {
      await expect(
        withRetry("UpdateItem", DEFAULT_RETRY, report, async () => {
          throw Object.assign(new Error("throttled"), { name: "ThrottlingException" });
        }),
      ).rejects.toThrow(/failed after 10 tries/);
    } finally {
      timer.mockRestore();
      random.mockRestore();
    }
    expect(report.requests).toBe(10);
    expect(delays).toHaveLength(9);
    expect(delays.reduce((a, b) => a + b, 0)).toBeGreaterThan(16_000);
    expect(delays.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(16_350);
  });

  it("gives the embedded store's stores a client that makes one request per call", async () => {
    const embedded = await startEmbeddedStore();
    try {
      expect(await embedded.client.config.maxAttempts()).toBe(1);
    } finally {
      await embedded.close();
    }
  });

  it("bounds a query function's Query at its own tries (QUERY_RETRY), not times the SDK's attempts", async () => {
    const faults = await startFaultProxy(ts.endpoint, { error: 1 });
    try {
      vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", faults.endpoint);
      // Backoff of zero, the SDK's as the store's: the count is what matters here, not the waiting.
      vi.spyOn(Math, "random").mockReturnValue(0);
      const runtime = createRuntime({ TABLE_NAME: ts.tableName, CLUSTER_NAME: CLUSTER });
      await expect(
        runtime.store.queryFlows({
          cluster: CLUSTER,
          since: "2026-12-01T00:00:00.000Z",
          until: "2026-12-01T00:10:00.000Z",
        }),
      ).rejects.toThrow(StoreUnavailableError);
      expect(faults.count({ operation: "Query" })).toBe(QUERY_RETRY.attempts);
    } finally {
      await faults.close();
    }
  });
});

// Never half acknowledged --------------------------------------------------------------------------------------

describe("a payload that cannot be stored fails", () => {
  it("rejects a flow batch when one write fails for good, and its retry completes it exactly", async () => {
    const bucket = "2026-12-01T12:00:00.000Z";
    const flows = Array.from({ length: 6 }, (_, i) =>
      flow(bucket, pod(`192.168.62.${i}`, "half", `a-${i}`), pod("192.168.62.100", "half", "z"), {
        packets: i + 1,
      }),
    );
    const client = clientAt(proxy.endpoint);
    const store = new DynamoFlowStore({ client, tableName: ts.tableName, retry: FAST, concurrency: 2 });
    try {
      proxy.script((op, n) =>
        op === "UpdateItem" && n === 2
          ? { kind: "error", status: 400, type: "ValidationException" }
          : undefined,
      );
      await expect(store.writeFlows(flows, "half")).rejects.toMatchObject({ name: "ValidationException" });
      proxy.script(() => undefined);
      const retried = await store.writeFlows(flows, "half");
      expect(retried.applied + retried.duplicates).toBe(6);
    } finally {
      client.destroy();
    }
    const direct = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
    const { items } = await direct.queryFlows({ cluster: CLUSTER, since: bucket, until: at(bucket, 59_999) });
    expect(items.map((i) => i.packets).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("answers a coverage claim whose answer was lost as refused, and the minute read again holds it once", async () => {
    const client = clientAt(proxy.endpoint);
    const coverage = new DynamoCoverageStore({ client, tableName: ts.tableName, retry: FAST });
    const ref = { cluster: CLUSTER, group: "/review/lost", stream: "node-a" };
    const minute = Date.parse("2026-12-01T12:00:00.000Z");
    const claim = {
      contribution: "lost-claim",
      source: "live" as const,
      events: ["e1", "e2"],
      recorded: true,
      count: 2,
      span: 1,
      stored: false,
      claimedAt: "2026-12-01T12:01:00.000Z",
    };
    try {
      proxy.script((op, n) => (op === "PutItem" && n === 0 ? { kind: "lost-reset" } : undefined));
      // Applied, answer lost, sent again, refused by its condition: the caller reads the minute again.
      expect(await coverage.addClaim(ref, minute, 0, claim)).toBe(false);
    } finally {
      client.destroy();
    }
    const [read] = await new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName }).read(
      ref,
      minute,
      minute,
    );
    expect(read?.version).toBe(1);
    expect(read?.claims.map((c) => c.contribution)).toEqual(["lost-claim"]);
  });

  it("keeps a panic audit record whose answer was lost as written, once", async () => {
    const client = ts.clientFor(proxy.endpoint, { maxAttempts: 2 });
    const audit = new DynamoPanicAudit({ client, tableName: ts.tableName });
    const cluster = "review-audit";
    proxy.script((op, n) => (op === "PutItem" && n === 0 ? { kind: "lost-reset" } : undefined));
    await audit.record({
      cluster,
      at: "2026-12-01T12:00:00.000Z",
      action: "apply",
      outcome: "success",
      result: "applied",
      requester: "arn:aws:iam::123456789012:user/alice",
      reason: "review",
      via: "api",
      policyName: "allow-all",
      expiresAt: null,
      conflicts: [],
      message: "applied",
    });
    expect(proxy.count("PutItem")).toBe(2);
    const direct = new DynamoPanicAudit({ client: ts.client, tableName: ts.tableName });
    expect((await direct.recent(cluster, 10)).map((e) => e.reason)).toEqual(["review"]);
  });
});

// TTL ----------------------------------------------------------------------------------------------------------

/** Every item of the table, as DynamoDB stores it (attribute types included). */
async function scanAll(): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await ts.client.send(new ScanCommand({ TableName: ts.tableName, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}

/** The TTL attribute of an item: a Number holding whole epoch seconds. */
function ttlOf(item: Record<string, AttributeValue>): number {
  const value = item[TTL_ATTRIBUTE];
  expect(value, `${item.pk?.S} ${item.sk?.S}`).toBeDefined();
  expect(Object.keys(value as AttributeValue)).toEqual(["N"]);
  const text = (value as { N: string }).N;
  expect(text).toMatch(/^\d+$/);
  return Number(text);
}

const seconds = (iso: string | number): number =>
  Math.floor((typeof iso === "number" ? iso : Date.parse(iso)) / 1000);

const holder = (name: string, validFrom: number, validTo: number | null): Holder => ({
  kind: "pod",
  namespace: "ttl",
  name,
  workload: null,
  node: "node-a",
  uid: `uid-${name}`,
  validFrom,
  validTo,
});

describe("TTL", () => {
  it("puts the table's TTL attribute on every item the stores write, retentionDays after the item's own time", async () => {
    const cluster = "ttl-all";
    const retentionDays = 7;
    const retention = retentionDays * DAY_S;
    const now = Date.now();
    // Two hours ago, on a minute: live traffic, not yet expired.
    const t0 = new Date(Math.floor((now - 2 * 3_600_000) / 60_000) * 60_000).toISOString();
    const store = new DynamoFlowStore({
      client: ts.client,
      tableName: ts.tableName,
      retentionDays,
      maxSlotTokens: 1,
    });
    const history = new DynamoHolderHistory({
      client: ts.client,
      tableName: ts.tableName,
      retentionDays,
      now: () => now,
    });
    const coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName, retentionDays });
    const withCluster = <T extends { cluster: string }>(r: T): T => ({ ...r, cluster });

    await store.writeFlows(
      [withCluster(flow(t0, pod("192.168.70.1", "ttl", "a"), pod("192.168.70.2", "ttl", "b")))],
      "ttl-f",
    );
    const [src, dst] = [
      pod("192.168.70.3", "ttl", "c", ["Deployment", "c"]),
      pod("192.168.70.4", "ttl", "s", ["Deployment", "s"]),
    ];
    const hit = (firstSeen: string, hits: number) => {
      const c = candidate(src, dst, firstSeen, hits);
      return { ...c, key: { ...c.key, cluster } };
    };
    const options = { windowMs: 15 * 60_000 };
    // Opens the window (state + record), folds into a slot, then a fold into the full slot claims an item of its own
    // (the two folds' contributions pick one shard of the slot).
    await store.applyAlerts([hit(t0, 2)], "ttl-open", options);
    await store.applyAlerts([hit(at(t0, 60_000), 3)], "ttl-fold-1", options);
    await store.applyAlerts([hit(at(t0, 61_000), 4)], "ttl-fold-25", options);
    const [alert] = (await store.queryAlerts({ cluster, since: t0, until: t0 })).items;
    expect(alert?.count).toBe(9);
    await store.markAlertSent(alert as NonNullable<typeof alert>);

    const ended = now - 3 * 86_400_000;
    await history.remember(cluster, [
      { ip: "192.168.70.5", holder: holder("alive", now - 86_400_000, null) },
      { ip: "192.168.70.6", holder: holder("ended", now - 5 * 86_400_000, ended) },
    ]);
    const ref = { cluster, group: "/ttl", stream: "node-a" };
    const minute = Date.parse(t0);
    const claim = {
      contribution: "ttl-claim",
      source: "live" as const,
      events: ["e"],
      recorded: true,
      count: 1,
      span: 1,
      stored: false,
      claimedAt: t0,
    };
    expect(await coverage.addClaim(ref, minute, 0, claim)).toBe(true);
    await coverage.markStored(ref, minute, "ttl-claim");
    await new DynamoPanicAudit({ client: ts.client, tableName: ts.tableName }).record({
      cluster,
      at: t0,
      action: "apply",
      outcome: "success",
      result: "applied",
      requester: "r",
      reason: "ttl",
      via: "api",
      policyName: "allow-all",
      expiresAt: at(t0, 3_600_000),
      conflicts: [],
      message: "applied",
    });

    const seen = new Set<string>();
    for (const item of await scanAll()) {
      const pk = item.pk?.S ?? "";
      const sk = item.sk?.S ?? "";
      const [type, itemCluster] = pk.split("#");
      if (itemCluster !== cluster) continue;
      seen.add(type as string);
      const skTime = sk.slice(0, 24);
      switch (type) {
        case "FLOW":
        case "ALERTS":
        case "FOLDCLAIM":
          // A flow's bucket; an alert's record, its slots and their claims: the window's opening.
          expect(ttlOf(item)).toBe(seconds(skTime) + retention);
          break;
        case "ALERTKEY":
          expect(ttlOf(item)).toBe(seconds(item.windowEnd?.S ?? "") + retention);
          break;
        case "FLOWHOURS":
          // The marker of an hour that holds flows: from the end of its hour, so never before one of its flows.
          expect(ttlOf(item)).toBe(seconds(`${sk}:00:00.000Z`) + 3600 + retention);
          break;
        case "ALERTDAYS":
          // The marker of a day that holds alerts: from the end of its day, so never before one of its alerts.
          expect(ttlOf(item)).toBe(seconds(`${sk}T00:00:00.000Z`) + DAY_S + retention);
          break;
        case "IP":
          expect(ttlOf(item)).toBe(
            item.validTo === undefined ? seconds(now) + retention : seconds(ended) + retention,
          );
          break;
        case "COVER":
          // A week after the flows of its minute, so that a minute's coverage does not go before its flows.
          expect(ttlOf(item)).toBe(seconds(skTime) + retention + 7 * DAY_S);
          break;
        case "PANIC":
          // An audit trail: never expires (docs/deploy.md).
          expect(item[TTL_ATTRIBUTE]).toBeUndefined();
          break;
        default:
          throw new Error(`an item type this review does not know: ${pk} ${sk}`);
      }
    }
    expect([...seen].sort()).toEqual([
      "ALERTDAYS",
      "ALERTKEY",
      "ALERTS",
      "COVER",
      "FLOW",
      "FLOWHOURS",
      "FOLDCLAIM",
      "IP",
      "PANIC",
    ]);
  });

  it("keeps items 30 days by default, every store of a table alike", async () => {
    const cluster = "ttl-default";
    const { store, history, coverage } = tableStores({ client: ts.client, tableName: ts.tableName });
    const bucket = new Date(Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000).toISOString();
    await store.writeFlows(
      [{ ...flow(bucket, pod("192.168.71.1", "d", "a"), pod("192.168.71.2", "d", "b")), cluster }],
      "ttl-default",
    );
    const ended = Date.now() - 86_400_000;
    await history.remember(cluster, [
      { ip: "192.168.71.3", holder: holder("gone", ended - 3_600_000, ended) },
    ]);
    await coverage.addClaim({ cluster, group: "/d", stream: "s" }, Date.parse(bucket), 0, {
      contribution: "c",
      source: "live",
      events: ["e"],
      recorded: true,
      count: 1,
      span: 1,
      stored: false,
      claimedAt: bucket,
    });
    const ttls = new Map(
      (await scanAll())
        .filter((i) => (i.pk?.S ?? "").split("#")[1] === cluster)
        .map((i) => [(i.pk?.S ?? "").split("#")[0], ttlOf(i)]),
    );
    expect(ttls.get("FLOW")).toBe(seconds(bucket) + 30 * DAY_S);
    expect(ttls.get("IP")).toBe(seconds(ended) + 30 * DAY_S);
    expect(ttls.get("COVER")).toBe(seconds(bucket) + 37 * DAY_S);
  });

  it("writes a backfill of old events already expired, but never with a TTL DynamoDB would ignore", async () => {
    const cluster = "ttl-old";
    const { store, history, coverage } = tableStores({ client: ts.client, tableName: ts.tableName });
    const before = seconds(Date.now());
    const minuteOf = (ms: number) => new Date(Math.floor(ms / 60_000) * 60_000).toISOString();
    const fortyDays = minuteOf(Date.now() - 40 * 86_400_000);
    // Its TTL would be more than five years in the past, where DynamoDB's TTL ignores an item for good.
    const sixYears = minuteOf(Date.now() - 6 * 365 * 86_400_000);
    for (const bucket of [fortyDays, sixYears]) {
      await store.writeFlows(
        [{ ...flow(bucket, pod("192.168.72.1", "o", "a"), pod("192.168.72.2", "o", "b")), cluster }],
        `old-${bucket}`,
      );
      await coverage.addClaim({ cluster, group: "/o", stream: "s" }, Date.parse(bucket), 0, {
        contribution: "c",
        source: "backfill",
        events: ["e"],
        recorded: true,
        count: 1,
        span: 1,
        stored: false,
        claimedAt: bucket,
      });
    }
    const gone = Date.parse(sixYears);
    await history.remember(cluster, [{ ip: "192.168.72.3", holder: holder("ancient", gone - 60_000, gone) }]);
    const after = seconds(Date.now());
    const items = (await scanAll()).filter((i) => (i.pk?.S ?? "").split("#")[1] === cluster);
    // Per bucket: the flow, its hour's marker and the coverage; and the holder.
    expect(items).toHaveLength(7);
    for (const item of items) {
      const what = `${item.pk?.S} ${item.sk?.S}`;
      const ttl = ttlOf(item);
      const margin = (item.pk?.S ?? "").startsWith("COVER#") ? 7 * DAY_S : 0;
      if (item.sk?.S === fortyDays.slice(0, 13)) {
        // The marker of the flow's hour: from the hour's end.
        expect(ttl, what).toBe(seconds(`${fortyDays.slice(0, 13)}:00:00.000Z`) + 3600 + 30 * DAY_S);
        expect(ttl, what).toBeLessThan(before);
      } else if (item.sk?.S?.startsWith(fortyDays)) {
        // Its time is up: written expired, deleted within days (docs/backfill.md, Retention), coverage a week later.
        expect(ttl, what).toBe(seconds(fortyDays) + 30 * DAY_S + margin);
        expect(ttl, what).toBeLessThan(before);
      } else {
        // Expired too, and well inside the five years DynamoDB's TTL looks back.
        expect(ttl, what).toBeGreaterThanOrEqual(before - OLDEST_TTL_S + margin);
        expect(ttl, what).toBeLessThanOrEqual(after - OLDEST_TTL_S + margin);
        expect(ttl, what).toBeGreaterThan(after - 5 * 365 * DAY_S + 30 * DAY_S);
      }
    }
  });

  it("refuses a retention that would write no usable TTL, in every store", () => {
    const base = { client: ts.client, tableName: ts.tableName };
    for (const retentionDays of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new DynamoFlowStore({ ...base, retentionDays })).toThrow(/retentionDays/);
      expect(() => new DynamoCoverageStore({ ...base, retentionDays })).toThrow(/retentionDays/);
      expect(() => new DynamoHolderHistory({ ...base, retentionDays })).toThrow(/retentionDays/);
    }
  });

  it("still reads items past their TTL that DynamoDB has not deleted yet (docs/flow-store.md, TTL)", async () => {
    const cluster = "ttl-read";
    const store = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, retentionDays: 1 });
    const bucket = "2026-11-01T00:00:00.000Z";
    await store.writeFlows(
      [{ ...flow(bucket, pod("192.168.73.1", "r", "a"), pod("192.168.73.2", "r", "b")), cluster }],
      "expired",
    );
    const [item] = (await scanAll()).filter((i) => i.pk?.S === `FLOW#${cluster}#2026-11-01T00`);
    expect(ttlOf(item as Record<string, AttributeValue>)).toBeLessThanOrEqual(seconds(Date.now()));
    const { items } = await store.queryFlows({ cluster, since: bucket, until: at(bucket, 59_999) });
    expect(items).toHaveLength(1);
  });
});
