// Event ids of replayed lines (cli/commands/replay.ts): the same lines give the same ids whatever came before them,
// a repeated line is two events, also across a new generation of the repeat counts, and the counts of texts the
// newest line has left behind are forgotten.
import { describe, expect, it } from "vitest";
import { LineIds } from "../../cli/commands/replay.ts";
import { digest } from "../../functions/core/aggregate.ts";

const T = Date.UTC(2026, 3, 19, 6, 0, 0);

describe("LineIds", () => {
  it("names repeats apart and the same input alike, across a generation begun by the count of texts", () => {
    // Untimed lines: only the count of texts begins a generation.
    const input = ["same", "same", ...Array.from({ length: 200_000 }, (_, i) => `line ${i}`), "same", "same"];
    const run = () => {
      const ids = new LineIds();
      return input.map((line) => ids.next(line, Number.NaN));
    };
    const first = run();
    expect(run()).toEqual(first);
    const same = input.flatMap((line, i) => (line === "same" ? [first[i]] : []));
    expect(same).toEqual([0, 1, 2, 3].map((n) => `${digest("same")}#0.${n}`));
  });

  it("names a line by itself and its repeats alone, whatever came before it", () => {
    // A restarted `kubectl logs -f` sends its last lines again to a new replay: past 200,000 distinct lines too.
    const input = Array.from({ length: 200_020 }, (_, i) => ({ line: `line ${i}`, time: T + i }));
    const all = new LineIds();
    const first = input.map(({ line, time }) => all.next(line, time));
    const restarted = new LineIds();
    const again = input.slice(-20).map(({ line, time }) => restarted.next(line, time));
    expect(again).toEqual(first.slice(-20));
    // The form ids had before the counts were kept by time, for the lines those replays had counted.
    expect(first[5]).toBe(`${digest("line 5")}#0.0`);
  });

  it("keeps a text's count a window after it was last seen, and forgets it after two", () => {
    const ids = new LineIds();
    expect(ids.next("same", T)).toBe(`${digest("same")}#0.0`);
    // A new generation begins here; the text is carried over when seen again, even behind the newest line.
    ids.next("later", T + 60_000);
    expect(ids.next("same", T)).toBe(`${digest("same")}#0.1`);
    ids.next("later", T + 120_000);
    ids.next("same", T + 120_000);
    ids.next("later", T + 180_000);
    ids.next("later", T + 240_000);
    expect(ids.next("same", T)).toBe(`${digest("same")}#0.0`);
  });
});
