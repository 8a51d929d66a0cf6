// Review: what the on-call engineer can read of the Lambda functions during an incident. The real middy handlers
// (Powertools Logger and Metrics: JSON log records and EMF blobs on stdout) run in process against the local
// implementations: dynalite for the table, the HTTPS Kubernetes API test server for the cluster, fauxqs for SNS,
// and a loopback endpoint that accepts SNS requests and never answers (an SNS brownout). Each test reads the
// records an invocation printed, as CloudWatch Logs would hold them, and asks whether they say what is needed to
// act: which request, which operation, which line, and why.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import {
  CreateScheduleCommand,
  DeleteScheduleCommand,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { APIGatewayProxyResult, CloudWatchLogsEvent, Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DynamoPanicAudit } from "../../functions/adapters/dynamo/panic-audit.ts";
import { createTableInput } from "../../functions/adapters/dynamo/schema.ts";
import { CalicoPolicies, panicEksFixes } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import { EventBridgeExpiryScheduler } from "../../functions/adapters/scheduler.ts";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { DEFAULT_PANIC_SETTINGS } from "../../functions/core/panic-policy.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { STORE_RESERVE_MS } from "../../functions/ingest/config.ts";
import { createPanicHandler, type PanicRuntime } from "../../functions/panic/handler.ts";
import { PanicService } from "../../functions/panic/service.ts";
import { logger as sharedLogger } from "../../functions/shared/powertools.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import {
  apiEvent,
  CLUSTER,
  lambdaContext,
  type PanicHarness,
  resetPanicWorld,
  responseBody,
  SCHEDULE_GROUP,
  SCHEDULER_ROLE,
  startPanicHarness,
} from "../panic/harness.ts";
import { restApiEvent } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

type Json = Record<string, unknown>;

// ---- what an invocation printed ----------------------------------------------------------------------------

interface Printed<T> {
  result: T | undefined;
  error: Error | undefined;
  /** The structured log records (JSON lines without an EMF `_aws` block). */
  logs: Json[];
  /** Metric values of the EMF blobs, summed by name. */
  metrics: Record<string, number>;
  /** Every JSON record printed, EMF blobs included. */
  records: Json[];
}

function parseOutput(text: string): Pick<Printed<unknown>, "logs" | "metrics" | "records"> {
  const logs: Json[] = [];
  const metrics: Record<string, number> = {};
  const records: Json[] = [];
  for (const raw of text.split("\n")) {
    if (!raw.startsWith("{")) continue;
    const record = JSON.parse(raw) as Json;
    records.push(record);
    const aws = record._aws as { CloudWatchMetrics: { Metrics: { Name: string }[] }[] } | undefined;
    if (aws === undefined) {
      logs.push(record);
      continue;
    }
    for (const directive of aws.CloudWatchMetrics) {
      for (const { Name } of directive.Metrics) {
        const value = record[Name] as number | number[];
        metrics[Name] =
          (metrics[Name] ?? 0) + (Array.isArray(value) ? value.reduce((a, b) => a + b, 0) : value);
      }
    }
  }
  return { logs, metrics, records };
}

/** Runs `call` with stdout and stderr captured, as the Lambda runtime sends both to the function's log group. */
async function printed<T>(call: () => Promise<T>): Promise<Printed<T>> {
  const chunks: string[] = [];
  const capture = (chunk: unknown) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture as typeof process.stderr.write);
  let result: T | undefined;
  let error: Error | undefined;
  try {
    result = await call();
  } catch (e) {
    error = e as Error;
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { result, error, ...parseOutput(chunks.join("")) };
}

/** Every value of a record's structured fields (its `message` text left out), nested ones included. */
function fieldValues(record: Json): unknown[] {
  const values: unknown[] = [];
  const walk = (value: unknown, key: string) => {
    if (key === "message" || key === "stack" || key === "location") return;
    if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value as Json)) walk(v, k);
    } else {
      values.push(value);
    }
  };
  for (const [k, v] of Object.entries(record)) walk(v, k);
  return values;
}

const lambdaContextFor = (functionName: string, remainingMs = 120_000): Context =>
  ({
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:123456789012:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "2026/04/19/[$LATEST]0123456789abcdef",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => remainingMs,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  }) as Context;

// ---- local implementations ---------------------------------------------------------------------------------

let ts: TestStore;
let blackHole: { endpoint: string; requests: number; close(): Promise<void> };

/** An SNS endpoint that reads each request and never answers it: a publish in an SNS brownout. */
async function startBlackHole(): Promise<typeof blackHole> {
  let requests = 0;
  const server: Server = createServer((req) => {
    requests++;
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

beforeAll(async () => {
  [ts, blackHole] = await Promise.all([startTestStore(), startBlackHole()]);
});
afterAll(async () => {
  await Promise.all([ts?.close(), blackHole?.close()]);
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

async function newTable(): Promise<string> {
  const tableName = `t-${randomUUID()}`;
  await ts.client.send(new CreateTableCommand(createTableInput(tableName)));
  return tableName;
}

// ---- the ingest function ------------------------------------------------------------------------------------

const GROUP = "/aws/eks/prod/nodes";
const STREAM = "ip-192-168-74-5";
const T0 = Date.parse("2026-04-19T04:52:19Z");

type IngestHandler = (event: CloudWatchLogsEvent, context: Context) => Promise<unknown>;

async function coldIngest(tableName: string, env: Record<string, string> = {}): Promise<IngestHandler> {
  vi.stubEnv("CLUSTER_NAME", "prod");
  vi.stubEnv("TABLE_NAME", tableName);
  vi.stubEnv("ATTRIBUTION", "none");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", ts.endpoint);
  vi.stubEnv("POWERTOOLS_SERVICE_NAME", "calico-flows-ingest");
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  vi.resetModules();
  const { handler } = await import("../../functions/ingest/handler.ts");
  return handler as IngestHandler;
}

let nextId = 91_000_000;
interface CwEvent {
  id: string;
  timestamp: number;
  message: string;
}

function cwEvent(message: string, timestamp: number): CwEvent {
  return { id: String(nextId++).padStart(56, "0"), timestamp, message };
}

function delivery(events: readonly CwEvent[]): CloudWatchLogsEvent {
  return {
    awslogs: {
      data: encodeSubscriptionData({
        messageType: "DATA_MESSAGE",
        owner: "123456789012",
        logGroup: GROUP,
        logStream: STREAM,
        subscriptionFilters: ["calico-flows-prod"],
        logEvents: events as [CwEvent, ...CwEvent[]],
      }),
    },
  };
}

const packetLine = (src: string, dst: string, dport: number) =>
  `Apr 19 04:52:19 ${STREAM} kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=52641 DF PROTO=TCP SPT=40000 DPT=${dport} WINDOW=62727 RES=0x00 SYN URGP=0`;

describe("the ingest function's log records", () => {
  it("lets on-call find each malformed line it reports: its event's time, or the line, not only its event id", async () => {
    // Defect: ingestEvent (functions/ingest/handler.ts) reports a malformed calico-packet line as
    // `{ message: "malformed calico-packet line", eventId, reason }` plus the delivery's logGroup/logStream. The
    // reasons (core/parse.ts) never quote the line, and CloudWatch Logs has no way to fetch an event by its id
    // (GetLogEvents and FilterLogEvents select by time and pattern only).
    // Impact: when LinesNotStored fires, deploy.md §6 says "run a sample through `calico-flows parse`, whose stderr
    // names each line and why"; on-call has the samples' ids and stream but cannot pull those lines out of a
    // stream that logs thousands a minute, so cannot see what the shipper or a new kernel format did to them.
    // Expected: each sample's record carries its event's timestamp (epoch ms or ISO-8601) or the line itself, so
    // that `aws logs get-log-events --log-stream-name <stream> --start-time <t>` (or the record) shows it.
    const tableName = await newTable();
    const handler = await coldIngest(tableName);
    const good = cwEvent(packetLine("192.168.1.10", "192.168.2.20", 5432), T0);
    // Cut short by the shipper after the TCP ports: one of the parser's "line cut short" reasons.
    const cutLine = packetLine("192.168.1.11", "192.168.2.20", 5432).replace(/ WINDOW=.*$/, "");
    const cut = cwEvent(cutLine, T0 + 7_000);
    const run = await printed(() => handler(delivery([good, cut]), lambdaContextFor("calico-flows-ingest")));
    expect(run.error).toBeUndefined();
    expect(run.metrics.MalformedLines).toBe(1);
    const samples = run.logs.filter((l) => l.message === "malformed calico-packet line");
    expect(samples).toHaveLength(1);
    const sample = samples[0] as Json;
    expect(sample).toMatchObject({ eventId: cut.id, logGroup: GROUP, logStream: STREAM });
    const values = fieldValues(sample);
    const findable =
      values.includes(cut.timestamp) ||
      values.includes(new Date(cut.timestamp).toISOString()) ||
      values.some((v) => typeof v === "string" && v.length >= 40 && cutLine.startsWith(v.replace(/…$/, "")));
    expect(findable, JSON.stringify(sample)).toBe(true);
  });

  it("says which step a delivery ran out of time in, not that it was not stored, when SNS hangs after the flows were stored", async () => {
    // Defect: when the deadline (STORE_RESERVE_MS before the timeout) passes, withinDeadline (core/ingest.ts)
    // throws IngestOutOfTimeError "the batch was not stored in the time the invocation had", whatever step was
    // running, and ingestEvent logs it as "delivery failed" with the delivery's ids only. The IngestProgress it
    // holds (flows stored, alerts opened) goes to metrics but not into the record. The ingest's SNS client is made
    // without request timeouts (`new SNSClient({})`), so a publish in an SNS brownout is what runs into the deadline.
    // Impact: paged by IngestErrors during an SNS brownout, on-call reads that deliveries are "not stored in time"
    // and goes after DynamoDB (its throttles, the table) while the flows were stored and the alerts' publishes
    // hang; nothing in the record points at SNS or at the alert step.
    // Expected: the ERROR record of such a failure names the step it was in (publishing alerts / SNS), or says
    // that its flows were stored (how many), rather than only an error claiming the batch was not stored.
    const tableName = await newTable();
    const handler = await coldIngest(tableName, {
      ALERTS_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:calico-flows-alerts",
      AWS_ENDPOINT_URL_SNS: blackHole.endpoint,
    });
    // One internal denial: one flow, one alert to publish.
    const event = delivery([cwEvent(packetLine("192.168.1.10", "192.168.2.20", 5432), T0 + 60_000)]);
    const before = blackHole.requests;
    // 2 s of storing time left (the invocation's 2 minutes, at 32 s to go).
    const run = await printed(() =>
      handler(event, lambdaContextFor("calico-flows-ingest", STORE_RESERVE_MS + 2_000)),
    );
    expect(run.error?.name).toBe("IngestOutOfTimeError");
    expect(blackHole.requests).toBeGreaterThan(before);
    // The flows were stored (and counted), before the publish that hung.
    expect(run.metrics.FlowsWritten).toBe(1);
    const errors = run.logs.filter((l) => l.level === "ERROR");
    expect(errors.length).toBeGreaterThan(0);
    // A field (name or value) that points at the alert step, or at the flows the run stored. The function's own
    // names ("calico-flows-ingest") and the stack trace are left out.
    const own = new Set(["service", "function_name", "function_arn", "stack", "location"]);
    const says = errors.some((record) =>
      /sns|publish|alert|flows/i.test(
        JSON.stringify(record, (key, value) => (own.has(key) ? undefined : value)),
      ),
    );
    expect(says, JSON.stringify(errors)).toBe(true);
  });
});

// ---- the query function -------------------------------------------------------------------------------------

/** The stack as `cdk synth` builds it (bundling skipped), for the cluster "prod". */
function synthesized(): { resources: Record<string, { Type: string; Properties: Json }> } {
  const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
    context: Json;
  };
  const app = new App({
    context: {
      ...cdkJson.context,
      clusterName: "prod",
      logGroupNames: [GROUP],
      "aws:cdk:bundling-stacks": [],
    },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  return { resources: Template.fromStack(stack).toJSON().Resources };
}

type Dimension = { Name: string; Value: unknown };
const seriesKey = (namespace: string, metric: string, dims: readonly Dimension[]) =>
  `${namespace}|${metric}|${JSON.stringify([...dims].sort((a, b) => a.Name.localeCompare(b.Name)).map((d) => [d.Name, d.Value]))}`;

/** The series of the EMF blobs among `records` (namespace, metric, dimension set). */
function emfSeries(records: readonly Json[]): string[] {
  const keys: string[] = [];
  for (const record of records) {
    const aws = record._aws as
      | { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] }
      | undefined;
    if (aws === undefined) continue;
    for (const directive of aws.CloudWatchMetrics) {
      for (const names of directive.Dimensions) {
        const dims = names.map((n) => ({ Name: n, Value: record[n] }));
        for (const { Name } of directive.Metrics) keys.push(seriesKey(directive.Namespace, Name, dims));
      }
    }
  }
  return keys;
}

/** Every metric series an alarm reads, its math expressions' included. */
function alarmSeries(props: Json): string[] {
  if (typeof props.Namespace === "string") {
    return [seriesKey(props.Namespace, String(props.MetricName), (props.Dimensions ?? []) as Dimension[])];
  }
  return ((props.Metrics ?? []) as { MetricStat?: { Metric: Json } }[]).flatMap((m) =>
    m.MetricStat === undefined
      ? []
      : [
          seriesKey(
            String(m.MetricStat.Metric.Namespace),
            String(m.MetricStat.Metric.MetricName),
            (m.MetricStat.Metric.Dimensions ?? []) as Dimension[],
          ),
        ],
  );
}

/**
 * One GET /flows through the query function's middy handler, configured with the environment the stack gives
 * it, over a table the store cannot read (deleted, or the wrong name after a deploy): every Query fails.
 */
async function failingQuery(env: Json) {
  for (const [k, v] of Object.entries(env)) if (typeof v === "string") vi.stubEnv(k, v);
  vi.stubEnv("TABLE_NAME", `missing-${randomUUID()}`);
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", ts.endpoint);
  vi.resetModules();
  const { handler } = await import("../../functions/query/handler.ts");
  const event = restApiEvent("/flows", { since: "2026-04-19T00:00:00Z", until: "2026-04-19T06:00:00Z" });
  const run = await printed(
    async () =>
      (await handler(event, lambdaContextFor("calico-flows-query", 25_000))) as APIGatewayProxyResult,
  );
  return { event, run };
}

describe("the query function on call", () => {
  let resources: Record<string, { Type: string; Properties: Json }>;
  let queryId: string;
  let queryEnv: Json;

  beforeAll(() => {
    resources = synthesized().resources;
    const found = Object.entries(resources).find(
      ([, r]) =>
        r.Type === "AWS::Lambda::Function" &&
        (r.Properties.Environment as { Variables: Json }).Variables.POWERTOOLS_SERVICE_NAME ===
          "calico-flows-query",
    );
    if (found === undefined) throw new Error("no query function in the stack");
    [queryId] = found;
    queryEnv = (found[1].Properties.Environment as { Variables: Json }).Variables;
  });

  it("logs an internal error under the request id its 500 answer gives the caller", async () => {
    // Defect: handleQuery (functions/query/handler.ts) answers an unexpected failure with
    // `500 { message: "internal error", requestId: event.requestContext.requestId }` (API Gateway's request id)
    // and logs "query failed" with the route and error. The Logger (injectLambdaContext, no correlation id path)
    // stamps that record with the Lambda request id (function_request_id) only, and the stage's access log
    // (jsonWithStandardFields) does not map one to the other.
    // Impact: a user or on-call holding the 500 answer searches the query function's logs for its requestId and
    // finds nothing: the one id the API hands out for a failure leads nowhere, so the cause of that failure is
    // found only by guessing by time among every other request's records.
    // Expected: the ERROR record of the failure carries the request id the answer gives (e.g. Powertools'
    // correlation id from requestContext.requestId), so the two can be matched.
    const { event, run } = await failingQuery(queryEnv);
    expect(run.result?.statusCode).toBe(500);
    const answer = JSON.parse(run.result?.body ?? "{}") as { requestId?: string };
    expect(answer.requestId).toBe(event.requestContext.requestId);
    const errors = run.logs.filter((l) => l.level === "ERROR");
    expect(errors.length, "an ERROR record of the failure").toBeGreaterThan(0);
    expect(
      errors.some((record) => fieldValues(record).includes(answer.requestId)),
      JSON.stringify(errors),
    ).toBe(true);
  });

  it("counts a failed query where the QueryErrors alarm and the Errors graph look", async () => {
    // Defect: handleQuery catches every unexpected error and returns a 500, so Lambda counts the invocation as a
    // success (AWS/Lambda Errors stays 0), and the handler emits no metric of its own for it (FlowsReturned only
    // on success). The stack's QueryErrors alarm ("The query function keeps failing") and the dashboard's Errors
    // graph read only AWS/Lambda Errors of the query function (lib/monitoring.ts).
    // Impact: with every query failing (the table unreadable, the role's grant gone, DynamoDB failing past the
    // retries) QueryErrors stays OK and the Errors graph shows the query function at 0; only Api5xx, which lumps
    // the panic and query functions together and needs 2 of 3 periods, says anything, so on-call cannot see
    // which function fails. QueryErrors only ever fires on timeouts and bad configuration.
    // Expected: a failed query is counted in a series the QueryErrors alarm reads (the function's Errors, by
    // failing the invocation, or a metric the handler emits and the alarm watches).
    const { run } = await failingQuery(queryEnv);
    // Failed: a 5xx answer, or an error for Lambda (API Gateway then answers 502).
    expect(run.error !== undefined || (run.result?.statusCode ?? 0) >= 500).toBe(true);
    const emitted = new Set(emfSeries(run.records));
    if (run.error !== undefined) {
      emitted.add(seriesKey("AWS/Lambda", "Errors", [{ Name: "FunctionName", Value: { Ref: queryId } }]));
    }
    const alarm = Object.entries(resources).find(
      ([id, r]) => r.Type === "AWS::CloudWatch::Alarm" && id.startsWith("MonitoringQueryErrors"),
    );
    expect(alarm, "the QueryErrors alarm").toBeDefined();
    const watched = alarmSeries((alarm as [string, { Properties: Json }])[1].Properties);
    expect(
      watched.filter((k) => emitted.has(k)),
      `watched: ${watched.join(", ")}; emitted: ${[...emitted].join(", ")}`,
    ).not.toEqual([]);
  });
});

// ---- the panic function -------------------------------------------------------------------------------------

describe("the panic function's log records", () => {
  const scheduler = mockClient(SchedulerClient);
  let h: PanicHarness;
  let runtime: PanicRuntime;

  beforeAll(async () => {
    h = await startPanicHarness();
    // The function's runtime as createRuntime (functions/panic/handler.ts) makes it, the service logging with the
    // function's one Logger, over the harness's local cluster, table and topic.
    runtime = {
      service: new PanicService({
        cluster: CLUSTER,
        settings: DEFAULT_PANIC_SETTINGS,
        calico: new CalicoPolicies({
          apiGroup: DEFAULT_PANIC_SETTINGS.apiGroup,
          kubeConfig: () => loadKubeconfig({ kubeconfig: h.kube.kubeconfigPath }),
          description: "the test cluster",
          timeoutMs: 2_000,
          fixes: panicEksFixes(CLUSTER),
        }),
        defaultTtlMinutes: 60,
        audit: new DynamoPanicAudit({ client: h.store.clientFor(), tableName: h.store.tableName }),
        sink: new SnsAlertSink({ client: h.sns.sns, topicArn: h.topicArn }),
        scheduler: new EventBridgeExpiryScheduler({
          client: new SchedulerClient({ region: "eu-west-1" }),
          groupName: SCHEDULE_GROUP,
          roleArn: SCHEDULER_ROLE,
        }),
        logger: sharedLogger,
      }),
    };
  });
  afterAll(async () => {
    scheduler.restore();
    await h?.close();
  });

  const handler = () => createPanicHandler(() => runtime);
  const scheduledInput = () =>
    JSON.parse(
      scheduler.commandCalls(CreateScheduleCommand).at(-1)?.args[0].input.Target?.Input ?? "null",
    ) as Json;

  async function applied(ttlMinutes: number): Promise<void> {
    await resetPanicWorld(h, scheduler);
    scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x/y" });
    scheduler.on(UpdateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x/y" });
    scheduler.on(DeleteScheduleCommand).resolves({});
    const run = await printed(() =>
      handler()(apiEvent("POST", { reason: "checkout cannot reach payments", ttlMinutes }), lambdaContext()),
    );
    expect(run.error).toBeUndefined();
    expect(responseBody(run.result as APIGatewayProxyResult).result).toBe("applied");
    await h.announcements();
  }

  it("leaves a structured ERROR record when a scheduled expiry fails to revert the policy", async () => {
    // Defect: createPanicHandler (functions/panic/handler.ts) lets a failing expiry throw so that Lambda retries
    // it, and logs nothing of it: "expiry handled" is logged on success only, PanicService.#remove audits the
    // failure without logging it, and no metric of the function's own counts it (Panic_expire_<result> only on
    // success). What reaches the function's log group is the runtime's own text "Invoke Error" line (the function's
    // logging format is Text), outside the Powertools records and their fields.
    // Impact: an expiry that fails leaves the allow-all policy applied, workloads unisolated; PanicErrors says
    // "Check `calico-flows panic status` and the function's logs", where a query for the function's ERROR records
    // (level = "ERROR") finds nothing, and no record names the cluster, the policy, its expiry or the cause.
    // Expected: the invocation prints an ERROR record naming the operation (the expiry / revert) and the cause as
    // fields (its kind or error), as the API path's "panic request failed" does for a request.
    await applied(1);
    const input = scheduledInput();
    expect(input).toMatchObject({ action: "revert" });
    // The API server refuses the delete (500) through the revert's tries.
    await h.kube.setFault({ fault: { kind: "status", code: 500 }, method: "DELETE" });
    const run = await printed(() => handler()(input as never, lambdaContext()));
    expect(run.error, "the failing expiry is thrown, for Lambda's retries").toBeDefined();
    const errors = run.logs.filter((l) => l.level === "ERROR");
    expect(errors.length, `ERROR records: ${JSON.stringify(run.logs)}`).toBeGreaterThan(0);
    const named = errors.some((record) =>
      fieldValues(record).some((v) => v === "expire" || v === "revert" || v === input.expiresAt),
    );
    expect(named, JSON.stringify(errors)).toBe(true);
  });

  it("names the action (apply, revert, status) in the record of a failed panic request", async () => {
    // Defect: handleHttp (functions/panic/handler.ts) logs a failed request as "panic request failed" with
    // `{ kind, reason }` (and the requester, for POST and DELETE), and the metric PanicFailure_<kind>: neither
    // says which action failed. The reason is the Kubernetes call's message ("reading globalnetworkpolicies/
    // allow-all failed: …"), which apply, revert and status all make.
    // Impact: during an incident on-call reads "panic request failed: kube-unavailable" and cannot tell from the
    // function's logs whether an allow-all was (not) applied or (not) reverted, which decides what to do next
    // (apply again, or revert by hand because isolation is still off).
    // Expected: the record carries the action as a field ("revert" here, or the method DELETE).
    await applied(0);
    // The API server fails the revert's read of the policy (500, through its tries): the same read an apply and a
    // status make first.
    await h.kube.setFault({
      fault: { kind: "status", code: 500 },
      method: "GET",
      path: /globalnetworkpolicies\/allow-all$/,
    });
    const run = await printed(() =>
      handler()(apiEvent("DELETE", { reason: "payments back" }), lambdaContext()),
    );
    await h.kube.setFault(null);
    const answer = run.result as APIGatewayProxyResult;
    expect(answer.statusCode).toBe(502);
    const failed = run.logs.filter((l) => l.message === "panic request failed");
    expect(failed, JSON.stringify(run.logs)).toHaveLength(1);
    const record = failed[0] as Json;
    expect(record.kind).toBe("kube-unavailable");
    expect(
      fieldValues(record).some((v) => v === "revert" || v === "DELETE"),
      JSON.stringify(record),
    ).toBe(true);
  });
});
