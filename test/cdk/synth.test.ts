// The app as an operator runs it: `npx cdk synth` offline from the repository, bundling every function with
// the local esbuild (never Docker), and `node bin/app.ts` refusing bad context with a readable message.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const cdkJson = JSON.parse(readFileSync(join(ROOT, "cdk.json"), "utf8")) as {
  context: Record<string, unknown>;
};

/** No credentials and no metadata endpoint: synth must not need an AWS account, or any network. */
function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
    delete env[key];
  env.AWS_EC2_METADATA_DISABLED = "true";
  env.CDK_DISABLE_VERSION_CHECK = "true";
  // The pinned Node 24 first, as `npx` arranges it.
  env.PATH = `${BIN}:${env.PATH ?? ""}`;
  return env;
}

type Metadata = Record<string, { type: string; data: unknown }[]>;

interface Manifest {
  artifacts: Record<string, { type: string; metadata?: Metadata; additionalMetadataFile?: string }>;
}

describe("npx cdk synth", { timeout: 240_000 }, () => {
  let out: string;
  let template: { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
  let assetDirs: string[];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), "calico-flows-synth-"));
    await run(join(BIN, "cdk"), ["synth", "--quiet", "--no-notices", "--output", out], {
      cwd: ROOT,
      env: offlineEnv(),
      timeout: 200_000,
    });
    template = JSON.parse(readFileSync(join(out, "CalicoFlows.template.json"), "utf8"));
    assetDirs = readdirSync(out).filter((name) => name.startsWith("asset."));
  }, 240_000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("writes the template with the four functions, each with its own bundled asset", () => {
    const functions = Object.values(template.Resources).filter((r) => r.Type === "AWS::Lambda::Function");
    expect(functions).toHaveLength(4);
    expect(assetDirs).toHaveLength(4);
  });

  it("bundles each handler as a minified ES module with a source map and the CommonJS require shim", () => {
    for (const dir of assetDirs) {
      const files = readdirSync(join(out, dir)).sort();
      expect(files).toEqual(["index.mjs", "index.mjs.map"]);
      const code = readFileSync(join(out, dir, "index.mjs"), "utf8");
      expect(code.startsWith("import { createRequire } from 'module';")).toBe(true);
      // Minified: long lines (only template literals keep their newlines), and the map is referenced.
      expect(code.length / code.split("\n").length).toBeGreaterThan(1000);
      expect(code.trimEnd().endsWith("//# sourceMappingURL=index.mjs.map")).toBe(true);
      // The map names the sources and maps their lines, without carrying their text (most of a package's size).
      const map = JSON.parse(readFileSync(join(out, dir, "index.mjs.map"), "utf8")) as {
        sources: string[];
        mappings: string;
        sourcesContent?: unknown;
      };
      expect(map.sources.some((source) => source.includes("functions/"))).toBe(true);
      expect(map.mappings.length).toBeGreaterThan(0);
      expect(map.sourcesContent).toBeUndefined();
    }
  });

  it("produces bundles that load on Node 24 and export the handler", async () => {
    for (const dir of assetDirs) {
      const { stdout } = await run(
        process.execPath,
        ["--input-type=module", "-e", 'const m = await import("./index.mjs"); console.log(typeof m.handler)'],
        { cwd: join(out, dir), env: offlineEnv() },
      );
      expect(stdout.trim(), dir).toBe("function");
    }
  });

  it("writes a validation report in which no plugin concluded failure or found a violation", () => {
    // An unacknowledged cdk-nag finding already fails the synth above (bin/app.ts registers the checks as a
    // validation plugin: app.test.ts shows a finding failing its synth). This holds the report the synth leaves.
    const report = join(out, "validation-report.json");
    expect(existsSync(report)).toBe(true);
    const parsed = JSON.parse(readFileSync(report, "utf8")) as {
      pluginReports: { pluginName: string; conclusion: string; violations: { ruleName: string }[] }[];
    };
    expect(Array.isArray(parsed.pluginReports)).toBe(true);
    // cdk.json's example context is synthesized here: its warning is the one finding, and the toolkit shows it.
    const example = "Annotation::calico-flows:example-context";
    expect(
      parsed.pluginReports
        .filter(
          (plugin) =>
            plugin.conclusion !== "success" || plugin.violations.some((v) => v.ruleName !== example),
        )
        .map((plugin) => plugin.pluginName),
    ).toEqual([]);
    expect(parsed.pluginReports.flatMap((plugin) => plugin.violations.map((v) => v.ruleName))).toEqual([
      example,
    ]);
  });
});

describe("node bin/app.ts", { timeout: 60_000 }, () => {
  /** Runs the app the way the CDK toolkit does: context in CDK_CONTEXT_JSON, output in CDK_OUTDIR. */
  async function app(context: Record<string, unknown>) {
    const outdir = mkdtempSync(join(tmpdir(), "calico-flows-app-"));
    try {
      const result = await run(process.execPath, [join(ROOT, "bin", "app.ts")], {
        cwd: ROOT,
        env: offlineEnv({
          CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJson.context, "aws:cdk:bundling-stacks": [], ...context }),
          CDK_OUTDIR: outdir,
        }),
      }).then(
        (r) => ({ code: 0, stderr: r.stderr }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
      const manifestPath = join(outdir, "manifest.json");
      const manifest = existsSync(manifestPath)
        ? (JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest)
        : undefined;
      // The stack's metadata, inline or (large ones) in a file beside the manifest.
      const artifact = manifest?.artifacts.CalicoFlows;
      const metadata: Metadata = artifact?.additionalMetadataFile
        ? JSON.parse(readFileSync(join(outdir, artifact.additionalMetadataFile), "utf8"))
        : (artifact?.metadata ?? {});
      return { ...result, manifest, metadata: Object.values(metadata).flat() };
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }

  it("exits 1 with the key and the value received when the context is invalid", async () => {
    const result = await app({ retentionDays: "ninety", logGroupNames: "" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('retentionDays="ninety": expected an integer');
    expect(result.stderr).toContain('logGroupNames="": at least one node log group is needed');
    // A plain message for the operator, not a stack trace.
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.manifest).toBeUndefined();
  });

  it("warns while the context holds cdk.json's example values, and not once they are the operator's", async () => {
    const warning = expect.objectContaining({
      type: "aws:cdk:warning",
      data: expect.stringMatching(
        /^clusterName, logGroupNames, alertEmails, operationsEmails, panicPrincipalArns still hold cdk\.json's example values/,
      ),
    });
    const example = await app({});
    expect(example.code).toBe(0);
    expect(example.metadata).toContainEqual(warning);
    const real = await app({
      clusterName: "prod-eu",
      logGroupNames: "/aws/containerinsights/prod-eu/host",
      alertEmails: "netsec@corp.io",
      operationsEmails: "sre@corp.io",
      panicPrincipalArns: "arn:aws:iam::210987654321:role/oncall",
    });
    expect(real.code).toBe(0);
    expect(real.metadata).not.toContainEqual(expect.objectContaining({ type: "aws:cdk:warning" }));
  });

  it("warns about a context key it does not read", async () => {
    const result = await app({ clustername: "typo" });
    expect(result.code).toBe(0);
    expect(result.metadata).toContainEqual(
      expect.objectContaining({
        type: "aws:cdk:warning",
        data: expect.stringContaining('context key "clustername"'),
      }),
    );
  });
});
