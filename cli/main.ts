// The calico-flows CLI: the same core and adapters as the Lambda functions, run locally.
import { Command } from "commander";

const program = new Command("calico-flows")
  .description("See, explain and survive Calico policy denials on EKS.")
  .showHelpAfterError()
  .enablePositionalOptions();

// Each command module adds itself here (one line each).

await program.parseAsync(process.argv);
