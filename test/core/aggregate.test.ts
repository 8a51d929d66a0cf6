import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AttributedPacket, FlowAggregator } from "../../functions/core/aggregate.ts";
import type { Endpoint } from "../../functions/core/types.ts";

const pod = (ip: string, ns: string, name: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace: ns,
  name,
  workload: { kind: "Deployment", name: name.split("-")[0] as string },
  node: "node-a",
  resolved: true,
});

const base = (at: number, overrides: Partial<AttributedPacket> = {}): AttributedPacket => ({
  at,
  src: pod("192.168.1.1", "a", "web-1"),
  dst: pod("192.168.2.2", "b", "db-0"),
  protocol: "TCP",
  dstPort: 5432,
  direction: "ingress",
  reporter: "node-b",
  internal: true,
  length: 60,
  policy: null,
  tcpFlags: ["SYN"],
  ...overrides,
});

const T = Date.parse("2026-04-19T04:52:00Z");

describe("FlowAggregator", () => {
  it("folds the packets of one key and bucket into one flow", () => {
    const agg = new FlowAggregator("prod", 60);
    agg.add(base(T + 5_000));
    agg.add(base(T + 1_000, { length: 40, tcpFlags: ["ACK", "SYN"] }));
    agg.add(base(T + 59_999));
    const [flow, ...rest] = agg.flows();
    expect(rest).toHaveLength(0);
    expect(flow).toMatchObject({
      cluster: "prod",
      bucket: "2026-04-19T04:52:00.000Z",
      packets: 3,
      bytes: 160,
      firstSeen: "2026-04-19T04:52:01.000Z",
      lastSeen: "2026-04-19T04:52:59.999Z",
      tcpFlags: ["ACK", "SYN"],
    });
  });

  it("orders flows by bucket, then as first seen", () => {
    const agg = new FlowAggregator("prod", 60);
    agg.add(base(T + 61_000, { dstPort: 1 }));
    agg.add(base(T + 5_000, { dstPort: 2 }));
    agg.add(base(T + 125_000, { dstPort: 3 }));
    agg.add(base(T + 1_000, { dstPort: 4 }));
    agg.add(base(T + 62_000, { dstPort: 5 }));
    agg.add(base(T + 2_000, { dstPort: 2 }));
    expect(agg.flows().map((f) => [f.bucket.slice(11, 16), f.dstPort])).toEqual([
      ["04:52", 2],
      ["04:52", 4],
      ["04:53", 1],
      ["04:53", 5],
      ["04:54", 3],
    ]);
  });

  it("splits by bucket, port, protocol, reporter, policy and by the holder of a reused IP", () => {
    const agg = new FlowAggregator("prod", 60);
    agg.add(base(T));
    agg.add(base(T + 60_000));
    agg.add(base(T, { dstPort: 5433 }));
    agg.add(base(T, { protocol: "UDP" }));
    agg.add(base(T, { reporter: "node-c" }));
    agg.add(base(T, { policy: { tier: "default", kind: "gnp", name: "deny", namespace: null } }));
    agg.add(base(T, { src: pod("192.168.1.1", "a", "web-2") }));
    expect(agg.flows()).toHaveLength(7);
    expect(new Set(agg.flows().map((f) => f.id)).size).toBe(7);
  });

  it("gives the same id to the same key in another run (ids are stable across invocations)", () => {
    const a = new FlowAggregator("prod", 60);
    const b = new FlowAggregator("prod", 60);
    a.add(base(T));
    b.add(base(T + 30_000, { length: 99 }));
    expect(a.flows()[0]?.id).toBe(b.flows()[0]?.id);
  });

  it("conserves packets and bytes for any input order", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dt: fc.integer({ min: 0, max: 600_000 }),
            port: fc.integer({ min: 1, max: 4 }),
            len: fc.integer({ min: 20, max: 1500 }),
          }),
          {
            minLength: 1,
            maxLength: 200,
          },
        ),
        (packets) => {
          const agg = new FlowAggregator("prod", 60);
          for (const p of packets) agg.add(base(T + p.dt, { dstPort: p.port, length: p.len }));
          const flows = agg.flows();
          expect(flows.reduce((n, f) => n + f.packets, 0)).toBe(packets.length);
          expect(flows.reduce((n, f) => n + f.bytes, 0)).toBe(packets.reduce((n, p) => n + p.len, 0));
          for (const f of flows) {
            expect(f.firstSeen <= f.lastSeen).toBe(true);
            expect(f.bucket <= f.firstSeen).toBe(true);
          }
        },
      ),
    );
  });

  it("keeps every flag seen, sorted, and rejects a name that is not a TCP flag", () => {
    const agg = new FlowAggregator("prod", 60);
    agg.add(base(T, { tcpFlags: ["SYN"] }));
    agg.add(base(T, { tcpFlags: ["RST", "ACK"] }));
    agg.add(base(T, { tcpFlags: [] }));
    expect(agg.flows()[0]?.tcpFlags).toEqual(["ACK", "RST", "SYN"]);
    expect(() => agg.add(base(T, { tcpFlags: ["SYN", "XMAS"] }))).toThrow(RangeError);
  });

  it("refuses endpoints numbered both by add() and by count()'s caller", () => {
    const agg = new FlowAggregator("prod", 60);
    agg.add(base(T));
    const packet = base(T);
    expect(() =>
      agg.count({
        ...packet,
        srcId: 0,
        dstId: 1,
        protocolPort: agg.protocolPortId("TCP", 5432),
        reporter: agg.reporterId("node-b"),
        policy: agg.policyId(null),
        flags: 0,
      }),
    ).toThrow("not both");
  });

  it("rejects a bucket that is not a positive integer", () => {
    expect(() => new FlowAggregator("prod", 0)).toThrow("got 0");
  });
});
