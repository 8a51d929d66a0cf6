// runPipeline against a naive reference, on generated batches of calico-packet lines. The pipeline reads lines
// through the scanner's fields, finds IPv4 addresses by value and host names by their bytes, numbers every key
// part, asks the directory once per address span, and aggregates in typed arrays. The reference below does none
// of that: each line's record from the public parser, internal-ness from the generator's own address pool, the
// direction from the interface names, each end looked up on its own at the event's exact time, flows grouped in
// a Map by a JSON key and summed, alert candidates grouped the way alert-rules.ts documents.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { endpointKey, flowId, policyKey } from "../../functions/core/aggregate.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { DeliveredEvents } from "../../functions/core/delivered-events.ts";
import { createParser, createScanner } from "../../functions/core/parse.ts";
import { type LogEvent, type PipelineResult, runPipeline } from "../../functions/core/pipeline.ts";
import { decodeDelivery, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type {
  AlertCandidate,
  Direction,
  Endpoint,
  FlowRecord,
  Holder,
  IpDirectory,
  Lookup,
  PolicyRef,
  Resolution,
  SpanLookup,
  SpanResolution,
} from "../../functions/core/types.ts";

const T = Date.parse("2026-04-19T04:52:00Z");
/** The clock of lines that carry no time and arrive without an event timestamp. */
const NOW = T + 7 * 3_600_000;
const S = 1000;
const CLUSTER = "prod";
const FORMAT = "calico-packet %t %k %n";
const INTERNAL = ["192.168.0.0/16", "10.0.0.0/8", "fd00::/8"];
const WORKLOAD_PREFIXES = ["cali", "eni", "vlan"];

// ---------------------------------------------------------------------------------------------------------------
// Who holds what, and a tiny directory over it.

const pod = (
  name: string,
  namespace: string,
  workload: Holder["workload"],
  validFrom: number,
  validTo: number | null,
  labels?: Record<string, string>,
): Holder => ({
  kind: "pod",
  namespace,
  name,
  workload,
  node: "ip-192-168-3-3",
  uid: `uid-${name}-${validFrom}`,
  validFrom,
  validTo,
  ...(labels === undefined ? {} : { labels }),
});
const node = (name: string, validFrom: number): Holder => ({
  kind: "node",
  namespace: null,
  name,
  workload: null,
  node: name,
  uid: `uid-${name}`,
  validFrom,
  validTo: null,
});

const TENURES: { ip: string; holder: Holder }[] = [
  // Reused inside the batch: an API pod until T+60 s, nobody for 15 s, then a Job's pod.
  {
    ip: "192.168.1.1",
    holder: pod("api-7d9-x2", "shop", { kind: "Deployment", name: "api" }, T - 3600 * S, T + 60 * S),
  },
  { ip: "192.168.1.1", holder: pod("report-q8", "batch", { kind: "Job", name: "report" }, T + 75 * S, null) },
  // A StatefulSet's pod recreated under the same name: another holder, the same endpoint.
  {
    ip: "192.168.1.2",
    holder: pod("db-0", "shop", { kind: "StatefulSet", name: "db" }, T - 86_400 * S, T + 150 * S, {
      team: "data",
    }),
  },
  {
    ip: "192.168.1.2",
    holder: pod("db-0", "shop", { kind: "StatefulSet", name: "db" }, T + 150 * S, null, {}),
  },
  // A node's address (hostNetwork pods are the node).
  { ip: "192.168.3.3", holder: node("ip-192-168-3-3", T - 86_400 * S) },
  // A pod created during the batch: nobody held the address before.
  {
    ip: "192.168.4.4",
    holder: pod("late-1", "shop", { kind: "Deployment", name: "late" }, T + 100 * S, null),
  },
  // Fargate: the pod and its node share the address, and the pod wins.
  { ip: "192.168.5.5", holder: node("fargate-ip-192-168-5-5", T - 86_400 * S) },
  {
    ip: "192.168.5.5",
    holder: pod("fn-1", "serverless", { kind: "Deployment", name: "fn" }, T - 600 * S, null),
  },
  // A bare pod (no owner), in another internal range.
  { ip: "10.1.2.3", holder: pod("debug", "default", null, T - 3600 * S, null) },
  { ip: "fd00::1", holder: pod("web-2", "shop", { kind: "Deployment", name: "web" }, T - 3600 * S, null) },
];
/** The API server cannot say who holds these. */
const DOWN = new Set(["192.168.9.9"]);

/** Who held `ip` at `at` (epoch ms): the holder whose lifetime covers it, a pod before a node. */
function holderAt(ip: string, at: number): Resolution {
  if (DOWN.has(ip)) return { status: "unavailable", reason: "the API server is down" };
  let best: Holder | undefined;
  for (const t of TENURES) {
    const h = t.holder;
    if (t.ip !== ip || at < h.validFrom || (h.validTo !== null && at >= h.validTo)) continue;
    if (best === undefined || (best.kind === "node" && h.kind === "pod")) best = h;
  }
  return best === undefined ? { status: "absent" } : { status: "found", holder: best };
}

const sameAnswer = (a: Resolution, b: Resolution) =>
  a.status === b.status && (a.status !== "found" || a.holder === (b as typeof a).holder);

/** An IpDirectory over TENURES that records what it is asked. */
class TinyDirectory implements IpDirectory {
  readonly asked: Lookup[] = [];
  readonly spansAsked: SpanLookup[] = [];
  resolveSpans?: (spans: readonly SpanLookup[]) => Promise<SpanResolution[]>;
  /** A new holder object for every answer, as a directory over JSON makes. */
  readonly fresh: boolean;

  constructor(fresh: boolean, answersSpans: boolean) {
    this.fresh = fresh;
    if (answersSpans) {
      this.resolveSpans = async (spans) => {
        this.spansAsked.push(...spans);
        return spans.map((s) => {
          const first = holderAt(s.ip, s.at);
          // The answer changes only where a lifetime starts or ends.
          for (const t of TENURES) {
            if (t.ip !== s.ip) continue;
            for (const edge of [t.holder.validFrom, t.holder.validTo]) {
              if (
                edge !== null &&
                edge > s.at &&
                edge <= s.until &&
                !sameAnswer(first, holderAt(s.ip, edge))
              ) {
                return { status: "varies" };
              }
            }
          }
          return this.#hand(first);
        });
      };
    }
  }

  #hand(r: Resolution): Resolution {
    return this.fresh && r.status === "found" ? { status: "found", holder: { ...r.holder } } : r;
  }

  async resolve(lookups: readonly Lookup[]): Promise<Resolution[]> {
    this.asked.push(...lookups);
    return lookups.map((l) => this.#hand(holderAt(l.ip, l.at)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses: as the kernel prints them, as the record names them, and whether they are inside the cluster.

interface Address {
  printed: string;
  ip: string;
  internal: boolean;
}
const v4 = (ip: string, internal: boolean): Address => ({ printed: ip, ip, internal });
const full6 = (groups: number[]) => groups.map((g) => g.toString(16).padStart(4, "0")).join(":");

const arbV4: fc.Arbitrary<Address> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      ...[...new Set(TENURES.map((t) => t.ip))].filter((ip) => !ip.includes(":")).map((ip) => v4(ip, true)),
      v4("192.168.7.7", true),
      v4("192.168.9.9", true),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      v4("203.0.113.9", false),
      v4("8.8.8.8", false),
      v4("0.0.0.0", false),
      v4("255.255.255.255", false),
    ),
  },
  // Many distinct addresses, inside and outside: more than the tables start with.
  { weight: 2, arbitrary: fc.nat(255).map((x) => v4(`192.168.200.${x}`, true)) },
  { weight: 2, arbitrary: fc.nat(65535).map((x) => v4(`198.51.${x >> 8}.${x & 255}`, false)) },
);
const arbV6: fc.Arbitrary<Address> = fc.oneof(
  fc.constantFrom<Address>(
    // The kernel prints every group in full; some relays compress.
    { printed: full6([0xfd00, 0, 0, 0, 0, 0, 0, 1]), ip: "fd00::1", internal: true },
    { printed: "fd00::1", ip: "fd00::1", internal: true },
    { printed: full6([0xfd00, 0, 0, 0, 0, 0, 0, 2]), ip: "fd00::2", internal: true },
    // IPv4-mapped: the IPv4 address, inside the cluster.
    { printed: full6([0, 0, 0, 0, 0, 0xffff, 0xc0a8, 0x0102]), ip: "::ffff:192.168.1.2", internal: true },
    { printed: full6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9]), ip: "2001:db8::9", internal: false },
  ),
  fc.nat(65535).map((x) => ({
    printed: full6([0xfd00, 0, 0, 0, 0, 0, 2, x]),
    ip: `fd00::2:${x.toString(16)}`,
    internal: true,
  })),
  fc.nat(65535).map((x) => ({
    printed: full6([0x2001, 0xdb8, 0, 0, 0, 0, 1, x]),
    ip: `2001:db8::1:${x.toString(16)}`,
    internal: false,
  })),
);

// ---------------------------------------------------------------------------------------------------------------
// Lines.

const FLAGS = ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"] as const;
const INTERFACES = [
  "eth0",
  "eni1a2b3c4d5e6",
  "cali0ab1cd2ef3",
  "vlan.7",
  "vlan.eth.1",
  "vlan1a2b3c4d5e6",
  "",
  "ens5",
  "calico9",
  "vxlan.calico",
  "eni",
];
const PREFIXES = [
  "calico-packet: ",
  "calico-packet default gnp deny-a: ",
  "calico-packet sec gnp deny-b: ",
  "calico-packet sec np shop.deny-c: ",
];
/**
 * Host names: short and long (the pipeline keeps names of up to 64 bytes by their bytes), alike, not ASCII, and a
 * placeholder (the log stream's node reports those lines).
 */
const FIXED_HOSTS = [
  "ip-192-168-74-5.eu-west-1.compute.internal",
  "ip-192-168-74-5",
  "ip-192-168-74-50",
  "h".repeat(64),
  "h".repeat(65),
  `ip-10-0-0-1.${"relay".repeat(14)}.internal`,
  "nöde-1",
  "näde-1",
  "localhost",
];
/** Host k: the fixed ones first, then as many distinct ones as wanted, some over 64 bytes. */
const hostName = (k: number) =>
  k < FIXED_HOSTS.length
    ? (FIXED_HOSTS[k] as string)
    : k % 7 === 0
      ? `ip-10-0-${k >> 8}-${k & 255}.${"x".repeat(60)}.internal`
      : `ip-10-0-${k >> 8}-${k & 255}.eu-west-1.compute.internal`;

const arbTransport = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("TCP" as const),
      port: fc.constantFrom(22, 443, 5432, 8080),
      flags: fc.subarray([...FLAGS]),
      seq: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("UDP" as const), port: fc.constantFrom(53, 123, 443, 8472) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("ICMP" as const) }) },
  // An ICMP error quoting the packet it answers: the quoted ports are not the outer record's.
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("ICMPERR" as const), port: fc.constantFrom(53, 5432) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("SCTP" as const) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("GRE" as const) }) },
);

const arbPacket = fc.oneof(
  { weight: 3, arbitrary: fc.record({ family: fc.constant(4 as const), src: arbV4, dst: arbV4 }) },
  { weight: 1, arbitrary: fc.record({ family: fc.constant(6 as const), src: arbV6, dst: arbV6 }) },
);

const arbLine = fc.record({
  kind: fc.constantFrom(
    "calico",
    "calico",
    "calico",
    "calico",
    "calico",
    "calico",
    "calico",
    "skip",
    "malformed",
  ),
  packet: arbPacket,
  transport: arbTransport,
  inIf: fc.constantFrom(...INTERFACES),
  outIf: fc.constantFrom(...INTERFACES),
  prefix: fc.constantFrom(...PREFIXES),
  wrapper: fc.constantFrom(
    "syslog",
    "syslog",
    "syslog",
    "syslogNewline",
    "priority",
    "rfc5424",
    "rfc5424NilHost",
    "tagOnly",
    "bare",
    "journald",
    "fluentbit",
    "jsonNoHost",
    "container",
    "containerSyslog",
  ),
  /** Taken modulo the batch's host spread. */
  host: fc.nat(499),
  length: fc.integer({ min: 20, max: 65535 }),
  second: fc.oneof(
    { weight: 9, arbitrary: fc.integer({ min: 0, max: 299 }) },
    { weight: 1, arbitrary: fc.constantFrom(-3600, 86_400) },
  ),
  /** Often a whole second: a bucket's first millisecond. */
  ms: fc.oneof(fc.nat(999), fc.constant(0)),
  /** The line's own clock, off the event's: using it instead shows. */
  skew: fc.integer({ min: -45, max: 45 }),
  stamped: fc.nat(9).map((n) => n > 0),
  spt: fc.integer({ min: 1024, max: 65535 }),
});
type Line = typeof arbLine extends fc.Arbitrary<infer L> ? L : never;

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");
const syslogTime = (ms: number) => {
  const d = new Date(ms);
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
};

const eventTime = (l: Line) => T + l.second * S + l.ms;

function packetText(l: Line): string {
  const { packet: p, transport: t } = l;
  const ipHeader = (src: string, dst: string, length: number) =>
    p.family === 4
      ? `SRC=${src} DST=${dst} LEN=${length} TOS=0x00 PREC=0x00 TTL=63 ID=${length * 7} DF`
      : `SRC=${src} DST=${dst} LEN=${length} TC=0 HOPLIMIT=63 FLOWLBL=${length}`;
  let transport: string;
  switch (t.kind) {
    case "TCP":
      transport = `PROTO=TCP SPT=${l.spt} DPT=${t.port} ${t.seq ? "SEQ=1234567 ACK=0 " : ""}WINDOW=62727 RES=0x00 ${t.flags.map((f) => `${f} `).join("")}URGP=0`;
      break;
    case "UDP":
      transport = `PROTO=UDP SPT=${l.spt} DPT=${t.port} LEN=${Math.max(8, l.length - 20)}`;
      break;
    case "ICMP":
      transport =
        p.family === 4 ? "PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1" : "PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1";
      break;
    case "ICMPERR": {
      // The packet the destination sent to a third address: never part of the record, never looked up.
      const third = p.family === 4 ? "192.168.77.77" : full6([0xfd00, 0, 0, 0, 0, 0, 0, 0x77]);
      const inner = `${ipHeader(p.dst.printed, third, 60)} PROTO=UDP SPT=${l.spt} DPT=${t.port} LEN=40`;
      transport =
        p.family === 4
          ? `PROTO=ICMP TYPE=3 CODE=3 [${inner} ] MTU=1500`
          : `PROTO=ICMPv6 TYPE=1 CODE=4 [${inner} ]`;
      break;
    }
    case "SCTP":
      // nf_log_syslog prints protocols whose header it does not read by number, without ports.
      transport = "PROTO=132";
      break;
    case "GRE":
      transport = "PROTO=47";
      break;
  }
  const mac = "MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00";
  const text = `${l.prefix}IN=${l.inIf} OUT=${l.outIf} ${mac} ${ipHeader(p.src.printed, p.dst.printed, l.length)} ${transport}`;
  if (l.kind !== "malformed") return text;
  // Damaged the way cut or garbled lines are.
  switch (l.length % 3) {
    case 0:
      return text.slice(0, text.indexOf(" DST="));
    case 1:
      return text.replace(`SRC=${p.src.printed}`, "SRC=999.1.1.1");
    default:
      return text.replace(/ LEN=\d+/, " LEN=x");
  }
}

function message(l: Line, host: string): string {
  const lineMs = eventTime(l) + l.skew * S;
  const iso = new Date(lineMs).toISOString();
  let text = packetText(l);
  if (l.kind === "skip") {
    text =
      l.length % 3 === 0
        ? "I0419 04:52:19.123 kubelet.go:2345] SyncLoop (PLEG): pod café started"
        : l.length % 3 === 1
          ? "felix: configured the calico-packet log prefix for 12 rules"
          : `${text.slice(0, 30)}`.replace("calico-packet", "calico-flows");
  }
  const syslog = `${syslogTime(lineMs)} ${host} kernel: ${text}`;
  switch (l.wrapper) {
    case "syslog":
      return syslog;
    case "syslogNewline":
      return `${syslog}\n`;
    case "priority":
      return `<4>${syslog}`;
    case "rfc5424":
      return `<4>1 ${iso} ${host} kernel - - - ${text}`;
    case "rfc5424NilHost":
      return `<4>1 ${iso} - kernel - - - ${text}`;
    case "tagOnly":
      return `${syslogTime(lineMs)} kernel: ${text}`;
    case "bare":
      return text;
    case "journald":
      return JSON.stringify({ _HOSTNAME: host, MESSAGE: text, __REALTIME_TIMESTAMP: `${lineMs * 1000}` });
    case "fluentbit":
      // The wrapped syslog line names its own host, which wins over the record's.
      return JSON.stringify({ log: `${syslog}\n`, kubernetes: { host: "k8s-host-from-filter" } });
    case "jsonNoHost":
      return JSON.stringify({ message: text, ...(l.ms % 2 === 0 ? { time: iso } : {}) });
    case "container":
      return `${iso} stdout F ${text}`;
    case "containerSyslog":
      return `${iso} stderr F ${syslog}`;
    default:
      throw new Error(`no wrapper ${l.wrapper}`);
  }
}

const arbBatch = fc.record({
  lines: fc.oneof(
    fc.array(arbLine, { minLength: 1, maxLength: 40 }),
    // Past 128 host names, a 32 KiB window of a delivery, and the tables' first sizes.
    fc.array(arbLine, { minLength: 1, maxLength: 500, size: "max" }),
  ),
  /**
   * Retries of a line: the same conversation at another time, from another source port, with other flags, put
   * anywhere in the batch. Denied connections are retried, so most of a real batch is this.
   */
  retries: fc.array(
    fc.record({
      of: fc.nat(),
      to: fc.nat(),
      second: fc.integer({ min: 0, max: 299 }),
      ms: fc.nat(999),
      spt: fc.integer({ min: 1024, max: 65535 }),
      length: fc.integer({ min: 20, max: 1500 }),
      flags: fc.subarray([...FLAGS]),
    }),
    { maxLength: 150 },
  ),
  /** How many host names the batch's lines draw from: one stream's node, a relay's few, or hundreds. */
  hostSpread: fc.constantFrom(1, 4, 12, 500),
  stream: fc.oneof(
    { weight: 9, arbitrary: fc.constantFrom("ip-192-168-74-5", "kube/ip-10-0-0-9") },
    { weight: 1, arbitrary: fc.constant("") },
  ),
  bucketSeconds: fc.constantFrom(60, 60, 10, 300),
  scanThreshold: fc.constantFrom(undefined, 2, 3),
  spans: fc.boolean(),
  fresh: fc.boolean(),
  delivered: fc.constantFrom("encoded", "encoded", "fromArray"),
});
type Batch = typeof arbBatch extends fc.Arbitrary<infer B> ? B : never;

/** The batch's lines with its retries among them. */
function linesOf(batch: Batch): Line[] {
  const lines = [...batch.lines];
  for (const r of batch.retries) {
    const l = batch.lines[r.of % batch.lines.length] as Line;
    const transport = l.transport.kind === "TCP" ? { ...l.transport, flags: r.flags } : l.transport;
    const retry = { ...l, second: r.second, ms: r.ms, spt: r.spt, length: r.length, transport };
    lines.splice(r.to % (lines.length + 1), 0, retry);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// The reference.

// A prefix followed by a dot is no pod's interface (the VPC CNI's `vlan.eth.N` is the trunk ENI's VLAN).
const isWorkload = (name: string | null) =>
  name !== null && WORKLOAD_PREFIXES.some((p) => name.startsWith(p) && name[p.length] !== ".");

function direction(inIf: string | null, outIf: string | null): Direction {
  if (isWorkload(outIf)) return "ingress";
  if (isWorkload(inIf)) return "egress";
  return inIf === null || outIf === null ? "host" : "forward";
}

function endpoint(ip: string, r: Resolution | null): Endpoint {
  const bare = (kind: "external" | "unknown", resolved: boolean): Endpoint => ({
    ip,
    kind,
    namespace: null,
    name: null,
    workload: null,
    node: null,
    resolved,
  });
  if (r === null) return bare("external", true);
  if (r.status === "absent") return bare("unknown", true);
  if (r.status === "unavailable") return bare("unknown", false);
  const h = r.holder;
  const e: Endpoint = {
    ip,
    kind: h.kind,
    namespace: h.namespace,
    name: h.name,
    workload: h.workload,
    node: h.node,
    resolved: true,
  };
  if (h.labels !== undefined && Object.keys(h.labels).length > 0) e.labels = h.labels;
  return e;
}

/** The alert key's name of an endpoint, as alert-rules.ts documents it. */
function alertName(e: Endpoint): string {
  if (e.kind === "node" && e.name !== null) return `node/${e.name}`;
  if ((e.kind === "pod" || e.kind === "service") && e.namespace !== null) {
    if (e.workload !== null) return `${e.namespace}/${e.workload.kind}/${e.workload.name}`;
    if (e.name !== null) return `${e.namespace}/${e.kind === "pod" ? "Pod" : "Service"}/${e.name}`;
  }
  return e.ip;
}

/** A policy with a name before one without, then the most packets, then the example's, then by policyKey. */
function namedPolicy(flows: FlowRecord[], example: FlowRecord): PolicyRef | null {
  const totals = new Map<string, { policy: PolicyRef; packets: number }>();
  for (const f of flows) {
    if (f.policy === null) continue;
    const id = JSON.stringify(f.policy);
    totals.set(id, { policy: f.policy, packets: (totals.get(id)?.packets ?? 0) + f.packets });
  }
  const ranked = [...totals.entries()].sort(
    ([ida, a], [idb, b]) =>
      Number(b.policy.name !== null) - Number(a.policy.name !== null) ||
      b.packets - a.packets ||
      Number(idb === JSON.stringify(example.policy)) - Number(ida === JSON.stringify(example.policy)) ||
      (policyKey(a.policy) < policyKey(b.policy) ? -1 : 1),
  );
  return ranked[0]?.[1].policy ?? null;
}

function candidateOf(
  key: AlertCandidate["key"],
  flows: FlowRecord[],
  example: FlowRecord,
  severity: AlertCandidate["severity"],
  reason: string,
): AlertCandidate {
  const seen = flows.flatMap((f) => [f.firstSeen, f.lastSeen]).sort();
  return {
    key,
    src: example.src,
    dst: example.dst,
    direction: example.direction,
    reporter: example.reporter,
    policy: namedPolicy(flows, example),
    hits: flows.reduce((n, f) => n + f.packets, 0),
    firstSeen: seen[0] as string,
    lastSeen: seen[seen.length - 1] as string,
    severity,
    reason,
    spans: flows.map((f) => ({ firstSeen: f.firstSeen, lastSeen: f.lastSeen, hits: f.packets })),
  };
}

/** A scan's or fan-in's candidate: with the namespaces of its flows' ends, none ("" sorts first) before any. */
function manyEnded(c: AlertCandidate, flows: FlowRecord[]): AlertCandidate {
  const sorted = (names: (string | null)[]) =>
    [...new Set(names.map((n) => n ?? ""))].sort().map((n) => (n === "" ? null : n));
  return {
    ...c,
    namespaces: {
      src: sorted(flows.map((f) => f.src.namespace)),
      dst: sorted(flows.map((f) => f.dst.namespace)),
    },
  };
}

function referenceCandidates(flows: FlowRecord[], threshold: number | undefined): AlertCandidate[] {
  const out: AlertCandidate[] = [];
  const denials = new Map<string, { key: AlertCandidate["key"]; flows: FlowRecord[] }>();
  for (const f of flows.filter((g) => g.internal)) {
    const key = {
      cluster: f.cluster,
      src: alertName(f.src),
      dst: alertName(f.dst),
      protocol: f.protocol,
      dstPort: f.dstPort,
    };
    const id = JSON.stringify(key);
    const group = denials.get(id) ?? { key, flows: [] };
    group.flows.push(f);
    denials.set(id, group);
  }
  // The latest seen is the example (ties: the smallest id).
  const latestOf = (own: FlowRecord[]) =>
    own.reduce((a, b) => (b.lastSeen > a.lastSeen || (b.lastSeen === a.lastSeen && b.id < a.id) ? b : a));
  const groups = [...denials.values()];
  // A source with at least `threshold` keys is one internal scan, where its first key was; its example is the
  // latest flow of its most-hit destination (its keys' hits summed per destination).
  // Then a destination (name, protocol, port) denied to at least `threshold` sources that are not scans is one
  // internal fan-in, where its first key was, its example the latest flow of its most-hit source.
  const keysOf = (src: string) => groups.filter((g) => g.key.src === src);
  // A scan reaches `threshold` distinct destinations and ports, whatever the protocols.
  const scanning = (src: string) =>
    threshold !== undefined &&
    new Set(keysOf(src).map((g) => `${g.key.dst}/${g.key.dstPort}`)).size >= threshold;
  const sameDestination = (a: AlertCandidate["key"], b: AlertCandidate["key"]) =>
    a.dst === b.dst && a.protocol === b.protocol && a.dstPort === b.dstPort;
  const hits = (g: { flows: FlowRecord[] }) => g.flows.reduce((n, f) => n + f.packets, 0);
  const merged = (
    key: AlertCandidate["key"],
    mine: typeof groups,
    reason: string,
    endOf: (k: AlertCandidate["key"]) => string,
  ) => {
    const byEnd = (end: string) => mine.filter((g) => endOf(g.key) === end);
    const endHits = (end: string) => byEnd(end).reduce((n, g) => n + hits(g), 0);
    const most = Math.max(...mine.map((g) => endHits(endOf(g.key))));
    const all = mine.flatMap((g) => g.flows);
    return manyEnded(
      candidateOf(
        key,
        all,
        latestOf(mine.filter((g) => endHits(endOf(g.key)) === most).flatMap((g) => g.flows)),
        "high",
        reason,
      ),
      all,
    );
  };
  for (const { key, flows: own } of groups) {
    if (scanning(key.src)) {
      const mine = keysOf(key.src);
      if (mine[0]?.key !== key) continue;
      out.push(
        merged(
          { cluster: key.cluster, src: key.src, dst: "*scan*", protocol: "*", dstPort: null },
          mine,
          "internal-scan",
          (k) => k.dst,
        ),
      );
      continue;
    }
    const many = groups.filter((g) => !scanning(g.key.src) && sameDestination(g.key, key));
    if (threshold !== undefined && many.length >= threshold) {
      if (many[0]?.key === key)
        out.push(merged({ ...key, src: "*many*" }, many, "internal-fan-in", (k) => k.src));
      continue;
    }
    out.push(candidateOf(key, own, latestOf(own), "high", "internal-denial"));
  }
  if (threshold === undefined) return out;
  const scans = new Map<string, FlowRecord[]>();
  for (const f of flows) {
    if (f.internal || f.src.kind !== "external") continue;
    scans.set(f.src.ip, [...(scans.get(f.src.ip) ?? []), f]);
  }
  for (const [ip, own] of scans) {
    // A port counts once whatever its protocol (DNS over UDP, then TCP).
    const ports = new Set(own.filter((f) => f.dstPort !== null).map((f) => f.dstPort));
    const hits = new Map<string, number>();
    for (const f of own) hits.set(f.dst.ip, (hits.get(f.dst.ip) ?? 0) + f.packets);
    if (ports.size < threshold && hits.size < threshold) continue;
    // The most-hit destination (ties: the smallest IP), its first flow.
    const [top] = [...hits].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))[0] as [
      string,
      number,
    ];
    const example = own.find((f) => f.dst.ip === top) as FlowRecord;
    const key = { cluster: CLUSTER, src: ip, dst: "*scan*", protocol: "*", dstPort: null };
    out.push(manyEnded(candidateOf(key, own, example, "low", "external-scan"), own));
  }
  return out;
}

interface Expected {
  result: PipelineResult;
  /** Per internal address, the event times (ms) of its lines. */
  seen: Map<string, number[]>;
}

function reference(events: readonly LogEvent[], batch: Batch, internalOf: Map<string, boolean>): Expected {
  const parse = createParser({ year: 2026, prefixFormat: FORMAT });
  const bucketMs = batch.bucketSeconds * S;
  const stats = { lines: 0, calico: 0, skipped: 0, malformed: 0, unresolved: 0, attributionMisses: 0 };
  const malformed: { index: number; reason: string }[] = [];
  const misses = new Set<string>();
  const unresolved = new Set<string>();
  const seen = new Map<string, number[]>();
  interface Group {
    first: number;
    bucket: number;
    src: Endpoint;
    dst: Endpoint;
    protocol: string;
    dstPort: number | null;
    reporter: string;
    policy: PolicyRef | null;
    direction: Direction;
    internal: boolean;
    packets: number;
    bytes: number;
    firstAt: number;
    lastAt: number;
    flags: Set<string>;
  }
  const groups = new Map<string, Group>();
  events.forEach((event, index) => {
    stats.lines++;
    const outcome = parse(event.message);
    if (outcome.kind === "skip") {
      stats.skipped++;
      return;
    }
    if (outcome.kind === "error") {
      stats.malformed++;
      malformed.push({ index, reason: outcome.reason });
      return;
    }
    stats.calico++;
    const r = outcome.record;
    const at = event.timestamp ?? (r.time === null ? NOW : Date.parse(r.time));
    const end = (ip: string): Endpoint => {
      const internal = internalOf.get(ip);
      if (internal === undefined) throw new Error(`the parser named ${ip}, which no line printed`);
      if (!internal) return endpoint(ip, null);
      seen.set(ip, [...(seen.get(ip) ?? []), at]);
      const answer = holderAt(ip, at);
      if (answer.status === "absent") misses.add(ip);
      if (answer.status === "unavailable") unresolved.add(ip);
      return endpoint(ip, answer);
    };
    const src = end(r.src);
    const dst = end(r.dst);
    const bucket = Math.floor(at / bucketMs) * bucketMs;
    // A placeholder host names no node: the wrapper's host (the fluentbit wrapper's kubernetes.host), else the stream.
    const placeholder = (host: string | null) =>
      host === null || ["localhost", "localhost.localdomain", "(none)"].includes(host);
    const wrapperHost = (): string | null => {
      if (!event.message.startsWith("{")) return null;
      const host = (JSON.parse(event.message) as { kubernetes?: { host?: string } }).kubernetes?.host;
      return host === undefined || placeholder(host) ? null : host;
    };
    const reporter = !placeholder(r.node) ? (r.node as string) : (wrapperHost() ?? event.node ?? "unknown");
    const id = (e: Endpoint) => [e.ip, e.kind, e.namespace, e.name];
    const policy =
      r.policy === null ? null : [r.policy.tier, r.policy.kind, r.policy.namespace, r.policy.name];
    const key = JSON.stringify([bucket, id(src), id(dst), r.protocol, r.dstPort, reporter, policy]);
    let g = groups.get(key);
    if (g === undefined) {
      g = {
        first: index,
        bucket,
        src,
        dst,
        protocol: r.protocol,
        dstPort: r.dstPort,
        reporter,
        policy: r.policy,
        direction: direction(r.inInterface, r.outInterface),
        internal: internalOf.get(r.src) === true && internalOf.get(r.dst) === true,
        packets: 0,
        bytes: 0,
        firstAt: at,
        lastAt: at,
        flags: new Set(),
      };
      groups.set(key, g);
    }
    g.packets++;
    g.bytes += r.length;
    g.firstAt = Math.min(g.firstAt, at);
    g.lastAt = Math.max(g.lastAt, at);
    for (const flag of r.tcpFlags) g.flags.add(flag);
  });
  stats.attributionMisses = misses.size;
  stats.unresolved = unresolved.size;
  // flows() promises: by bucket, then as first seen.
  const flows: FlowRecord[] = [...groups.values()]
    .sort((a, b) => a.bucket - b.bucket || a.first - b.first)
    .map((g) => ({
      id: flowId(
        CLUSTER,
        g.bucket,
        endpointKey(g.src),
        endpointKey(g.dst),
        g.protocol,
        g.dstPort,
        g.reporter,
        policyKey(g.policy),
      ),
      cluster: CLUSTER,
      bucket: new Date(g.bucket).toISOString(),
      src: g.src,
      dst: g.dst,
      protocol: g.protocol,
      dstPort: g.dstPort,
      direction: g.direction,
      reporter: g.reporter,
      internal: g.internal,
      packets: g.packets,
      bytes: g.bytes,
      firstSeen: new Date(g.firstAt).toISOString(),
      lastSeen: new Date(g.lastAt).toISOString(),
      policy: g.policy,
      tcpFlags: [...g.flags].sort(),
    }));
  return {
    result: {
      flows,
      candidates: referenceCandidates(flows, batch.scanThreshold),
      stats,
      malformed: malformed.slice(0, 20),
    },
    seen,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The comparison.

/** tcpFlags is a union: its order is not part of the contract. */
const flagsAsSets = (flows: readonly FlowRecord[]) =>
  flows.map((f) => ({ ...f, tcpFlags: [...f.tcpFlags].sort() }));

async function check(
  events: readonly LogEvent[] | DeliveredEvents,
  plain: readonly LogEvent[],
  batch: Batch,
  internalOf: Map<string, boolean>,
) {
  const directory = new TinyDirectory(batch.fresh, batch.spans);
  const result = await runPipeline(events, {
    cluster: CLUSTER,
    internal: new CidrSet(INTERNAL),
    bucketSeconds: batch.bucketSeconds,
    scanner: createScanner({ year: 2026, prefixFormat: FORMAT }),
    directory,
    now: () => NOW,
    ...(batch.scanThreshold === undefined ? {} : { scanThreshold: batch.scanThreshold }),
  });
  const expected = reference(plain, batch, internalOf);
  expect(result.stats).toEqual(expected.result.stats);
  expect(result.malformed).toEqual(expected.result.malformed);
  expect(flagsAsSets(result.flows)).toEqual(flagsAsSets(expected.result.flows));
  expect(new Set(result.flows.map((f) => f.id)).size).toBe(result.flows.length);
  expect(result.candidates).toEqual(expected.result.candidates);

  // The directory is asked about internal addresses only, at seconds they were seen, each (address, second) once.
  const second = (ms: number) => Math.floor(ms / S) * S;
  const seenSeconds = new Map([...expected.seen].map(([ip, times]) => [ip, new Set(times.map(second))]));
  const asked = directory.asked.map((l) => `${l.ip} ${l.at}`);
  expect(new Set(asked).size).toBe(asked.length);
  for (const l of directory.asked) expect(seenSeconds.get(l.ip)?.has(l.at), `${l.ip} at ${l.at}`).toBe(true);
  if (batch.spans) {
    expect(directory.spansAsked.map((s) => s.ip).sort()).toEqual([...seenSeconds.keys()].sort());
    for (const s of directory.spansAsked) {
      const times = [...(seenSeconds.get(s.ip) ?? [])];
      expect([s.at, s.until]).toEqual([Math.min(...times), Math.max(...times)]);
    }
  } else {
    const all = [...seenSeconds].flatMap(([ip, seconds]) => [...seconds].map((at) => `${ip} ${at}`));
    expect(asked.sort()).toEqual(all.sort());
  }
  return { result, directory };
}

describe("runPipeline against a naive reference (property)", () => {
  it("makes the reference's flows, candidates and stats from plain events and from a delivery's bytes", async () => {
    const reached = {
      flows: 0,
      reused: 0,
      manyHosts: 0,
      longHosts: 0,
      emptyStream: 0,
      bucketsSplit: 0,
      scans: 0,
      windows: 0,
      notAsciiWindows: 0,
      unresolved: 0,
      misses: 0,
      varies: 0,
    };
    await fc.assert(
      fc.asyncProperty(arbBatch, async (batch) => {
        const lines = linesOf(batch);
        const internalOf = new Map<string, boolean>();
        for (const l of lines) for (const a of [l.packet.src, l.packet.dst]) internalOf.set(a.ip, a.internal);
        const messages = lines.map((l) => message(l, hostName(l.host % batch.hostSpread)));
        // As plain objects: a tenth without a timestamp (they take the line's, else `now`), some without a node.
        const plain: LogEvent[] = lines.map((l, k) => ({
          message: messages[k] as string,
          ...(l.stamped ? { timestamp: eventTime(l) } : {}),
          ...(k % 5 === 4 ? {} : { node: batch.stream }),
        }));
        const { result: plainResult } = await check(plain, plain, batch, internalOf);
        // As a delivery: every event has its timestamp, and the stream is the node of lines that name none.
        const cloudWatch = lines.map((l, k) => ({
          id: String(37_000_000 + k).padStart(56, "3"),
          timestamp: eventTime(l),
          message: messages[k] as string,
        }));
        const delivered =
          batch.delivered === "fromArray"
            ? DeliveredEvents.fromArray(cloudWatch, batch.stream)
            : decodeDelivery(
                encodeSubscriptionData({
                  messageType: "DATA_MESSAGE",
                  owner: "123456789012",
                  logGroup: "/aws/eks/prod/nodes",
                  logStream: batch.stream,
                  subscriptionFilters: ["calico-packet"],
                  logEvents: cloudWatch,
                }),
              ).events;
        const asPlain = cloudWatch.map((e) => ({
          message: e.message,
          timestamp: e.timestamp,
          node: batch.stream,
        }));
        const { result: deliveredResult, directory } = await check(delivered, asPlain, batch, internalOf);

        const flows = [...plainResult.flows, ...deliveredResult.flows];
        reached.flows += flows.length;
        reached.reused +=
          flows.some((f) => f.src.name === "report-q8") && flows.some((f) => f.src.name === "api-7d9-x2")
            ? 1
            : 0;
        reached.manyHosts += new Set(flows.map((f) => f.reporter)).size > 128 ? 1 : 0;
        reached.longHosts += flows.some((f) => f.reporter.length > 64) ? 1 : 0;
        reached.bucketsSplit += new Set(flows.map((f) => f.bucket)).size > 2 ? 1 : 0;
        reached.scans += deliveredResult.candidates.some((c) => c.reason === "external-scan") ? 1 : 0;
        reached.emptyStream += batch.stream === "" && flows.some((f) => f.reporter === "") ? 1 : 0;
        const text = messages.join("");
        reached.windows += batch.delivered === "encoded" && text.length > 40_000 ? 1 : 0;
        reached.notAsciiWindows +=
          batch.delivered === "encoded" && !Buffer.from(text).every((c) => c < 0x80) ? 1 : 0;
        reached.unresolved += deliveredResult.stats.unresolved > 0 ? 1 : 0;
        reached.misses += deliveredResult.stats.attributionMisses > 0 ? 1 : 0;
        reached.varies += batch.spans && directory.asked.length > 0 ? 1 : 0;
      }),
      { numRuns: 300 },
    );
    // The generator reaches what it is for.
    for (const [what, count] of Object.entries(reached)) expect(count, what).toBeGreaterThan(0);
  });
});

describe("runPipeline's reporting node", () => {
  const line = (host: string | null) =>
    `${host === null ? "" : `Apr 19 04:52:19 ${host} kernel: `}calico-packet: IN=eth0 OUT=eni1a2b3c SRC=192.168.1.2 DST=192.168.200.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0`;
  const run = (events: readonly LogEvent[] | DeliveredEvents) =>
    runPipeline(events, {
      cluster: CLUSTER,
      internal: new CidrSet(INTERNAL),
      bucketSeconds: 60,
      scanner: createScanner({ year: 2026 }),
      directory: new TinyDirectory(false, false),
    });
  const delivery = (logStream: string, messages: string[]) =>
    decodeDelivery(
      encodeSubscriptionData({
        messageType: "DATA_MESSAGE",
        owner: "123456789012",
        logGroup: "/aws/eks/prod/nodes",
        logStream,
        subscriptionFilters: ["calico-packet"],
        logEvents: messages.map((message, k) => ({ id: String(k + 1), timestamp: T + k, message })),
      }),
    ).events;
  const reporters = (result: PipelineResult) => result.flows.map((f) => [f.reporter, f.packets]);

  it("keeps apart host names that differ only in characters outside ASCII", async () => {
    // The scanner holds each such character as the byte 0x80: by their bytes, nöde-1 and näde-1 are one name.
    const messages = [line("nöde-1"), line("ip-1"), line("näde-1"), line("nöde-1")];
    const expected = [
      ["nöde-1", 2],
      ["ip-1", 1],
      ["näde-1", 1],
    ];
    expect(reporters(await run(messages.map((message, k) => ({ message, timestamp: T + k }))))).toEqual(
      expected,
    );
    expect(reporters(await run(delivery("ip-1", messages)))).toEqual(expected);
  });

  it("names the log stream's node for lines whose host is a placeholder (localhost, (none))", async () => {
    // Bottlerocket's journald logs its kernel lines as from `localhost`; a kernel line from before the host name
    // was set says `(none)`. Neither names a node: the stream does.
    const journald = (host: string) =>
      JSON.stringify({ _HOSTNAME: host, MESSAGE: line(null), __REALTIME_TIMESTAMP: `${T * 1000}` });
    const messages = [
      line("localhost"),
      line("ip-1"),
      line("(none)"),
      line("localhost.localdomain"),
      journald("localhost"),
      line("localhost"),
      journald("ip-1"),
    ];
    const expected = [
      ["ip-192-168-3-3", 5],
      ["ip-1", 2],
    ];
    expect(reporters(await run(delivery("ip-192-168-3-3", messages)))).toEqual(expected);
    expect(
      reporters(
        await run(messages.map((message, k) => ({ message, timestamp: T + k, node: "ip-192-168-3-3" }))),
      ),
    ).toEqual(expected);
    // Without a stream, as any line that names none.
    expect(reporters(await run([{ message: line("localhost"), timestamp: T }]))).toEqual([["unknown", 1]]);
  });

  it("names a wrapper's host for a wrapped line whose own host is a placeholder, as for one naming none", async () => {
    // A Fluent Bit record (`host` added by record_modifier) around a syslog line; its log stream is a tag, not a node.
    const wrapped = (host: string | null) => JSON.stringify({ log: line(host), host: "ip-192-168-1-5" });
    for (const host of [null, "localhost"]) {
      expect(reporters(await run(delivery("kube.var.log.messages", [wrapped(host)])))).toEqual([
        ["ip-192-168-1-5", 1],
      ]);
    }
  });

  it("names an empty log stream as the node of lines that name none, and keeps the batch", async () => {
    // A delivery's log stream is the node of lines without a host name, even an empty one (which decodes).
    const messages = [line(null), line("ip-1"), line(null)];
    const expected = [
      ["", 2],
      ["ip-1", 1],
    ];
    expect(reporters(await run(delivery("", messages)))).toEqual(expected);
    expect(
      reporters(await run(messages.map((message, k) => ({ message, timestamp: T + k, node: "" })))),
    ).toEqual(expected);
  });
});
