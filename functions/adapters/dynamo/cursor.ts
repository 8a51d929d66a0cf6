// Opaque page cursors: base64url JSON of where the next page starts, bound to the query that produced it.
// A cursor is client input (it comes back through the API), so everything in it is checked before use.
import { createHash } from "node:crypto";
import { InvalidInputError } from "./keys.ts";

export interface CursorState {
  /** Alerts: the days (`yyyy-mm-dd`) known to hold alerts and not yet finished, the first being read. */
  days?: string[];
  /** Alerts: the day the listing of day markers continues from; absent once it is complete. */
  nextDay?: string;
  /** Flows by time: the hours (`yyyy-mm-ddThh`) known to hold flows and not yet finished, the first being read. */
  hours?: string[];
  /** Flows by time: the hour the listing of hour markers continues from; absent once it is complete. */
  next?: string;
  /** Sort key the next page starts after. */
  after?: string;
  /** Index queries: which of the two sides are finished. */
  done?: [boolean, boolean];
}

interface Envelope extends CursorState {
  v: 1;
  /** Fingerprint of the query the cursor belongs to. */
  q: string;
}

export class InvalidCursorError extends InvalidInputError {
  override name = "InvalidCursorError";
}

/** Stable digest of the parts of a query that shape its pages (not the cursor itself). */
export function fingerprint(parts: readonly unknown[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("base64url").slice(0, 16);
}

export function encodeCursor(query: string, state: CursorState): string {
  const envelope: Envelope = { v: 1, q: query, ...state };
  return Buffer.from(JSON.stringify(envelope)).toString("base64url");
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** `yyyy-mm-dd` naming a day there is. */
function isDay(text: string): boolean {
  return DAY.test(text) && isHour(`${text}T00`);
}
const HOUR = /^\d{4}-\d{2}-\d{2}T\d{2}$/;
/** `yyyy-mm-ddThh` naming an hour there is (not `T24`, not February 30). */
function isHour(text: string): boolean {
  if (!HOUR.test(text)) return false;
  const ms = Date.parse(`${text}:00:00.000Z`);
  return !Number.isNaN(ms) && new Date(ms).toISOString().startsWith(text);
}
/** The largest sort key DynamoDB takes. */
const MAX_SORT_KEY_BYTES = 1024;
/** More hours or days than any cursor this store issues holds (HOURS_PER_LISTING, DAYS_PER_LISTING). */
const MOST_PERIODS = 64;

/**
 * Reads a cursor made by encodeCursor for the same query. `checkAfter` validates the sort key position
 * against the query's range (a key outside it would make DynamoDB refuse the page, or skip data).
 */
export function decodeCursor(
  text: string,
  query: string,
  checkAfter: (after: string) => boolean,
): CursorState {
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new Error("not base64url");
    parsed = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw new InvalidCursorError("cursor is not one this store issued (not base64url JSON)");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidCursorError("cursor is not one this store issued (not an object)");
  }
  const c = parsed as Record<string, unknown>;
  if (c.v !== 1) throw new InvalidCursorError(`cursor version ${JSON.stringify(c.v)} is not supported`);
  if (c.q !== query) {
    throw new InvalidCursorError("cursor belongs to a different query; start again without it");
  }
  const state: CursorState = {};
  const periods = (value: unknown, valid: (text: string) => boolean): string[] => {
    if (
      !Array.isArray(value) ||
      value.length > MOST_PERIODS ||
      !value.every((p) => typeof p === "string" && valid(p))
    ) {
      throw new InvalidCursorError("cursor partitions are malformed");
    }
    return value as string[];
  };
  const period = (value: unknown, valid: (text: string) => boolean): string => {
    if (typeof value !== "string" || !valid(value)) {
      throw new InvalidCursorError("cursor partition to list from is malformed");
    }
    return value;
  };
  if (c.hours !== undefined) state.hours = periods(c.hours, isHour);
  if (c.next !== undefined) state.next = period(c.next, isHour);
  if (c.days !== undefined) state.days = periods(c.days, isDay);
  if (c.nextDay !== undefined) state.nextDay = period(c.nextDay, isDay);
  if (c.after !== undefined) {
    // DynamoDB refuses a start key past a sort key's size: the page would fail as the store's error, not the cursor's.
    if (typeof c.after !== "string" || Buffer.byteLength(c.after) > MAX_SORT_KEY_BYTES) {
      throw new InvalidCursorError("cursor position is malformed");
    }
    if (!checkAfter(c.after)) {
      throw new InvalidCursorError("cursor position is outside the query's range");
    }
    state.after = c.after;
  }
  if (c.done !== undefined) {
    const done = c.done;
    if (!Array.isArray(done) || done.length !== 2 || !done.every((d) => typeof d === "boolean")) {
      throw new InvalidCursorError("cursor side flags are malformed");
    }
    state.done = [done[0] as boolean, done[1] as boolean];
  }
  const extra = Object.keys(c).filter(
    (k) => !["v", "q", "hours", "next", "days", "nextDay", "after", "done"].includes(k),
  );
  if (extra.length > 0) throw new InvalidCursorError(`cursor has unknown fields: ${extra.join(", ")}`);
  return state;
}
