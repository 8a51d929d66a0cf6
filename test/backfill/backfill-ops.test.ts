// What an operator running a long backfill relies on: progress lines when stderr is not a terminal (nohup, a CI
// job, a container, `2>backfill.log`), where the bar draws nothing; and no FilterLogEvents call for a stream whose
// metadata proves it holds no event of the window, by the limits PutLogEvents documents (events at most 14 days
// before and 2 hours after their put; stream metadata updated "typically" within an hour), and none skipped that
// may hold one.
import { describe, expect, it } from "vitest";
import { describeBackfill } from "../../cli/commands/backfill.ts";
import { type Every, PLAIN_PROGRESS_MS, Progress, type ProgressOutput } from "../../cli/progress.ts";
import { type LogStreamInfo, mayHoldEvents } from "../../functions/adapters/cloudwatch-logs.ts";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import {
  backfillOptions,
  calicoLine,
  DESTINATIONS,
  expectedByAddress,
  runBackfill,
  SOURCES,
  storedAroundT0,
  T0,
  useBackfillWorld,
} from "./fixtures.ts";

const GROUP = "/aws/eks/ops/calico";
const HOUR = 60 * MINUTE_MS;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

const world = useBackfillWorld("backfill-ops");

/** Calico lines of `stream` at the given times, each put at `ingestionTime` when given. */
const linesAt = (stream: string, times: readonly number[], ingestionTime?: number) =>
  times.map((at, k) => ({
    timestamp: at,
    message: calicoLine(at, stream, SOURCES[k % SOURCES.length] as string, DESTINATIONS[0] as string, 5432),
    ...(ingestionTime === undefined ? {} : { ingestionTime }),
  }));

const readStreams = (logs: LocalLogs) =>
  logs.calls.filter((c) => c.operation === "FilterLogEvents").flatMap((c) => c.params.logStreamNames);

/** stderr as a pipe or a file, a timer ticked by hand and a clock set by hand. */
function plainOutput() {
  const state = { now: T0, written: "", intervals: [] as number[], ticks: [] as (() => void)[], stopped: 0 };
  const every: Every = (ms, tick) => {
    state.intervals.push(ms);
    state.ticks.push(tick);
    return () => void state.stopped++;
  };
  const output: ProgressOutput = {
    stream: {
      isTTY: false,
      write: (chunk: string) => {
        state.written += chunk;
        return true;
      },
    } as unknown as ProgressOutput["stream"],
    every,
    now: () => state.now,
  };
  const tick = () => {
    for (const t of state.ticks) t();
  };
  return { state, output, tick };
}

describe("progress when stderr is not a terminal", () => {
  it("prints a plain line every 30 s of what was read and stored and the rate, none before and none at the end", () => {
    const { state, output, tick } = plainOutput();
    const progress = new Progress({ total: 2_000, enabled: true, ...output });
    progress.update(500, { lines: 3_000, calico: 2_400, flowsApplied: 700, alertsOpened: 2 });
    expect(state.written).toBe("");

    state.now += PLAIN_PROGRESS_MS;
    tick();
    expect(state.written).toBe(
      "progress after 30s: 3000 lines read (25% of the input), 2400 calico records, 700 flow updates, 2 alerts, 100 lines/s\n",
    );
    expect(state.intervals).toEqual([PLAIN_PROGRESS_MS]);
    // A stuck run says so: the same counts, a falling rate.
    state.now += PLAIN_PROGRESS_MS;
    tick();
    expect(state.written.split("\n")[1]).toBe(
      "progress after 1m00s: 3000 lines read (25% of the input), 2400 calico records, 700 flow updates, 2 alerts, 50 lines/s",
    );
    progress.log("line 7: not a calico-packet record\n");
    progress.stop();
    expect(state.stopped).toBe(1);
    expect(state.written.split("\n")).toHaveLength(4);
    expect(state.written).not.toContain("\u001b");
  });

  it("prints nothing with --quiet", () => {
    const { state, output } = plainOutput();
    new Progress({ enabled: false, ...output }).stop();
    expect(state.intervals).toEqual([]);
  });

  it("shows how far a backfill is in the window and which stream it reads, at the position reached", async () => {
    // One event a page: each page moves the stream's position on by a minute.
    const logs = await startLocalLogs({ pageSize: 1 });
    try {
      logs.put(
        GROUP,
        "ip-10-0-1-1",
        linesAt(
          "ip-10-0-1-1",
          [0, 1, 2, 3].map((m) => T0 + m * MINUTE_MS + 5),
        ),
      );
      const { state, output, tick } = plainOutput();
      const args = backfillOptions(world, GROUP, "ops-progress").filter((a) => a !== "--quiet");
      let minutes = 0;
      const summary = await runBackfill(
        logs,
        [...args, "--since", iso(T0), "--until", iso(T0 + 4 * MINUTE_MS)],
        {
          progress: output,
          onMinute: () => {
            // The second minute processed (the third event read), 1.5 s into the run.
            if (++minutes !== 2) return;
            state.now += 1_500;
            tick();
          },
        },
      );
      expect(summary.stored).toBe(4);
      expect(state.written).toBe(
        "backfill after 1s: 25% of the window, about 4s left; 0 of 1 streams done, " +
          `reading ip-10-0-1-1 at ${iso(T0 + MINUTE_MS)}; 3 events read, 2 calico records, 2 flow updates, ` +
          "2 events/s, 0 calls throttled\n",
      );
      expect(state.intervals).toEqual([PLAIN_PROGRESS_MS]);
      expect(state.stopped).toBe(1);
    } finally {
      await logs.close();
    }
  });
});

describe("which streams a backfill reads", () => {
  const since = T0;
  const until = T0 + HOUR;
  /** Listed 20 days after the window: the last hour's puts can no longer reach back into it. */
  const late = { since, until, listedAt: until + 20 * DAY };
  /** Listed just after the window. */
  const soon = { since, until, listedAt: until + 10 * MINUTE_MS };
  const lastPut = (at: number): LogStreamInfo => ({
    name: "s",
    creationTime: at - 30 * DAY,
    lastIngestionTime: at,
    lastEventTimestamp: at,
  });

  it.each([
    ["no metadata", { name: "s" }, late, true],
    [
      "created after the window, yet less than 14 days after it",
      { name: "s", creationTime: until + 13 * DAY },
      late,
      true,
    ],
    ["created 14 days after the window", { name: "s", creationTime: until + 14 * DAY }, late, false],
    [
      "created a millisecond short of 14 days after it",
      { name: "s", creationTime: until + 14 * DAY - 1 },
      late,
      true,
    ],
    ["a first event after the window", { name: "s", firstEventTimestamp: until + DAY }, late, true],
    ["last put 2 hours and a millisecond before the window", lastPut(since - 2 * HOUR - 1), late, false],
    ["last put 2 hours before the window", lastPut(since - 2 * HOUR), late, true],
    ["last put days before, listed soon after", lastPut(since - 5 * DAY), soon, true],
    [
      "last put days before, the window ending 14 days and an hour before the listing",
      lastPut(since - 5 * DAY),
      { since, until, listedAt: until + 14 * DAY + HOUR },
      false,
    ],
    [
      "last put days before, the window ending a millisecond later",
      lastPut(since - 5 * DAY),
      { since, until, listedAt: until + 14 * DAY + HOUR - 1 },
      true,
    ],
    [
      "a last event in the window, the last put shown older",
      { ...lastPut(since - DAY), lastEventTimestamp: since },
      late,
      true,
    ],
    ["only a last event, days before", { name: "s", lastEventTimestamp: since - 5 * DAY }, late, true],
  ] as const)("%s", (_, stream, window, expected) => {
    expect(mayHoldEvents(stream, window)).toBe(expected);
  });

  it("skips streams created 14 days after the window or last written before it, counts them, and reads the others", async () => {
    const logs = await startLocalLogs();
    const minutes = [0, 1, 2].map((m) => since + m * MINUTE_MS + 7);
    try {
      logs.put(GROUP, "ip-10-0-1-1", linesAt("ip-10-0-1-1", minutes));
      // Created two days after the window, its first put carrying lines of the window (a node's agent catching up).
      logs.put(GROUP, "ip-10-0-2-2", linesAt("ip-10-0-2-2", minutes, until + 2 * DAY), {
        createdAt: until + 2 * DAY,
      });
      // Created 15 days after the window: nothing it holds can be stamped in it.
      logs.put(GROUP, "ip-10-0-3-3", linesAt("ip-10-0-3-3", [until + 15 * DAY]));
      // Silent since 3 hours before the window.
      logs.put(GROUP, "ip-10-0-4-4", linesAt("ip-10-0-4-4", [since - 3 * HOUR]));
      const summary = await runBackfill(
        logs,
        [...backfillOptions(world, GROUP, "ops-skip"), "--since", iso(since), "--until", iso(until)],
        { now: () => late.listedAt },
      );
      expect(readStreams(logs).sort()).toEqual(["ip-10-0-1-1", "ip-10-0-2-2"]);
      expect(summary.streams).toBe(4);
      expect(summary.streamsOutsideWindow).toBe(2);
      const inside = logs.events(GROUP).filter((e) => e.timestamp >= since && e.timestamp < until);
      expect(summary.stored).toBe(6);
      expect(await storedAroundT0(world, "ops-skip")).toEqual(expectedByAddress(inside));
      expect(describeBackfill(summary)).toMatch(/: 4 log streams \(2 outside the window\), 6 events scanned/);
    } finally {
      await logs.close();
    }
  });

  it("reads a stream whose metadata shows its last put hours before the window, when a put of the last hour may not show", async () => {
    // The stream was silent for hours, then wrote into the window minutes ago: DescribeLogStreams still shows the
    // old put (its metadata lags by up to an hour).
    const logs = await startLocalLogs({
      streamMetadata: (stream) =>
        stream === "ip-10-0-8-8"
          ? {
              creationTime: since - 2 * DAY,
              lastIngestionTime: since - 5 * HOUR,
              lastEventTimestamp: since - 5 * HOUR,
            }
          : undefined,
    });
    try {
      logs.put(GROUP, "ip-10-0-8-8", [
        ...linesAt("ip-10-0-8-8", [since - 5 * HOUR]),
        ...linesAt("ip-10-0-8-8", [since + 50 * MINUTE_MS, since + 55 * MINUTE_MS], until + 5 * MINUTE_MS),
      ]);
      const summary = await runBackfill(
        logs,
        [...backfillOptions(world, GROUP, "ops-lag"), "--since", iso(since), "--until", iso(until)],
        { now: () => soon.listedAt },
      );
      expect(readStreams(logs)).toContain("ip-10-0-8-8");
      expect(summary.stored).toBe(2);
      const inside = logs.events(GROUP).filter((e) => e.timestamp >= since && e.timestamp < until);
      expect(await storedAroundT0(world, "ops-lag")).toEqual(expectedByAddress(inside));
    } finally {
      await logs.close();
    }
  });
});
