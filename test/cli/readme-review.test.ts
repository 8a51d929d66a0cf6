// README.md statements held against the code as it is. Each test quotes the statement and says what is true
// instead; every one of them fails until the code (or the statement) is put right.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./run.ts";

/** bench/run.ts's exit code for a module without run(): "a helper (like corpus.ts), not a bench", skipped. */
const NOT_A_BENCH = 3;

describe("README: Figures and Development", () => {
  // README, "Figures": "printed by `npm run bench` (`npm run bench -- NAME` for one bench)", and "Development":
  // "`npm run bench` — throughput and write-amplification figures (printed, never asserted)". True instead:
  // `npm run bench` without a NAME runs every bench/*.ts but run.ts in a child (`run.ts --child FILE`), and
  // bench/e2e-floor.ts, a stand-alone script without run(), throws "usage: e2e-floor.ts RECORD_BYTES" on
  // import (its argv[2] is "--child"): the run prints "bench/e2e-floor.ts failed (exit 1)" and exits 1.
  it("npm run bench's child treats bench/e2e-floor.ts as a helper, not a failed bench", () => {
    const child = spawnSync(
      process.execPath,
      [join(ROOT, "bench", "run.ts"), "--child", join(ROOT, "bench", "e2e-floor.ts")],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", timeout: 10_000 },
    );
    expect(child.status, child.stderr).toBe(NOT_A_BENCH);
  });
});
