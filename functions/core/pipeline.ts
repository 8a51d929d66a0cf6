// The ingest pipeline, shared by the Lambda and the CLI: parse ▶ classify ▶ attribute ▶ aggregate ▶ alert
// candidates. Storage and delivery are the caller's (they differ only in the adapters they plug in).
import { FlowAggregator } from "./aggregate.ts";
import { alertCandidates } from "./alert-rules.ts";
import { type CidrSet, DEFAULT_WORKLOAD_INTERFACE_PREFIXES, directionOf } from "./classify.ts";
import type {
  AlertCandidate,
  Endpoint,
  FlowRecord,
  IpDirectory,
  Lookup,
  ParseOutcome,
  PolicyRef,
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

interface Parsed {
  at: number;
  src: string;
  dst: string;
  protocol: string;
  dstPort: number | null;
  inInterface: string | null;
  outInterface: string | null;
  reporter: string;
  length: number;
  policy: PolicyRef | null;
  tcpFlags: string[];
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
      return { ip, kind: "unknown", namespace: null, name: null, workload: null, node: null, resolved: false };
  }
}

export async function runPipeline(events: readonly LogEvent[], options: PipelineOptions): Promise<PipelineResult> {
  const prefixes = options.workloadInterfacePrefixes ?? DEFAULT_WORKLOAD_INTERFACE_PREFIXES;
  const sampleLimit = options.malformedSamples ?? 20;
  const now = options.now ?? Date.now;
  const stats: PipelineStats = { lines: 0, calico: 0, skipped: 0, malformed: 0, unresolved: 0, attributionMisses: 0 };
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
    const lineTime = r.time === null ? Number.NaN : Date.parse(r.time);
    parsed.push({
      at: event.timestamp ?? (Number.isNaN(lineTime) ? now() : lineTime),
      src: r.src,
      dst: r.dst,
      protocol: r.protocol,
      dstPort: r.dstPort,
      inInterface: r.inInterface,
      outInterface: r.outInterface,
      reporter: r.node ?? event.node ?? "unknown",
      length: r.length,
      policy: r.policy,
      tcpFlags: r.tcpFlags,
    });
  }

  // Only internal addresses are looked up: pods and nodes live there, and asking the API server about
  // every internet scanner would cost calls for nothing.
  const lookupIndex = new Map<string, number>();
  const lookups: Lookup[] = [];
  const want = (ip: string, at: number) => {
    if (!options.internal.contains(ip)) return;
    const key = `${ip}|${at}`;
    if (!lookupIndex.has(key)) {
      lookupIndex.set(key, lookups.length);
      lookups.push({ ip, at });
    }
  };
  for (const p of parsed) {
    want(p.src, p.at);
    want(p.dst, p.at);
  }
  const resolutions = lookups.length > 0 ? await options.directory.resolve(lookups) : [];
  if (resolutions.length !== lookups.length) {
    throw new Error(`directory answered ${resolutions.length} resolutions for ${lookups.length} lookups`);
  }

  const endpoints = new Map<string, Endpoint>();
  const endpoint = (ip: string, at: number): Endpoint => {
    const internal = options.internal.contains(ip);
    const key = internal ? `${ip}|${at}` : ip;
    let e = endpoints.get(key);
    if (e === undefined) {
      const index = internal ? lookupIndex.get(key) : undefined;
      e = endpointFor(ip, internal, index === undefined ? undefined : resolutions[index]);
      if (!e.resolved) stats.unresolved++;
      else if (e.kind === "unknown") stats.attributionMisses++;
      endpoints.set(key, e);
    }
    return e;
  };

  const aggregator = new FlowAggregator(options.cluster, options.bucketSeconds);
  for (const p of parsed) {
    aggregator.add({
      at: p.at,
      src: endpoint(p.src, p.at),
      dst: endpoint(p.dst, p.at),
      protocol: p.protocol,
      dstPort: p.dstPort,
      direction: directionOf(p.inInterface, p.outInterface, prefixes),
      reporter: p.reporter,
      internal: options.internal.contains(p.src) && options.internal.contains(p.dst),
      length: p.length,
      policy: p.policy,
      tcpFlags: p.tcpFlags,
    });
  }
  const flows = aggregator.flows();
  const candidates = alertCandidates(flows, { scanThreshold: options.scanThreshold });
  return { flows, candidates, stats, malformed };
}
