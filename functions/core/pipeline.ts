// The ingest pipeline, shared by the Lambda and the CLI: parse ▶ classify ▶ attribute ▶ aggregate ▶ alert
// candidates. Storage and delivery are the caller's (they differ only in the adapters they plug in).
import { type AttributedPacket, FlowAggregator } from "./aggregate.ts";
import { alertCandidates } from "./alert-rules.ts";
import { type CidrSet, DEFAULT_WORKLOAD_INTERFACE_PREFIXES, directionOf } from "./classify.ts";
import type {
  AlertCandidate,
  Endpoint,
  FlowRecord,
  IpDirectory,
  Lookup,
  PacketRecord,
  ParseOutcome,
  Resolution,
} from "./types.ts";

/** One log line as delivered: CloudWatch Logs gives its own timestamp and the stream (node) it came from. */
export interface LogEvent {
  message: string;
  /** Epoch ms; when present it wins over the line's own timestamp, which has no year and no zone in syslog. */
  timestamp?: number;
  /** Fallback reporter when the line carries no host name (the log stream is usually the node). */
  node?: string;
}

export interface PipelineOptions {
  cluster: string;
  internal: CidrSet;
  bucketSeconds: number;
  parse: (line: string) => ParseOutcome;
  directory: IpDirectory;
  workloadInterfacePrefixes?: readonly string[];
  /** External scan detection threshold (distinct ports or destinations); undefined = off. */
  scanThreshold?: number;
  /** Time of lines that carry none and arrive without an event timestamp. */
  now?: () => number;
  /** How many malformed lines to keep with their reasons (all are counted). */
  malformedSamples?: number;
}

export interface PipelineStats {
  lines: number;
  calico: number;
  skipped: number;
  malformed: number;
  /** Endpoints whose lookup could not be made (Kubernetes unavailable): stored as unresolved. */
  unresolved: number;
  /** Internal addresses the directory had no holder for at that time. */
  attributionMisses: number;
}

export interface PipelineResult {
  flows: FlowRecord[];
  candidates: AlertCandidate[];
  stats: PipelineStats;
  malformed: { index: number; reason: string }[];
}

/** A parsed line with its event time (epoch ms) and reporting node settled. */
interface Parsed {
  record: PacketRecord;
  at: number;
  reporter: string;
}

function endpointFor(ip: string, internal: boolean, resolution: Resolution | undefined): Endpoint {
  if (resolution === undefined) {
    return { ip, kind: "external", namespace: null, name: null, workload: null, node: null, resolved: true };
  }
  switch (resolution.status) {
    case "found": {
      const h = resolution.holder;
      const endpoint: Endpoint = {
        ip,
        kind: h.kind,
        namespace: h.namespace,
        name: h.name,
        workload: h.workload,
        node: h.node,
        resolved: true,
      };
      if (h.labels !== undefined && Object.keys(h.labels).length > 0) endpoint.labels = h.labels;
      return endpoint;
    }
    case "absent":
      return {
        ip,
        kind: internal ? "unknown" : "external",
        namespace: null,
        name: null,
        workload: null,
        node: null,
        resolved: true,
      };
    case "unavailable":
      return {
        ip,
        kind: "unknown",
        namespace: null,
        name: null,
        workload: null,
        node: null,
        resolved: false,
      };
  }
}

const NO_ENDPOINT: Endpoint = {
  ip: "",
  kind: "unknown",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved: false,
};

export async function runPipeline(
  events: readonly LogEvent[],
  options: PipelineOptions,
): Promise<PipelineResult> {
  const prefixes = options.workloadInterfacePrefixes ?? DEFAULT_WORKLOAD_INTERFACE_PREFIXES;
  const sampleLimit = options.malformedSamples ?? 20;
  const now = options.now ?? Date.now;
  const stats: PipelineStats = {
    lines: 0,
    calico: 0,
    skipped: 0,
    malformed: 0,
    unresolved: 0,
    attributionMisses: 0,
  };
  const malformed: { index: number; reason: string }[] = [];
  const parsed: Parsed[] = [];

  for (let i = 0; i < events.length; i++) {
    const event = events[i] as LogEvent;
    stats.lines++;
    const outcome = options.parse(event.message);
    if (outcome.kind === "skip") {
      stats.skipped++;
      continue;
    }
    if (outcome.kind === "error") {
      stats.malformed++;
      if (malformed.length < sampleLimit) malformed.push({ index: i, reason: outcome.reason });
      continue;
    }
    stats.calico++;
    const r = outcome.record;
    let at = event.timestamp;
    if (at === undefined) {
      const lineTime = r.time === null ? Number.NaN : Date.parse(r.time);
      at = Number.isNaN(lineTime) ? now() : lineTime;
    }
    parsed.push({ record: r, at, reporter: r.node ?? event.node ?? "unknown" });
  }

  // Only internal addresses are looked up: pods and nodes live there, and asking the API server about
  // every internet scanner would cost calls for nothing. Lookups are deduplicated per (IP, second): Kubernetes
  // timestamps have one-second resolution, so a finer key would ask the same question again.
  const lookups: Lookup[] = [];
  const lookupIndex = new Map<string, Map<number, number>>();
  const lookupOf = (ip: string, at: number): number => {
    const second = Math.floor(at / 1000);
    let bySecond = lookupIndex.get(ip);
    if (bySecond === undefined) {
      bySecond = new Map();
      lookupIndex.set(ip, bySecond);
    }
    let index = bySecond.get(second);
    if (index === undefined) {
      index = lookups.length;
      bySecond.set(second, index);
      lookups.push({ ip, at: second * 1000 });
    }
    return index;
  };
  // Per packet: the lookup index of each end, or -1 for an external address.
  const srcLookup = new Int32Array(parsed.length);
  const dstLookup = new Int32Array(parsed.length);
  for (let i = 0; i < parsed.length; i++) {
    const p = parsed[i] as Parsed;
    const { src, dst } = p.record;
    srcLookup[i] = options.internal.contains(src) ? lookupOf(src, p.at) : -1;
    dstLookup[i] = options.internal.contains(dst) ? lookupOf(dst, p.at) : -1;
  }
  const resolutions = lookups.length > 0 ? await options.directory.resolve(lookups) : [];
  if (resolutions.length !== lookups.length) {
    throw new Error(`directory answered ${resolutions.length} resolutions for ${lookups.length} lookups`);
  }
  // One Endpoint object per (IP, holder): directories hand back the same holder object for every time it
  // covers, so the many lookups of a busy address share one endpoint and aggregation keys stay cheap.
  const shared = new Map<string, Map<unknown, Endpoint>>();
  const internalEndpoints = lookups.map((l, i) => {
    const resolution = resolutions[i] as Resolution;
    const identity = resolution.status === "found" ? resolution.holder : resolution.status;
    let byIdentity = shared.get(l.ip);
    if (byIdentity === undefined) {
      byIdentity = new Map();
      shared.set(l.ip, byIdentity);
    }
    let e = byIdentity.get(identity);
    if (e === undefined) {
      e = endpointFor(l.ip, true, resolution);
      if (!e.resolved) stats.unresolved++;
      else if (e.kind === "unknown") stats.attributionMisses++;
      byIdentity.set(identity, e);
    }
    return e;
  });
  const externalEndpoints = new Map<string, Endpoint>();
  const endpoint = (ip: string, index: number): Endpoint => {
    if (index >= 0) return internalEndpoints[index] as Endpoint;
    let e = externalEndpoints.get(ip);
    if (e === undefined) {
      e = endpointFor(ip, false, undefined);
      externalEndpoints.set(ip, e);
    }
    return e;
  };

  const aggregator = new FlowAggregator(options.cluster, options.bucketSeconds);
  // One scratch packet for every line: the aggregator copies what it keeps, so nothing is allocated per line.
  const packet: AttributedPacket = {
    at: 0,
    src: NO_ENDPOINT,
    dst: NO_ENDPOINT,
    protocol: "",
    dstPort: null,
    direction: "host",
    reporter: "",
    internal: false,
    length: 0,
    policy: null,
    tcpFlags: [],
  };
  for (let i = 0; i < parsed.length; i++) {
    const { record: r, at, reporter } = parsed[i] as Parsed;
    const s = srcLookup[i] as number;
    const d = dstLookup[i] as number;
    packet.at = at;
    packet.src = endpoint(r.src, s);
    packet.dst = endpoint(r.dst, d);
    packet.protocol = r.protocol;
    packet.dstPort = r.dstPort;
    packet.direction = directionOf(r.inInterface, r.outInterface, prefixes);
    packet.reporter = reporter;
    packet.internal = s >= 0 && d >= 0;
    packet.length = r.length;
    packet.policy = r.policy;
    packet.tcpFlags = r.tcpFlags;
    aggregator.add(packet);
  }
  const flows = aggregator.flows();
  const candidates = alertCandidates(flows, { scanThreshold: options.scanThreshold });
  return { flows, candidates, stats, malformed };
}
