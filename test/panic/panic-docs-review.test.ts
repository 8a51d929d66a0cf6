// The panic button held to the Calico and EventBridge Scheduler documentation, not only to docs/panic.md:
// - the applied GlobalNetworkPolicy allows what the docs promise (both directions, catch-all rules, every endpoint
//   of the selected namespaces, in the configured tier), and what it cannot override is listed or refused;
// - every expiry schedule is one Scheduler would accept (name and `at()` rules), never runs before the expiry
//   the policy announces (Scheduler runs a one-time schedule anywhere in the minute it names), and still runs
//   when the expiry had already passed by the time the schedule was written;
// - the IAM the CDK stack grants covers exactly the Scheduler calls the function makes, and the invocation.
// Against the local HTTPS Kubernetes API (Calico v3 and CRD groups) and a Scheduler double that keeps its
// schedules, validates them as the Scheduler API reference says, and runs them on a virtual clock.
import { readFileSync } from "node:fs";
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  GetScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
  ValidationException,
} from "@aws-sdk/client-scheduler";
import { App, type CfnResource } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { mockClient } from "aws-sdk-client-mock";
import type { IConstruct } from "constructs";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CalicoPolicies, panicEksFixes } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import {
  atExpression,
  EventBridgeExpiryScheduler,
  scheduleName,
  scheduleTime,
} from "../../functions/adapters/scheduler.ts";
import {
  type CalicoApiGroup,
  type CalicoPolicy,
  DEFAULT_PANIC_SETTINGS,
  type ExpiryEvent,
  type PanicPolicySettings,
} from "../../functions/core/panic-policy.ts";
import { loadPanicConfig } from "../../functions/panic/config.ts";
import { createPanicHandler } from "../../functions/panic/handler.ts";
import { type PanicResponse, PanicService } from "../../functions/panic/service.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import { type KubeApiServer, startKubeApiServer } from "../support/kube-api-server.ts";
import { apiEvent, CALICO_CRD, CALICO_V3, FUNCTION_ARN, lambdaContext, TIERS_V3 } from "./harness.ts";

const CLUSTER = "prod-eu";
const GROUP = "calico-flows-panic";
const ROLE = "arn:aws:iam::123456789012:role/calico-flows-panic-scheduler";
const MINUTE = 60_000;
const GNP = {
  "projectcalico.org/v3": "globalnetworkpolicies.projectcalico.org",
  "crd.projectcalico.org/v1": "globalnetworkpolicies.crd.projectcalico.org",
} as const;
const NP_V3 = "networkpolicies.projectcalico.org";

// --- the Scheduler double ---------------------------------------------------------------------------------

// From the Scheduler API reference: names and group names 1-64 of [0-9a-zA-Z-_.]; a one-time schedule is
// `at(yyyy-mm-ddThh:mm:ss)`; retry policy 0-185 attempts, 60-86400 s; description at most 512 characters.
const NAME = /^[0-9a-zA-Z_.-]{1,64}$/;
const AT = /^at\((\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\)$/;
const UNQUALIFIED_FUNCTION = /^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$/;

interface Schedule {
  key: string;
  at: number;
  input: CreateScheduleCommandInput;
}

/** The time an `at()` expression names (UTC), or why Scheduler would refuse it. */
function parseAt(expression: string | undefined): number | string {
  const m = AT.exec(expression ?? "");
  if (m === null) return `Invalid Schedule Expression ${expression}`;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const ms = Date.UTC(y as number, (mo as number) - 1, d, h, mi, s);
  const back = new Date(ms);
  const exact =
    back.getUTCFullYear() === y &&
    back.getUTCMonth() + 1 === mo &&
    back.getUTCDate() === d &&
    back.getUTCHours() === h &&
    back.getUTCMinutes() === mi &&
    back.getUTCSeconds() === s;
  return exact ? ms : `Invalid Schedule Expression ${expression}`;
}

const validation = (message: string) => new ValidationException({ message, Message: message, $metadata: {} });
const notFound = () => new ResourceNotFoundException({ message: "none", Message: "none", $metadata: {} });

const schedulerMock = mockClient(SchedulerClient);
const schedulerClient = new SchedulerClient({ region: "eu-west-1" });
/** The virtual now of the Scheduler (and, unless a test says otherwise, of the function). */
const clock = { now: 0 };
const schedules = new Map<string, Schedule>();
/** Runs once, before the next UpdateSchedule is handled. */
let beforeUpdate: (() => void) | null = null;

function validate(input: CreateScheduleCommandInput): number {
  const problems: string[] = [];
  if (!NAME.test(input.Name ?? "")) problems.push(`Name ${input.Name}`);
  if (!NAME.test(input.GroupName ?? "")) problems.push(`GroupName ${input.GroupName}`);
  const at = parseAt(input.ScheduleExpression);
  if (typeof at === "string") problems.push(at);
  if (input.ScheduleExpressionTimezone !== "UTC") problems.push("ScheduleExpressionTimezone");
  if (input.FlexibleTimeWindow?.Mode !== "OFF") problems.push("FlexibleTimeWindow");
  if (input.ActionAfterCompletion !== "DELETE") problems.push("ActionAfterCompletion");
  if (input.State !== "ENABLED") problems.push("State");
  if ((input.Description ?? "").length > 512) problems.push("Description");
  const target = input.Target;
  if (!UNQUALIFIED_FUNCTION.test(target?.Arn ?? "")) problems.push(`Target.Arn ${target?.Arn}`);
  if (!/^arn:aws:iam::\d{12}:role\/.+$/.test(target?.RoleArn ?? "")) problems.push("Target.RoleArn");
  if ((target?.Input ?? "").length === 0) problems.push("Target.Input");
  const retry = target?.RetryPolicy;
  if (retry !== undefined) {
    const attempts = retry.MaximumRetryAttempts ?? 0;
    const age = retry.MaximumEventAgeInSeconds ?? 86_400;
    if (attempts < 0 || attempts > 185 || age < 60 || age > 86_400) problems.push("RetryPolicy");
  }
  if (problems.length > 0) throw validation(problems.join("; "));
  // The documentation does not say what a one-time schedule whose time has passed does (refused, or never
  // run): the double refuses it, so that relying on either shows up.
  if ((at as number) <= clock.now)
    throw validation(`the schedule time ${input.ScheduleExpression} has passed`);
  return at as number;
}

const keyOf = (input: { GroupName?: string; Name?: string }) => `${input.GroupName}/${input.Name}`;

function installScheduler(): void {
  schedulerMock.reset();
  schedules.clear();
  beforeUpdate = null;
  schedulerMock.on(CreateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    const at = validate(input);
    if (schedules.has(keyOf(input))) {
      throw new ConflictException({ message: "exists", Message: "exists", $metadata: {} });
    }
    schedules.set(keyOf(input), { key: keyOf(input), at, input });
    return { ScheduleArn: `arn:aws:scheduler:eu-west-1:123456789012:schedule/${keyOf(input)}` };
  });
  schedulerMock.on(UpdateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    const hook = beforeUpdate;
    beforeUpdate = null;
    hook?.();
    const at = validate(input);
    if (!schedules.has(keyOf(input))) throw notFound();
    schedules.set(keyOf(input), { key: keyOf(input), at, input });
    return { ScheduleArn: `arn:aws:scheduler:eu-west-1:123456789012:schedule/${keyOf(input)}` };
  });
  schedulerMock.on(DeleteScheduleCommand).callsFake(async (input: { GroupName?: string; Name?: string }) => {
    if (!schedules.delete(keyOf(input))) throw notFound();
    return {};
  });
  schedulerMock.on(GetScheduleCommand).callsFake(async (input: { GroupName?: string; Name?: string }) => {
    const schedule = schedules.get(keyOf(input));
    if (schedule === undefined) throw notFound();
    return { ...schedule.input, Arn: `arn:aws:scheduler:eu-west-1:123456789012:schedule/${schedule.key}` };
  });
}

interface Fired {
  at: number;
  event: ExpiryEvent;
  result: PanicResponse;
}

/**
 * Runs the schedules due up to `until`, each at the earliest moment the documentation allows ("if you set your
 * schedule to run at 1:00, it will invoke the target API between 1:00:00 and 1:00:59"): the start of the minute
 * its `at()` names. The target gets the schedule's input; then the schedule deletes itself.
 */
async function runSchedules(until: number, handler: Handler): Promise<Fired[]> {
  const fired: Fired[] = [];
  for (;;) {
    const due = [...schedules.values()]
      .filter((s) => Math.floor(s.at / MINUTE) * MINUTE <= until)
      .sort((a, b) => a.at - b.at)[0];
    if (due === undefined) break;
    schedules.delete(due.key);
    clock.now = Math.max(clock.now, Math.floor(due.at / MINUTE) * MINUTE);
    const event = JSON.parse(due.input.Target?.Input ?? "null") as ExpiryEvent;
    const result = (await handler(event, lambdaContext(due.input.Target?.Arn))) as PanicResponse;
    fired.push({ at: clock.now, event, result });
  }
  clock.now = Math.max(clock.now, until);
  return fired;
}

// --- the function, wired to the local cluster and the double ----------------------------------------------

type Handler = ReturnType<typeof createPanicHandler>;

let kube: KubeApiServer;
let kubeConfig: ReturnType<typeof loadKubeconfig>;

interface RuntimeOptions {
  settings?: Partial<PanicPolicySettings>;
  cluster?: string;
  groupName?: string;
  roleArn?: string;
  deadLetterArn?: string;
  /** The function's clock when it is not the Scheduler's (an apply that took long). */
  serviceClock?: () => Date;
}

function panicHandler(options: RuntimeOptions = {}): Handler {
  const settings = { ...DEFAULT_PANIC_SETTINGS, ...options.settings };
  const cluster = options.cluster ?? CLUSTER;
  const service = new PanicService({
    cluster,
    settings,
    calico: new CalicoPolicies({
      apiGroup: settings.apiGroup,
      kubeConfig: () => kubeConfig,
      description: "the test cluster",
      timeoutMs: 5_000,
      fixes: panicEksFixes(cluster),
    }),
    defaultTtlMinutes: 60,
    scheduler: new EventBridgeExpiryScheduler({
      client: schedulerClient,
      groupName: options.groupName ?? GROUP,
      roleArn: options.roleArn ?? ROLE,
      ...(options.deadLetterArn === undefined ? {} : { deadLetterArn: options.deadLetterArn }),
      clock: () => new Date(clock.now),
    }),
    clock: options.serviceClock ?? (() => new Date(clock.now)),
  });
  return createPanicHandler(() => ({ service }));
}

type Answer = PanicResponse & { error?: string; message: string; field?: string };

async function call(
  handler: Handler,
  method: string,
  payload?: unknown,
  arn = `${FUNCTION_ARN}:live`,
): Promise<{ status: number; body: Answer }> {
  const result = (await handler(apiEvent(method, payload), lambdaContext(arn))) as {
    statusCode: number;
    body: string;
  };
  return { status: result.statusCode, body: JSON.parse(result.body) as Answer };
}

const stored = (group: CalicoApiGroup, name: string) =>
  kube.store.get(GNP[group], name) as unknown as CalicoPolicy | undefined;

beforeAll(async () => {
  kube = await startKubeApiServer({ resources: [...CALICO_V3, ...CALICO_CRD] });
  kubeConfig = loadKubeconfig({ kubeconfig: kube.kubeconfigPath });
});

afterAll(async () => {
  schedulerMock.restore();
  schedulerClient.destroy();
  await kube?.close();
});

beforeEach(() => {
  kube.store.clear();
  installScheduler();
  clock.now = Date.parse("2025-04-19T04:52:19.250Z");
});

// --- what the policy allows ------------------------------------------------------------------------------

describe("the applied policy allows what the docs promise", () => {
  it("both directions, by catch-all Allow rules, for every workload endpoint of the selected namespaces", async () => {
    const { status, body } = await call(panicHandler(), "POST", { reason: "INC-42", ttlMinutes: 0 });
    expect(status).toBe(200);
    const policy = stored("projectcalico.org/v3", "allow-all");
    expect(policy?.kind).toBe("GlobalNetworkPolicy");
    // Exactly these fields: no `selector` narrowing the namespaces (Calico's default is all()), no
    // serviceAccountSelector, and none of applyOnForward / preDNAT / doNotTrack, which would make it a host
    // endpoint policy.
    expect(policy?.spec).toEqual({
      tier: "default",
      order: 100,
      namespaceSelector: "baseten.co/organization == 'true'",
      types: ["Ingress", "Egress"],
      ingress: [{ action: "Allow" }],
      egress: [{ action: "Allow" }],
    });
    expect(body.policy?.spec).toEqual(policy?.spec);
  });

  it.each([
    [["Ingress"], { ingress: [{ action: "Allow" }] }],
    [["Egress"], { egress: [{ action: "Allow" }] }],
  ] as const)("only the configured direction %j, and types says so explicitly", async (types, rules) => {
    const handler = panicHandler({ settings: { types: [...types] } });
    expect((await call(handler, "POST", { reason: "one way", ttlMinutes: 0 })).status).toBe(200);
    const spec = stored("projectcalico.org/v3", "allow-all")?.spec;
    // Without `types`, Calico would derive it from the rules present; it is written out instead.
    expect(spec).toEqual({
      tier: "default",
      order: 100,
      namespaceSelector: "baseten.co/organization == 'true'",
      types: [...types],
      ...rules,
    });
  });

  it("a take-over keeps none of the previous owner's narrowing or host-endpoint fields", async () => {
    kube.store.put(GNP["projectcalico.org/v3"], {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "allow-all" },
      spec: {
        order: 100,
        selector: "app == 'checkout'",
        serviceAccountSelector: "role == 'x'",
        namespaceSelector: "baseten.co/organization == 'true'",
        applyOnForward: true,
        doNotTrack: true,
        types: ["Ingress"],
        ingress: [{ action: "Deny", protocol: "TCP" }, { action: "Allow" }],
      },
    });
    const { status } = await call(panicHandler(), "POST", { reason: "take it", ttlMinutes: 0, force: true });
    expect(status).toBe(200);
    expect(stored("projectcalico.org/v3", "allow-all")?.spec).toEqual({
      tier: "default",
      order: 100,
      namespaceSelector: "baseten.co/organization == 'true'",
      types: ["Ingress", "Egress"],
      ingress: [{ action: "Allow" }],
      egress: [{ action: "Allow" }],
    });
  });

  it("in its own tier: named <tier>.<name>, and only earlier tiers (and host-endpoint policies) are listed", async () => {
    kube.store.put(TIERS_V3, { metadata: { name: "security" }, spec: { order: 10 } });
    kube.store.put(TIERS_V3, { metadata: { name: "emergency" }, spec: { order: 50 } });
    kube.store.put(TIERS_V3, { metadata: { name: "default" }, spec: { order: 1_000_000 } });
    const deny = (name: string, spec: Record<string, unknown>) => ({
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name },
      spec: { selector: "all()", ingress: [{ action: "Deny", protocol: "TCP" }], ...spec },
    });
    kube.store.put(
      GNP["projectcalico.org/v3"],
      deny("security.quarantine", { tier: "security", order: 500 }),
    );
    // The default tier comes after the panic tier: its denials never see panic-allowed traffic.
    kube.store.put(GNP["projectcalico.org/v3"], deny("deny-early", { order: 1 }));
    const handler = panicHandler({ settings: { tier: "emergency" } });
    const { status, body } = await call(handler, "POST", { reason: "tiered", ttlMinutes: 0 });
    expect(status).toBe(200);
    expect(stored("projectcalico.org/v3", "emergency.allow-all")?.spec).toMatchObject({
      tier: "emergency",
      order: 100,
    });
    expect(body.conflicts.map((c) => `${c.kind}/${c.name}`)).toEqual([
      "Tier/security",
      "GlobalNetworkPolicy/security.quarantine",
    ]);
  });

  // Calico's API server refuses a policy in a tier that does not exist; the CRD group, which Calico says not to
  // write directly, checks nothing, so the policy would be stored and not enforced as meant.
  it.each(["projectcalico.org/v3", "crd.projectcalico.org/v1"] as const)(
    "refuses a panic tier that does not exist (%s), and writes nothing",
    async (apiGroup) => {
      const handler = panicHandler({ settings: { apiGroup, tier: "emergncy" } });
      for (const dryRun of [true, false]) {
        const { status, body } = await call(handler, "POST", { reason: "typo", ttlMinutes: 5, dryRun });
        expect(status).toBe(502);
        expect(body).toMatchObject({ error: "kube-rejected" });
        expect(body.message).toContain('tier "emergncy" does not exist');
      }
      expect(kube.store.list(GNP[apiGroup])).toEqual([]);
      expect(schedules.size).toBe(0);
    },
  );

  it("applies in a tier that exists on the CRD group", async () => {
    kube.store.put("tiers.crd.projectcalico.org", { metadata: { name: "emergency" }, spec: { order: 50 } });
    const handler = panicHandler({ settings: { apiGroup: "crd.projectcalico.org/v1", tier: "emergency" } });
    expect((await call(handler, "POST", { reason: "crd", ttlMinutes: 0 })).status).toBe(200);
    expect(stored("crd.projectcalico.org/v1", "emergency.allow-all")?.spec.tier).toBe("emergency");
  });

  // The panic policy selects workload endpoints only (a namespaceSelector matches no host endpoint). At a host
  // endpoint, an applyOnForward policy also filters the pod traffic the host forwards, in an evaluation of its
  // own: its order relative to the panic policy does not matter.
  it("lists host-endpoint policies that can deny pod traffic whatever their order", async () => {
    const policy = (name: string, spec: Record<string, unknown>) => ({
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name },
      spec: { selector: "has(host-endpoint)", ingress: [{ action: "Deny", protocol: "TCP" }], ...spec },
    });
    kube.store.put(
      GNP["projectcalico.org/v3"],
      policy("hep-forward-deny", { order: 500, applyOnForward: true }),
    );
    kube.store.put(
      GNP["projectcalico.org/v3"],
      policy("hep-prednat-deny", { order: 500, applyOnForward: true, preDNAT: true }),
    );
    kube.store.put(
      GNP["projectcalico.org/v3"],
      policy("hep-untracked", { order: 500, applyOnForward: true, doNotTrack: true }),
    );
    // A normal policy after the panic policy in its tier never sees the traffic the panic policy allowed.
    kube.store.put(GNP["projectcalico.org/v3"], policy("late-deny", { order: 500 }));
    kube.store.put(NP_V3, {
      ...policy("ns-forward", { order: 900, applyOnForward: true }),
      kind: "NetworkPolicy",
      metadata: { name: "ns-forward", namespace: "customer-a" },
    });
    const { body } = await call(panicHandler(), "POST", { reason: "hosts", ttlMinutes: 0, dryRun: true });
    const byName = new Map(body.conflicts.map((c) => [c.name, c.reasons.join("; ")]));
    expect([...byName.keys()].sort()).toEqual(["hep-forward-deny", "hep-prednat-deny", "hep-untracked"]);
    expect(byName.get("hep-forward-deny")).toMatch(/^applyOnForward policy with a Deny rule \(Ingress\)/);
    expect(byName.get("hep-prednat-deny")).toMatch(/^preDNAT policy with a Deny rule/);
    expect(byName.get("hep-untracked")).toMatch(/^doNotTrack policy with a Deny rule/);
  });
});

// --- expiry schedules ------------------------------------------------------------------------------------

// EKS cluster names: 1-100 characters, a letter or digit first, then letters, digits, - and _.
const clusterName = fc
  .tuple(fc.constantFrom(..."abcXYZ019"), fc.string({ unit: fc.constantFrom(..."abz-_AZ09"), maxLength: 99 }))
  .map(([head, tail]) => head + tail);
// Kubernetes object names (what the panic policy's name may be), with a tier prefix or not.
const objectName = fc
  .tuple(
    fc.option(fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/), { nil: undefined }),
    fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,200}[a-z0-9])?$/),
  )
  .map(([tier, name]) => (tier === undefined ? name : `${tier}.${name}`));

describe("expiry schedules are ones Scheduler accepts", () => {
  it("names: 1-64 of [0-9a-zA-Z-_.], one per cluster and policy, for every cluster and policy name", () => {
    fc.assert(
      fc.property(clusterName, clusterName, objectName, (a, b, policy) => {
        const name = scheduleName(a, policy);
        expect(name).toMatch(NAME);
        expect(scheduleName(a, policy)).toBe(name);
        if (a !== b) expect(scheduleName(b, policy)).not.toBe(name);
      }),
      { numRuns: 300 },
    );
  });

  it("times: a valid at() on a whole minute, never before the expiry, at least a minute ahead, no later than needed", () => {
    const minute = Date.parse("2025-04-19T04:52:00.000Z");
    // Around minute boundaries (…:59.999, :00.000, :00.001), and anywhere in a few years.
    const instant = fc.oneof(
      fc
        .integer({ min: -2, max: 2 })
        .chain((m) => fc.constantFrom(-1, 0, 1, 999, 59_999).map((ms) => minute + m * MINUTE + ms)),
      fc.integer({ min: Date.parse("2024-02-28T00:00:00Z"), max: Date.parse("2030-12-31T23:59:59Z") }),
    );
    fc.assert(
      fc.property(
        instant,
        fc.integer({ min: 1, max: 10_080 }),
        fc.integer({ min: -20, max: 20 }),
        (appliedAt, ttl, lateMinutes) => {
          const expiresAt = new Date(appliedAt + ttl * MINUTE).toISOString();
          // When the schedule is written: right after the apply, or (a slow apply, an adopted expiry) later.
          const now = new Date(appliedAt + Math.max(0, lateMinutes) * MINUTE + 1234);
          const at = scheduleTime(expiresAt, now);
          const expression = atExpression(at);
          const parsed = parseAt(expression);
          expect(typeof parsed).toBe("number");
          expect(parsed).toBe(at.getTime());
          expect(at.getTime() % MINUTE).toBe(0);
          expect(at.getTime()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
          expect(at.getTime()).toBeGreaterThanOrEqual(now.getTime() + MINUTE);
          expect(at.getTime()).toBeLessThan(Math.max(Date.parse(expiresAt), now.getTime() + MINUTE) + MINUTE);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("the expiry reverts the policy, never before the expiry it announced", () => {
  it.each([
    ["2025-04-19T04:52:19.250Z", 1],
    ["2025-04-19T04:52:59.999Z", 1],
    ["2025-04-19T04:52:00.000Z", 1],
    ["2025-04-19T04:52:00.001Z", 59],
    ["2025-12-31T23:59:30.500Z", 60],
    ["2028-02-28T23:58:01.000Z", 10_080],
  ])("applied at %s with ttlMinutes %i", async (appliedAt, ttl) => {
    clock.now = Date.parse(appliedAt);
    const handler = panicHandler();
    const { status, body } = await call(handler, "POST", { reason: "expire me", ttlMinutes: ttl });
    expect(status).toBe(200);
    expect(body.warnings).toEqual([]);
    const expiresAt = Date.parse(body.expiresAt ?? "");
    expect(expiresAt).toBe(Date.parse(appliedAt) + ttl * MINUTE);
    expect(schedules.size).toBe(1);

    const fired = await runSchedules(expiresAt + 5 * MINUTE, handler);
    expect(fired).toHaveLength(1);
    const [run] = fired as [Fired];
    // Even at the earliest moment Scheduler may run it, the revert does not come before the announced expiry,
    // and it comes within two minutes of it.
    expect(run.at).toBeGreaterThanOrEqual(expiresAt);
    expect(run.at + 59_999).toBeLessThan(expiresAt + 2 * MINUTE);
    expect(run.event.expiresAt).toBe(body.expiresAt);
    expect(run.result).toMatchObject({ action: "expire", result: "expired" });
    expect(stored("projectcalico.org/v3", "allow-all")).toBeUndefined();
    expect(schedules.size).toBe(0);
  });

  it("an expiry that has passed by the time the schedule is written still gets a schedule, and a revert", async () => {
    // The apply started at T (its stamp, its expiry T+1 min) but reached the Scheduler three minutes later.
    const started = clock.now;
    clock.now = started + 3 * MINUTE;
    const handler = panicHandler({ serviceClock: () => new Date(started) });
    const { status, body } = await call(handler, "POST", { reason: "slow cluster", ttlMinutes: 1 });
    expect(status).toBe(200);
    expect(body.expiresAt).toBe(new Date(started + MINUTE).toISOString());
    expect(body.warnings).toEqual([]);
    expect(schedules.size).toBe(1);

    const fired = await runSchedules(clock.now + 5 * MINUTE, handler);
    expect(fired.map((f) => f.result.result)).toEqual(["expired"]);
    expect(fired[0]?.at).toBeGreaterThanOrEqual(started + 4 * MINUTE);
    expect(stored("projectcalico.org/v3", "allow-all")).toBeUndefined();
  });

  it("a refresh racing the old schedule's run (gone between Create and Update) still leaves a schedule", async () => {
    const handler = panicHandler();
    await call(handler, "POST", { reason: "first", ttlMinutes: 5 });
    expect(schedules.size).toBe(1);
    // The earlier schedule runs and deletes itself just as the refresh moves it.
    beforeUpdate = () => schedules.clear();
    const { body } = await call(handler, "POST", { reason: "second", ttlMinutes: 30 });
    expect(body).toMatchObject({ result: "refreshed", warnings: [] });
    expect(schedulerMock.commandCalls(UpdateScheduleCommand)).toHaveLength(1);
    expect([...schedules.values()].map((s) => JSON.parse(s.input.Target?.Input ?? "{}").expiresAt)).toEqual([
      body.expiresAt,
    ]);
    const fired = await runSchedules(Date.parse(body.expiresAt ?? "") + 2 * MINUTE, handler);
    expect(fired.map((f) => f.result.result)).toEqual(["expired"]);
    expect(stored("projectcalico.org/v3", "allow-all")).toBeUndefined();
  });

  it("a TTL of 0 schedules nothing and removes the pending schedule; a revert removes it too", async () => {
    const handler = panicHandler();
    await call(handler, "POST", { reason: "timed", ttlMinutes: 10 });
    expect(schedules.size).toBe(1);
    await call(handler, "POST", { reason: "until reverted", ttlMinutes: 0 });
    expect(schedules.size).toBe(0);
    await call(handler, "POST", { reason: "timed again", ttlMinutes: 10 });
    await call(handler, "DELETE");
    expect(schedules.size).toBe(0);
    expect(stored("projectcalico.org/v3", "allow-all")).toBeUndefined();
  });
});

// --- IAM --------------------------------------------------------------------------------------------------

const REGION = "eu-west-1";
const ACCOUNT = "123456789012";
type Json = Record<string, unknown>;
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Principal?: { Service?: string | string[] };
  Condition?: Record<string, Record<string, unknown>>;
}
const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** The deployed template with its intrinsics resolved to the names and ARNs CloudFormation would give. */
function resolvedTemplate(template: { Resources: Record<string, { Type: string; Properties?: Json }> }) {
  const resources = template.Resources;
  // A name the template sets, or one CloudFormation would generate.
  const physical = (id: string) => {
    const p = resources[id]?.Properties ?? {};
    const given = p.Name ?? p.FunctionName ?? p.RoleName;
    return typeof given === "string" ? given : `calicoflows-${id.toLowerCase()}`.slice(0, 60);
  };
  const pseudo: Record<string, string> = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
  };
  const arnOf = (id: string): string => {
    const type = resources[id]?.Type;
    switch (type) {
      case "AWS::IAM::Role":
        return `arn:aws:iam::${ACCOUNT}:role/${physical(id)}`;
      case "AWS::Lambda::Function":
        return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${physical(id)}`;
      case "AWS::Scheduler::ScheduleGroup":
        return `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule-group/${physical(id)}`;
      case "AWS::SQS::Queue":
        return `arn:aws:sqs:${REGION}:${ACCOUNT}:${physical(id)}`;
      default:
        return `arn:aws:${type}:${REGION}:${ACCOUNT}:${physical(id)}`;
    }
  };
  const resolve = (value: unknown): unknown => {
    if (value === null || typeof value !== "object") return value;
    if (Array.isArray(value)) return value.map(resolve);
    const object = value as Json;
    if ("Ref" in object) {
      const ref = object.Ref as string;
      // A topic's Ref is its ARN; a role's, a function's or a schedule group's, its name.
      if (resources[ref]?.Type === "AWS::SNS::Topic")
        return `arn:aws:sns:${REGION}:${ACCOUNT}:${physical(ref)}`;
      return pseudo[ref] ?? physical(ref);
    }
    if ("Fn::GetAtt" in object) {
      const [id, attribute] = object["Fn::GetAtt"] as [string, string];
      if (attribute !== "Arn") throw new Error(`unresolved GetAtt ${id}.${attribute}`);
      return arnOf(id);
    }
    if ("Fn::Join" in object) {
      const [separator, parts] = object["Fn::Join"] as [string, unknown[]];
      return parts.map((p) => String(resolve(p))).join(separator);
    }
    if (Object.keys(object).some((k) => k.startsWith("Fn::"))) throw new Error(JSON.stringify(object));
    return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, resolve(v)]));
  };
  return { resolve, physical };
}

const glob = (pattern: string, value: string) =>
  new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  ).test(value);

/** Whether an identity policy (or a trust policy, with `service`) allows the call, StringEquals conditions only. */
function allows(
  statements: Statement[],
  action: string,
  resource: string | null,
  context: Record<string, string> = {},
  service?: string,
): boolean {
  return statements.some(
    (s) =>
      s.Effect === "Allow" &&
      list(s.Action).some((a) => glob(a, action)) &&
      (resource === null || list(s.Resource as string | string[]).some((r) => glob(r, resource))) &&
      (service === undefined || list(s.Principal?.Service).includes(service)) &&
      Object.entries(s.Condition ?? {}).every(
        ([operator, pairs]) =>
          operator === "StringEquals" &&
          Object.entries(pairs).every(([key, expected]) =>
            list(expected as string).includes(context[key] ?? ""),
          ),
      ),
  );
}

describe("the stack's IAM covers the calls the function makes, and no more is needed", () => {
  it("Create/Update/Delete/GetSchedule on the group's schedules, PassRole to Scheduler, the invocation and the dead-letter queue", async () => {
    const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
      context: Record<string, unknown>;
    };
    const app = new App({ context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } });
    const stack = new CalicoFlowsStack(app, "CalicoFlows", {
      config: parseConfig(appContext((key) => app.node.tryGetContext(key))),
    });
    const template = Template.fromStack(stack).toJSON() as {
      Resources: Record<string, { Type: string; Properties?: Json }>;
    };
    const { resolve } = resolvedTemplate(template);
    const id = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnResource);
    const roleStatements = (roleId: string) =>
      Object.values(template.Resources)
        .filter(
          (r) =>
            r.Type === "AWS::IAM::Policy" &&
            JSON.stringify(r.Properties?.Roles) === JSON.stringify([{ Ref: roleId }]),
        )
        .flatMap((r) => (resolve(r.Properties?.PolicyDocument) as { Statement: Statement[] }).Statement);
    const functionRole = roleStatements(id(stack.panic.function.role));
    const schedulerRole = roleStatements(id(stack.panic.schedulerRole));
    const trust = (
      resolve(template.Resources[id(stack.panic.schedulerRole)]?.Properties?.AssumeRolePolicyDocument) as {
        Statement: Statement[];
      }
    ).Statement;
    const fn = template.Resources[id(stack.panic.function.function)]?.Properties as Json;
    const env = resolve((fn.Environment as Json).Variables) as Record<string, string>;
    const functionArn = resolve({ "Fn::GetAtt": [id(stack.panic.function.function), "Arn"] }) as string;

    // The function as deployed: its environment, invoked through an alias.
    const config = loadPanicConfig(env);
    if (config.scheduler === undefined) throw new Error("the stack configures no scheduler");
    const handler = panicHandler({
      cluster: config.cluster,
      settings: config.settings,
      groupName: config.scheduler.groupName,
      roleArn: config.scheduler.roleArn,
      deadLetterArn: config.scheduler.deadLetterArn,
    });
    const arn = `${functionArn}:live`;
    expect((await call(handler, "POST", { reason: "iam", ttlMinutes: 5 }, arn)).status).toBe(200);
    expect((await call(handler, "POST", { reason: "iam again", ttlMinutes: 30 }, arn)).status).toBe(200);
    // Status reads the schedule of the expiry to come.
    expect((await call(handler, "GET", undefined, arn)).body).toMatchObject({
      result: "active",
      warnings: [],
    });
    const fired = await runSchedules(clock.now + 31 * MINUTE, handler);
    expect(fired.map((f) => f.result.result)).toEqual(["expired"]);
    await call(handler, "POST", { reason: "iam 3", ttlMinutes: 5 }, arn);
    expect((await call(handler, "DELETE", undefined, arn)).status).toBe(200);

    const calls = schedulerMock
      .calls()
      .map((c) => c.args[0] as unknown as { constructor: { name: string }; input: Json });
    const used = [...new Set(calls.map((c) => c.constructor.name.replace(/Command$/, "")))].sort();
    expect(used).toEqual(["CreateSchedule", "DeleteSchedule", "GetSchedule", "UpdateSchedule"]);
    const granted = [
      ...new Set(functionRole.flatMap((s) => list(s.Action)).filter((a) => a.startsWith("scheduler:"))),
    ].sort();
    expect(granted).toEqual(used.map((u) => `scheduler:${u}`));

    for (const c of calls) {
      const input = c.input as unknown as CreateScheduleCommandInput;
      const action = `scheduler:${c.constructor.name.replace(/Command$/, "")}`;
      const schedule = `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule/${input.GroupName}/${input.Name}`;
      expect(allows(functionRole, action, schedule), `${action} ${schedule}`).toBe(true);
      if (input.Target !== undefined) {
        const passed = input.Target.RoleArn ?? "";
        expect(
          allows(functionRole, "iam:PassRole", passed, { "iam:PassedToService": "scheduler.amazonaws.com" }),
          `iam:PassRole ${passed}`,
        ).toBe(true);
        // Scheduler assumes the role on behalf of the schedule's group, then invokes the target.
        const group = `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule-group/${input.GroupName}`;
        expect(
          allows(
            trust,
            "sts:AssumeRole",
            null,
            { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": group },
            "scheduler.amazonaws.com",
          ),
        ).toBe(true);
        expect(input.Target.Arn).toBe(functionArn);
        expect(allows(schedulerRole, "lambda:InvokeFunction", input.Target.Arn ?? "")).toBe(true);
        // A delivery that fails for an hour goes to the dead-letter queue, which the same role sends to.
        const deadLetters = input.Target.DeadLetterConfig?.Arn ?? "";
        expect(deadLetters).toMatch(/^arn:aws:sqs:/);
        expect(allows(schedulerRole, "sqs:SendMessage", deadLetters), `sqs:SendMessage ${deadLetters}`).toBe(
          true,
        );
      }
    }
    // The checks can fail: another group's schedules, another role, a qualified ARN are not granted.
    expect(
      allows(
        functionRole,
        "scheduler:CreateSchedule",
        `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule/other/x`,
      ),
    ).toBe(false);
    expect(
      allows(functionRole, "iam:PassRole", `arn:aws:iam::${ACCOUNT}:role/admin`, {
        "iam:PassedToService": "scheduler.amazonaws.com",
      }),
    ).toBe(false);
    expect(allows(schedulerRole, "lambda:InvokeFunction", arn)).toBe(false);
  });
});
