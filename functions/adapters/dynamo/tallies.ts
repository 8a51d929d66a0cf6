// Denial tallies in the flow store's table (docs/flow-store.md, "Denial tallies"): per subject (an internal source,
// or a destination with its protocol and port) and per window of the alert window's length, the set of its
// members' digests. Every node's deliveries add to the same item, so the alert rules count a fan-in or a scan
// spread over log streams. A set's ADD is idempotent: a redelivered payload adds nothing.
//
// Item: pk `TALLY#<cluster>#<subject digest>`, sk `<window start ISO>`, `m` a string set of 12-character member
// digests, TTL a day after the window stops counting. A write adds at most `cap` members, and only while the set
// holds fewer than `cap`: an item never holds 2·cap members, so it stays far below 400 KB (MAX_TALLY_CAP).
// Beside them, a payload's verdict (the subjects its tallies took over the threshold, as digests): pk
// `VERDICT#<cluster>#<contribution token>`, sk `VERDICT`, kept as long as the coverage of its events, so that its
// retries and redeliveries judge alike.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { type DenialTally, MAX_TALLY_CAP, type TallyEntry, type TallyVerdict } from "../../core/ports.ts";
import { COVERAGE_TTL_MARGIN_S } from "./coverage.ts";
import {
  checkCluster,
  contributionToken,
  expiresAt,
  InvalidInputError,
  iso,
  tallyKey,
  tallyMember,
} from "./keys.ts";
import {
  documentClient,
  freshReport,
  getItem,
  isConditionFailure,
  queryAll,
  type StoreContext,
} from "./requests.ts";
import {
  type CallReport,
  checkRetryPolicy,
  DEFAULT_RETRY,
  mapBounded,
  type RetryPolicy,
  withRetry,
} from "./retry.ts";
import { TABLE_KEYS, TTL_ATTRIBUTE } from "./schema.ts";

export interface DynamoDenialTallyOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  tableName: string;
  /** Days the flows are kept: a verdict is kept as long as the coverage of its events. @default 30 */
  retentionDays?: number;
  /** Requests in flight per call. @default 16 */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** Wall clock (epoch ms), for TTLs of old windows (a backfill's). @default Date.now */
  now?: () => number;
}

/** Days a window's item is kept after it stops counting (for payloads of its window and the ones either side). */
const KEPT_DAYS = 1;

function membersOf(value: unknown): ReadonlySet<string> {
  return value instanceof Set ? (value as Set<string>) : new Set();
}

/** A verdict's item: one per contribution, beside its attribution memo's. */
const verdictKey = (cluster: string, contribution: string): { pk: string; sk: string } => ({
  pk: `VERDICT#${checkCluster(cluster)}#${contributionToken(contribution)}`,
  sk: "VERDICT",
});

function verdictOf(value: unknown): TallyVerdict {
  const over = new Set(Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []);
  return { over: (subject) => over.has(tallyMember(subject)) };
}

/** Full windows an instance remembers (DynamoDenialTally#full) before it forgets them all. */
const MAX_REMEMBERED_FULL = 10_000;

export class DynamoDenialTally implements DenialTally {
  readonly #ctx: StoreContext;
  readonly #concurrency: number;
  readonly #now: () => number;
  readonly #retentionDays: number;
  /**
   * Windows found full (`pk`, `sk`): a full set stays full, so no later payload of this container writes it again
   * (a failed conditional write is billed at the item's size, and in an outage every node's payloads come to it).
   */
  readonly #full = new Set<string>();
  /** DynamoDB requests made, for the write figures. */
  readonly report: CallReport = freshReport();

  constructor(options: DynamoDenialTallyOptions) {
    this.#ctx = {
      doc: documentClient(options.client),
      tableName: options.tableName,
      retry: checkRetryPolicy({ ...DEFAULT_RETRY, ...options.retry }),
    };
    this.#concurrency = options.concurrency ?? 16;
    this.#now = options.now ?? Date.now;
    this.#retentionDays = options.retentionDays ?? 30;
  }

  async loadVerdict(cluster: string, contribution: string): Promise<TallyVerdict | undefined> {
    const item = await getItem(this.#ctx, verdictKey(cluster, contribution), this.report);
    return item === undefined ? undefined : verdictOf(item.over);
  }

  async saveVerdict(
    cluster: string,
    contribution: string,
    over: readonly string[],
    atMs: number,
  ): Promise<TallyVerdict> {
    const key = verdictKey(cluster, contribution);
    const digests = [...new Set(over.map(tallyMember))].sort();
    try {
      // A retried request whose first try landed fails its condition and reads its own verdict back.
      await withRetry("PutItem", this.#ctx.retry, this.report, () =>
        this.#ctx.doc.send(
          new PutCommand({
            TableName: this.#ctx.tableName,
            Item: {
              ...key,
              // A list, not a set: DynamoDB has no empty set.
              over: digests,
              [TTL_ATTRIBUTE]: expiresAt(atMs, this.#retentionDays, this.#now()) + COVERAGE_TTL_MARGIN_S,
            },
            ConditionExpression: "attribute_not_exists(#pk)",
            ExpressionAttributeNames: { "#pk": TABLE_KEYS.partitionKey },
          }),
        ),
      );
      return verdictOf(digests);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      // A concurrent run of the contribution (a duplicate delivery) judged first: its verdict is the one.
      const kept = await getItem(this.#ctx, key, this.report);
      return verdictOf(kept?.over);
    }
  }

  async tally(entries: readonly TallyEntry[], options: { windowMs: number; cap: number }): Promise<number[]> {
    const { windowMs, cap } = options;
    if (!Number.isInteger(windowMs) || windowMs < 1) {
      throw new InvalidInputError(`tally windowMs must be a positive integer, got ${windowMs}`);
    }
    if (!Number.isInteger(cap) || cap < 1 || cap > MAX_TALLY_CAP) {
      throw new InvalidInputError(`tally cap must be an integer from 1 to ${MAX_TALLY_CAP}, got ${cap}`);
    }
    for (const e of entries) {
      checkCluster(e.cluster);
      if (e.members.length === 0) throw new InvalidInputError("a tally entry needs at least one member");
      if (!Number.isFinite(e.atMs)) throw new InvalidInputError(`tally atMs must be a time, got ${e.atMs}`);
    }
    return mapBounded(entries, this.#concurrency, (e) => this.#count(e, windowMs, cap));
  }

  async #count(entry: TallyEntry, windowMs: number, cap: number): Promise<number> {
    const start = Math.floor(entry.atMs / windowMs) * windowMs;
    const key = tallyKey(entry.cluster, entry.subject, start);
    // Remembered with its cap: a window full at one threshold is not at a higher one.
    const fullId = `${key.pk}\n${key.sk}\n${cap}`;
    if (this.#full.has(fullId)) return cap;
    // The first `cap` digests in their own order: the same payload adds the same ones on a retry.
    const added = [...new Set(entry.members.map(tallyMember))].sort().slice(0, cap);
    let current: ReadonlySet<string>;
    try {
      const out = await withRetry("UpdateItem", this.#ctx.retry, this.report, () =>
        this.#ctx.doc.send(
          new UpdateCommand({
            TableName: this.#ctx.tableName,
            Key: key,
            UpdateExpression: "ADD #m :m SET #ttl = :ttl",
            ConditionExpression: "attribute_not_exists(#m) OR size(#m) < :cap",
            ExpressionAttributeNames: { "#m": "m", "#ttl": TTL_ATTRIBUTE },
            ExpressionAttributeValues: {
              ":m": new Set(added),
              ":cap": cap,
              // A day after its last neighbour's window ends, or after now for old events (a backfill's, a
              // redrive's), which would otherwise be written already expired and vanish during the run.
              ":ttl": expiresAt(Math.max(start + 2 * windowMs, this.#now()), KEPT_DAYS, this.#now()),
            },
            ReturnValues: "ALL_NEW",
          }),
        ),
      );
      current = membersOf(out.Attributes?.m);
    } catch (error) {
      // Full already (a retry whose first try landed may also find it so): the subject is over its cap.
      if (isConditionFailure(error)) {
        this.#remember(fullId);
        return cap;
      }
      throw error;
    }
    if (current.size >= cap) {
      this.#remember(fullId);
      return current.size;
    }
    // The windows either side: payloads of one moment come from independent streams, in any order, so a window's
    // members count for a payload of the window after it (of the one before it) even when they are stored later.
    const around = await queryAll(
      this.#ctx,
      {
        keyAttribute: "pk",
        keyValue: key.pk,
        lo: iso(start - windowMs),
        hi: iso(start + windowMs),
        consistent: true,
      },
      this.report,
    );
    const union = new Set(current);
    for (const item of around) for (const m of membersOf(item.m)) union.add(m);
    return union.size;
  }

  #remember(fullId: string): void {
    if (this.#full.size >= MAX_REMEMBERED_FULL) this.#full.clear();
    this.#full.add(fullId);
  }
}
