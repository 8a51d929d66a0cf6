// A line parsed every way the parser's tests hold it to: the fast path, the token-by-token reference (which must
// agree with it) and the NDJSON encoder (which must write exactly the record's JSON).
import { expect } from "vitest";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createReferenceParser, type ParseOptions, parseLine } from "../../functions/core/parse.ts";
import type { PacketRecord, ParseOutcome } from "../../functions/core/types.ts";
import { expectEncoded } from "./ndjson.ts";

/** Mid-2024, so that year-less timestamps of April 2024 are in the past. */
export const PARSE_NOW = Date.UTC(2024, 5, 1);

export function outcomes(line: string, options: ParseOptions = {}): ParseOutcome {
  const opts = { now: PARSE_NOW, ...options };
  const fast = parseLine(line, opts);
  expect(createReferenceParser(opts)(line)).toEqual(fast);
  expectEncoded(new NdjsonEncoder(opts), line, fast);
  return fast;
}

export function record(line: string, options: ParseOptions = {}): PacketRecord {
  const outcome = outcomes(line, options);
  if (outcome.kind !== "record") throw new Error(`expected a record, got ${JSON.stringify(outcome)}`);
  return outcome.record;
}
