// The calico-flows CLI: the same core and adapters as the Lambda functions, run locally.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { describeError, UsageError } from "./common.ts";

type Register = (program: Command) => void;

// Command name → its module. Only the command being run is loaded: the others pull in the AWS SDK, the
// Kubernetes client or dynalite, and loading them all would cost `parse` most of a second at every start.
const COMMANDS: Record<string, () => Promise<Register>> = {
  parse: async () => (await import("./commands/parse.ts")).registerParse,
  replay: async () => (await import("./commands/replay.ts")).registerReplay,
  // `flows` also registers `alerts`.
  flows: async () => (await import("./commands/flows.ts")).registerFlows,
  alerts: async () => (await import("./commands/flows.ts")).registerFlows,
  panic: async () => (await import("./commands/panic.ts")).registerPanic,
  backfill: async () => (await import("./commands/backfill.ts")).registerBackfill,
  redrive: async () => (await import("./commands/redrive.ts")).registerRedrive,
  demo: async () => (await import("./commands/demo.ts")).registerDemo,
};

/** What follows a usage error, commander's or a command's own. */
const USAGE_HINT = "(add --help to see the options)";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = new Command("calico-flows")
  .description("See, explain and survive Calico policy denials on EKS.")
  .version(version)
  // A hint, not the whole help (forty lines that push the error off the screen).
  .showHelpAfterError(USAGE_HINT)
  .enablePositionalOptions()
  // Usage errors are thrown here (and printed by commander) rather than exiting with 1: they exit with 2, so that
  // a script tells a mistyped command from one that ran and failed. Subcommands inherit this.
  .exitOverride();

const requested = process.argv[2];
const only = requested === undefined ? undefined : COMMANDS[requested];
if (only !== undefined) {
  (await only())(program);
} else if (requested !== "--version" && requested !== "-V") {
  // Help, or a mistyped command: register everything so commander can list and suggest. (The version needs none
  // of them, and loading them all would take most of a second.)
  const registered = new Set<Register>();
  for (const load of Object.values(COMMANDS)) {
    const register = await load();
    if (!registered.has(register)) {
      registered.add(register);
      register(program);
    }
  }
}

// `help panic apply` is `panic apply --help`. Commander's own help command read only its first word (it showed
// panic's subcommands, not apply's options) and, for a name it did not know, printed the whole help and exited 2
// without saying what was wrong.
program
  .command("help")
  .description("display help for command")
  .argument("[command...]", "a command, and a subcommand of it")
  .action(async (names: string[]) => {
    let command: Command = program;
    for (const [i, name] of names.entries()) {
      const known = command.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (known === undefined) {
        if (command.commands.length === 0) command.error(`error: '${command.name()}' has no subcommands`);
        // Refused as the mistyped command itself is: "unknown command 'flow' (Did you mean flows?)". A command
        // with subcommands has no action of its own, so this parse does nothing else.
        await command.parseAsync(names.slice(i), { from: "user" });
        return;
      }
      command = known;
    }
    command.help();
  });

// A reader that went away (`| head`) ends the output: not an error. A command that watches its output itself
// (`parse`, which still prints its summary) has its own listener, and decides.
const onStdoutError = (error: NodeJS.ErrnoException): void => {
  if (process.stdout.listenerCount("error") > 1) return;
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
};
process.stdout.on("error", onStdoutError);

// stderr carries diagnostics only: one that cannot be written (`2>&1 | head`, a `tee` that died) loses them, not the
// work. The command goes on and ends with the exit status it would have had; its later writes there are dropped.
// Without this listener the first failed write ended the run midway with 1, and even a run that had stored
// everything when only its summary failed.
process.stderr.on("error", () => {});

/**
 * What went wrong in one line (a missing file, an option that needs another, a store in use...); the stack only
 * when asked for.
 */
function report(error: unknown): void {
  process.stderr.write(
    `error: ${describeError(error)}\n${error instanceof UsageError ? `${USAGE_HINT}\n` : ""}`,
  );
  if (process.env.CALICO_FLOWS_DEBUG && error instanceof Error && error.stack) {
    process.stderr.write(`${error.stack}\n`);
  }
}

// Thrown past the command's promise (dynalite throws what LevelDB fails with, a full disk or a damaged file, from
// its request handler, which runs on this event loop): one line too, and the command ends there.
process.on("uncaughtException", (error) => {
  report(error);
  process.exit(1);
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and --version end with 0; commander has printed what was wrong otherwise.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
    process.exit();
  }
  report(error);
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
