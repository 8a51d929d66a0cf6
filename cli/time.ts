// Time arguments: ISO-8601 instants, `now`, or durations before now (`90s`, `15m`, `6h`, `7d`), as the query API
// takes them (functions/core/instant.ts).
import { InvalidArgumentError } from "commander";
import { durationOf, INSTANT_HELP, instantOf } from "../functions/core/instant.ts";
import { UsageError } from "./common.ts";

/** A time option's value, read when the command runs (relative times are relative to `now`). */
export function parseInstant(value: string, now: number = Date.now()): number {
  const at = instantOf(value, now);
  if (at === undefined) throw new UsageError(`expected ${INSTANT_HELP}; got "${value}"`);
  return at;
}

export function parseDurationMs(value: string): number {
  const ms = durationOf(value);
  if (ms === undefined)
    throw new InvalidArgumentError(`expected a duration like 90s, 15m, 6h; got "${value}"`);
  return ms;
}
