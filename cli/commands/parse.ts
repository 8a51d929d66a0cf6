// `calico-flows parse` (DESIGN.md §3.1): log text on stdin, one JSON record per calico-packet line on stdout,
// skipped and malformed lines counted on stderr. It streams: a chunk is read, parsed and written before the next
// is read, so memory stays flat whatever the input's size.
import { once } from "node:events";
import { readSync } from "node:fs";
import type { Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { type Command, Option } from "commander";
import { createParser, DEFAULT_PREFIX, type ParseOptions } from "../../functions/core/parse.ts";
import type { ParseOutcome } from "../../functions/core/types.ts";
import { parseInteger, withCommonOptions } from "../common.ts";

/** Longest line kept in memory (characters); a longer one is counted as malformed and dropped. */
export const MAX_LINE_LENGTH = 16 * 1024 * 1024;
const DEFAULT_MAX_ERRORS = 20;

export interface ParseSummary {
  lines: number;
  records: number;
  skipped: number;
  malformed: number;
  /** Why the output stopped taking records, if it did (EPIPE: the reader went away). */
  outputError?: NodeJS.ErrnoException;
}

export interface ParseStreamOptions {
  parse: (line: string) => ParseOutcome;
  /** Receives NDJSON text; a false return means "wait for drain" (Writable semantics). */
  output: Writable;
  /** Called for each malformed line, 1-based. */
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
  const { parse, output, onMalformed } = options;
  const maxLine = options.maxLineLength ?? MAX_LINE_LENGTH;
  const summary: ParseSummary = { lines: 0, records: 0, skipped: 0, malformed: 0 };
  const decoder = new StringDecoder("utf8");
  // A line that spans chunks is kept in pieces and joined once, so a long line costs linear time.
  let pieces: string[] = [];
  let pending = 0;
  let oversized = false;
  let closed = false;
  const stop = (error: Error) => {
    closed = true;
    summary.outputError ??= error;
  };
  output.on("error", stop);

  const handle = (line: string): string => {
    summary.lines++;
    const outcome = parse(line);
    if (outcome.kind === "record") {
      summary.records++;
      // V8's JSON.stringify returns a flat string: faster here than any hand-built one, which would be a rope.
      return `${JSON.stringify(outcome.record)}\n`;
    }
    if (outcome.kind === "skip") {
      summary.skipped++;
    } else {
      summary.malformed++;
      onMalformed(summary.lines, outcome.reason);
    }
    return "";
  };
  const tooLong = () => {
    summary.lines++;
    summary.malformed++;
    onMalformed(summary.lines, `line longer than ${maxLine} characters, not parsed`);
  };

  const consume = async (text: string, last: boolean) => {
    let out = "";
    let from = 0;
    for (;;) {
      const newline = text.indexOf("\n", from);
      if (newline < 0) break;
      if (oversized) {
        tooLong();
      } else if (pieces.length > 0) {
        if (pending + newline - from > maxLine) {
          tooLong();
        } else {
          pieces.push(text.slice(from, newline));
          out += handle(pieces.join(""));
        }
      } else if (newline - from > maxLine) {
        tooLong();
      } else {
        out += handle(text.slice(from, newline));
      }
      pieces = [];
      pending = 0;
      oversized = false;
      from = newline + 1;
    }
    if (from < text.length && !oversized) {
      pending += text.length - from;
      if (pending > maxLine) {
        oversized = true;
        pieces = [];
        pending = 0;
      } else {
        pieces.push(text.slice(from));
      }
    }
    if (last && (pieces.length > 0 || oversized)) {
      if (oversized) tooLong();
      else out += handle(pieces.join(""));
      pieces = [];
    }
    if (out === "" || closed) return;
    let flowing: boolean;
    try {
      flowing = output.write(out);
    } catch (error) {
      // A synchronous pipe write fails on the spot.
      stop(error as Error);
      return;
    }
    if (flowing || closed) return;
    try {
      await Promise.race([once(output, "drain"), once(output, "close")]);
    } catch (error) {
      // once() rejects when the output fails while we wait for it.
      stop(error as Error);
    }
  };

  for await (const chunk of input) {
    await consume(typeof chunk === "string" ? chunk : decoder.write(chunk), false);
    // A reader that went away (`| head`) ends the work; what was read is still summarised.
    if (closed) break;
  }
  if (!closed) await consume(decoder.end(), true);
  return summary;
}

/**
 * Chunks of standard input. Blocking reads cost a fraction of the stream's thread-pool round trips, and
 * this command does nothing else while it waits; a descriptor left non-blocking (EAGAIN) falls back to the stream.
 */
export async function* readStdin(size = 1 << 16): AsyncGenerator<Buffer> {
  const buffer = Buffer.allocUnsafe(size);
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

function parseYear(value: string): number {
  return parseInteger("--year", 1, 9999)(value);
}

export function registerParse(program: Command): void {
  withCommonOptions(
    program
      .command("parse")
      .description(
        "Parse calico-packet log lines (raw syslog or JSON log records) from stdin into NDJSON records on stdout.",
      ),
  )
    .addOption(
      new Option("--year <yyyy>", "year of year-less syslog timestamps (default: inferred)").argParser(
        parseYear,
      ),
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
      new Option("--max-errors <n>", "malformed lines to report individually (all are counted)")
        .default(DEFAULT_MAX_ERRORS)
        .argParser(parseInteger("--max-errors", 0, Number.MAX_SAFE_INTEGER)),
    )
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const parseOptions: ParseOptions = { prefix: raw.prefix as string };
      if (raw.year !== undefined) parseOptions.year = raw.year as number;
      if (raw.prefixFormat !== undefined) parseOptions.prefixFormat = raw.prefixFormat as string;
      let parse: (line: string) => ParseOutcome;
      try {
        parse = createParser(parseOptions);
      } catch (error) {
        command.error(`error: ${(error as Error).message}`);
      }
      const maxErrors = raw.maxErrors as number;
      const stderr = process.stderr;
      let reported = 0;
      let summary: ParseSummary;
      try {
        summary = await parseStream(readStdin(), {
          parse,
          output: process.stdout,
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
