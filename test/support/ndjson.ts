// The NDJSON encoder's contract, shared by the parser's tests: for any line, the same kind of outcome as the
// parser, and for a record exactly the bytes of JSON.stringify(record) and a newline.
import { expect } from "vitest";
import type { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import type { ParseOutcome } from "../../functions/core/types.ts";

export function expectEncoded(encoder: NdjsonEncoder, line: string, outcome: ParseOutcome): void {
  const kind = encoder.encode(line);
  const bytes = Buffer.from(encoder.take()).toString("utf8");
  expect(kind).toBe(outcome.kind);
  if (outcome.kind === "record") {
    expect(bytes).toBe(`${JSON.stringify(outcome.record)}\n`);
  } else {
    expect(bytes).toBe("");
    if (outcome.kind === "error") expect(encoder.reason).toBe(outcome.reason);
  }
}
