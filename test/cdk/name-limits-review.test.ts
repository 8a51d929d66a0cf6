// Review of 7e8441e (LinesNotStored judged per log group): the synthesized alarms against CloudFormation's limits for
// every configuration lib/config.ts accepts.
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

type Resource = { Type: string; Properties: Record<string, unknown> };

function alarms(context: Record<string, unknown>): { id: string; description: string }[] {
  const app = new App({ context: { ...cdkJson.context, ...context, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  const resources = Template.fromStack(stack).toJSON().Resources as Record<string, Resource>;
  return Object.entries(resources)
    .filter(([, r]) => r.Type === "AWS::CloudWatch::Alarm")
    .map(([id, r]) => ({ id, description: String(r.Properties.AlarmDescription ?? "") }));
}

describe("LinesNotStored per log group, within CloudFormation's limits", () => {
  // Defect: each group's LinesNotStored… description now embeds the log group's name and the subscription filter's
  // name (calico-flows-<clusterName>) in some 710 characters of fixed text (lib/monitoring.ts, `this.alarm(
  // LinesNotStored${key}`)). AWS::CloudWatch::Alarm's AlarmDescription is at most 1024 characters; CDK's CloudFormation
  // validation at synth says so: "ERROR AlarmDescription: length 1078 exceeds maximum 1024 (CloudFormation Validate)
  // ... CloudFormation-Validate::F3033". lib/config.ts accepts cluster names of up to 100 characters and log group
  // names that synthesize up to 255 (the dimension limit, test below), so cluster + group name over some 300
  // characters (a 100-character cluster and a 201-character group) passes the configuration and fails `cdk synth`.
  // Impact: `cdk synth` / `cdk deploy` fail with a validation report on a Monitoring construct rather than a
  // configuration message; before 7e8441e the description was fixed text. Rare names, but accepted ones.
  // Expected: every alarm description within 1024 characters for any accepted configuration (name the group by its
  // key or cut a long name in the description, or leave the runbook text to docs/deploy.md §6).
  it("keeps every alarm description within 1024 characters for long names the configuration accepts", () => {
    const clusterName = `c${"x".repeat(99)}`;
    // 255 characters: the longest a CloudWatch dimension value may be in CDK, so that the stack synthesizes.
    const longGroup = `/aws/containerinsights/${clusterName}/${"node-group-".repeat(20)}`
      .slice(0, 250)
      .concat("/host");
    expect(longGroup).toHaveLength(255);
    const found = alarms({
      clusterName,
      logGroupNames: [`/aws/containerinsights/${clusterName}/host`, longGroup],
    });
    const tooLong = found
      .filter((a) => a.description.length > 1024)
      .map((a) => `${a.id}: ${a.description.length}`);
    expect(tooLong).toEqual([]);
  });

  // Defect (older than 7e8441e, which adds a second place): lib/config.ts accepts log group names of up to 512
  // characters (regex `{1,512}`), but each one becomes a CloudWatch dimension value (DeliveryErrors… reads AWS/Logs
  // by LogGroupName; 7e8441e adds the LogGroup dimension of LinesSeenByGroup / CalicoLinesByGroup), and CDK's Metric
  // refuses a dimension value over 255 characters: "DimensionValueLengthInvalid: Dimension value must be at
  // least 1 and no more than 255 characters".
  // Impact: a configuration the config's own validation passes makes `cdk synth` throw from lib/monitoring.ts with a
  // construct stack, not a message naming the `logGroupNames` key.
  // Expected: either the configuration refuses such a name with a message naming logGroupNames (as it does for other
  // invalid names), or the stack synthesizes.
  it("refuses in the configuration a 300-character log group name, naming the key and the limit", () => {
    const longGroup = `/aws/containerinsights/prod-eu/${"node-group-".repeat(30)}`
      .slice(0, 295)
      .concat("/host");
    expect(longGroup).toHaveLength(300);
    let thrown: unknown;
    try {
      alarms({ clusterName: "prod-eu", logGroupNames: [longGroup] });
    } catch (error) {
      thrown = error;
    }
    // Refused by the configuration, naming the key and the limit (CDK would otherwise throw from a construct).
    expect(String(thrown)).toMatch(/logGroupNames/);
    expect(String(thrown)).toMatch(/255/);
  });
});
