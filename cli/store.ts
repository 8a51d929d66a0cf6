// Opens the flow store a command works on: the embedded dynalite store under --store, or a real DynamoDB
// table with --table (the SDK's standard configuration: profile, region, AWS_ENDPOINT_URL_DYNAMODB).
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { type DynamoDBDocumentClient, QueryCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { storeClient } from "../functions/adapters/dynamo/client.ts";
import {
  type EmbeddedStore,
  holdsEmbeddedStore,
  startEmbeddedStore,
} from "../functions/adapters/dynamo/embedded.ts";
import { DEFAULT_BUCKET_SECONDS, type DynamoFlowStore } from "../functions/adapters/dynamo/flow-store.ts";
import {
  alertDaysPartition,
  alertPartition,
  dayOf,
  flowHoursPartition,
  nextHour,
} from "../functions/adapters/dynamo/keys.ts";
import { documentClient } from "../functions/adapters/dynamo/requests.ts";
import { tableStores } from "../functions/adapters/dynamo/stores.ts";
import type { MemoStore } from "../functions/core/attribution-memo.ts";
import type { CoverageStore } from "../functions/core/coverage.ts";
import type { DenialTally, FlowStore, HolderHistory } from "../functions/core/ports.ts";
import { INGEST_BUCKET_LENGTHS } from "../functions/ingest/config.ts";
import type { CommonOptions } from "./common.ts";

export interface OpenedStore {
  store: FlowStore;
  history: HolderHistory;
  /** Which log events are already counted (live ingest, backfill, redrive): docs/backfill.md. */
  coverage: CoverageStore;
  /** What each contribution's attribution was, so that its retries and replays attribute alike. */
  memos: MemoStore;
  /** Where the internal alert rules count sources and destinations across batches (with a scan threshold). */
  tallies: DenialTally;
  /** Where the data lives, for messages. */
  description: string;
  /**
   * The clusters the commands that wrote an embedded store recorded flows of (none recorded: undefined, as for a
   * table), so that a reader asking for another can say which the store holds.
   */
  clusters?: readonly string[];
  /**
   * With --table: its flow store, for what a command asks of it besides the FlowStore port (replay's OthersCounted:
   * who counted its flows); undefined for the embedded store, which no live ingest writes.
   */
  tableFlows?: DynamoFlowStore;
  close(): Promise<void>;
}

/** What the commands that write an embedded store record beside it for the ones that read it. */
const SETTINGS_FILE = "calico-flows.json";
/**
 * Where `backfill` keeps its checkpoints by default: under the store directory, whichever its store (a table's run
 * too), where no command's store is kept from being made (a name LevelDB never takes for its own).
 */
export const CHECKPOINTS_DIR = "checkpoints";
/**
 * The format of the stores this version writes, recorded beside them: 1, every hour that holds flows and every day
 * that holds alerts is marked (docs/flow-store.md, "Hour markers", "Alert day markers"), as questions by time read
 * only the marked ones.
 */
const STORE_FORMAT = 1;

interface StoreSettings {
  /** The longest bucket (seconds) flows were counted in (what stores before `bucketLengths` recorded). */
  bucketSeconds?: number;
  /** Every bucket length (seconds) flows were counted in: where a range must start reading (flows). */
  bucketLengths?: number[];
  /** The clusters (`--cluster`) flows were counted for. */
  clusters?: string[];
  /** STORE_FORMAT of the version that wrote it; absent from stores written before the format was recorded. */
  format?: number;
}

/**
 * The settings recorded beside the store in `dir` (none: `{}`). A file that is there but cannot be read is an
 * error, not "none": read as none, a range would be read as if every flow had been counted in one-minute buckets
 * and miss those counted in longer ones, and the next command that writes the store would record its own settings
 * only, losing the rest for good.
 */
function readSettings(dir: string): StoreSettings {
  const path = join(dir, SETTINGS_FILE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw unreadableSettings(path, text.trim() === "" ? "empty" : (error as Error).message);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw unreadableSettings(path, "not a JSON object");
  }
  const settings = value as StoreSettings;
  const clusters = Array.isArray(settings.clusters)
    ? settings.clusters.filter((c): c is string => typeof c === "string")
    : undefined;
  const bucketLengths = Array.isArray(settings.bucketLengths)
    ? settings.bucketLengths.filter((b): b is number => Number.isInteger(b) && b >= 1 && b <= 3600)
    : undefined;
  const format = typeof settings.format === "number" ? settings.format : undefined;
  return { ...settings, clusters, bucketLengths, format };
}

function unreadableSettings(path: string, why: string): Error {
  return new Error(
    `cannot read ${path} (${why}), where the commands that wrote the embedded store record the bucket lengths and ` +
      `clusters its flows were counted in: write it again with theirs, as {"bucketLengths":[60],"clusters":["local"]} ` +
      "records --bucket-seconds 60 and --cluster local (or remove it if those were the only ones)",
  );
}

/**
 * Replaces `path` with `text` whole or not at all: a temporary file beside it, flushed to disk, renamed over it.
 * Written in place, a full disk or a crash between the truncation and the write would leave it empty.
 */
function writeFileAtomic(path: string, text: string): void {
  const temporary = `${path}.tmp`;
  try {
    const fd = openSync(temporary, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  // The rename itself is on disk once the directory is.
  const dir = openSync(dirname(path), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export interface StoreUse {
  /** TTL of written items, days. */
  retentionDays?: number;
  /**
   * A bucket length flows were counted in, for reading ranges: read besides the embedded store's lengths recorded by
   * the commands that wrote it (`countsBuckets`, else 60), or a table's, every length the stack's ingest may count in.
   * Never instead of them: told a longer length (as an alert e-mail of a replay into a table tells `flows`), a range
   * would start reading at that length's bucket and miss the flows of shorter ones that start before it.
   */
  bucketSeconds?: number;
  /** This command counts flows in buckets this long: recorded beside an embedded store for its readers. */
  countsBuckets?: number;
  /** This command counts flows of this cluster: recorded beside an embedded store for its readers. */
  countsCluster?: string;
  /**
   * The command only reads (`flows`, `alerts`), so an embedded store that is not there is an error — a mistyped
   * --store would otherwise be created empty and answer "no records". It records nothing beside the store either.
   */
  existing?: boolean;
  /** The command lists alerts: an embedded store whose alerts are on days no marker lists is refused. */
  listsAlerts?: boolean;
}

/** The bucket lengths `settings` record (stores before `bucketLengths`: their longest; none: the default). */
function recordedLengths(settings: StoreSettings): number[] {
  return settings.bucketLengths ?? [settings.bucketSeconds ?? DEFAULT_BUCKET_SECONDS];
}

/** The lengths a reader reads by: `known`, and the one a command was told (StoreUse.bucketSeconds). */
function readLengths(known: readonly number[], told: number | undefined): readonly number[] {
  return told === undefined || known.includes(told) ? known : [...known, told];
}

/**
 * `settings`, those of the store in `dir`, with those of this use recorded: called under the store's lock, so that a
 * replay with buckets of another length than the recorded ones, or of another cluster, records it, and a store found
 * whole (checkMarked), by any command, has its format recorded.
 */
function recordSettings(dir: string, settings: StoreSettings, use: StoreUse, whole: boolean): StoreSettings {
  const recorded = recordedLengths(settings);
  const updated = { ...settings };
  if (use.countsBuckets !== undefined && !recorded.includes(use.countsBuckets)) {
    updated.bucketLengths = [...recorded, use.countsBuckets];
    updated.bucketSeconds = Math.max(...updated.bucketLengths);
  }
  if (use.countsCluster !== undefined && !(settings.clusters ?? []).includes(use.countsCluster)) {
    updated.clusters = [...(settings.clusters ?? []), use.countsCluster];
  }
  if (whole) updated.format = STORE_FORMAT;
  if (
    updated.bucketLengths !== settings.bucketLengths ||
    updated.clusters !== settings.clusters ||
    updated.format !== settings.format
  ) {
    writeFileAtomic(join(dir, SETTINGS_FILE), `${JSON.stringify(updated)}\n`);
  }
  return updated;
}

function storeDirectoryKind(dir: string): "directory" | "missing" | "other" {
  try {
    return statSync(dir).isDirectory() ? "directory" : "other";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw error;
  }
}

export async function openStore(options: CommonOptions, use: StoreUse = {}): Promise<OpenedStore> {
  const { retentionDays, existing = false } = use;
  if (options.table !== undefined) {
    const client = storeClient(options.region === undefined ? {} : { region: options.region });
    const table = options.table;
    // DynamoDB's "Requested resource not found" names neither the table nor where it was looked for: a mistyped
    // --table and the stack's table looked for in the profile's default region rather than the stack's look alike.
    client.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (error) {
          if ((error as Error).name !== "ResourceNotFoundException") throw error;
          throw new Error(
            `no DynamoDB table ${table} in ${await client.config.region()} (or it is not active yet): ` +
              "give --table the stack's TableName output and --region the stack's region",
          );
        }
      },
      { step: "initialize", name: "missingTable" },
    );
    const stores = tableStores({
      client,
      tableName: options.table,
      retentionDays,
      bucketSeconds: readLengths(INGEST_BUCKET_LENGTHS, use.bucketSeconds),
    });
    return {
      ...stores,
      description: `DynamoDB table ${options.table}`,
      tableFlows: stores.store,
      close: async () => client.destroy(),
    };
  }
  const kind = storeDirectoryKind(options.store);
  if (kind === "other") {
    throw new Error(`--store ${options.store} is not a directory (it names the embedded store's directory)`);
  }
  // An existing directory is no store either until LevelDB has written one there: one that holds other files is
  // refused by every command (startEmbeddedStore), an empty one would be made a store.
  if (existing && (kind === "missing" || !(await holdsEmbeddedStore(options.store)))) {
    throw new Error(
      `no embedded store in ${options.store} (\`calico-flows replay\` makes one; --store names another, --table a DynamoDB table)`,
    );
  }
  // A command that writes serves the store from a thread of its own, beside its pipeline; one that only reads
  // sends a few Queries, which would not win back the thread's start (some 0.2 s).
  const embedded = await startEmbeddedStore({
    dir: options.store,
    ownThread: !existing,
    besides: [CHECKPOINTS_DIR],
  });
  let settings: StoreSettings;
  try {
    const recorded = readSettings(options.store);
    // A store found whole is recorded so, by readers too: the check, a Scan at worst, is made once.
    let whole = recorded.format !== undefined;
    if (!whole) {
      whole = await checkMarked(
        embedded,
        options.store,
        recorded.clusters ?? [],
        !existing || use.listsAlerts === true,
      );
    }
    settings = recordSettings(options.store, recorded, use, whole);
  } catch (error) {
    await embedded.close();
    throw error;
  }
  const bucketSeconds = readLengths(recordedLengths(settings), use.bucketSeconds);
  return {
    ...tableStores({ client: embedded.client, tableName: embedded.tableName, retentionDays, bucketSeconds }),
    description: `embedded store ${options.store}`,
    clusters: settings.clusters,
    close: () => embedded.close(),
  };
}

/** Whether partition `pk` holds an item: one item read. */
async function holdsItems(doc: DynamoDBDocumentClient, tableName: string, pk: string): Promise<boolean> {
  const out = await doc.send(
    new QueryCommand({
      TableName: tableName,
      KeyConditionExpression: "#pk = :pk",
      ExpressionAttributeNames: { "#pk": "pk" },
      ExpressionAttributeValues: { ":pk": pk },
      ProjectionExpression: "#pk",
      Limit: 1,
    }),
  );
  return (out.Items?.length ?? 0) > 0;
}

/**
 * The cluster of a flow stored in the embedded store, of one of `clusters` (none: of any), if there is one. A Scan,
 * as nothing lists a cluster's flows but its hour markers: taken only where no marker was found, so in a store that
 * holds flows of an earlier version (which the first page nearly always finds, flows being most of its items) or
 * none (its holders and claims, or nothing).
 */
async function unmarkedFlowCluster(
  doc: DynamoDBDocumentClient,
  tableName: string,
  clusters: readonly string[],
): Promise<string | undefined> {
  const prefixes = clusters.length === 0 ? ["FLOW#"] : clusters.map((c) => `FLOW#${c}#`);
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({
        TableName: tableName,
        FilterExpression: prefixes.map((_, i) => `begins_with(#pk, :p${i})`).join(" OR "),
        ExpressionAttributeNames: { "#pk": "pk", "#cluster": "cluster" },
        ExpressionAttributeValues: Object.fromEntries(prefixes.map((p, i) => [`:p${i}`, p])),
        ProjectionExpression: "#pk, #cluster",
        Limit: 1000,
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    const flow = page.Items?.[0];
    if (flow !== undefined) return String(flow.cluster);
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return undefined;
}

/**
 * Whether `cluster`'s alerts are on days no marker lists: its store holds no alert day marker, and an alert on a day
 * of its flows (an alert opens at its first hit: on the day of its flow's hour, or the next for a bucket that
 * crosses midnight). One Query per such day, in a store without alert day markers only.
 */
async function holdsUnmarkedAlerts(
  doc: DynamoDBDocumentClient,
  tableName: string,
  cluster: string,
): Promise<boolean> {
  if (await holdsItems(doc, tableName, alertDaysPartition(cluster))) return false;
  const days = new Set<string>();
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: "#pk = :pk",
        ExpressionAttributeNames: { "#pk": "pk", "#sk": "sk" },
        ExpressionAttributeValues: { ":pk": flowHoursPartition(cluster) },
        ProjectionExpression: "#sk",
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    for (const { sk } of page.Items ?? []) {
      days.add(dayOf(String(sk)));
      days.add(dayOf(nextHour(String(sk))));
    }
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  for (const day of days) {
    if (await holdsItems(doc, tableName, alertPartition(cluster, day))) return true;
  }
  return false;
}

/**
 * Refuses an embedded store that does not record its format (STORE_FORMAT) and holds flows in hours no marker lists
 * (written before hour markers, 705b5ff) or, with `alertsToo`, alerts on days no marker lists (before alert day
 * markers, 696ced5): questions by time read only the marked periods, so it would read as empty over any range of
 * more than two hours (its alerts over any range), as a quiet cluster does. Stores this version wrote before it
 * recorded its format hold markers: one Query per recorded cluster tells them. `clusters`: those it records. True
 * when the store is whole (its format may be recorded); false when, without `alertsToo`, only its alerts are unmarked.
 */
async function checkMarked(
  embedded: EmbeddedStore,
  dir: string,
  clusters: readonly string[],
  alertsToo: boolean,
): Promise<boolean> {
  const doc = documentClient(embedded.client);
  const marked: string[] = [];
  const unmarked: string[] = [];
  for (const cluster of clusters) {
    if (await holdsItems(doc, embedded.tableName, flowHoursPartition(cluster))) marked.push(cluster);
    else unmarked.push(cluster);
  }
  const refusal = (why: string) =>
    new Error(
      `the embedded store in ${dir} was written by a calico-flows before ${why}: replay its logs into a new --store`,
    );
  if (clusters.length === 0 || unmarked.length > 0) {
    const cluster = await unmarkedFlowCluster(doc, embedded.tableName, unmarked);
    if (cluster !== undefined) {
      // A store that records no cluster (written before calico-flows.json, or by no command) is judged by a flow's.
      if (clusters.length > 0 || !(await holdsItems(doc, embedded.tableName, flowHoursPartition(cluster)))) {
        throw refusal(
          `hour markers (its flows of cluster ${JSON.stringify(cluster)} are in hours no marker lists, so a range over two hours reads none of them)`,
        );
      }
      marked.push(cluster);
    }
  }
  // A cluster without flows has no alerts: they are raised on flows.
  for (const cluster of marked) {
    if (await holdsUnmarkedAlerts(doc, embedded.tableName, cluster)) {
      // `flows` reads such a store whole: only its alerts are unlisted.
      if (!alertsToo) return false;
      throw refusal(
        `alert day markers (its alerts of cluster ${JSON.stringify(cluster)} are on days no marker lists, so no listing reads them)`,
      );
    }
  }
  return true;
}
