// Time arguments of the CLI and the query API: an ISO-8601 instant, `now`, or a duration before now (`90s`, `15m`,
// `6h`, `7d`, `2w`). Only these: Date.parse alone would take "1" as 2001 and "90" as 1990.

/**
 * A date, or a date and time with an optional fraction and offset; the offset in hours and minutes, or in whole
 * hours (`+02`), as ISO 8601 allows. `T` and `Z` are matched in upper case: `spelled` first takes RFC 3339's
 * other spellings of them (lower case, a space for `T`) to these.
 */
export const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}(?<time>T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?<offset>Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/**
 * RFC 3339 (section 5.6) also writes `t` and `z`, and lets a space separate the date from the time, as logs and
 * `kubectl`/`journalctl` print them: those become `T` and `Z`. Only there, so `now`, `15m` and `NOW` stay apart.
 */
function spelled(value: string): string {
  const separator = value.charAt(10);
  let text = value;
  if (separator === " " || separator === "t") text = `${text.slice(0, 10)}T${text.slice(11)}`;
  return text.length > 10 && text.endsWith("z") ? `${text.slice(0, -1)}Z` : text;
}

/** The same instant as Date.parse reads it: UTC when no offset is given, and minutes in the offset. */
function canonical(value: string, time: string | undefined, offset: string | undefined): string {
  if (time === undefined) return value;
  if (offset === undefined) return `${value}Z`;
  if (offset === "Z" || offset.length > 3) return value;
  return `${value}:00`;
}

const DURATION = /^(\d{1,9})([smhdw])$/;
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** The instants ISO-8601 with a four-digit year names, as the store's keys spell them (`toISOString()`). */
export const EARLIEST_MS = Date.parse("0000-01-01T00:00:00.000Z");
const LATEST_MS = Date.parse("9999-12-31T23:59:59.999Z");

export const INSTANT_HELP =
  'an ISO-8601 or RFC 3339 time (UTC unless it has an offset), "now" or a duration before now like 15m, 6h, 7d';

/**
 * Epoch ms of ISO-8601 text, NaN for other text. A time without an offset is UTC, as every time calico-flows prints
 * is (Date.parse would read it in the process's time zone: the CLI on a laptop and the API in Lambda would then
 * disagree about the same words).
 */
export function isoMs(text: string): number {
  const value = spelled(text);
  const match = ISO_8601.exec(value);
  if (match === null) return Number.NaN;
  const { time, offset } = match.groups as { time?: string; offset?: string };
  // Date.parse rolls a day its month does not have over (2026-02-30 would be March 2): refuse it.
  const day = Date.parse(value.slice(0, 10));
  if (Number.isNaN(day) || new Date(day).toISOString().slice(0, 10) !== value.slice(0, 10)) return Number.NaN;
  return Date.parse(canonical(value, time, offset));
}

/** Epoch ms of a time argument, or undefined when it is none (or falls outside the years 0000–9999). */
export function instantOf(value: string, now: number): number | undefined {
  let at: number;
  if (value === "now") {
    at = now;
  } else {
    const duration = DURATION.exec(value);
    if (duration !== null) at = now - Number(duration[1]) * (UNIT_MS[duration[2] as string] as number);
    else if (ISO_8601.test(spelled(value))) at = isoMs(value);
    else return undefined;
  }
  return Number.isFinite(at) && at >= EARLIEST_MS && at <= LATEST_MS ? at : undefined;
}

/** Milliseconds of a duration argument (`90s`, `15m`, `6h`, `7d`, `2w`), or undefined. */
export function durationOf(value: string): number | undefined {
  const duration = DURATION.exec(value);
  return duration === null ? undefined : Number(duration[1]) * (UNIT_MS[duration[2] as string] as number);
}
