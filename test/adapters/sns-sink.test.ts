// The SNS sink against a real local SNS/SQS (fauxqs): what subscribers receive, filter policies, the alert cap,
// and retries through a proxy that injects network failures.
import type { Message } from "@aws-sdk/client-sqs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { AlertDeliveryError, deliverAlerts } from "../../functions/core/alert-delivery.ts";
import { alertEmailText, type PanicEvent } from "../../functions/core/alert-message.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";
import { db, sampleAlert } from "../support/alerts.ts";
import {
  createTopic,
  drainQueue,
  envelopeOf,
  type Fault,
  type FaultProxy,
  type LocalSns,
  startFaultProxy,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";

const stranger: Endpoint = {
  ip: "192.168.50.5",
  kind: "unknown",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved: true,
};

function alert(id: string, extra: Partial<AlertRecord> = {}): AlertRecord {
  return sampleAlert({ id, count: 3, lastSeen: "2026-04-19T04:52:40.000Z", ...extra });
}

/**
 * The alert half of the flow store's contract, in memory: alerts are recorded pending when a payload opens
 * them, `open` answers like applyAlerts (what this payload opened plus everything still pending, including
 * alerts a redelivered payload opened before), and markAlertSent flips one to sent.
 */
class MemoryAlertStore implements Pick<FlowStore, "markAlertSent"> {
  readonly #alerts = new Map<string, AlertRecord>();
  /** Alert ids whose next markAlertSent fails, as a throttled or unreachable table would. */
  readonly failNextMark = new Set<string>();

  open(opened: readonly AlertRecord[]): AlertRecord[] {
    for (const a of opened)
      if (!this.#alerts.has(a.id)) this.#alerts.set(a.id, { ...a, delivery: "pending" });
    return [...this.#alerts.values()].filter((a) => a.delivery === "pending").map((a) => ({ ...a }));
  }

  async markAlertSent(alert: AlertRecord, how: "sent" | "summarized" = "sent"): Promise<void> {
    const stored = this.#alerts.get(alert.id);
    if (stored === undefined) throw new Error(`no alert ${alert.id}`);
    if (this.failNextMark.delete(alert.id))
      throw new Error(`ProvisionedThroughputExceededException marking ${alert.id}`);
    stored.delivery = how;
  }

  delivery(id: string): AlertRecord["delivery"] | undefined {
    return this.#alerts.get(id)?.delivery;
  }
}

const alertIdOf = (m: Message) => envelopeOf(m).MessageAttributes?.alertId?.Value;
const typeOf = (m: Message) => envelopeOf(m).MessageAttributes?.type?.Value;

let local: LocalSns;
let proxy: FaultProxy | undefined;
let topicSerial = 0;

beforeAll(async () => {
  local = await startLocalSns();
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(async () => {
  await local.close();
});

/** A fresh topic with one unfiltered envelope-delivery queue. */
async function topicWithQueue(fifo = false): Promise<{ topicArn: string; queueUrl: string }> {
  topicSerial++;
  const suffix = fifo ? ".fifo" : "";
  const topicArn = await createTopic(local, `alerts-${topicSerial}${suffix}`);
  const queueUrl = await subscribeQueue(local, topicArn, `all-${topicSerial}${suffix}`);
  return { topicArn, queueUrl };
}

/** A sink whose publishes go through a fault-injecting proxy. */
async function sinkThroughProxy(
  topicArn: string,
  decide: (params: URLSearchParams) => Fault,
): Promise<SnsAlertSink> {
  proxy = await startFaultProxy(local.endpoint, decide);
  return new SnsAlertSink({ topicArn, client: local.snsClient(proxy.endpoint) });
}

const publishes = () => proxy?.seen.filter((r) => r.action === "Publish") ?? [];

describe("SnsAlertSink", () => {
  it("publishes the subject, the e-mail text, the default JSON and the filter attributes", async () => {
    const { topicArn, queueUrl } = await topicWithQueue();
    const rawQueueUrl = await subscribeQueue(local, topicArn, `raw-${topicSerial}`, { raw: true });
    const a = alert("al_shape");
    const sink = await sinkThroughProxy(topicArn, () => "forward");
    await sink.publishAlert(a);
    // Real SNS routes `email` to e-mail subscribers and `default` to the rest only with this flag.
    expect(publishes().map((r) => r.params.get("MessageStructure"))).toEqual(["json"]);

    const [delivered, ...more] = await drainQueue(local, queueUrl);
    expect(more).toEqual([]);
    if (delivered === undefined) throw new Error("nothing delivered");
    const envelope = envelopeOf(delivered);
    expect(envelope.Subject).toBe("Calico denied customer-a/web → customer-b/db:8012/TCP (prod)");
    const structure = structureOf(delivered);
    expect(JSON.parse(structure.default)).toEqual({ type: "alert", ...a });
    expect(structure.email).toBe(alertEmailText(a));
    expect(envelope.MessageAttributes).toEqual({
      type: { Type: "String", Value: "alert" },
      severity: { Type: "String", Value: "high" },
      reason: { Type: "String", Value: "internal-denial" },
      cluster: { Type: "String", Value: "prod" },
      srcNamespace: { Type: "String", Value: "customer-a" },
      dstNamespace: { Type: "String", Value: "customer-b" },
      protocol: { Type: "String", Value: "TCP" },
      dstPort: { Type: "Number", Value: "8012" },
      alertId: { Type: "String", Value: "al_shape" },
    });

    const [raw] = await drainQueue(local, rawQueueUrl);
    expect(raw?.MessageAttributes?.dstPort).toMatchObject({ DataType: "Number", StringValue: "8012" });
    expect(raw?.MessageAttributes?.srcNamespace).toMatchObject({
      DataType: "String",
      StringValue: "customer-a",
    });
  });

  it("lets subscription filter policies pick alerts by namespace, port range and missing namespace", async () => {
    const { topicArn, queueUrl } = await topicWithQueue();
    const customerB = await subscribeQueue(local, topicArn, `customer-b-${topicSerial}`, {
      filterPolicy: { dstNamespace: ["customer-b"], dstPort: [{ numeric: [">=", 8000, "<", 9000] }] },
    });
    const unattributed = await subscribeQueue(local, topicArn, `unattributed-${topicSerial}`, {
      filterPolicy: { srcNamespace: ["-"] },
    });
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const other: Endpoint = { ...db, namespace: "customer-c" };
    await sink.publishAlert(alert("al_b_8012"));
    await sink.publishAlert(alert("al_b_5432", { dstPort: 5432 }));
    await sink.publishAlert(alert("al_stranger_b_8080", { src: stranger, dstPort: 8080 }));
    await sink.publishAlert(alert("al_c_8012", { dst: other }));

    expect((await drainQueue(local, customerB)).map(alertIdOf).sort()).toEqual([
      "al_b_8012",
      "al_stranger_b_8080",
    ]);
    expect((await drainQueue(local, unattributed)).map(alertIdOf)).toEqual(["al_stranger_b_8080"]);
    expect(await drainQueue(local, queueUrl)).toHaveLength(4);
  });

  it("gives the over-cap summary the filter attributes of the alerts it stands for, as arrays", async () => {
    // SNS matches a filter against each value of a String.Array attribute ("String value matching" in its
    // developer guide), so a subscriber of customer-b hears of customer-b's alerts the cap kept back. The local
    // emulator compares whole values only: the attributes are checked here as published.
    const { topicArn, queueUrl } = await topicWithQueue();
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const other: Endpoint = { ...db, namespace: "customer-c" };
    await sink.publishSummary(3, "prod", [
      alert("al_s1"),
      alert("al_s2", { dstPort: 5432, dst: other }),
      alert("al_s3", { src: stranger, dstPort: 8080 }),
    ]);
    const [summary, ...more] = await drainQueue(local, queueUrl);
    expect(more).toEqual([]);
    expect(envelopeOf(summary as Message).MessageAttributes).toEqual({
      type: { Type: "String", Value: "summary" },
      severity: { Type: "String.Array", Value: '["high"]' },
      cluster: { Type: "String", Value: "prod" },
      count: { Type: "Number", Value: "3" },
      reason: { Type: "String.Array", Value: '["internal-denial"]' },
      srcNamespace: { Type: "String.Array", Value: '["customer-a","-"]' },
      dstNamespace: { Type: "String.Array", Value: '["customer-b","customer-c"]' },
      protocol: { Type: "String.Array", Value: '["TCP"]' },
      dstPort: { Type: "String.Array", Value: "[8012,5432,8080]" },
    });
  });

  it("announces panic actions on the same topic, selectable by type", async () => {
    const { topicArn } = await topicWithQueue();
    const panicOnly = await subscribeQueue(local, topicArn, `panic-${topicSerial}`, {
      filterPolicy: { type: ["panic"] },
    });
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const event: PanicEvent = {
      action: "applied",
      cluster: "prod",
      policyName: "calico-flows-panic",
      requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
      reason: "payments down",
      at: "2026-04-19T05:00:00.000Z",
      expiresAt: "2026-04-19T06:00:00.000Z",
    };
    await sink.publishAlert(alert("al_noise"));
    await sink.publishPanic(event);

    const [announcement, ...more] = await drainQueue(local, panicOnly);
    expect(more).toEqual([]);
    if (announcement === undefined) throw new Error("no announcement");
    expect(envelopeOf(announcement).Subject).toBe("Calico panic policy applied on prod by alice");
    expect(envelopeOf(announcement).MessageAttributes?.action?.Value).toBe("applied");
    expect(JSON.parse(structureOf(announcement).default)).toMatchObject({
      type: "panic",
      requester: event.requester,
    });
    expect(structureOf(announcement).email).toContain("Why:      payments down");
  });

  it("on a FIFO topic, delivers each of two different summaries of a cluster, and a repeated one once", async () => {
    // SNS drops a message whose deduplication id it saw in the last 5 minutes: a summary's is its content.
    const { topicArn, queueUrl } = await topicWithQueue(true);
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    await sink.publishSummary(3, "prod", [alert("al_s1")]);
    await sink.publishSummary(7, "prod", [alert("al_s2", { dstPort: 5432 })]);
    await sink.publishSummary(3, "prod", [alert("al_s1")]);
    expect((await drainQueue(local, queueUrl)).map((m) => envelopeOf(m).Subject)).toEqual([
      "Calico: 3 more alerts suppressed (prod)",
      "Calico: 7 more alerts suppressed (prod)",
    ]);
  });

  it("rejects a topic ARN it cannot publish to, showing the value", () => {
    expect(() => new SnsAlertSink({ topicArn: "alerts" })).toThrow(/invalid SNS topic ARN "alerts"/);
  });
});

describe("deliverAlerts", () => {
  it("publishes up to the cap, sums the rest up in one summary, and sends none of them again", async () => {
    const { topicArn, queueUrl } = await topicWithQueue();
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const store = new MemoryAlertStore();
    const opened = [
      alert("al_low", { severity: "low", reason: "external-scan", openedAt: "2026-04-19T04:00:00.000Z" }),
      alert("al_new", { openedAt: "2026-04-19T04:59:00.000Z" }),
      alert("al_old", { openedAt: "2026-04-19T04:10:00.000Z" }),
      alert("al_mid1", { openedAt: "2026-04-19T04:30:00.000Z" }),
      alert("al_mid2", { openedAt: "2026-04-19T04:30:00.000Z" }),
    ];

    const result = await deliverAlerts(store, sink, store.open(opened), { cap: 2 });
    expect(result).toEqual({ sent: 2, suppressed: 3, failed: 0 });
    const delivered = await drainQueue(local, queueUrl);
    // High severity first, oldest first: the cap keeps what matters and what has waited longest.
    expect(
      delivered
        .filter((m) => typeOf(m) === "alert")
        .map(alertIdOf)
        .sort(),
    ).toEqual(["al_mid1", "al_old"]);
    const summaries = delivered.filter((m) => typeOf(m) === "summary");
    expect(summaries).toHaveLength(1);
    const summary = envelopeOf(summaries[0] as Message);
    expect(summary.Subject).toBe("Calico: 3 more alerts suppressed (prod)");
    expect(summary.MessageAttributes?.count).toEqual({ Type: "Number", Value: "3" });
    expect(
      JSON.parse(structureOf(summaries[0] as Message).default).alerts.map((a: AlertRecord) => a.id),
    ).toEqual(["al_mid2", "al_new", "al_low"]);
    // Those over the cap are marked as what they were: in the summary, not sent one by one.
    for (const a of opened) {
      expect(store.delivery(a.id), a.id).toBe(["al_mid1", "al_old"].includes(a.id) ? "sent" : "summarized");
    }

    // The payload is delivered again (at-least-once): nothing is pending, nothing goes out twice.
    expect(await deliverAlerts(store, sink, store.open(opened), { cap: 2 })).toEqual({
      sent: 0,
      suppressed: 0,
      failed: 0,
    });
    expect(await drainQueue(local, queueUrl)).toEqual([]);
  });

  it("delivers exactly once when the first publish fails and the SDK retries it", async () => {
    const { topicArn, queueUrl } = await topicWithQueue();
    let failures = 1;
    const sink = await sinkThroughProxy(topicArn, (p) => {
      if (p.get("Action") === "Publish" && failures > 0) {
        failures--;
        return "fail";
      }
      return "forward";
    });
    const store = new MemoryAlertStore();

    expect(await deliverAlerts(store, sink, store.open([alert("al_flaky")]), { cap: 10 })).toEqual({
      sent: 1,
      suppressed: 0,
      failed: 0,
    });
    expect(publishes().map((r) => r.fault)).toEqual(["fail", "forward"]);
    expect((await drainQueue(local, queueUrl)).map(alertIdOf)).toEqual(["al_flaky"]);
    expect(store.delivery("al_flaky")).toBe("sent");
  });

  it("leaves a publish that keeps failing pending, throws after the others, and the retried payload sends only it", async () => {
    const { topicArn, queueUrl } = await topicWithQueue();
    let snsDown = true;
    const sink = await sinkThroughProxy(topicArn, (p) =>
      snsDown && p.get("Action") === "Publish" && (p.get("Message") ?? "").includes("al_b")
        ? "fail"
        : "forward",
    );
    const store = new MemoryAlertStore();
    const payload = [alert("al_a"), alert("al_b", { dstPort: 5432 }), alert("al_c", { dstPort: 9090 })];

    const failed = await deliverAlerts(store, sink, store.open(payload), { cap: 10 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failed).toBeInstanceOf(AlertDeliveryError);
    expect((failed as AlertDeliveryError).result).toEqual({ sent: 2, suppressed: 0, failed: 1 });
    expect((failed as AlertDeliveryError).message).toMatch(
      /publishing the alert al_b to arn:aws:sns:.* failed: /,
    );
    expect(publishes().filter((r) => r.fault === "fail").length).toBeGreaterThan(1);
    expect(store.delivery("al_b")).toBe("pending");

    // Lambda retries the payload: applyAlerts answers with the pending alert only.
    snsDown = false;
    expect(await deliverAlerts(store, sink, store.open(payload), { cap: 10 })).toEqual({
      sent: 1,
      suppressed: 0,
      failed: 0,
    });
    expect((await drainQueue(local, queueUrl)).map(alertIdOf).sort()).toEqual(["al_a", "al_b", "al_c"]);
  });

  it("keeps the alerts above the cap pending when their summary cannot be published", async () => {
    const { topicArn, queueUrl } = await topicWithQueue();
    let snsDown = true;
    const sink = await sinkThroughProxy(topicArn, (p) =>
      snsDown && (p.get("Subject") ?? "").includes("suppressed") ? "fail" : "forward",
    );
    const store = new MemoryAlertStore();
    const payload = [
      alert("al_1", { openedAt: "2026-04-19T04:01:00.000Z" }),
      alert("al_2", { openedAt: "2026-04-19T04:02:00.000Z" }),
      alert("al_3", { openedAt: "2026-04-19T04:03:00.000Z" }),
    ];

    await expect(deliverAlerts(store, sink, store.open(payload), { cap: 1 })).rejects.toMatchObject({
      result: { sent: 1, suppressed: 0, failed: 2 },
    });
    expect(payload.map((a) => store.delivery(a.id))).toEqual(["sent", "pending", "pending"]);

    snsDown = false;
    expect(await deliverAlerts(store, sink, store.open([]), { cap: 1 })).toEqual({
      sent: 1,
      suppressed: 1,
      failed: 0,
    });
    const delivered = await drainQueue(local, queueUrl);
    expect(
      delivered
        .filter((m) => typeOf(m) === "alert")
        .map(alertIdOf)
        .sort(),
    ).toEqual(["al_1", "al_2"]);
    expect(delivered.filter((m) => typeOf(m) === "summary").map((m) => envelopeOf(m).Subject)).toEqual([
      "Calico: 1 more alert suppressed (prod)",
    ]);
  });

  it("on a FIFO topic, does not double an alert whose publish succeeded but whose answer was lost", async () => {
    const { topicArn, queueUrl } = await topicWithQueue(true);
    let lose = 1;
    const sink = await sinkThroughProxy(topicArn, (p) => {
      if (p.get("Action") === "Publish" && lose > 0) {
        lose--;
        return "lose-response";
      }
      return "forward";
    });
    const store = new MemoryAlertStore();

    await deliverAlerts(store, sink, store.open([alert("al_fifo_1"), alert("al_fifo_2", { dstPort: 1 })]), {
      cap: 10,
      concurrency: 1,
    });
    // Three publishes reached SNS (one answer lost, then its retry), two messages came out.
    expect(publishes().map((r) => r.fault)).toEqual(["lose-response", "forward", "forward"]);
    expect((await drainQueue(local, queueUrl)).map(alertIdOf).sort()).toEqual(["al_fifo_1", "al_fifo_2"]);
  });

  it("on a FIFO topic, does not double an alert published again because marking it sent failed", async () => {
    const { topicArn, queueUrl } = await topicWithQueue(true);
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const store = new MemoryAlertStore();
    store.failNextMark.add("al_marked_late");

    await expect(
      deliverAlerts(store, sink, store.open([alert("al_marked_late")]), { cap: 10 }),
    ).rejects.toMatchObject({
      result: { sent: 0, suppressed: 0, failed: 1 },
    });
    expect(store.delivery("al_marked_late")).toBe("pending");
    // The retried payload publishes it again (it is still pending); the topic recognises the same alert.
    expect(await deliverAlerts(store, sink, store.open([]), { cap: 10 })).toEqual({
      sent: 1,
      suppressed: 0,
      failed: 0,
    });
    expect((await drainQueue(local, queueUrl)).map(alertIdOf)).toEqual(["al_marked_late"]);
  });
});
