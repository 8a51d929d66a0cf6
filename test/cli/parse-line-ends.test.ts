// `calico-flows parse` where one input line is not one calico line: a JSON record whose message holds several lines
// (a shipper's multiline mode), and a line over the length limit, dropped unread (DESIGN.md §3.1: a line without the
// calico-packet prefix is skipped, a calico line that cannot be parsed is malformed).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ParseSummary, parseStream } from "../../cli/commands/parse.ts";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createParser } from "../../functions/core/parse.ts";
import { chunksAt } from "../support/ndjson.ts";

const SYSLOG =
  "Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0";
const OTHER = SYSLOG.replace("DPT=8012", "DPT=443");
const CUT = SYSLOG.slice(0, SYSLOG.indexOf("PROTO="));

interface Streamed {
  out: string;
  malformed: string[];
  summary: ParseSummary;
}

/** parseStream over `text` cut into chunks of the sizes `cuts`, with the given line length limit. */
async function streamed(text: string, cuts: number[], maxLineLength?: number): Promise<Streamed> {
  const chunks = chunksAt(Buffer.from(text), cuts);
  let out = "";
  const malformed: string[] = [];
  const summary = await parseStream(
    (async function* () {
      yield* chunks;
    })(),
    {
      encoder: new NdjsonEncoder({ year: 2024 }),
      write: (b) => {
        out += Buffer.from(b).toString();
      },
      onMalformed: (line, reason) => malformed.push(`${line}: ${reason}`),
      ...(maxLineLength === undefined ? {} : { maxLineLength }),
    },
  );
  return { out, malformed, summary };
}

/** The same answer however the text is cut into chunks. */
async function everyCut(text: string, maxLineLength?: number): Promise<Streamed> {
  const whole = await streamed(text, [text.length], maxLineLength);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 60 }),
      async (cuts) => {
        expect(await streamed(text, cuts, maxLineLength)).toEqual(whole);
      },
    ),
    { numRuns: 100 },
  );
  return whole;
}

const ndjson = (...lines: string[]): string => {
  const parse = createParser({ year: 2024 });
  return lines
    .map((line) => {
      const o = parse(line);
      if (o.kind !== "record") throw new Error(`not a record: ${line}`);
      return `${JSON.stringify(o.record)}\n`;
    })
    .join("");
};

describe("a JSON record whose message holds several lines", () => {
  it("writes a record for each of its calico lines, counting the record as one input line", async () => {
    const event = JSON.stringify({ log: `${SYSLOG}\nApr 19 04:52:20 ip-1 app[9]: retry\n${OTHER}\n` });
    const r = await everyCut(`${SYSLOG}\n${event}\n${OTHER}\n`);
    expect(r.out).toBe(ndjson(SYSLOG, SYSLOG, OTHER, OTHER));
    expect(r.summary).toEqual({ lines: 3, records: 4, skipped: 0, malformed: 0 });
  });

  it("reports a malformed line of it under the record's line number, and reads the lines after it", async () => {
    const event = JSON.stringify({ MESSAGE: `${CUT}\n${OTHER}` });
    const r = await everyCut(`${SYSLOG}\n${event}\nApr 19 04:52:20 ip-1 systemd[1]: Started x.\n`);
    expect(r.out).toBe(ndjson(SYSLOG, OTHER));
    expect(r.malformed).toEqual(["2: no PROTO=: the line ends in the IP header"]);
    expect(r.summary).toEqual({ lines: 3, records: 2, skipped: 1, malformed: 1 });
  });
});

describe("a line over the length limit", () => {
  const limit = 400;
  const long = (fill: string, at = -1, insert = "") => {
    const text = fill.repeat(1000);
    return at < 0 ? text : `${text.slice(0, at)}${insert}${text.slice(at)}`;
  };

  it("is skipped when it does not hold the prefix", async () => {
    const r = await everyCut(`${SYSLOG}\n${long("x")}\n${long("calico-")}\n${SYSLOG}\n`, limit);
    expect(r.malformed).toEqual([]);
    expect(r.summary).toEqual({ lines: 4, records: 2, skipped: 2, malformed: 0 });
  });

  it.each([
    ["at its start", 0],
    ["within the limit", limit - 20],
    ["past the limit", 700],
    ["at its end", 1000],
  ])("is malformed when it holds the prefix %s, wherever the chunks cut it", async (_where, at) => {
    const r = await everyCut(`${long("x", at, "calico-packet")}\n${SYSLOG}\n${long("y")}`, limit);
    expect(r.malformed).toEqual([`1: line longer than ${limit} characters, not parsed`]);
    expect(r.summary).toEqual({ lines: 3, records: 1, skipped: 1, malformed: 1 });
  });
});
