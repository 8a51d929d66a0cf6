// Review of the panic create fallback (Calico 3.32.0 answers a server-side apply that would create the policy with
// 404, projectcalico/calico#12841): another writer's policy created meanwhile is a conflict and stays untouched.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalicoPolicies, panicEksFixes } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import {
  DEFAULT_PANIC_SETTINGS,
  PanicFailure,
  panicPolicyDocument,
} from "../../functions/core/panic-policy.ts";
import { type KubeApiServer, startKubeApiServer } from "../support/kube-api-server.ts";
import { CALICO_V3, GNP_V3 } from "./harness.ts";

describe("the panic create fallback against a concurrent creator", () => {
  let kube: KubeApiServer;
  beforeAll(async () => {
    kube = await startKubeApiServer({ resources: CALICO_V3 });
  });
  afterAll(async () => {
    await kube?.close();
  });

  it("apply 404 (Calico 3.32.0), then someone else's policy of that name: a conflict, theirs untouched", async () => {
    const calico = new CalicoPolicies({
      apiGroup: "projectcalico.org/v3",
      kubeConfig: () => loadKubeconfig({ kubeconfig: kube.kubeconfigPath }),
      description: "the test cluster",
      timeoutMs: 5_000,
      fixes: panicEksFixes("prod-eu"),
    });
    expect(await calico.getGlobalPolicy("allow-all")).toBeNull();
    const foreign = {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all" },
      spec: { order: 1, selector: "all()", ingress: [{ action: "Deny" }] },
    };
    kube.setInterceptor((request) => {
      if (request.method !== "PATCH" || !request.path.endsWith("/globalnetworkpolicies/allow-all"))
        return undefined;
      // The apply fails as 3.32.0 answers it, while another writer creates the object.
      kube.store.put(GNP_V3, foreign);
      return {
        code: 404,
        body: {
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          reason: "NotFound",
          code: 404,
          message: 'globalnetworkpolicies.projectcalico.org "allow-all" not found',
        },
      };
    });
    const document = panicPolicyDocument(DEFAULT_PANIC_SETTINGS, {
      reason: "r",
      requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
      appliedAt: "2024-06-01T00:00:00.000Z",
      expiresAt: null,
    });
    const error = await calico.applyGlobalPolicy(document, { force: false }).catch((e: unknown) => e);
    kube.setInterceptor(null);
    expect(error).toBeInstanceOf(PanicFailure);
    expect(error).toMatchObject({ kind: "conflict" });
    expect(kube.store.get(GNP_V3, "allow-all")?.spec).toEqual(foreign.spec);
  });
});
