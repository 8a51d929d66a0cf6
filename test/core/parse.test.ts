// Table-driven cases for the calico-packet parser, one per form a line can take: the kernel's nf_log_syslog
// output (IPv4, IPv6, TCP, UDP, ICMP errors with quoted packets, fragments, trailers) behind each wrapper.
import { describe, expect, it } from "vitest";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createParser, createScanner, type ParseOptions, parseLine } from "../../functions/core/parse.ts";
import type { PacketRecord } from "../../functions/core/types.ts";
import { outcomes, PARSE_NOW, record } from "../support/parse-outcome.ts";

function reason(line: string, options: ParseOptions = {}): string {
  const outcome = outcomes(line, options);
  if (outcome.kind !== "error") throw new Error(`expected an error, got ${JSON.stringify(outcome)}`);
  return outcome.reason;
}

const DESIGN_LINE =
  "Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";

const DESIGN_RECORD: PacketRecord = {
  time: "2024-04-19T04:52:19.000Z",
  node: "ip-192-168-74-5",
  prefix: "calico-packet",
  policy: null,
  inInterface: "eth0",
  outInterface: "eni8d48114818c",
  mac: "0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00",
  src: "192.168.22.247",
  dst: "192.168.94.122",
  ipVersion: 4,
  length: 60,
  ttl: 253,
  protocol: "TCP",
  srcPort: 59070,
  dstPort: 8012,
  tcpFlags: ["SYN"],
  icmpType: null,
  icmpCode: null,
};

/** The kernel message of the DESIGN.md line: prefix and fields, with the kernel's trailing space. */
const MESSAGE = `${DESIGN_LINE.slice(DESIGN_LINE.indexOf("calico-packet"))} `;

describe("the DESIGN.md example", () => {
  it("parses to every field of §3.1", () => {
    expect(record(DESIGN_LINE)).toEqual(DESIGN_RECORD);
  });

  it("serialises with the field names and order of §3.1, absent values as null", () => {
    expect(Object.keys(record(DESIGN_LINE))).toEqual([
      "time",
      "node",
      "prefix",
      "policy",
      "inInterface",
      "outInterface",
      "mac",
      "src",
      "dst",
      "ipVersion",
      "length",
      "ttl",
      "protocol",
      "srcPort",
      "dstPort",
      "tcpFlags",
      "icmpType",
      "icmpCode",
    ]);
  });
});

describe("syslog wrappers", () => {
  it.each([
    ["RFC 3164", DESIGN_LINE, "2024-04-19T04:52:19.000Z", "ip-192-168-74-5"],
    [
      "RFC 3164, single-digit day padded with a space",
      `Apr  9 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-09T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      "RFC 3164 with the kernel's own [seconds.micros] stamp before the prefix",
      `Apr 19 04:52:19 ip-192-168-74-5 kernel: [ 8123.456789] ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      "RFC 3164 with a <PRI>",
      `<4>Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      "RFC 3164 without a host name (a local tag)",
      `Apr 19 04:52:19 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      null,
    ],
    [
      "rsyslog high precision: microseconds and an offset, converted to UTC",
      `2024-04-19T06:52:19.123456+02:00 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.123Z",
      "ip-192-168-74-5",
    ],
    [
      "ISO-8601 with a negative offset without colon",
      `2024-04-18T23:52:19.5-0500 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.500Z",
      "ip-192-168-74-5",
    ],
    [
      "ISO-8601 with Z and nanoseconds",
      `2024-04-19T04:52:19.999999999Z ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.999Z",
      "ip-192-168-74-5",
    ],
    [
      "ISO-8601 without an offset (taken as UTC)",
      `2024-04-19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      "RFC 5424 with PRI, version and nil structured data",
      `<4>1 2024-04-19T04:52:19.000001Z ip-192-168-74-5 kernel - - - ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      "RFC 5424 with structured data and a nil host",
      `<4>1 2024-04-19T04:52:19Z - kernel - - [timeQuality tzKnown="1"] ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      null,
    ],
    [
      "a container runtime (CRI) line wrapping a syslog line",
      `2024-04-19T04:52:20.123456789Z stdout F Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:20.123Z",
      "ip-192-168-74-5",
    ],
    [
      "a tool's timestamp before a syslog line (`kubectl logs --timestamps`): its time, the line's host",
      `2024-04-19T04:52:20.123456789Z Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:20.123Z",
      "ip-192-168-74-5",
    ],
    [
      "a tool's timestamp before an RFC 5424 line: the line's own full time",
      `2024-04-19T04:52:20Z <4>1 2024-04-19T04:52:19.5Z ip-192-168-74-5 kernel - - - ${MESSAGE}`,
      "2024-04-19T04:52:19.500Z",
      "ip-192-168-74-5",
    ],
    [
      "`kubectl logs --prefix`'s [pod/<pod>/<container>] before a syslog line: the line's time and host",
      `[pod/calico-logs-x7k2p/calico-logs] Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      "`kubectl logs --prefix --timestamps`: the pod, then the tool's timestamp, then the syslog line",
      `[pod/calico-logs-x7k2p/calico-logs] 2024-04-19T04:52:20.5Z Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:20.500Z",
      "ip-192-168-74-5",
    ],
    [
      "a bracketed [pod/…] that is not kubectl's (no container): no header found behind it",
      `[pod/calico-logs-x7k2p] Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`,
      null,
      null,
    ],
    [
      "an ISO stamp before a host named with capitals: the host, not a header",
      `2024-04-19T04:52:19Z Worker-7 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "Worker-7",
    ],
    [
      "an ISO stamp before a host given as its address",
      `2024-04-19T04:52:19Z 10.0.1.5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "10.0.1.5",
    ],
    ["a bare kernel message: no time, no node", MESSAGE, null, null],
    ["dmesg output", `[ 8123.456789] ${MESSAGE}`, null, null],
  ])("%s", (_name, line, time, node) => {
    const r = record(line);
    expect(r.time).toBe(time);
    expect(r.node).toBe(node);
    expect(r.src).toBe("192.168.22.247");
    expect(r.dstPort).toBe(8012);
  });

  it.each([
    ["a syslog line", `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`, ""],
    ["spaces before it", `  Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`, ""],
    ["kubectl's --prefix", "[pod/calico-logs-x7k2p/calico-logs] ", "Apr 19"],
    ["kubectl's --timestamps", "2024-04-19T04:52:20.5Z ", "Apr 19"],
    ["both", "[pod/calico-logs-x7k2p/calico-logs] 2024-04-19T04:52:20.5Z ", "Apr 19"],
    ["a container runtime's wrapper", "2024-04-19T04:52:20Z stdout F ", "Apr 19"],
    ["a JSON record", `{"MESSAGE":"Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}"}`, ""],
  ])("says where the line it read starts (lineS): %s", (_name, before, starts) => {
    const scanner = createScanner({ year: 2024 });
    const line = starts === "" ? before : `${before}Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`;
    expect(scanner.scan(line)).toBeNull();
    expect(scanner.lineS).toBe(starts === "" ? 0 : before.length);
  });

  it("accepts CRLF endings and a trailing LF", () => {
    expect(record(`${DESIGN_LINE}\r\n`)).toEqual(DESIGN_RECORD);
    expect(record(`${DESIGN_LINE} \r`)).toEqual(DESIGN_RECORD);
    expect(record(`${DESIGN_LINE}\n`)).toEqual(DESIGN_RECORD);
  });
});

describe("year of year-less timestamps", () => {
  const line = (stamp: string) => `${stamp} node kernel: ${MESSAGE}`;

  it("uses --year when given", () => {
    expect(record(line("Apr 19 04:52:19"), { year: 2021 }).time).toBe("2021-04-19T04:52:19.000Z");
  });

  it("takes the year of now, or the year before when that would be more than a day ahead", () => {
    const newYear = Date.UTC(2025, 0, 1, 0, 30);
    expect(record(line("Dec 31 23:59:59"), { now: newYear }).time).toBe("2024-12-31T23:59:59.000Z");
    expect(record(line("Jan  1 00:40:00"), { now: newYear }).time).toBe("2025-01-01T00:40:00.000Z");
    // Less than a day ahead (clock skew between node and reader) stays in this year.
    expect(record(line("Jan  1 23:00:00"), { now: newYear }).time).toBe("2025-01-01T23:00:00.000Z");
    expect(record(line("Jan  2 01:00:00"), { now: newYear }).time).toBe("2024-01-02T01:00:00.000Z");
  });

  it("finds Feb 29 in the last leap year, and reports it when --year has none", () => {
    expect(record(line("Feb 29 12:00:00"), { now: Date.UTC(2025, 2, 1) }).time).toBe(
      "2024-02-29T12:00:00.000Z",
    );
    // However far back that is: two and three years (the help's "latest year that puts it at most a day ahead").
    for (const now of [Date.UTC(2026, 11, 7), Date.UTC(2027, 5, 1)]) {
      expect(record(line("Feb 29 12:00:00"), { now }).time).toBe("2024-02-29T12:00:00.000Z");
    }
    // A day ahead of a leap year's Feb 28 is that year's; 2100 is no leap year, so its Feb 29 is 2096's.
    expect(record(line("Feb 29 12:00:00"), { now: Date.UTC(2028, 1, 28, 13) }).time).toBe(
      "2028-02-29T12:00:00.000Z",
    );
    expect(record(line("Feb 29 12:00:00"), { now: Date.UTC(2100, 5, 1) }).time).toBe(
      "2096-02-29T12:00:00.000Z",
    );
    expect(reason(line("Feb 30 12:00:00"), { now: Date.UTC(2026, 11, 7) })).toMatch(/2-30 does not exist/);
    expect(reason(line("Feb 29 12:00:00"), { year: 2023 })).toMatch(/2-29 does not exist in 2023/);
  });

  it("reports an ISO timestamp that names no instant, unless a time from outside the line stands for it", () => {
    expect(reason(line("2026-02-30T04:52:19Z"))).toBe(
      'the timestamp "2026-02-30T04:52:19Z" names no instant',
    );
    expect(reason(line("2026-04-19 24:00:00"))).toMatch(/"2026-04-19 24:00:00" names no instant/);
    // The record's own time field wins over the line's stamp, as it does over a year-less one.
    const wrapped = JSON.stringify({ time: "2026-04-19T04:52:19Z", MESSAGE: line("2026-02-30T04:52:19Z") });
    expect(record(wrapped).time).toBe("2026-04-19T04:52:19.000Z");
  });
});

describe("JSON records wrapping a line", () => {
  it("journald as Fluent Bit's systemd input ships it", () => {
    const line = JSON.stringify({
      _HOSTNAME: "ip-192-168-74-5",
      _TRANSPORT: "kernel",
      __REALTIME_TIMESTAMP: "1713502339123456",
      PRIORITY: "4",
      MESSAGE: MESSAGE,
    });
    expect(record(line)).toEqual({ ...DESIGN_RECORD, time: "2024-04-19T04:52:19.123Z" });
  });

  it("Fluent Bit's json output: the time in `date`, in each of its json_date_format forms", () => {
    const at = (date: unknown) =>
      record(JSON.stringify({ date, _HOSTNAME: "ip-192-168-74-5", MESSAGE })).time;
    // double (the default), epoch, iso8601.
    expect(at(1713502339.123)).toBe("2024-04-19T04:52:19.123Z");
    expect(at(1713502339)).toBe("2024-04-19T04:52:19.000Z");
    expect(at("2024-04-19T04:52:19.123Z")).toBe("2024-04-19T04:52:19.123Z");
    // A time key of journald or an agent is more precise, when the record has one too.
    const both = JSON.stringify({ date: 1713502000, timestamp: "2024-04-19T04:52:19.5Z", MESSAGE });
    expect(record(both).time).toBe("2024-04-19T04:52:19.500Z");
  });

  it("journald's own time of the entry before the time journald got it", () => {
    const line = JSON.stringify({
      __REALTIME_TIMESTAMP: "1713502339999999",
      _SOURCE_REALTIME_TIMESTAMP: "1713502339123456",
      MESSAGE,
    });
    expect(record(line).time).toBe("2024-04-19T04:52:19.123Z");
  });

  it("read as JSON.parse reads them: the last of a repeated key, any spacing, nested values", () => {
    // Records without escapes are read in place rather than through JSON.parse (outcomes() holds the two to
    // agree); these are the cases where they could part.
    const bare = JSON.stringify(MESSAGE);
    const cases: [string, Partial<PacketRecord> | "skip"][] = [
      [`{"host":"a","MESSAGE":${bare},"host":"b"}`, { node: "b" }],
      [`{"MESSAGE":"calico-packet: nothing","MESSAGE":${bare}}`, { src: "192.168.22.247" }],
      [`{"MESSAGE":${bare},"MESSAGE":"calico-packet: nothing"}`, "skip"],
      [` \t{ "host" :\t"a" , "MESSAGE" : ${bare} }\r `, { node: "a" }],
      [`{"kubernetes":{"pod":{"host":"x"},"host":"k8s"},"log":${bare}}`, { node: "k8s" }],
      [`{"kubernetes":{"host":"k8s"},"kubernetes":"gone","log":${bare}}`, { node: null }],
      [`{"kubernetes":{"host":"k8s"},"hostname":"top","log":${bare}}`, { node: "top" }],
      [`{"kubernetes":{"host":""},"log":${bare}}`, { node: null }],
      [`{"tags":[1,-2.5e3,true,null,[],{}],"host":"a","MESSAGE":${bare}}`, { node: "a" }],
      [`{"time":"2024-04-19T04:52:19.5+01:00","MESSAGE":${bare}}`, { time: "2024-04-19T03:52:19.500Z" }],
      [`{"time":null,"timestamp":1713502339.25,"MESSAGE":${bare}}`, { time: "2024-04-19T04:52:19.250Z" }],
      [`{"@timestamp":{"s":1},"__REALTIME_TIMESTAMP":"x","MESSAGE":${bare}}`, { time: null }],
      [`{"message":["calico-packet"],"MESSAGE":${bare}}`, { src: "192.168.22.247" }],
    ];
    for (const [line, expected] of cases) {
      if (expected === "skip") expect(outcomes(line).kind).toBe("skip");
      else expect(record(line)).toMatchObject(expected);
    }
    for (const bad of [`{"MESSAGE":${bare},}`, `{"MESSAGE":${bare}} x`, `{"n":01,"MESSAGE":${bare}}`]) {
      expect(reason(bad)).toMatch(/^malformed JSON record: /);
    }
  });

  it("journald's byte-array MESSAGE (not valid UTF-8 as a whole)", () => {
    const bytes = [...Buffer.from(MESSAGE)];
    const line = JSON.stringify({
      _HOSTNAME: "n1",
      MESSAGE: bytes,
      __REALTIME_TIMESTAMP: "1713502339000000",
    });
    expect(record(line)).toMatchObject({
      node: "n1",
      src: "192.168.22.247",
      time: "2024-04-19T04:52:19.000Z",
    });
  });

  it("CloudWatch agent / Container Insights host logs: message and host", () => {
    const line = JSON.stringify({ host: "ip-192-168-74-5", ident: "kernel", message: MESSAGE });
    expect(record(line)).toEqual({ ...DESIGN_RECORD, time: null });
    const timed = JSON.stringify({ host: "h", message: MESSAGE, timestamp: 1713502339123 });
    expect(record(timed).time).toBe("2024-04-19T04:52:19.123Z");
  });

  it("Fluent Bit tail: a whole syslog line in `log`, its host and time win over the record's", () => {
    const line = JSON.stringify({
      log: `${DESIGN_LINE}\n`,
      kubernetes: { host: "ip-192-168-74-5.eu-west-1.compute.internal" },
    });
    expect(record(line)).toEqual(DESIGN_RECORD);
    const bare = JSON.stringify({ log: MESSAGE, kubernetes: { host: "ip-1.eu-west-1.compute.internal" } });
    expect(record(bare).node).toBe("ip-1.eu-west-1.compute.internal");
  });

  it("Fluent Bit tail: the newline ending `log` is the line's end, wherever else escapes are", () => {
    const host = { kubernetes: { host: "ip-192-168-74-5.eu-west-1.compute.internal" } };
    const cut = DESIGN_LINE.slice(0, DESIGN_LINE.indexOf(" SYN") + 3);
    expect(reason(JSON.stringify({ log: `${cut}\n`, ...host }))).toBe(reason(cut));
    // Other escapes, a newline elsewhere or one that is not the value's last character: JSON.parse reads them.
    expect(record(JSON.stringify({ log: `${DESIGN_LINE}\r\n`, ...host }))).toEqual(DESIGN_RECORD);
    expect(record(JSON.stringify({ log: `${DESIGN_LINE}\n`, host: "a\nb" })).node).toBe("ip-192-168-74-5");
    // (A host with a control character names no node: JSON.parse's path reads it, and takes it as absent.)
    expect(record(JSON.stringify({ msg: MESSAGE, host: "h\n" })).node).toBeNull();
    expect(record(JSON.stringify({ msg: `${MESSAGE}\n`, host: "a\tb" })).node).toBeNull();
    expect(record(`{"msg":${JSON.stringify(`${MESSAGE}\n`)},"host":"a\u002db"}`).node).toBe("a-b");
    expect(record(JSON.stringify({ msg: MESSAGE, time: "1713502339\n" })).time).toBe(
      "2024-04-19T04:52:19.000Z",
    );
    // A newline inside the message ends its line: the text after it is a line of its own.
    expect(record(JSON.stringify({ msg: `${MESSAGE}\n SRC=10.0.0.1` }))).toEqual(record(MESSAGE));
    expect(record(JSON.stringify({ msg: `${MESSAGE}\n`, "x\n": 1, host: "h" })).node).toBe("h");
    expect(record(JSON.stringify({ msg: `${MESSAGE}\n`, x: { y: "\n" }, host: "h" })).node).toBe("h");
    expect(outcomes(JSON.stringify({ log: "calico-packet\n", ...host }))).toEqual(
      outcomes(JSON.stringify({ log: "calico-packet", ...host })),
    );
    // A raw control character in any string is not JSON, wherever it is and whatever the record's escapes.
    for (const raw of ["\t", "\u0000", "\u001f"]) {
      const line = JSON.stringify({ log: `${DESIGN_LINE}\n`, ...host });
      expect(reason(line.replace("kernel:", `kernel:${raw}`))).toMatch(/malformed JSON record/);
      expect(reason(line.replace("eu-west-1", `eu${raw}west-1`))).toMatch(/malformed JSON record/);
      expect(reason(JSON.stringify({ msg: MESSAGE, host: "h" }).replace('"h"', `"h${raw}"`))).toMatch(
        /malformed JSON record/,
      );
    }
    // A message that is itself a record, with its newline.
    const inner = JSON.stringify({ host: "inner-node", message: MESSAGE });
    expect(record(JSON.stringify({ log: `${inner}\n`, host: "outer" })).node).toBe("inner-node");
  });

  it("a record's full time replaces a year-less one; an ISO time in the line wins over the record's", () => {
    const yearless = JSON.stringify({ log: DESIGN_LINE, time: "2023-04-19T04:52:19.5Z" });
    expect(record(yearless).time).toBe("2023-04-19T04:52:19.500Z");
    const iso = JSON.stringify({ log: `2024-04-19T04:52:19.25Z h kernel: ${MESSAGE}`, time: 1 });
    expect(record(iso).time).toBe("2024-04-19T04:52:19.250Z");
  });

  it.each([
    ["epoch seconds", 1713502339.5, "2024-04-19T04:52:19.500Z"],
    ["epoch milliseconds", 1713502339500, "2024-04-19T04:52:19.500Z"],
    ["epoch microseconds as text", "1713502339500000", "2024-04-19T04:52:19.500Z"],
    ["epoch nanoseconds", 1713502339500000000, "2024-04-19T04:52:19.500Z"],
    ["ISO text with an offset", "2024-04-19T05:52:19.5+01:00", "2024-04-19T04:52:19.500Z"],
    ["something else", "yesterday", null],
  ])("record time as %s", (_name, time, expected) => {
    expect(record(JSON.stringify({ msg: MESSAGE, time })).time).toBe(expected);
  });

  it("a record inside a record's message", () => {
    const inner = JSON.stringify({ host: "inner-node", message: MESSAGE });
    expect(record(JSON.stringify({ message: inner, host: "outer" })).node).toBe("inner-node");
  });

  it("skips a record whose prefix is not in its message", () => {
    expect(outcomes(JSON.stringify({ message: "hello", labels: { app: "calico-packet" } }))).toEqual({
      kind: "skip",
    });
    expect(outcomes(JSON.stringify({ message: "hello" }))).toEqual({ kind: "skip" });
  });

  it("reports a truncated or garbled record that carries the prefix", () => {
    expect(reason(`{"MESSAGE":"${MESSAGE}`)).toMatch(/^malformed JSON record/);
    expect(reason(`{"message":"calico-packet: IN=eth0"} trailing`)).toMatch(/^malformed JSON record/);
  });
});

describe("the prefix", () => {
  const fields = MESSAGE.slice("calico-packet: ".length);

  it.each([
    ["followed by ': '", `calico-packet: ${fields}`],
    ["followed by a space", `calico-packet ${fields}`],
    ["directly followed by IN=", `calico-packet${fields}`],
    ["followed by ':'", `calico-packet:${fields}`],
  ])("%s", (_name, message) => {
    expect(record(`Apr 19 04:52:19 ip-192-168-74-5 kernel: ${message}`)).toEqual(DESIGN_RECORD);
  });

  it("is configurable, and a line without it is skipped", () => {
    const line = `Apr 19 04:52:19 n kernel: deny-log: ${fields}`;
    expect(record(line, { prefix: "deny-log" }).prefix).toBe("deny-log");
    expect(outcomes(line)).toEqual({ kind: "skip" });
  });

  it("is the logged text when it runs on before IN=", () => {
    expect(record(`calico-packet-drop: ${fields}`).prefix).toBe("calico-packet-drop");
  });

  it("is found after a host name that contains it", () => {
    const r = record(`Apr 19 04:52:19 calico-packet-node kernel: calico-packet: ${fields}`);
    expect(r).toMatchObject({ node: "calico-packet-node", prefix: "calico-packet" });
    const short = record(`2024-04-19T04:52:19Z cfd-7 cfd gnp deny-all: ${fields}`, {
      prefixFormat: "cfd %k %n",
    });
    expect(short).toMatchObject({ node: "cfd-7", prefix: "cfd gnp deny-all" });
  });

  it.each([
    // aws-cli's ShortLogEventsFormatter: `<%Y-%m-%dT%H:%M:%S> <message>`.
    [
      "`aws logs tail --format short`",
      "2024-04-19T04:52:19",
      "calico-packet %t %k %n",
      "calico-packet default gnp deny-all: ",
    ],
    [
      "`aws logs tail --format short`, a short prefix",
      "2024-04-19T04:52:19",
      "cfd %k %n",
      "cfd gnp deny-all: ",
    ],
    [
      "`dmesg --time-format=iso`",
      "2024-04-19T04:52:19,000000+00:00",
      "calico-packet %t %k %n",
      "calico-packet default gnp deny-all: ",
    ],
    [
      "a year-less stamp",
      "Apr 19 04:52:19",
      "calico-packet %t %k %n",
      "calico-packet default gnp deny-all: ",
    ],
    [
      "a format whose first value ends in ':'",
      "2024-04-19T04:52:19Z",
      "calico-packet %n",
      "calico-packet deny-all: ",
    ],
  ])("is no host name when a timestamp is right before it: %s", (_name, stamp, prefixFormat, prefix) => {
    const r = record(`${stamp} ${prefix}${fields}`, { prefixFormat });
    expect(r).toMatchObject({ time: "2024-04-19T04:52:19.000Z", node: null, prefix: prefix.slice(0, -2) });
    expect(r.policy?.name).toBe("deny-all");
  });

  it("is no host name when a timestamp is right before it, IN= right after it", () => {
    expect(record(`2024-04-19T04:52:19.123Z calico-packet${fields}`)).toMatchObject({
      time: "2024-04-19T04:52:19.123Z",
      node: null,
      prefix: "calico-packet",
      src: "192.168.22.247",
    });
  });

  it.each([
    ["deny %t %n", "deny", "deny default default-deny: ", "default-deny"],
    [
      "calico-packet %t %k %n",
      "calico-packet",
      "calico-packet default gnp calico-packet-deny: ",
      "calico-packet-deny",
    ],
  ])(
    "is no host name when a timestamp is right before it and a policy's name holds it: %s",
    (prefixFormat, prefix, logged, name) => {
      // The mention in the name is not the start of the prefix, though it reads as a plain one (`deny: IN=`).
      for (const stamp of ["2024-04-19T04:52:19", "2024-04-19T04:52:19,000000+00:00"]) {
        const r = record(`${stamp} ${logged}${fields}`, { prefix, prefixFormat });
        expect(r).toMatchObject({ node: null, prefix: logged.slice(0, -2) });
        expect(r.policy?.name).toBe(name);
      }
    },
  );

  it.each([
    ["a name that starts with it", "calico-packet-node"],
    ["a name that is it", "calico-packet"],
  ])(
    "is after the host name when the word after the timestamp is %s and no prefix reads from there",
    (_name, node) => {
      // `aws logs tail --format detailed`: `<ISO> <log stream> <message>`, the stream named after the node.
      const logged = "calico-packet default gnp calico-packet-deny";
      const r = record(`2024-04-19T04:52:19.123000+00:00 ${node} ${logged}: ${fields}`, {
        prefixFormat: "calico-packet %t %k %n",
      });
      expect(r).toMatchObject({ node, prefix: logged });
      expect(r.policy).toEqual({ tier: "default", kind: "gnp", name: "calico-packet-deny", namespace: null });
    },
  );

  it("is no host name when a timestamp is right before it and iptables cut it", () => {
    // 29 characters kept, Felix's ": " and the end of the name gone.
    const r = record(`2024-04-19T04:52:19 calico-packet default gnp den${fields}`, {
      prefixFormat: "calico-packet %t %k %n",
    });
    expect(r).toMatchObject({ node: null, prefix: "calico-packet default gnp den" });
    expect(r.policy).toEqual({ tier: "default", kind: "gnp", name: "den", namespace: null });
  });

  it.each([
    ["an RFC 3164 tag", "Apr 19 04:52:19 cfd-7 kernel: ", "cfd-7"],
    ["RFC 5424's HOSTNAME", "<4>1 2024-04-19T04:52:19Z cfd-7 kernel - - - ", "cfd-7"],
    ["no tag, a message that lacks the format's name", "2024-04-19T04:52:19Z cfd ", "cfd"],
    ["no tag, a message whose kind Felix does not write", "2024-04-19T04:52:19Z cfd kernel ", "cfd"],
  ])("is not in a host name that starts with it, before %s", (_name, header, node) => {
    // Another LOG rule's line (prefix `DROP: `) from a node named like the prefix is no calico-packet line.
    const options = { prefix: "cfd", prefixFormat: "cfd %k %n" };
    expect(outcomes(`${header}DROP: ${fields}`, options)).toEqual({ kind: "skip" });
    expect(record(`${header}cfd gnp deny-all: ${fields}`, options)).toMatchObject({
      node,
      prefix: "cfd gnp deny-all",
    });
  });

  it.each([
    ["an RFC 3164 tag", "Apr 19 04:52:19 ip-1 calico-packet[812]: "],
    ["an RFC 3164 tag without a host", "Apr 19 04:52:19 calico-packet: "],
    ["an RFC 5424 APP-NAME", "<14>1 2024-04-19T04:52:19Z ip-1 calico-packet - - - "],
    ["RFC 5424 PROCID and MSGID", "<14>1 2024-04-19T04:52:19Z ip-1 cp calico-packet calico-packet - "],
    [
      "RFC 5424 structured data",
      '<14>1 2024-04-19T04:52:19Z ip-1 kernel - - [x@1 app="calico-packet" q="\\"] calico-packet"][y a="b"] ',
    ],
  ])("in %s names the program, and is looked for after it", (_name, header) => {
    const options = { prefixFormat: "calico-packet %t %k %n" };
    const r = record(`${header}calico-packet default gnp deny-all: ${fields}`, options);
    expect(r).toMatchObject({
      time: "2024-04-19T04:52:19.000Z",
      prefix: "calico-packet default gnp deny-all",
    });
    expect(r.policy).toEqual({ tier: "default", kind: "gnp", name: "deny-all", namespace: null });
    expect(record(`${header}calico-packet: ${fields}`)).toMatchObject({
      prefix: "calico-packet",
      policy: null,
    });
  });

  it("in an RFC 3164 tag is the prefix when no other follows", () => {
    expect(record(`Apr 19 04:52:19 ip-1 calico-packet: ${fields}`)).toMatchObject({
      node: "ip-1",
      prefix: "calico-packet",
    });
  });

  it.each([
    [
      "calico-packet %t %k %n",
      "calico-packet default gnp deny-all: ",
      { tier: "default", kind: "gnp", name: "deny-all", namespace: null },
      "calico-packet default gnp deny-all",
    ],
    [
      "calico-packet %t %k %p",
      "calico-packet security np tenant-a/deny-egress: ",
      { tier: "security", kind: "np", name: "deny-egress", namespace: "tenant-a" },
      "calico-packet security np tenant-a/deny-egress",
    ],
    [
      "calico-packet:%t:%k:%p",
      "calico-packet:default:gnp:allow-dns: ",
      { tier: "default", kind: "gnp", name: "allow-dns", namespace: null },
      "calico-packet:default:gnp:allow-dns",
    ],
    [
      // iptables keeps 29 characters of a prefix: Felix's ": " and the end of the name are gone.
      "calico-packet %t %k %n",
      "calico-packet default gnp den",
      { tier: "default", kind: "gnp", name: "den", namespace: null },
      "calico-packet default gnp den",
    ],
    [
      "calico-packet %t %k %n",
      "calico-packet default: ",
      { tier: "default", kind: null, name: null, namespace: null },
      "calico-packet default",
    ],
  ])("format %s reads %j", (format, prefix, policy, logged) => {
    const r = record(`Apr 19 04:52:19 n kernel: ${prefix}${fields}`, { prefixFormat: format });
    expect(r.policy).toEqual(policy);
    expect(r.prefix).toBe(logged);
  });

  it.each([
    [
      "a kubectl option",
      "calico-packet default gnp --server=https://x.example",
      "--server=https://x.example",
    ],
    ["a right-to-left override", "calico-packet default gnp deny\u202eall", "deny\u202eall"],
    ["a quote", "calico-packet default gnp deny'all", "deny'all"],
    ["an upper-case name", "calico-packet default gnp Deny-All", "Deny-All"],
  ])("names no policy from a value no Kubernetes name can be: %s", (_name, prefix, logged) => {
    // Felix writes DNS names (lower case, digits, "-", "."): anything else is a forged or foreign line, and would be
    // pasted into the e-mail's commands.
    const r = record(`Apr 19 04:52:19 n kernel: ${prefix}: ${fields}`, {
      prefixFormat: "calico-packet %t %k %n",
    });
    expect(r.policy).toEqual({ tier: "default", kind: "gnp", name: null, namespace: null });
    expect(r.prefix).toBe(`calico-packet default gnp ${logged}`);
    const namespaced = record(`Apr 19 04:52:19 n kernel: calico-packet sec np -x/deny: ${fields}`, {
      prefixFormat: "calico-packet %t %k %p",
    });
    expect(namespaced.policy).toEqual({ tier: "sec", kind: "np", name: "deny", namespace: null });
  });

  it("decodes no policy without a format, or when the prefix carries none", () => {
    expect(record(DESIGN_LINE).policy).toBeNull();
    expect(record(DESIGN_LINE, { prefixFormat: "calico-packet %t %n" }).policy).toBeNull();
  });

  it("rejects options it cannot use", () => {
    expect(() => createParser({ prefixFormat: "%t %n" })).toThrow(/must start with literal text/);
    expect(() => createParser({ prefix: " " })).toThrow(/must not be empty/);
    expect(() => createParser({ year: 20240 })).toThrow(/year must be/);
  });

  it("skips lines that only mention it, and reports a line cut right after it", () => {
    expect(
      outcomes("2024-04-19 04:52:19.123 [INFO][1] config.go 42: LogPrefix calico-packet (from env)"),
    ).toEqual({
      kind: "skip",
    });
    expect(reason("Apr 19 04:52:19 n kernel: calico-packet: ")).toMatch(/ends after the log prefix/);
    expect(reason("Apr 19 04:52:19 n kernel: calico-packet: I")).toMatch(/ends after the log prefix/);
  });
});

describe("link layer", () => {
  const ip =
    "SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1000 DPT=80 WINDOW=1 RES=0x00 SYN URGP=0 ";

  it.each([
    ["no input device (OUTPUT chain): no MAC", `IN= OUT=eth0 ${ip}`, null, "eth0", null],
    ["an empty MAC=", `IN=lo OUT= MAC= ${ip}`, "lo", null, null],
    [
      "MACDECODE's MACSRC/MACDST/MACPROTO, put back in MAC= order",
      `IN=eth0 OUT= MACSRC=0a:3d:c7:6e:53:91 MACDST=0a:a3:01:06:e0:c5 MACPROTO=0800 ${ip}`,
      "eth0",
      null,
      "0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00",
    ],
    [
      "MACDECODE with a VLAN tag",
      `IN=eth0.5 OUT= MACSRC=0a:3d:c7:6e:53:91 MACDST=0a:a3:01:06:e0:c5 VPROTO=8100 VID=5 MACPROTO=0800 ${ip}`,
      "eth0.5",
      null,
      "0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00",
    ],
    [
      "bridge netfilter's PHYSIN/PHYSOUT",
      `IN=br0 OUT=br0 PHYSIN=veth1 PHYSOUT=veth2 MAC=aa:bb:cc:dd:ee:ff:11:22:33:44:55:66:08:00 ${ip}`,
      "br0",
      "br0",
      "aa:bb:cc:dd:ee:ff:11:22:33:44:55:66:08:00",
    ],
  ])("%s", (_name, fields, inInterface, outInterface, mac) => {
    expect(record(`calico-packet: ${fields}`)).toMatchObject({
      inInterface,
      outInterface,
      mac,
      src: "10.0.0.1",
    });
  });
});

describe("IPv4", () => {
  const head = "calico-packet: IN=eth0 OUT=cali1234 MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00";

  it("reads LEN TOS PREC TTL ID and the CE DF MF flags", () => {
    const r = record(
      `${head} SRC=1.2.3.4 DST=5.6.7.8 LEN=1500 TOS=0x10 PREC=0xA0 TTL=1 ID=65535 CE DF MF PROTO=UDP SPT=1 DPT=2 LEN=1480 `,
    );
    expect(r).toMatchObject({ length: 1500, ttl: 1, protocol: "UDP", srcPort: 1, dstPort: 2 });
  });

  it("takes LEN from the IP header, never the UDP one", () => {
    expect(
      record(
        `${head} SRC=1.2.3.4 DST=5.6.7.8 LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=53 DPT=53 LEN=56 `,
      ).length,
    ).toBe(76);
  });

  it("a first fragment (MF) has ports; a later one (FRAG:) has none, and is not an error", () => {
    const first = record(
      `${head} SRC=1.2.3.4 DST=5.6.7.8 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=7 MF PROTO=UDP SPT=5000 DPT=6000 LEN=3000 `,
    );
    expect(first).toMatchObject({ srcPort: 5000, dstPort: 6000 });
    const later = record(
      `${head} SRC=1.2.3.4 DST=5.6.7.8 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=7 FRAG:185 PROTO=UDP `,
    );
    expect(later).toMatchObject({ protocol: "UDP", srcPort: null, dstPort: null, tcpFlags: [] });
    const tcp = record(
      `${head} SRC=1.2.3.4 DST=5.6.7.8 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=7 MF FRAG:3 PROTO=TCP `,
    );
    expect(tcp).toMatchObject({ protocol: "TCP", srcPort: null, tcpFlags: [] });
  });

  it("skips IP options", () => {
    const r = record(
      `${head} SRC=1.2.3.4 DST=5.6.7.8 LEN=64 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF OPT (94040000) PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0 `,
    );
    expect(r).toMatchObject({ srcPort: 1, dstPort: 2, tcpFlags: ["SYN"] });
  });
});

describe("IPv6", () => {
  const v6 = (rest: string) =>
    `calico-packet: IN=eth0 OUT=cali1 MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:86:dd SRC=2600:1f18:04a2:0001:0000:0000:0000:00a1 DST=fe80:0000:0000:0000:0202:b3ff:fe1e:8329 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=654321 ${rest}`;

  it("normalises the kernel's uncompressed addresses to RFC 5952 and reads HOPLIMIT as ttl", () => {
    const r = record(v6("PROTO=TCP SPT=40000 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 "));
    expect(r).toMatchObject({
      ipVersion: 6,
      src: "2600:1f18:4a2:1::a1",
      dst: "fe80::202:b3ff:fe1e:8329",
      length: 80,
      ttl: 63,
      srcPort: 40000,
      dstPort: 443,
      tcpFlags: ["SYN"],
    });
  });

  it.each([
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["0000:0000:0000:0000:0000:0000:0000:0000", "::"],
    ["2001:0db8:0000:0001:0000:0000:0000:0001", "2001:db8:0:1::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["2001:0DB8:AAAA:BBBB:CCCC:DDDD:EEEE:0000", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:0"],
    ["0000:0000:0000:0000:0000:ffff:c000:0201", "::ffff:192.0.2.1"],
  ])("%s is %s", (printed, canonical) => {
    const r = record(
      `calico-packet: IN= OUT=eth0 SRC=${printed} DST=${printed} LEN=40 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=59 `,
    );
    expect([r.src, r.dst, r.protocol]).toEqual([canonical, canonical, "59"]);
  });

  it("fragment headers: the first fragment has ports, later ones do not", () => {
    expect(record(v6("FRAG:0 INCOMPLETE ID:0000abcd PROTO=UDP SPT=1 DPT=2 LEN=1200 "))).toMatchObject({
      srcPort: 1,
    });
    expect(record(v6("FRAG:1232 ID:0000abcd PROTO=UDP "))).toMatchObject({ protocol: "UDP", srcPort: null });
    // With --log-ip-options the fragment header is inside OPT ( ... ).
    expect(record(v6("OPT ( FRAG:1232 INCOMPLETE ID:0000abcd ) PROTO=TCP "))).toMatchObject({
      srcPort: null,
    });
  });

  it("ICMPv6 echo and an error quoting the packet it is about", () => {
    expect(record(v6("PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1 "))).toMatchObject({
      protocol: "ICMPv6",
      icmpType: 128,
      icmpCode: 0,
      srcPort: null,
    });
    const tooBig = record(
      v6(
        "PROTO=ICMPv6 TYPE=2 CODE=0 [SRC=fe80:0000:0000:0000:0202:b3ff:fe1e:8329 DST=2600:1f18:04a2:0001:0000:0000:0000:0099 LEN=1500 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=TCP SPT=443 DPT=40000 WINDOW=1 RES=0x00 ACK URGP=0 ] MTU=1280 ",
      ),
    );
    expect(tooBig).toMatchObject({
      dst: "fe80::202:b3ff:fe1e:8329",
      icmpType: 2,
      srcPort: null,
      dstPort: null,
    });
  });

  it("reports what the kernel could not decode", () => {
    expect(reason(v6("Unknown Ext Hdr 135"))).toMatch(/extension header the kernel does not decode/);
    expect(reason(v6("TRUNCATED"))).toMatch(/could not read an IPv6 extension header/);
    // dump_ipv6_packet prints "FRAG:" before reading the fragment header.
    expect(reason(v6("FRAG:TRUNCATED "))).toMatch(/could not read an IPv6 extension header/);
    expect(reason(v6("OPT ( FRAG:TRUNCATED "))).toMatch(/could not read an IPv6 extension header/);
  });

  it("SCTP, which dump_ipv6_packet prints by number as dump_ipv4_packet does", () => {
    expect(record(v6("PROTO=132 "))).toMatchObject({ protocol: "SCTP", srcPort: null, dstPort: null });
  });

  it("ESP and later AH fragments, which the kernel logs without PROTO=", () => {
    // ESP ends the header walk: "OPT ( ESP SPI=… )" with IP options logged, nothing at all without.
    for (const rest of ["OPT ( ESP SPI=0x1234 )", "", "  "]) {
      expect(record(v6(rest))).toMatchObject({ protocol: "ESP", srcPort: null, dstPort: null, tcpFlags: [] });
    }
    expect(record(v6("OPT ( FRAG:1232 ID:0000abcd ) OPT ( AH )"))).toMatchObject({ protocol: "AH" });
    // The fragment header is printed whether or not IP options are: ESP's first fragment ends after its ID.
    expect(record(v6("FRAG:0 INCOMPLETE ID:0000abcd "))).toMatchObject({ protocol: "ESP", srcPort: null });
    // After a later fragment, a destination options header ends the line too: the protocol is not known.
    expect(reason(v6("FRAG:1232 ID:0000abcd "))).toMatch(/fragment after the first whose next header/);
    // Anything else after the flow label without PROTO= is a line cut short.
    expect(reason(v6("MARK=0x1 "))).toMatch(/no PROTO=/);
    expect(reason(v6("").replace(/FLOWLBL=\d+/, "FLOWLBL="))).toMatch(/no PROTO=/);
  });
});

describe("transport", () => {
  const ip = (proto: string) =>
    `calico-packet: IN=eth0 OUT= MAC= SRC=10.1.2.3 DST=10.4.5.6 LEN=52 TOS=0x00 PREC=0x00 TTL=63 ID=4242 DF ${proto}`;

  it("TCP with SEQ/ACK, every flag in the kernel's order, URGP and OPT", () => {
    const r = record(
      ip(
        "PROTO=TCP SPT=443 DPT=51000 SEQ=4294967295 ACK=1 WINDOW=501 RES=0x00 AE CWR ECE URG ACK PSH RST SYN FIN URGP=7 OPT (0101080A0011223344556677) UID=0 GID=0 MARK=0x4000 ",
      ),
    );
    expect(r).toMatchObject({
      srcPort: 443,
      dstPort: 51000,
      tcpFlags: ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"],
    });
  });

  it("TCP without flags, and TCP whose header was not in the packet", () => {
    expect(record(ip("PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 URGP=0 ")).tcpFlags).toEqual([]);
    expect(record(ip("PROTO=TCP INCOMPLETE [12 bytes] "))).toMatchObject({ srcPort: null, tcpFlags: [] });
    expect(record(ip("PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 ACK URGP=0 OPT (TRUNCATED)")).tcpFlags).toEqual(
      ["ACK"],
    );
  });

  it("UDP and UDPLITE", () => {
    expect(record(ip("PROTO=UDP SPT=53 DPT=40000 LEN=32 "))).toMatchObject({
      protocol: "UDP",
      srcPort: 53,
      dstPort: 40000,
      tcpFlags: [],
    });
    expect(record(ip("PROTO=UDPLITE SPT=5 DPT=6 LEN=8 "))).toMatchObject({
      protocol: "UDPLITE",
      srcPort: 5,
      dstPort: 6,
    });
  });

  it("ICMP echo", () => {
    expect(record(ip("PROTO=ICMP TYPE=8 CODE=0 ID=3088 SEQ=1 "))).toMatchObject({
      protocol: "ICMP",
      icmpType: 8,
      icmpCode: 0,
      srcPort: null,
      dstPort: null,
    });
  });

  it.each([
    [
      "destination unreachable quoting a TCP packet cut to 8 bytes",
      "PROTO=ICMP TYPE=3 CODE=3 [SRC=10.4.5.6 DST=10.1.2.3 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP INCOMPLETE [8 bytes] ] ",
      3,
      3,
    ],
    [
      "fragmentation needed quoting a UDP packet, then MTU=",
      "PROTO=ICMP TYPE=3 CODE=4 [SRC=10.4.5.6 DST=10.1.2.3 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=9999 DPT=8888 LEN=1480 ] MTU=1400 ",
      3,
      4,
    ],
    [
      "redirect with GATEWAY=",
      "PROTO=ICMP TYPE=5 CODE=1 GATEWAY=10.0.0.254 [SRC=10.4.5.6 DST=10.1.2.3 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=7 DPT=9 WINDOW=1 RES=0x00 SYN URGP=0 ] ",
      5,
      1,
    ],
    ["parameter problem", "PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 ", 12, 0],
    [
      "time exceeded, quoted packet the kernel could not read",
      "PROTO=ICMP TYPE=11 CODE=0 [TRUNCATED] ",
      11,
      0,
    ],
    ["a message shorter than its type needs", "PROTO=ICMP TYPE=3 CODE=1 INCOMPLETE [10 bytes] ", 3, 1],
  ])("ICMP error: %s (the quoted packet's addresses and ports stay out)", (_name, proto, type, code) => {
    expect(record(ip(proto))).toMatchObject({
      src: "10.1.2.3",
      dst: "10.4.5.6",
      length: 52,
      ttl: 63,
      protocol: "ICMP",
      srcPort: null,
      dstPort: null,
      tcpFlags: [],
      icmpType: type,
      icmpCode: code,
    });
  });

  it("ICMP without its header", () => {
    expect(record(ip("PROTO=ICMP INCOMPLETE [2 bytes] "))).toMatchObject({ icmpType: null, icmpCode: null });
  });

  it.each([
    // nf_log_syslog names TCP, UDP, UDPLITE, ICMP, AH and ESP; any other protocol is its number, ports unread.
    ["SCTP, which the kernel prints by number", "PROTO=132 ", "SCTP", null],
    ["GRE, a bare protocol number", "PROTO=47 ", "47", null],
    ["ESP", "PROTO=ESP SPI=0xdeadbeef ", "ESP", null],
    ["AH", "PROTO=AH SPI=0x1 ", "AH", null],
  ])("%s", (_name, proto, protocol, port) => {
    expect(record(ip(proto))).toMatchObject({ protocol, srcPort: port, dstPort: port, icmpType: null });
  });

  it("an AH fragment after the first, which the kernel logs without PROTO=", () => {
    expect(record(ip("FRAG:185 MARK=0x4000 ").replace(" DF ", " "))).toMatchObject({
      protocol: "AH",
      srcPort: null,
    });
    // The first fragment (no FRAG:) always has its PROTO=.
    expect(reason(ip("MF MARK=0x4000 "))).toMatch(/no PROTO=/);
  });

  it("ignores UID/GID/MARK trailers", () => {
    expect(record(ip("PROTO=47 UID=1000 GID=1000 MARK=0xffffffff ")).protocol).toBe("47");
  });
});

describe("malformed calico-packet lines get a precise reason", () => {
  const full = MESSAGE;
  const cut = (marker: string) => full.slice(0, full.indexOf(marker));

  it.each([
    [cut("SRC="), /no SRC=/],
    [cut("DST="), /no DST=/],
    [cut("LEN="), /no LEN=/],
    [cut("PROTO="), /no PROTO=/],
    [cut("SPT="), /TCP without SPT=/],
    [cut("DPT="), /TCP without DPT=/],
    [cut("WINDOW="), /TCP fields end before URGP=/],
    [`${cut("SYN")}SY`, /TCP fields end before URGP=/],
    [cut("URGP="), /TCP fields end before URGP=/],
    [full.replace("SYN", "SYNX"), /unexpected "SYNX" among the TCP flags/],
    [full.replace("192.168.22.247", "192.168.22.256"), /SRC= is not an IP address: "192.168.22.256"/],
    [full.replace("192.168.22.247", "192.168.022.247"), /SRC= is not an IP address: "192.168.022.247"/],
    [full.replace("192.168.22.247", "192.168.22"), /SRC= is not an IP address: "192.168.22"/],
    [full.replace("192.168.94.122", "192.168.94.122.1"), /DST= is not an IPv4 address/],
    [full.replace("192.168.94.122", "fe80::1"), /DST= is not an IPv4 address/],
    [full.replace("LEN=60", "LEN=sixty"), /LEN= is not a length/],
    [full.replace("TTL=253", "TTL=256"), /TTL= is not a hop count/],
    [full.replace("SPT=59070", "SPT=65536"), /SPT= is not a port/],
    [full.replace("DPT=8012", "DPT=-1"), /DPT= is not a port/],
    [full.replace("PROTO=TCP", "PROTO="), /empty PROTO=/],
    [`${full}${full}`, /second IN=.*two packet logs/],
    [
      full.replace("PROTO=TCP", "PROTO=UDP").replace(" WINDOW=62727 RES=0x00 SYN URGP=0", ""),
      /UDP fields end before LEN=/,
    ],
    [
      "calico-packet: IN=eth0 OUT= SRC=1.1.1.1 DST=2.2.2.2 LEN=1 TTL=1 PROTO=ICMP CODE=0",
      /ICMP without TYPE=/,
    ],
    [
      "calico-packet: IN=eth0 OUT= SRC=1.1.1.1 DST=2.2.2.2 LEN=1 TTL=1 PROTO=ICMP TYPE=300 CODE=0",
      /TYPE= is not an ICMP type/,
    ],
    ["calico-packet: IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1", /ARP packet/],
    ["calico-packet: IN=eth0 OUT= MAC= TRUNCATED", /could not read the IP header/],
    [`${cut("PROTO=")}TRUNCATED`, /could not read the IP options \(TRUNCATED\)/],
    ["calico-packet: IN=eth0 OUT= PROTO=TCP SRC=1.1.1.1", /PROTO= before SRC=/],
    // Packet fields after the prefix but no IN= (the kernel prints it first): damaged, not a mention.
    ["kernel: calico-packet: OUT=eth0 SRC=1.1.1.1 DST=2.2.2.2 LEN=1 PROTO=47", /no IN= after the log prefix/],
    ["kernel: calico-packet: N=eth0 OUT= SRC=1.1.1.1", /no IN= after the log prefix/],
  ])("%s", (line, expected) => {
    expect(reason(line)).toMatch(expected);
  });

  it("quotes a bad value briefly, however long it is", () => {
    const r = reason(full.replace("192.168.22.247", "9".repeat(100_000)));
    expect(r.length).toBeLessThan(100);
  });
});

describe("totality on hostile input", () => {
  it("skips lines without the prefix, cheaply and whatever they hold", () => {
    for (const line of [
      "",
      "\n",
      "{",
      "{}",
      "\u0000\uffff\ud800",
      "IN=eth0 OUT= SRC=1.2.3.4",
      "x".repeat(1 << 20),
    ]) {
      expect(outcomes(line)).toEqual({ kind: "skip" });
    }
  });

  it("handles megabyte lines built to defeat a scanner", () => {
    const mb = 1 << 20;
    const cases = [
      `calico-packet: ${"[".repeat(mb)}`,
      `${"calico-packet ".repeat(mb / 14)}IN=`,
      `calico-packet: IN=eth0 OUT= ${"IN=".repeat(mb / 3)}`,
      `calico-packet: ${MESSAGE.slice(15)}${"[SRC=1.1.1.1 ".repeat(mb / 13)}`,
      `calico-packet: ${MESSAGE.slice(15)}${"A=1 ".repeat(mb / 4)}`,
      `calico-packet: IN=eth0 OUT= SRC=${"1".repeat(mb)}`,
      `calico-packet: IN=eth0 OUT= SRC=${"1:".repeat(mb / 2)}`,
      `${" ".repeat(mb)}calico-packet: ${MESSAGE.slice(15)}`,
      `{"message":"${"\\u0041".repeat(mb / 6)} calico-packet"}`,
      `Apr 19 04:52:19.${"9".repeat(mb)} n kernel: ${MESSAGE}`,
    ];
    // An ICMP error's quoted packet of a megabyte of "[" closed once: read once, not from every "[" again.
    cases.push(`${DESIGN_LINE.replace(/PROTO=.*/, "PROTO=ICMP TYPE=3 CODE=1 ")}${"[".repeat(mb)}]`);
    for (const line of cases) {
      const outcome = outcomes(line);
      expect(["record", "skip", "error"]).toContain(outcome.kind);
    }
    // A valid packet followed by a megabyte of fields the record does not carry is still that packet.
    expect(record(`${DESIGN_LINE} ${"X=1 ".repeat(mb / 4)}`)).toEqual(DESIGN_RECORD);
  });

  it("answers a non-string with an error instead of throwing", () => {
    expect(parseLine(undefined as unknown as string)).toEqual({
      kind: "error",
      reason: "input is not a string",
    });
  });
});

describe("the NDJSON encoder writes what JSON.stringify writes", () => {
  it("escapes whatever a host name or an interface carries", () => {
    const odd = [
      'q"uote',
      "back\\slash",
      "tab\there",
      "nul\u0000",
      "del\u007f",
      "nœud-é",
      "emoji🙂",
      "lone\ud800",
    ];
    for (const name of odd) {
      const line = DESIGN_LINE.replace("ip-192-168-74-5", name).replace("OUT=eni8d48114818c", `OUT=${name}`);
      const r = record(line);
      // A host with a control character names no node (it is taken as absent); an interface is kept as it is.
      const node = /\p{Cc}/u.test(name) ? null : name;
      expect(r.node).toBe(node);
      expect(r.outInterface).toBe(name);
      // The journald form: the host comes from the JSON record, the line from its MESSAGE.
      const journald = record(
        JSON.stringify({ _HOSTNAME: name, MESSAGE: DESIGN_LINE.slice(DESIGN_LINE.indexOf("calico-packet")) }),
      );
      expect(journald.node).toBe(node);
    }
  });

  it("writes records longer than its buffer and lines longer than the parser's scratch", () => {
    const longName = "x".repeat(300_000);
    const line = DESIGN_LINE.replace("OUT=eni8d48114818c", `OUT=${longName}`);
    expect(record(line).outInterface).toBe(longName);
    const encoder = new NdjsonEncoder({ now: PARSE_NOW });
    const parse = createParser({ now: PARSE_NOW });
    let expected = "";
    for (let i = 0; i < 3_000; i++) {
      const l = i % 100 === 0 ? line : DESIGN_LINE.replace("DPT=8012", `DPT=${i}`);
      expect(encoder.encode(l)).toBe("record");
      expected += `${JSON.stringify((parse(l) as { record: PacketRecord }).record)}\n`;
    }
    expect(Buffer.from(encoder.take()).toString()).toBe(expected);
    expect(encoder.take()).toHaveLength(0);
  });

  it("writes numbers of every width", () => {
    for (const n of [0, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 65_535, 99_999, 100_000, 4_294_967_295]) {
      expect(record(DESIGN_LINE.replace("LEN=60", `LEN=${n}`)).length).toBe(n);
    }
  });
});

describe("hostile input: what a line may carry into flows, alerts and terminals", () => {
  /** What a reason must not hold raw: controls, line separators, bidi overrides and isolates, lone surrogates. */
  const UNSAFE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/u;
  const withProto = (proto: string) => DESIGN_LINE.replace("PROTO=TCP", `PROTO=${proto}`);
  /** The DESIGN.md line's IP header, then PROTO= and nothing after it. */
  const bareProto = (proto: string) =>
    `${DESIGN_LINE.slice(0, DESIGN_LINE.indexOf("PROTO="))}PROTO=${proto} `;

  it("PROTO= is a protocol name or number: 1 to 16 ASCII letters and digits", () => {
    for (const name of ["SCTP", "AH", "ESP", "GRE", "47", "0", "p", "Protocol16Digits"]) {
      expect(record(bareProto(name)).protocol).toBe(name);
    }
    expect(record(withProto("TCP"))).toEqual(DESIGN_RECORD);
  });

  it("any other PROTO= makes the line malformed, with a short reason that quotes it escaped", () => {
    const bad = [
      "Proto17Characters",
      "TCP\u001b[8m",
      "TCP\u009b8m",
      "TCP\u007f",
      "TCP\u202e",
      "TCPé",
      "UDP-LITE",
      "tcp,",
      `X${"9".repeat(90_000)}`,
    ];
    for (const proto of bad) {
      for (const line of [
        withProto(proto),
        bareProto(proto),
        JSON.stringify({ log: withProto(proto), host: "ip-1" }),
      ]) {
        const why = reason(line);
        expect(why).toMatch(
          /^PROTO= is not a protocol name or number \(1 to 16 ASCII letters and digits\): "/,
        );
        expect(why).not.toMatch(UNSAFE);
        expect(why.length).toBeLessThan(200);
      }
    }
    // Escaped in a JSON record: tabs (only a space ends the token), a lone surrogate, a line separator.
    for (const proto of ["TCP\tall\tclear", "TCP\ud800", "TCP\u2028"]) {
      const why = reason(JSON.stringify({ log: `${withProto(proto)}\n`, host: "ip-1" }));
      expect(why).toMatch(/^PROTO= is not a protocol name or number/);
      expect(why).not.toMatch(UNSAFE);
    }
    // A line break ends the line, and the value with it.
    expect(reason(JSON.stringify({ log: `${withProto("TCP\n\nNote: all clear\n")}\n`, host: "ip-1" }))).toBe(
      "TCP without SPT=",
    );
    expect(reason(withProto("TCP\u001b[8m"))).toContain('"TCP\\u001b[8m"');
  });

  it("a host name with a control or bidi character, or longer than 253 characters, is taken as absent", () => {
    const host = (name: string) => DESIGN_LINE.replace("ip-192-168-74-5", name);
    const fields = { ...DESIGN_RECORD, node: null };
    for (const name of [
      "ip-1\u001b]0;all clear\u0007",
      "ip-1\u009b8m",
      "ip-1\u007f",
      "ip\t1",
      "ip-1\u202eon",
      "ip-1\u2066x",
      "x".repeat(254),
    ]) {
      expect(record(host(name))).toEqual(fields);
      const journald = { MESSAGE, _HOSTNAME: name, __REALTIME_TIMESTAMP: "1713502339000000" };
      expect(record(JSON.stringify(journald))).toEqual(fields);
      expect(record(JSON.stringify({ log: MESSAGE, host: name })).node).toBeNull();
    }
    // Names up to the bound, and other text outside ASCII (published well-formed, shown escaped by the tables).
    for (const name of ["x".repeat(253), "nœud-é", "ip-1\u200fx", "lone\ud800"]) {
      expect(record(host(name)).node).toBe(name);
      expect(record(JSON.stringify({ log: MESSAGE, host: name })).node).toBe(name);
    }
    // The line's own host absent, the record's names the node (as for a line without one).
    expect(record(JSON.stringify({ log: host("ip-1\u001b"), host: "ip-outer" })).node).toBe("ip-outer");
    // One parser over lines alternating good and bad hosts (it remembers the last good one).
    const parse = createParser({ now: PARSE_NOW });
    for (const name of ["ip-1", "ip-\u001b", "ip-1", "ip-2", "ip-\u001b", "ip-2"]) {
      const outcome = parse(JSON.stringify({ log: MESSAGE, host: name }));
      expect(outcome.kind === "record" && outcome.record.node).toBe(name.includes("\u001b") ? null : name);
    }
  });

  it("a line time whose windows would leave the years 0000 to 9999 makes the line malformed", () => {
    const at = (time: string) => DESIGN_LINE.replace("Apr 19 04:52:19", time);
    expect(record(at("9999-12-24T23:59:59.999Z")).time).toBe("9999-12-24T23:59:59.999Z");
    expect(record(at("0000-01-08T00:00:00Z")).time).toBe("0000-01-08T00:00:00.000Z");
    for (const time of [
      "9999-12-31T23:59:59.999Z",
      "9999-12-25T00:00:00Z",
      "9999-12-24T23:59:59-00:01",
      "0000-01-07T23:59:59.999Z",
      "0000-01-01T00:00:00+01:00",
    ]) {
      expect(reason(at(time))).toMatch(/is (after 9999-12-24|before 0000-01-08)\S*: the windows around it/);
      expect(reason(JSON.stringify({ log: MESSAGE, time }))).toMatch(/the windows around it/);
    }
    // Epoch numbers too, and year-less timestamps in a year given.
    const nanoseconds = Date.parse("9999-12-31T00:00:00Z") * 1e6;
    expect(reason(JSON.stringify({ log: MESSAGE, time: nanoseconds }))).toMatch(/after 9999-12-24/);
    expect(reason(at("Dec 31 23:59:59"), { year: 9999 })).toMatch(/after 9999-12-24/);
    expect(reason(at("Feb 30 23:59:59"), { year: 9999 })).toMatch(/does not exist/);
    expect(record(at("Dec 24 23:59:59"), { year: 9999 }).time).toBe("9999-12-24T23:59:59.000Z");
    // A parser that refused a time still reads the next line of the same second.
    const parse = createParser({ now: PARSE_NOW });
    expect(parse(at("9999-12-31T23:59:59.999Z")).kind).toBe("error");
    expect(parse(at("9999-12-31T23:59:59.999Z")).kind).toBe("error");
    expect(parse(DESIGN_LINE)).toEqual({ kind: "record", record: DESIGN_RECORD });
  });

  it("reasons quote the input escaped: a malformed JSON record, a timestamp that names no instant", () => {
    const json = `{"log":${JSON.stringify(MESSAGE)}, "x": t\u001b]0;owned\u0007\u001b[2J\u009b\u202e}`;
    expect(reason(json)).toMatch(/^malformed JSON record: /);
    expect(reason(json)).not.toMatch(UNSAFE);
    const stamp = DESIGN_LINE.replace("Apr 19 04:52:19", "2024-04-19T25:00:00\u001b[2J\u202e");
    expect(reason(stamp)).toMatch(/^the timestamp ".*" names no instant$/);
    expect(reason(stamp)).not.toMatch(UNSAFE);
  });
});
