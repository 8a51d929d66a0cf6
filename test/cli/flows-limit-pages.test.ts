// A listing cut by --limit is said to be cut even when the pages come back short: a page by time ends with its hour
// partition, so the records wanted may all have come while the range holds more behind the cursor.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { ndjson, runCli } from "./run.ts";

let dynamo: TestStore;
let table: string;
let env: NodeJS.ProcessEnv;
const T0 = Date.parse("2026-04-19T04:00:00.000Z");

const pod = (ip: string, name: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace: "customer-a",
  name: `${name}-0`,
  workload: { kind: "StatefulSet", name },
  node: "ip-192-168-74-5",
  resolved: true,
});

function flow(minute: number, port: number): FlowRecord {
  const bucket = new Date(T0 + minute * 60_000).toISOString();
  return {
    id: digest(`${bucket}|${port}`),
    cluster: "prod",
    bucket,
    src: pod("192.168.22.247", "web"),
    dst: pod("192.168.40.2", "db"),
    protocol: "TCP",
    dstPort: port,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    internal: true,
    packets: 1,
    bytes: 60,
    firstSeen: bucket,
    lastSeen: bucket,
    policy: null,
    tcpFlags: ["SYN"],
  };
}

// Two flows in the hour of 04:00, one at 05:10 and one at 06:20: a range of three hours lists the hours' markers
// first, so the first page reads the hour of 04:00 alone and answers its two flows with a cursor.
const FLOWS = [flow(5, 5432), flow(5, 5433), flow(70, 5432), flow(140, 5432)];

beforeAll(async () => {
  dynamo = await startTestStore();
  table = await dynamo.freshTable();
  await new DynamoFlowStore({ client: dynamo.client, tableName: table }).writeFlows(FLOWS, "seed");
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
});

const read = (...args: string[]) =>
  runCli(
    [
      "flows",
      ...["--table", table, "--cluster", "prod", "--json"],
      ...["--since", "2026-04-19T04:00:00Z", "--until", "2026-04-19T06:59:00Z"],
      ...args,
    ],
    { env },
  );

describe("flows --limit over short pages", () => {
  it("says the listing is cut when a short page brought exactly --limit records and more follow", async () => {
    const two = await read("--limit", "2");
    expect(two.code, two.stderr).toBe(0);
    expect(ndjson<FlowRecord>(two.stdout).map((f) => f.bucket)).toEqual([
      "2026-04-19T04:05:00.000Z",
      "2026-04-19T04:05:00.000Z",
    ]);
    expect(two.stderr).toBe(
      "note: only the first 2 flows (by bucket, oldest first) are listed and the range holds more: narrow it (--since, --until, filters) or raise --limit\n",
    );
    // Exactly as many as the range holds: nothing said.
    const all = await read("--limit", "4");
    expect(all.stderr).toBe("");
    expect(ndjson<FlowRecord>(all.stdout)).toHaveLength(4);
  });
});
