// Attribution memos: a run's directory answers, recorded, encoded and replayed, so that a retry attributes alike.
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  type AttributionMemo,
  decodeMemo,
  encodeMemo,
  MEMO_MAX_BYTES,
  MemoFormatError,
  RecordingDirectory,
} from "../../functions/core/attribution-memo.ts";
import type {
  Holder,
  IpDirectory,
  Lookup,
  Resolution,
  SpanLookup,
  SpanResolution,
} from "../../functions/core/types.ts";

const pod = (name: string, labels?: Record<string, string>): Holder => ({
  kind: "pod",
  namespace: "shop",
  name,
  workload: { kind: "Deployment", name: name.split("-")[0] as string },
  node: "ip-192-168-74-5",
  uid: `uid-${name}`,
  validFrom: 1_000,
  validTo: null,
  ...(labels === undefined ? {} : { labels }),
});

/** A directory with fixed answers that counts what it is asked; `spans` decides whether it answers for spans. */
class Counting implements IpDirectory {
  asked: { spans: number; points: number } = { spans: 0, points: 0 };
  resolveSpans?: (spans: readonly SpanLookup[]) => Promise<SpanResolution[]>;
  readonly #holders: Record<string, Holder>;

  constructor(holders: Record<string, Holder>, spans: boolean) {
    this.#holders = holders;
    if (spans) {
      this.resolveSpans = async (asked) => {
        this.asked.spans += asked.length;
        // 192.168.9.9 changed holder within the span: asked per second then.
        return asked.map((s) => (s.ip === "192.168.9.9" ? { status: "varies" } : this.#answer(s.ip)));
      };
    }
  }

  async resolve(lookups: readonly Lookup[]): Promise<Resolution[]> {
    this.asked.points += lookups.length;
    return lookups.map((l) =>
      l.ip === "192.168.9.9"
        ? { status: "found", holder: pod(l.at < 5_000 ? "web-old" : "web-new") }
        : this.#answer(l.ip),
    );
  }

  #answer(ip: string): Resolution {
    if (ip === "192.168.0.99") return { status: "unavailable", reason: "API server unreachable" };
    const holder = this.#holders[ip];
    return holder === undefined ? { status: "absent" } : { status: "found", holder };
  }
}

const HOLDERS = { "192.168.1.1": pod("web-a", { team: "shop" }), "192.168.1.2": pod("db-0") };
const SPANS: SpanLookup[] = [
  { ip: "192.168.1.1", at: 1_000, until: 9_000 },
  { ip: "192.168.1.2", at: 2_000, until: 2_000 },
  { ip: "192.168.0.99", at: 3_000, until: 4_000 },
  { ip: "192.168.7.7", at: 3_000, until: 3_000 },
  { ip: "192.168.9.9", at: 4_000, until: 6_000 },
];
const POINTS: Lookup[] = [
  { ip: "192.168.9.9", at: 4_000 },
  { ip: "192.168.9.9", at: 6_000 },
];

async function ask(directory: IpDirectory): Promise<{ spans: SpanResolution[]; points: Resolution[] }> {
  const spans = await (directory.resolveSpans as NonNullable<IpDirectory["resolveSpans"]>)(SPANS);
  return { spans, points: await directory.resolve(POINTS) };
}

describe("RecordingDirectory", () => {
  it("answers for spans exactly when the directory it wraps does", () => {
    expect(new RecordingDirectory(new Counting(HOLDERS, true)).resolveSpans).toBeTypeOf("function");
    expect(new RecordingDirectory(new Counting(HOLDERS, false)).resolveSpans).toBeUndefined();
  });

  it("passes answers through and, from its encoded memo, answers a new run alike without asking", async () => {
    const first = new Counting(HOLDERS, true);
    const recorder = new RecordingDirectory(first);
    const answered = await ask(recorder);
    expect(answered).toEqual(await ask(new Counting(HOLDERS, true)));
    expect(recorder.added).toBe(SPANS.length + POINTS.length);

    const bytes = encodeMemo(recorder.memo()) as Uint8Array;
    // Kubernetes answers otherwise now: every holder changed, and the API is down.
    const changed = new Counting({}, true);
    changed.resolve = async (lookups) =>
      lookups.map(() => ({ status: "unavailable", reason: "API server unreachable" }));
    const replay = new RecordingDirectory(changed, decodeMemo(bytes));
    expect(await ask(replay)).toEqual(answered);
    expect(changed.asked).toEqual({ spans: 0, points: 0 });
    expect(replay.added).toBe(0);
  });

  it("asks only what its memo lacks, and its memo then holds both", async () => {
    const recorder = new RecordingDirectory(new Counting(HOLDERS, true));
    await recorder.resolveSpans?.(SPANS.slice(0, 2));
    const partial = decodeMemo(encodeMemo(recorder.memo()) as Uint8Array);
    const inner = new Counting(HOLDERS, true);
    const next = new RecordingDirectory(inner, partial);
    expect(await ask(next)).toEqual(await ask(new Counting(HOLDERS, true)));
    expect(inner.asked).toEqual({ spans: SPANS.length - 2, points: POINTS.length });
    expect(next.added).toBe(SPANS.length - 2 + POINTS.length);
    const whole = next.memo();
    expect(whole.spans).toHaveLength(SPANS.length);
    expect(whole.points).toHaveLength(POINTS.length);
  });

  it("keeps each distinct answer once, however many questions and objects carry it", async () => {
    const inner: IpDirectory = {
      resolve: async (lookups) => lookups.map(() => ({ status: "found", holder: pod("web-a") })),
    };
    const recorder = new RecordingDirectory(inner);
    await recorder.resolve(Array.from({ length: 50 }, (_, k) => ({ ip: `192.168.1.${k}`, at: 1_000 })));
    const memo = recorder.memo();
    expect(memo.answers).toHaveLength(1);
    expect(memo.points).toHaveLength(50);
  });

  it('asks the directory a point question whose address varied over the memo\'s span, never answering "varies"', async () => {
    const first = new RecordingDirectory(new Counting(HOLDERS, true));
    await first.resolveSpans?.(SPANS);
    // A retry with a directory that answers points only (redrive without pods); 192.168.9.9 varied over 4–6 s.
    const inner = new Counting(HOLDERS, false);
    const retry = new RecordingDirectory(inner, decodeMemo(encodeMemo(first.memo()) as Uint8Array));
    expect(
      await retry.resolve([
        { ip: "192.168.1.1", at: 5_000 },
        { ip: "192.168.9.9", at: 4_500 },
        { ip: "192.168.9.9", at: 5_500 },
      ]),
    ).toEqual([
      { status: "found", holder: pod("web-a", { team: "shop" }) },
      { status: "found", holder: pod("web-old") },
      { status: "found", holder: pod("web-new") },
    ]);
    expect(inner.asked).toEqual({ spans: 0, points: 2 });
  });

  it("answers a span from the memo only when a span of the memo contains it", async () => {
    // 192.168.1.1 was web-a's until 9 s, web-b's after: a span over 9 s varies.
    const asked: SpanLookup[] = [];
    const inner: IpDirectory = {
      resolve: async (lookups) =>
        lookups.map((l) => ({ status: "found", holder: pod(l.at <= 9_000 ? "web-a" : "web-b") })),
      resolveSpans: async (spans) => {
        asked.push(...spans);
        return spans.map((s) =>
          s.until <= 9_000
            ? { status: "found", holder: pod("web-a") }
            : s.at > 9_000
              ? { status: "found", holder: pod("web-b") }
              : { status: "varies" },
        );
      },
    };
    const first = new RecordingDirectory(inner);
    await first.resolveSpans?.([{ ip: "192.168.1.1", at: 1_000, until: 9_000 }]);
    asked.length = 0;
    const retry = new RecordingDirectory(inner, decodeMemo(encodeMemo(first.memo()) as Uint8Array));
    const later: SpanLookup[] = [
      { ip: "192.168.1.1", at: 2_000, until: 9_000 },
      { ip: "192.168.1.1", at: 5_000, until: 12_000 },
      { ip: "192.168.1.1", at: 500, until: 3_000 },
    ];
    expect(await retry.resolveSpans?.(later)).toEqual([
      { status: "found", holder: pod("web-a") },
      { status: "varies" },
      { status: "found", holder: pod("web-a") },
    ]);
    expect(asked).toEqual(later.slice(1));
  });

  it("refuses a directory that answers fewer questions than it was asked", async () => {
    const short: IpDirectory = {
      resolve: async (lookups) => lookups.slice(1).map(() => ({ status: "absent" })),
    };
    await expect(new RecordingDirectory(short).resolve(POINTS)).rejects.toThrow(
      "directory answered 1 resolutions for 2 lookups",
    );
  });
});

describe("memo encoding", () => {
  it("is refused past MEMO_MAX_BYTES, where DynamoDB would refuse the item", () => {
    const answers: SpanResolution[] = Array.from({ length: 450 }, (_, k) => ({
      status: "found",
      holder: pod(`web-${k}`, { noise: randomBytes(1_000).toString("base64") }),
    }));
    const memo: AttributionMemo = {
      answers,
      spans: [],
      points: answers.map((_, k) => [`10.0.${k}.1`, 0, k]),
    };
    expect(encodeMemo(memo)).toBeUndefined();
    const smaller = { answers: answers.slice(0, 100), spans: [], points: memo.points.slice(0, 100) };
    expect((encodeMemo(smaller) as Uint8Array).length).toBeLessThanOrEqual(MEMO_MAX_BYTES);
  });

  it("refuses what is not a memo of this format", () => {
    const of = (value: unknown) => gzipSync(JSON.stringify(value));
    expect(() => decodeMemo(Buffer.from("not gzip"))).toThrow(MemoFormatError);
    expect(() => decodeMemo(of({ v: 2, answers: [], spans: [], points: [] }))).toThrow(/format 2/);
    expect(() => decodeMemo(of({ v: 1, answers: [], spans: [] }))).toThrow(MemoFormatError);
    expect(() => decodeMemo(of({ v: 1, answers: [{ status: "maybe" }], spans: [], points: [] }))).toThrow(
      MemoFormatError,
    );
    const absent = { status: "absent" };
    expect(() =>
      decodeMemo(of({ v: 1, answers: [absent], spans: [["10.0.0.1", 0, 0, 1]], points: [] })),
    ).toThrow(/span question/);
    expect(() =>
      decodeMemo(of({ v: 1, answers: [{ status: "varies" }], spans: [], points: [["10.0.0.1", 0, 0]] })),
    ).toThrow(/point question/);
    expect(decodeMemo(of({ v: 1, answers: [absent], spans: [["10.0.0.1", 0, 5, 0]], points: [] }))).toEqual({
      answers: [absent],
      spans: [["10.0.0.1", 0, 5, 0]],
      points: [],
    });
  });
});
