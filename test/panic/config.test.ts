import { describe, expect, it } from "vitest";
import { loadPanicConfig } from "../../functions/panic/config.ts";

const required = { CLUSTER_NAME: "prod", TABLE_NAME: "calico-flows" };

describe("loadPanicConfig", () => {
  it("defaults to the runbook's policy", () => {
    expect(loadPanicConfig(required)).toEqual({
      cluster: "prod",
      tableName: "calico-flows",
      alertsTopicArn: undefined,
      settings: {
        apiGroup: "projectcalico.org/v3",
        name: "allow-all",
        namespaceSelector: "baseten.co/organization == 'true'",
        order: 100,
        tier: "default",
        types: ["Ingress", "Egress"],
      },
      defaultTtlMinutes: 60,
      scheduler: undefined,
      kubeTimeoutMs: 10_000,
    });
  });

  it("reads every variable the stack sets", () => {
    const config = loadPanicConfig({
      ...required,
      ALERTS_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:alerts",
      CALICO_API_GROUP: "crd.projectcalico.org/v1",
      PANIC_POLICY_NAME: "calico-flows-panic",
      PANIC_NAMESPACE_SELECTOR: "all()",
      PANIC_ORDER: "5",
      PANIC_TIER: "emergency",
      PANIC_TYPES: "Egress",
      PANIC_TTL_MINUTES: "0",
      SCHEDULE_GROUP_NAME: "panic",
      SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/scheduler",
      SCHEDULE_DEAD_LETTER_QUEUE_ARN: "arn:aws:sqs:eu-west-1:123456789012:panic-dead-letters",
      KUBE_TIMEOUT_SECONDS: "5",
    });
    expect(config).toMatchObject({
      alertsTopicArn: "arn:aws:sns:eu-west-1:123456789012:alerts",
      settings: {
        apiGroup: "crd.projectcalico.org/v1",
        name: "calico-flows-panic",
        namespaceSelector: "all()",
        order: 5,
        tier: "emergency",
        types: ["Egress"],
      },
      defaultTtlMinutes: 0,
      scheduler: {
        groupName: "panic",
        roleArn: "arn:aws:iam::123456789012:role/scheduler",
        deadLetterArn: "arn:aws:sqs:eu-west-1:123456789012:panic-dead-letters",
      },
      kubeTimeoutMs: 5000,
    });
  });

  it.each([
    ["projectcalico.org", "projectcalico.org/v3"],
    ["crd.projectcalico.org", "crd.projectcalico.org/v1"],
  ])("accepts the bare group name %s", (value, group) => {
    expect(loadPanicConfig({ ...required, CALICO_API_GROUP: value }).settings.apiGroup).toBe(group);
  });

  it("treats empty variables as unset", () => {
    expect(loadPanicConfig({ ...required, ALERTS_TOPIC_ARN: "", PANIC_ORDER: "" }).settings.order).toBe(100);
  });

  it.each([
    [{ CLUSTER_NAME: undefined }, "CLUSTER_NAME"],
    [{ CALICO_API_GROUP: "networking.k8s.io/v1" }, 'CALICO_API_GROUP="networking.k8s.io/v1"'],
    [{ PANIC_POLICY_NAME: "Allow All" }, "PANIC_POLICY_NAME"],
    [{ PANIC_ORDER: "first" }, "PANIC_ORDER"],
    [{ PANIC_TYPES: "Ingress,Sideways" }, "PANIC_TYPES"],
    [{ PANIC_TTL_MINUTES: "-5" }, "PANIC_TTL_MINUTES"],
    [{ SCHEDULE_GROUP_NAME: "panic" }, "SCHEDULER_ROLE_ARN"],
    [{ KUBE_TIMEOUT_SECONDS: "600" }, "KUBE_TIMEOUT_SECONDS"],
  ])("rejects %j naming %s", (env, name) => {
    expect(() => loadPanicConfig({ ...required, ...env })).toThrow(name);
  });

  describe("the expiry's dead-letter queue", () => {
    const expiry = {
      SCHEDULE_GROUP_NAME: "panic",
      SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/scheduler",
    };
    const queue = "arn:aws:sqs:eu-west-1:123456789012:panic-dead-letters";

    it("accepts an SQS queue ARN in any partition", () => {
      for (const arn of [
        queue,
        "arn:aws-cn:sqs:cn-north-1:123456789012:q_1",
        "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q",
      ]) {
        expect(
          loadPanicConfig({ ...required, ...expiry, SCHEDULE_DEAD_LETTER_QUEUE_ARN: arn }).scheduler,
        ).toEqual({ groupName: "panic", roleArn: expiry.SCHEDULER_ROLE_ARN, deadLetterArn: arn });
      }
    });

    it("is required with the schedule group: a revert Scheduler cannot deliver must not be dropped", () => {
      expect(() => loadPanicConfig({ ...required, ...expiry })).toThrow(
        "SCHEDULE_DEAD_LETTER_QUEUE_ARN=undefined: SCHEDULE_DEAD_LETTER_QUEUE_ARN is set with SCHEDULE_GROUP_NAME",
      );
      expect(() => loadPanicConfig({ ...required, ...expiry, SCHEDULE_DEAD_LETTER_QUEUE_ARN: "" })).toThrow(
        "SCHEDULE_DEAD_LETTER_QUEUE_ARN",
      );
    });

    it("is not set without the schedule group", () => {
      expect(() => loadPanicConfig({ ...required, SCHEDULE_DEAD_LETTER_QUEUE_ARN: queue })).toThrow(
        "SCHEDULE_DEAD_LETTER_QUEUE_ARN",
      );
    });

    it.each([
      "panic-dead-letters",
      "https://sqs.eu-west-1.amazonaws.com/123456789012/panic-dead-letters",
      "arn:aws:sns:eu-west-1:123456789012:panic-dead-letters",
      "arn:aws:sqs:eu-west-1:123456789012:panic-dead-letters.fifo",
      "arn:aws:sqs:eu-west-1:12345:panic-dead-letters",
      "arn:aws:sqs:eu-west-1:123456789012:",
    ])("refuses %s, naming the variable and its value", (arn) => {
      expect(() => loadPanicConfig({ ...required, ...expiry, SCHEDULE_DEAD_LETTER_QUEUE_ARN: arn })).toThrow(
        `SCHEDULE_DEAD_LETTER_QUEUE_ARN=${JSON.stringify(arn)}: expected an SQS queue ARN`,
      );
    });
  });
});
