// The e-mail of a batch of the alerts topic's messages: one message as it is; several as a digest that counts
// them, indexes them and gives their texts, the most urgent first, within SNS's 262,144 bytes.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertDigest, type DigestMessage, unreadableMessage } from "../../functions/core/alert-digest.ts";
import { MAX_PUBLISH_BYTES, MAX_SUBJECT_LENGTH } from "../../functions/core/alert-message.ts";

const OPTIONS = {
  cluster: "prod",
  storeArgs: ["--api", "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/"],
  // Before every message's time: none is late, but in the tests of late messages.
  now: Date.parse("2026-04-19T00:00:00.000Z"),
};

function message(extra: Partial<DigestMessage> = {}): DigestMessage {
  return {
    subject: "Calico denied customer-a/web → customer-b/db:8012/TCP (prod)",
    text: "Calico denied traffic between two endpoints inside cluster prod.\n",
    panic: false,
    high: true,
    at: "2026-04-19T04:52:19.000Z",
    ...extra,
  };
}

const size = (d: { subject: string; text: string }) =>
  Buffer.byteLength(d.subject) + Buffer.byteLength(d.text);

describe("alertDigest", () => {
  it("mails one message as it is: its own subject and text", () => {
    const only = message({ text: "the text\nas it was\n" });
    expect(alertDigest([only], OPTIONS)).toEqual({ subject: only.subject, text: only.text, leftOut: 0 });
  });

  it("counts several in its subject, indexes them, then gives each text: panic, then high severity, then oldest", () => {
    const messages = [
      message({ subject: "low, oldest", text: "text A\n", high: false, at: "2026-04-19T04:00:00.000Z" }),
      message({ subject: "high, newer", text: "text B\n", at: "2026-04-19T05:00:00.000Z" }),
      message({
        subject: "panic, low",
        text: "text C\n",
        panic: true,
        high: false,
        at: "2026-04-19T06:00:00.000Z",
      }),
      message({ subject: "high, older", text: "text D\n", at: "2026-04-19T04:30:00.000Z" }),
    ];
    const digest = alertDigest(messages, OPTIONS);
    expect(digest.subject).toBe("[4 messages] panic, low");
    expect(digest.leftOut).toBe(0);
    expect(digest.text).toBe(
      [
        "4 messages from the calico-flows alerts topic of cluster prod: panic announcements first, then high " +
          "severity, then the oldest.",
        "",
        "  1. panic, low",
        "  2. high, older",
        "  3. high, newer",
        "  4. low, oldest",
        "",
        "===== 1 of 4 =====",
        "panic, low",
        "",
        "text C",
        "",
        "===== 2 of 4 =====",
        "high, older",
        "",
        "text D",
        "",
        "===== 3 of 4 =====",
        "high, newer",
        "",
        "text B",
        "",
        "===== 4 of 4 =====",
        "low, oldest",
        "",
        "text A",
        "",
      ].join("\n"),
    );
  });

  it("keeps its subject under 100 characters and on one line, whatever the first message's", () => {
    const long = message({ subject: `Calico denied ${"x".repeat(90)} → ${"y".repeat(90)} (prod)` });
    const digest = alertDigest([long, message()], OPTIONS);
    expect(digest.subject.length).toBeLessThanOrEqual(MAX_SUBJECT_LENGTH);
    expect(digest.subject).toMatch(/^\[2 messages\] Calico denied x+…y+ \(prod\)$/);
    expect(alertDigest([message({ subject: "a\nb" }), message()], OPTIONS).subject).not.toMatch(/\n/);
  });

  it("leaves the last texts out to stay within SNS's limit, saying how many and how to list their alerts", () => {
    const big = "x".repeat(40_000);
    const messages = Array.from({ length: 10 }, (_, i) =>
      message({
        subject: `alert ${i}`,
        text: `${big}\n`,
        high: i < 5,
        at: `2026-04-19T0${i}:00:00.000Z`,
      }),
    );
    const digest = alertDigest(messages, OPTIONS);
    expect(size(digest)).toBeLessThanOrEqual(MAX_PUBLISH_BYTES);
    // Six texts of 40 KB fit in 256 KB with the index; the four last (low, then the oldest first) do not.
    expect(digest.leftOut).toBe(4);
    expect(digest.text.match(/^===== \d+ of 10 =====$/gm)).toHaveLength(6);
    expect(digest.text.match(/^ {2}[ \d]\d\. alert \d$/gm)).toHaveLength(10);
    expect(digest.text).toContain(
      "===== 4 more left out =====\nThe texts of messages 7 to 10 are left out of this e-mail, which would pass " +
        "SNS's limit of 256 KB. List the alerts among them with:\n" +
        `   calico-flows alerts --api ${OPTIONS.storeArgs[1]} --cluster prod --since 2026-04-19T06:00:00.000Z\n`,
    );
    expect(digest.text.endsWith("--since 2026-04-19T06:00:00.000Z\n")).toBe(true);
  });

  it("lists what is left out from the oldest of it, an older low alert after newer high ones", () => {
    const big = "x".repeat(40_000);
    const messages = [
      ...Array.from({ length: 8 }, (_, i) =>
        message({ subject: `high ${i}`, text: `${big}\n`, at: `2026-04-19T10:0${i}:00.000Z` }),
      ),
      message({ subject: "low, oldest", text: `${big}\n`, high: false, at: "2026-04-19T09:00:00.000Z" }),
    ];
    const digest = alertDigest(messages, OPTIONS);
    // high 6 and 7 (10:06, 10:07) and the low one (09:00) are left out: the command must find all three.
    expect(digest.leftOut).toBe(3);
    expect(digest.text).toContain("The texts of messages 7 to 9 are left out");
    expect(digest.text.endsWith("--cluster prod --since 2026-04-19T09:00:00.000Z\n")).toBe(true);
  });

  it("marks a message older than 15 minutes late, in its lines and in the subject it gives", () => {
    const now = Date.parse("2026-04-19T05:00:00.000Z");
    const redriven = message({ subject: "panic applied", panic: true, at: "2026-04-10T04:59:00.000Z" });
    const messages = [
      message({ subject: "fresh", at: "2026-04-19T04:45:00.000Z" }),
      message({ subject: "hours", at: "2026-04-19T01:30:00.000Z" }),
      message({ subject: "minutes", high: false, at: "2026-04-19T04:44:59.000Z" }),
      redriven,
    ];
    const digest = alertDigest(messages, { ...OPTIONS, now });
    expect(digest.subject).toBe("[4 messages] [late: 9d] panic applied");
    expect(digest.text.match(/^ {2}\d\. .*$/gm)).toEqual([
      "  1. [late: 9d] panic applied",
      "  2. [late: 3h] hours",
      "  3. fresh",
      "  4. [late: 15m] minutes",
    ]);
    expect(digest.text.match(/^===== .* =====$/gm)).toEqual([
      "===== 1 of 4 [late: 9d] =====",
      "===== 2 of 4 [late: 3h] =====",
      "===== 3 of 4 =====",
      "===== 4 of 4 [late: 15m] =====",
    ]);
    // The subject is the first message's: a late one further down does not mark it.
    const current = message({ subject: "current", panic: true, at: "2026-04-19T04:59:00.000Z" });
    const old = message({ subject: "old", high: false, at: "2026-04-10T04:59:00.000Z" });
    expect(alertDigest([old, current], { ...OPTIONS, now }).subject).toBe("[2 messages] current");
    // Alone, it is its own e-mail, its subject marked.
    expect(alertDigest([redriven], { ...OPTIONS, now })).toEqual({
      subject: "[late: 9d] panic applied",
      text: redriven.text,
      leftOut: 0,
    });
  });

  it("cuts the most urgent text rather than leave it out, alone or first of several", () => {
    const huge = message({ subject: "huge", text: `${"é".repeat(200_000)}\n`, panic: true });
    const alone = alertDigest([huge], OPTIONS);
    expect(size(alone)).toBeLessThanOrEqual(MAX_PUBLISH_BYTES);
    expect(size(alone)).toBeGreaterThan(MAX_PUBLISH_BYTES - 100);
    expect(alone.text).toMatch(/^é+\n\n\[… cut short: this text would pass SNS's 256 KB limit\.\]\n$/);
    const first = alertDigest([message(), huge, message()], OPTIONS);
    expect(size(first)).toBeLessThanOrEqual(MAX_PUBLISH_BYTES);
    expect(first.text).toContain("===== 1 of 3 =====\nhuge\n\néééé");
    expect(first.text).toContain("cut short");
    expect(first.leftOut).toBe(2);
  });

  it("is well-formed, and within SNS's limit, whatever the messages", () => {
    // Long texts of any characters (lone surrogates too), made by repeating a short one: quick to generate.
    const text = fc
      .tuple(fc.string({ unit: "binary", minLength: 1, maxLength: 6 }), fc.nat(20_000))
      .map(([piece, times]) => piece.repeat(times));
    const one = fc.record({
      subject: fc.string({ maxLength: 99 }),
      text,
      panic: fc.boolean(),
      high: fc.boolean(),
      at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    });
    fc.assert(
      fc.property(fc.array(one, { minLength: 1, maxLength: 12 }), (messages) => {
        const digest = alertDigest(messages, OPTIONS);
        expect(size(digest)).toBeLessThanOrEqual(MAX_PUBLISH_BYTES);
        expect(digest.text.isWellFormed()).toBe(true);
        expect(digest.subject.isWellFormed()).toBe(true);
        expect(digest.leftOut).toBeGreaterThanOrEqual(0);
        expect(digest.leftOut).toBeLessThan(messages.length === 1 ? 1 : messages.length);
      }),
      { numRuns: 25 },
    );
  });
});

describe("unreadableMessage", () => {
  it("keeps the body as it came, ranked with the high-severity messages", () => {
    const unreadable = unreadableMessage("not json {", "2026-04-19T04:52:19.000Z", "prod");
    expect(unreadable).toMatchObject({
      subject: "Calico: a message calico-flows cannot read (prod)",
      panic: false,
      high: true,
      at: "2026-04-19T04:52:19.000Z",
    });
    expect(unreadable.text.endsWith("As it came:\n\nnot json {\n")).toBe(true);
  });
});
