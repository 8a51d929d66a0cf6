// Internal/external classification of addresses and the direction of a logged packet.
import { BlockList, isIPv4, isIPv6 } from "node:net";
import { formatIpv6Groups, normalizeIpv6, readIpv6Groups } from "./ipv6.ts";
import type { Direction } from "./types.ts";

/** Interface-name prefixes of workload (pod) interfaces: Calico veths and the AWS VPC CNI's. */
export const DEFAULT_WORKLOAD_INTERFACE_PREFIXES = ["cali", "eni", "vlan"];

/** The longest Linux interface name: IFNAMSIZ (16 bytes) less the terminating NUL. */
export const MAX_INTERFACE_NAME_LENGTH = 15;

/**
 * Workload interface prefixes as an operator gives them (Felix's `InterfacePrefix` is such a list, e.g.
 * `cali,tap`), checked once at start-up: returned as a new list, or an Error showing the first bad prefix.
 * Linux refuses `/`, `:` and spaces in interface names; `,` separates the lists prefixes are given in; and past
 * printable ASCII a name may not reach the log as the kernel printed it (syslog escapes control characters), nor
 * does any CNI name its interfaces so.
 */
export function checkWorkloadInterfacePrefixes(prefixes: readonly string[]): string[] {
  if (prefixes.length === 0) throw new Error("at least one workload interface prefix is needed");
  const seen = new Set<string>();
  for (const prefix of prefixes) {
    const problem =
      prefix.length === 0
        ? "empty, it would make every interface a workload's"
        : prefix.length > MAX_INTERFACE_NAME_LENGTH
          ? `longer than ${MAX_INTERFACE_NAME_LENGTH} characters, the longest Linux interface name`
          : !/^[!-~]+$/.test(prefix) || /[/:,]/.test(prefix)
            ? "expected printable ASCII without / or : (which Linux refuses in interface names, as it does spaces) or , (which separates the list)"
            : seen.has(prefix)
              ? "given twice"
              : undefined;
    if (problem !== undefined) {
      throw new Error(`invalid workload interface prefix ${JSON.stringify(prefix)}: ${problem}`);
    }
    seen.add(prefix);
  }
  return [...prefixes];
}

/**
 * A dotted quad without leading zeros (as the kernel prints `%pI4`) as an unsigned 32-bit integer, or -1.
 * Such a string and its number determine each other, so the number can also stand for the string as a key.
 */
export function canonicalIpv4(ip: string): number {
  const n = ip.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

/**
 * The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, or `::ffff:hhhh:hhhh`, any case or spelling
 * node:net accepts) stands for, as canonicalIpv4 gives it; -1 for any other text.
 */
export function mappedIpv4(ip: string): number {
  // RFC 5952 writes a mapped address as ::ffff: and its dotted quad (§5).
  const normal = normalizeIpv6(ip);
  return normal?.startsWith("::ffff:") ? canonicalIpv4(normal.slice(7)) : -1;
}

/** A range as CidrSet reads it, or why the text is none. */
type ReadCidr = { family: "ipv4" | "ipv6"; address: string; prefix: number } | { problem: string };

function readCidr(cidr: string): ReadCidr {
  const [address, bits, extra] = cidr.split("/");
  // Digits only: Number() would take "", "-0", " 8", "0x8" or "1e1" too, and "10.0.0.0/" as /0.
  const prefix = bits !== undefined && /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
  const family =
    address && !address.includes("%") && isIPv4(address)
      ? "ipv4"
      : address && !address.includes("%") && isIPv6(address)
        ? "ipv6"
        : undefined;
  if (!address || !family || extra !== undefined || Number.isNaN(prefix)) {
    return { problem: 'expected an IPv4 or IPv6 address, "/", and a prefix length' };
  }
  // The form is right, the length is not: say the family's longest, which is what was missed.
  const max = family === "ipv4" ? 32 : 128;
  if (prefix > max) {
    return { problem: `an ${family === "ipv4" ? "IPv4" : "IPv6"} prefix length is at most ${max}` };
  }
  if (family === "ipv6" && mappedIpv4(address) >= 0) {
    return {
      problem:
        "an IPv4-mapped range; write it as IPv4 (IPv4 addresses, mapped or not, are checked against IPv4 ranges)",
    };
  }
  return { family, address, prefix };
}

/**
 * Why CidrSet refuses `cidr` (what its error says after the value), or undefined when it takes it: for checks
 * that name the value their own way (the CDK app's context).
 */
export function cidrProblem(cidr: string): string | undefined {
  const read = readCidr(cidr);
  return "problem" in read ? read.problem : undefined;
}

/**
 * `cidr` as CidrSet takes it, or the error it throws; for an IPv4 range also its first address and its size, as
 * numbers (canonicalIpv4).
 */
function rangeOf(cidr: string): {
  family: "ipv4" | "ipv6";
  address: string;
  prefix: number;
  first: number;
  size: number;
} {
  const read = readCidr(cidr);
  if ("problem" in read) throw new Error(`invalid CIDR "${cidr}": ${read.problem}`);
  if (read.family === "ipv6") return { ...read, first: 0, size: 0 };
  const size = 2 ** (32 - read.prefix);
  return { ...read, first: Math.floor(canonicalIpv4(read.address) / size) * size, size };
}

/**
 * The one spelling of the range `cidr` covers: its network address (host bits cleared), IPv6 as RFC 5952 writes it,
 * and its length. `10.1.0.0/8` and `10.0.0.0/8`, or `FD00:0::/8` and `fd00::/8`, are one range. Throws as CidrSet
 * does for text that is no range.
 */
export function canonicalCidr(cidr: string): string {
  const { family, address, prefix, first } = rangeOf(cidr);
  if (family === "ipv4") {
    return `${[24, 16, 8, 0].map((shift) => Math.floor(first / 2 ** shift) % 256).join(".")}/${prefix}`;
  }
  const groups = new Uint16Array(8);
  readIpv6Groups(Buffer.from(address, "latin1"), 0, address.length, groups);
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, prefix - 16 * i));
    groups[i] = (groups[i] as number) & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${formatIpv6Groups(groups)}/${prefix}`;
}

export class CidrSet {
  readonly cidrs: readonly string[];
  // IPv4 ranges as [first, last] integers: checked without allocating, once per address of every line.
  readonly #v4: [number, number][] = [];
  // IPv6 ranges only: node:net would also check an IPv4-mapped address against them (and an IPv4 range against
  // it), where a mapped address is its IPv4 address and meets IPv4 ranges alone.
  readonly #v6 = new BlockList();
  readonly #cache = new Map<string, boolean>();

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const { family, address, prefix, first, size } = rangeOf(cidr);
      if (family === "ipv4") {
        this.#v4.push([first, first + size - 1]);
      } else {
        this.#v6.addSubnet(address, prefix, "ipv6");
      }
    }
    this.cidrs = [...cidrs];
  }

  /**
   * True when `ip` lies in one of the ranges. An IPv4-mapped IPv6 address is its IPv4 address, however it is
   * written (`::ffff:a.b.c.d`, or `%pI6`'s `0000:…:ffff:hhhh:hhhh`); text that is no address is in none.
   */
  contains(ip: string): boolean {
    const v4 = canonicalIpv4(ip);
    if (v4 >= 0) return this.#containsV4(v4);
    // Any other text once per distinct spelling, memoised: a payload repeats few distinct addresses.
    let hit = this.#cache.get(ip);
    if (hit === undefined) {
      const normal = normalizeIpv6(ip);
      const mapped = normal?.startsWith("::ffff:") ? canonicalIpv4(normal.slice(7)) : -1;
      hit = mapped >= 0 ? this.#containsV4(mapped) : normal !== null && this.#v6.check(normal, "ipv6");
      if (this.#cache.size >= 100_000) this.#cache.clear();
      this.#cache.set(ip, hit);
    }
    return hit;
  }

  #containsV4(v4: number): boolean {
    for (const [first, last] of this.#v4) if (v4 >= first && v4 <= last) return true;
    return false;
  }
}

/**
 * Direction from the interfaces the kernel printed. `OUT=` a workload interface means the packet was going
 * into a local pod (whatever `IN=` is: pod to pod on one node is the receiving pod's ingress); `IN=` one means it
 * came out of a local pod; an empty side means the node itself sent or received it; anything else was
 * forwarded by the node.
 */
export function directionOf(
  inInterface: string | null,
  outInterface: string | null,
  workloadPrefixes: readonly string[] = DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
): Direction {
  return directionAt(
    inInterface ?? "",
    inInterface ? 0 : -1,
    inInterface?.length ?? 0,
    outInterface ?? "",
    outInterface ? 0 : -1,
    outInterface?.length ?? 0,
    workloadPrefixes,
  );
}

/**
 * directionOf for interface names that are ranges `[start, end)` of texts (start -1: none or empty), as the
 * parser's scanner leaves them: no string is made for them.
 */
export function directionAt(
  inText: string,
  inStart: number,
  inEnd: number,
  outText: string,
  outStart: number,
  outEnd: number,
  workloadPrefixes: readonly string[] = DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
): Direction {
  if (isWorkload(outText, outStart, outEnd, workloadPrefixes)) return "ingress";
  if (isWorkload(inText, inStart, inEnd, workloadPrefixes)) return "egress";
  if (inStart < 0 || outStart < 0) return "host";
  return "forward";
}

/**
 * A workload interface is a prefix and then the interface's own id (the host veths of Calico and of the VPC CNI:
 * 11 hex digits). A dot right after the prefix names no pod: `vlan.eth.N` is the VPC CNI's VLAN of the trunk ENI
 * (security groups for pods), the network side of a branch-ENI pod whose own veth is `vlan<id>`.
 */
function isWorkload(text: string, start: number, end: number, prefixes: readonly string[]): boolean {
  if (start < 0) return false;
  for (let p = 0; p < prefixes.length; p++) {
    const prefix = prefixes[p] as string;
    const rest = end - start - prefix.length;
    if (
      rest >= 0 &&
      textAt(text, start, prefix) &&
      (rest === 0 || text.charCodeAt(start + prefix.length) !== 46)
    ) {
      return true;
    }
  }
  return false;
}

/** text.startsWith(part, at), compared unit by unit: a builtin call costs more than these few comparisons. */
function textAt(text: string, at: number, part: string): boolean {
  for (let k = 0; k < part.length; k++) {
    if (text.charCodeAt(at + k) !== part.charCodeAt(k)) return false;
  }
  return true;
}
