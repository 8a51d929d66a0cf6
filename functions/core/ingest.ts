// The ingest use case: one batch of log events through the pipeline into the store, then alert delivery.
// The Lambda handler, `replay`, `backfill` and `redrive` all call this, so they cannot drift apart.
import { type AlertPublisher, deliverAlerts } from "./alert-delivery.ts";
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
  alerts: AlertRecord[];
  alertsSent: number;
  alertsSuppressed: number;
}

export async function ingestBatch(
  events: readonly LogEvent[] | DeliveredEvents,
  contribution: string,
  deps: IngestDeps,
): Promise<IngestResult> {
  const result = await runPipeline(events, deps.pipeline);
  const written = await deps.store.writeFlows(result.flows, contribution);
  const alerts =
    result.candidates.length > 0
      ? await deps.store.applyAlerts(result.candidates, contribution, { windowMs: deps.alertWindowMs })
      : [];
  let sent = 0;
  let suppressed = 0;
  if (deps.sink !== undefined && alerts.length > 0) {
    const delivery = await deliverAlerts(deps.store, deps.sink, alerts, { cap: deps.alertCap });
    sent = delivery.sent;
    suppressed = delivery.suppressed;
  }
  return {
    ...result,
    flowsApplied: written.applied,
    flowsDuplicate: written.duplicates,
    writeRequests: written.writeRequests,
    alerts,
    alertsSent: sent,
    alertsSuppressed: suppressed,
  };
}
