// On call at 3 a.m.: for each way calico-flows can fail silently, does an alarm of the synthesized stack reach the
// operations topic? The stack is synthesized offline as `cdk synth` builds it (bundling skipped), and its alarms are
// evaluated the way CloudWatch evaluates them (M of N periods, each alarm's statistic, threshold and
// treatMissingData; AWS CloudWatch user guide, "Using Amazon CloudWatch alarms" and "Configuring how CloudWatch
// alarms treat missing data") over a timeline of metric datapoints. The functions' own metrics in those timelines
// are the EMF the real handlers print (Powertools, on stdout) when run against the local implementations: dynalite,
// the HTTPS Kubernetes API test server, fauxqs; AWS's own metrics (Lambda, SQS, CloudWatch Logs, API Gateway) are
// written as those services document them for the scenario.
import { readFileSync } from "node:fs";
import { DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { CreateScheduleCommand, SchedulerClient, UpdateScheduleCommand } from "@aws-sdk/client-scheduler";
import { App, type CfnResource } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { CloudWatchLogsEvent, Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import type { IConstruct } from "constructs";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import {
  alarmValue,
  breaches,
  type Dimension,
  type EmfSample,
  type Json,
  type MetricQuery,
  printedEmf,
  seriesKey,
} from "../support/alarm-math.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../support/kube-api-server.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

/** The panic harness's cluster (test/panic/harness.ts), so that the panic function's metrics carry it too. */
const CLUSTER = "prod-eu";
/** A group of the nodes' host logs (every kernel message), and one holding only the Calico lines (deploy.md, §1). */
const HOST_GROUP = `/aws/containerinsights/${CLUSTER}/host`;
const CALICO_GROUP = `/eks/${CLUSTER}/calico-packet`;
const LOG_GROUPS = [HOST_GROUP, CALICO_GROUP];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** A whole number of 5-minute periods, so that scenario times fall where they are meant to. */
const T0 = Date.parse("2026-05-04T03:00:00Z");

// ---- the synthesized stack ---------------------------------------------------------------------------------

function synth() {
  const app = new App({
    context: {
      ...cdkJson.context,
      clusterName: CLUSTER,
      logGroupNames: LOG_GROUPS,
      "aws:cdk:bundling-stacks": [],
    },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  return { stack, config, template: Template.fromStack(stack) };
}

interface Synthesized {
  stack: CalicoFlowsStack;
  logPrefix: string;
  resources: Record<string, { Type: string; Properties: Json }>;
  alarms: { id: string; props: Json }[];
  ingestId: string;
  panicId: string;
  ingestEnv: Record<string, unknown>;
  panicEnv: Record<string, unknown>;
  failedPayloadsId: string;
  deadLettersId: string;
}

let s: Synthesized;

const logicalId = (stack: CalicoFlowsStack, construct: IConstruct) =>
  stack.getLogicalId(construct.node.defaultChild as CfnResource);

function functionOf(resources: Synthesized["resources"], service: string): [string, Record<string, unknown>] {
  const found = Object.entries(resources).filter(
    ([, r]) =>
      r.Type === "AWS::Lambda::Function" &&
      (r.Properties.Environment as { Variables?: Json } | undefined)?.Variables?.POWERTOOLS_SERVICE_NAME ===
        service,
  );
  expect(found, service).toHaveLength(1);
  const [id, fn] = found[0] as [string, { Properties: Json }];
  return [id, (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables];
}

beforeAll(() => {
  const { stack, config, template } = synth();
  const resources = template.toJSON().Resources as Synthesized["resources"];
  const alarms = Object.entries(resources)
    .filter(([, r]) => r.Type === "AWS::CloudWatch::Alarm")
    .map(([id, r]) => ({ id, props: r.Properties }));
  const [ingestId, ingestEnv] = functionOf(resources, "calico-flows-ingest");
  const [panicId, panicEnv] = functionOf(resources, "calico-flows-panic");
  s = {
    stack,
    logPrefix: config.logPrefix,
    resources,
    alarms,
    ingestId,
    panicId,
    ingestEnv,
    panicEnv,
    failedPayloadsId: logicalId(stack, stack.ingest.failedPayloads),
    deadLettersId: logicalId(stack, stack.panic.deadLetters.queue),
  };
});

// ---- metric series and a CloudWatch alarm evaluator --------------------------------------------------------

const lambda = (fnId: string, metric: string) =>
  seriesKey("AWS/Lambda", metric, [{ Name: "FunctionName", Value: { Ref: fnId } }]);
const sqs = (queueId: string, metric: string) =>
  seriesKey("AWS/SQS", metric, [{ Name: "QueueName", Value: { "Fn::GetAtt": [queueId, "QueueName"] } }]);
const subscription = (group: string, metric: string) =>
  seriesKey("AWS/Logs", metric, [
    { Name: "LogGroupName", Value: group },
    { Name: "DestinationType", Value: "Lambda" },
    { Name: "FilterName", Value: s.stack.ingest.filterName },
  ]);
const logGroup = (group: string, metric: string) =>
  seriesKey("AWS/Logs", metric, [{ Name: "LogGroupName", Value: group }]);

const PERIOD_MS = 5 * MINUTE;

/** Datapoints by series and 5-minute period, as CloudWatch stores them (each sample at its timestamp). */
class Timeline {
  readonly #series = new Map<string, Map<number, number[]>>();

  add(key: string, at: number, ...values: number[]): void {
    let periods = this.#series.get(key);
    if (periods === undefined) {
      periods = new Map();
      this.#series.set(key, periods);
    }
    const p = Math.floor(at / PERIOD_MS);
    const samples = periods.get(p);
    if (samples === undefined) periods.set(p, [...values]);
    else samples.push(...values);
  }

  /** The same value in every period of [from, to): a metric AWS publishes all along (a queue's depth). */
  every(key: string, from: number, to: number, value: (at: number) => number): void {
    for (let at = from; at < to; at += PERIOD_MS) this.add(key, at, value(at));
  }

  emf(samples: readonly EmfSample[], at: number): void {
    for (const { key, values } of samples) this.add(key, at, ...values);
  }

  statistic(key: string, period: number, stat: string): number | undefined {
    const samples = this.#series.get(key)?.get(period);
    if (samples === undefined || samples.length === 0) return undefined;
    switch (stat) {
      case "Sum":
        return samples.reduce((a, b) => a + b, 0);
      case "Maximum":
        return Math.max(...samples);
      case "Minimum":
        return Math.min(...samples);
      case "Average":
        return samples.reduce((a, b) => a + b, 0) / samples.length;
      case "SampleCount":
        return samples.length;
      default:
        throw new Error(`statistic ${stat} is not evaluated here`);
    }
  }
}

interface Notification {
  alarm: string;
  state: "ALARM" | "OK";
  at: string;
}

/**
 * Evaluates every alarm at the end of each 5-minute period of [from, to), starting OK, and returns the state changes
 * that send a notification (each alarm has its ALARM and OK actions on the operations topic).
 */
function notifications(timeline: Timeline, from: number, to: number): Notification[] {
  const out: Notification[] = [];
  for (const { id, props } of s.alarms) {
    expect(props.AlarmActions, id).toEqual([
      { Ref: logicalId(s.stack, s.stack.monitoring.operations.topic) },
    ]);
    const periodMs = ((props.Period as number | undefined) ?? 300) * 1000;
    const queries = props.Metrics as MetricQuery[] | undefined;
    const periods =
      queries === undefined
        ? [periodMs]
        : queries.flatMap((q) => (q.MetricStat === undefined ? [] : [periodMs]));
    expect(
      periods.every((p) => p === PERIOD_MS),
      `${id}: 5-minute periods`,
    ).toBe(true);
    const n = props.EvaluationPeriods as number;
    const m = (props.DatapointsToAlarm as number | undefined) ?? n;
    const missing = (props.TreatMissingData as string | undefined) ?? "missing";
    type State = "ALARM" | "OK" | "INSUFFICIENT_DATA";
    let state: State = "OK";
    for (let p = Math.floor(from / PERIOD_MS); p < Math.floor(to / PERIOD_MS); p++) {
      const window = Array.from({ length: n }, (_, k) =>
        alarmValue(props, (key, stat) => timeline.statistic(key, p - n + 1 + k, stat)),
      );
      const present = window.filter((v): v is number => v !== undefined);
      let next: State = state;
      if (missing === "notBreaching" || missing === "breaching") {
        const breaching = window.filter((v) =>
          v === undefined ? missing === "breaching" : breaches(props, v),
        );
        next = breaching.length >= m ? "ALARM" : "OK";
      } else if (present.length > 0) {
        next =
          present.filter((v) => breaches(props, v)).length >= Math.min(m, present.length) ? "ALARM" : "OK";
      } else if (missing === "missing") {
        next = "INSUFFICIENT_DATA";
      }
      if (next !== state && next !== "INSUFFICIENT_DATA") {
        out.push({ alarm: id, state: next, at: new Date((p + 1) * PERIOD_MS).toISOString() });
      }
      state = next;
    }
  }
  return out.sort((a, b) => a.at.localeCompare(b.at));
}

const alarmsRaised = (notes: readonly Notification[], from = 0, to = Number.POSITIVE_INFINITY) =>
  notes.filter((n) => n.state === "ALARM" && Date.parse(n.at) > from && Date.parse(n.at) <= to);

/** What SQS publishes for a queue nobody writes to: a depth of 0 in every period (it stays "active" for hours). */
function emptyQueues(timeline: Timeline, from: number, to: number): void {
  for (const queue of [s.failedPayloadsId, s.deadLettersId]) {
    timeline.every(sqs(queue, "ApproximateNumberOfMessagesVisible"), from, to, () => 0);
    timeline.every(sqs(queue, "ApproximateAgeOfOldestMessage"), from, to, () => 0);
  }
}

/** Lambda's own metrics for one successful asynchronous invocation of `fnId` at `at`. */
function invokedOk(timeline: Timeline, fnId: string, at: number, durationMs: number): void {
  timeline.add(lambda(fnId, "Invocations"), at, 1);
  timeline.add(lambda(fnId, "Errors"), at, 0);
  timeline.add(lambda(fnId, "Throttles"), at, 0);
  timeline.add(lambda(fnId, "Duration"), at, durationMs);
}

// ---- running the real handlers and reading what they print -------------------------------------------------

/** The synthesized function's environment, its plain values (tokens such as the table name left out). */
function stubEnvironment(env: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") vi.stubEnv(name, value);
}

const lambdaContext = (): Context =>
  ({
    functionName: "CalicoFlows-IngestFunction",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:CalicoFlows-IngestFunction",
    memoryLimitInMB: "1024",
    awsRequestId: "7f0c1c55-0000-4000-8000-000000000001",
    logGroupName: "/aws/lambda/CalicoFlows-IngestFunction",
    logStreamName: "stream",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 120_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  }) as Context;

const NODE = "ip-192-168-74-5";
/** A pod of the customer workloads and one of another organisation's, both internal: each denial is an alert. */
const SRC = "192.168.22.247";
const DST = "192.168.94.122";
const calicoLine = (at: number) =>
  `${new Date(at).toISOString()} ${NODE} kernel: calico-packet: IN=eth0 OUT=eni8d48114818c ` +
  `MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${SRC} DST=${DST} LEN=60 TOS=0x00 PREC=0x00 TTL=253 ` +
  "ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";

let nextEventId = 38_000_000;
function delivery(messages: readonly { at: number; message: string }[]): CloudWatchLogsEvent {
  const logEvents = messages.map((m) => ({
    id: String(nextEventId++).padStart(56, "0"),
    timestamp: m.at,
    message: m.message,
  }));
  return {
    awslogs: {
      data: encodeSubscriptionData({
        messageType: "DATA_MESSAGE",
        owner: "123456789012",
        logGroup: CALICO_GROUP,
        logStream: NODE,
        subscriptionFilters: [s.stack.ingest.filterName],
        logEvents: logEvents as [(typeof logEvents)[0], ...typeof logEvents],
      }),
    },
  };
}

const eks = mockClient(EKSClient);
const scheduler = mockClient(SchedulerClient);

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});
afterAll(() => {
  eks.restore();
  scheduler.restore();
});

describe("the ingest function on call", () => {
  let store: TestStore;
  let kube: KubeApiServer;

  beforeAll(async () => {
    [store, kube] = await Promise.all([startTestStore(), startKubeApiServer()]);
    for (const [name, ip] of [
      ["web-5d4f8b7c9-aaaaa", SRC],
      ["db-5d4f8b7c9-bbbbb", DST],
    ] as const) {
      kube.store.put(
        "pods",
        kubeObjects.pod({ name, namespace: "shop", ip, created: Date.now() - DAY, node: NODE }),
      );
    }
  });
  afterAll(async () => {
    await Promise.all([store?.close(), kube?.close()]);
  });

  /** The real ingest handler, cold, with the synthesized function's environment, on dynalite and this cluster. */
  async function coldIngest(tableName: string) {
    stubEnvironment(s.ingestEnv);
    vi.stubEnv("TABLE_NAME", tableName);
    vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", store.endpoint);
    vi.resetModules();
    const { handler } = await import("../../functions/ingest/handler.ts");
    return handler as (event: CloudWatchLogsEvent, context: Context) => Promise<unknown>;
  }

  it("pages someone when the Kubernetes API refuses the ingest role for two hours of steady, sparse denials", async () => {
    // Defect: AttributionDown (UnresolvedEndpoints ≥ 1) needs a datapoint in each of 3 consecutive 5-minute periods,
    // with missing data "not breaching". UnresolvedEndpoints is only emitted when a delivery arrives, so a cluster
    // whose denials come less often than every 5 minutes (the usual case: a CronJob retrying a blocked connection
    // every 10 minutes) never has three periods in a row, and the alarm cannot fire however long the API stays down.
    // Impact: the access entry is deleted (or the endpoint made private) and every flow is stored with bare IPs for
    // days; every ingest invocation succeeds, so no other alarm fires either: nobody is told.
    // Expected: with every delivery's endpoints unresolved for two hours, one delivery every 10 minutes, an alarm
    // reaches the operations topic within those two hours (e.g. treat missing data as "ignore", or alarm on one
    // longer period).
    eks.reset();
    eks.on(DescribeClusterCommand).resolves({
      cluster: {
        name: CLUSTER,
        status: "ACTIVE",
        endpoint: kube.url,
        certificateAuthority: { data: Buffer.from(kube.caPem).toString("base64") },
      },
    });
    // The test server accepts only its own token: the function's EKS token is refused (401), as it is once the
    // ingest role's access entry is gone.
    const tableName = await store.freshTable();
    const handler = await coldIngest(tableName);
    const runs: EmfSample[][] = [];
    for (let k = 0; k < 13; k++) {
      const now = Date.now();
      const { emf } = await printedEmf(() =>
        handler(delivery([{ at: now, message: calicoLine(now) }]), lambdaContext()),
      );
      runs.push(emf);
    }
    // The flows are stored, unresolved (resolution never blocks storage), and the handler says so in the very
    // series AttributionDown reads: the alarm's namespace, name and dimensions match the EMF exactly.
    const flows = await new DynamoFlowStore({ client: store.clientFor(), tableName }).queryFlows({
      cluster: CLUSTER,
      since: new Date(Date.now() - HOUR).toISOString(),
      until: new Date(Date.now() + HOUR).toISOString(),
    });
    expect(flows.items.length).toBeGreaterThan(0);
    expect(flows.items.every((f) => f.src.kind === "unknown" && f.dst.kind === "unknown")).toBe(true);
    const attributionDown = s.alarms.find((a) => a.props.MetricName === "UnresolvedEndpoints");
    expect(attributionDown).toBeDefined();
    const unresolvedKey = seriesKey(
      attributionDown?.props.Namespace as string,
      "UnresolvedEndpoints",
      attributionDown?.props.Dimensions as Dimension[],
    );
    for (const run of runs) {
      expect(run.find((sample) => sample.key === unresolvedKey)?.values[0]).toBeGreaterThanOrEqual(1);
    }

    // Two hours of it, one delivery every 10 minutes, each invocation successful.
    const timeline = new Timeline();
    const end = T0 + 2 * HOUR + 5 * MINUTE;
    emptyQueues(timeline, T0 - HOUR, end);
    runs.forEach((emf, k) => {
      const at = T0 + k * 10 * MINUTE + 30_000;
      timeline.emf(emf, at);
      invokedOk(timeline, s.ingestId, at, 900);
      timeline.add(lambda(s.ingestId, "AsyncEventAge"), at, 400);
      timeline.add(subscription(CALICO_GROUP, "ForwardedLogEvents"), at, 1);
    });
    const notes = notifications(timeline, T0 - HOUR, end);
    expect(alarmsRaised(notes), JSON.stringify(notes)).not.toEqual([]);
  });

  it("pages someone when two hours of calico-packet lines are all malformed and nothing is stored", async () => {
    // Defect: MalformedLines is graphed on the dashboard but no alarm reads it. Each delivery whose lines cannot be
    // parsed (here cut short after the TCP window, as a shipper with a too-small message size cuts them; or a
    // kernel format the parser does not know) succeeds: no Lambda error, no failed payload, nothing stored.
    // Impact: for as long as it lasts, calico-flows records no denial and raises no alert, and the stack reports
    // every alarm OK; the on-call engineer learns it from the first incident nobody was alerted about.
    // Expected: when every calico-packet line of two hours of deliveries (one a minute) is malformed, an alarm
    // reaches the operations topic within those two hours (e.g. MalformedLines, or its share of LinesSeen, over
    // a few periods).
    const tableName = await store.freshTable();
    const handler = await coldIngest(tableName);
    const runs: EmfSample[][] = [];
    for (let k = 0; k < 3; k++) {
      const now = Date.now();
      const lines = Array.from({ length: 20 }, (_, i) => ({
        at: now + i,
        message: calicoLine(now + i).replace(/ RES=0x00 SYN URGP=0$/, " RES=0x0"),
      }));
      const { emf } = await printedEmf(() => handler(delivery(lines), lambdaContext()));
      runs.push(emf);
    }
    const flows = await new DynamoFlowStore({ client: store.clientFor(), tableName }).queryFlows({
      cluster: CLUSTER,
      since: new Date(Date.now() - HOUR).toISOString(),
      until: new Date(Date.now() + HOUR).toISOString(),
    });
    expect(flows.items).toEqual([]);
    const ingestSeries = (metric: string) =>
      seriesKey(s.ingestEnv.POWERTOOLS_METRICS_NAMESPACE as string, metric, [
        { Name: "service", Value: s.ingestEnv.POWERTOOLS_SERVICE_NAME },
        { Name: "cluster", Value: CLUSTER },
      ]);
    for (const run of runs) {
      expect(run.find((sample) => sample.key === ingestSeries("MalformedLines"))?.values).toEqual([20]);
      expect(run.find((sample) => sample.key === ingestSeries("CalicoLines"))?.values).toEqual([0]);
    }

    const timeline = new Timeline();
    const end = T0 + 2 * HOUR;
    emptyQueues(timeline, T0 - HOUR, end);
    for (let at = T0 + 10_000, k = 0; at < end; at += MINUTE, k++) {
      timeline.emf(runs[k % runs.length] as EmfSample[], at);
      invokedOk(timeline, s.ingestId, at, 120);
      timeline.add(lambda(s.ingestId, "AsyncEventAge"), at, 300);
      timeline.add(subscription(CALICO_GROUP, "ForwardedLogEvents"), at, 20);
    }
    const notes = notifications(timeline, T0 - HOUR, end);
    expect(alarmsRaised(notes), JSON.stringify(notes)).not.toEqual([]);
  });
});

describe("silence", () => {
  it("tells 'the lines no longer reach ingest' from 'there are no denials'", () => {
    // Defect: every ingest alarm reads a metric that only exists when deliveries happen (the function's, the
    // subscription's), with missing data "not breaching". When the subscription filter is deleted (deploy.md itself
    // tells operators how to free a slot with delete-subscription-filter; another team's deploy can take it too),
    // or CloudWatch Logs stops forwarding for any reason, the log groups keep receiving calico-packet lines and
    // every alarm turns or stays OK: "no data" and "no denials" look the same.
    // Impact: the most dangerous failure, silence; denials are neither stored nor alerted on, for days.
    // Expected: while the subscribed groups keep receiving calico-packet lines and nothing is forwarded, an alarm
    // fires within a day (e.g. a metric filter on each group counting the prefix, alarmed against what was
    // forwarded); and while the groups receive no calico-packet line at all (the host group only its other kernel
    // messages), none does.
    const metricFilters = Object.values(s.resources)
      .filter((r) => r.Type === "AWS::Logs::MetricFilter")
      .map((r) => r.Properties);
    const calicoCounters = metricFilters.filter(
      (f) =>
        LOG_GROUPS.includes(f.LogGroupName as string) && String(f.FilterPattern ?? "").includes(s.logPrefix),
    );
    /** The groups' own metrics, and any metric filter on them: counting calico lines when `calico` is set. */
    const groups = (timeline: Timeline, from: number, to: number, calico: boolean) => {
      for (const group of LOG_GROUPS) {
        // The host group always receives other kernel messages; the Calico group only Calico lines.
        const incoming = group === HOST_GROUP ? 500 : calico ? 40 : 0;
        if (incoming > 0) {
          timeline.every(logGroup(group, "IncomingLogEvents"), from, to, () => incoming + (calico ? 40 : 0));
          timeline.every(logGroup(group, "IncomingBytes"), from, to, () => 300 * incoming);
        }
      }
      for (const f of calicoCounters) {
        for (const t of f.MetricTransformations as {
          MetricNamespace: string;
          MetricName: string;
          MetricValue: string;
          DefaultValue?: number;
          Dimensions?: { Key: string; Value: string }[];
        }[]) {
          const key = seriesKey(
            t.MetricNamespace,
            t.MetricName,
            (t.Dimensions ?? []).map((d) => ({ Name: d.Key, Value: d.Value })),
          );
          const value = calico ? Number(t.MetricValue) * 40 : t.DefaultValue;
          if (value !== undefined && Number.isFinite(value)) timeline.every(key, from, to, () => value);
        }
      }
    };

    const from = T0 - HOUR;
    const end = T0 + DAY;
    const unforwarded = new Timeline();
    emptyQueues(unforwarded, from, end);
    groups(unforwarded, from, end, true);
    const broken = notifications(unforwarded, from, end);
    expect(alarmsRaised(broken), "calico-packet lines arrive, none is forwarded, for a day").not.toEqual([]);

    const quiet = new Timeline();
    emptyQueues(quiet, from, end);
    groups(quiet, from, end, false);
    expect(alarmsRaised(notifications(quiet, from, end)), "a day without denials").toEqual([]);
  });
});

describe("failed payloads waiting for a redrive", () => {
  it("reminds the operator before SQS deletes an unredriven failed payload", () => {
    // Defect: the failed-payloads queue is alarmed on its depth only (≥ 1 message, one period). The alarm notifies
    // once, when the first payload lands; it stays in ALARM while the payload waits (later failures notify nobody),
    // and no alarm reads ApproximateAgeOfOldestMessage. After the queue's 14-day retention SQS deletes the payload,
    // the depth drops to 0 and the alarm's OK action e-mails "OK": the one sign of the loss reads as a recovery.
    // Impact: a failed payload missed in a busy week (or arriving while the alarm was already in ALARM) is lost
    // for good, its lines only recoverable by a backfill if the log groups still hold them.
    // Expected: an alarm goes into ALARM again while the payload is still in the queue, well after it landed and
    // before it expires (e.g. ApproximateAgeOfOldestMessage above a few days, below the retention).
    const retention = Number(
      (s.resources[s.failedPayloadsId]?.Properties.MessageRetentionPeriod as number | undefined) ?? 345_600,
    );
    expect(retention).toBe(14 * 86_400);
    const timeline = new Timeline();
    const landed = T0 + 3 * MINUTE;
    const expires = landed + retention * 1000;
    const end = expires + DAY;
    // One delivery fails three times (Lambda's two retries), then lands in the queue; nothing else happens.
    for (const at of [T0, T0 + MINUTE, landed - 10_000]) {
      timeline.add(lambda(s.ingestId, "Invocations"), at, 1);
      timeline.add(lambda(s.ingestId, "Errors"), at, 1);
    }
    timeline.add(lambda(s.ingestId, "AsyncEventsDropped"), landed, 1);
    timeline.add(sqs(s.failedPayloadsId, "NumberOfMessagesSent"), landed, 1);
    timeline.every(sqs(s.failedPayloadsId, "ApproximateNumberOfMessagesVisible"), T0 - HOUR, end, (at) =>
      at >= landed && at < expires ? 1 : 0,
    );
    timeline.every(sqs(s.failedPayloadsId, "ApproximateAgeOfOldestMessage"), T0 - HOUR, end, (at) =>
      at >= landed && at < expires ? Math.floor((at - landed) / 1000) : 0,
    );
    timeline.every(sqs(s.deadLettersId, "ApproximateNumberOfMessagesVisible"), T0 - HOUR, end, () => 0);
    const notes = notifications(timeline, T0 - HOUR, end);
    // When it landed: FailedPayloads (and IngestEventsDropped) — this part holds today.
    expect(alarmsRaised(notes, T0, landed + 10 * MINUTE).map((n) => n.alarm)).not.toEqual([]);
    expect(
      alarmsRaised(notes, landed + HOUR, expires),
      `nothing between the first e-mail and the loss: ${JSON.stringify(notes)}`,
    ).not.toEqual([]);
  });
});

describe("alert e-mails on call", () => {
  const mailQueue = () => logicalId(s.stack, s.stack.alerts.mailQueue.queue);
  const mailDeadLetters = () => logicalId(s.stack, s.stack.alerts.mailDeadLetters.queue);
  const retentionMs = (queueId: string) =>
    Number(s.resources[queueId]?.Properties.MessageRetentionPeriod ?? 345_600) * 1000;

  it("pages someone when nothing takes the mail queue's messages any more, and not while a flood is mailed", () => {
    // The mailer's event source disabled (to pause a flood) or unable to read the queue: no invocation, so no
    // Errors, and nothing is dead-lettered; the alerts wait in the mail queue, unmailed, until SQS deletes them.
    const from = T0 - HOUR;
    const end = T0 + 6 * HOUR;
    const first = T0 + 2 * MINUTE;
    const stopped = new Timeline();
    emptyQueues(stopped, from, end);
    stopped.every(sqs(mailQueue(), "NumberOfMessagesSent"), first, end, () => 1);
    stopped.every(sqs(mailQueue(), "ApproximateNumberOfMessagesVisible"), from, end, (at) =>
      at < first ? 0 : 1 + Math.floor((at - first) / PERIOD_MS),
    );
    stopped.every(sqs(mailQueue(), "ApproximateAgeOfOldestMessage"), from, end, (at) =>
      at < first ? 0 : Math.floor((at - first) / 1000),
    );
    const notes = notifications(stopped, from, end);
    expect(alarmsRaised(notes, T0, T0 + 30 * MINUTE), JSON.stringify(notes)).not.toEqual([]);

    // As designed: each message mailed within the 60 s batching window; a flood of 100,000 alerts at T0 worked off
    // at two e-mails of up to 1,000 messages a second, its last one mailed under two minutes after it came.
    const mailing = new Timeline();
    emptyQueues(mailing, from, end);
    const mailer = logicalId(s.stack, s.stack.alerts.mailer.function);
    for (let at = from; at < end; at += PERIOD_MS) {
      const flood = at >= T0 && at < T0 + PERIOD_MS;
      mailing.add(sqs(mailQueue(), "NumberOfMessagesSent"), at, flood ? 100_000 : 3);
      mailing.add(sqs(mailQueue(), "ApproximateNumberOfMessagesVisible"), at, flood ? 100_000 : 3);
      mailing.add(sqs(mailQueue(), "ApproximateAgeOfOldestMessage"), at, flood ? 115 : 60);
      invokedOk(mailing, mailer, at, 1_000);
    }
    expect(alarmsRaised(notifications(mailing, from, end))).toEqual([]);
  });

  it("reminds the operator of an unsent alert e-mail at least a day before SQS deletes it from the dead letters", () => {
    // SQS deletes a dead letter when the dead-letter queue's retention has passed since it was first queued (the
    // mail queue), while the dead-letter queue's age counts from its move (AWS SQS guide, "Setting-up dead-letter
    // queue retention"). The depth alarm, AlertMailDeadLetters, tells of the first only, and turns OK at the deletion.
    const deadLetterRetention = retentionMs(mailDeadLetters());
    // Dead-lettered after its five receives, or, the mailer's event source stopped meanwhile, as late as the mail
    // queue keeps it.
    for (const waited of [15 * MINUTE, retentionMs(mailQueue()) - 15 * MINUTE]) {
      const queued = T0;
      const landed = queued + waited;
      const expires = queued + deadLetterRetention;
      const end = Math.max(landed, expires) + DAY;
      const timeline = new Timeline();
      emptyQueues(timeline, T0 - HOUR, end);
      timeline.every(sqs(mailQueue(), "ApproximateNumberOfMessagesVisible"), T0 - HOUR, end, (at) =>
        at >= queued && at < landed ? 1 : 0,
      );
      timeline.every(sqs(mailQueue(), "ApproximateAgeOfOldestMessage"), T0 - HOUR, end, (at) =>
        at >= queued && at < landed ? Math.floor((at - queued) / 1000) : 0,
      );
      timeline.every(sqs(mailDeadLetters(), "ApproximateNumberOfMessagesVisible"), T0 - HOUR, end, (at) =>
        at >= landed && at < expires ? 1 : 0,
      );
      timeline.every(sqs(mailDeadLetters(), "ApproximateAgeOfOldestMessage"), T0 - HOUR, end, (at) =>
        at >= landed && at < expires ? Math.floor((at - landed) / 1000) : 0,
      );
      const notes = notifications(timeline, T0 - HOUR, end);
      expect(
        alarmsRaised(notes, landed + HOUR, expires - DAY),
        `dead-lettered ${waited / HOUR} h after it was queued: ${JSON.stringify(notes)}`,
      ).not.toEqual([]);
    }
  });
});

describe("the panic policy's expiry", () => {
  it("pages someone when a panic policy applied with a TTL has no expiry schedule", async () => {
    // Defect: when Scheduler refuses the expiry schedule (the panic role's scheduler:CreateSchedule or
    // iam:PassRole, a quota, the group deleted), the apply still succeeds (the emergency wins) with a warning in the
    // answer and an error in the function's log, and announces the policy as expiring at its expiresAt. Nothing the
    // function emits is alarmed (it counts Panic_apply_applied, no failure, and the invocation does not fail), so
    // the allow-all policy stays past its announced expiry with every alarm OK. docs/panic.md: "An expiry that does
    // not revert leaves allow-all applied ... It is never silent: every way it can fail ends in an alarm on the
    // operations topic"; `status` says "overdue" five minutes past expiry, but only to whoever asks.
    // Impact: customer namespaces stay unisolated indefinitely after an incident, while everyone believes the
    // policy expired at the time the announcement gave.
    // Expected: an alarm reaches the operations topic by the announced expiry (plus the hour the documented
    // revert path may take), e.g. a metric for an unscheduled expiry with an alarm on it.
    scheduler.reset();
    const denied = Object.assign(
      new Error(
        "User: arn:aws:sts::123456789012:assumed-role/CalicoFlows-PanicFunctionRole/x is not authorized to " +
          "perform: iam:PassRole on resource: CalicoFlows-PanicSchedulerRole",
      ),
      { name: "AccessDeniedException", $fault: "client" },
    );
    stubEnvironment(s.panicEnv);
    vi.resetModules();
    const harness = await import("../panic/harness.ts");
    const h = await harness.startPanicHarness();
    try {
      await harness.resetPanicWorld(h, scheduler);
      scheduler.on(CreateScheduleCommand).rejects(denied);
      scheduler.on(UpdateScheduleCommand).rejects(denied);
      const { result, emf } = await printedEmf(() =>
        h.invoke(harness.apiEvent("POST", { reason: "INC-7 payments down", ttlMinutes: 60 })),
      );
      expect(result.statusCode).toBe(200);
      const body = harness.responseBody(result);
      expect(body.result).toBe("applied");
      expect(body.warnings.join("\n")).toMatch(/the expiry could not be scheduled/);
      expect(harness.storedPanicPolicy(h)).toBeDefined();
      const announced = await h.announcements();
      expect(announced.some((a) => typeof a.expiresAt === "string")).toBe(true);

      const timeline = new Timeline();
      const applied = T0 + 30_000;
      const expiresAt = applied + 60 * MINUTE;
      const end = expiresAt + 3 * HOUR;
      emptyQueues(timeline, T0 - HOUR, end);
      timeline.emf(emf, applied);
      invokedOk(timeline, s.panicId, applied, 2_400);
      const api5xx = s.alarms.find((a) => a.props.MetricName === "5XXError");
      const apiDims = (api5xx?.props.Dimensions as Dimension[] | undefined) ?? [];
      timeline.add(seriesKey("AWS/ApiGateway", "Count", apiDims), applied, 1);
      timeline.add(seriesKey("AWS/ApiGateway", "5XXError", apiDims), applied, 0);
      timeline.add(seriesKey("AWS/ApiGateway", "4XXError", apiDims), applied, 0);
      const notes = notifications(timeline, T0 - HOUR, end);
      expect(alarmsRaised(notes, T0, expiresAt + HOUR), JSON.stringify(notes)).not.toEqual([]);
    } finally {
      await h.close();
    }
  });
});
