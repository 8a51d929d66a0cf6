// Classification held to a reference written apart from it: node:net's BlockList for CIDR membership (over
// generated ranges and addresses near their edges, written in every text form an address can take), the rules of
// docs/architecture.md ("Classification") for IPv4-mapped addresses and for the direction of a line.
import { BlockList, isIPv4, isIPv6 } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CidrSet,
  DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
  directionAt,
  directionOf,
} from "../../functions/core/classify.ts";
import { createScanner } from "../../functions/core/parse.ts";
import { runPipeline } from "../../functions/core/pipeline.ts";
import type { Direction, IpDirectory } from "../../functions/core/types.ts";
import { loadIngestConfig } from "../../functions/ingest/config.ts";

// ---------------------------------------------------------------------------------------------------------------
// Addresses as numbers (bigint), and their texts.

type Family = 4 | 6;
interface Address {
  family: Family;
  value: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const MAPPED_BASE = 0xffffn << 32n;
const mapped = (v4: bigint): Address => ({ family: 6, value: MAPPED_BASE | v4 });
const isMapped = (a: Address): boolean => a.family === 6 && a.value >> 32n === 0xffffn;

function dotted(v: bigint): string {
  const n = Number(v);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function groupsOf(v: bigint): number[] {
  return Array.from({ length: 8 }, (_, k) => Number((v >> BigInt(112 - 16 * k)) & 0xffffn));
}

/**
 * How one IPv6 address is written: per group its case and leading zeros, which run of zero groups (if any) "::"
 * stands for, and whether its last 32 bits are a dotted quad. Every choice gives text RFC 4291 allows.
 */
interface V6Style {
  upper: boolean[];
  pad: number[];
  run: number;
  dottedTail: boolean;
}

/** The zero runs of `g` (within the first `limit` groups) as [start, length]. */
function zeroRuns(g: number[], limit: number): [number, number][] {
  const runs: [number, number][] = [];
  for (let k = 0; k < limit; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let m = k;
    while (m < limit && g[m] === 0) m++;
    runs.push([k, m - k]);
    k = m;
  }
  return runs;
}

function writeV6(value: bigint, style: V6Style): string {
  const g = groupsOf(value);
  const count = style.dottedTail ? 6 : 8;
  const runs = zeroRuns(g, count);
  const run = runs.length === 0 || style.run < 0 ? undefined : runs[style.run % runs.length];
  const hex = (k: number): string => {
    const text = (g[k] as number).toString(16).padStart(style.pad[k] as number, "0");
    return style.upper[k] ? text.toUpperCase() : text;
  };
  const part = (from: number, to: number): string =>
    Array.from({ length: to - from }, (_, i) => hex(from + i)).join(":");
  const tail = style.dottedTail ? dotted(value & 0xffffffffn) : "";
  if (run === undefined) return [part(0, count), tail].filter((s) => s !== "").join(":");
  const [start, length] = run;
  const after = [part(start + length, count), tail].filter((s) => s !== "").join(":");
  return `${part(0, start)}::${after}`;
}

/** RFC 5952 (`%pI6c`, and what the parser prints): lowercase, shortest, the longest run of 2+ zero groups. */
function rfc5952(value: bigint): string {
  if (value >> 32n === 0xffffn) return `::ffff:${dotted(value & 0xffffffffn)}`;
  const g = groupsOf(value);
  const runs = zeroRuns(g, 8).filter(([, length]) => length >= 2);
  const longest = runs.reduce<[number, number] | undefined>(
    (best, r) => (best && best[1] >= r[1] ? best : r),
    undefined,
  );
  const text = (from: number, to: number) =>
    g
      .slice(from, to)
      .map((x) => x.toString(16))
      .join(":");
  return longest === undefined ? text(0, 8) : `${text(0, longest[0])}::${text(longest[0] + longest[1], 8)}`;
}

/** The kernel's `%pI6`, as nf_log prints SRC= and DST=: eight groups of four lowercase hex digits. */
const kernelV6 = (value: bigint): string =>
  groupsOf(value)
    .map((x) => x.toString(16).padStart(4, "0"))
    .join(":");

const v6Style: fc.Arbitrary<V6Style> = fc.record({
  upper: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  pad: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 8, maxLength: 8 }),
  run: fc.integer({ min: -1, max: 3 }),
  dottedTail: fc.boolean(),
});

/** Any text of the address: the canonical forms the kernel and the parser print, or any other spelling. */
function addressText(a: Address): fc.Arbitrary<string> {
  if (a.family === 4) return fc.constant(dotted(a.value));
  return fc.oneof(
    fc.constant(rfc5952(a.value)),
    fc.constant(kernelV6(a.value)),
    fc.constant(kernelV6(a.value).toUpperCase()),
    v6Style.map((style) => writeV6(a.value, style)),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Ranges.

interface Cidr {
  family: Family;
  /** The address as written, host bits and all. */
  address: Address;
  prefix: number;
  text: string;
}

const first = (c: Cidr): bigint => {
  const hostBits = BigInt(BITS[c.family] - c.prefix);
  return (c.address.value >> hostBits) << hostBits;
};
const last = (c: Cidr): bigint => first(c) + (1n << BigInt(BITS[c.family] - c.prefix)) - 1n;

const u32 = fc.bigInt({ min: 0n, max: 0xffffffffn });
const u128 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });

/** Values where ranges of a list meet and overlap: the same few networks, the ends of the space. */
const v4Value = fc.oneof(
  u32,
  fc.constantFrom(0n, 0xffffffffn, 0x0a000000n, 0xc0a80000n, 0xc0a8ff00n, 0x64400000n, 0x7f000001n),
);
const v6Value = fc
  .oneof(
    u128,
    // fd00::/8 and 2001:db8::/32 with short interface ids, "::" itself and its neighbours.
    fc.bigInt({ min: 0n, max: 0xffffn }).map((low) => (0xfd00n << 112n) | low),
    fc.bigInt({ min: 0n, max: 0xffffffffn }).map((low) => (0x20010db8n << 96n) | low),
    fc.bigInt({ min: 0n, max: 0x1ffffffffffffn }),
    fc.constant((1n << 128n) - 1n),
  )
  // An IPv4-mapped range is refused (architecture.md); the refusal is tested apart.
  .filter((v) => v >> 32n !== 0xffffn);

const hostBits = fc.boolean();

const v4Cidr: fc.Arbitrary<Cidr> = fc
  .tuple(v4Value, fc.integer({ min: 0, max: 32 }), hostBits)
  .map(([value, prefix, keepHostBits]) => {
    const c: Cidr = { family: 4, address: { family: 4, value }, prefix, text: "" };
    c.address.value = keepHostBits ? value : first(c);
    c.text = `${dotted(c.address.value)}/${prefix}`;
    return c;
  });

const v6Cidr: fc.Arbitrary<Cidr> = fc
  .tuple(v6Value, fc.integer({ min: 0, max: 128 }), hostBits)
  .map(([value, prefix, keepHostBits]): Cidr => {
    const c: Cidr = { family: 6, address: { family: 6, value }, prefix, text: "" };
    c.address.value = keepHostBits ? value : first(c);
    return c;
  })
  .filter((c) => !isMapped(c.address))
  .chain((c) => addressText(c.address).map((text) => ({ ...c, text: `${text}/${c.prefix}` })));

/** "::" with a short prefix: IPv6 ranges that hold the whole IPv4-mapped block ::ffff:0:0/96. */
const coveringMapped: fc.Arbitrary<Cidr> = fc
  .integer({ min: 0, max: 95 })
  .map((prefix) => ({ family: 6, address: { family: 6, value: 0n }, prefix, text: `::/${prefix}` }));

const cidrList = fc.array(fc.oneof(v4Cidr, v6Cidr, coveringMapped), { minLength: 0, maxLength: 6 });

/** Addresses mostly at the edges of the list's ranges (first - 1, first, last, last + 1), some anywhere. */
function addressesNear(cidrs: Cidr[]): fc.Arbitrary<Address[]> {
  const edge = (c: Cidr): fc.Arbitrary<Address> => {
    const max = (1n << BigInt(BITS[c.family])) - 1n;
    const lo = first(c);
    const hi = last(c);
    return fc
      .oneof(
        fc.constantFrom(lo - 1n, lo, hi, hi + 1n),
        fc.bigInt({ min: lo, max: hi }),
        fc.bigInt({ min: 0n, max: max }),
      )
      .map((value) => ({ family: c.family, value: ((value % (max + 1n)) + max + 1n) % (max + 1n) }));
  };
  const anywhere: fc.Arbitrary<Address> = fc.oneof(
    u32.map((value): Address => ({ family: 4, value })),
    u128.map((value): Address => ({ family: 6, value })),
  );
  const one = cidrs.length === 0 ? anywhere : fc.oneof(anywhere, ...cidrs.map(edge), ...cidrs.map(edge));
  // An IPv4 address also arrives as an IPv4-mapped IPv6 one (an IPv6 packet's header, a dual-stack socket).
  const spelled = one.chain((a) =>
    a.family === 4 ? fc.constantFrom<Address>(a, a, mapped(a.value)) : fc.constant(a),
  );
  return fc.array(spelled, { minLength: 1, maxLength: 24 });
}

// ---------------------------------------------------------------------------------------------------------------
// The references.

const MAPPED_BLOCK = new BlockList();
MAPPED_BLOCK.addSubnet("::ffff:0:0", 96, "ipv6");

/**
 * Membership by node:net, with the rule of architecture.md: an IPv4-mapped address is its IPv4 address, so it
 * meets the IPv4 ranges and no IPv6 one. (node:net alone would also match it against IPv6 ranges that hold
 * ::ffff:0:0/96, and a plain IPv4 address against them too; hence one list per family.)
 */
function referenceMembership(cidrTexts: readonly string[]): (ip: string) => boolean {
  const v4 = new BlockList();
  const v6 = new BlockList();
  for (const text of cidrTexts) {
    const [address = "", prefix = ""] = text.split("/");
    if (isIPv4(address)) v4.addSubnet(address, Number(prefix), "ipv4");
    else v6.addSubnet(address, Number(prefix), "ipv6");
  }
  return (ip) => {
    if (isIPv4(ip)) return v4.check(ip, "ipv4");
    if (!isIPv6(ip) || ip.includes("%")) return false;
    return MAPPED_BLOCK.check(ip, "ipv6") ? v4.check(ip, "ipv6") : v6.check(ip, "ipv6");
  };
}

/** The same by the numbers the generator chose: keeps the texts above honest. */
function modelMembership(cidrs: readonly Cidr[], a: Address): boolean {
  const [family, value] = isMapped(a) ? [4 as const, a.value & 0xffffffffn] : [a.family, a.value];
  return cidrs.some((c) => c.family === family && value >= first(c) && value <= last(c));
}

/** What `new CidrSet([text])` takes, from node:net and architecture.md: address "/" decimal prefix length. */
function referenceValid(text: string): boolean {
  const match = /^([^/]*)\/([0-9]{1,3})$/.exec(text);
  if (match === null) return false;
  const [, address = "", digits = ""] = match;
  const prefix = Number(digits);
  if (isIPv4(address)) return prefix <= 32;
  // Zone ids name a link, not a range; IPv4-mapped ranges are to be written as IPv4.
  if (!isIPv6(address) || address.includes("%") || MAPPED_BLOCK.check(address, "ipv6")) return false;
  return prefix <= 128;
}

/**
 * Direction as architecture.md states it: OUT= a workload interface is ingress (into a local pod), else IN= one
 * is egress (out of a local pod), else an empty side is host traffic, else the node forwarded the packet. A
 * workload interface is a configured prefix and then its own id; a dot right after the prefix is no pod's
 * (`vlan.eth.N`).
 */
function referenceDirection(
  inIf: string | null,
  outIf: string | null,
  prefixes: readonly string[],
): Direction {
  const workload = (name: string | null) =>
    name !== null && prefixes.some((p) => name.startsWith(p) && name.charAt(p.length) !== ".");
  if (workload(outIf)) return "ingress";
  if (workload(inIf)) return "egress";
  if (!inIf || !outIf) return "host";
  return "forward";
}

// ---------------------------------------------------------------------------------------------------------------

describe("CidrSet against node:net", () => {
  it("holds an address exactly when node:net's BlockList does, mapped addresses by their IPv4 address", () => {
    fc.assert(
      fc.property(
        cidrList.chain((cidrs) =>
          addressesNear(cidrs).chain((addresses) =>
            fc.tuple(
              fc.constant(cidrs),
              fc.tuple(...addresses.map((a) => addressText(a).map((t) => [a, t] as const))),
            ),
          ),
        ),
        ([cidrs, spelled]) => {
          const texts = cidrs.map((c) => c.text);
          const set = new CidrSet(texts);
          const reference = referenceMembership(texts);
          for (const [address, text] of spelled) {
            // The generator wrote what it meant: node:net reads the text as the number it chose.
            expect(isIPv4(text) || isIPv6(text), text).toBe(true);
            const expected = reference(text);
            expect(modelMembership(cidrs, address), `${text} in ${texts.join(",")} (model)`).toBe(expected);
            expect(set.contains(text), `${text} in ${texts.join(",")}`).toBe(expected);
            // A memoised answer is the same answer.
            expect(set.contains(text), `${text} again`).toBe(expected);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("takes an IPv4-mapped address for its IPv4 address in every spelling, whatever IPv6 ranges hold", () => {
    // Found by the property above: only the spellings starting with ":" were mapped; the kernel's %pI6 form (and
    // any spelling with a leading 0) went to node:net, which also matched it against ::/0.
    const set = new CidrSet(["192.168.0.0/16", "::/0"]);
    for (const outside of [
      "0000:0000:0000:0000:0000:ffff:0808:0808",
      "0:0:0:0:0:ffff:8.8.8.8",
      "0::FFFF:808:808",
    ]) {
      expect(set.contains(outside), outside).toBe(false);
    }
    for (const inside of [
      "0000:0000:0000:0000:0000:ffff:c0a8:0105",
      "0:0:0:0:0:ffff:192.168.1.5",
      "::ffff:c0a8:105",
    ]) {
      expect(set.contains(inside), inside).toBe(true);
    }
    // IPv6 ranges that hold the mapped block still hold every other address of theirs.
    expect(set.contains("0000:0000:0000:0000:0000:fffe:0808:0808")).toBe(true);
    expect(new CidrSet(["::/80"]).contains("::ffff:10.0.0.1")).toBe(false);
  });

  it("answers false, without throwing, for text that is no address", () => {
    const everything = new CidrSet(["0.0.0.0/0", "::/0"]);
    for (const text of [
      "",
      " ",
      "1.2.3",
      "1.2.3.4 ",
      " 1.2.3.4",
      "010.0.0.1",
      "1.2.3.256",
      "fe80::1%eth0",
      ":::",
      "x",
    ]) {
      expect(everything.contains(text), JSON.stringify(text)).toBe(false);
    }
    // Pieces of addresses run together: an address to node:net (zone ids aside) is one to the set, and no other.
    const piece = fc.constantFrom(
      "0",
      "1",
      "f",
      "F",
      "ffff",
      "0000",
      "12345",
      ":",
      "::",
      ".",
      "1.2.3.4",
      "256",
      "%",
      "00",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 14 }), (pieces) => {
        const text = pieces.join("");
        expect(everything.contains(text), text).toBe(isIPv4(text) || (isIPv6(text) && !text.includes("%")));
      }),
      { numRuns: 5000 },
    );
  });
});

/** Near-CIDR text: valid ranges and the ways operators and tools get them wrong. */
const cidrish: fc.Arbitrary<string> = fc.oneof(
  v4Cidr.map((c) => c.text),
  v6Cidr.map((c) => c.text),
  fc
    .tuple(
      fc.oneof(
        v4Value.map(dotted),
        v6Value.chain((v) => addressText({ family: 6, value: v })),
        u32.chain((v) => addressText(mapped(v))),
        fc.constantFrom(
          "",
          "1.2.3",
          "1.2.3.4.5",
          "010.0.0.0",
          "256.0.0.0",
          "fe80::1%eth0",
          ":::",
          "1::2::3",
          "x",
        ),
      ),
      fc.oneof(
        fc.integer({ min: 0, max: 140 }).map(String),
        fc.constantFrom("", "08", "008", "0032", "-0", "+8", " 8", "8 ", "0x8", "1e1", "8.0", "8/1"),
      ),
      fc.constantFrom("/", "/", "/", "", " /", "/ ", "//"),
      fc.constantFrom("", "", "", " ", "\t"),
    )
    .map(([address, prefix, slash, space]) => `${space}${address}${slash}${prefix}`),
);

describe("which CIDRs are refused", () => {
  it("refuses exactly what is no IPv4 or IPv6 address and decimal prefix length in range, naming the value", () => {
    fc.assert(
      fc.property(cidrish, (text) => {
        if (referenceValid(text)) {
          expect(() => new CidrSet([text]), text).not.toThrow();
        } else {
          expect(() => new CidrSet([text]), text).toThrow(`invalid CIDR "${text}"`);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it.each(["10.0.0.0/33", "1.2.3", "", " ", "10.0.0.0 /8", "fd00::/129", "::ffff:10.0.0.0/104"])(
    "refuses %j",
    (text) => {
      expect(referenceValid(text)).toBe(false);
      expect(() => new CidrSet([text])).toThrow(`invalid CIDR "${text}"`);
    },
  );

  it("INTERNAL_CIDRS: a comma list, spaces around items ignored; any refused item stops the start, named", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            cidrish.filter((s) => !s.includes(",")),
            fc.constantFrom("", " ", "  "),
          ),
          { minLength: 0, maxLength: 4 },
        ),
        (items) => {
          const value = items.map(([item, pad]) => `${pad}${item}${pad}`).join(",");
          const kept = items.map(([item]) => item.trim()).filter((item) => item !== "");
          const env = { CLUSTER_NAME: "prod", TABLE_NAME: "t", INTERNAL_CIDRS: value };
          if (kept.length > 0 && kept.every(referenceValid)) {
            const config = loadIngestConfig(env);
            expect(config.INTERNAL_CIDRS).toEqual(kept);
            expect(config.internal.cidrs).toEqual(kept);
          } else {
            // The variable and its value, as for every other variable (functions/shared/env.ts).
            expect(() => loadIngestConfig(env)).toThrow(`INTERNAL_CIDRS=${JSON.stringify(value)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("reports a refused CIDR with the other invalid variables, not instead of them", () => {
    const env = { CLUSTER_NAME: "prod", TABLE_NAME: "t", INTERNAL_CIDRS: "10.0.0.0/33", ALERT_CAP: "0" };
    expect(() => loadIngestConfig(env)).toThrow(
      /INTERNAL_CIDRS="10\.0\.0\.0\/33": invalid CIDR.*ALERT_CAP="0"|ALERT_CAP="0".*INTERNAL_CIDRS="10\.0\.0\.0\/33": invalid CIDR/,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Direction.

const hex11 = fc.stringMatching(/^[0-9a-f]{11}$/);
const PREFIXES = ["cali", "eni", "vlan", "lxc", "veth", "e", "en", "eth", "v", "vl"];
const prefixList: fc.Arbitrary<readonly string[]> = fc.oneof(
  fc.constant(DEFAULT_WORKLOAD_INTERFACE_PREFIXES),
  fc.array(fc.oneof(fc.constantFrom(...PREFIXES), fc.stringMatching(/^[a-z.]{1,5}$/)), { maxLength: 4 }),
);

/** Interface names of EKS nodes (Calico, the VPC CNI, its branch ENIs) and names close to them. */
const interfaceName: fc.Arbitrary<string | null> = fc.oneof(
  fc.constantFrom(null, ""),
  fc.constantFrom(
    "eth0",
    "eth1",
    "ens5",
    "lo",
    "tunl0",
    "vxlan.calico",
    "wireguard.cali",
    "bpfout.cali",
    "vlan.eth.1",
    "vlan.eth.17",
    "cali",
    "eni",
    "vlan",
    "cal",
    "en",
    "vla",
  ),
  fc
    .tuple(fc.constantFrom(...PREFIXES, ...DEFAULT_WORKLOAD_INTERFACE_PREFIXES), hex11)
    .map(([p, id]) => p + id),
  fc.tuple(fc.constantFrom(...PREFIXES), fc.stringMatching(/^[a-z0-9.]{0,6}$/)).map(([p, rest]) => p + rest),
  fc.stringMatching(/^[a-z0-9.]{1,15}$/),
);

describe("direction", () => {
  it("follows the rules of architecture.md, for names as strings and where a line holds them", () => {
    fc.assert(
      fc.property(
        interfaceName,
        interfaceName,
        prefixList,
        // What surrounds the names in the text the scanner reads: a dot right after one must not count.
        fc.constantFrom(" ", ".", "x", ""),
        (inIf, outIf, prefixes, after) => {
          const expected = referenceDirection(inIf, outIf, prefixes);
          expect(directionOf(inIf, outIf, prefixes)).toBe(expected);
          const inText = inIf ?? "";
          const outText = outIf ?? "";
          const line = `calico-packet: IN=${inText}${after}OUT=${outText}${after}MAC=`;
          const inStart = line.indexOf("IN=") + 3;
          const outStart = line.indexOf("OUT=", inStart + inText.length) + 4;
          expect(
            directionAt(
              line,
              inText ? inStart : -1,
              inStart + inText.length,
              line,
              outText ? outStart : -1,
              outStart + outText.length,
              prefixes,
            ),
          ).toBe(expected);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it.each([
    // A branch-ENI pod (security groups for pods) sends out through the trunk ENI's VLAN: it leaves a pod.
    ["vlan1a2b3c4d5e6", "vlan.eth.1", "egress"],
    ["vlan.eth.1", "vlan1a2b3c4d5e6", "ingress"],
    ["vlan.eth.1", "eth0", "forward"],
    ["vlan.eth.1", null, "host"],
    ["", "cali0123456789a", "ingress"],
    ["eni0123456789a", "", "egress"],
    ["cali0123456789a", "eni0123456789a", "ingress"],
    [null, null, "host"],
  ] as const)("IN=%s OUT=%s is %s", (inIf, outIf, direction) => {
    expect(directionOf(inIf, outIf)).toBe(direction);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Through the pipeline: a flow is internal when both ends are, its direction the line's.

const nobody: IpDirectory = {
  async resolve(lookups) {
    return lookups.map(() => ({ status: "absent" as const }));
  },
};

interface PipelineLine {
  src: Address;
  dst: Address;
  inIf: string | null;
  outIf: string | null;
}

describe("classification in the pipeline", () => {
  it("marks a flow internal when both ends are in the ranges and gives it the line's direction", async () => {
    await fc.assert(
      fc.asyncProperty(
        cidrList.chain((cidrs) =>
          addressesNear(cidrs).chain((addresses) => {
            // One packet's two ends are of one IP version: IPv4 ends of an IPv6 line are mapped.
            const endpoint = fc.constantFrom(...addresses);
            const line = fc.record({
              src: endpoint,
              dst: endpoint,
              inIf: interfaceName,
              outIf: interfaceName,
            });
            return fc.tuple(fc.constant(cidrs), fc.array(line, { minLength: 1, maxLength: 20 }));
          }),
        ),
        async ([cidrs, lines]) => {
          const texts = cidrs.map((c) => c.text);
          const reference = referenceMembership(texts);
          const events = lines.map((l, i) => ({
            message: kernelLine(l, 1000 + i),
            timestamp: 1_776_574_339_000,
          }));
          const { flows, stats } = await runPipeline(events, {
            cluster: "prod",
            internal: new CidrSet(texts),
            bucketSeconds: 60,
            scanner: createScanner({ year: 2026 }),
            directory: nobody,
          });
          expect(stats.malformed).toBe(0);
          expect(flows).toHaveLength(lines.length);
          for (const flow of flows) {
            const l = lines[(flow.dstPort as number) - 1000] as PipelineLine;
            const [src, dst] = sameVersion(l);
            const internal = reference(src) && reference(dst);
            expect(flow.internal, `${src} > ${dst} in ${texts.join(",")}`).toBe(internal);
            expect(flow.direction).toBe(
              referenceDirection(l.inIf, l.outIf, DEFAULT_WORKLOAD_INTERFACE_PREFIXES),
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** The line's two addresses as the kernel prints them: dotted quads, or both `%pI6` when either is IPv6. */
function sameVersion(l: PipelineLine): [string, string] {
  if (l.src.family === 4 && l.dst.family === 4) return [dotted(l.src.value), dotted(l.dst.value)];
  const v6 = (a: Address) => kernelV6(a.family === 4 ? mapped(a.value).value : a.value);
  return [v6(l.src), v6(l.dst)];
}

function kernelLine(l: PipelineLine, port: number): string {
  const [src, dst] = sameVersion(l);
  const ip = src.includes(":")
    ? `SRC=${src} DST=${dst} LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0`
    : `SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF`;
  return (
    `Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=${l.inIf ?? ""} OUT=${l.outIf ?? ""} ` +
    `MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 ${ip} PROTO=TCP SPT=40000 DPT=${port} WINDOW=62727 RES=0x00 SYN URGP=0`
  );
}
