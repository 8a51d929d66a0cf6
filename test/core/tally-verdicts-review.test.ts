// Review of the kept verdicts: a later run of a contribution whose flows differ from its first run's (attributed
// otherwise, or judged at a lower threshold) keeps what its own flows make; the verdict only raises the subjects it
// names.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableStores } from "../../functions/adapters/dynamo/stores.ts";
import { alertCandidates, talliedAlertCandidates } from "../../functions/core/alert-rules.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { ingestDelivery } from "../../functions/core/coverage.ts";
import type { IngestDeps } from "../../functions/core/ingest.ts";
import { createScanner } from "../../functions/core/parse.ts";
import type { IpDirectory } from "../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { deniedLine, directory, nodeName, SCANNER, T0, targetIp } from "../support/node-streams.ts";
import { client, flow, pod, unknown } from "./alert-fixtures.ts";

let testStore: TestStore;
beforeAll(async () => {
  testStore = await startTestStore();
});
afterAll(async () => {
  await testStore?.close();
});

async function freshStores() {
  const tableName = await testStore.freshTable();
  return tableStores({ client: testStore.client, tableName, retentionDays: 30 });
}

const WINDOW = 15 * 60_000;
const targets = Array.from({ length: 6 }, (_, i) =>
  pod(`192.168.60.${i + 1}`, `shop-${i}`, `api${i}-x`, `api${i}`),
);

describe("a kept verdict and subjects it does not name", () => {
  it("a later run attributed otherwise keeps the scan its own flows make (verdict names the IP, not the pod)", async () => {
    // First run: the source unresolved (Kubernetes unreachable, no memo kept: a redelivery of a run that
    // succeeded, or `replay` again with a directory). Its payload alone reaches 5 destinations: the verdict says
    // `source prod/192.168.40.1` is over. The later run resolves the source to a pod: a subject the verdict does
    // not name, which judge() (alert-rules.ts:505-513) sets to 0 instead of the payload's own count of 5.
    const { tallies } = await freshStores();
    const ip = "192.168.40.1";
    const first = targets.slice(0, 5).map((t, i) => flow(unknown(ip, false), t, { dstPort: 8000 + i }));
    const later = targets.slice(0, 5).map((t, i) => flow(client(0), t, { dstPort: 8000 + i }));
    const run = { contribution: "payload-1" };
    const a = await talliedAlertCandidates(first, { scanThreshold: 5 }, tallies, WINDOW, {
      ...run,
      firstRun: true,
    });
    expect(a.map((c) => c.reason)).toEqual(["internal-scan"]);
    const b = await talliedAlertCandidates(later, { scanThreshold: 5 }, tallies, WINDOW, {
      ...run,
      firstRun: false,
    });
    // What the rules make of these flows on their own: one scan. The verdict makes five denials.
    expect(alertCandidates(later, { scanThreshold: 5 }).map((c) => c.reason)).toEqual(["internal-scan"]);
    expect(b.map((c) => c.reason)).toEqual(["internal-scan"]);
  });

  it("a later run with a lower scan threshold keeps the scan its own flows make", async () => {
    // `replay` of the same file again with --scan-threshold 5 after 10 (or a redrive after SCAN_THRESHOLD was
    // lowered): the first verdict is empty, and the later run sets every count to 0, below the payload's 6.
    const { tallies } = await freshStores();
    const flows = targets.map((t, i) => flow(client(0), t, { dstPort: 8000 + i }));
    const run = { contribution: "payload-2" };
    await talliedAlertCandidates(flows, { scanThreshold: 10 }, tallies, WINDOW, { ...run, firstRun: true });
    const b = await talliedAlertCandidates(flows, { scanThreshold: 5 }, tallies, WINDOW, {
      ...run,
      firstRun: false,
    });
    expect(alertCandidates(flows, { scanThreshold: 5 }).map((c) => c.reason)).toEqual(["internal-scan"]);
    expect(b.map((c) => c.reason)).toEqual(["internal-scan"]);
  });

  it("replay of the same lines with a directory: one scan, as its flows make, not five internal denials", async () => {
    // The production path (`replay`, cli/commands/replay.ts:173): ingestDelivery with coverage, node null. The
    // first replay resolves nothing; the second, given a directory, finds the claim (firstRun false), writes no
    // flow, and judges its resolved flows by the first verdict.
    const stores = await freshStores();
    const nothing: IpDirectory = {
      resolve: async (lookups) => lookups.map(() => ({ status: "unavailable", reason: "none" })),
    };
    const deps = (dir: IpDirectory): IngestDeps => ({
      store: stores.store,
      memos: stores.memos,
      tally: stores.tallies,
      alertWindowMs: WINDOW,
      alertCap: 50,
      pipeline: {
        cluster: "prod",
        internal: new CidrSet(["192.168.0.0/16"]),
        bucketSeconds: 60,
        scanner: createScanner(),
        directory: dir,
        scanThreshold: 5,
      },
    });
    const node = nodeName(9);
    const payload = {
      logGroup: "replay",
      logStream: "replay",
      node: null,
      logEvents: [0, 1, 2, 3, 4].map((i) => ({
        id: String(70_000 + i),
        timestamp: T0 + i,
        message: deniedLine(node, SCANNER, targetIp(i), 8000 + i, false),
      })),
    };
    const first = await ingestDelivery(payload, deps(nothing), stores.coverage, "live");
    expect(first.candidates.map((c) => c.reason)).toEqual(["internal-scan"]);
    const second = await ingestDelivery(payload, deps(directory), stores.coverage, "live");
    expect(second.flowsApplied).toBe(0);
    expect(alertCandidates(second.flows, { scanThreshold: 5 }).map((c) => c.reason)).toEqual([
      "internal-scan",
    ]);
    expect(second.candidates.map((c) => c.reason)).toEqual(["internal-scan"]);
  });
});
