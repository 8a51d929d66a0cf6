// The internal alert rules counting across payloads (talliedAlertCandidates) with the tally's reference model: on a
// fresh tally they are the one-payload rules, every hit is in exactly one candidate, and what they ask the tally.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertCandidates, talliedAlertCandidates } from "../../functions/core/alert-rules.ts";
import { MAX_TALLY_CAP } from "../../functions/core/ports.ts";
import type { AlertCandidate, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { TallyModel } from "../support/tally-model.ts";
import { byKey, client, coredns, flow, pod } from "./alert-fixtures.ts";

const WINDOW = 15 * 60_000;
const srcs = Array.from({ length: 6 }, (_, i) => client(i));
const dsts = [coredns, pod("192.168.0.20", "kube-system", "metrics-0", "metrics")];
const flowArb = fc
  .record({
    s: fc.integer({ min: 0, max: 5 }),
    d: fc.integer({ min: 0, max: 1 }),
    port: fc.constantFrom(53, 54, 9090),
    protocol: fc.constantFrom("UDP", "TCP"),
    packets: fc.integer({ min: 1, max: 3 }),
    minute: fc.integer({ min: 0, max: 40 }),
  })
  .map((s) =>
    flow(srcs[s.s] as Endpoint, dsts[s.d] as Endpoint, {
      dstPort: s.port,
      protocol: s.protocol,
      packets: s.packets,
      lastSeen: new Date(Date.parse("2026-04-19T04:00:00.000Z") + s.minute * 60_000).toISOString(),
    }),
  );
const hits = (cs: readonly AlertCandidate[]) => cs.reduce((n, c) => n + c.hits, 0);
const packets = (fs: readonly FlowRecord[]) => fs.reduce((n, f) => n + f.packets, 0);

describe("talliedAlertCandidates", () => {
  it("on a fresh tally, a payload's candidates are alertCandidates' (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(flowArb, { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 2, max: 5 }),
        async (flows, threshold) => {
          const tallied = await talliedAlertCandidates(
            flows,
            { scanThreshold: threshold },
            new TallyModel(),
            WINDOW,
          );
          expect(byKey(tallied)).toEqual(byKey(alertCandidates(flows, { scanThreshold: threshold })));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("over a run of payloads, each payload's hits are in exactly one of its candidates (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(flowArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 2, max: 4 }),
        async (payloads, threshold) => {
          const tally = new TallyModel();
          for (const flows of payloads) {
            const cs = await talliedAlertCandidates(flows, { scanThreshold: threshold }, tally, WINDOW);
            expect(hits(cs)).toBe(packets(flows));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a source the tally makes a scanner leaves a fan-in it was in locally: the scan wins, as in one payload", async () => {
    // Threshold 2. svc1 was denied on coredns:53 earlier; now it and svc2 are denied on metrics:9090, which alone
    // would be a fan-in of two. With the earlier denial svc1 reaches two destinations: a scanner, whose denials
    // are its scan, and metrics keeps one source (svc2). coredns now has svc0 and the earlier svc1: a fan-in.
    const metrics = dsts[1] as Endpoint;
    const tally = new TallyModel();
    const earlier = [flow(client(1), coredns, { protocol: "UDP", dstPort: 53 })];
    await talliedAlertCandidates(earlier, { scanThreshold: 2 }, tally, WINDOW);
    const now = [
      flow(client(2), metrics, { dstPort: 9090 }),
      flow(client(1), metrics, { dstPort: 9090 }),
      flow(client(0), coredns, { protocol: "UDP", dstPort: 53 }),
    ];
    expect(alertCandidates(now, { scanThreshold: 2 }).map((c) => c.reason)).toEqual([
      "internal-fan-in",
      "internal-denial",
    ]);
    const tallied = await talliedAlertCandidates(now, { scanThreshold: 2 }, tally, WINDOW);
    expect(tallied.map((c) => [c.reason, c.key.src, c.key.dst])).toEqual([
      ["internal-denial", "team-2/Deployment/svc2", "kube-system/Deployment/metrics"],
      ["internal-scan", "team-1/Deployment/svc1", "*scan*"],
      ["internal-fan-in", "*many*", "kube-system/Deployment/coredns"],
    ]);
  });

  it("asks the tally per source (destinations and ports) and per destination of non-scanning sources", async () => {
    const tally = new TallyModel();
    const flows = [
      flow(client(0), coredns, { protocol: "UDP", dstPort: 53 }),
      flow(client(0), coredns, { protocol: "TCP", dstPort: 53 }),
      flow(client(1), coredns, { protocol: "UDP", dstPort: 53, lastSeen: "2026-04-19T04:55:00.000Z" }),
    ];
    await talliedAlertCandidates(flows, { scanThreshold: 3 }, tally, WINDOW);
    expect(
      tally.asked.map((e) => [e.subject, [...e.members].sort(), new Date(e.atMs).toISOString()]),
    ).toEqual([
      // A port denied over UDP and TCP is one member of the source's reach.
      [
        "source\nprod\nteam-0/Deployment/svc0",
        ["kube-system/Deployment/coredns\n53"],
        "2026-04-19T04:52:19.000Z",
      ],
      [
        "source\nprod\nteam-1/Deployment/svc1",
        ["kube-system/Deployment/coredns\n53"],
        "2026-04-19T04:55:00.000Z",
      ],
      // The destination's subject holds its protocol and port; its members are its sources.
      [
        "destination\nprod\nkube-system/Deployment/coredns\nUDP\n53",
        ["team-0/Deployment/svc0", "team-1/Deployment/svc1"],
        "2026-04-19T04:55:00.000Z",
      ],
      [
        "destination\nprod\nkube-system/Deployment/coredns\nTCP\n53",
        ["team-0/Deployment/svc0"],
        "2026-04-19T04:52:19.000Z",
      ],
    ]);
  });

  it("is alertCandidates without asking the tally when there is no threshold or one above MAX_TALLY_CAP", async () => {
    const tally = new TallyModel();
    const flows = [flow(client(0), coredns), flow(client(1), coredns)];
    for (const scanThreshold of [undefined, MAX_TALLY_CAP + 1]) {
      expect(await talliedAlertCandidates(flows, { scanThreshold }, tally, WINDOW)).toEqual(
        alertCandidates(flows, { scanThreshold }),
      );
    }
    expect(tally.asked).toEqual([]);
    await expect(talliedAlertCandidates(flows, { scanThreshold: 1 }, tally, WINDOW)).rejects.toThrow(
      /scanThreshold/,
    );
  });
});
