// `calico-flows redrive` reaches SQS where the SDK's standard configuration says (AWS_ENDPOINT_URL_SQS,
// AWS_ENDPOINT_URL, a profile's endpoint_url: a VPC or FIPS endpoint), whatever host --queue-url names (the stack's
// output names sqs.<region>.amazonaws.com); with none configured, at the queue URL's host. The real command, against
// a local SQS (fauxqs) and a server on the queue URL's host that counts what reaches it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { payloadOf } from "../backfill/fixtures.ts";
import { runCli, SAMPLE } from "../cli/run.ts";
import { type LocalSns, REGION, startLocalSns } from "../support/fauxqs.ts";
import { dataRecord, localQueue, queueDepth, redriveEvents, STREAM } from "./fixtures.ts";

const PODS = join(SAMPLE, "pods.json");

let local: LocalSns;
let dir: string;
/** Answers every request 500, as an SQS the operator's network does not let it use. */
let elsewhere: Server;
let elsewhereRequests = 0;

beforeAll(async () => {
  local = await startLocalSns();
  dir = mkdtempSync(join(tmpdir(), "cf-redrive-endpoint-"));
  elsewhere = createServer((_, res) => {
    elsewhereRequests++;
    res.statusCode = 500;
    res.end();
  });
  await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  await new Promise((resolve) => elsewhere?.close(resolve));
  await local?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** A queue on fauxqs holding one on-failure record of three events; its URL on fauxqs' host. */
async function failedPayloadQueue(name: string): Promise<string> {
  const url = await localQueue(local, name);
  const body = dataRecord(encodeSubscriptionData(payloadOf(STREAM, redriveEvents(3, 0))));
  await local.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
  return url;
}

async function queued(url: string): Promise<number> {
  const { visible, hidden } = await queueDepth(local.sqs, url);
  return visible + hidden;
}

/** The shared config file of each case: an empty one, or one whose default profile names fauxqs. */
const configFile = (name: string, text: string) => {
  const file = join(dir, `${name}.config`);
  writeFileSync(file, text);
  return file;
};

describe("calico-flows redrive's SQS endpoint", () => {
  it.each([
    ["AWS_ENDPOINT_URL_SQS", (endpoint: string) => ({ AWS_ENDPOINT_URL_SQS: endpoint })],
    ["AWS_ENDPOINT_URL", (endpoint: string) => ({ AWS_ENDPOINT_URL: endpoint })],
    [
      "a profile's endpoint_url",
      (endpoint: string) => ({
        AWS_CONFIG_FILE: configFile("profile", `[default]\nendpoint_url = ${endpoint}\n`),
      }),
    ],
  ])("is the one %s configures, not the queue URL's host", async (name, configure) => {
    const onFauxqs = await failedPayloadQueue(`failures-${name.replaceAll(/[^a-z]/gi, "")}`);
    const url = new URL(
      new URL(onFauxqs).pathname,
      `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`,
    );
    const before = elsewhereRequests;
    const result = await runCli(
      [
        "redrive",
        "--queue-url",
        url.toString(),
        "--cluster",
        "prod",
        "--store",
        join(dir, `store-${name.replaceAll(/[^a-z]/gi, "")}`),
        "--pods",
        PODS,
        "--quiet",
        "--wait-seconds",
        "0",
      ],
      { env: { AWS_REGION: REGION, AWS_CONFIG_FILE: configFile("empty", ""), ...configure(local.endpoint) } },
    );
    expect(elsewhereRequests - before).toBe(0);
    expect(result.stderr).toBe(
      "redrove 1 of 1 messages: 3 log events (0 already counted), 3 calico records (0 malformed), " +
        "1 flow updates (0 already stored), 1 alerts\n",
    );
    expect(result.code).toBe(0);
    expect(await queued(onFauxqs)).toBe(0);
  });

  it("is the queue URL's host when none is configured", async () => {
    const url = await failedPayloadQueue("failures-unconfigured");
    const result = await runCli(
      [
        "redrive",
        "--queue-url",
        url,
        "--cluster",
        "prod",
        "--store",
        join(dir, "store-unconfigured"),
        "--pods",
        PODS,
        "--quiet",
        "--wait-seconds",
        "0",
      ],
      { env: { AWS_REGION: REGION, AWS_CONFIG_FILE: configFile("empty", "") } },
    );
    expect(result.stderr).toMatch(/^redrove 1 of 1 messages: 3 log events/m);
    expect(result.code).toBe(0);
    expect(await queued(url)).toBe(0);
  });
});
