// Mailer Lambda: the alerts topic's messages, read through the mail queue, mailed as one e-mail per invocation to the
// e-mail topic the alert addresses subscribe to. Thin by design: the texts are alert-message.ts's (emailOfJson), the
// digest alert-digest.ts's.
//
// Why not e-mail from the alerts topic: SNS suspends an e-mail subscription sent more than 10 messages a second (it
// falls back to PendingConfirmation, and is deleted 48 hours later), and one ingest run publishes up to its alert cap
// (50 by default, up to 10,000) and up to 10 summaries at once, with many runs in parallel.
//
// The bound: the event source runs at most two invocations at once (MAIL_MAX_CONCURRENCY, lib/alerts.ts), and each
// sends one publish request (the client does not retry: MAIL_PUBLISH_TIMEOUTS) and returns no sooner than
// PUBLISH_INTERVAL_MS after it began, failed or not. So each of the two publishes at most once a second: two e-mails
// a second on the e-mail topic at most, whatever the flood, a fifth of SNS's limit. A batch gathers up to 1,000
// messages for up to 60 s: an alert is mailed that late, once the queue is not behind.
//
// A body it cannot read goes in the digest as it came, rather than being dropped or failing its batch; a repeat of a
// message already in the batch (the sink's, see sns-sink.ts) is dropped, an alert's latest kept. A publish that fails throws: the batch
// returns to the queue and is tried again, and after MAIL_MAX_RECEIVES receives it lands in the mail dead-letter
// queue, which is alarmed on (lib/monitoring.ts).
import { setTimeout } from "node:timers/promises";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import middy from "@middy/core";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import * as z from "zod";
import { alertDigest, type DigestMessage, unreadableMessage } from "../core/alert-digest.ts";
import { emailOfJson } from "../core/alert-message.ts";
import { logger, metrics, tracer } from "../shared/powertools.ts";
import { loadMailerConfig, type MailerConfig } from "./config.ts";

/** The least time between two publishes of one invocation slot: see the bound above. */
export const PUBLISH_INTERVAL_MS = 1_000;

/**
 * The one publish request of an invocation, given up after 20 s, connecting included (`throwOnRequestTimeout`:
 * without it the SDK only logs a request past `requestTimeout`), within the function's 30 s (MAILER_TIMEOUT_SECONDS).
 * Not retried by the SDK: a request given up, or whose connection dropped, may have been taken by SNS, and a retry
 * in the invocation mailed the digest again at once (each receive of a batch up to 3 times, past the bound above).
 * The queue's redelivery of the failed batch is the retry, 3 minutes on. The ingest's sink gives up sooner
 * (sns-sink.ts), its run waiting on it; here the longer wait spares the repeat that giving up on a late answer makes.
 */
const MAIL_PUBLISH_TIMEOUTS = {
  connectionTimeout: 3_000,
  requestTimeout: 20_000,
  throwOnRequestTimeout: true,
} as const;

export interface MailerRuntime {
  client: SNSClient;
  /** The e-mail topic. */
  topicArn: string;
  cluster: string;
  /** Options that point the e-mails' `calico-flows` commands at the alerts' store (`--api <url>`). */
  storeArgs: readonly string[];
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export interface MailResult {
  /** Messages of the batch, all in the e-mail's index. */
  messages: number;
  /** Records of the batch that repeated one of those messages, dropped. */
  repeats: number;
  /** Those mailed as they came. */
  unreadable: number;
  /** Those whose text did not fit in the e-mail. */
  leftOut: number;
}

/** One message as the digest takes it: its e-mail, or its body as it came. */
function digestMessage(record: SQSRecord, runtime: MailerRuntime): DigestMessage | undefined {
  const email = emailOfJson(record.body, { storeArgs: runtime.storeArgs });
  if (email === undefined) return undefined;
  return {
    subject: email.subject,
    text: email.text,
    panic: email.type === "panic",
    high: email.severity === "high",
    at: email.since ?? sentAt(record, runtime),
  };
}

const AlertRepeat = z.looseObject({
  type: z.literal("alert"),
  id: z.string(),
  count: z.number(),
  lastSeen: z.string(),
});

/**
 * What a repeat of the message has alike: an alert's id (the sink's repeats carry it, sns-sink.ts, whatever else
 * changed), else the body as it came (a summary or an announcement published again; SQS delivering one twice). An
 * alert also says how far it had come: its count and last hit, which only grow.
 */
function repeatKey(record: SQSRecord): { key: string; progress?: { count: number; lastSeen: string } } {
  try {
    const alert = AlertRepeat.safeParse(JSON.parse(record.body));
    if (alert.success) {
      const { id, count, lastSeen } = alert.data;
      return { key: `alert ${id}`, progress: { count, lastSeen } };
    }
  } catch {
    // Not JSON: its body is all there is.
  }
  return { key: `body ${record.body}` };
}

/**
 * The batch without repeats, each message where it first came: of an alert handed out again after more hits folded
 * in (its publish or its marking failed), the latest told (the highest count, then the latest hit), whatever order
 * SQS gave them in; of anything else, the first.
 */
function withoutRepeats(records: readonly SQSRecord[]): SQSRecord[] {
  const kept = new Map<string, { record: SQSRecord; progress?: { count: number; lastSeen: string } }>();
  for (const record of records) {
    const { key, progress } = repeatKey(record);
    const seen = kept.get(key);
    const later =
      seen?.progress !== undefined &&
      progress !== undefined &&
      (progress.count !== seen.progress.count
        ? progress.count > seen.progress.count
        : progress.lastSeen > seen.progress.lastSeen);
    if (seen === undefined || later) kept.set(key, { record, progress });
  }
  return [...kept.values()].map((k) => k.record);
}

/** When SNS put the message in the queue (ISO), for a message that does not say when what it tells of began. */
function sentAt(record: SQSRecord, runtime: MailerRuntime): string {
  const sent = Number(record.attributes.SentTimestamp);
  return new Date(Number.isFinite(sent) ? sent : runtime.now()).toISOString();
}

/** Mails a batch as one e-mail on the e-mail topic; throws when the publish fails, so that the batch is retried. */
export async function mailBatch(records: readonly SQSRecord[], runtime: MailerRuntime): Promise<MailResult> {
  const distinct = withoutRepeats(records);
  const repeats = records.length - distinct.length;
  let unreadable = 0;
  const messages = distinct.map((record) => {
    const message = digestMessage(record, runtime);
    if (message !== undefined) return message;
    unreadable++;
    logger.warn("a message on the alerts topic this version cannot read: mailed as it came", {
      messageId: record.messageId,
    });
    return unreadableMessage(record.body, sentAt(record, runtime), runtime.cluster);
  });
  const digest = alertDigest(messages, {
    cluster: runtime.cluster,
    storeArgs: runtime.storeArgs,
    now: runtime.now(),
  });
  const started = runtime.now();
  try {
    // A plain message, not JSON-structured: the topic has e-mail subscribers only.
    await runtime.client.send(
      new PublishCommand({ TopicArn: runtime.topicArn, Subject: digest.subject, Message: digest.text }),
    );
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new Error(
      `publishing the e-mail of ${messages.length} message(s) to ${runtime.topicArn} failed: ${reason}`,
      { cause: error },
    );
  } finally {
    // After a failure too: SNS may have accepted a publish whose answer was lost.
    await runtime.sleep(Math.max(0, started + PUBLISH_INTERVAL_MS - runtime.now()));
  }
  metrics.addMetric("AlertMessagesMailed", MetricUnit.Count, messages.length);
  metrics.addMetric("AlertMessagesUnreadable", MetricUnit.Count, unreadable);
  const result = { messages: messages.length, repeats, unreadable, leftOut: digest.leftOut };
  logger.info("alert e-mail published", { ...result });
  return result;
}

export function createRuntime(config: MailerConfig): MailerRuntime {
  return {
    client: tracer.captureAWSv3Client(
      new SNSClient({ maxAttempts: 1, requestHandler: { ...MAIL_PUBLISH_TIMEOUTS } }),
    ),
    topicArn: config.EMAIL_TOPIC_ARN,
    cluster: config.CLUSTER_NAME,
    storeArgs: config.API_URL === undefined ? [] : ["--api", config.API_URL],
    now: Date.now,
    sleep: (ms) => setTimeout(ms),
  };
}

// Once per container: the configuration and the client (its connections).
let runtime: MailerRuntime | undefined;

export const handler = middy(async (event: SQSEvent) => {
  runtime ??= createRuntime(loadMailerConfig(process.env));
  await mailBatch(event.Records, runtime);
})
  .use(captureLambdaHandler(tracer))
  .use(injectLambdaContext(logger, { clearState: true }))
  .use(logMetrics(metrics));
