import { describe, expect, it } from "vitest";
import {
  ANNOTATIONS,
  baseName,
  type CalicoPolicy,
  type CalicoRule,
  type CalicoTier,
  DEFAULT_PANIC_SETTINGS,
  describeConflict,
  expiryOf,
  findConflicts,
  isManagedByCalicoFlows,
  MANAGED_BY_LABEL,
  NEVER_EXPIRES,
  type PanicPolicySettings,
  panicPolicyDocument,
  policyObjectName,
  readStamp,
} from "../../functions/core/panic-policy.ts";

const settings = DEFAULT_PANIC_SETTINGS;
const stamp = {
  reason: "checkout is down",
  requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
  appliedAt: "2025-04-19T04:52:19.000Z",
  expiresAt: "2025-04-19T05:52:19.000Z",
};

function gnp(
  name: string,
  spec: CalicoPolicy["spec"],
  extra: Partial<CalicoPolicy["metadata"]> = {},
): CalicoPolicy {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name, ...extra },
    spec,
  };
}

function np(namespace: string, name: string, spec: CalicoPolicy["spec"]): CalicoPolicy {
  return { apiVersion: "projectcalico.org/v3", kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}

function tier(name: string, order: number | undefined, defaultAction?: string): CalicoTier {
  return {
    metadata: { name },
    spec: { ...(order === undefined ? {} : { order }), ...(defaultAction ? { defaultAction } : {}) },
  };
}

const deny: CalicoRule = { action: "Deny", protocol: "TCP", destination: { ports: [22] } };
const allowAll: CalicoRule = { action: "Allow" };
const defaultTier = tier("default", 1_000_000);

describe("panicPolicyDocument", () => {
  it("is the runbook's allow-all policy, marked and annotated", () => {
    const doc = panicPolicyDocument(settings, stamp);
    expect(doc).toEqual({
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: {
        name: "allow-all",
        labels: { "app.kubernetes.io/managed-by": "calico-flows" },
        annotations: {
          "calico-flows.io/reason": "checkout is down",
          "calico-flows.io/requester": stamp.requester,
          "calico-flows.io/applied-at": stamp.appliedAt,
          "calico-flows.io/expires-at": stamp.expiresAt,
        },
      },
      spec: {
        tier: "default",
        order: 100,
        namespaceSelector: "baseten.co/organization == 'true'",
        types: ["Ingress", "Egress"],
        ingress: [{ action: "Allow" }],
        egress: [{ action: "Allow" }],
      },
    });
  });

  it("follows every setting: group, name, selector, order, tier, types", () => {
    const custom: PanicPolicySettings = {
      apiGroup: "crd.projectcalico.org/v1",
      name: "open-up",
      namespaceSelector: "all()",
      order: 5,
      tier: "emergency",
      types: ["Egress"],
    };
    const doc = panicPolicyDocument(custom, { ...stamp, expiresAt: null });
    expect(doc.apiVersion).toBe("crd.projectcalico.org/v1");
    expect(doc.metadata.name).toBe("emergency.open-up");
    expect(doc.spec).toEqual({
      tier: "emergency",
      order: 5,
      namespaceSelector: "all()",
      types: ["Egress"],
      egress: [{ action: "Allow" }],
    });
    expect(doc.metadata.annotations?.[ANNOTATIONS.expiresAt]).toBe(NEVER_EXPIRES);
  });

  it("round-trips its stamp and ownership mark", () => {
    const doc = panicPolicyDocument(settings, stamp);
    expect(isManagedByCalicoFlows(doc)).toBe(true);
    expect(readStamp(doc)).toEqual(stamp);
    expect(readStamp(panicPolicyDocument(settings, { ...stamp, expiresAt: null }))?.expiresAt).toBeNull();
  });

  it("does not take a hand-made policy for its own", () => {
    const handMade = gnp("allow-all", { order: 100 }, { labels: { [MANAGED_BY_LABEL]: "kubectl" } });
    expect(isManagedByCalicoFlows(handMade)).toBe(false);
    expect(readStamp(handMade)).toBeNull();
  });
});

describe("naming", () => {
  it.each([
    [{ name: "allow-all", tier: "default" }, "allow-all"],
    [{ name: "allow-all", tier: "ops" }, "ops.allow-all"],
    [{ name: "ops.allow-all", tier: "ops" }, "ops.allow-all"],
  ])("%o is named %s", (input, expected) => {
    expect(policyObjectName(input)).toBe(expected);
  });

  it("strips only its own tier prefix", () => {
    expect(baseName("default.allow-all", "default")).toBe("allow-all");
    expect(baseName("ops.allow-all", "default")).toBe("ops.allow-all");
  });

  it("computes expiry from the TTL, 0 meaning never", () => {
    const now = new Date("2025-01-01T00:00:00.000Z");
    expect(expiryOf(now, 0)).toBeNull();
    expect(expiryOf(now, 90)).toBe("2025-01-01T01:30:00.000Z");
  });
});

describe("findConflicts", () => {
  const inventory = (
    globalPolicies: CalicoPolicy[],
    namespacedPolicies: CalicoPolicy[] = [],
    tiers = [defaultTier],
  ) => ({
    tiers,
    globalPolicies,
    namespacedPolicies,
  });

  it("lists same-tier policies of lower order with Deny or Pass rules, in evaluation order", () => {
    const conflicts = findConflicts(
      settings,
      inventory(
        [
          gnp("deny-ssh", { order: 50, ingress: [{ action: "Log" }, deny, allowAll] }),
          gnp("pass-egress", { order: 10, types: ["Egress"], egress: [{ action: "Pass" }] }),
          gnp("allow-dns", { order: 20, types: ["Egress"], egress: [allowAll] }),
          gnp("deny-later", { order: 500, ingress: [deny] }),
          gnp("deny-unordered", { ingress: [deny] }),
        ],
        [np("customer-a", "deny-db", { order: 99, ingress: [deny] })],
      ),
    );
    expect(conflicts.map((c) => [c.kind, c.name, c.order])).toEqual([
      ["GlobalNetworkPolicy", "pass-egress", 10],
      ["GlobalNetworkPolicy", "deny-ssh", 50],
      ["NetworkPolicy", "deny-db", 99],
    ]);
    expect(conflicts[0]?.reasons[0]).toContain("Pass rule (Egress)");
    expect(conflicts[1]?.reasons[0]).toContain("Deny rule (Ingress)");
    expect(conflicts[2]?.namespace).toBe("customer-a");
  });

  it("breaks order ties by name, as Calico does", () => {
    const conflicts = findConflicts(
      settings,
      inventory([gnp("aaa", { order: 100, ingress: [deny] }), gnp("zzz", { order: 100, ingress: [deny] })]),
    );
    expect(conflicts.map((c) => c.name)).toEqual(["aaa"]);
  });

  it("ignores rules of directions the policy does not enforce or the panic policy does not cover", () => {
    const conflicts = findConflicts(
      { ...settings, types: ["Ingress"] },
      inventory([
        gnp("egress-deny", { order: 1, types: ["Egress"], egress: [deny] }),
        // types omitted with no egress rules: Calico enforces ingress only, so the egress list is inert.
        gnp("inert", { order: 1, ingress: [allowAll] }),
        gnp("ingress-deny", { order: 1, types: ["Ingress", "Egress"], ingress: [deny], egress: [deny] }),
      ]),
    );
    expect(conflicts.map((c) => c.name)).toEqual(["ingress-deny"]);
    expect(conflicts[0]?.reasons).toEqual(["Deny rule (Ingress) evaluated before the panic policy"]);
  });

  it("takes types as Calico does when a policy omits them: from the rules it has", () => {
    const covered = (spec: Record<string, unknown>) =>
      findConflicts(settings, inventory([gnp("p", { order: 1, ...spec })]))[0]?.reasons ?? [];
    // Egress rules alone: an egress policy; pods it selects keep their ingress as it was.
    expect(covered({ egress: [deny] })).toEqual(["Deny rule (Egress) evaluated before the panic policy"]);
    expect(covered({ egress: [allowAll] })).toEqual([]);
    // Both kinds: both directions.
    expect(covered({ ingress: [allowAll], egress: [deny] })).toEqual([
      "Deny rule (Egress) evaluated before the panic policy",
    ]);
    // In an earlier tier, an egress policy that allows everything drops no ingress at the tier's end.
    const earlier = findConflicts(
      settings,
      inventory(
        [gnp("security.egress-only", { tier: "security", order: 1, egress: [allowAll] })],
        [],
        [defaultTier, tier("security", 100)],
      ),
    );
    expect(earlier.map((c) => c.name)).toEqual([]);
  });

  it("never lists the panic policy itself, in either naming, nor staged policies", () => {
    const conflicts = findConflicts(
      settings,
      inventory([
        gnp("allow-all", { order: 1, ingress: [deny] }),
        gnp("default.allow-all", { order: 1, ingress: [deny] }),
        { ...gnp("staged", { order: 1, ingress: [deny] }), kind: "StagedGlobalNetworkPolicy" },
      ]),
    );
    expect(conflicts).toEqual([]);
  });

  it("lists earlier tiers that end in Deny and their policies that do not end in Allow or Pass", () => {
    const conflicts = findConflicts(
      settings,
      inventory(
        [
          gnp("security.block", {
            tier: "security",
            order: 1,
            ingress: [{ action: "Deny", source: { nets: ["10.0.0.0/8"] } }, { action: "Pass" }],
          }),
          gnp("security.open", {
            tier: "security",
            order: 2,
            types: ["Ingress", "Egress"],
            ingress: [{ action: "Pass" }],
            egress: [{ action: "Log" }, allowAll],
          }),
          gnp("security.narrow", {
            tier: "security",
            order: 3,
            ingress: [{ action: "Allow", protocol: "TCP" }],
          }),
          gnp("platform.pass", {
            tier: "platform",
            order: 1,
            ingress: [{ action: "Allow", protocol: "UDP" }],
          }),
          gnp("late.deny", { tier: "late", order: 1, ingress: [deny] }),
        ],
        [],
        [defaultTier, tier("security", 100), tier("platform", 200, "Pass"), tier("late", 2_000_000)],
      ),
    );
    expect(conflicts.map((c) => [c.kind, c.name])).toEqual([
      ["Tier", "security"],
      ["GlobalNetworkPolicy", "security.block"],
      ["GlobalNetworkPolicy", "security.narrow"],
    ]);
    expect(conflicts[1]?.reasons).toEqual([
      expect.stringContaining('Deny rule (Ingress) in tier "security" (order 100)'),
    ]);
    expect(conflicts[2]?.reasons).toEqual([
      expect.stringContaining('is dropped at the end of tier "security"'),
    ]);
  });

  it("puts the default tier at order 1,000,000 when the cluster does not list it", () => {
    const conflicts = findConflicts(
      settings,
      inventory(
        [
          gnp("early.deny", { tier: "early", order: 1, ingress: [deny] }),
          gnp("after.deny", { tier: "after", order: 1, ingress: [deny] }),
        ],
        [],
        [tier("early", 999_999), tier("after", 1_000_001)],
      ),
    );
    expect(conflicts.map((c) => c.name)).toEqual(["early", "early.deny"]);
  });

  it("treats an unordered tier as evaluated last", () => {
    const conflicts = findConflicts(
      { ...settings, tier: "emergency" },
      inventory(
        [gnp("default.deny", { order: 1, ingress: [deny] })],
        [],
        [defaultTier, tier("emergency", undefined)],
      ),
    );
    expect(conflicts.map((c) => c.name)).toContain("default.deny");
  });

  it("lists doNotTrack and preDNAT policies with Deny rules whatever their tier and order", () => {
    const conflicts = findConflicts(
      settings,
      inventory([
        gnp("host-untracked", { order: 9000, doNotTrack: true, applyOnForward: true, ingress: [deny] }),
        gnp("host-prednat", { order: 9000, preDNAT: true, applyOnForward: true, ingress: [allowAll] }),
      ]),
    );
    expect(conflicts.map((c) => c.name)).toEqual(["host-untracked"]);
    expect(conflicts[0]?.reasons[0]).toContain("doNotTrack");
  });

  it("describes a conflict on one line", () => {
    const [c] = findConflicts(
      settings,
      inventory([], [np("shop", "deny-db", { order: 1, ingress: [deny] })]),
    );
    expect(c).toBeDefined();
    expect(describeConflict(c as NonNullable<typeof c>)).toBe(
      "NetworkPolicy shop/deny-db (tier default, order 1): Deny rule (Ingress) evaluated before the panic policy",
    );
  });
});
