// The app as `node bin/app.ts` builds it (its buildApp, in this process, bundling skipped: synth.test.ts runs the
// real command): what its synth refuses, and what it warns the operator of before a deploy.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { describe, expect, it } from "vitest";
import { buildApp } from "../../bin/app.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

/** An operator's own values in place of cdk.json's examples. */
const OWN: Record<string, unknown> = {
  clusterName: "prod-eu",
  logGroupNames: "/aws/containerinsights/prod-eu/host",
  alertEmails: "netsec@corp.io",
  operationsEmails: "sre@corp.io",
  panicPrincipalArns: "arn:aws:iam::210987654321:role/oncall",
};

/** cdk.json's context with `context` over it, its keys set to undefined removed (as from cdk.json). */
function build(context: Record<string, unknown>) {
  const merged: Record<string, unknown> = { ...cdkJson.context, ...context, "aws:cdk:bundling-stacks": [] };
  for (const [key, value] of Object.entries(merged)) if (value === undefined) delete merged[key];
  const outdir = mkdtempSync(join(tmpdir(), "calico-flows-app-"));
  const app = new App({ outdir, context: merged });
  return { app, outdir, stack: buildApp(app) };
}

const warnings = (stack: ReturnType<typeof build>["stack"]) =>
  stack.node.metadata.filter((entry) => entry.type === "aws:cdk:warning").map((entry) => String(entry.data));

describe("buildApp", () => {
  it("fails the synth on a cdk-nag AwsSolutions finding that is not acknowledged", () => {
    const { app, outdir, stack } = build(OWN);
    new sqs.Queue(stack, "Unchecked", { encryption: sqs.QueueEncryption.UNENCRYPTED });
    // The error lists the findings, as the toolkit prints them.
    expect(() => app.synth()).toThrow(/CalicoFlows\/Unchecked\/Resource.*AwsSolutions-SQS4/s);
    const report = JSON.parse(readFileSync(join(outdir, "validation-report.json"), "utf8")) as {
      pluginReports: {
        pluginName: string;
        conclusion: string;
        violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[];
      }[];
    };
    const nag = report.pluginReports.filter((p) => p.pluginName === "AwsSolutions");
    expect(nag.map((p) => p.conclusion)).toEqual(["failure"]);
    // Only the queue added here: the stack itself has none.
    const violations = nag.flatMap((p) => p.violations);
    expect(violations.map((v) => v.ruleName)).toContain("AwsSolutions-SQS4");
    expect(new Set(violations.flatMap((v) => v.violatingConstructs.map((c) => c.constructPath)))).toEqual(
      new Set(["CalicoFlows/Unchecked/Resource"]),
    );
  });

  it("warns when no address gets the alert e-mails or the alarms, and says who can still subscribe", () => {
    const alertWarning = expect.stringMatching(
      /^alertEmails holds no address: .*alert e-mails.*AlertEmailsTopicArn.*AlertsTopicArn/,
    );
    const operationsWarning = expect.stringMatching(
      /^operationsEmails holds no address.*alarms.*OperationsTopicArn/,
    );
    // cdk.json's example addresses deleted: operationsEmails falls back to the empty alertEmails.
    const none = warnings(build({ ...OWN, alertEmails: undefined, operationsEmails: undefined }).stack);
    expect(none).toEqual([alertWarning, operationsWarning]);
    expect(none.join("\n")).not.toMatch(/example values/);
    expect(warnings(build({ ...OWN, alertEmails: undefined }).stack)).toEqual([alertWarning]);
    // `-c operationsEmails=`: none on purpose, still said.
    expect(warnings(build({ ...OWN, operationsEmails: "" }).stack)).toEqual([operationsWarning]);
    expect(warnings(build(OWN).stack)).toEqual([]);
  });
});
