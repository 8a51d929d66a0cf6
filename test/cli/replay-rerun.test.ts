// A replay whose options were wrong (the cluster's ranges, no pod source), run again as its warning advises: into the
// same store the lines are counted already and nothing changes, so the advice names a new store, and a rerun that
// finds its lines counted under other settings says so.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { registerReplay } from "../../cli/commands/replay.ts";
import { calicoLine, PODS_FILE, T0 } from "../backfill/fixtures.ts";
import { runInProcess } from "./run.ts";

const dir = mkdtempSync(join(tmpdir(), "cf-replay-rerun-"));
afterEach(() => {
  vi.unstubAllEnvs();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILE = join(dir, "node.log");
writeFileSync(
  FILE,
  `${[0, 1, 2, 3].map((i) => calicoLine(T0 + i * 1000, "ip-192-168-74-5", "192.168.22.247", "192.168.94.122", 5432 + i)).join("\n")}\n`,
);
const replay = (store: string, ...more: string[]) =>
  runInProcess(registerReplay, [
    "replay",
    FILE,
    "--store",
    join(dir, store),
    "--year",
    "2026",
    "--quiet",
    ...more,
  ]);
const NEW_STORE = "into a new --store or table (a store counts each line once";

describe("replaying again after a warning", () => {
  it("advises a new store for other ranges, and says the lines were counted under the ranges given before", async () => {
    const wrong = await replay("ranges", "--pods", PODS_FILE, "--internal-cidr", "10.0.0.0/16");
    expect(wrong.stderr).toMatch(
      /^warning: \d+ of the \d+ pod addresses .* outside --internal-cidr 10\.0\.0\.0\/16: /m,
    );
    expect(wrong.stderr).toContain(
      `run with the cluster's ranges (--internal-cidr, repeatable) ${NEW_STORE}`,
    );
    const counted =
      "note: 4 calico records were counted by an earlier replay with other settings, which they keep: " +
      "--internal-cidr 10.0.0.0/16 (this run: --internal-cidr 192.168.0.0/16);";
    // The same lines batched alike (one contribution), then one a batch (each claimed by the earlier one).
    for (const batching of [[], ["--batch-lines", "1"]]) {
      const again = await replay("ranges", "--pods", PODS_FILE, ...batching);
      expect(again.stderr).toContain("replayed 4 lines: 4 calico records (4 counted by an earlier replay)");
      expect(again.stderr).toContain(counted);
    }
  });

  it("advises a new store when there is no pod source", async () => {
    vi.stubEnv("HOME", join(dir, "nowhere"));
    vi.stubEnv("KUBECONFIG", "");
    const run = await replay("unresolved");
    expect(run.stderr).toContain(
      `warning: no --pods/--nodes files and no kubeconfig: internal endpoints are stored unresolved (IPs only); ` +
        `to resolve them, run with --pods/--nodes files or a kubeconfig ${NEW_STORE}`,
    );
  });
});
