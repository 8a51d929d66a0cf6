// `calico-flows redrive` stopped by a signal (Ctrl-C, a Job's SIGTERM), against a local SQS (fauxqs): it finishes the
// message in hand, takes no other, gives back at once what it took and did not redrive, prints its summary and exits
// as a shell reports the signal. A message it took and kept stays hidden for --visibility-timeout otherwise, and a
// redrive meanwhile reads the queue as drained.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  describeRedrive,
  type RedriveSummary,
  redrive,
  redriveFailed,
  registerRedrive,
} from "../../cli/commands/redrive.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { payloadOf } from "../backfill/fixtures.ts";
import { BIN, ROOT, SAMPLE } from "../cli/run.ts";
import { type LocalSns, REGION, startLocalSns } from "../support/fauxqs.ts";
import { dataRecord, localQueue, queueDepth, redriveEvents, STREAM } from "./fixtures.ts";

const PODS = join(SAMPLE, "pods.json");

let local: LocalSns;
let dir: string;

beforeAll(async () => {
  local = await startLocalSns();
  dir = mkdtempSync(join(tmpdir(), "cf-redrive-signals-"));
});

afterAll(async () => {
  await local?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

async function send(url: string, body: string): Promise<string> {
  const sent = await local.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
  return sent.MessageId as string;
}

const queued = (url: string) => queueDepth(local.sqs, url);

/** An on-failure record of three events in `minute`, stored by any redrive. */
const storable = (minute: number) =>
  dataRecord(encodeSubscriptionData(payloadOf(STREAM, redriveEvents(3, minute))));
/** An on-failure record whose payload is not base64 gzip: a redrive reports it and keeps it. */
const corrupt = () => dataRecord("bm90IGd6aXA=", "CorruptPayloadError", "not gzip");

describe("calico-flows redrive stopped by a signal", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)(
    "on %s gives back the message it kept, prints its summary and exits %i",
    async (signal, status) => {
      const url = await localQueue(local, `calico-flows-ingest-failures-${signal.toLowerCase()}`);
      await send(url, storable(0));
      const kept = await send(url, corrupt());
      const child = spawn(
        process.execPath,
        [
          BIN,
          "redrive",
          "--queue-url",
          url,
          "--cluster",
          "prod",
          "--store",
          join(dir, signal),
          "--pods",
          PODS,
          "--quiet",
          // Long enough that the signal comes while it waits for more messages, well before the wait ends.
          "--wait-seconds",
          "5",
        ],
        {
          cwd: ROOT,
          env: { ...process.env, AWS_ENDPOINT_URL_SQS: local.endpoint, AWS_REGION: REGION },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
      // Both taken, the storable one deleted, the corrupt one kept (hidden): the run now waits on its next receive.
      const until = Date.now() + 20_000;
      let state = await queued(url);
      while (!(state.visible === 0 && state.hidden === 1) && Date.now() < until) {
        await sleep(25);
        state = await queued(url);
      }
      expect(state).toEqual({ visible: 0, hidden: 1 });
      child.kill(signal);

      expect(await exited).toBe(status);
      expect(stderr).toMatch(/^interrupted: /m);
      expect(stderr).toMatch(/^redrove 1 of 2 messages: 3 log events/m);
      expect(stderr).toContain(`message ${kept}: corrupt: `);
      // Given back at once: the next redrive finds it, and nothing else.
      expect(await queued(url)).toEqual({ visible: 1, hidden: 0 });
    },
  );

  it("finishes the message in hand, gives back the others it received untouched, and a rerun redrives them", async () => {
    const url = await localQueue(local, "calico-flows-ingest-failures-in-hand");
    await send(url, storable(10));
    await send(url, storable(11));
    await send(url, storable(12));
    const stop = new AbortController();
    // fauxqs itself, with the stop coming as the first message (of a page of three) is deleted.
    const sqs = new SQSClient({ endpoint: local.endpoint, region: REGION });
    sqs.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === "DeleteMessageCommand") stop.abort();
        return out;
      },
      { step: "initialize" },
    );
    const store = join(dir, "in-hand");
    const run = async (signal?: AbortSignal): Promise<RedriveSummary> => {
      const program = new Command("calico-flows").exitOverride();
      registerRedrive(program);
      const command = program.commands.find((c) => c.name() === "redrive") as Command;
      let summary: RedriveSummary | undefined;
      command.action(async (raw: Record<string, unknown>) => {
        summary = await redrive(raw, { sqs, signal });
      });
      await program.parseAsync(
        [
          "redrive",
          "--queue-url",
          url,
          "--cluster",
          "prod",
          "--store",
          store,
          "--pods",
          PODS,
          "--quiet",
          "--wait-seconds",
          "0",
        ],
        { from: "user" },
      );
      if (summary === undefined) throw new Error("redrive did not run");
      return summary;
    };
    try {
      const stopped = await run(stop.signal);
      expect(stopped).toMatchObject({ received: 1, redriven: 1, events: 3, interrupted: true, problems: [] });
      expect(redriveFailed(stopped)).toBe(true);
      expect(describeRedrive(stopped)).toBe(
        "redrove 1 of 1 messages: 3 log events (0 already counted), 3 calico records (0 malformed), " +
          "1 flow updates (0 already stored), 1 alerts\n" +
          "stopped by a signal before the queue was drained: messages may be left in it; run redrive again\n",
      );
      expect(await queued(url)).toEqual({ visible: 2, hidden: 0 });

      const rest = await run();
      expect(rest).toMatchObject({ received: 2, redriven: 2, events: 6, eventsAlreadyCounted: 0 });
      expect(rest.interrupted).toBe(false);
      expect(await queued(url)).toEqual({ visible: 0, hidden: 0 });
    } finally {
      sqs.destroy();
    }
  });
});
