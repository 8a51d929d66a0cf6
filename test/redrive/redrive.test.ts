// `calico-flows redrive` against a local SQS (fauxqs) holding Lambda on-failure records, with the store in
// dynalite behind a fault proxy: payloads are stored once (a half-stored one included), deleted only once
// stored; corrupt ones and ones that still fail are reported with their original error and stay queued.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  describeRedrive,
  type RedriveIo,
  type RedriveSummary,
  registerRedrive,
} from "../../cli/commands/redrive.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { ingestDelivery, MINUTE_MS } from "../../functions/core/coverage.ts";
import {
  encodeSubscriptionData,
  type SubscriptionPayload,
} from "../../functions/core/subscription-payload.ts";
import type { AlertRecord } from "../../functions/core/types.ts";
import {
  expectedByAddress,
  ingestDeps,
  payloadOf,
  storedByAddress,
  storedPackets,
  T0,
  total,
} from "../backfill/fixtures.ts";
import { controlMessageData } from "../support/deliveries.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import { createTopic, drainQueue, type LocalSns, startLocalSns, subscribeQueue } from "../support/fauxqs.ts";
import { HalfWrittenStore } from "../support/half-written-store.ts";
import { dataRecord, localQueue, queueDepth, redriveEvents, STREAM } from "./fixtures.ts";

const CLUSTER = "prod";
const POISON = "192.168.77.77";

let sqs: LocalSns;
let ts: TestStore;
let proxy: FaultProxy;
let queueUrl: string;
let dir: string;

beforeAll(async () => {
  [sqs, ts] = await Promise.all([startLocalSns(), startTestStore()]);
  proxy = await startFaultProxy(ts.endpoint);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = proxy.endpoint;
  const queue = await sqs.sqs.send(new CreateQueueCommand({ QueueName: "calico-flows-ingest-failures" }));
  queueUrl = queue.QueueUrl as string;
  dir = mkdtempSync(join(tmpdir(), "cf-redrive-"));
});

afterAll(async () => {
  await proxy?.close();
  await Promise.all([sqs?.close(), ts?.close()]);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** What Lambda's on-failure destination sends for an asynchronous invocation whose retries ran out. */
async function send(body: string): Promise<string> {
  const sent = await sqs.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
  return sent.MessageId as string;
}

async function queued(): Promise<number> {
  const { visible, hidden } = await queueDepth(sqs.sqs, queueUrl);
  return visible + hidden;
}

/** Runs `calico-flows redrive ARGS` through its commander definition, returning the summary. */
async function redriveCli(args: readonly string[], io: RedriveIo = {}): Promise<RedriveSummary> {
  const program = new Command("calico-flows").exitOverride();
  registerRedrive(program);
  const command = program.commands.find((c) => c.name() === "redrive") as Command;
  const { redrive } = await import("../../cli/commands/redrive.ts");
  let summary: RedriveSummary | undefined;
  command.action(async (raw: Record<string, unknown>) => {
    summary = await redrive(raw, { sqs: sqs.sqs, ...io });
  });
  await program.parseAsync(
    [
      "redrive",
      "--queue-url",
      queueUrl,
      "--table",
      ts.tableName,
      "--cluster",
      CLUSTER,
      "--store",
      dir,
      "--pods",
      join(import.meta.dirname, "..", "..", "examples", "demo", "pods.json"),
      "--wait-seconds",
      "0",
      ...args,
    ],
    { from: "user" },
  );
  if (summary === undefined) throw new Error("redrive did not run");
  return summary;
}

describe("calico-flows redrive", () => {
  it("stores each failed payload once, deletes it once stored, and keeps what still fails with why", async () => {
    const flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
    const coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });

    // A: never stored. B: spans two minutes and was half stored before the invocation failed (its claims were
    // written). C: cannot be stored while its writes fail. D: a control message. E, F: corrupt.
    const a = redriveEvents(5, 0);
    const b = [...redriveEvents(4, 1).slice(0, 4), ...redriveEvents(3, 2)];
    const c = redriveEvents(4, 3, POISON);
    const payloadB: SubscriptionPayload = payloadOf(STREAM, b);
    await expect(
      ingestDelivery(payloadB, ingestDeps(new HalfWrittenStore(flows), CLUSTER), coverage, "live"),
    ).rejects.toThrow(/partial write/);
    const halfStored = total(await storedPackets(flows, CLUSTER, T0, T0 + 10 * MINUTE_MS));
    expect(halfStored).toBeGreaterThan(0);
    expect(halfStored).toBeLessThan(b.length);

    await send(dataRecord(encodeSubscriptionData(payloadOf(STREAM, a))));
    await send(dataRecord(encodeSubscriptionData(payloadB)));
    const idC = await send(dataRecord(encodeSubscriptionData(payloadOf(STREAM, c))));
    await send(dataRecord(controlMessageData(T0)));
    const idE = await send(
      dataRecord(
        "H4sIAAAAAAAAA-not-base64!",
        "CorruptPayloadError",
        "awslogs.data is not base64 (26 characters)",
      ),
    );
    const idF = await send("{ this is not an invocation record");

    // Every write that carries the poison address fails, however often it is retried.
    proxy.setPlan({
      error: 1,
      eligible: (operation, body) => operation === "UpdateItem" && JSON.stringify(body).includes(POISON),
    });
    const first = await redriveCli([]);
    expect(first.received).toBe(6);
    expect(first.redriven).toBe(2);
    expect(first.controlMessages).toBe(1);
    expect(first.events).toBe(a.length + b.length);
    expect(first.eventsAlreadyCounted).toBe(0);
    const byId = new Map(first.problems.map((p) => [p.messageId, p]));
    expect(byId.get(idC)).toMatchObject({ kind: "failed", deleted: false });
    expect(byId.get(idC)?.original).toBe(
      "RetriesExhausted, 3 attempts, StoreUnavailableError: UpdateItem failed after 10 tries",
    );
    expect(byId.get(idE)).toMatchObject({
      kind: "corrupt",
      deleted: false,
      reason: expect.stringMatching(/not base64/),
    });
    expect(byId.get(idF)).toMatchObject({
      kind: "corrupt",
      deleted: false,
      reason: expect.stringMatching(/not JSON/),
    });
    expect(first.problems).toHaveLength(3);

    // A and B exactly once (B's half-written flows were completed, not doubled); C not at all.
    expect(await storedByAddress(flows, CLUSTER, T0, T0 + 10 * MINUTE_MS)).toEqual(
      expectedByAddress([...a, ...b]),
    );

    // What is left is visible again right away.
    expect(await queued()).toBe(3);
    const visible = await sqs.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
    );
    expect((visible.Messages ?? []).map((m) => m.MessageId).sort()).toEqual([idC, idE, idF].sort());

    // The store is back: one message at a time with --max, then the rest, deleting the corrupt ones.
    proxy.setPlan({});
    const one = await redriveCli(["--max", "1"]);
    expect(one.received).toBe(1);
    const rest = await redriveCli(["--delete-corrupt"]);
    expect(one.redriven + rest.redriven).toBe(1);
    expect(rest.problems.every((p) => p.kind === "corrupt" && p.deleted)).toBe(true);
    expect(one.problems.length + rest.problems.length).toBe(2);
    expect(await queued()).toBe(0);

    const final = await storedByAddress(flows, CLUSTER, T0, T0 + 10 * MINUTE_MS);
    expect(final).toEqual(expectedByAddress([...a, ...b, ...c]));
  });

  it("changes nothing when the same payload is queued again after it was redriven", async () => {
    const flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
    const d = redriveEvents(6, 5);
    const body = dataRecord(encodeSubscriptionData(payloadOf(STREAM, d)));
    await send(body);
    const before = total(await storedPackets(flows, CLUSTER, T0, T0 + 10 * MINUTE_MS));
    await redriveCli([]);
    await send(body);
    const again = await redriveCli([]);
    expect(again.redriven).toBe(1);
    expect(again.flowsApplied).toBe(0);
    expect(total(await storedPackets(flows, CLUSTER, T0, T0 + 10 * MINUTE_MS))).toBe(before + d.length);
  });

  it("keeps a payload whose alert another run of it holds, says until when, and sends it once that has passed", async () => {
    const failures = await localQueue(sqs, "held-alert-failures");
    const depth = async () => (await queueDepth(sqs.sqs, failures)).visible;
    // The topic is not there yet: every publish fails, as with a topic key the publisher may not use.
    const topicArn = "arn:aws:sns:eu-west-1:000000000000:calico-held-alerts";
    const args = ["--queue-url", failures, "--alerts-topic", topicArn];
    process.env.AWS_ENDPOINT_URL_SNS = sqs.endpoint;
    try {
      const events = redriveEvents(3, 40, "192.168.200.40");
      await sqs.sqs.send(
        new SendMessageCommand({
          QueueUrl: failures,
          MessageBody: dataRecord(encodeSubscriptionData(payloadOf(STREAM, events))),
        }),
      );
      const first = await redriveCli(args);
      expect(first).toMatchObject({
        redriven: 0,
        alertsOpened: 1,
        alertsSent: 0,
        problems: [{ deleted: false }],
      });
      const flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
      const listed = await flows.queryAlerts({
        cluster: CLUSTER,
        since: new Date(T0).toISOString(),
        until: new Date(T0 + 60 * MINUTE_MS).toISOString(),
      });
      const alert = listed.items.find((a) => a.src.ip === "192.168.200.40") as AlertRecord;
      expect(alert.delivery).toBe("pending");

      // The topic fixed, redriven again at once: the first run's lease on sending the alert has not run out, and
      // that run cannot be told from one still publishing. Nothing is sent: the message stays, and says why.
      const watch = await subscribeQueue(sqs, await createTopic(sqs, "calico-held-alerts"), "held-watch");
      const second = await redriveCli(args);
      expect(second).toMatchObject({ redriven: 0, alertsOpened: 0, alertsSent: 0 });
      expect(second.problems).toEqual([
        expect.objectContaining({
          kind: "failed",
          deleted: false,
          reason: expect.stringMatching(
            new RegExp(
              `^alert ${alert.id} \\(opened ${alert.openedAt}, held until \\S+\\) not sent: .* redrive again after `,
            ),
          ),
        }),
      ]);
      expect(describeRedrive(second)).toContain("left in the queue");
      expect(await depth()).toBe(1);
      expect(await drainQueue(sqs, watch)).toEqual([]);

      // Once the lease has run out, the next redrive sends it, and deletes the message.
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
      const third = await redriveCli(args);
      expect(third).toMatchObject({ redriven: 1, alertsSent: 1, problems: [] });
      expect(await depth()).toBe(0);
      expect(await drainQueue(sqs, watch)).toHaveLength(1);
    } finally {
      vi.useRealTimers();
      delete process.env.AWS_ENDPOINT_URL_SNS;
    }
  });
});

describe("progress", () => {
  it("prints a plain line of what was taken and stored while it runs when stderr is not a terminal, none with --quiet", async () => {
    const run = async (args: string[]) => {
      for (let i = 0; i < 3; i++)
        await send(dataRecord(encodeSubscriptionData(payloadOf(STREAM, redriveEvents(3, 20 + i)))));
      const written: string[] = [];
      let stopped = 0;
      const stream = Object.assign(new PassThrough(), { isTTY: false });
      stream.write = ((text: string) => written.push(text) > 0) as typeof stream.write;
      await redriveCli(args, {
        progress: {
          stream,
          // A tick a millisecond: each message's round trips through SQS and dynalite take longer.
          every: (_ms, tick) => {
            const timer = setInterval(tick, 1);
            return () => {
              clearInterval(timer);
              stopped++;
            };
          },
        },
      });
      return { written, stopped };
    };
    const shown = await run([]);
    expect(shown.stopped).toBe(1);
    expect(shown.written.length).toBeGreaterThan(0);
    for (const line of shown.written) {
      expect(line).toMatch(
        /^progress after \d+s: \d+ messages taken \(\d+ redriven, \d+ problems\), \d+ log events, /,
      );
      expect(line).not.toContain("\u001b");
    }
    expect(await run(["--quiet"])).toEqual({ written: [], stopped: 0 });
  });
});
