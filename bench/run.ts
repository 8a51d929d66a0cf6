// `npm run bench [-- NAME...]`: runs every module in bench/ that exports `run()`, each in a fresh Node process so
// that one bench's heap, JIT state and garbage do not colour the next one's figures.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** Exit code of a child whose module has no run(): it is a helper (like corpus.ts), not a bench. */
const NOT_A_BENCH = 3;

if (process.argv[2] === "--child") {
  const file = process.argv[3] as string;
  const module = (await import(pathToFileURL(file).href)) as { run?: () => unknown };
  if (typeof module.run !== "function") process.exit(NOT_A_BENCH);
  await module.run();
} else {
  const only = process.argv.slice(2);
  const modules = readdirSync(here)
    .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.endsWith(".d.ts"))
    .filter((f) => only.length === 0 || only.includes(basename(f, ".ts")))
    .sort();
  let failed = 0;
  for (const file of modules) {
    const result = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), "--child", join(here, file)],
      {
        stdio: ["ignore", "pipe", "inherit"],
        encoding: "utf8",
      },
    );
    if (result.status === NOT_A_BENCH) continue;
    process.stdout.write(`\n== bench/${file}\n${result.stdout}`);
    if (result.status !== 0) {
      failed++;
      process.stdout.write(`bench/${file} failed (exit ${result.status ?? result.signal})\n`);
    }
  }
  process.exitCode = failed > 0 ? 1 : 0;
}
