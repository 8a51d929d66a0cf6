// Review of the panic policy's creation: another writer's policy created between the read and the create is a
// conflict and stays untouched, even when its values are the panic policy's own (the old runbook's allow-all),
// which a server-side apply would have merged into and adopted. A create (POST) is also what Calico 3.32.0
// serves, where it answers a server-side apply that would create the policy with 404 (projectcalico/calico#12841).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalicoPolicies, panicEksFixes } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import {
  type CalicoPolicy,
  DEFAULT_PANIC_SETTINGS,
  isManagedByCalicoFlows,
  PanicFailure,
  panicPolicyDocument,
} from "../../functions/core/panic-policy.ts";
import { type KubeApiServer, startKubeApiServer } from "../support/kube-api-server.ts";
import { CALICO_V3, GNP_V3 } from "./harness.ts";

describe("the panic policy's creation against a concurrent creator", () => {
  let kube: KubeApiServer;
  beforeAll(async () => {
    kube = await startKubeApiServer({ resources: CALICO_V3 });
  });
  afterAll(async () => {
    await kube?.close();
  });

  it("someone else's policy of that name and values since the read: a conflict, theirs untouched", async () => {
    const calico = new CalicoPolicies({
      apiGroup: "projectcalico.org/v3",
      kubeConfig: () => loadKubeconfig({ kubeconfig: kube.kubeconfigPath }),
      description: "the test cluster",
      timeoutMs: 5_000,
      fixes: panicEksFixes("prod-eu"),
    });
    expect(await calico.getGlobalPolicy("allow-all")).toBeNull();
    const document = panicPolicyDocument(DEFAULT_PANIC_SETTINGS, {
      reason: "r",
      requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
      appliedAt: "2024-06-01T00:00:00.000Z",
      expiresAt: null,
    });
    // The runbook's policy: the panic policy's spec, without its label and annotations.
    const foreign = {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all" },
      spec: structuredClone(document.spec),
    };
    kube.setInterceptor((request) => {
      if (request.method !== "POST" || !request.path.endsWith("/globalnetworkpolicies")) return undefined;
      // Another writer creates the object just before the create arrives; the server answers as it would.
      kube.store.put(GNP_V3, structuredClone(foreign));
      return request.next();
    });
    const error = await calico.createGlobalPolicy(document).catch((e: unknown) => e);
    kube.setInterceptor(null);
    expect(error).toBeInstanceOf(PanicFailure);
    expect(error).toMatchObject({ kind: "conflict" });
    expect((error as Error).message).toMatch(/HTTP 409: .*already exists/);
    const held = kube.store.get(GNP_V3, "allow-all") as unknown as CalicoPolicy;
    expect(held.spec).toEqual(foreign.spec);
    expect(isManagedByCalicoFlows(held)).toBe(false);
    expect(kube.applies()).toEqual([]);
  });
});
