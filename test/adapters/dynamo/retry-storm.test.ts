// The write-amplification figure of the issue: a retry storm of 10,000 lines that aggregate into 20 distinct
// flows in one minute costs one write per flow plus the alert bookkeeping (and, once per store and hour, the
// hour's marker), and its redelivery changes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import { FlowAggregator } from "../../../functions/core/aggregate.ts";
import { alertCandidates } from "../../../functions/core/alert-rules.ts";
import type { FlowRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, type LoggedRequest, startFaultProxy } from "../../support/fault-proxy.ts";
import { CLUSTER, pod } from "./fixtures.ts";

let ts: TestStore;
let proxy: FaultProxy;
let store: DynamoFlowStore;

const MINUTE = Date.parse("2024-04-19T04:52:00.000Z");
/** The stores' wall clock: a retry comes a minute after its payload failed. */
let clock = MINUTE;
const web = [1, 2, 3, 4].map((n) => pod(`192.168.1.${n}`, "shop", `web-${n}`, ["Deployment", "web"]));
const db = pod("192.168.2.10", "data", "db-0", ["StatefulSet", "db"]);
const PORTS = [5432, 5433, 5434, 5435, 5436];

/** 10,000 denied connection attempts: 4 web pods retrying 5 ports of the database, all within one minute. */
function storm(offsetMs: number): FlowRecord[] {
  const aggregator = new FlowAggregator(CLUSTER, 60);
  for (let i = 0; i < 10_000; i++) {
    aggregator.add({
      at: MINUTE + offsetMs + Math.floor(i * 2.5),
      src: web[i % 4] as (typeof web)[number],
      dst: db,
      protocol: "TCP",
      dstPort: PORTS[Math.floor(i / 4) % 5] as number,
      direction: "ingress",
      reporter: "node-b",
      internal: true,
      length: 60,
      policy: null,
      tcpFlags: ["SYN"],
    });
  }
  return aggregator.flows();
}

const keyOf = (r: LoggedRequest): string => {
  const body = r.body as { Key?: { pk?: { S?: string } }; Item?: { pk?: { S?: string } } };
  return body.Key?.pk?.S ?? body.Item?.pk?.S ?? "";
};
const writes = (prefix: string) =>
  proxy.log.filter(
    (r) => (r.operation === "UpdateItem" || r.operation === "PutItem") && keyOf(r).startsWith(prefix),
  );

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  store = new DynamoFlowStore({
    client: ts.clientFor(proxy.endpoint),
    tableName: ts.tableName,
    now: () => clock,
  });
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

describe("a retry storm", () => {
  it("costs one write per distinct flow plus two per alert opened, and nothing more when redelivered", async () => {
    const flows = storm(0);
    expect(flows).toHaveLength(20);
    const candidates = alertCandidates(flows, {});
    expect(candidates).toHaveLength(5);

    proxy.clearLog();
    // The first write of the hour also marks it (markers.ts): once per store and hour.
    expect(await store.writeFlows(flows, "storm-1")).toEqual({
      applied: 20,
      duplicates: 0,
      writeRequests: 21,
    });
    expect(writes("FLOWHOURS#").map((r) => r.operation)).toEqual(["PutItem"]);
    const opened = await store.applyAlerts(candidates, "storm-1", { windowMs: 900_000 });
    expect(opened.opened).toBe(5);
    expect(opened.alerts).toHaveLength(5);
    expect(opened.alerts.map((a) => a.count).sort()).toEqual([2000, 2000, 2000, 2000, 2000]);
    expect(writes("FLOW#")).toHaveLength(20);
    // Per alert: its state (PutItem) and its record (UpdateItem).
    expect(writes("ALERTKEY#").map((r) => r.operation)).toEqual(Array(5).fill("PutItem"));
    expect(writes("ALERTS#").map((r) => r.operation)).toEqual(Array(5).fill("UpdateItem"));
    // And their day's marker, once for the five.
    expect(writes("ALERTDAYS#").map((r) => r.operation)).toEqual(["PutItem"]);
    expect(proxy.count({ operation: "Scan" })).toBe(0);

    // The same payload again (Lambda's retry, a minute later): refused writes, nothing changed, the pending alerts
    // handed out again, each by taking its hand-out lease (the failed run's has run out).
    clock += 61_000;
    proxy.clearLog();
    expect(await store.writeFlows(flows, "storm-1")).toEqual({
      applied: 0,
      duplicates: 20,
      writeRequests: 20,
    });
    const again = await store.applyAlerts(candidates, "storm-1", { windowMs: 900_000 });
    // The same alerts, none of them opened again.
    expect(again).toEqual({ alerts: opened.alerts, opened: 0 });
    expect(writes("FLOW#")).toHaveLength(20);
    expect(writes("ALERTS#")).toHaveLength(5);
    expect(writes("ALERTKEY#").map((r) => r.operation)).toEqual(Array(5).fill("UpdateItem"));
    // The retry publishes them.
    for (const alert of again.alerts) await store.markAlertSent(alert);

    // The next payload of the storm, same minute: one write per flow, one fold per alert key.
    proxy.clearLog();
    const next = storm(25_000);
    expect(await store.writeFlows(next, "storm-2")).toEqual({
      applied: 20,
      duplicates: 0,
      writeRequests: 20,
    });
    expect(await store.applyAlerts(alertCandidates(next, {}), "storm-2", { windowMs: 900_000 })).toEqual({
      alerts: [],
      opened: 0,
    });
    expect(writes("FLOW#")).toHaveLength(20);
    expect(writes("ALERTS#")).toHaveLength(5);
    expect(writes("ALERTKEY#")).toHaveLength(0);

    const stored = await store.queryFlows({
      cluster: CLUSTER,
      since: new Date(MINUTE).toISOString(),
      until: new Date(MINUTE + 59_999).toISOString(),
    });
    expect(stored.items.reduce((s, f) => s + f.packets, 0)).toBe(20_000);
    const alerts = await store.queryAlerts({
      cluster: CLUSTER,
      since: new Date(MINUTE).toISOString(),
      until: new Date(MINUTE + 60_000).toISOString(),
    });
    expect(alerts.items.map((a) => a.count)).toEqual([4000, 4000, 4000, 4000, 4000]);
  });
});
