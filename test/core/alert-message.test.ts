import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  alertAttributes,
  alertDefaultJson,
  alertEmailText,
  alertMessage,
  alertSubject,
  MAX_PUBLISH_BYTES,
  MAX_SUBJECT_LENGTH,
  type OutboundMessage,
  type PanicEvent,
  panicAnnouncement,
  snsPublication,
  suppressionSummary,
} from "../../functions/core/alert-message.ts";
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";
import { db, sampleAlert, web as sampleWeb } from "../support/alerts.ts";

// The sample's source with the organisation label carried into flows.
const web: Endpoint = { ...sampleWeb, labels: { "baseten.co/organization": "true" } };
const bare = (ip: string, kind: Endpoint["kind"] = "unknown", resolved = true): Endpoint => ({
  ip,
  kind,
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved,
});

function alert(extra: Partial<AlertRecord> = {}): AlertRecord {
  return sampleAlert({ src: web, ...extra });
}

const scanAlert = () =>
  alert({
    id: "al_scan",
    key: { cluster: "prod", src: "203.0.113.9", dst: "*scan*", protocol: "*", dstPort: null },
    src: bare("203.0.113.9", "external"),
    protocol: "*",
    dstPort: null,
    severity: "low",
    reason: "external-scan",
  });

const fanInAlert = () =>
  alert({
    id: "al_fanin",
    key: { cluster: "prod", src: "*many*", dst: "customer-b/StatefulSet/db", protocol: "TCP", dstPort: 8012 },
    severity: "high",
    reason: "internal-fan-in",
  });

const internalScanAlert = () =>
  alert({
    id: "al_iscan",
    key: { cluster: "prod", src: "customer-a/Deployment/web", dst: "*scan*", protocol: "*", dstPort: null },
    protocol: "*",
    dstPort: null,
    severity: "high",
    reason: "internal-scan",
  });

describe("alertSubject", () => {
  it("says who was denied talking to whom, where", () => {
    expect(alertSubject(alert())).toBe("Calico denied customer-a/web → customer-b/db:8012/TCP (prod)");
  });

  it("uses IPs for unattributed ends, node names for nodes, and no port for ICMP", () => {
    const node: Endpoint = { ...bare("192.168.0.10", "node"), name: "ip-192-168-0-10" };
    expect(
      alertSubject(alert({ src: bare("192.168.22.247"), dst: bare("192.168.94.122", "unknown", false) })),
    ).toBe("Calico denied 192.168.22.247 → 192.168.94.122:8012/TCP (prod)");
    expect(alertSubject(alert({ src: node, protocol: "ICMP", dstPort: null }))).toBe(
      "Calico denied node/ip-192-168-0-10 → customer-b/db ICMP (prod)",
    );
  });

  it("shortens the longest names first and keeps the port and a short cluster whole", () => {
    const long = "customer-with-a-remarkably-long-organisation-name";
    const subject = alertSubject(
      alert({
        src: { ...web, namespace: long, workload: { kind: "Deployment", name: "frontend-web-server-v2" } },
        dst: { ...db, namespace: `${long}-2`, workload: { kind: "StatefulSet", name: "postgres-primary" } },
      }),
    );
    expect(subject.length).toBeLessThanOrEqual(MAX_SUBJECT_LENGTH);
    expect(subject).toMatch(/^Calico denied customer-.*….*-v2 → customer-.*….*primary:8012\/TCP \(prod\)$/);
  });

  it("is always shorter than 100 characters, on one line, whatever the names", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 200 });
    fc.assert(
      fc.property(
        text,
        text,
        text,
        text,
        fc.option(fc.integer({ min: 0, max: 65535 })),
        (ns, name, cluster, protocol, port) => {
          const src: Endpoint = { ...web, namespace: ns, workload: { kind: "Deployment", name } };
          const subject = alertSubject(
            alert({ src, dst: { ...db, namespace: name }, cluster, protocol, dstPort: port }),
          );
          expect(subject.length).toBeLessThan(100);
          expect(subject).not.toMatch(/\p{Cc}/u);
          expect(subject.startsWith("Calico denied ")).toBe(true);
        },
      ),
    );
  });

  it("names the scanner of an external scan", () => {
    expect(alertSubject(scanAlert())).toBe("Calico: external scan from 203.0.113.9 denied (prod)");
  });
});

describe("alertEmailText", () => {
  it("describes both ends, the traffic, the timing and the runbook steps for this case", () => {
    const text = alertEmailText(
      alert({ policy: { tier: "security", kind: "gnp", name: "deny-cross-tenant", namespace: null } }),
    );
    for (const expected of [
      "Namespace:  customer-a",
      "Pod:        web-5f7c9-abcde",
      "Workload:   Deployment/web",
      "IP:         192.168.22.247",
      "Node:       ip-192-168-22-10",
      "Namespace labels: baseten.co/organization=true",
      "Namespace:  customer-b",
      "Workload:   StatefulSet/db",
      "IP:         192.168.94.122",
      "Port:        8012/TCP",
      "Direction:   ingress",
      "Reported by: node ip-192-168-74-5",
      "Policy:      tier security, kind gnp, name deny-cross-tenant",
      "First seen:  2026-04-19T04:52:19.000Z",
      "Last seen:   2026-04-19T04:53:02.000Z",
      "Hits:        12 so far",
      "kubectl describe pod -n customer-a web-5f7c9-abcde",
      "kubectl describe pod -n customer-b db-0",
      "kubectl get namespace customer-a customer-b --show-labels",
      "-n customer-a -o wide",
      "-n customer-b -o wide",
      "kubectl get globalnetworkpolicies.projectcalico.org deny-cross-tenant -o yaml",
      "calico-flows flows --cluster prod --namespace customer-a --workload Deployment/web " +
        "--since 2026-04-19T04:52:19Z --until 2026-04-19T05:07:19.000Z",
      "--namespace customer-b --workload StatefulSet/db",
      "Alert al_0001 (severity high, reason internal-denial)",
    ]) {
      expect(text).toContain(expected);
    }
    expect(text).not.toContain("Folded:");
  });

  it("points its commands at the store the alert is in, when told where that is", () => {
    const api = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/";
    for (const a of [alert(), scanAlert(), internalScanAlert()]) {
      const text = alertEmailText(a, { storeArgs: ["--api", api] });
      const commands = text.split("\n").filter((l) => l.trim().startsWith("calico-flows flows"));
      expect(commands.length).toBeGreaterThan(0);
      for (const c of commands) expect(c).toContain(`calico-flows flows --api ${api} --cluster prod `);
      // Without: the CLI's default store.
      expect(alertEmailText(a)).toContain("calico-flows flows --cluster prod ");
    }
    const summary = suppressionSummary(3, "prod", [alert()], { storeArgs: ["--store", "/var/lib/my store"] });
    expect(summary.email).toContain("calico-flows alerts --store '/var/lib/my store' --cluster prod --since");
  });

  it("says how many hits of the previous alert of the same traffic no message told", () => {
    const text = alertEmailText(alert({ foldedBefore: 41 }));
    expect(text).toContain(
      "Folded:      41 more hits were counted in the previous alert for this traffic than any message about it",
    );
    // Not "after it was sent": the previous alert may have been summarised, or not sent at all.
    expect(text).not.toContain("after it was sent");
    expect(text).toContain("an alert not sent yet told none");
    expect(alertEmailText(alert({ foldedBefore: 1 }))).toContain("1 more hit was counted");
    expect(alertEmailText(alert({ foldedBefore: 0 }))).not.toContain("Folded:");
  });

  it("points at the IP when nobody is known to have held it, and says why", () => {
    const text = alertEmailText(alert({ src: bare("192.168.50.5", "unknown", false) }));
    expect(text).toContain("not attributed: the Kubernetes API could not be asked");
    expect(text).toContain("kubectl get pods -A -o wide --field-selector status.podIP=192.168.50.5");
    expect(text).toContain("calico-flows flows --cluster prod --ip 192.168.50.5");
    expect(text).toContain("kubectl get namespace customer-b --show-labels");
  });

  it("quotes names a shell would split", () => {
    expect(alertEmailText(alert({ cluster: "team x's cluster" }))).toContain(
      "calico-flows flows --cluster 'team x'\\''s cluster' --namespace customer-a",
    );
  });

  it("names the source of an internal scan and says what to look at", () => {
    expect(alertSubject(internalScanAlert())).toBe("Calico: internal scan from customer-a/web denied (prod)");
    const text = alertEmailText(internalScanAlert());
    expect(text).toContain(
      "An endpoint inside cluster prod was denied on many distinct destinations or ports",
    );
    expect(text).toContain("Most denied destination");
    expect(text).toContain(
      "calico-flows flows --cluster prod --namespace customer-a --workload Deployment/web --group --since",
    );
    // From two windows (15 minutes each) before its first hit to two after its last: where the tally counted.
    expect(text).toContain("--since 2026-04-19T04:22:19Z --until 2026-04-19T05:23:02.000Z");
    expect(text).toContain("kubectl get globalnetworkpolicies.projectcalico.org");
    expect(text).toContain("(severity high, reason internal-scan)");
  });

  it("says when an internal scan's destinations were counted by IP, attribution being unavailable", () => {
    // The Kubernetes API down: a client denied on one port of a StatefulSet's six pods, each pod an address.
    const outage = internalScanAlert();
    outage.key = { ...outage.key, src: "192.168.5.5" };
    outage.src = bare("192.168.5.5", "unknown", false);
    outage.dst = bare("192.168.20.3", "unknown", false);
    outage.namespaces = { src: [null], dst: [null] };
    const text = alertEmailText(outage);
    expect(text.split("\n").slice(0, 7)).toEqual([
      "An endpoint inside cluster prod was denied on many distinct destinations or ports within minutes, but",
      "attribution was unavailable for some or all of its destinations (the Kubernetes API could not be asked when",
      "they were logged, as for the most denied one below): each unattributed address counts as a destination of its",
      "own, so the pods of one workload (a StatefulSet's replicas, a Deployment's pods) count as many. It may be one",
      "client denied on one port of one workload rather than a scan. Either way someone should look (severity high).",
      "One alert stands for all of them.",
      "",
    ]);
    expect(text).not.toContain("compromised");
    expect(text).toContain(
      "   The destinations are addresses: see whether they were the pods of one workload (kubectl get pods -A -o wide).",
    );
    // Attributed, it reads as a scan.
    expect(alertEmailText(internalScanAlert())).toContain("(a compromised or misbehaving workload)");
    expect(alertEmailText(internalScanAlert())).not.toContain("attribution was unavailable");
  });

  it("says many sources were denied one destination, and how to see them all", () => {
    const a = fanInAlert();
    expect(alertSubject(a)).toBe("Calico denied many sources → customer-b/db:8012/TCP (prod)");
    const text = alertEmailText(a);
    expect(text).toContain(
      "Many endpoints inside cluster prod were denied reaching one destination within minutes",
    );
    expect(text).toContain("Most denied source");
    expect(text).toContain(
      "calico-flows flows --cluster prod --namespace customer-b --workload StatefulSet/db --group --since",
    );
    expect(text).toContain("(severity high, reason internal-fan-in)");
  });

  it("explains a scan and how to see everything the source tried", () => {
    const text = alertEmailText(scanAlert());
    expect(text).toContain(
      "An external source was denied on many distinct ports or destinations in cluster prod",
    );
    expect(text).toContain("Most probed destination");
    expect(text).toContain("calico-flows flows --cluster prod --ip 203.0.113.9 --since");
    expect(text).not.toContain("kubectl describe");
    // The policy the prefix named, as the other alerts say it.
    expect(text).not.toContain("Policy:");
    const named = alertEmailText({
      ...scanAlert(),
      policy: { tier: null, kind: "gnp", namespace: null, name: "deny-ext" },
    });
    expect(named).toContain("  Policy:      kind gnp, name deny-ext (named by the log prefix)");
  });
});

describe("alertDefaultJson", () => {
  it("is its type, then the alert record exactly as `alerts --json` prints it, without anything a store added", () => {
    const record = alert({ policy: { tier: null, kind: null, name: "x", namespace: "y" } });
    const withStoreFields = { ...record, pk: "ALERT#prod", sk: "2026#al_0001" } as AlertRecord;
    const json = alertDefaultJson(withStoreFields);
    expect(JSON.parse(json)).toEqual({ type: "alert", ...record });
    expect(Object.keys(JSON.parse(json))).toEqual(["type", ...Object.keys(record)]);
  });
});

describe("alertAttributes", () => {
  it("carries what filter policies select on, with typed values", () => {
    expect(alertAttributes(alert())).toEqual({
      type: { DataType: "String", StringValue: "alert" },
      severity: { DataType: "String", StringValue: "high" },
      reason: { DataType: "String", StringValue: "internal-denial" },
      cluster: { DataType: "String", StringValue: "prod" },
      srcNamespace: { DataType: "String", StringValue: "customer-a" },
      dstNamespace: { DataType: "String", StringValue: "customer-b" },
      protocol: { DataType: "String", StringValue: "TCP" },
      dstPort: { DataType: "Number", StringValue: "8012" },
      alertId: { DataType: "String", StringValue: "al_0001" },
    });
  });

  it("marks missing namespaces with - and leaves out a port the protocol does not have", () => {
    const attributes = alertAttributes(
      alert({
        src: bare("192.168.50.5"),
        protocol: "ICMP",
        dstPort: null,
        key: { ...alert().key, dstPort: null },
      }),
    );
    expect(attributes.srcNamespace).toEqual({ DataType: "String", StringValue: "-" });
    expect(attributes.dstPort).toBeUndefined();
  });
});

describe("suppressionSummary", () => {
  it("counts the suppressed alerts and lists the first twenty", () => {
    const suppressed = Array.from({ length: 23 }, (_, i) =>
      alert({
        id: `al_${i}`,
        count: i + 1,
        severity: "low",
        openedAt: `2026-04-19T05:${String(10 + i)}:00.000Z`,
      }),
    );
    const summary = suppressionSummary(23, "prod", suppressed);
    expect(summary.subject).toBe("Calico: 23 more alerts suppressed (prod)");
    expect(summary.email).toContain("23 more alerts in cluster prod reached the per-run alert cap");
    expect(summary.email).toContain("calico-flows alerts --cluster prod --since 2026-04-19T05:10:00.000Z");
    expect(summary.email).toContain("20 of them:");
    expect(summary.email.match(/^ {2}- Calico denied/gm)).toHaveLength(20);
    expect(JSON.parse(summary.json)).toMatchObject({ type: "summary", cluster: "prod", count: 23 });
    expect(summary.attributes).toMatchObject({
      type: { DataType: "String", StringValue: "summary" },
      severity: { DataType: "String.Array", StringValue: '["low"]' },
      cluster: { DataType: "String", StringValue: "prod" },
      count: { DataType: "Number", StringValue: "23" },
      dstNamespace: { DataType: "String.Array" },
    });
    // At most ten attributes (SNS's limit), and the distinct values of each list bounded.
    expect(Object.keys(summary.attributes).length).toBeLessThanOrEqual(10);
    const many = Array.from({ length: 500 }, (_, i) =>
      alert({ id: `al_${i}`, dstPort: 1000 + i, dst: { ...alert({}).dst, namespace: `ns-${i}` } }),
    );
    const bounded = suppressionSummary(500, "prod", many).attributes;
    expect(JSON.parse(bounded.dstNamespace?.StringValue ?? "[]")).toHaveLength(100);
    expect(JSON.parse(bounded.dstPort?.StringValue ?? "[]")).toHaveLength(100);
  });

  it("speaks of one alert in the singular", () => {
    const summary = suppressionSummary(1, "prod", [alert()]);
    expect(summary.subject).toBe("Calico: 1 more alert suppressed (prod)");
    expect(summary.attributes.severity).toEqual({ DataType: "String.Array", StringValue: '["high"]' });
  });

  it("lists every severity it holds back, so that a subscriber of low alerts hears of its own among high ones", () => {
    const low = alert({ id: "al_low", severity: "low", reason: "external-scan" });
    const mixed = suppressionSummary(2, "prod", [alert(), low]).attributes.severity;
    expect(mixed).toEqual({ DataType: "String.Array", StringValue: '["high","low"]' });
    expect(suppressionSummary(1, "prod", [low]).attributes.severity?.StringValue).toBe('["low"]');
  });
});

describe("panicAnnouncement", () => {
  const event: PanicEvent = {
    action: "applied",
    cluster: "prod",
    policyName: "calico-flows-panic",
    requester: "arn:aws:sts::123456789012:assumed-role/PlatformOncall/alice",
    reason: "checkout cannot reach payments",
    at: "2026-04-19T05:00:00.000Z",
    expiresAt: "2026-04-19T06:00:00.000Z",
    conflicts: [
      {
        kind: "GlobalNetworkPolicy",
        name: "security.deny-egress",
        tier: "security",
        order: 10,
        explanation: "an earlier tier denies egress to 0.0.0.0/0 before the panic policy is evaluated",
      },
    ],
  };

  it("announces who applied it, why, when, until when, and what may still deny traffic", () => {
    const message = panicAnnouncement(event);
    expect(message.subject).toBe("Calico panic policy applied on prod by alice");
    for (const expected of [
      "The Calico panic policy calico-flows-panic was applied on cluster prod.",
      "Who:      arn:aws:sts::123456789012:assumed-role/PlatformOncall/alice",
      "Why:      checkout cannot reach payments",
      "When:     2026-04-19T05:00:00.000Z",
      "Expires:  2026-04-19T06:00:00.000Z (removed automatically)",
      "- GlobalNetworkPolicy security.deny-egress (tier security, order 10): an earlier tier denies egress",
    ]) {
      expect(message.email).toContain(expected);
    }
    expect(JSON.parse(message.json)).toEqual({ type: "panic", ...event, conflictCount: 1 });
    expect(message.attributes).toEqual({
      type: { DataType: "String", StringValue: "panic" },
      action: { DataType: "String", StringValue: "applied" },
      severity: { DataType: "String", StringValue: "high" },
      cluster: { DataType: "String", StringValue: "prod" },
    });
  });

  it("stays within SNS's 256 KB however many policies may still deny, listing 50 and counting the rest", () => {
    const many = Array.from({ length: 1000 }, (_, i) => ({
      kind: "NetworkPolicy",
      name: `default-deny-${"x".repeat(40)}-${i}`,
      namespace: `customer-${i}`,
      tier: "security",
      order: 10,
      explanation: "a Deny rule (Ingress) in an earlier tier, evaluated before the panic policy ".repeat(3),
    }));
    const message = panicAnnouncement({ ...event, conflicts: many });
    const published = JSON.stringify({ default: message.json, email: message.email });
    expect(Buffer.byteLength(published)).toBeLessThan(256 * 1024);
    expect(message.email).toContain("default-deny-");
    expect(message.email).toContain("… and 950 more: `calico-flows panic status` lists them all");
    const json = JSON.parse(message.json) as { conflicts: unknown[]; conflictCount: number };
    expect(json.conflicts).toHaveLength(50);
    expect(json.conflictCount).toBe(1000);
  });

  it("words reverts, expiries and refusals", () => {
    const base = { ...event, conflicts: [] };
    expect(panicAnnouncement({ ...base, action: "reverted" }).subject).toBe(
      "Calico panic policy reverted on prod by alice",
    );
    const expired = panicAnnouncement({ ...base, action: "expired", requester: "scheduler" });
    expect(expired.subject).toBe("Calico panic policy expired on prod");
    expect(expired.attributes.severity?.StringValue).toBe("low");
    const refused = panicAnnouncement({
      ...base,
      action: "refused",
      detail: "a policy named calico-flows-panic exists and was not created by calico-flows",
    });
    expect(refused.subject).toBe("Calico panic request refused on prod (alice)");
    expect(refused.email).toContain("Refused:  a policy named calico-flows-panic exists");
    expect(panicAnnouncement({ ...base, expiresAt: null }).email).toContain(
      "Expires:  never: revert it once traffic is fixed",
    );
  });

  it("names the person, not the API server, for `panic --direct`", () => {
    const direct = {
      ...event,
      conflicts: [],
      requester:
        'root@ops-vm via kubeconfig context "prod-admin" (https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com)',
    };
    expect(panicAnnouncement(direct).subject).toBe("Calico panic policy applied on prod by root@ops-vm");
    expect(panicAnnouncement({ ...direct, action: "refused", detail: "x" }).subject).toBe(
      "Calico panic request refused on prod (root@ops-vm)",
    );
    // The whole requester stays in the text.
    expect(panicAnnouncement(direct).email).toContain(`Who:      ${direct.requester}`);
  });
});

describe("log-derived text in a message", () => {
  /** What must not reach an e-mail's lines: controls, line and paragraph separators. */
  const UNSAFE = /[\p{Cc}\u2028\u2029]/u;
  const forged = "\n\nNote:\tall clear, no action needed.\u2028\u001b[2J\r\n";
  const hostile = () =>
    alert({
      protocol: `TCP${forged}`,
      reporter: `ip-1${forged}`,
      policy: { tier: `default${forged}`, kind: "gnp", name: `deny${forged}`, namespace: null },
    });

  it("keeps every value on its e-mail line, whatever it carries", () => {
    for (const a of [hostile(), { ...fanInAlert(), ...hostile(), reason: "internal-fan-in" as const }]) {
      const lines = alertEmailText(a).split("\n");
      for (const l of lines) expect(l).not.toMatch(UNSAFE);
      expect(lines.some((l) => l.startsWith("Note:"))).toBe(false);
      const port = lines.findIndex((l) => l.startsWith("  Port:"));
      expect(lines[port + 1]).toMatch(/^ {2}Direction:/);
      expect(lines.find((l) => l.startsWith("  Policy:"))).toMatch(/^ {2}Policy: .*deny Note:/);
      expect(
        lines.filter((l) => l.includes("kubectl get globalnetworkpolicies.projectcalico.org 'deny")),
      ).toHaveLength(1);
      expect(alertSubject(a)).not.toMatch(UNSAFE);
    }
  });

  it("shows no bidirectional or invisible format character: an e-mail reads in the order it was written", () => {
    // U+202E turns the rest of a line around where a mail client shows it; U+200B hides between letters.
    const a = alert({ reporter: "ip-1\u202edeny-all", protocol: "TCP\u200b" });
    const text = alertEmailText(a);
    expect(text).not.toMatch(/\p{Cf}/u);
    expect(text).toMatch(/ip-1 deny-all/);
    expect(alertSubject(a)).not.toMatch(/\p{Cf}/u);
  });

  it("is published well-formed: a lone surrogate becomes U+FFFD in the subject, attributes, e-mail and JSON", () => {
    const message = alertMessage(alert({ protocol: "TCP\ud800", reporter: "ip-\udc00" }));
    expect(message.attributes.protocol?.StringValue.isWellFormed()).toBe(false);
    const published = snsPublication(message);
    expect(published.subject).toContain("TCP\ufffd");
    expect(published.attributes.protocol?.StringValue).toBe("TCP\ufffd");
    expect(published.message.isWellFormed()).toBe(true);
    const body = JSON.parse(published.message) as { default: string; email: string };
    expect(body.email).toContain("ip-\ufffd");
    // The default JSON is JSON.stringify's, which writes a lone surrogate as an escape: valid, well-formed text.
    expect(body.default).toBe(message.json);
    // Nothing else changes.
    const plain = alertMessage(alert());
    expect(snsPublication(plain)).toEqual({
      subject: plain.subject,
      message: JSON.stringify({ default: plain.json, email: plain.email }),
      attributes: plain.attributes,
    });
  });

  it("fits SNS's limit on a publish: an e-mail text too long is cut short, with a note", () => {
    const size = (p: ReturnType<typeof snsPublication>) =>
      Buffer.byteLength(p.subject) +
      Buffer.byteLength(p.message) +
      Object.entries(p.attributes).reduce(
        (n, [k, a]) =>
          n + Buffer.byteLength(k) + Buffer.byteLength(a.DataType) + Buffer.byteLength(a.StringValue),
        0,
      );
    const plain = alertMessage(alert());
    for (const filler of ["x", "é", "\u0001", "🙂"]) {
      const big: OutboundMessage = { ...plain, email: `${plain.email}${filler.repeat(300_000)}` };
      const published = snsPublication(big);
      expect(size(published)).toBeLessThanOrEqual(MAX_PUBLISH_BYTES);
      expect(size(published)).toBeGreaterThan(MAX_PUBLISH_BYTES - 1_000);
      const body = JSON.parse(published.message) as { default: string; email: string };
      expect(body.default).toBe(plain.json);
      expect(body.email.startsWith(plain.email)).toBe(true);
      expect(body.email).toMatch(/cut short: this message passed SNS's 256 KB limit/);
      expect(published.message.isWellFormed()).toBe(true);
    }
    // A default JSON alone over the limit cannot be cut: refused, saying so.
    expect(() => snsPublication({ ...plain, json: JSON.stringify({ x: "x".repeat(300_000) }) })).toThrow(
      /without its e-mail text, over SNS's limit of 262144/,
    );
  });
});
