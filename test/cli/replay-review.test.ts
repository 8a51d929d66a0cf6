// `calico-flows replay` on input as it comes from other tools: a UTF-8 byte order mark, CRLF line ends, a last
// line without a newline, gzip-compressed files, batches of one line, and a followed stream fed slowly and stopped
// with SIGTERM.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { BIN, ndjson, ROOT, runCli } from "./run.ts";

const SAMPLE = join(ROOT, "examples", "demo");
const RANGE = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z"];
const SAMPLE_LINES = readFileSync(join(SAMPLE, "node-logs.log"), "utf8").split("\n");
/** The first 60 lines of the sample: 54 calico records, none malformed. */
const LINES = SAMPLE_LINES.slice(0, 60);
const CALICO = LINES.filter((l) => l.includes("calico-packet")).length;
const dir = mkdtempSync(join(tmpdir(), "cf-replay-review-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const storeOptions = (name: string) => ["--store", join(dir, name), "--cluster", "demo"];
const attribution = ["--pods", join(SAMPLE, "pods.json"), "--nodes", join(SAMPLE, "nodes.json")];
const flows = async (name: string) => {
  const run = await runCli(["flows", ...storeOptions(name), ...RANGE, "--json"]);
  expect(run.code).toBe(0);
  return ndjson<FlowRecord>(run.stdout);
};
const packets = (fs: FlowRecord[]) => fs.reduce((n, f) => n + f.packets, 0);

describe("calico-flows replay (input as other tools write it)", () => {
  it("reads a BOM, CRLF and a last line without newline as the plain lines, batched in any way", async () => {
    const windows = join(dir, "windows.log");
    writeFileSync(windows, `\uFEFF${LINES.join("\r\n")}`);
    const first = await runCli([
      "replay",
      windows,
      ...storeOptions("a"),
      ...attribution,
      "--year",
      "2026",
      "--quiet",
    ]);
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(new RegExp(`replayed 60 lines: ${CALICO} calico records, 0 malformed`));

    // The same text, plain, one line per batch, into another store: the same flows, counts and times alike.
    const plain = `${LINES.join("\n")}\n`;
    const single = await runCli(
      [
        "replay",
        "-",
        ...storeOptions("b"),
        ...attribution,
        "--year",
        "2026",
        "--quiet",
        "--batch-lines",
        "1",
      ],
      { input: plain },
    );
    expect(single.code).toBe(0);
    const stored = await flows("a");
    expect(packets(stored)).toBe(CALICO);
    expect(await flows("b")).toEqual(stored);

    // The plain lines through stdin into the first store are the lines it counted, the first one too.
    const again = await runCli(
      [
        "replay",
        "-",
        ...storeOptions("a"),
        ...attribution,
        "--year",
        "2026",
        "--quiet",
        "--batch-lines",
        "7",
      ],
      { input: plain },
    );
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(
      new RegExp(`${CALICO} calico records \\(${CALICO} counted by an earlier replay\\)`),
    );
    expect(again.stderr).toMatch(/, 0 flow updates/);
    expect(await flows("a")).toEqual(stored);
  }, 60_000);

  it("refuses gzip-compressed input with one clear error rather than reading it as lines of garbage", async () => {
    const gz = join(dir, "messages.1.gz");
    writeFileSync(gz, gzipSync(`${LINES.join("\n")}\n`));
    const run = await runCli(["replay", gz, ...storeOptions("c"), "--quiet"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: .*messages\.1\.gz is gzip-compressed/);
    expect(run.stderr).not.toMatch(/replayed/);
  }, 30_000);

  it("handles each slow line of a followed stream without waiting for a batch, and stores it on SIGTERM", async () => {
    const calico = LINES.filter((l) => l.includes("calico-packet") && !l.startsWith("{"));
    // Line 291 of the sample: a calico line whose SRC= is not an address, reported when its batch is handled.
    const malformed = SAMPLE_LINES[290] as string;
    expect(malformed).toMatch(/SRC=not-an-ip/);
    const child = spawn(
      process.execPath,
      // Not --quiet: the listing of the malformed line says its batch was handled.
      [BIN, "replay", "-", ...storeOptions("d"), ...attribution, "--year", "2026"],
      { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const waitFor = async (pattern: RegExp, ms: number) => {
      const until = Date.now() + ms;
      while (!pattern.test(stderr) && Date.now() < until) await sleep(25);
      return pattern.test(stderr);
    };
    child.stdin.write(`${calico[0]}\n`);
    await sleep(300);
    child.stdin.write(`${calico[1]}\n`);
    await sleep(300);
    child.stdin.write(`${malformed}\n`);
    // Three lines, far short of a batch, with the input still open: only the idle flush can have handled them, and
    // the report of the last one says all three were read. (The wait is generous: a loaded machine starts slowly.)
    expect(await waitFor(/^line 3: SRC= is not an IP address/m, 20_000)).toBe(true);
    child.kill("SIGTERM");
    // 128 + 15, as a shell reports a command SIGTERM stopped.
    expect(await exited).toBe(143);
    expect(stderr).toMatch(/interrupted: storing the lines read so far/);
    expect(stderr).toMatch(/replayed 3 lines: 2 calico records, 1 malformed/);
    expect(packets(await flows("d"))).toBe(2);
  }, 30_000);
});
