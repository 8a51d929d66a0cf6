// Records for the flow store tests: endpoints of each kind and flows with readable defaults.
import { createHash } from "node:crypto";
import type { FlowQuery, FlowStore } from "../../../functions/core/ports.ts";
import type { AlertCandidate, Endpoint, FlowRecord } from "../../../functions/core/types.ts";
import type { FaultProxy } from "../../support/fault-proxy.ts";

export const CLUSTER = "test-cluster";

export function pod(
  ip: string,
  namespace: string,
  name: string,
  workload: [string, string] | null = null,
): Endpoint {
  return {
    ip,
    kind: "pod",
    namespace,
    name,
    workload: workload === null ? null : { kind: workload[0], name: workload[1] },
    node: "node-a",
    resolved: true,
  };
}

export function external(ip: string): Endpoint {
  return { ip, kind: "external", namespace: null, name: null, workload: null, node: null, resolved: true };
}

/** The directory could not be asked: stored with its IP only. */
export function unresolved(ip: string): Endpoint {
  return { ip, kind: "unknown", namespace: null, name: null, workload: null, node: null, resolved: false };
}

export const idOf = (text: string): string =>
  createHash("sha256").update(text).digest("base64url").slice(0, 22);

/** A flow in `bucket` (canonical ISO); seen over the bucket's first 10 s unless told otherwise. */
export function flow(
  bucket: string,
  src: Endpoint,
  dst: Endpoint,
  extra: Partial<FlowRecord> = {},
): FlowRecord {
  const start = Date.parse(bucket);
  const record: FlowRecord = {
    id: idOf(`${bucket}|${src.ip}|${dst.ip}|${extra.dstPort ?? 443}|${extra.reporter ?? "node-a"}`),
    cluster: CLUSTER,
    bucket,
    src,
    dst,
    protocol: "TCP",
    dstPort: 443,
    direction: "ingress",
    reporter: "node-a",
    internal: src.kind !== "external" && dst.kind !== "external",
    packets: 1,
    bytes: 60,
    firstSeen: new Date(start).toISOString(),
    lastSeen: new Date(start + 10_000).toISOString(),
    policy: null,
    tcpFlags: ["SYN"],
    ...extra,
  };
  return record;
}

export function candidate(
  src: Endpoint,
  dst: Endpoint,
  firstSeen: string,
  hits: number,
  extra: Partial<AlertCandidate> = {},
): AlertCandidate {
  const name = (e: Endpoint) =>
    e.workload === null ? e.ip : `${e.namespace}/${e.workload.kind}/${e.workload.name}`;
  return {
    key: { cluster: CLUSTER, src: name(src), dst: name(dst), protocol: "TCP", dstPort: 5432 },
    src,
    dst,
    direction: "ingress",
    reporter: "node-a",
    policy: { tier: "default", kind: "NetworkPolicy", name: "deny-all", namespace: dst.namespace },
    hits,
    firstSeen,
    lastSeen: firstSeen,
    severity: "high",
    reason: "internal-denial",
    ...extra,
  };
}

export const at = (iso: string, plusMs: number): string => new Date(Date.parse(iso) + plusMs).toISOString();

/**
 * Every page of a flow query, following its cursors: the items, the Query requests each page made (counted on
 * `proxy`, the fault proxy the store's client goes through) and the cursors handed back.
 */
export async function pagesOf(
  store: FlowStore,
  proxy: FaultProxy,
  query: FlowQuery,
  most = 2_000,
): Promise<{ items: FlowRecord[]; queries: number[]; cursors: string[] }> {
  const items: FlowRecord[] = [];
  const queries: number[] = [];
  const cursors: string[] = [];
  let cursor: string | undefined;
  do {
    const before = proxy.count({ operation: "Query" });
    const page = await store.queryFlows({ ...query, ...(cursor === undefined ? {} : { cursor }) });
    queries.push(proxy.count({ operation: "Query" }) - before);
    items.push(...page.items);
    cursor = page.cursor;
    if (cursor !== undefined) cursors.push(cursor);
    if (queries.length > most) throw new Error("pagination does not end");
  } while (cursor !== undefined);
  return { items, queries, cursors };
}
