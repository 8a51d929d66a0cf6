// NDJSON for `calico-flows parse` (DESIGN.md §3.1): each record as JSON.stringify would print it, written
// straight from the scanned line's bytes instead of building the record and serialising it, which would cost
// more than the scan itself (docs/architecture.md, "Inside the parser").
import { writeIpv6Groups } from "./ipv6.ts";
import {
  createScanner,
  decodePolicy,
  flagNames,
  type LineParser,
  type ParseOptions,
  type Scan,
} from "./parse.ts";

const utf8 = new TextEncoder();

/**
 * Constant JSON text as little-endian 32-bit words, written four bytes at a time. The last word is padded: writing
 * it puts up to three bytes past the text, which the next write covers (the output keeps room for them).
 */
interface Segment {
  words: Int32Array;
  length: number;
}

/** Words of `bytes[0, length)`, padded. */
function packWords(bytes: Uint8Array, length: number, words: Int32Array): void {
  for (let i = 0; i < length; i += 4) {
    words[i >> 2] =
      (bytes[i] as number) |
      ((i + 1 < length ? (bytes[i + 1] as number) : 0) << 8) |
      ((i + 2 < length ? (bytes[i + 2] as number) : 0) << 16) |
      ((i + 3 < length ? (bytes[i + 3] as number) : 0) << 24);
  }
}

function segment(json: string): Segment {
  const bytes = utf8.encode(json);
  const words = new Int32Array((bytes.length + 3) >> 2);
  packWords(bytes, bytes.length, words);
  return { words, length: bytes.length };
}

const S_NULL = segment("null");
const S_OUT = segment(',"outInterface":');
const S_MAC = segment(',"mac":');
const S_SRC = segment(',"src":');
const S_DST = segment(',"dst":');
const S_V4 = segment(',"ipVersion":4,"length":');
const S_V6 = segment(',"ipVersion":6,"length":');
const S_TTL = segment(',"ttl":');
const S_SRC_PORT = segment(',"srcPort":');
const S_DST_PORT = segment(',"dstPort":');
const S_ICMP_CODE = segment(',"icmpCode":');
const S_END = segment("}\n");
/** `,"protocol":"TCP","srcPort":` and the like for the protocols the scanner names with shared strings. */
const protocolSegment = (name: string) => segment(`,"protocol":${JSON.stringify(name)},"srcPort":`);
const S_TCP = protocolSegment("TCP");
const S_UDP = protocolSegment("UDP");
const S_ICMP = protocolSegment("ICMP");
const S_ICMPV6 = protocolSegment("ICMPv6");
/**
 * `,"tcpFlags":[...],"icmpType":` for each set of flags, or the whole end of the record when both ICMP fields
 * are null; made when first seen.
 */
const S_FLAGS: (Segment | undefined)[] = [];

function flagsSegment(flags: number, end: boolean): Segment {
  const slot = 2 * flags + (end ? 1 : 0);
  let s = S_FLAGS[slot];
  if (s === undefined) {
    const tail = end ? 'null,"icmpCode":null}\n' : "";
    s = segment(`,"tcpFlags":${JSON.stringify(flagNames(flags))},"icmpType":${tail}`);
    S_FLAGS[slot] = s;
  }
  return s;
}
/** The output buffer's least size; a long line's record may need a larger one. */
const OUTPUT_BYTES = 1 << 18;

/** `{"time":…,"node":` for one record time. */
interface TimeSegment extends Segment {
  time: string | null | undefined;
}

function newTimeSegment(): TimeSegment {
  return { time: undefined, words: new Int32Array(32), length: 0 };
}

const TIME_BYTES = new Uint8Array(128);

/** Record times are ISO instants (or null): short, and plain ASCII. */
function setTime(segment: TimeSegment, time: string | null): void {
  let length: number;
  if (time === null || time.length > 32) {
    const json = `{"time":${JSON.stringify(time)},"node":`;
    length = utf8.encodeInto(json, TIME_BYTES).written;
  } else {
    // {"time":" then the instant, then ","node":
    TIME_BYTES.set(TIME_OPEN);
    for (let k = 0; k < time.length; k++) TIME_BYTES[TIME_OPEN.length + k] = time.charCodeAt(k);
    TIME_BYTES.set(TIME_CLOSE, TIME_OPEN.length + time.length);
    length = TIME_OPEN.length + time.length + TIME_CLOSE.length;
  }
  packWords(TIME_BYTES, length, segment.words);
  segment.length = length;
  segment.time = time;
}

const TIME_OPEN = utf8.encode('{"time":"');
const TIME_CLOSE = utf8.encode('","node":');

/** What `encode` made of a line. */
export type EncodedKind = "record" | "skip" | "error";

// The writers below put JSON at `p` in `out` (viewed as `dv` too) and return the index after it; the caller has
// reserved the room.

function putSegment(dv: DataView, p: number, s: Segment): number {
  const words = s.words;
  const n = (s.length + 3) >> 2;
  for (let k = 0; k < n; k++) dv.setInt32(p + 4 * k, words[k] as number, true);
  return p + s.length;
}

/** 1 for the bytes JSON.stringify writes as they are (printable ASCII but quote and backslash; DEL passes too). */
const PLAIN = Uint8Array.from({ length: 256 }, (_, c) =>
  c >= 32 && c < 128 && c !== 34 && c !== 92 ? 1 : 0,
);

/** Any JSON text, through the native UTF-8 encoder. */
function putText(out: Uint8Array, p: number, json: string): number {
  return p + utf8.encodeInto(json, out.subarray(p)).written;
}

/** `null`, or the JSON string of `text`: its characters when none needs escaping (nearly always). */
function putString(out: Uint8Array, dv: DataView, p: number, text: string | null): number {
  if (text === null) return putSegment(dv, p, S_NULL);
  const start = p;
  out[p++] = 34;
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    // Control characters, quote, backslash and anything outside ASCII: as JSON.stringify writes them.
    if (c > 127 || PLAIN[c] === 0) return putText(out, start, JSON.stringify(text));
    out[p++] = c;
  }
  out[p++] = 34;
  return p;
}

/**
 * `null` for start -1, or the JSON string of `text[start, end)`, copied from its scanned bytes `b` (viewed as `bv`
 * when it is the parser's scratch), four at a time.
 */
function putRange(
  out: Uint8Array,
  dv: DataView,
  p: number,
  text: string,
  b: Uint8Array,
  bv: DataView | null,
  start: number,
  end: number,
): number {
  if (start < 0) return putSegment(dv, p, S_NULL);
  const from = p;
  out[p++] = 34;
  let k = start;
  if (bv !== null) {
    for (; k + 4 <= end; k += 4) {
      const x = bv.getInt32(k, true);
      // A byte below 0x20, from 0x80 (where a character outside ASCII was scanned as 0x80), a quote or a backslash
      // sets the top bit of its byte in one of these terms (and may set it in a higher byte: that only sends the
      // value to JSON.stringify, which is always right).
      const quote = x ^ 0x22222222;
      const backslash = x ^ 0x5c5c5c5c;
      const flags =
        ((x - 0x20202020) & ~x) |
        x |
        ((quote - 0x01010101) & ~quote) |
        ((backslash - 0x01010101) & ~backslash);
      if ((flags & 0x80808080) !== 0) return putText(out, from, JSON.stringify(text.slice(start, end)));
      dv.setInt32(p, x, true);
      p += 4;
    }
  }
  for (; k < end; k++) {
    const c = b[k] as number;
    if (PLAIN[c] === 0) return putText(out, from, JSON.stringify(text.slice(start, end)));
    out[p++] = c;
  }
  out[p++] = 34;
  return p;
}

/** The digits of 0 to 9999 as one padded word each, and how many there are. */
const DIGIT_WORDS = Int32Array.from({ length: 10_000 }, (_, n) => {
  const text = String(n);
  let word = 0;
  for (let i = text.length - 1; i >= 0; i--) word = (word << 8) | text.charCodeAt(i);
  return word;
});
const DIGIT_COUNTS = Uint8Array.from({ length: 10_000 }, (_, n) => String(n).length);

/** An IPv4 address as read (digits and dots), quoted. */
function putAddress(out: Uint8Array, p: number, b: Uint8Array, start: number, end: number): number {
  out[p++] = 34;
  for (let k = start; k < end; k++) out[p++] = b[k] as number;
  out[p] = 34;
  return p + 1;
}

/** An IPv6 address in its RFC 5952 form, quoted. */
function putIpv6(out: Uint8Array, p: number, groups: Uint16Array): number {
  out[p] = 34;
  p = writeIpv6Groups(groups, out, p + 1);
  out[p] = 34;
  return p + 1;
}

/** `null` for a negative number, else the decimal digits of a whole number below 2^53. */
function putNumber(out: Uint8Array, dv: DataView, p: number, n: number): number {
  if (n < 0) return putSegment(dv, p, S_NULL);
  if (n < 10_000) {
    dv.setInt32(p, DIGIT_WORDS[n] as number, true);
    return p + (DIGIT_COUNTS[n] as number);
  }
  let digits = 5;
  for (let v = Math.floor(n / 100_000); v > 0; v = Math.floor(v / 10)) digits++;
  const after = p + digits;
  let v = n;
  for (let q = after - 1; q >= p; q--) {
    const next = Math.floor(v / 10);
    out[q] = 48 + v - next * 10;
    v = next;
  }
  return after;
}

/**
 * Parses lines into NDJSON bytes: each record line is byte for byte `JSON.stringify(record) + "\n"` of the
 * record `createParser` returns for the same line (the tests hold it to that).
 */
export class NdjsonEncoder {
  readonly #parser: LineParser;
  /** `,"prefix":"calico-packet","policy":null,"inInterface":` when the prefix is the configured one. */
  readonly #prefixSegment: Segment | null;
  #out = new Uint8Array(OUTPUT_BYTES);
  #dv = new DataView(this.#out.buffer);
  #pos = 0;
  /** `{"time":…,"node":` for the time of the last record. */
  /** `{"time":…,"node":` for the last two times written, the latest first. */
  readonly #times: TimeSegment[] = [newTimeSegment(), newTimeSegment()];
  /** Why the last line that was an error is one. */
  reason = "";

  /** The text its parser finds calico-packet lines by. */
  get needle(): string {
    return this.#parser.needle;
  }

  /** Throws a RangeError for invalid options, as createParser does. */
  constructor(options: ParseOptions = {}) {
    this.#parser = createScanner(options);
    this.#prefixSegment =
      this.#parser.format === null
        ? segment(`,"prefix":${JSON.stringify(this.#parser.needle)},"policy":null,"inInterface":`)
        : null;
  }

  /**
   * Parses `line` and, when it is a record, appends its NDJSON line to the output. Call `take` before the output
   * grows past what you want to hold.
   */
  encode(line: string): EncodedKind {
    return this.#emit(this.#parser.scan(line));
  }

  /**
   * encode for the line `text[start, end)` of an ASCII text whose bytes are `bytes` (viewed as `view`), with room
   * for 64 more bytes after `end`, which are used during the call and put back.
   */
  encodeWithin(text: string, bytes: Uint8Array, view: DataView, start: number, end: number): EncodedKind {
    return this.#emit(this.#parser.scanWithin(text, bytes, view, start, end));
  }

  /**
   * encode for the next line of the text the last encode read, when it holds several (a JSON record's message of
   * several lines: LineParser#scanMore); undefined when it has no more.
   */
  encodeMore(): EncodedKind | undefined {
    const outcome = this.#parser.scanMore();
    return outcome === undefined ? undefined : this.#emit(outcome);
  }

  #emit(outcome: Scan): EncodedKind {
    const parser = this.#parser;
    if (outcome !== null) {
      if (outcome.kind === "skip") return "skip";
      this.reason = outcome.kind === "error" ? outcome.reason : "";
      return "error";
    }
    const r = parser.fields;
    const { text, b } = r;
    const bv = r.view;
    // Worst case: every character of a text value escaped as \uXXXX; the prefix appears again in the policy.
    const texts =
      (r.nodeS >= 0 ? r.nodeE - r.nodeS : (r.node?.length ?? 0)) +
      2 * r.prefix.length +
      (r.inE - r.inS) +
      (r.outE - r.outS) +
      (r.macS >= 0 ? r.macE - r.macS : (r.mac?.length ?? 0)) +
      r.protocol.length;
    this.#reserve(512 + 6 * texts);
    const out = this.#out;
    const dv = this.#dv;
    // Two times in turn (syslog lines' seconds between JSON records' milliseconds) keep both their segments.
    let time = this.#times[0] as TimeSegment;
    if (r.time !== time.time) {
      const other = this.#times[1] as TimeSegment;
      this.#times[0] = other;
      this.#times[1] = time;
      time = other;
      if (r.time !== time.time) setTime(time, r.time);
    }
    let p = putSegment(dv, this.#pos, time);
    p = r.nodeS >= 0 ? putRange(out, dv, p, text, b, bv, r.nodeS, r.nodeE) : putString(out, dv, p, r.node);
    const prefixSegment = this.#prefixSegment;
    if (prefixSegment !== null && r.prefix === parser.needle) {
      p = putSegment(dv, p, prefixSegment);
    } else {
      const policy = parser.format === null ? null : decodePolicy(parser.format, r.prefix);
      p = putText(
        out,
        p,
        `,"prefix":${JSON.stringify(r.prefix)},"policy":${JSON.stringify(policy)},"inInterface":`,
      );
    }
    p = putRange(out, dv, p, text, b, bv, r.inS, r.inE);
    p = putSegment(dv, p, S_OUT);
    p = putRange(out, dv, p, text, b, bv, r.outS, r.outE);
    p = putSegment(dv, p, S_MAC);
    p = r.macS >= 0 ? putRange(out, dv, p, text, b, bv, r.macS, r.macE) : putString(out, dv, p, r.mac);
    p = putSegment(dv, p, S_SRC);
    // IPv4 addresses were read digit by digit: nothing in them to escape.
    // IPv6 ones from their groups, read by the scan.
    p = r.srcS >= 0 ? putAddress(out, p, b, r.srcS, r.srcE) : putIpv6(out, p, parser.srcGroups);
    p = putSegment(dv, p, S_DST);
    p = r.dstS >= 0 ? putAddress(out, p, b, r.dstS, r.dstE) : putIpv6(out, p, parser.dstGroups);
    p = putSegment(dv, p, r.ipVersion === 4 ? S_V4 : S_V6);
    p = putNumber(out, dv, p, r.length);
    p = putSegment(dv, p, S_TTL);
    p = putNumber(out, dv, p, r.ttl);
    // The scanner's shared strings: compared by reference.
    const name = r.protocol;
    const protocol =
      name === "TCP"
        ? S_TCP
        : name === "UDP"
          ? S_UDP
          : name === "ICMP"
            ? S_ICMP
            : name === "ICMPv6"
              ? S_ICMPV6
              : undefined;
    if (protocol !== undefined) {
      p = putSegment(dv, p, protocol);
    } else {
      p = putText(out, p, `,"protocol":${JSON.stringify(r.protocol)}`);
      p = putSegment(dv, p, S_SRC_PORT);
    }
    p = putNumber(out, dv, p, r.srcPort);
    p = putSegment(dv, p, S_DST_PORT);
    p = putNumber(out, dv, p, r.dstPort);
    if (r.icmpType < 0 && r.icmpCode < 0) {
      this.#pos = putSegment(dv, p, flagsSegment(r.flags, true));
    } else {
      p = putSegment(dv, p, flagsSegment(r.flags, false));
      p = putNumber(out, dv, p, r.icmpType);
      p = putSegment(dv, p, S_ICMP_CODE);
      p = putNumber(out, dv, p, r.icmpCode);
      this.#pos = putSegment(dv, p, S_END);
    }
    return "record";
  }

  /**
   * The NDJSON written since the last call (empty for none). The bytes are the encoder's own: use them before the
   * next `encode`, which writes over them.
   */
  take(): Uint8Array {
    const bytes = this.#out.subarray(0, this.#pos);
    this.#pos = 0;
    return bytes;
  }

  /** Room for `bytes` more in the output buffer, keeping what it holds. */
  #reserve(bytes: number): void {
    const out = this.#out;
    if (out.length - this.#pos >= bytes) return;
    const grown = new Uint8Array(Math.max(2 * out.length, 2 * (this.#pos + bytes)));
    grown.set(out.subarray(0, this.#pos));
    this.#out = grown;
    this.#dv = new DataView(grown.buffer);
  }
}
