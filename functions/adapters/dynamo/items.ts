// Domain records ↔ item attributes. Items keep the records' own field names and shapes (endpoints and policy
// as maps, absent values as NULL), so what a query returns is exactly what was written.
import type { AlertKey, Direction, Endpoint, FlowRecord, PolicyRef, WorkloadRef } from "../../core/types.ts";
import type { Item } from "./requests.ts";

/** Numbers come back as numbers from a plain document client, as NumberValue from one that wraps them. */
export function num(value: unknown): number {
  return typeof value === "number" ? value : Number(String(value));
}

const str = (value: unknown): string => String(value);
const strOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);
const numOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : num(value);

/** A clean copy: only the Endpoint fields, `labels` only when present (the type makes it optional). */
export function endpointAttribute(e: Endpoint): Item {
  const out: Item = {
    ip: e.ip,
    kind: e.kind,
    namespace: e.namespace,
    name: e.name,
    workload: e.workload === null ? null : { kind: e.workload.kind, name: e.workload.name },
    node: e.node,
    resolved: e.resolved,
  };
  if (e.labels !== undefined) out.labels = { ...e.labels };
  return out;
}

export function policyAttribute(p: PolicyRef | null): Item | null {
  return p === null ? null : { tier: p.tier, kind: p.kind, name: p.name, namespace: p.namespace };
}

function workloadOf(value: unknown): WorkloadRef | null {
  if (value === null || typeof value !== "object") return null;
  const w = value as Item;
  return { kind: str(w.kind), name: str(w.name) };
}

export function endpointOf(value: unknown): Endpoint {
  const e = (value ?? {}) as Item;
  const out: Endpoint = {
    ip: str(e.ip),
    kind: str(e.kind) as Endpoint["kind"],
    namespace: strOrNull(e.namespace),
    name: strOrNull(e.name),
    workload: workloadOf(e.workload),
    node: strOrNull(e.node),
    resolved: e.resolved === true,
  };
  if (e.labels !== undefined && e.labels !== null) {
    out.labels = Object.fromEntries(Object.entries(e.labels as Item).map(([k, v]) => [k, str(v)]));
  }
  return out;
}

export function policyOf(value: unknown): PolicyRef | null {
  if (value === null || value === undefined) return null;
  const p = value as Item;
  return {
    tier: strOrNull(p.tier),
    kind: strOrNull(p.kind),
    name: strOrNull(p.name),
    namespace: strOrNull(p.namespace),
  };
}

export function sortedSet(value: unknown): string[] {
  return value instanceof Set ? [...value].map(str).sort() : [];
}

export function flowOf(item: Item): FlowRecord {
  return {
    id: str(item.id),
    cluster: str(item.cluster),
    bucket: str(item.bucket),
    src: endpointOf(item.src),
    dst: endpointOf(item.dst),
    protocol: str(item.protocol),
    dstPort: numOrNull(item.dstPort),
    direction: str(item.direction) as Direction,
    reporter: str(item.reporter),
    internal: item.internal === true,
    packets: num(item.packets ?? 0),
    bytes: num(item.bytes ?? 0),
    firstSeen: str(item.firstSeen),
    lastSeen: str(item.lastSeen),
    policy: policyOf(item.policy),
    tcpFlags: sortedSet(item.tcpFlags),
  };
}

export function alertKeyAttribute(k: AlertKey): Item {
  return { cluster: k.cluster, src: k.src, dst: k.dst, protocol: k.protocol, dstPort: k.dstPort };
}

export function alertKeyOf(value: unknown): AlertKey {
  const k = (value ?? {}) as Item;
  return {
    cluster: str(k.cluster),
    src: str(k.src),
    dst: str(k.dst),
    protocol: str(k.protocol),
    dstPort: numOrNull(k.dstPort),
  };
}
