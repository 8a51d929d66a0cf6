// The embedded store: a table created on first start, data that survives close and restart in the same
// directory, and a clear error when the directory is already in use.
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedStore } from "../../../functions/adapters/dynamo/embedded.ts";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import { FLOW_INDEXES } from "../../../functions/adapters/dynamo/schema.ts";
import { CLUSTER, flow, pod } from "./fixtures.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "calico-flows-embedded-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("startEmbeddedStore", () => {
  it("keeps flows across close and restart in the same directory", async () => {
    const bucket = "2024-04-19T04:52:00.000Z";
    const f = flow(bucket, pod("192.168.1.1", "a", "x"), pod("192.168.1.2", "b", "y"), { packets: 3 });
    const first = await startEmbeddedStore({ dir: join(dir, "store") });
    expect(first.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await new DynamoFlowStore({ client: first.client, tableName: first.tableName }).writeFlows(
      [f],
      "persist-1",
    );
    await first.close();

    const second = await startEmbeddedStore({ dir: join(dir, "store") });
    try {
      const store = new DynamoFlowStore({ client: second.client, tableName: second.tableName });
      expect((await store.queryFlows({ cluster: CLUSTER, since: bucket, until: bucket })).items).toEqual([f]);
      // Still idempotent after the restart: the contribution is remembered with the flow.
      expect((await store.writeFlows([f], "persist-1")).duplicates).toBe(1);
      const table = await second.client.send(new DescribeTableCommand({ TableName: second.tableName }));
      expect(table.Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName).sort()).toEqual(
        FLOW_INDEXES.map((i) => i.indexName).sort(),
      );
    } finally {
      await second.close();
    }
  });

  it("starts empty in memory, under the table name asked for", async () => {
    const store = await startEmbeddedStore({ tableName: "scratch-table" });
    try {
      const flows = new DynamoFlowStore({ client: store.client, tableName: "scratch-table" });
      expect(
        await flows.queryFlows({
          cluster: CLUSTER,
          since: "2024-04-19T04:00:00Z",
          until: "2024-04-19T04:59:00Z",
        }),
      ).toEqual({
        items: [],
      });
    } finally {
      await store.close();
    }
  });

  it("serves the same store from a thread of its own, as the CLI starts it", async () => {
    const bucket = "2024-04-19T05:10:00.000Z";
    const f = flow(bucket, pod("192.168.1.3", "a", "x"), pod("192.168.1.4", "b", "y"), { packets: 2 });
    const first = await startEmbeddedStore({ dir: join(dir, "threaded"), ownThread: true });
    await new DynamoFlowStore({ client: first.client, tableName: first.tableName }).writeFlows([f], "t-1");
    await first.close();
    // Closed, the thread has let LevelDB go: the directory opens again, here in this thread.
    const second = await startEmbeddedStore({ dir: join(dir, "threaded") });
    try {
      const store = new DynamoFlowStore({ client: second.client, tableName: second.tableName });
      expect((await store.queryFlows({ cluster: CLUSTER, since: bucket, until: bucket })).items).toEqual([f]);
    } finally {
      await second.close();
    }
  });

  it("keeps idle connections open, so that a client never reuses one the server is closing", async () => {
    const store = await startEmbeddedStore();
    try {
      // Node's default closes a connection idle for 5 s and says so (Keep-Alive: timeout=5); a request sent on it
      // as it closes failed with ECONNRESET, which a store must treat as possibly applied (retry.ts).
      const answer = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(`${store.endpoint}/`, { method: "POST", agent: new Agent({ keepAlive: true }) });
        req.on("response", resolve).on("error", reject).end("{}");
      });
      answer.resume();
      expect(answer.headers.connection).toBe("keep-alive");
      expect(answer.headers["keep-alive"]).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it("says so when another process holds the directory", async () => {
    const holder = await startEmbeddedStore({ dir: join(dir, "busy") });
    try {
      await expect(startEmbeddedStore({ dir: join(dir, "busy") })).rejects.toThrow(
        /another calico-flows process/,
      );
    } finally {
      await holder.close();
    }
  });
});
