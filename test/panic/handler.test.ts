// The panic function end to end through API Gateway proxy events: the local HTTPS Kubernetes API serving the
// Calico v3 resources, dynalite for the audit trail, fauxqs for the announcements, a mocked Scheduler.

import { readFileSync } from "node:fs";
import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type CalicoPolicy, isManagedByCalicoFlows } from "../../functions/core/panic-policy.ts";
import type { PanicRuntime } from "../../functions/panic/handler.ts";
import { type PanicResponse, RevertBody } from "../../functions/panic/service.ts";
import {
  ALICE,
  apiEvent,
  CALICO_CRD,
  CLUSTER,
  FUNCTION_ARN,
  GNP_V3,
  NP_V3,
  type PanicHarness,
  resetPanicWorld,
  responseBody,
  SCHEDULE_GROUP,
  SCHEDULER_ROLE,
  startPanicHarness,
  storedPanicPolicy,
  TIERS_V3,
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

const body = responseBody;
const stored = () => storedPanicPolicy(h);
const post = (payload: unknown, options?: Parameters<typeof apiEvent>[2]) =>
  h.invoke(apiEvent("POST", payload, options));

function denyPolicy(name: string, order: number, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name },
    spec: {
      order,
      selector: "all()",
      ingress: [{ action: "Deny", protocol: "TCP", destination: { ports: [5432] } }],
      ...extra,
    },
  };
}

/** What `call` printed as JSON records: Logger and Metrics write to stdout and stderr, which the log group holds. */
async function printedBy<T>(
  call: () => Promise<T>,
): Promise<{ result: T; printed: Record<string, unknown>[] }> {
  const streams = [process.stdout, process.stderr].map((s) =>
    vi.spyOn(s, "write").mockImplementation(() => true),
  );
  try {
    const result = await call();
    const printed = streams
      .flatMap((spy) => spy.mock.calls)
      .flatMap(([chunk]) => String(chunk).split("\n"))
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { result, printed };
  } finally {
    for (const spy of streams) spy.mockRestore();
  }
}

describe("POST /panic", () => {
  it("creates the panic policy, schedules its expiry, audits and announces", async () => {
    const result = await post({ reason: "checkout cannot reach payments", ttlMinutes: 30 });
    expect(result.statusCode).toBe(200);
    const answer = body(result);
    expect(answer).toMatchObject({
      cluster: CLUSTER,
      action: "apply",
      result: "applied",
      policyName: "allow-all",
      apiGroup: "projectcalico.org/v3",
      appliedBy: ALICE,
      reason: "checkout cannot reach payments",
      conflicts: [],
      warnings: [],
    });
    const ttl = Date.parse(answer.expiresAt ?? "") - Date.parse(answer.appliedAt ?? "");
    expect(ttl).toBe(30 * 60_000);

    const policy = stored();
    expect(policy?.metadata.labels).toEqual({ "app.kubernetes.io/managed-by": "calico-flows" });
    expect(policy?.metadata.annotations).toMatchObject({
      "calico-flows.io/reason": "checkout cannot reach payments",
      "calico-flows.io/requester": ALICE,
      "calico-flows.io/expires-at": answer.expiresAt,
    });
    expect(policy?.spec).toEqual({
      tier: "default",
      order: 100,
      namespaceSelector: "baseten.co/organization == 'true'",
      types: ["Ingress", "Egress"],
      ingress: [{ action: "Allow" }],
      egress: [{ action: "Allow" }],
    });
    // A create (POST), which fails if the policy exists, never a server-side apply, which would merge into it.
    expect(h.kube.requests()).toContainEqual(
      expect.objectContaining({
        method: "POST",
        path: "/apis/projectcalico.org/v3/globalnetworkpolicies",
        query: { fieldManager: "calico-flows-panic" },
        status: 201,
      }),
    );
    expect(h.kube.applies()).toEqual([]);

    const calls = scheduler.commandCalls(CreateScheduleCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input;
    expect(input).toMatchObject({
      Name: `panic-${CLUSTER}-allow-all`,
      GroupName: SCHEDULE_GROUP,
      ActionAfterCompletion: "DELETE",
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      // The unqualified function: the alias the API invoked is dropped.
      Target: { Arn: FUNCTION_ARN, RoleArn: SCHEDULER_ROLE },
    });
    expect(input?.ScheduleExpression).toMatch(/^at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\)$/);
    expect(JSON.parse(input?.Target?.Input ?? "{}")).toEqual({
      source: "calico-flows.expiry",
      action: "revert",
      cluster: CLUSTER,
      policyName: "allow-all",
      expiresAt: answer.expiresAt,
    });

    const [announced, ...more] = await h.announcements();
    expect(more).toEqual([]);
    expect(announced).toMatchObject({
      type: "panic",
      action: "applied",
      cluster: CLUSTER,
      requester: ALICE,
      reason: "checkout cannot reach payments",
      expiresAt: answer.expiresAt,
    });

    const status = body(await h.invoke(apiEvent("GET")));
    expect(status.history?.[0]).toMatchObject({
      action: "apply",
      outcome: "success",
      result: "applied",
      requester: ALICE,
      reason: "checkout cannot reach payments",
      via: "api",
      expiresAt: answer.expiresAt,
    });
  });

  it("uses the configured default TTL, and 0 means no schedule and no expiry", async () => {
    const defaulted = body(await post({ reason: "default ttl" }));
    expect(Date.parse(defaulted.expiresAt ?? "") - Date.parse(defaulted.appliedAt ?? "")).toBe(60 * 60_000);
    const never = body(await post({ reason: "keep it", ttlMinutes: 0 }));
    expect(never.expiresAt).toBeNull();
    expect(stored()?.metadata.annotations?.["calico-flows.io/expires-at"]).toBe("never");
    // Only the first apply scheduled a revert; the refresh to "never" removes that schedule.
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    expect(scheduler.commandCalls(UpdateScheduleCommand)).toHaveLength(0);
    expect(scheduler.commandCalls(DeleteScheduleCommand)[0]?.args[0].input).toEqual({
      Name: `panic-${CLUSTER}-allow-all`,
      GroupName: SCHEDULE_GROUP,
    });
  });

  it("is idempotent: a second apply keeps one policy and refreshes reason and expiry", async () => {
    await post({ reason: "first", ttlMinutes: 10 });
    const firstUid = stored()?.metadata.uid;
    scheduler
      .on(CreateScheduleCommand)
      .rejects(new ConflictException({ message: "exists", Message: "exists", $metadata: {} }));
    const second = body(
      await post(
        { reason: "second", ttlMinutes: 90 },
        { identity: { userArn: "arn:aws:iam::123456789012:user/bob" } },
      ),
    );
    expect(second.result).toBe("refreshed");
    expect(h.kube.store.list(GNP_V3)).toHaveLength(1);
    expect(stored()?.metadata.uid).toBe(firstUid);
    expect(stored()?.metadata.annotations).toMatchObject({
      "calico-flows.io/reason": "second",
      "calico-flows.io/requester": "arn:aws:iam::123456789012:user/bob",
      "calico-flows.io/expires-at": second.expiresAt,
    });
    // The existing schedule is moved to the new expiry.
    const update = scheduler.commandCalls(UpdateScheduleCommand)[0]?.args[0].input;
    expect(JSON.parse(update?.Target?.Input ?? "{}").expiresAt).toBe(second.expiresAt);
  });

  it("leaves one policy when two applies race", async () => {
    const results = await Promise.all([post({ reason: "racer one" }), post({ reason: "racer two" })]);
    expect(results.map((r) => r.statusCode)).toEqual([200, 200]);
    expect(h.kube.store.list(GNP_V3).map((p) => (p.metadata as { name: string }).name)).toEqual([
      "allow-all",
    ]);
    expect(["racer one", "racer two"]).toContain(stored()?.metadata.annotations?.["calico-flows.io/reason"]);
  });

  it("retries when the policy changed between its read and its write (409 from the API server)", async () => {
    await post({ reason: "first", ttlMinutes: 0 });
    // A refresh replaces the policy (PUT, on condition of the resourceVersion read).
    await h.kube.setFault({ fault: { kind: "status", code: 409 }, method: "PUT", times: 1 });
    const result = await post({ reason: "again", ttlMinutes: 0 });
    expect(result.statusCode).toBe(200);
    expect(body(result).result).toBe("refreshed");
    expect(h.kube.counts.total({ method: "PUT" })).toBe(2);
  });

  it("refreshes the whole policy: a field someone added to it since does not survive", async () => {
    await post({ reason: "first", ttlMinutes: 0 });
    const narrowed = stored() as CalicoPolicy;
    const panicSpec = structuredClone(narrowed.spec);
    h.kube.store.put(GNP_V3, {
      ...narrowed,
      spec: { ...narrowed.spec, selector: "app == 'checkout'", serviceAccountSelector: "name == 'nobody'" },
    });
    expect(body(await post({ reason: "again", ttlMinutes: 0 })).result).toBe("refreshed");
    // The panic document exactly, as the first apply wrote it (checked field by field above).
    expect(stored()?.spec).toEqual(panicSpec);
    expect(stored()?.spec).not.toHaveProperty("serviceAccountSelector");
  });

  it("schedules the unqualified function whatever version or alias ARN it is given (--direct)", async () => {
    const { service } = h.runtime();
    await service.apply({
      reason: "direct",
      ttlMinutes: 30,
      requester: ALICE,
      via: "cli",
      expiryTarget: `${FUNCTION_ARN}:live`,
    });
    const input = scheduler.commandCalls(CreateScheduleCommand)[0]?.args[0].input;
    expect(input?.Target?.Arn).toBe(FUNCTION_ARN);
  });

  it("audits a refused dry run without announcing it", async () => {
    const refused = await post({ reason: "try", dryRun: true, ttlMinutes: -1 });
    expect(refused.statusCode).toBe(400);
    const [entry] = body(await h.invoke(apiEvent("GET"))).history ?? [];
    expect(entry).toMatchObject({ outcome: "refused", result: "invalid" });
    expect(await h.announcements()).toEqual([]);
  });

  it("names a refused dry run's action in its record and metric: a dry run, not an apply", async () => {
    const { result, printed } = await printedBy(() => post({ reason: "try", dryRun: true, ttlMinutes: -1 }));
    expect(result.statusCode).toBe(400);
    expect(printed.find((r) => r.message === "panic request failed")).toMatchObject({
      action: "dry-run",
      kind: "invalid",
    });
    expect(printed.some((r) => r["PanicFailure_dry-run_invalid"] === 1)).toBe(true);
  });

  it("audits and announces a request refused for its body", async () => {
    const refused = await post({ reason: "   " });
    expect(refused.statusCode).toBe(400);
    const [entry] = body(await h.invoke(apiEvent("GET"))).history ?? [];
    expect(entry).toMatchObject({ action: "apply", outcome: "refused", result: "invalid", requester: ALICE });
    expect((await h.announcements())[0]).toMatchObject({ action: "refused", requester: ALICE });
  });

  it("brings the expiry schedule in line with the policy another apply wrote meanwhile", async () => {
    await post({ reason: "first", ttlMinutes: 60 });
    const creates = scheduler.commandCalls(CreateScheduleCommand).length;
    // While this apply's schedule call is under way, another operator's apply (ttl 0) lands on the policy.
    scheduler.on(CreateScheduleCommand).callsFake(async () => {
      const current = stored() as CalicoPolicy;
      h.kube.store.put(GNP_V3, {
        ...current,
        metadata: {
          ...current.metadata,
          annotations: { ...current.metadata.annotations, "calico-flows.io/expires-at": "never" },
        },
      });
      return { ScheduleArn: "arn:aws:scheduler:eu-west-1:123456789012:schedule/x/y" };
    });
    expect((await post({ reason: "second", ttlMinutes: 120 })).statusCode).toBe(200);
    // The policy now never expires: its schedule is removed rather than left to skip it.
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(creates + 1);
    expect(scheduler.commandCalls(DeleteScheduleCommand)).toHaveLength(1);
    expect(body(await h.invoke(apiEvent("GET"))).expiresAt).toBeNull();
  });

  it("answers 409 after repeated conflicts, without touching the policy", async () => {
    await h.kube.setFault({ fault: { kind: "status", code: 409 }, method: "POST" });
    const result = await post({ reason: "contended", ttlMinutes: 0 });
    expect(result.statusCode).toBe(409);
    expect(body(result)).toMatchObject({ error: "conflict" });
    expect(stored()).toBeUndefined();
  });

  it("creates the policy where the API server answers the apply of a new one with 404 (Calico 3.32.0)", async () => {
    // projectcalico/calico#12841: that API server refuses a server-side apply that would create the object; the
    // panic button creates it with a POST, which it serves.
    await h.kube.setFault({
      fault: {
        kind: "status",
        code: 404,
        message: 'globalnetworkpolicies.projectcalico.org "allow-all" not found',
      },
      method: "PATCH",
    });
    const result = await post({ reason: "first", ttlMinutes: 0 });
    expect(result.statusCode).toBe(200);
    expect(body(result).result).toBe("applied");
    expect(h.kube.counts.total({ method: "POST" })).toBe(1);
    const policy = stored();
    expect(policy?.spec.ingress).toEqual([{ action: "Allow" }]);
    expect(policy && isManagedByCalicoFlows(policy)).toBe(true);
  });

  it("refuses to modify a policy of that name it did not create, and takes it over only with force", async () => {
    h.kube.store.put(GNP_V3, {
      ...denyPolicy("allow-all", 100),
      metadata: { name: "allow-all", labels: { owner: "platform" } },
      spec: { order: 100, selector: "app == 'legacy'", types: ["Ingress"], ingress: [{ action: "Allow" }] },
    });
    const refused = await post({ reason: "please", ttlMinutes: 0 });
    expect(refused.statusCode).toBe(409);
    expect(body(refused)).toMatchObject({ error: "not-owned" });
    expect(body(refused).message).toMatch(/not created by calico-flows.*force/s);
    expect(stored()?.spec.selector).toBe("app == 'legacy'");
    expect(h.kube.counts.total({ method: "POST" }) + h.kube.counts.total({ method: "PUT" })).toBe(0);
    expect((await h.announcements())[0]).toMatchObject({ action: "refused", requester: ALICE });

    const forced = await post({ reason: "take it", ttlMinutes: 0, force: true });
    expect(forced.statusCode).toBe(200);
    expect(body(forced).result).toBe("taken-over");
    const policy = stored();
    // Replaced, not merged: the previous owner's narrower selector must not survive.
    expect(policy?.spec.selector).toBeUndefined();
    expect(policy?.spec.namespaceSelector).toBe("baseten.co/organization == 'true'");
    expect(policy?.metadata.labels).toEqual({ "app.kubernetes.io/managed-by": "calico-flows" });

    const history = body(await h.invoke(apiEvent("GET"))).history ?? [];
    expect(history.map((e) => `${e.outcome}/${e.result}`).slice(0, 2)).toEqual([
      "success/taken-over",
      "refused/not-owned",
    ]);
  });

  it("with dryRun, returns exactly what it would apply and changes nothing", async () => {
    const result = await post({ reason: "what would happen", dryRun: true, ttlMinutes: 15 });
    expect(result.statusCode).toBe(200);
    const answer = body(result);
    expect(answer.result).toBe("would-apply");
    expect(answer.policy).toMatchObject({
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all", annotations: { "calico-flows.io/reason": "what would happen" } },
      spec: { order: 100, namespaceSelector: "baseten.co/organization == 'true'" },
    });
    expect(stored()).toBeUndefined();
    expect(h.kube.counts.total({ method: "POST" })).toBe(0);
    expect(scheduler.calls()).toHaveLength(0);
    expect(await h.announcements()).toEqual([]);
  });

  it("lists the policies and tiers that may still deny, in apply, dry run and status", async () => {
    h.kube.store.put(TIERS_V3, { metadata: { name: "default" }, spec: { order: 1_000_000 } });
    h.kube.store.put(TIERS_V3, {
      metadata: { name: "security" },
      spec: { order: 100, defaultAction: "Deny" },
    });
    h.kube.store.put(GNP_V3, denyPolicy("deny-db", 50));
    h.kube.store.put(GNP_V3, denyPolicy("deny-late", 500));
    h.kube.store.put(GNP_V3, denyPolicy("security.quarantine", 1, { tier: "security" }));
    h.kube.store.put(NP_V3, {
      ...denyPolicy("ns-deny", 10),
      kind: "NetworkPolicy",
      metadata: { name: "ns-deny", namespace: "customer-a" },
    });
    h.kube.store.put("stagedglobalnetworkpolicies.projectcalico.org", denyPolicy("staged-deny", 1));

    const expected = [
      "Tier/security",
      "GlobalNetworkPolicy/security.quarantine",
      "NetworkPolicy/ns-deny",
      "GlobalNetworkPolicy/deny-db",
    ];
    const names = (r: PanicResponse) => r.conflicts.map((c) => `${c.kind}/${c.name}`);
    const dry = body(await post({ reason: "dry", dryRun: true }));
    expect(names(dry)).toEqual(expected);
    const applied = body(await post({ reason: "apply", ttlMinutes: 0 }));
    expect(names(applied)).toEqual(expected);
    expect(applied.message).toContain("WARNING: 4 policies are evaluated before it");
    expect(names(body(await h.invoke(apiEvent("GET"))))).toEqual(expected);
    const [announced] = await h.announcements();
    expect(((announced?.conflicts ?? []) as { name: string }[]).map((c) => c.name)).toEqual(
      expected.map((e) => e.split("/")[1]),
    );
  });
});

describe("validation and routing", () => {
  it.each([
    [{}, "reason"],
    [{ reason: "" }, "reason"],
    [{ reason: "   " }, "reason"],
    [{ reason: "x".repeat(501) }, "reason"],
    [{ reason: 42 }, "reason"],
    [{ reason: "ok", ttlMinutes: -1 }, "ttlMinutes"],
    [{ reason: "ok", ttlMinutes: 1.5 }, "ttlMinutes"],
    [{ reason: "ok", ttlMinutes: "30" }, "ttlMinutes"],
    [{ reason: "ok", ttlMinutes: 100_000 }, "ttlMinutes"],
    [{ reason: "ok", dryRun: "yes" }, "dryRun"],
    [{ reason: "ok", force: 1 }, "force"],
    [{ reason: "ok", ttl: 5 }, "ttl"],
    [[], "body"],
  ])("POST %j → 400 naming %s", async (payload, field) => {
    const result = await post(payload);
    expect(result.statusCode).toBe(400);
    expect(body(result)).toMatchObject({ error: "invalid", field });
    expect(body(result).message).toContain(field);
    expect(stored()).toBeUndefined();
  });

  it("rejects a body that is not JSON, or missing", async () => {
    const broken = await h.invoke(apiEvent("POST", undefined, { raw: "{reason:" }));
    expect(broken.statusCode).toBe(400);
    expect(body(broken)).toMatchObject({ field: "body" });
    const missing = await h.invoke(apiEvent("POST"));
    expect(missing.statusCode).toBe(400);
    expect(body(missing)).toMatchObject({ field: "reason" });
  });

  // A body refused before it could be parsed is a refusal like any other: no gateway model stands in front of
  // the function any more, so the function's audit trail and announcement are the only record of it.
  it.each([
    ["POST", "no body", undefined, "apply", "reason", /^body: a JSON object with at least reason/],
    ["POST", "an empty body", "", "apply", "reason", /^body: a JSON object with at least reason/],
    ["POST", "a blank body", " \n", "apply", "reason", /^body: a JSON object with at least reason/],
    ["POST", "a body that is not JSON", "{bad", "apply", "body", /^body: not valid JSON \(/],
    ["DELETE", "a body that is not JSON", "{bad", "revert", "body", /^body: not valid JSON \(/],
  ])(
    "%s with %s → 400, audited and announced as refused",
    async (method, _what, raw, action, field, message) => {
      const result = await h.invoke(apiEvent(method, undefined, raw === undefined ? {} : { raw }));
      expect(result.statusCode).toBe(400);
      const answer = body(result);
      expect(answer).toEqual({ error: "invalid", message: expect.stringMatching(message), field });
      const [entry] = body(await h.invoke(apiEvent("GET"))).history ?? [];
      expect(entry).toMatchObject({
        action,
        outcome: "refused",
        result: "invalid",
        requester: ALICE,
        via: "api",
        reason: "",
        message: answer.message,
      });
      expect(await h.announcements()).toEqual([
        expect.objectContaining({ action: "refused", requester: ALICE, detail: answer.message }),
      ]);
      expect(stored()).toBeUndefined();
    },
  );

  it("accepts 500 characters of reason", async () => {
    expect((await post({ reason: "r".repeat(500), ttlMinutes: 0 })).statusCode).toBe(200);
  });

  it("answers 404 for other paths and 405 for other methods", async () => {
    const notFound = await h.invoke(apiEvent("GET", undefined, { path: "/flows" }));
    expect(notFound.statusCode).toBe(404);
    const notAllowed = await h.invoke(apiEvent("PUT", { reason: "x" }));
    expect(notAllowed.statusCode).toBe(405);
    expect(notAllowed.headers?.allow).toBe("GET, POST, DELETE");
  });

  it("validates the DELETE body too", async () => {
    const result = await h.invoke(apiEvent("DELETE", { reason: "done", ttlMinutes: 0 }));
    expect(result.statusCode).toBe(400);
    expect(body(result)).toMatchObject({
      field: "ttlMinutes",
      message: 'unknown field "ttlMinutes" (expected reason, force)',
    });
  });

  it("is documented with every field a DELETE body may hold", () => {
    const doc = readFileSync(new URL("../../docs/panic.md", import.meta.url), "utf8").replace(/\s+/g, " ");
    const rule = /a DELETE body that is not JSON or not an object with at most ([^—]*)—/.exec(doc)?.[1];
    expect(rule).toBeDefined();
    for (const field of Object.keys(RevertBody.shape)) expect(rule).toContain(`\`${field}\``);
  });

  it("routes by path under a greedy proxy resource", async () => {
    const event = { ...apiEvent("GET"), resource: "/{proxy+}" };
    expect((await h.invoke(event)).statusCode).toBe(200);
    expect((await h.invoke({ ...event, path: "/panic/extra" })).statusCode).toBe(404);
  });

  it("refuses a request without an IAM identity", async () => {
    const result = await post({ reason: "anonymous" }, { identity: null });
    expect(result.statusCode).toBe(401);
    expect(stored()).toBeUndefined();
  });

  it("falls back to the caller id when API Gateway gives no user ARN", async () => {
    const answer = body(
      await post({ reason: "caller", ttlMinutes: 0 }, { identity: { userArn: null, caller: "AIDAEXAMPLE" } }),
    );
    expect(answer.appliedBy).toBe("AIDAEXAMPLE");
  });

  it.each(["lots", "1e1", "0x10", " 5", ""])("validates the history query of GET (%j)", async (history) => {
    const result = await h.invoke(apiEvent("GET", undefined, { query: { history } }));
    expect(result.statusCode).toBe(400);
    expect(body(result)).toMatchObject({ field: "history" });
  });
});

describe("DELETE /panic", () => {
  it("reverts: deletes the policy and its schedule, audits and announces", async () => {
    await post({ reason: "incident 42", ttlMinutes: 20 });
    await h.announcements();
    const result = await h.invoke(apiEvent("DELETE", { reason: "fixed the policy" }));
    expect(result.statusCode).toBe(200);
    expect(body(result)).toMatchObject({ action: "revert", result: "reverted", reason: "incident 42" });
    expect(stored()).toBeUndefined();
    expect(scheduler.commandCalls(DeleteScheduleCommand)).toHaveLength(1);
    expect((await h.announcements())[0]).toMatchObject({
      action: "reverted",
      reason: "fixed the policy",
      requester: ALICE,
    });
    const [latest] = body(await h.invoke(apiEvent("GET"))).history ?? [];
    expect(latest).toMatchObject({ action: "revert", result: "reverted", reason: "fixed the policy" });
  });

  it("succeeds, saying so, when nothing is applied (and tolerates a missing schedule)", async () => {
    scheduler
      .on(DeleteScheduleCommand)
      .rejects(new ResourceNotFoundException({ message: "none", Message: "none", $metadata: {} }));
    const result = await h.invoke(apiEvent("DELETE"));
    expect(result.statusCode).toBe(200);
    expect(body(result)).toMatchObject({ result: "not-applied", warnings: [] });
    expect(body(result).message).toMatch(/nothing to revert/);
    expect(await h.announcements()).toEqual([]);
  });

  it("never deletes a policy it did not create", async () => {
    h.kube.store.put(GNP_V3, denyPolicy("allow-all", 100));
    const result = await h.invoke(apiEvent("DELETE"));
    expect(result.statusCode).toBe(409);
    expect(body(result).message).toMatch(/never deletes a policy it did not create/);
    expect(stored()).toBeDefined();
    expect(h.kube.counts.total({ method: "DELETE" })).toBe(0);
  });
});

describe("GET /panic", () => {
  it("reports inactive, active and foreign states", async () => {
    expect(body(await h.invoke(apiEvent("GET")))).toMatchObject({ result: "inactive", policy: null });
    await post({ reason: "status check", ttlMinutes: 5 });
    const active = body(await h.invoke(apiEvent("GET")));
    expect(active).toMatchObject({ result: "active", appliedBy: ALICE, reason: "status check" });
    expect(active.policy?.metadata).not.toHaveProperty("managedFields");
    h.kube.store.put(GNP_V3, denyPolicy("allow-all", 100));
    expect(body(await h.invoke(apiEvent("GET")))).toMatchObject({ result: "foreign", appliedBy: null });
  });
});

describe("errors a human can act on", () => {
  it("401 from Kubernetes → 502 naming the access entry", async () => {
    await h.kube.setFault({ kind: "status", code: 401 });
    const result = await post({ reason: "locked out" });
    expect(result.statusCode).toBe(502);
    expect(body(result)).toMatchObject({ error: "kube-access" });
    expect(body(result).message).toMatch(/access entry.*calico-flows-panic/);
  });

  it("403 from Kubernetes → 502 naming the RBAC fix", async () => {
    await h.kube.setFault({ kind: "status", code: 403 });
    const result = await h.invoke(apiEvent("GET"));
    expect(result.statusCode).toBe(502);
    expect(body(result).message).toMatch(/kubectl apply -f deploy\/rbac\.yaml/);
  });

  it("a missing Calico API group → 502 suggesting the other group", async () => {
    const crd = h.runtime({ apiGroup: "crd.projectcalico.org/v1" });
    const result = await h.invoke(apiEvent("POST", { reason: "wrong group" }), crd);
    expect(result.statusCode).toBe(502);
    expect(body(result)).toMatchObject({ error: "api-missing" });
    expect(body(result).message).toMatch(/CALICO_API_GROUP=projectcalico\.org\/v3/);
  });

  it("an unreachable API server → 502 kube-unavailable", async () => {
    await h.kube.setFault({ kind: "reset" });
    const result = await h.invoke(apiEvent("GET"));
    expect(result.statusCode).toBe(502);
    expect(body(result)).toMatchObject({ error: "kube-unavailable" });
  });

  it("a failed apply is audited and announced as refused", async () => {
    await h.kube.setFault({ fault: { kind: "status", code: 403 }, method: "POST" });
    expect((await post({ reason: "forbidden write", ttlMinutes: 0 })).statusCode).toBe(502);
    await h.kube.setFault(null);
    const [entry] = body(await h.invoke(apiEvent("GET"))).history ?? [];
    expect(entry).toMatchObject({
      action: "apply",
      outcome: "failed",
      result: "kube-access",
      reason: "forbidden write",
    });
    expect((await h.announcements())[0]).toMatchObject({ action: "refused", reason: "forbidden write" });
  });

  it("an unexpected failure → 500 naming the request id its records carry", async () => {
    const broken = {
      service: { status: () => Promise.reject(new Error("boom")) },
    } as unknown as PanicRuntime;
    const event = apiEvent("GET");
    const { result, printed } = await printedBy(() => h.invoke(event, broken));
    expect(result.statusCode).toBe(500);
    const { requestId } = event.requestContext;
    expect(body(result)).toMatchObject({ error: "internal", requestId });
    expect(printed.find((r) => r.message === "panic request failed unexpectedly")).toMatchObject({
      action: "status",
      correlation_id: requestId,
    });
    expect(printed.some((r) => r.PanicFailure_status_internal === 1)).toBe(true);
  });
});

describe("expiry through the schedule's target invocation", () => {
  const scheduledInput = () =>
    JSON.parse(
      scheduler.commandCalls(CreateScheduleCommand).at(-1)?.args[0].input.Target?.Input ?? "null",
    ) as unknown;

  it("reverts the policy when the schedule fires", async () => {
    await post({ reason: "short fix", ttlMinutes: 1 });
    await h.announcements();
    const result = await h.invoke(scheduledInput());
    expect(result).toMatchObject({ action: "expire", result: "expired" });
    expect(stored()).toBeUndefined();
    expect((await h.announcements())[0]).toMatchObject({
      action: "expired",
      requester: "calico-flows expiry schedule",
    });
    const [entry] = body(await h.invoke(apiEvent("GET"))).history ?? [];
    expect(entry).toMatchObject({ action: "expire", result: "expired", via: "schedule" });
  });

  it("leaves a policy refreshed since the schedule was made", async () => {
    await post({ reason: "short fix", ttlMinutes: 1 });
    const stale = scheduledInput();
    await post({ reason: "longer fix", ttlMinutes: 120 });
    const result = await h.invoke(stale);
    expect(result).toMatchObject({ result: "skipped" });
    expect(stored()?.metadata.annotations?.["calico-flows.io/reason"]).toBe("longer fix");
  });

  it("leaves a policy that is no longer calico-flows'", async () => {
    await post({ reason: "short fix", ttlMinutes: 1 });
    const input = scheduledInput();
    h.kube.store.put(GNP_V3, denyPolicy("allow-all", 100));
    expect(await h.invoke(input)).toMatchObject({ result: "skipped" });
    expect(stored()).toBeDefined();
  });

  it("finishes quietly when the policy was already reverted", async () => {
    await post({ reason: "short fix", ttlMinutes: 1 });
    const input = scheduledInput();
    await h.invoke(apiEvent("DELETE"));
    expect(await h.invoke(input)).toMatchObject({ result: "not-applied" });
  });

  it("lets a failing revert throw, so the scheduler retries it", async () => {
    await post({ reason: "short fix", ttlMinutes: 1 });
    const input = scheduledInput();
    await h.kube.setFault({ fault: { kind: "status", code: 500 }, method: "DELETE" });
    await expect(h.invoke(input)).rejects.toThrow(/deleting globalnetworkpolicies\/allow-all failed/);
    expect(stored()).toBeDefined();
  });
});

describe("crd.projectcalico.org/v1", () => {
  let crd: PanicHarness;
  beforeAll(async () => {
    crd = await startPanicHarness(CALICO_CRD);
  });
  afterAll(async () => crd?.close());

  it("applies, reports and reverts through the CRDs directly", async () => {
    const runtime = crd.runtime({ apiGroup: "crd.projectcalico.org/v1" });
    crd.kube.store.put("globalnetworkpolicies.crd.projectcalico.org", {
      ...denyPolicy("default.deny-db", 10),
      apiVersion: "crd.projectcalico.org/v1",
    });
    const applied = body(
      await crd.invoke(apiEvent("POST", { reason: "no api server", ttlMinutes: 0 }), runtime),
    );
    expect(applied).toMatchObject({ result: "applied", apiGroup: "crd.projectcalico.org/v1" });
    expect(applied.conflicts.map((c) => c.name)).toEqual(["default.deny-db"]);
    const policy = crd.kube.store.get(
      "globalnetworkpolicies.crd.projectcalico.org",
      "allow-all",
    ) as unknown as CalicoPolicy;
    expect(policy.apiVersion).toBe("crd.projectcalico.org/v1");
    expect(body(await crd.invoke(apiEvent("DELETE"), runtime)).result).toBe("reverted");

    // A policy stored by the CRD backend as `default.allow-all` is the same policy: seen, refreshed, reverted.
    const GNP_CRD = "globalnetworkpolicies.crd.projectcalico.org";
    crd.kube.store.put(GNP_CRD, { ...policy, metadata: { ...policy.metadata, name: "default.allow-all" } });
    expect(body(await crd.invoke(apiEvent("GET"), runtime)).result).toBe("active");
    const refreshed = body(await crd.invoke(apiEvent("POST", { reason: "again", ttlMinutes: 0 }), runtime));
    expect(refreshed.result).toBe("refreshed");
    expect(crd.kube.store.get(GNP_CRD, "allow-all")).toBeUndefined();
    expect(body(await crd.invoke(apiEvent("DELETE"), runtime)).result).toBe("reverted");
    expect(crd.kube.store.get(GNP_CRD, "default.allow-all")).toBeUndefined();

    // And the v3 default on a cluster without the Calico API server points at this option.
    const missing = await crd.invoke(apiEvent("GET"), crd.runtime());
    expect(missing.statusCode).toBe(502);
    expect(body(missing).message).toMatch(/CALICO_API_GROUP=crd\.projectcalico\.org\/v1/);
  });
});
