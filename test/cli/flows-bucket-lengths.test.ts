// `flows --bucket-seconds N` reads buckets of N seconds besides those it reads anyway (a table's: every length the
// stack's ingest may count in; an embedded store's: those its writers recorded), so the `--bucket-seconds 300` an
// alert e-mail of a replay into a table puts on its `flows` command cannot hide the stack's own minute flows. And a
// run that counts flows into a table in buckets longer than the query API reads is told so.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flowsArgs } from "../../cli/sink.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { calicoLine, PODS_FILE } from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { ndjson, runCli } from "./run.ts";

let dynamo: TestStore;
let env: NodeJS.ProcessEnv;
const dir = mkdtempSync(join(tmpdir(), "cf-flows-buckets-"));
beforeAll(async () => {
  dynamo = await startTestStore();
  env = {
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_REGION: "eu-west-1",
    AWS_PROFILE: undefined,
  };
});
afterAll(async () => {
  await dynamo.close();
  rmSync(dir, { recursive: true, force: true });
});

const pod = (ip: string, name: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace: "customer-a",
  name: `${name}-0`,
  workload: { kind: "StatefulSet", name },
  node: "ip-192-168-74-5",
  resolved: true,
});

// 10:01:00 starts a minute; the 90-s bucket holding 10:01:35 starts after it, at 10:01:30 (epoch seconds divisible
// by 90): read from there alone, the minute's flow, whose packets are in the range, is missed.
const MINUTE = "2026-04-19T10:01:00.000Z";
const RANGE = ["--since", "2026-04-19T10:01:35Z", "--until", "2026-04-19T10:05:00Z"];

describe("flows --bucket-seconds", () => {
  it("on a table, reads the stack's minute flows too when told the longer buckets an e-mail names", async () => {
    const table = await dynamo.freshTable();
    const flow: FlowRecord = {
      id: digest(`60|${MINUTE}`),
      cluster: "prod",
      bucket: MINUTE,
      src: pod("192.168.22.247", "web"),
      dst: pod("192.168.40.2", "db"),
      protocol: "TCP",
      dstPort: 5432,
      direction: "ingress",
      reporter: "ip-192-168-74-5",
      internal: true,
      packets: 3,
      bytes: 180,
      firstSeen: "2026-04-19T10:01:40.000Z",
      lastSeen: "2026-04-19T10:01:50.000Z",
      policy: null,
      tcpFlags: ["SYN"],
    };
    await new DynamoFlowStore({ client: dynamo.client, tableName: table }).writeFlows([flow], "live");
    const told = flowsArgs({ table }, 90);
    expect(told).toEqual(["--bucket-seconds", "90"]);
    const read = ["flows", "--table", table, "--cluster", "prod", "--json", ...RANGE];
    for (const extra of [[], told]) {
      const run = await runCli([...read, ...extra], { env });
      expect(run.stderr).toBe("");
      expect(ndjson<FlowRecord>(run.stdout).map((f) => [f.bucket, f.packets])).toEqual([[MINUTE, 3]]);
    }
  });

  it("on an embedded store, reads the buckets its replays recorded too", async () => {
    const store = join(dir, "store");
    const log = join(dir, "minute.log");
    // Two packets at 10:01:40 and 10:01:50, counted in the default minute buckets.
    writeFileSync(
      log,
      `${[40, 50]
        .map((s) =>
          calicoLine(
            Date.parse(MINUTE) + s * 1000,
            "ip-192-168-74-5",
            "192.168.22.247",
            "192.168.94.122",
            5432,
          ),
        )
        .join("\n")}\n`,
    );
    const replay = await runCli([
      "replay",
      log,
      ...["--store", store, "--cluster", "prod", "--pods", PODS_FILE, "--year", "2026", "--quiet"],
    ]);
    expect(replay.code, replay.stderr).toBe(0);
    const read = ["flows", "--store", store, "--cluster", "prod", "--json", ...RANGE];
    for (const extra of [[], ["--bucket-seconds", "90"]]) {
      const run = await runCli([...read, ...extra]);
      expect(run.stderr).toBe("");
      expect(ndjson<FlowRecord>(run.stdout).map((f) => [f.bucket, f.packets])).toEqual([[MINUTE, 2]]);
    }
  });
});

describe("a run into a table with buckets longer than the query API reads", () => {
  const line = calicoLine(Date.parse(MINUTE), "ip-192-168-74-5", "192.168.22.247", "192.168.94.122", 5432);
  const replay = (...args: string[]) =>
    runCli(
      [
        "replay",
        "-",
        "--cluster",
        "prod",
        "--pods",
        PODS_FILE,
        "--year",
        "2026",
        "--retention-days",
        "3650",
        ...args,
      ],
      { input: `${line}\n`, env },
    );
  const warnings = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("warning:"));

  it("is warned that the API misses them and what finds them", async () => {
    const table = await dynamo.freshTable();
    const run = await replay("--table", table, "--region", "eu-west-1", "--bucket-seconds", "300");
    expect(run.code, run.stderr).toBe(0);
    expect(warnings(run.stderr)).toEqual([
      `warning: --bucket-seconds 300 is longer than the buckets the query API reads (up to 60 s): the API, and ` +
        "`flows --api`, miss these flows in a range that starts over a minute into their bucket; " +
        `\`calico-flows flows --table ${table} --region eu-west-1 --cluster prod --bucket-seconds 300\` finds them`,
    ]);
  });

  it("is not warned for buckets the API reads, nor into an embedded store", async () => {
    const table = await dynamo.freshTable();
    const minute = await replay("--table", table, "--bucket-seconds", "60");
    expect(minute.code, minute.stderr).toBe(0);
    expect(warnings(minute.stderr)).toEqual([]);
    const embedded = await replay("--store", join(dir, "long"), "--bucket-seconds", "300");
    expect(embedded.code, embedded.stderr).toBe(0);
    expect(warnings(embedded.stderr)).toEqual([]);
  });
});
