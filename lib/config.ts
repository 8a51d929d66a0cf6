// The CDK app's configuration: read from CDK context once (bin/app.ts), validated here, then passed down as
// typed props. Context comes from cdk.json (JSON values) or `-c key=value` (always strings), so every
// field accepts both forms: lists as JSON arrays or comma-separated, numbers and booleans as text.
import * as z from "zod";
import {
  CidrSet,
  checkWorkloadInterfacePrefixes,
  cidrProblem,
  DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
} from "../functions/core/classify.ts";
import { checkSettings } from "../functions/core/ingest.ts";
import {
  CALICO_API_GROUPS,
  type CalicoApiGroup,
  DEFAULT_PANIC_SETTINGS,
  POLICY_TYPES,
  type PolicyType,
} from "../functions/core/panic-policy.ts";
import { MAX_AGGREGATION_SECONDS } from "../functions/ingest/config.ts";
import { MAX_TTL_MINUTES } from "../functions/panic/service.ts";

/** Values CloudWatch Logs accepts as a log group retention, in days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

export interface PanicPolicyConfig {
  /** Name of the GlobalNetworkPolicy the panic button applies. */
  readonly name: string;
  /** Calico selector of the namespaces it opens up. */
  readonly namespaceSelector: string;
  /** Policy order: lower wins, so it must undercut the policies that deny. */
  readonly order: number;
  /** Calico tier the policy is created in. */
  readonly tier: string;
  /** Directions the policy allows. */
  readonly types: readonly PolicyType[];
}

export interface CalicoFlowsConfig {
  /** Stack name, so several clusters can be served from one account. */
  readonly stackName: string;
  /** The existing EKS cluster the system watches. */
  readonly clusterName: string;
  /** CloudWatch Logs groups the nodes' kernel logs are shipped to; each gets one subscription filter. */
  readonly logGroupNames: readonly string[];
  /** Felix log prefix; the subscription filter matches it as a term. */
  readonly logPrefix: string;
  /** Felix `logPrefix` format (`%t %k %n %p`) when the prefix carries the policy; unset: plain prefix. */
  readonly logPrefixFormat: string | undefined;
  /** Private ranges of the cluster: a denial with both ends inside is an internal one and raises an alert. */
  readonly internalCidrs: readonly string[];
  /**
   * Interface-name prefixes of pods' interfaces (Felix's `InterfacePrefix`, and a chained CNI's), which decide a
   * flow's direction; unset: the function's default (`cali`, `eni`, `vlan`).
   */
  readonly workloadInterfacePrefixes: readonly string[] | undefined;
  /** Addresses subscribed to the alerts topic (internal denials, panic announcements). */
  readonly alertEmails: readonly string[];
  /** Addresses subscribed to the operations topic (alarms on the system itself). */
  readonly operationsEmails: readonly string[];
  /** IAM principals (ARN patterns) allowed to press, inspect and revert the panic button. */
  readonly panicPrincipalArns: readonly string[];
  readonly panicPolicy: PanicPolicyConfig;
  /** Minutes after which an applied panic policy reverts itself; 0 keeps it until reverted by hand. */
  readonly panicTtlMinutes: number;
  /** API group/version serving GlobalNetworkPolicy: the Calico API server, or the CRDs directly. */
  readonly calicoApiGroup: CalicoApiGroup;
  /** Days flow and alert items are kept (DynamoDB TTL). */
  readonly retentionDays: number;
  /** Days the functions' and the API's logs are kept. */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Width of a flow's time bucket. */
  readonly aggregationSeconds: number;
  /** One alert per key per window of this length. */
  readonly alertWindowMinutes: number;
  /** Whether this stack creates the EKS access entries of its functions. */
  readonly manageClusterAccess: boolean;
  /** "eks": attribute IPs through the cluster's API; "none": store flows with IPs only. */
  readonly attribution: "eks" | "none";
  /** Namespace labels copied onto attributed endpoints. */
  readonly namespaceLabelKeys: readonly string[];
  /** Alert on an external source denied on at least this many ports or destinations; unset: no scan alerts. */
  readonly scanThreshold: number | undefined;
  /** Most alerts raised per delivery; unset: the function's default. */
  readonly alertCap: number | undefined;
  /** Concurrency reserved for the panic function; unset: none, it shares the account's pool. */
  readonly panicReservedConcurrency: number | undefined;
}

/** The panic function's own defaults, so an unset override means the same thing here and there. */
export const PANIC_POLICY_DEFAULTS: PanicPolicyConfig = {
  name: DEFAULT_PANIC_SETTINGS.name,
  namespaceSelector: DEFAULT_PANIC_SETTINGS.namespaceSelector,
  order: DEFAULT_PANIC_SETTINGS.order,
  tier: DEFAULT_PANIC_SETTINGS.tier,
  types: DEFAULT_PANIC_SETTINGS.types,
};

/** Bare group names, as people usually write them, mean the version each group serves. */
const API_GROUP_ALIASES: Record<string, CalicoApiGroup> = {
  "projectcalico.org": "projectcalico.org/v3",
  "crd.projectcalico.org": "crd.projectcalico.org/v1",
};

/** `-c key=a,b` and `-c key='["a","b"]'` both give a list; cdk.json gives one already. */
function list(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const text = value.trim();
  if (text.startsWith("[")) {
    try {
      return JSON.parse(text);
    } catch {
      return value;
    }
  }
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function integer(value: unknown): unknown {
  return typeof value === "string" && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
}

function boolean(value: unknown): unknown {
  if (value === "true") return true;
  if (value === "false") return false;
  return value;
}

function object(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

const int = (min: number, max: number) =>
  z.preprocess(
    integer,
    // Each check names its own bound: the schema's `error` would otherwise answer for them too.
    z
      .number({ error: "expected an integer" })
      .int("expected an integer")
      .min(min, `expected an integer from ${min} to ${max}`)
      .max(max, `expected an integer from ${min} to ${max}`),
  );

// EKS and CloudWatch Logs naming rules, so a typo fails at synth rather than half-way through a deploy.
const clusterName = z
  .string({ error: "expected the EKS cluster name" })
  .regex(/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/, "not a valid EKS cluster name");
// CloudWatch Logs takes names of up to 512 characters, but each group's alarms read metrics by its name as a
// dimension value, which CloudWatch limits to 255.
const logGroupName = z
  .string()
  .regex(/^[.\-_/#A-Za-z0-9]{1,512}$/, "not a valid CloudWatch Logs group name")
  .max(
    255,
    "longer than 255 characters: its alarms read metrics by the name as a dimension value, which CloudWatch limits to 255",
  );
// Matched against aws:PrincipalArn with ArnLike (lib/api.ts): `*` and `?` (one character) may stand in the name,
// never for the account. An IAM Identity Center role is AWSReservedSSO_<permission set>_<16 hex> and a set's name
// may hold `_`: 16 `?` name one set's role, where `_*` also admits `<set>_ReadOnly`'s.
const principalArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/*?-]+$/,
    "expected an IAM role or user ARN (aws:PrincipalArn of a session is its role), e.g. arn:aws:iam::123456789012:role/oncall",
  );
// The prefix goes into a quoted filter pattern term and into Felix's rules: no quotes, no spaces.
const logPrefix = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,27}$/, "expected 1-27 characters: letters, digits, _ . : -");

// `[prefix/]name`, as Kubernetes defines label keys; the ingest function reads them back split on commas.
const labelKey = z
  .string()
  .regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    "expected a Kubernetes label key, e.g. example.com/team",
  );

const unique = (items: readonly string[]) => new Set(items).size === items.length;
/** An address given twice would make two subscriptions of one ID (a synth error); compared without case, as mail is. */
const uniqueAddresses = (items: readonly string[]) => unique(items.map((item) => item.toLowerCase()));
const REPEATED_ADDRESS = "addresses must not repeat";

const Context = z
  .object({
    stackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, "not a valid CloudFormation stack name")
      .default("CalicoFlows"),
    clusterName,
    logGroupNames: z.preprocess(
      list,
      z
        .array(logGroupName, { error: "expected a list of log group names" })
        .min(1, "at least one node log group is needed")
        .refine(unique, "log group names must not repeat"),
    ),
    logPrefix: logPrefix.default("calico-packet"),
    logPrefixFormat: z.string().min(1).optional(),
    internalCidrs: z
      .preprocess(
        list,
        z
          .array(
            z.union([z.cidrv4(), z.cidrv6()], {
              // What is wrong, in the words the ingest function and the CLI use (a prefix length past the family's
              // longest); the generic message only for what zod refuses and they take (`10.0.0.0/08`).
              error: (issue) =>
                (typeof issue.input === "string" ? cidrProblem(issue.input) : undefined) ??
                "expected an IPv4 or IPv6 CIDR",
            }),
          )
          .min(1, "at least one internal CIDR is needed")
          // Exactly what the ingest function will take (an IPv4-mapped range, say, it refuses at every start).
          .superRefine((cidrs, ctx) => {
            try {
              new CidrSet(cidrs);
            } catch (error) {
              ctx.addIssue({ code: "custom", message: (error as Error).message });
            }
          }),
      )
      .default(["192.168.0.0/16"]),
    // Checked as the ingest function checks WORKLOAD_INTERFACE_PREFIXES, which it is passed as.
    workloadInterfacePrefixes: z
      .preprocess(
        list,
        z
          .array(z.string({ error: "expected an interface name prefix" }), {
            error: "expected a list of interface name prefixes",
          })
          .superRefine((prefixes, ctx) => {
            try {
              checkWorkloadInterfacePrefixes(prefixes);
            } catch (error) {
              ctx.addIssue({ code: "custom", message: (error as Error).message });
            }
          }),
      )
      .optional(),
    alertEmails: z
      .preprocess(
        list,
        z.array(z.email("expected an email address")).refine(uniqueAddresses, REPEATED_ADDRESS),
      )
      .default([]),
    operationsEmails: z
      .preprocess(
        list,
        z.array(z.email("expected an email address")).refine(uniqueAddresses, REPEATED_ADDRESS),
      )
      .optional(),
    panicPrincipalArns: z.preprocess(
      list,
      z
        .array(principalArn, { error: "expected a list of IAM principal ARNs" })
        .min(1, "at least one principal must be allowed to use the panic button"),
    ),
    panicPolicy: z
      .preprocess(
        object,
        z
          .object({
            name: z
              .string()
              .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, "not a valid Kubernetes object name")
              .optional(),
            // Trimmed, as the panic function reads it: a blank selector must fail here, not at its start.
            namespaceSelector: z.string().trim().min(1, "must not be blank").optional(),
            order: z.preprocess(integer, z.number().min(0)).optional(),
            tier: z
              .string()
              .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "not a valid Calico tier name")
              .optional(),
            types: z
              .preprocess(
                list,
                z.array(z.enum(POLICY_TYPES, { error: "expected Ingress and/or Egress" })).min(1),
              )
              .optional(),
          })
          .strict(),
      )
      .default({}),
    panicTtlMinutes: int(0, MAX_TTL_MINUTES).default(60),
    calicoApiGroup: z
      .preprocess(
        (v) => (typeof v === "string" ? (API_GROUP_ALIASES[v] ?? v) : v),
        z.enum(CALICO_API_GROUPS, { error: `expected ${CALICO_API_GROUPS.join(" or ")}` }),
      )
      .default(DEFAULT_PANIC_SETTINGS.apiGroup),
    retentionDays: int(1, 3650).default(30),
    logRetentionDays: z
      .preprocess(
        integer,
        z
          .number()
          .refine(
            (n): n is (typeof LOG_RETENTION_DAYS)[number] =>
              (LOG_RETENTION_DAYS as readonly number[]).includes(n),
            {
              error: `expected one of ${LOG_RETENTION_DAYS.join(", ")}`,
            },
          ),
      )
      .default(30),
    // At most a minute (MAX_AGGREGATION_SECONDS says why).
    aggregationSeconds: int(1, MAX_AGGREGATION_SECONDS).default(60),
    alertWindowMinutes: int(1, 1440).default(15),
    manageClusterAccess: z.preprocess(boolean, z.boolean({ error: "expected true or false" })).default(true),
    attribution: z.enum(["eks", "none"]).default("eks"),
    namespaceLabelKeys: z.preprocess(list, z.array(labelKey)).default([]),
    scanThreshold: int(2, 65_535).optional(),
    alertCap: int(1, 10_000).optional(),
    // Each request holds one for at most its 28 s; the API's panic writes are throttled to 1/s (burst 5).
    panicReservedConcurrency: int(1, 100).optional(),
  })
  .strict()
  // The subscription filter selects lines by logPrefix; with a format, lines start with its literal text.
  .refine((c) => c.logPrefixFormat === undefined || c.logPrefixFormat.startsWith(c.logPrefix), {
    path: ["logPrefixFormat"],
    error: 'must start with logPrefix, which the subscription filter matches (e.g. "calico-packet %t %n")',
  });

/** The context keys this app reads, for the unknown-key message. */
export const CONTEXT_KEYS = Object.keys(Context.def.shape ?? {});

export class ConfigError extends Error {
  override name = "ConfigError";
}

function describe(value: unknown): string {
  return value === undefined ? "(not set)" : JSON.stringify(value);
}

/**
 * Validates the app's context values. `context` holds only this app's keys (feature flags are the CDK's own).
 * Throws a ConfigError naming every bad key with the value it received.
 */
export function parseConfig(context: Record<string, unknown>): CalicoFlowsConfig {
  const parsed = Context.safeParse(context, { reportInput: true });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      if (issue.code === "unrecognized_keys") {
        const where = issue.path.length === 0 ? "the context" : issue.path.map(String).join(".");
        return `unknown key(s) ${issue.keys.join(", ")} in ${where}`;
      }
      const key = issue.path.map(String).join(".") || "(context)";
      // A whole key is shown as given (e.g. the -c string), an element or field as found inside it.
      const received = issue.path.length === 1 ? context[String(issue.path[0])] : issue.input;
      return `${key}=${describe(received)}: ${issue.message}`;
    });
    throw new ConfigError(
      `invalid CDK context (cdk.json "context" or -c key=value):\n  ${problems.join("\n  ")}`,
    );
  }
  const c = parsed.data;
  // What the ingest function will record in every coverage claim: refused here rather than at its every start.
  try {
    checkSettings({
      bucketSeconds: c.aggregationSeconds,
      prefix: c.logPrefix,
      prefixFormat: c.logPrefixFormat,
      internalCidrs: c.internalCidrs,
      workloadInterfacePrefixes: c.workloadInterfacePrefixes ?? DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
      scanThreshold: c.scanThreshold,
      alertWindowMs: c.alertWindowMinutes * 60_000,
    });
  } catch (error) {
    throw new ConfigError(
      `invalid CDK context (cdk.json "context" or -c key=value):\n  internalCidrs, workloadInterfacePrefixes: ${(error as Error).message}`,
    );
  }
  return {
    stackName: c.stackName,
    clusterName: c.clusterName,
    logGroupNames: c.logGroupNames,
    logPrefix: c.logPrefix,
    logPrefixFormat: c.logPrefixFormat,
    internalCidrs: c.internalCidrs,
    workloadInterfacePrefixes: c.workloadInterfacePrefixes,
    alertEmails: c.alertEmails,
    operationsEmails: c.operationsEmails ?? c.alertEmails,
    panicPrincipalArns: c.panicPrincipalArns,
    panicPolicy: { ...PANIC_POLICY_DEFAULTS, ...stripUndefined(c.panicPolicy) },
    panicTtlMinutes: c.panicTtlMinutes,
    calicoApiGroup: c.calicoApiGroup,
    retentionDays: c.retentionDays,
    logRetentionDays: c.logRetentionDays as (typeof LOG_RETENTION_DAYS)[number],
    aggregationSeconds: c.aggregationSeconds,
    alertWindowMinutes: c.alertWindowMinutes,
    manageClusterAccess: c.manageClusterAccess,
    attribution: c.attribution,
    namespaceLabelKeys: c.namespaceLabelKeys,
    scanThreshold: c.scanThreshold,
    alertCap: c.alertCap,
    panicReservedConcurrency: c.panicReservedConcurrency,
  };
}

/** The cluster cdk.json's example context names. */
const EXAMPLE_CLUSTER = "demo-cluster";
/** The accounts of the AWS documentation's example ARNs, which cdk.json's and deploy.md's use too. */
const EXAMPLE_ACCOUNTS = new Set(["123456789012", "111122223333", "444455556666"]);

/** An address in a domain reserved for examples (RFC 2606, RFC 6761): no mail is ever delivered there. */
function isExampleAddress(address: string): boolean {
  const domain = address.slice(address.lastIndexOf("@") + 1).toLowerCase();
  return (
    /(^|\.)example\.(com|net|org)$/.test(domain) || /(^|\.)(example|test|invalid|localhost)$/.test(domain)
  );
}

/**
 * The keys of `config` that still hold cdk.json's example values (its cluster, addresses in example domains, the
 * documentation's account): deployed as they are, alerts go to no one and the button to a role nobody has.
 */
export function exampleKeys(config: CalicoFlowsConfig): string[] {
  const keys: string[] = [];
  if (config.clusterName === EXAMPLE_CLUSTER) keys.push("clusterName");
  if (config.logGroupNames.some((name) => name.split("/").includes(EXAMPLE_CLUSTER)))
    keys.push("logGroupNames");
  if (config.alertEmails.some(isExampleAddress)) keys.push("alertEmails");
  if (config.operationsEmails.some(isExampleAddress)) keys.push("operationsEmails");
  if (config.panicPrincipalArns.some((arn) => EXAMPLE_ACCOUNTS.has(arn.split(":")[4] ?? "")))
    keys.push("panicPrincipalArns");
  return keys;
}

/**
 * A synth warning for each address list that is empty (`-c operationsEmails=`, or cdk.json's examples deleted, which
 * empties operationsEmails too when it is unset): the stack deploys the alarms and the mailer all the same, and what
 * they send reaches only what is subscribed by hand.
 */
export function unaddressedWarnings(config: CalicoFlowsConfig): { id: string; message: string }[] {
  const warnings: { id: string; message: string }[] = [];
  if (config.alertEmails.length === 0) {
    warnings.push({
      id: "calico-flows:no-alert-emails",
      message:
        "alertEmails holds no address: no one gets the alert e-mails (internal denials, panic announcements). " +
        "Addresses can still subscribe to the e-mail topic (output AlertEmailsTopicArn), machines to the alerts " +
        "topic (output AlertsTopicArn; docs/deploy.md)",
    });
  }
  if (config.operationsEmails.length === 0) {
    warnings.push({
      id: "calico-flows:no-operations-emails",
      message:
        "operationsEmails holds no address (unset, it is alertEmails): no one gets the alarms on calico-flows " +
        "itself. An address, or a machine (a pager's or chat's HTTPS endpoint, SQS, Lambda), can still subscribe " +
        "to the operations topic (output OperationsTopicArn)",
    });
  }
  return warnings;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Picks this app's keys out of the whole CDK context (which also carries feature flags). */
export function appContext(read: (key: string) => unknown): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  for (const key of CONTEXT_KEYS) {
    const value = read(key);
    if (value !== undefined) context[key] = value;
  }
  return context;
}
