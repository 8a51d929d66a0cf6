// Review of the ingest Lambda's promises through its real middy handler (Powertools Logger/Metrics, EMF on
// stdout), with real gzip+base64 payloads against dynalite, behind the fault proxy where faults are needed.
// Every expected figure is computed here from the payload the test built, never read back from the code.
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { CreateTableCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import type { CloudWatchLogsEvent, Context } from "aws-lambda";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { createTableInput } from "../../functions/adapters/dynamo/schema.ts";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { createScanner } from "../../functions/core/parse.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { STORE_RESERVE_MS } from "../../functions/ingest/config.ts";
import { controlMessageData } from "../support/deliveries.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import {
  createTopic,
  drainQueue,
  type LocalSns,
  startLocalSns,
  startFaultProxy as startSnsProxy,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";

const T0 = Date.parse("2026-04-19T04:50:00Z");
/** The stack's API, as CDK gives it to the function. */
const API_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/";
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const REPORTER = "ip-192-168-74-5";
const GROUP = "/aws/eks/prod/nodes";
const INTERNAL = ["192.168.1.10", "192.168.1.11", "192.168.2.20", "192.168.3.30"];
const EXTERNAL = ["203.0.113.7", "198.51.100.9"];
const isInternal = (ip: string) => ip.startsWith("192.168.");

type Line =
  | { kind: "calico"; src: string; dst: string; proto: "TCP" | "UDP"; dport: number; len: number; at: number }
  | { kind: "other"; at: number }
  | { kind: "malformed"; at: number };

function message(l: Line): string {
  const stamp = "Apr 19 04:52:19";
  if (l.kind === "other") return `${stamp} ${REPORTER} kubelet[1]: not a calico line`;
  if (l.kind === "malformed") return `${stamp} ${REPORTER} kernel: calico-packet: IN=eth0 SRC=192.168.`;
  const head = `${stamp} ${REPORTER} kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${l.src} DST=${l.dst} LEN=${l.len} TOS=0x00 PREC=0x00 TTL=63 ID=52641 DF`;
  return l.proto === "TCP"
    ? `${head} PROTO=TCP SPT=40000 DPT=${l.dport} WINDOW=62727 RES=0x00 SYN URGP=0`
    : `${head} PROTO=UDP SPT=40000 DPT=${l.dport} LEN=${l.len - 20}`;
}

let nextId = 10_000_000;
type CwEvent = { id: string; timestamp: number; message: string };

function eventsOf(lines: readonly Line[]): CwEvent[] {
  return lines.map((l) => ({ id: String(nextId++).padStart(56, "0"), timestamp: l.at, message: message(l) }));
}

function dataOf(events: CwEvent[], stream = REPORTER, messageType = "DATA_MESSAGE"): string {
  return encodeSubscriptionData({
    messageType,
    owner: "123456789012",
    logGroup: GROUP,
    logStream: stream,
    subscriptionFilters: ["calico-packet"],
    logEvents: events as [CwEvent, ...CwEvent[]],
  });
}

const eventOf = (data: string): CloudWatchLogsEvent => ({ awslogs: { data } });

/** What the payload must produce, computed from the lines alone. */
function expected(lines: readonly Line[]) {
  const calico = lines.filter((l) => l.kind === "calico");
  const flows = new Set(
    calico.map((l) => `${Math.floor(l.at / 60_000)}|${l.src}|${l.dst}|${l.proto}|${l.dport}`),
  );
  const internal = calico.filter((l) => isInternal(l.src) && isInternal(l.dst));
  const alerts = new Set(internal.map((l) => `${l.src}|${l.dst}|${l.proto}|${l.dport}`));
  const addresses = new Set(calico.flatMap((l) => [l.src, l.dst]).filter(isInternal));
  return {
    lines: lines.length,
    calico: calico.length,
    malformed: lines.filter((l) => l.kind === "malformed").length,
    flows: flows.size,
    alerts: alerts.size,
    internalHits: internal.length,
    // Attribution off: every internal address is one unresolved endpoint, and none is a miss.
    unresolved: addresses.size,
    packets: calico.length,
    bytes: calico.reduce((n, l) => n + l.len, 0),
  };
}

// ---- invoking the handler and reading what it printed ----

const context = (remainingMs = 60_000): Context =>
  ({
    functionName: "ingest",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:ingest",
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: "/aws/lambda/ingest",
    logStreamName: "stream",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => remainingMs,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  }) as Context;

type Handler = (event: CloudWatchLogsEvent, context: Context) => Promise<unknown>;

interface Invocation {
  error: Error | undefined;
  /** Every metric of the EMF blobs printed, summed by name (ColdStart left out). */
  metrics: Record<string, number>;
  /** The namespace of each EMF blob. */
  namespaces: string[];
  /** Each dimension set of each EMF blob, with its values. */
  dimensions: Record<string, unknown>[];
  logs: Record<string, unknown>[];
}

function parseOutput(text: string): Omit<Invocation, "error"> {
  const metrics: Record<string, number> = {};
  const namespaces: string[] = [];
  const dimensions: Record<string, unknown>[] = [];
  const logs: Record<string, unknown>[] = [];
  for (const raw of text.split("\n")) {
    if (!raw.startsWith("{")) continue;
    const record = JSON.parse(raw) as Record<string, unknown>;
    const aws = record._aws as
      | {
          CloudWatchMetrics: {
            Namespace: string;
            Dimensions: string[][];
            Metrics: { Name: string; Unit: string }[];
          }[];
        }
      | undefined;
    if (aws === undefined) {
      logs.push(record);
      continue;
    }
    for (const directive of aws.CloudWatchMetrics) {
      namespaces.push(directive.Namespace);
      for (const names of directive.Dimensions)
        dimensions.push(Object.fromEntries(names.map((n) => [n, record[n]])));
      for (const { Name, Unit } of directive.Metrics) {
        if (Name === "ColdStart") continue;
        expect(Unit).toBe("Count");
        const value = record[Name] as number | number[];
        const sum = Array.isArray(value) ? value.reduce((a, b) => a + b, 0) : value;
        metrics[Name] = (metrics[Name] ?? 0) + sum;
      }
    }
  }
  return { metrics, namespaces, dimensions, logs };
}

async function invoke(
  handler: Handler,
  event: CloudWatchLogsEvent,
  remainingMs?: number,
): Promise<Invocation> {
  const chunks: string[] = [];
  const capture = (chunk: unknown) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture as typeof process.stderr.write);
  let error: Error | undefined;
  try {
    await handler(event, context(remainingMs));
  } catch (e) {
    error = e as Error;
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { error, ...parseOutput(chunks.join("")) };
}

/**
 * The metrics a stored DATA_MESSAGE must print, as counted from its lines. Its lines are counted once over the runs
 * of the payload: delivered by its first run, stored by the run that stores its flows (`lines`).
 */
function metricsFor(
  e: ReturnType<typeof expected>,
  stored: { written: number; duplicate: number },
  lines: { seen: boolean; stored: boolean } = { seen: true, stored: true },
) {
  return {
    LinesSeen: lines.seen ? e.lines : 0,
    CalicoLines: lines.stored ? e.calico : 0,
    MalformedLines: lines.seen ? e.malformed : 0,
    FlowsWritten: stored.written,
    DuplicateFlows: stored.duplicate,
    EventsAlreadyCounted: 0,
    AttributionMisses: 0,
    UnresolvedEndpoints: e.unresolved,
    KubernetesApiCalls: 0,
  };
}

// ---- the store, read independently ----

let ts: TestStore;
let proxy: FaultProxy;
let sns: LocalSns;

beforeAll(async () => {
  [ts, sns] = await Promise.all([startTestStore(), startLocalSns()]);
  proxy = await startFaultProxy(ts.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await Promise.all([ts?.close(), sns?.close()]);
});
afterEach(() => {
  proxy.setPlan({});
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

async function newTable(): Promise<string> {
  const tableName = `t-${randomUUID()}`;
  await ts.client.send(new CreateTableCommand(createTableInput(tableName)));
  return tableName;
}

/** The real handler module, fresh (its configuration and clients are built once per container). */
async function coldHandler(
  tableName: string,
  endpoint: string,
  topicArn?: string,
  snsEndpoint = sns.endpoint,
): Promise<Handler> {
  if (topicArn !== undefined) {
    vi.stubEnv("ALERTS_TOPIC_ARN", topicArn);
    vi.stubEnv("AWS_ENDPOINT_URL_SNS", snsEndpoint);
    vi.stubEnv("API_URL", API_URL);
  }
  vi.stubEnv("CLUSTER_NAME", "prod");
  vi.stubEnv("TABLE_NAME", tableName);
  vi.stubEnv("ATTRIBUTION", "none");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", endpoint);
  vi.stubEnv("POWERTOOLS_METRICS_NAMESPACE", "CalicoFlowsReview");
  vi.resetModules();
  const { handler } = await import("../../functions/ingest/handler.ts");
  return handler as Handler;
}

function reader(tableName: string): DynamoFlowStore {
  return new DynamoFlowStore({ client: ts.clientFor(), tableName });
}

async function flowsIn(store: DynamoFlowStore, from: number, to: number): Promise<FlowRecord[]> {
  const out: FlowRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryFlows({ cluster: "prod", since: iso(from), until: iso(to), cursor });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

async function alertsIn(store: DynamoFlowStore, from: number, to: number): Promise<AlertRecord[]> {
  const out: AlertRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryAlerts({ cluster: "prod", since: iso(from), until: iso(to), cursor });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

/** Every item of the table, as a sorted list of JSON texts: the whole stored state. */
async function tableState(tableName: string): Promise<string[]> {
  const items: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await ts.client.send(
      new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: start as never }),
    );
    for (const item of page.Items ?? []) items.push(JSON.stringify(item, Object.keys(item).sort()));
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return items.sort();
}

const sum = <T>(xs: readonly T[], f: (x: T) => number) => xs.reduce((n, x) => n + f(x), 0);

async function checkStored(store: DynamoFlowStore, from: number, to: number, e: ReturnType<typeof expected>) {
  const flows = await flowsIn(store, from, to);
  expect(flows).toHaveLength(e.flows);
  expect(sum(flows, (f) => f.packets)).toBe(e.packets);
  expect(sum(flows, (f) => f.bytes)).toBe(e.bytes);
  const alerts = await alertsIn(store, from, to);
  expect(alerts).toHaveLength(e.alerts);
  expect(sum(alerts, (a) => a.count)).toBe(e.internalHits);
}

// ---- payload contents ----

/** Lines of one payload, within ten minutes of `base` (one alert window). */
const linesArb = (base: number) =>
  fc.array(
    fc.oneof(
      { weight: 8, arbitrary: calicoArb(base) },
      {
        weight: 1,
        arbitrary: fc
          .integer({ min: 0, max: 599_999 })
          .map((o) => ({ kind: "other" as const, at: base + o })),
      },
      {
        weight: 1,
        arbitrary: fc
          .integer({ min: 0, max: 599_999 })
          .map((o) => ({ kind: "malformed" as const, at: base + o })),
      },
    ),
    { minLength: 1, maxLength: 60 },
  );

function calicoArb(base: number): fc.Arbitrary<Line> {
  const ip = fc.constantFrom(...INTERNAL, ...EXTERNAL);
  return fc.record({
    kind: fc.constant("calico" as const),
    src: ip,
    dst: ip,
    proto: fc.constantFrom("TCP" as const, "UDP" as const),
    dport: fc.constantFrom(22, 53, 5432),
    len: fc.integer({ min: 40, max: 1500 }),
    at: fc.integer({ min: 0, max: 599_999 }).map((o) => base + o),
  });
}

describe("ingest handler (review)", () => {
  it("prints EMF metrics that match each payload, and a redelivery changes no stored count", async () => {
    const tableName = await newTable();
    // As deployed: alerts go to an SNS topic (here fauxqs), read back from a subscribed queue.
    const topicArn = await createTopic(sns, `alerts-${randomUUID()}`);
    const queueUrl = await subscribeQueue(sns, topicArn, `q-${randomUUID()}`);
    const handler = await coldHandler(tableName, ts.endpoint, topicArn);
    const store = reader(tableName);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(linesArb(0), async (generated) => {
        // Each run in days of its own: its flows and alerts are read back by time.
        const base = T0 + ++run * 3 * DAY;
        const lines = generated.map((l) => ({ ...l, at: l.at + base }));
        const e = expected(lines);
        const event = eventOf(dataOf(eventsOf(lines)));

        const first = await invoke(handler, event);
        expect(first.error).toBeUndefined();
        expect(first.namespaces.every((n) => n === "CalicoFlowsReview")).toBe(true);
        // Each metric names its cluster, which the stack's alarms select (lib/monitoring.ts).
        expect(first.dimensions.length).toBeGreaterThan(0);
        for (const d of first.dimensions) expect(d).toMatchObject({ cluster: "prod" });
        expect(first.metrics).toMatchObject(metricsFor(e, { written: e.flows, duplicate: 0 }));
        expect(first.metrics.AlertsRaised).toBe(e.alerts);
        const published = await drainQueue(sns, queueUrl);
        expect(published).toHaveLength(e.alerts);
        // The e-mails' commands reach the stack's store through its API.
        for (const m of published)
          expect(structureOf(m).email).toContain(`calico-flows flows --api ${API_URL} `);
        await checkStored(store, base - DAY, base + DAY, e);
        const before = await tableState(tableName);

        const again = await invoke(handler, event);
        expect(again.error).toBeUndefined();
        // Its lines were counted by the first delivery: a redelivery is not told from a retry of a run that counted them.
        expect(again.metrics).toMatchObject(
          metricsFor(e, { written: 0, duplicate: e.flows }, { seen: false, stored: false }),
        );
        // Nothing was raised by the redelivery: the alerts were the first delivery's.
        expect(again.metrics.AlertsRaised).toBe(0);
        expect(await drainQueue(sns, queueUrl)).toHaveLength(0);
        expect(await tableState(tableName)).toEqual(before);
        await checkStored(store, base - DAY, base + DAY, e);
      }),
      { numRuns: 8, seed: 20260419 },
    );
  });

  it("counts an alert raised by the delivery that opened it, not by the later one that delivers it", async () => {
    const tableName = await newTable();
    const topicArn = await createTopic(sns, `alerts-${randomUUID()}`);
    const queueUrl = await subscribeQueue(sns, topicArn, `q-${randomUUID()}`);
    let snsDown = true;
    const snsProxy = await startSnsProxy(sns.endpoint, (p) =>
      snsDown && p.get("Action") === "Publish" ? "fail" : "forward",
    );
    // The store's wall clock (read when the runtime is made, at the first invocation), moved on below.
    const realNow = Date.now;
    let later = 0;
    vi.spyOn(Date, "now").mockImplementation(() => realNow() + later);
    try {
      const handler = await coldHandler(tableName, ts.endpoint, topicArn, snsProxy.endpoint);
      const base = T0 + 70 * DAY;
      const denial = (at: number): Line => ({
        kind: "calico",
        src: "192.168.1.10",
        dst: "192.168.2.20",
        proto: "TCP",
        dport: 5432,
        len: 60,
        at,
      });
      const opening = eventOf(dataOf(eventsOf([denial(base), { kind: "other", at: base + 1 }])));

      // The first delivery opens the alert; SNS is down, so it stays pending and the payload fails.
      const first = await invoke(handler, opening);
      expect(first.error?.name).toBe("AlertDeliveryError");
      expect(first.metrics.AlertsRaised).toBe(1);
      expect(await drainQueue(sns, queueUrl)).toHaveLength(0);

      // SNS is back. A minute later another payload's hit of the same key folds into that window and, the
      // alert being still pending, delivers it: it raised nothing.
      snsDown = false;
      later += 61_000;
      const second = await invoke(handler, eventOf(dataOf(eventsOf([denial(base + 60_000)]))));
      expect(second.error).toBeUndefined();
      expect(second.metrics.AlertsRaised).toBe(0);
      const published = await drainQueue(sns, queueUrl);
      expect(published).toHaveLength(1);
      expect(published[0]?.Body).toContain("192.168.2.20");

      // Lambda retries the first payload: nothing raised, nothing published again.
      const retried = await invoke(handler, opening);
      expect(retried.error).toBeUndefined();
      expect(retried.metrics.AlertsRaised).toBe(0);
      expect(await drainQueue(sns, queueUrl)).toHaveLength(0);
      const alerts = await alertsIn(reader(tableName), base - DAY, base + DAY);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({ count: 2, delivery: "sent" });
    } finally {
      await snsProxy.close();
    }
  });

  it("counts an alert raised once without a topic, and leaves it pending for a delivery that can publish", async () => {
    const tableName = await newTable();
    const realNow = Date.now;
    let later = 0;
    vi.spyOn(Date, "now").mockImplementation(() => realNow() + later);
    const handler = await coldHandler(tableName, ts.endpoint);
    const base = T0 + 75 * DAY;
    const denial = (at: number): Line => ({
      kind: "calico",
      src: "192.168.1.11",
      dst: "192.168.3.30",
      proto: "UDP",
      dport: 53,
      len: 80,
      at,
    });
    const handedOut = (run: Invocation) =>
      run.logs.find((l) => l.message === "payload stored")?.alertsHandedOut;
    const opening = eventOf(dataOf(eventsOf([denial(base)])));
    const first = await invoke(handler, opening);
    expect(first.error).toBeUndefined();
    expect(first.metrics.AlertsRaised).toBe(1);
    expect(handedOut(first)).toBe(1);
    // Nobody publishes it, and a function without a topic takes no lease on handing it out: the deliveries that fold
    // in a minute or more later count its hits and hand out nothing, nor do their redeliveries.
    for (let k = 1; k <= 3; k++) {
      later += 61_000;
      const fold = eventOf(dataOf(eventsOf([denial(base + k * 60_000)])));
      const run = await invoke(handler, fold);
      expect(run.error).toBeUndefined();
      expect(run.metrics.AlertsRaised).toBe(0);
      expect(handedOut(run)).toBe(0);
      expect((await invoke(handler, fold)).metrics.AlertsRaised).toBe(0);
    }
    // A redelivery of the payload that opened it counts it no more.
    later += 61_000;
    const again = await invoke(handler, opening);
    expect(again.metrics.AlertsRaised).toBe(0);
    const alerts = await alertsIn(reader(tableName), base - DAY, base + DAY);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ count: 4, delivery: "pending" });
  });

  it("fails every kind of corrupt payload with its own error and one CorruptPayloads metric, storing nothing", async () => {
    const tableName = await newTable();
    const handler = await coldHandler(tableName, ts.endpoint);
    const good = eventsOf([{ kind: "other", at: T0 }]);
    const gz = (text: string) => gzipSync(text).toString("base64");
    const whole = gzipSync(JSON.stringify({ messageType: "DATA_MESSAGE", logEvents: good }));
    const envelope = {
      owner: "1",
      logGroup: GROUP,
      logStream: REPORTER,
      subscriptionFilters: ["calico-packet"],
    };
    const cases: { name: string; event: CloudWatchLogsEvent; error: string }[] = [
      {
        name: "no awslogs",
        event: {} as CloudWatchLogsEvent,
        error: "awslogs.data is missing or not a string",
      },
      { name: "empty data", event: eventOf(""), error: "awslogs.data is missing or not a string" },
      { name: "not base64", event: eventOf("this is *not* base64!"), error: "awslogs.data is not base64" },
      {
        name: "base64 of plain text",
        event: eventOf(Buffer.from('{"messageType":"DATA_MESSAGE"}').toString("base64")),
        error: "awslogs.data is not gzip",
      },
      {
        name: "truncated gzip",
        event: eventOf(whole.subarray(0, whole.length - 12).toString("base64")),
        error: "awslogs.data is not gzip",
      },
      { name: "gzip of text", event: eventOf(gz("{not json")), error: "awslogs.data does not hold JSON" },
      {
        name: "JSON without events",
        event: eventOf(gz(JSON.stringify({ messageType: "DATA_MESSAGE", ...envelope }))),
        error: "awslogs.data is not a subscription payload: logEvents: expected an array",
      },
      {
        name: "no event",
        event: eventOf(gz(JSON.stringify({ messageType: "DATA_MESSAGE", ...envelope, logEvents: [] }))),
        error: "logEvents: expected at least one event",
      },
      {
        name: "timestamp of the wrong type",
        event: eventOf(
          gz(
            JSON.stringify({
              messageType: "DATA_MESSAGE",
              ...envelope,
              logEvents: [{ id: "1", timestamp: "yesterday", message: "x" }],
            }),
          ),
        ),
        error: "logEvents.0.timestamp: expected a number",
      },
      {
        name: "envelope without a log group",
        event: eventOf(
          gz(
            JSON.stringify({
              messageType: "DATA_MESSAGE",
              owner: "1",
              logStream: "s",
              subscriptionFilters: [],
              logEvents: good,
            }),
          ),
        ),
        error: "logGroup",
      },
      {
        // CloudWatch Logs sends DATA_MESSAGE and CONTROL_MESSAGE only: anything else is not one of its payloads.
        name: "unknown message type",
        event: eventOf(dataOf(eventsOf([{ kind: "other", at: T0 }]), REPORTER, "DATA")),
        error: "messageType",
      },
      {
        name: "a JSON array",
        event: eventOf(gz("[1,2,3]")),
        error: "awslogs.data is not a subscription payload",
      },
    ];
    for (const c of cases) {
      const run = await invoke(handler, c.event);
      expect(run.error?.name, c.name).toBe("CorruptPayloadError");
      expect(run.error?.message, c.name).toContain(c.error);
      // The metric, and nothing counted as processed.
      expect(run.metrics, c.name).toEqual({ CorruptPayloads: 1 });
      // The reason is logged at error level, for the operator to see before redrive.
      const logged = run.logs.find((l) => l.level === "ERROR");
      expect(String(logged?.reason), c.name).toContain(c.error);
    }
    expect(await tableState(tableName)).toEqual([]);
  });

  it("acknowledges a CONTROL_MESSAGE, storing and counting nothing", async () => {
    const tableName = await newTable();
    const handler = await coldHandler(tableName, ts.endpoint);
    const data = controlMessageData(T0);
    const run = await invoke(handler, eventOf(data));
    expect(run.error).toBeUndefined();
    expect(run.metrics).toEqual({});
    expect(run.logs.some((l) => l.message === "control message acknowledged")).toBe(true);
    expect(await tableState(tableName)).toEqual([]);
  });

  it("fails a payload whose flows cannot be stored, and its retry completes it exactly", async () => {
    const tableName = await newTable();
    const handler = await coldHandler(tableName, proxy.endpoint);
    const store = reader(tableName);
    // 40 distinct flows (one per port), 3 lines each, 8 of them internal denials on 2 alert keys.
    const base = T0 + 40 * DAY;
    const lines: Line[] = [];
    for (let port = 1000; port < 1040; port++) {
      for (let k = 0; k < 3; k++) {
        const internal = port < 1008;
        lines.push({
          kind: "calico",
          src: internal ? (INTERNAL[port % 2] as string) : "203.0.113.7",
          dst: "192.168.2.20",
          proto: "TCP",
          dport: internal ? 5432 : port,
          len: 60 + k,
          at: base + (port - 1000) * 1_000 + k,
        });
      }
    }
    const e = expected(lines);
    expect(e.flows).toBe(34);
    const event = eventOf(dataOf(eventsOf(lines)));
    // The store takes the first 10 flow writes, then throttles every flow write: beyond the retries.
    const isFlowWrite = (op: string, body: Record<string, unknown>) =>
      op === "UpdateItem" && String((body.Key as { pk?: { S?: string } })?.pk?.S).startsWith("FLOW#");
    let flowWrites = 0;
    proxy.setPlan({ throttle: 1, eligible: (op, body) => isFlowWrite(op, body) && ++flowWrites > 10 });
    proxy.clearLog();
    // Full jitter drawn as 0: the retries' backoff without its wait (the retry budget is unchanged).
    vi.spyOn(Math, "random").mockReturnValue(0);
    const failed = await invoke(handler, event);
    expect(failed.error?.name).toBe("StoreUnavailableError");
    expect(failed.error?.message).toContain("failed after 10 tries");
    // The failed attempt reports the 10 flows it stored and every write request it made (the hour's marker, the
    // 10 writes, ten tries of each of the 16 in flight): its retry finds them stored. Its attribution is kept.
    const writeRequests = proxy.log.filter(
      (r) =>
        isFlowWrite(r.operation, r.body) ||
        (r.operation === "PutItem" && JSON.stringify(r.body).includes("FLOWHOURS#")),
    ).length;
    expect(writeRequests).toBe(1 + 10 + 16 * 10);
    // Its lines are counted delivered, not stored: the retry stores them.
    expect(failed.metrics).toEqual({
      AttributionMemosKept: 1,
      FlowsWritten: 10,
      DuplicateFlows: 0,
      DynamoWriteRequests: writeRequests,
      LinesSeen: e.lines,
      LinesSeenByGroup: e.lines,
      MalformedLines: e.malformed,
      CalicoLines: 0,
      CalicoLinesByGroup: 0,
      KubernetesApiCalls: 0,
    });
    const partial = await flowsIn(store, base - DAY, base + DAY);
    expect(partial).toHaveLength(10);

    proxy.setPlan({});
    const retried = await invoke(handler, event);
    expect(retried.error).toBeUndefined();
    expect(retried.metrics).toMatchObject(
      metricsFor(e, { written: e.flows - 10, duplicate: 10 }, { seen: false, stored: true }),
    );
    await checkStored(store, base - DAY, base + DAY, e);
    const before = await tableState(tableName);
    const again = await invoke(handler, event);
    expect(again.metrics).toMatchObject(
      metricsFor(e, { written: 0, duplicate: e.flows }, { seen: false, stored: false }),
    );
    expect(await tableState(tableName)).toEqual(before);
  });

  it("fails a payload its flows could not be stored in time for, starts no write after, and its retry completes it", async () => {
    const tableName = await newTable();
    const handler = await coldHandler(tableName, proxy.endpoint);
    const store = reader(tableName);
    const base = T0 + 45 * DAY;
    const lines: Line[] = Array.from({ length: 40 }, (_, i) => ({
      kind: "calico",
      src: INTERNAL[i % 2] as string,
      dst: "192.168.2.20",
      proto: "TCP",
      dport: 2000 + i,
      len: 60 + i,
      at: base + i * 1_000,
    }));
    const e = expected(lines);
    expect(e.flows).toBe(40);
    const event = eventOf(dataOf(eventsOf(lines)));
    // The flow writes hang (a DynamoDB that has stopped answering) past the invocation's deadline.
    const isFlowWrite = (op: string, body: Record<string, unknown>) =>
      op === "UpdateItem" && String((body.Key as { pk?: { S?: string } })?.pk?.S).startsWith("FLOW#");
    const flowWrites = () => proxy.log.filter((r) => isFlowWrite(r.operation, r.body)).length;
    proxy.clearLog();
    proxy.hold(isFlowWrite);
    const failed = await invoke(handler, event, STORE_RESERVE_MS + 300);
    expect(failed.error?.name).toBe("IngestOutOfTimeError");
    // No flow write ended by the deadline: the hour's marker is all it counts (those in flight, counted by neither
    // run, are the retry's duplicates).
    expect(failed.metrics).toEqual({
      AttributionMemosKept: 1,
      FlowsWritten: 0,
      DuplicateFlows: 0,
      DynamoWriteRequests: 1,
      LinesSeen: e.lines,
      LinesSeenByGroup: e.lines,
      MalformedLines: e.malformed,
      CalicoLines: 0,
      CalicoLinesByGroup: 0,
      KubernetesApiCalls: 0,
    });
    const inFlight = proxy.held;
    expect(inFlight).toBe(16);
    expect(flowWrites()).toBe(inFlight);
    // The writes in flight then land; no other starts.
    await proxy.release();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(flowWrites()).toBe(inFlight);
    expect(await flowsIn(store, base - DAY, base + DAY)).toHaveLength(inFlight);
    const memos = await ts.client.send(
      new ScanCommand({
        TableName: tableName,
        ConsistentRead: true,
        FilterExpression: "begins_with(pk, :memo)",
        ExpressionAttributeValues: { ":memo": { S: "MEMO#prod#" } },
      }),
    );
    expect(memos.Items).toHaveLength(1);

    const retried = await invoke(handler, event);
    expect(retried.error).toBeUndefined();
    expect(retried.metrics).toMatchObject(
      metricsFor(e, { written: e.flows - inFlight, duplicate: inFlight }, { seen: false, stored: true }),
    );
    await checkStored(store, base - DAY, base + DAY, e);
  });

  it("stores exact counts through random throttling, 500s and lost answers on every request", async () => {
    const tableName = await newTable();
    const handler = await coldHandler(tableName, proxy.endpoint);
    const store = reader(tableName);
    vi.spyOn(Math, "random").mockReturnValue(0);
    const base = T0 + 50 * DAY;
    const payloads = Array.from({ length: 6 }, (_, p) =>
      Array.from(
        { length: 30 },
        (_, i): Line => ({
          kind: "calico",
          src: INTERNAL[(p + i) % 4] as string,
          dst: i % 3 === 0 ? "203.0.113.7" : "192.168.3.30",
          proto: i % 2 ? "TCP" : "UDP",
          dport: 5000 + (i % 4),
          len: 100 + i,
          at: base + p * 20_000 + i * 300,
        }),
      ),
    );
    const all = expected(payloads.flat());
    const events = payloads.map((lines) => eventOf(dataOf(eventsOf(lines))));
    proxy.setPlan({ throttle: 0.15, error: 0.1, lost: 0.1, seed: 11 });
    for (const event of events) {
      for (let attempt = 0; ; attempt++) {
        const run = await invoke(handler, event);
        if (run.error === undefined) break;
        expect(run.error.name).not.toBe("CorruptPayloadError");
        if (attempt > 8) throw run.error;
      }
    }
    expect(proxy.count({ outcome: "lost" })).toBeGreaterThan(0);
    proxy.setPlan({});
    const flows = await flowsIn(store, base - DAY, base + DAY);
    expect(sum(flows, (f) => f.packets)).toBe(all.packets);
    expect(sum(flows, (f) => f.bytes)).toBe(all.bytes);
    const alerts = await alertsIn(store, base - DAY, base + DAY);
    expect(sum(alerts, (a) => a.count)).toBe(all.internalHits);
    const before = await tableState(tableName);
    for (const event of events) {
      const run = await invoke(handler, event);
      expect(run.metrics.FlowsWritten).toBe(0);
    }
    expect(await tableState(tableName)).toEqual(before);
  });

  it("counts attribution misses: internal addresses a directory answers for but nobody holds", async () => {
    const tableName = await newTable();
    await coldHandler(tableName, ts.endpoint);
    const { ingestEvent, createRuntime } = await import("../../functions/ingest/handler.ts");
    const { loadIngestConfig } = await import("../../functions/ingest/config.ts");
    const { metrics } = await import("../../functions/shared/powertools.ts");
    const runtime = createRuntime(loadIngestConfig(process.env));
    const directory = new SnapshotDirectory({
      pods: {
        items: [
          {
            metadata: { name: "web-1", namespace: "shop", uid: "u1", creationTimestamp: iso(T0 - DAY) },
            spec: { nodeName: "n1" },
            status: { phase: "Running", podIP: "192.168.1.10", podIPs: [{ ip: "192.168.1.10" }] },
          },
        ],
      },
      nodes: { items: [] },
    });
    runtime.directory = directory;
    runtime.deps.pipeline = {
      cluster: "prod",
      internal: new CidrSet(["192.168.0.0/16"]),
      bucketSeconds: 60,
      scanner: createScanner(),
      directory,
    };
    const base = T0 + 60 * DAY;
    const lines: Line[] = [
      {
        kind: "calico",
        src: "192.168.1.10",
        dst: "192.168.2.20",
        proto: "TCP",
        dport: 80,
        len: 60,
        at: base,
      },
      {
        kind: "calico",
        src: "192.168.1.10",
        dst: "192.168.3.30",
        proto: "TCP",
        dport: 80,
        len: 60,
        at: base + 1,
      },
      {
        kind: "calico",
        src: "203.0.113.7",
        dst: "192.168.3.30",
        proto: "TCP",
        dport: 80,
        len: 60,
        at: base + 2,
      },
      {
        kind: "calico",
        src: "203.0.113.7",
        dst: "192.168.1.10",
        proto: "TCP",
        dport: 80,
        len: 60,
        at: base + 3,
      },
    ];
    const chunks: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation(((c: unknown) => {
      chunks.push(String(c));
      return true;
    }) as typeof process.stdout.write);
    await ingestEvent(eventOf(dataOf(eventsOf(lines))), runtime);
    metrics.publishStoredMetrics();
    vi.restoreAllMocks();
    // 192.168.2.20 and 192.168.3.30 are internal and held by nobody; the external address is never looked up.
    expect(parseOutput(chunks.join("")).metrics).toMatchObject({
      LinesSeen: 4,
      CalicoLines: 4,
      FlowsWritten: 4,
      AttributionMisses: 2,
      UnresolvedEndpoints: 0,
      AlertsRaised: 2,
    });
  });
});
