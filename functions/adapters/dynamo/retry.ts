// Retries and bounded concurrency for DynamoDB calls. The stores' clients make one HTTP request per call
// (client.ts); this layer retries with exponential backoff and full jitter, because a throttled table (a hot
// partition, an on-demand table scaling up) can need seconds, and when the budget is spent it throws so that
// the whole payload is retried by Lambda or captured by the on-failure destination — never half stored. A
// client that retries on its own still works: its retries are counted, and treated as possibly applied.

export interface RetryPolicy {
  /** Calls per request (each may itself be several SDK attempts). */
  attempts: number;
  /** First backoff ceiling, ms; doubles per retry. */
  baseDelayMs: number;
  /** Largest backoff ceiling, ms. */
  maxDelayMs: number;
}

/** Ten requests over at most about 16 s of backoff (8 s on average, with full jitter). */
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

const RETRYABLE_NAMES = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "InternalServerError",
  "ServiceUnavailable",
  "TimeoutError",
]);
const RETRYABLE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN"]);

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

const THROTTLE_NAMES = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
]);

/** A throttled request was refused before it was applied; a 5xx or a broken connection may not have been. */
function isThrottle(error: unknown): boolean {
  const name = (error as SdkErrorShape).name;
  return name !== undefined && THROTTLE_NAMES.has(name);
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
  for (let attempt = 1; ; attempt++) {
    try {
      const out = await call();
      const requests = attemptsOf(out);
      report.requests += requests;
      // The SDK retried inside: an earlier request of this call may have been applied before it failed.
      if (requests > 1) report.uncertain = true;
      return out;
    } catch (error) {
      report.requests += attemptsOf(error);
      if (attemptsOf(error) > 1) report.uncertain = true;
      if (!isRetryable(error)) throw error;
      if (!isThrottle(error)) {
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
      await sleep(Math.random() * ceiling);
    }
  }
}

/**
 * Maps `items` through `work` with at most `limit` in flight, results in input order. On the first failure no
 * new item starts; the ones in flight are awaited (so nothing keeps writing after the caller has given up and
 * may be retrying), then the first error is thrown.
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
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
