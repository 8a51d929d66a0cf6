// The delivery reader answers exactly what JSON.parse answers, or nothing (and the caller uses JSON.parse): checked
// on CloudWatch Logs' layout, on every other JSON, and on bytes that are not JSON at all.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readDelivery } from "../../functions/core/delivery-reader.ts";

const RUNS = { numRuns: 1500 };

/** What the reader answered, as JSON.parse would give it: the envelope with the events as objects. */
function asParsed(bytes: Buffer): unknown {
  const read = readDelivery(bytes);
  return read === undefined ? undefined : { ...read.envelope, logEvents: read.events.toArray() };
}

/** Whatever the reader answers for `bytes` must be JSON.parse's value for their UTF-8 text. */
function agreesWithJsonParse(bytes: Buffer): boolean {
  const read = asParsed(bytes);
  if (read === undefined) return false;
  expect(read).toStrictEqual(JSON.parse(bytes.toString("utf8")));
  return true;
}

/** Text of every kind a message can hold: escapes, control characters, non-ASCII, lone surrogates, quotes. */
const message = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.constantFrom(
    "calico-packet: IN=eth0 OUT=cali1 SRC=192.168.1.2 DST=192.168.3.4 LEN=60 PROTO=TCP SPT=1 DPT=2",
    '{"log":"Apr 19 04:52:19 node kernel: calico-packet: IN=eth0\\n"}',
    'tab\there, new\nline, quote " and backslash \\',
    "é ü 中文 😀",
    "\u0000\u001f\u007f",
    "\ud800 lone",
  ),
);

const event = fc.record({
  id: fc.oneof(fc.stringMatching(/^[0-9]{1,56}$/), fc.string({ maxLength: 8 })),
  timestamp: fc.oneof(
    fc.integer({ min: 0, max: 4_102_444_800_000 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(-0, 1e21, 2 ** 60, 0.5, 1_713_499_200_123.5),
  ),
  message,
});

const delivery = fc.record({
  messageType: fc.constantFrom("DATA_MESSAGE", "CONTROL_MESSAGE"),
  owner: fc.stringMatching(/^[0-9]{12}$/),
  logGroup: fc.string({ maxLength: 30 }),
  logStream: fc.string({ maxLength: 30 }),
  subscriptionFilters: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }),
  logEvents: fc.array(event, { maxLength: 12 }),
});

/** JSON text of `value` with JSON's whitespace put wherever the layout allows it. */
function spaced(value: unknown, space: string): string {
  return JSON.stringify(value, null, space);
}

describe("readDelivery", () => {
  it("reads CloudWatch Logs' layout, compact or spaced, exactly as JSON.parse does", () => {
    fc.assert(
      fc.property(delivery, fc.constantFrom("", " ", "\t", "\r\n "), (payload, space) => {
        const text = space === "" ? JSON.stringify(payload) : spaced(payload, space);
        // It is this layout that the reader is there for: it must take it, not leave it to JSON.parse.
        expect(agreesWithJsonParse(Buffer.from(text))).toBe(true);
      }),
      RUNS,
    );
  });

  it("takes envelope keys in any order, and duplicate keys as JSON.parse does (the last value, first place)", () => {
    const text =
      '{"logEvents":[{"id":"1","timestamp":2,"message":"m"}],"owner":"x","policyLevel":"ACCOUNT_LEVEL_POLICY",' +
      '"owner":"y","flag":true,"none":null,"n":-1.5e3,"subscriptionFilters":[]}';
    expect(agreesWithJsonParse(Buffer.from(text))).toBe(true);
    expect(Object.keys(readDelivery(Buffer.from(text))?.envelope ?? {})).toEqual([
      "owner",
      "policyLevel",
      "flag",
      "none",
      "n",
      "subscriptionFilters",
    ]);
  });

  it.each([
    [
      "an event with another key",
      '{"logEvents":[{"id":"1","timestamp":2,"message":"m","extractedFields":{}}]}',
    ],
    ["an event's keys in another order", '{"logEvents":[{"timestamp":2,"id":"1","message":"m"}]}'],
    ["a nested envelope value", '{"owner":{"a":1},"logEvents":[]}'],
    ["an own __proto__ key", '{"__proto__":"x","logEvents":[]}'],
    ["a key spelled with an escape", '{"logEvents":[{"\\u0069d":"1","timestamp":2,"message":"m"}]}'],
    ["a raw control character in a string", '{"logEvents":[{"id":"1","timestamp":2,"message":"a\tb"}]}'],
    ["a leading zero", '{"logEvents":[{"id":"1","timestamp":02,"message":"m"}]}'],
    ["a stray byte after an event's message", '{"logEvents":[{"id":"1","timestamp":2,"message":"x"X]}'],
    [
      "a stray byte after a message, before the next event",
      '{"logEvents":[{"id":"1","timestamp":2,"message":"x"X,{"id":"2","timestamp":3,"message":"y"}]}',
    ],
    ["a trailing comma", '{"logEvents":[{"id":"1","timestamp":2,"message":"m"},]}'],
    ["text after the value", '{"logEvents":[]} x'],
    ["an unterminated string", '{"logEvents":[{"id":"1","timestamp":2,"message":"m'],
    ["an invalid escape", '{"logEvents":[{"id":"1","timestamp":2,"message":"\\x"}]}'],
    ["a byte-order mark", '\ufeff{"logEvents":[]}'],
    ["a root that is not an object", "[]"],
  ])("leaves %s to JSON.parse", (_what, text) => {
    expect(readDelivery(Buffer.from(text))).toBeUndefined();
  });

  it("finds a raw control character at any place of a string of any length, and none outside strings", () => {
    // Strings are checked a word at a time from the first aligned byte: every alignment, length and place.
    for (let pad = 0; pad < 4; pad++) {
      for (let length = 0; length < 24; length++) {
        const text = (value: string) =>
          Buffer.from(`${" ".repeat(pad)}{"logEvents":[{"id":"1","timestamp":2,"message":"${value}"}]}`);
        expect(agreesWithJsonParse(text("a".repeat(length)))).toBe(true);
        // Whitespace around the values, tabs and newlines among it, is not inside a string.
        expect(
          agreesWithJsonParse(Buffer.from(`\t{\n\t"x":\t"${"b".repeat(length)}",\r\n"logEvents":[]}`)),
        ).toBe(true);
        for (let at = 0; at < length; at++) {
          const value = `${"a".repeat(at)}\u0001${"a".repeat(length - at - 1)}`;
          expect(readDelivery(text(value))).toBeUndefined();
        }
      }
    }
  });

  it("reads escaped and non-ASCII strings as JSON.parse does", () => {
    const text = JSON.stringify({
      logEvents: [
        { id: "1", timestamp: 2, message: 'quote " backslash \\ newline \n tab \t \u0001 \ud83d' },
        { id: "2", timestamp: 3, message: "é 中文 😀 plain after" },
      ],
    });
    expect(agreesWithJsonParse(Buffer.from(text))).toBe(true);
  });

  it("never answers differently from JSON.parse on any JSON text", () => {
    // As a member of a delivery-shaped object (a bare JSON value is never one: the reader declines it, and
    // declining is always allowed). The reader must take a good share of them, or this checks nothing.
    let read = 0;
    fc.assert(
      fc.property(fc.json({ maxDepth: 3 }), (text) => {
        if (agreesWithJsonParse(Buffer.from(`{"value":${text},"logEvents":[]}`))) read++;
      }),
      RUNS,
    );
    expect(read).toBeGreaterThan(RUNS.numRuns / 4);
  });

  it("never answers differently from JSON.parse on a delivery with bytes changed, cut or inserted", () => {
    fc.assert(
      fc.property(
        delivery,
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), op: fc.nat(2) }), {
          minLength: 1,
          maxLength: 4,
        }),
        (payload, edits) => {
          let bytes = Buffer.from(JSON.stringify(payload));
          for (const { at, byte, op } of edits) {
            const i = at % (bytes.length + 1);
            const b = Buffer.from([byte]);
            if (op === 0) bytes = Buffer.concat([bytes.subarray(0, i), b, bytes.subarray(i + 1)]);
            else if (op === 1) bytes = Buffer.concat([bytes.subarray(0, i), b, bytes.subarray(i)]);
            else bytes = bytes.subarray(0, i);
          }
          let parsed: unknown;
          try {
            parsed = JSON.parse(bytes.toString("utf8"));
          } catch {
            expect(readDelivery(bytes)).toBeUndefined();
            return;
          }
          const read = asParsed(bytes);
          if (read !== undefined) expect(read).toStrictEqual(parsed);
        },
      ),
      RUNS,
    );
  });

  it("decodes invalid UTF-8 in a string as the whole text's decoding does (U+FFFD per bad sequence)", () => {
    const head = Buffer.from('{"logEvents":[{"id":"1","timestamp":2,"message":"a');
    const tail = Buffer.from('"}]}');
    for (const bad of [[0xff], [0xe2, 0x82], [0xc3], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80], [0x80, 0x80]]) {
      expect(agreesWithJsonParse(Buffer.concat([head, Buffer.from(bad), tail]))).toBe(true);
    }
  });
});
