// Review of the attribution memo (functions/core/attribution-memo.ts) and the ingest deadline (ingest.ts): cases
// where a retry still attributes otherwise than the failed run, where a payload can never be stored, and where a
// run that failed at its deadline goes on working.
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { DynamoMemoStore } from "../../functions/adapters/dynamo/memos.ts";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { decodeMemo, encodeMemo, RecordingDirectory } from "../../functions/core/attribution-memo.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import { Deadline } from "../../functions/core/deadline.ts";
import { DeliveredEvents } from "../../functions/core/delivered-events.ts";
import { type IngestDeps, IngestOutOfTimeError, ingestBatch } from "../../functions/core/ingest.ts";
import type { LogEvent } from "../../functions/core/pipeline.ts";
import type { FlowStore, FlowWriteResult } from "../../functions/core/ports.ts";
import { deliveryContribution } from "../../functions/core/subscription-payload.ts";
import type { FlowRecord, IpDirectory, SpanResolution } from "../../functions/core/types.ts";
import {
  type CwEvent,
  calicoLine,
  DESTINATIONS,
  expectedByAddress,
  ingestDeps,
  PORTS,
  payloadOf,
  directory as podDirectory,
  SOURCES,
  storedByAddress,
  T0,
  total,
} from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

let ts: TestStore;
let flows: DynamoFlowStore;
let coverage: DynamoCoverageStore;
let memos: DynamoMemoStore;
let clusters = 0;

beforeAll(async () => {
  ts = await startTestStore();
  flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
  coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
  memos = new DynamoMemoStore({ client: ts.client, tableName: ts.tableName });
});
afterAll(async () => {
  await ts?.close();
});

const MINUTE_MS = 60_000;
let sequence = 0;

/** `count` events of one stream over two minutes, every source and destination of the fixtures in turn. */
function eventsOf(stream: string, count: number): CwEvent[] {
  return Array.from({ length: count }, (_, k) => {
    const at = T0 + Math.floor((k * 2 * MINUTE_MS) / count);
    sequence++;
    return {
      id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
      timestamp: at,
      stream,
      message: calicoLine(
        at,
        stream,
        SOURCES[k % SOURCES.length] as string,
        DESTINATIONS[k % DESTINATIONS.length] as string,
        PORTS[k % PORTS.length] as number,
      ),
    };
  });
}

/** The flow store with one fault: the next write stores half of the flows, then fails. */
class HalfFailingStore implements FlowStore {
  #failNext = true;

  async writeFlows(records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> {
    if (this.#failNext) {
      this.#failNext = false;
      await flows.writeFlows(records.slice(0, Math.ceil(records.length / 2)), contribution);
      throw new Error("injected: connection lost after a partial write");
    }
    return flows.writeFlows(records, contribution);
  }
  applyAlerts: FlowStore["applyAlerts"] = (c, id, o) => flows.applyAlerts(c, id, o);
  markAlertSent: FlowStore["markAlertSent"] = (a, how) => flows.markAlertSent(a, how);
  queryFlows: FlowStore["queryFlows"] = (q) => flows.queryFlows(q);
  queryAlerts: FlowStore["queryAlerts"] = (q) => flows.queryAlerts(q);
}

/** The fixtures' pods, through a directory that answers for spans as the live and snapshot directories do. */
const spanDirectory: IpDirectory = {
  resolve: (lookups) => podDirectory.resolve(lookups),
  resolveSpans: async (spans): Promise<SpanResolution[]> => podDirectory.resolve(spans),
};

/**
 * No pod source, asked point by point only: the Lambda with attribution switched off, or `redrive` run where
 * there is no kubeconfig and no --pods file (cli/directory.ts).
 */
const noPodSource: IpDirectory = {
  resolve: async (lookups) => lookups.map(() => ({ status: "unavailable", reason: "no pod source" })),
};

interface Case {
  cluster: string;
  stream: string;
  events: CwEvent[];
  deps(directory: IpDirectory, store?: FlowStore): IngestDeps;
  stored(): Promise<Map<string, number>>;
}

function newCase(count = 24): Case {
  clusters++;
  const cluster = `review${clusters}`;
  const stream = `ip-10-0-7-${clusters}`;
  return {
    cluster,
    stream,
    events: eventsOf(stream, count),
    deps(directory, store = flows) {
      const deps = { ...ingestDeps(store, cluster), memos };
      deps.pipeline = { ...deps.pipeline, directory };
      return deps;
    },
    stored: () => storedByAddress(flows, cluster, T0 - MINUTE_MS, T0 + 60 * MINUTE_MS),
  };
}

describe("a memo kept by a directory that answers for spans, read by one that does not (and back)", () => {
  // The Lambda (LiveDirectory: spans) failed with half its flows stored; `calico-flows redrive` is then run
  // without a pod source (points only). The memo holds span answers only, so every point question misses it, the
  // retry attributes afresh and the flows stored before are counted again under other ids.
  it("a redrive with a points-only directory counts every packet once", async () => {
    const c = newCase();
    const payload = payloadOf(c.stream, c.events);
    await expect(
      ingestDelivery(payload, c.deps(spanDirectory, new HalfFailingStore()), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const redriven = await ingestDelivery(payload, c.deps(noPodSource), coverage, "redrive");
    expect(redriven.attributionMemo).toBe("reused");
    expect(total(await c.stored())).toBe(c.events.length);
    expect(await c.stored()).toEqual(expectedByAddress(c.events));
  });

  // The Lambda with attribution switched off (points) failed half stored; redrive with a kubeconfig (spans).
  it("a redrive with a span directory after a points-only run counts every packet once", async () => {
    const c = newCase();
    const payload = payloadOf(c.stream, c.events);
    await expect(
      ingestDelivery(payload, c.deps(noPodSource, new HalfFailingStore()), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const redriven = await ingestDelivery(payload, c.deps(spanDirectory), coverage, "redrive");
    expect(redriven.attributionMemo).toBe("reused");
    expect(total(await c.stored())).toBe(c.events.length);
    expect(await c.stored()).toEqual(expectedByAddress(c.events));
  });
});

describe("a memo this version cannot read", () => {
  // A memo of another format (kept by a newer release, then rolled back) or a damaged item: decodeMemo throws
  // before the pipeline runs, in every retry, in redrive and in a backfill finishing the claim. The payload is
  // never stored; its packets are counted nowhere.
  it("does not keep the payload from being stored", async () => {
    const c = newCase();
    const payload = payloadOf(c.stream, c.events);
    await expect(
      ingestDelivery(payload, c.deps(podDirectory, new HalfFailingStore()), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const newer = gzipSync(JSON.stringify({ v: 2, answers: [], spans: [], points: [], holders: [] }));
    const contribution = deliveryContribution(
      payload.logGroup,
      payload.logStream,
      DeliveredEvents.fromArray(payload.logEvents).withNode(payload.logStream),
    );
    expect((await memos.load(c.cluster, contribution))?.version).toBe(1);
    expect(await memos.save(c.cluster, contribution, newer, 1, T0)).toBe(true);

    const retried = await ingestDelivery(payload, c.deps(podDirectory), coverage, "live").then(
      (r) => r,
      (error: unknown) => error,
    );
    expect(retried).not.toBeInstanceOf(Error);
    expect(await c.stored()).toEqual(expectedByAddress(c.events));
  });
});

describe("a memo saved again by the retry that read it", () => {
  // A retry that asked something new saves the memo it read (its questions rebuilt from their keys) with its own:
  // IPv6 addresses (colons), times before 1970 and a span of one second must come back as they were asked.
  it("answers the first run's questions, IPv6 and negative times included, without asking", async () => {
    const holder = (name: string) => ({
      kind: "pod" as const,
      namespace: "shop",
      name,
      workload: null,
      node: null,
      uid: null,
      validFrom: -86_400_000,
      validTo: null,
    });
    const answer = (ip: string, at: number): SpanResolution =>
      ip === "fd00::7" ? { status: "varies" } : { status: "found", holder: holder(`${ip}@${at}`) };
    const counting = () => {
      const asked: string[] = [];
      const inner: IpDirectory = {
        resolve: async (lookups) => {
          for (const l of lookups) asked.push(`point ${l.ip} ${l.at}`);
          return lookups.map((l) => ({ status: "found", holder: holder(`${l.ip}@${l.at}`) }));
        },
        resolveSpans: async (spans) => {
          for (const q of spans) asked.push(`span ${q.ip} ${q.at} ${q.until}`);
          return spans.map((q) => answer(q.ip, q.at));
        },
      };
      return { asked, inner };
    };
    const spans = [
      { ip: "fd00::1", at: -5_000, until: -1_000 },
      { ip: "2001:db8::a:1", at: 0, until: 0 },
      { ip: "fd00::7", at: -2_000, until: 3_000 },
    ];
    const points = [
      { ip: "fd00::7", at: -2_000 },
      { ip: "fd00::7", at: 3_000 },
    ];
    const first = counting();
    const run1 = new RecordingDirectory(first.inner);
    const answered = [await run1.resolveSpans?.(spans), await run1.resolve(points)];

    const second = counting();
    const run2 = new RecordingDirectory(second.inner, decodeMemo(encodeMemo(run1.memo()) as Uint8Array));
    expect([await run2.resolveSpans?.(spans), await run2.resolve(points)]).toEqual(answered);
    await run2.resolve([{ ip: "192.168.1.1", at: -60_000 }]);
    expect(second.asked).toEqual(["point 192.168.1.1 -60000"]);

    const third = counting();
    const run3 = new RecordingDirectory(third.inner, decodeMemo(encodeMemo(run2.memo()) as Uint8Array));
    expect([await run3.resolveSpans?.(spans), await run3.resolve(points)]).toEqual(answered);
    expect(await run3.resolve([{ ip: "192.168.1.1", at: -60_000 }])).toEqual([
      { status: "found", holder: holder("192.168.1.1@-60000") },
    ]);
    expect(third.asked).toEqual([]);
  });
});

/** A promise and the function that resolves it. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

/** The flow writes were already in flight at the deadline; they land after it (`landed` opens). */
class LateStore implements FlowStore {
  readonly landed = gate();

  async writeFlows(records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> {
    const result = await flows.writeFlows(records, contribution);
    await this.landed.opened;
    return result;
  }
  applyAlerts: FlowStore["applyAlerts"] = (c, id, o) => flows.applyAlerts(c, id, o);
  markAlertSent: FlowStore["markAlertSent"] = (a, how) => flows.markAlertSent(a, how);
  queryFlows: FlowStore["queryFlows"] = (q) => flows.queryFlows(q);
  queryAlerts: FlowStore["queryAlerts"] = (q) => flows.queryAlerts(q);
}

const logEvents = (events: readonly CwEvent[]): LogEvent[] =>
  events.map((e) => ({ message: e.message, timestamp: e.timestamp, node: e.stream }));

describe("a run that failed at its deadline", () => {
  // withinDeadline answers IngestOutOfTimeError while storeBatch goes on: when the writes in flight land (a batch of
  // at most `concurrency` flows is all in flight) writeFlows resolves, and the failed run must not then mark its
  // claims stored, open its alerts or publish them: the invocation has failed and is retried.
  it("marks nothing and publishes nothing after it failed", async () => {
    const c = newCase(12);
    const store = new LateStore();
    const published: string[] = [];
    const sink: AlertPublisher = {
      publishAlert: async (alert) => {
        published.push(alert.id);
      },
      publishSummary: async () => undefined,
      publishPanic: async () => undefined,
    };
    let marked = 0;
    const failed = ingestBatch(
      logEvents(c.events),
      `deadline-${c.cluster}`,
      { ...c.deps(podDirectory, store), sink },
      {
        firstRun: true,
        deadline: Deadline.after(100),
        onFlowsStored: async () => {
          marked++;
        },
      },
    );
    await expect(failed).rejects.toBeInstanceOf(IngestOutOfTimeError);
    store.landed.open();
    await new Promise((r) => setTimeout(r, 500));
    expect({ marked, published }).toEqual({ marked: 0, published: [] });
  });

  // A deadline already past when storing begins (the claims and a slow Kubernetes API took the time): the timer,
  // set after storeBatch started, would fire only once `concurrency` writes were under way.
  it("starts no flow write when its deadline has passed before storing began", async () => {
    const c = newCase(12);
    await expect(
      ingestBatch(logEvents(c.events), `past-${c.cluster}`, c.deps(podDirectory), {
        firstRun: true,
        deadline: Deadline.after(-1_000),
      }),
    ).rejects.toBeInstanceOf(IngestOutOfTimeError);
    await new Promise((r) => setTimeout(r, 300));
    expect(await c.stored()).toEqual(new Map());
  });
});
