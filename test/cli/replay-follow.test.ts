// `kubectl logs -f | calico-flows replay -`: lines that never stop coming are stored as they come, and Ctrl-C
// stores what was read and prints the summary.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { BIN, ndjson, ROOT, runCli } from "./run.ts";

const SAMPLE = join(ROOT, "examples", "demo");
const store = mkdtempSync(join(tmpdir(), "cf-follow-"));
afterAll(() => rmSync(store, { recursive: true, force: true }));

describe("calico-flows replay - (a followed stream)", () => {
  it("stores a steady stream while it flows, and on SIGINT stores the rest and prints the summary", async () => {
    const lines = readFileSync(join(SAMPLE, "node-logs.log"), "utf8")
      .split("\n")
      .filter((l) => l.includes("calico-packet") && !l.startsWith("{"))
      .slice(0, 30);
    const common = ["--store", store, "--cluster", "demo"];
    const child = spawn(
      process.execPath,
      [BIN, "replay", "-", ...common, "--pods", join(SAMPLE, "pods.json"), "--year", "2026", "--quiet"],
      { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    // A line every 100 ms: the input is never idle for the 500 ms that used to close a batch.
    for (const line of lines) {
      child.stdin.write(`${line}\n`);
      await sleep(100);
    }
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/interrupted: storing the lines read so far/);
    expect(stderr).toMatch(/replayed 30 lines: 30 calico records/);
    const stored = await runCli([
      "flows",
      ...common,
      "--since",
      "2026-04-19T00:00:00Z",
      "--until",
      "2026-04-20T00:00:00Z",
      "--json",
    ]);
    expect(ndjson<FlowRecord>(stored.stdout).reduce((n, f) => n + f.packets, 0)).toBe(30);
  }, 30_000);
});
