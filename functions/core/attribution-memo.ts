// Attribution memos: what the directory answered for one contribution, kept when a run fails after attributing
// its batch, so that every later run of that contribution (the Lambda's retry, a backfill finishing the claim,
// `redrive`) attributes its packets exactly as the failed run did.
//
// A flow id includes the holders of both ends, and the store deduplicates per (contribution, flow id). A run that
// stored part of its flows and failed, retried once attribution answers otherwise (Kubernetes reachable again, a
// pod since gone, the holder history since corrected), would make other flow ids for the same packets and count
// them twice. With the memo, the retry asks the same questions, gets the same answers and makes the same ids:
// what was stored is deduplicated, the rest is stored once. A Lambda run that stores its batch keeps nothing:
// building the memo would add more than a quarter to the handler's time (`npm run bench -- ingest`), and only the
// retry of a failed run needs it (the handler stops at a deadline, failing in time to keep it). The CLI's runs keep
// it before their first flow write (IngestDeps.memoBeforeWrites): a process killed while writing keeps nothing.
import { gunzipSync, gzipSync } from "node:zlib";
import type { IpDirectory, Lookup, Resolution, SpanLookup, SpanResolution } from "./types.ts";

/**
 * Largest encoded memo saved, bytes: DynamoDB's item limit is 400 KB, key and attribute names included. A
 * payload whose memo is larger (thousands of distinct pods in one delivery) is attributed afresh by its retries.
 */
export const MEMO_MAX_BYTES = 380_000;

/** What a directory answered, question by question. */
export interface AttributionMemo {
  /** The distinct answers. */
  answers: SpanResolution[];
  /** Span questions: [ip, at, until, index into answers]. */
  spans: [string, number, number, number][];
  /** Point questions: [ip, at, index into answers]. */
  points: [string, number, number][];
}

/** A saved memo and the version it was saved at (for the next conditional save). */
export interface StoredMemo {
  bytes: Uint8Array;
  version: number;
}

/** Persistence of memos, one per (cluster, contribution) (DynamoDB: functions/adapters/dynamo/memos.ts). */
export interface MemoStore {
  load(cluster: string, contribution: string): Promise<StoredMemo | undefined>;
  /**
   * Saves `bytes` if the contribution's memo is still at `version` (0: none saved); false when someone saved
   * another in between. `eventTime` (epoch ms, the batch's latest event) sets how long the memo is kept.
   */
  save(
    cluster: string,
    contribution: string,
    bytes: Uint8Array,
    version: number,
    eventTime: number,
  ): Promise<boolean>;
}

const FORMAT = 1;
const STATUSES = new Set(["found", "absent", "unavailable", "varies"]);

export class MemoFormatError extends Error {
  override name = "MemoFormatError";
}

/** The memo as bytes (gzip of JSON), or undefined when it is larger than MEMO_MAX_BYTES. */
export function encodeMemo(memo: AttributionMemo): Uint8Array | undefined {
  const bytes = gzipSync(JSON.stringify({ v: FORMAT, ...memo }));
  return bytes.length > MEMO_MAX_BYTES ? undefined : bytes;
}

export function decodeMemo(bytes: Uint8Array): AttributionMemo {
  let value: unknown;
  try {
    value = JSON.parse(gunzipSync(bytes).toString("utf8"));
  } catch (error) {
    throw new MemoFormatError(`attribution memo is not gzipped JSON: ${(error as Error).message}`);
  }
  const memo = value as Partial<AttributionMemo> & { v?: unknown };
  if (memo === null || typeof memo !== "object" || memo.v !== FORMAT) {
    throw new MemoFormatError(
      `attribution memo has format ${JSON.stringify(memo?.v)}, this version reads ${FORMAT}`,
    );
  }
  const { answers, spans, points } = memo;
  if (!Array.isArray(answers) || !Array.isArray(spans) || !Array.isArray(points)) {
    throw new MemoFormatError("attribution memo lacks its answers, spans or points");
  }
  for (const a of answers) {
    const holder = (a as { holder?: { kind?: unknown; name?: unknown } } | null)?.holder;
    if (
      a === null ||
      typeof a !== "object" ||
      !STATUSES.has((a as SpanResolution).status) ||
      ((a as SpanResolution).status === "found" &&
        (typeof holder?.kind !== "string" || typeof holder.name !== "string"))
    ) {
      throw new MemoFormatError(`attribution memo holds an answer that is none: ${JSON.stringify(a)}`);
    }
  }
  const isIndex = (i: unknown) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < answers.length;
  for (const s of spans) {
    if (!Array.isArray(s) || typeof s[0] !== "string" || !isIndex(s[3])) {
      throw new MemoFormatError(`attribution memo holds a malformed span question: ${JSON.stringify(s)}`);
    }
  }
  for (const p of points) {
    if (
      !Array.isArray(p) ||
      typeof p[0] !== "string" ||
      !isIndex(p[2]) ||
      answers[p[2]]?.status === "varies"
    ) {
      throw new MemoFormatError(`attribution memo holds a malformed point question: ${JSON.stringify(p)}`);
    }
  }
  return { answers, spans, points };
}

const VARIES: SpanResolution = { status: "varies" };
const spanKey = (ip: string, at: number, until: number) => `${ip} ${at} ${until}`;
const pointKey = (ip: string, at: number) => `${ip} ${at}`;

/** A loaded memo's answers by question, and by address for the other kind of question. */
interface KnownAnswers {
  answers: SpanResolution[];
  spans: Map<string, number>;
  points: Map<string, number>;
  /** Span questions by address: [at, until, answer], for a point inside one. */
  spansOf: Map<string, [number, number, number][]>;
  /** Addresses asked about second by second. */
  pointIps: Set<string>;
}

/** One call the wrapped directory answered, kept as it was (the arrays are not copied). */
interface Call {
  spans: boolean;
  asked: readonly (Lookup | SpanLookup)[];
  answers: readonly SpanResolution[];
}

/**
 * A directory that answers from a memo where it can, asks the directory it wraps otherwise, and records every
 * answer, so that the memo of a run can be saved for the next run of the same contribution. It answers for spans
 * exactly when the wrapped directory does, so the pipeline asks it the same questions. Recording keeps references
 * to the calls only: the memo is built when asked for, which a run that stores its batch never does.
 */
export class RecordingDirectory implements IpDirectory {
  readonly resolveSpans?: (spans: readonly SpanLookup[]) => Promise<SpanResolution[]>;
  readonly #inner: IpDirectory;
  /** The loaded memo's answers by question, and by address for the other kind of question (absent without one). */
  readonly #known: KnownAnswers | undefined;
  readonly #calls: Call[] = [];
  #added = 0;

  constructor(inner: IpDirectory, memo?: AttributionMemo) {
    this.#inner = inner;
    if (memo !== undefined) {
      const spans = new Map<string, number>();
      const points = new Map<string, number>();
      const spansOf = new Map<string, [number, number, number][]>();
      const pointIps = new Set<string>();
      for (const [ip, at, until, i] of memo.spans) {
        spans.set(spanKey(ip, at, until), i);
        const list = spansOf.get(ip);
        if (list === undefined) spansOf.set(ip, [[at, until, i]]);
        else list.push([at, until, i]);
      }
      for (const [ip, at, i] of memo.points) {
        points.set(pointKey(ip, at), i);
        pointIps.add(ip);
      }
      this.#known = { answers: memo.answers, spans, points, spansOf, pointIps };
    }
    const resolveSpans = inner.resolveSpans?.bind(inner);
    if (resolveSpans !== undefined) {
      this.resolveSpans = (asked) =>
        this.#answer(asked, true, (s) => spanKey(s.ip, s.at, s.until), resolveSpans);
    }
  }

  /** Answers this run got from the wrapped directory rather than the memo: the memo is worth saving if any. */
  get added(): number {
    return this.#added;
  }

  resolve(lookups: readonly Lookup[]): Promise<Resolution[]> {
    return this.#answer(
      lookups,
      false,
      (l) => pointKey(l.ip, l.at),
      (missing) => this.#inner.resolve(missing),
    ) as Promise<Resolution[]>;
  }

  /** The loaded memo's questions and every question asked since, each with its answer. */
  memo(): AttributionMemo {
    const answers: SpanResolution[] = [];
    const byObject = new Map<SpanResolution, number>();
    const byContent = new Map<string, number>();
    const intern = (answer: SpanResolution): number => {
      let i = byObject.get(answer);
      if (i !== undefined) return i;
      const content = JSON.stringify(answer);
      i = byContent.get(content);
      if (i === undefined) {
        i = answers.length;
        answers.push(answer);
        byContent.set(content, i);
      }
      byObject.set(answer, i);
      return i;
    };
    const spans = new Map<string, [string, number, number, number]>();
    const points = new Map<string, [string, number, number]>();
    const known = this.#known;
    if (known !== undefined) {
      const local = known.answers.map(intern);
      for (const [key, i] of known.spans) {
        const [ip, at, until] = key.split(" ");
        spans.set(key, [ip as string, Number(at), Number(until), local[i] as number]);
      }
      for (const [key, i] of known.points) {
        const [ip, at] = key.split(" ");
        points.set(key, [ip as string, Number(at), local[i] as number]);
      }
    }
    for (const call of this.#calls) {
      for (let k = 0; k < call.asked.length; k++) {
        const q = call.asked[k] as SpanLookup;
        const i = intern(call.answers[k] as SpanResolution);
        if (call.spans) spans.set(spanKey(q.ip, q.at, q.until), [q.ip, q.at, q.until, i]);
        else points.set(pointKey(q.ip, q.at), [q.ip, q.at, i]);
      }
    }
    return { answers, spans: [...spans.values()], points: [...points.values()] };
  }

  async #answer<Q extends Lookup, A extends SpanResolution>(
    asked: readonly Q[],
    spans: boolean,
    keyOf: (q: Q) => string,
    ask: (missing: readonly Q[]) => Promise<A[]>,
  ): Promise<A[]> {
    const known = this.#known;
    if (known === undefined) {
      const answers = await ask(asked);
      this.#record(spans, asked, answers);
      return answers;
    }
    const out: A[] = new Array(asked.length);
    const missing: Q[] = [];
    const at: number[] = [];
    for (let k = 0; k < asked.length; k++) {
      const answer = this.#fromMemo(asked[k] as Q, spans, keyOf);
      if (answer === undefined) {
        missing.push(asked[k] as Q);
        at.push(k);
      } else out[k] = answer as A;
    }
    if (missing.length === 0) return out;
    const answers = await ask(missing);
    this.#record(spans, missing, answers);
    for (let j = 0; j < at.length; j++) out[at[j] as number] = answers[j] as A;
    return out;
  }

  /**
   * The memo's answer to a question, also when the run that kept it asked the other kind (a directory that answers
   * for spans in the Lambda, one that does not in `redrive`, or back): a span's answer holds at every time in it,
   * and an address asked about second by second is "varies" for a span, so that the pipeline asks those seconds.
   */
  #fromMemo<Q extends Lookup>(q: Q, spans: boolean, keyOf: (q: Q) => string): SpanResolution | undefined {
    const known = this.#known as KnownAnswers;
    const i = (spans ? known.spans : known.points).get(keyOf(q));
    if (i !== undefined) return known.answers[i];
    if (spans) {
      // A span inside one the run asked about (a backfill finishing a delivery's claim a minute at a time): the
      // answer held throughout, or varied, and the run's answers for its seconds are in the memo.
      const until = (q as Lookup as SpanLookup).until;
      for (const [from, to, j] of known.spansOf.get(q.ip) ?? []) {
        if (from <= q.at && until <= to) return known.answers[j];
      }
      return known.pointIps.has(q.ip) ? VARIES : undefined;
    }
    for (const [from, until, j] of known.spansOf.get(q.ip) ?? []) {
      const answer = known.answers[j] as SpanResolution;
      if (from <= q.at && q.at <= until && answer.status !== "varies") return answer;
    }
    return undefined;
  }

  #record(spans: boolean, asked: readonly Lookup[], answers: readonly SpanResolution[]): void {
    // The pipeline checks the count too; a short answer must not be recorded as answers to other questions.
    if (answers.length !== asked.length) {
      throw new Error(
        `directory answered ${answers.length} resolutions for ${asked.length} ${spans ? "spans" : "lookups"}`,
      );
    }
    this.#calls.push({ spans, asked, answers });
    this.#added += asked.length;
  }
}
