// `calico-flows replay [FILE|-]`: the ingest pipeline on local log text, into the embedded store (or a table).
import { createReadStream, fstatSync, statSync } from "node:fs";
import { type Command, Option } from "commander";
import { digest } from "../../functions/core/aggregate.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import type { IngestResult, IngestSettings } from "../../functions/core/ingest.ts";
import type { HeldAlert } from "../../functions/core/ports.ts";
import {
  commonOptions,
  ineffectiveOptions,
  parseInteger,
  requireClusterNamed,
  signalExitCode,
} from "../common.ts";
import { addIngestOptions, addStored, heldAlertsText, openIngest, settingsDifference } from "../ingest.ts";
import { lineBatches, MAX_LINE_LENGTH, notText, OVERSIZED_LINE } from "../lines.ts";
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
    .option("--quiet", "no progress, only the summary");
  ineffectiveOptions(addIngestOptions(command), {
    // An --alerts-topic is reached in its ARN's region, the pods and nodes through the kubeconfig or files.
    region: (o) =>
      o.table === undefined ? "it is the region of --table, and the embedded store is written" : undefined,
  });
  // Into a table or to an alerts topic, the stack's cluster: before any store is opened or a line is read.
  command.hook("preAction", (self) => requireClusterNamed(self));
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
        `${summary.alreadyCounted > 0 ? ` (${summary.alreadyCounted} counted by an earlier replay)` : ""}, ` +
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
    if (summary.untimed > 0) {
      process.stderr.write(
        `note: ${summary.untimed} calico records carried no time of their own (a kernel ring-buffer line, a JSON record without a readable time field): they are counted at the time they were read, and a replay of them at another time counts them again\n`,
      );
    }
  });
}

export async function replay(
  file: string,
  raw: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<ReplaySummary> {
  const common = commonOptions(raw);
  // Checked before a stream is opened on it, so that a missing file or a directory is one clear error. A pipe
  // (`<(zcat …)`) is read like stdin, without a size.
  const stat = file === "-" ? undefined : statSync(file);
  if (stat?.isDirectory()) throw new Error(`${file} is a directory`);
  // Node reads a directory given as stdin (`replay - < dir`) as an empty input: say what it is instead.
  if (file === "-" && fstatSync(0).isDirectory()) throw new Error("standard input is a directory");
  const total = stat?.isFile() ? stat.size : undefined;
  const input = file === "-" ? process.stdin : createReadStream(file);
  const { deps, settings, coverage, close } = await openIngest(raw, common, {
    year: raw.year as number | undefined,
  });
  const quiet = raw.quiet === true;
  const progress = new Progress({ total, enabled: !quiet });
  const summary: ReplaySummary = {
    lines: 0,
    calico: 0,
    alreadyCounted: 0,
    pending: 0,
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
  /** Adds what a run of `lines` calico lines stored, with `claimed` when it was not with the run's own settings. */
  const add = (result: IngestResult, lines: number, claimed: IngestSettings | undefined) => {
    // A batch stored before under the same contribution (the same lines, batched the same way) is a redelivery:
    // every flow write is refused, and its lines were counted by the replay that stored it.
    if (result.flowsApplied === 0 && result.flowsDuplicate > 0) summary.alreadyCounted += lines;
    else if (claimed !== undefined) {
      const difference = settingsDifference(claimed, settings);
      const alike = summary.otherSettings.find(
        (o) => o.claimed === difference.claimed && o.own === difference.own,
      );
      if (alike === undefined) summary.otherSettings.push({ ...difference, lines });
      else alike.lines += lines;
    }
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
      const events: { id: string; timestamp: number; message: string }[] = [];
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
          id: ids.next(line, time),
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
      summary.alreadyCounted += result.eventsAlreadyCounted;
      summary.pending += result.eventsPending;
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
