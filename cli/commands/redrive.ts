// `calico-flows redrive`: replays the subscription payloads the ingest function gave up on. Each SQS message of
// the on-failure destination is a Lambda invocation record whose requestPayload is the original event; it is
// decoded, stored through the same ingest use case under the payload's own contribution and with the settings its
// failed run claimed it under (so a payload that had been partly stored is not counted twice), and deleted only once
// stored and its alerts delivered (without an alerts topic: recorded, and those left pending named). What still
// fails is reported with the original error and the new one, and stays in the queue. A payload that claimed nothing
// is stored with the run's options, so it stays too while those are not the settings the stack recorded on its stream,
// and a record whose payload Lambda left out is reported with the time range to backfill instead.
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { Command } from "commander";
import {
  type ClaimSource,
  type CoverageStore,
  type DeliveryResult,
  eventKeys,
  ingestDelivery,
  minuteOf,
} from "../../functions/core/coverage.ts";
import { DeliveredEvents } from "../../functions/core/delivered-events.ts";
import { type IngestProgress, type IngestSettings, sameSettings } from "../../functions/core/ingest.ts";
import {
  CorruptPayloadError,
  contributionOf,
  decodeSubscriptionData,
  type SubscriptionPayload,
} from "../../functions/core/subscription-payload.ts";
import {
  commonOptions,
  parseInteger,
  requireStoreNamed,
  signalExitCode,
  stoppableBySignal,
} from "../common.ts";
import { addIngestOptions, heldAlertsText, openIngest, settingsDifference } from "../ingest.ts";
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
  /**
   * `settings`: not stored, the run's options not being the settings the stack recorded on its stream; `dropped`: a
   * record without its payload (Lambda leaves out one too large for the queue), whose events only a backfill restores.
   */
  kind: "corrupt" | "failed" | "settings" | "dropped";
  reason: string;
  /** Why the ingest function failed on it, from the invocation record. */
  original?: string;
  deleted: boolean;
}

/**
 * A pending alert of a payload a redrive into a table stored without an alerts topic: opened by this run, or opened
 * (or taken to send) by the payload's failed run, whose publish failed, say; not published.
 */
export interface UnsentAlert {
  id: string;
  openedAt: string;
  windowEnd: string;
  /**
   * Its window had ended when the run stored it. Only a run that publishes and brings a hit of its key in its window
   * hands out another run's pending alert: the ingest function may while the window lasts; after that nothing will.
   */
  windowEnded: boolean;
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
  /** Left pending in a table without `--alerts-topic` by the payloads stored, deleted from the queue or not. */
  alertsUnsent: UnsentAlert[];
  /**
   * Payloads stored with the settings their failed run claimed them under, not the run's own options: the options
   * that differ, theirs and the run's.
   */
  otherSettings: { messageId: string; claimed: string; own: string }[];
  /** The run stopped while receives returned only messages it had taken: others may be queued behind them. */
  untaken: boolean;
  /** Stopped (RedriveIo.signal) before the queue was drained or `--max` reached. */
  interrupted: boolean;
  problems: RedriveProblem[];
}

export interface RedriveIo {
  sqs?: SQSClient;
  /** Where progress goes (stderr), and its clocks. */
  progress?: ProgressOutput;
  /** The clock an unsent alert's window is judged by (UnsentAlert.windowEnded). @default Date.now */
  now?: () => number;
  /**
   * Stops the run: the message in hand is finished (stored and deleted, or kept), no other is handled, and those
   * taken and not deleted are given back.
   */
  signal?: AbortSignal;
}

/**
 * Receives in a row that return only messages the run has taken end it. SQS answers a receive from a sample of its
 * servers, so one may hold only such messages (visible again once their visibility timeout ran out in a long run)
 * while others are queued; each receive hides the ones it returns again, so the next ones reach the others.
 */
const SEEN_ONLY_RECEIVES = 5;

/**
 * The ingest function's maximum event age (lib/ingest.ts, ASYNC_MAX_EVENT_AGE; the CLI does not load the CDK): a
 * delivery whose record came at T was first tried after T less this.
 */
export const MAX_EVENT_AGE_MS = 6 * 3_600_000;
const HOURS = `${MAX_EVENT_AGE_MS / 3_600_000} h`;

class CorruptMessageError extends Error {
  override name = "CorruptMessageError";
  /** The invocation record, when the body is one (its original error is reported). */
  readonly record: InvocationRecord | undefined;
  constructor(message: string, record?: InvocationRecord) {
    super(message);
    this.record = record;
  }
}

/** An invocation record that Lambda wrote without its payload: the events are not in the queue. */
class DroppedPayloadError extends Error {
  override name = "DroppedPayloadError";
  readonly record: InvocationRecord;
  constructor(record: InvocationRecord) {
    const failedAt = Date.parse(record.timestamp ?? "");
    const when = Number.isNaN(failedAt)
      ? "at a time it does not give (no timestamp)"
      : `at ${new Date(failedAt).toISOString()}`;
    const window = Number.isNaN(failedAt)
      ? `\`calico-flows backfill\` over the ${HOURS} before the message was queued,`
      : `\`calico-flows backfill --since ${new Date(failedAt - MAX_EVENT_AGE_MS).toISOString()} --until ` +
        `${new Date(failedAt).toISOString()}\``;
    super(
      `the record of the invocation that failed ${when} holds no requestPayload, so its events can only be ` +
        `backfilled: ${window} with a --log-group for every log group the ingest function subscribes to (it retries ` +
        `a delivery for up to ${HOURS})`,
    );
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
  if (record === null || typeof record !== "object") {
    throw new CorruptMessageError("message body is not a Lambda invocation record (no requestPayload)");
  }
  // Lambda leaves the payload out of a record too large for the destination, and keeps its context and error.
  if (record.requestPayload === undefined) {
    if (record.requestContext !== undefined && record.requestContext !== null)
      throw new DroppedPayloadError(record);
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

/** Settings a claim of another payload records on a payload's log stream (Claim#settings), and where. */
interface RecordedSettings {
  settings: IngestSettings;
  source: ClaimSource;
  minute: number;
}

/**
 * The settings recorded on the payload's log stream and minutes by the claims of other payloads, when the payload
 * would be stored with the run's own: its failed run claimed none of its events (DynamoDB down, say) and others'
 * claims do not name them all. The latest of the ingest function's claims, else the latest claim: what the stack
 * stores that stream with now. Undefined when nothing there records settings.
 */
async function settingsBeside(
  payload: SubscriptionPayload,
  cluster: string,
  coverage: CoverageStore,
): Promise<RecordedSettings | undefined> {
  const minutes = payload.logEvents.map((e) => minuteOf(e.timestamp));
  const read = await coverage.read(
    { cluster, group: payload.logGroup, stream: payload.logStream },
    minutes.reduce((a, b) => Math.min(a, b)),
    minutes.reduce((a, b) => Math.max(a, b)),
  );
  const contribution = contributionOf(payload);
  const claims = read.flatMap((m) => m.claims.map((claim) => ({ claim, minute: m.minute })));
  // Claimed by its failed run: stored with that run's settings, whatever the options (ingestDelivery).
  if (claims.some(({ claim }) => claim.contribution === contribution && claim.settings !== undefined)) {
    return undefined;
  }
  const others = claims.filter(({ claim }) => claim.contribution !== contribution);
  const named = new Set(others.flatMap(({ claim }) => claim.events));
  if (eventKeys(DeliveredEvents.fromArray(payload.logEvents)).every((k) => named.has(k))) return undefined;
  const recorded = others
    .flatMap(({ claim, minute }) =>
      claim.settings === undefined
        ? []
        : [{ settings: claim.settings, source: claim.source, minute, at: claim.claimedAt }],
    )
    .sort((a, b) => a.at.localeCompare(b.at));
  const latest = recorded.findLast((r) => r.source === "live") ?? recorded.at(-1);
  return latest === undefined
    ? undefined
    : { settings: latest.settings, source: latest.source, minute: latest.minute };
}

/** Why a payload is kept rather than stored with the run's options, `own`: what to pass instead. */
function otherSettingsText(stream: string, recorded: RecordedSettings, own: IngestSettings): string {
  const { claimed, own: ours } = settingsDifference(recorded.settings, own);
  const whose = recorded.source === "live" ? "the ingest function's" : `a ${recorded.source} run's`;
  return (
    `its failed run claimed none of its events, and the claims of other payloads of log stream ${stream} record ` +
    `other settings (${whose}, at ${new Date(recorded.minute).toISOString()}): ${claimed} (this run: ${ours}); ` +
    "redrive with the stack's options"
  );
}

/**
 * An SQS client from the SDK's standard configuration. The SDK sends a call naming a queue URL to that URL's host,
 * past the endpoint configured for SQS (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, a profile's endpoint_url: a VPC or
 * FIPS endpoint, while the stack's queue URL names sqs.<region>.amazonaws.com): a configured one is used instead.
 */
async function sqsClient(region: string | undefined): Promise<SQSClient> {
  const config = region === undefined ? {} : { region };
  const client = new SQSClient(config);
  // The SDK's own reading of that configuration (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS included).
  if ((await client.config.serviceConfiguredEndpoint?.()) === undefined) return client;
  client.destroy();
  return new SQSClient({ ...config, useQueueUrlAsEndpoint: false });
}

export async function redrive(raw: Record<string, unknown>, io: RedriveIo = {}): Promise<RedriveSummary> {
  const common = commonOptions(raw);
  const queueUrl = raw.queueUrl as string;
  const max = (raw.max as number | undefined) ?? Number.POSITIVE_INFINITY;
  const visibility = raw.visibilityTimeout as number;
  const sqs = io.sqs ?? (await sqsClient(common.region));
  const setup = await openIngest(raw, common);
  const { deps } = setup;
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
    alertsUnsent: [],
    otherSettings: [],
    untaken: false,
    interrupted: false,
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
  /** The messages taken, by id: the object of the last receipt of each (ReceiptHandle), as leftBehind holds it. */
  const seen = new Map<string, Message>();
  const leftBehind: Message[] = [];
  /** Deletes a message, or keeps it (leftBehind) and says why it could not. */
  const remove = async (m: Message): Promise<string | undefined> => {
    try {
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
      return undefined;
    } catch (error) {
      leftBehind.push(m);
      return (error as Error).message;
    }
  };
  const now = io.now ?? Date.now;
  /** Ids of the alerts in summary.alertsUnsent: a payload queued twice names its alerts once. */
  const unsent = new Set<string>();
  /**
   * Adds the alerts of a payload stored without an alerts topic in the stack's table that are still pending: those
   * this run opened, and those its failed runs opened or took the lease on and did not send (AlertOptions.delivers).
   * Nobody but the ingest function may publish them (an embedded store's are listed, as `replay`'s are).
   */
  const addUnsent = (result: DeliveryResult) => {
    if (deps.sink !== undefined || common.table === undefined) return;
    for (const a of result.alerts) {
      if (unsent.has(a.id)) continue;
      unsent.add(a.id);
      summary.alertsUnsent.push({
        id: a.id,
        openedAt: a.openedAt,
        windowEnd: a.windowEnd,
        windowEnded: Date.parse(a.windowEnd) <= now(),
      });
    }
  };

  const handle = async (m: Message) => {
    const messageId = m.MessageId ?? "?";
    let record: InvocationRecord | undefined;
    const progress: IngestProgress = {};
    let result: DeliveryResult | undefined;
    try {
      const found = subscriptionDataOf(m.Body);
      record = found.record;
      const payload = decodeSubscriptionData(found.data);
      if (payload.messageType === "CONTROL_MESSAGE") {
        summary.controlMessages++;
      } else {
        // Checked before anything is stored: once claimed under the run's options, every later run keeps them.
        const beside = await settingsBeside(payload, deps.pipeline.cluster, setup.coverage);
        if (beside !== undefined && !sameSettings(beside.settings, setup.settings)) {
          summary.problems.push({
            messageId,
            kind: "settings",
            reason: otherSettingsText(payload.logStream, beside, setup.settings),
            original: originalError(record),
            deleted: false,
          });
          leftBehind.push(m);
          return;
        }
        result = await ingestDelivery(payload, deps, setup.coverage, "redrive", { progress });
        summary.events += payload.logEvents.length;
        summary.eventsAlreadyCounted += result.eventsAlreadyCounted;
        summary.calico += result.stats.calico;
        summary.malformed += result.stats.malformed;
        summary.flowsApplied += result.flowsApplied;
        summary.flowsDuplicate += result.flowsDuplicate;
        summary.alertsOpened += result.alertsOpened;
        summary.alertsSent += result.alertsSent;
        if (result.settings !== undefined) {
          summary.otherSettings.push({ messageId, ...settingsDifference(result.settings, setup.settings) });
        }
      }
    } catch (error) {
      // Stored in part (a publish failed, say): the message stays for a later redrive, which writes these flows
      // and opens these alerts no more.
      summary.flowsApplied += progress.flows?.applied ?? 0;
      summary.flowsDuplicate += progress.flows?.duplicates ?? 0;
      summary.alertsOpened += progress.alertsOpened ?? 0;
      const dropped = error instanceof DroppedPayloadError;
      const corrupt = error instanceof CorruptMessageError || error instanceof CorruptPayloadError;
      const problem: RedriveProblem = {
        messageId,
        kind: dropped ? "dropped" : corrupt ? "corrupt" : "failed",
        reason: (error as Error).message,
        original: originalError(
          record ??
            (error instanceof CorruptMessageError || error instanceof DroppedPayloadError
              ? error.record
              : undefined),
        ),
        deleted: false,
      };
      if ((corrupt || dropped) && raw.deleteCorrupt === true) {
        const refused = await remove(m);
        problem.deleted = refused === undefined;
        if (refused !== undefined) problem.reason += `; not deleted: ${refused}`;
      } else {
        leftBehind.push(m);
      }
      summary.problems.push(problem);
      return;
    }
    // A run within a minute of a failed one (this command's, or Lambda's last try) finds that run's lease on sending
    // the alerts it opened, and is handed none of them: deleted then, the payload's alerts would never be sent.
    const held = result?.alertsHeld ?? [];
    if (held.length > 0) {
      // Stored, but not delivered: kept, as a failed publish keeps it, for a redrive once the leases have run out.
      summary.problems.push({
        messageId,
        kind: "failed",
        reason: heldAlertsText(held, "payload", "redrive again"),
        original: originalError(record),
        deleted: false,
      });
      leftBehind.push(m);
      return;
    }
    // Named whether or not the message goes: the redrive that deletes it later names them again if still pending.
    if (result !== undefined) addUnsent(result);
    // Deleted only now that everything in it is stored: a crash before this line just redrives it again.
    const refused = await remove(m);
    if (refused !== undefined) {
      // Counted above, once: the redrive that deletes it later finds it stored and writes nothing again.
      summary.problems.push({
        messageId,
        kind: "failed",
        reason: `stored, but not deleted from the queue: ${refused}`,
        original: originalError(record),
        deleted: false,
      });
      return;
    }
    if (result !== undefined) summary.redriven++;
  };

  display.start(0, { received: 0, events: 0, calico: 0, flows: 0, problems: 0 });
  let seenOnly = 0;
  try {
    while (summary.received < max) {
      if (io.signal?.aborted) {
        summary.interrupted = true;
        break;
      }
      // Not abandoned at a stop: SQS hides what it hands to a receive whose answer is not read, for the visibility
      // timeout. A long poll ends within --wait-seconds, and what it brings is given back.
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
      const messages = page.Messages ?? [];
      if (messages.length === 0) break;
      const fresh: Message[] = [];
      for (const m of messages) {
        const taken = m.MessageId === undefined ? undefined : seen.get(m.MessageId);
        if (taken === undefined) fresh.push(m);
        // Visible again (a run longer than its visibility timeout): only this receipt's handle gives it back.
        else taken.ReceiptHandle = m.ReceiptHandle;
      }
      if (fresh.length === 0) {
        if (++seenOnly < SEEN_ONLY_RECEIVES) continue;
        summary.untaken = true;
        break;
      }
      seenOnly = 0;
      for (const [i, m] of fresh.entries()) {
        if (io.signal?.aborted) {
          // Received, not handled: given back with what stays.
          leftBehind.push(...fresh.slice(i));
          break;
        }
        if (m.MessageId !== undefined) seen.set(m.MessageId, m);
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
    const hint = p.deleted
      ? ""
      : p.kind === "corrupt"
        ? "; --delete-corrupt removes it"
        : p.kind === "dropped"
          ? "; once backfilled, --delete-corrupt removes it"
          : "";
    lines.push(
      `message ${p.messageId}: ${PROBLEM_LABELS[p.kind]}: ${p.reason}` +
        `${p.original === undefined ? "" : ` (ingest failed with ${p.original})`} — ${fate}${hint}`,
    );
  }
  const bySettings = Map.groupBy(s.otherSettings, (o) => `${o.claimed} (this run: ${o.own})`);
  for (const [difference, payloads] of bySettings) {
    const which =
      payloads.length === 1
        ? "1 payload was stored with the settings its failed run had claimed it under"
        : `${payloads.length} payloads were stored with the settings their failed runs had claimed them under`;
    lines.push(`note: ${which}: ${difference}`);
  }
  const ended = s.alertsUnsent.filter((a) => a.windowEnded);
  const open = s.alertsUnsent.filter((a) => !a.windowEnded);
  if (ended.length > 0) {
    lines.push(
      `${unsentHead(ended, "window ended")}; their windows have ended: nothing will publish them (\`calico-flows ` +
        "alerts` lists them; with --alerts-topic, a redrive publishes what it opens)",
    );
  }
  if (open.length > 0) {
    lines.push(
      `${unsentHead(open, "window ends")}; the ingest function publishes one only if a denial of its key reaches it ` +
        "before its window ends, a minute or more after it opened",
    );
  }
  if (s.untaken) {
    lines.push(
      `stopped after ${SEEN_ONLY_RECEIVES} receives in a row returned only messages this run had taken: ` +
        "messages may be left untaken in the queue; run redrive again",
    );
  }
  if (s.interrupted) {
    lines.push(
      "stopped by a signal before the queue was drained: messages may be left in it; run redrive again",
    );
  }
  return `${lines.join("\n")}\n`;
}

const PROBLEM_LABELS: Record<RedriveProblem["kind"], string> = {
  corrupt: "corrupt",
  failed: "still fails",
  settings: "not stored",
  dropped: "payload dropped by Lambda",
};

/** `warning: 2 alerts pending, not published (no --alerts-topic): <id> (opened …, window ended …), …`. */
function unsentHead(alerts: readonly UnsentAlert[], window: string): string {
  const named = alerts.slice(0, 5).map((a) => `${a.id} (opened ${a.openedAt}, ${window} ${a.windowEnd})`);
  const more = alerts.length > named.length ? ` and ${alerts.length - named.length} more` : "";
  const count = alerts.length === 1 ? "1 alert" : `${alerts.length} alerts`;
  return `warning: ${count} pending, not published (no --alerts-topic): ${named.join(", ")}${more}`;
}

/**
 * Whether the run leaves work undone: a message it took left in the queue, a payload Lambda dropped (deleted or not:
 * its events wait for a backfill), messages it may not have taken (a stop among them), or alerts that nothing will
 * publish. Messages a `--max` run never took do not count.
 */
export function redriveFailed(s: RedriveSummary): boolean {
  return (
    s.problems.some((p) => !p.deleted || p.kind === "dropped") ||
    s.untaken ||
    s.interrupted ||
    s.alertsUnsent.some((a) => a.windowEnded)
  );
}

export function registerRedrive(program: Command): void {
  const command = program
    .command("redrive")
    .description("replay the payloads in the ingest function's on-failure queue, deleting each once stored")
    .requiredOption("--queue-url <url>", "URL of the on-failure SQS queue")
    .option("--max <n>", "most messages to take from the queue", parseInteger("--max", 1, 1_000_000))
    .option(
      "--delete-corrupt",
      "delete messages whose payload cannot be decoded or was dropped by Lambda (default: report and keep)",
    )
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
      "--store DIR for a local embedded store. Each message is deleted from the queue once stored there.\n" +
      "The pipeline options (--internal-cidr, --bucket-seconds …) must be the stack's: a payload that failed\n" +
      "before claiming any event is stored with them.",
  );
  // A hook rather than the action's first lines: it runs before any store is opened or the queue is read,
  // whatever action is attached.
  command.hook("preAction", (self) =>
    requireStoreNamed(self, "redrive deletes each message from the queue once it is stored"),
  );
  command.action(async (raw: Record<string, unknown>) => {
    // Ctrl-C (or a Job's SIGTERM): finish the message in hand, give back the others taken, print the summary, exit
    // 130 (143). A second signal quits now: what was taken stays hidden for --visibility-timeout.
    const { result: summary, stoppedBy } = await stoppableBySignal(
      "finishing the message in hand (and a receive's wait, up to --wait-seconds), then giving back the messages taken",
      (signal) => redrive(raw, { signal }),
    );
    process.stderr.write(describeRedrive(summary));
    if (stoppedBy !== undefined) process.exitCode = signalExitCode(stoppedBy);
    else if (redriveFailed(summary)) process.exitCode = 1;
  });
}
