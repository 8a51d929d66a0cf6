// Coverage records in the flow store's table (docs/backfill.md): items ("pages") per (cluster, log group, log
// stream, minute), pk `COVER#<cluster>#<group>#<stream>`, sk the minute's ISO start for its first page and
// `<ISO start>#<n>` for page n, each holding claims made on the minute's events as a map keyed by
// contribution. Claims are added under optimistic concurrency on the page's `v`, and a full page is `sealed`
// in the write that fills it, so two writers never both own an event (functions/core/coverage.ts says why).
// Items expire with the flows they protect (TTL `expiresAt`).
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Claim, ClaimSource, CoverageStore, MinuteCoverage, StreamRef } from "../../core/coverage.ts";
import type { IngestSettings } from "../../core/ingest.ts";
import { expiresAt } from "./keys.ts";
import { freshReport, isConditionFailure } from "./requests.ts";
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
  /** Only when true: more of the contribution's claim is on a later page. */
  more?: boolean;
  /** Only when true: stored by a backfill apart from the contribution's other minutes (Claim#apart). */
  apart?: boolean;
  /** What its writer stores with (Claim#settings); optional members only when set. */
  settings?: IngestSettings;
}

interface CoverageItem {
  v: number;
  sk: string;
  claims?: Record<string, StoredClaim>;
  /** The page takes no more claims: claims go on the next page. */
  sealed?: boolean;
}

const PK = TABLE_KEYS.partitionKey;
const DAY_S = 86_400;
/**
 * How long coverage outlives the flows of its minute. DynamoDB deletes expired items in the background, each on
 * its own, "typically within a few days": coverage deleted before its flows would let a backfill count the
 * minute's events into them again. A week makes that unlikely, at the cost of a week's more coverage items.
 */
export const COVERAGE_TTL_MARGIN_S = 7 * DAY_S;
const SK = TABLE_KEYS.sortKey;

export function coveragePartition(ref: StreamRef): string {
  return `COVER#${ref.cluster}#${ref.group}#${ref.stream}`;
}

/** Sort key of a minute's page: the first keeps the minute's ISO start alone, as before pages existed. */
export function coverageSortKey(minute: number, page: number): string {
  const start = new Date(minute).toISOString();
  return page === 0 ? start : `${start}#${String(page).padStart(3, "0")}`;
}

function pageOf(sk: string): { minute: number; page: number } {
  const at = sk.indexOf("#");
  return at < 0
    ? { minute: Date.parse(sk), page: 0 }
    : { minute: Date.parse(sk.slice(0, at)), page: Number(sk.slice(at + 1)) };
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
  if (claim.more === true) stored.more = true;
  if (claim.apart === true) stored.apart = true;
  if (claim.settings !== undefined) {
    const { prefixFormat, scanThreshold, ...set } = claim.settings;
    // The document client refuses undefined members.
    stored.settings = {
      ...set,
      ...(prefixFormat === undefined ? {} : { prefixFormat }),
      ...(scanThreshold === undefined ? {} : { scanThreshold }),
    };
  }
  return stored;
}

export class DynamoCoverageStore implements CoverageStore {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #retentionDays: number;
  readonly #retry: RetryPolicy;

  constructor(options: DynamoCoverageStoreOptions) {
    this.#doc = DynamoDBDocumentClient.from(options.client);
    this.#table = options.tableName;
    this.#retentionDays = options.retentionDays ?? 30;
    if (!(this.#retentionDays > 0) || !Number.isFinite(this.#retentionDays)) {
      throw new Error(`retentionDays must be a positive number, got ${this.#retentionDays}`);
    }
    this.#retry = checkRetryPolicy(options.retry ?? DEFAULT_RETRY);
  }

  /** A request with the retry policy: a throttled coverage step waits rather than failing the payload. */
  #send<T>(what: string, call: () => Promise<T>): Promise<T> {
    return withRetry(what, this.#retry, freshReport(), call);
  }

  async read(ref: StreamRef, fromMinute: number, toMinute: number): Promise<MinuteCoverage[]> {
    const minutes = new Map<number, Map<number, CoverageItem>>();
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
              ":from": coverageSortKey(fromMinute, 0),
              // Past every page of the last minute ("~" sorts after the digits), before the next minute.
              ":to": `${coverageSortKey(toMinute, 0)}#~`,
            },
            // A claim decision on stale data could hand one event to two writers.
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        ),
      );
      for (const raw of page.Items ?? []) {
        const item = raw as CoverageItem;
        const at = pageOf(item.sk);
        const pages = minutes.get(at.minute) ?? new Map<number, CoverageItem>();
        minutes.set(at.minute, pages);
        pages.set(at.page, item);
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);

    const out: MinuteCoverage[] = [];
    for (const [minute, pages] of minutes) {
      // The open page is the first not sealed (or not there yet). The Query reads pages one after the other,
      // not as of one instant, so a page may look absent while a later one is there: claiming on it then fails
      // its condition and the minute is read again.
      let open = 0;
      while (pages.get(open)?.sealed === true) open++;
      const claims: Claim[] = [];
      for (const [page, item] of [...pages].sort(([a], [b]) => a - b)) {
        for (const [contribution, c] of Object.entries(item.claims ?? {})) {
          claims.push({
            contribution,
            source: c.source,
            events: c.events === undefined ? [] : [...c.events],
            recorded: c.recorded,
            count: c.count,
            span: c.span,
            stored: c.stored,
            claimedAt: c.claimedAt,
            page,
            ...(c.more === true ? { more: true } : {}),
            ...(c.apart === true ? { apart: true } : {}),
            ...(c.settings === undefined ? {} : { settings: c.settings }),
          });
        }
      }
      out.push({ minute, version: pages.get(open)?.v ?? 0, claims, page: open });
    }
    return out.sort((a, b) => a.minute - b.minute);
  }

  async addClaim(
    ref: StreamRef,
    minute: number,
    version: number,
    claim: Claim,
    seal = false,
  ): Promise<boolean> {
    const key = { [PK]: coveragePartition(ref), [SK]: coverageSortKey(minute, claim.page ?? 0) };
    if (version === 0) {
      return this.#conditional("PutItem", () =>
        this.#doc.send(
          new PutCommand({
            TableName: this.#table,
            Item: {
              ...key,
              v: 1,
              claims: { [claim.contribution]: toStored(claim) },
              ...(seal ? { sealed: true } : {}),
              // After the flows of its minute (expiresAt), so that coverage does not go before them.
              [TTL_ATTRIBUTE]: expiresAt(minute, this.#retentionDays) + COVERAGE_TTL_MARGIN_S,
            },
            ConditionExpression: "attribute_not_exists(#pk)",
            ExpressionAttributeNames: { "#pk": PK },
          }),
        ),
      );
    }
    return this.#conditional("UpdateItem", () =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: key,
          UpdateExpression: `SET #claims.#c = :claim, #v = :next${seal ? ", #sealed = :true" : ""}`,
          ConditionExpression: "#v = :v",
          ExpressionAttributeNames: {
            "#claims": "claims",
            "#c": claim.contribution,
            "#v": "v",
            ...(seal ? { "#sealed": "sealed" } : {}),
          },
          ExpressionAttributeValues: {
            ":claim": toStored(claim),
            ":v": version,
            ":next": version + 1,
            ...(seal ? { ":true": true } : {}),
          },
        }),
      ),
    );
  }

  async seal(ref: StreamRef, minute: number, page: number, version: number): Promise<boolean> {
    // An absent page has room for any claim: the core never seals one.
    if (version < 1)
      throw new Error(`coverage page ${page} of ${new Date(minute).toISOString()} is not there`);
    return this.#conditional("UpdateItem", () =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { [PK]: coveragePartition(ref), [SK]: coverageSortKey(minute, page) },
          UpdateExpression: "SET #sealed = :true, #v = :next",
          ConditionExpression: "#v = :v",
          ExpressionAttributeNames: { "#sealed": "sealed", "#v": "v" },
          ExpressionAttributeValues: { ":true": true, ":v": version, ":next": version + 1 },
        }),
      ),
    );
  }

  /** A conditional write: false when its condition failed (someone wrote in between), which is not retried. */
  async #conditional(what: string, call: () => Promise<unknown>): Promise<boolean> {
    try {
      await this.#send(what, call);
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async markStored(
    ref: StreamRef,
    minute: number,
    contribution: string,
    pages: readonly number[] = [0],
    apart = false,
  ): Promise<void> {
    for (const page of pages) {
      await this.#send("UpdateItem", () =>
        this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: { [PK]: coveragePartition(ref), [SK]: coverageSortKey(minute, page) },
            UpdateExpression: `SET #claims.#c.#stored = :true${apart ? ", #claims.#c.#apart = :true" : ""}`,
            // Marking a claim that does not exist would be a bug upstream: fail loudly rather than create a stub.
            ConditionExpression: "attribute_exists(#claims.#c)",
            ExpressionAttributeNames: {
              "#claims": "claims",
              "#c": contribution,
              "#stored": "stored",
              ...(apart ? { "#apart": "apart" } : {}),
            },
            ExpressionAttributeValues: { ":true": true },
          }),
        ),
      );
    }
  }
}
