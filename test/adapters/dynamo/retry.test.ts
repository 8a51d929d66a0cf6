// The retry and concurrency primitives: which errors are retried, how requests are counted, when the budget
// ends, and that a failure stops new work without abandoning work in flight.
import { describe, expect, it } from "vitest";
import {
  type CallReport,
  isRetryable,
  mapBounded,
  StoreUnavailableError,
  withRetry,
} from "../../../functions/adapters/dynamo/retry.ts";
import { Deadline } from "../../../functions/core/deadline.ts";

const policy = { attempts: 4, baseDelayMs: 0, maxDelayMs: 0 };
const sdkError = (name: string, status: number, attempts = 1) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status, attempts } });

describe("isRetryable", () => {
  it.each([
    ["ProvisionedThroughputExceededException", 400, true],
    ["ThrottlingException", 400, true],
    ["RequestLimitExceeded", 400, true],
    ["InternalServerError", 500, true],
    ["SomethingNew", 503, true],
    ["ConditionalCheckFailedException", 400, false],
    ["ValidationException", 400, false],
    ["ResourceNotFoundException", 400, false],
  ])("%s (%i) → %s", (name, status, expected) => {
    expect(isRetryable(sdkError(name, status))).toBe(expected);
  });

  it("retries broken connections and refuses non-errors", () => {
    expect(isRetryable(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe(true);
    expect(isRetryable("nope")).toBe(false);
    expect(isRetryable(null)).toBe(false);
  });
});

describe("withRetry", () => {
  it("counts the SDK's own attempts and marks 5xx as possibly applied", async () => {
    const report: CallReport = { requests: 0, uncertain: false };
    let calls = 0;
    const out = await withRetry("UpdateItem", policy, report, async () => {
      calls++;
      if (calls === 1) throw sdkError("ProvisionedThroughputExceededException", 400, 3);
      return { $metadata: { attempts: 2 } };
    });
    expect(out).toEqual({ $metadata: { attempts: 2 } });
    expect(report).toEqual({ requests: 5, uncertain: true });

    const throttledOnly: CallReport = { requests: 0, uncertain: false };
    let first = true;
    await withRetry("UpdateItem", policy, throttledOnly, async () => {
      if (first) {
        first = false;
        throw sdkError("ThrottlingException", 400);
      }
      return { $metadata: { attempts: 1 } };
    });
    // A throttled request was refused: it cannot have been applied.
    expect(throttledOnly).toEqual({ requests: 2, uncertain: false });
  });

  it("gives up after the budget with the last error as cause, and rethrows what is not transient", async () => {
    const report: CallReport = { requests: 0, uncertain: false };
    const error = sdkError("InternalServerError", 500);
    const failing = withRetry("Query", policy, report, async () => {
      throw error;
    });
    await expect(failing).rejects.toThrow(StoreUnavailableError);
    await expect(failing).rejects.toMatchObject({ cause: error });
    expect(report.requests).toBe(4);

    const invalid = sdkError("ValidationException", 400);
    const once: CallReport = { requests: 0, uncertain: false };
    await expect(
      withRetry("Query", policy, once, async () => {
        throw invalid;
      }),
    ).rejects.toBe(invalid);
    expect(once.requests).toBe(1);
  });

  it("starts no try and sleeps no backoff past its deadline, shared by the calls it is given to", async () => {
    let now = 0;
    const deadline = Deadline.after(1_000, () => now);
    const slow = { attempts: 10, baseDelayMs: 60_000, maxDelayMs: 60_000, deadline };
    const error = sdkError("InternalServerError", 500);
    const report: CallReport = { requests: 0, uncertain: false };
    const started = Date.now();
    // Each try takes 600 ms of the deadline's clock: the second starts (before it), the third does not.
    const failing = withRetry("Query", slow, report, async () => {
      now += 600;
      throw error;
    });
    await expect(failing).rejects.toThrow(StoreUnavailableError);
    await expect(failing).rejects.toMatchObject({ cause: error });
    expect(report.requests).toBe(2);
    // The minute-long backoff was cut to what was left of the deadline.
    expect(Date.now() - started).toBeLessThan(1_000);
    // Another call given the same deadline, once it has passed, sends nothing.
    const none: CallReport = { requests: 0, uncertain: false };
    await expect(withRetry("Query", slow, none, async () => "sent")).rejects.toThrow(
      /out of time after 0 tries/,
    );
    expect(none.requests).toBe(0);
  });
});

describe("mapBounded", () => {
  it("keeps at most `limit` in flight and returns results in input order", async () => {
    let inFlight = 0;
    let peak = 0;
    const results = await mapBounded(
      Array.from({ length: 30 }, (_, i) => i),
      4,
      async (n) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setTimeout(resolve, (n * 7) % 5));
        inFlight--;
        return n * 2;
      },
    );
    expect(peak).toBe(4);
    expect(results).toEqual(Array.from({ length: 30 }, (_, i) => i * 2));
  });

  it("starts nothing after a failure and waits for what is in flight before throwing", async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapBounded([0, 1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      started.push(n);
      if (n === 1) throw new Error("boom");
      await new Promise((resolve) => setTimeout(resolve, 20));
      finished.push(n);
      return n;
    });
    await expect(run).rejects.toThrow("boom");
    expect(started).toEqual([0, 1, 2]);
    expect(finished.sort()).toEqual([0, 2]);
  });
});
