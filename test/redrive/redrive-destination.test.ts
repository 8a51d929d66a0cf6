// `calico-flows redrive` deletes each message once stored, so it must be told where to store: the real command,
// run in a scratch directory against a local SQS (fauxqs), refuses without --table or --store (exit 2, before the
// queue is read or a store made) and redrives into an embedded store that --store names on purpose.
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { payloadOf, T0 } from "../backfill/fixtures.ts";
import { ndjson, type RunResult, runCli, SAMPLE } from "../cli/run.ts";
import { type LocalSns, REGION, startLocalSns } from "../support/fauxqs.ts";
import { dataRecord, localQueue, queueDepth, redriveEvents, STREAM } from "./fixtures.ts";

const PODS = join(SAMPLE, "pods.json");

let local: LocalSns;
let cwd: string;

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

/** A queue holding two on-failure records, as Lambda writes them. */
async function failedPayloadsQueue(name: string): Promise<string> {
  const url = await localQueue(local, name);
  for (const minute of [0, 1]) {
    const body = dataRecord(encodeSubscriptionData(payloadOf(STREAM, redriveEvents(3, minute))));
    await local.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
  }
  return url;
}

const queued = (url: string) => queueDepth(local.sqs, url);

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
