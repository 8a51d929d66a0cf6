// The workloadInterfacePrefixes context key reaches the ingest function as WORKLOAD_INTERFACE_PREFIXES, which
// the function reads back as the same list; unset, the variable is absent and the function keeps its defaults.
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { DEFAULT_WORKLOAD_INTERFACE_PREFIXES } from "../../functions/core/classify.ts";
import { loadIngestConfig } from "../../functions/ingest/config.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import { INGEST_SERVICE_NAME } from "../../lib/ingest.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

/** The ingest function's environment, as synthesized from cdk.json's example with overrides (bundling skipped). */
function ingestEnvironment(overrides: Record<string, unknown>): Record<string, unknown> {
  const app = new App({ context: { ...cdkJson.context, ...overrides, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const template = Template.fromStack(new CalicoFlowsStack(app, "CalicoFlows", { config }));
  const functions = Object.values(template.findResources("AWS::Lambda::Function")) as {
    Properties: { Environment: { Variables: Record<string, unknown> } };
  }[];
  const ingest = functions.filter(
    (f) => f.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME === INGEST_SERVICE_NAME,
  );
  expect(ingest).toHaveLength(1);
  return (ingest[0] as (typeof ingest)[number]).Properties.Environment.Variables;
}

/** The environment with deploy-time references as values of their shape, as the function would read it. */
function started(variables: Record<string, unknown>) {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(variables)) {
    env[key] =
      typeof value === "string"
        ? value
        : key === "API_URL"
          ? "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/"
          : "arn:aws:sns:eu-west-1:123456789012:resolved";
  }
  return loadIngestConfig(env);
}

describe("workloadInterfacePrefixes", () => {
  it("sets WORKLOAD_INTERFACE_PREFIXES on the ingest function, read back as the same list", () => {
    const variables = ingestEnvironment({ workloadInterfacePrefixes: "cali, tap" });
    expect(variables.WORKLOAD_INTERFACE_PREFIXES).toBe("cali,tap");
    expect(started(variables).WORKLOAD_INTERFACE_PREFIXES).toEqual(["cali", "tap"]);
  });

  it("leaves the variable out when the key is not given, so the function keeps its defaults", () => {
    const variables = ingestEnvironment({});
    expect(variables).not.toHaveProperty("WORKLOAD_INTERFACE_PREFIXES");
    expect(started(variables).WORKLOAD_INTERFACE_PREFIXES).toEqual(DEFAULT_WORKLOAD_INTERFACE_PREFIXES);
  });
});
