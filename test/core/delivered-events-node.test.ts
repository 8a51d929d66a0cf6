// A line that names no host is reported by its delivery's log stream (the node's). The events a run ingests are
// often a selection of the delivery's (coverage.ts ingests the events it claimed, `select`): the selection must keep
// that node, or such lines are stored as reported by "unknown".
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import { DeliveredEvents } from "../../functions/core/delivered-events.ts";
import { decodeDelivery, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { calicoLine, ingestDeps, payloadOf, T0 } from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const STREAM = "ip-192-168-74-5.ec2.internal";

/** The kernel's message alone, as a shipper that keeps no syslog header sends it: no host of its own. */
function hostless(src: string, dst: string, dstPort: number): string {
  return (
    "calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 " +
    `SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=1 DF PROTO=TCP SPT=59070 DPT=${dstPort} ` +
    "WINDOW=62727 RES=0x00 SYN URGP=0"
  );
}

const EVENTS = [
  {
    id: "1",
    timestamp: T0 + 1_000,
    stream: STREAM,
    message: hostless("192.168.22.247", "192.168.94.122", 5432),
  },
  { id: "2", timestamp: T0 + 2_000, stream: STREAM, message: hostless("192.168.30.4", "192.168.61.8", 6379) },
  {
    id: "3",
    timestamp: T0 + 3_000,
    stream: STREAM,
    message: calicoLine(T0 + 3_000, "ip-192-168-9-9", "192.168.30.4", "192.168.94.122", 8080),
  },
];

describe("DeliveredEvents#select", () => {
  it("keeps the delivery's node, for a decoded delivery and for events given as objects", () => {
    const payload = payloadOf(STREAM, EVENTS);
    const decoded = decodeDelivery(encodeSubscriptionData(payload)).events;
    expect(decoded.node).toBe(STREAM);
    const picked = decoded.select([2, 0]);
    expect(picked.node).toBe(STREAM);
    expect(picked.toArray()).toEqual([payload.logEvents[2], payload.logEvents[0]]);
    expect(DeliveredEvents.fromArray(picked.toArray(), "node-b").select([1]).node).toBe("node-b");
    expect(decoded.withNode("node-c").select([0, 1]).node).toBe("node-c");
  });
});

describe("a delivery ingested through its coverage claims", () => {
  let ts: TestStore;
  beforeAll(async () => {
    ts = await startTestStore();
  });
  afterAll(async () => {
    await ts?.close();
  });

  it("stores the lines without a host as reported by the log stream, the others by their host", async () => {
    const flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
    const coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
    const { logGroup, logStream, events } = decodeDelivery(encodeSubscriptionData(payloadOf(STREAM, EVENTS)));
    // As the ingest function hands a delivery over (functions/ingest/handler.ts).
    const result = await ingestDelivery(
      { logGroup, logStream, logEvents: events },
      ingestDeps(flows, "node-of-stream"),
      coverage,
      "live",
    );
    expect(result.eventsAlreadyCounted).toBe(0);
    const stored: FlowRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await flows.queryFlows({
        cluster: "node-of-stream",
        since: new Date(T0).toISOString(),
        until: new Date(T0 + 59_999).toISOString(),
        cursor,
      });
      stored.push(...page.items);
      cursor = page.cursor;
    } while (cursor !== undefined);
    const reporters = stored.map((f) => `${f.src.ip} ${f.dst.ip}:${f.dstPort} ${f.reporter}`).sort();
    expect(reporters).toEqual([
      `192.168.22.247 192.168.94.122:5432 ${STREAM}`,
      `192.168.30.4 192.168.61.8:6379 ${STREAM}`,
      "192.168.30.4 192.168.94.122:8080 ip-192-168-9-9",
    ]);
  });
});
