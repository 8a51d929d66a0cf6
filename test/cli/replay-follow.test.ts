// `kubectl logs -f | calico-flows replay -`: lines that never stop coming are stored as they come, and Ctrl-C
// stores what was read and prints the summary.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ReplaySummary, registerReplay, replay } from "../../cli/commands/replay.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { storedByAddress, total } from "../backfill/fixtures.ts";
import { startTestStore } from "../support/dynalite.ts";
import { BIN, ndjson, parsedOptions, ROOT, runCli, useDynamoEndpoint } from "./run.ts";

const SAMPLE = join(ROOT, "examples", "demo");
const DAY = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z"];
afterEach(() => {
  vi.unstubAllEnvs();
});

/**
 * Until the replay has opened its store (its lock file exists): it handles SIGINT from before that on. (Node's own
 * handler, which exits at once, is installed at start-up, so the process's signal mask in /proc cannot tell.)
 */
async function opened(storeDir: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(storeDir, "calico-flows.lock"))) {
    if (Date.now() > deadline)
      throw new Error(`the replay did not open its store in ${storeDir} within 20 s`);
    await sleep(50);
  }
}

describe("calico-flows replay - (a followed stream)", () => {
  it("stores each batch while the input keeps coming, before any stop, and the rest at the stop", async () => {
    const dynamo = await startTestStore();
    const stop = new AbortController();
    let running: Promise<ReplaySummary> | undefined;
    try {
      useDynamoEndpoint(dynamo.endpoint);
      const table = await dynamo.freshTable();
      const raw = await parsedOptions(
        registerReplay,
        ["replay"],
        [
          "replay",
          "-",
          "--table",
          table,
          "--cluster",
          "demo",
          "--pods",
          join(SAMPLE, "pods.json"),
          "--year",
          "2026",
          "--quiet",
        ],
      );
      const packets = async () =>
        total(
          await storedByAddress(
            new DynamoFlowStore({ client: dynamo.client, tableName: table }),
            "demo",
            Date.parse("2026-04-19T00:00:00Z"),
            Date.parse("2026-04-20T00:00:00Z"),
          ),
        );
      const lines = readFileSync(join(SAMPLE, "node-logs.log"), "utf8")
        .split("\n")
        .filter((l) => l.includes("calico-packet") && !l.startsWith("{"))
        .slice(0, 8);
      // The batches' clock, moved by hand, and their timer, which never fires: only lines coming close a batch.
      let time = 0;
      let waits = 0;
      const input = new PassThrough();
      running = replay("-", raw, stop.signal, {
        input,
        batching: {
          now: () => time,
          after: () => {
            waits++;
            return () => {};
          },
        },
      });
      const until = async (what: string, done: () => boolean | Promise<boolean>) => {
        for (let tries = 0; !(await done()); tries++) {
          if (tries === 500) throw new Error(`never ${what}`);
          await sleep(20);
        }
      };
      input.write(`${lines.slice(0, 5).join("\n")}\n`);
      await until("waited on a batch", () => waits > 0);
      // The batch's first line has waited as long as a batch may: the next line read closes it.
      time += 2_000;
      input.write(`${lines[5]}\n`);
      await until("stored the batch", async () => (await packets()) === 6);
      // Lines still coming are stored at the stop.
      const before = waits;
      input.write(`${lines.slice(6).join("\n")}\n`);
      await until("waited on the next batch", () => waits > before);
      stop.abort();
      const summary = await running;
      expect(summary.lines).toBe(8);
      expect(await packets()).toBe(8);
    } finally {
      stop.abort();
      await running?.catch(() => {});
      await dynamo.close();
    }
  }, 30_000);

  it("on SIGINT does not count the line it stopped in the middle of, which a later replay counts once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-follow-cut-"));
    try {
      const common = ["--store", join(dir, "store"), "--cluster", "demo", "--year", "2026", "--quiet"];
      const sample = readFileSync(join(SAMPLE, "node-logs.log"), "utf8").split("\n");
      const whole = sample.filter((l) => l.includes("calico-packet") && l.includes("PROTO=TCP")).slice(0, 5);
      // A UDP line cut inside its last field (the UDP LEN=51, which no record keeps) still parses: counted, it
      // would be a packet that a replay of the whole line counts a second time.
      const udp = sample.find((l) => l.includes("PROTO=UDP") && l.endsWith(" LEN=51")) as string;
      expect(udp).toBeDefined();
      const child = spawn(process.execPath, [BIN, "replay", "-", ...common], {
        cwd: ROOT,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
      child.stdin.write(`${whole.join("\n")}\n${udp.slice(0, -1)}`);
      // From the moment it handles SIGINT, time to read what the pipe holds.
      await opened(join(dir, "store"));
      await sleep(1500);
      child.kill("SIGINT");
      expect(await exited).toBe(130);
      expect(stderr).toMatch(/interrupted: storing the lines read so far/);
      expect(stderr).toMatch(/^line 6: reading stopped in the middle of it: not stored$/m);
      expect(stderr).toMatch(/replayed 5 lines: 5 calico records, 0 malformed/);
      const packets = async () => {
        const run = await runCli(["flows", ...common.slice(0, 4), ...DAY, "--json"]);
        return ndjson<FlowRecord>(run.stdout).reduce((n, f) => n + f.packets, 0);
      };
      expect(await packets()).toBe(5);
      const again = await runCli(["replay", "-", ...common], { input: `${[...whole, udp].join("\n")}\n` });
      expect(again.code).toBe(0);
      expect(await packets()).toBe(6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
