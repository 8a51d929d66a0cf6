// The hours that hold flows (docs/flow-store.md, "Hour markers"). Flows live in one partition per hour, so a
// question by time alone reads one partition after another; on a quiet cluster most of them are empty, and a
// month's range would cost 720 Queries. Each hour that holds a flow has a marker item `FLOWHOURS#<cluster>` /
// `<hour>`, written before the hour's first flow, and a question by time lists the markers of its range with one
// Query and reads only those partitions.
//
// A marker is written once per store per hour: the store remembers the markers it wrote (and the TTL it gave
// them), so the write scales with hours, not with flows or deliveries.
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { expiresAt, flowHoursPartition, hourOf, nextHour, retainedUntil } from "./keys.ts";
import { isConditionFailure, queryRange, type StoreContext } from "./requests.ts";
import { type CallReport, mapBounded, withRetry } from "./retry.ts";
import { TTL_ATTRIBUTE } from "./schema.ts";

const HOUR_MS = 3_600_000;
/** Markers one store remembers having written; past this it forgets them all and writes them again. */
const REMEMBERED_MARKERS = 10_000;

/**
 * The markers a store has written: `<cluster>#<hour>` → the TTL asked for (`retentionDays` after the hour's end,
 * before expiresAt's four-year floor: that floor moves with the clock, and would have every delivery of an old
 * hour put its marker again).
 */
export type MarkedHours = Map<string, number>;

/**
 * Makes sure every hour of `buckets` (canonical ISO bucket starts of one cluster) has its marker, with a TTL at
 * least that of any flow of the hour: a flow's TTL counts from its bucket, a marker's from the end of its hour. A
 * marker that is there with that TTL or a later one is left as it is (a condition, so a retried or concurrent
 * write never shortens it). Requests are counted in `report`.
 */
export async function markHours(
  ctx: StoreContext & { retentionDays: number; concurrency: number },
  marked: MarkedHours,
  cluster: string,
  buckets: Iterable<string>,
  now: number,
  report: CallReport,
  signal?: AbortSignal,
): Promise<void> {
  /** Hour → the epoch ms it ends at. */
  const wanted = new Map<string, number>();
  for (const bucket of buckets) {
    const hour = hourOf(bucket);
    if (wanted.has(hour)) continue;
    const end = Date.parse(`${hour}:00:00.000Z`) + HOUR_MS;
    if (
      (marked.get(`${cluster}#${hour}`) ?? Number.NEGATIVE_INFINITY) >= retainedUntil(end, ctx.retentionDays)
    ) {
      continue;
    }
    wanted.set(hour, end);
  }
  if (wanted.size === 0) return;
  await mapBounded(
    [...wanted],
    ctx.concurrency,
    async ([hour, end]) => {
      const ttl = expiresAt(end, ctx.retentionDays, now);
      try {
        await withRetry("PutItem", ctx.retry, report, () =>
          ctx.doc.send(
            new PutCommand({
              TableName: ctx.tableName,
              Item: { pk: flowHoursPartition(cluster), sk: hour, [TTL_ATTRIBUTE]: ttl },
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
      marked.set(`${cluster}#${hour}`, retainedUntil(end, ctx.retentionDays));
    },
    signal,
  );
}

/**
 * Hours of `cluster` from `first` to `last` (inclusive, `yyyy-mm-ddThh`) that hold flows, in order: at most `limit`
 * of them, and `next`, the hour the listing continues from, when there may be more.
 */
export async function listHours(
  ctx: StoreContext,
  cluster: string,
  first: string,
  last: string,
  limit: number,
  report: CallReport,
): Promise<{ hours: string[]; next?: string }> {
  const result = await queryRange(
    ctx,
    // Consistent: a marker put a moment ago is listed (markers are tiny, so this costs next to nothing).
    {
      keyAttribute: "pk",
      keyValue: flowHoursPartition(cluster),
      lo: first,
      hi: last,
      limit,
      consistent: true,
    },
    report,
  );
  const hours = result.items.map((item) => String(item.sk));
  const stop = result.lastEvaluatedSk;
  return stop === undefined || stop >= last ? { hours } : { hours, next: nextHour(stop) };
}
