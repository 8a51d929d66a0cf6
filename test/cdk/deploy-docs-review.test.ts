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

const deployMd = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");

/** The `-c panicPrincipalArns='…'` of docs/deploy.md §2's `npx cdk deploy`, as written there. */
const DOCUMENTED_PRINCIPALS = (() => {
  const found = /-c panicPrincipalArns='([^']+)'/.exec(deployMd);
  if (found?.[1] === undefined) throw new Error("docs/deploy.md has no -c panicPrincipalArns='…'");
  return found[1];
})();

/** docs/deploy.md §2's `npx cdk deploy` (as -c strings), with a log retention unlike the default. */
const DEPLOY_CONTEXT = {
  clusterName: "prod-eu",
  logGroupNames: '["/eks/prod-eu/calico-packet"]',
  internalCidrs: "192.168.0.0/16",
  alertEmails: "platform-alerts@corp.io",
  operationsEmails: "platform-oncall@corp.io",
  panicPrincipalArns: DOCUMENTED_PRINCIPALS,
  logRetentionDays: "90",
};

/**
 * IAM's ArnLike: each of an ARN's six `:`-separated parts matched on its own, `*` any run of characters and `?` one
 * (IAM User Guide, "Amazon Resource Name (ARN) condition operators").
 */
function arnLike(pattern: string, arn: string): boolean {
  const parts = (value: string) => {
    const split = value.split(":");
    return [...split.slice(0, 5), split.slice(5).join(":")];
  };
  const glob = (p: string) =>
    new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\/]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
      "s",
    );
  const [want, got] = [parts(pattern), parts(arn)];
  return want.every((p, i) => glob(p).test(got[i] ?? ""));
}

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

  // deploy.md §2's SSO example: Identity Center names a permission set's role AWSReservedSSO_<set>_<16 hex>, and a
  // set's name may hold `_`. `AWSReservedSSO_PlatformOncall_*` also matched PlatformOncall_ReadOnly's role (and any
  // PlatformOncall_… set), which could then press the panic button; the exact pattern was refused by the config.
  it("lets the documented SSO permission set's role alone reach /panic, and no other set named alike", () => {
    const ssoRole = (set: string, suffix: string) =>
      `arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_${set}_${suffix}`;
    const oncall = ssoRole("PlatformOncall", "0a1b2c3d4e5f6a7b");
    const others = [
      ssoRole("PlatformOncall_ReadOnly", "3f9a1c0d2b4e6f81"),
      ssoRole("PlatformOncall_Audit", "5e6f7a8b9c0d1e2f"),
      ssoRole("PlatformOncallAudit", "0a1b2c3d4e5f6a7b"),
    ];
    const apis = ofType("AWS::ApiGateway::RestApi");
    expect(apis).toHaveLength(1);
    const [, api] = apis[0] as [string, Resource];
    const statements = (api.Properties.Policy as { Statement: Json[] }).Statement;
    const conditions = statements.flatMap((s) => Object.entries((s.Condition ?? {}) as Json));
    // Wildcards mean something under ArnLike and ArnNotLike only: StringEquals would take `?` literally.
    expect(conditions.map(([operator]) => operator).sort()).toEqual(["ArnLike", "ArnNotLike"]);
    for (const [, keys] of conditions) {
      const patterns = (keys as Json)["aws:PrincipalArn"] as string[];
      expect(patterns).toEqual(config.panicPrincipalArns);
      expect(patterns.some((p) => arnLike(p, oncall))).toBe(true);
      for (const other of others)
        expect(
          patterns.some((p) => arnLike(p, other)),
          other,
        ).toBe(false);
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
