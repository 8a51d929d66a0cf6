// Denial tallies in the flow store's table (docs/flow-store.md, "Denial tallies"): per subject (an internal source,
// or a destination with its protocol and port) and per window of the alert window's length, the set of its
// members' digests. Every node's deliveries add to the same item, so the alert rules count a fan-in or a scan
// spread over log streams. A set's ADD is idempotent: a redelivered payload adds nothing.
//
// Item: pk `TALLY#<cluster>#<subject digest>`, sk `<window start ISO>`, `m` a string set of 12-character member
// digests, TTL a day after the window stops counting. A write adds at most `cap` members, and only while the set
// holds fewer than `cap`: an item never holds 2·cap members, so it stays far below 400 KB (MAX_TALLY_CAP).
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { type DenialTally, MAX_TALLY_CAP, type TallyEntry } from "../../core/ports.ts";
import { checkCluster, expiresAt, InvalidInputError, tallyKey, tallyMember } from "./keys.ts";
import { documentClient, freshReport, getItem, isConditionFailure, type StoreContext } from "./requests.ts";
import {
  type CallReport,
  checkRetryPolicy,
  DEFAULT_RETRY,
  mapBounded,
  type RetryPolicy,
  withRetry,
} from "./retry.ts";
import { TTL_ATTRIBUTE } from "./schema.ts";

export interface DynamoDenialTallyOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  tableName: string;
  /** Requests in flight per call. @default 16 */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** Wall clock (epoch ms), for TTLs of old windows (a backfill's). @default Date.now */
  now?: () => number;
}

/** Days a window's item is kept after it stops counting (it counts for two windows). */
const KEPT_DAYS = 1;

function membersOf(value: unknown): ReadonlySet<string> {
  return value instanceof Set ? (value as Set<string>) : new Set();
}

export class DynamoDenialTally implements DenialTally {
  readonly #ctx: StoreContext;
  readonly #concurrency: number;
  readonly #now: () => number;
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
    // The first `cap` digests in their own order: the same payload adds the same ones on a retry.
    const added = [...new Set(entry.members.map(tallyMember))].sort().slice(0, cap);
    let current: ReadonlySet<string>;
    try {
      const out = await withRetry("UpdateItem", this.#ctx.retry, this.report, () =>
        this.#ctx.doc.send(
          new UpdateCommand({
            TableName: this.#ctx.tableName,
            Key: tallyKey(entry.cluster, entry.subject, start),
            UpdateExpression: "ADD #m :m SET #ttl = :ttl",
            ConditionExpression: "attribute_not_exists(#m) OR size(#m) < :cap",
            ExpressionAttributeNames: { "#m": "m", "#ttl": TTL_ATTRIBUTE },
            ExpressionAttributeValues: {
              ":m": new Set(added),
              ":cap": cap,
              ":ttl": expiresAt(start + 2 * windowMs, KEPT_DAYS, this.#now()),
            },
            ReturnValues: "ALL_NEW",
          }),
        ),
      );
      current = membersOf(out.Attributes?.m);
    } catch (error) {
      // Full already (a retry whose first try landed may also find it so): the subject is over its cap.
      if (isConditionFailure(error)) return cap;
      throw error;
    }
    if (current.size >= cap) return current.size;
    const before = await getItem(
      this.#ctx,
      tallyKey(entry.cluster, entry.subject, start - windowMs),
      this.report,
    );
    const union = new Set(current);
    for (const m of membersOf(before?.m)) union.add(m);
    return union.size;
  }
}
