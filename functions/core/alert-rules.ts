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
//   distinct destination ports (a port over UDP and TCP counts once, as inside) or N distinct destination IPs in
//   the flows handed in (one payload). The key is the source alone — dst `*scan*`, protocol `*`, no port — so a
//   scan spread over many payloads folds into one alert per window instead of one per port. A scan slower than one payload's span is not detected: the rule
//   only sees the flows it is given.
//
// alertCandidates judges one payload. A payload is one node's log stream, and an egress denial is logged on the
// source's node, so the ingest counts the internal rules across payloads too (talliedAlertCandidates): each source's
// destinations and ports, and each destination's sources, in the store's denial tallies (ports.ts, DenialTally).
import { policyKey } from "./aggregate.ts";
import { KeyTable } from "./key-table.ts";
import { type DenialTally, MAX_TALLY_CAP, type TallyEntry, type TallyVerdict } from "./ports.ts";
import {
  type AlertCandidate,
  type AlertKey,
  type AlertNamespaces,
  type Endpoint,
  type FlowRecord,
  MAX_ALERT_NAMESPACES,
  type PolicyRef,
} from "./types.ts";

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

/**
 * The distinct namespaces of the flows' sources and destinations, sorted (none first), at most
 * MAX_ALERT_NAMESPACES each, the example's always among them.
 */
function namespacesOf(flows: readonly FlowRecord[], example: FlowRecord): AlertNamespaces {
  const of = (end: "src" | "dst") =>
    keptNamespaces(
      flows.map((f) => f[end].namespace),
      example[end].namespace,
    );
  return { src: of("src"), dst: of("dst") };
}

/** Distinct namespaces, sorted (none first), at most MAX_ALERT_NAMESPACES, `own` always among them. */
function keptNamespaces(all: readonly (string | null)[], own: string | null): (string | null)[] {
  const kept = [...new Set(all)]
    .sort((a, b) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1))
    .slice(0, MAX_ALERT_NAMESPACES);
  if (!kept.includes(own)) kept[kept.length - 1] = own;
  return kept;
}

/** The namespaces of two candidates of one key as one, those of the example's ends (`own`) kept. */
export function unionNamespaces(
  a: AlertNamespaces,
  b: AlertNamespaces,
  own: { src: Endpoint; dst: Endpoint },
): AlertNamespaces {
  return {
    src: keptNamespaces([...a.src, ...b.src], own.src.namespace),
    dst: keptNamespaces([...a.dst, ...b.dst], own.dst.namespace),
  };
}

/** A candidate that stands for many ends (a scan, a fan-in): with the namespaces of all of them. */
function many(
  key: AlertKey,
  flows: readonly FlowRecord[],
  severity: AlertCandidate["severity"],
  reason: string,
  example: FlowRecord,
): AlertCandidate {
  return { ...candidate(key, flows, severity, reason, example), namespaces: namespacesOf(flows, example) };
}

/**
 * Its groups' flows as one candidate under `key`, the example the latest flow of the most-hit ends (order-free):
 * `endOf` names the end the groups stand for, a scan's destinations or a fan-in's sources. Counted per end, not per
 * group: a scan's forty ports of one database, one denial each, outweigh three DNS retries on one port.
 */
function merged(
  key: AlertKey,
  own: readonly Group[],
  reason: string,
  endOf: (g: Group) => string,
): AlertCandidate {
  const hitsByEnd = new Map<string, number>();
  for (const o of own) hitsByEnd.set(endOf(o), (hitsByEnd.get(endOf(o)) ?? 0) + hitsOf(o));
  const most = Math.max(...hitsByEnd.values());
  const example = latest(own.filter((o) => hitsByEnd.get(endOf(o)) === most).flatMap((o) => o.flows));
  return many(
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

const sourceOf = (g: Group) => `${g.key.cluster}\n${g.key.src}`;
// Groups of one destination, protocol and port have distinct sources: the key holds the rest.
const destinationOf = (g: Group) => `${g.key.cluster}\n${g.key.dst}\n${g.key.protocol}\n${g.key.dstPort}`;
/** What a source's scan counts: its destinations and ports (its groups differ in those and in protocol). */
const reachOf = (g: Group) => `${g.key.dst}\n${g.key.dstPort}`;

/**
 * The internal rules' counts for one payload's groups, in two steps: the sources' reach (distinct destinations and
 * ports), which says which sources scan, then the sources of each destination that the scanners leave. They start as
 * what the payload holds; a tally (talliedAlertCandidates) may raise them with what other payloads held lately, or
 * a kept verdict set them.
 */
class InternalCounts {
  readonly bySource: Map<string, Group[]>;
  readonly reach = new Map<string, number>();
  byDestination = new Map<string, Group[]>();
  readonly sources = new Map<string, number>();

  readonly groups: readonly Group[];
  readonly threshold: number;

  constructor(groups: readonly Group[], threshold: number) {
    this.groups = groups;
    this.threshold = threshold;
    this.bySource = groupsBy(groups, sourceOf);
    for (const [source, own] of this.bySource) this.reach.set(source, new Set(own.map(reachOf)).size);
  }

  scanning(g: Group): boolean {
    return (this.reach.get(sourceOf(g)) as number) >= this.threshold;
  }

  /** Once the reach is final: the groups of sources that do not scan, by destination. */
  countSources(): void {
    this.sources.clear();
    this.byDestination = groupsBy(
      this.groups.filter((g) => !this.scanning(g)),
      destinationOf,
    );
    for (const [destination, own] of this.byDestination) this.sources.set(destination, own.length);
  }

  /** Internal-scan candidates, then fan-ins, then denials, each where its first group was. */
  candidates(): AlertCandidate[] {
    const out: AlertCandidate[] = [];
    for (const g of this.groups) {
      if (this.scanning(g)) {
        const own = this.bySource.get(sourceOf(g)) as Group[];
        if (own[0] !== g) continue;
        const key = { ...g.key, dst: SCAN_DESTINATION, protocol: SCAN_PROTOCOL, dstPort: null };
        out.push(merged(key, own, "internal-scan", (o) => o.key.dst));
        continue;
      }
      const destination = destinationOf(g);
      if ((this.sources.get(destination) as number) >= this.threshold) {
        const many = this.byDestination.get(destination) as Group[];
        if (many[0] === g)
          out.push(merged({ ...g.key, src: MANY_SOURCES }, many, "internal-fan-in", (o) => o.key.src));
        continue;
      }
      out.push(candidate(g.key, g.flows, "high", "internal-denial", latest(g.flows)));
    }
    return out;
  }
}

/**
 * The internal denials as candidates: those of a source with at least `threshold` distinct destinations and ports
 * made one internal-scan candidate, then those of a destination denied to at least `threshold` other sources one
 * internal fan-in, each where its first group was.
 */
function internalCandidates(groups: readonly Group[], threshold: number | undefined): AlertCandidate[] {
  if (threshold === undefined) {
    return groups.map((g) => candidate(g.key, g.flows, "high", "internal-denial", latest(g.flows)));
  }
  const counts = new InternalCounts(groups, threshold);
  counts.countSources();
  return counts.candidates();
}

/** Epoch ms of the latest hit of some groups. */
function latestMs(own: readonly Group[]): number {
  let at = Number.NEGATIVE_INFINITY;
  for (const g of own) for (const f of g.flows) at = Math.max(at, Date.parse(f.lastSeen));
  return at;
}

/**
 * Raises each of `counts`' entries to what `tally` counts for it (this payload's members added to the subject's
 * recent ones), under `kind`'s subject names.
 */
async function raiseByTally(
  counts: Map<string, number>,
  byName: ReadonlyMap<string, readonly Group[]>,
  kind: "source" | "destination",
  memberOf: (g: Group) => string,
  tally: DenialTally,
  options: { windowMs: number; cap: number },
): Promise<void> {
  const names = [...byName.keys()];
  const entries: TallyEntry[] = names.map((name) => {
    const own = byName.get(name) as readonly Group[];
    return {
      cluster: (own[0] as Group).key.cluster,
      subject: `${kind}\n${name}`,
      members: [...new Set(own.map(memberOf))],
      atMs: latestMs(own),
    };
  });
  const tallied = entries.length === 0 ? [] : await tally.tally(entries, options);
  names.forEach((name, i) => {
    counts.set(name, Math.max(counts.get(name) as number, tallied[i] as number));
  });
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
    // A port alone, as the internal rule counts it: a resolver retrying over TCP is not probing another port.
    const ports = new Set<number>();
    const destinations = new Set<string>();
    const hitsByDestination = new Map<string, number>();
    for (const f of own) {
      if (f.dstPort !== null) ports.add(f.dstPort);
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
    out.push(many(key, own, "low", "external-scan", top));
  }
  return out;
}

function checkThreshold(threshold: number): void {
  if (!Number.isInteger(threshold) || threshold < 2) {
    throw new Error(`scanThreshold must be an integer of at least 2, got ${threshold}`);
  }
}

/**
 * Alert candidates for one payload's aggregated flows: internal denials and scans, then external scans, each in the order of
 * their first flow, so that the same flows make the same candidates in the same order (delivery publishes the first
 * ones when it caps a batch). Windows and de-duplication across payloads are the store's (FlowStore.applyAlerts).
 */
export function alertCandidates(flows: readonly FlowRecord[], options: AlertRuleOptions): AlertCandidate[] {
  const threshold = options.scanThreshold;
  if (threshold !== undefined) checkThreshold(threshold);
  const out = internalCandidates(internalDenials(flows), threshold);
  if (threshold !== undefined) out.push(...externalScans(flows, threshold));
  return out;
}

/**
 * alertCandidates with the internal rules counting across payloads: a source's destinations and ports, and a
 * destination's sources, are those `tally` holds for the alert window of their latest hit and the ones either side
 * of it, this payload's included.
 * Each node's log stream is delivered on its own, and an egress denial is logged on the source's node, so a policy
 * that cuts thirty clients on ten nodes off from DNS reaches the threshold only in the store. The alerts opened
 * before it was reached stay (at most threshold − 1 per destination or source); from then on the destination's (or
 * the source's) denials fold into one fan-in (or scan) alert per window. With `run`, the judgement is kept, and a
 * later run of the contribution judges by it rather than by the tallies of its moment. Without a threshold, or
 * with one above MAX_TALLY_CAP, it is alertCandidates.
 */
export async function talliedAlertCandidates(
  flows: readonly FlowRecord[],
  options: AlertRuleOptions,
  tally: DenialTally,
  windowMs: number,
  /**
   * The payload's contribution, whose judgement is kept (DenialTally.saveVerdict) so that its retries and
   * redeliveries judge as its first run did; `firstRun`: none can have been kept yet. Absent: nothing is kept.
   */
  run?: { contribution: string; firstRun: boolean },
): Promise<AlertCandidate[]> {
  const threshold = options.scanThreshold;
  if (threshold === undefined || threshold > MAX_TALLY_CAP) return alertCandidates(flows, options);
  checkThreshold(threshold);
  const groups = internalDenials(flows);
  let counts = new InternalCounts(groups, threshold);
  const cluster = groups[0]?.key.cluster;
  if (cluster !== undefined) {
    const kept =
      run === undefined || run.firstRun ? undefined : await tally.loadVerdict(cluster, run.contribution);
    if (kept !== undefined) {
      judge(counts, kept);
    } else {
      const cap = { windowMs, cap: threshold };
      await raiseByTally(counts.reach, counts.bySource, "source", reachOf, tally, cap);
      counts.countSources();
      await raiseByTally(counts.sources, counts.byDestination, "destination", (g) => g.key.src, tally, cap);
      if (run !== undefined) {
        const over = [
          ...[...counts.reach].filter(([, n]) => n >= threshold).map(([name]) => `source\n${name}`),
          ...[...counts.sources].filter(([, n]) => n >= threshold).map(([name]) => `destination\n${name}`),
        ];
        const saved = await tally.saveVerdict(cluster, run.contribution, over, latestMs(groups));
        // A concurrent run of the contribution may have kept its own first: the judgement is the one kept, over the
        // payload's own counts (this run's were raised by the tallies of its moment, which may have grown since).
        counts = new InternalCounts(groups, threshold);
        judge(counts, saved);
      }
    }
  }
  const out = counts.candidates();
  out.push(...externalScans(flows, threshold));
  return out;
}

/**
 * Raises the payload's own counts (not raised by any tally) to what a kept verdict judged: the threshold for the
 * subjects it took over. The others keep the payload's own counts, which decide alone when a later run's flows differ
 * from its first run's (attributed otherwise, or judged at a lower threshold): a scan its own flows make stays a scan.
 */
function judge(counts: InternalCounts, verdict: TallyVerdict): void {
  for (const source of counts.reach.keys()) {
    if (verdict.over(`source\n${source}`)) counts.reach.set(source, counts.threshold);
  }
  counts.countSources();
  for (const destination of counts.sources.keys()) {
    if (verdict.over(`destination\n${destination}`)) counts.sources.set(destination, counts.threshold);
  }
}
