// Summaries of the alerts a run holds back over its cap, through a real local SNS/SQS (fauxqs): a team's queue
// filtered on its namespace (docs/deploy.md, "Subscribing machines") hears of its held-back alerts whatever the
// number of namespaces held back with them, because no summary lists more than 100 values in an attribute. SNS
// matches a String.Array attribute when any of its values matches; fauxqs compares the array's text whole, so the
// tests read the attributes each summary was published with rather than subscribe with a filter.
import type { Message } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { deliverAlerts, MAX_SUMMARIES } from "../../functions/core/alert-delivery.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";
import { sampleAlert } from "../support/alerts.ts";
import {
  createTopic,
  drainQueue,
  envelopeOf,
  type LocalSns,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";

let local: LocalSns;
let serial = 0;

beforeAll(async () => {
  local = await startLocalSns();
});
afterAll(async () => {
  await local.close();
});

/** markAlertSent's half of the store contract, in memory: how each alert was marked. */
class Marks implements Pick<FlowStore, "markAlertSent"> {
  readonly how = new Map<string, string>();
  async markAlertSent(alert: AlertRecord, how: "sent" | "summarized" = "sent"): Promise<void> {
    this.how.set(alert.id, how);
  }
}

const pod = (ip: string, namespace: string, workload: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace,
  name: `${workload}-abc`,
  workload: { kind: "Deployment", name: workload },
  node: "n1",
  resolved: true,
});

/** One internal denial from monitoring/prometheus into `namespace`, opened `i` seconds into the minute. */
function denialInto(namespace: string, i: number): AlertRecord {
  return sampleAlert({
    id: `al_${String(i).padStart(3, "0")}`,
    key: {
      cluster: "prod",
      src: "monitoring/Deployment/prometheus",
      dst: `${namespace}/Deployment/app`,
      protocol: "TCP",
      dstPort: 9090,
    },
    src: pod("192.168.9.9", "monitoring", "prometheus"),
    dst: pod(`192.168.10.${i % 250}`, namespace, "app"),
    dstPort: 9090,
    openedAt: new Date(Date.parse("2026-04-19T04:52:00.000Z") + i * 1_000).toISOString(),
  });
}

/** An internal scan whose destinations were in `namespaces` (100 at most, as alert-rules keeps them). */
function scanInto(namespaces: string[], i: number): AlertRecord {
  return {
    ...denialInto(namespaces[0] as string, i),
    key: {
      cluster: "prod",
      src: "monitoring/Deployment/prometheus",
      dst: "*scan*",
      protocol: "*",
      dstPort: null,
    },
    protocol: "*",
    dstPort: null,
    reason: "internal-scan",
    namespaces: { src: ["monitoring"], dst: namespaces },
  };
}

const tenant = (i: number) => `tenant-${String(i).padStart(3, "0")}`;

interface Received {
  count: number;
  ids: string[];
  attributes: Record<string, string[]>;
}

function summaryOf(message: Message): Received {
  const envelope = envelopeOf(message);
  const body = JSON.parse(structureOf(message).default);
  const attributes: Record<string, string[]> = {};
  for (const [name, { Value }] of Object.entries(envelope.MessageAttributes ?? {})) {
    attributes[name] = Value.startsWith("[") ? JSON.parse(Value).map(String) : [Value];
  }
  return { count: body.count, ids: body.alerts.map((a: { id: string }) => a.id), attributes };
}

async function deliverHeldBack(alerts: readonly AlertRecord[]) {
  serial++;
  const topic = await createTopic(local, `summaries-${serial}`);
  const all = await subscribeQueue(local, topic, `all-${serial}`);
  const marks = new Marks();
  const sink = new SnsAlertSink({ topicArn: topic, client: local.sns });
  const result = await deliverAlerts(marks, sink, alerts, { cap: 0 });
  const summaries = (await drainQueue(local, all)).map(summaryOf);
  // What a subscription filtered on {"type": ["summary"], "dstNamespace": ["payments"]} gets.
  const payments = summaries.filter((s) => s.attributes.dstNamespace?.includes("payments"));
  return { result, marks, summaries, payments };
}

describe("deliverAlerts' summaries", () => {
  it("splits held-back alerts of 150 namespaces into summaries of at most 100 each, so every team hears", async () => {
    // The last one opened, so the last in the documented order: past the first 100 namespaces.
    const alerts = Array.from({ length: 150 }, (_, i) => denialInto(i === 149 ? "payments" : tenant(i), i));

    const { result, marks, summaries, payments } = await deliverHeldBack(alerts);

    expect(result).toEqual({ sent: 0, suppressed: 150, failed: 0 });
    expect([...marks.how.values()].every((how) => how === "summarized")).toBe(true);
    expect(marks.how.size).toBe(150);
    summaries.sort((a, b) => b.count - a.count);
    expect(summaries.map((s) => s.count)).toEqual([100, 50]);
    expect(summaries.map((s) => s.attributes.count)).toEqual([["100"], ["50"]]);
    expect(summaries.map((s) => s.attributes.dstNamespace?.length)).toEqual([100, 50]);
    // Each summary lists the first 20 of its own alerts, in the documented order.
    expect(summaries.map((s) => s.ids[0])).toEqual(["al_000", "al_100"]);
    expect(summaries.flatMap((s) => s.attributes.dstNamespace).sort()).toEqual(
      alerts.map((a) => a.dst.namespace).sort(),
    );
    expect(payments).toHaveLength(1);
    expect(payments[0]?.count).toBe(50);
    expect(payments[0]?.attributes.dstNamespace).toContain("payments");
  });

  it("starts another summary when a scan's namespaces would take the one before past 100", async () => {
    const alerts = [
      scanInto(
        Array.from({ length: 60 }, (_, i) => tenant(i)),
        0,
      ),
      // Forty of these are new to the first summary's 60: 100, it fits.
      scanInto(
        Array.from({ length: 60 }, (_, i) => tenant(40 + i)),
        1,
      ),
      // One more would make 101.
      scanInto([tenant(5), "payments"], 2),
    ];

    const { summaries, payments } = await deliverHeldBack(alerts);

    summaries.sort((a, b) => b.count - a.count);
    expect(summaries.map((s) => [s.count, s.ids, s.attributes.dstNamespace?.length])).toEqual([
      [2, ["al_000", "al_001"], 100],
      [1, ["al_002"], 2],
    ]);
    expect(payments.map((s) => s.ids)).toEqual([["al_002"]]);
  });

  it("publishes MAX_SUMMARIES per cluster at most, the last holding what is left", async () => {
    // Each scan's 100 namespaces fill a summary of their own.
    const alerts = Array.from({ length: MAX_SUMMARIES + 2 }, (_, k) =>
      scanInto(
        Array.from({ length: 100 }, (_, i) => `ns-${k}-${i}`),
        k,
      ),
    );

    const { result, summaries } = await deliverHeldBack(alerts);

    expect(result).toEqual({ sent: 0, suppressed: MAX_SUMMARIES + 2, failed: 0 });
    expect(summaries).toHaveLength(MAX_SUMMARIES);
    expect(summaries.map((s) => s.count).sort((a, b) => a - b)).toEqual([
      ...Array.from({ length: MAX_SUMMARIES - 1 }, () => 1),
      3,
    ]);
    expect(Math.max(...summaries.map((s) => s.attributes.dstNamespace?.length ?? 0))).toBe(100);
  });
});
