import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  CorruptPayloadError,
  contributionOf,
  decodeDelivery,
  decodeSubscriptionData,
  encodeSubscriptionData,
} from "../../functions/core/subscription-payload.ts";

const payload = {
  messageType: "DATA_MESSAGE",
  owner: "123456789012",
  logGroup: "/aws/eks/prod/nodes",
  logStream: "ip-192-168-74-5",
  subscriptionFilters: ["calico-packet"],
  logEvents: [
    { id: "37001", timestamp: 1_776_574_339_000, message: "calico-packet: SRC=1.2.3.4" },
    { id: "37002", timestamp: 1_776_574_340_000, message: "noise" },
  ],
};

describe("subscription payloads", () => {
  it("round-trips a payload", () => {
    expect(decodeSubscriptionData(encodeSubscriptionData(payload))).toEqual(payload);
  });

  it.each([
    [undefined, "missing or not a string"],
    ["", "missing or not a string"],
    ["%%%%", "not base64"],
    [Buffer.from("hello there!").toString("base64"), "not gzip"],
    [gzipSync("{not json").toString("base64"), "does not hold JSON"],
    [gzipSync(JSON.stringify({ ...payload, logEvents: "x" })).toString("base64"), "logEvents"],
    [gzipSync(JSON.stringify({ messageType: "DATA_MESSAGE" })).toString("base64"), "logGroup"],
    // A number no double holds, in the layout the delivery reader takes (spaces keep it off the exact fast path).
    [
      gzipSync(
        JSON.stringify({ ...payload, logEvents: [{ id: "1", timestamp: 0, message: "m" }] }).replace(
          '"timestamp":0',
          '"timestamp": 1e400',
        ),
      ).toString("base64"),
      "timestamp",
    ],
  ])("reports %s precisely", (data, reason) => {
    expect(() => decodeSubscriptionData(data)).toThrow(CorruptPayloadError);
    expect(() => decodeSubscriptionData(data)).toThrow(reason);
  });

  it("refuses a delivery that decompresses to more than 64 MiB, before holding it", () => {
    // One event whose message is 65 MiB of one letter: some 65 KB of gzip, far below Lambda's 1 MB.
    const message = "A".repeat(65 * 2 ** 20);
    const bomb = gzipSync(JSON.stringify({ ...payload, logEvents: [{ id: "1", timestamp: 0, message }] }));
    expect(bomb.length).toBeLessThan(200_000);
    const data = bomb.toString("base64");
    expect(() => decodeDelivery(data)).toThrow(CorruptPayloadError);
    expect(() => decodeDelivery(data)).toThrow("decompresses to more than 64 MiB");
    // A delivery just under the limit still decodes.
    const large = {
      ...payload,
      logEvents: [{ id: "1", timestamp: 0, message: message.slice(0, 63 * 2 ** 20) }],
    };
    expect(decodeDelivery(gzipSync(JSON.stringify(large)).toString("base64")).events.length).toBe(1);
  });

  it("names a delivery read from its bytes as the same events given as objects", () => {
    const odd = {
      ...payload,
      logEvents: [
        { id: "37001", timestamp: 1, message: "a" },
        { id: 'with "quote" and é', timestamp: 2, message: "b" },
        { id: "", timestamp: 3, message: "c" },
        { id: "😀", timestamp: 4, message: "d" },
        // Every length modulo four, read from the bytes (copied a word at a time, then the rest).
        ...["1", "12", "123", "1234", "12345", "123456789", "37".repeat(28)].map((id, i) => ({
          id,
          timestamp: 5 + i,
          message: "e",
        })),
      ],
    };
    for (const p of [payload, odd]) {
      const { events } = decodeDelivery(encodeSubscriptionData(p));
      expect(contributionOf({ ...p, logEvents: events })).toBe(contributionOf(p));
    }
  });

  it("identifies a redelivery by its events, not by its encoding", () => {
    const again = decodeSubscriptionData(gzipSync(JSON.stringify(payload), { level: 1 }).toString("base64"));
    expect(contributionOf(again)).toBe(contributionOf(payload));
    expect(contributionOf({ ...payload, logEvents: payload.logEvents.slice(1) })).not.toBe(
      contributionOf(payload),
    );
    expect(contributionOf({ ...payload, logStream: "other" })).not.toBe(contributionOf(payload));
  });
});
