// Coverage claims name events by eventKey, the 64-bit xxHash of their id: the keys are stored, so they are pinned to
// the published XXH64 values, and the delivery's path (from its bytes) must give the same keys as the strings.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventKey, eventKeys } from "../../functions/core/coverage.ts";
import { decodeDelivery, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The 64 bits a key spells (the inverse of its layout: 30 low bits of each half, then their top two bits). */
function bitsOf(key: string): bigint {
  const v = [...key].map((c) => BigInt(ALPHABET.indexOf(c)));
  const half = (from: number) => v.slice(from, from + 5).reduce((n, d, k) => n | (d << BigInt(6 * k)), 0n);
  const top = v[10] as bigint;
  const lo = half(0) | ((top & 3n) << 30n);
  const hi = half(5) | ((top >> 2n) << 30n);
  return (hi << 32n) | lo;
}

describe("eventKey", () => {
  it("is XXH64 (seed 0) of the id's UTF-8, in 11 base64url characters", () => {
    // The reference values of the xxHash specification's test vectors.
    expect(bitsOf(eventKey(""))).toBe(0xef46db3751d8e999n);
    expect(bitsOf(eventKey("abc"))).toBe(0x44bc2cf5ad770999n);
    for (const id of ["", "abc", "37123456789012345678901234567890123400000000000000000001", "é"]) {
      expect(eventKey(id)).toMatch(/^[A-Za-z0-9_-]{11}$/);
    }
    // Pinned: claims already stored hold these.
    expect(eventKey("37123456789012345678901234567890123400000000000000000001")).toMatchInlineSnapshot(
      `"qmoKpOnoc2J"`,
    );
  });

  it("tells apart a stream's consecutive 56-digit ids", () => {
    const head = "3712345678901234567890123456789012345678";
    const keys = new Set<string>();
    for (let n = 0; n < 200_000; n++) keys.add(eventKey(`${head}${String(n).padStart(16, "0")}`));
    expect(keys.size).toBe(200_000);
  });

  it("gives the keys of a delivery's ids, read from its bytes, that the ids' strings have (property)", () => {
    const id = fc.oneof(
      fc.stringMatching(/^[0-9]{56}$/),
      fc.string({ maxLength: 12 }),
      fc.string({ unit: "binary" }),
    );
    fc.assert(
      fc.property(fc.array(id, { minLength: 1, maxLength: 20 }), (ids) => {
        const events = decodeDelivery(
          encodeSubscriptionData({
            messageType: "DATA_MESSAGE",
            owner: "1",
            logGroup: "g",
            logStream: "s",
            subscriptionFilters: [],
            logEvents: ids.map((i, n) => ({ id: i, timestamp: n, message: "m" })),
          }),
        ).events;
        expect(eventKeys(events)).toEqual(ids.map(eventKey));
      }),
      { numRuns: 300 },
    );
  });
});
