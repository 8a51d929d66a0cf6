// Opens the flow store a command works on: the embedded dynalite store under --store, or a real DynamoDB
// table with --table (the SDK's standard configuration: profile, region, AWS_ENDPOINT_URL_DYNAMODB).
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { storeClient } from "../functions/adapters/dynamo/client.ts";
import { holdsEmbeddedStore, startEmbeddedStore } from "../functions/adapters/dynamo/embedded.ts";
import { DEFAULT_BUCKET_SECONDS } from "../functions/adapters/dynamo/flow-store.ts";
import { tableStores } from "../functions/adapters/dynamo/stores.ts";
import type { MemoStore } from "../functions/core/attribution-memo.ts";
import type { CoverageStore } from "../functions/core/coverage.ts";
import type { DenialTally, FlowStore, HolderHistory } from "../functions/core/ports.ts";
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
  close(): Promise<void>;
}

/** What the commands that write an embedded store record beside it for the ones that read it. */
const SETTINGS_FILE = "calico-flows.json";

interface StoreSettings {
  /** The longest bucket (seconds) flows were counted in (what stores before `bucketLengths` recorded). */
  bucketSeconds?: number;
  /** Every bucket length (seconds) flows were counted in: where a range must start reading (flows). */
  bucketLengths?: number[];
  /** The clusters (`--cluster`) flows were counted for. */
  clusters?: string[];
}

function readSettings(dir: string): StoreSettings {
  try {
    const value = JSON.parse(readFileSync(join(dir, SETTINGS_FILE), "utf8")) as StoreSettings;
    if (typeof value !== "object" || value === null) return {};
    const clusters = Array.isArray(value.clusters)
      ? value.clusters.filter((c): c is string => typeof c === "string")
      : undefined;
    const bucketLengths = Array.isArray(value.bucketLengths)
      ? value.bucketLengths.filter((b): b is number => Number.isInteger(b) && b >= 1 && b <= 3600)
      : undefined;
    return { ...value, clusters, bucketLengths };
  } catch {
    return {};
  }
}

export interface StoreUse {
  /** TTL of written items, days. */
  retentionDays?: number;
  /**
   * The bucket length flows were counted in, for reading ranges. Absent: the embedded store's lengths recorded by
   * the commands that wrote it (`countsBuckets`), else 60.
   */
  bucketSeconds?: number;
  /** This command counts flows in buckets this long: recorded beside an embedded store for its readers. */
  countsBuckets?: number;
  /** This command counts flows of this cluster: recorded beside an embedded store for its readers. */
  countsCluster?: string;
  /**
   * The command only reads (`flows`, `alerts`), so an embedded store that is not there is an error — a mistyped
   * --store would otherwise be created empty and answer "no records".
   */
  existing?: boolean;
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
    return {
      ...tableStores({ client, tableName: options.table, retentionDays, bucketSeconds: use.bucketSeconds }),
      description: `DynamoDB table ${options.table}`,
      close: async () => client.destroy(),
    };
  }
  const kind = storeDirectoryKind(options.store);
  if (kind === "other") {
    throw new Error(`--store ${options.store} is not a directory (it names the embedded store's directory)`);
  }
  // An existing directory is no store either until LevelDB has written one there: opening it would write the
  // store's files among whatever it holds (a logs directory, the home directory).
  if (existing && (kind === "missing" || !(await holdsEmbeddedStore(options.store)))) {
    throw new Error(
      `no embedded store in ${options.store} (\`calico-flows replay\` makes one; --store names another, --table a DynamoDB table)`,
    );
  }
  const embedded = await startEmbeddedStore({ dir: options.store });
  // Under the store's lock: a replay with buckets of another length than the recorded ones, or of another cluster,
  // records it.
  const settings = readSettings(options.store);
  const recorded = settings.bucketLengths ?? [settings.bucketSeconds ?? DEFAULT_BUCKET_SECONDS];
  const updated = { ...settings };
  if (use.countsBuckets !== undefined && !recorded.includes(use.countsBuckets)) {
    updated.bucketLengths = [...recorded, use.countsBuckets];
    updated.bucketSeconds = Math.max(...updated.bucketLengths);
  }
  if (use.countsCluster !== undefined && !(settings.clusters ?? []).includes(use.countsCluster)) {
    updated.clusters = [...(settings.clusters ?? []), use.countsCluster];
  }
  if (updated.bucketLengths !== settings.bucketLengths || updated.clusters !== settings.clusters) {
    try {
      writeFileSync(join(options.store, SETTINGS_FILE), `${JSON.stringify(updated)}\n`);
    } catch (error) {
      await embedded.close();
      throw error;
    }
  }
  const bucketSeconds = use.bucketSeconds ?? updated.bucketLengths ?? recorded;
  return {
    ...tableStores({ client: embedded.client, tableName: embedded.tableName, retentionDays, bucketSeconds }),
    description: `embedded store ${options.store}`,
    clusters: updated.clusters,
    close: () => embedded.close(),
  };
}
