// The DynamoDB flow store against an in-memory reference written here from docs/flow-store.md: random flows of
// three clusters (counted in 60 s, 90 s and hour buckets), spread over hours, midnight and a new year, written by
// overlapping, redelivered and racing contributions through the real store into dynalite, then read back with
// every question the store, the query API and the CLI offer, following every cursor. Requests are counted on the
// wire (fault proxy, no faults): writes cost what the write protocol says per distinct flow, pages cost at most
// two Queries, and nothing else reaches the table.
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { readFlows } from "../../../cli/commands/flows.ts";
import { DynamoFlowStore } from "../../../functions/adapters/dynamo/flow-store.ts";
import type { FlowQuery } from "../../../functions/core/ports.ts";
import type { Endpoint, FlowRecord, PolicyRef } from "../../../functions/core/types.ts";
import { handleQuery } from "../../../functions/query/handler.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type FaultProxy, type LoggedRequest, startFaultProxy } from "../../support/fault-proxy.ts";
import { idOf } from "./fixtures.ts";

// The query API's metrics would print an EMF line per page: off, before the handler's module makes them.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
});

// Endpoints -------------------------------------------------------------------------------------------------

function podAt(
  ip: string,
  namespace: string,
  name: string,
  workload: [string, string] | null,
  labels?: Record<string, string>,
): Endpoint {
  return {
    ip,
    kind: "pod",
    namespace,
    name,
    workload: workload === null ? null : { kind: workload[0], name: workload[1] },
    node: "ip-192-168-74-5.eu-west-1.compute.internal",
    resolved: true,
    ...(labels === undefined ? {} : { labels }),
  };
}

const nodeAt = (ip: string, name: string): Endpoint => ({
  ip,
  kind: "node",
  namespace: null,
  name,
  workload: null,
  node: name,
  resolved: true,
});

const outside = (ip: string): Endpoint => ({
  ip,
  kind: "external",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved: true,
});

const unknownAt = (ip: string, resolved: boolean): Endpoint => ({
  ip,
  kind: "unknown",
  namespace: null,
  name: null,
  workload: null,
  node: null,
  resolved,
});

const ENDPOINTS: Endpoint[] = [
  podAt("192.168.1.10", "shop", "web-7d9f8-abcde", ["Deployment", "web"], { team: "shop" }),
  podAt("192.168.1.11", "shop", "web-7d9f8-fghij", ["Deployment", "web"]),
  podAt("192.168.1.20", "shop", "api-0", ["StatefulSet", "api"]),
  // The same pod and workload names in another namespace.
  podAt("192.168.2.20", "data", "api-0", ["StatefulSet", "api"]),
  podAt("192.168.2.10", "data", "db-0", ["StatefulSet", "db"]),
  // The same workload name with another kind.
  podAt("192.168.2.11", "data", "db-migrate-5c6d7-xyz98", ["Deployment", "db"]),
  podAt("192.168.3.5", "kube-system", "calico-node-x7k2p", ["DaemonSet", "calico-node"]),
  podAt("192.168.3.6", "kube-system", "coredns-5d78c9869d-q2w4e", ["Deployment", "coredns"]),
  // Bare pods: as the directory names them, and as older records have them (no workload).
  podAt("192.168.4.5", "ops", "debug", ["Pod", "debug"]),
  podAt("192.168.4.6", "ops", "toolbox", null),
  // An IP reused by another pod (a flow is attributed to the holder of its time).
  podAt("192.168.1.10", "ops", "debug-2", ["Pod", "debug-2"]),
  podAt("fd00::a", "data", "db-1", ["StatefulSet", "db"]),
  podAt("fd00:0:0:1::5", "shop", "web-7d9f8-v6v6v", ["Deployment", "web"]),
  {
    ip: "10.100.0.10",
    kind: "service",
    namespace: "data",
    name: "db",
    workload: null,
    node: null,
    resolved: true,
  },
  nodeAt("192.168.0.4", "ip-192-168-0-4.eu-west-1.compute.internal"),
  nodeAt("fd00::4", "ip-fd00-4.eu-west-1.compute.internal"),
  unknownAt("192.168.99.9", true),
  unknownAt("192.168.99.10", false),
  unknownAt("fd00::99", false),
  outside("203.0.113.7"),
  outside("2001:db8::1"),
];

/** IPs to ask for, each spelled as the stored one and in other RFC 4291 spellings of the same address. */
const IP_SPELLINGS: [string, string][] = [
  ...[...new Set(ENDPOINTS.map((e) => e.ip))].map((ip): [string, string] => [ip, ip]),
  ["FD00::A", "fd00::a"],
  ["fd00:0:0:0:0:0:0:a", "fd00::a"],
  ["FD00:0000:0000:0001:0000:0000:0000:0005", "fd00:0:0:1::5"],
  ["2001:DB8:0::1", "2001:db8::1"],
  ["fd00:0::99", "fd00::99"],
  ["10.9.9.9", "10.9.9.9"],
];

/** Busy namespaces more often; `quiet` has no flows. */
const NAMESPACES = ["shop", "shop", "data", "data", "kube-system", "ops", "quiet"];
const WORKLOADS = [
  "web",
  "Deployment/web",
  "deployment/web",
  "api",
  "StatefulSet/api",
  "statefulset/api",
  "db",
  "StatefulSet/db",
  "deployment/db",
  "DaemonSet/calico-node",
  "daemonset/calico-node",
  "coredns",
  "debug",
  "Pod/debug",
  "pod/debug",
  "toolbox",
  "Deployment/api",
];
const PODS = [...new Set(ENDPOINTS.filter((e) => e.kind === "pod").map((e) => e.name as string)), "gone-0"];

const POLICIES: (PolicyRef | null)[] = [
  null,
  { tier: "default", kind: "NetworkPolicy", name: "deny-all", namespace: "data" },
  { tier: "security", kind: "GlobalNetworkPolicy", name: "deny-external", namespace: null },
];

// Clusters, buckets and time windows --------------------------------------------------------------------------

/**
 * Three clusters per run (fresh names, one table), counted in buckets of a minute, of 90 s (buckets that straddle
 * hours) and of an hour.
 */
const BUCKET_SECONDS = [60, 90, 3600] as const;
const CLUSTERS = fc.constantFrom(0, 0, 1, 2);

/** Where buckets fall: five hours across midnight, and an hour across a new year. */
const WINDOWS = [
  { start: Date.parse("2024-04-19T21:40:00.000Z"), hours: 5 },
  { start: Date.parse("2024-12-31T23:30:00.000Z"), hours: 1 },
];

const HOUR = 3_600_000;
/** Minutes of the windows next to hour, day and year boundaries, where flows are drawn often. */
const BOUNDARY_MINUTES = [19, 20, 21, 79, 80, 139, 140, 141, 199, 200, 259, 260];
/** The first window (five hours) more often than the second. */
const WINDOW = fc.constantFrom(0, 0, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

interface FlowShape {
  cluster: number;
  window: number;
  /** Minute of the window the flow's bucket holds (wraps to fit the window). */
  minute: number;
  src: number;
  dst: number;
  service: number;
  reporter: number;
  policy: number;
  direction: number;
}

const SERVICES: [string, number | null][] = [
  ["TCP", 5432],
  ["TCP", 443],
  ["UDP", 53],
  ["ICMP", null],
  ["ICMPv6", null],
];
const REPORTERS = [
  "ip-192-168-74-5.eu-west-1.compute.internal",
  "ip-192-168-12-9.eu-west-1.compute.internal",
];
const DIRECTIONS = ["ingress", "egress", "host", "forward"] as const;
const FLAGS = ["ACK", "FIN", "RST", "SYN"];

interface Line {
  flow: number;
  packets: number;
  bytesPerPacket: number;
  /** Offsets of the first and last packet inside the bucket, as shares of it. */
  a: number;
  b: number;
  flags: boolean[];
}

interface QuerySpec {
  cluster: number;
  window: number;
  /** Minutes (and ms) from the window's start, and the range's length; it reaches a day beyond when `far`. */
  from: [number, number];
  span: [number, number];
  far: boolean;
  /** The whole window (and 20 minutes either side) in pages of 1 to 3: many pages, many cursors. */
  sweep: boolean;
  namespace: string | undefined;
  workload: string | undefined;
  pod: string | undefined;
  ip: [string, string] | undefined;
  internal: boolean | undefined;
  /**
   * Ask about one end of a stored flow instead (the n-th stored flow, its source or destination), so that many
   * questions have answers: by its namespace, workload (name, Kind/name or kind/name), pod or IP.
   */
  anchor:
    | {
        flow: number;
        dst: boolean;
        by: "namespace" | "workload" | "pod" | "ip" | "ip+workload";
        form: number;
        /** The range holds the flow's bucket, or starts at its last packet, or ends at its first. */
        at: "around" | "lastSeen" | "firstSeen";
      }
    | undefined;
  limit: number;
  via: "store" | "api" | "cli";
}

const flowShape: fc.Arbitrary<FlowShape> = fc.record({
  cluster: CLUSTERS,
  window: WINDOW,
  minute: fc.oneof(
    { weight: 1, arbitrary: fc.nat({ max: 299 }) },
    { weight: 2, arbitrary: fc.constantFrom(...BOUNDARY_MINUTES) },
  ),
  src: fc.nat({ max: ENDPOINTS.length - 1 }),
  dst: fc.nat({ max: ENDPOINTS.length - 1 }),
  service: fc.nat({ max: SERVICES.length - 1 }),
  reporter: fc.nat({ max: REPORTERS.length - 1 }),
  policy: fc.nat({ max: POLICIES.length - 1 }),
  direction: fc.nat({ max: DIRECTIONS.length - 1 }),
});

/** A share of a bucket: anywhere, or on a grid of twelfths (so spans meet query bounds and each other). */
const share = fc.oneof(
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  fc.nat({ max: 11 }).map((n) => n / 12),
);

const line = (flows: number): fc.Arbitrary<Line> =>
  fc.record({
    flow: fc.nat({ max: flows - 1 }),
    packets: fc.integer({ min: 1, max: 40 }),
    bytesPerPacket: fc.integer({ min: 40, max: 1500 }),
    a: share,
    b: share,
    flags: fc.array(fc.boolean(), { minLength: FLAGS.length, maxLength: FLAGS.length }),
  });

const option = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof(fc.constant(undefined), arb);

const querySpec: fc.Arbitrary<QuerySpec> = fc
  .record({
    cluster: CLUSTERS,
    window: WINDOW,
    from: fc.tuple(
      fc.integer({ min: -20, max: 320 }),
      fc.oneof(
        fc.constant(0),
        fc.nat({ max: 59_999 }),
        fc.nat({ max: 11 }).map((n) => n * 5000),
      ),
    ),
    span: fc.tuple(
      fc.oneof(fc.nat({ max: 30 }), fc.nat({ max: 400 }), fc.constant(360)),
      fc.oneof(
        fc.integer({ min: -1, max: 59_999 }),
        fc.nat({ max: 11 }).map((n) => n * 5000),
      ),
    ),
    far: fc.nat({ max: 7 }).map((n) => n === 0),
    sweep: fc.nat({ max: 5 }).map((n) => n === 0),
    select: fc.oneof(
      { weight: 2, arbitrary: fc.constant({}) },
      { weight: 3, arbitrary: fc.record({ namespace: fc.constantFrom(...NAMESPACES) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          namespace: fc.constantFrom(...NAMESPACES),
          workload: fc.constantFrom(...WORKLOADS),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ namespace: fc.constantFrom(...NAMESPACES), pod: fc.constantFrom(...PODS) }),
      },
      { weight: 3, arbitrary: fc.record({ ip: fc.constantFrom(...IP_SPELLINGS) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          ip: fc.constantFrom(...IP_SPELLINGS),
          namespace: fc.constantFrom(...NAMESPACES),
          workload: option(fc.constantFrom(...WORKLOADS)),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          ip: option(fc.constantFrom(...IP_SPELLINGS)),
          namespace: fc.constantFrom(...NAMESPACES),
          workload: fc.constantFrom(...WORKLOADS),
          pod: fc.constantFrom(...PODS),
        }),
      },
    ),
    internal: fc.oneof(
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.boolean() },
    ),
    anchor: option(
      fc.record({
        flow: fc.nat(),
        dst: fc.boolean(),
        by: fc.constantFrom("namespace", "workload", "pod", "ip", "ip+workload"),
        form: fc.nat({ max: 2 }),
        at: fc.constantFrom("around", "lastSeen", "firstSeen"),
      }),
    ),
    limit: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 6 }) },
      { weight: 1, arbitrary: fc.constant(1000) },
    ),
    via: fc.constantFrom("store", "store", "store", "api", "cli"),
  })
  .map(({ select, ...rest }): QuerySpec => {
    const s = select as { namespace?: string; workload?: string; pod?: string; ip?: [string, string] };
    return { ...rest, namespace: s.namespace, workload: s.workload, pod: s.pod, ip: s.ip } as QuerySpec;
  });

// The reference ------------------------------------------------------------------------------------------------

interface Stored {
  record: FlowRecord;
  applied: Set<string>;
}

/** What one write call should cost on the wire and report, by the documented write protocol. */
interface WriteCost {
  updates: number;
  gets: number;
  applied: number;
  duplicates: number;
}

const skOf = (f: FlowRecord) => `${f.bucket}#${f.id}`;
const keyOf = (f: FlowRecord) => `${f.cluster}\n${f.bucket}\n${f.id}`;

class Reference {
  readonly items = new Map<string, Stored>();

  /** Applies one delivery: its records of one flow summed, each flow once per contribution. */
  write(records: readonly FlowRecord[], contribution: string): WriteCost {
    const merged = new Map<string, FlowRecord>();
    for (const r of records) {
      const m = merged.get(keyOf(r));
      if (m === undefined) {
        merged.set(keyOf(r), structuredClone(r));
        continue;
      }
      m.packets += r.packets;
      m.bytes += r.bytes;
      if (Date.parse(r.firstSeen) < Date.parse(m.firstSeen)) m.firstSeen = r.firstSeen;
      if (Date.parse(r.lastSeen) > Date.parse(m.lastSeen)) m.lastSeen = r.lastSeen;
      m.tcpFlags = [...new Set([...m.tcpFlags, ...r.tcpFlags])];
    }
    const cost: WriteCost = { updates: 0, gets: 0, applied: 0, duplicates: 0 };
    for (const [key, m] of merged) {
      const stored = this.items.get(key);
      cost.updates++;
      if (stored === undefined) {
        this.items.set(key, {
          record: { ...m, tcpFlags: [...new Set(m.tcpFlags)].sort() },
          applied: new Set([contribution]),
        });
        cost.applied++;
        continue;
      }
      const s = stored.record;
      const fresh = !stored.applied.has(contribution);
      const inOrder =
        Date.parse(s.firstSeen) <= Date.parse(m.firstSeen) &&
        Date.parse(s.lastSeen) <= Date.parse(m.lastSeen);
      // Refused first write (a redelivery, or a span reaching before the stored one): one consistent read,
      // then, for a new contribution, one write of the widened span.
      if (!(fresh && inOrder)) cost.gets++;
      if (!fresh) {
        cost.duplicates++;
        continue;
      }
      if (!inOrder) cost.updates++;
      cost.applied++;
      stored.applied.add(contribution);
      s.packets += m.packets;
      s.bytes += m.bytes;
      if (Date.parse(m.firstSeen) < Date.parse(s.firstSeen)) s.firstSeen = m.firstSeen;
      if (Date.parse(m.lastSeen) > Date.parse(s.lastSeen)) s.lastSeen = m.lastSeen;
      s.tcpFlags = [...new Set([...s.tcpFlags, ...m.tcpFlags])].sort();
    }
    return cost;
  }

  /** The flows a query means (docs/flow-store.md, "Access patterns"), in sort key order. */
  query(q: {
    cluster: string;
    since: number;
    until: number;
    namespace?: string;
    workload?: string;
    pod?: string;
    ip?: string;
    internal?: boolean;
  }): FlowRecord[] {
    const slash = q.workload?.indexOf("/") ?? -1;
    const kind = q.workload === undefined || slash === -1 ? undefined : q.workload.slice(0, slash);
    const name = q.workload === undefined ? undefined : q.workload.slice(slash + 1);
    const kindMatches = (k: string) => kind === undefined || k === kind || k === KUBERNETES_KINDS[kind];
    // Namespace, workload and pod hold together, on one end of the flow.
    const end = (e: Endpoint) =>
      (q.namespace === undefined || e.namespace === q.namespace) &&
      (name === undefined ||
        (e.workload !== null && e.workload.name === name && kindMatches(e.workload.kind))) &&
      (q.pod === undefined || (e.kind === "pod" && e.name === q.pod));
    const out: FlowRecord[] = [];
    for (const { record: f } of this.items.values()) {
      if (f.cluster !== q.cluster) continue;
      if (!(Date.parse(f.lastSeen) >= q.since && Date.parse(f.firstSeen) <= q.until)) continue;
      if (q.internal !== undefined && f.internal !== q.internal) continue;
      if (q.ip !== undefined && f.src.ip !== q.ip && f.dst.ip !== q.ip) continue;
      if (!end(f.src) && !end(f.dst)) continue;
      out.push(structuredClone(f));
    }
    return out.sort((x, y) => (skOf(x) < skOf(y) ? -1 : skOf(x) > skOf(y) ? 1 : 0));
  }
}

/** Lower-case kinds as Kubernetes spells them (a lower-case kind also matches its canonical spelling). */
const KUBERNETES_KINDS: Record<string, string> = {
  deployment: "Deployment",
  statefulset: "StatefulSet",
  daemonset: "DaemonSet",
  pod: "Pod",
};

// Building records from the generated shapes --------------------------------------------------------------------

function recordOf(shapes: readonly FlowShape[], names: readonly string[], l: Line): FlowRecord {
  const shape = shapes[l.flow] as FlowShape;
  const bucketMs = (BUCKET_SECONDS[shape.cluster] as number) * 1000;
  const window = WINDOWS[shape.window] as (typeof WINDOWS)[number];
  const minute = shape.minute % (window.hours * 60);
  // Buckets start at multiples of their length (the ingest's aggregation).
  const bucket = Math.floor((window.start + minute * 60_000) / bucketMs) * bucketMs;
  const src = ENDPOINTS[shape.src] as Endpoint;
  const dst = ENDPOINTS[shape.dst] as Endpoint;
  const [protocol, dstPort] = SERVICES[shape.service] as [string, number | null];
  const reporter = REPORTERS[shape.reporter] as string;
  const policy = POLICIES[shape.policy] as PolicyRef | null;
  const direction = DIRECTIONS[shape.direction] as FlowRecord["direction"];
  const first = bucket + Math.floor(Math.min(l.a, l.b) * bucketMs);
  const last = bucket + Math.floor(Math.max(l.a, l.b) * bucketMs);
  return {
    // Not the cluster: the same id in both clusters must still be two flows.
    id: idOf(JSON.stringify([bucket, src, dst, protocol, dstPort, reporter, policy, direction])),
    cluster: names[shape.cluster] as string,
    bucket: iso(bucket),
    src: structuredClone(src),
    dst: structuredClone(dst),
    protocol,
    dstPort,
    direction,
    reporter,
    internal: src.kind !== "external" && dst.kind !== "external",
    packets: l.packets,
    bytes: l.packets * l.bytesPerPacket,
    firstSeen: iso(first),
    lastSeen: iso(last),
    policy: policy === null ? null : { ...policy },
    tcpFlags: protocol === "TCP" ? FLAGS.filter((_, i) => l.flags[i]) : [],
  };
}

// The store on the wire --------------------------------------------------------------------------------------

let ts: TestStore;
let proxy: FaultProxy;
/** One store per bucket length, both on the one table, both through the proxy. */
let stores: DynamoFlowStore[];
let run = 0;
/** The hours (`<cluster>#<hour>`) whose marker the writing store has put: it puts each once (markers.ts). */
const markedHours = new Set<string>();
/** The hours of `records` not marked yet, now marked. */
function newHours(records: readonly FlowRecord[]): number {
  const hours = new Set(records.map((r) => `${r.cluster}#${r.bucket.slice(0, 13)}`));
  const fresh = [...hours].filter((h) => !markedHours.has(h));
  for (const h of fresh) markedHours.add(h);
  return fresh.length;
}
const endpointBefore = process.env.AWS_ENDPOINT_URL_DYNAMODB;

beforeAll(async () => {
  ts = await startTestStore();
  proxy = await startFaultProxy(ts.endpoint);
  const client = ts.clientFor(proxy.endpoint, { maxAttempts: 1 });
  stores = BUCKET_SECONDS.map(
    (bucketSeconds) => new DynamoFlowStore({ client, tableName: ts.tableName, bucketSeconds }),
  );
  // The CLI's --table client follows the SDK's standard configuration.
  process.env.AWS_ENDPOINT_URL_DYNAMODB = proxy.endpoint;
});

afterAll(async () => {
  if (endpointBefore === undefined) delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  else process.env.AWS_ENDPOINT_URL_DYNAMODB = endpointBefore;
  await proxy?.close();
  await ts?.close();
});

/** The requests a piece of work sent, by operation. */
async function onTheWire<T>(work: () => Promise<T>): Promise<{ result: T; ops: Record<string, number> }> {
  const before = proxy.log.length;
  const result = await work();
  const ops: Record<string, number> = {};
  for (const r of proxy.log.slice(before) as LoggedRequest[]) ops[r.operation] = (ops[r.operation] ?? 0) + 1;
  return { result, ops };
}

/** Far more pages than any query here needs (a sweep in pages of one, or 60 empty hours two at a time). */
const MAX_PAGES = 400;

/** Every page of a query, each checked on the wire: Query requests only, at most two, at most `limit` items. */
async function viaStore(store: DynamoFlowStore, query: FlowQuery): Promise<FlowRecord[]> {
  const items: FlowRecord[] = [];
  let cursor: string | undefined;
  for (let pages = 1; ; pages++) {
    const { result: page, ops } = await onTheWire(() =>
      store.queryFlows({ ...query, ...(cursor === undefined ? {} : { cursor }) }),
    );
    expect(Object.keys(ops).filter((op) => op !== "Query")).toEqual([]);
    expect(ops.Query ?? 0).toBeLessThanOrEqual(2);
    expect(page.items.length).toBeLessThanOrEqual(query.limit ?? 100);
    items.push(...page.items);
    cursor = page.cursor;
    if (cursor === undefined) return items;
    expect(pages, "pagination does not end").toBeLessThan(MAX_PAGES);
  }
}

function apiEvent(parameters: Record<string, string>): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: "GET /flows",
    rawPath: "/flows",
    rawQueryString: new URLSearchParams(parameters).toString(),
    headers: {},
    queryStringParameters: parameters,
    isBase64Encoded: false,
    requestContext: { http: { method: "GET", path: "/flows" }, requestId: "differential" },
  } as unknown as APIGatewayProxyEventV2;
}

/** The same through the query API (GET /flows, payload 2.0), following its cursors. */
async function viaApi(store: DynamoFlowStore, query: FlowQuery): Promise<FlowRecord[]> {
  const runtime = { store, cluster: query.cluster, now: () => WINDOWS[0]?.start as number };
  const parameters: Record<string, string> = { since: query.since, until: query.until };
  for (const name of ["namespace", "workload", "pod", "ip", "internal", "limit"] as const) {
    if (query[name] !== undefined) parameters[name] = String(query[name]);
  }
  const items: FlowRecord[] = [];
  let cursor: string | null = null;
  for (let pages = 1; ; pages++) {
    const { result: answer, ops } = await onTheWire(() =>
      handleQuery(apiEvent(cursor === null ? parameters : { ...parameters, cursor }), runtime),
    );
    expect(answer.statusCode, answer.body).toBe(200);
    expect(Object.keys(ops).filter((op) => op !== "Query")).toEqual([]);
    expect(ops.Query ?? 0).toBeLessThanOrEqual(2);
    const body = JSON.parse(answer.body) as { items: FlowRecord[]; cursor: string | null };
    expect(body.items.length).toBeLessThanOrEqual(query.limit ?? 100);
    items.push(...body.items);
    cursor = body.cursor;
    if (cursor === null) return items;
    expect(pages, "pagination does not end").toBeLessThan(MAX_PAGES);
  }
}

/** A query about one end of a stored flow (QuerySpec.anchor), over a range that holds a packet of that flow. */
function anchored(
  spec: QuerySpec,
  stored: readonly FlowRecord[],
  names: readonly string[],
): QuerySpec & { anchorAt?: { since: number; until: number; at: "around" | "lastSeen" | "firstSeen" } } {
  const f =
    spec.anchor === undefined || stored.length === 0 ? undefined : stored[spec.anchor.flow % stored.length];
  if (spec.anchor === undefined || f === undefined) return spec;
  const e = spec.anchor.dst ? f.dst : f.src;
  const { by, form } = spec.anchor;
  const criteria: Pick<QuerySpec, "namespace" | "workload" | "pod" | "ip"> = {
    namespace: undefined,
    workload: undefined,
    pod: undefined,
    ip: undefined,
  };
  const workload =
    e.workload === null
      ? undefined
      : [
          e.workload.name,
          `${e.workload.kind}/${e.workload.name}`,
          `${e.workload.kind.toLowerCase()}/${e.workload.name}`,
        ][form];
  if (e.namespace !== null && by === "namespace") criteria.namespace = e.namespace;
  else if (e.namespace !== null && by === "workload" && workload !== undefined) {
    criteria.namespace = e.namespace;
    criteria.workload = workload;
  } else if (e.namespace !== null && by === "pod" && e.kind === "pod") {
    criteria.namespace = e.namespace;
    criteria.pod = e.name ?? undefined;
  } else {
    criteria.ip = [e.ip, e.ip];
    if (by === "ip+workload" && e.namespace !== null) {
      criteria.namespace = e.namespace;
      criteria.workload = workload;
    }
  }
  return {
    ...spec,
    ...criteria,
    cluster: names.indexOf(f.cluster),
    anchorAt: {
      at: spec.anchor.at,
      since: Date.parse(spec.anchor.at === "lastSeen" ? f.lastSeen : f.bucket),
      until: Date.parse(f.firstSeen),
    },
  };
}

// The property -----------------------------------------------------------------------------------------------

const dataset = fc.array(flowShape, { minLength: 60, maxLength: 100 }).chain((shapes) =>
  fc.record({
    shapes: fc.constant(shapes),
    contributions: fc.array(fc.array(line(shapes.length), { minLength: 1, maxLength: 50, size: "max" }), {
      minLength: 2,
      maxLength: 6,
    }),
    /**
     * Redeliveries: (contribution, where in the sequence, how): the payload again, its lines in reverse, or only
     * its first half (a payload that also touches flows of another counts for them once).
     */
    redeliveries: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.constantFrom("same", "reversed", "half")), {
      maxLength: 5,
    }),
    /** All deliveries at once (Lambda invocations racing on the same items) rather than one after another. */
    concurrent: fc.nat({ max: 3 }).map((n) => n === 0),
    queries: fc.array(querySpec, { minLength: 10, maxLength: 16 }),
  }),
);

type Redelivery = "same" | "reversed" | "half";

describe("the flow store against a reference", () => {
  it("stores, counts and answers every question as documented", async () => {
    await fc.assert(
      fc.asyncProperty(dataset, async ({ shapes, contributions, redeliveries, concurrent, queries }) => {
        run++;
        const names = BUCKET_SECONDS.map((seconds) => `diff-${run}-${seconds}s`);
        const reference = new Reference();
        const sequence: { index: number; how: Redelivery | "first" }[] = contributions.map((_, index) => ({
          index,
          how: "first",
        }));
        for (const [which, where, how] of redeliveries) {
          // At once, which of a payload and its half comes first would decide the counts: whole payloads only.
          const whole = concurrent && how === "half" ? "same" : how;
          sequence.splice(where % (sequence.length + 1), 0, {
            index: which % contributions.length,
            how: whole,
          });
        }
        const deliveries = sequence.map(({ index, how }) => {
          const lines = contributions[index] as Line[];
          const records = lines.map((l) => recordOf(shapes, names, l));
          if (how === "reversed") records.reverse();
          if (how === "half") records.splice(Math.ceil(records.length / 2));
          const contribution = `${names[0]}/stream/${index}`;
          return { records, contribution, expected: reference.write(records, contribution) };
        });
        const store = stores[0] as DynamoFlowStore;
        if (concurrent) {
          // Whoever comes first applies a contribution to a flow; the totals do not depend on the order.
          const { result, ops } = await onTheWire(() =>
            Promise.all(deliveries.map((d) => store.writeFlows(d.records, d.contribution))),
          );
          const sum = (pick: (r: { applied: number; duplicates: number }) => number) =>
            [result, deliveries.map((d) => d.expected)].map((list) => list.reduce((n, r) => n + pick(r), 0));
          const [applied, appliedWanted] = sum((r) => r.applied);
          const [duplicates, duplicatesWanted] = sum((r) => r.duplicates);
          expect({ applied, duplicates }).toEqual({ applied: appliedWanted, duplicates: duplicatesWanted });
          expect(Object.keys(ops).filter((op) => !["UpdateItem", "GetItem", "PutItem"].includes(op))).toEqual(
            [],
          );
          expect((ops.UpdateItem ?? 0) + (ops.PutItem ?? 0)).toBe(
            result.reduce((n, r) => n + r.writeRequests, 0),
          );
          // Every new hour marked, by one delivery or by several racing: at most once per delivery.
          const hours = newHours(deliveries.flatMap((d) => d.records));
          expect(ops.PutItem ?? 0).toBeGreaterThanOrEqual(hours);
          expect(ops.PutItem ?? 0).toBeLessThanOrEqual(hours * deliveries.length);
        } else {
          for (const { records, contribution, expected } of deliveries) {
            const { result, ops } = await onTheWire(() => store.writeFlows(records, contribution));
            // One UpdateItem per distinct flow of the payload, however many lines it has; a refused one costs a
            // consistent read, and a new contribution reaching before the stored span one more UpdateItem. The
            // first payload of an hour puts its marker.
            const hours = newHours(records);
            expect(result).toEqual({
              applied: expected.applied,
              duplicates: expected.duplicates,
              writeRequests: expected.updates + hours,
            });
            expect(ops).toEqual({
              UpdateItem: expected.updates,
              ...(hours > 0 ? { PutItem: hours } : {}),
              ...(expected.gets > 0 ? { GetItem: expected.gets } : {}),
            });
          }
        }

        const stored = [...reference.items.values()].map((i) => i.record);
        for (const spec of queries) {
          const q = anchored(spec, stored, names);
          const window = WINDOWS[q.window] as (typeof WINDOWS)[number];
          const length = Math.max(0, q.span[0] * 60_000 + q.span[1]);
          // From 20 minutes before the window to 20 after it.
          let since =
            window.start + (((q.from[0] + 20) % (window.hours * 60 + 40)) - 20) * 60_000 + q.from[1];
          let until = since + length;
          if (q.anchorAt?.at === "around") {
            since = q.anchorAt.since - (q.from[0] % 90) * 60_000 - q.from[1];
            until = Math.max(since + length, q.anchorAt.until);
          } else if (q.anchorAt?.at === "lastSeen") {
            since = q.anchorAt.since;
            until = since + length;
          } else if (q.anchorAt?.at === "firstSeen") {
            until = q.anchorAt.until;
            since = until - length;
          }
          if (q.sweep)
            [since, until] = [window.start - 20 * 60_000, window.start + window.hours * HOUR + 20 * 60_000];
          if (q.far) [since, until] = [since - 26 * HOUR, until + 26 * HOUR];
          const query: FlowQuery = {
            cluster: names[q.cluster] as string,
            since: iso(since),
            until: iso(until),
            ...(q.namespace === undefined ? {} : { namespace: q.namespace }),
            ...(q.workload === undefined ? {} : { workload: q.workload }),
            ...(q.pod === undefined ? {} : { pod: q.pod }),
            ...(q.ip === undefined ? {} : { ip: q.ip[0] }),
            ...(q.internal === undefined ? {} : { internal: q.internal }),
            limit: q.sweep ? 1 + (q.limit % 3) : q.limit,
          };
          const wanted = reference.query({ ...query, since, until, ip: q.ip?.[1] });
          const reader = stores[q.cluster] as DynamoFlowStore;
          let got: FlowRecord[];
          if (q.via === "store") {
            got = await viaStore(reader, query);
          } else if (q.via === "api") {
            got = await viaApi(reader, query);
          } else {
            // `calico-flows flows --table`: pages of up to 500, cut to --limit records.
            const { result, ops } = await onTheWire(() =>
              readFlows({
                cluster: query.cluster,
                table: ts.tableName,
                since: query.since,
                until: query.until,
                limit: q.limit,
                bucketSeconds: BUCKET_SECONDS[q.cluster],
                namespace: query.namespace,
                workload: query.workload,
                pod: query.pod,
                ip: query.ip,
                internal: query.internal,
              }),
            );
            expect(Object.keys(ops).filter((op) => op !== "Query")).toEqual([]);
            got = result;
            wanted.splice(q.limit);
          }
          expect(new Set(got.map(skOf)).size, "a flow returned twice").toBe(got.length);
          expect(got, JSON.stringify(query)).toEqual(wanted);
        }
      }),
      // Each run writes and reads a few hundred requests: shrinking would outlast the test's time, and the failure
      // names the query and the difference anyway.
      { numRuns: 15, endOnFailure: true },
    );
  });
});
