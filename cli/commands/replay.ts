// `calico-flows replay [FILE|-]`: the ingest pipeline on local log text, into the embedded store (or a table).
import { createReadStream, statSync } from "node:fs";
import { type Command, Option } from "commander";
import { digest } from "../../functions/core/aggregate.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { type IngestDeps, ingestBatch } from "../../functions/core/ingest.ts";
import { createParser } from "../../functions/core/parse.ts";
import { commonOptions, parseInteger, withCommonOptions } from "../common.ts";
import { addDirectoryOptions, openDirectory } from "../directory.ts";
import { lineBatches } from "../lines.ts";
import { Progress } from "../progress.ts";
import { openAlertSink } from "../sink.ts";
import { openStore } from "../store.ts";
import { parseDurationMs } from "../time.ts";

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
    .option("--prefix <text>", "log prefix of the Calico LOG rules", "calico-packet")
    .option("--prefix-format <format>", "Felix logPrefix with %t %k %n %p, to decode the policy")
    .option("--bucket-seconds <n>", "aggregation bucket", parseInteger("--bucket-seconds", 1, 3600), 60)
    .option("--alert-window <duration>", "one alert per key per window", parseDurationMs, 15 * 60_000)
    .option("--alert-cap <n>", "most alerts published per batch", parseInteger("--alert-cap", 1, 10_000), 50)
    .option("--scan-threshold <n>", "alert on an external source denied on ≥ n ports or destinations", (v) =>
      parseInteger("--scan-threshold", 2, 65_535)(v),
    )
    .option("--alerts-topic <arn>", "publish alerts to this SNS topic")
    .option("--retention-days <n>", "TTL of stored items", parseInteger("--retention-days", 1, 3650), 30)
    .addOption(
      new Option("--batch-lines <n>", "lines per batch")
        .argParser(parseInteger("--batch-lines", 1, 1e6))
        .default(5000),
    )
    .option("--quiet", "no progress, only the summary");
  addDirectoryOptions(withCommonOptions(command));
  command.action(async (file: string, raw: Record<string, unknown>) => {
    const summary = await replay(file, raw);
    process.stderr.write(
      `replayed ${summary.lines} lines: ${summary.calico} calico records, ${summary.malformed} malformed, ` +
        `${summary.flowsApplied} flow updates (${summary.flowsDuplicate} already stored), ` +
        `${summary.alertsOpened} alerts${summary.alertsSent > 0 ? ` (${summary.alertsSent} published)` : ""}, ` +
        `${summary.unresolved} unresolved endpoints\n`,
    );
  });
}

export async function replay(file: string, raw: Record<string, unknown>): Promise<ReplaySummary> {
  const common = commonOptions(raw);
  const input = file === "-" ? process.stdin : createReadStream(file);
  const total = file === "-" ? undefined : statSync(file).size;
  const opened = await openStore(common, raw.retentionDays as number);
  const directory = await openDirectory(raw, opened.history, common.cluster);
  const sink = raw.alertsTopic === undefined ? undefined : openAlertSink(raw.alertsTopic as string, common);
  const deps: IngestDeps = {
    store: opened.store,
    sink,
    alertWindowMs: raw.alertWindow as number,
    alertCap: raw.alertCap as number,
    pipeline: {
      cluster: common.cluster,
      internal: new CidrSet(common.internalCidrs),
      bucketSeconds: raw.bucketSeconds as number,
      parse: createParser({
        year: raw.year as number | undefined,
        prefix: raw.prefix as string,
        prefixFormat: raw.prefixFormat as string | undefined,
      }),
      directory: directory.directory,
      scanThreshold: raw.scanThreshold as number | undefined,
    },
  };
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
    for await (const batch of lineBatches(input, { maxLines: raw.batchLines as number, idleMs: 500 })) {
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
    progress.stop();
    await directory.close();
    await opened.close();
  }
  return summary;
}
