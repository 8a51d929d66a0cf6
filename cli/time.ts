// Time arguments: ISO-8601 instants, `now`, or durations before now (`90s`, `15m`, `6h`, `7d`).
import { InvalidArgumentError } from "commander";

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseInstant(value: string, now: number = Date.now()): number {
  if (value === "now") return now;
  const duration = /^(\d+)([smhdw])$/.exec(value);
  if (duration) return now - Number(duration[1]) * (UNIT_MS[duration[2] as string] as number);
  const at = Date.parse(value);
  if (Number.isNaN(at)) {
    throw new InvalidArgumentError(
      `expected an ISO-8601 time, "now" or a duration like 15m, 6h, 7d; got "${value}"`,
    );
  }
  return at;
}

export function parseDurationMs(value: string): number {
  const duration = /^(\d+)([smhdw])$/.exec(value);
  if (!duration) throw new InvalidArgumentError(`expected a duration like 90s, 15m, 6h; got "${value}"`);
  return Number(duration[1]) * (UNIT_MS[duration[2] as string] as number);
}
