// Reads a CloudWatch Logs subscription delivery (the gunzipped JSON of `awslogs.data`) straight from its bytes.
//
// JSON.parse of a delivery costs more than gunzip and base64 together: it decodes the whole text to a string,
// then builds every value through a general parser. CloudWatch Logs writes one layout: an envelope of strings and
// an array of strings, and `logEvents`, objects with exactly `id`, `timestamp` and `message`, in that order. This
// reader takes that layout (whitespace anywhere JSON allows it, envelope keys in any order, envelope values that
// are any string, number, literal or array of those) and answers undefined for anything else — another layout,
// invalid JSON, a nested value it does not expect, no `logEvents` array, an event id whose bytes are not UTF-8 —
// so that the caller parses the text with JSON.parse instead. When it answers, its envelope and events hold what
// JSON.parse would return for the same bytes decoded as UTF-8. The events are not built: an event is its timestamp
// and the positions of its id and message in the bytes (DeliveredEvents), whose strings are decoded only when asked
// for (a string's quotes are ASCII, so they never split a character). A string holding an escape goes through
// JSON.parse itself.
import { isUtf8 } from "node:buffer";
import { DeliveredEvents, type EventColumns } from "./delivered-events.ts";
import { jsonNumberEnd, jsonSpace } from "./json-bytes.ts";

/** Where a read stands: the bytes, and the next backslash at or after the last string read (b.length: none). */
interface Reader {
  b: Buffer;
  view: DataView;
  /** The bytes as 32-bit words from the first 4-aligned one, which is `b[wordStart]`. */
  words: Int32Array;
  wordStart: number;
  /** Position after the last value read. */
  pos: number;
  backslash: number;
}

/** Returned by the readers below for input they do not take. */
const NOT_TAKEN = Symbol("not taken");
type Read<T> = T | typeof NOT_TAKEN;

const ID_KEY = Buffer.from('"id"');
const TIMESTAMP_KEY = Buffer.from('"timestamp"');
const MESSAGE_KEY = Buffer.from('"message"');
/**
 * ASCII text as the 32-bit little-endian words that cover it (the last one overlapping the one before when the
 * length is not a multiple of four), for a comparison of four bytes at a time.
 */
class Literal {
  readonly length: number;
  readonly #offsets: Int32Array;
  readonly #words: Int32Array;

  constructor(text: string) {
    const bytes = Buffer.from(text, "latin1");
    if (bytes.length < 4)
      throw new RangeError(`a literal has at least four bytes, got ${JSON.stringify(text)}`);
    const offsets: number[] = [];
    for (let at = 0; at < bytes.length; at += 4) offsets.push(Math.min(at, bytes.length - 4));
    this.length = bytes.length;
    this.#offsets = Int32Array.from(offsets);
    this.#words = Int32Array.from(offsets, (at) => bytes.readInt32LE(at));
  }

  /** True when the literal is at `at` in the bytes `view` covers. */
  at(view: DataView, at: number): boolean {
    if (at < 0 || at + this.length > view.byteLength) return false;
    const offsets = this.#offsets;
    const words = this.#words;
    for (let k = 0; k < offsets.length; k++) {
      if (view.getInt32(at + (offsets[k] as number), true) !== words[k]) return false;
    }
    return true;
  }
}

/** An event exactly as CloudWatch Logs writes it, around its three values. */
const EVENT_HEAD = new Literal('{"id":"');
const AFTER_ID = new Literal('","timestamp":');
const BEFORE_MESSAGE = new Literal(',"message":"');
const LITERALS: readonly (readonly [Buffer, boolean | null])[] = [
  [Buffer.from("true"), true],
  [Buffer.from("false"), false],
  [Buffer.from("null"), null],
];

function hasBytes(b: Buffer, at: number, literal: Buffer): boolean {
  for (let k = 0; k < literal.length; k++) if (b[at + k] !== literal[k]) return false;
  return true;
}

/**
 * The JSON string whose opening quote is at `open`; r.pos is left after its closing quote. A string without
 * escapes is decoded from its bytes (a raw control character makes it invalid JSON: not taken); one with
 * escapes is found by skipping them and handed to JSON.parse, which also checks them.
 */
function readString(r: Reader, open: number): Read<string> {
  const close = plainStringEnd(r, open + 1);
  if (close === ESCAPED) return readEscapedString(r, open + 1);
  if (close < 0) return NOT_TAKEN;
  r.pos = close + 1;
  return r.b.toString("utf8", open + 1, close);
}

/** plainStringEnd's answer for a string that holds an escape. */
const ESCAPED = -2;

/**
 * The closing quote of the string starting at `start` when it holds no escape and no raw control character;
 * ESCAPED when it holds an escape; -1 when it is not a string (no closing quote, or a control character).
 */
function plainStringEnd(r: Reader, start: number): number {
  const b = r.b;
  const close = b.indexOf(34, start);
  if (close < 0) return -1;
  if (r.backslash < start) {
    const next = b.indexOf(92, start);
    r.backslash = next < 0 ? b.length : next;
  }
  if (r.backslash < close) return ESCAPED;
  return controlIn(r, start, close) ? -1 : close;
}

/**
 * True when a byte below 0x20 is in [start, end): sixteen bytes a round, as four aligned words (the test of
 * json-bytes.ts's controlAt on each), then byte by byte from the first round that may hold one.
 */
function controlIn(r: Reader, start: number, end: number): boolean {
  const b = r.b;
  const words = r.words;
  const base = r.wordStart;
  let k = start;
  while (k < end && ((k - base) & 3) !== 0) if ((b[k++] as number) < 32) return true;
  if (k < end) {
    // k is on a word: on, four words a round, to the first round that may hold one.
    let w = (k - base) >> 2;
    const stop = (end - base) >> 2;
    for (; w + 4 <= stop; w += 4) {
      const x = words[w] as number;
      const y = words[w + 1] as number;
      const z = words[w + 2] as number;
      const v = words[w + 3] as number;
      if (
        (((x - 0x20202020) & ~x) |
          ((y - 0x20202020) & ~y) |
          ((z - 0x20202020) & ~z) |
          ((v - 0x20202020) & ~v)) &
        0x80808080
      )
        break;
    }
    k = base + 4 * w;
  }
  for (; k < end; k++) if ((b[k] as number) < 32) return true;
  return false;
}

function readEscapedString(r: Reader, start: number): Read<string> {
  const b = r.b;
  let i = start;
  for (;;) {
    const c = b[i];
    if (c === undefined) return NOT_TAKEN;
    if (c === 34) break;
    i += c === 92 ? 2 : 1;
  }
  try {
    const value = JSON.parse(b.toString("utf8", start - 1, i + 1)) as string;
    r.pos = i + 1;
    return value;
  } catch {
    return NOT_TAKEN;
  }
}

/** The JSON number at `i` (r.pos left after it). */
function readNumber(r: Reader, i: number): Read<number> {
  const b = r.b;
  const end = jsonNumberEnd(b, i);
  if (end < 0) return NOT_TAKEN;
  r.pos = end;
  // Epoch milliseconds, the common case: up to 15 digits are exact in a double, summed as they are read.
  if (end - i <= 15 && b[i] !== 45) {
    let n = 0;
    for (let k = i; k < end; k++) {
      const d = (b[k] as number) - 48;
      if (d < 0 || d > 9) return Number(b.toString("latin1", i, end));
      n = n * 10 + d;
    }
    return n;
  }
  return Number(b.toString("latin1", i, end));
}

/** A string, number, true, false or null at `i`; an array of those when `arrays`. Anything else: not taken. */
function readScalar(r: Reader, i: number, arrays: boolean): Read<unknown> {
  const b = r.b;
  const c = b[i];
  if (c === 34) return readString(r, i);
  if (c === 45 || (c !== undefined && c >= 48 && c <= 57)) return readNumber(r, i);
  for (const [literal, value] of LITERALS) {
    if (hasBytes(b, i, literal)) {
      r.pos = i + literal.length;
      return value;
    }
  }
  if (c !== 91 || !arrays) return NOT_TAKEN;
  const items: unknown[] = [];
  i = jsonSpace(b, i + 1);
  if (b[i] === 93) {
    r.pos = i + 1;
    return items;
  }
  for (;;) {
    const item = readScalar(r, i, false);
    if (item === NOT_TAKEN) return NOT_TAKEN;
    items.push(item);
    i = jsonSpace(b, r.pos);
    if (b[i] === 44) {
      i = jsonSpace(b, i + 1);
      continue;
    }
    if (b[i] !== 93) return NOT_TAKEN;
    r.pos = i + 1;
    return items;
  }
}

/** Past `"key" :` at `i` (whitespace allowed around the colon), or -1 when the key there is not `key`. */
function afterKey(b: Buffer, i: number, key: Buffer): number {
  if (!hasBytes(b, i, key)) return -1;
  i = jsonSpace(b, i + key.length);
  return b[i] === 58 ? jsonSpace(b, i + 1) : -1;
}

function newColumns(capacity: number): EventColumns {
  return {
    count: 0,
    timestamps: new Float64Array(capacity),
    idAt: new Int32Array(2 * capacity),
    messageAt: new Int32Array(2 * capacity),
    ids: [],
    messages: [],
  };
}

/** `c` with room for one more event. */
function roomFor(c: EventColumns): EventColumns {
  if (c.count < c.timestamps.length) return c;
  const grown = newColumns(2 * c.timestamps.length);
  grown.count = c.count;
  grown.timestamps.set(c.timestamps);
  grown.idAt.set(c.idAt);
  grown.messageAt.set(c.messageAt);
  grown.ids = c.ids;
  grown.messages = c.messages;
  return grown;
}

/**
 * The string at `open` as event column `k` of `at`/`strings`: its position in the bytes when it holds no escape,
 * else the string itself (position -1). False when it is not a string.
 */
function readColumnString(
  r: Reader,
  open: number,
  k: number,
  at: Int32Array,
  strings: (string | undefined)[],
): boolean {
  const close = plainStringEnd(r, open + 1);
  if (close >= 0) {
    at[2 * k] = open + 1;
    at[2 * k + 1] = close;
    r.pos = close + 1;
    return true;
  }
  if (close !== ESCAPED) return false;
  const value = readEscapedString(r, open + 1);
  if (value === NOT_TAKEN) return false;
  at[2 * k] = -1;
  while (strings.length < k) strings.push(undefined);
  strings[k] = value;
  return true;
}

/**
 * Event `k` at `i` when it is laid out exactly as CloudWatch Logs writes it (no whitespace, a timestamp of at most
 * 15 digits, an id and a message without escapes): the position after its closing brace, else -1
 * (readEvent then reads it, or finds what is wrong with it).
 */
function readCloudWatchEvent(r: Reader, i: number, c: EventColumns, k: number): number {
  const b = r.b;
  const view = r.view;
  if (!EVENT_HEAD.at(view, i)) return -1;
  const idStart = i + EVENT_HEAD.length;
  const idEnd = plainStringEnd(r, idStart);
  if (idEnd < 0 || !AFTER_ID.at(view, idEnd)) return -1;
  let j = idEnd + AFTER_ID.length;
  const timeStart = j;
  let timestamp = 0;
  for (;;) {
    const d = (b[j] as number) - 48;
    if (!(d >= 0 && d <= 9)) break;
    timestamp = timestamp * 10 + d;
    j++;
  }
  const digits = j - timeStart;
  if (digits === 0 || digits > 15 || (digits > 1 && b[timeStart] === 48)) return -1;
  if (!BEFORE_MESSAGE.at(view, j)) return -1;
  const messageStart = j + BEFORE_MESSAGE.length;
  const close = plainStringEnd(r, messageStart);
  if (close < 0 || b[close + 1] !== 125) return -1;
  c.idAt[2 * k] = idStart;
  c.idAt[2 * k + 1] = idEnd;
  c.timestamps[k] = timestamp;
  c.messageAt[2 * k] = messageStart;
  c.messageAt[2 * k + 1] = close;
  return close + 2;
}

/** Event `k` at `i`, `{"id": string, "timestamp": number, "message": string}` with any whitespace: past it, or -1. */
function readEvent(r: Reader, i: number, c: EventColumns, k: number): number {
  const b = r.b;
  if (b[i] !== 123) return -1;
  i = afterKey(b, jsonSpace(b, i + 1), ID_KEY);
  if (i < 0 || b[i] !== 34) return -1;
  if (!readColumnString(r, i, k, c.idAt, c.ids)) return -1;
  i = jsonSpace(b, r.pos);
  if (b[i] !== 44) return -1;
  i = afterKey(b, jsonSpace(b, i + 1), TIMESTAMP_KEY);
  if (i < 0) return -1;
  const timestamp = readNumber(r, i);
  // A number too large for a double (1e400) reads as Infinity: left to the checked path, which refuses it.
  if (timestamp === NOT_TAKEN || !Number.isFinite(timestamp)) return -1;
  c.timestamps[k] = timestamp;
  i = jsonSpace(b, r.pos);
  if (b[i] !== 44) return -1;
  i = afterKey(b, jsonSpace(b, i + 1), MESSAGE_KEY);
  if (i < 0 || b[i] !== 34) return -1;
  if (!readColumnString(r, i, k, c.messageAt, c.messages)) return -1;
  i = jsonSpace(b, r.pos);
  return b[i] === 125 ? i + 1 : -1;
}

/** The `logEvents` array at `i`, each event exactly `{"id": string, "timestamp": number, "message": string}`. */
function readEvents(r: Reader, i: number): Read<EventColumns> {
  const b = r.b;
  let c = newColumns(Math.max(16, b.length >> 8));
  i = jsonSpace(b, i + 1);
  if (b[i] === 93) {
    r.pos = i + 1;
    return c;
  }
  for (;;) {
    c = roomFor(c);
    const k = c.count;
    let next = readCloudWatchEvent(r, i, c, k);
    if (next < 0) next = readEvent(r, i, c, k);
    if (next < 0) return NOT_TAKEN;
    c.count = k + 1;
    i = jsonSpace(b, next);
    if (b[i] === 44) {
      i = jsonSpace(b, i + 1);
      continue;
    }
    if (b[i] !== 93) return NOT_TAKEN;
    r.pos = i + 1;
    return c;
  }
}

/** True when the id of every event read from the bytes (not through JSON.parse) is valid UTF-8. */
function idsAreUtf8(b: Buffer, c: EventColumns): boolean {
  for (let k = 0; k < c.count; k++) {
    const start = c.idAt[2 * k] as number;
    if (start >= 0 && !isUtf8(b.subarray(start, c.idAt[2 * k + 1]))) return false;
  }
  return true;
}

/** A delivery as the reader answers it: the envelope (every key but `logEvents`) and the events. */
export interface ReadDelivery {
  envelope: Record<string, unknown>;
  events: DeliveredEvents;
}

/**
 * The delivery in `bytes` as JSON.parse would return it, or undefined when it is not in CloudWatch Logs' layout
 * (see the top of this file): the caller then parses it with JSON.parse, which also reports invalid JSON. The
 * events may be scanned in place (DeliveredEvents#scan), which reads `bytes` and writes nothing into them.
 */
export function readDelivery(bytes: Buffer): ReadDelivery | undefined {
  const b = bytes;
  const wordStart = (4 - (b.byteOffset & 3)) & 3;
  const r: Reader = {
    b,
    view: new DataView(b.buffer, b.byteOffset, b.length),
    words: new Int32Array(b.buffer, b.byteOffset + wordStart, Math.max(0, (b.length - wordStart) >> 2)),
    wordStart,
    pos: 0,
    backslash: -1,
  };
  let i = jsonSpace(b, 0);
  if (b[i] !== 123) return undefined;
  const envelope: Record<string, unknown> = {};
  let columns: EventColumns | undefined;
  i = jsonSpace(b, i + 1);
  if (b[i] !== 125) {
    for (;;) {
      if (b[i] !== 34) return undefined;
      const key = readString(r, i);
      // An own "__proto__" is what JSON.parse makes; assigning it would set the prototype instead.
      if (key === NOT_TAKEN || key === "__proto__") return undefined;
      i = jsonSpace(b, r.pos);
      if (b[i] !== 58) return undefined;
      i = jsonSpace(b, i + 1);
      if (key === "logEvents") {
        // Anything but an array of events is left to JSON.parse and the schema, which say what is wrong with it.
        const events = b[i] === 91 ? readEvents(r, i) : NOT_TAKEN;
        if (events === NOT_TAKEN) return undefined;
        columns = events;
      } else {
        const value = readScalar(r, i, true);
        if (value === NOT_TAKEN) return undefined;
        envelope[key] = value;
      }
      i = jsonSpace(b, r.pos);
      if (b[i] === 44) {
        i = jsonSpace(b, i + 1);
        continue;
      }
      if (b[i] !== 125) return undefined;
      break;
    }
  }
  if (columns === undefined || jsonSpace(b, i + 1) !== b.length) return undefined;
  // Ids are hashed from their bytes (DeliveredEvents#forEachId, #updateWithIds) as the UTF-8 of the strings JSON.parse
  // gives, which bytes that are not UTF-8 are not (they decode to U+FFFD): such a delivery is left to JSON.parse.
  // One native check of the whole delivery (some 30 µs a megabyte), the ids' own only when it fails.
  if (!isUtf8(b) && !idsAreUtf8(b, columns)) return undefined;
  return { envelope, events: new DeliveredEvents(b, columns) };
}
