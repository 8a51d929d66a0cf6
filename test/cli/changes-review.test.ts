// Review of b8cce18, 631fbcd, 36ed5cf and 1aa1f18 (the first day's CLI defects, the alert e-mail's commands, the
// stack's execution logs and dashboard, the example-context warning). Each test is one defect found in review: it
// fails on the code as reviewed and passes once that is fixed.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerFlows } from "../../cli/commands/flows.ts";
import { registerPanic } from "../../cli/commands/panic.ts";
import { flowsArgs, storeArgs } from "../../cli/sink.ts";
import { alertEmailText, suppressionSummary } from "../../functions/core/alert-message.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { sampleAlert } from "../support/alerts.ts";
import { BIN, ndjson, parsedOptions, replaySample, runCli } from "./run.ts";

const SCRATCH_ROOT = "/tmp/review-g";
let scratch: string;
beforeAll(() => {
  mkdirSync(SCRATCH_ROOT, { recursive: true });
  scratch = mkdtempSync(join(SCRATCH_ROOT, "changes-review-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `calico-flows replay … --table T --region R --bucket-seconds 300 --alerts-topic ARN`: what its e-mails carry. */
const TABLE_COMMON = { store: ".calico-flows", table: "calico-flows-prod", region: "eu-west-1" };
const TABLE_OPTIONS = { storeArgs: storeArgs(TABLE_COMMON), flowsArgs: flowsArgs(TABLE_COMMON, 300) };

/** A command line as a POSIX shell splits it (the e-mail's reader pastes it into one). */
function shellWords(command: string): string[] {
  const out = spawnSync("sh", ["-c", `printf '%s\\0' ${command}`], { encoding: "utf8" }).stdout;
  return out.split("\0").filter((w) => w !== "");
}

/** The e-mail's `calico-flows panic apply …` command, its `…` reason filled in, as the shell splits it. */
function panicCommand(email: string): string[] {
  const command = /`(calico-flows panic apply [^`]*)`/.exec(email)?.[1];
  expect(command, email).toBeDefined();
  return shellWords((command as string).replace("…", "INC-1"));
}

describe("the alert e-mail's runbook commands, run as pasted", () => {
  it("the panic command of a replay into a table with 5-minute buckets is one `panic apply` accepts (no --bucket-seconds)", async () => {
    // 631fbcd: storeArgs adds `--bucket-seconds 300` for a table, and panicTarget prefixes the same list with
    // --direct: `calico-flows panic apply --direct --table calico-flows-prod --region eu-west-1 --bucket-seconds 300
    // --dry-run --reason …`, which the CLI refuses: "error: unknown option '--bucket-seconds'", exit 2. Only `flows`
    // reads buckets; the panic command needs the table (for its audit) and nothing else.
    const words = panicCommand(alertEmailText(sampleAlert(), TABLE_OPTIONS));
    const [, ...argv] = words;
    await expect(
      parsedOptions(registerPanic, ["panic", "apply"], argv),
      words.join(" "),
    ).resolves.toMatchObject({
      direct: true,
      table: "calico-flows-prod",
      dryRun: true,
    });
  });

  it("the suppression summary's `alerts` command of a replay into a table with 5-minute buckets is one `alerts` accepts", async () => {
    // suppressionSummary writes `calico-flows alerts <storeText> --cluster prod --since …`, and storeText is now
    // `--table calico-flows-prod --region eu-west-1 --bucket-seconds 300`: `alerts` has no --bucket-seconds, so the
    // one command that lists the alerts the cap kept back fails with "unknown option '--bucket-seconds'", exit 2.
    const summary = suppressionSummary(3, "prod", [sampleAlert()], TABLE_OPTIONS);
    const line = summary.email.split("\n").find((l) => l.trim().startsWith("calico-flows alerts "));
    expect(line, summary.email).toBeDefined();
    const [, ...argv] = shellWords((line as string).trim());
    await expect(
      parsedOptions(registerFlows, ["alerts"], argv),
      (line as string).trim(),
    ).resolves.toMatchObject({
      table: "calico-flows-prod",
      cluster: "prod",
    });
  });

  it("the --direct panic command of a replay's alert acts for the alert's cluster, as its flows commands do", async () => {
    // The e-mail's flows commands carry `--cluster prod`; its panic command carries `--direct --store DIR` only, so
    // pasted it runs for the default cluster "local": PanicService audits under PANIC#local and says "applied on
    // local", and `calico-flows panic status --direct --store DIR --cluster prod` does not show the action.
    const store = join(scratch, "a store with spaces");
    const email = alertEmailText(sampleAlert(), {
      storeArgs: storeArgs({ store, table: undefined, region: undefined }),
    });
    expect(email).toMatch(/calico-flows flows .*--cluster prod /);
    const [, ...argv] = panicCommand(email);
    const options = await parsedOptions(registerPanic, ["panic", "apply"], argv);
    expect(options.direct).toBe(true);
    expect(options.store).toBe(store);
    expect(options.cluster, `calico-flows ${argv.join(" ")}`).toBe("prod");
  });
});

describe("flows: the note for an empty default range", () => {
  it("says the store holds such flows at other times when a filter skips the store's first flow (--internal false)", async () => {
    // The demo's flows replayed: 62 of them are not internal, all of 2026-04-19. `flows --internal false` with the
    // default range (the last 24 hours) answers "no records in that range" and no note: firstOutside reads one page
    // of ONE item over all time, and DynamoDB's Limit counts the items read before the filter, so when the store's
    // first flow is internal the page is empty (with a cursor) and the note is dropped. The same for --workload,
    // --pod and `flows --group`. README: it says so "when the last 24 hours hold none but other times do".
    const store = join(scratch, "sample");
    const replayed = await replaySample(store, "c");
    expect(replayed.code, replayed.stderr).toBe(0);
    const day = await runCli([
      "flows",
      "--store",
      store,
      "--cluster",
      "c",
      "--internal",
      "false",
      "--since",
      "2026-04-19T00:00:00Z",
      "--until",
      "2026-04-20T00:00:00Z",
      "--json",
    ]);
    expect(day.code, day.stderr).toBe(0);
    const stored = ndjson<FlowRecord>(day.stdout);
    expect(stored.length).toBeGreaterThan(0);
    expect(stored.every((f) => !f.internal)).toBe(true);

    const run = await runCli(["flows", "--store", store, "--cluster", "c", "--internal", "false"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe("no records in that range\n");
    expect(run.stderr).toMatch(/note: none in the last 24 hours .*at other times/);
  }, 30_000);
});

describe("the embedded store's lock", () => {
  it("is kept while a live Node process that renamed itself (pm2's `node <script>` title) holds the store", async () => {
    // pm2 (and any program that sets process.title) rewrites /proc/<pid>/cmdline: pm2's fork container sets
    // `node /path/to/bin/calico-flows.js`. mayBeOurs took basename() of the first NUL-separated word,
    // "calico-flows.js", decided "no Node process", and the lock of a live run was removed and taken over; a second
    // process then opened the LevelDB it held (`flows` against a replay held so crashed with "Database is closed").
    // (The store is now locked by LevelDB's own lock, whatever the holder's title or pid: held here for real.)
    const store = join(scratch, "renamed");
    const made = await runCli(["replay", "-", "--store", store, "--quiet"], {
      input:
        "2024-04-19T04:52:19Z ip-192-168-74-5 kernel: calico-packet: IN=eni1 OUT=eni2 SRC=192.168.41.8 " +
        "DST=192.168.22.247 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=8080 " +
        "WINDOW=62727 RES=0x00 SYN URGP=0\n",
    });
    expect(made.code, made.stderr).toBe(0);
    const title = `node ${BIN}`;
    const embedded = join(import.meta.dirname, "..", "..", "functions", "adapters", "dynamo", "embedded.ts");
    const other: ChildProcess = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `process.title = ${JSON.stringify(title)}; const { startEmbeddedStore } = await import(${JSON.stringify(embedded)}); ` +
          `await startEmbeddedStore({ dir: ${JSON.stringify(store)} }); setInterval(() => {}, 1000);`,
      ],
      { stdio: "ignore" },
    );
    try {
      const cmdline = () => {
        try {
          return readFileSync(`/proc/${other.pid}/cmdline`, "utf8");
        } catch {
          return "";
        }
      };
      const lock = join(realpathSync(store), "calico-flows.lock");
      const holds = () => {
        try {
          return readFileSync(lock, "utf8") === String(other.pid);
        } catch {
          return false;
        }
      };
      const deadline = Date.now() + 10_000;
      while (!(cmdline().startsWith(title) && holds()) && Date.now() < deadline) await sleep(20);
      expect(cmdline().startsWith(title)).toBe(true);
      expect(holds()).toBe(true);
      const run = await runCli(["flows", "--store", store, "--since", "2024-04-19", "--until", "2024-04-20"]);
      expect(run.stderr).toMatch(/in use by another calico-flows process/);
      expect(run.code).toBe(1);
    } finally {
      other.kill();
    }
  });
});
