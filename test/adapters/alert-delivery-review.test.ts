// Alert delivery checked against its documented contract (issue 5, docs/flow-store.md "Delivery", the attribute
// table of functions/core/alert-message.ts) through a real local SNS/SQS (fauxqs): generated batches of alerts
// with odd names and missing fields, above and below the cap, delivered to envelope and raw SQS subscriptions with
// and without filter policies; then failures (topic gone, SNS answering 500) and the retries that follow.
import { DeleteTopicCommand, SNSClient } from "@aws-sdk/client-sns";
import type { Message } from "@aws-sdk/client-sqs";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import {
  AlertDeliveryError,
  type AlertPublisher,
  type DeliveryResult,
  deliverAlerts,
} from "../../functions/core/alert-delivery.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";
import {
  createTopic,
  drainQueue,
  envelopeOf,
  type FaultProxy,
  type LocalSns,
  REGION,
  startFaultProxy,
  startLocalSns,
  subscribeQueue,
} from "../support/fauxqs.ts";

// ---------------------------------------------------------------------------------------------------------------
// The store's half of the contract, in memory: applyAlerts records alerts pending before anything is sent and hands
// back everything still pending; markAlertSent flips one to sent. Every mark is logged, to check it follows a publish.

class MemoryAlertStore implements Pick<FlowStore, "markAlertSent"> {
  readonly #alerts = new Map<string, AlertRecord>();
  readonly log: string[] = [];

  open(opened: readonly AlertRecord[]): AlertRecord[] {
    for (const a of opened)
      if (!this.#alerts.has(a.id)) this.#alerts.set(a.id, { ...a, delivery: "pending" });
    return [...this.#alerts.values()].filter((a) => a.delivery === "pending").map((a) => ({ ...a }));
  }

  async markAlertSent(alert: AlertRecord, how: "sent" | "summarized" = "sent"): Promise<void> {
    const stored = this.#alerts.get(alert.id);
    if (stored === undefined) throw new Error(`no alert ${alert.id}`);
    this.log.push(`marked ${alert.id}`);
    stored.delivery = how;
  }

  pending(): string[] {
    return [...this.#alerts.values()].filter((a) => a.delivery === "pending").map((a) => a.id);
  }
}

/** The real sink, with every publish SNS accepted written to the store's log (not a mock: it only records). */
function recording(
  sink: SnsAlertSink,
  log: string[],
): Pick<AlertPublisher, "publishAlert" | "publishSummary"> {
  return {
    async publishAlert(alert) {
      await sink.publishAlert(alert);
      log.push(`published ${alert.id}`);
    },
    async publishSummary(count, cluster, suppressed = []) {
      await sink.publishSummary(count, cluster, suppressed);
      for (const a of suppressed) log.push(`published ${a.id}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Generated alerts.

const oddText = fc.oneof(
  fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }),
  fc.constantFrom(
    'web "quoted"',
    "it's-a-pod",
    "line\nbreak\r\nagain",
    "tab\there",
    "ünïcødé-пример-数据",
    "🚀🔥-pod-😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
    "para\u2028graph\u2029sep",
    "nul\u0000and\u007fdel\u0085nel",
    "  spaced   out  ",
    "-rf",
  ),
  fc.string({ unit: "grapheme-ascii", minLength: 120, maxLength: 1500 }),
);
const k8sName = fc.stringMatching(/^[a-z][a-z0-9-]{0,18}[a-z0-9]$/);
const name = fc.oneof({ weight: 2, arbitrary: k8sName }, { weight: 3, arbitrary: oddText });
const namespace = fc.oneof(
  fc.constantFrom("customer-a", "customer-b", "kube-system", "ünï-ns", 'ns"q', "-"),
  fc.constant(null),
);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `192.168.${a}.${b}`);
const ip = fc.oneof(
  ipv4,
  fc.ipV6(),
  fc.constantFrom("fd00:10:96::a", "2001:db8::1", "fe80::1ff:fe23:4567:890a", "::ffff:192.168.1.1"),
);

const endpoint: fc.Arbitrary<Endpoint> = fc.record({
  ip,
  kind: fc.constantFrom("pod", "service", "node", "external", "unknown"),
  namespace,
  name: fc.option(name, { nil: null }),
  workload: fc.option(fc.record({ kind: fc.constantFrom("Deployment", "StatefulSet", "DaemonSet"), name }), {
    nil: null,
  }),
  node: fc.option(name, { nil: null }),
  resolved: fc.boolean(),
});

const MINUTE = 60_000;
const T0 = Date.parse("2026-04-19T00:00:00.000Z");

const alertShape = fc.record({
  scan: fc.boolean(),
  cluster: fc.oneof({ weight: 3, arbitrary: fc.constantFrom("prod", "staging-eu-west-1") }, oddText),
  src: endpoint,
  dst: endpoint,
  protocol: fc.constantFrom("TCP", "UDP", "ICMP", "SCTP", "47"),
  // Ports around the filter's range [8000, 9000) as often as anywhere else.
  port: fc.oneof(fc.constantFrom(7999, 8000, 8012, 8999, 9000, 5432), fc.integer({ min: 1, max: 65_535 })),
  direction: fc.constantFrom("ingress", "egress", "host", "forward"),
  reporter: name,
  policy: fc.option(
    fc.record({
      tier: fc.option(name, { nil: null }),
      kind: fc.option(fc.constantFrom("gnp", "np", "GlobalNetworkPolicy"), { nil: null }),
      name: fc.option(name, { nil: null }),
      namespace: fc.option(name, { nil: null }),
    }),
    { nil: null },
  ),
  count: fc.integer({ min: 1, max: 1_000_000 }),
  foldedBefore: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5_000 })),
  // Alerts opened at the same minute are ordered by id.
  openedMinute: fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 60 * 24 })),
  spanMs: fc.integer({ min: 0, max: 15 * MINUTE }),
});

/** An alert as applyAlerts returns it; scans have the key the scan rule gives them (dst `*scan*`, protocol `*`). */
function toAlert(shape: ShapeOf, id: string): AlertRecord {
  const opened = T0 + shape.openedMinute * MINUTE;
  const protocol = shape.scan ? "*" : shape.protocol;
  const dstPort = shape.scan || shape.protocol === "ICMP" ? null : shape.port;
  const src = shape.scan ? { ...shape.src, kind: "external" as const, namespace: null } : shape.src;
  return {
    id,
    cluster: shape.cluster,
    key: {
      cluster: shape.cluster,
      src: src.ip,
      dst: shape.scan ? "*scan*" : shape.dst.ip,
      protocol,
      dstPort,
    },
    src,
    dst: shape.dst,
    protocol,
    dstPort,
    direction: shape.direction,
    reporter: shape.reporter,
    policy: shape.policy,
    severity: shape.scan ? "low" : "high",
    reason: shape.scan ? "external-scan" : "internal-denial",
    count: shape.count,
    foldedBefore: shape.foldedBefore,
    openedAt: new Date(opened).toISOString(),
    windowEnd: new Date(opened + 15 * MINUTE).toISOString(),
    firstSeen: new Date(opened).toISOString(),
    lastSeen: new Date(opened + shape.spanMs).toISOString(),
    delivery: "pending",
  };
}
type ShapeOf = typeof alertShape extends fc.Arbitrary<infer S> ? S : never;

const smallBatch = fc
  .array(alertShape, { minLength: 1, maxLength: 14 })
  .map((shapes) => shapes.map((s, i) => toAlert(s, `al_${i}_${s.openedMinute}`)));

const batch = fc
  .oneof(
    { weight: 9, arbitrary: fc.array(alertShape, { minLength: 1, maxLength: 14 }) },
    // Beyond the summary's 20 listed alerts and its attributes' 100 distinct values.
    { weight: 1, arbitrary: fc.array(alertShape, { minLength: 100, maxLength: 130 }) },
  )
  .map((shapes) => shapes.map((s, i) => toAlert(s, `al_${i}_${s.openedMinute}`)));

// ---------------------------------------------------------------------------------------------------------------
// The documented contract, written out independently of the code under review.

/** "Oldest high-severity alerts first" (alert-delivery.ts): the ones the cap keeps. */
function documentedOrder(alerts: readonly AlertRecord[]): AlertRecord[] {
  return [...alerts].sort((a, b) =>
    a.severity !== b.severity
      ? a.severity === "high"
        ? -1
        : 1
      : a.openedAt !== b.openedAt
        ? a.openedAt < b.openedAt
          ? -1
          : 1
        : a.id < b.id
          ? -1
          : 1,
  );
}

/** The attribute table of alert-message.ts: `-` for no namespace, dstPort a Number and absent without a port. */
function documentedAttributes(a: AlertRecord): Record<string, [string, string]> {
  const out: Record<string, [string, string]> = {
    type: ["String", "alert"],
    severity: ["String", a.severity],
    reason: ["String", a.reason],
    cluster: ["String", a.cluster],
    srcNamespace: ["String", a.src.namespace ?? "-"],
    dstNamespace: ["String", a.dst.namespace ?? "-"],
    protocol: ["String", a.protocol],
    alertId: ["String", a.id],
  };
  if (a.dstPort !== null) out.dstPort = ["Number", String(a.dstPort)];
  return out;
}

function documentedSummaryAttributes(
  cluster: string,
  suppressed: readonly AlertRecord[],
): Record<string, [string, string]> {
  const distinct = <T>(values: T[]) => JSON.stringify([...new Set(values)].slice(0, 100));
  const ports = suppressed.flatMap((a) => (a.dstPort === null ? [] : [a.dstPort]));
  return {
    type: ["String", "summary"],
    severity: ["String.Array", JSON.stringify([...new Set(suppressed.map((a) => a.severity))].sort())],
    cluster: ["String", cluster],
    count: ["Number", String(suppressed.length)],
    reason: ["String.Array", distinct(suppressed.map((a) => a.reason))],
    srcNamespace: ["String.Array", distinct(suppressed.map((a) => a.src.namespace ?? "-"))],
    dstNamespace: ["String.Array", distinct(suppressed.map((a) => a.dst.namespace ?? "-"))],
    protocol: ["String.Array", distinct(suppressed.map((a) => a.protocol))],
    ...(ports.length > 0 ? { dstPort: ["String.Array", distinct(ports)] as [string, string] } : {}),
  };
}

/**
 * SNS Publish: "Subjects must be UTF-8 text with no line breaks or control characters, and less than 100
 * characters long", beginning with a letter, number or punctuation mark. Line breaks include Unicode's line and
 * paragraph separators; UTF-8 text has no lone surrogates.
 */
function expectValidSubject(subject: string | undefined): asserts subject is string {
  expect(subject).toBeTypeOf("string");
  const s = subject as string;
  expect(s.length, s).toBeGreaterThan(0);
  expect(s.length, s).toBeLessThan(100);
  expect(s, "control or format characters, or line breaks").not.toMatch(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u);
  expect(s, "lone surrogate").not.toMatch(/[\uD800-\uDFFF]/u);
  expect(s).toMatch(/^[\p{L}\p{N}\p{P}]/u);
}

/**
 * How the e-mail prints log-derived names: control characters, line breaks and format characters (bidirectional
 * overrides, zero-width spaces) become spaces.
 */
const printed = (text: string) => text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, " ");
const printedLine = (text: string) => printed(text).replace(/ {2,}/g, " ").trim();

/** Who, what, where, how many, when: what an operator needs from the e-mail. */
function expectOperatorFacts(email: string, a: AlertRecord): void {
  expect(email).toContain(a.cluster);
  for (const e of [a.src, a.dst]) {
    expect(email).toContain(e.ip);
    if (e.namespace !== null) expect(email).toContain(printed(e.namespace));
    if (e.name !== null) expect(email).toContain(printed(e.name));
    if (e.workload !== null) expect(email).toContain(printed(e.workload.name));
    if (e.node !== null) expect(email).toContain(printed(e.node));
  }
  expect(email).toContain(`node ${printedLine(a.reporter)}`);
  expect(email).toMatch(new RegExp(`Hits:\\s+${a.count} `));
  if (a.foldedBefore > 0) expect(email).toContain(`${a.foldedBefore} more hit`);
  expect(email).toContain(a.firstSeen);
  expect(email).toContain(a.lastSeen);
  expect(email).toContain(a.id);
  if (a.reason === "internal-denial") {
    expect(email).toContain(a.dstPort === null ? a.protocol : `${a.dstPort}/${a.protocol}`);
    expect(email).toContain("calico-flows flows --cluster");
    expect(email).toMatch(/kubectl (describe|get pods -A -o wide --field-selector status\.podIP=)/);
    if (a.policy?.name != null) expect(email).toContain(printedLine(a.policy.name));
  } else {
    expect(email).toContain(`--ip ${a.src.ip}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What subscribers received.

interface Received {
  subject: string | undefined;
  /** The `default` structure's JSON. */
  body: unknown;
  email: string | undefined;
  attributes: Record<string, [string, string]>;
}

/**
 * Real SNS hands an SQS subscriber the `default` value of a `MessageStructure: json` publish; fauxqs hands on the
 * whole structure (test/support/fauxqs.ts). Either way the `default` JSON is read here.
 */
function structureOfText(text: string): { default: string; email?: string } {
  const parsed = JSON.parse(text) as unknown;
  if (
    typeof parsed === "object" &&
    parsed !== null &&
    typeof (parsed as { default?: unknown }).default === "string"
  )
    return parsed as { default: string; email?: string };
  return { default: text };
}

function fromEnvelope(m: Message): Received {
  const envelope = envelopeOf(m);
  const structure = structureOfText(envelope.Message);
  return {
    subject: envelope.Subject,
    body: JSON.parse(structure.default),
    email: structure.email,
    attributes: Object.fromEntries(
      Object.entries(envelope.MessageAttributes ?? {}).map(([k, v]) => [k, [v.Type, v.Value]]),
    ),
  };
}

function fromRaw(m: Message): Received {
  const structure = structureOfText(m.Body ?? "");
  return {
    subject: undefined,
    body: JSON.parse(structure.default),
    email: structure.email,
    attributes: Object.fromEntries(
      Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [k, [v.DataType ?? "", v.StringValue ?? ""]]),
    ),
  };
}

const typeOf = (r: Received) => r.attributes.type?.[1];
const idOf = (r: Received) => r.attributes.alertId?.[1];

// ---------------------------------------------------------------------------------------------------------------

const credentials = { accessKeyId: "test", secretAccessKey: "test" };
let local: LocalSns;
let proxy: FaultProxy | undefined;
let serial = 0;

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

/** Filter policies of the subscriptions, and which alerts each should receive per the documented attributes. */
const FILTERS = {
  customerBPorts: {
    raw: false,
    policy: {
      type: ["alert"],
      dstNamespace: ["customer-b"],
      dstPort: [{ numeric: [">=", 8000, "<", 9000] }],
    },
    wants: (a: AlertRecord) =>
      a.dst.namespace === "customer-b" && a.dstPort !== null && a.dstPort >= 8000 && a.dstPort < 9000,
  },
  noSourceNamespace: {
    raw: true,
    policy: { type: ["alert"], srcNamespace: ["-"] },
    wants: (a: AlertRecord) => a.src.namespace === null || a.src.namespace === "-",
  },
  notKubeSystemHigh: {
    raw: false,
    policy: { type: ["alert"], severity: ["high"], srcNamespace: [{ "anything-but": ["kube-system"] }] },
    wants: (a: AlertRecord) => a.severity === "high" && a.src.namespace !== "kube-system",
  },
  portlessScans: {
    raw: true,
    policy: { type: ["alert"], reason: ["external-scan"], dstPort: [{ exists: false }] },
    wants: (a: AlertRecord) => a.reason === "external-scan",
  },
} as const;

interface Topic {
  topicArn: string;
  envelope: string;
  raw: string;
  filtered: Record<keyof typeof FILTERS, string>;
}

/** A topic (new, or `topicArn` re-created) with fresh queues: envelope, raw, and one per filter policy. */
async function topicWithSubscribers(topicArn?: string): Promise<Topic> {
  serial++;
  const arn = topicArn ?? (await createTopic(local, `review-${serial}`));
  const filtered = {} as Record<keyof typeof FILTERS, string>;
  for (const label of Object.keys(FILTERS) as (keyof typeof FILTERS)[]) {
    const f = FILTERS[label];
    filtered[label] = await subscribeQueue(local, arn, `${label}-${serial}`, {
      filterPolicy: f.policy,
      raw: f.raw,
    });
  }
  return {
    topicArn: arn,
    envelope: await subscribeQueue(local, arn, `envelope-${serial}`),
    raw: await subscribeQueue(local, arn, `raw-${serial}`, { raw: true }),
    filtered,
  };
}

async function drainAll(topic: Topic) {
  const filtered = {} as Record<keyof typeof FILTERS, Received[]>;
  for (const label of Object.keys(FILTERS) as (keyof typeof FILTERS)[]) {
    const read = FILTERS[label].raw ? fromRaw : fromEnvelope;
    filtered[label] = (await drainQueue(local, topic.filtered[label])).map(read);
  }
  return {
    envelope: (await drainQueue(local, topic.envelope)).map(fromEnvelope),
    raw: (await drainQueue(local, topic.raw)).map(fromRaw),
    filtered,
  };
}

/** Checks one delivery round: `cap` alerts one by one in the documented order, one summary per cluster for the rest. */
function expectDelivered(
  pending: readonly AlertRecord[],
  cap: number,
  received: Awaited<ReturnType<typeof drainAll>>,
): void {
  const ordered = documentedOrder(pending);
  const individual = ordered.slice(0, cap);
  const overCap = ordered.slice(cap);

  for (const [kind, messages] of [
    ["envelope", received.envelope],
    ["raw", received.raw],
  ] as const) {
    const alerts = messages.filter((r) => typeOf(r) === "alert");
    expect(alerts.map(idOf).sort(), kind).toEqual(individual.map((a) => a.id).sort());
    for (const r of alerts) {
      const a = individual.find((x) => x.id === idOf(r)) as AlertRecord;
      expect(r.body, `${kind} default JSON of ${a.id}`).toEqual({ type: "alert", ...a });
      expect(r.attributes, `${kind} attributes of ${a.id}`).toEqual(documentedAttributes(a));
      if (kind === "envelope") {
        expectValidSubject(r.subject);
        if (a.reason === "internal-denial") {
          expect(r.subject).toMatch(/^Calico denied /);
          expect(r.subject).toContain(a.dstPort === null ? ` ${a.protocol}` : `:${a.dstPort}/${a.protocol}`);
        } else expect(r.subject).toMatch(/^Calico: external scan from /);
        if (/^[a-z0-9-]{1,20}$/.test(a.cluster)) expect(r.subject).toContain(`(${a.cluster})`);
        expect(r.email).toBeTypeOf("string");
        expectOperatorFacts(r.email as string, a);
      }
    }

    const summaries = messages.filter((r) => typeOf(r) === "summary");
    const clusters = [...new Set(overCap.map((a) => a.cluster))];
    expect(summaries.map((r) => r.attributes.cluster?.[1]).sort(), `${kind} summaries`).toEqual(
      clusters.sort(),
    );
    for (const r of summaries) {
      const cluster = r.attributes.cluster?.[1] as string;
      const suppressed = overCap.filter((a) => a.cluster === cluster);
      expect(r.attributes).toEqual(documentedSummaryAttributes(cluster, suppressed));
      expect(r.body).toMatchObject({
        type: "summary",
        cluster,
        count: suppressed.length,
        alerts: suppressed.slice(0, 20).map((a) => ({ id: a.id, severity: a.severity, count: a.count })),
      });
      if (kind === "envelope") {
        expectValidSubject(r.subject);
        expect(r.subject).toContain(`${suppressed.length} more alert${suppressed.length === 1 ? "" : "s"}`);
        expect(r.email).toContain(`${suppressed.length} more alert`);
        expect(r.email).toContain("calico-flows alerts --cluster");
      }
    }
    expect(messages.length, kind).toBe(alerts.length + summaries.length);
  }

  for (const label of Object.keys(FILTERS) as (keyof typeof FILTERS)[]) {
    expect(received.filtered[label].map(idOf).sort(), label).toEqual(
      individual
        .filter(FILTERS[label].wants)
        .map((a) => a.id)
        .sort(),
    );
  }
}

/** Every mark follows the publish that delivered it (recorded before sending, marked sent after). */
function expectMarkedAfterPublished(log: readonly string[]): void {
  log.forEach((entry, i) => {
    if (entry.startsWith("marked ")) {
      expect(log.slice(0, i), entry).toContain(`published ${entry.slice("marked ".length)}`);
    }
  });
}

describe("deliverAlerts through SNS, against the documented contract", () => {
  it("keeps every subject on one line, whatever line breaks the names carry", async () => {
    const topic = await topicWithSubscribers();
    const sink = new SnsAlertSink({ topicArn: topic.topicArn, client: local.sns });
    const store = new MemoryAlertStore();
    const breaks = ["\n", "\r\n", "\u0085", "\u2028", "\u2029"];
    const alerts = breaks.map((br, i) => {
      const shape = fc.sample(alertShape, { seed: i, numRuns: 1 })[0] as ShapeOf;
      const workload = { kind: "Deployment", name: `web${br}front` };
      return toAlert(
        {
          ...shape,
          scan: false,
          cluster: `prod${br}eu`,
          src: { ...shape.src, kind: "pod", namespace: "customer-a", workload },
          dst: { ...shape.dst, kind: "pod", namespace: "customer-b", workload },
        },
        `al_break_${i}`,
      );
    });
    // Cap 3: three alerts one by one, and summaries of the others (their clusters carry the breaks too).
    await deliverAlerts(store, sink, store.open(alerts), { cap: 3 });
    const { envelope } = await drainAll(topic);
    expect(envelope).toHaveLength(5);
    for (const r of envelope) {
      expectValidSubject(r.subject);
      expect(r.subject).toMatch(/\(prod eu\)$/);
    }
  });

  it("publishes `cap` alerts and one summary of the rest per cluster, each well formed and routed by filters", async () => {
    const topic = await topicWithSubscribers();
    const sink = new SnsAlertSink({ topicArn: topic.topicArn, client: local.sns });
    await fc.assert(
      fc.asyncProperty(batch, fc.integer({ min: 0, max: 9 }), async (alerts, cap) => {
        const store = new MemoryAlertStore();
        const pending = store.open(alerts);
        const result = await deliverAlerts(store, recording(sink, store.log), pending, { cap });
        const individual = Math.min(cap, alerts.length);
        expect(result).toEqual({ sent: individual, suppressed: alerts.length - individual, failed: 0 });
        expectDelivered(pending, cap, await drainAll(topic));
        expect(store.pending()).toEqual([]);
        expectMarkedAfterPublished(store.log);

        // The payload is delivered again: nothing is pending, nothing goes out twice.
        expect(await deliverAlerts(store, sink, store.open(alerts), { cap })).toEqual({
          sent: 0,
          suppressed: 0,
          failed: 0,
        });
        const again = await drainAll(topic);
        expect([...again.envelope, ...again.raw]).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  it("keeps every alert pending while the topic is gone, then delivers each exactly once when it is back", async () => {
    await fc.assert(
      fc.asyncProperty(batch, fc.integer({ min: 0, max: 9 }), async (alerts, cap) => {
        const topic = await topicWithSubscribers();
        const sink = new SnsAlertSink({ topicArn: topic.topicArn, client: local.sns });
        const store = new MemoryAlertStore();
        await local.sns.send(new DeleteTopicCommand({ TopicArn: topic.topicArn }));

        const pending = store.open(alerts);
        const failure = await deliverAlerts(store, sink, pending, { cap }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(failure).toBeInstanceOf(AlertDeliveryError);
        expect((failure as AlertDeliveryError).result).toEqual({
          sent: 0,
          suppressed: 0,
          failed: alerts.length,
        });
        expect(store.pending().sort()).toEqual(alerts.map((a) => a.id).sort());

        // The topic is back (same name, same ARN) with its subscribers; the next run delivers what was pending.
        const back = await createTopic(local, topic.topicArn.split(":").pop() as string);
        expect(back).toBe(topic.topicArn);
        // Deleting a topic deleted its subscriptions: subscribe fresh queues.
        const again = await topicWithSubscribers(back);
        const retried = store.open([]);
        const result = await deliverAlerts(store, recording(sink, store.log), retried, { cap });
        expect(result.failed).toBe(0);
        expect(result.sent + result.suppressed).toBe(alerts.length);
        expectDelivered(retried, cap, await drainAll(again));
        expect(store.pending()).toEqual([]);
        expectMarkedAfterPublished(store.log);
      }),
      { numRuns: 8 },
    );
  });

  it("leaves alerts whose publish SNS refuses with 500s pending; the retry sends only them, each once", async () => {
    const topic = await topicWithSubscribers();
    await fc.assert(
      fc.asyncProperty(
        smallBatch,
        fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }),
        async (alerts, refuse) => {
          const refused = new Set(alerts.filter((_, i) => refuse[i]).map((a) => a.id));
          let snsDown = true;
          proxy = await startFaultProxy(local.endpoint, (p) => {
            if (!snsDown || p.get("Action") !== "Publish") return "forward";
            // The alert's id is its own attribute: find the publish by it, not by the text.
            const id = [...p.entries()].find(
              ([k, v]) =>
                k.endsWith(".Value.StringValue") &&
                p.get(k.replace("Value.StringValue", "Name")) === "alertId" &&
                v,
            )?.[1];
            return id !== undefined && refused.has(id) ? "fail" : "forward";
          });
          // One SDK retry: a refused publish costs two requests, and the second is refused as well.
          const client = new SNSClient({
            endpoint: proxy.endpoint,
            region: REGION,
            credentials,
            maxAttempts: 2,
          });
          const sink = new SnsAlertSink({ topicArn: topic.topicArn, client });
          const store = new MemoryAlertStore();
          const cap = alerts.length;

          const first = await deliverAlerts(store, recording(sink, store.log), store.open(alerts), {
            cap,
          }).then(
            (r): DeliveryResult => r,
            (e: unknown) => {
              expect(e).toBeInstanceOf(AlertDeliveryError);
              return (e as AlertDeliveryError).result;
            },
          );
          expect(first).toEqual({ sent: alerts.length - refused.size, suppressed: 0, failed: refused.size });
          expect(store.pending().sort()).toEqual([...refused].sort());
          const delivered = await drainAll(topic);
          expect(delivered.envelope.map(idOf).sort()).toEqual(
            alerts
              .filter((a) => !refused.has(a.id))
              .map((a) => a.id)
              .sort(),
          );

          // SNS recovers; the retried payload (applyAlerts: what is still pending) sends the rest, once.
          snsDown = false;
          const retried = store.open(alerts);
          expect(retried.map((a) => a.id).sort()).toEqual([...refused].sort());
          expect(await deliverAlerts(store, recording(sink, store.log), retried, { cap })).toEqual({
            sent: refused.size,
            suppressed: 0,
            failed: 0,
          });
          expectDelivered(retried, cap, await drainAll(topic));
          expect(store.pending()).toEqual([]);
          expectMarkedAfterPublished(store.log);
          client.destroy();
          await proxy.close();
          proxy = undefined;
        },
      ),
      { numRuns: 6 },
    );
  });
});
