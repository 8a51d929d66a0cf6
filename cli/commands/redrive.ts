// `calico-flows redrive`: replays the subscription payloads the ingest function gave up on. Each SQS message of
// the on-failure destination is a Lambda invocation record whose requestPayload is the original event; it is
// decoded, stored through the same ingest use case under the payload's own contribution (so a payload that
// had been partly stored is not counted twice), and deleted only once stored and its alerts delivered. What still
// fails is reported with the original error and the new one, and stays in the queue.
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { Command } from "commander";
import { type HeldAlert, heldAlertsOf } from "../../functions/adapters/dynamo/alerts.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import type { IngestDeps, IngestProgress } from "../../functions/core/ingest.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import { CorruptPayloadError, decodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { commonOptions, parseInteger, requireStoreNamed } from "../common.ts";
import { addIngestOptions, openIngest } from "../ingest.ts";
import { elapsed, ProgressDisplay, type ProgressOutput, rate } from "../progress.ts";

/** What Lambda's on-failure destination puts in the message body (asynchronous invocation record). */
interface InvocationRecord {
  version?: string;
  timestamp?: string;
  requestContext?: {
    requestId?: string;
    functionArn?: string;
    condition?: string;
    approximateInvokeCount?: number;
  };
  requestPayload?: { awslogs?: { data?: unknown } };
  responsePayload?: { errorType?: string; errorMessage?: string } | null;
}

export interface RedriveProblem {
  messageId: string;
  kind: "corrupt" | "failed";
  reason: string;
  /** Why the ingest function failed on it, from the invocation record. */
  original?: string;
  deleted: boolean;
}

export interface RedriveSummary {
  received: number;
  /** Payloads stored (or found already stored) and deleted from the queue. */
  redriven: number;
  controlMessages: number;
  events: number;
  eventsAlreadyCounted: number;
  calico: number;
  malformed: number;
  flowsApplied: number;
  flowsDuplicate: number;
  /** Alerts the redriven payloads opened, each once (not those their failed Lambda attempts had opened). */
  alertsOpened: number;
  alertsSent: number;
  problems: RedriveProblem[];
}

export interface RedriveIo {
  sqs?: SQSClient;
  /** Where progress goes (stderr), and its clocks. */
  progress?: ProgressOutput;
}

class CorruptMessageError extends Error {
  override name = "CorruptMessageError";
  /** The invocation record, when the body is one (its original error is reported). */
  readonly record: InvocationRecord | undefined;
  constructor(message: string, record?: InvocationRecord) {
    super(message);
    this.record = record;
  }
}

/** The subscription data inside a message body, or why there is none. */
function subscriptionDataOf(body: string | undefined): { data: unknown; record: InvocationRecord } {
  if (body === undefined || body.length === 0) throw new CorruptMessageError("message has no body");
  let record: InvocationRecord;
  try {
    record = JSON.parse(body) as InvocationRecord;
  } catch (error) {
    throw new CorruptMessageError(`message body is not JSON: ${(error as Error).message}`);
  }
  if (record === null || typeof record !== "object" || record.requestPayload === undefined) {
    throw new CorruptMessageError("message body is not a Lambda invocation record (no requestPayload)");
  }
  const awslogs = record.requestPayload?.awslogs;
  if (awslogs === undefined || awslogs === null) {
    throw new CorruptMessageError(
      "requestPayload is not a CloudWatch Logs subscription event (no awslogs)",
      record,
    );
  }
  return { data: awslogs.data, record };
}

/**
 * `store`, noting in `held` the alerts each run is not handed out because another run of its payload holds the lease
 * on sending them (alerts.ts, heldAlertsOf).
 */
function noticingHeld(store: FlowStore, held: HeldAlert[]): FlowStore {
  return {
    writeFlows: (flows, contribution, options) => store.writeFlows(flows, contribution, options),
    applyAlerts: async (candidates, contribution, options) => {
      const applied = await store.applyAlerts(candidates, contribution, options);
      held.push(...heldAlertsOf(applied));
      return applied;
    },
    markAlertSent: (alert, how) => store.markAlertSent(alert, how),
    queryFlows: (query) => store.queryFlows(query),
    queryAlerts: (query) => store.queryAlerts(query),
  };
}

/** Why a payload whose alerts another run of it holds stays: which, and when the last lease runs out. */
function heldReason(held: readonly HeldAlert[]): string {
  const named = held.slice(0, 3).map((h) => `${h.id} (opened ${h.openedAt}, held until ${h.until})`);
  const more = held.length > named.length ? ` and ${held.length - named.length} more` : "";
  const last = held
    .map((h) => h.until)
    .sort()
    .at(-1);
  return (
    `alert${held.length === 1 ? "" : "s"} ${named.join(", ")}${more} not sent: another run of this payload holds ` +
    `the lease on sending ${held.length === 1 ? "it" : "them"} (a run whose publish failed, or one still ` +
    `publishing); redrive again after ${last}`
  );
}

function originalError(record: InvocationRecord | undefined): string | undefined {
  if (record === undefined) return undefined;
  const context = record.requestContext;
  const response = record.responsePayload;
  const parts: string[] = [];
  if (context?.condition !== undefined) parts.push(context.condition);
  if (context?.approximateInvokeCount !== undefined) parts.push(`${context.approximateInvokeCount} attempts`);
  if (response?.errorType !== undefined || response?.errorMessage !== undefined) {
    parts.push(`${response?.errorType ?? "Error"}: ${response?.errorMessage ?? ""}`.trim());
  }
  return parts.length === 0 ? undefined : parts.join(", ");
}

export async function redrive(raw: Record<string, unknown>, io: RedriveIo = {}): Promise<RedriveSummary> {
  const common = commonOptions(raw);
  const queueUrl = raw.queueUrl as string;
  const max = (raw.max as number | undefined) ?? Number.POSITIVE_INFINITY;
  const visibility = raw.visibilityTimeout as number;
  const sqs = io.sqs ?? new SQSClient(common.region === undefined ? {} : { region: common.region });
  const setup = await openIngest(raw, common);
  // A run within a minute of a failed one (this command's, or Lambda's last try) finds that run's lease on sending
  // the alerts it opened, and is handed none of them: deleted then, the payload's alerts would never be sent.
  const held: HeldAlert[] = [];
  const deps: IngestDeps = { ...setup.deps, store: noticingHeld(setup.deps.store, held) };
  const summary: RedriveSummary = {
    received: 0,
    redriven: 0,
    controlMessages: 0,
    events: 0,
    eventsAlreadyCounted: 0,
    calico: 0,
    malformed: 0,
    flowsApplied: 0,
    flowsDuplicate: 0,
    alertsOpened: 0,
    alertsSent: 0,
    problems: [],
  };
  // A queue of a long outage's payloads takes a while: a bar on a terminal, a line every 30 s elsewhere.
  const clock = io.progress?.now ?? Date.now;
  const started = clock();
  const display = new ProgressDisplay({
    enabled: raw.quiet !== true,
    format: "{received} messages | {events} events | {calico} calico | {flows} flows | {problems} problems",
    line: () =>
      `progress after ${elapsed(clock() - started)}: ${summary.received} messages taken (${summary.redriven} ` +
      `redriven, ${summary.problems.length} problems), ${summary.events} log events, ${summary.calico} calico ` +
      `records, ${summary.flowsApplied} flow updates, ${rate(summary.events, clock() - started)} events/s`,
    ...io.progress,
  });
  const showProgress = () =>
    display.update(summary.received, {
      received: summary.received,
      events: summary.events,
      calico: summary.calico,
      flows: summary.flowsApplied,
      problems: summary.problems.length,
    });
  const seen = new Set<string>();
  const leftBehind: Message[] = [];
  const remove = (m: Message) =>
    sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));

  const handle = async (m: Message) => {
    const messageId = m.MessageId ?? "?";
    let record: InvocationRecord | undefined;
    const progress: IngestProgress = {};
    held.length = 0;
    try {
      const found = subscriptionDataOf(m.Body);
      record = found.record;
      const payload = decodeSubscriptionData(found.data);
      if (payload.messageType === "CONTROL_MESSAGE") {
        summary.controlMessages++;
      } else {
        const result = await ingestDelivery(payload, deps, setup.coverage, "redrive", { progress });
        summary.events += payload.logEvents.length;
        summary.eventsAlreadyCounted += result.eventsAlreadyCounted;
        summary.calico += result.stats.calico;
        summary.malformed += result.stats.malformed;
        summary.flowsApplied += result.flowsApplied;
        summary.flowsDuplicate += result.flowsDuplicate;
        summary.alertsOpened += result.alertsOpened;
        summary.alertsSent += result.alertsSent;
      }
      if (held.length > 0) {
        // Stored, but not delivered: kept, as a failed publish keeps it, for a redrive once the leases have run out.
        summary.problems.push({
          messageId,
          kind: "failed",
          reason: heldReason(held),
          original: originalError(record),
          deleted: false,
        });
        leftBehind.push(m);
        return;
      }
      // Deleted only now that everything in it is stored: a crash before this line just redrives it again.
      await remove(m);
      if (payload.messageType !== "CONTROL_MESSAGE") summary.redriven++;
    } catch (error) {
      // Stored in part (a publish failed, say): the message stays for a later redrive, which writes these flows
      // and opens these alerts no more.
      summary.flowsApplied += progress.flows?.applied ?? 0;
      summary.flowsDuplicate += progress.flows?.duplicates ?? 0;
      summary.alertsOpened += progress.alertsOpened ?? 0;
      const corrupt = error instanceof CorruptMessageError || error instanceof CorruptPayloadError;
      const problem: RedriveProblem = {
        messageId,
        kind: corrupt ? "corrupt" : "failed",
        reason: (error as Error).message,
        original: originalError(record ?? (error instanceof CorruptMessageError ? error.record : undefined)),
        deleted: false,
      };
      if (corrupt && raw.deleteCorrupt === true) {
        await remove(m);
        problem.deleted = true;
      } else {
        leftBehind.push(m);
      }
      summary.problems.push(problem);
    }
  };

  display.start(0, { received: 0, events: 0, calico: 0, flows: 0, problems: 0 });
  try {
    while (summary.received < max) {
      const page = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: Math.min(10, max - summary.received),
          // Long polling asks every SQS server, so an empty answer means the queue is drained.
          WaitTimeSeconds: raw.waitSeconds as number,
          // Long enough that what fails stays out of sight for the rest of this run.
          VisibilityTimeout: visibility,
        }),
      );
      const fresh = (page.Messages ?? []).filter((m) => m.MessageId === undefined || !seen.has(m.MessageId));
      if (fresh.length === 0) break;
      for (const m of fresh) {
        if (m.MessageId !== undefined) seen.add(m.MessageId);
        summary.received++;
        await handle(m);
        showProgress();
      }
    }
  } finally {
    display.stop();
    // What stays in the queue becomes visible again at once, for the next redrive or for inspection.
    for (const m of leftBehind) {
      await sqs
        .send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: queueUrl,
            ReceiptHandle: m.ReceiptHandle,
            VisibilityTimeout: 0,
          }),
        )
        .catch(() => undefined);
    }
    await setup.close();
    if (io.sqs === undefined) sqs.destroy();
  }
  return summary;
}

export function describeRedrive(s: RedriveSummary): string {
  const lines = [
    `redrove ${s.redriven} of ${s.received} messages: ${s.events} log events (${s.eventsAlreadyCounted} already counted), ` +
      `${s.calico} calico records (${s.malformed} malformed), ${s.flowsApplied} flow updates ` +
      `(${s.flowsDuplicate} already stored), ${s.alertsOpened} alerts` +
      `${s.alertsSent > 0 ? ` (${s.alertsSent} published)` : ""}` +
      `${s.controlMessages > 0 ? `, ${s.controlMessages} control messages` : ""}`,
  ];
  for (const p of s.problems) {
    const fate = p.deleted ? "deleted" : "left in the queue";
    const hint = p.kind === "corrupt" && !p.deleted ? "; --delete-corrupt removes it" : "";
    lines.push(
      `message ${p.messageId}: ${p.kind === "corrupt" ? "corrupt" : "still fails"}: ${p.reason}` +
        `${p.original === undefined ? "" : ` (ingest failed with ${p.original})`} — ${fate}${hint}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export function registerRedrive(program: Command): void {
  const command = program
    .command("redrive")
    .description("replay the payloads in the ingest function's on-failure queue, deleting each once stored")
    .requiredOption("--queue-url <url>", "URL of the on-failure SQS queue")
    .option("--max <n>", "most messages to take from the queue", parseInteger("--max", 1, 1_000_000))
    .option("--delete-corrupt", "delete messages whose payload cannot be decoded (default: report and keep)")
    .option(
      "--visibility-timeout <seconds>",
      "how long a taken message stays hidden while it is replayed",
      parseInteger("--visibility-timeout", 30, 43_200),
      900,
    )
    .option(
      "--wait-seconds <n>",
      "long-poll wait when the queue looks empty",
      parseInteger("--wait-seconds", 0, 20),
      2,
    )
    .option("--quiet", "no progress, only the summary");
  addIngestOptions(command);
  command.addHelpText(
    "after",
    "\nThe stack's --cluster and the destination must be named: --table <the stack's TableName output>, or\n" +
      "--store DIR for a local embedded store. Each message is deleted from the queue once stored there.",
  );
  // A hook rather than the action's first lines: it runs before any store is opened or the queue is read,
  // whatever action is attached.
  command.hook("preAction", (self) =>
    requireStoreNamed(self, "redrive deletes each message from the queue once it is stored"),
  );
  command.action(async (raw: Record<string, unknown>) => {
    const summary = await redrive(raw);
    process.stderr.write(describeRedrive(summary));
    if (summary.problems.some((p) => !p.deleted)) process.exitCode = 1;
  });
}
