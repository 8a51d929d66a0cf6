// Self-expiry of the panic policy: one one-time EventBridge Scheduler schedule per cluster and policy, whose
// target is the panic function itself with a revert event. Re-applying moves the schedule; reverting by hand
// deletes it; the schedule deletes itself after it fired (ActionAfterCompletion DELETE).
//
// Scheduler invokes targets "with 60 second precision": a schedule set for 1:00 runs between 1:00:00 and
// 1:00:59. So the `at()` time is the expiry rounded up to a whole minute (never earlier than the expiry the
// policy announces), and at least a minute ahead of now: Scheduler's documentation does not say what a one-time
// schedule whose time has passed does (rejected, or never run), so none is ever written. The input keeps the
// policy's own expiry, which is what the expiry handler checks the policy against.
//
// A revert that does not happen leaves the allow-all policy in place: each schedule names a dead-letter
// queue, where Scheduler puts the revert event it could not deliver, for the alarm on that queue to report;
// and status reads the schedule back (GetSchedule), to tell an expiry that is not coming: none, one for an earlier
// expiry, one disabled, or one that invokes another function.
import { createHash } from "node:crypto";
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  GetScheduleCommand,
  type GetScheduleCommandOutput,
  ResourceNotFoundException,
  type SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import type {
  ExpiryEvent,
  ExpiryScheduler,
  ScheduledExpiry,
  ScheduleExpiryRequest,
} from "../core/panic-policy.ts";
import { EXPIRY_EVENT_SOURCE } from "../core/panic-policy.ts";

export interface EventBridgeExpirySchedulerOptions {
  client: SchedulerClient;
  /** Schedule group holding the panic schedules (the CDK stack creates it). */
  groupName: string;
  /** Role EventBridge Scheduler assumes to invoke the panic function and to send to the dead-letter queue. */
  roleArn: string;
  /**
   * SQS queue Scheduler sends the revert event to when it cannot deliver it (the deployed function always
   * has one; without it, such an event is dropped and only Scheduler's InvocationDroppedCount tells).
   */
  deadLetterArn?: string;
  /** Now, to keep the schedule's time ahead of it (default: the system clock). */
  clock?: () => Date;
}

const NAME_MAX = 64;

/** Deterministic schedule name: one schedule per cluster and policy, so re-applying replaces it. */
export function scheduleName(cluster: string, policyName: string): string {
  const raw = `panic-${cluster}-${policyName}`.replace(/[^0-9A-Za-z_.-]/g, "-");
  if (raw.length <= NAME_MAX) return raw;
  // Names are limited to 64 characters: keep a readable head and make it unique with a digest.
  const hash = createHash("sha256").update(`${cluster}\n${policyName}`).digest("hex").slice(0, 12);
  return `${raw.slice(0, NAME_MAX - hash.length - 1)}-${hash}`;
}

const MINUTE_MS = 60_000;
/** How far ahead of now a schedule's time is at least. */
export const MIN_LEAD_MS = MINUTE_MS;

/**
 * When the expiry schedule runs: the expiry rounded up to a whole minute (Scheduler runs a one-time schedule
 * somewhere within the minute it names, so a time with seconds could run before the expiry), and no sooner
 * than a minute from `now` (the expiry may already have passed when the schedule is written: a slow apply, a
 * TTL of a minute, another operator's expiry adopted while reconciling).
 */
export function scheduleTime(expiresAt: string, now: Date): Date {
  const ms = Date.parse(expiresAt);
  if (Number.isNaN(ms)) throw new Error(`invalid expiry time "${expiresAt}"`);
  const earliest = Math.max(ms, now.getTime() + MIN_LEAD_MS);
  return new Date(Math.ceil(earliest / MINUTE_MS) * MINUTE_MS);
}

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC (the schedule's ScheduleExpressionTimezone), rounded up to the minute. */
export function atExpression(time: string | Date): string {
  const ms = typeof time === "string" ? Date.parse(time) : time.getTime();
  if (Number.isNaN(ms)) throw new Error(`invalid expiry time "${String(time)}"`);
  const rounded = new Date(Math.ceil(ms / MINUTE_MS) * MINUTE_MS).toISOString();
  return `at(${rounded.slice(0, 19)})`;
}

export class EventBridgeExpiryScheduler implements ExpiryScheduler {
  readonly #client: SchedulerClient;
  readonly #groupName: string;
  readonly #roleArn: string;
  readonly #deadLetterArn: string | undefined;
  readonly #clock: () => Date;

  constructor(options: EventBridgeExpirySchedulerOptions) {
    this.#client = options.client;
    this.#groupName = options.groupName;
    this.#roleArn = options.roleArn;
    this.#deadLetterArn = options.deadLetterArn;
    this.#clock = options.clock ?? (() => new Date());
  }

  async schedule(request: ScheduleExpiryRequest): Promise<string> {
    const name = scheduleName(request.cluster, request.policyName);
    const input: ExpiryEvent = {
      source: EXPIRY_EVENT_SOURCE,
      action: "revert",
      cluster: request.cluster,
      policyName: request.policyName,
      expiresAt: request.expiresAt,
    };
    const params: CreateScheduleCommandInput = {
      Name: name,
      GroupName: this.#groupName,
      Description: `Reverts the Calico panic policy ${request.policyName} on ${request.cluster}`.slice(
        0,
        512,
      ),
      ScheduleExpression: atExpression(scheduleTime(request.expiresAt, this.#clock())),
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      State: "ENABLED",
      ActionAfterCompletion: "DELETE",
      Target: {
        Arn: request.functionArn,
        RoleArn: this.#roleArn,
        Input: JSON.stringify(input),
        // Retries of a failed delivery (throttling, a missing permission): Scheduler invokes Lambda
        // asynchronously, so an error of the function itself is retried by Lambda (twice), not by this
        // policy, and kept by the function's on-failure destination (the same queue).
        RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 20 },
        // A delivery still failing after an hour goes to the queue instead of being dropped.
        ...(this.#deadLetterArn === undefined ? {} : { DeadLetterConfig: { Arn: this.#deadLetterArn } }),
      },
    };
    try {
      await this.#client.send(new CreateScheduleCommand(params));
    } catch (error) {
      if (!(error instanceof ConflictException)) throw error;
      try {
        // Already scheduled by an earlier apply: move it to the new expiry.
        await this.#client.send(new UpdateScheduleCommand(params));
      } catch (updateError) {
        if (!(updateError instanceof ResourceNotFoundException)) throw updateError;
        // The earlier schedule ran (and deleted itself) between the two calls: create this one afresh.
        await this.#client.send(new CreateScheduleCommand(params));
      }
    }
    return name;
  }

  async cancel(cluster: string, policyName: string): Promise<boolean> {
    try {
      await this.#client.send(
        new DeleteScheduleCommand({ Name: scheduleName(cluster, policyName), GroupName: this.#groupName }),
      );
      return true;
    } catch (error) {
      // Nothing scheduled (TTL 0, or it already fired and deleted itself).
      if (error instanceof ResourceNotFoundException) return false;
      throw error;
    }
  }

  async scheduledExpiry(cluster: string, policyName: string): Promise<ScheduledExpiry | null> {
    const name = scheduleName(cluster, policyName);
    let schedule: GetScheduleCommandOutput;
    try {
      schedule = await this.#client.send(new GetScheduleCommand({ Name: name, GroupName: this.#groupName }));
    } catch (error) {
      if (error instanceof ResourceNotFoundException) return null;
      throw error;
    }
    const input = schedule.Target?.Input;
    const expiresAt: unknown = JSON.parse(input ?? "null")?.expiresAt;
    if (typeof expiresAt !== "string") throw new Error(`schedule ${name} carries no revert event (${input})`);
    return { expiresAt, state: schedule.State, target: schedule.Target?.Arn };
  }
}
