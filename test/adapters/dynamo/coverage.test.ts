// The coverage adapter's pages against dynalite (which enforces DynamoDB's 400 KB item limit): a minute's
// pages are read together and only its own, the open page is the first not sealed, and a page filled to both
// budgets with the longest claims (their writers' settings as long as checkSettings lets them be) still fits in an item.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoCoverageStore } from "../../../functions/adapters/dynamo/coverage.ts";
import {
  type Claim,
  eventKey,
  ITEM_CLAIM_BUDGET,
  MINUTE_EVENT_BUDGET,
  MINUTE_MS,
} from "../../../functions/core/coverage.ts";
import { checkSettings, type IngestSettings, MAX_SETTINGS_BYTES } from "../../../functions/core/ingest.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";

let ts: TestStore;
let coverage: DynamoCoverageStore;

beforeAll(async () => {
  ts = await startTestStore();
  coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
});
afterAll(async () => {
  await ts?.close();
});

const M = Date.parse("2024-04-19T14:00:00.000Z");

function claim(contribution: string, page: number, events: string[], more = false): Claim {
  return {
    contribution,
    source: "backfill",
    events,
    recorded: true,
    count: events.length,
    span: 1,
    stored: false,
    claimedAt: "2024-04-19T14:01:00.000Z",
    page,
    more,
  };
}

describe("coverage pages", () => {
  it("reads every page of the minutes asked for and none of the next, the open one first not sealed", async () => {
    const ref = { cluster: "pages", group: "/eks/pages", stream: "node-a" };
    // Pages 0..11 of M sealed (past the sort keys' padding), page 12 open; pages 0 and 1 of the next minute.
    for (let page = 0; page < 12; page++) {
      expect(
        await coverage.addClaim(ref, M, 0, claim(`c${page}`, page, [eventKey(`e${page}`)], true), true),
      ).toBe(true);
    }
    expect(await coverage.addClaim(ref, M, 0, claim("c12", 12, [eventKey("e12")]))).toBe(true);
    expect(await coverage.addClaim(ref, M + MINUTE_MS, 0, claim("n0", 0, [eventKey("n0")]))).toBe(true);
    expect(await coverage.seal(ref, M + MINUTE_MS, 0, 1)).toBe(true);
    expect(await coverage.addClaim(ref, M + MINUTE_MS, 0, claim("n1", 1, [eventKey("n1")]))).toBe(true);

    const [only, ...none] = await coverage.read(ref, M, M);
    expect(none).toEqual([]);
    expect(only?.claims.map((c) => [c.contribution, c.page, c.more === true])).toEqual(
      Array.from({ length: 13 }, (_, p) => [`c${p}`, p, p < 12]),
    );
    expect([only?.page, only?.version]).toEqual([12, 1]);

    const both = await coverage.read(ref, M, M + MINUTE_MS);
    expect(both.map((m) => [m.minute, m.page, m.version, m.claims.length])).toEqual([
      [M, 12, 1, 13],
      [M + MINUTE_MS, 1, 1, 2],
    ]);
    // A sealed page takes no claim at the version read before its seal; marking stored still works on it.
    expect(await coverage.addClaim(ref, M + MINUTE_MS, 1, claim("late", 0, [eventKey("late")]))).toBe(false);
    await coverage.markStored(ref, M + MINUTE_MS, "n0", [0]);
    await coverage.markStored(ref, M, "c11", [11]);
    const [after] = await coverage.read(ref, M + MINUTE_MS, M + MINUTE_MS);
    expect(after?.claims.map((c) => [c.contribution, c.stored])).toEqual([
      ["n0", true],
      ["n1", false],
    ]);
    expect((await coverage.read(ref, M, M))[0]?.claims.find((c) => c.contribution === "c11")?.stored).toBe(
      true,
    );
  });

  it("refuses settings longer than every claim of a page can record, and takes the defaults", () => {
    const ranges = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const settings = (internalCidrs: string[]): IngestSettings => ({
      bucketSeconds: 60,
      prefix: "calico-packet",
      internalCidrs,
      workloadInterfacePrefixes: ["cali", "eni", "vlan"],
      alertWindowMs: 900_000,
    });
    expect(checkSettings(settings(["192.168.0.0/16"]))).toEqual(settings(["192.168.0.0/16"]));
    expect(() => checkSettings(settings(ranges(200)))).toThrow(
      /200 internal CIDRs.*list fewer, wider ranges/,
    );
  });

  it("a page holding both budgets' worth of the longest claims fits in a DynamoDB item", async () => {
    const ref = { cluster: "pages", group: "/eks/pages", stream: "node-busy" };
    const contribution = (i: number) => `contribution-${String(i).padStart(9, "0")}`; // 22 characters, as digests
    // Settings of the most bytes checkSettings takes: internal ranges added while they fit.
    const settings: IngestSettings = {
      bucketSeconds: 60,
      prefix: "calico-packet",
      prefixFormat: "calico-packet %t %k %n %p",
      internalCidrs: [],
      workloadInterfacePrefixes: ["cali", "eni", "vlan"],
      scanThreshold: 65_535,
      alertWindowMs: 1_440 * 60_000,
    };
    for (let i = 0; ; i++) {
      const more = {
        ...settings,
        internalCidrs: [...settings.internalCidrs, `2001:db8:${i.toString(16)}::/48`],
      };
      if (Buffer.byteLength(JSON.stringify(more)) > MAX_SETTINGS_BYTES) break;
      settings.internalCidrs = more.internalCidrs;
    }
    expect(Buffer.byteLength(JSON.stringify(settings))).toBeGreaterThan(MAX_SETTINGS_BYTES - 30);
    const long = (c: Claim): Claim => ({ ...c, source: "backfill", span: 1440, more: true, settings });
    let key = 0;
    const keys = (n: number) => Array.from({ length: n }, () => eventKey(`event-${key++}`));
    // All claims but the last name one event each; the last names the rest of the events and fills the page.
    for (let i = 0; i < ITEM_CLAIM_BUDGET - 1; i++) {
      expect(await coverage.addClaim(ref, M, i, long(claim(contribution(i), 0, keys(1))))).toBe(true);
    }
    const last = long(
      claim(contribution(ITEM_CLAIM_BUDGET), 0, keys(MINUTE_EVENT_BUDGET - ITEM_CLAIM_BUDGET + 1)),
    );
    expect(await coverage.addClaim(ref, M, ITEM_CLAIM_BUDGET - 1, last, true)).toBe(true);
    await coverage.markStored(ref, M, last.contribution);
    const [minute] = await coverage.read(ref, M, M);
    expect(minute?.claims.length).toBe(ITEM_CLAIM_BUDGET);
    expect(minute?.claims.reduce((n, c) => n + c.events.length, 0)).toBe(MINUTE_EVENT_BUDGET);
    expect([minute?.page, minute?.version]).toEqual([1, 0]);
  }, 60_000);
});
