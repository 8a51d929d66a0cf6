// The alerts topic as its machine subscribers (SQS queues, Lambda functions, HTTPS webhooks) receive it: the real SNS
// sink publishing to a local SNS/SQS (fauxqs), read back from raw and envelope SQS subscriptions, checked against
// what such a consumer needs and against the operator docs. Each test is one defect: it fails on the code as
// reviewed and passes once that is fixed.
//
// Why the message body must stand on its own: SNS delivers message attributes only for a `MessageStructure`
// String publish, not a JSON one (SNS developer guide, "Amazon SNS message attributes": "Message attributes are
// sent only when the message structure is String, not JSON"; boto/boto3#1513, aws/aws-sdk-ruby#1662), and never
// to raw HTTPS or Firehose subscriptions ("When you specify message attributes, it won't be sent"). The sink
// publishes every message with `MessageStructure: json`: filter policies still select on the attributes, but a
// consumer reads what it received from the `default` JSON alone. fauxqs passes the attributes through anyway,
// and hands a raw subscriber the whole `{default, email}` structure, so the `default` JSON is read out here.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Message } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { deliverAlerts } from "../../functions/core/alert-delivery.ts";
import {
  alertAttributes,
  type PanicEvent,
  panicAnnouncement,
  suppressionSummary,
} from "../../functions/core/alert-message.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import type { AlertRecord } from "../../functions/core/types.ts";
import { sampleAlert } from "../support/alerts.ts";
import { createTopic, drainQueue, type LocalSns, startLocalSns, subscribeQueue } from "../support/fauxqs.ts";

const ROOT = join(import.meta.dirname, "..", "..");

let local: LocalSns;
let serial = 0;

beforeAll(async () => {
  local = await startLocalSns();
});
afterAll(async () => {
  await local.close();
});

/** A fresh topic with one raw-delivery SQS subscriber (what a queue consumer or a webhook gets: the body). */
async function topicWithRawQueue(): Promise<{ topicArn: string; queueUrl: string }> {
  serial++;
  const topicArn = await createTopic(local, `machine-${serial}`);
  return {
    topicArn,
    queueUrl: await subscribeQueue(local, topicArn, `machine-raw-${serial}`, { raw: true }),
  };
}

/**
 * The `default` JSON a raw subscriber reads: real SNS hands it over as the body; fauxqs hands over the whole
 * `{default, email}` structure, whose `default` it is.
 */
function defaultJson(m: Message): Record<string, unknown> {
  const body = JSON.parse(m.Body ?? "") as Record<string, unknown>;
  return typeof body.default === "string" ? (JSON.parse(body.default) as Record<string, unknown>) : body;
}

/** The `email` text of the structure (fauxqs only: real SNS hands it to e-mail subscribers). */
function emailText(m: Message): string {
  const body = JSON.parse(m.Body ?? "") as { email?: unknown };
  if (typeof body.email !== "string") throw new Error("no e-mail text in the delivered structure");
  return body.email;
}

/** The store's half of delivery, in memory: every alert is pending until marked. */
class MemoryAlertStore implements Pick<FlowStore, "markAlertSent"> {
  readonly marked = new Map<string, string>();
  async markAlertSent(alert: AlertRecord, how: "sent" | "summarized" = "sent"): Promise<void> {
    this.marked.set(alert.id, how);
  }
}

const PANIC: PanicEvent = {
  action: "applied",
  cluster: "prod",
  policyName: "calico-flows-panic",
  requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
  reason: "payments down",
  at: "2026-04-19T05:00:00.000Z",
  expiresAt: "2026-04-19T06:00:00.000Z",
};

describe("what machine subscribers of the alerts topic receive", () => {
  it("names the kind of every message in its body, as its `type` attribute does (alerts included)", async () => {
    // Defect: the topic carries three kinds of message (alert, over-cap summary, panic announcement), told apart
    // by the `type` attribute. Summaries and announcements repeat it in their `default` JSON ("type": "summary" /
    // "panic"); an alert's JSON (alertDefaultJson) has no `type` at all. SNS does not deliver attributes of a
    // `MessageStructure: json` publish, nor to raw HTTPS/Firehose subscriptions, so a Lambda or webhook consumer
    // has only the body: it must guess "no type means alert", and any kind added later is misread as an alert.
    // Expected: every message's body carries `type` equal to its `type` attribute ("alert" for an alert).
    const { topicArn, queueUrl } = await topicWithRawQueue();
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const alert = sampleAlert({ id: "al_machine_type" });
    await sink.publishAlert(alert);
    await sink.publishSummary(1, "prod", [sampleAlert({ id: "al_machine_over_cap", dstPort: 5432 })]);
    await sink.publishPanic(PANIC);

    const delivered = await drainQueue(local, queueUrl);
    expect(delivered).toHaveLength(3);
    const kinds = delivered.map((m) => ({
      attribute: m.MessageAttributes?.type?.StringValue,
      body: defaultJson(m).type,
    }));
    expect(kinds.map((k) => k.attribute).sort()).toEqual(["alert", "panic", "summary"]);
    for (const k of kinds) expect(k.body, `body of the ${k.attribute} message`).toBe(k.attribute);
  });

  it("tells a machine where to find the suppressed alerts its summary does not list, as the e-mail does", async () => {
    // Defect: above the cap, one summary stands for the held-back alerts (they are marked "summarized" and never
    // sent on their own). Its e-mail tells the on-call how to list every one of them (`calico-flows alerts
    // --cluster prod --since <oldest opening>`); its `default` JSON (suppressionSummary) lists the first 20 by id
    // and gives no time at all, so a consumer (a ticketing queue, a Lambda) cannot reach the others: here the
    // oldest suppressed alert, a low one ranked after 21 high ones, is neither listed nor reachable.
    // Expected: the JSON carries what the e-mail gives the human — the `--since` instant of the listing — (or
    // every suppressed alert's id).
    const { topicArn, queueUrl } = await topicWithRawQueue();
    const sink = new SnsAlertSink({ topicArn, client: local.sns });
    const store = new MemoryAlertStore();
    const minute = (m: number) => new Date(Date.parse("2026-04-19T04:00:00.000Z") + m * 60_000).toISOString();
    const opened = (id: string, dstPort: number, at: string, extra: Partial<AlertRecord> = {}) => {
      const base = sampleAlert();
      return sampleAlert({
        id,
        dstPort,
        key: { ...base.key, dstPort },
        openedAt: at,
        firstSeen: at,
        ...extra,
      });
    };
    // 22 high alerts of one payload, on ports 8000…8021, and a low one opened an hour earlier.
    const high = Array.from({ length: 22 }, (_, i) => opened(`al_high_${i}`, 8000 + i, minute(10 + i)));
    const oldLow = opened("al_old_low", 22, minute(-60), { severity: "low" });

    const result = await deliverAlerts(store, sink, [...high, oldLow], { cap: 1 });
    expect(result).toEqual({ sent: 1, suppressed: 22, failed: 0 });
    expect(store.marked.get("al_old_low")).toBe("summarized");

    const summary = (await drainQueue(local, queueUrl)).find(
      (m) => m.MessageAttributes?.type?.StringValue === "summary",
    );
    if (summary === undefined) throw new Error("no summary delivered");
    // The e-mail's way to the suppressed alerts: its listing command, from the oldest one's opening.
    const since = /calico-flows alerts .*--since (\S+)/.exec(emailText(summary))?.[1];
    expect(since).toBe(oldLow.openedAt);
    const json = defaultJson(summary);
    const listed = (json.alerts as { id: string }[]).map((a) => a.id);
    expect(listed).not.toContain("al_old_low");
    // Either fix will do: the listing's range, or every suppressed alert named.
    const text = JSON.stringify(json);
    const suppressedIds = [...store.marked].filter(([, how]) => how === "summarized").map(([id]) => id);
    const reachable = text.includes(since as string) || suppressedIds.every((id) => text.includes(`"${id}"`));
    expect(reachable, `the summary's JSON gives no way to the unlisted alerts: ${text.slice(0, 200)}…`).toBe(
      true,
    );
  });

  it("documents, for operators, the message attributes their filter policies select on", () => {
    // Defect: docs/deploy.md tells operators to subscribe more endpoints and "filter on the message attributes",
    // and DESIGN.md promises alerts "structured for machines (SNS message attributes for subscription filter
    // policies)"; but no operator document (README.md, docs/) names the attributes (srcNamespace, dstNamespace,
    // alertId, …), their types, or the `-` standing for "no namespace". The only list is a comment in
    // functions/core/alert-message.ts: an operator writing a filter policy has to read the TypeScript source.
    // Expected: the docs name every attribute an alert, a summary or an announcement carries.
    const docs = [
      readFileSync(join(ROOT, "README.md"), "utf8"),
      ...readdirSync(join(ROOT, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => readFileSync(join(ROOT, "docs", f), "utf8")),
    ].join("\n");
    const names = new Set([
      ...Object.keys(alertAttributes(sampleAlert())),
      ...Object.keys(suppressionSummary(1, "prod", [sampleAlert()]).attributes),
      ...Object.keys(panicAnnouncement(PANIC).attributes),
    ]);
    // Names of one common word ("type", "count", …) would be found in any text: the distinctive ones must be there.
    const distinctive = [...names].filter((n) => /[A-Z]/.test(n));
    expect(distinctive).toContain("srcNamespace");
    const undocumented = distinctive.filter((n) => !new RegExp(`\\b${n}\\b`).test(docs));
    expect(undocumented, "message attributes no operator document names").toEqual([]);
  });
});
