// Aggregation of attributed packets into flow records: one record per (cluster, time bucket, source endpoint,
// destination endpoint, protocol, destination port, reporting node, policy). Source ports are not part of the
// key: every new connection has a new one, and keeping them would turn a retry storm into thousands of flows.
import { hash } from "node:crypto";
import type { Direction, Endpoint, FlowRecord, PolicyRef } from "./types.ts";

export interface AttributedPacket {
  /** Event time, epoch ms. */
  at: number;
  src: Endpoint;
  dst: Endpoint;
  protocol: string;
  dstPort: number | null;
  direction: Direction;
  reporter: string;
  internal: boolean;
  length: number;
  policy: PolicyRef | null;
  tcpFlags: readonly string[];
}

/** Identity of an endpoint inside a flow key: the IP plus whoever held it, so IP reuse splits flows. */
function endpointKey(e: Endpoint): string {
  return `${e.ip}@${e.kind}:${e.namespace ?? ""}/${e.name ?? ""}`;
}

function policyKey(p: PolicyRef | null): string {
  return p === null ? "" : `${p.tier ?? ""}|${p.kind ?? ""}|${p.namespace ?? ""}|${p.name ?? ""}`;
}

export function bucketStart(at: number, bucketMs: number): number {
  return Math.floor(at / bucketMs) * bucketMs;
}

/** Short stable digest (128 bits, base64url) used for flow ids and alert key ids. */
export function digest(text: string): string {
  return hash("sha256", text, "base64url").slice(0, 22);
}

interface Accumulator {
  record: FlowRecord;
  first: number;
  last: number;
  flags: Set<string>;
}

export class FlowAggregator {
  readonly #cluster: string;
  readonly #bucketMs: number;
  readonly #flows = new Map<string, Accumulator>();
  // Endpoints are shared objects (one per lookup); interning them to small integers keeps the per-packet key
  // short. Two objects describing the same holder of the same IP get the same number.
  readonly #endpointIds = new Map<Endpoint, number>();
  readonly #endpointKeys = new Map<string, number>();

  constructor(cluster: string, bucketSeconds: number) {
    if (!Number.isInteger(bucketSeconds) || bucketSeconds < 1) {
      throw new Error(`bucketSeconds must be a positive integer, got ${bucketSeconds}`);
    }
    this.#cluster = cluster;
    this.#bucketMs = bucketSeconds * 1000;
  }

  get size(): number {
    return this.#flows.size;
  }

  #endpointId(e: Endpoint): number {
    let id = this.#endpointIds.get(e);
    if (id === undefined) {
      const key = endpointKey(e);
      id = this.#endpointKeys.get(key);
      if (id === undefined) {
        id = this.#endpointKeys.size;
        this.#endpointKeys.set(key, id);
      }
      this.#endpointIds.set(e, id);
    }
    return id;
  }

  /** Counts one packet. `p` itself is not retained (callers may reuse it), only the values it points to. */
  add(p: AttributedPacket): void {
    const bucket = bucketStart(p.at, this.#bucketMs);
    const local = `${bucket}|${this.#endpointId(p.src)}|${this.#endpointId(p.dst)}|${p.protocol}|${p.dstPort ?? ""}|${
      p.reporter
    }${p.policy === null ? "" : `|${policyKey(p.policy)}`}`;
    let acc = this.#flows.get(local);
    if (acc === undefined) {
      // The id digests the full key (not the run-local endpoint numbers), so it is the same in every run.
      const key = `${this.#cluster}\n${bucket}\n${endpointKey(p.src)}\n${endpointKey(p.dst)}\n${p.protocol}\n${
        p.dstPort ?? ""
      }\n${p.reporter}\n${policyKey(p.policy)}`;
      acc = {
        record: {
          id: digest(key),
          cluster: this.#cluster,
          bucket: new Date(bucket).toISOString(),
          src: p.src,
          dst: p.dst,
          protocol: p.protocol,
          dstPort: p.dstPort,
          direction: p.direction,
          reporter: p.reporter,
          internal: p.internal,
          packets: 0,
          bytes: 0,
          firstSeen: "",
          lastSeen: "",
          policy: p.policy,
          tcpFlags: [],
        },
        first: p.at,
        last: p.at,
        flags: new Set(),
      };
      this.#flows.set(local, acc);
    }
    acc.record.packets += 1;
    acc.record.bytes += p.length;
    if (p.at < acc.first) acc.first = p.at;
    if (p.at > acc.last) acc.last = p.at;
    for (const flag of p.tcpFlags) acc.flags.add(flag);
  }

  /** The aggregated flows, ordered by bucket then id so that output and writes are deterministic. */
  flows(): FlowRecord[] {
    const out: FlowRecord[] = [];
    for (const acc of this.#flows.values()) {
      out.push({
        ...acc.record,
        firstSeen: new Date(acc.first).toISOString(),
        lastSeen: new Date(acc.last).toISOString(),
        tcpFlags: [...acc.flags].sort(),
      });
    }
    return out.sort((a, b) => (a.bucket < b.bucket ? -1 : a.bucket > b.bucket ? 1 : a.id < b.id ? -1 : 1));
  }
}
