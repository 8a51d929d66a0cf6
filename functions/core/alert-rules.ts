// Which aggregated flows deserve an alert. Four rules:
//
// - internal denial (severity high): both ends inside the cluster's private ranges. Every calico-packet line is
//   a denial, and an internal one is either an attack from inside or a policy bug (DESIGN.md §1). One candidate
//   per AlertKey, summing the hits of every flow with that key in the payload.
// - internal scan (severity high, with a threshold): an internal source whose denials in the flows handed in reach
//   at least N distinct destinations and ports (workloads or addresses; a port denied over UDP and TCP, as DNS
//   retries, counts once) makes one candidate instead, keyed like an external scan. A pod probing a hundred ports is one alert,
//   not a hundred e-mails; a client denied on one port of thirty pods of one workload is one internal denial.
// - internal fan-in (severity high, with the same threshold): a destination (workload or address, protocol, port)
//   denied to at least N internal sources that are not scans makes one candidate instead, its source `*many*`. A
//   shared service a policy cuts off (DNS for thirty workloads) is one alert, not thirty e-mails.
// - external scan (severity low, off unless a threshold is given): one external source denied on at least N
//   distinct destination ports or N distinct destination IPs in the flows handed in (one payload). The key is
//   the source alone — dst `*scan*`, protocol `*`, no port — so a scan spread over many payloads folds into one
//   alert per window instead of one per port. A scan slower than one payload's span is not detected: the rule
//   only sees the flows it is given.
import { policyKey } from "./aggregate.ts";
import { KeyTable } from "./key-table.ts";
import type { AlertCandidate, AlertKey, Endpoint, FlowRecord, PolicyRef } from "./types.ts";

/** `key.dst` of external-scan alerts: the scan has many destinations, so the key names none. */
export const SCAN_DESTINATION = "*scan*";
/** `key.protocol` of external-scan alerts: one alert per source whatever protocols it probes. */
export const SCAN_PROTOCOL = "*";
/** `key.src` of internal fan-in alerts: many sources denied to one destination, so the key names none. */
export const MANY_SOURCES = "*many*";

export interface AlertRuleOptions {
  /**
   * Distinct ports or destinations that make an external source a scanner, distinct destinations and ports that make
   * an internal one a scanner, and distinct sources that make an internal destination a fan-in; undefined = off.
   */
  scanThreshold?: number;
}

/**
 * How an endpoint is named in an alert key: `namespace/workloadKind/workloadName` for attributed pods (the
 * pod itself, `namespace/Pod/name`, when it has no owner; `namespace/Service/name` for services),
 * `node/name` for nodes, and the IP when nothing is known. Pods of one workload share a key, so a rollout
 * does not re-alert on the same broken policy.
 */
export function alertEndpointKey(e: Endpoint): string {
  if (e.kind === "node" && e.name !== null) return `node/${e.name}`;
  if ((e.kind === "pod" || e.kind === "service") && e.namespace !== null) {
    if (e.workload !== null) return `${e.namespace}/${e.workload.kind}/${e.workload.name}`;
    if (e.name !== null) return `${e.namespace}/${e.kind === "pod" ? "Pod" : "Service"}/${e.name}`;
  }
  return e.ip;
}

interface Group {
  key: AlertKey;
  flows: FlowRecord[];
}

/** The flow an alert shows as its example: the latest seen (its pods are the likeliest to still exist). */
function latest(flows: readonly FlowRecord[]): FlowRecord {
  let best = flows[0] as FlowRecord;
  for (const f of flows) {
    if (f.lastSeen > best.lastSeen || (f.lastSeen === best.lastSeen && f.id < best.id)) best = f;
  }
  return best;
}

/**
 * The policy an alert names: of the policies the flows' log prefixes named, one with a name (a kernel that cut the
 * prefix short may leave a kind alone), then the one that denied the most packets, then the example's.
 */
function denyingPolicy(flows: readonly FlowRecord[], example: FlowRecord): PolicyRef | null {
  // Nearly always one policy (or none): the pipeline hands equal policies over as one object.
  let only: PolicyRef | null = null;
  let mixed = false;
  for (const f of flows) {
    if (f.policy === null || f.policy === only) continue;
    if (only !== null) {
      mixed = true;
      break;
    }
    only = f.policy;
  }
  if (!mixed) return only;
  const totals = new Map<string, { policy: PolicyRef; packets: number }>();
  for (const f of flows) {
    if (f.policy === null) continue;
    const id = policyKey(f.policy);
    const seen = totals.get(id);
    if (seen === undefined) totals.set(id, { policy: f.policy, packets: f.packets });
    else seen.packets += f.packets;
  }
  // Ties go to the example's policy, then to the first by policyKey: the same flows in any order name the same one.
  const exampleId = example.policy === null ? undefined : policyKey(example.policy);
  let best: { id: string; policy: PolicyRef; named: boolean; packets: number } | undefined;
  for (const [id, { policy, packets }] of totals) {
    const named = policy.name !== null;
    const better =
      best === undefined ||
      (named !== best.named
        ? named
        : packets !== best.packets
          ? packets > best.packets
          : (id === exampleId) !== (best.id === exampleId)
            ? id === exampleId
            : id < best.id);
    if (better) best = { id, policy, named, packets };
  }
  return best?.policy ?? null;
}

function candidate(
  key: AlertKey,
  flows: readonly FlowRecord[],
  severity: AlertCandidate["severity"],
  reason: string,
  example: FlowRecord,
): AlertCandidate {
  let hits = 0;
  let firstSeen = example.firstSeen;
  let lastSeen = example.lastSeen;
  for (const f of flows) {
    hits += f.packets;
    if (f.firstSeen < firstSeen) firstSeen = f.firstSeen;
    if (f.lastSeen > lastSeen) lastSeen = f.lastSeen;
  }
  return {
    key,
    src: example.src,
    dst: example.dst,
    direction: example.direction,
    reporter: example.reporter,
    policy: denyingPolicy(flows, example),
    hits,
    firstSeen,
    lastSeen,
    severity,
    reason,
    spans: flows.map((f) => ({ firstSeen: f.firstSeen, lastSeen: f.lastSeen, hits: f.packets })),
  };
}

function internalDenials(flows: readonly FlowRecord[]): Group[] {
  // A flow's group is found by numbers (a number per cluster, endpoint name and protocol; the port itself) rather
  // than by a key string built for every flow. Flows share endpoint objects: each is named once.
  const numberOf = new Map<Endpoint, number>();
  const nameNumbers = new Map<string, number>();
  const names: string[] = [];
  const nameOf = (e: Endpoint): number => {
    let n = numberOf.get(e);
    if (n === undefined) {
      const name = alertEndpointKey(e);
      n = nameNumbers.get(name);
      if (n === undefined) {
        n = names.length;
        names.push(name);
        nameNumbers.set(name, n);
      }
      numberOf.set(e, n);
    }
    return n;
  };
  const texts = new Map<string, number>();
  const textNumber = (text: string): number => {
    let n = texts.get(text);
    if (n === undefined) {
      n = texts.size;
      texts.set(text, n);
    }
    return n;
  };
  const groupOf = new KeyTable(Math.min(flows.length, 256));
  const groups: Group[] = [];
  for (const f of flows) {
    if (!f.internal) continue;
    const src = nameOf(f.src);
    const dst = nameOf(f.dst);
    const cluster = textNumber(f.cluster);
    const protocol = textNumber(f.protocol);
    const port = f.dstPort === null ? 0 : f.dstPort + 1;
    const g = groupOf.get(cluster, src, dst, protocol, port, 0);
    if (g >= 0) {
      (groups[g] as Group).flows.push(f);
      continue;
    }
    const key: AlertKey = {
      cluster: f.cluster,
      src: names[src] as string,
      dst: names[dst] as string,
      protocol: f.protocol,
      dstPort: f.dstPort,
    };
    groupOf.add(cluster, src, dst, protocol, port, 0, groups.length);
    groups.push({ key, flows: [f] });
  }
  return groups;
}

/** The hits of a group's flows. */
function hitsOf(g: Group): number {
  let n = 0;
  for (const f of g.flows) n += f.packets;
  return n;
}

/** Its groups' flows as one candidate under `key`, the example the latest flow of its most-hit groups (order-free). */
function merged(key: AlertKey, own: readonly Group[], reason: string): AlertCandidate {
  const most = Math.max(...own.map(hitsOf));
  const example = latest(own.filter((o) => hitsOf(o) === most).flatMap((o) => o.flows));
  return candidate(
    key,
    own.flatMap((o) => o.flows),
    "high",
    reason,
    example,
  );
}

/** Groups by a name of theirs, each list in the groups' order. */
function groupsBy(groups: readonly Group[], nameOf: (g: Group) => string): Map<string, Group[]> {
  const by = new Map<string, Group[]>();
  for (const g of groups) {
    const name = nameOf(g);
    const own = by.get(name);
    if (own === undefined) by.set(name, [g]);
    else own.push(g);
  }
  return by;
}

/**
 * The internal denials as candidates: those of a source with at least `threshold` of them made one internal-scan
 * candidate, then those of a destination denied to at least `threshold` other sources one internal fan-in, each
 * where its first group was.
 */
function internalCandidates(groups: readonly Group[], threshold: number | undefined): AlertCandidate[] {
  if (threshold === undefined) {
    return groups.map((g) => candidate(g.key, g.flows, "high", "internal-denial", latest(g.flows)));
  }
  const sourceOf = (g: Group) => `${g.key.cluster}\n${g.key.src}`;
  const bySource = groupsBy(groups, sourceOf);
  // Distinct destinations and ports of each source (its groups differ in those and in protocol).
  const reach = new Map<string, number>();
  for (const [source, own] of bySource) {
    reach.set(source, new Set(own.map((g) => `${g.key.dst}\n${g.key.dstPort}`)).size);
  }
  const scanning = (g: Group) => (reach.get(sourceOf(g)) as number) >= threshold;
  // Groups of one destination, protocol and port have distinct sources: the key holds the rest.
  const destinationOf = (g: Group) => `${g.key.cluster}\n${g.key.dst}\n${g.key.protocol}\n${g.key.dstPort}`;
  const byDestination = groupsBy(
    groups.filter((g) => !scanning(g)),
    destinationOf,
  );
  const out: AlertCandidate[] = [];
  for (const g of groups) {
    if (scanning(g)) {
      const own = bySource.get(sourceOf(g)) as Group[];
      if (own[0] !== g) continue;
      const key = { ...g.key, dst: SCAN_DESTINATION, protocol: SCAN_PROTOCOL, dstPort: null };
      out.push(merged(key, own, "internal-scan"));
      continue;
    }
    const many = byDestination.get(destinationOf(g)) as Group[];
    if (many.length >= threshold) {
      if (many[0] === g) out.push(merged({ ...g.key, src: MANY_SOURCES }, many, "internal-fan-in"));
      continue;
    }
    out.push(candidate(g.key, g.flows, "high", "internal-denial", latest(g.flows)));
  }
  return out;
}

function externalScans(flows: readonly FlowRecord[], threshold: number): AlertCandidate[] {
  const bySource = new Map<string, { cluster: string; ip: string; flows: FlowRecord[] }>();
  for (const f of flows) {
    if (f.internal || f.src.kind !== "external") continue;
    const id = `${f.cluster}\n${f.src.ip}`;
    const group = bySource.get(id);
    if (group === undefined) bySource.set(id, { cluster: f.cluster, ip: f.src.ip, flows: [f] });
    else group.flows.push(f);
  }
  const out: AlertCandidate[] = [];
  for (const { cluster, ip, flows: own } of bySource.values()) {
    const ports = new Set<string>();
    const destinations = new Set<string>();
    const hitsByDestination = new Map<string, number>();
    for (const f of own) {
      if (f.dstPort !== null) ports.add(`${f.protocol}/${f.dstPort}`);
      destinations.add(f.dst.ip);
      hitsByDestination.set(f.dst.ip, (hitsByDestination.get(f.dst.ip) ?? 0) + f.packets);
    }
    if (ports.size < threshold && destinations.size < threshold) continue;
    // The example is the most-hit destination: its namespace is the one the scan bothered most.
    let top = own[0] as FlowRecord;
    for (const f of own) {
      const a = hitsByDestination.get(f.dst.ip) ?? 0;
      const b = hitsByDestination.get(top.dst.ip) ?? 0;
      if (a > b || (a === b && f.dst.ip < top.dst.ip)) top = f;
    }
    const key: AlertKey = { cluster, src: ip, dst: SCAN_DESTINATION, protocol: SCAN_PROTOCOL, dstPort: null };
    out.push(candidate(key, own, "low", "external-scan", top));
  }
  return out;
}

/**
 * Alert candidates for one payload's aggregated flows: internal denials and scans, then external scans, each in the order of
 * their first flow, so that the same flows make the same candidates in the same order (delivery publishes the first
 * ones when it caps a batch). Windows and de-duplication across payloads are the store's (FlowStore.applyAlerts).
 */
export function alertCandidates(flows: readonly FlowRecord[], options: AlertRuleOptions): AlertCandidate[] {
  const threshold = options.scanThreshold;
  if (threshold !== undefined && (!Number.isInteger(threshold) || threshold < 2)) {
    throw new Error(`scanThreshold must be an integer of at least 2, got ${threshold}`);
  }
  const out = internalCandidates(internalDenials(flows), threshold);
  if (threshold !== undefined) out.push(...externalScans(flows, threshold));
  return out;
}
