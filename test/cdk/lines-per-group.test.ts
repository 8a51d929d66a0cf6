// LinesNotStored, per log group: the alarms of the synthesized stack that say calico-packet lines are logged but not
// stored, evaluated for one 5-minute period over what CloudWatch would hold for it: each group's metric filter count
// (as the template defines the filter) of the lines the group received, and the EMF the real ingest handler prints
// (Powertools, on stdout) for the deliveries of the groups whose subscription still delivers, stored in dynalite.
import { readFileSync } from "node:fs";
import { App, type CfnResource } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { CloudWatchLogsEvent, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import {
  alarmValue,
  breaches,
  emfSums,
  type Json,
  type MetricQuery,
  printedEmf,
  seriesKey,
} from "../support/alarm-math.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

const CLUSTER = "prod-eu";
/** Four node groups' host logs, of similar volume unless a scenario says otherwise. */
const GROUPS = ["ng-a", "ng-b", "ng-c", "ng-d"].map((ng) => `/aws/containerinsights/${CLUSTER}/${ng}/host`);

/** Whether the alarm breaches its threshold over one period of Sum datapoints. */
function breaching(alarm: Json, sums: ReadonlyMap<string, number>): boolean {
  expect(alarm.ComparisonOperator).toBe("LessThanThreshold");
  const v = alarmValue(alarm, (key, stat) => {
    expect(stat).toBe("Sum");
    return sums.get(key);
  });
  return v !== undefined && breaches(alarm, v);
}

let stack: CalicoFlowsStack;
let resources: Record<string, { Type: string; Properties: Json }>;
let store: TestStore;
let handler: (event: CloudWatchLogsEvent, context: Context) => Promise<unknown>;

/** The LinesNotStored alarms of the stack, by the construct ID CDK gave each. */
function linesNotStored(): { id: string; props: Json }[] {
  return stack.monitoring.alarms
    .filter((a) => a.node.id.startsWith("LinesNotStored"))
    .map((a) => ({
      id: a.node.id,
      props: resources[stack.getLogicalId(a.node.defaultChild as CfnResource)]?.Properties ?? {},
    }));
}

/** The series each group's metric filter counts its calico lines in (a `1` per matching event). */
function metricFilterSeries(logGroupName: string): string {
  const filters = Object.values(resources).filter(
    (r) => r.Type === "AWS::Logs::MetricFilter" && r.Properties.LogGroupName === logGroupName,
  );
  expect(filters, logGroupName).toHaveLength(1);
  const [t] = (filters[0] as { Properties: Json }).Properties.MetricTransformations as {
    MetricNamespace: string;
    MetricName: string;
    MetricValue: string;
    Dimensions?: unknown[];
  }[];
  expect(t?.MetricValue).toBe("1");
  expect(t?.Dimensions).toBeUndefined();
  return seriesKey(t?.MetricNamespace as string, t?.MetricName as string, []);
}

const context = (): Context =>
  ({
    functionName: "CalicoFlows-IngestFunction",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:CalicoFlows-IngestFunction",
    memoryLimitInMB: "1024",
    awsRequestId: "7f0c1c55-0000-4000-8000-000000000002",
    logGroupName: "/aws/lambda/CalicoFlows-IngestFunction",
    logStreamName: "stream",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 120_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  }) as Context;

const T0 = Date.parse("2026-05-04T03:00:00Z");
const calicoLine = (at: number, k: number) =>
  `${new Date(at).toISOString()} ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c ` +
  `MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=203.0.113.${k % 250} LEN=60 TOS=0x00 ` +
  "PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=443 WINDOW=62727 RES=0x00 SYN URGP=0";
/** Cut short after the TCP window, as a shipper with a too-small message size cuts them: not parsed. */
const cutShort = (at: number, k: number) => calicoLine(at, k).replace(/ RES=0x00 SYN URGP=0$/, " RES=0x0");

let nextEventId = 39_000_000;
function delivery(logGroup: string, lines: readonly string[]): CloudWatchLogsEvent {
  const logEvents = lines.map((message, k) => ({
    id: String(nextEventId++).padStart(56, "0"),
    timestamp: T0 + k,
    message,
  }));
  return {
    awslogs: {
      data: encodeSubscriptionData({
        messageType: "DATA_MESSAGE",
        owner: "123456789012",
        logGroup,
        logStream: "ip-192-168-74-5",
        subscriptionFilters: [stack.ingest.filterName],
        logEvents: logEvents as [(typeof logEvents)[0], ...typeof logEvents],
      }),
    },
  };
}

/**
 * One period: each group receives `lines[group]` calico lines (its metric filter counts them all), and those of the
 * groups in `delivered` reach the real ingest handler, malformed when the group is in `malformed`. The alarms in
 * breach of their threshold, by the log group each names in its description.
 */
async function period(
  lines: Readonly<Record<string, number>>,
  delivered: readonly string[],
  malformed: readonly string[] = [],
): Promise<string[]> {
  const sums = new Map<string, number>();
  for (const [group, count] of Object.entries(lines)) {
    const key = metricFilterSeries(group);
    sums.set(key, (sums.get(key) ?? 0) + count);
  }
  const { emf } = await printedEmf(async () => {
    for (const group of delivered) {
      const make = malformed.includes(group) ? cutShort : calicoLine;
      const messages = Array.from({ length: lines[group] ?? 0 }, (_, k) => make(T0 + k, k));
      await handler(delivery(group, messages), context());
    }
  });
  emfSums(emf, sums);
  return linesNotStored()
    .filter((a) => breaching(a.props, sums))
    .map((a) => GROUPS.find((g) => String(a.props.AlarmDescription).includes(g)) ?? a.id);
}

beforeAll(async () => {
  const app = new App({
    context: {
      ...cdkJson.context,
      clusterName: CLUSTER,
      logGroupNames: GROUPS,
      // No Kubernetes API here: the endpoints are stored unresolved, which LinesNotStored does not read.
      attribution: "none",
      "aws:cdk:bundling-stacks": [],
    },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  resources = Template.fromStack(stack).toJSON().Resources as typeof resources;
  const fn = resources[stack.getLogicalId(stack.ingest.function.function.node.defaultChild as CfnResource)];
  expect(fn).toBeDefined();
  // The handler's Powertools read the synthesized function's service, namespace and cluster when first imported.
  const env = ((fn as { Properties: Json }).Properties.Environment as { Variables: Json }).Variables;
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") vi.stubEnv(name, value);
  store = await startTestStore();
  vi.stubEnv("TABLE_NAME", await store.freshTable());
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", store.endpoint);
  vi.resetModules();
  ({ handler } = (await import("../../functions/ingest/handler.ts")) as unknown as {
    handler: typeof handler;
  });
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await store?.close();
});

describe("LinesNotStored, one alarm per subscribed log group", () => {
  // Defect: LinesNotStored judged all subscribed log groups together: CalicoLines / (CalicoLinesLogged-<cluster> +
  // LinesSeen), each summed over the groups, below 0.4. A group whose subscription filter is gone (deleted by hand, or
  // replaced by another tool: a group has at most two) has its lines logged and never delivered, so among N groups of
  // similar volume the share is (1 - 1/N) / (2 - 1/N): 1/3 for two groups, 0.4 for three, 0.43 for four (no alarm);
  // a small group beside a big one is never seen; and nothing is delivered, so no DeliveryErrors either.
  // Impact: an operator with several node groups' log groups loses one group's denials, silently.
  // Expected: each group judged on its own, with the same threshold and missing-data treatment.
  it("has one alarm per group, whose math reads that group's logged, delivered and stored lines only", () => {
    const alarms = linesNotStored();
    expect(alarms).toHaveLength(GROUPS.length);
    for (const group of GROUPS) {
      const mine = alarms.filter((a) => String(a.props.AlarmDescription).includes(group));
      expect(mine, group).toHaveLength(1);
      const { props } = mine[0] as { props: Json };
      expect(props.TreatMissingData).toBe("ignore");
      expect(props.Threshold).toBe(0.4);
      expect(props.EvaluationPeriods).toBe(3);
      const read = (props.Metrics as MetricQuery[]).flatMap((q) =>
        q.MetricStat ? [q.MetricStat.Metric] : [],
      );
      const keys = read.map((m) => seriesKey(m.Namespace, m.MetricName, m.Dimensions ?? []));
      expect(keys).toContain(metricFilterSeries(group));
      for (const other of GROUPS.filter((g) => g !== group)) {
        expect(keys, `${group} reads ${other}`).not.toContain(metricFilterSeries(other));
        expect(JSON.stringify(read), `${group} reads ${other}`).not.toContain(`"${other}"`);
      }
      // The function's lines (its EMF, under its service) of this group only: its LogGroup dimension.
      const own = read.filter((m) => m.Dimensions?.some((d) => d.Name === "service"));
      expect(own).toHaveLength(2);
      for (const m of own) expect(m.Dimensions).toContainEqual({ Name: "LogGroup", Value: group });
    }
  });

  it("fires for the one group of four, of similar volume, whose subscription is gone", async () => {
    const lines = Object.fromEntries(GROUPS.map((g) => [g, 40]));
    expect(await period(lines, GROUPS.slice(0, 3))).toEqual([GROUPS[3]]);
  });

  it("fires for a small group without its subscription beside a big one", async () => {
    const [big, small] = GROUPS as [string, string];
    expect(await period({ [big]: 200, [small]: 3 }, [big])).toEqual([small]);
  });

  it("fires for the group whose lines are delivered but cannot be parsed", async () => {
    const lines = Object.fromEntries(GROUPS.map((g) => [g, 20]));
    expect(await period(lines, GROUPS, [GROUPS[1] as string])).toEqual([GROUPS[1]]);
  });

  it("stays quiet while every group's lines are logged, delivered and stored", async () => {
    const lines = Object.fromEntries(GROUPS.map((g, k) => [g, 10 + 30 * k]));
    expect(await period(lines, GROUPS)).toEqual([]);
  });
});
