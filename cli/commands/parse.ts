// `calico-flows parse` (DESIGN.md §3.1): log text on stdin, one JSON record per calico-packet line on stdout,
// skipped and malformed lines counted on stderr. It streams: a chunk is read, parsed and written before the next
// is read, so memory stays flat whatever the input's size.
import { isAscii } from "node:buffer";
import { once } from "node:events";
import { readSync, writeSync } from "node:fs";
import type { Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { type Command, Option } from "commander";
import { type EncodedKind, NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { DEFAULT_PREFIX, type ParseOptions } from "../../functions/core/parse.ts";
import { type Ineffective, parseInteger, withCommonOptions } from "../common.ts";
import { checkedStart, MAX_LINE_LENGTH, notText } from "../lines.ts";

/** Spare bytes the in-place parsing of a line needs after it (NdjsonEncoder#encodeWithin). */
const SENTINEL_ROOM = 64;

/**
 * Memory that parseStream may write into past a chunk's end (putting it back before it goes on): only buffers
 * made by chunkBuffer. A stream's chunks may share their memory with reads still under way.
 */
const ownedMemory = new WeakSet<ArrayBufferLike>();

/** Memory for chunks of up to `size` bytes of input, with the room in-place parsing needs after them. */
export function chunkBuffer(size: number): Buffer {
  const buffer = Buffer.allocUnsafeSlow(size + SENTINEL_ROOM);
  ownedMemory.add(buffer.buffer);
  return buffer;
}

export interface ParseSummary {
  /** Input lines: a JSON record whose message holds several lines is one. */
  lines: number;
  records: number;
  /** Input lines without a calico-packet line. */
  skipped: number;
  /** Calico-packet lines that could not be parsed. */
  malformed: number;
  /** Why the output stopped taking records, if it did (EPIPE: the reader went away). */
  outputError?: NodeJS.ErrnoException;
}

/**
 * Takes NDJSON bytes that are only valid until it returns or, if it returns a promise, until that settles (the
 * encoder writes the next records over them). It throws, or rejects, when the output is gone.
 */
export type WriteBytes = (bytes: Uint8Array) => void | Promise<void>;

export interface ParseStreamOptions {
  encoder: NdjsonEncoder;
  write: WriteBytes;
  /** Called for each malformed line, with the number of the input line that holds it, 1-based. */
  onMalformed: (lineNumber: number, reason: string) => void;
  maxLineLength?: number;
}

/**
 * Parses a stream of byte chunks line by line: LF or CRLF endings, a last line without one, UTF-8 sequences split
 * across chunks. Output is written once per input chunk, honouring backpressure.
 */
export async function parseStream(
  input: AsyncIterable<Buffer | string>,
  options: ParseStreamOptions,
): Promise<ParseSummary> {
  const { encoder, write, onMalformed } = options;
  const maxLine = options.maxLineLength ?? MAX_LINE_LENGTH;
  // A line over maxLineLength, dropped unread, is malformed when it holds the text calico-packet lines are found by,
  // and skipped otherwise.
  const needle = options.encoder.needle;
  const summary: ParseSummary = { lines: 0, records: 0, skipped: 0, malformed: 0 };
  const decoder = new StringDecoder("utf8");
  // A line that spans chunks is kept in pieces and joined once, so a long line costs linear time.
  let pieces: string[] = [];
  let pending = 0;
  let oversized = false;
  let closed = false;
  // Of the over-long line being dropped: whether the parts dropped so far held the needle, and the end of the last
  // part (a needle may be cut between two).
  let droppedNeedle = false;
  let droppedEnd = "";

  /** Counts what the encoder made of a line: the kind of its first calico line, and of each after it. */
  const count = (first: EncodedKind): void => {
    summary.lines++;
    let calico = false;
    for (let kind: EncodedKind | undefined = first; kind !== undefined; kind = encoder.encodeMore()) {
      if (kind === "record") {
        summary.records++;
        calico = true;
      } else if (kind === "error") {
        summary.malformed++;
        calico = true;
        onMalformed(summary.lines, encoder.reason);
      }
    }
    if (!calico) summary.skipped++;
  };
  const handle = (line: string): void => count(encoder.encode(line));
  /** Drops `part` of an over-long line, looking for the needle in it. */
  const drop = (part: string): void => {
    if (droppedNeedle) return;
    const joined = droppedEnd + part;
    droppedNeedle = joined.includes(needle);
    droppedEnd = joined.slice(Math.max(0, joined.length - needle.length + 1));
  };
  /** Counts the over-long line, all of it dropped: a calico line that was not parsed, or another line. */
  const tooLong = (): void => {
    summary.lines++;
    if (droppedNeedle) {
      summary.malformed++;
      onMalformed(summary.lines, `line longer than ${maxLine} characters, not parsed`);
    } else {
      summary.skipped++;
    }
    droppedNeedle = false;
    droppedEnd = "";
  };
  const dropPieces = (): void => {
    for (const piece of pieces) drop(piece);
  };

  // `ascii`: the bytes of `text`, one per character, with SENTINEL_ROOM spare bytes after them: lines that lie
  // whole in it are parsed where they are.
  const consume = async (
    text: string,
    last: boolean,
    ascii: Uint8Array | null = null,
    view: DataView | null = null,
  ) => {
    let from = 0;
    for (;;) {
      const newline = text.indexOf("\n", from);
      if (newline < 0) break;
      if (oversized) {
        drop(text.slice(from, newline));
        tooLong();
      } else if (pieces.length > 0) {
        if (pending + newline - from > maxLine) {
          dropPieces();
          drop(text.slice(from, newline));
          tooLong();
        } else {
          pieces.push(text.slice(from, newline));
          handle(pieces.join(""));
        }
      } else if (newline - from > maxLine) {
        drop(text.slice(from, newline));
        tooLong();
      } else {
        if (ascii !== null && view !== null) {
          count(encoder.encodeWithin(text, ascii, view, from, newline));
        } else {
          handle(text.slice(from, newline));
        }
      }
      pieces = [];
      pending = 0;
      oversized = false;
      from = newline + 1;
    }
    if (from < text.length) {
      if (oversized) {
        drop(text.slice(from));
      } else {
        pending += text.length - from;
        if (pending > maxLine) {
          dropPieces();
          drop(text.slice(from));
          oversized = true;
          pieces = [];
          pending = 0;
        } else {
          pieces.push(text.slice(from));
        }
      }
    }
    if (last && (pieces.length > 0 || oversized)) {
      if (oversized) tooLong();
      else handle(pieces.join(""));
      pieces = [];
    }
    const out = encoder.take();
    if (out.length === 0) return;
    try {
      await write(out);
    } catch (error) {
      closed = true;
      summary.outputError ??= error as NodeJS.ErrnoException;
    }
  };

  // A chunk of ASCII (nearly all of them) is its text byte for byte, so its lines are parsed in place, when the
  // decoder holds nothing from the chunk before and the chunk lies in memory of chunkBuffer's (readStdin's does).
  let decoderClean = true;
  const checked = checkedStart(input, (bytes) => {
    const unreadable = notText(bytes, "calico-flows parse");
    if (unreadable !== undefined) throw new Error(`it is ${unreadable}`);
  });
  for await (const chunk of checked) {
    if (typeof chunk === "string") {
      await consume(chunk, false);
    } else {
      const room =
        ownedMemory.has(chunk.buffer) &&
        chunk.buffer.byteLength - chunk.byteOffset - chunk.length >= SENTINEL_ROOM;
      const ascii = decoderClean && room && isAscii(chunk);
      const text = decoder.write(chunk);
      decoderClean = isAscii(chunk);
      if (ascii) {
        const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length + SENTINEL_ROOM);
        await consume(text, false, bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.length));
      } else {
        await consume(text, false);
      }
    }
    // A reader that went away (`| head`) ends the work; what was read is still summarised.
    if (closed) break;
  }
  if (!closed) await consume(decoder.end(), true);
  return summary;
}

/**
 * Writes bytes to a stream, copied (the stream keeps them until it has written them), waiting for it to drain when
 * it asks to. Rejects with the stream's error, or when it closes.
 */
export function streamWriter(output: Writable): WriteBytes {
  let failure: Error | null = null;
  output.on("error", (error) => {
    failure ??= error;
  });
  return async (bytes) => {
    if (failure !== null) throw failure;
    if (output.write(Buffer.from(bytes))) return;
    await Promise.race([once(output, "drain"), once(output, "close")]);
    if (failure !== null) throw failure;
    if (output.destroyed) throw Object.assign(new Error("the output closed"), { code: "EPIPE" });
  };
}

/**
 * Standard output written with blocking writes, for the same reason stdin is read with them; a descriptor left
 * non-blocking (EAGAIN) falls back to the stream.
 */
export function stdoutWriter(): WriteBytes {
  let stream: WriteBytes | null = null;
  return (bytes) => {
    if (stream !== null) return stream(bytes);
    let at = 0;
    try {
      while (at < bytes.length) at += writeSync(1, bytes, at, bytes.length - at);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
    }
    stream = streamWriter(process.stdout);
    return stream(bytes.subarray(at));
  };
}

/**
 * Chunks of standard input. Blocking reads cost a fraction of the stream's thread-pool round trips, and
 * this command does nothing else while it waits; a descriptor left non-blocking (EAGAIN) falls back to the stream.
 */
export async function* readStdin(size = 1 << 16): AsyncGenerator<Buffer> {
  const buffer = chunkBuffer(size);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buffer, 0, size, null);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EOF") return;
      if (code === "EAGAIN") {
        for await (const chunk of process.stdin) yield chunk as Buffer;
        return;
      }
      throw error;
    }
    if (n === 0) return;
    // The consumer decodes each chunk before asking for the next, so one buffer serves every read.
    yield buffer.subarray(0, n);
  }
}

/** `parse` only turns lines into records on stdout: it stores nothing, and a record names no cluster or range. */
const PARSE_ONLY: Ineffective = {
  cluster: "its records name no cluster",
  internalCidr: "its records do not say whether an address is internal",
  store: "it stores nothing (the records go to standard output)",
  table: "it stores nothing (the records go to standard output)",
  region: "it calls no AWS service",
};

export function registerParse(program: Command): void {
  withCommonOptions(
    program
      .command("parse")
      .description(
        "Parse calico-packet log lines (raw syslog or JSON log records) from stdin into NDJSON records on stdout.",
      ),
    PARSE_ONLY,
  )
    .addOption(
      // The years replay takes: a two-digit `--year 26` is a mistake, not the year 26.
      new Option(
        "--year <yyyy>",
        "year of year-less syslog timestamps, which are read as UTC (default: the latest that puts a line at most a day ahead of now)",
      ).argParser(parseInteger("--year", 1970, 9999)),
    )
    .addOption(
      new Option("--prefix <text>", "log prefix to look for (Felix logPrefix)").default(DEFAULT_PREFIX),
    )
    .addOption(
      new Option(
        "--prefix-format <format>",
        'Felix logPrefix with %t %k %n %p, decoded into "policy" (e.g. "calico-packet %t %k %n")',
      ),
    )
    .addOption(
      // Every malformed line is reported by default (DESIGN.md §3.1); the option quiets a very damaged input.
      new Option("--max-errors <n>", "report at most n malformed lines individually (all are counted)")
        .default(Number.MAX_SAFE_INTEGER, "all")
        .argParser(parseInteger("--max-errors", 0, Number.MAX_SAFE_INTEGER)),
    )
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const parseOptions: ParseOptions = { prefix: raw.prefix as string };
      if (raw.year !== undefined) parseOptions.year = raw.year as number;
      if (raw.prefixFormat !== undefined) parseOptions.prefixFormat = raw.prefixFormat as string;
      let encoder: NdjsonEncoder;
      try {
        encoder = new NdjsonEncoder(parseOptions);
      } catch (error) {
        command.error(`error: ${(error as Error).message}`);
      }
      const maxErrors = raw.maxErrors as number;
      const stderr = process.stderr;
      let reported = 0;
      let summary: ParseSummary;
      try {
        summary = await parseStream(readStdin(), {
          encoder,
          write: stdoutWriter(),
          onMalformed: (line, reason) => {
            if (reported < maxErrors) stderr.write(`calico-flows parse: line ${line}: ${reason}\n`);
            reported++;
          },
        });
      } catch (error) {
        stderr.write(`calico-flows parse: cannot read the input: ${(error as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const lost = summary.outputError;
      if (lost !== undefined && lost.code !== "EPIPE") {
        stderr.write(`calico-flows parse: cannot write the output: ${lost.message}\n`);
        process.exitCode = 1;
      }
      const unreported = summary.malformed - Math.min(summary.malformed, maxErrors);
      stderr.write(
        `calico-flows parse: ${summary.lines} lines, ${summary.records} records, ${summary.skipped} skipped (not calico-packet), ` +
          `${summary.malformed} malformed${unreported > 0 ? ` (${unreported} not listed above)` : ""}\n`,
      );
    });
}
