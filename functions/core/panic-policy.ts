// The panic policy (the runbook's hand-written "allow-all" GlobalNetworkPolicy) as a pure function of its
// settings, the marks that say calico-flows owns it, and the analysis of which Calico policies are still
// evaluated before it and can drop traffic anyway. No I/O: the Kubernetes adapter lists, this decides.
import type { Deadline } from "./deadline.ts";

export const CALICO_API_GROUPS = ["projectcalico.org/v3", "crd.projectcalico.org/v1"] as const;
export type CalicoApiGroup = (typeof CALICO_API_GROUPS)[number];

export const POLICY_TYPES = ["Ingress", "Egress"] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

/** Marks that identify a policy calico-flows created, and say who applied it, why and until when. */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "calico-flows";
export const ANNOTATIONS = {
  reason: "calico-flows.io/reason",
  requester: "calico-flows.io/requester",
  appliedAt: "calico-flows.io/applied-at",
  expiresAt: "calico-flows.io/expires-at",
  /** On a policy taken over with force: the policy it replaced, which revert and the expiry put back. */
  replaced: "calico-flows.io/replaced-policy",
} as const;
/** Kubernetes' limit on an object's annotations, keys and values together, in bytes (UTF-8). */
export const ANNOTATIONS_MAX_BYTES = 256 * 1024;
/** Value of the expiry annotation for a policy that stays until reverted. */
export const NEVER_EXPIRES = "never";
/** The field manager of every panic write (create and replace). */
export const FIELD_MANAGER = "calico-flows-panic";
/** Order of the `default` tier in Calico 3.26+, used when the cluster does not list the tier object. */
export const DEFAULT_TIER_ORDER = 1_000_000;
export const DEFAULT_TIER = "default";

export interface PanicPolicySettings {
  apiGroup: CalicoApiGroup;
  /** Policy name without tier prefix, e.g. `allow-all`. */
  name: string;
  namespaceSelector: string;
  order: number;
  tier: string;
  types: readonly PolicyType[];
}

export const DEFAULT_PANIC_SETTINGS: PanicPolicySettings = {
  apiGroup: "projectcalico.org/v3",
  name: "allow-all",
  namespaceSelector: "baseten.co/organization == 'true'",
  order: 100,
  tier: DEFAULT_TIER,
  types: ["Ingress", "Egress"],
};

/** Who applied the panic policy, why, when, and until when (null: until reverted). */
export interface PanicStamp {
  reason: string;
  requester: string;
  appliedAt: string;
  expiresAt: string | null;
}

// Calico resource shapes, limited to the fields the panic button reads or writes.
export interface CalicoRule {
  action?: string;
  protocol?: unknown;
  notProtocol?: unknown;
  icmp?: unknown;
  notICMP?: unknown;
  ipVersion?: unknown;
  source?: Record<string, unknown>;
  destination?: Record<string, unknown>;
  http?: unknown;
  metadata?: unknown;
}

export interface CalicoPolicySpec {
  tier?: string;
  order?: number;
  selector?: string;
  namespaceSelector?: string;
  serviceAccountSelector?: string;
  types?: string[];
  ingress?: CalicoRule[];
  egress?: CalicoRule[];
  doNotTrack?: boolean;
  preDNAT?: boolean;
  applyOnForward?: boolean;
}

export interface CalicoObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  managedFields?: unknown[];
}

export interface CalicoPolicy {
  apiVersion: string;
  kind: string;
  metadata: CalicoObjectMeta;
  spec: CalicoPolicySpec;
}

export interface CalicoTier {
  apiVersion?: string;
  kind?: string;
  metadata: CalicoObjectMeta;
  spec?: { order?: number; defaultAction?: string };
}

/**
 * Name of the policy object. Calico before 3.30 requires a policy in a non-default tier to be named
 * `<tier>.<name>`, and 3.30+ still accepts that form, so it is the one name that works everywhere.
 */
export function policyObjectName(settings: Pick<PanicPolicySettings, "name" | "tier">): string {
  const { name, tier } = settings;
  return tier === DEFAULT_TIER || name.startsWith(`${tier}.`) ? name : `${tier}.${name}`;
}

/** A policy name without its tier prefix (the CRD backend stores `default.<name>` in some versions). */
export function baseName(name: string, tier: string): string {
  return name.startsWith(`${tier}.`) ? name.slice(tier.length + 1) : name;
}

/** The document applied to the cluster: allow everything, for the configured namespaces and directions. */
export function panicPolicyDocument(settings: PanicPolicySettings, stamp: PanicStamp): CalicoPolicy {
  const covers = (type: PolicyType) => settings.types.includes(type);
  return {
    apiVersion: settings.apiGroup,
    kind: "GlobalNetworkPolicy",
    metadata: {
      name: policyObjectName(settings),
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      annotations: {
        [ANNOTATIONS.reason]: stamp.reason,
        [ANNOTATIONS.requester]: stamp.requester,
        [ANNOTATIONS.appliedAt]: stamp.appliedAt,
        [ANNOTATIONS.expiresAt]: stamp.expiresAt ?? NEVER_EXPIRES,
      },
    },
    spec: {
      tier: settings.tier,
      order: settings.order,
      namespaceSelector: settings.namespaceSelector,
      types: [...settings.types],
      ...(covers("Ingress") ? { ingress: [{ action: "Allow" }] } : {}),
      ...(covers("Egress") ? { egress: [{ action: "Allow" }] } : {}),
    },
  };
}

export function isManagedByCalicoFlows(policy: Pick<CalicoPolicy, "metadata">): boolean {
  return policy.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}

/** The stamp carried by a policy's annotations, or null when it carries none (not ours, or hand-made). */
export function readStamp(policy: Pick<CalicoPolicy, "metadata">): PanicStamp | null {
  const a = policy.metadata.annotations ?? {};
  const reason = a[ANNOTATIONS.reason];
  const requester = a[ANNOTATIONS.requester];
  if (reason === undefined || requester === undefined) return null;
  const expires = a[ANNOTATIONS.expiresAt];
  return {
    reason,
    requester,
    appliedAt: a[ANNOTATIONS.appliedAt] ?? policy.metadata.creationTimestamp ?? "",
    expiresAt: expires === undefined || expires === NEVER_EXPIRES ? null : expires,
  };
}

/**
 * What a take-over keeps of a foreign policy, for revert to put back: what its owner wrote (spec, labels,
 * annotations), none of the API server's bookkeeping (uid, resourceVersion, managedFields…), as JSON.
 */
export function keptCopy(policy: CalicoPolicy): string {
  const { name, labels, annotations } = policy.metadata;
  const metadata: CalicoObjectMeta = {
    name,
    ...(labels === undefined ? {} : { labels }),
    ...(annotations === undefined ? {} : { annotations }),
  };
  return JSON.stringify({ apiVersion: policy.apiVersion, kind: policy.kind, metadata, spec: policy.spec });
}

/**
 * The policy a panic policy took over, as keptCopy wrote it: null when it replaced none; an Error when the copy
 * is there but cannot be read (edited by hand).
 */
export function replacedPolicy(policy: Pick<CalicoPolicy, "metadata">): CalicoPolicy | Error | null {
  const text = policy.metadata.annotations?.[ANNOTATIONS.replaced];
  if (text === undefined) return null;
  try {
    const copy = JSON.parse(text) as Partial<CalicoPolicy> | null;
    // No spec is what keptCopy writes of a policy stored without one (the CRDs do not require it).
    const usable =
      typeof copy?.metadata?.name === "string" &&
      (copy.spec === undefined || (typeof copy.spec === "object" && copy.spec !== null));
    return usable ? (copy as CalicoPolicy) : new Error(`${ANNOTATIONS.replaced} is not a policy`);
  } catch (error) {
    return error as Error;
  }
}

/** The size Kubernetes counts against ANNOTATIONS_MAX_BYTES: every key and value, in UTF-8 bytes. */
export function annotationBytes(annotations: Readonly<Record<string, string>>): number {
  const encoder = new TextEncoder();
  return Object.entries(annotations).reduce(
    (sum, [key, value]) => sum + encoder.encode(key).length + encoder.encode(value).length,
    0,
  );
}

/** Expiry instant for a TTL: null for 0 (never). */
export function expiryOf(now: Date, ttlMinutes: number): string | null {
  return ttlMinutes === 0 ? null : new Date(now.getTime() + ttlMinutes * 60_000).toISOString();
}

// ---------------------------------------------------------------------------------------------------------
// Conflict analysis
// ---------------------------------------------------------------------------------------------------------

export interface PolicyConflict {
  kind: "GlobalNetworkPolicy" | "NetworkPolicy" | "Tier";
  name: string;
  /** Namespace of a namespaced NetworkPolicy, else null. */
  namespace: string | null;
  tier: string;
  /** The policy's (or tier's) order; null = evaluated last. */
  order: number | null;
  /** Why it can still drop traffic the panic policy is meant to allow. */
  reasons: string[];
}

export interface PolicyInventory {
  tiers: readonly CalicoTier[];
  globalPolicies: readonly CalicoPolicy[];
  namespacedPolicies: readonly CalicoPolicy[];
}

interface Position {
  order: number | null;
  name: string;
}

/** Calico's evaluation order: ascending `order`, unordered last, ties broken by name. */
function comparePosition(a: Position, b: Position): number {
  const ao = a.order ?? Number.POSITIVE_INFINITY;
  const bo = b.order ?? Number.POSITIVE_INFINITY;
  if (ao !== bo) return ao < bo ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The directions a policy enforces: its `types`, or Calico's default when it has none. */
export function effectiveTypes(spec: CalicoPolicySpec): PolicyType[] {
  if (spec.types !== undefined && spec.types.length > 0) {
    return POLICY_TYPES.filter((t) => spec.types?.includes(t));
  }
  // Calico's default when types is omitted, by the rules present: egress rules alone give [Egress], both kinds
  // [Ingress, Egress], ingress rules alone or none [Ingress].
  const ingress = (spec.ingress?.length ?? 0) > 0;
  const egress = (spec.egress?.length ?? 0) > 0;
  return egress ? (ingress ? ["Ingress", "Egress"] : ["Egress"]) : ["Ingress"];
}

function rulesOf(spec: CalicoPolicySpec, type: PolicyType): CalicoRule[] {
  return (type === "Ingress" ? spec.ingress : spec.egress) ?? [];
}

const MATCH_FIELDS = ["protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "http"] as const;

function isEmptyMatch(value: Record<string, unknown> | undefined): boolean {
  return value === undefined || Object.values(value).every((v) => v === undefined || v === null);
}

/** A rule with no match criteria: it matches every packet of its direction. */
function isCatchAll(rule: CalicoRule): boolean {
  return (
    MATCH_FIELDS.every((f) => rule[f] === undefined || rule[f] === null) &&
    isEmptyMatch(rule.source) &&
    isEmptyMatch(rule.destination)
  );
}

/** True when every packet in this direction ends in an Allow or Pass of the policy (never falls through). */
function endsInAllowOrPass(rules: readonly CalicoRule[]): boolean {
  for (const rule of rules) {
    if (!isCatchAll(rule)) continue;
    // The first catch-all rule decides (Log continues to the next rule).
    if (rule.action === "Log") continue;
    return rule.action === "Allow" || rule.action === "Pass";
  }
  return false;
}

function describeTier(name: string, order: number | null): string {
  return `tier "${name}" (order ${order ?? "unset: last"})`;
}

/**
 * Policies and tiers Calico evaluates before the panic policy that can still drop the traffic it allows.
 * The heuristic (docs/panic.md explains it):
 * - same tier, evaluated earlier (lower order, or same order and a lower name): listed when a rule in a
 *   direction the panic policy covers is `Deny` (a `Log` followed by `Deny` included) or `Pass` (which skips
 *   the rest of the tier, allow-all included). Allow-only policies are harmless: unmatched traffic falls
 *   through to allow-all.
 * - tiers ordered before the panic tier: policies with a `Deny` rule; and, when the tier's `defaultAction`
 *   is `Deny` (Calico's default), the tier itself and each of its policies that does not end in a catch-all
 *   Allow or Pass, because traffic those policies select and nothing allows is dropped at the end of the tier.
 * - `doNotTrack` and `preDNAT` policies (host endpoints, evaluated before normal policy) with a `Deny` rule,
 *   and `applyOnForward` policies with a `Deny` rule (at host endpoints they also filter forwarded pod traffic),
 *   whatever their tier and order: the panic policy selects no host endpoint.
 * Selectors are not evaluated: a listed policy may select none of the customer namespaces.
 * Staged policies do not enforce and are never listed.
 */
export function findConflicts(settings: PanicPolicySettings, inventory: PolicyInventory): PolicyConflict[] {
  const tierOrders = new Map<string, number | null>();
  const tierDefaultDeny = new Map<string, boolean>();
  for (const tier of inventory.tiers) {
    tierOrders.set(tier.metadata.name, tier.spec?.order ?? null);
    tierDefaultDeny.set(tier.metadata.name, (tier.spec?.defaultAction ?? "Deny") === "Deny");
  }
  const tierOrder = (name: string): number | null =>
    tierOrders.has(name) ? (tierOrders.get(name) ?? null) : name === DEFAULT_TIER ? DEFAULT_TIER_ORDER : null;
  const panicTier: Position = { order: tierOrder(settings.tier), name: settings.tier };
  const panicPosition: Position = { order: settings.order, name: policyObjectName(settings) };
  const covered = settings.types;

  const conflicts: Array<PolicyConflict & { sortKey: [Position, Position] }> = [];
  const denyTiersWithPolicies = new Set<string>();

  const policies = [
    ...inventory.globalPolicies.map((p) => ({ p, kind: "GlobalNetworkPolicy" as const })),
    ...inventory.namespacedPolicies.map((p) => ({ p, kind: "NetworkPolicy" as const })),
  ];
  for (const { p, kind } of policies) {
    if (p.kind.startsWith("Staged")) continue;
    const spec = p.spec ?? {};
    const tier = spec.tier ?? DEFAULT_TIER;
    const ours =
      kind === "GlobalNetworkPolicy" &&
      tier === settings.tier &&
      baseName(p.metadata.name, tier) === settings.name;
    if (ours) continue;

    const directions = effectiveTypes(spec).filter((t) => covered.includes(t));
    const withAction = (action: string) =>
      directions.filter((t) => rulesOf(spec, t).some((r) => r.action === action));
    const denies = withAction("Deny");
    const reasons: string[] = [];
    const position: Position = { order: spec.order ?? null, name: p.metadata.name };
    const tierPosition: Position = { order: tierOrder(tier), name: tier };

    if (spec.doNotTrack === true || spec.preDNAT === true) {
      if (denies.length > 0) {
        const mode = spec.doNotTrack === true ? "doNotTrack" : "preDNAT";
        reasons.push(
          `${mode} policy with a Deny rule (${denies.join(", ")}): evaluated before normal policy`,
        );
      }
    } else {
      const tierCmp = comparePosition(tierPosition, panicTier);
      if (tierCmp === 0 && comparePosition(position, panicPosition) < 0) {
        if (denies.length > 0)
          reasons.push(`Deny rule (${denies.join(", ")}) evaluated before the panic policy`);
        const passes = withAction("Pass");
        if (passes.length > 0) {
          reasons.push(
            `Pass rule (${passes.join(", ")}) skips the rest of the tier, the panic policy included`,
          );
        }
      } else if (tierCmp < 0) {
        if (denies.length > 0) {
          reasons.push(
            `Deny rule (${denies.join(", ")}) in ${describeTier(tier, tierPosition.order)}, evaluated first`,
          );
        }
        if (tierDefaultDeny.get(tier) ?? true) {
          const open = directions.filter((t) => !endsInAllowOrPass(rulesOf(spec, t)));
          if (open.length > 0) {
            denyTiersWithPolicies.add(tier);
            reasons.push(
              `selected traffic that no rule allows or passes (${open.join(", ")}) is dropped at the end of ` +
                `${describeTier(tier, tierPosition.order)}, whose defaultAction is Deny`,
            );
          }
        }
      }
    }
    // (Only a GlobalNetworkPolicy selects host endpoints: a namespaced policy applies to its namespace's pods.)
    const forwarding =
      kind === "GlobalNetworkPolicy" &&
      spec.applyOnForward === true &&
      spec.doNotTrack !== true &&
      spec.preDNAT !== true;
    if (forwarding && denies.length > 0) {
      // At a host endpoint, an applyOnForward policy also filters traffic the host forwards to and from its
      // pods. That is the host endpoint's own evaluation, which the panic policy (workload endpoints only) takes
      // no part in: its tier and order do not matter.
      reasons.push(
        `applyOnForward policy with a Deny rule (${denies.join(", ")}): at host endpoints it filters pod ` +
          "traffic the host forwards, which the panic policy does not select",
      );
    }
    if (reasons.length > 0) {
      conflicts.push({
        kind,
        name: p.metadata.name,
        namespace: kind === "NetworkPolicy" ? (p.metadata.namespace ?? null) : null,
        tier,
        order: spec.order ?? null,
        reasons,
        sortKey: [tierPosition, position],
      });
    }
  }
  for (const tier of denyTiersWithPolicies) {
    const order = tierOrder(tier);
    conflicts.push({
      kind: "Tier",
      name: tier,
      namespace: null,
      tier,
      order,
      reasons: [
        `evaluated before tier "${settings.tier}" with defaultAction Deny: traffic selected by its policies ` +
          "that none of them allows or passes never reaches the panic policy",
      ],
      // A tier sorts before its own policies.
      sortKey: [
        { order, name: tier },
        { order: Number.NEGATIVE_INFINITY, name: "" },
      ],
    });
  }
  conflicts.sort(
    (a, b) => comparePosition(a.sortKey[0], b.sortKey[0]) || comparePosition(a.sortKey[1], b.sortKey[1]),
  );
  return conflicts.map(({ sortKey: _, ...c }) => c);
}

/** One line per conflict, for humans (CLI output, SNS text). */
export function describeConflict(c: PolicyConflict): string {
  const where =
    c.kind === "Tier"
      ? `Tier ${c.name}`
      : `${c.kind} ${c.namespace === null ? "" : `${c.namespace}/`}${c.name} (tier ${c.tier}, order ${c.order ?? "unset"})`;
  return `${where}: ${c.reasons.join("; ")}`;
}

// ---------------------------------------------------------------------------------------------------------
// The I/O the panic service depends on (implementations in functions/adapters/)
// ---------------------------------------------------------------------------------------------------------

/** Failures the API and the CLI turn into an actionable answer; `kind` decides the HTTP status. */
export type PanicFailureKind =
  /** 400: the request is invalid (`field` names what). */
  | "invalid"
  /** 409: a policy of that name exists that calico-flows did not create. */
  | "not-owned"
  /** 409: the policy kept changing under us (concurrent writers). */
  | "conflict"
  /** 502: the Kubernetes API refused our credentials (401) or permissions (403). */
  | "kube-access"
  /** 502: the Calico API group is not served by the cluster. */
  | "api-missing"
  /** 502: the Kubernetes API rejected the policy document (a configuration problem: selector, tier, order). */
  | "kube-rejected"
  /** 502/504: the Kubernetes API could not be reached or answered with an error. */
  | "kube-unavailable";

export class PanicFailure extends Error {
  override name = "PanicFailure";
  readonly kind: PanicFailureKind;
  readonly field: string | undefined;

  constructor(kind: PanicFailureKind, message: string, options?: { cause?: unknown; field?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.field = options?.field;
  }
}

/**
 * A Kubernetes request cut short, or not sent, because the request's deadline came first; or a write given up on
 * after it went out (its own timeout, a connection lost before the answer): a `kube-unavailable` failure (502, like
 * any Kubernetes timeout), told apart so that the service can say what was and was not done.
 */
export class OutOfTime extends PanicFailure {
  override name = "OutOfTime";
  /** A write went out and was given up on: the API server may still carry it out (its outcome is unknown). */
  readonly sent: boolean;

  constructor(message: string, options: { cause?: unknown; sent: boolean }) {
    super("kube-unavailable", message, { cause: options.cause });
    this.sent = options.sent;
  }
}

/** Per-call limits of the Calico store. */
export interface KubeCallOptions {
  /** Every request of the call ends by then (OutOfTime), each within its own timeout as well. */
  deadline?: Deadline;
}

/** Calico policies and tiers in one API group (projectcalico.org/v3 or crd.projectcalico.org/v1). */
export interface CalicoPolicyStore {
  readonly apiGroup: CalicoApiGroup;
  getGlobalPolicy(name: string, options?: KubeCallOptions): Promise<CalicoPolicy | null>;
  /**
   * Creates it (POST) under FIELD_MANAGER: a "conflict" PanicFailure when a policy of that name exists, however
   * alike, so that one made by someone else meanwhile is never adopted.
   */
  createGlobalPolicy(policy: CalicoPolicy, options?: KubeCallOptions): Promise<CalicoPolicy>;
  /** Full replacement (PUT) with `metadata.resourceVersion` as precondition: removes every foreign field. */
  replaceGlobalPolicy(policy: CalicoPolicy, options?: KubeCallOptions): Promise<CalicoPolicy>;
  /** Deletes with uid + resourceVersion preconditions; false when it was already gone. */
  deleteGlobalPolicy(
    name: string,
    preconditions: { uid?: string; resourceVersion?: string },
    options?: KubeCallOptions,
  ): Promise<boolean>;
  /** Every tier: the panic tier must exist before anything is written. */
  listTiers(options?: KubeCallOptions): Promise<CalicoTier[]>;
  /**
   * Every global and namespaced policy, for the conflict list: listed apart from the tiers because on a large
   * cluster it is the slow part, and it only informs.
   */
  listPolicies(options?: KubeCallOptions): Promise<Omit<PolicyInventory, "tiers">>;
}

export const EXPIRY_EVENT_SOURCE = "calico-flows.expiry";

/** What the expiry schedule sends the panic function. */
export interface ExpiryEvent {
  source: typeof EXPIRY_EVENT_SOURCE;
  action: "revert";
  cluster: string;
  policyName: string;
  /** The expiry this schedule was made for: a policy refreshed since then is left alone. */
  expiresAt: string;
}

export interface ScheduleExpiryRequest {
  cluster: string;
  policyName: string;
  expiresAt: string;
  /** The function the schedule invokes (the panic function's own ARN). */
  functionArn: string;
}

export interface ExpiryScheduler {
  /** Creates or moves the one expiry schedule of this cluster and policy; returns its name. */
  schedule(request: ScheduleExpiryRequest): Promise<string>;
  /** Deletes it; false when there was none. */
  cancel(cluster: string, policyName: string): Promise<boolean>;
  /**
   * The schedule as it stands, null when there is none. Status checks with it that an applied policy's expiry is
   * still to come; a scheduler without it leaves that unchecked.
   */
  scheduledExpiry?(cluster: string, policyName: string): Promise<ScheduledExpiry | null>;
}

/** An expiry schedule as Scheduler holds it. */
export interface ScheduledExpiry {
  /** The expiry its revert event carries. */
  expiresAt: string;
  /** `ENABLED` or `DISABLED` (a disabled schedule never runs). */
  state: string | undefined;
  /** The ARN it invokes. */
  target: string | undefined;
}

export type PanicAction = "apply" | "dry-run" | "revert" | "expire";
/**
 * How an action ended: "unknown" for a write that was sent and not confirmed (a timeout, a connection lost, a 504):
 * the API server may have carried it out, as the answer's `outcome: "unknown"` says.
 */
export type PanicOutcome = "success" | "refused" | "failed" | "unknown";

/** One audited panic-button action. */
export interface PanicAuditEntry {
  cluster: string;
  at: string;
  action: PanicAction;
  outcome: PanicOutcome;
  /** What happened, e.g. "applied", "refreshed", "taken-over", "reverted", "not-applied", "not-owned". */
  result: string;
  requester: string;
  reason: string;
  /** Where the request came from: "api", "cli" (--direct) or "schedule". */
  via: string;
  policyName: string;
  expiresAt: string | null;
  conflicts: PolicyConflict[];
  /**
   * How many conflicts there were, of which a record keeps only the first (`conflicts`), so that it fits in one
   * DynamoDB item: set on the entries read back.
   */
  conflictCount?: number;
  message: string;
  /**
   * The policy a take-over replaced, as the panic policy keeps it (ANNOTATIONS.replaced): on a take-over, and on a
   * revert or expiry that did not put it back. Kept when it fits the record; its digest always.
   */
  replacedPolicy?: string;
  /** SHA-256 (hex) of `replacedPolicy`: set on the entries read back. */
  replacedPolicySha256?: string;
}

export interface PanicAuditLog {
  record(entry: PanicAuditEntry): Promise<void>;
  /** Most recent first. */
  recent(cluster: string, limit: number): Promise<PanicAuditEntry[]>;
}
