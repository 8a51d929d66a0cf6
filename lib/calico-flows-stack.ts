// The whole system next to an existing EKS cluster: one stack composing one construct per concern.
// Construct IDs are part of the deployed state (they make the logical IDs): renaming one replaces resources.
import { CfnOutput, Stack, type StackProps, Tags } from "aws-cdk-lib";
import type * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { Alerts } from "./alerts.ts";
import { Api } from "./api.ts";
import { ClusterAccess, PANIC_KUBERNETES_GROUP } from "./cluster-access.ts";
import type { CalicoFlowsConfig } from "./config.ts";
import { FlowStore } from "./flow-store.ts";
import { Ingest } from "./ingest.ts";
import { Monitoring } from "./monitoring.ts";
import { PanicButton } from "./panic.ts";
import { FlowQueries } from "./query.ts";

export interface CalicoFlowsStackProps extends StackProps {
  readonly config: CalicoFlowsConfig;
}

export class CalicoFlowsStack extends Stack {
  readonly flowStore: FlowStore;
  readonly alerts: Alerts;
  readonly ingest: Ingest;
  readonly panic: PanicButton;
  readonly queries: FlowQueries;
  readonly api: Api;
  readonly clusterAccess: ClusterAccess | undefined;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: CalicoFlowsStackProps) {
    super(scope, id, {
      description: `calico-flows for EKS cluster ${props.config.clusterName}: Calico denial flows, alerts, panic button`,
      ...props,
    });
    const c = props.config;
    // The context values are validated against CloudWatch's list, which RetentionDays enumerates.
    const logRetention = c.logRetentionDays as logs.RetentionDays;
    Tags.of(this).add("project", "calico-flows");
    Tags.of(this).add("calico-flows:cluster", c.clusterName);

    this.flowStore = new FlowStore(this, "FlowStore");
    this.alerts = new Alerts(this, "Alerts", {
      clusterName: c.clusterName,
      emails: c.alertEmails,
      logRetention,
    });

    this.ingest = new Ingest(this, "Ingest", {
      clusterName: c.clusterName,
      logGroupNames: c.logGroupNames,
      logPrefix: c.logPrefix,
      logPrefixFormat: c.logPrefixFormat,
      internalCidrs: c.internalCidrs,
      workloadInterfacePrefixes: c.workloadInterfacePrefixes,
      retentionDays: c.retentionDays,
      aggregationSeconds: c.aggregationSeconds,
      alertWindowMinutes: c.alertWindowMinutes,
      attribution: c.attribution,
      namespaceLabelKeys: c.namespaceLabelKeys,
      scanThreshold: c.scanThreshold,
      alertCap: c.alertCap,
      logRetention,
      flowStore: this.flowStore,
      alerts: this.alerts,
    });

    this.panic = new PanicButton(this, "Panic", {
      clusterName: c.clusterName,
      calicoApiGroup: c.calicoApiGroup,
      policy: c.panicPolicy,
      ttlMinutes: c.panicTtlMinutes,
      reservedConcurrency: c.panicReservedConcurrency,
      flowStore: this.flowStore,
      alerts: this.alerts,
      logRetention,
    });

    this.queries = new FlowQueries(this, "Query", {
      clusterName: c.clusterName,
      flowStore: this.flowStore,
      logRetention,
    });

    this.api = new Api(this, "Api", {
      panicFunction: this.panic.function,
      queryFunction: this.queries.function,
      panicPrincipalArns: c.panicPrincipalArns,
      logRetention,
    });

    // The alert e-mails' `calico-flows` commands reach the flow store through this API.
    this.ingest.function.function.addEnvironment("API_URL", this.api.url);
    this.alerts.mailer.addEnvironment("API_URL", this.api.url);

    this.clusterAccess = c.manageClusterAccess
      ? new ClusterAccess(this, "ClusterAccess", {
          clusterName: c.clusterName,
          ingestRole: c.attribution === "eks" ? this.ingest.function.role : undefined,
          panicRole: this.panic.function.role,
          panicKubernetesGroup: PANIC_KUBERNETES_GROUP,
        })
      : undefined;
    // Deliveries start when the subscriptions exist: the access entries first, so that the first ones are
    // attributed rather than stored unresolved for good.
    if (this.clusterAccess !== undefined) {
      for (const subscription of this.ingest.subscriptions)
        subscription.node.addDependency(this.clusterAccess);
    }

    this.monitoring = new Monitoring(this, "Monitoring", {
      ingest: this.ingest,
      panic: this.panic,
      alerts: this.alerts,
      queryFunction: this.queries.function,
      api: this.api,
      table: this.flowStore.table,
      logGroupNames: c.logGroupNames,
      clusterName: c.clusterName,
      operationsEmails: c.operationsEmails,
      attribution: c.attribution,
    });

    const output = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    output("ApiUrl", this.api.url, "Base URL for `calico-flows --api` (SigV4, execute-api)");
    output("TableName", this.flowStore.table.tableName, "Flow store table for `calico-flows --table`");
    output(
      "AlertsTopicArn",
      this.alerts.topic.topic.topicArn,
      "Subscribe machines here for internal denials and panic announcements",
    );
    output(
      "AlertEmailsTopicArn",
      this.alerts.emailTopic.topic.topicArn,
      "The alert e-mails (digests of the alerts topic, two a second at most): subscribe addresses here",
    );
    output(
      "AlertMailDeadLettersQueueUrl",
      this.alerts.mailDeadLetters.queue.queueUrl,
      "Alert e-mails that could not be sent (alarm AlertMailDeadLetters): move back with aws sqs start-message-move-task",
    );
    output("OperationsTopicArn", this.monitoring.operations.topic.topicArn, "Alarms on calico-flows itself");
    output("FailedPayloadsQueueUrl", this.ingest.failedPayloads.queueUrl, "Input of `calico-flows redrive`");
    // The CLI runs with the operator's own credentials, whose policy must name these customer managed keys.
    output(
      "FailedPayloadsKeyArn",
      this.ingest.failedPayloadsKey.keyArn,
      "kms:Decrypt for `calico-flows redrive` (the failed-payloads queue's key)",
    );
    output(
      "AlertsTopicKeyArn",
      this.alerts.topic.key.keyArn,
      "kms:GenerateDataKey and kms:Decrypt for `--alerts-topic` of the CLI (the alerts topic's key)",
    );
    output(
      "PanicDeadLettersQueueUrl",
      this.panic.deadLetters.queue.queueUrl,
      "Panic expiries that did not revert (alarm PanicExpiryMissed)",
    );
    output(
      "IngestRoleArn",
      this.ingest.function.role.roleArn,
      "Needs read access to the cluster (access entry)",
    );
    output(
      "PanicRoleArn",
      this.panic.function.role.roleArn,
      `Map to the Kubernetes group ${PANIC_KUBERNETES_GROUP}`,
    );
    output("DashboardName", this.monitoring.dashboard.dashboardName, "CloudWatch dashboard");
    // What `calico-flows panic --direct` needs to keep self-expiry when it bypasses the API.
    output(
      "ScheduleGroupName",
      this.panic.scheduleGroup.scheduleGroupName,
      "panic --direct --schedule-group",
    );
    output("SchedulerRoleArn", this.panic.schedulerRole.roleArn, "panic --direct --scheduler-role-arn");
    output(
      "PanicFunctionArn",
      this.panic.function.function.functionArn,
      "panic --direct --expiry-function-arn",
    );
    output(
      "PanicDeadLettersQueueArn",
      this.panic.deadLetters.queue.queueArn,
      "panic --direct --dead-letter-queue-arn",
    );
  }
}
