// `calico-flows redrive` of what the ingest function left on its failure path, through the real binary against a local
// SQS (fauxqs) and DynamoDB (dynalite): a payload that failed before claiming anything, on a stream the stack stores
// under settings other than the run's options, and a record whose payload Lambda left out.
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_EVENT_AGE_MS } from "../../cli/commands/redrive.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { loadIngestConfig } from "../../functions/ingest/config.ts";
import { createRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { ASYNC_MAX_EVENT_AGE } from "../../lib/ingest.ts";
import { type CwEvent, calicoLine, ingestDeps, payloadOf, T0 } from "../backfill/fixtures.ts";
import { runCli } from "../cli/run.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type LocalSns, REGION, startLocalSns } from "../support/fauxqs.ts";
import { dataRecord, localQueue, queueDepth } from "./fixtures.ts";

const CLUSTER = "prod";
/** A node of a VPC whose pods are in 10.0.0.0/16, outside the CLI's default internal range. */
const STREAM = "ip-10-0-3-7";

let local: LocalSns;
let ts: TestStore;
let env: NodeJS.ProcessEnv;
let queues = 0;

beforeAll(async () => {
  [local, ts] = await Promise.all([startLocalSns(), startTestStore()]);
  // The ingest function's store, made from the SDK's standard configuration.
  process.env.AWS_ENDPOINT_URL_DYNAMODB = ts.endpoint;
  env = {
    AWS_ENDPOINT_URL_SQS: local.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: ts.endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  };
});

afterAll(async () => {
  await Promise.all([local?.close(), ts?.close()]);
});

async function send(url: string, body: string): Promise<string> {
  const sent = await local.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
  return sent.MessageId as string;
}

async function queued(url: string): Promise<number> {
  const { visible, hidden } = await queueDepth(local.sqs, url);
  return visible + hidden;
}

/** The ingest function of a stack whose pods are in 10.0.0.0/16, storing into `table`. */
const stackRuntime = (table: string) =>
  createRuntime(
    loadIngestConfig({
      TABLE_NAME: table,
      CLUSTER_NAME: CLUSTER,
      ATTRIBUTION: "none",
      INTERNAL_CIDRS: "10.0.0.0/16",
    }),
  );

/** `calico-flows redrive` of the queue at `url` into `table`, without waiting for more messages. */
const redriveOf = (url: string, table: string) => [
  "redrive",
  "--queue-url",
  url,
  "--table",
  table,
  "--cluster",
  CLUSTER,
  "--wait-seconds",
  "0",
];

/** A denial a second from `first` on, pod to pod inside 10.0.0.0/16. */
function denials(first: number, count: number): CwEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const at = T0 + (first + i) * 1_000;
    return {
      id: `${String(at).padStart(20, "0")}${String(first + i).padStart(36, "0")}`,
      timestamp: at,
      stream: STREAM,
      message: calicoLine(at, STREAM, "10.0.1.5", "10.0.2.6", 5432),
    };
  });
}

describe("a payload that failed before claiming anything", () => {
  it("is kept, not stored, while the run's options are not the settings the stack recorded on its stream", async () => {
    const table = await ts.freshTable();
    const runtime = stackRuntime(table);
    // The ingest function stored the stream's first payload of the minute under the stack's settings; the second one
    // failed while DynamoDB was down, before its claim.
    const stored = payloadOf(STREAM, denials(0, 2));
    await ingestEvent({ awslogs: { data: encodeSubscriptionData(stored) } }, runtime);
    const url = await localQueue(local, `failures-${++queues}`);
    const id = await send(url, dataRecord(encodeSubscriptionData(payloadOf(STREAM, denials(2, 2)))));
    const args = redriveOf(url, table);

    // deploy.md's command line without the stack's pipeline options.
    const defaults = await runCli([...args, "--quiet"], { env });
    expect(defaults.stderr).toContain(
      `message ${id}: not stored: its failed run claimed none of its events, and the claims of other payloads of ` +
        `log stream ${STREAM} record other settings (the ingest function's, at ${new Date(T0).toISOString()}): ` +
        "--internal-cidr 10.0.0.0/16 (this run: --internal-cidr 192.168.0.0/16); redrive with the stack's options " +
        "(ingest failed with RetriesExhausted, 3 attempts, StoreUnavailableError: UpdateItem failed after 10 tries) " +
        "— left in the queue\n",
    );
    expect(defaults.stderr).toContain("redrove 0 of 1 messages: 0 log events");
    expect(defaults.code).toBe(1);
    expect(await queued(url)).toBe(1);
    const flows = new DynamoFlowStore({ client: ts.client, tableName: table });
    const window = {
      cluster: CLUSTER,
      since: new Date(T0 - 60_000).toISOString(),
      until: new Date(T0 + 600_000).toISOString(),
    };
    const before = await flows.queryFlows(window);
    expect(before.items.map((f) => [f.internal, f.packets])).toEqual([[true, 2]]);

    // With the stack's options it is stored as the ingest function stores, and deleted.
    const stack = await runCli([...args, "--quiet", "--internal-cidr", "10.0.0.0/16"], { env });
    expect(stack.stderr).toContain("redrove 1 of 1 messages: 2 log events (0 already counted)");
    expect(stack.stderr).not.toContain("message ");
    expect(await queued(url)).toBe(0);
    const after = await flows.queryFlows(window);
    expect(after.items.map((f) => [f.internal, f.packets])).toEqual([[true, 4]]);
  });

  it("is judged by the ingest function's claims, not by a later CLI run's under other options", async () => {
    const table = await ts.freshTable();
    const runtime = stackRuntime(table);
    await ingestEvent(
      { awslogs: { data: encodeSubscriptionData(payloadOf(STREAM, denials(20, 2))) } },
      runtime,
    );
    // A redrive given the CLI's default range stored the stream's next payload after it.
    const deps = ingestDeps(new DynamoFlowStore({ client: ts.client, tableName: table }), CLUSTER);
    await ingestDelivery(
      payloadOf(STREAM, denials(22, 2)),
      {
        ...deps,
        settings: {
          bucketSeconds: 60,
          prefix: "calico-packet",
          internalCidrs: ["192.168.0.0/16"],
          workloadInterfacePrefixes: ["cali", "eni", "vlan"],
          alertWindowMs: 15 * 60_000,
        },
      },
      new DynamoCoverageStore({ client: ts.client, tableName: table }),
      "redrive",
    );
    const url = await localQueue(local, `failures-${++queues}`);
    await send(url, dataRecord(encodeSubscriptionData(payloadOf(STREAM, denials(24, 2)))));
    const run = await runCli([...redriveOf(url, table), "--quiet", "--internal-cidr", "10.0.0.0/16"], {
      env,
    });
    expect(run.stderr).toContain("redrove 1 of 1 messages: 2 log events (0 already counted)");
    expect(run.stderr).not.toContain("message ");
    expect(await queued(url)).toBe(0);
  });

  it("is stored when every event of it is counted already, whatever the run's options", async () => {
    const table = await ts.freshTable();
    const runtime = stackRuntime(table);
    // A delivery of the same events batched otherwise (as a backfill pages them) stored them all.
    const events = denials(10, 3);
    await ingestEvent({ awslogs: { data: encodeSubscriptionData(payloadOf(STREAM, events)) } }, runtime);
    const url = await localQueue(local, `failures-${++queues}`);
    await send(url, dataRecord(encodeSubscriptionData(payloadOf(STREAM, events.slice(1)))));
    const run = await runCli([...redriveOf(url, table), "--quiet"], { env });
    expect(run.stderr).toContain("redrove 1 of 1 messages: 2 log events (2 already counted)");
    expect(run.code).toBe(0);
    expect(await queued(url)).toBe(0);
  });
});

describe("a record whose payload Lambda left out", () => {
  const dropped = JSON.stringify({
    version: "1.0",
    timestamp: "2026-04-19T11:01:02.123Z",
    requestContext: {
      requestId: "6f1b7c0e-0000-4000-8000-000000000001",
      functionArn: "arn:aws:lambda:eu-west-1:123456789012:function:calico-flows-ingest:$LATEST",
      condition: "RetriesExhausted",
      approximateInvokeCount: 3,
    },
    responseContext: { statusCode: 200, executedVersion: "$LATEST", functionError: "Unhandled" },
    responsePayload: { errorType: "StoreUnavailableError", errorMessage: "UpdateItem failed after 10 tries" },
  });
  const told = (id: string) =>
    `message ${id}: payload dropped by Lambda: the record of the invocation that failed at ` +
    "2026-04-19T11:01:02.123Z holds no requestPayload, so its events can only be backfilled: `calico-flows " +
    "backfill --since 2026-04-19T05:01:02.123Z --until 2026-04-19T11:01:02.123Z` with a --log-group for every " +
    "log group the ingest function subscribes to (it retries a delivery for up to 6 h) (ingest failed with " +
    "RetriesExhausted, 3 attempts, StoreUnavailableError: UpdateItem failed after 10 tries)";

  it("is reported with its time, error and the window to backfill, kept, and deleted on request with exit 1", async () => {
    const table = await ts.freshTable();
    const url = await localQueue(local, `failures-${++queues}`);
    const id = await send(url, dropped);
    const args = redriveOf(url, table);

    const kept = await runCli([...args, "--quiet"], { env });
    expect(kept.stderr).toContain(
      `${told(id)} — left in the queue; once backfilled, --delete-corrupt removes it\n`,
    );
    expect(kept.stderr).not.toContain("corrupt:");
    expect(kept.code).toBe(1);
    expect(await queued(url)).toBe(1);

    const deleted = await runCli([...args, "--quiet", "--delete-corrupt"], { env });
    expect(deleted.stderr).toContain(`${told(id)} — deleted\n`);
    expect(deleted.code).toBe(1);
    expect(await queued(url)).toBe(0);
  });

  it("is backfilled over the ingest function's maximum event age", () => {
    expect(MAX_EVENT_AGE_MS).toBe(ASYNC_MAX_EVENT_AGE.toMilliseconds());
  });
});
