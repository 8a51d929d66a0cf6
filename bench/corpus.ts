// A deterministic corpus of log lines like those of a real EKS cluster's node log groups: mostly kernel
// calico-packet lines for denied IPv4 TCP SYNs behind a syslog header, some UDP, ICMP, IPv6 and JSON-wrapped
// lines, and non-calico noise. Benches share it; the tests use its kernel-format printer.
//
// The printer follows net/netfilter/nf_log_syslog.c field by field, including the trailing space after every
// field and the one-level recursion into an ICMP error's quoted packet.

/** A seeded PRNG (mulberry32): the same seed gives the same corpus on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Transport =
  | {
      kind: "tcp";
      spt: number;
      dpt: number;
      /** Printed when the LOG rule has --log-tcp-sequence. */
      seq?: { seq: number; ack: number };
      window: number;
      res: number;
      flags: readonly string[];
      urgp: number;
      /** Hex option bytes, printed when the rule has --log-tcp-options. */
      options?: string;
    }
  | { kind: "udp"; lite?: boolean; spt: number; dpt: number; len: number }
  | {
      kind: "icmp";
      type: number;
      code: number;
      echo?: { id: number; seq: number };
      gateway?: string;
      parameter?: number;
      /** The quoted offending packet of an error, as the kernel prints it inside `[...]`. */
      inner?: string;
      mtu?: number;
    }
  | {
      kind: "icmpv6";
      type: number;
      code: number;
      echo?: { id: number; seq: number };
      pointer?: number;
      inner?: string;
      mtu?: number;
    }
  | { kind: "ipsec"; proto: "AH" | "ESP"; spi: number }
  /** The transport header was not in the packet. */
  | { kind: "incomplete"; proto: "TCP" | "UDP" | "ICMP" | "ICMPv6"; bytes: number }
  /** A protocol the kernel prints by number only, or a fragment after the first (only PROTO= is printed). */
  | { kind: "bare"; proto: string };

export interface PacketSpec {
  /** "" when the hook has no input (or output) device. */
  inInterface: string;
  outInterface: string;
  /** Raw MAC= value ("" prints `MAC= `); undefined when no MAC is printed (no input device). */
  mac?: string;
  /** MACDECODE form instead of MAC=. */
  macDecode?: { src: string; dst: string; proto: string };
  ipVersion: 4 | 6;
  /** Addresses exactly as the kernel prints them (IPv6: 8 groups of 4 hex digits). */
  src: string;
  dst: string;
  length: number;
  ttl: number;
  tos?: number;
  prec?: number;
  id?: number;
  /** IPv4 flags among CE DF MF. */
  ipFlags?: readonly ("CE" | "DF" | "MF")[];
  /** IPv4: offset in 8-byte units; IPv6: byte offset of a fragment header. */
  fragOffset?: number;
  /** IPv6 fragment header present (even with offset 0). */
  v6Fragment?: { more: boolean; id: number };
  tc?: number;
  flowLabel?: number;
  ipOptions?: string;
  transport: Transport;
  uid?: { uid: number; gid: number };
  mark?: number;
}

/** `%pI6`: 8 groups of 4 lowercase hex digits. */
export function kernelIpv6(groups: readonly number[]): string {
  return groups.map((g) => g.toString(16).padStart(4, "0")).join(":");
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");
const HEX2 = (n: number) => n.toString(16).toUpperCase().padStart(2, "0");

function transportText(t: Transport): string {
  switch (t.kind) {
    case "tcp": {
      let s = `PROTO=TCP SPT=${t.spt} DPT=${t.dpt} `;
      if (t.seq) s += `SEQ=${t.seq.seq} ACK=${t.seq.ack} `;
      s += `WINDOW=${t.window} RES=0x${hex2(t.res)} `;
      for (const f of t.flags) s += `${f} `;
      s += `URGP=${t.urgp} `;
      if (t.options !== undefined) s += `OPT (${t.options}) `;
      return s;
    }
    case "udp":
      return `PROTO=${t.lite ? "UDPLITE" : "UDP"} SPT=${t.spt} DPT=${t.dpt} LEN=${t.len} `;
    case "icmp": {
      let s = `PROTO=ICMP TYPE=${t.type} CODE=${t.code} `;
      if (t.echo) s += `ID=${t.echo.id} SEQ=${t.echo.seq} `;
      if (t.parameter !== undefined) s += `PARAMETER=${t.parameter} `;
      if (t.gateway !== undefined) s += `GATEWAY=${t.gateway} `;
      if (t.inner !== undefined) s += `[${t.inner}] `;
      if (t.mtu !== undefined) s += `MTU=${t.mtu} `;
      return s;
    }
    case "icmpv6": {
      let s = `PROTO=ICMPv6 TYPE=${t.type} CODE=${t.code} `;
      if (t.echo) s += `ID=${t.echo.id} SEQ=${t.echo.seq} `;
      if (t.pointer !== undefined) s += `POINTER=${t.pointer.toString(16).padStart(8, "0")} `;
      if (t.inner !== undefined) s += `[${t.inner}] `;
      if (t.mtu !== undefined) s += `MTU=${t.mtu} `;
      return s;
    }
    case "ipsec":
      return `PROTO=${t.proto} SPI=0x${t.spi.toString(16)} `;
    case "incomplete":
      return `PROTO=${t.proto} INCOMPLETE [${t.bytes} bytes] `;
    case "bare":
      return `PROTO=${t.proto} `;
  }
}

/** The IP part of a packet (from SRC=), as dump_ipv4_packet / dump_ipv6_packet print it; also used for quoting. */
export function ipPacketText(p: PacketSpec): string {
  let s = `SRC=${p.src} DST=${p.dst} LEN=${p.length} `;
  if (p.ipVersion === 4) {
    s += `TOS=0x${HEX2(p.tos ?? 0)} PREC=0x${HEX2(p.prec ?? 0)} TTL=${p.ttl} ID=${p.id ?? 0} `;
    for (const f of p.ipFlags ?? []) s += `${f} `;
    if (p.fragOffset) s += `FRAG:${p.fragOffset} `;
    if (p.ipOptions !== undefined) s += `OPT (${p.ipOptions}) `;
  } else {
    s += `TC=${p.tc ?? 0} HOPLIMIT=${p.ttl} FLOWLBL=${p.flowLabel ?? 0} `;
    if (p.v6Fragment) {
      s += `FRAG:${p.fragOffset ?? 0} `;
      if (p.v6Fragment.more) s += "INCOMPLETE ";
      s += `ID:${p.v6Fragment.id.toString(16).padStart(8, "0")} `;
    }
  }
  s += transportText(p.transport);
  if (p.uid) s += `UID=${p.uid.uid} GID=${p.uid.gid} `;
  if (p.mark) s += `MARK=0x${p.mark.toString(16)} `;
  return s;
}

/** The whole kernel message after the prefix: `IN=... OUT=... [MAC...] SRC=...`, trailing space included. */
export function packetText(p: PacketSpec): string {
  let s = `IN=${p.inInterface} OUT=${p.outInterface} `;
  if (p.macDecode) {
    s += `MACSRC=${p.macDecode.src} MACDST=${p.macDecode.dst} MACPROTO=${p.macDecode.proto} `;
  } else if (p.mac !== undefined) {
    s += `MAC=${p.mac} `;
  }
  return s + ipPacketText(p);
}

export type Wrapper =
  | "rfc3164"
  | "rfc3164-kernel-time"
  | "rsyslog-iso"
  | "rfc5424"
  | "journald"
  | "cloudwatch-agent"
  | "fluent-bit-tail"
  | "cri";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `Apr 19 04:52:19` / `Apr  9 04:52:19` (UTC). */
export function rfc3164Time(ms: number): string {
  const d = new Date(ms);
  const day = d.getUTCDate();
  return `${MONTHS[d.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ${d.toISOString().slice(11, 19)}`;
}

/** rsyslog's high-precision form: microseconds and a numeric offset. */
export function rsyslogTime(ms: number, offsetMinutes = 0): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString();
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const off = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  return `${local.slice(0, 23)}${String(Math.floor((ms % 1) * 1000)).padStart(3, "0")}${off}`;
}

/**
 * One log line carrying the kernel message `message` (prefix included), in the given wrapper.
 * `uptime` is the kernel's own seconds-since-boot stamp.
 */
export function wrap(
  wrapper: Wrapper,
  message: string,
  ms: number,
  node: string,
  uptime = 12345.678901,
): string {
  switch (wrapper) {
    case "rfc3164":
      return `${rfc3164Time(ms)} ${node} kernel: ${message}`;
    case "rfc3164-kernel-time":
      return `${rfc3164Time(ms)} ${node} kernel: [${uptime.toFixed(6).padStart(12, " ")}] ${message}`;
    case "rsyslog-iso":
      return `${rsyslogTime(ms)} ${node} kernel: ${message}`;
    case "rfc5424":
      return `<4>1 ${new Date(ms).toISOString()} ${node} kernel - - - ${message}`;
    case "journald":
      return JSON.stringify({
        PRIORITY: "4",
        SYSLOG_FACILITY: "0",
        SYSLOG_IDENTIFIER: "kernel",
        _TRANSPORT: "kernel",
        _HOSTNAME: node,
        _BOOT_ID: "5c1b0a1e4b7f4d0c9a3e2f1d0c9b8a7f",
        __REALTIME_TIMESTAMP: String(Math.floor(ms * 1000)),
        MESSAGE: message,
      });
    case "cloudwatch-agent":
      return JSON.stringify({
        host: node,
        ident: "kernel",
        message,
        az: "eu-west-1a",
        ec2_instance_id: "i-0abc",
      });
    case "fluent-bit-tail":
      return JSON.stringify({
        log: `${rfc3164Time(ms)} ${node} kernel: ${message}\n`,
        kubernetes: { host: `${node}.eu-west-1.compute.internal`, namespace_name: "kube-system" },
      });
    case "cri":
      return `${new Date(ms).toISOString()} stdout F ${rfc3164Time(ms)} ${node} kernel: ${message}`;
  }
}

// ---------------------------------------------------------------------------------------------------------------

const DST_PORTS = [80, 443, 8080, 8012, 5432, 6379, 3306, 9090, 9100, 10250, 2379, 27017, 8443, 22];
const UDP_PORTS = [53, 123, 161, 514, 4789, 8125];

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)] as T;
}

function int(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

function macOf(rand: () => number): string {
  const b = () => hex2(int(rand, 0, 255));
  return `0a:${b()}:${b()}:${b()}:${b()}:${b()}`;
}

function podIp(rand: () => number): string {
  return `192.168.${int(rand, 0, 255)}.${int(rand, 1, 254)}`;
}

function externalIp(rand: () => number): string {
  return `${pick(rand, [3, 18, 34, 52, 54, 81, 104, 185])}.${int(rand, 0, 255)}.${int(rand, 0, 255)}.${int(rand, 1, 254)}`;
}

function podIpv6(rand: () => number): string {
  return kernelIpv6([
    0x2600,
    0x1f18,
    0x4a2,
    int(rand, 0, 0xffff),
    int(rand, 0, 0xffff),
    0,
    0,
    int(rand, 1, 0xffff),
  ]);
}

function iface(rand: () => number): string {
  return `eni${int(rand, 0, 0xffffffff).toString(16).padStart(8, "0")}${int(rand, 0, 0xfff).toString(16).padStart(3, "0")}`;
}

function tcpSyn(rand: () => number): Transport {
  return {
    kind: "tcp",
    spt: int(rand, 32768, 60999),
    dpt: pick(rand, DST_PORTS),
    window: int(rand, 26883, 65535),
    res: 0,
    flags: ["SYN"],
    urgp: 0,
  };
}

/** A random packet with realistic proportions. */
function packet(rand: () => number): PacketSpec {
  const ingress = rand() < 0.6;
  const inInterface = ingress ? "eth0" : iface(rand);
  const outInterface = ingress ? iface(rand) : rand() < 0.5 ? "eth0" : "";
  const mac = `${macOf(rand)}:${macOf(rand)}:08:00`;
  const r = rand();
  if (r < 0.08) {
    // IPv6: TCP, UDP, or ICMPv6 echo.
    const kind = rand();
    const transport: Transport =
      kind < 0.6
        ? tcpSyn(rand)
        : kind < 0.85
          ? { kind: "udp", spt: int(rand, 1024, 65535), dpt: pick(rand, UDP_PORTS), len: int(rand, 20, 512) }
          : {
              kind: "icmpv6",
              type: 128,
              code: 0,
              echo: { id: int(rand, 0, 65535), seq: int(rand, 0, 65535) },
            };
    return {
      inInterface,
      outInterface,
      mac: `${macOf(rand)}:${macOf(rand)}:86:dd`,
      ipVersion: 6,
      src: podIpv6(rand),
      dst: podIpv6(rand),
      length: transport.kind === "tcp" ? 80 : int(rand, 60, 600),
      ttl: pick(rand, [64, 255, 63]),
      tc: 0,
      flowLabel: int(rand, 0, 0xfffff),
      transport,
    };
  }
  const src = rand() < 0.8 ? podIp(rand) : externalIp(rand);
  const dst = podIp(rand);
  const base = {
    inInterface,
    outInterface,
    mac,
    ipVersion: 4 as const,
    src,
    dst,
    ttl: pick(rand, [64, 63, 253, 254, 127]),
    id: int(rand, 0, 65535),
    ipFlags: ["DF"] as ("DF" | "CE" | "MF")[],
  };
  if (r < 0.78) {
    const p: PacketSpec = { ...base, length: 60, transport: tcpSyn(rand) };
    if (rand() < 0.05) p.mark = int(rand, 1, 0xffff) * 0x10000;
    return p;
  }
  if (r < 0.8) {
    // An established-connection packet hitting a deny after a policy change.
    const flags = pick(rand, [["ACK", "RST"], ["ACK", "FIN"], ["ACK", "PSH"], ["ACK"]]);
    return {
      ...base,
      length: int(rand, 52, 1500),
      transport: {
        kind: "tcp",
        spt: pick(rand, DST_PORTS),
        dpt: int(rand, 32768, 60999),
        seq: { seq: int(rand, 0, 0xffffffff), ack: int(rand, 0, 0xffffffff) },
        window: int(rand, 200, 65535),
        res: 0,
        flags,
        urgp: 0,
        options: "0101080A5F3C2A1B00A1B2C3",
      },
    };
  }
  if (r < 0.91) {
    return {
      ...base,
      ipFlags: [],
      length: int(rand, 40, 512),
      transport: {
        kind: "udp",
        spt: int(rand, 1024, 65535),
        dpt: pick(rand, UDP_PORTS),
        len: int(rand, 20, 492),
      },
    };
  }
  if (r < 0.95) {
    return {
      ...base,
      ipFlags: [],
      length: 84,
      transport: {
        kind: "icmp",
        type: 8,
        code: 0,
        echo: { id: int(rand, 0, 65535), seq: int(rand, 1, 200) },
      },
    };
  }
  if (r < 0.97) {
    // Destination unreachable, quoting the packet it is about: its ports must not reach the record.
    const inner: PacketSpec = {
      inInterface: "",
      outInterface: "",
      ipVersion: 4,
      src: dst,
      dst: src,
      length: 60,
      ttl: 63,
      id: int(rand, 0, 65535),
      ipFlags: ["DF"],
      transport: rand() < 0.5 ? { kind: "incomplete", proto: "TCP", bytes: 8 } : tcpSyn(rand),
    };
    return {
      ...base,
      ipFlags: [],
      length: 88,
      transport: { kind: "icmp", type: 3, code: 3, inner: ipPacketText(inner) },
    };
  }
  if (r < 0.985) {
    // Fragments after the first carry no transport header.
    return {
      ...base,
      ipFlags: [],
      fragOffset: int(rand, 1, 8000),
      length: 1500,
      transport: { kind: "bare", proto: "UDP" },
    };
  }
  return {
    ...base,
    length: int(rand, 40, 1500),
    transport:
      rand() < 0.5
        ? { kind: "bare", proto: pick(rand, ["47", "4", "132", "112"]) }
        : { kind: "ipsec", proto: "ESP", spi: int(rand, 1, 0xffffffff) },
  };
}

const NOISE = [
  (node: string, t: string) =>
    `${t} ${node} kubelet[3112]: I0419 04:52:19.123456    3112 kubelet.go:2451] "SyncLoop (PLEG): event for pod" pod="default/web-7d4b9c6f5d-x2x9k"`,
  (node: string, t: string) => `${t} ${node} systemd[1]: Started Session 42 of user ec2-user.`,
  (node: string, t: string) =>
    `${t} ${node} containerd[2876]: time="2024-04-19T04:52:19.123456789Z" level=info msg="StartContainer for \\"3f2a\\" returns successfully"`,
  (node: string, t: string) => `${t} ${node} kernel: eth0: renamed from tmp3b1f2`,
  (node: string, t: string) => `${t} ${node} dhclient[2000]: XMT: Solicit on eth0, interval 112340ms.`,
  (node: string, t: string) =>
    `${t} ${node} kernel: IPv6: ADDRCONF(NETDEV_CHANGE): eni3f2a1b0c9d8: link becomes ready`,
];

function wrapperOf(rand: () => number): Wrapper {
  const w = rand();
  if (w < 0.68) return "rfc3164";
  if (w < 0.76) return "rfc3164-kernel-time";
  if (w < 0.82) return "rsyslog-iso";
  if (w < 0.84) return "rfc5424";
  if (w < 0.9) return "journald";
  if (w < 0.95) return "cloudwatch-agent";
  if (w < 0.99) return "fluent-bit-tail";
  return "cri";
}

/** Start of the corpus's clock: lines advance from here a few milliseconds at a time. */
export const CORPUS_EPOCH = Date.UTC(2024, 3, 19, 4, 0, 0);

/**
 * `count` log lines, the same for the same seed: 85 % calico-packet lines (wrappers and packets in realistic
 * proportions, time-ordered across 40 nodes) and 15 % other syslog lines.
 */
export function* generateLines(count: number, seed = 1): Generator<string> {
  const rand = prng(seed);
  const nodes = Array.from({ length: 40 }, () => `ip-192-168-${int(rand, 0, 255)}-${int(rand, 1, 254)}`);
  let ms = CORPUS_EPOCH;
  let uptime = 86_400 + rand() * 1000;
  for (let n = 0; n < count; n++) {
    const step = rand() * 4;
    ms += step;
    uptime += step / 1000;
    const node = pick(rand, nodes);
    if (rand() < 0.15) {
      yield pick(rand, NOISE)(node, rfc3164Time(ms));
      continue;
    }
    const message = `calico-packet: ${packetText(packet(rand))}`;
    yield wrap(wrapperOf(rand), message, ms, node, uptime);
  }
}
