// `calico-flows replay [FILE|-]`: the ingest pipeline on local log text, into the embedded store (or a table).
import { createReadStream, statSync } from "node:fs";
import { type Command, Option } from "commander";
import { digest } from "../../functions/core/aggregate.ts";
import { ingestBatch } from "../../functions/core/ingest.ts";
import { commonOptions, parseInteger } from "../common.ts";
import { addIngestOptions, openIngest } from "../ingest.ts";
import { lineBatches } from "../lines.ts";
import { Progress } from "../progress.ts";

export interface ReplaySummary {
  lines: number;
  calico: number;
  malformed: number;
  flowsApplied: number;
  flowsDuplicate: number;
  alertsOpened: number;
  alertsSent: number;
  unresolved: number;
  firstSeen: string | null;
  lastSeen: string | null;
}

export function registerReplay(program: Command): void {
  const command = program
    .command("replay")
    .description("run the ingest pipeline on local log text (a file, or - for stdin; follows a stream)")
    .argument("[file]", "log file, or - for standard input", "-")
    .option("--year <yyyy>", "year of year-less syslog timestamps", parseInteger("--year", 1970, 9999))
    .addOption(
      new Option("--batch-lines <n>", "lines per batch")
        .argParser(parseInteger("--batch-lines", 1, 1e6))
        .default(5000),
    )
    .option("--quiet", "no progress, only the summary");
  addIngestOptions(command);
  command.action(async (file: string, raw: Record<string, unknown>) => {
    // Ctrl-C on a followed stream: store what was read, print the summary, exit 130 (a second one quits now).
    const controller = new AbortController();
    const onSignal = () => {
      if (controller.signal.aborted) process.exit(130);
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
    if (controller.signal.aborted) process.exitCode = 130;
    process.stderr.write(
      `replayed ${summary.lines} lines: ${summary.calico} calico records, ${summary.malformed} malformed, ` +
        `${summary.flowsApplied} flow updates (${summary.flowsDuplicate} already stored), ` +
        `${summary.alertsOpened} alerts${summary.alertsSent > 0 ? ` (${summary.alertsSent} published)` : ""}, ` +
        `${summary.unresolved} unresolved endpoints\n`,
    );
  });
}

export async function replay(
  file: string,
  raw: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<ReplaySummary> {
  const common = commonOptions(raw);
  // Checked before a stream is opened on it, so that a missing file or a directory is one clear error.
  const total = file === "-" ? undefined : statSync(file).size;
  if (file !== "-" && !statSync(file).isFile()) throw new Error(`${file} is not a file`);
  const input = file === "-" ? process.stdin : createReadStream(file);
  const { deps, close } = await openIngest(raw, common, { year: raw.year as number | undefined });
  const progress = new Progress({ total, enabled: raw.quiet !== true });
  const summary: ReplaySummary = {
    lines: 0,
    calico: 0,
    malformed: 0,
    flowsApplied: 0,
    flowsDuplicate: 0,
    alertsOpened: 0,
    alertsSent: 0,
    unresolved: 0,
    firstSeen: null,
    lastSeen: null,
  };
  const source = file === "-" ? "stdin" : file;
  try {
    let lineNo = 0;
    const batches = lineBatches(input, { maxLines: raw.batchLines as number, idleMs: 500, signal });
    for await (const batch of batches) {
      const events = batch.lines.map((message) => ({ message }));
      // The same text replayed again is the same contribution: replaying a file twice does not double counts.
      const contribution = digest(`replay\n${source}\n${lineNo}\n${batch.lines.join("\n")}`);
      const result = await ingestBatch(events, contribution, deps);
      for (const m of result.malformed) {
        process.stderr.write(`line ${lineNo + m.index + 1}: ${m.reason}\n`);
      }
      lineNo += batch.lines.length;
      summary.lines += result.stats.lines;
      summary.calico += result.stats.calico;
      summary.malformed += result.stats.malformed;
      summary.unresolved += result.stats.unresolved;
      summary.flowsApplied += result.flowsApplied;
      summary.flowsDuplicate += result.flowsDuplicate;
      summary.alertsOpened += result.alerts.length;
      summary.alertsSent += result.alertsSent;
      for (const f of result.flows) {
        if (summary.firstSeen === null || f.firstSeen < summary.firstSeen) summary.firstSeen = f.firstSeen;
        if (summary.lastSeen === null || f.lastSeen > summary.lastSeen) summary.lastSeen = f.lastSeen;
      }
      progress.update(batch.bytesRead, summary);
    }
  } finally {
    if (signal?.aborted) input.destroy();
    progress.stop();
    await close();
  }
  return summary;
}
