// Internal/external classification of addresses and the direction of a logged packet.
import { BlockList, isIPv4, isIPv6 } from "node:net";
import type { Direction } from "./types.ts";

/** Interface-name prefixes of workload (pod) interfaces: Calico veths and the AWS VPC CNI's. */
export const DEFAULT_WORKLOAD_INTERFACE_PREFIXES = ["cali", "eni", "vlan"];

export class CidrSet {
  readonly cidrs: readonly string[];
  readonly #list = new BlockList();
  readonly #cache = new Map<string, boolean>();

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [address, bits, extra] = cidr.split("/");
      const prefix = Number(bits);
      const family = address && isIPv4(address) ? "ipv4" : address && isIPv6(address) ? "ipv6" : undefined;
      const max = family === "ipv4" ? 32 : 128;
      if (
        !address ||
        !family ||
        extra !== undefined ||
        !Number.isInteger(prefix) ||
        prefix < 0 ||
        prefix > max
      ) {
        throw new Error(`invalid CIDR "${cidr}": expected an IPv4 or IPv6 address, "/", and a prefix length`);
      }
      this.#list.addSubnet(address, prefix, family);
    }
    this.cidrs = [...cidrs];
  }

  /** True when `ip` lies in one of the ranges. Memoised: a payload repeats few distinct addresses. */
  contains(ip: string): boolean {
    let hit = this.#cache.get(ip);
    if (hit === undefined) {
      const family = ip.includes(":") ? "ipv6" : "ipv4";
      try {
        hit = this.#list.check(ip, family);
      } catch {
        hit = false;
      }
      if (this.#cache.size > 100_000) this.#cache.clear();
      this.#cache.set(ip, hit);
    }
    return hit;
  }
}

/**
 * Direction from the interfaces the kernel printed. `OUT=` a workload interface means the packet was going
 * into a local pod; `IN=` one means it came out of a local pod; an empty side means the node itself sent or
 * received it; anything else was forwarded by the node.
 */
export function directionOf(
  inInterface: string | null,
  outInterface: string | null,
  workloadPrefixes: readonly string[] = DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
): Direction {
  const isWorkload = (name: string | null) =>
    name !== null && workloadPrefixes.some((p) => name.startsWith(p));
  if (isWorkload(outInterface)) return "ingress";
  if (isWorkload(inInterface)) return "egress";
  if (!inInterface || !outInterface) return "host";
  return "forward";
}
