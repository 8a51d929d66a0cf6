// Which alerts a listing by time holds (GET /alerts, `calico-flows alerts`): those opened by `until` whose last hit
// is at `since` or later. A late hit (backfill, redrive) folded into a window opened after it is listed by that
// window's opening, not by its own time: the window it lands in may open any time later, so no bounded read finds it
// by its time, and the docs and `alerts --help` say the rule as it is.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import type { AlertCandidate } from "../../functions/core/types.ts";
import { runCli } from "../cli/run.ts";
import { db, web } from "../support/alerts.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

let ts: TestStore;
let store: DynamoFlowStore;
beforeAll(async () => {
  ts = await startTestStore();
  store = new DynamoFlowStore({ client: ts.client, tableName: await ts.freshTable() });
  const key = {
    cluster: "prod",
    src: "customer-a/Deployment/web",
    dst: "customer-b/StatefulSet/db",
    protocol: "TCP",
    dstPort: 8012,
  };
  const candidate = (firstSeen: string, lastSeen: string, hits: number): AlertCandidate => ({
    key,
    src: web,
    dst: db,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    policy: null,
    hits,
    firstSeen,
    lastSeen,
    severity: "high",
    reason: "internal-denial",
  });
  const window = { windowMs: 15 * 60_000, delivers: false };
  // Live ingest opens the alert at 10:00; a backfill of the hour before then folds hits of 09:50 into it.
  await store.applyAlerts(
    [candidate("2026-04-19T10:00:00.000Z", "2026-04-19T10:01:00.000Z", 5)],
    "live",
    window,
  );
  await store.applyAlerts(
    [candidate("2026-04-19T09:50:00.000Z", "2026-04-19T09:50:30.000Z", 7)],
    "backfill",
    window,
  );
});
afterAll(async () => {
  await ts.close();
});

const listed = async (since: string, until: string) =>
  (await store.queryAlerts({ cluster: "prod", since, until })).items.map((a) => [
    a.openedAt,
    a.firstSeen,
    a.lastSeen,
    a.count,
  ]);

describe("an alert listing by time", () => {
  it("holds the alerts opened by until and last hit at since or later, late hits by their alert's opening", async () => {
    const alert = ["2026-04-19T10:00:00.000Z", "2026-04-19T09:50:00.000Z", "2026-04-19T10:01:00.000Z", 12];
    // The late hit of 09:50 alone is in the range, and its alert opened after it.
    expect(await listed("2026-04-19T09:45:00.000Z", "2026-04-19T09:55:00.000Z")).toEqual([]);
    // Opened at until; last hit at since.
    expect(await listed("2026-04-19T09:45:00.000Z", "2026-04-19T10:00:00.000Z")).toEqual([alert]);
    expect(await listed("2026-04-19T10:01:00.000Z", "2026-04-19T10:30:00.000Z")).toEqual([alert]);
    expect(await listed("2026-04-19T10:01:00.001Z", "2026-04-19T10:30:00.000Z")).toEqual([]);
  });

  it("is described as that rule by `alerts --help`", async () => {
    const help = await runCli(["alerts", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout.replace(/\s+/g, " ")).toContain(
      "list alerts opened by --until whose last hit is at --since or later (a late hit folded into an alert opened after it is listed by that opening, not by its own time)",
    );
  });
});
