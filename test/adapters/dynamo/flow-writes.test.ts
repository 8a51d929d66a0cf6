// Flow writes against dynalite: exact round trips, idempotent redelivery, exact sums in any order, the
// first/last-seen span under out-of-order and concurrent arrivals, TTL, input validation, and who counted a
// minute's flows (countingOf).
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import { contributionToken, InvalidInputError } from "../../../functions/adapters/dynamo/keys.ts";
import type { FlowRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../../support/fault-proxy.ts";
import { at, CLUSTER, external, flow, idOf, pod, unresolved } from "./fixtures.ts";

let ts: TestStore;
let proxy: FaultProxy;
let store: DynamoFlowStore;
let raw: DynamoDBDocumentClient;

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  store = new DynamoFlowStore({ client: ts.clientFor(proxy.endpoint), tableName: ts.tableName });
  raw = DynamoDBDocumentClient.from(ts.clientFor());
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

/** Every flow of the cluster in [since, until], all pages. */
async function flowsIn(since: string, until: string): Promise<FlowRecord[]> {
  const out: FlowRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryFlows({ cluster: CLUSTER, since, until, cursor });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

/** The flow `id` of a minute's bucket (a range holds the flows with a packet in it: the whole minute). */
async function readFlow(bucket: string, id: string): Promise<FlowRecord | undefined> {
  return (await flowsIn(bucket, new Date(Date.parse(bucket) + 59_999).toISOString())).find(
    (f) => f.id === id,
  );
}

describe("writeFlows", () => {
  it("reads back exactly the records it stored", async () => {
    const bucket = "2024-04-19T04:52:00.000Z";
    const web = {
      ...pod("192.168.1.10", "shop", "web-7d9f-abcde", ["Deployment", "web"]),
      labels: { team: "shop" },
    };
    const records: FlowRecord[] = [
      flow(bucket, web, pod("192.168.2.20", "data", "db-0", ["StatefulSet", "db"]), {
        policy: { tier: "default", kind: "NetworkPolicy", name: "deny", namespace: "data" },
        tcpFlags: ["ACK", "SYN"],
      }),
      flow(bucket, external("203.0.113.7"), unresolved("192.168.9.9"), {
        protocol: "UDP",
        dstPort: 53,
        tcpFlags: [],
        direction: "forward",
      }),
      flow(bucket, pod("fd00::1", "shop", "web-2", null), external("2001:db8::42"), {
        protocol: "ICMPv6",
        dstPort: null,
        tcpFlags: [],
        direction: "egress",
        reporter: "node-b",
      }),
    ];
    const result = await store.writeFlows(records, "payload-roundtrip");
    // One write per flow, and the marker of their hour.
    expect(result).toEqual({ applied: 3, duplicates: 0, writeRequests: 4 });
    const stored = await flowsIn(bucket, bucket);
    const byId = (list: readonly FlowRecord[]) => [...list].sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(byId(stored)).toEqual(byId(records));
  });

  it("leaves every count unchanged when the same contribution is delivered again", async () => {
    const bucket = "2024-04-19T05:10:00.000Z";
    const records = [1, 2, 3, 4, 5].map((n) =>
      flow(bucket, pod(`192.168.3.${n}`, "a", `p${n}`), pod("192.168.4.1", "b", "q"), {
        packets: n,
        bytes: n * 60,
      }),
    );
    expect(await store.writeFlows(records, "payload-twice")).toEqual({
      applied: 5,
      duplicates: 0,
      writeRequests: 6,
    });
    const before = await flowsIn(bucket, bucket);
    // Redelivery: one refused conditional write per flow, nothing changed.
    expect(await store.writeFlows(records, "payload-twice")).toEqual({
      applied: 0,
      duplicates: 5,
      writeRequests: 5,
    });
    expect(await flowsIn(bucket, bucket)).toEqual(before);
    expect(before.map((f) => f.packets).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it("sums distinct contributions exactly whatever their order and redeliveries", async () => {
    const bucket = "2024-04-19T06:00:00.000Z";
    let run = 0;
    const contribution = fc.record({
      packets: fc.integer({ min: 1, max: 10_000 }),
      bytes: fc.integer({ min: 40, max: 1_000_000 }),
      start: fc.integer({ min: 0, max: 59_000 }),
      length: fc.integer({ min: 0, max: 59_000 }),
      flags: fc.subarray(["ACK", "FIN", "RST", "SYN"]),
      redeliver: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(contribution, { minLength: 1, maxLength: 8 }), async (contributions) => {
        run++;
        const src = pod(`192.168.5.${run % 250}`, "prop", `p-${run}`);
        const base = flow(bucket, src, pod("192.168.6.1", "prop", "sink"), { id: idOf(`prop-${run}`) });
        const parts = contributions.map((c) => {
          const first = at(bucket, c.start);
          const last = at(bucket, Math.min(59_999, c.start + c.length));
          return {
            ...base,
            packets: c.packets,
            bytes: c.bytes,
            firstSeen: first,
            lastSeen: last,
            tcpFlags: c.flags,
          };
        });
        for (const [i, part] of parts.entries()) {
          expect((await store.writeFlows([part], `prop-${run}-${i}`)).applied).toBe(1);
          if (contributions[i]?.redeliver) {
            expect((await store.writeFlows([part], `prop-${run}-${i}`)).duplicates).toBe(1);
          }
        }
        const stored = await readFlow(bucket, base.id);
        expect(stored?.packets).toBe(parts.reduce((s, p) => s + p.packets, 0));
        expect(stored?.bytes).toBe(parts.reduce((s, p) => s + p.bytes, 0));
        expect(stored?.firstSeen).toBe(parts.map((p) => p.firstSeen).sort()[0]);
        expect(stored?.lastSeen).toBe(
          parts
            .map((p) => p.lastSeen)
            .sort()
            .at(-1),
        );
        expect(stored?.tcpFlags).toEqual([...new Set(parts.flatMap((p) => p.tcpFlags))].sort());
      }),
      { numRuns: 25 },
    );
  });

  it("costs one write per in-order delivery and widens the span exactly on out-of-order ones", async () => {
    const bucket = "2024-04-19T07:00:00.000Z";
    const base = flow(bucket, pod("192.168.7.1", "o", "a"), pod("192.168.7.2", "o", "b"));
    const span = (from: number, to: number, n: number) =>
      store.writeFlows([{ ...base, firstSeen: at(bucket, from), lastSeen: at(bucket, to) }], `order-${n}`);
    // In order: each later than the last, one UpdateItem each (and the first marks the hour).
    expect((await span(10_000, 12_000, 1)).writeRequests).toBe(2);
    expect((await span(12_000, 20_000, 2)).writeRequests).toBe(1);
    expect((await span(20_000, 20_000, 3)).writeRequests).toBe(1);
    // Arrives late: earlier first hit (refused once, then written with the widened span).
    expect(await span(5_000, 11_000, 4)).toEqual({ applied: 1, duplicates: 0, writeRequests: 2 });
    // Inside the stored span: neither end moves, but its counts do.
    expect(await span(8_000, 9_000, 5)).toEqual({ applied: 1, duplicates: 0, writeRequests: 2 });
    const stored = await readFlow(bucket, base.id);
    expect(stored).toMatchObject({ packets: 5, firstSeen: at(bucket, 5_000), lastSeen: at(bucket, 20_000) });
  });

  it("sums concurrent contributions to one flow exactly", async () => {
    const bucket = "2024-04-19T08:00:00.000Z";
    const base = flow(bucket, pod("192.168.8.1", "c", "a"), pod("192.168.8.2", "c", "b"));
    const parts = Array.from({ length: 20 }, (_, i) => ({
      ...base,
      packets: i + 1,
      bytes: (i + 1) * 100,
      // Scrambled spans: every arrival order is someone's out-of-order.
      firstSeen: at(bucket, ((i * 7) % 20) * 1000),
      lastSeen: at(bucket, ((i * 7) % 20) * 1000 + ((i * 3) % 5) * 1000),
    }));
    const results = await Promise.all(parts.map((p, i) => store.writeFlows([p], `concurrent-${i}`)));
    expect(results.every((r) => r.applied === 1)).toBe(true);
    const stored = await readFlow(bucket, base.id);
    expect(stored?.packets).toBe(210);
    expect(stored?.bytes).toBe(21_000);
    expect(stored?.firstSeen).toBe(parts.map((p) => p.firstSeen).sort()[0]);
    expect(stored?.lastSeen).toBe(
      parts
        .map((p) => p.lastSeen)
        .sort()
        .at(-1),
    );
  });

  it("merges two records of one flow handed over in one call", async () => {
    const bucket = "2024-04-19T09:00:00.000Z";
    const base = flow(bucket, pod("192.168.9.1", "m", "a"), pod("192.168.9.2", "m", "b"), {
      packets: 2,
      bytes: 120,
    });
    const result = await store.writeFlows(
      [
        { ...base, tcpFlags: ["SYN"] },
        { ...base, lastSeen: at(bucket, 30_000), tcpFlags: ["RST"] },
      ],
      "merged",
    );
    expect(result).toEqual({ applied: 1, duplicates: 0, writeRequests: 2 });
    expect(await readFlow(bucket, base.id)).toMatchObject({
      packets: 4,
      bytes: 240,
      lastSeen: at(bucket, 30_000),
      tcpFlags: ["RST", "SYN"],
    });
  });

  it("sets the TTL attribute from the bucket and the retention", async () => {
    const bucket = "2024-04-19T10:00:00.000Z";
    const f = flow(bucket, pod("192.168.10.1", "t", "a"), pod("192.168.10.2", "t", "b"));
    // The stores' clock: a TTL is never written more than four years before it (keys.ts, expiresAt).
    const now = () => Date.parse(bucket) + 60_000;
    const weekly = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, retentionDays: 7, now });
    await weekly.writeFlows([f], "ttl");
    const item = await raw.send(
      new GetCommand({
        TableName: ts.tableName,
        Key: { pk: `FLOW#${CLUSTER}#2024-04-19T10`, sk: `${bucket}#${f.id}` },
      }),
    );
    expect(item.Item?.expiresAt).toBe(Date.parse(bucket) / 1000 + 7 * 86_400);
    const g = { ...f, id: idOf("ttl-default") };
    await new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, now }).writeFlows(
      [g],
      "ttl-default",
    );
    const def = await raw.send(
      new GetCommand({
        TableName: ts.tableName,
        Key: { pk: `FLOW#${CLUSTER}#2024-04-19T10`, sk: `${bucket}#${g.id}` },
      }),
    );
    expect(def.Item?.expiresAt).toBe(Date.parse(bucket) / 1000 + 30 * 86_400);
  });

  it("refuses what it could not store faithfully, before writing anything", async () => {
    const bucket = "2024-04-19T11:00:00.000Z";
    const good = flow(bucket, pod("192.168.11.1", "v", "a"), pod("192.168.11.2", "v", "b"));
    proxy.clearLog();
    await expect(
      store.writeFlows([good, { ...good, id: "x", bucket: "2024-04-19T11:00:00Z" }], "bad-bucket"),
    ).rejects.toThrow(InvalidInputError);
    await expect(store.writeFlows([{ ...good, cluster: "a#b" }], "bad-cluster")).rejects.toThrow(/cluster/);
    await expect(store.writeFlows([{ ...good, packets: -1 }], "bad-count")).rejects.toThrow(/packets/);
    await expect(store.writeFlows([good], "")).rejects.toThrow(/contribution/);
    expect(proxy.count()).toBe(0);
    expect(await store.writeFlows([], "nothing")).toEqual({ applied: 0, duplicates: 0, writeRequests: 0 });
  });
});

describe("countingOf", () => {
  it("reads every page of the minutes' flows, past the 1 MB one Query answers", async () => {
    const bucket = "2024-04-20T05:00:00.000Z";
    // Kubernetes' longest names (a namespace 63 characters, others 253): over 1 MB in 1,000 flows of one minute.
    const long = (i: number, what: string) => `${what}-${i}-`.padEnd(253, what[0]);
    const replayed = Array.from({ length: 1000 }, (_, i) =>
      flow(
        bucket,
        pod(`192.168.${20 + (i >> 8)}.${i & 255}`, long(i, "ns").slice(0, 63), long(i, "pod"), [
          "Deployment",
          long(i, "workload"),
        ]),
        pod("192.168.30.1", "db", "db-0"),
      ),
    );
    // Sorts after every other flow of the minute: on the last page.
    const live = flow(bucket, pod("192.168.30.2", "web", "web-0"), pod("192.168.30.1", "db", "db-0"), {
      id: "z".repeat(22),
    });
    await store.writeFlows(replayed, "replay-run");
    await store.writeFlows([live], "live-delivery");
    const onePage = await raw.send(
      new QueryCommand({
        TableName: ts.tableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": `FLOW#${CLUSTER}#2024-04-20T05` },
      }),
    );
    expect(onePage.LastEvaluatedKey).toBeDefined();

    const counted = await store.countingOf(CLUSTER, Date.parse(bucket), Date.parse(bucket) + 59_000);
    expect(counted).toHaveLength(1001);
    expect(counted.filter((c) => c.applied.includes(contributionToken("replay-run")))).toHaveLength(1000);
    expect(counted.filter((c) => !c.applied.includes(contributionToken("replay-run")))).toEqual([
      {
        applied: [contributionToken("live-delivery")],
        firstSeen: Date.parse(live.firstSeen),
        lastSeen: Date.parse(live.lastSeen),
      },
    ]);
  });
});
