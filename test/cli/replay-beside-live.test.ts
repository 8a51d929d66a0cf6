// `calico-flows replay --table` into a table the stack's live ingest writes: live ingest names a line by its CloudWatch
// Logs event id, replay by its text, so neither sees the other's claim and a line both store is counted twice. Replay
// leaves out the lines of minutes in which others than replays stored flows of the cluster, and says so.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { registerReplay } from "../../cli/commands/replay.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import {
  calicoLine,
  ingestDeps,
  PODS_FILE,
  payloadOf,
  storedByAddress,
  T0,
  total,
} from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { runInProcess } from "./run.ts";

const NODE = "ip-192-168-74-5";
const CLUSTER = "prod";
let dynamo: TestStore;
const dir = mkdtempSync(join(tmpdir(), "cf-replay-beside-live-"));
beforeAll(async () => {
  dynamo = await startTestStore();
});
afterEach(() => {
  vi.unstubAllEnvs();
});
afterAll(async () => {
  await dynamo.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A denial `seconds` after T0 on NODE, to a port of its own so that every line is a flow of its own. */
const line = (seconds: number) =>
  calicoLine(T0 + seconds * 1000, NODE, "192.168.22.247", "192.168.94.122", 5000 + seconds);

/** `calico-flows replay FILE --table T` of `lines`, in process, with `more` options. */
async function replayIntoTable(table: string, name: string, lines: readonly string[], ...more: string[]) {
  for (const [variable, value] of Object.entries({
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_REGION: "eu-west-1",
  }))
    vi.stubEnv(variable, value);
  const file = join(dir, name);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return runInProcess(registerReplay, [
    "replay",
    file,
    ...["--table", table, "--cluster", CLUSTER, "--pods", PODS_FILE, "--year", "2026", "--quiet"],
    ...more,
  ]);
}

const packets = async (table: string) =>
  total(
    await storedByAddress(
      new DynamoFlowStore({ client: dynamo.client, tableName: table }),
      CLUSTER,
      T0 - 3_600_000,
      T0 + 3_600_000,
    ),
  );

describe("replay --table beside the stack's live ingest", () => {
  it("leaves out the lines of minutes live ingest stored flows in, and those after, naming backfill and --beside-live", async () => {
    const table = await dynamo.freshTable();
    // The subscription delivered the line of 04:52:10 (minute 2): the stack counted it.
    const delivered = { id: "3750116349837474741234567890123456789012345678901234567", stream: NODE };
    await ingestDelivery(
      payloadOf(NODE, [{ ...delivered, timestamp: T0 + 130_000, message: line(130) }]),
      ingestDeps(new DynamoFlowStore({ client: dynamo.client, tableName: table }), CLUSTER),
      new DynamoCoverageStore({ client: dynamo.client, tableName: table }),
      "live",
    );
    expect(await packets(table)).toBe(1);

    // `kubectl logs -f` of that node: a line of minute 0 (before the subscription ran), the delivered one, and one of
    // minute 3, which its delivery stores later.
    const lines = [line(10), line(130), line(190)];
    const run = await replayIntoTable(table, "node.log", lines);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain("replayed 3 lines: 3 calico records (2 not stored beside live ingest)");
    expect(run.stderr).toMatch(
      /^warning: 2 calico records were not stored: table \S+ holds flows of cluster prod .*calico-flows backfill.*--beside-live/m,
    );
    expect(await packets(table)).toBe(2);

    // Told that the stack's log groups do not hold them, it stores them.
    const forced = await replayIntoTable(table, "node.log", lines, "--beside-live");
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain("replayed 3 lines: 3 calico records (1 counted by an earlier replay)");
    expect(await packets(table)).toBe(4);
  });

  it("stores into a table only replays wrote, whatever their batches and minutes", async () => {
    const table = await dynamo.freshTable();
    const first = await replayIntoTable(table, "a.log", [line(10), line(20)]);
    expect(first.code, first.stderr).toBe(0);
    // Other lines of the same minutes, one a batch, and one of the minute after.
    const second = await replayIntoTable(
      table,
      "b.log",
      [line(10), line(30), line(40), line(70)],
      "--batch-lines",
      "1",
    );
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain("replayed 4 lines: 4 calico records (1 counted by an earlier replay)");
    expect(second.stderr).not.toContain("not stored");
    expect(await packets(table)).toBe(5);
  });
});
