// The SNS alert sink and the delivery loop around it.
//
// Every message is published with `MessageStructure: json`: an `email` text for e-mail subscribers and a
// `default` JSON for everything else (SQS, Lambda, HTTPS), plus message attributes for subscription filter
// policies (functions/core/alert-message.ts lists them). The stack's alerts topic has no e-mail subscriber: its
// mailer writes the same texts from the JSON, a digest per batch (functions/mailer/handler.ts).
//
// Delivery guarantees are functions/core/alert-delivery.ts's. A standard topic (the only kind e-mail can subscribe
// to) has no de-duplication, so two cases can still repeat a message: SNS accepted a publish but its answer was
// lost and the SDK retried, or marking the alert sent failed after the publish. Both repeats carry the same `id`
// in their body (and `alertId` attribute) for consumers to drop. On a FIFO topic the sink sets
// MessageDeduplicationId from the alert id, and SNS drops the repeat itself.
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { digest } from "../core/aggregate.ts";
import type { AlertPublisher } from "../core/alert-delivery.ts";
import {
  alertMessage,
  type MessageOptions,
  type OutboundMessage,
  type PanicEvent,
  panicAnnouncement,
  snsPublication,
  suppressionSummary,
} from "../core/alert-message.ts";
import type { AlertRecord } from "../core/types.ts";

export interface SnsAlertSinkOptions {
  topicArn: string;
  /**
   * Client to publish with. @default a client for the topic's region from the SDK's standard configuration
   * (profiles, credentials, `AWS_ENDPOINT_URL_SNS`), with PUBLISH_TIMEOUTS, closed by `close()`.
   */
  client?: SNSClient;
  /** Options that point the e-mails' `calico-flows` commands at the alerts' store (`--api <url>`…). @default none */
  storeArgs?: readonly string[];
  /** Options of the e-mails' `flows` commands alone (a table's `--bucket-seconds`). @default none */
  flowsArgs?: readonly string[];
}

/**
 * Each publish request given up after 2 s, connecting included (`throwOnRequestTimeout`: without it the SDK only
 * logs a request past `requestTimeout`), and retried as the SDK retries any: SNS answers in milliseconds, and the
 * SDK's default handler waits for ever, so a publish in an SNS brownout held its run until the ingest's deadline (or
 * a CLI run for good), and went on in the invocations after. A publish given up may have been accepted: it is then
 * repeated, as above.
 */
export const PUBLISH_TIMEOUTS = {
  connectionTimeout: 1_000,
  requestTimeout: 2_000,
  throwOnRequestTimeout: true,
} as const;

const TOPIC_ARN = /^arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}(\.fifo)?)$/;

export class SnsAlertSink implements AlertPublisher {
  readonly topicArn: string;
  readonly #client: SNSClient;
  readonly #ownsClient: boolean;
  readonly #fifo: boolean;
  readonly #options: MessageOptions;

  constructor(options: SnsAlertSinkOptions) {
    const match = TOPIC_ARN.exec(options.topicArn);
    if (match === null) {
      throw new Error(
        `invalid SNS topic ARN "${options.topicArn}": expected arn:aws:sns:<region>:<account>:<name>`,
      );
    }
    this.topicArn = options.topicArn;
    this.#fifo = match[4] !== undefined;
    this.#options = { storeArgs: options.storeArgs ?? [], flowsArgs: options.flowsArgs ?? [] };
    this.#ownsClient = options.client === undefined;
    // The topic's region, not the default one: a topic in another region answers NotFound otherwise.
    this.#client =
      options.client ?? new SNSClient({ region: match[1], requestHandler: { ...PUBLISH_TIMEOUTS } });
  }

  async publishAlert(alert: AlertRecord): Promise<void> {
    const message = alertMessage(alert, this.#options);
    await this.#publish(message, `alert ${alert.id}`, alert.cluster, `alert\n${alert.id}`);
  }

  async publishSummary(
    count: number,
    cluster: string,
    suppressed: readonly AlertRecord[] = [],
  ): Promise<void> {
    const message = suppressionSummary(count, cluster, suppressed, this.#options);
    await this.#publish(message, "suppression summary", cluster, `summary\n${message.json}`);
  }

  async publishPanic(event: PanicEvent): Promise<void> {
    const message = panicAnnouncement(event);
    await this.#publish(
      message,
      `panic ${event.action} announcement`,
      event.cluster,
      `panic\n${message.json}`,
    );
  }

  /** Releases the sockets of a client this sink created; a client passed in is the caller's to close. */
  close(): void {
    if (this.#ownsClient) this.#client.destroy();
  }

  async #publish(message: OutboundMessage, what: string, group: string, identity: string): Promise<void> {
    try {
      // Well-formed and within SNS's size limit, whatever log text the message carries (snsPublication).
      const publication = snsPublication(message);
      const command = new PublishCommand({
        TopicArn: this.topicArn,
        Subject: publication.subject,
        MessageStructure: "json",
        Message: publication.message,
        MessageAttributes: publication.attributes,
        ...(this.#fifo ? { MessageGroupId: digest(group), MessageDeduplicationId: digest(identity) } : {}),
      });
      await this.#client.send(command);
    } catch (error) {
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new Error(`publishing the ${what} to ${this.topicArn} failed: ${reason}`, { cause: error });
    }
  }
}
