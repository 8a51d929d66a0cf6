// Interfaces of the I/O the pipeline depends on. Implementations live in functions/adapters/; the pipeline,
// the Lambda handlers and the CLI only ever see these.
import type { AlertCandidate, AlertRecord, FlowRecord, Holder } from "./types.ts";

export interface FlowWriteResult {
  /** Flow records whose counts this call changed. */
  applied: number;
  /** Flow records this contribution had already been applied to (redelivery): left unchanged. */
  duplicates: number;
  /** DynamoDB write requests issued (retries included), for the write-amplification figures. */
  writeRequests: number;
}

/** What `FlowStore.applyAlerts` did. */
export interface AlertApplyResult {
  /**
   * The alerts that still need delivery: those this call opened, and (when it delivers) earlier ones still marked
   * pending whose hand-out lease it took; when it does not, its contribution's earlier ones still pending (opened, or
   * leased, by an earlier run of it), which it leaves unsent.
   */
  alerts: AlertRecord[];
  /**
   * Alerts this call opened (new windows): what it raised. An alert handed out again while pending is not
   * counted again, nor one that a retried or redelivered contribution had opened already.
   */
  opened: number;
  /**
   * Pending alerts of the caller's contribution that it was not handed out because another run of that contribution
   * holds the lease on sending them: a run whose publish failed, or a duplicate still publishing, which the store
   * cannot tell apart. Lambda's retry of a failed run comes after the lease runs out, and sends them; a caller whose
   * retry may come sooner must not take its batch for delivered. Absent: none.
   */
  held?: HeldAlert[];
}

/** A pending alert whose hand-out lease another run of the caller's contribution holds (AlertApplyResult.held). */
export interface HeldAlert {
  id: string;
  openedAt: string;
  /** When the lease runs out: a run of the contribution after that is handed it out. */
  until: string;
}

/**
 * The longest alert window (the ingest function's ALERT_WINDOW_MINUTES goes up to 1440): an alert with a hit at t
 * opened at most this long before t, which is how far before a range a listing of alerts reads.
 */
export const MAX_ALERT_WINDOW_MS = 24 * 3_600_000;

export interface AlertOptions {
  /** Length of an alert window, ms (1 to MAX_ALERT_WINDOW_MS): one alert per key per window. */
  windowMs: number;
  /**
   * Whether the caller publishes the alerts handed out to it. One that does not (a backfill, replay or redrive without
   * an alerts topic) takes no lease on handing out a pending alert, so that it leaves each to a run that does, and is
   * told only of its contribution's (they stay pending). @default true
   */
  delivers?: boolean;
  /**
   * Called as each alert is opened (what `opened` counts), so that a caller whose call fails partway counts the alerts
   * it raised: its retry finds them opened, and counts them no more.
   */
  onOpened?: () => void;
}

export interface FlowQuery {
  cluster: string;
  /** Inclusive ISO bounds: flows with a packet between them (first seen ≤ until, last seen ≥ since). */
  since: string;
  until: string;
  namespace?: string;
  /** Workload name, optionally `kind/name`; needs `namespace`. */
  workload?: string;
  /** Pod name; needs `namespace`. */
  pod?: string;
  ip?: string;
  internal?: boolean;
  limit?: number;
  /** Opaque cursor returned by the previous page. */
  cursor?: string;
}

export interface AlertQuery {
  cluster: string;
  since: string;
  until: string;
  limit?: number;
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  /** Absent on the last page. */
  cursor?: string;
}

/**
 * The flow store (DynamoDB in Lambda, dynalite locally). Every write is idempotent per `contribution` (a
 * digest of the delivered payload): applying the same contribution twice leaves every count unchanged.
 * Transient failures are retried inside; an error escaping a method means the contribution was not fully
 * stored and must be retried by the caller.
 */
export interface FlowStore {
  /**
   * Once `signal` is aborted no new flow write starts, and the call fails with its reason. `progress` is added to as
   * each write completes, so that a caller whose call fails partway knows what it stored (its retry finds it stored).
   */
  writeFlows(
    flows: readonly FlowRecord[],
    contribution: string,
    options?: { signal?: AbortSignal; progress?: FlowWriteResult },
  ): Promise<FlowWriteResult>;
  /**
   * Opens an alert per key whose window is closed and folds hits into open ones. Returns the alerts that
   * still need delivery (those this call opened, and earlier ones still marked pending) and how many alerts
   * it opened.
   */
  applyAlerts(
    candidates: readonly AlertCandidate[],
    contribution: string,
    options: AlertOptions,
  ): Promise<AlertApplyResult>;
  /** Records that the sink accepted the alert: on its own ("sent", the default) or in a summary. */
  markAlertSent(alert: AlertRecord, how?: "sent" | "summarized"): Promise<void>;
  queryFlows(query: FlowQuery): Promise<Page<FlowRecord>>;
  queryAlerts(query: AlertQuery): Promise<Page<AlertRecord>>;
}

/** One subject's members for DenialTally.tally. */
export interface TallyEntry {
  cluster: string;
  /** What is counted about: a source, or a destination with its protocol and port (alert-rules.ts names them). */
  subject: string;
  /** This payload's distinct members of it: a source's destinations and ports, a destination's sources. */
  members: readonly string[];
  /** Epoch ms of its latest hit in the payload: the tally's window is the one holding it. */
  atMs: number;
}

/**
 * The largest `cap` a tally counts to: a window's item holds at most twice that many members (12 bytes each), well
 * inside DynamoDB's 400 KB item. A scan threshold above it is counted one payload at a time.
 */
export const MAX_TALLY_CAP = 4096;

/**
 * Distinct members per subject across payloads, so that the alert rules see a fan-in or a scan spread over several
 * nodes' log streams (alert-rules.ts, talliedAlertCandidates). Counting in the store: every log stream's deliveries
 * add to the same tally.
 */
export interface DenialTally {
  /**
   * Adds each entry's members to its subject's tally in the window of `windowMs` (aligned to the epoch) that holds
   * its `atMs`, and returns per entry, in order, how many distinct members that window and the ones either side of
   * it hold (payloads of one moment come from independent streams, in any order): at least `cap` when they hold
   * that many, since counting may stop there (1 ≤ cap ≤ MAX_TALLY_CAP). Adding the same members again changes
   * nothing, so a redelivered payload counts once.
   */
  tally(entries: readonly TallyEntry[], options: { windowMs: number; cap: number }): Promise<number[]>;
  /**
   * What a contribution's first judgement found: the subjects its tallies took to the threshold. Kept so that its
   * retries and redeliveries judge alike (the tallies of their moment may have grown since), and apply the keys,
   * and deliver the alerts, that the first run did. Undefined when none was kept.
   */
  loadVerdict(cluster: string, contribution: string): Promise<TallyVerdict | undefined>;
  /**
   * Keeps a contribution's judgement (`over`: the subjects that reached the threshold), unless one is kept already:
   * returns the one kept, the first run's (`atMs`: its latest hit, how long it is kept).
   */
  saveVerdict(
    cluster: string,
    contribution: string,
    over: readonly string[],
    atMs: number,
  ): Promise<TallyVerdict>;
}

/** A contribution's judgement by the tallies (DenialTally.saveVerdict). */
export interface TallyVerdict {
  /** Whether the subject (as TallyEntry.subject names it) reached the threshold. */
  over(subject: string): boolean;
}

/** Remembered IP holders, so late, backfilled and gone-pod lines still resolve (DESIGN.md §4). */
export interface HolderHistory {
  remember(cluster: string, entries: readonly { ip: string; holder: Holder }[]): Promise<void>;
  /**
   * Holders of `ip` whose lifetime may cover a time of [since, at] (validFrom ≤ at), most recent first: all of those
   * created after `since` (default `at`), and the most recent before.
   */
  holdersOf(cluster: string, ip: string, at: number, since?: number): Promise<Holder[]>;
}

/** Publishes alerts and panic announcements (SNS in Lambda; SNS or stdout locally). */
export interface AlertSink {
  publishAlert(alert: AlertRecord): Promise<void>;
}
