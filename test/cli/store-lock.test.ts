// The embedded store's lock file as a command killed hard (OOM, SIGKILL, a reboot) leaves it: pids are reused, so
// the pid it names may be alive and someone else's. A process that may be using the store keeps it; one that cannot
// be (first-day-review.test.ts: another program) or that is this very process, which does not hold it, gives it up.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedStore } from "../../functions/adapters/dynamo/embedded.ts";
import { runCli } from "./run.ts";

const PACKET =
  "calico-packet: IN=eni1 OUT=eni2 SRC=192.168.41.8 DST=192.168.22.247 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=62727 RES=0x00 SYN URGP=0";
const DAY = ["--since", "2024-04-19", "--until", "2024-04-20"];

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "cf-store-lock-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("the embedded store's lock", () => {
  it("is kept while its pid is a live Node process, and the refusal names the file to remove", async () => {
    const store = join(scratch, "node");
    const made = await runCli(["replay", "-", "--store", store, "--quiet"], {
      input: `2024-04-19T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}\n`,
    });
    expect(made.code).toBe(0);
    // Any Node process may be one that opened the store (the CLI, or a program using the adapter).
    const other: ChildProcess = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30_000)"], {
      stdio: "ignore",
    });
    try {
      const lock = join(realpathSync(store), "calico-flows.lock");
      writeFileSync(lock, String(other.pid));
      const run = await runCli(["flows", "--store", store, ...DAY]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/in use by another calico-flows process \(pid \d+\)/);
      expect(run.stderr).toContain(`remove ${lock}`);
    } finally {
      other.kill();
    }
  });

  it("left with this process's pid by an earlier process is taken over; one it holds is not", async () => {
    // A container's command restarted after a crash often gets the pid it had.
    const dir = join(scratch, "own");
    const first = await startEmbeddedStore({ dir });
    await first.close();
    writeFileSync(join(dir, "calico-flows.lock"), String(process.pid));
    const store = await startEmbeddedStore({ dir });
    try {
      await expect(startEmbeddedStore({ dir })).rejects.toThrow(/in use by another calico-flows process/);
    } finally {
      await store.close();
    }
  });
});
