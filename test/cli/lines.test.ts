// Batching of followed input (cli/lines.ts): a stream that never pauses is still stored as it comes, and an
// interrupted one keeps what was read.
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { type LineBatch, LineSplitter, lineBatches, OVERSIZED_LINE } from "../../cli/lines.ts";

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

  it("yields the lines read when aborted, and flags the one it stopped in the middle of instead of yielding it", async () => {
    const input = new PassThrough();
    const controller = new AbortController();
    const batches = lineBatches(input, {
      maxLines: 1000,
      idleMs: 10_000,
      maxWaitMs: 10_000,
      signal: controller.signal,
    });
    // The third line's end (its newline, and whatever else) has not come yet: "DPT=54" of a "DPT=5432".
    input.write("first\nsecond\nthird DPT=54");
    const received: LineBatch[] = [];
    const reading = (async () => {
      for await (const batch of batches) received.push(batch);
    })();
    await sleep(50);
    expect(received).toEqual([]);
    controller.abort();
    await reading;
    expect(received.flatMap((b) => b.lines)).toEqual(["first", "second"]);
    expect(received.at(-1)?.unfinished).toBe(true);
    input.destroy();
  });

  it("flags nothing when aborted between two lines, and yields a last line without a newline at the end", async () => {
    const controller = new AbortController();
    const stopped = new PassThrough();
    const batches = lineBatches(stopped, { maxLines: 1000, idleMs: 10_000, signal: controller.signal });
    stopped.write("first\nsecond\n");
    const received: LineBatch[] = [];
    const reading = (async () => {
      for await (const batch of batches) received.push(batch);
    })();
    await sleep(50);
    controller.abort();
    await reading;
    expect(received.flatMap((b) => b.lines)).toEqual(["first", "second"]);
    expect(received.some((b) => b.unfinished)).toBe(false);
    stopped.destroy();

    const ended = new PassThrough();
    ended.end("first\nlast without newline");
    const all: LineBatch[] = [];
    for await (const batch of lineBatches(ended, { maxLines: 1000, idleMs: 10_000 })) all.push(batch);
    expect(all.flatMap((b) => b.lines)).toEqual(["first", "last without newline"]);
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
