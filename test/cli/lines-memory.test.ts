// Memory of a followed stream (cli/lines.ts): `kubectl logs -f | calico-flows replay -` runs for days, so what
// lineBatches keeps must not grow with the input read. Counted by v8.queryObjects, which collects garbage first.
import { Readable } from "node:stream";
import { queryObjects } from "node:v8";
import { describe, expect, it } from "vitest";
import { lineBatches } from "../../cli/lines.ts";

/** A chunk of input, of its own class so that the chunks still in memory can be counted. */
class Chunk extends Uint8Array {}

describe("lineBatches on an endless input", () => {
  it.each([
    { case: "with a signal that never aborts (replay's)", withSignal: true },
    { case: "without a signal", withSignal: false },
  ])("keeps no chunk it has read and batched, $case", async ({ withSignal }) => {
    /** How many chunks the input may send so far, and what wakes it when that grows. */
    let allowed = 0;
    let wake = () => {};
    const more = (n: number) => {
      allowed += n;
      wake();
    };
    async function* endless(): AsyncGenerator<Chunk> {
      for (let i = 0; ; i++) {
        while (i >= allowed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        yield new Chunk(Buffer.from(`line ${i}\n`));
      }
    }
    const batches = lineBatches(Readable.from(endless(), { objectMode: true }), {
      maxLines: 100,
      idleMs: 60_000,
      maxWaitMs: 60_000,
      signal: withSignal ? new AbortController().signal : undefined,
    });
    /** Reads batches until `lines` lines in all have come. */
    let received = 0;
    const readUntil = async (lines: number) => {
      while (received < lines) {
        const batch = await batches.next();
        if (batch.done) throw new Error("the input ended");
        received += batch.value.lines.length;
      }
    };
    more(1000);
    await readUntil(1000);
    const after1000 = queryObjects(Chunk, { format: "count" });
    more(1000);
    await readUntil(2000);
    const after2000 = queryObjects(Chunk, { format: "count" });
    await batches.return(undefined);
    // The chunk just read may still be held by the readers on the way; none before it.
    expect({ after1000, after2000 }).toEqual({ after1000: 1, after2000: 1 });
  });
});
