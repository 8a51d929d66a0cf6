// Denial tallies against dynalite: distinct members per subject over a window and the one before, idempotent
// adds, a cap that bounds the item, and a TTL a day after the window stops counting.
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tallyKey } from "../../../functions/adapters/dynamo/keys.ts";
import { DynamoDenialTally } from "../../../functions/adapters/dynamo/tallies.ts";
import { MAX_TALLY_CAP, type TallyEntry } from "../../../functions/core/ports.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";

let ts: TestStore;
let tally: DynamoDenialTally;
const WINDOW = 15 * 60_000;
// The start of a window (aligned to the epoch), and a time inside it.
const W0 = Math.floor(Date.parse("2026-04-19T04:52:00.000Z") / WINDOW) * WINDOW;
const NOW = Date.parse("2026-04-19T05:00:00.000Z");

beforeAll(async () => {
  ts = await startTestStore();
  tally = new DynamoDenialTally({ client: ts.client, tableName: ts.tableName, now: () => NOW });
});
afterAll(async () => {
  await ts?.close();
});

const entry = (subject: string, members: string[], atMs: number, cluster = "prod"): TallyEntry => ({
  cluster,
  subject,
  members,
  atMs,
});
const count = async (e: TallyEntry, cap = 10) => (await tally.tally([e], { windowMs: WINDOW, cap }))[0];

describe("DynamoDenialTally", () => {
  it("counts a subject's distinct members across calls, in order per entry", async () => {
    expect(await count(entry("dns", ["a", "b"], W0 + 1_000))).toBe(2);
    expect(await count(entry("dns", ["b", "c"], W0 + 2_000))).toBe(3);
    // Several entries in one call answer in their order; another subject and another cluster count apart.
    const counts = await tally.tally(
      [
        entry("dns", ["d"], W0 + 3_000),
        entry("db", ["a"], W0 + 3_000),
        entry("dns", ["x", "y"], W0, "stage"),
      ],
      { windowMs: WINDOW, cap: 10 },
    );
    expect(counts).toEqual([4, 1, 2]);
  });

  it("adds nothing when the same members come again (a redelivered payload)", async () => {
    expect(await count(entry("redelivered", ["a", "b", "c"], W0))).toBe(3);
    expect(await count(entry("redelivered", ["a", "b", "c"], W0))).toBe(3);
    expect(await count(entry("redelivered", ["c"], W0 + WINDOW - 1))).toBe(3);
  });

  it("counts the window holding the time and the ones either side of it, not further ones", async () => {
    expect(await count(entry("slow", ["a", "b"], W0 - WINDOW))).toBe(2);
    // The next window: its own member and the previous window's two.
    expect(await count(entry("slow", ["c"], W0 + 5))).toBe(3);
    // A member in both windows counts once.
    expect(await count(entry("slow", ["a"], W0 + 6))).toBe(3);
    // Two windows later: the middle window's a and c, and d; the first window no longer counts.
    expect(await count(entry("slow", ["d"], W0 + WINDOW))).toBe(3);
    expect(await count(entry("slow", ["e"], W0 + 2 * WINDOW))).toBe(2);
    // A late payload of the first window counts the one after it, stored before it: a, b, c and f.
    expect(await count(entry("slow", ["f"], W0 - WINDOW + 9))).toBe(4);
  });

  it("stops counting at the cap, and never stores twice the cap", async () => {
    const many = Array.from({ length: 30 }, (_, i) => `m${i}`);
    // One call adds at most `cap` members: the count says at least the cap.
    expect(await count(entry("scanner", many, W0), 5)).toBe(5);
    // The set is full: later members are not added, and the count is the cap.
    expect(await count(entry("scanner", ["late"], W0), 5)).toBe(5);
    // Below the cap, one call may bring it to fewer than twice the cap.
    expect(await count(entry("near", ["a", "b", "c", "d"], W0), 5)).toBe(4);
    expect(await count(entry("near", many, W0), 5)).toBe(9);
    expect(await count(entry("near", ["z"], W0), 5)).toBe(5);
    const doc = DynamoDBDocumentClient.from(ts.client);
    const stored = await doc.send(
      new GetCommand({ TableName: ts.tableName, Key: tallyKey("prod", "near", W0) }),
    );
    expect((stored.Item?.m as Set<string> | undefined)?.size).toBe(9);
    // A full previous window counts as the cap, whatever the current one holds.
    expect(await count(entry("scanner", ["next"], W0 + WINDOW), 5)).toBe(6);
  });

  it("does not write a window again once it found it full, at that cap", async () => {
    const fresh = new DynamoDenialTally({ client: ts.client, tableName: ts.tableName, now: () => NOW });
    const options = { windowMs: WINDOW, cap: 3 };
    await fresh.tally([entry("busy", ["a", "b", "c"], W0)], options);
    const before = fresh.report.requests;
    for (const m of ["d", "e", "f"])
      expect(await fresh.tally([entry("busy", [m], W0 + 1)], options)).toEqual([3]);
    expect(fresh.report.requests).toBe(before);
    // At a higher cap it is not full: asked again.
    expect(await fresh.tally([entry("busy", ["d"], W0 + 1)], { windowMs: WINDOW, cap: 10 })).toEqual([4]);
    expect(fresh.report.requests).toBeGreaterThan(before);
  });

  it("keeps a window's item a day after it stops counting (the window after it), or after now for old events", async () => {
    await count(entry("ttl", ["a"], W0 + 1));
    const doc = DynamoDBDocumentClient.from(ts.client);
    const stored = await doc.send(
      new GetCommand({ TableName: ts.tableName, Key: tallyKey("prod", "ttl", W0) }),
    );
    expect(stored.Item?.expiresAt).toBe((W0 + 2 * WINDOW) / 1000 + 86_400);
    // Events three days old (a backfill, a redrive): a day after now, not already expired.
    const later = new DynamoDenialTally({
      client: ts.client,
      tableName: ts.tableName,
      now: () => NOW + 3 * 86_400_000,
    });
    await later.tally([entry("ttl-old", ["a"], W0 + 1)], { windowMs: WINDOW, cap: 10 });
    const old = await doc.send(
      new GetCommand({ TableName: ts.tableName, Key: tallyKey("prod", "ttl-old", W0) }),
    );
    expect(old.Item?.expiresAt).toBe((NOW + 3 * 86_400_000) / 1000 + 86_400);
    // Members are stored as short digests, not as the names they stand for.
    expect([...((stored.Item?.m as Set<string> | undefined) ?? [])]).toEqual([
      expect.stringMatching(/^[A-Za-z0-9_-]{12}$/),
    ]);
  });

  it("keeps a contribution's first verdict: later saves return it, loads read it, other contributions have none", async () => {
    expect(await tally.loadVerdict("prod", "payload-1")).toBeUndefined();
    const first = await tally.saveVerdict("prod", "payload-1", ["destination\ncoredns", "source\nprobe"], W0);
    expect([
      first.over("destination\ncoredns"),
      first.over("source\nprobe"),
      first.over("source\nweb"),
    ]).toEqual([true, true, false]);
    // A concurrent run's save comes second: it gets the first one's verdict.
    const second = await tally.saveVerdict("prod", "payload-1", ["source\nweb"], W0);
    expect([second.over("source\nweb"), second.over("source\nprobe")]).toEqual([false, true]);
    const loaded = await tally.loadVerdict("prod", "payload-1");
    expect(loaded?.over("destination\ncoredns")).toBe(true);
    // An empty verdict (nothing over the threshold) is a verdict too.
    await tally.saveVerdict("prod", "payload-2", [], W0);
    expect((await tally.loadVerdict("prod", "payload-2"))?.over("source\nprobe")).toBe(false);
    expect(await tally.loadVerdict("stage", "payload-1")).toBeUndefined();
  });

  it("refuses a cap outside 1 to MAX_TALLY_CAP, a bad window, an entry without members and a bad cluster", async () => {
    const e = entry("x", ["a"], W0);
    await expect(tally.tally([e], { windowMs: WINDOW, cap: MAX_TALLY_CAP + 1 })).rejects.toThrow(/cap/);
    await expect(tally.tally([e], { windowMs: WINDOW, cap: 0 })).rejects.toThrow(/cap/);
    await expect(tally.tally([e], { windowMs: 0, cap: 5 })).rejects.toThrow(/windowMs/);
    await expect(tally.tally([entry("x", [], W0)], { windowMs: WINDOW, cap: 5 })).rejects.toThrow(/member/);
    await expect(tally.tally([entry("x", ["a"], W0, "a#b")], { windowMs: WINDOW, cap: 5 })).rejects.toThrow(
      /cluster/,
    );
  });
});
