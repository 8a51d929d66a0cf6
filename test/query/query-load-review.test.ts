// Review: an operator investigating an incident on a busy cluster reads flows through the deployed query API with
// `calico-flows flows --api` (cli/commands/flows.ts over cli/api-client.ts). A loopback stand-in for API Gateway
// turns each request into a REST proxy event and answers with the real query function (handleQuery) over dynalite,
// holding an hour of a busy namespace's flows written through the store adapter; it records what the CLI asks and
// can answer as API Gateway does when it throttles or times out. Every test here fails on the current code because
// of a defect; each says what goes wrong, why an operator cares, and what is expected.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readFlows } from "../../cli/commands/flows.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { handleQuery, type QueryRuntime } from "../../functions/query/handler.ts";
import { ndjson, runCli } from "../cli/run.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const CLUSTER = "prod";
const MINUTE = 60_000;
const T0 = Date.parse("2026-04-19T04:00:00.000Z");
const NOW = T0 + 3 * 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
/** The hour the flows are in (a range of one hour partition: the store reads it directly). */
const HOUR = { since: iso(T0), until: iso(T0 + 60 * MINUTE - 1) };

const pod = (ip: string, namespace: string, name: string, workload: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace,
  name,
  workload: { kind: "Deployment", name: workload },
  node: "ip-192-168-0-5.ec2.internal",
  resolved: true,
});
const external = (ip: string): Endpoint => ({
  ip,
  kind: "external",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved: true,
});

function flow(minute: number, src: Endpoint, dst: Endpoint, dstPort: number): FlowRecord {
  const bucketMs = T0 + minute * MINUTE;
  const bucket = iso(bucketMs);
  return {
    id: digest(JSON.stringify([CLUSTER, bucket, src.ip, src.name, dst.ip, dstPort])),
    cluster: CLUSTER,
    bucket,
    src,
    dst,
    protocol: "TCP",
    dstPort,
    direction: "egress",
    reporter: "ip-192-168-0-5.ec2.internal",
    internal: src.kind !== "external" && dst.kind !== "external",
    packets: 3,
    bytes: 180,
    firstSeen: iso(bucketMs + 1_000),
    lastSeen: iso(bucketMs + 20_000),
    policy: { tier: "default", kind: "NetworkPolicy", name: "default-deny", namespace: "busy" },
    tcpFlags: ["SYN"],
  };
}

/**
 * Fifty minutes of a busy namespace: its web pods denied on the database 20 times a minute (1,000 flows), then,
 * last, the one flow the operator is after: the `rare` workload's pod reaching out of the cluster.
 */
const DB = pod("192.168.9.9", "data", "db-0", "db");
const BUSY = Array.from({ length: 1000 }, (_, i) =>
  flow(
    Math.floor(i / 20),
    pod(`192.168.1.${i % 250}`, "busy", `web-6c9f7d-${i.toString(36).padStart(5, "0")}`, "web"),
    DB,
    5432,
  ),
);
const RARE = flow(55, pod("192.168.3.3", "busy", "rare-5d8b9c-q2x7m", "rare"), external("203.0.113.9"), 443);
const FLOWS = [...BUSY, RARE];

let ts: TestStore;
let server: Server;
let api: string;
/** The `limit` of every GET /flows the stand-in was sent, in order. */
const asked: number[] = [];
/** What the stand-in answers in API Gateway's place for the request numbered n (1-based); undefined: the function. */
let gateway: (n: number) => { status: number; message: string } | undefined = () => undefined;

beforeAll(async () => {
  ts = await startTestStore();
  const store = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName, now: () => NOW });
  await store.writeFlows(FLOWS, "busy-hour");
  const runtime: QueryRuntime = { store, cluster: CLUSTER, now: () => NOW };
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
    const resource = url.pathname.replace(/^\/v1/, "");
    if (resource === "/flows") asked.push(Number(url.searchParams.get("limit") ?? "100"));
    const send = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(body);
    };
    const instead = gateway(asked.length);
    if (instead !== undefined) {
      send(instead.status, JSON.stringify({ message: instead.message }));
      return;
    }
    const query: Record<string, string> = Object.fromEntries(url.searchParams);
    const event = {
      resource,
      path: resource,
      httpMethod: req.method,
      headers: {},
      multiValueHeaders: {},
      queryStringParameters: Object.keys(query).length === 0 ? null : query,
      multiValueQueryStringParameters: null,
      requestContext: { requestId: "local", stage: "v1", resourcePath: resource, httpMethod: req.method },
    } as unknown as APIGatewayProxyEvent;
    handleQuery(event, runtime).then(
      (answer) => send(answer.statusCode, answer.body),
      (error: unknown) => send(500, JSON.stringify({ message: String(error) })),
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}, 60_000);

afterAll(async () => {
  server?.close();
  await ts?.close();
});

beforeEach(() => {
  asked.length = 0;
  gateway = () => undefined;
});

/** `calico-flows flows --api <stand-in> --json …` as the command reads it (readFlows is the code behind --json). */
function flowsOverApi(options: Record<string, unknown>): Promise<FlowRecord[]> {
  return readFlows({ cluster: CLUSTER, api, ...HOUR, ...options });
}

const ids = (flows: readonly FlowRecord[]) => flows.map((f) => f.id);

describe("flows --api with a filter that few flows match", () => {
  // What goes wrong: `collect` (cli/commands/flows.ts) sizes every page it asks for to what `--limit` still wants
  // (`limit + 1 - records so far`: 2 for `--limit 1`). But `--workload`, `--pod` and `--internal` are DynamoDB filter
  // expressions, applied after a Query's `Limit` (docs/flow-store.md, "Pages and cursors": "Filters apply after
  // `Limit`, so filtered pages can be short"): a page of `limit=2` reads two flows of the namespace (or of the hour)
  // and returns what of them matches, usually nothing. So finding one workload's flow among a busy namespace's
  // takes one request per two flows read. `alerts` had the same defect for its filters and reads full pages now
  // (test/cli/alerts-filter-paging.test.ts); `flows` still shrinks them.
  // Impact: "show me the last few flows of deployment X" (`--limit 5`) on a namespace with a day of 100,000 flows is
  // some 17,000 signed requests where 200 would do: over ten minutes against a stage throttled at 25 requests a
  // second (lib/api.ts STAGE_THROTTLE) that every other operator shares (and the CLI fails at the first 429, below).
  // The same `collect` pages `--table` and the embedded store alike.
  // Here: 1,001 flows in the hour, the one matching flow last; the stand-in stops answering after 40 requests.
  // Expected: a filtered listing asks for full pages (the CLI's 500) however few records `--limit` still wants, and
  // cuts to `--limit` itself: a handful of requests for 1,001 flows, and the one flow found.
  it.each([
    ["--namespace busy --workload rare (two index Queries a page)", { namespace: "busy", workload: "rare" }],
    [
      "--namespace busy --pod <rare's pod> (two index Queries a page)",
      { namespace: "busy", pod: RARE.src.name },
    ],
    ["--internal false (the hour partition read by time)", { internal: false }],
  ])("finds the one flow of %s in a few full pages, not two flows a request", async (_name, filters) => {
    gateway = (n) =>
      n > 40 ? { status: 400, message: "stand-in: more than 40 requests for one listing" } : undefined;
    const listing = await flowsOverApi({ ...filters, limit: 1 }).catch((error: unknown) => error);
    expect(
      asked.length,
      `requests for one flow among 1,001 (page limits asked: ${asked.slice(0, 8).join(", ")}, …)`,
    ).toBeLessThanOrEqual(8);
    expect(Array.isArray(listing) ? ids(listing) : String(listing)).toEqual([RARE.id]);
  });
});

describe("flows --api when API Gateway refuses one page for a moment", () => {
  // What goes wrong: callApi (cli/api-client.ts) sends each page once and throws on any answer that is not 2xx;
  // listFlows/collect let that end the whole listing. API Gateway answers 429 `{"message":"Too Many Requests"}` when
  // the stage's throttle (lib/api.ts: 25 requests a second, burst 50, for everyone) or the account's is exceeded,
  // and 504 `{"message":"Endpoint request timed out"}` when the function does not answer within 29 s (a slow
  // DynamoDB); both are transient and a GET of a page is safe to send again (the cursor names the same page).
  // Impact: during an incident several operators page through flows at once; the first throttled page makes
  // `calico-flows flows --api` print "API answered 429: Too Many Requests" and nothing else, throwing away every
  // page it had already read (records are printed at the end), so the operator starts again and throttles again.
  // The AWS SDKs (and this project's own store: retry.ts) back off and retry exactly these answers.
  // Expected: a 429 or 504 answer to one page is retried (after a backoff) and the listing completes with every flow.
  it.each([
    [429, "Too Many Requests"],
    [504, "Endpoint request timed out"],
  ])("retries a page answered %i (%s) and lists every flow", async (status, message) => {
    gateway = (n) => (n === 2 ? { status, message } : undefined);
    const listing = await flowsOverApi({ limit: 5000 }).catch((error: unknown) => error);
    expect(Array.isArray(listing) ? ids(listing).sort() : String(listing)).toEqual(ids(FLOWS).sort());
  });
});

describe("flows --api over many pages", () => {
  // What goes wrong: callApi (cli/api-client.ts) signs each request with
  // `request.credentials ?? fromNodeProviderChain()`, and apiPages passes no credentials: every page builds a new
  // provider chain and resolves the caller's credentials from scratch. SDK clients resolve them once and reuse them
  // until they near expiry; here nothing is kept.
  // Impact: an operator's credentials are rarely static keys: with an SSO profile every page is a call to the SSO
  // portal (GetRoleCredentials), with an assume-role profile an STS AssumeRole (and a CloudTrail event), with
  // `credential_process` a run of that program, on a container or pod role a call to its credentials endpoint.
  // `flows --group` over a busy day reads 200 pages (GROUP_READ_LIMIT 100,000, 500 a page): 200 credential
  // round trips added to the listing, and a throttled STS or SSO answer fails all of it.
  // Here: the real binary, credentials from a loopback container-credentials endpoint (as on ECS, or EKS Pod
  // Identity), 1,001 flows read in three pages.
  // Expected: credentials resolved once for the command (again only when they are about to expire), not per page.
  it("resolves the caller's credentials once for the listing, not once a page", async () => {
    let resolved = 0;
    const credentials = createServer((_req, res) => {
      resolved++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          AccessKeyId: "ASIATESTTESTTEST",
          SecretAccessKey: "test-secret",
          Token: "test-session",
          Expiration: iso(Date.now() + 3_600_000),
        }),
      );
    });
    credentials.listen(0, "127.0.0.1");
    await once(credentials, "listening");
    const { port } = credentials.address() as AddressInfo;
    try {
      const run = await runCli(
        ["flows", "--api", api, "--since", HOUR.since, "--until", HOUR.until, "--json", "--limit", "5000"],
        {
          env: {
            // No static keys, no profile files: the chain ends at the container credentials endpoint.
            AWS_ACCESS_KEY_ID: "",
            AWS_SECRET_ACCESS_KEY: "",
            AWS_SESSION_TOKEN: "",
            AWS_CONFIG_FILE: "/nonexistent/calico-flows-review/config",
            AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/calico-flows-review/credentials",
            AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/creds`,
            AWS_REGION: "eu-west-1",
          },
        },
      );
      expect(run.stderr).toBe("");
      expect(ndjson<FlowRecord>(run.stdout)).toHaveLength(FLOWS.length);
      expect(asked.length, "pages read").toBeGreaterThan(1);
      expect(resolved, `credential resolutions for ${asked.length} pages`).toBe(1);
    } finally {
      credentials.close();
    }
  });
});
