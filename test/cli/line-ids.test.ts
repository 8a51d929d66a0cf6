// Event ids of replayed lines (cli/commands/replay.ts): the same input gives the same ids, a repeated line is
// two events, also across the start-over of the repeat counts.
import { describe, expect, it } from "vitest";
import { LineIds } from "../../cli/commands/replay.ts";

describe("LineIds", () => {
  it("names repeats apart and the same input alike, across the start-over of the counts", () => {
    const input = ["same", "same", ...Array.from({ length: 200_000 }, (_, i) => `line ${i}`), "same", "same"];
    const run = () => {
      const ids = new LineIds();
      return input.map((line) => ids.next(line));
    };
    const first = run();
    expect(run()).toEqual(first);
    const same = input.flatMap((line, i) => (line === "same" ? [first[i]] : []));
    expect(new Set(same).size).toBe(4);
  });
});
