// An SQS queue encrypted with a rotated KMS key, refusing requests that are not over TLS, and the grants a sender
// needs (the queue, and the two KMS calls SQS makes with the sender's credentials). The ingest function's
// failed-payloads queue and the panic expiry's dead-letter queue are built with it, each with a key of its own, under
// the IDs `<id>` and `<id>Key` (those the failed-payloads queue had when it was built by hand, so moving it here
// replaced nothing); so are the alert mail queue and its dead-letter queue, which share one key.
import { Duration, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";

interface QueueSettings {
  /** @default 14 days, the longest SQS allows: the messages wait for an operator. */
  readonly retentionPeriod?: Duration;
  /** @default - SQS's default */
  readonly maxMessageSizeBytes?: number;
  /** @default - SQS's default (30 seconds) */
  readonly visibilityTimeout?: Duration;
  /** Where a message received too often goes. @default - none */
  readonly deadLetterQueue?: sqs.DeadLetterQueue;
}

export type EncryptedQueueProps = QueueSettings &
  (
    | {
        /** What the queue's own key, `<id>Key`, encrypts: for its description. */
        readonly keyDescription: string;
        readonly key?: undefined;
      }
    | {
        /** A key shared with other queues of the same messages (a queue and its dead-letter queue). */
        readonly key: kms.Key;
        readonly keyDescription?: undefined;
      }
  );

export interface EncryptedQueue {
  readonly queue: sqs.Queue;
  readonly key: kms.Key;
}

/** Creates the queue `<id>` and, unless it is given one, its key `<id>Key` directly in `scope`. */
export function encryptedQueue(scope: Construct, id: string, props: EncryptedQueueProps): EncryptedQueue {
  const key =
    props.key !== undefined
      ? props.key
      : new kms.Key(scope, `${id}Key`, {
          description: props.keyDescription,
          enableKeyRotation: true,
          pendingWindow: Duration.days(7),
        });
  const queue = new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.KMS,
    encryptionMasterKey: key,
    enforceSSL: true,
    retentionPeriod: props.retentionPeriod ?? Duration.days(14),
    ...(props.maxMessageSizeBytes === undefined ? {} : { maxMessageSizeBytes: props.maxMessageSizeBytes }),
    ...(props.visibilityTimeout === undefined ? {} : { visibilityTimeout: props.visibilityTimeout }),
    ...(props.deadLetterQueue === undefined ? {} : { deadLetterQueue: props.deadLetterQueue }),
  });
  return { queue, key };
}

/**
 * Lets `principal` send to the queue: exactly sqs:SendMessage, and the KMS calls SQS makes on the sender's
 * behalf to encrypt the message, only through SQS (the stock grantSendMessages adds the queue's inspect
 * actions and kms:Encrypt and ReEncrypt besides). `sid` prefixes the statements' ids when given.
 */
export function grantSend(target: EncryptedQueue, principal: iam.IPrincipal, sid?: string): void {
  const stack = Stack.of(target.queue);
  principal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      ...(sid === undefined ? {} : { sid }),
      actions: ["sqs:SendMessage"],
      resources: [target.queue.queueArn],
    }),
  );
  principal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      ...(sid === undefined ? {} : { sid: `${sid}Key` }),
      actions: ["kms:GenerateDataKey", "kms:Decrypt"],
      resources: [target.key.keyArn],
      conditions: { StringEquals: { "kms:ViaService": `sqs.${stack.region}.${stack.urlSuffix}` } },
    }),
  );
}

/** A Lambda on-failure destination on the queue, granted as `grantSend` does (SqsDestination grants more). */
export class EncryptedQueueDestination implements lambda.IDestination {
  readonly target: EncryptedQueue;

  constructor(target: EncryptedQueue) {
    this.target = target;
  }

  bind(_scope: Construct, fn: lambda.IFunction): lambda.DestinationConfig {
    grantSend(this.target, fn.grantPrincipal);
    return { destination: this.target.queue.queueArn };
  }
}
