// Fault injection: a proxy in front of dynalite throttles, fails, and applies-then-fails (answer lost) a share
// of requests. Whatever happens, final counts are exact: nothing lost, nothing counted twice, and every
// request is accounted for in writeRequests.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeClient } from "../../../functions/adapters/dynamo/client.ts";
import { DynamoCoverageStore } from "../../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import { DynamoHolderHistory } from "../../../functions/adapters/dynamo/history.ts";
import { StoreUnavailableError } from "../../../functions/adapters/dynamo/retry.ts";
import type { FlowRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../../support/fault-proxy.ts";
import { at, CLUSTER, candidate, flow, pod } from "./fixtures.ts";

let ts: TestStore;
let proxy: FaultProxy;
/** Through the proxy: what Lambda would see on a bad day. */
let faulty: DynamoFlowStore;
/** Straight to dynalite: the truth. */
let direct: DynamoFlowStore;

const FAST_RETRY = { attempts: 12, baseDelayMs: 1, maxDelayMs: 20 };

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  faulty = new DynamoFlowStore({
    client: ts.clientFor(proxy.endpoint, { maxAttempts: 2 }),
    tableName: ts.tableName,
    retry: FAST_RETRY,
    concurrency: 8,
  });
  direct = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

/** The last instant of a minute's bucket: a range holds the flows with a packet in it. */
const bucketEnd = (bucket: string): string => new Date(Date.parse(bucket) + 59_999).toISOString();

async function flowsIn(since: string, until: string): Promise<FlowRecord[]> {
  const out: FlowRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await direct.queryFlows({ cluster: CLUSTER, since, until, cursor, limit: 1000 });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

describe("under injected faults", () => {
  it("stores flows exactly, redeliveries included, and counts every request it made", async () => {
    const bucket = "2024-04-19T12:00:00.000Z";
    const flows = Array.from({ length: 40 }, (_, i) =>
      flow(bucket, pod(`192.168.20.${i}`, "f", `src-${i}`), pod(`192.168.21.${i % 5}`, "g", `dst-${i % 5}`)),
    );
    const contribution = (c: number) =>
      flows.map((f, i) => ({
        ...f,
        packets: c + i,
        bytes: (c + i) * 100,
        // Contributions arrive out of order for half the flows.
        firstSeen: at(bucket, (i % 2 ? 10 - c : c) * 1000),
        lastSeen: at(bucket, (i % 2 ? 10 - c : c) * 1000 + 500),
      }));
    proxy.setPlan({ throttle: 0.15, error: 0.1, lost: 0.15, seed: 42 });
    proxy.clearLog();
    let requests = 0;
    try {
      for (let c = 1; c <= 6; c++) {
        const result = await faulty.writeFlows(contribution(c), `faulty-${c}`);
        expect(result.applied).toBe(40);
        requests += result.writeRequests;
      }
      // At-least-once delivery: every payload again, two at a time.
      const again = await Promise.all(
        [1, 2, 3, 4, 5, 6].map((c) => faulty.writeFlows(contribution(c), `faulty-${c}`)),
      );
      for (const r of again) {
        expect(r.applied + r.duplicates).toBe(40);
        requests += r.writeRequests;
      }
    } finally {
      proxy.setPlan({});
    }
    expect(proxy.count({ outcome: "throttled" })).toBeGreaterThan(10);
    expect(proxy.count({ outcome: "error" })).toBeGreaterThan(10);
    expect(proxy.count({ outcome: "lost" })).toBeGreaterThan(10);
    // Flow writes, and the one marker of their hour (markers.ts).
    expect(requests).toBe(proxy.count({ operation: "UpdateItem" }) + proxy.count({ operation: "PutItem" }));
    const puts = proxy.log.filter((r) => r.operation === "PutItem");
    expect(new Set(puts.map((r) => JSON.stringify((r.body.Item as { pk: unknown }).pk)))).toEqual(
      new Set([JSON.stringify({ S: `FLOWHOURS#${CLUSTER}` })]),
    );

    const stored = new Map((await flowsIn(bucket, bucketEnd(bucket))).map((f) => [f.id, f]));
    for (const [i, f] of flows.entries()) {
      const parts = [1, 2, 3, 4, 5, 6].map((c) => contribution(c)[i] as FlowRecord);
      expect(stored.get(f.id)).toMatchObject({
        packets: parts.reduce((s, p) => s + p.packets, 0),
        bytes: parts.reduce((s, p) => s + p.bytes, 0),
        firstSeen: parts.map((p) => p.firstSeen).sort()[0],
        lastSeen: parts
          .map((p) => p.lastSeen)
          .sort()
          .at(-1),
      });
    }
  });

  it("counts a write whose answer was lost once, as applied", async () => {
    const bucket = "2024-04-19T13:00:00.000Z";
    const f = flow(bucket, pod("192.168.30.1", "l", "a"), pod("192.168.30.2", "l", "b"), { packets: 7 });
    let first = true;
    proxy.setPlan({
      lost: 1,
      eligible: (op) => {
        const hit = op === "UpdateItem" && first;
        if (hit) first = false;
        return hit;
      },
    });
    try {
      // Applied, answered 500; the SDK's retry is refused by the condition; a read shows the write was ours.
      // The third request is the marker of the flow's hour.
      expect(await faulty.writeFlows([f], "lost-once")).toEqual({
        applied: 1,
        duplicates: 0,
        writeRequests: 3,
      });
    } finally {
      proxy.setPlan({});
    }
    expect((await flowsIn(bucket, bucketEnd(bucket)))[0]?.packets).toBe(7);
  });

  it("reports a redelivery whose first request was throttled as a duplicate, through the stores' client", async () => {
    const bucket = "2024-04-19T13:30:00.000Z";
    const f = flow(bucket, pod("192.168.31.1", "t", "a"), pod("192.168.31.2", "t", "b"), { packets: 3 });
    // As the ingest function builds it: one HTTP request per SDK call, retries left to the store.
    const client = storeClient({
      endpoint: proxy.endpoint,
      region: "local",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    expect(await client.config.maxAttempts()).toBe(1);
    const store = new DynamoFlowStore({ client, tableName: ts.tableName, retry: FAST_RETRY });
    try {
      expect(await store.writeFlows([f], "throttled-redelivery")).toMatchObject({
        applied: 1,
        duplicates: 0,
      });
      let first = true;
      proxy.setPlan({
        throttle: 1,
        eligible: (op) => {
          const hit = op === "UpdateItem" && first;
          if (hit) first = false;
          return hit;
        },
      });
      // Refused, retried, refused by the condition (the token is in), read: a redelivery, nothing applied.
      expect(await store.writeFlows([f], "throttled-redelivery")).toEqual({
        applied: 0,
        duplicates: 1,
        writeRequests: 2,
      });
      expect(proxy.count({ outcome: "throttled" })).toBeGreaterThan(0);
    } finally {
      proxy.setPlan({});
      client.destroy();
    }
    expect((await flowsIn(bucket, bucketEnd(bucket)))[0]?.packets).toBe(3);
  });

  it("claims coverage through throttling, as the flow store writes through it", async () => {
    const coverage = new DynamoCoverageStore({
      client: ts.clientFor(proxy.endpoint, { maxAttempts: 1 }),
      tableName: ts.tableName,
      retry: FAST_RETRY,
    });
    const truth = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
    const ref = { cluster: CLUSTER, group: "/eks/faults", stream: "node-a" };
    const minute = Date.parse("2024-04-19T14:00:00.000Z");
    const claim = (contribution: string) => ({
      contribution,
      source: "live" as const,
      events: [`${contribution}-event`],
      recorded: true,
      count: 1,
      span: 1,
      stored: false,
      claimedAt: "2024-04-19T14:01:00.000Z",
    });
    proxy.setPlan({ throttle: 0.5, seed: 5 });
    try {
      expect(await coverage.addClaim(ref, minute, 0, claim("c1"))).toBe(true);
      expect(await coverage.addClaim(ref, minute, 1, claim("c2"))).toBe(true);
      // A stale version is refused at once, not retried.
      expect(await coverage.addClaim(ref, minute, 1, claim("c3"))).toBe(false);
      await coverage.markStored(ref, minute, "c1");
      const [read] = await coverage.read(ref, minute, minute);
      expect(read?.claims.map((c) => [c.contribution, c.stored])).toEqual([
        ["c1", true],
        ["c2", false],
      ]);
      expect(proxy.count({ outcome: "throttled" })).toBeGreaterThan(0);
    } finally {
      proxy.setPlan({});
    }
    expect((await truth.read(ref, minute, minute))[0]?.version).toBe(2);
  });

  it("fails the payload when the budget runs out, and the retried payload completes it exactly", async () => {
    const bucket = "2024-04-19T14:00:00.000Z";
    const flows = Array.from({ length: 10 }, (_, i) =>
      flow(bucket, pod(`192.168.31.${i}`, "b", `a-${i}`), pod("192.168.32.1", "b", "z"), { packets: i + 1 }),
    );
    // Half the writes get through before the table is throttled for good.
    let allowed = 5;
    proxy.setPlan({
      throttle: 1,
      eligible: (op) => op === "UpdateItem" && allowed-- <= 0,
    });
    try {
      await expect(faulty.writeFlows(flows, "budget")).rejects.toThrow(StoreUnavailableError);
    } finally {
      proxy.setPlan({});
    }
    expect((await flowsIn(bucket, bucketEnd(bucket))).length).toBeGreaterThan(0);
    const retried = await faulty.writeFlows(flows, "budget");
    expect(retried.applied + retried.duplicates).toBe(10);
    const stored = await flowsIn(bucket, bucketEnd(bucket));
    expect(stored.map((f) => f.packets).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("opens one alert per window and counts every hit once", async () => {
    const t = "2024-04-19T15:00:00.000Z";
    const keys = Array.from(
      { length: 6 },
      (_, k) =>
        [
          pod(`192.168.40.${k}`, `s${k}`, "c", ["Deployment", "c"]),
          pod(`192.168.41.${k}`, `d${k}`, "s", ["Deployment", "s"]),
        ] as const,
    );
    const payload = (p: number) =>
      keys.map(([src, dst], k) => candidate(src, dst, at(t, p * 60_000 + k), p + k));
    proxy.setPlan({ throttle: 0.15, error: 0.1, lost: 0.2, seed: 7 });
    const delivered = new Set<string>();
    let opened = 0;
    try {
      for (let p = 0; p < 8; p++) {
        const result = await faulty.applyAlerts(payload(p), `alert-payload-${p}`, { windowMs: 15 * 60_000 });
        for (const a of result.alerts) delivered.add(a.id);
        opened += result.opened;
      }
      const again = await Promise.all(
        [0, 3, 7].map((p) => faulty.applyAlerts(payload(p), `alert-payload-${p}`, { windowMs: 15 * 60_000 })),
      );
      expect(again.map((r) => r.opened)).toEqual([0, 0, 0]);
    } finally {
      proxy.setPlan({});
    }
    expect(proxy.count({ outcome: "lost" })).toBeGreaterThan(5);
    const alerts = (await direct.queryAlerts({ cluster: CLUSTER, since: t, until: at(t, 3_600_000) })).items;
    expect(alerts).toHaveLength(6);
    expect(delivered.size).toBe(6);
    // None reported opened twice, though answers to their writes were lost (a call that cannot tell whether a
    // write of its own, or an earlier call's, completed an opening does not count it).
    expect(opened).toBeGreaterThan(0);
    expect(opened).toBeLessThanOrEqual(6);
    for (const [k, alert] of alerts.entries()) {
      expect(alert.count).toBe([0, 1, 2, 3, 4, 5, 6, 7].reduce((s, p) => s + p + k, 0));
      expect(alert.openedAt).toBe(at(t, k));
    }
  });

  it("opens an alert once when the answer to its opening was lost", async () => {
    const [src, dst] = [
      pod("192.168.42.1", "x", "c", ["Deployment", "c"]),
      pod("192.168.42.2", "y", "s", ["Deployment", "s"]),
    ];
    const t = "2024-04-19T16:00:00.000Z";
    let first = true;
    proxy.setPlan({
      lost: 1,
      eligible: (op) => {
        const hit = op === "PutItem" && first;
        if (hit) first = false;
        return hit;
      },
    });
    try {
      const out = await faulty.applyAlerts([candidate(src, dst, t, 4)], "open-lost", { windowMs: 900_000 });
      expect(out.alerts).toHaveLength(1);
      expect(out.alerts[0]).toMatchObject({ count: 4, openedAt: t, delivery: "pending" });
      // Its own state write, refused when resent, did open it.
      expect(out.opened).toBe(1);
    } finally {
      proxy.setPlan({});
    }
    expect(first).toBe(false);
    const alerts = (await direct.queryAlerts({ cluster: CLUSTER, since: t, until: t })).items;
    expect(alerts.map((a) => a.count)).toEqual([4]);
  });

  it("remembers holders through faults", async () => {
    const history = new DynamoHolderHistory({
      client: ts.clientFor(proxy.endpoint, { maxAttempts: 1 }),
      tableName: ts.tableName,
      retry: FAST_RETRY,
    });
    const truth = new DynamoHolderHistory({ client: ts.client, tableName: ts.tableName });
    const entries = Array.from({ length: 30 }, (_, i) => ({
      ip: `192.168.50.${i}`,
      holder: {
        kind: "pod" as const,
        namespace: "h",
        name: `p-${i}`,
        workload: null,
        node: "node-a",
        uid: `uid-${i}`,
        validFrom: 1_000 * i,
        validTo: null,
      },
    }));
    proxy.setPlan({ throttle: 0.2, error: 0.2, lost: 0.2, seed: 3 });
    try {
      await history.remember(CLUSTER, entries);
    } finally {
      proxy.setPlan({});
    }
    for (const { ip, holder } of entries) {
      expect(await truth.holdersOf(CLUSTER, ip, holder.validFrom)).toEqual([holder]);
    }
  });
});
