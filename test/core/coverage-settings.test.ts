// A contribution stored in part under some settings and finished under others: a Lambda retry across a change of the
// stack's settings, a redrive or a backfill given other options. Flow ids digest a bucket's start, not its length, and
// the retry shares the failed run's contribution token: storing with its own settings, it would take flows the failed
// run stored for redeliveries (lost packets) or write the same packets under other ids (counted twice). The claim the
// failed run wrote records its settings, and whoever finishes that contribution stores with them. Against dynalite.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { CidrSet, DEFAULT_WORKLOAD_INTERFACE_PREFIXES } from "../../functions/core/classify.ts";
import {
  backfillMinute,
  type CoverageStore,
  ingestDelivery,
  MINUTE_MS,
  minuteOf,
  PENDING_GRACE_MS,
} from "../../functions/core/coverage.ts";
import type { IngestDeps, IngestSettings } from "../../functions/core/ingest.ts";
import { createScanner } from "../../functions/core/parse.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import {
  type CwEvent,
  calicoLine,
  directory,
  GROUP,
  payloadOf,
  storedPackets,
  T0,
  total,
} from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { HalfWrittenStore } from "../support/half-written-store.ts";

const STREAM = "ip-192-168-74-5";

let ts: TestStore;
let flows: DynamoFlowStore;
let coverage: DynamoCoverageStore;
let clusters = 0;

beforeAll(async () => {
  ts = await startTestStore();
  flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
  coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
});
afterAll(async () => {
  await ts?.close();
});

const STACK: IngestSettings = {
  bucketSeconds: 60,
  prefix: "calico-packet",
  internalCidrs: ["192.168.0.0/16"],
  workloadInterfacePrefixes: DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
  alertWindowMs: 15 * 60_000,
};

/** Ingest dependencies made from `settings`, as the ingest function and the CLI make theirs. */
function depsOf(store: FlowStore, cluster: string, settings: IngestSettings, recorded = true): IngestDeps {
  return {
    store,
    alertWindowMs: settings.alertWindowMs,
    alertCap: 50,
    ...(recorded ? { settings } : {}),
    pipeline: {
      cluster,
      internal: new CidrSet(settings.internalCidrs),
      bucketSeconds: settings.bucketSeconds,
      scanner: createScanner({ year: 2026, prefix: settings.prefix, prefixFormat: settings.prefixFormat }),
      directory,
      workloadInterfacePrefixes: settings.workloadInterfacePrefixes,
      scanThreshold: settings.scanThreshold,
    },
  };
}

let sequence = 0;

/** A denial a second from `from` for `seconds` seconds, from a known pod to two others in turn. */
function denials(from: number, seconds: number): CwEvent[] {
  return Array.from({ length: seconds }, (_, i) => {
    const at = from + i * 1_000;
    sequence++;
    return {
      id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
      timestamp: at,
      stream: STREAM,
      message: calicoLine(at, STREAM, "192.168.22.247", i % 2 ? "192.168.94.122" : "192.168.61.8", 5432),
    };
  });
}

/** The coverage store with `read` or `addClaim` in between. */
function coverageWith(o: Pick<Partial<CoverageStore>, "read" | "addClaim">): CoverageStore {
  return {
    read: o.read ?? ((...a) => coverage.read(...a)),
    addClaim: o.addClaim ?? ((...a) => coverage.addClaim(...a)),
    seal: (...a) => coverage.seal(...a),
    markStored: (...a) => coverage.markStored(...a),
  };
}

const window = (cluster: string) => storedPackets(flows, cluster, T0 - MINUTE_MS, T0 + 10 * MINUTE_MS);

describe("a contribution finished under other settings than the ones it was claimed under", () => {
  it.each<[string, Partial<IngestSettings>, Partial<IngestSettings>]>([
    [
      "a 30 s bucket, resumed with 60 s (the flows stored would look like redeliveries)",
      { bucketSeconds: 30 },
      {},
    ],
    ["a 60 s bucket, resumed with 30 s (the packets stored would count again)", {}, { bucketSeconds: 30 }],
    ["other internal ranges (the ends would be external: other keys)", {}, { internalCidrs: ["10.0.0.0/8"] }],
    ["another log prefix (the lines not stored yet would be read as none)", {}, { prefix: "cali-deny" }],
  ])("stores every event once: %s", async (_, first, then) => {
    const cluster = `settings-${++clusters}`;
    const claimed = { ...STACK, ...first };
    const events = denials(T0, 60);
    const payload = payloadOf(STREAM, events);
    await expect(
      ingestDelivery(payload, depsOf(new HalfWrittenStore(flows), cluster, claimed), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    expect(total(await window(cluster))).toBeLessThan(events.length);

    const resumed = await ingestDelivery(
      payload,
      depsOf(flows, cluster, { ...STACK, ...then }),
      coverage,
      "redrive",
    );
    expect(total(await window(cluster))).toBe(events.length);
    expect(resumed.settings).toEqual(claimed);
    // Stored as the failed run would have: in its buckets.
    const buckets = new Set([...(await window(cluster)).keys()].map((k) => k.split("|")[0]));
    expect(buckets.size).toBe(60 / claimed.bucketSeconds);
  });

  it("finishes a run's claim with its own settings when they are the claim's, and says nothing of them", async () => {
    const cluster = `settings-${++clusters}`;
    const events = denials(T0 + MINUTE_MS, 20);
    const payload = payloadOf(STREAM, events);
    await expect(
      ingestDelivery(payload, depsOf(new HalfWrittenStore(flows), cluster, STACK), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const resumed = await ingestDelivery(payload, depsOf(flows, cluster, { ...STACK }), coverage, "live");
    expect(resumed.settings).toBeUndefined();
    expect(total(await window(cluster))).toBe(events.length);
  });

  it("takes ranges spelled otherwise for the claim's own: no adopted settings, no note", async () => {
    const cluster = `settings-${++clusters}`;
    const events = denials(T0 + 3 * MINUTE_MS, 20);
    const payload = payloadOf(STREAM, events);
    const claimed = { ...STACK, internalCidrs: ["192.168.0.0/16", "fd00::/8"] };
    await expect(
      ingestDelivery(payload, depsOf(new HalfWrittenStore(flows), cluster, claimed), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const respelled = { ...STACK, internalCidrs: ["FD00:0::/8", "192.168.7.0/16"] };
    const resumed = await ingestDelivery(payload, depsOf(flows, cluster, respelled), coverage, "redrive");
    expect(resumed.settings).toBeUndefined();
    expect(total(await window(cluster))).toBe(events.length);
  });

  it("resumes a claim written before settings were recorded with the run's own, as before", async () => {
    const cluster = `settings-${++clusters}`;
    const events = denials(T0 + 2 * MINUTE_MS, 20);
    const payload = payloadOf(STREAM, events);
    const unrecorded = depsOf(new HalfWrittenStore(flows), cluster, STACK, false);
    await expect(ingestDelivery(payload, unrecorded, coverage, "live")).rejects.toThrow(/partial write/);
    const [minute] = await coverage.read({ cluster, group: GROUP, stream: STREAM }, T0, T0 + 5 * MINUTE_MS);
    expect(minute?.claims.map((c) => c.settings)).toEqual([undefined]);
    const resumed = await ingestDelivery(payload, depsOf(flows, cluster, STACK), coverage, "redrive");
    expect(resumed.settings).toBeUndefined();
    expect(total(await window(cluster))).toBe(events.length);
  });

  it("stores a delivery whose duplicate on other settings claimed it first with the duplicate's settings", async () => {
    const cluster = `settings-${++clusters}`;
    const events = denials(T0 + 6 * MINUTE_MS, 60);
    const payload = payloadOf(STREAM, events);
    // A deploy that changed aggregationSeconds, and a delivery run twice at once: by the new version, and by the old
    // one (30 s buckets), whose claim lands between the new one's read and its claim, and which stores only after it.
    const read = Promise.withResolvers<void>();
    const claimed = Promise.withResolvers<void>();
    const done = Promise.withResolvers<void>();
    let reads = 0;
    const run = ingestDelivery(
      payload,
      depsOf(flows, cluster, STACK),
      coverageWith({
        read: async (...a) => {
          const found = await coverage.read(...a);
          if (++reads === 1) {
            read.resolve();
            await claimed.promise;
          }
          return found;
        },
      }),
      "live",
    ).finally(done.resolve);
    await read.promise;
    const duplicate = ingestDelivery(
      payload,
      depsOf(flows, cluster, { ...STACK, bucketSeconds: 30 }),
      coverageWith({
        addClaim: async (...a) => {
          const written = await coverage.addClaim(...a);
          claimed.resolve();
          await done.promise;
          return written;
        },
      }),
      "live",
    );
    const [ours, theirs] = await Promise.all([run, duplicate]);
    expect(total(await window(cluster))).toBe(events.length);
    expect(ours.settings?.bucketSeconds).toBe(30);
    expect(theirs.settings).toBeUndefined();
  });

  it("a backfill finishing a dead writer's claim stores it with the writer's settings", async () => {
    const cluster = `settings-${++clusters}`;
    const events = denials(T0 + 3 * MINUTE_MS, 60);
    await expect(
      ingestDelivery(
        payloadOf(STREAM, events),
        depsOf(new HalfWrittenStore(flows), cluster, { ...STACK, bucketSeconds: 20 }),
        coverage,
        "live",
      ),
    ).rejects.toThrow(/partial write/);
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const result = await backfillMinute(
      { cluster, group: GROUP, stream: STREAM },
      T0 + 3 * MINUTE_MS,
      events,
      depsOf(flows, cluster, STACK),
      coverage,
      { now: () => late },
    );
    expect(result.completed).toBe(events.length);
    expect(total(await window(cluster))).toBe(events.length);
    expect(result.batches.map((b) => b.settings?.bucketSeconds)).toEqual([20]);
  });

  it("a backfill with buckets that straddle minutes finishes a claim over two minutes made with buckets that do not", async () => {
    const cluster = `settings-${++clusters}`;
    // Over two minutes, claimed under 60 s buckets: each minute's flows are the delivery's alone.
    const events = denials(T0 + 4 * MINUTE_MS + 50_000, 20);
    await expect(
      ingestDelivery(
        payloadOf(STREAM, events),
        depsOf(new HalfWrittenStore(flows), cluster, STACK),
        coverage,
        "live",
      ),
    ).rejects.toThrow(/partial write/);
    const late = Date.now() + PENDING_GRACE_MS + 60_000;
    const backfiller = depsOf(flows, cluster, { ...STACK, bucketSeconds: 45 });
    let completed = 0;
    for (const minute of [T0 + 4 * MINUTE_MS, T0 + 5 * MINUTE_MS]) {
      const own = events.filter((e) => minuteOf(e.timestamp) === minute);
      const result = await backfillMinute(
        { cluster, group: GROUP, stream: STREAM },
        minute,
        own,
        backfiller,
        coverage,
        {
          now: () => late,
        },
      );
      expect(result.pending).toBe(0);
      completed += result.completed;
    }
    expect(completed).toBe(events.length);
    expect(total(await window(cluster))).toBe(events.length);
  });
});
