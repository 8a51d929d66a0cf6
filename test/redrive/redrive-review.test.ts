// `calico-flows redrive` against its contract, through the real command (its own SQS client, its exit code, its
// report), with queues shaped as Lambda's on-failure destination fills them: generated mixes of captured payloads
// (never stored, stored by live ingest, half stored, batched otherwise by live ingest, queued twice), corrupt
// ones, control messages and messages that are no invocation records at all. Every valid payload ends stored
// exactly once, a message goes only once its payload is stored, corrupt ones stay unless --delete-corrupt,
// --max is honoured, and the report and exit code say what happened.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  ChangeMessageVisibilityCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { Command } from "commander";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerRedrive } from "../../cli/commands/redrive.ts";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { ingestDelivery, MINUTE_MS } from "../../functions/core/coverage.ts";
import type { IngestDeps } from "../../functions/core/ingest.ts";
import { decodeDelivery, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import {
  type CwEvent,
  calicoLine,
  expectedByAddress,
  ingestDeps,
  payloadOf,
  storedByAddress,
  T0,
} from "../backfill/fixtures.ts";
import { controlMessageData } from "../support/deliveries.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import { type LocalSns, startLocalSns, startFaultProxy as startSqsProxy } from "../support/fauxqs.ts";
import { HalfWrittenStore } from "../support/half-written-store.ts";
import { dataRecord, invocationRecord, localQueue } from "./fixtures.ts";

const STREAM = "ip-192-168-74-5";
const DST = "192.168.201.20";
const POISON = "192.168.77.77";
const WINDOW: [number, number] = [T0 - MINUTE_MS, T0 + 10 * MINUTE_MS];

let local: LocalSns;
let ts: TestStore;
let proxy: FaultProxy;
let dir: string;
let flows: DynamoFlowStore;
let coverage: DynamoCoverageStore;
let sequence = 0;
let runs = 0;

beforeAll(async () => {
  [local, ts] = await Promise.all([startLocalSns(), startTestStore()]);
  proxy = await startFaultProxy(ts.endpoint);
  // The command makes its own clients, from the SDK's standard configuration.
  process.env.AWS_ENDPOINT_URL_DYNAMODB = proxy.endpoint;
  process.env.AWS_ENDPOINT_URL_SQS = local.endpoint;
  flows = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
  coverage = new DynamoCoverageStore({ client: ts.client, tableName: ts.tableName });
  dir = mkdtempSync(join(tmpdir(), "cf-redrive-review-"));
});

afterAll(async () => {
  await proxy?.close();
  await Promise.all([local?.close(), ts?.close()]);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function event(at: number, src: string, port: number, calico = true): CwEvent {
  sequence++;
  return {
    id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
    timestamp: at,
    stream: STREAM,
    message: calico
      ? calicoLine(at, STREAM, src, DST, port)
      : `Apr 19 04:50:0${sequence % 10} ${STREAM} systemd[1]: Started session ${sequence} of user ec2-user.`,
  };
}

const isCalico = (e: CwEvent) => e.message.includes("calico-packet");
/** Flow records one batch of these events makes (their addresses are unknown to every directory: one each). */
const recordsOf = (events: readonly CwEvent[]) => expectedByAddress(events.filter(isCalico)).size;
const byTime = (a: CwEvent, b: CwEvent) => a.timestamp - b.timestamp;

/** What the ingest function does with a delivery of these events: decoded from its bytes, then ingested. */
function liveIngest(events: readonly CwEvent[], deps: IngestDeps) {
  const {
    logGroup,
    logStream,
    events: delivered,
  } = decodeDelivery(encodeSubscriptionData(payloadOf(STREAM, events)));
  return ingestDelivery({ logGroup, logStream, logEvents: delivered }, deps, coverage, "live");
}

const gz = (text: string) => gzipSync(text).toString("base64");

/** Messages whose payload cannot be stored, ever: all of them are reported as corrupt. */
const CORRUPT: Record<string, () => string> = {
  "not base64": () => dataRecord("%%% this is not base64 at all %%%"),
  "not gzip": () => dataRecord(Buffer.from("plain text where gzip should be").toString("base64")),
  "not JSON inside": () => dataRecord(gz("{ not json")),
  "wrong shape": () =>
    dataRecord(gz(JSON.stringify({ messageType: "DATA_MESSAGE", owner: 7, logEvents: "x" }))),
  "no events": () => dataRecord(encodeSubscriptionData({ ...payloadOf(STREAM, []), logEvents: [] })),
  "unknown messageType": () =>
    dataRecord(
      encodeSubscriptionData({
        ...payloadOf(STREAM, [event(T0, "192.168.250.1", 22)]),
        messageType: "DATA_MESSAGE_V2",
      }),
    ),
  "data not a string": () => dataRecord(12345),
  "no data": () => invocationRecord({ awslogs: {} }),
  "awslogs null": () => invocationRecord({ awslogs: null }),
  "awslogs a string": () => invocationRecord({ awslogs: "H4sIAAAA" }),
  "requestPayload null": () => invocationRecord(null),
  "an S3 event": () =>
    invocationRecord({ Records: [{ eventSource: "aws:s3", s3: { object: { key: "k" } } }] }),
  // Not invocation records at all.
  "plain text": () => "hello, this is not an invocation record",
  "JSON array": () => "[1,2,3]",
  "JSON null": () => "null",
  "JSON string": () => JSON.stringify("requestPayload"),
  "SNS notification": () =>
    JSON.stringify({
      Type: "Notification",
      MessageId: "m-1",
      TopicArn: "arn:aws:sns:eu-west-1:123456789012:t",
      Message: dataRecord("H4sI"),
    }),
  // Without a requestContext too (one with it is a record whose payload Lambda dropped: redrive-failure-path.test.ts).
  "object without requestPayload": () => JSON.stringify({ version: "1.0", responsePayload: null }),
};

/** Of those, the messages that are no invocation record: they carry no original error to report. */
const NOT_RECORDS = new Set([
  "plain text",
  "JSON array",
  "JSON null",
  "JSON string",
  "SNS notification",
  "object without requestPayload",
]);

const CONTROL = () => dataRecord(controlMessageData(T0));

interface Report {
  received: number;
  redriven: number;
  events: number;
  eventsAlreadyCounted: number;
  calico: number;
  malformed: number;
  flowsApplied: number;
  flowsDuplicate: number;
  alerts: number;
  published: number;
  control: number;
  /** Alerts pending, not published (no --alerts-topic), as the warning counts them. */
  unsent: number;
  problems: { messageId: string; kind: "corrupt" | "still fails"; reason: string; deleted: boolean }[];
  exitCode: number;
}

const SUMMARY =
  /^redrove (\d+) of (\d+) messages: (\d+) log events \((\d+) already counted\), (\d+) calico records \((\d+) malformed\), (\d+) flow updates \((\d+) already stored\), (\d+) alerts(?: \((\d+) published\))?(?:, (\d+) control messages)?$/m;
const UNSENT = /^warning: (\d+) alerts? pending, not published \(no --alerts-topic\): .*$/gm;
const PROBLEM =
  /^message (\S+): (corrupt|still fails): ([\s\S]*?) — (deleted|left in the queue)(; --delete-corrupt removes it)?$/gm;

/** Runs `calico-flows redrive ARGS` as the CLI does (its action, its clients), and reads its report. */
async function redriveCli(queueUrl: string, cluster: string, args: readonly string[]): Promise<Report> {
  const program = new Command("calico-flows").exitOverride();
  registerRedrive(program);
  let text = "";
  const write = process.stderr.write;
  process.exitCode = undefined;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  let exitCode: number;
  try {
    await program.parseAsync(
      [
        "redrive",
        "--queue-url",
        queueUrl,
        "--table",
        ts.tableName,
        "--cluster",
        cluster,
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
  } finally {
    process.stderr.write = write;
    exitCode = Number(process.exitCode ?? 0);
    process.exitCode = undefined;
  }
  const s = SUMMARY.exec(text);
  if (s === null) throw new Error(`no summary in the report:\n${text}`);
  const n = (i: number) => Number(s[i] ?? 0);
  const problems = [...text.matchAll(PROBLEM)].map((p) => ({
    messageId: p[1] as string,
    kind: p[2] as "corrupt" | "still fails",
    reason: p[3] as string,
    deleted: p[4] === "deleted",
  }));
  // Every problem line was read (a reason may go on over several lines).
  expect(text.match(/^message \S+: /gm)?.length ?? 0, text).toBe(problems.length);
  return {
    redriven: n(1),
    received: n(2),
    events: n(3),
    eventsAlreadyCounted: n(4),
    calico: n(5),
    malformed: n(6),
    flowsApplied: n(7),
    flowsDuplicate: n(8),
    alerts: n(9),
    published: n(10),
    control: n(11),
    unsent: [...text.matchAll(UNSENT)].reduce((sum, w) => sum + Number(w[1]), 0),
    problems,
    exitCode,
  };
}

const newQueue = () => localQueue(local, `calico-flows-ingest-failures-${++runs}`);

async function send(queueUrl: string, body: string): Promise<string> {
  const sent = await local.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
  return sent.MessageId as string;
}

/** The ids of every message in the queue, all of them visible again afterwards. */
async function queuedIds(queueUrl: string): Promise<string[]> {
  const taken: Message[] = [];
  for (;;) {
    const page = await local.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 120 }),
    );
    if ((page.Messages ?? []).length === 0) break;
    taken.push(...(page.Messages ?? []));
  }
  for (const m of taken) {
    await local.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: queueUrl,
        ReceiptHandle: m.ReceiptHandle,
        VisibilityTimeout: 0,
      }),
    );
  }
  return taken.map((m) => m.MessageId as string).sort();
}

/** A captured payload of the generated queue, and what live ingest had done with it. */
interface Valid {
  events: CwEvent[];
  pre: "none" | "live" | "half" | "overlap";
  /** Events a differently batched live delivery had stored (overlap): shared ones, then its own. */
  shared: CwEvent[];
  extra: CwEvent[];
  /** Flow records this payload's own contribution had written before the redrive. */
  prewritten: number;
  /** Events of this payload owned by another contribution, so not stored under its own. */
  kept: CwEvent[];
}

type Label = { kind: "valid"; index: number } | { kind: "corrupt"; name: string } | { kind: "control" };

const validSpec = fc.record({
  ports: fc.array(fc.constantFrom(5432, 8080, 0), { minLength: 1, maxLength: 6 }),
  minute: fc.integer({ min: 0, max: 3 }),
  spread: fc.constantFrom(4_000, 25_000),
  pre: fc.constantFrom("none", "live", "half", "overlap") as fc.Arbitrary<Valid["pre"]>,
  copies: fc.integer({ min: 1, max: 2 }),
});

const scenario = fc.record({
  valid: fc.array(validSpec, { minLength: 1, maxLength: 4 }),
  corrupt: fc.array(fc.constantFrom(...Object.keys(CORRUPT)), { maxLength: 3 }),
  control: fc.boolean(),
  deleteCorrupt: fc.boolean(),
  max: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
  order: fc.array(fc.double({ noNaN: true }), { minLength: 20, maxLength: 20 }),
});

/**
 * Alerts of the payload's own contribution, opened by live ingest or by a redrive of it, one per port of its calico
 * events (its source is its own): those of ports its overlapping live delivery had opened are that delivery's.
 */
function ownAlerts(v: Valid): number {
  const ports = (events: readonly CwEvent[]) =>
    new Set(events.filter(isCalico).map((e) => /DPT=(\d+)/.exec(e.message)?.[1]));
  const shared = ports(v.shared);
  return [...ports(v.kept)].filter((p) => !shared.has(p)).length;
}

/** What the redrive of these messages must report, given which contributions earlier runs completed. */
function expectedReport(labels: readonly Label[], valid: readonly Valid[], done: Set<number>) {
  const out = {
    redriven: 0,
    control: 0,
    events: 0,
    alreadyCounted: 0,
    calico: 0,
    applied: 0,
    records: 0,
    unsent: 0,
  };
  const named = new Set<number>();
  for (const l of labels) {
    if (l.kind === "control") out.control++;
    if (l.kind !== "valid") continue;
    const v = valid[l.index] as Valid;
    out.redriven++;
    out.events += v.events.length;
    out.alreadyCounted += v.events.length - v.kept.length;
    out.calico += v.kept.filter(isCalico).length;
    out.records += recordsOf(v.kept);
    if (!done.has(l.index)) out.applied += recordsOf(v.kept) - v.prewritten;
    done.add(l.index);
    // Without --alerts-topic, pending: named once a run, whichever run of the payload opened them.
    if (!named.has(l.index)) out.unsent += ownAlerts(v);
    named.add(l.index);
  }
  return out;
}

describe("calico-flows redrive, reviewed against its contract", () => {
  it("stores every captured payload once, deletes only what is stored, keeps corrupt ones, honours --max", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const cluster = `review-${runs + 1}`;
        const queueUrl = await newQueue();
        const deps = ingestDeps(flows, cluster);

        // The payloads, and what live ingest did with each before its invocation was given up on.
        const valid: Valid[] = [];
        const liveStored: CwEvent[] = [];
        for (const [i, spec] of sc.valid.entries()) {
          const src = `192.168.200.${i + 1}`;
          const base = T0 + spec.minute * MINUTE_MS + 1_000;
          const events = spec.ports.map((port, j) => event(base + j * spec.spread, src, port, port !== 0));
          const v: Valid = { events, pre: spec.pre, shared: [], extra: [], prewritten: 0, kept: events };
          if (spec.pre === "live") {
            await liveIngest(events, deps);
            v.prewritten = recordsOf(events);
          } else if (spec.pre === "half") {
            const half = new HalfWrittenStore(flows);
            await expect(liveIngest(events, ingestDeps(half, cluster))).rejects.toThrow(/partial write/);
            v.prewritten = half.written;
          } else if (spec.pre === "overlap") {
            v.shared = events.slice(0, Math.ceil(events.length / 2));
            v.extra = [event(base + 500, `192.168.210.${i + 1}`, 6379)];
            await liveIngest([...v.shared, ...v.extra].sort(byTime), deps);
            liveStored.push(...v.shared, ...v.extra);
            v.kept = events.filter((e) => !v.shared.includes(e));
          }
          if (spec.pre === "live") liveStored.push(...events);
          valid.push(v);
        }

        // The queue, in a generated order.
        const items: { body: string; label: Label }[] = [];
        for (const [i, spec] of sc.valid.entries()) {
          const body = dataRecord(encodeSubscriptionData(payloadOf(STREAM, (valid[i] as Valid).events)));
          for (let c = 0; c < spec.copies; c++) items.push({ body, label: { kind: "valid", index: i } });
        }
        for (const name of sc.corrupt)
          items.push({ body: (CORRUPT[name] as () => string)(), label: { kind: "corrupt", name } });
        if (sc.control) items.push({ body: CONTROL(), label: { kind: "control" } });
        const order = items.map((item, i) => ({ item, key: sc.order[i] ?? i }));
        order.sort((a, b) => a.key - b.key);
        const labels = new Map<string, Label>();
        for (const { item } of order) labels.set(await send(queueUrl, item.body), item.label);
        const all = [...labels.keys()].sort();
        const corruptIds = all.filter((id) => labels.get(id)?.kind === "corrupt");
        const flag = sc.deleteCorrupt ? ["--delete-corrupt"] : [];
        const done = new Set<number>();

        /** Checks one run against what it took (`taken`: the ids it received). */
        const check = (report: Report, taken: readonly string[]) => {
          const takenLabels = taken.map((id) => labels.get(id) as Label);
          const want = expectedReport(takenLabels, valid, done);
          expect(report.received).toBe(taken.length);
          expect(report.redriven).toBe(want.redriven);
          expect(report.control).toBe(want.control);
          expect(report.events).toBe(want.events);
          expect(report.eventsAlreadyCounted).toBe(want.alreadyCounted);
          expect(report.calico).toBe(want.calico);
          expect(report.malformed).toBe(0);
          expect(report.flowsApplied).toBe(want.applied);
          expect(report.flowsApplied + report.flowsDuplicate).toBe(want.records);
          expect(report.published).toBe(0);
          // Problems: exactly the corrupt messages taken, each reported once, deleted only with --delete-corrupt.
          const takenCorrupt = taken.filter((id) => labels.get(id)?.kind === "corrupt").sort();
          expect(report.problems.map((p) => p.messageId).sort()).toEqual(takenCorrupt);
          for (const p of report.problems) {
            expect(p.kind).toBe("corrupt");
            expect(p.deleted).toBe(sc.deleteCorrupt);
            // An invocation record says why the ingest function gave up on it; the report repeats that.
            const name = (labels.get(p.messageId) as { name: string }).name;
            if (NOT_RECORDS.has(name)) expect(p.reason).not.toContain("ingest failed with");
            else
              expect(p.reason, name).toContain(
                "(ingest failed with RetriesExhausted, 3 attempts, StoreUnavailableError",
              );
          }
          // Without --alerts-topic every alert of the payloads stored stays unsent, and its window (around T0) has
          // ended: nothing will publish it.
          expect(report.unsent).toBe(want.unsent);
          expect(report.exitCode).toBe(
            (takenCorrupt.length > 0 && !sc.deleteCorrupt) || want.unsent > 0 ? 1 : 0,
          );
        };

        // First run, possibly limited by --max.
        const first = await redriveCli(queueUrl, cluster, [
          ...flag,
          ...(sc.max === undefined ? [] : ["--max", String(sc.max)]),
        ]);
        expect(first.received).toBe(Math.min(sc.max ?? all.length, all.length));
        const left = await queuedIds(queueUrl);
        const gone = all.filter((id) => !left.includes(id));
        const keptProblems = first.problems.filter((p) => !p.deleted).map((p) => p.messageId);
        for (const id of keptProblems) expect(left).toContain(id);
        const taken1 = [...gone, ...keptProblems];
        // Nothing was deleted that was not taken and stored (or deleted as corrupt on request).
        for (const id of gone) {
          const label = labels.get(id) as Label;
          if (label.kind === "corrupt") expect(sc.deleteCorrupt).toBe(true);
        }
        check(first, taken1);

        // Stored so far: live ingest's events, and each payload whose message is gone, once. A half-stored payload
        // still queued is left out of the comparison (which of its flows were written is the failure's choice).
        const storedSoFar = [...liveStored];
        for (const id of gone) {
          const l = labels.get(id) as Label;
          if (l.kind === "valid") storedSoFar.push(...(valid[l.index] as Valid).events);
        }
        const pendingHalf = new Set(
          valid.flatMap((v, i) =>
            v.pre === "half" &&
            !gone.some(
              (id) =>
                (labels.get(id) as Label).kind === "valid" &&
                (labels.get(id) as { index: number }).index === i,
            )
              ? [`|192.168.200.${i + 1}|`]
              : [],
          ),
        );
        const withoutPending = (m: Map<string, number>) =>
          new Map([...m].filter(([k]) => ![...pendingHalf].some((p) => k.includes(p))));
        const unique = (events: readonly CwEvent[]) => [...new Map(events.map((e) => [e.id, e])).values()];
        expect(withoutPending(await storedByAddress(flows, cluster, ...WINDOW))).toEqual(
          withoutPending(expectedByAddress(unique(storedSoFar).filter(isCalico))),
        );

        // Second run takes everything left: afterwards only the corrupt ones stay, unless deleted.
        const second = await redriveCli(queueUrl, cluster, flag);
        check(second, left);
        const everything = unique([...liveStored, ...valid.flatMap((v) => v.events)]).filter(isCalico);
        expect(await storedByAddress(flows, cluster, ...WINDOW)).toEqual(expectedByAddress(everything));
        const stays = await queuedIds(queueUrl);
        expect(stays).toEqual(sc.deleteCorrupt ? [] : corruptIds.sort());

        // Corrupt ones kept: --delete-corrupt clears them, and the store does not change.
        if (!sc.deleteCorrupt && stays.length > 0) {
          const clear = await redriveCli(queueUrl, cluster, ["--delete-corrupt"]);
          expect(clear.received).toBe(stays.length);
          expect(clear.redriven).toBe(0);
          expect(clear.problems.every((p) => p.kind === "corrupt" && p.deleted)).toBe(true);
          expect(clear.exitCode).toBe(0);
          expect(await queuedIds(queueUrl)).toEqual([]);
          expect(await storedByAddress(flows, cluster, ...WINDOW)).toEqual(expectedByAddress(everything));
        }
      }),
      {
        numRuns: 40,
        // Every kind of corrupt message at least once, kept, then cleared by --delete-corrupt.
        examples: [
          [
            {
              valid: [
                { ports: [5432, 8080, 0], minute: 1, spread: 25_000, pre: "half", copies: 2 },
                { ports: [8080], minute: 1, spread: 4_000, pre: "overlap", copies: 1 },
              ],
              corrupt: Object.keys(CORRUPT),
              control: true,
              deleteCorrupt: false,
              max: 7,
              order: Array.from({ length: 20 }, (_, i) => (i * 7) % 20),
            },
          ],
        ],
      },
    );
  });

  it("leaves a message whose store fails mid-run in the queue, and a rerun completes it exactly once", async () => {
    const cluster = `review-fault-${++runs}`;
    const queueUrl = await newQueue();
    const deps = ingestDeps(flows, cluster);
    const a = [0, 1, 2].map((j) => event(T0 + 2_000 + j * 5_000, "192.168.220.1", 5432));
    const b = [0, 1].map((j) => event(T0 + MINUTE_MS + 2_000 + j * 5_000, "192.168.220.2", 8080));
    const c = [0, 1, 2, 3].map((j) => event(T0 + 2 * MINUTE_MS + 2_000 + j * 20_000, "192.168.220.3", 5432));
    // The failing payload: flows of an ordinary source, which get written, and of the poison one, which do not.
    const p = [
      event(T0 + 3 * MINUTE_MS + 1_000, "192.168.220.4", 5432),
      event(T0 + 3 * MINUTE_MS + 2_000, POISON, 5432),
      event(T0 + 3 * MINUTE_MS + 3_000, "192.168.220.4", 8080),
    ];
    const half = new HalfWrittenStore(flows);
    await expect(liveIngest(c, ingestDeps(half, cluster))).rejects.toThrow(/partial write/);
    await liveIngest(b, deps);

    const body = (events: CwEvent[]) => dataRecord(encodeSubscriptionData(payloadOf(STREAM, events)));
    const ids: string[] = [];
    for (const events of [a, b, p, c, b]) ids.push(await send(queueUrl, body(events)));
    const idP = ids[2] as string;

    proxy.setPlan({
      error: 1,
      eligible: (operation, request) =>
        operation === "UpdateItem" && JSON.stringify(request).includes(POISON),
    });
    let first: Report;
    try {
      first = await redriveCli(queueUrl, cluster, []);
    } finally {
      proxy.setPlan({});
    }
    expect(first.received).toBe(5);
    expect(first.redriven).toBe(4);
    expect(first.problems).toHaveLength(1);
    expect(first.problems[0]).toMatchObject({ messageId: idP, kind: "still fails", deleted: false });
    expect(first.problems[0]?.reason).toMatch(/UpdateItem/);
    expect(first.exitCode).toBe(1);
    // Only the failed one is still queued, visible again at once.
    expect(await queuedIds(queueUrl)).toEqual([idP]);
    const stored = await storedByAddress(flows, cluster, ...WINDOW);
    const [poisonKey] = expectedByAddress([p[1] as CwEvent]).keys();
    expect(stored.get(poisonKey as string)).toBeUndefined();
    const noP = new Map([...stored].filter(([k]) => !k.includes("|192.168.220.4|")));
    expect(noP).toEqual(expectedByAddress([...a, ...b, ...c]));

    const second = await redriveCli(queueUrl, cluster, []);
    // The alerts it opens (a key per source and port), without --alerts-topic and in windows long ended, nothing
    // will publish.
    expect(second).toMatchObject({
      received: 1,
      redriven: 1,
      events: 3,
      eventsAlreadyCounted: 0,
      unsent: 3,
      exitCode: 1,
    });
    expect(second.problems).toEqual([]);
    expect(await queuedIds(queueUrl)).toEqual([]);
    expect(await storedByAddress(flows, cluster, ...WINDOW)).toEqual(
      expectedByAddress([...a, ...b, ...c, ...p]),
    );
  });

  it("keeps a stored payload whose delete fails, reports it as not redriven, and a rerun deletes it", async () => {
    const cluster = `review-delete-${++runs}`;
    const queueUrl = await newQueue();
    const v = [0, 1].map((j) => event(T0 + 4 * MINUTE_MS + 1_000 + j * 5_000, "192.168.230.1", 5432));
    const id = await send(queueUrl, dataRecord(encodeSubscriptionData(payloadOf(STREAM, v))));
    // SQS in front of a proxy that refuses every DeleteMessage (the one request naming a receipt handle and no
    // visibility timeout), however often the SDK retries it.
    let refuse = true;
    const sqsProxy = await startSqsProxy(local.endpoint, (params) => {
      const text = [...params.keys(), ...params.values()].join(" ");
      return refuse && text.includes("ReceiptHandle") && !text.includes("VisibilityTimeout")
        ? "fail"
        : "forward";
    });
    const viaProxy = new URL(new URL(queueUrl).pathname, sqsProxy.endpoint).toString();
    process.env.AWS_ENDPOINT_URL_SQS = sqsProxy.endpoint;
    try {
      const first = await redriveCli(viaProxy, cluster, []);
      expect(first).toMatchObject({ received: 1, redriven: 0, events: 2, exitCode: 1 });
      expect(first.problems).toMatchObject([{ messageId: id, kind: "still fails", deleted: false }]);
      expect(await queuedIds(queueUrl)).toEqual([id]);
      expect(await storedByAddress(flows, cluster, ...WINDOW)).toEqual(expectedByAddress(v));

      refuse = false;
      const second = await redriveCli(viaProxy, cluster, []);
      // The alert the first run opened is still pending, its window ended: named again, as the first run named it.
      expect(first.unsent).toBe(1);
      expect(second).toMatchObject({
        received: 1,
        redriven: 1,
        flowsApplied: 0,
        unsent: 1,
        exitCode: 1,
        problems: [],
      });
      expect(await queuedIds(queueUrl)).toEqual([]);
      expect(await storedByAddress(flows, cluster, ...WINDOW)).toEqual(expectedByAddress(v));
    } finally {
      process.env.AWS_ENDPOINT_URL_SQS = local.endpoint;
      await sqsProxy.close();
    }
  });
});
