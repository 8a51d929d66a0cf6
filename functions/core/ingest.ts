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
import { CidrSet, canonicalCidr } from "./classify.ts";
import type { Deadline } from "./deadline.ts";
import type { DeliveredEvents } from "./delivered-events.ts";
import { createScanner } from "./parse.ts";
import { type LogEvent, type PipelineOptions, type PipelineResult, runPipeline } from "./pipeline.ts";
import type { DenialTally, FlowStore, FlowWriteResult, HeldAlert } from "./ports.ts";
import type { AlertRecord } from "./types.ts";

/**
 * What shapes the flows and alerts a run makes of its events: the flows' keys (their bucket's start, the lines read
 * and the policy their prefix names, which ends are inside the cluster and so attributed), their direction, and the
 * alert decisions on them. A contribution stored in part is finished with the settings it was first stored with: a flow id
 * digests its bucket's start, not its length, so with other buckets the flows already stored would be taken for
 * redeliveries or the same packets counted again under other ids. The coverage claims record them (coverage.ts).
 */
export interface IngestSettings {
  bucketSeconds: number;
  /** The log prefix lines are found by (Felix `logPrefix`). */
  prefix: string;
  /** The prefix's layout with `%t %k %n %p`, decoded into the policy (ParseOptions.prefixFormat). */
  prefixFormat?: string;
  internalCidrs: readonly string[];
  workloadInterfacePrefixes: readonly string[];
  scanThreshold?: number;
  alertWindowMs: number;
}

/**
 * The most bytes a run's settings may take as the coverage claims record them (JSON). A minute's page holds up to 100
 * claims (coverage.ts, ITEM_CLAIM_BUDGET), each with its writer's settings, beside 2,000 event digests: at this size a
 * full page stays near 240 KB, under DynamoDB's 400 KB for an item. The defaults take some 140 bytes; only long lists
 * of internal ranges or interface prefixes come near it.
 */
export const MAX_SETTINGS_BYTES = 2_048;

/** `settings`, or an error naming their size when they are too long for the coverage claims to record. */
export function checkSettings(settings: IngestSettings): IngestSettings {
  const size = Buffer.byteLength(JSON.stringify(settings));
  if (size > MAX_SETTINGS_BYTES) {
    throw new Error(
      `the pipeline's settings take ${size} bytes as every coverage claim records them, at most ${MAX_SETTINGS_BYTES} ` +
        `fit (${settings.internalCidrs.length} internal CIDRs, ${settings.workloadInterfacePrefixes.length} ` +
        "workload interface prefixes): list fewer, wider ranges",
    );
  }
  return settings;
}

const sameMembers = (a: readonly string[], b: readonly string[]) =>
  [...a].sort().join("\n") === [...b].sort().join("\n");

/** Whether two lists of CIDRs name the same ranges, however each is spelled. */
const sameRanges = (a: readonly string[], b: readonly string[]) =>
  sameMembers(a.map(canonicalCidr), b.map(canonicalCidr));

/** Whether two settings store alike: the ranges (however spelled) and interface prefixes taken as sets. */
export function sameSettings(a: IngestSettings, b: IngestSettings): boolean {
  return (
    a.bucketSeconds === b.bucketSeconds &&
    a.prefix === b.prefix &&
    a.prefixFormat === b.prefixFormat &&
    sameRanges(a.internalCidrs, b.internalCidrs) &&
    sameMembers(a.workloadInterfacePrefixes, b.workloadInterfacePrefixes) &&
    a.scanThreshold === b.scanThreshold &&
    a.alertWindowMs === b.alertWindowMs
  );
}

/**
 * `deps` storing as `settings` say: how a run finishes a contribution first stored under other settings. The parser
 * keeps its year (`replay --year`), and the parser and the internal ranges are kept when the settings name the same.
 */
export function withSettings(deps: IngestDeps, settings: IngestSettings): IngestDeps {
  const own = deps.settings;
  if (own !== undefined && sameSettings(own, settings)) return deps;
  const { pipeline } = deps;
  const samePrefix = own?.prefix === settings.prefix && own.prefixFormat === settings.prefixFormat;
  const ranges = own !== undefined && sameRanges(own.internalCidrs, settings.internalCidrs);
  return {
    ...deps,
    settings,
    alertWindowMs: settings.alertWindowMs,
    pipeline: {
      ...pipeline,
      bucketSeconds: settings.bucketSeconds,
      scanner: samePrefix
        ? pipeline.scanner
        : createScanner({
            year: pipeline.scanner.year,
            now: pipeline.scanner.now,
            prefix: settings.prefix,
            prefixFormat: settings.prefixFormat,
          }),
      internal: ranges ? pipeline.internal : new CidrSet(settings.internalCidrs),
      workloadInterfacePrefixes: settings.workloadInterfacePrefixes,
      scanThreshold: settings.scanThreshold,
    },
  };
}

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
  /** Most alerts published per batch; the rest are counted in summaries (up to MAX_SUMMARIES, alert-delivery.ts). */
  alertCap: number;
  /**
   * What `pipeline` and `alertWindowMs` were made from, recorded in the coverage claims its runs write, so that
   * whoever finishes one of them stores as it did. Absent: none recorded (such claims are finished with the
   * finisher's own).
   */
  settings?: IngestSettings;
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
  /**
   * Alerts of the batch left to another run of its contribution, which holds the lease on sending them
   * (AlertApplyResult.held): not delivered by this run. A run of the contribution after `until` sends them.
   */
  alertsHeld: HeldAlert[];
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
  /** The batch's flow writes, counted as each ends: all of them once the step is past "writing flows". */
  flows?: FlowWriteResult;
  /** Alerts the batch opened, counted as each opens. */
  alertsOpened?: number;
  /**
   * The batch's lines, and of them the malformed, that this run counts as delivered, once parsed: 0 when an earlier
   * run had claimed the batch (IngestOptions.firstRun false), which counted them if it got as far as parsing them.
   */
  linesSeen?: number;
  malformedLines?: number;
  /**
   * Its calico lines that this run counts as stored, once their flows are stored whole (and marked so:
   * IngestOptions.onFlowsStored): 0 when an earlier run stored them (IngestOptions.flowsStored), and counted them.
   */
  calicoLinesStored?: number;
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
    const counts = flows === undefined ? "" : ` (${flows.applied} new, ${flows.duplicates} already stored)`;
    const stored =
      step === undefined
        ? "nothing was stored"
        : step === "writing flows"
          ? `its flows were not all stored${counts}`
          : `its flows were stored${counts}`;
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
   * Called last, once the alerts are delivered: a backfill marks its claim there. Not called when another run of the
   * contribution holds some of them (IngestResult.alertsHeld), so that the claim is finished again once that run's
   * lease is over, and they are sent then. A failure in it fails the run as any other, so that the memo is kept for
   * whoever finishes the claim.
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
  // Filled in even when the caller does not ask: a deadline passing names the step it stopped.
  const progress = options.progress ?? {};
  // Counted by the first run, failed or not, not by its retries or a redelivery (coverage says who is first; without
  // coverage every run counts them).
  const counts = options.firstRun !== false;
  progress.linesSeen = counts ? result.stats.lines : 0;
  progress.malformedLines = counts ? result.stats.malformed : 0;
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
  // Counted as each write ends, so that a run failing partway reports the flows it stored.
  progress.flows = { applied: 0, duplicates: 0, writeRequests: 0 };
  const written =
    options.flowsStored === true
      ? { applied: 0, duplicates: result.flows.length, writeRequests: 0 }
      : await deps.store.writeFlows(result.flows, contribution, { signal, progress: progress.flows });
  // The call's own word once it is done (a store may not count as it goes).
  progress.flows = written;
  // Past the deadline the run has failed: nothing more is marked, applied or published (its retry does it).
  signal?.throwIfAborted();
  progress.step = "marking the flows stored";
  await options.onFlowsStored?.();
  // From here its retries find the flows stored (flowsStored) and count their lines no more: this run counts them.
  progress.calicoLinesStored = options.flowsStored === true ? 0 : result.stats.calico;
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
  progress.alertsOpened = 0;
  const applied =
    candidates.length > 0
      ? await deps.store.applyAlerts(candidates, alertContribution, {
          windowMs: deps.alertWindowMs,
          delivers: deps.sink !== undefined,
          onOpened: () => {
            progress.alertsOpened = (progress.alertsOpened ?? 0) + 1;
          },
        })
      : { alerts: [], opened: 0 };
  const { alerts, opened, held = [] } = applied;
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
  if (held.length === 0) await options.onStored?.();
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
    alertsHeld: held,
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
