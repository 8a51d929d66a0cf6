// The DynamoDB requests the store is built from: expression building, reads, and the one idempotent write
// the counted items with a single writer at a time (flows, alert records) go through. Alert fold slots, which many
// deliveries write at once, have their own (alerts.ts, foldInto).
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { type CallReport, type RetryPolicy, StoreUnavailableError, withRetry } from "./retry.ts";

export type Item = Record<string, unknown>;
export type Key = { pk: string; sk: string };

export interface StoreContext {
  doc: DynamoDBDocumentClient;
  tableName: string;
  retry: RetryPolicy;
}

/** Wraps a plain client; a document client is used as it is (its numbers must not be wrapped). */
export function documentClient(client: DynamoDBClient | DynamoDBDocumentClient): DynamoDBDocumentClient {
  return client instanceof DynamoDBDocumentClient
    ? client
    : DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/** Placeholders for every attribute name and value, so that no reserved word can break an expression. */
export class Expression {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  readonly #nameIds = new Map<string, string>();

  /** `a.b.c` → `#n0.#n1.#n2` (map paths; list indexes are never needed here). */
  name(path: string): string {
    return path
      .split(".")
      .map((part) => {
        let id = this.#nameIds.get(part);
        if (id === undefined) {
          id = `#n${this.#nameIds.size}`;
          this.#nameIds.set(part, id);
          this.names[id] = part;
        }
        return id;
      })
      .join(".");
  }

  value(v: unknown): string {
    const id = `:v${Object.keys(this.values).length}`;
    this.values[id] = v;
    return id;
  }

  /** Attribute fields of a request, omitting empty maps (DynamoDB refuses them). */
  fields(): { ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Item } {
    return {
      ...(Object.keys(this.names).length > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

export const isConditionFailure = (error: unknown): boolean =>
  (error as { name?: string } | null)?.name === "ConditionalCheckFailedException";

export const freshReport = (): CallReport => ({ requests: 0, uncertain: false });

/** Strongly consistent read of one item. */
export async function getItem(ctx: StoreContext, key: Key, report: CallReport): Promise<Item | undefined> {
  const out = await withRetry("GetItem", ctx.retry, report, () =>
    ctx.doc.send(new GetCommand({ TableName: ctx.tableName, Key: key, ConsistentRead: true })),
  );
  return out.Item;
}

export interface QueryRequest {
  indexName?: string;
  /** Partition key attribute and value (the table's `pk` unless an index is named). */
  keyAttribute: string;
  keyValue: string;
  /** Inclusive sort key bounds. */
  lo: string;
  hi: string;
  limit?: number;
  start?: Item;
  filter?: Expression;
  filterExpression?: string;
  consistent?: boolean;
}

export interface QueryResult {
  items: Item[];
  /** Sort key of the last item evaluated when the partition has more (before any filter). */
  lastEvaluatedSk?: string;
}

export async function queryRange(
  ctx: StoreContext,
  request: QueryRequest,
  report: CallReport,
): Promise<QueryResult> {
  const e = request.filter ?? new Expression();
  const keyCondition = `${e.name(request.keyAttribute)} = ${e.value(request.keyValue)} AND ${e.name("sk")} BETWEEN ${e.value(request.lo)} AND ${e.value(request.hi)}`;
  const out = await withRetry("Query", ctx.retry, report, () =>
    ctx.doc.send(
      new QueryCommand({
        TableName: ctx.tableName,
        ...(request.indexName === undefined ? {} : { IndexName: request.indexName }),
        KeyConditionExpression: keyCondition,
        ...(request.filterExpression === undefined ? {} : { FilterExpression: request.filterExpression }),
        ...e.fields(),
        ...(request.limit === undefined ? {} : { Limit: request.limit }),
        ...(request.start === undefined ? {} : { ExclusiveStartKey: request.start }),
        ...(request.consistent ? { ConsistentRead: true } : {}),
      }),
    ),
  );
  const last = out.LastEvaluatedKey?.sk;
  return { items: out.Items ?? [], ...(typeof last === "string" ? { lastEvaluatedSk: last } : {}) };
}

/** Every item of a small key range (a few pages at most), e.g. one alert and its fold slots. */
export async function queryAll(
  ctx: StoreContext,
  request: Omit<QueryRequest, "start" | "limit">,
  report: CallReport,
): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  for (;;) {
    const page = await queryRange(ctx, { ...request, ...(start === undefined ? {} : { start }) }, report);
    items.push(...page.items);
    if (page.lastEvaluatedSk === undefined) return items;
    start = { [request.keyAttribute]: request.keyValue, sk: page.lastEvaluatedSk };
  }
}

const APPLIED = "applied";
const FIRST_SEEN = "firstSeen";
const LAST_SEEN = "lastSeen";

/** One contribution to a counted item: counters to add, a time span to widen, descriptive fields to create. */
export interface CountedWrite {
  key: Key;
  /** Contribution token (keys.ts contributionToken): the item applies each token once. */
  token: string;
  counters: Record<string, number>;
  /** String sets to merge in (empty ones are skipped: DynamoDB has no empty set). */
  sets?: Record<string, readonly string[]>;
  /** Attributes set only if missing: they describe the item and never change once written. */
  init: Item;
  firstSeen: string;
  lastSeen: string;
}

export interface CountedOutcome {
  /** false: the token was already applied (a redelivery); nothing changed. */
  applied: boolean;
}

// Each failed round means another writer widened the span meanwhile, which can only happen a few times.
const MAX_ROUNDS = 16;

/** Whether the item has applied the contribution of `token`. */
export function tokenApplied(item: Item, token: string): boolean {
  const applied = item[APPLIED];
  return applied instanceof Set && applied.has(token);
}

/**
 * Applies one contribution to one item, at most once, in one UpdateItem when deliveries arrive in time order:
 * `ADD` the counters and the token, `SET firstSeen = if_not_exists(…)`, `SET lastSeen`, on condition that the
 * token is new and the stored span does not reach outside the new one (DynamoDB has no MIN/MAX in updates).
 * When that condition fails, a consistent read tells a redelivery (token present: done) from an out-of-order
 * arrival, which is then written with the exact widened span on condition that the span has not moved since
 * (retried if it has). So every outcome is a single atomic write: a crash can lose no part of a contribution.
 */
export async function countedUpdate(
  ctx: StoreContext,
  write: CountedWrite,
  writes: CallReport,
  reads: CallReport,
): Promise<CountedOutcome> {
  let current: Item | undefined;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (round > 0) {
      current = await getItem(ctx, write.key, reads);
      // Already applied: a redelivery, unless one of our own requests may have landed unseen (answer lost).
      if (current !== undefined && tokenApplied(current, write.token)) return { applied: writes.uncertain };
    }
    const e = new Expression();
    const first = e.name(FIRST_SEEN);
    const last = e.name(LAST_SEEN);
    const applied = e.name(APPLIED);
    const fresh = [`NOT contains(${applied}, ${e.value(write.token)})`];
    const sets: string[] = [];
    let condition: string;
    if (current === undefined) {
      const f = e.value(write.firstSeen);
      const l = e.value(write.lastSeen);
      sets.push(`${first} = if_not_exists(${first}, ${f})`, `${last} = ${l}`);
      condition = [
        ...fresh,
        `(attribute_not_exists(${first}) OR ${first} <= ${f})`,
        `(attribute_not_exists(${last}) OR ${last} <= ${l})`,
      ].join(" AND ");
    } else {
      const storedFirst = String(current[FIRST_SEEN] ?? write.firstSeen);
      const storedLast = String(current[LAST_SEEN] ?? write.lastSeen);
      const f = e.value([storedFirst, write.firstSeen].sort()[0]);
      const l = e.value([storedLast, write.lastSeen].sort()[1]);
      sets.push(`${first} = ${f}`, `${last} = ${l}`);
      condition = [`attribute_exists(${e.name("pk")})`, ...fresh, `${first} >= ${f}`, `${last} <= ${l}`].join(
        " AND ",
      );
    }
    for (const [attribute, value] of Object.entries(write.init)) {
      if (value === undefined) continue;
      const n = e.name(attribute);
      sets.push(`${n} = if_not_exists(${n}, ${e.value(value)})`);
    }
    const adds = [`${applied} ${e.value(new Set([write.token]))}`];
    for (const [attribute, amount] of Object.entries(write.counters))
      adds.push(`${e.name(attribute)} ${e.value(amount)}`);
    for (const [attribute, members] of Object.entries(write.sets ?? {})) {
      if (members.length > 0) adds.push(`${e.name(attribute)} ${e.value(new Set(members))}`);
    }
    try {
      await withRetry("UpdateItem", ctx.retry, writes, () =>
        ctx.doc.send(
          new UpdateCommand({
            TableName: ctx.tableName,
            Key: write.key,
            UpdateExpression: `SET ${sets.join(", ")} ADD ${adds.join(", ")}`,
            ConditionExpression: condition,
            ...e.fields(),
          }),
        ),
      );
      return { applied: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
  throw new StoreUnavailableError(
    `item ${write.key.pk} ${write.key.sk} kept changing under ${MAX_ROUNDS} conditional updates; try again`,
  );
}
