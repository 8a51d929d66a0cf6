// Review of `calico-flows backfill` at scale, as an operator backfilling a week of a 200-node cluster would run it:
// throttled by an account quota shared with other tools, stopped with Ctrl-C, pointed at the wrong log group, and
// ended by an error hours in. (Reading node streams one after another gives the alert rules hits out of time order
// across streams: a documented limit, docs/backfill.md "Limits".) Against the local CloudWatch Logs endpoint and the
// store in dynalite, as the other backfill tests.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Checkpoint } from "../../cli/commands/backfill.ts";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { runCli } from "../cli/run.ts";
import { type LocalLogs, type LogsServerOptions, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import {
  backfillOptions,
  calicoLine,
  DESTINATIONS,
  PORTS,
  runBackfill,
  SOURCES,
  T0,
  useBackfillWorld,
} from "./fixtures.ts";

const GROUP = "/aws/eks/scale/calico";
const iso = (ms: number) => new Date(ms).toISOString();

const world = useBackfillWorld("backfill-scale-review");

/** `count` calico lines of `stream` spread evenly over `minutes` minutes from `from`. */
function linesOf(stream: string, from: number, minutes: number, count: number) {
  return Array.from({ length: count }, (_, k) => {
    const at = from + Math.floor((k * minutes * MINUTE_MS) / count);
    const src = SOURCES[k % SOURCES.length] as string;
    const dst = DESTINATIONS[(k >> 1) % DESTINATIONS.length] as string;
    return { timestamp: at, message: calicoLine(at, stream, src, dst, PORTS[k % PORTS.length] as number) };
  });
}

const filterCalls = (logs: LocalLogs) => logs.calls.filter((c) => c.operation === "FilterLogEvents");

/** The binary's environment: the local CloudWatch Logs endpoint and the world's dynalite, fake credentials. */
const binaryEnv = (logs: LocalLogs) => ({
  AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
  AWS_ENDPOINT_URL_DYNAMODB: world.ts.endpoint,
  AWS_REGION: "eu-west-1",
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
});

async function withLogs<T>(options: LogsServerOptions, body: (logs: LocalLogs) => Promise<T>): Promise<T> {
  const logs = await startLocalLogs(options);
  try {
    return await body(logs);
  } finally {
    await logs.close();
  }
}

describe("stopping a backfill", () => {
  it("stops at Ctrl-C while CloudWatch Logs throttles it, instead of retrying to exhaustion and failing", async () => {
    // Defect: the reader's retry loop (CloudWatchLogsReader.#call) never looks at the run's abort signal. Ctrl-C
    // while FilterLogEvents is being throttled (the account's 5 TPS are shared with every other tool) prints
    // "finishing the current minute", then keeps backing off for all 10 tries (up to ~90 s of sleeps) and, if
    // the throttling lasts, ends with exit 1 "Rate exceeded" instead of 130 and "progress saved". A Kubernetes
    // Job's SIGTERM grace (30 s) runs out long before. Expected: a stop ends the retries at once; the run
    // returns interrupted with its checkpoint saved, and no backoff is waited after it.
    let throttling = false;
    const stop = new AbortController();
    await withLogs(
      {
        pageSize: 5,
        scanWindow: 5,
        fail: (_, operation) => {
          if (operation !== "FilterLogEvents" || !throttling) return undefined;
          // The operator presses Ctrl-C as the throttling starts.
          stop.abort();
          return { status: 400, type: "ThrottlingException" };
        },
      },
      async (logs) => {
        const stream = "ip-10-0-1-1";
        logs.put(GROUP, stream, linesOf(stream, T0, 4, 20));
        const cluster = "stop-throttled";
        const checkpoint = join(world.dir, `${cluster}.json`);
        let filtersAtStop = 0;
        const sleptAfterStop: number[] = [];
        let minutes = 0;
        const run = runBackfill(
          logs,
          [
            ...backfillOptions(world, GROUP, cluster, `${cluster}.json`),
            "--since",
            iso(T0),
            "--until",
            iso(T0 + 4 * MINUTE_MS),
          ],
          {
            signal: stop.signal,
            sleep: async (ms) => {
              if (stop.signal.aborted) sleptAfterStop.push(ms);
            },
            onMinute: () => {
              // Two minutes stored, then the account's quota is taken by someone else.
              if (++minutes === 2) {
                throttling = true;
                filtersAtStop = filterCalls(logs).length;
              }
            },
          },
        );
        const outcome = await run.then(
          (summary) => ({ summary, error: undefined }),
          (error: unknown) => ({ summary: undefined, error }),
        );
        const triesAfterStop = filterCalls(logs).length - filtersAtStop;
        expect(outcome.error, "the run failed after Ctrl-C").toBeUndefined();
        expect(outcome.summary?.interrupted).toBe(true);
        expect(triesAfterStop, "FilterLogEvents tries after Ctrl-C").toBeLessThanOrEqual(1);
        expect(
          sleptAfterStop.reduce((a, b) => a + b, 0),
          "ms of backoff waited after Ctrl-C",
        ).toBe(0);
        const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
        expect(saved.complete).toBe(false);
      },
    );
  });
});

describe("a log group that is not there", () => {
  it("names the log group that does not exist", async () => {
    // Defect: DescribeLogStreams' ResourceNotFoundException says only "The specified log group does not exist.",
    // and the CLI prints just that. An operator backfilling two groups (`--log-group /eks/prod/calico --log-group
    // /eks/prod/calico-b`), or one mistyped, cannot tell which name is wrong (or which account/region it asked).
    // Expected: the error names the group (as the service's AccessDenied message names the resource).
    await withLogs({}, async (logs) => {
      logs.put(GROUP, "ip-10-0-1-1", linesOf("ip-10-0-1-1", T0, 1, 3));
      const missing = "/aws/eks/scale/calico-typo";
      const result = await runCli(
        [
          "backfill",
          ...backfillOptions(world, [GROUP, missing], "missing-group", "missing-group.json"),
          "--since",
          iso(T0),
          "--until",
          iso(T0 + MINUTE_MS),
        ],
        { env: binaryEnv(logs) },
      );
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain("does not exist");
      expect(result.stderr).toContain(missing);
    });
  });
});

describe("a run that ends on an error", () => {
  it("says what it stored and that the same command resumes from the saved checkpoint", async () => {
    // Defect: when a backfill ends on an error hours into a run (here the operator's session credentials expire,
    // as `aws sso`/assumed-role credentials in the environment do after 1 to 12 hours; or 10 throttled tries),
    // the CLI prints only the service's message ("error: The security token included in the request is
    // expired") and exits 1: no word of what was stored, that the checkpoint kept the progress, or where it is.
    // docs/backfill.md promises that "the checkpoint keeps what was done, and the same command resumes", and an
    // interrupted run does say so ("progress saved in …: run the same command again to resume"). Expected: a
    // failed run names its checkpoint and says the same command resumes (and summarises what it stored).
    let filters = 0;
    await withLogs(
      {
        pageSize: 4,
        fail: (_, operation) => {
          if (operation !== "FilterLogEvents" || ++filters <= 3) return undefined;
          return {
            status: 400,
            type: "ExpiredTokenException",
            message: "The security token included in the request is expired",
          };
        },
      },
      async (logs) => {
        for (const stream of ["ip-10-0-1-1", "ip-10-0-1-2"])
          logs.put(GROUP, stream, linesOf(stream, T0, 3, 8));
        const cluster = "failed-run";
        const checkpoint = join(world.dir, `${cluster}.json`);
        const result = await runCli(
          [
            "backfill",
            ...backfillOptions(world, GROUP, cluster, `${cluster}.json`),
            "--since",
            iso(T0),
            "--until",
            iso(T0 + 3 * MINUTE_MS),
            "--concurrency",
            "1",
          ],
          { env: binaryEnv(logs) },
        );
        expect(result.code, result.stderr).toBe(1);
        // The first stream was stored and its progress saved: the run did work worth resuming.
        const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as Checkpoint;
        expect(saved.streams[GROUP]?.["ip-10-0-1-1"]?.complete).toBe(true);
        expect(result.stderr).toContain("security token included in the request is expired");
        expect(result.stderr, "names the checkpoint").toContain(checkpoint);
        expect(result.stderr, "says the same command resumes").toMatch(/resume/);
      },
    );
  });
});
