// `alerts --namespace/--severity/--reason` (found in review): the filters are applied to each page the CLI reads, so
// the pages it asks for must not shrink to what is left of `--limit` (a rare match in a busy range would take
// thousands of requests). A loopback stand-in for the query API (it checks no signature) serves the pages and
// records what was asked.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";
import { ndjson, runCli } from "./run.ts";

const T0 = Date.parse("2026-04-19T04:00:00.000Z");

const endpoint = (ip: string, namespace: string): Endpoint => ({
  ip,
  kind: "pod",
  namespace,
  name: "web-0",
  workload: { kind: "StatefulSet", name: "web" },
  node: null,
  resolved: true,
});

function alert(i: number, severity: "high" | "low"): AlertRecord {
  const at = new Date(T0 + i * 1000).toISOString();
  const src = endpoint(`192.168.1.${(i % 250) + 1}`, "customer-a");
  const dst = endpoint("192.168.2.1", "customer-b");
  return {
    id: `alert-${i}`,
    cluster: "prod",
    key: {
      cluster: "prod",
      src: `customer-a/Pod/p${i}`,
      dst: "customer-b/StatefulSet/web",
      protocol: "TCP",
      dstPort: 5432,
    },
    src,
    dst,
    protocol: "TCP",
    dstPort: 5432,
    direction: "ingress",
    reporter: "node-a",
    policy: null,
    severity,
    reason: severity === "low" ? "external-scan" : "internal-denial",
    count: 1,
    foldedBefore: 0,
    openedAt: at,
    windowEnd: new Date(T0 + i * 1000 + 900_000).toISOString(),
    firstSeen: at,
    lastSeen: at,
    delivery: "sent",
  };
}

/** A fan-in on customer-b's web from many sources, team-7 one of them but not its example. */
function fanIn(i: number): AlertRecord {
  const base = alert(i, "high");
  return {
    ...base,
    id: `fan-in-${i}`,
    key: { ...base.key, src: "*many*" },
    reason: "internal-fan-in",
    namespaces: { src: ["customer-a", "team-7"], dst: ["customer-b"] },
  };
}

/** 600 high alerts, then one low one (`--severity low` matches only it), then a fan-in. */
const ALERTS = [...Array.from({ length: 600 }, (_, i) => alert(i, "high")), alert(600, "low"), fanIn(601)];

let server: Server;
let api: string;
/** The `limit` of each request the stand-in answered. */
const asked: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const limit = Number(url.searchParams.get("limit") ?? "100");
    const from = Number(url.searchParams.get("cursor") ?? "0");
    asked.push(limit);
    const items = ALERTS.slice(from, from + limit);
    const next = from + limit < ALERTS.length ? String(from + limit) : null;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ items, cursor: next }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prod`;
});

afterAll(() => {
  server?.close();
});

const env = {
  AWS_ACCESS_KEY_ID: "AKIDTESTTESTTEST",
  AWS_SECRET_ACCESS_KEY: "test-secret",
  AWS_REGION: "eu-west-1",
};
const RANGE = ["--since", "2026-04-19T03:00:00Z", "--until", "2026-04-19T08:00:00Z"];

describe("alerts filters, late review", () => {
  it("read full pages when a filter drops records, not --limit+1 records a request", async () => {
    asked.length = 0;
    const run = await runCli(
      ["alerts", "--api", api, ...RANGE, "--json", "--severity", "low", "--limit", "1"],
      {
        env,
      },
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(ndjson<AlertRecord>(run.stdout).map((a) => a.id)).toEqual(["alert-600"]);
    // 601 alerts in the range: a couple of full pages (the API allows 1000 a page, the CLI asks 500) read them;
    // asking for limit+1-matched (2) a page takes 301 requests.
    expect(asked.length).toBeLessThanOrEqual(3);
  });

  it("--namespace matches any namespace a scan or fan-in stands for, not only its example's", async () => {
    const run = await runCli(["alerts", "--api", api, ...RANGE, "--json", "--namespace", "team-7"], { env });
    expect(run.stderr).toBe("");
    expect(ndjson<AlertRecord>(run.stdout).map((a) => a.id)).toEqual(["fan-in-601"]);
  });
});
