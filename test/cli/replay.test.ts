import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { ndjson, runCli, SAMPLE, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

describe("calico-flows replay, flows, alerts (local mode)", () => {
  let store: string;
  let common: string[];

  beforeAll(() => {
    store = mkdtempSync(join(tmpdir(), "cf-replay-"));
    common = ["--store", store, "--cluster", "demo"];
  });
  afterAll(() => rmSync(store, { recursive: true, force: true }));

  const replay = () =>
    runCli([
      "replay",
      join(SAMPLE, "node-logs.log"),
      ...common,
      // flows and alerts are not given it: they read what the replay decided (a note says so if they are).
      "--internal-cidr",
      "192.168.0.0/16",
      ...SAMPLE_ATTRIBUTION,
      "--scan-threshold",
      "20",
    ]);

  const flows = async (...filters: string[]) => {
    const run = await runCli(["flows", ...common, ...SAMPLE_DAY, "--json", ...filters]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    return ndjson<FlowRecord>(run.stdout);
  };
  const packets = (fs: FlowRecord[]) => fs.reduce((n, f) => n + f.packets, 0);

  it("replays the sample, reporting malformed lines with their numbers", async () => {
    const run = await replay();
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/replayed 323 lines: 296 calico records, 2 malformed/);
    expect(run.stderr.match(/^line \d+: /gm)).toHaveLength(2);
    expect(run.stderr).not.toContain("not listed (--quiet)");
    // Its pods are inside the internal CIDR.
    expect(run.stderr).not.toContain("pod addresses");
  });

  it("attributes the policy bug customer-a/web → customer-b/db:5432, syslog and journald lines alike", async () => {
    const all = await flows("--namespace", "customer-b", "--workload", "db");
    const bug = all.filter((f) => f.src.workload?.name === "web" && f.dstPort === 5432);
    expect(packets(bug)).toBe(128);
    for (const f of bug) {
      expect(f.src).toMatchObject({ kind: "pod", namespace: "customer-a", name: "web-7d9f8b6c5-x2k4q" });
      expect(f.src.workload).toEqual({ kind: "Deployment", name: "web" });
      expect(f.dst).toMatchObject({
        kind: "pod",
        namespace: "customer-b",
        workload: { kind: "StatefulSet", name: "db" },
      });
      expect(f).toMatchObject({
        internal: true,
        protocol: "TCP",
        direction: "ingress",
        reporter: "ip-192-168-12-9",
      });
    }
  });

  it("gives a reused IP to the pod that held it at the time", async () => {
    const fromReport = await flows("--ip", "192.168.41.8");
    const byPod = new Map<string, number>();
    for (const f of fromReport) byPod.set(f.src.name ?? "?", (byPod.get(f.src.name ?? "?") ?? 0) + f.packets);
    expect(Object.fromEntries(byPod)).toEqual({ "report-29609569-abcde": 15, "report-29609576-fghij": 15 });
    for (const f of fromReport) {
      const first = f.src.name === "report-29609569-abcde";
      expect(f.lastSeen < "2026-04-19T04:54:00Z").toBe(first);
    }
  });

  it("resolves hostNetwork traffic to the node and unknown internal addresses to unknown", async () => {
    const toWeb = await flows("--ip", "192.168.74.5");
    expect(packets(toWeb)).toBe(20);
    expect(toWeb[0]?.src).toMatchObject({ kind: "node", name: "ip-192-168-74-5.eu-west-1.compute.internal" });
    const dns = await flows("--ip", "192.168.99.14");
    expect(packets(dns)).toBe(12);
    expect(dns[0]?.src).toMatchObject({ kind: "unknown", resolved: true });
    expect(dns[0]?.dst.workload).toEqual({ kind: "Deployment", name: "coredns" });
  });

  it("opens one alert per internal key plus the scan alert", async () => {
    const run = await runCli(["alerts", ...common, ...SAMPLE_DAY, "--json"]);
    expect(run.code).toBe(0);
    const alerts = ndjson<AlertRecord>(run.stdout);
    const keys = alerts.map((a) => `${a.key.src} → ${a.key.dst}:${a.key.dstPort ?? "*"}`).sort();
    expect(keys).toEqual(
      [
        "192.168.99.14 → kube-system/Deployment/coredns:53",
        "203.0.113.77 → *scan*:*",
        "customer-a/CronJob/report → customer-b/Deployment/api:9090",
        "customer-a/Deployment/web → customer-b/StatefulSet/db:5432",
        "customer-b/Deployment/api → customer-a/Deployment/web:8080",
        "node/ip-192-168-74-5.eu-west-1.compute.internal → customer-a/Deployment/web:9102",
      ].sort(),
    );
    const bug = alerts.find((a) => a.key.dstPort === 5432);
    expect(bug).toMatchObject({ count: 128, severity: "high", delivery: "pending" });
    expect(alerts.find((a) => a.key.dst === "*scan*")).toMatchObject({ severity: "low" });
  });

  it("does not double count when the same file is replayed again", async () => {
    const before = await flows();
    const run = await replay();
    expect(run.code).toBe(0);
    // The same batches again: every line was counted by the replay before, as the summary says.
    expect(run.stderr).toMatch(
      /296 calico records \(296 counted by an earlier replay\), 2 malformed, 0 flow updates/,
    );
    const after = await flows();
    expect(after).toEqual(before);
    expect(packets(after)).toBe(296);
  });

  it("counts nothing again when the same lines come under another path, through stdin or batched otherwise", async () => {
    const before = await flows();
    const log = join(SAMPLE, "node-logs.log");
    const options = [...common, ...SAMPLE_ATTRIBUTION];
    // One after another: the embedded store takes one process at a time.
    const again: (() => ReturnType<typeof runCli>)[] = [
      () => runCli(["replay", "./examples/demo/node-logs.log", ...options, "--quiet"]),
      () => runCli(["replay", "-", ...options, "--quiet"], { input: readFileSync(log, "utf8") }),
      () => runCli(["replay", log, ...options, "--quiet", "--batch-lines", "7"]),
    ];
    // The same batches are the same contributions (their flow writes are refused as redeliveries); other
    // batches are new contributions whose lines the coverage records name as counted.
    const reports: string[] = [];
    for (const replayAgain of again) {
      const run = await replayAgain();
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/296 calico records.*, 0 flow updates/);
      reports.push(run.stderr);
    }
    expect(reports[2]).toMatch(/296 calico records \(296 counted by an earlier replay\)/);
    expect(await flows()).toEqual(before);
  });

  it("counts only the new lines of a file that grew since it was replayed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-grow-"));
    try {
      const grownStore = ["--store", join(dir, "store"), "--cluster", "demo"];
      const lines = readFileSync(join(SAMPLE, "node-logs.log"), "utf8").split("\n");
      const file = join(dir, "node.log");
      const replayFile = () =>
        runCli([
          "replay",
          file,
          ...grownStore,
          "--pods",
          join(SAMPLE, "pods.json"),
          "--year",
          "2026",
          "--quiet",
        ]);
      writeFileSync(file, `${lines.slice(0, 150).join("\n")}\n`);
      expect((await replayFile()).code).toBe(0);
      writeFileSync(file, lines.join("\n"));
      const run = await replayFile();
      expect(run.stderr).toMatch(/296 calico records \(\d+ counted by an earlier replay\)/);
      const stored = await runCli(["flows", ...grownStore, ...SAMPLE_DAY, "--json"]);
      expect(packets(ndjson<FlowRecord>(stored.stdout))).toBe(296);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads a named pipe as it reads stdin (replay <(zcat …))", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-fifo-"));
    try {
      const fifo = join(dir, "lines");
      expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
      const running = runCli(["replay", fifo, ...common, "--year", "2026", "--quiet"]);
      writeFileSync(fifo, readFileSync(join(SAMPLE, "node-logs.log")));
      const run = await running;
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/replayed 323 lines: 296 calico records/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads ranges from the bucket a replay counted in, as long as it was", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-buckets-"));
    try {
      // One packet at 04:53:00, counted in the 5-minute bucket of 04:50.
      const line = readFileSync(join(SAMPLE, "node-logs.log"), "utf8").split("\n")[0] as string;
      const log = join(dir, "one.log");
      writeFileSync(log, `${line.replace("Apr 19 04:50:00", "Apr 19 04:53:00")}\n`);
      const store = ["--store", join(dir, "store"), "--cluster", "demo"];
      const replayed = await runCli([
        "replay",
        log,
        ...store,
        "--year",
        "2026",
        "--bucket-seconds",
        "300",
        "--quiet",
      ]);
      expect(replayed.code).toBe(0);
      const range = ["--since", "2026-04-19T04:52:00Z", "--until", "2026-04-19T04:54:00Z", "--json"];
      const found = ndjson<FlowRecord>((await runCli(["flows", ...store, ...range])).stdout);
      expect(found.map((f) => [f.bucket, f.firstSeen])).toEqual([
        ["2026-04-19T04:50:00.000Z", "2026-04-19T04:53:00.000Z"],
      ]);
      // Told of one-minute buckets too, it still reads the lengths the store recorded: the 300-s bucket as well.
      const told = await runCli(["flows", ...store, ...range, "--bucket-seconds", "60"]);
      expect(ndjson<FlowRecord>(told.stdout).map((f) => [f.bucket, f.firstSeen])).toEqual([
        ["2026-04-19T04:50:00.000Z", "2026-04-19T04:53:00.000Z"],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts each address stored unresolved once, however many batches it came in", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-unresolved-"));
    try {
      // No pods or nodes file (and no kubeconfig): every internal address is stored unresolved.
      const bare = ["--store", join(dir, "store"), "--cluster", "demo"];
      const run = await runCli(
        ["replay", join(SAMPLE, "node-logs.log"), ...bare, "--year", "2026", "--quiet", "--batch-lines", "7"],
        { env: { KUBECONFIG: "", HOME: dir } },
      );
      expect(run.code).toBe(0);
      const stored = ndjson<FlowRecord>((await runCli(["flows", ...bare, ...SAMPLE_DAY, "--json"])).stdout);
      const addresses = new Set(
        stored
          .flatMap((f) => [f.src, f.dst])
          .filter((e) => !e.resolved)
          .map((e) => e.ip),
      );
      expect(addresses.size).toBeGreaterThan(0);
      expect(run.stderr).toMatch(new RegExp(`, ${addresses.size} unresolved endpoints\n`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("warns when the snapshot's pods are outside --internal-cidr, and when no line held the prefix", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-mismatch-"));
    try {
      // The sample's pods are in 192.168.0.0/16: a VPC range given instead leaves them all external.
      const wrong = await runCli([
        "replay",
        join(SAMPLE, "node-logs.log"),
        ...["--store", join(dir, "a"), "--cluster", "demo", "--internal-cidr", "10.0.0.0/16"],
        ...SAMPLE_ATTRIBUTION,
        "--quiet",
      ]);
      expect(wrong.code).toBe(0);
      expect(wrong.stderr).toMatch(
        /warning: (\d+) of the \1 pod addresses \(192\.168\.[\d.]+…\) and 2 of the 2 node addresses \(192\.168\.[\d.]+…\) in the snapshot files are outside --internal-cidr 10\.0\.0\.0\/16: their traffic is stored as external/,
      );
      expect(wrong.stderr).toMatch(/, 0 alerts/);
      // Lines whose prefix is another (Felix's logPrefix changed): none read, and said so.
      const input =
        "Apr 19 04:52:19 ip-1 kernel: cfd np a/b: IN=eth0 OUT=eni1 SRC=192.168.1.1 DST=192.168.1.2 LEN=60 TTL=1 PROTO=TCP SPT=1 DPT=2 SYN\n";
      const other = await runCli(["replay", "-", "--store", join(dir, "b"), "--cluster", "demo", "--quiet"], {
        input,
        env: { KUBECONFIG: "", HOME: dir },
      });
      expect(other.code).toBe(0);
      expect(other.stderr).toContain(
        'note: no line held the prefix "calico-packet": if Felix\'s logPrefix is another, give it with --prefix',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says how many records had no time of their own, and counts them when they are read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-untimed-"));
    try {
      const packet =
        "calico-packet: IN=eth0 OUT=eni1 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0";
      const input = [
        `[ 1234.567890] ${packet}`,
        JSON.stringify({ _HOSTNAME: "ip-192-168-74-5", MESSAGE: packet }),
        // Timed: syslog (with --year), and Fluent Bit's date key.
        `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${packet}`,
        JSON.stringify({ date: 1776574339.5, _HOSTNAME: "ip-192-168-74-5", MESSAGE: packet }),
      ].join("\n");
      const bare = ["--store", join(dir, "store"), "--cluster", "demo", "--year", "2026", "--quiet"];
      const before = Date.now();
      const run = await runCli(["replay", "-", ...bare], { input, env: { KUBECONFIG: "", HOME: dir } });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/replayed 4 lines: 4 calico records/);
      expect(run.stderr).toContain(
        "note: 2 calico records carried no time of their own (a kernel ring-buffer line, a JSON record without a readable time field): they are counted at the time they were read",
      );
      const stored = ndjson<FlowRecord>(
        (
          await runCli([
            "flows",
            "--store",
            join(dir, "store"),
            "--cluster",
            "demo",
            "--since",
            "3000d",
            "--json",
          ])
        ).stdout,
      );
      // The two timed records are one flow of their minute; the two others, from two reporters (the ring-buffer
      // line names none), flows of the minute they were read.
      const timed = stored.filter((f) => f.firstSeen.startsWith("2026-04-19"));
      expect(timed).toMatchObject([
        { firstSeen: "2026-04-19T04:52:19.000Z", lastSeen: "2026-04-19T04:52:19.500Z", packets: 2 },
      ]);
      const untimed = stored.filter((f) => !timed.includes(f));
      expect(untimed.reduce((n, f) => n + f.packets, 0)).toBe(2);
      for (const f of untimed) expect(Date.parse(f.firstSeen)).toBeGreaterThanOrEqual(before - 60_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts nothing again when the same file is replayed with other attribution", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-replay-again-"));
    try {
      const own = ["--store", dir, "--cluster", "demo"];
      const file = join(SAMPLE, "node-logs.log");
      expect((await runCli(["replay", file, ...own, "--quiet"])).code).toBe(0);
      // Now with the snapshots: every endpoint resolves otherwise, so each flow would have another key.
      const again = await runCli(["replay", file, ...own, ...SAMPLE_ATTRIBUTION, "--quiet"]);
      expect(again.code).toBe(0);
      expect(again.stderr).toMatch(/296 calico records \(296 counted by an earlier replay\)/);
      const stored = ndjson<FlowRecord>((await runCli(["flows", ...own, ...SAMPLE_DAY, "--json"])).stdout);
      expect(packets(stored)).toBe(296);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("prints a readable table by default", async () => {
    const run = await runCli([
      "flows",
      ...common,
      ...SAMPLE_DAY,
      "--namespace",
      "customer-b",
      "--limit",
      "3",
    ]);
    expect(run.code).toBe(0);
    const [header, ...rows] = run.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^LAST SEEN\s+SOURCE\s+DESTINATION\s+PORT/);
    expect(rows).toHaveLength(3);
  });

  it("refuses settings too long for the coverage claims to record as a usage error, before it makes a store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-settings-"));
    try {
      const never = join(dir, "store");
      const ranges = Array.from({ length: 150 }, (_, i) => ["--internal-cidr", `10.${i}.0.0/16`]).flat();
      const run = await runCli(["replay", "/dev/null", "--store", never, "--cluster", "demo", ...ranges]);
      expect(run.stderr).toMatch(
        /^error: the pipeline's settings take \d+ bytes .*: list fewer, wider ranges$/m,
      );
      expect(run.code).toBe(2);
      expect(existsSync(never)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
