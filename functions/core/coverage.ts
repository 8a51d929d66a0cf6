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
//
// A minute's record is a chain of items ("pages"), because one item holds only so many digests (DynamoDB's
// 400 KB). Claims go to the open page, the first one not sealed; a writer that fills it seals it in the same
// conditional write, and only then may the next page be created (conditionally on its absence). A sealed page
// never changes its claims again, so a claim written on the open page at the version read was decided on every
// claim of the minute: every event has one owner however many pages the minute takes.
import xxhash from "xxhash-wasm";
import { digest } from "./aggregate.ts";
import type { Deadline } from "./deadline.ts";
import { type CloudWatchEvent, DeliveredEvents } from "./delivered-events.ts";
import {
  type IngestDeps,
  type IngestProgress,
  type IngestResult,
  type IngestSettings,
  ingestBatch,
  sameSettings,
  withSettings,
} from "./ingest.ts";
import { deliveryContribution } from "./subscription-payload.ts";

const { h64Raw } = await xxhash();

export type { CloudWatchEvent } from "./delivered-events.ts";

export const MINUTE_MS = 60_000;
/**
 * Event digests per page of a stream-minute's record. A digest takes 11 bytes of DynamoDB's item size, so
 * 2,000 of them are 22 KB. Every claim write, and every mark, costs a WCU per KB of the item it writes: a minute
 * past this budget goes on in a new page rather than making each write dearer (with 20,000 a page, a busy
 * stream's deliveries cost up to 342 WCU each to claim, and as much again to mark).
 */
export const MINUTE_EVENT_BUDGET = 2_000;
/**
 * Claims per page: a claim takes about 262 bytes besides its digests (contribution, source, counts, flags, time,
 * and 140 of them its writer's settings with the defaults), so 100 claims are 26 KB and a page at both budgets about
 * 48 KB. Without it, many small deliveries would grow an item past what MINUTE_EVENT_BUDGET means to bound.
 */
export const ITEM_CLAIM_BUDGET = 100;
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

/**
 * A contribution's claim on one page of a minute. A contribution whose events of the minute did not fit the
 * open page has a claim on each page it filled: its parts.
 */
export interface Claim {
  contribution: string;
  source: ClaimSource;
  /** Digests (eventKey) of the claimed events; empty when not recorded. */
  events: string[];
  /**
   * False only on claims written before a minute could take several pages: once the single item was full they
   * counted `count` events without naming them, so nobody can tell which events of the minute they own.
   */
  recorded: boolean;
  count: number;
  /** Minutes the contribution spans: a delivery can straddle a minute boundary, a backfill claim cannot. */
  span: number;
  stored: boolean;
  /** ISO time the claim was made. */
  claimedAt: string;
  /** The page the claim lies on (0: the minute's first item). @default 0 */
  page?: number;
  /**
   * More of the contribution's events of this minute are claimed on a later page. A contribution all of whose
   * parts say so was interrupted while claiming: its event set is not settled, so no one else may store it.
   */
  more?: boolean;
  /**
   * Stored (with `stored`) by a backfill, apart from the contribution's other minutes: a delivery that failed
   * over several minutes, finished minute by minute (backfillMinute). Its later runs leave this minute out.
   */
  apart?: boolean;
  /**
   * What its writer stores with (IngestDeps.settings): whoever finishes the contribution stores with them too.
   * Absent on claims written before they were recorded, and by writers that record none.
   */
  settings?: IngestSettings;
}

export interface MinuteCoverage {
  /** Start of the minute, epoch ms. */
  minute: number;
  /** Version of the open page's item: 0 when it does not exist yet; every claim or seal increments it. */
  version: number;
  /** The claims on every page of the minute. */
  claims: Claim[];
  /** The open page: the first one not sealed, where claims are added. Pages before it are final. @default 0 */
  page?: number;
}

/** Persistence of coverage records (DynamoDB: functions/adapters/dynamo/coverage.ts). */
export interface CoverageStore {
  /**
   * Records of the stream's minutes in [fromMinute, toMinute], every page, strongly consistent; absent minutes
   * omitted. `page` and `version` are those of each minute's open page.
   */
  read(ref: StreamRef, fromMinute: number, toMinute: number): Promise<MinuteCoverage[]>;
  /**
   * Puts `claim` on its page (`claim.page`, default 0), replacing the contribution's claim there if any, if that
   * page is still at `version` (0: absent); with `seal`, closes the page to further claims in the same write.
   * False if someone wrote the page in between.
   */
  addClaim(ref: StreamRef, minute: number, version: number, claim: Claim, seal?: boolean): Promise<boolean>;
  /** Closes `page` (existing, at `version`) to further claims; false if someone wrote it in between. */
  seal(ref: StreamRef, minute: number, page: number, version: number): Promise<boolean>;
  /** Marks the contribution's claims on `pages` (default: page 0) stored; with `apart`, stored apart too. */
  markStored(
    ref: StreamRef,
    minute: number,
    contribution: string,
    pages?: readonly number[],
    apart?: boolean,
  ): Promise<void>;
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

/** Digests named by claims of contributions other than `except`. */
function takenKeys(coverage: MinuteCoverage, except?: string): Set<string> {
  const taken = new Set<string>();
  for (const c of coverage.claims) if (c.contribution !== except) for (const k of c.events) taken.add(k);
  return taken;
}

/** Claims of the minute that count events without naming them (written before pages): see Claim#recorded. */
function hasUnnamedClaims(coverage: MinuteCoverage): boolean {
  return coverage.claims.some((c) => !c.recorded);
}

/** A contribution's parts in one minute, taken together. */
interface Contribution {
  contribution: string;
  source: ClaimSource;
  events: string[];
  pages: number[];
  /** Every part is marked stored. */
  stored: boolean;
  /** Some part is marked stored: its flows were stored whole (its writer may have died marking the others). */
  marked: boolean;
  /** Its last part was written: its event set is settled. */
  complete: boolean;
  recorded: boolean;
  span: number;
  claimedAt: string;
  settings: IngestSettings | undefined;
}

function contributions(coverage: MinuteCoverage): Map<string, Contribution> {
  const out = new Map<string, Contribution>();
  for (const c of coverage.claims) {
    const page = c.page ?? 0;
    const seen = out.get(c.contribution);
    if (seen === undefined) {
      out.set(c.contribution, {
        contribution: c.contribution,
        source: c.source,
        events: [...c.events],
        pages: [page],
        stored: c.stored,
        marked: c.stored,
        complete: c.more !== true,
        recorded: c.recorded,
        span: c.span,
        claimedAt: c.claimedAt,
        settings: c.settings,
      });
      continue;
    }
    seen.events.push(...c.events);
    seen.pages.push(page);
    seen.stored &&= c.stored;
    seen.marked ||= c.stored;
    seen.complete ||= c.more !== true;
    seen.recorded &&= c.recorded;
    if (c.claimedAt < seen.claimedAt) seen.claimedAt = c.claimedAt;
    seen.settings ??= c.settings;
  }
  return out;
}

/** How much the open page of `coverage` takes from `contribution` (undefined: a new one). */
interface Room {
  page: number;
  /** Events it can still name: 0 when it must be sealed first. */
  events: number;
  /** The contribution's claim already on it (a new part replaces it, adding to its events). */
  own: Claim | undefined;
  /** Whether naming `n` more events fills the page, which the same write then seals. */
  fullAfter(n: number): boolean;
}

function roomOf(coverage: MinuteCoverage, contribution: string | undefined, budgets: Budgets): Room {
  const page = coverage.page ?? 0;
  let named = 0;
  let claims = 0;
  let own: Claim | undefined;
  for (const c of coverage.claims) {
    if ((c.page ?? 0) !== page) continue;
    named += c.events.length;
    claims++;
    if (c.contribution === contribution) own = c;
  }
  const claimsAfter = own === undefined ? claims + 1 : claims;
  return {
    page,
    events: claimsAfter > budgets.claims ? 0 : Math.max(0, budgets.events - named),
    own,
    fullAfter: (n) => named + n >= budgets.events || claimsAfter >= budgets.claims,
  };
}

/** The part of a claim that goes on the page of `room`: `keys`, added to the contribution's claim there. */
function newPart(
  room: Room,
  contribution: string,
  source: ClaimSource,
  keys: readonly string[],
  span: number,
  more: boolean,
  now: number,
  settings: IngestSettings | undefined,
): Claim {
  const events = room.own === undefined ? [...keys] : [...room.own.events, ...keys];
  return {
    contribution,
    source,
    events,
    recorded: true,
    count: events.length,
    span,
    stored: false,
    claimedAt: new Date(now).toISOString(),
    page: room.page,
    more,
    ...(settings === undefined ? {} : { settings }),
  };
}

/** `coverage` after `part` was written on its open page, which `sealed` closed. */
function withPart(coverage: MinuteCoverage, part: Claim, sealed: boolean): MinuteCoverage {
  const page = coverage.page ?? 0;
  const claims = coverage.claims.filter(
    (c) => (c.page ?? 0) !== page || c.contribution !== part.contribution,
  );
  claims.push(part);
  return sealed
    ? { minute: coverage.minute, version: 0, claims, page: page + 1 }
    : { minute: coverage.minute, version: coverage.version + 1, claims, page };
}

/**
 * Seals the open page, which can take no claim (full, or filled under other budgets): on success the next page
 * is open, otherwise the minute is read again.
 */
async function sealOpenPage(
  store: CoverageStore,
  ref: StreamRef,
  coverage: MinuteCoverage,
): Promise<MinuteCoverage> {
  const page = coverage.page ?? 0;
  if (await store.seal(ref, coverage.minute, page, coverage.version)) {
    return { minute: coverage.minute, version: 0, claims: coverage.claims, page: page + 1 };
  }
  return reread(store, ref, coverage.minute);
}

/** A claim that another contribution's writer, gone, left unstored (CoverageOptions.abandoned). */
interface Abandoned {
  contribution: string;
  /** Digests of its events, of every minute read. */
  events: string[];
  /** Its parts, by minute. */
  parts: { minute: number; pages: number[] }[];
  /** Its event set is known whole: it was claimed in every minute it spans, each to its last part, naming its events. */
  settled: boolean;
  /** What its writer stored with (Claim#settings). */
  settings: IngestSettings | undefined;
}

/** Claims of contributions other than `own` on the minutes read, no part of which is marked stored. */
function abandonedClaims(known: Iterable<MinuteCoverage>, own: string): Abandoned[] {
  const out = new Map<string, Abandoned & { marked: boolean; span: number }>();
  for (const coverage of known) {
    for (const c of contributions(coverage).values()) {
      if (c.contribution === own) continue;
      let claim = out.get(c.contribution);
      if (claim === undefined) {
        claim = {
          contribution: c.contribution,
          events: [],
          parts: [],
          settled: true,
          marked: false,
          span: c.span,
          settings: c.settings,
        };
        out.set(c.contribution, claim);
      }
      claim.events.push(...c.events);
      claim.parts.push({ minute: coverage.minute, pages: c.pages });
      claim.settled &&= c.complete && c.recorded;
      claim.marked ||= c.marked;
      claim.settings ??= c.settings;
    }
  }
  return [...out.values()]
    .filter((c) => !c.marked)
    .map(({ contribution, events, parts, settled, span, settings }) => ({
      contribution,
      events,
      parts,
      settings,
      // Fewer minutes than it spans: its writer died while claiming (minutes are claimed in order), or the rest lie
      // beyond this payload's; either way its events are not all known here.
      settled: settled && parts.length === span,
    }));
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

/**
 * What a contribution is finished with: the settings its claims recorded (Claim#settings), if any, with `adopted`
 * naming them when they are not the run's own. Stored with others, the flows its writer stored would be taken for
 * redeliveries or counted again under other keys (IngestSettings).
 */
function finishing(
  deps: IngestDeps,
  claimed: IngestSettings | undefined,
): { deps: IngestDeps; adopted?: IngestSettings } {
  if (claimed === undefined) return { deps };
  const adopted = deps.settings === undefined || !sameSettings(deps.settings, claimed);
  return { deps: withSettings(deps, claimed), ...(adopted ? { adopted: claimed } : {}) };
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
    alertsOpened: 0,
    alertsSent: 0,
    alertsSuppressed: 0,
    alertsHeld: [],
    attributionMemo: "none",
  };
}

export interface DeliveryResult extends IngestResult {
  /** Events of the payload that another contribution (a backfill, an earlier differently batched copy) counted. */
  eventsAlreadyCounted: number;
  /**
   * Claims that writers now gone had left unstored, finished by this run under their own contributions, every
   * event of each being in the payload (CoverageOptions.abandoned). Their events are not in the run's own result.
   */
  completed: CompletedClaim[];
  /** Events of the payload claimed by such claims that could not be finished: not every event of theirs is in it. */
  eventsPending: number;
  /**
   * The settings the payload was stored with when they were not the run's own: those its first run claimed it under
   * (Claim#settings), which a retry across a change of settings, or a redrive given other options, keeps.
   */
  settings?: IngestSettings;
}

/** A gone writer's claim, finished by a delivery that held all its events (DeliveryResult.completed). */
export interface CompletedClaim {
  contribution: string;
  /** The payload's events it held, by index. */
  events: number[];
  /** Its run; `malformed[].index` refers to the payload's events. */
  result: IngestResult;
  /** The settings it was finished with when they were not the run's own: its writer's (Claim#settings). */
  settings?: IngestSettings;
}

export interface CoverageOptions {
  now?: () => number;
  /** Event digests per page of a stream-minute's record. @default MINUTE_EVENT_BUDGET */
  minuteEventBudget?: number;
  /** Claims per page of a stream-minute's record. @default ITEM_CLAIM_BUDGET */
  itemClaimBudget?: number;
  /** When a delivery must be stored by (IngestOptions.deadline). */
  deadline?: Deadline;
  /** Aborted once the invocation has answered: no claim is written after (IngestOptions.signal). */
  signal?: AbortSignal;
  /** What the delivery's run has done so far (IngestOptions.progress). */
  progress?: IngestProgress;
  /**
   * Every claim of another contribution not marked stored was left by a writer that is gone: `replay` on the
   * embedded store, which one process holds at a time. Such a claim, all of whose events the payload holds, is
   * finished as backfillMinute finishes one: under its own contribution, attributed from its memo if it kept one.
   * Never for a table that live ingest or another command may be writing: their claims are still being stored.
   */
  abandoned?: boolean;
}

interface Budgets {
  events: number;
  claims: number;
}

function budgetsOf(options: CoverageOptions): Budgets {
  return {
    events: Math.max(1, options.minuteEventBudget ?? MINUTE_EVENT_BUDGET),
    claims: Math.max(1, options.itemClaimBudget ?? ITEM_CLAIM_BUDGET),
  };
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
  const contribution = deliveryContribution(payload.logGroup, payload.logStream, all);
  const { deadline, signal, progress } = options;
  if (coverage === undefined || all.length === 0) {
    const result = await ingestBatch(all, contribution, deps, { deadline, signal, progress });
    return { ...result, eventsAlreadyCounted: 0, completed: [], eventsPending: 0 };
  }
  const now = options.now ?? Date.now;
  const budgets = budgetsOf(options);
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
  /** The settings the contribution's claims record, once found: its first claim's, which every run stores with. */
  let claimed = [...known.values()]
    .flatMap((m) => m.claims)
    .find((c) => c.contribution === contribution && c.settings !== undefined)?.settings;
  let resumed = finishing(deps, claimed);
  // Never claimed before: no earlier run can have kept an attribution memo, and none is read. A duplicate
  // delivery running at the same time finds out when it saves its own (ingest.ts).
  const firstRun = ![...known.values()].some((m) => m.claims.some((c) => c.contribution === contribution));
  const { completed, eventsPending } =
    options.abandoned === true
      ? await finishAbandoned(all, keys, ref, contribution, deps, coverage, known.values())
      : { completed: [], eventsPending: 0 };
  const finished = completed.reduce((n, c) => n + c.events.length, 0);

  // Claim every minute before storing anything: once this contribution has stored, the set of events it
  // owns can no longer change, so a retry stores exactly the same events under the same contribution.
  const kept: number[] = [];
  const toMark: { minute: number; pages: number[] }[] = [];
  /** Whether a claim of this contribution is marked stored: it was stored whole before (below). */
  let storedBefore = false;
  for (const minute of minutes) {
    const events = byMinute.get(minute) ?? [];
    let current = known.get(minute) ?? emptyMinute(minute);
    // A backfill stored this minute's events of the contribution apart from the others (backfillMinute): counted.
    if (current.claims.some((c) => c.contribution === contribution && c.apart === true)) continue;
    for (;;) {
      signal?.throwIfAborted();
      const taken = takenKeys(current, contribution);
      const mine = events.filter((i) => !taken.has(keys[i] as string));
      const own = current.claims.filter((c) => c.contribution === contribution);
      if (claimed === undefined) {
        // A run of the same delivery going at the same time (a duplicate during a deploy that changed the settings)
        // may have claimed first, found on a reread: this one claims and stores with that claim's settings too.
        claimed = own.find((c) => c.settings !== undefined)?.settings;
        if (claimed !== undefined) resumed = finishing(deps, claimed);
      }
      const named = new Set(own.flatMap((c) => c.events));
      // What nobody names yet: all of `mine` at first; then what did not fit the page the last part filled, or
      // what a writer that died between two parts left (nothing was stored then: its event set may still grow).
      const unnamed = [...new Set(mine.map((i) => keys[i] as string))].filter((k) => !named.has(k));
      if (unnamed.length === 0) {
        kept.push(...mine);
        if (own.some((c) => c.stored)) storedBefore = true;
        const pages = own.filter((c) => !c.stored).map((c) => c.page ?? 0);
        if (pages.length > 0) toMark.push({ minute, pages });
        break;
      }
      const room = roomOf(current, contribution, budgets);
      if (room.events === 0) {
        current = await sealOpenPage(coverage, ref, current);
        continue;
      }
      const take = unnamed.slice(0, room.events);
      const more = take.length < unnamed.length;
      const part = newPart(
        room,
        contribution,
        source,
        take,
        minutes.length,
        more,
        now(),
        resumed.deps.settings,
      );
      const seal = room.fullAfter(take.length);
      current = (await coverage.addClaim(ref, minute, current.version, part, seal))
        ? withPart(current, part, seal)
        : await reread(coverage, ref, minute);
    }
  }
  // Events of others' claims, finished or left pending above, were not counted before.
  const alreadyCounted = all.length - kept.length - finished - eventsPending;
  if (kept.length === 0) {
    return { ...emptyResult(), eventsAlreadyCounted: alreadyCounted, completed, eventsPending };
  }
  kept.sort((a, b) => a - b);
  // Claims are marked once their contribution's flows were stored whole (before its alerts), so one marked claim
  // means the payload's flows are stored: a retry after its alerts failed, a redelivery (at-least-once) or a
  // replay of it writes no flow again. Writing them again would rely on the store's deduplication per flow key,
  // and the keys change when attribution has (Kubernetes reachable again, a pod since gone, another directory
  // given to `replay`): the same packets would be counted under both. The pipeline and the alerts still run, to
  // apply the alerts of a batch that failed before them and hand out those left pending (alerts.ts).
  const result = await ingestBatch(all.select(kept), contribution, resumed.deps, {
    flowsStored: storedBefore,
    firstRun,
    deadline,
    signal,
    progress,
    onFlowsStored: async () => {
      for (const { minute, pages } of toMark) await coverage.markStored(ref, minute, contribution, pages);
    },
  });
  return {
    ...result,
    malformed: result.malformed.map((m) => ({ ...m, index: kept[m.index] as number })),
    eventsAlreadyCounted: alreadyCounted,
    completed,
    eventsPending,
    ...(resumed.adopted === undefined ? {} : { settings: resumed.adopted }),
  };
}

/**
 * Finishes the claims of other contributions on the minutes read that their writers, gone, left unstored
 * (CoverageOptions.abandoned), when every event they name is in `all`: stored under their contribution and with
 * their settings, as they would have stored them, so that the flows such a writer stored before it died are
 * deduplicated (it kept its memo before writing: IngestDeps.memoBeforeWrites), then marked stored. The others' events are left to a delivery that
 * holds them all: no one else may take them, since part of them may be stored.
 */
async function finishAbandoned(
  all: DeliveredEvents,
  keys: readonly string[],
  ref: StreamRef,
  own: string,
  deps: IngestDeps,
  coverage: CoverageStore,
  known: Iterable<MinuteCoverage>,
): Promise<{ completed: CompletedClaim[]; eventsPending: number }> {
  const claims = abandonedClaims(known, own);
  if (claims.length === 0) return { completed: [], eventsPending: 0 };
  const indexOf = new Map<string, number>();
  keys.forEach((k, i) => {
    if (!indexOf.has(k)) indexOf.set(k, i);
  });
  const completed: CompletedClaim[] = [];
  let eventsPending = 0;
  for (const claim of claims) {
    const at = claim.events.map((k) => indexOf.get(k));
    const held = at.filter((i) => i !== undefined);
    if (!claim.settled || held.length < at.length) {
      eventsPending += held.length;
      continue;
    }
    held.sort((a, b) => a - b);
    const finished = finishing(deps, claim.settings);
    const result = await ingestBatch(all.select(held), claim.contribution, finished.deps, {
      onFlowsStored: async () => {
        for (const { minute, pages } of claim.parts) {
          await coverage.markStored(ref, minute, claim.contribution, pages);
        }
      },
    });
    completed.push({
      contribution: claim.contribution,
      events: held,
      result: {
        ...result,
        malformed: result.malformed.map((m) => ({ ...m, index: held[m.index] as number })),
      },
      ...(finished.adopted === undefined ? {} : { settings: finished.adopted }),
    });
  }
  return { completed, eventsPending };
}

/** One ingest call made by a backfill, with the events it carried (for reporting malformed lines). */
export interface BackfillBatch {
  contribution: string;
  events: CloudWatchEvent[];
  result: IngestResult;
  /** The settings it was stored with when they were not the backfill's own: the claim's writer's (Claim#settings). */
  settings?: IngestSettings;
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
  /**
   * Left alone: the minute holds claims that count events without naming them (written before a minute could
   * take several pages), so it cannot tell which of them were counted.
   */
  uncertain: number;
  batches: BackfillBatch[];
}

/**
 * Backfills one minute of one stream: finishes abandoned claims whose events of the minute are all at hand (of a
 * delivery's claim over several minutes, the minute's part: see below), then claims and stores the events no one
 * has claimed, in chunks of at most BACKFILL_CLAIM_MAX that fit the open page
 * (so a backfill contribution is one claim on one page). A backfill contribution is the digest of its exact
 * event set, so re-running a backfill finds its own claims and changes nothing.
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
  const budgets = budgetsOf(options);
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
  const store = async (
    contribution: string,
    events: CloudWatchEvent[],
    pages: readonly number[],
    firstRun: boolean,
    by: { deps: IngestDeps; adopted?: IngestSettings } = { deps },
    apart = false,
  ) => {
    // The stream is the node's: the reporter of lines that name none, as in live ingest. The claim is marked
    // inside the batch's run, so that a failure to mark it keeps the run's attribution for whoever finishes it.
    const result = await ingestBatch(DeliveredEvents.fromArray(events, ref.stream), contribution, by.deps, {
      firstRun,
      alertContribution: apart ? digest(`apart\n${contribution}\n${minute}`) : undefined,
      onStored: () => coverage.markStored(ref, minute, contribution, pages, apart),
    });
    done.add(contribution);
    out.batches.push({
      contribution,
      events,
      result,
      ...(by.adopted === undefined ? {} : { settings: by.adopted }),
    });
  };
  let current = options.known ?? (await coverage.read(ref, minute, minute))[0] ?? emptyMinute(minute);
  // A delivery's claim over several minutes is finished here one minute at a time, the only one at hand: its
  // payload may be nowhere else (not kept by the failed-payloads queue, or expired there). That stores what the
  // delivery would have only when no flow bucket holds two minutes: the minute's flows are then the delivery's
  // alone, written under its contribution as its failed run wrote them (attributed from its memo). Its alerts are
  // applied under a contribution of the minute's own, so that the other minutes' hits add to them: a claim not
  // marked stored says that the delivery applied none (it marks its claims before its alerts). Marked `apart`,
  // the minute is left out by the delivery's later runs (a redrive of it after all).
  const apartFits = (d: IngestDeps) => MINUTE_MS % (d.pipeline.bucketSeconds * 1000) === 0;

  for (;;) {
    for (const c of contributions(current).values()) {
      // One still claiming (`complete` false) may yet add events: storing what it named now would make its own
      // later store of the rest a redelivery.
      if (c.stored || done.has(c.contribution) || !c.recorded || !c.complete) continue;
      // With its writer's settings, its flow buckets among them.
      const by = finishing(deps, c.settings);
      const apart = c.span !== 1;
      if (apart && !apartFits(by.deps)) continue;
      // A delivery's own Lambda (or its retry) is given time to finish; an interrupted backfill is not coming back.
      if (c.source !== "backfill" && now() - Date.parse(c.claimedAt) < PENDING_GRACE_MS) continue;
      const events = c.events.map((k) => byKey.get(k));
      if (events.some((e) => e === undefined)) continue;
      // Its writer may have stored part of it, with the attribution its memo keeps.
      await store(c.contribution, events as CloudWatchEvent[], c.pages, false, by, apart);
      out.completed += events.length;
    }
    const taken = takenKeys(current);
    const rest = [...byKey.entries()].filter(([k]) => !taken.has(k)).map(([, e]) => e);
    if (rest.length === 0) break;
    if (hasUnnamedClaims(current)) {
      out.uncertain = rest.length;
      break;
    }
    const room = roomOf(current, undefined, budgets);
    if (room.events === 0) {
      current = await sealOpenPage(coverage, ref, current);
      continue;
    }
    rest.sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const chunk = rest.slice(0, Math.min(BACKFILL_CLAIM_MAX, room.events));
    const keys = chunk.map((e) => eventKey(e.id));
    const contribution = digest(
      `backfill\n${ref.cluster}\n${ref.group}\n${ref.stream}\n${minute}\n${[...keys].sort().join(",")}`,
    );
    const claim = newPart(room, contribution, "backfill", keys, 1, false, now(), deps.settings);
    const seal = room.fullAfter(chunk.length);
    if (!(await coverage.addClaim(ref, minute, current.version, claim, seal))) {
      current = await reread(coverage, ref, minute);
      continue;
    }
    current = withPart(current, claim, seal);
    await store(contribution, chunk, [room.page], true);
    out.stored += chunk.length;
  }

  // What the earlier writers own, for the report.
  for (const c of contributions(current).values()) {
    if (done.has(c.contribution)) continue;
    const mine = c.events.filter((k) => byKey.has(k)).length;
    if (c.stored) out.alreadyCounted += mine;
    else out.pending += mine;
  }
  return out;
}
