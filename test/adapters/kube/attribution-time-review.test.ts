// Attribution in time (DESIGN.md §4, docs/architecture.md "Attribution: correct in time") through the live
// directory, the local Kubernetes API server and the DynamoDB holder history (dynalite): cases found in review.
// Each scenario is one an operator of a busy EKS cluster meets: pods and nodes churn, addresses are reused,
// Lambda containers come and go, lines arrive late or are backfilled.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DynamoHolderHistory } from "../../../functions/adapters/dynamo/history.ts";
import type { LiveDirectory, LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import type { Holder } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";
import { addReplicaSetPod, liveDirectoryOn, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const S = 1_000;
const MIN = 60_000;
const CLUSTER = "prod";

let server: KubeApiServer;
let store: TestStore;
let clock: { t: number };

beforeAll(async () => {
  [server, store] = await Promise.all([startKubeApiServer(), startTestStore()]);
});
afterAll(async () => {
  await server.setFault(null);
  await Promise.all([server.close(), store.close()]);
});
beforeEach(() => {
  server.store.clear();
  server.store.put("namespaces", kubeObjects.namespace({ name: "shop" }));
  server.counts.reset();
  clock = { t: T };
});

/** A DynamoDB holder history in a table of its own. */
async function freshHistory(): Promise<DynamoHolderHistory> {
  return new DynamoHolderHistory({
    client: store.client,
    tableName: await store.freshTable(),
    now: () => clock.t,
  });
}

/** One warm Lambda container's directory (each has its own memory; they share the history). */
function container(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, { cluster: CLUSTER, timeoutMs: 2_000, now: () => clock.t, ...options });
}

const addPod = (
  name: string,
  ip: string,
  created: number,
  extra: Parameters<typeof addReplicaSetPod>[4] = {},
) => addReplicaSetPod(server, name, ip, created, extra);

function addNode(name: string, ip: string, created: number) {
  server.store.put("nodes", kubeObjects.node({ name, ip, created, uid: `uid-${name}` }));
}

function podHolder(name: string, from: number, to: number | null): Holder {
  return {
    kind: "pod",
    namespace: "ci",
    name,
    workload: { kind: "Job", name },
    node: "ip-192-168-0-9",
    uid: `uid-${name}`,
    validFrom: from,
    validTo: to,
  };
}

describe("a node that takes over an address a pod on another node held", () => {
  it("answers the new node, not the gone pod, for lines after the node registered", async () => {
    // Karpenter consolidates ip-192-168-0-1: its pods and the instance go, and the freed address
    // 192.168.7.20 (a pod's, on that node's ENI) becomes the primary address of the instance it launches next.
    const ip = "192.168.7.20";
    addNode("ip-192-168-0-1", "192.168.0.1", T - 86_400_000);
    addPod("web-7f9c5d-x2x4q", ip, T, { node: "ip-192-168-0-1" });
    clock.t = T + 10 * MIN;
    const dir = container();
    expect(names(await dir.resolve([{ ip, at: T + 10 * MIN - S }]))).toEqual(["pod:web-7f9c5d-x2x4q"]);

    server.store.delete("pods", "web-7f9c5d-x2x4q", "shop");
    server.store.delete("nodes", "ip-192-168-0-1");
    addNode("ip-192-168-7-20", ip, T + 12 * MIN);
    // Kubelet on the new node probes its pods: lines from the node's own address, after it registered.
    clock.t = T + 16 * MIN;
    const answers = await dir.resolve([{ ip, at: T + 15 * MIN }]);
    // The pod ran on another node: it cannot be an EKS Fargate pod of this one (whose node exists only to run
    // it). Its recorded end is only the moment this directory saw it gone, an upper bound; the newer holder
    // has the address, as when a pod takes over a gone pod's address.
    expect(names(answers)).toEqual(["node:ip-192-168-7-20"]);
  });
});

describe("two warm containers sharing the history", () => {
  it("answers a late line with the pod the history knows held the address, not a stale pod of its memory", async () => {
    const history = await freshHistory();
    const ip = "192.168.40.7";
    // Container B attributes job-a's traffic, then gets no line about the address for a while.
    addPod("job-a", ip, T);
    clock.t = T + 10 * MIN;
    const b = container({ history });
    expect(names(await b.resolve([{ ip, at: T + 10 * MIN - S }]))).toEqual(["pod:job-a"]);

    // job-a goes; job-b gets the address and lives four minutes. Container A sees it, alive and then gone.
    server.store.delete("pods", "job-a", "shop");
    addPod("job-b", ip, T + 11 * MIN);
    clock.t = T + 12 * MIN;
    const a = container({ history });
    expect(names(await a.resolve([{ ip, at: T + 12 * MIN - S }]))).toEqual(["pod:job-b"]);
    server.store.delete("pods", "job-b", "shop");
    clock.t = T + 15 * MIN;
    // Its last lines: this look finds it gone and ends it, in memory and in the history.
    expect(names(await a.resolve([{ ip, at: T + 15 * MIN - 30 * S }]))).toEqual(["pod:job-b"]);
    const remembered = await history.holdersOf(CLUSTER, ip, T + 13 * MIN);
    expect(remembered.map((h) => [h.name, h.validTo])).toEqual([
      ["job-b", T + 15 * MIN],
      ["job-a", null],
    ]);

    // A line of job-b's time reaches container B late (a slow delivery, a retry, a redrive). A cold container
    // answers it from the history; container B has job-a in memory, open since it last looked, and now ends
    // it at this look: an upper bound only, which must not hide the holder the history knows covered the line.
    clock.t = T + 16 * MIN;
    const late = { ip, at: T + 13 * MIN };
    expect(names(await container({ history }).resolve([late]))).toEqual(["pod:job-b"]);
    expect(names(await b.resolve([late]))).toEqual(["pod:job-b"]);
  });
});

describe("a container recycled before its pod ended", () => {
  it("does not answer a remembered pod for lines after it has seen the address free", async () => {
    const history = await freshHistory();
    const ip = "192.168.41.9";
    // Container A attributes api-0's traffic and remembers it, still alive; then Lambda reclaims container A.
    addPod("api-5d8f7-q7k2z", ip, T);
    clock.t = T + 10 * MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + 10 * MIN - S }]))).toEqual([
      "pod:api-5d8f7-q7k2z",
    ]);
    server.store.delete("pods", "api-5d8f7-q7k2z", "shop");

    // Clients with stale endpoints keep sending to the address, denied. Container B asks the API at T+20 min:
    // nobody holds it. (That line may still be api-0's: when it went is not known.)
    clock.t = T + 20 * MIN;
    const b = container({ history });
    await b.resolve([{ ip, at: T + 20 * MIN - S }]);
    // Ten minutes later, a line of T+29 min: nobody holds the address now, and nobody held it at T+20 min, so
    // api-0 (created at T, an address for life) had ended before T+20 min. Answering it is a guess against
    // what the directory saw: `unknown`.
    clock.t = T + 30 * MIN;
    expect(names(await b.resolve([{ ip, at: T + 29 * MIN }]))).toEqual(["absent"]);
  });
});

describe("a remembered pod whose address a newer pod took since", () => {
  it("does not answer the older pod for lines after the newer one let the address go", async () => {
    const history = await freshHistory();
    const ip = "192.168.41.12";
    // Container A attributes worker-a's traffic and remembers it, still alive; then Lambda reclaims container A.
    addPod("worker-a", ip, T);
    clock.t = T + 10 * MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + 10 * MIN - S }]))).toEqual([
      "pod:worker-a",
    ]);
    // worker-a goes; worker-b gets the address at T+11 min and goes at T+14 min. Container C sees worker-b
    // alive, then gone, and remembers both.
    server.store.delete("pods", "worker-a", "shop");
    addPod("worker-b", ip, T + 11 * MIN);
    clock.t = T + 12 * MIN;
    const c = container({ history });
    expect(names(await c.resolve([{ ip, at: T + 12 * MIN - S }]))).toEqual(["pod:worker-b"]);
    server.store.delete("pods", "worker-b", "shop");
    clock.t = T + 15 * MIN;
    expect(names(await c.resolve([{ ip, at: T + 15 * MIN - 30 * S }]))).toEqual(["pod:worker-b"]);

    // Denied lines to the address at T+20 min (clients with stale endpoints): nobody holds it. worker-a cannot:
    // its address went to worker-b at T+11 min (an address has one pod at a time, a pod keeps its address for
    // life). The history still has worker-a open, as nobody saw it end: that is no evidence it held the address.
    clock.t = T + 21 * MIN;
    const line = { ip, at: T + 20 * MIN };
    expect(names(await c.resolve([line]))).toEqual(["absent"]);
    expect(names(await container({ history }).resolve([line]))).toEqual(["absent"]);
  });
});

describe("an address reused by many short-lived pods, asked about across a long batch", () => {
  it("answers an early line from the history whatever later line came with it or before it", async () => {
    // A CI cluster: one address held by twelve Job pods in an hour, each for four minutes, all remembered.
    const history = await freshHistory();
    const ip = "192.168.42.3";
    const start = (i: number) => T + i * 5 * MIN;
    await history.remember(
      CLUSTER,
      Array.from({ length: 12 }, (_, i) => ({
        ip,
        holder: podHolder(`build-${i}`, start(i), start(i) + 4 * MIN),
      })),
    );
    clock.t = T + 2 * 60 * MIN;
    const early = { ip, at: start(0) + 2 * MIN };
    const late = { ip, at: start(11) + 2 * MIN };
    // Asked alone, the early line resolves: the history knows its pod.
    expect(names(await container({ history }).resolve([early]))).toEqual(["pod:build-0"]);
    // In one batch with a line of the hour's end (a replay batch, a backfill page)…
    expect(names(await container({ history }).resolve([early, late]))).toEqual([
      "pod:build-0",
      "pod:build-11",
    ]);
    // …or after one (a backfill's next log stream, in the same minute of wall time).
    const dir = container({ history });
    expect(names(await dir.resolve([late]))).toEqual(["pod:build-11"]);
    expect(names(await dir.resolve([early]))).toEqual(["pod:build-0"]);
  });
});

describe("a node whose InternalIP changed", () => {
  it("does not take the node to have held its new address before the directory saw it with another", async () => {
    // On-premises or DHCP-addressed nodes: node-m goes, and node-n's lease brings it node-m's address.
    const x = "192.168.0.30";
    const y = "192.168.0.31";
    addNode("node-m", y, T - 2 * 86_400_000);
    addNode("node-n", x, T - 86_400_000);
    clock.t = T + 10 * MIN;
    const dir = container();
    // The node list of T+10 min: node-m holds y, node-n holds x.
    expect(names(await dir.resolve([{ ip: y, at: T + 10 * MIN - S }]))).toEqual(["node:node-m"]);

    server.store.delete("nodes", "node-m");
    addNode("node-n", y, T - 86_400_000);
    clock.t = T + 16 * MIN;
    // A payload with a current line from y (node-n's now) and a late one of T+9.5 min: node-m's, as the list of
    // T+10 min showed (node-n had x then).
    const answers = await dir.resolve([
      { ip: y, at: T + 16 * MIN - S },
      { ip: y, at: T + 9 * MIN + 30 * S },
    ]);
    expect(names(answers)).toEqual(["node:node-n", "node:node-m"]);
    // And so it stays through later node lists.
    clock.t = T + 30 * MIN;
    expect(names(await dir.resolve([{ ip: y, at: T + 9 * MIN + 30 * S }]))).toEqual(["node:node-m"]);
    expect(names(await dir.resolve([{ ip: y, at: T + 29 * MIN }]))).toEqual(["node:node-n"]);
  });
});
