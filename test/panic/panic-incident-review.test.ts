// Review: the panic button during a real incident. The on-call engineer presses it at 3 a.m. because a bad
// policy broke traffic: the Kubernetes API server throttles (429 + Retry-After) or answers 5xx, the Calico API
// server's own pods may be what the bad policy cut off, a colleague follows the old runbook by hand at the same
// moment, and people edit the policy with kubectl meanwhile. Through the Lambda handler against the local HTTPS
// Kubernetes API (Calico v3), dynalite for the audit trail, fauxqs for the announcements, a mocked Scheduler.
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CalicoPolicy, isManagedByCalicoFlows } from "../../functions/core/panic-policy.ts";
import type { KubeObject } from "../support/kube-api-server.ts";
import {
  apiEvent,
  GNP_V3,
  type PanicHarness,
  resetPanicWorld,
  responseBody,
  startPanicHarness,
  storedPanicPolicy,
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
beforeEach(async () => {
  h.kube.setInterceptor(null);
  await resetPanicWorld(h, scheduler);
});

const body = responseBody;
const GNP_PATH = "/apis/projectcalico.org/v3/globalnetworkpolicies";
const POLICY_PATH = `${GNP_PATH}/allow-all`;

describe("a Kubernetes API server under load", () => {
  // Defect: CalicoPolicies (functions/adapters/kube/calico.ts, #call) never asks again after a 429 (API Priority
  // and Fairness rejects before executing) even though the server says when to retry (Retry-After: 1) and the
  // request has ~20 s left. kubectl/client-go would retry it; the live directory does (retryAfterMs).
  // Impact: during an incident, when the API server is most loaded, the panic button answers 502 kube-unavailable
  // ("try again") to a throttle that cost one second; the operator has to keep pressing it.
  // Expected: a 429 with a Retry-After that fits the deadline is asked again, and the apply/revert succeeds.
  it.each([
    ["apply", "GET"],
    ["revert", "DELETE"],
  ] as const)("%s rides out one throttled request (429, Retry-After: 1)", async (action, method) => {
    if (action === "revert") {
      expect((await h.invoke(apiEvent("POST", { reason: "INC-42", ttlMinutes: 0 }))).statusCode).toBe(200);
    }
    await h.kube.setFault({ fault: { kind: "status", code: 429 }, method, path: POLICY_PATH, times: 1 });
    const result = await h.invoke(
      action === "apply"
        ? apiEvent("POST", { reason: "INC-42 payments down", ttlMinutes: 0 })
        : apiEvent("DELETE", { reason: "policy fixed" }),
    );
    expect({ status: result.statusCode, error: body(result).error }).toEqual({
      status: 200,
      error: undefined,
    });
    expect(body(result).result).toBe(action === "apply" ? "applied" : "reverted");
  });

  // Defect: PanicService.status (functions/panic/service.ts) throws when the conflict listing fails for any reason
  // other than running out of time (here a 500 "etcdserver: request timed out" on the NetworkPolicy list), although
  // the panic policy itself was read fine. apply treats the same failure as a warning (docs/panic.md: the listing
  // "only informs"; status gives "the policy's state with a warning when only the conflicts cannot be listed").
  // Impact: "is allow-all on?" answers 502 during the incident; and `calico-flows panic apply --api --cluster …`,
  // which asks the status first, refuses to apply at all.
  // Expected: 200 with the policy's state (active) and a "conflicts could not be listed" warning.
  it("status still reports the policy when only the conflict listing fails", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-42", ttlMinutes: 0 }))).statusCode).toBe(200);
    await h.kube.setFault({
      fault: { kind: "status", code: 500 },
      method: "GET",
      path: /\/networkpolicies$/,
    });
    const result = await h.invoke(apiEvent("GET"));
    expect(result.statusCode).toBe(200);
    expect(body(result).result).toBe("active");
    expect(body(result).warnings).toEqual(
      expect.arrayContaining([expect.stringMatching(/^conflicts could not be listed/)]),
    );
  });
});

describe("the Calico API server is what the bad policy cut off", () => {
  // Defect: when the aggregated projectcalico.org/v3 API is unavailable (kube-aggregator answers 503 "service
  // unavailable" while the calico-apiserver pods cannot be reached — a plausible effect of the very policy that
  // caused the incident), CalicoPolicies#failure maps it to a bare kube-unavailable ("HTTP 503: service
  // unavailable"). docs/panic.md: "If the configured group is not served, the answer is a 502 that names the other
  // group"; the code's own hint says "the Calico API server is not installed (or not available)".
  // Impact: the operator is not told the one way out (`--direct --api-group crd.projectcalico.org/v1`).
  // Expected: the 502 names crd.projectcalico.org/v1.
  it("names the CRD group when the Calico API server answers 503", async () => {
    await h.kube.setFault({
      fault: { kind: "status", code: 503, message: "service unavailable" },
      path: "/apis/projectcalico.org/",
    });
    const result = await h.invoke(apiEvent("POST", { reason: "INC-42 payments down", ttlMinutes: 0 }));
    expect(result.statusCode).toBe(502);
    expect(body(result).message).toContain("crd.projectcalico.org/v1");
  });
});

describe("a colleague follows the old runbook at the same moment", () => {
  // Defect: when the read finds no policy, PanicService.apply creates it with a server-side apply
  // (CalicoPolicies.applyGlobalPolicy, force: false), which has no "must not exist" precondition. If a colleague
  // `kubectl apply`s the runbook's hand-written allow-all between our read and our write, its fields have the same
  // values as ours, so a real API server reports no field conflict and merges: calico-flows' label and stamp land
  // on the colleague's policy and the answer says "applied".
  // Impact: "it never deletes a policy it did not create" is broken: the expiry (or a revert) later deletes the
  // colleague's hand-made policy, which they believed stays until they remove it.
  // Expected: the creation fails as a conflict (a POST create answers 409 AlreadyExists), the re-read finds a
  // foreign policy, the answer is 409 and the colleague's policy carries no calico-flows label.
  it("does not adopt a hand-made allow-all created between its read and its write", async () => {
    const runbook: KubeObject = {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all" },
      spec: {
        tier: "default",
        order: 100,
        namespaceSelector: "baseten.co/organization == 'true'",
        types: ["Ingress", "Egress"],
        ingress: [{ action: "Allow" }],
        egress: [{ action: "Allow" }],
      },
    };
    let raced = false;
    h.kube.setInterceptor((request) => {
      // The first write, whatever its kind (apply, create, replace): the colleague's policy lands just before it.
      if (raced || request.method === "GET" || !request.path.startsWith(GNP_PATH)) return undefined;
      raced = true;
      h.kube.store.put(GNP_V3, structuredClone(runbook));
      return request.next();
    });
    const result = await h.invoke(apiEvent("POST", { reason: "INC-42 payments down", ttlMinutes: 60 }));
    h.kube.setInterceptor(null);
    expect(raced).toBe(true);
    const held = storedPanicPolicy(h) as CalicoPolicy;
    expect({ status: result.statusCode, ours: isManagedByCalicoFlows(held) }).toEqual({
      status: 409,
      ours: false,
    });
  });
});

describe("the status says what the cluster holds", () => {
  // Defect: PanicService.status computes the conflicts with findConflicts(this.#deps.settings, …), i.e. for the
  // configured order (100), not for the policy the cluster holds. Someone moved the panic policy to order 2000 by
  // hand (it keeps calico-flows' label); a Deny policy at order 1000 is now evaluated before it.
  // Impact: status says "applied" with no conflicts while deny-db still drops the traffic the operator believes
  // is open.
  // Expected: the conflicts are those of the held policy's position: deny-db is listed.
  it("lists the policies evaluated before the held policy, wherever it was moved", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-42", ttlMinutes: 0 }))).statusCode).toBe(200);
    const held = structuredClone(storedPanicPolicy(h)) as CalicoPolicy;
    h.kube.store.put(GNP_V3, { ...held, spec: { ...held.spec, order: 2000 } } as unknown as KubeObject);
    h.kube.store.put(GNP_V3, {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "deny-db" },
      spec: {
        order: 1000,
        selector: "all()",
        types: ["Ingress"],
        ingress: [{ action: "Deny", protocol: "TCP", destination: { ports: [5432] } }],
      },
    });
    const answer = body(await h.invoke(apiEvent("GET")));
    expect(answer.result).toBe("active");
    expect(answer.policy?.spec.order).toBe(2000);
    expect(answer.conflicts.map((c) => c.name)).toEqual(["deny-db"]);
  });
});
