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
      scheduler: { groupName: "panic", roleArn: "arn:aws:iam::123456789012:role/scheduler" },
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
});
