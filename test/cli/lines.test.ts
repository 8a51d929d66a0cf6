// Batching of followed input (cli/lines.ts): a stream that never pauses is still stored as it comes, and an
// interrupted one keeps what was read.
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { LineSplitter, lineBatches, OVERSIZED_LINE } from "../../cli/lines.ts";

describe("lineBatches", () => {
  it("closes a batch once its first line has waited maxWaitMs, though input never pauses", async () => {
    const input = new PassThrough();
    const received: { lines: string[]; at: number }[] = [];
    const start = Date.now();
    const reading = (async () => {
      for await (const batch of lineBatches(input, { maxLines: 1000, idleMs: 400, maxWaitMs: 100 })) {
        received.push({ lines: batch.lines, at: Date.now() - start });
      }
    })();
    // A line every 20 ms for about 600 ms: never idle for 400 ms.
    const sent: string[] = [];
    for (let i = 0; i < 30; i++) {
      const line = `line ${i}`;
      sent.push(line);
      input.write(`${line}\n`);
      await sleep(20);
    }
    const beforeEnd = received.length;
    input.end();
    await reading;
    expect(received.flatMap((b) => b.lines)).toEqual(sent);
    // Batches came while lines kept coming (the idle rule alone would have waited for the end).
    expect(beforeEnd).toBeGreaterThanOrEqual(3);
  });

  it("yields what was read, the last line without its newline too, when aborted", async () => {
    const input = new PassThrough();
    const controller = new AbortController();
    const batches = lineBatches(input, {
      maxLines: 1000,
      idleMs: 10_000,
      maxWaitMs: 10_000,
      signal: controller.signal,
    });
    input.write("first\nsecond\nthird without newline");
    const lines: string[] = [];
    const reading = (async () => {
      for await (const batch of batches) lines.push(...batch.lines);
    })();
    await sleep(50);
    expect(lines).toEqual([]);
    controller.abort();
    await reading;
    expect(lines).toEqual(["first", "second", "third without newline"]);
    input.destroy();
  });
});

describe("LineSplitter", () => {
  it("drops a line longer than the limit as it comes, wherever the chunks cut it, and keeps the others", () => {
    const input = `short\n${"x".repeat(25)}\nten chars!\r\n${"y".repeat(11)}\nafter\n${"z".repeat(30)}`;
    for (let cut = 1; cut <= 7; cut++) {
      const splitter = new LineSplitter(10);
      const out: string[] = [];
      for (let i = 0; i < input.length; i += cut) splitter.push(input.slice(i, i + cut), out);
      splitter.end(out);
      expect(out).toEqual(["short", OVERSIZED_LINE, "ten chars!", OVERSIZED_LINE, "after", OVERSIZED_LINE]);
    }
  });
});
