// The ingest pipeline, shared by the Lambda and the CLI: parse ▶ classify ▶ attribute ▶ aggregate ▶ alert
// candidates. Storage and delivery are the caller's (they differ only in the adapters they plug in).
import { type AttributedPacket, FlowAggregator } from "./aggregate.ts";
import { alertCandidates } from "./alert-rules.ts";
import { type CidrSet, canonicalIpv4, DEFAULT_WORKLOAD_INTERFACE_PREFIXES, directionOf } from "./classify.ts";
import type {
  AlertCandidate,
  Endpoint,
  FlowRecord,
  IpDirectory,
  Lookup,
  PacketRecord,
  ParseOutcome,
  Resolution,
  SpanLookup,
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

/** Per distinct address of a payload: internal or not, and its lookups (one per second). */
interface AddressState {
  ip: string;
  internal: boolean;
  /** Lookup index per second; packets come mostly in time order, so the last one is checked first. */
  lastSecond: number;
  lastLookup: number;
  bySecond: Map<number, number> | undefined;
  /** First and last second of its lookups: the span asked about when the directory answers for spans. */
  minSecond: number;
  maxSecond: number;
  /** For an external address, its (negative) code: -1 - index into the external endpoints. */
  externalCode: number;
}

/** Object.keys(o).length > 0 without building the array. */
function hasOwnKeys(o: object): boolean {
  for (const key in o) if (Object.hasOwn(o, key)) return true;
  return false;
}

/** An endpoint nobody is known to hold: external, unknown inside the cluster, or not looked up (resolved false). */
function bareEndpoint(ip: string, kind: "external" | "unknown", resolved: boolean): Endpoint {
  return { ip, kind, namespace: null, name: null, workload: null, node: null, resolved };
}

function endpointFor(ip: string, internal: boolean, resolution: Resolution | undefined): Endpoint {
  if (resolution === undefined) return bareEndpoint(ip, "external", true);
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
      if (h.labels !== undefined && hasOwnKeys(h.labels)) endpoint.labels = h.labels;
      return endpoint;
    }
    case "absent":
      return bareEndpoint(ip, internal ? "unknown" : "external", true);
    case "unavailable":
      return bareEndpoint(ip, "unknown", false);
  }
}

const NO_ENDPOINT: Endpoint = bareEndpoint("", "unknown", false);

/**
 * The directory's answer to every lookup. A directory that answers for spans is asked once per internal address
 * for the span of its lookups, and per second only for the addresses whose answer varies within it.
 */
async function resolveLookups(
  directory: IpDirectory,
  lookups: readonly Lookup[],
  addresses: readonly AddressState[],
): Promise<Resolution[]> {
  if (lookups.length === 0) return [];
  const check = (answers: readonly unknown[], asked: number, what: string) => {
    if (answers.length !== asked) {
      throw new Error(`directory answered ${answers.length} resolutions for ${asked} ${what}`);
    }
  };
  if (directory.resolveSpans === undefined) {
    const resolutions = await directory.resolve(lookups);
    check(resolutions, lookups.length, "lookups");
    return resolutions;
  }
  const spans: SpanLookup[] = addresses.map((a) => ({
    ip: a.ip,
    at: a.minSecond * 1000,
    until: a.maxSecond * 1000,
  }));
  const answers = await directory.resolveSpans(spans);
  check(answers, spans.length, "spans");
  const resolutions: Resolution[] = new Array(lookups.length);
  const again: number[] = [];
  for (let k = 0; k < addresses.length; k++) {
    const answer = answers[k] as (typeof answers)[number];
    const indexes = (addresses[k] as AddressState).bySecond as Map<number, number>;
    if (answer.status === "varies") for (const index of indexes.values()) again.push(index);
    else for (const index of indexes.values()) resolutions[index] = answer;
  }
  if (again.length > 0) {
    const more = await directory.resolve(again.map((index) => lookups[index] as Lookup));
    check(more, again.length, "lookups");
    for (let k = 0; k < again.length; k++) resolutions[again[k] as number] = more[k] as Resolution;
  }
  return resolutions;
}

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
  const records: PacketRecord[] = [];
  const times = new Float64Array(events.length);
  const reporters: string[] = [];
  // Per packet: the lookup index of each end (internal), or -1 - index of its external endpoint.
  const srcCode = new Int32Array(events.length);
  const dstCode = new Int32Array(events.length);

  // Only internal addresses are looked up: pods and nodes live there, and asking the API server about
  // every internet scanner would cost calls for nothing. Lookups are deduplicated per (IP, second): Kubernetes
  // timestamps have one-second resolution, so a finer key would ask the same question again.
  const lookups: Lookup[] = [];
  // Canonical dotted quads are found by their number (no string hashing per line), anything else by text.
  // Four maps by the address's low two bits, keyed by the other 30: small integers, which V8 hashes unboxed.
  const v4Addresses = [
    new Map<number, AddressState>(),
    new Map<number, AddressState>(),
    new Map<number, AddressState>(),
    new Map<number, AddressState>(),
  ];
  const otherAddresses = new Map<string, AddressState>();
  /** Internal addresses, in the order first seen. */
  const internalAddresses: AddressState[] = [];
  const externalEndpoints: Endpoint[] = [];
  const codeOf = (ip: string, at: number): number => {
    const v4 = canonicalIpv4(ip);
    let state =
      v4 >= 0 ? (v4Addresses[v4 & 3] as Map<number, AddressState>).get(v4 >>> 2) : otherAddresses.get(ip);
    if (state === undefined) {
      const internal = options.internal.contains(ip);
      state = {
        ip,
        internal,
        lastSecond: Number.NaN,
        lastLookup: -1,
        bySecond: undefined,
        minSecond: Number.POSITIVE_INFINITY,
        maxSecond: Number.NEGATIVE_INFINITY,
        externalCode: 0,
      };
      if (internal) {
        internalAddresses.push(state);
      } else {
        state.externalCode = -1 - externalEndpoints.length;
        externalEndpoints.push(endpointFor(ip, false, undefined));
      }
      if (v4 >= 0) (v4Addresses[v4 & 3] as Map<number, AddressState>).set(v4 >>> 2, state);
      else otherAddresses.set(ip, state);
    }
    if (!state.internal) return state.externalCode;
    const second = Math.floor(at / 1000);
    if (second === state.lastSecond) return state.lastLookup;
    let bySecond = state.bySecond;
    if (bySecond === undefined) {
      bySecond = new Map();
      state.bySecond = bySecond;
    }
    let index = bySecond.get(second);
    if (index === undefined) {
      index = lookups.length;
      bySecond.set(second, index);
      // The address's first string for all its lookups: one string per address for the directory and below.
      lookups.push({ ip: state.ip, at: second * 1000 });
      if (second < state.minSecond) state.minSecond = second;
      if (second > state.maxSecond) state.maxSecond = second;
    }
    state.lastSecond = second;
    state.lastLookup = index;
    return index;
  };

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
    const n = records.length;
    records.push(r);
    times[n] = at;
    reporters.push(r.node ?? event.node ?? "unknown");
    srcCode[n] = codeOf(r.src, at);
    dstCode[n] = codeOf(r.dst, at);
  }

  const resolutions = await resolveLookups(options.directory, lookups, internalAddresses);
  const aggregator = new FlowAggregator(options.cluster, options.bucketSeconds);
  // One Endpoint object per (address, holder): directories hand back the same holder object for every time it
  // covers, so the many lookups of a busy address share one endpoint and aggregation keys stay cheap.
  const internalEndpoints: Endpoint[] = new Array(lookups.length);
  const internalIds = new Int32Array(lookups.length);
  for (const address of internalAddresses) {
    let byIdentity: Map<unknown, Endpoint> | undefined;
    let lastIdentity: unknown;
    let e = NO_ENDPOINT;
    let id = 0;
    for (const index of (address.bySecond as Map<number, number>).values()) {
      const resolution = resolutions[index] as Resolution;
      const identity = resolution.status === "found" ? resolution.holder : resolution.status;
      if (identity !== lastIdentity) {
        byIdentity ??= new Map();
        let known = byIdentity.get(identity);
        if (known === undefined) {
          known = endpointFor(address.ip, true, resolution);
          if (!known.resolved) stats.unresolved++;
          else if (known.kind === "unknown") stats.attributionMisses++;
          byIdentity.set(identity, known);
        }
        e = known;
        id = aggregator.endpointId(e);
        lastIdentity = identity;
      }
      internalEndpoints[index] = e;
      internalIds[index] = id;
    }
  }
  const externalIds = externalEndpoints.map((e) => aggregator.endpointId(e));

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
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as PacketRecord;
    const s = srcCode[i] as number;
    const d = dstCode[i] as number;
    packet.at = times[i] as number;
    packet.src = s >= 0 ? (internalEndpoints[s] as Endpoint) : (externalEndpoints[-1 - s] as Endpoint);
    packet.dst = d >= 0 ? (internalEndpoints[d] as Endpoint) : (externalEndpoints[-1 - d] as Endpoint);
    packet.protocol = r.protocol;
    packet.dstPort = r.dstPort;
    packet.direction = directionOf(r.inInterface, r.outInterface, prefixes);
    packet.reporter = reporters[i] as string;
    packet.internal = s >= 0 && d >= 0;
    packet.length = r.length;
    packet.policy = r.policy;
    packet.tcpFlags = r.tcpFlags;
    aggregator.addInterned(
      packet,
      s >= 0 ? (internalIds[s] as number) : (externalIds[-1 - s] as number),
      d >= 0 ? (internalIds[d] as number) : (externalIds[-1 - d] as number),
    );
  }
  const flows = aggregator.flows();
  const candidates = alertCandidates(flows, { scanThreshold: options.scanThreshold });
  return { flows, candidates, stats, malformed };
}
