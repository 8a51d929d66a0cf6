// `calico-flows replay [FILE|-]`: the ingest pipeline on local log text, into the embedded store (or a table).
import { createReadStream, fstatSync, statSync } from "node:fs";
import type { Readable } from "node:stream";
import { type Command, Option } from "commander";
import type { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { contributionToken } from "../../functions/adapters/dynamo/keys.ts";
import { digest } from "../../functions/core/aggregate.ts";
import {
  type CloudWatchEvent,
  type CoverageStore,
  eventKey,
  ingestDelivery,
  MINUTE_MS,
  minuteOf,
} from "../../functions/core/coverage.ts";
import { DeliveredEvents } from "../../functions/core/delivered-events.ts";
import { type IngestResult, type IngestSettings, sameSettings } from "../../functions/core/ingest.ts";
import type { HeldAlert } from "../../functions/core/ports.ts";
import { deliveryContribution } from "../../functions/core/subscription-payload.ts";
import {
  commonOptions,
  ineffectiveOptions,
  parseInteger,
  requireClusterNamed,
  signalExitCode,
} from "../common.ts";
import { ANOTHER_STORE } from "../directory.ts";
import { addIngestOptions, addStored, heldAlertsText, openIngest, settingsDifference } from "../ingest.ts";
import { type BatchOptions, lineBatches, MAX_LINE_LENGTH, notText, OVERSIZED_LINE } from "../lines.ts";
import { Progress } from "../progress.ts";

export interface ReplaySummary {
  lines: number;
  calico: number;
  /**
   * Calico lines an earlier replay (of this file or any other, batched in any way) already counted: claimed by
   * another batch and stored, or in a batch stored before as it is (the same lines batched the same way).
   */
  alreadyCounted: number;
  /**
   * Calico lines claimed by a replay stopped before it stored them that this one could not finish: it did not read
   * all of that replay's lines in one batch. Not counted.
   */
  pending: number;
  /**
   * Calico lines not stored because the table (--table) holds flows of the cluster in their minutes that others than
   * replays stored (OthersCounted), and no --beside-live.
   */
  besideLive: number;
  malformed: number;
  /** The first malformed line (1-based) and why, for the summary of a replay that does not list them (--quiet). */
  firstMalformed: { line: number; reason: string } | null;
  flowsApplied: number;
  flowsDuplicate: number;
  /** Alerts the replay opened, each once: a pending alert a later batch hands out again is not counted. */
  alertsOpened: number;
  alertsSent: number;
  /** Alerts another run of the same lines holds the lease on sending (IngestResult.alertsHeld): not sent by this one. */
  alertsHeld: HeldAlert[];
  /** Distinct addresses stored unresolved (no pod source could be asked), however many batches they came in. */
  unresolved: number;
  /**
   * Calico records with no time of their own (a kernel ring-buffer line, a JSON record without a time field),
   * counted at the moment they were read.
   */
  untimed: number;
  firstSeen: string | null;
  lastSeen: string | null;
  /**
   * Calico lines another replay had claimed (and not stored) under other settings, stored with those settings rather
   * than the run's own options: the options that differ, theirs and the run's.
   */
  otherSettings: { claimed: string; own: string; lines: number }[];
  /**
   * Calico lines counted by an earlier replay (alreadyCounted) whose claims recorded other settings than the run's:
   * the options that differ, theirs and the run's. They keep those: a store counts each line once.
   */
  countedOtherwise: { claimed: string; own: string; lines: number }[];
}

export function registerReplay(program: Command): void {
  const command = program
    .command("replay")
    .description("run the ingest pipeline on local log text (a file, or - for stdin; follows a stream)")
    .argument("[file]", "log file, or - for standard input", "-")
    .option(
      "--year <yyyy>",
      "year of year-less syslog timestamps, which are read as UTC (default: the latest that puts a line at most a day ahead of now)",
      parseInteger("--year", 1970, 9999),
    )
    .addOption(
      new Option("--batch-lines <n>", "lines per batch")
        .argParser(parseInteger("--batch-lines", 1, 1e6))
        .default(5000),
    )
    .option(
      "--beside-live",
      "with --table: store lines even in minutes in which the table holds flows of the cluster that live ingest, a backfill or a redrive stored (lines the stack's log groups do not hold)",
    )
    .option("--quiet", "no progress, only the summary");
  ineffectiveOptions(addIngestOptions(command), {
    // An --alerts-topic is reached in its ARN's region, the pods and nodes through the kubeconfig or files.
    region: (o) =>
      o.table === undefined ? "it is the region of --table, and the embedded store is written" : undefined,
  });
  // Into a table or to an alerts topic, the stack's cluster: before any store is opened or a line is read.
  command.hook("preAction", (self) => requireClusterNamed(self));
  command.hook("preAction", (self) => {
    const o = self.opts();
    if (o.besideLive === true && o.table === undefined) {
      process.stderr.write(
        "note: --beside-live has no effect without --table: no live ingest writes the embedded store\n",
      );
    }
  });
  command.action(async (file: string, raw: Record<string, unknown>) => {
    // Ctrl-C (or SIGTERM) on a followed stream: store what was read, print the summary, exit 130 (143) (a second
    // signal quits now).
    const controller = new AbortController();
    let stoppedBy: NodeJS.Signals = "SIGINT";
    const onSignal = (signal: NodeJS.Signals) => {
      if (controller.signal.aborted) process.exit(signalExitCode(signal));
      stoppedBy = signal;
      process.stderr.write("\ninterrupted: storing the lines read so far (again to quit now)\n");
      controller.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let summary: ReplaySummary;
    try {
      summary = await replay(file, raw, controller.signal);
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    if (controller.signal.aborted) process.exitCode = signalExitCode(stoppedBy);
    process.stderr.write(
      `replayed ${summary.lines} lines: ${summary.calico} calico records` +
        `${summary.alreadyCounted > 0 ? ` (${summary.alreadyCounted} counted by an earlier replay)` : ""}` +
        `${summary.besideLive > 0 ? ` (${summary.besideLive} not stored beside live ingest)` : ""}, ` +
        `${summary.malformed} malformed, ` +
        `${summary.flowsApplied} flow updates (${summary.flowsDuplicate} already stored), ` +
        `${summary.alertsOpened} alerts${summary.alertsSent > 0 ? ` (${summary.alertsSent} published)` : ""}, ` +
        `${summary.unresolved} unresolved endpoints\n`,
    );
    if (summary.alertsHeld.length > 0) {
      // A replay of the same lines, batched alike, is the same contribution: after the lease it is handed them out.
      const again = "replay the same input (its lines are not counted again)";
      process.stderr.write(`warning: ${heldAlertsText(summary.alertsHeld, "input", again)}\n`);
      process.exitCode ||= 1;
    }
    if (summary.besideLive > 0) {
      process.stderr.write(
        `warning: ${summary.besideLive} calico records were not stored: table ${raw.table as string} holds flows of ` +
          `cluster ${raw.cluster as string} in their minutes that the stack's live ingest, a backfill or a redrive ` +
          "stored, which name a line by its CloudWatch Logs event id where replay names it by its text, so that a line " +
          "both stored would be counted twice: `calico-flows backfill` stores each line the stack's log groups hold " +
          "once; --beside-live stores these anyway (lines those log groups do not hold)\n",
      );
      process.exitCode ||= 1;
    }
    const first = summary.firstMalformed;
    if (raw.quiet === true && first !== null) {
      const which =
        summary.malformed === 1
          ? "1 malformed line is not listed (--quiet): it is"
          : `${summary.malformed} malformed lines are not listed (--quiet); the first is`;
      process.stderr.write(`note: ${which} line ${first.line}: ${first.reason}\n`);
    }
    if (summary.lines > 0 && summary.calico === 0 && summary.malformed === 0) {
      process.stderr.write(
        `note: no line held the prefix "${raw.prefix as string}": if Felix's logPrefix is another, give it with --prefix\n`,
      );
    }
    if (summary.pending > 0) {
      process.stderr.write(
        `note: ${summary.pending} calico records were claimed by a replay stopped before it stored them, and are not counted: this input does not hold all of that replay's lines in one batch (replay them with a larger --batch-lines, or as that replay read them)\n`,
      );
    }
    for (const o of summary.otherSettings) {
      process.stderr.write(
        `note: ${o.lines} calico records claimed by another replay were stored with the settings it had claimed them under: ${o.claimed} (this run: ${o.own})\n`,
      );
    }
    for (const o of summary.countedOtherwise) {
      process.stderr.write(
        `note: ${o.lines} calico records were counted by an earlier replay with other settings, which they keep: ` +
          `${o.claimed} (this run: ${o.own}); to store them with this run's, replay them ${ANOTHER_STORE}\n`,
      );
    }
    if (summary.untimed > 0) {
      process.stderr.write(
        `note: ${summary.untimed} calico records carried no time of their own (a kernel ring-buffer line, a JSON record without a readable time field): they are counted at the time they were read, and a replay of them at another time counts them again\n`,
      );
    }
  });
}

/** What a replay reads and what times its batches, when not `file` (or stdin) and the wall clock: tests give theirs. */
export interface ReplayIo {
  input?: Readable;
  /** Its clock also times OthersCounted's checks again. */
  batching?: Pick<BatchOptions, "now" | "after">;
}

/**
 * The size of the input `file` (`-`: standard input, the descriptor `stdin`), for the progress's share and ETA; none
 * for a pipe (`<(zcat …)`, `kubectl logs -f |`). Checked before a stream is opened on it, so that a missing file or a
 * directory is one clear error: Node reads a directory given as stdin (`replay - < dir`) as an empty input.
 */
export function inputSize(file: string, stdin = 0): number | undefined {
  const stat = file === "-" ? fstatSync(stdin) : statSync(file);
  if (stat.isDirectory())
    throw new Error(file === "-" ? "standard input is a directory" : `${file} is a directory`);
  // A file given as stdin (`replay - < file`) has its size too.
  return stat.isFile() ? stat.size : undefined;
}

export async function replay(
  file: string,
  raw: Record<string, unknown>,
  signal?: AbortSignal,
  io: ReplayIo = {},
): Promise<ReplaySummary> {
  const common = commonOptions(raw);
  const stdin = file === "-" && io.input === undefined;
  const total = io.input === undefined ? inputSize(file) : undefined;
  const input = io.input ?? (stdin ? process.stdin : createReadStream(file));
  const { deps, settings, coverage, tableFlows, close } = await openIngest(raw, common, {
    year: raw.year as number | undefined,
  });
  // In a table, replayed lines may be the stack's own (the same node's log, read by `kubectl logs`), counted by its
  // live ingest under event ids that replay cannot know.
  const others =
    tableFlows !== undefined && raw.besideLive !== true
      ? new OthersCounted(tableFlows, common.cluster, coverage, io.batching?.now ?? Date.now)
      : undefined;
  const quiet = raw.quiet === true;
  const progress = new Progress({ total, enabled: !quiet });
  const summary: ReplaySummary = {
    lines: 0,
    calico: 0,
    alreadyCounted: 0,
    pending: 0,
    besideLive: 0,
    malformed: 0,
    firstMalformed: null,
    flowsApplied: 0,
    flowsDuplicate: 0,
    alertsOpened: 0,
    alertsSent: 0,
    alertsHeld: [],
    unresolved: 0,
    untimed: 0,
    firstSeen: null,
    lastSeen: null,
    otherSettings: [],
    countedOtherwise: [],
  };
  /** Counts a malformed line, listed unless --quiet (the summary shows the first then). */
  const malformed = (line: number, reason: string) => {
    summary.malformed++;
    summary.firstMalformed ??= { line, reason };
    if (!quiet) progress.log(`line ${line}: ${reason}\n`);
  };
  const ids = new LineIds();
  const unresolved = new Set<string>();
  const scanner = deps.pipeline.scanner;
  const now = deps.pipeline.now ?? Date.now;
  /** Adds `lines` lines of the settings `claimed` to `list`, under the options in which those differ from the run's. */
  const differing = (list: ReplaySummary["otherSettings"], claimed: IngestSettings, lines: number) => {
    const difference = settingsDifference(claimed, settings);
    const alike = list.find((o) => o.claimed === difference.claimed && o.own === difference.own);
    if (alike === undefined) list.push({ ...difference, lines });
    else alike.lines += lines;
  };
  /** Adds what a run of `lines` calico lines stored, with `claimed` when it was not with the run's own settings. */
  const add = (result: IngestResult, lines: number, claimed: IngestSettings | undefined) => {
    // A batch stored before under the same contribution (the same lines, batched the same way) is a redelivery:
    // every flow write is refused, and its lines were counted by the replay that stored it.
    if (result.flowsApplied === 0 && result.flowsDuplicate > 0) {
      summary.alreadyCounted += lines;
      if (claimed !== undefined) differing(summary.countedOtherwise, claimed, lines);
    } else if (claimed !== undefined) differing(summary.otherSettings, claimed, lines);
    addStored(summary, unresolved, result);
    summary.alertsHeld.push(...result.alertsHeld);
    for (const f of result.flows) {
      if (summary.firstSeen === null || f.firstSeen < summary.firstSeen) summary.firstSeen = f.firstSeen;
      if (summary.lastSeen === null || f.lastSeen > summary.lastSeen) summary.lastSeen = f.lastSeen;
    }
  };
  try {
    let lineNo = 0;
    const batches = lineBatches(input, {
      maxLines: raw.batchLines as number,
      idleMs: 500,
      ...io.batching,
      signal,
      // Read as text, none of it calico, the run would "succeed", and advise --prefix.
      checkStart: (bytes) => {
        const unreadable = notText(bytes, "calico-flows replay -");
        if (unreadable !== undefined)
          throw new Error(`${file === "-" ? "the input" : file} is ${unreadable}`);
      },
    });
    for await (const batch of batches) {
      // Each calico line is an event named by its text (and how many times that text came before), claimed in
      // the coverage records as live deliveries are: a line counted by an earlier replay — of this file under
      // another path, batched otherwise, or of the same lines through stdin — is not counted again. (Each line is
      // scanned here for its time and kind, and again by the pipeline: the price of claiming by minute.)
      let events: CloudWatchEvent[] = [];
      for (let i = 0; i < batch.lines.length; i++) {
        const line = batch.lines[i] as string;
        if (line === OVERSIZED_LINE) {
          malformed(lineNo + i + 1, `longer than ${MAX_LINE_LENGTH} characters, not parsed`);
          continue;
        }
        const outcome = scanner.scan(line);
        if (outcome !== null) {
          if (outcome.kind === "error") malformed(lineNo + i + 1, outcome.reason);
          continue;
        }
        const time = scanner.fields.time === null ? Number.NaN : Date.parse(scanner.fields.time);
        if (Number.isNaN(time)) summary.untimed++;
        events.push({
          // Named from where the parser started reading it, past what `kubectl logs` put before it (`--prefix`,
          // `--timestamps`): the same kernel line re-sent under another decoration is the same line.
          id: ids.next(scanner.lineS === 0 ? line : line.slice(scanner.lineS), time),
          timestamp: Number.isNaN(time) ? now() : time,
          message: line,
        });
      }
      if (batch.unfinished) {
        // Counting the part read would count a line that says what it did not (a port cut to its first digits),
        // and the whole line again when the input is replayed.
        progress.log(
          `line ${lineNo + batch.lines.length + 1}: reading stopped in the middle of it: not stored\n`,
        );
      }
      lineNo += batch.lines.length;
      summary.lines += batch.lines.length;
      summary.calico += events.length;
      if (others !== undefined) {
        const kept = await others.leaveOut(events);
        summary.besideLive += events.length - kept.length;
        events = kept;
      }
      if (events.length === 0) {
        progress.update(batch.bytesRead, summary);
        continue;
      }
      const result = await ingestDelivery(
        { logGroup: REPLAY_GROUP, logStream: REPLAY_STREAM, logEvents: events, node: null },
        deps,
        coverage,
        "live",
        // The embedded store is held by one process at a time (its lock): a claim left unstored in it is a
        // replay's that was stopped between claiming its lines and storing them (a second Ctrl-C, SIGKILL), which
        // nobody else will finish. A table's may be a replay's still running elsewhere.
        { abandoned: common.table === undefined },
      );
      others?.stored(events);
      summary.alreadyCounted += result.eventsAlreadyCounted;
      summary.pending += result.eventsPending;
      if (result.eventsAlreadyCounted > 0) {
        const mine = new Set([
          deliveryContribution(REPLAY_GROUP, REPLAY_STREAM, DeliveredEvents.fromArray(events)),
          ...result.completed.map((c) => c.contribution),
        ]);
        for (const [claimed, lines] of await countedBy(coverage, common.cluster, events, mine)) {
          if (!sameSettings(claimed, settings)) differing(summary.countedOtherwise, claimed, lines);
        }
      }
      let own = events.length - result.eventsAlreadyCounted - result.eventsPending;
      for (const c of result.completed) {
        add(c.result, c.events.length, c.settings);
        own -= c.events.length;
      }
      add(result, own, result.settings);
      progress.update(batch.bytesRead, summary);
    }
  } finally {
    // Also after a failure: a read left waiting on a stream that stays open (`kubectl logs -f`) would keep the
    // process alive after its error.
    input.destroy();
    progress.stop();
    await close();
  }
  return summary;
}

/** Where replayed lines are claimed in the coverage records (docs/backfill.md): one stream for every replay. */
const REPLAY_GROUP = "calico-flows replay";
const REPLAY_STREAM = "lines";

/**
 * How many of `events` claims of other contributions than `mine` counted (claimed, and stored), by the settings those
 * claims recorded: what a replay of lines counted before was counted with (claims without settings are left out).
 */
async function countedBy(
  coverage: CoverageStore,
  cluster: string,
  events: readonly CloudWatchEvent[],
  mine: ReadonlySet<string>,
): Promise<Map<IngestSettings, number>> {
  const byMinute = new Map<number, Set<string>>();
  for (const e of events) {
    const minute = minuteOf(e.timestamp);
    const keys = byMinute.get(minute) ?? new Set<string>();
    byMinute.set(minute, keys.add(eventKey(e.id)));
  }
  const ref = { cluster, group: REPLAY_GROUP, stream: REPLAY_STREAM };
  const minutes = [...byMinute.keys()];
  const out = new Map<IngestSettings, number>();
  for (const m of await coverage.read(ref, Math.min(...minutes), Math.max(...minutes))) {
    const keys = byMinute.get(m.minute);
    for (const c of m.claims) {
      if (keys === undefined || !c.stored || mine.has(c.contribution) || c.settings === undefined) continue;
      // Each event once, however many pages its claim took.
      const counted = c.events.filter((k) => keys.delete(k)).length;
      if (counted > 0) out.set(c.settings, (out.get(c.settings) ?? 0) + counted);
    }
  }
  return out;
}

/**
 * How long a minute found clean is taken to stay so. Only live ingest (or a backfill, a redrive) writing into it can
 * make it counted: lines of a file's minute come together and are checked once, but those of a followed minute
 * (`kubectl logs -f`) keep coming while the subscription delivers the same lines, so a batch read this long after the
 * minute's check checks it again: a follow, which stores a batch every few seconds, Queries a minute's flows every
 * 10 s rather than for each batch, and leaves out the minute's lines within 10 s of their delivery being stored.
 */
const CLEAN_FOR_MS = 10_000;
/**
 * Replays' contribution tokens remembered at most (a follow of days stores a batch every few seconds): past it they
 * are forgotten, and a flow counting one of them has the replays' claims read again.
 */
const MAX_REPLAY_TOKENS = 100_000;

/**
 * Whether a table holds flows of the cluster around a minute that others than replays stored: the stack's live
 * ingest, a backfill or a redrive, which claim a line by its CloudWatch Logs event id where replay claims it by its
 * text, so that neither sees the other's claim. Coverage cannot be asked by cluster and minute (it is kept per log
 * stream, and replay knows no stream), but a flow item names the contributions it counted (their tokens, `applied`),
 * and replays' contributions are the claims of their own coverage stream: a token that is none of them is another's.
 */
class OthersCounted {
  readonly #flows: Pick<DynamoFlowStore, "countingOf">;
  readonly #cluster: string;
  readonly #coverage: CoverageStore;
  readonly #now: () => number;
  /** The earliest minute found counted by others: its lines and those of every later minute are left out. */
  #since = Number.POSITIVE_INFINITY;
  /** When each minute found clean was checked. */
  readonly #clean = new Map<number, number>();
  /** Tokens of replays' contributions: the run's own, and those found claimed in the replays' coverage stream. */
  readonly #replays = new Set<string>();

  constructor(
    flows: Pick<DynamoFlowStore, "countingOf">,
    cluster: string,
    coverage: CoverageStore,
    now: () => number,
  ) {
    this.#flows = flows;
    this.#cluster = cluster;
    this.#coverage = coverage;
    this.#now = now;
  }

  /** `events` but those of minutes others counted in, and of the minutes after the earliest of them. */
  async leaveOut(events: readonly CloudWatchEvent[]): Promise<CloudWatchEvent[]> {
    // A followed stream (`kubectl logs -f`) is read before the subscription delivers it: once a minute was found
    // counted by others, the minutes after it are taken as counted too, or its newest lines would be stored before
    // their delivery stores them again. Checked in time order, so that a later minute read first in the batch (the
    // pods' tails `kubectl logs -l … -f` interleaves, node files one after another) is left out too.
    const minutes = [...new Set(events.map((e) => minuteOf(e.timestamp)))].sort((a, b) => a - b);
    for (const minute of minutes) {
      if (minute >= this.#since) break;
      if (await this.#counted(minute)) this.#since = minute;
    }
    return events.filter((e) => minuteOf(e.timestamp) < this.#since);
  }

  /** The batch `events` was stored: its flows count the run's own contribution. */
  stored(events: readonly CloudWatchEvent[]): void {
    const own = deliveryContribution(REPLAY_GROUP, REPLAY_STREAM, DeliveredEvents.fromArray(events));
    this.#remember(contributionToken(own));
  }

  #remember(token: string): void {
    if (this.#replays.size >= MAX_REPLAY_TOKENS) this.#replays.clear();
    this.#replays.add(token);
  }

  async #counted(minute: number): Promise<boolean> {
    const at = this.#now();
    const checked = this.#clean.get(minute);
    if (checked !== undefined && at - checked < CLEAN_FOR_MS) return false;
    // Live ingest counts in buckets of at most a minute: a line of the minute lies in a flow whose bucket starts less
    // than a minute before it.
    const unknown = new Set<string>();
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const flow of await this.#flows.countingOf(
      this.#cluster,
      minute - MINUTE_MS + 1,
      minute + MINUTE_MS - 1,
    )) {
      const others = flow.applied.filter((t) => !this.#replays.has(t));
      if (others.length === 0) continue;
      for (const token of others) unknown.add(token);
      first = Math.min(first, flow.firstSeen);
      last = Math.max(last, flow.lastSeen);
    }
    if (unknown.size > 0) {
      // A replay's flow counts lines of the minutes from its first to its last packet, claimed there.
      const ref = { cluster: this.#cluster, group: REPLAY_GROUP, stream: REPLAY_STREAM };
      for (const m of await this.#coverage.read(ref, minuteOf(first), minuteOf(last))) {
        for (const c of m.claims) {
          const token = contributionToken(c.contribution);
          this.#remember(token);
          unknown.delete(token);
        }
      }
      if (unknown.size > 0) return true;
    }
    this.#clean.set(minute, at);
    return false;
  }
}

/**
 * How far the newest line's time moves on before the texts not seen since are forgotten: identical texts carry the
 * same time, so a text a minute behind the newest line does not come again in a stream (one pod's, or several
 * interleaved by `kubectl logs -l … -f`).
 */
const REPEAT_WINDOW_MS = 60_000;
/**
 * Distinct texts one generation of repeat counts holds, whatever the times: the bound on memory where the times set
 * none (lines without a time, two nodes' files one after the other, a node's clock far ahead).
 */
const MAX_REMEMBERED_LINES = 200_000;

/**
 * Event ids of replayed lines: a digest of the text and of how many times the same text came before it, so a
 * line repeated within the input (a retransmitted packet logged twice in one second) is two events, and the
 * same lines give the same ids however they are batched and whatever came before them (a restarted
 * `kubectl logs -f` sending its last lines again). The repeat counts are kept in two generations: a new one begins
 * when the newest time has moved REPEAT_WINDOW_MS past the current one's start or it holds MAX_REMEMBERED_LINES
 * texts, and the one before is dropped, so a text is remembered for at least that long after it was last seen and
 * a follow running for days holds at most twice MAX_REMEMBERED_LINES.
 */
export class LineIds {
  /** Repeat counts of the texts seen in this generation (carried over from the one before when seen again). */
  #current = new Map<string, number>();
  #previous = new Map<string, number>();
  #newest = Number.NEGATIVE_INFINITY;
  /** The newest time when this generation began. */
  #since = Number.NEGATIVE_INFINITY;

  /** `time` is the line's own: NaN for a line without one, which moves no generation on by its time. */
  next(line: string, time: number): string {
    if (time > this.#newest) this.#newest = time;
    if (this.#newest - this.#since >= REPEAT_WINDOW_MS || this.#current.size >= MAX_REMEMBERED_LINES) {
      this.#previous = this.#current;
      this.#current = new Map();
      this.#since = this.#newest;
    }
    const text = digest(line);
    const repeat = this.#current.get(text) ?? this.#previous.get(text) ?? 0;
    this.#current.set(text, repeat + 1);
    // "0." was the number of start-overs of the counts before it (cleared every MAX_REMEMBERED_LINES texts) in
    // replays before they were kept by time: kept, so that the lines of those replays' first start (all of a
    // smaller input) replayed again are counted once.
    return `${text}#0.${repeat}`;
  }
}
