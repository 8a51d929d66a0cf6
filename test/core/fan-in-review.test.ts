// Review of the internal fan-in rule and the commits before it: order freedom, the interplay of scans
// and fan-ins, the alert message of a fan-in (subject, e-mail, attributes, JSON) and the CLI table.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertsTable } from "../../cli/format.ts";
import {
  alertAttributes,
  alertDefaultJson,
  alertEmailText,
  alertSubject,
  MAX_SUBJECT_LENGTH,
  suppressionSummary,
} from "../../functions/core/alert-message.ts";
import { alertCandidates, MANY_SOURCES } from "../../functions/core/alert-rules.ts";
import type { AlertCandidate, AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { sampleAlert } from "../support/alerts.ts";
import { byKey, client, coredns, flow, pod } from "./alert-fixtures.ts";

describe("fan-in order freedom", () => {
  it("the same flows in any order make the same candidates and examples (property)", () => {
    const srcs = Array.from({ length: 6 }, (_, i) => client(i));
    const dsts = [coredns, pod("192.168.0.20", "kube-system", "metrics-0", "metrics")];
    const flowArb = fc.record({
      s: fc.integer({ min: 0, max: 5 }),
      d: fc.integer({ min: 0, max: 1 }),
      port: fc.constantFrom(53, 54, 9090),
      protocol: fc.constantFrom("UDP", "TCP"),
      packets: fc.integer({ min: 1, max: 3 }),
      last: fc.integer({ min: 10, max: 12 }),
      reporter: fc.constantFrom("node-a", "node-b"),
      direction: fc.constantFrom("ingress" as const, "egress" as const),
      policy: fc.constantFrom(null, "deny-a", "deny-b"),
    });
    fc.assert(
      fc.property(
        fc.array(flowArb, { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 2, max: 4 }),
        fc.infiniteStream(fc.nat()),
        (specs, threshold, seeds) => {
          const flows: FlowRecord[] = specs.map((s) =>
            flow(srcs[s.s] as Endpoint, dsts[s.d] as Endpoint, {
              dstPort: s.port,
              protocol: s.protocol,
              packets: s.packets,
              lastSeen: `2026-04-19T04:52:${s.last}.000Z`,
              reporter: s.reporter,
              direction: s.direction,
              policy:
                s.policy === null ? null : { tier: "default", kind: "gnp", name: s.policy, namespace: null },
            }),
          );
          const shuffled = flows
            .map((f) => [seeds.next().value as number, f] as const)
            .sort(([a], [b]) => a - b)
            .map(([, f]) => f);
          const a = alertCandidates(flows, { scanThreshold: threshold });
          const b = alertCandidates(shuffled, { scanThreshold: threshold });
          expect(byKey(b)).toEqual(byKey(a));
          // Every flow's hits are in exactly one candidate.
          const hits = (cs: AlertCandidate[]) => cs.reduce((n, c) => n + c.hits, 0);
          expect(hits(a)).toBe(flows.reduce((n, f) => n + f.packets, 0));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("fan-in and scans: the one threshold", () => {
  it("at threshold 2, a DNS outage where each client retries over TCP is two fan-ins, not a scan per client", () => {
    // Thirty clients each denied on coredns UDP/53 and TCP/53 (the resolver's TCP fallback): two alert keys per
    // client, but one destination and port, so no client is a scanner (the review found each one was).
    const flows = Array.from({ length: 30 }, (_, i) => [
      flow(client(i), coredns, { protocol: "UDP", dstPort: 53 }),
      flow(client(i), coredns, { protocol: "TCP", dstPort: 53 }),
    ]).flat();
    expect(alertCandidates(flows, { scanThreshold: 2 }).map((c) => [c.reason, c.key.protocol])).toEqual([
      ["internal-fan-in", "UDP"],
      ["internal-fan-in", "TCP"],
    ]);
    // At 3, the same outage is two fan-ins (one per protocol).
    expect(alertCandidates(flows, { scanThreshold: 3 }).map((c) => [c.reason, c.key.protocol])).toEqual([
      ["internal-fan-in", "UDP"],
      ["internal-fan-in", "TCP"],
    ]);
  });

  it("behaviour: a fan-in counts workloads, not pods: thirty pods of one Deployment are one source", () => {
    const flows = Array.from({ length: 30 }, (_, i) =>
      flow(pod(`192.168.41.${i + 1}`, "team-x", `api-${i}`, "api"), coredns, {
        protocol: "UDP",
        dstPort: 53,
      }),
    );
    const cs = alertCandidates(flows, { scanThreshold: 3 });
    expect(cs.map((c) => c.reason)).toEqual(["internal-denial"]);
  });

  it("keys a fan-in per cluster: the same destination name in two clusters never adds up", () => {
    const flows = [0, 1, 2].flatMap((i) => [
      flow(client(i), coredns, { protocol: "UDP", dstPort: 53, cluster: i < 2 ? "prod" : "stage" }),
    ]);
    expect(alertCandidates(flows, { scanThreshold: 3 }).map((c) => c.reason)).toEqual(
      Array(3).fill("internal-denial"),
    );
  });
});

// A fan-in alert as the store hands it out.
const fanIn = (extra: Partial<AlertRecord> = {}): AlertRecord =>
  sampleAlert({
    id: "al_fanin",
    key: {
      cluster: "prod",
      src: MANY_SOURCES,
      dst: "kube-system/Deployment/coredns",
      protocol: "UDP",
      dstPort: 53,
    },
    src: client(7),
    dst: coredns,
    protocol: "UDP",
    dstPort: 53,
    reason: "internal-fan-in",
    ...extra,
  });

describe("the fan-in message", () => {
  it("fits its subject under the SNS limit whatever the names", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 200 }), (name, cluster) => {
        const a = fanIn({
          cluster,
          dst: { ...coredns, namespace: name, workload: { kind: "Deployment", name } },
        });
        const subject = alertSubject(a);
        expect(subject.length).toBeLessThanOrEqual(MAX_SUBJECT_LENGTH);
        expect(subject).not.toMatch(/[\p{Cc}\p{Zl}\p{Zp}]/u);
      }),
    );
    expect(alertSubject(fanIn())).toBe("Calico denied many sources → kube-system/coredns:53/UDP (prod)");
  });

  it("e-mail: lists every source of the destination, with the store, from two windows before the alert's span", () => {
    const text = alertEmailText(fanIn(), { storeArgs: ["--api", "https://x.example/v1/"] });
    // Its sources may have been counted two alert windows before its first hit or after its last (talliedAlertCandidates).
    expect(text).toContain(
      "calico-flows flows --api https://x.example/v1/ --cluster prod --namespace kube-system --workload Deployment/coredns --group --since 2026-04-19T04:22:19Z --until 2026-04-19T05:23:02.000Z",
    );
    expect(text).toContain("reason internal-fan-in");
  });

  it("behaviour: SNS attributes name the example source's namespace only (documented limitation)", () => {
    const attrs = alertAttributes(fanIn());
    expect(attrs.srcNamespace?.StringValue).toBe("team-7");
    expect(attrs.reason?.StringValue).toBe("internal-fan-in");
    expect(attrs.dstPort?.StringValue).toBe("53");
    const json = JSON.parse(alertDefaultJson(fanIn()));
    expect(json.key.src).toBe(MANY_SOURCES);
    expect(json.reason).toBe("internal-fan-in");
    // Summaries list it by its subject.
    expect(suppressionSummary(1, "prod", [fanIn()]).email).toContain("Calico denied many sources →");
  });

  it("CLI table: the source column says many sources, the destination is the destination", () => {
    const out = alertsTable([fanIn()]);
    expect(out).toContain("many sources, most hit");
    expect(out).not.toContain("scan, most hit");
    expect(out).toContain("al_fanin");
    // With the namespaces it stands for: how many, when more than one (an end in none is not counted).
    const wide = fanIn({ namespaces: { src: [null, "team-1", "team-2", "team-3"], dst: ["kube-system"] } });
    expect(alertsTable([wide])).toContain("many sources in 3 namespaces, most hit");
    expect(alertsTable([fanIn({ namespaces: { src: ["team-1"], dst: ["kube-system"] } })])).toContain(
      "many sources, most hit",
    );
    const scan = sampleAlert({
      reason: "internal-scan",
      namespaces: { src: ["customer-a"], dst: ["b", "c"] },
    });
    expect(alertsTable([scan])).toContain("scan in 2 namespaces, most hit");
  });
});

describe("fan-in as deliveries arrive: one delivery is one node's log stream", () => {
  // CloudWatch Logs hands a subscription one log stream per payload, and the stream is the node
  // (subscription-payload.ts: events.withNode(delivery.logStream)); alertCandidates sees one payload's flows.
  // An egress denial is logged by the source's node: a default-deny egress policy that forgot DNS puts each
  // client's denials in its own node's deliveries.
  const nodes = Array.from({ length: 10 }, (_, n) => `ip-192-168-1-${n}`);
  const clientOn = (i: number) =>
    pod(`192.168.50.${i + 1}`, `team-${i}`, `svc${i}-0`, `svc${i}`, nodes[i % 10]);
  const egressDns = (i: number) =>
    flow(clientOn(i), coredns, {
      protocol: "UDP",
      dstPort: 53,
      direction: "egress",
      reporter: nodes[i % 10] as string,
    });

  // The ingest function counts them in the store's denial tallies instead (test/ingest/tallied-alerts.test.ts).
  it("one payload at a time, a DNS outage by an egress deny on ten nodes is an alert per source", () => {
    const flows = Array.from({ length: 30 }, (_, i) => egressDns(i));
    // One payload holding every flow (what `replay` of one file and the unit tests see): one fan-in.
    expect(alertCandidates(flows, { scanThreshold: 5 }).map((c) => c.reason)).toEqual(["internal-fan-in"]);
    // As the ingest function sees them: one payload per node, three sources each, below the threshold of five.
    const byNode = new Map<string, FlowRecord[]>();
    for (const f of flows) byNode.set(f.reporter, [...(byNode.get(f.reporter) ?? []), f]);
    const reasons = [...byNode.values()].flatMap((own) =>
      alertCandidates(own, { scanThreshold: 5 }).map((c) => c.reason),
    );
    expect(reasons).toEqual(Array(30).fill("internal-denial"));
  });

  it("behaviour: an ingress deny is logged by the destination's node, so its deliveries hold every source", () => {
    const flows = Array.from({ length: 30 }, (_, i) =>
      flow(clientOn(i), coredns, { protocol: "UDP", dstPort: 53, direction: "ingress", reporter: "node-a" }),
    );
    expect(alertCandidates(flows, { scanThreshold: 5 }).map((c) => c.reason)).toEqual(["internal-fan-in"]);
  });
});

describe("API_URL (the ingest function's --api for the e-mails)", () => {
  const base = { CLUSTER_NAME: "prod", TABLE_NAME: "t", INTERNAL_CIDRS: "10.0.0.0/8" };
  it("takes the stack's https URL and refuses other schemes", async () => {
    const { loadIngestConfig } = await import("../../functions/ingest/config.ts");
    const url = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/";
    expect(loadIngestConfig({ ...base, API_URL: url }).API_URL).toBe(url);
    expect(() => loadIngestConfig({ ...base, API_URL: "ftp://x.example/" })).toThrow();
    expect(() => loadIngestConfig({ ...base, API_URL: "not a url" })).toThrow();
  });
});
