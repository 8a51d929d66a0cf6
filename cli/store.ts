// Opens the flow store a command works on: the embedded dynalite store under --store, or a real DynamoDB
// table with --table (the SDK's standard configuration: profile, region, AWS_ENDPOINT_URL_DYNAMODB).
import { existsSync } from "node:fs";
import { storeClient } from "../functions/adapters/dynamo/client.ts";
import { startEmbeddedStore } from "../functions/adapters/dynamo/embedded.ts";
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

/**
 * `existing`: the command only reads (`flows`, `alerts`), so an embedded store that is not there is an error — a
 * mistyped --store would otherwise be created empty and answer "no records".
 */
export async function openStore(
  options: CommonOptions,
  settings: { retentionDays?: number; bucketSeconds?: number; existing?: boolean } = {},
): Promise<OpenedStore> {
  const { retentionDays, bucketSeconds, existing = false } = settings;
  if (options.table !== undefined) {
    const client = storeClient(options.region === undefined ? {} : { region: options.region });
    return {
      ...tableStores({ client, tableName: options.table, retentionDays, bucketSeconds }),
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
  return {
    ...tableStores({ client: embedded.client, tableName: embedded.tableName, retentionDays, bucketSeconds }),
    description: `embedded store ${options.store}`,
    close: () => embedded.close(),
  };
}
