// Review of the internal-scan rule and the policy an alert names (functions/core/alert-rules.ts): the same flows
// handed in another order must make the same candidates. The external-scan rule breaks its ties by an order-free
// rule (the smaller destination IP); the internal-scan example and the policy choice broke theirs by whichever
// flow came first (found by this review), so an alert's example destination, reporter, direction and named
// policy followed the order of the lines in a payload.
import { describe, expect, it } from "vitest";
import { alertCandidates } from "../../functions/core/alert-rules.ts";
import type { AlertCandidate, PolicyRef } from "../../functions/core/types.ts";
import { flow, pod } from "./alert-fixtures.ts";

/** What a candidate says, less the order-dependent `spans` order (the store sorts them). */
function content(c: AlertCandidate) {
  const spans = [...(c.spans ?? [])].sort((a, b) =>
    `${a.firstSeen}${a.lastSeen}${a.hits}` < `${b.firstSeen}${b.lastSeen}${b.hits}` ? -1 : 1,
  );
  return { ...c, spans };
}

const byKey = (cs: AlertCandidate[]) =>
  [...cs].map(content).sort((a, b) => (JSON.stringify(a.key) < JSON.stringify(b.key) ? -1 : 1));

const web = pod("192.168.22.247", "customer-a", "web-0", "web", "node-a");
const gnp = (name: string | null): PolicyRef => ({ tier: "default", kind: "gnp", name, namespace: null });

describe("internal scan: the same flows in another order", () => {
  it("give the same example when two destinations tie for the most hits", () => {
    // A pod probes five ports on each of two workloads, on two nodes: ten keys, one scan at a threshold of 10.
    // Both workloads take 5 packets: a tie for "the most-hit key" (one packet per key, so every key ties).
    const db = pod("192.168.94.122", "customer-b", "db-0", "db", "node-c");
    const cache = pod("192.168.95.7", "customer-c", "cache-0", "cache", "node-d");
    const toDb = [1, 2, 3, 4, 5].map((p) =>
      flow(web, db, { dstPort: 5400 + p, reporter: "node-c", policy: gnp("deny-db") }),
    );
    const toCache = [1, 2, 3, 4, 5].map((p) =>
      flow(web, cache, { dstPort: 6300 + p, reporter: "node-d", policy: gnp("deny-cache") }),
    );
    const one = alertCandidates([...toDb, ...toCache], { scanThreshold: 10 });
    const other = alertCandidates([...toCache, ...toDb], { scanThreshold: 10 });
    expect(one).toHaveLength(1);
    expect(one[0]?.reason).toBe("internal-scan");
    // The same key, hits and spans either way...
    expect(other[0]?.key).toEqual(one[0]?.key);
    expect(other[0]?.hits).toBe(one[0]?.hits);
    // ...but the alert must not name another destination, reporting node and policy because the lines came in
    // another order (a differently batched copy of the same lines, a replay): it was db in one, cache in the
    // other.
    expect(byKey(other)).toEqual(byKey(one));
  });
});

describe("the policy an alert names: the same flows in another order", () => {
  it("name the same policy when two named policies tie on packets and neither is the example's", () => {
    const db = pod("192.168.94.122", "customer-b", "db-0", "db", "node-c");
    const a = flow(web, db, { policy: gnp("deny-a"), packets: 2, lastSeen: "2026-04-19T04:52:11.000Z" });
    const b = flow(web, db, { policy: gnp("deny-b"), packets: 2, lastSeen: "2026-04-19T04:52:12.000Z" });
    // The example (the latest flow): its prefix was cut short, a kind and no name.
    const latest = flow(web, db, { policy: gnp(null), packets: 1, lastSeen: "2026-04-19T04:52:19.000Z" });
    const one = alertCandidates([a, b, latest], {});
    const other = alertCandidates([b, a, latest], {});
    expect(one).toHaveLength(1);
    expect(other).toHaveLength(1);
    // It was deny-a one way and deny-b the other: the e-mail's "kubectl get globalnetworkpolicies <name>" step
    // pointed at whichever line came first.
    expect(other[0]?.policy).toEqual(one[0]?.policy);
  });
});
