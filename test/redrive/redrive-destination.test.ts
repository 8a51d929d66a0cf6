// `calico-flows redrive` deletes each message once stored, so it must be told where to store: the real command,
// run in a scratch directory against a local SQS (fauxqs), refuses without --table or --store (exit 2, before the
// queue is read or a store made) and redrives into an embedded store that --store names on purpose.
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { type CwEvent, calicoLine, payloadOf, T0 } from "../backfill/fixtures.ts";
import { ndjson, type RunResult, runCli, SAMPLE } from "../cli/run.ts";
import { type LocalSns, REGION, startLocalSns } from "../support/fauxqs.ts";

const STREAM = "ip-192-168-74-5";
const PODS = join(SAMPLE, "pods.json");

let local: LocalSns;
let cwd: string;
let sequence = 0;

beforeAll(async () => {
  local = await startLocalSns();
  cwd = mkdtempSync(join(tmpdir(), "cf-redrive-destination-"));
});

afterAll(async () => {
  await local?.close();
  if (cwd !== undefined) rmSync(cwd, { recursive: true, force: true });
});

/** Runs the real `calico-flows` in `dir`, its SQS client pointed at fauxqs. */
function runIn(dir: string, args: readonly string[]): Promise<RunResult> {
  return runCli(args, {
    cwd: dir,
    env: {
      AWS_ENDPOINT_URL_SQS: local.endpoint,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    },
  });
}

function events(count: number, minute: number): CwEvent[] {
  return Array.from({ length: count }, (_, i) => {
    sequence++;
    const at = T0 + minute * MINUTE_MS + i * 3_000;
    return {
      id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
      timestamp: at,
      stream: STREAM,
      message: calicoLine(at, STREAM, "192.168.200.10", "192.168.201.20", 5432),
    };
  });
}

/** A queue holding two on-failure records, as Lambda writes them. */
async function failedPayloadsQueue(name: string): Promise<string> {
  const queue = await local.sqs.send(new CreateQueueCommand({ QueueName: name }));
  // The queue's path on the local endpoint: fauxqs names a host (sqs.<region>.localhost) that does not resolve here.
  const url = new URL(new URL(queue.QueueUrl as string).pathname, local.endpoint).toString();
  for (const minute of [0, 1]) {
    const body = JSON.stringify({
      version: "1.0",
      requestContext: { condition: "RetriesExhausted", approximateInvokeCount: 3 },
      requestPayload: { awslogs: { data: encodeSubscriptionData(payloadOf(STREAM, events(3, minute))) } },
      responsePayload: { errorType: "StoreUnavailableError", errorMessage: "UpdateItem failed" },
    });
    await local.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
  }
  return url;
}

async function queued(url: string): Promise<{ visible: number; hidden: number }> {
  const a = await local.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return {
    visible: Number(a.Attributes?.ApproximateNumberOfMessages),
    hidden: Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible),
  };
}

describe("calico-flows redrive destination", () => {
  it("refuses with a usage error, and leaves the queue alone, when neither --table nor --store is given", async () => {
    const url = await failedPayloadsQueue("calico-flows-ingest-failures-unnamed");
    const dir = mkdtempSync(join(cwd, "operator-"));
    const result = await runIn(dir, [
      "redrive",
      "--queue-url",
      url,
      "--cluster",
      "prod",
      "--pods",
      PODS,
      "--wait-seconds",
      "0",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/deletes each message from the queue once it is stored/);
    expect(result.stderr).toMatch(/--table <the stack's TableName output> with the stack's --cluster/);
    expect(result.stderr).toMatch(/--store DIR for a local embedded store on purpose/);
    // Not received (nothing hidden), not deleted, and no embedded store made where the operator stood.
    expect(await queued(url)).toEqual({ visible: 2, hidden: 0 });
    expect(readdirSync(dir)).toEqual([]);
  });

  it("redrives into the embedded store that --store names", async () => {
    const url = await failedPayloadsQueue("calico-flows-ingest-failures-local");
    const dir = mkdtempSync(join(cwd, "operator-"));
    const store = join(cwd, "redriven");
    const result = await runIn(dir, [
      "redrive",
      "--queue-url",
      url,
      "--cluster",
      "prod",
      "--store",
      store,
      "--pods",
      PODS,
      "--wait-seconds",
      "0",
    ]);
    expect(result.stderr).toMatch(/^redrove 2 of 2 messages: 6 log events/);
    expect(result.code).toBe(0);
    expect(await queued(url)).toEqual({ visible: 0, hidden: 0 });
    expect(existsSync(store)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);

    const listed = await runIn(dir, [
      "flows",
      "--store",
      store,
      "--cluster",
      "prod",
      "--since",
      new Date(T0 - MINUTE_MS).toISOString(),
      "--until",
      new Date(T0 + 10 * MINUTE_MS).toISOString(),
      "--json",
    ]);
    expect(listed.code).toBe(0);
    const flows = ndjson<{ packets: number }>(listed.stdout);
    expect(flows.reduce((sum, f) => sum + f.packets, 0)).toBe(6);
  });
});
