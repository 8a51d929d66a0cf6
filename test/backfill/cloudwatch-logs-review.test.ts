// `calico-flows backfill` checked against the CloudWatch Logs API reference, through a scripted JSON 1.1 endpoint
// on loopback that the real SDK client talks to. The endpoint refuses what the API reference says FilterLogEvents
// and DescribeLogStreams refuse (1 to 100 stream names, not with a prefix, a limit of 1 to 10,000, a bare term
// holding a `-` or `:`, an empty stream prefix, a token it did not issue) and behaves as the service is documented
// or reported to: pages partly full or empty while a nextToken says more follow, the same nextToken handed back
// (boto/boto3#1584), an `endTime` that leaves out its own millisecond (aws/aws-cli#4262), ThrottlingException,
// RequestLimitExceeded and 429, and stream metadata that lags ingestion. Checked: every event of [since, until)
// read and stored once; request parameters; throttling backed off and bounded; an event delivered live and
// backfilled (either way round) counted once by its id; the summary and exit status docs/backfill.md promises.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Checkpoint } from "../../cli/commands/backfill.ts";
import { CloudWatchLogsReader } from "../../functions/adapters/cloudwatch-logs.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { ingestDelivery, MINUTE_MS } from "../../functions/core/coverage.ts";
import { decodeDelivery, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { BIN, ROOT, runCli } from "../cli/run.ts";
import {
  type ApiFailure,
  type LocalLogs,
  type LogsServerOptions,
  type StoredEvent,
  startLocalLogs,
} from "../support/cloudwatch-logs-server.ts";
import {
  backfillOptions,
  calicoLine,
  DESTINATIONS,
  expectedByAddress,
  ingestDeps,
  PORTS,
  payloadOf,
  runBackfill as run,
  SOURCES,
  storedAroundT0,
  T0,
  useBackfillWorld,
} from "./fixtures.ts";

const GROUP = "/aws/eks/review/calico";
const HOUR = 60 * MINUTE_MS;
const iso = (ms: number) => new Date(ms).toISOString();

// ---- the world ---------------------------------------------------------------------------------------------

const world = useBackfillWorld("backfill-cwl-review");

/** The local CloudWatch Logs endpoint, scripted as the test says; DescribeLogStreams lists two streams a page. */
const startLogs = (options: LogsServerOptions = {}) => startLocalLogs({ describePageSize: 2, ...options });

/** Calico lines (and kubelet noise the filter pattern leaves out) of `stream` at the given times. */
function linesAt(stream: string, times: readonly number[], prefix = "calico-packet:") {
  const out: { timestamp: number; message: string }[] = [];
  times.forEach((at, k) => {
    const src = SOURCES[k % SOURCES.length] as string;
    const dst = DESTINATIONS[(k >> 1) % DESTINATIONS.length] as string;
    const line = calicoLine(at, stream, src, dst, PORTS[k % PORTS.length] as number);
    out.push({ timestamp: at, message: line.replace("calico-packet:", prefix) });
    if (k % 3 === 0) out.push({ timestamp: at, message: `${stream} kubelet[812]: I0419 probe ok` });
  });
  return out;
}

/** `count` times spread over `minutes` minutes from `from`, every fifth on the millisecond of the one before. */
function spread(from: number, minutes: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++)
    out.push(i % 5 === 4 ? (out[i - 1] as number) : from + Math.floor((i * minutes * MINUTE_MS) / count));
  return out;
}

const options = (cluster: string, checkpoint: string) => backfillOptions(world, GROUP, cluster, checkpoint);

/** The window [since, until) as the command's options. */
const between = (since: number, until: number) => ["--since", iso(since), "--until", iso(until)];

const stored = (cluster: string) => storedAroundT0(world, cluster);

const calicoOf = (events: readonly StoredEvent[]) => events.filter((e) => !e.message.includes("kubelet"));

const filterCalls = (logs: LocalLogs) => logs.calls.filter((c) => c.operation === "FilterLogEvents");

describe("reading the window", () => {
  it("reads every event of [since, until) once through empty pages, a nextToken handed back, and partly full pages", async () => {
    const logs = await startLogs({ pageSize: 4, scanWindow: 6, stall: (n) => n % 3 === 2 });
    try {
      for (const [i, stream] of ["ip-10-0-1-1", "ip-10-0-1-2", "ip-10-0-2-7"].entries()) {
        logs.put(GROUP, stream, linesAt(stream, spread(T0 + i * 700, 6, 40)));
      }
      const since = T0 + 30_000;
      const until = T0 + 5 * MINUTE_MS + 15_000;
      const inside = calicoOf(logs.events(GROUP)).filter((e) => e.timestamp >= since && e.timestamp < until);
      const args = [...options("pages", "pages.json"), ...between(since, until)];

      const first = await run(logs, args);
      expect(first.interrupted).toBe(false);
      expect(first.events).toBe(inside.length);
      expect(first.stored).toBe(inside.length);
      expect(first.calico).toBe(inside.length);
      expect(await stored("pages")).toEqual(expectedByAddress(inside));

      // The endpoint did hand tokens back on empty pages, and paging went on until no token came.
      const calls = filterCalls(logs);
      expect(calls.filter((c) => c.stalled && c.params.nextToken !== undefined).length).toBeGreaterThan(3);
      expect(calls.filter((c) => c.outcome === "ok" && c.returned === 0).length).toBeGreaterThan(5);
      expect(calls.every((c) => c.outcome === "ok")).toBe(true);

      // Again: every event already counted, nothing stored twice.
      const again = await run(logs, [...args, "--restart"]);
      expect(again.events).toBe(inside.length);
      expect(again.stored).toBe(0);
      expect(again.alreadyCounted).toBe(inside.length);
      expect(await stored("pages")).toEqual(expectedByAddress(inside));
    } finally {
      await logs.close();
    }
  });

  it.each([
    ["includes its own millisecond, as documented", false],
    ["leaves it out, as aws/aws-cli#4262 reports", true],
  ])("keeps to [since, until) when FilterLogEvents' endTime %s", async (_, endExclusive) => {
    const logs = await startLogs({ endExclusive, pageSize: 3 });
    try {
      const since = T0 + 2 * MINUTE_MS;
      const until = T0 + 5 * MINUTE_MS;
      const times = [since - 1, since, since + 1, since + MINUTE_MS, until - 2, until - 1, until, until + 1];
      logs.put(GROUP, "ip-10-0-1-1", linesAt("ip-10-0-1-1", times));
      const inside = calicoOf(logs.events(GROUP)).filter((e) => e.timestamp >= since && e.timestamp < until);
      expect(inside.map((e) => e.timestamp)).toEqual([
        since,
        since + 1,
        since + MINUTE_MS,
        until - 2,
        until - 1,
      ]);
      const cluster = `window-${endExclusive}`;
      const summary = await run(logs, [...options(cluster, `${cluster}.json`), ...between(since, until)]);
      expect(summary.stored).toBe(inside.length);
      expect(summary.events).toBe(inside.length);
      expect(await stored(cluster)).toEqual(expectedByAddress(inside));
      for (const c of filterCalls(logs)) expect(c.params.startTime).toBe(since);
    } finally {
      await logs.close();
    }
  });
});

describe("request parameters", () => {
  it.each([
    ["calico-packet", [], "calico-packet:", '"calico-packet"'],
    ["calico:packet", ["--prefix", "calico:packet"], "calico:packet:", '"calico:packet"'],
    // With a prefix format the parser finds lines by the format's literal head, not by --prefix.
    ["a --prefix-format", ["--prefix-format", "cf-deny %t %n"], "cf-deny default deny-all:", '"cf-deny"'],
  ])(
    "asks for the lines the parser reads, as one quoted term (%s), one stream at a time",
    async (_, flags, logged, pattern) => {
      const logs = await startLogs({ pageSize: 5 });
      try {
        for (const stream of ["ip-10-0-1-1", "ip-10-0-1-2"])
          logs.put(GROUP, stream, linesAt(stream, spread(T0, 3, 12), logged));
        const cluster = `pattern-${pattern.length}-${flags.length}`;
        const summary = await run(logs, [
          ...options(cluster, `${cluster}.json`),
          ...flags,
          ...between(T0, T0 + 3 * MINUTE_MS),
        ]);
        const inside = calicoOf(logs.events(GROUP));
        expect(summary.events).toBe(inside.length);
        expect(summary.calico).toBe(inside.length);
        expect(summary.malformed).toBe(0);
        expect(await stored(cluster)).toEqual(expectedByAddress(inside));
        expect(logs.calls.every((c) => c.outcome === "ok")).toBe(true);
        for (const c of filterCalls(logs)) {
          expect(c.params.filterPattern).toBe(pattern);
          expect(c.params.logStreamNames).toHaveLength(1);
          expect(c.params.logStreamNamePrefix).toBeUndefined();
          expect(c.params.interleaved).toBeUndefined();
          expect(c.params.limit).toBeLessThanOrEqual(10_000);
          expect(c.params.startTime as number).toBeLessThanOrEqual(c.params.endTime as number);
        }
      } finally {
        await logs.close();
      }
    },
  );

  it("never sends FilterLogEvents fewer than 1 or more than 100 stream names", async () => {
    const logs = await startLogs();
    try {
      logs.put(GROUP, "ip-10-0-1-1", linesAt("ip-10-0-1-1", [T0]));
      const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
      for (const streams of [[], Array.from({ length: 101 }, (_, i) => `ip-10-0-3-${i}`)]) {
        const pages = reader.events({ group: GROUP, streams, start: T0, end: T0 + 1 });
        await expect(pages.next()).rejects.toThrow(RangeError);
      }
      const hundred = Array.from({ length: 100 }, (_, i) => (i === 0 ? "ip-10-0-1-1" : `ip-10-0-3-${i}`));
      // Streams that exist (FilterLogEvents refuses a name the group does not hold), written after the range.
      for (const stream of hundred.slice(1)) logs.put(GROUP, stream, linesAt(stream, [T0 + MINUTE_MS]));
      const pages = reader.events({
        group: GROUP,
        streams: hundred,
        start: T0,
        end: T0 + 1,
        filterPattern: '"calico-packet"',
      });
      expect((await pages.next()).value?.events).toHaveLength(1);
      expect(logs.calls).toHaveLength(1);
      expect(logs.calls[0]?.outcome).toBe("ok");
    } finally {
      await logs.close();
    }
  });

  it("takes an empty --stream-prefix as every stream (DescribeLogStreams wants 1 to 512 characters)", async () => {
    const logs = await startLogs();
    try {
      for (const stream of ["ip-10-0-1-1", "fargate-ip-10-9"])
        logs.put(GROUP, stream, linesAt(stream, spread(T0, 1, 4)));
      const summary = await run(logs, [
        ...options("empty-prefix", "empty-prefix.json"),
        ...between(T0, T0 + MINUTE_MS),
        "--stream-prefix",
        "",
      ]);
      expect(summary.streams).toBe(2);
      expect(summary.stored).toBe(calicoOf(logs.events(GROUP)).length);
      for (const c of logs.calls.filter((c) => c.operation === "DescribeLogStreams"))
        expect(c.params.logStreamNamePrefix).toBeUndefined();
    } finally {
      await logs.close();
    }
  });

  it("lists a stream whose ingestion metadata has not caught up, and skips one last written hours before the window", async () => {
    const since = T0 + 10 * MINUTE_MS;
    const logs = await startLogs({
      streamMetadata: (stream) =>
        stream === "ip-10-0-9-9"
          ? // Created two days ago; its first events arrived minutes ago and lastIngestionTime is not there yet.
            { creationTime: since - 48 * HOUR }
          : stream === "ip-10-0-8-8"
            ? {
                creationTime: since - 48 * HOUR,
                lastIngestionTime: since - 5 * HOUR,
                lastEventTimestamp: since - 5 * HOUR,
              }
            : undefined,
    });
    try {
      logs.put(GROUP, "ip-10-0-9-9", linesAt("ip-10-0-9-9", spread(since, 2, 8)));
      logs.put(GROUP, "ip-10-0-8-8", linesAt("ip-10-0-8-8", [since - 5 * HOUR]));
      const summary = await run(logs, [
        ...options("lag", "lag.json"),
        ...between(since, since + 3 * MINUTE_MS),
      ]);
      const inside = calicoOf(logs.events(GROUP)).filter((e) => e.stream === "ip-10-0-9-9");
      expect(summary.streams).toBe(2);
      expect(summary.streamsOutsideWindow).toBe(1);
      expect(summary.stored).toBe(inside.length);
      expect(await stored("lag")).toEqual(expectedByAddress(inside));
      expect(filterCalls(logs).map((c) => c.params.logStreamNames)).toContainEqual(["ip-10-0-9-9"]);
      expect(filterCalls(logs).map((c) => c.params.logStreamNames)).not.toContainEqual(["ip-10-0-8-8"]);
    } finally {
      await logs.close();
    }
  });

  it("finishes a stream stopped during its last minute, and never asks for a startTime past its endTime", async () => {
    const logs = await startLogs({ pageSize: 4 });
    try {
      logs.put(GROUP, "ip-10-0-1-1", linesAt("ip-10-0-1-1", spread(T0, 3, 12)));
      logs.put(GROUP, "ip-10-0-1-2", linesAt("ip-10-0-1-2", spread(T0 + 100, 3, 12)));
      const all = calicoOf(logs.events(GROUP));
      const checkpoint = join(world.dir, "last-minute.json");
      const args = [
        ...options("last-minute", "last-minute.json"),
        ...between(T0, T0 + 3 * MINUTE_MS),
        "--concurrency",
        "1",
      ];
      // Stopped as the first stream's third and last minute is processed.
      const stop = new AbortController();
      let minutes = 0;
      const interrupted = await run(logs, args, {
        signal: stop.signal,
        onMinute: () => {
          if (++minutes === 3) stop.abort();
        },
      });
      expect(interrupted.interrupted).toBe(true);
      const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
      expect(saved.complete).toBe(false);
      expect(saved.streams[GROUP]?.["ip-10-0-1-1"]).toEqual({ doneUntil: saved.until, complete: true });

      // A checkpoint an earlier version wrote in that case: at the window's end, yet not finished.
      const older = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
      const states = older.streams[GROUP] ?? {};
      states["ip-10-0-1-1"] = { doneUntil: older.until, complete: false };
      writeFileSync(checkpoint, JSON.stringify(older));
      const callsBefore = filterCalls(logs).length;
      const resumed = await run(logs, args);
      expect(resumed.resumed).toBe(true);
      expect(resumed.interrupted).toBe(false);
      const after = filterCalls(logs).slice(callsBefore);
      expect(after.every((c) => (c.params.logStreamNames as string[])[0] === "ip-10-0-1-2")).toBe(true);
      for (const c of filterCalls(logs)) {
        expect(c.outcome).toBe("ok");
        expect(c.params.startTime as number).toBeLessThanOrEqual(c.params.endTime as number);
      }
      expect((JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint).complete).toBe(true);
      expect(interrupted.stored + resumed.stored).toBe(all.length);
      expect(await stored("last-minute")).toEqual(expectedByAddress(all));
    } finally {
      await logs.close();
    }
  });
});

describe("throttling", () => {
  it("backs off and retries ThrottlingException, RequestLimitExceeded and 429, and loses nothing", async () => {
    const failures: Record<number, ApiFailure> = {
      2: { status: 400, type: "ThrottlingException" },
      3: { status: 400, type: "ThrottlingException" },
      5: { status: 400, type: "RequestLimitExceeded", message: "Request limit exceeded" },
      7: { status: 429, type: "TooManyRequests", message: "Too many requests" },
      8: { status: 400, type: "ThrottlingException" },
    };
    const logs = await startLogs({ pageSize: 5, fail: (n) => failures[n] });
    try {
      logs.put(GROUP, "ip-10-0-1-1", linesAt("ip-10-0-1-1", spread(T0, 4, 30)));
      const sleeps: number[] = [];
      const summary = await run(
        logs,
        [...options("throttled", "throttled.json"), ...between(T0, T0 + 4 * MINUTE_MS)],
        { sleep: async (ms) => void sleeps.push(ms) },
      );
      const inside = calicoOf(logs.events(GROUP));
      expect(summary.stored).toBe(inside.length);
      expect(await stored("throttled")).toEqual(expectedByAddress(inside));
      expect(summary.throttled).toBe(Object.keys(failures).length);
      expect(summary.logsCalls).toBe(logs.calls.length);
      // Each throttled call waited a backoff of at least half of 0.5 s before its retry.
      expect(sleeps.filter((ms) => ms >= 250).length).toBeGreaterThanOrEqual(Object.keys(failures).length);
    } finally {
      await logs.close();
    }
  });

  it("gives up after 10 tries of one call, with the service's error, keeping the checkpoint", async () => {
    const logs = await startLogs({
      fail: (_, operation) =>
        operation === "FilterLogEvents" ? { status: 400, type: "ThrottlingException" } : undefined,
    });
    try {
      logs.put(GROUP, "ip-10-0-1-1", linesAt("ip-10-0-1-1", spread(T0, 2, 6)));
      const sleeps: number[] = [];
      await expect(
        run(logs, [...options("exhausted", "exhausted.json"), ...between(T0, T0 + 2 * MINUTE_MS)], {
          sleep: async (ms) => void sleeps.push(ms),
        }),
      ).rejects.toMatchObject({ name: "BackfillError", cause: { name: "ThrottlingException" } });
      expect(filterCalls(logs)).toHaveLength(10);
      // Nine backoffs, 0.5 s doubling to 20 s, each jittered down by at most half: at least 45.75 s in all.
      expect(sleeps.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(45_750);
      const saved = JSON.parse(readFileSync(join(world.dir, "exhausted.json"), "utf8")) as Checkpoint;
      expect(saved.complete).toBe(false);
      expect(saved.streams[GROUP]?.["ip-10-0-1-1"]?.complete).toBe(false);
    } finally {
      await logs.close();
    }
  });
});

describe("one event, live or backfilled", () => {
  it("counts an event delivered live and then backfilled, or backfilled and then delivered, once by its id", async () => {
    const logs = await startLogs({ pageSize: 7 });
    try {
      const stream = "ip-10-0-1-1";
      logs.put(GROUP, stream, linesAt(stream, spread(T0, 4, 32)));
      const all = calicoOf(logs.events(GROUP));
      const until = T0 + 4 * MINUTE_MS;
      const coverage = new DynamoCoverageStore({ client: world.ts.client, tableName: world.ts.tableName });
      // A subscription delivery as the ingest function reads it: gzipped JSON, events read from its bytes.
      const deliver = async (cluster: string, events: readonly StoredEvent[]) => {
        const data = encodeSubscriptionData(payloadOf(stream, events, GROUP));
        const { logGroup, logStream, events: delivered } = decodeDelivery(data);
        return ingestDelivery(
          { logGroup, logStream, logEvents: delivered },
          ingestDeps(world.flows, cluster),
          coverage,
          "live",
        );
      };

      // Live first, from the middle of minute 1 on (in deliveries of five), then a backfill of the whole window.
      const live = all.filter((e) => e.timestamp >= T0 + 90_000);
      for (let i = 0; i < live.length; i += 5) await deliver("live-first", live.slice(i, i + 5));
      const backfilled = await run(logs, [
        ...options("live-first", "live-first.json"),
        ...between(T0, until),
      ]);
      expect(backfilled.events).toBe(all.length);
      expect(backfilled.alreadyCounted).toBe(live.length);
      expect(backfilled.stored).toBe(all.length - live.length);
      expect(await stored("live-first")).toEqual(expectedByAddress(all));

      // Backfill first (the first two minutes), then every event delivered live, in other batches.
      const early = await run(logs, [
        ...options("backfill-first", "backfill-first.json"),
        ...between(T0, T0 + 2 * MINUTE_MS),
      ]);
      const earlyEvents = all.filter((e) => e.timestamp < T0 + 2 * MINUTE_MS);
      expect(early.stored).toBe(earlyEvents.length);
      let dropped = 0;
      for (let i = 0; i < all.length; i += 3)
        dropped += (await deliver("backfill-first", all.slice(i, i + 3))).eventsAlreadyCounted;
      expect(dropped).toBe(earlyEvents.length);
      expect(await stored("backfill-first")).toEqual(expectedByAddress(all));
    } finally {
      await logs.close();
    }
  });
});

describe("summary and exit status", () => {
  it("exits 130 after SIGINT with the progress saved, then resumes and exits 0 with the summary", async () => {
    let release: () => void = () => {};
    let reached: () => void = () => {};
    const secondCall = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const logs = await startLogs({
      pageSize: 4,
      beforeFilter: (n) => {
        if (n !== 2) return Promise.resolve();
        reached();
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    try {
      for (const stream of ["ip-10-0-1-1", "ip-10-0-1-2"])
        logs.put(GROUP, stream, linesAt(stream, spread(T0, 4, 16)));
      const all = calicoOf(logs.events(GROUP));
      const checkpoint = join(world.dir, "binary.json");
      const args = [
        "backfill",
        ...options("binary", "binary.json").filter((a) => a !== "--quiet"),
        ...between(T0, T0 + 4 * MINUTE_MS),
        "--concurrency",
        "1",
      ];
      const env = {
        ...process.env,
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: world.ts.endpoint,
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
      };
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: ROOT,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      const closed = once(child, "close");
      await secondCall;
      child.kill("SIGINT");
      // The answer comes only once the command took the signal in: it finishes what it holds, then stops.
      while (!stderr.includes("interrupted: finishing the current minute"))
        await new Promise((resolve) => setTimeout(resolve, 20));
      release();
      const [code] = (await closed) as [number | null];
      expect(code, stderr).toBe(130);
      expect(stderr).toContain("interrupted backfill");
      expect(stderr).toContain(`progress saved in ${checkpoint}: run the same command again to resume`);
      const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
      expect(saved.complete).toBe(false);

      const resumed = await runCli(args, { env });
      expect(resumed.code, resumed.stderr).toBe(0);
      // After the warning that its events, of April 2026, are past the retention.
      expect(resumed.stderr).toMatch(/^backfilled \S+ → \S+ \(resumed\): 2 log streams/m);
      expect(resumed.stderr).toMatch(
        /coverage: \d+ events stored now, \d+ already counted, 0 finished for an interrupted writer; \d+ CloudWatch Logs calls, 0 throttled/,
      );
      expect((JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint).complete).toBe(true);
      expect(await stored("binary")).toEqual(expectedByAddress(all));
    } finally {
      release();
      await logs.close();
    }
  });
});
