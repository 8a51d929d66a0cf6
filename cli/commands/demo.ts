// `calico-flows demo`: the README's first command. Replays the bundled sample cluster's node logs through
// the whole local pipeline (parse ▶ attribute ▶ aggregate ▶ embedded store ▶ alerts) and prints what an
// operator would then ask for: the flows and the alerts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { signalExitCode } from "../common.ts";
import { alertsTable, flowsTable } from "../format.ts";
import { readAlerts, readFlows } from "./flows.ts";
import { replay } from "./replay.ts";

const SAMPLE = join(import.meta.dirname, "..", "..", "examples", "demo");

/** A path as a POSIX shell reads it back, quoted only when it must be. */
function quoted(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("replay the bundled sample cluster through the local pipeline and show its flows and alerts")
    .option("--store <dir>", "keep the embedded store in this directory (default: a temporary one)")
    .action(async (raw: { store?: string }) => {
      // Ctrl-C, SIGTERM or a reader that goes away (`npm start | head`: EPIPE, which main.ts would answer with
      // process.exit) stop the demo where it is: the replay stores what it read, every store is closed, and only
      // then is a temporary store removed (LevelDB still writing into it would make it again). Set up before the
      // store is made, so that no signal finds it made and unhandled; a second signal quits at once.
      const stopping = new AbortController();
      let stoppedWith = 0;
      const stop = (code: number) => {
        if (stopping.signal.aborted) process.exit(code);
        stoppedWith = code;
        stopping.abort();
      };
      const onSignal = (signal: NodeJS.Signals) => stop(signalExitCode(signal));
      const onOutputError = (error: NodeJS.ErrnoException) => {
        if (error.code !== "EPIPE") throw error;
        if (!stopping.signal.aborted) stop(0);
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      process.stdout.on("error", onOutputError);
      const store = raw.store ?? mkdtempSync(join(tmpdir(), "calico-flows-demo-"));
      const removeStore = () => {
        try {
          rmSync(store, { recursive: true, force: true });
        } catch (error) {
          process.stderr.write(
            `warning: could not remove the demo's store ${store}: ${(error as Error).message}\n`,
          );
        }
      };
      // After a second signal, as much of it as can be.
      if (raw.store === undefined) process.on("exit", removeStore);
      const common = {
        cluster: "demo",
        internalCidr: ["192.168.0.0/16", "fd00::/8"],
        store,
      };
      try {
        process.stdout.write(`Replaying ${join("examples", "demo", "node-logs.log")} (cluster "demo")…\n`);
        const summary = await replay(
          join(SAMPLE, "node-logs.log"),
          {
            ...common,
            pods: join(SAMPLE, "pods.json"),
            nodes: join(SAMPLE, "nodes.json"),
            namespaces: join(SAMPLE, "namespaces.json"),
            namespaceLabel: ["baseten.co/organization"],
            year: 2026,
            prefix: "calico-packet",
            bucketSeconds: 60,
            alertWindow: 15 * 60_000,
            alertCap: 50,
            scanThreshold: 20,
            retentionDays: 3650,
            batchLines: 5000,
            quiet: true,
          },
          stopping.signal,
        );
        if (stopping.signal.aborted) return;
        process.stdout.write(
          `${summary.lines} lines: ${summary.calico} calico records, ${summary.malformed} malformed, ` +
            `${summary.flowsApplied} flow updates, ${summary.alertsOpened} alerts.\n\n`,
        );
        // Buckets start before their first packet: widen the range by an hour on each side.
        const hour = 3_600_000;
        const range = {
          since: new Date(Date.parse(summary.firstSeen ?? "2026-01-01T00:00:00Z") - hour).toISOString(),
          until: new Date(Date.parse(summary.lastSeen ?? "2026-01-01T00:00:00Z") + hour).toISOString(),
          limit: 1000,
        };
        const flows = await readFlows({ ...common, ...range });
        if (stopping.signal.aborted) return;
        const internal = flows.filter((f) => f.internal);
        // The store is the demo's cluster's, and its lines are of a day long past: a command that reads it names
        // both. A temporary store is gone when the demo ends: say how to keep it instead.
        const query = `--store ${quoted(store)} --cluster demo --since ${range.since} --until ${range.until}`;
        const all =
          raw.store === undefined
            ? "`calico-flows demo --store DIR` keeps the store for `flows` and `alerts`"
            : `\`calico-flows flows ${query} --json\` lists them all`;
        process.stdout.write(
          `Internal flows (${internal.length} of ${flows.length}; ${all}):\n${flowsTable(internal)}\n\n`,
        );
        const alerts = await readAlerts({ ...common, ...range });
        if (stopping.signal.aborted) return;
        process.stdout.write(`Alerts (${alerts.length}):\n${alertsTable(alerts)}\n\n`);
        process.stdout.write(
          "Next: `calico-flows replay <your log file> --pods pods.json --nodes nodes.json`, then " +
            "`calico-flows flows --namespace <ns> --since 1h`. See README.md.\n",
        );
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        process.stdout.off("error", onOutputError);
        if (raw.store === undefined) {
          process.off("exit", removeStore);
          removeStore();
        }
        if (stopping.signal.aborted) process.exitCode = stoppedWith;
      }
    });
}
