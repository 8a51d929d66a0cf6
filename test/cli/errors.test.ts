// What an operator sees when a command cannot do what it was asked: one line saying why, exit code 1, no stack
// trace; and a reader that goes away (`| head`) is not an error.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, ROOT, runCli } from "./run.ts";

/** The demo's day: a bounded range keeps the embedded store's hour-by-hour queries few. */
const DAY = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z"];

let store: string;
beforeAll(async () => {
  store = mkdtempSync(join(tmpdir(), "cf-errors-"));
  const replayed = await runCli([
    "replay",
    join(ROOT, "examples", "demo", "node-logs.log"),
    "--store",
    store,
    "--year",
    "2026",
    "--quiet",
  ]);
  expect(replayed.code).toBe(0);
});
afterAll(() => rmSync(store, { recursive: true, force: true }));

describe("calico-flows errors", () => {
  // Usage errors (options that are wrong or do not go together) exit with 2, failures of a command that ran with 1.
  it.each([
    [["replay", "/nonexistent/file.log"], /^error: ENOENT: no such file or directory/, 1],
    [["replay", join(ROOT, "examples")], /^error: .*examples is a directory$/, 1],
    [
      ["flows", "--since", "90"],
      /^error: expected an ISO-8601 or RFC 3339 time \(UTC unless .*; got "90"$/,
      2,
    ],
    [["flows", "--since", "200000000d"], /^error: expected an ISO-8601 or RFC 3339 time/, 2],
    [["flows", "--until", "Apr 19"], /^error: expected an ISO-8601 or RFC 3339 time/, 2],
    [["flows", "--since", "1h", "--until", "2h"], /^error: --since \(.*\) is after --until \(.*\)$/, 2],
    [["alerts", "--since", "2024-04-19T05:00:00Z", "--until", "2024-04-19T04:00:00Z"], /is after --until/, 2],
    [["flows", "--workload", "api"], /^error: --workload and --pod need --namespace$/, 2],
    // Names no Kubernetes object could have, as the query API refuses them: not an empty answer.
    [
      ["flows", "--namespace", "Shop"],
      /^error: --namespace must be a Kubernetes namespace name; got "Shop"$/,
      2,
    ],
    [["flows", "--namespace", "shop", "--pod", "web_1"], /^error: --pod must be a Kubernetes object name/, 2],
    [
      ["flows", "--namespace", "shop", "--workload", "shop/Deployment/web"],
      /^error: --workload must be \[kind\/\]name/,
      2,
    ],
    [
      ["flows", "--ip", "fe80::1%eth0"],
      /^error: --ip must be an IPv4 or IPv6 address; got "fe80::1%eth0"$/,
      2,
    ],
    [["flows", "--ip", "192.168.1"], /^error: --ip must be an IPv4 or IPv6 address/, 2],
    [["flows", "--internal", "yes"], /^error: option '--internal \[bool\]' argument 'yes' is invalid/, 2],
    [["flows", "--bogus"], /^error: unknown option '--bogus'/, 2],
    // Integers are decimal digits, as the query API takes them: not whatever Number() reads.
    [
      ["flows", "--limit", "0x10"],
      /^error: option '--limit <n>' argument '0x10' is invalid\. --limit must be/,
      2,
    ],
    [
      ["replay", "--year", "2e3", "-"],
      /^error: option '--year <yyyy>' argument '2e3' is invalid\. --year must be/,
      2,
    ],
    // parse takes the years replay takes: `26` is no year of a log line.
    [
      ["parse", "--year", "26"],
      /^error: option '--year <yyyy>' argument '26' is invalid\. --year must be an integer from 1970/,
      2,
    ],
    [["alerts", "--store", "/nonexistent/store"], /^error: no embedded store in \/nonexistent\/store/, 1],
    // Option values the pipeline would refuse are refused as they are read: usage errors, not failures met once
    // the store is made (and, for the alert window, once flows are stored).
    [
      ["flows", "--internal-cidr", "bogus"],
      /^error: option '--internal-cidr <cidr>' argument 'bogus' is invalid\. invalid CIDR "bogus"/,
      2,
    ],
    [["flows", "--cluster", "a#b"], /^error: option '--cluster <name>' argument 'a#b' is invalid/, 2],
    [
      ["replay", "--prefix-format", "%t x", "/dev/null"],
      /^error: prefixFormat must start with literal text/,
      2,
    ],
    [["replay", "--prefix", " ", "/dev/null"], /^error: prefix must not be empty/, 2],
    [
      ["replay", "--alert-window", "0s", "/dev/null"],
      /^error: option '--alert-window <duration>' argument '0s' is invalid\. --alert-window must be from 1s to 24h/,
      2,
    ],
    [["replay", "--alert-window", "100000000d", "/dev/null"], /--alert-window must be from 1s to 24h/, 2],
    [["flows", "--api", "abc123.execute-api"], /^error: option '--api <url>' argument .* is invalid/, 2],
  ])("%j: one line, and the exit code of its kind", async (args, message, code) => {
    const run = await runCli([
      ...args,
      "--store",
      args.includes("--store") ? (args[args.indexOf("--store") + 1] as string) : store,
    ]);
    expect(run.code).toBe(code);
    const first = run.stderr.split("\n")[0] ?? "";
    expect(first).toMatch(message);
    expect(run.stderr).not.toMatch(/^\s+at /m);
    // What commander refuses is followed by where to read more, not by the whole help.
    expect(run.stderr).not.toMatch(/^Usage:/m);
  });

  it("refuses a bad option of replay, or a file it names, before it makes a store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-errors-early-"));
    try {
      const fresh = join(dir, "store");
      writeFileSync(join(dir, "broken.json"), "{ not json");
      for (const [bad, code] of [
        [["--internal-cidr", "10.0.0.0/33"], 2],
        [["--prefix-format", "%t x"], 2],
        [["--alert-window", "0s"], 2],
        [["--alerts-topic", "not-an-arn"], 2],
        // Labels no file given could carry.
        [["--pods", join(ROOT, "examples", "demo", "pods.json"), "--namespace-label", "team"], 2],
        // Snapshot files are read before the store is made, too.
        [["--pods", join(dir, "broken.json")], 1],
        [["--nodes", join(dir, "missing.json")], 1],
      ] as const) {
        const run = await runCli([
          "replay",
          join(ROOT, "examples", "demo", "node-logs.log"),
          "--store",
          fresh,
          ...bad,
        ]);
        expect(run.code).toBe(code);
        expect(run.stderr).toMatch(/^error: /);
        expect(run.stderr).not.toMatch(/warning|replayed/);
        expect(existsSync(fresh)).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says what is wrong with a --store that names a file, and with stdin that is a directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-errors-store-"));
    try {
      const file = join(dir, "file");
      writeFileSync(file, "");
      for (const command of ["flows", "replay"]) {
        const run = await runCli([command, "--store", file, ...(command === "replay" ? ["/dev/null"] : [])]);
        expect(run.code).toBe(1);
        expect(run.stderr).toBe(
          `error: --store ${file} is not a directory (it names the embedded store's directory)\n`,
        );
      }
      const stdin = openSync(dir, "r");
      try {
        const child = spawn(process.execPath, [BIN, "replay", "-", "--store", join(dir, "store")], {
          cwd: ROOT,
          stdio: [stdin, "pipe", "pipe"],
        });
        let stderr = "";
        child.stderr?.setEncoding("utf8").on("data", (d: string) => {
          stderr += d;
        });
        const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
        expect(code).toBe(1);
        expect(stderr).toMatch(/^error: standard input is a directory$/m);
        expect(stderr).not.toMatch(/replayed/);
      } finally {
        closeSync(stdin);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says why the query API could not be reached, not only that fetch failed", async () => {
    // A loopback port nobody listens on: the connection is refused.
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const env = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret", AWS_PROFILE: "" };
    const api = ["--api", `http://127.0.0.1:${port}/v1`, "--region", "eu-west-1"];
    // The panic button too, where the reason matters most.
    for (const command of [["flows"], ["panic", "status"]]) {
      const run = await runCli([...command, ...api], { env });
      expect(run.code, command.join(" ")).toBe(1);
      expect(run.stderr, command.join(" ")).toBe(
        `error: fetch failed: connect ECONNREFUSED 127.0.0.1:${port}\n`,
      );
    }
  });

  it("`help` reads every word of the command asked about, and refuses one it does not know as the command is", async () => {
    const nested = await runCli(["help", "panic", "aply"]);
    expect(nested.code).toBe(2);
    expect(nested.stderr).toMatch(/^error: unknown command 'aply'\n\(Did you mean apply\?\)\n/);
    expect(nested.stderr).not.toMatch(/^Usage:/m);
    const leaf = await runCli(["help", "parse", "year"]);
    expect(leaf.code).toBe(2);
    expect(leaf.stderr).toMatch(/^error: 'parse' has no subcommands\n/);
    const program = await runCli(["help"]);
    expect(program.code).toBe(0);
    expect(program.stdout).toMatch(/^Usage: calico-flows \[options\] \[command\]/);
    expect(program.stdout).toMatch(/^ {2}help \[command\.\.\.\] +display help for command$/m);
  });

  it("takes --internal as true or false only", async () => {
    const flows = async (...extra: string[]) => {
      const run = await runCli(["flows", "--store", store, ...DAY, "--json", ...extra]);
      return run.stdout.split("\n").filter((l) => l.length > 0).length;
    };
    const [all, internal, external] = [
      await flows(),
      await flows("--internal", "true"),
      await flows("--internal", "false"),
    ];
    expect(internal).toBeGreaterThan(0);
    expect(external).toBeGreaterThan(0);
    expect(internal + external).toBe(all);
  });

  it("stops quietly when the reader of its output goes away", async () => {
    const child = spawn(process.execPath, [BIN, "flows", "--store", store, ...DAY, "--json"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    // Like `| head -1`: read a little, then close the pipe.
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });
});
