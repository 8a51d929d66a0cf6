// Alert windows against dynalite: open, fold, reopen with foldedBefore, redelivery, pending hand-out until
// marked sent, healing after a crash between the two writes of an opening, racing deliveries, and listing
// across day partitions with at most two Queries per page.
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEPT_WINDOWS, windowFor } from "../../../functions/adapters/dynamo/alerts.ts";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import {
  alertKeyDigest,
  alertRecordKey,
  contributionToken,
  foldShardOf,
  foldSlotSk,
} from "../../../functions/adapters/dynamo/keys.ts";
import { StoreUnavailableError } from "../../../functions/adapters/dynamo/retry.ts";
import type { AlertRecord, Endpoint } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../../support/fault-proxy.ts";
import { at, CLUSTER, candidate, pod } from "./fixtures.ts";

const WINDOW = { windowMs: 15 * 60_000 };
/** Nothing handed out for delivery, nothing opened. */
const NOTHING = { alerts: [], opened: 0 };
const MINUTE = 60_000;

let ts: TestStore;
let proxy: FaultProxy;
let clock = Date.parse("2024-05-01T00:00:00.000Z");
let store: DynamoFlowStore;
let raw: DynamoDBDocumentClient;

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  store = new DynamoFlowStore({
    client: ts.clientFor(proxy.endpoint, { maxAttempts: 1 }),
    tableName: ts.tableName,
    now: () => clock,
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
  });
  raw = DynamoDBDocumentClient.from(ts.clientFor());
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

/** Endpoints unique to a test, so that tests do not share alert keys. */
function pair(n: number) {
  return [
    pod(`192.168.${n}.1`, `src${n}`, `client-${n}`, ["Deployment", "client"]),
    pod(`192.168.${n}.2`, `dst${n}`, "db-0", ["StatefulSet", "db"]),
  ] as const;
}

/** `count` contribution names (`<prefix>-<k>`) whose folds land in one shard of a fold slot. */
function sameShard(prefix: string, count: number): string[] {
  const names: string[] = [];
  const shardOf = (name: string) => foldShardOf(contributionToken(name));
  for (let k = 0; names.length < count; k++) {
    const name = `${prefix}-${k}`;
    if (names.length === 0 || shardOf(name) === shardOf(names[0] as string)) names.push(name);
  }
  return names;
}

async function alertsIn(since: string, until: string, limit = 100): Promise<AlertRecord[]> {
  const out: AlertRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryAlerts({ cluster: CLUSTER, since, until, limit, cursor });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

describe("applyAlerts", () => {
  it("opens one alert per key and window, folds the rest in, and reopens with what was folded", async () => {
    const [src, dst] = pair(10);
    const t = "2024-04-19T04:52:19.000Z";
    const p1 = await store.applyAlerts([candidate(src, dst, t, 3)], "p1", WINDOW);
    expect(p1.opened).toBe(1);
    const opened = p1.alerts;
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({
      count: 3,
      foldedBefore: 0,
      openedAt: t,
      windowEnd: at(t, 15 * MINUTE),
      firstSeen: t,
      lastSeen: t,
      delivery: "pending",
      severity: "high",
      reason: "internal-denial",
      protocol: "TCP",
      dstPort: 5432,
      src,
      dst,
    });
    // Within the window: folded, not handed out again (its opener is sending it).
    expect(await store.applyAlerts([candidate(src, dst, at(t, 2 * MINUTE), 5)], "p2", WINDOW)).toEqual(
      NOTHING,
    );
    expect(await store.applyAlerts([candidate(src, dst, at(t, 2 * MINUTE), 5)], "p2", WINDOW)).toEqual(
      NOTHING,
    );
    expect(await store.applyAlerts([candidate(src, dst, at(t, 14 * MINUTE), 4)], "p3", WINDOW)).toEqual(
      NOTHING,
    );
    await store.markAlertSent(opened[0] as AlertRecord);
    let listed = await alertsIn(t, t);
    expect(listed).toEqual([{ ...opened[0], count: 12, lastSeen: at(t, 14 * MINUTE), delivery: "sent" }]);

    // At the window's end a new alert opens, carrying the hits folded into the previous one.
    const p4 = await store.applyAlerts([candidate(src, dst, at(t, 15 * MINUTE), 2)], "p4", WINDOW);
    expect(p4.opened).toBe(1);
    const reopened = p4.alerts;
    expect(reopened).toHaveLength(1);
    expect(reopened[0]).toMatchObject({
      count: 2,
      foldedBefore: 9,
      openedAt: at(t, 15 * MINUTE),
      delivery: "pending",
    });
    expect(reopened[0]?.id).not.toBe(opened[0]?.id);
    // A late hit of the previous window goes to it, not to the open one.
    expect(await store.applyAlerts([candidate(src, dst, at(t, 5 * MINUTE), 1)], "p5", WINDOW)).toEqual(
      NOTHING,
    );
    listed = await alertsIn(t, at(t, 15 * MINUTE));
    expect(listed.map((a) => a.count)).toEqual([13, 2]);
  });

  it("counts a late payload once when it is retried after a window opened (hits before the first window)", async () => {
    const [src, dst] = pair(16);
    const t = "2024-04-19T10:00:00.000Z";
    await store.applyAlerts([candidate(src, dst, t, 5)], "a1", WINDOW);
    const late = candidate(src, dst, at(t, -10 * MINUTE), 3);
    expect(await store.applyAlerts([late], "late", WINDOW)).toEqual(NOTHING);
    await store.applyAlerts([candidate(src, dst, at(t, 20 * MINUTE), 7)], "a2", WINDOW);
    // The late payload's store step failed after its alerts were applied: Lambda retries the whole payload.
    expect(await store.applyAlerts([late], "late", WINDOW)).toEqual(NOTHING);
    const listed = await alertsIn(at(t, -MINUTE), at(t, 20 * MINUTE));
    expect(listed.map((a) => [a.openedAt, a.count])).toEqual([
      [t, 8],
      [at(t, 20 * MINUTE), 7],
    ]);
  });

  it("counts a late payload once when it is retried after the window it folded into was left behind", async () => {
    const [src, dst] = pair(17);
    const t = "2024-04-19T11:00:00.000Z";
    await store.applyAlerts([candidate(src, dst, t, 5)], "b1", WINDOW);
    await store.applyAlerts([candidate(src, dst, at(t, 15 * MINUTE), 1)], "b2", WINDOW);
    const late = candidate(src, dst, at(t, 5 * MINUTE), 3);
    expect(await store.applyAlerts([late], "late", WINDOW)).toEqual(NOTHING);
    await store.applyAlerts([candidate(src, dst, at(t, 30 * MINUTE), 7)], "b3", WINDOW);
    expect(await store.applyAlerts([late], "late", WINDOW)).toEqual(NOTHING);
    const listed = await alertsIn(t, at(t, 30 * MINUTE));
    expect(listed.map((a) => a.count)).toEqual([8, 1, 7]);
    // A hit between two windows goes to the one after it (as hits before a window go to its first slot).
    expect(await store.applyAlerts([candidate(src, dst, at(t, 29 * MINUTE), 2)], "gap", WINDOW)).toEqual(
      NOTHING,
    );
    expect((await alertsIn(t, at(t, 30 * MINUTE))).map((a) => a.count)).toEqual([8, 3, 7]);
  });

  it(`keeps the last ${KEPT_WINDOWS} windows of a key, where late hits still land`, async () => {
    const [src, dst] = pair(18);
    const t = "2024-04-19T12:00:00.000Z";
    const opened = KEPT_WINDOWS + 3;
    for (let k = 0; k < opened; k++) {
      await store.applyAlerts([candidate(src, dst, at(t, k * 15 * MINUTE), 1)], `k${k}`, WINDOW);
    }
    const digest = alertKeyDigest(candidate(src, dst, t, 1).key);
    const state = await raw.send(
      new GetCommand({ TableName: ts.tableName, Key: { pk: `ALERTKEY#${CLUSTER}#${digest}`, sk: "STATE" } }),
    );
    const earlier = state.Item?.earlier as { openedAt: string }[];
    expect(earlier.map((w) => w.openedAt)).toEqual(
      Array.from({ length: KEPT_WINDOWS }, (_, k) => at(t, (opened - 2 - k) * 15 * MINUTE)),
    );
    // The oldest kept window takes a hit of its own time.
    const oldest = opened - 1 - KEPT_WINDOWS;
    await store.applyAlerts([candidate(src, dst, at(t, oldest * 15 * MINUTE + MINUTE), 4)], "old", WINDOW);
    const listed = await alertsIn(t, at(t, opened * 15 * MINUTE));
    expect(listed.map((a) => a.count)).toEqual(
      Array.from({ length: opened }, (_, k) => (k === oldest ? 5 : 1)),
    );
  });

  it("opens an alert for hits before a window stamped far ahead of the clock, which does not take them", async () => {
    const [src, dst] = pair(56);
    // A line stamped in year 9999 (the parser takes ISO stamps up to it) opened the key's window; the clock is
    // 2024-05-01, and the real hits come after it, earlier in event time.
    const ahead = "9999-01-01T00:00:00.000Z";
    const t = "2024-04-30T10:00:00.000Z";
    expect((await store.applyAlerts([candidate(src, dst, ahead, 1)], "ahead", WINDOW)).opened).toBe(1);

    const real = await store.applyAlerts([candidate(src, dst, t, 3)], "r1", WINDOW);
    expect(real.opened).toBe(1);
    expect(real.alerts).toMatchObject([{ openedAt: t, windowEnd: at(t, 15 * MINUTE), count: 3 }]);
    // Its window takes the hits it holds, and a late one before it (slot 0), as any open window does.
    expect(await store.applyAlerts([candidate(src, dst, at(t, 5 * MINUTE), 2)], "r2", WINDOW)).toEqual(
      NOTHING,
    );
    expect(await store.applyAlerts([candidate(src, dst, at(t, -30 * MINUTE), 4)], "r3", WINDOW)).toEqual(
      NOTHING,
    );
    // After its end the next opens, not the one ahead.
    const next = await store.applyAlerts([candidate(src, dst, at(t, 20 * MINUTE), 1)], "r4", WINDOW);
    expect(next.alerts).toMatchObject([{ openedAt: at(t, 20 * MINUTE), count: 1, foldedBefore: 9 }]);
    // The window ahead keeps its own hit, its retry landing there again, and takes another hit it holds.
    await store.applyAlerts([candidate(src, dst, ahead, 1)], "ahead", WINDOW);
    await store.applyAlerts([candidate(src, dst, at(ahead, MINUTE), 6)], "ahead-2", WINDOW);

    const listed = await alertsIn(at(t, -60 * MINUTE), at(t, 60 * MINUTE));
    expect(listed.map((a) => [a.openedAt, a.firstSeen, a.count])).toEqual([
      [t, at(t, -30 * MINUTE), 9],
      [at(t, 20 * MINUTE), at(t, 20 * MINUTE), 1],
    ]);
    expect((await alertsIn(ahead, at(ahead, MINUTE))).map((a) => [a.openedAt, a.count])).toEqual([
      [ahead, 7],
    ]);
  });

  it("hands a pending alert out again until it is marked sent", async () => {
    const [src, dst] = pair(11);
    const t = "2024-04-19T06:00:00.000Z";
    const { alerts: first, opened } = await store.applyAlerts([candidate(src, dst, t, 1)], "q1", WINDOW);
    expect(opened).toBe(1);
    // The publish failed and the payload is retried, by Lambda a minute later: the failed call's lease has run out,
    // and the same alert comes back, opened by the first call.
    clock += 61_000;
    expect(await store.applyAlerts([candidate(src, dst, t, 1)], "q1", WINDOW)).toEqual({
      alerts: first,
      opened: 0,
    });
    // Another delivery folds in: the retry has the lease...
    expect(await store.applyAlerts([candidate(src, dst, at(t, MINUTE), 2)], "q2", WINDOW)).toEqual(NOTHING);
    // ...but a minute later an alert still pending is handed out by whoever comes by, which did not open it.
    clock += 61_000;
    const late = await store.applyAlerts([candidate(src, dst, at(t, 2 * MINUTE), 3)], "q3", WINDOW);
    expect(late).toEqual({ alerts: [{ ...first[0], count: 6, lastSeen: at(t, 2 * MINUTE) }], opened: 0 });
    // Its own retry, once that lease has run out, hands it out again, still opening nothing.
    clock += 61_000;
    expect(await store.applyAlerts([candidate(src, dst, at(t, 2 * MINUTE), 3)], "q3", WINDOW)).toEqual(late);
    await store.markAlertSent(late.alerts[0] as AlertRecord);
    expect(await store.applyAlerts([candidate(src, dst, at(t, 3 * MINUTE), 1)], "q4", WINDOW)).toEqual(
      NOTHING,
    );
    expect(await store.applyAlerts([candidate(src, dst, t, 1)], "q1", WINDOW)).toEqual(NOTHING);
    expect((await alertsIn(t, t))[0]).toMatchObject({ count: 7, delivery: "sent" });
  });

  it("lists the alerts with a hit in a range: one opened before it and hit within it too", async () => {
    const [src, dst] = pair(24);
    const t = "2024-04-24T23:50:00.000Z";
    const { alerts } = await store.applyAlerts([candidate(src, dst, t, 1)], "r1", WINDOW);
    // Hit again 12 minutes later, past midnight: the alert's day partition is the day before.
    await store.applyAlerts([candidate(src, dst, at(t, 12 * MINUTE), 2)], "r2", WINDOW);
    const id = (alerts[0] as AlertRecord).id;
    const listed = async (since: string, until: string) => (await alertsIn(since, until, 1)).map((a) => a.id);
    expect(await listed(at(t, 5 * MINUTE), at(t, 20 * MINUTE))).toEqual([id]);
    expect(await listed(at(t, 12 * MINUTE), at(t, 12 * MINUTE))).toEqual([id]);
    // After its last hit, or before it opened: not in the range.
    expect(await listed(at(t, 13 * MINUTE), at(t, 20 * MINUTE))).toEqual([]);
    expect(await listed(at(t, -20 * MINUTE), at(t, -MINUTE))).toEqual([]);
  });

  it("marks an alert over a run's cap summarized: listed so, and handed out no more", async () => {
    const [src, dst] = pair(23);
    const t = "2024-04-23T06:00:00.000Z";
    const { alerts } = await store.applyAlerts([candidate(src, dst, t, 1)], "s1", WINDOW);
    expect(alerts).toHaveLength(1);
    await store.markAlertSent(alerts[0] as AlertRecord, "summarized");
    clock += 61_000;
    expect(await store.applyAlerts([candidate(src, dst, at(t, MINUTE), 2)], "s2", WINDOW)).toEqual(NOTHING);
    expect((await alertsIn(t, t))[0]).toMatchObject({ count: 3, delivery: "summarized" });
  });

  it("hands a pending alert to one of the deliveries that come by at once, then to none until its lease ends", async () => {
    const [src, dst] = pair(19);
    const t = "2024-04-19T13:00:00.000Z";
    const [first] = (await store.applyAlerts([candidate(src, dst, t, 1)], "o1", WINDOW)).alerts;
    // The opener's publish failed; a minute later ten deliveries fold in at once.
    clock += 61_000;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.applyAlerts([candidate(src, dst, at(t, (i + 1) * 1000), 1)], `f${i}`, WINDOW),
      ),
    );
    const handed = results.flatMap((r, i) => (r.alerts.length > 0 ? [i] : []));
    expect(handed).toHaveLength(1);
    expect(results[handed[0] as number]?.alerts[0]?.id).toBe(first?.id);
    expect(results.map((r) => r.opened)).toEqual(Array(10).fill(0));
    // The opener's own retry, within that lease, leaves it to the run that has it. So does that delivery's own
    // retry, which cannot be told from a duplicate of that delivery running at the same time: it says it left it to
    // another run of its own, which may be one that failed.
    expect(await store.applyAlerts([candidate(src, dst, t, 1)], "o1", WINDOW)).toEqual(NOTHING);
    const holder = `f${handed[0]}`;
    const again = await store.applyAlerts(
      [candidate(src, dst, at(t, ((handed[0] as number) + 1) * 1000), 1)],
      holder,
      WINDOW,
    );
    expect(again).toMatchObject({ ...NOTHING, held: [{ id: first?.id }] });
    // Once the lease has run out, the next delivery may take it.
    clock += 61_000;
    expect(
      (await store.applyAlerts([candidate(src, dst, at(t, 20_000), 1)], "late", WINDOW)).alerts,
    ).toHaveLength(1);
  });

  it("lets the opener's retry deliver an alert whose state predates the lease", async () => {
    const [src, dst] = pair(20);
    const t = "2024-04-19T14:00:00.000Z";
    const [opened] = (await store.applyAlerts([candidate(src, dst, t, 1)], "pre", WINDOW)).alerts;
    const digest = alertKeyDigest(candidate(src, dst, t, 1).key);
    await raw.send(
      new UpdateCommand({
        TableName: ts.tableName,
        Key: { pk: `ALERTKEY#${CLUSTER}#${digest}`, sk: "STATE" },
        UpdateExpression: "REMOVE leaseBy, leaseAt",
      }),
    );
    clock += 5_000;
    expect(await store.applyAlerts([candidate(src, dst, t, 1)], "pre", WINDOW)).toEqual({
      alerts: [opened],
      opened: 0,
    });
  });

  it("heals an opening whose alert record was not written, keeping hits folded meanwhile", async () => {
    const [src, dst] = pair(12);
    const t = "2024-04-19T07:00:00.000Z";
    // Every write of the alert record itself fails (its fold slots, with a `#nnn` suffix, do not).
    proxy.setPlan({
      error: 1,
      eligible: (op, body) => {
        const sk = (body.Key as { sk?: { S?: string } } | undefined)?.sk?.S ?? "";
        return op === "UpdateItem" && /^\d{4}-.*#[A-Za-z0-9_-]{22}$/.test(sk);
      },
    });
    try {
      await expect(store.applyAlerts([candidate(src, dst, t, 3)], "r1", WINDOW)).rejects.toThrow(
        StoreUnavailableError,
      );
      expect(await store.applyAlerts([candidate(src, dst, at(t, MINUTE), 4)], "r2", WINDOW)).toEqual(NOTHING);
      expect(await alertsIn(t, t)).toEqual([]);
      expect(proxy.count({ outcome: "error" })).toBeGreaterThan(0);
    } finally {
      proxy.setPlan({});
    }
    // The retry (Lambda's, a minute later: the failed call's hand-out lease has run out) writes the opening's record:
    // the failed call reported nothing, so this one reports it opened.
    clock += 61_000;
    const healed = await store.applyAlerts([candidate(src, dst, t, 3)], "r1", WINDOW);
    expect(healed.opened).toBe(1);
    expect(healed.alerts).toHaveLength(1);
    expect(healed.alerts[0]).toMatchObject({ count: 7, foldedBefore: 0, openedAt: t, delivery: "pending" });
    expect(await alertsIn(t, t)).toEqual(healed.alerts);
    expect((await store.applyAlerts([candidate(src, dst, t, 3)], "r1", WINDOW)).opened).toBe(0);
  });

  it("opens exactly one alert when deliveries race for a closed window", async () => {
    const [src, dst] = pair(13);
    const t = "2024-04-19T08:00:00.000Z";
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        store.applyAlerts([candidate(src, dst, at(t, i * 1000), i + 1)], `race-${i}`, WINDOW),
      ),
    );
    expect(results.flatMap((r) => r.alerts)).toHaveLength(1);
    // The one that opened it says so; the others folded in.
    expect(results.reduce((n, r) => n + r.opened, 0)).toBe(1);
    const listed = await alertsIn(t, at(t, 15 * MINUTE));
    expect(listed).toHaveLength(1);
    expect(listed[0]?.count).toBe(78);
    expect(listed[0]?.firstSeen).toBe(t);
    expect(listed[0]?.lastSeen).toBe(at(t, 11_000));
  });

  it("keeps a fold slot small however many deliveries fold into it, and counts each delivery once", async () => {
    const small = new DynamoFlowStore({
      client: ts.clientFor(),
      tableName: ts.tableName,
      now: () => clock,
      maxSlotTokens: 3,
    });
    const [src, dst] = pair(40);
    const t = "2024-04-19T13:00:00.000Z";
    await small.applyAlerts([candidate(src, dst, t, 1)], "open", WINDOW);
    // Ten deliveries fold into the same slot (the window's first minute), each twice, in two orders.
    // (All of them contributions whose folds land in one shard of the slot.)
    const folds = Array.from({ length: 10 }, (_, i) => candidate(src, dst, at(t, 1000 * (i + 1)), 2));
    const names = sameShard("fold", folds.length);
    for (const [i, c] of folds.entries())
      expect(await small.applyAlerts([c], names[i] as string, WINDOW)).toEqual(NOTHING);
    for (const [i, c] of [...folds.entries()].reverse())
      await small.applyAlerts([c], names[i] as string, WINDOW);
    const alert = (await alertsIn(t, t)).find((a) => a.src.ip === src.ip);
    expect(alert).toMatchObject({ count: 21, firstSeen: t, lastSeen: at(t, 10_000) });
    // The shard remembers three deliveries; the other seven were claimed on items of their own.
    const digest = alertKeyDigest(candidate(src, dst, t, 1).key);
    const shard = foldShardOf(contributionToken(names[0] as string));
    const slot = await raw.send(
      new GetCommand({
        TableName: ts.tableName,
        Key: { pk: `ALERTS#${CLUSTER}#2024-04-19`, sk: foldSlotSk(`${t}#${digest}`, 0, shard) },
      }),
    );
    expect((slot.Item?.applied as Set<string> | undefined)?.size).toBe(3);
    expect(slot.Item?.hits).toBe(20);
  });

  it("keeps a shard's last hit when a fold of an earlier hit lands in the shard after it", async () => {
    const [src, dst] = pair(57);
    const t = "2024-04-19T13:30:00.000Z";
    const { alerts } = await store.applyAlerts([candidate(src, dst, t, 1)], "open", WINDOW);
    // Two nodes' payloads of the window's first minute, folded into one shard out of order.
    const [later, earlier] = sameShard("out-of-order", 2) as [string, string];
    await store.applyAlerts([candidate(src, dst, at(t, 40_000), 2)], later, WINDOW);
    await store.applyAlerts([candidate(src, dst, at(t, 10_000), 3)], earlier, WINDOW);
    const digest = alertKeyDigest(candidate(src, dst, t, 1).key);
    const shard = await raw.send(
      new GetCommand({
        TableName: ts.tableName,
        Key: {
          pk: `ALERTS#${CLUSTER}#2024-04-19`,
          sk: foldSlotSk(`${t}#${digest}`, 0, foldShardOf(contributionToken(later))),
        },
      }),
    );
    expect(shard.Item).toMatchObject({ hits: 5, firstSeen: at(t, 10_000), lastSeen: at(t, 40_000) });
    const id = (alerts[0] as AlertRecord).id;
    // Listed by its last hit: in a range after the earlier fold's hit.
    expect(await alertsIn(at(t, 30_000), at(t, 50_000))).toEqual([
      expect.objectContaining({ id, count: 6, firstSeen: t, lastSeen: at(t, 40_000) }),
    ]);
  });

  it("never counts a fold into a full slot twice, whatever answer a request gets", async () => {
    const spilling = new DynamoFlowStore({
      client: ts.clientFor(proxy.endpoint, { maxAttempts: 1 }),
      tableName: ts.tableName,
      now: () => clock,
      maxSlotTokens: 1,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    });
    const [src, dst] = pair(44);
    const t = "2024-04-19T14:00:00.000Z";
    const count = async () => (await alertsIn(t, t)).find((a) => a.src.ip === src.ip)?.count;
    await spilling.applyAlerts([candidate(src, dst, t, 1)], "open", WINDOW);
    // Contributions whose folds land in one shard of the slot: the first fills it, the others spill.
    const [fills, spill1, spill2] = sameShard("spilling", 3) as [string, string, string];
    await spilling.applyAlerts([candidate(src, dst, at(t, 1000), 2)], fills, WINDOW);
    /** The first request that `match` picks gets `outcome`. */
    const once = (
      match: (op: string, body: Record<string, unknown>) => boolean,
      outcome: "lost" | "error",
    ) => {
      let used = false;
      proxy.setPlan({
        [outcome]: 1,
        eligible: (op, body) => {
          if (used || !match(op, body)) return false;
          used = true;
          return true;
        },
      });
    };
    const hitsAdd = (op: string, body: Record<string, unknown>) =>
      op === "UpdateItem" && String(body.UpdateExpression).startsWith("ADD ");
    const claim = (op: string, body: Record<string, unknown>) =>
      op === "PutItem" && JSON.stringify(body.Item).includes("FOLDCLAIM#");
    try {
      // The hits' ADD is applied but its answer lost: not sent again; the payload fails, its retry adds nothing.
      once(hitsAdd, "lost");
      const spill = candidate(src, dst, at(t, 2000), 2);
      await expect(spilling.applyAlerts([spill], spill1, WINDOW)).rejects.toThrow(/not sent again/);
      proxy.setPlan({});
      expect(await spilling.applyAlerts([spill], spill1, WINDOW)).toEqual(NOTHING);
      expect(await count()).toBe(5);
      // A redelivery whose claim gets a 500 (not applied) finds the claim on the next try: nothing added.
      once(claim, "error");
      expect(await spilling.applyAlerts([spill], spill1, WINDOW)).toEqual(NOTHING);
      expect(await count()).toBe(5);
      // A claim applied but its answer lost: sent again, it finds itself (its nonce) and adds its hits, once.
      once(claim, "lost");
      await spilling.applyAlerts([candidate(src, dst, at(t, 3000), 3)], spill2, WINDOW);
      expect(await count()).toBe(8);
      expect(await spilling.applyAlerts([candidate(src, dst, at(t, 3000), 3)], spill2, WINDOW)).toEqual(
        NOTHING,
      );
      expect(await count()).toBe(8);
    } finally {
      proxy.setPlan({});
    }
  });

  it("lets a payload that took an alert's lease and then closed its window deliver it on its retry", async () => {
    const [src, dst] = pair(45);
    const t = "2024-04-19T15:00:00.000Z";
    // X opens the window and dies before publishing.
    expect(await store.applyAlerts([candidate(src, dst, t, 1)], "X", WINDOW)).toMatchObject({
      alerts: [{ openedAt: t }],
      opened: 1,
    });
    clock += 2 * MINUTE;
    // T folds a hit into it (taking the lease, the alert being old enough) and opens the next with another.
    const spans = [
      { firstSeen: at(t, MINUTE), lastSeen: at(t, MINUTE), hits: 1 },
      { firstSeen: at(t, 20 * MINUTE), lastSeen: at(t, 20 * MINUTE), hits: 1 },
    ];
    const both = candidate(src, dst, at(t, MINUTE), 2, { lastSeen: at(t, 20 * MINUTE), spans });
    const fromT = await store.applyAlerts([both], "T", WINDOW);
    expect(fromT.alerts.map((a) => a.openedAt)).toEqual([t, at(t, 20 * MINUTE)]);
    // It opened the second only.
    expect(fromT.opened).toBe(1);
    // T's publish fails: its retry, a minute later, hands both out again, the first one too though its window has
    // closed.
    clock += 61_000;
    const retried = await store.applyAlerts([both], "T", WINDOW);
    expect(retried.alerts.map((a) => a.openedAt)).toEqual([t, at(t, 20 * MINUTE)]);
    expect(retried.opened).toBe(0);
    // Nobody else does.
    clock += 10 * MINUTE;
    expect(await store.applyAlerts([candidate(src, dst, at(t, 5 * MINUTE), 1)], "U", WINDOW)).toEqual(
      NOTHING,
    );
  });

  it("lets an opener deliver its alert when the next window opens while it renews its lease", async () => {
    const [src, dst] = pair(46);
    const t = "2024-04-19T16:00:00.000Z";
    const direct = new DynamoFlowStore({ client: ts.clientFor(), tableName: ts.tableName, now: () => clock });
    // O's state write lands but its answer is lost: its resend is refused, it reads the state back, finds its own
    // window and renews its lease on the alert. That renewal is held while another delivery opens the next window.
    let lose = 1;
    proxy.clearLog();
    proxy.setPlan({
      lost: 1,
      eligible: (op, body) => {
        const sk = (body.Item as { sk?: { S?: string } } | undefined)?.sk?.S;
        return op === "PutItem" && sk === "STATE" && lose-- > 0;
      },
    });
    proxy.hold((op, body) => op === "UpdateItem" && JSON.stringify(body).includes('"leaseRun"'));
    try {
      const opening = store.applyAlerts([candidate(src, dst, t, 1)], "O", WINDOW);
      await expect.poll(() => proxy.held, { timeout: 10_000 }).toBe(1);
      const next = await direct.applyAlerts([candidate(src, dst, at(t, 20 * MINUTE), 1)], "N", WINDOW);
      expect(next.alerts.map((a) => a.openedAt)).toEqual([at(t, 20 * MINUTE)]);
      await proxy.release();
      // O held the lease when its window closed: the alert is still O's to deliver, and nobody else's.
      expect(await opening).toMatchObject({ alerts: [{ openedAt: t, delivery: "pending" }], opened: 1 });
      expect(proxy.count({ outcome: "lost" })).toBe(1);
    } finally {
      proxy.setPlan({});
      await proxy.release();
    }
    clock += 10 * MINUTE;
    expect(await store.applyAlerts([candidate(src, dst, at(t, 5 * MINUTE), 1)], "U", WINDOW)).toEqual(
      NOTHING,
    );
  });

  it("counts a batch longer than a window in the windows that hold its hits, however the hits are batched", async () => {
    const t = "2024-04-19T05:00:10.000Z";
    // 40 hits of one key, one a minute: windows open at 05:00:10, 05:15:10 and 05:30:10 with 15, 15 and 10.
    const hitAt = (i: number) => at(t, i * MINUTE);
    const batch = (src: Endpoint, dst: Endpoint, from: number, to: number) => {
      const spans = Array.from({ length: to - from }, (_, k) => ({
        firstSeen: hitAt(from + k),
        lastSeen: hitAt(from + k),
        hits: 1,
      }));
      return candidate(src, dst, hitAt(from), to - from, { lastSeen: hitAt(to - 1), spans });
    };
    const expected = [
      [t, 15, hitAt(14)],
      [hitAt(15), 15, hitAt(29)],
      [hitAt(30), 10, hitAt(39)],
    ];
    for (const [n, size] of [
      [41, 40],
      [42, 1],
      [43, 7],
    ] as const) {
      const [src, dst] = pair(n);
      let opened = 0;
      for (let from = 0; from < 40; from += size) {
        const payload = [batch(src, dst, from, Math.min(40, from + size))];
        opened += (await store.applyAlerts(payload, `long-${n}-${from}`, WINDOW)).opened;
        // A retried payload changes nothing, and opens nothing.
        expect((await store.applyAlerts(payload, `long-${n}-${from}`, WINDOW)).opened).toBe(0);
      }
      const listed = (await alertsIn(t, hitAt(40))).filter((a) => a.src.ip === src.ip);
      expect(listed.map((a) => [a.openedAt, a.count, a.lastSeen])).toEqual(expected);
      expect(opened).toBe(expected.length);
    }
  });

  it("counts a key named twice in one payload once per window, with both hits", async () => {
    const [src, dst] = pair(14);
    const t = "2024-04-19T09:00:00.000Z";
    const out = await store.applyAlerts(
      [candidate(src, dst, at(t, 5000), 2), candidate(src, dst, t, 5, { severity: "low" })],
      "twice",
      WINDOW,
    );
    expect(out.opened).toBe(1);
    expect(out.alerts).toHaveLength(1);
    expect(out.alerts[0]).toMatchObject({ count: 7, openedAt: t, lastSeen: at(t, 5000), severity: "high" });
  });

  it("says which alerts of a payload another run of it holds, and until when", async () => {
    const [src, dst] = pair(54);
    const t = "2024-05-01T00:00:00.000Z";
    const once = () => store.applyAlerts([candidate(src, dst, t, 3)], "held-1", WINDOW);
    // The first run opens the alert, holding its lease, and its publish fails (a topic key not usable).
    const leaseEnds = new Date(clock + 60_000).toISOString();
    const first = await once();
    expect(first.opened).toBe(1);
    expect(first.held ?? []).toEqual([]);
    // Run again 20 s later, once the cause is fixed: it cannot tell the failed run from a duplicate still publishing,
    // so it is handed out nothing, and is told so (redrive would take the payload for delivered).
    clock += 20_000;
    const again = await once();
    expect(again.alerts).toEqual([]);
    expect(again.held).toEqual([{ id: first.alerts[0]?.id, openedAt: t, until: leaseEnds }]);
    // A run that publishes nothing has nothing held from it, and is told of the alert its payload left pending.
    expect(
      await store.applyAlerts([candidate(src, dst, t, 3)], "held-1", { ...WINDOW, delivers: false }),
    ).toEqual({ alerts: first.alerts, opened: 0 });
    // Once the lease has run out, the next run delivers it.
    clock += 41_000;
    expect(await once()).toEqual({ alerts: first.alerts, opened: 0 });
    // Sent: held by nobody, whoever has the lease.
    await store.markAlertSent(first.alerts[0] as AlertRecord);
    clock += 20_000;
    expect(await once()).toEqual(NOTHING);
  });

  it("tells a run that publishes nothing of the pending alerts its contribution holds the lease on", async () => {
    const [src, dst] = pair(55);
    const t = "2024-05-01T01:00:00.000Z";
    const quiet = { ...WINDOW, delivers: false };
    // A backfill without a topic opens the alert; a delivery folding into it once it is old enough takes the lease
    // on sending it, and its publish fails.
    await store.applyAlerts([candidate(src, dst, t, 2)], "lease-opener", quiet);
    clock += 2 * MINUTE;
    const late = candidate(src, dst, at(t, MINUTE), 1);
    const [alert] = (await store.applyAlerts([late], "lease-holder", WINDOW)).alerts;
    expect(alert).toMatchObject({ openedAt: t, delivery: "pending" });
    expect(await store.applyAlerts([late], "lease-holder", quiet)).toEqual({ alerts: [alert], opened: 0 });
    // Another contribution's hit is folded in, and nothing handed to it.
    expect(await store.applyAlerts([late], "lease-other", quiet)).toEqual(NOTHING);
    const pending = [{ ...alert, count: 4 }];
    // Closed by the next window, the alert is still the holder's to send.
    await store.applyAlerts([candidate(src, dst, at(t, 20 * MINUTE), 1)], "lease-next", WINDOW);
    expect(await store.applyAlerts([late], "lease-holder", quiet)).toEqual({ alerts: pending, opened: 0 });
    // Sent, it is nobody's.
    await store.markAlertSent(alert as AlertRecord);
    expect(await store.applyAlerts([late], "lease-holder", quiet)).toEqual(NOTHING);
  });

  it("tells the next alert only the hits no message of the previous one gave", async () => {
    const WINDOW_MS = 15 * MINUTE;
    /** Opens a key's alert with 3 hits, lets `meanwhile` run, then opens the next window: its foldedBefore. */
    const next = async (n: number, meanwhile: (first: AlertRecord, t: string) => Promise<void>) => {
      const [src, dst] = pair(n);
      const t = `2024-05-0${n - 48}T00:00:00.000Z`;
      const { alerts } = await store.applyAlerts([candidate(src, dst, t, 3)], `told-${n}-a`, WINDOW);
      await meanwhile(alerts[0] as AlertRecord, t);
      const later = await store.applyAlerts(
        [candidate(src, dst, at(t, WINDOW_MS + MINUTE), 1)],
        `told-${n}-z`,
        WINDOW,
      );
      return later.alerts[0]?.foldedBefore;
    };
    const fold = (n: number, t: string, hits: number, name: string) => {
      const [src, dst] = pair(n);
      return store.applyAlerts([candidate(src, dst, at(t, MINUTE), hits)], name, WINDOW);
    };
    // The opener's publish fails; another delivery folds 5 in and, the alert old enough, sends it with 8 hits; 2
    // more come after. Marked sent twice (two runs sent it), the larger count is what was told.
    expect(
      await next(49, async (_, t) => {
        clock += 2 * MINUTE;
        const [sent] = (await fold(49, t, 5, "told-49-b")).alerts;
        expect(sent?.count).toBe(8);
        await store.markAlertSent(sent as AlertRecord);
        await store.markAlertSent({ ...(sent as AlertRecord), count: 3 });
        await fold(49, t, 2, "told-49-c");
      }),
    ).toBe(2);
    // Never sent by the time the next opened: none of its 7 hits was told.
    expect(await next(50, async (_, t) => void (await fold(50, t, 4, "told-50-b")))).toBe(7);
    // Summarized with 3 hits: the 4 after.
    expect(
      await next(51, async (first, t) => {
        await store.markAlertSent(first, "summarized");
        await fold(51, t, 4, "told-51-b");
      }),
    ).toBe(4);
    // Sent by a version that kept no count: the hits folded in after its opening, as that version counted them.
    expect(
      await next(52, async (first, t) => {
        await fold(52, t, 4, "told-52-b");
        await store.markAlertSent(first);
        await raw.send(
          new UpdateCommand({
            TableName: ts.tableName,
            Key: alertRecordKey(CLUSTER, t, alertKeyDigest(first.key)),
            UpdateExpression: "REMOVE sentCounts",
          }),
        );
      }),
    ).toBe(4);
  });

  it("keeps alerts for the retention and refuses what it cannot do", async () => {
    const [src, dst] = pair(15);
    const t = "2024-04-19T10:00:00.000Z";
    const [alert] = (await store.applyAlerts([candidate(src, dst, t, 1)], "ttl", WINDOW)).alerts;
    const key = {
      pk: `ALERTS#${CLUSTER}#2024-04-19`,
      sk: `${t}#${alertKeyDigest(alert?.key ?? candidate(src, dst, t, 1).key)}`,
    };
    const item = await raw.send(new GetCommand({ TableName: ts.tableName, Key: key }));
    expect(item.Item?.expiresAt).toBe(Date.parse(t) / 1000 + 30 * 86_400);
    await expect(store.applyAlerts([candidate(src, dst, t, 1)], "w", { windowMs: 0 })).rejects.toThrow(
      /windowMs/,
    );
    await expect(store.applyAlerts([candidate(src, dst, "2024-04-19", 1)], "w", WINDOW)).rejects.toThrow(
      /firstSeen/,
    );
    await expect(
      store.markAlertSent({ ...(alert as AlertRecord), openedAt: "2024-04-19T10:00:01.000Z" }),
    ).rejects.toThrow(/not in the store/);
  });
});

describe("windowFor", () => {
  const window = (k: number, openedAt: string, minutes: number) => ({
    openedAt,
    windowEnd: new Date(Date.parse(openedAt) + minutes * MINUTE).toISOString(),
    alertPk: "p",
    alertSk: `s${k}`,
    openedBy: `t${k}`,
    foldedBefore: 0,
  });
  /** Windows one after another in event time: each opens at or after the end of the one before. */
  const windows = fc
    .array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 30 })), {
      minLength: 1,
      maxLength: 12,
    })
    .map((steps) => {
      let end = 0;
      return steps.map(([gap, length], k) => {
        const opened = end + gap;
        end = opened + length;
        const iso = new Date(Date.UTC(2024, 3, 19) + opened * MINUTE).toISOString();
        return {
          openedAt: iso,
          windowEnd: new Date(Date.UTC(2024, 3, 19) + end * MINUTE).toISOString(),
          alertPk: "p",
          alertSk: `s${k}`,
          openedBy: `t${k}`,
          foldedBefore: 0,
        };
      });
    });

  /** Nothing is ahead of the clock. */
  const NEVER = "9999-12-31T23:59:59.999Z";
  const minuteIso = (minute: number) => new Date(Date.UTC(2024, 3, 19) + minute * MINUTE).toISOString();

  it("names the window holding a hit, else the next one, and keeps naming it as later windows open", () => {
    fc.assert(
      fc.property(windows, fc.integer({ min: -5, max: 900 }), (ws, minute) => {
        const hit = minuteIso(minute);
        // The first window the hit is late for: the key's open window was the k-th when the payload came.
        const k = ws.findIndex((w) => hit < w.openedAt);
        if (k < 0) return;
        const first = windowFor(hit, ws.slice(0, k + 1).reverse(), NEVER);
        const holding = ws.find((w) => w.openedAt <= hit && hit < w.windowEnd);
        const after = ws.find((w) => w.openedAt > hit);
        expect(first).toBe(holding ?? after);
        for (let later = k + 1; later < ws.length; later++) {
          expect(windowFor(hit, ws.slice(0, later + 1).reverse(), NEVER)).toBe(first);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("names no window for a hit before a window ahead of the clock", () => {
    const ahead = { ...window(0, "9999-01-01T00:00:00.000Z", 15), alertSk: "ahead" };
    const past = window(1, minuteIso(0), 15);
    const clock = minuteIso(60);
    expect(windowFor(minuteIso(30), [ahead], clock)).toBeUndefined();
    // A late hit goes to the window after it that is not ahead, a hit in none and before no other opens its own.
    expect(windowFor(minuteIso(-5), [ahead, past], clock)).toBe(past);
    expect(windowFor(minuteIso(30), [ahead, past], clock)).toBeUndefined();
    expect(windowFor("9999-01-01T00:05:00.000Z", [past, ahead], clock)).toBe(ahead);
    // Once the clock is near, the window takes what comes before it again.
    expect(windowFor(minuteIso(30), [ahead], NEVER)).toBe(ahead);
  });

  it("lands each hit where it landed first, windows opened ahead of the clock included", () => {
    // Hits in any order, the clock moving on: a hit that no window takes opens [hit, hit + 15 min), as applyOne does.
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -30, max: 400 }), fc.integer({ min: 0, max: 20 })), {
          minLength: 1,
          maxLength: 40,
        }),
        (steps) => {
          const ws: ReturnType<typeof window>[] = [];
          const landed: [string, ReturnType<typeof window>][] = [];
          let clock = 0;
          for (const [minute, tick] of steps) {
            clock += tick;
            const aheadFrom = minuteIso(clock + 15);
            const hit = minuteIso(minute);
            let w = windowFor(hit, ws, aheadFrom);
            if (w === undefined) {
              w = window(ws.length, hit, 15);
              ws.unshift(w);
            }
            landed.push([hit, w]);
            for (const [h, where] of landed) expect(windowFor(h, ws, aheadFrom)).toBe(where);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("queryAlerts", () => {
  it("lists alerts by opening time across day partitions, whole, two Queries per page at most", async () => {
    const expected: { openedAt: string; count: number }[] = [];
    // Three day partitions with an empty one (06-03) between; 06-02 holds more items than one Query of a
    // one-alert page reads, so that a Query ends inside an alert.
    const opening = (i: number) =>
      i < 2
        ? `2024-06-01T2${2 + i}:00:00.000Z`
        : i < 12
          ? `2024-06-02T${String((i - 2) * 2).padStart(2, "0")}:00:00.000Z`
          : `2024-06-04T0${i - 12}:30:00.000Z`;
    for (let i = 0; i < 14; i++) {
      const [src, dst] = pair(100 + i);
      const openedAt = opening(i);
      await store.applyAlerts([candidate(src, dst, openedAt, 1)], `list-${i}-open`, WINDOW);
      // Folds in several slots, so each alert is several items.
      let count = 1;
      const folds = i >= 2 && i < 12 ? 3 : i % 4;
      for (let j = 1; j <= folds; j++) {
        await store.applyAlerts(
          [candidate(src, dst, at(openedAt, j * 4 * MINUTE), j)],
          `list-${i}-${j}`,
          WINDOW,
        );
        count += j;
      }
      expected.push({ openedAt, count });
    }
    const since = "2024-06-01T00:00:00.000Z";
    const until = "2024-06-06T00:00:00.000Z";
    for (const limit of [1, 3, 100]) {
      const seen: AlertRecord[] = [];
      let cursor: string | undefined;
      do {
        const before = proxy.count({ operation: "Query" });
        const page = await store.queryAlerts({ cluster: CLUSTER, since, until, limit, cursor });
        expect(proxy.count({ operation: "Query" }) - before).toBeLessThanOrEqual(2);
        expect(page.items.length).toBeLessThanOrEqual(limit);
        seen.push(...page.items);
        cursor = page.cursor;
      } while (cursor !== undefined);
      expect(seen.map((a) => ({ openedAt: a.openedAt, count: a.count }))).toEqual(expected);
    }
    const sub = await alertsIn(expected[2]?.openedAt as string, expected[4]?.openedAt as string, 2);
    expect(sub.map((a) => a.openedAt)).toEqual(expected.slice(2, 5).map((e) => e.openedAt));
    await expect(store.queryAlerts({ cluster: CLUSTER, since, until, cursor: "e30" })).rejects.toThrow(
      /cursor/,
    );
  });

  it("reads only the days that hold alerts, listing their markers a Query at a time (markers.ts)", async () => {
    // Alerts on 40 of 120 days: more days than one marker Query lists (32), so the listing itself continues in
    // the cursor, and most days of the range hold nothing.
    const start = Date.parse("2024-09-01T12:00:00.000Z");
    const expected: string[] = [];
    for (let d = 0; d < 120; d += 3) {
      const [src, dst] = pair(300 + d);
      const openedAt = new Date(start + d * 86_400_000).toISOString();
      await store.applyAlerts([candidate(src, dst, openedAt, 1)], `sparse-${d}`, WINDOW);
      expected.push(openedAt);
    }
    const since = "2024-09-01T00:00:00.000Z";
    const until = "2024-12-31T00:00:00.000Z";
    for (const limit of [1, 7, 1000]) {
      const seen: string[] = [];
      let cursor: string | undefined;
      const first = proxy.count({ operation: "Query" });
      do {
        const before = proxy.count({ operation: "Query" });
        const page = await store.queryAlerts({ cluster: CLUSTER, since, until, limit, cursor });
        expect(proxy.count({ operation: "Query" }) - before).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((a) => a.openedAt));
        cursor = page.cursor;
      } while (cursor !== undefined);
      expect(seen).toEqual(expected);
      // One Query per day that holds alerts, and one per 32 days of markers: not one per day of the range.
      expect(proxy.count({ operation: "Query" }) - first).toBeLessThanOrEqual(
        40 + 2 + (limit === 1 ? 40 : 0),
      );
    }
  });

  it("puts a day's marker once, however many windows of it a payload opens at once", async () => {
    const dayMarkerPuts = () =>
      proxy.log.filter(
        (r) =>
          r.operation === "PutItem" &&
          String((r.body.Item as { pk?: { S?: string } } | undefined)?.pk?.S).startsWith("ALERTDAYS#"),
      ).length;
    const before = dayMarkerPuts();
    const t = "2024-08-15T10:00:00.000Z";
    const candidates = Array.from({ length: 20 }, (_, i) => {
      const [src, dst] = pair(600 + i);
      return candidate(src, dst, t, 1);
    });
    const applied = await store.applyAlerts(candidates, "day-marker-once", WINDOW);
    expect(applied.opened).toBe(20);
    expect(dayMarkerPuts() - before).toBe(1);
  });

  it("never splits an alert from its folds when a Query stops at its 1 MB limit", async () => {
    // A day of 200 alerts with large records (many namespace labels) and two fold slots each: more than
    // one Query answer can hold, so answers end inside an alert.
    const [src, dst] = pair(200);
    const t = "2024-07-01T00:00:00.000Z";
    const [model] = (await store.applyAlerts([candidate(src, dst, t, 1)], "big-model", WINDOW)).alerts;
    const key = {
      pk: `ALERTS#${CLUSTER}#2024-07-01`,
      sk: `${t}#${alertKeyDigest((model as AlertRecord).key)}`,
    };
    const record = (await raw.send(new GetCommand({ TableName: ts.tableName, Key: key }))).Item ?? {};
    const labels = Object.fromEntries(
      Array.from({ length: 1000 }, (_, i) => [`example.com/label-${i}`, `value-${i}`]),
    );
    const items: Record<string, unknown>[] = [];
    const expected: string[] = [];
    for (let i = 1; i <= 200; i++) {
      const openedAt = at(t, i * 60_000);
      const sk = `${openedAt}#${String(i).padStart(22, "x")}`;
      expected.push(openedAt);
      items.push(
        {
          ...record,
          sk,
          openedAt,
          id: `big-${i}`,
          src: { ...(record.src as object), labels },
          applied: new Set([`t${i}`]),
        },
        {
          pk: key.pk,
          sk: `${sk}#000`,
          hits: 2,
          firstSeen: openedAt,
          lastSeen: openedAt,
          applied: new Set(["a"]),
        },
        {
          pk: key.pk,
          sk: `${sk}#001`,
          hits: 3,
          firstSeen: openedAt,
          lastSeen: at(openedAt, 1000),
          applied: new Set(["b"]),
        },
      );
    }
    for (let i = 0; i < items.length; i += 25) {
      const batch = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      await raw.send(new BatchWriteCommand({ RequestItems: { [ts.tableName]: batch } }));
    }
    const seen: AlertRecord[] = [];
    let cursor: string | undefined;
    let pagesRead = 0;
    do {
      const before = proxy.count({ operation: "Query" });
      const page = await store.queryAlerts({
        cluster: CLUSTER,
        since: at(t, 1),
        until: at(t, 86_399_999),
        limit: 1000,
        cursor,
      });
      expect(proxy.count({ operation: "Query" }) - before).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.cursor;
      pagesRead++;
    } while (cursor !== undefined);
    expect(pagesRead).toBeGreaterThan(1);
    expect(seen.map((a) => a.openedAt)).toEqual(expected);
    expect(seen.every((a) => a.count === 6)).toBe(true);
    expect(seen.every((a) => a.lastSeen === at(a.openedAt, 1000))).toBe(true);
  });
});
