import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertCandidates, alertEndpointKey, SCAN_DESTINATION } from "../../functions/core/alert-rules.ts";
import type { Endpoint, FlowRecord } from "../../functions/core/types.ts";

const pod = (
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
const external = (ip: string): Endpoint => ({
  ip,
  kind: "external",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved: true,
});
const unknown = (ip: string, resolved = true): Endpoint => ({ ...external(ip), kind: "unknown", resolved });

let serial = 0;
function flow(src: Endpoint, dst: Endpoint, extra: Partial<FlowRecord> = {}): FlowRecord {
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

const web1 = pod("192.168.22.247", "customer-a", "web-5f7c9-abcde", "web", "node-a");
const web2 = pod("192.168.22.248", "customer-a", "web-5f7c9-fghij", "web", "node-b");
const db = pod("192.168.94.122", "customer-b", "db-0", "db", "node-c");

describe("alertEndpointKey", () => {
  it("names workloads, bare pods, nodes, and falls back to the IP", () => {
    expect(alertEndpointKey(web1)).toBe("customer-a/Deployment/web");
    expect(alertEndpointKey(pod("192.168.1.1", "ns", "lonely", null))).toBe("ns/Pod/lonely");
    expect(
      alertEndpointKey({
        ip: "192.168.0.10",
        kind: "node",
        namespace: null,
        name: "ip-192-168-0-10",
        workload: null,
        node: null,
        resolved: true,
      }),
    ).toBe("node/ip-192-168-0-10");
    expect(alertEndpointKey(unknown("192.168.9.9"))).toBe("192.168.9.9");
    expect(alertEndpointKey(unknown("192.168.9.9", false))).toBe("192.168.9.9");
  });
});

describe("internal denials", () => {
  it("folds the pods of one workload into one candidate, summing hits and spanning first/last seen", () => {
    const flows = [
      flow(web1, db, {
        packets: 3,
        firstSeen: "2026-04-19T04:52:01.000Z",
        lastSeen: "2026-04-19T04:52:30.000Z",
      }),
      flow(web2, db, {
        packets: 4,
        firstSeen: "2026-04-19T04:51:00.000Z",
        lastSeen: "2026-04-19T04:53:40.000Z",
        reporter: "node-x",
      }),
    ];
    const [only, ...rest] = alertCandidates(flows, {});
    expect(rest).toEqual([]);
    expect(only).toMatchObject({
      key: {
        cluster: "prod",
        src: "customer-a/Deployment/web",
        dst: "customer-b/Deployment/db",
        protocol: "TCP",
        dstPort: 8012,
      },
      hits: 7,
      firstSeen: "2026-04-19T04:51:00.000Z",
      lastSeen: "2026-04-19T04:53:40.000Z",
      // When the hits happened, flow by flow: the store splits a batch among the windows holding them.
      spans: [
        { firstSeen: "2026-04-19T04:52:01.000Z", lastSeen: "2026-04-19T04:52:30.000Z", hits: 3 },
        { firstSeen: "2026-04-19T04:51:00.000Z", lastSeen: "2026-04-19T04:53:40.000Z", hits: 4 },
      ],
      severity: "high",
      reason: "internal-denial",
      // The example is the latest flow: its pod is the likeliest to still exist.
      src: web2,
      reporter: "node-x",
    });
  });

  it("splits by port, protocol and cluster, and uses IPs for unattributed ends", () => {
    const stranger = unknown("192.168.50.5");
    const flows = [
      flow(web1, db),
      flow(web1, db, { dstPort: 5432 }),
      flow(web1, db, { protocol: "UDP" }),
      flow(web1, db, { cluster: "staging" }),
      flow(stranger, db),
    ];
    const keys = alertCandidates(flows, {}).map(
      (c) => `${c.key.cluster} ${c.key.src} ${c.key.protocol}/${c.key.dstPort}`,
    );
    // In the order of each key's first flow.
    expect(keys).toEqual([
      "prod customer-a/Deployment/web TCP/8012",
      "prod customer-a/Deployment/web TCP/5432",
      "prod customer-a/Deployment/web UDP/8012",
      "staging customer-a/Deployment/web TCP/8012",
      "prod 192.168.50.5 TCP/8012",
    ]);
  });

  it("keeps a policy named by any flow of the key", () => {
    const policy = { tier: "default", kind: "np", name: "deny-db", namespace: "customer-b" };
    const flows = [
      flow(web1, db, { policy, lastSeen: "2026-04-19T04:52:00.000Z" }),
      flow(web2, db, { lastSeen: "2026-04-19T04:59:00.000Z" }),
    ];
    expect(alertCandidates(flows, {})[0]?.policy).toEqual(policy);
  });

  it("ignores flows that are not internal", () => {
    expect(alertCandidates([flow(external("203.0.113.9"), db, { internal: false })], {})).toEqual([]);
  });

  it("conserves hits: the candidates count every packet of every internal flow once", () => {
    const endpoints = [web1, web2, db, unknown("192.168.7.7")];
    const arbitraryFlow = fc
      .record({
        src: fc.constantFrom(...endpoints),
        dst: fc.constantFrom(...endpoints),
        port: fc.constantFrom(53, 443, 8012, null),
        internal: fc.boolean(),
        packets: fc.integer({ min: 1, max: 1000 }),
      })
      .map((f) => flow(f.src, f.dst, { dstPort: f.port, internal: f.internal, packets: f.packets }));
    fc.assert(
      fc.property(fc.array(arbitraryFlow, { maxLength: 40 }), (flows) => {
        const candidates = alertCandidates(flows, {});
        const expected = flows.filter((f) => f.internal).reduce((n, f) => n + f.packets, 0);
        expect(candidates.reduce((n, c) => n + c.hits, 0)).toBe(expected);
        const keys = candidates.map((c) => JSON.stringify(c.key));
        expect(new Set(keys).size).toBe(keys.length);
      }),
    );
  });
});

describe("external scan detection", () => {
  const scanner = external("203.0.113.9");
  const probes = (ports: number[], dst: Endpoint = db) =>
    ports.map((p) => flow(scanner, dst, { dstPort: p, internal: false, packets: 2 }));

  it("is off unless a threshold is given", () => {
    expect(alertCandidates(probes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), {})).toEqual([]);
  });

  it("raises one low-severity candidate per source at the threshold of distinct ports, not below", () => {
    expect(alertCandidates(probes([22, 23, 80, 443]), { scanThreshold: 5 })).toEqual([]);
    const [scan, ...rest] = alertCandidates(probes([22, 23, 80, 443, 8080]), { scanThreshold: 5 });
    expect(rest).toEqual([]);
    expect(scan).toMatchObject({
      key: { cluster: "prod", src: "203.0.113.9", dst: SCAN_DESTINATION, protocol: "*", dstPort: null },
      severity: "low",
      reason: "external-scan",
      hits: 10,
      src: scanner,
    });
  });

  it("also counts distinct destinations on one port, and names the most probed one", () => {
    const other1 = pod("192.168.1.1", "customer-c", "api-1", "api");
    const other2 = pod("192.168.1.2", "customer-d", "api-2", "api");
    const flows = [
      flow(scanner, other1, { internal: false, dstPort: 22 }),
      flow(scanner, other2, { internal: false, dstPort: 22, packets: 9 }),
      flow(scanner, db, { internal: false, dstPort: 22 }),
    ];
    const [scan] = alertCandidates(flows, { scanThreshold: 3 });
    expect(scan?.dst).toEqual(other2);
    expect(scan?.hits).toBe(11);
  });

  it("never treats an internal source as a scanner", () => {
    const flows = [1, 2, 3, 4].map((p) => flow(web1, db, { dstPort: p }));
    const candidates = alertCandidates(flows, { scanThreshold: 2 });
    expect(candidates.map((c) => c.reason)).toEqual(Array(4).fill("internal-denial"));
  });

  it("rejects a threshold that would flag every source", () => {
    expect(() => alertCandidates([], { scanThreshold: 1 })).toThrow(/scanThreshold .* got 1/);
  });
});
