// The alerts topic: internal denials from the ingest function and panic announcements from the panic
// function, delivered to email and to whatever else subscribes (message attributes carry the structure).
import { Duration, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import type { BaseFunction } from "./base-function.ts";

export interface EncryptedTopicProps {
  readonly displayName: string;
  readonly emails: readonly string[];
  /** Service principals (e.g. cloudwatch.amazonaws.com) that publish on behalf of this account. */
  readonly servicePublishers?: readonly string[];
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
    for (const service of props.servicePublishers ?? []) {
      const principal = new iam.ServicePrincipal(service);
      // Services publish with their own identity, so both the topic and the key must name them; the
      // source-account condition stops another account's resources from using this topic.
      this.topic.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: `Publish${service.split(".")[0]}`,
          principals: [principal],
          actions: ["sns:Publish"],
          resources: [this.topic.topicArn],
          conditions: { StringEquals: { "aws:SourceAccount": Stack.of(this).account } },
        }),
      );
      this.key.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [principal],
          actions: ["kms:GenerateDataKey", "kms:Decrypt"],
          resources: ["*"],
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
  readonly emails: readonly string[];
}

export class Alerts extends Construct {
  readonly topic: EncryptedTopic;

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    this.topic = new EncryptedTopic(this, "Alerts", {
      displayName: "calico-flows alerts",
      emails: props.emails,
    });
  }

  /** Sets ALERTS_TOPIC_ARN and grants publishing, together, so neither can be forgotten. */
  bindPublisher(fn: BaseFunction): void {
    fn.addEnvironment("ALERTS_TOPIC_ARN", this.topic.topic.topicArn);
    this.topic.grantPublish(fn);
  }
}
