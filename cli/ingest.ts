// What every command that feeds log events through the ingest pipeline shares (`replay`, `backfill`,
// `redrive`): the pipeline's options, and the store, coverage, IP directory and alert sink they select.
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { retainedUntil } from "../functions/adapters/dynamo/keys.ts";
import type { AlertPublisher } from "../functions/core/alert-delivery.ts";
import {
  CidrSet,
  checkWorkloadInterfacePrefixes,
  DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
} from "../functions/core/classify.ts";
import type { CoverageStore } from "../functions/core/coverage.ts";
import {
  checkSettings,
  type IngestDeps,
  type IngestResult,
  type IngestSettings,
} from "../functions/core/ingest.ts";
import { createScanner, type LineParser } from "../functions/core/parse.ts";
import { type FlowStore, type HeldAlert, MAX_ALERT_WINDOW_MS } from "../functions/core/ports.ts";
import { MAX_AGGREGATION_SECONDS } from "../functions/ingest/config.ts";
import { type CommonOptions, parseInteger, UsageError, withCommonOptions } from "./common.ts";
import { addDirectoryOptions, openDirectory, STORED_EXTERNAL } from "./directory.ts";
import { flowsArgs, openAlertSink, storeArgs } from "./sink.ts";
import { type OpenedStore, openStore } from "./store.ts";
import { parseDurationMs } from "./time.ts";

export function addIngestOptions(command: Command): Command {
  command
    .option("--prefix <text>", "log prefix of the Calico LOG rules", "calico-packet")
    .option("--prefix-format <format>", "Felix logPrefix with %t %k %n %p, to decode the policy")
    .addOption(
      new Option(
        "--workload-interface-prefix <prefix>",
        "name prefix of pods' interfaces (Felix InterfacePrefix), repeatable; replaces the default cali, eni, vlan",
      ).argParser(collectWorkloadInterfacePrefix),
    )
    .option("--bucket-seconds <n>", "aggregation bucket", parseInteger("--bucket-seconds", 1, 3600), 60)
    .addOption(
      new Option("--alert-window <duration>", "one alert per key per window, 1s to 24h")
        .argParser(alertWindow)
        .default(15 * 60_000, "15m"),
    )
    .option("--alert-cap <n>", "most alerts published per batch", parseInteger("--alert-cap", 1, 10_000), 50)
    .option(
      "--scan-threshold <n>",
      "one alert for a source denied on ≥ n ports or destinations (external: low severity; internal: high, instead of one per port), and for a destination denied to ≥ n internal sources (internal ones counted across batches in the store)",
      (v) => parseInteger("--scan-threshold", 2, 65_535)(v),
    )
    .option("--alerts-topic <arn>", "publish alerts to this SNS topic (default: record them only)")
    .option("--retention-days <n>", "TTL of stored items", parseInteger("--retention-days", 1, 3650), 30);
  return addDirectoryOptions(withCommonOptions(command));
}

/**
 * Checked as it is read: a window of 0 would fail at the first alert, after flows were stored, and one of
 * centuries as an "Invalid time value" (its end is no date).
 */
function alertWindow(value: string): number {
  const ms = parseDurationMs(value);
  if (ms < 1000 || ms > MAX_ALERT_WINDOW_MS) {
    throw new InvalidArgumentError(`--alert-window must be from 1s to 24h, got "${value}"`);
  }
  return ms;
}

/** Each prefix is checked with those before it, as the ingest function checks its list: a repeat is refused too. */
function collectWorkloadInterfacePrefix(value: string, previous: string[] | undefined): string[] {
  // Felix's InterfacePrefix as it is written (`cali,tap`) is several options here.
  if (value.includes(",")) throw new InvalidArgumentError("one prefix per --workload-interface-prefix");
  try {
    return checkWorkloadInterfacePrefixes([...(previous ?? []), value]);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

export interface IngestSetup {
  deps: IngestDeps;
  /** What the options say the pipeline stores with (`deps.settings`). */
  settings: IngestSettings;
  coverage: CoverageStore;
  /** With --table: its flow store (OpenedStore.tableFlows). */
  tableFlows?: OpenedStore["tableFlows"];
  description: string;
  close(): Promise<void>;
}

/**
 * The internal ranges, noting whether the pipeline found an address inside them and the first it found outside: a
 * run that found none inside (the default 192.168.0.0/16 against a VPC of 10.0.0.0/16) stored only external flows.
 */
class ObservedRanges extends CidrSet {
  inside = false;
  outside: string | undefined;

  override contains(ip: string): boolean {
    const found = super.contains(ip);
    if (found) this.inside = true;
    else this.outside ??= ip;
    return found;
  }
}

const DAY_MS = 86_400_000;

/**
 * A table's flow store, counting the calico records of the flows it stores whose items expire within a day: a flow's
 * TTL counts from its bucket (flow-store.md, "TTL"), so events older than the retention are stored to be deleted
 * within days, which nothing else would tell the run's operator.
 */
class ExpiryCount implements FlowStore {
  /** Calico records stored to expire within a day. */
  records = 0;
  readonly #inner: FlowStore;
  readonly #retentionDays: number;

  constructor(inner: FlowStore, retentionDays: number) {
    this.#inner = inner;
    this.#retentionDays = retentionDays;
  }

  async writeFlows(...args: Parameters<FlowStore["writeFlows"]>): ReturnType<FlowStore["writeFlows"]> {
    const written = await this.#inner.writeFlows(...args);
    // A redelivery (every write refused) stored nothing.
    if (written.applied === 0) return written;
    const soon = (Date.now() + DAY_MS) / 1000;
    for (const f of args[0]) {
      if (retainedUntil(Date.parse(f.bucket), this.#retentionDays) < soon) this.records += f.packets;
    }
    return written;
  }
  applyAlerts: FlowStore["applyAlerts"] = (...args) => this.#inner.applyAlerts(...args);
  markAlertSent: FlowStore["markAlertSent"] = (...args) => this.#inner.markAlertSent(...args);
  queryFlows: FlowStore["queryFlows"] = (query) => this.#inner.queryFlows(query);
  queryAlerts: FlowStore["queryAlerts"] = (query) => this.#inner.queryAlerts(query);
}

/** Store, coverage, IP directory and alert sink for the options of addIngestOptions. */
export async function openIngest(
  raw: Record<string, unknown>,
  common: CommonOptions,
  parse: { year?: number } = {},
): Promise<IngestSetup> {
  // Before the store is opened (and made): a prefix the scanner refuses is a usage error, as it is for `parse`.
  let scanner: LineParser;
  try {
    scanner = createScanner({
      year: parse.year,
      prefix: raw.prefix as string,
      prefixFormat: raw.prefixFormat as string | undefined,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  // So are settings too long for the coverage claims to record.
  let settings: IngestSettings;
  try {
    settings = checkSettings({
      bucketSeconds: raw.bucketSeconds as number,
      prefix: raw.prefix as string,
      prefixFormat: raw.prefixFormat as string | undefined,
      internalCidrs: common.internalCidrs,
      workloadInterfacePrefixes:
        (raw.workloadInterfacePrefix as string[] | undefined) ?? DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
      scanThreshold: raw.scanThreshold as number | undefined,
      alertWindowMs: raw.alertWindow as number,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  // And a topic ARN the sink refuses.
  let sink: AlertPublisher | undefined;
  try {
    sink =
      raw.alertsTopic === undefined
        ? undefined
        : openAlertSink(
            raw.alertsTopic as string,
            storeArgs(common),
            flowsArgs(common, raw.bucketSeconds as number),
          );
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  // A table may be the stack's, whose query API reads buckets of up to a minute: said before anything is stored. Not
  // refused: a table of one's own is read with `flows --table … --bucket-seconds`, and the CLI cannot tell the two.
  if (common.table !== undefined && settings.bucketSeconds > MAX_AGGREGATION_SECONDS) {
    process.stderr.write(
      `warning: --bucket-seconds ${settings.bucketSeconds} is longer than the buckets the query API reads (up to ` +
        `${MAX_AGGREGATION_SECONDS} s): the API, and \`flows --api\`, miss these flows in a range that starts over a ` +
        `minute into their bucket; \`calico-flows flows ${storeArgs(common).join(" ")} --cluster ${common.cluster} ` +
        `--bucket-seconds ${settings.bucketSeconds}\` finds them\n`,
    );
  }
  // The snapshot files and the kubeconfig too: one that cannot be read leaves no store made.
  const makeDirectory = await openDirectory(raw, common.cluster, common.internalCidrs);
  const opened = await openStore(common, {
    retentionDays: raw.retentionDays as number,
    countsBuckets: raw.bucketSeconds as number,
    countsCluster: common.cluster,
  });
  try {
    const directory = makeDirectory(opened.history);
    const internal = new ObservedRanges(common.internalCidrs);
    const retentionDays = raw.retentionDays as number;
    // The embedded store never expires anything.
    const expiring =
      opened.tableFlows === undefined ? undefined : new ExpiryCount(opened.store, retentionDays);
    return {
      deps: {
        store: expiring ?? opened.store,
        sink,
        memos: opened.memos,
        // A command can be killed while it writes: its memo must outlive it (IngestDeps.memoBeforeWrites).
        memoBeforeWrites: true,
        tally: opened.tallies,
        alertWindowMs: settings.alertWindowMs,
        alertCap: raw.alertCap as number,
        settings,
        pipeline: {
          cluster: common.cluster,
          internal,
          bucketSeconds: settings.bucketSeconds,
          scanner,
          directory: directory.directory,
          workloadInterfacePrefixes: settings.workloadInterfacePrefixes,
          scanThreshold: settings.scanThreshold,
        },
      },
      settings,
      coverage: opened.coverage,
      tableFlows: opened.tableFlows,
      description: `${opened.description}, IPs resolved from ${directory.description}`,
      async close() {
        await directory.close();
        await opened.close();
        if (internal.outside !== undefined && !internal.inside && !directory.rangesWarned()) {
          process.stderr.write(
            `warning: no address in the calico records (${internal.outside}…) is inside --internal-cidr ` +
              `${common.internalCidrs.join(", ")}: every flow is ${STORED_EXTERNAL}\n`,
          );
        }
        if (expiring !== undefined && expiring.records > 0) {
          process.stderr.write(
            `warning: ${expiring.records} calico records are over ${retentionDays - 1} days old, so with ` +
              `--retention-days ${retentionDays} their flows were stored expired or expiring within a day (DynamoDB ` +
              "deletes them within days): give --retention-days the stack's retentionDays, or more to keep them\n",
          );
        }
      },
    };
  } catch (error) {
    await opened.close();
    throw error;
  }
}

/** A value as typed in a shell: quoted when it holds anything but plain characters. */
function word(value: string): string {
  return /^[\w./:%@+,=-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Each setting as the options that give it (the lists sorted), in the order of `--help`. */
function optionsOf(s: IngestSettings): string[] {
  const window =
    s.alertWindowMs % 60_000 === 0 ? `${s.alertWindowMs / 60_000}m` : `${s.alertWindowMs / 1000}s`;
  const each = (option: string, values: readonly string[]) =>
    [...values]
      .sort()
      .map((v) => `${option} ${word(v)}`)
      .join(" ");
  return [
    `--prefix ${word(s.prefix)}`,
    s.prefixFormat === undefined ? "no --prefix-format" : `--prefix-format ${word(s.prefixFormat)}`,
    each("--workload-interface-prefix", s.workloadInterfacePrefixes),
    `--bucket-seconds ${s.bucketSeconds}`,
    `--alert-window ${window}`,
    s.scanThreshold === undefined ? "no --scan-threshold" : `--scan-threshold ${s.scanThreshold}`,
    each("--internal-cidr", s.internalCidrs),
  ];
}

/**
 * The settings in which `claimed` differs from `own`, as the options that give them: `--bucket-seconds 30` and
 * `--bucket-seconds 60`.
 */
export function settingsDifference(
  claimed: IngestSettings,
  own: IngestSettings,
): { claimed: string; own: string } {
  const theirs = optionsOf(claimed);
  const ours = optionsOf(own);
  const differ = theirs.flatMap((option, i) => (option === ours[i] ? [] : [i]));
  return {
    claimed: differ.map((i) => theirs[i]).join(" "),
    own: differ.map((i) => ours[i]).join(" "),
  };
}

/** What the summaries of `replay` and `backfill` add up of each stored run. */
export interface StoredTotals {
  /** Addresses stored unresolved (Kubernetes unavailable), each once however often. */
  unresolved: number;
  flowsApplied: number;
  flowsDuplicate: number;
  alertsOpened: number;
  alertsSent: number;
}

/** Adds a stored run to `totals`; `unresolved` is the set of unresolved addresses the run goes on collecting. */
export function addStored(totals: StoredTotals, unresolved: Set<string>, result: IngestResult): void {
  for (const f of result.flows) {
    if (!f.src.resolved) unresolved.add(f.src.ip);
    if (!f.dst.resolved) unresolved.add(f.dst.ip);
  }
  totals.unresolved = unresolved.size;
  totals.flowsApplied += result.flowsApplied;
  totals.flowsDuplicate += result.flowsDuplicate;
  totals.alertsOpened += result.alertsOpened;
  totals.alertsSent += result.alertsSent;
}

/**
 * Why alerts of this run were not sent (IngestResult.alertsHeld): which, and when the last lease on them runs out, for
 * `again` (what to run after it: "redrive again", "backfill this window again", …).
 */
export function heldAlertsText(held: readonly HeldAlert[], what: string, again: string): string {
  const named = held.slice(0, 3).map((h) => `${h.id} (opened ${h.openedAt}, held until ${h.until})`);
  const more = held.length > named.length ? ` and ${held.length - named.length} more` : "";
  const last = held
    .map((h) => h.until)
    .sort()
    .at(-1);
  return (
    `alert${held.length === 1 ? "" : "s"} ${named.join(", ")}${more} not sent: another run of this ${what} holds ` +
    `the lease on sending ${held.length === 1 ? "it" : "them"} (a run whose publish failed, or one still ` +
    `publishing); ${again} after ${last}`
  );
}
