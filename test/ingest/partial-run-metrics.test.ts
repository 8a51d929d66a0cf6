// The ingest function's metrics of a delivery whose run fails partway, summed over the run and its retry: what the
// failed run stored is counted by it (its retry finds it stored), and alerts another run holds are logged. Against
// dynalite, the flow store behind the fault proxy.
import type { CloudWatchLogsEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { type IngestRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { logger, metrics } from "../../functions/shared/powertools.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../support/kube-api-server.ts";
import { liveDirectoryOn } from "../support/live-directory.ts";
import {
  clientIp,
  clusterAlerts,
  delivery,
  deniedLine,
  nodeName,
  runtimeBehindProxy,
  switchableSink,
  T0,
  targetIp,
} from "../support/node-streams.ts";

let ts: TestStore;
let proxy: FaultProxy;
let kube: KubeApiServer;

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  kube = await startKubeApiServer();
});
afterAll(async () => {
  await proxy?.close();
  await ts?.close();
  await kube?.close();
});
afterEach(() => {
  proxy.setPlan({});
  proxy.clearLog();
  vi.restoreAllMocks();
  metrics.clearMetrics();
});

/** The cluster's runtime on a table of its own, its flow store behind the fault proxy (runtimeBehindProxy). */
const runtimeOn = (sink?: AlertPublisher): Promise<IngestRuntime> =>
  runtimeBehindProxy(ts, proxy, sink === undefined ? {} : { sink });

/** Node 0's delivery of client 0's denials to service 1, one a second on each of `ports`. */
function deliveryOn(ports: readonly number[]): CloudWatchLogsEvent {
  const node = nodeName(0);
  return delivery(
    node,
    ports.map((port, i) => ({
      at: T0 + i * 1_000,
      message: deniedLine(node, clientIp(0), targetIp(1), port, true),
    })),
  );
}

/** Runs `attempts` one after the other as Lambda retries a failed payload; each metric's sum over them. */
async function metricsOf(attempts: readonly (() => Promise<unknown>)[]): Promise<{
  errors: (string | undefined)[];
  counted: Record<string, number>;
}> {
  const added = vi.spyOn(metrics, "addMetric");
  const errors: (string | undefined)[] = [];
  for (const attempt of attempts) {
    try {
      await attempt();
      errors.push(undefined);
    } catch (error) {
      errors.push((error as Error).name);
    }
  }
  const counted: Record<string, number> = {};
  for (const [name, , value] of added.mock.calls) counted[name] = (counted[name] ?? 0) + value;
  return { errors, counted };
}

const pkOf = (body: Record<string, unknown>) => String((body.Key as { pk?: { S?: string } })?.pk?.S);
const withPort = (body: Record<string, unknown>, port: number) =>
  JSON.stringify(body).includes(`{"N":"${port}"}`);

describe("metrics of a delivery whose run fails partway", () => {
  it("counts each flow stored once in FlowsWritten when one flow's write fails, and every write request", async () => {
    const runtime = await runtimeOn();
    const ports = Array.from({ length: 40 }, (_, i) => 9000 + i);
    const event = deliveryOn(ports);
    // Flow 9030's UpdateItem fails every try: the run fails with the other 39 flows stored.
    proxy.setPlan({
      error: 1,
      eligible: (op, body) => op === "UpdateItem" && pkOf(body).startsWith("FLOW#") && withPort(body, 9030),
    });
    const run = () => ingestEvent(event, runtime);
    const { errors, counted } = await metricsOf([
      run,
      async () => {
        proxy.setPlan({});
        const retry = await run();
        expect([retry?.flowsApplied, retry?.flowsDuplicate]).toEqual([1, 39]);
      },
    ]);
    expect(errors).toEqual(["StoreUnavailableError", undefined]);
    expect(counted.FlowsWritten).toBe(40);
    // The retry finds the 39 the failed run stored, as any retry of a payload whose flows were stored.
    expect(counted.DuplicateFlows).toBe(39);
    // Flow writes (the failed tries included) and the hour's marker: what the two runs sent.
    const flowWrites = proxy.log.filter(
      (r) =>
        (r.operation === "UpdateItem" && pkOf(r.body).startsWith("FLOW#")) ||
        (r.operation === "PutItem" &&
          String((r.body.Item as { pk?: { S?: string } })?.pk?.S).startsWith("FLOWHOURS#")),
    );
    expect(flowWrites.filter((r) => r.outcome === "error")).toHaveLength(3);
    expect(counted.DynamoWriteRequests).toBe(flowWrites.length);
    expect(counted.DynamoWriteRequests).toBe(1 + 39 + 3 + 40);
  });

  it("counts in AlertsRaised the alerts a run opened before another alert's write failed", async () => {
    const runtime = await runtimeOn();
    const event = deliveryOn([5432, 5433]);
    // The record of port 5433's alert fails every try, after 5432's alert was opened whole.
    proxy.setPlan({
      error: 1,
      eligible: (op, body) => op === "UpdateItem" && pkOf(body).startsWith("ALERTS#") && withPort(body, 5433),
    });
    const run = () => ingestEvent(event, runtime);
    const { errors, counted } = await metricsOf([
      run,
      async () => {
        proxy.setPlan({});
        const retry = await run();
        // The retry opens the one whose record the failed run could not write; 5432's it finds opened.
        expect(retry?.alertsOpened).toBe(1);
      },
    ]);
    expect(errors).toEqual(["StoreUnavailableError", undefined]);
    const alerts = await clusterAlerts(runtime);
    expect(alerts.map((a) => [a.key.dstPort, a.count]).sort()).toEqual([
      [5432, 1],
      [5433, 1],
    ]);
    expect(counted.AlertsRaised).toBe(2);
    expect(counted.FlowsWritten).toBe(2);
  });

  it("warns of alerts held by another run of the delivery, which this run does not publish", async () => {
    const { state, sink } = switchableSink(true);
    const runtime = await runtimeOn(sink);
    const event = deliveryOn([5432]);
    await expect(ingestEvent(event, runtime)).rejects.toThrow();
    // A run of the same payload within the failed run's lease on sending its alert (pendingRedeliveryAfterMs).
    state.down = false;
    const warn = vi.spyOn(logger, "warn");
    const retry = await ingestEvent(event, runtime);
    expect(state.published).toEqual([]);
    const [alert] = await clusterAlerts(runtime);
    expect(alert?.delivery).toBe("pending");
    expect(retry?.alertsHeld.map((h) => h.id)).toEqual([alert?.id]);
    const held = warn.mock.calls.filter(([message]) => String(message).startsWith("alerts not published"));
    expect(held).toHaveLength(1);
    expect(held[0]?.[1]).toMatchObject({
      held: 1,
      alerts: [{ id: alert?.id, openedAt: alert?.openedAt, until: retry?.alertsHeld[0]?.until }],
    });
  });

  it("counts in KubernetesApiCalls the requests of a run that failed after attributing", async () => {
    const runtime = await runtimeOn();
    kube.store.put(
      "pods",
      kubeObjects.pod({ name: "client-0", namespace: "shop", ip: clientIp(0), created: T0 - 3_600_000 }),
    );
    const live = liveDirectoryOn(kube, { cluster: "prod", timeoutMs: 2_000, now: () => T0 + 60_000 });
    runtime.directory = live;
    runtime.deps.pipeline.directory = live;
    // Every flow write fails: the run fails after asking the API server, and so does its retry.
    proxy.setPlan({
      error: 1,
      eligible: (op, body) => op === "UpdateItem" && pkOf(body).startsWith("FLOW#"),
    });
    const run = () => ingestEvent(deliveryOn([9000]), runtime);
    const { errors, counted } = await metricsOf([run, run]);
    expect(errors).toEqual(["StoreUnavailableError", "StoreUnavailableError"]);
    expect(live.stats().apiCalls).toBeGreaterThan(0);
    expect(counted.KubernetesApiCalls).toBe(live.stats().apiCalls);
  });
});
