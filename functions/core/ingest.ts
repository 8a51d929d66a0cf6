// The ingest use case: one batch of log events through the pipeline into the store, then alert delivery.
// The Lambda handler, `replay`, `backfill` and `redrive` all call this, so they cannot drift apart.
import { type AlertPublisher, deliverAlerts } from "./alert-delivery.ts";
import { talliedAlertCandidates } from "./alert-rules.ts";
import {
  type AttributionMemo,
  decodeMemo,
  encodeMemo,
  MemoFormatError,
  type MemoStore,
  RecordingDirectory,
} from "./attribution-memo.ts";
import type { Deadline } from "./deadline.ts";
import type { DeliveredEvents } from "./delivered-events.ts";
import { type LogEvent, type PipelineOptions, type PipelineResult, runPipeline } from "./pipeline.ts";
import type { DenialTally, FlowStore, FlowWriteResult } from "./ports.ts";
import type { AlertRecord } from "./types.ts";

export interface IngestDeps {
  store: FlowStore;
  /** Absent: alerts are recorded (and listed by `alerts`) but not published. */
  sink?: AlertPublisher;
  pipeline: PipelineOptions;
  alertWindowMs: number;
  /**
   * Where the internal alert rules count sources and destinations across batches (alert-rules.ts,
   * talliedAlertCandidates). Absent, or without a scan threshold: each batch is judged on its own.
   */
  tally?: DenialTally;
  /** Most alerts published per batch; the rest are summarised in one message. */
  alertCap: number;
  /**
   * Where a failed run's attribution is kept, so that its retries attribute as it did (attribution-memo.ts).
   * Absent: every run asks the directory afresh.
   */
  memos?: MemoStore;
  /**
   * Keep each run's attribution memo before its first flow write, not only when it fails: a process killed while
   * writing (SIGKILL, the OOM killer, a second Ctrl-C) keeps nothing otherwise, and whoever finishes its claim would
   * attribute afresh, giving the flows it stored other ids. The CLI's runs, which nothing bounds in time; not the
   * Lambda's, which fail in-process at their deadline and keep their memo then, and for which the write would cost
   * every delivery. @default false
   */
  memoBeforeWrites?: boolean;
  /**
   * Told what became of the memo of each run that failed after attributing its batch (or, with memoBeforeWrites, of
   * each run that asked the directory anything), and of a memo an earlier run kept that this one could not read (for logs and
   * metrics).
   */
  onMemoKept?: (kept: MemoKept) => void;
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
  /** reused: an earlier, failed run of the contribution kept its attribution, and this run attributed alike. */
  attributionMemo: "none" | "reused";
}

/**
 * What a run has done so far, filled in as its steps complete (IngestOptions.progress). A run that fails is
 * retried, and its retry does not count again what it did (its flows are duplicates then, its alerts opened
 * already): the caller counts a failed run's work from here.
 */
export interface IngestProgress {
  /** The step of storing the batch under way, or the one that failed: set as each starts. */
  step?: IngestStep;
  /** The batch's flow writes, once all of them are done. */
  flows?: FlowWriteResult;
  /** Alerts the batch opened, once its alert hits are applied. */
  alertsOpened?: number;
}

/** The steps of storing a batch, in their order (after attributing it, which the deadline does not interrupt). */
export type IngestStep =
  | "writing flows"
  | "marking the flows stored"
  | "counting denials"
  | "applying alerts"
  | "publishing alerts"
  | "marking the batch stored";

/**
 * The batch was not stored by its deadline: thrown so that it is retried, after its attribution memo was kept. It
 * names the step the deadline passed in, and whether the flows were stored: a run that ran out of time publishing
 * alerts points at SNS, not at the table.
 */
export class IngestOutOfTimeError extends Error {
  override name = "IngestOutOfTimeError";
  readonly step: IngestStep | undefined;

  constructor(progress: IngestProgress) {
    const { step, flows } = progress;
    const stored =
      flows !== undefined
        ? `its flows were stored (${flows.applied} new, ${flows.duplicates} already stored)`
        : step === undefined
          ? "nothing was stored"
          : "its flows were not all stored";
    super(
      `out of the invocation's time ${step === undefined ? "before storing the batch" : `while ${step}`}: ` +
        `${stored}; it fails to be retried`,
    );
    this.step = step;
  }
}

/** What became of a memo (IngestDeps.onMemoKept). */
export interface MemoKept {
  contribution: string;
  /**
   * saved: its retries attribute as it did; taken: a concurrent run of the contribution saved its own first, which
   * the retries use; too-large and failed: not saved, its retries attribute afresh; unreadable: the memo an earlier
   * run kept could not be read (another format, a damaged item), and this run attributed afresh.
   */
  outcome: "saved" | "taken" | "too-large" | "failed" | "unreadable";
  /** Bytes of the encoded memo (0 when too large). */
  bytes: number;
  error?: unknown;
}

export interface IngestOptions {
  /** This contribution's flows were stored before (coverage says so): none is written again. */
  flowsStored?: boolean;
  /**
   * Called once the flows are stored, before the alerts: coverage marks its claims there, so that a retry of
   * a batch whose alerts failed writes no flow again (it would count them twice were it attributed otherwise).
   */
  onFlowsStored?: () => Promise<void>;
  /**
   * Called last, once the alerts are delivered: a backfill marks its claim there. A failure in it fails the run as
   * any other, so that the memo is kept for whoever finishes the claim.
   */
  onStored?: () => Promise<void>;
  /** No earlier run of this contribution can have kept a memo (coverage says it was never claimed): none is read. */
  firstRun?: boolean;
  /**
   * When the batch must be stored by, else IngestOutOfTimeError (after no new flow write is started and the memo is
   * kept): the Lambda's remaining time less the time to keep the memo. Absent: no limit.
   */
  deadline?: Deadline;
  /**
   * Aborted once the invocation has answered (middy's early timeout): nothing more is started, kept or reported, as
   * Lambda freezes what is left and thaws it inside later invocations, among their work and their metrics.
   */
  signal?: AbortSignal;
  /** Filled in as the run goes (IngestProgress). */
  progress?: IngestProgress;
  /**
   * The contribution the batch's alert hits are counted under (denial tallies, alert windows), when not its own: a
   * backfill storing one minute of a delivery's claim apart from the others (coverage.ts, backfillMinute).
   */
  alertContribution?: string;
}

export async function ingestBatch(
  events: readonly LogEvent[] | DeliveredEvents,
  contribution: string,
  deps: IngestDeps,
  options: IngestOptions = {},
): Promise<IngestResult> {
  const memos = deps.memos;
  const cluster = deps.pipeline.cluster;
  const invocation = options.signal;
  const answered = () => invocation?.aborted === true;
  const loaded =
    memos === undefined || options.firstRun === true ? undefined : await memos.load(cluster, contribution);
  invocation?.throwIfAborted();
  let memo: AttributionMemo | undefined;
  if (loaded !== undefined) {
    try {
      memo = decodeMemo(loaded.bytes);
    } catch (error) {
      if (!(error instanceof MemoFormatError)) throw error;
      // Failing until someone can read it would leave the packets counted nowhere: attribute afresh instead.
      deps.onMemoKept?.({ contribution, outcome: "unreadable", bytes: loaded.bytes.length, error });
    }
  }
  const recorder = memos === undefined ? undefined : new RecordingDirectory(deps.pipeline.directory, memo);
  const result = await runPipeline(
    events,
    recorder === undefined ? deps.pipeline : { ...deps.pipeline, directory: recorder },
  );
  invocation?.throwIfAborted();
  // Kept before any flow is written (memoBeforeWrites): nothing of it is stored until it is kept, or failed to be.
  const keptFirst =
    deps.memoBeforeWrites === true &&
    options.flowsStored !== true &&
    memos !== undefined &&
    recorder !== undefined &&
    recorder.added > 0
      ? await keepMemo(memos, cluster, contribution, recorder, loaded?.version ?? 0, result)
      : undefined;
  if (keptFirst !== undefined) deps.onMemoKept?.(keptFirst);
  // Filled in even when the caller does not ask: a deadline passing names the step it stopped.
  const progress = options.progress ?? {};
  try {
    const stored = await withinDeadline(options.deadline, progress, (signal) =>
      storeBatch(result, contribution, deps, options, progress, signal),
    );
    return { ...stored, attributionMemo: memo === undefined ? "none" : "reused" };
  } catch (error) {
    // Failed after attributing, perhaps with part of the flows stored: the retry must attribute alike. A memo
    // kept before writing holds every answer (nothing is asked after the pipeline): only a failed save is tried again.
    if (
      memos !== undefined &&
      recorder !== undefined &&
      recorder.added > 0 &&
      (keptFirst === undefined || keptFirst.outcome === "failed") &&
      !answered()
    ) {
      const kept = await keepMemo(memos, cluster, contribution, recorder, loaded?.version ?? 0, result);
      // Once the invocation has answered, this would be counted among another invocation's metrics.
      if (!answered()) deps.onMemoKept?.(kept);
    }
    throw error;
  }
}

async function storeBatch(
  result: PipelineResult,
  contribution: string,
  deps: IngestDeps,
  options: IngestOptions,
  progress: IngestProgress,
  signal: AbortSignal | undefined,
): Promise<Omit<IngestResult, "attributionMemo">> {
  progress.step = "writing flows";
  const written =
    options.flowsStored === true
      ? { applied: 0, duplicates: result.flows.length, writeRequests: 0 }
      : await deps.store.writeFlows(result.flows, contribution, { signal });
  progress.flows = written;
  // Past the deadline the run has failed: nothing more is marked, applied or published (its retry does it).
  signal?.throwIfAborted();
  progress.step = "marking the flows stored";
  await options.onFlowsStored?.();
  signal?.throwIfAborted();
  const alertContribution = options.alertContribution ?? contribution;
  progress.step = "counting denials";
  const candidates =
    deps.tally !== undefined &&
    deps.pipeline.scanThreshold !== undefined &&
    result.flows.some((f) => f.internal)
      ? await talliedAlertCandidates(
          result.flows,
          { scanThreshold: deps.pipeline.scanThreshold },
          deps.tally,
          deps.alertWindowMs,
          { contribution: alertContribution, firstRun: options.firstRun === true },
        )
      : result.candidates;
  signal?.throwIfAborted();
  progress.step = "applying alerts";
  const applied =
    candidates.length > 0
      ? await deps.store.applyAlerts(candidates, alertContribution, {
          windowMs: deps.alertWindowMs,
          delivers: deps.sink !== undefined,
        })
      : { alerts: [], opened: 0 };
  const { alerts, opened } = applied;
  progress.alertsOpened = opened;
  let sent = 0;
  let suppressed = 0;
  signal?.throwIfAborted();
  if (deps.sink !== undefined && alerts.length > 0) {
    progress.step = "publishing alerts";
    const delivery = await deliverAlerts(deps.store, deps.sink, alerts, { cap: deps.alertCap });
    sent = delivery.sent;
    suppressed = delivery.suppressed;
  }
  signal?.throwIfAborted();
  progress.step = "marking the batch stored";
  await options.onStored?.();
  return {
    ...result,
    candidates,
    flowsApplied: written.applied,
    flowsDuplicate: written.duplicates,
    writeRequests: written.writeRequests,
    alerts,
    alertsOpened: opened,
    alertsSent: sent,
    alertsSuppressed: suppressed,
  };
}

/**
 * `work`'s result, or IngestOutOfTimeError at `deadline`, when its signal is aborted: no new flow write starts and
 * nothing after the flows is done (`work` checks the signal between its steps). The writes and publishes in
 * flight then finish on their own, harmlessly: a flow write carries the contribution and the memo's attribution,
 * and an alert published twice is what at-least-once delivery allows.
 */
async function withinDeadline<T>(
  deadline: Deadline | undefined,
  progress: IngestProgress,
  work: (signal: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  if (deadline === undefined || !deadline.bounded) return work(undefined);
  const outOfTime = () => new IngestOutOfTimeError(progress);
  // Already past (attributing took the time): nothing is started.
  if (deadline.remainingMs() === 0) throw outOfTime();
  const controller = new AbortController();
  const running = work(controller.signal);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = outOfTime();
      controller.abort(error);
      reject(error);
    }, deadline.remainingMs());
  });
  try {
    return await Promise.race([running, expired]);
  } finally {
    clearTimeout(timer);
    // It may still fail after the deadline has answered for it.
    running.catch(() => {});
  }
}

/** Saves a failed run's memo; never throws (the run's own error is what the caller reports). */
async function keepMemo(
  memos: MemoStore,
  cluster: string,
  contribution: string,
  recorder: RecordingDirectory,
  version: number,
  result: PipelineResult,
): Promise<MemoKept> {
  let bytes = 0;
  try {
    const encoded = encodeMemo(recorder.memo());
    if (encoded === undefined) return { contribution, outcome: "too-large", bytes };
    bytes = encoded.length;
    const saved = await memos.save(cluster, contribution, encoded, version, latestSeen(result));
    return { contribution, outcome: saved ? "saved" : "taken", bytes };
  } catch (error) {
    return { contribution, outcome: "failed", bytes, error };
  }
}

/** The batch's latest packet time (epoch ms): a memo is kept as long as the coverage of its events. */
function latestSeen(result: PipelineResult): number {
  let latest = Number.NEGATIVE_INFINITY;
  for (const flow of result.flows) latest = Math.max(latest, Date.parse(flow.lastSeen));
  return Number.isFinite(latest) ? latest : Date.now();
}
