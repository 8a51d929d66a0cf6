// Events older than the retention, backfilled or replayed into a table: their flows are stored already expired (their
// TTL counts from their bucket), and DynamoDB deletes them within days. The run says how many, and what to give.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { registerReplay } from "../../cli/commands/replay.ts";
import { runInProcess } from "../cli/run.ts";
import { type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { backfillOptions, calicoLine, PODS_FILE, runBackfill, useBackfillWorld } from "./fixtures.ts";

const GROUP = "/aws/eks/old/calico";
const NODE = "ip-192-168-74-5";
const DAY = 86_400_000;
/** 45 days ago, on the minute: past the default retention of 30 days. */
const OLD = Math.floor((Date.now() - 45 * DAY) / 60_000) * 60_000;
/** A denial at `at`, stamped in full (the year-less syslog stamp would need the year of 45 days ago). */
function line(at: number, port: number): string {
  const syslog = calicoLine(at, NODE, "192.168.22.247", "192.168.94.122", port);
  return `${new Date(at).toISOString()} ${syslog.slice(syslog.indexOf(NODE))}`;
}
const LINES = [1, 2, 3].map((s) => ({ timestamp: OLD + s * 1000, message: line(OLD + s * 1000, 5430 + s) }));

const world = useBackfillWorld("retention-warning");
let logs: LocalLogs;
beforeAll(async () => {
  logs = await startLocalLogs({});
  logs.put(GROUP, NODE, LINES);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});
afterAll(async () => {
  await logs?.close();
});

/** What `run` wrote on stderr. */
async function stderrOf(run: () => Promise<unknown>): Promise<string> {
  let written = "";
  vi.spyOn(process.stderr, "write").mockImplementation(((text: string) => {
    written += text;
    return true;
  }) as typeof process.stderr.write);
  await run();
  return written;
}

const EXPIRING =
  /^warning: 3 calico records are over 29 days old, so with --retention-days 30 their flows were stored expired or expiring within a day \(DynamoDB deletes them within days\): give --retention-days the stack's retentionDays/m;

describe("events older than --retention-days", () => {
  const window = [
    "--since",
    new Date(OLD - 3_600_000).toISOString(),
    "--until",
    new Date(OLD + 3_600_000).toISOString(),
  ];

  it("a backfill into a table says how many it stored expired, and nothing when its retention keeps them", async () => {
    const expired = await stderrOf(() =>
      runBackfill(logs, [
        ...backfillOptions(world, GROUP, "kept-30"),
        ...window,
        "--checkpoint",
        join(world.dir, "a.json"),
      ]),
    );
    expect(expired).toMatch(EXPIRING);
    const kept = await stderrOf(() =>
      runBackfill(logs, [
        ...backfillOptions(world, GROUP, "kept-90"),
        ...window,
        ...["--checkpoint", join(world.dir, "b.json"), "--retention-days", "90"],
      ]),
    );
    expect(kept).not.toContain("warning");
  });

  it("so does a replay into a table", async () => {
    for (const [variable, value] of Object.entries({
      AWS_ENDPOINT_URL_DYNAMODB: world.ts.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_REGION: "eu-west-1",
    }))
      vi.stubEnv(variable, value);
    const file = join(world.dir, "old.log");
    writeFileSync(file, `${LINES.map((l) => l.message).join("\n")}\n`);
    const table = ["--table", world.ts.tableName, "--cluster", "replayed", "--pods", PODS_FILE, "--quiet"];
    const run = await runInProcess(registerReplay, ["replay", file, ...table]);
    expect(run.stderr).toMatch(EXPIRING);
  });
});
