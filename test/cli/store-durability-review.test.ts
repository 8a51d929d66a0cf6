// The embedded store's durability, as an operator on a laptop or a CI job meets it: replays stopped half way (a
// second Ctrl-C, SIGKILL, the OOM killer) and run again, stores LevelDB cannot open, and a store shared with a
// process in another container. Each test pins a defect: counts lost or doubled across an interrupted replay
// (DESIGN.md §4: "Nothing lost, nothing double-counted"; README: a line counted by an earlier replay is not counted
// again), or a stack trace where main.ts promises one line that says what went wrong.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { type KubeApiServer, startKubeApiServer } from "../support/kube-api-server.ts";
import { BIN, ndjson, ROOT, runCli, SAMPLE, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

/** The demo's syslog TCP denials (internal, distinct lines), as `kubectl logs` prints them. */
const TCP_LINES = readFileSync(join(SAMPLE, "node-logs.log"), "utf8")
  .split("\n")
  .filter((l) => l.includes("calico-packet") && l.includes("PROTO=TCP") && !l.startsWith("{"));

/**
 * `n` denials from the web pod of the demo (192.168.22.247, customer-a) to the internet, each to its own port: one
 * flow per line, within one minute of the demo's day.
 */
const egressLines = (n: number): string =>
  Array.from(
    { length: n },
    (_, i) =>
      `2026-04-19T04:51:${String(i % 60).padStart(2, "0")}Z ip-192-168-12-9 kernel: calico-packet: IN=eni3b1f0c2a9d4 OUT=eth0 ` +
      `SRC=192.168.22.247 DST=8.8.8.8 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${i} DF PROTO=TCP SPT=40000 DPT=${1000 + i} ` +
      "WINDOW=62727 RES=0x00 SYN URGP=0\n",
  ).join("");

/** Matches a Node stack trace's frames, which the CLI prints only with CALICO_FLOWS_DEBUG. */
const STACK_FRAME = /^\s+at .+[:)]/m;

let scratch: string;
let kube: KubeApiServer;
beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "cf-store-durability-"));
  kube = await startKubeApiServer();
});
afterAll(async () => {
  await kube?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const fresh = (name: string): string => mkdtempSync(join(scratch, `${name}-`));

const closed = (child: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => child.on("close", (code) => resolve(code)));

/** The replay CLI as a long-running process, its stderr collected. */
function startReplay(args: readonly string[], input?: string): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, "replay", ...args], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  if (input !== undefined) child.stdin?.end(input);
  return { child, stderr: () => stderr };
}

async function until(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(20);
  }
}

/**
 * Bytes in the store's directory: LevelDB appends every write to its log at once. A file listed may be gone by
 * its stat (LevelDB replaces its manifest and logs as it opens and compacts).
 */
const storeBytes = (dir: string): number =>
  existsSync(dir)
    ? readdirSync(dir).reduce((n, f) => n + (statSync(join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0)
    : 0;

/** Packets of the demo's day in the store, as `flows --json` lists them. */
async function packets(store: string): Promise<number> {
  const run = await runCli([
    "flows",
    "--store",
    store,
    "--cluster",
    "demo",
    ...SAMPLE_DAY,
    "--json",
    "--limit",
    "100000",
  ]);
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  return ndjson<FlowRecord>(run.stdout).reduce((n, f) => n + f.packets, 0);
}

describe("the embedded store across a replay stopped half way", () => {
  it("counts a batch that a replay quit in the middle of (a second Ctrl-C) when a later replay reads its lines in another batch", async () => {
    // Defect: replay claims a batch's lines in the coverage records before attributing and storing them. Quit
    // after the claim and before the flows were stored (the second Ctrl-C that "quits now" while the Kubernetes API
    // is slow, SIGKILL, the OOM killer), the claim stays, never marked stored, and every later replay skips those
    // lines as "counted by an earlier replay" unless it batches them exactly as the dead one did (the same lines,
    // no more, no fewer) — which a followed stream's batches, cut by time, never are.
    // Impact: `kubectl logs -f | calico-flows replay -`, Ctrl-C Ctrl-C, then the usual catch-up
    // `kubectl logs --since=1h | calico-flows replay -`: the denials of the quit batch are gone from the store for
    // good, and the summary says they were counted.
    // Expected: lines whose claim was never stored are counted by the next replay that reads them (the embedded
    // store's lock means no other writer can still be storing them): every line once.
    const store = join(fresh("quit"), "store");
    const common = ["--store", store, "--cluster", "demo", "--year", "2026", "--quiet"];
    await kube.setFault({ kind: "hang" });
    kube.counts.reset();
    try {
      const followed = startReplay(["-", ...common, "--kubeconfig", kube.kubeconfigPath]);
      const exited = closed(followed.child);
      // Three lines of a followed stream: the idle input closes their batch, which is claimed, then attributed.
      followed.child.stdin?.write(`${TCP_LINES.slice(0, 3).join("\n")}\n`);
      await until("the batch is being attributed", () => kube.counts.total() > 0);
      followed.child.kill("SIGINT");
      await until("the first Ctrl-C is handled", () => followed.stderr().includes("interrupted"));
      followed.child.kill("SIGINT");
      expect(await exited).toBe(130);
    } finally {
      await kube.setFault(null);
    }

    // The catch-up: the same three lines and the two that followed them, attributed from snapshot files.
    const again = await runCli(["replay", "-", ...common, ...SAMPLE_ATTRIBUTION], {
      input: `${TCP_LINES.slice(0, 5).join("\n")}\n`,
    });
    expect(again.code).toBe(0);
    expect(await packets(store)).toBe(5);
    expect(again.stderr).not.toMatch(/counted by an earlier replay/);
  }, 30_000);

  it("does not count again the flows a SIGKILLed replay stored before it died, when the rerun attributes them", async () => {
    // Defect: a replay killed while writing a batch's flows (SIGKILL, the OOM killer, a laptop's battery) leaves
    // part of them stored and its claim unmarked. The rerun of the same input finishes the claim under the same
    // contribution, but attributes afresh: an attribution memo is kept only when a run fails in-process
    // (core/ingest.ts), never for a process that is killed. Attributed otherwise (here: with the pods file the
    // operator adds after seeing "unresolved"; equally a kubeconfig whose API is reachable again), every flow gets
    // another key, so the flows stored before the kill are counted a second time beside the new ones.
    // Impact: the packets of the part stored before the kill appear twice (once unresolved, once as the pod), and
    // the totals are inflated.
    // Expected: each line counted once, however the rerun attributes: 400 packets for 400 lines.
    const store = join(fresh("killed"), "store");
    const input = join(scratch, "egress.log");
    writeFileSync(input, egressLines(400));
    const common = ["--store", store, "--cluster", "demo", "--quiet"];
    const first = startReplay([input, ...common]);
    const exited = closed(first.child);
    // Each flow write appends about 3 KB to LevelDB's log: killed after roughly a third of the flows.
    await until("part of the flows are stored", () => storeBytes(store) > 450_000);
    first.child.kill("SIGKILL");
    await exited;
    const stored = await packets(store);
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(400);

    const rerun = await runCli(["replay", input, ...common, ...SAMPLE_ATTRIBUTION]);
    expect(rerun.code).toBe(0);
    expect(await packets(store)).toBe(400);
  }, 40_000);
});

describe("a --store that names an existing directory holding no store", () => {
  it("is not made a store by replay at the cost of the operator's files in it", async () => {
    // Defect: only the reading commands refuse a directory that holds no store (store.ts, `existing`); `replay`
    // opens LevelDB in whatever directory --store names. LevelDB takes the files there named as its own for its
    // own: a date-named log (`20260419.log`, digits then `.log`) is "recovered" as its write-ahead log and then
    // deleted as obsolete, and a file named `LOG` is rotated to `LOG.old`, over whatever had that name.
    // Impact: `cd ~/incident-logs && calico-flows replay 20260419.log --store .` (or `--store ~/incident-logs`)
    // deletes the very log being replayed, and every other such log in the directory, without a word.
    // Expected: the operator's files are left as they were — replay refuses a non-empty directory that holds no
    // store, as `flows` does, or keeps its files elsewhere.
    const dir = fresh("logs-dir");
    const log = join(dir, "20260419.log");
    const text = `${TCP_LINES.slice(0, 3).join("\n")}\n`;
    writeFileSync(log, text);
    writeFileSync(join(dir, "LOG"), "my notes on the incident\n");
    const run = await runCli([
      "replay",
      log,
      "--store",
      dir,
      "--cluster",
      "demo",
      "--year",
      "2026",
      "--quiet",
    ]);
    expect(run.stderr).not.toMatch(STACK_FRAME);
    expect(existsSync(log) ? readFileSync(log, "utf8") : "(deleted)").toBe(text);
    expect(readFileSync(join(dir, "LOG"), "utf8")).toBe("my notes on the incident\n");
  }, 30_000);
});

describe("the settings recorded beside an embedded store", () => {
  it("are not silently forgotten when a crashed or disk-full write left calico-flows.json empty", async () => {
    // Defect: store.ts rewrites calico-flows.json (the bucket lengths and clusters the store's flows were counted
    // in) with a plain writeFileSync: truncate, then write, no temporary file, no fsync. A full disk (the truncate
    // succeeds, the write fails with ENOSPC), a crash or a power cut between the two leaves it empty, unlike
    // LevelDB's own files. readSettings then reads "nothing recorded" without a word, so `flows` reads a range as if
    // every flow had been counted in one-minute buckets and answers "no records in that range" for flows the store
    // holds; the next replay rewrites the file with its own settings only, and the record is lost for good.
    // Impact: an operator who replayed with --bucket-seconds 3600 (as a CI job to keep its store small might) is
    // told a half-hour holds no denial when the store holds one in it.
    // Expected: a settings file that cannot be read is not taken for an empty one: `flows` either still finds the
    // flow (reading as if the longest bucket had been used) or fails naming calico-flows.json — never a silent
    // "no records".
    const store = join(fresh("settings"), "store");
    const packet = (time: string, port: number) =>
      `${time} ip-192-168-74-5 kernel: calico-packet: IN=eni8d48114818c OUT=eni77aa10fe321 SRC=192.168.30.17 ` +
      `DST=192.168.22.247 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${port} DPT=8080 WINDOW=62727 RES=0x00 SYN URGP=0\n`;
    const made = await runCli(
      ["replay", "-", "--store", store, "--cluster", "demo", "--bucket-seconds", "3600", "--quiet"],
      { input: packet("2026-04-19T04:05:00Z", 40000) + packet("2026-04-19T04:50:00Z", 40001) },
    );
    expect(made.code).toBe(0);
    const half = ["--since", "2026-04-19T04:30:00Z", "--until", "2026-04-19T05:00:00Z"];
    const before = await runCli(["flows", "--store", store, "--cluster", "demo", ...half, "--json"]);
    expect(ndjson<FlowRecord>(before.stdout)).toHaveLength(1);

    writeFileSync(join(store, "calico-flows.json"), "");
    const after = await runCli(["flows", "--store", store, "--cluster", "demo", ...half, "--json"]);
    if (after.code === 0) expect(ndjson<FlowRecord>(after.stdout)).toHaveLength(1);
    else expect(after.stderr).toMatch(/^error: .*calico-flows\.json/m);
  }, 30_000);
});

describe("an embedded store LevelDB cannot open", () => {
  it("is one clear error naming the store, not dynalite's stack trace", async () => {
    // Defect: when LevelDB fails to open the directory (a damaged store: here its MANIFEST emptied, as a full disk or
    // an interrupted copy or CI cache restore leaves it), dynalite throws "Database is closed" from inside its HTTP
    // handler: an uncaught exception that kills the process with a stack trace, past main.ts's one-line errors.
    // Nothing says which store, or that it is damaged. (embedded.ts expects dynalite to hang there instead.)
    // Impact: `flows`, `alerts` and `replay` crash with a Node stack trace and a message that points nowhere.
    // Expected: exit 1 with one `error:` line that names the store and what LevelDB said, no stack frames.
    const store = join(fresh("damaged"), "store");
    const made = await runCli(
      ["replay", "-", "--store", store, "--cluster", "demo", "--year", "2026", "--quiet"],
      {
        input: `${TCP_LINES.slice(0, 3).join("\n")}\n`,
      },
    );
    expect(made.code).toBe(0);
    const manifest = readdirSync(store).find((f) => f.startsWith("MANIFEST-")) as string;
    writeFileSync(join(store, manifest), "");

    const flows = await runCli(["flows", "--store", store, "--cluster", "demo", ...SAMPLE_DAY]);
    expect(flows.code).toBe(1);
    expect(flows.stderr).not.toMatch(STACK_FRAME);
    expect(flows.stderr).toMatch(/^error: .*embedded store/m);
    expect(flows.stderr).toContain(store);
  }, 30_000);

  it("held by a replay in another pid namespace (a container sharing the directory) is refused as in use, not taken over", async () => {
    // Defect: the lock file holds the pid of the process using the store, and a pid that is not alive here counts as
    // a killed command's lock, which is removed. A replay running in a container that shares the directory
    // (`docker run -v $PWD:/w …`) writes its pid in its own pid namespace, which does not exist (or is another
    // program) on the host. So `flows` on the host deletes the running replay's lock and opens the store, whose
    // LevelDB the replay holds: it crashes with dynalite's "Database is closed" stack trace, leaving its own pid in
    // the lock of a store the replay still holds. (Written here as such a replay's lock reads on this side: a pid
    // that is not alive.)
    // Impact: a stack trace instead of "in use", and the live replay's lock silently replaced.
    // Expected: refused with the "in use" error (LevelDB's own lock on the directory says so whatever the pid), exit
    // 1, no stack trace, and the replay's lock file left as it was.
    const store = join(fresh("shared"), "store");
    const replay = startReplay(["-", "--store", store, "--cluster", "demo", "--year", "2026", "--quiet"]);
    const exited = closed(replay.child);
    try {
      const lock = join(store, "calico-flows.lock");
      // Locked, and LevelDB opened (its CURRENT written) with the table made.
      await until(
        "the replay has opened its store",
        () => existsSync(lock) && existsSync(join(store, "CURRENT")),
      );
      await sleep(500);
      // A pid that is not alive in this namespace: a process that has just exited.
      const gone = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
      await closed(gone);
      writeFileSync(lock, String(gone.pid));

      const flows = await runCli(["flows", "--store", store, "--cluster", "demo", ...SAMPLE_DAY]);
      expect(flows.stderr).not.toMatch(STACK_FRAME);
      expect(flows.stderr).toMatch(/in use/);
      expect(flows.code).toBe(1);
      expect(readFileSync(lock, "utf8")).toBe(String(gone.pid));
    } finally {
      replay.child.stdin?.end();
      await exited;
    }
  }, 30_000);
});
