// A backfill's checkpoint belongs to its destination as well as to what it reads: coverage, which makes a repeated
// window count each event once, is kept in the destination, so the streams a run finished are finished there only.
// The same command into another table (or the same table name in another region, at another endpoint or through
// another profile, or another embedded store) starts its own checkpoint, or is refused one named with --checkpoint;
// into the same destination it still resumes. Pipeline options are not part of the job: a run resumed with others
// stores what a fresh run of the window with them stores.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackfillIo } from "../../cli/commands/backfill.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { createTableInput } from "../../functions/adapters/dynamo/schema.ts";
import { digest } from "../../functions/core/aggregate.ts";
import { type LocalLogs, type StoredEvent, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { startTestStore } from "../support/dynalite.ts";
import {
  calicoLine,
  DESTINATIONS,
  PODS_FILE,
  runBackfill,
  SOURCES,
  storedByAddress,
  T0,
  total,
  useBackfillWorld,
} from "./fixtures.ts";

const GROUP = "/aws/eks/dest/calico";
/** Read in this order with --concurrency 1 (DescribeLogStreams lists them by name). */
const STREAMS = ["ip-10-0-1-1", "ip-10-0-1-2"];
const MINUTES_PER_STREAM = 3;
const world = useBackfillWorld("checkpoint-destination");
let logs: LocalLogs;
let events: StoredEvent[];

beforeAll(async () => {
  logs = await startLocalLogs();
  events = STREAMS.flatMap((stream) =>
    logs.put(
      GROUP,
      stream,
      Array.from({ length: MINUTES_PER_STREAM }, (_, i) => ({
        timestamp: T0 + i * 60_000,
        message: calicoLine(T0 + i * 60_000, stream, SOURCES[0] as string, DESTINATIONS[0] as string, 5432),
      })),
    ),
  );
});
afterAll(async () => {
  await logs?.close();
});

const window = ["--since", new Date(T0).toISOString(), "--until", new Date(T0 + 3_600_000).toISOString()];

/** The backfill of the window into `destination` (`--table T …` or `--store DIR`), a stream at a time. */
const command = (destination: readonly string[]) => [
  "--log-group",
  GROUP,
  ...destination,
  "--cluster",
  "prod",
  "--pods",
  PODS_FILE,
  "--max-rps",
  "100",
  "--concurrency",
  "1",
  "--retention-days",
  "3650",
  "--quiet",
  ...window,
];

/** Runs `args`, stopped once the first stream is done: its checkpoint has that stream finished, the other unread. */
async function stoppedAfterFirstStream(args: readonly string[]) {
  const stop = new AbortController();
  let minutes = 0;
  const io: BackfillIo = {
    signal: stop.signal,
    onMinute: () => {
      if (++minutes === MINUTES_PER_STREAM) stop.abort();
    },
  };
  const summary = await runBackfill(logs, args, io);
  expect(summary).toMatchObject({ interrupted: true, stored: MINUTES_PER_STREAM });
  return summary;
}

/** Calico records stored in `table` of the world's dynalite for the window. */
const packetsIn = async (table: string, client = world.ts.client) =>
  total(await storedByAddress(new DynamoFlowStore({ client, tableName: table }), "prod", T0, T0 + 3_600_000));

describe("the checkpoint of a backfill into a table", () => {
  it("is not resumed into another table, and is into its own", async () => {
    const [tabA, tabB] = [await world.ts.freshTable(), await world.ts.freshTable()];
    const dir = join(world.dir, "tables");
    const into = (table: string) => command(["--table", table, "--store", dir]);
    await stoppedAfterFirstStream(into(tabA));

    const other = await runBackfill(logs, into(tabB));
    expect(other).toMatchObject({
      resumed: false,
      streamsSkipped: 0,
      stored: events.length,
      alreadyCounted: 0,
    });
    expect(await packetsIn(tabB)).toBe(events.length);

    const own = await runBackfill(logs, into(tabA));
    expect(own).toMatchObject({
      resumed: true,
      streamsSkipped: 1,
      stored: MINUTES_PER_STREAM,
      alreadyCounted: 0,
    });
    expect(await packetsIn(tabA)).toBe(events.length);
  });

  it("is not resumed into the table of that name in another region", async () => {
    const table = await world.ts.freshTable();
    const dir = join(world.dir, "regions");
    await stoppedAfterFirstStream(command(["--table", table, "--store", dir]));
    // The local endpoint serves every region the same table: what the first run stored is counted, not skipped.
    const other = await runBackfill(
      logs,
      command(["--table", table, "--store", dir, "--region", "us-east-1"]),
    );
    expect(other).toMatchObject({
      resumed: false,
      streamsSkipped: 0,
      stored: MINUTES_PER_STREAM,
      alreadyCounted: MINUTES_PER_STREAM,
    });
  });

  it("is not resumed into the table of that name at another endpoint", async () => {
    const second = await startTestStore();
    const table = await world.ts.freshTable();
    const dir = join(world.dir, "endpoints");
    try {
      await stoppedAfterFirstStream(command(["--table", table, "--store", dir]));
      await second.client.send(new CreateTableCommand(createTableInput(table)));
      process.env.AWS_ENDPOINT_URL_DYNAMODB = second.endpoint;
      const other = await runBackfill(logs, command(["--table", table, "--store", dir]));
      expect(other).toMatchObject({ resumed: false, streamsSkipped: 0, stored: events.length });
      expect(await packetsIn(table, second.client)).toBe(events.length);
    } finally {
      process.env.AWS_ENDPOINT_URL_DYNAMODB = world.ts.endpoint;
      await second.close();
    }
  });

  it("is not resumed into the table of that name through another profile (another account, perhaps)", async () => {
    const table = await world.ts.freshTable();
    const dir = join(world.dir, "profiles");
    await stoppedAfterFirstStream(command(["--table", table, "--store", dir]));
    const config = join(world.dir, "aws-config");
    writeFileSync(config, "[profile other]\nregion = eu-west-1\n");
    const credentials = join(world.dir, "aws-credentials");
    writeFileSync(credentials, "[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n");
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_PROFILE: "other",
      AWS_CONFIG_FILE: config,
      AWS_SHARED_CREDENTIALS_FILE: credentials,
    });
    try {
      const other = await runBackfill(logs, command(["--table", table, "--store", dir]));
      expect(other).toMatchObject({
        resumed: false,
        streamsSkipped: 0,
        stored: MINUTES_PER_STREAM,
        alreadyCounted: MINUTES_PER_STREAM,
      });
    } finally {
      for (const name of ["AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"]) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
  });

  it("named with --checkpoint, is refused to another table, naming the table it belongs to", async () => {
    const [tabA, tabB] = [await world.ts.freshTable(), await world.ts.freshTable()];
    const checkpoint = join(world.dir, "named.json");
    await stoppedAfterFirstStream(command(["--table", tabA, "--checkpoint", checkpoint]));
    await expect(runBackfill(logs, command(["--table", tabB, "--checkpoint", checkpoint]))).rejects.toThrow(
      `${checkpoint} belongs to another backfill (${GROUP} ${new Date(T0).toISOString()} → ` +
        `${new Date(T0 + 3_600_000).toISOString()} into DynamoDB table ${tabA} in eu-west-1 at ${world.ts.endpoint})`,
    );
    expect(await packetsIn(tabB)).toBe(0);
  });
});

describe("a checkpoint an earlier version left unfinished", () => {
  it("is named in a warning with the window to finish, since it is not resumed", async () => {
    const table = await world.ts.freshTable();
    const dir = join(world.dir, "earlier");
    const args = command(["--table", table, "--store", dir]);
    const stopped = await stoppedAfterFirstStream(args);
    // As a version before the destination was part of the job wrote it: no destination, the job without it.
    const written = JSON.parse(readFileSync(stopped.checkpoint, "utf8")) as Record<string, unknown>;
    const { destination: _, ...earlier } = written;
    const job = digest(JSON.stringify(["prod", [GROUP], earlier.filterPattern, null, window[1], window[3]]));
    const earlierPath = join(dir, "checkpoints", `backfill-${job}.json`);
    writeFileSync(earlierPath, JSON.stringify({ ...earlier, job }));
    rmSync(stopped.checkpoint);

    const warnings: string[] = [];
    const rerun = await runBackfill(logs, args, { warn: (line) => warnings.push(line) });
    expect(warnings).toEqual([
      `warning: ${earlierPath}, an earlier version's unfinished checkpoint of this backfill, is not resumed: it does ` +
        `not record where it stored. To finish its window into the same destination, run with --since ${earlier.since} ` +
        `--until ${earlier.until} (coverage counts once what it stored)`,
    ]);
    expect(rerun).toMatchObject({
      resumed: false,
      stored: MINUTES_PER_STREAM,
      alreadyCounted: MINUTES_PER_STREAM,
    });
    // Finished, or of this version: nothing to say.
    const again: string[] = [];
    await runBackfill(logs, [...args, "--restart"], { warn: (line) => again.push(line) });
    expect(again).toEqual([]);
  });
});

describe("a resumed backfill with other pipeline settings", () => {
  it("stores what a fresh run of the window with them stores: the checkpoint is not part of how events are stored", async () => {
    const flowsIn = async (table: string) =>
      (
        await new DynamoFlowStore({ client: world.ts.client, tableName: table }).queryFlows({
          cluster: "prod",
          since: new Date(T0).toISOString(),
          until: new Date(T0 + 3_600_000).toISOString(),
          limit: 100,
        })
      ).items
        .map((f) => `${f.bucket} ${f.reporter} internal=${f.internal} ${f.packets}`)
        .sort();
    const [resumedInto, restartedInto] = [await world.ts.freshTable(), await world.ts.freshTable()];
    const into = (table: string, ...more: string[]) =>
      command(["--table", table, "--store", join(world.dir, "settings"), ...more]);
    await stoppedAfterFirstStream(into(resumedInto));
    const resumed = await runBackfill(logs, into(resumedInto, "--internal-cidr", "10.0.0.0/8"));
    expect(resumed).toMatchObject({ resumed: true, streamsSkipped: 1, stored: MINUTES_PER_STREAM });
    await stoppedAfterFirstStream(into(restartedInto));
    const restarted = await runBackfill(
      logs,
      into(restartedInto, "--internal-cidr", "10.0.0.0/8", "--restart"),
    );
    expect(restarted).toMatchObject({
      resumed: false,
      stored: MINUTES_PER_STREAM,
      alreadyCounted: MINUTES_PER_STREAM,
    });
    const stored = await flowsIn(resumedInto);
    expect(stored).toEqual(await flowsIn(restartedInto));
    // The first stream's flows with the stopped run's ranges, the second's with the resumed run's.
    expect(stored.filter((f) => f.includes("internal=true"))).toHaveLength(MINUTES_PER_STREAM);
    expect(stored.filter((f) => f.includes(`${STREAMS[1]} internal=false 1`))).toHaveLength(
      MINUTES_PER_STREAM,
    );
  });
});

describe("the checkpoint of a backfill into an embedded store", () => {
  it("named with --checkpoint, is refused to another store, and resumed into its own by another path", async () => {
    const checkpoint = join(world.dir, "embedded.json");
    const first = join(world.dir, "store-a");
    await stoppedAfterFirstStream(command(["--store", first, "--checkpoint", checkpoint]));
    await expect(
      runBackfill(logs, command(["--store", join(world.dir, "store-b"), "--checkpoint", checkpoint])),
    ).rejects.toThrow(/belongs to another backfill \(.* into embedded store .*store-a\)/);

    mkdirSync(join(world.dir, "links"));
    symlinkSync(first, join(world.dir, "links", "store"));
    const own = await runBackfill(
      logs,
      command(["--store", join(world.dir, "links", "store"), "--checkpoint", checkpoint]),
    );
    expect(own).toMatchObject({ resumed: true, streamsSkipped: 1, stored: MINUTES_PER_STREAM });
  });
});
