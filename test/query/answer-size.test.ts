// The query function's answers fit Lambda's response limit (6 MB, the proxy result's JSON, whose body is escaped once
// more): a page reads up to two Queries of 1 MB, and records of many short strings (namespace labels) grow several
// times over in JSON. A page that would not fit is cut, and its cursor goes on exactly after its last record.
import type { APIGatewayProxyResult } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { AlertCandidate, AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { createRuntime, handleQuery, type QueryRuntime } from "../../functions/query/handler.ts";
import { restApiEvent } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const CLUSTER = "prod";
/** What Lambda takes back from a synchronous invocation, at most. */
const LAMBDA_RESPONSE_BYTES = 6_000_000;
const T0 = Date.parse("2026-04-19T04:00:00.000Z");

let ts: TestStore;
beforeAll(async () => {
  ts = await startTestStore();
});
afterAll(async () => {
  await ts.close();
});

/** Bytes of the answer as Lambda returns it: the proxy result's JSON. */
const answerBytes = (res: APIGatewayProxyResult) => Buffer.byteLength(JSON.stringify(res));

function pod(i: number, namespace: string, labels?: Record<string, string>): Endpoint {
  return {
    ip: `192.168.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    kind: "pod",
    namespace,
    name: `pod-${i}`,
    workload: { kind: "Deployment", name: `workload-${i}` },
    node: "ip-192-168-74-5",
    resolved: true,
    ...(labels === undefined ? {} : { labels }),
  };
}

function flow(i: number, minute: number, src: Endpoint, dst: Endpoint): FlowRecord {
  const bucket = new Date(T0 + minute * 60_000).toISOString();
  return {
    id: digest(`${i}|${bucket}`),
    cluster: CLUSTER,
    bucket,
    src,
    dst,
    protocol: "TCP",
    dstPort: 5432,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    internal: true,
    packets: i + 1,
    bytes: 60 * (i + 1),
    firstSeen: bucket,
    lastSeen: bucket,
    policy: null,
    tcpFlags: ["SYN"],
  };
}

/** Every page of a listing through the handler, from its first request on. */
async function pages<T>(
  runtime: QueryRuntime,
  path: "/flows" | "/alerts",
  query: Record<string, string>,
): Promise<{ items: T[]; bytes: number }[]> {
  const out: { items: T[]; bytes: number }[] = [];
  let cursor: string | undefined;
  do {
    const res = await handleQuery(
      restApiEvent(path, cursor === undefined ? query : { ...query, cursor }),
      runtime,
    );
    expect(res.statusCode).toBe(200);
    const body = JSON.parse(res.body) as { items: T[]; cursor: string | null };
    out.push({ items: body.items, bytes: answerBytes(res) });
    cursor = body.cursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

describe("query answers", () => {
  it("fit Lambda's response limit when a page of many-labelled flows would not, and go on where they stopped", async () => {
    const tableName = await ts.freshTable();
    const store = new DynamoFlowStore({ client: ts.client, tableName });
    // Two thousand selected labels, short keys and empty values: 4 bytes each to DynamoDB, 13 in the answer.
    const labels = Object.fromEntries(
      Array.from({ length: 2000 }, (_, k) => [`l${k.toString(36).padStart(2, "0")}`, ""]),
    );
    const flows = Array.from({ length: 180 }, (_, i) =>
      flow(i, 1 + (i % 50), pod(i, "customer-a", labels), pod(1000 + i, "customer-b", labels)),
    );
    for (let i = 0; i < flows.length; i += 20) await store.writeFlows(flows.slice(i, i + 20), `seed-${i}`);
    const runtime = createRuntime({ TABLE_NAME: tableName, CLUSTER_NAME: CLUSTER }, undefined, ts.client);

    // Within one hour from its second minute: both Queries of a page read that hour's partition.
    const read = await pages<FlowRecord>(runtime, "/flows", {
      since: "2026-04-19T04:01:00Z",
      until: "2026-04-19T04:59:00Z",
      limit: "1000",
    });
    // The page two Queries read (2 MB of items, 164 flows) is some 8.9 MB as an answer: cut to fit, near the limit.
    expect(read.map((p) => p.bytes).every((bytes) => bytes <= LAMBDA_RESPONSE_BYTES)).toBe(true);
    expect(read[0]?.bytes).toBeGreaterThan(5_000_000);
    expect(read[0]?.items.length).toBeLessThan(164);
    // Each flow once, in the store's order: by bucket, those of a bucket by id.
    const expected = [...flows]
      .sort((a, b) => (a.bucket === b.bucket ? (a.id < b.id ? -1 : 1) : a.bucket < b.bucket ? -1 : 1))
      .map((f) => f.id);
    expect(read.flatMap((p) => p.items.map((f) => f.id))).toEqual(expected);
  }, 60_000);

  describe("cut by size", () => {
    let tableName: string;
    let flows: FlowRecord[];
    beforeAll(async () => {
      tableName = await ts.freshTable();
      const store = new DynamoFlowStore({ client: ts.client, tableName });
      // Across three hours, half of them in namespace customer-a at one end or the other.
      flows = Array.from({ length: 60 }, (_, i) =>
        flow(i, i * 3, pod(i, i % 2 === 0 ? "customer-a" : "customer-c"), pod(100 + i, "customer-b")),
      );
      await store.writeFlows(flows, "seed");
      const web: Endpoint = pod(500, "customer-a");
      const candidates: AlertCandidate[] = Array.from({ length: 12 }, (_, i) => {
        const at = new Date(T0 + i * 15 * 60_000).toISOString();
        return {
          key: {
            cluster: CLUSTER,
            src: `customer-a/Deployment/web-${i}`,
            dst: "customer-b/Deployment/db",
            protocol: "TCP",
            dstPort: 5432,
          },
          src: web,
          dst: pod(501, "customer-b"),
          direction: "ingress",
          reporter: "ip-192-168-74-5",
          policy: null,
          hits: 3,
          firstSeen: at,
          lastSeen: at,
          severity: "high",
          reason: "internal-scan",
          namespaces: {
            src: Array.from(
              { length: 100 },
              (_, k) => `namespace-${String(k).padStart(3, "0")}-${"x".repeat(49)}`,
            ),
            dst: ["customer-b"],
          },
        };
      });
      await store.applyAlerts(candidates, "seed-alerts", { windowMs: 15 * 60_000, delivers: false });
    });

    const range = { since: "2026-04-19T04:00:00Z", until: "2026-04-19T07:00:00Z", limit: "1000" };

    for (const [question, extra] of [
      ["by time", {}],
      ["by namespace", { namespace: "customer-a" }],
    ] as const) {
      it(`ends a page of flows ${question} at the record that would pass the limit, its cursor after it`, async () => {
        const runtime = createRuntime({ TABLE_NAME: tableName, CLUSTER_NAME: CLUSTER }, undefined, ts.client);
        const whole = await pages<FlowRecord>(runtime, "/flows", { ...range, ...extra });
        const cut = await pages<FlowRecord>({ ...runtime, maxAnswerBytes: 8_000 }, "/flows", {
          ...range,
          ...extra,
        });
        expect(whole.every((p) => p.bytes > 8_000)).toBe(true);
        expect(cut.every((p) => p.bytes <= 8_000 && p.items.length > 0)).toBe(true);
        const ids = (listing: { items: FlowRecord[] }[]) => listing.flatMap((p) => p.items.map((f) => f.id));
        expect(ids(cut)).toEqual(ids(whole));
        expect(ids(whole)).toHaveLength(question === "by time" ? 60 : 30);
      });
    }

    it("ends a page of alerts the same way, each alert whole", async () => {
      const runtime = createRuntime({ TABLE_NAME: tableName, CLUSTER_NAME: CLUSTER }, undefined, ts.client);
      const whole = await pages<AlertRecord>(runtime, "/alerts", range);
      const cut = await pages<AlertRecord>({ ...runtime, maxAnswerBytes: 30_000 }, "/alerts", range);
      expect(cut.length).toBeGreaterThan(3);
      expect(cut.every((p) => p.bytes <= 30_000)).toBe(true);
      const listed = (listing: { items: AlertRecord[] }[]) => listing.flatMap((p) => p.items);
      expect(listed(whole)).toHaveLength(12);
      expect(listed(cut)).toEqual(listed(whole));
    });
  });
});
