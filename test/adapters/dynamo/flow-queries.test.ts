// Every flow access pattern against dynalite, checked against an in-memory oracle over the same records, with
// pages small enough to cross hour partitions (and midnight), and the Query requests of every page counted
// through the proxy: never more than two, never a Scan.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidCursorError } from "../../../functions/adapters/dynamo/cursor.ts";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import { InvalidInputError } from "../../../functions/adapters/dynamo/keys.ts";
import type { FlowQuery } from "../../../functions/core/ports.ts";
import type { Endpoint, FlowRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../../support/fault-proxy.ts";
import { CLUSTER, external, flow, pagesOf, pod, unresolved } from "./fixtures.ts";

let ts: TestStore;
let proxy: FaultProxy;
let store: DynamoFlowStore;
const written: FlowRecord[] = [];

const web1 = pod("192.168.1.10", "shop", "web-1", ["Deployment", "web"]);
const web2 = pod("192.168.1.11", "shop", "web-2", ["Deployment", "web"]);
const cache = pod("192.168.1.20", "shop", "cache-0", ["StatefulSet", "cache"]);
const db0 = pod("192.168.2.10", "data", "db-0", ["StatefulSet", "db"]);
const db1 = pod("192.168.2.11", "data", "db-1", ["StatefulSet", "db"]);
const debug = pod("192.168.3.5", "ops", "debug", null);
const node: Endpoint = {
  ip: "192.168.0.4",
  kind: "node",
  namespace: null,
  name: "node-a",
  workload: null,
  node: "node-a",
  resolved: true,
};
const lost = unresolved("192.168.99.9");
const scanner = external("203.0.113.7");
const v6 = pod("fd00::a", "data", "db-v6", ["StatefulSet", "db"]);

const PAIRS: [Endpoint, Endpoint, number][] = [
  [web1, db0, 5432],
  [web2, db1, 5432],
  [web1, cache, 6379],
  [cache, web2, 8080],
  [debug, db0, 5432],
  [node, web1, 10250],
  [lost, db1, 5432],
  [scanner, web2, 22],
  [web2, lost, 443],
  [db0, v6, 5432],
];

// Four hour partitions across midnight, with two empty hours before them inside the queried range.
const FIRST = Date.parse("2024-04-19T22:00:00.000Z");

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  store = new DynamoFlowStore({ client: ts.clientFor(proxy.endpoint), tableName: ts.tableName });
  for (let minute = 0; minute < 240; minute += 7) {
    const bucket = new Date(FIRST + minute * 60_000).toISOString();
    const batch = PAIRS.map(([src, dst, port], i) =>
      flow(bucket, src, dst, {
        dstPort: port,
        packets: i + 1,
        bytes: (i + 1) * 64,
        reporter: i % 2 ? "node-a" : "node-b",
      }),
    );
    await store.writeFlows(batch, `bucket-${minute}`);
    written.push(...batch);
  }
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

const sk = (f: FlowRecord) => `${f.bucket}#${f.id}`;
const ordered = (list: readonly FlowRecord[]) => [...list].sort((a, b) => (sk(a) < sk(b) ? -1 : 1));

/** Pages through a query; returns the items and the Query requests each page made. */
const pages = (query: FlowQuery) => pagesOf(store, proxy, query, 500);

const inRange = (since: string, until: string) => (f: FlowRecord) => f.bucket >= since && f.bucket <= until;
const SINCE = "2024-04-19T20:00:00.000Z";
const UNTIL = "2024-04-20T01:59:59.999Z";

const isWorkload = (e: Endpoint, ns: string, kind: string, name: string) =>
  e.namespace === ns && e.workload?.kind === kind && e.workload.name === name;

const cases: {
  name: string;
  query: Omit<FlowQuery, "cluster" | "since" | "until">;
  expect: (f: FlowRecord) => boolean;
}[] = [
  { name: "all flows in the range", query: {}, expect: () => true },
  { name: "internal only", query: { internal: true }, expect: (f) => f.internal },
  { name: "non-internal only", query: { internal: false }, expect: (f) => !f.internal },
  {
    name: "namespace as source or destination",
    query: { namespace: "shop" },
    expect: (f) => f.src.namespace === "shop" || f.dst.namespace === "shop",
  },
  {
    name: "namespace, internal only",
    query: { namespace: "data", internal: true },
    expect: (f) => f.internal && (f.src.namespace === "data" || f.dst.namespace === "data"),
  },
  {
    name: "workload by kind/name",
    query: { namespace: "shop", workload: "Deployment/web" },
    expect: (f) =>
      isWorkload(f.src, "shop", "Deployment", "web") || isWorkload(f.dst, "shop", "Deployment", "web"),
  },
  {
    name: "workload by name alone",
    query: { namespace: "data", workload: "db" },
    expect: (f) => f.src.workload?.name === "db" || f.dst.workload?.name === "db",
  },
  {
    name: "workload kind typed in lower case",
    query: { namespace: "shop", workload: "statefulset/cache" },
    expect: (f) =>
      isWorkload(f.src, "shop", "StatefulSet", "cache") || isWorkload(f.dst, "shop", "StatefulSet", "cache"),
  },
  {
    name: "pod",
    query: { namespace: "data", pod: "db-0" },
    expect: (f) => f.src.name === "db-0" || f.dst.name === "db-0",
  },
  {
    name: "bare pod without workload",
    query: { namespace: "ops", pod: "debug" },
    expect: (f) => f.src.name === "debug" || f.dst.name === "debug",
  },
  {
    name: "resolved IP",
    query: { ip: "192.168.1.10" },
    expect: (f) => f.src.ip === "192.168.1.10" || f.dst.ip === "192.168.1.10",
  },
  {
    name: "unresolved IP",
    query: { ip: "192.168.99.9" },
    expect: (f) => f.src.ip === "192.168.99.9" || f.dst.ip === "192.168.99.9",
  },
  { name: "external IP", query: { ip: "203.0.113.7" }, expect: (f) => f.src.ip === "203.0.113.7" },
  { name: "IPv6 typed in another form", query: { ip: "FD00:0::A" }, expect: (f) => f.dst.ip === "fd00::a" },
  {
    name: "IP and namespace",
    query: { ip: "192.168.1.11", namespace: "data" },
    expect: (f) =>
      (f.src.ip === "192.168.1.11" || f.dst.ip === "192.168.1.11") &&
      (f.src.namespace === "data" || f.dst.namespace === "data"),
  },
];

describe("queryFlows", () => {
  for (const c of cases) {
    for (const limit of [7, 1000]) {
      it(`${c.name} (pages of ${limit})`, async () => {
        const query: FlowQuery = { cluster: CLUSTER, since: SINCE, until: UNTIL, limit, ...c.query };
        const { items, queries } = await pages(query);
        const expected = ordered(written.filter((f) => inRange(SINCE, UNTIL)(f) && c.expect(f)));
        expect(expected.length).toBeGreaterThan(0);
        expect(items).toEqual(expected);
        expect(Math.max(...queries)).toBeLessThanOrEqual(2);
        expect(proxy.count({ operation: "Scan" })).toBe(0);
      });
    }
  }

  it("bounds a range inside partitions to the instant", async () => {
    const since = "2024-04-19T22:35:00.000Z";
    const until = "2024-04-20T00:06:00.000Z";
    const { items, queries } = await pages({ cluster: CLUSTER, since, until, limit: 9 });
    expect(items).toEqual(ordered(written.filter(inRange(since, until))));
    expect(items[0]?.bucket).toBe(since);
    expect(items.at(-1)?.bucket).toBe(until);
    // A page continues into the next hour partition with its second Query.
    expect(queries).toContain(2);
    expect(Math.max(...queries)).toBe(2);
  });

  it("selects the flows with a packet in the range, whatever the bucket they were counted in", async () => {
    const a = pod("192.168.40.1", "range", "web-1", ["Deployment", "web"]);
    const b = pod("192.168.40.2", "range-db", "db-0", ["StatefulSet", "db"]);
    // Counted in the bucket of 04:52 (60 s), its packets seen 04:52:40 to 04:52:50.
    const minute = flow("2024-04-18T04:52:00.000Z", a, b, {
      firstSeen: "2024-04-18T04:52:40.000Z",
      lastSeen: "2024-04-18T04:52:50.000Z",
    });
    await store.writeFlows([minute], "range-minute");
    const from = (since: string, until: string) => ({ cluster: CLUSTER, since, until });
    const inside = from("2024-04-18T04:52:30.000Z", "2024-04-18T05:00:00.000Z");
    for (const q of [inside, { ...inside, namespace: "range" }, { ...inside, ip: "192.168.40.2" }]) {
      expect((await store.queryFlows(q)).items.map((f) => f.id)).toEqual([minute.id]);
    }
    // Ranges that end before its first packet or start after its last leave it out.
    for (const q of [
      from("2024-04-18T04:00:00.000Z", "2024-04-18T04:52:05.000Z"),
      from("2024-04-18T04:52:51.000Z", "2024-04-18T05:00:00.000Z"),
      { ...from("2024-04-18T04:52:51.000Z", "2024-04-18T05:00:00.000Z"), namespace: "range" },
    ]) {
      expect((await store.queryFlows(q)).items).toEqual([]);
    }
    // A store told of hour buckets reads from the hour holding `since`.
    const hourly = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, bucketSeconds: 3600 });
    const hour = flow("2024-04-18T07:00:00.000Z", a, b, {
      firstSeen: "2024-04-18T07:40:00.000Z",
      lastSeen: "2024-04-18T07:50:00.000Z",
    });
    await hourly.writeFlows([hour], "range-hour");
    const items = (await hourly.queryFlows(from("2024-04-18T07:30:00.000Z", "2024-04-18T08:00:00.000Z")))
      .items;
    expect(items.map((f) => f.id)).toEqual([hour.id]);
  });

  it("reads a namespace's flows once each, even those inside the namespace (in both indexes)", async () => {
    const { items } = await pages({
      cluster: CLUSTER,
      since: SINCE,
      until: UNTIL,
      namespace: "shop",
      limit: 5,
    });
    const inside = items.filter((f) => f.src.namespace === "shop" && f.dst.namespace === "shop");
    expect(inside.length).toBeGreaterThan(0);
    expect(new Set(items.map(sk)).size).toBe(items.length);
  });

  it("answers an empty or reversed range without a cursor", async () => {
    expect(
      await store.queryFlows({
        cluster: CLUSTER,
        since: "2030-01-01T00:00:00Z",
        until: "2030-01-01T00:30:00Z",
      }),
    ).toEqual({
      items: [],
    });
    proxy.clearLog();
    expect(await store.queryFlows({ cluster: CLUSTER, since: UNTIL, until: SINCE })).toEqual({ items: [] });
    expect(proxy.count()).toBe(0);
    expect(await store.queryFlows({ cluster: "other", since: SINCE, until: SINCE })).toEqual({ items: [] });
  });

  it("returns 100 flows per page unless told otherwise", async () => {
    const page = await store.queryFlows({ cluster: CLUSTER, since: SINCE, until: UNTIL, namespace: "shop" });
    expect(page.items).toHaveLength(100);
    expect(page.cursor).toBeDefined();
  });

  it("refuses cursors it did not issue for this query", async () => {
    const base: FlowQuery = { cluster: CLUSTER, since: SINCE, until: UNTIL, limit: 3 };
    const first = await store.queryFlows({ ...base, namespace: "shop" });
    const cursor = first.cursor as string;
    await expect(store.queryFlows({ ...base, namespace: "data", cursor })).rejects.toThrow(/different query/);
    await expect(store.queryFlows({ ...base, namespace: "shop", cursor: "not a cursor!" })).rejects.toThrow(
      InvalidCursorError,
    );
    const forge = (state: object) => Buffer.from(JSON.stringify(state)).toString("base64url");
    const decoded = JSON.parse(Buffer.from(cursor, "base64url").toString());
    await expect(
      store.queryFlows({
        ...base,
        namespace: "shop",
        cursor: forge({ ...decoded, after: "2001-01-01T00:00:00.000Z#x" }),
      }),
    ).rejects.toThrow(/outside the query's range/);
    await expect(
      store.queryFlows({ ...base, namespace: "shop", cursor: forge({ ...decoded, done: "yes" }) }),
    ).rejects.toThrow(/malformed/);
    await expect(
      store.queryFlows({ ...base, namespace: "shop", cursor: forge({ ...decoded, v: 2 }) }),
    ).rejects.toThrow(/version/);
    await expect(store.queryFlows({ ...base, namespace: "shop", cursor: forge([1, 2]) })).rejects.toThrow(
      InvalidCursorError,
    );
    const timeCursor = (await store.queryFlows(base)).cursor as string;
    const t = JSON.parse(Buffer.from(timeCursor, "base64url").toString());
    for (const forged of [
      { ...t, hours: ["2024-04-21T05"] },
      { ...t, hours: ["2024-04-19T23", "2024-04-19T22"] },
      { ...t, next: "2024-04-21T05" },
      { ...t, hours: "2024-04-19T22" },
      { v: 1, q: t.q },
    ]) {
      await expect(store.queryFlows({ ...base, cursor: forge(forged) })).rejects.toThrow(/partition/);
    }
    // Another kind of question's cursor, and a position outside the hour the cursor reads.
    await expect(
      store.queryFlows({ ...base, cursor: forge({ ...t, days: ["2024-04-19"] }) }),
    ).rejects.toThrow(/question by time/);
    await expect(
      store.queryFlows({
        ...base,
        cursor: forge({ ...t, hours: ["2024-04-20T00"], after: "2024-04-19T23:00:00.000Z#x" }),
      }),
    ).rejects.toThrow(/position/);
  });

  it("refuses queries it cannot answer precisely", async () => {
    const base: FlowQuery = { cluster: CLUSTER, since: SINCE, until: UNTIL };
    await expect(store.queryFlows({ ...base, workload: "web" })).rejects.toThrow(InvalidInputError);
    await expect(store.queryFlows({ ...base, pod: "web-1" })).rejects.toThrow(/namespace/);
    await expect(store.queryFlows({ ...base, ip: "300.1.1.1" })).rejects.toThrow(/IP/);
    await expect(store.queryFlows({ ...base, limit: 0 })).rejects.toThrow(/limit/);
    await expect(store.queryFlows({ ...base, limit: 1001 })).rejects.toThrow(/limit/);
    await expect(store.queryFlows({ ...base, since: "yesterday" })).rejects.toThrow(/since/);
    await expect(store.queryFlows({ ...base, namespace: "shop", workload: "Deployment/" })).rejects.toThrow(
      /workload/,
    );
  });
});
