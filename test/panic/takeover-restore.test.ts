// A policy taken over with force is kept in the panic policy and put back, as it was, by the revert or the expiry:
// calico-flows never deletes a policy it did not create. One too large to keep is refused, and left alone. A copy
// that cannot be read (edited by hand) stops a revert unless forced; the expiry, and a revert whose copy the API
// server rejects, restore isolation without it; either way the audit record keeps the copy, and status says so.
import { createHash } from "node:crypto";
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
const REPLACED = "calico-flows.io/replaced-policy";

/** PLATFORM taken over (TTL `ttlMinutes`), then its kept copy edited by hand into text that is not JSON: that text. */
async function takenOverWithCopyBroken(
  ttlMinutes: number,
): Promise<{ text: string; expiresAt: string | null }> {
  h.kube.store.put(GNP_V3, structuredClone(PLATFORM));
  const taken = responseBody(await h.invoke(apiEvent("POST", { reason: "INC-8", ttlMinutes, force: true })));
  expect(taken.result).toBe("taken-over");
  const policy = storedPanicPolicy(h) as NonNullable<ReturnType<typeof storedPanicPolicy>>;
  const annotations = policy.metadata.annotations as Record<string, string>;
  annotations[REPLACED] += "}";
  h.kube.store.put(GNP_V3, policy as never);
  return { text: annotations[REPLACED] as string, expiresAt: taken.expiresAt };
}

const latestRecord = async () =>
  (responseBody(await h.invoke(apiEvent("GET", undefined, { query: { history: "1" } }))).history ?? [])[0];

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

it("keeps the copy of the policy it took over in the take-over's audit record, with its digest", async () => {
  h.kube.store.put(GNP_V3, structuredClone(PLATFORM));
  await h.invoke(apiEvent("POST", { reason: "INC-5", ttlMinutes: 0, force: true }));
  const copy = storedPanicPolicy(h)?.metadata.annotations?.[REPLACED] as string;
  expect(JSON.parse(copy)).toMatchObject({ metadata: { name: "allow-all" }, spec: PLATFORM.spec });
  expect(await latestRecord()).toMatchObject({
    result: "taken-over",
    replacedPolicy: copy,
    replacedPolicySha256: createHash("sha256").update(copy).digest("hex"),
  });
});

it("puts back a policy it took over that had no spec", async () => {
  const { spec: _, ...specless } = structuredClone(PLATFORM);
  h.kube.store.put(GNP_V3, specless as never);
  await h.invoke(apiEvent("POST", { reason: "INC-5", ttlMinutes: 0, force: true }));
  const reverted = responseBody(await h.invoke(apiEvent("DELETE", { reason: "INC-5 over" })));
  expect(reverted).toMatchObject({ result: "reverted", warnings: [] });
  expect(written()).toEqual({ ...platform, spec: undefined });
});

it("refuses to revert when the copy it kept cannot be read, unless forced, and keeps the copy in the audit", async () => {
  const { text } = await takenOverWithCopyBroken(0);
  const status = responseBody(await h.invoke(apiEvent("GET")));
  expect(status.message).toMatch(/it took over a policy of that name, whose kept copy cannot be read/);
  expect(status.warnings).toEqual([
    expect.stringMatching(
      /^the copy of the policy it took over \(calico-flows\.io\/replaced-policy\) cannot be read/,
    ),
  ]);
  expect(status.warnings[0]?.endsWith(text)).toBe(true);

  const refused = await h.invoke(apiEvent("DELETE", { reason: "INC-8 over" }));
  expect(refused.statusCode).toBe(409);
  const { error, message } = responseBody(refused) as unknown as { error: string; message: string };
  expect(error).toBe("not-owned");
  expect(message).toMatch(
    /cannot be read .*nothing was changed.* revert with force \(`--force` in the CLI\)/,
  );
  expect(message.endsWith(text)).toBe(true);
  expect(storedPanicPolicy(h)?.metadata.annotations?.[REPLACED]).toBe(text);

  const forced = responseBody(await h.invoke(apiEvent("DELETE", { reason: "INC-8 over", force: true })));
  expect(forced.result).toBe("reverted");
  expect(forced.warnings).toEqual([
    expect.stringMatching(/^the policy it had taken over was not put back: its copy .* could not be read/),
  ]);
  expect(forced.warnings[0]?.endsWith(text)).toBe(true);
  expect(storedPanicPolicy(h)).toBeUndefined();
  const record = await latestRecord();
  expect(record).toMatchObject({ action: "revert", outcome: "success", replacedPolicy: text });
  expect(record?.message).toMatch(/\. WARNING: the policy it had taken over was not put back/);
});

it("removes it on expiry all the same, keeping the copy it could not read in the audit record", async () => {
  const { text, expiresAt } = await takenOverWithCopyBroken(1);
  const expired = (await h.invoke({
    source: "calico-flows.expiry",
    action: "revert",
    cluster: CLUSTER,
    policyName: "allow-all",
    expiresAt,
  })) as unknown as { result: string; warnings: string[] };
  expect(expired.result).toBe("expired");
  expect(expired.warnings).toEqual([expect.stringMatching(/^the policy it had taken over was not put back/)]);
  expect(storedPanicPolicy(h)).toBeUndefined();
  expect(await latestRecord()).toMatchObject({ action: "expire", replacedPolicy: text });
});

it("removes the panic policy when the API server rejects the copy it puts back, rather than fail every revert", async () => {
  h.kube.store.put(GNP_V3, structuredClone(PLATFORM));
  await h.invoke(apiEvent("POST", { reason: "INC-5", ttlMinutes: 0, force: true }));
  const copy = storedPanicPolicy(h)?.metadata.annotations?.[REPLACED];
  await h.kube.setFault({
    fault: { kind: "status", code: 422, message: "spec.selector: invalid" },
    method: "PUT",
  });
  const reverted = responseBody(await h.invoke(apiEvent("DELETE", { reason: "INC-5 over" })));
  expect(reverted.result).toBe("reverted");
  expect(reverted.message).toMatch(
    /without the policy it had taken over, which could not be put back: Calico isolation is back/,
  );
  expect(reverted.warnings).toEqual([
    expect.stringMatching(
      /^the policy it had taken over was not put back: its copy .* was rejected by the API server \(.*spec\.selector: invalid/,
    ),
  ]);
  expect(storedPanicPolicy(h)).toBeUndefined();
  expect(await latestRecord()).toMatchObject({ action: "revert", outcome: "success", replacedPolicy: copy });
});
