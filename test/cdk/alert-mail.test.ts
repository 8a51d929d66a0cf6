// Alert e-mails, as deployed: SNS suspends an e-mail subscription that receives more than 10 messages a second
// (it falls back to PendingConfirmation and is deleted 48 hours later), and one ingest run publishes up to alertCap
// alerts and a summary on the alerts topic at once. So no address subscribes to the alerts topic: a mail queue does,
// and the mailer turns each batch of it into one e-mail on a topic of its own, where the addresses subscribe. The
// stack is synthesized as `cdk synth` builds it (bundling skipped: synth.test.ts bundles for real).
import { readFileSync } from "node:fs";
import { App, type CfnResource } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { loadMailerConfig, MAILER_TIMEOUT_SECONDS } from "../../functions/mailer/config.ts";
import { MAIL_MAX_CONCURRENCY, MAIL_MAX_RECEIVES } from "../../lib/alerts.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

const RECIPIENTS = ["netsec@corp.io", "oncall@corp.io"];

function synth() {
  const app = new App({
    context: { ...cdkJson.context, alertEmails: RECIPIENTS, "aws:cdk:bundling-stacks": [] },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  return { stack, template: Template.fromStack(stack) };
}

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json };
type Statement = { Effect: string; Action: string | string[]; Resource?: unknown; Principal?: unknown };

const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

function logicalId(stack: CalicoFlowsStack, construct: IConstruct): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnResource);
}

describe("alert e-mails", () => {
  let stack: CalicoFlowsStack;
  let template: Template;
  let resources: Record<string, Resource>;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const subscriptionsOf = (topicId: string) =>
    ofType("AWS::SNS::Subscription")
      .map(([, s]) => s.Properties)
      .filter((p) => JSON.stringify(p.TopicArn) === JSON.stringify({ Ref: topicId }));
  const statementsOf = (roleId: string): Statement[] =>
    ofType("AWS::IAM::Policy")
      .filter(([, p]) => list(p.Properties.Roles as unknown[]).some((r) => (r as Json).Ref === roleId))
      .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);

  beforeAll(() => {
    ({ stack, template } = synth());
    resources = template.toJSON().Resources as Record<string, Resource>;
  });

  it("subscribes no address to the alerts topic: only the mail queue, raw, which gets every message", () => {
    const alertsTopic = logicalId(stack, stack.alerts.topic.topic);
    const subscriptions = subscriptionsOf(alertsTopic);
    expect(subscriptions.filter((s) => String(s.Protocol).startsWith("email"))).toEqual([]);
    expect(subscriptions).toEqual([
      {
        Protocol: "sqs",
        TopicArn: { Ref: alertsTopic },
        Endpoint: { "Fn::GetAtt": [logicalId(stack, stack.alerts.mailQueue.queue), "Arn"] },
        // The body is then the message's `default` JSON; no filter policy: every alert, summary and announcement.
        RawMessageDelivery: true,
      },
    ]);
  });

  it("subscribes the configured addresses to an encrypted e-mail topic of their own, and nothing else", () => {
    const emailTopic = logicalId(stack, stack.alerts.emailTopic.topic);
    expect(resources[emailTopic]?.Properties).toMatchObject({
      DisplayName: "calico-flows alert e-mails",
      KmsMasterKeyId: { "Fn::GetAtt": [logicalId(stack, stack.alerts.emailTopic.key), "Arn"] },
    });
    expect(
      subscriptionsOf(emailTopic)
        .map((s) => [s.Protocol, s.Endpoint])
        .sort(),
    ).toEqual(RECIPIENTS.map((r) => ["email", r]));
    template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      Topics: [{ Ref: emailTopic }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Action: "sns:Publish",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });

  it("feeds the mailer from the mail queue in batches of up to 1,000 over 60 s, two invocations at most", () => {
    const mailer = logicalId(stack, stack.alerts.mailer.function);
    const mappings = ofType("AWS::Lambda::EventSourceMapping").map(([, m]) => m.Properties);
    expect(mappings).toEqual([
      {
        Tags: expect.any(Array),
        FunctionName: { Ref: mailer },
        EventSourceArn: { "Fn::GetAtt": [logicalId(stack, stack.alerts.mailQueue.queue), "Arn"] },
        BatchSize: 1000,
        MaximumBatchingWindowInSeconds: 60,
        // The event source's own limit: a reserved concurrency below the poller's makes it throttle, and the
        // throttled messages count receives towards the dead-letter queue.
        ScalingConfig: { MaximumConcurrency: MAIL_MAX_CONCURRENCY },
      },
    ]);
    expect(MAIL_MAX_CONCURRENCY).toBe(2);
    expect(resources[mailer]?.Properties.ReservedConcurrentExecutions).toBeUndefined();
    expect(resources[mailer]?.Properties.Timeout).toBe(MAILER_TIMEOUT_SECONDS);
  });

  it("keeps a batch that fails in the queue, then in an encrypted dead-letter queue after a few receives", () => {
    const queue = resources[logicalId(stack, stack.alerts.mailQueue.queue)]?.Properties ?? {};
    const deadLetters = logicalId(stack, stack.alerts.mailDeadLetters.queue);
    expect(queue.RedrivePolicy).toEqual({
      deadLetterTargetArn: { "Fn::GetAtt": [deadLetters, "Arn"] },
      maxReceiveCount: MAIL_MAX_RECEIVES,
    });
    expect(MAIL_MAX_RECEIVES).toBeGreaterThanOrEqual(3);
    // Lambda's advice: six times the function's timeout, so that a throttled batch is retried before it shows again.
    expect(queue.VisibilityTimeout).toBe(6 * MAILER_TIMEOUT_SECONDS);
    // One key for the queue and its dead letters.
    const key = { "Fn::GetAtt": [logicalId(stack, stack.alerts.mailQueue.key), "Arn"] };
    expect(queue.KmsMasterKeyId).toEqual(key);
    expect(resources[deadLetters]?.Properties.KmsMasterKeyId).toEqual(key);
    for (const id of [logicalId(stack, stack.alerts.mailQueue.queue), deadLetters]) {
      template.hasResourceProperties("AWS::SQS::QueuePolicy", {
        Queues: [{ Ref: id }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
          ]),
        },
      });
    }
  });

  it("keeps a dead letter longer than its source queue keeps a message, as SQS advises", () => {
    // A dead letter keeps the time it was first queued, from which its dead-letter queue's retention counts: one moved
    // late in the source queue's retention would be deleted before any reminder (AWS SQS guide, "Setting-up
    // dead-letter queue retention"). The mail queue is the stack's one source of dead letters; the failed-payloads and
    // the panic dead-letter queues are sent theirs by Lambda and Scheduler, fresh.
    const retention = (id: string) => resources[id]?.Properties.MessageRetentionPeriod as number;
    const sources = ofType("AWS::SQS::Queue").filter(([, q]) => q.Properties.RedrivePolicy !== undefined);
    expect(sources.map(([id]) => id)).toEqual([logicalId(stack, stack.alerts.mailQueue.queue)]);
    for (const [id, queue] of sources) {
      const target = (queue.Properties.RedrivePolicy as { deadLetterTargetArn: { "Fn::GetAtt": [string] } })
        .deadLetterTargetArn["Fn::GetAtt"][0];
      // A week at least left after the move, so that the day-old reminder (MessagesWaiting) comes well before.
      expect(retention(target) - retention(id)).toBeGreaterThanOrEqual(7 * 86_400);
    }
  });

  it("lets SNS put the alerts topic's messages in the encrypted queue, and no other topic's", () => {
    const alertsTopic = { Ref: logicalId(stack, stack.alerts.topic.topic) };
    const queueId = logicalId(stack, stack.alerts.mailQueue.queue);
    template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [{ Ref: queueId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Allow",
            Principal: { Service: "sns.amazonaws.com" },
            Action: "sqs:SendMessage",
            Condition: { ArnEquals: { "aws:SourceArn": alertsTopic } },
          }),
        ]),
      },
    });
    // SNS encrypts what it sends with the queue's key, as itself: the key's policy must name it.
    const key = resources[logicalId(stack, stack.alerts.mailQueue.key)]?.Properties as {
      KeyPolicy: { Statement: Statement[] & { Condition?: Json }[] };
    };
    const sns = key.KeyPolicy.Statement.filter(
      (s) => JSON.stringify(s.Principal) === JSON.stringify({ Service: "sns.amazonaws.com" }),
    );
    expect(sns).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Action: ["kms:Decrypt", "kms:GenerateDataKey"],
        Condition: { ArnEquals: { "aws:SourceArn": alertsTopic } },
      }),
    ]);
  });

  it("lets the mailer read its queue and publish to the e-mail topic only", () => {
    const role = logicalId(stack, stack.alerts.mailer.role);
    const statements = statementsOf(role);
    const on = (action: string) =>
      statements.filter((s) => list(s.Action).includes(action)).flatMap((s) => list(s.Resource));
    expect(on("sns:Publish")).toEqual([{ Ref: logicalId(stack, stack.alerts.emailTopic.topic) }]);
    expect(on("sqs:ReceiveMessage")).toEqual([
      { "Fn::GetAtt": [logicalId(stack, stack.alerts.mailQueue.queue), "Arn"] },
    ]);
    expect(on("sqs:SendMessage")).toEqual([]);
    // The e-mail topic's key to publish, the queue's to read.
    expect(on("kms:GenerateDataKey")).toEqual([
      { "Fn::GetAtt": [logicalId(stack, stack.alerts.emailTopic.key), "Arn"] },
    ]);
    expect(new Set(on("kms:Decrypt").map((r) => JSON.stringify(r)))).toEqual(
      new Set(
        [stack.alerts.emailTopic.key, stack.alerts.mailQueue.key].map((k) =>
          JSON.stringify({ "Fn::GetAtt": [logicalId(stack, k), "Arn"] }),
        ),
      ),
    );
  });

  it("gives the mailer the e-mail topic, the cluster and the stack's API, which its configuration accepts", () => {
    const mailer = logicalId(stack, stack.alerts.mailer.function);
    const vars = (resources[mailer]?.Properties.Environment as { Variables: Json } | undefined)?.Variables;
    expect(vars).toMatchObject({
      POWERTOOLS_SERVICE_NAME: "calico-flows-mailer",
      EMAIL_TOPIC_ARN: { Ref: logicalId(stack, stack.alerts.emailTopic.topic) },
      CLUSTER_NAME: "demo-cluster",
    });
    // The e-mails' `calico-flows` commands name the stack's API, as the ingest function's did.
    const ingest = resources[logicalId(stack, stack.ingest.function.function)]?.Properties.Environment as {
      Variables: Json;
    };
    expect(vars?.API_URL).toEqual(ingest.Variables.API_URL);
    expect(JSON.stringify(vars?.API_URL)).toContain(`"Ref":"${logicalId(stack, stack.api.restApi)}"`);
    const config = loadMailerConfig({
      EMAIL_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:emails",
      CLUSTER_NAME: String(vars?.CLUSTER_NAME),
      API_URL: "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/",
    });
    expect(config.CLUSTER_NAME).toBe("demo-cluster");
  });

  it("alarms on the mailer's errors and on messages in the mail dead-letter queue, to the operations topic", () => {
    const ops = { Ref: logicalId(stack, stack.monitoring.operations.topic) };
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: logicalId(stack, stack.alerts.mailer.function) } }],
      AlarmActions: [ops],
      OKActions: [ops],
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [
        {
          Name: "QueueName",
          Value: { "Fn::GetAtt": [logicalId(stack, stack.alerts.mailDeadLetters.queue), "QueueName"] },
        },
      ],
      Threshold: 1,
      TreatMissingData: "ignore",
      AlarmActions: [ops],
    });
  });

  it("outputs the e-mail topic's ARN beside the alerts topic's", () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.AlertsTopicArn?.Value).toEqual({ Ref: logicalId(stack, stack.alerts.topic.topic) });
    expect(outputs.AlertEmailsTopicArn?.Value).toEqual({
      Ref: logicalId(stack, stack.alerts.emailTopic.topic),
    });
  });
});
