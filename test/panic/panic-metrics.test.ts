// The panic button's failures as the on-call engineer learns of them: the alarm of the synthesized stack that says
// the button is not working (PanicErrors) evaluated, for one 5-minute period, over the EMF the real handler prints
// (Powertools, on stdout) against the local Kubernetes API, dynalite and fauxqs, and over the Errors that Lambda
// publishes for the invocation; and a `panic apply --direct` whose expiry Scheduler refuses, as the real binary
// reports it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateScheduleCommand, SchedulerClient, UpdateScheduleCommand } from "@aws-sdk/client-scheduler";
import { App, type CfnResource } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { mockClient } from "aws-sdk-client-mock";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type * as PanicPolicy from "../../functions/core/panic-policy.ts";
import type { PanicRuntime } from "../../functions/panic/handler.ts";
import type { PanicResponse } from "../../functions/panic/service.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import { runCli } from "../cli/run.ts";
import { alarmValue, breaches, emfSums, type Json, printedEmf, seriesKey } from "../support/alarm-math.ts";
import type * as Harness from "./harness.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

/** Whether the alarm breaches its threshold over one period of Sum datapoints (missing data is not breaching). */
function breaching(alarm: Json, sums: ReadonlyMap<string, number>): boolean {
  expect(alarm.ComparisonOperator).toBe("GreaterThanOrEqualToThreshold");
  const value = alarmValue(alarm, (key, stat) => {
    expect(stat).toBe("Sum");
    return sums.get(key);
  });
  return value !== undefined && breaches(alarm, value);
}

const CLUSTER = "prod-eu";
let panicErrors: Json;
let expiryNotScheduled: Json;
let lambdaErrors: string;
let h: Harness.PanicHarness;
let harness: typeof Harness;
/** The handler's own PanicFailure (a class of the modules loaded after the environment was set). */
let PanicFailure: typeof PanicPolicy.PanicFailure;
const scheduler = mockClient(SchedulerClient);

beforeAll(async () => {
  const app = new App({
    context: {
      ...cdkJson.context,
      clusterName: CLUSTER,
      logGroupNames: [`/aws/containerinsights/${CLUSTER}/host`],
      "aws:cdk:bundling-stacks": [],
    },
  });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  const resources = Template.fromStack(stack).toJSON().Resources as Record<string, { Properties: Json }>;
  const logicalId = (construct: IConstruct) => stack.getLogicalId(construct.node.defaultChild as CfnResource);
  const properties = (construct: IConstruct) => resources[logicalId(construct)]?.Properties ?? {};
  const alarm = stack.monitoring.alarms.find((a) => a.node.id === "PanicErrors");
  expect(alarm).toBeDefined();
  panicErrors = properties(alarm as IConstruct);
  const unscheduled = stack.monitoring.alarms.find((a) => a.node.id === "PanicExpiryNotScheduled");
  expect(unscheduled).toBeDefined();
  expiryNotScheduled = properties(unscheduled as IConstruct);
  const fn = stack.panic.function.function;
  lambdaErrors = seriesKey("AWS/Lambda", "Errors", [{ Name: "FunctionName", Value: { Ref: logicalId(fn) } }]);
  // The handler's Powertools read the synthesized function's service, namespace and cluster when first imported.
  const env = (properties(fn).Environment as { Variables: Json }).Variables;
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") vi.stubEnv(name, value);
  vi.resetModules();
  harness = await import("./harness.ts");
  ({ PanicFailure } = await import("../../functions/core/panic-policy.ts"));
  h = await harness.startPanicHarness();
});
afterAll(async () => {
  vi.unstubAllEnvs();
  scheduler.restore();
  await h?.close();
});
beforeEach(() => harness.resetPanicWorld(h, scheduler));

/**
 * Runs `call` (one invocation of the real handler), and says whether PanicErrors would be in ALARM for its period:
 * the EMF it printed, and Lambda's Errors for it (1 if it threw, else 0).
 */
async function alarmedBy(call: () => Promise<unknown>): Promise<{ alarmed: boolean; result: unknown }> {
  const { result: outcome, emf } = await printedEmf(() =>
    call().then(
      (result) => ({ result, threw: false }),
      (error: unknown) => ({ result: error, threw: true }),
    ),
  );
  const { result, threw } = outcome;
  const sums = emfSums(emf);
  sums.set(lambdaErrors, threw ? 1 : 0);
  return { alarmed: breaching(panicErrors, sums), result };
}

const statusOf = (result: unknown) => (result as { statusCode: number }).statusCode;

/** A runtime whose every action fails with `failure`, as the service would have after auditing it. */
const failing = (failure: Error) =>
  ({
    service: {
      apply: () => Promise.reject(failure),
      status: () => Promise.reject(failure),
      revert: () => Promise.reject(failure),
      expire: () => Promise.reject(failure),
      refused: () => Promise.resolve(),
    },
  }) as unknown as PanicRuntime;

describe("PanicErrors: the panic button is not working", () => {
  // Defect: PanicErrors reads the panic function's Lambda Errors alone, and the function answers every failed request
  // (a 502 when the Kubernetes API refuses it or is down, a 500 when it fails unexpectedly): a success for Lambda.
  // The failures are counted in PanicFailure_<action>_<kind> metrics, one name per action and kind, which no alarm
  // reads. Impact: during an incident the API server answers 503 (the Calico API server cut off) or the panic role
  // lost its RBAC (403): every apply answers 502, and the alarm the on-call relies on to know the button works stays
  // OK. Expected: PanicErrors breaches for every apply, dry run, status and revert that failed, answered or thrown;
  // not for a request refused for the caller's own doing (400 invalid) or by design (409 not-owned).
  it("fires when the Kubernetes API refuses an apply (403), answered 502", async () => {
    await h.kube.setFault({ fault: { kind: "status", code: 403 }, method: "POST" });
    const { alarmed, result } = await alarmedBy(() =>
      h.invoke(harness.apiEvent("POST", { reason: "INC-9 payments down", ttlMinutes: 0 })),
    );
    expect(statusOf(result)).toBe(502);
    expect(alarmed).toBe(true);
  });

  it("fires when the Calico API server is down (503) for a status, answered 502", async () => {
    await h.kube.setFault({
      fault: { kind: "status", code: 503, message: "service unavailable" },
      path: "/apis/projectcalico.org/",
    });
    const { alarmed, result } = await alarmedBy(() => h.invoke(harness.apiEvent("GET")));
    expect(statusOf(result)).toBe(502);
    expect(alarmed).toBe(true);
  });

  it("fires when a revert cannot delete the policy, answered 502", async () => {
    const applied = await h.invoke(harness.apiEvent("POST", { reason: "INC-9", ttlMinutes: 0 }));
    expect(statusOf(applied)).toBe(200);
    await h.kube.setFault({ fault: { kind: "status", code: 403 }, method: "DELETE" });
    const { alarmed, result } = await alarmedBy(() => h.invoke(harness.apiEvent("DELETE")));
    expect(statusOf(result)).toBe(502);
    expect(harness.storedPanicPolicy(h)).toBeDefined();
    expect(alarmed).toBe(true);
  });

  const KINDS: [PanicPolicy.PanicFailureKind, number, boolean][] = [
    ["invalid", 400, false],
    ["not-owned", 409, false],
    ["conflict", 409, true],
    ["kube-access", 502, true],
    ["api-missing", 502, true],
    ["kube-rejected", 502, true],
    ["kube-unavailable", 502, true],
  ];
  it.each(KINDS)("a %s failure (answered %i) fires it: %s", async (kind, status, fires) => {
    for (const event of [
      harness.apiEvent("POST", { reason: "INC-9" }),
      harness.apiEvent("POST", { reason: "INC-9", dryRun: true }),
      harness.apiEvent("GET"),
      harness.apiEvent("DELETE"),
    ]) {
      const runtime = failing(new PanicFailure(kind, `${kind} failure`));
      const { alarmed, result } = await alarmedBy(() => h.invoke(event, runtime));
      expect(statusOf(result), event.httpMethod).toBe(status);
      expect(alarmed, `${event.httpMethod} ${event.body}`).toBe(fires);
    }
  });

  it("fires on an unexpected failure, answered 500", async () => {
    const { alarmed, result } = await alarmedBy(() =>
      h.invoke(harness.apiEvent("POST", { reason: "INC-9" }), failing(new Error("boom"))),
    );
    expect(statusOf(result)).toBe(500);
    expect(alarmed).toBe(true);
  });

  it("does not fire for the caller's own mistakes: a body refused (400), a foreign policy left alone (409)", async () => {
    const invalid = await alarmedBy(() => h.invoke(harness.apiEvent("POST", { reason: "   " })));
    expect(statusOf(invalid.result)).toBe(400);
    expect(invalid.alarmed).toBe(false);
    h.kube.store.put(harness.GNP_V3, {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all" },
      spec: { order: 100, ingress: [{ action: "Allow" }] },
    });
    const foreign = await alarmedBy(() => h.invoke(harness.apiEvent("POST", { reason: "INC-9" })));
    expect(statusOf(foreign.result)).toBe(409);
    expect(foreign.alarmed).toBe(false);
  });

  it("fires when an expiry removes a taken-over policy without putting the policy back (its copy unreadable)", async () => {
    h.kube.store.put(harness.GNP_V3, {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all", labels: { owner: "platform" } },
      spec: { order: 100, ingress: [{ action: "Allow" }] },
    });
    const taken = harness.responseBody(
      await h.invoke(harness.apiEvent("POST", { reason: "INC-9", ttlMinutes: 1, force: true })),
    );
    // The kept copy, edited by hand into text that is not JSON.
    const policy = harness.storedPanicPolicy(h) as PanicPolicy.CalicoPolicy;
    (policy.metadata.annotations as Record<string, string>)["calico-flows.io/replaced-policy"] += "}";
    h.kube.store.put(harness.GNP_V3, policy as never);
    const expiry = {
      source: "calico-flows.expiry",
      action: "revert",
      cluster: CLUSTER,
      policyName: "allow-all",
      expiresAt: taken.expiresAt,
    };
    const expired = await alarmedBy(() => h.invoke(expiry));
    // Isolation is back, which the expiry is for; the policy it had replaced is lost, and no caller reads why.
    expect(expired.result).toMatchObject({ result: "expired" });
    expect(harness.storedPanicPolicy(h)).toBeUndefined();
    expect(expired.alarmed).toBe(true);
  });

  it("fires when a scheduled expiry fails (thrown, retried by Lambda) or is malformed (answered 400)", async () => {
    const expiry = {
      source: "calico-flows.expiry",
      action: "revert",
      cluster: CLUSTER,
      policyName: "allow-all",
      expiresAt: "2026-05-04T03:00:00.000Z",
    };
    const thrown = await alarmedBy(() =>
      h.invoke(expiry, failing(new PanicFailure("kube-unavailable", "down"))),
    );
    expect(thrown.result).toBeInstanceOf(PanicFailure);
    expect(thrown.alarmed).toBe(true);
    // An expiry event that is not as the schedules write it is not retried: its policy stays, unreverted.
    const malformed = await alarmedBy(() => h.invoke({ ...expiry, expiresAt: "tomorrow" }));
    expect(malformed.result).toMatchObject({ statusCode: 400 });
    expect(malformed.alarmed).toBe(true);
  });

  // Defect: an expiry for another cluster or policy name (a schedule written under another configuration: the
  // default `local`, a renamed policy) was skipped with no alarm, and the policy it was for stayed applied.
  it("fires when an expiry is for another cluster or policy name, not when it skips a policy refreshed since", async () => {
    const expiry = {
      source: "calico-flows.expiry",
      action: "revert",
      cluster: CLUSTER,
      policyName: "allow-all",
      expiresAt: "2026-05-04T03:00:00.000Z",
    };
    const otherCluster = await alarmedBy(() => h.invoke({ ...expiry, cluster: "local" }));
    const otherPolicy = await alarmedBy(() => h.invoke({ ...expiry, policyName: "emergency.allow-all" }));
    expect([otherCluster, otherPolicy].map((e) => [(e.result as PanicResponse).result, e.alarmed])).toEqual([
      ["skipped", true],
      ["skipped", true],
    ]);
    const applied = harness.responseBody(
      await h.invoke(harness.apiEvent("POST", { reason: "INC-9", ttlMinutes: 5 })),
    );
    await h.invoke(harness.apiEvent("POST", { reason: "INC-9, longer", ttlMinutes: 60 }));
    const refreshed = await alarmedBy(() => h.invoke({ ...expiry, expiresAt: applied.expiresAt }));
    expect([(refreshed.result as PanicResponse).result, refreshed.alarmed]).toEqual(["skipped", false]);
  });
});

describe("PanicExpiryNotScheduled: a policy that may not expire", () => {
  // Defect: an apply whose write was sent and not confirmed (a lost connection, its own timeout) schedules its expiry
  // all the same; when Scheduler refuses it, the answer is a 502 `outcome: "unknown"` saying "If it was carried out:
  // the expiry could not be scheduled …", but PanicExpiryNotScheduled is counted on success answers only, and the
  // announcement says the request was refused. Impact: the API server carries the write out, allow-all stays past
  // the expiry it was applied with, and the alarm meant for that stays OK. Expected: the alarm fires, and the
  // announcement says the outcome is unknown.
  const denied = () =>
    Object.assign(new Error("not authorized to perform: scheduler:CreateSchedule"), {
      name: "AccessDeniedException",
      $fault: "client",
    });

  async function unconfirmedApply(): Promise<{ alarmed: boolean; body: Record<string, unknown> }> {
    await h.kube.setFault({ fault: { kind: "reset" }, method: "POST" });
    const { result, emf } = await printedEmf(() =>
      h.invoke(harness.apiEvent("POST", { reason: "INC-9", ttlMinutes: 30 })),
    );
    expect(statusOf(result)).toBe(502);
    const body = harness.responseBody(result);
    expect(body).toMatchObject({ error: "kube-unavailable", outcome: "unknown" });
    return { alarmed: breaching(expiryNotScheduled, emfSums(emf)), body };
  }

  it("fires when the write was not confirmed and Scheduler refused its expiry, and the announcement says so", async () => {
    scheduler.on(CreateScheduleCommand).rejects(denied());
    scheduler.on(UpdateScheduleCommand).rejects(denied());
    const { alarmed, body } = await unconfirmedApply();
    expect(body.message).toMatch(/If it was carried out: the expiry could not be scheduled/);
    expect(alarmed).toBe(true);
    const [announced, ...more] = await h.announcements();
    expect(more).toEqual([]);
    // Still `refused` for the subscribers that filter on it; `outcome` says it may have been carried out.
    expect(announced).toMatchObject({ action: "refused", outcome: "unknown" });
  });

  it("does not fire when the expiry of the write not confirmed was scheduled", async () => {
    const { alarmed, body } = await unconfirmedApply();
    expect(body.message).toMatch(/its expiry is scheduled all the same$/);
    expect(alarmed).toBe(false);
  });
});

describe("panic apply --direct whose expiry Scheduler refuses", () => {
  // Defect: `panic apply --direct --ttl N --schedule-group …` applies the allow-all policy, and when Scheduler refuses
  // the expiry schedule (the operator's credentials lack scheduler:CreateSchedule or iam:PassRole, a quota) it lists
  // the warning in its answer and exits 0. Through the API the function counts it (PanicExpiryNotScheduled) and the
  // alarm of that name tells the on-call; the CLI cannot reach that alarm (its EMF goes nowhere the stack reads), and
  // the audit record says "applied … until <expiry>" as if the expiry were to come. Impact: a script, or an operator
  // reading `--json` or the exit status, takes the policy for self-expiring; the customer namespaces stay unisolated
  // past the expiry announced, with every alarm OK. Expected: a loud warning on stderr whatever the output format, a
  // non-zero exit status of its own (the policy is applied: not 1, which says nothing changed), and the audit record
  // saying that the expiry was not scheduled.
  let endpoint: Server;
  let store: string;
  beforeAll(async () => {
    store = mkdtempSync(join(tmpdir(), "cf-panic-metrics-"));
    // Scheduler has no local implementation: this one refuses every request as it does a caller without the grant.
    endpoint = createServer((req, res) => {
      req.resume().on("end", () => {
        res.writeHead(403, {
          "content-type": "application/json",
          "x-amzn-errortype": "AccessDeniedException",
        });
        res.end(
          JSON.stringify({
            Message:
              "User: arn:aws:iam::123456789012:user/oncall is not authorized to perform: scheduler:CreateSchedule",
          }),
        );
      });
    });
    await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => endpoint?.close(resolve));
    rmSync(store, { recursive: true, force: true });
  });

  it("says so loudly on stderr and exits 3, even with --json", async () => {
    const applied = await runCli(
      [
        "panic",
        "apply",
        "--direct",
        "--json",
        "--reason",
        "INC-9 payments down",
        "--ttl",
        "30",
        "--schedule-group",
        "calico-flows-panic",
        "--scheduler-role-arn",
        "arn:aws:iam::123456789012:role/scheduler",
        "--expiry-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:panic",
        "--kubeconfig",
        h.kube.kubeconfigPath,
        "--cluster",
        CLUSTER,
        "--store",
        store,
      ],
      { env: { AWS_ENDPOINT_URL_SCHEDULER: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}` } },
    );
    expect((JSON.parse(applied.stdout) as PanicResponse).result).toBe("applied");
    expect(harness.storedPanicPolicy(h)).toBeDefined();
    expect(applied.stderr).toMatch(/^!! .*NOT SCHEDULED.*\n(!! .*\n)*!! .*calico-flows panic revert/m);
    expect(applied.stderr).toContain("not authorized to perform: scheduler:CreateSchedule");
    expect(applied.code).toBe(3);
  });

  it("keeps it in the audit record, which the answer's message alone did not say", async () => {
    // The service both paths run: here through the function, whose Scheduler refuses alike.
    const denied = Object.assign(new Error("not authorized to perform: scheduler:CreateSchedule"), {
      name: "AccessDeniedException",
      $fault: "client",
    });
    scheduler.on(CreateScheduleCommand).rejects(denied);
    const applied = await h.invoke(harness.apiEvent("POST", { reason: "INC-9", ttlMinutes: 30 }));
    expect(harness.responseBody(applied).result).toBe("applied");
    const [record] = harness.responseBody(await h.invoke(harness.apiEvent("GET"))).history ?? [];
    expect(record).toMatchObject({ action: "apply", outcome: "success", result: "applied" });
    expect(record?.message).toMatch(/the expiry could not be scheduled .*scheduler:CreateSchedule/);
  });
});
