// A review of the synthesized stack against what operators are promised (issues #3 and #7, DESIGN.md,
// docs/architecture.md, docs/flow-store.md, docs/deploy.md): written from those texts, not from lib/. One stack
// is synthesized (bundling skipped; synth.test.ts bundles for real) and shared by every check but the last,
// which synthesizes a few random valid configurations and starts each function's configuration on them.
import { readFileSync } from "node:fs";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createScanner } from "../../functions/core/parse.ts";
import { loadIngestConfig, MAX_AGGREGATION_SECONDS } from "../../functions/ingest/config.ts";
import { loadMailerConfig } from "../../functions/mailer/config.ts";
import { loadPanicConfig } from "../../functions/panic/config.ts";
import { loadQueryConfig } from "../../functions/query/config.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json; DependsOn?: string | string[] };
type Statement = { Effect: string; Action: string | string[]; Resource?: unknown; Condition?: Json };

const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

// A configuration unlike the cdk.json example wherever the promise depends on it: a custom prefix with a
// policy format, three node log groups, the optional ingest settings.
const CONFIG = {
  clusterName: "prod-eu-1",
  logGroupNames: ["/aws/containerinsights/prod-eu-1/host", "/eks/prod-eu-1/kernel", "node.kern_logs"],
  logPrefix: "calico-drop",
  logPrefixFormat: "calico-drop %t %n",
  internalCidrs: ["10.0.0.0/8", "fd00::/8"],
  namespaceLabelKeys: ["baseten.co/organization"],
  scanThreshold: 20,
  alertCap: 25,
  aggregationSeconds: 30,
  alertWindowMinutes: 10,
  retentionDays: 14,
};

function synth(overrides: Record<string, unknown>) {
  const app = new App({
    context: { ...cdkJson.context, ...overrides, "aws:cdk:bundling-stacks": [] },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  return { app, stack, config, template: Template.fromStack(stack) };
}

/** Stands a deployed value in for each intrinsic, as CloudFormation would resolve it. */
function deployedValue(value: unknown, resources: Record<string, Resource>): string {
  if (typeof value === "string") return value;
  const v = value as Json;
  if ("Ref" in v) {
    const id = String(v.Ref);
    const pseudo: Record<string, string> = {
      "AWS::Partition": "aws",
      "AWS::Region": "eu-west-1",
      "AWS::AccountId": "123456789012",
      "AWS::URLSuffix": "amazonaws.com",
      "AWS::StackName": "CalicoFlows",
    };
    if (id in pseudo) return pseudo[id] as string;
    const type = resources[id]?.Type;
    // What Ref returns for each type (CloudFormation's resource reference).
    if (type === "AWS::SNS::Topic") return `arn:aws:sns:eu-west-1:123456789012:${id}`;
    if (type === "AWS::SQS::Queue") return `https://sqs.eu-west-1.amazonaws.com/123456789012/${id}`;
    if (type === "AWS::DynamoDB::Table" || type === "AWS::Scheduler::ScheduleGroup") return id;
    // A REST API's id; a stage's name.
    if (type === "AWS::ApiGateway::RestApi") return "a1b2c3d4e5";
    if (type === "AWS::ApiGateway::Stage") return String(resources[id]?.Properties.StageName);
    throw new Error(`no deployed value for Ref ${id} (${type})`);
  }
  if ("Fn::GetAtt" in v) {
    const [id, attribute] = v["Fn::GetAtt"] as [string, string];
    const type = resources[id]?.Type;
    if (attribute === "Arn" && type === "AWS::IAM::Role") return `arn:aws:iam::123456789012:role/${id}`;
    if (attribute === "Arn")
      return `arn:aws:${type?.split("::")[1]?.toLowerCase()}:eu-west-1:123456789012:${id}`;
    throw new Error(`no deployed value for GetAtt ${id}.${attribute}`);
  }
  if ("Fn::Join" in v) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map((p) => deployedValue(p, resources)).join(sep);
  }
  throw new Error(`no deployed value for ${JSON.stringify(value)}`);
}

interface Deployed {
  ingest: NodeJS.ProcessEnv;
  panic: NodeJS.ProcessEnv;
  query: NodeJS.ProcessEnv;
  mailer: NodeJS.ProcessEnv;
}

/** Each function's environment as deployed, found by its handler module (from its Powertools service). */
function environments(template: Template): Deployed {
  const resources = template.toJSON().Resources as Record<string, Resource>;
  const found: Partial<Record<keyof Deployed, NodeJS.ProcessEnv>> = {};
  for (const resource of Object.values(resources)) {
    if (resource.Type !== "AWS::Lambda::Function") continue;
    const variables = (resource.Properties.Environment as { Variables: Json }).Variables;
    const env = Object.fromEntries(
      Object.entries(variables).map(([k, v]) => [k, deployedValue(v, resources)]),
    );
    const service = String(env.POWERTOOLS_SERVICE_NAME);
    const which = (["ingest", "panic", "query", "mailer"] as const).find((w) => service.endsWith(`-${w}`));
    if (which === undefined) throw new Error(`unexpected function ${service}`);
    expect(found[which], `one ${which} function`).toBeUndefined();
    found[which] = env;
  }
  return found as Deployed;
}

/** What each function does when its container starts: read its configuration (and, for ingest, its scanner). */
function start(env: Deployed) {
  const ingest = loadIngestConfig(env.ingest);
  createScanner({ prefix: ingest.LOG_PREFIX, prefixFormat: ingest.LOG_PREFIX_FORMAT });
  return {
    ingest,
    panic: loadPanicConfig(env.panic),
    query: loadQueryConfig(env.query),
    mailer: loadMailerConfig(env.mailer),
  };
}

describe("the stack an operator deploys", () => {
  let app: App;
  let template: Template;
  let resources: Record<string, Resource>;
  let ofType: (type: string) => [string, Resource][];
  let fnIds: { ingest: string; panic: string; query: string };
  let roleOf: (fnId: string) => string;
  let statementsOf: (roleId: string) => Statement[];

  beforeAll(() => {
    ({ app, template } = synth(CONFIG));
    resources = template.toJSON().Resources as Record<string, Resource>;
    ofType = (type) => Object.entries(resources).filter(([, r]) => r.Type === type);
    const byService = (suffix: string) => {
      const match = ofType("AWS::Lambda::Function").filter(([, r]) =>
        String(
          ((r.Properties.Environment as { Variables: Json }).Variables as Json).POWERTOOLS_SERVICE_NAME,
        ).endsWith(suffix),
      );
      expect(match, suffix).toHaveLength(1);
      return (match[0] as [string, Resource])[0];
    };
    fnIds = { ingest: byService("-ingest"), panic: byService("-panic"), query: byService("-query") };
    roleOf = (fnId) => {
      const role = (resources[fnId] as Resource).Properties.Role as { "Fn::GetAtt": [string, string] };
      return role["Fn::GetAtt"][0];
    };
    statementsOf = (roleId) =>
      ofType("AWS::IAM::Policy")
        .filter(([, p]) => list(p.Properties.Roles).some((r) => (r as Json).Ref === roleId))
        .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  });

  const only = (type: string): [string, Resource] => {
    const found = ofType(type);
    expect(found, type).toHaveLength(1);
    return found[0] as [string, Resource];
  };
  /** The ingest function's asynchronous configuration, and the failed-payloads queue it sends to. */
  const ingestFailures = (): { config: Resource; queueId: string; queue: Resource } => {
    const configs = ofType("AWS::Lambda::EventInvokeConfig").filter(
      ([, c]) => JSON.stringify(c.Properties.FunctionName) === JSON.stringify({ Ref: fnIds.ingest }),
    );
    expect(configs, "the ingest function's EventInvokeConfig").toHaveLength(1);
    const [, config] = configs[0] as [string, Resource];
    const destination = (config.Properties.DestinationConfig as { OnFailure: { Destination: Json } })
      .OnFailure.Destination as { "Fn::GetAtt": [string, string] };
    const queueId = destination["Fn::GetAtt"][0];
    return { config, queueId, queue: resources[queueId] as Resource };
  };

  describe("ingest (issues #3, #7)", () => {
    it("subscribes every configured node log group, with the configured prefix as one term, to the ingest function", () => {
      const filters = ofType("AWS::Logs::SubscriptionFilter").map(([, r]) => r.Properties);
      expect(filters.map((f) => f.LogGroupName).sort()).toEqual([...CONFIG.logGroupNames].sort());
      for (const f of filters) {
        // Quoted: unquoted, `calico-drop` would be two terms with a minus between them.
        expect(f.FilterPattern).toBe(`"${CONFIG.logPrefix}"`);
        expect(f.DestinationArn).toEqual({ "Fn::GetAtt": [fnIds.ingest, "Arn"] });
      }
    });

    it("lets CloudWatch Logs invoke the ingest function from exactly those log groups, before subscribing", () => {
      const permissions = ofType("AWS::Lambda::Permission")
        .map(([id, r]) => [id, r.Properties] as const)
        .filter(([, p]) => p.Principal === "logs.amazonaws.com");
      const sources = permissions.map(([, p]) => {
        expect(p.FunctionName).toEqual({ "Fn::GetAtt": [fnIds.ingest, "Arn"] });
        expect(p.Action).toBe("lambda:InvokeFunction");
        return JSON.stringify(p.SourceArn);
      });
      for (const name of CONFIG.logGroupNames) {
        expect(
          sources.filter((s) => s.includes(`:log-group:${name}:*`)),
          name,
        ).toHaveLength(1);
      }
      expect(sources).toHaveLength(CONFIG.logGroupNames.length);
      for (const [, filter] of ofType("AWS::Logs::SubscriptionFilter")) {
        const permission = permissions.find(([, p]) =>
          JSON.stringify(p.SourceArn).includes(`:log-group:${filter.Properties.LogGroupName}:*`),
        );
        expect(list(filter.DependsOn)).toContain(permission?.[0]);
      }
    });

    it("runs every function on nodejs24.x, ARM64", () => {
      const functions = ofType("AWS::Lambda::Function");
      expect(functions).toHaveLength(4);
      for (const [id, fn] of functions) {
        expect(fn.Properties.Runtime, id).toBe("nodejs24.x");
        expect(fn.Properties.Architectures, id).toEqual(["arm64"]);
      }
    });

    it("retries a failed payload twice, then sends it to an encrypted queue large enough for its content", () => {
      const { config, queueId, queue } = ingestFailures();
      expect(queue.Type).toBe("AWS::SQS::Queue");
      expect(config.Properties).toMatchObject({
        FunctionName: { Ref: fnIds.ingest },
        Qualifier: "$LATEST",
        MaximumRetryAttempts: 2,
        DestinationConfig: { OnFailure: { Destination: { "Fn::GetAtt": [queueId, "Arn"] } } },
      });
      // Lambda's failure record carries the request payload: up to 1 MiB, which the queue must hold whole.
      expect(queue.Properties.MaximumMessageSize).toBe(1_048_576);
      expect(queue.Properties.KmsMasterKeyId).toBeDefined();
      // The ingest role can put the record there: the queue, and the queue's key.
      const statements = statementsOf(roleOf(fnIds.ingest));
      const send = statements.filter((s) => list(s.Action).includes("sqs:SendMessage"));
      expect(send.map((s) => s.Resource)).toEqual([{ "Fn::GetAtt": [queueId, "Arn"] }]);
      const keyUse = statements.filter(
        (s) =>
          list(s.Action).includes("kms:GenerateDataKey") &&
          list(s.Resource).some((r) => JSON.stringify(r) === JSON.stringify(queue.Properties.KmsMasterKeyId)),
      );
      expect(keyUse).toHaveLength(1);
    });
  });

  describe("least privilege", () => {
    const tableArn = () => ({ "Fn::GetAtt": [only("AWS::DynamoDB::Table")[0], "Arn"] });

    it("allows Resource * only for the X-Ray actions that have no resource, and no action wildcards", () => {
      for (const [id, policy] of ofType("AWS::IAM::Policy")) {
        for (const s of (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement) {
          for (const action of list(s.Action)) expect(action, id).not.toMatch(/\*/);
          if (list(s.Resource).includes("*")) {
            expect(list(s.Action).sort(), id).toEqual(["xray:PutTelemetryRecords", "xray:PutTraceSegments"]);
          }
        }
      }
      expect(ofType("AWS::IAM::ManagedPolicy")).toEqual([]);
    });

    it("grants dynamodb:Scan to no one, and the DynamoDB actions only on the table and its indexes", () => {
      const table = JSON.stringify(tableArn());
      for (const [, policy] of ofType("AWS::IAM::Policy")) {
        for (const s of (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement) {
          const actions = list(s.Action);
          expect(actions).not.toContain("dynamodb:Scan");
          if (!actions.some((a) => a.startsWith("dynamodb:"))) continue;
          expect(actions.every((a) => a.startsWith("dynamodb:"))).toBe(true);
          for (const r of list(s.Resource)) expect(JSON.stringify(r)).toContain(table);
        }
      }
    });

    it("keeps the query function read-only: Query on the table and its indexes, nothing else besides logs and traces", () => {
      const statements = statementsOf(roleOf(fnIds.query));
      const actions = [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
      const dynamo = actions.filter((a) => a.startsWith("dynamodb:"));
      expect(dynamo).toEqual(["dynamodb:Query"]);
      const others = actions.filter((a) => !a.startsWith("dynamodb:"));
      expect(others).toEqual([
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
      ]);
    });

    it("gives the ingest function no panic rights: no scheduler, PassRole, invoke, delete or cluster-wide EKS calls", () => {
      const statements = statementsOf(roleOf(fnIds.ingest));
      const actions = [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
      expect(actions).toEqual([
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "eks:DescribeCluster",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
        "sqs:SendMessage",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
      ]);
      const scheduleGroup = only("AWS::Scheduler::ScheduleGroup")[0];
      const panicFn = fnIds.panic;
      for (const s of statements) {
        const text = JSON.stringify(s.Resource);
        expect(text).not.toContain(scheduleGroup);
        expect(text).not.toContain(panicFn);
      }
      // Its Kubernetes identity reads only (the reader group, no access policy), unlike the panic role's group.
      const entries = ofType("AWS::EKS::AccessEntry").map(([, r]) => r.Properties);
      const ingestEntry = entries.find(
        (e) =>
          JSON.stringify(e.PrincipalArn) === JSON.stringify({ "Fn::GetAtt": [roleOf(fnIds.ingest), "Arn"] }),
      );
      expect(ingestEntry?.KubernetesGroups).toEqual(["calico-flows-reader"]);
      expect(ingestEntry?.AccessPolicies).toBeUndefined();
      expect(ingestEntry?.KubernetesGroups ?? []).not.toContain("calico-flows-panic");
    });

    it("names the topic, the cluster and the keys each grant is for", () => {
      const [topicId] = ofType("AWS::SNS::Topic").find(([, t]) =>
        String(t.Properties.DisplayName).includes("alerts"),
      ) as [string, Resource];
      for (const fn of [fnIds.ingest, fnIds.panic]) {
        const statements = statementsOf(roleOf(fn));
        const publish = statements.filter((s) => list(s.Action).includes("sns:Publish"));
        expect(publish.map((s) => s.Resource)).toEqual([{ Ref: topicId }]);
        const describe = statements.filter((s) => list(s.Action).includes("eks:DescribeCluster"));
        expect(describe).toHaveLength(1);
        expect(JSON.stringify(describe[0]?.Resource)).toContain(`:cluster/${CONFIG.clusterName}"`);
        for (const s of statements.filter((s) => list(s.Action).some((a) => a.startsWith("kms:")))) {
          for (const r of list(s.Resource) as { "Fn::GetAtt"?: [string, string] }[]) {
            expect(resources[r["Fn::GetAtt"]?.[0] ?? ""]?.Type, JSON.stringify(r)).toBe("AWS::KMS::Key");
          }
        }
      }
    });
  });

  describe("API (issue #7, DESIGN.md §4)", () => {
    it("requires AWS_IAM authorization on every method", () => {
      const methods = ofType("AWS::ApiGateway::Method");
      expect(methods.length).toBeGreaterThanOrEqual(5);
      for (const [id, m] of methods) expect(m.Properties.AuthorizationType, id).toBe("AWS_IAM");
    });
  });

  describe("flow store (docs/architecture.md, docs/flow-store.md)", () => {
    it("has the documented keys, TTL attribute, point-in-time recovery and the four sparse indexes", () => {
      const [, table] = only("AWS::DynamoDB::Table");
      const p = table.Properties;
      expect(p.KeySchema).toEqual([
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ]);
      expect(p.TimeToLiveSpecification).toEqual({ AttributeName: "expiresAt", Enabled: true });
      expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(p.BillingMode).toBe("PAY_PER_REQUEST");
      const indexes = (p.GlobalSecondaryIndexes as Json[]).map((i) => ({
        name: i.IndexName,
        keys: i.KeySchema,
        projection: (i.Projection as Json).ProjectionType,
      }));
      const index = (name: string, hash: string) => ({
        name,
        keys: [
          { AttributeName: hash, KeyType: "HASH" },
          { AttributeName: "sk", KeyType: "RANGE" },
        ],
        projection: "INCLUDE",
      });
      expect(indexes.sort((a, b) => String(a.name).localeCompare(String(b.name)))).toEqual([
        index("byDstIp", "dstIpKey"),
        index("byDstNamespace", "dstNsKey"),
        index("bySrcIp", "srcIpKey"),
        index("bySrcNamespace", "srcNsKey"),
      ]);
      const included = (p.GlobalSecondaryIndexes as Json[]).map(
        (i) => ((i.Projection as Json).NonKeyAttributes as string[]).length,
      );
      expect(included).toEqual([16, 16, 16, 16]);
    });
  });

  describe("monitoring (issues #3, #7; docs/deploy.md)", () => {
    const alarms = () => ofType("AWS::CloudWatch::Alarm").map(([, a]) => a.Properties);
    const opsTopic = () =>
      (
        ofType("AWS::SNS::Topic").find(([, t]) =>
          String(t.Properties.DisplayName).includes("operations"),
        ) as [string, Resource]
      )[0];

    it("alarms on the failed-payloads queue depth, ingest errors and throttles, to the operations topic", () => {
      const queueName = { "Fn::GetAtt": [ingestFailures().queueId, "QueueName"] };
      const find = (namespace: string, metric: string, dimension: unknown) =>
        alarms().filter(
          (a) =>
            a.Namespace === namespace &&
            a.MetricName === metric &&
            JSON.stringify(a.Dimensions).includes(JSON.stringify(dimension)),
        );
      const depth = find("AWS/SQS", "ApproximateNumberOfMessagesVisible", queueName);
      const errors = find("AWS/Lambda", "Errors", { Ref: fnIds.ingest });
      const throttles = find("AWS/Lambda", "Throttles", { Ref: fnIds.ingest });
      for (const [what, found] of Object.entries({ depth, errors, throttles })) {
        expect(found, what).toHaveLength(1);
        const alarm = found[0] as Json;
        expect(alarm.AlarmActions, what).toEqual([{ Ref: opsTopic() }]);
        // One failed payload, error or throttle is enough to cross it.
        expect(alarm.Threshold, what).toBe(1);
        expect(alarm.ComparisonOperator, what).toBe("GreaterThanOrEqualToThreshold");
      }
      // The error alarms of the two other functions, too: each sums its Errors with the failures it answered (the
      // queries answered 500, the panic requests answered 409 conflict, 502 or 500), which are a success for Lambda.
      for (const [fn, failures] of [
        [fnIds.query, "QueryFailures"],
        [fnIds.panic, "PanicFailures"],
      ] as const) {
        const errorAlarms = alarms().filter((a) => {
          const reads = JSON.stringify(a.Metrics ?? []);
          return reads.includes(JSON.stringify({ Ref: fn })) && reads.includes(`"${failures}"`);
        });
        expect(errorAlarms, fn).toHaveLength(1);
      }
    });

    it("graphs corrupt payloads and malformed lines under the names and dimension the ingest function emits them", () => {
      const [, dashboard] = only("AWS::CloudWatch::Dashboard");
      const body = JSON.stringify(dashboard.Properties.DashboardBody);
      const ingestEnv = environments(template).ingest;
      for (const metric of ["CorruptPayloads", "MalformedLines", "UnresolvedEndpoints"]) {
        // Powertools' EMF: namespace POWERTOOLS_METRICS_NAMESPACE, dimensions service = POWERTOOLS_SERVICE_NAME
        // and cluster = CLUSTER_NAME (functions/shared/powertools.ts).
        expect(body).toContain(
          `[\\"${ingestEnv.POWERTOOLS_METRICS_NAMESPACE}\\",\\"${metric}\\",\\"cluster\\",\\"${ingestEnv.CLUSTER_NAME}\\",\\"service\\",\\"${ingestEnv.POWERTOOLS_SERVICE_NAME}\\"`,
        );
      }
      // The handler emits those names (functions/ingest/handler.ts).
      const handler = readFileSync(new URL("../../functions/ingest/handler.ts", import.meta.url), "utf8");
      for (const metric of ["CorruptPayloads", "MalformedLines", "UnresolvedEndpoints"]) {
        expect(handler).toContain(`"${metric}"`);
      }
    });
  });

  describe("function configuration", () => {
    it("sets every variable the functions' schemas require, with values they accept at start-up", () => {
      const env = environments(template);
      const started = start(env);
      expect(started.ingest).toMatchObject({
        CLUSTER_NAME: CONFIG.clusterName,
        LOG_PREFIX: CONFIG.logPrefix,
        LOG_PREFIX_FORMAT: CONFIG.logPrefixFormat,
        INTERNAL_CIDRS: CONFIG.internalCidrs,
        NAMESPACE_LABEL_KEYS: CONFIG.namespaceLabelKeys,
        SCAN_THRESHOLD: CONFIG.scanThreshold,
        ALERT_CAP: CONFIG.alertCap,
        AGGREGATION_SECONDS: CONFIG.aggregationSeconds,
        ALERT_WINDOW_MINUTES: CONFIG.alertWindowMinutes,
        RETENTION_DAYS: CONFIG.retentionDays,
        ATTRIBUTION: "eks",
      });
      expect(started.ingest.ALERTS_TOPIC_ARN).toMatch(/^arn:aws:sns:/);
      expect(started.panic.scheduler?.roleArn).toMatch(/^arn:aws:iam::/);
      expect(started.panic.alertsTopicArn).toMatch(/^arn:aws:sns:/);
      // The query function reads every bucket length the ingest may have counted in (query/handler.ts).
      expect(started.query).toEqual({
        CLUSTER_NAME: CONFIG.clusterName,
        TABLE_NAME: started.ingest.TABLE_NAME,
      });
      expect(started.query.TABLE_NAME).toBe(started.ingest.TABLE_NAME);
      expect(started.panic.tableName).toBe(started.ingest.TABLE_NAME);
      // The alert e-mails name the cluster and the stack's API, as the ingest function's did.
      expect(started.mailer.CLUSTER_NAME).toBe(CONFIG.clusterName);
      expect(started.mailer.API_URL).toBe(started.ingest.API_URL);
      expect(started.mailer.EMAIL_TOPIC_ARN).toMatch(/^arn:aws:sns:/);
      expect(started.mailer.EMAIL_TOPIC_ARN).not.toBe(started.ingest.ALERTS_TOPIC_ARN);
    });
  });

  describe("cdk-nag AwsSolutions", () => {
    it("finds nothing unacknowledged, and every acknowledgement gives a specific reason", () => {
      const report = new AwsSolutionsChecks().validateScope(app);
      expect(
        report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath)}`),
      ).toEqual([]);
      const reasons: string[] = [];
      for (const construct of app.node.findAll()) {
        for (const entry of construct.node.metadata) {
          if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
          reasons.push(...Object.values(entry.data as Record<string, string>));
        }
      }
      expect(reasons.length).toBeGreaterThan(0);
      for (const reason of reasons) {
        expect(reason.length, reason).toBeGreaterThanOrEqual(80);
        expect(reason, reason).not.toMatch(/\b(TODO|FIXME|n\/a|ignore)\b/i);
      }
    });
  });
});

describe("any valid configuration", () => {
  // Context as an operator writes it (cdk.json values or -c strings), within what lib/config.ts accepts.
  const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?$/);
  const context = fc.record(
    {
      clusterName: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/),
      logGroupNames: fc.uniqueArray(fc.stringMatching(/^[.\-_/#A-Za-z0-9]{1,40}$/), {
        minLength: 1,
        maxLength: 3,
      }),
      logPrefix: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,27}$/),
      internalCidrs: fc.constantFrom(["192.168.0.0/16"], ["10.0.0.0/8", "172.16.0.0/12"], ["fd00::/8"]),
      panicPolicy: fc.record(
        {
          name: label,
          namespaceSelector: fc.constantFrom("all()", "baseten.co/organization == 'true'", " has(team) "),
          order: fc.integer({ min: 0, max: 100_000 }),
          tier: label,
          types: fc.constantFrom(["Ingress"], ["Egress"], ["Ingress", "Egress"]),
        },
        { requiredKeys: [] },
      ),
      panicTtlMinutes: fc.integer({ min: 0, max: 60 * 24 }),
      calicoApiGroup: fc.constantFrom("projectcalico.org", "crd.projectcalico.org", "projectcalico.org/v3"),
      retentionDays: fc.integer({ min: 1, max: 3650 }).map(String),
      aggregationSeconds: fc.integer({ min: 1, max: MAX_AGGREGATION_SECONDS }),
      alertWindowMinutes: fc.integer({ min: 1, max: 1440 }),
      attribution: fc.constantFrom("eks", "none"),
      manageClusterAccess: fc.constantFrom("true", "false"),
      namespaceLabelKeys: fc.array(
        fc.constantFrom(
          "team",
          "baseten.co/organization",
          "kubernetes.io/metadata.name",
          "app.kubernetes.io/part-of",
        ),
        { maxLength: 2 },
      ),
      scanThreshold: fc.integer({ min: 2, max: 65_535 }),
      alertCap: fc.integer({ min: 1, max: 10_000 }),
      panicReservedConcurrency: fc.integer({ min: 1, max: 100 }),
    },
    { requiredKeys: ["clusterName", "logGroupNames"] },
  );

  it("synthesizes functions whose environments all load, meaning what the configuration said", () => {
    let synthesizedCount = 0;
    const refusals: string[] = [];
    fc.assert(
      fc.property(
        context.map((c): Record<string, unknown> => c),
        (overrides) => {
          let synthesized: ReturnType<typeof synth>;
          try {
            synthesized = synth(overrides);
          } catch (error) {
            // A configuration lib/config.ts refuses is refused at synth, which is fine: nothing is deployed.
            if ((error as Error).name === "ConfigError") {
              refusals.push((error as Error).message);
              return;
            }
            throw error;
          }
          synthesizedCount++;
          const { config, template } = synthesized;
          const started = start(environments(template));
          expect(started.ingest.NAMESPACE_LABEL_KEYS).toEqual(config.namespaceLabelKeys);
          expect(started.ingest.LOG_PREFIX).toBe(config.logPrefix);
          expect(started.ingest.INTERNAL_CIDRS).toEqual(config.internalCidrs);
          expect(started.panic.settings).toMatchObject({
            name: config.panicPolicy.name,
            namespaceSelector: config.panicPolicy.namespaceSelector,
            order: config.panicPolicy.order,
            tier: config.panicPolicy.tier,
            types: config.panicPolicy.types,
            apiGroup: config.calicoApiGroup,
          });
          expect(started.panic.defaultTtlMinutes).toBe(config.panicTtlMinutes);
        },
      ),
      {
        numRuns: 8,
        seed: 20260419,
        // Values lib/config.ts once passed on to functions that refused them (blank selector) or read them as
        // something else (a label key with a comma reads as two keys).
        examples: [
          [{ clusterName: "c", logGroupNames: ["g"], panicPolicy: { namespaceSelector: " \t" } }],
          [{ clusterName: "c", logGroupNames: ["g"], namespaceLabelKeys: ["team,tier"] }],
        ],
      },
    );
    // Most generated configurations are valid: the property is about them, not about refusals.
    expect(synthesizedCount, refusals.join("\n")).toBeGreaterThanOrEqual(5);
  });
});
