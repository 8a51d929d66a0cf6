// A scan or fan-in alert stands for many workloads: it carries the namespaces of all the ends of the flows that
// opened it, through the rules, the store (dynalite) and SNS (fauxqs), so that a subscriber filtering on the
// namespace of one of its sources (not the example's) receives it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { alertAttributes } from "../../functions/core/alert-message.ts";
import { alertCandidates } from "../../functions/core/alert-rules.ts";
import { MAX_ALERT_NAMESPACES } from "../../functions/core/types.ts";
import { client, coredns, external, flow, pod } from "../core/alert-fixtures.ts";
import { sampleAlert } from "../support/alerts.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import {
  createTopic,
  drainQueue,
  envelopeOf,
  type LocalSns,
  startLocalSns,
  subscribeQueue,
} from "../support/fauxqs.ts";

let ts: TestStore;
let local: LocalSns;
beforeAll(async () => {
  [ts, local] = await Promise.all([startTestStore(), startLocalSns()]);
});
afterAll(async () => {
  await Promise.all([ts?.close(), local?.close()]);
});

// Thirty clients (namespaces team-0 … team-29) denied on coredns; team-3's is the most hit, so the example.
const dnsOutage = () =>
  Array.from({ length: 30 }, (_, i) =>
    flow(client(i), coredns, { protocol: "UDP", dstPort: 53, packets: i === 3 ? 5 : 1 }),
  );

describe("alert namespaces", () => {
  it("a fan-in names every source's namespace, a scan every destination's, an ordinary alert none", () => {
    const [fanIn] = alertCandidates(dnsOutage(), { scanThreshold: 5 });
    expect(fanIn?.reason).toBe("internal-fan-in");
    expect(fanIn?.src.namespace).toBe("team-3");
    expect(fanIn?.namespaces).toEqual({
      src: Array.from({ length: 30 }, (_, i) => `team-${i}`).sort(),
      dst: ["kube-system"],
    });
    const scanner = pod("192.168.9.9", "tools", "probe-0", "probe");
    const targets = [0, 1, 2].map((i) => pod(`192.168.60.${i}`, `shop-${i}`, `api${i}-0`, `api${i}`));
    const [scan] = alertCandidates(
      [...targets.map((t) => flow(scanner, t)), flow(scanner, external("203.0.113.5"), { internal: false })],
      { scanThreshold: 3 },
    );
    expect([scan?.reason, scan?.namespaces]).toEqual([
      "internal-scan",
      { src: ["tools"], dst: ["shop-0", "shop-1", "shop-2"] },
    ]);
    // An external scan's source has no namespace: null, as "-" in the attributes.
    const prober = external("198.51.100.7");
    const [outside] = alertCandidates(
      targets.map((t, i) => flow(prober, t, { internal: false, dstPort: 22 + i })),
      { scanThreshold: 3 },
    );
    expect([outside?.reason, outside?.namespaces]).toEqual([
      "external-scan",
      { src: [null], dst: ["shop-0", "shop-1", "shop-2"] },
    ]);
    const [one] = alertCandidates([flow(client(0), coredns)], { scanThreshold: 5 });
    expect(one?.namespaces).toBeUndefined();
  });

  it("keeps at most MAX_ALERT_NAMESPACES, the example's among them", () => {
    const flows = Array.from({ length: MAX_ALERT_NAMESPACES + 20 }, (_, i) =>
      flow(
        pod(`192.168.${40 + (i >> 8)}.${i & 255}`, `ns-${String(i).padStart(3, "0")}`, `w${i}-0`, `w${i}`),
        coredns,
        {
          packets: i === MAX_ALERT_NAMESPACES + 10 ? 9 : 1,
        },
      ),
    );
    const [fanIn] = alertCandidates(flows, { scanThreshold: 5 });
    expect(fanIn?.src.namespace).toBe("ns-110");
    expect(fanIn?.namespaces?.src).toHaveLength(MAX_ALERT_NAMESPACES);
    expect(fanIn?.namespaces?.src).toContain("ns-110");
  });

  it("are stored with the alert, merged for one key, and become String.Array attributes a filter policy matches", async () => {
    const store = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
    const [fanIn] = alertCandidates(dnsOutage(), { scanThreshold: 5 });
    if (fanIn === undefined) throw new Error("no fan-in");
    // The same key twice in one payload (two rules' candidates): one contribution, the namespaces of both.
    const other = { ...fanIn, namespaces: { src: ["team-99"], dst: ["kube-system"] } };
    const { alerts } = await store.applyAlerts([fanIn, other], "payload-1", { windowMs: 15 * 60_000 });
    expect(alerts).toHaveLength(1);
    const stored = alerts[0];
    if (stored === undefined) throw new Error("no alert");
    expect(stored.namespaces?.src).toContain("team-29");
    expect(stored.namespaces?.src).toContain("team-99");
    expect(stored.namespaces?.src).toContain("team-3");
    const listed = await store.queryAlerts({
      cluster: "prod",
      since: "2026-04-19T04:00:00.000Z",
      until: "2026-04-19T06:00:00.000Z",
    });
    expect(listed.items[0]?.namespaces).toEqual(stored.namespaces);

    expect(alertAttributes(stored).srcNamespace?.DataType).toBe("String.Array");
    expect(JSON.parse(alertAttributes(stored).dstNamespace?.StringValue ?? "")).toEqual(["kube-system"]);
    // An ordinary alert keeps its single String.
    expect(alertAttributes(sampleAlert()).srcNamespace).toEqual({
      DataType: "String",
      StringValue: "customer-a",
    });

    // SNS matches a filter policy's value against each element of a String.Array attribute (AWS's "example filter
    // policies": customer_interests). fauxqs compares the attribute's text whole, so the test reads what a
    // subscriber receives rather than filtering.
    const topicArn = await createTopic(local, "alert-namespaces");
    const queueUrl = await subscribeQueue(local, topicArn, "all");
    await new SnsAlertSink({ client: local.sns, topicArn }).publishAlert(stored);
    const [received] = await drainQueue(local, queueUrl);
    const attribute =
      received === undefined ? undefined : envelopeOf(received).MessageAttributes?.srcNamespace;
    expect(attribute?.Type).toBe("String.Array");
    expect(JSON.parse(attribute?.Value ?? "[]")).toContain("team-7");
  });
});
