// Review of the attribution rules of commits 14412da (a pod's hold ends where a newer holder's begins; looks that
// did not see a remembered pod end it) and a1b361b (each live-directory call answers within a budget). Each test is
// one defect, through the live directory and the local Kubernetes API server, with the holder history port kept
// in memory as DynamoDB implements it (every holder created at or before the time asked, newest first).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LiveDirectory, LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";
import {
  addReplicaSetPod,
  liveDirectoryOn,
  MemoryHistory,
  holderNames as names,
} from "../../support/live-directory.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const S = 1_000;
const MIN = 60_000;
const DAY = 86_400_000;
const CLUSTER = "prod";

let server: KubeApiServer;
let clock: { t: number };

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => server.close());
beforeEach(() => {
  server.store.clear();
  server.store.put("namespaces", kubeObjects.namespace({ name: "shop" }));
  server.store.put("namespaces", kubeObjects.namespace({ name: "kube-system" }));
  server.counts.reset();
  clock = { t: T };
});
afterEach(async () => server.setFault(null));

/** One warm Lambda container's directory (each has its own memory; they share the history). */
function container(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, { cluster: CLUSTER, timeoutMs: 2_000, now: () => clock.t, ...options });
}

const addPod = (
  name: string,
  ip: string | null,
  created: number,
  extra: Parameters<typeof addReplicaSetPod>[4] = {},
) => addReplicaSetPod(server, name, ip, created, extra);

describe("#seenSince: a look made after a pod's creation but before it had the address", () => {
  it("does not end a pod the history knows at a look made while it was still Pending", async () => {
    const history = new MemoryHistory();
    const ip = "192.168.44.5";
    const pod = "etl-7c9f6d-x9k2p";
    // The pod is created at T and is unschedulable (Pending, no address) while Karpenter launches a node for it.
    addPod(pod, null, T, { node: undefined });
    // Clients with stale endpoints send to the address (a gone pod's). Container A looks at T+30 s: nobody.
    clock.t = T + 30 * S;
    const a = container({ history });
    expect(names(await a.resolve([{ ip, at: T + 29 * S }]))).toEqual(["absent"]);

    // The pod is scheduled and gets the address at T+90 s; container B attributes its traffic and remembers it,
    // then is recycled before it sees it end. The pod ends at T+6 min.
    addPod(pod, ip, T, { node: "ip-192-168-3-3" });
    clock.t = T + 3 * MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + 3 * MIN - S }]))).toEqual([
      `pod:${pod}`,
    ]);
    server.store.delete("pods", pod, "shop");

    // A late line of T+3 min (a slow delivery, a retry, a backfill) reaches container A at T+20 min. A cold
    // container answers the pod from the history; container A's look at T+30 s did not see it only because it had
    // no address yet (a creationTimestamp is when the object was made, seconds to minutes before the pod is given
    // an address, and it is cut to the second), so that look is no evidence the pod had let the address go.
    clock.t = T + 20 * MIN;
    const late = { ip, at: T + 3 * MIN };
    expect(names(await container({ history }).resolve([late]))).toEqual([`pod:${pod}`]);
    expect(names(await a.resolve([late]))).toEqual([`pod:${pod}`]);
  });
});

describe("#seenSince after memory forgot the holders a full list saw", () => {
  it("does not end a remembered pod at a full list that saw it, once the pod was pruned from memory", async () => {
    const history = new MemoryHistory();
    const ip = "192.168.45.7";
    addPod("api-5d8f7-q7k2z", ip, T);
    const others = Array.from({ length: 5 }, (_, i) => `192.168.45.${20 + i}`);
    others.forEach((other, i) => {
      addPod(`web-6b7c8-${i}abcd`, other, T);
    });
    // A payload with six unknown addresses: one full pod list at T+10 min, which sees api-0.
    clock.t = T + 10 * MIN;
    const dir = container({ history });
    const first = await dir.resolve([ip, ...others].map((x) => ({ ip: x, at: T + 10 * MIN - S })));
    expect(names(first)[0]).toBe("pod:api-5d8f7-q7k2z");
    expect(dir.stats().fullLists).toBe(1);

    // api-0 goes; a field-selector look at T+20 min sees it gone and ends it, in memory and in the history.
    server.store.delete("pods", "api-5d8f7-q7k2z", "shop");
    clock.t = T + 20 * MIN;
    expect(names(await dir.resolve([{ ip, at: T + 20 * MIN - 5 * S }]))).toEqual(["pod:api-5d8f7-q7k2z"]);
    expect(history.holders(ip).map((h) => [h.name, h.validTo])).toEqual([["api-5d8f7-q7k2z", T + 20 * MIN]]);

    // Two hours on, memory has pruned api-0 (ended over retainEndedMs ago). A backfilled line of T+15 min: api-0
    // held the address then (the list of T+10 min saw it, the look of T+20 min saw it gone). The container's last
    // full list is still the one of T+10 min, which did see api-0: its absence from memory now says nothing.
    clock.t = T + 3 * 60 * MIN;
    const late = { ip, at: T + 15 * MIN };
    expect(names(await container({ history }).resolve([late]))).toEqual(["pod:api-5d8f7-q7k2z"]);
    expect(names(await dir.resolve([late]))).toEqual(["pod:api-5d8f7-q7k2z"]);
  });
});

describe("#seenSince when another container saw the pod first", () => {
  it("answers a late line with the pod an old full list saw, after memory forgot it", async () => {
    // The history's seenAt is another container's earlier look, before this container's full list: only the rule
    // that a list older than what memory keeps proves nothing keeps the pod from being ended at it.
    const history = new MemoryHistory();
    const ip = "192.168.45.7";
    addPod("api-5d8f7-q7k2z", ip, T);
    const others = Array.from({ length: 6 }, (_, i) => `192.168.45.${20 + i}`);
    others.forEach((other, i) => {
      addPod(`web-6b7c8-${i}abcd`, other, T);
    });
    // Container B answers the pod at T+1 min (history: open, seenAt T+1 min), then is recycled.
    clock.t = T + MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + MIN - S }]))).toEqual([
      "pod:api-5d8f7-q7k2z",
    ]);
    // Container A: a payload of six other addresses at T+10 min, one full list, which sees the pod.
    clock.t = T + 10 * MIN;
    const a = container({ history });
    await a.resolve(others.map((other) => ({ ip: other, at: T + 10 * MIN - S })));
    expect(a.stats().fullLists).toBe(1);
    // The pod goes; at T+40 min A looks at the address for a line just after: nothing holds it.
    server.store.delete("pods", "api-5d8f7-q7k2z", "shop");
    clock.t = T + 40 * MIN;
    expect(names(await a.resolve([{ ip, at: T + 40 * MIN + 15 * S }]))).toEqual(["absent"]);
    // Three hours on, a backfilled line of T+20 min, when the pod held the address: A answers as a cold container.
    clock.t = T + 3 * 60 * MIN;
    const late = { ip, at: T + 20 * MIN };
    expect(names(await container({ history }).resolve([late]))).toEqual(["pod:api-5d8f7-q7k2z"]);
    expect(names(await a.resolve([late]))).toEqual(["pod:api-5d8f7-q7k2z"]);
  });
});

describe("a node's address that went on to a pod", () => {
  it("does not answer a gone node's hostNetwork holder, open in the history, after the pod that took its address ended", async () => {
    const history = new MemoryHistory();
    const ip = "192.168.46.9";
    const node = "ip-192-168-46-9.eu-west-1.compute.internal";
    server.store.put("nodes", kubeObjects.node({ name: node, ip, created: T - DAY, uid: "uid-node" }));
    // aws-node (hostNetwork) on it: its address is the node's.
    server.store.put(
      "pods",
      kubeObjects.pod({
        name: "aws-node-7xk2p",
        namespace: "kube-system",
        ip,
        created: T - DAY + MIN,
        node,
        hostNetwork: true,
        owner: { kind: "DaemonSet", name: "aws-node" },
        uid: "uid-aws-node-7xk2p",
      }),
    );
    // Container A attributes kubelet's probes from the node and remembers the node holder, still alive; then
    // Lambda reclaims container A.
    clock.t = T + MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + MIN - S }]))).toEqual([`node:${node}`]);

    // Karpenter consolidates the node: the instance, its pods and the Node object go, and the freed address
    // becomes a pod's on another node at T+10 min. Container B sees that pod alive, then gone at T+15 min.
    server.store.delete("pods", "aws-node-7xk2p", "kube-system");
    server.store.delete("nodes", node);
    addPod("web-7f9c5d-x2x4q", ip, T + 10 * MIN, { node: "ip-192-168-0-1" });
    clock.t = T + 11 * MIN;
    const b = container({ history });
    expect(names(await b.resolve([{ ip, at: T + 11 * MIN - S }]))).toEqual(["pod:web-7f9c5d-x2x4q"]);
    server.store.delete("pods", "web-7f9c5d-x2x4q", "shop");
    clock.t = T + 15 * MIN;
    expect(names(await b.resolve([{ ip, at: T + 15 * MIN - 30 * S }]))).toEqual(["pod:web-7f9c5d-x2x4q"]);

    // A denied line to the address at T+20 min (a client with a stale endpoint): nobody holds it. The node went
    // before the pod got its address (B's node list does not show it, B's looks found no hostNetwork pod there,
    // and an address is one holder's at a time): answering the node is the guess the rules are there to avoid.
    clock.t = T + 21 * MIN;
    const line = { ip, at: T + 20 * MIN };
    expect(names(await b.resolve([line]))).toEqual(["absent"]);
  });
});

describe("a pod that got its address after a newer pod let it go", () => {
  // web is acknowledged by its kubelet (status.startTime) at T but waits, Pending, for a VPC CNI address until T+2 h
  // 5 min, when it gets the one a CronJob's pod (T+1 h to T+1 h 1 min) let go; Kubernetes keeps that Succeeded pod,
  // with its status.podIP, until the CronJob's history limit removes it.
  const ip = "192.168.48.21";
  const H = 60 * MIN;
  const line = T + 2 * H + 30 * MIN;
  const addReport = () =>
    server.store.put(
      "pods",
      kubeObjects.pod({
        name: "report-29080080-abcde",
        namespace: "batch",
        ip,
        created: T + H,
        node: "ip-192-168-0-2",
        owner: { kind: "Job", name: "report-29080080" },
        uid: "uid-report",
        phase: "Succeeded",
        finished: T + H + MIN,
      }),
    );

  it("answers the pod that holds the address, not nobody, while the finished pod is kept", async () => {
    server.store.put("namespaces", kubeObjects.namespace({ name: "batch" }));
    addPod("web-7f9c5d-x2x4q", ip, T);
    addReport();
    const history = new MemoryHistory();
    clock.t = line + MIN;
    const dir = container({ history });
    expect(names(await dir.resolve([{ ip, at: line }]))).toEqual(["pod:web-7f9c5d-x2x4q"]);
    expect(names(await dir.resolve([{ ip, at: T + H + 30 * S }]))).toEqual(["pod:report-29080080-abcde"]);
    const [span] = await dir.resolveSpans([{ ip, at: line, until: line + MIN }]);
    expect(span?.status === "found" && span.holder.name).toBe("web-7f9c5d-x2x4q");
    // A container that knows web only from the history (it saw it after the finished pod's end) answers alike.
    server.store.delete("pods", "web-7f9c5d-x2x4q", "shop");
    clock.t = line + 2 * MIN;
    expect(names(await container({ history }).resolve([{ ip, at: line }]))).toEqual(["pod:web-7f9c5d-x2x4q"]);
  });

  it("still ends a pod it saw before a newer pod took the address, seen ended only after that one", async () => {
    server.store.put("namespaces", kubeObjects.namespace({ name: "batch" }));
    addPod("web-7f9c5d-x2x4q", ip, T);
    clock.t = T + 10 * MIN;
    const dir = container({ history: new MemoryHistory() });
    expect(names(await dir.resolve([{ ip, at: T + 10 * MIN - S }]))).toEqual(["pod:web-7f9c5d-x2x4q"]);
    // web goes; the CronJob's pod has the address from T+1 h to T+1 h 1 min. The directory's next look, at T+1 h
    // 5 min, shows the finished pod and not web: web's end there is only when it was seen gone.
    server.store.delete("pods", "web-7f9c5d-x2x4q", "shop");
    addReport();
    clock.t = T + H + 5 * MIN;
    expect(names(await dir.resolve([{ ip, at: T + H + 4 * MIN }]))).toEqual(["absent"]);
  });

  it("answers the pod a look saw holding the address after that look, when the same look saw the newer pod gone", async () => {
    // web is acknowledged at T and waits, Pending, for an address; old (T+1 min) has it, is deleted, and web gets
    // it: the directory's next look (T+5 min) shows web holding it and old gone, one instant for both.
    const moved = "192.168.48.30";
    addPod("web-7f9c5d-x2x4q", null, T);
    addPod("old-5d8f7-q7k2z", moved, T + MIN);
    clock.t = T + 2 * MIN;
    const dir = container({ history: new MemoryHistory() });
    expect(names(await dir.resolve([{ ip: moved, at: T + 2 * MIN - S }]))).toEqual(["pod:old-5d8f7-q7k2z"]);
    server.store.delete("pods", "old-5d8f7-q7k2z", "shop");
    addPod("web-7f9c5d-x2x4q", moved, T);
    clock.t = T + 5 * MIN;
    await dir.resolve([{ ip: moved, at: T + 5 * MIN - S }]);
    clock.t = T + 5 * MIN + 20 * S;
    expect(names(await dir.resolve([{ ip: moved, at: T + 5 * MIN + 15 * S }]))).toEqual([
      "pod:web-7f9c5d-x2x4q",
    ]);
  });

  it("does not take a holder that the history has open since before dbaec2d for one that held it since", async () => {
    // An item without seenAt: a look showed it hold the address from its validFrom (see #seenSince).
    const history = new MemoryHistory();
    await history.remember(CLUSTER, [
      {
        ip,
        holder: {
          kind: "pod",
          namespace: "shop",
          name: "api-5d8f7-q7k2z",
          workload: { kind: "ReplicaSet", name: "api-5d8f7" },
          node: "ip-192-168-0-1",
          uid: "uid-api",
          validFrom: T,
          validTo: null,
        },
      },
      {
        ip,
        holder: {
          kind: "pod",
          namespace: "shop",
          name: "worker-6c7d8-k2m4n",
          workload: { kind: "ReplicaSet", name: "worker-6c7d8" },
          node: "ip-192-168-0-1",
          uid: "uid-worker",
          validFrom: T + 11 * MIN,
          validTo: T + 15 * MIN,
          seenAt: T + 12 * MIN,
        },
      },
    ]);
    clock.t = T + 21 * MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + 20 * MIN }]))).toEqual(["absent"]);
  });
});

describe("a node's address that went on to another node", () => {
  it("does not answer a gone node's hostNetwork holder, open in the history, after the node that took its address went", async () => {
    const history = new MemoryHistory();
    const ip = "192.168.46.9";
    const addNode = (node: string, created: number, pod: string) => {
      server.store.put("nodes", kubeObjects.node({ name: node, ip, created, uid: `uid-${node}` }));
      server.store.put(
        "pods",
        kubeObjects.pod({
          name: pod,
          namespace: "kube-system",
          ip,
          created: created + MIN,
          node,
          hostNetwork: true,
          owner: { kind: "DaemonSet", name: "aws-node" },
          uid: `uid-${pod}`,
        }),
      );
    };
    const n1 = "ip-192-168-46-9.old";
    const n2 = "ip-192-168-46-9.new";
    addNode(n1, T - DAY, "aws-node-7xk2p");
    // Container A attributes kubelet's probes from n1 and remembers its hostNetwork holder, alive; then it is
    // reclaimed.
    clock.t = T + MIN;
    expect(names(await container({ history }).resolve([{ ip, at: T + MIN - S }]))).toEqual([`node:${n1}`]);
    // Karpenter consolidates n1 and launches n2 at T+10 min with the same address; n2 goes at T+15 min.
    server.store.delete("pods", "aws-node-7xk2p", "kube-system");
    server.store.delete("nodes", n1);
    addNode(n2, T + 10 * MIN, "aws-node-9p4qs");
    clock.t = T + 12 * MIN;
    const b = container({ history });
    expect(names(await b.resolve([{ ip, at: T + 12 * MIN - S }]))).toEqual([`node:${n2}`]);
    server.store.delete("pods", "aws-node-9p4qs", "kube-system");
    server.store.delete("nodes", n2);
    clock.t = T + 21 * MIN;
    expect(names(await b.resolve([{ ip, at: T + 20 * MIN }]))).toEqual([`node:${n2}`]);

    // A line of T+30 min: nobody has held the address since n2's node list of T+21 min ended it. n1 went before n2
    // got it: the history has it open only because no container saw it end.
    clock.t = T + 31 * MIN;
    const line = { ip, at: T + 30 * MIN };
    expect(names(await b.resolve([line]))).toEqual(["absent"]);
    expect(names(await container({ history }).resolve([line]))).toEqual(["absent"]);
  });
});

describe("the budget of concurrent calls (backfill streams share one directory)", () => {
  it("answers each call its own work fits in the budget, not unavailable for waiting on the others", async () => {
    const ips = Array.from({ length: 4 }, (_, i) => `192.168.47.${i + 1}`);
    ips.forEach((ip, i) => {
      addPod(`worker-5c6d7-${i}xyz`, ip, T);
    });
    // A warm directory (its node list made), on an API server that answers each request in 400 ms: one
    // stream's call (one field-selector look) takes 400 ms of a 1 s budget. (In production: a 20 s budget, and
    // `calico-flows backfill --concurrency 4` streams whose calls take some seconds each: history reads for old
    // lines, a full list of a large cluster.)
    clock.t = T + MIN;
    const dir = container({ resolveBudgetMs: 1_000, timeoutMs: 3_000 });
    expect(names(await dir.resolve([{ ip: "192.168.47.99", at: T + MIN - S }]))).toEqual(["absent"]);
    await server.setFault({ kind: "delay", ms: 400 });
    // Four backfill streams ask at once, as `backfill`'s workers do.
    const answers = await Promise.all(ips.map((ip) => dir.resolve([{ ip, at: T + MIN - S }])));
    await server.setFault(null);
    // Let the calls answered `unavailable` finish their work before the next test clears the server.
    await dir.resolve([]);
    expect(answers.map((a) => names(a)[0])).toEqual(ips.map((_, i) => `pod:worker-5c6d7-${i}xyz`));
  });
});
