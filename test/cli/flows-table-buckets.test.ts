// `flows --table` reads the stack's table as the query function does: from the earliest bucket of any length the
// ingest may count in, so that flows counted before aggregationSeconds changed are not missed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flowsArgs } from "../../cli/sink.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { ndjson, runCli } from "./run.ts";

let dynamo: TestStore;
beforeAll(async () => {
  dynamo = await startTestStore();
});
afterAll(async () => {
  await dynamo.close();
});

function pod(ip: string, name: string): Endpoint {
  return {
    ip,
    kind: "pod",
    namespace: "customer-a",
    name: `${name}-0`,
    workload: { kind: "StatefulSet", name },
    node: "ip-192-168-74-5",
    resolved: true,
  };
}

describe("flows --table", () => {
  it("finds a flow counted in 45-s buckets (aggregationSeconds before a change) without --bucket-seconds", async () => {
    const table = await dynamo.freshTable();
    // 04:00:45 starts a 45-s bucket (14,445 s into the day); the minute holding --since starts after it, at 04:01:00.
    const bucket = "2026-04-19T04:00:45.000Z";
    const src = pod("192.168.22.247", "web");
    const dst = pod("192.168.40.2", "db");
    const flow: FlowRecord = {
      id: digest(`45|${bucket}`),
      cluster: "prod",
      bucket,
      src,
      dst,
      protocol: "TCP",
      dstPort: 5432,
      direction: "ingress",
      reporter: "ip-192-168-74-5",
      internal: true,
      packets: 3,
      bytes: 180,
      firstSeen: "2026-04-19T04:01:05.000Z",
      lastSeen: "2026-04-19T04:01:25.000Z",
      policy: null,
      tcpFlags: ["SYN"],
    };
    await new DynamoFlowStore({ client: dynamo.client, tableName: table, bucketSeconds: 45 }).writeFlows(
      [flow],
      "forty-five-second-buckets",
    );
    const env = {
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_PROFILE: undefined,
    };
    const range = ["--since", "2026-04-19T04:01:10Z", "--until", "2026-04-19T04:01:20Z"];
    const common = [
      "flows",
      "--table",
      table,
      "--region",
      "eu-west-1",
      "--cluster",
      "prod",
      "--json",
      ...range,
    ];
    const found = await runCli(common, { env });
    expect(found.stderr).toBe("");
    expect(ndjson<FlowRecord>(found.stdout).map((f) => [f.bucket, f.packets])).toEqual([[bucket, 3]]);
    // Told a minute, it reads that length besides the stack's others, not instead of them: found still.
    const told = await runCli([...common, "--bucket-seconds", "60"], { env });
    expect(ndjson<FlowRecord>(told.stdout).map((f) => [f.bucket, f.packets])).toEqual([[bucket, 3]]);
  });

  it("is told a bucket length by the alert e-mails of a run into a table only when longer than the stack's", () => {
    // A table is read for every length up to a minute anyway: only a longer one needs telling.
    expect(flowsArgs({ table: "t" }, 45)).toEqual([]);
    expect(flowsArgs({ table: "t" }, 60)).toEqual([]);
    expect(flowsArgs({ table: "t" }, 300)).toEqual(["--bucket-seconds", "300"]);
    expect(flowsArgs({ table: undefined }, 300)).toEqual([]);
  });
});
