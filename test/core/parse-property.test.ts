// Property-based tests of the parser: lines printed from generated packets (with the kernel's formats, in every
// wrapper) parse back to the values they were built from; mutated, token-soup and random inputs never throw,
// and the fast path always agrees with the token-by-token reference scanner.
import { isIPv6 } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ipPacketText,
  kernelIpv6,
  type PacketSpec,
  packetText,
  type Transport,
  type Wrapper,
  wrap,
} from "../../bench/corpus.ts";
import { formatIpv6Groups, normalizeIpv6, writeIpv6Groups } from "../../functions/core/ipv6.ts";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createParser, createReferenceParser, type ParseOptions } from "../../functions/core/parse.ts";
import type { PacketRecord, ParseOutcome } from "../../functions/core/types.ts";
import { expectEncoded } from "../support/ndjson.ts";

const RUNS = { numRuns: 2000 };

/** RFC 5952 text of 8 groups, by way of the WHATWG URL serialiser (mapped IPv4 keeps its dotted form). */
function canonicalIpv6(groups: readonly number[]): string {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [a, b] = [groups[6] as number, groups[7] as number];
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  return new URL(`http://[${groups.map((g) => g.toString(16)).join(":")}]`).hostname.slice(1, -1);
}

const byte = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const hex2 = (n: number) => n.toString(16).padStart(2, "0");
/** Zero-heavy groups, so that "::" runs of every length and position occur. */
const v6Groups = fc.array(fc.oneof({ arbitrary: u16, weight: 1 }, { arbitrary: fc.constant(0), weight: 2 }), {
  minLength: 8,
  maxLength: 8,
});
const v4 = fc.tuple(byte, byte, byte, byte).map((o) => o.join("."));
const ifname = fc.string({
  unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789.-_@"),
  maxLength: 15,
});
const macBytes = (n: number) =>
  fc.array(byte, { minLength: n, maxLength: n }).map((b) => b.map(hex2).join(":"));
const hexBlob = fc
  .array(byte, { minLength: 1, maxLength: 40 })
  .map((b) => b.map((x) => hex2(x).toUpperCase()).join(""));
const tcpFlags = fc.subarray(["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"]);

const tcp: fc.Arbitrary<Transport> = fc.record({
  kind: fc.constant("tcp" as const),
  spt: u16,
  dpt: u16,
  seq: fc.option(fc.record({ seq: u32, ack: u32 }), { nil: undefined }),
  window: u16,
  res: fc.integer({ min: 0, max: 0x3c }),
  flags: tcpFlags,
  urgp: u16,
  options: fc.option(hexBlob, { nil: undefined }),
});
const udp: fc.Arbitrary<Transport> = fc.record({
  kind: fc.constant("udp" as const),
  lite: fc.boolean(),
  spt: u16,
  dpt: u16,
  len: u16,
});
const incomplete = (protos: readonly ("TCP" | "UDP" | "ICMP" | "ICMPv6")[]): fc.Arbitrary<Transport> =>
  fc.record({ kind: fc.constant("incomplete" as const), proto: fc.constantFrom(...protos), bytes: u16 });
const other: fc.Arbitrary<Transport> = fc.oneof(
  // SCTP, as nf_log_syslog prints every protocol whose header it does not read: by number, no ports.
  fc.constant<Transport>({ kind: "bare", proto: "132" }),
  fc.record({
    kind: fc.constant("ipsec" as const),
    proto: fc.constantFrom("AH" as const, "ESP" as const),
    spi: u32,
  }),
  fc.integer({ min: 0, max: 255 }).map((n): Transport => ({ kind: "bare", proto: String(n) })),
);

/** A packet as quoted inside an ICMP error: no trailers, IPv4 or IPv6 like its outer packet. */
function quoted(version: 4 | 6): fc.Arbitrary<string> {
  const transport = fc.oneof(tcp, udp, incomplete(["TCP", "UDP"]));
  return ipPacket(version, transport, false).map((p) => ipPacketText(p));
}

function icmp(version: 4 | 6): fc.Arbitrary<Transport> {
  if (version === 4) {
    return fc.oneof(
      fc.record({
        kind: fc.constant("icmp" as const),
        type: fc.constantFrom(0, 8),
        code: byte,
        echo: fc.record({ id: u16, seq: u16 }),
      }),
      fc.record({
        kind: fc.constant("icmp" as const),
        type: fc.constantFrom(3, 4, 11),
        code: byte,
        inner: quoted(4),
        mtu: fc.option(u16, { nil: undefined }),
      }),
      fc.record({
        kind: fc.constant("icmp" as const),
        type: fc.constant(5),
        code: byte,
        gateway: v4,
        inner: quoted(4),
      }),
      fc.record({ kind: fc.constant("icmp" as const), type: fc.constant(12), code: byte, parameter: byte }),
      // The other types, after whose CODE= the kernel prints nothing (a line of those above that ends there was cut).
      fc.record({
        kind: fc.constant("icmp" as const),
        type: byte.filter((t) => ![0, 3, 4, 5, 8, 11, 12].includes(t)),
        code: byte,
      }),
      incomplete(["ICMP"]),
    );
  }
  return fc.oneof(
    fc.record({
      kind: fc.constant("icmpv6" as const),
      type: fc.constantFrom(128, 129),
      code: byte,
      echo: fc.record({ id: u16, seq: u16 }),
    }),
    fc.record({
      kind: fc.constant("icmpv6" as const),
      type: fc.constantFrom(1, 2, 3, 4),
      code: byte,
      pointer: fc.option(u32, { nil: undefined }),
      inner: quoted(6),
      mtu: fc.option(u32, { nil: undefined }),
    }),
    fc.record({
      kind: fc.constant("icmpv6" as const),
      type: byte.filter((t) => ![1, 2, 3, 4, 128, 129].includes(t)),
      code: byte,
    }),
    incomplete(["ICMPv6"]),
  );
}

function ipPacket(
  version: 4 | 6,
  transport: fc.Arbitrary<Transport>,
  trailers: boolean,
): fc.Arbitrary<PacketSpec> {
  const base = fc.record({
    inInterface: ifname,
    outInterface: ifname,
    length: version === 4 ? u16 : fc.integer({ min: 40, max: 65575 }),
    ttl: byte,
    transport,
    uid: trailers ? fc.option(fc.record({ uid: u32, gid: u32 }), { nil: undefined }) : fc.constant(undefined),
    mark: trailers
      ? fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined })
      : fc.constant(undefined),
  });
  if (version === 4) {
    return fc
      .tuple(
        base,
        v4,
        v4,
        fc.record({
          tos: fc.integer({ min: 0, max: 0x1e }),
          prec: fc.constantFrom(0, 0x20, 0x40, 0xe0),
          id: u16,
        }),
        fc.subarray(["CE", "DF", "MF"] as ("CE" | "DF" | "MF")[]),
        fc.option(hexBlob, { nil: undefined }),
      )
      .map(([b, src, dst, tos, ipFlags, ipOptions]) => ({
        ...b,
        ipVersion: 4,
        src,
        dst,
        ...tos,
        ipFlags,
        ipOptions,
      }));
  }
  return fc
    .tuple(base, v6Groups, v6Groups, byte, fc.integer({ min: 0, max: 0xfffff }))
    .map(([b, s, d, tc, flowLabel]) => ({
      ...b,
      ipVersion: 6,
      src: kernelIpv6(s),
      dst: kernelIpv6(d),
      tc,
      flowLabel,
    }));
}

/** A whole packet as logged: link layer, then any IPv4/IPv6 packet, including fragments after the first. */
const packet: fc.Arbitrary<PacketSpec> = fc
  .tuple(
    fc.constantFrom(4 as const, 6 as const).chain((version) =>
      fc.oneof(
        ipPacket(version, fc.oneof(tcp, udp, icmp(version), other, incomplete(["TCP", "UDP"])), true),
        // A fragment after the first: only PROTO= follows the IP header.
        ipPacket(
          version,
          fc
            .constantFrom("TCP", "UDP", version === 4 ? "ICMP" : "ICMPv6")
            .map((proto): Transport => ({ kind: "bare", proto })),
          true,
        ).chain((p) =>
          version === 4
            ? fc.integer({ min: 1, max: 8191 }).map((fragOffset) => ({ ...p, fragOffset }))
            : fc
                .tuple(fc.integer({ min: 1, max: 8191 }), fc.boolean(), u32)
                .map(([o, more, id]) => ({ ...p, fragOffset: o * 8, v6Fragment: { more, id } })),
        ),
      ),
    ),
    fc.oneof(
      fc.constant({}),
      fc.record({ mac: fc.oneof(fc.constant(""), macBytes(14)) }),
      fc.record({
        macDecode: fc.record({ src: macBytes(6), dst: macBytes(6), proto: fc.constantFrom("0800", "86dd") }),
      }),
    ),
  )
  .map(([p, link]) => ({ ...p, ...link }));

function expectedRecord(p: PacketSpec): Omit<PacketRecord, "time" | "node"> {
  const t = p.transport;
  const ports = t.kind === "tcp" || t.kind === "udp";
  const icmpLike = t.kind === "icmp" || t.kind === "icmpv6";
  const protocol =
    t.kind === "tcp"
      ? "TCP"
      : t.kind === "udp"
        ? t.lite
          ? "UDPLITE"
          : "UDP"
        : t.kind === "icmp"
          ? "ICMP"
          : t.kind === "icmpv6"
            ? "ICMPv6"
            : t.kind === "bare" && t.proto === "132"
              ? "SCTP"
              : t.proto;
  const address = (text: string) =>
    p.ipVersion === 4 ? text : canonicalIpv6(text.split(":").map((g) => Number.parseInt(g, 16)));
  return {
    prefix: "calico-packet",
    policy: null,
    inInterface: p.inInterface || null,
    outInterface: p.outInterface || null,
    mac: p.macDecode
      ? `${p.macDecode.dst}:${p.macDecode.src}:${p.macDecode.proto.slice(0, 2)}:${p.macDecode.proto.slice(2)}`
      : p.mac || null,
    src: address(p.src),
    dst: address(p.dst),
    ipVersion: p.ipVersion,
    length: p.length,
    ttl: p.ttl,
    protocol,
    srcPort: ports ? t.spt : null,
    dstPort: ports ? t.dpt : null,
    tcpFlags: t.kind === "tcp" ? [...t.flags] : [],
    icmpType: icmpLike ? t.type : null,
    icmpCode: icmpLike ? t.code : null,
  };
}

const wrappers: Wrapper[] = [
  "rfc3164",
  "rfc3164-kernel-time",
  "rsyslog-iso",
  "rfc5424",
  "journald",
  "cloudwatch-agent",
  "fluent-bit-tail",
  "cri",
];

/** The time each wrapper lets the record carry for an event at `ms`. */
function expectedTime(wrapper: Wrapper, ms: number): string | null {
  switch (wrapper) {
    case "rfc3164":
    case "rfc3164-kernel-time":
    case "fluent-bit-tail":
      return new Date(ms - (ms % 1000)).toISOString();
    case "cloudwatch-agent":
      return null;
    default:
      return new Date(ms).toISOString();
  }
}

const logged = fc.record({
  packet,
  wrapper: fc.constantFrom(...wrappers),
  ms: fc.integer({ min: Date.UTC(2001, 0, 1), max: Date.UTC(2037, 0, 1) }),
  node: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
  separator: fc.constantFrom(": ", " ", ""),
  uptime: fc.double({ min: 0, max: 1e7, noNaN: true }),
});

interface Logged {
  packet: PacketSpec;
  wrapper: Wrapper;
  ms: number;
  node: string;
  separator: string;
  uptime: number;
}

function lineOf(l: Logged) {
  return wrap(l.wrapper, `calico-packet${l.separator}${packetText(l.packet)}`, l.ms, l.node, l.uptime);
}

function optionsFor(ms: number): ParseOptions {
  return { year: new Date(ms).getUTCFullYear() };
}

describe("generated lines parse back to what they were built from", () => {
  it("in every wrapper", () => {
    fc.assert(
      fc.property(logged, (l) => {
        const outcome = createParser(optionsFor(l.ms))(lineOf(l));
        expect(outcome).toEqual({
          kind: "record",
          record: { time: expectedTime(l.wrapper, l.ms), node: l.node, ...expectedRecord(l.packet) },
        });
      }),
      RUNS,
    );
  });

  it("behind `kubectl logs --prefix`'s [pod/<pod>/<container>], as without it", () => {
    const text = fc.record({
      line: logged,
      wrapper: fc.constantFrom<Wrapper>("rfc3164", "rfc3164-kernel-time", "rsyslog-iso", "rfc5424"),
      pod: fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,252}$/),
      container: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,62}$/),
    });
    fc.assert(
      fc.property(text, ({ line, wrapper, pod, container }) => {
        const plain = lineOf({ ...line, wrapper });
        const outcome = createParser(optionsFor(line.ms))(`[pod/${pod}/${container}] ${plain}`);
        expect(outcome).toEqual(createParser(optionsFor(line.ms))(plain));
      }),
      RUNS,
    );
  });

  it("with policy details in the prefix", () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/);
    fc.assert(
      fc.property(
        packet,
        name,
        fc.constantFrom("gnp", "np", "knp", "sgnp"),
        name,
        name,
        (p, tier, kind, ns, pol) => {
          const line = `calico-packet ${tier} ${kind} ${ns}/${pol}: ${packetText(p)}`;
          const outcome = createParser({ prefixFormat: "calico-packet %t %k %p" })(line);
          expect(outcome.kind === "record" && outcome.record.policy).toEqual({
            tier,
            kind,
            name: pol,
            namespace: ns,
          });
        },
      ),
      RUNS,
    );
  });
});

describe("a parser's state", () => {
  it("one parser over a sequence agrees with a fresh parser per line (caches, reused buffers)", () => {
    const line = fc.oneof(
      { arbitrary: logged.map(lineOf), weight: 4 },
      {
        arbitrary: fc.string({ unit: "binary", maxLength: 80 }).map((s) => `calico-packet: ${s}`),
        weight: 1,
      },
      { arbitrary: fc.constant("Apr 19 04:52:19 n kernel: calico-packet: IN=x OUT= SRC=1.1.1.1"), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), fc.integer({ min: 2001, max: 2036 }), (lines, year) => {
        const shared = createParser({ year });
        for (const l of lines) expect(shared(l)).toEqual(createParser({ year })(l));
      }),
      { numRuns: 300 },
    );
  });
});

const VOCABULARY = [
  " ",
  "  ",
  "=",
  "[",
  "]",
  "[pod/",
  "/",
  "(",
  ")",
  ":",
  "0",
  "9",
  "x",
  "IN=",
  "OUT=",
  "MAC=",
  "SRC=",
  "DST=",
  "LEN=",
  "TTL=",
  "HOPLIMIT=",
  "PROTO=",
  "TCP",
  "UDP",
  "ICMP",
  "SPT=",
  "DPT=",
  "RES=0x00",
  "SYN",
  "URGP=",
  "TYPE=",
  "CODE=",
  "FRAG:",
  "INCOMPLETE",
  "TRUNCATED",
  "Unknown",
  "1.2.3.4",
  "fe80:0000:0000:0000:0000:0000:0000:0001",
  "calico-packet",
  "calico-packet: ",
  "\r",
  "\n",
  "{",
  '"',
  "\\",
  "€",
  "\ud800",
];

/** Edits that break a line in the ways transport and truncation break real ones. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant("cut" as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({
    op: fc.constant("delete" as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    length: fc.integer({ min: 1, max: 20 }),
  }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    text: fc.oneof(fc.constantFrom(...VOCABULARY), fc.string({ unit: "binary", maxLength: 4 })),
  }),
);

interface Edit {
  op: "cut" | "delete" | "insert";
  at: number;
  length?: number;
  text?: string;
}

function mutate(line: string, edits: Edit[]) {
  let out = line;
  for (const e of edits) {
    const i = Math.floor(e.at * out.length);
    if (e.op === "cut") out = out.slice(0, i);
    else if (e.op === "delete") out = out.slice(0, i) + out.slice(i + (e.length ?? 1));
    else out = out.slice(0, i) + (e.text ?? "") + out.slice(i);
  }
  return out;
}

function checkTotal(line: string, options: ParseOptions = {}): ParseOutcome {
  const fast = createParser(options)(line);
  expect(["record", "skip", "error"]).toContain(fast.kind);
  if (fast.kind === "error") expect(fast.reason.length).toBeGreaterThan(0);
  expect(createReferenceParser(options)(line)).toEqual(fast);
  expectEncoded(new NdjsonEncoder(options), line, fast);
  return fast;
}

describe("any input: an outcome, never an exception, and the fast path agrees with the reference", () => {
  it("mutated valid lines", () => {
    fc.assert(
      fc.property(logged, fc.array(mutation, { minLength: 1, maxLength: 4 }), (l, edits) => {
        checkTotal(mutate(lineOf(l), edits), optionsFor(l.ms));
      }),
      RUNS,
    );
  });

  it("token soup after the prefix", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...VOCABULARY), { maxLength: 60 }), (tokens) => {
        checkTotal(`calico-packet: IN=${tokens.join("")}`);
        checkTotal(tokens.join(""));
      }),
      RUNS,
    );
  });

  it("random text and random bytes", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.uint8Array({ maxLength: 300 }), (text, bytes) => {
        checkTotal(text);
        checkTotal(`calico-packet: ${text}`);
        checkTotal(Buffer.from(bytes).toString("utf8"));
        checkTotal(`calico-packet${Buffer.from(bytes).toString("latin1")}`);
      }),
      RUNS,
    );
  });

  it("JSON text as any writer may space, repeat and nest it", () => {
    const space = fc.constantFrom("", "", " ", "  ", "\t", "\r\n");
    const number = fc.constantFrom(
      "0",
      "-0",
      "12",
      "1713499200021480",
      "1.5e3",
      "2E-2",
      "01",
      "1.",
      "-",
      "1e",
      "0.5",
    );
    const literal = fc.constantFrom("true", "false", "null", "nul", "tru");
    const text = fc.oneof(
      logged.map((l) => JSON.stringify(lineOf(l))),
      // Fluent Bit's tail `log`: the line with its newline, the one escape the flat reader lets through.
      logged.map((l) => JSON.stringify(`${lineOf(l)}\n`)),
      logged.map((l) => JSON.stringify(`${lineOf(l)}\n SRC=10.0.0.1`)),
      // Raw control characters, which JSON does not allow in a string.
      fc.tuple(logged, fc.constantFrom("\t", "\u0001", "\u001f", "\n"), fc.nat()).map(([l, c, at]) => {
        const text = JSON.stringify(`${lineOf(l)}\n`);
        const i = 1 + (at % (text.length - 1));
        return `${text.slice(0, i)}${c}${text.slice(i)}`;
      }),
      fc.constantFrom('"\\n"', '"a\\n"', '"\\\\n"', '"a\\r\\n"', '"a\\nb"', '"calico-packet: IN=\\n"'),
      // A bare kernel message, whose node and time come from the record.
      packet.map((p) => JSON.stringify(`calico-packet: ${packetText(p)}`)),
      packet.map((p) => JSON.stringify(`calico-packet: ${packetText(p)}`)),
      fc.constantFrom('"node-a"', '"node-b"', '"1713499200021480"', "1713499200"),
      fc.constantFrom(
        '"ip-10-0-0-1"',
        '""',
        '"2024-04-19T04:52:19.5Z"',
        '"1713499200"',
        '"calico-packet: IN="',
      ),
      fc.string({ maxLength: 8 }).map((t) => JSON.stringify(t)),
    );
    const value: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
      value: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        text,
        number,
        literal,
        fc
          .array(fc.tuple(fc.constantFrom('"host"', '"pod"', '"x"'), tie("value")), { maxLength: 3 })
          .map((members) => `{${members.map(([k, v]) => `${k}:${v}`).join(",")}}`),
        fc.array(tie("value"), { maxLength: 3 }).map((items) => `[${items.join(",")}]`),
      ),
    })).value;
    const key = fc.constantFrom(
      '"MESSAGE"',
      '"message"',
      '"log"',
      '"msg"',
      '"host"',
      '"hostname"',
      '"_HOSTNAME"',
      '"kubernetes.host"',
      '"kubernetes"',
      '"time"',
      '"timestamp"',
      '"@timestamp"',
      '"__REALTIME_TIMESTAMP"',
      '"x"',
      '"x\\n"',
    );
    const member = fc
      .tuple(space, key, space, space, value, space)
      .map(([a, k, b, c, v, d]) => `${a}${k}${b}:${c}${v}${d}`);
    fc.assert(
      fc.property(fc.array(member, { maxLength: 7 }), space, space, (members, before, after) => {
        const line = `${before}{${members.join(",")}}${after}`;
        checkTotal(line);
        checkTotal(line.slice(0, Math.floor(line.length / 2)));
      }),
      RUNS,
    );
  });

  it("JSON records of any shape", () => {
    const message = fc.oneof(
      logged.map(lineOf),
      logged.map((l) => `${lineOf(l)}\n`),
      fc.jsonValue(),
      fc.string().map((s) => `calico-packet: ${s}`),
    );
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom(
            "MESSAGE",
            "message",
            "log",
            "msg",
            "host",
            "_HOSTNAME",
            "time",
            "@timestamp",
            "__REALTIME_TIMESTAMP",
            "kubernetes",
            "x",
          ),
          message,
        ),
        (record) => {
          const line = JSON.stringify(record);
          checkTotal(line);
          checkTotal(line.slice(0, Math.floor(line.length / 2)));
        },
      ),
      RUNS,
    );
  });
});

describe("IPv6 text", () => {
  it("the kernel's uncompressed form, and any other spelling, normalise to RFC 5952", () => {
    fc.assert(
      fc.property(v6Groups, fc.boolean(), (groups, upper) => {
        const canonical = canonicalIpv6(groups);
        const kernel = kernelIpv6(groups);
        expect(normalizeIpv6(upper ? kernel.toUpperCase() : kernel)).toBe(canonical);
        expect(normalizeIpv6(canonical)).toBe(canonical);
        expect(normalizeIpv6(new URL(`http://[${kernel}]`).hostname.slice(1, -1))).toBe(canonical);
      }),
      RUNS,
    );
  });

  it("the kernel's form with one character changed: an address exactly when node:net says so", () => {
    /** A URL host's IPv6 text in RFC 5952 form: the same, but for IPv4-mapped addresses' dotted tail (§5). */
    const rfc5952 = (host: string) => {
      const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
      if (mapped === null) return host;
      const [a, b] = [Number.parseInt(mapped[1] as string, 16), Number.parseInt(mapped[2] as string, 16)];
      return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
    };
    // (No "%": node:net takes a zone id, which an address in a log line never has.)
    const char = fc.constantFrom(..."0123456789abcdefABCDEFgxz:. -");
    fc.assert(
      fc.property(v6Groups, fc.nat(38), char, (groups, at, c) => {
        const kernel = kernelIpv6(groups);
        const text = `${kernel.slice(0, at)}${c}${kernel.slice(at + 1)}`;
        const normal = normalizeIpv6(text);
        expect(normal !== null).toBe(isIPv6(text));
        if (normal !== null) expect(normal).toBe(rfc5952(new URL(`http://[${text}]`).hostname.slice(1, -1)));
      }),
      RUNS,
    );
  });

  it("written as bytes, the same text", () => {
    const mapped = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }));
    // Every width of a group, at its edges.
    const edge = fc.constantFrom(0, 1, 0xf, 0x10, 0xff, 0x100, 0xfff, 0x1000, 0xffff);
    const edges = fc.array(edge, { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(
        fc.oneof(
          v6Groups,
          edges,
          mapped.map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]),
        ),
        (groups) => {
          const g = Uint16Array.from(groups);
          const out = new Uint8Array(64);
          const end = writeIpv6Groups(g, out, 3);
          expect(Buffer.from(out.subarray(3, end)).toString("latin1")).toBe(canonicalIpv6(groups));
          expect(formatIpv6Groups(g)).toBe(canonicalIpv6(groups));
        },
      ),
      RUNS,
    );
  });

  it("rejects what is not an address", () => {
    for (const bad of [
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::",
      "g::",
      "::1%eth0",
      "1:2:3:4:5:6:7:",
      // An embedded IPv4 address must be a dotted quad as the kernel prints one.
      "::ffff:1.02.3.4",
      "::ffff:1.2.3.256",
      "::ffff:1.2.3",
      "::ffff:1.2.3.4.5",
      "::ffff:1..3.4",
      "::ffff:1.2.3.4444",
      "1:2:3:4:5:6:7:1.2.3.4",
    ]) {
      expect(normalizeIpv6(bad)).toBeNull();
    }
    expect(normalizeIpv6("::ffff:1.2.3.4")).toBe("::ffff:1.2.3.4");
    expect(normalizeIpv6("1:2:3:4:5:6:255.255.0.1")).toBe("1:2:3:4:5:6:ffff:1");
    // Any text: null or an address whose normal form is its own. Address-like text (fast-check's IPv6 spellings,
    // mixed and compressed forms included, in either case) must mostly be taken, or the check says nothing.
    let taken = 0;
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 50 }),
      fc.ipV6(),
      fc.ipV6().map((v6) => v6.toUpperCase()),
      fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:."), maxLength: 45 }),
    );
    fc.assert(
      fc.property(text, (candidate) => {
        const out = normalizeIpv6(candidate);
        if (out === null) return;
        taken++;
        expect(normalizeIpv6(out)).toBe(out);
      }),
      RUNS,
    );
    expect(taken).toBeGreaterThan(RUNS.numRuns / 3);
  });
});

describe("record times", () => {
  const PACKET =
    "calico-packet: IN=eth0 OUT= MAC=0a:7e:f9:69:e8:87:0a:6a:06:5f:78:50:08:00 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=62727 RES=0x00 SYN URGP=0 ";
  /** Every instant `Date#toISOString` prints with a four-digit year. */
  const instant = fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 });
  const offset = fc.constantFrom("Z", "+00:00", "+14:00", "-12:00", "+05:30", "-00:45");
  /** The times a line may carry: a week inside the four-digit years (parse.ts, LATEST_LINE_MS). */
  const EARLIEST_LINE = Date.parse("0000-01-08T00:00:00.000Z");
  const LATEST_LINE = Date.parse("9999-12-24T23:59:59.999Z");

  it("are what Date#toISOString prints, however consecutive lines share their second", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(instant, fc.integer({ min: 0, max: 2500 }), offset), {
          minLength: 1,
          maxLength: 8,
        }),
        (stamps) => {
          const parse = createParser();
          for (const [ms, step, zone] of stamps) {
            for (const at of [ms, ms + step, ms + step + 1]) {
              const text = new Date(at).toISOString();
              if (text.length !== 24) continue;
              const sign = zone === "Z" ? 0 : zone.startsWith("-") ? -1 : 1;
              const minutes = sign === 0 ? 0 : Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
              const utc = at - sign * minutes * 60_000;
              const outcome = parse(`<4>1 ${text.slice(0, 23)}${zone} node-1 kernel - - - ${PACKET}`);
              if (utc < EARLIEST_LINE || utc > LATEST_LINE) {
                // The windows around the time would leave the four-digit years: refused, not "+010000-…".
                expect(outcome.kind === "error" && outcome.reason).toMatch(
                  /would leave the years 0000 to 9999/,
                );
                continue;
              }
              expect(outcome.kind).toBe("record");
              if (outcome.kind === "record") expect(outcome.record.time).toBe(new Date(utc).toISOString());
            }
          }
        },
      ),
      RUNS,
    );
  });
});
