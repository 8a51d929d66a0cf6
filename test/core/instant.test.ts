// Time arguments of the CLI and the query API (functions/core/instant.ts).
import { afterEach, describe, expect, it } from "vitest";
import { normalizeInstant } from "../../functions/adapters/dynamo/keys.ts";
import { durationOf, instantOf, isoMs } from "../../functions/core/instant.ts";

const NOW = Date.parse("2026-12-06T12:00:00.000Z");
const zone = process.env.TZ;

afterEach(() => {
  if (zone === undefined) delete process.env.TZ;
  else process.env.TZ = zone;
});

describe("instantOf", () => {
  it("reads ISO times, now and durations before now", () => {
    expect(instantOf("2024-04-19T04:52:19.123Z", NOW)).toBe(Date.UTC(2024, 3, 19, 4, 52, 19, 123));
    expect(instantOf("2024-04-19T06:52:19+02:00", NOW)).toBe(Date.UTC(2024, 3, 19, 4, 52, 19));
    expect(instantOf("2024-04-19", NOW)).toBe(Date.UTC(2024, 3, 19));
    expect(instantOf("now", NOW)).toBe(NOW);
    expect(instantOf("15m", NOW)).toBe(NOW - 15 * 60_000);
    expect(durationOf("2w")).toBe(14 * 86_400_000);
  });

  it("takes offsets in whole hours, or in hours and minutes with or without a colon", () => {
    const at = Date.UTC(2024, 3, 19, 4, 52, 19);
    for (const value of [
      "2024-04-19T06:52:19+02",
      "2024-04-19T06:52:19+0200",
      "2024-04-19T06:52:19+02:00",
      "2024-04-19T01:22:19-03:30",
      "2024-04-19T01:22:19-0330",
      "2024-04-19T04:52:19.000-00",
    ]) {
      expect(instantOf(value, NOW), value).toBe(at);
    }
    expect(normalizeInstant("2024-04-19T06:52+02", "since")).toBe("2024-04-19T04:52:00.000Z");
  });

  it("refuses what Date.parse would take for a year, and what a Date cannot hold", () => {
    for (const value of ["90", "1", "yesterday", "999999999d", "NOW", "15M"]) {
      expect(instantOf(value, NOW)).toBeUndefined();
    }
  });

  it("takes RFC 3339's spellings too: a space or t between date and time, z for UTC", () => {
    for (const tz of ["America/New_York", "Asia/Kolkata", "UTC"]) {
      process.env.TZ = tz;
      for (const value of [
        "2024-04-19 04:52:19",
        "2024-04-19 04:52:19Z",
        "2024-04-19t04:52:19z",
        "2024-04-19T04:52:19.000z",
        "2024-04-19 06:52:19+02:00",
      ]) {
        expect(instantOf(value, NOW), value).toBe(Date.UTC(2024, 3, 19, 4, 52, 19));
      }
      expect(normalizeInstant("2024-04-19 04:00", "since")).toBe("2024-04-19T04:00:00.000Z");
    }
    // Only that one separator, only there.
    for (const value of [
      "2024-04-19  04:52",
      " 2024-04-19T04:52",
      "2024-04-19T04:52 ",
      "2024-04-19 ",
      "2024-04-19z",
      "2024-04-19_04:52",
    ]) {
      expect(instantOf(value, NOW), value).toBeUndefined();
    }
  });

  it("takes a time without an offset as UTC, whatever the process's time zone", () => {
    for (const tz of ["America/New_York", "Asia/Kolkata", "UTC"]) {
      process.env.TZ = tz;
      expect(instantOf("2024-04-19T04:00", NOW)).toBe(Date.UTC(2024, 3, 19, 4));
      expect(isoMs("2024-04-19T04:00:30.5")).toBe(Date.UTC(2024, 3, 19, 4, 0, 30, 500));
      expect(normalizeInstant("2024-04-19T04:00", "since")).toBe("2024-04-19T04:00:00.000Z");
    }
  });
});
