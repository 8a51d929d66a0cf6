// Retries and bounded concurrency for DynamoDB calls. The stores' clients make one HTTP request per call
// (client.ts); this layer retries with exponential backoff and full jitter, because a throttled table (a hot
// partition, an on-demand table scaling up) can need seconds, and when the budget is spent it throws so that
// the whole payload is retried by Lambda or captured by the on-failure destination — never half stored. A
// client that retries on its own still works: its retries are counted, and treated as possibly applied; but the
// two multiply (a request may then be sent the client's maxAttempts × `attempts` times), which is why every
// client the project gives the stores makes one HTTP request per call (client.ts).
import type { Deadline } from "../../core/deadline.ts";

export interface RetryPolicy {
  /** Calls per request (each may itself be several SDK attempts). */
  attempts: number;
  /** First backoff ceiling, ms; doubles per retry. */
  baseDelayMs: number;
  /** Largest backoff ceiling, ms. */
  maxDelayMs: number;
  /**
   * No try starts past it, and no backoff sleeps past it (StoreUnavailableError then): the calls it is given to share
   * one budget, as the query function's page does (its Queries go one after the other). A try already started runs
   * to its own timeout. @default none
   */
  deadline?: Deadline;
}

/**
 * Ten requests over at most about 16 s of backoff (8 s on average, with full jitter); with the stores' client
 * (client.ts: one HTTP request per call, each given up after its request timeout) that is ten HTTP requests.
 */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 10, baseDelayMs: 50, maxDelayMs: 5_000 };

export function checkRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const { attempts, baseDelayMs, maxDelayMs } = policy;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new Error(`retry attempts must be an integer ≥ 1, got ${attempts}`);
  }
  if (!(baseDelayMs >= 0) || !(maxDelayMs >= baseDelayMs)) {
    throw new Error(
      `retry delays must satisfy 0 ≤ baseDelayMs ≤ maxDelayMs, got ${baseDelayMs} and ${maxDelayMs}`,
    );
  }
  return policy;
}

// How DynamoDB's errors are treated (its developer guide, "Error handling with DynamoDB": "OK to retry?"). Refused:
// the request was turned away before it was applied, so sending it again is always safe — throttling, and a
// write rejected because its item is in an ongoing transaction ("Transaction conflict handling"). Retryable too:
// 5xx, timeouts and broken connections, after which the request may have been applied. Everything else (a
// condition that failed, a validation error, a missing table, bad credentials, ItemCollectionSizeLimitExceeded,
// which only tables with local secondary indexes raise) is thrown at once: sending it again cannot help.
const REFUSED_NAMES = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TransactionConflictException",
]);
const RETRYABLE_NAMES = new Set([
  ...REFUSED_NAMES,
  "InternalServerError",
  "ServiceUnavailable",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
]);
/** Connection errors of the SDK's HTTP handler, as the SDK's own retry strategy classes them. */
const RETRYABLE_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);
/** Failures to connect at all (refused, or no address): nothing of the request was sent. */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

/** Throttling, 5xx and connection trouble: worth another try. Validation and condition failures are not. */
export function isRetryable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const e = error as SdkErrorShape;
  if (e.name !== undefined && RETRYABLE_NAMES.has(e.name)) return true;
  if (e.code !== undefined && RETRYABLE_CODES.has(e.code)) return true;
  if (e.$retryable !== undefined && e.$retryable !== null && e.$retryable !== false) return true;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined && status >= 500;
}

/**
 * A request DynamoDB refused (throttled, or in conflict with a transaction) or that never left: it was not applied.
 * A 5xx, a timeout or a connection lost after sending may have been.
 */
function neverApplied(error: unknown): boolean {
  const { name, code } = error as SdkErrorShape;
  return (name !== undefined && REFUSED_NAMES.has(name)) || (code !== undefined && NOT_SENT_CODES.has(code));
}

/** HTTP requests an SDK call made, retries included (1 when the SDK did not say). */
export function attemptsOf(outcome: unknown): number {
  const attempts = (outcome as SdkErrorShape | undefined)?.$metadata?.attempts;
  return typeof attempts === "number" && attempts > 0 ? attempts : 1;
}

/** The request budget ran out: the caller must fail the payload so that it is retried as a whole. */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface CallReport {
  /** HTTP requests made, SDK retries included. */
  requests: number;
  /** A request failed in a way that may have hidden a success (a 5xx or a lost connection after sending). */
  uncertain: boolean;
}

/**
 * Runs `call` until it succeeds, fails for good, or the budget is spent (then StoreUnavailableError with the
 * last error as cause). `report` is updated as it goes, so requests are counted even when it throws.
 * `resendUnsure: false`: a request that may have been applied (a 5xx, a lost connection) is not sent again —
 * for writes that nothing makes idempotent — and StoreUnavailableError says so; throttled ones still are.
 */
export async function withRetry<T>(
  what: string,
  policy: RetryPolicy,
  report: CallReport,
  call: () => Promise<T>,
  options: { resendUnsure?: boolean } = {},
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; ; attempt++) {
    if (policy.deadline?.remainingMs() === 0) {
      throw new StoreUnavailableError(
        `${what} out of time after ${attempt - 1} tries${lastError === undefined ? "" : `: ${(lastError as Error).message}`}`,
        lastError === undefined ? {} : { cause: lastError },
      );
    }
    try {
      const out = await call();
      const requests = attemptsOf(out);
      report.requests += requests;
      // The SDK retried inside: an earlier request of this call may have been applied before it failed.
      if (requests > 1) report.uncertain = true;
      return out;
    } catch (error) {
      lastError = error;
      report.requests += attemptsOf(error);
      if (attemptsOf(error) > 1) report.uncertain = true;
      if (!isRetryable(error)) throw error;
      if (!neverApplied(error)) {
        report.uncertain = true;
        if (options.resendUnsure === false) {
          throw new StoreUnavailableError(
            `${what} may have been applied; not sent again: ${(error as Error).message}`,
            {
              cause: error,
            },
          );
        }
      }
      if (attempt >= policy.attempts) {
        throw new StoreUnavailableError(
          `${what} failed after ${attempt} tries: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      await sleep(
        Math.min(Math.random() * ceiling, policy.deadline?.remainingMs() ?? Number.POSITIVE_INFINITY),
      );
    }
  }
}

/**
 * Maps `items` through `work` with at most `limit` in flight, results in input order. On the first failure no
 * new item starts; the ones in flight are awaited (so nothing keeps writing after the caller has given up and
 * may be retrying), then the first error is thrown. Once `signal` is aborted no new item starts either, and its
 * reason is thrown when those in flight are done.
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      if (signal?.aborted === true) {
        failure = { error: signal.reason };
        break;
      }
      const index = next++;
      try {
        results[index] = await work(items[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
