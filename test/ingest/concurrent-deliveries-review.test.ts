// Review: concurrent deliveries. CloudWatch Logs invokes the ingest function once per log stream delivery, many at
// once; deliveries are at-least-once (a payload may run twice at the same moment in two containers) and retries
// interleave with new deliveries. Each container here is a runtime with its own DynamoDB client against ONE
// dynalite table, alerts go to a local SNS (fauxqs), and the interleavings are forced with hooks on the clients
// (a request held until another container got somewhere) and a gate on the SNS sink.
import { randomUUID } from "node:crypto";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableStores } from "../../functions/adapters/dynamo/stores.ts";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { backfillMinute, minuteOf } from "../../functions/core/coverage.ts";
import type { AlertRecord } from "../../functions/core/types.ts";
import { type IngestRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { createTopic, drainQueue, type LocalSns, startLocalSns, subscribeQueue } from "../support/fauxqs.ts";
import {
  COREDNS,
  clientIp,
  clusterAlerts,
  clusterRuntime,
  delivery,
  deniedLine,
  nodeName,
  probeDelivery,
  T0,
} from "../support/node-streams.ts";

let ts: TestStore;
let sns: LocalSns;
beforeAll(async () => {
  ts = await startTestStore();
  sns = await startLocalSns();
});
afterAll(async () => {
  await sns?.close();
  await ts?.close();
});

/** A fresh alerts topic with one subscribed queue, which shows every message SNS delivered. */
async function topic(): Promise<{ topicArn: string; queueUrl: string }> {
  const topicArn = await createTopic(sns, `alerts-${randomUUID()}`);
  const queueUrl = await subscribeQueue(sns, topicArn, `q-${randomUUID()}`);
  return { topicArn, queueUrl };
}

/** A DynamoDB request as a hook sees it: its operation and its table key (pk, sk). */
interface Request {
  op: string;
  pk: string;
  sk: string;
}

function requestOf(commandName: string, input: Record<string, unknown>): Request {
  const key = (input.Key ?? input.Item) as Record<string, unknown> | undefined;
  const text = (v: unknown) => (typeof v === "string" ? v : ((v as { S?: string } | undefined)?.S ?? ""));
  return { op: commandName.replace(/Command$/, ""), pk: text(key?.pk), sk: text(key?.sk) };
}

/**
 * A container's DynamoDB client: `before` may hold a request (it is sent when the promise it returns settles),
 * `after` is told once a request was answered.
 */
function clientWith(hooks: {
  before?: (r: Request) => Promise<void> | undefined;
  after?: (r: Request) => void;
}): DynamoDBClient {
  const client = ts.clientFor();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = requestOf(
        String((context as { commandName?: string }).commandName ?? ""),
        args.input as Record<string, unknown>,
      );
      await hooks.before?.(request);
      const out = await next(args);
      hooks.after?.(request);
      return out;
    },
    { step: "initialize", name: "reviewHooks" },
  );
  return client;
}

/**
 * The ingest function's runtime in one container, as createRuntime makes it (tableStores): its own DynamoDB client
 * (default: a plain one), alerts sink and wall clock.
 */
function container(
  tableName: string,
  options: { sink?: AlertPublisher; client?: DynamoDBClient; now?: () => number } = {},
): IngestRuntime {
  const stores = tableStores({ client: options.client ?? ts.clientFor(), tableName, now: options.now });
  return clusterRuntime(
    { store: stores.store, sink: options.sink, memos: stores.memos, tally: stores.tallies },
    stores.coverage,
  );
}

/**
 * Sinks publishing to `topicArn` whose publishes wait (at most 2 s) until `parties` of them are publishing: every
 * run that is going to publish has then decided to, none having marked its alert sent yet.
 */
function meetingSinks(topicArn: string, parties: number): () => AlertPublisher {
  const met = signal();
  let publishing = 0;
  return () => {
    const sink = new SnsAlertSink({ topicArn, client: sns.sns });
    return {
      publishAlert: async (a) => {
        if (++publishing === parties) met.fire();
        await atMost(met.promise, 2_000);
        await sink.publishAlert(a);
      },
      publishSummary: (n, cluster, suppressed) => sink.publishSummary(n, cluster, suppressed),
      publishPanic: (e) => sink.publishPanic(e),
    };
  };
}

/** A sink that is down: every publish fails, as SNS answering 500. */
const downSink: AlertPublisher = {
  publishAlert: async () => {
    throw new Error("SNS: InternalFailure");
  },
  publishSummary: async () => {
    throw new Error("SNS: InternalFailure");
  },
  publishPanic: async () => {},
};

/** A promise and its resolver. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire: () => void = () => {};
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

/** `p`, or nothing once `ms` have passed: a hold that the code under review may never release. */
const atMost = (p: Promise<void>, ms: number) =>
  Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, ms))]);

const isAlertRecord = (r: Request) => r.pk.startsWith("ALERTS#") && r.sk.split("#").length === 2;
const summary = (all: AlertRecord[]) =>
  all.map((a) => `${a.reason} ${a.key.src} → ${a.key.dst} ×${a.count}`).sort();

describe("the same payload delivered twice at once (at-least-once delivery, two containers)", () => {
  it("publishes the alert it opens once", async () => {
    // Defect: two runs of one contribution (a duplicate async invocation: CloudWatch Logs resends a delivery whose
    // Invoke answered 5xx, deploy.md §6; Lambda's own queue may run an event twice) both hand the alert out. The
    // opener does; the other run finds the key's state `openedBy` its own token (it shares the contribution), takes
    // that for a retry of its own opening, holds the hand-out lease already (leaseBy is the same token) and hands the
    // pending alert out as well (alerts.ts, applyOne/takeHandOut). Impact: every subscriber (e-mail, pager) gets the
    // same alert twice. Expected: one publish per alert, as the lease is there to ensure (docs/flow-store.md,
    // "Delivery": "of the invocations that come by at once one sends the alert").
    const tableName = await ts.freshTable();
    const { topicArn, queueUrl } = await topic();
    const node = nodeName(0);
    const payload = delivery(node, [{ at: T0, message: deniedLine(node, clientIp(0), COREDNS, 53, true) }]);
    const sinks = meetingSinks(topicArn, 2);
    const a = container(tableName, { sink: sinks() });
    const b = container(tableName, { sink: sinks() });
    await Promise.all([ingestEvent(payload, a), ingestEvent(payload, b)]);

    const all = await clusterAlerts(a);
    expect(all.map((x) => [x.count, x.delivery])).toEqual([[1, "sent"]]);
    expect(await drainQueue(sns, queueUrl)).toHaveLength(1);
  });

  it("counts the alert it opens once in AlertsRaised", async () => {
    // Defect: openWindow reports `opened: true` for the state write alone and ignores whether its record write
    // applied the opener's hits; the duplicate run that re-reads the state and writes the record first (openedBy is
    // its token too) reports `opened: true` as well. Impact: AlertsRaised (and the replay/backfill/redrive summaries)
    // count one alert twice whenever a payload runs twice at once. Expected: "counts each window's alert in one
    // call ... The count is at most once" (docs/flow-store.md, "Counting"): 1 over both runs.
    const tableName = await ts.freshTable();
    const node = nodeName(0);
    const payload = delivery(node, [{ at: T0, message: deniedLine(node, clientIp(0), COREDNS, 53, true) }]);
    const stateWritten = signal();
    const recordWrittenByB = signal();
    // A writes the key's state; its record write waits until B wrote the record. B reads the state once A wrote it.
    const a = container(tableName, {
      client: clientWith({
        before: (r) =>
          r.op === "UpdateItem" && isAlertRecord(r) ? atMost(recordWrittenByB.promise, 3_000) : undefined,
        after: (r) => {
          if (r.op === "PutItem" && r.pk.startsWith("ALERTKEY#")) stateWritten.fire();
        },
      }),
    });
    const b = container(tableName, {
      client: clientWith({
        before: (r) =>
          r.op === "GetItem" && r.pk.startsWith("ALERTKEY#")
            ? atMost(stateWritten.promise, 3_000)
            : undefined,
        after: (r) => {
          if (r.op === "UpdateItem" && isAlertRecord(r)) recordWrittenByB.fire();
        },
      }),
    });
    const results = await Promise.all([ingestEvent(payload, a), ingestEvent(payload, b)]);

    expect((await clusterAlerts(a)).map((x) => x.count)).toEqual([1]);
    expect(results.reduce((n, r) => n + (r?.alertsOpened ?? 0), 0)).toBe(1);
  });
});

describe("a payload's kept verdict and a duplicate run of it", () => {
  it("judges the duplicate as the verdict kept first, so that no denial is counted in two alerts", async () => {
    // Defect: talliedAlertCandidates raises the sources' reach with the tallies of its moment, then saves its verdict;
    // when a concurrent run of the same contribution kept one first, saveVerdict returns that one, and judge() only
    // raises the reach to it, never back to the payload's own: the duplicate keeps its later tallies. Here a probe's
    // ingress denials are logged on its targets' nodes (threshold 5). Node 3's payload runs twice at once: the first
    // run to judge finds the probe at four targets and opens a denial; node 4's payload takes the probe to five (one
    // scan alert); the stalled duplicate, judged by those tallies, folds node 3's denial into the scan as well.
    // Impact: the same packet counted in two alerts. Expected (docs/flow-store.md, "Across deliveries"): "Two runs of
    // one contribution at once keep the first verdict written and both follow it": four denials ×1, one scan ×1.
    const tableName = await ts.freshTable();
    for (let i = 0; i < 3; i++) await ingestEvent(probeDelivery(i, T0 + i * 1_000), container(tableName));
    const node3 = probeDelivery(3, T0 + 3_000);
    const node4 = probeDelivery(4, T0 + 4_000);
    const atTally = signal();
    const goOn = signal();
    let held = false;
    // The stalled run: it claimed and stored node 3's flow, and waits before its first tally write.
    const stalled = container(tableName, {
      client: clientWith({
        before: (r) => {
          if (held || r.op !== "UpdateItem" || !r.pk.startsWith("TALLY#")) return undefined;
          held = true;
          atTally.fire();
          return goOn.promise;
        },
      }),
    });
    const running = ingestEvent(node3, stalled);
    await atMost(atTally.promise, 10_000);
    expect(held).toBe(true);
    // Meanwhile the duplicate of node 3's payload runs whole in another container, then node 4's payload.
    await ingestEvent(node3, container(tableName));
    await ingestEvent(node4, container(tableName));
    goOn.fire();
    await running;

    const all = await clusterAlerts(container(tableName));
    expect(summary(all)).toEqual([
      "internal-denial tools/Deployment/probe → shop-0/Deployment/api0 ×1",
      "internal-denial tools/Deployment/probe → shop-1/Deployment/api1 ×1",
      "internal-denial tools/Deployment/probe → shop-2/Deployment/api2 ×1",
      "internal-denial tools/Deployment/probe → shop-3/Deployment/api3 ×1",
      "internal-scan tools/Deployment/probe → *scan* ×1",
    ]);
    // Five probes, five hits.
    expect(all.reduce((n, x) => n + x.count, 0)).toBe(5);
  });
});

describe("the opener's retry and another node's delivery at the end of the hand-out delay", () => {
  it("publishes the pending alert once", async () => {
    // Defect: takeHandOut returns true without a write when the state it read names the caller as the lease holder
    // ("Held already, as the state read says"), however old that lease is. The opener holds the lease from the
    // opening; when its publish fails, Lambda retries the payload about a minute later, just when the lease has run
    // out (pendingRedeliveryAfterMs, 60 s) and another node's delivery folding into the window takes it with its
    // conditional write. The retry, trusting its earlier read, hands the alert out too. Impact: in an SNS outage of a
    // minute under a denial storm, the alert is e-mailed twice. Expected: the lease is one holder's at a time, so
    // one of the two publishes it (docs/flow-store.md, "Delivery").
    const tableName = await ts.freshTable();
    const { topicArn, queueUrl } = await topic();
    const node0 = nodeName(0);
    const node1 = nodeName(1);
    const denial = (node: string, at: number) =>
      delivery(node, [{ at, message: deniedLine(node, clientIp(0), COREDNS, 53, false) }]);
    const opening = denial(node0, T0);
    const opened = Date.now();
    // The first run opens the alert; SNS is down: it stays pending and the payload fails.
    await expect(
      ingestEvent(opening, container(tableName, { sink: downSink, now: () => opened })),
    ).rejects.toThrow();

    // 61 s later: Lambda's retry of that payload, and node 1's delivery of a hit of the same key. The retry reads the
    // state (lease: its own, 61 s old); node 1's delivery then takes the lease; the retry goes on.
    const later = () => opened + 61_000;
    const sinks = meetingSinks(topicArn, 2);
    const stateRead = signal();
    const leaseTaken = signal();
    const retry = container(tableName, {
      sink: sinks(),
      now: later,
      client: clientWith({
        before: (r) =>
          r.op === "UpdateItem" && isAlertRecord(r) ? atMost(leaseTaken.promise, 3_000) : undefined,
        after: (r) => {
          if (r.op === "GetItem" && r.pk.startsWith("ALERTKEY#")) stateRead.fire();
        },
      }),
    });
    const other = container(tableName, {
      sink: sinks(),
      now: later,
      client: clientWith({
        before: (r) =>
          r.op === "UpdateItem" && r.pk.startsWith("ALERTKEY#")
            ? atMost(stateRead.promise, 3_000)
            : undefined,
        after: (r) => {
          if (r.op === "UpdateItem" && r.pk.startsWith("ALERTKEY#")) leaseTaken.fire();
        },
      }),
    });
    await Promise.all([ingestEvent(opening, retry), ingestEvent(denial(node1, T0 + 30_000), other)]);

    expect((await clusterAlerts(retry)).map((a) => [a.count, a.delivery])).toEqual([[2, "sent"]]);
    expect(await drainQueue(sns, queueUrl)).toHaveLength(1);
  });
});

describe("a backfill without an alerts topic and the opener's retry", () => {
  it("leaves no alert pending once the opener's retry has succeeded", async () => {
    // Defect: applyAlerts takes the hand-out lease for whoever folds into a pending alert a minute after it opened,
    // whether or not that caller can publish: a backfill (or replay, redrive) without --alerts-topic records alerts
    // only (docs/backfill.md, "Alerts"), yet takes the lease and drops the alert it was handed. The opener's Lambda
    // retry then finds the lease held by another, hands nothing out and succeeds; once the window closes only the
    // opener's and the lease holder's runs would hand it out, and neither runs again. Impact: an internal denial
    // opened during a minute's SNS outage is never sent to anyone when the operator backfills the outage meanwhile.
    // Expected: the opener's retry publishes it (a failed publish "is retried with the payload": architecture.md,
    // "Decisions"), and nothing is left pending.
    const tableName = await ts.freshTable();
    const { topicArn, queueUrl } = await topic();
    const node0 = nodeName(0);
    const node1 = nodeName(1);
    const line = (node: string) => deniedLine(node, clientIp(0), COREDNS, 53, false);
    const opening = delivery(node0, [{ at: T0, message: line(node0) }]);
    const opened = Date.now();
    // The live delivery opens the alert while SNS is down: pending, and the payload fails.
    await expect(
      ingestEvent(opening, container(tableName, { sink: downSink, now: () => opened })),
    ).rejects.toThrow();

    // 61 s later the operator's backfill (no --alerts-topic) stores node 1's lines of that minute, which live ingest
    // missed: one hit of the same key.
    const later = () => opened + 61_000;
    const backfill = container(tableName, { now: later });
    const backfilled = await backfillMinute(
      { cluster: "prod", group: "/aws/eks/prod/nodes", stream: node1 },
      minuteOf(T0),
      [{ id: "1".repeat(56), timestamp: T0 + 30_000, message: line(node1) }],
      backfill.deps,
      backfill.coverage as NonNullable<IngestRuntime["coverage"]>,
      { now: later },
    );
    expect(backfilled.stored).toBe(1);

    // Lambda's retry of the opening payload, SNS back; then the next window of the key opens (a hit 16 minutes on),
    // which closes the first: its alert is only ever handed out by its opener's or lease holder's runs from then on.
    const sink = new SnsAlertSink({ topicArn, client: sns.sns });
    await ingestEvent(opening, container(tableName, { sink, now: later }));
    const next = delivery(node0, [{ at: T0 + 16 * 60_000, message: line(node0) }]);
    await ingestEvent(next, container(tableName, { sink, now: () => opened + 120_000 }));

    const all = await clusterAlerts(container(tableName));
    expect(all.map((a) => [a.openedAt, a.count, a.delivery])).toEqual([
      [new Date(T0).toISOString(), 2, "sent"],
      [new Date(T0 + 16 * 60_000).toISOString(), 1, "sent"],
    ]);
    expect(await drainQueue(sns, queueUrl)).toHaveLength(2);
  });
});
