// A delivery's events are scanned where they lie in its bytes, a window of text at a time: every event must scan
// exactly as its message does on its own, and the pipeline must count a delivery as it counts the same events
// given as objects.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { DeliveredEvents } from "../../functions/core/delivered-events.ts";
import { createScanner, type LineParser, type Scan } from "../../functions/core/parse.ts";
import { runPipeline } from "../../functions/core/pipeline.ts";
import {
  contributionOf,
  decodeDelivery,
  encodeSubscriptionData,
  type SubscriptionPayload,
} from "../../functions/core/subscription-payload.ts";

/** What a scan found, as values: positions differ between a message on its own and one inside a delivery. */
function found(outcome: Scan, s: LineParser): unknown {
  if (outcome !== null) return outcome;
  const f = s.fields;
  const slice = (start: number, end: number, other: string | null) =>
    start >= 0 ? f.text.slice(start, end) : other;
  return {
    time: f.time,
    node: slice(f.nodeS, f.nodeE, f.node),
    prefix: f.prefix,
    in: slice(f.inS, f.inE, null),
    out: slice(f.outS, f.outE, null),
    mac: slice(f.macS, f.macE, f.mac),
    src: slice(f.srcS, f.srcE, f.src),
    srcV4: f.srcV4,
    dst: slice(f.dstS, f.dstE, f.dst),
    dstV4: f.dstV4,
    src6: f.srcS < 0 ? [...s.srcGroups] : null,
    dst6: f.dstS < 0 ? [...s.dstGroups] : null,
    ipVersion: f.ipVersion,
    length: f.length,
    ttl: f.ttl,
    protocol: f.protocol,
    srcPort: f.srcPort,
    dstPort: f.dstPort,
    flags: f.flags,
    icmpType: f.icmpType,
    icmpCode: f.icmpCode,
  };
}

const packet = (n: number, host: string, tail = "") =>
  `Apr 19 04:52:${String(n % 60).padStart(2, "0")} ${host} kernel: calico-packet: IN=eth0 OUT=eni${n} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.1.${n % 250} DST=192.168.2.${(n * 7) % 250} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${n} DF PROTO=TCP SPT=40000 DPT=${n % 1000} WINDOW=100 RES=0x00 SYN URGP=0${tail}`;

/** Messages of every kind a delivery carries, some long enough to cross or overflow a window of text. */
const message = fc.oneof(
  { weight: 6, arbitrary: fc.nat(100_000).map((n) => packet(n, "ip-192-168-1-10")) },
  fc.nat(1000).map((n) => packet(n, "nœud-é")),
  fc.nat(1000).map((n) => `calico-packet: IN=eth0 OUT=cali1 SRC=192.168.1.${n % 250} DST=2001:db8::1 LEN=60`),
  fc.nat(1000).map((n) => JSON.stringify({ log: `${packet(n, "ip-a")}\n`, stream: "stdout" })),
  fc.nat(1000).map((n) => JSON.stringify({ MESSAGE: packet(n, "ip-b"), _HOSTNAME: "ip-b" })),
  fc.nat(1000).map((n) => `{"MESSAGE":"${packet(n, "ip-c")}","_HOSTNAME":"ip-c"}`),
  fc.nat(1000).map((n) => packet(n, "ip-d").slice(0, 100 + (n % 200))),
  fc.nat(1000).map((n) => `${packet(n, "ip-e")} "quoted" \\ tab\there`),
  fc.integer({ min: 10_000, max: 40_000 }).map((n) => packet(n, "ip-f", ` OPT (${"01".repeat(n)})`)),
  fc.integer({ min: 20_000, max: 70_000 }).map((n) => `${"x".repeat(n)} ${packet(n, "ip-g")}`),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

const delivery = fc
  .array(fc.record({ message, gap: fc.nat(3000) }), { minLength: 1, maxLength: 40 })
  .map((events): SubscriptionPayload => {
    let id = 37_000_000_000;
    let at = Date.parse("2026-04-19T04:52:00Z");
    return {
      messageType: "DATA_MESSAGE",
      owner: "123456789012",
      logGroup: "/aws/eks/prod/nodes",
      logStream: "ip-192-168-1-10",
      subscriptionFilters: ["calico-packet"],
      logEvents: events.map((e) => {
        at += e.gap;
        id += 1 + e.gap;
        return { id: String(id), timestamp: at, message: e.message };
      }),
    };
  });

describe("DeliveredEvents", () => {
  it("scans every event where it lies exactly as its message scans on its own (property)", () => {
    const inPlace = createScanner({ year: 2026 });
    const alone = createScanner({ year: 2026 });
    let records = 0;
    fc.assert(
      fc.property(delivery, (payload) => {
        const events = decodeDelivery(encodeSubscriptionData(payload)).events;
        expect(events.length).toBe(payload.logEvents.length);
        for (let i = 0; i < events.length; i++) {
          const sent = payload.logEvents[i] as SubscriptionPayload["logEvents"][number];
          expect(events.message(i)).toBe(sent.message);
          expect(events.id(i)).toBe(sent.id);
          expect(events.timestamp(i)).toBe(sent.timestamp);
          const got = found(events.scan(i, inPlace), inPlace);
          expect(got).toEqual(found(alone.scan(sent.message), alone));
          if (got !== null && typeof got === "object" && !("kind" in got)) records++;
        }
      }),
      { numRuns: 200 },
    );
    expect(records).toBeGreaterThan(0);
  });

  it("reads events in any order, and again, whatever window the last read left", () => {
    const payload: SubscriptionPayload = {
      messageType: "DATA_MESSAGE",
      owner: "1",
      logGroup: "g",
      logStream: "s",
      subscriptionFilters: [],
      logEvents: Array.from({ length: 400 }, (_, n) => ({
        id: String(n),
        timestamp: n,
        message: packet(n, n % 50 === 0 ? "nœud" : "ip-a"),
      })),
    };
    const events = decodeDelivery(encodeSubscriptionData(payload)).events;
    const inPlace = createScanner({ year: 2026 });
    const alone = createScanner({ year: 2026 });
    for (const i of [399, 0, 200, 1, 399, 57, 56, 300, 0]) {
      expect(found(events.scan(i, inPlace), inPlace)).toEqual(
        found(alone.scan(payload.logEvents[i]?.message as string), alone),
      );
    }
  });

  it("counts a delivery in the pipeline as the same events given as objects", async () => {
    const directory = new SnapshotDirectory({ pods: { items: [] } });
    const options = () => ({
      cluster: "prod",
      internal: new CidrSet(["192.168.0.0/16"]),
      bucketSeconds: 60,
      scanner: createScanner({ year: 2026 }),
      directory,
    });
    await fc.assert(
      fc.asyncProperty(delivery, async (payload) => {
        const delivered = decodeDelivery(encodeSubscriptionData(payload)).events;
        const objects = payload.logEvents.map((e) => ({ ...e, node: payload.logStream }));
        const a = await runPipeline(delivered, options());
        const b = await runPipeline(objects, options());
        expect(a).toEqual(b);
      }),
      { numRuns: 60 },
    );
  });

  it("digests its ids as the contribution of the ids joined by commas, however many and however long (property)", () => {
    // The ids are fed to the hash through a buffer of 16 KiB: runs of ids cross its end, and an id can outgrow it.
    const id = fc.oneof(
      { weight: 8, arbitrary: fc.bigInt({ min: 10n ** 55n, max: 10n ** 56n - 1n }).map(String) },
      fc.string({ unit: "grapheme", maxLength: 30 }),
      fc.string({ unit: "binary", maxLength: 30 }),
      fc.integer({ min: 16_000, max: 40_000 }).map((n) => "7".repeat(n)),
      fc.integer({ min: 6_000, max: 8_000 }).map((n) => "é€".repeat(n)),
    );
    fc.assert(
      fc.property(fc.array(id, { minLength: 1, maxLength: 1_500 }), (ids) => {
        const payload: SubscriptionPayload = {
          messageType: "DATA_MESSAGE",
          owner: "123456789012",
          logGroup: "/aws/eks/prod/nodes",
          logStream: "ip-192-168-1-10",
          subscriptionFilters: ["calico-packet"],
          logEvents: ids.map((i, n) => ({ id: i, timestamp: n, message: "m" })),
        };
        // digest() as the store keys it: 128 bits of SHA-256 of the text, base64url.
        const expected = createHash("sha256")
          .update(`${payload.logGroup}\n${payload.logStream}\n${ids.join(",")}`, "utf8")
          .digest("base64url")
          .slice(0, 22);
        const read = decodeDelivery(encodeSubscriptionData(payload));
        expect(contributionOf({ ...payload, logEvents: read.events })).toBe(expected);
        const given = DeliveredEvents.fromArray(payload.logEvents);
        expect(contributionOf({ ...payload, logEvents: given })).toBe(expected);
      }),
      { numRuns: 40 },
    );
  });

  it("refuses an event it does not hold", () => {
    const events = DeliveredEvents.fromArray([{ id: "1", timestamp: 2, message: "m" }]);
    const scanner = createScanner();
    expect(() => events.scan(1, scanner)).toThrow(RangeError);
    expect(() => events.id(-1)).toThrow(RangeError);
    expect(() => events.timestamp(0.5)).toThrow(RangeError);
    expect(events.toArray()).toEqual([{ id: "1", timestamp: 2, message: "m" }]);
  });
});
