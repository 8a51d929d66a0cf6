// The alerts topic: internal denials from the ingest function and panic announcements from the panic
// function, for whatever subscribes (message attributes carry the structure); and the alert e-mails, which are not
// sent from it. SNS suspends an e-mail subscription sent more than 10 messages a second, and one ingest run
// publishes up to its alert cap at once: a mail queue on the alerts topic feeds the mailer, which publishes one
// e-mail (a digest of a batch) per invocation, two invocations at most at once, to a topic of its own where the
// addresses subscribe (functions/mailer/handler.ts: two e-mails a second at most).
import { ArnFormat, Duration, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { MAILER_TIMEOUT_SECONDS } from "../functions/mailer/config.ts";
import { BaseFunction } from "./base-function.ts";
import { type EncryptedQueue, encryptedQueue } from "./encrypted-queue.ts";

export const MAILER_SERVICE_NAME = "calico-flows-mailer";

/**
 * Mailer invocations at once: the event source's own limit (2 is the least it takes), not a reserved concurrency,
 * under which the poller's invocations are throttled and their messages counted as received on the way to the
 * dead-letter queue.
 * With one publish per invocation and a second from each publish to the next (PUBLISH_INTERVAL_MS), it bounds the
 * e-mail topic to two publishes a second.
 */
export const MAIL_MAX_CONCURRENCY = 2;

/** Messages in one e-mail at most; Lambda's own limit on a batch's 6 MB may make it fewer. */
export const MAIL_BATCH_SIZE = 1_000;

/** How long a batch gathers messages: an alert is mailed this late at most, once the queue is not behind. */
export const MAIL_BATCHING_WINDOW = Duration.seconds(60);

/** Receives of a batch whose e-mail failed before its messages go to the mail dead-letter queue. */
export const MAIL_MAX_RECEIVES = 5;

/**
 * How long the mail queue keeps an alert nothing takes (SQS's default). A dead letter keeps the time it was first
 * queued, and its dead-letter queue's 14 days count from then: this leaves one moved as late as it can be 10 days
 * there, for the operator to be reminded (MessagesWaiting) and act. An alert this late is no news by e-mail; it is
 * in the store, and the mail queue's backlog alarm fired days before.
 */
export const MAIL_RETENTION = Duration.days(4);

export interface EncryptedTopicProps {
  readonly displayName: string;
  readonly emails: readonly string[];
  /** Whether this account's CloudWatch alarms in the stack's Region publish to it. @default false */
  readonly alarmsPublish?: boolean;
}

/** An SNS topic encrypted with its own rotated KMS key, refusing publishes that are not over TLS. */
export class EncryptedTopic extends Construct {
  readonly topic: sns.Topic;
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: EncryptedTopicProps) {
    super(scope, id);
    this.key = new kms.Key(this, "Key", {
      description: `Encrypts the ${props.displayName} SNS topic`,
      enableKeyRotation: true,
      pendingWindow: Duration.days(7),
    });
    this.topic = new sns.Topic(this, "Topic", {
      displayName: props.displayName,
      masterKey: this.key,
      enforceSSL: true,
    });
    if (props.alarmsPublish === true) {
      const principal = new iam.ServicePrincipal("cloudwatch.amazonaws.com");
      // CloudWatch publishes as itself, so both the topic and the key must name it. A service principal acts for
      // every account: the conditions (which CloudWatch sends for an alarm's action) keep it to this account's
      // alarms, against the confused deputy. CloudFormation names the alarms: any alarm of this account and Region.
      const stack = Stack.of(this);
      const conditions = {
        StringEquals: { "aws:SourceAccount": stack.account },
        ArnLike: {
          "aws:SourceArn": stack.formatArn({
            service: "cloudwatch",
            resource: "alarm",
            resourceName: "*",
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        },
      };
      this.topic.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: "Publishcloudwatch",
          principals: [principal],
          actions: ["sns:Publish"],
          resources: [this.topic.topicArn],
          conditions,
        }),
      );
      this.key.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [principal],
          actions: ["kms:GenerateDataKey", "kms:Decrypt"],
          resources: ["*"],
          conditions,
        }),
      );
    }
    for (const email of props.emails) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
  }

  /** Lets a function publish: sns:Publish on this topic and the two KMS calls SNS makes on its behalf. */
  grantPublish(fn: BaseFunction): void {
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["sns:Publish"], resources: [this.topic.topicArn] }),
    );
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kms:GenerateDataKey", "kms:Decrypt"],
        resources: [this.key.keyArn],
      }),
    );
  }
}

export interface AlertsProps {
  readonly clusterName: string;
  /** The alert e-mails' addresses, subscribed to the e-mail topic (each must confirm). @default - none */
  readonly emails?: readonly string[];
  readonly logRetention: logs.RetentionDays;
}

export class Alerts extends Construct {
  /** What the publishers publish and machines subscribe to; no address does. */
  readonly topic: EncryptedTopic;
  /** The alert e-mails: the mailer's digests, the only publisher. */
  readonly emailTopic: EncryptedTopic;
  /** The alerts topic's every message (raw: the body is its `default` JSON), for the mailer. */
  readonly mailQueue: EncryptedQueue;
  /** Batches the mailer failed to mail MAIL_MAX_RECEIVES times. */
  readonly mailDeadLetters: EncryptedQueue;
  readonly mailer: BaseFunction;

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    this.topic = new EncryptedTopic(this, "Alerts", { displayName: "calico-flows alerts", emails: [] });
    this.emailTopic = new EncryptedTopic(this, "Emails", {
      displayName: "calico-flows alert e-mails",
      emails: props.emails ?? [],
    });

    const key = new kms.Key(this, "MailKey", {
      description: "Encrypts the calico-flows alert mail queue and its dead-letter queue",
      enableKeyRotation: true,
      pendingWindow: Duration.days(7),
    });
    this.mailDeadLetters = encryptedQueue(this, "MailDeadLetters", { key });
    this.mailQueue = encryptedQueue(this, "MailQueue", {
      key,
      retentionPeriod: MAIL_RETENTION,
      // Lambda's advice for a queue it polls: six times the function's timeout, so that it can retry a throttled
      // invocation before the batch shows in the queue again.
      visibilityTimeout: Duration.seconds(6 * MAILER_TIMEOUT_SECONDS),
      deadLetterQueue: { queue: this.mailDeadLetters.queue, maxReceiveCount: MAIL_MAX_RECEIVES },
    });
    // Also the queue's key policy: SNS encrypts with it as itself, for this topic only.
    this.topic.topic.addSubscription(
      new subscriptions.SqsSubscription(this.mailQueue.queue, { rawMessageDelivery: true }),
    );

    this.mailer = new BaseFunction(this, "Mailer", {
      entry: "functions/mailer/handler.ts",
      serviceName: MAILER_SERVICE_NAME,
      description: `Alert e-mails of ${props.clusterName}: digests of the alerts topic`,
      logRetention: props.logRetention,
      timeout: Duration.seconds(MAILER_TIMEOUT_SECONDS),
      environment: { EMAIL_TOPIC_ARN: this.emailTopic.topic.topicArn, CLUSTER_NAME: props.clusterName },
    });
    this.emailTopic.grantPublish(this.mailer);
    // A failed batch fails whole (no partial responses): its one e-mail was not sent.
    this.mailer.function.addEventSource(
      new SqsEventSource(this.mailQueue.queue, {
        batchSize: MAIL_BATCH_SIZE,
        maxBatchingWindow: MAIL_BATCHING_WINDOW,
        maxConcurrency: MAIL_MAX_CONCURRENCY,
      }),
    );
  }

  /** Sets ALERTS_TOPIC_ARN and grants publishing, together, so neither can be forgotten. */
  bindPublisher(fn: BaseFunction): void {
    fn.addEnvironment("ALERTS_TOPIC_ARN", this.topic.topic.topicArn);
    this.topic.grantPublish(fn);
  }
}
