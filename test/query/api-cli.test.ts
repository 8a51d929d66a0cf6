// `calico-flows flows --api` and `alerts --api`: the real CLI signs its requests (SigV4, execute-api) to a
// loopback stand-in for API Gateway that checks the signature as IAM authorisation would, turns the request
// into a REST proxy event and answers with the query function over dynalite.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { handleQuery } from "../../functions/query/handler.ts";
import { ndjson, runCli } from "../cli/run.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const CLUSTER = "prod";
const REGION = "eu-west-1";
const credentials = { accessKeyId: "AKIDTESTTESTTEST", secretAccessKey: "test-secret" };
const T0 = Date.parse("2026-04-19T04:00:00.000Z");

const endpoint = (ip: string, namespace: string | null, workload: string | null): Endpoint => ({
  ip,
  kind: namespace === null ? "external" : "pod",
  namespace,
  name: workload === null ? null : `${workload}-0`,
  workload: workload === null ? null : { kind: "StatefulSet", name: workload },
  node: null,
  resolved: true,
});

function flow(minute: number, src: Endpoint, dst: Endpoint, dstPort: number): FlowRecord {
  const bucket = new Date(T0 + minute * 60_000).toISOString();
  return {
    id: digest(`${bucket}|${src.ip}|${dst.ip}|${dstPort}`),
    cluster: CLUSTER,
    bucket,
    src,
    dst,
    protocol: "TCP",
    dstPort,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    internal: src.kind !== "external",
    packets: minute + 1,
    bytes: 60 * (minute + 1),
    firstSeen: bucket,
    lastSeen: bucket,
    policy: null,
    tcpFlags: ["SYN"],
  };
}

const db = endpoint("192.168.94.122", "customer-b", "db");
const FLOWS = Array.from({ length: 12 }, (_, i) =>
  flow(
    i * 20,
    i % 3 === 0 ? endpoint("203.0.113.9", null, null) : endpoint(`192.168.22.${i}`, "customer-a", "web"),
    db,
    5432,
  ),
);

let ts: TestStore;
let server: Server;
let api: string;
const seen: { path: string; query: string; authorised: boolean }[] = [];

/** Recomputes the SigV4 signature of a request from its signed headers, as API Gateway's IAM check does. */
async function verify(
  method: string,
  url: URL,
  headers: Record<string, string | string[] | undefined>,
): Promise<boolean> {
  const auth = String(headers.authorization ?? "");
  const signed = /SignedHeaders=([^,]+)/.exec(auth)?.[1]?.split(";") ?? [];
  const amzDate = String(headers["x-amz-date"] ?? "");
  if (
    !auth.startsWith(`AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/`) ||
    !auth.includes(`/${REGION}/execute-api/`)
  ) {
    return false;
  }
  const request = new HttpRequest({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: Object.fromEntries(signed.map((h) => [h, String(headers[h] ?? "")])),
  });
  const signer = new SignatureV4({
    service: "execute-api",
    region: REGION,
    credentials,
    sha256: Hash.bind(null, "sha256"),
  });
  const date = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const again = await signer.sign(request, { signingDate: date });
  return again.headers.authorization === auth;
}

beforeAll(async () => {
  ts = await startTestStore();
  const store = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
  await store.writeFlows(FLOWS, "seed");
  const denied = FLOWS[1] as FlowRecord;
  await store.applyAlerts(
    [
      {
        key: {
          cluster: CLUSTER,
          src: "customer-a/StatefulSet/web",
          dst: "customer-b/StatefulSet/db",
          protocol: "TCP",
          dstPort: 5432,
        },
        src: denied.src,
        dst: denied.dst,
        direction: "ingress",
        reporter: denied.reporter,
        policy: null,
        hits: denied.packets,
        firstSeen: denied.firstSeen,
        lastSeen: denied.lastSeen,
        severity: "high",
        reason: "internal-denial",
      },
    ],
    "seed-alert",
    { windowMs: 15 * 60_000 },
  );
  const runtime = { store, cluster: CLUSTER, now: () => T0 + 5 * 3_600_000 };
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
    const authorised = await verify(req.method ?? "GET", url, req.headers);
    seen.push({ path: url.pathname, query: url.search, authorised });
    if (!authorised) {
      res.writeHead(403, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          message: "The request signature we calculated does not match the signature you provided.",
        }),
      );
      return;
    }
    const resource = url.pathname.replace(/^\/prod/, "");
    const query: Record<string, string> = Object.fromEntries(url.searchParams);
    const event = {
      resource,
      path: resource,
      httpMethod: req.method,
      headers: {},
      multiValueHeaders: {},
      queryStringParameters: Object.keys(query).length === 0 ? null : query,
      multiValueQueryStringParameters: null,
      requestContext: { requestId: "local", stage: "prod", resourcePath: resource, httpMethod: req.method },
    } as unknown as APIGatewayProxyEvent;
    const answer = await handleQuery(event, runtime);
    res.writeHead(answer.statusCode, answer.headers as Record<string, string>);
    res.end(answer.body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prod`;
});

afterAll(async () => {
  server?.close();
  await ts?.close();
});

const env = {
  AWS_ACCESS_KEY_ID: credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  AWS_REGION: REGION,
};
const RANGE = ["--since", "2026-04-19T03:00:00Z", "--until", "2026-04-19T08:00:00Z"];

describe("flows and alerts through the query API", () => {
  it("lists flows page by page with signed requests, filters passed through", async () => {
    seen.length = 0;
    const all = await runCli(["flows", "--api", api, ...RANGE, "--json"], { env });
    expect(all.stderr).toBe("");
    expect(all.code).toBe(0);
    const records = ndjson<FlowRecord>(all.stdout);
    expect(records.map((f) => f.id).sort()).toEqual(FLOWS.map((f) => f.id).sort());
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((r) => r.authorised && r.path === "/prod/flows")).toBe(true);

    const internal = await runCli(["flows", "--api", api, ...RANGE, "--json", "--internal", "false"], {
      env,
    });
    expect(
      ndjson<FlowRecord>(internal.stdout)
        .map((f) => f.id)
        .sort(),
    ).toEqual(
      FLOWS.filter((f) => !f.internal)
        .map((f) => f.id)
        .sort(),
    );
    const byNamespace = await runCli(
      ["flows", "--api", api, ...RANGE, "--json", "--namespace", "customer-a", "--limit", "3"],
      { env },
    );
    const three = ndjson<FlowRecord>(byNamespace.stdout);
    expect(three).toHaveLength(3);
    expect(three.every((f) => f.src.namespace === "customer-a")).toBe(true);
  });

  it("refuses a parameter the API would refuse before asking it, in the API's words", async () => {
    const asked = seen.length;
    const bad = await runCli(["flows", "--api", api, ...RANGE, "--ip", "not-an-ip"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: --ip must be an IPv4 or IPv6 address; got "not-an-ip"$/m);
    expect(seen.length).toBe(asked);
  });

  it("is refused without valid credentials", async () => {
    const forged = await runCli(["alerts", "--api", api, ...RANGE], {
      env: { ...env, AWS_SECRET_ACCESS_KEY: "wrong" },
    });
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toMatch(/403/);
  });

  it("lists alerts", async () => {
    const run = await runCli(["alerts", "--api", api, ...RANGE, "--json"], { env });
    expect(run.code).toBe(0);
    const alerts = ndjson<AlertRecord>(run.stdout);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      cluster: CLUSTER,
      dstPort: 5432,
      severity: "high",
      count: FLOWS[1]?.packets,
    });
    expect(seen.at(-1)?.path).toBe("/prod/alerts");
  });
});
