// The stores of one calico-flows table, made together: flows and alerts, the IP holders' history, the coverage
// records and the attribution memos all live as long as the table's retention says (a holder forgotten before its
// flows would leave late, redriven or backfilled lines of those flows unattributed); the alert rules' denial
// tallies a day after they stop counting, and their verdicts as long as the coverage of their events.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoCoverageStore } from "./coverage.ts";
import { DynamoFlowStore } from "./flow-store.ts";
import { DynamoHolderHistory } from "./history.ts";
import { DynamoMemoStore } from "./memos.ts";
import { DynamoDenialTally } from "./tallies.ts";

export interface TableStoresOptions {
  client: DynamoDBClient;
  tableName: string;
  /** Days every item lives (by TTL) after its time. @default 30 */
  retentionDays?: number;
  /** The flows' bucket length (or lengths), for queries (DynamoFlowStoreOptions). @default 60 */
  bucketSeconds?: number | readonly number[];
  /** Wall clock (epoch ms) of the flow store and the holder history. @default Date.now */
  now?: () => number;
}

export interface TableStores {
  store: DynamoFlowStore;
  history: DynamoHolderHistory;
  coverage: DynamoCoverageStore;
  memos: DynamoMemoStore;
  tallies: DynamoDenialTally;
}

export function tableStores(options: TableStoresOptions): TableStores {
  const { client, tableName, retentionDays, bucketSeconds, now } = options;
  return {
    store: new DynamoFlowStore({ client, tableName, retentionDays, bucketSeconds, now }),
    history: new DynamoHolderHistory({ client, tableName, retentionDays, now }),
    coverage: new DynamoCoverageStore({ client, tableName, retentionDays }),
    memos: new DynamoMemoStore({ client, tableName, retentionDays }),
    tallies: new DynamoDenialTally({ client, tableName, retentionDays, now }),
  };
}
