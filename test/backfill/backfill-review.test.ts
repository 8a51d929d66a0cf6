// Review test of `calico-flows backfill` against an independent reference: generated log groups whose streams
// hold calico-packet lines over hours (events exactly at minute and window boundaries, streams chosen by prefix,
// empty and long-idle streams, events put out of order, pages of every size), read through the local CloudWatch
// Logs endpoint (throttling, and 500s from a fault proxy in front of it, up to the tries the reader makes of a
// call), interrupted and resumed from the checkpoint or restarted. What is stored must be, flow by flow, every
// event of [since, until) of the selected streams counted once; a repeated or overlapping backfill adds nothing
// twice; the summary says what was stored. A run ended by a call failing on all its tries resumes the same way.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { prng } from "../../bench/corpus.ts";
import type { BackfillSummary, Checkpoint } from "../../cli/commands/backfill.ts";
import { runCli } from "../cli/run.ts";
import { type LocalLogs, type StoredEvent, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import {
  backfillCommand as backfillCli,
  backfillOptions,
  calicoLine,
  DESTINATIONS,
  expectedByAddress,
  PORTS,
  runBackfill,
  SOURCES,
  storedByAddress,
  useBackfillWorld,
} from "./fixtures.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Start of the generated history: events lie in [BASE, BASE + 4 h), windows inside it. */
const BASE = Date.parse("2026-04-19T02:00:00.000Z");
const SPAN = 4 * HOUR;
const GROUPS = ["/aws/eks/review/calico", "/aws/eks/review/calico-b"];
const STREAM_NAMES = ["ip-10-0-1-1", "ip-10-0-1-2", "ip-10-0-2-7", "ip-172-31-0-5", "fargate-ip-10-9"];
const PREFIXES = [undefined, "ip-10-", "ip-10-0-1", "ip-172"];
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The property's runs (40), overridable to look for a rare failure or replay one: FC_NUM_RUNS, FC_SEED and
 * FC_PATH (fast-check's numRuns, seed and path, as a failure prints them). Its timeout grows with the runs.
 */
const NUM_RUNS = Number(process.env.FC_NUM_RUNS ?? 40);
const REPLAY = {
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
  ...(process.env.FC_PATH === undefined ? {} : { path: process.env.FC_PATH }),
};
const PROPERTY_TIMEOUT_MS = Math.max(120_000, NUM_RUNS * 3_000);

/**
 * Tries the backfill's reader makes of one CloudWatch Logs call before it gives up and ends the run with the
 * service's error (CloudWatchLogsReader's default `retry.attempts`; docs/backfill.md: "A call that fails 10 times
 * ends the run", which cloudwatch-logs-review.test.ts checks).
 */
const READER_TRIES = 10;

/** The store and scratch directory, as in every backfill test (`World` is the generated CloudWatch Logs). */
const shared = useBackfillWorld("backfill-review");

// ---- the generated world ------------------------------------------------------------------------------------

/** An event time, relative to the window where it matters. */
type At =
  | { kind: "since" | "until"; delta: number }
  | { kind: "minute"; minute: number; delta: number }
  | { kind: "inside"; share: number }
  | { kind: "any"; offset: number };

type Line = "calico" | "malformed" | "skipped" | "other";

interface GenEvent {
  at: At;
  line: Line;
  flow: number;
}

interface GenStream {
  group: number;
  name: number;
  events: GenEvent[];
  /** Put in this many appends, each shuffled (arrival out of timestamp order). */
  chunks: number;
  /** Only events far older than any window: a stream the listing skips. */
  idle: boolean;
}

interface Window {
  startMinute: number;
  startOffset: number;
  minutes: number;
  endOffset: number;
}

const windowArb: fc.Arbitrary<Window> = fc.record({
  startMinute: fc.integer({ min: 30, max: 150 }),
  startOffset: fc.constantFrom(0, 0, 1, 30_000, 59_999),
  minutes: fc.integer({ min: 1, max: 45 }),
  endOffset: fc.constantFrom(0, 0, 1, 45_000, 59_999),
});

const resolveWindow = (w: Window) => {
  const since = BASE + w.startMinute * MINUTE + w.startOffset;
  const until = BASE + (w.startMinute + w.minutes) * MINUTE + w.endOffset;
  return { since, until: until > since ? until : since + 1 };
};

const atArb: fc.Arbitrary<At> = fc.oneof(
  fc.record({ kind: fc.constantFrom("since" as const, "until" as const), delta: fc.constantFrom(-1, 0, 1) }),
  fc.record({
    kind: fc.constant("minute" as const),
    minute: fc.integer({ min: 30, max: 200 }),
    delta: fc.constantFrom(-1, 0, 0, 1),
  }),
  fc.record({ kind: fc.constant("inside" as const), share: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant("inside" as const), share: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant("any" as const), offset: fc.nat(SPAN - 1) }),
);

const eventArb: fc.Arbitrary<GenEvent> = fc.record({
  at: atArb,
  line: fc.constantFrom<Line>(
    "calico",
    "calico",
    "calico",
    "calico",
    "calico",
    "malformed",
    "skipped",
    "other",
  ),
  flow: fc.nat(35),
});

const streamArb: fc.Arbitrary<GenStream> = fc.record({
  group: fc.nat(GROUPS.length - 1),
  name: fc.nat(STREAM_NAMES.length - 1),
  events: fc.array(eventArb, { minLength: 4, maxLength: 40 }),
  chunks: fc.integer({ min: 1, max: 3 }),
  idle: fc.nat(6).map((n) => n === 0),
});

interface Scenario {
  streams: GenStream[];
  window: Window;
  prefix: number;
  overlap: Window;
  overlapPrefix: number;
  scanWindow: number;
  pageSize: number;
  throttle: number;
  serverErrors: number;
  seed: number;
  concurrency: number;
  /** onMinute counts after which each successive run is interrupted (a run that ends first is not). */
  interrupts: number[];
  restartAfterInterrupt: boolean;
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  streams: fc.array(streamArb, { minLength: 2, maxLength: 6 }),
  window: windowArb,
  prefix: fc.nat(PREFIXES.length - 1),
  overlap: windowArb,
  overlapPrefix: fc.nat(PREFIXES.length - 1),
  scanWindow: fc.integer({ min: 1, max: 40 }),
  pageSize: fc.integer({ min: 1, max: 25 }),
  throttle: fc.constantFrom(0, 0.1, 0.3),
  serverErrors: fc.constantFrom(0, 0, 0.15),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  concurrency: fc.integer({ min: 1, max: 4 }),
  interrupts: fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 2 }),
  restartAfterInterrupt: fc.boolean(),
});

function timeOf(at: At, window: { since: number; until: number }): number {
  switch (at.kind) {
    case "since":
      return window.since + at.delta;
    case "until":
      return window.until + at.delta;
    case "minute":
      return BASE + at.minute * MINUTE + at.delta;
    case "inside": {
      // On a minute boundary of the window half the time.
      const at_ = window.since + Math.floor(at.share * (window.until - window.since));
      return at.share < 0.5 ? Math.ceil(at_ / MINUTE) * MINUTE : at_;
    }
    default:
      return BASE + at.offset;
  }
}

function messageOf(line: Line, at: number, node: string, flow: number): string {
  const src = SOURCES[flow % SOURCES.length] as string;
  const dst = DESTINATIONS[(flow >> 2) % DESTINATIONS.length] as string;
  const port = PORTS[(flow >> 3) % PORTS.length] as number;
  const stamp = calicoLine(at, node, src, dst, port).slice(0, 15);
  switch (line) {
    case "calico":
      return calicoLine(at, node, src, dst, port);
    case "malformed":
      return `${stamp} ${node} kernel: calico-packet: IN=eth0 OUT= SRC=300.1.1.${flow} DST=${dst} PROTO=TCP`;
    case "skipped":
      return `${stamp} ${node} kernel: calico-packet: truncated`;
    default:
      return `${stamp} ${node} kubelet[812]: probe ok ${flow}`;
  }
}

interface World {
  logs: LocalLogs;
  proxy: FaultProxy | undefined;
  client: CloudWatchLogsClient;
  /** Every event stored in CloudWatch Logs, by group. */
  events: Map<string, StoredEvent[]>;
  /** Stream names by group, empty streams included. */
  streams: Map<string, Set<string>>;
  close(): Promise<void>;
}

/**
 * The faults of a world, try by try: each try of a call is answered 500 by the proxy (at `serverErrors`) or
 * throttled by the endpoint (at `throttle`), except that a call which has failed READER_TRIES - 1 tries in a row
 * is answered. Drawn independently for every try, 30 % throttling and 15 % errors would fail some call on all of
 * its 10 tries about once in 8,500 calls (0.405¹⁰), once in a few thousand scenarios: the reader then ends the run
 * with the service's error, as documented, a run this property is not about (it follows runs that complete or are
 * interrupted; "ends a run with the error of a call that failed on all 10 tries" below follows that one). A call
 * is known by its operation and parameters, which its retries repeat.
 */
function faultsOf(s: Scenario) {
  const random = prng(s.seed);
  /** Tries of each call since it last succeeded. */
  const tries = new Map<string, number>();
  const keyOf = (operation: string, params: Record<string, unknown>) =>
    `${operation} ${JSON.stringify(params)}`;
  /** Counts a try: whether it may fail, the call not having failed READER_TRIES - 1 times in a row. */
  const attempt = (key: string) => {
    const n = (tries.get(key) ?? 0) + 1;
    tries.set(key, n);
    return n < READER_TRIES;
  };
  const proxied = s.serverErrors > 0;
  return {
    random,
    /** The proxy's choice of the requests it may answer 500: it sees each try first. */
    eligible: (operation: string, body: Record<string, unknown>) => attempt(keyOf(operation, body)),
    /** The endpoint's throttling, of the tries the proxy (if any) let through. */
    throttle: (_n: number, operation: string, params: Record<string, unknown>) => {
      const key = keyOf(operation, params);
      const mayFail = proxied ? (tries.get(key) ?? 0) < READER_TRIES : attempt(key);
      const throttled = mayFail && random() < s.throttle;
      if (!throttled) tries.delete(key);
      return throttled;
    },
  };
}

async function buildWorld(s: Scenario, window: { since: number; until: number }): Promise<World> {
  const faults = faultsOf(s);
  const random = faults.random;
  const logs = await startLocalLogs({
    scanWindow: s.scanWindow,
    pageSize: s.pageSize,
    throttle: faults.throttle,
  });
  const events = new Map<string, StoredEvent[]>();
  const streams = new Map<string, Set<string>>();
  for (const st of s.streams) {
    const group = GROUPS[st.group] as string;
    const name = STREAM_NAMES[st.name] as string;
    const list = st.events.map((e) => {
      const at = st.idle ? BASE - 8 * HOUR + (timeOf(e.at, window) % HOUR) : timeOf(e.at, window);
      return { timestamp: at, message: messageOf(e.line, at, name, e.flow) };
    });
    // Shuffled, then appended in chunks: the endpoint has to put them back in timestamp order.
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [list[i], list[j]] = [list[j] as (typeof list)[number], list[i] as (typeof list)[number]];
    }
    const size = Math.max(1, Math.ceil(list.length / st.chunks));
    const stored = [...logs.put(group, name, [])];
    for (let i = 0; i < list.length; i += size)
      stored.push(...logs.put(group, name, list.slice(i, i + size)));
    events.set(group, [...(events.get(group) ?? []), ...stored]);
    streams.set(group, (streams.get(group) ?? new Set()).add(name));
  }
  const proxy =
    s.serverErrors > 0
      ? await startFaultProxy(logs.endpoint, {
          error: s.serverErrors,
          seed: s.seed,
          eligible: faults.eligible,
        })
      : undefined;
  const client = new CloudWatchLogsClient({
    endpoint: proxy?.endpoint ?? logs.endpoint,
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
  return {
    logs,
    proxy,
    client,
    events,
    streams,
    async close() {
      client.destroy();
      await proxy?.close();
      await logs.close();
    },
  };
}

/** The reference: events of the log groups matching the prefix term, in [since, until), of the selected streams. */
function selected(
  world: World,
  groups: readonly string[],
  window: { since: number; until: number },
  prefix: string | undefined,
): StoredEvent[] {
  return groups.flatMap((g) =>
    (world.events.get(g) ?? []).filter(
      (e) =>
        e.message.includes("calico-packet") &&
        (prefix === undefined || e.stream.startsWith(prefix)) &&
        e.timestamp >= window.since &&
        e.timestamp < window.until,
    ),
  );
}

const lineKind = (e: StoredEvent) =>
  e.message.includes("SRC=300.") ? "malformed" : e.message.includes("truncated") ? "skipped" : "calico";

/**
 * The streams listed (those matching the prefix), and those of them a backfill leaves unread: written last more than
 * 2 h before since, as PutLogEvents takes no event stamped over 2 h after its put (the windows are months old, so no
 * put of the hour before the listing can reach back into them).
 */
function expectedStreams(world: World, groups: readonly string[], since: number, prefix: string | undefined) {
  let listed = 0;
  let outside = 0;
  for (const g of groups) {
    for (const name of world.streams.get(g) ?? []) {
      if (prefix !== undefined && !name.startsWith(prefix)) continue;
      listed++;
      const ingested = world.logs.events(g, name).map((e) => e.ingestionTime);
      if (ingested.length > 0 && Math.max(...ingested) + 2 * HOUR < since) outside++;
    }
  }
  return { listed, outside };
}

function sum(summaries: readonly BackfillSummary[], key: keyof BackfillSummary): number {
  return summaries.reduce((n, s) => n + (s[key] as number), 0);
}

/** Every stored count is at most the reference's: nothing was counted twice, nothing outside was counted. */
function expectAtMost(stored: Map<string, number>, reference: Map<string, number>) {
  for (const [key, n] of stored) expect(n, key).toBeLessThanOrEqual(reference.get(key) ?? 0);
}

/**
 * The property for one scenario, stored as `cluster`: the first window run until a run completes (interrupted
 * and resumed or restarted on the way), the same backfill again, then an overlapping one.
 */
async function holds(s: Scenario, cluster: string): Promise<void> {
  const w1 = resolveWindow(s.window);
  const world = await buildWorld(s, w1);
  try {
    const groups = [...new Set(s.streams.map((st) => GROUPS[st.group] as string))];
    const prefix = PREFIXES[s.prefix];
    const checkpoint = join(shared.dir, `${cluster}.json`);
    const argsFor = (w: { since: number; until: number }, p: string | undefined) => [
      ...backfillOptions(shared, groups, cluster, `${cluster}.json`),
      "--since",
      iso(w.since),
      "--until",
      iso(w.until),
      ...(p === undefined ? [] : ["--stream-prefix", p]),
      "--concurrency",
      String(s.concurrency),
    ];
    const args = argsFor(w1, prefix);
    const reference = selected(world, groups, w1, prefix);
    const expected = expectedByAddress(reference.filter((e) => lineKind(e) === "calico"));
    const stored = () => storedByAddress(shared.flows, cluster, BASE - 12 * HOUR, BASE + SPAN + HOUR);

    // The first window: interrupted and resumed (or restarted) until a run completes.
    const chain: BackfillSummary[] = [];
    const interrupts = [...s.interrupts];
    let restart = false;
    for (;;) {
      const stopAfter = interrupts.shift();
      const stop = new AbortController();
      let minutes = 0;
      const callsBefore = world.logs.calls.length;
      const errorsBefore = world.proxy?.count({ outcome: "error" }) ?? 0;
      const summary = await backfillCli([...args, ...(restart ? ["--restart"] : [])], world.client, {
        signal: stop.signal,
        onMinute: () => {
          if (stopAfter !== undefined && ++minutes === stopAfter) stop.abort();
        },
      });
      chain.push(summary);
      // The summary's CloudWatch Logs figures are the calls the endpoint (and the proxy) answered. A stop abandons
      // the requests in flight, at most one per stream being read: the reader counted each as a call but saw no
      // answer, which the endpoint may have given (or the proxy failed, and the endpoint answered anyway).
      const served = world.logs.calls.slice(callsBefore);
      const failed = (world.proxy?.count({ outcome: "error" }) ?? 0) - errorsBefore;
      const throttled = served.filter((c) => c.outcome === "throttled").length;
      const abandoned = summary.interrupted ? s.concurrency : 0;
      expect(Math.abs(summary.logsCalls - (served.length + failed))).toBeLessThanOrEqual(abandoned);
      expect(summary.throttled).toBeLessThanOrEqual(throttled);
      expect(summary.throttled).toBeGreaterThanOrEqual(throttled - abandoned);
      expect(summary.resumed).toBe(chain.length > 1 && !restart);
      expect(summary.since).toBe(iso(w1.since));
      expect(summary.until).toBe(iso(w1.until));
      if (!summary.interrupted) break;
      // What the checkpoint says is done is stored, and nothing is stored more than once.
      const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
      expect(saved.complete).toBe(false);
      const now = await stored();
      expectAtMost(now, expected);
      const done = reference.filter((e) => {
        const group = groups.find((g) => world.events.get(g)?.includes(e)) as string;
        const state = saved.streams[group]?.[e.stream];
        return state !== undefined && (state.complete || e.timestamp < Date.parse(state.doneUntil));
      });
      const promised = expectedByAddress(done.filter((e) => lineKind(e) === "calico"));
      for (const [key, n] of promised) expect(now.get(key) ?? 0, key).toBeGreaterThanOrEqual(n);
      restart = s.restartAfterInterrupt && !restart;
    }

    expect(await stored()).toEqual(expected);
    // Every event of the window stored once over the chain, and the summaries say so.
    expect(sum(chain, "stored") + sum(chain, "completed")).toBe(reference.length);
    expect(sum(chain, "lines")).toBe(reference.length);
    expect(sum(chain, "calico")).toBe(reference.filter((e) => lineKind(e) === "calico").length);
    expect(sum(chain, "malformed")).toBe(reference.filter((e) => lineKind(e) === "malformed").length);
    expect(sum(chain, "pending") + sum(chain, "uncertain") + sum(chain, "flowsDuplicate")).toBe(0);
    const last = chain[chain.length - 1] as BackfillSummary;
    expect(last.stored + last.alreadyCounted + last.completed).toBeLessThanOrEqual(last.events);
    if (chain.length === 1) {
      expect(last.events).toBe(reference.length);
      expect(last.alreadyCounted).toBe(0);
      const streams = expectedStreams(world, groups, w1.since, prefix);
      expect(last.streams).toBe(streams.listed);
      expect(last.streamsOutsideWindow).toBe(streams.outside);
      // One flow update per flow of each (group, stream, minute): one contribution each in a fresh window.
      const updates = groups.reduce(
        (n, g) =>
          n +
          expectedByAddress(
            reference.filter((e) => lineKind(e) === "calico" && world.events.get(g)?.includes(e)),
          ).size,
        0,
      );
      expect(last.flowsApplied).toBe(updates);
    }

    // The same backfill again (its checkpoint is complete: a fresh run of the same window).
    const again = await backfillCli(args, world.client);
    expect(again.resumed).toBe(false);
    expect(again.events).toBe(reference.length);
    expect(again.stored).toBe(0);
    expect(again.flowsApplied).toBe(0);
    expect(again.alreadyCounted).toBe(reference.length);
    expect(await stored()).toEqual(expected);

    // An overlapping backfill, maybe of other streams: only what the first did not count is stored.
    const w2 = resolveWindow(s.overlap);
    const prefix2 = PREFIXES[s.overlapPrefix];
    const second = selected(world, groups, w2, prefix2);
    const firstIds = new Set(reference.map((e) => e.id));
    const overlap = await backfillCli([...argsFor(w2, prefix2), "--restart"], world.client);
    expect(overlap.events).toBe(second.length);
    expect(overlap.stored).toBe(second.filter((e) => !firstIds.has(e.id)).length);
    expect(overlap.alreadyCounted).toBe(second.filter((e) => firstIds.has(e.id)).length);
    const union = [...reference, ...second.filter((e) => !firstIds.has(e.id))];
    expect(await stored()).toEqual(expectedByAddress(union.filter((e) => lineKind(e) === "calico")));
  } finally {
    await world.close();
  }
}

describe("calico-flows backfill against a reference count", () => {
  it(
    "stores every event of [since, until) of the selected streams once, through paging, faults, interruptions and repeats",
    async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(scenarioArb, async (s) => {
          run++;
          await holds(s, `review-${run}`);
        }),
        { numRuns: NUM_RUNS, endOnFailure: true, ...REPLAY },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it("stores every event once when every call fails on each try the reader makes but its last, throttled or answered 500", async () => {
    // Faults at their bound: tries 1 to 9 of each call fail (the proxy answers about half of them 500, the
    // endpoint throttles the rest), the tenth is answered. Through an interruption, the same backfill and an overlap.
    const events = (flows: readonly number[]): GenEvent[] => [
      { at: { kind: "since", delta: 0 }, line: "calico", flow: flows[0] as number },
      { at: { kind: "since", delta: -1 }, line: "calico", flow: flows[1] as number },
      { at: { kind: "inside", share: 0.1 }, line: "calico", flow: flows[2] as number },
      { at: { kind: "inside", share: 0.3 }, line: "malformed", flow: flows[3] as number },
      { at: { kind: "inside", share: 0.55 }, line: "calico", flow: flows[4] as number },
      { at: { kind: "inside", share: 0.8 }, line: "skipped", flow: flows[5] as number },
      { at: { kind: "minute", minute: 63, delta: 0 }, line: "calico", flow: flows[6] as number },
      { at: { kind: "until", delta: -1 }, line: "calico", flow: flows[7] as number },
      { at: { kind: "until", delta: 0 }, line: "calico", flow: flows[8] as number },
    ];
    await holds(
      {
        streams: [
          { group: 0, name: 0, events: events([1, 2, 3, 4, 5, 6, 7, 8, 9]), chunks: 2, idle: false },
          { group: 0, name: 3, events: events([9, 8, 7, 6, 5, 4, 3, 2, 1]), chunks: 1, idle: false },
          { group: 1, name: 1, events: events([0, 10, 20, 30, 1, 11, 21, 31, 2]), chunks: 3, idle: false },
        ],
        window: { startMinute: 60, startOffset: 30_000, minutes: 6, endOffset: 0 },
        prefix: 0,
        overlap: { startMinute: 62, startOffset: 0, minutes: 10, endOffset: 1 },
        overlapPrefix: 1,
        scanWindow: 3,
        pageSize: 2,
        throttle: 1,
        serverErrors: 0.5,
        seed: 7,
        concurrency: 2,
        interrupts: [2],
        restartAfterInterrupt: false,
      },
      "review-bound",
    );
  });

  it("ends a run with the error of a call that failed on all 10 tries, and the same command resumes it, storing every event once", async () => {
    // Tries 3 to 11 of FilterLogEvents fail (one call, nine tries: the tenth is answered), then tries 15 to 24
    // (one call, ten tries: the run ends), alternately answered 500 and throttled.
    let filters = 0;
    let faulty = true;
    const logs = await startLocalLogs({
      scanWindow: 4,
      pageSize: 2,
      fail: (_, operation) => {
        if (operation !== "FilterLogEvents" || !faulty) return undefined;
        filters++;
        if (!((filters >= 3 && filters <= 11) || (filters >= 15 && filters <= 24))) return undefined;
        return filters % 2 === 1
          ? { status: 500, type: "ServiceUnavailableException", message: "Service unavailable" }
          : { status: 400, type: "ThrottlingException" };
      },
    });
    try {
      const group = GROUPS[0] as string;
      const stream = "ip-10-0-1-1";
      const since = BASE + 60 * MINUTE;
      const until = since + 8 * MINUTE;
      // Two events a minute: a page of two is a minute, processed once a page of the next minute came.
      const times = Array.from({ length: 16 }, (_, k) => since + k * 30_000);
      logs.put(
        group,
        stream,
        times.map((at, k) => ({ timestamp: at, message: messageOf("calico", at, stream, k) })),
      );
      const all = logs.events(group, stream);
      const cluster = "review-exhausted";
      const args = [
        ...backfillOptions(shared, group, cluster, `${cluster}.json`),
        "--since",
        iso(since),
        "--until",
        iso(until),
        "--concurrency",
        "1",
      ];
      const stored = () => storedByAddress(shared.flows, cluster, since - HOUR, until + HOUR);

      await expect(runBackfill(logs, args)).rejects.toMatchObject({
        name: "BackfillError",
        cause: { name: "ThrottlingException" },
      });
      expect(filters).toBe(24);
      // Pages 1 to 5 were read (minutes 0 to 4): minutes 0 to 3 are done, stored once, and nothing after them.
      const saved = JSON.parse(readFileSync(join(shared.dir, `${cluster}.json`), "utf8")) as Checkpoint;
      expect(saved.complete).toBe(false);
      expect(saved.streams[group]?.[stream]).toEqual({ doneUntil: iso(since + 4 * MINUTE), complete: false });
      expect(await stored()).toEqual(expectedByAddress(all.filter((e) => e.timestamp < since + 4 * MINUTE)));

      faulty = false;
      const resumed = await runBackfill(logs, args);
      expect(resumed.resumed).toBe(true);
      expect(resumed.interrupted).toBe(false);
      expect(resumed.events).toBe(8);
      expect(resumed.stored).toBe(8);
      expect(resumed.alreadyCounted).toBe(0);
      expect(await stored()).toEqual(expectedByAddress(all));
    } finally {
      await logs.close();
    }
  });

  it("runs as the calico-flows binary over a window whose bounds fall on events", async () => {
    const logs = await startLocalLogs({ scanWindow: 3, pageSize: 2 });
    try {
      const group = GROUPS[0] as string;
      const since = BASE + 40 * MINUTE;
      const until = BASE + 43 * MINUTE;
      const times = [
        since - 1,
        since,
        since + 1,
        since + MINUTE,
        until - MINUTE,
        until - 1,
        until,
        until + 1,
      ];
      for (const stream of ["ip-10-0-1-1", "ip-10-0-1-2", "ip-172-31-0-5"]) {
        logs.put(
          group,
          stream,
          times.map((at, i) => ({ timestamp: at, message: messageOf("calico", at, stream, i) })),
        );
      }
      const inside = logs
        .events(group)
        .filter((e) => e.stream.startsWith("ip-10-") && e.timestamp >= since && e.timestamp < until);
      const cluster = "review-bin";
      const env = {
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: shared.ts.endpoint,
      };
      const args = [
        "backfill",
        ...backfillOptions(shared, group, cluster, "bin.json").filter((a) => a !== "--quiet"),
        "--since",
        iso(since),
        "--until",
        iso(until),
        "--stream-prefix",
        "ip-10-",
      ];
      const first = await runCli(args, { env });
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toContain(
        `2 log streams, ${inside.length} events scanned, ${inside.length} calico records`,
      );
      expect(first.stderr).toContain(`coverage: ${inside.length} events stored now, 0 already counted`);
      const second = await runCli(args, { env });
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain(`coverage: 0 events stored now, ${inside.length} already counted`);
      expect(await storedByAddress(shared.flows, cluster, since - HOUR, until + HOUR)).toEqual(
        expectedByAddress(inside),
      );
    } finally {
      await logs.close();
    }
  });
});
