// Shared by the backfill and redrive tests: calico-packet log events as CloudWatch Logs holds them, the ingest
// dependencies over a real store, and exact expected counts per flow computed by the pipeline itself; for the
// backfill command, the store and scratch directory its tests run against, its options and an in-process run.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { Command } from "commander";
import { afterAll, beforeAll } from "vitest";
import {
  type BackfillIo,
  type BackfillSummary,
  backfill,
  registerBackfill,
} from "../../cli/commands/backfill.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import type { IngestDeps } from "../../functions/core/ingest.ts";
import { createScanner } from "../../functions/core/parse.ts";
import { type LogEvent, type PipelineOptions, runPipeline } from "../../functions/core/pipeline.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import type { SubscriptionPayload } from "../../functions/core/subscription-payload.ts";
import type { FlowRecord, Holder, IpDirectory } from "../../functions/core/types.ts";
import { ROOT } from "../cli/run.ts";
import type { LocalLogs } from "../support/cloudwatch-logs-server.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

export const GROUP = "/aws/eks/prod/calico";
export const T0 = Date.parse("2026-04-19T04:50:00.000Z");

/** A pool of endpoints; the pipeline attributes them through the static directory below. */
export const PODS: Record<string, { namespace: string; workload: string; name: string }> = {
  "192.168.22.247": { namespace: "customer-a", workload: "web", name: "web-7d9f8b6c5-x2k4q" },
  "192.168.30.4": { namespace: "customer-a", workload: "api", name: "api-5c6d-xyz98" },
  "192.168.94.122": { namespace: "customer-b", workload: "db", name: "db-0" },
  "192.168.61.8": { namespace: "customer-c", workload: "cache", name: "cache-0" },
};
export const SOURCES = ["192.168.22.247", "192.168.30.4", "203.0.113.9", "192.168.61.8"];
export const DESTINATIONS = ["192.168.94.122", "192.168.61.8", "192.168.30.4"];
export const PORTS = [5432, 6379, 8080];

export const directory: IpDirectory = {
  async resolve(lookups) {
    return lookups.map((l) => {
      const pod = PODS[l.ip];
      if (pod === undefined) return { status: "absent" };
      const holder: Holder = {
        kind: "pod",
        namespace: pod.namespace,
        name: pod.name,
        workload: { kind: "Deployment", name: pod.workload },
        node: "ip-192-168-74-5",
        uid: `uid-${pod.name}`,
        validFrom: 0,
        validTo: null,
      };
      return { status: "found", holder };
    });
  },
};

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** A kernel line as the node's journal ships it to CloudWatch Logs (syslog prefix, no year). */
export function calicoLine(
  at: number,
  node: string,
  src: string,
  dst: string,
  dstPort: number,
  length = 60,
): string {
  const d = new Date(at);
  const stamp = `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${d.toISOString().slice(11, 19)}`;
  return (
    `${stamp} ${node} kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 ` +
    `SRC=${src} DST=${dst} LEN=${length} TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=${dstPort} ` +
    "WINDOW=62727 RES=0x00 SYN URGP=0"
  );
}

export function pipelineOptions(cluster: string): PipelineOptions {
  return {
    cluster,
    internal: new CidrSet(["192.168.0.0/16"]),
    bucketSeconds: 60,
    scanner: createScanner({ year: 2026 }),
    directory,
  };
}

export function ingestDeps(store: FlowStore, cluster: string): IngestDeps {
  return { store, alertWindowMs: 15 * 60_000, alertCap: 50, pipeline: pipelineOptions(cluster) };
}

export interface CwEvent {
  id: string;
  timestamp: number;
  message: string;
  stream: string;
}

/** Packets per flow (keyed by bucket and id) if every event were counted exactly once. */
export async function expectedPackets(
  events: readonly CwEvent[],
  cluster: string,
): Promise<Map<string, number>> {
  const logEvents: LogEvent[] = events.map((e) => ({
    message: e.message,
    timestamp: e.timestamp,
    node: e.stream,
  }));
  const result = await runPipeline(logEvents, pipelineOptions(cluster));
  const out = new Map<string, number>();
  for (const f of result.flows)
    out.set(`${f.bucket}|${f.id}`, (out.get(`${f.bucket}|${f.id}`) ?? 0) + f.packets);
  return out;
}

/** Packets per flow as stored, over every page of the window. */
export async function storedPackets(
  store: FlowStore,
  cluster: string,
  since: number,
  until: number,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor: string | undefined;
  do {
    const page = await store.queryFlows({
      cluster,
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      limit: 1000,
      cursor,
    });
    for (const f of page.items)
      out.set(`${f.bucket}|${f.id}`, (out.get(`${f.bucket}|${f.id}`) ?? 0) + f.packets);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

/**
 * Packets by (bucket, source IP, destination IP, port, reporter): what counting each event once gives, whatever
 * the attribution (the CLI attributes from a pods file, these helpers from the static directory).
 */
export function byAddress(
  records: readonly {
    bucket: string;
    src: { ip: string };
    dst: { ip: string };
    dstPort: number | null;
    reporter: string;
    packets: number;
  }[],
): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of records) {
    const key = `${r.bucket}|${r.src.ip}|${r.dst.ip}|${r.dstPort}|${r.reporter}`;
    out.set(key, (out.get(key) ?? 0) + r.packets);
  }
  return out;
}

/** byAddress of every event counted once, read straight from the lines. */
export function expectedByAddress(
  events: readonly { timestamp: number; message: string; stream: string }[],
): Map<string, number> {
  return byAddress(
    events.map((e) => ({
      bucket: new Date(Math.floor(e.timestamp / 60_000) * 60_000).toISOString(),
      src: { ip: /SRC=(\S+)/.exec(e.message)?.[1] as string },
      dst: { ip: /DST=(\S+)/.exec(e.message)?.[1] as string },
      dstPort: Number(/DPT=(\d+)/.exec(e.message)?.[1]),
      reporter: e.stream,
      packets: 1,
    })),
  );
}

/** byAddress of what is stored in the window. */
export async function storedByAddress(
  store: FlowStore,
  cluster: string,
  since: number,
  until: number,
): Promise<Map<string, number>> {
  const all: FlowRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryFlows({
      cluster,
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      limit: 1000,
      cursor,
    });
    all.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return byAddress(all);
}

export function total(counts: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
}

/** A subscription delivery of some of a stream's events, as `awslogs.data` decodes. */
export function payloadOf(stream: string, events: readonly CwEvent[], group = GROUP): SubscriptionPayload {
  return {
    messageType: "DATA_MESSAGE",
    owner: "123456789012",
    logGroup: group,
    logStream: stream,
    subscriptionFilters: ["calico-packet"],
    logEvents: events.map((e) => ({ id: e.id, timestamp: e.timestamp, message: e.message })),
  };
}

/** Runs `calico-flows backfill ARGS` through its commander definition, in process, reading `logs`: its summary. */
export async function backfillCommand(
  args: readonly string[],
  logs: CloudWatchLogsClient,
  io: BackfillIo = {},
): Promise<BackfillSummary> {
  const program = new Command("calico-flows").exitOverride();
  registerBackfill(program);
  const command = program.commands.find((c) => c.name() === "backfill") as Command;
  let summary: BackfillSummary | undefined;
  command.action(async (raw: Record<string, unknown>) => {
    summary = await backfill(raw, { logs, sleep: async () => {}, ...io });
  });
  await program.parseAsync(["backfill", ...args], { from: "user" });
  if (summary === undefined) throw new Error("backfill did not run");
  return summary;
}

/** `calico-flows backfill ARGS` in process, reading the local CloudWatch Logs endpoint through a new client. */
export function runBackfill(
  logs: LocalLogs,
  args: readonly string[],
  io: BackfillIo = {},
): Promise<BackfillSummary> {
  return backfillCommand(args, logs.client(), io);
}

/** The demo's pods file, which `--pods` attributes the backfilled lines with. */
export const PODS_FILE = join(ROOT, "examples", "demo", "pods.json");

/** What a backfill test file runs against; set before its tests, removed after them. */
export interface BackfillWorld {
  /** The store in dynalite: the command's `--table`, through AWS_ENDPOINT_URL_DYNAMODB. */
  ts: TestStore;
  flows: FlowStore;
  /** A scratch directory, for checkpoints. */
  dir: string;
}

/** Registers the hooks that start the world before the file's tests (`name` names the directory) and end it after. */
export function useBackfillWorld(name: string): BackfillWorld {
  const world = {} as BackfillWorld;
  beforeAll(async () => {
    world.ts = await startTestStore();
    process.env.AWS_ENDPOINT_URL_DYNAMODB = world.ts.endpoint;
    world.flows = new DynamoFlowStore({ client: world.ts.client, tableName: world.ts.tableName });
    world.dir = mkdtempSync(join(tmpdir(), `cf-${name}-`));
  });
  afterAll(async () => {
    await world.ts?.close();
    if (world.dir !== undefined) rmSync(world.dir, { recursive: true, force: true });
  });
  return world;
}

/**
 * `backfill` options reading `groups` into the world's table as `cluster`, attributed by PODS_FILE, at up to 100
 * CloudWatch Logs calls a second, quietly; with the checkpoint file `checkpoint` of the world's directory if named.
 */
export function backfillOptions(
  world: BackfillWorld,
  groups: string | readonly string[],
  cluster: string,
  checkpoint?: string,
): string[] {
  return [
    ...[groups].flat().flatMap((g) => ["--log-group", g]),
    "--table",
    world.ts.tableName,
    "--cluster",
    cluster,
    "--pods",
    PODS_FILE,
    "--max-rps",
    "100",
    ...(checkpoint === undefined ? [] : ["--checkpoint", join(world.dir, checkpoint)]),
    "--quiet",
  ];
}

/** byAddress of what is stored for `cluster` from two hours before T0 to four hours after it. */
export function storedAroundT0(world: BackfillWorld, cluster: string): Promise<Map<string, number>> {
  return storedByAddress(world.flows, cluster, T0 - 2 * 3_600_000, T0 + 4 * 3_600_000);
}
