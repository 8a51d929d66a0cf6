// Flow queries: one page costs at most two Query requests, never a Scan (docs/flow-store.md, "Access patterns").
//
// - by time only: the table's hour partitions `FLOW#<cluster>#<hour>` in order, only those that hold flows (their
//   markers, markers.ts, list them); a page that exhausts one partition continues into the next with its
//   second Query, then hands back a cursor.
// - by namespace (and workload or pod): bySrcNamespace and byDstNamespace, one Query each, merged by sort key,
//   each flow once (a flow inside one namespace is in both). Workload and pod are filters on those queries.
// - by IP: bySrcIp and byDstIp the same way; other criteria become filters.
import { isIP } from "node:net";
import { bucketStart } from "../../core/aggregate.ts";
import { normalizeIp } from "../../core/holders.ts";
import type { FlowQuery, Page } from "../../core/ports.ts";
import type { FlowRecord } from "../../core/types.ts";
import { type CursorState, decodeCursor, encodeCursor, fingerprint, InvalidCursorError } from "./cursor.ts";
import { flowOf } from "./items.ts";
import {
  checkCluster,
  flowHoursPartition,
  flowKeyOfSk,
  flowPartition,
  hourOf,
  InvalidInputError,
  ipKey,
  iso,
  namespaceKey,
  nextHour,
  normalizeInstant,
  timeRange,
} from "./keys.ts";
import { listMarkers } from "./markers.ts";
import { Expression, type Item, type QueryResult, queryRange, type StoreContext } from "./requests.ts";
import type { CallReport } from "./retry.ts";
import { INDEX } from "./schema.ts";

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;

/**
 * Kinds as Kubernetes spells them, by their lower-case names and kubectl's plurals and short names, so that
 * `--workload deployment/api` and `--workload deploy/api` find `Deployment/api`. Other kinds are taken as given.
 */
const CANONICAL_KINDS: Record<string, string> = Object.fromEntries(
  (
    [
      ["Deployment", "deployments", "deploy"],
      ["StatefulSet", "statefulsets", "sts"],
      ["DaemonSet", "daemonsets", "ds"],
      ["ReplicaSet", "replicasets", "rs"],
      ["ReplicationController", "replicationcontrollers", "rc"],
      ["Job", "jobs"],
      ["CronJob", "cronjobs", "cj"],
      ["Pod", "pods", "po"],
      ["Service", "services", "svc"],
      // Argo Rollouts' (holders.ts workloadOf).
      ["Rollout", "rollouts", "ro"],
    ] as const
  ).flatMap(([kind, ...aliases]) => [kind.toLowerCase(), ...aliases].map((alias) => [alias, kind])),
);

interface EndpointMatch {
  namespace?: string;
  workloadKind?: string;
  workloadName?: string;
  pod?: string;
}

type Side = "src" | "dst";

/** Filter on one endpoint: appends its terms to `e` and returns them (undefined: no condition). */
function endpointFilter(e: Expression, side: Side, m: EndpointMatch): string | undefined {
  const terms: string[] = [];
  if (m.namespace !== undefined) terms.push(`${e.name(`${side}.namespace`)} = ${e.value(m.namespace)}`);
  if (m.workloadName !== undefined) {
    terms.push(`${e.name(`${side}.workload.name`)} = ${e.value(m.workloadName)}`);
    if (m.workloadKind !== undefined) {
      const canonical = CANONICAL_KINDS[m.workloadKind.toLowerCase()] ?? m.workloadKind;
      const kind = e.name(`${side}.workload.kind`);
      terms.push(
        canonical === m.workloadKind
          ? `${kind} = ${e.value(canonical)}`
          : `${kind} IN (${e.value(m.workloadKind)}, ${e.value(canonical)})`,
      );
    }
  }
  if (m.pod !== undefined) {
    terms.push(
      `${e.name(`${side}.kind`)} = ${e.value("pod")}`,
      `${e.name(`${side}.name`)} = ${e.value(m.pod)}`,
    );
  }
  return terms.length === 0 ? undefined : terms.join(" AND ");
}

function and(...terms: (string | undefined)[]): string | undefined {
  const present = terms.filter((t): t is string => t !== undefined);
  return present.length === 0 ? undefined : present.map((t) => `(${t})`).join(" AND ");
}

interface IndexSide {
  indexName: string;
  keyAttribute: string;
  keyValue: string;
  /** Builds this side's filter into a fresh expression. */
  filter: (e: Expression) => string | undefined;
}

interface Plan {
  cluster: string;
  fingerprint: string;
  lo: string;
  hi: string;
  since: string;
  until: string;
  /** The earliest bucket start that may hold a packet at or after `since`. */
  from: string;
  limit: number;
  /** Absent: by time over the table's hour partitions. */
  sides?: [IndexSide, IndexSide];
  timeFilter: (e: Expression) => string | undefined;
}

function checkedIp(ip: string): string {
  const version = isIP(ip);
  if (version === 0) throw new InvalidInputError(`ip is not an IPv4 or IPv6 address: ${JSON.stringify(ip)}`);
  return version === 6 ? normalizeIp(ip) : ip;
}

export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new InvalidInputError(`limit must be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${limit}`);
  }
  return limit;
}

function plan(query: FlowQuery, bucketsMs: readonly number[]): Plan {
  const cluster = checkCluster(query.cluster);
  const since = normalizeInstant(query.since, "since");
  const until = normalizeInstant(query.until, "until");
  // A flow is in the range when one of its packets is: the bucket holding `since` may start before it, and one
  // that starts before `until` may hold only later packets. Buckets are read from the earliest start of a bucket
  // holding `since`, of every length the flows were counted in (buckets start at multiples of their own length:
  // aggregate.ts bucketStart, so a 45 s bucket may start before the 60 s one), and the packets' span decides.
  const sinceMs = Date.parse(since);
  const from = iso(Math.min(...bucketsMs.map((length) => bucketStart(sinceMs, length))));
  const limit = checkLimit(query.limit);
  if ((query.workload !== undefined || query.pod !== undefined) && query.namespace === undefined) {
    throw new InvalidInputError("workload and pod queries need a namespace");
  }
  let workloadKind: string | undefined;
  let workloadName: string | undefined;
  if (query.workload !== undefined) {
    const slash = query.workload.indexOf("/");
    workloadKind = slash === -1 ? undefined : query.workload.slice(0, slash);
    workloadName = slash === -1 ? query.workload : query.workload.slice(slash + 1);
    if (workloadName.length === 0 || workloadKind === "") {
      throw new InvalidInputError(
        `workload must be name or kind/name, got ${JSON.stringify(query.workload)}`,
      );
    }
  }
  const ip = query.ip === undefined ? undefined : checkedIp(query.ip);
  const internal = query.internal;
  /** What every plan's filter holds: a packet in the range, and the `internal` asked for. */
  const common = (e: Expression): (string | undefined)[] => [
    `${e.name("lastSeen")} >= ${e.value(since)} AND ${e.name("firstSeen")} <= ${e.value(until)}`,
    internal === undefined ? undefined : `${e.name("internal")} = ${e.value(internal)}`,
  ];
  const { lo, hi } = timeRange(from, until);
  const base = {
    cluster,
    lo,
    hi,
    since,
    until,
    from,
    limit,
    timeFilter: (e: Expression) => and(...common(e)),
    fingerprint: fingerprint([
      "flows",
      cluster,
      since,
      until,
      query.namespace ?? null,
      query.workload ?? null,
      query.pod ?? null,
      ip ?? null,
      internal ?? null,
    ]),
  };
  const match: EndpointMatch = {
    ...(workloadName === undefined ? {} : { workloadName }),
    ...(workloadKind === undefined ? {} : { workloadKind }),
    ...(query.pod === undefined ? {} : { pod: query.pod }),
  };
  if (ip !== undefined) {
    // The IP picks the index; namespace, workload and pod must hold on either end of the flow.
    const either: EndpointMatch = {
      ...match,
      ...(query.namespace === undefined ? {} : { namespace: query.namespace }),
    };
    const filter = (e: Expression) => {
      const src = endpointFilter(e, "src", either);
      const dst = endpointFilter(e, "dst", either);
      return and(src === undefined ? undefined : `(${src}) OR (${dst})`, ...common(e));
    };
    const key = ipKey(cluster, ip);
    return {
      ...base,
      sides: [
        { indexName: INDEX.srcIp, keyAttribute: "srcIpKey", keyValue: key, filter },
        { indexName: INDEX.dstIp, keyAttribute: "dstIpKey", keyValue: key, filter },
      ],
    };
  }
  if (query.namespace !== undefined) {
    // Each side's index already fixes that side's namespace; the workload or pod must be on that same side.
    const key = namespaceKey(cluster, query.namespace);
    const sideFilter = (side: Side) => (e: Expression) => and(endpointFilter(e, side, match), ...common(e));
    return {
      ...base,
      sides: [
        { indexName: INDEX.srcNamespace, keyAttribute: "srcNsKey", keyValue: key, filter: sideFilter("src") },
        { indexName: INDEX.dstNamespace, keyAttribute: "dstNsKey", keyValue: key, filter: sideFilter("dst") },
      ],
    };
  }
  return base;
}

/** Hours one marker Query lists (markers.ts); those not read by its page travel in the cursor. */
export const HOURS_PER_LISTING = 12;

/** The hours from `first` to `last`, both `yyyy-mm-ddThh`, when there are at most `most` of them. */
function hoursBetween(first: string, last: string, most: number): string[] | undefined {
  const hours = [first];
  while ((hours.at(-1) as string) < last) {
    if (hours.length === most) return undefined;
    hours.push(nextHour(hours.at(-1) as string));
  }
  return hours;
}

/**
 * By time: the hours that hold flows, in order. A range of one or two hours reads its partitions directly;
 * a longer one lists the hours' markers first (one Query for up to HOURS_PER_LISTING of them) and reads only
 * those partitions. Where it is: `hours`, those listed and not yet finished (the first being read, from after
 * `after`), and `next`, the hour the listing continues from (absent when the listing is complete).
 */
async function timePage(
  ctx: StoreContext,
  p: Plan,
  cursor: CursorState,
  report: CallReport,
): Promise<Page<FlowRecord>> {
  const firstHour = hourOf(p.from);
  const lastHour = hourOf(p.until);
  let hours: string[];
  let next: string | undefined;
  let after = cursor.after;
  if (cursor.hours !== undefined || cursor.next !== undefined) {
    hours = [...(cursor.hours ?? [])];
    next = cursor.next;
  } else {
    const direct = hoursBetween(firstHour, lastHour, 2);
    hours = direct ?? [];
    next = direct === undefined ? firstHour : undefined;
  }
  const items: FlowRecord[] = [];
  for (let queries = 0; queries < 2 && items.length < p.limit; queries++) {
    if (hours.length === 0) {
      if (next === undefined) break;
      const listed = await listMarkers(
        ctx,
        flowHoursPartition(p.cluster),
        next,
        lastHour,
        HOURS_PER_LISTING,
        report,
        nextHour,
      );
      hours = listed.periods;
      next = listed.next;
      continue;
    }
    const part = hours[0] as string;
    const e = new Expression();
    const filterExpression = p.timeFilter(e);
    const result = await queryRange(
      ctx,
      {
        keyAttribute: "pk",
        keyValue: flowPartition(p.cluster, part),
        lo: p.lo,
        hi: p.hi,
        limit: p.limit - items.length,
        filter: e,
        ...(filterExpression === undefined ? {} : { filterExpression }),
        ...(after === undefined ? {} : { start: flowKeyOfSk(p.cluster, after) }),
      },
      report,
    );
    items.push(...result.items.map(flowOf));
    after = result.lastEvaluatedSk;
    if (after === undefined) hours.shift();
  }
  if (hours.length === 0 && next === undefined) return { items };
  return {
    items,
    cursor: encodeCursor(p.fingerprint, {
      ...(hours.length === 0 ? {} : { hours }),
      ...(next === undefined ? {} : { next }),
      ...(after === undefined ? {} : { after }),
    }),
  };
}

/** A time cursor's hours must be the query's, in order, and its position inside the first of them. */
function checkTimeCursor(p: Plan, cursor: CursorState): void {
  const firstHour = hourOf(p.from);
  const lastHour = hourOf(p.until);
  const inRange = (hour: string) => hour >= firstHour && hour <= lastHour;
  if (cursor.days !== undefined || cursor.nextDay !== undefined || cursor.done !== undefined) {
    throw new InvalidCursorError("cursor is not one of a question by time; start again without it");
  }
  const hours = cursor.hours ?? [];
  if (hours.length === 0 && cursor.next === undefined) {
    throw new InvalidCursorError("cursor partition is missing");
  }
  if (
    hours.length > HOURS_PER_LISTING ||
    !hours.every((h, i) => inRange(h) && (i === 0 || h > (hours[i - 1] as string)))
  ) {
    throw new InvalidCursorError("cursor partitions are outside the query's range or out of order");
  }
  if (
    cursor.next !== undefined &&
    (!inRange(cursor.next) || (hours.length > 0 && cursor.next <= (hours.at(-1) as string)))
  ) {
    throw new InvalidCursorError("cursor partition to list from is outside the query's range");
  }
  if (cursor.after !== undefined && hourOf(cursor.after) !== hours[0]) {
    throw new InvalidCursorError("cursor position does not match its partition");
  }
}

/**
 * Both sides are read from the same position with the page limit each, then merged. Everything at or before
 * the lowest position a side stopped at (its LastEvaluatedKey) has been seen on both sides, so the page may
 * return exactly that part; the rest is read again by the next page, which starts both sides after it.
 */
async function indexPage(
  ctx: StoreContext,
  p: Plan,
  sides: [IndexSide, IndexSide],
  cursor: CursorState,
  report: CallReport,
): Promise<Page<FlowRecord>> {
  const done = cursor.done ?? [false, false];
  const after = cursor.after;
  const results = await Promise.all(
    sides.map((side, i): Promise<QueryResult | undefined> => {
      if (done[i]) return Promise.resolve(undefined);
      const e = new Expression();
      const filterExpression = side.filter(e);
      return queryRange(
        ctx,
        {
          indexName: side.indexName,
          keyAttribute: side.keyAttribute,
          keyValue: side.keyValue,
          lo: p.lo,
          hi: p.hi,
          limit: p.limit,
          filter: e,
          ...(filterExpression === undefined ? {} : { filterExpression }),
          ...(after === undefined
            ? {}
            : { start: { ...flowKeyOfSk(p.cluster, after), [side.keyAttribute]: side.keyValue } }),
        },
        report,
      );
    }),
  );
  let boundary: string | undefined;
  for (const r of results) {
    const stop = r?.lastEvaluatedSk;
    if (stop !== undefined && (boundary === undefined || stop < boundary)) boundary = stop;
  }
  const bySk = new Map<string, Item>();
  for (const r of results) {
    for (const item of r?.items ?? []) {
      const sk = String(item.sk);
      if (boundary === undefined || sk <= boundary) bySk.set(sk, item);
    }
  }
  let keys = [...bySk.keys()].sort();
  if (keys.length > p.limit) {
    keys = keys.slice(0, p.limit);
    boundary = keys[keys.length - 1];
  }
  const items = keys.map((sk) => flowOf(bySk.get(sk) as Item));
  if (boundary === undefined) return { items };
  const stop = boundary;
  const nextDone: [boolean, boolean] = [0, 1].map((i) => {
    const r = results[i];
    if (r === undefined) return true;
    return r.lastEvaluatedSk === undefined && r.items.every((item) => String(item.sk) <= stop);
  }) as [boolean, boolean];
  if (nextDone[0] && nextDone[1]) return { items };
  return { items, cursor: encodeCursor(p.fingerprint, { after: stop, done: nextDone }) };
}

/** `bucketsMs`: the lengths of the buckets the flows were counted in (how far back a bucket may start). */
export async function queryFlowsPage(
  ctx: StoreContext,
  query: FlowQuery,
  report: CallReport,
  bucketsMs: readonly number[],
): Promise<Page<FlowRecord>> {
  const p = plan(query, bucketsMs);
  if (p.since > p.until) return { items: [] };
  const inRange = (after: string) => after >= p.lo && after <= p.hi;
  const cursor = query.cursor === undefined ? {} : decodeCursor(query.cursor, p.fingerprint, inRange);
  if (p.sides === undefined) {
    if (query.cursor !== undefined) checkTimeCursor(p, cursor);
    return timePage(ctx, p, cursor, report);
  }
  return indexPage(ctx, p, p.sides, cursor, report);
}
