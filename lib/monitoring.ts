// What the on-call engineer sees and is paged for: one dashboard from log lines to API answers, and
// alarms on the system's own health routed to an operations topic (separate from the alerts topic, whose
// subscribers care about the cluster's traffic, not about this system).
import { Duration, Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import { Construct } from "constructs";
import { FLOW_INDEXES } from "../functions/adapters/dynamo/schema.ts";
import {
  type Alerts,
  EncryptedTopic,
  MAIL_BATCHING_WINDOW,
  MAIL_MAX_RECEIVES,
  MAIL_RETENTION,
} from "./alerts.ts";
import type { Api } from "./api.ts";
import { type BaseFunction, METRICS_NAMESPACE } from "./base-function.ts";
import { type Ingest, logGroupKey } from "./ingest.ts";
import type { PanicButton } from "./panic.ts";

const PERIOD = Duration.minutes(5);
/**
 * A queue's depth alarm keeps its state when the depth goes missing. SQS publishes metrics for queues it deems
 * active, which its documentation says a queue holding messages is; should the depth of an untouched queue still go
 * missing, "no data is healthy" would turn the alarm OK (and e-mail so) while its messages wait there.
 */
const QUEUE_DEPTH_MISSING = cloudwatch.TreatMissingData.IGNORE;
/**
 * An alarm on what the deliveries report (their lines, their endpoints) judges the last periods that had deliveries:
 * with enough datapoints in its evaluation range CloudWatch evaluates the most recent ones that exist, and with none
 * it keeps its state. As "not breaching", the gaps between sparse deliveries (a denial every 10 minutes) hid every
 * failure from an alarm that needs three breaching periods.
 */
const PER_DELIVERY_MISSING = cloudwatch.TreatMissingData.IGNORE;
/**
 * The age at which a message waiting in the failed-payloads, the panic or the mail dead-letter queue is told of
 * again: their depth alarms notified once, when the first landed, and SQS deletes it at 14 days (their retention; for
 * a mail dead letter 14 days after the mail queue got it, which leaves it 10 days at least: MAIL_RETENTION). A missed
 * revert may mean the allow-all policy is still applied, hence a day rather than a week.
 */
const WAITING_REMINDER = Duration.days(1);
/**
 * The age of an alert in the mail queue that means nothing takes them. The mailer takes each within its batching
 * window (a minute), and two batches of up to 1,000 a second work off a flood of tens of thousands in seconds; a
 * batch whose e-mail fails shows again after the visibility timeout (3 minutes), and SQS leaves a message received
 * three times out of the age it publishes, so failing e-mails stay below this too (MailerErrors is theirs). Only an
 * event source that no longer invokes the mailer (disabled, or unable to read the queue) gets here: no invocation,
 * no error, nothing dead-lettered.
 */
const MAIL_BACKLOG = Duration.minutes(15);

export interface MonitoringProps {
  readonly ingest: Ingest;
  readonly panic: PanicButton;
  readonly alerts: Alerts;
  readonly queryFunction: BaseFunction;
  readonly api: Api;
  readonly table: dynamodb.Table;
  readonly logGroupNames: readonly string[];
  /** The cluster whose functions' metrics (their `cluster` dimension) this stack's alarms and dashboard read. */
  readonly clusterName: string;
  readonly operationsEmails: readonly string[];
  /** Whether the ingest function resolves IPs; if not, unresolved endpoints are expected, not an alarm. */
  readonly attribution: "eks" | "none";
}

export class Monitoring extends Construct {
  readonly operations: EncryptedTopic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly #action: actions.SnsAction;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const stackName = Stack.of(this).stackName;
    this.operations = new EncryptedTopic(this, "Operations", {
      displayName: "calico-flows operations",
      emails: props.operationsEmails,
      alarmsPublish: true,
    });
    this.#action = new actions.SnsAction(this.operations.topic);

    const ingestFn = props.ingest.function;
    const panicFn = props.panic.function;
    // A function's own metric: Powertools' EMF in the functions' namespace, under its service and cluster.
    const custom = (fn: BaseFunction, metricName: string, dimensions: Record<string, string> = {}) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { service: fn.serviceName, cluster: props.clusterName, ...dimensions },
        statistic: cloudwatch.Stats.SUM,
        period: PERIOD,
      });
    const ingest = (metricName: string, dimensions?: Record<string, string>) =>
      custom(ingestFn, metricName, dimensions);
    const queue = props.ingest.failedPayloads;
    const failedPayloads = queue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    const failedPayloadAge = queue.metricApproximateAgeOfOldestMessage({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    const subscriptionMetric = (metricName: string, logGroupName: string) =>
      new cloudwatch.Metric({
        namespace: "AWS/Logs",
        metricName,
        dimensionsMap: {
          LogGroupName: logGroupName,
          DestinationType: "Lambda",
          FilterName: props.ingest.filterName,
        },
        statistic: cloudwatch.Stats.SUM,
        period: PERIOD,
      });
    const mailer = props.alerts.mailer;
    const functions = [ingestFn, panicFn, props.queryFunction, mailer];
    const restApi = props.api.restApi;
    const sum = { statistic: cloudwatch.Stats.SUM, period: PERIOD };
    const missedReverts = props.panic.deadLetters.queue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    const missedRevertAge = props.panic.deadLetters.queue.metricApproximateAgeOfOldestMessage({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    const unsentMail = props.alerts.mailDeadLetters.queue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    const unsentMailAge = props.alerts.mailDeadLetters.queue.metricApproximateAgeOfOldestMessage({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    const unmailedAge = props.alerts.mailQueue.queue.metricApproximateAgeOfOldestMessage({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    });
    // A log group's calico lines stored, against two independent counts of those there were: logged (its metric
    // filter, which goes on counting when its deliveries stop) plus delivered (which holds the malformed ones). All
    // is well near 1/2; near 0 the group's lines do not reach the function, do not parse, or are not stored. A
    // period with neither count has no datapoint (a division by zero is dropped). A group whose subscription is gone
    // stores nothing: no datapoint of its own, so FILL makes it 0 rather than leave the ratio to how a missing
    // operand is taken. Per group, as a share of all groups' lines a group whose subscription is gone weighs little:
    // (1 - 1/N) / (2 - 1/N) among N alike, 0.43 for four, and a small one nothing.
    const storedShare = (logGroupName: string) => {
      const ofGroup = (metricName: string) => ingest(metricName, { LogGroup: logGroupName });
      return new cloudwatch.MathExpression({
        expression: "FILL(stored, 0) / witnessed",
        usingMetrics: {
          stored: ofGroup("CalicoLinesByGroup"),
          witnessed: new cloudwatch.MathExpression({
            expression: "SUM([logged, delivered])",
            usingMetrics: {
              logged: props.ingest.metricLinesLogged(logGroupName, sum),
              delivered: ofGroup("LinesSeenByGroup"),
            },
            period: PERIOD,
          }),
        },
        label: `calico lines stored / (logged + delivered), ${logGroupName}`,
        period: PERIOD,
      });
    };
    // All the groups' metric filters' counts together, for the dashboard.
    const loggedByGroup = Object.fromEntries(
      props.logGroupNames.map((name, k) => [`logged${k}`, props.ingest.metricLinesLogged(name, sum)]),
    );
    const linesLogged = new cloudwatch.MathExpression({
      expression: `SUM([${Object.keys(loggedByGroup).join(", ")}])`,
      usingMetrics: loggedByGroup,
      label: "calico lines logged",
      period: PERIOD,
    });
    const oldestWaiting = new cloudwatch.MathExpression({
      expression: "SUM([failedPayloadAge, missedRevertAge, unsentMailAge])",
      usingMetrics: { failedPayloadAge, missedRevertAge, unsentMailAge },
      label: "age of the oldest failed payload, missed revert and unsent alert e-mail, summed",
      period: PERIOD,
    });
    // A DynamoDB metric of the table summed with its indexes': the TableName series leaves out every index, where
    // each flow write is copied four times and which throttle the table's write when one is short of capacity
    // (their keys are per namespace and per IP, without the base table's hour: a scan's flows share one).
    const withIndexes = (metricName: string, label: string) => {
      const table = props.table.metric(metricName, sum);
      const indexes = FLOW_INDEXES.map((index) =>
        props.table.metric(metricName, {
          ...sum,
          dimensionsMap: { TableName: props.table.tableName, GlobalSecondaryIndexName: index.indexName },
        }),
      );
      // Ids unique within a graph that shows several of these sums.
      const id = metricName.charAt(0).toLowerCase() + metricName.slice(1);
      const usingMetrics = Object.fromEntries([table, ...indexes].map((metric, k) => [`${id}${k}`, metric]));
      return new cloudwatch.MathExpression({
        // The series summed at each time (each index's throttles and capacity are published on their own).
        expression: `SUM([${Object.keys(usingMetrics).join(", ")}])`,
        usingMetrics,
        label,
        period: PERIOD,
      });
    };
    // The query function answers a failed query with a 500, a success for Lambda: its Errors count only what it
    // did not answer (a timeout, its configuration), QueryFailures the rest.
    /** A function's Errors (what it threw or timed out on) and `failures`, those it answered: each per period. */
    const errorsAnd = (fn: BaseFunction, failures: cloudwatch.IMetric, label: string) =>
      new cloudwatch.MathExpression({
        expression: "SUM([errors, failures])",
        usingMetrics: { errors: fn.function.metricErrors(sum), failures },
        label,
        period: PERIOD,
      });
    const queryFn = props.queryFunction;
    const queryFailures = custom(queryFn, "QueryFailures").with({ label: "queries answered 500" });
    const queryErrors = errorsAnd(queryFn, queryFailures, "query function errors and queries answered 500");
    // The panic function answers a failed request too (a 502 when the Kubernetes API refuses it or is down, a 500),
    // a success for Lambda: its Errors count what it threw (a scheduled expiry's revert, a timeout), PanicFailures
    // the failures it answered, refusals left out (a body not valid, a foreign policy left alone: docs/panic.md),
    // and an expiry event it could not read (not retried: its policy stays).
    const panicFailures = custom(panicFn, "PanicFailures").with({ label: "panic requests answered failed" });
    const panicErrors = errorsAnd(
      panicFn,
      panicFailures,
      "panic function errors and panic requests answered failed",
    );
    // Scheduler's own metrics, per schedule group (namespace AWS/Scheduler, dimension ScheduleGroup).
    const schedules = props.panic.scheduleGroup;

    // ── Alarms ──────────────────────────────────────────────────────────────────────────────────────
    this.alarm("FailedPayloads", {
      metric: failedPayloads,
      missingData: QUEUE_DEPTH_MISSING,
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "Ingest payloads failed three times (or waited 6 hours in Lambda's queue) and wait in the failed-payloads " +
        "queue. Find the cause in the ingest logs, then replay them with `calico-flows redrive`.",
    });
    // The depth alarms stay in ALARM while messages wait, so they tell of none after the first, and turn OK when SQS
    // deletes them at 14 days: this one asks again while they can still be acted on. One alarm for the three queues
    // (the sum of their ages only crosses the threshold sooner when several hold messages).
    this.alarm("MessagesWaiting", {
      metric: oldestWaiting,
      missingData: QUEUE_DEPTH_MISSING,
      threshold: WAITING_REMINDER.toSeconds(),
      evaluationPeriods: 1,
      description:
        `A message has waited ${WAITING_REMINDER.toDays()} day in the failed-payloads queue, the panic ` +
        "dead-letter queue or the mail dead-letter queue; SQS deletes it 14 days after it was first queued. A " +
        "failed payload (FailedPayloads): replay the queue with `calico-flows redrive`. A missed revert " +
        "(PanicExpiryMissed): run `calico-flows panic status`, revert by hand if the policy is still applied, then " +
        "delete the messages. An unsent alert e-mail (AlertMailDeadLetters): fix the cause, then move them back " +
        "to the mail queue or delete them. If this alarm turns OK with none of that done, they expired: backfill the " +
        "failed payloads' time range with `calico-flows backfill`; `calico-flows alerts` lists the alerts.",
    });
    // The queue depth only shows what reached the queue: these two count what Lambda gave up on, and what it
    // could not put in the queue (a key or permission problem, or a record larger than the queue takes).
    this.alarm("IngestEventsDropped", {
      metric: ingestFn.function.metric("AsyncEventsDropped", sum),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "Lambda dropped log deliveries without running the ingest function on them successfully (retries or the " +
        "6-hour event age used up, or its queue overflowing): each should be in the failed-payloads queue; if " +
        "FailedPayloadsNotKept fires too, some are not. Lines not redriven can be backfilled from the log groups.",
    });
    this.alarm("FailedPayloadsNotKept", {
      metric: ingestFn.function.metric("DestinationDeliveryFailures", sum),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "Lambda could not put failed log deliveries in the failed-payloads queue (its key, the ingest role, or a " +
        "record beyond the queue's 1 MiB): they cannot be redriven. Backfill their time range from the log groups " +
        "with `calico-flows backfill`.",
    });
    this.alarm("IngestErrors", {
      metric: ingestFn.function.metricErrors(sum),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description:
        "The ingest function keeps failing; payloads are being retried and may reach the failed-payloads queue.",
    });
    this.alarm("IngestThrottles", {
      metric: ingestFn.function.metricThrottles(sum),
      threshold: 1,
      evaluationPeriods: 3,
      description:
        "Ingest invocations are throttled for 15 minutes: Lambda queues them for up to 6 hours, so flows are " +
        "late. Raise the account's concurrency limit or look for a log storm.",
    });
    this.alarm("IngestBacklog", {
      metric: ingestFn.function.metric("AsyncEventAge", {
        statistic: cloudwatch.Stats.MAXIMUM,
        period: PERIOD,
      }),
      threshold: Duration.minutes(15).toMilliseconds(),
      evaluationPeriods: 2,
      description:
        "Log deliveries wait more than 15 minutes before the ingest function runs them: flows and alerts are late.",
    });
    if (props.attribution === "eks") {
      this.alarm("AttributionDown", {
        metric: ingest("UnresolvedEndpoints"),
        missingData: PER_DELIVERY_MISSING,
        threshold: 1,
        evaluationPeriods: 3,
        description:
          "In the last three 5-minute periods that had deliveries the Kubernetes API could not attribute IPs " +
          "(forbidden, unreachable or slow): flows are stored with IPs only. Check the EKS access entry, " +
          "deploy/rbac.yaml and the cluster endpoint.",
      });
    }
    for (const logGroupName of props.logGroupNames) {
      const key = logGroupKey(logGroupName);
      // Every other ingest metric comes from deliveries: with a group's subscription gone they fall silent for it, as
      // for a group without denials; lines that do not parse make deliveries that succeed and store nothing. Judged
      // per group, as the delivery errors are: with all groups summed, one group's loss hid among the others' lines.
      this.alarm(`LinesNotStored${key}`, {
        metric: storedShare(logGroupName),
        missingData: PER_DELIVERY_MISSING,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        // 80% of the lines there were: below what delivery lag takes off a period (seconds to a minute of five).
        threshold: 0.4,
        evaluationPeriods: 3,
        // The group's name once (up to 255 characters) and the cluster's filter name (up to 113) in a description of
        // at most 1,024: the rest of the runbook is in docs/deploy.md §6.
        description:
          `In the last three 5-minute periods that had calico-packet lines in ${logGroupName}, less than 80% of ` +
          "them were stored: their denials are neither stored nor alerted on. Logged but not delivered " +
          "(LinesSeenByGroup): check that the group still has the subscription filter " +
          `${props.ingest.filterName} (deploy the stack again to restore it), and DeliveryErrors, IngestErrors and ` +
          "IngestThrottles. Delivered but not stored (CalicoLinesByGroup): IngestErrors, or malformed lines, see " +
          'the ingest function\'s "malformed calico-packet line" warnings and `calico-flows parse`. Alerts not ' +
          "published do not show here (their flows are stored): IngestErrors. docs/deploy.md §6; backfill the " +
          "range once fixed.",
      });
      this.alarm(`DeliveryErrors${key}`, {
        metric: subscriptionMetric("DeliveryErrors", logGroupName),
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        description: `CloudWatch Logs cannot deliver ${logGroupName} to the ingest function.`,
      });
    }
    this.alarm("PanicErrors", {
      metric: panicErrors,
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "The panic button failed: an apply, dry run, status or revert answered 409 conflict, 502 or 500, or an " +
        "expiry event the function could not read (PanicFailures; the Kubernetes API refusing the panic role, down " +
        "or too slow), or the function failed (its Errors: a scheduled expiry's revert, retried by Lambda), or an " +
        "expiry removed a policy it had taken over without putting that policy back (its kept copy unreadable: " +
        "the copy is in the expiry's audit record). A " +
        "panic policy may not be applied, or not reverted. Check `calico-flows panic status` (`--direct` if the " +
        'API fails) and the function\'s "panic request failed", "panic expiry failed" and "malformed expiry ' +
        'event" records: their kind says why (docs/panic.md, "The API").',
    });
    // An apply succeeds whatever happens to its expiry schedule (the emergency wins): without this, only its caller
    // would learn that none was written, and the policy would outlive its announced expiry unnoticed.
    this.alarm("PanicExpiryNotScheduled", {
      metric: custom(panicFn, "PanicExpiryNotScheduled"),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "A panic policy was applied with a TTL (or written again by an apply while a revert ran, or may have been: an apply answered outcome unknown), but its expiry schedule could not be written (or was not " +
        "confirmed in time): the allow-all policy stays past the expiry it was announced with. Run " +
        "`calico-flows panic status`, then revert by hand when the incident is over (`calico-flows panic " +
        "revert`), or apply again with the TTL to schedule it. The panic function's log says why (the panic " +
        "role's scheduler:CreateSchedule or iam:PassRole, a Scheduler quota).",
    });
    // An expiry that did not revert leaves the allow-all policy, and workloads unisolated, until someone acts:
    // the queue holds what Scheduler could not deliver and what the function failed; the three others report
    // what did not reach the queue, or a schedule written without one (`panic --direct`).
    this.alarm("PanicExpiryMissed", {
      metric: missedReverts,
      missingData: QUEUE_DEPTH_MISSING,
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "A panic policy's automatic revert did not happen: run `calico-flows panic status` and revert by hand " +
        "(`calico-flows panic revert`). The messages in the panic dead-letter queue say why (docs/panic.md); " +
        "delete them once the policy is reverted.",
    });
    this.alarm("PanicExpiryNotKept", {
      metric: schedules.metricFailedToBeSentToDLQ(undefined, sum),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "Scheduler could not deliver a panic expiry, nor put it in the panic dead-letter queue (the scheduler " +
        "role or the queue's key): a panic policy's automatic revert did not happen. Run `calico-flows panic " +
        "status` and revert by hand.",
    });
    this.alarm("PanicExpiryDropped", {
      metric: schedules.metricDropped(sum),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "Scheduler gave up delivering a panic expiry after its retries (an hour): a panic policy's automatic " +
        "revert did not happen. Run `calico-flows panic status` and revert by hand. The event is in the panic " +
        "dead-letter queue (PanicExpiryMissed) unless PanicExpiryNotKept fires too or the schedule was written " +
        "without one (`panic --direct`).",
    });
    this.alarm("PanicRevertNotKept", {
      metric: panicFn.function.metric("DestinationDeliveryFailures", sum),
      threshold: 1,
      evaluationPeriods: 1,
      description:
        "Lambda could not put a failed panic revert in the panic dead-letter queue (the panic role or the " +
        "queue's key): a panic policy's automatic revert did not happen. Run `calico-flows panic status` and " +
        "revert by hand.",
    });
    // A failed e-mail is retried with its batch: these say that e-mails keep failing, and that some were given up on.
    this.alarm("MailerErrors", {
      metric: mailer.function.metricErrors(sum),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description:
        "The mailer keeps failing to publish alert e-mails: they are late (their batches are retried), and a batch " +
        `received ${MAIL_MAX_RECEIVES} times goes to the mail dead-letter queue (AlertMailDeadLetters). Its ` +
        '"publishing the e-mail" errors say why (the e-mail topic\'s key or grant, SNS throttling). ' +
        "`calico-flows alerts` lists the alerts meanwhile.",
    });
    this.alarm("AlertMailBacklog", {
      metric: unmailedAge,
      missingData: QUEUE_DEPTH_MISSING,
      threshold: MAIL_BACKLOG.toSeconds(),
      evaluationPeriods: 1,
      description:
        `An alert has waited ${MAIL_BACKLOG.toMinutes()} minutes in the mail queue: alert e-mails are not being ` +
        `sent (the mailer takes each within ${MAIL_BATCHING_WINDOW.toSeconds()} s). The mailer is not invoked: ` +
        "its event source mapping disabled or failing (`aws lambda list-event-source-mappings --function-name " +
        "<the mailer function>`: State, StateTransitionReason; `aws lambda update-event-source-mapping --uuid " +
        "<UUID> --enabled` once the cause is gone), or it cannot read the queue (the mail queue's key disabled, " +
        "the mailer role's grant). SQS deletes an alert left " +
        `${MAIL_RETENTION.toDays()} days in the queue; \`calico-flows alerts\` lists the alerts meanwhile.`,
    });
    this.alarm("AlertMailDeadLetters", {
      metric: unsentMail,
      missingData: QUEUE_DEPTH_MISSING,
      threshold: 1,
      evaluationPeriods: 1,
      description:
        `Alert e-mails may not have been sent: their messages failed ${MAIL_MAX_RECEIVES} times and wait in the mail ` +
        "dead-letter queue (output AlertMailDeadLettersQueueUrl). The alerts are in the store (`calico-flows " +
        "alerts`); `calico-flows panic status` says whether a panic policy is applied. Fix the cause " +
        "(MailerErrors, the mailer's log), then move them back to the mail queue with SQS's dead-letter queue " +
        "redrive (`aws sqs start-message-move-task --source-arn <the dead-letter queue's ARN>`; its ARN: `aws sqs " +
        "get-queue-attributes --queue-url <AlertMailDeadLettersQueueUrl> --attribute-names QueueArn`), or delete them.",
    });
    this.alarm("QueryErrors", {
      metric: queryErrors,
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description:
        "The query function keeps failing: its queries are answered 500 (QueryFailures; the store unreadable, " +
        "its grant gone, DynamoDB failing past the retries) or the function fails (its Errors: timeouts, " +
        'configuration). Its "query failed" records say why; their correlation_id is the requestId of the 500.',
    });
    this.alarm("Api5xx", {
      metric: restApi.metricServerError(sum),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: "The API answers 5xx.",
    });
    this.alarm("TableWriteThrottles", {
      metric: withIndexes("WriteThrottleEvents", "write throttle events, table and indexes"),
      threshold: 1,
      evaluationPeriods: 3,
      description:
        "Flow store writes are throttled for 15 minutes, on the table or one of its indexes (a hot partition: " +
        "a scan's or a flooded namespace's flows share one index key; or traffic above twice the previous " +
        "peak): ingest retries and slows down.",
    });

    // ── Dashboard ───────────────────────────────────────────────────────────────────────────────────
    const graph = (
      title: string,
      left: cloudwatch.IMetric[],
      options: Partial<cloudwatch.GraphWidgetProps> = {},
    ) => new cloudwatch.GraphWidget({ title, left, width: 8, height: 6, ...options });
    const perFunction = (fn: (f: BaseFunction) => cloudwatch.IMetric) => functions.map(fn);
    const labelled = (f: BaseFunction, metric: cloudwatch.Metric) => metric.with({ label: f.serviceName });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      // Dashboards are the account's, not a Region's: the same stack for a cluster in another Region needs another.
      dashboardName: `${stackName}-${Stack.of(this).region}`,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          `# calico-flows — ${stackName}\n` +
          "Log lines ▶ flows ▶ alerts; failures land in the failed-payloads queue (`calico-flows redrive`).",
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      // Logged by the log groups against delivered to the function: apart, the subscriptions do not deliver (each
      // group's LinesNotStored alarm graphs its own).
      graph("Lines", [linesLogged, ingest("LinesSeen"), ingest("CalicoLines")]),
      graph("Flows", [ingest("FlowsWritten"), ingest("DuplicateFlows")], {
        right: [ingest("DynamoWriteRequests")],
      }),
      graph("Alerts", [ingest("AlertsRaised")]),
    );
    this.dashboard.addWidgets(
      graph(
        "Attribution",
        [
          ingest("AttributionMisses"),
          ingest("UnresolvedEndpoints"),
          // A failed run's answers kept for its retry, or not (then the retry may count its stored flows twice).
          ingest("AttributionMemosKept"),
          ingest("AttributionMemosLost"),
        ],
        { right: [ingest("KubernetesApiCalls")] },
      ),
      graph("Bad input", [ingest("MalformedLines"), ingest("CorruptPayloads")]),
      graph(
        "Failed payloads",
        [
          failedPayloads,
          ingestFn.function.metric("AsyncEventsDropped", sum),
          ingestFn.function.metric("DestinationDeliveryFailures", sum),
        ],
        {
          right: [failedPayloadAge],
        },
      ),
    );
    this.dashboard.addWidgets(
      graph("Errors", [
        ...perFunction((f) => labelled(f, f.function.metricErrors(sum))),
        queryFailures,
        panicFailures,
      ]),
      graph(
        "Duration p99",
        perFunction((f) => labelled(f, f.function.metricDuration({ statistic: "p99", period: PERIOD }))),
      ),
      graph(
        "Throttles",
        perFunction((f) => labelled(f, f.function.metricThrottles(sum))),
        {
          right: [
            ingestFn.function.metric("AsyncEventAge", {
              statistic: cloudwatch.Stats.MAXIMUM,
              period: PERIOD,
            }),
          ],
        },
      ),
    );
    this.dashboard.addWidgets(
      graph("API requests", [restApi.metricCount(sum)], {
        right: [restApi.metricClientError(sum), restApi.metricServerError(sum)],
      }),
      graph("API latency p99", [restApi.metricLatency({ statistic: "p99", period: PERIOD })]),
      graph(
        "Flow store",
        [withIndexes("ConsumedWriteCapacityUnits", "write capacity units, table and indexes")],
        {
          right: [
            withIndexes("WriteThrottleEvents", "write throttle events"),
            withIndexes("ReadThrottleEvents", "read throttle events"),
          ],
        },
      ),
    );
    this.dashboard.addWidgets(
      // What the mailer mailed (each e-mail a batch), what it could not read, and what waits to be mailed or failed;
      // the e-mails published against those delivered, once to each confirmed address (SNS counts them per topic:
      // none delivered is no address confirmed, or all unsubscribed).
      graph(
        "Alert e-mails",
        [
          custom(mailer, "AlertMessagesMailed"),
          custom(mailer, "AlertMessagesUnreadable"),
          unsentMail,
          props.alerts.emailTopic.topic.metricNumberOfMessagesPublished({
            ...sum,
            label: "e-mails published",
          }),
          props.alerts.emailTopic.topic.metricNumberOfNotificationsDelivered({
            ...sum,
            label: "e-mails delivered",
          }),
        ],
        { right: [unmailedAge, unsentMailAge] },
      ),
      graph("Panic expiry", [missedReverts, custom(panicFn, "PanicExpiryNotScheduled")], {
        right: [
          missedRevertAge,
          schedules.metricTargetErrors(sum),
          schedules.metricDropped(sum),
          schedules.metricSentToDLQ(sum),
          schedules.metricFailedToBeSentToDLQ(undefined, sum),
          panicFn.function.metric("DestinationDeliveryFailures", sum),
        ],
      }),
    );
    this.dashboard.addWidgets(
      graph(
        "Subscription deliveries",
        props.logGroupNames.map((name) =>
          subscriptionMetric("ForwardedLogEvents", name).with({ label: `forwarded ${name}` }),
        ),
        {
          // Errors are alarmed per group; throttled deliveries CloudWatch Logs retries for up to 24 hours, so a
          // lasting line here is lag (the function's concurrency), not loss.
          right: props.logGroupNames.flatMap((name) => [
            subscriptionMetric("DeliveryErrors", name).with({ label: `delivery errors ${name}` }),
            subscriptionMetric("DeliveryThrottling", name).with({ label: `delivery throttling ${name}` }),
          ]),
          width: 16,
        },
      ),
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 8, height: 6 }),
    );
  }

  private alarm(
    id: string,
    props: Omit<cloudwatch.AlarmProps, "treatMissingData" | "alarmDescription"> & {
      description: string;
      /** Default: missing data is no traffic, and a quiet cluster is healthy. */
      missingData?: cloudwatch.TreatMissingData;
    },
  ): void {
    const {
      description,
      missingData = cloudwatch.TreatMissingData.NOT_BREACHING,
      comparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...rest
    } = props;
    const alarm = new cloudwatch.Alarm(this, id, {
      ...rest,
      alarmDescription: description,
      comparisonOperator,
      treatMissingData: missingData,
    });
    alarm.addAlarmAction(this.#action);
    alarm.addOkAction(this.#action);
    this.alarms.push(alarm);
  }
}
