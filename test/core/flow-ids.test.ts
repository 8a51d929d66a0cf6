// Flow ids are stored in DynamoDB: they must not change between versions. These are pinned from the
// implementation that first stored them; any change to how they are computed breaks this test.
import { describe, expect, it } from "vitest";
import { type AttributedPacket, FlowAggregator } from "../../functions/core/aggregate.ts";
import type { Endpoint } from "../../functions/core/types.ts";

const T = Date.UTC(2026, 3, 19, 4, 52, 0);

const pod = (ip: string, namespace: string, name: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace,
  name,
  workload: { kind: "Deployment", name: name.replace(/-[^-]+$/, "") },
  node: "node-a",
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

function packet(over: Partial<AttributedPacket>): AttributedPacket {
  return {
    at: T,
    src: pod("192.168.1.1", "shop", "web-1"),
    dst: pod("192.168.2.2", "db", "pg-0"),
    protocol: "TCP",
    dstPort: 5432,
    direction: "ingress",
    reporter: "node-b",
    internal: true,
    length: 60,
    policy: null,
    tcpFlags: ["SYN"],
    ...over,
  };
}

describe("flow ids", () => {
  it("are the same as the ones already stored", () => {
    const agg = new FlowAggregator("prod", 60);
    agg.add(packet({}));
    agg.add(packet({ at: T + 30_000, length: 40, tcpFlags: ["FIN", "SYN"] }));
    agg.add(packet({ at: T + 61_000, tcpFlags: ["ACK", "SYN"] }));
    agg.add(packet({ dstPort: null, protocol: "ICMP" }));
    agg.add(packet({ src: external("203.0.113.7"), internal: false, dstPort: 22 }));
    agg.add(packet({ policy: { tier: "default", kind: "gnp", namespace: null, name: "deny-all" } }));
    agg.add(
      packet({ policy: { tier: null, kind: "np", namespace: "db", name: "only-web" }, reporter: "node-c" }),
    );
    agg.add(packet({ dst: { ...pod("192.168.2.2", "db", "pg-1") } }));
    agg.add(
      packet({ src: { ...external("2001:db8::1"), kind: "unknown", resolved: false }, protocol: "UDP" }),
    );
    const ids = agg
      .flows()
      .map((f) => `${f.bucket} ${f.id} ${f.packets} ${f.tcpFlags.join(",")}`)
      .sort();
    expect(ids).toMatchInlineSnapshot(`
      [
        "2026-04-19T04:52:00.000Z 87NGuQjp21AJcAGNw6XHcf 1 SYN",
        "2026-04-19T04:52:00.000Z F9xQ1gKXadT2s1Ad5SMzTK 1 SYN",
        "2026-04-19T04:52:00.000Z T0kCwA7uRV7bT_BqEv-dwx 1 SYN",
        "2026-04-19T04:52:00.000Z hIZdqEuoPtREk1S6i0oqpV 1 SYN",
        "2026-04-19T04:52:00.000Z hRVYiexR3QkDfyLBM7oxLM 1 SYN",
        "2026-04-19T04:52:00.000Z m9vqyWZZO-VSseN3eq-MDN 2 FIN,SYN",
        "2026-04-19T04:52:00.000Z p3NcylRsYwSuLOydZC2v4E 1 SYN",
        "2026-04-19T04:53:00.000Z DfdPQc1eKd3_OcuUxzhXOR 1 ACK,SYN",
      ]
    `);
  });

  it("print first and last seen as Date#toISOString does", () => {
    const times = [
      T,
      T + 0.7,
      T + 59_999.9,
      -1.5,
      -1_000,
      0,
      1_000.25,
      8.64e15 - 1,
      -8.64e15,
      951_782_400_123,
    ];
    for (const at of times) {
      const agg = new FlowAggregator("prod", 60);
      agg.add(packet({ at }));
      const [flow] = agg.flows();
      expect([flow?.firstSeen, flow?.lastSeen]).toEqual([
        new Date(at).toISOString(),
        new Date(at).toISOString(),
      ]);
    }
    const agg = new FlowAggregator("prod", 60);
    agg.add(packet({ at: T + 5_000.3 }));
    agg.add(packet({ at: T + 0.7 }));
    const [flow] = agg.flows();
    expect([flow?.firstSeen, flow?.lastSeen]).toEqual([
      "2026-04-19T04:52:00.000Z",
      "2026-04-19T04:52:05.000Z",
    ]);
  });
});
