// Holder history against dynalite: who held an IP at a time, across IP reuse, with ended holders kept ended.
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoHolderHistory } from "../../../functions/adapters/dynamo/history.ts";
import { tableStores } from "../../../functions/adapters/dynamo/stores.ts";
import type { Holder } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { CLUSTER, flow, pod } from "./fixtures.ts";

let ts: TestStore;
let history: DynamoHolderHistory;
const NOW = Date.parse("2024-05-01T00:00:00.000Z");
const T = Date.parse("2024-04-19T04:00:00.000Z");
const MIN = 60_000;

beforeAll(async () => {
  ts = await startTestStore();
  history = new DynamoHolderHistory({ client: ts.client, tableName: ts.tableName, now: () => NOW });
});

afterAll(async () => {
  await ts.close();
});

function holder(
  name: string,
  validFrom: number,
  validTo: number | null,
  extra: Partial<Holder> = {},
): Holder {
  return {
    kind: "pod",
    namespace: "shop",
    name,
    workload: { kind: "Deployment", name: "web" },
    node: "node-a",
    uid: `uid-${name}`,
    validFrom,
    validTo,
    ...extra,
  };
}

describe("DynamoHolderHistory", () => {
  it("answers who may have held an IP at a time, most recent first, across reuse", async () => {
    const ip = "192.168.1.10";
    const a = holder("web-a", T, T + 10 * MIN);
    const b = holder("web-b", T + 12 * MIN, T + 30 * MIN, { labels: { team: "shop" } });
    const c = holder("web-c", T + 31 * MIN, null, { workload: null, namespace: "ops" });
    await history.remember(CLUSTER, [
      { ip, holder: c },
      { ip, holder: a },
      { ip, holder: b },
      { ip: "192.168.1.11", holder: holder("other", T - MIN, null) },
    ]);
    expect(await history.holdersOf(CLUSTER, ip, T - 1)).toEqual([]);
    expect(await history.holdersOf(CLUSTER, ip, T)).toEqual([a]);
    expect(await history.holdersOf(CLUSTER, ip, T + 11 * MIN)).toEqual([a]);
    expect(await history.holdersOf(CLUSTER, ip, T + 12 * MIN)).toEqual([b, a]);
    expect(await history.holdersOf(CLUSTER, ip, T + 40 * MIN)).toEqual([c, b, a]);
    expect(await history.holdersOf("another-cluster", ip, T + 40 * MIN)).toEqual([]);
  });

  it("records an end once seen and never forgets it on a later sighting", async () => {
    const ip = "192.168.2.20";
    const alive = holder("db-0", T, null, { kind: "pod" });
    await history.remember(CLUSTER, [{ ip, holder: alive }]);
    await history.remember(CLUSTER, [{ ip, holder: alive }]);
    expect(await history.holdersOf(CLUSTER, ip, T + MIN)).toEqual([alive]);
    const ended = { ...alive, validTo: T + 5 * MIN };
    await history.remember(CLUSTER, [{ ip, holder: ended }]);
    // A stale list still showing it alive, and a call naming it both ways.
    await history.remember(CLUSTER, [{ ip, holder: alive }]);
    await history.remember(CLUSTER, [
      { ip, holder: ended },
      { ip, holder: alive },
    ]);
    expect(await history.holdersOf(CLUSTER, ip, T + MIN)).toEqual([ended]);
  });

  it("keeps node holders (no uid) apart by name, and returns at most maxHolders", async () => {
    const ip = "192.168.0.4";
    const few = new DynamoHolderHistory({ client: ts.client, tableName: ts.tableName, maxHolders: 2 });
    const nodes = [0, 1, 2].map((i) =>
      holder(`node-${i}`, T + i * MIN, T + i * MIN + 30_000, {
        kind: "node",
        namespace: null,
        workload: null,
        uid: null,
      }),
    );
    await few.remember(
      CLUSTER,
      nodes.map((h) => ({ ip, holder: h })),
    );
    expect(await few.holdersOf(CLUSTER, ip, T + 10 * MIN)).toEqual([nodes[2], nodes[1]]);
  });

  it("reads back to the earliest time asked, page by page, and a page's worth before it", async () => {
    const ip = "192.168.0.5";
    const few = new DynamoHolderHistory({ client: ts.client, tableName: ts.tableName, maxHolders: 2 });
    const pods = Array.from({ length: 9 }, (_, i) => holder(`job-${i}`, T + i * MIN, T + i * MIN + 50_000));
    await few.remember(
      CLUSTER,
      pods.map((h) => ({ ip, holder: h })),
    );
    const late = T + 8 * MIN + 10_000;
    expect(await few.holdersOf(CLUSTER, ip, late)).toEqual([pods[8], pods[7]]);
    // Lines of T+2.5 min to T+8 min: every holder created after T+2.5 min, then the page that reaches before it.
    expect(await few.holdersOf(CLUSTER, ip, late, T + 2 * MIN + 30_000)).toEqual(
      [8, 7, 6, 5, 4, 3, 2, 1].map((i) => pods[i]),
    );
    expect(await few.holdersOf(CLUSTER, ip, late, T - MIN)).toEqual([...pods].reverse());
  });

  it("expires holders a retention after they ended, or after last seen alive", async () => {
    const raw = DynamoDBDocumentClient.from(ts.client);
    const ip = "192.168.3.30";
    await history.remember(CLUSTER, [
      { ip, holder: holder("gone", T, T + MIN) },
      { ip, holder: holder("here", T + 2 * MIN, null) },
    ]);
    const get = async (sk: string) =>
      (await raw.send(new GetCommand({ TableName: ts.tableName, Key: { pk: `IP#${CLUSTER}#${ip}`, sk } })))
        .Item;
    expect((await get(`${String(T).padStart(15, "0")}#uid-gone`))?.expiresAt).toBe(
      (T + MIN) / 1000 + 30 * 86_400,
    );
    expect((await get(`${String(T + 2 * MIN).padStart(15, "0")}#uid-here`))?.expiresAt).toBe(
      NOW / 1000 + 30 * 86_400,
    );
  });

  it("refuses holders it could not find again", async () => {
    await expect(
      history.remember(CLUSTER, [{ ip: "192.168.4.1", holder: holder("x", -5, null) }]),
    ).rejects.toThrow(/validFrom/);
    await expect(
      history.remember(CLUSTER, [{ ip: "192.168.4.1", holder: holder("x", T, T - 1) }]),
    ).rejects.toThrow(/validTo/);
    await expect(history.remember("a#b", [])).rejects.toThrow(/cluster/);
  });
});

describe("tableStores", () => {
  it("gives the holder history the table's retention, as the flows have it", async () => {
    const raw = DynamoDBDocumentClient.from(ts.client);
    // The stores' clock: a TTL is never written more than four years before it (keys.ts, expiresAt).
    const stores = tableStores({
      client: ts.client,
      tableName: ts.tableName,
      retentionDays: 90,
      now: () => NOW,
    });
    const ip = "192.168.3.31";
    await stores.history.remember(CLUSTER, [{ ip, holder: holder("kept", T, T + MIN) }]);
    const item = await raw.send(
      new GetCommand({
        TableName: ts.tableName,
        Key: { pk: `IP#${CLUSTER}#${ip}`, sk: `${String(T).padStart(15, "0")}#uid-kept` },
      }),
    );
    expect(item.Item?.expiresAt).toBe((T + MIN) / 1000 + 90 * 86_400);
    const bucket = "2024-04-19T04:00:00.000Z";
    const f = flow(bucket, pod("192.168.3.32", "t", "a"), pod("192.168.3.33", "t", "b"));
    await stores.store.writeFlows([f], "retention-check");
    const stored = await raw.send(
      new GetCommand({
        TableName: ts.tableName,
        Key: { pk: `FLOW#${CLUSTER}#2024-04-19T04`, sk: `${bucket}#${f.id}` },
      }),
    );
    expect(stored.Item?.expiresAt).toBe(Date.parse(bucket) / 1000 + 90 * 86_400);
  });
});
