// Attribution in time (DESIGN.md §4) from `kubectl get -o json` snapshots: cases found in review.
import { describe, expect, it } from "vitest";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import { hostNetworkNodeHolders, normalizeIp } from "../../functions/core/holders.ts";
import type { Resolution } from "../../functions/core/types.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const list = (items: unknown[]) => ({ apiVersion: "v1", kind: "List", metadata: {}, items });

const show = (r: Resolution) => (r.status === "found" ? `${r.holder.kind}:${r.holder.name}` : r.status);

function pod(p: {
  name: string;
  namespace?: string;
  hostNetwork?: boolean;
  node?: string;
  status: Record<string, unknown>;
}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: p.name,
      namespace: p.namespace ?? "shop",
      uid: `uid-${p.name}`,
      creationTimestamp: iso(T),
    },
    spec: { nodeName: p.node ?? "node-a", ...(p.hostNetwork === true ? { hostNetwork: true } : {}) },
    status: p.status,
  };
}

describe("hostNetwork pods on dual-stack nodes", () => {
  // A hostNetwork pod's `status.podIPs` are its node's addresses, one per family; `status.podIP` is only the
  // first. Without a nodes file (or a role that may list nodes) these pods are what names the node's IPs.
  const awsNode = pod({
    name: "aws-node-x",
    namespace: "kube-system",
    hostNetwork: true,
    status: {
      phase: "Running",
      podIP: "192.168.74.5",
      podIPs: [{ ip: "192.168.74.5" }, { ip: "2600:1f18:4a2:7e00::5" }],
    },
  });
  // A client object (or an older apiserver's) can carry podIPs alone.
  const kubeProxy = pod({
    name: "kube-proxy-y",
    namespace: "kube-system",
    hostNetwork: true,
    node: "node-b",
    status: { phase: "Running", podIPs: [{ ip: "192.168.74.6" }] },
  });

  it("resolves every address of a hostNetwork pod to its node, not only status.podIP", async () => {
    const snapshot = new SnapshotDirectory({ pods: list([awsNode, kubeProxy]) });
    const answers = await snapshot.resolve(
      ["192.168.74.5", "2600:1f18:4a2:7e00::5", "192.168.74.6"].map((ip) => ({ ip, at: T + 60_000 })),
    );
    expect(answers.map(show)).toEqual(["node:node-a", "node:node-a", "node:node-b"]);
    expect(hostNetworkNodeHolders(awsNode).map((h) => h.ip)).toEqual([
      "192.168.74.5",
      "2600:1f18:4a2:7e00::5",
    ]);
  });
});

describe("IPv6 addresses written in another form in the snapshot than in the log", () => {
  // The parser prints every IPv6 address in RFC 5952 form (the kernel logs 8 groups of 4 digits); Kubernetes
  // stores an address as whoever wrote it spelled it (validation accepts any form node:net accepts too).
  const pods = list([
    pod({
      name: "web-0",
      status: {
        phase: "Running",
        podIP: "FD00:0000:0000:0000:0000:0000:0000:0007",
        podIPs: [{ ip: "FD00:0000:0000:0000:0000:0000:0000:0007" }],
      },
    }),
    pod({
      name: "web-1",
      status: { phase: "Running", podIPs: [{ ip: "192.168.9.1" }, { ip: "fd00:0:0:0::0a" }] },
    }),
    pod({ name: "legacy", status: { phase: "Running", podIP: "::ffff:c0a8:105" } }),
  ]);
  const nodes = list([
    {
      kind: "Node",
      metadata: { name: "node-a", uid: "n-a", creationTimestamp: iso(T - 3_600_000) },
      status: {
        addresses: [
          { type: "InternalIP", address: "192.168.74.5" },
          { type: "InternalIP", address: "2600:1f18:04a2:7e00:0000:0000:0000:0005" },
        ],
      },
    },
  ]);

  it("resolves them by the address, whatever its spelling", async () => {
    const snapshot = new SnapshotDirectory({ pods, nodes });
    const at = T + 60_000;
    const answers = await snapshot.resolve(
      [
        "fd00::7",
        "fd00:0000:0000:0000:0000:0000:0000:0007",
        "fd00::a",
        "192.168.1.5",
        "::ffff:192.168.1.5",
        "2600:1f18:4a2:7e00::5",
      ].map((ip) => ({ ip, at })),
    );
    expect(answers.map(show)).toEqual([
      "pod:web-0",
      "pod:web-0",
      "pod:web-1",
      "pod:legacy",
      "pod:legacy",
      "node:node-a",
    ]);
    // One key per address: web-0's podIP and podIPs entry are one address.
    expect(snapshot.summary.ips).toBe(6);
  });

  it("normalises an address to the one form the parser prints", () => {
    expect(normalizeIp("FD00:0:0:0:0:0:0:7")).toBe("fd00::7");
    expect(normalizeIp("2001:0db8::0001")).toBe("2001:db8::1");
    expect(normalizeIp("::FFFF:C0A8:0105")).toBe("192.168.1.5");
    expect(normalizeIp("0:0:0:0:0:ffff:192.168.1.5")).toBe("192.168.1.5");
    // Not addresses: left as they are (lower-cased), as before.
    expect(normalizeIp("::ffff:999.1.1.1")).toBe("::ffff:999.1.1.1");
    expect(normalizeIp("fe80::1%eth0")).toBe("fe80::1%eth0");
  });
});

describe("EKS Fargate: a pod and its node hold the same address", () => {
  // Each Fargate pod runs on a node of its own, registered after the pod was created, whose InternalIP is the
  // pod's IP. The traffic is the pod's: its workload is what an alert and a query need.
  const fargateNode = "fargate-ip-192-168-88-9.eu-west-1.compute.internal";
  const pods = list([
    {
      ...pod({
        name: "api-7f9c5d-x2x4q",
        node: fargateNode,
        status: { phase: "Running", podIP: "192.168.88.9", podIPs: [{ ip: "192.168.88.9" }] },
      }),
    },
  ]);
  const nodes = list([
    {
      kind: "Node",
      metadata: {
        name: fargateNode,
        uid: "n-fargate",
        creationTimestamp: iso(T + 40_000),
        labels: { "eks.amazonaws.com/compute-type": "fargate" },
      },
      status: { addresses: [{ type: "InternalIP", address: "192.168.88.9" }] },
    },
  ]);

  it("resolves the address to the pod, before and after its node registered", async () => {
    const snapshot = new SnapshotDirectory({ pods, nodes });
    const answers = await snapshot.resolve(
      [T + 20_000, T + 60_000, T + 3_600_000].map((at) => ({ ip: "192.168.88.9", at })),
    );
    expect(answers.map(show)).toEqual([
      "pod:api-7f9c5d-x2x4q",
      "pod:api-7f9c5d-x2x4q",
      "pod:api-7f9c5d-x2x4q",
    ]);
    const spans = await snapshot.resolveSpans([{ ip: "192.168.88.9", at: T + 20_000, until: T + 60_000 }]);
    expect(spans[0]?.status).toBe("varies");
  });
});
