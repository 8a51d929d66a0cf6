// Differential property test of the JSON record path. Lines are built token by token as any writer could write
// them, or break them: keys in any order, repeated, or spelled with escapes; any spacing; values of every type;
// several message, host and time fields at once; records inside messages; journald's byte arrays; BOMs, trailing
// text, truncation, text outside ASCII. For each line, every fast path must give what the JSON.parse path gives:
// the flat reader behind createParser, the NDJSON encoder (line by line, in place in a chunk, through
// parseStream) and the scanner fields the ingest pipeline reads. And the raw search that skips a JSON line before
// it is parsed must not skip one that parseJson answers otherwise, unless the prefix is hidden behind escapes no
// JSON writer uses ("\u0063alico").
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseStream } from "../../cli/commands/parse.ts";
import { formatIpv6Groups, readDottedQuad } from "../../functions/core/ipv6.ts";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import {
  createReferenceParser,
  createScanner,
  decodePolicy,
  flagNames,
  LineParser,
  type ParseOptions,
} from "../../functions/core/parse.ts";
import type { PacketRecord, ParseOutcome } from "../../functions/core/types.ts";
import { chunksAt, expectEncoded, expectEncodedInPlace } from "../support/ndjson.ts";

/** Mid-2024, so that year-less timestamps of April 2024 are in the past. */
const NOW = Date.UTC(2024, 5, 1);

interface Config {
  options: ParseOptions;
  /** The prefix the wrapped lines carry. */
  prefix: string;
}

const CONFIGS: Config[] = [
  { options: { now: NOW }, prefix: "calico-packet" },
  { options: { year: 2023 }, prefix: "calico-packet" },
  { options: { now: NOW, prefixFormat: "calico-packet %t %k %n" }, prefix: "calico-packet" },
  // Not JSON-safe (a writer may escape "/" and what is not ASCII): JSON lines cannot be skipped by a raw search,
  // and the flat reader takes no escape at all.
  { options: { now: NOW, prefix: "calico/drop-é" }, prefix: "calico/drop-é" },
  // Go's encoding/json writes "&" as \u0026 (and "<", ">"); .NET's default encoder "+" and "'" too.
  { options: { now: NOW, prefix: "calico&drop" }, prefix: "calico&drop" },
];

// ---------------------------------------------------------------------------------------------------------------
// The wrapped lines

const PACKETS = [
  "IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 ACK SYN URGP=0 ",
  "IN=eni1 OUT=eth0 MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=2600:1f18:04a2:0001:0000:0000:0000:00a1 DST=2600:1f18:04a2:0002:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=1 PROTO=UDP SPT=53 DPT=5353 LEN=40 ",
  "IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=7 DF PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1 ",
  "IN=eth0 OUT=eni2 SRC=10.0.0.1 DST=10.0.0.2 LEN=576 TOS=0x00 PREC=0xC0 TTL=64 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.0.0.2 DST=10.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=2 DF PROTO=UDP SPT=1 DPT=2 LEN=40 ] ",
  "IN=eth0 OUT=eni3 MACSRC=0a:3d:c7:6e:53:91 MACDST=0a:a3:01:06:e0:c5 MACPROTO=0800 SRC=10.1.2.3 DST=10.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=9 FRAG:100 PROTO=TCP ",
  "IN=eth€ OUT=eni1 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=UDPLITE SPT=1 DPT=2 LEN=40 ",
  "IN=eth0 OUT=eni1 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN",
  "IN=eth0 OUT=eni1 SRC=10.0.0.300 DST=10.0.0.2 LEN=60 ",
  // Interface names the NDJSON encoder must escape.
  'IN=e"th0 OUT=en\\i1 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=40 ',
];

const HEADERS = [
  "Apr 19 04:52:19 ip-192-168-74-5 kernel: ",
  "Apr  9 04:52:19.250 ip-1 kernel: [86400.123456] ",
  "Feb 29 04:52:19 h kernel: ",
  "<4>1 2024-04-19T04:52:19.123456+02:00 nœud-é kernel - - - ",
  "2024-04-19T04:52:19.5Z stdout F Apr 19 04:52:19 ip-2 kernel: ",
  "2024-04-19T04:52:19Z - kernel: ",
  " \t",
];

const SEPARATORS: ((prefix: string) => string)[] = [
  (p) => `${p}: `,
  (p) => `${p}: `,
  (p) => `${p} default gnp allow-dns: `,
  (p) => `${p}`,
  (p) => `${p}: ${p}: `,
];

/** A kernel line carrying the prefix, with any header, maybe cut short, maybe with its line ending. */
function kernelLine(prefix: string): fc.Arbitrary<string> {
  return fc
    .record({
      // Most often the kernel's message alone, whose node and time come from the record.
      header: fc.oneof(
        { arbitrary: fc.constant(""), weight: 6 },
        { arbitrary: fc.constantFrom(...HEADERS), weight: 4 },
      ),
      separator: fc.constantFrom(...SEPARATORS),
      packet: fc.constantFrom(...PACKETS),
      cut: fc.oneof({ arbitrary: fc.constant(undefined), weight: 8 }, { arbitrary: fc.nat(), weight: 1 }),
      ending: fc.oneof(
        { arbitrary: fc.constant(""), weight: 8 },
        // Fluent Bit's tail: the line with its newline, the one escape the flat reader takes.
        { arbitrary: fc.constant("\n"), weight: 3 },
        // A newline inside the message, the only escape in the record, is not its end.
        {
          arbitrary: fc.constantFrom("\r\n", " ", "\n\n", "\n SRC=10.0.0.1", "\nApr 19 04:52:20 h kernel: x"),
          weight: 2,
        },
      ),
    })
    .map(({ header, separator, packet, cut, ending }) => {
      const line = `${header}${separator(prefix)}${packet}`;
      return `${cut === undefined ? line : line.slice(0, cut % (line.length + 1))}${ending}`;
    });
}

function otherLine(prefix: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(
      "Apr 19 04:52:20 ip-192-168-74-5 systemd[1]: Started Session 42 of user ec2-user.",
      "",
      "ünïcode 🙂 noise",
      `felix: ${prefix} rule loaded`,
      `${prefix}`,
      `{${prefix}}`,
    ),
    fc.string({ maxLength: 12 }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// JSON text, as tokens: JSON text; numbers where whitespace may go (how much, and which, is up to the line's
// spacing style); and strings to be spelt (as JSON.stringify does, unless the line lets other spellings in).

interface Spelt {
  text: string;
  how: Spelling;
  at: number[];
}

type Tok = string | number | Spelt;

const ws = fc.nat({ max: 20 });

/** Spacing styles: compact (JSON.stringify, Fluent Bit), a space here and there, journalctl's `{ "k" : v }`, any. */
const STYLES: ((n: number) => string)[] = [
  () => "",
  () => "",
  (n) => (n % 3 === 0 ? " " : ""),
  () => " ",
  (n) => ["", " ", "  ", "\t", "\n", "\r\n", "\r", ""][n % 8] as string,
];

/** The text of `tokens`: spaced in `style`; strings spelt as generated, or (`plain`) as JSON.stringify does. */
function render(tokens: readonly Tok[], style: number, plain: boolean): string {
  const space = STYLES[style % STYLES.length] as (n: number) => string;
  let out = "";
  for (const t of tokens) {
    if (typeof t === "number") out += space(t);
    else if (typeof t === "string") out += t;
    else out += spell(t.text, plain ? "plain" : t.how, t.at);
  }
  return out;
}

function hex4(code: number, upper: boolean): string {
  const h = code.toString(16).padStart(4, "0");
  return `\\u${upper ? h.toUpperCase() : h}`;
}

/**
 * How a writer spells a string: as JSON.stringify does, or with escapes it could have used as well: any, "/" as
 * "\/" (PHP), what is not ASCII as \uXXXX (Python), or HTML's characters as \uXXXX (Go, .NET).
 */
type Spelling = "plain" | "escaped" | "slashes" | "ascii" | "html";

const spelling = fc.oneof(
  { arbitrary: fc.constant<Spelling>("plain"), weight: 20 },
  { arbitrary: fc.constantFrom<Spelling>("escaped", "slashes", "ascii", "html"), weight: 4 },
);

/** The JSON string of `s` as spelt; `at` picks the characters that `escaped` writes as \uXXXX. */
function spell(s: string, how: Spelling, at: readonly number[]): string {
  const plain = JSON.stringify(s);
  switch (how) {
    case "plain":
      return plain;
    case "slashes":
      return plain.replaceAll("/", "\\/");
    case "ascii":
      return plain.replace(/[\u0080-\uffff]/g, (c) => hex4(c.charCodeAt(0), false));
    case "html":
      return plain.replace(/[<>&'+`\u2028\u2029]/g, (c) => hex4(c.charCodeAt(0), false));
    case "escaped": {
      const chosen = new Set(at.map((k) => k % Math.max(1, s.length)));
      let out = '"';
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (chosen.has(i)) out += hex4(c, i % 2 === 0);
        else if (c < 32 || c === 34 || c === 92) out += JSON.stringify(s[i]).slice(1, -1);
        else out += s[i];
      }
      return `${out}"`;
    }
  }
}

function stringOf(content: fc.Arbitrary<string>): fc.Arbitrary<Tok[]> {
  return fc
    .tuple(content, spelling, fc.array(fc.nat(), { minLength: 1, maxLength: 3 }))
    .map(([text, how, at]) => [{ text, how, at }]);
}

function keyOf(names: readonly string[]): fc.Arbitrary<Tok[]> {
  return stringOf(fc.constantFrom(...names));
}

const MESSAGE_KEYS = ["MESSAGE", "message", "log", "msg", "body"];
const HOST_KEYS = ["_HOSTNAME", "HOSTNAME", "_hostname", "host", "hostname", "kubernetes.host"];
const TIME_KEYS = [
  "_SOURCE_REALTIME_TIMESTAMP",
  "__REALTIME_TIMESTAMP",
  "time",
  "timestamp",
  "@timestamp",
  "date",
];
const OTHER_KEYS = [
  "PRIORITY",
  "_TRANSPORT",
  "x",
  "",
  "Message",
  "messagé",
  "MESSAGE\n",
  "host\u0000",
  "kubernetes",
  "__proto__",
  "constructor",
  "hosts",
  "times",
];
const ALL_KEYS = [...MESSAGE_KEYS, ...HOST_KEYS, ...TIME_KEYS, ...OTHER_KEYS];

const JSON_NUMBERS = [
  "0",
  "-0",
  "1",
  "-1",
  "12",
  "0.5",
  "-2.5e3",
  "1E400",
  "-1e-400",
  "1e+2",
  "2E-2",
  "123456789012345678901234567890",
  "1713502339",
  "1713502339.5",
  "1713502339123",
  "1713502339123456",
  "1713502339123456789",
  "1.713502339e9",
  "1.7135023391234e12",
  "17135023391234567e2",
  "0.000001713502339e15",
];
/** Not JSON numbers: the record is malformed. */
const BAD_NUMBERS = [
  "01",
  "1.",
  ".5",
  "+1",
  "-",
  "1e",
  "--1",
  "0x1F",
  "NaN",
  "Infinity",
  "1.e2",
  "-.5",
  "1_000",
];

const number: fc.Arbitrary<Tok[]> = fc
  .oneof(
    { arbitrary: fc.constantFrom(...JSON_NUMBERS), weight: 8 },
    { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map(String), weight: 4 },
    { arbitrary: fc.integer().map(String), weight: 2 },
    {
      arbitrary: fc
        .tuple(
          fc.boolean(),
          fc.nat(),
          fc.option(fc.nat(), { nil: undefined }),
          fc.constantFrom("e", "E"),
          fc.constantFrom("", "+", "-"),
          fc.nat(400),
        )
        .map(
          ([neg, int, frac, e, sign, exp]) =>
            `${neg ? "-" : ""}${int}${frac === undefined ? "" : `.${frac}`}${e}${sign}${exp}`,
        ),
      weight: 2,
    },
    { arbitrary: fc.constantFrom(...BAD_NUMBERS), weight: 1 },
  )
  .map((n) => [n]);

const literal: fc.Arbitrary<Tok[]> = fc
  .oneof(
    { arbitrary: fc.constantFrom("true", "false", "null"), weight: 12 },
    { arbitrary: fc.constantFrom("nul", "tru", "nullx", "True", "fals", "truee"), weight: 2 },
  )
  .map((l) => [l]);

const shortText = fc.oneof(
  { arbitrary: fc.constantFrom("x", "", "a b", "ünï", "calico", "calico-packet"), weight: 4 },
  { arbitrary: fc.constantFrom("\n", 'q"q'), weight: 1 },
  { arbitrary: fc.string({ maxLength: 6 }), weight: 1 },
);

function member(key: fc.Arbitrary<Tok[]>, value: fc.Arbitrary<Tok[]>): fc.Arbitrary<Tok[]> {
  return fc
    .tuple(ws, key, ws, ws, value, ws)
    .map(([a, k, b, c, v, d]): Tok[] => [a, ...k, b, ":", c, ...v, d]);
}

function objectOf(members: fc.Arbitrary<Tok[]>, maxLength: number): fc.Arbitrary<Tok[]> {
  return objectFrom(fc.array(members, { maxLength }));
}

function objectFrom(members: fc.Arbitrary<Tok[][]>): fc.Arbitrary<Tok[]> {
  return fc.tuple(members, ws).map(([ms, w]): Tok[] => {
    if (ms.length === 0) return ["{", w, "}"];
    const out: Tok[] = ["{"];
    ms.forEach((m, i) => {
      if (i > 0) out.push(",");
      out.push(...m);
    });
    out.push("}");
    return out;
  });
}

function arrayOf(items: fc.Arbitrary<Tok[]>, maxLength: number): fc.Arbitrary<Tok[]> {
  return fc.tuple(fc.array(fc.tuple(ws, items, ws), { maxLength }), ws).map(([xs, w]): Tok[] => {
    if (xs.length === 0) return ["[", w, "]"];
    const out: Tok[] = ["["];
    xs.forEach(([a, x, b], i) => {
      if (i > 0) out.push(",");
      out.push(a, ...x, b);
    });
    out.push("]");
    return out;
  });
}

/** Any JSON value (and a few that are not quite JSON), nested a few levels. */
const anyValue: fc.Arbitrary<Tok[]> = fc.letrec<{ value: Tok[] }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    stringOf(shortText),
    number,
    literal,
    arrayOf(tie("value"), 3),
    objectOf(member(keyOf(ALL_KEYS), tie("value")), 3),
  ),
})).value;

/** journald's array of a message's bytes, maybe with a byte that is not UTF-8, or values that are not bytes. */
function byteArray(content: fc.Arbitrary<string>): fc.Arbitrary<Tok[]> {
  return fc
    .tuple(
      content,
      fc.option(fc.tuple(fc.nat(), fc.constantFrom("255", "195", "256", "-1", "1.5", '"a"', "1e2", "null")), {
        nil: undefined,
      }),
      ws,
      ws,
      ws,
    )
    .map(([text, odd, a, b, c]): Tok[] => {
      const items = [...Buffer.from(text)].map(String);
      if (odd !== undefined) items.splice(odd[0] % (items.length + 1), 0, odd[1]);
      if (items.length === 0) return ["[", a, "]"];
      const out: Tok[] = ["[", a];
      items.forEach((x, i) => {
        if (i > 0) out.push(",", c);
        out.push(x);
      });
      out.push(b, "]");
      return out;
    });
}

const hostName = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      "ip-192-168-74-5",
      "ip-10-0-0-1.eu-west-1.compute.internal",
      "",
      "nœud-é",
      "🙂",
    ),
    weight: 6,
  },
  {
    arbitrary: fc.constantFrom(
      "h\n",
      "\n",
      "a\nb",
      "a\tb",
      'q"q',
      "b\\s",
      "\ud800x",
      " ",
      "\u007f",
      "calico-packet",
    ),
    weight: 2,
  },
);
const hostValue = fc.oneof(
  { arbitrary: stringOf(hostName), weight: 6 },
  { arbitrary: number, weight: 1 },
  { arbitrary: literal, weight: 1 },
  { arbitrary: anyValue, weight: 1 },
);

/** Fluent Bit's kubernetes filter: an object with the node in `host`, among other members, or something else. */
const kubernetesValue = fc.oneof(
  {
    arbitrary: objectOf(
      fc.oneof(
        member(keyOf(["host"]), hostValue),
        member(keyOf(["host"]), stringOf(hostName)),
        member(keyOf(["pod_name", "namespace_name", "hosts", "Host"]), stringOf(shortText)),
        member(keyOf(["labels", "pod"]), objectOf(member(keyOf(["host", "app"]), hostValue), 2)),
      ),
      4,
    ),
    weight: 6,
  },
  // The last `host` counts, whatever its type.
  {
    arbitrary: fc
      .tuple(member(keyOf(["host"]), stringOf(hostName)), member(keyOf(["host"]), fc.oneof(number, literal)))
      .map(([a, b]): Tok[] => ["{", ...a, ",", ...b, "}"]),
    weight: 1,
  },
  { arbitrary: stringOf(hostName), weight: 2 },
  { arbitrary: arrayOf(objectOf(member(keyOf(["host"]), hostValue), 2), 2), weight: 1 },
  { arbitrary: literal, weight: 1 },
);

/** Instants from 2001 to 2037, and some that are not. */
const instant = fc.oneof(
  { arbitrary: fc.integer({ min: Date.UTC(2001, 0, 1), max: Date.UTC(2037, 0, 1) }), weight: 8 },
  { arbitrary: fc.constantFrom(0, 1, -1, 999, 253_402_300_799_999, -62_167_219_200_000), weight: 1 },
);

const isoTime = fc
  .tuple(
    instant,
    fc.constantFrom("Z", "z", "+02:00", "-05:30", "+0530", "+05", "", "+24:00", "+02:60", "-00:45"),
    fc.constantFrom(0, 1, 3, 6, 9),
    fc.constantFrom("T", "t", " "),
  )
  .map(([ms, zone, digits, sep]) => {
    const iso = new Date(ms).toISOString();
    if (iso.length !== 24) return iso;
    const fraction = digits === 0 ? "" : `.${`${iso.slice(20, 23)}123456`.slice(0, digits)}`;
    return `${iso.slice(0, 10)}${sep}${iso.slice(11, 19)}${fraction}${zone}`;
  });

const BAD_TIMES = [
  "2024-02-30T04:52:19Z",
  "2023-02-29T04:52:19Z",
  "2024-13-01T00:00:00Z",
  "2024-04-19T24:00:00Z",
  "2024-04-19",
  "2024-04-19T04:52",
  "2024-04-19T04:52:19.Z",
  "0000-01-01T00:00:00+01:00",
  "9999-12-31T23:59:59.999-01:00",
  "2024-04-19T04:52:19Zjunk",
  "",
  "yesterday",
  " 1713502339",
  "1713502339 ",
  "-1713502339",
  "0",
  "1e9",
  "0x10",
  "１７１３５０２３３９",
  "171350233912345678901",
  // JSON.parse's path takes these (Number() trims, an ISO time may run on); the flat reader must decline them.
  "1713502339\n",
  "2024-04-19T04:52:19.5Z\n",
];

/** Epoch seconds, ms, µs or ns, as a JSON number or as digits in a string. */
const epochTime: fc.Arbitrary<Tok[]> = fc
  .tuple(instant, fc.nat(999_999), fc.constantFrom("s", "ms", "us", "ns"), fc.boolean())
  .map(([ms, extra, unit, asText]) => {
    const n = BigInt(ms);
    const text =
      unit === "s"
        ? String(ms / 1000)
        : unit === "ms"
          ? String(ms)
          : unit === "us"
            ? String(n * 1000n + BigInt(extra % 1000))
            : String(n * 1_000_000n + BigInt(extra));
    return [asText && !text.includes(".") ? JSON.stringify(text) : text];
  });

/** Epoch seconds with more digits than a double holds, and exponent forms: longer than any digit string read. */
const longEpoch: fc.Arbitrary<Tok[]> = fc
  .tuple(instant, fc.nat(), fc.constantFrom("", "e0", "E+0", "000e-3"))
  .map(([ms, digits, exponent]) => [
    `${Math.floor(ms / 1000)}.${String(digits).padStart(12, "7")}${exponent}`,
  ]);

const timeValue = fc.oneof(
  { arbitrary: stringOf(isoTime), weight: 3 },
  { arbitrary: epochTime, weight: 3 },
  { arbitrary: longEpoch, weight: 1 },
  { arbitrary: stringOf(fc.constantFrom(...BAD_TIMES)), weight: 2 },
  { arbitrary: number, weight: 1 },
  { arbitrary: literal, weight: 1 },
  { arbitrary: anyValue, weight: 1 },
);

/** What a record's message may be: a kernel line, another line, or (at the outer level) a record. */
function messageText(prefix: string, outer: boolean): fc.Arbitrary<string> {
  const lines = [
    { arbitrary: kernelLine(prefix), weight: 8 },
    { arbitrary: otherLine(prefix), weight: 2 },
  ];
  if (!outer) return fc.oneof(...lines);
  return fc.oneof(...lines, {
    arbitrary: fc
      .tuple(
        record(prefix, false),
        fc.nat(),
        fc.boolean(),
        fc.constantFrom("", "", "\n", " "),
        fc.constantFrom("", " "),
      )
      .map(([tokens, style, plain, after, before]) => `${before}${render(tokens, style, plain)}${after}`),
    weight: 1,
  });
}

function messageValue(prefix: string, outer: boolean): fc.Arbitrary<Tok[]> {
  const text = messageText(prefix, outer);
  return fc.oneof(
    { arbitrary: stringOf(text), weight: 12 },
    { arbitrary: byteArray(text), weight: 2 },
    { arbitrary: anyValue, weight: 1 },
  );
}

/**
 * A record's members: message, host and time fields of every form among others, in any order and number; most
 * often with a message somewhere among them.
 */
function record(prefix: string, outer: boolean): fc.Arbitrary<Tok[]> {
  const message = member(keyOf(MESSAGE_KEYS), messageValue(prefix, outer));
  const any = fc.oneof(
    { arbitrary: message, weight: 2 },
    { arbitrary: member(keyOf(HOST_KEYS), hostValue), weight: 2 },
    { arbitrary: member(keyOf(TIME_KEYS), timeValue), weight: 2 },
    { arbitrary: member(keyOf(["kubernetes"]), kubernetesValue), weight: 1 },
    // An object with a host that is not the kubernetes filter's.
    { arbitrary: member(keyOf(OTHER_KEYS), objectOf(member(keyOf(["host"]), hostValue), 2)), weight: 1 },
    { arbitrary: member(keyOf(ALL_KEYS), anyValue), weight: 2 },
    // The OpenTelemetry exporter's body holding the record itself (journald's entry), whose message may be a
    // record in its turn.
    ...(outer
      ? [
          { arbitrary: member(keyOf(["body"]), record(prefix, false)), weight: 1 },
          {
            arbitrary: member(
              keyOf(["body"]),
              objectFrom(
                fc
                  .tuple(
                    fc.array(member(keyOf(HOST_KEYS), hostValue), { maxLength: 2 }),
                    member(keyOf(MESSAGE_KEYS), messageValue(prefix, true)),
                  )
                  .map(([hosts, m]) => [...hosts, m]),
              ),
            ),
            weight: 1,
          },
        ]
      : []),
  );
  const members = fc.oneof(
    {
      arbitrary: fc
        .tuple(fc.array(any, { maxLength: 3 }), message, fc.array(any, { maxLength: 3 }))
        .map(([before, m, after]) => [...before, m, ...after]),
      weight: 4,
    },
    { arbitrary: fc.array(any, { maxLength: 7 }), weight: 1 },
  );
  return objectFrom(members);
}

const LEADS = fc.oneof(
  { arbitrary: fc.constant(""), weight: 6 },
  { arbitrary: fc.constantFrom(" ", "  ", "\t", "\ufeff", " \ufeff\t"), weight: 2 },
);
const TRAILS = fc.oneof(
  { arbitrary: fc.constant(""), weight: 8 },
  { arbitrary: fc.constantFrom(" ", "\t", "\r", "\n"), weight: 2 },
  { arbitrary: fc.constantFrom(" x", "}", ",", "{}", "\ufeff", '"'), weight: 1 },
);

interface Edit {
  op: "none" | "cut" | "insert" | "delete";
  at: number;
  text: string;
}

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { arbitrary: fc.constant<Edit>({ op: "none", at: 0, text: "" }), weight: 30 },
  { arbitrary: fc.nat().map((at): Edit => ({ op: "cut", at, text: "" })), weight: 3 },
  {
    arbitrary: fc
      .tuple(
        fc.nat(),
        // (A raw control character in a string is not JSON; a tab between tokens is.)
        fc.constantFrom(
          '"',
          "\\",
          ",",
          "}",
          "{",
          ":",
          " ",
          "é",
          "\ufeff",
          "[",
          "\t",
          "\u0000",
          "\u001f",
          "\n",
        ),
      )
      .map(([at, text]): Edit => ({ op: "insert", at, text })),
    weight: 2,
  },
  {
    arbitrary: fc.tuple(fc.nat(), fc.integer({ min: 1, max: 8 })).map(
      ([at, n]): Edit => ({
        op: "delete",
        at,
        text: " ".repeat(n),
      }),
    ),
    weight: 1,
  },
);

function applyEdit(line: string, e: Edit): string {
  const i = e.at % (line.length + 1);
  if (e.op === "cut") return line.slice(0, i);
  if (e.op === "insert") return `${line.slice(0, i)}${e.text}${line.slice(i)}`;
  if (e.op === "delete") return `${line.slice(0, i)}${line.slice(i + e.text.length)}`;
  return line;
}

/**
 * A record in which one string, any of them, ends in a newline: as Fluent Bit's tail writes `log`, the one escape
 * the flat reader takes, and only there.
 */
function newlineRecord(prefix: string): fc.Arbitrary<Tok[]> {
  return fc.tuple(record(prefix, true), fc.nat()).map(([tokens, k]) => {
    const strings = tokens.flatMap((t, i) => (typeof t === "object" ? [i] : []));
    if (strings.length === 0) return tokens;
    const at = strings[k % strings.length] as number;
    const s = tokens[at] as Spelt;
    return tokens.map((t, i) => (i === at ? { ...s, text: `${s.text}\n` } : t));
  });
}

/** A whole line: maybe a BOM or spaces, a record, maybe something after it, maybe damaged. */
function jsonLine(prefix: string): fc.Arbitrary<string> {
  const records = fc.oneof(
    { arbitrary: record(prefix, true), weight: 3 },
    { arbitrary: newlineRecord(prefix), weight: 1 },
  );
  return fc
    .tuple(LEADS, records, fc.nat(), fc.constantFrom(true, true, false), TRAILS, edit)
    .map(([lead, tokens, style, plain, trail, e]) =>
      applyEdit(`${lead}${render(tokens, style, plain)}${trail}`, e),
    );
}

const sample = fc
  .constantFrom(...CONFIGS.keys())
  .chain((c) => fc.tuple(fc.constant(c), jsonLine((CONFIGS[c] as Config).prefix)));

// ---------------------------------------------------------------------------------------------------------------
// The sides compared

interface Tools {
  config: Config;
  needle: string;
  /** createParser's parser, whose flat reader is also asked directly (to count what it answers). */
  fast: LineParser;
  reference: (line: string) => ParseOutcome;
  /** The JSON.parse path itself (parseJson), without the raw search that skips lines before it. */
  rules: LineParser;
  encoder: NdjsonEncoder;
  scanner: LineParser;
}

// One set per configuration, reused from line to line as the CLI and the pipeline reuse theirs.
const TOOLS: Tools[] = CONFIGS.map((config) => {
  const fast = new LineParser(config.options);
  return {
    config,
    needle: fast.needle,
    fast,
    reference: createReferenceParser(config.options),
    rules: new LineParser(config.options, false),
    encoder: new NdjsonEncoder(config.options),
    scanner: createScanner(config.options),
  };
});

/** Where scan starts reading a line. */
function startOf(line: string): number {
  let i = 0;
  while (i < line.length && (line[i] === " " || line[i] === "\t" || line[i] === "\ufeff")) i++;
  return i;
}

/** The record the pipeline's scanner left in its fields, built as createParser builds its record. */
function scannedRecord(scanner: LineParser): PacketRecord {
  const f = scanner.fields;
  const range = (s: number, e: number) => (s < 0 ? null : f.text.slice(s, e));
  // The pipeline compares host names and IPv4 addresses by the scanned bytes: one per character, 0x80 beyond ASCII.
  for (const [s, e] of [
    [f.nodeS, f.nodeE],
    [f.srcS, f.srcE],
    [f.dstS, f.dstE],
  ] as const) {
    for (let k = s; k >= 0 && k < e; k++) {
      const c = f.text.charCodeAt(k);
      expect(f.b[k]).toBe(c < 128 ? c : 0x80);
    }
  }
  if (f.srcS >= 0) expect(f.srcV4).toBe(readDottedQuad(f.b, f.srcS, f.srcE));
  if (f.dstS >= 0) expect(f.dstV4).toBe(readDottedQuad(f.b, f.dstS, f.dstE));
  return {
    time: f.time,
    node: f.nodeS >= 0 ? f.text.slice(f.nodeS, f.nodeE) : f.node,
    prefix: f.prefix,
    policy: scanner.format === null ? null : decodePolicy(scanner.format, f.prefix),
    inInterface: range(f.inS, f.inE),
    outInterface: range(f.outS, f.outE),
    mac: f.macS >= 0 ? f.text.slice(f.macS, f.macE) : f.mac,
    src: f.srcS >= 0 ? f.text.slice(f.srcS, f.srcE) : formatIpv6Groups(scanner.srcGroups),
    dst: f.dstS >= 0 ? f.text.slice(f.dstS, f.dstE) : formatIpv6Groups(scanner.dstGroups),
    ipVersion: f.ipVersion,
    length: f.length,
    ttl: f.ttl < 0 ? null : f.ttl,
    protocol: f.protocol,
    srcPort: f.srcPort < 0 ? null : f.srcPort,
    dstPort: f.dstPort < 0 ? null : f.dstPort,
    tcpFlags: flagNames(f.flags),
    icmpType: f.icmpType < 0 ? null : f.icmpType,
    icmpCode: f.icmpCode < 0 ? null : f.icmpCode,
  };
}

/** Lines around the one encoded in place: what a scan of it must never read as its own. */
const BEFORE = 'calico-packet: IN=eth0 "MESSAGE":[99] \\';
const AFTER =
  '"MESSAGE":[99], "host":"after" \\n" calico-packet: IN=x OUT=y SRC=10.0.0.1 DST=10.0.0.2 LEN=1 TTL=1 PROTO=UDP SPT=1 DPT=2 LEN=3 "}';

const NOT_ASCII = /[\u0080-\uffff]/;
/**
 * What JSON writers escape: what JSON requires, "/" (PHP, Ruby's script_safe), what is not ASCII (Python's
 * ensure_ascii), "<", ">", "&" (Go's encoding/json), "'", "+", "`" (.NET's default encoder).
 */
function writersEscape(text: string): boolean {
  for (const c of text) {
    const code = c.charCodeAt(0);
    if (code < 32 || code > 126 || "\"\\/<>&'+`".includes(c)) return true;
  }
  return false;
}
/** A message key with an array (journald's bytes) as written, however spaced: the raw search must not skip it. */
const ARRAY_MESSAGE = /"(MESSAGE|message|log|msg|body)"[ \t\n\r]*:[ \t\n\r]*\[/;

const RUNS = 20_000;
const seen = { json: 0, flat: 0, records: 0, errors: 0, inPlace: 0 };

/** Every side's answer for `line` against the reference's. */
function check(tools: Tools, line: string): void {
  const expected = tools.reference(line);

  // The fast path: createParser.
  expect(tools.fast.scan(line)).toEqual(expected);
  const start = startOf(line);
  const json = line[start] === "{";
  if (json) {
    seen.json++;
    const flat = tools.fast.parseFlatJson(line, start);
    if (flat !== undefined) {
      seen.flat++;
      expect(flat).toEqual(expected);
    }
    // The reference is the JSON.parse path, unless the raw search skipped the line: which it may do only when
    // neither the prefix nor a message of bytes is there as written, and the prefix has no character a JSON
    // writer escapes (then it is hidden only by escapes no writer uses, such as "\u0063alico").
    const byRules = tools.rules.parseJson(line.slice(start), 0, null, Number.NaN);
    const hidden = !writersEscape(tools.needle) && !line.includes(tools.needle) && !ARRAY_MESSAGE.test(line);
    if (!hidden || expected.kind !== "skip") expect(expected).toEqual(byRules);
  }
  if (expected.kind === "record") seen.records++;
  if (expected.kind === "error") seen.errors++;

  // The NDJSON encoder, on the line as a string.
  expectEncoded(tools.encoder, line, expected);

  // The NDJSON encoder in place, the line amid others in an ASCII chunk (as parseStream gives it).
  if (!NOT_ASCII.test(line) && !line.includes("\n")) {
    seen.inPlace++;
    expectEncodedInPlace(tools.encoder, line, expected, { before: BEFORE, after: AFTER });
  }

  // The scanner fields the ingest pipeline reads.
  const scanned = tools.scanner.scan(line);
  if (expected.kind === "record") {
    expect(scanned).toBeNull();
    expect(scannedRecord(tools.scanner)).toEqual(expected.record);
  } else {
    expect(scanned).toEqual(expected);
  }
}

describe("JSON records built token by token: every fast path gives what JSON.parse's path gives", () => {
  it("createParser, the NDJSON encoder (as a string and in place) and the scanner fields", () => {
    fc.assert(
      fc.property(sample, ([c, line]) => check(TOOLS[c] as Tools, line)),
      { numRuns: RUNS },
    );
    // The generators must reach the flat reader's answers, records and errors, or the comparison says little.
    expect(seen.flat).toBeGreaterThan(seen.json / 10);
    expect(seen.records).toBeGreaterThan(RUNS / 10);
    expect(seen.errors).toBeGreaterThan(RUNS / 10);
    expect(seen.inPlace).toBeGreaterThan(RUNS / 4);
  });

  it("journalctl's spaced byte-array MESSAGE, bytes in another message key, a prefix Go or .NET escapes", () => {
    const message =
      "IN=eth0 OUT=eni1 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 ";
    const bytes = [...Buffer.from(`calico-packet: ${message}`)].join(", ");
    // `journalctl -o json`: a message that is not clean UTF-8 as an array of its bytes, spaced `"MESSAGE" : [`.
    const journalctl = `{ "__REALTIME_TIMESTAMP" : "1713502339123456", "_HOSTNAME" : "ip-1", "MESSAGE" : [ ${bytes} ] }`;
    const renamed = `{"log":[${bytes}],"host":"ip-2"}`;
    const go = `{"message":"calico\\u0026drop: ${message}","host":"ip-3"}`;
    for (const [tools, line, node] of [
      [TOOLS[0], journalctl, "ip-1"],
      [TOOLS[0], renamed, "ip-2"],
      [TOOLS[4], go, "ip-3"],
    ] as const) {
      check(tools as Tools, line);
      const outcome = (tools as Tools).reference(line);
      expect(outcome.kind === "record" && outcome.record.node).toBe(node);
    }
  });

  it("through parseStream, lines parsed where they lie in the chunk or as strings", async () => {
    const lines = fc
      .constantFrom(...CONFIGS.keys())
      .chain((c) =>
        fc.tuple(
          fc.constant(c),
          fc.array(jsonLine((CONFIGS[c] as Config).prefix), { minLength: 1, maxLength: 6 }),
          fc.array(fc.integer({ min: 1, max: 600 }), { maxLength: 4 }),
        ),
      );
    await fc.assert(
      fc.asyncProperty(lines, async ([c, ls, cuts]) => {
        const config = CONFIGS[c] as Config;
        const bytes = Buffer.from(`${ls.join("\n")}\n`);
        // What the reference makes of each line, as the stream splits them (after UTF-8 encoding).
        const reference = createReferenceParser(config.options);
        let want = "";
        const wantMalformed: string[] = [];
        bytes
          .toString()
          .split("\n")
          .slice(0, -1)
          .forEach((line, i) => {
            const o = reference(line);
            if (o.kind === "record") want += `${JSON.stringify(o.record)}\n`;
            else if (o.kind === "error") wantMalformed.push(`${i + 1}: ${o.reason}`);
          });
        const chunks = chunksAt(bytes, cuts);
        let out = "";
        const malformed: string[] = [];
        await parseStream(
          (async function* () {
            yield* chunks;
          })(),
          {
            encoder: new NdjsonEncoder(config.options),
            write: (b) => {
              out += Buffer.from(b).toString();
            },
            onMalformed: (line, reason) => malformed.push(`${line}: ${reason}`),
          },
        );
        expect(out).toBe(want);
        expect(malformed).toEqual(wantMalformed);
      }),
      { numRuns: 300 },
    );
  });
});
