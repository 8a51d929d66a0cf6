// `--workload-interface-prefix`: the commands that run the ingest pipeline classify direction by the prefixes it
// gives (Felix's InterfacePrefix, or a chained CNI's) instead of the defaults, and refuse a prefix no interface
// name could start with, as the ingest function refuses it in WORKLOAD_INTERFACE_PREFIXES.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { ndjson, runCli, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

/** A denial on the demo's day between two of its pods, through the given interfaces. */
const line = (inIf: string, outIf: string, dport: number) =>
  `Apr 19 04:50:01 ip-192-168-12-9 kernel: calico-packet: IN=${inIf} OUT=${outIf} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=52019 DF PROTO=TCP SPT=48932 DPT=${dport} WINDOW=62727 RES=0x00 SYN URGP=0`;

const LINES = `${[
  line("eth0", "tap0a1b2c3d4e5", 5432),
  line("tap0a1b2c3d4e5", "eth0", 5433),
  line("eth0", "eni3b1f0c2a9d4", 5434),
].join("\n")}\n`;

describe("calico-flows --workload-interface-prefix", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cf-prefixes-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Replays LINES into a store of their own with `options`, and reads each port's direction back. */
  const directions = async (name: string, options: string[]) => {
    const store = ["--store", join(dir, name)];
    const replayed = await runCli(["replay", "-", ...store, ...SAMPLE_ATTRIBUTION, "--quiet", ...options], {
      input: LINES,
    });
    expect(replayed.stderr).toMatch(/replayed 3 lines: 3 calico records, 0 malformed/);
    expect(replayed.code).toBe(0);
    const read = await runCli(["flows", ...store, ...SAMPLE_DAY, "--json"]);
    expect(read.code).toBe(0);
    return Object.fromEntries(ndjson<FlowRecord>(read.stdout).map((f) => [f.dstPort, f.direction]));
  };

  it("classifies by the prefixes given, which replace the defaults", async () => {
    expect(
      await directions("custom", [
        "--workload-interface-prefix",
        "cali",
        "--workload-interface-prefix",
        "tap",
      ]),
    ).toEqual({ 5432: "ingress", 5433: "egress", 5434: "forward" });
    // Without the option, the defaults: tap… is no workload's interface, eni… is.
    expect(await directions("default", [])).toEqual({ 5432: "forward", 5433: "forward", 5434: "ingress" });
  });

  it.each([
    [["ta p"], 'invalid workload interface prefix "ta p": expected printable ASCII'],
    [["abcdefghijklmnop"], 'invalid workload interface prefix "abcdefghijklmnop": longer than 15 characters'],
    [[""], 'invalid workload interface prefix "": empty'],
    [["cali", "tap", "cali"], 'invalid workload interface prefix "cali": given twice'],
    [["cali,tap"], "one prefix per --workload-interface-prefix"],
  ])("refuses %j as a usage error naming the option", async (prefixes, message) => {
    const run = await runCli([
      "replay",
      "-",
      "--store",
      join(dir, "refused"),
      ...prefixes.flatMap((p) => ["--workload-interface-prefix", p]),
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--workload-interface-prefix");
    expect(run.stderr).toContain(message);
  });

  it.each(["replay", "backfill", "redrive"])("is in the help of %s", async (command) => {
    const run = await runCli([command, "--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--workload-interface-prefix <prefix>\s+name prefix of pods' interfaces/);
  });
});
