// The ingest pipeline, shared by the Lambda and the CLI: parse ▶ classify ▶ attribute ▶ aggregate ▶ alert
// candidates. Storage and delivery are the caller's (they differ only in the adapters they plug in).
import { type CountedPacket, endpointKey, FlowAggregator } from "./aggregate.ts";
import { alertCandidates } from "./alert-rules.ts";
import { type CidrSet, DEFAULT_WORKLOAD_INTERFACE_PREFIXES, directionAt } from "./classify.ts";
import { DeliveredEvents } from "./delivered-events.ts";
import { formatIpv6Groups } from "./ipv6.ts";
import { NumberTable } from "./key-table.ts";
import { decodePolicy, type LineParser, type Scan } from "./parse.ts";
import type {
  AlertCandidate,
  Direction,
  Endpoint,
  FlowRecord,
  IpDirectory,
  Lookup,
  Resolution,
  SpanLookup,
} from "./types.ts";

/**
 * One log event as delivered: CloudWatch Logs gives its own timestamp and the stream (node) it came from. Its message
 * is a line, or several (a shipper's multiline mode), each read as a line of its own.
 */
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
  /** The parser, made by createScanner (it leaves each record in its fields rather than building it). */
  scanner: LineParser;
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
  /** Log events, as the log group's metric filter counts them: an event of several lines is one. */
  lines: number;
  /** Calico lines read into packets: an event may hold several. */
  calico: number;
  /** Events without a calico line. */
  skipped: number;
  /** Calico lines that could not be parsed. */
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
  /** Malformed lines, by the index of their event. */
  malformed: { index: number; reason: string }[];
}

/**
 * Per distinct address of a payload: internal or not, and its lookups (one per second), chained through the
 * pipeline's `nextLookup` array from `firstLookup` (-1: none yet).
 */
interface AddressState {
  ip: string;
  internal: boolean;
  firstLookup: number;
  tailLookup: number;
  /** The lookup of the last second seen; packets come mostly in time order, so it is checked first. */
  lastSecond: number;
  lastLookup: number;
  /** Lookup index per second, made only when a second comes after a later one. */
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

/**
 * The endpoint of `ip` as a resolution names it: its holder (found), `unknown` inside the cluster or `external`
 * outside (absent; undefined: not looked up), or `unknown` and not resolved (unavailable).
 */
export function endpointFor(ip: string, internal: boolean, resolution: Resolution | undefined): Endpoint {
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
/** No identity yet: differs from every holder and status. */
const NOBODY = Symbol("nobody");

/**
 * The directory's answer to every lookup. A directory that answers for spans is asked once per internal address
 * for the span of its lookups, and per second only for the addresses whose answer varies within it.
 */
async function resolveLookups(
  directory: IpDirectory,
  lookups: readonly Lookup[],
  addresses: readonly AddressState[],
  nextLookup: Int32Array,
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
    const first = (addresses[k] as AddressState).firstLookup;
    if (answer.status === "varies") {
      for (let index = first; index >= 0; index = nextLookup[index] as number) again.push(index);
    } else {
      for (let index = first; index >= 0; index = nextLookup[index] as number) resolutions[index] = answer;
    }
  }
  if (again.length > 0) {
    const more = await directory.resolve(again.map((index) => lookups[index] as Lookup));
    check(more, again.length, "lookups");
    for (let k = 0; k < again.length; k++) resolutions[again[k] as number] = more[k] as Resolution;
  }
  return resolutions;
}

/** Slots of the pipeline's table of host names (a power of two), and the longest name it keeps. */
const REPORTER_SLOTS = 256;
const REPORTER_BYTES = 64;
const EMPTY_SLOT = -1;
/** The id of a slot whose name is a placeholder: the line's reporter is then its event's node. */
const PLACEHOLDER_ID = -2;
/**
 * Host names that name no node: a host without its name set (Bottlerocket's kernel log has been seen to say `localhost`; a kernel
 * line from before the host name was set says `(none)`). A line carrying one is reported by its log stream's
 * node, as a line carrying none is.
 */
const PLACEHOLDER_HOSTS: ReadonlySet<string> = new Set(["localhost", "localhost.localdomain", "(none)"]);

/**
 * text.slice(start, end) as a string of its own, for a value that may outlive the run (addresses stay in the live
 * directory's caches). V8 makes a slice of 13 characters or more as a view into its text, here possibly a 32 KiB
 * window of a delivery scanned in place; this one is joined from slices of at most 12, which are copies.
 */
function detached(text: string, start: number, end: number): string {
  let out = "";
  for (let k = start; k < end; k += 12) out += text.slice(k, Math.min(k + 12, end));
  return out;
}

/**
 * What aggregation needs of each packet, in columns, and the chain of lookups (at most two per packet), with room
 * for `capacity` packets (and what `from` holds, when given). Every value is written before it is read, so columns
 * are reused from one run to the next: columns made for every delivery (some 200 KB) add to the memory outside V8's
 * heap that makes it collect its old generation.
 */
class PacketColumns {
  readonly capacity: number;
  readonly times: Float64Array;
  readonly lengths: Float64Array;
  readonly protocolPorts: Int32Array;
  readonly reporters: Int32Array;
  readonly policies: Int32Array;
  readonly flags: Uint16Array;
  /** Per packet: the lookup index of each end (internal), or -1 - index of its external endpoint. */
  readonly srcCode: Int32Array;
  readonly dstCode: Int32Array;
  readonly nextLookup: Int32Array;

  constructor(capacity: number, from?: PacketColumns) {
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    this.lengths = new Float64Array(capacity);
    this.protocolPorts = new Int32Array(capacity);
    this.reporters = new Int32Array(capacity);
    this.policies = new Int32Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.srcCode = new Int32Array(capacity);
    this.dstCode = new Int32Array(capacity);
    this.nextLookup = new Int32Array(2 * capacity);
    if (from !== undefined) {
      this.times.set(from.times);
      this.lengths.set(from.lengths);
      this.protocolPorts.set(from.protocolPorts);
      this.reporters.set(from.reporters);
      this.policies.set(from.policies);
      this.flags.set(from.flags);
      this.srcCode.set(from.srcCode);
      this.dstCode.set(from.dstCode);
      this.nextLookup.set(from.nextLookup);
    }
  }
}

/** Columns that no run holds; runs that overlap (they await the directory) each take their own. */
const idleColumns: PacketColumns[] = [];
/** The most idle columns kept, and the largest (in packets): a huge batch's columns are left to the collector. */
const IDLE_COLUMNS = 4;
const KEPT_CAPACITY = 1 << 16;

function takeColumns(packets: number): PacketColumns {
  for (let k = idleColumns.length - 1; k >= 0; k--) {
    const columns = idleColumns[k] as PacketColumns;
    if (columns.capacity >= packets) {
      idleColumns.splice(k, 1);
      return columns;
    }
  }
  // Rounded up to a power of two (from 1,024), so that batches of varying sizes fit the same columns.
  let capacity = 1024;
  while (capacity < packets) capacity *= 2;
  return new PacketColumns(capacity);
}

function returnColumns(columns: PacketColumns): void {
  if (columns.capacity <= KEPT_CAPACITY && idleColumns.length < IDLE_COLUMNS) idleColumns.push(columns);
}

/**
 * Runs the pipeline on a batch of events: log events as objects, or a delivery's events as read from its bytes
 * (DeliveredEvents, scanned where they lie, with the log stream as the node of lines that name none).
 */
export async function runPipeline(
  events: readonly LogEvent[] | DeliveredEvents,
  options: PipelineOptions,
): Promise<PipelineResult> {
  // What aggregation needs of each packet, in columns: the scanner leaves a line's values in its fields, and
  // nothing is allocated per line (the texts are numbered by the aggregator, the addresses below).
  const columns = takeColumns(events.length);
  try {
    return await runWith(events, options, columns);
  } finally {
    returnColumns(columns);
  }
}

async function runWith(
  events: readonly LogEvent[] | DeliveredEvents,
  options: PipelineOptions,
  columns: PacketColumns,
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
  // Room for a flow per four lines, about what a busy cluster's deliveries make.
  const aggregator = new FlowAggregator(options.cluster, options.bucketSeconds, events.length / 4);
  // Room for a packet per event; an event of several lines may hold more, and the columns are then replaced by
  // larger ones (those taken still go back to the idle ones).
  let packetColumns = columns;
  let { times, lengths, protocolPorts, reporters, policies, flags, srcCode, dstCode, nextLookup } = columns;
  const directions: Direction[] = new Array(events.length);
  let packets = 0;

  // Only internal addresses are looked up: pods and nodes live there, and asking the API server about
  // every internet scanner would cost calls for nothing. Lookups are deduplicated per (IP, second): Kubernetes
  // timestamps have one-second resolution, so a finer key would ask the same question again.
  const lookups: Lookup[] = [];
  // IPv4 addresses are found by their value, which the scanner reads with them (no string made or hashed per
  // line), in a table of typed arrays; IPv6 ones by their text.
  const v4Numbers = new NumberTable();
  const v4Addresses: AddressState[] = [];
  const v6Addresses = new Map<string, AddressState>();
  /** Internal addresses, in the order first seen. */
  const internalAddresses: AddressState[] = [];
  const externalEndpoints: Endpoint[] = [];
  const newAddress = (ip: string): AddressState => {
    const internal = options.internal.contains(ip);
    const state: AddressState = {
      ip,
      internal,
      firstLookup: -1,
      tailLookup: -1,
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
    return state;
  };
  const scanner = options.scanner;
  if (!scanner.encoding) throw new TypeError("the pipeline's scanner must be made by createScanner");
  const f = scanner.fields;
  /**
   * The code of the address the scan left at `text[start, end)` with the value `v4` (an IPv4 address as printed)
   * or, for start -1, in `groups` (an IPv6 one), seen at `at`.
   */
  const codeOf = (start: number, end: number, v4: number, groups: Uint16Array, at: number): number => {
    let state: AddressState | undefined;
    if (start < 0) {
      const ip = formatIpv6Groups(groups);
      state = v6Addresses.get(ip);
      if (state === undefined) {
        state = newAddress(ip);
        v6Addresses.set(ip, state);
      }
    } else {
      const k = v4Numbers.get(v4);
      if (k >= 0) {
        state = v4Addresses[k] as AddressState;
      } else {
        state = newAddress(detached(f.text, start, end));
        v4Numbers.add(v4, v4Addresses.length);
        v4Addresses.push(state);
      }
    }
    if (!state.internal) return state.externalCode;
    const second = Math.floor(at / 1000);
    if (second === state.lastSecond) return state.lastLookup;
    let index: number | undefined;
    // A second after every one seen so far is new; an earlier one may have been asked already.
    if (second <= state.maxSecond) {
      let bySecond = state.bySecond;
      if (bySecond === undefined) {
        bySecond = new Map();
        for (let k = state.firstLookup; k >= 0; k = nextLookup[k] as number) {
          bySecond.set((lookups[k] as Lookup).at / 1000, k);
        }
        state.bySecond = bySecond;
      }
      index = bySecond.get(second);
    }
    if (index === undefined) {
      index = lookups.length;
      // The address's first string for all its lookups: one string per address for the directory and below.
      lookups.push({ ip: state.ip, at: second * 1000 });
      nextLookup[index] = -1;
      if (state.tailLookup < 0) state.firstLookup = index;
      else nextLookup[state.tailLookup] = index;
      state.tailLookup = index;
      state.bySecond?.set(second, index);
      if (second < state.minSecond) state.minSecond = second;
      if (second > state.maxSecond) state.maxSecond = second;
    }
    state.lastSecond = second;
    state.lastLookup = index;
    return index;
  };
  // A host name in the line is found by a hash of its bytes and compared where it lies, so that no string is made
  // for it: a stream holds one node's lines, or a relay's for a few nodes. Open addressing over REPORTER_SLOTS
  // slots, each with the name's hash, length and bytes (names of up to REPORTER_BYTES), at most half of them
  // filled; other names are looked up by string, as are names with characters outside ASCII (each such character
  // is the byte 0x80 here, so two of them could have the same bytes).
  const slotIds = new Int32Array(REPORTER_SLOTS).fill(EMPTY_SLOT);
  const slotHashes = new Int32Array(REPORTER_SLOTS);
  const slotLengths = new Int32Array(REPORTER_SLOTS);
  const slotBytes = new Uint8Array(REPORTER_SLOTS * REPORTER_BYTES);
  let filled = 0;
  /** The slot of the line before's node, or -1. */
  let lastSlot = -1;
  const sameBytes = (b: Uint8Array, start: number, length: number, slot: number): boolean => {
    if (slotLengths[slot] !== length) return false;
    const at = slot * REPORTER_BYTES;
    for (let k = 0; k < length; k++) if (b[start + k] !== slotBytes[at + k]) return false;
    return true;
  };
  // Undefined, not "": an empty node name (a delivery's empty log stream) is a name too.
  let lastName: string | undefined;
  let lastNameId = -1;
  const reporterNamed = (name: string): number => {
    if (name !== lastName) {
      lastName = name;
      lastNameId = aggregator.reporterId(name);
    }
    return lastNameId;
  };
  // A line naming no host, or a placeholder: its wrapper's host (a JSON record's), else its log stream's node.
  const hostless = (eventNode: string | undefined): number => {
    const outer = f.node;
    return reporterNamed(outer !== null && !PLACEHOLDER_HOSTS.has(outer) ? outer : (eventNode ?? "unknown"));
  };
  const reporterOf = (eventNode: string | undefined): number => {
    const start = f.nodeS;
    if (start < 0) return hostless(eventNode);
    const end = f.nodeE;
    const length = end - start;
    const b = f.b;
    // Most often the line before's node.
    if (lastSlot >= 0 && sameBytes(b, start, length, lastSlot)) {
      const id = slotIds[lastSlot] as number;
      return id === PLACEHOLDER_ID ? hostless(eventNode) : id;
    }
    let h = length;
    let bits = 0;
    for (let k = start; k < end; k++) {
      const c = b[k] as number;
      h = Math.imul(h ^ c, 0x01000193);
      bits |= c;
    }
    h ^= h >>> 16;
    let slot = h & (REPORTER_SLOTS - 1);
    for (;;) {
      const id = slotIds[slot] as number;
      if (id === EMPTY_SLOT) break;
      if (slotHashes[slot] === h && sameBytes(b, start, length, slot)) {
        lastSlot = slot;
        return id === PLACEHOLDER_ID ? hostless(eventNode) : id;
      }
      slot = (slot + 1) & (REPORTER_SLOTS - 1);
    }
    const name = detached(f.text, start, end);
    const placeholder = PLACEHOLDER_HOSTS.has(name);
    const id = placeholder ? PLACEHOLDER_ID : aggregator.reporterId(name);
    if (bits < 0x80 && length <= REPORTER_BYTES && 2 * (filled + 1) <= REPORTER_SLOTS) {
      slotIds[slot] = id;
      slotHashes[slot] = h;
      slotLengths[slot] = length;
      slotBytes.set(b.subarray(start, end), slot * REPORTER_BYTES);
      filled++;
      lastSlot = slot;
    } else {
      lastSlot = -1;
    }
    return placeholder ? hostless(eventNode) : id;
  };
  // Policies are decoded from the prefix, once per distinct prefix.
  const format = scanner.format;
  const policyByPrefix = new Map<string, number>();
  const policyOf = (prefix: string): number => {
    if (format === null) return 0;
    let id = policyByPrefix.get(prefix);
    if (id === undefined) {
      id = aggregator.policyId(decodePolicy(format, prefix));
      policyByPrefix.set(prefix, id);
    }
    return id;
  };

  const delivered = events instanceof DeliveredEvents ? events : null;
  const list = delivered === null ? (events as readonly LogEvent[]) : [];
  for (let i = 0; i < events.length; i++) {
    const event = delivered === null ? (list[i] as LogEvent) : null;
    const eventAt = event === null ? (delivered as DeliveredEvents).timestamp(i) : event.timestamp;
    stats.lines++;
    let outcome: Scan | undefined =
      event === null ? (delivered as DeliveredEvents).scan(i, scanner) : scanner.scan(event.message);
    if (outcome !== null && scanner.missingDate) {
      // A year-less Feb 29 read in another year: the event's own time (a backfill's, a redrive's) names its year.
      scanner.missingDate = false;
      if (eventAt !== undefined) {
        scanner.inferYearsFrom(eventAt);
        outcome =
          event === null ? (delivered as DeliveredEvents).scan(i, scanner) : scanner.scan(event.message);
        scanner.inferYearsFrom(undefined);
        scanner.missingDate = false;
      }
    }
    // Each line of the event that holds the prefix, the first already read.
    let calicoLines = 0;
    for (; outcome !== undefined; outcome = scanner.scanMore()) {
      if (outcome !== null) {
        if (outcome.kind === "error") {
          calicoLines++;
          stats.malformed++;
          if (malformed.length < sampleLimit) malformed.push({ index: i, reason: outcome.reason });
        }
        continue;
      }
      calicoLines++;
      stats.calico++;
      let at = eventAt;
      if (at === undefined) {
        const lineTime = f.time === null ? Number.NaN : Date.parse(f.time);
        at = Number.isNaN(lineTime) ? now() : lineTime;
      }
      const n = packets++;
      if (n === packetColumns.capacity) {
        packetColumns = new PacketColumns(2 * n, packetColumns);
        ({ times, lengths, protocolPorts, reporters, policies, flags, srcCode, dstCode, nextLookup } =
          packetColumns);
      }
      times[n] = at;
      lengths[n] = f.length;
      protocolPorts[n] = aggregator.protocolPortId(f.protocol, f.dstPort < 0 ? null : f.dstPort);
      reporters[n] = reporterOf(event === null ? (delivered as DeliveredEvents).node : event.node);
      policies[n] = policyOf(f.prefix);
      directions[n] = directionAt(f.text, f.inS, f.inE, f.text, f.outS, f.outE, prefixes);
      flags[n] = f.flags;
      srcCode[n] = codeOf(f.srcS, f.srcE, f.srcV4, scanner.srcGroups, at);
      dstCode[n] = codeOf(f.dstS, f.dstE, f.dstV4, scanner.dstGroups, at);
    }
    if (calicoLines === 0) stats.skipped++;
  }

  const resolutions = await resolveLookups(options.directory, lookups, internalAddresses, nextLookup);
  // One Endpoint object per (address, holder): directories hand back the same holder object for every time it
  // covers, so the many lookups of a busy address share one endpoint and aggregation keys stay cheap. Endpoints
  // are numbered here: those of different addresses differ (their IPs do); two holders of one address that name
  // the same endpoint (kind, namespace, name) share its number.
  // By code slot: a lookup's index for an internal end, lookups.length + k for external endpoint k.
  const slots = lookups.length;
  const endpointsBySlot: Endpoint[] = new Array(slots + externalEndpoints.length);
  const idsBySlot = new Int32Array(slots + externalEndpoints.length);
  let endpointCount = 0;
  const newEndpoint = (ip: string, resolution: Resolution): Endpoint => {
    const endpoint = endpointFor(ip, true, resolution);
    if (!endpoint.resolved) stats.unresolved++;
    else if (endpoint.kind === "unknown") stats.attributionMisses++;
    return endpoint;
  };
  for (const address of internalAddresses) {
    let lastIdentity: unknown = NOBODY;
    let e = NO_ENDPOINT;
    let id = 0;
    // Once the address has a second identity (IP reuse inside a payload, or a directory that hands back new
    // objects): its endpoint by identity, and the number of each endpoint key it has had.
    let byIdentity: Map<unknown, { endpoint: Endpoint; id: number }> | undefined;
    let idByKey: Map<string, number> | undefined;
    for (let index = address.firstLookup; index >= 0; index = nextLookup[index] as number) {
      const resolution = resolutions[index] as Resolution;
      const identity = resolution.status === "found" ? resolution.holder : resolution.status;
      if (identity !== lastIdentity) {
        if (lastIdentity === NOBODY) {
          e = newEndpoint(address.ip, resolution);
          id = endpointCount++;
        } else {
          if (byIdentity === undefined || idByKey === undefined) {
            byIdentity = new Map([[lastIdentity, { endpoint: e, id }]]);
            idByKey = new Map([[endpointKey(e), id]]);
          }
          let entry = byIdentity.get(identity);
          if (entry === undefined) {
            const endpoint = newEndpoint(address.ip, resolution);
            const key = endpointKey(endpoint);
            let same = idByKey.get(key);
            if (same === undefined) {
              same = endpointCount++;
              idByKey.set(key, same);
            }
            entry = { endpoint, id: same };
            byIdentity.set(identity, entry);
          }
          e = entry.endpoint;
          id = entry.id;
        }
        lastIdentity = identity;
      }
      endpointsBySlot[index] = e;
      idsBySlot[index] = id;
    }
  }
  for (let k = 0; k < externalEndpoints.length; k++) {
    endpointsBySlot[slots + k] = externalEndpoints[k] as Endpoint;
    idsBySlot[slots + k] = endpointCount++;
  }

  // One scratch packet for every line: the aggregator copies what it keeps.
  const packet: CountedPacket = {
    at: 0,
    src: NO_ENDPOINT,
    dst: NO_ENDPOINT,
    srcId: 0,
    dstId: 0,
    protocolPort: 0,
    reporter: 0,
    policy: 0,
    direction: "host",
    internal: false,
    length: 0,
    flags: 0,
  };
  for (let i = 0; i < packets; i++) {
    const s = srcCode[i] as number;
    const d = dstCode[i] as number;
    const srcSlot = s >= 0 ? s : slots - 1 - s;
    const dstSlot = d >= 0 ? d : slots - 1 - d;
    packet.at = times[i] as number;
    packet.src = endpointsBySlot[srcSlot] as Endpoint;
    packet.srcId = idsBySlot[srcSlot] as number;
    packet.dst = endpointsBySlot[dstSlot] as Endpoint;
    packet.dstId = idsBySlot[dstSlot] as number;
    packet.protocolPort = protocolPorts[i] as number;
    packet.reporter = reporters[i] as number;
    packet.policy = policies[i] as number;
    packet.direction = directions[i] as Direction;
    packet.internal = s >= 0 && d >= 0;
    packet.length = lengths[i] as number;
    packet.flags = flags[i] as number;
    aggregator.count(packet);
  }
  const flows = aggregator.flows();
  const candidates = alertCandidates(flows, { scanThreshold: options.scanThreshold });
  return { flows, candidates, stats, malformed };
}
