// The ingest handler's lines per log group, as the EMF it prints (Powertools, on stdout) for real subscription
// payloads stored in dynalite: what each group's LinesNotStored alarm sets against that group's metric filter count.
import { randomUUID } from "node:crypto";
import type { CloudWatchLogsEvent, Context } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { printedEmf } from "../support/alarm-math.ts";
import { controlMessageData } from "../support/deliveries.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

type Handler = (event: CloudWatchLogsEvent, context: Context) => Promise<unknown>;

const T0 = Date.parse("2026-04-19T04:50:00Z");
const HOST = "/aws/containerinsights/prod/ng-a/host";
const OTHER = "/aws/containerinsights/prod/ng-b/host";

const calicoLine = (k: number) =>
  `Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=203.0.113.${k} LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=62727 RES=0x00 SYN URGP=0`;
const malformedLine = (k: number) => calicoLine(k).replace(/ RES=0x00 SYN URGP=0$/, " RES=0x0");
const otherLine = "Apr 19 04:52:19 ip-192-168-74-5 kubelet[1]: not a calico line";

let eventId = 41_000_000;
function payload(logGroup: string, messages: readonly string[]): CloudWatchLogsEvent {
  const logEvents = messages.map((message, k) => ({ id: String(eventId++), timestamp: T0 + k, message }));
  const data = encodeSubscriptionData({
    messageType: "DATA_MESSAGE",
    owner: "123456789012",
    logGroup,
    logStream: "ip-192-168-74-5",
    subscriptionFilters: ["calico-flows-prod"],
    logEvents: logEvents as [(typeof logEvents)[0], ...typeof logEvents],
  });
  return { awslogs: { data } };
}

const context = (): Context =>
  ({
    functionName: "ingest",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:ingest",
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: "/aws/lambda/ingest",
    logStreamName: "stream",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 60_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  }) as Context;

/** One series the handler printed for the event: its namespace, metric, dimensions (name → value) and value. */
interface Sample {
  namespace: string;
  metric: string;
  dimensions: Record<string, unknown>;
  value: number;
}

async function invoke(handler: Handler, event: CloudWatchLogsEvent): Promise<Sample[]> {
  const { emf } = await printedEmf(() => handler(event, context()));
  return emf.map(({ namespace, metric, dimensions, values }) => ({
    namespace,
    metric,
    dimensions,
    value: values.reduce((a, b) => a + b, 0),
  }));
}

/** The per-group series printed, as `metric LogGroup=value`. */
const perGroup = (samples: readonly Sample[]) =>
  samples
    .filter((s) => "LogGroup" in s.dimensions)
    .map((s) => `${s.metric} ${String(s.dimensions.LogGroup)}=${s.value}`)
    .sort();

let ts: TestStore;
let handler: Handler;

beforeAll(async () => {
  ts = await startTestStore();
  vi.stubEnv("CLUSTER_NAME", "prod");
  vi.stubEnv("TABLE_NAME", await ts.freshTable());
  vi.stubEnv("ATTRIBUTION", "none");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", ts.endpoint);
  vi.stubEnv("POWERTOOLS_SERVICE_NAME", "calico-flows-ingest");
  vi.stubEnv("POWERTOOLS_METRICS_NAMESPACE", "CalicoFlowsGroups");
  vi.resetModules();
  ({ handler } = (await import("../../functions/ingest/handler.ts")) as unknown as { handler: Handler });
});
afterEach(() => vi.restoreAllMocks());
afterAll(async () => {
  vi.unstubAllEnvs();
  await ts?.close();
});

describe("ingest handler: lines per log group", () => {
  it("reports each delivery's lines seen and stored under its log group, beside the cluster's totals", async () => {
    const host = await invoke(
      handler,
      payload(HOST, [calicoLine(1), calicoLine(2), malformedLine(3), otherLine, calicoLine(4)]),
    );
    expect(perGroup(host)).toEqual([`CalicoLinesByGroup ${HOST}=3`, `LinesSeenByGroup ${HOST}=5`]);
    for (const s of host.filter((s) => "LogGroup" in s.dimensions)) {
      expect(s.namespace).toBe("CalicoFlowsGroups");
      // The service and cluster the stack's alarms select, and the group: no other dimension.
      expect(s.dimensions).toEqual({ service: "calico-flows-ingest", cluster: "prod", LogGroup: HOST });
    }
    // The totals stay one series each, counted once.
    const totals = (name: string) => host.filter((s) => s.metric === name).map((s) => s.value);
    expect(totals("LinesSeen")).toEqual([5]);
    expect(totals("CalicoLines")).toEqual([3]);

    const other = await invoke(handler, payload(OTHER, [calicoLine(5)]));
    expect(perGroup(other)).toEqual([`CalicoLinesByGroup ${OTHER}=1`, `LinesSeenByGroup ${OTHER}=1`]);
  });

  it("reports nothing per group for a control message", async () => {
    const samples = await invoke(handler, { awslogs: { data: controlMessageData(T0) } });
    expect(perGroup(samples)).toEqual([]);
  });
});
