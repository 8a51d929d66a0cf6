// The least any `calico-flows parse` written in JavaScript pays end to end, run as its own process on the parse
// bench's corpus: stdin read in 1 MiB chunks with blocking reads (`parse` reads 64 KiB ones), split into lines, every
// byte of every line read once, and for each line holding the prefix a record of the corpus's average NDJSON size
// written to stdout. No field is parsed and no record is built: a real parser only adds to this.
//
// Usage: node bench/e2e-floor.ts RECORD_BYTES < corpus > /dev/null   (prints "lines records checksum" on stderr)
import { readSync, writeSync } from "node:fs";

const CHUNK = 1 << 20;

/** Only as a script of its own: `npm run bench` imports every bench/ module to find its run(), and this has none. */
if (import.meta.main) floor();

function floor(): void {
  const recordBytes = Number(process.argv[2]);
  if (!Number.isInteger(recordBytes) || recordBytes < 2) throw new Error("usage: e2e-floor.ts RECORD_BYTES");
  const record = Buffer.alloc(recordBytes, 0x61);
  record[recordBytes - 1] = 10;
  const prefix = Buffer.from("calico-packet");
  const input = Buffer.allocUnsafe(2 * CHUNK);
  const output = Buffer.allocUnsafe(Math.max(4 * CHUNK, recordBytes));

  let carry = 0;
  let lines = 0;
  let records = 0;
  let checksum = 0;
  for (;;) {
    const read = readSync(0, input, carry, CHUNK, null);
    const end = carry + read;
    let from = 0;
    let out = 0;
    for (;;) {
      let newline = input.indexOf(10, from);
      if (newline >= end) newline = -1;
      if (newline < 0) {
        // The last line, without a newline, at the end of the input.
        if (read > 0 || from >= end) break;
        newline = end;
      }
      lines++;
      for (let k = from; k < newline; k++) checksum = (checksum + (input[k] as number)) | 0;
      const at = input.indexOf(prefix, from);
      if (at >= 0 && at < newline) {
        if (out + recordBytes > output.length) {
          writeSync(1, output, 0, out);
          out = 0;
        }
        record.copy(output, out);
        out += recordBytes;
        records++;
      }
      from = newline + 1;
    }
    if (out > 0) writeSync(1, output, 0, out);
    if (read === 0) break;
    input.copy(input, 0, from, end);
    carry = end - from;
    if (carry >= CHUNK) throw new Error("a line longer than 1 MiB: not a corpus this floor is for");
  }
  // The checksum keeps the byte loop from being optimised away.
  process.stderr.write(`${lines} ${records} ${checksum}\n`);
}
