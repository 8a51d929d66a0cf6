// `--store` given beside `--table`, which names the store instead: noted on every command that opens a store, as
// option-effects.test.ts checks the other common options a command has no use for.
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { registerBackfill } from "../../cli/commands/backfill.ts";
import { registerFlows } from "../../cli/commands/flows.ts";
import { registerRedrive } from "../../cli/commands/redrive.ts";
import { registerReplay } from "../../cli/commands/replay.ts";
import { notesBeforeAction as notes } from "./run.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Never created: the commands' actions are not run. */
const STORE = join("/nonexistent", "calico-flows-store");
const QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/calico-flows-ingest-failures";
const BOTH = ["--cluster", "prod", "--table", "calico-flows-prod", "--store", STORE];

const storeNote = (command: string) =>
  expect.stringMatching(
    new RegExp(`^note: --store has no effect on ${command}: --table names its store.*\\n$`),
  );

describe("--store given with --table", () => {
  it.each([
    ["flows", registerFlows, ["flows"]],
    ["alerts", registerFlows, ["alerts"]],
    ["replay", registerReplay, ["replay", "-"]],
    ["redrive", registerRedrive, ["redrive", "--queue-url", QUEUE]],
  ])("is noted on %s", async (command, register, argv) => {
    expect(await notes(register, [command], [...argv, ...BOTH])).toEqual([storeNote(command)]);
    // Either alone is the store, and --region is the table's (and the queue's): nothing to note.
    const alone = [...argv, "--cluster", "prod"];
    expect(await notes(register, [command], [...alone, "--store", STORE])).toEqual([]);
    expect(
      await notes(register, [command], [...alone, "--region", "eu-west-1", "--table", "calico-flows-prod"]),
    ).toEqual([]);
  });

  it("is noted on backfill only when --checkpoint is given too: it keeps the checkpoint otherwise", async () => {
    const backfill = [
      "backfill",
      "--log-group",
      "/eks/prod/calico",
      "--since",
      "6h",
      "--region",
      "eu-west-1",
    ];
    expect(await notes(registerBackfill, ["backfill"], [...backfill, ...BOTH])).toEqual([]);
    const checkpoint = ["--checkpoint", join(STORE, "run.json")];
    expect(await notes(registerBackfill, ["backfill"], [...backfill, ...BOTH, ...checkpoint])).toEqual([
      expect.stringMatching(
        /^note: --store has no effect on backfill: --table names its store, and --checkpoint its progress file\n$/,
      ),
    ]);
  });
});

describe("replay's --beside-live", () => {
  it("is noted without --table, where no live ingest writes the store", async () => {
    expect(
      await notes(registerReplay, ["replay"], ["replay", "-", "--beside-live", "--store", STORE]),
    ).toEqual([expect.stringMatching(/^note: --beside-live has no effect without --table/)]);
    expect(
      await notes(
        registerReplay,
        ["replay"],
        ["replay", "-", "--beside-live", "--cluster", "prod", "--table", "t"],
      ),
    ).toEqual([]);
  });
});
