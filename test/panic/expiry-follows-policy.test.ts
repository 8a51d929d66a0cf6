// The expiry schedule follows the policy the cluster ends with, whatever the answer said: an apply whose write was
// cut short by the deadline but carried out by the API server still expires, a revert raced by an apply leaves the
// new policy its schedule, and `status` says when an applied policy's expiry is not scheduled. Against the local
// Kubernetes API and a Scheduler stand-in that keeps its schedules.
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
import {
  apiEvent,
  CLUSTER,
  lambdaContext,
  type PanicHarness,
  responseBody,
  SCHEDULE_GROUP,
  startPanicHarness,
  storedPanicPolicy,
} from "./harness.ts";

const BOB = "arn:aws:sts::123456789012:assumed-role/Oncall/bob";
const SCHEDULE = `${SCHEDULE_GROUP}/${scheduleName(CLUSTER, "allow-all")}`;

const scheduler = mockClient(SchedulerClient);
/** The Scheduler's schedules: group/name → the expiry its revert event carries. */
const schedules = new Map<string, string>();
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
  beforeDelete = null;
  scheduler.on(CreateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    if (schedules.has(keyOf(input)))
      throw new ConflictException({ message: "exists", Message: "exists", $metadata: {} });
    schedules.set(keyOf(input), expiryIn(input));
    return { ScheduleArn: "arn:aws:scheduler:eu-west-1:123456789012:schedule/x" };
  });
  scheduler.on(UpdateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    if (!schedules.has(keyOf(input))) throw notFound();
    schedules.set(keyOf(input), expiryIn(input));
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
    if (expiresAt === undefined) throw notFound();
    return { Target: { Arn: "arn", RoleArn: "role", Input: JSON.stringify({ expiresAt }) } };
  });
  await h.kube.setFault(null);
  h.kube.store.clear();
  await h.announcements();
});

const expiryOf = () => storedPanicPolicy(h)?.metadata.annotations?.["calico-flows.io/expires-at"];

describe("an apply whose write the deadline cut short", () => {
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
});
