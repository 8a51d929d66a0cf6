// decodeSubscriptionData sizes gunzip's output from the gzip trailer: a wrong or forged size must only cost
// time, never change what is decoded.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { decodeSubscriptionData } from "../../functions/core/subscription-payload.ts";

const payload = {
  messageType: "DATA_MESSAGE",
  owner: "123456789012",
  logGroup: "/aws/eks/prod/nodes",
  logStream: "node-a",
  subscriptionFilters: ["calico-packet"],
  logEvents: Array.from({ length: 3_000 }, (_, i) => ({
    id: String(i),
    timestamp: 1_776_574_320_000 + i,
    message: `calico-packet: IN=eth0 OUT=cali${i} SRC=10.0.${i % 256}.1 DST=10.1.0.${i % 200} LEN=60 é`,
  })),
};
const json = JSON.stringify(payload);

describe("decodeSubscriptionData output buffer", () => {
  it("decodes the payload when the trailer's size is true, and rejects it whenever the size is forged", () => {
    // The messages hold a character outside ASCII: the size is in bytes, not characters.
    const bytes = Buffer.byteLength(json);
    expect(bytes).toBeGreaterThan(json.length);
    let decoded = 0;
    for (const announced of [0, 1, 17, json.length, bytes - 1, bytes, bytes + 5, 0xffffffff]) {
      const gz = gzipSync(json);
      gz.writeUInt32LE(announced >>> 0, gz.length - 4);
      // A forged ISIZE fails zlib's own trailer check: the content is never altered or cut to the size.
      const data = gz.toString("base64");
      if (announced === bytes) {
        expect(decodeSubscriptionData(data)).toEqual(payload);
        decoded++;
      } else {
        expect(() => decodeSubscriptionData(data), String(announced)).toThrow(/not gzip/);
      }
    }
    expect(decoded).toBe(1);
  });

  it("decodes multi-member gzip (the trailer gives only the last member's size)", () => {
    const cut = 1_000;
    const data = Buffer.concat([gzipSync(json.slice(0, cut)), gzipSync(json.slice(cut))]).toString("base64");
    expect(decodeSubscriptionData(data)).toEqual(payload);
  });

  it("decodes deliveries one after another whatever their sizes (the compressed bytes' buffer is reused)", () => {
    const sized = (events: number) => ({ ...payload, logEvents: payload.logEvents.slice(0, events) });
    // Messages that do not compress: 2,000 of them make some 300 KB of base64, more than any buffer made up front.
    const noise = (events: number) => ({
      ...payload,
      logEvents: Array.from({ length: events }, (_, i) => ({
        id: String(i),
        timestamp: 1_776_574_320_000 + i,
        message: createHash("sha512").update(String(i)).digest("base64"),
      })),
    });
    for (const p of [sized(1), noise(2_000), sized(40), noise(1_999), sized(3_000), noise(2_000)]) {
      const data = gzipSync(JSON.stringify(p)).toString("base64");
      expect(decodeSubscriptionData(data)).toEqual(p);
    }
    // Base64 broken into lines, as some encoders write it, decodes as Buffer.from reads it.
    const wrapped = gzipSync(JSON.stringify(sized(10)))
      .toString("base64")
      .replace(/.{76}/g, "$&\n");
    expect(decodeSubscriptionData(wrapped)).toEqual(sized(10));
  });
});
