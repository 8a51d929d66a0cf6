// The panic button's function and its self-expiry: an EventBridge Scheduler group for the one-time revert
// schedules, and the role Scheduler assumes to invoke the panic function with the revert event.
import { Duration, RemovalPolicy, Stack, Token, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import { Construct } from "constructs";
import type { Alerts } from "./alerts.ts";
import { BaseFunction } from "./base-function.ts";
import type { PanicPolicyConfig } from "./config.ts";
import type { FlowStore } from "./flow-store.ts";

export const PANIC_SERVICE_NAME = "calico-flows-panic";

/** Per Kubernetes request; a panic call makes a few in sequence within API Gateway's 29 s. */
export const PANIC_KUBE_TIMEOUT_SECONDS = 8;

export interface PanicButtonProps {
  readonly clusterName: string;
  readonly calicoApiGroup: string;
  readonly policy: PanicPolicyConfig;
  /** 0: the policy stays until reverted by hand. */
  readonly ttlMinutes: number;
  readonly flowStore: FlowStore;
  readonly alerts: Alerts;
  readonly logRetention: logs.RetentionDays;
}

export class PanicButton extends Construct {
  readonly function: BaseFunction;
  readonly scheduleGroup: scheduler.ScheduleGroup;
  readonly schedulerRole: iam.Role;

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

    this.function = new BaseFunction(this, "Function", {
      entry: "functions/panic/handler.ts",
      serviceName: PANIC_SERVICE_NAME,
      description: `Calico panic policy for ${props.clusterName}: apply, status, revert, expiry`,
      logRetention: props.logRetention,
      // Below API Gateway's 29 s: Kubernetes calls are bounded by KUBE_TIMEOUT_SECONDS each.
      timeout: Duration.seconds(28),
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
        KUBE_TIMEOUT_SECONDS: String(PANIC_KUBE_TIMEOUT_SECONDS),
      },
    });
    props.flowStore.bindPanic(this.function);
    props.alerts.bindPublisher(this.function);

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
        actions: ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"],
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
