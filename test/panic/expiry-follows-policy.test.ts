// The expiry schedule follows the policy the cluster ends with, whatever the answer said: an apply whose write was
// cut short (by the deadline, its own timeout, a lost connection) but carried out by the API server still expires,
// a revert raced by an apply leaves the new policy its schedule, or says it could not, and `status` says when an
// applied policy's expiry is not scheduled. Against the local Kubernetes API and a Scheduler stand-in that keeps its
// schedules.
import { setTimeout as sleep } from "node:timers/promises";
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  GetScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { scheduleName } from "../../functions/adapters/scheduler.ts";
import { ANSWER_RESERVE_MS } from "../../functions/panic/handler.ts";
import { runCli } from "../cli/run.ts";
import {
  apiEvent,
  CLUSTER,
  FUNCTION_ARN,
  lambdaContext,
  type PanicHarness,
  responseBody,
  SCHEDULE_GROUP,
  type SigV4Gateway,
  startPanicHarness,
  startSigV4Gateway,
  storedPanicPolicy,
} from "./harness.ts";

const BOB = "arn:aws:sts::123456789012:assumed-role/Oncall/bob";
/** The suite's fake credentials (vitest.config.ts), which the CLI's default credential chain picks up. */
const PRINCIPALS = new Map([
  [
    "AKIDTESTTESTTEST",
    { secretAccessKey: "test-secret", arn: "arn:aws:sts::123456789012:assumed-role/Oncall/alice" },
  ],
]);
const SCHEDULE = `${SCHEDULE_GROUP}/${scheduleName(CLUSTER, "allow-all")}`;

const scheduler = mockClient(SchedulerClient);
/** The Scheduler's schedules: group/name → the expiry its revert event carries. */
const schedules = new Map<string, string>();
/** Their state and target as last written: group/name → the CreateSchedule or UpdateSchedule input. */
const written = new Map<string, CreateScheduleCommandInput>();
/** Scheduler refuses to create or update schedules (a permission lost, a quota). */
let refusing = false;
/** Runs once, before the next DeleteSchedule is carried out. */
let beforeDelete: (() => Promise<void>) | null = null;
let h: PanicHarness;

const keyOf = (input: { GroupName?: string; Name?: string }) => `${input.GroupName}/${input.Name}`;
const expiryIn = (input: CreateScheduleCommandInput) =>
  (JSON.parse(input.Target?.Input ?? "{}") as { expiresAt: string }).expiresAt;
const notFound = () => new ResourceNotFoundException({ message: "none", Message: "none", $metadata: {} });

beforeAll(async () => {
  h = await startPanicHarness();
});
afterAll(async () => {
  scheduler.restore();
  await h?.close();
});
beforeEach(async () => {
  scheduler.reset();
  schedules.clear();
  written.clear();
  refusing = false;
  beforeDelete = null;
  const refusal = () =>
    Object.assign(new Error("not authorized to perform: scheduler:CreateSchedule"), {
      name: "AccessDeniedException",
    });
  scheduler.on(CreateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    if (refusing) throw refusal();
    if (schedules.has(keyOf(input)))
      throw new ConflictException({ message: "exists", Message: "exists", $metadata: {} });
    schedules.set(keyOf(input), expiryIn(input));
    written.set(keyOf(input), input);
    return { ScheduleArn: "arn:aws:scheduler:eu-west-1:123456789012:schedule/x" };
  });
  scheduler.on(UpdateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    if (refusing) throw refusal();
    if (!schedules.has(keyOf(input))) throw notFound();
    schedules.set(keyOf(input), expiryIn(input));
    written.set(keyOf(input), input);
    return { ScheduleArn: "arn:aws:scheduler:eu-west-1:123456789012:schedule/x" };
  });
  scheduler.on(DeleteScheduleCommand).callsFake(async (input) => {
    const hook = beforeDelete;
    beforeDelete = null;
    await hook?.();
    if (!schedules.delete(keyOf(input))) throw notFound();
    return {};
  });
  scheduler.on(GetScheduleCommand).callsFake(async (input) => {
    const expiresAt = schedules.get(keyOf(input));
    const schedule = written.get(keyOf(input));
    if (expiresAt === undefined || schedule === undefined) throw notFound();
    return { ...schedule, Target: { ...schedule.Target, Input: JSON.stringify({ expiresAt }) } };
  });
  await h.kube.setFault(null);
  h.kube.store.clear();
  await h.announcements();
});

const expiryOf = () => storedPanicPolicy(h)?.metadata.annotations?.["calico-flows.io/expires-at"];

describe("an apply whose write was given up on", () => {
  it("schedules the expiry of the policy the API server then writes, and status finds it scheduled", async () => {
    // 3 s of work: the reads get 1.25 s, the write until 2.25 s, the schedule the rest. The create is carried
    // out 2.5 s after it arrives, past the time it had.
    await h.kube.setFault({ fault: { kind: "delay", ms: 2_500 }, method: "POST" });
    const result = await h.invoke(
      apiEvent("POST", { reason: "INC-9", ttlMinutes: 30 }),
      undefined,
      lambdaContext(undefined, ANSWER_RESERVE_MS + 3_000),
    );
    expect(result.statusCode).toBe(502);
    const { message } = responseBody(result);
    expect(message).toMatch(/the write was sent, and the API server may have carried it out/);
    expect(message).toMatch(
      /If it was carried out, it is removed at \S+: its expiry is scheduled all the same$/,
    );

    // The create the function gave up on lands.
    while (storedPanicPolicy(h) === undefined) await sleep(20);
    await h.kube.setFault(null);
    expect(schedules.get(SCHEDULE)).toBe(expiryOf());
    expect(message).toContain(`it is removed at ${expiryOf()}`);
    const status = responseBody(await h.invoke(apiEvent("GET")));
    expect(status).toMatchObject({ result: "active", warnings: [] });
    expect(status.message).toMatch(/, expiring at \S+$/);
  });

  it("schedules the expiry all the same when the write outlasts its own timeout, and says it may have been done", async () => {
    // Deployed, each request has 8 s of the invocation's ~22 s: a write the API server holds longer ends on its own
    // timeout, far from the deadline. Here 500 ms of 22 s; the create is carried out after 1 s.
    await h.kube.setFault({ fault: { kind: "delay", ms: 1_000 }, method: "POST" });
    const result = await h.invoke(
      apiEvent("POST", { reason: "INC-9", ttlMinutes: 30 }),
      h.runtime({ kubeTimeoutMs: 500 }),
    );
    expect(result.statusCode).toBe(502);
    const body = responseBody(result);
    expect(body).toMatchObject({ error: "kube-unavailable", outcome: "unknown" });
    expect(body.message).toMatch(
      /within the 500 ms this request may take: the write was sent, and the API server may have carried it out/,
    );

    while (storedPanicPolicy(h) === undefined) await sleep(20);
    await h.kube.setFault(null);
    expect(schedules.get(SCHEDULE)).toBe(expiryOf());
    expect(body.message).toContain(
      `If it was carried out, it is removed at ${expiryOf()}: its expiry is scheduled`,
    );
  });

  it("exits 4 from `panic apply --direct` whose write lost its connection: it may have been carried out", async () => {
    await h.kube.setFault({ fault: { kind: "reset" }, method: "POST" });
    // Audited into the harness's table, quicker to reach than an embedded store to start.
    const run = await runCli(
      [
        "panic",
        "apply",
        "--direct",
        "--json",
        "--reason",
        "INC-9",
        "--kubeconfig",
        h.kube.kubeconfigPath,
        "--cluster",
        CLUSTER,
        "--table",
        h.store.tableName,
      ],
      { env: { AWS_ENDPOINT_URL_DYNAMODB: h.store.endpoint } },
    );
    expect(JSON.parse(run.stdout)).toMatchObject({ error: "kube-unavailable", outcome: "unknown" });
    expect(run.stderr).toMatch(
      /^!! the apply may have been carried out: its change was sent to the Kubernetes API, which did not confirm it\. Run `calico-flows panic status` before trying again$/m,
    );
    expect(run.code).toBe(4);
  });
});

describe("status", () => {
  it("says when an applied policy's expiry is not scheduled, or scheduled for an earlier expiry", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-3", ttlMinutes: 30 }))).statusCode).toBe(200);
    const expiresAt = expiryOf();
    expect(schedules.get(SCHEDULE)).toBe(expiresAt);
    expect(responseBody(await h.invoke(apiEvent("GET"))).warnings).toEqual([]);

    schedules.set(SCHEDULE, new Date(Date.parse(expiresAt ?? "") - 60_000).toISOString());
    const skipped = responseBody(await h.invoke(apiEvent("GET")));
    expect(skipped.warnings).toEqual([
      expect.stringMatching(
        /^the expiry at \S+ is not scheduled \(the one there is for \S+, and will skip it\)/,
      ),
    ]);

    schedules.clear();
    const missing = responseBody(await h.invoke(apiEvent("GET")));
    expect(missing.result).toBe("active");
    expect(missing.message).toContain(
      `announced to expire at ${expiresAt}, but no expiry schedule will remove it: revert it by hand`,
    );
    expect(missing.warnings).toEqual([
      `the expiry at ${expiresAt} is not scheduled (there is none): the policy stays until reverted by hand; ` +
        "revert it once traffic is fixed, or apply again with a TTL",
    ]);
  });

  it("does not count a schedule that is disabled, or that invokes another function", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-3", ttlMinutes: 30 }))).statusCode).toBe(200);
    const expiresAt = expiryOf();
    const schedule = written.get(SCHEDULE) as CreateScheduleCommandInput;
    const warningsWith = async (changed: CreateScheduleCommandInput) => {
      written.set(SCHEDULE, changed);
      return responseBody(await h.invoke(apiEvent("GET"))).warnings;
    };
    const notScheduled = (found: string) =>
      `the expiry at ${expiresAt} is not scheduled (${found}): the policy stays until reverted by hand; ` +
      "revert it once traffic is fixed, or apply again with a TTL";

    expect(await warningsWith({ ...schedule, State: "DISABLED" })).toEqual([
      notScheduled("the one there is is not enabled (DISABLED): Scheduler does not run it"),
    ]);
    const other = "arn:aws:lambda:eu-west-1:123456789012:function:someone-elses";
    expect(await warningsWith({ ...schedule, Target: { ...schedule.Target, Arn: other } as never })).toEqual([
      notScheduled(`the one there is invokes ${other}, not this panic function (${FUNCTION_ARN})`),
    ]);
    expect(await warningsWith(schedule)).toEqual([]);
  });

  it("warns, and still answers, when the schedule cannot be read", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-4", ttlMinutes: 30 }))).statusCode).toBe(200);
    scheduler.on(GetScheduleCommand).rejects(new Error("AccessDeniedException: not authorized"));
    const status = responseBody(await h.invoke(apiEvent("GET")));
    expect(status.result).toBe("active");
    expect(status.warnings).toEqual([
      "the expiry schedule could not be checked: AccessDeniedException: not authorized",
    ]);
  });
});

describe("a revert raced by an apply", () => {
  it("leaves the policy the apply wrote after the delete with its expiry schedule", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-1", ttlMinutes: 60 }))).statusCode).toBe(200);
    // Bob applies between Alice's delete of the policy and her removal of its schedule.
    let bobs: Awaited<ReturnType<PanicHarness["invoke"]>> | undefined;
    beforeDelete = async () => {
      bobs = await h.invoke(
        apiEvent("POST", { reason: "INC-1 still broken", ttlMinutes: 30 }, { identity: { userArn: BOB } }),
      );
    };
    const reverted = await h.invoke(apiEvent("DELETE", { reason: "fixed" }));
    expect(responseBody(reverted)).toMatchObject({ result: "reverted", warnings: [] });
    expect(responseBody(bobs ?? {})).toMatchObject({ result: "applied", appliedBy: BOB });

    expect(storedPanicPolicy(h)?.metadata.annotations?.["calico-flows.io/requester"]).toBe(BOB);
    expect(schedules.get(SCHEDULE)).toBe(expiryOf());
    expect(responseBody(await h.invoke(apiEvent("GET"))).warnings).toEqual([]);
  });

  it("says when Scheduler refuses that schedule: the apply's expiry, not the removed one's, and exit 3", async () => {
    expect((await h.invoke(apiEvent("POST", { reason: "INC-1", ttlMinutes: 60 }))).statusCode).toBe(200);
    const alices = expiryOf();
    beforeDelete = async () => {
      await h.invoke(
        apiEvent("POST", { reason: "INC-1 still broken", ttlMinutes: 30 }, { identity: { userArn: BOB } }),
      );
      refusing = true;
    };
    let gateway: SigV4Gateway | undefined;
    let run: Awaited<ReturnType<typeof runCli>>;
    try {
      gateway = await startSigV4Gateway((event) => h.invoke(event), PRINCIPALS);
      run = await runCli(["panic", "revert", "--api", gateway.url, "--reason", "fixed"]);
    } finally {
      await gateway?.close();
    }
    const bobs = expiryOf();
    expect(bobs).toBeDefined();
    expect(bobs).not.toBe(alices);
    expect(schedules.has(SCHEDULE)).toBe(false);

    const [headline] = run.stdout.split("\n");
    expect(headline).toBe(
      `REVERTED  panic policy allow-all removed from ${CLUSTER}; but another apply, by ${BOB}, applied it again ` +
        `meanwhile (until ${bobs}): allow-all is in force`,
    );
    expect(run.stdout).toContain(
      `WARNING: another apply set the policy's expiry to ${bobs} meanwhile, and the expiry could not be scheduled (`,
    );
    expect(run.stderr).toContain(
      `!! WARNING: the expiry at ${bobs} is NOT SCHEDULED: allow-all stays applied`,
    );
    expect(run.stderr).not.toContain(String(alices));
    expect(run.code).toBe(3);
  });
});
