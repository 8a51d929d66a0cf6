// What `flows --api` and `alerts --api` say on stderr besides the records: the cluster an empty API answers for
// (not the default `local`, which it does not serve), and that `--bucket-seconds` has no effect through the API.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { handleQuery } from "../../functions/query/handler.ts";
import { restApiEvent } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { runCli } from "./run.ts";

let ts: TestStore;
let server: Server;
let api: string;
/** The paths the stand-in for API Gateway was asked. */
const asked: string[] = [];

// A loopback stand-in for API Gateway in front of the query function of cluster "prod", whose table holds nothing.
beforeAll(async () => {
  ts = await startTestStore();
  const runtime = {
    store: new DynamoFlowStore({ client: ts.client, tableName: ts.tableName }),
    cluster: "prod",
    now: Date.now,
  };
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
    const resource = url.pathname.replace(/^\/v1/, "");
    asked.push(resource);
    const event = restApiEvent(resource, Object.fromEntries(url.searchParams), req.method);
    const answer = await handleQuery(event, runtime);
    res.writeHead(answer.statusCode, answer.headers as Record<string, string>);
    res.end(answer.body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  server?.close();
  await ts?.close();
});

const env = {
  AWS_ACCESS_KEY_ID: "AKIDTESTTESTTEST",
  AWS_SECRET_ACCESS_KEY: "test-secret",
  AWS_REGION: "eu-west-1",
  AWS_PROFILE: undefined,
};

describe("flows and alerts through an API with no flows", () => {
  it("name the cluster the API answered for in the note that none exist at any time", async () => {
    const flows = await runCli(["flows", "--api", api], { env });
    expect(flows.code, flows.stderr).toBe(0);
    expect(flows.stdout).toBe("no records in that range\n");
    expect(flows.stderr).toBe(
      'note: the store holds no flows of cluster "prod" at any time: no --since will find one\n',
    );
    const alerts = await runCli(["alerts", "--api", api, "--json"], { env });
    expect(alerts.code, alerts.stderr).toBe(0);
    expect(alerts.stderr).toBe(
      'note: the store holds no flows of cluster "prod" at any time (alerts are raised on flows): no --since will find one\n',
    );
    const grouped = await runCli(["flows", "--api", api, "--group"], { env });
    expect(grouped.stderr).toBe(
      'note: the store holds no flows of cluster "prod" at any time: no --since will find one\n',
    );
  });

  it("say the API's cluster, unnamed, when its pages do not name it (deployed before they did)", async () => {
    const older = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ items: [], cursor: null }));
    });
    older.listen(0, "127.0.0.1");
    await once(older, "listening");
    try {
      const url = `http://127.0.0.1:${(older.address() as AddressInfo).port}/v1`;
      const run = await runCli(["flows", "--api", url], { env });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toBe(
        "note: the store holds no flows of the API's cluster at any time: no --since will find one\n",
      );
    } finally {
      older.close();
    }
  });

  it("note that --bucket-seconds has no effect through the API, before asking it", async () => {
    asked.length = 0;
    const run = await runCli(
      ["flows", "--api", api, "--cluster", "prod", "--bucket-seconds", "300", "--since", "1h"],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe(
      "note: --bucket-seconds has no effect on flows with --api: the query API reads the buckets its stack's " +
        "ingest counts in (up to 60 s); flows counted in longer ones are read with --table and --bucket-seconds\n",
    );
    expect(asked).toEqual(["/flows"]);
  });
});
