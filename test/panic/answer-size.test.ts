// The panic API's answer fits in what Lambda lets a synchronous invocation return (6 MB, the body escaped once more
// inside the proxy result): a status with the history of many take-overs, each record keeping a copy of up to 64 KB,
// or a cluster with tens of thousands of policies in conflict, would otherwise be answered 502 by API Gateway in the
// emergency it is asked in. What is left out is said in `warnings`.

import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DynamoPanicAudit } from "../../functions/adapters/dynamo/panic-audit.ts";
import type { PanicAuditEntry, PolicyConflict } from "../../functions/core/panic-policy.ts";
import { ANSWER_MAX_BYTES, fitAnswer } from "../../functions/panic/handler.ts";
import type { PanicResponse } from "../../functions/panic/service.ts";
import {
  apiEvent,
  CLUSTER,
  type PanicHarness,
  resetPanicWorld,
  responseBody,
  startPanicHarness,
} from "./harness.ts";

const scheduler = mockClient(SchedulerClient);
let h: PanicHarness;

beforeAll(async () => {
  h = await startPanicHarness();
});
afterAll(async () => {
  scheduler.restore();
  await h?.close();
});
beforeEach(() => resetPanicWorld(h, scheduler));

/** The bytes Lambda counts of an answer: the proxy result, its body a JSON string inside it. */
const answerBytes = (result: unknown) => Buffer.byteLength(JSON.stringify(result));

function record(at: string, overrides: Partial<PanicAuditEntry> = {}): PanicAuditEntry {
  return {
    cluster: CLUSTER,
    at,
    action: "apply",
    outcome: "success",
    result: "taken-over",
    requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
    reason: `take-over at ${at}`,
    via: "api",
    policyName: "allow-all",
    expiresAt: null,
    conflicts: [],
    message: "applied",
    ...overrides,
  };
}

function conflict(i: number): PolicyConflict {
  return {
    kind: "NetworkPolicy",
    name: `deny-all-${i}`,
    namespace: `customer-${i}`,
    tier: "default",
    order: 10,
    reasons: ['Deny rule (Ingress) evaluated before the panic policy "allow-all"'],
  };
}

describe("the status answer within Lambda's 6 MB", () => {
  it("leaves the take-overs' copies out of a history that would not fit, keeping their digests", async () => {
    const audit = new DynamoPanicAudit({ client: h.store.clientFor(), tableName: h.store.tableName });
    // Each record keeps its copy in full (up to 64 KB): 100 of them are more than Lambda may answer.
    const copy = JSON.stringify({ metadata: { name: "allow-all" }, spec: { notes: "x".repeat(63_000) } });
    for (let i = 0; i < 100; i++) {
      const at = new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString();
      await audit.record(record(at, { replacedPolicy: copy }));
    }
    expect(100 * copy.length).toBeGreaterThan(ANSWER_MAX_BYTES);
    const result = await h.invoke(apiEvent("GET", undefined, { query: { history: "100" } }));
    expect(result.statusCode).toBe(200);
    expect(answerBytes(result)).toBeLessThanOrEqual(ANSWER_MAX_BYTES);
    const answer = responseBody(result);
    expect(answer.history).toHaveLength(100);
    for (const entry of answer.history ?? []) {
      expect(entry).not.toHaveProperty("replacedPolicy");
      expect(entry.replacedPolicySha256).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(answer.warnings).toContainEqual(
      expect.stringMatching(/^the copies of taken-over policies are left out of the history .*audit/),
    );
  });

  it("answers a status of few records whole", async () => {
    const audit = new DynamoPanicAudit({ client: h.store.clientFor(), tableName: h.store.tableName });
    const copy = JSON.stringify({ metadata: { name: "allow-all" }, spec: { order: 100 } });
    await audit.record(record("2026-02-01T00:00:00.000Z", { replacedPolicy: copy }));
    const answer = responseBody(await h.invoke(apiEvent("GET", undefined, { query: { history: "5" } })));
    expect(answer.history?.[0]?.replacedPolicy).toBe(copy);
    expect(answer.warnings).toEqual([]);
  });
});

describe("fitAnswer", () => {
  const base: PanicResponse = {
    cluster: CLUSTER,
    action: "status",
    result: "active",
    message: "active",
    apiGroup: "projectcalico.org",
    policyName: "allow-all",
    policy: null,
    appliedBy: null,
    reason: null,
    appliedAt: null,
    expiresAt: null,
    conflicts: [],
    history: [],
    warnings: [],
  };
  const size = (r: PanicResponse) => Buffer.byteLength(JSON.stringify(JSON.stringify(r)));

  it("returns an answer that fits as it is", () => {
    const small = { ...base, conflicts: [conflict(1)] };
    expect(fitAnswer(small, 100_000)).toBe(small);
  });

  it("keeps the newest history entries that fit, and says how many of how many", () => {
    const history = Array.from({ length: 40 }, (_, i) =>
      record(new Date(Date.UTC(2026, 0, 1, 0, 40 - i)).toISOString(), { message: "m".repeat(2_000) }),
    );
    const fitted = fitAnswer({ ...base, history }, 30_000);
    expect(size(fitted)).toBeLessThanOrEqual(30_000);
    const kept = fitted.history ?? [];
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.length).toBeLessThan(40);
    expect(kept).toEqual(history.slice(0, kept.length));
    expect(fitted.warnings).toContainEqual(
      `history cut to its ${kept.length} most recent of 40 entries: the answer must fit in Lambda's 6 MB`,
    );
  });

  it("lists the first conflicts that fit once the history is gone, and says how many there are", () => {
    const conflicts = Array.from({ length: 2_000 }, (_, i) => conflict(i));
    const fitted = fitAnswer({ ...base, conflicts, history: [record("2026-01-01T00:00:00.000Z")] }, 100_000);
    expect(size(fitted)).toBeLessThanOrEqual(100_000);
    expect(fitted.history).toEqual([]);
    const n = fitted.conflicts.length;
    expect(n).toBeGreaterThan(100);
    expect(n).toBeLessThan(2_000);
    expect(fitted.conflicts).toEqual(conflicts.slice(0, n));
    expect(fitted.warnings).toContainEqual(
      `${n} of 2000 conflicts listed: the answer must fit in Lambda's 6 MB; \`calico-flows panic status --direct\` lists them all`,
    );
  });
});
