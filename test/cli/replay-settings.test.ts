// `calico-flows replay` of lines another replay claimed under other settings and stopped before it stored them, in a
// table and in the embedded store: stored with that replay's settings, which the summary names, as backfill's and
// redrive's do.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LineIds } from "../../cli/commands/replay.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { CidrSet, DEFAULT_WORKLOAD_INTERFACE_PREFIXES } from "../../functions/core/classify.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import type { IngestSettings } from "../../functions/core/ingest.ts";
import { createScanner } from "../../functions/core/parse.ts";
import type { FlowStore, FlowWriteResult } from "../../functions/core/ports.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { calicoLine, directory, T0 } from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { ROOT, runCli } from "./run.ts";

let dynamo: TestStore;
const dir = mkdtempSync(join(tmpdir(), "cf-replay-settings-"));
beforeAll(async () => {
  dynamo = await startTestStore();
});
afterAll(async () => {
  await dynamo.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The store of a replay stopped while it wrote: half its flows written, then nothing more. */
class StoppedStore implements FlowStore {
  readonly inner: FlowStore;
  constructor(inner: FlowStore) {
    this.inner = inner;
  }
  async writeFlows(records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> {
    await this.inner.writeFlows(records.slice(0, Math.ceil(records.length / 2)), contribution);
    throw new Error("injected: stopped while writing");
  }
  applyAlerts: FlowStore["applyAlerts"] = (c, id, o) => this.inner.applyAlerts(c, id, o);
  markAlertSent: FlowStore["markAlertSent"] = (a, how) => this.inner.markAlertSent(a, how);
  queryFlows: FlowStore["queryFlows"] = (q) => this.inner.queryFlows(q);
  queryAlerts: FlowStore["queryAlerts"] = (q) => this.inner.queryAlerts(q);
}

const NODE = "ip-192-168-74-5";
/** Four denials to two destinations, a second apart: two flows. */
const TIMES = [0, 1, 2, 3].map((i) => T0 + i * 1_000);
const LINES = TIMES.map((at, i) =>
  calicoLine(at, NODE, "192.168.22.247", i % 2 ? "192.168.94.122" : "192.168.61.8", 5432),
);
const CLAIMED: IngestSettings = {
  bucketSeconds: 30,
  prefix: "calico-packet",
  internalCidrs: ["192.168.0.0/16"],
  workloadInterfacePrefixes: DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
  alertWindowMs: 15 * 60_000,
};

/**
 * A replay in 30 s buckets of the first `count` lines, in one batch as replay makes it, stopped after it claimed
 * them and wrote half its flows.
 */
async function stoppedReplay(client: DynamoDBClient, tableName: string, count: number): Promise<void> {
  const ids = new LineIds();
  const events = LINES.slice(0, count).map((line, i) => ({
    id: ids.next(line, TIMES[i] as number),
    timestamp: TIMES[i] as number,
    message: line,
  }));
  await expect(
    ingestDelivery(
      { logGroup: "calico-flows replay", logStream: "lines", logEvents: events, node: null },
      {
        store: new StoppedStore(new DynamoFlowStore({ client, tableName })),
        alertWindowMs: CLAIMED.alertWindowMs,
        alertCap: 50,
        settings: CLAIMED,
        pipeline: {
          cluster: "prod",
          internal: new CidrSet(CLAIMED.internalCidrs),
          bucketSeconds: CLAIMED.bucketSeconds,
          scanner: createScanner({ year: 2026 }),
          directory,
          workloadInterfacePrefixes: CLAIMED.workloadInterfacePrefixes,
        },
      },
      new DynamoCoverageStore({ client, tableName }),
      "live",
    ),
  ).rejects.toThrow(/stopped while writing/);
}

describe("replay of lines another replay claimed under other settings and did not store", () => {
  const file = join(dir, "node.log");
  beforeAll(() => writeFileSync(file, `${LINES.join("\n")}\n`));
  const replay = (...destination: string[]) =>
    runCli(
      [
        "replay",
        file,
        ...destination,
        "--cluster",
        "prod",
        "--year",
        "2026",
        "--pods",
        join(ROOT, "examples", "demo", "pods.json"),
        "--quiet",
      ],
      {
        env: {
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
          AWS_PROFILE: undefined,
        },
      },
    );
  const note = (records: number) =>
    `note: ${records} calico records claimed by another replay were stored with the settings it had claimed them ` +
    "under: --bucket-seconds 30 (this run: --bucket-seconds 60)\n";

  it("stores the same lines, batched alike, with that replay's settings in a table, and names them", async () => {
    const table = await dynamo.freshTable();
    await stoppedReplay(dynamo.client, table, LINES.length);
    const run = await replay("--table", table, "--region", "eu-west-1");
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(note(4));
  });

  it("finishes its claim with its settings in the embedded store, and names them", async () => {
    const store = join(dir, "store");
    // The stopped replay read the first two lines in a batch of their own.
    const embedded = await startTestStore({ dir: store });
    try {
      await stoppedReplay(embedded.client, embedded.tableName, 2);
    } finally {
      await embedded.close();
    }
    const run = await replay("--store", store);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(note(2));
  });
});
