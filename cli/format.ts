// Human-readable tables for `flows` and `alerts`; `--json` prints the records themselves instead.
import type { AlertRecord, Endpoint, FlowRecord } from "../functions/core/types.ts";

export function describeEndpoint(e: Endpoint): string {
  switch (e.kind) {
    case "pod": {
      const who = e.workload ? `${e.workload.kind.toLowerCase()}/${e.workload.name}` : (e.name ?? e.ip);
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

function port(protocol: string, dstPort: number | null): string {
  return dstPort === null ? protocol : `${dstPort}/${protocol}`;
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

const shortTime = (iso: string) => iso.replace("T", " ").replace(/\.\d+Z$/, "Z");

export function flowsTable(flows: readonly FlowRecord[]): string {
  return table(
    ["LAST SEEN", "SOURCE", "DESTINATION", "PORT", "DIR", "REPORTER", "PACKETS", "INTERNAL"],
    flows.map((f) => [
      shortTime(f.lastSeen),
      describeEndpoint(f.src),
      describeEndpoint(f.dst),
      port(f.protocol, f.dstPort),
      f.direction,
      f.reporter,
      String(f.packets),
      f.internal ? "yes" : "no",
    ]),
  );
}

export function alertsTable(alerts: readonly AlertRecord[]): string {
  return table(
    ["OPENED", "SEVERITY", "SOURCE", "DESTINATION", "PORT", "HITS", "FOLDED BEFORE", "LAST SEEN", "DELIVERY"],
    alerts.map((a) => [
      shortTime(a.openedAt),
      a.severity,
      describeEndpoint(a.src),
      describeEndpoint(a.dst),
      port(a.protocol, a.dstPort),
      String(a.count),
      String(a.foldedBefore),
      shortTime(a.lastSeen),
      a.delivery,
    ]),
  );
}
