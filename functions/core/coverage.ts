// Coverage: which CloudWatch Logs events have already been counted, so that live ingest, redrive and any
// number of overlapping backfills count each log event exactly once (docs/backfill.md).
//
// The store is idempotent per contribution, but the same event arrives under different contributions: live
// ingest batches a stream's events one way, a backfill pages them another way. So every writer first *claims*
// the events it is about to store, per (log group, log stream, minute), in one coverage record holding short
// digests of the claimed event ids; events another contribution already claimed are dropped; then it stores
// the rest under its contribution and marks the claim stored. A claim is written (conditionally on the
// record's version) before anything is stored, so two writers can never both own an event, and a writer that
// died between claim and store is finished later under the same contribution, which the store deduplicates.
import xxhash from "xxhash-wasm";
import { digest } from "./aggregate.ts";
import { type CloudWatchEvent, DeliveredEvents } from "./delivered-events.ts";
import { type IngestDeps, type IngestResult, ingestBatch } from "./ingest.ts";
import { deliveryContribution } from "./subscription-payload.ts";

const { h64Raw } = await xxhash();

export type { CloudWatchEvent } from "./delivered-events.ts";

export const MINUTE_MS = 60_000;
/**
 * Event digests recorded per stream-minute (about 13 bytes each, so a record stays far below DynamoDB's
 * 400 KB item limit). Past it the minute is "full": further claims are counted but not itemised.
 */
export const MINUTE_EVENT_BUDGET = 20_000;
/** Most events in one backfill claim, hence in one ingest call. */
export const BACKFILL_CLAIM_MAX = 5_000;
/**
 * A delivery's pending claim (claimed, not yet marked stored) is only finished by a backfill once it is this
 * old: until then its own writer (a running or retried Lambda invocation) is expected to finish it.
 */
export const PENDING_GRACE_MS = 15 * 60_000;

export type ClaimSource = "live" | "redrive" | "backfill";

/** The coverage records of one log stream. */
export interface StreamRef {
  cluster: string;
  group: string;
  stream: string;
}

export interface Claim {
  contribution: string;
  source: ClaimSource;
  /** Digests (eventKey) of the claimed events; empty when not recorded. */
  events: string[];
  /** False when the minute's budget was spent: the claim counts `count` events without naming them. */
  recorded: boolean;
  count: number;
  /** Minutes the contribution spans: a delivery can straddle a minute boundary, a backfill claim cannot. */
  span: number;
  stored: boolean;
  /** ISO time the claim was made. */
  claimedAt: string;
}

export interface MinuteCoverage {
  /** Start of the minute, epoch ms. */
  minute: number;
  /** 0 when no record exists yet; every claim increments it. */
  version: number;
  claims: Claim[];
}

/** Persistence of coverage records (DynamoDB: functions/adapters/dynamo/coverage.ts). */
export interface CoverageStore {
  /** Records of the stream's minutes in [fromMinute, toMinute], strongly consistent; absent minutes omitted. */
  read(ref: StreamRef, fromMinute: number, toMinute: number): Promise<MinuteCoverage[]>;
  /** Adds `claim` if the minute's record is still at `version`; false if someone claimed in between. */
  addClaim(ref: StreamRef, minute: number, version: number, claim: Claim): Promise<boolean>;
  markStored(ref: StreamRef, minute: number, contribution: string): Promise<void>;
}

export function minuteOf(timestamp: number): number {
  return Math.floor(timestamp / MINUTE_MS) * MINUTE_MS;
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const LOW32 = 0xffffffffn;
const encoder = new TextEncoder();

/**
 * Short digest of a CloudWatch event id: its UTF-8 bytes' 64-bit xxHash (XXH64, seed 0) as 11 base64url
 * characters (the low 30 bits of each half, five characters each, then the top two bits of each). Ids are 56
 * digits that CloudWatch Logs assigns, never chosen by whoever sends the packets, so a fast non-cryptographic
 * hash serves: two events of one stream-minute colliding (p ≈ n²/2⁶⁵) would make one of them look counted.
 */
export function eventKey(id: string): string {
  return keyOfBytes(encoder.encode(id));
}

function keyOfBytes(bytes: Uint8Array): string {
  const h = h64Raw(bytes);
  const lo = Number(h & LOW32);
  const hi = Number(h >> 32n);
  const c = (bits: number) => BASE64URL.charCodeAt(bits & 63);
  return String.fromCharCode(
    c(lo),
    c(lo >>> 6),
    c(lo >>> 12),
    c(lo >>> 18),
    c(lo >>> 24),
    c(hi),
    c(hi >>> 6),
    c(hi >>> 12),
    c(hi >>> 18),
    c(hi >>> 24),
    c((lo >>> 30) | ((hi >>> 30) << 2)),
  );
}

/** eventKey of every event's id, from the delivery's bytes (no string is made for the ids). */
export function eventKeys(events: DeliveredEvents): string[] {
  const keys: string[] = new Array(events.length);
  events.forEachId((bytes, i) => {
    keys[i] = keyOfBytes(bytes);
  });
  return keys;
}

function emptyMinute(minute: number): MinuteCoverage {
  return { minute, version: 0, claims: [] };
}

/** Digests claimed by recorded claims other than `except`. */
function takenKeys(coverage: MinuteCoverage, except?: string): Set<string> {
  const taken = new Set<string>();
  for (const c of coverage.claims) if (c.contribution !== except) for (const k of c.events) taken.add(k);
  return taken;
}

function recordedCount(coverage: MinuteCoverage): number {
  let n = 0;
  for (const c of coverage.claims) n += c.events.length;
  return n;
}

/** Once a claim could not be itemised, none after it is: the set of named events is then frozen. */
function isFull(coverage: MinuteCoverage): boolean {
  return coverage.claims.some((c) => !c.recorded);
}

/** A claim of the events whose digests (eventKey) are `keys`. */
function newClaim(
  coverage: MinuteCoverage,
  contribution: string,
  source: ClaimSource,
  keys: readonly string[],
  span: number,
  now: number,
  budget: number,
): Claim {
  const recorded = !isFull(coverage) && recordedCount(coverage) + keys.length <= budget;
  return {
    contribution,
    source,
    events: recorded ? [...keys] : [],
    recorded,
    count: keys.length,
    span,
    stored: false,
    claimedAt: new Date(now).toISOString(),
  };
}

/** The indices of `events` by the minute of their timestamps, in order. */
function indicesByMinute(events: DeliveredEvents): Map<number, number[]> {
  const byMinute = new Map<number, number[]>();
  for (let i = 0; i < events.length; i++) {
    const m = minuteOf(events.timestamp(i));
    const list = byMinute.get(m);
    if (list === undefined) byMinute.set(m, [i]);
    else list.push(i);
  }
  return byMinute;
}

async function reread(coverage: CoverageStore, ref: StreamRef, minute: number): Promise<MinuteCoverage> {
  const [fresh] = await coverage.read(ref, minute, minute);
  return fresh ?? emptyMinute(minute);
}

function emptyResult(): IngestResult {
  return {
    flows: [],
    candidates: [],
    stats: { lines: 0, calico: 0, skipped: 0, malformed: 0, unresolved: 0, attributionMisses: 0 },
    malformed: [],
    flowsApplied: 0,
    flowsDuplicate: 0,
    writeRequests: 0,
    alerts: [],
    alertsSent: 0,
    alertsSuppressed: 0,
  };
}

export interface DeliveryResult extends IngestResult {
  /** Events of the payload that another contribution (a backfill, an earlier differently batched copy) counted. */
  eventsAlreadyCounted: number;
}

export interface CoverageOptions {
  now?: () => number;
  /** Event digests itemised per stream-minute. @default MINUTE_EVENT_BUDGET */
  minuteEventBudget?: number;
}

/**
 * Stores one subscription delivery (live ingest, or `redrive` of a failed one) exactly once per event. The
 * contribution is always `contributionOf(payload)`: a retried or redriven payload that had been partly
 * stored completes under the same contribution, which the store deduplicates. Without a coverage store this
 * is plain `ingestBatch`. `malformed[].index` refers to the payload's events.
 */
export async function ingestDelivery(
  payload: {
    logGroup: string;
    logStream: string;
    logEvents: readonly CloudWatchEvent[] | DeliveredEvents;
    /** The node of lines that name none. @default the log stream (null: none, as `replay` gives lines) */
    node?: string | null;
  },
  deps: IngestDeps,
  coverage: CoverageStore | undefined,
  source: "live" | "redrive",
  options: CoverageOptions = {},
): Promise<DeliveryResult> {
  const given = payload.logEvents;
  const events = given instanceof DeliveredEvents ? given : DeliveredEvents.fromArray(given);
  const node = payload.node === undefined ? payload.logStream : payload.node;
  const all = node === null ? events : events.withNode(node);
  const contribution = deliveryContribution(payload.logGroup, payload.logStream, all.joinedIds());
  if (coverage === undefined || all.length === 0) {
    const result = await ingestBatch(all, contribution, deps);
    return { ...result, eventsAlreadyCounted: 0 };
  }
  const now = options.now ?? Date.now;
  const budget = options.minuteEventBudget ?? MINUTE_EVENT_BUDGET;
  const ref: StreamRef = {
    cluster: deps.pipeline.cluster,
    group: payload.logGroup,
    stream: payload.logStream,
  };
  const keys = eventKeys(all);
  const byMinute = indicesByMinute(all);
  const minutes = [...byMinute.keys()].sort((a, b) => a - b);
  const first = minutes[0] as number;
  const last = minutes[minutes.length - 1] as number;
  const known = new Map((await coverage.read(ref, first, last)).map((c) => [c.minute, c]));

  // Claim every minute before storing anything: once this contribution has stored, the set of events it
  // owns can no longer change, so a retry stores exactly the same events under the same contribution.
  const kept: number[] = [];
  const toMark: number[] = [];
  for (const minute of minutes) {
    const events = byMinute.get(minute) ?? [];
    let current = known.get(minute) ?? emptyMinute(minute);
    for (;;) {
      const taken = takenKeys(current, contribution);
      const mine = events.filter((i) => !taken.has(keys[i] as string));
      const own = current.claims.find((c) => c.contribution === contribution);
      if (own !== undefined) {
        kept.push(...mine);
        if (!own.stored) toMark.push(minute);
        break;
      }
      if (mine.length === 0) break;
      const mineKeys = mine.map((i) => keys[i] as string);
      const claim = newClaim(current, contribution, source, mineKeys, minutes.length, now(), budget);
      if (await coverage.addClaim(ref, minute, current.version, claim)) {
        kept.push(...mine);
        toMark.push(minute);
        break;
      }
      current = await reread(coverage, ref, minute);
    }
  }
  if (kept.length === 0) return { ...emptyResult(), eventsAlreadyCounted: all.length };
  kept.sort((a, b) => a - b);
  const result = await ingestBatch(all.select(kept), contribution, deps);
  for (const minute of toMark) await coverage.markStored(ref, minute, contribution);
  return {
    ...result,
    malformed: result.malformed.map((m) => ({ ...m, index: kept[m.index] as number })),
    eventsAlreadyCounted: all.length - kept.length,
  };
}

/** One ingest call made by a backfill, with the events it carried (for reporting malformed lines). */
export interface BackfillBatch {
  contribution: string;
  events: CloudWatchEvent[];
  result: IngestResult;
}

export interface BackfillMinuteResult {
  /** Distinct events of the minute handed in. */
  events: number;
  /** Counted before, by a claim already marked stored (live ingest, redrive, an earlier backfill). */
  alreadyCounted: number;
  /** Claimed earlier but left unstored (a writer died): stored now under the claim's own contribution. */
  completed: number;
  /** Newly claimed and stored by this backfill. */
  stored: number;
  /** Claimed by a delivery that is not confirmed stored and cannot be finished here: its Lambda retry or `redrive` will. */
  pending: number;
  /** Left alone: the minute's coverage is full, so it cannot tell which of them were counted. */
  uncertain: number;
  batches: BackfillBatch[];
}

/**
 * Backfills one minute of one stream: finishes abandoned claims whose events are all at hand, then claims
 * and stores the events no one has claimed, in chunks of at most BACKFILL_CLAIM_MAX. A backfill contribution
 * is the digest of its exact event set, so re-running a backfill finds its own claims and changes nothing.
 */
export async function backfillMinute(
  ref: StreamRef,
  minute: number,
  input: readonly CloudWatchEvent[],
  deps: IngestDeps,
  coverage: CoverageStore,
  options: CoverageOptions & { known?: MinuteCoverage } = {},
): Promise<BackfillMinuteResult> {
  const now = options.now ?? Date.now;
  const budget = options.minuteEventBudget ?? MINUTE_EVENT_BUDGET;
  const byKey = new Map<string, CloudWatchEvent>();
  for (const e of input) {
    if (minuteOf(e.timestamp) !== minute) {
      throw new Error(
        `event ${e.id} at ${new Date(e.timestamp).toISOString()} is outside minute ${new Date(minute).toISOString()}`,
      );
    }
    byKey.set(eventKey(e.id), e);
  }
  const out: BackfillMinuteResult = {
    events: byKey.size,
    alreadyCounted: 0,
    completed: 0,
    stored: 0,
    pending: 0,
    uncertain: 0,
    batches: [],
  };
  const done = new Set<string>();
  const store = async (contribution: string, events: CloudWatchEvent[]) => {
    // The stream is the node's: the reporter of lines that name none, as in live ingest.
    const result = await ingestBatch(DeliveredEvents.fromArray(events, ref.stream), contribution, deps);
    await coverage.markStored(ref, minute, contribution);
    done.add(contribution);
    out.batches.push({ contribution, events, result });
  };
  let current = options.known ?? (await coverage.read(ref, minute, minute))[0] ?? emptyMinute(minute);

  for (;;) {
    for (const claim of current.claims) {
      if (claim.stored || done.has(claim.contribution) || !claim.recorded || claim.span !== 1) continue;
      // A delivery's own Lambda (or its retry) is given time to finish; an interrupted backfill is not coming back.
      if (claim.source !== "backfill" && now() - Date.parse(claim.claimedAt) < PENDING_GRACE_MS) continue;
      const events = claim.events.map((k) => byKey.get(k));
      if (events.some((e) => e === undefined)) continue;
      await store(claim.contribution, events as CloudWatchEvent[]);
      out.completed += events.length;
    }
    const taken = takenKeys(current);
    const rest = [...byKey.entries()].filter(([k]) => !taken.has(k)).map(([, e]) => e);
    if (rest.length === 0) break;
    if (isFull(current) || recordedCount(current) + Math.min(rest.length, BACKFILL_CLAIM_MAX) > budget) {
      out.uncertain = rest.length;
      break;
    }
    rest.sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const chunk = rest.slice(0, BACKFILL_CLAIM_MAX);
    const keys = chunk.map((e) => eventKey(e.id));
    const contribution = digest(
      `backfill\n${ref.cluster}\n${ref.group}\n${ref.stream}\n${minute}\n${[...keys].sort().join(",")}`,
    );
    const claim = newClaim(current, contribution, "backfill", keys, 1, now(), budget);
    if (!(await coverage.addClaim(ref, minute, current.version, claim))) {
      current = await reread(coverage, ref, minute);
      continue;
    }
    current = { ...current, version: current.version + 1, claims: [...current.claims, claim] };
    await store(contribution, chunk);
    out.stored += chunk.length;
  }

  // What the earlier writers own, for the report.
  for (const claim of current.claims) {
    if (done.has(claim.contribution)) continue;
    const mine = claim.events.filter((k) => byKey.has(k)).length;
    if (claim.stored) out.alreadyCounted += mine;
    else out.pending += mine;
  }
  return out;
}
