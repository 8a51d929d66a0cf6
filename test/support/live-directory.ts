// What the live directory's tests share: a directory on the local Kubernetes API server, the holder history port
// in memory, and answers written as `kind:name` or their status.
import { KUBECONFIG_FIXES, loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import { LiveDirectory, type LiveDirectoryOptions } from "../../functions/adapters/kube/live-directory.ts";
import { holderKey } from "../../functions/core/holders.ts";
import type { HolderHistory } from "../../functions/core/ports.ts";
import type { Holder, Resolution } from "../../functions/core/types.ts";
import { type KubeApiServer, kubeObjects } from "./kube-api-server.ts";

/** A live directory reading `server` through its kubeconfig, with the fixes a kubeconfig's errors name. */
export function liveDirectoryOn(
  server: Pick<KubeApiServer, "kubeconfigPath">,
  options: Omit<LiveDirectoryOptions, "kubeConfig">,
): LiveDirectory {
  const kc = loadKubeconfig({ kubeconfig: server.kubeconfigPath });
  return new LiveDirectory({ kubeConfig: () => kc, fixes: KUBECONFIG_FIXES, ...options });
}

/** `kind:name` of each holder found, else the status. */
export const holderNames = (resolutions: readonly Resolution[]) =>
  resolutions.map((r) => (r.status === "found" ? `${r.holder.kind}:${r.holder.name}` : r.status));

/** The history port as DynamoDB implements it, in memory: every holder created at or before the time, newest first. */
export class MemoryHistory implements HolderHistory {
  readonly rows = new Map<string, { cluster: string; ip: string; holder: Holder }>();
  reads = 0;
  failReads = false;
  async remember(cluster: string, entries: readonly { ip: string; holder: Holder }[]): Promise<void> {
    for (const { ip, holder } of entries)
      this.rows.set(`${cluster}|${ip}|${holderKey(holder)}`, { cluster, ip, holder });
  }
  async holdersOf(cluster: string, ip: string, at: number): Promise<Holder[]> {
    this.reads++;
    if (this.failReads) throw new Error("ProvisionedThroughputExceededException");
    return [...this.rows.values()]
      .filter((r) => r.cluster === cluster && r.ip === ip && r.holder.validFrom <= at)
      .map((r) => r.holder)
      .sort((a, b) => b.validFrom - a.validFrom);
  }
  holders(ip: string): Holder[] {
    return [...this.rows.values()].filter((r) => r.ip === ip).map((r) => r.holder);
  }
}

/** A Deployment's pod (its ReplicaSet named after it) in namespace `shop` on ip-192-168-0-1, put on `server`. */
export function addReplicaSetPod(
  server: Pick<KubeApiServer, "store">,
  name: string,
  ip: string | null,
  created: number,
  extra: Partial<Parameters<typeof kubeObjects.pod>[0]> = {},
) {
  return server.store.put(
    "pods",
    kubeObjects.pod({
      name,
      namespace: "shop",
      ip,
      created,
      node: "ip-192-168-0-1",
      owner: { kind: "ReplicaSet", name: name.replace(/-[^-]+$/, "") },
      uid: `uid-${name}`,
      ...extra,
    }),
  );
}
