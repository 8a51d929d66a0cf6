// Reads a CloudWatch Logs subscription delivery (the gunzipped JSON of `awslogs.data`) straight from its bytes.
//
// JSON.parse of a delivery costs more than gunzip and base64 together: it decodes the whole text to a string,
// then builds every value through a general parser. CloudWatch Logs writes one layout: an envelope of strings and
// an array of strings, and `logEvents`, objects with exactly `id`, `timestamp` and `message`, in that order. This
// reader takes that layout (whitespace anywhere JSON allows it, envelope keys in any order, envelope values that
// are any string, number, literal or array of those) and answers
// undefined for anything else — another layout, invalid JSON, a nested value it does not expect — so that the
// caller parses the text with JSON.parse instead. When it answers, the value is what JSON.parse would return
// for the same bytes decoded as UTF-8: strings are decoded one at a time from the same bytes (a string's quotes
// are ASCII, so they never split a character), and a string holding an escape goes through JSON.parse itself.
import { controlAt, jsonNumberEnd, jsonSpace } from "./json-bytes.ts";

/** Where a read stands: the bytes, and the next backslash at or after the last string read (b.length: none). */
interface Reader {
  b: Buffer;
  view: DataView;
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
  const b = r.b;
  const start = open + 1;
  const close = b.indexOf(34, start);
  if (close < 0) return NOT_TAKEN;
  if (r.backslash < start) {
    const next = b.indexOf(92, start);
    r.backslash = next < 0 ? b.length : next;
  }
  if (r.backslash < close) return readEscapedString(r, start);
  if (controlAt(b, r.view, start, close) < close) return NOT_TAKEN;
  r.pos = close + 1;
  return b.toString("utf8", start, close);
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

interface DeliveredEvent {
  id: string;
  timestamp: number;
  message: string;
}

/** The `logEvents` array at `i`, each event exactly `{"id": string, "timestamp": number, "message": string}`. */
function readEvents(r: Reader, i: number): Read<DeliveredEvent[]> {
  const b = r.b;
  const events: DeliveredEvent[] = [];
  i = jsonSpace(b, i + 1);
  if (b[i] === 93) {
    r.pos = i + 1;
    return events;
  }
  for (;;) {
    if (b[i] !== 123) return NOT_TAKEN;
    i = afterKey(b, jsonSpace(b, i + 1), ID_KEY);
    if (i < 0 || b[i] !== 34) return NOT_TAKEN;
    const id = readString(r, i);
    if (id === NOT_TAKEN) return NOT_TAKEN;
    i = jsonSpace(b, r.pos);
    if (b[i] !== 44) return NOT_TAKEN;
    i = afterKey(b, jsonSpace(b, i + 1), TIMESTAMP_KEY);
    if (i < 0) return NOT_TAKEN;
    const timestamp = readNumber(r, i);
    if (timestamp === NOT_TAKEN) return NOT_TAKEN;
    i = jsonSpace(b, r.pos);
    if (b[i] !== 44) return NOT_TAKEN;
    i = afterKey(b, jsonSpace(b, i + 1), MESSAGE_KEY);
    if (i < 0 || b[i] !== 34) return NOT_TAKEN;
    const message = readString(r, i);
    if (message === NOT_TAKEN) return NOT_TAKEN;
    i = jsonSpace(b, r.pos);
    if (b[i] !== 125) return NOT_TAKEN;
    events.push({ id, timestamp, message });
    i = jsonSpace(b, i + 1);
    if (b[i] === 44) {
      i = jsonSpace(b, i + 1);
      continue;
    }
    if (b[i] !== 93) return NOT_TAKEN;
    r.pos = i + 1;
    return events;
  }
}

/**
 * The delivery in `bytes` as JSON.parse would return it, or undefined when it is not in CloudWatch Logs' layout
 * (see the top of this file): the caller then parses it with JSON.parse, which also reports invalid JSON.
 */
export function readDelivery(bytes: Buffer): Record<string, unknown> | undefined {
  const b = bytes;
  const r: Reader = { b, view: new DataView(b.buffer, b.byteOffset, b.length), pos: 0, backslash: -1 };
  let i = jsonSpace(b, 0);
  if (b[i] !== 123) return undefined;
  const out: Record<string, unknown> = {};
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
      const value = key === "logEvents" && b[i] === 91 ? readEvents(r, i) : readScalar(r, i, true);
      if (value === NOT_TAKEN) return undefined;
      out[key] = value;
      i = jsonSpace(b, r.pos);
      if (b[i] === 44) {
        i = jsonSpace(b, i + 1);
        continue;
      }
      if (b[i] !== 125) return undefined;
      break;
    }
  }
  return jsonSpace(b, i + 1) === b.length ? out : undefined;
}
