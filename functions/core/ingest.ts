// The ingest use case: one batch of log events through the pipeline into the store, then alert delivery.
// The Lambda handler, `replay`, `backfill` and `redrive` all call this, so they cannot drift apart.
import { AlertDeliveryError, type AlertPublisher, deliverAlerts } from "./alert-delivery.ts";
import type { DeliveredEvents } from "./delivered-events.ts";
import { type LogEvent, type PipelineOptions, type PipelineResult, runPipeline } from "./pipeline.ts";
import type { FlowStore } from "./ports.ts";
import type { AlertRecord } from "./types.ts";

export interface IngestDeps {
  store: FlowStore;
  /** Absent: alerts are recorded (and listed by `alerts`) but not published. */
  sink?: AlertPublisher;
  pipeline: PipelineOptions;
  alertWindowMs: number;
  /** Most alerts published per batch; the rest are summarised in one message. */
  alertCap: number;
}

export interface IngestResult extends PipelineResult {
  flowsApplied: number;
  flowsDuplicate: number;
  writeRequests: number;
  /** Handed out for delivery: the alerts this batch opened, and earlier ones still pending. */
  alerts: AlertRecord[];
  /** Alerts this batch opened (new windows): what it raised, not the pending ones it hands out again. */
  alertsOpened: number;
  alertsSent: number;
  alertsSuppressed: number;
}

/**
 * The batch is stored and its alerts recorded, but some were left pending: thrown, as AlertDeliveryError is,
 * so that the payload is retried. Also says how many alerts the batch opened, which its retry opens no more.
 */
export class BatchAlertDeliveryError extends AlertDeliveryError {
  readonly alertsOpened: number;

  constructor(failure: AlertDeliveryError, alertsOpened: number) {
    super(failure.result, failure.errors);
    this.alertsOpened = alertsOpened;
  }
}

export async function ingestBatch(
  events: readonly LogEvent[] | DeliveredEvents,
  contribution: string,
  deps: IngestDeps,
  options: {
    /** This contribution's flows were stored before (coverage says so): none is written again. */
    flowsStored?: boolean;
    /**
     * Called once the flows are stored, before the alerts: coverage marks its claims there, so that a retry of
     * a batch whose alerts failed writes no flow again (it would count them twice were it attributed otherwise).
     */
    onFlowsStored?: () => Promise<void>;
  } = {},
): Promise<IngestResult> {
  const result = await runPipeline(events, deps.pipeline);
  const written =
    options.flowsStored === true
      ? { applied: 0, duplicates: result.flows.length, writeRequests: 0 }
      : await deps.store.writeFlows(result.flows, contribution);
  await options.onFlowsStored?.();
  const { alerts, opened } =
    result.candidates.length > 0
      ? await deps.store.applyAlerts(result.candidates, contribution, { windowMs: deps.alertWindowMs })
      : { alerts: [], opened: 0 };
  let sent = 0;
  let suppressed = 0;
  if (deps.sink !== undefined && alerts.length > 0) {
    try {
      const delivery = await deliverAlerts(deps.store, deps.sink, alerts, { cap: deps.alertCap });
      sent = delivery.sent;
      suppressed = delivery.suppressed;
    } catch (error) {
      if (error instanceof AlertDeliveryError) throw new BatchAlertDeliveryError(error, opened);
      throw error;
    }
  }
  return {
    ...result,
    flowsApplied: written.applied,
    flowsDuplicate: written.duplicates,
    writeRequests: written.writeRequests,
    alerts,
    alertsOpened: opened,
    alertsSent: sent,
    alertsSuppressed: suppressed,
  };
}
