// The ingest function retrying a delivery across a deploy that changed its settings (aggregationSeconds here): the
// retry finishes the contribution the failed invocation stored in part, and must store it as that invocation did.
// Through the runtime createRuntime makes of the environment, against dynalite.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import { loadIngestConfig } from "../../functions/ingest/config.ts";
import { createRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { logger } from "../../functions/shared/powertools.ts";
import { calicoLine, payloadOf, storedPackets, T0, total } from "../backfill/fixtures.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { HalfWrittenStore } from "../support/half-written-store.ts";

const STREAM = "ip-192-168-74-5";

let ts: TestStore;

beforeAll(async () => {
  ts = await startTestStore();
  process.env.AWS_ENDPOINT_URL_DYNAMODB = ts.endpoint;
});
afterAll(async () => {
  await ts?.close();
});

describe("a delivery retried after the function's settings changed", () => {
  it("is stored with the settings its failed invocation claimed it under, every packet once, and logged", async () => {
    const table = await ts.freshTable();
    const env = (aggregation: string) => ({
      TABLE_NAME: table,
      CLUSTER_NAME: "prod",
      ATTRIBUTION: "none",
      AGGREGATION_SECONDS: aggregation,
    });
    // A denial a second, to two destinations in turn: four flows in 30 s buckets.
    const events = Array.from({ length: 60 }, (_, i) => {
      const at = T0 + i * 1_000;
      const dst = i % 2 ? "192.168.201.20" : "192.168.201.21";
      return {
        id: String(at).padStart(56, "0"),
        timestamp: at,
        message: calicoLine(at, STREAM, "192.168.200.10", dst, 5432),
      };
    });
    const event = {
      awslogs: {
        data: encodeSubscriptionData(
          payloadOf(
            STREAM,
            events.map((e) => ({ ...e, stream: STREAM })),
          ),
        ),
      },
    };

    const before = createRuntime(loadIngestConfig(env("30")));
    const failing = { ...before, deps: { ...before.deps, store: new HalfWrittenStore(before.deps.store) } };
    await expect(ingestEvent(event, failing)).rejects.toThrow(/partial write/);

    // Deployed again with aggregationSeconds 60; Lambda's retry comes to the new function.
    const warn = vi.spyOn(logger, "warn");
    try {
      const result = await ingestEvent(event, createRuntime(loadIngestConfig(env("60"))));
      const stored = await storedPackets(
        new DynamoFlowStore({ client: ts.client, tableName: table }),
        "prod",
        T0 - MINUTE_MS,
        T0 + 10 * MINUTE_MS,
      );
      expect(total(stored)).toBe(events.length);
      expect(stored.size).toBe(4);
      expect(result?.settings?.bucketSeconds).toBe(30);
      expect(warn).toHaveBeenCalledWith(
        "delivery stored with the settings its first invocation claimed it under, not this function's",
        expect.objectContaining({
          claimed: expect.objectContaining({ bucketSeconds: 30 }),
          own: expect.objectContaining({ bucketSeconds: 60 }),
        }),
      );
    } finally {
      warn.mockRestore();
    }
  });
});
