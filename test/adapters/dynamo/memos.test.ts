// Attribution memos against dynalite: saved once per contribution, replaced only at the version read, kept as long
// as the coverage of their events.
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORE_REQUEST_TIMEOUTS } from "../../../functions/adapters/dynamo/client.ts";
import { COVERAGE_TTL_MARGIN_S } from "../../../functions/adapters/dynamo/coverage.ts";
import { expiresAt } from "../../../functions/adapters/dynamo/keys.ts";
import { DynamoMemoStore, MEMO_RETRY, memoKey } from "../../../functions/adapters/dynamo/memos.ts";
import { STORE_RESERVE_MS } from "../../../functions/ingest/config.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";

let ts: TestStore;
let memos: DynamoMemoStore;
const EVENT = Date.parse("2026-04-19T04:52:00.000Z");
const bytes = (text: string) => new Uint8Array(Buffer.from(text));

beforeAll(async () => {
  ts = await startTestStore();
  memos = new DynamoMemoStore({ client: ts.client, tableName: ts.tableName, retentionDays: 7 });
});
afterAll(async () => {
  await ts?.close();
});

describe("DynamoMemoStore", () => {
  it("loads nothing before a memo is saved, then what was saved at version 1", async () => {
    expect(await memos.load("prod", "contribution-a")).toBeUndefined();
    expect(await memos.save("prod", "contribution-a", bytes("first"), 0, EVENT)).toBeUndefined();
    const loaded = await memos.load("prod", "contribution-a");
    expect(Buffer.from(loaded?.bytes ?? []).toString()).toBe("first");
    expect(loaded?.version).toBe(1);
    // Another cluster's contribution of the same id is another memo.
    expect(await memos.load("staging", "contribution-a")).toBeUndefined();
  });

  it("hands back the memo saved in between instead of overwriting it", async () => {
    expect(await memos.save("prod", "contribution-b", bytes("theirs"), 0, EVENT)).toBeUndefined();
    const other = await memos.save("prod", "contribution-b", bytes("mine"), 0, EVENT);
    expect(Buffer.from(other?.bytes ?? []).toString()).toBe("theirs");
    expect(other?.version).toBe(1);
    // At the version read, it is replaced; at a stale version it is not.
    expect(await memos.save("prod", "contribution-b", bytes("extended"), 1, EVENT)).toBeUndefined();
    const stale = await memos.save("prod", "contribution-b", bytes("stale"), 1, EVENT);
    expect(Buffer.from(stale?.bytes ?? []).toString()).toBe("extended");
    expect(stale?.version).toBe(2);
  });

  it("expires with the coverage of its events", async () => {
    await memos.save("prod", "contribution-c", bytes("m"), 0, EVENT);
    const doc = DynamoDBDocumentClient.from(ts.client);
    const item = await doc.send(
      new GetCommand({ TableName: ts.tableName, Key: memoKey("prod", "contribution-c") }),
    );
    expect(item.Item?.expiresAt).toBe(expiresAt(EVENT, 7) + COVERAGE_TTL_MARGIN_S);
    expect(item.Item?.pk).toMatch(/^MEMO#prod#[A-Za-z0-9_-]{16}$/);
  });
});

describe("the time a memo takes to keep", () => {
  it("fits the time the ingest function keeps back for it, every try hung to the client's timeouts", () => {
    const perTry = STORE_REQUEST_TIMEOUTS.connectionTimeout + STORE_REQUEST_TIMEOUTS.requestTimeout;
    let backoff = 0;
    for (let attempt = 1; attempt < MEMO_RETRY.attempts; attempt++) {
      backoff += Math.min(MEMO_RETRY.maxDelayMs, MEMO_RETRY.baseDelayMs * 2 ** (attempt - 1));
    }
    // Encoding takes milliseconds (bench: "attribution memo"); a second left for it and the answer.
    expect(MEMO_RETRY.attempts * perTry + backoff + 1_000).toBeLessThan(STORE_RESERVE_MS);
  });
});
