// Self-expiry of the panic policy: one one-time EventBridge Scheduler schedule per cluster and policy, whose
// target is the panic function itself with a revert event. Re-applying moves the schedule; reverting by hand
// deletes it; the schedule deletes itself after it fired (ActionAfterCompletion DELETE).
import { createHash } from "node:crypto";
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  type SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import type { ExpiryEvent, ExpiryScheduler, ScheduleExpiryRequest } from "../core/panic-policy.ts";
import { EXPIRY_EVENT_SOURCE } from "../core/panic-policy.ts";

export interface EventBridgeExpirySchedulerOptions {
  client: SchedulerClient;
  /** Schedule group holding the panic schedules (the CDK stack creates it). */
  groupName: string;
  /** Role EventBridge Scheduler assumes to invoke the panic function. */
  roleArn: string;
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

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC; Scheduler has no sub-second precision, so round up. */
export function atExpression(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`invalid expiry time "${iso}"`);
  const rounded = new Date(Math.ceil(ms / 1000) * 1000).toISOString();
  return `at(${rounded.slice(0, 19)})`;
}

export class EventBridgeExpiryScheduler implements ExpiryScheduler {
  readonly #client: SchedulerClient;
  readonly #groupName: string;
  readonly #roleArn: string;

  constructor(options: EventBridgeExpirySchedulerOptions) {
    this.#client = options.client;
    this.#groupName = options.groupName;
    this.#roleArn = options.roleArn;
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
      ScheduleExpression: atExpression(request.expiresAt),
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      State: "ENABLED",
      ActionAfterCompletion: "DELETE",
      Target: {
        Arn: request.functionArn,
        RoleArn: this.#roleArn,
        Input: JSON.stringify(input),
        // A revert that keeps failing is better retried for a while than silently dropped.
        RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 20 },
      },
    };
    try {
      await this.#client.send(new CreateScheduleCommand(params));
    } catch (error) {
      if (!(error instanceof ConflictException)) throw error;
      // Already scheduled by an earlier apply: move it to the new expiry.
      await this.#client.send(new UpdateScheduleCommand(params));
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
}
