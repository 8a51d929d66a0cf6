// The internal alert rules across deliveries: the ingest function on real subscription payloads, one node's log
// stream each, against dynalite, with the table's denial tallies. A DNS outage by an egress deny on ten nodes and a
// scan whose probes are logged on the destinations' nodes each reach the threshold only in the store.
import { randomUUID } from "node:crypto";
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { createTableInput } from "../../functions/adapters/dynamo/schema.ts";
import { DynamoDenialTally } from "../../functions/adapters/dynamo/tallies.ts";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { createScanner } from "../../functions/core/parse.ts";
import type { DenialTally } from "../../functions/core/ports.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { AlertRecord } from "../../functions/core/types.ts";
import { type IngestRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const T0 = Date.parse("2026-04-19T04:50:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const NODES = Array.from({ length: 10 }, (_, n) => ({ name: `ip-192-168-1-${n}`, ip: `192.168.1.${n}` }));
const COREDNS = "192.168.0.10";
const clientIp = (i: number) => `192.168.50.${i + 1}`;
const targetIp = (i: number) => `192.168.60.${i + 1}`;
const SCANNER = "192.168.70.7";

const pod = (
  name: string,
  namespace: string,
  workload: string,
  ip: string,
  node: (typeof NODES)[number],
) => ({
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

// Thirty DNS clients, three per node, each its own workload; eight services to scan; the scanner; coredns.
const directory = new SnapshotDirectory({
  pods: {
    items: [
      pod("coredns-5d4f8b7c9-aaaaa", "kube-system", "coredns", COREDNS, NODES[0] as (typeof NODES)[number]),
      ...Array.from({ length: 30 }, (_, i) =>
        pod(
          `svc${i}-5d4f8b7c9-x`,
          `team-${i}`,
          `svc${i}`,
          clientIp(i),
          NODES[i % 10] as (typeof NODES)[number],
        ),
      ),
      ...Array.from({ length: 8 }, (_, i) =>
        pod(`api${i}-5d4f8b7c9-x`, `shop-${i}`, `api${i}`, targetIp(i), NODES[i] as (typeof NODES)[number]),
      ),
      pod("probe-5d4f8b7c9-x", "tools", "probe", SCANNER, NODES[9] as (typeof NODES)[number]),
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
function line(node: string, src: string, dst: string, dport: number, egress: boolean): string {
  const ifaces = egress ? "IN=eni1a2b3c4d5e6 OUT=eth0" : "IN=eth0 OUT=eni8d48114818c";
  return (
    `Apr 19 04:52:19 ${node} kernel: calico-packet: ${ifaces} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 ` +
    `SRC=${src} DST=${dst} LEN=72 TOS=0x00 PREC=0x00 TTL=63 ID=52641 DF PROTO=UDP SPT=40000 DPT=${dport} LEN=52`
  );
}

let eventId = 52_000_000;
function delivery(node: string, messages: { at: number; message: string }[]) {
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

/** Node n's delivery of the DNS outage: its three clients' egress denials to coredns, at `at`. */
const dnsDelivery = (n: number, at: number) => {
  const node = (NODES[n] as (typeof NODES)[number]).name;
  return delivery(
    node,
    [n, n + 10, n + 20].map((i) => ({ at: at + i, message: line(node, clientIp(i), COREDNS, 53, true) })),
  );
};

let testStore: TestStore;
beforeAll(async () => {
  testStore = await startTestStore();
});
afterAll(async () => {
  await testStore.close();
});

async function freshRuntime(withTally: boolean): Promise<{ runtime: IngestRuntime; store: DynamoFlowStore }> {
  const tableName = `t-${randomUUID()}`;
  await testStore.client.send(new CreateTableCommand(createTableInput(tableName)));
  const store = new DynamoFlowStore({ client: testStore.client, tableName });
  const tally: DenialTally | undefined = withTally
    ? new DynamoDenialTally({ client: testStore.client, tableName })
    : undefined;
  return {
    store,
    runtime: {
      directory,
      deps: {
        store,
        tally,
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
    },
  };
}

async function alerts(store: DynamoFlowStore): Promise<AlertRecord[]> {
  const page = await store.queryAlerts({
    cluster: "prod",
    since: iso(T0 - 3_600_000),
    until: iso(T0 + 3_600_000),
    limit: 1000,
  });
  return page.items;
}
const summary = (all: AlertRecord[]) =>
  all
    .map(
      (a) => `${a.reason} ${a.key.src} → ${a.key.dst} ${a.key.protocol}/${a.key.dstPort ?? "*"} ×${a.count}`,
    )
    .sort();

describe("internal alert rules across deliveries", () => {
  it("a DNS outage by an egress deny on ten nodes: the first node's sources, then one fan-in for the other 27", async () => {
    const { runtime, store } = await freshRuntime(true);
    for (let n = 0; n < 10; n++) await ingestEvent(dnsDelivery(n, T0 + n * 1_000), runtime);
    const all = await alerts(store);
    // Node 0's delivery holds three sources, below the threshold: three alerts. Node 1's brings the tally to six:
    // one fan-in, into which every later node's denials fold.
    expect(summary(all)).toEqual([
      "internal-denial team-0/Deployment/svc0 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-denial team-10/Deployment/svc10 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-denial team-20/Deployment/svc20 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-fan-in *many* → kube-system/Deployment/coredns UDP/53 ×27",
    ]);
  });

  it("without the tally (one delivery at a time), the same outage is thirty alerts", async () => {
    const { runtime, store } = await freshRuntime(false);
    for (let n = 0; n < 10; n++) await ingestEvent(dnsDelivery(n, T0 + n * 1_000), runtime);
    const all = await alerts(store);
    expect(all).toHaveLength(30);
    expect(new Set(all.map((a) => a.reason))).toEqual(new Set(["internal-denial"]));
  });

  it("a redelivered payload counts nothing twice: its sources are in the tally, its hits in the fan-in once", async () => {
    const { runtime, store } = await freshRuntime(true);
    const deliveries = Array.from({ length: 4 }, (_, n) => dnsDelivery(n, T0 + n * 1_000));
    for (const d of deliveries) await ingestEvent(d, runtime);
    const before = summary(await alerts(store));
    expect(before).toContain("internal-fan-in *many* → kube-system/Deployment/coredns UDP/53 ×9");
    // Lambda retries and at-least-once subscriptions deliver the fan-in's payloads again.
    for (const d of deliveries.slice(1)) await ingestEvent(d, runtime);
    expect(summary(await alerts(store))).toEqual(before);
  });

  it("known limit: the first payload redelivered after the fan-in opened folds its hits into the fan-in as well", async () => {
    const { runtime, store } = await freshRuntime(true);
    const deliveries = Array.from({ length: 2 }, (_, n) => dnsDelivery(n, T0 + n * 1_000));
    for (const d of deliveries) await ingestEvent(d, runtime);
    await ingestEvent(deliveries[0] as (typeof deliveries)[number], runtime);
    // Its three alerts keep their hit, and the tally, now over the threshold, judges the redelivery a fan-in
    // (docs/architecture.md, "Known limits").
    expect(summary(await alerts(store))).toEqual([
      "internal-denial team-0/Deployment/svc0 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-denial team-10/Deployment/svc10 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-denial team-20/Deployment/svc20 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-fan-in *many* → kube-system/Deployment/coredns UDP/53 ×6",
    ]);
  });

  it("a scan logged on its targets' nodes (ingress denials): four denials, then one scan alert", async () => {
    const { runtime, store } = await freshRuntime(true);
    for (let i = 0; i < 8; i++) {
      const node = (NODES[i] as (typeof NODES)[number]).name;
      await ingestEvent(
        delivery(node, [{ at: T0 + i * 1_000, message: line(node, SCANNER, targetIp(i), 8000 + i, false) }]),
        runtime,
      );
    }
    expect(summary(await alerts(store))).toEqual([
      "internal-denial tools/Deployment/probe → shop-0/Deployment/api0 UDP/8000 ×1",
      "internal-denial tools/Deployment/probe → shop-1/Deployment/api1 UDP/8001 ×1",
      "internal-denial tools/Deployment/probe → shop-2/Deployment/api2 UDP/8002 ×1",
      "internal-denial tools/Deployment/probe → shop-3/Deployment/api3 UDP/8003 ×1",
      "internal-scan tools/Deployment/probe → *scan* */* ×4",
    ]);
  });

  it("a scanner's probes do not make its targets' fan-ins, across deliveries too", async () => {
    // Four clients and the scanner are denied on coredns:53, each in a delivery of its own: five sources. The
    // scanner's reach (eight targets and coredns) makes it a scanner, so coredns has four sources, below five.
    const { runtime, store } = await freshRuntime(true);
    for (let i = 0; i < 8; i++) {
      const node = (NODES[i] as (typeof NODES)[number]).name;
      await ingestEvent(
        delivery(node, [{ at: T0 + i * 1_000, message: line(node, SCANNER, targetIp(i), 8000 + i, false) }]),
        runtime,
      );
    }
    const node0 = (NODES[0] as (typeof NODES)[number]).name;
    for (const i of [0, 1, 2, 3]) {
      await ingestEvent(
        delivery(node0, [{ at: T0 + 9_000 + i, message: line(node0, clientIp(i), COREDNS, 53, false) }]),
        runtime,
      );
    }
    await ingestEvent(
      delivery(node0, [{ at: T0 + 9_500, message: line(node0, SCANNER, COREDNS, 53, false) }]),
      runtime,
    );
    const reasons = summary(await alerts(store)).map((s) => s.split(" ")[0]);
    expect(reasons.filter((r) => r === "internal-fan-in")).toEqual([]);
    expect(reasons.filter((r) => r === "internal-scan")).toHaveLength(1);
  });
});
