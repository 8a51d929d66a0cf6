// The embedded store's lock: LevelDB's own (an fcntl lock on its LOCK file), which the kernel releases when its
// holder exits however it ends, and which holds across pid namespaces. calico-flows.lock only names the holder's pid
// for the refusal: whatever pid it names, a store held is refused and a store not held is opened.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedStore } from "../../functions/adapters/dynamo/embedded.ts";
import { BIN, ROOT, runCli } from "./run.ts";

const PACKET =
  "calico-packet: IN=eni1 OUT=eni2 SRC=192.168.41.8 DST=192.168.22.247 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=62727 RES=0x00 SYN URGP=0";
const DAY = ["--since", "2024-04-19", "--until", "2024-04-20"];

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "cf-store-lock-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `replay -` following its standard input: it holds the store until the input ends (or it is killed). */
async function holdingReplay(store: string): Promise<{ child: ChildProcess; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [BIN, "replay", "-", "--store", store, "--quiet"], {
    cwd: ROOT,
    stdio: ["pipe", "ignore", "ignore"],
  });
  const exited = new Promise((resolve) => child.on("close", resolve));
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(store, "calico-flows.lock"))) {
    if (Date.now() > deadline) throw new Error(`the replay did not open ${store} within 20 s`);
    await sleep(20);
  }
  return { child, exited };
}

describe("the embedded store's lock", () => {
  it("refuses a store a live process holds, naming its pid, whatever its lock file says", async () => {
    const store = join(scratch, "held");
    const holder = await holdingReplay(store);
    try {
      const lock = join(store, "calico-flows.lock");
      expect(readFileSync(lock, "utf8")).toBe(String(holder.child.pid));
      const run = await runCli(["flows", "--store", store, ...DAY]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(
          `^error: the embedded store in .* is in use by another calico-flows process \\(pid ${holder.child.pid}\\b`,
        ),
      );
      // A lock file emptied or naming no live process does not give the store away.
      writeFileSync(lock, "");
      const again = await runCli(["flows", "--store", store, ...DAY]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/is in use by another calico-flows process; stop it/);
    } finally {
      holder.child.stdin?.end();
      await holder.exited;
    }
  });

  it("opens a store whose lock file names a live Node process that does not hold it, or a holder killed hard", async () => {
    const store = join(scratch, "free");
    const holder = await holdingReplay(store);
    holder.child.stdin?.write(`2024-04-19T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}\n`);
    holder.child.stdin?.end();
    await holder.exited;
    // Any Node process (the CLI, or a program using the adapter) alive with the pid the lock file names.
    const other: ChildProcess = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30_000)"], {
      stdio: "ignore",
    });
    try {
      writeFileSync(join(store, "calico-flows.lock"), String(other.pid));
      const run = await runCli(["flows", "--store", store, ...DAY]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("192.168.41.8");
    } finally {
      other.kill();
    }
    // SIGKILL (the OOM killer, a reboot) leaves the lock file; LevelDB's lock went with the process.
    const killed = await holdingReplay(store);
    killed.child.kill("SIGKILL");
    await killed.exited;
    expect(existsSync(join(store, "calico-flows.lock"))).toBe(true);
    const after = await runCli(["flows", "--store", store, ...DAY]);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain("192.168.41.8");
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
