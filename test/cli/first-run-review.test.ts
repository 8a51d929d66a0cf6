// The CLI's first hour with a new operator: help for every command, typos, time arguments, the README's own
// pipeline, files as Windows writes them, a mistyped --table, an empty store. Each test is one defect found in
// review: it fails on the code as reviewed and passes once that is fixed.
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { BIN, ndjson, ROOT, type RunResult, runCli } from "./run.ts";

const PACKET =
  "calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";

let scratch: string;
let dynamo: TestStore;
beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "cf-first-run-"));
  dynamo = await startTestStore();
});
afterAll(async () => {
  await dynamo?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A fresh directory under the scratch one. */
const fresh = (name: string): string => mkdtempSync(join(scratch, `${name}-`));

describe("help and typos", () => {
  it("`help flow` (a typo) says the command is unknown and suggests `flows`, as `calico-flows flow` does", async () => {
    // Defect: `calico-flows flow` answers "error: unknown command 'flow' (Did you mean flows?)", but `calico-flows
    // help flow` dumps the whole program help on stderr and exits 2 without a word about what was wrong (commander's
    // help command with an unknown name; main.ts only handles the other path). Impact: the operator who asks for help
    // on a command sees forty lines and no reason for the failure, the opposite of main.ts's own rule ("a hint, not
    // the whole help"). Expected: the same one-line refusal and suggestion as the mistyped command itself.
    const run = await runCli(["help", "flow"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown command 'flow'/);
    expect(run.stderr).toMatch(/Did you mean flows\?/);
  });

  it("`help panic apply` shows the options of `panic apply`, not the list of panic's subcommands", async () => {
    // Defect: the program's help command reads only its first word: `calico-flows help panic apply` prints the
    // `panic` group's help (apply, status, revert) and exits 0, without --reason (required), --ttl, --dry-run or
    // --direct. Impact: in an incident the one command whose options matter most is the one `help` does not show;
    // `panic help apply` and `panic apply --help` do. Expected: `help panic apply` prints `panic apply`'s help.
    const run = await runCli(["help", "panic", "apply"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: calico-flows panic apply \[options\]/);
    expect(run.stdout).toContain("--reason <text>");
    expect(run.stdout).toContain("--ttl <minutes>");
  });

  it("the help of every command with --since / --until says a time without an offset is UTC", async () => {
    // Defect: README and the error message (INSTANT_HELP) say a time argument is "UTC unless it has an offset", but
    // `flows --help`, `alerts --help` and `backfill --help` describe --since/--until only as "ISO time or a duration
    // before now". Impact: an operator in Berlin reads the help, types `--since 2026-12-07T10:00` meaning local time
    // and silently gets the hour after (or before) the one wanted; `replay --help` and `parse --help` do say UTC for
    // --year. Expected: the time options' help says how a time without an offset is read.
    for (const command of ["flows", "alerts", "backfill"]) {
      const run = await runCli([command, "--help"]);
      expect(run.code, command).toBe(0);
      expect(run.stdout, command).toMatch(/UTC/);
    }
  });
});

describe("the README's pipeline and files as operators have them", () => {
  it("replay keeps the time and node of lines from `kubectl logs -l app=calico-logs --prefix`", async () => {
    // Defect: kubectl's --prefix (the usual companion of -l, to see which pod logged a line) puts
    // `[pod/<pod>/<container>] ` before each line. The parser reads `kubectl logs --timestamps` and container-runtime
    // wrappers (architecture.md, "The time of a line") but not this one: the syslog header is not found, so the
    // record has no time and no node. Impact: following the README's `kubectl logs -l app=calico-logs ... -f |
    // calico-flows replay -` with --prefix stores every denial at the moment it was read, under reporter "unknown",
    // and a replay of the same file tomorrow counts it all again at tomorrow's time. Expected: the prefix is skipped
    // like the other wrappers, and the line's own stamp and host are used.
    const store = join(fresh("kubectl-prefix"), "store");
    const input = [
      `[pod/calico-logs-x7k2p/calico-logs] Apr 19 04:52:19 ip-192-168-74-5 kernel: ${PACKET}`,
      `[pod/calico-logs-x7k2p/calico-logs] Apr 19 04:52:20 ip-192-168-74-5 kernel: ${PACKET}`,
      "",
    ].join("\n");
    const replayed = await runCli(["replay", "-", "--store", store, "--year", "2026", "--quiet"], { input });
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).not.toMatch(/carried no time of their own/);
    const run = await runCli([
      "flows",
      "--store",
      store,
      "--since",
      "2026-04-19T00:00:00Z",
      "--until",
      "2026-04-20T00:00:00Z",
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const flows = ndjson<FlowRecord>(run.stdout);
    expect(flows.map((f) => [f.firstSeen, f.lastSeen, f.reporter])).toEqual([
      ["2026-04-19T04:52:19.000Z", "2026-04-19T04:52:20.000Z", "ip-192-168-74-5"],
    ]);
  });

  it("replay and parse refuse a UTF-16 file (PowerShell's `>`) instead of advising --prefix", async () => {
    // Defect: Windows PowerShell 5's `kubectl logs ... > calico.log` writes UTF-16LE with a byte order mark. replay
    // reads it as UTF-8, finds no "calico-packet" (every other byte is NUL), makes the store, exits 0 and says
    // "no line held the prefix "calico-packet": if Felix's logPrefix is another, give it with --prefix"; parse
    // prints "3 skipped (not calico-packet)" and exits 0. Impact: the operator is sent to change a prefix that is
    // right, and the empty store then answers "no records". replay and parse already recognise gzip, zstd, xz and
    // bzip2 input by its first bytes and say how to convert it. Expected: the same for a UTF-16 byte order mark:
    // an error that names UTF-16, and a non-zero exit.
    const dir = fresh("utf16");
    const text = `2024-04-19T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}\r\n`.repeat(3);
    const file = join(dir, "calico.log");
    writeFileSync(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]));

    const replayed = await runCli(["replay", file, "--store", join(dir, "store"), "--quiet"]);
    expect(replayed.stderr).not.toMatch(/give it with --prefix/);
    expect(replayed.stderr).toMatch(/UTF-16/i);
    expect(replayed.code).not.toBe(0);

    const parsed = await parseFile(file);
    expect(parsed.stderr).toMatch(/UTF-16/i);
    expect(parsed.code).not.toBe(0);
  });
});

describe("stores an operator names or makes by mistake", () => {
  it("flows and alerts --table name the table and region they could not find, not only 'Requested resource not found'", async () => {
    // Defect: a --table that is not there (a typo, or the right name in the wrong region: the profile's default
    // region rather than the stack's) fails with DynamoDB's bare "error: Requested resource not found", exit 1. The
    // embedded store's equivalent says "no embedded store in DIR (`calico-flows replay` makes one; ...)". Impact: the
    // operator cannot tell whether the table, the region, the endpoint or the credentials are wrong. Expected: the
    // error names the table and the region it was looked for in.
    const env = {
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_REGION: "eu-west-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_PROFILE: undefined,
      HOME: scratch,
    };
    for (const command of ["flows", "alerts"]) {
      const run = await runCli([command, "--table", "calico-flows-prod", "--region", "eu-west-1"], { env });
      expect(run.code, command).toBe(1);
      expect(run.stderr, command).toMatch(/^error: /);
      expect(run.stderr, command).toContain("calico-flows-prod");
      expect(run.stderr, command).toContain("eu-west-1");
    }
  });

  it("flows on an embedded store that holds no flow at all says so, not only 'no records in that range'", async () => {
    // Defect: a replay that stored nothing (an input without calico lines, the wrong file) leaves an empty store;
    // `flows` then prints "no records in that range" and nothing on stderr. The default range's look at all times
    // (firstOutside) has just found no flow anywhere, and says nothing. Impact: the answer reads as a quiet last 24
    // hours, and the operator widens --since again and again; the notes for another --cluster and for flows at other
    // times exist to prevent exactly that answer. Expected: a note on stderr that the store holds no flows.
    const store = join(fresh("empty"), "store");
    const replayed = await runCli(["replay", "-", "--store", store, "--quiet"], {
      input: "Apr 19 04:52:19 ip-192-168-74-5 systemd[1]: Started Session 1 of user ec2-user.\n",
    });
    expect(replayed.code, replayed.stderr).toBe(0);
    const run = await runCli(["flows", "--store", store]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("no records in that range\n");
    expect(run.stderr).toMatch(/^note: .*\b(no flows?|empty)\b/im);
  });
});

/** `calico-flows parse < file`: the file's bytes as they are on standard input. */
async function parseFile(file: string): Promise<RunResult> {
  const stdin = openSync(file, "r");
  try {
    const child = spawn(process.execPath, [BIN, "parse"], { cwd: ROOT, stdio: [stdin, "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    return { code, stdout, stderr };
  } finally {
    closeSync(stdin);
  }
}
