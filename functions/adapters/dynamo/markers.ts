// Markers of the periods that hold items (docs/flow-store.md, "Hour markers" and "Alert day markers"). Flows live in
// one partition per hour and alerts in one per day, so a question by time alone would read one partition after
// another; on a quiet cluster most of them are empty, and a month's range would cost 720 Queries of flows (a year's,
// 366 of alerts). Each hour that holds a flow has a marker item `FLOWHOURS#<cluster>` / `<hour>`, and each day that
// holds an alert one `ALERTDAYS#<cluster>` / `<day>`, written before the period's first item; a question by time
// lists the markers of its range with one Query and reads only those partitions.
//
// A marker is written once per store per period: the store remembers the markers it wrote (and the TTL it gave
// them), so the write scales with periods, not with items or deliveries.
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { alertDaysPartition, dayOf, expiresAt, flowHoursPartition, hourOf, retainedUntil } from "./keys.ts";
import { isConditionFailure, queryRange, type StoreContext } from "./requests.ts";
import { type CallReport, mapBounded, withRetry } from "./retry.ts";
import { TTL_ATTRIBUTE } from "./schema.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Markers one store remembers having written; past this it forgets them all and writes them again. */
const REMEMBERED_MARKERS = 10_000;

/**
 * The markers a store has written: `<marker partition>#<period>` → the TTL asked for (`retentionDays` after the
 * period's end, before expiresAt's four-year floor: that floor moves with the clock, and would have every delivery
 * of an old hour put its marker again).
 */
export type MarkedPeriods = Map<string, number>;

type MarkerContext = StoreContext & { retentionDays: number; concurrency: number };

/**
 * Makes sure every hour of `buckets` (canonical ISO bucket starts of one cluster) has its marker, with a TTL at
 * least that of any flow of the hour: a flow's TTL counts from its bucket, a marker's from the end of its hour.
 */
export function markHours(
  ctx: MarkerContext,
  marked: MarkedPeriods,
  cluster: string,
  buckets: Iterable<string>,
  now: number,
  report: CallReport,
  signal?: AbortSignal,
): Promise<void> {
  const periods = new Map<string, number>();
  for (const bucket of buckets) {
    const hour = hourOf(bucket);
    if (!periods.has(hour)) periods.set(hour, Date.parse(`${hour}:00:00.000Z`) + HOUR_MS);
  }
  return putMarkers(ctx, marked, flowHoursPartition(cluster), periods, now, report, signal);
}

/**
 * Makes sure the day of `openedAt` (an alert's, canonical ISO) has its marker, with a TTL at least that of the
 * day's alerts (theirs counts from their opening, the marker's from the day's end).
 */
export function markAlertDay(
  ctx: MarkerContext,
  marked: MarkedPeriods,
  cluster: string,
  openedAt: string,
  now: number,
  report: CallReport,
): Promise<void> {
  const day = dayOf(openedAt);
  const periods = new Map([[day, Date.parse(`${day}T00:00:00.000Z`) + DAY_MS]]);
  return putMarkers(ctx, marked, alertDaysPartition(cluster), periods, now, report);
}

/**
 * Puts the marker of each period of `periods` (period → the epoch ms it ends at) in `partition`. A marker that is
 * there with that TTL or a later one is left as it is (a condition, so a retried or concurrent write never shortens
 * it). Requests are counted in `report`.
 */
async function putMarkers(
  ctx: MarkerContext,
  marked: MarkedPeriods,
  partition: string,
  periods: ReadonlyMap<string, number>,
  now: number,
  report: CallReport,
  signal?: AbortSignal,
): Promise<void> {
  const wanted = [...periods].filter(
    ([period, end]) =>
      (marked.get(`${partition}#${period}`) ?? Number.NEGATIVE_INFINITY) <
      retainedUntil(end, ctx.retentionDays),
  );
  if (wanted.length === 0) return;
  const shared = inFlight.get(marked) ?? new Map<string, Promise<void>>();
  inFlight.set(marked, shared);
  await mapBounded(
    wanted,
    ctx.concurrency,
    ([period, end]) => {
      // The windows of a payload's keys open at once: the first to want the day's marker puts it, the others wait.
      const key = `${partition}#${period}`;
      let put = shared.get(key);
      if (put === undefined) {
        put = putMarker(ctx, marked, partition, period, end, now, report).finally(() => shared.delete(key));
        shared.set(key, put);
      }
      return put;
    },
    signal,
  );
}

/** Marker puts under way, per store (by its remembered markers): one request for a period however many want it. */
const inFlight = new WeakMap<MarkedPeriods, Map<string, Promise<void>>>();

/** Puts one marker (see putMarkers) and remembers it. */
async function putMarker(
  ctx: MarkerContext,
  marked: MarkedPeriods,
  partition: string,
  period: string,
  end: number,
  now: number,
  report: CallReport,
): Promise<void> {
  const ttl = expiresAt(end, ctx.retentionDays, now);
  try {
    await withRetry("PutItem", ctx.retry, report, () =>
      ctx.doc.send(
        new PutCommand({
          TableName: ctx.tableName,
          Item: { pk: partition, sk: period, [TTL_ATTRIBUTE]: ttl },
          ConditionExpression: "attribute_not_exists(#ttl) OR #ttl < :ttl",
          ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":ttl": ttl },
        }),
      ),
    );
  } catch (error) {
    // Already there with this TTL or a later one: marked all the same.
    if (!isConditionFailure(error)) throw error;
  }
  if (marked.size >= REMEMBERED_MARKERS) marked.clear();
  marked.set(`${partition}#${period}`, retainedUntil(end, ctx.retentionDays));
}

/** The periods a marker listing found, in order, and the period it continues from when there may be more. */
export interface MarkedList {
  periods: string[];
  next?: string;
}

/**
 * The periods marked in `partition` (flowHoursPartition, alertDaysPartition) from `first` to `last` (inclusive), in
 * order: at most `limit` of them, and `next` (`following` the last one read), the period the listing continues from
 * when there may be more.
 */
export async function listMarkers(
  ctx: StoreContext,
  partition: string,
  first: string,
  last: string,
  limit: number,
  report: CallReport,
  following: (period: string) => string,
): Promise<MarkedList> {
  const result = await queryRange(
    ctx,
    // Consistent: a marker put a moment ago is listed (markers are tiny, so this costs next to nothing).
    { keyAttribute: "pk", keyValue: partition, lo: first, hi: last, limit, consistent: true },
    report,
  );
  const periods = result.items.map((item) => String(item.sk));
  const stop = result.lastEvaluatedSk;
  return stop === undefined || stop >= last ? { periods } : { periods, next: following(stop) };
}
