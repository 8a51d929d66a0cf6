// The stack an operator deploys by following README.md and docs/deploy.md, checked against what those documents
// promise and against what such an operator expects where they are silent (a second stack elsewhere in the account
// deploys; every log group the stack causes expires). One stack is synthesized as bin/app.ts builds it, with the
// deploy command's values (bundling skipped: synth.test.ts bundles). Only what fails on the reviewed code is here;
// stack.test.ts, stack-review.test.ts and subscription-review.test.ts hold the rest.
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json; DependsOn?: string | string[] };

/** docs/deploy.md §2's `npx cdk deploy` (as -c strings), with a log retention unlike the default. */
const DEPLOY_CONTEXT = {
  clusterName: "prod-eu",
  logGroupNames: '["/eks/prod-eu/calico-packet"]',
  internalCidrs: "192.168.0.0/16",
  alertEmails: "platform-alerts@corp.io",
  operationsEmails: "platform-oncall@corp.io",
  panicPrincipalArns:
    '["arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_PlatformOncall_*"]',
  logRetentionDays: "90",
};

/** The app as bin/app.ts builds it: the stack named by the `stackName` key (default CalicoFlows). */
function synth(overrides: Record<string, unknown>) {
  const app = new App({ context: { ...cdkJson.context, ...overrides, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { stackName: config.stackName, config });
  return { config, resources: Template.fromStack(stack).toJSON().Resources as Record<string, Resource> };
}

/** A value as CloudFormation resolves it in `region` of account 123456789012 (pseudo parameters, Ref, Fn::Join). */
function deployed(value: unknown, resources: Record<string, Resource>, region = "eu-west-1"): string {
  if (typeof value === "string") return value;
  const v = value as Json;
  if (typeof v.Ref === "string") {
    const pseudo: Record<string, string> = {
      "AWS::Partition": "aws",
      "AWS::Region": region,
      "AWS::AccountId": "123456789012",
      "AWS::URLSuffix": "amazonaws.com",
      "AWS::StackName": "CalicoFlows",
    };
    if (v.Ref in pseudo) return pseudo[v.Ref] as string;
    const resource = resources[v.Ref];
    // What Ref returns: a REST API's id, a stage's name.
    if (resource?.Type === "AWS::ApiGateway::RestApi") return "a1b2c3d4e5";
    if (resource?.Type === "AWS::ApiGateway::Stage") return String(resource.Properties.StageName);
    throw new Error(`no deployed value for Ref ${v.Ref} (${resource?.Type})`);
  }
  if (Array.isArray(v["Fn::Join"])) {
    const [separator, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map((part) => deployed(part, resources, region)).join(separator);
  }
  throw new Error(`no deployed value for ${JSON.stringify(value)}`);
}

describe("the stack deployed as docs/deploy.md says", () => {
  let config: ReturnType<typeof parseConfig>;
  let resources: Record<string, Resource>;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

  beforeAll(() => {
    ({ config, resources } = synth(DEPLOY_CONTEXT));
  });

  // deploy.md §2: `logRetentionDays` is the "retention of the functions' and the API's logs", and after a deletion
  // "the log groups ... then expire on their own". With execution logging on (loggingLevel ERROR), API Gateway writes
  // to API-Gateway-Execution-Logs_<api id>/<stage>, a group it creates itself, never expiring, unless the stack owns it.
  it("keeps the API's execution logs for logRetentionDays, as it keeps the functions' and the access logs", () => {
    const stages = ofType("AWS::ApiGateway::Stage");
    expect(stages).toHaveLength(1);
    const [, stage] = stages[0] as [string, Resource];
    const settings = (stage.Properties.MethodSettings ?? []) as Json[];
    const executionLogging = settings.some((s) => s.LoggingLevel !== undefined && s.LoggingLevel !== "OFF");
    const groups = ofType("AWS::Logs::LogGroup").map(([id, g]) => ({
      id,
      name:
        g.Properties.LogGroupName === undefined ? undefined : deployed(g.Properties.LogGroupName, resources),
      retention: g.Properties.RetentionInDays,
    }));
    // Every group the stack creates already keeps its events for the configured days.
    for (const group of groups) expect(group.retention, group.id).toBe(config.logRetentionDays);
    if (executionLogging) {
      const name = `API-Gateway-Execution-Logs_${deployed(stage.Properties.RestApiId, resources)}/${String(stage.Properties.StageName)}`;
      expect(
        groups.find((g) => g.name === name),
        `${name}: API Gateway creates it with no retention (never expire); the stack's log groups are ${JSON.stringify(groups)}`,
      ).toMatchObject({ retention: config.logRetentionDays });
    }
  });

  // CloudWatch dashboards are global to an account (their ARN has no Region: arn:aws:cloudwatch::<account>:dashboard/
  // <name>), stacks are regional. A name made of the stack name alone is the same for `CalicoFlows` (the default) in
  // eu-west-1 and in us-east-1: the second Region's deploy fails ("Dashboard ... already exists") and rolls back, or,
  // were it let through, one stack's deletion would delete the other's dashboard.
  it("names its dashboard apart in each Region, so that the same stack deploys for a cluster in another Region", () => {
    const dashboards = ofType("AWS::CloudWatch::Dashboard");
    expect(dashboards).toHaveLength(1);
    const [, dashboard] = dashboards[0] as [string, Resource];
    const name = dashboard.Properties.DashboardName;
    // Unnamed, CloudFormation generates a name of its own, unique in the account.
    if (name === undefined) return;
    const inIreland = deployed(name, resources, "eu-west-1");
    const inVirginia = deployed(name, resources, "us-east-1");
    expect(inIreland, `dashboard "${inIreland}" in eu-west-1 and "${inVirginia}" in us-east-1`).not.toBe(
      inVirginia,
    );
  });
});
