import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Vitest global setup: every test file's temporary files go under one directory, removed when the run ends.
// CDK's App writes a synthesis directory under the system's tmpdir whenever a test builds the stack
// without an outdir, and never removes it: left alone, runs of the suite had left thousands behind.
export default function setup(): () => void {
  const scratch = mkdtempSync(join(tmpdir(), "calico-flows-test-"));
  // Forked workers start after global setup and inherit this environment; os.tmpdir() reads TMPDIR.
  process.env.TMPDIR = scratch;
  return () => rmSync(scratch, { recursive: true, force: true });
}
