// The CDK app's context: what cdk.json and `-c key=value` may say, the defaults, and errors that name the
// key and the value received.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DEFAULT_PANIC_SETTINGS } from "../../functions/core/panic-policy.ts";
import { appContext, CONTEXT_KEYS, ConfigError, exampleKeys, parseConfig } from "../../lib/config.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  app: string;
  context: Record<string, unknown>;
};

const minimal = {
  clusterName: "prod-eu",
  logGroupNames: ["/aws/containerinsights/prod-eu/host"],
  panicPrincipalArns: ["arn:aws:iam::123456789012:role/oncall"],
};

function errorOf(context: Record<string, unknown>): string {
  try {
    parseConfig(context);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("cdk.json", () => {
  it("runs the app with Node's type stripping and carries a valid example for every required key", () => {
    expect(cdkJson.app).toBe("node bin/app.ts");
    const config = parseConfig(appContext((key) => cdkJson.context[key]));
    expect(config.clusterName).toBe("demo-cluster");
    expect(config.logGroupNames).toEqual(["/aws/containerinsights/demo-cluster/host"]);
    expect(config.panicPrincipalArns).toHaveLength(1);
  });

  it("names every example value it still holds, and none of a real cluster's", () => {
    const example = parseConfig(appContext((key) => cdkJson.context[key]));
    expect(exampleKeys(example)).toEqual([
      "clusterName",
      "logGroupNames",
      "alertEmails",
      "operationsEmails",
      "panicPrincipalArns",
    ]);
    const real = parseConfig({
      ...minimal,
      alertEmails: ["netsec@corp.example.io", "oncall@examples.com"],
      panicPrincipalArns: ["arn:aws:iam::210987654321:role/oncall"],
    });
    expect(exampleKeys(real)).toEqual([]);
    // Any address in a reserved domain receives nothing; a log group of the example cluster is not the operator's.
    for (const address of [
      "a@example.org",
      "a@mail.example.net",
      "a@corp.test",
      "a@x.invalid",
      "a@Example.COM",
    ]) {
      expect(exampleKeys({ ...real, operationsEmails: [address] }), address).toEqual(["operationsEmails"]);
    }
    expect(
      exampleKeys({ ...real, logGroupNames: ["/eks/demo-cluster/nodes", "/eks/prod-eu/nodes"] }),
    ).toEqual(["logGroupNames"]);
    expect(exampleKeys({ ...real, logGroupNames: ["/eks/demo-cluster-2/nodes"] })).toEqual([]);
    // deploy.md's command uses the documentation's other example account.
    const documented = { ...real, panicPrincipalArns: ["arn:aws:iam::111122223333:role/platform-oncall"] };
    expect(exampleKeys(documented)).toEqual(["panicPrincipalArns"]);
  });

  it("has no key the app does not read, besides CDK feature flags and the comment", () => {
    const unknown = Object.keys(cdkJson.context).filter(
      (key) => !CONTEXT_KEYS.includes(key) && !key.startsWith("@aws-cdk") && key !== "//",
    );
    expect(unknown).toEqual([]);
  });
});

describe("parseConfig", () => {
  it("fills the documented defaults", () => {
    const config = parseConfig(minimal);
    expect(config).toMatchObject({
      stackName: "CalicoFlows",
      logPrefix: "calico-packet",
      logPrefixFormat: undefined,
      internalCidrs: ["192.168.0.0/16"],
      alertEmails: [],
      operationsEmails: [],
      panicTtlMinutes: 60,
      calicoApiGroup: DEFAULT_PANIC_SETTINGS.apiGroup,
      retentionDays: 30,
      logRetentionDays: 30,
      aggregationSeconds: 60,
      alertWindowMinutes: 15,
      manageClusterAccess: true,
      attribution: "eks",
      namespaceLabelKeys: [],
      scanThreshold: undefined,
      alertCap: undefined,
      panicReservedConcurrency: undefined,
    });
    // Unset panic overrides mean the panic function's own defaults.
    expect(config.panicPolicy).toEqual({
      name: DEFAULT_PANIC_SETTINGS.name,
      namespaceSelector: DEFAULT_PANIC_SETTINGS.namespaceSelector,
      order: DEFAULT_PANIC_SETTINGS.order,
      tier: DEFAULT_PANIC_SETTINGS.tier,
      types: DEFAULT_PANIC_SETTINGS.types,
    });
  });

  it("takes -c strings: comma lists, JSON lists, numbers, booleans and a JSON object", () => {
    const config = parseConfig({
      clusterName: "prod-eu",
      logGroupNames: " /a/nodes , /b/nodes ",
      panicPrincipalArns:
        '["arn:aws:iam::123456789012:role/oncall","arn:aws:iam::123456789012:role/sso/Admin_*"]',
      internalCidrs: "10.0.0.0/8,fd00::/8",
      alertEmails: "a@example.com",
      retentionDays: "90",
      aggregationSeconds: "30",
      manageClusterAccess: "false",
      panicPolicy: '{"order":"50","types":"Ingress","tier":"security"}',
      panicTtlMinutes: "0",
      panicReservedConcurrency: "3",
    });
    expect(config.logGroupNames).toEqual(["/a/nodes", "/b/nodes"]);
    expect(config.panicPrincipalArns).toHaveLength(2);
    expect(config.internalCidrs).toEqual(["10.0.0.0/8", "fd00::/8"]);
    expect(config.alertEmails).toEqual(["a@example.com"]);
    // Operations mail goes to the alert recipients unless said otherwise.
    expect(config.operationsEmails).toEqual(["a@example.com"]);
    expect(config.retentionDays).toBe(90);
    expect(config.aggregationSeconds).toBe(30);
    expect(config.manageClusterAccess).toBe(false);
    expect(config.panicTtlMinutes).toBe(0);
    expect(config.panicReservedConcurrency).toBe(3);
    expect(config.panicPolicy).toMatchObject({ order: 50, types: ["Ingress"], tier: "security" });
  });

  it("takes an IAM Identity Center role's exact pattern: ArnLike's `?` for each of its 16 suffix characters", () => {
    // Identity Center names a permission set's role AWSReservedSSO_<set>_<16 hex>, and a set's name may hold `_`:
    // `PlatformOncall_*` is also PlatformOncall_ReadOnly's role, only 16 `?` is PlatformOncall's alone.
    const sso = `arn:aws:iam::210987654321:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_PlatformOncall_${"?".repeat(16)}`;
    expect(parseConfig({ ...minimal, panicPrincipalArns: [sso] }).panicPrincipalArns).toEqual([sso]);
    expect(errorOf({ ...minimal, panicPrincipalArns: ["arn:aws:iam::21098765432?:role/oncall"] })).toContain(
      'panicPrincipalArns.0="arn:aws:iam::21098765432?:role/oncall"',
    );
  });

  it("accepts the bare Calico API group names and maps them to the version each serves", () => {
    expect(parseConfig({ ...minimal, calicoApiGroup: "crd.projectcalico.org" }).calicoApiGroup).toBe(
      "crd.projectcalico.org/v1",
    );
    expect(parseConfig({ ...minimal, calicoApiGroup: "projectcalico.org" }).calicoApiGroup).toBe(
      "projectcalico.org/v3",
    );
  });

  it.each([
    [{ retentionDays: "abc" }, 'retentionDays="abc": expected an integer'],
    [{ panicReservedConcurrency: 0 }, "panicReservedConcurrency=0: expected an integer from 1 to 100"],
    [{ retentionDays: 0 }, "retentionDays=0: expected an integer from 1 to"],
    [{ aggregationSeconds: "3600" }, 'aggregationSeconds="3600": expected an integer from 1 to 60'],
    [{ logRetentionDays: 10 }, "logRetentionDays=10: expected one of 1, 3, 5, 7, 14, 30"],
    [{ clusterName: undefined }, "clusterName=(not set)"],
    [{ clusterName: "bad name" }, 'clusterName="bad name": not a valid EKS cluster name'],
    [{ logGroupNames: [] }, "logGroupNames=[]: at least one node log group is needed"],
    [{ logGroupNames: "/a,/a" }, 'logGroupNames="/a,/a": log group names must not repeat'],
    [{ logGroupNames: "/a,bad name" }, 'logGroupNames.1="bad name": not a valid CloudWatch Logs group name'],
    [{ logPrefix: 'calico"packet' }, 'logPrefix="calico\\"packet"'],
    [{ internalCidrs: "10.0.0.0/33" }, 'internalCidrs.0="10.0.0.0/33": an IPv4 prefix length is at most 32'],
    // What the ingest function would refuse at every start is refused at synth.
    [{ internalCidrs: "10.0.0.0/8,::ffff:0:0/96" }, 'invalid CIDR "::ffff:0:0/96": an IPv4-mapped range'],
    [{ alertEmails: "oncall" }, 'alertEmails.0="oncall": expected an email address'],
    [{ panicPrincipalArns: [] }, "panicPrincipalArns=[]: at least one principal must be allowed"],
    // A wildcard account would admit every AWS account's role of that name to the panic button.
    [
      { panicPrincipalArns: "arn:aws:iam::*:role/oncall" },
      'panicPrincipalArns.0="arn:aws:iam::*:role/oncall"',
    ],
    [
      { panicPrincipalArns: "arn:aws:sts::123456789012:assumed-role/oncall/me" },
      "aws:PrincipalArn of a session is its role",
    ],
    [{ panicPolicy: { nme: "x" } }, "unknown key(s) nme in panicPolicy"],
    [
      { panicPolicy: { types: ["Sideways"] } },
      'panicPolicy.types.0="Sideways": expected Ingress and/or Egress',
    ],
    [{ panicTtlMinutes: 20_000 }, "panicTtlMinutes=20000:"],
    [
      { calicoApiGroup: "networking.k8s.io" },
      'calicoApiGroup="networking.k8s.io": expected projectcalico.org/v3',
    ],
    [{ manageClusterAccess: "yes" }, 'manageClusterAccess="yes": expected true or false'],
    [{ attribution: "dns" }, 'attribution="dns"'],
    [{ stackName: "1stack" }, 'stackName="1stack": not a valid CloudFormation stack name'],
    [
      // 200 ranges: more than every coverage claim can record with its writer's settings (checkSettings).
      { internalCidrs: Array.from({ length: 200 }, (_, i) => `10.${i}.0.0/16`).join(",") },
      "internalCidrs, workloadInterfacePrefixes: the pipeline's settings take",
    ],
    [
      { logPrefixFormat: "denied %t %n" },
      'logPrefixFormat="denied %t %n": must start with logPrefix, which the subscription filter matches',
    ],
  ])("refuses %j, naming the key and the value received", (override, expected) => {
    expect(errorOf({ ...minimal, ...override })).toContain(expected);
  });

  it("takes workloadInterfacePrefixes as a list, and leaves it unset (the function's default) when not given", () => {
    expect(parseConfig(minimal).workloadInterfacePrefixes).toBeUndefined();
    expect(
      parseConfig({ ...minimal, workloadInterfacePrefixes: "cali, tap" }).workloadInterfacePrefixes,
    ).toEqual(["cali", "tap"]);
    expect(
      parseConfig({ ...minimal, workloadInterfacePrefixes: '["cali","eni","vlan","tap"]' })
        .workloadInterfacePrefixes,
    ).toEqual(["cali", "eni", "vlan", "tap"]);
    expect(parseConfig({ ...minimal, workloadInterfacePrefixes: ["gke"] }).workloadInterfacePrefixes).toEqual(
      ["gke"],
    );
  });

  it.each([
    [
      { workloadInterfacePrefixes: "" },
      'workloadInterfacePrefixes="": at least one workload interface prefix',
    ],
    [
      { workloadInterfacePrefixes: [] },
      "workloadInterfacePrefixes=[]: at least one workload interface prefix",
    ],
    [
      { workloadInterfacePrefixes: ["cali", ""] },
      'workloadInterfacePrefixes=["cali",""]: invalid workload interface prefix "": empty',
    ],
    [
      { workloadInterfacePrefixes: "cali,tap,cali" },
      'workloadInterfacePrefixes="cali,tap,cali": invalid workload interface prefix "cali": given twice',
    ],
    [
      { workloadInterfacePrefixes: "abcdefghijklmnop" },
      'workloadInterfacePrefixes="abcdefghijklmnop": invalid workload interface prefix "abcdefghijklmnop": longer than 15',
    ],
    [
      { workloadInterfacePrefixes: '["cali","tap/x"]' },
      'workloadInterfacePrefixes="[\\"cali\\",\\"tap/x\\"]": invalid workload interface prefix "tap/x": expected printable ASCII',
    ],
    [{ workloadInterfacePrefixes: [7] }, "workloadInterfacePrefixes.0=7: expected an interface name prefix"],
    [
      { workloadInterfacePrefixes: { cali: true } },
      'workloadInterfacePrefixes={"cali":true}: expected a list of interface name prefixes',
    ],
  ])("refuses workload interface prefixes %j, naming the key", (override, expected) => {
    expect(errorOf({ ...minimal, ...override })).toContain(expected);
  });

  it("reports every bad key at once", () => {
    const message = errorOf({ ...minimal, retentionDays: "x", aggregationSeconds: "y" });
    expect(message).toContain('retentionDays="x"');
    expect(message).toContain('aggregationSeconds="y"');
  });
});

describe("appContext", () => {
  it("reads only this app's keys, never feature flags", () => {
    const seen: string[] = [];
    const context = appContext((key) => {
      seen.push(key);
      return key === "clusterName" ? "prod-eu" : undefined;
    });
    expect(context).toEqual({ clusterName: "prod-eu" });
    expect(seen).toEqual(CONTEXT_KEYS);
    expect(seen.some((key) => key.startsWith("@aws-cdk"))).toBe(false);
  });
});
