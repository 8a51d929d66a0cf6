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
  /** The alerts that still need delivery: those this call opened, and earlier ones still marked pending. */
  alerts: AlertRecord[];
  /**
   * Alerts this call opened (new windows): what it raised. An alert handed out again while pending is not
   * counted again, nor one that a retried or redelivered contribution had opened already.
   */
  opened: number;
}

/**
 * The longest alert window (the ingest function's ALERT_WINDOW_MINUTES goes up to 1440): an alert with a hit at t
 * opened at most this long before t, which is how far before a range a listing of alerts reads.
 */
export const MAX_ALERT_WINDOW_MS = 24 * 3_600_000;

export interface AlertOptions {
  /** Length of an alert window, ms (1 to MAX_ALERT_WINDOW_MS): one alert per key per window. */
  windowMs: number;
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
  /** Once `signal` is aborted no new flow write starts, and the call fails with its reason. */
  writeFlows(
    flows: readonly FlowRecord[],
    contribution: string,
    options?: { signal?: AbortSignal },
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

/** Remembered IP holders, so late, backfilled and gone-pod lines still resolve (DESIGN.md §4). */
export interface HolderHistory {
  remember(cluster: string, entries: readonly { ip: string; holder: Holder }[]): Promise<void>;
  /** Holders of `ip` whose lifetime may cover `at` (validFrom ≤ at), most recent first. */
  holdersOf(cluster: string, ip: string, at: number): Promise<Holder[]>;
}

/** Publishes alerts and panic announcements (SNS in Lambda; SNS or stdout locally). */
export interface AlertSink {
  publishAlert(alert: AlertRecord): Promise<void>;
}
