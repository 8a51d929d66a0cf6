// The calico-flows CLI: the same core and adapters as the Lambda functions, run locally.
import { Command } from "commander";
import { registerBackfill } from "./commands/backfill.ts";
import { registerDemo } from "./commands/demo.ts";
import { registerFlows } from "./commands/flows.ts";
import { registerPanic } from "./commands/panic.ts";
import { registerParse } from "./commands/parse.ts";
import { registerRedrive } from "./commands/redrive.ts";
import { registerReplay } from "./commands/replay.ts";

const program = new Command("calico-flows")
  .description("See, explain and survive Calico policy denials on EKS.")
  .showHelpAfterError()
  .enablePositionalOptions();

// Each command module adds itself here (one line each).
registerParse(program);
registerReplay(program);
registerFlows(program);
registerPanic(program);
registerBackfill(program);
registerRedrive(program);
registerDemo(program);

await program.parseAsync(process.argv);
