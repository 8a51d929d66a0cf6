// `calico-flows redrive` against a scripted on-failure queue, which answers each request as SQS may (fewer messages
// than queued, a message again once its visibility ran out, a DeleteMessage refused), with the store in dynalite: the
// payloads the ingest function stored in part under the stack's settings, the summary's counts, when the run stops,
// and what it says of the alerts it opened without a topic.
import type { Message, SQSClient } from "@aws-sdk/client-sqs";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  describeRedrive,
  type RedriveIo,
  type RedriveSummary,
  redriveFailed,
  registerRedrive,
} from "../../cli/commands/redrive.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { loadIngestConfig } from "../../functions/ingest/config.ts";
import { createRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { type CwEvent, calicoLine, payloadOf, storedPackets, T0, total } from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { HalfWrittenStore } from "../support/half-written-store.ts";
import { dataRecord, redriveEvents, STREAM } from "./fixtures.ts";

const CLUSTER = "prod";
const PODS = new URL("../../examples/demo/pods.json", import.meta.url).pathname;

let ts: TestStore;

beforeAll(async () => {
  ts = await startTestStore();
  process.env.AWS_ENDPOINT_URL_DYNAMODB = ts.endpoint;
});
afterAll(async () => {
  await ts?.close();
});

/** What the scripted queue was asked: the receipt handles deleted and made visible again. */
interface Queue {
  sqs: SQSClient;
  deleted: string[];
  madeVisible: string[];
  /** Receives answered so far. */
  receives: number;
}

/**
 * A queue whose receives answer `pages` in turn (then nothing): message ids, each with a new receipt handle, as SQS
 * hands a message out again. `refuseDeletes`: every DeleteMessage fails, as with an expired receipt handle.
 */
function scriptedQueue(pages: string[][], bodies: Record<string, string>, refuseDeletes = false): Queue {
  const queue: Queue = { sqs: undefined as unknown as SQSClient, deleted: [], madeVisible: [], receives: 0 };
  const send = async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
    switch (command.constructor.name) {
      case "ReceiveMessageCommand": {
        const ids = pages[queue.receives++] ?? [];
        const messages: Message[] = ids.map((id) => ({
          MessageId: id,
          ReceiptHandle: `${id}@${queue.receives}`,
          Body: bodies[id],
        }));
        return { Messages: messages };
      }
      case "DeleteMessageCommand":
        if (refuseDeletes) {
          throw Object.assign(new Error("The receipt handle has expired."), {
            name: "ReceiptHandleIsInvalid",
          });
        }
        queue.deleted.push(String(command.input.ReceiptHandle));
        return {};
      case "ChangeMessageVisibilityCommand":
        queue.madeVisible.push(String(command.input.ReceiptHandle));
        return {};
      default:
        throw new Error(`unexpected ${command.constructor.name}`);
    }
  };
  queue.sqs = { send, destroy: () => {} } as unknown as SQSClient;
  return queue;
}

/** Runs `calico-flows redrive ARGS` through its commander definition into `table`, returning the summary. */
async function redriveCli(
  table: string,
  queue: Queue,
  args: readonly string[] = [],
  io: RedriveIo = {},
): Promise<RedriveSummary> {
  const program = new Command("calico-flows").exitOverride();
  registerRedrive(program);
  const command = program.commands.find((c) => c.name() === "redrive") as Command;
  const { redrive } = await import("../../cli/commands/redrive.ts");
  let summary: RedriveSummary | undefined;
  command.action(async (raw: Record<string, unknown>) => {
    summary = await redrive(raw, { sqs: queue.sqs, ...io });
  });
  await program.parseAsync(
    [
      "redrive",
      "--queue-url",
      "https://sqs.eu-west-1.amazonaws.com/123456789012/calico-flows-ingest-failures",
      "--table",
      table,
      "--cluster",
      CLUSTER,
      "--pods",
      PODS,
      "--wait-seconds",
      "0",
      "--quiet",
      ...args,
    ],
    { from: "user" },
  );
  if (summary === undefined) throw new Error("redrive did not run");
  return summary;
}

/** The error the failed invocation's store gave: its retries exhausted. */
const storeUnavailable = () =>
  Object.assign(new Error("UpdateItem failed after 10 tries (throttled)"), { name: "StoreUnavailableError" });

let sequence = 0;

/** A denial a second for a minute from `from`, to two destinations in turn: two flows a minute, four with 30 s buckets. */
function minuteOfDenials(from: number): CwEvent[] {
  return Array.from({ length: 60 }, (_, i) => {
    const at = from + i * 1_000;
    sequence++;
    return {
      id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
      timestamp: at,
      stream: STREAM,
      message: calicoLine(at, STREAM, "192.168.200.10", i % 2 ? "192.168.201.20" : "192.168.201.21", 5432),
    };
  });
}

const packetsIn = async (table: string) =>
  total(
    await storedPackets(
      new DynamoFlowStore({ client: ts.client, tableName: table }),
      CLUSTER,
      T0 - MINUTE_MS,
      T0 + 60 * MINUTE_MS,
    ),
  );

/** The alerts of the tests' hour in `table`. */
const alertsOf = (table: string) =>
  new DynamoFlowStore({ client: ts.client, tableName: table }).queryAlerts({
    cluster: CLUSTER,
    since: new Date(T0).toISOString(),
    until: new Date(T0 + 60 * MINUTE_MS).toISOString(),
  });

const body = (events: readonly CwEvent[]) => dataRecord(encodeSubscriptionData(payloadOf(STREAM, events)));

describe("a payload the ingest function stored in part under the stack's settings", () => {
  it.each([
    ["aggregationSeconds 30, redriven with the CLI's default buckets", "30", []],
    ["aggregationSeconds 60, redriven with --bucket-seconds 30", "60", ["--bucket-seconds", "30"]],
  ])("is redriven exactly once: %s", async (_, aggregation, args) => {
    const table = await ts.freshTable();
    const env = {
      TABLE_NAME: table,
      CLUSTER_NAME: CLUSTER,
      ATTRIBUTION: "none",
      AGGREGATION_SECONDS: aggregation,
    };
    const runtime = createRuntime(loadIngestConfig(env));
    const failing = {
      ...runtime,
      deps: { ...runtime.deps, store: new HalfWrittenStore(runtime.deps.store, storeUnavailable) },
    };
    const events = minuteOfDenials(T0);
    const record = body(events);
    const data = JSON.parse(record).requestPayload.awslogs.data as string;
    await expect(ingestEvent({ awslogs: { data } }, failing)).rejects.toThrow(/UpdateItem failed/);
    expect(await packetsIn(table)).toBeLessThan(events.length);

    const summary = await redriveCli(table, scriptedQueue([["m1"]], { m1: record }), args);
    expect(await packetsIn(table)).toBe(events.length);
    expect(summary).toMatchObject({ received: 1, redriven: 1, problems: [] });
    const own = args.length === 0 ? "60" : "30";
    expect(describeRedrive(summary)).toContain(
      `1 payload was stored with the settings its failed run had claimed it under: --bucket-seconds ${aggregation} ` +
        `(this run: --bucket-seconds ${own})`,
    );
  });
});

describe("the summary and the end of the run", () => {
  it("counts a stored payload whose DeleteMessage fails once, and keeps it for the next redrive", async () => {
    const table = await ts.freshTable();
    // Three ports: three flows.
    const events = [5432, 6379, 8080].map((port) => {
      const [e] = redriveEvents(1, 1, "192.168.200.30") as [CwEvent];
      return { ...e, message: e.message.replace("DPT=5432", `DPT=${port}`) };
    });
    const queue = scriptedQueue([["m1"]], { m1: body(events) }, true);
    const summary = await redriveCli(table, queue);
    expect(summary).toMatchObject({
      received: 1,
      redriven: 0,
      events: 3,
      flowsApplied: 3,
      flowsDuplicate: 0,
    });
    expect(summary.problems).toMatchObject([
      {
        messageId: "m1",
        kind: "failed",
        deleted: false,
        reason: expect.stringMatching(/^stored, but not deleted/),
      },
    ]);
    expect(queue.madeVisible).toEqual(["m1@1"]);
  });

  it("goes on past a receive that returns only messages it has taken, and gives back each under its last handle", async () => {
    const table = await ts.freshTable();
    const bodies: Record<string, string> = { c1: dataRecord("%%% not base64 %%%") };
    const good = ["g1", "g2", "g3", "g4", "g5", "g6"];
    good.forEach((id, i) => {
      bodies[id] = body(redriveEvents(2, 10 + i));
    });
    // c1 is handed out again once its visibility ran out, alone in a receive, with six messages still queued.
    const queue = scriptedQueue([["c1", "g1"], ["g2"], ["c1"], ["g3", "g4"], ["g5", "g6"]], bodies);
    const summary = await redriveCli(table, queue);
    expect(summary).toMatchObject({ received: 7, redriven: 6, untaken: false });
    expect(summary.problems.map((p) => p.messageId)).toEqual(["c1"]);
    expect(queue.deleted).toHaveLength(6);
    // The handle of its last receive: an earlier one no longer changes its visibility.
    expect(queue.madeVisible).toEqual(["c1@3"]);
    expect(describeRedrive(summary)).not.toMatch(/left untaken/);
  });

  it("stops when receives return only messages it has taken, and says that others may be left", async () => {
    const table = await ts.freshTable();
    const bodies = { c1: dataRecord("%%% not base64 %%%"), g1: body(redriveEvents(2, 20)) };
    const queue = scriptedQueue([["c1"], ...Array.from({ length: 20 }, () => ["c1"]), ["g1"]], bodies);
    const summary = await redriveCli(table, queue);
    expect(summary).toMatchObject({ received: 1, redriven: 0, untaken: true });
    expect(queue.receives).toBeLessThan(20);
    expect(describeRedrive(summary)).toMatch(
      /^stopped after \d+ receives in a row returned only messages this run had taken: messages may be left untaken in the queue; run redrive again$/m,
    );
    expect(redriveFailed(summary)).toBe(true);
  });
});

describe("alerts opened without --alerts-topic", () => {
  const internalDenials = (minute: number) => redriveEvents(3, minute, "192.168.200.50");

  it("are named, with what will send them: nothing once their windows have ended (exit status 1)", async () => {
    const table = await ts.freshTable();
    const summary = await redriveCli(table, scriptedQueue([["m1"]], { m1: body(internalDenials(30)) }));
    expect(summary).toMatchObject({ redriven: 1, alertsOpened: 1, alertsSent: 0 });
    const [alert] = (await alertsOf(table)).items;
    expect(alert?.delivery).toBe("pending");
    const text = describeRedrive(summary);
    expect(text).toContain(
      `warning: 1 alert pending, not published (no --alerts-topic): ${alert?.id} (opened ${alert?.openedAt}, ` +
        `window ended ${alert?.windowEnd})`,
    );
    expect(text).toMatch(/nothing will publish them/);
    expect(redriveFailed(summary)).toBe(true);
  });

  it("say that live ingest publishes one whose window is still open only if its key is denied again in it", async () => {
    const table = await ts.freshTable();
    const summary = await redriveCli(table, scriptedQueue([["m1"]], { m1: body(internalDenials(31)) }), [], {
      now: () => T0 + 32 * MINUTE_MS,
    });
    expect(summary.alertsOpened).toBe(1);
    const text = describeRedrive(summary);
    expect(text).toMatch(
      /^warning: 1 alert pending, not published \(no --alerts-topic\): \S+ \(opened \S+, window ends \S+\)/m,
    );
    expect(text).toMatch(
      /the ingest function publishes one only if a denial of its key reaches it before its window ends/,
    );
    expect(redriveFailed(summary)).toBe(false);
  });

  it("name an alert the ingest function opened and could not publish, of a payload they delete, once", async () => {
    const table = await ts.freshTable();
    const runtime = createRuntime(
      loadIngestConfig({
        TABLE_NAME: table,
        CLUSTER_NAME: CLUSTER,
        ATTRIBUTION: "none",
        ALERTS_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:calico-flows-alerts",
      }),
    );
    const down: AlertPublisher = {
      publishAlert: async () => {
        throw new Error("KMS key disabled");
      },
      publishSummary: async () => {
        throw new Error("KMS key disabled");
      },
      publishPanic: async () => {},
    };
    const record = body(internalDenials(40));
    const data = JSON.parse(record).requestPayload.awslogs.data as string;
    // Its flows stored, its alert opened and left pending: the payload goes to the queue for that alone.
    await expect(
      ingestEvent({ awslogs: { data } }, { ...runtime, deps: { ...runtime.deps, sink: down } }),
    ).rejects.toThrow(/pending/);

    // Queued twice (Lambda delivers at least once): named once.
    const queue = scriptedQueue([["m1", "m2"]], { m1: record, m2: record });
    const summary = await redriveCli(table, queue, [], { now: () => T0 + 60 * MINUTE_MS });
    expect(summary).toMatchObject({ redriven: 2, alertsOpened: 0, flowsApplied: 0 });
    const [alert] = (await alertsOf(table)).items;
    expect(alert?.delivery).toBe("pending");
    expect(summary.alertsUnsent).toEqual([
      { id: alert?.id, openedAt: alert?.openedAt, windowEnd: alert?.windowEnd, windowEnded: true },
    ]);
    expect(redriveFailed(summary)).toBe(true);
  });

  it("name the alerts of a stored payload whose DeleteMessage fails", async () => {
    const table = await ts.freshTable();
    const queue = scriptedQueue([["m1"]], { m1: body(internalDenials(50)) }, true);
    const summary = await redriveCli(table, queue, [], { now: () => T0 + 60 * MINUTE_MS });
    expect(summary).toMatchObject({ redriven: 0, alertsOpened: 1 });
    const [alert] = (await alertsOf(table)).items;
    expect(summary.alertsUnsent.map((a) => a.id)).toEqual([alert?.id]);
    expect(describeRedrive(summary)).toMatch(/^warning: 1 alert pending, not published/m);
  });
});
