// Ingest: one subscription filter per node log group feeds the ingest function, which CloudWatch Logs
// invokes asynchronously. Lambda retries a failed payload twice (a throttled one for up to 6 hours), then hands
// it, content included, to an encrypted SQS queue from which `calico-flows redrive` replays it; a record too
// large for the queue is not kept whole (docs/deploy.md, limits), which an alarm reports. A metric filter beside
// each subscription counts the same lines on its own, so that lines no longer reaching the function (a deleted
// subscription) can be told from a cluster without denials.
import { createHash } from "node:crypto";
import { Duration, Stack, Validations } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import type { Alerts } from "./alerts.ts";
import { BaseFunction, METRICS_NAMESPACE } from "./base-function.ts";
import { EncryptedQueueDestination, encryptedQueue } from "./encrypted-queue.ts";
import type { FlowStore } from "./flow-store.ts";

export const INGEST_SERVICE_NAME = "calico-flows-ingest";

/** Lambda's own limits on asynchronous retries and event age, used in full: a payload is never dropped early. */
export const ASYNC_RETRY_ATTEMPTS = 2;
export const ASYNC_MAX_EVENT_AGE = Duration.hours(6);
/** Per Kubernetes request: a slow API server makes flows unresolved, it must not stall storage. */
export const INGEST_KUBE_TIMEOUT_SECONDS = 5;

export interface IngestProps {
  readonly clusterName: string;
  readonly logGroupNames: readonly string[];
  readonly logPrefix: string;
  /** @default - the prefix carries no policy fields */
  readonly logPrefixFormat?: string;
  readonly internalCidrs: readonly string[];
  /** @default - the function's default: `cali`, `eni`, `vlan` */
  readonly workloadInterfacePrefixes?: readonly string[];
  readonly retentionDays: number;
  readonly aggregationSeconds: number;
  readonly alertWindowMinutes: number;
  readonly attribution: "eks" | "none";
  readonly namespaceLabelKeys: readonly string[];
  /** @default - the function's default */
  readonly scanThreshold?: number;
  /** @default - the function's default */
  readonly alertCap?: number;
  readonly logRetention: logs.RetentionDays;
  readonly flowStore: FlowStore;
  readonly alerts: Alerts;
}

/**
 * The ingest function as the destination of one log group's subscription filter. CloudWatch Logs may invoke it for
 * that log group of this account only: SourceArn and SourceAccount, as the CloudWatch Logs guide's Lambda example
 * grants it (the stock LambdaDestination sets no SourceAccount). The filter waits for the grant, as
 * PutSubscriptionFilter refuses a function CloudWatch Logs may not invoke. The grant keeps the stock destination's
 * construct ID, so its logical ID does not move.
 */
class LogGroupInvoke implements logs.ILogSubscriptionDestination {
  readonly fn: lambda.IFunction;

  constructor(fn: lambda.IFunction) {
    this.fn = fn;
  }

  bind(
    scope: Construct,
    logGroup: Parameters<logs.ILogSubscriptionDestination["bind"]>[1],
  ): logs.LogSubscriptionDestinationConfig {
    const id = "CanInvokeLambda";
    this.fn.addPermission(id, {
      principal: new iam.ServicePrincipal("logs.amazonaws.com"),
      sourceArn: logGroup.logGroupRef.logGroupArn,
      sourceAccount: Stack.of(scope).account,
      scope,
    });
    const permission = scope.node.tryFindChild(id);
    if (permission !== undefined) scope.node.addDependency(permission);
    return { arn: this.fn.functionArn };
  }
}

/** A construct ID suffix for a log group that does not move when the list is reordered or grows. */
export function logGroupKey(logGroupName: string): string {
  const readable = logGroupName.replace(/[^A-Za-z0-9]/g, "").slice(-40);
  const digest = createHash("sha256").update(logGroupName).digest("hex").slice(0, 8);
  return `${readable}${digest}`;
}

export class Ingest extends Construct {
  readonly function: BaseFunction;
  readonly failedPayloads: sqs.Queue;
  readonly failedPayloadsKey: kms.Key;
  readonly subscriptions: logs.SubscriptionFilter[] = [];
  /** The subscription filters' name, the FilterName dimension of their AWS/Logs metrics. */
  readonly filterName: string;
  readonly #clusterName: string;

  constructor(scope: Construct, id: string, props: IngestProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.#clusterName = props.clusterName;

    this.function = new BaseFunction(this, "Function", {
      entry: "functions/ingest/handler.ts",
      serviceName: INGEST_SERVICE_NAME,
      description: `calico-packet log lines of ${props.clusterName} to flows and alerts`,
      logRetention: props.logRetention,
      // Decompression and parsing are CPU-bound: 1 GB buys most of a vCPU, and a shorter bill.
      memorySize: 1024,
      // Kubernetes lookups and DynamoDB retries on a large delivery; far below the 6-hour event age.
      timeout: Duration.minutes(2),
      environment: {
        CLUSTER_NAME: props.clusterName,
        INTERNAL_CIDRS: props.internalCidrs.join(","),
        AGGREGATION_SECONDS: String(props.aggregationSeconds),
        ALERT_WINDOW_MINUTES: String(props.alertWindowMinutes),
        RETENTION_DAYS: String(props.retentionDays),
        LOG_PREFIX: props.logPrefix,
        ATTRIBUTION: props.attribution,
        KUBE_TIMEOUT_SECONDS: String(INGEST_KUBE_TIMEOUT_SECONDS),
        ...(props.namespaceLabelKeys.length === 0
          ? {}
          : { NAMESPACE_LABEL_KEYS: props.namespaceLabelKeys.join(",") }),
        ...(props.logPrefixFormat === undefined ? {} : { LOG_PREFIX_FORMAT: props.logPrefixFormat }),
        ...(props.workloadInterfacePrefixes === undefined
          ? {}
          : { WORKLOAD_INTERFACE_PREFIXES: props.workloadInterfacePrefixes.join(",") }),
        ...(props.scanThreshold === undefined ? {} : { SCAN_THRESHOLD: String(props.scanThreshold) }),
        ...(props.alertCap === undefined ? {} : { ALERT_CAP: String(props.alertCap) }),
      },
    });
    props.flowStore.bindIngest(this.function);
    props.alerts.bindPublisher(this.function);
    if (props.attribution === "eks") {
      // The cluster's endpoint and CA; the bearer token is a presigned sts:GetCallerIdentity, no IAM needed.
      this.function.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ["eks:DescribeCluster"],
          resources: [
            stack.formatArn({ service: "eks", resource: "cluster", resourceName: props.clusterName }),
          ],
        }),
      );
    }

    // A failure record carries the whole subscription payload: 1 MiB, the most SQS allows, holds the record of
    // any delivery but one close to Lambda's 1 MB event limit (docs/deploy.md, limits). Kept 14 days, the most SQS
    // allows: failed payloads wait for an operator and `calico-flows redrive`.
    const failed = encryptedQueue(this, "FailedPayloads", {
      keyDescription: "Encrypts the calico-flows ingest function's failed payloads",
      maxMessageSizeBytes: 1_048_576,
    });
    this.failedPayloads = failed.queue;
    this.failedPayloadsKey = failed.key;
    Validations.of(this.failedPayloads).acknowledge({
      id: "AwsSolutions-SQS3",
      reason:
        "This queue is itself the dead-letter store: the ingest function's on-failure destination, drained by " +
        "`calico-flows redrive`. A further DLQ behind it would only move the same records again.",
    });

    this.function.function.configureAsyncInvoke({
      retryAttempts: ASYNC_RETRY_ATTEMPTS,
      maxEventAge: ASYNC_MAX_EVENT_AGE,
      onFailure: new EncryptedQueueDestination(failed),
    });

    this.filterName = `calico-flows-${props.clusterName}`;
    const destination = new LogGroupInvoke(this.function.function);
    // The prefix as one quoted term: `calico-packet` unquoted would be read as two terms and a minus.
    const filterPattern = logs.FilterPattern.literal(`"${props.logPrefix}"`);
    for (const logGroupName of props.logGroupNames) {
      const key = logGroupKey(logGroupName);
      const id = `Subscription${key}`;
      const logGroup = logs.LogGroup.fromLogGroupName(this, `${id}Group`, logGroupName);
      this.subscriptions.push(
        new logs.SubscriptionFilter(this, id, {
          logGroup,
          destination,
          filterPattern,
          filterName: this.filterName,
        }),
      );
      // The lines the subscription should forward, counted by CloudWatch Logs as they arrive: it goes on counting
      // when the subscription is deleted or stops delivering, when every metric of the function falls silent.
      new logs.MetricFilter(this, `LinesLogged${key}`, {
        logGroup,
        filterPattern,
        filterName: this.filterName,
        metricNamespace: METRICS_NAMESPACE,
        metricName: this.linesLoggedMetricName(logGroupName),
        metricValue: "1",
      });
    }
  }

  /**
   * The metric a subscribed log group's metric filter counts its calico lines in, one per group: each group is judged
   * on its own. A metric filter only takes dimensions from fields of the log events, so the cluster (two clusters'
   * stacks share the namespace) and the group's key are in the name.
   */
  linesLoggedMetricName(logGroupName: string): string {
    return `CalicoLinesLogged-${this.#clusterName}-${logGroupKey(logGroupName)}`;
  }

  /** The calico lines a subscribed log group received: its metric filter's count. */
  metricLinesLogged(logGroupName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: this.linesLoggedMetricName(logGroupName),
      statistic: cloudwatch.Stats.SUM,
      ...props,
    });
  }
}
