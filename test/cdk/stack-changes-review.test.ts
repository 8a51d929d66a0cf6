// A deployed stack over its life: an operator edits the context (adds an address, renames the stack, hands the
// access entries over) or deletes the stack, and CloudFormation does what the template before and after make it do.
// The stack is synthesized as bin/app.ts builds it (bundling skipped: synth.test.ts bundles), before and after each
// change. Only what fails on the reviewed code is here: context changes that keep every logical ID and every
// replacement-causing property (log groups and e-mails added, removed or reordered; CIDRs, windows, retention,
// principals, prefixes) are covered elsewhere or need no test of their own.
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};
const deployMd = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json; DeletionPolicy?: string; DependsOn?: string | string[] };

/** A first deployment as an operator makes it from cdk.json plus their cluster's values (-c strings). */
const FIRST_DEPLOY = {
  clusterName: "prod-eu",
  logGroupNames: '["/eks/prod-eu/calico-packet","/aws/containerinsights/prod-eu/host"]',
  alertEmails: "platform-alerts@corp.io",
  operationsEmails: "platform-oncall@corp.io",
  panicPrincipalArns: '["arn:aws:iam::111122223333:role/platform-oncall"]',
};

/** The app as bin/app.ts builds it: construct ID CalicoFlows, deployed as the stack `stackName`. */
function synth(overrides: Record<string, unknown>): Record<string, Resource> {
  const app = new App({ context: { ...cdkJson.context, ...overrides, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { stackName: config.stackName, config });
  return Template.fromStack(stack).toJSON().Resources as Record<string, Resource>;
}

const ofType = (resources: Record<string, Resource>, type: string) =>
  Object.entries(resources).filter(([, r]) => r.Type === type);

/** deploy.md cut into paragraphs, each table row on its own: what one statement of the guide says. */
const blocks = deployMd
  .split(/\n\s*\n/)
  .flatMap((paragraph) => (paragraph.trimStart().startsWith("|") ? paragraph.split("\n") : [paragraph]));

describe("changing a deployed stack", () => {
  let before: Record<string, Resource>;

  beforeAll(() => {
    before = synth(FIRST_DEPLOY);
  });

  // Change: an operator adds an address to alertEmails (or operationsEmails) that the list already holds, e.g.
  // `-c alertEmails=$CURRENT,oncall@corp.io` when oncall is there already. The synth dies with a CDK construct-ID
  // error and a stack trace (bin/app.ts only catches ConfigError), not the "key=value: problem" message every other
  // bad value gets; logGroupNames refuses repeats at validation, the address lists do not (lib/config.ts). Expected:
  // refused by parseConfig naming the key, or the repeat folded into one subscription.
  it("takes an address listed twice as a validation error naming the key, or as one subscription, never a crash", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...FIRST_DEPLOY, alertEmails: "oncall@corp.io,oncall@corp.io" }, "alertEmails"],
      [{ ...FIRST_DEPLOY, operationsEmails: '["ops@corp.io","ops@corp.io"]' }, "operationsEmails"],
    ];
    for (const [context, key] of cases) {
      let resources: Record<string, Resource> | undefined;
      let error: Error | undefined;
      try {
        resources = synth(context);
      } catch (e) {
        error = e as Error;
      }
      if (error !== undefined) {
        expect(`${error.name}: ${error.message}`, key).toMatch(/^ConfigError: /);
        expect(error.message, key).toContain(key);
        continue;
      }
      const endpoints = ofType(resources ?? {}, "AWS::SNS::Subscription").map(
        ([, s]) => s.Properties.Endpoint,
      );
      expect(endpoints.length, key).toBe(new Set(endpoints).size);
    }
  });

  // Change: stackName, as the guide's own deploy command sets it (`-c stackName=CalicoFlows-prod-eu`), on a cluster
  // first deployed as `CalicoFlows` (cdk.json has no stackName). The construct ID stays, so `cdk deploy` creates a
  // second CloudFormation stack rather than updating the first. Its subscription filters have the same identity
  // (LogGroupName + FilterName `calico-flows-<cluster>`, CloudFormation's primary identifier) as the running stack's:
  // the create fails ("already exists") and the new stack rolls back, leaving its retained table and keys behind; or,
  // were the filter taken over, deleting the old stack would delete the new stack's filter and ingest would stop
  // silently. Expected: filters that do not collide across stacks, or deploy.md saying what changing stackName does
  // (a new stack: delete or migrate the old one, and in which order).
  it("renames the stack without two stacks claiming the same subscription filter, or deploy.md says how", () => {
    const renamed = synth({ ...FIRST_DEPLOY, stackName: "CalicoFlows-prod-eu" });
    const filterIds = (resources: Record<string, Resource>) =>
      ofType(resources, "AWS::Logs::SubscriptionFilter").map(([, f]) =>
        JSON.stringify([f.Properties.LogGroupName, f.Properties.FilterName]),
      );
    const shared = filterIds(renamed).filter((id) => filterIds(before).includes(id));
    if (shared.length === 0) return;
    const explained = blocks.filter((b) => b.includes("stackName") && /\b(chang|renam)/i.test(b));
    expect(
      explained,
      `both stacks create the subscription filters ${shared.join(", ")}; deploy.md never says what changing stackName does`,
    ).not.toEqual([]);
  });

  // Change: manageClusterAccess true → false on a deployed stack, to hand the access entries to another tool. The
  // entries have no DeletionPolicy, so the update deletes them: from then until someone recreates them the panic
  // function cannot write the policy (nor ingest attribute). deploy.md §1 says only "create them yourself from the
  // stack outputs", which fails beforehand (an entry for the role exists: ResourceInUseException). Expected: deploy.md
  // says the update deletes the entries and to recreate them right after (or the entries are retained on hand-over).
  it("hands the access entries over without cutting the functions off the cluster, or deploy.md says when to recreate them", () => {
    const handedOver = synth({ ...FIRST_DEPLOY, manageClusterAccess: "false" });
    const entries = ofType(before, "AWS::EKS::AccessEntry");
    expect(entries.length).toBeGreaterThan(0);
    const deleted = entries.filter(([id, r]) => !(id in handedOver) && r.DeletionPolicy !== "Retain");
    if (deleted.length === 0) return;
    const explained = blocks.filter((b) => b.includes("manageClusterAccess") && /delet|remov/i.test(b));
    expect(
      explained,
      `turning manageClusterAccess off deletes ${deleted.map(([id]) => id).join(", ")}; deploy.md does not say so`,
    ).not.toEqual([]);
  });

  // Change: the stack is deleted (`cdk destroy`) while a panic policy is applied with a self-expiry. The schedule
  // group is deleted with the stack (DeletionPolicy Delete, lib/panic.ts, on purpose: no revert after the function is
  // gone), and its pending revert schedule with it; the alarms that would report a missed revert go too. The allow-all
  // GlobalNetworkPolicy then stays in the cluster, workloads unisolated, with nothing left to revert it or to say so.
  // deploy.md's paragraph on what a deletion keeps and deletes says to redrive the queues first, nothing of the panic.
  // Expected: it says to check `calico-flows panic status` and revert before deleting (or with `--direct` after).
  it("says, where deploy.md lists what a deletion removes, that a pending panic expiry goes with the stack", () => {
    const groups = ofType(before, "AWS::Scheduler::ScheduleGroup");
    expect(groups).toHaveLength(1);
    const [, group] = groups[0] as [string, Resource];
    if (group.DeletionPolicy === "Retain") return;
    const deletion = blocks.filter((b) =>
      /stack is deleted|deleting the stack|delete the stack|cdk destroy/i.test(b),
    );
    expect(deletion, "deploy.md's paragraph on deleting the stack").not.toEqual([]);
    expect(
      deletion.filter((b) => /panic|allow-all/i.test(b)),
      `the schedule group is deleted with the stack (DeletionPolicy ${group.DeletionPolicy ?? "Delete"}); deploy.md says:\n${deletion.join("\n")}`,
    ).not.toEqual([]);
  });
});
