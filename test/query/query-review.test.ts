// The query API against its contract and against the CLI on the same store (dynalite): generated stores of flows
// and alerts, generated queries (every filter and combination, since/until in every accepted form), every page
// followed to the end, compared with the CLI's `flows`/`alerts` (readFlows/readAlerts, the code behind `--json`)
// and with the documented meaning of each filter (DESIGN.md §3.3, docs/flow-store.md "Time ranges"). Then what
// the API must refuse: bad and odd values, repeated and unknown parameters, tampered and foreign cursors, wrong
// methods and paths — always a 400 naming the parameter (or 404/405), never a 500 or an empty 200.
import type { APIGatewayProxyEventV2, APIGatewayProxyResult } from "aws-lambda";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { readAlerts, readFlows } from "../../cli/commands/flows.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { digest } from "../../functions/core/aggregate.ts";
import type { AlertCandidate, AlertRecord, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { handleQuery, type QueryRuntime, wrapCursor } from "../../functions/query/handler.ts";
import { ndjson, runCli } from "../cli/run.ts";
import { restApiEvent } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// Six hours of data that cross midnight: several flow hour partitions and two alert day partitions.
const T0 = Date.parse("2026-04-19T21:00:00.000Z");
const SPAN_MINUTES = 6 * 60;
const NOW = T0 + SPAN_MINUTES * MINUTE + 10 * MINUTE;
const CLUSTER = "prod";
const OTHER = "staging";
const iso = (ms: number) => new Date(ms).toISOString();

// Endpoints ------------------------------------------------------------------------------------------------

function pod(ip: string, namespace: string, name: string, workload: [string, string] | null): Endpoint {
  return {
    ip,
    kind: "pod",
    namespace,
    name,
    workload: workload === null ? null : { kind: workload[0], name: workload[1] },
    node: "ip-192-168-0-5.ec2.internal",
    resolved: true,
  };
}

const ENDPOINTS: Endpoint[] = [
  pod("192.168.1.10", "alpha", "web-5f7c9d-x1", ["Deployment", "web"]),
  pod("192.168.1.11", "alpha", "web-5f7c9d-y2", ["Deployment", "web"]),
  pod("192.168.1.12", "alpha", "api-0", ["StatefulSet", "api"]),
  pod("192.168.1.13", "alpha", "lonely", null),
  pod("192.168.2.20", "beta", "db-0", ["StatefulSet", "db"]),
  // The same workload name as alpha's Deployment, another kind, another namespace.
  pod("192.168.2.21", "beta", "web-0", ["StatefulSet", "web"]),
  // An IP reused: held by a pod of beta, and (another holder) by a pod of alpha.
  pod("192.168.2.22", "beta", "cache-0", ["StatefulSet", "cache"]),
  pod("192.168.2.22", "alpha", "job-abc12", ["Job", "nightly"]),
  pod("2001:db8::7", "gamma", "edge-x", ["DaemonSet", "edge"]),
  pod("2001:db8:0:1::a", "gamma", "edge-y", ["DaemonSet", "edge"]),
  {
    ip: "192.168.0.5",
    kind: "node",
    namespace: null,
    name: "ip-192-168-0-5.ec2.internal",
    workload: null,
    node: "ip-192-168-0-5.ec2.internal",
    resolved: true,
  },
  {
    ip: "192.168.9.9",
    kind: "unknown",
    namespace: null,
    name: null,
    workload: null,
    node: null,
    resolved: false,
  },
  {
    ip: "203.0.113.9",
    kind: "external",
    namespace: null,
    name: null,
    workload: null,
    node: null,
    resolved: true,
  },
  {
    ip: "2001:db8:ffff::9",
    kind: "external",
    namespace: null,
    name: null,
    workload: null,
    node: null,
    resolved: true,
  },
];
const NAMESPACES = ["alpha", "beta", "gamma", "zeta"];
const WORKLOADS = ["web", "api", "db", "cache", "nightly", "edge", "missing"];
const WORKLOAD_KINDS = [
  "Deployment",
  "deployment",
  "StatefulSet",
  "statefulset",
  "Job",
  "DaemonSet",
  "CronJob",
];
const PODS = [...ENDPOINTS.flatMap((e) => (e.kind === "pod" && e.name !== null ? [e.name] : [])), "gone-0"];
const IPS = [...new Set(ENDPOINTS.map((e) => e.ip)), "192.168.77.77", "2001:db8::dead"];
const REPORTERS = ["ip-192-168-0-5.ec2.internal", "ip-192-168-0-6.ec2.internal"];

// Flows ----------------------------------------------------------------------------------------------------

interface FlowSpec {
  src: number;
  dst: number;
  minute: number;
  first: number;
  last: number;
  proto: number;
  port: number;
  reporter: number;
  policy: boolean;
  packets: number;
}

const PROTOCOLS = ["TCP", "UDP", "ICMP"] as const;

function flowOf(cluster: string, s: FlowSpec): FlowRecord {
  const src = ENDPOINTS[s.src] as Endpoint;
  const dst = ENDPOINTS[s.dst] as Endpoint;
  const bucketMs = T0 + s.minute * MINUTE;
  const bucket = iso(bucketMs);
  const protocol = PROTOCOLS[s.proto] as string;
  const dstPort = protocol === "ICMP" ? null : s.port;
  const reporter = REPORTERS[s.reporter] as string;
  const policy = s.policy
    ? { tier: "default", kind: "NetworkPolicy", name: "deny-all", namespace: "beta" }
    : null;
  const [first, last] = s.first <= s.last ? [s.first, s.last] : [s.last, s.first];
  const key = [cluster, bucket, src.ip, src.name, dst.ip, dst.name, protocol, dstPort, reporter, s.policy];
  return {
    id: digest(JSON.stringify(key)),
    cluster,
    bucket,
    src,
    dst,
    protocol,
    dstPort,
    direction: s.reporter === 0 ? "ingress" : "egress",
    reporter,
    internal: src.kind !== "external" && dst.kind !== "external",
    packets: s.packets,
    bytes: s.packets * 60,
    firstSeen: iso(bucketMs + first),
    lastSeen: iso(bucketMs + last),
    policy,
    tcpFlags: protocol === "TCP" ? ["SYN"] : [],
  };
}

/** Flows in the `minutes` from `from` minutes after T0. */
const flowSpec = (minutes: number, from = 0): fc.Arbitrary<FlowSpec> =>
  fc.record({
    src: fc.nat(ENDPOINTS.length - 1),
    dst: fc.nat(ENDPOINTS.length - 1),
    minute: fc.integer({ min: from, max: from + minutes - 1 }),
    first: fc.nat(MINUTE - 1),
    last: fc.nat(MINUTE - 1),
    proto: fc.nat(PROTOCOLS.length - 1),
    port: fc.constantFrom(22, 443, 5432, 8080),
    reporter: fc.nat(REPORTERS.length - 1),
    policy: fc.boolean(),
    packets: fc.integer({ min: 1, max: 5000 }),
  });

/** Distinct flows (one record per aggregation key, as the store holds them). */
function flowsOf(cluster: string, specs: readonly FlowSpec[]): FlowRecord[] {
  const byId = new Map<string, FlowRecord>();
  for (const s of specs) {
    const f = flowOf(cluster, s);
    byId.set(f.id, f);
  }
  return [...byId.values()];
}

// Queries and their documented meaning ---------------------------------------------------------------------

interface Filters {
  namespace?: string;
  workload?: string;
  pod?: string;
  ip?: string;
  internal?: boolean;
}

/** The canonical kind a `kind/name` filter means (a lower-case kind also matches its Kubernetes spelling). */
const canonicalKind = (kind: string): string =>
  ({
    deployment: "Deployment",
    statefulset: "StatefulSet",
    daemonset: "DaemonSet",
    job: "Job",
    cronjob: "CronJob",
  })[kind.toLowerCase()] ?? kind;

/** RFC 5952 text of an address in any spelling (the test's own reading, independent of the code's). */
function canonicalIp(ip: string): string {
  if (!ip.includes(":")) return ip;
  const [head = "", tail] = ip.toLowerCase().split("::");
  const words = (s: string) => (s === "" ? [] : s.split(":").map((w) => Number.parseInt(w, 16)));
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  const all = [...h, ...Array(8 - h.length - t.length).fill(0), ...t] as number[];
  let best = [-1, 0];
  for (let i = 0; i < 8; ) {
    if (all[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && all[j] === 0) j++;
    if (j - i > 1 && j - i > (best[1] as number)) best = [i, j - i];
    i = j;
  }
  const hex = all.map((w) => w.toString(16));
  if ((best[0] as number) < 0) return hex.join(":");
  const [at, len] = best as [number, number];
  return `${hex.slice(0, at).join(":")}::${hex.slice(at + len).join(":")}`;
}

function sideMatches(e: Endpoint, f: Filters): boolean {
  if (f.namespace !== undefined && e.namespace !== f.namespace) return false;
  if (f.workload !== undefined) {
    const slash = f.workload.indexOf("/");
    const name = slash === -1 ? f.workload : f.workload.slice(slash + 1);
    if (e.workload?.name !== name) return false;
    if (slash !== -1) {
      const kind = f.workload.slice(0, slash);
      if (e.workload.kind !== kind && e.workload.kind !== canonicalKind(kind)) return false;
    }
  }
  if (f.pod !== undefined && (e.kind !== "pod" || e.name !== f.pod)) return false;
  return true;
}

/** DESIGN.md §3.3 and docs/flow-store.md: a packet in [since, until], each filter on one end of the flow. */
function expectedFlows(flows: readonly FlowRecord[], since: number, until: number, f: Filters): FlowRecord[] {
  return flows.filter((flow) => {
    if (Date.parse(flow.lastSeen) < since || Date.parse(flow.firstSeen) > until) return false;
    if (f.internal !== undefined && flow.internal !== f.internal) return false;
    if (f.ip !== undefined) {
      const ip = canonicalIp(f.ip);
      if (flow.src.ip !== ip && flow.dst.ip !== ip) return false;
    }
    const side = { ...f, ip: undefined, internal: undefined };
    if (side.namespace === undefined) return true;
    return sideMatches(flow.src, side) || sideMatches(flow.dst, side);
  });
}

/** A time argument in one of its accepted spellings, and the instant it means (now = NOW). */
interface Instant {
  text: string;
  ms: number;
}

function offsetText(minutes: number, colon: boolean): string {
  const sign = minutes < 0 ? "-" : "+";
  const a = Math.abs(minutes);
  const hh = String(Math.floor(a / 60)).padStart(2, "0");
  const mm = String(a % 60).padStart(2, "0");
  return `${sign}${hh}${colon ? ":" : ""}${mm}`;
}

/** ISO text of `ms` as seen from a UTC offset (minutes), without its `Z`. */
function localIso(ms: number, offsetMinutes: number): string {
  return new Date(ms + offsetMinutes * MINUTE).toISOString().slice(0, -1);
}

const instantArb: fc.Arbitrary<Instant> = fc.oneof(
  // Canonical, a second and a minute precision, with and without Z (no offset is UTC).
  fc
    .record({
      ms: fc.integer({ min: T0 - HOUR, max: NOW + HOUR }),
      form: fc.constantFrom("canonical", "seconds", "minutes", "no-zone", "nanos"),
    })
    .map(({ ms, form }): Instant => {
      const full = iso(ms);
      if (form === "canonical") return { text: full, ms };
      if (form === "seconds") return { text: `${full.slice(0, 19)}Z`, ms: Math.floor(ms / 1000) * 1000 };
      if (form === "minutes") return { text: `${full.slice(0, 16)}Z`, ms: Math.floor(ms / MINUTE) * MINUTE };
      if (form === "nanos") return { text: `${full.slice(0, 23)}456789Z`, ms };
      return { text: full.slice(0, 23), ms };
    }),
  // With an offset, in the extended and the basic form.
  fc
    .record({
      ms: fc.integer({ min: T0 - HOUR, max: NOW + HOUR }),
      offset: fc.integer({ min: -12 * 60, max: 14 * 60 }).map((m) => m - (m % 15)),
      colon: fc.boolean(),
    })
    .map(
      ({ ms, offset, colon }): Instant => ({
        text: `${localIso(ms, offset)}${offsetText(offset, colon)}`,
        ms,
      }),
    ),
  // A date alone: midnight UTC.
  fc
    .constantFrom("2026-04-19", "2026-04-20", "2026-04-21")
    .map((d): Instant => ({ text: d, ms: Date.parse(`${d}T00:00:00Z`) })),
  fc.constant<Instant>({ text: "now", ms: NOW }),
  // Durations before now, in every unit.
  fc
    .record({ n: fc.integer({ min: 0, max: 500 }), unit: fc.constantFrom("s", "m", "h", "d", "w") })
    .map(({ n, unit }): Instant => {
      const scaled = { s: n * 30, m: n, h: Math.floor(n / 60), d: n % 2, w: n % 2 }[unit] as number;
      const unitMs = { s: 1000, m: MINUTE, h: HOUR, d: 24 * HOUR, w: 7 * 24 * HOUR }[unit] as number;
      return { text: `${scaled}${unit}`, ms: NOW - scaled * unitMs };
    }),
);

/** An instant exactly at (or a millisecond either side of) a flow's first or last packet: the bounds are inclusive. */
const edgeInstant = (flows: readonly FlowRecord[]): fc.Arbitrary<Instant> =>
  fc
    .record({ i: fc.nat(), which: fc.boolean(), delta: fc.constantFrom(-1, 0, 1) })
    .map(({ i, which, delta }) => {
      const f = flows[i % flows.length] as FlowRecord;
      const ms = Date.parse(which ? f.firstSeen : f.lastSeen) + delta;
      return { text: iso(ms), ms };
    });

/** An IP in another accepted spelling: upper case, expanded groups, or as given. */
const ipSpelling = (ip: string): fc.Arbitrary<string> => {
  if (!ip.includes(":")) return fc.constant(ip);
  const [head = "", tail = ""] = ip.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  const expanded = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t].map((w) => w.padStart(4, "0"));
  return fc.constantFrom(ip, ip.toUpperCase(), expanded.join(":"), expanded.join(":").toUpperCase());
};

const filtersArb: fc.Arbitrary<Filters> = fc
  .record(
    {
      namespace: fc.constantFrom(...NAMESPACES),
      workload: fc.oneof(
        fc.constantFrom(...WORKLOADS),
        fc
          .tuple(fc.constantFrom(...WORKLOAD_KINDS), fc.constantFrom(...WORKLOADS))
          .map(([k, n]) => `${k}/${n}`),
      ),
      pod: fc.constantFrom(...PODS),
      ip: fc.constantFrom(...IPS).chain(ipSpelling),
      internal: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  // workload and pod need a namespace: those without one are the refusals' property.
  .filter((f) => f.namespace !== undefined || (f.workload === undefined && f.pod === undefined));

// Events ---------------------------------------------------------------------------------------------------

type Query = Record<string, string | string[]>;

/** An HTTP API (payload 2.0) event: repeated parameters arrive joined with commas. */
function httpEvent(path: string, query: Query = {}, method = "GET"): APIGatewayProxyEventV2 {
  // Own properties whatever their names, as the Lambda runtime's JSON.parse makes them (`__proto__` included).
  const params: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(query)) params[k] = Array.isArray(v) ? v.join(",") : v;
  return {
    version: "2.0",
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: new URLSearchParams(params).toString(),
    headers: {},
    ...(Object.keys(params).length === 0 ? {} : { queryStringParameters: params }),
    isBase64Encoded: false,
    requestContext: { http: { method, path }, requestId: "review-v2" },
  } as unknown as APIGatewayProxyEventV2;
}

/** The decoded parameters API Gateway hands over for a raw query string (`%2F` is `/`, `%3A` is `:`). */
function decodedQuery(raw: string): Query {
  const query: Record<string, string[]> = {};
  for (const part of raw.split("&")) {
    const eq = part.indexOf("=");
    const k = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
    const v = eq === -1 ? "" : decodeURIComponent(part.slice(eq + 1));
    query[k] = [...(query[k] ?? []), v];
  }
  return Object.fromEntries(
    Object.entries(query).map(([k, v]) => [k, v.length === 1 ? (v[0] as string) : v]),
  );
}

interface Body<T> {
  items: T[];
  cursor: string | null;
  message?: string;
  parameter?: string | null;
}
const bodyOf = <T>(r: APIGatewayProxyResult): Body<T> => JSON.parse(r.body) as Body<T>;

let ts: TestStore;
let prod: QueryRuntime;
let staging: QueryRuntime;
let writer: DynamoFlowStore;
let FLOWS: FlowRecord[] = [];
let clusterCount = 0;

function runtimeFor(cluster: string): QueryRuntime {
  return {
    store: new DynamoFlowStore({ client: ts.clientFor(), tableName: ts.tableName }),
    cluster,
    now: () => NOW,
  };
}

async function call(
  runtime: QueryRuntime,
  path: string,
  query: Query,
  v2 = false,
): Promise<APIGatewayProxyResult> {
  return handleQuery(v2 ? httpEvent(path, query) : restApiEvent(path, query), runtime);
}

/** Every page of a listing, each a separate event carrying the previous page's cursor. */
async function allPages<T>(
  runtime: QueryRuntime,
  path: string,
  query: Query,
  v2 = false,
): Promise<{ items: T[]; pages: T[][] }> {
  const pages: T[][] = [];
  let cursor: string | null = null;
  do {
    const r = await call(runtime, path, cursor === null ? query : { ...query, cursor }, v2);
    expect(r.statusCode, r.body).toBe(200);
    const b = bodyOf<T>(r);
    expect(Array.isArray(b.items)).toBe(true);
    pages.push(b.items);
    cursor = b.cursor;
    expect(pages.length).toBeLessThan(2000);
  } while (cursor !== null);
  return { items: pages.flat(), pages };
}

/** The CLI's answer (`flows --json`) for the same store and options, its clock at NOW. */
async function cliFlows(cluster: string, options: Record<string, unknown>): Promise<FlowRecord[]> {
  const clock = vi.spyOn(Date, "now").mockReturnValue(NOW);
  try {
    return await readFlows({ cluster, table: ts.tableName, until: "now", limit: 100_000, ...options });
  } finally {
    clock.mockRestore();
  }
}

async function cliAlerts(cluster: string, options: Record<string, unknown>): Promise<AlertRecord[]> {
  const clock = vi.spyOn(Date, "now").mockReturnValue(NOW);
  try {
    return await readAlerts({ cluster, table: ts.tableName, until: "now", limit: 100_000, ...options });
  } finally {
    clock.mockRestore();
  }
}

const FLOW_FIELDS = [
  "src",
  "dst",
  "protocol",
  "dstPort",
  "direction",
  "reporter",
  "internal",
  "packets",
  "bytes",
  "firstSeen",
  "lastSeen",
  "policy",
];
const ENDPOINT_FIELDS = ["ip", "kind", "namespace", "name", "workload", "node"];

function expectFlowShape(f: FlowRecord): void {
  for (const k of FLOW_FIELDS) expect(f, k).toHaveProperty(k);
  for (const e of [f.src, f.dst]) {
    for (const k of ENDPOINT_FIELDS) expect(e, k).toHaveProperty(k);
    expect(["pod", "node", "service", "external", "unknown"]).toContain(e.kind);
  }
}

const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id);

const savedEndpoint = process.env.AWS_ENDPOINT_URL_DYNAMODB;

beforeAll(async () => {
  ts = await startTestStore();
  // The CLI's --table goes through the SDK's standard configuration: point it at dynalite.
  process.env.AWS_ENDPOINT_URL_DYNAMODB = ts.endpoint;
  writer = new DynamoFlowStore({ client: ts.client, tableName: ts.tableName });
  const specs = fc.sample(fc.array(flowSpec(SPAN_MINUTES), { minLength: 150, maxLength: 150 }), {
    numRuns: 1,
    seed: 20260419,
  })[0] as FlowSpec[];
  FLOWS = flowsOf(CLUSTER, specs);
  await writer.writeFlows(FLOWS, "review-seed");
  // Another cluster in the same table, with flows at the same times and on the same addresses.
  await writer.writeFlows(flowsOf(OTHER, specs.slice(0, 60)), "review-seed-other");
  prod = runtimeFor(CLUSTER);
  staging = runtimeFor(OTHER);
});

afterAll(async () => {
  if (savedEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  else process.env.AWS_ENDPOINT_URL_DYNAMODB = savedEndpoint;
  await ts?.close();
});

function apiParams(
  since: Instant | undefined,
  until: Instant | undefined,
  f: Filters,
  limit?: number,
): Query {
  const q: Record<string, string> = {};
  if (since !== undefined) q.since = since.text;
  if (until !== undefined) q.until = until.text;
  if (f.namespace !== undefined) q.namespace = f.namespace;
  if (f.workload !== undefined) q.workload = f.workload;
  if (f.pod !== undefined) q.pod = f.pod;
  if (f.ip !== undefined) q.ip = f.ip;
  if (f.internal !== undefined) q.internal = String(f.internal);
  if (limit !== undefined) q.limit = String(limit);
  return q;
}

function cliOptions(
  since: Instant | undefined,
  until: Instant | undefined,
  f: Filters,
): Record<string, unknown> {
  return {
    ...(since === undefined ? {} : { since: since.text }),
    ...(until === undefined ? {} : { until: until.text }),
    ...f,
  };
}

describe("GET /flows answers what `flows --json` answers", () => {
  it("for generated filters, time arguments and page sizes: every page followed, each flow once", async () => {
    const instant = fc.oneof(instantArb, edgeInstant(FLOWS));
    await fc.assert(
      fc.asyncProperty(
        fc.option(instant, { nil: undefined }),
        fc.option(instant, { nil: undefined }),
        filtersArb,
        fc.option(fc.oneof(fc.integer({ min: 1, max: 7 }), fc.constantFrom(100, 1000)), { nil: undefined }),
        fc.boolean(),
        async (since, until, filters, limit, v2) => {
          const untilMs = until?.ms ?? NOW;
          const sinceMs = since?.ms ?? untilMs - 24 * HOUR;
          const query = apiParams(since, until, filters, limit);
          if (sinceMs > untilMs) {
            const r = await call(prod, "/flows", query, v2);
            expect(r.statusCode, r.body).toBe(400);
            expect(bodyOf(r).parameter).toBe("since");
            await expect(cliFlows(CLUSTER, cliOptions(since, until, filters))).rejects.toThrow(/since/);
            return;
          }
          const { items, pages } = await allPages<FlowRecord>(prod, "/flows", query, v2);
          for (const page of pages) expect(page.length).toBeLessThanOrEqual(limit ?? 100);
          expect(new Set(ids(items)).size, "a flow on two pages").toBe(items.length);
          const cli = await cliFlows(CLUSTER, cliOptions(since, until, filters));
          // Same records, same order, same fields.
          expect(items).toEqual(cli);
          const expected = expectedFlows(FLOWS, sinceMs, untilMs, filters);
          expect(ids(items).sort()).toEqual(ids(expected).sort());
          const stored = new Map(FLOWS.map((f) => [f.id, f]));
          for (const f of items) {
            expectFlowShape(f);
            // A query returns exactly what was written.
            expect(f).toEqual(stored.get(f.id));
          }
        },
      ),
      { numRuns: 120 },
    );
  });

  it("over generated stores, each in a cluster of its own", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.array(flowSpec(150), { maxLength: 25 }),
          // Dense: many flows to a bucket, across an hour partition's end.
          fc.array(flowSpec(4, 58), { maxLength: 40 }),
        ),
        filtersArb,
        fc.integer({ min: 1, max: 4 }),
        async (specs, filters, limit) => {
          const cluster = `gen-${clusterCount++}`;
          const flows = flowsOf(cluster, specs);
          if (flows.length > 0) await writer.writeFlows(flows, `review-${cluster}`);
          const runtime = runtimeFor(cluster);
          const since: Instant = { text: iso(T0), ms: T0 };
          const until: Instant = { text: "now", ms: NOW };
          const { items } = await allPages<FlowRecord>(
            runtime,
            "/flows",
            apiParams(since, until, filters, limit),
          );
          expect(items).toEqual(await cliFlows(cluster, cliOptions(since, until, filters)));
          expect(ids(items).sort()).toEqual(ids(expectedFlows(flows, T0, NOW, filters)).sort());
        },
      ),
      { numRuns: 20 },
    );
  });

  it("gives each flow once when the page size changes from one page to the next", async () => {
    await fc.assert(
      fc.asyncProperty(
        filtersArb,
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 8 }),
        async (filters, limits) => {
          const query = apiParams(undefined, undefined, filters);
          const items: FlowRecord[] = [];
          let cursor: string | null = null;
          let page = 0;
          do {
            const limit = String(limits[page++ % limits.length]);
            const r = await call(
              prod,
              "/flows",
              cursor === null ? { ...query, limit } : { ...query, limit, cursor },
            );
            expect(r.statusCode, r.body).toBe(200);
            items.push(...bodyOf<FlowRecord>(r).items);
            cursor = bodyOf(r).cursor;
          } while (cursor !== null);
          expect(items).toEqual(await cliFlows(CLUSTER, cliOptions(undefined, undefined, filters)));
        },
      ),
      { numRuns: 25 },
    );
  });

  it("the real binary prints the records the API pages through", async () => {
    const window = ["--since", "2026-04-19T23:30:00+02:00", "--until", "2026-04-20T01:15:00Z"];
    const run = await runCli(
      ["flows", "--cluster", CLUSTER, "--table", ts.tableName, ...window, "--namespace", "alpha", "--json"],
      { env: { AWS_ENDPOINT_URL_DYNAMODB: ts.endpoint } },
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const printed = ndjson<FlowRecord>(run.stdout);
    const { items } = await allPages<FlowRecord>(prod, "/flows", {
      since: "2026-04-19T23:30:00+02:00",
      until: "2026-04-20T01:15:00Z",
      namespace: "alpha",
      limit: "3",
    });
    expect(items.length).toBeGreaterThan(0);
    expect(items).toEqual(printed);
  });
});

// Alerts ---------------------------------------------------------------------------------------------------

const ALERT_KEYS = [
  [0, 4, 5432],
  [1, 4, 5432],
  [2, 5, 8080],
  [11, 6, 6379],
  [8, 9, 443],
] as const;

function candidate(cluster: string, k: number, at: number, hits: number): AlertCandidate {
  const [s, d, port] = ALERT_KEYS[k] as readonly [number, number, number];
  const src = ENDPOINTS[s] as Endpoint;
  const dst = ENDPOINTS[d] as Endpoint;
  const name = (e: Endpoint) =>
    e.workload === null ? e.ip : `${e.namespace}/${e.workload.kind}/${e.workload.name}`;
  return {
    key: { cluster, src: name(src), dst: name(dst), protocol: "TCP", dstPort: port },
    src,
    dst,
    direction: "ingress",
    reporter: REPORTERS[0] as string,
    policy: null,
    hits,
    firstSeen: iso(at),
    lastSeen: iso(at + 5_000),
    severity: "high",
    reason: "internal-denial",
  };
}

describe("GET /alerts answers what `alerts --json` answers", () => {
  let ALL: AlertRecord[] = [];

  beforeAll(async () => {
    const hits = fc.sample(
      fc.array(
        fc.record({
          k: fc.nat(ALERT_KEYS.length - 1),
          minute: fc.nat(SPAN_MINUTES - 1),
          n: fc.integer({ min: 1, max: 50 }),
        }),
        { minLength: 60, maxLength: 60 },
      ),
      { numRuns: 1, seed: 4242 },
    )[0] as { k: number; minute: number; n: number }[];
    hits.sort((a, b) => a.minute - b.minute);
    for (const [i, h] of hits.entries()) {
      await writer.applyAlerts([candidate(CLUSTER, h.k, T0 + h.minute * MINUTE + 1234, h.n)], `alert-${i}`, {
        windowMs: 15 * MINUTE,
      });
    }
    await writer.applyAlerts([candidate(OTHER, 0, T0 + 90 * MINUTE, 3)], "alert-other", {
      windowMs: 15 * MINUTE,
    });
    ALL = await cliAlerts(CLUSTER, { since: "2026-04-01", until: "2026-05-01" });
  });

  it("for generated time arguments and page sizes", async () => {
    expect(ALL.length).toBeGreaterThan(10);
    expect(new Set(ALL.map((a) => Date.parse(a.openedAt) >= T0 && a.cluster === CLUSTER))).toEqual(
      new Set([true]),
    );
    const edge = fc.record({ i: fc.nat(), delta: fc.constantFrom(-1, 0, 1) }).map(({ i, delta }): Instant => {
      const ms = Date.parse((ALL[i % ALL.length] as AlertRecord).openedAt) + delta;
      return { text: iso(ms), ms };
    });
    const instant = fc.oneof(instantArb, edge);
    await fc.assert(
      fc.asyncProperty(
        fc.option(instant, { nil: undefined }),
        fc.option(instant, { nil: undefined }),
        fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
        fc.boolean(),
        async (since, until, limit, v2) => {
          const untilMs = until?.ms ?? NOW;
          const sinceMs = since?.ms ?? untilMs - 24 * HOUR;
          const query = apiParams(since, until, {}, limit);
          if (sinceMs > untilMs) {
            const r = await call(prod, "/alerts", query, v2);
            expect(r.statusCode, r.body).toBe(400);
            expect(bodyOf(r).parameter).toBe("since");
            return;
          }
          const { items, pages } = await allPages<AlertRecord>(prod, "/alerts", query, v2);
          for (const page of pages) expect(page.length).toBeLessThanOrEqual(limit ?? 100);
          expect(new Set(ids(items)).size).toBe(items.length);
          expect(items).toEqual(await cliAlerts(CLUSTER, cliOptions(since, until, {})));
          // The alerts with a hit in the range: opened by its end, last seen at its start or after.
          const opened = (a: AlertRecord) => Date.parse(a.openedAt);
          const last = (a: AlertRecord) => Date.parse(a.lastSeen);
          expect(ids(items).sort()).toEqual(
            ids(ALL.filter((a) => last(a) >= sinceMs && opened(a) <= untilMs)).sort(),
          );
        },
      ),
      { numRuns: 60 },
    );
  });
});

// Refusals -------------------------------------------------------------------------------------------------

const FLOW_PARAMS = ["since", "until", "limit", "cursor", "namespace", "workload", "pod", "ip", "internal"];

async function expectRefusal(r: APIGatewayProxyResult, parameter: string): Promise<void> {
  expect(r.statusCode, r.body).toBe(400);
  const b = bodyOf(r);
  expect(b.parameter).toBe(parameter);
  expect(b.message).toContain(parameter);
}

describe("bad input is a 400 naming the parameter", () => {
  it.each([
    [{ since: "2026-02-30T00:00:00Z" }, "since"],
    [{ until: "2026-04-31" }, "until"],
    [{ until: "2025-02-29T12:00Z" }, "until"],
    [{ since: "2026-04-19T04:00:00+24:00" }, "since"],
    [{ since: "2026-04-19T04:60:00Z" }, "since"],
    [{ since: "2026-04-19  04:00:00Z" }, "since"],
    [{ since: "2026-04-19_04:00:00Z" }, "since"],
    [{ since: "Apr 19 2026" }, "since"],
    [{ since: "-1h" }, "since"],
    [{ since: "1.5h" }, "since"],
    [{ since: "15M" }, "since"],
    [{ since: "15 m" }, "since"],
    [{ since: "NOW" }, "since"],
    [{ since: "" }, "since"],
    // Instants a Date holds but the store's keys (ISO years 0000–9999) cannot.
    [{ since: "800000d" }, "since"],
    [{ since: "99999999d" }, "since"],
    [{ until: "110000w" }, "until"],
    [{ until: "9999-12-31T23:00:00-05:00" }, "until"],
    [{ since: "0000-01-01T00:30:00+01:00" }, "since"],
    [{ limit: "" }, "limit"],
    [{ limit: "-3" }, "limit"],
    [{ limit: "2.5" }, "limit"],
    [{ cursor: "" }, "cursor"],
    [{ namespace: "Alpha" }, "namespace"],
    [{ namespace: "al pha" }, "namespace"],
    [{ namespace: "alpha/beta" }, "namespace"],
    [{ namespace: "a".repeat(64) }, "namespace"],
    [{ namespace: "alpha", workload: "Deployment/" }, "workload"],
    [{ namespace: "alpha", workload: "/web" }, "workload"],
    [{ namespace: "alpha", workload: "alpha/Deployment/web" }, "workload"],
    [{ namespace: "alpha", pod: "Web-0" }, "pod"],
    [{ workload: "web", pod: "web-0" }, "workload"],
    [{ ip: "2001:db8::1::2" }, "ip"],
    [{ ip: "fe80::1%eth0" }, "ip"],
    [{ ip: "[2001:db8::7]" }, "ip"],
    [{ ip: " 192.168.1.10" }, "ip"],
    [{ ip: "192.168.001.10" }, "ip"],
    [{ internal: "TRUE" }, "internal"],
    [{ internal: "1" }, "internal"],
  ] as [Record<string, string>, string][])("GET /flows refuses %j naming %s", async (query, parameter) => {
    await expectRefusal(await call(prod, "/flows", query), parameter);
    await expectRefusal(await call(prod, "/flows", query, true), parameter);
    if (parameter === "since" || parameter === "until") {
      await expectRefusal(await call(prod, "/alerts", query), parameter);
      // The CLI takes the same time arguments, and refuses the same ones.
      await expect(cliFlows(CLUSTER, query)).rejects.toThrow();
      await expect(cliAlerts(CLUSTER, query)).rejects.toThrow();
    }
  });

  it("takes RFC 3339's spellings of a time (a space or t, z) as the CLI does, for the same instant", async () => {
    const canonical = { since: "2026-04-19T21:00:00Z", until: "2026-04-19T23:00:00Z" };
    const expected = await allPages<{ id: string }>(prod, "/flows", canonical);
    expect(expected.items.length).toBeGreaterThan(0);
    for (const query of [
      { since: "2026-04-19 21:00:00Z", until: "2026-04-19 23:00:00" },
      { since: "2026-04-19t21:00:00z", until: "2026-04-20T01:00:00+02:00" },
    ]) {
      expect((await allPages<{ id: string }>(prod, "/flows", query)).items).toEqual(expected.items);
      expect(await cliFlows(CLUSTER, query)).toEqual(expected.items);
    }
  });

  it("takes the edges of the years a time can name, as the CLI does", async () => {
    const cases: Record<string, string>[] = [
      // No since: the day before until, which stops at the first instant there is.
      { until: "0000-01-01T00:00:00Z" },
      { until: "0000-01-01T05:00:00.000Z" },
      { since: "0000-01-01", until: "0000-01-01T03:59:59.999Z" },
      { since: "9999-12-31T22:00:00Z", until: "9999-12-31T23:59:59.999Z" },
    ];
    for (const query of cases) {
      for (const path of ["/flows", "/alerts"]) {
        const { items } = await allPages<{ id: string }>(prod, path, { ...query, limit: "1" });
        const cli = path === "/flows" ? await cliFlows(CLUSTER, query) : await cliAlerts(CLUSTER, query);
        expect(items).toEqual(cli);
        expect(items).toEqual([]);
      }
    }
    // 1917 years before now is still a year with four digits: a first page, and more to follow.
    const far = await call(prod, "/flows", { since: "100000w", limit: "5" });
    expect(far.statusCode, far.body).toBe(200);
    expect(bodyOf(far).cursor).not.toBeNull();
  });

  it("refuses every value that is not the parameter's, whatever its characters, and answers the CLI's for the rest", async () => {
    const odd = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.string({ unit: "grapheme", maxLength: 8 }),
      fc.constantFrom(
        " ",
        "%2F",
        "/",
        "alpha ",
        " now",
        "2001:DB8::7 ",
        "Deployment/web/",
        "..",
        "a\u0000b",
        "a,b",
      ),
      // URL-encoded spellings, decoded by API Gateway before the function sees them.
      fc
        .constantFrom(
          "Deployment%2Fweb",
          "2001%3Adb8%3A%3A7",
          "2001%3ADB8%3A%3A7",
          "2026-04-20T00%3A30%3A00%2B02%3A00",
        )
        .map(decodeURIComponent),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FLOW_PARAMS.filter((p) => p !== "cursor")),
        odd,
        async (name, value) => {
          const query: Record<string, string> = { since: iso(T0), until: iso(NOW), [name]: value };
          if (name === "workload" || name === "pod") query.namespace = "alpha";
          const r = await call(prod, "/flows", query);
          expect([200, 400], r.body).toContain(r.statusCode);
          if (r.statusCode === 400) {
            expect(bodyOf(r).parameter).toBe(name);
            expect(bodyOf(r).message).toContain(name);
            return;
          }
          // Accepted: then it is a value the CLI answers the same for.
          const { items } = await allPages<FlowRecord>(prod, "/flows", query);
          const options: Record<string, unknown> = { ...query };
          if (name === "internal") options.internal = value === "true";
          if (name === "limit") delete options.limit;
          expect(items).toEqual(await cliFlows(CLUSTER, options));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("names a repeated parameter, in both payload formats", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FLOW_PARAMS), fc.boolean(), async (name, v2) => {
        const values: Record<string, [string, string]> = {
          since: ["6h", "2h"],
          until: ["now", "1h"],
          limit: ["5", "6"],
          cursor: ["abc", "def"],
          namespace: ["alpha", "beta"],
          workload: ["web", "db"],
          pod: ["web-0", "db-0"],
          ip: ["192.168.1.10", "192.168.2.20"],
          internal: ["true", "false"],
        };
        const query: Query = { [name]: values[name] as [string, string] };
        if (name === "workload" || name === "pod") query.namespace = "alpha";
        await expectRefusal(await call(prod, "/flows", query, v2), name);
        if (["since", "until", "limit", "cursor"].includes(name)) {
          await expectRefusal(await call(prod, "/alerts", query, v2), name);
        }
      }),
      { numRuns: 30 },
    );
    // The same value twice is still a repetition.
    await expectRefusal(await call(prod, "/flows", { namespace: ["alpha", "alpha"] }), "namespace");
  });

  it("names an unknown parameter, and takes only time parameters on /alerts", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !FLOW_PARAMS.includes(s)),
          fc.constantFrom("Since", "NAMESPACE", "ns", "limit ", "ip[]", "next", "page", "cluster"),
        ),
        fc.boolean(),
        async (name, v2) => {
          const r = await call(prod, "/flows", { [name]: "x", namespace: "alpha" }, v2);
          await expectRefusal(r, name);
        },
      ),
      { numRuns: 40 },
    );
    // Names an object's prototype answers to (a random run found `__proto__` taken for the prototype, unrefused).
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      for (const v2 of [false, true]) {
        await expectRefusal(await call(prod, "/flows", { [name]: "x", namespace: "alpha" }, v2), name);
      }
    }
    for (const name of ["namespace", "workload", "pod", "ip", "internal"]) {
      await expectRefusal(await call(prod, "/alerts", { [name]: "alpha" }), name);
    }
  });

  it("reads parameters from a raw query string as API Gateway decodes it", async () => {
    const raw = "since=2026-04-20T00%3A30%3A00%2B02%3A00&until=now&ip=2001%3ADB8%3A%3A7&limit=2";
    const { items } = await allPages<FlowRecord>(prod, "/flows", decodedQuery(raw));
    const expected = expectedFlows(FLOWS, Date.parse("2026-04-19T22:30:00Z"), NOW, { ip: "2001:db8::7" });
    expect(ids(items).sort()).toEqual(ids(expected).sort());
    await expectRefusal(
      await call(prod, "/flows", decodedQuery("namespace=alpha&workload=Deployment%252Fweb")),
      "workload",
    );
  });
});

// Cursors --------------------------------------------------------------------------------------------------

/** The first page's cursor of a listing with more than one page. */
async function firstCursor(runtime: QueryRuntime, path: string, query: Query): Promise<string> {
  const r = await call(runtime, path, query);
  expect(r.statusCode, r.body).toBe(200);
  const cursor = bodyOf(r).cursor;
  expect(cursor).not.toBeNull();
  return cursor as string;
}

const decode = (c: string) =>
  JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as { w: [string, string]; c: string };
const encode = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("a cursor reads only the listing that issued it", () => {
  const window = { since: iso(T0), until: iso(NOW) };

  it("refuses a cursor from another cluster, another filter, another route", async () => {
    const fromStaging = await firstCursor(staging, "/flows", { ...window, limit: "2" });
    await expectRefusal(await call(prod, "/flows", { ...window, limit: "2", cursor: fromStaging }), "cursor");
    const stagingAlerts = await firstCursor(prod, "/alerts", { ...window, limit: "1" });
    await expectRefusal(
      await call(staging, "/alerts", { ...window, limit: "1", cursor: stagingAlerts }),
      "cursor",
    );
    await expectRefusal(await call(prod, "/flows", { ...window, cursor: stagingAlerts }), "cursor");

    await fc.assert(
      fc.asyncProperty(filtersArb, filtersArb, async (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        const r = await call(prod, "/flows", { ...apiParams(undefined, undefined, a), limit: "1" });
        const cursor = bodyOf(r).cursor;
        fc.pre(cursor !== null);
        const other = await call(prod, "/flows", {
          ...apiParams(undefined, undefined, b),
          limit: "1",
          cursor: cursor as string,
        });
        const same =
          canonicalIp(a.ip ?? "") === canonicalIp(b.ip ?? "") &&
          JSON.stringify({ ...a, ip: undefined }) === JSON.stringify({ ...b, ip: undefined });
        if (same) expect(other.statusCode).toBe(200);
        else await expectRefusal(other, "cursor");
        await expectRefusal(await call(prod, "/alerts", { cursor: cursor as string }), "cursor");
      }),
      { numRuns: 40 },
    );
  });

  it("keeps working after the clock has moved on (the cursor carries its window)", async () => {
    const query = { since: "3h", limit: "4" };
    const first = await call(prod, "/flows", query);
    const cursor = bodyOf(first).cursor as string;
    const later: QueryRuntime = { ...prod, now: () => NOW + 40 * 24 * HOUR };
    const again = await call(later, "/flows", { ...query, cursor });
    expect(again.statusCode).toBe(200);
    expect(again.body).toBe((await call(prod, "/flows", { ...query, cursor })).body);
  });

  it("refuses a forged window: inverted, or not an ISO time", async () => {
    const cursor = await firstCursor(prod, "/flows", { ...window, limit: "2" });
    const { w, c } = decode(cursor);
    for (const forged of [
      [w[1], w[0]],
      ["Sun Apr 19 2026", w[1]],
      [w[0], "2026"],
      ["-000100-01-01T00:00:00.000Z", w[1]],
      [w[0], "2026-02-30T00:00:00.000Z"],
    ]) {
      const text = wrapCursor({ since: forged[0] as string, until: forged[1] as string }, c);
      await expectRefusal(await call(prod, "/flows", { cursor: text }), "cursor");
      await expectRefusal(await call(prod, "/alerts", { cursor: text }), "cursor");
    }
  });

  it("answers a tampered cursor with a 400 naming it, or with data of that same listing only", async () => {
    const listings: [QueryRuntime, string, Query][] = [
      [prod, "/flows", { ...window, limit: "3" }],
      [prod, "/flows", { ...window, namespace: "alpha", limit: "2" }],
      [prod, "/flows", { ...window, ip: "192.168.2.22", limit: "1" }],
      [prod, "/alerts", { ...window, limit: "2" }],
    ];
    const answers = await Promise.all(
      listings.map(
        async ([runtime, path, query]) =>
          new Set(ids((await allPages<{ id: string }>(runtime, path, query)).items)),
      ),
    );
    const cursors = await Promise.all(
      listings.map(([runtime, path, query]) => firstCursor(runtime, path, query)),
    );
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("char" as const),
        at: fc.nat(),
        ch: fc.constantFrom(..."AZaz09-_+/=.%"),
      }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant("inner" as const),
        field: fc.constantFrom("part", "after", "done", "q", "v", "x"),
        value: fc.oneof(
          fc.constantFrom(
            "2026-04-19T21",
            "2026-04-20T05",
            "2026-04-18T00",
            "2026-04-20",
            "",
            "FLOW#staging#2026-04-19T22",
          ),
          fc.constantFrom(`${iso(T0 + 30 * MINUTE)}#x`, `${iso(NOW + HOUR)}#x`, "0", "~"),
          fc.constantFrom<unknown>(null, 1, [true, true], [false, true], [true], {}, true),
        ),
      }),
      fc.record({
        kind: fc.constant("window" as const),
        shift: fc.tuple(fc.integer({ min: -5, max: 5 }), fc.integer({ min: -5, max: 5 })),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.nat(listings.length - 1), mutation, async (which, m) => {
        const [runtime, path, query] = listings[which] as [QueryRuntime, string, Query];
        const original = cursors[which] as string;
        let tampered: string;
        if (m.kind === "char") {
          const at = m.at % original.length;
          tampered = original.slice(0, at) + m.ch + original.slice(at + 1);
        } else if (m.kind === "cut") {
          tampered = original.slice(0, m.at % original.length);
        } else if (m.kind === "inner") {
          const outer = decode(original);
          const inner = JSON.parse(Buffer.from(outer.c, "base64url").toString("utf8")) as Record<
            string,
            unknown
          >;
          inner[m.field] = m.value;
          tampered = encode({ w: outer.w, c: encode(inner) });
        } else {
          const outer = decode(original);
          const w = outer.w.map((t, i) => iso(Date.parse(t) + (m.shift[i] as number) * HOUR));
          tampered = encode({ w, c: outer.c });
        }
        fc.pre(tampered !== original);
        const r = await call(runtime, path, { ...query, cursor: tampered });
        expect([200, 400], r.body).toContain(r.statusCode);
        if (r.statusCode === 400) {
          expect(bodyOf(r).parameter).toBe("cursor");
          expect(bodyOf(r).message).toContain("cursor");
        } else {
          for (const item of bodyOf<{ id: string }>(r).items) expect(answers[which]?.has(item.id)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});

// Routing --------------------------------------------------------------------------------------------------

describe("routes and methods", () => {
  it("answers only GET /flows and GET /alerts; 405 with Allow for other methods, 404 for other paths", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"),
        fc.constantFrom(
          "/flows",
          "/alerts",
          "/flows/",
          "/alerts//",
          "/Flows",
          "/flow",
          "/",
          "/flows/x",
          "/panic",
          "/prod/flows",
        ),
        fc.boolean(),
        async (method, path, v2) => {
          const event = v2
            ? httpEvent(path, { limit: "1" }, method)
            : restApiEvent(path, { limit: "1" }, method);
          const r = await handleQuery(event, prod);
          const known = ["/flows", "/alerts"].includes(path.replace(/\/+$/, ""));
          if (!known) expect(r.statusCode, `${method} ${path}`).toBe(404);
          else if (method !== "GET") {
            expect(r.statusCode).toBe(405);
            expect(r.headers).toMatchObject({ allow: "GET" });
          } else expect(r.statusCode, r.body).toBe(200);
        },
      ),
      { numRuns: 60 },
    );
  });
});
