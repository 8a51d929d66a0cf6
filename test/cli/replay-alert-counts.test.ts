// `calico-flows replay` without --alerts-topic: every alert stays pending, and the deliveries that fold into
// it once it is a minute old hand it out again. The summary's "N alerts" counts the alerts a run opened, once.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord } from "../../functions/core/types.ts";
import { ndjson, ROOT, runCli, SAMPLE, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

const CLOCK = pathToFileURL(join(ROOT, "test", "support", "clock-offset.ts")).href;

/** The wall clock of a run `ms` later than now. */
const later = (ms: number): NodeJS.ProcessEnv => ({
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${CLOCK}`.trim(),
  CALICO_FLOWS_TEST_CLOCK_OFFSET_MS: String(ms),
});

/** The "N alerts" of a replay's summary. */
function alertsOf(stderr: string): number {
  const summary = /^replayed \d+ lines: .*, (\d+) alerts, /m.exec(stderr);
  if (summary === null) throw new Error(`no summary in:\n${stderr}`);
  return Number(summary[1]);
}

describe("calico-flows replay: alerts counted once", () => {
  let dir: string;
  let store: string[];
  let log: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cf-alert-counts-"));
    store = ["--store", join(dir, "store"), "--cluster", "demo"];
    log = join(dir, "node.log");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const replay = (env?: NodeJS.ProcessEnv) =>
    runCli(["replay", log, ...store, ...SAMPLE_ATTRIBUTION, "--batch-lines", "7", "--quiet"], { env });
  const listed = async () => {
    const run = await runCli(["alerts", ...store, ...SAMPLE_DAY, "--json"]);
    expect(run.code).toBe(0);
    return ndjson<AlertRecord>(run.stdout);
  };

  it("counts the alerts each replay opened, though later batches hand pending ones out again", async () => {
    // The sample's first 150 lines but its denials to db:5432, then two minutes later (the file having grown)
    // the whole sample, in batches of 7 lines: the second replay opens the db:5432 alert, and its batches fold
    // the later lines of the other keys into the windows the first opened, whose alerts, still pending, they
    // hand out.
    const sample = readFileSync(join(SAMPLE, "node-logs.log"), "utf8");
    const head = sample.split("\n").slice(0, 150);
    writeFileSync(log, `${head.filter((l) => !l.includes(" DPT=5432 ")).join("\n")}\n`);
    const first = await replay();
    expect(first.code).toBe(0);
    const openedFirst = alertsOf(first.stderr);
    expect(openedFirst).toBe((await listed()).length);
    expect(openedFirst).toBeGreaterThan(0);

    writeFileSync(log, sample);
    const second = await replay(later(2 * 60_000));
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/296 calico records \(\d+ counted by an earlier replay\)/);
    const all = await listed();
    expect(all.length).toBe(openedFirst + 1);
    // Each alert listed was opened by one of the two replays, and counted by that one alone.
    expect(openedFirst + alertsOf(second.stderr)).toBe(all.length);
    expect(all.every((a) => a.delivery === "pending")).toBe(true);
  });

  it("counts no alert opened when the same batches are replayed again", async () => {
    const before = await listed();
    // The same file, batched the same way: the same contributions again (a redelivery), later still.
    const again = await replay(later(4 * 60_000));
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/, 0 flow updates \(\d+ already stored\), 0 alerts, /);
    expect(await listed()).toEqual(before);
  });
});
