// `calico-flows backfill` end to end: the command's own option parsing, a local CloudWatch Logs endpoint that
// pages, interleaves and throttles, and the store in dynalite as `--table` (through AWS_ENDPOINT_URL_DYNAMODB).
// Live ingest and overlapping backfills leave exact counts; an interrupted run resumes from its checkpoint.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type BackfillIo,
  type BackfillSummary,
  type Checkpoint,
  describeBackfill,
} from "../../cli/commands/backfill.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DEFAULT_WORKLOAD_INTERFACE_PREFIXES } from "../../functions/core/classify.ts";
import { ingestDelivery, MINUTE_MS, PENDING_GRACE_MS } from "../../functions/core/coverage.ts";
import type { FlowStore, FlowWriteResult } from "../../functions/core/ports.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { ndjson, runCli } from "../cli/run.ts";
import { type LocalLogs, type StoredEvent, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { createTopic, drainQueue, startLocalSns, subscribeQueue } from "../support/fauxqs.ts";
import {
  backfillOptions,
  type CwEvent,
  calicoLine,
  DESTINATIONS,
  expectedByAddress,
  GROUP,
  ingestDeps,
  PODS_FILE,
  PORTS,
  payloadOf,
  runBackfill,
  SOURCES,
  storedAroundT0,
  T0,
  total,
  useBackfillWorld,
} from "./fixtures.ts";

const STREAMS = ["ip-192-168-12-9", "ip-192-168-74-5", "ip-192-168-80-3"];
const MINUTES = 6;
const iso = (ms: number) => new Date(ms).toISOString();

const world = useBackfillWorld("backfill");
let logs: LocalLogs;
/** Every calico event in CloudWatch Logs, by stream. */
const calico = new Map<string, StoredEvent[]>();

beforeAll(async () => {
  // Every fifth call is throttled; a call scans 30 stored events and returns at most 25.
  logs = await startLocalLogs({ scanWindow: 30, pageSize: 25, throttle: (n) => n % 5 === 0 });
  let k = 0;
  for (const stream of STREAMS) {
    const events: { timestamp: number; message: string }[] = [];
    for (let m = 0; m < MINUTES; m++) {
      for (let i = 0; i < 9; i++) {
        k++;
        const at = T0 + m * MINUTE_MS + i * 6_500 + (k % 7) * 100;
        const src = SOURCES[k % SOURCES.length] as string;
        const dst = DESTINATIONS[(k >> 1) % DESTINATIONS.length] as string;
        events.push({
          timestamp: at,
          message: calicoLine(at, stream, src, dst, PORTS[k % PORTS.length] as number),
        });
        if (i % 4 === 0) events.push({ timestamp: at + 5, message: `${stream} kubelet[812]: probe ok` });
      }
    }
    calico.set(
      stream,
      logs.put(GROUP, stream, events).filter((e) => e.message.includes("calico-packet")),
    );
  }
});

afterAll(async () => {
  await logs?.close();
});

/** `calico-flows backfill ARGS` in process, reading the local CloudWatch Logs endpoint. */
const backfillCli = (args: readonly string[], io: BackfillIo = {}): Promise<BackfillSummary> =>
  runBackfill(logs, args, io);

const options = (cluster: string) => backfillOptions(world, GROUP, cluster);

const stored = (cluster: string) => storedAroundT0(world, cluster);

const allEvents = () => [...calico.values()].flat();
const inWindow = (from: number, to: number) =>
  allEvents().filter((e) => e.timestamp >= from && e.timestamp <= to);
const asCw = (e: StoredEvent): CwEvent => ({
  id: e.id,
  timestamp: e.timestamp,
  message: e.message,
  stream: e.stream,
});

describe("calico-flows backfill", () => {
  it("counts each event once across live ingest and overlapping backfills, through paging and throttling", async () => {
    const cluster = "prod";
    // Live ingest started in the middle of minute 2 on the first stream only.
    const deps = ingestDeps(world.flows, cluster);
    const coverage = new DynamoCoverageStore({ client: world.ts.client, tableName: world.ts.tableName });
    const firstStream = calico.get(STREAMS[0] as string) as StoredEvent[];
    const live = firstStream.filter((e) => e.timestamp >= T0 + 2 * MINUTE_MS + 30_000);
    for (let i = 0; i < live.length; i += 4) {
      await ingestDelivery(
        payloadOf(STREAMS[0] as string, live.slice(i, i + 4).map(asCw)),
        deps,
        coverage,
        "live",
      );
    }

    const firstUntil = T0 + 4 * MINUTE_MS - 1;
    const first = await backfillCli([
      ...options(cluster),
      "--since",
      iso(T0),
      "--until",
      iso(firstUntil),
      "--checkpoint",
      join(world.dir, "first.json"),
    ]);
    const window1 = inWindow(T0, firstUntil);
    const liveIn1 = live.filter((e) => e.timestamp <= firstUntil);
    expect(first.events).toBe(window1.length);
    expect(first.stored).toBe(window1.length - liveIn1.length);
    expect(first.alreadyCounted).toBe(liveIn1.length);
    expect(first.calico).toBe(first.stored);
    expect(first.malformed).toBe(0);
    expect(first.streams).toBe(STREAMS.length);
    expect(first.throttled).toBeGreaterThan(0);
    expect(first.interrupted).toBe(false);

    // Overlapping the first backfill and the live minutes.
    const second = await backfillCli([
      ...options(cluster),
      "--since",
      iso(T0 + 3 * MINUTE_MS),
      "--until",
      iso(T0 + MINUTES * MINUTE_MS),
      "--checkpoint",
      join(world.dir, "second.json"),
    ]);
    const window2 = inWindow(T0 + 3 * MINUTE_MS, T0 + MINUTES * MINUTE_MS);
    const counted = new Set([...window1, ...live].map((e) => e.id));
    expect(second.stored).toBe(window2.filter((e) => !counted.has(e.id)).length);
    expect(second.alreadyCounted).toBe(window2.filter((e) => counted.has(e.id)).length);

    // Live deliveries arriving late (redelivered) change nothing.
    for (let i = 0; i < live.length; i += 4) {
      const again = await ingestDelivery(
        payloadOf(STREAMS[0] as string, live.slice(i, i + 4).map(asCw)),
        deps,
        coverage,
        "live",
      );
      expect(again.flowsApplied).toBe(0);
    }
    expect(await stored(cluster)).toEqual(expectedByAddress(allEvents()));

    // The same backfill again: nothing stored, nothing changed.
    const repeat = await backfillCli([
      ...options(cluster),
      "--since",
      iso(T0),
      "--until",
      iso(firstUntil),
      "--checkpoint",
      join(world.dir, "first.json"),
      "--restart",
    ]);
    expect(repeat.stored).toBe(0);
    expect(repeat.flowsApplied).toBe(0);
    expect(await stored(cluster)).toEqual(expectedByAddress(allEvents()));
  });

  it("resumes an interrupted run from its checkpoint, keeping the window a relative --since resolved to", async () => {
    const cluster = "resumed";
    const checkpoint = join(world.dir, "resume.json");
    const args = [
      ...options(cluster),
      "--since",
      "20m",
      "--until",
      "5m",
      "--checkpoint",
      checkpoint,
      "--concurrency",
      "1",
    ];
    const startedAt = T0 + 15 * MINUTE_MS;
    const stop = new AbortController();
    let minutes = 0;
    const interrupted = await backfillCli(args, {
      now: () => startedAt,
      signal: stop.signal,
      onMinute: () => {
        if (++minutes === 8) stop.abort();
      },
    });
    expect(interrupted.interrupted).toBe(true);
    const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
    expect(saved.complete).toBe(false);
    expect(saved.since).toBe(iso(startedAt - 20 * MINUTE_MS));
    const states = Object.values(saved.streams[GROUP] ?? {});
    expect(states.filter((s) => s.complete)).toHaveLength(1);
    expect(states.some((s) => !s.complete && Date.parse(s.doneUntil) > Date.parse(saved.since))).toBe(true);

    // Ten minutes later, the same command carries on with the same window.
    const resumed = await backfillCli(args, { now: () => startedAt + 10 * MINUTE_MS });
    expect(resumed.resumed).toBe(true);
    expect(resumed.since).toBe(saved.since);
    expect(resumed.streamsSkipped).toBe(1);
    const window = inWindow(Date.parse(saved.since), Date.parse(saved.until));
    // The finished stream and the finished minutes were not read again.
    expect(resumed.events).toBeLessThan(window.length - (calico.get(STREAMS[0] as string)?.length ?? 0));
    expect(interrupted.stored + resumed.stored).toBe(window.length);
    expect(await stored(cluster)).toEqual(expectedByAddress(window));
    expect((JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint).complete).toBe(true);
  });

  it("runs as the calico-flows binary, on the embedded store, with the endpoint from AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", async () => {
    const store = join(world.dir, "embedded");
    const env = {
      AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
      AWS_REGION: "eu-west-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    };
    const range = ["--since", iso(T0), "--until", iso(T0 + 2 * MINUTE_MS - 1)];
    const args = [
      "backfill",
      "--log-group",
      GROUP,
      ...range,
      "--store",
      store,
      "--cluster",
      "bin",
      "--pods",
      PODS_FILE,
    ];
    const window = inWindow(T0, T0 + 2 * MINUTE_MS - 1);
    const first = await runCli(args, { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain(
      `${window.length} events scanned, ${window.length} calico records (0 malformed)`,
    );
    expect(first.stderr).toContain(`coverage: ${window.length} events stored now, 0 already counted`);
    // The finished checkpoint sits under the store directory; the next run is a fresh window, all counted.
    expect(readdirSync(join(store, "checkpoints"))).toHaveLength(1);
    const second = await runCli(args, { env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(`coverage: 0 events stored now, ${window.length} already counted`);
    const listed = await runCli(["flows", "--store", store, "--cluster", "bin", ...range, "--json"]);
    expect(ndjson<FlowRecord>(listed.stdout).reduce((n, f) => n + f.packets, 0)).toBe(window.length);
  });

  it("finishes a failed delivery's claim with the settings it was claimed under, and says so", async () => {
    const cluster = "claimed-settings";
    const group = "/aws/eks/prod/calico-settings";
    const stream = "ip-192-168-74-5";
    // Addresses no directory knows: the failed delivery and the backfill attribute them alike.
    const events = logs
      .put(
        group,
        stream,
        Array.from({ length: 20 }, (_, i) => {
          const at = T0 + 10 * MINUTE_MS + i * 3_000;
          const dst = i % 2 ? "192.168.201.20" : "192.168.201.21";
          return { timestamp: at, message: calicoLine(at, stream, "192.168.200.10", dst, 5432) };
        }),
      )
      .map(asCw);
    // The ingest function counted it in 30 s buckets, and failed after writing half its flows.
    const flows = world.flows;
    const halfWritten: FlowStore = {
      writeFlows: async (records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> => {
        await flows.writeFlows(records.slice(0, Math.ceil(records.length / 2)), contribution);
        throw new Error("injected: throttled after a partial write");
      },
      applyAlerts: (c, id, o) => flows.applyAlerts(c, id, o),
      markAlertSent: (a, how) => flows.markAlertSent(a, how),
      queryFlows: (q) => flows.queryFlows(q),
      queryAlerts: (q) => flows.queryAlerts(q),
    };
    const failed = ingestDeps(halfWritten, cluster);
    failed.pipeline.bucketSeconds = 30;
    failed.settings = {
      bucketSeconds: 30,
      prefix: "calico-packet",
      internalCidrs: ["192.168.0.0/16"],
      workloadInterfacePrefixes: DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
      alertWindowMs: 15 * 60_000,
    };
    const coverage = new DynamoCoverageStore({ client: world.ts.client, tableName: world.ts.tableName });
    await expect(ingestDelivery(payloadOf(stream, events, group), failed, coverage, "live")).rejects.toThrow(
      /partial write/,
    );

    // Its payload is not in the failed-payloads queue: the operator backfills the range, with the CLI's 60 s buckets.
    const late = Date.now() + PENDING_GRACE_MS + MINUTE_MS;
    const summary = await backfillCli(
      [
        ...backfillOptions(world, group, cluster),
        "--since",
        iso(T0 + 10 * MINUTE_MS),
        "--until",
        iso(T0 + 12 * MINUTE_MS),
      ],
      { now: () => late },
    );
    expect(summary).toMatchObject({ completed: events.length, pending: 0, stored: 0 });
    expect(total(await stored(cluster))).toBe(events.length);
    expect(describeBackfill(summary)).toContain(
      "note: 20 events of interrupted writers were finished with the settings they had claimed them under: " +
        "--bucket-seconds 30 (this run: --bucket-seconds 60)",
    );
  });

  it("leaves the alerts a failed run's lease holds to a backfill after the lease, and says so", async () => {
    const cluster = "held-alerts";
    const group = "/aws/eks/prod/calico-held";
    const stream = "ip-192-168-74-5";
    logs.put(group, stream, [
      {
        timestamp: T0 + 20 * MINUTE_MS,
        message: calicoLine(T0 + 20 * MINUTE_MS, stream, "192.168.200.10", "192.168.201.20", 5432),
      },
    ]);
    const sns = await startLocalSns();
    process.env.AWS_ENDPOINT_URL_SNS = sns.endpoint;
    // Not there yet: every publish fails, as with a topic whose key the publisher may not use.
    const args = [
      ...backfillOptions(world, group, cluster),
      "--since",
      iso(T0 + 20 * MINUTE_MS),
      "--until",
      iso(T0 + 21 * MINUTE_MS),
      "--alerts-topic",
      "arn:aws:sns:eu-west-1:000000000000:calico-held-backfill",
      "--checkpoint",
      join(world.dir, "held.json"),
      "--restart",
    ];
    try {
      await expect(backfillCli(args)).rejects.toThrow(/publish/i);
      const watch = await subscribeQueue(
        sns,
        await createTopic(sns, "calico-held-backfill"),
        "held-backfill",
      );
      // Fixed and run again at once: the failed run's lease on sending its alert has not run out.
      const early = await backfillCli(args);
      expect(early.alertsHeld).toHaveLength(1);
      expect(early.alertsSent).toBe(0);
      expect(describeBackfill(early)).toMatch(
        /^warning: alert \S+ \(opened \S+, held until \S+\) not sent: another run of this backfill holds the lease on sending it .*: backfill this window again after \S+$/m,
      );
      expect(await drainQueue(sns, watch)).toEqual([]);
      // Once the lease has run out, the next backfill of the window sends it.
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
      const later = await backfillCli(args);
      expect(later).toMatchObject({ alertsHeld: [], alertsSent: 1 });
      expect(await drainQueue(sns, watch)).toHaveLength(1);
    } finally {
      vi.useRealTimers();
      delete process.env.AWS_ENDPOINT_URL_SNS;
      await sns.close();
    }
  });

  it("refuses a checkpoint that belongs to another backfill", async () => {
    const checkpoint = join(world.dir, "first.json");
    await expect(
      backfillCli([...options("prod"), "--since", iso(T0 + MINUTE_MS), "--checkpoint", checkpoint]),
    ).rejects.toThrow(/belongs to another backfill/);
  });
});
