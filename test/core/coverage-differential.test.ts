// Coverage claims against an independent reference: random events over a few minutes and log streams, then a
// random schedule of live deliveries (some events in two differently batched deliveries, the same delivery
// twice), redrives of captured payloads and backfills of minutes, some run concurrently and some through a fault
// proxy that fails their requests so the run throws and is retried — through the real code into dynalite. The
// stored packets and bytes are compared with what counting every distinct event once gives, summed from what the
// generator put in each line (not from the pipeline).
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { DynamoMemoStore } from "../../functions/adapters/dynamo/memos.ts";
import {
  backfillMinute,
  type CoverageOptions,
  type CoverageStore,
  ingestDelivery,
  MINUTE_MS,
  PENDING_GRACE_MS,
} from "../../functions/core/coverage.ts";
import type { IngestDeps } from "../../functions/core/ingest.ts";
import {
  decodeDelivery,
  decodeSubscriptionData,
  encodeSubscriptionData,
} from "../../functions/core/subscription-payload.ts";
import type { IpDirectory } from "../../functions/core/types.ts";
import {
  calicoLine,
  DESTINATIONS,
  directory,
  GROUP,
  PORTS,
  payloadOf,
  pipelineOptions,
  SOURCES,
  T0,
} from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";

const STREAMS = ["ip-10-3-0-1", "ip-10-3-0-2"];
const MINUTES = 3;
const ALL_MINUTES = Array.from({ length: MINUTES }, (_, m) => m);

let ts: TestStore;
let proxy: FaultProxy;
let clusters = 0;

/** The stores of one bucket size: over a direct connection, and through the fault proxy with one retry. */
interface Stores {
  flows: DynamoFlowStore;
  coverage: CoverageStore;
  faultyFlows: DynamoFlowStore;
  faultyCoverage: CoverageStore;
  /** Over the direct connection: a memo that could not be kept is a limit of its own (architecture.md). */
  memos: DynamoMemoStore;
}
const storesByBucket = new Map<number, Stores>();

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await ts?.close();
});

function storesFor(bucketSeconds: number): Stores {
  let stores = storesByBucket.get(bucketSeconds);
  if (stores === undefined) {
    const direct = ts.clientFor(ts.endpoint, { maxAttempts: 1 });
    const faulty = ts.clientFor(proxy.endpoint, { maxAttempts: 1 });
    // Two tries and no real backoff: a share of the runs through the proxy spend their budget and throw.
    const retry = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
    const tableName = ts.tableName;
    stores = {
      flows: new DynamoFlowStore({ client: direct, tableName, bucketSeconds }),
      coverage: new DynamoCoverageStore({ client: direct, tableName }),
      faultyFlows: new DynamoFlowStore({ client: faulty, tableName, bucketSeconds, retry }),
      faultyCoverage: new DynamoCoverageStore({ client: faulty, tableName, retry }),
      memos: new DynamoMemoStore({ client: direct, tableName }),
    };
    storesByBucket.set(bucketSeconds, stores);
  }
  return stores;
}

/** A log event with what the generator wrote into its line. */
interface Event {
  id: string;
  timestamp: number;
  message: string;
  stream: string;
  src: string;
  dst: string;
  port: number;
  length: number;
}

interface Line {
  offset: number;
  src: string;
  dst: string;
  port: number;
  length: number;
}

const lineArb: fc.Arbitrary<Line> = fc.record({
  offset: fc.nat(MINUTE_MS - 1),
  // Few endpoints and ports, so that flows take events of several deliveries, minutes and writers.
  src: fc.constantFrom(...SOURCES.slice(0, 2)),
  dst: fc.constantFrom(...DESTINATIONS.slice(0, 2)),
  port: fc.constantFrom(...PORTS.slice(0, 2)),
  length: fc.integer({ min: 40, max: 1500 }),
});

/** Lines per stream and minute (at most five, so that small page budgets take several pages). */
const worldArb = fc.array(fc.array(lineArb, { maxLength: 6 }), {
  minLength: STREAMS.length * MINUTES,
  maxLength: STREAMS.length * MINUTES,
});

/** Events of every stream in timestamp order, ids shaped like CloudWatch's (timestamp, then a sequence). */
function eventsOf(world: readonly (readonly Line[])[]): Event[] {
  const out: Event[] = [];
  let sequence = 0;
  STREAMS.forEach((stream, s) => {
    const mine: Omit<Event, "id">[] = [];
    for (let m = 0; m < MINUTES; m++) {
      for (const l of world[s * MINUTES + m] ?? []) {
        const timestamp = T0 + m * MINUTE_MS + l.offset;
        mine.push({
          timestamp,
          stream,
          src: l.src,
          dst: l.dst,
          port: l.port,
          length: l.length,
          message: calicoLine(timestamp, stream, l.src, l.dst, l.port, l.length),
        });
      }
    }
    mine.sort((a, b) => a.timestamp - b.timestamp);
    for (const e of mine) {
      sequence++;
      out.push({ ...e, id: `${String(e.timestamp).padStart(20, "0")}${String(sequence).padStart(36, "0")}` });
    }
  });
  return out;
}

/** Consecutive batches of one stream's events, sizes taken in turn (a batch may straddle minutes). */
function batches(events: readonly Event[], sizes: readonly number[]): Event[][] {
  const out: Event[][] = [];
  for (let i = 0, k = 0; i < events.length; k++) {
    const size = sizes[k % sizes.length] as number;
    out.push(events.slice(i, i + size));
    i += size;
  }
  return out;
}

type Counts = Map<string, { packets: number; bytes: number }>;

function add(counts: Counts, key: string, packets: number, bytes: number): void {
  const c = counts.get(key) ?? { packets: 0, bytes: 0 };
  counts.set(key, { packets: c.packets + packets, bytes: c.bytes + bytes });
}

/** Packets and bytes per (bucket, source, destination, port, reporter) of `events`, each counted once. */
function reference(events: Iterable<Event>, bucketSeconds: number): Counts {
  const out: Counts = new Map();
  const bucketMs = bucketSeconds * 1000;
  for (const e of events) {
    const bucket = new Date(Math.floor(e.timestamp / bucketMs) * bucketMs).toISOString();
    add(out, `${bucket}|${e.src}|${e.dst}|${e.port}|${e.stream}`, 1, e.length);
  }
  return out;
}

async function storedCounts(flows: DynamoFlowStore, cluster: string): Promise<Counts> {
  const out: Counts = new Map();
  let cursor: string | undefined;
  do {
    const page = await flows.queryFlows({
      cluster,
      since: new Date(T0 - 10 * MINUTE_MS).toISOString(),
      until: new Date(T0 + (MINUTES + 10) * MINUTE_MS).toISOString(),
      limit: 1000,
      cursor,
    });
    for (const f of page.items) {
      add(out, `${f.bucket}|${f.src.ip}|${f.dst.ip}|${f.dstPort}|${f.reporter}`, f.packets, f.bytes);
    }
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

/** Every stored count at most what counting each event once gives: a double count anywhere shows here. */
function expectAtMost(stored: Counts, upper: Counts, where: string): void {
  for (const [key, c] of stored) {
    const u = upper.get(key) ?? { packets: 0, bytes: 0 };
    expect(c.packets, `${where}: packets of ${key}`).toBeLessThanOrEqual(u.packets);
    expect(c.bytes, `${where}: bytes of ${key}`).toBeLessThanOrEqual(u.bytes);
  }
}

/** Every count at least `lower`'s: an event lost (never counted though its run succeeded) shows here. */
function expectAtLeast(stored: Counts, lower: Counts, where: string): void {
  for (const [key, c] of lower) {
    const s = stored.get(key) ?? { packets: 0, bytes: 0 };
    expect(s.packets, `${where}: packets of ${key}`).toBeGreaterThanOrEqual(c.packets);
    expect(s.bytes, `${where}: bytes of ${key}`).toBeGreaterThanOrEqual(c.bytes);
  }
}

type FaultTarget = "any" | "FLOW#" | "COVER#";

type Op =
  | { kind: "live" | "redrive"; payload: number; faulty: boolean }
  | {
      kind: "backfill";
      stream: number;
      from: number;
      length: number;
      /** The window starts this far into its first minute (a `--since` that is not a whole minute). */
      cut: number;
      faulty: boolean;
      late: boolean;
    }
  /** The oldest run that failed and was not retried yet, run again. */
  | { kind: "retry"; faulty: boolean }
  /** The last payload stored, delivered again. */
  | { kind: "again"; faulty: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("live" as const), payload: fc.nat(), faulty: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("redrive" as const), payload: fc.nat(), faulty: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("backfill" as const),
      stream: fc.nat(STREAMS.length - 1),
      from: fc.nat(MINUTES - 1),
      length: fc.integer({ min: 1, max: MINUTES }),
      cut: fc.oneof(fc.constant(0), fc.nat(MINUTE_MS - 1)),
      faulty: fc.boolean(),
      late: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("retry" as const), faulty: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("again" as const), faulty: fc.boolean() }) },
);

/** A run the schedule makes: a delivery of one payload, or a backfill of some minutes of one stream. */
type Task =
  | { kind: "delivery"; source: "live" | "redrive"; payload: number }
  | { kind: "backfill"; stream: number; minutes: number[]; cut: number; late: boolean };

/** The fixtures' pods under other names: a directory that answers otherwise than `directory` does. */
const renamed: IpDirectory = {
  async resolve(lookups) {
    const answers = await directory.resolve(lookups);
    return answers.map((a) =>
      a.status === "found" ? { status: "found", holder: { ...a.holder, name: `${a.holder.name}-b` } } : a,
    );
  },
};
const unreachable: IpDirectory = {
  resolve: async (lookups) => lookups.map(() => ({ status: "unavailable", reason: "injected: API down" })),
};
/** What Kubernetes answers in each epoch (a step of the schedule, a run of the recovery), in turn. */
const DIRECTORIES = [directory, unreachable, renamed];

/**
 * The schedule property. With `changing` attribution, Kubernetes answers otherwise from one step to the next (the
 * runs of one step, which may be the same contribution at once, see the same answers), and the runs keep their
 * attribution memos: a retry, redrive or backfill finishing a failed run's claim must attribute as that run did, or
 * the packets it stored are counted again under other holders. Counts are compared by address, which attribution
 * does not change.
 */
async function scheduleProperty(changing: boolean): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      worldArb,
      // Two batchings of every stream: the subscription's, and another (a duplicate delivery batched otherwise).
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 9 }),
      // The real budgets, budgets so small that minutes take several pages, or writers with different budgets
      // (versions before and after a change of them), taken in turn.
      fc.constantFrom<CoverageOptions[]>(
        [{}],
        [{ minuteEventBudget: 2 }],
        [{ minuteEventBudget: 3, itemClaimBudget: 2 }],
        [{ minuteEventBudget: 2 }, { minuteEventBudget: 4, itemClaimBudget: 2 }, {}],
      ),
      fc.constantFrom(60, 300),
      fc.integer({ min: 1, max: 1_000_000 }),
      // Which requests of a faulty run may fail: any, or only its flow writes (it dies between claim and
      // store), or only its coverage requests (it dies while claiming, or before marking).
      fc.constantFrom<FaultTarget>("any", "FLOW#", "COVER#"),
      async (world, sizes, otherSizes, steps, budgetChoices, bucketSeconds, faultSeed, target) => {
        const events = eventsOf(world);
        if (events.length === 0) return;
        clusters++;
        const cluster = `diff${clusters}`;
        const stores = storesFor(bucketSeconds);
        proxy.setPlan({
          throttle: 0.1,
          error: 0.2,
          lost: 0.2,
          seed: faultSeed,
          eligible: target === "any" ? undefined : (_, body) => JSON.stringify(body).includes(`"${target}`),
        });

        const payloads = STREAMS.flatMap((stream) => {
          const mine = events.filter((e) => e.stream === stream);
          // Deliveries need not be in time order: every other batch of the second batching is reversed.
          const others = batches(mine, otherSizes).map((b, i) => (i % 2 === 1 ? b.reverse() : b));
          return [...batches(mine, sizes), ...others];
        }).filter((p) => p.length > 0);
        // What the on-failure destination keeps, and what the subscription delivers: `awslogs.data`.
        const data = payloads.map((p) => encodeSubscriptionData(payloadOf((p[0] as Event).stream, p, GROUP)));
        const minuteEvents = (stream: number, minute: number) =>
          events.filter(
            (e) =>
              e.stream === STREAMS[stream] &&
              e.timestamp >= T0 + minute * MINUTE_MS &&
              e.timestamp < T0 + (minute + 1) * MINUTE_MS,
          );

        /** What a backfill is given of minute `m`: its events, from the cut on in the window's first minute. */
        const handed = (task: Task & { kind: "backfill" }, m: number): Event[] => {
          const start = T0 + m * MINUTE_MS + (m === task.minutes[0] ? task.cut : 0);
          return minuteEvents(task.stream, m).filter((e) => e.timestamp >= start);
        };

        let epoch = 0;
        const deps = (faulty: boolean): IngestDeps => ({
          store: faulty ? stores.faultyFlows : stores.flows,
          alertWindowMs: 15 * 60_000,
          alertCap: 50,
          pipeline: {
            ...pipelineOptions(cluster),
            bucketSeconds,
            ...(changing ? { directory: DIRECTORIES[epoch % DIRECTORIES.length] as IpDirectory } : {}),
          },
          ...(changing ? { memos: stores.memos } : {}),
        });
        const coverageOf = (faulty: boolean) => (faulty ? stores.faultyCoverage : stores.coverage);

        let runs = 0;
        const perform = async (task: Task, faulty: boolean): Promise<void> => {
          const budgets = budgetChoices[runs++ % budgetChoices.length] as CoverageOptions;
          if (task.kind === "delivery") {
            const raw = data[task.payload] as string;
            if (task.source === "live") {
              // As the ingest function reads it: events kept in the delivery's bytes.
              const d = decodeDelivery(raw);
              await ingestDelivery(
                { logGroup: d.logGroup, logStream: d.logStream, logEvents: d.events },
                deps(faulty),
                coverageOf(faulty),
                "live",
                budgets,
              );
            } else {
              // As `redrive` reads it from the on-failure record.
              await ingestDelivery(
                decodeSubscriptionData(raw),
                deps(faulty),
                coverageOf(faulty),
                "redrive",
                budgets,
              );
            }
            return;
          }
          const late = Date.now() + PENDING_GRACE_MS + MINUTE_MS;
          const options = task.late ? { ...budgets, now: () => late } : budgets;
          const ref = { cluster, group: GROUP, stream: STREAMS[task.stream] as string };
          const first = T0 + (task.minutes[0] as number) * MINUTE_MS;
          const last = T0 + (task.minutes[task.minutes.length - 1] as number) * MINUTE_MS;
          // As the CLI does: one read of every minute's coverage first, so the later minutes' is older.
          const known = new Map((await coverageOf(faulty).read(ref, first, last)).map((c) => [c.minute, c]));
          for (const m of task.minutes) {
            const inMinute = handed(task, m);
            if (inMinute.length === 0) continue;
            const minute = T0 + m * MINUTE_MS;
            await backfillMinute(
              ref,
              minute,
              inMinute.map(({ id, timestamp, message }) => ({ id, timestamp, message })),
              deps(faulty),
              coverageOf(faulty),
              { ...options, known: known.get(minute) ?? { minute, version: 0, claims: [] } },
            );
          }
        };
        const eventsOfTask = (task: Task): Event[] =>
          task.kind === "delivery"
            ? (payloads[task.payload] as Event[])
            : task.minutes.flatMap((m) => handed(task, m));

        const everything = reference(events, bucketSeconds);
        /** Events of runs that succeeded. */
        const covered = new Set<Event>();
        /** Runs that failed and were not run again with success since (oldest first). */
        let failed: Task[] = [];
        let lastStored: number | undefined;
        const stored = new Set<number>();
        const trail: string[] = [];

        for (const [n, step] of steps.entries()) {
          epoch = n;
          const tasks: { task: Task; faulty: boolean }[] = [];
          for (const op of step) {
            if (op.kind === "live" || op.kind === "redrive") {
              tasks.push({
                task: { kind: "delivery", source: op.kind, payload: op.payload % payloads.length },
                faulty: op.faulty,
              });
            } else if (op.kind === "backfill") {
              const minutes = [];
              for (let m = op.from; m < Math.min(MINUTES, op.from + op.length); m++) minutes.push(m);
              tasks.push({
                task: { kind: "backfill", stream: op.stream, minutes, cut: op.cut, late: op.late },
                faulty: op.faulty,
              });
            } else if (op.kind === "retry") {
              const oldest = failed[0];
              if (oldest !== undefined) {
                // A Lambda retry of a delivery, or the same backfill command again.
                const task: Task = oldest.kind === "backfill" ? { ...oldest, late: false } : oldest;
                tasks.push({ task, faulty: op.faulty });
              }
            } else if (lastStored !== undefined) {
              tasks.push({
                task: { kind: "delivery", source: "live", payload: lastStored },
                faulty: op.faulty,
              });
            }
          }
          if (tasks.length === 0) continue;
          // Only deliveries of payloads stored before: they must change no count, even when they fail.
          const repeats = tasks.every((t) => t.task.kind === "delivery" && stored.has(t.task.payload));
          const before = repeats ? await storedCounts(stores.flows, cluster) : undefined;

          const outcomes = await Promise.all(
            tasks.map(({ task, faulty }) =>
              perform(task, faulty).then(
                () => true,
                (error: Error) => {
                  // Only the injected faults may fail a run.
                  expect(faulty, String(error.stack)).toBe(true);
                  return false;
                },
              ),
            ),
          );
          trail.push(
            `step ${n}: ${tasks.map(({ task, faulty }, i) => `${JSON.stringify(task)}${faulty ? " faulty" : ""} ${outcomes[i] ? "ok" : "FAILED"}`).join(" | ")}`,
          );
          const where = trail.join("\n");

          // A success clears failures of earlier steps that it finishes: the same payload stored, or a backfill
          // of the same minute (which finishes a backfill's unfinished claims there).
          const finishes = (done: Task, f: Task): boolean =>
            done.kind === "delivery"
              ? f.kind === "delivery" && f.payload === done.payload
              : f.kind === "backfill" &&
                f.stream === done.stream &&
                f.minutes.every((m) => done.minutes.includes(m) && (m !== done.minutes[0] || done.cut === 0));
          const succeeded = tasks.filter((_, i) => outcomes[i]).map((t) => t.task);
          failed = failed.filter((f) => !succeeded.some((done) => finishes(done, f)));
          for (const [i, { task }] of tasks.entries()) {
            if (outcomes[i]) {
              for (const e of eventsOfTask(task)) covered.add(e);
              if (task.kind === "delivery") {
                stored.add(task.payload);
                lastStored = task.payload;
              }
            } else {
              failed.push(task);
            }
          }

          const now = await storedCounts(stores.flows, cluster);
          expectAtMost(now, everything, where);
          // Every event of a run that succeeded is counted, unless a run that failed (and was not run again
          // since) holds it: its claim keeps it until its retry, its redrive or a late backfill stores it.
          const uncertain = new Set(failed.flatMap(eventsOfTask));
          expectAtLeast(
            now,
            reference(
              [...covered].filter((e) => !uncertain.has(e)),
              bucketSeconds,
            ),
            where,
          );
          if (before !== undefined) expect(now, `${where}\nredelivery changed counts`).toEqual(before);
        }

        // Recovery: the failed payloads are redriven and the failed backfills run again, then the whole window is
        // backfilled; after that every event is counted exactly once.
        for (const f of failed) {
          epoch++;
          await perform(f.kind === "delivery" ? { ...f, source: "redrive" } : { ...f, late: false }, false);
        }
        for (let s = 0; s < STREAMS.length; s++) {
          epoch++;
          await perform({ kind: "backfill", stream: s, minutes: ALL_MINUTES, cut: 0, late: false }, false);
        }
        const final = await storedCounts(stores.flows, cluster);
        expect(final, `${trail.join("\n")}\nafter recovery`).toEqual(everything);
        // And nothing run again changes them: every payload redelivered, the window backfilled again.
        for (let p = 0; p < payloads.length; p++) {
          await perform({ kind: "delivery", source: p % 2 === 0 ? "live" : "redrive", payload: p }, false);
        }
        for (let s = 0; s < STREAMS.length; s++) {
          await perform({ kind: "backfill", stream: s, minutes: ALL_MINUTES, cut: 0, late: true }, false);
        }
        expect(await storedCounts(stores.flows, cluster), `${trail.join("\n")}\nrun again`).toEqual(
          everything,
        );
      },
    ),
    // Each run replays a whole schedule against dynalite: a failure is reported as found (its message lists
    // the steps and their outcomes) rather than shrunk through hundreds of replays.
    {
      numRuns: 40,
      endOnFailure: true,
      // To replay a failure: FC_SEED and FC_PATH, as it prints them.
      ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
      ...(process.env.FC_PATH === undefined ? {} : { path: process.env.FC_PATH }),
    },
  );
}

describe("coverage against counting every event once", () => {
  it(
    "stores each event's packets and bytes exactly once under any schedule of live, redrive, backfill, races and failures",
    () => scheduleProperty(false),
    90_000,
  );

  it(
    "does so while Kubernetes answers otherwise from step to step, each failed run's attribution kept for its retry",
    () => scheduleProperty(true),
    90_000,
  );

  it("leaves a failed delivery's claim over two minutes of one flow bucket to its redrive, even when late", async () => {
    // A backfill has only one minute of such a claim in hand: storing it under the delivery's contribution would
    // make the redrive's write of the whole bucket a redelivery, and the other minute's events would be lost.
    const stores = storesFor(300);
    clusters++;
    const cluster = `diff${clusters}`;
    const stream = STREAMS[0] as string;
    const [src, dst, port] = [SOURCES[0] as string, DESTINATIONS[0] as string, PORTS[0] as number];
    const events: Event[] = [T0 + 1_000, T0 + MINUTE_MS + 1_000].map((timestamp, i) => ({
      id: `${String(timestamp).padStart(20, "0")}${String(i + 1).padStart(36, "0")}`,
      timestamp,
      stream,
      src,
      dst,
      port,
      length: 100 + i,
      message: calicoLine(timestamp, stream, src, dst, port, 100 + i),
    }));
    const deps = (store: DynamoFlowStore): IngestDeps => ({
      store,
      alertWindowMs: 15 * 60_000,
      alertCap: 50,
      pipeline: { ...pipelineOptions(cluster), bucketSeconds: 300 },
    });
    const payload = payloadOf(stream, events, GROUP);
    // Every flow write fails: the delivery dies between its claims and its store.
    proxy.setPlan({ error: 1, eligible: (_, body) => JSON.stringify(body).includes('"FLOW#') });
    await expect(
      ingestDelivery(payload, deps(stores.faultyFlows), stores.faultyCoverage, "live"),
    ).rejects.toThrow();
    const late = Date.now() + PENDING_GRACE_MS + MINUTE_MS;
    for (const [m, e] of events.entries()) {
      const result = await backfillMinute(
        { cluster, group: GROUP, stream },
        T0 + m * MINUTE_MS,
        [{ id: e.id, timestamp: e.timestamp, message: e.message }],
        deps(stores.flows),
        stores.coverage,
        { now: () => late },
      );
      expect([result.completed, result.pending, result.stored]).toEqual([0, 1, 0]);
    }
    await ingestDelivery(payload, deps(stores.flows), stores.coverage, "redrive");
    expect(await storedCounts(stores.flows, cluster)).toEqual(reference(events, 300));
  });
});
