// What the operator's own credentials need for the CLI commands that write to the deployed stack (backfill,
// redrive, and their `--alerts-topic`), as docs/backfill.md and docs/deploy.md §8 list it, and the stack outputs
// docs/deploy.md names for them. The stack grants the operator nothing: a grant the documents leave out shows only as
// a failing run (every publish refused, each redriven message kept as still failing).
import { readFileSync } from "node:fs";
import { App, CfnOutput } from "aws-cdk-lib";
import { beforeAll, describe, expect, it } from "vitest";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};
const doc = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), "utf8");
const deployMd = doc("deploy.md");
const backfillMd = doc("backfill.md");

/** The text from the line starting with `start` to the first line after it starting with `end` (or the end). */
function section(text: string, start: string, end: RegExp): string {
  const lines = text.split("\n");
  const from = lines.findIndex((line) => line.startsWith(start));
  if (from < 0) throw new Error(`no line starting with ${start}`);
  const to = lines.findIndex((line, i) => i > from && end.test(line));
  return lines.slice(from, to < 0 ? undefined : to).join("\n");
}

/** The IAM actions written in backquotes, each in full (`dynamodb:GetItem`). */
function actionsIn(text: string): string[] {
  return [...new Set([...text.matchAll(/`([a-z0-9-]+:[A-Z][A-Za-z]+)`/g)].map((m) => m[1] as string))].sort();
}

/** The names in backquotes that read as a stack output's: `TableName`, `AlertsTopicKeyArn`. */
function outputsNamedIn(text: string): string[] {
  return [
    ...new Set([...text.matchAll(/`([A-Z][A-Za-z]+(?:Arn|Url|Name))`/g)].map((m) => m[1] as string)),
  ].sort();
}

/** What backfill and redrive call against AWS between them, with `--table` and `--alerts-topic`. */
const OPERATOR_ACTIONS = [
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:Query",
  "dynamodb:UpdateItem",
  "kms:Decrypt",
  "kms:GenerateDataKey",
  "logs:DescribeLogStreams",
  "logs:FilterLogEvents",
  "sns:Publish",
  "sqs:ChangeMessageVisibility",
  "sqs:DeleteMessage",
  "sqs:ReceiveMessage",
];

describe("the operator's grants for backfill and redrive", () => {
  let outputs: string[];

  beforeAll(() => {
    const app = new App({ context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } });
    const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
    const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
    // The stack's own outputs: not the endpoint output RestApi adds by itself.
    outputs = stack.node.children
      .filter((child) => child instanceof CfnOutput)
      .map((output) => output.node.id)
      .sort();
  });

  it("lists exactly the stack's outputs in docs/deploy.md's outputs table", () => {
    const table = section(deployMd, "The outputs:", /^[^|]/)
      .split("\n")
      .filter((line) => line.startsWith("| `"));
    const documented = table.flatMap((line) =>
      [...(line.split("|")[1] as string).matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1] as string),
    );
    expect(documented.sort()).toEqual(outputs);
  });

  it("names every action and both keys' outputs in docs/backfill.md's Permissions", () => {
    const permissions = section(backfillMd, "Permissions:", /^$/).replace(/\s+/g, " ");
    expect(actionsIn(permissions)).toEqual(OPERATOR_ACTIONS);
    expect(permissions).toContain("`sns:Publish` on the alerts topic (`AlertsTopicArn`)");
    expect(permissions).toContain("`kms:GenerateDataKey` and `kms:Decrypt` on its key (`AlertsTopicKeyArn`)");
    expect(permissions).toContain("`kms:Decrypt` on its key (`FailedPayloadsKeyArn`");
    expect(outputs).toEqual(expect.arrayContaining(outputsNamedIn(permissions)));
  });

  it("has an entry for the operator in docs/deploy.md §8, with the same actions and outputs", () => {
    const security = section(deployMd, "## 8. Security", /^## /);
    const entry = section(security, "- **The operator's CLI.**", /^- \*\*/);
    expect(actionsIn(entry)).toEqual(OPERATOR_ACTIONS);
    expect(outputsNamedIn(entry)).toEqual(
      [
        "AlertsTopicArn",
        "AlertsTopicKeyArn",
        "FailedPayloadsKeyArn",
        "FailedPayloadsQueueUrl",
        "TableName",
      ].sort(),
    );
    expect(outputs).toEqual(expect.arrayContaining(outputsNamedIn(entry)));
  });
});
