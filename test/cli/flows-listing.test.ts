// What `flows` and `alerts` tell an operator besides the records: that `--limit` cut the listing, that the store
// holds another cluster than the one asked for or flows outside the default range, and which policy denied (the
// table's POLICY column).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupFlows, listAlerts, listFlows } from "../../cli/commands/flows.ts";
import { commonOptions } from "../../cli/common.ts";
import { openStore } from "../../cli/store.ts";
import type { AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { ndjson, replaySample, runCli, SAMPLE, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

let dir: string;
let store: string[];
/** How many flows and alerts the sample makes (read back with no limit). */
let flowCount: number;
let alertCount: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cf-listing-"));
  store = ["--store", join(dir, "store")];
  // As README's example: replayed for a named cluster.
  const run = await replaySample(join(dir, "store"), "prod");
  expect(run.code).toBe(0);
  const flows = await read("flows", "--json");
  flowCount = ndjson<FlowRecord>(flows.stdout).length;
  const alerts = await read("alerts", "--json");
  alertCount = ndjson<AlertRecord>(alerts.stdout).length;
  expect(flowCount).toBeGreaterThan(3);
  expect(alertCount).toBeGreaterThan(2);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `flows` or `alerts` of the sample's cluster and day in the shared store, with `args`. */
const read = (command: "flows" | "alerts", ...args: string[]) =>
  runCli([command, ...store, "--cluster", "prod", ...SAMPLE_DAY, ...args]);

describe("flows and alerts listings", () => {
  it("say on stderr when --limit left records out, for the table and NDJSON alike", async () => {
    for (const format of [[], ["--json"]]) {
      const cut = await read("flows", "--limit", "3", ...format);
      expect(cut.code).toBe(0);
      expect(cut.stderr).toBe(
        "note: only the first 3 flows (by bucket, oldest first) are listed and the range holds more: narrow it (--since, --until, filters) or raise --limit\n",
      );
      if (format.length > 0) expect(ndjson<FlowRecord>(cut.stdout)).toHaveLength(3);
    }
    const alerts = await read("alerts", "--limit", "2");
    expect(alerts.code).toBe(0);
    expect(alerts.stderr).toMatch(/^note: only the first 2 alerts \(oldest first\) are listed/);
    // Exactly as many as there are: nothing left out, nothing said.
    const all = await read("flows", "--limit", String(flowCount), "--json");
    expect(all.stderr).toBe("");
    expect(ndjson<FlowRecord>(all.stdout)).toHaveLength(flowCount);
    const allAlerts = await read("alerts", "--limit", String(alertCount));
    expect(allAlerts.stderr).toBe("");
  });

  it("name the store's cluster when asked for another that it holds nothing of", async () => {
    for (const command of ["flows", "alerts"]) {
      const run = await runCli([command, ...store, ...SAMPLE_DAY]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe("no records in that range\n");
      expect(run.stderr).toBe(
        'note: this store was written for cluster "prod", not "local": pass --cluster prod\n',
      );
    }
    // The right cluster with an empty range: empty, and nothing to say about clusters.
    const quiet = await runCli([
      "flows",
      ...store,
      "--cluster",
      "prod",
      "--since",
      "2026-04-18T00:00:00Z",
      "--until",
      "2026-04-18T01:00:00Z",
    ]);
    expect(quiet.stdout).toBe("no records in that range\n");
    expect(quiet.stderr).toBe("");
  });

  it("say where the flows are when the default range, the last 24 hours, holds none of them", async () => {
    // The sample's day is long past: without --since and --until every listing of it is empty, as a quiet
    // cluster's would be.
    const [first] = ndjson<FlowRecord>((await read("flows", "--json")).stdout)
      .map((f) => f.firstSeen)
      .sort();
    const at = `at other times, the first seen at ${first}`;
    for (const args of [["flows"], ["flows", "--json"], ["flows", "--group"]]) {
      const run = await runCli([...args, ...store, "--cluster", "prod"]);
      expect(run.code, args.join(" ")).toBe(0);
      expect(run.stderr, args.join(" ")).toBe(
        `note: none in the last 24 hours (no --since or --until given), but the store holds such flows ${at}: give --since (and --until)\n`,
      );
    }
    const alerts = await runCli(["alerts", ...store, "--cluster", "prod"]);
    expect(alerts.stdout).toBe("no records in that range\n");
    expect(alerts.stderr).toContain(`the store holds flows ${at} (alerts are raised on flows)`);
    // The same question is asked of all times: one that no flow answers gets no note.
    const none = await runCli(["flows", ...store, "--cluster", "prod", "--namespace", "no-such-namespace"]);
    expect(none.stdout).toBe("no records in that range\n");
    expect(none.stderr).toBe("");
  });

  it("show the policy the log prefix named in a POLICY column", async () => {
    const lines = readFileSync(join(SAMPLE, "node-logs.log"), "utf8")
      .split("\n")
      .filter((l) => l.includes("kernel: calico-packet: ") && l.includes(" DPT=5432 "))
      .slice(0, 3)
      .map((l) => l.replace("calico-packet: ", "calico-packet security gnp deny-db: "));
    const log = join(dir, "policy.log");
    writeFileSync(log, `${lines.join("\n")}\n`);
    const policyStore = ["--store", join(dir, "policy"), "--cluster", "prod"];
    const replayed = await runCli([
      "replay",
      log,
      ...policyStore,
      ...SAMPLE_ATTRIBUTION,
      "--prefix-format",
      "calico-packet %t %k %n",
      "--quiet",
    ]);
    expect(replayed.code).toBe(0);
    for (const command of ["flows", "alerts"]) {
      const run = await runCli([command, ...policyStore, ...SAMPLE_DAY]);
      expect(run.code).toBe(0);
      const [header, ...rows] = run.stdout.trimEnd().split("\n");
      const columns = header?.split(/\s{2,}/) ?? [];
      const at = columns.indexOf("POLICY");
      expect(at).toBeGreaterThan(0);
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) expect(row.split(/\s{2,}/)[at]).toBe("security: gnp deny-db");
    }
  });

  it("list alerts with the id their e-mail ends with, and a scan as a scan", async () => {
    const scans = ["--store", join(dir, "scans"), "--cluster", "prod"];
    const replayed = await runCli([
      "replay",
      join(SAMPLE, "node-logs.log"),
      ...scans,
      ...SAMPLE_ATTRIBUTION,
      "--scan-threshold",
      "20",
      "--quiet",
    ]);
    expect(replayed.code).toBe(0);
    const run = await runCli(["alerts", ...scans, ...SAMPLE_DAY]);
    expect(run.code).toBe(0);
    const json = await runCli(["alerts", ...scans, ...SAMPLE_DAY, "--json"]);
    const alerts = ndjson<AlertRecord>(json.stdout);
    const [header, ...rows] = run.stdout.trimEnd().split("\n");
    expect(header?.split(/\s{2,}/).at(-1)).toBe("ID");
    expect(rows.map((r) => r.split(/\s{2,}/).at(-1)).sort()).toEqual(alerts.map((a) => a.id).sort());
    const scan = alerts.find((a) => a.reason === "external-scan");
    expect(scan).toBeDefined();
    // Filters: by severity, kind, and either end's namespace.
    const ids = async (...filter: string[]) => {
      const listed = await runCli(["alerts", ...scans, ...SAMPLE_DAY, "--json", ...filter]);
      expect(listed.code, filter.join(" ")).toBe(0);
      return ndjson<AlertRecord>(listed.stdout).map((a) => a.id);
    };
    expect(await ids("--severity", "low")).toEqual([scan?.id]);
    expect(await ids("--reason", "internal-denial")).toEqual(
      alerts.filter((a) => a.reason === "internal-denial").map((a) => a.id),
    );
    const customerB = alerts.filter(
      (a) => a.src.namespace === "customer-b" || a.dst.namespace === "customer-b",
    );
    expect(customerB.length).toBeGreaterThan(0);
    expect(customerB.length).toBeLessThan(alerts.length);
    expect(await ids("--namespace", "customer-b")).toEqual(customerB.map((a) => a.id));
    const refused = await runCli(["alerts", ...scans, "--severity", "urgent"]);
    expect(refused.code).toBe(2);
    const scanRow = rows.find((r) => r.endsWith(scan?.id ?? "?"));
    expect(scanRow).toMatch(/203\.0\.113\.77 \(external\)\s+scan, most hit customer-a\/deployment\/web\s/);
  });
});

describe("the first flow an empty default range names", () => {
  it("is the one first seen, though the flows of a bucket are listed in no time order", async () => {
    // One bucket of 150 flows whose ids sort against their times: the first seen is the last listed, on a second page.
    const at = join(dir, "one-bucket");
    const bucket = Date.parse("2026-04-19T04:52:00.000Z");
    const endpoint = (ip: string): Endpoint => ({
      ip,
      kind: "external",
      namespace: null,
      name: null,
      workload: null,
      node: null,
      resolved: true,
    });
    const flows = Array.from({ length: 150 }, (_, i): FlowRecord => {
      const seen = new Date(bucket + (149 - i) * 300).toISOString();
      return {
        id: `flow-${String(i).padStart(3, "0")}`,
        cluster: "prod",
        bucket: new Date(bucket).toISOString(),
        src: endpoint(`203.0.113.${i}`),
        dst: endpoint("198.51.100.1"),
        protocol: "TCP",
        dstPort: 443,
        direction: "ingress",
        reporter: "ip-192-168-74-5",
        internal: false,
        packets: 1,
        bytes: 60,
        firstSeen: seen,
        lastSeen: seen,
        policy: null,
        tcpFlags: ["SYN"],
      };
    });
    const opened = await openStore({ ...commonOptions({ cluster: "prod" }), store: at });
    try {
      await opened.store.writeFlows(flows, "one-bucket");
    } finally {
      await opened.close();
    }
    const firstSeen = flows.map((f) => f.firstSeen).sort()[0];
    const day = { since: SAMPLE_DAY[1], until: SAMPLE_DAY[3] };
    const listed = await listFlows({ store: at, cluster: "prod", ...day, limit: 1 });
    expect(listed.records[0]?.firstSeen).not.toBe(firstSeen);
    for (const command of [listFlows, groupFlows]) {
      const empty = await command({ store: at, cluster: "prod", until: "now", limit: 1000 });
      expect(empty.records).toEqual([]);
      expect(empty.elsewhere).toBe(firstSeen);
    }
    const alerts = await listAlerts({ store: at, cluster: "prod", until: "now", limit: 1000 });
    expect(alerts.elsewhere).toBe(firstSeen);
  });
});
