// Alert windows (docs/flow-store.md, "Alerts"). Per alert key, a state item `ALERTKEY#<cluster>#<digest>` /
// `STATE` names the open window and up to KEPT_WINDOWS before it. A candidate whose first hit is at or after
// the window's end opens a new one: a conditional write of the state (it must still name the window that was
// read), then the alert record `ALERTS#<cluster>#<day>` / `<openedAt>#<digest>` with delivery "pending". Other candidates
// fold their hits into a fold slot of the window, one slot per stretch of the window (by event time), so that the set
// of applied contributions each item keeps stays bounded however long a storm lasts; a slot is spread over
// FOLD_SHARDS items by contribution, `<openedAt>#<digest>#<shard>#<slot>`, so that no item takes every node's folds.
// A record and its slots are adjacent: one Query reads an alert whole. The call whose state
// write opened a window reports its alert as opened (or the retry that writes the record that call never
// wrote); a retried or redelivered payload after that does not, nor does a delivery handing out a pending alert.
import { createHash, randomUUID } from "node:crypto";
import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { unionNamespaces } from "../../core/alert-rules.ts";
import { EARLIEST_MS } from "../../core/instant.ts";
import {
  type AlertApplyResult,
  type AlertOptions,
  type AlertQuery,
  type HeldAlert,
  MAX_ALERT_WINDOW_MS,
  type Page,
} from "../../core/ports.ts";
import {
  type AlertCandidate,
  type AlertDelivery,
  type AlertNamespaces,
  type AlertRecord,
  type Direction,
  type HitSpan,
  MAX_ALERT_NAMESPACES,
} from "../../core/types.ts";
import { decodeCursor, encodeCursor, fingerprint, InvalidCursorError } from "./cursor.ts";
import { checkLimit } from "./flow-query.ts";
import {
  alertKeyAttribute,
  alertKeyOf,
  endpointAttribute,
  endpointOf,
  num,
  policyAttribute,
  policyOf,
} from "./items.ts";
import {
  alertDaysPartition,
  alertKeyDigest,
  alertPartition,
  alertRecordKey,
  alertSkOf,
  alertStateKey,
  canonicalMs,
  checkCluster,
  dayOf,
  expiresAt,
  FOLD_SHARDS,
  foldClaimKey,
  foldShardOf,
  foldSlotSk,
  InvalidInputError,
  iso,
  nextDay,
  normalizeInstant,
  timeRange,
} from "./keys.ts";
import { listMarkers, type MarkedPeriods, markAlertDay } from "./markers.ts";
import {
  countedUpdate,
  Expression,
  freshReport,
  getItem,
  type Item,
  isConditionFailure,
  queryAll,
  queryRange,
  type StoreContext,
  tokenApplied,
} from "./requests.ts";
import { type CallReport, mapBounded, StoreUnavailableError, withRetry } from "./retry.ts";

export interface AlertContext extends StoreContext {
  retentionDays: number;
  concurrency: number;
  /** A pending alert opened by another delivery is handed out for delivery only this long after it opened. */
  pendingRedeliveryAfterMs: number;
  /** Tokens a fold slot's shard keeps; folds beyond are claimed on items of their own (spillFold). */
  maxSlotTokens: number;
  /** The hour and day markers this store has written (markers.ts). */
  marked: MarkedPeriods;
  now: () => number;
}

/**
 * A shard of 32 tokens is under 1 KB: a fold costs 1 WCU, and an alert's record and its 16 slots of 16 shards
 * (8,192 deliveries, about 200 KB) stay far below the 1 MB a Query reads (an alert is read whole).
 */
export const DEFAULT_MAX_SLOT_TOKENS = 32;

/** At most this many fold slots per window: bounds the items one alert is read from. */
const MAX_SLOTS = 16;
const MIN_SLOT_MS = 60_000;
/** Items of one alert: its record and its slots' shards. */
const MAX_GROUP_ITEMS = MAX_SLOTS * FOLD_SHARDS + 1;
/**
 * Windows a key's state keeps besides the open one: where late hits and retried payloads land. Sixteen windows
 * are at least four hours of event time at the default 15-minute window.
 */
export const KEPT_WINDOWS = 16;

interface Window {
  openedAt: string;
  windowEnd: string;
  alertPk: string;
  alertSk: string;
  /** Token of the contribution that opened it: only that one writes the record's hits. */
  openedBy: string;
  foldedBefore: number;
  /**
   * Of a kept earlier window: who held the lease on handing its alert out when it closed, so that holder's retry
   * still delivers it (a payload whose later hits open the next window closes the one it took the lease on).
   */
  leaseBy?: string;
}

interface State extends Window {
  delivery: AlertDelivery;
  /** Wall-clock ms when the window was opened (event times can be old: backfill, redrive). */
  createdAt: number;
  /** The windows before the open one, newest first, at most KEPT_WINDOWS. */
  earlier: Window[];
  /**
   * The lease on handing out the open window's pending alert (takeHandOut): the run that holds it (a nonce of its
   * applyAlerts call: two runs of one contribution at once are told apart), since when, and its contribution's token
   * (kept when the window closes). Undefined when nobody took it: on older items, and when the opener does not deliver.
   */
  leaseRun: string | undefined;
  leaseAt: number | undefined;
  leaseBy: string | undefined;
}

function windowOf(value: unknown): Window | null {
  if (value === null || value === undefined || typeof value !== "object") return null;
  const w = value as Item;
  return {
    openedAt: String(w.openedAt),
    windowEnd: String(w.windowEnd),
    alertPk: String(w.alertPk),
    alertSk: String(w.alertSk),
    openedBy: String(w.openedBy),
    foldedBefore: num(w.foldedBefore ?? 0),
  };
}

/** A kept earlier window: stored without its record's key, which follows from the key and its opening. */
function keptWindowOf(value: unknown, cluster: string, keyDigest: string): Window | null {
  if (value === null || value === undefined || typeof value !== "object") return null;
  const w = value as Item;
  const openedAt = String(w.openedAt);
  const record = alertRecordKey(cluster, openedAt, keyDigest);
  return {
    openedAt,
    windowEnd: String(w.windowEnd),
    alertPk: record.pk,
    alertSk: record.sk,
    openedBy: String(w.openedBy),
    foldedBefore: num(w.foldedBefore ?? 0),
    ...(w.leaseBy === undefined ? {} : { leaseBy: String(w.leaseBy) }),
  };
}

function stateOf(item: Item | undefined): State | undefined {
  const w = windowOf(item);
  if (item === undefined || w === null) return undefined;
  const cluster = String(item.cluster);
  const keyDigest = String(item.keyDigest);
  const earlier: Window[] = [];
  if (Array.isArray(item.earlier)) {
    for (const kept of item.earlier) {
      const window = keptWindowOf(kept, cluster, keyDigest);
      if (window !== null) earlier.push(window);
    }
  } else {
    // A state written before windows were kept in a list names only the previous one.
    const prev = windowOf(item.prev);
    if (prev !== null) earlier.push(prev);
  }
  return {
    ...w,
    delivery: deliveryOf(item.delivery),
    createdAt: num(item.createdAt ?? 0),
    earlier,
    leaseRun: item.leaseRun === undefined ? undefined : String(item.leaseRun),
    leaseAt: item.leaseAt === undefined ? undefined : num(item.leaseAt),
    leaseBy: item.leaseBy === undefined ? undefined : String(item.leaseBy),
  };
}

const windowAttribute = (w: Window): Item => ({
  openedAt: w.openedAt,
  windowEnd: w.windowEnd,
  alertPk: w.alertPk,
  alertSk: w.alertSk,
  openedBy: w.openedBy,
  foldedBefore: w.foldedBefore,
});

const keptWindowAttribute = (w: Window): Item => ({
  openedAt: w.openedAt,
  windowEnd: w.windowEnd,
  openedBy: w.openedBy,
  foldedBefore: w.foldedBefore,
  ...(w.leaseBy === undefined ? {} : { leaseBy: w.leaseBy }),
});

/**
 * The window a candidate's hits belong to, among a key's windows newest opened first (the open one first): the first
 * opened that holds its first hit, else the earliest in event time after that hit (whose slot 0 takes hits earlier
 * than the window); undefined when there is neither, or that window opens at or after `aheadFrom`: the hit then
 * opens a window of its own. A window stamped ahead of the clock (a line from year 9999 replayed, say) would
 * otherwise take every real hit until its time came, and no alert would open for the key. A window opens only for a
 * hit no window holds and none before `aheadFrom` follows, and `aheadFrom` only moves on with the clock, so the answer
 * never changes once given: a retried payload lands where it landed the first time, as long as that window is still
 * kept. Windows opened before `aheadFrom` follow one another in event time and never overlap.
 */
export function windowFor(
  firstSeen: string,
  windows: readonly Window[],
  aheadFrom: string,
): Window | undefined {
  let holding: Window | undefined;
  let after: Window | undefined;
  for (const w of windows) {
    if (w.openedAt > firstSeen) {
      if (after === undefined || w.openedAt < after.openedAt) after = w;
    } else if (firstSeen < w.windowEnd) holding = w;
  }
  if (holding !== undefined) return holding;
  return after !== undefined && after.openedAt < aheadFrom ? after : undefined;
}

/** One contribution's hits, folded into its shard of a fold slot. */
interface Fold {
  key: { pk: string; sk: string };
  token: string;
  hits: number;
  /** The slot's TTL: its window's. */
  expiresAt: number;
  firstSeen: string;
  lastSeen: string;
}

/**
 * Folds a contribution into its shard of a fold slot, at most once: one UpdateItem that adds the hits and the token on
 * condition only that the token is new and the shard has room for it — never on the shard's span, which the other
 * deliveries folding at the same time move, so they never refuse one another. The span is widened after, by
 * idempotent writes and only where the shard (as the write returns it) does not cover the fold's: a crash in between
 * leaves it narrower, and the retry, which finds its token, widens it then. "full": the shard has no room, nothing
 * changed (spillFold claims the fold elsewhere).
 */
async function foldInto(ctx: AlertContext, fold: Fold, reads: CallReport): Promise<"folded" | "full"> {
  // Hits come mostly in time order, so the first try also moves the shard's end to the fold's, on condition that it
  // is not further out already: one write for the usual fold. Refused for that alone (a later fold landed first), the
  // second try leaves the end as it is: no round depends on another fold's span, so folds at once never run out of
  // rounds.
  let stored = await tryFold(ctx, fold, true);
  if (stored === "refused") {
    const current = await getItem(ctx, fold.key, reads);
    if (current !== undefined && tokenApplied(current, fold.token)) stored = current;
    else if (!hasRoom(ctx, current)) return "full";
    else stored = await tryFold(ctx, fold, false);
  }
  if (stored === "refused") {
    // Refused again: the token is there (a redelivery, or this call's own write whose answer was lost) or the shard
    // filled meanwhile, and either stays so.
    const current = await getItem(ctx, fold.key, reads);
    if (current === undefined || !tokenApplied(current, fold.token)) return "full";
    stored = current;
  }
  await widenSpan(ctx, fold, stored);
  return "folded";
}

/** Whether a shard as read has room for one more token (it may not exist yet). */
function hasRoom(ctx: AlertContext, shard: Item | undefined): boolean {
  const applied = shard?.applied;
  return !(applied instanceof Set) || applied.size < ctx.maxSlotTokens;
}

/**
 * One fold write: `ADD` the hits and the token, `SET` the span's ends where there are none (and, with `moveEnd`,
 * the last end to the fold's where it is not further out), on condition that the token is new and the shard has
 * room. The shard as stored after it (its span, at no cost), or "refused".
 */
async function tryFold(
  ctx: AlertContext,
  fold: Fold,
  moveEnd: boolean,
): Promise<Item | undefined | "refused"> {
  const e = new Expression();
  const applied = e.name("applied");
  const first = e.name("firstSeen");
  const last = e.name("lastSeen");
  const expires = e.name("expiresAt");
  const lastSeen = e.value(fold.lastSeen);
  const update =
    `SET ${first} = if_not_exists(${first}, ${e.value(fold.firstSeen)}), ` +
    `${last} = ${moveEnd ? lastSeen : `if_not_exists(${last}, ${lastSeen})`}, ` +
    `${expires} = if_not_exists(${expires}, ${e.value(fold.expiresAt)}) ` +
    `ADD ${e.name("hits")} ${e.value(fold.hits)}, ${applied} ${e.value(new Set([fold.token]))}`;
  const condition =
    `NOT contains(${applied}, ${e.value(fold.token)}) AND ` +
    `(attribute_not_exists(${applied}) OR size(${applied}) < ${e.value(ctx.maxSlotTokens)})` +
    (moveEnd ? ` AND (attribute_not_exists(${last}) OR ${last} <= ${lastSeen})` : "");
  try {
    const out = await withRetry("UpdateItem", ctx.retry, freshReport(), () =>
      ctx.doc.send(
        new UpdateCommand({
          TableName: ctx.tableName,
          Key: fold.key,
          UpdateExpression: update,
          ConditionExpression: condition,
          ReturnValues: "UPDATED_NEW",
          ...e.fields(),
        }),
      ),
    );
    return out.Attributes;
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    return "refused";
  }
}

/**
 * Folds into a shard whose applied set is full: the contribution is claimed on an item of its own (a conditional
 * PutItem), then its hits are added to the shard by one `ADD`, which carries no token to refuse a repeat and so is
 * never sent again once it may have been applied. A redelivery finds its claim and adds nothing. The claim carries
 * a nonce of this call: a claim whose answer was lost is sent again, and when that finds the claim in place, it is
 * read back, and the call goes on with the `ADD` if the claim is its own. At most once, where a shard with room
 * counts exactly once: an `ADD` that failed or may have, or a crash between the two, lose that delivery's hits
 * from the alert's count (the payload fails and is retried, and its retry finds the claim); none counts them twice.
 */
async function spillFold(ctx: AlertContext, cluster: string, fold: Fold): Promise<void> {
  const claimKey = foldClaimKey(cluster, fold.token, fold.key.sk);
  const nonce = randomUUID();
  try {
    await withRetry("PutItem", ctx.retry, freshReport(), () =>
      ctx.doc.send(
        new PutCommand({
          TableName: ctx.tableName,
          Item: { ...claimKey, expiresAt: fold.expiresAt, claimedBy: nonce },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      ),
    );
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    // Claimed already: by a redelivery, or by this call's own first try, whose answer was lost.
    const claim = await getItem(ctx, claimKey, freshReport());
    if (claim?.claimedBy !== nonce) return;
  }
  // Expressions are built once: each try sends the same request (a placeholder made per try would be unused).
  const e = new Expression();
  const add = `ADD ${e.name("hits")} ${e.value(fold.hits)}`;
  const exists = `attribute_exists(${e.name("pk")})`;
  const out = await withRetry(
    "UpdateItem",
    ctx.retry,
    freshReport(),
    () =>
      ctx.doc.send(
        new UpdateCommand({
          TableName: ctx.tableName,
          Key: fold.key,
          UpdateExpression: add,
          ConditionExpression: exists,
          ReturnValues: "ALL_NEW",
          ...e.fields(),
        }),
      ),
    { resendUnsure: false },
  );
  await widenSpan(ctx, fold, out.Attributes);
}

/**
 * Widens a shard's span to take the fold's, where `stored` (the shard as last seen) does not: `SET` the end on
 * condition that it is further out, so each write may be repeated and any order of them ends at the extremes.
 */
async function widenSpan(ctx: AlertContext, fold: Fold, stored: Item | undefined): Promise<void> {
  const ends = [
    { attribute: "firstSeen", value: fold.firstSeen, direction: "<" },
    { attribute: "lastSeen", value: fold.lastSeen, direction: ">" },
  ] as const;
  for (const { attribute, value, direction } of ends) {
    const seen = stored?.[attribute];
    if (typeof seen === "string" && (direction === "<" ? seen <= value : seen >= value)) continue;
    const e = new Expression();
    const name = e.name(attribute);
    const v = e.value(value);
    try {
      await withRetry("UpdateItem", ctx.retry, freshReport(), () =>
        ctx.doc.send(
          new UpdateCommand({
            TableName: ctx.tableName,
            Key: fold.key,
            UpdateExpression: `SET ${name} = ${v}`,
            ConditionExpression: `attribute_not_exists(${name}) OR ${v} ${direction} ${name}`,
            ...e.fields(),
          }),
        ),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
}

/** Fold slot of an event time: stretches of at least a minute, at most MAX_SLOTS per window; late hits go to 0. */
function slotOf(atMs: number, w: Window): number {
  const opened = Date.parse(w.openedAt);
  const length = Math.max(1, Date.parse(w.windowEnd) - opened);
  const slotMs = Math.max(MIN_SLOT_MS, Math.ceil(length / MAX_SLOTS));
  const last = Math.min(MAX_SLOTS - 1, Math.floor((length - 1) / slotMs));
  return Math.min(last, Math.max(0, Math.floor((atMs - opened) / slotMs)));
}

export function alertId(cluster: string, keyDigest: string, openedAt: string): string {
  return createHash("sha256")
    .update(`${cluster}\n${keyDigest}\n${openedAt}`)
    .digest("base64url")
    .slice(0, 22);
}

/** Builds one AlertRecord from its record item and fold slots; undefined for slots whose record is missing. */
function alertOf(group: readonly Item[]): AlertRecord | undefined {
  const record = group.find((item) => String(item.sk) === alertSkOf(String(item.sk)));
  if (record === undefined) return undefined;
  let count = 0;
  let firstSeen = String(record.firstSeen);
  let lastSeen = String(record.lastSeen);
  for (const item of group) {
    count += num(item.hits ?? 0);
    if (String(item.firstSeen) < firstSeen) firstSeen = String(item.firstSeen);
    if (String(item.lastSeen) > lastSeen) lastSeen = String(item.lastSeen);
  }
  const key = alertKeyOf(record.key);
  return {
    id: String(record.id),
    cluster: String(record.cluster),
    key,
    src: endpointOf(record.src),
    dst: endpointOf(record.dst),
    protocol: key.protocol,
    dstPort: key.dstPort,
    direction: String(record.direction) as Direction,
    reporter: String(record.reporter),
    policy: policyOf(record.policy),
    severity: record.severity === "low" ? "low" : "high",
    reason: String(record.reason),
    count,
    foldedBefore: num(record.foldedBefore ?? 0),
    openedAt: String(record.openedAt),
    windowEnd: String(record.windowEnd),
    firstSeen,
    lastSeen,
    delivery: deliveryOf(record.delivery),
    ...namespacesOf(record.namespaces),
  };
}

/** A record's namespaces (AlertNamespaces), when it has them in their shape. */
function namespacesOf(value: unknown): { namespaces?: AlertNamespaces } {
  const names = (v: unknown): v is (string | null)[] =>
    Array.isArray(v) && v.every((n) => n === null || typeof n === "string");
  const n = value as { src?: unknown; dst?: unknown } | null | undefined;
  return n !== null && typeof n === "object" && names(n.src) && names(n.dst)
    ? { namespaces: { src: n.src, dst: n.dst } }
    : {};
}

/** Splits items in sort key order into alerts (record + slots). */
function groups(items: readonly Item[]): Item[][] {
  const out: Item[][] = [];
  let current: Item[] = [];
  let currentSk: string | undefined;
  for (const item of items) {
    const sk = alertSkOf(String(item.sk));
    if (sk !== currentSk && current.length > 0) {
      out.push(current);
      current = [];
    }
    currentSk = sk;
    current.push(item);
  }
  if (current.length > 0) out.push(current);
  return out;
}

async function readAlert(ctx: AlertContext, w: Window, reads: CallReport): Promise<AlertRecord | undefined> {
  const items = await queryAll(
    ctx,
    { keyAttribute: "pk", keyValue: w.alertPk, lo: w.alertSk, hi: `${w.alertSk}#~`, consistent: true },
    reads,
  );
  return alertOf(items);
}

/** The window's alert while it is pending: undefined once sent (or summarized), or when it has no record. */
async function pendingAlert(
  ctx: AlertContext,
  w: Window,
  reads: CallReport,
): Promise<AlertRecord | undefined> {
  const alert = await readAlert(ctx, w, reads);
  return alert?.delivery === "pending" ? alert : undefined;
}

/**
 * The hits of an earlier window's alert that no message about it told: those counted beyond what its e-mail (or the
 * summary standing for it) said, all of them while it is unsent. Not the hits folded in after its opening: a fold
 * landing before its opener read it, or an alert handed out late after a failed publish, was in its e-mail.
 */
async function untoldHits(ctx: AlertContext, w: Window, reads: CallReport): Promise<number> {
  const items = await queryAll(
    ctx,
    { keyAttribute: "pk", keyValue: w.alertPk, lo: w.alertSk, hi: `${w.alertSk}#~`, consistent: true },
    reads,
  );
  const total = items.reduce((sum, item) => sum + num(item.hits ?? 0), 0);
  return total - toldHits(items.find((item) => String(item.sk) === w.alertSk));
}

/** How many hits the messages about an alert told, from its record: none while it is pending (or has no record). */
function toldHits(record: Item | undefined): number {
  if (record === undefined || deliveryOf(record.delivery) === "pending") return 0;
  const counts = record.sentCounts;
  // Marked by a version that kept no count: its opening's hits, all that version took to be told.
  if (!(counts instanceof Set)) return num(record.hits ?? 0);
  return Math.max(...[...counts].map(num));
}

interface Prepared {
  candidate: AlertCandidate;
  cluster: string;
  keyDigest: string;
  firstMs: number;
  /** When its hits happened, by first hit: split among the windows that hold them (applyOne). */
  spans: HitSpan[];
}

function checkedSpans(c: AlertCandidate): HitSpan[] {
  const spans = c.spans ?? [{ firstSeen: c.firstSeen, lastSeen: c.lastSeen, hits: c.hits }];
  let hits = 0;
  for (const span of spans) {
    canonicalMs(span.firstSeen, "alert candidate span firstSeen");
    canonicalMs(span.lastSeen, "alert candidate span lastSeen");
    if (!Number.isInteger(span.hits) || span.hits < 0 || span.lastSeen < span.firstSeen) {
      throw new InvalidInputError(`alert candidate span ${JSON.stringify(span)} is not a span of hits`);
    }
    if (span.firstSeen < c.firstSeen || span.lastSeen > c.lastSeen) {
      throw new InvalidInputError(`alert candidate span ${JSON.stringify(span)} is outside the candidate's`);
    }
    hits += span.hits;
  }
  if (hits !== c.hits) {
    throw new InvalidInputError(`alert candidate spans hold ${hits} hits, the candidate ${c.hits}`);
  }
  return [...spans];
}

function checkNamespaces(c: AlertCandidate): void {
  if (c.namespaces === undefined) return;
  for (const list of [c.namespaces.src, c.namespaces.dst]) {
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      list.length > MAX_ALERT_NAMESPACES ||
      !list.every((n) => n === null || (typeof n === "string" && n.length > 0))
    ) {
      throw new InvalidInputError(
        `alert candidate namespaces ${JSON.stringify(c.namespaces)} are not lists of namespaces`,
      );
    }
  }
}

function prepare(candidates: readonly AlertCandidate[]): Prepared[] {
  // One payload may name a key twice (e.g. two rules); its hits are one contribution to that key.
  const byKey = new Map<string, Prepared>();
  for (const c of candidates) {
    const cluster = checkCluster(c.key.cluster);
    const firstMs = canonicalMs(c.firstSeen, "alert candidate firstSeen");
    canonicalMs(c.lastSeen, "alert candidate lastSeen");
    if (!Number.isInteger(c.hits) || c.hits < 0) {
      throw new InvalidInputError(`alert candidate hits must be an integer ≥ 0, got ${c.hits}`);
    }
    const spans = checkedSpans(c);
    checkNamespaces(c);
    const keyDigest = alertKeyDigest(c.key);
    const seen = byKey.get(keyDigest);
    if (seen === undefined) {
      byKey.set(keyDigest, { candidate: { ...c }, cluster, keyDigest, firstMs, spans });
      continue;
    }
    const merged = seen.candidate;
    merged.hits += c.hits;
    seen.spans.push(...spans);
    if (c.firstSeen < merged.firstSeen) {
      merged.firstSeen = c.firstSeen;
      seen.firstMs = firstMs;
    }
    if (c.lastSeen > merged.lastSeen) merged.lastSeen = c.lastSeen;
    if (c.severity === "high") merged.severity = "high";
    if (c.namespaces !== undefined) {
      merged.namespaces =
        merged.namespaces === undefined
          ? c.namespaces
          : unionNamespaces(merged.namespaces, c.namespaces, merged);
    }
  }
  for (const p of byKey.values())
    p.spans.sort((a, b) => (a.firstSeen < b.firstSeen ? -1 : a.firstSeen > b.firstSeen ? 1 : 0));
  return [...byKey.values()];
}

/**
 * The part of `p` from span `from` on that falls before `end` (a window's end): spans by their first hit, so a
 * flow that straddles two windows counts in the first. At least one span (from's) when `end` is after it.
 */
function partOf(p: Prepared, from: number, end: string): { part: Prepared; used: number } {
  const first = p.spans[from] as HitSpan;
  let hits = 0;
  let lastSeen = first.lastSeen;
  let k = from;
  for (; k < p.spans.length && (k === from || (p.spans[k] as HitSpan).firstSeen < end); k++) {
    const span = p.spans[k] as HitSpan;
    hits += span.hits;
    if (span.lastSeen > lastSeen) lastSeen = span.lastSeen;
  }
  const candidate = { ...p.candidate, hits, firstSeen: first.firstSeen, lastSeen };
  return { part: { ...p, candidate, firstMs: Date.parse(first.firstSeen) }, used: k - from };
}

/**
 * Who applies hits: the contribution (`token`, what the items count by), this applyAlerts call (`run`, a nonce: what
 * holds a hand-out lease, since two runs of one contribution may go at once: a duplicate delivery), and whether it
 * publishes what it is handed out (a backfill, replay or redrive without an alerts topic does not, and takes no lease).
 */
interface Caller {
  token: string;
  run: string;
  delivers: boolean;
}

export async function applyAlerts(
  ctx: AlertContext,
  candidates: readonly AlertCandidate[],
  token: string,
  options: AlertOptions,
): Promise<AlertApplyResult> {
  if (!Number.isInteger(options.windowMs) || options.windowMs < 1 || options.windowMs > MAX_ALERT_WINDOW_MS) {
    throw new InvalidInputError(
      `alert windowMs must be an integer from 1 to ${MAX_ALERT_WINDOW_MS}, got ${options.windowMs}`,
    );
  }
  const prepared = prepare(candidates);
  const caller: Caller = { token, run: randomUUID(), delivers: options.delivers ?? true };
  const results = await mapBounded(prepared, ctx.concurrency, (p) =>
    applyKey(ctx, p, caller, options.windowMs, options.onOpened),
  );
  const held = results.flatMap((r) => r.held ?? []);
  return {
    alerts: results.flatMap((r) => r.alerts),
    opened: results.reduce((n, r) => n + r.opened, 0),
    ...(held.length === 0 ? {} : { held }),
  };
}

/**
 * One key's hits, window by window: the hits from the first span on that the window it lands in holds, then the
 * rest (a batch may span several windows: a replayed file, a backfill page). Windows are chosen as for one part,
 * so a retried payload makes the same parts and lands where it did. `onOpened` is told of each opening as it is made.
 */
async function applyKey(
  ctx: AlertContext,
  p: Prepared,
  caller: Caller,
  windowMs: number,
  onOpened: (() => void) | undefined,
): Promise<AlertApplyResult> {
  const alerts: AlertRecord[] = [];
  const held: HeldAlert[] = [];
  let opened = 0;
  for (let from = 0; from < p.spans.length; ) {
    const part = await applyOne(ctx, p, from, caller, windowMs);
    if (part.alert !== undefined) alerts.push(part.alert);
    if (part.held !== undefined) held.push(part.held);
    if (part.opened) {
      opened++;
      onOpened?.();
    }
    from += part.used;
  }
  return { alerts, opened, held };
}

const MAX_STATE_ROUNDS = 8;

/**
 * What applying one part did: the alert handed out (or held by another run of the contribution), the spans the part
 * took, whether it opened a window.
 */
interface PartResult {
  alert: AlertRecord | undefined;
  held?: HeldAlert;
  used: number;
  opened: boolean;
}

/** Applies the hits of `p` from span `from` that one window takes; says how many spans that was. */
async function applyOne(
  ctx: AlertContext,
  whole: Prepared,
  from: number,
  caller: Caller,
  windowMs: number,
): Promise<PartResult> {
  const { token } = caller;
  const firstSeen = (whole.spans[from] as HitSpan).firstSeen;
  const stateKey = alertStateKey(whole.cluster, whole.keyDigest);
  const reads = freshReport();
  for (let round = 0; round < MAX_STATE_ROUNDS; round++) {
    const state = stateOf(await getItem(ctx, stateKey, reads));
    // Hits from before the open window go where they belong in time, so a retried payload lands where it did; a
    // window more than a window's length ahead of the clock takes none before it.
    const target =
      state === undefined
        ? undefined
        : windowFor(firstSeen, [state, ...state.earlier], iso(ctx.now() + windowMs));
    if (state === undefined || target === undefined) {
      const { part, used } = partOf(whole, from, iso(Date.parse(firstSeen) + windowMs));
      const opening = await openWindow(ctx, part, caller, windowMs, state, reads);
      if (opening === "lost-race") continue;
      return { ...opening, used };
    }
    const { part: p, used } = partOf(whole, from, target.windowEnd);
    const c = p.candidate;
    if (target.openedBy === token) {
      // This contribution opened that window (a retry, or a duplicate run going at the same time): complete its
      // record, deliver if still pending and the lease is this run's to take (the opening run's has run out, or this
      // is that run: its own state write whose answer was lost). It counts as opened here only if the record had not
      // taken the opener's hits yet: a crash between the state and the record, this call's own state write whose
      // answer was lost (its resend refused), or a duplicate run that wrote the record before the one that wrote the
      // state. A retry or redelivery after a whole opening opens nothing.
      const opened = await writeRecord(ctx, p, target, token, reads);
      // One that does not publish takes no lease, but is told of the alert while it is pending, whichever run of the
      // contribution opened it (one whose publish failed, say): it is the caller's to report as unsent.
      if (!caller.delivers) return { alert: await pendingAlert(ctx, target, reads), used, opened };
      if (target === state) {
        const handOut = await mayHandOut(ctx, stateKey, state, caller, reads);
        if (handOut !== "take") return { alert: undefined, used, opened, ...handOut };
      }
      return { alert: await pendingAlert(ctx, target, reads), used, opened };
    }
    // The marker of the alert's day, as its opening put it: remembered per store, so a request only once per day and
    // store. An alert opened by a version that marked no days (before the markers) is listed again from its first
    // hit since.
    await markAlertDay(ctx, ctx.marked, p.cluster, target.openedAt, ctx.now(), freshReport());
    const fold: Fold = {
      key: {
        pk: target.alertPk,
        sk: foldSlotSk(target.alertSk, slotOf(p.firstMs, target), foldShardOf(token)),
      },
      token,
      hits: c.hits,
      expiresAt: expiresAt(Date.parse(target.openedAt), ctx.retentionDays, ctx.now()),
      firstSeen: c.firstSeen,
      lastSeen: c.lastSeen,
    };
    if ((await foldInto(ctx, fold, reads)) === "full") await spillFold(ctx, p.cluster, fold);
    if (!caller.delivers) {
      // An alert whose lease an earlier run of this contribution took (and did not send) is as much the
      // contribution's as one it opened: a retry that publishes would send it, one that does not is told of it.
      const leased = target.leaseBy === token;
      return { alert: leased ? await pendingAlert(ctx, target, reads) : undefined, used, opened: false };
    }
    if (target !== state && target.leaseBy === token) {
      // This delivery took the lease on that window's alert before the window closed: its retry delivers it.
      return { alert: await pendingAlert(ctx, target, reads), used, opened: false };
    }
    // An alert another delivery opened is that delivery's to send; hand it out only once it has had time to.
    // Only one of the deliveries that come by at once takes it (a lease on the state, as long as that delay).
    if (
      target === state &&
      state.delivery === "pending" &&
      ctx.now() - state.createdAt >= ctx.pendingRedeliveryAfterMs
    ) {
      const handOut = await mayHandOut(ctx, stateKey, state, caller, reads);
      if (handOut !== "take") return { alert: undefined, used, opened: false, ...handOut };
      return { alert: await pendingAlert(ctx, target, reads), used, opened: false };
    }
    return { alert: undefined, used, opened: false };
  }
  throw new StoreUnavailableError(`alert state ${stateKey.pk} kept changing; try again`);
}

/**
 * Whether this run hands out the open window's pending alert ("take"): when it takes the lease on it (takeHandOut), or
 * when that is refused because the window closed meanwhile (the next one opened between the state read and the take)
 * and the closed window kept this contribution as the lease's holder: then it is this delivery's to send, as it is
 * on this delivery's retry (applyOne). Refused on the open window, the alert is another run's to send: `held` when
 * that run is of the caller's contribution, whose retry it may be; another contribution's sends it, or fails and is
 * retried itself.
 */
async function mayHandOut(
  ctx: AlertContext,
  stateKey: { pk: string; sk: string },
  state: State,
  caller: Caller,
  reads: CallReport,
): Promise<"take" | { held?: HeldAlert }> {
  if (await takeHandOut(ctx, stateKey, state, caller)) return "take";
  const current = stateOf(await getItem(ctx, stateKey, reads));
  if (current === undefined) return {};
  if (current.alertSk !== state.alertSk) {
    const mine = current.earlier.some((w) => w.alertSk === state.alertSk && w.leaseBy === caller.token);
    return mine ? "take" : {};
  }
  if (current.leaseBy !== caller.token || current.leaseAt === undefined) return {};
  // The state's delivery is written after the record's: the record says whether it is still to send.
  const alert = await readAlert(ctx, current, reads);
  if (alert?.delivery !== "pending") return {};
  const until = iso(current.leaseAt + ctx.pendingRedeliveryAfterMs);
  return { held: { id: alert.id, openedAt: alert.openedAt, until } };
}

/**
 * The lease on handing out the open window's pending alert, for the caller's run: taken (renewed) when this run holds
 * it already (its own write whose answer was lost), or when the last one ran out (pendingRedeliveryAfterMs after it
 * was taken, or after the window opened). Always by a conditional write, never on the word of the state read: the
 * lease it names may have run out and been taken by another since. False when another run holds it (a retry of the
 * holder's contribution included: it cannot be told from a duplicate run going at the same time), or the window is
 * no longer the open one.
 */
async function takeHandOut(
  ctx: AlertContext,
  stateKey: { pk: string; sk: string },
  state: State,
  caller: Caller,
): Promise<boolean> {
  const now = ctx.now();
  const e = new Expression();
  const leaseAt = e.name("leaseAt");
  const leaseRun = e.name("leaseRun");
  const run = e.value(caller.run);
  const cutoff = e.value(now - ctx.pendingRedeliveryAfterMs);
  const update = `SET ${leaseAt} = ${e.value(now)}, ${leaseRun} = ${run}, ${e.name("leaseBy")} = ${e.value(caller.token)}`;
  const condition =
    `${e.name("alertSk")} = ${e.value(state.alertSk)} AND (${leaseRun} = ${run} OR ` +
    `${leaseAt} <= ${cutoff} OR (attribute_not_exists(${leaseAt}) AND ` +
    // Nobody took it (an opener that does not deliver, or a state written before leases): the opener's contribution
    // may, and anyone once it is old enough.
    `(${e.name("openedBy")} = ${e.value(caller.token)} OR ${e.name("createdAt")} <= ${cutoff})))`;
  try {
    await withRetry("UpdateItem", ctx.retry, freshReport(), () =>
      ctx.doc.send(
        new UpdateCommand({
          TableName: ctx.tableName,
          Key: stateKey,
          UpdateExpression: update,
          ConditionExpression: condition,
          ...e.fields(),
        }),
      ),
    );
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}

/**
 * Opens a window: its state, then its record; "lost-race" when the state no longer names `previous`. `opened` when
 * this call's record write applied the opener's hits: a duplicate run of the contribution going at the same time may
 * write them first (it finds the state opened by its token), and counts the alert then.
 */
async function openWindow(
  ctx: AlertContext,
  p: Prepared,
  caller: Caller,
  windowMs: number,
  previous: State | undefined,
  reads: CallReport,
): Promise<{ alert: AlertRecord | undefined; opened: boolean } | "lost-race"> {
  const { token } = caller;
  const c = p.candidate;
  const openedAt = c.firstSeen;
  const windowEnd = iso(p.firstMs + windowMs);
  const record = alertRecordKey(p.cluster, openedAt, p.keyDigest);
  const window: Window = {
    openedAt,
    windowEnd,
    alertPk: record.pk,
    alertSk: record.sk,
    openedBy: token,
    foldedBefore: previous === undefined ? 0 : await untoldHits(ctx, previous, reads),
  };
  // The day's marker first: an alert is never stored on a day that listings would not read.
  await markAlertDay(ctx, ctx.marked, p.cluster, openedAt, ctx.now(), freshReport());
  const stateKey = alertStateKey(p.cluster, p.keyDigest);
  const e = new Expression();
  const condition =
    previous === undefined
      ? `attribute_not_exists(${e.name("pk")})`
      : `${e.name("alertSk")} = ${e.value(previous.alertSk)}`;
  try {
    await withRetry("PutItem", ctx.retry, freshReport(), () =>
      ctx.doc.send(
        new PutCommand({
          TableName: ctx.tableName,
          Item: {
            ...stateKey,
            cluster: p.cluster,
            keyDigest: p.keyDigest,
            ...windowAttribute(window),
            delivery: "pending",
            createdAt: ctx.now(),
            // The opening run delivers it: nobody else hands it out before the lease runs out (takeHandOut). An
            // opener that does not deliver takes none: the first to come by once the alert is old enough does.
            ...(caller.delivers ? { leaseAt: ctx.now(), leaseRun: caller.run, leaseBy: token } : {}),
            earlier:
              previous === undefined
                ? []
                : [previous, ...previous.earlier].slice(0, KEPT_WINDOWS).map(keptWindowAttribute),
            expiresAt: expiresAt(Date.parse(windowEnd), ctx.retentionDays, ctx.now()),
          },
          ConditionExpression: condition,
          ...e.fields(),
        }),
      ),
    );
  } catch (error) {
    // Someone else opened it first — or our own write landed and its answer was lost: re-reading tells which.
    if (isConditionFailure(error)) return "lost-race";
    throw error;
  }
  const opened = await writeRecord(ctx, p, window, token, reads);
  return { alert: await readAlert(ctx, window, reads), opened };
}

/**
 * The alert record: descriptive fields if missing (a crash after the state write is healed by the retry).
 * True when this call surely applied the opener's hits to it; false when they were there already, or when
 * that is unclear (a request of this call failed in a way that may have hidden a success).
 */
async function writeRecord(
  ctx: AlertContext,
  p: Prepared,
  w: Window,
  token: string,
  reads: CallReport,
): Promise<boolean> {
  const c = p.candidate;
  const writes = freshReport();
  const outcome = await countedUpdate(
    ctx,
    {
      key: { pk: w.alertPk, sk: w.alertSk },
      token,
      counters: { hits: c.hits },
      init: {
        id: alertId(p.cluster, p.keyDigest, w.openedAt),
        cluster: p.cluster,
        keyDigest: p.keyDigest,
        key: alertKeyAttribute(c.key),
        src: endpointAttribute(c.src),
        dst: endpointAttribute(c.dst),
        direction: c.direction,
        reporter: c.reporter,
        policy: policyAttribute(c.policy),
        severity: c.severity,
        reason: c.reason,
        foldedBefore: w.foldedBefore,
        openedAt: w.openedAt,
        windowEnd: w.windowEnd,
        delivery: "pending",
        expiresAt: expiresAt(Date.parse(w.openedAt), ctx.retentionDays, ctx.now()),
        ...(c.namespaces === undefined ? {} : { namespaces: c.namespaces }),
      },
      firstSeen: c.firstSeen,
      lastSeen: c.lastSeen,
    },
    writes,
    reads,
  );
  return outcome.applied && !writes.uncertain;
}

/** Whether an alert record is in the store (read consistently). */
async function recordExists(ctx: AlertContext, key: { pk: string; sk: string }): Promise<boolean> {
  const result = await withRetry("GetItem", ctx.retry, freshReport(), () =>
    ctx.doc.send(
      new GetCommand({
        TableName: ctx.tableName,
        Key: key,
        ConsistentRead: true,
        ProjectionExpression: "pk",
      }),
    ),
  );
  return result.Item !== undefined;
}

/** A stored delivery state; anything else (none yet) is pending. */
function deliveryOf(value: unknown): AlertDelivery {
  return value === "sent" || value === "summarized" ? value : "pending";
}

export async function markAlertSent(
  ctx: AlertContext,
  alert: AlertRecord,
  how: "sent" | "summarized" = "sent",
): Promise<void> {
  const cluster = checkCluster(alert.cluster);
  canonicalMs(alert.openedAt, "alert openedAt");
  const keyDigest = alertKeyDigest(alert.key);
  const record = alertRecordKey(cluster, alert.openedAt, keyDigest);
  const e = new Expression();
  // The count the message gave, for the next window's foldedBefore: a set, so that of two runs that both sent it (a
  // lease run out mid-publish) the larger count stays, whichever marks last.
  const sent =
    `SET ${e.name("delivery")} = ${e.value(how)}, ${e.name("sentAt")} = ${e.value(iso(ctx.now()))} ` +
    `ADD ${e.name("sentCounts")} ${e.value(new Set([alert.count]))}`;
  // A summary never relabels an alert another delivery sent on its own (it took the alert over meanwhile).
  const exists =
    how === "sent"
      ? `attribute_exists(${e.name("pk")})`
      : `attribute_exists(${e.name("pk")}) AND ${e.name("delivery")} <> ${e.value("sent")}`;
  try {
    await withRetry("UpdateItem", ctx.retry, freshReport(), () =>
      ctx.doc.send(
        new UpdateCommand({
          TableName: ctx.tableName,
          Key: record,
          UpdateExpression: sent,
          ConditionExpression: exists,
          ...e.fields(),
        }),
      ),
    );
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    if (how === "summarized" && (await recordExists(ctx, record))) return;
    throw new InvalidInputError(`alert ${alert.id} (opened ${alert.openedAt}) is not in the store`);
  }
  // The state caches the open window's delivery so that folds need not read the record; a newer window
  // (condition fails) has its own.
  const s = new Expression();
  const stateSent = `SET ${s.name("delivery")} = ${s.value(how)}`;
  const sameWindow =
    how === "sent"
      ? `${s.name("alertSk")} = ${s.value(record.sk)}`
      : `${s.name("alertSk")} = ${s.value(record.sk)} AND ${s.name("delivery")} <> ${s.value("sent")}`;
  try {
    await withRetry("UpdateItem", ctx.retry, freshReport(), () =>
      ctx.doc.send(
        new UpdateCommand({
          TableName: ctx.tableName,
          Key: alertStateKey(cluster, keyDigest),
          UpdateExpression: stateSent,
          ConditionExpression: sameWindow,
          ...s.fields(),
        }),
      ),
    );
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
  }
}

/** Days one marker Query lists (markers.ts); those not read by its page travel in the cursor. */
const DAYS_PER_LISTING = 32;
/**
 * How long after its window an alert's last hit can be: a flow is counted whole into the window its first hit falls
 * in, and a flow spans up to a bucket, which is at most an hour.
 */
const LONGEST_BUCKET_MS = 3_600_000;

/**
 * Alerts opened by `until` and last seen at `since` or after, oldest opened first: those open (from their opening to
 * their last hit) during [since, until]. A late hit folded into a window opened after it (windowFor) is listed by
 * that opening, not by its own time: the window may open any time later, so no bounded read finds it by its time. Read
 * from one window and one bucket before `since`, the days that hold alerts (their markers, listed a Query at a time)
 * in order, at most two Queries per page (a page may hold none of them while it lists days or reads that earlier
 * stretch). A page never splits an alert from its fold slots: an alert cut by the end of a Query is left to the
 * next page.
 */
export async function queryAlertsPage(
  ctx: StoreContext,
  query: AlertQuery,
  report: CallReport,
): Promise<Page<AlertRecord>> {
  const cluster = checkCluster(query.cluster);
  const since = normalizeInstant(query.since, "since");
  const until = normalizeInstant(query.until, "until");
  const limit = checkLimit(query.limit);
  if (since > until) return { items: [] };
  // An alert opened up to a window (and the bucket of its last flow) before `since` may have hits in the range.
  const openedFrom = iso(Math.max(EARLIEST_MS, Date.parse(since) - MAX_ALERT_WINDOW_MS - LONGEST_BUCKET_MS));
  const { lo, hi } = timeRange(openedFrom, until);
  const print = fingerprint(["alerts", cluster, since, until]);
  const cursor =
    query.cursor === undefined
      ? {}
      : decodeCursor(query.cursor, print, (after) => after >= lo && after <= hi);
  if (cursor.hours !== undefined || cursor.next !== undefined || cursor.done !== undefined) {
    throw new InvalidCursorError("cursor is not one of a listing of alerts; start again without it");
  }
  const firstDay = dayOf(openedFrom);
  const lastDay = dayOf(until);
  // Days listed and not finished (the first being read, after `after`), and where the listing goes on.
  const days = cursor.days ?? [];
  let next = query.cursor === undefined ? firstDay : cursor.nextDay;
  const inRange = (day: string) => day >= firstDay && day <= lastDay;
  if (
    !days.every((day, k) => inRange(day) && (k === 0 || (days[k - 1] as string) < day)) ||
    (next !== undefined && (!inRange(next) || (days.length > 0 && next <= (days.at(-1) as string))))
  ) {
    throw new InvalidCursorError("cursor partitions are outside the query's range");
  }
  let after = cursor.after;
  if (after !== undefined && dayOf(after) !== days[0]) {
    throw new InvalidCursorError("cursor position does not match its partition");
  }
  const alerts: AlertRecord[] = [];
  for (let queries = 0; queries < 2 && alerts.length < limit; queries++) {
    const part = days[0];
    if (part === undefined) {
      if (next === undefined) break;
      const listed = await listMarkers(
        ctx,
        alertDaysPartition(cluster),
        next,
        lastDay,
        DAYS_PER_LISTING,
        report,
        nextDay,
      );
      days.push(...listed.periods);
      next = listed.next;
      continue;
    }
    const result = await queryRange(
      ctx,
      {
        keyAttribute: "pk",
        keyValue: alertPartition(cluster, part),
        lo,
        hi,
        // Room for the alerts still wanted plus one whole alert, so a page always makes progress.
        limit: (limit - alerts.length + 1) * MAX_GROUP_ITEMS,
        ...(after === undefined ? {} : { start: { pk: alertPartition(cluster, part), sk: after } }),
      },
      report,
    );
    const found = groups(result.items);
    // With more to read, the last alert may have slots beyond this response: leave it to the next Query.
    if (result.lastEvaluatedSk !== undefined) found.pop();
    for (const group of found) {
      const alert = alertOf(group);
      if (alert !== undefined && alert.lastSeen >= since) alerts.push(alert);
      after = String(group[group.length - 1]?.sk);
      if (alerts.length >= limit) break;
    }
    // The day is finished when its Query was and every alert it found was taken.
    if (result.lastEvaluatedSk === undefined && (found.length === 0 || found.at(-1)?.at(-1)?.sk === after)) {
      days.shift();
      after = undefined;
    }
  }
  if (days.length === 0 && next === undefined) return { items: alerts };
  return {
    items: alerts,
    cursor: encodeCursor(print, {
      days,
      ...(next === undefined ? {} : { nextDay: next }),
      ...(after === undefined ? {} : { after }),
    }),
  };
}
