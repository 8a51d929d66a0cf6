// The same kernel lines replayed as `kubectl logs` decorates them (`--prefix`'s `[pod/<pod>/<container>] `,
// `--timestamps`' time, or both), which the parser skips: named as the plain lines are, so counted once.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { registerReplay } from "../../cli/commands/replay.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { calicoLine, PODS_FILE, storedByAddress, T0, total } from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { runInProcess, useDynamoEndpoint } from "./run.ts";

let dynamo: TestStore;
const dir = mkdtempSync(join(tmpdir(), "cf-replay-decorations-"));
beforeAll(async () => {
  dynamo = await startTestStore();
});
afterEach(() => {
  vi.unstubAllEnvs();
});
afterAll(async () => {
  await dynamo.close();
  rmSync(dir, { recursive: true, force: true });
});

const SECONDS = [1, 2, 3];
const PLAIN = SECONDS.map((s) =>
  calicoLine(T0 + s * 1000, "ip-192-168-74-5", "192.168.22.247", "192.168.94.122", 5430 + s),
);
const prefix = (l: string) => `[pod/calico-logs-7xk2p/calico-logs] ${l}`;
/** `kubectl logs --timestamps`: the time the container runtime read the line, a moment after the kernel's. */
const timestamps = (l: string, i: number) =>
  `${new Date(T0 + (SECONDS[i] as number) * 1000).toISOString().replace(".000Z", ".123456789Z")} ${l}`;

describe("replay of lines decorated by kubectl logs", () => {
  it("counts once the lines replayed plain, with --prefix, with --timestamps and with both", async () => {
    useDynamoEndpoint(dynamo.endpoint);
    const table = await dynamo.freshTable();
    const inputs = {
      plain: PLAIN,
      prefixed: PLAIN.map(prefix),
      timestamped: PLAIN.map(timestamps),
      both: PLAIN.map((l, i) => prefix(timestamps(l, i))),
    };
    const counted: Record<string, string> = {};
    for (const [name, lines] of Object.entries(inputs)) {
      const file = join(dir, `${name}.log`);
      writeFileSync(file, `${lines.join("\n")}\n`);
      const run = await runInProcess(registerReplay, [
        "replay",
        file,
        ...["--table", table, "--cluster", "prod", "--pods", PODS_FILE, "--year", "2026", "--quiet"],
      ]);
      expect(run.code, run.stderr).toBe(0);
      counted[name] = /^replayed 3 lines: 3 calico records( \(\d+ counted by an earlier replay\))?/m.exec(
        run.stderr,
      )?.[0] as string;
    }
    const again = "replayed 3 lines: 3 calico records (3 counted by an earlier replay)";
    expect(counted).toEqual({
      plain: "replayed 3 lines: 3 calico records",
      prefixed: again,
      timestamped: again,
      both: again,
    });
    const stored = await storedByAddress(
      new DynamoFlowStore({ client: dynamo.client, tableName: table }),
      "prod",
      T0 - 3_600_000,
      T0 + 3_600_000,
    );
    expect(total(stored)).toBe(3);
  });
});
