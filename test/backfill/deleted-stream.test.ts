// A log stream deleted after DescribeLogStreams listed it (clean-up jobs delete empty or old streams): FilterLogEvents
// naming it answers ResourceNotFoundException "The specified log stream does not exist." (percona/rds_exporter#81).
// Its events went with it; the reader asks again for the streams of the query that are left, from the last event it
// handed out, and a backfill reads the other streams instead of failing.

import { FilterLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";
import { describe, expect, it } from "vitest";
import { describeBackfill } from "../../cli/commands/backfill.ts";
import { CloudWatchLogsReader, type FilteredEvent } from "../../functions/adapters/cloudwatch-logs.ts";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { type LocalLogs, type LogsServerOptions, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import {
  backfillOptions,
  calicoLine,
  expectedByAddress,
  GROUP,
  runBackfill,
  storedAroundT0,
  T0,
  useBackfillWorld,
} from "./fixtures.ts";

const world = useBackfillWorld("deleted-stream");

const STREAMS = ["ip-10-0-1-1", "ip-10-0-1-2", "ip-10-0-1-3"];

/** Every stream logs a denial at the same instants, every 5 s for `minutes` from T0. */
function seed(logs: LocalLogs, minutes: number): void {
  for (const stream of STREAMS) {
    const times = Array.from({ length: minutes * 12 }, (_, i) => T0 + i * 5_000);
    logs.put(
      GROUP,
      stream,
      times.map((at) => ({
        timestamp: at,
        message: calicoLine(at, stream, "192.168.22.247", "192.168.94.122", 5432),
      })),
    );
  }
}

async function withLogs(options: LogsServerOptions, test: (logs: LocalLogs) => Promise<void>): Promise<void> {
  const logs = await startLocalLogs(options);
  try {
    await test(logs);
  } finally {
    await logs.close();
  }
}

const filterCalls = (logs: LocalLogs) => logs.calls.filter((c) => c.operation === "FilterLogEvents");

describe("the local endpoint", () => {
  it("answers FilterLogEvents naming a stream the group does not hold as the service does, a missing group first", async () => {
    await withLogs({}, async (logs) => {
      seed(logs, 1);
      logs.deleteStream(GROUP, "ip-10-0-1-2");
      const client = logs.client();
      const ask = (group: string) =>
        client.send(new FilterLogEventsCommand({ logGroupName: group, logStreamNames: STREAMS }));
      await expect(ask(GROUP)).rejects.toMatchObject({
        name: "ResourceNotFoundException",
        message: "The specified log stream does not exist.",
      });
      await expect(ask("/nope")).rejects.toMatchObject({
        name: "ResourceNotFoundException",
        message: "The specified log group does not exist.",
      });
      const left = await client.send(
        new FilterLogEventsCommand({ logGroupName: GROUP, logStreamNames: ["ip-10-0-1-1", "ip-10-0-1-3"] }),
      );
      expect(left.events).toHaveLength(10);
    });
  });
});

describe("CloudWatchLogsReader.events with a stream deleted while it reads", () => {
  it("reads the query's other streams on, each event once, asking afresh from the last instant handed out", async () => {
    // Four events a page, three streams logging at the same instants: the second page ends inside an instant.
    let logs: LocalLogs | undefined;
    const deleted: FilteredEvent[] = [];
    await withLogs(
      {
        pageSize: 4,
        beforeFilter: async (n) => {
          if (n === 3) logs?.deleteStream(GROUP, "ip-10-0-1-2");
        },
      },
      async (local) => {
        logs = local;
        seed(local, 1);
        const before = local.events(GROUP);
        const reader = new CloudWatchLogsReader({ client: local.client(), callsPerSecond: 1000 });
        const read: FilteredEvent[] = [];
        for await (const page of reader.events({
          group: GROUP,
          streams: STREAMS,
          start: T0,
          end: T0 + MINUTE_MS - 1,
          filterPattern: '"calico-packet"',
        }))
          read.push(...page.events);

        // The two pages before the deletion, then the streams left, in time order, none twice.
        const firstPages = read.slice(0, 8);
        expect(firstPages.map((e) => [e.timestamp - T0, e.stream])).toEqual([
          [0, "ip-10-0-1-1"],
          [0, "ip-10-0-1-2"],
          [0, "ip-10-0-1-3"],
          [5_000, "ip-10-0-1-1"],
          [5_000, "ip-10-0-1-2"],
          [5_000, "ip-10-0-1-3"],
          [10_000, "ip-10-0-1-1"],
          [10_000, "ip-10-0-1-2"],
        ]);
        deleted.push(...read.filter((e) => e.stream === "ip-10-0-1-2"));
        expect(deleted).toHaveLength(3);
        const expected = [
          ...firstPages,
          ...before
            .filter((e) => e.stream !== "ip-10-0-1-2" && !firstPages.some((f) => f.id === e.id))
            .map((e) => ({ id: e.id, stream: e.stream, timestamp: e.timestamp, message: e.message }))
            .sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : 1)),
        ];
        expect(read).toEqual(expected);
        expect(read).toHaveLength(8 + 2 * 12 - 5);
        expect(reader.deletedStreams).toEqual([{ group: GROUP, stream: "ip-10-0-1-2" }]);

        // The failed call carried the second page's token; the one after it names the streams left, with no token
        // (one of another stream list is refused), from the instant the second page ended in.
        const calls = filterCalls(local);
        expect(calls[2]).toMatchObject({ outcome: "error", error: "ResourceNotFoundException" });
        expect(calls[2]?.params.nextToken).toEqual(expect.any(String));
        expect(calls[3]?.params).toMatchObject({
          logStreamNames: ["ip-10-0-1-1", "ip-10-0-1-3"],
          startTime: T0 + 10_000,
        });
        expect(calls[3]?.params.nextToken).toBeUndefined();
        expect(calls.every((c) => c.error !== "InvalidParameterException")).toBe(true);
        // One existence check per stream of the query, by the stream's name as prefix.
        expect(
          local.calls
            .filter((c) => c.operation === "DescribeLogStreams")
            .map((c) => c.params.logStreamNamePrefix),
        ).toEqual(STREAMS);
      },
    );
  });

  it("ends a query whose every stream is gone, with nothing more asked", async () => {
    await withLogs({}, async (logs) => {
      seed(logs, 1);
      logs.deleteStream(GROUP, "ip-10-0-1-2");
      const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
      const pages = [];
      for await (const page of reader.events({
        group: GROUP,
        streams: ["ip-10-0-1-2"],
        start: T0,
        end: T0 + 1,
      }))
        pages.push(page);
      expect(pages).toEqual([]);
      expect(reader.deletedStreams).toEqual([{ group: GROUP, stream: "ip-10-0-1-2" }]);
      expect(logs.calls.map((c) => c.operation)).toEqual(["FilterLogEvents", "DescribeLogStreams"]);
    });
  });

  it("fails as before when every stream of the query is still there (the service's answer is then not about them)", async () => {
    await withLogs(
      {
        fail: (n, operation) =>
          operation === "FilterLogEvents" && n === 1
            ? {
                status: 400,
                type: "ResourceNotFoundException",
                message: "The specified log stream does not exist.",
              }
            : undefined,
      },
      async (logs) => {
        seed(logs, 1);
        const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
        const pages = reader.events({ group: GROUP, streams: STREAMS, start: T0, end: T0 + 1 });
        await expect(pages.next()).rejects.toMatchObject({
          message: `log group ${GROUP}, log stream ${STREAMS.join(", ")} (FilterLogEvents in eu-west-1): The specified log stream does not exist.`,
          cause: { name: "ResourceNotFoundException" },
        });
        expect(reader.deletedStreams).toEqual([]);
      },
    );
  });
});

describe("backfill with a stream deleted between listing and reading", () => {
  it("stores the other streams' events and finishes the window, instead of failing", async () => {
    let logs: LocalLogs | undefined;
    await withLogs(
      {
        beforeFilter: async (n) => {
          // Listed already; deleted as the first stream is read (one at a time: the second is read after).
          if (n === 1) logs?.deleteStream(GROUP, "ip-10-0-1-2");
        },
      },
      async (local) => {
        logs = local;
        seed(local, 3);
        const summary = await runBackfill(local, [
          ...backfillOptions(world, GROUP, "deleted-stream", "deleted-stream.json"),
          ...["--since", new Date(T0).toISOString(), "--until", new Date(T0 + 3 * MINUTE_MS).toISOString()],
          "--concurrency",
          "1",
        ]);
        const left = local.events(GROUP);
        expect(left).toHaveLength(2 * 36);
        expect(summary).toMatchObject({ failed: false, interrupted: false, streams: 3, stored: 2 * 36 });
        // The operator is told which stream went, and that its events went with it.
        expect(summary.deletedStreams).toEqual([{ group: GROUP, stream: "ip-10-0-1-2" }]);
        expect(describeBackfill(summary)).toContain(
          `warning: 1 log stream was deleted while being read, its events with it: ${GROUP} ip-10-0-1-2; ` +
            "the run read the others on",
        );
        expect(await storedAroundT0(world, "deleted-stream")).toEqual(expectedByAddress(left));
        // The deleted stream was asked for once, and the stream after it read whole.
        const failed = filterCalls(local).filter((c) => c.outcome !== "ok");
        expect(failed.map((c) => [c.params.logStreamNames, c.error])).toEqual([
          [["ip-10-0-1-2"], "ResourceNotFoundException"],
        ]);
      },
    );
  });
});
