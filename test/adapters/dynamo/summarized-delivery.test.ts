// The "summarized" delivery state (found in review): an alert two deliveries hold at once (the opener, and another
// that took it over once the lease ran out) can be sent on its own by one and summarized by the other. Whatever
// their order, the record must keep saying it went out on its own: "summarized" tells the operator no e-mail of
// its own was sent.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import type { AlertRecord } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { at, CLUSTER, candidate, pod } from "./fixtures.ts";

const WINDOW = { windowMs: 15 * 60_000 };
const MINUTE = 60_000;

let ts: TestStore;
let clock = Date.parse("2024-05-01T00:00:00.000Z");
let store: DynamoFlowStore;

beforeAll(async () => {
  ts = await startTestStore();
  store = new DynamoFlowStore({
    client: ts.clientFor(),
    tableName: ts.tableName,
    now: () => clock,
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
  });
});

afterAll(async () => {
  await ts.close();
});

describe("summarized delivery, late review", () => {
  it("a summary's mark does not overwrite an alert another delivery sent on its own", async () => {
    const src = pod("192.168.61.1", "src61", "client-61", ["Deployment", "client"]);
    const dst = pod("192.168.61.2", "dst61", "db-0", ["StatefulSet", "db"]);
    const t = "2024-04-23T06:00:00.000Z";
    const opener = await store.applyAlerts([candidate(src, dst, t, 1)], "o1", WINDOW);
    expect(opener.alerts).toHaveLength(1);
    // The opener is slow; a minute later another delivery takes the alert over.
    clock += 61_000;
    const other = await store.applyAlerts([candidate(src, dst, at(t, MINUTE), 1)], "o2", WINDOW);
    expect(other.alerts).toHaveLength(1);
    // That one publishes it on its own; then the opener, over its cap, publishes a summary that lists it.
    await store.markAlertSent(other.alerts[0] as AlertRecord);
    await store.markAlertSent(opener.alerts[0] as AlertRecord, "summarized");
    const page = await store.queryAlerts({ cluster: CLUSTER, since: t, until: t, limit: 10 });
    expect(page.items[0]?.delivery).toBe("sent");
  });
});
