// decodeSubscriptionData sizes gunzip's output from the gzip trailer: a wrong or forged size must only cost
// time, never change what is decoded.
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
});
