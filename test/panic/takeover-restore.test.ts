// A policy taken over with force is kept in the panic policy and put back, as it was, by the revert or the expiry:
// calico-flows never deletes a policy it did not create. One too large to keep is refused, and left alone.
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import {
  apiEvent,
  CLUSTER,
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
beforeEach(() => resetPanicWorld(h, scheduler));

/** The platform team's own allow-all, for kube-system, as they applied it. */
const PLATFORM = {
  apiVersion: "projectcalico.org/v3",
  kind: "GlobalNetworkPolicy",
  metadata: {
    name: "allow-all",
    labels: { owner: "platform" },
    annotations: { "platform.example.com/ticket": "NET-12" },
  },
  spec: {
    order: 100,
    namespaceSelector: "projectcalico.org/name == 'kube-system'",
    types: ["Ingress", "Egress"],
    ingress: [{ action: "Allow" }],
    egress: [{ action: "Allow" }],
  },
};

/** What its owner wrote, without the server's bookkeeping. */
const written = () => {
  const policy = storedPanicPolicy(h);
  return {
    labels: policy?.metadata.labels,
    annotations: policy?.metadata.annotations,
    spec: policy?.spec,
  };
};
const platform = {
  labels: PLATFORM.metadata.labels,
  annotations: PLATFORM.metadata.annotations,
  spec: PLATFORM.spec,
};

it("puts back the policy it took over when reverted, a refresh in between", async () => {
  h.kube.store.put(GNP_V3, structuredClone(PLATFORM));
  const taken = responseBody(
    await h.invoke(apiEvent("POST", { reason: "INC-5", ttlMinutes: 0, force: true })),
  );
  expect(taken.result).toBe("taken-over");
  expect(taken.message).toMatch(/a copy of it is kept in the annotation calico-flows\.io\/replaced-policy/);
  expect(storedPanicPolicy(h)?.spec.namespaceSelector).toBe("baseten.co/organization == 'true'");
  expect(
    responseBody(await h.invoke(apiEvent("POST", { reason: "INC-5 again", ttlMinutes: 0 }))).result,
  ).toBe("refreshed");
  expect(responseBody(await h.invoke(apiEvent("GET"))).message).toMatch(
    /it took over a policy of that name, which revert puts back/,
  );

  const reverted = responseBody(await h.invoke(apiEvent("DELETE", { reason: "INC-5 over" })));
  expect(reverted).toMatchObject({ result: "reverted", reason: "INC-5 again", warnings: [] });
  expect(reverted.message).toMatch(/and the policy it had taken over put back as it was$/);
  expect(written()).toEqual(platform);
  expect(reverted.policy?.spec).toEqual(PLATFORM.spec);
  expect(await h.announcements()).toContainEqual(expect.objectContaining({ action: "reverted" }));
  // Someone else's again: not reverted a second time.
  expect((await h.invoke(apiEvent("DELETE"))).statusCode).toBe(409);
  expect(written()).toEqual(platform);
});

it("puts it back when the expiry reverts it", async () => {
  h.kube.store.put(GNP_V3, structuredClone(PLATFORM));
  const taken = responseBody(
    await h.invoke(apiEvent("POST", { reason: "INC-6", ttlMinutes: 1, force: true })),
  );
  const expired = (await h.invoke({
    source: "calico-flows.expiry",
    action: "revert",
    cluster: CLUSTER,
    policyName: "allow-all",
    expiresAt: taken.expiresAt,
  })) as unknown as { result: string };
  expect(expired.result).toBe("expired");
  expect(written()).toEqual(platform);
});

it("refuses to take over a policy too large to keep, and leaves it as it is", async () => {
  const large = structuredClone(PLATFORM);
  const annotations: Record<string, string> = large.metadata.annotations;
  annotations["platform.example.com/notes"] = "x".repeat(256 * 1024);
  h.kube.store.put(GNP_V3, large);
  const refused = await h.invoke(apiEvent("POST", { reason: "INC-7", ttlMinutes: 0, force: true }));
  expect(refused.statusCode).toBe(409);
  expect(responseBody(refused)).toMatchObject({ error: "not-owned" });
  expect(responseBody(refused).message).toMatch(
    /too large to keep a copy of .*\(\d+ bytes; Kubernetes allows 262144\)/,
  );
  expect(written()).toEqual({
    labels: large.metadata.labels,
    annotations: large.metadata.annotations,
    spec: large.spec,
  });
  expect(h.kube.counts.total({ method: "PUT" })).toBe(0);
});
