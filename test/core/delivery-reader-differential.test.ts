// decodeDelivery reads most deliveries with the hand-written reader (delivery-reader.ts) and the rest with
// JSON.parse. Whichever path it takes, what it gives must be what JSON.parse of the gunzipped text and the
// subscription checks give: the same envelope, the same events, the same acceptance or the same complaint — and the
// same identity (contribution, event keys: coverage stores them, and a redrive computes them from strings). Checked
// here against a reference written only with JSON.parse and the Powertools envelope schema, on JSON text built
// token by token: every spelling of strings (escapes, surrogates, raw bytes that are not UTF-8, control
// characters), of numbers (exponents, fractions, signs, leading zeros, more digits than a double holds), whitespace
// between any two tokens, keys in any order, duplicated, escaped, extra or missing, values of the wrong type,
// nested values, text before and after the JSON, and bytes changed at random.
import { inspect, isDeepStrictEqual } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { CloudWatchLogsDecodeSchema } from "@aws-lambda-powertools/parser/schemas/cloudwatch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventKey, eventKeys } from "../../functions/core/coverage.ts";
import { readDelivery } from "../../functions/core/delivery-reader.ts";
import {
  CorruptPayloadError,
  contributionOf,
  decodeDelivery,
  decodeSubscriptionData,
} from "../../functions/core/subscription-payload.ts";

const RUNS = { numRuns: 2500 };

interface Event {
  id: string;
  timestamp: number;
  message: string;
}

/** What a decoding of a delivery gives, reduced to plain values. */
type Outcome =
  | {
      ok: true;
      envelope: Record<string, unknown>;
      events: Event[];
      /** contributionOf the delivery and the eventKey of each event (what coverage stores). */
      contribution: string;
      keys: string[];
    }
  | { ok: false; message: string };

const ENVELOPE = CloudWatchLogsDecodeSchema.omit({ logEvents: true });

/** The events' complaint, by the rules of subscription-payload.ts: an array of at least one full event. */
function eventsComplaint(events: unknown): string | undefined {
  if (!Array.isArray(events)) return "logEvents: expected an array";
  if (events.length === 0) return "logEvents: expected at least one event";
  for (const [i, e] of events.entries()) {
    if (typeof e !== "object" || e === null) return `logEvents.${i}: expected an object`;
    if (typeof e.id !== "string") return `logEvents.${i}.id: expected a string`;
    if (typeof e.timestamp !== "number" || !Number.isFinite(e.timestamp)) {
      return `logEvents.${i}.timestamp: expected a number`;
    }
    if (typeof e.message !== "string") return `logEvents.${i}.message: expected a string`;
  }
  return undefined;
}

/** The reference: JSON.parse of the UTF-8 text, then the Powertools envelope schema and the events' checks. */
function reference(json: Buffer): Outcome {
  let value: unknown;
  try {
    value = JSON.parse(json.toString("utf8"));
  } catch (error) {
    return { ok: false, message: `awslogs.data does not hold JSON: ${(error as Error).message}` };
  }
  const logEvents = (value as { logEvents?: unknown } | null)?.logEvents;
  const complaint = eventsComplaint(logEvents);
  const envelope = ENVELOPE.safeParse(value);
  // CloudWatch Logs sends two message types; the schema takes any string.
  const type = envelope.success ? envelope.data.messageType : undefined;
  const typeComplaint =
    type === undefined || type === "DATA_MESSAGE" || type === "CONTROL_MESSAGE"
      ? undefined
      : `messageType: expected DATA_MESSAGE or CONTROL_MESSAGE, got ${JSON.stringify(type)}`;
  if (!envelope.success || complaint !== undefined || typeComplaint !== undefined) {
    const issues = envelope.success
      ? []
      : envelope.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    if (typeComplaint !== undefined) issues.push(typeComplaint);
    if (complaint !== undefined) issues.push(complaint);
    return { ok: false, message: `awslogs.data is not a subscription payload: ${issues.join("; ")}` };
  }
  const { logEvents: _, ...fields } = value as Record<string, unknown>;
  // decodeDelivery puts its events under `events`, over an envelope field of that name (either path alike).
  delete fields.events;
  const events = (logEvents as Event[]).map(({ id, timestamp, message }) => ({ id, timestamp, message }));
  const group = fields.logGroup as string;
  const stream = fields.logStream as string;
  return {
    ok: true,
    envelope: fields,
    events,
    contribution: contributionOf({ logGroup: group, logStream: stream, logEvents: events }),
    keys: events.map((e) => eventKey(e.id)),
  };
}

/** decodeDelivery's outcome; anything it throws but CorruptPayloadError fails the test. */
function decoded(data: string): Outcome {
  let delivery: ReturnType<typeof decodeDelivery>;
  try {
    delivery = decodeDelivery(data);
  } catch (error) {
    if (!(error instanceof CorruptPayloadError)) throw error;
    return { ok: false, message: error.message };
  }
  const { events, ...envelope } = delivery;
  expect(events.node).toBe(envelope.logStream);
  const objects = events.toArray();
  // Each accessor, not only toArray.
  for (const [i, e] of objects.entries()) {
    expect(events.id(i)).toBe(e.id);
    expect(Object.is(events.timestamp(i), e.timestamp)).toBe(true);
    expect(events.message(i)).toBe(e.message);
  }
  // Selected events (the pipeline's retries) keep their strings, wherever they are kept.
  const backwards = objects.map((_, i) => objects.length - 1 - i);
  expectIdentical(
    events.select(backwards).toArray(),
    backwards.map((i) => objects[i]),
  );
  expectIdentical(decodeSubscriptionData(data), { ...envelope, logEvents: objects });
  return {
    ok: true,
    envelope,
    events: objects,
    contribution: contributionOf({ ...envelope, logEvents: events }),
    keys: eventKeys(events),
  };
}

/**
 * `got` is `want`, as isDeepStrictEqual sees it: -0 is not 0, an own "__proto__" key is a key, and an own
 * "constructor" key is a value (toStrictEqual takes it for the object's class). toStrictEqual shows a difference.
 */
function expectIdentical(got: unknown, want: unknown): void {
  if (!isDeepStrictEqual(got, want)) {
    expect(got).toStrictEqual(want);
    expect.unreachable(`${inspect(got)} is not ${inspect(want)}`);
  }
}

/** Compares both paths on `json` (gzipped as CloudWatch Logs sends it); true when the reader took it. */
function expectSame(json: Buffer, split = -1): boolean {
  const cut = split % (json.length + 1);
  const gz =
    split < 0 ? gzipSync(json) : join([gzipSync(json.subarray(0, cut)), gzipSync(json.subarray(cut))]);
  expect(gunzipSync(gz).equals(json)).toBe(true);
  const want = reference(json);
  const got = decoded(gz.toString("base64"));
  if (want.ok && got.ok) {
    expectIdentical(got.envelope, want.envelope);
    expect(Object.keys(got.envelope)).toEqual(Object.keys(want.envelope));
    expectIdentical(got.events, want.events);
    expect(got.keys).toEqual(want.keys);
    expect(got.contribution).toBe(want.contribution);
  } else {
    expect(got).toStrictEqual(want);
  }
  return readDelivery(Buffer.from(json)) !== undefined;
}

// ---- JSON text, token by token ---------------------------------------------------------------------------------

const bytes = (s: string) => Buffer.from(s, "utf8");
const join = (parts: readonly Buffer[]) => Buffer.concat(parts);

/** Whitespace before a token: mostly none (CloudWatch Logs writes none), else any JSON allows. */
const space = fc.oneof(
  { weight: 8, arbitrary: fc.constant("") },
  { weight: 1, arbitrary: fc.constantFrom(" ", "\t", "\n", "\r\n", " \t\r\n  ") },
);
const token = (a: fc.Arbitrary<Buffer>) => fc.tuple(space, a).map(([s, b]) => join([bytes(s), b]));
const punct = (c: string) => space.map((s) => bytes(s + c));

const hex4 = (n: number, upper: boolean) => {
  const h = n.toString(16).padStart(4, "0");
  return upper ? h.toUpperCase() : h;
};
/** A \uXXXX escape, surrogates (lone or paired) often. */
const unicodeEscape = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0xd800, max: 0xdfff }),
      fc.integer({ min: 0, max: 0x7f }),
    ),
    fc.boolean(),
  )
  .map(([n, upper]) => `\\u${hex4(n, upper)}`);
const pairEscape = fc
  .tuple(fc.integer({ min: 0xd800, max: 0xdbff }), fc.integer({ min: 0xdc00, max: 0xdfff }))
  .map(([hi, lo]) => `\\u${hex4(hi, false)}\\u${hex4(lo, true)}`);
const escaped = fc.oneof(
  fc.constantFrom('\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"),
  unicodeEscape,
  pairEscape,
);
/** `s` without what a JSON string cannot hold as is: quotes, backslashes, control characters. */
const plain = (s: string) => [...s].filter((c) => c !== '"' && c !== "\\" && c >= " ").join("");
/** A piece of a string's text as bytes: plain, non-ASCII, a lone surrogate (as UTF-8 writes it: U+FFFD) or escaped. */
const cleanPiece: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 30, arbitrary: fc.string({ maxLength: 16 }).map((s) => bytes(plain(s))) },
  { weight: 6, arbitrary: fc.string({ unit: "grapheme", maxLength: 4 }).map((s) => bytes(plain(s))) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 4 }).map((s) => bytes(plain(s))) },
  { weight: 6, arbitrary: escaped.map(bytes) },
);
/** A piece that is not UTF-8, or not allowed in a JSON string (a control character, a bad escape). */
const dirtyPiece: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 4 }).map((a) => Buffer.from(a.map((x) => x | 0x80))),
  fc
    .constantFrom(
      [0xed, 0xa0, 0x80],
      [0xc0, 0xaf],
      [0xef, 0xbb, 0xbf],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
    )
    .map((a) => Buffer.from(a)),
  fc
    .constantFrom("\u0000", "\u0001", "\t", "\n", "\u001f", "\u007f", "\\x", "\\u12", "\\U0041", "\\'", "\\")
    .map(bytes),
);
/** A string literal: now and then one with a piece that is not UTF-8 or not JSON. */
const stringLiteral = fc
  .oneof(
    { weight: 30, arbitrary: fc.array(cleanPiece, { maxLength: 6 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.array(cleanPiece, { maxLength: 3 }), dirtyPiece, fc.array(cleanPiece, { maxLength: 3 }))
        .map(([a, bad, z]) => [...a, bad, ...z]),
    },
  )
  .map((pieces) => join([bytes('"'), ...pieces, bytes('"')]));
/** A string literal spelling `name`: as is, or with one character (or all) escaped. */
const keyLiteral = (name: string) =>
  fc.oneof(
    { weight: 60, arbitrary: fc.constant(bytes(JSON.stringify(name))) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.nat(), fc.boolean(), fc.boolean()).map(([at, all, upper]) => {
        const k = at % Math.max(1, name.length);
        const spelt = [...name].map((c, i) => (all || i === k ? `\\u${hex4(c.charCodeAt(0), upper)}` : c));
        return bytes(`"${spelt.join("")}"`);
      }),
    },
  );

/** Number text, valid or not: what CloudWatch Logs writes, and every other form the grammar allows or refuses. */
const numberText = fc
  .oneof(
    { weight: 24, arbitrary: fc.integer({ min: 0, max: 4_102_444_800_000 }).map(String) },
    // Around the 15 digits summed by hand: from 17 digits on, a sum digit by digit is often off by an ulp.
    { weight: 3, arbitrary: fc.stringMatching(/^[1-9][0-9]{14,17}$/) },
    { weight: 1, arbitrary: fc.stringMatching(/^-?[1-9][0-9]{13,25}$/) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(
          fc.constantFrom("", "", "-"),
          fc.oneof(fc.constant("0"), fc.stringMatching(/^[1-9][0-9]{0,24}$/)),
          fc.option(fc.stringMatching(/^[0-9]{1,20}$/)),
          fc.option(
            fc.tuple(
              fc.constantFrom("e", "E"),
              fc.constantFrom("", "+", "-"),
              fc.stringMatching(/^[0-9]{1,3}$/),
            ),
          ),
        )
        .map(
          ([sign, int, frac, exp]) =>
            sign + int + (frac === null ? "" : `.${frac}`) + (exp === null ? "" : exp.join("")),
        ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "-0",
        "0.0",
        "-0.0e0",
        "1e3",
        "1E+3",
        "1.5",
        "1713499200123.5",
        "999999999999999",
        "1000000000000000",
        "9007199254740993",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
        "4.9e-324",
        "1e-400",
        "0123",
        "00",
        "-01",
        "01.5",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "Infinity",
        "NaN",
        "0x10",
        "1_000",
      ),
    },
  )
  .map(bytes);
const literal = fc.constantFrom("true", "false", "null", "tru", "nul", "True").map(bytes);

/** Tokens of a JSON value of any kind (objects and arrays nested to `depth`). */
function anyValue(depth: number): fc.Arbitrary<Buffer> {
  const scalar = fc.oneof(token(stringLiteral), token(numberText), token(literal));
  if (depth === 0) return scalar;
  const inner = anyValue(depth - 1);
  const list = (items: fc.Arbitrary<Buffer>) =>
    fc
      .array(items, { maxLength: 3 })
      .chain((xs) =>
        fc
          .array(punct(","), { minLength: xs.length, maxLength: xs.length })
          .map((commas) => join(xs.flatMap((x, i) => (i === 0 ? [x] : [commas[i] as Buffer, x])))),
      );
  return fc.oneof(
    { weight: 3, arbitrary: scalar },
    { weight: 1, arbitrary: fc.tuple(punct("["), list(inner), punct("]")).map(join) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(punct("{"), list(fc.tuple(token(stringLiteral), punct(":"), inner).map(join)), punct("}"))
        .map(join),
    },
  );
}

const member = (key: fc.Arbitrary<Buffer>, value: fc.Arbitrary<Buffer>) =>
  fc.tuple(token(key), punct(":"), value).map(join);
/** Members joined by commas inside braces. */
const object = (members: fc.Arbitrary<Buffer[]>) =>
  members.chain((ms) =>
    fc
      .tuple(punct("{"), fc.array(punct(","), { minLength: ms.length, maxLength: ms.length }), punct("}"))
      .map(([open, commas, close]) =>
        join([open, ...ms.flatMap((m, i) => (i === 0 ? [m] : [commas[i] as Buffer, m])), close]),
      ),
  );

/**
 * Members in their order, or (one time in `1 + steady / 4`) another: shuffled, one dropped, one added, or one
 * repeated with a value of its own (JSON.parse keeps the last value, in the first place).
 */
function arranged(members: fc.Arbitrary<Buffer>[], extra: fc.Arbitrary<Buffer>, steady: number) {
  return fc
    .tuple(
      fc.tuple(...members),
      fc.tuple(...members),
      fc.oneof(
        { weight: steady, arbitrary: fc.constant("as is") },
        { weight: 1, arbitrary: fc.constantFrom("shuffled", "dropped", "repeated", "added") },
      ),
      fc.nat(),
      extra,
      fc.array(fc.nat(), { minLength: members.length, maxLength: members.length }),
    )
    .map(([ms, again, how, at, added, order]) => {
      const k = at % ms.length;
      const place = at % (ms.length + 1);
      switch (how) {
        case "shuffled":
          return ms
            .map((m, i) => [m, order[i] as number] as const)
            .sort((a, b) => a[1] - b[1])
            .map(([m]) => m);
        case "dropped":
          return ms.filter((_, i) => i !== k);
        case "repeated":
          return [...ms.slice(0, place), again[k] as Buffer, ...ms.slice(place)];
        case "added":
          return [...ms.slice(0, place), added, ...ms.slice(place)];
        default:
          return ms;
      }
    });
}

/** A field's usual value, or now and then one of any type. */
const usually = (value: fc.Arbitrary<Buffer>) =>
  fc.oneof({ weight: 60, arbitrary: value }, { weight: 1, arbitrary: anyValue(2) });

const id = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[0-9]{56}$/).map((s) => bytes(`"${s}"`)) },
  { weight: 3, arbitrary: stringLiteral },
);
const message = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        '"calico-packet: IN=eth0 OUT=cali1 SRC=192.168.1.2 DST=192.168.3.4 LEN=60 PROTO=TCP SPT=1 DPT=2"',
        '"{\\"log\\":\\"Apr 19 04:52:19 node kernel: calico-packet: IN=eth0\\\\n\\"}"',
        `"${"x".repeat(70_000)}"`,
      )
      .map(bytes),
  },
  { weight: 6, arbitrary: stringLiteral },
);
const extraMember = member(
  fc.oneof(
    fc
      .constantFrom(
        "extractedFields",
        "owner",
        "logGroup",
        "logStream",
        "id",
        "message",
        "timestamp",
        "logEvents",
        "events",
        "__proto__",
        "constructor",
        "toString",
        "0",
        "10",
        "1",
      )
      .map((k) => bytes(`"${k}"`)),
    stringLiteral,
  ),
  anyValue(2),
);
const event = fc.oneof(
  {
    weight: 60,
    arbitrary: object(
      arranged(
        [
          member(keyLiteral("id"), usually(token(id))),
          member(keyLiteral("timestamp"), usually(token(numberText))),
          member(keyLiteral("message"), usually(token(message))),
        ],
        extraMember,
        160,
      ),
    ),
  },
  { weight: 1, arbitrary: anyValue(1) },
);
const events = fc.oneof(
  {
    weight: 60,
    arbitrary: fc
      .array(event, { maxLength: 8 })
      .chain((es) =>
        fc
          .tuple(punct("["), fc.array(punct(","), { minLength: es.length, maxLength: es.length }), punct("]"))
          .map(([open, commas, close]) =>
            join([open, ...es.flatMap((e, i) => (i === 0 ? [e] : [commas[i] as Buffer, e])), close]),
          ),
      ),
  },
  { weight: 1, arbitrary: anyValue(2) },
);
const text = (a: fc.Arbitrary<string>) => token(a.map((s) => bytes(JSON.stringify(s))));
const envelopeMembers = arranged(
  [
    member(keyLiteral("messageType"), usually(text(fc.constantFrom("DATA_MESSAGE", "CONTROL_MESSAGE")))),
    member(keyLiteral("owner"), usually(text(fc.stringMatching(/^[0-9]{12}$/)))),
    member(keyLiteral("logGroup"), usually(token(stringLiteral))),
    member(keyLiteral("logStream"), usually(token(stringLiteral))),
    member(
      keyLiteral("subscriptionFilters"),
      usually(
        fc
          .array(token(stringLiteral), { maxLength: 3 })
          .chain((fs) =>
            fc
              .tuple(
                punct("["),
                fc.array(punct(","), { minLength: fs.length, maxLength: fs.length }),
                punct("]"),
              )
              .map(([open, commas, close]) =>
                join([open, ...fs.flatMap((f, i) => (i === 0 ? [f] : [commas[i] as Buffer, f])), close]),
              ),
          ),
      ),
    ),
    member(keyLiteral("logEvents"), events),
  ],
  extraMember,
  12,
);

/** `usual`, or now and then one of `rare`. */
const rarely = <T>(usual: T, rare: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 30, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: rare });

/** A whole delivery's text: now and then with something before or after the JSON, or with bytes changed. */
const deliveryText = fc
  .tuple(
    rarely("", fc.constantFrom("\ufeff", "x", "\u0000", "[", " \r\n\t")).map(bytes),
    object(envelopeMembers),
    space.map(bytes),
    rarely("", fc.constantFrom(" x", "}", "\u0000", ",{}", "\ufeff", "\n")).map(bytes),
    fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), op: fc.nat(2) }), {
      maxLength: 2,
    }),
    fc.nat(14),
  )
  .map(([before, root, after, garbage, edits, editing]) => {
    let b = join([before, root, after, garbage]);
    if (editing !== 0) return b;
    for (const { at, byte, op } of edits) {
      const i = at % (b.length + 1);
      const x = Buffer.from([byte]);
      if (op === 0) b = join([b.subarray(0, i), x, b.subarray(i + 1)]);
      else if (op === 1) b = join([b.subarray(0, i), x, b.subarray(i)]);
      else b = b.subarray(0, i);
    }
    return b;
  });

// ---- the tests ---------------------------------------------------------------------------------------------------

const HEAD = '{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/prod/nodes",';
const STREAM = '"logStream":"ip-192-168-74-5","subscriptionFilters":["calico-packet"],"logEvents":';
/** A delivery whose logEvents are `events` (JSON text, or its bytes). */
const withEvents = (events: string | Buffer) => join([bytes(HEAD + STREAM), Buffer.from(events), bytes("}")]);
const ev = (id: string | Buffer, rest = ',"timestamp":1776574339000,"message":"m"}') =>
  join([bytes('{"id":"'), Buffer.from(id), bytes('"'), bytes(rest)]);

describe("decodeDelivery against JSON.parse", () => {
  it("gives what JSON.parse and the subscription checks give, for any delivery text", () => {
    let taken = 0;
    let accepted = 0;
    fc.assert(
      fc.property(deliveryText, fc.integer({ min: -8, max: 4000 }), (json, split) => {
        if (expectSame(json, split)) taken++;
        if (reference(json).ok) accepted++;
      }),
      RUNS,
    );
    // The generators must reach the reader's answers and the subscription's acceptance, not only refusals (about
    // half of the texts are each).
    expect(taken).toBeGreaterThan(RUNS.numRuns / 5);
    expect(accepted).toBeGreaterThan(RUNS.numRuns / 10);
  });

  it("identifies an event whose id is not UTF-8 by the id JSON.parse reads (U+FFFD), on either path", () => {
    // The reader hands an id's bytes to the contribution and the event keys; a redrive (decodeSubscriptionData, then
    // the events as objects) hashes the id's UTF-8. Both must hash the same bytes, or a redrive counts twice.
    for (const bad of [
      [0xff],
      [0x80],
      [0xc3],
      [0xe2, 0x82],
      [0xed, 0xa0, 0x80],
      [0xc0, 0xaf],
      [0xf4, 0x90, 0x80, 0x80],
    ]) {
      const id = join([bytes("3712"), Buffer.from(bad), bytes("01")]);
      // CloudWatch Logs' own layout (the reader's exact path), spaced (its general path), and after a plain event.
      expectSame(withEvents(join([bytes("["), ev(id), bytes("]")])));
      expectSame(withEvents(join([bytes('[{"id":"1","timestamp":1,"message":"m"},'), ev(id), bytes("]")])));
      expectSame(withEvents(join([bytes('[{ "id" : "'), id, bytes('", "timestamp": 2, "message": "m" }]')])));
      // The same events given as objects: the contribution a redrive computes.
      const data = gzipSync(withEvents(join([bytes("["), ev(id), bytes("]")]))).toString("base64");
      const { events, ...envelope } = decodeDelivery(data);
      expect(contributionOf({ ...envelope, logEvents: events })).toBe(
        contributionOf({ ...envelope, logEvents: events.toArray() }),
      );
    }
    // Bytes that are not UTF-8 in a message or the envelope: the ids are still read from the bytes.
    const message = join([bytes('[{"id":"1","timestamp":2,"message":"a'), Buffer.from([0xff]), bytes('"}]')]);
    expect(expectSame(withEvents(message))).toBe(true);
    expect(
      expectSame(join([bytes('{"x":"a'), Buffer.from([0xfe]), bytes('",'), withEvents(message).subarray(1)])),
    ).toBe(true);
  });

  it("agrees on numbers in every form, in the reader's exact layout, spaced and in the envelope", () => {
    for (const n of [
      "-0",
      "0",
      "1e3",
      "1E+3",
      "1.5",
      "-1.5e-3",
      "999999999999999",
      "1000000000000000",
      "9007199254740993",
      "74156903995278446",
      "-74156903995278446",
      "695777319227923000",
      "8729809729464900322",
      "1e400",
      "-1e400",
      "1e-400",
      "0123",
      "00",
      "-",
      "1.",
      "+1",
    ]) {
      expectSame(withEvents(`[{"id":"1","timestamp":${n},"message":"m"}]`));
      expectSame(withEvents(`[{"id":"1","timestamp": ${n} ,"message":"m"}]`));
      expectSame(withEvents(`[{"id":"1","timestamp":1,"message":"m"}],"n":${n}`));
    }
  });

  it.each([
    [
      "escapes in ids and messages",
      '[{"id":"a\\"b\\\\c\\/\\u00e9\\ud83d\\ude00","timestamp":1,"message":"q\\"\\\\\\n\\t\\u0000"}]',
    ],
    ["lone surrogates", '[{"id":"\\ud800","timestamp":1,"message":"\\udfff x \\uDBFF"}]'],
    ["escaped keys", '[{"\\u0069d":"1","tim\\u0065stamp":2,"m\\u0065ssage":"m"}]'],
    ["an escaped logEvents key", '[],"log\\u0045vents":[{"id":"1","timestamp":2,"message":"m"}]'],
    ["duplicate logEvents (the last one counts)", '[{"id":"1","timestamp":2,"message":"m"}],"logEvents":[]'],
    ["duplicate logEvents, the last one full", '[],"logEvents":[{"id":"2","timestamp":3,"message":"n"}]'],
    [
      "duplicate logEvents, the last one not an array",
      '[{"id":"1","timestamp":2,"message":"m"}],"logEvents":{}',
    ],
    ["duplicate keys in an event", '[{"id":"1","timestamp":2,"message":"m","message":"n"}]'],
    ["an event's id twice", '[{"id":"1","id":"2","timestamp":2,"message":"m"}]'],
    ["an extra key in an event", '[{"id":"1","timestamp":2,"message":"m","extractedFields":{"a":[1]}}]'],
    ["keys in another order", '[{"message":"m","timestamp":2,"id":"1"}]'],
    ["a missing message", '[{"id":"1","timestamp":2}]'],
    ["a numeric id", '[{"id":1,"timestamp":2,"message":"m"}]'],
    ["a string timestamp", '[{"id":"1","timestamp":"2","message":"m"}]'],
    ["a null event", "[null]"],
    ["an array event", '[["1",2,"m"]]'],
    ["no events", "[]"],
    ["logEvents not an array", '{"0":{"id":"1","timestamp":2,"message":"m"}}'],
    ["a raw control character", '[{"id":"1","timestamp":2,"message":"a\tb"}]'],
    ["a raw DEL and C1 character", '[{"id":"1","timestamp":2,"message":"a\u007f\u0085b"}]'],
    ["a long message", `[{"id":"1","timestamp":2,"message":"${"a".repeat(100_000)}\\n${"b".repeat(3)}"}]`],
    ["a trailing comma", '[{"id":"1","timestamp":2,"message":"m"},]'],
    ["an envelope __proto__", '[{"id":"1","timestamp":2,"message":"m"}],"__proto__":{"owner":1}'],
    ["an envelope __proto__ string", '[{"id":"1","timestamp":2,"message":"m"}],"__proto__":"x"'],
    ["an envelope __proto__ array", '[{"id":"1","timestamp":2,"message":"m"}],"__proto__":["x",1]'],
    ["an escaped envelope __proto__", '[{"id":"1","timestamp":2,"message":"m"}],"__pro\\u0074o__":"x"'],
    [
      "integer-like envelope keys",
      '[{"id":"1","timestamp":2,"message":"m"}],"b":1,"10":2,"a":3,"2":4,"01":5',
    ],
    ["an envelope key repeated", '[{"id":"1","timestamp":2,"message":"m"}],"owner":"234567890123","x":1'],
    ["an envelope `events` key", '[{"id":"1","timestamp":2,"message":"m"}],"events":[1]'],
    [
      "an envelope extra of every kind",
      '[{"id":"1","timestamp":2,"message":"m"}],"a":[1,"x",true,null,-0],"b":{"c":[]}',
    ],
    [
      "subscriptionFilters of another type",
      '[{"id":"1","timestamp":2,"message":"m"}],"subscriptionFilters":[1]',
    ],
    ["an owner that is null", '[{"id":"1","timestamp":2,"message":"m"}],"owner":null'],
  ])("agrees on %s", (_what, events) => {
    expectSame(withEvents(events));
  });

  it.each([
    ["a byte-order mark", `\ufeff${HEAD}${STREAM}[{"id":"1","timestamp":2,"message":"m"}]}`],
    ["whitespace around the JSON", ` \r\n\t${HEAD}${STREAM}[{"id":"1","timestamp":2,"message":"m"}]} \n`],
    ["text after the JSON", `${HEAD}${STREAM}[{"id":"1","timestamp":2,"message":"m"}]} x`],
    ["a NUL after the JSON", `${HEAD}${STREAM}[{"id":"1","timestamp":2,"message":"m"}]}\u0000`],
    ["a second object after the JSON", `${HEAD}${STREAM}[{"id":"1","timestamp":2,"message":"m"}]}{}`],
    ["no envelope at all", '{"logEvents":[{"id":"1","timestamp":2,"message":"m"}]}'],
    ["a root array", "[]"],
    ["an empty text", ""],
  ])("agrees on %s", (_what, json) => {
    expectSame(bytes(json));
  });

  it("agrees on multi-member gzip, split anywhere", () => {
    const json = withEvents(
      '[{"id":"1","timestamp":2,"message":"é m"},{"id":"2","timestamp":3,"message":"n"}]',
    );
    for (let at = 0; at <= json.length; at += 7) expect(expectSame(json, at)).toBe(true);
  });

  it("agrees on thousands of events, some with escapes (the columns grow as they are read)", () => {
    const many = Array.from({ length: 3_000 }, (_, i) => {
      const id = i % 5 === 0 ? `${i}\\"q` : String(i).padStart(56, "0");
      const message = i % 7 === 0 ? `calico-packet \\u00e9 ${i}\\n` : i % 11 === 0 ? `é ${i}` : "";
      return `{"id":"${id}","timestamp":${i % 3 === 0 ? `${i}.5` : i},"message":"${message}"}`;
    });
    expect(expectSame(withEvents(`[${many.join(",")}]`))).toBe(true);
    expect(expectSame(withEvents(`[${many.join(", ")} ]`))).toBe(true);
  });

  it("reads bytes at any alignment in their buffer as JSON.parse does", () => {
    // The reader compares four bytes at a time from the buffer's first aligned byte: offsets 0 to 3 in a larger
    // buffer, and a raw control character at each place of a long message, are all read alike.
    const message =
      "calico-packet: IN=eth0 OUT=cali1 SRC=192.168.1.2 DST=192.168.3.4 LEN=60 PROTO=TCP SPT=1 DPT=2";
    for (let offset = 0; offset < 4; offset++) {
      for (let at = -1; at < message.length; at += 3) {
        const text = at < 0 ? message : `${message.slice(0, at)}\u0001${message.slice(at + 1)}`;
        const json = withEvents(
          `[{"id":"1","timestamp":2,"message":"${text}"},{"id":"2","timestamp":3,"message":"m"}]`,
        );
        const padded = Buffer.alloc(json.length + 8, 0x20);
        json.copy(padded, offset);
        const bytes = padded.subarray(offset, offset + json.length);
        const read = readDelivery(bytes);
        if (at < 0) {
          expect({ ...read?.envelope, logEvents: read?.events.toArray() }).toStrictEqual(
            JSON.parse(json.toString("utf8")),
          );
        } else {
          expect(read).toBeUndefined();
        }
      }
    }
  });
});
