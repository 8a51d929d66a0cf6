// `calico-flows backfill`: history from CloudWatch Logs (FilterLogEvents, per log stream) through the ingest
// pipeline, with each event's own timestamp and the attribution of its time. Coverage records make it count
// every event once, whatever live ingest, redrive or earlier backfills already counted (docs/backfill.md); a
// checkpoint file only saves work after an interruption into the same destination.
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { type Command, Option } from "commander";
import {
  CloudWatchLogsReader,
  type DeletedStream,
  logsClient,
  mayHoldEvents,
  termPattern,
} from "../../functions/adapters/cloudwatch-logs.ts";
import { storeClient } from "../../functions/adapters/dynamo/client.ts";
import { digest } from "../../functions/core/aggregate.ts";
import {
  type BackfillMinuteResult,
  backfillMinute,
  type CloudWatchEvent,
  type MinuteCoverage,
  minuteOf,
  type StreamRef,
} from "../../functions/core/coverage.ts";
import { createScanner } from "../../functions/core/parse.ts";
import type { HeldAlert } from "../../functions/core/ports.ts";
import {
  type CommonOptions,
  commonOptions,
  ineffectiveOptions,
  parseInteger,
  requireStoreNamed,
  signalExitCode,
  stoppableBySignal,
  UsageError,
} from "../common.ts";
import { addIngestOptions, addStored, heldAlertsText, openIngest, settingsDifference } from "../ingest.ts";
import { elapsed, ProgressDisplay, type ProgressOutput, rate } from "../progress.ts";
import { CHECKPOINTS_DIR } from "../store.ts";
import { parseInstant } from "../time.ts";

// ---- checkpoint ---------------------------------------------------------------------------------------------

interface StreamProgress {
  /** Every event stamped before this instant has been processed. */
  doneUntil: string;
  complete: boolean;
}

export interface Checkpoint {
  version: 1;
  /**
   * Digest of what identifies the backfill: cluster, log groups, prefix, stream prefix, since and until as typed, and
   * the destination.
   */
  job: string;
  cluster: string;
  logGroups: string[];
  /** `destinationOf` the run; absent from an earlier version's checkpoints. */
  destination?: string;
  filterPattern: string;
  since: string;
  until: string;
  startedAt: string;
  updatedAt: string;
  complete: boolean;
  streams: Record<string, Record<string, StreamProgress>>;
}

export function readCheckpoint(path: string): Checkpoint | undefined {
  if (!existsSync(path)) return undefined;
  const value = JSON.parse(readFileSync(path, "utf8")) as Checkpoint;
  if (value.version !== 1 || typeof value.job !== "string" || typeof value.streams !== "object") {
    throw new Error(`${path} is not a backfill checkpoint`);
  }
  return value;
}

function writeCheckpoint(path: string, checkpoint: Checkpoint, now: number): void {
  checkpoint.updatedAt = new Date(now).toISOString();
  mkdirSync(dirname(path), { recursive: true });
  // Written aside and renamed, so an interruption mid-write leaves the previous checkpoint intact. On one line: it
  // names every stream of the window (16,000 streams: 1.6 MB so, 2.2 MB indented).
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(checkpoint)}\n`);
  renameSync(temporary, path);
}

/** `path` with its symbolic links resolved as far as it exists: one store whatever path names it. */
function realPath(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    const parent = dirname(absolute);
    return parent === absolute ? absolute : join(realPath(parent), basename(absolute));
  }
}

/**
 * Where the run stores, as its checkpoint's identity takes it: the streams a run finished are counted in that
 * destination's coverage only, so another (a table of the same name in another region, at another endpoint or
 * through another profile) must read them again. The SDK resolves an endpoint only as it sends a request, so the
 * variables it takes one from are read as set; a profile's own endpoint and account come with its name.
 */
async function destinationOf(common: CommonOptions): Promise<string> {
  if (common.table === undefined) return `embedded store ${realPath(common.store)}`;
  const client = storeClient(common.region === undefined ? {} : { region: common.region });
  let region: string;
  try {
    region = await client.config.region();
  } finally {
    client.destroy();
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_DYNAMODB || process.env.AWS_ENDPOINT_URL;
  const profile = process.env.AWS_PROFILE;
  return (
    `DynamoDB table ${common.table} in ${region}${endpoint ? ` at ${endpoint}` : ""}` +
    `${profile ? ` (profile ${profile})` : ""}`
  );
}

// ---- the backfill -------------------------------------------------------------------------------------------

export interface BackfillSummary {
  since: string;
  until: string;
  checkpoint: string;
  resumed: boolean;
  interrupted: boolean;
  /** Ended on an error while reading the streams: the summary of a BackfillError, of what was done until then. */
  failed: boolean;
  /** Log streams listed, whatever became of them. */
  streams: number;
  /** Streams the checkpoint says an earlier run finished. */
  streamsSkipped: number;
  /** Streams whose metadata shows that they hold no event of the window (`mayHoldEvents`): never read. */
  streamsOutsideWindow: number;
  /** Events FilterLogEvents returned. */
  events: number;
  alreadyCounted: number;
  completed: number;
  stored: number;
  pending: number;
  uncertain: number;
  lines: number;
  calico: number;
  malformed: number;
  /** Distinct addresses stored unresolved (no pod source could be asked), however many batches they came in. */
  unresolved: number;
  flowsApplied: number;
  flowsDuplicate: number;
  /** Alerts the backfill opened, each once: a pending alert a later batch hands out again is not counted. */
  alertsOpened: number;
  alertsSent: number;
  /**
   * Alerts not sent because another run of the backfill that stored them (one whose publish failed) holds the lease
   * on sending them: their claims are left unfinished, for a backfill of the window after the lease to send them.
   */
  alertsHeld: HeldAlert[];
  logsCalls: number;
  throttled: number;
  /** Streams found deleted while they were read: their events went with them. */
  deletedStreams: DeletedStream[];
  malformedSamples: string[];
  /**
   * Events of interrupted writers' claims finished with the settings those writers had claimed them under, not the
   * run's own options: the options that differ, theirs and the run's.
   */
  otherSettings: { claimed: string; own: string; events: number }[];
}

/**
 * A backfill that failed while reading its streams, with what it did until then: its progress is in the checkpoint,
 * and the same command resumes from there. The message is the error's (`cause`) own.
 */
export class BackfillError extends Error {
  override name = "BackfillError";
  readonly summary: BackfillSummary;

  constructor(summary: BackfillSummary, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.summary = summary;
  }
}

export interface BackfillIo {
  /** CloudWatch Logs client; default: the SDK's standard configuration (AWS_ENDPOINT_URL_CLOUDWATCH_LOGS…). */
  logs?: CloudWatchLogsClient;
  sleep?: (ms: number) => Promise<void>;
  signal?: AbortSignal;
  /** The run's clock: what relative times count from, when claims are made, when the checkpoint is written. */
  now?: () => number;
  /** Called once per processed minute (tests interrupt a run here). */
  onMinute?: (ref: StreamRef, minute: number, result: BackfillMinuteResult) => void;
  /** Where the progress goes and its clocks; default stderr. */
  progress?: ProgressOutput;
  /** Where a warning goes, as a line; default stderr. */
  warn?: (line: string) => void;
}

const MALFORMED_SAMPLES = 20;

/**
 * The text FilterLogEvents is asked to match: the `--prefix`, as the live subscription filter matches it, unless a
 * `--prefix-format` makes the parser look for other text (the format's literal head without the separators that end it), which it then must be. Lines
 * without it are never parsed, so asking for `--prefix` there would read none of the lines that are.
 */
export function filterTerm(prefix: string, prefixFormat: string | undefined): string {
  const needle = createScanner({ prefix, prefixFormat }).needle;
  return needle.startsWith(prefix) ? prefix : needle;
}

interface Task {
  group: string;
  stream: string;
  from: number;
  state: StreamProgress;
}

export async function backfill(raw: Record<string, unknown>, io: BackfillIo = {}): Promise<BackfillSummary> {
  const common = commonOptions(raw);
  const groups = [...new Set(raw.logGroup as string[])];
  const filterPattern = termPattern(filterTerm(raw.prefix as string, raw.prefixFormat as string | undefined));
  const streamPrefix = raw.streamPrefix as string | undefined;
  const now = (io.now ?? Date.now)();
  const destination = await destinationOf(common);
  // What selects the events read, and (since the destination was added) where they are counted.
  const selection = [
    common.cluster,
    [...groups].sort(),
    filterPattern,
    streamPrefix ?? null,
    raw.since,
    raw.until,
  ];
  const job = digest(JSON.stringify([...selection, destination]));
  const path =
    (raw.checkpoint as string | undefined) ?? join(common.store, CHECKPOINTS_DIR, `backfill-${job}.json`);

  let checkpoint = raw.restart === true ? undefined : readCheckpoint(path);
  if (checkpoint !== undefined && checkpoint.job !== job) {
    throw new Error(
      `${path} belongs to another backfill (${checkpoint.logGroups.join(", ")} ${checkpoint.since} → ${checkpoint.until} ` +
        `into ${checkpoint.destination ?? "a destination it does not record"}); ` +
        "pass --restart to replace it or --checkpoint to use another file",
    );
  }
  const resumed = checkpoint !== undefined && !checkpoint.complete;
  if (checkpoint === undefined && raw.checkpoint === undefined && raw.restart !== true) {
    // Versions before the destination was part of the job named the file without it: their unfinished window is
    // not resumed (its destination is unknown), and a relative --since now means another window.
    const earlierJob = digest(JSON.stringify(selection));
    const earlierPath = join(common.store, CHECKPOINTS_DIR, `backfill-${earlierJob}.json`);
    let earlier: Checkpoint | undefined;
    try {
      earlier = readCheckpoint(earlierPath);
    } catch {
      // Not a checkpoint: nothing to tell of.
    }
    if (earlier !== undefined && !earlier.complete && earlier.destination === undefined) {
      (io.warn ?? ((line: string) => process.stderr.write(`${line}\n`)))(
        `warning: ${earlierPath}, an earlier version's unfinished checkpoint of this backfill, is not resumed: it does ` +
          `not record where it stored. To finish its window into the same destination, run with --since ${earlier.since} ` +
          `--until ${earlier.until} (coverage counts once what it stored)`,
      );
    }
  }
  if (checkpoint === undefined || checkpoint.complete) {
    // Relative times (--since 6h) are resolved once, here; a resumed run keeps the window it started with.
    const since = parseInstant(raw.since as string, now);
    const until = parseInstant(raw.until as string, now);
    if (!(since < until)) {
      throw new UsageError(
        `--since (${new Date(since).toISOString()}) must be before --until (${new Date(until).toISOString()})`,
      );
    }
    checkpoint = {
      version: 1,
      job,
      cluster: common.cluster,
      logGroups: groups,
      destination,
      filterPattern,
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      startedAt: new Date(now).toISOString(),
      updatedAt: new Date(now).toISOString(),
      complete: false,
      streams: {},
    };
  }
  const cp = checkpoint;
  const since = Date.parse(cp.since);
  const until = Date.parse(cp.until);

  const summary: BackfillSummary = {
    since: cp.since,
    until: cp.until,
    checkpoint: path,
    resumed,
    interrupted: false,
    failed: false,
    streams: 0,
    streamsSkipped: 0,
    streamsOutsideWindow: 0,
    events: 0,
    alreadyCounted: 0,
    completed: 0,
    stored: 0,
    pending: 0,
    uncertain: 0,
    lines: 0,
    calico: 0,
    malformed: 0,
    unresolved: 0,
    flowsApplied: 0,
    flowsDuplicate: 0,
    alertsOpened: 0,
    alertsSent: 0,
    alertsHeld: [],
    logsCalls: 0,
    throttled: 0,
    deletedStreams: [],
    malformedSamples: [],
    otherSettings: [],
  };

  const setup = await openIngest(raw, common);
  const logs = io.logs ?? logsClient(common.region === undefined ? {} : { region: common.region });
  const stop = new AbortController();
  const abort = () => stop.abort();
  io.signal?.addEventListener("abort", abort);
  // The reader gives up its calls, retries and waits at a stop, throwing the stop's reason: an interruption, not a
  // failure (a throttled run would otherwise back off for minutes after Ctrl-C, then fail).
  const reader = new CloudWatchLogsReader({
    client: logs,
    callsPerSecond: raw.maxRps as number,
    sleep: io.sleep,
    signal: stop.signal,
  });
  const stopped = (error: unknown) => stop.signal.aborted && error === stop.signal.reason;

  // Which streams are read, where each one stands (the instant before which its events are processed), and how far
  // the run is: what the progress shows.
  const tasks: Task[] = [];
  const position = new Map<Task, number>();
  const reading = new Set<Task>();
  let total: number | undefined;
  const progressed = () => tasks.reduce((n, t) => n + ((position.get(t) ?? t.from) - t.from), 0);
  const clock = io.progress?.now ?? Date.now;
  const started = clock();
  const progressLine = () => {
    const ms = clock() - started;
    const head = `backfill after ${elapsed(ms)}: `;
    if (total === undefined) return `${head}listing log streams, ${summary.streams} so far`;
    const share = total > 0 ? progressed() / total : 1;
    const left = share > 0 && share < 1 ? `, about ${elapsed((ms * (1 - share)) / share)} left` : "";
    const done = tasks.filter((t) => t.state.complete).length;
    const behind = [...reading].sort((a, b) => (position.get(a) ?? a.from) - (position.get(b) ?? b.from));
    const shown = behind
      .slice(0, 4)
      .map((t) => `${t.stream} at ${new Date(position.get(t) ?? t.from).toISOString()}`);
    if (behind.length > shown.length) shown.push(`${behind.length - shown.length} more`);
    return (
      `${head}${Math.floor(share * 100)}% of the window${left}; ${done} of ${tasks.length} streams done` +
      `${shown.length > 0 ? `, reading ${shown.join(", ")}` : ""}; ${summary.events} events read, ` +
      `${summary.calico} calico records, ${summary.flowsApplied} flow updates, ${rate(summary.events, ms)} events/s, ` +
      `${summary.throttled} calls throttled`
    );
  };
  const display = new ProgressDisplay({
    enabled: raw.quiet !== true,
    format:
      "{bar} {percentage}% | {events} events | {calico} calico | {flows} flows | {rate} events/s | " +
      "{throttled} throttled | ETA {eta_formatted}",
    line: progressLine,
    ...io.progress,
  });
  const showProgress = () =>
    display.update(progressed(), {
      events: summary.events,
      calico: summary.calico,
      flows: summary.flowsApplied,
      rate: rate(summary.events, clock() - started),
      throttled: summary.throttled,
    });
  // At most once a second (and at the end): each write is of every stream listed, so one per stream finished would
  // cost the square of the streams. A run killed between two writes resumes from the earlier one, and reads again what
  // it did since, which coverage counts once.
  const runClock = io.now ?? Date.now;
  let lastSave = Number.NEGATIVE_INFINITY;
  const save = (force: boolean) => {
    const at = runClock();
    if (!force && at - lastSave < 1000) return;
    lastSave = at;
    writeCheckpoint(path, cp, at);
  };

  try {
    // The streams that may hold events of the window. Listed just after `now`: an earlier instant than the listing's
    // only leaves more streams to read.
    const window = { since, until, listedAt: now };
    try {
      for (const group of groups) {
        const known = cp.streams[group] ?? {};
        cp.streams[group] = known;
        for await (const info of reader.streams(group, { prefix: streamPrefix })) {
          summary.streams++;
          if (known[info.name]?.complete === true) {
            summary.streamsSkipped++;
            continue;
          }
          if (!mayHoldEvents(info, window)) {
            summary.streamsOutsideWindow++;
            continue;
          }
          const state = known[info.name] ?? { doneUntil: cp.since, complete: false };
          known[info.name] = state;
          const task = {
            group,
            stream: info.name,
            from: Math.max(since, Date.parse(state.doneUntil)),
            state,
          };
          tasks.push(task);
          position.set(task, task.from);
        }
      }
    } catch (error) {
      // Stopped while listing: no stream is read, and the next run lists them again.
      if (!stopped(error)) throw error;
    }
    save(true);

    total = tasks.reduce((n, t) => n + (until - t.from), 0);
    display.start(Math.max(total, 1), { events: 0, calico: 0, flows: 0, rate: 0, throttled: 0 });

    const unresolved = new Set<string>();
    const add = (result: BackfillMinuteResult, ref: StreamRef) => {
      summary.alreadyCounted += result.alreadyCounted;
      summary.completed += result.completed;
      summary.stored += result.stored;
      summary.pending += result.pending;
      summary.uncertain += result.uncertain;
      for (const batch of result.batches) {
        const r = batch.result;
        summary.lines += r.stats.lines;
        summary.calico += r.stats.calico;
        summary.malformed += r.stats.malformed;
        addStored(summary, unresolved, r);
        summary.alertsHeld.push(...r.alertsHeld);
        if (batch.settings !== undefined) {
          const { claimed, own } = settingsDifference(batch.settings, setup.settings);
          const alike = summary.otherSettings.find((o) => o.claimed === claimed && o.own === own);
          if (alike === undefined) summary.otherSettings.push({ claimed, own, events: batch.events.length });
          else alike.events += batch.events.length;
        }
        for (const m of r.malformed) {
          if (summary.malformedSamples.length >= MALFORMED_SAMPLES) break;
          const id = batch.events[m.index]?.id ?? "?";
          summary.malformedSamples.push(`${ref.group} ${ref.stream} event ${id}: ${m.reason}`);
        }
      }
    };

    const finish = (task: Task) => {
      task.state.doneUntil = cp.until;
      task.state.complete = true;
      position.set(task, until);
      showProgress();
      save(false);
    };

    const runStream = async (task: Task) => {
      const ref: StreamRef = { cluster: common.cluster, group: task.group, stream: task.stream };
      // Nothing left of the window (an earlier run was stopped right after the stream's last minute).
      if (task.from >= until) {
        finish(task);
        return;
      }
      const pending = new Map<number, CloudWatchEvent[]>();
      const flush = async (minutes: number[]) => {
        if (minutes.length === 0) return;
        const first = minutes[0] as number;
        const last = minutes[minutes.length - 1] as number;
        // One Query for the coverage of every minute about to be processed.
        const known = new Map((await setup.coverage.read(ref, first, last)).map((c) => [c.minute, c]));
        for (const minute of minutes) {
          if (stop.signal.aborted) return;
          const events = pending.get(minute) ?? [];
          const current: MinuteCoverage = known.get(minute) ?? { minute, version: 0, claims: [] };
          const result = await backfillMinute(ref, minute, events, setup.deps, setup.coverage, {
            known: current,
            now: io.now,
          });
          pending.delete(minute);
          add(result, ref);
          io.onMinute?.(ref, minute, result);
        }
      };
      const doneUntil = (frontier: number) => {
        const open = pending.size === 0 ? frontier : Math.min(...pending.keys());
        task.state.doneUntil = new Date(Math.max(open, task.from)).toISOString();
        position.set(task, Math.min(until, Math.max(open, task.from)));
      };

      try {
        for await (const page of reader.events({
          group: task.group,
          streams: [task.stream],
          start: task.from,
          // The window is [since, until); the reader's bounds are inclusive (whatever the service's endTime is).
          end: until - 1,
          filterPattern,
          limit: 10_000,
        })) {
          for (const e of page.events) {
            const m = minuteOf(e.timestamp);
            const list = pending.get(m);
            const event = { id: e.id, timestamp: e.timestamp, message: e.message };
            if (list === undefined) pending.set(m, [event]);
            else list.push(event);
          }
          summary.events += page.events.length;
          const lastEvent = page.events[page.events.length - 1];
          if (lastEvent !== undefined) {
            // Events come in timestamp order, so every minute before the last event's is complete.
            const frontier = minuteOf(lastEvent.timestamp);
            await flush([...pending.keys()].filter((m) => m < frontier).sort((a, b) => a - b));
            doneUntil(frontier);
          }
          summary.logsCalls = reader.stats.calls;
          summary.throttled = reader.stats.throttled;
          summary.deletedStreams = [...reader.deletedStreams];
          showProgress();
          save(false);
          if (stop.signal.aborted) return;
        }
      } catch (error) {
        // Stopped while the reader waited or asked for the next page: the minutes still pending may be incomplete,
        // and the checkpoint (doneUntil) already resumes at the first of them.
        if (stopped(error)) return;
        throw error;
      }
      await flush([...pending.keys()].sort((a, b) => a - b));
      // Stopped before every minute read was processed: resume at the first one left. Otherwise the stream is
      // done, even if the stop came during its last minute.
      if (pending.size > 0) {
        doneUntil(until);
        return;
      }
      finish(task);
    };

    // A few streams at a time: the pacer keeps the shared CloudWatch Logs rate, the rest overlaps DynamoDB work.
    const concurrency = raw.concurrency as number;
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (!stop.signal.aborted) {
        const task = tasks[next++];
        if (task === undefined) return;
        reading.add(task);
        try {
          await runStream(task);
        } catch (error) {
          failure ??= error;
          stop.abort();
        } finally {
          reading.delete(task);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, tasks.length)) }, worker));
    summary.logsCalls = reader.stats.calls;
    summary.throttled = reader.stats.throttled;
    summary.deletedStreams = [...reader.deletedStreams];
    if (failure !== undefined) {
      summary.failed = true;
      throw new BackfillError(summary, failure);
    }
    summary.interrupted = stop.signal.aborted;
    cp.complete = !summary.interrupted;
  } finally {
    io.signal?.removeEventListener("abort", abort);
    display.stop();
    save(true);
    await setup.close();
    if (io.logs === undefined) logs.destroy();
  }
  return summary;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** What became of the streams not read: ` (2 finished earlier, 5 outside the window)`, or nothing. */
function streamNotes(s: BackfillSummary): string {
  const notes = [
    ...(s.streamsSkipped > 0 ? [`${s.streamsSkipped} finished earlier`] : []),
    ...(s.streamsOutsideWindow > 0 ? [`${s.streamsOutsideWindow} outside the window`] : []),
  ];
  return notes.length > 0 ? ` (${notes.join(", ")})` : "";
}

export function describeBackfill(s: BackfillSummary): string {
  const lines = [
    `${s.failed ? "failed backfill" : s.interrupted ? "interrupted backfill" : "backfilled"} ${s.since} → ${s.until}${s.resumed ? " (resumed)" : ""}: ` +
      `${s.streams} log streams${streamNotes(s)}, ` +
      `${s.events} events scanned, ${s.calico} calico records (${s.malformed} malformed), ` +
      `${s.flowsApplied} flow updates (${s.flowsDuplicate} already stored), ${s.alertsOpened} alerts` +
      `${s.alertsSent > 0 ? ` (${s.alertsSent} published)` : ""}, ${s.unresolved} unresolved endpoints`,
    `coverage: ${s.stored} events stored now, ${s.alreadyCounted} already counted, ` +
      `${s.completed} finished for an interrupted writer; ${s.logsCalls} CloudWatch Logs calls, ${s.throttled} throttled`,
  ];
  if (s.pending > 0) {
    lines.push(
      `${s.pending} events are claimed by deliveries not yet confirmed stored: their Lambda retries or \`calico-flows redrive\` will store them, ` +
        "and a backfill run again once the claims are 15 minutes old stores those it can (see docs/backfill.md)",
    );
  }
  for (const o of s.otherSettings) {
    lines.push(
      `note: ${o.events} events of interrupted writers were finished with the settings they had claimed them under: ` +
        `${o.claimed} (this run: ${o.own})`,
    );
  }
  if (s.uncertain > 0) {
    lines.push(
      `${s.uncertain} events were left alone in minutes whose claims count events without naming them (see docs/backfill.md, "Limits")`,
    );
  }
  if (s.deletedStreams.length > 0) {
    const names = s.deletedStreams.map((d) => `${d.group} ${d.stream}`).join(", ");
    const one = s.deletedStreams.length === 1;
    lines.push(
      `warning: ${s.deletedStreams.length} log stream${one ? " was" : "s were"} deleted while being read, ` +
        `${one ? "its events with it" : "their events with them"}: ${names}; the run read the others on`,
    );
  }
  if (s.alertsHeld.length > 0) {
    lines.push(
      `warning: ${heldAlertsText(s.alertsHeld, "backfill", "their claims are left unfinished: backfill this window again")}`,
    );
  }
  lines.push(...s.malformedSamples);
  if (s.malformed > s.malformedSamples.length)
    lines.push(`… and ${s.malformed - s.malformedSamples.length} more malformed lines`);
  if (s.interrupted) lines.push(`progress saved in ${s.checkpoint}: run the same command again to resume`);
  if (s.failed) {
    lines.push(
      `progress saved in ${s.checkpoint}: once the error below is dealt with, run the same command again to resume`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export function registerBackfill(program: Command): void {
  const command = program
    .command("backfill")
    .description("ingest calico-packet history from CloudWatch Logs, counting each event once")
    .addOption(
      new Option("--log-group <name>", "log group to read, repeatable")
        .argParser(collect)
        .makeOptionMandatory(),
    )
    .requiredOption(
      "--since <time>",
      "start: ISO time (UTC unless it has an offset) or a duration before now (6h, 2d)",
    )
    .option(
      "--until <time>",
      "end: ISO time (UTC unless it has an offset), duration before now, or now",
      "now",
    )
    .option("--stream-prefix <prefix>", "only log streams whose name starts with this")
    .option("--checkpoint <file>", "progress file (default: <store>/checkpoints/backfill-<job>.json)")
    .option("--restart", "ignore an unfinished checkpoint and start the window afresh")
    .option("--concurrency <n>", "log streams read at once", parseInteger("--concurrency", 1, 64), 4)
    .option("--max-rps <n>", "CloudWatch Logs calls per second at most", parseInteger("--max-rps", 1, 100), 5)
    .option("--quiet", "no progress, only the summary");
  // The checkpoint is kept under --store, whichever the store, unless --checkpoint names it.
  ineffectiveOptions(addIngestOptions(command), {
    store: (o) =>
      o.table === undefined || o.checkpoint === undefined
        ? undefined
        : "--table names its store, and --checkpoint its progress file",
  });
  command.addHelpText(
    "after",
    "\nThe destination must be named: --table <the stack's TableName output> with the stack's --cluster, or\n" +
      "--store DIR for a local embedded store.",
  );
  command.hook("preAction", (self) =>
    requireStoreNamed(self, "backfill stores the history of the deployed log groups"),
  );
  command.action(async (raw: Record<string, unknown>) => {
    try {
      const { result: summary, stoppedBy } = await stoppableBySignal(
        "finishing the current minute and saving the checkpoint",
        (signal) => backfill(raw, { signal }),
      );
      process.stderr.write(describeBackfill(summary));
      if (summary.interrupted) process.exitCode = signalExitCode(stoppedBy ?? "SIGINT");
      else if (summary.alertsHeld.length > 0) process.exitCode = 1;
    } catch (error) {
      // What the failed run stored and where its progress is, before the error itself (exit status 1).
      if (error instanceof BackfillError) process.stderr.write(describeBackfill(error.summary));
      throw error;
    }
  });
}
