// Parser figures: lines/s of the in-process parser and of `calico-flows parse` end to end (stdin → NDJSON) on the
// shared corpus, peak memory, and the same corpus through rsyslog's lognormalizer (v2-iptables) for a peer.
//
// Figures are best-of-N wall-clock runs on one core (the parser is single-threaded); CPU seconds are printed
// beside them because other work on the machine inflates wall time but not the process's own CPU time.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createParser, createScanner } from "../functions/core/parse.ts";
import { generateLines } from "./corpus.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "bin/calico-flows.js");
const FLOOR = join(ROOT, "bench/e2e-floor.ts");
const LINES = Number(process.env.BENCH_LINES ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TIME = "/usr/bin/time";
const TARGET_IN_PROCESS = 1_500_000;
const TARGET_END_TO_END = 700_000;
const TARGET_PEER_RATIO = 5;

/** A rulebase for the syslog forms of the corpus; lognormalizer has no way into the JSON-wrapped ones. */
const RULEBASE = `version=2
rule=:%date:date-rfc3164% %host:word% kernel: %prefix:char-to{"extradata":":"}%: %fields:v2-iptables%
rule=:%date:date-rfc3164% %host:word% kernel: [%uptime:char-to{"extradata":"]"}%] %prefix:char-to{"extradata":":"}%: %fields:v2-iptables%
rule=:%date:date-rfc5424% %host:word% kernel: %prefix:char-to{"extradata":":"}%: %fields:v2-iptables%
rule=:<%pri:number%>1 %date:date-rfc5424% %host:word% kernel - - - %prefix:char-to{"extradata":":"}%: %fields:v2-iptables%
`;

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);
const fmt = (n: number) => n.toLocaleString("en-US");
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

interface Timed {
  wallMs: number;
  cpuMs: number;
  maxRssKb: number | null;
  status: number | null;
  stderr: string;
}

/** Runs a command with stdin from a file and stdout to /dev/null, under GNU time when it is there. */
function timed(command: string, args: string[], stdinFile: string): Timed {
  const input = openSync(stdinFile, "r");
  const output = openSync("/dev/null", "w");
  try {
    const useTime = spawnSync(TIME, ["--version"], { stdio: "ignore" }).status === 0;
    const start = performance.now();
    const r = useTime
      ? spawnSync(TIME, ["-f", "calico-bench %e %U %S %M", command, ...args], {
          stdio: [input, output, "pipe"],
          encoding: "utf8",
        })
      : spawnSync(command, args, { stdio: [input, output, "pipe"], encoding: "utf8" });
    const wallMs = performance.now() - start;
    const m = /calico-bench ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr ?? "");
    return {
      wallMs,
      cpuMs: m ? (Number(m[2]) + Number(m[3])) * 1000 : Number.NaN,
      maxRssKb: m ? Number(m[4]) : null,
      status: r.status,
      stderr: r.stderr ?? "",
    };
  } finally {
    closeSync(input);
    closeSync(output);
  }
}

/** Best of three passes of `pass` over `lines`, in µs per line. */
function microsPerLine(lines: readonly string[], pass: () => number): number {
  let bestMs = Number.POSITIVE_INFINITY;
  let check = 0;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    check += pass();
    bestMs = Math.min(bestMs, performance.now() - start);
  }
  if (check === 0) throw new Error("the pass saw nothing");
  return (bestMs * 1000) / lines.length;
}

/** The parser's scan without building records: what the pipeline and the NDJSON encoder run. */
function scanMicros(lines: readonly string[]): number {
  const scanner = createScanner({ year: 2024 });
  scanner.encoding = true;
  return microsPerLine(lines, () => {
    let records = 0;
    for (let i = 0; i < lines.length; i++) if (scanner.scan(lines[i] as string) === null) records++;
    return records;
  });
}

/**
 * µs per line of the scan over 100,000 copies of one corpus line as syslog, as journald's record (Fluent Bit's
 * systemd input), and inside the OpenTelemetry exporter's `body` as journald's entry and as the syslog line.
 */
function wrapperMicros(lines: readonly string[]): string {
  const syslog = lines.find((l) => !l.startsWith("{") && l.includes(" kernel: calico-packet")) as string;
  const message = syslog.slice(syslog.indexOf("calico-packet"));
  const host = "ip-192-168-74-5.eu-west-1.compute.internal";
  const entry = { _HOSTNAME: host, MESSAGE: message, _TRANSPORT: "kernel", PRIORITY: "4" };
  const resource = { "host.name": host };
  const forms = {
    syslog,
    journald: JSON.stringify(entry),
    "exporter, journald body": JSON.stringify({ body: entry, severity_number: 0, attributes: {}, resource }),
    "exporter, syslog body": JSON.stringify({
      body: syslog,
      attributes: { "log.file.name": "messages" },
      resource,
    }),
  };
  return Object.entries(forms)
    .map(([name, line]) => `${name} ${scanMicros(new Array<string>(100_000).fill(line)).toFixed(2)}`)
    .join(", ");
}

/**
 * A floor for any parser of these lines written in JavaScript: each line's UTF-16 units copied into a byte array
 * (as the parser's fill does) and every byte compared once, counting spaces. Parsing reads each byte at least once.
 */
function byteFloorMicros(lines: readonly string[]): number {
  const utf8 = new TextEncoder();
  const bytes = new Uint8Array(1 << 20);
  return microsPerLine(lines, () => {
    let spaces = 0;
    for (let i = 0; i < lines.length; i++) {
      const n = utf8.encodeInto(lines[i] as string, bytes).written;
      for (let k = 0; k < n; k++) if (bytes[k] === 32) spaces++;
    }
    return spaces;
  });
}

/** µs per record of JSON.stringify over the records of the first 200,000 lines, best of three passes. */
function stringifyMicros(parse: ReturnType<typeof createParser>, lines: readonly string[]): number {
  const records: unknown[] = [];
  for (const line of lines.slice(0, 200_000)) {
    const outcome = parse(line);
    if (outcome.kind === "record") records.push(outcome.record);
  }
  let bestMs = Number.POSITIVE_INFINITY;
  let bytes = 0;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    for (const record of records) bytes += JSON.stringify(record).length;
    bestMs = Math.min(bestMs, performance.now() - start);
  }
  if (bytes === 0) throw new Error("no records to serialise");
  return (bestMs * 1000) / records.length;
}

/** Average bytes of an NDJSON record (a JSON.stringify'd record and its newline) over the first 200,000 lines. */
function averageRecordBytes(parse: ReturnType<typeof createParser>, lines: readonly string[]): number {
  let bytes = 0;
  let records = 0;
  for (const line of lines.slice(0, 200_000)) {
    const outcome = parse(line);
    if (outcome.kind !== "record") continue;
    bytes += Buffer.byteLength(JSON.stringify(outcome.record)) + 1;
    records++;
  }
  if (records === 0) throw new Error("no records to measure");
  return Math.round(bytes / records);
}

function best(runs: Timed[]): Timed {
  return runs.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
}

function rss(kb: number | null): string {
  return kb === null ? "n/a (no /usr/bin/time)" : `${fmt(Math.round(kb / 1024))} MiB`;
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "calico-flows-bench-"));
  try {
    const lines = [...generateLines(LINES, 1)];
    const corpus = join(dir, "corpus.log");
    writeFileSync(corpus, `${lines.join("\n")}\n`);
    const kinds = { calico: 0, json: 0, other: 0 };
    for (const l of lines) {
      if (!l.includes("calico-packet")) kinds.other++;
      else if (l.startsWith("{")) kinds.json++;
      else kinds.calico++;
    }
    console.log(
      `corpus: ${fmt(LINES)} lines (${fmt(kinds.calico)} syslog calico-packet, ${fmt(kinds.json)} JSON-wrapped, ` +
        `${fmt(kinds.other)} other), ${fmt(Math.round(lines.reduce((s, l) => s + l.length + 1, 0) / 1e6))} MB`,
    );

    // In process: the parser alone over lines already in memory.
    const parse = createParser({ year: 2024 });
    let records = 0;
    for (const l of lines) if (parse(l).kind === "record") records++;
    let bestWall = Number.POSITIVE_INFINITY;
    let bestCpu = Number.POSITIVE_INFINITY;
    for (let round = 0; round < ROUNDS; round++) {
      const w = performance.now();
      const c = cpuMs();
      for (let i = 0; i < lines.length; i++) parse(lines[i] as string);
      bestCpu = Math.min(bestCpu, cpuMs() - c);
      bestWall = Math.min(bestWall, performance.now() - w);
    }
    const inProcess = rate(LINES, bestWall);
    console.log(
      `in process:  ${fmt(inProcess)} lines/s (${fmt(rate(LINES, bestCpu))} per CPU-second; ${fmt(records)} records) ` +
        `target ≥ ${fmt(TARGET_IN_PROCESS)}: ${inProcess >= TARGET_IN_PROCESS ? "met" : "NOT met"}`,
    );
    // Where that time goes: the scan alone (values left in the scanner's fields, as the pipeline and the NDJSON
    // encoder take them), and the least any scanner of these strings pays (see byteFloorMicros).
    const scanUs = scanMicros(lines);
    console.log(
      `             of which the scan alone ${scanUs.toFixed(2)} µs/line, the rest building records; ` +
        `copying each line into bytes and comparing every byte once takes ${byteFloorMicros(lines).toFixed(2)} µs/line`,
    );
    // The scan of one line under each wrapper a shipper puts around it (test/core/parse-wild-review.test.ts).
    console.log(`             the scan by wrapper: ${wrapperMicros(lines)}`);
    // Why `calico-flows parse` writes NDJSON from the scanned bytes (ndjson.ts) instead of serialising records.
    console.log(
      `             JSON.stringify of those records: ${stringifyMicros(parse, lines).toFixed(2)} µs/record`,
    );

    // End to end: the real binary, stdin → NDJSON on /dev/null.
    const node = process.execPath;
    const startup = best([0, 1, 2].map(() => timed(node, [BIN, "parse"], "/dev/null")));
    const e2e = best(
      Array.from({ length: ROUNDS }, () => timed(node, [BIN, "parse", "--year", "2024"], corpus)),
    );
    if (e2e.status !== 0) throw new Error(`calico-flows parse failed: ${e2e.stderr}`);
    const endToEnd = rate(LINES, e2e.wallMs);
    console.log(
      `end to end:  ${fmt(endToEnd)} lines/s (${fmt(rate(LINES, e2e.cpuMs))} per CPU-second; ` +
        `${fmt(rate(LINES, e2e.wallMs - startup.wallMs))} lines/s after ${fmt(Math.round(startup.wallMs))} ms of start-up) ` +
        `target ≥ ${fmt(TARGET_END_TO_END)}: ${endToEnd >= TARGET_END_TO_END ? "met" : "NOT met"}`,
    );
    console.log(
      `             ${e2e.stderr.split("\n").find((l) => l.startsWith("calico-flows parse:")) ?? ""}`,
    );
    // What any JavaScript implementation of `parse` pays before parsing anything (bench/e2e-floor.ts).
    const recordBytes = averageRecordBytes(parse, lines);
    const floor = best(
      Array.from({ length: ROUNDS }, () => timed(node, [FLOOR, String(recordBytes)], corpus)),
    );
    if (floor.status !== 0) throw new Error(`the end-to-end floor failed: ${floor.stderr}`);
    const floorRate = rate(LINES, floor.wallMs);
    console.log(
      `e2e floor:   ${fmt(floorRate)} lines/s: a JavaScript process that reads and splits the same input, reads ` +
        `every byte once and writes a ${recordBytes}-byte record per calico line, parsing nothing`,
    );

    // Memory stays flat: four times the input, same peak.
    const four = join(dir, "corpus4.log");
    const copies = spawnSync("sh", ["-c", `cat "${corpus}" "${corpus}" "${corpus}" "${corpus}" > "${four}"`]);
    if (copies.status !== 0) throw new Error("could not build the 4x corpus");
    const quad = timed(node, [BIN, "parse", "--year", "2024"], four);
    rmSync(four);
    console.log(
      `peak RSS:    ${rss(e2e.maxRssKb)} for ${fmt(LINES)} lines, ${rss(quad.maxRssKb)} for ${fmt(4 * LINES)} lines ` +
        `(start-up alone: ${rss(startup.maxRssKb)})`,
    );

    // Input that is almost all something else (a Fluent Bit or journal dump): lines without the prefix are
    // rejected without reading on through the chunk for each of them.
    const noise = join(dir, "noise.log");
    const noiseLines: string[] = [];
    for (let i = 0; i < LINES; i++) {
      noiseLines.push(
        i % 2 === 0
          ? JSON.stringify({
              log: `2024-04-19T04:52:19Z stdout F GET /health ${i} 200`,
              kubernetes: {
                pod_name: `web-${i % 50}`,
                namespace_name: "default",
                host: `ip-10-0-0-${i % 9}`,
              },
            })
          : `Apr 19 04:52:19 ip-10-0-0-1 systemd[1]: Started session ${i}.`,
      );
    }
    writeFileSync(noise, `${noiseLines.join("\n")}\n`);
    const quiet = best(Array.from({ length: ROUNDS }, () => timed(node, [BIN, "parse"], noise)));
    rmSync(noise);
    console.log(
      `no calico:   ${fmt(rate(LINES, quiet.wallMs))} lines/s on ${fmt(LINES)} lines of unrelated JSON and syslog`,
    );

    // The peer.
    // lognormalizer -V prints its version and exits 1.
    const version = spawnSync("lognormalizer", ["-V"], { encoding: "utf8" });
    if (version.error || !/lognormalizer version/.test(`${version.stdout}${version.stderr}`)) {
      console.log("lognormalizer: not installed (Debian package liblognorm-utils): peer comparison skipped");
      return;
    }
    const rulebase = join(dir, "iptables.rulebase");
    writeFileSync(rulebase, RULEBASE);
    const peer = best(
      Array.from({ length: ROUNDS }, () => timed("lognormalizer", ["-r", rulebase, "-e", "json"], corpus)),
    );
    const sample = join(dir, "sample.log");
    writeFileSync(sample, `${lines.slice(0, 100_000).join("\n")}\n`);
    const sampleFd = openSync(sample, "r");
    const counted = spawnSync("lognormalizer", ["-r", rulebase, "-e", "raw", "-P", "-H"], {
      stdio: [sampleFd, "pipe", "pipe"],
      encoding: "utf8",
      maxBuffer: 1 << 28,
    });
    closeSync(sampleFd);
    const summary = /(\d+) records processed, (\d+) parsed/.exec(`${counted.stdout}${counted.stderr}`);
    const peerRate = rate(LINES, peer.wallMs);
    const ratio = endToEnd / peerRate;
    const floorRatio = floorRate / peerRate;
    console.log(
      `lognormalizer ${/lognormalizer version:? *([\w.]+)/.exec(`${version.stdout}${version.stderr}`)?.[1] ?? ""}: ` +
        `${fmt(peerRate)} lines/s (${fmt(rate(LINES, peer.cpuMs))} per CPU-second), peak RSS ${rss(peer.maxRssKb)}; ` +
        `it parsed ${summary ? `${summary[2]} of ${summary[1]}` : "?"} sample lines`,
    );
    console.log(
      `ratio:       calico-flows parse is ${ratio.toFixed(2)}× lognormalizer end to end ` +
        `(${(rate(LINES, e2e.cpuMs) / rate(LINES, peer.cpuMs)).toFixed(2)}× per CPU-second), ` +
        `${(inProcess / peerRate).toFixed(2)}× in process; goal ≥ ${TARGET_PEER_RATIO}×: ${ratio >= TARGET_PEER_RATIO ? "met" : "NOT met"}`,
    );
    // The goal end to end leaves 1 / (5 × the peer's rate) a line; the floor has already spent 1 / floorRate of it.
    const budgetUs = 1e6 / (TARGET_PEER_RATIO * peerRate);
    const floorUs = 1e6 / floorRate;
    console.log(
      `             the floor alone is ${floorRatio.toFixed(2)}× lognormalizer: of the ${budgetUs.toFixed(2)} µs a line ` +
        `that ${TARGET_PEER_RATIO}× allows end to end, it leaves ${(budgetUs - floorUs).toFixed(2)} µs to parse and encode ` +
        `(in process, the scan alone took ${scanUs.toFixed(2)})`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
