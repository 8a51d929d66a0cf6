// `calico-flows flows` and `calico-flows alerts`: read the store (embedded, a table, or the query API).
import { type Command, InvalidArgumentError, Option } from "commander";
import type * as z from "zod";
import { EARLIEST_MS } from "../../functions/core/instant.ts";
import type { AlertQuery, FlowQuery, Page } from "../../functions/core/ports.ts";
import { ipAddress, namespaceName, objectName, workloadRef } from "../../functions/core/query-filters.ts";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { MAX_AGGREGATION_SECONDS } from "../../functions/ingest/config.ts";
import { callApi } from "../api-client.ts";
import { apiStageUrl } from "../api-url.ts";
import {
  type CommonOptions,
  commonOptions,
  type Ineffective,
  parseInteger,
  UsageError,
  withCommonOptions,
} from "../common.ts";
import { type Conversation, ConversationTally } from "../conversations.ts";
import { alertsTable, conversationsTable, flowsTable } from "../format.ts";
import { openStore } from "../store.ts";
import { parseInstant } from "../time.ts";

const DEFAULT_RANGE_MS = 24 * 3_600_000;
/** How far an empty default range's hint looks for a flow at other times: a hint, not worth reading a table for. */
const LOOK_ELSEWHERE_PAGES = 10;
const LOOK_ELSEWHERE_LIMIT = 100;
/** The whole span of times the store's keys and the query API can hold (four-digit years). */
const ALL_TIME = { since: new Date(EARLIEST_MS).toISOString(), until: "9999-12-31T23:59:59.999Z" };

interface ReadOptions {
  json?: boolean;
  limit: number;
  since?: string;
  until: string;
  bucketSeconds?: number;
}

/**
 * `flows` and `alerts` read what was stored: the internal ranges of the run that stored it (replay, backfill, the
 * ingest function's INTERNAL_CIDRS) made each flow internal or not, and raised the alerts.
 */
const READ_AS_STORED: Ineffective = {
  internalCidr:
    "whether a flow is internal was decided when it was stored (replay, backfill, the ingest function)",
  region: (o) =>
    o.table === undefined && o.api === undefined
      ? "it is the region of --table or --api, and the embedded store is read"
      : undefined,
};

// The time options say how a time without an offset is read, as README and the error for a time they cannot read
// do: read in the operator's own zone, it would be another hour.
function addReadOptions(command: Command): Command {
  return withCommonOptions(command, READ_AS_STORED)
    .option(
      "--since <time>",
      "start: ISO time (UTC unless it has an offset) or a duration before now (15m, 6h, 7d) (default: 24h before --until)",
    )
    .option(
      "--until <time>",
      "end: ISO time (UTC unless it has an offset), duration before now, or now",
      "now",
    )
    .addOption(
      new Option("--limit <n>", "most records to print")
        .argParser(parseInteger("--limit", 1, 100_000))
        .default(1000),
    )
    .option("--json", "NDJSON records instead of a table")
    .addOption(
      new Option(
        "--api <url>",
        "ask the calico-flows query API (SigV4, AWS credentials) instead of a store",
      ).argParser(apiStageUrl),
    );
}

/** Most records one page asks for (the query API takes up to 1000). */
const PAGE_LIMIT = 500;

/** What `flows` or `alerts` read: at most `--limit` records, and whether the range holds more. */
export interface Listing<T> {
  records: T[];
  /**
   * More records matched than `--limit`: the listing is cut (the oldest come first, flows by their bucket, so the
   * newest are missing).
   */
  more: boolean;
  /** The clusters an embedded store holds records of, when it recorded them (for an empty answer's hint). */
  clusters?: readonly string[];
  /** With --api: the cluster the API answers for, as its pages name it (null: an API whose pages do not). */
  served?: string | null;
  /**
   * Neither --since nor --until was given and the range held nothing: when the first flow at any time (of the same
   * question for flows, of the cluster for alerts) was first seen, for an empty answer's hint; null when the store
   * holds no flow of the cluster at any time.
   */
  elsewhere?: string | null;
}

/**
 * The range is the default one (the last 24 hours): a replayed log of last week answers "no records" there, as a
 * quiet cluster would, so an empty answer looks at all times (firstOutside).
 */
function defaultRange(raw: Record<string, unknown>): boolean {
  return raw.since === undefined && raw.until === "now";
}

/**
 * Reads pages until one record past `limit` or the last page: that one record says whether the listing was cut,
 * which a reader must be told (the records come oldest first, flows by bucket, so a cut listing misses the latest
 * buckets, and perhaps some of the last one it shows: a bucket's flows come in id order). Pages are sized
 * to what `limit` still wants, unless `whole`: a question DynamoDB answers by filtering what its Limit read (see
 * FlowSource.sparse) is read a whole page at a time, or it would read two items a request.
 */
async function collect<T>(
  limit: number,
  page: (cursor: string | undefined, pageLimit: number) => Promise<Page<T>>,
  whole = false,
): Promise<{ records: T[]; more: boolean }> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const result = await page(cursor, whole ? PAGE_LIMIT : Math.min(PAGE_LIMIT, limit + 1 - items.length));
    items.push(...result.items);
    cursor = result.cursor;
  } while (cursor !== undefined && items.length <= limit);
  return { records: items.slice(0, limit), more: items.length > limit };
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

/** Whether option `key` was given rather than defaulted. */
const given = (command: Command, key: string) => {
  const source = command.getOptionValueSource(key);
  return source !== undefined && source !== "default";
};

/**
 * The options of a reading command as its listing takes them: whether `--cluster` was given (the query API's
 * records are checked against it then), and `--store` refused beside `--api`, as `--table` is (it would be ignored).
 */
function readingOptions(command: Command): Record<string, unknown> {
  const raw = command.opts();
  if (raw.api !== undefined && given(command, "store")) {
    throw new UsageError("--api and --store are alternatives: pass one");
  }
  return { ...raw, clusterGiven: given(command, "cluster") };
}

/**
 * The page the query API answers (GET /flows, GET /alerts): the cluster its stack serves (absent from an API
 * deployed before pages named it), and `cursor` null on the last page.
 */
interface ApiPage<T> {
  cluster?: string;
  items: T[];
  cursor: string | null;
}

/** The cluster the query API answered for (Listing.served), once a page has come. */
interface Served {
  cluster?: string | null;
}

/**
 * Pages from the query API: the API answers for its own cluster, with the same filters as the store, and says which
 * in `served`. A `--cluster` given (`cluster`) must be that one, whatever the page holds: one stack per cluster, so
 * a URL pasted from the wrong stack would otherwise show one cluster's denials as another's, or its quiet range as
 * this one's.
 */
function apiPages<T extends { cluster: string }>(
  api: string,
  path: "/flows" | "/alerts",
  common: CommonOptions,
  cluster: string | undefined,
  query: Record<string, string | undefined>,
  served: Served,
): (cursor: string | undefined, pageLimit: number) => Promise<Page<T>> {
  if (common.table !== undefined) throw new UsageError("--api and --table are alternatives: pass one");
  return async (cursor, pageLimit) => {
    const page = await callApi<ApiPage<T>>({
      api,
      method: "GET",
      path,
      query: { ...query, limit: String(pageLimit), cursor },
      region: common.region,
    });
    served.cluster = page.cluster ?? served.cluster ?? null;
    if (cluster !== undefined) {
      // An API deployed before its pages named their cluster is known by its records only.
      const answered = page.cluster ?? page.items.find((item) => item.cluster !== cluster)?.cluster;
      if (answered !== undefined && answered !== cluster) {
        throw new Error(
          `the API at ${api} answers for cluster ${JSON.stringify(answered)}, not ${JSON.stringify(cluster)}: ` +
            `give the API of ${JSON.stringify(cluster)}'s stack, or --cluster ${answered}`,
        );
      }
    }
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

/** The flows `flows` lists (at most `--limit`). */
export async function readFlows(raw: Record<string, unknown>): Promise<FlowRecord[]> {
  return (await listFlows(raw)).records;
}

/** The alerts `alerts` lists (at most `--limit`). */
export async function readAlerts(raw: Record<string, unknown>): Promise<AlertRecord[]> {
  return (await listAlerts(raw)).records;
}

type FlowPages = (cursor: string | undefined, pageLimit: number) => Promise<Page<FlowRecord>>;

/** Where `flows` reads pages from (the query API, a table, or an embedded store), and how to let go of it. */
interface FlowSource {
  page: FlowPages;
  /**
   * The question keeps few of what a page reads: a workload, a pod or `internal`, or an IP with a namespace, which
   * the store checks on the items its Query's Limit read (flow-query.ts), not in the key it reads by.
   */
  sparse: boolean;
  /**
   * When the first flow of the same question at any time was first seen, if that is outside the range; null when
   * the store holds no flow of the cluster at any time.
   */
  elsewhere: () => Promise<string | null | undefined>;
  clusters?: readonly string[];
  /** With --api: the cluster it answered for, as its pages come. */
  served?: Served;
  close: () => Promise<void>;
}

/**
 * When the first flow `anyTime` reads was first seen, if it has no packet in `range` (at most ten pages of a
 * hundred read): for alerts, whose question is another, the store's first flow may well be in the range. null when
 * `anyTime` reads no flow at all.
 */
async function firstOutside(
  anyTime: FlowPages,
  range: { since: string; until: string },
): Promise<string | null | undefined> {
  const outside = (f: FlowRecord) =>
    f.lastSeen < range.since || f.firstSeen > range.until ? f.firstSeen : undefined;
  // Flows come by bucket, those of a bucket in id order: the first seen is the earliest of those read up to a bucket
  // that starts after it, whose flows (and all later ones) were first seen later. A page's limit counts the items
  // read before filters (--internal, --workload…): follow the cursor, a few pages.
  let first: FlowRecord | undefined;
  let cursor: string | undefined;
  for (let page = 0; page < LOOK_ELSEWHERE_PAGES; page++) {
    const read = await anyTime(cursor, LOOK_ELSEWHERE_LIMIT);
    for (const f of read.items) {
      if (first !== undefined && f.bucket >= first.firstSeen) return outside(first);
      if (first === undefined || f.firstSeen < first.firstSeen) first = f;
    }
    cursor = read.cursor;
    if (cursor === undefined) return first === undefined ? null : outside(first);
  }
  return first === undefined ? undefined : outside(first);
}

export async function listFlows(raw: Record<string, unknown>): Promise<Listing<FlowRecord>> {
  const source = await flowSource(raw);
  try {
    const listing: Listing<FlowRecord> = await collect(
      (raw as unknown as ReadOptions).limit,
      source.page,
      source.sparse,
    );
    if (source.clusters !== undefined) listing.clusters = source.clusters;
    if (listing.records.length === 0 && defaultRange(raw)) listing.elsewhere = await source.elsewhere();
    if (source.served !== undefined) listing.served = source.served.cluster ?? null;
    return listing;
  } finally {
    await source.close();
  }
}

/** Flows `flows --group` reads at most: the totals of a longer range would take minutes to read. */
export const GROUP_READ_LIMIT = 100_000;

/** What `flows --group` prints: the conversations of the range (at most `--limit`), and what it left out. */
export interface GroupedListing extends Listing<Conversation> {
  /** The flow records read. */
  flows: number;
  /** The range holds more than `readLimit` flows: the totals are of the first `readLimit`, by bucket. */
  cut: boolean;
}

/** The range's flows summed into conversations (cli/conversations.ts), most packets first. */
export async function groupFlows(
  raw: Record<string, unknown>,
  readLimit: number = GROUP_READ_LIMIT,
): Promise<GroupedListing> {
  const source = await flowSource(raw);
  const tally = new ConversationTally();
  let cut = false;
  let elsewhere: string | null | undefined;
  try {
    let cursor: string | undefined;
    do {
      const page = await source.page(
        cursor,
        source.sparse ? PAGE_LIMIT : Math.min(PAGE_LIMIT, readLimit + 1 - tally.flows),
      );
      for (const f of page.items) {
        if (tally.flows === readLimit) {
          cut = true;
          break;
        }
        tally.add(f);
      }
      cursor = page.cursor;
    } while (cursor !== undefined && !cut);
    if (tally.flows === 0 && defaultRange(raw)) elsewhere = await source.elsewhere();
  } finally {
    await source.close();
  }
  const all = tally.conversations();
  const limit = (raw as unknown as ReadOptions).limit;
  return {
    records: all.slice(0, limit),
    more: all.length > limit,
    flows: tally.flows,
    cut,
    ...(source.clusters === undefined ? {} : { clusters: source.clusters }),
    ...(elsewhere === undefined ? {} : { elsewhere }),
    ...(source.served === undefined ? {} : { served: source.served.cluster ?? null }),
  };
}

async function flowSource(raw: Record<string, unknown>): Promise<FlowSource> {
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
  const filtered = [query.namespace, query.workload, query.pod, query.ip, query.internal].some(
    (f) => f !== undefined,
  );
  const sparse =
    query.workload !== undefined ||
    query.pod !== undefined ||
    query.internal !== undefined ||
    (query.ip !== undefined && query.namespace !== undefined);
  // No flow of a filtered question at any time is an answer about the question, not about the store.
  const lookElsewhere = async (anyTime: FlowPages) => {
    const first = await firstOutside(anyTime, query);
    return first === null && filtered ? undefined : first;
  };
  if (typeof raw.api === "string") {
    const api = raw.api;
    const asked = raw.clusterGiven === true ? (raw.cluster as string) : undefined;
    const served: Served = {};
    const pages = (q: FlowQuery) =>
      apiPages<FlowRecord>(
        api,
        "/flows",
        common,
        asked,
        {
          since: q.since,
          until: q.until,
          namespace: q.namespace,
          workload: q.workload,
          pod: q.pod,
          ip: q.ip,
          internal: q.internal === undefined ? undefined : String(q.internal),
        },
        served,
      );
    return {
      page: pages(query),
      sparse,
      elsewhere: () => lookElsewhere(pages({ ...query, ...ALL_TIME })),
      served,
      close: async () => {},
    };
  }
  const opened = await openStore(common, { existing: true, bucketSeconds: options.bucketSeconds });
  const pages =
    (q: FlowQuery): FlowPages =>
    (cursor, limit) =>
      opened.store.queryFlows({ ...q, limit, cursor });
  return {
    page: pages(query),
    sparse,
    elsewhere: () => lookElsewhere(pages({ ...query, ...ALL_TIME })),
    ...(opened.clusters === undefined ? {} : { clusters: opened.clusters }),
    close: () => opened.close(),
  };
}

/**
 * The alerts `--namespace`, `--severity` and `--reason` keep (checked here, on each page read: the store lists alerts
 * by time only). A namespace is either end's, or any a scan or fan-in stands for (its `namespaces`).
 */
function alertFilter(raw: Record<string, unknown>): ((a: AlertRecord) => boolean) | undefined {
  const namespace = checked("--namespace", namespaceName, raw.namespace as string | undefined);
  const severity = raw.severity as string | undefined;
  const reason = raw.reason as string | undefined;
  if (namespace === undefined && severity === undefined && reason === undefined) return undefined;
  return (a) =>
    (namespace === undefined ||
      a.src.namespace === namespace ||
      a.dst.namespace === namespace ||
      a.namespaces?.src.includes(namespace) === true ||
      a.namespaces?.dst.includes(namespace) === true) &&
    (severity === undefined || a.severity === severity) &&
    (reason === undefined || a.reason === reason);
}

/**
 * Pages of the alerts `keep` selects (none: `page` itself); the cursor goes on as the unfiltered pages' does. A
 * filter may keep few of a page, so each is read whole rather than sized to what `--limit` still wants.
 */
function filtered(
  page: (cursor: string | undefined, pageLimit: number) => Promise<Page<AlertRecord>>,
  keep: ((a: AlertRecord) => boolean) | undefined,
): (cursor: string | undefined, pageLimit: number) => Promise<Page<AlertRecord>> {
  if (keep === undefined) return page;
  return async (cursor) => {
    const result = await page(cursor, PAGE_LIMIT);
    return { ...result, items: result.items.filter(keep) };
  };
}

export async function listAlerts(raw: Record<string, unknown>): Promise<Listing<AlertRecord>> {
  const common = commonOptions(raw);
  const options = raw as unknown as ReadOptions;
  const query: AlertQuery = { cluster: common.cluster, ...range(options) };
  const keep = alertFilter(raw);
  // Alerts are read by day, so the first at any time is not one page away: the first flow, which they come
  // from, says where to look.
  if (typeof raw.api === "string") {
    const asked = raw.clusterGiven === true ? (raw.cluster as string) : undefined;
    const served: Served = {};
    const listing: Listing<AlertRecord> = await collect(
      options.limit,
      filtered(
        apiPages<AlertRecord>(
          raw.api,
          "/alerts",
          common,
          asked,
          { since: query.since, until: query.until },
          served,
        ),
        keep,
      ),
    );
    if (listing.records.length === 0 && defaultRange(raw)) {
      listing.elsewhere = await firstOutside(
        apiPages<FlowRecord>(raw.api, "/flows", common, asked, ALL_TIME, served),
        query,
      );
    }
    listing.served = served.cluster ?? null;
    return listing;
  }
  const opened = await openStore(common, { existing: true, listsAlerts: true });
  try {
    const listing: Listing<AlertRecord> = await collect(
      options.limit,
      filtered((cursor, limit) => opened.store.queryAlerts({ ...query, limit, cursor }), keep),
    );
    listing.clusters = opened.clusters;
    if (listing.records.length === 0 && defaultRange(raw)) {
      listing.elsewhere = await firstOutside(
        (cursor, limit) => opened.store.queryFlows({ cluster: common.cluster, ...ALL_TIME, limit, cursor }),
        query,
      );
    }
    return listing;
  } finally {
    await opened.close();
  }
}

/**
 * What a listing leaves out, for stderr (the records go to stdout, a table or NDJSON alike): records past
 * `--limit`, and, for an empty answer, that the store holds other clusters than the one asked for (a replay with
 * `--cluster prod` read back without it would otherwise look like a quiet cluster).
 */
function listingNotes(
  listing: Listing<unknown>,
  what: "flows" | "alerts" | "conversations",
  options: { limit: number; cluster: string },
): string[] {
  const notes: string[] = [];
  const grouped = listing as Partial<GroupedListing>;
  if (grouped.cut === true) {
    notes.push(
      `note: the range holds more than ${(grouped.flows ?? 0).toLocaleString("en")} flows: the totals are of the first ${(grouped.flows ?? 0).toLocaleString("en")} (by bucket, oldest first); narrow it (--since, --until, filters)`,
    );
  }
  if (listing.more && what === "conversations") {
    notes.push(
      `note: only the ${options.limit} conversations with the most packets are listed and the range holds more: raise --limit`,
    );
  } else if (listing.more) {
    // Alerts sort by their opening; flows by their bucket only, those of a bucket in id order.
    const order = what === "flows" ? "by bucket, oldest first" : "oldest first";
    notes.push(
      `note: only the first ${options.limit} ${what} (${order}) are listed and the range holds more: narrow it (--since, --until, filters) or raise --limit`,
    );
  }
  if (listing.records.length === 0 && typeof listing.elsewhere === "string") {
    notes.push(
      what === "alerts"
        ? `note: none in the last 24 hours (no --since or --until given), but the store holds flows at other times, the first seen at ${listing.elsewhere} (alerts are raised on flows): give --since (and --until)`
        : `note: none in the last 24 hours (no --since or --until given), but the store holds such flows at other times, the first seen at ${listing.elsewhere}: give --since (and --until)`,
    );
  }
  const clusters = listing.clusters ?? [];
  if (listing.records.length === 0 && clusters.length > 0 && !clusters.includes(options.cluster)) {
    const names = clusters.map((c) => JSON.stringify(c)).join(", ");
    notes.push(
      `note: this store was written for ${clusters.length === 1 ? "cluster" : "clusters"} ${names}, not "${options.cluster}": pass --cluster ${clusters[0]}`,
    );
  } else if (listing.records.length === 0 && listing.elsewhere === null) {
    // Read as a quiet day, an empty store sends the operator widening --since again and again. Through the API, the
    // cluster is the one it serves, whatever --cluster defaulted to. True of an embedded store: one holding flows in
    // hours no marker lists, which the look at all times skips, is refused when opened (store.ts, checkMarked).
    const cluster =
      listing.served === undefined
        ? `cluster ${JSON.stringify(options.cluster)}`
        : listing.served === null
          ? "the API's cluster"
          : `cluster ${JSON.stringify(listing.served)}`;
    notes.push(
      `note: the store holds no flows of ${cluster} at any time${what === "alerts" ? " (alerts are raised on flows)" : ""}: no --since will find one`,
    );
  }
  return notes;
}

export function printRecords<T>(
  listing: Listing<T>,
  raw: Record<string, unknown>,
  what: "flows" | "alerts" | "conversations",
  render: (r: readonly T[]) => string,
): void {
  const { records } = listing;
  if (raw.json === true) {
    for (const r of records) process.stdout.write(`${JSON.stringify(r)}\n`);
  } else if (records.length === 0) {
    process.stdout.write("no records in that range\n");
  } else {
    process.stdout.write(`${render(records)}\n`);
  }
  const notes = listingNotes(listing, what, {
    limit: raw.limit as number,
    cluster: commonOptions(raw).cluster,
  });
  for (const note of notes) process.stderr.write(`${note}\n`);
}

export function registerFlows(program: Command): void {
  addReadOptions(program.command("flows").description("list stored flows"))
    .option("--namespace <ns>", "flows where this namespace is source or destination")
    .option("--workload <[kind/]name>", "flows of this workload (needs --namespace)")
    .option("--pod <name>", "flows of this pod (needs --namespace)")
    .option("--ip <address>", "flows involving this IP, resolved or not")
    .option(
      "--bucket-seconds <n>",
      "a bucket length the flows were counted in, where a range starts reading: read besides an embedded store's (as replay recorded them) or a table's (any of up to 60), not with --api",
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
    .option(
      "--group",
      "one row per conversation (source, destination, port, direction, policy), its flows summed over the range, most packets first",
    )
    .action(async (_opts: Record<string, unknown>, command: Command) => {
      const raw = readingOptions(command);
      // As noteIneffective notes the common options: ignored in silence, it would look obeyed.
      if (raw.api !== undefined && raw.bucketSeconds !== undefined) {
        process.stderr.write(
          "note: --bucket-seconds has no effect on flows with --api: the query API reads the buckets its stack's " +
            `ingest counts in (up to ${MAX_AGGREGATION_SECONDS} s); flows counted in longer ones are read with ` +
            "--table and --bucket-seconds\n",
        );
      }
      if (raw.group === true) printRecords(await groupFlows(raw), raw, "conversations", conversationsTable);
      else printRecords(await listFlows(raw), raw, "flows", flowsTable);
    });
  // By opening, not by each hit: a late hit folds into the first window kept after it, which may open any time later.
  addReadOptions(
    program
      .command("alerts")
      .description(
        "list alerts opened by --until whose last hit is at --since or later (a late hit folded into an alert opened after it is listed by that opening, not by its own time)",
      ),
  )
    .option("--namespace <ns>", "alerts where this namespace is source or destination")
    .addOption(new Option("--severity <level>", "only alerts of this severity").choices(["high", "low"]))
    .addOption(
      new Option("--reason <reason>", "only alerts of this kind").choices([
        "internal-denial",
        "internal-scan",
        "internal-fan-in",
        "external-scan",
      ]),
    )
    .action(async (_opts: Record<string, unknown>, command: Command) => {
      const raw = readingOptions(command);
      printRecords(await listAlerts(raw), raw, "alerts", alertsTable);
    });
}
