// Attribution memos in the flow store's table (docs/flow-store.md, "Attribution memos"): one item per
// contribution, pk `MEMO#<cluster>#<contribution token>`, sk `MEMO`, holding the gzipped answers as a binary
// attribute and a version `v` for optimistic concurrency. A memo lives as long as the coverage of its events,
// since a backfill may finish a dead writer's claim as long as that coverage is there.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, PutCommand } from "@aws-sdk/lib-dynamodb";
import type { MemoStore, StoredMemo } from "../../core/attribution-memo.ts";
import { COVERAGE_TTL_MARGIN_S } from "./coverage.ts";
import { num } from "./items.ts";
import { checkCluster, contributionToken, expiresAt } from "./keys.ts";
import { documentClient, freshReport, getItem, isConditionFailure, type StoreContext } from "./requests.ts";
import { checkRetryPolicy, type RetryPolicy, withRetry } from "./retry.ts";
import { TABLE_KEYS, TTL_ATTRIBUTE } from "./schema.ts";

export interface DynamoMemoStoreOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  tableName: string;
  /** Days the flows are kept: a memo is kept as long as the coverage of its events. @default 30 */
  retentionDays?: number;
  /** @default MEMO_RETRY */
  retry?: RetryPolicy;
}

/**
 * Tries of a memo's requests: fewer than the other stores', so that a memo kept when the batch ran out of time is
 * saved within the time the ingest function keeps back for it (STORE_RESERVE_MS; a test holds the sum below it).
 */
export const MEMO_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 50, maxDelayMs: 1_000 };

export const memoKey = (cluster: string, contribution: string): { pk: string; sk: string } => ({
  pk: `MEMO#${checkCluster(cluster)}#${contributionToken(contribution)}`,
  sk: "MEMO",
});

export class DynamoMemoStore implements MemoStore {
  readonly #ctx: StoreContext;
  readonly #retentionDays: number;

  constructor(options: DynamoMemoStoreOptions) {
    this.#retentionDays = options.retentionDays ?? 30;
    if (!(this.#retentionDays > 0) || !Number.isFinite(this.#retentionDays)) {
      throw new Error(`retentionDays must be a positive number, got ${this.#retentionDays}`);
    }
    this.#ctx = {
      doc: documentClient(options.client),
      tableName: options.tableName,
      retry: checkRetryPolicy(options.retry ?? MEMO_RETRY),
    };
  }

  async load(cluster: string, contribution: string): Promise<StoredMemo | undefined> {
    const item = await getItem(this.#ctx, memoKey(cluster, contribution), freshReport());
    if (item === undefined) return undefined;
    // An item without its binary memo (damaged) reads as an empty memo, which decodeMemo refuses: the run then
    // attributes afresh, and a failure of its own replaces the item at this version.
    const bytes = item.memo instanceof Uint8Array ? item.memo : new Uint8Array(0);
    return { bytes, version: num(item.v) };
  }

  async save(
    cluster: string,
    contribution: string,
    bytes: Uint8Array,
    version: number,
    eventTime: number,
  ): Promise<boolean> {
    const key = memoKey(cluster, contribution);
    try {
      // A retried request whose first try landed fails its condition, and reads as someone else's save: the run
      // is failing either way, and its retry reads the memo that is there.
      await withRetry("PutItem", this.#ctx.retry, freshReport(), () =>
        this.#ctx.doc.send(
          new PutCommand({
            TableName: this.#ctx.tableName,
            Item: {
              ...key,
              memo: bytes,
              v: version + 1,
              [TTL_ATTRIBUTE]: expiresAt(eventTime, this.#retentionDays) + COVERAGE_TTL_MARGIN_S,
            },
            ConditionExpression: version === 0 ? "attribute_not_exists(#pk)" : "#v = :v",
            ExpressionAttributeNames: version === 0 ? { "#pk": TABLE_KEYS.partitionKey } : { "#v": "v" },
            ...(version === 0 ? {} : { ExpressionAttributeValues: { ":v": version } }),
          }),
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
