// `calico-flows demo` (`npm start`): what it tells the reader to run next works, and a temporary store goes however
// it ends.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { BIN, ndjson, ROOT, runCli } from "./run.ts";

const dir = mkdtempSync(join(tmpdir(), "cf-demo-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("calico-flows demo", () => {
  it("names a command that lists every flow of a store it keeps, and does not offer one it deletes", async () => {
    const temporary = await runCli(["demo"]);
    expect(temporary.code).toBe(0);
    expect(temporary.stdout).toMatch(
      /^Internal flows \(\d+ of \d+; `calico-flows demo --store DIR` keeps the store/m,
    );

    // A directory whose name the shell must be given quoted.
    const store = join(dir, "kept store");
    const kept = await runCli(["demo", "--store", store]);
    expect(kept.code).toBe(0);
    expect(existsSync(store)).toBe(true);
    const [, total, command] =
      /^Internal flows \(\d+ of (\d+); `calico-flows (flows [^`]+)` lists them all\):$/m.exec(kept.stdout) ??
      [];
    expect(command).toBeDefined();
    // The command as a shell splits it.
    const words = spawnSync("sh", ["-c", `printf '%s\\0' ${command}`], { encoding: "utf8" }).stdout.split(
      "\0",
    );
    const listed = await runCli(words.filter((w) => w !== ""));
    expect(listed.code, listed.stderr).toBe(0);
    expect(ndjson<FlowRecord>(listed.stdout)).toHaveLength(Number(total));
  }, 60_000);

  it("removes its temporary store when stopped with Ctrl-C", async () => {
    const tmp = mkdtempSync(join(dir, "tmpdir-"));
    const child = spawn(process.execPath, [BIN, "demo"], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const stores = () => readdirSync(tmp).filter((name) => name.startsWith("calico-flows-demo-"));
    // Its signal handlers are set up before its store is made.
    const deadline = Date.now() + 20_000;
    while (stores().length === 0 && Date.now() < deadline) await sleep(20);
    expect(stores()).toHaveLength(1);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stores()).toEqual([]);
  }, 60_000);
});
