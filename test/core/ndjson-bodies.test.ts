// Differential property test of the NDJSON encoder on netfilter packet bodies in every form nf_log_syslog
// prints them: IPv4 (TOS/PREC/TTL/ID, CE DF MF, FRAG:, OPT (...)), IPv6 (full-form addresses, TC/HOPLIMIT/
// FLOWLBL, extension headers), TCP/UDP/UDPLITE/ICMP/ICMPv6/SCTP/AH/ESP/bare numbers, ICMP errors quoting an inner
// packet, later fragments, UID/GID/MARK trailers, MAC= present/empty/absent, empty IN=/OUT=, and prefixes, host
// names and interface names holding characters JSON must escape. For each line the encoder's bytes (line as a
// string, and in place amid other lines when ASCII) must be JSON.stringify of createParser's record plus "\n", or
// the same skip or error; and the record must carry the outer packet's addresses (RFC 5952) and ports.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createParser, type ParseOptions } from "../../functions/core/parse.ts";
import type { ParseOutcome } from "../../functions/core/types.ts";
import { expectEncoded, expectEncodedInPlace } from "../support/ndjson.ts";

/** Mid-2024, so that year-less timestamps of April 2024 are in the past. */
const NOW = Date.UTC(2024, 5, 1);

interface Config {
  options: ParseOptions;
  /** The logged prefix for policy values tier, kind, name, namespace. */
  prefix: (t: string, k: string, n: string, ns: string) => string;
}

const CONFIGS: Config[] = [
  { options: { now: NOW }, prefix: () => "calico-packet: " },
  { options: { now: NOW }, prefix: () => "calico-packet " },
  {
    options: { now: NOW, prefixFormat: "calico-packet %t %k %n" },
    prefix: (t, k, n) => `calico-packet ${t} ${k} ${n}: `,
  },
  {
    options: { year: 2024, prefixFormat: "calico-packet|%t|%k|%p" },
    prefix: (t, k, n, ns) => `calico-packet|${t}|${k}|${ns}/${n}: `,
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Values

const byte = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const hex2 = (n: number) => n.toString(16).padStart(2, "0");
const HEX2 = (n: number) => hex2(n).toUpperCase();

/** Characters JSON.stringify escapes or passes through in ways worth checking: never a space or "=". */
const AWKWARD = [
  '"',
  "\\",
  "\t",
  "\r",
  "\u0001",
  "\u001f",
  "\u007f",
  "é",
  "\u2028",
  "\u2029",
  "🙂",
  "/",
  "<",
];
const PLAIN = [..."abcxyz0189.-_@"];
/** A name (host, interface, policy value), mostly plain, sometimes with awkward characters, never a space. */
function nameOf(minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.string({ unit: fc.constantFrom(...PLAIN), minLength, maxLength }), weight: 2 },
    {
      arbitrary: fc.string({
        unit: fc.oneof(
          { arbitrary: fc.constantFrom(...PLAIN), weight: 2 },
          { arbitrary: fc.constantFrom(...AWKWARD), weight: 1 },
        ),
        minLength,
        maxLength,
      }),
      weight: 3,
    },
  );
}

// Host names that the header reads as host names: not a tag (ending ":"), not the kernel's "[" stamp.
const host = nameOf(1, 12).filter((h) => !h.endsWith(":") && !h.startsWith("[") && !h.includes("calico"));
const ifname = fc.oneof({ arbitrary: fc.constant(""), weight: 1 }, { arbitrary: nameOf(1, 15), weight: 4 });
const policyValue = nameOf(1, 10).filter((v) => !v.includes("|") && !v.includes(":"));

const v4 = fc.tuple(byte, byte, byte, byte).map((o) => o.join("."));

/** Zero-heavy groups, so that zero runs of every length and in every position occur. */
const v6Groups = fc.array(fc.oneof({ arbitrary: u16, weight: 1 }, { arbitrary: fc.constant(0), weight: 3 }), {
  minLength: 8,
  maxLength: 8,
});
const mapped = fc.tuple(u16, u16).map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]);
const v6 = fc.oneof({ arbitrary: v6Groups, weight: 6 }, { arbitrary: mapped, weight: 1 });

/** The kernel's %pI6: eight groups of four lowercase hex digits. */
const fullV6 = (g: readonly number[]) => g.map((x) => x.toString(16).padStart(4, "0")).join(":");

/** RFC 5952 text, written here independently of the parser (mapped IPv4 in its dotted form). */
function rfc5952(g: readonly number[]): string {
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    const [a, b] = [g[6] as number, g[7] as number];
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let k = 0; k < 8; k++) {
    let m = k;
    while (m < 8 && g[m] === 0) m++;
    if (m - k > bestLen) {
      best = k;
      bestLen = m - k;
    }
    if (m > k) k = m - 1;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

const hexBlob = fc.array(byte, { minLength: 1, maxLength: 24 }).map((b) => b.map(HEX2).join(""));
const mac = fc.array(byte, { minLength: 14, maxLength: 14 }).map((b) => b.map(hex2).join(":"));
const TCP_FLAGS = ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"];

// ---------------------------------------------------------------------------------------------------------------
// Bodies

/** What the outer record must carry. */
interface Outer {
  src: string;
  dst: string;
  protocol: string;
  srcPort: number | null;
  dstPort: number | null;
  icmpType: number | null;
}

interface Body {
  text: string;
  outer: Outer;
}

/** Transport text after `PROTO=`, with the outer values it gives; `fragment`: a later fragment, no header. */
interface Transport {
  text: string;
  protocol: string;
  srcPort: number | null;
  dstPort: number | null;
  icmpType: number | null;
}

const tcp = fc
  .record({
    spt: u16,
    dpt: u16,
    seq: fc.option(fc.tuple(u32, u32), { nil: undefined }),
    window: u16,
    res: fc.integer({ min: 0, max: 0x3c }),
    flags: fc.subarray(TCP_FLAGS),
    urgp: u16,
    opt: fc.option(hexBlob, { nil: undefined }),
  })
  .map(
    (t): Transport => ({
      text:
        `TCP SPT=${t.spt} DPT=${t.dpt} ${t.seq ? `SEQ=${t.seq[0]} ACK=${t.seq[1]} ` : ""}WINDOW=${t.window} ` +
        `RES=0x${hex2(t.res)} ${t.flags.map((f) => `${f} `).join("")}URGP=${t.urgp} ${t.opt ? `OPT (${t.opt}) ` : ""}`,
      protocol: "TCP",
      srcPort: t.spt,
      dstPort: t.dpt,
      icmpType: null,
    }),
  );

const udp = fc.tuple(fc.constantFrom("UDP", "UDPLITE"), u16, u16, u16).map(
  ([p, spt, dpt, len]): Transport => ({
    text: `${p} SPT=${spt} DPT=${dpt} LEN=${len} `,
    protocol: p,
    srcPort: spt,
    dstPort: dpt,
    icmpType: null,
  }),
);

/** nf_log_syslog prints SCTP as it prints every protocol whose header it does not read: by number, no ports. */
const sctp = fc.constant<Transport>({
  text: "132 ",
  protocol: "SCTP",
  srcPort: null,
  dstPort: null,
  icmpType: null,
});

const other = fc.oneof(
  fc
    .constantFrom("47", "4", "41", "103", "255", "0")
    .map((n): Transport => ({ text: `${n} `, protocol: n, srcPort: null, dstPort: null, icmpType: null })),
  fc.tuple(fc.constantFrom("AH", "ESP"), u32).map(
    ([p, spi]): Transport => ({
      text: `${p} SPI=${spi} `,
      protocol: p,
      srcPort: null,
      dstPort: null,
      icmpType: null,
    }),
  ),
);

/** A transport header the kernel could not read whole. */
const incomplete = fc.tuple(fc.constantFrom("TCP", "UDP", "UDPLITE"), fc.integer({ min: 0, max: 19 })).map(
  ([p, n]): Transport => ({
    text: `${p} INCOMPLETE [${n} bytes] `,
    protocol: p,
    srcPort: null,
    dstPort: null,
    icmpType: null,
  }),
);

/** The inner packet an ICMP error quotes: its own addresses, ports and protocol, none of which may leak. */
function innerPacket(version: 4 | 6): fc.Arbitrary<string> {
  const transport = fc.oneof(tcp, udp, incomplete, sctp).map((t) => `PROTO=${t.text}`);
  const header =
    version === 4
      ? fc
          .tuple(v4, v4, u16, byte, u16, fc.boolean())
          .map(
            ([s, d, len, ttl, id, df]) =>
              `SRC=${s} DST=${d} LEN=${len} TOS=0x00 PREC=0x00 TTL=${ttl} ID=${id} ${df ? "DF " : ""}`,
          )
      : fc
          .tuple(v6, v6, u16, byte, fc.integer({ min: 0, max: 0xfffff }))
          .map(
            ([s, d, len, hl, fl]) =>
              `SRC=${fullV6(s)} DST=${fullV6(d)} LEN=${len} TC=0 HOPLIMIT=${hl} FLOWLBL=${fl} `,
          );
  return fc.tuple(header, transport).map(([h, t]) => `[${h}${t}] `);
}

const icmp = fc
  .oneof(
    fc
      .tuple(fc.constantFrom(0, 8), u16, u16)
      .map(([type, id, seq]) => ({ type, code: 0, rest: `ID=${id} SEQ=${seq} ` })),
    fc
      .tuple(fc.constantFrom(3, 4, 11, 12, 5), byte, innerPacket(4), u16, v4, byte)
      .map(([type, code, inner, mtu, gw, pointer]) => {
        const pre = type === 5 ? `GATEWAY=${gw} ` : type === 12 ? `PARAMETER=${pointer} ` : "";
        const post = type === 3 && code === 4 ? `MTU=${mtu} ` : "";
        return { type, code, rest: `${pre}${inner}${post}` };
      }),
    fc.tuple(byte, byte).map(([type, code]) => ({ type, code, rest: "" })),
  )
  .map(
    ({ type, code, rest }): Transport => ({
      text: `ICMP TYPE=${type} CODE=${code} ${rest}`,
      protocol: "ICMP",
      srcPort: null,
      dstPort: null,
      icmpType: type,
    }),
  );

const icmpv6 = fc
  .oneof(
    fc
      .tuple(fc.constantFrom(128, 129), u16, u16)
      .map(([type, id, seq]) => ({ type, code: 0, rest: `ID=${id} SEQ=${seq} ` })),
    fc
      .tuple(fc.constantFrom(1, 2, 3, 4), byte, innerPacket(6), u32, u32)
      .map(([type, code, inner, mtu, pointer]) => ({
        type,
        code,
        rest: `${type === 4 ? `POINTER=${pointer.toString(16).padStart(8, "0")} ` : ""}${inner}${type === 2 ? `MTU=${mtu} ` : ""}`,
      })),
    fc.tuple(byte, byte).map(([type, code]) => ({ type, code, rest: "" })),
  )
  .map(
    ({ type, code, rest }): Transport => ({
      text: `ICMPv6 TYPE=${type} CODE=${code} ${rest}`,
      protocol: "ICMPv6",
      srcPort: null,
      dstPort: null,
      icmpType: type,
    }),
  );

/** A later fragment: the protocol only. */
const laterFragment = fc.oneof(
  fc
    .constantFrom("TCP", "UDP", "UDPLITE", "ICMP")
    .map((p): Transport => ({ text: `${p} `, protocol: p, srcPort: null, dstPort: null, icmpType: null })),
  sctp,
);

const trailer = fc
  .tuple(fc.option(fc.tuple(u32, u32), { nil: undefined }), fc.option(u32, { nil: undefined }))
  .map(
    ([ids, mark]) =>
      `${ids ? `UID=${ids[0]} GID=${ids[1]} ` : ""}${mark !== undefined ? `MARK=0x${mark.toString(16)} ` : ""}`,
  );

const ipv4Body: fc.Arbitrary<Body> = fc
  .record({
    src: v4,
    dst: v4,
    len: u16,
    tos: byte,
    prec: byte,
    ttl: byte,
    id: u16,
    ce: fc.boolean(),
    df: fc.boolean(),
    mf: fc.boolean(),
    frag: fc.oneof(
      { arbitrary: fc.constant(0), weight: 4 },
      { arbitrary: fc.integer({ min: 1, max: 8191 }), weight: 1 },
    ),
    opt: fc.option(hexBlob, { nil: undefined }),
    transport: fc.oneof(tcp, udp, icmp, sctp, other, incomplete),
    later: laterFragment,
  })
  .map((r): Body => {
    const t = r.frag > 0 ? r.later : r.transport;
    return {
      text:
        `SRC=${r.src} DST=${r.dst} LEN=${r.len} TOS=0x${HEX2(r.tos)} PREC=0x${HEX2(r.prec)} TTL=${r.ttl} ID=${r.id} ` +
        `${r.ce ? "CE " : ""}${r.df ? "DF " : ""}${r.mf ? "MF " : ""}${r.frag > 0 ? `FRAG:${r.frag} ` : ""}` +
        `${r.opt ? `OPT (${r.opt}) ` : ""}PROTO=${t.text}`,
      outer: { src: r.src, dst: r.dst, ...pick(t) },
    };
  });

function pick(t: Transport): Omit<Outer, "src" | "dst"> {
  return { protocol: t.protocol, srcPort: t.srcPort, dstPort: t.dstPort, icmpType: t.icmpType };
}

/** IPv6 extension headers as logged with IP options: a fragment header (offset > 0: a later fragment), AH. */
const v6Extensions = fc
  .tuple(
    fc.option(
      fc.tuple(
        fc.oneof(
          { arbitrary: fc.constant(0), weight: 3 },
          { arbitrary: fc.integer({ min: 1, max: 8191 }), weight: 1 },
        ),
        fc.boolean(),
        u32,
      ),
      { nil: undefined },
    ),
    fc.option(u32, { nil: undefined }),
  )
  .map(([frag, ah]) => {
    if (frag === undefined && ah === undefined) return { text: "", later: false };
    const f = frag
      ? `FRAG:${frag[0] * 8} ${frag[1] ? "INCOMPLETE " : ""}ID:${frag[2].toString(16).padStart(8, "0")} `
      : "";
    const a = ah !== undefined ? `AH SPI=0x${ah.toString(16)} ` : "";
    return { text: `OPT ( ${f}${a}) `, later: frag !== undefined && frag[0] > 0 };
  });

const ipv6Body: fc.Arbitrary<Body> = fc
  .record({
    src: v6,
    dst: v6,
    len: u16,
    tc: byte,
    hop: byte,
    flow: fc.integer({ min: 0, max: 0xfffff }),
    ext: v6Extensions,
    transport: fc.oneof(tcp, udp, icmpv6, sctp, other, incomplete),
    later: laterFragment.map((t) =>
      t.protocol === "ICMP" ? { ...t, text: "ICMPv6 ", protocol: "ICMPv6" } : t,
    ),
  })
  .map((r): Body => {
    const t = r.ext.later ? r.later : r.transport;
    return {
      text:
        `SRC=${fullV6(r.src)} DST=${fullV6(r.dst)} LEN=${r.len} TC=${r.tc} HOPLIMIT=${r.hop} FLOWLBL=${r.flow} ` +
        `${r.ext.text}PROTO=${t.text}`,
      outer: { src: rfc5952(r.src), dst: rfc5952(r.dst), ...pick(t) },
    };
  });

const link = fc
  .tuple(
    ifname,
    ifname,
    fc.oneof(
      mac.map((m) => `MAC=${m} `),
      fc.constant("MAC= "),
      fc.constant(""),
      // MACDECODE's split form, which the record puts back in MAC= form.
      fc
        .tuple(byte, byte, fc.constantFrom("0800", "86dd"))
        .map(
          ([a, b, t]) => `MACSRC=0a:3d:c7:6e:53:${hex2(a)} MACDST=0a:a3:01:06:e0:${hex2(b)} MACPROTO=${t} `,
        ),
    ),
  )
  .map(([i, o, m]) => `IN=${i} OUT=${o} ${m}`);

// ---------------------------------------------------------------------------------------------------------------
// Lines

const HEADERS: ((host: string) => string)[] = [
  (h) => `Apr 19 04:52:19 ${h} kernel: `,
  (h) => `Apr  9 23:59:59 ${h} kernel: [86400.123456] `,
  (h) => `<4>Apr 19 04:52:19 ${h} kernel: `,
  (h) => `2024-04-19T04:52:19.123456+02:00 ${h} kernel: `,
  (h) => `<4>1 2024-04-19T04:52:19.5Z ${h} kernel - - - `,
  () => "Apr 19 04:52:19 - kernel: ",
];

interface Sample {
  config: number;
  line: string;
  outer: Outer;
  cut: boolean;
}

const sample: fc.Arbitrary<Sample> = fc
  .record({
    config: fc.nat(CONFIGS.length - 1),
    header: fc.constantFrom(...HEADERS),
    host,
    policy: fc.tuple(policyValue, policyValue, policyValue, policyValue),
    link,
    body: fc.oneof({ arbitrary: ipv4Body, weight: 3 }, { arbitrary: ipv6Body, weight: 2 }),
    trailer,
    // Mostly whole lines; sometimes cut short, for errors.
    cut: fc.oneof({ arbitrary: fc.constant(undefined), weight: 12 }, { arbitrary: fc.nat(), weight: 1 }),
    ending: fc.constantFrom("", "", "\r\n", "\n", "\r"),
  })
  .map(({ config, header, host, policy, link, body, trailer, cut, ending }): Sample => {
    const prefix = (CONFIGS[config] as Config).prefix(...policy);
    let text = `${header(host)}${prefix}${link}${body.text}${trailer}`;
    if (cut !== undefined) text = text.slice(0, cut % (text.length + 1));
    return { config, line: `${text}${ending}`, outer: body.outer, cut: cut !== undefined };
  });

// ---------------------------------------------------------------------------------------------------------------
// The check

const PARSERS = CONFIGS.map((c) => createParser(c.options));
const ENCODERS = CONFIGS.map((c) => new NdjsonEncoder(c.options));

/** Lines around the one encoded in place, which its scan must never read as its own. */
const BEFORE = "Apr 19 04:52:18 other kernel: calico-packet: IN=x OUT=y SRC=10.9.9.9 DST=10.8.8.8 LEN=1";
const AFTER =
  'calico-packet: IN=z OUT= SRC=10.7.7.7 DST=10.6.6.6 LEN=2 TTL=1 PROTO=UDP SPT=9 DPT=9 LEN=3 "\\';
const NOT_ASCII = /[\u0080-\uffff]/;

const seen = { records: 0, errors: 0, inPlace: 0, escaped: 0, v6: 0, quoted: 0 };

function check({ config, line, outer, cut }: Sample): void {
  const expected = (PARSERS[config] as (line: string) => ParseOutcome)(line);
  const encoder = ENCODERS[config] as NdjsonEncoder;
  if (expected.kind === "record") {
    seen.records++;
    // The record's outer values: nothing from a quoted inner packet, addresses in RFC 5952 text.
    if (!cut) {
      const r = expected.record;
      expect({
        src: r.src,
        dst: r.dst,
        protocol: r.protocol,
        srcPort: r.srcPort,
        dstPort: r.dstPort,
        icmpType: r.icmpType,
      }).toEqual(outer);
      if (r.ipVersion === 6) seen.v6++;
      if (line.includes("[SRC=")) seen.quoted++;
    }
  } else if (expected.kind === "error") {
    seen.errors++;
  } else {
    // Every generated line carries the prefix and its packet fields, whole or cut.
    expect(cut).toBe(true);
  }

  // The encoder on the line as a string.
  expectEncoded(encoder, line, expected);
  if (expected.kind === "record" && JSON.stringify(expected.record).includes("\\")) seen.escaped++;

  // In place, amid other lines of an ASCII chunk, as parseStream gives it (its "\n" is the separator).
  const body = line.endsWith("\n") ? line.slice(0, -1) : line;
  if (!NOT_ASCII.test(body) && !body.includes("\n")) {
    seen.inPlace++;
    expectEncodedInPlace(encoder, body, (PARSERS[config] as (line: string) => ParseOutcome)(body), {
      before: BEFORE,
      after: AFTER,
    });
  }
}

const RUNS = 20_000;

describe("NDJSON encoder on every nf_log_syslog body form: JSON.stringify of createParser's record, byte for byte", () => {
  it("as a string and in place, with escapes in host, interface and policy names", () => {
    fc.assert(fc.property(sample, check), { numRuns: RUNS });
    // The comparison says little unless the generator reaches records of each kind, escapes and the in-place path.
    expect(seen.records).toBeGreaterThan(RUNS * 0.8);
    expect(seen.errors).toBeGreaterThan(RUNS / 100);
    expect(seen.inPlace).toBeGreaterThan(RUNS / 5);
    expect(seen.escaped).toBeGreaterThan(RUNS / 4);
    expect(seen.v6).toBeGreaterThan(RUNS / 5);
    expect(seen.quoted).toBeGreaterThan(RUNS / 50);
  });

  it("RFC 5952 text for the kernel's full-form IPv6 addresses (the test's own formatter)", () => {
    expect(rfc5952([0, 0, 0, 0, 0, 0, 0, 0])).toBe("::");
    expect(rfc5952([0, 0, 0, 0, 0, 0, 0, 1])).toBe("::1");
    expect(rfc5952([1, 0, 0, 0, 0, 0, 0, 0])).toBe("1::");
    expect(rfc5952([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1])).toBe("2001:db8:0:1::1");
    expect(rfc5952([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])).toBe("2001:db8::1:0:0:1");
    expect(rfc5952([0x2001, 0, 1, 2, 3, 4, 5, 6])).toBe("2001:0:1:2:3:4:5:6");
    expect(rfc5952([0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001])).toBe("::ffff:10.0.0.1");
  });
});
