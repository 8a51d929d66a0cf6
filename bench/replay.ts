// `calico-flows replay` into a new embedded store, as an operator runs it on a laptop: the whole local pipeline
// (read, parse, attribute without a directory, aggregate, the flow and alert writes through dynalite). Lines per
// second, wall clock, for realistic traffic (few flows, many repeats) and for the shared corpus (nearly every line
// a flow of its own, thousands of alerts). `node bench/replay.ts`, or through `npm run bench -- replay`.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateLines } from "./corpus.ts";
import { realisticLines } from "./ingest.ts";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "calico-flows.js");

function replayed(name: string, lines: Iterable<string>, scratch: string): void {
  const file = join(scratch, `${name}.log`);
  const text = [...lines];
  writeFileSync(file, `${text.join("\n")}\n`);
  const store = join(scratch, `${name}-store`);
  const start = process.hrtime.bigint();
  const run = spawnSync(process.execPath, [CLI, "replay", file, "--store", store, "--quiet"], {
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: "", HOME: scratch },
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (run.status !== 0) throw new Error(`replay of ${name} failed (${run.status}): ${run.stderr}`);
  const summary = /replayed .*/.exec(run.stderr)?.[0] ?? "";
  console.log(
    `replay, ${name}: ${text.length.toLocaleString("en")} lines in ${seconds.toFixed(1)} s → ` +
      `${Math.round(text.length / seconds).toLocaleString("en")} lines/s (${summary})`,
  );
}

export async function run(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), "calico-flows-bench-replay-"));
  try {
    replayed("realistic traffic", realisticLines(20_000), scratch);
    replayed("shared corpus, ~85% of lines distinct flows", generateLines(5_000), scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
