// Opens the flow store a command works on: the embedded dynalite store under --store, or a real DynamoDB
// table with --table (the SDK's standard configuration: profile, region, AWS_ENDPOINT_URL_DYNAMODB).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { storeClient } from "../functions/adapters/dynamo/client.ts";
import { startEmbeddedStore } from "../functions/adapters/dynamo/embedded.ts";
import { DEFAULT_BUCKET_SECONDS } from "../functions/adapters/dynamo/flow-store.ts";
import { tableStores } from "../functions/adapters/dynamo/stores.ts";
import type { CoverageStore } from "../functions/core/coverage.ts";
import type { FlowStore, HolderHistory } from "../functions/core/ports.ts";
import type { CommonOptions } from "./common.ts";

export interface OpenedStore {
  store: FlowStore;
  history: HolderHistory;
  /** Which log events are already counted (live ingest, backfill, redrive): docs/backfill.md. */
  coverage: CoverageStore;
  /** Where the data lives, for messages. */
  description: string;
  close(): Promise<void>;
}

/** What the commands that write an embedded store record beside it for the ones that read it. */
const SETTINGS_FILE = "calico-flows.json";

interface StoreSettings {
  /** The longest bucket (seconds) flows were counted in: where a range must start reading (flows). */
  bucketSeconds?: number;
}

function readSettings(dir: string): StoreSettings {
  try {
    const value = JSON.parse(readFileSync(join(dir, SETTINGS_FILE), "utf8")) as StoreSettings;
    return typeof value === "object" && value !== null ? value : {};
  } catch {
    return {};
  }
}

export interface StoreUse {
  /** TTL of written items, days. */
  retentionDays?: number;
  /**
   * The bucket length flows were counted in, for reading ranges. Absent: the embedded store's longest recorded
   * by the commands that wrote it (`countsBuckets`), else 60.
   */
  bucketSeconds?: number;
  /** This command counts flows in buckets this long: recorded beside an embedded store for its readers. */
  countsBuckets?: number;
  /**
   * The command only reads (`flows`, `alerts`), so an embedded store that is not there is an error — a mistyped
   * --store would otherwise be created empty and answer "no records".
   */
  existing?: boolean;
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
  if (existing && !existsSync(options.store)) {
    throw new Error(
      `no embedded store in ${options.store} (\`calico-flows replay\` makes one; --store names another, --table a DynamoDB table)`,
    );
  }
  const embedded = await startEmbeddedStore({ dir: options.store });
  // Under the store's lock: a replay with longer buckets than the recorded ones records its own.
  const settings = readSettings(options.store);
  const recorded = settings.bucketSeconds ?? DEFAULT_BUCKET_SECONDS;
  if (use.countsBuckets !== undefined && use.countsBuckets > recorded) {
    writeFileSync(
      join(options.store, SETTINGS_FILE),
      `${JSON.stringify({ ...settings, bucketSeconds: use.countsBuckets })}\n`,
    );
  }
  const bucketSeconds = use.bucketSeconds ?? Math.max(use.countsBuckets ?? 0, recorded);
  return {
    ...tableStores({ client: embedded.client, tableName: embedded.tableName, retentionDays, bucketSeconds }),
    description: `embedded store ${options.store}`,
    close: () => embedded.close(),
  };
}
