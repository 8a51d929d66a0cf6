// Questions by time read only the hours that hold flows (markers.ts): a month of a quiet cluster costs a few
// Queries, not one per hour. The markers behind that are written before their flows, once per store and hour,
// and never lose TTL.
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import type { FlowQuery } from "../../../functions/core/ports.ts";
import type { FlowRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, type LoggedRequest, startFaultProxy } from "../../support/fault-proxy.ts";
import { at, flow, pagesOf, pod } from "./fixtures.ts";

let ts: TestStore;
let proxy: FaultProxy;

const FAST = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const a = pod("192.168.50.1", "quiet", "a", ["Deployment", "a"]);
const b = pod("192.168.50.2", "quiet", "b", ["Deployment", "b"]);

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

const storeFor = (options: { retentionDays?: number } = {}) =>
  new DynamoFlowStore({
    client: ts.clientFor(proxy.endpoint),
    tableName: ts.tableName,
    retry: FAST,
    ...options,
  });

const pkOf = (r: LoggedRequest): string => {
  const body = r.body as {
    Key?: { pk?: { S?: string } };
    Item?: { pk?: { S?: string } };
    ExpressionAttributeValues?: Record<string, { S?: string }>;
  };
  return body.Key?.pk?.S ?? body.Item?.pk?.S ?? "";
};
/** The partitions the logged Queries read (the one value naming a flow partition or the markers). */
const queried = (log: readonly LoggedRequest[]): string[] =>
  log
    .filter((r) => r.operation === "Query")
    .map((r) => {
      const values = (r.body as { ExpressionAttributeValues: Record<string, { S?: string }> })
        .ExpressionAttributeValues;
      return Object.values(values).find((v) => v.S?.startsWith("FLOW") === true)?.S ?? "";
    });

const flowAt = (cluster: string, bucket: string, packets = 1): FlowRecord => ({
  ...flow(bucket, a, b, { packets }),
  cluster,
});

/** Every page of `query`, with the Query requests of each. */
const pages = (store: DynamoFlowStore, query: FlowQuery) => pagesOf(store, proxy, query);

describe("questions by time", () => {
  it("read a month of a quiet cluster in two pages of two Queries", async () => {
    const cluster = "quiet-month";
    const store = storeFor();
    const since = "2024-03-01T00:00:00.000Z";
    const until = new Date(Date.parse(since) + 30 * DAY - 1).toISOString();
    // Three denials in a month: day 2, day 11 (two flows, one hour) and the last hour.
    const flows = [
      flowAt(cluster, at(since, DAY + 5 * HOUR)),
      flowAt(cluster, at(since, 10 * DAY + 13 * HOUR), 2),
      { ...flowAt(cluster, at(since, 10 * DAY + 13 * HOUR + 60_000), 3), dstPort: 81, id: "other" },
      flowAt(cluster, at(since, 30 * DAY - HOUR)),
    ];
    await store.writeFlows(flows, "month");
    proxy.clearLog();
    const { items, queries } = await pages(store, { cluster, since, until, limit: 1000 });
    expect(items.map((f) => f.packets)).toEqual([1, 2, 3, 1]);
    // The markers' listing and the first hour, then the two other hours: 4 Queries, where 720 hours took 720.
    expect(queries).toEqual([2, 2]);
    const read = queried(proxy.log);
    expect(read[0]).toBe(`FLOWHOURS#${cluster}`);
    expect(read.slice(1)).toEqual(
      ["2024-03-02T05", "2024-03-11T13", "2024-03-30T23"].map((h) => `FLOW#${cluster}#${h}`),
    );
  });

  it("answer an empty month with one Query and no cursor", async () => {
    const store = storeFor();
    proxy.clearLog();
    expect(
      await store.queryFlows({
        cluster: "nothing-here",
        since: "2024-03-01T00:00:00.000Z",
        until: "2024-03-30T23:59:59.999Z",
      }),
    ).toEqual({ items: [] });
    expect(queried(proxy.log)).toEqual(["FLOWHOURS#nothing-here"]);
  });

  it("read a range of one or two hours directly, without the markers", async () => {
    const cluster = "short-range";
    const store = storeFor();
    await store.writeFlows([flowAt(cluster, "2024-03-05T10:59:00.000Z")], "short");
    proxy.clearLog();
    const { items } = await pages(store, {
      cluster,
      since: "2024-03-05T10:15:00.000Z",
      until: "2024-03-05T11:15:00.000Z",
    });
    expect(items).toHaveLength(1);
    expect(queried(proxy.log)).toEqual([`FLOW#${cluster}#2024-03-05T10`, `FLOW#${cluster}#2024-03-05T11`]);
  });

  it("page through many busy hours exactly, every page at most two Queries", async () => {
    const cluster = "busy-hours";
    const store = storeFor();
    const start = "2024-03-10T00:00:00.000Z";
    // 40 hours in a row, three flows in each but the empty 7th and 25th.
    const flows: FlowRecord[] = [];
    for (let h = 0; h < 40; h++) {
      if (h === 7 || h === 25) continue;
      for (let m = 0; m < 3; m++) {
        flows.push({ ...flowAt(cluster, at(start, h * HOUR + m * 60_000), h * 10 + m), id: `f${h}-${m}` });
      }
    }
    await store.writeFlows(flows, "busy");
    for (const limit of [1, 2, 5, 1000]) {
      const { items, queries } = await pages(store, {
        cluster,
        since: start,
        until: at(start, 40 * HOUR - 1),
        limit,
      });
      expect(items.map((f) => f.packets)).toEqual(flows.map((f) => f.packets));
      expect(Math.max(...queries)).toBeLessThanOrEqual(2);
      // The 38 hours and a listing per 12 of them, two Queries a page (the last page may have one).
      if (limit === 1000) expect(queries.reduce((s, q) => s + q, 0)).toBe(38 + 4);
    }
  });
});

describe("hour markers", () => {
  const markers = () => proxy.log.filter((r) => pkOf(r).startsWith("FLOWHOURS#"));

  it("are put once per store and hour, before the hour's flows", async () => {
    const cluster = "marks-once";
    const first = storeFor();
    proxy.clearLog();
    await first.writeFlows([flowAt(cluster, "2024-03-05T10:00:00.000Z")], "m-1");
    await first.writeFlows([flowAt(cluster, "2024-03-05T10:30:00.000Z")], "m-2");
    expect(markers().map((r) => r.operation)).toEqual(["PutItem"]);
    expect(proxy.log.map((r) => (pkOf(r).startsWith("FLOWHOURS#") ? "marker" : "flow"))).toEqual([
      "marker",
      "flow",
      "flow",
    ]);
    // Another store (another Lambda instance) puts it again: its condition fails, and that is success.
    proxy.clearLog();
    expect((await storeFor().writeFlows([flowAt(cluster, "2024-03-05T10:45:00.000Z")], "m-3")).applied).toBe(
      1,
    );
    expect(markers().map((r) => r.operation)).toEqual(["PutItem"]);
  });

  it("never lose TTL to a store that keeps flows for less time", async () => {
    const cluster = "marks-ttl";
    const bucket = "2024-03-05T10:00:00.000Z";
    const hourEnd = Date.parse("2024-03-05T11:00:00.000Z") / 1000;
    const ttl = async () =>
      (
        await ts.client.send(
          new GetItemCommand({
            TableName: ts.tableName,
            Key: { pk: { S: `FLOWHOURS#${cluster}` }, sk: { S: "2024-03-05T10" } },
          }),
        )
      ).Item?.expiresAt?.N;
    // Written far in the past, the TTLs are well inside the four years the store allows before now.
    const now = () => Date.parse("2024-03-06T00:00:00.000Z");
    const longer = new DynamoFlowStore({
      client: ts.client,
      tableName: ts.tableName,
      retentionDays: 60,
      now,
    });
    const shorter = new DynamoFlowStore({
      client: ts.client,
      tableName: ts.tableName,
      retentionDays: 7,
      now,
    });
    await shorter.writeFlows([flowAt(cluster, bucket)], "t-1");
    expect(Number(await ttl())).toBe(hourEnd + 7 * 86_400);
    await longer.writeFlows([flowAt(cluster, bucket)], "t-2");
    expect(Number(await ttl())).toBe(hourEnd + 60 * 86_400);
    await storeFor({ retentionDays: 7 }).writeFlows([flowAt(cluster, bucket)], "t-3");
    expect(Number(await ttl())).toBe(hourEnd + 60 * 86_400);
  });

  it("that cannot be put leave the flows unwritten, and the payload failed", async () => {
    const cluster = "marks-fail";
    const store = storeFor();
    proxy.clearLog();
    proxy.setPlan({ error: 1, eligible: (op) => op === "PutItem" });
    try {
      await expect(store.writeFlows([flowAt(cluster, "2024-03-05T10:00:00.000Z")], "f-1")).rejects.toThrow(
        /PutItem failed after 2 tries/,
      );
    } finally {
      proxy.setPlan({});
    }
    expect(proxy.count({ operation: "UpdateItem" })).toBe(0);
    // The retry marks the hour, then stores the flow.
    expect((await store.writeFlows([flowAt(cluster, "2024-03-05T10:00:00.000Z")], "f-1")).applied).toBe(1);
    const { items } = await pages(store, {
      cluster,
      since: "2024-03-05T00:00:00.000Z",
      until: "2024-03-05T23:59:59.999Z",
    });
    expect(items).toHaveLength(1);
  });
});
