// The backfill checkpoint of a window of many log streams: written at most once a second (the run's clock), not each
// time a stream finishes, so that its writes do not grow with the square of the streams; and a stopped run still
// saves every stream it finished, which the same command then skips. Kept under the store directory, even a table's
// run's, where it keeps no command from making a store.
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Checkpoint } from "../../cli/commands/backfill.ts";
import { registerReplay } from "../../cli/commands/replay.ts";
import { runInProcess } from "../cli/run.ts";
import { type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import {
  backfillOptions,
  calicoLine,
  DESTINATIONS,
  PODS_FILE,
  runBackfill,
  SOURCES,
  T0,
  useBackfillWorld,
} from "./fixtures.ts";

vi.mock("node:fs", async (importOriginal) => {
  const original = await importOriginal<typeof import("node:fs")>();
  return { ...original, renameSync: vi.fn(original.renameSync) };
});

const GROUP = "/aws/eks/many/calico";
const STREAMS = Array.from({ length: 12 }, (_, i) => `ip-10-0-1-${i}`);
const world = useBackfillWorld("checkpoint");
let logs: LocalLogs;

beforeAll(async () => {
  logs = await startLocalLogs({ describePageSize: 50 });
  STREAMS.forEach((stream, i) => {
    const at = T0 + i * 1_000;
    logs.put(GROUP, stream, [
      {
        timestamp: at,
        message: calicoLine(at, stream, SOURCES[2] as string, DESTINATIONS[0] as string, 5432),
      },
    ]);
  });
});
afterAll(async () => {
  await logs?.close();
});

/** Checkpoint writes (each a rename over the file) since `from`, of `path`. */
const writesOf = (path: string, from: number) =>
  vi
    .mocked(fs.renameSync)
    .mock.calls.slice(from)
    .filter(([, to]) => to === path).length;

const window = ["--since", new Date(T0).toISOString(), "--until", new Date(T0 + 3_600_000).toISOString()];
/** The run's clock: it does not move, so that no second passes between two saves. */
const io = { now: () => T0 + 2 * 3_600_000 };

describe("the checkpoint of a backfill of many streams", () => {
  it("is written after the listing and at the end, however many streams finish, in one line", async () => {
    const path = join(world.dir, "all.json");
    const from = vi.mocked(fs.renameSync).mock.calls.length;
    const summary = await runBackfill(
      logs,
      [...backfillOptions(world, GROUP, "all"), ...window, "--checkpoint", path],
      io,
    );
    expect(summary.stored).toBe(STREAMS.length);
    expect(writesOf(path, from)).toBe(2);
    const text = fs.readFileSync(path, "utf8");
    expect(text.trimEnd().split("\n")).toHaveLength(1);
    const saved = JSON.parse(text) as Checkpoint;
    expect(saved.complete).toBe(true);
    expect(Object.values(saved.streams[GROUP] ?? {}).filter((s) => s.complete)).toHaveLength(STREAMS.length);
  });

  it("saves every stream a stopped run finished, and the same command resumes after them", async () => {
    const path = join(world.dir, "stopped.json");
    const args = [
      ...backfillOptions(world, GROUP, "stopped"),
      ...window,
      "--checkpoint",
      path,
      "--concurrency",
      "1",
    ];
    const stop = new AbortController();
    let minutes = 0;
    const from = vi.mocked(fs.renameSync).mock.calls.length;
    const stopped = await runBackfill(logs, args, {
      ...io,
      signal: stop.signal,
      onMinute: () => {
        if (++minutes === 4) stop.abort();
      },
    });
    expect(stopped.interrupted).toBe(true);
    expect(writesOf(path, from)).toBe(2);
    const saved = JSON.parse(fs.readFileSync(path, "utf8")) as Checkpoint;
    expect(Object.values(saved.streams[GROUP] ?? {}).filter((s) => s.complete)).toHaveLength(4);

    const resumed = await runBackfill(logs, args, io);
    expect(resumed.resumed).toBe(true);
    expect(resumed.streamsSkipped).toBe(4);
    expect(stopped.stored + resumed.stored).toBe(STREAMS.length);
    expect(resumed.alreadyCounted).toBe(0);
  });
});

describe("the checkpoint of a backfill into a table", () => {
  it("lies under the store directory, which a replay then makes its store", async () => {
    // As `.calico-flows`, the default store of the directory the backfill runs in.
    const store = join(world.dir, "default-store");
    await runBackfill(logs, [...backfillOptions(world, GROUP, "table"), ...window, "--store", store], io);
    expect(fs.readdirSync(join(store, "checkpoints"))).toHaveLength(1);
    const node = join(world.dir, "node.log");
    fs.writeFileSync(
      node,
      `${calicoLine(T0, STREAMS[0] as string, SOURCES[2] as string, DESTINATIONS[0] as string, 80)}\n`,
    );
    const replay = await runInProcess(registerReplay, [
      "replay",
      node,
      "--store",
      store,
      "--pods",
      PODS_FILE,
      "--year",
      "2026",
      "--quiet",
    ]);
    expect(replay.stderr).toMatch(/^replayed 1 lines: 1 calico records/);
    expect(replay.code).toBe(0);
    // LevelDB takes no file there for its own: the checkpoint is still whole.
    expect(fs.readdirSync(join(store, "checkpoints"))).toHaveLength(1);
  });
});
