// Endpoints and flows for the alert rule tests: pods of Deployments, external and unknown addresses, and
// flows with readable defaults (internal, TCP 8012, one packet), each with its own id.
import type { AlertCandidate, Endpoint, FlowRecord } from "../../functions/core/types.ts";

/** A pod of the Deployment `workload` (or without an owner), on `node`. */
export const pod = (
  ip: string,
  namespace: string,
  name: string,
  workload: string | null,
  node = "node-a",
): Endpoint => ({
  ip,
  kind: "pod",
  namespace,
  name,
  workload: workload === null ? null : { kind: "Deployment", name: workload },
  node,
  resolved: true,
});
export const external = (ip: string): Endpoint => ({
  ip,
  kind: "external",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved: true,
});
export const unknown = (ip: string, resolved = true): Endpoint => ({
  ...external(ip),
  kind: "unknown",
  resolved,
});

let serial = 0;
export function flow(src: Endpoint, dst: Endpoint, extra: Partial<FlowRecord> = {}): FlowRecord {
  serial++;
  return {
    id: `flow-${String(serial).padStart(4, "0")}`,
    cluster: "prod",
    bucket: "2026-04-19T04:52:00.000Z",
    src,
    dst,
    protocol: "TCP",
    dstPort: 8012,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    internal: true,
    packets: 1,
    bytes: 60,
    firstSeen: "2026-04-19T04:52:10.000Z",
    lastSeen: "2026-04-19T04:52:19.000Z",
    policy: null,
    tcpFlags: ["SYN"],
    ...extra,
  };
}

/** A cluster's DNS, and its `i`th client workload (each in a namespace of its own): the fan-in tests' cast. */
export const coredns = pod("192.168.0.10", "kube-system", "coredns-6d4b-x", "coredns");
export const client = (i: number): Endpoint =>
  pod(`192.168.40.${i + 1}`, `team-${i}`, `svc${i}-0`, `svc${i}`);

/** A candidate as a comparable value: everything but the order of its spans. */
function normal(c: AlertCandidate): unknown {
  const spans = [...(c.spans ?? [])].map((s) => JSON.stringify(s)).sort();
  return { ...c, spans };
}
/** Candidates as comparable values, in the order of their keys. */
export const byKey = (cs: readonly AlertCandidate[]) =>
  [...cs]
    .map((c) => [JSON.stringify(c.key), normal(c)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
