// Cold-start figures of the three functions as deployed: `npx cdk synth` (the local esbuild), then each package's
// size and the time a fresh Node process takes to load its handler module (what Lambda's init phase does first),
// with source maps enabled as the functions run them.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const SAMPLES = Number(process.env.BENCH_COLD_SAMPLES ?? 15);

/** The module load, timed inside the child so that process start-up is not counted. */
const LOAD = [
  "const started = performance.now();",
  "const module = await import(process.argv[1]);",
  "const took = performance.now() - started;",
  'if (typeof module.handler !== "function") throw new Error("no handler export");',
  "process.stdout.write(String(took));",
].join("\n");

interface Asset {
  name: string;
  dir: string;
}

/** The functions' assets by the function each belongs to, from the synthesized template. */
function assetsOf(out: string): Asset[] {
  const template = JSON.parse(readFileSync(join(out, "CalicoFlows.template.json"), "utf8")) as {
    Resources: Record<string, { Type: string; Metadata?: Record<string, unknown> }>;
  };
  const assets: Asset[] = [];
  for (const [id, resource] of Object.entries(template.Resources)) {
    const path = resource.Metadata?.["aws:asset:path"];
    if (resource.Type !== "AWS::Lambda::Function" || typeof path !== "string") continue;
    assets.push({ name: id.replace(/[0-9A-F]{8}$/, ""), dir: join(out, path) });
  }
  return assets.sort((a, b) => a.name.localeCompare(b.name));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

export async function run(): Promise<void> {
  const out = mkdtempSync(join(tmpdir(), "calico-flows-cold-"));
  try {
    execFileSync(join(BIN, "cdk"), ["synth", "--quiet", "--no-notices", "--output", out], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}`, CDK_DISABLE_VERSION_CHECK: "true" },
      stdio: "ignore",
    });
    const assets = assetsOf(out);
    const times = new Map(assets.map((a) => [a.name, [] as number[]]));
    // Interleaved, so that the machine's drift slows every function alike; the first round warms the page cache.
    for (let round = 0; round <= SAMPLES; round++) {
      for (const asset of assets) {
        const took = execFileSync(
          process.execPath,
          ["--input-type=module", "-e", LOAD, join(asset.dir, "index.mjs")],
          {
            cwd: asset.dir,
            encoding: "utf8",
            env: {
              PATH: process.env.PATH,
              NODE_OPTIONS: "--enable-source-maps",
              AWS_REGION: "eu-west-1",
              AWS_EC2_METADATA_DISABLED: "true",
            },
          },
        );
        if (round > 0) times.get(asset.name)?.push(Number(took));
      }
    }
    for (const asset of assets) {
      const files = readdirSync(asset.dir);
      const bytes = files.reduce((sum, f) => sum + statSync(join(asset.dir, f)).size, 0);
      const code = statSync(join(asset.dir, "index.mjs")).size;
      const t = times.get(asset.name) as number[];
      console.log(
        `${asset.name}: package ${(bytes / 1e6).toFixed(2)} MB (index.mjs ${(code / 1e6).toFixed(2)} MB); handler ` +
          `module load median ${median(t).toFixed(0)} ms (${Math.min(...t).toFixed(0)}–${Math.max(...t).toFixed(0)}, ` +
          `${t.length} fresh processes, source maps on)`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
