// Human-readable tables for `flows` and `alerts`; `--json` prints the records themselves instead.
import { isFanIn, isScan } from "../functions/core/alert-message.ts";
import { escapeControls } from "../functions/core/parse.ts";
import type { AlertRecord, Endpoint, FlowRecord, PolicyRef } from "../functions/core/types.ts";
import type { Conversation } from "./conversations.ts";

export function describeEndpoint(e: Endpoint): string {
  switch (e.kind) {
    case "pod": {
      // Always namespace/kind/name, so a pod without an owner never reads like a node (`node/<name>`).
      const who = e.workload
        ? `${e.workload.kind.toLowerCase()}/${e.workload.name}`
        : `pod/${e.name ?? e.ip}`;
      return `${e.namespace ?? "?"}/${who}`;
    }
    case "node":
      return `node/${e.name ?? e.ip}`;
    case "service":
      return `svc ${e.namespace ?? "?"}/${e.name ?? e.ip}`;
    default:
      return e.resolved ? `${e.ip} (${e.kind})` : `${e.ip} (unresolved)`;
  }
}

/** The policy the log prefix named (`--prefix-format`), as `tier: kind namespace/name`; "-" when it named none. */
export function describePolicy(p: PolicyRef | null): string {
  if (p === null) return "-";
  const name = p.namespace === null ? p.name : `${p.namespace}/${p.name ?? "?"}`;
  const parts = [p.tier === null ? null : `${p.tier}:`, p.kind, name].filter((x) => x !== null);
  return parts.length === 0 ? "-" : parts.join(" ");
}

function port(protocol: string, dstPort: number | null): string {
  return dstPort === null ? protocol : `${dstPort}/${protocol}`;
}

/**
 * Rows under headers, in columns. Every cell is escaped here (`\u001b`, as kubectl shows such characters): cells
 * hold text from log lines (the reporter, the protocol, the policy), and a control character, a line break or a
 * bidirectional override in one would act on the operator's terminal or reorder the row instead of being shown.
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const shown = rows.map((r) => r.map(escapeControls));
  const widths = headers.map((h, i) => Math.max(h.length, ...shown.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...shown.map(line)].join("\n");
}

/**
 * Without milliseconds when there are none, and still ISO-8601: a time copied from a table is a valid `--since` or
 * `--until` that selects the record it was printed for (cut to the second, 04:52:19.500 as `--until` left it out).
 */
const shortTime = (iso: string) => iso.replace(/\.000Z$/, "Z");

export function flowsTable(flows: readonly FlowRecord[]): string {
  return table(
    ["LAST SEEN", "SOURCE", "DESTINATION", "PORT", "DIR", "REPORTER", "PACKETS", "INTERNAL", "POLICY"],
    flows.map((f) => [
      shortTime(f.lastSeen),
      describeEndpoint(f.src),
      describeEndpoint(f.dst),
      port(f.protocol, f.dstPort),
      f.direction,
      f.reporter,
      String(f.packets),
      f.internal ? "yes" : "no",
      describePolicy(f.policy),
    ]),
  );
}

export function conversationsTable(conversations: readonly Conversation[]): string {
  return table(
    [
      "PACKETS",
      "SOURCE",
      "DESTINATION",
      "PORT",
      "DIR",
      "FIRST SEEN",
      "LAST SEEN",
      "FLOWS",
      "NODES",
      "INTERNAL",
      "POLICY",
    ],
    conversations.map((c) => [
      String(c.packets),
      c.src,
      c.dst,
      port(c.protocol, c.dstPort),
      c.direction,
      shortTime(c.firstSeen),
      shortTime(c.lastSeen),
      String(c.flows),
      String(c.reporters.length),
      c.internal ? "yes" : "no",
      describePolicy(c.policy),
    ]),
  );
}

/** " in N namespaces" for the ends of a scan or fan-in that span more than one namespace. */
function across(namespaces: readonly (string | null)[] | undefined): string {
  const named = (namespaces ?? []).filter((ns) => ns !== null).length;
  return named > 1 ? ` in ${named} namespaces` : "";
}

export function alertsTable(alerts: readonly AlertRecord[]): string {
  return table(
    [
      "OPENED",
      "SEVERITY",
      "SOURCE",
      "DESTINATION",
      "PORT",
      "HITS",
      "FOLDED BEFORE",
      "LAST SEEN",
      "DELIVERY",
      "POLICY",
      "ID",
    ],
    alerts.map((a) => [
      shortTime(a.openedAt),
      a.severity,
      // A fan-in's source, and a scan's destination, are only the most hit: `flows --group` lists them all.
      isFanIn(a)
        ? `many sources${across(a.namespaces?.src)}, most hit ${describeEndpoint(a.src)}`
        : describeEndpoint(a.src),
      isScan(a)
        ? `scan${across(a.namespaces?.dst)}, most hit ${describeEndpoint(a.dst)}`
        : describeEndpoint(a.dst),
      port(a.protocol, a.dstPort),
      String(a.count),
      String(a.foldedBefore),
      shortTime(a.lastSeen),
      a.delivery,
      describePolicy(a.policy),
      // The id the e-mail ends with.
      a.id,
    ]),
  );
}
