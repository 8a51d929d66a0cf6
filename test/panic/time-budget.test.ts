// The panic function's time budget (docs/panic.md, "Time budget"): when the Kubernetes API is slow, every answer
// still comes, audited, before the invocation's time is up, the emergency write is not held up by the conflict
// listing, and no write lands after an answer that said nothing was applied. Latency is injected into the local
// Kubernetes API server; the Lambda context's remaining time is the test's. Times asserted are only the logical
// deadlines (the invocation's remaining time, a request's own timeout), with margins for a loaded machine.
import { setTimeout as sleep } from "node:timers/promises";
import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DynamoPanicAudit } from "../../functions/adapters/dynamo/panic-audit.ts";
import { CalicoPolicies, panicEksFixes } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import { Deadline } from "../../functions/core/deadline.ts";
import { type CalicoPolicy, DEFAULT_PANIC_SETTINGS, OutOfTime } from "../../functions/core/panic-policy.ts";
import { ANSWER_RESERVE_MS } from "../../functions/panic/handler.ts";
import {
  apiEvent,
  CLUSTER,
  GNP_V3,
  lambdaContext,
  type PanicHarness,
  resetPanicWorld,
  responseBody,
  startPanicHarness,
  storedPanicPolicy,
} from "./harness.ts";

const scheduler = mockClient(SchedulerClient);
let h: PanicHarness;
let audit: DynamoPanicAudit;

beforeAll(async () => {
  h = await startPanicHarness();
  audit = new DynamoPanicAudit({ client: h.store.clientFor(), tableName: h.store.tableName });
});
afterAll(async () => {
  scheduler.restore();
  await h?.close();
});
beforeEach(() => resetPanicWorld(h, scheduler));

const body = responseBody;
const stored = () => storedPanicPolicy(h);
/** The invocation has `budgetMs` for its work once the handler kept its reserve for the paperwork. */
const invocationWith = (budgetMs: number) => lambdaContext(undefined, ANSWER_RESERVE_MS + budgetMs);
/** The harness's per-request Kubernetes timeout. */
const REQUEST_TIMEOUT_MS = 5_000;
/** The policy lists, not the policy object (GET .../globalnetworkpolicies/allow-all). */
const POLICY_LISTS = /\/(globalnetworkpolicies|networkpolicies)$/;

function denyPolicy(name: string, order: number) {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name },
    spec: {
      order,
      selector: "all()",
      ingress: [{ action: "Deny", protocol: "TCP", destination: { ports: [5432] } }],
    },
  };
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work();
  return { value, ms: Date.now() - started };
}

describe("apply against a slow Kubernetes API", () => {
  it("applies within the budget when the policy listing is slow, with a warning instead of the conflicts", async () => {
    h.kube.store.put(GNP_V3, denyPolicy("deny-db", 50));
    // Slower than the per-request timeout: listing the conflicts alone would fail the apply.
    await h.kube.setFault({ fault: { kind: "delay", ms: 8_000 }, method: "GET", path: POLICY_LISTS });
    const context = invocationWith(4_000);
    const { value: result, ms } = await timed(() =>
      h.invoke(apiEvent("POST", { reason: "INC-7 payments down", ttlMinutes: 30 }), undefined, context),
    );
    expect(result.statusCode).toBe(200);
    expect(ms).toBeLessThan(ANSWER_RESERVE_MS + 4_000);
    const answer = body(result);
    expect(answer).toMatchObject({ result: "applied", reason: "INC-7 payments down", conflicts: [] });
    expect(answer.warnings).toEqual([
      expect.stringMatching(/^conflicts could not be listed in time: run `calico-flows panic status`/),
    ]);
    expect(stored()?.metadata.annotations?.["calico-flows.io/reason"]).toBe("INC-7 payments down");
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    const [entry] = await audit.recent(CLUSTER, 1);
    expect(entry).toMatchObject({ action: "apply", outcome: "success", result: "applied", conflicts: [] });
    expect(await h.announcements()).toEqual([expect.objectContaining({ action: "applied" })]);
  });

  it("refuses in time when the API server is slower than the budget: audited, and nothing written later", async () => {
    // Every request answers after 4 s, within the per-request timeout: only the budget stops the chain
    // (read, write, schedule check), which would otherwise end long after the invocation.
    await h.kube.setFault({ kind: "delay", ms: 4_000 });
    const remaining = ANSWER_RESERVE_MS + 3_000;
    const { value: result, ms } = await timed(() =>
      h.invoke(
        apiEvent("POST", { reason: "INC-8 all down", ttlMinutes: 30 }),
        undefined,
        lambdaContext(undefined, remaining),
      ),
    );
    expect(ms).toBeLessThan(remaining);
    expect(result.statusCode).toBe(502);
    expect(body(result)).toMatchObject({ error: "kube-unavailable" });
    expect(body(result).message).toMatch(/this request had left; nothing was applied/);
    expect(body(result).message).toMatch(/calico-flows panic apply --direct/);

    const [entry] = await audit.recent(CLUSTER, 1);
    expect(entry).toMatchObject({
      action: "apply",
      outcome: "failed",
      result: "kube-unavailable",
      reason: "INC-8 all down",
    });
    expect(await h.announcements()).toEqual([
      expect.objectContaining({ action: "refused", reason: "INC-8 all down" }),
    ]);
    // Every request the server took is answered by now: none of them was a write.
    await sleep(4_500);
    expect(stored()).toBeUndefined();
    expect(h.kube.counts.total({ method: "POST" }) + h.kube.counts.total({ method: "PUT" })).toBe(0);
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
  });

  it("says a write cut short by the budget may still be carried out, as it then is", async () => {
    await h.kube.setFault({ fault: { kind: "delay", ms: 4_000 }, method: "POST" });
    const remaining = ANSWER_RESERVE_MS + 2_500;
    const { value: result, ms } = await timed(() =>
      h.invoke(
        apiEvent("POST", { reason: "INC-9", ttlMinutes: 0 }),
        undefined,
        lambdaContext(undefined, remaining),
      ),
    );
    expect(ms).toBeLessThan(remaining);
    expect(result.statusCode).toBe(502);
    expect(body(result).message).toMatch(
      /creating globalnetworkpolicies\/allow-all .*: the write was sent, and the API server may have carried it out .*calico-flows panic status/,
    );
    // Neither refused nor failed: the record says what the answer said.
    const [entry] = await audit.recent(CLUSTER, 1);
    expect(entry).toMatchObject({ action: "apply", outcome: "unknown", result: "kube-unavailable" });
    expect(await h.announcements()).toEqual([
      expect.objectContaining({ action: "refused", request: "apply", outcome: "unknown" }),
    ]);
    await sleep(4_000);
    expect(stored()?.metadata.annotations?.["calico-flows.io/reason"]).toBe("INC-9");
  });

  it("answers in time when the expiry schedule does not, and says the expiry is not confirmed", async () => {
    scheduler.on(CreateScheduleCommand).callsFake(() => new Promise(() => undefined));
    const remaining = ANSWER_RESERVE_MS + 3_000;
    const { value: result, ms } = await timed(() =>
      h.invoke(
        apiEvent("POST", { reason: "INC-10", ttlMinutes: 30 }),
        undefined,
        lambdaContext(undefined, remaining),
      ),
    );
    expect(ms).toBeLessThan(remaining);
    expect(result.statusCode).toBe(200);
    const answer = body(result);
    expect(answer.result).toBe("applied");
    expect(answer.warnings).toContainEqual(
      expect.stringMatching(
        /^the expiry schedule was not confirmed in time .*: if it was not written, the policy stays until reverted by hand$/,
      ),
    );
    expect(stored()).toBeDefined();
    const [entry] = await audit.recent(CLUSTER, 1);
    expect(entry).toMatchObject({ action: "apply", outcome: "success", result: "applied" });
  });

  it("answers a fast cluster as before, whatever the budget", async () => {
    h.kube.store.put(GNP_V3, denyPolicy("deny-db", 50));
    for (const context of [lambdaContext(), invocationWith(3_000)]) {
      const result = await h.invoke(
        apiEvent("POST", { reason: "INC-11", ttlMinutes: 0, dryRun: true }),
        undefined,
        context,
      );
      expect(result.statusCode).toBe(200);
      const answer = body(result);
      expect(answer).toMatchObject({ action: "dry-run", result: "would-apply", warnings: [] });
      expect(answer.conflicts).toEqual([
        {
          kind: "GlobalNetworkPolicy",
          name: "deny-db",
          namespace: null,
          tier: "default",
          order: 50,
          reasons: ["Deny rule (Ingress) evaluated before the panic policy"],
        },
      ]);
      expect(answer.message).toMatch(/WARNING: 1 policy is evaluated before it and may still deny traffic/);
    }
    const applied = body(await h.invoke(apiEvent("POST", { reason: "INC-11", ttlMinutes: 30 })));
    expect(applied).toMatchObject({ result: "applied", warnings: [] });
    expect(applied.conflicts.map((c) => c.name)).toEqual(["deny-db"]);
  });
});

describe("revert and status against a slow Kubernetes API", () => {
  it("refuses a revert in time, audited, and deletes nothing later", async () => {
    const applied = await h.invoke(apiEvent("POST", { reason: "INC-12", ttlMinutes: 0 }));
    expect(applied.statusCode).toBe(200);
    await h.announcements();
    await h.kube.setFault({ kind: "delay", ms: 4_500 });
    const remaining = ANSWER_RESERVE_MS + 2_000;
    const { value: result, ms } = await timed(() =>
      h.invoke(apiEvent("DELETE", { reason: "fixed" }), undefined, lambdaContext(undefined, remaining)),
    );
    expect(ms).toBeLessThan(remaining);
    expect(result.statusCode).toBe(502);
    expect(body(result).message).toMatch(/nothing was reverted/);
    const [entry] = await audit.recent(CLUSTER, 1);
    expect(entry).toMatchObject({ action: "revert", outcome: "failed", result: "kube-unavailable" });
    await sleep(5_000);
    expect(stored()).toBeDefined();
    expect(h.kube.counts.total({ method: "DELETE" })).toBe(0);
  });

  it("reports the policy with a warning when the conflicts cannot be listed in time", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-13", ttlMinutes: 0 }))).statusCode).toBe(200);
    await h.kube.setFault({ fault: { kind: "delay", ms: 8_000 }, method: "GET", path: POLICY_LISTS });
    const remaining = ANSWER_RESERVE_MS + 2_000;
    const { value: result, ms } = await timed(() =>
      h.invoke(apiEvent("GET"), undefined, lambdaContext(undefined, remaining)),
    );
    expect(ms).toBeLessThan(remaining);
    expect(result.statusCode).toBe(200);
    expect(body(result)).toMatchObject({ result: "active", reason: "INC-13", conflicts: [] });
    expect(body(result).warnings).toEqual([expect.stringMatching(/^conflicts could not be listed in time/)]);
  });
});

describe("the invocation's deadline", () => {
  it("is the context's remaining time less the reserve, for every route and the expiry", async () => {
    const runtime = h.runtime();
    const seen: Record<string, number | undefined> = {};
    const service = runtime.service;
    const apply = service.apply.bind(service);
    const status = service.status.bind(service);
    const revert = service.revert.bind(service);
    const expire = service.expire.bind(service);
    vi.spyOn(service, "apply").mockImplementation((request) => {
      seen.apply = request.deadline?.remainingMs();
      return apply(request);
    });
    vi.spyOn(service, "status").mockImplementation((limit, deadline) => {
      seen.status = deadline?.remainingMs();
      return status(limit, deadline);
    });
    vi.spyOn(service, "revert").mockImplementation((request) => {
      seen.revert = request.deadline?.remainingMs();
      return revert(request);
    });
    vi.spyOn(service, "expire").mockImplementation((event, deadline) => {
      seen.expire = deadline?.remainingMs();
      return expire(event, deadline);
    });
    // A context whose clock stands still: the deadline is what it says, less the reserve.
    const context = lambdaContext(undefined, () => 20_000);
    await h.invoke(apiEvent("POST", { reason: "INC-14", ttlMinutes: 1 }), runtime, context);
    await h.invoke(apiEvent("GET"), runtime, context);
    await h.invoke(
      {
        source: "calico-flows.expiry",
        action: "revert",
        cluster: CLUSTER,
        policyName: "allow-all",
        expiresAt: "2020-01-01T00:00:00.000Z",
      },
      runtime,
      context,
    );
    await h.invoke(apiEvent("DELETE"), runtime, context);
    for (const route of ["apply", "status", "revert", "expire"]) {
      expect(seen[route], route).toBeLessThanOrEqual(20_000 - ANSWER_RESERVE_MS);
      // The few milliseconds between the handler's start and the service's.
      expect(seen[route], route).toBeGreaterThan(20_000 - ANSWER_RESERVE_MS - 2_000);
    }
  });
});

describe("the Calico store under a deadline", () => {
  const calico = (timeoutMs = REQUEST_TIMEOUT_MS) =>
    new CalicoPolicies({
      apiGroup: DEFAULT_PANIC_SETTINGS.apiGroup,
      kubeConfig: () => loadKubeconfig({ kubeconfig: h.kube.kubeconfigPath }),
      description: "the test cluster",
      timeoutMs,
      fixes: panicEksFixes(CLUSTER),
    });

  it("says a write given up on after it went out may have been carried out, whatever ended it", async () => {
    // Its own timeout, with no deadline (`panic --direct`, or a deadline far off): the API server carries it out later.
    await h.kube.setFault({ fault: { kind: "delay", ms: 600 }, method: "POST" });
    const timedOut = await calico(300)
      .createGlobalPolicy(denyPolicy("slow", 1) as CalicoPolicy)
      .catch((e: unknown) => e);
    expect(timedOut).toBeInstanceOf(OutOfTime);
    expect(timedOut).toMatchObject({ kind: "kube-unavailable", sent: true });
    expect((timedOut as Error).message).toMatch(
      /^creating globalnetworkpolicies\/slow on the test cluster: no answer within the 300 ms this request may take$/,
    );
    while (h.kube.store.get(GNP_V3, "slow") === undefined) await sleep(20);

    // The connection lost before the answer.
    await h.kube.setFault({ fault: { kind: "reset" }, method: "DELETE" });
    const reset = await calico()
      .deleteGlobalPolicy("slow", {})
      .catch((e: unknown) => e);
    expect(reset).toMatchObject({ kind: "kube-unavailable", sent: true });
    expect((reset as Error).message).toMatch(
      /deleting globalnetworkpolicies\/slow .*the connection was lost/,
    );

    // The API server's own timeout: it may still be processing the request.
    await h.kube.setFault({
      fault: { kind: "status", code: 504, message: "request timed out" },
      method: "PUT",
    });
    const abandoned = await calico()
      .replaceGlobalPolicy(denyPolicy("slow", 2) as CalicoPolicy)
      .catch((e: unknown) => e);
    expect(abandoned).toMatchObject({ kind: "kube-unavailable", sent: true });
    expect((abandoned as Error).message).toMatch(
      /the API server gave up on it \(HTTP 504: request timed out\)$/,
    );

    // A read so cut off changes nothing; a connection refused sent nothing.
    await h.kube.setFault({ fault: { kind: "reset" }, method: "GET" });
    const read = await calico()
      .getGlobalPolicy("slow")
      .catch((e: unknown) => e);
    expect(read).toMatchObject({ kind: "kube-unavailable" });
    expect(read).not.toBeInstanceOf(OutOfTime);
    await h.kube.setFault({ kind: "down" });
    const refused = await calico()
      .deleteGlobalPolicy("slow", {})
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ kind: "kube-unavailable" });
    expect(refused).not.toBeInstanceOf(OutOfTime);
  });

  it("gives a request what is left of the deadline when that is shorter than its timeout", async () => {
    await h.kube.setFault({ kind: "delay", ms: 3_000 });
    // A clock that stands still: 400 ms stay left however long the request takes.
    const deadline = Deadline.after(400, () => 0);
    const started = Date.now();
    const error = await calico()
      .getGlobalPolicy("allow-all", { deadline })
      .catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS);
    expect(error).toBeInstanceOf(OutOfTime);
    // A read: nothing that the API server could still carry out.
    expect(error).toMatchObject({ kind: "kube-unavailable", sent: false });
    expect((error as Error).message).toMatch(/reading globalnetworkpolicies\/allow-all .*within the 400 ms/);
  });

  it("does not send a request once the deadline is spent", async () => {
    const error = await calico()
      .createGlobalPolicy(denyPolicy("late", 1) as CalicoPolicy, { deadline: Deadline.after(0) })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "kube-unavailable", sent: false });
    expect((error as Error).message).toMatch(/was not attempted: the time this request may take is spent/);
    expect(h.kube.counts.total()).toBe(0);
  });

  it("keeps the request's own timeout when there is no deadline (calico-flows panic --direct)", async () => {
    await h.kube.setFault({ kind: "delay", ms: 1_000 });
    const deadline = Deadline.unbounded();
    expect(deadline.bounded).toBe(false);
    expect(deadline.earlier(1_000).remainingMs()).toBe(Number.POSITIVE_INFINITY);
    expect(deadline.within(5_000).remainingMs()).toBe(5_000);
    expect(await calico().listTiers({ deadline })).toEqual([]);
  });
});

describe("Deadline", () => {
  it("shares out time on the clock it is given", () => {
    let now = 1_000;
    const deadline = Deadline.after(10_000, () => now);
    expect(deadline.remainingMs()).toBe(10_000);
    expect(deadline.earlier(2_500).remainingMs()).toBe(7_500);
    expect(deadline.within(3_000).remainingMs()).toBe(3_000);
    expect(deadline.within(30_000).remainingMs()).toBe(10_000);
    now += 9_000;
    expect(deadline.remainingMs()).toBe(1_000);
    expect(deadline.earlier(2_500).remainingMs()).toBe(0);
    now += 5_000;
    expect(deadline.remainingMs()).toBe(0);
  });
});
