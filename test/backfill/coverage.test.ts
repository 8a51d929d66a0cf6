// Coverage keeps every CloudWatch Logs event counted exactly once, whichever of live ingest, redrive and
// (overlapping, interrupted) backfills see it, in whatever order — against dynalite, with the real flow store
// and coverage adapter. Counts are compared per flow with what the pipeline makes of each event once.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prng } from "../../bench/corpus.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { DynamoMemoStore } from "../../functions/adapters/dynamo/memos.ts";
import { AlertDeliveryError, type AlertPublisher } from "../../functions/core/alert-delivery.ts";
import type { MemoStore } from "../../functions/core/attribution-memo.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import {
  type BackfillMinuteResult,
  backfillMinute,
  type CoverageOptions,
  type CoverageStore,
  type DeliveryResult,
  ITEM_CLAIM_BUDGET,
  ingestDelivery,
  MINUTE_EVENT_BUDGET,
  MINUTE_MS,
  minuteOf,
  PENDING_GRACE_MS,
  type StreamRef,
} from "../../functions/core/coverage.ts";
import type { IngestDeps, IngestProgress } from "../../functions/core/ingest.ts";
import type { FlowStore, FlowWriteResult } from "../../functions/core/ports.ts";
import type { FlowRecord, IpDirectory } from "../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import {
  type CwEvent,
  calicoLine,
  DESTINATIONS,
  expectedByAddress,
  expectedPackets,
  GROUP,
  ingestDeps,
  PORTS,
  payloadOf,
  SOURCES,
  storedByAddress,
  storedPackets,
  T0,
  total,
} from "./fixtures.ts";

let ts: TestStore;
let flows: DynamoFlowStore;
let coverage: DynamoCoverageStore;
let clusters = 0;
/** How far the flow store's wall clock runs ahead: moved on by lambdaRetryDelay. */
let clockLag = 0;
/**
 * Lambda retries a failed payload a minute later or more: by then the hand-out lease of the failed run's alerts has
 * run out (pendingRedeliveryAfterMs), and its retry takes it.
 */
const lambdaRetryDelay = () => {
  clockLag += 61_000;
};

beforeAll(async () => {
  ts = await startTestStore();
  flows = new DynamoFlowStore({
    client: ts.client,
    tableName: ts.tableName,
    now: () => Date.now() + clockLag,
  });
  coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
});
afterAll(async () => {
  await ts?.close();
});

/** The flow store with a fault: the next write of a chosen contribution stores half its flows, then fails. */
class FlakyStore implements FlowStore {
  readonly inner: FlowStore;
  #failNext: ((contribution: string) => boolean) | undefined;
  failures = 0;

  constructor(inner: FlowStore) {
    this.inner = inner;
  }

  failNextWrite(which: (contribution: string) => boolean = () => true): void {
    this.#failNext = which;
  }

  /** Drops a planned fault that found nothing to write. */
  clearFault(): void {
    this.#failNext = undefined;
  }

  async writeFlows(records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> {
    if (this.#failNext?.(contribution)) {
      this.#failNext = undefined;
      this.failures++;
      await this.inner.writeFlows(records.slice(0, Math.ceil(records.length / 2)), contribution);
      throw new Error("injected: connection lost after a partial write");
    }
    return this.inner.writeFlows(records, contribution);
  }
  applyAlerts: FlowStore["applyAlerts"] = (c, id, o) => this.inner.applyAlerts(c, id, o);
  markAlertSent: FlowStore["markAlertSent"] = (a, how) => this.inner.markAlertSent(a, how);
  queryFlows: FlowStore["queryFlows"] = (q) => this.inner.queryFlows(q);
  queryAlerts: FlowStore["queryAlerts"] = (q) => this.inner.queryAlerts(q);
}

/** The flow store of a process killed in its first write: half the flows stored, then nothing more, ever. */
class KilledStore extends FlakyStore {
  readonly #killed = Promise.withResolvers<void>();
  /** Settles once the write has stored its half. */
  readonly killed = this.#killed.promise;

  override async writeFlows(records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> {
    await this.inner.writeFlows(records.slice(0, Math.ceil(records.length / 2)), contribution);
    this.#killed.resolve();
    return new Promise<never>(() => {});
  }
}

/** An SNS stand-in that fails every publish while `down`, and lists what it published. */
function flakySink(): { sink: AlertPublisher; published: string[]; down: boolean } {
  const state = {
    published: [] as string[],
    down: true,
    sink: {
      publishAlert: async (alert) => {
        if (state.down) throw new Error("injected: SNS unavailable");
        state.published.push(alert.id);
      },
      publishSummary: async () => undefined,
      publishPanic: async () => undefined,
    } as AlertPublisher,
  };
  return state;
}

let sequence = 0;

/** `perMinute` events per stream and minute, in timestamp order, ids shaped like CloudWatch's. */
function makeEvents(streams: readonly string[], minutes: number, perMinute: number, seed: number): CwEvent[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const out: CwEvent[] = [];
  for (const stream of streams) {
    for (let m = 0; m < minutes; m++) {
      const stamps = Array.from(
        { length: perMinute },
        () => T0 + m * MINUTE_MS + Math.floor(rnd() * MINUTE_MS),
      ).sort((a, b) => a - b);
      for (const at of stamps) {
        sequence++;
        out.push({
          id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
          timestamp: at,
          stream,
          message: calicoLine(
            at,
            stream,
            pick(SOURCES),
            pick(DESTINATIONS),
            pick(PORTS),
            40 + Math.floor(rnd() * 1400),
          ),
        });
      }
    }
  }
  return out;
}

/** Consecutive batches of one stream's events, as a subscription delivers them (they may straddle minutes). */
function batches(events: readonly CwEvent[], stream: string, sizes: readonly number[]): CwEvent[][] {
  const mine = events.filter((e) => e.stream === stream);
  const out: CwEvent[][] = [];
  let i = 0;
  for (let k = 0; i < mine.length; k++) {
    const size = Math.max(1, sizes[k % sizes.length] ?? 3);
    out.push(mine.slice(i, i + size));
    i += size;
  }
  return out;
}

interface Run {
  cluster: string;
  store: FlakyStore;
  events: CwEvent[];
  expected: Map<string, number>;
  live(
    batch: readonly CwEvent[],
    source?: "live" | "redrive",
    options?: CoverageOptions,
  ): Promise<DeliveryResult>;
  /** Backfills [fromMinute, toMinute) of a stream, minute by minute, as the CLI does. */
  backfill(
    stream: string,
    fromMinute: number,
    toMinute: number,
    options?: CoverageOptions,
  ): Promise<BackfillMinuteResult[]>;
  stored(): Promise<Map<string, number>>;
}

async function run(events: CwEvent[]): Promise<Run> {
  clusters++;
  const cluster = `cov${clusters}`;
  const store = new FlakyStore(flows);
  const deps = ingestDeps(store, cluster);
  return {
    cluster,
    store,
    events,
    expected: await expectedPackets(events, cluster),
    live: (batch, source = "live", options = {}) =>
      ingestDelivery(payloadOf(batch[0]?.stream ?? "none", batch), deps, coverage, source, options),
    async backfill(stream, fromMinute, toMinute, options = {}) {
      const out: BackfillMinuteResult[] = [];
      for (let m = fromMinute; m < toMinute; m++) {
        const minute = T0 + m * MINUTE_MS;
        const inMinute = events.filter((e) => e.stream === stream && minuteOf(e.timestamp) === minute);
        if (inMinute.length === 0) continue;
        out.push(
          await backfillMinute({ cluster, group: GROUP, stream }, minute, inMinute, deps, coverage, options),
        );
      }
      return out;
    },
    stored: () => storedPackets(flows, cluster, T0 - MINUTE_MS, T0 + 60 * MINUTE_MS),
  };
}

const ref = (r: Run, stream: string): StreamRef => ({ cluster: r.cluster, group: GROUP, stream });

/** Every page of the stream's minutes within its budgets: what keeps an item below DynamoDB's 400 KB. */
async function expectPagesWithin(r: Run, stream: string, options: CoverageOptions): Promise<void> {
  const events = options.minuteEventBudget ?? MINUTE_EVENT_BUDGET;
  const claims = options.itemClaimBudget ?? ITEM_CLAIM_BUDGET;
  for (const minute of await coverage.read(ref(r, stream), T0, T0 + 60 * MINUTE_MS)) {
    const pages = new Map<number, { events: number; claims: number }>();
    for (const c of minute.claims) {
      const page = pages.get(c.page ?? 0) ?? { events: 0, claims: 0 };
      pages.set(c.page ?? 0, { events: page.events + c.events.length, claims: page.claims + 1 });
    }
    for (const page of pages.values()) {
      expect(page.events).toBeLessThanOrEqual(events);
      expect(page.claims).toBeLessThanOrEqual(claims);
    }
  }
}

/** Coverage whose `nth` claim write is lost with the connection, as a Lambda dying between two writes. */
class PartFailingStore implements CoverageStore {
  readonly #inner: CoverageStore;
  #left: number;

  constructor(inner: CoverageStore, nth: number) {
    this.#inner = inner;
    this.#left = nth;
  }

  addClaim: CoverageStore["addClaim"] = async (...args) => {
    if (--this.#left === 0) throw new Error("injected: connection lost before the claim was written");
    return this.#inner.addClaim(...args);
  };
  read: CoverageStore["read"] = (...args) => this.#inner.read(...args);
  seal: CoverageStore["seal"] = (...args) => this.#inner.seal(...args);
  markStored: CoverageStore["markStored"] = (...args) => this.#inner.markStored(...args);
}

const sum = (
  results: readonly BackfillMinuteResult[],
  key: "stored" | "alreadyCounted" | "completed" | "pending" | "uncertain",
) => results.reduce((n, r) => n + r[key], 0);

/** Every alert of the run's cluster (addresses, port, opening and hits): the same events' alerts in any cluster. */
async function alertHits(r: Run): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await flows.queryAlerts({
      cluster: r.cluster,
      since: new Date(T0 - MINUTE_MS).toISOString(),
      until: new Date(T0 + 60 * MINUTE_MS).toISOString(),
      cursor,
    });
    for (const a of page.items) out.push(`${a.src.ip} ${a.dst.ip} ${a.dstPort} ${a.openedAt} ${a.count}`);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out.sort();
}

/** No flow holds more than its events: a double count anywhere would show here. */
function expectNoDoubleCount(
  stored: ReadonlyMap<string, number>,
  expected: ReadonlyMap<string, number>,
): void {
  for (const [key, packets] of stored) {
    expect(packets, key).toBeLessThanOrEqual(expected.get(key) ?? 0);
  }
}

describe("coverage with live ingest and backfills", () => {
  it("backfills exactly what live ingest missed, including the minute it started in, and then nothing", async () => {
    const r = await run(makeEvents(["ip-10-0-1-1"], 4, 6, 1));
    const all = r.events;
    const firstLive = 9; // live ingest starts in the middle of the second minute
    for (const batch of batches(all.slice(firstLive), "ip-10-0-1-1", [4])) await r.live(batch);
    expect(total(await r.stored())).toBe(all.length - firstLive);

    const first = await r.backfill("ip-10-0-1-1", 0, 4);
    expect(sum(first, "stored")).toBe(firstLive);
    expect(sum(first, "alreadyCounted")).toBe(all.length - firstLive);
    expect(await r.stored()).toEqual(r.expected);

    const again = await r.backfill("ip-10-0-1-1", 0, 4);
    expect(sum(again, "stored")).toBe(0);
    expect(sum(again, "alreadyCounted")).toBe(all.length);
    expect(again.flatMap((x) => x.batches)).toEqual([]);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("drops from live deliveries what a backfill already counted, late redeliveries included", async () => {
    const r = await run(makeEvents(["ip-10-0-1-2"], 3, 5, 2));
    await r.backfill("ip-10-0-1-2", 0, 2);
    let already = 0;
    const payloads = batches(r.events, "ip-10-0-1-2", [3, 4]);
    for (const batch of payloads) already += (await r.live(batch)).eventsAlreadyCounted;
    expect(already).toBe(10);
    expect(await r.stored()).toEqual(r.expected);
    for (const batch of payloads) {
      const redelivered = await r.live(batch);
      expect(redelivered.flowsApplied).toBe(0);
    }
    expect(await r.stored()).toEqual(r.expected);
  });

  it("counts overlapping backfills once, in any order", async () => {
    const r = await run(makeEvents(["ip-10-0-2-1", "ip-10-0-2-2"], 4, 4, 3));
    await r.backfill("ip-10-0-2-1", 1, 3);
    await r.backfill("ip-10-0-2-2", 0, 2);
    await r.backfill("ip-10-0-2-1", 0, 4);
    await r.backfill("ip-10-0-2-2", 1, 4);
    await r.backfill("ip-10-0-2-2", 0, 4);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("counts a redelivery nothing again when attribution has changed since (its flows would get other keys)", async () => {
    const r = await run(makeEvents(["ip-10-0-3-2"], 2, 6, 41));
    const payload = payloadOf("ip-10-0-3-2", r.events);
    const first = await ingestDelivery(payload, ingestDeps(r.store, r.cluster), coverage, "live");
    expect(first.eventsAlreadyCounted).toBe(0);
    expect(await r.stored()).toEqual(r.expected);
    // The same payload again, resolved otherwise: no address is internal now, so every endpoint differs.
    const changed = ingestDeps(r.store, r.cluster);
    changed.pipeline = { ...changed.pipeline, internal: new CidrSet(["10.0.0.0/8"]) };
    const again = await ingestDelivery(payload, changed, coverage, "live");
    expect(again.flowsApplied).toBe(0);
    expect(again.writeRequests).toBe(0);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("retries a payload whose alerts failed without writing its flows again, however it is attributed then", async () => {
    const r = await run(makeEvents(["ip-10-0-3-3"], 2, 6, 42));
    const payload = payloadOf("ip-10-0-3-3", r.events);
    const flaky = flakySink();
    const { sink, published } = flaky;
    await expect(
      ingestDelivery(payload, { ...ingestDeps(r.store, r.cluster), sink }, coverage, "live"),
    ).rejects.toThrow();
    expect(await r.stored()).toEqual(r.expected);
    // Retried, and attributed otherwise: no address is internal now, so every flow would have another key.
    const changed = { ...ingestDeps(r.store, r.cluster), sink };
    changed.pipeline = { ...changed.pipeline, internal: new CidrSet(["10.0.0.0/8"]) };
    const retry = await ingestDelivery(payload, changed, coverage, "live");
    expect(retry.flowsApplied).toBe(0);
    expect(retry.writeRequests).toBe(0);
    expect(await r.stored()).toEqual(r.expected);
    // Retried as first attributed, SNS back: no flow written, and the alerts left pending are published.
    flaky.down = false;
    lambdaRetryDelay();
    const again = await ingestDelivery(
      payload,
      { ...ingestDeps(r.store, r.cluster), sink },
      coverage,
      "live",
    );
    expect(again.writeRequests).toBe(0);
    expect(again.alertsOpened).toBe(0);
    expect(published.length).toBeGreaterThan(0);
    expect(published).toHaveLength(again.alertsSent);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("counts a differently batched redelivery of the same events once", async () => {
    const r = await run(makeEvents(["ip-10-0-3-1"], 2, 6, 4));
    await r.live(r.events.slice(0, 7));
    const overlap = await r.live(r.events.slice(4, 12));
    expect(overlap.eventsAlreadyCounted).toBe(3);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("gives every event one owner when live ingest and a backfill race on the same minutes", async () => {
    const r = await run(makeEvents(["ip-10-0-4-1"], 2, 12, 5));
    const payloads = batches(r.events, "ip-10-0-4-1", [2, 3]);
    await Promise.all([
      ...payloads.map((b) => r.live(b)),
      r.backfill("ip-10-0-4-1", 0, 2),
      r.backfill("ip-10-0-4-1", 0, 2),
    ]);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("gives every event one owner when they race on minutes that fill several pages", async () => {
    const r = await run(makeEvents(["ip-10-0-4-2"], 2, 12, 15));
    const options = { minuteEventBudget: 3, itemClaimBudget: 2 };
    const payloads = [...batches(r.events, "ip-10-0-4-2", [2, 3]), ...batches(r.events, "ip-10-0-4-2", [5])];
    await Promise.all([
      ...payloads.map((b) => r.live(b, "live", options)),
      r.backfill("ip-10-0-4-2", 0, 2, options),
      r.backfill("ip-10-0-4-2", 0, 2, options),
    ]);
    expect(await r.stored()).toEqual(r.expected);
    await expectPagesWithin(r, "ip-10-0-4-2", options);
  });
});

describe("writers that die between claim and store", () => {
  it("a failed invocation is finished by its retry or by redrive under its own contribution, not by a young backfill", async () => {
    const r = await run(makeEvents(["ip-10-0-5-1"], 3, 5, 6));
    const [p1, p2, p3, ...rest] = batches(r.events, "ip-10-0-5-1", [4]);
    await r.live(p1 as CwEvent[]);
    r.store.failNextWrite();
    await expect(r.live(p2 as CwEvent[])).rejects.toThrow(/partial write/);
    expectNoDoubleCount(await r.stored(), r.expected);

    // Within the grace period the backfill leaves the claim to the invocation's retries.
    const early = await r.backfill("ip-10-0-5-1", 0, 3);
    expect(sum(early, "pending")).toBe(p2?.length);
    expect(sum(early, "completed")).toBe(0);
    expectNoDoubleCount(await r.stored(), r.expected);

    const redriven = await r.live(p2 as CwEvent[], "redrive");
    expect(redriven.eventsAlreadyCounted).toBe(0);
    for (const batch of [p3, ...rest]) await r.live(batch as CwEvent[]);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("a backfill finishes an abandoned one-minute claim once the grace period is over", async () => {
    const r = await run(makeEvents(["ip-10-0-6-1"], 2, 6, 7));
    const inFirstMinute = r.events.slice(0, 4);
    r.store.failNextWrite();
    await expect(r.live(inFirstMinute)).rejects.toThrow(/partial write/);
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const results = await r.backfill("ip-10-0-6-1", 0, 2, { now: () => late });
    expect(sum(results, "completed")).toBe(4);
    expect(sum(results, "stored")).toBe(r.events.length - 4);
    expect(await r.stored()).toEqual(r.expected);
    // The payload still in the on-failure queue is redriven later: it changes nothing.
    const redriven = await r.live(inFirstMinute, "redrive");
    expect(redriven.flowsApplied).toBe(0);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("a backfill finishes an abandoned claim over two minutes a minute at a time, alerts included", async () => {
    // The payload is nowhere else (the failed-payloads queue did not keep it): each minute is stored on its own.
    const r = await run(makeEvents(["ip-10-0-6-2"], 2, 10, 48));
    const reference = await run(r.events);
    await reference.live(r.events);
    r.store.failNextWrite();
    await expect(r.live(r.events)).rejects.toThrow(/partial write/);
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const results = await r.backfill("ip-10-0-6-2", 0, 2, { now: () => late });
    expect(results.map((x) => [x.completed, x.pending])).toEqual([
      [10, 0],
      [10, 0],
    ]);
    expect(await r.stored()).toEqual(r.expected);
    expect(await alertHits(r)).toEqual(await alertHits(reference));
    // Redriven after all: both minutes are counted already.
    const redriven = await r.live(r.events, "redrive");
    expect(redriven.eventsAlreadyCounted).toBe(r.events.length);
    expect(await r.stored()).toEqual(r.expected);
    expect(await alertHits(r)).toEqual(await alertHits(reference));
  });

  it("a redrive stores what a backfill left of a claim it finished in part, and nothing of the rest", async () => {
    const r = await run(makeEvents(["ip-10-0-6-3"], 2, 6, 49));
    const reference = await run(r.events);
    await reference.live(r.events);
    r.store.failNextWrite();
    await expect(r.live(r.events)).rejects.toThrow(/partial write/);
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    expect(sum(await r.backfill("ip-10-0-6-3", 0, 1, { now: () => late }), "completed")).toBe(6);
    const redriven = await r.live(r.events, "redrive");
    expect(redriven.eventsAlreadyCounted).toBe(6);
    expect(await r.stored()).toEqual(r.expected);
    expect(await alertHits(r)).toEqual(await alertHits(reference));
    expect(sum(await r.backfill("ip-10-0-6-3", 0, 2), "alreadyCounted")).toBe(r.events.length);
  });

  it("a backfill finishes an abandoned claim whose events of the minute took two pages", async () => {
    // Its last part settles its event set: left pending, its lines would be lost once the failed payload expired.
    const r = await run(makeEvents(["ip-10-0-6-4"], 1, 6, 53));
    const options = { minuteEventBudget: 4 };
    r.store.failNextWrite();
    await expect(r.live(r.events, "live", options)).rejects.toThrow(/partial write/);
    const [minute] = await coverage.read(ref(r, "ip-10-0-6-4"), T0, T0);
    expect(minute?.claims.map((c) => [c.page, c.events.length, c.more === true, c.stored])).toEqual([
      [0, 4, true, false],
      [1, 2, false, false],
    ]);
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const results = await r.backfill("ip-10-0-6-4", 0, 1, { ...options, now: () => late });
    expect(results.map((x) => [x.completed, x.stored, x.pending, x.alreadyCounted])).toEqual([[6, 0, 0, 0]]);
    expect(await r.stored()).toEqual(r.expected);
    expect(sum(await r.backfill("ip-10-0-6-4", 0, 1, options), "alreadyCounted")).toBe(6);
  });

  it("an interrupted backfill is finished by the next one", async () => {
    const r = await run(makeEvents(["ip-10-0-7-1"], 2, 5, 8));
    r.store.failNextWrite();
    await expect(r.backfill("ip-10-0-7-1", 0, 2)).rejects.toThrow(/partial write/);
    const again = await r.backfill("ip-10-0-7-1", 0, 2);
    expect(sum(again, "completed")).toBe(5);
    expect(sum(again, "stored")).toBe(5);
    expect(await r.stored()).toEqual(r.expected);
  });
});

describe("attribution that changes between a failed run and its retry", () => {
  const memos = () => new DynamoMemoStore({ client: ts.client, tableName: ts.tableName });
  /** Kubernetes unreachable: every internal endpoint is stored unresolved. */
  const unreachable: IpDirectory = {
    resolve: async (lookups) =>
      lookups.map(() => ({ status: "unavailable", reason: "injected: API server unreachable" })),
  };
  const depsWith = (r: Run, directory: IpDirectory | undefined, kept: MemoStore | undefined): IngestDeps => {
    const deps = { ...ingestDeps(r.store, r.cluster), memos: kept };
    if (directory !== undefined) deps.pipeline = { ...deps.pipeline, directory };
    return deps;
  };
  const byAddress = (r: Run) => storedByAddress(flows, r.cluster, T0 - MINUTE_MS, T0 + 60 * MINUTE_MS);

  it("a payload partly stored while Kubernetes was unreachable, retried once it answers, counts every packet once", async () => {
    const r = await run(makeEvents(["ip-10-0-8-1"], 2, 8, 44));
    const payload = payloadOf("ip-10-0-8-1", r.events);
    const kept = memos();
    r.store.failNextWrite();
    await expect(ingestDelivery(payload, depsWith(r, unreachable, kept), coverage, "live")).rejects.toThrow(
      /partial write/,
    );
    const retry = await ingestDelivery(payload, depsWith(r, undefined, kept), coverage, "live");
    expect(retry.attributionMemo).toBe("reused");
    expect(retry.flowsDuplicate).toBeGreaterThan(0);
    expect(retry.flowsApplied).toBeGreaterThan(0);
    expect(await byAddress(r)).toEqual(expectedByAddress(r.events));
    // Attributed as the failed run was: the flows it stored are the ones the retry completed.
    expect(retry.flows.every((f) => f.dst.resolved === false)).toBe(true);
  });

  it("without its memo the same retry counts the packets stored before twice", async () => {
    const r = await run(makeEvents(["ip-10-0-8-2"], 2, 8, 44));
    const payload = payloadOf("ip-10-0-8-2", r.events);
    r.store.failNextWrite();
    await expect(
      ingestDelivery(payload, depsWith(r, unreachable, undefined), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const retry = await ingestDelivery(payload, depsWith(r, undefined, undefined), coverage, "live");
    expect(retry.attributionMemo).toBe("none");
    expect(total(await byAddress(r))).toBeGreaterThan(r.events.length);
  });

  it("a backfill finishing a dead writer's claim attributes as the writer did", async () => {
    const r = await run(makeEvents(["ip-10-0-8-3"], 1, 8, 45));
    const payload = payloadOf("ip-10-0-8-3", r.events);
    const kept = memos();
    r.store.failNextWrite();
    await expect(ingestDelivery(payload, depsWith(r, unreachable, kept), coverage, "live")).rejects.toThrow(
      /partial write/,
    );
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const results = await backfillMinute(
      { cluster: r.cluster, group: GROUP, stream: "ip-10-0-8-3" },
      minuteOf(T0),
      r.events,
      depsWith(r, undefined, kept),
      coverage,
      { now: () => late },
    );
    expect(results.completed).toBe(r.events.length);
    expect(results.batches.map((b) => b.result.attributionMemo)).toEqual(["reused"]);
    expect(await byAddress(r)).toEqual(expectedByAddress(r.events));
  });

  it("a backfill that stored its flows but could not mark its claim is finished by the next one as it attributed", async () => {
    const r = await run(makeEvents(["ip-10-0-8-5"], 1, 8, 47));
    const ref: StreamRef = { cluster: r.cluster, group: GROUP, stream: "ip-10-0-8-5" };
    let failMark = true;
    const unmarkable: CoverageStore = {
      read: (...args) => coverage.read(...args),
      addClaim: (...args) => coverage.addClaim(...args),
      seal: (...args) => coverage.seal(...args),
      markStored: async (...args) => {
        if (failMark) {
          failMark = false;
          throw new Error("injected: connection lost before the claim was marked");
        }
        return coverage.markStored(...args);
      },
    };
    const kept = memos();
    await expect(
      backfillMinute(ref, minuteOf(T0), r.events, depsWith(r, undefined, kept), unmarkable),
    ).rejects.toThrow(/before the claim was marked/);
    expect(await byAddress(r)).toEqual(expectedByAddress(r.events));
    // The next backfill finds the claim unfinished and stores it again, while Kubernetes is unreachable.
    const again = await backfillMinute(ref, minuteOf(T0), r.events, depsWith(r, unreachable, kept), coverage);
    expect(again.completed).toBe(r.events.length);
    expect(again.batches.map((b) => b.result.attributionMemo)).toEqual(["reused"]);
    expect(again.batches[0]?.result.flowsApplied).toBe(0);
    expect(await byAddress(r)).toEqual(expectedByAddress(r.events));
  });

  it("a retry after its alerts failed hands out the alerts the failed run opened, however Kubernetes answers then", async () => {
    const r = await run(makeEvents(["ip-10-0-8-4"], 2, 8, 46));
    const payload = payloadOf("ip-10-0-8-4", r.events);
    const kept = memos();
    const flaky = flakySink();
    const { sink, published } = flaky;
    const progress: IngestProgress = {};
    const failure = await ingestDelivery(
      payload,
      { ...depsWith(r, undefined, kept), sink },
      coverage,
      "live",
      { progress },
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(AlertDeliveryError);
    const opened = progress.alertsOpened ?? 0;
    expect(opened).toBeGreaterThan(0);
    flaky.down = false;
    lambdaRetryDelay();
    const retry = await ingestDelivery(
      payload,
      { ...depsWith(r, unreachable, kept), sink },
      coverage,
      "live",
    );
    expect(retry.attributionMemo).toBe("reused");
    expect(retry.alertsOpened).toBe(0);
    expect(retry.alertsSent).toBe(opened);
    expect(published).toHaveLength(opened);
    // The alerts name the pods as the failed run found them, not the unresolved addresses of the retry.
    expect(retry.alerts.every((a) => a.src.resolved && a.dst.resolved)).toBe(true);
  });
});

describe("alerts another run of a backfill holds", () => {
  it("leaves the claim unmarked while a failed run's lease holds its alerts, and the next backfill after it sends them", async () => {
    const r = await run(makeEvents(["ip-10-0-9-1"], 1, 6, 91));
    const ref: StreamRef = { cluster: r.cluster, group: GROUP, stream: "ip-10-0-9-1" };
    const flaky = flakySink();
    const deps = { ...ingestDeps(flows, r.cluster), sink: flaky.sink };
    const claimStored = async () =>
      (await coverage.read(ref, minuteOf(T0), minuteOf(T0)))[0]?.claims.map((c) => c.stored);
    // Its publish fails (the topic's key not usable): the claim stays unfinished.
    await expect(backfillMinute(ref, minuteOf(T0), r.events, deps, coverage)).rejects.toBeInstanceOf(
      AlertDeliveryError,
    );
    // Fixed and run again at once: the failed run's lease on sending the alerts it opened has not run out.
    flaky.down = false;
    const early = await backfillMinute(ref, minuteOf(T0), r.events, deps, coverage);
    const [batch] = early.batches;
    expect(batch?.result.alertsHeld.length).toBeGreaterThan(0);
    expect(flaky.published).toEqual([]);
    expect(await claimStored()).toEqual([false]);
    // After the lease: finished again, the alerts sent, the claim marked; every packet still counted once.
    lambdaRetryDelay();
    const later = await backfillMinute(ref, minuteOf(T0), r.events, deps, coverage);
    expect(later.completed).toBe(r.events.length);
    expect(later.batches[0]?.result.alertsHeld).toEqual([]);
    expect(flaky.published.sort()).toEqual(batch?.result.alertsHeld.map((h) => h.id).sort());
    expect(await claimStored()).toEqual([true]);
    expect(await r.stored()).toEqual(r.expected);
  });
});

describe("claims of writers that are gone (`replay` on the embedded store, which one process holds)", () => {
  const byAddress = (r: Run) => storedByAddress(flows, r.cluster, T0 - MINUTE_MS, T0 + 60 * MINUTE_MS);
  const unreachable: IpDirectory = {
    resolve: async (lookups) =>
      lookups.map(() => ({ status: "unavailable", reason: "injected: API server unreachable" })),
  };
  const gone: CoverageOptions = { abandoned: true };

  it("a writer killed while storing is finished by a delivery batched otherwise, attributed as it was", async () => {
    const r = await run(makeEvents(["ip-10-0-8-6"], 2, 8, 50));
    const memos = new DynamoMemoStore({ client: ts.client, tableName: ts.tableName });
    const killed = new KilledStore(flows);
    const dying: IngestDeps = {
      ...ingestDeps(killed, r.cluster),
      memos,
      memoBeforeWrites: true,
      pipeline: { ...ingestDeps(killed, r.cluster).pipeline, directory: unreachable },
    };
    const first = r.events.slice(0, 10);
    void ingestDelivery(payloadOf("ip-10-0-8-6", first), dying, coverage, "live");
    await killed.killed;

    // Kubernetes answers now: attributed afresh, the flows stored before the kill would be counted again.
    const deps = { ...ingestDeps(r.store, r.cluster), memos, memoBeforeWrites: true };
    const later = await ingestDelivery(payloadOf("ip-10-0-8-6", r.events), deps, coverage, "live", gone);
    expect(later.completed.map((c) => c.events)).toEqual([first.map((_, i) => i)]);
    expect(later.completed[0]?.result.attributionMemo).toBe("reused");
    expect(later.completed[0]?.result.flowsDuplicate).toBeGreaterThan(0);
    expect([later.eventsAlreadyCounted, later.eventsPending]).toEqual([0, 0]);
    expect(await byAddress(r)).toEqual(expectedByAddress(r.events));
  });

  it("leaves a gone writer's claim to a delivery that holds all its events, and only with `abandoned`", async () => {
    const r = await run(makeEvents(["ip-10-0-8-7"], 1, 9, 51));
    const deliver = (from: number, options?: CoverageOptions) =>
      r.live(r.events.slice(from), "live", options);
    r.store.failNextWrite();
    await expect(r.live(r.events.slice(0, 6))).rejects.toThrow(/partial write/);
    // Live ingest leaves it to the writer's retry.
    const live = await deliver(3);
    expect([live.completed, live.eventsPending, live.eventsAlreadyCounted]).toEqual([[], 0, 3]);
    // Two of its events missing: part of it may be stored, so it is stored whole or not at all.
    const lacking = await deliver(2, gone);
    expect([lacking.completed, lacking.eventsPending, lacking.eventsAlreadyCounted]).toEqual([[], 4, 3]);
    expectNoDoubleCount(await r.stored(), r.expected);
    const whole = await deliver(0, gone);
    expect(whole.completed.map((c) => c.events)).toEqual([[0, 1, 2, 3, 4, 5]]);
    expect([whole.eventsPending, whole.eventsAlreadyCounted, whole.flowsApplied]).toEqual([0, 3, 0]);
    expect(await r.stored()).toEqual(r.expected);
    expect((await deliver(0, gone)).eventsAlreadyCounted).toBe(r.events.length);
  });

  it("leaves pending the claim of a writer that died while claiming, which only its own events batched alike finish", async () => {
    const r = await run(makeEvents(["ip-10-0-8-8"], 2, 5, 52));
    const deps = ingestDeps(r.store, r.cluster);
    // Its first minute claimed, then gone before it claimed the second: its event set is not settled.
    const dead = r.events.slice(0, 7);
    const claimsOnce = new PartFailingStore(coverage, 2);
    await expect(
      ingestDelivery(payloadOf("ip-10-0-8-8", dead), deps, claimsOnce, "live", gone),
    ).rejects.toThrow(/before the claim was written/);
    const later = await r.live(r.events, "live", gone);
    expect([later.completed, later.eventsPending]).toEqual([[], 5]);
    expectNoDoubleCount(await r.stored(), r.expected);
    const rerun = await r.live(dead, "live", gone);
    expect([rerun.eventsAlreadyCounted, rerun.eventsPending]).toEqual([2, 0]);
    expect(await r.stored()).toEqual(r.expected);
  });

  it("takes a claim with some page marked stored as stored: its writer died marking the others", async () => {
    const r = await run(makeEvents(["ip-10-0-8-9"], 1, 7, 54));
    const options = { minuteEventBudget: 4 };
    const first = r.events.slice(0, 6);
    // markStored marks page by page: this writer is killed after the first of its two pages.
    const dying: CoverageStore = {
      read: (...args) => coverage.read(...args),
      addClaim: (...args) => coverage.addClaim(...args),
      seal: (...args) => coverage.seal(...args),
      markStored: async (at, minute, contribution, pages = [0]) => {
        await coverage.markStored(at, minute, contribution, pages.slice(0, 1));
        throw new Error("injected: killed between the page marks");
      },
    };
    await expect(
      ingestDelivery(payloadOf("ip-10-0-8-9", first), ingestDeps(r.store, r.cluster), dying, "live", options),
    ).rejects.toThrow(/between the page marks/);
    const [minute] = await coverage.read(ref(r, "ip-10-0-8-9"), T0, T0);
    expect(minute?.claims.map((c) => [c.page, c.events.length, c.stored])).toEqual([
      [0, 4, true],
      [1, 2, false],
    ]);
    expect(await byAddress(r)).toEqual(expectedByAddress(first));
    // Kubernetes unreachable now: stored again, its packets would be counted under other keys as well.
    const deps = ingestDeps(r.store, r.cluster);
    deps.pipeline = { ...deps.pipeline, directory: unreachable };
    const later = await ingestDelivery(payloadOf("ip-10-0-8-9", r.events), deps, coverage, "live", {
      ...options,
      ...gone,
    });
    expect([later.completed, later.eventsPending, later.eventsAlreadyCounted]).toEqual([[], 0, 6]);
    expect(total(await byAddress(r))).toBe(7);
    expect(await byAddress(r)).toEqual(expectedByAddress(r.events));
  });
});

describe("busy minutes", () => {
  it("counts the same events once when redelivered in other batches, past one page's budget", async () => {
    const r = await run(makeEvents(["ip-10-0-9-1"], 1, 6, 10));
    const options = { minuteEventBudget: 4 };
    await r.live(r.events, "live", options);
    const again = [await r.live(r.events.slice(0, 3), "live", options)];
    again.push(await r.live(r.events.slice(3), "live", options));
    expect(again.map((x) => x.eventsAlreadyCounted)).toEqual([3, 3]);
    expect(await r.stored()).toEqual(r.expected);
    const backfilled = await r.backfill("ip-10-0-9-1", 0, 1, options);
    expect(sum(backfilled, "alreadyCounted")).toBe(6);
    expect(sum(backfilled, "stored")).toBe(0);
    await expectPagesWithin(r, "ip-10-0-9-1", options);
  });

  it("past one page, a backfill stores exactly what live ingest did not", async () => {
    const r = await run(makeEvents(["ip-10-0-8-1"], 1, 10, 9));
    const options = { minuteEventBudget: 4 };
    await r.live(r.events.slice(0, 3), "live", options);
    await r.live(r.events.slice(3, 6), "live", options);
    const results = await r.backfill("ip-10-0-8-1", 0, 1, options);
    expect(sum(results, "alreadyCounted")).toBe(6);
    expect(sum(results, "stored")).toBe(4);
    expect(sum(results, "uncertain")).toBe(0);
    expect(await r.stored()).toEqual(r.expected);
    await expectPagesWithin(r, "ip-10-0-8-1", options);
  });

  it("starts a new page when one holds its budget of claims, however few events they name", async () => {
    const r = await run(makeEvents(["ip-10-0-8-2"], 1, 10, 12));
    const options = { itemClaimBudget: 3 };
    for (const batch of batches(r.events, "ip-10-0-8-2", [1])) await r.live(batch, "live", options);
    let already = 0;
    for (const batch of batches(r.events, "ip-10-0-8-2", [4, 6])) {
      already += (await r.live(batch, "live", options)).eventsAlreadyCounted;
    }
    expect(already).toBe(10);
    expect(await r.stored()).toEqual(r.expected);
    await expectPagesWithin(r, "ip-10-0-8-2", options);
  });

  it("counts a minute of more events than one page holds once, at the real budgets", async () => {
    const r = await run(makeEvents(["ip-10-0-9-2"], 1, 25_000, 11));
    for (const batch of batches(r.events, "ip-10-0-9-2", [5_000])) await r.live(batch);
    let already = 0;
    for (const batch of batches(r.events, "ip-10-0-9-2", [3_000, 4_500])) {
      already += (await r.live(batch)).eventsAlreadyCounted;
    }
    expect(already).toBe(25_000);
    expect(await r.stored()).toEqual(r.expected);
    const [minute] = await coverage.read(ref(r, "ip-10-0-9-2"), T0, T0);
    // The pages before the open one are full: 25,000 events fill Math.floor(25,000 / budget) of them.
    expect(minute?.page).toBe(Math.floor(25_000 / MINUTE_EVENT_BUDGET));
    await expectPagesWithin(r, "ip-10-0-9-2", {});
  }, 60_000);

  it("a delivery interrupted between two parts of its claim is finished by its redrive, not by a backfill", async () => {
    const r = await run(makeEvents(["ip-10-0-9-3"], 1, 8, 13));
    const options = { minuteEventBudget: 4 };
    const delivery = r.events.slice(0, 6);
    const broken = new PartFailingStore(coverage, 2);
    const deps = ingestDeps(r.store, r.cluster);
    await expect(
      ingestDelivery(payloadOf("ip-10-0-9-3", delivery), deps, broken, "live", options),
    ).rejects.toThrow(/lost/);
    // Its event set is not settled: a backfill, however late, leaves the part it has and claims the rest.
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const backfilled = await r.backfill("ip-10-0-9-3", 0, 1, { ...options, now: () => late });
    expect(sum(backfilled, "pending")).toBe(4);
    expect(sum(backfilled, "completed")).toBe(0);
    expect(sum(backfilled, "stored")).toBe(4);
    const redriven = await r.live(delivery, "redrive", options);
    expect(redriven.eventsAlreadyCounted).toBe(2);
    expect(await r.stored()).toEqual(r.expected);
    const again = await r.backfill("ip-10-0-9-3", 0, 1, options);
    expect(sum(again, "alreadyCounted")).toBe(8);
  });

  it("a backfill leaves alone a minute holding claims that count events without naming them", async () => {
    // As the single item of a minute held them once it was full, before a minute could take several pages.
    const r = await run(makeEvents(["ip-10-0-9-4"], 1, 5, 14));
    const at = ref(r, "ip-10-0-9-4");
    const unnamed = {
      contribution: "written-before-pages",
      source: "live" as const,
      events: [],
      recorded: false,
      count: 2,
      span: 1,
      stored: true,
      claimedAt: new Date(T0).toISOString(),
    };
    expect(await coverage.addClaim(at, T0, 0, unnamed)).toBe(true);
    const results = await r.backfill("ip-10-0-9-4", 0, 1);
    expect(sum(results, "uncertain")).toBe(5);
    expect(sum(results, "stored")).toBe(0);
  });
});

describe("any interleaving", () => {
  type Op =
    | { kind: "live"; payload: number; fail: boolean }
    | { kind: "backfill"; stream: number; from: number; to: number; fail: boolean }
    | { kind: "redrive"; payload: number };

  const STREAMS = ["ip-10-1-0-1", "ip-10-1-0-2"];
  const MINUTES = 4;

  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("live" as const), payload: fc.nat(40), fail: fc.boolean() }),
    fc
      .record({
        kind: fc.constant("backfill" as const),
        stream: fc.nat(STREAMS.length - 1),
        from: fc.nat(MINUTES - 1),
        length: fc.integer({ min: 1, max: MINUTES }),
        fail: fc.boolean(),
      })
      .map(({ length, ...o }) => ({ ...o, to: Math.min(MINUTES, o.from + length) })),
    fc.record({ kind: fc.constant("redrive" as const), payload: fc.nat(40) }),
  );

  it("counts every event exactly once after live, failed, redriven and backfilled deliveries", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }),
        fc.array(op, { minLength: 1, maxLength: 12 }),
        // The real budgets, and budgets so small that every minute takes several pages.
        fc.constantFrom<CoverageOptions>(
          {},
          { minuteEventBudget: 2 },
          { minuteEventBudget: 3, itemClaimBudget: 2 },
        ),
        async (seed, sizes, ops, options) => {
          const r = await run(makeEvents(STREAMS, MINUTES, 3, seed));
          const payloads = STREAMS.flatMap((s) => batches(r.events, s, sizes));
          const failed = new Set<number>();
          for (const o of ops) {
            if (o.kind === "live" || o.kind === "redrive") {
              const index = o.payload % payloads.length;
              const batch = payloads[index] as CwEvent[];
              if (o.kind === "live" && o.fail) {
                r.store.failNextWrite();
                // Nothing left to write (others counted it all) means nothing to fail.
                const outcome = await r.live(batch, "live", options).then(
                  () => "stored",
                  (error: Error) => error.message,
                );
                r.store.clearFault();
                if (outcome !== "stored") {
                  expect(outcome).toMatch(/partial write/);
                  failed.add(index);
                }
              } else {
                await r.live(batch, o.kind, options);
                failed.delete(index);
              }
            } else {
              if (o.fail) r.store.failNextWrite();
              const attempt = r.backfill(STREAMS[o.stream] as string, o.from, o.to, options);
              if (o.fail)
                await attempt.catch((error: Error) => expect(error.message).toMatch(/partial write/));
              else await attempt;
              r.store.clearFault();
            }
            expectNoDoubleCount(await r.stored(), r.expected);
          }
          // Recovery: the on-failure queue is redriven and the whole window backfilled.
          for (const index of failed) await r.live(payloads[index] as CwEvent[], "redrive", options);
          for (const s of STREAMS) await r.backfill(s, 0, MINUTES, options);
          expect(await r.stored()).toEqual(r.expected);
          for (const s of STREAMS) await expectPagesWithin(r, s, options);
        },
      ),
      { numRuns: 25 },
    );
  });
});
