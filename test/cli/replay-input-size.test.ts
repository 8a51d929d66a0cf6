// The size replay's progress measures its share and ETA against: a named file's, a file given as standard input's
// (`replay - < file`, which showed no share), none for a pipe.
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { inputSize } from "../../cli/commands/replay.ts";

const dir = mkdtempSync(join(tmpdir(), "calico-flows-input-size-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `run` with `path` open as a descriptor, closed after. */
function withFd<T>(path: string, run: (fd: number) => T): T {
  const fd = openSync(path, "r");
  try {
    return run(fd);
  } finally {
    closeSync(fd);
  }
}

describe("replay's input size", () => {
  const file = join(dir, "node.log");
  writeFileSync(file, "x".repeat(4_321));

  it("is a named file's size", () => {
    expect(inputSize(file)).toBe(4_321);
  });

  it("is the size of a file given as standard input", () => {
    expect(withFd(file, (fd) => inputSize("-", fd))).toBe(4_321);
  });

  it("is none for a pipe given as standard input", () => {
    // A FIFO, as `kubectl logs -f |` gives; opened without waiting for a writer.
    const fifo = join(dir, "logs.fifo");
    execFileSync("mkfifo", [fifo]);
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      expect(inputSize("-", fd)).toBeUndefined();
    } finally {
      closeSync(fd);
    }
  });

  it("refuses a directory, named or as standard input", () => {
    expect(() => inputSize(dir)).toThrow(`${dir} is a directory`);
    withFd(dir, (fd) => expect(() => inputSize("-", fd)).toThrow("standard input is a directory"));
  });
});
