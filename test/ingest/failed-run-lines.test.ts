// The lines of a delivery whose run fails, as the ingest function's EMF counts them over the run and its retries:
// delivered once parsed, stored once the flows are, each once however often the payload runs. What each group's
// LinesNotStored alarm sets against the group's metric filter. Against dynalite, the flow store behind the fault proxy.
import type { CloudWatchLogsEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { type IngestRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { metrics } from "../../functions/shared/powertools.ts";
import { printedEmf } from "../support/alarm-math.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import {
  clientIp,
  delivery,
  deniedLine,
  nodeName,
  runtimeBehindProxy,
  switchableSink,
  T0,
  targetIp,
} from "../support/node-streams.ts";

const GROUP = "/aws/eks/prod/nodes";
const LINES = [
  "LinesSeen",
  "MalformedLines",
  "CalicoLines",
  "LinesSeenByGroup",
  "CalicoLinesByGroup",
] as const;
type Lines = Record<(typeof LINES)[number], number>;

let ts: TestStore;
let proxy: FaultProxy;

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await ts?.close();
});
afterEach(() => {
  proxy.setPlan({});
  vi.restoreAllMocks();
  metrics.clearMetrics();
});

/**
 * The cluster's runtime on a table of its own (runtimeBehindProxy), each alert's publish left to any run at once (no
 * lease), so that a retry publishes what its failed run could not.
 */
const runtimeOn = (sink?: AlertPublisher): Promise<IngestRuntime> =>
  runtimeBehindProxy(ts, proxy, { pendingRedeliveryAfterMs: 0, ...(sink === undefined ? {} : { sink }) });

/**
 * Node 0's delivery of five lines: client 0's denials to service 1 on three ports (each an alert), one of them cut
 * short (malformed), and a line that is not Calico's.
 */
function fiveLines(): CloudWatchLogsEvent {
  const node = nodeName(0);
  const denied = (port: number) => deniedLine(node, clientIp(0), targetIp(1), port, true);
  return delivery(
    node,
    [
      denied(5432),
      denied(5433),
      denied(5434).replace(/ PROTO=UDP.*$/, " PROTO=UDP SPT="),
      `Apr 19 04:52:19 ${node} kubelet[1]: not a calico line`,
      denied(5435),
    ].map((message, i) => ({ at: T0 + i * 1_000, message })),
  );
}

/** One run of the delivery, as Lambda makes it: whether it failed, and its lines as the EMF it printed counts them. */
async function run(
  event: CloudWatchLogsEvent,
  runtime: IngestRuntime,
): Promise<{ failed: boolean; lines: Lines }> {
  let failed = false;
  const { emf } = await printedEmf(async () => {
    try {
      await ingestEvent(event, runtime);
    } catch {
      failed = true;
    }
    // As the handler's logMetrics middleware does once the invocation ends, failed or not.
    metrics.publishStoredMetrics();
  });
  const lines = Object.fromEntries(LINES.map((name) => [name, 0])) as Lines;
  for (const sample of emf) {
    const name = sample.metric as keyof Lines;
    if (!(name in lines)) continue;
    // The per-group series under the delivery's group, the totals under none.
    expect(sample.dimensions.LogGroup).toBe(name.endsWith("ByGroup") ? GROUP : undefined);
    lines[name] += sample.values.reduce((a, b) => a + b, 0);
  }
  return { failed, lines };
}

/** Each metric's sum over `runs`. */
const sum = (runs: readonly { lines: Lines }[]) =>
  Object.fromEntries(LINES.map((name) => [name, runs.reduce((n, r) => n + r.lines[name], 0)]));

const DELIVERED = { LinesSeen: 5, MalformedLines: 1, LinesSeenByGroup: 5 };
const STORED = { CalicoLines: 3, CalicoLinesByGroup: 3 };
const NONE = { LinesSeen: 0, MalformedLines: 0, LinesSeenByGroup: 0, CalicoLines: 0, CalicoLinesByGroup: 0 };

describe("lines of a delivery whose run fails", () => {
  it("counts them delivered and stored once when its alerts cannot be published in any run (then the failed-payloads queue)", async () => {
    const { state, sink } = switchableSink(true);
    const event = fiveLines();
    const runtime = await runtimeOn(sink);
    // The invocation and Lambda's two retries, all failing on SNS with the flows stored by the first.
    const runs = [await run(event, runtime), await run(event, runtime), await run(event, runtime)];
    expect(runs.map((r) => r.failed)).toEqual([true, true, true]);
    expect(state.published).toEqual([]);
    expect(runs[0]?.lines).toEqual({ ...DELIVERED, ...STORED });
    expect(sum(runs)).toEqual({ ...DELIVERED, ...STORED });
  });

  it("counts them in the run that failed publishing, and not again in its retry that publishes", async () => {
    const { state, sink } = switchableSink(true);
    const event = fiveLines();
    const runtime = await runtimeOn(sink);
    const failed = await run(event, runtime);
    state.down = false;
    const retry = await run(event, runtime);
    expect([failed.failed, retry.failed]).toEqual([true, false]);
    expect(state.published).toHaveLength(3);
    expect(failed.lines).toEqual({ ...DELIVERED, ...STORED });
    expect(retry.lines).toEqual(NONE);
  });

  it("counts them delivered in the run that failed writing a flow, and stored in the retry that stores them", async () => {
    const event = fiveLines();
    const runtime = await runtimeOn();
    // Every try of the flow of port 5433 fails: the run fails with the other flows stored.
    proxy.setPlan({
      error: 1,
      eligible: (op, body) =>
        op === "UpdateItem" &&
        String((body.Key as { pk?: { S?: string } })?.pk?.S).startsWith("FLOW#") &&
        JSON.stringify(body).includes('{"N":"5433"}'),
    });
    const failed = await run(event, runtime);
    proxy.setPlan({});
    const retry = await run(event, runtime);
    expect([failed.failed, retry.failed]).toEqual([true, false]);
    expect(failed.lines).toEqual({ ...NONE, ...DELIVERED });
    expect(retry.lines).toEqual({ ...NONE, ...STORED });
    expect(sum([failed, retry])).toEqual({ ...DELIVERED, ...STORED });
  });

  it("counts nothing again for a redelivery of a stored payload", async () => {
    const event = fiveLines();
    const runtime = await runtimeOn();
    const first = await run(event, runtime);
    const again = await run(event, runtime);
    expect([first.failed, again.failed]).toEqual([false, false]);
    expect(first.lines).toEqual({ ...DELIVERED, ...STORED });
    expect(again.lines).toEqual(NONE);
  });
});
