// Ingest Lambda: CloudWatch Logs subscription deliveries ▶ pipeline ▶ flow store ▶ alerts.
// Thin by design: configuration and clients are built once per container; the work is in core/ingest.ts.

import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import { EKSClient } from "@aws-sdk/client-eks";
import { SNSClient } from "@aws-sdk/client-sns";
import middy from "@middy/core";
import type { CloudWatchLogsEvent, Context } from "aws-lambda";
import { storeClient } from "../adapters/dynamo/client.ts";
import { tableStores } from "../adapters/dynamo/stores.ts";
import { eksKubeConfig } from "../adapters/kube/cluster-access.ts";
import { LiveDirectory } from "../adapters/kube/live-directory.ts";
import { PUBLISH_TIMEOUTS, SnsAlertSink } from "../adapters/sns-sink.ts";
import { type CoverageStore, type DeliveryResult, ingestDelivery } from "../core/coverage.ts";
import { Deadline } from "../core/deadline.ts";
import {
  checkSettings,
  type IngestDeps,
  type IngestProgress,
  type IngestSettings,
  type MemoKept,
} from "../core/ingest.ts";
import { createScanner } from "../core/parse.ts";
import { CorruptPayloadError, decodeDelivery } from "../core/subscription-payload.ts";
import type { IpDirectory } from "../core/types.ts";
import { logger, metrics, tracer } from "../shared/powertools.ts";
import { type IngestConfig, loadIngestConfig, STORE_RESERVE_MS } from "./config.ts";

/**
 * A failed run's memo: counted, and logged when its retries will attribute afresh (their flows may count twice), or
 * when a retry could not read the memo kept for it.
 */
function reportMemo(kept: MemoKept): void {
  metrics.addMetric(
    kept.outcome === "saved" || kept.outcome === "taken" ? "AttributionMemosKept" : "AttributionMemosLost",
    MetricUnit.Count,
    1,
  );
  if (kept.outcome === "unreadable") {
    logger.error("the attribution an earlier run of this batch kept cannot be read: attributed afresh", {
      contribution: kept.contribution,
      bytes: kept.bytes,
      error: kept.error,
    });
  } else if (kept.outcome === "too-large" || kept.outcome === "failed") {
    logger.error("the attribution of a failed batch was not kept: its retry attributes afresh", {
      contribution: kept.contribution,
      outcome: kept.outcome,
      bytes: kept.bytes,
      error: kept.error,
    });
  }
}

/** Used when attribution is switched off: every internal endpoint is stored unresolved, with its IP. */
const noDirectory: IpDirectory = {
  resolve: async (lookups) => lookups.map(() => ({ status: "unavailable", reason: "attribution disabled" })),
};

export interface IngestRuntime {
  deps: IngestDeps;
  /** Which events are counted, so backfills and redrive never count them again (docs/backfill.md); absent: no coverage. */
  coverage?: CoverageStore;
  directory: IpDirectory;
}

export function createRuntime(config: IngestConfig): IngestRuntime {
  const dynamo = tracer.captureAWSv3Client(storeClient());
  const { store, history, coverage, memos, tallies } = tableStores({
    client: dynamo,
    tableName: config.TABLE_NAME,
    retentionDays: config.RETENTION_DAYS,
  });
  const directory: IpDirectory =
    config.ATTRIBUTION === "eks"
      ? new LiveDirectory({
          kubeConfig: () =>
            eksKubeConfig({
              clusterName: config.CLUSTER_NAME,
              eks: tracer.captureAWSv3Client(new EKSClient({})),
            }),
          history,
          cluster: config.CLUSTER_NAME,
          namespaceLabelKeys: config.NAMESPACE_LABEL_KEYS,
          timeoutMs: config.KUBE_TIMEOUT_SECONDS * 1000,
          logger,
        })
      : noDirectory;
  const sink =
    config.ALERTS_TOPIC_ARN === undefined
      ? undefined
      : new SnsAlertSink({
          // Bounded, so that a publish SNS does not answer ends in its run rather than past the invocation.
          client: tracer.captureAWSv3Client(new SNSClient({ requestHandler: { ...PUBLISH_TIMEOUTS } })),
          topicArn: config.ALERTS_TOPIC_ARN,
          storeArgs: config.API_URL === undefined ? [] : ["--api", config.API_URL],
        });
  const settings: IngestSettings = checkSettings({
    bucketSeconds: config.AGGREGATION_SECONDS,
    prefix: config.LOG_PREFIX,
    prefixFormat: config.LOG_PREFIX_FORMAT,
    internalCidrs: config.INTERNAL_CIDRS,
    workloadInterfacePrefixes: config.WORKLOAD_INTERFACE_PREFIXES,
    scanThreshold: config.SCAN_THRESHOLD,
    alertWindowMs: config.ALERT_WINDOW_MINUTES * 60_000,
  });
  return {
    directory,
    coverage,
    deps: {
      store,
      sink,
      memos,
      tally: tallies,
      onMemoKept: reportMemo,
      alertWindowMs: settings.alertWindowMs,
      alertCap: config.ALERT_CAP,
      settings,
      pipeline: {
        cluster: config.CLUSTER_NAME,
        internal: config.internal,
        bucketSeconds: settings.bucketSeconds,
        scanner: createScanner({ prefix: settings.prefix, prefixFormat: settings.prefixFormat }),
        directory,
        workloadInterfacePrefixes: settings.workloadInterfacePrefixes,
        scanThreshold: settings.scanThreshold,
      },
    },
  };
}

function recordMetrics(result: DeliveryResult): void {
  const count = MetricUnit.Count;
  metrics.addMetric("FlowsWritten", count, result.flowsApplied);
  metrics.addMetric("DuplicateFlows", count, result.flowsDuplicate);
  metrics.addMetric("EventsAlreadyCounted", count, result.eventsAlreadyCounted);
  metrics.addMetric("AlertsRaised", count, result.alertsOpened);
  metrics.addMetric("AttributionMisses", count, result.stats.attributionMisses);
  metrics.addMetric("UnresolvedEndpoints", count, result.stats.unresolved);
  metrics.addMetric("DynamoWriteRequests", count, result.writeRequests);
}

/**
 * The delivery's lines, once parsed, whether its run succeeds or not: delivered, and stored once their flows are. A run
 * counts what no earlier run of the payload counted (IngestProgress), so that a payload whose alerts could not be
 * published, kept in the failed-payloads queue, still shows its lines delivered and stored, and its retries count
 * none of them again.
 */
function recordLines(logGroup: string, progress: IngestProgress): void {
  // Failed before parsing (claiming, reading the memo): nothing to count. Its retries find the batch claimed and count
  // no delivered lines either: too few rather than twice.
  if (progress.linesSeen === undefined) return;
  const count = MetricUnit.Count;
  const stored = progress.calicoLinesStored ?? 0;
  metrics.addMetric("LinesSeen", count, progress.linesSeen);
  metrics.addMetric("CalicoLines", count, stored);
  metrics.addMetric("MalformedLines", count, progress.malformedLines ?? 0);
  recordGroupLines(logGroup, progress.linesSeen, stored);
}

/**
 * The delivery's lines again, under its log group: each group's LinesNotStored alarm sets them against the calico lines
 * that group's metric filter counted, so that a group whose subscription is gone shows beside those that deliver. Names
 * of their own, so that LinesSeen and CalicoLines stay one series each, the cluster's. One LogGroup value per subscribed
 * group: only those may invoke the function.
 */
function recordGroupLines(logGroup: string, seen: number, stored: number): void {
  for (const [name, value] of [
    ["LinesSeenByGroup", seen],
    ["CalicoLinesByGroup", stored],
  ] as const) {
    // A single metric is printed at once, and takes its dimension alone: the function's other metrics stay without.
    const metric = metrics.singleMetric();
    metric.addDimension("LogGroup", logGroup);
    metric.addMetric(name, MetricUnit.Count, value);
  }
}

/**
 * What a failed run stored, counted now, up to the write or alert it failed on: its retry does not count it again (it
 * finds the flows stored, and opens the alerts no more).
 */
function recordProgress(progress: IngestProgress): void {
  const count = MetricUnit.Count;
  if (progress.flows !== undefined) {
    metrics.addMetric("FlowsWritten", count, progress.flows.applied);
    metrics.addMetric("DuplicateFlows", count, progress.flows.duplicates);
    metrics.addMetric("DynamoWriteRequests", count, progress.flows.writeRequests);
  }
  if (progress.alertsOpened !== undefined) metrics.addMetric("AlertsRaised", count, progress.alertsOpened);
}

/** Kubernetes requests made so far by a live directory (its counters are cumulative per container). */
function apiCalls(directory: IpDirectory): number {
  return directory instanceof LiveDirectory ? directory.stats().apiCalls : 0;
}

/** The Kubernetes requests this run made: those since `before`, the directory's count when it began. */
function recordApiCalls(directory: IpDirectory, before: number): void {
  metrics.addMetric("KubernetesApiCalls", MetricUnit.Count, apiCalls(directory) - before);
}

export async function ingestEvent(
  event: CloudWatchLogsEvent,
  runtime: IngestRuntime,
  /** When the delivery must be stored by (absent: no limit). */
  deadline?: Deadline,
  /** Aborted once the invocation has answered (middy's early timeout): its work stops there. */
  signal?: AbortSignal,
): Promise<DeliveryResult | undefined> {
  let payload: ReturnType<typeof decodeDelivery>;
  try {
    payload = decodeDelivery(event?.awslogs?.data);
  } catch (error) {
    if (error instanceof CorruptPayloadError) {
      metrics.addMetric("CorruptPayloads", MetricUnit.Count, 1);
      // Thrown on purpose: the asynchronous invocation retries and then lands the whole event, content
      // included, in the on-failure destination, from where `calico-flows redrive` can inspect it.
      logger.error("corrupt subscription payload", { reason: error.message });
    }
    throw error;
  }
  if (payload.messageType === "CONTROL_MESSAGE") {
    logger.info("control message acknowledged", { logGroup: payload.logGroup });
    return undefined;
  }
  logger.appendKeys({ logGroup: payload.logGroup, logStream: payload.logStream });
  const callsBefore = apiCalls(runtime.directory);
  const { logGroup, logStream, events } = payload;
  // Which delivery failed, for on-call (the log group and stream are the logger's keys): one stream again and
  // again, or all of them. A timed-out invocation's is logged as middy answers for it: nothing of it runs after.
  const delivery = { firstEventId: events.id(0), events: events.length };
  const progress: IngestProgress = {};
  const timedOut = () =>
    logger.error("delivery not stored in the invocation's time (retried by Lambda)", {
      ...delivery,
      ...progress,
    });
  signal?.addEventListener("abort", timedOut);
  let result: DeliveryResult;
  try {
    result = await ingestDelivery(
      { logGroup, logStream, logEvents: events },
      runtime.deps,
      runtime.coverage,
      "live",
      { deadline, signal, progress },
    );
  } catch (error) {
    // Middy answered for this invocation (its timeout): this runs thawed in a later one, whose output it is not.
    if (signal?.aborted === true) throw error;
    recordProgress(progress);
    recordLines(logGroup, progress);
    // Made whether the run stores or not: a payload failing again and again still loads the API server.
    recordApiCalls(runtime.directory, callsBefore);
    // With the step it failed in and what it had stored: a delivery failing while publishing alerts, its flows
    // stored, is SNS's trouble, not the table's.
    logger.error("delivery failed (retried by Lambda, then kept in the failed-payloads queue)", {
      ...delivery,
      ...progress,
      error: error as Error,
    });
    throw error;
  } finally {
    signal?.removeEventListener("abort", timedOut);
  }
  if (result.settings !== undefined) {
    // A retry across a deploy that changed them: stored as its first invocation began to store it.
    logger.warn(
      "delivery stored with the settings its first invocation claimed it under, not this function's",
      {
        ...delivery,
        claimed: result.settings,
        own: runtime.deps.settings,
      },
    );
  }
  recordMetrics(result);
  recordLines(logGroup, progress);
  const held = [...result.alertsHeld, ...result.completed.flatMap((c) => c.result.alertsHeld)];
  if (held.length > 0) {
    // Answered stored, so Lambda does not retry it for them: the run holding their lease sends them, or its retry
    // after `until`; failing that they stay pending until a later delivery folding into them hands them out.
    logger.warn(
      "alerts not published by this run: another run of this delivery holds their lease (a duplicate still " +
        "publishing, or a failed run whose retry after `until` sends them)",
      {
        ...delivery,
        held: held.length,
        alerts: held.map(({ id, openedAt, until }) => ({ id, openedAt, until })),
      },
    );
  }
  recordApiCalls(runtime.directory, callsBefore);
  for (const m of result.malformed) {
    // CloudWatch Logs finds an event by its stream and time, not by its id: `aws logs get-log-events --log-group-name
    // <logGroup> --log-stream-name <logStream> --start-time <eventTimestamp> --end-time <eventTimestamp + 1>`.
    logger.warn("malformed calico-packet line", {
      eventId: events.id(m.index),
      eventTimestamp: events.timestamp(m.index),
      reason: m.reason,
    });
  }
  logger.info("payload stored", {
    lines: result.stats.lines,
    calico: result.stats.calico,
    flows: result.flows.length,
    duplicates: result.flowsDuplicate,
    alertsOpened: result.alertsOpened,
    alertsHandedOut: result.alerts.length,
  });
  return result;
}

let runtime: IngestRuntime | undefined;

export const handler = middy(
  async (event: CloudWatchLogsEvent, context: Context, { signal }: { signal: AbortSignal }) => {
    runtime ??= createRuntime(loadIngestConfig(process.env));
    await ingestEvent(
      event,
      runtime,
      Deadline.after(context.getRemainingTimeInMillis() - STORE_RESERVE_MS),
      signal,
    );
  },
)
  .use(captureLambdaHandler(tracer))
  .use(injectLambdaContext(logger, { clearState: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }));
