// Review of time and clocks as an operator of an EKS cluster meets them: the year of year-less syslog stamps
// (New Year, leap days), timestamp prefixes other tools add to the lines, bucket lengths that do not divide a
// minute, the times the CLI prints and takes back, and what the tool says about the zone of a zone-less stamp.
// Every test here fails on the code it was written against; each says what goes wrong and what is expected.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CidrSet } from "../../functions/core/classify.ts";
import { createScanner, parseLine } from "../../functions/core/parse.ts";
import { runPipeline } from "../../functions/core/pipeline.ts";
import type { FlowRecord, IpDirectory, PacketRecord } from "../../functions/core/types.ts";
import { ndjson, ROOT, runCli, SAMPLE } from "../cli/run.ts";

/** Felix's denied SYN as nf_log_syslog prints it (DESIGN.md §1). */
const MESSAGE =
  "calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";
const NODE = "ip-192-168-74-5";

function recordOf(line: string, options: { now?: number; year?: number } = {}): PacketRecord {
  const outcome = parseLine(line, options);
  if (outcome.kind !== "record") throw new Error(`expected a record, got ${JSON.stringify(outcome)}`);
  return outcome.record;
}

/** The demo's first line (a denied SYN logged on ip-192-168-74-5), with its stamp replaced by `stamp`. */
const DEMO_LINE = readFileSync(join(SAMPLE, "node-logs.log"), "utf8").split("\n")[0] as string;
const demoLine = (stamp: string) => DEMO_LINE.replace("Apr 19 04:50:00", stamp);

const dir = mkdtempSync(join(tmpdir(), "cf-clocks-review-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("year of year-less syslog stamps", () => {
  it("dates a stamp just after New Year, read a few seconds before it, in the new year, not a year back", () => {
    // `kubectl logs -l app=calico-logs -f | calico-flows replay -` over New Year's Eve: a node whose clock is 20 s
    // ahead of the reader's (or which logs in a zone east of UTC) writes "Jan  1 00:00:10" while the reader's clock
    // still says 23:59:50 on Dec 31. The inference (parse.ts syslogIso) tries only this year and the year before, so
    // the line is dated 2026-01-01: a year in the past. Its flows land a year back, its addresses are attributed
    // to whichever pod held them a year ago (or "unknown"), and `flows --since 1h` does not show them. The rule
    // already tolerates a day of skew ahead ("the year before when that would be more than a day ahead"); the
    // same day of tolerance across New Year should give the next year.
    const now = Date.parse("2026-12-31T23:59:50Z");
    expect(recordOf(`Jan  1 00:00:10 ${NODE} kernel: ${MESSAGE}`, { now }).time).toBe(
      "2027-01-01T00:00:10.000Z",
    );
  });

  it("stores a leap-day line from CloudWatch at its event time rather than dropping it as malformed", async () => {
    // `backfill` (and `redrive`, and the Lambda) take the event time from CloudWatch's timestamp: the line's own
    // year-less stamp is not used. Yet the scanner still infers its year from the wall clock, and in 2026 neither
    // 2026 nor 2025 has a Feb 29: every line of 2024-02-29 is "malformed" ("the date 2-29 does not exist in the
    // inferred year") and lost, although CloudWatch says exactly when it was logged. An operator backfilling an
    // incident from a leap day (CloudWatch keeps logs for years) gets an empty day. Expected: the flow, at its
    // event time.
    const absent: IpDirectory = {
      resolve: async (lookups) => lookups.map(() => ({ status: "absent" as const })),
    };
    const loggedAt = Date.parse("2024-02-29T12:00:00Z");
    const result = await runPipeline(
      [{ message: `Feb 29 12:00:00 ${NODE} kernel: ${MESSAGE}`, timestamp: loggedAt, node: NODE }],
      {
        cluster: "prod",
        internal: new CidrSet(["192.168.0.0/16"]),
        bucketSeconds: 60,
        // As backfill and redrive make it (cli/ingest.ts openIngest: no --year), read in mid-2026.
        scanner: createScanner({ now: Date.parse("2026-06-01T00:00:00Z") }),
        directory: absent,
      },
    );
    expect(result.stats.malformed).toBe(0);
    expect(result.flows.map((f) => f.firstSeen)).toEqual(["2024-02-29T12:00:00.000Z"]);
  });
});

describe("timestamp prefixes that tools put before the syslog line", () => {
  it("takes the node from the syslog line behind `kubectl logs --timestamps` (and CloudWatch's S3 export)", () => {
    // The runbook reads these lines with `kubectl logs -l app=calico-logs ... -f`; with `--timestamps` (or from a
    // CloudWatch Logs export to S3, which writes "<ISO time> <message>") each line starts with an RFC 3339 time. The
    // parser reads that as the syslog stamp and the next token, the month of the syslog stamp, as the host: every
    // flow's reporter is "Apr" (or "<4>Apr", or the inner ISO stamp), so REPORTER and the alerts' node name a
    // month, and all nodes' lines are one reporter. The CRI form (`<time> stdout F <line>`) is already unwrapped;
    // this one is not. Expected: the host of the wrapped syslog line, the time of the outer (full) stamp.
    const wrapped = `2026-04-19T04:52:19.123456789Z Apr 19 04:52:19 ${NODE} kernel: ${MESSAGE}`;
    expect(recordOf(wrapped)).toMatchObject({ node: NODE, time: "2026-04-19T04:52:19.123Z" });
    const rsyslog = `2026-04-19T04:52:19.123456789Z 2026-04-19T04:52:19.123456+00:00 ${NODE} kernel: ${MESSAGE}`;
    expect(recordOf(rsyslog)).toMatchObject({ node: NODE, time: "2026-04-19T04:52:19.123Z" });
  });
});

describe("ranges at bucket edges (CLI, embedded store)", () => {
  it("finds a flow of a 45-second bucket that straddles --since", async () => {
    // `replay --bucket-seconds 45` counts a flow seen at 10:00:50 and 10:01:10 in the bucket of 10:00:45. The
    // store records bucket lengths only when longer than the default 60 s (cli/store.ts), so `flows` reads from the
    // 60-second bucket that holds --since (flow-query.ts: bucketStart(since, 60 s) = 10:01:00) and skips the
    // 45-second bucket that starts 15 s earlier: `flows --since 10:01` does not list a flow with a packet at
    // 10:01:10 (README: "They select the flows with a packet in the range ..., whichever minute they were counted
    // in"). The same happens to any length that does not divide the recorded one (7, 45, 3599 s). Expected: listed.
    const log = join(dir, "bucket45.log");
    writeFileSync(log, `${demoLine("Apr 19 10:00:50")}\n${demoLine("Apr 19 10:01:10")}\n`);
    const store = ["--store", join(dir, "bucket45"), "--cluster", "demo"];
    const replayed = await runCli([
      "replay",
      log,
      ...store,
      "--year",
      "2026",
      "--bucket-seconds",
      "45",
      "--quiet",
    ]);
    expect(replayed.code).toBe(0);
    const all = await runCli([
      "flows",
      ...store,
      "--since",
      "2026-04-19T10:00:00Z",
      "--until",
      "2026-04-19T10:02:00Z",
      "--json",
    ]);
    expect(ndjson<FlowRecord>(all.stdout).map((f) => [f.bucket, f.lastSeen])).toEqual([
      ["2026-04-19T10:00:45.000Z", "2026-04-19T10:01:10.000Z"],
    ]);
    const fromMinute = await runCli([
      "flows",
      ...store,
      "--since",
      "2026-04-19T10:01:00Z",
      "--until",
      "2026-04-19T10:02:00Z",
      "--json",
    ]);
    expect(fromMinute.code).toBe(0);
    expect(ndjson<FlowRecord>(fromMinute.stdout)).toHaveLength(1);
  });
});

describe("times the CLI prints and takes back", () => {
  it("a flow's LAST SEEN, as the table prints it, given as --until still lists that flow", async () => {
    // Times with milliseconds are the rule, not the exception: CloudWatch event timestamps, rsyslog's high
    // precision, journald and Fluent Bit all carry them. The tables cut them to the second (cli/format.ts
    // shortTime: "a time copied from a table is a valid --since or --until"), so a one-packet flow at 04:52:19.500
    // is shown as LAST SEEN 2026-04-19T04:52:19Z, and `flows --until 2026-04-19T04:52:19Z` (its firstSeen, .500,
    // is after that instant) answers "no records in that range". The same goes for a conversation's FIRST SEEN and
    // LAST SEEN from `flows --group` given back as --since/--until. Expected: the printed time selects the record it
    // was printed for (print the milliseconds, or round the last-seen times up).
    const log = join(dir, "millis.log");
    writeFileSync(log, `${demoLine("2026-04-19T04:52:19.500Z")}\n`);
    const store = ["--store", join(dir, "millis"), "--cluster", "demo"];
    expect((await runCli(["replay", log, ...store, "--quiet"])).code).toBe(0);
    const since = ["--since", "2026-04-19T00:00:00Z"];
    const listed = await runCli(["flows", ...store, ...since, "--until", "2026-04-20T00:00:00Z"]);
    const lastSeen = /2026-04-19T04:52:19[.\d]*Z/.exec(listed.stdout)?.[0] as string;
    expect(lastSeen).toBeDefined();
    const again = await runCli(["flows", ...store, ...since, "--until", lastSeen, "--json"]);
    expect(again.code).toBe(0);
    expect(ndjson<FlowRecord>(again.stdout).map((f) => f.lastSeen)).toEqual(["2026-04-19T04:52:19.500Z"]);
  });
});

describe("what the tool says about zone-less stamps", () => {
  it("tells the operator that year-less syslog stamps are read as UTC (and how their year is chosen)", async () => {
    // An RFC 3164 stamp ("Apr 19 04:52:19") has no zone and no year. The parser takes it as UTC (parse.ts syslogIso:
    // "nodes of EKS AMIs log in UTC") and picks this year or the last, but only a code comment says so: not the
    // README, not `parse --help` or `replay --help` (`--year`: "year of year-less syslog timestamps"), not
    // DESIGN.md §3.1's "ISO-8601 UTC". A replay of a self-managed node's /var/log/messages written in local time
    // (say CEST) is silently two hours off, so pods are attributed at the wrong time, and around a DST change an
    // hour of lines is shifted or folded, with nothing to warn of it and no option to give the zone. Expected: the
    // README or the --year help says that such stamps are taken as UTC.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const help = await Promise.all([runCli(["parse", "--help"]), runCli(["replay", "--help"])]).then((runs) =>
      runs.map((r) => r.stdout.replace(/\s+/g, " ")).join("\n"),
    );
    // A mention of such stamps with "UTC" close after it (a sentence or a help line).
    const said = /(year-less|yearless|RFC 3164|syslog time ?stamps?)[\s\S]{0,200}?\bUTC\b/i.test(
      `${readme}\n${help}`,
    );
    expect(said).toBe(true);
  });
});
