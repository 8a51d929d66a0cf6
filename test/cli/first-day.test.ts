// First day with the CLI, as a production EKS operator meets it: the demo, a replay of the sample, `flows` and
// `alerts`, `parse`, the help and the mistakes everyone makes once. Each test pins a defect found in that review:
// the CLI disagreed with README.md / DESIGN.md, or with what an operator would reasonably expect.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { BIN, ROOT, runCli, SAMPLE } from "./run.ts";

const PACKET =
  "calico-packet: IN=eni1 OUT=eni2 SRC=192.168.41.8 DST=192.168.22.247 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=62727 RES=0x00 SYN URGP=0";
/** Two denials of 2024, ISO-stamped: always far outside `flows`' default range (the last 24 hours). */
const OLD_LINES = `2024-04-19T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}\n2024-04-19T04:53:19Z ip-192-168-74-5 kernel: ${PACKET}\n`;

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "cf-first-day-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh directory under the scratch one. */
const fresh = (name: string): string => mkdtempSync(join(scratch, `${name}-`));

/** Resolves with the exit code once `child` has closed. */
const closed = (child: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => child.on("close", (code) => resolve(code)));

describe.concurrent("calico-flows on an operator's first day", () => {
  it("flows refuses a --store that names a directory holding no store, and writes nothing into it", async ({
    expect,
  }) => {
    // store.ts: a read-only command must not make a store where --store points ("a mistyped --store would otherwise
    // be created empty and answer 'no records'"). That holds for a missing directory only: pointed at an existing
    // one (the logs directory, `examples/demo`, the home directory) it writes LevelDB files there and answers
    // "no records in that range".
    const dir = fresh("not-a-store");
    writeFileSync(join(dir, "notes.txt"), "my own file\n");
    const run = await runCli(["flows", "--store", dir]);
    expect(readdirSync(dir)).toEqual(["notes.txt"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/embedded store/);
    expect(run.stdout).not.toContain("no records in that range");
  });

  it("takes over a lock left by a calico-flows process that is gone, though its pid now belongs to another program", async ({
    expect,
  }) => {
    // A replay killed hard (OOM, SIGKILL, a reboot) leaves calico-flows.lock behind; pids are reused, in a
    // container within minutes. The store then stays locked "by another calico-flows process (pid N); stop it",
    // naming an unrelated program for the operator to stop.
    const store = fresh("stale-lock");
    const made = await runCli(["replay", "-", "--store", store, "--quiet"], { input: OLD_LINES });
    expect(made.code).toBe(0);
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      writeFileSync(join(store, "calico-flows.lock"), String(other.pid));
      const run = await runCli(["flows", "--store", store, "--since", "2024-04-19", "--until", "2024-04-20"]);
      expect(run.stderr).not.toMatch(/in use by another calico-flows process/);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("192.168.22.247");
    } finally {
      other.kill();
    }
  });

  it("demo removes its temporary store when its reader goes away (`npm start | head`)", async ({
    expect,
  }) => {
    // README: `demo` keeps its store in "a new temporary directory" unless --store is given, and demo.ts removes it
    // when the demo ends. A closed stdout (EPIPE) exits the process past that cleanup: every `npm start | head`
    // leaves a calico-flows-demo-* store (with its lock file) in the temporary directory.
    const tmp = fresh("tmpdir");
    const child = spawn(process.execPath, [BIN, "demo"], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      stdio: ["ignore", "pipe", "ignore"],
    });
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await closed(child);
    expect(code).toBe(0);
    expect(readdirSync(tmp).filter((name) => name.startsWith("calico-flows-demo-"))).toEqual([]);
  });

  it("--version prints the version", async ({ expect }) => {
    // main.ts: "Help and --version end with 0", but no --version is defined: it is an unknown option (exit 2).
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const run = await runCli(["--version"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toContain(version);
  });

  it("parse refuses --year 26 as replay does, rather than stamping records with the year 0026", async ({
    expect,
  }) => {
    // DESIGN.md §3.1: `--year YYYY`. `replay --year 26` is a usage error (1970–9999); `parse --year 26` takes it
    // and prints "time": "0026-04-19T…" for every record.
    const line = `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${PACKET}\n`;
    const replay = await runCli(["replay", "--year", "26", "/dev/null", "--store", join(scratch, "never")]);
    expect(replay.code).toBe(2);
    const run = await runCli(["parse", "--year", "26"], { input: line });
    expect(run.stdout).not.toContain('"time":"0026-');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--year/);
  });

  it("says what is wrong with a bad --internal-cidr: the longest IPv4 prefix, one range per option", async ({
    expect,
  }) => {
    // DESIGN.md §4: bad input "is reported precisely". Every refused CIDR gets one message, "expected an IPv4 or
    // IPv6 address, "/", and a prefix length": `10.0.0.0/33` has all three, and a comma-separated list (as
    // INTERNAL_CIDRS is written) is not told to repeat the option, as --workload-interface-prefix's is.
    const reason = async (cidr: string) => {
      const run = await runCli(["flows", "--store", join(scratch, "never"), "--internal-cidr", cidr]);
      expect(run.code).toBe(2);
      // What commander says around it names the option and echoes the value: only the reason counts.
      return (run.stderr.split("\n")[0] ?? "").replaceAll(cidr, "");
    };
    expect(await reason("10.0.0.0/33")).toMatch(/\b32\b/);
    expect(await reason("10.0.0.0/8,172.16.0.0/12")).toMatch(/one (CIDR|range) per --internal-cidr|repeat/i);
  });

  it("replay refuses a --alerts-topic that is no SNS topic ARN as a usage error, before it makes a store", async ({
    expect,
  }) => {
    // README: exit 2 for "an unknown or invalid option"; errors.test.ts: replay refuses bad options "before it
    // makes a store". A mistyped topic ARN exits 1 after the store is made (and the directory warning printed).
    const store = join(fresh("topic"), "store");
    const run = await runCli([
      "replay",
      "/dev/null",
      "--store",
      store,
      "--cluster",
      "prod",
      "--alerts-topic",
      "not-an-arn",
    ]);
    expect(run.stderr).toMatch(/^error: .*not-an-arn/m);
    expect(run.code).toBe(2);
    expect(existsSync(store)).toBe(false);
  });

  it("replay says --namespace-label needs --namespaces when it attributes from snapshot files", async ({
    expect,
  }) => {
    // With --pods but no --namespaces file, the labels asked for can come from nowhere: every flow is stored
    // without them and nothing says why (the option's help only hints "(for --namespace-label)" on --namespaces).
    const store = join(fresh("labels"), "store");
    const run = await runCli([
      "replay",
      join(SAMPLE, "node-logs.log"),
      "--store",
      store,
      "--pods",
      join(SAMPLE, "pods.json"),
      "--year",
      "2026",
      "--namespace-label",
      "baseten.co/organization",
      "--quiet",
    ]);
    expect(run.stderr).toMatch(/--namespaces/);
  });

  it("flows says the store holds flows outside the range when its default last 24 hours hold none", async ({
    expect,
  }) => {
    // README: replay a log, then `flows`. For any log older than a day the answer is "no records in that range"
    // and nothing else (the replay's summary does not say which times it stored either): the quiet-cluster
    // answer the other notes exist to prevent (a --cluster the store does not hold is named on stderr).
    const store = fresh("old");
    const replayed = await runCli(["replay", "-", "--store", store, "--quiet"], { input: OLD_LINES });
    expect(replayed.code).toBe(0);
    const run = await runCli(["flows", "--store", store]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("no records in that range\n");
    expect(run.stderr).toMatch(/--since/);
  });
});
