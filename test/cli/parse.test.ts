// `calico-flows parse` as a user runs it: the real binary under Node 24, log text on stdin, NDJSON on stdout,
// the summary and malformed lines on stderr (DESIGN.md §3.1).
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Readable, Writable } from "node:stream";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { generateLines } from "../../bench/corpus.ts";
import { parseStream, streamWriter } from "../../cli/commands/parse.ts";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createParser } from "../../functions/core/parse.ts";
import type { PacketRecord } from "../../functions/core/types.ts";
import { chunksAt } from "../support/ndjson.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const NODE = join(ROOT, "node_modules/.bin/node");
const BIN = join(ROOT, "bin/calico-flows.js");
const scratch = mkdtempSync(join(tmpdir(), "cf-parse-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], stdin: "pipe" | number = "pipe"): ChildProcess {
  return spawn(NODE, [BIN, "parse", ...args], { cwd: scratch, stdio: [stdin, "pipe", "pipe"] });
}

function finish(child: ChildProcess): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

function run(input: string, args: string[] = []): Promise<Run> {
  const child = start(args);
  const result = finish(child);
  child.stdin?.end(input);
  return result;
}

function records(stdout: string): PacketRecord[] {
  expect(stdout === "" || stdout.endsWith("\n")).toBe(true);
  return stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as PacketRecord);
}

const SYSLOG =
  "Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";
const JOURNALD = JSON.stringify({
  _HOSTNAME: "ip-192-168-9-9",
  __REALTIME_TIMESTAMP: "1713502339123456",
  MESSAGE:
    "calico-packet: IN=eni1 OUT=eth0 MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=2600:1f18:04a2:0001:0000:0000:0000:00a1 DST=2600:1f18:04a2:0002:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=1 PROTO=UDP SPT=53 DPT=5353 LEN=40 ",
});
const NOISE = "Apr 19 04:52:20 ip-192-168-74-5 systemd[1]: Started Session 42 of user ec2-user.";
const TRUNCATED = SYSLOG.slice(0, SYSLOG.indexOf("PROTO="));

describe("calico-flows parse", () => {
  it("writes one record per calico-packet line, and counts the rest on stderr with line numbers", async () => {
    const r = await run([SYSLOG, NOISE, TRUNCATED, JOURNALD, ""].join("\n"), ["--year", "2024"]);
    expect(r.code).toBe(0);
    const parse = createParser({ year: 2024 });
    const expected = [SYSLOG, JOURNALD].map((l) => {
      const o = parse(l);
      if (o.kind !== "record") throw new Error("fixture must parse");
      return o.record;
    });
    expect(records(r.stdout)).toEqual(expected);
    expect(records(r.stdout)[1]).toMatchObject({ src: "2600:1f18:4a2:1::a1", node: "ip-192-168-9-9" });
    expect(r.stderr).toContain("line 3: no PROTO=");
    expect(r.stderr).toContain("4 lines, 2 records, 1 skipped (not calico-packet), 1 malformed");
  });

  it("prints every field of §3.1, in order, with nulls rather than omissions", async () => {
    const r = await run(`${SYSLOG}\n`, ["--year", "2024"]);
    expect(r.stdout).toBe(
      '{"time":"2024-04-19T04:52:19.000Z","node":"ip-192-168-74-5","prefix":"calico-packet","policy":null,' +
        '"inInterface":"eth0","outInterface":"eni8d48114818c","mac":"0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00",' +
        '"src":"192.168.22.247","dst":"192.168.94.122","ipVersion":4,"length":60,"ttl":253,"protocol":"TCP",' +
        '"srcPort":59070,"dstPort":8012,"tcpFlags":["SYN"],"icmpType":null,"icmpCode":null}\n',
    );
  });

  it("keeps the §3.1 contract on hostile lines: records for the rest, reasons on stderr without raw controls", async () => {
    const lines = [
      SYSLOG,
      SYSLOG.replace("PROTO=TCP", "PROTO=TCP\u001b[8m"),
      JSON.stringify({ log: SYSLOG.replace("PROTO=TCP", "PROTO=TCP\n\nNote:\tall\tclear\n") }),
      SYSLOG.replace("PROTO=TCP", `PROTO=X${"9".repeat(90_000)}`),
      SYSLOG.replace("ip-192-168-74-5", "ip-192-168-74-5\u001b]0;owned\u0007\u009b8m"),
      SYSLOG.replace("ip-192-168-74-5", "x".repeat(254)),
      SYSLOG.replace("Apr 19 04:52:19", "9999-12-31T23:59:59.999Z"),
      `{"log":"calico-packet: IN=eth0", "x": t\u001b]0;owned\u0007\u001b[2J}`,
      JOURNALD,
    ];
    const r = await run(`${lines.join("\n")}\n`, ["--year", "2024"]);
    expect(r.code).toBe(0);
    const out = records(r.stdout);
    // The hostile hosts name no node: their records are the line's own with `node` null (present, not omitted).
    const parse = createParser({ year: 2024 });
    const design = parse(SYSLOG);
    if (design.kind !== "record") throw new Error("fixture must parse");
    expect(out).toEqual([
      design.record,
      { ...design.record, node: null },
      { ...design.record, node: null },
      (parse(JOURNALD) as { record: PacketRecord }).record,
    ]);
    expect(r.stdout.split("\n")[1]).toContain('"node":null,');
    const reported = r.stderr.split("\n").filter((l) => l.startsWith("calico-flows parse: line "));
    expect(reported.map((l) => /line (\d+):/.exec(l)?.[1])).toEqual(["2", "3", "4", "7", "8"]);
    expect(reported[0]).toContain(
      'PROTO= is not a protocol name or number (1 to 16 ASCII letters and digits): "TCP\\u001b[8m"',
    );
    expect(reported[3]).toMatch(/the time 9999-12-31T23:59:59.999Z is after 9999-12-24T23:59:59.999Z/);
    expect(reported[4]).toMatch(/malformed JSON record/);
    expect(r.stderr.replaceAll("\n", "")).not.toMatch(
      /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/u,
    );
    expect(r.stderr.length).toBeLessThan(2_000);
    expect(r.stderr).toContain("9 lines, 4 records, 0 skipped (not calico-packet), 5 malformed");
  });

  it("takes CRLF endings and a last line without a newline", async () => {
    const r = await run(`${NOISE}\r\n${SYSLOG}\r\n${SYSLOG}`, ["--year", "2024"]);
    expect(records(r.stdout)).toHaveLength(2);
    expect(records(r.stdout)[1]?.tcpFlags).toEqual(["SYN"]);
    expect(r.stderr).toContain("3 lines, 2 records, 1 skipped");
  });

  it("--year sets the year of year-less timestamps", async () => {
    const r = await run(SYSLOG, ["--year", "2019"]);
    expect(records(r.stdout)[0]?.time).toBe("2019-04-19T04:52:19.000Z");
  });

  it("--prefix-format decodes the policy Felix put in the prefix", async () => {
    const line = SYSLOG.replace("calico-packet: ", "calico-packet security np tenant-a/deny-all: ");
    const r = await run(line, ["--prefix-format", "calico-packet %t %k %p"]);
    expect(records(r.stdout)[0]?.policy).toEqual({
      tier: "security",
      kind: "np",
      name: "deny-all",
      namespace: "tenant-a",
    });
  });

  it("--prefix finds another log prefix", async () => {
    const r = await run(SYSLOG.replace("calico-packet", "k8s-deny"), ["--prefix", "k8s-deny"]);
    expect(records(r.stdout)[0]?.prefix).toBe("k8s-deny");
  });

  it("reports every malformed line with its number by default (DESIGN.md §3.1)", async () => {
    const r = await run(Array.from({ length: 25 }, () => TRUNCATED).join("\n"));
    expect(r.stderr.match(/: no PROTO=/g)).toHaveLength(25);
    expect(r.stderr).toContain("line 25: no PROTO=");
    expect(r.stderr).not.toContain("not listed above");
  });

  it("lists the first --max-errors malformed lines and counts them all", async () => {
    const r = await run(Array.from({ length: 7 }, () => TRUNCATED).join("\n"), ["--max-errors", "2"]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/: no PROTO=/g)).toHaveLength(2);
    expect(r.stderr).toContain("line 2: no PROTO=");
    expect(r.stderr).toContain("7 malformed (5 not listed above)");
  });

  it("rejects bad options with a message and a non-zero exit", async () => {
    for (const args of [
      ["--year", "next"],
      ["--prefix-format", "%t %n"],
      ["--max-errors", "-1"],
    ]) {
      const r = await run("", args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/error: .*(--year|literal text|--max-errors)/);
    }
  });

  it("reads a file redirected to stdin, and a megabyte line", async () => {
    const file = join(scratch, "big-line.log");
    writeFileSync(file, `${SYSLOG} ${"X=1 ".repeat(1 << 18)}\n${NOISE}\n`);
    const fd = openSync(file, "r");
    try {
      const r = await finish(start(["--year", "2024"], fd));
      expect(records(r.stdout)).toHaveLength(1);
      expect(r.stderr).toContain("2 lines, 1 records, 1 skipped");
    } finally {
      closeSync(fd);
    }
  });

  it("streams: records come out while the input is still open", async () => {
    const child = start(["--year", "2024"]);
    const result = finish(child);
    const lines = [...generateLines(20_000, 3)].join("\n");
    child.stdin?.write(`${lines}\n`);
    // Nothing more is written until the first records arrive, so they cannot wait for the end of the input.
    await new Promise<void>((ready) => child.stdout?.once("data", () => ready()));
    child.stdin?.end(`${lines}\n`);
    const r = await result;
    const parse = createParser({ year: 2024 });
    let expected = 0;
    for (const line of generateLines(20_000, 3)) if (parse(line).kind === "record") expected++;
    expect(records(r.stdout)).toHaveLength(2 * expected);
    expect(r.stderr).toContain(`40000 lines, ${2 * expected} records`);
  });

  it("stops quietly when its reader goes away", async () => {
    const child = start(["--year", "2024"]);
    const result = finish(child);
    child.stdout?.once("data", () => child.stdout?.destroy());
    const lines = `${[...generateLines(50_000, 5)].join("\n")}\n`;
    child.stdin?.on("error", () => {});
    child.stdin?.end(lines);
    const r = await result;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/calico-flows parse: \d+ lines/);
  });

  it("refuses UTF-16 input, little- or big-endian, saying how to convert it", async () => {
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${SYSLOG}\r\n`, "utf16le")]);
    const be = Buffer.from(le).swap16();
    for (const input of [le, be]) {
      const parsed = parseStream(Readable.from([input]), {
        encoder: new NdjsonEncoder(),
        write: () => {},
        onMalformed: () => {},
      });
      await expect(parsed).rejects.toThrow(
        /^it is UTF-16 text, .*\(iconv -f UTF-16 -t UTF-8 FILE \| calico-flows parse\)/,
      );
    }
  });

  it("refuses gzip-compressed input as input it cannot read, rather than reading it as no records", async () => {
    const gz = join(scratch, "messages.1.gz");
    writeFileSync(gz, gzipSync(`${SYSLOG}\n${NOISE}\n`));
    const fd = openSync(gz, "r");
    try {
      const r = await finish(start([], fd));
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        "calico-flows parse: cannot read the input: it is gzip-compressed: decompress it (zcat FILE | calico-flows parse)\n",
      );
    } finally {
      closeSync(fd);
    }
  });

  it("exits non-zero when the input cannot be read", async () => {
    const fd = openSync(scratch, "r");
    try {
      const r = await finish(start([], fd));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("cannot read the input");
    } finally {
      closeSync(fd);
    }
  });
});

describe("parseStream", () => {
  /** Runs parseStream over `bytes` cut into the given chunk sizes; returns stdout text and the malformed list. */
  async function streamed(bytes: Buffer, cuts: number[], maxLineLength?: number) {
    const chunks: Buffer[] = [];
    let at = 0;
    for (const size of cuts) {
      if (at >= bytes.length) break;
      chunks.push(bytes.subarray(at, at + size));
      at += size;
    }
    if (at < bytes.length) chunks.push(bytes.subarray(at));
    let out = "";
    const malformed: string[] = [];
    const output = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out += chunk.toString();
        done();
      },
    });
    const summary = await parseStream(
      (async function* () {
        yield* chunks;
      })(),
      {
        encoder: new NdjsonEncoder({ year: 2024 }),
        write: streamWriter(output),
        onMalformed: (line, reason) => malformed.push(`${line}: ${reason}`),
        ...(maxLineLength === undefined ? {} : { maxLineLength }),
      },
    );
    return { out, malformed, summary };
  }

  it("gives the same output however the bytes are cut into chunks", async () => {
    const lines = [...generateLines(60, 11)];
    lines.splice(7, 0, TRUNCATED, `${SYSLOG.replace("ip-192-168-74-5", "nœud-é")}\r`, "", "ünïcode 🙂 noise");
    const text = `${lines.join("\n")}\n${SYSLOG}`;
    const bytes = Buffer.from(text);
    const whole = await streamed(bytes, [bytes.length]);
    expect(whole.summary.lines).toBe(lines.length + 1);
    expect(whole.malformed).toEqual(["8: no PROTO=: the line ends in the IP header"]);
    expect(records(whole.out).filter((r) => r.node === "nœud-é")).toHaveLength(1);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 80 }),
        async (cuts) => {
          const cut = await streamed(bytes, cuts);
          expect(cut.out).toBe(whole.out);
          expect(cut.malformed).toEqual(whole.malformed);
          expect(cut.summary).toEqual(whole.summary);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("counts a line over the length limit as malformed (skipped without the prefix) and goes on", async () => {
    const bytes = Buffer.from(
      `${SYSLOG}\ncalico-packet: ${"x".repeat(5000)}\n${SYSLOG}\n${"y".repeat(5000)}`,
    );
    const r = await streamed(bytes, [100, 1000, 3000, 10_000], 4096);
    expect(records(r.out)).toHaveLength(2);
    expect(r.malformed).toEqual(["2: line longer than 4096 characters, not parsed"]);
    expect(r.summary).toMatchObject({ lines: 4, records: 2, skipped: 1, malformed: 1 });
  });
});

describe("parseStream parses lines where they lie in the chunk", () => {
  /** What the parser makes of each line alone: the NDJSON and the malformed lines. */
  function lineByLine(lines: string[]) {
    const parse = createParser({ year: 2024 });
    let out = "";
    const malformed: string[] = [];
    lines.forEach((line, i) => {
      const o = parse(line.endsWith("\r") ? line.slice(0, -1) : line);
      if (o.kind === "record") out += `${JSON.stringify(o.record)}\n`;
      else if (o.kind === "error") malformed.push(`${i + 1}: ${o.reason}`);
    });
    return { out, malformed };
  }

  it("as the parser does on each line alone, whatever follows a line in the chunk", async () => {
    const cut = (line: string, at: string) => line.slice(0, line.indexOf(at) + at.length);
    // Lines cut short, each followed by a line that starts with what could have continued it: the scan of a
    // line must never read into the next one.
    const lines = [
      cut(SYSLOG, "IN=eth0"),
      "OUT=eni8d48114818c MAC=0a SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TTL=1 PROTO=UDP SPT=1 DPT=2 LEN=3",
      cut(SYSLOG, "SRC=192.168.22.24"),
      "7 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=3",
      cut(SYSLOG, "RES=0x00 SY"),
      "N URGP=0",
      cut(SYSLOG, "Apr 19 04:52:1"),
      `9.5 ip-1 kernel: ${messageOf(SYSLOG)}`,
      `${SYSLOG}\r`,
      `  ${SYSLOG}`,
      JOURNALD,
      "Apr 19 04:52:19 h kernel: eth0: renamed",
      ...generateLines(400, 3),
    ];
    const bytes = Buffer.from(`${lines.join("\n")}\n`);
    const expected = lineByLine(lines);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 40 }),
        async (cuts) => {
          const chunks = chunksAt(bytes, cuts, 0x41);
          let out = "";
          const malformed: string[] = [];
          await parseStream(
            (async function* () {
              yield* chunks;
            })(),
            {
              encoder: new NdjsonEncoder({ year: 2024 }),
              write: (b) => {
                out += Buffer.from(b).toString();
              },
              onMalformed: (line, reason) => malformed.push(`${line}: ${reason}`),
            },
          );
          expect(out).toBe(expected.out);
          expect(malformed).toEqual(expected.malformed);
          // The bytes after each chunk are put back.
          for (const c of chunks)
            expect(new Uint8Array(c.buffer, c.byteOffset + c.length, 64).every((x) => x === 0x41)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});

function messageOf(line: string): string {
  return line.slice(line.indexOf("calico-packet"));
}
