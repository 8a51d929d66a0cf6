import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KeyTable, NumberTable } from "../../functions/core/key-table.ts";

const part = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0x7fffffff }));
const key = fc.tuple(part, part, part, part, part, part);

describe("KeyTable", () => {
  it("answers as a Map of the same keys, across its growth (property)", () => {
    fc.assert(
      // Over 512 keys, so that the table grows at least once.
      fc.property(
        fc.array(key, { minLength: 600, maxLength: 3000 }),
        fc.array(key, { maxLength: 200 }),
        fc.option(fc.nat(5000), { nil: undefined }),
        (added, probes, expected) => {
          const table = new KeyTable(expected);
          const reference = new Map<string, number>();
          for (const k of added) {
            const text = k.join(",");
            if (reference.has(text)) continue;
            expect(table.get(...k)).toBe(-1);
            table.add(...k, reference.size);
            reference.set(text, reference.size);
          }
          expect(table.size).toBe(reference.size);
          for (const k of [...added, ...probes])
            expect(table.get(...k)).toBe(reference.get(k.join(",")) ?? -1);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("tells apart keys that differ in one part only, wherever it is", () => {
    // A thousand keys that share five parts share probe sequences too: every part must be compared.
    for (let at = 0; at < 6; at++) {
      const table = new KeyTable();
      const keyWith = (n: number) => {
        const k: [number, number, number, number, number, number] = [5, 6, 7, 8, 9, 10];
        k[at] = n;
        return k;
      };
      for (let n = 0; n < 2000; n += 2) table.add(...keyWith(n), n);
      for (let n = 0; n < 2000; n++) expect(table.get(...keyWith(n))).toBe(n % 2 === 0 ? n : -1);
    }
  });

  it("refuses parts and values the typed arrays would wrap", () => {
    const table = new KeyTable();
    expect(() => table.add(2 ** 31, 0, 0, 0, 0, 0, 0)).toThrow(RangeError);
    expect(() => table.add(0, 0, 0, 0, 0, -1, 0)).toThrow(RangeError);
    expect(() => table.add(0, 0, 0, 0, 0, 0, 1.5)).toThrow(RangeError);
    expect(table.size).toBe(0);
  });
});

describe("NumberTable", () => {
  const number = fc.oneof(
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.integer({ min: 0, max: 300 }),
    // Above 2^31: the table keeps keys as signed 32-bit words.
    fc.integer({ min: 0x7fffff00, max: 0x800000ff }),
  );

  it("answers as a Map of the same keys, across its growth (property)", () => {
    fc.assert(
      fc.property(
        fc.array(number, { minLength: 200, maxLength: 2000 }),
        fc.array(number, { maxLength: 200 }),
        (added, probes) => {
          const table = new NumberTable();
          const reference = new Map<number, number>();
          for (const k of added) {
            if (reference.has(k)) continue;
            expect(table.get(k)).toBe(-1);
            table.add(k, reference.size);
            reference.set(k, reference.size);
          }
          expect(table.size).toBe(reference.size);
          for (const k of [...added, ...probes]) expect(table.get(k)).toBe(reference.get(k) ?? -1);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("tells apart keys whose low bits are the same", () => {
    const table = new NumberTable();
    for (let n = 0; n < 1000; n++) table.add(n * 65536, n);
    for (let n = 0; n < 1000; n++) expect(table.get(n * 65536)).toBe(n);
    expect(table.get(65536 * 1000)).toBe(-1);
  });

  it("refuses keys and values the typed arrays would wrap", () => {
    const table = new NumberTable();
    expect(() => table.add(2 ** 32, 0)).toThrow(RangeError);
    expect(() => table.add(-1, 0)).toThrow(RangeError);
    expect(() => table.add(1, 2 ** 31)).toThrow(RangeError);
    expect(() => table.add(1.5, 0)).toThrow(RangeError);
    expect(table.size).toBe(0);
  });
});
