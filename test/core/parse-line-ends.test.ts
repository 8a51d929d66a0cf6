// Where a calico line ends: at a line break inside its log event (a shipper's multiline mode puts several lines in
// one event: CloudWatch agent `multi_line_start_pattern`, Fluent Bit multiline), and where the kernel's fields say a
// line was cut short (an ICMP message that always has more after CODE=).
import { describe, expect, it } from "vitest";
import { CidrSet } from "../../functions/core/classify.ts";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createScanner, LineParser } from "../../functions/core/parse.ts";
import { type LogEvent, runPipeline } from "../../functions/core/pipeline.ts";
import { decodeDelivery, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { IpDirectory, ParseOutcome } from "../../functions/core/types.ts";
import { expectEncodedAs } from "../support/ndjson.ts";
import { outcomes, PARSE_NOW, record } from "../support/parse-outcome.ts";

const HEAD = "Apr 19 04:52:19 ip-2 kernel: calico-packet: IN=eth0 OUT=eni1 SRC=192.168.1.10 DST=192.168.2.20";
const UDP = `${HEAD} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDP SPT=40000 DPT=53 LEN=40`;
const UDP_123 = UDP.replace("DPT=53", "DPT=123").replace("04:52:19", "04:52:21");
const ICMP = `${HEAD} LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1`;
const OTHER = "Apr 19 03:00:00 ip-9 systemd[1]: Started x.";
const CUT = UDP.slice(0, UDP.indexOf("PROTO="));

/**
 * Every outcome of `text`, a log event of one or more lines: the first from scan, the rest from scanMore. The
 * reference parser must agree, and the NDJSON encoder write each record (encode, then encodeMore).
 */
function allOutcomes(text: string): ParseOutcome[] {
  const opts = { now: PARSE_NOW };
  const read = (parser: LineParser): ParseOutcome[] => {
    const all = [parser.scan(text) as ParseOutcome];
    for (let more = parser.scanMore(); more !== undefined; more = parser.scanMore()) {
      all.push(more as ParseOutcome);
    }
    return all;
  };
  const fast = read(new LineParser(opts));
  expect(read(new LineParser(opts, false))).toEqual(fast);
  const encoder = new NdjsonEncoder(opts);
  const kinds: string[] = [encoder.encode(text)];
  expectEncodedAs(encoder, kinds[0] as string, fast[0] as ParseOutcome);
  for (let k = 1; ; k++) {
    const kind = encoder.encodeMore();
    if (kind === undefined) break;
    kinds.push(kind);
    expectEncodedAs(encoder, kind, fast[k] as ParseOutcome);
  }
  expect(kinds).toHaveLength(fast.length);
  return fast;
}

describe("a line break inside a log event ends a line", () => {
  it("a calico line's fields are its own, not those of the line after it", () => {
    expect(record(`${UDP}\nApr 19 04:52:20 ip-2 app[99]: retry SPT=1 DPT=8443`)).toEqual(record(UDP));
    expect(record(`${ICMP}\nApr 19 04:52:20 ip-2 app[99]: DPT=5432`)).toEqual(record(ICMP));
    expect(record(`${UDP}\r\n${OTHER}`)).toEqual(record(UDP));
  });

  it("a line before it gives the record neither its time nor its node", () => {
    const r = record(`${OTHER}\n${UDP}`);
    expect(r).toEqual(record(UDP));
    expect([r.time, r.node]).toEqual(["2024-04-19T04:52:19.000Z", "ip-2"]);
    expect(record(`${OTHER}\r\n${UDP}\r\n`)).toEqual(record(UDP));
  });

  it("two calico lines in one event are two records, whatever lines are between them", () => {
    const both = [record(UDP), record(UDP_123)].map((r) => ({ kind: "record", record: r }));
    expect(allOutcomes(`${UDP}\n${UDP_123}`)).toEqual(both);
    expect(allOutcomes(`${OTHER}\n${UDP}\r\n${OTHER}\n\n${UDP_123}\n${OTHER}`)).toEqual(both);
    // A line that only mentions the prefix is a skip of its own.
    expect(allOutcomes(`${UDP}\nfelix: calico-packet is the prefix\n${UDP_123}`)).toEqual([
      both[0],
      { kind: "skip" },
      both[1],
    ]);
  });

  it("a malformed line is reported on its own, the other lines of its event still read", () => {
    expect(allOutcomes(`${CUT}\n${UDP}`)).toEqual([
      { kind: "error", reason: "no PROTO=: the line ends in the IP header" },
      { kind: "record", record: record(UDP) },
    ]);
  });

  it("a JSON record's message of several lines: each line with the record's host and time", () => {
    const message = `calico-packet: ${UDP.slice(UDP.indexOf("IN="))}\ncalico-packet: ${UDP_123.slice(UDP.indexOf("IN="))}`;
    const json = JSON.stringify({ message, host: "ip-7", time: "2024-04-19T04:52:30.250Z" });
    const records = allOutcomes(json).map((o) => (o.kind === "record" ? o.record : o));
    expect(records).toMatchObject([
      { node: "ip-7", time: "2024-04-19T04:52:30.250Z", dstPort: 53 },
      { node: "ip-7", time: "2024-04-19T04:52:30.250Z", dstPort: 123 },
    ]);
    // Fluent Bit's tail record: the lines keep their own headers.
    expect(allOutcomes(JSON.stringify({ log: `${UDP}\n${UDP_123}\n` }))).toEqual([
      { kind: "record", record: record(UDP) },
      { kind: "record", record: record(UDP_123) },
    ]);
  });

  it("records of a JSON record each (JSON lines in one event)", () => {
    const lines = [UDP, UDP_123].map((line) => JSON.stringify({ MESSAGE: line, _HOSTNAME: "ip-3" }));
    expect(allOutcomes(lines.join("\n")).map((o) => (o.kind === "record" ? o.record.dstPort : o))).toEqual([
      53, 123,
    ]);
    // A record over several lines is still one record.
    expect(allOutcomes(JSON.stringify({ MESSAGE: UDP }, null, 2))).toEqual([
      { kind: "record", record: record(UDP) },
    ]);
  });

  it("a scan starts afresh: nothing is left of the last event's lines", () => {
    const parser = new LineParser({ now: PARSE_NOW });
    parser.scan(`${UDP}\n${UDP_123}`);
    expect(parser.scan(UDP)).toEqual({ kind: "record", record: record(UDP) });
    expect(parser.scanMore()).toBeUndefined();
  });
});

describe("the pipeline reads every line of an event", () => {
  const nobody: IpDirectory = {
    resolve: async (lookups) => lookups.map(() => ({ status: "absent" }) as const),
  };
  const run = (events: readonly LogEvent[] | ReturnType<typeof decodeDelivery>["events"]) =>
    runPipeline(events, {
      cluster: "prod",
      internal: new CidrSet(["192.168.0.0/16"]),
      bucketSeconds: 60,
      scanner: createScanner({ year: 2024 }),
      directory: nobody,
    });
  const ports = (flows: { dstPort: number | null }[]) =>
    flows.map((f) => f.dstPort ?? -1).sort((a, b) => a - b);
  const at = Date.UTC(2024, 3, 19, 4, 52, 19);

  it("counts an event as one line, and each of its calico lines, records or malformed", async () => {
    const events: LogEvent[] = [
      { message: `${OTHER}\n${UDP}\n${UDP_123}`, timestamp: at, node: "stream" },
      { message: `${CUT}\n${OTHER}`, timestamp: at, node: "stream" },
      { message: OTHER, timestamp: at, node: "stream" },
    ];
    const result = await run(events);
    expect(result.stats).toMatchObject({ lines: 3, calico: 2, skipped: 1, malformed: 1 });
    expect(result.malformed).toEqual([{ index: 1, reason: "no PROTO=: the line ends in the IP header" }]);
    expect(ports(result.flows)).toEqual([53, 123]);
    expect(result.flows.map((f) => f.reporter)).toEqual(["ip-2", "ip-2"]);
  });

  it("alike from a subscription delivery's bytes", async () => {
    const payload = {
      messageType: "DATA_MESSAGE",
      owner: "1",
      logGroup: "g",
      logStream: "s",
      subscriptionFilters: [],
      logEvents: [
        { id: "1", timestamp: at, message: `${OTHER}\n${UDP}\n${UDP_123}` },
        { id: "2", timestamp: at, message: UDP },
      ],
    };
    const result = await run(decodeDelivery(encodeSubscriptionData(payload)).events);
    expect(result.stats).toMatchObject({ lines: 2, calico: 3, skipped: 0, malformed: 0 });
    expect(ports(result.flows)).toEqual([53, 123]);
    expect(result.flows.map((f) => f.packets).sort()).toEqual([1, 2]);
  });

  it("holds more calico lines than events", async () => {
    const lines = Array.from({ length: 3000 }, (_, n) => UDP.replace("DPT=53", `DPT=${n + 1}`));
    const result = await run([{ message: lines.join("\n"), timestamp: at }]);
    expect(result.stats).toMatchObject({ lines: 1, calico: 3000 });
    expect(ports(result.flows)).toEqual(Array.from({ length: 3000 }, (_, n) => n + 1));
  });
});

describe("an ICMP line cut right after CODE=", () => {
  const icmp = (tail: string, v6 = false) =>
    v6
      ? `calico-packet: IN=eth0 OUT=eni1 SRC=2001:db8::1 DST=2001:db8::2 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 ${tail}`
      : `calico-packet: IN=eth0 OUT=eni1 SRC=192.168.1.10 DST=192.168.2.20 LEN=88 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP ${tail}`;
  const reason = (line: string): string => {
    const outcome = outcomes(line);
    return outcome.kind === "error" ? outcome.reason : `a ${outcome.kind}`;
  };

  it.each([
    ["echo request", "TYPE=8 CODE=0"],
    ["echo reply", "TYPE=0 CODE=0 "],
    ["destination unreachable, its code cut to one digit", "TYPE=3 CODE=1"],
    ["source quench", "TYPE=4 CODE=0"],
    ["redirect", "TYPE=5 CODE=1"],
    ["time exceeded", "TYPE=11 CODE=0 "],
    ["parameter problem", "TYPE=12 CODE=0"],
  ])("ICMP %s: the kernel prints more after it, so the line was cut", (_name, tail) => {
    expect(reason(icmp(tail))).toBe(
      `ICMP fields end at CODE=, where type ${/TYPE=(\d+)/.exec(tail)?.[1]} has more: line cut short`,
    );
  });

  it.each([
    ["echo request", "TYPE=128 CODE=0"],
    ["echo reply", "TYPE=129 CODE=0"],
    ["destination unreachable", "TYPE=1 CODE=4 "],
    ["packet too big", "TYPE=2 CODE=0"],
    ["time exceeded", "TYPE=3 CODE=1"],
    ["parameter problem", "TYPE=4 CODE=0"],
  ])("ICMPv6 %s: likewise", (_name, tail) => {
    expect(reason(icmp(tail, true))).toBe(
      `ICMPv6 fields end at CODE=, where type ${/TYPE=(\d+)/.exec(tail)?.[1]} has more: line cut short`,
    );
  });

  it("a type the kernel prints nothing more for ends there; so do whole lines", () => {
    expect(record(icmp("TYPE=13 CODE=0 "))).toMatchObject({ icmpType: 13, icmpCode: 0 });
    expect(record(icmp("TYPE=9 CODE=0"))).toMatchObject({ icmpType: 9, icmpCode: 0 });
    expect(record(icmp("TYPE=133 CODE=0 ", true))).toMatchObject({ icmpType: 133, icmpCode: 0 });
    expect(record(icmp("TYPE=8 CODE=0 ID=7 SEQ=1 "))).toMatchObject({ icmpType: 8, icmpCode: 0 });
    expect(record(icmp("TYPE=3 CODE=13 [SRC=192.168.2.20 DST=192.168.1.10 LEN=60 ] "))).toMatchObject({
      icmpType: 3,
      icmpCode: 13,
    });
    expect(record(icmp("TYPE=3 CODE=1 INCOMPLETE [10 bytes] "))).toMatchObject({ icmpType: 3, icmpCode: 1 });
    expect(record(icmp("TYPE=128 CODE=0 ID=1 SEQ=2 ", true))).toMatchObject({ icmpType: 128 });
  });

  it("an ICMP error quoted inside another's packet may end at its CODE=", () => {
    const inner = "[SRC=192.168.2.20 DST=192.168.1.10 LEN=60 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=1 ] ";
    expect(record(icmp(`TYPE=11 CODE=0 ${inner}`))).toMatchObject({ icmpType: 11, icmpCode: 0 });
  });
});
