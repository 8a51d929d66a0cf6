import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
  ValidationException,
} from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  atExpression,
  EventBridgeExpiryScheduler,
  scheduleName,
} from "../../functions/adapters/scheduler.ts";
import { loadPanicConfig } from "../../functions/panic/config.ts";
import { expiryScheduler } from "../../functions/panic/handler.ts";

const mock = mockClient(SchedulerClient);
const client = new SchedulerClient({ region: "eu-west-1" });
const DEAD_LETTERS = "arn:aws:sqs:eu-west-1:123456789012:panic-expiry-dead-letters";
const scheduler = new EventBridgeExpiryScheduler({
  client,
  groupName: "panic-group",
  roleArn: "arn:aws:iam::123456789012:role/scheduler",
  deadLetterArn: DEAD_LETTERS,
  // When the policy was applied: its expiry is an hour ahead.
  clock: () => new Date("2025-04-19T04:52:19.250Z"),
});
const request = {
  cluster: "prod",
  policyName: "allow-all",
  expiresAt: "2025-04-19T05:52:19.250Z",
  functionArn: "arn:aws:lambda:eu-west-1:123456789012:function:panic",
};

beforeEach(() => mock.reset());
afterAll(() => {
  mock.restore();
  client.destroy();
});

describe("schedule names and times", () => {
  it("names one schedule per cluster and policy, within Scheduler's rules", () => {
    expect(scheduleName("prod", "allow-all")).toBe("panic-prod-allow-all");
    expect(scheduleName("prod", "ops.allow-all")).toBe("panic-prod-ops.allow-all");
    const long = scheduleName("c".repeat(100), "allow-all");
    expect(long).toHaveLength(64);
    expect(long).toMatch(/^[0-9A-Za-z_.-]+$/);
    expect(scheduleName("c".repeat(100), "other")).not.toBe(long);
  });

  it("rounds the expiry up to the minute (Scheduler's precision), in UTC", () => {
    expect(atExpression("2025-04-19T05:52:19.250Z")).toBe("at(2025-04-19T05:53:00)");
    expect(atExpression("2025-04-19T05:52:00.000Z")).toBe("at(2025-04-19T05:52:00)");
    expect(atExpression("2025-12-31T23:59:00.001Z")).toBe("at(2026-01-01T00:00:00)");
    expect(() => atExpression("soon")).toThrow("invalid expiry time");
  });
});

describe("EventBridgeExpiryScheduler", () => {
  it("creates a one-time schedule that deletes itself and invokes the function with the revert event", async () => {
    mock.on(CreateScheduleCommand).resolves({});
    expect(await scheduler.schedule(request)).toBe("panic-prod-allow-all");
    const input = mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      Name: "panic-prod-allow-all",
      GroupName: "panic-group",
      ScheduleExpression: "at(2025-04-19T05:53:00)",
      ScheduleExpressionTimezone: "UTC",
      ActionAfterCompletion: "DELETE",
      State: "ENABLED",
      Target: { Arn: request.functionArn, RoleArn: "arn:aws:iam::123456789012:role/scheduler" },
    });
    expect(JSON.parse(input?.Target?.Input ?? "")).toEqual({
      source: "calico-flows.expiry",
      action: "revert",
      cluster: "prod",
      policyName: "allow-all",
      expiresAt: request.expiresAt,
    });
  });

  it("moves an existing schedule instead of failing", async () => {
    mock
      .on(CreateScheduleCommand)
      .rejects(new ConflictException({ message: "exists", Message: "exists", $metadata: {} }));
    mock.on(UpdateScheduleCommand).resolves({});
    await scheduler.schedule(request);
    expect(mock.commandCalls(UpdateScheduleCommand)[0]?.args[0].input.ScheduleExpression).toBe(
      "at(2025-04-19T05:53:00)",
    );
  });

  describe("keeps a revert it cannot deliver: every schedule written names the dead-letter queue", () => {
    const deadLetterConfig = (input: { Target?: { DeadLetterConfig?: unknown } } | undefined) =>
      input?.Target?.DeadLetterConfig;

    it("on a new schedule, after the hour of retries", async () => {
      mock.on(CreateScheduleCommand).resolves({});
      await scheduler.schedule(request);
      const target = mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input.Target;
      expect(target?.DeadLetterConfig).toEqual({ Arn: DEAD_LETTERS });
      expect(target?.RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 20 });
    });

    it("on a schedule moved by a refresh (UpdateSchedule replaces the whole target)", async () => {
      mock
        .on(CreateScheduleCommand)
        .rejects(new ConflictException({ message: "exists", Message: "exists", $metadata: {} }));
      mock.on(UpdateScheduleCommand).resolves({});
      await scheduler.schedule(request);
      expect(deadLetterConfig(mock.commandCalls(UpdateScheduleCommand)[0]?.args[0].input)).toEqual({
        Arn: DEAD_LETTERS,
      });
    });

    it("on a schedule created afresh because the old one fired during the refresh", async () => {
      mock
        .on(CreateScheduleCommand)
        .rejectsOnce(new ConflictException({ message: "exists", Message: "exists", $metadata: {} }))
        .resolves({});
      mock
        .on(UpdateScheduleCommand)
        .rejects(new ResourceNotFoundException({ message: "gone", Message: "gone", $metadata: {} }));
      await scheduler.schedule(request);
      const creates = mock.commandCalls(CreateScheduleCommand).map((c) => deadLetterConfig(c.args[0].input));
      expect(creates).toEqual([{ Arn: DEAD_LETTERS }, { Arn: DEAD_LETTERS }]);
    });

    it("as the panic function is configured: the ARN of SCHEDULE_DEAD_LETTER_QUEUE_ARN", async () => {
      const configured = "arn:aws:sqs:eu-west-1:123456789012:CalicoFlows-PanicExpiryDeadLetters-AbC123";
      const config = loadPanicConfig({
        CLUSTER_NAME: "prod",
        TABLE_NAME: "calico-flows",
        SCHEDULE_GROUP_NAME: "panic-group",
        SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/scheduler",
        SCHEDULE_DEAD_LETTER_QUEUE_ARN: configured,
      });
      mock.on(CreateScheduleCommand).resolves({});
      await expiryScheduler(config, client)?.schedule(request);
      expect(deadLetterConfig(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input)).toEqual({
        Arn: configured,
      });
    });

    it("names none when given none (`panic --direct`): Scheduler then drops what it cannot deliver", async () => {
      const direct = new EventBridgeExpiryScheduler({
        client,
        groupName: "panic-group",
        roleArn: "arn:aws:iam::123456789012:role/scheduler",
        clock: () => new Date("2025-04-19T04:52:19.250Z"),
      });
      mock.on(CreateScheduleCommand).resolves({});
      await direct.schedule(request);
      expect(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input.Target).not.toHaveProperty(
        "DeadLetterConfig",
      );
    });
  });

  it("passes other errors on", async () => {
    mock
      .on(CreateScheduleCommand)
      .rejects(new ValidationException({ message: "bad role", Message: "bad role", $metadata: {} }));
    await expect(scheduler.schedule(request)).rejects.toThrow("bad role");
  });

  it("cancels, tolerating a schedule that is already gone", async () => {
    mock
      .on(DeleteScheduleCommand)
      .resolvesOnce({})
      .rejects(new ResourceNotFoundException({ message: "gone", Message: "gone", $metadata: {} }));
    expect(await scheduler.cancel("prod", "allow-all")).toBe(true);
    expect(await scheduler.cancel("prod", "allow-all")).toBe(false);
    expect(mock.commandCalls(DeleteScheduleCommand)[0]?.args[0].input).toEqual({
      Name: "panic-prod-allow-all",
      GroupName: "panic-group",
    });
  });
});
