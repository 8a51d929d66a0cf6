// `calico-flows demo` (`npm start`): what it tells the reader to run next works.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { ndjson, runCli } from "./run.ts";

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
});
