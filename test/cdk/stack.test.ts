// Fine-grained assertions on the synthesized stack (bundling skipped: the code is bundled for real in
// synth.test.ts), the cdk-nag AwsSolutions pack, and one snapshot of the whole template.
import { readFileSync } from "node:fs";
import { App, type CfnResource, Validations } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { FLOW_INDEXES, TABLE_KEYS, TTL_ATTRIBUTE } from "../../functions/adapters/dynamo/schema.ts";
import { loadIngestConfig, STORE_RESERVE_MS } from "../../functions/ingest/config.ts";
import { loadMailerConfig } from "../../functions/mailer/config.ts";
import { loadPanicConfig } from "../../functions/panic/config.ts";
import { loadQueryConfig } from "../../functions/query/config.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { PANIC_KUBERNETES_GROUP, READER_KUBERNETES_GROUP } from "../../lib/cluster-access.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

const LOG_GROUPS = ["/aws/containerinsights/demo-cluster/host", "/eks/demo-cluster/nodes/kernel"];
const OPERATOR = "arn:aws:iam::123456789012:role/platform-oncall";

/** The app as `cdk synth` builds it (cdk.json's flags and example), with overrides, bundling skipped. */
function synth(overrides: Record<string, unknown> = {}) {
  const app = new App({
    context: { ...cdkJson.context, logGroupNames: LOG_GROUPS, ...overrides, "aws:cdk:bundling-stacks": [] },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  return { app, stack, template: Template.fromStack(stack) };
}

type Json = Record<string, unknown>;
type Statement = {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: Json;
  Principal?: unknown;
  Sid?: string;
};

const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

function logicalId(stack: CalicoFlowsStack, construct: IConstruct): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnResource);
}

/** Every statement of every policy attached to a role. */
function statementsOf(template: Template, roleId: string): Statement[] {
  const policies = Object.values(template.findResources("AWS::IAM::Policy")) as { Properties: Json }[];
  return policies
    .filter((p) =>
      (p.Properties.Roles as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId })),
    )
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

function actionsOf(statements: Statement[]): string[] {
  return [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
}

function statementFor(statements: Statement[], action: string): Statement {
  const found = statements.filter((s) => s.Effect === "Allow" && list(s.Action).includes(action));
  expect(found, `one statement grants ${action}`).toHaveLength(1);
  return found[0] as Statement;
}

const getAtt = (id: string, attribute = "Arn") => ({ "Fn::GetAtt": [id, attribute] });

/** A KMS grant's condition that the key is used only through SQS in the stack's region. */
const viaSqs = {
  StringEquals: {
    "kms:ViaService": {
      "Fn::Join": ["", ["sqs.", { Ref: "AWS::Region" }, ".", { Ref: "AWS::URLSuffix" }]],
    },
  },
};

/** A service principal's grant for CloudWatch alarms of this stack's account and Region (the confused deputy). */
const alarmsOfThisAccount = {
  StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } },
  ArnLike: {
    "aws:SourceArn": {
      "Fn::Join": [
        "",
        [
          "arn:",
          { Ref: "AWS::Partition" },
          ":cloudwatch:",
          { Ref: "AWS::Region" },
          ":",
          { Ref: "AWS::AccountId" },
          ":alarm:*",
        ],
      ],
    },
  },
};

/** The queue's policy denies every request not made over TLS. */
function expectTlsOnly(template: Template, queueId: string): void {
  template.hasResourceProperties("AWS::SQS::QueuePolicy", {
    Queues: [{ Ref: queueId }],
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Effect: "Deny",
          Action: "sqs:*",
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        }),
      ]),
    },
  });
}

describe("CalicoFlowsStack", () => {
  let stack: CalicoFlowsStack;
  let template: Template;
  let app: App;
  let ids: {
    table: string;
    ingest: string;
    panic: string;
    query: string;
    mailer: string;
    ingestRole: string;
    panicRole: string;
    queryRole: string;
    mailerRole: string;
    schedulerRole: string;
    queue: string;
    queueKey: string;
    deadLetters: string;
    deadLettersKey: string;
    alertsTopic: string;
    alertsKey: string;
    emailTopic: string;
    opsTopic: string;
    scheduleGroup: string;
  };

  beforeAll(() => {
    ({ app, stack, template } = synth());
    ids = {
      table: logicalId(stack, stack.flowStore.table),
      ingest: logicalId(stack, stack.ingest.function.function),
      panic: logicalId(stack, stack.panic.function.function),
      query: logicalId(stack, stack.queries.function.function),
      mailer: logicalId(stack, stack.alerts.mailer.function),
      ingestRole: logicalId(stack, stack.ingest.function.role),
      panicRole: logicalId(stack, stack.panic.function.role),
      queryRole: logicalId(stack, stack.queries.function.role),
      mailerRole: logicalId(stack, stack.alerts.mailer.role),
      schedulerRole: logicalId(stack, stack.panic.schedulerRole),
      queue: logicalId(stack, stack.ingest.failedPayloads),
      queueKey: logicalId(stack, stack.ingest.failedPayloadsKey),
      deadLetters: logicalId(stack, stack.panic.deadLetters.queue),
      deadLettersKey: logicalId(stack, stack.panic.deadLetters.key),
      alertsTopic: logicalId(stack, stack.alerts.topic.topic),
      alertsKey: logicalId(stack, stack.alerts.topic.key),
      emailTopic: logicalId(stack, stack.alerts.emailTopic.topic),
      opsTopic: logicalId(stack, stack.monitoring.operations.topic),
      scheduleGroup: logicalId(stack, stack.panic.scheduleGroup),
    };
  });

  describe("functions", () => {
    it("run on nodejs24.x, ARM64, ESM bundles, with tracing and their own log group", () => {
      const functions = template.findResources("AWS::Lambda::Function");
      expect(Object.keys(functions).sort()).toEqual([ids.ingest, ids.panic, ids.query, ids.mailer].sort());
      for (const [id, fn] of Object.entries(functions) as [string, { Properties: Json }][]) {
        expect(fn.Properties, id).toMatchObject({
          Runtime: "nodejs24.x",
          Architectures: ["arm64"],
          Handler: "index.handler",
          TracingConfig: { Mode: "Active" },
          LoggingConfig: { LogGroup: { Ref: expect.any(String) } },
        });
      }
      // The four functions' groups, the API's access logs and its execution logs.
      template.resourcePropertiesCountIs("AWS::Logs::LogGroup", { RetentionInDays: 30 }, 6);
    });

    it.each([
      ["ingest", "calico-flows-ingest"],
      ["panic", "calico-flows-panic"],
      ["query", "calico-flows-query"],
      ["mailer", "calico-flows-mailer"],
    ] as const)("%s sets the Powertools service and namespace", (name, service) => {
      template.hasResourceProperties("AWS::Lambda::Function", {
        FunctionName: Match.absent(),
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: service,
            POWERTOOLS_METRICS_NAMESPACE: "CalicoFlows",
            NODE_OPTIONS: "--enable-source-maps",
          }),
        },
        Description: Match.stringLikeRegexp(
          { query: "queries", panic: "panic", mailer: "Alert e-mails", ingest: "flows and alerts" }[name],
        ),
      });
    });

    /** A function's environment with deploy-time references replaced by values of their shape. */
    function environmentOf(id: string): Record<string, string> {
      const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Json }>;
      const fn = resources[id] as unknown as { Properties: { Environment: { Variables: Json } } };
      const env: Record<string, string> = {};
      for (const [key, value] of Object.entries(fn.Properties.Environment.Variables)) {
        const referenced = (value as { "Fn::GetAtt"?: [string, string] })["Fn::GetAtt"]?.[0] ?? "";
        env[key] =
          typeof value === "string"
            ? value
            : key === "API_URL"
              ? "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/"
              : resources[referenced]?.Type === "AWS::SQS::Queue"
                ? "arn:aws:sqs:eu-west-1:123456789012:resolved"
                : key.endsWith("_ARN")
                  ? "arn:aws:sns:eu-west-1:123456789012:resolved"
                  : "resolved-name";
      }
      return env;
    }

    const powertools = [
      "NODE_OPTIONS",
      "POWERTOOLS_LOG_LEVEL",
      "POWERTOOLS_METRICS_NAMESPACE",
      "POWERTOOLS_SERVICE_NAME",
      "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
    ];

    it("gives the ingest function exactly the variables its config reads, and values it accepts", () => {
      const env = environmentOf(ids.ingest);
      expect(Object.keys(env).sort()).toEqual(
        [
          ...powertools,
          "AGGREGATION_SECONDS",
          "ALERTS_TOPIC_ARN",
          "ALERT_WINDOW_MINUTES",
          "API_URL",
          "ATTRIBUTION",
          "CLUSTER_NAME",
          "INTERNAL_CIDRS",
          "KUBE_TIMEOUT_SECONDS",
          "LOG_PREFIX",
          "RETENTION_DAYS",
          "TABLE_NAME",
        ].sort(),
      );
      const config = loadIngestConfig(env);
      expect(config).toMatchObject({
        CLUSTER_NAME: "demo-cluster",
        INTERNAL_CIDRS: ["192.168.0.0/16"],
        AGGREGATION_SECONDS: 60,
        ALERT_WINDOW_MINUTES: 15,
        RETENTION_DAYS: 30,
        LOG_PREFIX: "calico-packet",
        ATTRIBUTION: "eks",
      });
      // The stack's own API, which the alert e-mails' commands name (`--api`).
      const vars = (
        template.toJSON().Resources[ids.ingest] as { Properties: { Environment: { Variables: Json } } }
      ).Properties.Environment.Variables;
      expect(JSON.stringify(vars.API_URL)).toContain(`"Ref":"${logicalId(stack, stack.api.restApi)}"`);
    });

    it("passes the optional ingest settings only when they are configured", () => {
      const optional = synth({
        logPrefixFormat: "calico-packet %t %n",
        namespaceLabelKeys: "team,tenant",
        scanThreshold: 20,
        alertCap: 10,
      });
      const fn = Object.values(optional.template.findResources("AWS::Lambda::Function")).find((f) =>
        (f as { Properties: Json }).Properties.Description?.toString().includes("flows and alerts"),
      ) as { Properties: { Environment: { Variables: Json } } };
      expect(fn.Properties.Environment.Variables).toMatchObject({
        LOG_PREFIX_FORMAT: "calico-packet %t %n",
        NAMESPACE_LABEL_KEYS: "team,tenant",
        SCAN_THRESHOLD: "20",
        ALERT_CAP: "10",
      });
    });

    it("gives the panic function exactly the variables its config reads, and values it accepts", () => {
      const env = environmentOf(ids.panic);
      expect(Object.keys(env).sort()).toEqual(
        [
          ...powertools,
          "ALERTS_TOPIC_ARN",
          "CALICO_API_GROUP",
          "CLUSTER_NAME",
          "KUBE_TIMEOUT_SECONDS",
          "PANIC_NAMESPACE_SELECTOR",
          "PANIC_ORDER",
          "PANIC_POLICY_NAME",
          "PANIC_TIER",
          "PANIC_TTL_MINUTES",
          "PANIC_TYPES",
          "SCHEDULER_ROLE_ARN",
          "SCHEDULE_DEAD_LETTER_QUEUE_ARN",
          "SCHEDULE_GROUP_NAME",
          "TABLE_NAME",
        ].sort(),
      );
      const config = loadPanicConfig(env);
      expect(config.settings).toEqual({
        apiGroup: "projectcalico.org/v3",
        name: "allow-all",
        namespaceSelector: "baseten.co/organization == 'true'",
        order: 100,
        tier: "default",
        types: ["Ingress", "Egress"],
      });
      expect(config.defaultTtlMinutes).toBe(60);
      // Expiry needs all three: the function refuses TTLs when any is missing.
      expect(config.scheduler).toBeDefined();
      expect(env.SCHEDULE_GROUP_NAME).toBe(stack.panic.scheduleGroup.scheduleGroupName);
      expect(config.scheduler?.deadLetterArn).toBe("arn:aws:sqs:eu-west-1:123456789012:resolved");
    });

    it("reserves concurrency for the panic function only when configured, and for no other function", () => {
      const reserved = (t: Template) =>
        Object.values(t.findResources("AWS::Lambda::Function")).map((f) => {
          const p = (f as { Properties: Json }).Properties;
          const vars = (p.Environment as { Variables: Json }).Variables;
          return [vars.POWERTOOLS_SERVICE_NAME, p.ReservedConcurrentExecutions];
        });
      expect(reserved(template).every(([, n]) => n === undefined)).toBe(true);
      expect(Object.fromEntries(reserved(synth({ panicReservedConcurrency: 3 }).template))).toEqual({
        "calico-flows-ingest": undefined,
        "calico-flows-panic": 3,
        "calico-flows-query": undefined,
        "calico-flows-mailer": undefined,
      });
    });

    it("names the panic expiry's dead-letter queue in SCHEDULE_DEAD_LETTER_QUEUE_ARN", () => {
      const vars = (
        template.toJSON().Resources[ids.panic] as { Properties: { Environment: { Variables: Json } } }
      ).Properties.Environment.Variables;
      expect(vars.SCHEDULE_DEAD_LETTER_QUEUE_ARN).toEqual(getAtt(ids.deadLetters));
    });

    it("gives the query function exactly the variables its config reads", () => {
      const env = environmentOf(ids.query);
      // No bucket length: queries read every length the ingest may have counted in (query/handler.ts).
      expect(Object.keys(env).sort()).toEqual([...powertools, "CLUSTER_NAME", "TABLE_NAME"].sort());
      expect(loadQueryConfig(env)).toEqual({ CLUSTER_NAME: "demo-cluster", TABLE_NAME: "resolved-name" });
    });

    it("gives the mailer exactly the variables its config reads, and values it accepts", () => {
      const env = environmentOf(ids.mailer);
      expect(Object.keys(env).sort()).toEqual(
        [...powertools, "API_URL", "CLUSTER_NAME", "EMAIL_TOPIC_ARN"].sort(),
      );
      expect(loadMailerConfig(env)).toEqual({
        EMAIL_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:resolved",
        CLUSTER_NAME: "demo-cluster",
        API_URL: "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/",
      });
    });

    it("points TABLE_NAME and ALERTS_TOPIC_ARN at this stack's table and alerts topic", () => {
      for (const id of [ids.ingest, ids.panic, ids.query]) {
        const vars = (template.toJSON().Resources[id] as { Properties: { Environment: { Variables: Json } } })
          .Properties.Environment.Variables;
        expect(vars.TABLE_NAME).toEqual({ Ref: ids.table });
        if (id !== ids.query) expect(vars.ALERTS_TOPIC_ARN).toEqual({ Ref: ids.alertsTopic });
      }
    });
  });

  describe("ingest", () => {
    it("subscribes every node log group with the prefix as a quoted term, to the ingest function", () => {
      template.resourceCountIs("AWS::Logs::SubscriptionFilter", LOG_GROUPS.length);
      for (const logGroupName of LOG_GROUPS) {
        template.hasResourceProperties("AWS::Logs::SubscriptionFilter", {
          LogGroupName: logGroupName,
          FilterPattern: '"calico-packet"',
          DestinationArn: getAtt(ids.ingest),
          FilterName: "calico-flows-demo-cluster",
        });
        // CloudWatch Logs may invoke the function for this log group only.
        template.hasResourceProperties("AWS::Lambda::Permission", {
          Action: "lambda:InvokeFunction",
          FunctionName: getAtt(ids.ingest),
          Principal: "logs.amazonaws.com",
          SourceArn: {
            "Fn::Join": ["", Match.arrayWith([Match.stringLikeRegexp(`:log-group:${logGroupName}:\\*$`)])],
          },
        });
      }
    });

    it("filters on a custom prefix", () => {
      synth({ logPrefix: "denied-pkt" }).template.allResourcesProperties("AWS::Logs::SubscriptionFilter", {
        FilterPattern: '"denied-pkt"',
      });
    });

    it("retries asynchronous invocations twice and then sends them to the failed-payloads queue", () => {
      // One for each function invoked asynchronously: ingest (CloudWatch Logs) and panic (its expiry).
      template.resourceCountIs("AWS::Lambda::EventInvokeConfig", 2);
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        FunctionName: { Ref: ids.ingest },
        Qualifier: "$LATEST",
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 6 * 3600,
        DestinationConfig: { OnFailure: { Destination: getAtt(ids.queue) } },
      });
    });

    it("gives the ingest function time to store before the reserve it keeps for its memo (STORE_RESERVE_MS)", () => {
      const fn = template.findResources("AWS::Lambda::Function")[ids.ingest] as {
        Properties: { Timeout: number };
      };
      // At least a minute to attribute and store a delivery, then the reserve to fail cleanly.
      expect(fn.Properties.Timeout * 1000 - STORE_RESERVE_MS).toBeGreaterThanOrEqual(60_000);
    });

    it("keeps failed payloads encrypted with a rotated key, over TLS only, for 14 days", () => {
      template.hasResourceProperties("AWS::SQS::Queue", {
        KmsMasterKeyId: getAtt(ids.queueKey),
        MessageRetentionPeriod: 14 * 86400,
        MaximumMessageSize: 1_048_576,
      });
      template.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
      expectTlsOnly(template, ids.queue);
    });
  });

  describe("panic expiry", () => {
    /** Statements of a role that grant `action` on `resource`. */
    const granting = (role: string, action: string, resource: unknown) =>
      statementsOf(template, role).filter(
        (s) =>
          list(s.Action).includes(action) &&
          list(s.Resource).some((r) => JSON.stringify(r) === JSON.stringify(resource)),
      );

    it("keeps missed reverts in a standard queue encrypted with its own rotated key, over TLS only, 14 days", () => {
      const queue = template.toJSON().Resources[ids.deadLetters] as { Type: string; Properties: Json };
      expect(queue.Type).toBe("AWS::SQS::Queue");
      // Scheduler takes no FIFO queue as a dead-letter queue, nor does Lambda as a destination.
      expect(queue.Properties).toMatchObject({
        KmsMasterKeyId: getAtt(ids.deadLettersKey),
        MessageRetentionPeriod: 14 * 86400,
      });
      expect(queue.Properties.FifoQueue).toBeUndefined();
      expect(ids.deadLettersKey).not.toBe(ids.queueKey);
      const key = template.toJSON().Resources[ids.deadLettersKey] as { Type: string; Properties: Json };
      expect(key).toMatchObject({ Type: "AWS::KMS::Key", Properties: { EnableKeyRotation: true } });
      expectTlsOnly(template, ids.deadLetters);
    });

    it("lets the scheduler role send dead-letter events there, using the key through SQS only", () => {
      const send = granting(ids.schedulerRole, "sqs:SendMessage", getAtt(ids.deadLetters));
      expect(send).toHaveLength(1);
      expect(send[0]?.Condition).toBeUndefined();
      for (const action of ["kms:GenerateDataKey", "kms:Decrypt"]) {
        const key = granting(ids.schedulerRole, action, getAtt(ids.deadLettersKey));
        expect(key, action).toHaveLength(1);
        expect(key[0]?.Condition, action).toEqual(viaSqs);
      }
      // Nothing else of the queue's, and no other key.
      expect(
        statementsOf(template, ids.schedulerRole).flatMap((s) =>
          list(s.Resource).map((r) => JSON.stringify(r)),
        ),
      ).toEqual(
        expect.not.arrayContaining([JSON.stringify(getAtt(ids.queue)), JSON.stringify(getAtt(ids.queueKey))]),
      );
    });

    it("lets only this stack's schedule group assume the scheduler role, whatever it is granted", () => {
      const role = template.toJSON().Resources[ids.schedulerRole] as {
        Properties: { AssumeRolePolicyDocument: { Statement: Statement[] } };
      };
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Effect: "Allow",
          Action: "sts:AssumeRole",
          Principal: { Service: "scheduler.amazonaws.com" },
          Condition: {
            StringEquals: {
              "aws:SourceAccount": { Ref: "AWS::AccountId" },
              "aws:SourceArn": getAtt(ids.scheduleGroup),
            },
          },
        },
      ]);
    });

    it("sends a revert the panic function failed twice more, or could not run within the hour, to the same queue", () => {
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        FunctionName: { Ref: ids.panic },
        Qualifier: "$LATEST",
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 3600,
        DestinationConfig: { OnFailure: { Destination: getAtt(ids.deadLetters) } },
      });
      // Lambda sends the failure record as the function's role.
      expect(granting(ids.panicRole, "sqs:SendMessage", getAtt(ids.deadLetters))).toHaveLength(1);
      for (const action of ["kms:GenerateDataKey", "kms:Decrypt"]) {
        const key = granting(ids.panicRole, action, getAtt(ids.deadLettersKey));
        expect(key, action).toHaveLength(1);
        expect(key[0]?.Condition, action).toEqual(viaSqs);
      }
    });
  });

  describe("flow store", () => {
    it("is on demand, recoverable, encrypted, expiring, retained, and has the store's indexes", () => {
      template.resourceCountIs("AWS::DynamoDB::Table", 1);
      template.hasResource("AWS::DynamoDB::Table", {
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
        Properties: {
          BillingMode: "PAY_PER_REQUEST",
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          SSESpecification: { SSEEnabled: true },
          TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
          DeletionProtectionEnabled: true,
          KeySchema: [
            { AttributeName: TABLE_KEYS.partitionKey, KeyType: "HASH" },
            { AttributeName: TABLE_KEYS.sortKey, KeyType: "RANGE" },
          ],
          GlobalSecondaryIndexes: FLOW_INDEXES.map((index) => ({
            IndexName: index.indexName,
            KeySchema: [
              { AttributeName: index.partitionKey, KeyType: "HASH" },
              { AttributeName: index.sortKey, KeyType: "RANGE" },
            ],
            Projection: {
              ProjectionType: index.projection.type,
              ...(index.projection.nonKeyAttributes
                ? { NonKeyAttributes: [...index.projection.nonKeyAttributes] }
                : {}),
            },
          })),
        },
      });
    });
  });

  describe("topics", () => {
    it("encrypts the three topics with their own rotated keys and refuses publishing without TLS", () => {
      template.resourceCountIs("AWS::SNS::Topic", 3);
      template.allResourcesProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
      // The three topics', the failed payloads', the panic expiry's dead letters' and the mail queue's (with its
      // dead letters).
      template.resourceCountIs("AWS::KMS::Key", 6);
      template.allResourcesProperties("AWS::KMS::Key", { EnableKeyRotation: true });
      for (const topic of [ids.alertsTopic, ids.emailTopic, ids.opsTopic]) {
        template.hasResourceProperties("AWS::SNS::TopicPolicy", {
          Topics: [{ Ref: topic }],
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
      }
    });

    it("lets CloudWatch alarms publish to the operations topic for this account only", () => {
      template.hasResourceProperties("AWS::SNS::TopicPolicy", {
        Topics: [{ Ref: ids.opsTopic }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: "Allow",
              Principal: { Service: "cloudwatch.amazonaws.com" },
              Action: "sns:Publish",
              Condition: alarmsOfThisAccount,
            }),
          ]),
        },
      });
    });

    it("subscribes the configured addresses by email: the alert addresses to the e-mail topic, not the alerts topic", () => {
      // The two addresses, and the mail queue on the alerts topic (alert-mail.test.ts).
      template.resourceCountIs("AWS::SNS::Subscription", 3);
      template.resourcePropertiesCountIs("AWS::SNS::Subscription", { Protocol: "email" }, 2);
      template.hasResourceProperties("AWS::SNS::Subscription", {
        Protocol: "email",
        Endpoint: "platform-alerts@example.com",
        TopicArn: { Ref: ids.emailTopic },
      });
      template.hasResourceProperties("AWS::SNS::Subscription", {
        Protocol: "email",
        Endpoint: "platform-oncall@example.com",
        TopicArn: { Ref: ids.opsTopic },
      });
    });
  });

  describe("API", () => {
    it("requires IAM authorization on every method", () => {
      const methods = template.findResources("AWS::ApiGateway::Method");
      expect(Object.keys(methods)).toHaveLength(5);
      for (const [id, method] of Object.entries(methods) as [string, { Properties: Json }][]) {
        expect(method.Properties.AuthorizationType, id).toBe("AWS_IAM");
      }
    });

    it("routes /panic to the panic function and /flows and /alerts to the query function", () => {
      const routes = (
        Object.values(template.findResources("AWS::ApiGateway::Method")) as { Properties: Json }[]
      ).map((m) => {
        const uri = JSON.stringify((m.Properties.Integration as Json).Uri);
        const target = uri.includes(ids.panic) ? "panic" : uri.includes(ids.query) ? "query" : "?";
        return `${m.Properties.HttpMethod} ${target}`;
      });
      expect(routes.sort()).toEqual(["DELETE panic", "GET panic", "GET query", "GET query", "POST panic"]);
      template.hasResourceProperties("AWS::ApiGateway::Resource", { PathPart: "panic" });
      template.hasResourceProperties("AWS::ApiGateway::Resource", { PathPart: "flows" });
      template.hasResourceProperties("AWS::ApiGateway::Resource", { PathPart: "alerts" });
    });

    it("reserves /panic for the configured operators in the resource policy", () => {
      const api = Object.values(template.findResources("AWS::ApiGateway::RestApi"))[0] as {
        Properties: Json;
      };
      const statements = (api.Properties.Policy as { Statement: Statement[] }).Statement;
      const deny = statements.find((s) => s.Effect === "Deny");
      expect(deny).toMatchObject({
        Action: "execute-api:Invoke",
        Principal: { AWS: "*" },
        Resource: ["execute-api:/*/*/panic", "execute-api:/*/*/panic/*"],
        Condition: { ArnNotLike: { "aws:PrincipalArn": [OPERATOR] } },
      });
      const allows = statements.filter((s) => s.Effect === "Allow");
      expect(allows).toHaveLength(2);
      // Everyone else is this account's principals, decided by their own IAM policies.
      expect(allows.map((s) => s.Principal)).toContainEqual({
        AWS: {
          "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":iam::", { Ref: "AWS::AccountId" }, ":root"]],
        },
      });
      expect(allows.find((s) => s.Condition !== undefined)?.Condition).toEqual({
        ArnLike: { "aws:PrincipalArn": [OPERATOR] },
      });
    });

    it("leaves body validation to the panic function, which audits and announces every refused body", () => {
      // A gateway model would answer 400 in its own shape before the function runs: unaudited, unannounced.
      template.resourceCountIs("AWS::ApiGateway::RequestValidator", 0);
      template.resourceCountIs("AWS::ApiGateway::Model", 0);
      template.resourceCountIs("AWS::ApiGateway::GatewayResponse", 0);
      const methods = Object.values(template.findResources("AWS::ApiGateway::Method")) as {
        Properties: Json;
      }[];
      expect(methods).toHaveLength(5);
      for (const method of methods) {
        expect(method.Properties).not.toHaveProperty("RequestValidatorId");
        expect(method.Properties).not.toHaveProperty("RequestModels");
      }
    });

    it("throttles, logs access as JSON with the caller, traces, and keeps bodies out of logs", () => {
      template.hasResourceProperties("AWS::ApiGateway::Stage", {
        StageName: "v1",
        TracingEnabled: true,
        AccessLogSetting: {
          DestinationArn: {
            "Fn::Join": ["", Match.arrayWith([{ Ref: logicalId(stack, stack.api.accessLogs) }])],
          },
          Format: Match.stringLikeRegexp(
            '"user":"\\$context.identity.user","caller":"\\$context.identity.caller"',
          ),
        },
        MethodSettings: Match.arrayWith([
          Match.objectLike({
            HttpMethod: "*",
            ResourcePath: "/*",
            LoggingLevel: "ERROR",
            DataTraceEnabled: false,
            ThrottlingRateLimit: 25,
            ThrottlingBurstLimit: 50,
          }),
          Match.objectLike({
            HttpMethod: "POST",
            ResourcePath: "/~1panic",
            ThrottlingRateLimit: 1,
            ThrottlingBurstLimit: 5,
          }),
          Match.objectLike({
            HttpMethod: "DELETE",
            ResourcePath: "/~1panic",
            ThrottlingRateLimit: 1,
            ThrottlingBurstLimit: 5,
          }),
        ]),
      });
    });
  });

  describe("permissions", () => {
    const basics = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "xray:PutTelemetryRecords",
      "xray:PutTraceSegments",
    ];

    it("gives each role exactly the actions its function calls", () => {
      expect(actionsOf(statementsOf(template, ids.ingestRole))).toEqual(
        [
          ...basics,
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:Query",
          "dynamodb:UpdateItem",
          "eks:DescribeCluster",
          "kms:Decrypt",
          "kms:GenerateDataKey",
          "sns:Publish",
          "sqs:SendMessage",
        ].sort(),
      );
      expect(actionsOf(statementsOf(template, ids.queryRole))).toEqual([...basics, "dynamodb:Query"].sort());
      expect(actionsOf(statementsOf(template, ids.mailerRole))).toEqual(
        [
          ...basics,
          "kms:Decrypt",
          "kms:GenerateDataKey",
          "sns:Publish",
          "sqs:ChangeMessageVisibility",
          "sqs:DeleteMessage",
          "sqs:GetQueueAttributes",
          "sqs:GetQueueUrl",
          "sqs:ReceiveMessage",
        ].sort(),
      );
      expect(actionsOf(statementsOf(template, ids.panicRole))).toEqual(
        [
          ...basics,
          "dynamodb:PutItem",
          "dynamodb:Query",
          "eks:DescribeCluster",
          "iam:PassRole",
          "kms:Decrypt",
          "kms:GenerateDataKey",
          "scheduler:CreateSchedule",
          "scheduler:DeleteSchedule",
          "scheduler:GetSchedule",
          "scheduler:UpdateSchedule",
          "sns:Publish",
          "sqs:SendMessage",
        ].sort(),
      );
      expect(actionsOf(statementsOf(template, ids.schedulerRole))).toEqual([
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "lambda:InvokeFunction",
        "sqs:SendMessage",
      ]);
    });

    it("scopes every grant to this stack's resources; only X-Ray has a wildcard", () => {
      for (const role of [ids.ingestRole, ids.panicRole, ids.queryRole, ids.mailerRole, ids.schedulerRole]) {
        for (const statement of statementsOf(template, role)) {
          // The one Deny: ingest and query kept off the panic audit partition (security-review.test.ts).
          if (statement.Effect === "Deny") {
            expect(statement.Sid).toMatch(/^FlowStore(Ingest|Query)NotPanicAudit$/);
            expect(statement.Resource).toEqual(getAtt(ids.table));
            continue;
          }
          expect(statement.Effect).toBe("Allow");
          if (JSON.stringify(statement.Resource) === '"*"') {
            expect(list(statement.Action).every((a) => a.startsWith("xray:"))).toBe(true);
          }
        }
      }
      const ingest = statementsOf(template, ids.ingestRole);
      expect(statementFor(ingest, "dynamodb:UpdateItem").Resource).toEqual(getAtt(ids.table));
      expect(statementFor(ingest, "sns:Publish").Resource).toEqual({ Ref: ids.alertsTopic });
      expect(statementFor(ingest, "sqs:SendMessage").Resource).toEqual(getAtt(ids.queue));
      // The alerts key for SNS, and the failed-payloads key only through SQS.
      const keyGrants = ingest.filter((s) => list(s.Action).includes("kms:GenerateDataKey"));
      expect(keyGrants.flatMap((s) => list(s.Resource))).toEqual(
        expect.arrayContaining([getAtt(ids.alertsKey), getAtt(ids.queueKey)]),
      );
      expect(keyGrants.flatMap((s) => list(s.Resource))).toHaveLength(2);
      const queueKey = JSON.stringify(getAtt(ids.queueKey));
      expect(
        keyGrants.find((s) => list(s.Resource).some((r) => JSON.stringify(r) === queueKey)),
      ).toMatchObject({
        Condition: viaSqs,
      });
      expect(JSON.stringify(statementFor(ingest, "eks:DescribeCluster").Resource)).toContain(
        ":cluster/demo-cluster",
      );
      expect(JSON.stringify(statementFor(ingest, "logs:PutLogEvents").Resource)).toContain(
        logicalId(stack, stack.ingest.function.logGroup),
      );

      const query = statementFor(statementsOf(template, ids.queryRole), "dynamodb:Query");
      // The table and each flow index by name: no index/* wildcard.
      expect(list(query.Resource)).toHaveLength(1 + FLOW_INDEXES.length);
      for (const index of FLOW_INDEXES)
        expect(JSON.stringify(query.Resource)).toContain(`/index/${index.indexName}"`);

      const panic = statementsOf(template, ids.panicRole);
      expect(statementFor(panic, "dynamodb:PutItem").Resource).toEqual(getAtt(ids.table));
      expect(statementFor(panic, "iam:PassRole")).toMatchObject({
        Resource: getAtt(ids.schedulerRole),
        Condition: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
      });
      expect(JSON.stringify(statementFor(panic, "scheduler:CreateSchedule").Resource)).toContain(
        `:schedule/${stack.panic.scheduleGroup.scheduleGroupName}/*`,
      );
      expect(
        statementFor(statementsOf(template, ids.schedulerRole), "lambda:InvokeFunction").Resource,
      ).toEqual(getAtt(ids.panic));
    });

    it("attaches no managed policy to any function or scheduler role", () => {
      for (const role of [ids.ingestRole, ids.panicRole, ids.queryRole, ids.mailerRole, ids.schedulerRole]) {
        const resource = template.toJSON().Resources[role] as { Properties: Json };
        expect(resource.Properties.ManagedPolicyArns, role).toBeUndefined();
      }
    });

    it("drops the EKS grant when attribution is off", () => {
      const off = synth({ attribution: "none" });
      const role = logicalId(off.stack, off.stack.ingest.function.role);
      expect(actionsOf(statementsOf(off.template, role))).not.toContain("eks:DescribeCluster");
    });
  });

  describe("cluster access", () => {
    it("maps the ingest role read-only and the panic role to the RBAC group only", () => {
      template.resourceCountIs("AWS::EKS::AccessEntry", 2);
      template.hasResourceProperties("AWS::EKS::AccessEntry", {
        ClusterName: "demo-cluster",
        PrincipalArn: getAtt(ids.ingestRole),
        Type: "STANDARD",
        KubernetesGroups: [READER_KUBERNETES_GROUP],
        AccessPolicies: Match.absent(),
      });
      template.hasResourceProperties("AWS::EKS::AccessEntry", {
        ClusterName: "demo-cluster",
        PrincipalArn: getAtt(ids.panicRole),
        Type: "STANDARD",
        KubernetesGroups: [PANIC_KUBERNETES_GROUP],
        AccessPolicies: Match.absent(),
      });
    });

    it.each([
      ["calico-flows-panic", PANIC_KUBERNETES_GROUP],
      ["calico-flows-reader", READER_KUBERNETES_GROUP],
    ])("uses the group deploy/rbac.yaml binds to the %s ClusterRole", (role, group) => {
      const rbac = readFileSync(new URL("../../deploy/rbac.yaml", import.meta.url), "utf8");
      const binding = rbac
        .split(/^---$/m)
        .find((doc) => /^kind: ClusterRoleBinding$/m.test(doc) && doc.includes(`name: ${role}\n`));
      expect(binding).toBeDefined();
      expect(binding).toMatch(
        new RegExp(`- apiGroup: rbac.authorization.k8s.io\\s+kind: Group\\s+name: ${group}\\s*$`, "m"),
      );
    });

    it("creates no access entry when manageClusterAccess is off", () => {
      synth({ manageClusterAccess: "false" }).template.resourceCountIs("AWS::EKS::AccessEntry", 0);
    });
  });

  describe("monitoring", () => {
    it("graphs the pipeline, the functions, the failed payloads and the API on one dashboard", () => {
      const dashboard = Object.values(template.findResources("AWS::CloudWatch::Dashboard"))[0] as {
        Properties: Json;
      };
      const body = JSON.stringify(dashboard.Properties.DashboardBody);
      for (const metric of [
        "LinesSeen",
        "CalicoLines",
        "FlowsWritten",
        "AlertsRaised",
        "AttributionMisses",
        "MalformedLines",
        "CorruptPayloads",
        "Errors",
        "Duration",
        "Throttles",
        "ApproximateNumberOfMessagesVisible",
        "4XXError",
        "5XXError",
        "ForwardedLogEvents",
        "DeliveryErrors",
        "DeliveryThrottling",
        "InvocationDroppedCount",
        "InvocationsSentToDeadLetterCount",
        "InvocationsFailedToBeSentToDeadLetterCount",
        "DestinationDeliveryFailures",
      ]) {
        expect(body, metric).toContain(`\\"${metric}\\"`);
      }
      expect(body).toContain('\\"CalicoFlows\\"');
      expect(body).toContain('\\"service\\",\\"calico-flows-ingest\\"');
    });

    it("alarms on failed payloads, errors, throttles and backlog, to the operations topic", () => {
      const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm")) as {
        Properties: Json;
      }[];
      expect(alarms.length).toBeGreaterThanOrEqual(10);
      for (const alarm of alarms) {
        expect(alarm.Properties.AlarmActions).toEqual([{ Ref: ids.opsTopic }]);
        expect(alarm.Properties.OKActions).toEqual([{ Ref: ids.opsTopic }]);
        // A quiet cluster is healthy; a queue's depth or age that goes missing (SQS stops publishing for a queue
        // left untouched) keeps the alarm's state, as its messages may still be there; so does an alarm on what the
        // deliveries report (their endpoints, their lines), which judges the last periods that had deliveries.
        const reads = JSON.stringify(alarm.Properties.Metrics ?? alarm.Properties.MetricName);
        const keepsState =
          /"(ApproximateNumberOfMessagesVisible|ApproximateAgeOfOldestMessage|UnresolvedEndpoints|LinesSeenByGroup)"/.test(
            reads,
          );
        expect(alarm.Properties.TreatMissingData).toBe(keepsState ? "ignore" : "notBreaching");
        expect(alarm.Properties.AlarmDescription).toEqual(expect.any(String));
      }
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/SQS",
        MetricName: "ApproximateNumberOfMessagesVisible",
        Dimensions: [{ Name: "QueueName", Value: getAtt(ids.queue, "QueueName") }],
        Threshold: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
      });
      for (const [metric, fn] of [
        ["Errors", ids.ingest],
        ["Throttles", ids.ingest],
        ["AsyncEventAge", ids.ingest],
      ] as const) {
        template.hasResourceProperties("AWS::CloudWatch::Alarm", {
          Namespace: "AWS/Lambda",
          MetricName: metric,
          Dimensions: [{ Name: "FunctionName", Value: { Ref: fn } }],
        });
      }
      // The query and panic functions' Errors, each summed with the failures it answered (a success for Lambda).
      const stat = (metric: Json) => Match.objectLike({ MetricStat: Match.objectLike({ Metric: metric }) });
      for (const [fn, failures, service] of [
        [ids.query, "QueryFailures", "calico-flows-query"],
        [ids.panic, "PanicFailures", "calico-flows-panic"],
      ] as const) {
        template.hasResourceProperties("AWS::CloudWatch::Alarm", {
          Metrics: Match.arrayWith([
            Match.objectLike({ Expression: "SUM([errors, failures])", ReturnData: true }),
            stat({
              Namespace: "AWS/Lambda",
              MetricName: "Errors",
              Dimensions: [{ Name: "FunctionName", Value: { Ref: fn } }],
            }),
            stat({
              Namespace: "CalicoFlows",
              MetricName: failures,
              Dimensions: [
                { Name: "cluster", Value: "demo-cluster" },
                { Name: "service", Value: service },
              ],
            }),
          ]),
        });
      }
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/ApiGateway",
        MetricName: "5XXError",
      });
      // Throttling on the table or any of its indexes (the TableName series alone leaves the indexes out).
      const throttles = Object.values(template.findResources("AWS::CloudWatch::Alarm"))
        .map((a) => (a as { Properties: Json }).Properties)
        .find((p) => JSON.stringify(p.Metrics ?? []).includes('"WriteThrottleEvents"'));
      const series = ((throttles?.Metrics ?? []) as { MetricStat?: { Metric: Json } }[])
        .filter((m) => m.MetricStat !== undefined)
        .map((m) => m.MetricStat?.Metric as { Namespace: string; MetricName: string; Dimensions: Json[] });
      const tableRef = { Ref: ids.table };
      expect(
        series.every((m) => m.Namespace === "AWS/DynamoDB" && m.MetricName === "WriteThrottleEvents"),
      ).toBe(true);
      expect(series.map((m) => m.Dimensions)).toEqual([
        [{ Name: "TableName", Value: tableRef }],
        ...FLOW_INDEXES.map((index) => [
          { Name: "GlobalSecondaryIndexName", Value: index.indexName },
          { Name: "TableName", Value: tableRef },
        ]),
      ]);
      expect(throttles?.Metrics).toContainEqual(
        expect.objectContaining({ Expression: expect.stringMatching(/^SUM\(\[/), ReturnData: true }),
      );
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "CalicoFlows",
        MetricName: "UnresolvedEndpoints",
        Dimensions: [
          { Name: "cluster", Value: "demo-cluster" },
          { Name: "service", Value: "calico-flows-ingest" },
        ],
      });
      for (const logGroupName of LOG_GROUPS) {
        template.hasResourceProperties("AWS::CloudWatch::Alarm", {
          Namespace: "AWS/Logs",
          MetricName: "DeliveryErrors",
          Dimensions: Match.arrayWith([{ Name: "LogGroupName", Value: logGroupName }]),
        });
      }
    });

    it("reads its own cluster's custom metrics: two clusters' stacks in one account share namespace and service", () => {
      // The functions emit every metric with a `cluster` dimension (functions/shared/powertools.ts).
      const ingestEnv = (t: Template) =>
        Object.values(t.findResources("AWS::Lambda::Function"))
          .map(
            (f) =>
              (f as { Properties: { Environment?: { Variables?: Json } } }).Properties.Environment?.Variables,
          )
          .find((v) => v?.POWERTOOLS_SERVICE_NAME === "calico-flows-ingest");
      const customAlarms = (t: Template) =>
        Object.values(t.findResources("AWS::CloudWatch::Alarm"))
          .map((a) => (a as { Properties: Json }).Properties)
          .filter((p) => p.Namespace === "CalicoFlows");
      const other = synth({ stackName: "CalicoFlows-prod-eu", clusterName: "prod-eu" }).template;
      expect(ingestEnv(template)?.CLUSTER_NAME).toBe("demo-cluster");
      expect(ingestEnv(other)?.CLUSTER_NAME).toBe("prod-eu");
      for (const [t, cluster] of [
        [template, "demo-cluster"],
        [other, "prod-eu"],
      ] as const) {
        const alarms = customAlarms(t);
        expect(alarms.length).toBeGreaterThan(0);
        for (const alarm of alarms)
          expect(alarm.Dimensions).toContainEqual({ Name: "cluster", Value: cluster });
      }
    });

    describe("a panic policy's automatic revert that did not happen", () => {
      type Alarm = { Properties: Json };
      const alarmsOn = (namespace: string, metric: string, dimensions: unknown) =>
        (Object.values(template.findResources("AWS::CloudWatch::Alarm")) as Alarm[])
          .map((a) => a.Properties)
          .filter(
            (p) =>
              p.Namespace === namespace &&
              p.MetricName === metric &&
              JSON.stringify(p.Dimensions) === JSON.stringify(dimensions),
          );
      const group = () => [{ Name: "ScheduleGroup", Value: stack.panic.scheduleGroup.scheduleGroupName }];

      it.each([
        [
          "a message in the dead-letter queue",
          "AWS/SQS",
          "ApproximateNumberOfMessagesVisible",
          () => [{ Name: "QueueName", Value: getAtt(ids.deadLetters, "QueueName") }],
          "Maximum",
        ],
        [
          "Scheduler failing to put one there",
          "AWS/Scheduler",
          "InvocationsFailedToBeSentToDeadLetterCount",
          group,
          "Sum",
        ],
        ["Scheduler dropping one", "AWS/Scheduler", "InvocationDroppedCount", group, "Sum"],
        [
          "Lambda failing to put one there",
          "AWS/Lambda",
          "DestinationDeliveryFailures",
          () => [{ Name: "FunctionName", Value: { Ref: ids.panic } }],
          "Sum",
        ],
      ])(
        "alarms on %s (%s %s) at once, asking for a revert by hand",
        (_what, namespace, metric, dimensions, statistic) => {
          const found = alarmsOn(namespace, metric, dimensions());
          expect(found).toHaveLength(1);
          expect(found[0]).toMatchObject({
            Statistic: statistic,
            Period: 300,
            Threshold: 1,
            EvaluationPeriods: 1,
            ComparisonOperator: "GreaterThanOrEqualToThreshold",
            TreatMissingData: namespace === "AWS/SQS" ? "ignore" : "notBreaching",
            AlarmActions: [{ Ref: ids.opsTopic }],
            OKActions: [{ Ref: ids.opsTopic }],
          });
          const description = String(found[0]?.AlarmDescription);
          expect(description).toMatch(/automatic revert did not happen/);
          expect(description).toContain("`calico-flows panic status`");
          expect(description).toMatch(/revert by hand/);
        },
      );
    });

    it("lets CloudWatch use the operations topic's key, for this account's alarms in this Region only", () => {
      const key = logicalId(stack, stack.monitoring.operations.key);
      const policy = (
        template.toJSON().Resources[key] as { Properties: { KeyPolicy: { Statement: Statement[] } } }
      ).Properties.KeyPolicy.Statement;
      // A service principal in a key policy acts for every account: the conditions keep it to this one's alarms.
      expect(policy.filter((s) => JSON.stringify(s.Principal).includes("cloudwatch"))).toEqual([
        {
          Effect: "Allow",
          Principal: { Service: "cloudwatch.amazonaws.com" },
          Action: ["kms:Decrypt", "kms:GenerateDataKey"],
          Resource: "*",
          Condition: alarmsOfThisAccount,
        },
      ]);
    });
  });

  it("exports what the CLI and the operator need", () => {
    for (const output of [
      "ApiUrl",
      "TableName",
      "AlertsTopicArn",
      "OperationsTopicArn",
      "FailedPayloadsQueueUrl",
      "PanicDeadLettersQueueUrl",
      "IngestRoleArn",
      "PanicRoleArn",
      "DashboardName",
      "ScheduleGroupName",
      "SchedulerRoleArn",
      "PanicFunctionArn",
    ]) {
      template.hasOutput(output, { Value: Match.anyValue() });
    }
  });

  // The CLI runs with the operator's credentials: the grants its redrive and `--alerts-topic` need name these keys.
  it("outputs the ARNs of the failed-payloads queue's key and the alerts topic's key", () => {
    const outputs = template.toJSON().Outputs as Record<string, Json>;
    expect(outputs.FailedPayloadsKeyArn).toEqual({
      Value: getAtt(ids.queueKey),
      Description: "kms:Decrypt for `calico-flows redrive` (the failed-payloads queue's key)",
    });
    expect(outputs.AlertsTopicKeyArn).toEqual({
      Value: getAtt(ids.alertsKey),
      Description:
        "kms:GenerateDataKey and kms:Decrypt for `--alerts-topic` of the CLI (the alerts topic's key)",
    });
  });

  describe("cdk-nag AwsSolutions", () => {
    it("has no unacknowledged finding", () => {
      const report = new AwsSolutionsChecks().validateScope(app);
      expect(
        report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath)}`),
      ).toEqual([]);
      expect(report.success).toBe(true);
    });

    it("acknowledges exactly the reviewed findings, each with a specific reason", () => {
      const acknowledged = new Map<string, string>();
      for (const construct of app.node.findAll()) {
        for (const entry of construct.node.metadata) {
          if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
          for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
            acknowledged.set(`${id.replace(/^annotation::/i, "")} @ ${construct.node.path}`, reason);
          }
        }
      }
      const group = stack.panic.scheduleGroup.scheduleGroupName;
      expect([...acknowledged.keys()].sort()).toEqual(
        [
          "AwsSolutions-IAM5[Resource::*] @ CalicoFlows/Ingest/Function/Role",
          "AwsSolutions-IAM5[Resource::*] @ CalicoFlows/Panic/Function/Role",
          "AwsSolutions-IAM5[Resource::*] @ CalicoFlows/Query/Function/Role",
          "AwsSolutions-IAM5[Resource::*] @ CalicoFlows/Alerts/Mailer/Role",
          `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${group}/*] @ CalicoFlows/Panic/Function/Role`,
          "AwsSolutions-SQS3 @ CalicoFlows/Ingest/FailedPayloads",
          "AwsSolutions-SQS3 @ CalicoFlows/Panic/ExpiryDeadLetters",
          "AwsSolutions-APIG2 @ CalicoFlows/Api/RestApi",
          "AwsSolutions-APIG3 @ CalicoFlows/Api/RestApi",
          "AwsSolutions-COG4 @ CalicoFlows/Api/RestApi",
          "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs] @ CalicoFlows/Api/RestApi",
        ].sort(),
      );
      for (const reason of acknowledged.values()) expect(reason.length).toBeGreaterThan(80);
    });
  });

  it("has no warning or error annotation", () => {
    Annotations.fromStack(stack).hasNoWarning("*", Match.anyValue());
    Annotations.fromStack(stack).hasNoError("*", Match.anyValue());
  });

  it("matches the snapshot (asset hashes normalised)", () => {
    const json = JSON.stringify(template.toJSON(), null, 1).replace(/"[0-9a-f]{64}\.zip"/g, '"<asset>.zip"');
    expect(JSON.parse(json)).toMatchSnapshot();
  });
});
