// Splits a byte stream into lines and groups them into batches. A batch is closed when it is full, when the
// input has been idle for a moment, or when its first line has waited long enough, so that
// `kubectl logs -f | calico-flows replay -` stores flows as they happen even when lines never stop coming.
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";

export interface BatchOptions {
  maxLines: number;
  /** Longest line kept (characters). @default MAX_LINE_LENGTH */
  maxLineLength?: number;
  /** Close a non-empty batch after this long without input (ms). */
  idleMs: number;
  /** Close a non-empty batch this long after its first line came (ms), input or not. @default 2000 */
  maxWaitMs?: number;
  /**
   * Stop reading when aborted: the lines read so far are still yielded, but not a last one whose newline was not
   * read yet (`unfinished`): reading stopped in the middle of it, and its end may be anything (a port cut to its
   * first digits). At the end of the input, a last line without a newline is a line.
   */
  signal?: AbortSignal;
  /** The clock (ms). @default Date.now */
  now?: () => number;
  /** Calls `fire` in `ms` unless the function it returns is called first: the batch's wait. @default setTimeout */
  after?: (ms: number, fire: () => void) => () => void;
  /** Called with the first bytes read, before they are decoded: throws to refuse them (notText, checkedStart). */
  checkStart?: (bytes: Buffer) => void;
}

export interface LineBatch {
  lines: string[];
  /** Bytes of input consumed so far, for progress. */
  bytesRead: number;
  /** Reading was aborted in the middle of a line, which is left out: it follows `lines`. */
  unfinished?: boolean;
}

/**
 * Longest line kept in memory (characters), by `replay` and `parse`; a longer one is dropped unread and counted
 * malformed (by `parse` only when the text dropped held the calico prefix, skipped otherwise).
 */
export const MAX_LINE_LENGTH = 16 * 1024 * 1024;
/** Stands for a line longer than the limit, which is dropped as it comes rather than held in memory. */
export const OVERSIZED_LINE = "\u0000(a line longer than the limit)";

/** How to make input of a format that is not UTF-8 text readable by `command` (`calico-flows parse`). */
type Conversion = (command: string) => string;

const decompress =
  (format: string, tool: string): Conversion =>
  (command) =>
    `${format}-compressed: decompress it (${tool} FILE | ${command})`;

const fromUtf16: Conversion = (command) =>
  "UTF-16 text, as Windows PowerShell's `>` writes it: convert it to UTF-8 " +
  `(iconv -f UTF-16 -t UTF-8 FILE | ${command}), or write it with \`Out-File -Encoding utf8\``;

/** Formats by their first bytes (null: any byte there). */
const NOT_TEXT: readonly { magic: readonly (number | null)[]; conversion: Conversion }[] = [
  { magic: [0x1f, 0x8b], conversion: decompress("gzip", "zcat") },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], conversion: decompress("zstd", "zstd -dc") },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], conversion: decompress("xz", "xz -dc") },
  // "BZh", the block size ("1" to "9"), and the first block's magic.
  {
    magic: [0x42, 0x5a, 0x68, null, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59],
    conversion: decompress("bzip2", "bzip2 -dc"),
  },
  // A byte order mark, little- or big-endian: neither byte is ever in UTF-8.
  { magic: [0xff, 0xfe], conversion: fromUtf16 },
  { magic: [0xfe, 0xff], conversion: fromUtf16 },
];

/**
 * What input that starts with `bytes` is when it is not UTF-8 text, and how to make it text for `command`. Read as
 * text, a rotated `messages.1.gz` or a `.zst` export would be lines of garbage: no record, and a run that succeeds.
 */
export function notText(bytes: Uint8Array, command: string): string | undefined {
  const format = NOT_TEXT.find(
    ({ magic }) =>
      bytes.length >= magic.length && magic.every((byte, i) => byte === null || bytes[i] === byte),
  );
  return format?.conversion(command);
}

/** Whether `bytes`, all of an input's first bytes so far, may still be the start of a format of NOT_TEXT. */
function mayBeNotText(bytes: Uint8Array): boolean {
  return NOT_TEXT.some(
    ({ magic }) =>
      bytes.length < magic.length && bytes.every((byte, i) => magic[i] === null || magic[i] === byte),
  );
}

/**
 * `input`'s chunks, with its first bytes given to `check` (which throws to refuse them: notText) once they tell
 * what the input is. A first chunk shorter than a magic it begins (a pipe's first write may be a byte) is held,
 * copied (a reader may reuse its memory), and joined to what follows; text is never held, as a followed stream's
 * first short line must not wait for more.
 */
export async function* checkedStart(
  input: AsyncIterable<Buffer | string>,
  check: (bytes: Buffer) => void,
): AsyncGenerator<Buffer | string> {
  let held: Buffer | undefined = Buffer.alloc(0);
  for await (const chunk of input) {
    if (held === undefined) {
      yield chunk;
      continue;
    }
    if (typeof chunk === "string") {
      if (held.length > 0) yield held;
      held = undefined;
      yield chunk;
      continue;
    }
    const bytes: Buffer = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    if (mayBeNotText(bytes)) {
      held = Buffer.from(bytes);
      continue;
    }
    held = undefined;
    check(bytes);
    yield bytes;
  }
  if (held !== undefined && held.length > 0) {
    check(held);
    yield held;
  }
}

/** Splits decoded text into lines, carrying an unterminated tail to the next chunk; strips a CR before LF. */
export class LineSplitter {
  #tail = "";
  #oversized = false;
  readonly #max: number;

  constructor(maxLineLength = MAX_LINE_LENGTH) {
    this.#max = maxLineLength;
  }

  push(text: string, out: string[]): void {
    let start = 0;
    let nl = text.indexOf("\n");
    if (nl !== -1 && (this.#tail.length > 0 || this.#oversized)) {
      this.#emit(this.#tail + text.slice(0, nl), out);
      this.#tail = "";
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    while (nl !== -1) {
      this.#emit(text.slice(start, nl), out);
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    if (start < text.length && !this.#oversized) {
      this.#tail += text.slice(start);
      if (this.#tail.length > this.#max + 1) {
        this.#oversized = true;
        this.#tail = "";
      }
    }
  }

  /** Forgets a line begun and not ended (reading stopped in its middle): true if there was one. */
  discard(): boolean {
    const held = this.#tail.length > 0 || this.#oversized;
    this.#tail = "";
    this.#oversized = false;
    return held;
  }

  /** The last line when the input did not end with a newline. */
  end(out: string[]): void {
    if (this.#tail.length > 0 || this.#oversized) this.#emit(this.#tail, out);
    this.#tail = "";
  }

  #emit(line: string, out: string[]): void {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    out.push(this.#oversized || text.length > this.#max ? OVERSIZED_LINE : text);
    this.#oversized = false;
  }
}

function afterTimeout(ms: number, fire: () => void): () => void {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
}

/**
 * What may end one wait for input: "idle" after `ms` (undefined: never), "aborted" once `signal` aborts; `stop` ends
 * both. A promise of the wait's own, raced once: every race leaves a reaction on each promise it is given, which
 * holds that race's result (the chunk read) for as long as the promise lives, and a promise for the whole run (an
 * abort that never comes, on a stream followed for days) kept every chunk read.
 */
function interruption(
  ms: number | undefined,
  signal: AbortSignal | undefined,
  after: NonNullable<BatchOptions["after"]>,
): { promise: Promise<"idle" | "aborted">; stop: () => void } {
  let stop = () => {};
  const promise = new Promise<"idle" | "aborted">((resolve) => {
    if (signal?.aborted) return resolve("aborted");
    const onAbort = () => resolve("aborted");
    signal?.addEventListener("abort", onAbort, { once: true });
    const cancel = ms === undefined ? undefined : after(ms, () => resolve("idle"));
    stop = () => {
      cancel?.();
      signal?.removeEventListener("abort", onAbort);
    };
  });
  return { promise, stop };
}

export async function* lineBatches(input: Readable, options: BatchOptions): AsyncGenerator<LineBatch> {
  const decoder = new StringDecoder("utf8");
  const splitter = new LineSplitter(options.maxLineLength);
  const check = options.checkStart;
  const iterator = (check === undefined ? input : checkedStart(input, check))[Symbol.asyncIterator]();
  const now = options.now ?? Date.now;
  const after = options.after ?? afterTimeout;
  const maxWait = options.maxWaitMs ?? 2_000;
  const signal = options.signal;
  let pending: string[] = [];
  /** When the first line of `pending` came. */
  let pendingSince = 0;
  let bytesRead = 0;
  /** No text decoded yet: a UTF-8 byte order mark there is not part of the first line. */
  let atStart = true;
  let next: Promise<IteratorResult<Buffer | string>> | undefined;
  let stopped = false;
  for (;;) {
    next ??= iterator.next();
    // Lines waiting are stored after a pause, or once the first has waited maxWait; none waiting, no hurry.
    const wait =
      pending.length > 0 ? Math.max(0, Math.min(options.idleMs, pendingSince + maxWait - now())) : undefined;
    const interrupted = interruption(wait, signal, after);
    const result = await Promise.race([next, interrupted.promise]);
    interrupted.stop();
    if (result === "aborted") {
      // The read under way is abandoned; the stream is the caller's to close.
      next.catch(() => {});
      stopped = true;
      break;
    }
    if (result === "idle") {
      yield { lines: pending, bytesRead };
      pending = [];
      continue;
    }
    next = undefined;
    if (result.done) break;
    const chunk = result.value;
    bytesRead += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    const before = pending.length;
    let text = typeof chunk === "string" ? chunk : decoder.write(chunk);
    if (atStart && text.length > 0) {
      atStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    splitter.push(text, pending);
    if (before === 0 && pending.length > 0) pendingSince = now();
    while (pending.length >= options.maxLines) {
      yield { lines: pending.slice(0, options.maxLines), bytesRead };
      pending = pending.slice(options.maxLines);
      pendingSince = now();
    }
    // Input that never pauses still has its lines stored within maxWait.
    if (pending.length > 0 && now() - pendingSince >= maxWait) {
      yield { lines: pending, bytesRead };
      pending = [];
    }
  }
  if (stopped) {
    // Bytes of a character not complete yet are the start of a line, unfinished as well.
    const partialCharacter = decoder.end().length > 0;
    const unfinished = splitter.discard() || partialCharacter;
    if (pending.length > 0 || unfinished) yield { lines: pending, bytesRead, unfinished };
    return;
  }
  splitter.push(decoder.end(), pending);
  splitter.end(pending);
  if (pending.length > 0) yield { lines: pending, bytesRead };
}
