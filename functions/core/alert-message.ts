// What an alert, a suppression summary and a panic announcement say: the SNS subject, the e-mail text, the
// structured `default` JSON and the message attributes that subscription filter policies match on. Pure: the
// SNS sink (functions/adapters/sns-sink.ts) only ships what is built here. The e-mails are read back from the JSON
// alone (emailOfJson) by the mailer, which turns what the alerts topic carries into e-mail digests.
//
// Message attributes (all `String` unless noted; never empty, because SNS rejects empty values):
//   type          "alert" | "summary" | "panic"
//   severity      "high" | "low"                                             (alerts; summaries: String.Array)
//   cluster       cluster name
//   reason        alert reason: "internal-denial" | "internal-scan" | "internal-fan-in" | "external-scan" (alerts; summaries: String.Array)
//   srcNamespace  source namespace, "-" when the source has none               (alerts; summaries: String.Array)
//   dstNamespace  destination namespace, "-" when it has none                  (alerts; summaries: String.Array)
//                 A scan or fan-in stands for many ends: both are String.Array, of the namespaces of the ends of
//                 the flows that opened it (100 at most each: the first by name, the example's among them), so that
//                 a subscriber filtering on a namespace hears of the fan-in its workload was one source of, not only
//                 of the example's.
//   protocol      "TCP", "UDP", … ; "*" for scans                              (alerts; summaries: String.Array)
//   dstPort       Number; absent when the protocol has no port (ICMP) and for scans (alerts; summaries: array)
// A summary carries these as arrays of the suppressed alerts' distinct values (100 at most each): SNS matches a
// filter against each value of an array, so filtered subscribers hear of their alerts that the cap kept back. A run
// splits what it holds back into several summaries so that each lists all its alerts' values (summaryGroups).
//   alertId       the alert's id, so machine consumers can drop a re-delivered message (alerts only)
//   action        "applied" | "reverted" | "expired" | "refused"             (panic only)
//   request       "apply" | "revert" | "expire": what was refused             (panic, action "refused" only)
//   count         Number: alerts suppressed                                    (summary only)
// "-" stands for "no namespace" (external, node or unattributed endpoints) so that a filter policy can select
// such alerts explicitly, e.g. {"srcNamespace": ["-"]}, and so that {"srcNamespace": [{"anything-but":
// ["kube-system"]}]} still matches them (anything-but needs the attribute to be present).
import * as z from "zod";
import { MANY_SOURCES, SCAN_DESTINATION } from "./alert-rules.ts";
import type { AlertRecord, Endpoint, PolicyRef } from "./types.ts";

/** Value of srcNamespace/dstNamespace when an endpoint has no namespace. */
export const NO_NAMESPACE = "-";

/** SNS subjects must be shorter than 100 characters. */
export const MAX_SUBJECT_LENGTH = 99;

/** Same shape as the SDK's MessageAttributeValue, so the adapter passes it through unchanged. */
export interface MessageAttribute {
  DataType: "String" | "Number" | "String.Array";
  StringValue: string;
}

/** One outbound notification: `email` for e-mail subscribers, `json` (the `default` structure) for the rest. */
export interface OutboundMessage {
  subject: string;
  email: string;
  json: string;
  attributes: Record<string, MessageAttribute>;
}

/** A policy that may still deny traffic although the panic policy allows it (an earlier tier, a lower order). */
export interface PanicConflict {
  /** e.g. "GlobalNetworkPolicy", "NetworkPolicy", "StagedGlobalNetworkPolicy". */
  kind: string;
  name: string;
  namespace?: string | null;
  tier?: string | null;
  order?: number | null;
  /** Why it may still deny traffic despite the panic policy. */
  explanation: string;
}

/** A panic-button action, announced on the alerts topic (who, why, when). */
export interface PanicEvent {
  action: "applied" | "reverted" | "expired" | "refused";
  cluster: string;
  /** Name of the panic GlobalNetworkPolicy. */
  policyName: string;
  /** Who asked: the caller's IAM principal ARN (or the scheduler, for an expiry). */
  requester: string;
  /** The reason the requester gave. */
  reason: string;
  /** ISO time of the action. */
  at: string;
  /** ISO time the policy reverts itself; null or absent = it stays until reverted by hand. */
  expiresAt?: string | null;
  /**
   * For "applied": why that expiry may not come (Scheduler refused it, or did not confirm it in time), as the
   * answer's warnings say it; the policy then stays until reverted by hand. Absent when it was scheduled.
   */
  expiryNotScheduled?: readonly string[];
  conflicts?: readonly PanicConflict[];
  /** For "refused": why the request was not carried out. */
  detail?: string;
  /**
   * For "refused": "unknown" when its change was sent to the Kubernetes API, which did not confirm it: the request
   * may have been carried out (or still be), as `detail` says; `calico-flows panic status` tells.
   */
  outcome?: "unknown";
  /**
   * For "refused": what was asked, so that a reader tells an apply that may have opened traffic from a revert that
   * may have closed it again. Absent from bodies published before it was named.
   */
  request?: PanicRequest;
}

/** The requests an announcement may tell were refused: those that change the cluster (a dry run is not announced). */
export type PanicRequest = "apply" | "revert" | "expire";
const REQUEST_WORDS: Record<PanicRequest, { noun: string; verb: string }> = {
  apply: { noun: "apply", verb: "apply" },
  revert: { noun: "revert", verb: "revert" },
  expire: { noun: "expiry", verb: "remove at its expiry" },
};

const str = (value: string): MessageAttribute => ({
  DataType: "String",
  StringValue: value === "" ? "-" : value,
});
const num = (value: number): MessageAttribute => ({ DataType: "Number", StringValue: String(value) });
const array = (values: (string | number)[]): MessageAttribute => ({
  DataType: "String.Array",
  StringValue: JSON.stringify(values),
});

/**
 * Log-derived names may carry anything; SNS subjects must not contain line breaks or control characters (Unicode's
 * line and paragraph separators are line breaks too, though not control characters). Every log-derived value of an
 * e-mail goes through it (or oneLine) too, so that none writes lines of its own into the text the on-call reads, nor
 * turns a line around or hides in it (format characters: bidirectional overrides, zero-width spaces).
 */
function noControl(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, " ");
}

function oneLine(text: string): string {
  return noControl(text).replace(/ {2,}/g, " ").trim();
}

/** Shortens to `width` UTF-16 units, keeping the head and the tail (a name's suffix often tells pods apart). */
function squeeze(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 1) return "…";
  const points = Array.from(text);
  const take = (budget: number, from: readonly string[]) => {
    const out: string[] = [];
    let used = 0;
    for (const p of from) {
      if (used + p.length > budget) break;
      out.push(p);
      used += p.length;
    }
    return out;
  };
  const head = take(Math.ceil((width - 1) / 2), points).join("");
  const tail = take(Math.floor((width - 1) / 2), [...points].reverse())
    .reverse()
    .join("");
  return `${head}…${tail}`;
}

export interface Name {
  name: string;
}

/**
 * Joins fixed text and names into a subject under the SNS limit, shortening the longest names first so that
 * short ones (a namespace, a port) stay whole.
 */
export function fitSubject(parts: readonly (string | Name)[]): string {
  const clean = parts.map((p) => (typeof p === "string" ? noControl(p) : { name: oneLine(p.name) || "?" }));
  const fixed = clean.reduce((n, p) => n + (typeof p === "string" ? p.length : 0), 0);
  const names = clean.filter((p): p is Name => typeof p !== "string").map((p) => p.name.length);
  const room = MAX_SUBJECT_LENGTH - fixed;
  // Largest per-name width that fits (water-filling); names shorter than it keep their length.
  let cap = Math.max(...names, 0);
  while (cap > 4 && names.reduce((n, len) => n + Math.min(len, cap), 0) > room) cap--;
  const subject = clean.map((p) => (typeof p === "string" ? p : squeeze(p.name, cap))).join("");
  return subject.length <= MAX_SUBJECT_LENGTH ? subject : squeeze(subject, MAX_SUBJECT_LENGTH);
}

/** How an endpoint is named in a subject: `namespace/workload`, `node/name`, or the IP. */
function shortName(e: Endpoint): string {
  if (e.kind === "node" && e.name !== null) return `node/${e.name}`;
  if ((e.kind === "pod" || e.kind === "service") && e.namespace !== null) {
    return `${e.namespace}/${e.workload?.name ?? e.name ?? e.ip}`;
  }
  return e.ip;
}

function portText(protocol: string, dstPort: number | null): string {
  return dstPort === null ? protocol : `${dstPort}/${protocol}`;
}

export const isScan = (alert: AlertRecord) =>
  alert.reason.endsWith("-scan") || alert.key.dst === SCAN_DESTINATION;
const isInternalScan = (alert: AlertRecord) => alert.reason === "internal-scan";
export const isFanIn = (alert: AlertRecord) =>
  alert.reason === "internal-fan-in" || alert.key.src === MANY_SOURCES;

/**
 * A subject's destination and its port: `customer-b/db:8012/TCP`, `10.0.0.5 ICMP`, and an IPv6 address in brackets
 * before a port (RFC 5952 §6: `fd00::a:53` would be another address). Only an address has a ":" (Kubernetes names
 * have none).
 */
function subjectDestination(alert: AlertRecord): (string | Name)[] {
  const name = shortName(alert.dst);
  if (alert.dstPort === null) return [{ name }, ` ${alert.protocol}`];
  const port = `:${alert.dstPort}/${alert.protocol}`;
  return name.includes(":") ? ["[", { name }, `]${port}`] : [{ name }, port];
}

/** e.g. `Calico denied customer-a/web → customer-b/db:8012/TCP (prod)`; IPs when unattributed. */
export function alertSubject(alert: AlertRecord): string {
  if (isInternalScan(alert)) {
    return fitSubject([
      "Calico: internal scan from ",
      { name: shortName(alert.src) },
      " denied (",
      { name: alert.cluster },
      ")",
    ]);
  }
  if (isFanIn(alert)) {
    return fitSubject([
      "Calico denied many sources → ",
      ...subjectDestination(alert),
      " (",
      { name: alert.cluster },
      ")",
    ]);
  }
  if (isScan(alert)) {
    return fitSubject([
      "Calico: external scan from ",
      { name: alert.src.ip },
      " denied (",
      { name: alert.cluster },
      ")",
    ]);
  }
  return fitSubject([
    "Calico denied ",
    { name: shortName(alert.src) },
    " → ",
    ...subjectDestination(alert),
    " (",
    { name: alert.cluster },
    ")",
  ]);
}

/** POSIX-shell quoting for names pasted into the runbook commands (Kubernetes names never need it; IPs and
 * cluster names supplied by hand might). */
function sh(word: string): string {
  return /^[A-Za-z0-9_.:/=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function endpointNote(e: Endpoint): string | null {
  if (!e.resolved) return "not attributed: the Kubernetes API could not be asked when this was logged";
  switch (e.kind) {
    case "external":
      return "outside the cluster's internal ranges";
    case "unknown":
      return "no pod or node is known to have held this IP at that time";
    case "node":
      return "the node itself (or a hostNetwork pod on it)";
    default:
      return null;
  }
}

function endpointLines(title: string, e: Endpoint): string[] {
  const lines = [
    title,
    `  Namespace:  ${e.namespace ?? "-"}`,
    `  ${e.kind === "pod" ? "Pod:      " : e.kind === "service" ? "Service:  " : "Name:     "}  ${e.name ?? "-"}`,
    `  Workload:   ${e.workload === null ? "-" : `${e.workload.kind}/${e.workload.name}`}`,
    `  IP:         ${e.ip}`,
    `  Node:       ${e.node ?? (e.kind === "node" ? (e.name ?? "-") : "-")}`,
  ];
  const note = endpointNote(e);
  if (note !== null) lines.push(`  Note:       ${note}`);
  if (e.labels !== undefined && Object.keys(e.labels).length > 0) {
    const labels = Object.entries(e.labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`);
    lines.push(`  Namespace labels: ${labels.join(", ")}`);
  }
  return lines.map(noControl);
}

const DIRECTION_TEXT: Record<AlertRecord["direction"], string> = {
  ingress: "ingress (into a pod on the reporting node)",
  egress: "egress (out of a pod on the reporting node)",
  host: "host (to or from the reporting node itself)",
  forward: "forward (routed through the reporting node)",
};

function policyText(p: PolicyRef): string {
  const parts = [
    p.tier === null ? null : `tier ${p.tier}`,
    p.kind === null ? null : `kind ${p.kind}`,
    p.namespace === null ? null : `namespace ${p.namespace}`,
    p.name === null ? null : `name ${p.name}`,
  ].filter((x): x is string => x !== null);
  return parts.length === 0 ? "-" : parts.join(", ");
}

export interface MessageOptions {
  /**
   * The `calico-flows` options that reach the store the alert is in (`--api <url>` for a deployed stack, `--table`
   * or `--store` for the CLI's): the e-mail's commands carry them, so that they run as pasted. @default none
   */
  readonly storeArgs?: readonly string[];
  /** Options of the `flows` commands alone, after the store's (a table's `--bucket-seconds`). @default none */
  readonly flowsArgs?: readonly string[];
}

/**
 * How the e-mail's panic command reaches the cluster, followed by a space: through the deployed stack's API, or
 * (the CLI's alerts) straight to it with the kubeconfig, auditing to the store the alert is in. Without either the
 * command refuses to run.
 */
function panicTarget(options: MessageOptions, cluster: string): string {
  const args = options.storeArgs ?? [];
  const target = args[0] === "--api" ? args : ["--direct", ...args, "--cluster", cluster];
  return `${target.map(sh).join(" ")} `;
}

/** The store arguments as the commands' first options, followed by a space; "" without any. */
function storeText(options: MessageOptions): string {
  const args = options.storeArgs ?? [];
  return args.length === 0 ? "" : `${args.map(sh).join(" ")} `;
}

/** The `calico-flows alerts` command listing a cluster's alerts with a hit at `since` or later (all without). */
export function alertsCommand(cluster: string, since: string | null, options: MessageOptions = {}): string {
  return `calico-flows alerts ${storeText(options)}--cluster ${sh(cluster)}${since === null ? "" : ` --since ${since}`}`;
}

/** `kubectl` command that shows whoever held an endpoint. */
function describeCommand(e: Endpoint): string {
  if (e.kind === "pod" && e.namespace !== null && e.name !== null) {
    return `kubectl describe pod -n ${sh(e.namespace)} ${sh(e.name)}`;
  }
  if (e.kind === "service" && e.namespace !== null && e.name !== null) {
    return `kubectl describe service -n ${sh(e.namespace)} ${sh(e.name)}`;
  }
  if (e.kind === "node" && e.name !== null) return `kubectl describe node ${sh(e.name)}`;
  // The IP may have moved to another pod since: compare the pod's start time with the alert's first seen.
  return `kubectl get pods -A -o wide --field-selector status.podIP=${sh(e.ip)}`;
}

/** `calico-flows flows` filter selecting an endpoint's traffic. */
function flowsFilter(e: Endpoint): string {
  if ((e.kind === "pod" || e.kind === "service") && e.namespace !== null) {
    if (e.workload !== null) {
      return `--namespace ${sh(e.namespace)} --workload ${sh(`${e.workload.kind}/${e.workload.name}`)}`;
    }
    if (e.kind === "pod" && e.name !== null) return `--namespace ${sh(e.namespace)} --pod ${sh(e.name)}`;
  }
  return `--ip ${sh(e.ip)}`;
}

/**
 * The alert's span as `flows` arguments: a range selects the flows with a packet in it, so from its first hit (to
 * the second) to the end of its window, or its last hit when a fold came later. A scan or fan-in was counted over
 * the tally windows around its hits (alert-rules.ts, talliedAlertCandidates): its range reaches two windows before
 * its first hit and after its last, where the rest of its sources or destinations may be.
 */
function flowsRange(alert: AlertRecord): string {
  const until = [alert.windowEnd, alert.lastSeen].sort()[1] as string;
  if (!isInternalScan(alert) && !isFanIn(alert)) {
    return `--since ${alert.firstSeen.replace(/\.\d+Z$/, "Z")} --until ${until}`;
  }
  const twoWindows = 2 * (Date.parse(alert.windowEnd) - Date.parse(alert.openedAt));
  const since = new Date(Date.parse(alert.firstSeen) - twoWindows).toISOString().replace(/\.\d+Z$/, "Z");
  const after = new Date(Math.max(Date.parse(until), Date.parse(alert.lastSeen) + twoWindows)).toISOString();
  return `--since ${since} --until ${after}`;
}

function policyCommands(alert: AlertRecord): string[] {
  const namespaces = [
    ...new Set([alert.src.namespace, alert.dst.namespace].filter((n): n is string => n !== null)),
  ];
  const lines: string[] = [];
  if (namespaces.length > 0) {
    lines.push(`   kubectl get namespace ${namespaces.map(sh).join(" ")} --show-labels`);
    for (const ns of namespaces) {
      lines.push(
        `   kubectl get networkpolicies.projectcalico.org,networkpolicies.networking.k8s.io -n ${sh(ns)} -o wide`,
      );
    }
  }
  lines.push(
    "   kubectl get globalnetworkpolicies.projectcalico.org -o " +
      "custom-columns=NAME:.metadata.name,TIER:.spec.tier,ORDER:.spec.order,NAMESPACES:.spec.namespaceSelector,SELECTOR:.spec.selector",
  );
  lines.push(...namedPolicyCommands(alert, namespaces));
  return lines;
}

/** The resource of each policy kind Felix names (`%k`) that `kubectl get` can show by name. */
const NAMESPACED_POLICY_RESOURCES: Readonly<Record<string, string>> = {
  np: "networkpolicies.projectcalico.org",
  knp: "networkpolicies.networking.k8s.io",
};
const GLOBAL_POLICY_RESOURCES: Readonly<Record<string, string>> = {
  gnp: "globalnetworkpolicies.projectcalico.org",
};

/**
 * `kubectl get` of the policy the prefix named, by its kind. A namespaced policy without a namespace (a format
 * without `%p`), or with one no end is in (cut by the kernel's 29 characters), is looked up in the ends'
 * namespaces; a kind without a resource here (staged policies, profiles) gets no command.
 */
function namedPolicyCommands(alert: AlertRecord, endNamespaces: readonly string[]): string[] {
  const p = alert.policy;
  if (p === null || p.name === null) return [];
  // Without a kind, a namespace says which it is.
  const kind = p.kind ?? (p.namespace === null ? "gnp" : "np");
  const global = GLOBAL_POLICY_RESOURCES[kind];
  // The policy's names come from the log prefix: kept on their command's line.
  if (global !== undefined) return [noControl(`   kubectl get ${global} ${sh(p.name)} -o yaml`)];
  const resource = NAMESPACED_POLICY_RESOURCES[kind];
  if (resource === undefined) return [];
  const namespaces =
    p.namespace !== null && (p.kind === null || endNamespaces.includes(p.namespace))
      ? [p.namespace]
      : endNamespaces;
  return namespaces.map((ns) =>
    noControl(`   kubectl get ${resource} -n ${sh(ns)} ${sh(p.name as string)} -o yaml`),
  );
}

function timingLines(alert: AlertRecord): string[] {
  const lines = [
    `  First seen:  ${alert.firstSeen}`,
    `  Last seen:   ${alert.lastSeen}`,
    `  Hits:        ${alert.count} so far in this alert's window (opened ${alert.openedAt}, ends ${alert.windowEnd});`,
    "               later hits in the window are counted here without another message",
  ];
  if (alert.foldedBefore > 0) {
    // The previous alert may have gone out in a summary, or not yet at all: what no message told, not when it came.
    lines.push(
      `  Folded:      ${alert.foldedBefore} more hit${alert.foldedBefore === 1 ? " was" : "s were"} counted in the previous alert for this traffic than any message about it`,
      "               told by the time this alert opened (an alert not sent yet told none)",
    );
  }
  return lines;
}

/** The policy the log prefix named, when it named one. */
function policyLines(alert: AlertRecord): string[] {
  return alert.policy === null
    ? []
    : [`  Policy:      ${oneLine(policyText(alert.policy))} (named by the log prefix)`];
}

function internalDenialText(alert: AlertRecord, store: string, panic: string): string {
  const lines = [
    `Calico denied traffic between two endpoints inside cluster ${alert.cluster}.`,
    "Internal traffic is denied either because something is probing where it should not (an attack) or",
    "because a policy does not allow traffic it should (a policy bug). Either way someone should look.",
    "",
    ...endpointLines("Source", alert.src),
    ...endpointLines("Destination", alert.dst),
    "Traffic",
    `  Port:        ${oneLine(portText(alert.protocol, alert.dstPort))}`,
    `  Direction:   ${DIRECTION_TEXT[alert.direction]}`,
    `  Reported by: node ${oneLine(alert.reporter)}`,
  ];
  lines.push(
    ...policyLines(alert),
    ...timingLines(alert),
    "",
    "Next steps",
    "1. See who is involved. A pod named is the one of the latest hit: earlier hits may come from other pods of",
    "   the same workload (a rollout, a CronJob's runs), which step 3's `--json` names one by one. An address",
    "   looked up by IP may have moved to another pod since: a pod started after Last seen did not send it.",
    `   ${describeCommand(alert.src)}`,
    `   ${describeCommand(alert.dst)}`,
    "2. Find the Calico policies that select these namespaces. Policies apply lowest order first, and",
    "   anything no policy allows is denied:",
    ...policyCommands(alert),
    "3. See the denied traffic of each end around that time (calico-flows sees denials only, never allowed traffic):",
    `   calico-flows flows ${store}--cluster ${sh(alert.cluster)} ${flowsFilter(alert.src)} ${flowsRange(alert)}`,
    `   calico-flows flows ${store}--cluster ${sh(alert.cluster)} ${flowsFilter(alert.dst)} ${flowsRange(alert)}`,
    "4. If the source should not talk to the destination, treat it as an incident. If it should, fix the policy",
    "   that fails to allow it. If production traffic is broken and cannot wait for the fix, the panic button",
    "   (calico-flows panic --help) allows all traffic of the customer namespaces until it is reverted. Run",
    `   \`calico-flows panic apply ${panic}--dry-run --reason …\` first: it lists the policies that would still`,
    "   deny (an earlier tier, a lower order). It opens pods of those namespaces only, not a node's own traffic.",
  );
  return lines.join("\n");
}

/**
 * An internal scan's first lines. Its destinations are counted by workload, and by address where attribution was
 * unavailable (an API outage): then the replicas of one workload count as many, and an ordinary client denied on one
 * port of a StatefulSet is no scan. The most denied destination unattributed says so; what the others were is not
 * stored.
 */
function internalScanHeadline(alert: AlertRecord): string[] {
  const first = `An endpoint inside cluster ${alert.cluster} was denied on many distinct destinations or ports within minutes`;
  if (alert.dst.resolved) {
    return [
      `${first}:`,
      "it looks like a scan from inside (a compromised or misbehaving workload), or a policy that cuts it off from",
      "everything it talks to. Either way someone should look (severity high). One alert stands for all of them.",
    ];
  }
  return [
    `${first}, but`,
    "attribution was unavailable for some or all of its destinations (the Kubernetes API could not be asked when",
    "they were logged, as for the most denied one below): each unattributed address counts as a destination of its",
    "own, so the pods of one workload (a StatefulSet's replicas, a Deployment's pods) count as many. It may be one",
    "client denied on one port of one workload rather than a scan. Either way someone should look (severity high).",
    "One alert stands for all of them.",
  ];
}

function internalScanText(alert: AlertRecord, store: string): string {
  const lines = [
    ...internalScanHeadline(alert),
    "",
    ...endpointLines("Source", alert.src),
    ...endpointLines("Most denied destination", alert.dst),
    "Traffic",
    `  Reported by: node ${oneLine(alert.reporter)} (for the most denied destination)`,
  ];
  lines.push(
    ...policyLines(alert),
    ...timingLines(alert),
    "",
    "Next steps",
    "1. See who the source is, and everything it tried:",
    `   ${describeCommand(alert.src)}`,
    `   calico-flows flows ${store}--cluster ${sh(alert.cluster)} ${flowsFilter(alert.src)} --group ${flowsRange(alert)}`,
    ...(alert.dst.resolved
      ? []
      : [
          "   The destinations are addresses: see whether they were the pods of one workload (kubectl get pods -A -o wide).",
        ]),
    "2. If it should not be probing, treat it as an incident: isolate the workload. If it should talk to these",
    "   destinations, find the policy that denies them (policies apply lowest order first):",
    ...policyCommands(alert),
  );
  return lines.join("\n");
}

function fanInText(alert: AlertRecord, store: string, panic: string): string {
  const lines = [
    `Many endpoints inside cluster ${alert.cluster} were denied reaching one destination within minutes: a policy that`,
    "cuts a shared service off from its clients (DNS, a database, an API), or a default deny a new policy should",
    "have opened. Either way someone should look (severity high). One alert stands for all the sources.",
    "",
    ...endpointLines("Destination", alert.dst),
    ...endpointLines("Most denied source", alert.src),
    "Traffic",
    `  Port:        ${oneLine(portText(alert.protocol, alert.dstPort))}`,
    `  Direction:   ${DIRECTION_TEXT[alert.direction]}`,
    `  Reported by: node ${oneLine(alert.reporter)} (for the most denied source)`,
  ];
  lines.push(
    ...policyLines(alert),
    ...timingLines(alert),
    "",
    "Next steps",
    "1. See every source that was denied, and how much:",
    `   calico-flows flows ${store}--cluster ${sh(alert.cluster)} ${flowsFilter(alert.dst)} --group ${flowsRange(alert)}`,
    "2. Find the policy that should let them through (policies apply lowest order first). An egress denial is",
    "   in each source's namespace (step 1 lists them); these are the destination's and the example source's:",
    ...policyCommands(alert),
    "3. If production traffic is broken and cannot wait for the fix, the panic button (calico-flows panic --help)",
    "   allows all traffic of the customer namespaces until it is reverted. Run",
    `   \`calico-flows panic apply ${panic}--dry-run --reason …\` first: it lists the policies that would still deny.`,
  );
  return lines.join("\n");
}

function externalScanText(alert: AlertRecord, store: string): string {
  const lines = [
    `An external source was denied on many distinct ports or destinations in cluster ${alert.cluster}:`,
    "it looks like a scan. Calico blocked it; this is for awareness (severity low).",
    "",
    ...endpointLines("Source", alert.src),
    ...endpointLines("Most probed destination", alert.dst),
    "Traffic",
    `  Reported by: node ${oneLine(alert.reporter)} (for the most probed destination)`,
    ...policyLines(alert),
    ...timingLines(alert),
    "",
    "Next steps",
    "1. See everything this source tried:",
    `   calico-flows flows ${store}--cluster ${sh(alert.cluster)} --ip ${sh(alert.src.ip)} ${flowsRange(alert)}`,
    "2. Find how it reaches the nodes (load balancer, NodePort, security group rules) and block it there if it",
    "   keeps coming back.",
  ];
  return lines.join("\n");
}

/** The e-mail text of an alert: who, what, when, and the runbook steps written out for this case. */
export function alertEmailText(alert: AlertRecord, options: MessageOptions = {}): string {
  // The flows commands' options: the store's, then those of `flows` alone.
  const store = storeText({ storeArgs: [...(options.storeArgs ?? []), ...(options.flowsArgs ?? [])] });
  const panic = panicTarget(options, alert.cluster);
  const text = isInternalScan(alert)
    ? internalScanText(alert, store)
    : isFanIn(alert)
      ? fanInText(alert, store, panic)
      : isScan(alert)
        ? externalScanText(alert, store)
        : internalDenialText(alert, store, panic);
  return `${text}\n\nAlert ${alert.id} (severity ${alert.severity}, reason ${alert.reason}).\n`;
}

/**
 * `type: "alert"`, then the alert record with exactly the fields `alerts --json` prints, in a fixed order. The
 * type names the kind of message in the body as summaries and announcements do: SNS does not deliver the message
 * attributes of a JSON-structured publish, so a subscriber has the body alone to tell them apart. `delivery` is
 * the state at publishing time ("pending"): the store marks it "sent" once SNS has accepted the message
 * ("summarized" for an alert over a run's cap, once its summary was accepted).
 */
export function alertDefaultJson(alert: AlertRecord): string {
  const record: { type: "alert" } & { [K in keyof Required<AlertRecord>]: AlertRecord[K] } = {
    type: "alert",
    id: alert.id,
    cluster: alert.cluster,
    key: alert.key,
    src: alert.src,
    dst: alert.dst,
    protocol: alert.protocol,
    dstPort: alert.dstPort,
    direction: alert.direction,
    reporter: alert.reporter,
    policy: alert.policy,
    severity: alert.severity,
    reason: alert.reason,
    count: alert.count,
    foldedBefore: alert.foldedBefore,
    openedAt: alert.openedAt,
    windowEnd: alert.windowEnd,
    firstSeen: alert.firstSeen,
    lastSeen: alert.lastSeen,
    delivery: alert.delivery,
    namespaces: alert.namespaces,
  };
  return JSON.stringify(record);
}

/** The namespaces an end of an alert stands for: the many of a scan or fan-in, else its one ("-" for none). */
function namespacesOf(many: readonly (string | null)[] | undefined, end: Endpoint): string[] {
  return (many ?? [end.namespace]).map((ns) => ns ?? NO_NAMESPACE);
}

/** An end's namespace attribute: its one namespace, or a String.Array of the many a scan or fan-in stands for. */
function namespaceAttribute(many: readonly (string | null)[] | undefined, end: Endpoint): MessageAttribute {
  return many === undefined ? str(end.namespace ?? NO_NAMESPACE) : array(namespacesOf(many, end));
}

/** Message attributes of an alert, for subscription filter policies (see the table at the top). */
export function alertAttributes(alert: AlertRecord): Record<string, MessageAttribute> {
  const attributes: Record<string, MessageAttribute> = {
    type: str("alert"),
    severity: str(alert.severity),
    reason: str(alert.reason),
    cluster: str(alert.cluster),
    srcNamespace: namespaceAttribute(alert.namespaces?.src, alert.src),
    dstNamespace: namespaceAttribute(alert.namespaces?.dst, alert.dst),
    protocol: str(alert.protocol),
    alertId: str(alert.id),
  };
  if (alert.dstPort !== null) attributes.dstPort = num(alert.dstPort);
  return attributes;
}

export function alertMessage(alert: AlertRecord, options: MessageOptions = {}): OutboundMessage {
  return {
    subject: alertSubject(alert),
    email: alertEmailText(alert, options),
    json: alertDefaultJson(alert),
    attributes: alertAttributes(alert),
  };
}

/** Alerts listed by name in a suppression summary; the rest are only counted. */
const SUMMARY_SAMPLE = 20;

/** A suppression summary's `default` JSON; its e-mail is written from it alone (summaryEmail). */
interface SummaryBody {
  type: "summary";
  cluster: string;
  count: number;
  /** The listing the e-mail gives: every suppressed alert opened at or after it (the sample names 20 at most). */
  since: string | null;
  /** The first SUMMARY_SAMPLE suppressed alerts, with the subject and first hit the e-mail lists them by. */
  alerts: {
    id: string;
    key: AlertRecord["key"];
    severity: AlertRecord["severity"];
    count: number;
    openedAt: string;
    firstSeen: string;
    subject: string;
  }[];
}

/** The subject and e-mail text of a summary, from its JSON. */
function summaryEmail(body: SummaryBody, options: MessageOptions): { subject: string; text: string } {
  const { count, cluster, alerts } = body;
  const noun = count === 1 ? "alert" : "alerts";
  const lines = [
    `${count} more ${noun} in cluster ${cluster} reached the per-run alert cap and ${count === 1 ? "was" : "were"} not sent one by one.`,
    `${count === 1 ? "It is" : "They are"} recorded in the flow store; list them with:`,
    `   ${alertsCommand(cluster, body.since, options)}`,
  ];
  if (alerts.length > 0) {
    lines.push("", alerts.length < count ? `${alerts.length} of them:` : "Suppressed:");
    for (const a of alerts) {
      lines.push(`  - ${a.subject}: ${a.count} hit${a.count === 1 ? "" : "s"}, first seen ${a.firstSeen}`);
    }
  }
  return {
    subject: fitSubject(["Calico: ", String(count), ` more ${noun} suppressed (`, { name: cluster }, ")"]),
    text: `${lines.join("\n")}\n`,
  };
}

/**
 * An "N more alerts suppressed" message, sent when a run reaches its alert cap (one per summaryGroups group).
 * `suppressed` are the alerts not sent individually (listed up to 20); `count` may exceed their number when the
 * caller only has a sample.
 */
export function suppressionSummary(
  count: number,
  cluster: string,
  suppressed: readonly AlertRecord[] = [],
  options: MessageOptions = {},
): OutboundMessage {
  // Every severity held back, so that a subscriber of low alerts hears of its own among high ones ("high" alone
  // for a summary that knows none of its alerts).
  const severities = [...new Set(suppressed.map((a) => a.severity))].sort();
  const body: SummaryBody = {
    type: "summary",
    cluster,
    count,
    since: suppressed.reduce<string | null>((m, a) => (m === null || a.openedAt < m ? a.openedAt : m), null),
    alerts: suppressed.slice(0, SUMMARY_SAMPLE).map((a) => ({
      id: a.id,
      key: a.key,
      severity: a.severity,
      count: a.count,
      openedAt: a.openedAt,
      firstSeen: a.firstSeen,
      subject: alertSubject(a),
    })),
  };
  const { subject, text } = summaryEmail(body, options);
  return {
    subject,
    email: text,
    json: JSON.stringify(body),
    attributes: {
      type: str("summary"),
      severity: array(severities.length === 0 ? ["high"] : severities),
      cluster: str(cluster),
      count: num(count),
      ...summaryFilterAttributes(suppressed),
    },
  };
}

/** Distinct values a summary's array attributes list, at most: bounds the message whatever was suppressed. */
export const SUMMARY_ATTRIBUTE_VALUES = 100;

/** The values an alert gives each array attribute of a summary that holds it back. */
interface FilterValues {
  reason: string[];
  srcNamespace: string[];
  dstNamespace: string[];
  protocol: string[];
  dstPort: number[];
}

function filterValues(a: AlertRecord): FilterValues {
  return {
    reason: [a.reason],
    srcNamespace: namespacesOf(a.namespaces?.src, a.src),
    dstNamespace: namespacesOf(a.namespaces?.dst, a.dst),
    protocol: [a.protocol],
    dstPort: a.dstPort === null ? [] : [a.dstPort],
  };
}

/**
 * The attributes subscribers filter alerts on, as arrays of the suppressed alerts' values: a filter policy
 * matches an array when any of its values matches, so a subscriber of one namespace still hears of the alerts of
 * its namespace that the cap kept back (of the first 100 distinct values of each: summaryGroups keeps a summary's
 * alerts within them).
 */
function summaryFilterAttributes(suppressed: readonly AlertRecord[]): Record<string, MessageAttribute> {
  if (suppressed.length === 0) return {};
  const distinct = <T>(values: T[]): T[] => [...new Set(values)].slice(0, SUMMARY_ATTRIBUTE_VALUES);
  const values = suppressed.map(filterValues);
  const ports = distinct(values.flatMap((v) => v.dstPort));
  const attributes: Record<string, MessageAttribute> = {
    reason: array(distinct(values.flatMap((v) => v.reason))),
    srcNamespace: array(distinct(values.flatMap((v) => v.srcNamespace))),
    dstNamespace: array(distinct(values.flatMap((v) => v.dstNamespace))),
    protocol: array(distinct(values.flatMap((v) => v.protocol))),
  };
  if (ports.length > 0) attributes.dstPort = array(ports);
  return attributes;
}

/**
 * One cluster's suppressed alerts, in their order, cut into the alerts of at most `most` summaries: a summary takes
 * the next alert unless that would put more than SUMMARY_ATTRIBUTE_VALUES distinct values in one of its array
 * attributes, so that each lists every value of its alerts and a filtered subscriber hears of its own. The last
 * takes whatever is left: its attributes then list the first 100 values of each.
 */
export function summaryGroups(suppressed: readonly AlertRecord[], most: number): AlertRecord[][] {
  const groups: AlertRecord[][] = [];
  let listed = new Map<string, Set<string | number>>();
  for (const alert of suppressed) {
    const own = Object.entries(filterValues(alert));
    const current = groups.at(-1);
    const fits = own.every(
      ([name, values]) => new Set([...(listed.get(name) ?? []), ...values]).size <= SUMMARY_ATTRIBUTE_VALUES,
    );
    if (current === undefined || (!fits && groups.length < most)) {
      groups.push([alert]);
      listed = new Map();
    } else current.push(alert);
    for (const [name, values] of own) {
      const set = listed.get(name) ?? new Set();
      for (const v of values) set.add(v);
      listed.set(name, set);
    }
  }
  return groups;
}

/** How `panic --direct` names its requester: the person, then how the cluster was reached. */
export function directRequester(person: string, where: string): string {
  return `${person}${DIRECT_VIA}${where}`;
}
const DIRECT_VIA = " via ";

/** `arn:aws:sts::1:assumed-role/Ops/alice` → `alice`; a directRequester → its person; anything else unchanged. */
function principalName(requester: string): string {
  const via = requester.indexOf(DIRECT_VIA);
  if (via > 0) return requester.slice(0, via);
  const last = requester.split("/").pop() ?? requester;
  return last === "" ? requester : last;
}

const PANIC_HEADLINE: Record<PanicEvent["action"], string> = {
  applied: "was applied",
  reverted: "was reverted",
  expired: "expired and was removed",
  refused: "request was refused",
};

/** Conflicts a panic announcement lists; the rest are counted (`conflictCount`). */
export const ANNOUNCED_CONFLICTS = 50;

/**
 * A panic announcement's `default` JSON: the event, with its conflicts listed up to ANNOUNCED_CONFLICTS (in the
 * text and in the JSON alike: a cluster with a deny policy per customer namespace would otherwise pass SNS's
 * 256 KB, and the announcement that isolation is off be lost) and counted in `conflictCount`.
 */
type PanicBody = PanicEvent & { type: "panic"; conflicts: readonly PanicConflict[]; conflictCount: number };

/** An announcement's severity: what opens traffic, or was refused in an emergency, is high. */
const panicSeverity = (action: PanicEvent["action"]): "high" | "low" =>
  action === "applied" || action === "refused" ? "high" : "low";

/** The subject and e-mail text of a panic announcement, from its JSON. */
function panicEmail(body: PanicBody): { subject: string; text: string } {
  const who = principalName(body.requester);
  // A request not confirmed may have opened traffic, or closed it, all the same: not a refusal to read past.
  const unknown = body.action === "refused" && body.outcome === "unknown";
  const words =
    body.action === "refused" && body.request !== undefined ? REQUEST_WORDS[body.request] : undefined;
  const asked = words?.noun ?? "request";
  const subjectParts: (string | Name)[] =
    body.action === "expired"
      ? ["Calico panic policy expired on ", { name: body.cluster }]
      : unknown
        ? [
            `Calico panic ${asked} unconfirmed on `,
            { name: body.cluster },
            " (may be carried out): run calico-flows panic status",
          ]
        : body.action === "refused"
          ? [`Calico panic ${asked} refused on `, { name: body.cluster }, " (", { name: who }, ")"]
          : [`Calico panic policy ${body.action} on `, { name: body.cluster }, " by ", { name: who }];
  const unconfirmed =
    words === undefined
      ? `The Calico panic policy ${body.policyName} request was not confirmed`
      : `The request to ${words.verb} the Calico panic policy ${body.policyName} was not confirmed`;
  const lines = [
    unknown
      ? `${unconfirmed} on cluster ${body.cluster}: it may have been carried out (or still be). Run ` +
        "`calico-flows panic status` before trying again."
      : `The Calico panic policy ${body.policyName} ${PANIC_HEADLINE[body.action]} on cluster ${body.cluster}.`,
    "",
    `  Who:      ${body.requester}`,
    `  Why:      ${oneLine(body.reason)}`,
    `  When:     ${body.at}`,
  ];
  if (body.action === "applied") {
    const unscheduled = body.expiryNotScheduled ?? [];
    lines.push(
      !body.expiresAt
        ? "  Expires:  never: revert it once traffic is fixed"
        : unscheduled.length > 0
          ? `  Expires:  ${body.expiresAt} is NOT SCHEDULED: revert it by hand once traffic is fixed`
          : `  Expires:  ${body.expiresAt} (removed automatically)`,
      ...unscheduled.map((w) => `            - ${oneLine(w)}`),
      "",
      "While it is in place, all traffic of the namespaces it selects is allowed: Calico isolation between",
      "customer workloads is off for them.",
    );
  }
  if (body.action === "refused" && body.detail !== undefined)
    lines.push(`  ${unknown ? "Outcome:  unknown: " : "Refused:  "}${oneLine(body.detail)}`);
  const unlisted = body.conflictCount - body.conflicts.length;
  if (body.conflicts.length > 0) {
    lines.push("", "Policies that may still deny traffic despite the panic policy:");
    for (const c of body.conflicts) {
      const where = [
        c.namespace ? `namespace ${c.namespace}` : null,
        c.tier ? `tier ${c.tier}` : null,
        c.order === null || c.order === undefined ? null : `order ${c.order}`,
      ].filter((x): x is string => x !== null);
      lines.push(
        `  - ${c.kind} ${c.name}${where.length > 0 ? ` (${where.join(", ")})` : ""}: ${oneLine(c.explanation)}`,
      );
    }
    if (unlisted > 0) lines.push(`  … and ${unlisted} more: \`calico-flows panic status\` lists them all`);
  }
  lines.push(
    "",
    "Check it with:",
    `   kubectl get globalnetworkpolicies.projectcalico.org ${sh(body.policyName)} -o yaml`,
    `   calico-flows panic --help`,
  );
  return { subject: fitSubject(subjectParts), text: `${lines.join("\n")}\n` };
}

/** The announcement of a panic-button action: who, why, when, and what may still deny traffic. */
export function panicAnnouncement(event: PanicEvent): OutboundMessage {
  const allConflicts = event.conflicts ?? [];
  const body: PanicBody = {
    type: "panic",
    ...event,
    conflicts: allConflicts.slice(0, ANNOUNCED_CONFLICTS),
    conflictCount: allConflicts.length,
  };
  const { subject, text } = panicEmail(body);
  return {
    subject,
    email: text,
    json: JSON.stringify(body),
    attributes: {
      type: str("panic"),
      action: str(event.action),
      severity: str(panicSeverity(event.action)),
      cluster: str(event.cluster),
      ...(event.action === "refused" && event.request !== undefined ? { request: str(event.request) } : {}),
    },
  };
}

// ── Reading a message back from its JSON ────────────────────────────────────────────────────────────
// What each kind of body must hold for its e-mail to be written: a body that lacks it (another version's, another
// publisher's) is not read, rather than read into "undefined". Loose objects: the bodies are a contract for machine
// subscribers, to which fields may be added.

const EndpointJson = z.looseObject({
  ip: z.string(),
  kind: z.string(),
  namespace: z.string().nullable(),
  name: z.string().nullable(),
  workload: z.looseObject({ kind: z.string(), name: z.string() }).nullable(),
  node: z.string().nullable(),
  resolved: z.boolean(),
  labels: z.record(z.string(), z.string()).optional(),
});

/** An alert's body is its record (alertDefaultJson), which its e-mail reads nearly whole. */
const AlertJson = z.looseObject({
  type: z.literal("alert"),
  id: z.string(),
  cluster: z.string(),
  key: z.looseObject({ src: z.string(), dst: z.string() }),
  src: EndpointJson,
  dst: EndpointJson,
  protocol: z.string(),
  dstPort: z.number().nullable(),
  direction: z.enum(["ingress", "egress", "host", "forward"]),
  reporter: z.string(),
  policy: z
    .looseObject({
      tier: z.string().nullable(),
      kind: z.string().nullable(),
      name: z.string().nullable(),
      namespace: z.string().nullable(),
    })
    .nullable(),
  severity: z.enum(["high", "low"]),
  reason: z.string(),
  count: z.number(),
  foldedBefore: z.number(),
  openedAt: z.iso.datetime(),
  windowEnd: z.iso.datetime(),
  firstSeen: z.iso.datetime(),
  lastSeen: z.iso.datetime(),
});

const SummaryJson = z.looseObject({
  type: z.literal("summary"),
  cluster: z.string(),
  count: z.number(),
  since: z.string().nullable(),
  alerts: z.array(
    z.looseObject({
      severity: z.enum(["high", "low"]),
      count: z.number(),
      firstSeen: z.string(),
      subject: z.string(),
    }),
  ),
});

const PanicJson = z.looseObject({
  type: z.literal("panic"),
  action: z.enum(["applied", "reverted", "expired", "refused"]),
  cluster: z.string(),
  policyName: z.string(),
  requester: z.string(),
  reason: z.string(),
  at: z.string(),
  expiresAt: z.string().nullish(),
  expiryNotScheduled: z.array(z.string()).optional(),
  conflicts: z.array(
    z.looseObject({
      kind: z.string(),
      name: z.string(),
      namespace: z.string().nullish(),
      tier: z.string().nullish(),
      order: z.number().nullish(),
      explanation: z.string(),
    }),
  ),
  conflictCount: z.number(),
  detail: z.string().optional(),
  outcome: z.literal("unknown").optional(),
  request: z.enum(["apply", "revert", "expire"]).optional(),
});

const MessageJson = z.discriminatedUnion("type", [AlertJson, SummaryJson, PanicJson]);

/** A message of the alerts topic as its e-mail subscribers get it, and what a digest orders it by. */
export interface MessageEmail {
  type: "alert" | "summary" | "panic";
  subject: string;
  text: string;
  severity: "high" | "low";
  /**
   * When what it tells of began, where `calico-flows alerts --since` finds it: an alert's openedAt, a summary's
   * since (null when it names no alert), an announcement's time.
   */
  since: string | null;
}

/**
 * The subject and e-mail text of a message the alerts topic carries, from its `default` JSON alone: those the SNS
 * sink publishes for its e-mail subscribers (built from the same JSON for summaries and announcements; from the
 * record the JSON holds whole for alerts). `options` point the commands at the alerts' store, as the sink's do.
 * undefined for a body that is not JSON, of another type, or without what its text needs.
 */
export function emailOfJson(json: string, options: MessageOptions = {}): MessageEmail | undefined {
  try {
    const body = MessageJson.parse(JSON.parse(json));
    switch (body.type) {
      case "alert": {
        const alert = body as unknown as AlertRecord;
        return {
          type: "alert",
          subject: alertSubject(alert),
          text: alertEmailText(alert, options),
          severity: alert.severity,
          since: alert.openedAt,
        };
      }
      case "summary": {
        const summary = body as unknown as SummaryBody;
        const high = summary.alerts.length === 0 || summary.alerts.some((a) => a.severity === "high");
        return {
          type: "summary",
          ...summaryEmail(summary, options),
          severity: high ? "high" : "low",
          since: summary.since,
        };
      }
      case "panic": {
        const panic = body as unknown as PanicBody;
        return {
          type: "panic",
          ...panicEmail(panic),
          severity: panicSeverity(panic.action),
          since: panic.at,
        };
      }
    }
  } catch {
    // Not JSON, of another type, without what its text needs, or a value its text cannot be written from.
    return undefined;
  }
}

/** SNS's limit on a publish, "at most 256 KB (262,144 bytes)": the message and its attributes together. */
export const MAX_PUBLISH_BYTES = 262_144;

/** What ends an e-mail text cut short to fit MAX_PUBLISH_BYTES. */
const CUT_NOTE =
  "\n\n[… cut short: this message passed SNS's 256 KB limit. `calico-flows alerts --json` shows the alert whole.]\n";

/** An outbound message as the SNS sink publishes it (`MessageStructure: json`). */
export interface SnsPublication {
  subject: string;
  /** `{"default": json, "email": text}`. */
  message: string;
  attributes: Record<string, MessageAttribute>;
}

/**
 * An outbound message as SNS takes it, built in this one place for every message the sink publishes.
 *
 * Every string is made well-formed (a lone surrogate, which a JSON record can escape into any log text, becomes
 * U+FFFD): SNS takes UTF-8 text, and the SDK cannot even encode a Subject or an attribute holding one ("URI
 * malformed"), which kept an alert pending and failed every run that handed it out.
 *
 * Size: the log-derived text of an alert is bounded by the parser: the protocol at 16 characters, the reporter at
 * 253 (a host name) or 512 (the log stream's name that stands for it), the policy at the prefix's 256. An alert
 * carries each at most 6 times (subject, attributes, the default JSON and its key, the e-mail and its commands):
 * 6 × (16 + 512 + 256) = 4,704 UTF-16 units, at most 7 bytes each once JSON escapes them twice (the default JSON
 * is a string in the message): under 33 KB. The rest is fixed text (some 4 KB), Kubernetes names of at most 253
 * characters, and the namespace lists of a scan or fan-in (100 of at most 63 characters per end, in the attributes
 * and the default JSON: under 30 KB). Only what Kubernetes hands over unbounded (a namespace's labels) could pass
 * 262,144 bytes: then the e-mail text is cut short to fit rather than the publish failing for ever; a message still
 * over the limit without any e-mail text (its default JSON alone too big) throws, naming its size.
 */
export function snsPublication(message: OutboundMessage): SnsPublication {
  const subject = message.subject.toWellFormed();
  const json = message.json.toWellFormed();
  const attributes: Record<string, MessageAttribute> = {};
  let fixed = Buffer.byteLength(subject);
  for (const [name, attribute] of Object.entries(message.attributes)) {
    const value = attribute.StringValue.toWellFormed();
    attributes[name] = { DataType: attribute.DataType, StringValue: value };
    fixed += Buffer.byteLength(name) + Buffer.byteLength(attribute.DataType) + Buffer.byteLength(value);
  }
  const email = message.email.toWellFormed();
  const body = (text: string) => JSON.stringify({ default: json, email: text });
  const whole = body(email);
  if (fixed + Buffer.byteLength(whole) <= MAX_PUBLISH_BYTES) return { subject, message: whole, attributes };
  // The longest head of the text that fits with the note, found by bisection (JSON may write a character in one
  // byte or in six): rare, and a few dozen rounds at most.
  const cut = (keep: number) => body(`${email.slice(0, keep).toWellFormed()}${CUT_NOTE}`);
  const fits = (keep: number) => fixed + Buffer.byteLength(cut(keep)) <= MAX_PUBLISH_BYTES;
  if (!fits(0)) {
    throw new Error(
      `the message is ${fixed + Buffer.byteLength(body(""))} bytes without its e-mail text, over SNS's limit of ${MAX_PUBLISH_BYTES}`,
    );
  }
  let fitting = 0;
  let over = email.length;
  while (over - fitting > 1) {
    const keep = Math.floor((fitting + over) / 2);
    if (fits(keep)) fitting = keep;
    else over = keep;
  }
  return { subject, message: cut(fitting), attributes };
}
