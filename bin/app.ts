// The CDK app (cdk.json "app": `node bin/app.ts`). Reads this app's context once, validates it, and hands
// the typed configuration to the stack; nothing below reads context again.
import { Annotations, App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { CalicoFlowsStack } from "../lib/calico-flows-stack.ts";
import {
  appContext,
  CONTEXT_KEYS,
  ConfigError,
  exampleKeys,
  parseConfig,
  unaddressedWarnings,
} from "../lib/config.ts";

/**
 * Builds the stack into `app` from its context, with the warnings and the checks of every synth: what `cdk synth`
 * runs, and what the tests build. Throws a ConfigError when the context is invalid.
 */
export function buildApp(app: App): CalicoFlowsStack {
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { stackName: config.stackName, config });

  // Feature flags and the toolkit's own keys carry ":" or "@"; any other key this app does not read is
  // most likely a typo (`-c clustername=...`) that would otherwise be ignored silently.
  const known = new Set([...CONTEXT_KEYS, "acknowledged-issue-numbers"]);
  for (const key of Object.keys(app.node.getAllContext())) {
    if (!/[:@/]/.test(key) && !known.has(key)) {
      Annotations.of(stack).addWarningV2(
        "calico-flows:unknown-context",
        `context key "${key}" is not used by this app`,
      );
    }
  }

  // cdk.json ships example values so that a clone synthesizes at once; deployed, they would send the alerts nowhere.
  const examples = exampleKeys(config);
  if (examples.length > 0) {
    Annotations.of(stack).addWarningV2(
      "calico-flows:example-context",
      `${examples.join(", ")} still hold cdk.json's example values: set your cluster's before deploying (docs/deploy.md)`,
    );
  }
  // Without addresses the alarms and the mailer are deployed all the same, for whatever subscribes by hand.
  for (const { id, message } of unaddressedWarnings(config)) {
    Annotations.of(stack).addWarningV2(id, message);
  }

  // The same checks as the tests: a synth with an unacknowledged finding fails.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}

if (import.meta.main) {
  try {
    buildApp(new App());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A plain message, not a stack trace: the fix is in cdk.json or on the command line.
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}
