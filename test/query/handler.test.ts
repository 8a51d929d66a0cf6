// The query function against dynalite, driven by API Gateway (REST, payload 1.0) proxy events: validation,
// every filter, cursor paging, and that only Query requests reach the table.
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { STORE_REQUEST_TIMEOUTS, storeClient } from "../../functions/adapters/dynamo/client.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { AlertCandidate, AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { QUERY_TIMEOUT_SECONDS } from "../../functions/query/config.ts";
import {
  ANSWER_RESERVE_MS,
  createRuntime,
  handleQuery,
  invocationDeadline,
  QUERY_RETRY,
  type QueryRuntime,
} from "../../functions/query/handler.ts";
import { logger, metrics } from "../../functions/shared/powertools.ts";
import { restApiEvent as event } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { forward } from "../support/fault-proxy.ts";

const CLUSTER = "prod";
const T0 = Date.parse("2026-04-19T04:00:00.000Z");
const NOW = Date.parse("2026-04-19T12:00:00.000Z");

function pod(ip: string, namespace: string, workload: string, name: string): Endpoint {
  return {
    ip,
    kind: "pod",
    namespace,
    name,
    workload: { kind: "Deployment", name: workload },
    node: "ip-192-168-74-5",
    resolved: true,
  };
}

function external(ip: string): Endpoint {
  return { ip, kind: "external", namespace: null, name: null, workload: null, node: null, resolved: true };
}

function flow(minute: number, src: Endpoint, dst: Endpoint, dstPort: number, packets = 1): FlowRecord {
  const bucket = new Date(T0 + minute * 60_000).toISOString();
  return {
    id: digest(`${bucket}|${src.ip}|${dst.ip}|${dstPort}`),
    cluster: CLUSTER,
    bucket,
    src,
    dst,
    protocol: "TCP",
    dstPort,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    internal: src.kind !== "external" && dst.kind !== "external",
    packets,
    bytes: packets * 60,
    firstSeen: bucket,
    lastSeen: new Date(T0 + minute * 60_000 + 30_000).toISOString(),
    policy: null,
    tcpFlags: ["SYN"],
  };
}

const web = pod("192.168.22.247", "customer-a", "web", "web-7d9f-abc12");
const api = pod("192.168.30.4", "customer-a", "api", "api-5c6d-xyz98");
const db = pod("192.168.94.122", "customer-b", "db", "db-0");
const v6 = pod("2001:db8::7", "customer-c", "edge", "edge-0");
const scanner = external("203.0.113.9");

// Spread over three hours (three flow partitions), so paging crosses partition boundaries.
const FLOWS: FlowRecord[] = [
  flow(1, web, db, 5432, 3),
  flow(2, api, db, 5432),
  flow(3, scanner, web, 22, 7),
  flow(65, web, api, 8080),
  flow(70, scanner, db, 5432),
  flow(71, v6, db, 5432),
  flow(130, api, web, 443, 2),
  flow(131, db, v6, 9090),
];

interface Body<T> {
  cluster?: string;
  items: T[];
  cursor: string | null;
  message?: string;
  parameter?: string | null;
}

const body = <T>(r: APIGatewayProxyResult): Body<T> => JSON.parse(r.body) as Body<T>;

let ts: TestStore;
let runtime: QueryRuntime;
const commands: string[] = [];

function recording(client: DynamoDBClient): DynamoDBClient {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(String(context.commandName));
      return next(args);
    },
    { step: "initialize", name: "recordCommands" },
  );
  return client;
}

beforeAll(async () => {
  ts = await startTestStore();
  const writer = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, now: () => NOW });
  await writer.writeFlows(FLOWS, "seed");
  const candidate = (f: FlowRecord, at: string): AlertCandidate => ({
    key: {
      cluster: CLUSTER,
      src: `${f.src.namespace}/Deployment/${f.src.workload?.name}`,
      dst: `${f.dst.namespace}/Deployment/${f.dst.workload?.name}`,
      protocol: f.protocol,
      dstPort: f.dstPort,
    },
    src: f.src,
    dst: f.dst,
    direction: f.direction,
    reporter: f.reporter,
    policy: null,
    hits: f.packets,
    firstSeen: at,
    lastSeen: at,
    severity: "high",
    reason: "internal-denial",
  });
  const internal = FLOWS.filter((f) => f.internal);
  for (const [i, f] of internal.entries()) {
    await writer.applyAlerts([candidate(f, f.firstSeen)], `seed-alert-${i}`, { windowMs: 15 * 60_000 });
  }
  runtime = {
    store: new DynamoFlowStore({
      client: recording(ts.clientFor()),
      tableName: ts.tableName,
      now: () => NOW,
    }),
    cluster: CLUSTER,
    now: () => NOW,
  };
});

afterAll(async () => {
  await ts?.close();
});

/** Follows cursors to the end; every page is a separate proxy event, as a client would send. */
async function all<T>(path: string, query: Record<string, string>): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r = await handleQuery(event(path, cursor === null ? query : { ...query, cursor }), runtime);
    expect(r.statusCode, r.body).toBe(200);
    const b = body<T>(r);
    items.push(...b.items);
    cursor = b.cursor;
    pages++;
  } while (cursor !== null && pages < 100);
  return { items, pages };
}

const ids = (flows: readonly FlowRecord[]) => flows.map((f) => f.id).sort();
const window = { since: "2026-04-19T04:00:00.000Z", until: "2026-04-19T07:00:00.000Z" };
/**
 * The first two hours, which hold the flows with an external end: a range read in one page of two Queries. It starts
 * a minute into the first: the query function reads a range from up to a minute before it (createRuntime), which
 * from the hour's first minute is the hour before, a third partition.
 */
const twoHours = { since: "2026-04-19T04:01:00.000Z", until: "2026-04-19T05:59:59.999Z" };

describe("GET /flows", () => {
  it("pages through a time range across hour partitions with opaque cursors, each flow once", async () => {
    const { items, pages } = await all<FlowRecord>("/flows", { ...window, limit: "3" });
    expect(ids(items)).toEqual(ids(FLOWS));
    expect(pages).toBeGreaterThanOrEqual(3);
    const stored = items.find((f) => f.id === FLOWS[0]?.id);
    // The flow record of DESIGN.md §3.3, as stored.
    expect(stored).toMatchObject({
      src: {
        ip: web.ip,
        kind: "pod",
        namespace: "customer-a",
        workload: { kind: "Deployment", name: "web" },
      },
      dst: { ip: db.ip, namespace: "customer-b" },
      protocol: "TCP",
      dstPort: 5432,
      direction: "ingress",
      reporter: "ip-192-168-74-5",
      internal: true,
      packets: 3,
      bytes: 180,
    });
  });

  it("answers with JSON, no caching, and cursor null on the last page", async () => {
    const hour = { since: "2026-04-19T04:00:00.000Z", until: "2026-04-19T04:59:59.999Z" };
    const r = await handleQuery(event("/flows", { ...hour, limit: "1000" }), runtime);
    expect(r.statusCode).toBe(200);
    expect(r.headers).toMatchObject({ "content-type": "application/json", "cache-control": "no-store" });
    expect(body(r).cursor).toBeNull();
    expect(ids(body<FlowRecord>(r).items)).toEqual(ids(FLOWS.slice(0, 3)));
  });

  it("keeps the first page's window for relative times, so later pages stay valid as the clock moves", async () => {
    let now = Date.parse("2026-04-19T07:00:00.000Z");
    const moving: QueryRuntime = { ...runtime, now: () => now };
    const first = await handleQuery(event("/flows", { since: "3h", limit: "3" }), moving);
    expect(first.statusCode).toBe(200);
    const items = [...body<FlowRecord>(first).items];
    let cursor = body(first).cursor;
    while (cursor !== null) {
      now += 90_000;
      const next = await handleQuery(event("/flows", { since: "3h", limit: "3", cursor }), moving);
      expect(next.statusCode, next.body).toBe(200);
      items.push(...body<FlowRecord>(next).items);
      cursor = body(next).cursor;
    }
    expect(ids(items)).toEqual(ids(FLOWS));
  });

  it("filters by namespace on either end, by workload and pod within it", async () => {
    const ns = await all<FlowRecord>("/flows", { ...window, namespace: "customer-b", limit: "2" });
    expect(ids(ns.items)).toEqual(
      ids(FLOWS.filter((f) => f.src.namespace === "customer-b" || f.dst.namespace === "customer-b")),
    );
    const workload = await all<FlowRecord>("/flows", {
      ...window,
      namespace: "customer-a",
      workload: "Deployment/api",
    });
    expect(ids(workload.items)).toEqual(ids(FLOWS.filter((f) => f.src === api || f.dst === api)));
    const byPod = await all<FlowRecord>("/flows", {
      ...window,
      namespace: "customer-a",
      pod: web.name as string,
    });
    expect(ids(byPod.items)).toEqual(ids(FLOWS.filter((f) => f.src === web || f.dst === web)));
  });

  it("filters by IP (IPv6 in any spelling) and by internal", async () => {
    const byIp = await all<FlowRecord>("/flows", { ...window, ip: "2001:0DB8:0:0:0:0:0:0007" });
    expect(ids(byIp.items)).toEqual(ids(FLOWS.filter((f) => f.src === v6 || f.dst === v6)));
    const notInternal = await all<FlowRecord>("/flows", { ...window, internal: "false" });
    expect(ids(notInternal.items)).toEqual(ids(FLOWS.filter((f) => !f.internal)));
    const internal = await all<FlowRecord>("/flows", { ...window, internal: "true", limit: "2" });
    expect(ids(internal.items)).toEqual(ids(FLOWS.filter((f) => f.internal)));
  });

  it("bounds the range inclusively on the bucket", async () => {
    const r = await all<FlowRecord>("/flows", {
      since: FLOWS[3]?.bucket as string,
      until: FLOWS[5]?.bucket as string,
    });
    expect(ids(r.items)).toEqual(ids(FLOWS.slice(3, 6)));
  });

  it.each([
    [{ limit: "0" }, "limit"],
    [{ limit: "1001" }, "limit"],
    [{ limit: "ten" }, "limit"],
    [{ limit: "1e2" }, "limit"],
    [{ limit: "0x10" }, "limit"],
    [{ limit: " 5" }, "limit"],
    [{ limit: "" }, "limit"],
    [{ since: "yesterday" }, "since"],
    [{ since: "1" }, "since"],
    [{ since: "200000000d" }, "since"],
    [{ until: "99999999999w" }, "until"],
    [{ until: "2026-13-45" }, "until"],
    [{ since: "2026-04-19T08:00:00Z", until: "2026-04-19T07:00:00Z" }, "since"],
    [{ namespace: "Customer_A" }, "namespace"],
    [{ workload: "web" }, "workload"],
    [{ pod: "web-1" }, "pod"],
    [{ namespace: "customer-a", workload: "Deployment/web/x" }, "workload"],
    [{ ip: "192.168.1.256" }, "ip"],
    [{ internal: "yes" }, "internal"],
    [{ namspace: "customer-a" }, "namspace"],
    [{ cursor: "not-a-cursor!" }, "cursor"],
    [{ namespace: ["customer-a", "customer-b"] }, "namespace"],
  ] as [Record<string, string | string[]>, string][])(
    "refuses %j with 400 naming %s",
    async (query, parameter) => {
      const r = await handleQuery(event("/flows", query), runtime);
      expect(r.statusCode).toBe(400);
      const b = body(r);
      expect(b.parameter).toBe(parameter);
      expect(b.message).toContain(parameter);
    },
  );

  it("refuses a cursor issued for another query", async () => {
    const first = await handleQuery(event("/flows", { ...window, limit: "2" }), runtime);
    const cursor = body(first).cursor as string;
    const r = await handleQuery(
      event("/flows", { ...window, limit: "2", namespace: "customer-a", cursor }),
      runtime,
    );
    expect(r.statusCode).toBe(400);
    expect(body(r).parameter).toBe("cursor");
  });
});

describe("addresses and buckets as the flows were stored", () => {
  it("finds a flow logged with IPv4-mapped addresses by every spelling of either address", async () => {
    // Dual-stack servers log IPv4 peers as ::ffff:a.b.c.d; attribution reads them as their IPv4 address.
    const cluster = "dual-stack";
    const f: FlowRecord = {
      ...flow(
        1,
        pod("::ffff:192.168.22.248", "customer-a", "web", "web-0"),
        external("::ffff:203.0.113.7"),
        443,
      ),
      cluster,
    };
    await new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, now: () => NOW }).writeFlows(
      [f],
      "mapped",
    );
    const spellings = [
      "::ffff:192.168.22.248",
      "::FFFF:192.168.22.248",
      "0:0:0:0:0:ffff:c0a8:16f8",
      "192.168.22.248",
      "::ffff:203.0.113.7",
      "203.0.113.7",
    ];
    for (const ip of spellings) {
      const r = await handleQuery(event("/flows", { ...window, ip }), { ...runtime, cluster });
      expect({ ip, status: r.statusCode, ids: ids(body<FlowRecord>(r).items) }).toEqual({
        ip,
        status: 200,
        ids: [f.id],
      });
    }
  });

  it("finds flows counted before aggregationSeconds changed, reading at most a minute before the range", async () => {
    const cluster = "resized";
    const bucket = "2026-04-19T04:01:00.000Z";
    // Counted in 60-s buckets before the change: one flow with packets in the range, one with packets before it.
    const counted = (name: string, firstSeen: string, lastSeen: string): FlowRecord => ({
      ...flow(0, web, pod(`192.168.40.${name.length}`, "customer-b", name, `${name}-0`), 5432),
      id: digest(`resized|${name}`),
      cluster,
      bucket,
      firstSeen,
      lastSeen,
    });
    const inRange = counted("db", "2026-04-19T04:01:35.000Z", "2026-04-19T04:01:55.000Z");
    const before = counted("cache", "2026-04-19T04:01:05.000Z", "2026-04-19T04:01:20.000Z");
    await new DynamoFlowStore({
      client: ts.client,
      tableName: ts.tableName,
      bucketSeconds: 60,
      now: () => NOW,
    }).writeFlows([inRange, before], "sixty-second-buckets");
    const range = { since: "2026-04-19T04:01:40.000Z", until: "2026-04-19T04:01:50.000Z" };
    {
      // Where each Query's sort-key range starts.
      const from: string[] = [];
      const client = ts.clientFor();
      client.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as { KeyConditionExpression?: string; ExpressionAttributeValues?: object };
          const low = /BETWEEN (:\w+) AND/.exec(input.KeyConditionExpression ?? "")?.[1] as string;
          const value = (input.ExpressionAttributeValues as Record<string, string | { S: string }>)[low];
          from.push(typeof value === "string" ? value : (value?.S as string));
          return next(args);
        },
        { step: "build", name: "recordRangeStarts" },
      );
      const resized = createRuntime({ TABLE_NAME: ts.tableName, CLUSTER_NAME: cluster }, undefined, client);
      for (const q of [range, { ...range, namespace: "customer-a" }]) {
        const r = await handleQuery(event("/flows", q), resized);
        expect({ q, status: r.statusCode, ids: ids(body<FlowRecord>(r).items) }).toEqual({
          q,
          status: 200,
          ids: [inRange.id],
        });
      }
      expect(from.length).toBeGreaterThan(0);
      for (const start of from) {
        expect(start <= bucket && Date.parse(range.since) - Date.parse(start) <= 60_000, start).toBe(true);
      }
    }
  });
});

describe("GET /alerts", () => {
  it("lists the alerts opened in a time range, paging with cursors", async () => {
    const { items } = await all<AlertRecord>("/alerts", { ...window, limit: "2" });
    const internal = FLOWS.filter((f) => f.internal);
    expect(items).toHaveLength(internal.length);
    expect(new Set(items.map((a) => a.id)).size).toBe(items.length);
    expect(items.every((a) => a.cluster === CLUSTER && a.severity === "high")).toBe(true);
    const first = await all<AlertRecord>("/alerts", {
      since: window.since,
      until: "2026-04-19T04:30:00.000Z",
    });
    expect(first.items.map((a) => a.dstPort).sort()).toEqual([5432, 5432]);
  });

  it("takes only time-range parameters", async () => {
    const r = await handleQuery(event("/alerts", { namespace: "customer-a" }), runtime);
    expect(r.statusCode).toBe(400);
    expect(body(r).parameter).toBe("namespace");
  });
});

describe("pages", () => {
  it("name the cluster they answer for, an empty page too", async () => {
    // A client told to read another cluster's records tells this stack from a quiet range of that cluster by it.
    const quiet = { since: "2026-04-19T10:00:00.000Z", until: "2026-04-19T11:00:00.000Z" };
    for (const path of ["/flows", "/alerts"]) {
      const full = body(await handleQuery(event(path, window), runtime));
      const empty = body(await handleQuery(event(path, quiet), runtime));
      expect({ path, full: full.cluster, empty: empty.cluster, records: empty.items.length }).toEqual({
        path,
        full: CLUSTER,
        empty: CLUSTER,
        records: 0,
      });
    }
  });
});

describe("routing", () => {
  it("answers 404 for other paths and 405 for other methods", async () => {
    expect((await handleQuery(event("/panic"), runtime)).statusCode).toBe(404);
    const post = await handleQuery(event("/flows", {}, "POST"), runtime);
    expect(post.statusCode).toBe(405);
    expect(post.headers).toMatchObject({ allow: "GET" });
  });

  it("accepts HTTP API (payload 2.0) events too", async () => {
    const v2 = {
      version: "2.0",
      routeKey: "GET /flows",
      rawPath: "/flows",
      rawQueryString: "internal=false",
      headers: {},
      queryStringParameters: { ...twoHours, internal: "false" },
      isBase64Encoded: false,
      requestContext: { http: { method: "GET", path: "/flows" }, requestId: "r2" },
    } as unknown as APIGatewayProxyEvent;
    const r = await handleQuery(v2, runtime);
    expect(r.statusCode).toBe(200);
    expect(ids(body<FlowRecord>(r).items)).toEqual(ids(FLOWS.filter((f) => !f.internal)));
  });
});

describe("access patterns", () => {
  it("never scans the table", async () => {
    expect(commands.length).toBeGreaterThan(0);
    expect(commands.filter((c) => c !== "QueryCommand")).toEqual([]);
  });
});

describe("the Lambda entry point", () => {
  it("reads its configuration from the environment and serves through middy", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      TABLE_NAME: ts.tableName,
      CLUSTER_NAME: CLUSTER,
      AWS_ENDPOINT_URL_DYNAMODB: ts.endpoint,
      POWERTOOLS_METRICS_DISABLED: "true",
    });
    try {
      const { handler } = await import("../../functions/query/handler.ts");
      const context = {
        functionName: "calico-flows-query",
        functionVersion: "$LATEST",
        invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:calico-flows-query",
        memoryLimitInMB: "256",
        awsRequestId: "req-1",
        getRemainingTimeInMillis: () => QUERY_TIMEOUT_SECONDS * 1000,
      } as unknown as Context;
      const r = (await handler(
        event("/flows", { ...twoHours, internal: "false" }),
        context,
      )) as APIGatewayProxyResult;
      expect(r.statusCode, r.body).toBe(200);
      expect(ids(body<FlowRecord>(r).items)).toEqual(ids(FLOWS.filter((f) => !f.internal)));
      const bad = (await handler(event("/flows", { limit: "-1" }), context)) as APIGatewayProxyResult;
      expect(bad.statusCode).toBe(400);
    } finally {
      process.env = saved;
    }
  });
});

describe("the query function's time budget", () => {
  it("keeps back from the invocation a whole try and time to answer, leaving most of it to the page", () => {
    const perTry = STORE_REQUEST_TIMEOUTS.connectionTimeout + STORE_REQUEST_TIMEOUTS.requestTimeout;
    // A try started just before the deadline ends by its client's timeouts, inside what is kept back.
    expect(ANSWER_RESERVE_MS).toBeGreaterThan(perTry);
    // A Query whose first try hangs to the client's timeouts is still tried again, after its backoff, in time.
    expect(QUERY_TIMEOUT_SECONDS * 1000 - ANSWER_RESERVE_MS).toBeGreaterThan(perTry + QUERY_RETRY.maxDelayMs);
  });

  // DynamoDB slow, scaled down: each Query's first two tries hang past the client's request timeout and its third
  // is answered late. A page of two Queries one after the other (hour or day markers, then a partition) used to
  // give each the whole retry budget and answer after both, past the function's timeout at full scale (29–30 s).
  const TRY_MS = 400;
  const LATE_MS = 300;
  const DEADLINE_MS = 1_000;

  async function slowDynamo(): Promise<{ endpoint: string; close: () => Promise<void> }> {
    const target = new URL(ts.endpoint);
    const sockets = new Set<Socket>();
    let queries = 0;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1];
        if (operation === "Query" && queries++ % 3 !== 2) return;
        await new Promise((resolve) => setTimeout(resolve, LATE_MS));
        const answer = await forward(
          target,
          req.method ?? "POST",
          req.url ?? "/",
          req.headers,
          Buffer.concat(chunks),
        );
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      });
    });
    server.on("connection", (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  it.each([
    ["/flows", window],
    ["/alerts", window],
  ])(
    "answers a slow page of %s with a counted 500 by its deadline, not after both Queries",
    async (path, range) => {
      const slow = await slowDynamo();
      const client = storeClient({
        endpoint: slow.endpoint,
        region: "local",
        credentials: { accessKeyId: "test", secretAccessKey: "test" },
        requestHandler: { connectionTimeout: TRY_MS, requestTimeout: TRY_MS, throwOnRequestTimeout: true },
      });
      const addMetric = vi.spyOn(metrics, "addMetric");
      const error = vi.spyOn(logger, "error").mockImplementation(() => {});
      try {
        const context = { getRemainingTimeInMillis: () => ANSWER_RESERVE_MS + DEADLINE_MS };
        const started = Date.now();
        const slowRuntime = createRuntime(
          { TABLE_NAME: ts.tableName, CLUSTER_NAME: CLUSTER },
          invocationDeadline(context),
          client,
        );
        const request = event(path, range);
        const r = await handleQuery(request, slowRuntime);
        // Past the deadline only the try it had started (one request timeout), never a second Query's three.
        expect(Date.now() - started).toBeLessThan(DEADLINE_MS + TRY_MS + 300);
        expect(r.statusCode, r.body).toBe(500);
        expect(body(r)).toMatchObject({
          message: "internal error",
          requestId: request.requestContext.requestId,
        });
        expect(addMetric).toHaveBeenCalledWith("QueryFailures", MetricUnit.Count, 1);
        expect(error).toHaveBeenCalledWith("query failed", expect.anything());
      } finally {
        addMetric.mockRestore();
        error.mockRestore();
        client.destroy();
        await slow.close();
      }
    },
  );
});
