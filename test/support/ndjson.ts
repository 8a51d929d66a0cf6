// The NDJSON encoder's contract, shared by the parser's tests: for any line, the same kind of outcome as the
// parser, and for a record exactly the bytes of JSON.stringify(record) and a newline.
import { expect } from "vitest";
import { chunkBuffer } from "../../cli/commands/parse.ts";
import type { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import type { ParseOutcome } from "../../functions/core/types.ts";

/** What the encoder answered (`kind`) and now holds for a line, against the parser's outcome for it. */
export function expectEncodedAs(encoder: NdjsonEncoder, kind: string, outcome: ParseOutcome): void {
  const bytes = Buffer.from(encoder.take()).toString("utf8");
  expect(kind).toBe(outcome.kind);
  expect(bytes).toBe(outcome.kind === "record" ? `${JSON.stringify(outcome.record)}\n` : "");
  if (outcome.kind === "error") expect(encoder.reason).toBe(outcome.reason);
}

export function expectEncoded(encoder: NdjsonEncoder, line: string, outcome: ParseOutcome): void {
  expectEncodedAs(encoder, encoder.encode(line), outcome);
}

/**
 * The ASCII `line` encoded where it lies (encodeWithin), between the lines `before` and `after` of a chunk with
 * spare bytes after it, as parseStream gives it: the same as expectEncoded, and the chunk's bytes left as they were.
 */
export function expectEncodedInPlace(
  encoder: NdjsonEncoder,
  line: string,
  outcome: ParseOutcome,
  around: { before: string; after: string },
): void {
  const text = `${around.before}\n${line}\n${around.after}`;
  const bytes = new Uint8Array(text.length + 64).fill(0x41);
  for (let k = 0; k < text.length; k++) bytes[k] = text.charCodeAt(k);
  const untouched = bytes.slice();
  const from = around.before.length + 1;
  const kind = encoder.encodeWithin(text, bytes, new DataView(bytes.buffer), from, from + line.length);
  expectEncodedAs(encoder, kind, outcome);
  expect(bytes).toEqual(untouched);
}

/**
 * `bytes` cut into chunks of the sizes `cuts` (the rest in a last one), each in memory of chunkBuffer's with room
 * after it, as readStdin's are, so that parseStream parses ASCII lines in place; the room is filled with `fill`.
 */
export function chunksAt(bytes: Buffer, cuts: readonly number[], fill?: number): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  for (const size of [...cuts, bytes.length]) {
    if (at >= bytes.length) break;
    const n = Math.min(size, bytes.length - at);
    const memory = chunkBuffer(n);
    if (fill !== undefined) memory.fill(fill);
    bytes.copy(memory, 0, at, at + n);
    chunks.push(memory.subarray(0, n));
    at += n;
  }
  return chunks;
}
