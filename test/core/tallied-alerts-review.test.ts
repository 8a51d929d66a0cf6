// Review of the namespaces of scans and fan-ins (summaries included), and the tallied alert
// rules on retries (a retry judges as its first run did, by the verdict it kept). Each test states what the docs
// promise; one pins a known limit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { tableStores } from "../../functions/adapters/dynamo/stores.ts";
import { suppressionSummary } from "../../functions/core/alert-message.ts";
import { alertCandidates } from "../../functions/core/alert-rules.ts";
import { ingestEvent } from "../../functions/ingest/handler.ts";
import { sampleAlert } from "../support/alerts.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import {
  COREDNS,
  clientIp,
  clusterAlerts,
  clusterRuntime,
  delivery,
  deniedLine,
  dnsDelivery,
  nodeName,
  switchableSink,
  T0,
  targetIp,
} from "../support/node-streams.ts";
import { client, coredns, flow } from "./alert-fixtures.ts";

let testStore: TestStore;
let proxy: FaultProxy;
beforeAll(async () => {
  testStore = await startTestStore();
  proxy = await startFaultProxy(testStore.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await testStore?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// Namespaces: a suppression summary of scans and fan-ins.

describe("namespaces of scans and fan-ins in summaries", () => {
  it("a summary's namespace attributes list every namespace of a suppressed fan-in, as the alert's own would", () => {
    // alert-message.ts: a summary carries "arrays of the suppressed alerts' distinct values ... so filtered
    // subscribers hear of their alerts that the cap kept back". Since f8313e1 a fan-in's own srcNamespace is a
    // String.Array of all its sources' namespaces: a subscriber of team-7 receives the fan-in sent on its own,
    // but not the summary that stands for it (summaryFilterAttributes reads only a.src.namespace).
    const [fanIn] = alertCandidates(
      Array.from({ length: 30 }, (_, i) =>
        flow(client(i), coredns, { protocol: "UDP", dstPort: 53, packets: i === 3 ? 5 : 1 }),
      ),
      { scanThreshold: 5 },
    );
    if (fanIn?.namespaces === undefined) throw new Error("no fan-in");
    const alert = sampleAlert({
      key: fanIn.key,
      src: fanIn.src,
      dst: fanIn.dst,
      protocol: "UDP",
      dstPort: 53,
      reason: "internal-fan-in",
      namespaces: fanIn.namespaces,
    });
    const summary = suppressionSummary(1, "prod", [alert]);
    const listed = JSON.parse(summary.attributes.srcNamespace?.StringValue ?? "[]") as string[];
    expect(listed).toContain("team-3");
    expect(listed).toContain("team-7");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A retry's pending alerts: a fan-in its first run opened.

const freshTable = () => testStore.freshTable();

/**
 * Four sources of coredns, then svc0's payload (the fifth) opens the fan-in and its publish fails; optionally svc0
 * is then denied on five services (it scans); then Lambda's retry of svc0's payload.
 */
async function fanInOpenedThenRetried(scanBeforeRetry: boolean) {
  const { state, sink } = switchableSink(false);
  const tableName = await freshTable();
  let lag = 0;
  const stores = tableStores({
    client: testStore.client,
    tableName,
    retentionDays: 30,
    now: () => Date.now() + lag,
  });
  const runtime = clusterRuntime(
    { store: stores.store, sink, memos: stores.memos, tally: stores.tallies },
    stores.coverage,
  );
  const node0 = nodeName(0);
  const node2 = nodeName(2);
  await ingestEvent(dnsDelivery(1, T0), runtime);
  await ingestEvent(
    delivery(node2, [{ at: T0 + 2_000, message: deniedLine(node2, clientIp(2), COREDNS, 53, true) }]),
    runtime,
  );
  const payload = delivery(node0, [
    { at: T0 + 3_000, message: deniedLine(node0, clientIp(0), COREDNS, 53, true) },
  ]);
  state.down = true;
  await expect(ingestEvent(payload, runtime)).rejects.toThrow();
  state.down = false;
  const opened = (await clusterAlerts(runtime)).filter((a) => a.reason === "internal-fan-in");
  expect(opened.map((a) => a.delivery)).toEqual(["pending"]);
  if (scanBeforeRetry) {
    await ingestEvent(
      delivery(
        node0,
        [0, 1, 2, 3, 4].map((i) => ({
          at: T0 + 4_000 + i,
          message: deniedLine(node0, clientIp(0), targetIp(i), 8000 + i, true),
        })),
      ),
      runtime,
    );
  }
  // Lambda retries a failed payload a minute later or more: the failed run's hand-out lease has run out by then.
  lag = 61_000;
  await ingestEvent(payload, runtime);
  const all = await clusterAlerts(runtime);
  return { state, all };
}

describe("a retry's pending alerts", () => {
  it("a retry delivers the fan-in its first run opened when its source scans by then", async () => {
    // A fan-in the first run opened by the tally, whose publish failed: judged by the tallies of its moment the
    // retry would go otherwise (its source scans now: its denial goes to its scan, and coredns gets no candidate)
    // and leave that alert pending. Its kept verdict judges it as its first run did, and it delivers the fan-in.
    const { state, all } = await fanInOpenedThenRetried(true);
    expect(all.some((a) => a.reason === "internal-scan")).toBe(true);
    const fanIn = all.filter((a) => a.reason === "internal-fan-in");
    expect(fanIn.map((a) => a.delivery)).toEqual(["sent"]);
    expect(state.published.some((a) => a.reason === "internal-fan-in")).toBe(true);
  });

  it("control (passes): a retry judged as its first run delivers that fan-in", async () => {
    const { state, all } = await fanInOpenedThenRetried(false);
    expect(all.filter((a) => a.reason === "internal-fan-in").map((a) => a.delivery)).toEqual(["sent"]);
    expect(state.published.some((a) => a.reason === "internal-fan-in")).toBe(true);
  });
});

/** Node 0's payload whose alert states are written and whose alert records fail, node 1's, then the retry. */
async function halfOpenedThenRetried(withTally: boolean) {
  const tableName = await freshTable();
  const direct = tableStores({ client: testStore.client, tableName, retentionDays: 30 });
  let lag = 0;
  const store = new DynamoFlowStore({
    client: testStore.clientFor(proxy.endpoint, { maxAttempts: 1 }),
    tableName,
    retentionDays: 30,
    retry: { attempts: 1 },
    now: () => Date.now() + lag,
  });
  const { state, sink } = switchableSink(false);
  const runtime = clusterRuntime(
    { store, sink, memos: direct.memos, ...(withTally ? { tally: direct.tallies } : {}) },
    direct.coverage,
  );
  const node0 = dnsDelivery(0, T0);
  proxy.clearLog();
  proxy.setPlan({
    error: 1,
    eligible: (operation, body) =>
      operation === "UpdateItem" &&
      String((body.Key as { pk?: { S?: string } } | undefined)?.pk?.S ?? "").startsWith("ALERTS#"),
  });
  try {
    await expect(ingestEvent(node0, runtime)).rejects.toThrow();
  } finally {
    proxy.setPlan({});
  }
  // The states were written (three PutItems) and the records refused.
  expect(proxy.count({ operation: "PutItem", outcome: "forwarded" })).toBeGreaterThanOrEqual(3);
  expect(proxy.count({ operation: "UpdateItem", outcome: "error" })).toBeGreaterThanOrEqual(1);
  await ingestEvent(dnsDelivery(1, T0 + 1_000), runtime);
  // Lambda's retry, a minute later or more: the failed run's hand-out lease has run out by then.
  lag = 61_000;
  await ingestEvent(node0, runtime);
  const all = await clusterAlerts(runtime);
  return { published: state.published, denials: all.filter((a) => a.reason === "internal-denial") };
}

describe("a retry's half-opened alerts", () => {
  it("a retry judged a fan-in completes the alert records its first run's state writes opened", async () => {
    // flow-store.md, Alerts, step 3: "a crash between the state and the record is healed by the retry". Node 0's
    // first run writes the three alert states, then its record writes fail (the payload fails). Node 1's payload
    // takes coredns's tally to six; judged by the tallies of its moment the retry would be a fan-in and never apply
    // the three keys again: three windows with a state and no record, listed nowhere, never delivered (nobody
    // else folds into them). Its kept verdict judges it as its first run did, and applying the keys heals them.
    const { published, denials } = await halfOpenedThenRetried(true);
    const node0Sources = ["team-0/Deployment/svc0", "team-10/Deployment/svc10", "team-20/Deployment/svc20"];
    expect(denials.map((a) => a.key.src)).toEqual(expect.arrayContaining(node0Sources));
    expect(published.map((a) => a.key.src)).toEqual(expect.arrayContaining(node0Sources));
  });

  it("control (passes): without the tally the retry heals and delivers them", async () => {
    const { published, denials } = await halfOpenedThenRetried(false);
    const node0Sources = ["team-0/Deployment/svc0", "team-10/Deployment/svc10", "team-20/Deployment/svc20"];
    expect(denials.map((a) => a.key.src)).toEqual(expect.arrayContaining(node0Sources));
    expect(published.map((a) => a.key.src)).toEqual(expect.arrayContaining(node0Sources));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Namespaces of an alert opened by part of a batch.

describe("namespaces of the flows that opened each window", () => {
  it("known limit: a batch spanning two windows gives each of its fan-in alerts the namespaces of the whole batch", async () => {
    // A batch longer than a window (a replayed file, a backfill page) opens two windows of one fan-in; the
    // candidate's namespaces are of all its flows, and both records store them: the first window's alert names
    // team-5 … team-9 too, whose denials came 30 minutes later (architecture.md, "Known limits"). Per-window
    // namespaces would take them on every hit span of every candidate.
    const tableName = await freshTable();
    const store = new DynamoFlowStore({ client: testStore.client, tableName });
    const at = (ms: number) => new Date(ms).toISOString();
    const early = Date.parse("2026-04-19T04:52:10.000Z");
    const late = early + 30 * 60_000;
    const flows = Array.from({ length: 10 }, (_, i) => {
      const t = i < 5 ? early : late;
      return flow(client(i), coredns, {
        protocol: "UDP",
        dstPort: 53,
        bucket: at(Math.floor(t / 60_000) * 60_000),
        firstSeen: at(t),
        lastSeen: at(t + 1_000),
      });
    });
    const candidates = alertCandidates(flows, { scanThreshold: 5 });
    expect(candidates.map((c) => c.reason)).toEqual(["internal-fan-in"]);
    const { alerts } = await store.applyAlerts(candidates, "batch-1", { windowMs: 15 * 60_000 });
    expect(alerts).toHaveLength(2);
    const first = alerts.find((a) => a.openedAt === at(early));
    expect(first?.namespaces?.src).toEqual(Array.from({ length: 10 }, (_, i) => `team-${i}`));
  });
});
