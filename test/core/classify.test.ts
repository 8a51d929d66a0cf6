import { describe, expect, it } from "vitest";
import {
  CidrSet,
  canonicalCidr,
  checkWorkloadInterfacePrefixes,
  cidrProblem,
  DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
  directionAt,
  directionOf,
} from "../../functions/core/classify.ts";

describe("CidrSet", () => {
  const set = new CidrSet(["192.168.0.0/16", "10.100.0.0/24", "fd00::/8"]);

  it.each([
    ["192.168.22.247", true],
    ["192.168.255.255", true],
    ["192.169.0.1", false],
    ["10.100.0.200", true],
    ["10.100.1.1", false],
    ["fd00::17", true],
    ["fe80::1", false],
    ["2001:db8::42", false],
    ["not-an-ip", false],
  ])("%s inside is %s", (ip, inside) => {
    expect(set.contains(ip)).toBe(inside);
    // memoised answers stay the same
    expect(set.contains(ip)).toBe(inside);
  });

  it.each([
    "192.168.0.0",
    "192.168.0.0/33",
    "fd00::/129",
    "x/8",
    "10.0.0.0/8/1",
    "10.0.0.0/-1",
    // Number() would read each of these prefixes (the first as /0: every address internal).
    "10.0.0.0/",
    "fd00::/",
    "10.0.0.0/-0",
    "10.0.0.0/ 8",
    "10.0.0.0/0x8",
    "10.0.0.0/8.0",
    "10.0.0.0/1e1",
    "10.0.0.0/+8",
    "fe80::1%eth0/64",
    // IPv4-mapped ranges: IPv4 addresses are checked against IPv4 ranges.
    "::ffff:10.0.0.0/104",
    "::ffff:a00:0/104",
  ])("rejects %s and shows the value", (cidr) => {
    expect(() => new CidrSet([cidr])).toThrow(`invalid CIDR "${cidr}"`);
  });

  it.each([
    ["192.168.0.0/33", "an IPv4 prefix length is at most 32"],
    ["fd00::/129", "an IPv6 prefix length is at most 128"],
    ["192.168.0.0", 'expected an IPv4 or IPv6 address, "/", and a prefix length'],
  ])("says what is wrong with %s", (cidr, reason) => {
    expect(() => new CidrSet([cidr])).toThrow(`invalid CIDR "${cidr}": ${reason}`);
    expect(cidrProblem(cidr)).toBe(reason);
  });

  it("takes an IPv4-mapped IPv6 address for its IPv4 address, whatever IPv6 ranges hold", () => {
    const mixed = new CidrSet(["192.168.0.0/16", "::/0"]);
    expect(mixed.contains("::ffff:192.168.1.5")).toBe(true);
    expect(mixed.contains("::FFFF:c0a8:105")).toBe(true);
    expect(mixed.contains("::ffff:8.8.8.8")).toBe(false);
    expect(mixed.contains("2001:db8::1")).toBe(true);
    expect(new CidrSet(["10.0.0.0/8"]).contains("::ffff:10.1.2.3")).toBe(true);
  });
});

describe("canonicalCidr", () => {
  it.each([
    ["10.1.2.3/8", "10.0.0.0/8"],
    ["192.168.0.0/16", "192.168.0.0/16"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["255.255.255.255/32", "255.255.255.255/32"],
    ["FD00:0::/8", "fd00::/8"],
    ["fd12:3456::/8", "fd00::/8"],
    ["2001:db8:ffff:ffff::/33", "2001:db8:8000::/33"],
    ["64:ff9b::1.2.3.4/96", "64:ff9b::/96"],
    ["2001:DB8::1/128", "2001:db8::1/128"],
  ])("spells %s as %s", (cidr, canonical) => {
    expect(canonicalCidr(cidr)).toBe(canonical);
  });

  it("covers what CidrSet covers, and refuses what it refuses", () => {
    for (const cidr of ["10.1.2.3/8", "fd12:3456::/8", "2001:db8:ffff:ffff::/33"]) {
      for (const ip of [
        "10.200.0.1",
        "11.0.0.0",
        "fd99::1",
        "fe00::1",
        "2001:db8:8000::9",
        "2001:db8:7fff::9",
      ]) {
        expect(new CidrSet([canonicalCidr(cidr)]).contains(ip)).toBe(new CidrSet([cidr]).contains(ip));
      }
    }
    expect(() => canonicalCidr("10.0.0.0/33")).toThrow(/at most 32/);
  });
});

describe("directionOf", () => {
  it.each([
    ["eth0", "eni8d48114818c", "ingress"],
    ["eth0", "cali12345", "ingress"],
    ["cali12345", "eth0", "egress"],
    ["eni8d48114818c", "eni77aa10fe321", "ingress"],
    ["", "eth0", "host"],
    ["eth0", "", "host"],
    [null, "eth0", "host"],
    ["eth0", "eth1", "forward"],
    ["en", "vla", "forward"],
  ] as const)("IN=%s OUT=%s is %s", (inIf, outIf, direction) => {
    expect(directionOf(inIf, outIf)).toBe(direction);
    // The same names where a line holds them, as the scanner leaves them (start -1 for an empty one).
    const line = `IN=${inIf ?? ""} OUT=${outIf ?? ""} MAC=`;
    const inStart = 3;
    const inEnd = inStart + (inIf ?? "").length;
    const outStart = inEnd + 5;
    const outEnd = outStart + (outIf ?? "").length;
    expect(directionAt(line, inIf ? inStart : -1, inEnd, line, outIf ? outStart : -1, outEnd)).toBe(
      direction,
    );
  });
});

describe("checkWorkloadInterfacePrefixes", () => {
  it.each([
    [DEFAULT_WORKLOAD_INTERFACE_PREFIXES],
    [["cali", "tap"]],
    // Felix's prefixes on other clouds, and the longest name Linux allows (15 bytes, IFNAMSIZ less its NUL).
    [["avz", "gke", "oci", "lxc", "veth"]],
    [["abcdefghijklmno"]],
    // Characters Linux allows that Felix's own check would not: a dot, a plus, an at sign.
    [["vlan.", "tap+x", "if@"]],
    // A prefix of another one is redundant, not wrong.
    [["cali", "ca"]],
  ])("takes %j", (prefixes) => {
    const checked = checkWorkloadInterfacePrefixes(prefixes);
    expect(checked).toEqual(prefixes);
    expect(checked).not.toBe(prefixes);
  });

  it.each([
    [[], "at least one workload interface prefix is needed"],
    [["cali", ""], 'invalid workload interface prefix "": empty'],
    [["abcdefghijklmnop"], 'invalid workload interface prefix "abcdefghijklmnop": longer than 15 characters'],
    [["ca li"], 'invalid workload interface prefix "ca li": expected printable ASCII'],
    [["cali\t"], 'invalid workload interface prefix "cali\\t": expected printable ASCII'],
    [["tap/"], 'invalid workload interface prefix "tap/": expected printable ASCII without / or :'],
    [["eth0:"], 'invalid workload interface prefix "eth0:"'],
    [["cali,tap"], 'invalid workload interface prefix "cali,tap"'],
    [["café"], 'invalid workload interface prefix "café"'],
    [["cali", "tap", "cali"], 'invalid workload interface prefix "cali": given twice'],
  ])("refuses %j, showing the prefix", (prefixes, message) => {
    expect(() => checkWorkloadInterfacePrefixes(prefixes)).toThrow(message);
  });

  it("gives a direction by the prefixes it took, and only by them", () => {
    const prefixes = checkWorkloadInterfacePrefixes(["cali", "tap"]);
    expect(directionOf("eth0", "tap0a1b2c3d4e5", prefixes)).toBe("ingress");
    expect(directionOf("tap0a1b2c3d4e5", "", prefixes)).toBe("egress");
    // The defaults are replaced, not extended; and a dot after the prefix names no pod, as for vlan.eth.N.
    expect(directionOf("eth0", "eni8d48114818c", prefixes)).toBe("forward");
    expect(directionOf("eth0", "tap.eth.1", prefixes)).toBe("forward");
    expect(directionOf("eth0", "tap0a1b2c3d4e5")).toBe("forward");
  });
});
