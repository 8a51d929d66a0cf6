// Splits a byte stream into lines and groups them into batches. A batch is closed when it is full or when the
// input has been idle for a moment, so `kubectl logs -f | calico-flows replay -` shows flows as they happen.
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";

export interface BatchOptions {
  maxLines: number;
  /** Close a non-empty batch after this long without input (ms). */
  idleMs: number;
}

export interface LineBatch {
  lines: string[];
  /** Bytes of input consumed so far, for progress. */
  bytesRead: number;
}

/** Splits decoded text into lines, carrying an unterminated tail to the next chunk; strips a CR before LF. */
export class LineSplitter {
  #tail = "";
  push(text: string, out: string[]): void {
    let start = 0;
    let nl = text.indexOf("\n");
    if (nl !== -1 && this.#tail.length > 0) {
      const first = this.#tail + text.slice(0, nl);
      out.push(first.endsWith("\r") ? first.slice(0, -1) : first);
      this.#tail = "";
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    while (nl !== -1) {
      const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      out.push(text.slice(start, end));
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    if (start < text.length) this.#tail += text.slice(start);
  }
  /** The last line when the input did not end with a newline. */
  end(out: string[]): void {
    if (this.#tail.length > 0) out.push(this.#tail.endsWith("\r") ? this.#tail.slice(0, -1) : this.#tail);
    this.#tail = "";
  }
}

export async function* lineBatches(input: Readable, options: BatchOptions): AsyncGenerator<LineBatch> {
  const decoder = new StringDecoder("utf8");
  const splitter = new LineSplitter();
  const iterator = input[Symbol.asyncIterator]();
  let pending: string[] = [];
  let bytesRead = 0;
  let next: Promise<IteratorResult<Buffer | string>> | undefined;
  for (;;) {
    next ??= iterator.next();
    let result: IteratorResult<Buffer | string> | "idle";
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), options.idleMs);
      });
      result = await Promise.race([next, idle]);
      clearTimeout(timer);
    } else {
      result = await next;
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
    splitter.push(typeof chunk === "string" ? chunk : decoder.write(chunk), pending);
    while (pending.length >= options.maxLines) {
      yield { lines: pending.slice(0, options.maxLines), bytesRead };
      pending = pending.slice(options.maxLines);
    }
  }
  splitter.push(decoder.end(), pending);
  splitter.end(pending);
  if (pending.length > 0) yield { lines: pending, bytesRead };
}
