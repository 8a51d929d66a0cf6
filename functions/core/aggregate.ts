// Aggregation of attributed packets into flow records: one record per (cluster, time bucket, source endpoint,
// destination endpoint, protocol, destination port, reporting node, policy). Source ports are not part of the
// key: every new connection has a new one, and keeping them would turn a retry storm into thousands of flows.
import { hash } from "node:crypto";
import { KeyTable } from "./key-table.ts";
import { flagBits, flagNames } from "./parse.ts";
import type { Direction, Endpoint, FlowRecord, PolicyRef } from "./types.ts";

/** What a packet and the flow it is counted in have in common: the flow record's fields of the same name. */
type FlowFields = Pick<
  FlowRecord,
  "src" | "dst" | "protocol" | "dstPort" | "direction" | "reporter" | "internal" | "policy"
>;

export interface AttributedPacket extends FlowFields {
  /** Event time, epoch ms. */
  at: number;
  length: number;
  tcpFlags: readonly string[];
}

/** Identity of an endpoint inside a flow key: the IP plus whoever held it, so IP reuse splits flows. */
export function endpointKey(e: Endpoint): string {
  return `${e.ip}@${e.kind}:${e.namespace ?? ""}/${e.name ?? ""}`;
}

export function policyKey(p: PolicyRef | null): string {
  return p === null ? "" : `${p.tier ?? ""}|${p.kind ?? ""}|${p.namespace ?? ""}|${p.name ?? ""}`;
}

export function bucketStart(at: number, bucketMs: number): number {
  return Math.floor(at / bucketMs) * bucketMs;
}

/** Characters of a digest: 132 bits in base64url (of 43 for all 256). */
export const DIGEST_LENGTH = 22;

/** Short stable digest (132 bits of SHA-256, base64url) of a text's UTF-8, or of bytes: flow ids, alert keys. */
export function digest(text: string | Uint8Array): string {
  return hash("sha256", text, "base64url").slice(0, DIGEST_LENGTH);
}

/**
 * The stored id of a flow: a digest of its whole key (not of run-local numbers), so that the same flow gets the
 * same id in every run and a redelivered payload overwrites rather than adds. `srcKey` and `dstKey` are
 * endpointKey's, `policy` policyKey's.
 */
export function flowId(
  cluster: string,
  bucket: number,
  srcKey: string,
  dstKey: string,
  protocol: string,
  dstPort: number | null,
  reporter: string,
  policy: string,
): string {
  return digest(
    `${cluster}\n${bucket}\n${srcKey}\n${dstKey}\n${protocol}\n${dstPort ?? ""}\n${reporter}\n${policy}`,
  );
}

/** ".000Z" … ".999Z": the end of an ISO timestamp, by its milliseconds. */
const MS_SUFFIX = Array.from({ length: 1000 }, (_, ms) => `.${String(ms).padStart(3, "0")}Z`);

/**
 * Date#toISOString through a cache of its first part per second: the flows of a bucket fall in few seconds,
 * so most timestamps cost a Map lookup and one concatenation instead of a Date and its formatting.
 */
class IsoCache {
  readonly #seconds = new Map<number, string>();

  of(time: number): string {
    // Date keeps whole milliseconds (truncated toward zero) and at most 8.64e15 of them either way.
    const ms = Math.trunc(time);
    if (!(Math.abs(ms) <= 8.64e15)) return new Date(time).toISOString();
    const second = Math.floor(ms / 1000);
    let prefix = this.#seconds.get(second);
    if (prefix === undefined) {
      // Throws RangeError for an invalid time, as toISOString does.
      prefix = new Date(second * 1000).toISOString().slice(0, -5);
      this.#seconds.set(second, prefix);
    }
    return prefix + (MS_SUFFIX[ms - second * 1000] as string);
  }
}

/**
 * A packet with its key already in run-local numbers (FlowAggregator#protocolPortId, #reporterId, #policyId, and
 * the caller's endpoint numbers): what the pipeline hands over for every line, through one reused object.
 */
export interface CountedPacket {
  /** Event time, epoch ms. */
  at: number;
  src: Endpoint;
  dst: Endpoint;
  /**
   * Endpoint numbers: small integers from 0, equal exactly when the endpoints' endpointKey is (the same holder of
   * the same IP), for the whole run of one aggregator.
   */
  srcId: number;
  dstId: number;
  protocolPort: number;
  reporter: number;
  policy: number;
  direction: Direction;
  internal: boolean;
  length: number;
  /** TCP flags as bits (parse.ts flagBits). */
  flags: number;
}

/** A flow being counted: the record's fields, kept flat until flows() builds the record once. */
interface Accumulator extends FlowFields, Pick<FlowRecord, "id" | "packets" | "bytes"> {
  bucket: number;
  bucketIso: string;
  first: number;
  last: number;
  /** The TCP flags seen, as bits. */
  flags: number;
}

/** Sorted flag names per set of flag bits, made when first asked for. */
const SORTED_FLAGS: (readonly string[] | undefined)[] = [];

function sortedFlags(bits: number): string[] {
  let names = SORTED_FLAGS[bits];
  if (names === undefined) {
    names = flagNames(bits).sort();
    SORTED_FLAGS[bits] = names;
  }
  return [...names];
}

export class FlowAggregator {
  readonly #cluster: string;
  readonly #bucketMs: number;
  /**
   * Each flow's index in #accumulators by its key in numbers: source and destination endpoint, bucket,
   * (protocol, port), reporter, policy. The per-packet key costs one probe of typed arrays, not a string.
   */
  readonly #flows: KeyTable;
  readonly #accumulators: Accumulator[] = [];
  // Endpoints are numbered so that the per-packet key stays short: two endpoints with the same endpointKey (the
  // same holder of the same IP) get the same number. add() numbers them here; count()'s caller numbers them itself.
  readonly #endpointIds = new Map<Endpoint, number>();
  readonly #endpointKeys = new Map<string, number>();
  /** endpointKey of each endpoint number, made when a new flow first needs it. */
  readonly #endpointKeyOf: (string | undefined)[] = [];
  /** Who numbers the endpoints of this aggregator: add() or count()'s caller, never both. */
  #numbering: "add" | "caller" | null = null;
  readonly #buckets = new Map<number, number>();
  #lastBucket = Number.NaN;
  #lastBucketId = 0;
  #lastBucketIso = "";
  readonly #bucketIso: string[] = [];
  readonly #reporters = new Map<string, number>();
  readonly #reporterOf: string[] = [];
  readonly #protocols = new Map<string, Map<number | null, number>>();
  /** protocolPortId's last protocol and its ports (undefined: none yet). */
  #lastProtocol: string | undefined;
  #lastPorts: Map<number | null, number> | undefined;
  readonly #protocolPortOf: { protocol: string; dstPort: number | null }[] = [];
  // 0 is "no policy".
  readonly #policies = new Map<string, number>();
  readonly #policyOf: (PolicyRef | null)[] = [null];
  readonly #policyKeyOf: string[] = [policyKey(null)];

  /** `expectedFlows`: how many flows to make room for before the table of keys grows. */
  constructor(cluster: string, bucketSeconds: number, expectedFlows?: number) {
    this.#flows = new KeyTable(expectedFlows);
    if (!Number.isInteger(bucketSeconds) || bucketSeconds < 1) {
      throw new Error(`bucketSeconds must be a positive integer, got ${bucketSeconds}`);
    }
    this.#cluster = cluster;
    this.#bucketMs = bucketSeconds * 1000;
  }

  get size(): number {
    return this.#accumulators.length;
  }

  /** Run-local number of an endpoint (same IP and holder, same number), for add(). */
  #endpointId(e: Endpoint): number {
    let id = this.#endpointIds.get(e);
    if (id === undefined) {
      const key = endpointKey(e);
      id = this.#endpointKeys.get(key);
      if (id === undefined) {
        id = this.#endpointKeys.size;
        this.#endpointKeys.set(key, id);
        this.#endpointKeyOf[id] = key;
      }
      this.#endpointIds.set(e, id);
    }
    return id;
  }

  /** endpointKey of the endpoint numbered `id`, made once. */
  #keyOf(id: number, e: Endpoint): string {
    const keys = this.#endpointKeyOf;
    let key = keys[id];
    if (key === undefined) {
      key = endpointKey(e);
      // Grown one slot at a time: a store far past the end would turn the array into a dictionary.
      while (keys.length <= id) keys.push(undefined);
      keys[id] = key;
    }
    return key;
  }

  #numberedBy(who: "add" | "caller"): void {
    if (this.#numbering === who) return;
    if (this.#numbering !== null) {
      throw new Error("an aggregator's endpoints are numbered by add() or by count()'s caller, not both");
    }
    this.#numbering = who;
  }

  /** Run-local number of a (protocol, destination port). */
  protocolPortId(protocol: string, dstPort: number | null): number {
    // Most lines name the protocol of the line before: its ports without a lookup.
    let ports = protocol === this.#lastProtocol ? this.#lastPorts : this.#protocols.get(protocol);
    if (ports === undefined) {
      ports = new Map();
      this.#protocols.set(protocol, ports);
    }
    this.#lastProtocol = protocol;
    this.#lastPorts = ports;
    let id = ports.get(dstPort);
    if (id === undefined) {
      id = this.#protocolPortOf.length;
      this.#protocolPortOf.push({ protocol, dstPort });
      ports.set(dstPort, id);
    }
    return id;
  }

  /** Run-local number of a reporting node. */
  reporterId(reporter: string): number {
    let id = this.#reporters.get(reporter);
    if (id === undefined) {
      id = this.#reporterOf.length;
      this.#reporterOf.push(reporter);
      this.#reporters.set(reporter, id);
    }
    return id;
  }

  /** Run-local number of a policy: 0 for none; equal policies (policyKey) get the same number. */
  policyId(policy: PolicyRef | null): number {
    if (policy === null) return 0;
    const key = policyKey(policy);
    let id = this.#policies.get(key);
    if (id === undefined) {
      id = this.#policyOf.length;
      this.#policyOf.push(policy);
      this.#policyKeyOf.push(key);
      this.#policies.set(key, id);
    }
    return id;
  }

  /**
   * Counts one packet. `p` itself is not retained (callers may reuse it), only the values it points to. Throws a
   * RangeError for a TCP flag name the kernel does not print.
   */
  add(p: AttributedPacket): void {
    const flags = flagBits(p.tcpFlags);
    if (flags < 0) throw new RangeError(`not a TCP flag among ${JSON.stringify(p.tcpFlags)}`);
    this.#numberedBy("add");
    this.#count({
      at: p.at,
      src: p.src,
      dst: p.dst,
      srcId: this.#endpointId(p.src),
      dstId: this.#endpointId(p.dst),
      protocolPort: this.protocolPortId(p.protocol, p.dstPort),
      reporter: this.reporterId(p.reporter),
      policy: this.policyId(p.policy),
      direction: p.direction,
      internal: p.internal,
      length: p.length,
      flags,
    });
  }

  /**
   * add() with the key's parts already numbered: the (protocol, port), reporter and policy by this aggregator,
   * the endpoints by the caller (see CountedPacket), who then cannot use add() on the same aggregator.
   */
  count(p: CountedPacket): void {
    this.#numberedBy("caller");
    this.#count(p);
  }

  #count(p: CountedPacket): void {
    const at = p.at;
    // Most packets fall in the bucket of the packet before.
    const last = this.#lastBucket;
    const bucket = at >= last && at < last + this.#bucketMs ? last : bucketStart(at, this.#bucketMs);
    let bucketId: number | undefined;
    if (bucket === last) {
      bucketId = this.#lastBucketId;
    } else {
      bucketId = this.#buckets.get(bucket);
      if (bucketId === undefined) {
        bucketId = this.#buckets.size;
        this.#bucketIso.push(new Date(bucket).toISOString());
        this.#buckets.set(bucket, bucketId);
      }
      this.#lastBucket = bucket;
      this.#lastBucketId = bucketId;
      this.#lastBucketIso = this.#bucketIso[bucketId] as string;
    }
    const flows = this.#flows;
    const index = flows.get(p.srcId, p.dstId, bucketId, p.protocolPort, p.reporter, p.policy);
    let acc: Accumulator;
    if (index >= 0) {
      acc = this.#accumulators[index] as Accumulator;
    } else {
      const { protocol, dstPort } = this.#protocolPortOf[p.protocolPort] as {
        protocol: string;
        dstPort: number | null;
      };
      const reporter = this.#reporterOf[p.reporter] as string;
      acc = {
        id: flowId(
          this.#cluster,
          bucket,
          this.#keyOf(p.srcId, p.src),
          this.#keyOf(p.dstId, p.dst),
          protocol,
          dstPort,
          reporter,
          this.#policyKeyOf[p.policy] as string,
        ),
        bucket,
        bucketIso: this.#lastBucketIso,
        src: p.src,
        dst: p.dst,
        protocol,
        dstPort,
        direction: p.direction,
        reporter,
        internal: p.internal,
        packets: 0,
        bytes: 0,
        first: at,
        last: at,
        policy: this.#policyOf[p.policy] as PolicyRef | null,
        flags: 0,
      };
      flows.add(p.srcId, p.dstId, bucketId, p.protocolPort, p.reporter, p.policy, this.#accumulators.length);
      this.#accumulators.push(acc);
    }
    acc.packets += 1;
    acc.bytes += p.length;
    if (at < acc.first) acc.first = at;
    if (at > acc.last) acc.last = at;
    acc.flags |= p.flags;
  }

  /**
   * The aggregated flows, ordered by bucket, then as first seen: the same packets in the same order make the same
   * output and writes. (Ordering by id as well cost as much as a tenth of the pipeline: a comparison of strings per
   * step of the sort.)
   */
  flows(): FlowRecord[] {
    const accs = [...this.#accumulators];
    let ordered = true;
    for (let i = 1; i < accs.length && ordered; i++) {
      ordered = (accs[i - 1] as Accumulator).bucket <= (accs[i] as Accumulator).bucket;
    }
    // Array#sort is stable: within a bucket, flows stay as first seen.
    if (!ordered) accs.sort((a, b) => a.bucket - b.bucket);
    const out: FlowRecord[] = new Array(accs.length);
    const iso = new IsoCache();
    for (let i = 0; i < accs.length; i++) {
      const a = accs[i] as Accumulator;
      // A flow of one packet (or of one millisecond) is common: one string for both ends of it.
      const firstSeen = iso.of(a.first);
      out[i] = {
        id: a.id,
        cluster: this.#cluster,
        bucket: a.bucketIso,
        src: a.src,
        dst: a.dst,
        protocol: a.protocol,
        dstPort: a.dstPort,
        direction: a.direction,
        reporter: a.reporter,
        internal: a.internal,
        packets: a.packets,
        bytes: a.bytes,
        firstSeen,
        lastSeen: a.last === a.first ? firstSeen : iso.of(a.last),
        policy: a.policy,
        tcpFlags: sortedFlags(a.flags),
      };
    }
    return out;
  }
}
