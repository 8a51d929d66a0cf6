// How the stack wires CloudWatch Logs to the ingest function, checked against what the AWS documentation requires:
// - CloudWatch Logs user guide, "Real-time processing of log data with subscriptions" (two filters per log group,
//   retries: throttling and 5xx for 24 hours, none after a non-retryable error), "Using subscription filters with
//   Lambda" (add-permission with --source-arn and --source-account), "Filter pattern syntax" (a term holding other
//   characters than letters, digits and `_` must be quoted; terms are case-sensitive and match inside words);
// - Lambda developer guide, "Invoking a function asynchronously" and "Capturing records of asynchronous invocations"
//   (retries 0-2, event age up to 6 hours, throttles retried for the event age, reserved concurrency 0 skips
//   retries, DestinationDeliveryFailures when a record cannot be delivered, also for size), Invoke API reference
//   (asynchronous events up to 1 MB), "Types of metrics" (AsyncEventsDropped, DestinationDeliveryFailures,
//   DeadLetterErrors, Throttles); SQS quotas (a message up to 1 MiB).
// Stacks are synthesized with lib's entry points as `cdk synth` builds them (bundling skipped; synth.test.ts bundles).
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createParser } from "../../functions/core/parse.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};
const deployMd = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json; DependsOn?: string | string[] };

const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Lambda's limit on an asynchronous event (Invoke API reference: "the maximum payload size is 1 MB"). */
const ASYNC_EVENT_MAX_BYTES = 1_048_576;
/** The largest message SQS takes (SetQueueAttributes MaximumMessageSize: up to 1,048,576 bytes). */
const SQS_MESSAGE_MAX_BYTES = 1_048_576;

// Prefixes with the characters that force quoting (`-`, `:`, `.`), log group names with the unusual ones a name may
// hold (`#`, `.`, `_`).
const CONFIG = {
  clusterName: "prod-eu-1",
  logGroupNames: ["/aws/containerinsights/prod-eu-1/host", "/eks/prod-eu-1/kernel#calico", "node.kern_logs"],
  logPrefix: "calico:drop-v2",
  logPrefixFormat: "calico:drop-v2 %t %n",
};

function synth(overrides: Record<string, unknown>) {
  const app = new App({ context: { ...cdkJson.context, ...overrides, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  const template = Template.fromStack(stack);
  return { config, resources: template.toJSON().Resources as Record<string, Resource> };
}

const ofType = (resources: Record<string, Resource>, type: string) =>
  Object.entries(resources).filter(([, r]) => r.Type === type);

const PSEUDO: Record<string, string> = {
  "AWS::Partition": "aws",
  "AWS::Region": "eu-west-1",
  "AWS::AccountId": "123456789012",
};

/** A string as CloudFormation resolves it, for the pseudo parameters and Fn::Join; anything else is an error. */
function resolved(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as Json;
  if (typeof v?.Ref === "string" && v.Ref in PSEUDO) return PSEUDO[v.Ref] as string;
  if (Array.isArray(v?.["Fn::Join"])) {
    const [separator, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(resolved).join(separator);
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

/** A kernel line as Felix logs it, behind a syslog header. */
const line = (prefix: string) =>
  `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${prefix}: IN=eth0 OUT=eni8d48114818c ` +
  "MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 " +
  "PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";

/**
 * Whether an unstructured-log filter pattern made of one quoted term matches a log event: the event contains the
 * term, case-sensitively, anywhere (the guide's "ERROR" matches "ERRORCODE"). Throws for any other pattern.
 */
function quotedTermMatches(pattern: string, event: string): boolean {
  const term = /^"([^"\\]+)"$/.exec(pattern)?.[1];
  if (term === undefined) throw new Error(`not one quoted term: ${pattern}`);
  return event.includes(term);
}

describe("CloudWatch Logs → ingest function", () => {
  let resources: Record<string, Resource>;
  let ingestId: string;
  let opsTopicId: string;
  let alarms: Json[];
  /** The queue the ingest function's failures go to (the panic function has a queue of its own). */
  const failedPayloadsId = (): string => {
    const config = ofType(resources, "AWS::Lambda::EventInvokeConfig").find(
      ([, c]) => JSON.stringify(c.Properties.FunctionName) === JSON.stringify({ Ref: ingestId }),
    );
    if (config === undefined) throw new Error("the ingest function has no EventInvokeConfig");
    const destination = (config[1].Properties.DestinationConfig as { OnFailure: { Destination: Json } })
      .OnFailure.Destination as { "Fn::GetAtt": [string, string] };
    return destination["Fn::GetAtt"][0];
  };

  beforeAll(() => {
    ({ resources } = synth(CONFIG));
    const ingest = ofType(resources, "AWS::Lambda::Function").filter(([, r]) =>
      JSON.stringify(r.Properties.Environment).includes('"POWERTOOLS_SERVICE_NAME":"calico-flows-ingest"'),
    );
    expect(ingest).toHaveLength(1);
    ingestId = (ingest[0] as [string, Resource])[0];
    const ops = ofType(resources, "AWS::SNS::Topic").filter(([, t]) =>
      String(t.Properties.DisplayName).includes("operations"),
    );
    expect(ops).toHaveLength(1);
    opsTopicId = (ops[0] as [string, Resource])[0];
    alarms = ofType(resources, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties);
  });

  describe("subscription filters", () => {
    it("adds one filter per configured log group, to the unqualified ingest function, with no role or distribution", () => {
      const filters = ofType(resources, "AWS::Logs::SubscriptionFilter").map(([, f]) => f.Properties);
      // One slot of the two each group has, and one only.
      expect(filters.map((f) => f.LogGroupName).sort()).toEqual([...CONFIG.logGroupNames].sort());
      for (const f of filters) {
        expect(f.FilterName).toBe(`calico-flows-${CONFIG.clusterName}`);
        // The unqualified ARN: CloudWatch Logs invokes $LATEST, whose asynchronous configuration applies.
        expect(f.DestinationArn).toEqual({ "Fn::GetAtt": [ingestId, "Arn"] });
        // No role for a Lambda destination (the function's resource policy grants it); distribution is for
        // Kinesis Data Streams only.
        expect(f.RoleArn).toBeUndefined();
        expect(f.Distribution).toBeUndefined();
      }
    });

    it("lets logs.amazonaws.com invoke ingest for each group, of this account only (SourceArn and SourceAccount), before subscribing it", () => {
      const grants = ofType(resources, "AWS::Lambda::Permission").filter(
        ([, p]) => p.Properties.Principal === "logs.amazonaws.com",
      );
      expect(grants).toHaveLength(CONFIG.logGroupNames.length);
      for (const [id, { Properties: p }] of grants) {
        expect(p.Action, id).toBe("lambda:InvokeFunction");
        expect(p.FunctionName, id).toEqual({ "Fn::GetAtt": [ingestId, "Arn"] });
        // Against the confused deputy: the caller must act for this account, whatever the ARN says.
        expect(p.SourceAccount, id).toEqual({ Ref: "AWS::AccountId" });
      }
      for (const [, filter] of ofType(resources, "AWS::Logs::SubscriptionFilter")) {
        const group = String(filter.Properties.LogGroupName);
        // The log group's ARN as CloudWatch Logs presents it, with `:*`, in this stack's account and Region.
        const arn = `arn:aws:logs:eu-west-1:123456789012:log-group:${group}:*`;
        const grant = grants.filter(([, p]) => resolved(p.Properties.SourceArn) === arn);
        expect(grant, group).toHaveLength(1);
        // PutSubscriptionFilter refuses a function CloudWatch Logs may not invoke yet.
        expect(list(filter.DependsOn), group).toContain((grant[0] as [string, Resource])[0]);
      }
    });

    it("starts deliveries after the access entries exist, so that the first ones are attributed", () => {
      const entries = ofType(resources, "AWS::EKS::AccessEntry").map(([id]) => id);
      expect(entries.length).toBeGreaterThan(0);
      for (const [, filter] of ofType(resources, "AWS::Logs::SubscriptionFilter")) {
        for (const entry of entries) expect(list(filter.DependsOn)).toContain(entry);
      }
      // Without managed access entries, nothing to wait for.
      const { resources: unmanaged } = synth({ ...CONFIG, manageClusterAccess: false });
      expect(ofType(unmanaged, "AWS::EKS::AccessEntry")).toHaveLength(0);
      expect(ofType(unmanaged, "AWS::Logs::SubscriptionFilter")).toHaveLength(CONFIG.logGroupNames.length);
    });

    it("takes log groups by name only: an ARN (another account or Region) is refused before anything is built", () => {
      for (const arn of [
        "arn:aws:logs:us-east-1:111122223333:log-group:/eks/prod/calico",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/eks/prod/calico:*",
      ]) {
        expect(() => parseConfig({ ...cdkJson.context, logGroupNames: [arn] }), arn).toThrow(
          /logGroupNames.*not a valid CloudWatch Logs group name/,
        );
      }
    });

    it("filters with one quoted term for every prefix the configuration accepts, matching every line ingest reads", () => {
      const prefix = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,27}$/);
      fc.assert(
        fc.property(prefix, fc.boolean(), (logPrefix, withFormat) => {
          const logPrefixFormat = withFormat ? `${logPrefix} %t %k %n` : undefined;
          const { resources: r } = synth({
            logGroupNames: ["/eks/c/kernel"],
            logPrefix,
            ...(logPrefixFormat === undefined ? {} : { logPrefixFormat }),
          });
          const filters = ofType(r, "AWS::Logs::SubscriptionFilter").map(([, f]) => f.Properties);
          expect(filters).toHaveLength(1);
          const pattern = String(filters[0]?.FilterPattern);
          // Quoted whatever it holds: `calico-packet` bare would be the term `calico` and the exclusion `-packet`.
          expect(pattern).toBe(`"${logPrefix}"`);
          expect(pattern.length).toBeLessThanOrEqual(1024);
          // Whatever the parser takes for a record, the filter lets through; the case of the prefix matters to both.
          const parse = createParser({ prefix: logPrefix, prefixFormat: logPrefixFormat });
          const logged = logPrefixFormat === undefined ? logPrefix : `${logPrefix} default|calico-flows|deny`;
          const lines = [line(logged), line(logged.toUpperCase()), line(logged.toLowerCase())];
          lines.push(...lines.map((l) => JSON.stringify({ host: "ip-192-168-74-5", log: l })));
          for (const l of lines) {
            if (parse(l).kind !== "skip") expect(quotedTermMatches(pattern, l), l).toBe(true);
          }
          expect(parse(line(logged)).kind).toBe("record");
        }),
        { numRuns: 12 },
      );
    });

    it("refuses a prefix the quoted term could not hold", () => {
      for (const logPrefix of ['calico"packet', "calico\\packet", "calico packet", "", "x".repeat(28)]) {
        expect(() => parseConfig({ ...cdkJson.context, logPrefix }), JSON.stringify(logPrefix)).toThrow(
          /logPrefix=/,
        );
      }
    });
  });

  describe("asynchronous invocation", () => {
    it("retries failures twice and keeps throttled deliveries 6 hours, on $LATEST, then hands them to the queue", () => {
      const configs = ofType(resources, "AWS::Lambda::EventInvokeConfig")
        .map(([, c]) => c.Properties)
        .filter((c) => JSON.stringify(c.FunctionName) === JSON.stringify({ Ref: ingestId }));
      expect(configs).toHaveLength(1);
      const queueId = failedPayloadsId();
      expect(configs[0]).toEqual({
        FunctionName: { Ref: ingestId },
        Qualifier: "$LATEST",
        // Lambda's maxima: 0-2 retries, 60 s to 6 h of age.
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 6 * 3600,
        DestinationConfig: { OnFailure: { Destination: { "Fn::GetAtt": [queueId, "Arn"] } } },
      });
      const fn = (resources[ingestId] as Resource).Properties;
      // Three attempts, 1 and 2 minutes apart, end well inside the event age: retries are never cut short.
      expect(3 * Number(fn.Timeout) + 60 + 120).toBeLessThan(6 * 3600);
      // Reserved concurrency 0 would send every delivery to the destination untried; no DLQ, so DeadLetterErrors
      // cannot happen and the destination is the one place failed deliveries go.
      expect(fn.ReservedConcurrentExecutions).toBeUndefined();
      expect(fn.DeadLetterConfig).toBeUndefined();
      expect(fn.Runtime).toBe("nodejs24.x");
      expect(fn.Architectures).toEqual(["arm64"]);
    });

    it("sends failure records to a standard queue as large as SQS allows, which the ingest role may write through its key", () => {
      const queueId = failedPayloadsId();
      const queue = resources[queueId] as Resource;
      expect(queue.Type).toBe("AWS::SQS::Queue");
      // Lambda cannot deliver to a FIFO queue (DestinationDeliveryFailures).
      expect(queue.Properties.FifoQueue).toBeUndefined();
      expect(queue.Properties.MaximumMessageSize).toBe(SQS_MESSAGE_MAX_BYTES);
      const role = ((resources[ingestId] as Resource).Properties.Role as { "Fn::GetAtt": [string] })[
        "Fn::GetAtt"
      ][0];
      const statements = ofType(resources, "AWS::IAM::Policy")
        .filter(([, p]) => list(p.Properties.Roles).some((r) => (r as Json).Ref === role))
        .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Json[] }).Statement);
      const grants = (action: string) =>
        statements
          .filter((s) => list(s.Action as string | string[]).includes(action))
          .flatMap((s) => list(s.Resource));
      expect(grants("sqs:SendMessage")).toContainEqual({ "Fn::GetAtt": [queueId, "Arn"] });
      for (const action of ["kms:GenerateDataKey", "kms:Decrypt"]) {
        expect(grants(action), action).toContainEqual(queue.Properties.KmsMasterKeyId);
      }
    });

    it("cannot keep the record of a delivery near Lambda's 1 MB limit whole, and deploy.md says what happens then", () => {
      const queue = resources[failedPayloadsId()] as Resource;
      // The record Lambda writes for a failed asynchronous invocation: the event plus context and the error.
      const event = {
        awslogs: { data: "A".repeat(ASYNC_EVENT_MAX_BYTES - '{"awslogs":{"data":""}}'.length) },
      };
      expect(JSON.stringify(event).length).toBe(ASYNC_EVENT_MAX_BYTES);
      const record = {
        version: "1.0",
        timestamp: "2026-01-01T00:00:00.000Z",
        requestContext: {
          requestId: "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
          functionArn: "arn:aws:lambda:eu-west-1:123456789012:function:CalicoFlows-IngestFunction:$LATEST",
          condition: "RetriesExhausted",
          approximateInvokeCount: 3,
        },
        requestPayload: event,
        responseContext: { statusCode: 200, executedVersion: "$LATEST", functionError: "Unhandled" },
        responsePayload: { errorType: "Error", errorMessage: "DynamoDB unavailable", trace: [] },
      };
      const recordBytes = Buffer.byteLength(JSON.stringify(record));
      if (recordBytes > Number(queue.Properties.MaximumMessageSize)) {
        // Then the operator must know: the limit, that such a record loses its payload or is not delivered, the
        // alarm that says so, and how to recover the lines.
        const limits = deployMd.slice(deployMd.indexOf("## 7. Limits"), deployMd.indexOf("## 8."));
        expect(limits).toMatch(/\| asynchronous event size +\| 1 MB \(Lambda\)/);
        expect(limits).toMatch(/\| SQS message size +\| 1 MiB +\| .*does not fit/);
        expect(deployMd).toMatch(/leaves the\s+payload out of the record/);
        expect(deployMd).toMatch(/does\s+not\s+deliver it \(_FailedPayloadsNotKept_\); backfill/);
      }
      // A record of a delivery of a few hundred kilobytes fits whole, so `redrive` can replay it.
      const typical = { ...record, requestPayload: { awslogs: { data: "A".repeat(300_000) } } };
      expect(Buffer.byteLength(JSON.stringify(typical))).toBeLessThan(
        Number(queue.Properties.MaximumMessageSize),
      );
    });
  });

  describe("alarms on the failure signals", () => {
    const alarmOn = (namespace: string, metric: string) =>
      alarms.filter((a) => a.Namespace === namespace && a.MetricName === metric);

    it.each([
      ["Throttles", "throttled deliveries wait in Lambda's queue"],
      ["AsyncEventsDropped", "deliveries Lambda gave up on (retries, event age, a queue overflowing)"],
      [
        "DestinationDeliveryFailures",
        "failure records Lambda could not put in the queue (key, grants, size)",
      ],
    ])("alarms on the ingest function's %s (%s) at a threshold of one, to the operations topic", (metric) => {
      const found = alarmOn("AWS/Lambda", metric).filter(
        (a) =>
          JSON.stringify(a.Dimensions) ===
          JSON.stringify([{ Name: "FunctionName", Value: { Ref: ingestId } }]),
      );
      expect(found).toHaveLength(1);
      const alarm = found[0] as Json;
      expect(alarm).toMatchObject({
        Statistic: "Sum",
        Threshold: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        AlarmActions: [{ Ref: opsTopicId }],
      });
    });

    it("has no dead-letter queue whose DeadLetterErrors would need an alarm", () => {
      const fn = (resources[ingestId] as Resource).Properties;
      expect(fn.DeadLetterConfig).toBeUndefined();
      expect(alarmOn("AWS/Lambda", "DeadLetterErrors")).toEqual([]);
    });

    it("alarms on each group's delivery errors under the dimensions of the filter actually created", () => {
      const found = alarmOn("AWS/Logs", "DeliveryErrors");
      expect(found).toHaveLength(CONFIG.logGroupNames.length);
      for (const [, filter] of ofType(resources, "AWS::Logs::SubscriptionFilter")) {
        const dimensions = [
          { Name: "DestinationType", Value: "Lambda" },
          { Name: "FilterName", Value: filter.Properties.FilterName },
          { Name: "LogGroupName", Value: filter.Properties.LogGroupName },
        ];
        const sorted = (d: unknown) =>
          JSON.stringify([...(d as { Name: string }[])].sort((a, b) => a.Name.localeCompare(b.Name)));
        expect(
          found.filter((a) => sorted(a.Dimensions) === JSON.stringify(dimensions)),
          String(filter.Properties.LogGroupName),
        ).toHaveLength(1);
      }
    });
  });

  describe("docs/deploy.md", () => {
    it("states the two-filter limit, what a deploy onto a full group does, and what the operator does about it", () => {
      expect(deployMd).toMatch(/at most \*\*two\*\* subscription filters/);
      expect(deployMd).toContain("LimitExceededException");
      expect(deployMd).toMatch(/deploy fails and rolls back/);
      expect(deployMd).toContain("aws logs describe-subscription-filters --log-group-name");
      expect(deployMd).toContain("aws logs delete-subscription-filter --log-group-name");
      // The filter's name, so that the operator knows which slot is calico-flows'.
      expect(deployMd).toContain("`calico-flows-<clusterName>`");
      // What a log group must be for a Lambda subscription at all.
      expect(deployMd).toMatch(/stack's own account and Region/);
      expect(deployMd).toMatch(/Standard log class/);
    });

    it("counts the alarms the stack creates, with and without attribution", () => {
      const words = [
        ...["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
        ...["eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"],
        ...["nineteen", "twenty"],
      ];
      const number = (w: string) => words.indexOf(w);
      const stated =
        /(\w+) alarms \(\$0\.10 per metric an alarm\s+reads:[^;]*; (\w+) alarms with\s+`attribution=none`\) plus two per log group/.exec(
          deployMd,
        );
      expect(stated).not.toBeNull();
      const [, withEks, withNone] = stated as unknown as [string, string, string];
      // Each group's DeliveryErrors and LinesNotStored.
      const perGroup = 2 * CONFIG.logGroupNames.length;
      expect(alarms.length - perGroup).toBe(number(withEks));
      const none = synth({ ...CONFIG, attribution: "none" }).resources;
      expect(ofType(none, "AWS::CloudWatch::Alarm").length - perGroup).toBe(number(withNone));
    });
  });
});
