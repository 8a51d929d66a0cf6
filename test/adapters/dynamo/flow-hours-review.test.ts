// Review of the hour markers (markers.ts) and the paging of questions by time over them (flow-query.ts,
// timePage): paged answers against an in-memory oracle, Queries per page, cursors, and the markers' writes.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import type { FlowQuery } from "../../../functions/core/ports.ts";
import type { FlowRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../../support/fault-proxy.ts";
import { flow, idOf, pagesOf, pod } from "./fixtures.ts";

let ts: TestStore;
let proxy: FaultProxy;

const FAST = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const HOUR = 3_600_000;
const BASE = Date.parse("2024-05-01T00:00:00.000Z");
const a = pod("192.168.60.1", "review", "a", ["Deployment", "a"]);
const b = pod("192.168.60.2", "review", "b", ["Deployment", "b"]);

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
});

afterAll(async () => {
  await proxy.close();
  await ts.close();
});

const storeFor = (options: Partial<ConstructorParameters<typeof DynamoFlowStore>[0]> = {}) =>
  new DynamoFlowStore({
    client: ts.clientFor(proxy.endpoint),
    tableName: ts.tableName,
    retry: FAST,
    ...options,
  });

const iso = (ms: number) => new Date(ms).toISOString();
const sk = (f: FlowRecord) => `${f.bucket}#${f.id}`;
const ordered = (list: readonly FlowRecord[]) => [...list].sort((x, y) => (sk(x) < sk(y) ? -1 : 1));
const decode = (cursor: string) => JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));

/** A flow of `cluster` in the minute bucket at `ms`, seen from `first` to `last` ms into it. */
function flowIn(cluster: string, ms: number, n: number, first = 0, last = 10_000): FlowRecord {
  const bucket = iso(ms - (ms % 60_000));
  const start = Date.parse(bucket);
  return {
    ...flow(bucket, a, b, { packets: n + 1, dstPort: 1000 + n }),
    id: idOf(`${cluster}|${bucket}|${n}`),
    cluster,
    firstSeen: iso(start + first),
    lastSeen: iso(start + last),
  };
}

/** Every page of `query`: the items, the Query requests of each page, the cursors. */
const pages = (store: DynamoFlowStore, query: FlowQuery, most = 2_000) => pagesOf(store, proxy, query, most);

const oracle = (flows: readonly FlowRecord[], since: string, until: string) =>
  ordered(flows.filter((f) => f.lastSeen >= since && f.firstSeen <= until));

describe("questions by time against an oracle", () => {
  let run = 0;

  it("page every sparse set of hours exactly, each flow once, at most two Queries a page", async () => {
    const store = storeFor();
    // A reader told of hour buckets reads from the hour holding `since`: another first hour, the same answer.
    const hourly = storeFor({ bucketSeconds: 3600 });
    // An instant near an hour boundary more often than not: the edges are where partitions and markers meet.
    const instant = fc.oneof(
      fc.integer({ min: -3, max: 40 }).map((h) => BASE + h * HOUR),
      fc.integer({ min: -3, max: 40 }).map((h) => BASE + h * HOUR - 1),
      fc.integer({ min: -3, max: 40 }).map((h) => BASE + h * HOUR + 10_000),
      fc.integer({ min: -3 * HOUR, max: 40 * HOUR }).map((ms) => BASE + ms),
    );
    const flowSpec = fc.record({
      hour: fc.integer({ min: 0, max: 36 }),
      minute: fc.constantFrom(0, 0, 1, 30, 59, 59),
      first: fc.constantFrom(0, 5_000, 59_999),
      span: fc.constantFrom(0, 1, 10_000),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(flowSpec, { maxLength: 40 }),
        fc.array(fc.tuple(instant, instant, fc.constantFrom(1, 2, 3, 5, 13, 1000), fc.boolean()), {
          minLength: 1,
          maxLength: 3,
        }),
        async (specs, questions) => {
          const cluster = `prop-${run++}`;
          const flows = specs.map((s, n) =>
            flowIn(
              cluster,
              BASE + s.hour * HOUR + s.minute * 60_000,
              n,
              s.first,
              Math.min(59_999, s.first + s.span),
            ),
          );
          // Flows of one bucket with one id would merge: the ids differ per spec, so each is its own.
          if (flows.length > 0) await store.writeFlows(flows, `prop-${run}`);
          for (const [x, y, limit, byHour] of questions) {
            const since = iso(Math.min(x, y));
            const until = iso(Math.max(x, y));
            const reader = byHour ? hourly : store;
            const { items, queries, cursors } = await pages(reader, { cluster, since, until, limit });
            const want = oracle(flows, since, until);
            expect(items.map(sk)).toEqual(want.map(sk));
            expect(items.map((f) => f.packets)).toEqual(want.map((f) => f.packets));
            expect(Math.max(...queries)).toBeLessThanOrEqual(2);
            for (const c of cursors) expect((decode(c).hours ?? []).length).toBeLessThanOrEqual(12);
          }
        },
      ),
      { seed: 20_261_206, numRuns: 60 },
    );
  });
});

/** The partition a logged Query reads, and the hour-shaped values of its key condition (a listing's bounds). */
function queryShape(body: Record<string, unknown>) {
  const values = Object.values((body.ExpressionAttributeValues ?? {}) as Record<string, { S?: string }>)
    .map((v) => v.S)
    .filter((s): s is string => s !== undefined);
  const start = (body.ExclusiveStartKey as { pk?: { S?: string } } | undefined)?.pk?.S;
  return {
    partition: values.find((s) => s.startsWith("FLOW")) ?? "",
    hours: values.filter((s) => /^\d{4}-\d{2}-\d{2}T\d{2}$/.test(s)),
    ...(start === undefined ? {} : { start }),
  };
}

describe("the listing of markers", () => {
  it("ends with the range when its Limit is reached exactly at the range's last hour", async () => {
    const cluster = "listing-edge";
    const store = storeFor();
    // Twelve marked hours inside the range, the twelfth its last hour, and marked hours after it.
    const hours = [0, 1, 2, 4, 5, 6, 8, 9, 11, 12, 13, 15, 16, 18];
    await store.writeFlows(
      hours.map((h, n) => flowIn(cluster, BASE + h * HOUR + 60_000, n)),
      "listing-edge",
    );
    const since = iso(BASE);
    const until = iso(BASE + 15 * HOUR + 59 * 60_000);
    proxy.clearLog();
    const { items, queries } = await pages(store, { cluster, since, until, limit: 1000 });
    expect(items).toHaveLength(12);
    // The listing and the twelve hours: seven pages, no page after the last hour.
    expect(queries).toEqual([2, 2, 2, 2, 2, 2, 1]);
    const listings = proxy.log.filter(
      (r) => r.operation === "Query" && queryShape(r.body).partition.startsWith("FLOWHOURS#"),
    );
    expect(listings).toHaveLength(1);
  });
});

describe("forged cursors", () => {
  it("never make the store read outside the range, repeat an item, or page forever", async () => {
    const cluster = "forged";
    const store = storeFor();
    const flows = [13, 15, 16, 19, 22, 23, 24, 25, 28, 30, 31, 33, 36, 37].flatMap((h, n) => [
      flowIn(cluster, BASE + h * HOUR + 5 * 60_000, 2 * n),
      flowIn(cluster, BASE + h * HOUR + 40 * 60_000, 2 * n + 1),
    ]);
    await store.writeFlows(flows, "forged");
    // Across midnight, so that strings naming no hour ("2024-05-01T99") sort inside the range.
    const since = iso(BASE + 15 * HOUR + 30 * 60_000);
    const until = iso(BASE + 36 * HOUR + 10 * 60_000);
    const query: FlowQuery = { cluster, since, until, limit: 2 };
    const q = decode((await store.queryFlows(query)).cursor as string).q as string;
    const want = oracle(flows, since, until).map(sk);
    const hourAt = (h: number) => iso(BASE + h * HOUR).slice(0, 13);
    // Strings of the cursor's pattern that name no hour (refused); across midnight they sort inside the range.
    const noHour = fc.constantFrom("2024-05-01T24", "2024-05-01T99", "2024-05-01T98");
    const anyHour = fc.oneof(fc.integer({ min: 10, max: 40 }).map(hourAt), noHour);
    const position = (hour: string, minute: number) =>
      `${hour}:${String(minute).padStart(2, "0")}:00.000Z#${"x".repeat(22)}`;
    // Mostly cursors the store could have issued (sorted hours, a listing to continue after them, a position
    // in the first of them), with hours the pattern allows but that name none, and every part now and then
    // anything at all.
    const forgedState = fc
      .record({
        hours: fc.uniqueArray(
          fc.oneof(
            { arbitrary: fc.integer({ min: 15, max: 36 }).map(hourAt), weight: 6 },
            { arbitrary: noHour, weight: 1 },
          ),
          { maxLength: 13 },
        ),
        shuffle: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
        next: fc.oneof(
          { arbitrary: fc.constant(undefined), weight: 2 },
          { arbitrary: fc.integer({ min: 1, max: 8 }), weight: 3 },
          { arbitrary: anyHour, weight: 1 },
        ),
        after: fc.oneof(
          { arbitrary: fc.constant(undefined), weight: 2 },
          { arbitrary: fc.integer({ min: 0, max: 59 }), weight: 3 },
          { arbitrary: fc.constantFrom(...flows.map(sk)), weight: 1 },
        ),
      })
      .map(({ hours, shuffle, next, after }) => {
        const listed = shuffle ? hours : [...hours].sort();
        const lastMs = Date.parse(`${listed.at(-1)}:00:00.000Z`);
        const lastIndex = Number.isNaN(lastMs) ? 15 : (lastMs - BASE) / HOUR;
        return {
          ...(listed.length === 0 ? {} : { hours: listed }),
          ...(next === undefined
            ? {}
            : {
                next: typeof next === "number" ? hourAt(Math.min(36, lastIndex + next)) : next,
              }),
          ...(after === undefined
            ? {}
            : { after: typeof after === "number" ? position(listed[0] ?? hourAt(20), after) : after }),
        };
      });
    const forge = (state: object) => Buffer.from(JSON.stringify({ v: 1, q, ...state })).toString("base64url");
    let refused = 0;
    const firstHour = hourAt(15);
    const lastHour = hourAt(36);
    await fc.assert(
      fc.asyncProperty(forgedState, async (state) => {
        proxy.clearLog();
        let result: Awaited<ReturnType<typeof pages>>;
        try {
          const first = await store.queryFlows({ ...query, cursor: forge(state) });
          const rest =
            first.cursor === undefined
              ? { items: [], queries: [], cursors: [] }
              : await pages(store, { ...query, cursor: first.cursor }, 100);
          result = { ...rest, items: [...first.items, ...rest.items] };
        } catch (error) {
          expect((error as Error).name).toBe("InvalidCursorError");
          refused++;
          return;
        }
        for (const r of proxy.log.filter((l) => l.operation === "Query")) {
          const shape = queryShape(r.body);
          if (shape.partition === `FLOWHOURS#${cluster}`) {
            for (const h of shape.hours) expect(h >= firstHour && h <= lastHour, h).toBe(true);
          } else {
            const h = shape.partition.slice(`FLOW#${cluster}#`.length);
            expect(shape.partition.startsWith(`FLOW#${cluster}#`)).toBe(true);
            expect(h >= firstHour && h <= lastHour, h).toBe(true);
          }
          if (shape.start !== undefined) expect(shape.start).toBe(shape.partition);
        }
        const got = result.items.map(sk);
        expect(new Set(got).size).toBe(got.length);
        for (const k of got) expect(want).toContain(k);
      }),
      { seed: 7, numRuns: 150 },
    );
    // Many forged cursors are accepted and read (the property is not vacuous), the others refused (every one
    // naming no hour among them).
    expect(refused).toBeGreaterThan(0);
    expect(150 - refused).toBeGreaterThan(20);
  });
});

const isMarkerPut = (op: string, body: Record<string, unknown>, cluster: string) =>
  op === "PutItem" && (body.Item as { pk?: { S?: string } } | undefined)?.pk?.S === `FLOWHOURS#${cluster}`;
const flowWrites = (cluster: string) =>
  proxy.log.filter(
    (r) =>
      r.operation === "UpdateItem" &&
      ((r.body.Key as { pk?: { S?: string } }).pk?.S ?? "").startsWith(`FLOW#${cluster}#`),
  ).length;
const waitFor = async (done: () => boolean) => {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(done()).toBe(true);
};
/** Three hours around the flows' hour: long enough to be answered from the markers. */
const threeHours = (cluster: string, hour: number): FlowQuery => ({
  cluster,
  since: iso(BASE + (hour - 1) * HOUR),
  until: iso(BASE + (hour + 2) * HOUR - 1),
  limit: 1000,
});

describe("hour markers and the writes they come before", () => {
  it("leave the flows unwritten when the write is aborted while its marker is being put", async () => {
    const cluster = "aborted";
    const store = storeFor();
    const flows = [0, 1, 2].map((n) => flowIn(cluster, BASE + 50 * HOUR + n * 60_000, n));
    proxy.clearLog();
    proxy.hold((op, body) => isMarkerPut(op, body, cluster));
    const controller = new AbortController();
    const writing = store.writeFlows(flows, "aborted", { signal: controller.signal });
    const outcome = writing.then(
      () => "written",
      (error: unknown) => error,
    );
    await waitFor(() => proxy.held === 1);
    const reason = new Error("out of time");
    controller.abort(reason);
    await proxy.release();
    expect(await outcome).toBe(reason);
    expect(flowWrites(cluster)).toBe(0);
    // The retry stores them, and questions by time find them.
    expect((await store.writeFlows(flows, "aborted")).applied).toBe(3);
    expect((await pages(store, threeHours(cluster, 50))).items.map(sk)).toEqual(ordered(flows).map(sk));
  });

  it("let another store write the same new hour while one store's marker is still on its way", async () => {
    const cluster = "racing";
    const slow = storeFor();
    const fast = storeFor();
    proxy.clearLog();
    proxy.hold((op, body) => isMarkerPut(op, body, cluster) && proxy.count({ operation: "PutItem" }) <= 1);
    const first = slow.writeFlows([flowIn(cluster, BASE + 60 * HOUR + 60_000, 0)], "slow");
    await waitFor(() => proxy.held === 1);
    // The slow store has put nothing and written no flow; the fast one marks the hour itself.
    await fast.writeFlows([flowIn(cluster, BASE + 60 * HOUR + 120_000, 1)], "fast");
    expect(flowWrites(cluster)).toBe(1);
    expect((await pages(fast, threeHours(cluster, 60))).items).toHaveLength(1);
    await proxy.release();
    await first;
    expect((await pages(fast, threeHours(cluster, 60))).items.map((f) => f.packets)).toEqual([1, 2]);
  });

  it("keep two clusters, one's name a prefix of the other's, apart", async () => {
    const store = storeFor();
    await store.writeFlows(
      [flowIn("prefix", BASE + 70 * HOUR, 0), flowIn("prefix-b", BASE + 72 * HOUR, 1)],
      "prefix",
    );
    const range = { since: iso(BASE + 69 * HOUR), until: iso(BASE + 74 * HOUR), limit: 1000 };
    expect((await pages(store, { cluster: "prefix", ...range })).items.map((f) => f.packets)).toEqual([1]);
    expect((await pages(store, { cluster: "prefix-b", ...range })).items.map((f) => f.packets)).toEqual([2]);
  });
});

describe("markers of old hours", () => {
  // The review found every delivery of an hour older than four years and the retention (logs kept for years,
  // replayed) putting its marker again: expiresAt's four-year floor moves with the clock, and the store compared
  // it with the TTL it remembered. It now remembers the TTL asked for, before the floor.
  it("puts the marker of an hour older than four years once per store, however many deliveries bring its flows", async () => {
    const cluster = "ancient-hour";
    let clock = Date.parse("2024-05-01T00:00:00.000Z");
    const store = storeFor({ now: () => (clock += 1_000) });
    const hour = Date.parse("2019-01-01T10:00:00.000Z");
    proxy.clearLog();
    for (let n = 0; n < 3; n++)
      await store.writeFlows([flowIn(cluster, hour + n * 60_000, n)], `ancient-${n}`);
    expect(proxy.log.filter((r) => isMarkerPut(r.operation, r.body, cluster))).toHaveLength(1);
  });
});
