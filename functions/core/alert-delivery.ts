// Alert delivery over the ports: publish what applyAlerts returned, mark each sent once the sink accepted it,
// and summarise whatever exceeds the per-run cap. No SDK here: the SNS sink is one AlertPublisher among others.
//
// Guarantees, with the store's contract (FlowStore.applyAlerts records an alert as "pending" before anything is
// sent; markAlertSent flips it after the sink accepted it, to "sent", or "summarized" for an alert over the cap that
// its summary stood for):
// - an alert whose publish fails stays pending, the run throws once every other alert has been tried, and the
//   retried payload (or the next one: applyAlerts returns earlier pending alerts too) publishes it then;
// - an alert marked sent is never published again, so a retried payload does not repeat what went out.
import { type PanicEvent, summaryGroups } from "./alert-message.ts";
import type { AlertSink, FlowStore } from "./ports.ts";
import type { AlertRecord } from "./types.ts";

/** Everything the alerts topic carries: alerts, the over-cap summary, and panic-button announcements. */
export interface AlertPublisher extends AlertSink {
  /** One message counting `count` alerts not sent one by one; `suppressed` (if given) are listed. */
  publishSummary(count: number, cluster: string, suppressed?: readonly AlertRecord[]): Promise<void>;
  publishPanic(event: PanicEvent): Promise<void>;
}

export interface DeliveryOptions {
  /** Most alerts published one by one in this run; those above it are counted in summaries (MAX_SUMMARIES). */
  cap: number;
  /** Publishes in flight at once. @default 8 */
  concurrency?: number;
}

/** `sent + suppressed + failed` = the alerts handed in. */
export interface DeliveryResult {
  /** Published one by one and marked sent. */
  sent: number;
  /** Above the cap, counted in a published summary and marked sent: they are not published again. */
  suppressed: number;
  /** Left pending (publish, summary or marking failed): the next run delivers them. */
  failed: number;
}

/** Thrown after every alert was tried when some are left pending, so that the payload is retried. */
export class AlertDeliveryError extends AggregateError {
  readonly result: DeliveryResult;

  constructor(result: DeliveryResult, errors: readonly unknown[]) {
    const first = errors[0] instanceof Error ? `: ${errors[0].message}` : "";
    super(errors, `${result.failed} alert(s) left pending for the retry${first}`);
    this.name = "AlertDeliveryError";
    this.result = result;
  }
}

/**
 * Most summaries a run publishes per cluster. A summary lists at most 100 namespaces (and other values) in each
 * attribute, so the alerts held back are split among several (summaryGroups) for filtered subscribers to hear of
 * theirs; the last takes whatever is left, its attributes then cut at 100 values each.
 */
export const MAX_SUMMARIES = 10;

/** Oldest high-severity alerts first: the cap keeps what matters and what has waited longest. */
function byPriority(a: AlertRecord, b: AlertRecord): number {
  if (a.severity !== b.severity) return a.severity === "high" ? -1 : 1;
  if (a.openedAt !== b.openedAt) return a.openedAt < b.openedAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Publishes the alerts `applyAlerts` returned (new ones and earlier pending ones) and marks each sent after SNS
 * accepted it. Alerts above `cap` are not published one by one: summaries count them, up to MAX_SUMMARIES per
 * cluster, and once its summary is out an alert is marked sent too — the summary was its delivery, and re-sending
 * it on the next run would defeat the cap. If a summary fails its alerts stay pending and compete for the next
 * run's cap.
 * Throws AlertDeliveryError at the end if anything was left pending.
 */
export async function deliverAlerts(
  store: Pick<FlowStore, "markAlertSent">,
  sink: Pick<AlertPublisher, "publishAlert" | "publishSummary">,
  alerts: readonly AlertRecord[],
  options: DeliveryOptions,
): Promise<DeliveryResult> {
  const { cap } = options;
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(cap) || cap < 0) throw new Error(`alert cap must be an integer ≥ 0, got ${cap}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`delivery concurrency must be an integer ≥ 1, got ${concurrency}`);
  }
  const ordered = [...alerts].sort(byPriority);
  const individual = ordered.slice(0, cap);
  const overCap = ordered.slice(cap);
  const result: DeliveryResult = { sent: 0, suppressed: 0, failed: 0 };
  const errors: unknown[] = [];

  await eachLimited(individual, concurrency, async (alert) => {
    try {
      await sink.publishAlert(alert);
      await store.markAlertSent(alert);
      result.sent++;
    } catch (error) {
      result.failed++;
      errors.push(error);
    }
  });

  const byCluster = new Map<string, AlertRecord[]>();
  for (const alert of overCap) {
    const list = byCluster.get(alert.cluster);
    if (list === undefined) byCluster.set(alert.cluster, [alert]);
    else list.push(alert);
  }
  const summaries = [...byCluster].flatMap(([cluster, suppressed]) =>
    summaryGroups(suppressed, MAX_SUMMARIES).map((group) => ({ cluster, group })),
  );
  for (const { cluster, group } of summaries) {
    try {
      await sink.publishSummary(group.length, cluster, group);
    } catch (error) {
      result.failed += group.length;
      errors.push(error);
      continue;
    }
    await eachLimited(group, concurrency, async (alert) => {
      try {
        await store.markAlertSent(alert, "summarized");
        result.suppressed++;
      } catch (error) {
        result.failed++;
        errors.push(error);
      }
    });
  }

  if (errors.length > 0) throw new AlertDeliveryError(result, errors);
  return result;
}
