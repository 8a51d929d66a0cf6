// Key construction for the single table (docs/flow-store.md lists every item type). Keys are strings whose
// byte order is time order: ISO-8601 UTC timestamps in the one canonical `toISOString()` form (fixed width),
// and zero-padded epoch milliseconds for holder history.
import { createHash } from "node:crypto";
import { normalizeIp } from "../../core/holders.ts";
import { isoMs } from "../../core/instant.ts";
import type { AlertKey } from "../../core/types.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const DAY_S = 86_400;

/** A record, query or candidate the store refuses, with what was wrong. */
export class InvalidInputError extends Error {
  override name = "InvalidInputError";
}

/** The panic audit trail's partition (panic-audit.ts); the panic role may touch no other (lib/flow-store.ts). */
export function panicPartitionKey(cluster: string): string {
  return `PANIC#${cluster}`;
}

/** `#` separates key parts, so a cluster name must not contain one (EKS names never do). */
export function checkCluster(cluster: string): string {
  if (cluster.length === 0 || cluster.includes("#")) {
    throw new InvalidInputError(
      `cluster name must be non-empty and without "#", got ${JSON.stringify(cluster)}`,
    );
  }
  return cluster;
}

/** Epoch ms of a canonical ISO timestamp (as `toISOString()` prints it); anything else is refused. */
export function canonicalMs(value: string, what: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms) || new Date(ms).toISOString() !== value) {
    throw new InvalidInputError(
      `${what} must be an ISO-8601 UTC timestamp like 2024-04-19T04:52:00.000Z, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** Any ISO-8601 text (UTC unless it has an offset) → canonical form, for query bounds typed by people. */
export function normalizeInstant(value: string, what: string): string {
  const ms = isoMs(value);
  if (Number.isNaN(ms)) throw new InvalidInputError(`${what} is not a valid time: ${JSON.stringify(value)}`);
  return new Date(ms).toISOString();
}

export const iso = (ms: number): string => new Date(ms).toISOString();

/** `yyyy-mm-ddThh` of a canonical ISO timestamp: the flow partition of its hour. */
export const hourOf = (isoTime: string): string => isoTime.slice(0, 13);
/** `yyyy-mm-dd`: the alert partition of its day. */
export const dayOf = (isoTime: string): string => isoTime.slice(0, 10);
export const nextHour = (hour: string): string => hourOf(iso(Date.parse(`${hour}:00:00.000Z`) + HOUR_MS));
export const nextDay = (day: string): string => dayOf(iso(Date.parse(`${day}T00:00:00.000Z`) + DAY_MS));

// Flow items -------------------------------------------------------------------------------------------

export const flowPk = (cluster: string, bucket: string): string => `FLOW#${cluster}#${hourOf(bucket)}`;
export const flowPartition = (cluster: string, hour: string): string => `FLOW#${cluster}#${hour}`;
export const flowSk = (bucket: string, id: string): string => `${bucket}#${id}`;
/** The markers of the hours that hold flows (markers.ts): one item per hour, its sort key the hour. */
export const flowHoursPartition = (cluster: string): string => `FLOWHOURS#${cluster}`;
/** The table key of a flow from its sort key alone: the partition is the hour the sort key starts with. */
export const flowKeyOfSk = (cluster: string, sk: string): { pk: string; sk: string } => ({
  pk: `FLOW#${cluster}#${hourOf(sk)}`,
  sk,
});
export const namespaceKey = (cluster: string, namespace: string): string => `${cluster}#${namespace}`;
/**
 * One key for every spelling of an address, written and asked alike: RFC 5952, and an IPv4-mapped address as its
 * IPv4 address (as attribution reads it), since a dual-stack node logs IPv4 peers as `::ffff:a.b.c.d`.
 */
export const ipKey = (cluster: string, ip: string): string => `${cluster}#${normalizeIp(ip)}`;

/**
 * Sort-key bounds of a time range: every `<time>#<suffix>` with since ≤ time ≤ until. `$` sorts right after
 * `#`, so `<until>$` is above every key of the `until` instant and below every later one.
 */
export function timeRange(since: string, until: string): { lo: string; hi: string } {
  return { lo: since, hi: `${until}$` };
}

// Alerts -----------------------------------------------------------------------------------------------

/** Digest of an alert key: names its state item and its alert records. */
export function alertKeyDigest(key: AlertKey): string {
  return shortDigest(`${key.cluster}\n${key.src}\n${key.dst}\n${key.protocol}\n${key.dstPort ?? ""}`, 22);
}
export const alertStateKey = (cluster: string, keyDigest: string): { pk: string; sk: string } => ({
  pk: `ALERTKEY#${cluster}#${keyDigest}`,
  sk: "STATE",
});
export const alertPartition = (cluster: string, day: string): string => `ALERTS#${cluster}#${day}`;
/** The markers of the days that hold alerts (markers.ts): one item per day, its sort key the day. */
export const alertDaysPartition = (cluster: string): string => `ALERTDAYS#${cluster}`;
export const alertRecordKey = (
  cluster: string,
  openedAt: string,
  keyDigest: string,
): { pk: string; sk: string } => ({
  pk: alertPartition(cluster, dayOf(openedAt)),
  sk: `${openedAt}#${keyDigest}`,
});
/**
 * Items a fold slot is spread over: one key's folds from many nodes at once would otherwise all write one item,
 * which no partition split can relieve (1,000 WCU/s at most).
 */
export const FOLD_SHARDS = 16;
/** The shard of a fold slot a contribution folds into: fixed by its token, so a retry lands where it did. */
export const foldShardOf = (token: string): number =>
  (createHash("sha256").update(token).digest()[0] as number) % FOLD_SHARDS;
/**
 * Fold slot items sort right after their alert record: `<openedAt>#<digest>#<shard, 1 hex digit>#<slot, 3 digits>`
 * (items written before shards, `<openedAt>#<digest>#<slot>`, are read alike).
 */
export const foldSlotSk = (alertSk: string, slot: number, shard: number): string =>
  `${alertSk}#${shard.toString(16)}#${String(slot).padStart(3, "0")}`;
/**
 * A fold into a slot whose applied set is full, claimed on its own: one item per (contribution, slot), in a
 * partition per contribution (spread, and outside every alert's group, which Queries read whole).
 */
export const foldClaimKey = (cluster: string, token: string, slotSk: string): { pk: string; sk: string } => ({
  pk: `FOLDCLAIM#${cluster}#${token}`,
  sk: slotSk,
});
/** The alert record sort key a record or fold slot belongs to (its first two `#` parts). */
export function alertSkOf(sk: string): string {
  const first = sk.indexOf("#");
  const second = sk.indexOf("#", first + 1);
  return second === -1 ? sk : sk.slice(0, second);
}

// Denial tallies ---------------------------------------------------------------------------------------

/** A subject's tally in one window (tallies.ts): one partition per subject, one item per window, by start time. */
export const tallyKey = (
  cluster: string,
  subject: string,
  windowStartMs: number,
): { pk: string; sk: string } => ({
  pk: `TALLY#${cluster}#${shortDigest(subject, 22)}`,
  sk: iso(windowStartMs),
});
/** A tally's member: 72 bits of its digest (two of 8,192 members colliding has odds near 10⁻¹⁴). */
export const tallyMember = (member: string): string => shortDigest(member, 12);

// Holder history ---------------------------------------------------------------------------------------

export const historyPk = (cluster: string, ip: string): string => `IP#${cluster}#${ip}`;
const EPOCH_WIDTH = 15;
export const paddedEpoch = (ms: number): string => String(ms).padStart(EPOCH_WIDTH, "0");
export const historySk = (validFrom: number, identity: string): string =>
  `${paddedEpoch(validFrom)}#${identity}`;

// Contributions and TTL --------------------------------------------------------------------------------

function shortDigest(text: string, length: number): string {
  return createHash("sha256").update(text).digest("base64url").slice(0, length);
}

/**
 * What an item remembers of a contribution: 96 bits of its digest. Short, because every item keeps one per
 * delivery that touched it; 96 bits keep the odds of two deliveries colliding on one item negligible.
 */
export function contributionToken(contribution: string): string {
  if (contribution.length === 0) throw new InvalidInputError("contribution id must be non-empty");
  return shortDigest(contribution, 16);
}

/**
 * Oldest TTL written, before now. DynamoDB's TTL ignores an item whose TTL is five years or more in the past (a
 * guard against malformed values), so such an item would never be deleted; four years leaves a year for TTL's
 * deletion lag (typically within two days) to go by.
 */
export const OLDEST_TTL_S = 4 * 365 * DAY_S;

/**
 * TTL value (epoch seconds): `retentionDays` after `fromMs`, the time the item is about (an event's bucket, an
 * alert's window, a holder's end), so that the table holds that many days of traffic whenever it was written. An
 * item written after its time is up (a backfill or replay of old events) is written already expired: DynamoDB
 * deletes it within days, as any expired item, and queries read it until then. Never more than OLDEST_TTL_S
 * before `nowMs`, though: an older TTL would keep it for good.
 */
export const expiresAt = (fromMs: number, retentionDays: number, nowMs: number = Date.now()): number =>
  Math.max(retainedUntil(fromMs, retentionDays), Math.floor(nowMs / 1000) - OLDEST_TTL_S);

/** Epoch seconds `retentionDays` after `fromMs`: the TTL expiresAt gives unless its four-year floor is later. */
export const retainedUntil = (fromMs: number, retentionDays: number): number =>
  Math.floor(fromMs / 1000) + Math.round(retentionDays * DAY_S);
