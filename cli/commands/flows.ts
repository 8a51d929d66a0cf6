// `calico-flows flows` and `calico-flows alerts`: read the store (embedded, a table, or the query API).
import { type Command, InvalidArgumentError, Option } from "commander";
import type { z } from "zod";
import { EARLIEST_MS } from "../../functions/core/instant.ts";
import type { AlertQuery, FlowQuery, Page } from "../../functions/core/ports.ts";
import { ipAddress, namespaceName, objectName, workloadRef } from "../../functions/core/query-filters.ts";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { callApi } from "../api-client.ts";
import { type CommonOptions, commonOptions, parseInteger, UsageError, withCommonOptions } from "../common.ts";
import { alertsTable, flowsTable } from "../format.ts";
import { openStore } from "../store.ts";
import { parseInstant } from "../time.ts";

const DEFAULT_RANGE_MS = 24 * 3_600_000;

interface ReadOptions {
  json?: boolean;
  limit: number;
  since?: string;
  until: string;
  bucketSeconds?: number;
}

function addReadOptions(command: Command): Command {
  return withCommonOptions(command)
    .option(
      "--since <time>",
      "start: ISO time or a duration before now (15m, 6h, 7d) (default: 24h before --until)",
    )
    .option("--until <time>", "end: ISO time, duration before now, or now", "now")
    .addOption(
      new Option("--limit <n>", "most records to print")
        .argParser(parseInteger("--limit", 1, 100_000))
        .default(1000),
    )
    .option("--json", "NDJSON records instead of a table")
    .option("--api <url>", "ask the calico-flows query API (SigV4, AWS credentials) instead of a store");
}

/** Reads pages until `limit` records or the last page. */
async function collect<T>(
  limit: number,
  page: (cursor: string | undefined) => Promise<Page<T>>,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const result = await page(cursor);
    items.push(...result.items);
    cursor = result.cursor;
  } while (cursor !== undefined && items.length < limit);
  return items.slice(0, limit);
}

function range(options: ReadOptions): { since: string; until: string } {
  const now = Date.now();
  const untilMs = parseInstant(options.until, now);
  // As the query API: no --since is the day before --until, so `--until 2d` alone is not an inverted range.
  const sinceMs =
    options.since === undefined
      ? Math.max(untilMs - DEFAULT_RANGE_MS, EARLIEST_MS)
      : parseInstant(options.since, now);
  const since = new Date(sinceMs).toISOString();
  const until = new Date(untilMs).toISOString();
  // As the query API refuses it: an empty answer would look like a quiet cluster.
  if (since > until) throw new UsageError(`--since (${since}) is after --until (${until})`);
  return { since, until };
}

/** The page the query API answers (GET /flows, GET /alerts): `cursor` is null on the last page. */
interface ApiPage<T> {
  items: T[];
  cursor: string | null;
}

/** Pages from the query API: the API answers for its own cluster, with the same filters as the store. */
function apiPages<T>(
  api: string,
  path: "/flows" | "/alerts",
  common: CommonOptions,
  query: Record<string, string | undefined>,
): (cursor: string | undefined) => Promise<Page<T>> {
  if (common.table !== undefined) throw new UsageError("--api and --table are alternatives: pass one");
  return async (cursor) => {
    const page = await callApi<ApiPage<T>>({
      api,
      method: "GET",
      path,
      query: { ...query, cursor },
      region: common.region,
    });
    return page.cursor === null ? { items: page.items } : { items: page.items, cursor: page.cursor };
  };
}

/** `value` of `option` as `schema` reads it, or a usage error in the query API's words. */
function checked(
  option: string,
  schema: z.ZodType<string, string>,
  value: string | undefined,
): string | undefined {
  if (value === undefined) return undefined;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new UsageError(`${option} ${result.error.issues[0]?.message ?? "is invalid"}; got "${value}"`);
}

export async function readFlows(raw: Record<string, unknown>): Promise<FlowRecord[]> {
  const common = commonOptions(raw);
  const options = raw as unknown as ReadOptions & Record<string, string | undefined>;
  const query: FlowQuery = {
    cluster: common.cluster,
    ...range(options),
    namespace: options.namespace,
    workload: options.workload,
    pod: options.pod,
    ip: options.ip,
    internal: raw.internal === undefined ? undefined : raw.internal === true,
  };
  if ((query.workload !== undefined || query.pod !== undefined) && query.namespace === undefined) {
    throw new UsageError("--workload and --pod need --namespace");
  }
  // As the query API refuses them: a name no object could have (or `ns/Kind/name`, an alert key's form, which
  // the store would read as kind "ns") would give an empty answer, not an error.
  query.namespace = checked("--namespace", namespaceName, query.namespace);
  query.workload = checked("--workload", workloadRef, query.workload);
  query.pod = checked("--pod", objectName, query.pod);
  query.ip = checked("--ip", ipAddress, query.ip);
  const pageLimit = Math.min(options.limit, 500);
  if (typeof raw.api === "string") {
    return collect(
      options.limit,
      apiPages<FlowRecord>(raw.api, "/flows", common, {
        since: query.since,
        until: query.until,
        namespace: query.namespace,
        workload: query.workload,
        pod: query.pod,
        ip: query.ip,
        internal: query.internal === undefined ? undefined : String(query.internal),
        limit: String(pageLimit),
      }),
    );
  }
  const opened = await openStore(common, { existing: true, bucketSeconds: options.bucketSeconds });
  try {
    return await collect(options.limit, (cursor) =>
      opened.store.queryFlows({ ...query, limit: pageLimit, cursor }),
    );
  } finally {
    await opened.close();
  }
}

export async function readAlerts(raw: Record<string, unknown>): Promise<AlertRecord[]> {
  const common = commonOptions(raw);
  const options = raw as unknown as ReadOptions;
  const query: AlertQuery = { cluster: common.cluster, ...range(options) };
  const pageLimit = Math.min(options.limit, 500);
  if (typeof raw.api === "string") {
    return collect(
      options.limit,
      apiPages<AlertRecord>(raw.api, "/alerts", common, {
        since: query.since,
        until: query.until,
        limit: String(pageLimit),
      }),
    );
  }
  const opened = await openStore(common, { existing: true });
  try {
    return await collect(options.limit, (cursor) =>
      opened.store.queryAlerts({ ...query, limit: pageLimit, cursor }),
    );
  } finally {
    await opened.close();
  }
}

export function printRecords<T>(
  records: readonly T[],
  json: boolean | undefined,
  render: (r: readonly T[]) => string,
): void {
  if (json) {
    for (const r of records) process.stdout.write(`${JSON.stringify(r)}\n`);
  } else if (records.length === 0) {
    process.stdout.write("no records in that range\n");
  } else {
    process.stdout.write(`${render(records)}\n`);
  }
}

export function registerFlows(program: Command): void {
  addReadOptions(program.command("flows").description("list stored flows"))
    .option("--namespace <ns>", "flows where this namespace is source or destination")
    .option("--workload <[kind/]name>", "flows of this workload (needs --namespace)")
    .option("--pod <name>", "flows of this pod (needs --namespace)")
    .option("--ip <address>", "flows involving this IP, resolved or not")
    .option(
      "--bucket-seconds <n>",
      "the bucket length the flows were counted in, where a range starts reading (default: an embedded store's, as replay recorded it, else 60)",
      parseInteger("--bucket-seconds", 1, 3600),
    )
    .addOption(
      new Option("--internal [bool]", "only internal (true) or only non-internal (false) flows").argParser(
        (value: string) => {
          if (value !== "true" && value !== "false") {
            throw new InvalidArgumentError(`expected true or false; got "${value}"`);
          }
          return value === "true";
        },
      ),
    )
    .action(async (raw: Record<string, unknown>) => {
      printRecords(await readFlows(raw), raw.json as boolean | undefined, flowsTable);
    });
  addReadOptions(program.command("alerts").description("list alerts opened in a time range")).action(
    async (raw: Record<string, unknown>) => {
      printRecords(await readAlerts(raw), raw.json as boolean | undefined, alertsTable);
    },
  );
}
