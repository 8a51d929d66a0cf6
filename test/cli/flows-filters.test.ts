// `calico-flows flows` and `alerts` filters at the CLI: one generated log replayed once, every flow read back
// with no filter, then each filter combination compared with that list filtered here by the documented meaning
// (README "The CLI", DESIGN.md §3.3). The store's queries have their own oracle (flow-queries.test.ts); this one
// checks how the CLI turns options into a query, and the record and table it prints.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { kubeObjects } from "../support/kube-api-server.ts";
import { ndjson, runCli } from "./run.ts";

const MINUTE = 60_000;
// Whole minutes, so that each line is the only one in its bucket.
const NOW = Math.floor(Date.now() / MINUTE) * MINUTE;
const ago = (minutes: number) => NOW - minutes * MINUTE;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

const NODES = [
  { name: "node-a.internal", host: "node-a", ip: "192.168.0.5" },
  { name: "node-b.internal", host: "node-b", ip: "192.168.0.6" },
] as const;

interface PodSpec {
  ns: string;
  name: string;
  ip: string;
  owner?: { kind: string; name: string };
}

const PODS: PodSpec[] = [
  {
    ns: "alpha",
    name: "web-5f7c9d-x1",
    ip: "192.168.1.10",
    owner: { kind: "ReplicaSet", name: "web-5f7c9d" },
  },
  {
    ns: "alpha",
    name: "web-5f7c9d-y2",
    ip: "192.168.1.11",
    owner: { kind: "ReplicaSet", name: "web-5f7c9d" },
  },
  { ns: "alpha", name: "lonely", ip: "192.168.1.12" },
  { ns: "beta", name: "db-0", ip: "192.168.2.20", owner: { kind: "StatefulSet", name: "db" } },
  // Same workload name as alpha's Deployment, another kind, another namespace.
  { ns: "beta", name: "web-0", ip: "192.168.2.21", owner: { kind: "StatefulSet", name: "web" } },
];

const podJson = (p: PodSpec) => {
  const hash = p.owner?.kind === "ReplicaSet" ? p.owner.name.split("-").pop() : undefined;
  return kubeObjects.pod({
    name: p.name,
    namespace: p.ns,
    ip: p.ip,
    created: ago(3 * 24 * 60),
    node: NODES[0].name,
    labels: hash === undefined ? {} : { "pod-template-hash": hash },
    owner: p.owner,
  });
};

const nodeJson = (n: (typeof NODES)[number]) =>
  kubeObjects.node({ name: n.name, ip: n.ip, created: ago(30 * 24 * 60) });

const list = (items: unknown[]) => ({
  apiVersion: "v1",
  kind: "List",
  metadata: { resourceVersion: "" },
  items,
});

const EXTERNAL = "203.0.113.7";
const UNKNOWN = "192.168.9.9";
const ip = (ns: string, name: string) => PODS.find((p) => p.ns === ns && p.name === name)?.ip as string;

interface LineSpec {
  minutesAgo: number;
  reporter: (typeof NODES)[number];
  /** ingress: OUT= the destination's interface; egress: IN= the source's. */
  dir: "ingress" | "egress";
  src: string;
  dst: string;
  proto: "TCP" | "UDP";
  dport: number;
}

// One line per flow, each in its own minute: flows and lines are one to one.
const LINES: LineSpec[] = [
  // Older than the default 24 hours: only an explicit range, or --until with the default span, reaches it.
  {
    minutesAgo: 30 * 60,
    reporter: NODES[1],
    dir: "ingress",
    src: ip("alpha", "web-5f7c9d-x1"),
    dst: ip("beta", "db-0"),
    proto: "TCP",
    dport: 5432,
  },
  {
    minutesAgo: 40,
    reporter: NODES[1],
    dir: "ingress",
    src: ip("alpha", "web-5f7c9d-x1"),
    dst: ip("beta", "db-0"),
    proto: "TCP",
    dport: 5432,
  },
  {
    minutesAgo: 35,
    reporter: NODES[0],
    dir: "ingress",
    src: ip("beta", "db-0"),
    dst: ip("alpha", "web-5f7c9d-y2"),
    proto: "TCP",
    dport: 8080,
  },
  {
    minutesAgo: 30,
    reporter: NODES[1],
    dir: "ingress",
    src: ip("alpha", "web-5f7c9d-y2"),
    dst: ip("beta", "web-0"),
    proto: "TCP",
    dport: 80,
  },
  {
    minutesAgo: 25,
    reporter: NODES[0],
    dir: "ingress",
    src: NODES[0].ip,
    dst: ip("alpha", "web-5f7c9d-x1"),
    proto: "TCP",
    dport: 9102,
  },
  {
    minutesAgo: 20,
    reporter: NODES[1],
    dir: "ingress",
    src: EXTERNAL,
    dst: ip("beta", "db-0"),
    proto: "TCP",
    dport: 22,
  },
  {
    minutesAgo: 10,
    reporter: NODES[0],
    dir: "ingress",
    src: UNKNOWN,
    dst: ip("alpha", "lonely"),
    proto: "UDP",
    dport: 53,
  },
  {
    minutesAgo: 5,
    reporter: NODES[0],
    dir: "egress",
    src: ip("alpha", "lonely"),
    dst: EXTERNAL,
    proto: "TCP",
    dport: 443,
  },
  {
    minutesAgo: 2,
    reporter: NODES[1],
    dir: "ingress",
    src: ip("beta", "web-0"),
    dst: ip("beta", "db-0"),
    proto: "TCP",
    dport: 5432,
  },
];

function logLine(l: LineSpec, i: number): string {
  const ifaces = l.dir === "ingress" ? "IN=eth0 OUT=eni0dst" : "IN=eni0src OUT=eth0";
  const tail =
    l.proto === "TCP"
      ? `DF PROTO=TCP SPT=${40_000 + i} DPT=${l.dport} WINDOW=62727 RES=0x00 SYN URGP=0`
      : `PROTO=UDP SPT=${40_000 + i} DPT=${l.dport} LEN=40`;
  return (
    `${iso(ago(l.minutesAgo))} ${l.reporter.host} kernel: calico-packet: ${ifaces} ` +
    `MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${l.src} DST=${l.dst} LEN=60 TOS=0x00 PREC=0x00 ` +
    `TTL=63 ID=${i + 1} ${tail}`
  );
}

const ALL_TIME = ["--since", "3d", "--until", "now"];
const key = (f: FlowRecord) => f.id;
const ids = (fs: readonly FlowRecord[]) => fs.map(key).sort();

type Predicate = (f: FlowRecord) => boolean;
const either =
  (m: (e: Endpoint) => boolean): Predicate =>
  (f) =>
    m(f.src) || m(f.dst);
const inNs = (ns: string) => (e: Endpoint) => e.namespace === ns;
const seenBetween =
  (since: number, until: number): Predicate =>
  (f) =>
    Date.parse(f.lastSeen) >= since && Date.parse(f.firstSeen) <= until;

describe("calico-flows flows / alerts filters against the unfiltered listing", () => {
  let dir: string;
  let common: string[];
  let all: FlowRecord[];

  const flows = async (...args: string[]) => {
    const run = await runCli(["flows", ...common, "--json", ...args]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    return ndjson<FlowRecord>(run.stdout);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cf-filters-"));
    common = ["--store", join(dir, "store"), "--cluster", "filters"];
    const log = join(dir, "nodes.log");
    writeFileSync(log, `${LINES.map(logLine).join("\n")}\n`);
    writeFileSync(join(dir, "pods.json"), JSON.stringify(list(PODS.map(podJson))));
    writeFileSync(join(dir, "nodes.json"), JSON.stringify(list(NODES.map(nodeJson))));
    const run = await runCli([
      "replay",
      log,
      ...common,
      "--pods",
      join(dir, "pods.json"),
      "--nodes",
      join(dir, "nodes.json"),
      "--quiet",
    ]);
    expect(run.stderr).toMatch(new RegExp(`${LINES.length} calico records, 0 malformed`));
    expect(run.code).toBe(0);
    all = await flows(...ALL_TIME);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("stores one flow per line, attributed to every endpoint kind", () => {
    expect(all).toHaveLength(LINES.length);
    const kinds = new Set(all.flatMap((f) => [f.src.kind, f.dst.kind]));
    expect([...kinds].sort()).toEqual(["external", "node", "pod", "unknown"]);
    const webToDb = all.find((f) => f.dstPort === 5432 && f.src.namespace === "alpha");
    expect(webToDb?.src.workload).toEqual({ kind: "Deployment", name: "web" });
    expect(webToDb?.dst.workload).toEqual({ kind: "StatefulSet", name: "db" });
  });

  it("prints every field of DESIGN.md §3.3 under its name, nulls included", () => {
    const endpointFields = ["ip", "kind", "namespace", "name", "workload", "node"];
    const flowFields = [
      "src",
      "dst",
      "protocol",
      "dstPort",
      "direction",
      "reporter",
      "internal",
      "packets",
      "bytes",
      "firstSeen",
      "lastSeen",
      "policy",
    ];
    for (const f of all) {
      for (const field of flowFields) expect(Object.keys(f)).toContain(field);
      for (const e of [f.src, f.dst]) {
        for (const field of endpointFields) expect(Object.keys(e)).toContain(field);
        if (e.workload !== null) expect(Object.keys(e.workload).sort()).toEqual(["kind", "name"]);
      }
      expect(f.packets).toBe(1);
      expect(f.bytes).toBe(60);
      expect(["ingress", "egress"]).toContain(f.direction);
      expect(typeof f.internal).toBe("boolean");
    }
    const external = all.find((f) => f.src.ip === EXTERNAL);
    expect(external).toMatchObject({
      src: { ip: EXTERNAL, kind: "external", namespace: null, name: null, workload: null, node: null },
      dst: { kind: "pod", namespace: "beta", name: "db-0", workload: { kind: "StatefulSet", name: "db" } },
      protocol: "TCP",
      dstPort: 22,
      direction: "ingress",
      reporter: "node-b",
      internal: false,
      policy: null,
    });
    const dns = all.find((f) => f.dstPort === 53);
    expect(dns).toMatchObject({
      src: { ip: UNKNOWN, kind: "unknown", workload: null },
      // A pod without a controller is its own workload (functions/core/holders.ts).
      dst: { kind: "pod", namespace: "alpha", name: "lonely", workload: { kind: "Pod", name: "lonely" } },
      protocol: "UDP",
      internal: true,
    });
    const egress = all.find((f) => f.dstPort === 443);
    expect(egress).toMatchObject({ direction: "egress", reporter: "node-a", dst: { kind: "external" } });
    const fromNode = all.find((f) => f.dstPort === 9102);
    expect(fromNode?.src).toMatchObject({ ip: NODES[0].ip, kind: "node", name: NODES[0].name });
  });

  it("shows each endpoint kind in the table's columns", async () => {
    const run = await runCli(["flows", ...common, ...ALL_TIME]);
    expect(run.code).toBe(0);
    const [header, ...rows] = run.stdout.trimEnd().split("\n");
    expect(header?.split(/\s{2,}/)).toEqual([
      "LAST SEEN",
      "SOURCE",
      "DESTINATION",
      "PORT",
      "DIR",
      "REPORTER",
      "PACKETS",
      "INTERNAL",
      "POLICY",
    ]);
    // Cells are separated by two spaces or more; no cell here holds two spaces.
    const cells = rows.map((r) => r.split(/\s{2,}/));
    const row = (port: string) => cells.find((c) => c[3] === port);
    expect(cells).toHaveLength(all.length);
    expect(row("9102/TCP")?.slice(1, 3)).toEqual([`node/${NODES[0].name}`, "alpha/deployment/web"]);
    expect(row("22/TCP")?.slice(1, 9)).toEqual([
      `${EXTERNAL} (external)`,
      "beta/statefulset/db",
      "22/TCP",
      "ingress",
      "node-b",
      "1",
      "no",
      "-",
    ]);
    expect(row("53/UDP")?.slice(1, 3)).toEqual([`${UNKNOWN} (unknown)`, "alpha/pod/lonely"]);
    expect(row("443/TCP")?.slice(1, 5)).toEqual([
      "alpha/pod/lonely",
      `${EXTERNAL} (external)`,
      "443/TCP",
      "egress",
    ]);
    // ISO-8601 to the second: a time copied from the table is a --since or --until as it is.
    for (const c of cells) expect(c[0]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const lastSeen = row("22/TCP")?.[0] as string;
    const copied = await runCli(["flows", ...common, "--since", lastSeen, "--until", lastSeen, "--json"]);
    expect(copied.code).toBe(0);
    expect(ndjson<FlowRecord>(copied.stdout).map((f) => f.dstPort)).toContain(22);
  });

  // Each case: CLI options, and the documented meaning as a predicate over the unfiltered listing.
  const db = ip("beta", "db-0");
  const cases: [string, string[], Predicate][] = [
    ["namespace: source or destination", ["--namespace", "alpha"], either(inNs("alpha"))],
    [
      "namespace and workload name: on the same end",
      ["--namespace", "beta", "--workload", "web"],
      either((e) => e.namespace === "beta" && e.workload?.name === "web"),
    ],
    [
      "workload as kind/name, kind in any case",
      ["--namespace", "alpha", "--workload", "deployment/web"],
      either(
        (e) => e.namespace === "alpha" && e.workload?.kind === "Deployment" && e.workload.name === "web",
      ),
    ],
    ["workload of another kind: none", ["--namespace", "beta", "--workload", "Deployment/web"], () => false],
    [
      "pod in its namespace",
      ["--namespace", "alpha", "--pod", "web-5f7c9d-x1"],
      either((e) => e.namespace === "alpha" && e.kind === "pod" && e.name === "web-5f7c9d-x1"),
    ],
    ["pod IP: either end", ["--ip", db], either((e) => e.ip === db)],
    ["external IP", ["--ip", EXTERNAL], either((e) => e.ip === EXTERNAL)],
    ["unknown IP", ["--ip", UNKNOWN], either((e) => e.ip === UNKNOWN)],
    ["node IP", ["--ip", NODES[0].ip], either((e) => e.ip === NODES[0].ip)],
    [
      "IP and namespace: both hold",
      ["--ip", db, "--namespace", "alpha"],
      (f) => either((e) => e.ip === db)(f) && either(inNs("alpha"))(f),
    ],
    [
      "IP, namespace and workload: all hold",
      ["--ip", db, "--namespace", "beta", "--workload", "web"],
      (f) =>
        either((e) => e.ip === db)(f) &&
        either((e) => e.namespace === "beta" && e.workload?.name === "web")(f),
    ],
    ["internal false", ["--internal", "false"], (f) => !f.internal],
    [
      "internal (no value) and namespace",
      ["--namespace", "beta", "--internal"],
      (f) => f.internal && either(inNs("beta"))(f),
    ],
  ];

  it.each(cases)("%s", async (name, filters, keep) => {
    const expected = all.filter(keep);
    // Each case narrows the listing, so that an ignored filter shows.
    expect(expected.length).toBeLessThan(all.length);
    if (!name.endsWith("none")) expect(expected.length).toBeGreaterThan(0);
    expect(ids(await flows(...ALL_TIME, ...filters))).toEqual(ids(expected));
  });

  it("refuses a workload in an alert key's ns/Kind/name form rather than answer nothing", async () => {
    const run = await runCli([
      "flows",
      ...common,
      ...ALL_TIME,
      "--namespace",
      "beta",
      "--workload",
      "beta/StatefulSet/web",
    ]);
    expect(run.stderr).toMatch(/^error: --workload must be \[kind\/\]name/);
    expect(run.code).toBe(2);
  });

  it("reads --since and --until as durations before now, combined with other filters", async () => {
    // Lines sit on whole minutes at least two minutes from any bound, so the second the CLI starts in is no matter.
    const recent = await flows("--since", "15m", "--namespace", "alpha");
    expect(ids(recent)).toEqual(
      ids(all.filter((f) => seenBetween(ago(15), NOW)(f) && either(inNs("alpha"))(f))),
    );
    expect(recent.length).toBeGreaterThan(0);
    const window = await flows("--since", "33m", "--until", "22m");
    expect(ids(window)).toEqual(ids(all.filter(seenBetween(ago(33), ago(22)))));
    expect(window).toHaveLength(2);
    // No --since: the last 24 hours.
    expect(ids(await flows())).toEqual(ids(all.filter(seenBetween(ago(24 * 60), NOW))));
  });

  it("takes --until without --since as the 24 hours before it, as the query API does", async () => {
    // The API's default range is `until - 24h` (functions/query/handler.ts); a CLI that anchored it to now
    // would call this range inverted, though the user gave no --since at all.
    const old = await flows("--until", "25h");
    expect(ids(old)).toEqual(ids(all.filter(seenBetween(ago(49 * 60), ago(25 * 60)))));
    expect(old).toHaveLength(1);
  });

  it("lists alerts opened in the range, as the flows that opened them", async () => {
    const alerts = async (...args: string[]) => {
      const run = await runCli(["alerts", ...common, "--json", ...args]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      return ndjson<AlertRecord>(run.stdout);
    };
    const every = await alerts(...ALL_TIME);
    expect(every.length).toBeGreaterThan(1);
    for (const a of every) {
      expect(Object.keys(a)).toEqual(
        expect.arrayContaining(["src", "dst", "protocol", "dstPort", "openedAt"]),
      );
    }
    const opened = (since: number, until: number) =>
      every
        .filter((a) => Date.parse(a.openedAt) >= since && Date.parse(a.openedAt) <= until)
        .map((a) => a.id)
        .sort();
    const window = await alerts("--since", "38m", "--until", "8m");
    expect(window.map((a) => a.id).sort()).toEqual(opened(ago(38), ago(8)));
    expect(window.length).toBeGreaterThan(0);
    expect(window.length).toBeLessThan(every.length);
    const old = await alerts("--until", "25h");
    expect(old.map((a) => a.id).sort()).toEqual(opened(ago(49 * 60), ago(25 * 60)));
  });
});
