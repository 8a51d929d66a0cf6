import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  alertCandidates,
  alertEndpointKey,
  MANY_SOURCES,
  SCAN_DESTINATION,
} from "../../functions/core/alert-rules.ts";
import type { Endpoint } from "../../functions/core/types.ts";
import { client, coredns, external, flow, pod, unknown } from "./alert-fixtures.ts";

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

  it("counts a port denied over UDP and TCP once, as the internal rule does", () => {
    // A resolver retrying one query over TCP after a truncated UDP answer, on two ports: two ports, one destination.
    const flows = [53, 5353].flatMap((p) =>
      ["UDP", "TCP"].map((protocol) => flow(scanner, db, { internal: false, dstPort: p, protocol })),
    );
    expect(alertCandidates(flows, { scanThreshold: 3 })).toEqual([]);
    const [scan, ...rest] = alertCandidates(flows, { scanThreshold: 2 });
    expect(rest).toEqual([]);
    expect(scan).toMatchObject({ reason: "external-scan", hits: 4 });
  });

  it("never treats an internal source as an external scanner", () => {
    const flows = [1, 2, 3, 4].map((p) => flow(web1, db, { dstPort: p }));
    const candidates = alertCandidates(flows, { scanThreshold: 5 });
    expect(candidates.map((c) => c.reason)).toEqual(Array(4).fill("internal-denial"));
  });

  it("rejects a threshold that would flag every source", () => {
    expect(() => alertCandidates([], { scanThreshold: 1 })).toThrow(/scanThreshold .* got 1/);
  });
});

describe("internal scan detection", () => {
  const api = pod("192.168.30.4", "customer-b", "api-0", "api");
  const probe = (ports: number[], src: Endpoint = web1, dst: Endpoint = db) =>
    ports.map((p) => flow(src, dst, { dstPort: p, packets: p === 5432 ? 7 : 1 }));

  it("makes one high-severity candidate of a source denied on as many ports as the threshold", () => {
    const ports = Array.from({ length: 100 }, (_, i) => 5400 + i);
    const flows = [...probe(ports), ...probe([5432, 5433], web2)];
    const candidates = alertCandidates(flows, { scanThreshold: 20 });
    // Both pods are of one workload, so one source: one candidate for its 102 denials.
    expect(candidates).toHaveLength(1);
    expect(candidates[0]).toMatchObject({
      key: {
        cluster: "prod",
        src: "customer-a/Deployment/web",
        dst: SCAN_DESTINATION,
        protocol: "*",
        dstPort: null,
      },
      severity: "high",
      reason: "internal-scan",
      // 5400–5499 once each but 5432 (7), then 5432 (7) and 5433 (1) from the other pod.
      hits: 99 + 7 + 7 + 1,
      dst: db,
    });
    expect(candidates[0]?.spans).toHaveLength(102);
    // Below the threshold, or with detection off, one candidate per key as before.
    expect(alertCandidates(probe(ports.slice(0, 19)), { scanThreshold: 20 }).map((c) => c.reason)).toEqual(
      Array(19).fill("internal-denial"),
    );
    expect(alertCandidates(probe(ports), {})).toHaveLength(100);
  });

  it("counts distinct destination workloads, not the pods of one workload", () => {
    const dbPods = Array.from({ length: 30 }, (_, i) =>
      pod(`192.168.94.${i + 1}`, "customer-b", `db-${i}`, "db"),
    );
    const fanOut = dbPods.map((d) => flow(web1, d, { dstPort: 5432 }));
    expect(alertCandidates(fanOut, { scanThreshold: 5 }).map((c) => c.reason)).toEqual(["internal-denial"]);
    // Five workloads on one port each: five keys, a scan at a threshold of five.
    const workloads = ["a", "b", "c", "d", "e"].map((w, i) =>
      pod(`192.168.95.${i + 1}`, "customer-c", `${w}-0`, w),
    );
    const sweep = workloads.map((d) => flow(web1, d, { dstPort: 443 }));
    expect(alertCandidates(sweep, { scanThreshold: 5 }).map((c) => c.reason)).toEqual(["internal-scan"]);
  });

  it("names the destination with the most denials, not the one of the most-hit port", () => {
    // Forty ports of db once each, and three DNS retries: db takes 40 denials, coredns the most-hit key (3).
    const ports = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const retries = flow(web1, coredns, { protocol: "UDP", dstPort: 53, packets: 3 });
    for (const flows of [
      [...probe(ports), retries],
      [retries, ...probe(ports)],
    ]) {
      const [scan, ...rest] = alertCandidates(flows, { scanThreshold: 10 });
      expect(rest).toEqual([]);
      expect(scan).toMatchObject({ reason: "internal-scan", hits: 43, dst: db });
    }
  });

  it("keeps other sources' denials, in the order of their first flows, the scan where its first denial was", () => {
    const before = flow(api, db, { dstPort: 9000 });
    const scan = probe([1, 2, 3, 4, 5]);
    const after = flow(api, web1, { dstPort: 8080 });
    const candidates = alertCandidates([before, ...scan, after], { scanThreshold: 5 });
    expect(candidates.map((c) => [c.reason, c.key.src, c.key.dst])).toEqual([
      ["internal-denial", "customer-b/Deployment/api", "customer-b/Deployment/db"],
      ["internal-scan", "customer-a/Deployment/web", SCAN_DESTINATION],
      ["internal-denial", "customer-b/Deployment/api", "customer-a/Deployment/web"],
    ]);
  });
});

describe("internal fan-in detection", () => {
  const dns = (i: number, extra = {}) => flow(client(i), coredns, { protocol: "UDP", dstPort: 53, ...extra });

  it("makes one high-severity candidate of a destination denied to as many sources as the threshold", () => {
    const flows = Array.from({ length: 30 }, (_, i) => dns(i, { packets: i === 7 ? 5 : 1 }));
    const candidates = alertCandidates(flows, { scanThreshold: 20 });
    expect(candidates).toHaveLength(1);
    expect(candidates[0]).toMatchObject({
      key: {
        cluster: "prod",
        src: MANY_SOURCES,
        dst: "kube-system/Deployment/coredns",
        protocol: "UDP",
        dstPort: 53,
      },
      severity: "high",
      reason: "internal-fan-in",
      hits: 29 + 5,
      // The example: the most-hit source.
      src: client(7),
      dst: coredns,
    });
    expect(candidates[0]?.spans).toHaveLength(30);
    // Below the threshold, or with detection off, one candidate per source.
    expect(alertCandidates(flows.slice(0, 19), { scanThreshold: 20 }).map((c) => c.reason)).toEqual(
      Array(19).fill("internal-denial"),
    );
    expect(alertCandidates(flows, {})).toHaveLength(30);
  });

  it("counts sources per destination, protocol and port, and leaves a scanner's denials to its scan", () => {
    // Three sources on UDP 53 and two on TCP 53: a fan-in at three, the TCP ones two denials.
    const udp = [0, 1, 2].map((i) => dns(i));
    const tcp = [3, 4].map((i) => dns(i, { protocol: "TCP" }));
    expect(
      alertCandidates([...udp, ...tcp], { scanThreshold: 3 }).map((c) => [c.reason, c.key.protocol]),
    ).toEqual([
      ["internal-fan-in", "UDP"],
      ["internal-denial", "TCP"],
      ["internal-denial", "TCP"],
    ]);
    // A source scanning (three ports of coredns) is one scan; with it, coredns:53 has two other sources only.
    const scanner = [53, 54, 55].map((port) => flow(client(9), coredns, { protocol: "UDP", dstPort: port }));
    const candidates = alertCandidates([...scanner, dns(0), dns(1)], { scanThreshold: 3 });
    expect(candidates.map((c) => [c.reason, c.key.src])).toEqual([
      ["internal-scan", "team-9/Deployment/svc9"],
      ["internal-denial", "team-0/Deployment/svc0"],
      ["internal-denial", "team-1/Deployment/svc1"],
    ]);
  });

  it("stands where its first denial was, among the other candidates", () => {
    const before = flow(web1, db, { dstPort: 5432 });
    const after = flow(web2, db, { dstPort: 9000 });
    const candidates = alertCandidates([before, dns(0), dns(1), dns(2), after], { scanThreshold: 3 });
    expect(candidates.map((c) => c.reason)).toEqual([
      "internal-denial",
      "internal-fan-in",
      "internal-denial",
    ]);
  });
});

describe("the policy an alert names", () => {
  const policy = (name: string | null) => ({ tier: "default", kind: "gnp", name, namespace: null });

  it("is the named policy that denied the most packets, whatever the latest line named", () => {
    const flows = [
      flow(web1, db, { policy: policy("deny-db"), packets: 3, lastSeen: "2026-04-19T04:52:11.000Z" }),
      flow(web1, db, { policy: policy("db-only"), packets: 2, lastSeen: "2026-04-19T04:52:12.000Z" }),
      // The latest, its prefix cut short by the kernel: a kind, no name.
      flow(web1, db, { policy: policy(null), packets: 9, lastSeen: "2026-04-19T04:52:19.000Z" }),
      flow(web1, db, { policy: null, packets: 1 }),
    ];
    const [only] = alertCandidates(flows, {});
    expect(only?.policy).toEqual(policy("deny-db"));
    expect(alertCandidates(flows.slice(2), {})[0]?.policy).toEqual(policy(null));
    expect(alertCandidates(flows.slice(3), {})[0]?.policy).toBeNull();
  });
});
