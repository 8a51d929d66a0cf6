// Remembered IP holders (docs/flow-store.md, "Holder history"): `IP#<cluster>#<ip>` / `<validFrom, 15-digit
// epoch ms>#<uid or name>`, so "who held this IP at time t" is one Query reading backwards from t.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { HolderHistory } from "../../core/ports.ts";
import type { Holder } from "../../core/types.ts";
import { num } from "./items.ts";
import { checkCluster, expiresAt, historyPk, historySk, InvalidInputError, paddedEpoch } from "./keys.ts";
import { documentClient, Expression, freshReport, type Item, type StoreContext } from "./requests.ts";
import { checkRetryPolicy, DEFAULT_RETRY, mapBounded, type RetryPolicy, withRetry } from "./retry.ts";

export interface DynamoHolderHistoryOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  tableName: string;
  /** Days a holder is remembered after it ended (or after it was last seen alive). @default 30 */
  retentionDays?: number;
  /** Requests in flight per call. @default 16 */
  concurrency?: number;
  /** Most holders `holdersOf` returns. @default 10 */
  maxHolders?: number;
  retry?: Partial<RetryPolicy>;
  /** Wall clock (epoch ms), for the TTL of holders still alive. @default Date.now */
  now?: () => number;
}

/** Most pages one holdersOf reads (of maxHolders each): a batch's span of a very busy address stops there. */
const MAX_PAGES = 10;

const HOLDER_KINDS = new Set<Holder["kind"]>(["pod", "node", "service"]);

function checkHolder(ip: string, h: Holder): void {
  if (ip.length === 0 || ip.includes("#")) {
    throw new InvalidInputError(`holder IP must be non-empty without "#", got ${JSON.stringify(ip)}`);
  }
  if (!Number.isSafeInteger(h.validFrom) || h.validFrom < 0) {
    throw new InvalidInputError(`holder validFrom must be epoch ms ≥ 0, got ${h.validFrom}`);
  }
  if (h.validTo !== null && (!Number.isSafeInteger(h.validTo) || h.validTo < h.validFrom)) {
    throw new InvalidInputError(`holder validTo must be epoch ms ≥ validFrom, got ${h.validTo}`);
  }
  if (!HOLDER_KINDS.has(h.kind)) {
    throw new InvalidInputError(`holder kind must be pod, node or service, got ${h.kind}`);
  }
}

function holderOf(item: Item): Holder {
  const w = item.workload as Item | null | undefined;
  const holder: Holder = {
    kind: String(item.kind) as Holder["kind"],
    namespace: item.namespace == null ? null : String(item.namespace),
    name: String(item.name),
    workload: w == null ? null : { kind: String(w.kind), name: String(w.name) },
    node: item.node == null ? null : String(item.node),
    uid: item.uid == null ? null : String(item.uid),
    validFrom: num(item.validFrom),
    validTo: item.validTo == null ? null : num(item.validTo),
  };
  if (item.seenAt != null) holder.seenAt = num(item.seenAt);
  if (item.labels != null) {
    holder.labels = Object.fromEntries(Object.entries(item.labels as Item).map(([k, v]) => [k, String(v)]));
  }
  return holder;
}

export class DynamoHolderHistory implements HolderHistory {
  readonly #ctx: StoreContext;
  readonly #retentionDays: number;
  readonly #concurrency: number;
  readonly #maxHolders: number;
  readonly #now: () => number;

  constructor(options: DynamoHolderHistoryOptions) {
    this.#retentionDays = options.retentionDays ?? 30;
    this.#concurrency = options.concurrency ?? 16;
    this.#maxHolders = options.maxHolders ?? 10;
    if (!(this.#retentionDays > 0) || !Number.isFinite(this.#retentionDays)) {
      throw new Error(`retentionDays must be positive, got ${this.#retentionDays}`);
    }
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new Error(`concurrency must be an integer ≥ 1, got ${this.#concurrency}`);
    }
    if (!Number.isInteger(this.#maxHolders) || this.#maxHolders < 1) {
      throw new Error(`maxHolders must be an integer ≥ 1, got ${this.#maxHolders}`);
    }
    this.#now = options.now ?? Date.now;
    this.#ctx = {
      doc: documentClient(options.client),
      tableName: options.tableName,
      retry: checkRetryPolicy({ ...DEFAULT_RETRY, ...options.retry }),
    };
  }

  /**
   * One UpdateItem per holder, idempotent: the holder's fields are set as given, and `validTo` only when the
   * holder is known to have ended — a later sighting from a stale list never brings an ended holder back.
   * (A batch write would replace whole items and could do exactly that.)
   */
  async remember(cluster: string, entries: readonly { ip: string; holder: Holder }[]): Promise<void> {
    checkCluster(cluster);
    const unique = new Map<string, { ip: string; holder: Holder }>();
    for (const entry of entries) {
      checkHolder(entry.ip, entry.holder);
      const sk = historySk(entry.holder.validFrom, entry.holder.uid ?? entry.holder.name);
      const key = `${entry.ip}\n${sk}`;
      const seen = unique.get(key);
      // Of two sightings in one call, the ended one wins.
      if (seen === undefined || seen.holder.validTo === null) unique.set(key, entry);
    }
    const now = this.#now();
    await mapBounded([...unique.values()], this.#concurrency, ({ ip, holder }) => {
      const e = new Expression();
      const fields: Item = {
        kind: holder.kind,
        namespace: holder.namespace,
        name: holder.name,
        workload:
          holder.workload === null ? null : { kind: holder.workload.kind, name: holder.workload.name },
        node: holder.node,
        uid: holder.uid,
        validFrom: holder.validFrom,
        expiresAt: expiresAt(holder.validTo ?? now, this.#retentionDays, now),
      };
      if (holder.validTo !== null) fields.validTo = holder.validTo;
      if (holder.labels !== undefined) fields.labels = { ...holder.labels };
      if (holder.seenAt !== undefined) fields.seenAt = holder.seenAt;
      const sets = Object.entries(fields).map(([name, value]) => `${e.name(name)} = ${e.value(value)}`);
      return withRetry("UpdateItem", this.#ctx.retry, freshReport(), () =>
        this.#ctx.doc.send(
          new UpdateCommand({
            TableName: this.#ctx.tableName,
            Key: { pk: historyPk(cluster, ip), sk: historySk(holder.validFrom, holder.uid ?? holder.name) },
            UpdateExpression: `SET ${sets.join(", ")}`,
            ...e.fields(),
          }),
        ),
      );
    });
  }

  /**
   * Holders of `ip` created at or before `at`, newest first: every one created after `since` (default `at`), up to
   * MAX_PAGES pages, and at least the page's worth created at or before it. A batch asks once for its earliest and
   * latest lines: a page read back from the latest alone could end before the earliest's holder.
   */
  async holdersOf(cluster: string, ip: string, at: number, since: number = at): Promise<Holder[]> {
    checkCluster(cluster);
    if (!Number.isFinite(at) || !Number.isFinite(since)) {
      throw new InvalidInputError(`holdersOf needs finite times, got ${at} and ${since}`);
    }
    if (at < 0) return [];
    const e = new Expression();
    // `$` sorts after `#`: every holder whose validFrom ≤ at, whatever its identity suffix.
    const condition = `${e.name("pk")} = ${e.value(historyPk(cluster, ip))} AND ${e.name("sk")} < ${e.value(`${paddedEpoch(Math.floor(at))}$`)}`;
    const holders: Holder[] = [];
    let start: Record<string, unknown> | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const from = start;
      const out = await withRetry("Query", this.#ctx.retry, freshReport(), () =>
        this.#ctx.doc.send(
          new QueryCommand({
            TableName: this.#ctx.tableName,
            KeyConditionExpression: condition,
            ScanIndexForward: false,
            Limit: this.#maxHolders,
            ExclusiveStartKey: from,
            ...e.fields(),
          }),
        ),
      );
      for (const item of out.Items ?? []) holders.push(holderOf(item));
      start = out.LastEvaluatedKey;
      const oldest = holders.at(-1);
      if (start === undefined || oldest === undefined || oldest.validFrom <= since) break;
    }
    return holders;
  }
}
