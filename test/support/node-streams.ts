// A small cluster whose denials arrive as its nodes' log streams, for the tests of the alert rules across
// deliveries: ten nodes, coredns, thirty DNS clients (three per node, each its own workload in its own namespace),
// eight services on the first eight nodes, and a probe pod; subscription deliveries of one node's lines.
import type { CloudWatchLogsEvent } from "aws-lambda";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { DynamoMemoStore } from "../../functions/adapters/dynamo/memos.ts";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import type { IngestDeps } from "../../functions/core/ingest.ts";
import { createScanner } from "../../functions/core/parse.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { AlertRecord } from "../../functions/core/types.ts";
import type { IngestRuntime } from "../../functions/ingest/handler.ts";
import type { TestStore } from "./dynalite.ts";
import type { FaultProxy } from "./fault-proxy.ts";

export const T0 = Date.parse("2026-04-19T04:50:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
export const NODES = Array.from({ length: 10 }, (_, n) => ({
  name: `ip-192-168-1-${n}`,
  ip: `192.168.1.${n}`,
}));
type Node = (typeof NODES)[number];
export const nodeName = (n: number): string => (NODES[n] as Node).name;
export const COREDNS = "192.168.0.10";
/** DNS client i: workload svc<i> in namespace team-<i>, on node i % 10. */
export const clientIp = (i: number) => `192.168.50.${i + 1}`;
/** Service i: workload api<i> in namespace shop-<i>, on node i. */
export const targetIp = (i: number) => `192.168.60.${i + 1}`;
/** The probe: workload probe in namespace tools, on node 9. */
export const SCANNER = "192.168.70.7";

const pod = (name: string, namespace: string, workload: string, ip: string, node: Node) => ({
  metadata: {
    name,
    namespace,
    uid: `uid-${name}`,
    creationTimestamp: iso(T0 - 3_600_000),
    labels: { "pod-template-hash": "5d4f8b7c9" },
    ownerReferences: [{ kind: "ReplicaSet", name: `${workload}-5d4f8b7c9`, controller: true }],
  },
  spec: { nodeName: node.name },
  status: { phase: "Running", podIP: ip, podIPs: [{ ip }], hostIP: node.ip },
});

export const directory = new SnapshotDirectory({
  pods: {
    items: [
      pod("coredns-5d4f8b7c9-aaaaa", "kube-system", "coredns", COREDNS, NODES[0] as Node),
      ...Array.from({ length: 30 }, (_, i) =>
        pod(`svc${i}-5d4f8b7c9-x`, `team-${i}`, `svc${i}`, clientIp(i), NODES[i % 10] as Node),
      ),
      ...Array.from({ length: 8 }, (_, i) =>
        pod(`api${i}-5d4f8b7c9-x`, `shop-${i}`, `api${i}`, targetIp(i), NODES[i] as Node),
      ),
      pod("probe-5d4f8b7c9-x", "tools", "probe", SCANNER, NODES[9] as Node),
    ],
  },
  nodes: {
    items: NODES.map((n) => ({
      metadata: { name: n.name, uid: `uid-${n.name}`, creationTimestamp: iso(T0 - 86_400_000) },
      status: { addresses: [{ type: "InternalIP", address: n.ip }] },
    })),
  },
});

/** An egress denial (logged on the source's node) or an ingress one (on the destination's), as the kernel logs it. */
export function deniedLine(node: string, src: string, dst: string, dport: number, egress: boolean): string {
  const ifaces = egress ? "IN=eni1a2b3c4d5e6 OUT=eth0" : "IN=eth0 OUT=eni8d48114818c";
  return (
    `Apr 19 04:52:19 ${node} kernel: calico-packet: ${ifaces} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 ` +
    `SRC=${src} DST=${dst} LEN=72 TOS=0x00 PREC=0x00 TTL=63 ID=52641 DF PROTO=UDP SPT=40000 DPT=${dport} LEN=52`
  );
}

let eventId = 52_000_000;
/** A subscription delivery of `node`'s log stream. */
export function delivery(node: string, messages: { at: number; message: string }[]): CloudWatchLogsEvent {
  return {
    awslogs: {
      data: encodeSubscriptionData({
        messageType: "DATA_MESSAGE",
        owner: "123456789012",
        logGroup: "/aws/eks/prod/nodes",
        logStream: node,
        subscriptionFilters: ["calico-packet"],
        logEvents: messages.map((m) => ({ id: String(eventId++), timestamp: m.at, message: m.message })) as [
          { id: string; timestamp: number; message: string },
        ],
      }),
    },
  };
}

/** Node n's delivery of a DNS outage by an egress deny: its three clients' denials to coredns, at `at`. */
export function dnsDelivery(n: number, at: number): CloudWatchLogsEvent {
  const node = nodeName(n);
  return delivery(
    node,
    [n, n + 10, n + 20].map((i) => ({
      at: at + i,
      message: deniedLine(node, clientIp(i), COREDNS, 53, true),
    })),
  );
}

/** Service i's node's delivery of the probe's ingress denial on it (port 8000 + i), at `at`. */
export function probeDelivery(i: number, at: number): CloudWatchLogsEvent {
  const node = nodeName(i);
  return delivery(node, [{ at, message: deniedLine(node, SCANNER, targetIp(i), 8000 + i, false) }]);
}

/**
 * The ingest function's runtime for this cluster, with a scan threshold of five and 15-minute alert windows: `deps`
 * names the stores (and the tally, the sink, the memos) it runs with.
 */
export function clusterRuntime(
  deps: Pick<IngestDeps, "store"> & Partial<Pick<IngestDeps, "tally" | "sink" | "memos">>,
  coverage?: IngestRuntime["coverage"],
): IngestRuntime {
  return {
    directory,
    ...(coverage === undefined ? {} : { coverage }),
    deps: {
      ...deps,
      alertWindowMs: 15 * 60_000,
      alertCap: 50,
      pipeline: {
        cluster: "prod",
        internal: new CidrSet(["192.168.0.0/16"]),
        bucketSeconds: 60,
        scanner: createScanner(),
        directory,
        scanThreshold: 5,
      },
    },
  };
}

/**
 * The cluster's runtime on a fresh table of `ts`, without scan detection: the flow store behind `proxy` (one request
 * per try, three quick tries), coverage and memos straight to dynalite. `pendingRedeliveryAfterMs` as the flow store's.
 */
export async function runtimeBehindProxy(
  ts: TestStore,
  proxy: FaultProxy,
  options: { sink?: AlertPublisher; pendingRedeliveryAfterMs?: number } = {},
): Promise<IngestRuntime> {
  const tableName = await ts.freshTable();
  const store = new DynamoFlowStore({
    client: ts.clientFor(proxy.endpoint, { maxAttempts: 1 }),
    tableName,
    retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    ...(options.pendingRedeliveryAfterMs === undefined
      ? {}
      : { pendingRedeliveryAfterMs: options.pendingRedeliveryAfterMs }),
  });
  const client = ts.clientFor();
  const runtime = clusterRuntime(
    {
      store,
      memos: new DynamoMemoStore({ client, tableName }),
      ...(options.sink === undefined ? {} : { sink: options.sink }),
    },
    new DynamoCoverageStore({ client, tableName }),
  );
  runtime.deps.pipeline.scanThreshold = undefined;
  return runtime;
}

/** Every alert of the cluster within an hour of T0. */
export async function clusterAlerts(runtime: IngestRuntime): Promise<AlertRecord[]> {
  const page = await runtime.deps.store.queryAlerts({
    cluster: "prod",
    since: iso(T0 - 3_600_000),
    until: iso(T0 + 3_600_000),
    limit: 1000,
  });
  return page.items;
}

/** A sink whose publishes fail while `state.down` is set (as SNS unavailable), and that keeps what it published. */
export function switchableSink(down: boolean): {
  state: { down: boolean; published: AlertRecord[] };
  sink: AlertPublisher;
} {
  const state = { down, published: [] as AlertRecord[] };
  const sink: AlertPublisher = {
    publishAlert: async (a) => {
      if (state.down) throw new Error("SNS unavailable");
      state.published.push(a);
    },
    publishSummary: async () => {},
    publishPanic: async () => {},
  };
  return { state, sink };
}
