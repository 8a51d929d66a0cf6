// The internal alert rules across deliveries: the ingest function on real subscription payloads, one node's log
// stream each, against dynalite, with the table's denial tallies. A DNS outage by an egress deny on ten nodes and a
// scan whose probes are logged on the destinations' nodes each reach the threshold only in the store.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { DynamoDenialTally } from "../../functions/adapters/dynamo/tallies.ts";
import type { AlertRecord } from "../../functions/core/types.ts";
import { type IngestRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import {
  COREDNS,
  clientIp,
  clusterAlerts,
  clusterRuntime,
  delivery,
  deniedLine,
  dnsDelivery,
  nodeName,
  probeDelivery,
  SCANNER,
  T0,
} from "../support/node-streams.ts";

let testStore: TestStore;
beforeAll(async () => {
  testStore = await startTestStore();
});
afterAll(async () => {
  await testStore.close();
});

async function freshRuntime(withTally: boolean): Promise<{ runtime: IngestRuntime; store: DynamoFlowStore }> {
  const tableName = await testStore.freshTable();
  const store = new DynamoFlowStore({ client: testStore.client, tableName });
  const tally = withTally ? new DynamoDenialTally({ client: testStore.client, tableName }) : undefined;
  return { store, runtime: clusterRuntime({ store, tally }) };
}

const alerts = (store: DynamoFlowStore) => clusterAlerts(clusterRuntime({ store }));
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

  it("the first payload redelivered after the fan-in opened is judged as it was: nothing counted twice", async () => {
    const { runtime, store } = await freshRuntime(true);
    const deliveries = Array.from({ length: 2 }, (_, n) => dnsDelivery(n, T0 + n * 1_000));
    for (const d of deliveries) await ingestEvent(d, runtime);
    const before = summary(await alerts(store));
    await ingestEvent(deliveries[0] as (typeof deliveries)[number], runtime);
    // The tallies, now over the threshold, would judge it a fan-in; its kept verdict says three denials, as its
    // first run judged, and those are applied already.
    expect(before).toEqual([
      "internal-denial team-0/Deployment/svc0 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-denial team-10/Deployment/svc10 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-denial team-20/Deployment/svc20 → kube-system/Deployment/coredns UDP/53 ×1",
      "internal-fan-in *many* → kube-system/Deployment/coredns UDP/53 ×3",
    ]);
    expect(summary(await alerts(store))).toEqual(before);
  });

  it("a scan logged on its targets' nodes (ingress denials): four denials, then one scan alert", async () => {
    const { runtime, store } = await freshRuntime(true);
    for (let i = 0; i < 8; i++) await ingestEvent(probeDelivery(i, T0 + i * 1_000), runtime);
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
    for (let i = 0; i < 8; i++) await ingestEvent(probeDelivery(i, T0 + i * 1_000), runtime);
    const node0 = nodeName(0);
    for (const i of [0, 1, 2, 3]) {
      await ingestEvent(
        delivery(node0, [
          { at: T0 + 9_000 + i, message: deniedLine(node0, clientIp(i), COREDNS, 53, false) },
        ]),
        runtime,
      );
    }
    await ingestEvent(
      delivery(node0, [{ at: T0 + 9_500, message: deniedLine(node0, SCANNER, COREDNS, 53, false) }]),
      runtime,
    );
    const reasons = summary(await alerts(store)).map((s) => s.split(" ")[0]);
    expect(reasons.filter((r) => r === "internal-fan-in")).toEqual([]);
    expect(reasons.filter((r) => r === "internal-scan")).toHaveLength(1);
  });
});
