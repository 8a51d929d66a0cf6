// A closed stderr (`replay … 2>&1 | head -2`, a `tee` that died) stops the diagnostics, not the work: the command
// stores everything and exits as it would have. Run as a user would, with the child's stderr pipe closed by its reader.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { BIN, ndjson, ROOT, runCli, SAMPLE, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

/** Runs the CLI with its stderr's reader gone before it starts: every write there fails (EPIPE). */
function runWithStderrClosed(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stderr.destroy();
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout }));
  });
}

/** The packets of each flow a store holds for the demo's day, in a stable order. */
async function storedPackets(store: string, extra: readonly string[] = SAMPLE_DAY): Promise<string[]> {
  const listed = await runCli(["flows", "--store", store, ...extra, "--json", "--limit", "10000"]);
  expect(listed.code, listed.stderr).toBe(0);
  return ndjson<FlowRecord>(listed.stdout)
    .map((f) => `${f.src.ip} ${f.dst.ip} ${f.protocol} ${f.dstPort} ${f.firstSeen}: ${f.packets}`)
    .sort();
}

let dir: string;
let logs: LocalLogs;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cf-closed-stderr-"));
  logs = await startLocalLogs();
});
afterAll(async () => {
  await logs.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("a command whose stderr is closed", () => {
  // 300 malformed calico lines first, each listed on stderr as it is read (without --quiet), then the demo's logs.
  const malformed = Array.from(
    { length: 300 },
    (_, i) => `Apr 19 05:00:00 ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT= garbage ${i}`,
  );
  const input = `${malformed.join("\n")}\n${readFileSync(join(SAMPLE, "node-logs.log"), "utf8")}`;

  it.each([
    { case: "listing malformed lines as it reads", quiet: [] },
    { case: "writing its summary only (--quiet)", quiet: ["--quiet"] },
  ])("replay stores every line and exits 0, $case", async ({ quiet }) => {
    const file = join(dir, "input.log");
    writeFileSync(file, input);
    const args = (store: string) => ["replay", file, "--store", store, ...SAMPLE_ATTRIBUTION, ...quiet];

    const open = await runCli(args(join(dir, `open${quiet.length}`)));
    expect(open.code, open.stderr).toBe(0);
    // And the demo's own two.
    expect(open.stderr).toMatch(/, 302 malformed, /);
    const closed = await runWithStderrClosed(args(join(dir, `closed${quiet.length}`)));

    expect(closed.code).toBe(0);
    const expected = await storedPackets(join(dir, `open${quiet.length}`));
    expect(expected.length).toBeGreaterThan(0);
    expect(await storedPackets(join(dir, `closed${quiet.length}`))).toEqual(expected);
  });

  it("backfill stores every event and exits 0, its summary unwritten", async () => {
    const minute = 60_000;
    const t0 = Math.floor(Date.now() / minute) * minute - 10 * minute;
    const iso = (ms: number) => new Date(ms).toISOString();
    const events = Array.from({ length: 40 }, (_, i) => ({
      timestamp: t0 + i * 3000,
      message:
        `${iso(t0 + i * 3000)} ip-192-168-0-5 kernel: calico-packet: IN=eth0 OUT=eni0a1b2c3d4e5 ` +
        `SRC=192.168.50.${1 + (i % 4)} DST=192.168.60.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP ` +
        "SPT=40000 DPT=5432 WINDOW=1 RES=0x00 SYN URGP=0",
    }));
    logs.put("nodes", "ip-192-168-0-5", events);
    const store = join(dir, "backfill");
    const range = ["--since", iso(t0), "--until", iso(t0 + 3 * minute)];
    const run = await runWithStderrClosed(
      ["backfill", "--log-group", "nodes", ...range, "--store", store, "--cluster", "closed", "--quiet"],
      {
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        KUBECONFIG: "",
        HOME: dir,
      },
    );
    expect(run.code).toBe(0);
    const listed = await runCli(["flows", "--store", store, "--cluster", "closed", ...range, "--json"]);
    expect(ndjson<FlowRecord>(listed.stdout).reduce((n, f) => n + f.packets, 0)).toBe(events.length);
  });
});
