// The alert e-mails end to end on a local SNS/SQS (fauxqs): the real SNS sink publishes to an alerts topic, a raw
// subscription puts its messages in a mail queue, the mailer handler is given them as Lambda's SQS event would, and
// an e-mail topic is watched through an SQS subscription. SNS suspends an e-mail subscription sent more than 10
// messages a second: the mailer publishes one e-mail per invocation, and a second at least from one to the next.

import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import type { Message } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { deliverAlerts } from "../../functions/core/alert-delivery.ts";
import {
  alertSubject,
  emailOfJson,
  MAX_PUBLISH_BYTES,
  type PanicEvent,
} from "../../functions/core/alert-message.ts";
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";
import {
  createRuntime,
  type MailerRuntime,
  mailBatch,
  PUBLISH_INTERVAL_MS,
} from "../../functions/mailer/handler.ts";
import { db, sampleAlert, web } from "../support/alerts.ts";
import { forward } from "../support/fault-proxy.ts";
import {
  createTopic,
  drainQueue,
  envelopeOf,
  type FaultProxy,
  type LocalSns,
  REGION,
  sqsEventOf,
  startFaultProxy,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";

const API = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/";
const STORE_ARGS = ["--api", API];

let local: LocalSns;
let proxy: FaultProxy | undefined;
let serial = 0;

beforeAll(async () => {
  local = await startLocalSns();
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  vi.unstubAllEnvs();
});
afterAll(async () => {
  await local.close();
});

/** An alerts topic with its mail queue (raw), an e-mail topic with an inbox, and the sink publishing as ingest does. */
async function stack() {
  serial++;
  const alertsTopic = await createTopic(local, `alerts-${serial}`);
  const mailQueue = await subscribeQueue(local, alertsTopic, `mail-${serial}`, { raw: true });
  const emailTopic = await createTopic(local, `emails-${serial}`);
  const inbox = await subscribeQueue(local, emailTopic, `inbox-${serial}`);
  const sink = new SnsAlertSink({ topicArn: alertsTopic, client: local.sns, storeArgs: STORE_ARGS });
  return { alertsTopic, mailQueue, emailTopic, inbox, sink };
}

/** The mail queue's messages as Lambda hands them over: one SQS event's records. */
async function batchOf(queueUrl: string): Promise<SQSRecord[]> {
  return sqsEventOf(await drainQueue(local, queueUrl), "arn:aws:sqs:eu-west-1:000000000000:mail").Records;
}

/**
 * The mailer's runtime on a fake clock: a publish takes `publishMs`, and each wait the handler asks for moves the
 * clock on. `publishes` are the clock's readings when each publish began.
 */
function runtimeOn(
  topicArn: string,
  options: { client?: SNSClient; publishMs?: number; clock?: { ms: number } } = {},
) {
  const clock = options.clock ?? { ms: Date.UTC(2026, 3, 19, 5) };
  const waits: number[] = [];
  const publishes: number[] = [];
  const client = options.client ?? local.sns;
  const timed = {
    send: async (command: PublishCommand) => {
      publishes.push(clock.ms);
      try {
        return await client.send(command);
      } finally {
        clock.ms += options.publishMs ?? 0;
      }
    },
  } as unknown as SNSClient;
  const runtime: MailerRuntime = {
    client: timed,
    topicArn,
    cluster: "prod",
    storeArgs: STORE_ARGS,
    now: () => clock.ms,
    sleep: async (ms) => {
      waits.push(ms);
      clock.ms += ms;
    },
  };
  return { runtime, waits, publishes, clock };
}

/** The mailer's own SNS client, as createRuntime makes it, pointed at `endpoint` through the SDK's environment. */
function mailerClient(endpoint: string, emailTopic: string): SNSClient {
  vi.stubEnv("AWS_ENDPOINT_URL_SNS", endpoint);
  return createRuntime({ EMAIL_TOPIC_ARN: emailTopic, CLUSTER_NAME: "prod" }).client;
}

/** A loopback stand-in for SNS that carries out each request (on fauxqs) at once and answers it `delayMs` late. */
async function lateSns(delayMs: number) {
  const publishes: number[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      if (new URLSearchParams(body.toString("utf8")).get("Action") === "Publish") publishes.push(Date.now());
      const answer = await forward(
        new URL(local.endpoint),
        req.method ?? "POST",
        req.url ?? "/",
        req.headers,
        body,
      );
      setTimeout(() => {
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      }, delayMs);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    publishes,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

interface Mail {
  subject: string;
  text: string;
}
const mailOf = (m: Message): Mail => {
  const envelope = envelopeOf(m);
  return { subject: envelope.Subject ?? "", text: envelope.Message };
};

const bare = (ip: string, kind: Endpoint["kind"], resolved = true): Endpoint => ({
  ip,
  kind,
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved,
});

/** Every kind of alert, and the variants its e-mail words otherwise. */
const ALERTS: Record<string, AlertRecord> = {
  "internal denial": sampleAlert(),
  "internal denial, policy named, hits folded, labels": sampleAlert({
    id: "al_policy",
    src: { ...web, labels: { "baseten.co/organization": "true", team: "web" } },
    policy: { tier: "security", kind: "np", name: "deny-all", namespace: "customer-b" },
    foldedBefore: 7,
  }),
  "internal denial, unattributed, node and ICMP": sampleAlert({
    id: "al_bare",
    src: bare("192.168.50.5", "unknown", false),
    dst: { ...bare("192.168.0.10", "node"), name: "ip-192-168-0-10" },
    protocol: "ICMP",
    dstPort: null,
    key: {
      cluster: "prod",
      src: "192.168.50.5",
      dst: "node/ip-192-168-0-10",
      protocol: "ICMP",
      dstPort: null,
    },
  }),
  "internal denial, IPv6": sampleAlert({
    id: "al_v6",
    src: { ...web, ip: "fd00::a" },
    dst: bare("fd00::b", "unknown"),
  }),
  "internal scan": sampleAlert({
    id: "al_iscan",
    key: { cluster: "prod", src: "customer-a/Deployment/web", dst: "*scan*", protocol: "*", dstPort: null },
    protocol: "*",
    dstPort: null,
    reason: "internal-scan",
    namespaces: { src: ["customer-a"], dst: ["customer-b", "customer-c", null] },
  }),
  "fan-in": sampleAlert({
    id: "al_fanin",
    key: { cluster: "prod", src: "*many*", dst: "customer-b/StatefulSet/db", protocol: "TCP", dstPort: 8012 },
    reason: "internal-fan-in",
    namespaces: { src: ["customer-a", "customer-d"], dst: ["customer-b"] },
  }),
  "external scan": sampleAlert({
    id: "al_escan",
    key: { cluster: "prod", src: "203.0.113.9", dst: "*scan*", protocol: "*", dstPort: null },
    src: bare("203.0.113.9", "external"),
    dst: db,
    protocol: "*",
    dstPort: null,
    severity: "low",
    reason: "external-scan",
  }),
};

const PANIC: PanicEvent = {
  action: "applied",
  cluster: "prod",
  policyName: "calico-flows-panic",
  requester: "arn:aws:sts::123456789012:assumed-role/PlatformOncall/alice",
  reason: "checkout cannot reach payments",
  at: "2026-04-19T05:00:00.000Z",
  expiresAt: "2026-04-19T06:00:00.000Z",
  conflicts: Array.from({ length: 60 }, (_, i) => ({
    kind: "NetworkPolicy",
    name: `default-deny-${i}`,
    namespace: `customer-${i}`,
    tier: "security",
    order: i % 2 === 0 ? 10 : null,
    explanation: "a Deny rule in an earlier tier",
  })),
};

describe("the e-mail rendered from a message's JSON", () => {
  it("is the subject and text the sink gives e-mail subscribers, for every kind of alert, summary and announcement", async () => {
    const { alertsTopic, sink } = await stack();
    const watch = await subscribeQueue(local, alertsTopic, `watch-${serial}`);
    const suppressed = Object.values(ALERTS);
    const many = Array.from({ length: 23 }, (_, i) => sampleAlert({ id: `al_${i}`, dstPort: 9000 + i }));
    const cases: [string, () => Promise<void>][] = [
      ...Object.entries(ALERTS).map(([name, a]): [string, () => Promise<void>] => [
        `alert: ${name}`,
        () => sink.publishAlert(a),
      ]),
      ["summary of every kind", () => sink.publishSummary(suppressed.length, "prod", suppressed)],
      ["summary listing 20 of 23", () => sink.publishSummary(23, "prod", many)],
      ["summary of one", () => sink.publishSummary(1, "prod", [ALERTS["external scan"] as AlertRecord])],
      ["summary that knows none of its alerts", () => sink.publishSummary(4, "prod")],
      ["panic applied, 60 conflicts", () => sink.publishPanic(PANIC)],
      [
        "panic applied, expiry not scheduled",
        () =>
          sink.publishPanic({ ...PANIC, conflicts: [], expiryNotScheduled: ["Scheduler refused: quota"] }),
      ],
      [
        "panic applied for good",
        () => sink.publishPanic({ ...PANIC, expiresAt: null, conflicts: undefined }),
      ],
      ["panic reverted", () => sink.publishPanic({ ...PANIC, action: "reverted", conflicts: [] })],
      ["panic expired", () => sink.publishPanic({ ...PANIC, action: "expired", requester: "scheduler" })],
      [
        "panic refused",
        () =>
          sink.publishPanic({ ...PANIC, action: "refused", detail: "a policy calico-flows did not create" }),
      ],
    ];
    for (const [name, publish] of cases) {
      await publish();
      const [message] = await drainQueue(local, watch);
      expect(message, name).toBeDefined();
      const envelope = envelopeOf(message as Message);
      const structure = structureOf(message as Message);
      const email = emailOfJson(structure.default, { storeArgs: STORE_ARGS });
      expect(email?.subject, name).toBe(envelope.Subject);
      expect(email?.text, name).toBe(structure.email);
      // A raw subscription to SQS drops a message of more than 10 attributes.
      expect(Object.keys(envelope.MessageAttributes ?? {}).length, name).toBeLessThanOrEqual(10);
    }
  });

  it("lists a summary's alerts by their own subjects, which its JSON carries with their first hit", async () => {
    const { alertsTopic, sink } = await stack();
    const watch = await subscribeQueue(local, alertsTopic, `watch-${serial}`);
    const a = ALERTS["fan-in"] as AlertRecord;
    await sink.publishSummary(1, "prod", [a]);
    const json = JSON.parse(structureOf((await drainQueue(local, watch))[0] as Message).default);
    // Added to what machine subscribers had (id, key, severity, count, openedAt), nothing taken away.
    expect(json.alerts).toEqual([
      {
        id: a.id,
        key: a.key,
        severity: a.severity,
        count: a.count,
        openedAt: a.openedAt,
        firstSeen: a.firstSeen,
        subject: alertSubject(a),
      },
    ]);
  });

  it("reads nothing from a body that is not JSON, of another type, or without what its text needs", () => {
    const olderSummary = {
      type: "summary",
      cluster: "prod",
      count: 3,
      since: null,
      alerts: [{ id: "al_1", key: {}, severity: "high", count: 1, openedAt: "2026-04-19T04:52:19.000Z" }],
    };
    const { src: _, ...noSource } = JSON.parse(JSON.stringify({ type: "alert", ...sampleAlert() }));
    for (const body of [
      "not json {",
      "null",
      JSON.stringify({ type: "flow" }),
      JSON.stringify(olderSummary),
      JSON.stringify(noSource),
      JSON.stringify({ type: "alert", ...sampleAlert({ windowEnd: "tomorrow" }) }),
    ]) {
      expect(emailOfJson(body), body).toBeUndefined();
    }
  });
});

describe("the mailer", () => {
  it("mails one message as the e-mail a subscriber of the alerts topic got, a second at least after the last", async () => {
    const { alertsTopic, mailQueue, emailTopic, inbox, sink } = await stack();
    const watch = await subscribeQueue(local, alertsTopic, `watch-${serial}`);
    await sink.publishAlert(ALERTS["internal denial"] as AlertRecord);
    const sent = (await drainQueue(local, watch))[0] as Message;
    const { runtime, waits } = runtimeOn(emailTopic, { publishMs: 300 });

    const result = await mailBatch(await batchOf(mailQueue), runtime);

    expect(result).toEqual({ messages: 1, repeats: 0, unreadable: 0, leftOut: 0 });
    const mails = (await drainQueue(local, inbox)).map(mailOf);
    expect(mails).toEqual([{ subject: envelopeOf(sent).Subject, text: structureOf(sent).email }]);
    expect(mails[0]?.text).toContain(`calico-flows flows --api ${API} --cluster prod`);
    // The publish took 300 ms of the clock: the rest of the second is waited out.
    expect(waits).toEqual([PUBLISH_INTERVAL_MS - 300]);
  });

  it("turns a flood of 200 alerts into one e-mail per invocation, within SNS's size", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    // Opened a second apart: the note's --since must be that of the oldest alert it leaves out.
    const first = Date.parse(sampleAlert().openedAt);
    const alerts = Array.from({ length: 200 }, (_, i) =>
      sampleAlert({
        id: `al_${String(i).padStart(3, "0")}`,
        dstPort: 1000 + i,
        openedAt: new Date(first + i * 1_000).toISOString(),
      }),
    );
    const openedAt = new Map(alerts.map((a) => [a.id, a.openedAt]));
    await deliverAlerts({ markAlertSent: async () => {} }, sink, alerts, { cap: 200 });
    const records = await batchOf(mailQueue);
    expect(records).toHaveLength(200);

    // Two invocations at once, as the event source's maximum concurrency allows, a batch each.
    const batches = [records.slice(0, 100), records.slice(100)];
    const results = await Promise.all(
      batches.map((batch) => mailBatch(batch, runtimeOn(emailTopic).runtime)),
    );
    const batchIds = batches.map((batch) => batch.map((r) => JSON.parse(r.body).id as string));

    const mails = (await drainQueue(local, inbox)).map(mailOf);
    expect(mails).toHaveLength(2);
    const mailed = new Set<string>();
    for (const [k, mail] of mails.entries()) {
      expect(mail.subject).toMatch(
        /^\[100 messages\] Calico denied customer-a\/web → customer-b\/db:1\d{3}\/TCP/,
      );
      expect(mail.subject.length).toBeLessThan(100);
      expect(Buffer.byteLength(mail.subject) + Buffer.byteLength(mail.text)).toBeLessThanOrEqual(
        MAX_PUBLISH_BYTES,
      );
      // The index names all 100; the texts that fit follow, and the note counts the rest.
      expect(mail.text.match(/^ {2}[ \d]{3}\. Calico denied /gm)).toHaveLength(100);
      const ids = [...mail.text.matchAll(/^Alert (al_\d{3}) \(severity high/gm)].map((m) => m[1] as string);
      for (const id of ids) mailed.add(id);
      const leftOut = results.find((r) => r.messages - r.leftOut === ids.length)?.leftOut ?? -1;
      expect(leftOut, `e-mail ${k}`).toBeGreaterThan(0);
      expect(mail.text).toContain(`===== ${leftOut} more left out =====`);
      const leftOutIds = batchIds
        .find((batch) => batch.includes(ids[0] as string))
        ?.filter((id) => !ids.includes(id));
      expect(leftOutIds).toHaveLength(leftOut);
      const since = leftOutIds?.map((id) => openedAt.get(id) as string).sort()[0];
      expect(mail.text).toContain(`calico-flows alerts --api ${API} --cluster prod --since ${since}\n`);
    }
    expect(mailed.size).toBe(200 - results.reduce((n, r) => n + r.leftOut, 0));
  });

  it("publishes a second apart at least in one invocation slot, however fast SNS answers", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    const clock = { ms: Date.UTC(2026, 3, 19, 5) };
    const slot = runtimeOn(emailTopic, { clock, publishMs: 5 });
    for (let round = 0; round < 3; round++) {
      await sink.publishAlert(sampleAlert({ id: `al_${round}` }));
      await mailBatch(await batchOf(mailQueue), slot.runtime);
    }
    expect(await drainQueue(local, inbox)).toHaveLength(3);
    const gaps = slot.publishes.slice(1).map((at, i) => at - (slot.publishes[i] as number));
    expect(gaps).toEqual([PUBLISH_INTERVAL_MS, PUBLISH_INTERVAL_MS]);
  });

  it("keeps a message it cannot read, as it came, beside those it can", async () => {
    const { alertsTopic, mailQueue, emailTopic, inbox, sink } = await stack();
    await local.sns.send(new PublishCommand({ TopicArn: alertsTopic, Message: "not json {\nsecond line" }));
    await sink.publishPanic({ ...PANIC, conflicts: [] });
    await sink.publishAlert(ALERTS["external scan"] as AlertRecord);
    await sink.publishAlert(ALERTS["internal scan"] as AlertRecord);

    const result = await mailBatch(await batchOf(mailQueue), runtimeOn(emailTopic).runtime);

    expect(result).toEqual({ messages: 4, repeats: 0, unreadable: 1, leftOut: 0 });
    const [mail] = (await drainQueue(local, inbox)).map(mailOf);
    expect(mail?.subject).toBe("[4 messages] Calico panic policy applied on prod by alice");
    // The panic announcement first, then high severity (the unreadable one counts as high), then the oldest.
    const index = mail?.text.match(/^ {2}\d\. .*$/gm);
    expect(index).toEqual([
      "  1. Calico panic policy applied on prod by alice",
      "  2. Calico: internal scan from customer-a/web denied (prod)",
      "  3. Calico: a message calico-flows cannot read (prod)",
      "  4. Calico: external scan from 203.0.113.9 denied (prod)",
    ]);
    expect(mail?.text).toContain("As it came:\n\nnot json {\nsecond line\n");
    expect(mail?.text).toContain("The Calico panic policy calico-flows-panic was applied on cluster prod.");
  });

  it("mails a message once, and a repeat of it (the same alert id, or the same body) not again", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    const alert = sampleAlert();
    const panic = { ...PANIC, conflicts: [] };
    // As the sink repeats a publish SNS took but whose answer was lost: each twice, the alert's second told later.
    await sink.publishAlert(alert);
    await sink.publishSummary(3, "prod", [sampleAlert({ id: "al_2" })]);
    await sink.publishPanic(panic);
    await sink.publishAlert({ ...alert, count: 2 });
    await sink.publishSummary(3, "prod", [sampleAlert({ id: "al_2" })]);
    await sink.publishPanic(panic);
    // Another alert of the same key (another window, another id) is not a repeat.
    await sink.publishAlert(sampleAlert({ id: "al_next" }));

    const result = await mailBatch(await batchOf(mailQueue), runtimeOn(emailTopic).runtime);

    expect(result).toEqual({ messages: 4, repeats: 3, unreadable: 0, leftOut: 0 });
    const [mail] = (await drainQueue(local, inbox)).map(mailOf);
    expect(mail?.subject).toMatch(/^\[4 messages\] /);
    expect(mail?.text.match(/^ {2}\d\. /gm)).toHaveLength(4);
    expect(mail?.text.match(/^Alert al_0001 \(/gm)).toHaveLength(1);
    expect(mail?.text.match(/^Alert al_next \(/gm)).toHaveLength(1);
  });

  it("mails the latest of an alert's repeats, whatever their order in the batch", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    // Handed out again after more hits folded in (its publish failed, or marking it sent did): a later count.
    await sink.publishAlert(sampleAlert({ count: 3, lastSeen: "2026-04-19T04:53:02.000Z" }));
    await sink.publishAlert(sampleAlert({ count: 8, lastSeen: "2026-04-19T04:58:40.000Z" }));
    // The same count seen later: a fold whose hits came with no new packet counted (its span widened).
    const second = { id: "al_0002", openedAt: "2026-04-19T04:54:00.000Z", count: 5 };
    await sink.publishAlert(sampleAlert({ ...second, lastSeen: "2026-04-19T04:55:00.000Z" }));
    await sink.publishAlert(sampleAlert({ ...second, lastSeen: "2026-04-19T04:56:00.000Z" }));
    const records = await batchOf(mailQueue);
    expect(records.map((r) => JSON.parse(r.body).count)).toEqual([3, 8, 5, 5]);

    for (const batch of [records, [...records].reverse()]) {
      const result = await mailBatch(batch, runtimeOn(emailTopic).runtime);
      expect(result).toEqual({ messages: 2, repeats: 2, unreadable: 0, leftOut: 0 });
      const [mail] = (await drainQueue(local, inbox)).map(mailOf);
      expect(mail?.text.match(/^ {2}Hits: +\d+ /gm)).toEqual(["  Hits:        8 ", "  Hits:        5 "]);
      expect(mail?.text.match(/^ {2}Last seen: +\S+/gm)).toEqual([
        "  Last seen:   2026-04-19T04:58:40.000Z",
        "  Last seen:   2026-04-19T04:56:00.000Z",
      ]);
    }
  });

  it("marks a message late that tells of long ago, redriven from the dead-letter queue, and its subject", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    // Applied 9 days before the mailer's clock; a redrive makes it a new message of the queue (a new SentTimestamp).
    await sink.publishPanic({ ...PANIC, conflicts: [], at: "2026-04-10T05:00:00.000Z" });
    await sink.publishAlert(sampleAlert());

    await mailBatch(await batchOf(mailQueue), runtimeOn(emailTopic).runtime);

    const [mail] = (await drainQueue(local, inbox)).map(mailOf);
    expect(mail?.subject).toBe("[2 messages] [late: 9d] Calico panic policy applied on prod by alice");
    expect(mail?.text).toContain("  1. [late: 9d] Calico panic policy applied on prod by alice\n");
    expect(mail?.text).toContain("\n===== 1 of 2 [late: 9d] =====\n");
    // The alert opened 7 minutes before the clock: not late.
    expect(mail?.text).toContain("\n===== 2 of 2 =====\n");
  });

  it("publishes once when SNS takes the e-mail but the connection drops: redelivery is the retry", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    await sink.publishAlert(sampleAlert());
    await sink.publishAlert(sampleAlert({ id: "al_2" }));
    proxy = await startFaultProxy(local.endpoint, (params) =>
      params.get("Action") === "Publish" ? "lose-response" : "forward",
    );
    const { runtime, waits } = runtimeOn(emailTopic, {
      client: mailerClient(proxy.endpoint, emailTopic),
      publishMs: 40,
    });

    await expect(mailBatch(await batchOf(mailQueue), runtime)).rejects.toThrow(
      /^publishing the e-mail of 2 message\(s\) to .* failed/,
    );

    // One e-mail went out, and no other in this invocation: the slot's next publish still waits its second.
    expect(proxy.seen.filter((r) => r.action === "Publish")).toHaveLength(1);
    expect(await drainQueue(local, inbox)).toHaveLength(1);
    expect(waits).toEqual([PUBLISH_INTERVAL_MS - 40]);
  });

  it("waits for SNS's late answer rather than publishing the e-mail again", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    await sink.publishAlert(sampleAlert());
    // Later than the ingest's sink waits (2 s), well within the mailer's own timeout.
    const sns = await lateSns(2_500);
    try {
      const { runtime } = runtimeOn(emailTopic, { client: mailerClient(sns.endpoint, emailTopic) });
      expect(await mailBatch(await batchOf(mailQueue), runtime)).toMatchObject({ messages: 1 });
      expect(sns.publishes).toHaveLength(1);
      expect(await drainQueue(local, inbox)).toHaveLength(1);
    } finally {
      sns.close();
    }
  });

  it("fails the batch when its e-mail cannot be published, after waiting out its second", async () => {
    const { mailQueue, emailTopic, inbox, sink } = await stack();
    await sink.publishAlert(sampleAlert());
    await sink.publishSummary(3, "prod", [sampleAlert({ id: "al_2" })]);
    proxy = await startFaultProxy(local.endpoint, (params) =>
      params.get("Action") === "Publish" ? "fail" : "forward",
    );
    const failing = new SNSClient({
      endpoint: proxy.endpoint,
      region: REGION,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      maxAttempts: 1,
    });
    const { runtime, waits } = runtimeOn(emailTopic, { client: failing, publishMs: 50 });

    await expect(mailBatch(await batchOf(mailQueue), runtime)).rejects.toThrow(
      /^publishing the e-mail of 2 message\(s\) to .* failed: InternalFailure/,
    );

    failing.destroy();
    expect(await drainQueue(local, inbox)).toEqual([]);
    // SNS may have taken a publish whose answer was lost: the slot's next one still waits its second.
    expect(waits).toEqual([PUBLISH_INTERVAL_MS - 50]);
  });
});
