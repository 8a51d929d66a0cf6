// The panic button's function and its self-expiry: an EventBridge Scheduler group for the one-time revert
// schedules, the role Scheduler assumes to invoke the panic function with the revert event, and the
// dead-letter queue where a revert that did not happen is kept (and alarmed on, lib/monitoring.ts): an
// allow-all policy left in place is isolation between workloads left off, and must never go unnoticed.
import { Duration, RemovalPolicy, Stack, Token, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import { Construct } from "constructs";
import type { Alerts } from "./alerts.ts";
import { BaseFunction } from "./base-function.ts";
import type { PanicPolicyConfig } from "./config.ts";
import {
  type EncryptedQueue,
  EncryptedQueueDestination,
  encryptedQueue,
  grantSend,
} from "./encrypted-queue.ts";
import type { FlowStore } from "./flow-store.ts";

export const PANIC_SERVICE_NAME = "calico-flows-panic";

/** Per Kubernetes request; a panic call makes a few in sequence within API Gateway's 29 s. */
export const PANIC_KUBE_TIMEOUT_SECONDS = 8;

/**
 * How long a revert event may wait in Lambda's asynchronous queue (throttling) before it goes to the
 * dead-letter queue: as long as Scheduler tries to deliver it, rather than Lambda's 6 hours, so that a
 * revert that cannot run is reported within the hour.
 */
export const PANIC_ASYNC_MAX_EVENT_AGE = Duration.hours(1);

export interface PanicButtonProps {
  readonly clusterName: string;
  readonly calicoApiGroup: string;
  readonly policy: PanicPolicyConfig;
  /** 0: the policy stays until reverted by hand. */
  readonly ttlMinutes: number;
  readonly flowStore: FlowStore;
  readonly alerts: Alerts;
  readonly logRetention: logs.RetentionDays;
  /**
   * Concurrency kept for the panic function alone, so that ingest in a log storm cannot take the whole account's
   * pool when the button is needed most. @default - none: it shares the unreserved pool
   */
  readonly reservedConcurrency?: number;
}

export class PanicButton extends Construct {
  readonly function: BaseFunction;
  readonly scheduleGroup: scheduler.ScheduleGroup;
  readonly schedulerRole: iam.Role;
  /** Missed reverts: Scheduler's dead-letter events and Lambda's failure records of the revert. */
  readonly deadLetters: EncryptedQueue;

  constructor(scope: Construct, id: string, props: PanicButtonProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.scheduleGroup = new scheduler.ScheduleGroup(this, "Schedules", {
      // Deleting the group deletes its schedules: a revert must not fire after the stack is gone.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.schedulerRole = new iam.Role(this, "SchedulerRole", {
      description: "Assumed by EventBridge Scheduler to invoke the panic function with a revert event",
      // Only schedules of this stack's panic group may assume it (confused-deputy protection: Scheduler
      // reports the schedule group, not the schedule, as the source).
      assumedBy: new iam.ServicePrincipal("scheduler.amazonaws.com", {
        conditions: {
          StringEquals: {
            "aws:SourceAccount": stack.account,
            "aws:SourceArn": this.scheduleGroup.scheduleGroupArn,
          },
        },
      }),
    });

    // One queue for both ways a revert can be missed, so one alarm and one place to look: the operator's
    // answer is the same (revert by hand), and the two message shapes are told apart easily (docs/panic.md).
    this.deadLetters = encryptedQueue(this, "ExpiryDeadLetters", {
      keyDescription: "Encrypts the calico-flows panic expiry's dead-letter queue",
    });
    Validations.of(this.deadLetters.queue).acknowledge({
      id: "AwsSolutions-SQS3",
      reason:
        "This queue is itself the dead-letter store of the panic expiry: Scheduler's dead-letter queue and the " +
        "panic function's on-failure destination, alarmed on and read by an operator. A DLQ behind it adds nothing.",
    });

    this.function = new BaseFunction(this, "Function", {
      entry: "functions/panic/handler.ts",
      serviceName: PANIC_SERVICE_NAME,
      description: `Calico panic policy for ${props.clusterName}: apply, status, revert, expiry`,
      logRetention: props.logRetention,
      // Below API Gateway's 29 s. Each invocation works to a deadline of its remaining time less the audit's and
      // the answer's reserve (functions/panic/handler.ts), and each Kubernetes call to KUBE_TIMEOUT_SECONDS within it.
      timeout: Duration.seconds(28),
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment: {
        CLUSTER_NAME: props.clusterName,
        CALICO_API_GROUP: props.calicoApiGroup,
        PANIC_POLICY_NAME: props.policy.name,
        PANIC_NAMESPACE_SELECTOR: props.policy.namespaceSelector,
        PANIC_ORDER: String(props.policy.order),
        PANIC_TIER: props.policy.tier,
        PANIC_TYPES: props.policy.types.join(","),
        PANIC_TTL_MINUTES: String(props.ttlMinutes),
        SCHEDULE_GROUP_NAME: this.scheduleGroup.scheduleGroupName,
        SCHEDULER_ROLE_ARN: this.schedulerRole.roleArn,
        SCHEDULE_DEAD_LETTER_QUEUE_ARN: this.deadLetters.queue.queueArn,
        KUBE_TIMEOUT_SECONDS: String(PANIC_KUBE_TIMEOUT_SECONDS),
      },
    });
    props.flowStore.bindPanic(this.function, props.clusterName);
    props.alerts.bindPublisher(this.function);
    // Only Scheduler invokes the function asynchronously (API Gateway waits for its answer), so this applies
    // to revert events alone: one that still fails after Lambda's two retries, or waits too long, is kept.
    this.function.function.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: PANIC_ASYNC_MAX_EVENT_AGE,
      onFailure: new EncryptedQueueDestination(this.deadLetters),
    });

    const role = this.function.role;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "ClusterEndpoint",
        actions: ["eks:DescribeCluster"],
        resources: [
          stack.formatArn({ service: "eks", resource: "cluster", resourceName: props.clusterName }),
        ],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "ExpirySchedules",
        // GetSchedule: status checks that an applied policy's expiry is scheduled.
        actions: [
          "scheduler:CreateSchedule",
          "scheduler:UpdateSchedule",
          "scheduler:DeleteSchedule",
          "scheduler:GetSchedule",
        ],
        resources: [this.scheduleArnPattern],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "PassSchedulerRole",
        actions: ["iam:PassRole"],
        resources: [this.schedulerRole.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
      }),
    );
    // The scheduler role invokes exactly this function, unqualified (grantInvoke would add every version
    // and alias). Added as a separate policy resource: the function's environment names the role, so an
    // inline policy naming the function would be a dependency cycle.
    this.schedulerRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "InvokePanicFunction",
        actions: ["lambda:InvokeFunction"],
        resources: [this.function.function.functionArn],
      }),
    );
    // Each schedule names the queue as its dead-letter queue; Scheduler sends to it as this role.
    grantSend(this.deadLetters, this.schedulerRole, "ExpiryDeadLetters");

    // cdk-nag names the finding by the rendered ARN, with pseudo parameters written <AWS::Name>.
    const rendered = (value: string, pseudo: string) =>
      Token.isUnresolved(value) ? `<AWS::${pseudo}>` : value;
    const scheduleArnFinding =
      `arn:<AWS::Partition>:scheduler:${rendered(stack.region, "Region")}:${rendered(stack.account, "AccountId")}` +
      `:schedule/${this.scheduleGroup.scheduleGroupName}/*`;
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${scheduleArnFinding}]`,
      reason:
        "Expiry schedules are created at run time, one per cluster and policy, so their names are not known " +
        "at deploy time; the wildcard is confined to this stack's own schedule group.",
    });
  }

  /** Every schedule in this stack's panic group. */
  get scheduleArnPattern(): string {
    return Stack.of(this).formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${this.scheduleGroup.scheduleGroupName}/*`,
    });
  }
}
