// Coverage records in the flow store's table (docs/backfill.md): one item per (cluster, log group, log stream,
// minute), pk `COVER#<cluster>#<group>#<stream>`, sk the minute's ISO start, holding the claims made on the
// minute's events as a map keyed by contribution. Claims are added under optimistic concurrency on `v`, so
// two writers never both own an event. Items expire with the flows they protect (TTL `expiresAt`).
import { ConditionalCheckFailedException, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Claim, ClaimSource, CoverageStore, MinuteCoverage, StreamRef } from "../../core/coverage.ts";
import { freshReport } from "./requests.ts";
import { checkRetryPolicy, DEFAULT_RETRY, type RetryPolicy, withRetry } from "./retry.ts";
import { TABLE_KEYS, TTL_ATTRIBUTE } from "./schema.ts";

export interface DynamoCoverageStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  /**
   * Days a coverage record is kept: at least as long as the flows it protects, so a backfill reaching that
   * far back still finds what was counted. @default 30
   */
  retentionDays?: number;
  /** Tries per request after throttling, 5xx and lost connections, as the flow store's. @default DEFAULT_RETRY */
  retry?: RetryPolicy;
}

/** A claim as stored: the event digests as a string set (absent when not itemised). */
interface StoredClaim {
  source: ClaimSource;
  events?: Set<string>;
  recorded: boolean;
  count: number;
  span: number;
  stored: boolean;
  claimedAt: string;
}

interface CoverageItem {
  v: number;
  sk: string;
  claims?: Record<string, StoredClaim>;
}

const PK = TABLE_KEYS.partitionKey;
const SK = TABLE_KEYS.sortKey;

export function coveragePartition(ref: StreamRef): string {
  return `COVER#${ref.cluster}#${ref.group}#${ref.stream}`;
}

function toStored(claim: Claim): StoredClaim {
  const stored: StoredClaim = {
    source: claim.source,
    recorded: claim.recorded,
    count: claim.count,
    span: claim.span,
    stored: claim.stored,
    claimedAt: claim.claimedAt,
  };
  // DynamoDB has no empty sets: an unrecorded claim simply has no `events`.
  if (claim.events.length > 0) stored.events = new Set(claim.events);
  return stored;
}

export class DynamoCoverageStore implements CoverageStore {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #retentionMs: number;
  readonly #retry: RetryPolicy;

  constructor(options: DynamoCoverageStoreOptions) {
    this.#doc = DynamoDBDocumentClient.from(options.client);
    this.#table = options.tableName;
    this.#retentionMs = (options.retentionDays ?? 30) * 86_400_000;
    this.#retry = checkRetryPolicy(options.retry ?? DEFAULT_RETRY);
  }

  /** A request with the retry policy: a throttled coverage step waits rather than failing the payload. */
  #send<T>(what: string, call: () => Promise<T>): Promise<T> {
    return withRetry(what, this.#retry, freshReport(), call);
  }

  async read(ref: StreamRef, fromMinute: number, toMinute: number): Promise<MinuteCoverage[]> {
    const out: MinuteCoverage[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.#send("Query", () =>
        this.#doc.send(
          new QueryCommand({
            TableName: this.#table,
            KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :from AND :to",
            ExpressionAttributeNames: { "#pk": PK, "#sk": SK },
            ExpressionAttributeValues: {
              ":pk": coveragePartition(ref),
              ":from": new Date(fromMinute).toISOString(),
              ":to": new Date(toMinute).toISOString(),
            },
            // A claim decision on stale data could hand one event to two writers.
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        ),
      );
      for (const raw of page.Items ?? []) {
        const item = raw as CoverageItem;
        out.push({
          minute: Date.parse(item.sk),
          version: item.v,
          claims: Object.entries(item.claims ?? {}).map(([contribution, c]) => ({
            contribution,
            source: c.source,
            events: c.events === undefined ? [] : [...c.events],
            recorded: c.recorded,
            count: c.count,
            span: c.span,
            stored: c.stored,
            claimedAt: c.claimedAt,
          })),
        });
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return out;
  }

  async addClaim(ref: StreamRef, minute: number, version: number, claim: Claim): Promise<boolean> {
    const key = { [PK]: coveragePartition(ref), [SK]: new Date(minute).toISOString() };
    try {
      if (version === 0) {
        await this.#send("PutItem", () =>
          this.#doc.send(
            new PutCommand({
              TableName: this.#table,
              Item: {
                ...key,
                v: 1,
                claims: { [claim.contribution]: toStored(claim) },
                [TTL_ATTRIBUTE]: Math.floor((minute + this.#retentionMs) / 1000) + 86_400,
              },
              ConditionExpression: "attribute_not_exists(#pk)",
              ExpressionAttributeNames: { "#pk": PK },
            }),
          ),
        );
      } else {
        await this.#send("UpdateItem", () =>
          this.#doc.send(
            new UpdateCommand({
              TableName: this.#table,
              Key: key,
              UpdateExpression: "SET #claims.#c = :claim, #v = :next",
              ConditionExpression: "#v = :v",
              ExpressionAttributeNames: { "#claims": "claims", "#c": claim.contribution, "#v": "v" },
              ExpressionAttributeValues: { ":claim": toStored(claim), ":v": version, ":next": version + 1 },
            }),
          ),
        );
      }
      return true;
    } catch (error) {
      if (
        error instanceof ConditionalCheckFailedException ||
        (error as Error).name === "ConditionalCheckFailedException"
      ) {
        return false;
      }
      throw error;
    }
  }

  async markStored(ref: StreamRef, minute: number, contribution: string): Promise<void> {
    await this.#send("UpdateItem", () =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { [PK]: coveragePartition(ref), [SK]: new Date(minute).toISOString() },
          UpdateExpression: "SET #claims.#c.#stored = :true",
          // Marking a claim that does not exist would be a bug upstream: fail loudly rather than create a stub.
          ConditionExpression: "attribute_exists(#claims.#c)",
          ExpressionAttributeNames: { "#claims": "claims", "#c": contribution, "#stored": "stored" },
          ExpressionAttributeValues: { ":true": true },
        }),
      ),
    );
  }
}
