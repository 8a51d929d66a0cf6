// Attribution memos against dynalite: saved once per contribution, replaced only at the version read, kept as long
// as the coverage of their events.
import { DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
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
    expect(await memos.save("prod", "contribution-a", bytes("first"), 0, EVENT)).toBe(true);
    const loaded = await memos.load("prod", "contribution-a");
    expect(Buffer.from(loaded?.bytes ?? []).toString()).toBe("first");
    expect(loaded?.version).toBe(1);
    // Another cluster's contribution of the same id is another memo.
    expect(await memos.load("staging", "contribution-a")).toBeUndefined();
  });

  it("does not overwrite a memo saved in between", async () => {
    expect(await memos.save("prod", "contribution-b", bytes("theirs"), 0, EVENT)).toBe(true);
    expect(await memos.save("prod", "contribution-b", bytes("mine"), 0, EVENT)).toBe(false);
    // At the version read, it is replaced; at a stale version it is not.
    expect(await memos.save("prod", "contribution-b", bytes("extended"), 1, EVENT)).toBe(true);
    expect(await memos.save("prod", "contribution-b", bytes("stale"), 1, EVENT)).toBe(false);
    const loaded = await memos.load("prod", "contribution-b");
    expect(Buffer.from(loaded?.bytes ?? []).toString()).toBe("extended");
    expect(loaded?.version).toBe(2);
  });

  it("reads a damaged item (no binary memo) as an empty memo at its version, which a failed run then replaces", async () => {
    const doc = DynamoDBDocumentClient.from(ts.client);
    await doc.send(
      new PutCommand({
        TableName: ts.tableName,
        Item: { ...memoKey("prod", "contribution-d"), memo: "not binary", v: 3 },
      }),
    );
    const loaded = await memos.load("prod", "contribution-d");
    expect(loaded?.bytes).toHaveLength(0);
    expect(loaded?.version).toBe(3);
    expect(await memos.save("prod", "contribution-d", bytes("fresh"), 3, EVENT)).toBe(true);
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
    // One conditional write, never read back; encoding takes milliseconds (bench: "attribution memo"): a second
    // is left for it and the answer.
    expect(MEMO_RETRY.attempts * perTry + backoff + 1_000).toBeLessThan(STORE_RESERVE_MS);
  });
});
