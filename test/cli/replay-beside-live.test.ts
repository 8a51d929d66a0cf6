// `calico-flows replay --table` into a table the stack's live ingest writes: live ingest names a line by its CloudWatch
// Logs event id, replay by its text, so neither sees the other's claim and a line both store is counted twice. Replay
// leaves out the lines of minutes in which others than replays stored flows of the cluster, and says so.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { registerReplay, replay } from "../../cli/commands/replay.ts";
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
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import { parsedOptions, runInProcess, useDynamoEndpoint } from "./run.ts";

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
  useDynamoEndpoint(dynamo.endpoint);
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

/** A table in which the subscription delivered the line of 04:52:10 (minute 2): the stack counted it. */
async function liveTable(): Promise<string> {
  const table = await dynamo.freshTable();
  const delivered = { id: "3750116349837474741234567890123456789012345678901234567", stream: NODE };
  await ingestDelivery(
    payloadOf(NODE, [{ ...delivered, timestamp: T0 + 130_000, message: line(130) }]),
    ingestDeps(new DynamoFlowStore({ client: dynamo.client, tableName: table }), CLUSTER),
    new DynamoCoverageStore({ client: dynamo.client, tableName: table }),
    "live",
  );
  return table;
}

describe("replay --table beside the stack's live ingest", () => {
  it("leaves out the lines of minutes live ingest stored flows in, and those after, naming backfill and --beside-live", async () => {
    const table = await liveTable();
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

  it("leaves out a later minute read before the live-counted one, from the batch that found it on", async () => {
    // `kubectl logs -l app=calico-logs -f` interleaves the pods' tails: minute 3 is read before minute 2 in a batch.
    const table = await liveTable();
    const run = await replayIntoTable(table, "interleaved.log", [line(190), line(10), line(130)]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain("replayed 3 lines: 3 calico records (2 not stored beside live ingest)");
    expect(await packets(table)).toBe(2);

    // A batch stored before the minute was found keeps its lines; those of later batches are left out.
    const apart = await liveTable();
    const batched = await replayIntoTable(
      apart,
      "batched.log",
      [line(190), line(130), line(200)],
      "--batch-lines",
      "1",
    );
    expect(batched.stderr).toContain("replayed 3 lines: 3 calico records (2 not stored beside live ingest)");
    expect(await packets(apart)).toBe(2);
  });

  describe("what the check reads", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy(dynamo.endpoint);
    });
    afterAll(() => proxy.close());

    /**
     * The Queries of a replay of `lines` (one a batch) into `table` whose batches' clock is `now`: of flows (the check
     * reads them eventually consistent) and of coverage claims (strongly consistent, as the pipeline reads them too).
     */
    async function queriesOf(table: string, lines: readonly string[], now: () => number, ...more: string[]) {
      useDynamoEndpoint(proxy.endpoint);
      const raw = await parsedOptions(
        registerReplay,
        ["replay"],
        [
          "replay",
          "-",
          ...["--table", table, "--cluster", CLUSTER, "--pods", PODS_FILE, "--year", "2026", "--quiet"],
          ...["--batch-lines", "1", "--retention-days", "3650", ...more],
        ],
      );
      proxy.clearLog();
      const summary = await replay("-", raw, undefined, {
        input: Readable.from([`${lines.join("\n")}\n`]),
        batching: { now },
      });
      expect(summary.besideLive).toBe(0);
      const queries = proxy.log.filter((r) => r.operation === "Query");
      return {
        flows: queries.filter((q) => q.body.ConsistentRead !== true).length,
        claims: queries.filter((q) => q.body.ConsistentRead === true).length,
      };
    }
    const minute = Array.from({ length: 8 }, (_, i) => line(i * 5));

    it("reads a minute's flows once however many batches hold it", async () => {
      const checked = await queriesOf(await dynamo.freshTable(), minute, () => 0);
      const beside = await queriesOf(await dynamo.freshTable(), minute, () => 0, "--beside-live");
      expect(checked).toEqual({ flows: 1, claims: beside.claims });
      expect(beside.flows).toBe(0);
    });

    it("reads them again as time passes, knowing its own flows and reading another replay's claims once", async () => {
      // Another replay stored a line of the same minute.
      const tableWith = async () => {
        const table = await dynamo.freshTable();
        const other = await replayIntoTable(table, "other.log", [line(59)], "--retention-days", "3650");
        expect(other.code, other.stderr).toBe(0);
        return table;
      };
      // A minute passes each time the clock is read: a minute found clean is checked again in every batch.
      let time = 0;
      const checked = await queriesOf(await tableWith(), minute, () => (time += 60_000));
      const beside = await queriesOf(await tableWith(), minute, () => 0, "--beside-live");
      expect(checked).toEqual({ flows: minute.length, claims: beside.claims + 1 });
    });
  });
});
