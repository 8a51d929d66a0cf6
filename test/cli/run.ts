// Runs the real `calico-flows` binary with the project's Node, as a user would.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Command } from "commander";
import { vi } from "vitest";

export const ROOT = join(import.meta.dirname, "..", "..");
export const BIN = join(ROOT, "bin", "calico-flows.js");

/** The demo: node logs (`node-logs.log`) and the pods and nodes files that attribute them. */
export const SAMPLE = join(ROOT, "examples", "demo");
/** What attributes the demo's lines in `replay`: its pods and nodes files, and the year its syslog stamps omit. */
export const SAMPLE_ATTRIBUTION = [
  "--pods",
  join(SAMPLE, "pods.json"),
  "--nodes",
  join(SAMPLE, "nodes.json"),
  "--year",
  "2026",
];
/** The day the demo's lines fall in, as `--since` and `--until`. */
export const SAMPLE_DAY = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z"];

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: readonly string[],
  /** `cwd`: the directory it runs in (default: the repository's), where a default embedded store would go. */
  options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

export function ndjson<T>(text: string): T[] {
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
}

/** `replay` of the demo's node logs into the embedded store in `dir`, for `cluster`, attributed, quietly. */
export function replaySample(dir: string, cluster: string): Promise<RunResult> {
  return runCli([
    "replay",
    join(SAMPLE, "node-logs.log"),
    "--store",
    dir,
    "--cluster",
    cluster,
    ...SAMPLE_ATTRIBUTION,
    "--quiet",
  ]);
}

/** The options a CLI command parses from `argv` by its own definitions (its action is not run). */
export async function parsedOptions(
  register: (program: Command) => void,
  path: readonly string[],
  argv: readonly string[],
): Promise<Record<string, unknown>> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  let command: Command | undefined = program;
  for (const name of path) command = command?.commands.find((c) => c.name() === name);
  if (command === undefined) throw new Error(`no command ${path.join(" ")}`);
  let options: Record<string, unknown> = {};
  command.action((...args: unknown[]) => {
    options = (args.at(-1) as Command).optsWithGlobals();
  });
  await program.parseAsync(argv, { from: "user" });
  return options;
}

/** What `argv` writes on stderr before the command's action (which is not run), one string per write. */
export async function notesBeforeAction(
  register: (program: Command) => void,
  path: readonly string[],
  argv: readonly string[],
): Promise<string[]> {
  const written: string[] = [];
  const spy = vi.spyOn(process.stderr, "write").mockImplementation(((text: string) => {
    written.push(text);
    return true;
  }) as typeof process.stderr.write);
  try {
    await parsedOptions(register, path, argv);
  } finally {
    spy.mockRestore();
  }
  return written;
}

/**
 * `argv` run in process through the command `register` defines, as the binary runs it (its action, its notes): what
 * it wrote on stderr and the exit status it set (0 when none). Quicker than a process of its own per run.
 */
export async function runInProcess(
  register: (program: Command) => void,
  argv: readonly string[],
): Promise<{ code: number; stderr: string }> {
  const program = new Command("calico-flows").exitOverride();
  register(program);
  let stderr = "";
  const spy = vi.spyOn(process.stderr, "write").mockImplementation(((text: string) => {
    stderr += text;
    return true;
  }) as typeof process.stderr.write);
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(argv, { from: "user" });
    return { code: Number(process.exitCode ?? 0), stderr };
  } finally {
    spy.mockRestore();
    process.exitCode = before;
  }
}

/**
 * For commands run in process (runInProcess) against a local DynamoDB: its endpoint, with credentials and region,
 * in the environment the SDK reads (restored by vi.unstubAllEnvs).
 */
export function useDynamoEndpoint(endpoint: string): void {
  for (const [variable, value] of Object.entries({
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_REGION: "eu-west-1",
  }))
    vi.stubEnv(variable, value);
}
