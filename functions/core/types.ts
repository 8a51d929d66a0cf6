// Domain types shared by the parser, the pipeline, the adapters, the Lambda handlers and the CLI.
// The shapes of PacketRecord (DESIGN.md §3.1) and FlowRecord (§3.3) are public contracts: keep them stable.

/** Policy reference decoded from a Felix `logPrefix` that carries `%t %k %n %p`. */
export interface PolicyRef {
  tier: string | null;
  kind: string | null;
  name: string | null;
  namespace: string | null;
}

/** One parsed calico-packet line: the record printed by `calico-flows parse` (DESIGN.md §3.1). */
export interface PacketRecord {
  time: string | null;
  node: string | null;
  prefix: string;
  policy: PolicyRef | null;
  inInterface: string | null;
  outInterface: string | null;
  mac: string | null;
  src: string;
  dst: string;
  ipVersion: 4 | 6;
  length: number;
  ttl: number | null;
  protocol: string;
  srcPort: number | null;
  dstPort: number | null;
  tcpFlags: readonly string[];
  icmpType: number | null;
  icmpCode: number | null;
}

/** Result of parsing one line: a record, a line that is not a calico-packet line, or a precise failure. */
export type ParseOutcome =
  | { kind: "record"; record: PacketRecord }
  | { kind: "skip" }
  | { kind: "error"; reason: string };

export type EndpointKind = "pod" | "node" | "service" | "external" | "unknown";

export interface WorkloadRef {
  kind: string;
  name: string;
}

/** One end of a flow, attributed at the time the packet was logged (DESIGN.md §3.3). */
export interface Endpoint {
  ip: string;
  kind: EndpointKind;
  namespace: string | null;
  name: string | null;
  workload: WorkloadRef | null;
  node: string | null;
  /** false when the directory could not be asked (API down, forbidden): `unknown` means "not known", not "absent". */
  resolved: boolean;
  /** Selected namespace labels carried into flows (configured keys only). */
  labels?: Record<string, string>;
}

/**
 * Direction from the interfaces the kernel logged: into a local workload, out of one, to or from the node
 * itself, or forwarded between two non-workload interfaces.
 */
export type Direction = "ingress" | "egress" | "host" | "forward";

/** An aggregated flow: what `flows --json` prints and the query API returns (DESIGN.md §3.3). */
export interface FlowRecord {
  /** Stable id of the aggregation key (cluster, bucket, endpoints, protocol, port, reporter, policy). */
  id: string;
  cluster: string;
  /** ISO start of the aggregation bucket. */
  bucket: string;
  src: Endpoint;
  dst: Endpoint;
  protocol: string;
  dstPort: number | null;
  direction: Direction;
  reporter: string;
  internal: boolean;
  packets: number;
  bytes: number;
  firstSeen: string;
  lastSeen: string;
  policy: PolicyRef | null;
  tcpFlags: string[];
}

/** Who held an IP, and when (creation → termination/deletion, epoch ms; `validTo` null while alive). */
export interface Holder {
  kind: "pod" | "node" | "service";
  namespace: string | null;
  name: string;
  workload: WorkloadRef | null;
  node: string | null;
  uid: string | null;
  validFrom: number;
  validTo: number | null;
  labels?: Record<string, string>;
  /**
   * When a directory saw it hold the address (epoch ms), as the holder history keeps it: a later look at the address
   * that did not show it proves it had let the address go (creation is no such time: a pod may wait for its address).
   */
  seenAt?: number;
}

export interface Lookup {
  ip: string;
  /** Event time, epoch ms. */
  at: number;
}

export type Resolution =
  | { status: "found"; holder: Holder }
  | { status: "absent" }
  | { status: "unavailable"; reason: string };

/** Lookups of one IP at every time from `at` to `until` (epoch ms, inclusive): one question for a payload's span. */
export interface SpanLookup extends Lookup {
  until: number;
}

/** The answer for every time of a span, or "varies" when it is not the same throughout (ask per time then). */
export type SpanResolution = Resolution | { status: "varies" };

/**
 * Resolves IPs to their holders at given times. Implementations: a `kubectl get -o json` snapshot, the live
 * Kubernetes API (EKS or kubeconfig), and a history-backed decorator. Never throws for Kubernetes trouble:
 * it answers `unavailable` so that storage is never blocked (DESIGN.md §4).
 */
export interface IpDirectory {
  /** Answers in the order of `lookups`. */
  resolve(lookups: readonly Lookup[]): Promise<Resolution[]>;
  /**
   * Optional: answers in the order of `spans`, each one answer that holds at every time of its span, or
   * "varies". A payload's busy addresses are seen in many seconds and nearly always held by one holder
   * throughout, so the pipeline asks once per address and per second only where the answer varies.
   */
  resolveSpans?(spans: readonly SpanLookup[]): Promise<SpanResolution[]>;
}

/** Key of one alert: who was denied talking to whom, on which port. */
export interface AlertKey {
  cluster: string;
  /** `namespace/workloadKind/workloadName` when attributed, else the IP. */
  src: string;
  dst: string;
  protocol: string;
  dstPort: number | null;
}

/** Hits of one alert key found in one payload, with the endpoints as attributed. */
export interface AlertCandidate {
  key: AlertKey;
  src: Endpoint;
  dst: Endpoint;
  direction: Direction;
  reporter: string;
  policy: PolicyRef | null;
  hits: number;
  firstSeen: string;
  lastSeen: string;
  severity: "high" | "low";
  /** "internal-denial", "internal-scan", "internal-fan-in" or "external-scan". */
  reason: string;
  /**
   * When the hits happened: one span per flow of the key (its first and last packet, its packets), so that a
   * batch longer than an alert window (a replayed file, a backfill page) counts each hit in the window that holds
   * it. Absent: all of them in [firstSeen, lastSeen], counted as of firstSeen.
   */
  spans?: readonly HitSpan[];
  /** Of a scan or fan-in: the namespaces its flows' ends were in (alert-rules.ts). */
  namespaces?: AlertNamespaces;
}

/**
 * The distinct namespaces of the sources and of the destinations of the flows that opened a scan or fan-in alert
 * (null: an end in none, as an external address or a node), sorted, at most MAX_ALERT_NAMESPACES each: its
 * example names one of each, and subscribers filter on all of them (alert-message.ts, message attributes).
 */
export interface AlertNamespaces {
  src: (string | null)[];
  dst: (string | null)[];
}

/** The most namespaces an alert keeps per end (AlertNamespaces). */
export const MAX_ALERT_NAMESPACES = 100;

export interface HitSpan {
  firstSeen: string;
  lastSeen: string;
  hits: number;
}

/** An alert as stored and as `alerts --json` prints it. */
export interface AlertRecord {
  id: string;
  cluster: string;
  key: AlertKey;
  src: Endpoint;
  dst: Endpoint;
  protocol: string;
  dstPort: number | null;
  direction: Direction;
  reporter: string;
  policy: PolicyRef | null;
  severity: "high" | "low";
  reason: string;
  /** Hits counted in this alert's window (including the one that opened it). */
  count: number;
  /**
   * Hits of the previous window of the same key that no message of its alert told (its count less the count it was
   * last sent or summarised with; all of them if it never went out), as known when this alert opened.
   */
  foldedBefore: number;
  openedAt: string;
  windowEnd: string;
  firstSeen: string;
  lastSeen: string;
  /** "sent": published on its own; "summarized": over a run's cap, counted and listed in its summary instead. */
  delivery: AlertDelivery;
  /** Of a scan or fan-in: the namespaces of the ends of the flows that opened it. Absent for other alerts. */
  namespaces?: AlertNamespaces;
}

export type AlertDelivery = "pending" | "sent" | "summarized";
