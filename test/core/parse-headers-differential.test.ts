// Differential property test of the line headers (DESIGN.md §3.1 `time` and `node`): header variants are built
// token by token in front of one valid packet body, and the parser's `time` and `node` are compared with a small
// reference written here from the formats' specifications, not from the parser's helpers:
// - RFC 3164 §4.1.2: `Mmm dd hh:mm:ss HOSTNAME TAG:`, the day space-padded ("Apr  9"); the parser also takes
//   "Apr 9" and "Apr 09". No year and no zone: the year is ParseOptions.year, the zone UTC.
// - RFC 3339 §5.6 / RFC 5424 §6.2.3: `YYYY-MM-DD(T|t| )hh:mm:ss[.frac](Z|z|±hh:mm)`; the parser also takes
//   `±hhmm`, `±hh` and no offset (UTC). Seconds 60 (a leap second) is the next second, as POSIX time counts it.
// - RFC 5424 §6: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD`, any of them "-" (NILVALUE).
// - CRI (kubelet's container log format): `<RFC 3339 nano time> stdout|stderr F|P <line>`, whose time is the
//   record's unless the line it wraps carries a full (ISO) timestamp of its own.
// The record keeps milliseconds: digits of a fraction after the third are dropped (truncated, never rounded).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createParser, createReferenceParser } from "../../functions/core/parse.ts";
import type { ParseOutcome } from "../../functions/core/types.ts";

const BODY =
  "calico-packet: IN=eth0 OUT=cali1 MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.1.2 DST=192.168.1.3 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1 DPT=22 WINDOW=1 RES=0x00 SYN URGP=0";

const RUNS = { numRuns: 5000 };

// ---------------------------------------------------------------------------------------------------------------
// The reference: the calendar by counting, and what each header says.

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function isLeap(year: number): boolean {
  return year % 400 === 0 || (year % 4 === 0 && year % 100 !== 0);
}

function monthLength(year: number, month: number): number {
  return [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
}

/** Days before January 1 of `year` since 0001-01-01, by counting the leap years before it. */
function daysBeforeYear(year: number): number {
  const y = year - 1;
  return 365 * y + Math.floor(y / 4) - Math.floor(y / 100) + Math.floor(y / 400);
}

const EPOCH_DAYS = daysBeforeYear(1970);

function epochDay(year: number, month: number, day: number): number {
  let days = daysBeforeYear(year) - EPOCH_DAYS;
  for (let m = 1; m < month; m++) days += monthLength(year, m);
  return days + day - 1;
}

interface Clock {
  hour: number;
  minute: number;
  second: number;
  /** The fraction's digits as written, "" for none. */
  fraction: string;
}

function clockText(c: Clock): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(c.hour)}:${two(c.minute)}:${two(c.second)}${c.fraction === "" ? "" : `.${c.fraction}`}`;
}

function clockValid(c: Clock): boolean {
  return c.hour <= 23 && c.minute <= 59 && c.second <= 60;
}

/** Milliseconds into the day: the fraction truncated to milliseconds, by its digits (no floating point). */
function clockMs(c: Clock): number {
  const millis = Number(c.fraction.slice(0, 3).padEnd(3, "0"));
  return ((c.hour * 60 + c.minute) * 60 + c.second) * 1000 + millis;
}

function isoOf(ms: number): string {
  return new Date(ms).toISOString();
}

/** An RFC 3164 timestamp: month, day (in one of its spellings) and clock. */
interface Rfc3164 {
  kind: "rfc3164";
  month: number;
  day: number;
  dayStyle: "pad" | "one" | "zero";
  clock: Clock;
}

interface Offset {
  /** As written. */
  text: string;
  /** East of UTC in minutes, or null when the text is not an offset the formats allow. */
  minutes: number | null;
}

/** An ISO-8601 / RFC 3339 timestamp. */
interface Iso {
  kind: "iso";
  year: number;
  month: number;
  day: number;
  sep: "T" | "t" | " ";
  clock: Clock;
  offset: Offset;
}

type Stamp = Rfc3164 | Iso;

function stampText(s: Stamp): string {
  if (s.kind === "rfc3164") {
    const day =
      s.dayStyle === "pad"
        ? String(s.day).padStart(2, " ")
        : s.dayStyle === "zero"
          ? String(s.day).padStart(2, "0")
          : String(s.day);
    return `${MONTHS[s.month - 1]} ${day} ${clockText(s.clock)}`;
  }
  const date = `${String(s.year).padStart(4, "0")}-${String(s.month).padStart(2, "0")}-${String(s.day).padStart(2, "0")}`;
  return `${date}${s.sep}${clockText(s.clock)}${s.offset.text}`;
}

/** Whether the stamp is well formed (an RFC 3164 one may still name a day its year lacks). */
function stampValid(s: Stamp): boolean {
  if (!clockValid(s.clock)) return false;
  if (s.kind === "rfc3164") return true;
  return s.offset.minutes !== null && s.day <= monthLength(s.year, s.month);
}

/** The instant of a well-formed stamp, or null for an RFC 3164 date that `year` does not have. */
function stampMs(s: Stamp, year: number): number | null {
  if (s.kind === "rfc3164") {
    if (s.day > monthLength(year, s.month)) return null;
    return epochDay(year, s.month, s.day) * 86_400_000 + clockMs(s.clock);
  }
  return (
    epochDay(s.year, s.month, s.day) * 86_400_000 + clockMs(s.clock) - (s.offset.minutes as number) * 60_000
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Generators, token by token.

const clock: fc.Arbitrary<Clock> = fc.record({
  hour: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 23 }), weight: 12 }, fc.constant(24)),
  minute: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 59 }), weight: 12 }, fc.constant(60)),
  second: fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 59 }), weight: 12 },
    fc.constant(60),
    fc.constant(61),
  ),
  fraction: fc.oneof(
    { arbitrary: fc.constant(""), weight: 3 },
    { arbitrary: fc.stringMatching(/^[0-9]{1,9}$/), weight: 6 },
    // All nines and long: a floating-point sum of the digits would round up into the next second.
    fc.integer({ min: 10, max: 24 }).map((n) => "9".repeat(n)),
    fc.stringMatching(/^[0-9]{10,24}$/),
  ),
});

const rfc3164: fc.Arbitrary<Rfc3164> = fc.record({
  kind: fc.constant("rfc3164" as const),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 31 }), weight: 3 }, fc.integer({ min: 29, max: 31 })),
  dayStyle: fc.constantFrom("pad" as const, "one" as const, "zero" as const),
  // RFC 3164 has whole seconds; the parser also reads a fraction (rsyslog's precise form without a year).
  clock: fc.oneof({ arbitrary: clock.map((c) => ({ ...c, fraction: "" })), weight: 3 }, clock),
});

const twoDigits = (max: number) => fc.integer({ min: 0, max }).map((n) => String(n).padStart(2, "0"));

const offset: fc.Arbitrary<Offset> = fc.oneof(
  fc.constantFrom<Offset>(
    { text: "Z", minutes: 0 },
    { text: "z", minutes: 0 },
    // No offset: taken as UTC.
    { text: "", minutes: 0 },
    // Out of range.
    { text: "+24:00", minutes: null },
    { text: "-05:60", minutes: null },
  ),
  fc
    .tuple(
      fc.constantFrom("+", "-"),
      twoDigits(23),
      twoDigits(59),
      fc.constantFrom("colon", "basic", "hours"),
    )
    .map(([sign, hh, mm, form]): Offset => {
      const east = sign === "+" ? 1 : -1;
      if (form === "hours") return { text: `${sign}${hh}`, minutes: east * Number(hh) * 60 };
      return {
        text: `${sign}${hh}${form === "colon" ? ":" : ""}${mm}`,
        minutes: east * (Number(hh) * 60 + Number(mm)),
      };
    }),
);

const iso: fc.Arbitrary<Iso> = fc.record({
  kind: fc.constant("iso" as const),
  year: fc.oneof(
    { arbitrary: fc.integer({ min: 1970, max: 2100 }), weight: 6 },
    fc.constantFrom(1900, 2000, 2023, 2024, 2400),
    fc.integer({ min: 1, max: 9998 }),
  ),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 28 }), weight: 4 }, fc.integer({ min: 29, max: 31 })),
  sep: fc.constantFrom("T" as const, "t" as const, " " as const),
  clock,
  offset,
});

const hostName = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
  fc.stringMatching(/^ip-[0-9]{1,3}-[0-9]{1,3}\.[a-z]{2,8}\.compute\.internal$/),
  fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
    )
    .map((q) => q.join(".")),
  fc.constantFrom("2001:db8::1", "fe80::a:b", "::1", "2001:db8:0:0:0:0:0:7"),
);

/** The kernel's own [seconds.micros] stamp before the prefix, as printk pads it or not. */
const kernelTime = fc.oneof(
  fc.constant(""),
  fc.integer({ min: 0, max: 99_999_999 }).map((us) => `[${(us / 1e6).toFixed(6)}] `),
  fc.integer({ min: 0, max: 99_999_999 }).map((us) => `[${(us / 1e6).toFixed(6).padStart(12, " ")}] `),
);

/** Where a header's host name stands: a name, RFC 5424's "-", or none (the line was written locally). */
const hostSlot = fc.oneof(
  { arbitrary: hostName.map((name) => ({ text: name, node: name as string | null })), weight: 6 },
  fc.constant({ text: "-", node: null }),
  fc.constant({ text: "", node: null }),
);

interface Header {
  /** The header's text, up to the packet body. */
  text: string;
  stamp: Stamp | null;
  node: string | null;
  /** True when the host was separated by more than one space or a tab: the parser may then take no host. */
  loose: boolean;
}

const pri = fc.oneof(
  fc.constant(""),
  fc.integer({ min: 0, max: 191 }).map((n) => `<${n}>`),
);

/** RFC 3164: `[<PRI>]Mmm dd hh:mm:ss [HOST ][TAG: ][kernel time]`. */
const rfc3164Header: fc.Arbitrary<Header> = fc
  .tuple(
    pri,
    rfc3164,
    hostSlot.filter((h) => h.text !== "-"),
    fc.constantFrom("kernel: ", "kernel[0]: ", "kernel[123]: ", ""),
    kernelTime,
    fc.constantFrom(" ", " ", " ", " ", "  ", "\t"),
  )
  .map(([p, stamp, host, tag, kt, sep]) => {
    const loose = sep !== " " && host.text !== "";
    const text = `${p}${stampText(stamp)}${host.text === "" ? " " : `${sep}${host.text} `}${tag}${kt}`;
    return { text, stamp, node: host.node, loose };
  });

/** rsyslog's precise form: `ISO HOST TAG: `. */
const isoHeader: fc.Arbitrary<Header> = fc
  .tuple(
    pri,
    iso,
    hostSlot.filter((h) => h.text !== "-"),
    fc.constantFrom("kernel: ", "kernel[7]: ", ""),
    kernelTime,
    fc.constantFrom(" ", " ", " ", "  ", "\t"),
  )
  .map(([p, stamp, host, tag, kt, sep]) => {
    const loose = sep !== " " && host.text !== "";
    const text = `${p}${stampText(stamp)}${host.text === "" ? " " : `${sep}${host.text} `}${tag}${kt}`;
    return { text, stamp, node: host.node, loose };
  });

const sdParam = fc.constantFrom('k="v"', 'tzKnown="1"', 'a="x y"', 'q="\\"]"');

/** RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD `, each field maybe "-". */
const rfc5424Header: fc.Arbitrary<Header> = fc
  .tuple(
    fc.integer({ min: 0, max: 191 }),
    fc.option(iso, { nil: null, freq: 6 }),
    hostSlot.filter((h) => h.text !== ""),
    fc.constantFrom("kernel", "-"),
    fc.constantFrom("-", "1234"),
    fc.constantFrom("-", "ID47"),
    fc.oneof(
      fc.constant("-"),
      fc
        .array(fc.tuple(fc.constantFrom("id", "timeQuality", "origin@32473"), sdParam), {
          minLength: 1,
          maxLength: 2,
        })
        .map((sd) => sd.map(([id, param]) => `[${id} ${param}]`).join("")),
    ),
    kernelTime,
  )
  .map(([p, stamp, host, app, procid, msgid, sd, kt]) => ({
    text: `<${p}>1 ${stamp === null ? "-" : stampText(stamp)} ${host.text} ${app} ${procid} ${msgid} ${sd} ${kt}`,
    stamp,
    node: host.node,
    loose: false,
  }));

const bareHeader: fc.Arbitrary<Header> = kernelTime.map((kt) => ({
  text: kt,
  stamp: null,
  node: null,
  loose: false,
}));

/** The CRI header: an RFC 3339 time with nanoseconds (or any offset), the stream and the partial flag. */
const criHeader = fc.option(
  fc
    .tuple(
      iso.map((s): Iso => ({ ...s, sep: "T" })),
      fc.constantFrom("stdout", "stderr"),
      fc.constantFrom("F", "P"),
    )
    .map(([stamp, stream, flag]) => ({ stamp, text: `${stampText(stamp)} ${stream} ${flag} ` })),
  { nil: null, freq: 3 },
);

const headerLine = fc.record({
  cri: criHeader,
  header: fc.oneof(rfc3164Header, isoHeader, rfc5424Header, bareHeader),
  ending: fc.constantFrom("", "", "", "\n", "\r\n"),
  year: fc.oneof(
    { arbitrary: fc.integer({ min: 1970, max: 2100 }), weight: 4 },
    fc.constantFrom(1900, 2000, 2023, 2024, 2100, 2400),
  ),
});

type HeaderLine = typeof headerLine extends fc.Arbitrary<infer T> ? T : never;

function lineOf(l: HeaderLine): string {
  return `${l.cri === null ? "" : l.cri.text}${l.header.text}${BODY}${l.ending}`;
}

interface Expected {
  /**
   * An error outcome: a year-less date that does not exist in the year, or an ISO timestamp that names no instant
   * (30 February, hour 24, offset +24:00) with no time from outside the line to stand for it.
   */
  error: boolean;
  time: string | null;
  /** The node, or undefined when either the host or null is right (a loosely spaced header). */
  node: string | null | undefined;
}

/** What the formats say the record's time and node are. */
function expected(l: HeaderLine): Expected {
  // A CRI header's timestamp is ISO: one that names no instant is an error (nothing after it is read as a header).
  if (l.cri !== null && !stampValid(l.cri.stamp)) return { error: true, time: null, node: null };
  const outer = l.cri === null ? null : (stampMs(l.cri.stamp, l.year) as number);
  const h = l.header;
  // A malformed timestamp leaves the header unread: neither a time nor a host from it. An ISO one is an error
  // unless the CRI header's time stands for it.
  if (h.stamp !== null && !stampValid(h.stamp)) {
    if (h.stamp.kind === "iso" && outer === null) return { error: true, time: null, node: null };
    return { error: false, time: outer === null ? null : isoOf(outer), node: null };
  }
  const node = h.loose ? undefined : h.node;
  if (h.stamp === null) return { error: false, time: outer === null ? null : isoOf(outer), node };
  const ms = stampMs(h.stamp, l.year);
  // A full timestamp in the wrapped line wins over the runtime's; a year-less one does not.
  if (h.stamp.kind === "iso") return { error: false, time: isoOf(ms as number), node };
  if (outer !== null) return { error: false, time: isoOf(outer), node };
  if (ms === null) return { error: true, time: null, node };
  return { error: false, time: isoOf(ms), node };
}

function check(outcome: ParseOutcome, want: Expected, node: string | null): void {
  if (want.error) {
    expect(outcome.kind).toBe("error");
    if (outcome.kind === "error") expect(outcome.reason).toMatch(/does not exist in|names no instant/);
    return;
  }
  expect(outcome.kind).toBe("record");
  if (outcome.kind !== "record") return;
  expect(outcome.record.time).toBe(want.time);
  if (want.node !== undefined) expect(outcome.record.node).toBe(want.node);
  // Loosely spaced: the host or nothing, never another token.
  else expect([node, null]).toContain(outcome.record.node);
  expect(outcome.record.src).toBe("192.168.1.2");
  expect(outcome.record.dstPort).toBe(22);
}

describe("headers: time and node against a reference from the formats' specifications", () => {
  it("one line at a time, fast path and reference scanner alike", () => {
    fc.assert(
      fc.property(headerLine, (l) => {
        const line = lineOf(l);
        const want = expected(l);
        const outcome = createParser({ year: l.year })(line);
        check(outcome, want, l.header.node);
        expect(createReferenceParser({ year: l.year })(line)).toEqual(outcome);
      }),
      RUNS,
    );
  });

  it("many lines through one parser (whatever it remembers between lines)", () => {
    fc.assert(
      fc.property(
        fc.array(headerLine, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1970, max: 2100 }),
        (lines, year) => {
          const parse = createParser({ year });
          for (const l of lines)
            check(parse(lineOf({ ...l, year })), expected({ ...l, year }), l.header.node);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("month ends and leap seconds, many lines through one parser", () => {
    // 23:59:60 on one day and 00:00:00 on the next are one instant when both days exist, and not otherwise.
    const monthEnd: fc.Arbitrary<Rfc3164> = fc
      .tuple(
        fc.constantFrom(2, 4, 12),
        fc.integer({ min: 28, max: 30 }),
        fc.boolean(),
        fc.constantFrom("", "5"),
      )
      .map(([month, day, leap, fraction]) => ({
        kind: "rfc3164",
        month,
        day: leap ? day : day + 1,
        dayStyle: "pad",
        clock: leap
          ? { hour: 23, minute: 59, second: 60, fraction }
          : { hour: 0, minute: 0, second: 0, fraction },
      }));
    fc.assert(
      fc.property(
        fc.array(monthEnd, { minLength: 2, maxLength: 12 }),
        fc.constantFrom(2023, 2024, 1900, 2000),
        (stamps, year) => {
          const parse = createParser({ year });
          for (const stamp of stamps) {
            const l: HeaderLine = {
              cri: null,
              header: { text: `${stampText(stamp)} node kernel: `, stamp, node: "node", loose: false },
              ending: "",
              year,
            };
            check(parse(lineOf(l)), expected(l), "node");
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("covers what it means to", () => {
    // The generators reach each kind of case often enough for 3000 runs to matter.
    const sample = fc.sample(headerLine, { numRuns: 3000, seed: 1 });
    const count = (f: (l: HeaderLine) => boolean) => sample.filter(f).length;
    const stampOf = (l: HeaderLine) => l.header.stamp;
    expect(count((l) => expected(l).error)).toBeGreaterThan(15);
    expect(count((l) => stampOf(l)?.kind === "rfc3164" && stampValid(stampOf(l) as Stamp))).toBeGreaterThan(
      300,
    );
    expect(count((l) => stampOf(l)?.kind === "iso" && stampValid(stampOf(l) as Stamp))).toBeGreaterThan(300);
    expect(count((l) => (stampOf(l)?.clock.second ?? 0) === 60)).toBeGreaterThan(30);
    expect(count((l) => (stampOf(l)?.clock.fraction.length ?? 0) > 9)).toBeGreaterThan(50);
    expect(count((l) => l.cri !== null && l.header.stamp?.kind === "rfc3164")).toBeGreaterThan(100);
    expect(count((l) => l.header.text.includes("[ "))).toBeGreaterThan(100);
  });
});

describe("headers: cases the property found", () => {
  const parse = (line: string, year = 2024) => createParser({ year })(line);
  const record = (line: string, year = 2024) => {
    const outcome = parse(line, year);
    if (outcome.kind !== "record") throw new Error(`expected a record, got ${JSON.stringify(outcome)}`);
    return outcome.record;
  };

  it("the kernel's [seconds.micros] stamp right after the timestamp is not a host name", () => {
    expect(record(`Apr 19 04:52:19 [12345.678901] ${BODY}`).node).toBeNull();
    expect(record(`<4>Apr 19 04:52:19 [    3.000000] ${BODY}`).node).toBeNull();
    expect(record(`2024-04-19T04:52:19Z [    3.000000] ${BODY}`).node).toBeNull();
    expect(record(`2024-04-19T04:52:20.5Z stdout F Apr 19 04:52:19 [ 8.5] ${BODY}`).node).toBeNull();
  });

  it("a fraction's digits after the millisecond are dropped however many there are", () => {
    expect(record(`2024-12-31T23:59:59.99999999999999999Z node kernel: ${BODY}`).time).toBe(
      "2024-12-31T23:59:59.999Z",
    );
    expect(record(`Dec 31 23:59:59.1239999999999999999 node kernel: ${BODY}`).time).toBe(
      "2024-12-31T23:59:59.123Z",
    );
  });

  it("RFC 5424's nil timestamp: no time, but the host name", () => {
    const r = record(`<4>1 - ip-10-0-0-1.ec2.internal kernel - - - ${BODY}`);
    expect(r).toMatchObject({ time: null, node: "ip-10-0-0-1.ec2.internal" });
    expect(record(`<4>1 - - kernel - - [id k="v"] ${BODY}`)).toMatchObject({ time: null, node: null });
  });

  it("a leap second on a month's last day does not stand for the next day's midnight on the next line", () => {
    const p = createParser({ year: 2023 });
    const first = p(`Apr 30 23:59:60 node kernel: ${BODY}`);
    expect(first.kind === "record" && first.record.time).toBe("2023-05-01T00:00:00.000Z");
    // April 31 does not exist, whatever the line before was.
    expect(p(`Apr 31 00:00:00 node kernel: ${BODY}`)).toMatchObject({ kind: "error" });
    const q = createParser({ year: 2023 });
    expect(q(`Feb 29 00:00:00 node kernel: ${BODY}`)).toMatchObject({ kind: "error" });
    const second = q(`Feb 28 23:59:60 node kernel: ${BODY}`);
    expect(second.kind === "record" && second.record.time).toBe("2023-03-01T00:00:00.000Z");
    // With the year inferred, the cached leap second put Feb 29 in the wrong year.
    const r = createParser({ now: Date.UTC(2025, 2, 15) });
    r(`Feb 28 23:59:60 node kernel: ${BODY}`);
    const third = r(`Feb 29 00:00:00 node kernel: ${BODY}`);
    expect(third.kind === "record" && third.record.time).toBe("2024-02-29T00:00:00.000Z");
  });
});
