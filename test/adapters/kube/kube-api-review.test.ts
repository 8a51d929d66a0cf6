// The live directory's use of the Kubernetes API, held to the Kubernetes documentation: lists complete across
// pages (a watch cache that ignores `limit`, expired and looping continue tokens), reads never older than an
// answer already seen (resourceVersionMatch=NotOlderThan; a lagging API server instance answers "0" reads
// from an older state), 429/5xx with Retry-After within the request deadline, the field selectors and list
// options a real API server accepts, and attribution of dual-stack pods, nodes with several or IPv6
// InternalIPs, hostNetwork pods, pods in terminal phases whose IP is reused and pods being deleted.
import { isIP } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LiveDirectory, LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import type { HolderHistory } from "../../../functions/core/ports.ts";
import type { Holder, Lookup } from "../../../functions/core/types.ts";
import {
  type Interceptor,
  type KubeApiServer,
  type KubeObject,
  kubeObjects,
  kubeTime,
  type RecordedRequest,
  startKubeApiServer,
} from "../../support/kube-api-server.ts";
import { liveDirectoryOn, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-06-02T10:00:00Z");
const SEC = 1_000;
const MIN = 60 * SEC;

/** The history port, in memory: rows per (ip, holder), a written end never taken back (as DynamoDB's). */
class Remembered implements HolderHistory {
  readonly rows = new Map<string, { ip: string; holder: Holder }>();
  async remember(_cluster: string, entries: readonly { ip: string; holder: Holder }[]): Promise<void> {
    for (const { ip, holder } of entries) {
      const key = `${ip}|${holder.uid ?? holder.name}|${holder.validFrom}`;
      const before = this.rows.get(key)?.holder;
      const validTo = holder.validTo ?? before?.validTo ?? null;
      this.rows.set(key, { ip, holder: { ...holder, validTo } });
    }
  }
  async holdersOf(_cluster: string, ip: string, at: number): Promise<Holder[]> {
    return [...this.rows.values()]
      .filter((r) => r.ip === ip && r.holder.validFrom <= at)
      .map((r) => r.holder);
  }
  ends(ip: string): (number | null)[] {
    return [...this.rows.values()].filter((r) => r.ip === ip).map((r) => r.holder.validTo);
  }
}

// --- what a real API server accepts (Kubernetes docs: "Field Selectors", "API Concepts") ---------------------

/**
 * Field selectors per collection. Pods: the fields of the API server's pod strategy (`status.podIP` is
 * status.podIPs[0]; the docs' table also names `status.podIPs`, which the server has no value for). Nodes and
 * namespaces: `metadata.name` plus their one field.
 */
const FIELDS: Record<string, ReadonlySet<string>> = {
  "/api/v1/pods": new Set([
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
  ]),
  "/api/v1/nodes": new Set(["metadata.name", "spec.unschedulable"]),
  "/api/v1/namespaces": new Set(["metadata.name", "status.phase"]),
};
const LIST_PARAMS = new Set([
  "fieldSelector",
  "labelSelector",
  "limit",
  "continue",
  "resourceVersion",
  "resourceVersionMatch",
  "timeoutSeconds",
]);

/**
 * What a catch-up watch may carry ("Efficient detection of changes"): a version to watch from, bookmarks, a timeout;
 * a resourceVersionMatch is forbidden for watch, limit and continue are for lists.
 */
const WATCH_PARAMS = new Set(["watch", "resourceVersion", "allowWatchBookmarks", "timeoutSeconds"]);

/** RFC 5952 text of an IPv6 address, as the WHATWG URL parser writes a host (kubelet writes Go's, the same). */
const canonicalIpv6 = (ip: string) => new URL(`http://[${ip}]/`).hostname.slice(1, -1);

/** Why a real API server would refuse this request of the directory's, or null. */
function refusal(r: RecordedRequest): string | null {
  const fields = FIELDS[r.path];
  if (r.method !== "GET" || fields === undefined)
    return `${r.method} ${r.path} is not a list the directory reads`;
  const q = r.query;
  if (q.watch !== undefined) {
    if (r.path !== "/api/v1/pods") return `a watch of ${r.path}`;
    if (q.watch !== "1" && q.watch !== "true") return `watch=${q.watch}`;
    for (const key of Object.keys(q)) if (!WATCH_PARAMS.has(key)) return `unexpected watch parameter ${key}`;
    // From "0" or no version, a watch first sends every object: the full list it is meant to spare.
    if (!/^\d+$/.test(q.resourceVersion ?? "") || q.resourceVersion === "0")
      return `a watch from version "${q.resourceVersion ?? ""}"`;
    if (q.allowWatchBookmarks !== undefined && q.allowWatchBookmarks !== "true")
      return `allowWatchBookmarks=${q.allowWatchBookmarks}`;
    // Without one, the server keeps the watch open 30 to 60 minutes.
    if (!/^[1-9]\d*$/.test(q.timeoutSeconds ?? "")) return "a watch without timeoutSeconds";
    return null;
  }
  for (const key of Object.keys(q)) if (!LIST_PARAMS.has(key)) return `unexpected parameter ${key}`;
  if (q.labelSelector !== undefined) return `label selector ${q.labelSelector}`;
  for (const term of (q.fieldSelector ?? "").split(",").filter((t) => t !== "")) {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(term);
    if (m === null) return `field selector term ${term}`;
    const [, field, , value] = m as unknown as [string, string, string, string];
    if (!fields.has(field)) return `"${field}" is not a known field selector for ${r.path}`;
    if (field === "status.podIP") {
      if (isIP(value) === 0) return `${value} is no address`;
      // The server compares strings: the value must be spelled as kubelet writes it.
      if (isIP(value) === 6 && value !== canonicalIpv6(value))
        return `${value} is not spelled as kubelet writes it`;
    }
  }
  if (q.limit !== undefined && !/^\d+$/.test(q.limit)) return `limit ${q.limit}`;
  const version = q.resourceVersion ?? "";
  const match = q.resourceVersionMatch ?? "";
  const cont = q.continue ?? "";
  if (match !== "" && version === "") return "resourceVersionMatch without resourceVersion";
  if (match !== "" && cont !== "") return "resourceVersionMatch with continue";
  if (match !== "" && match !== "NotOlderThan" && match !== "Exact") return `resourceVersionMatch ${match}`;
  if (cont !== "" && version !== "" && version !== "0") return "resourceVersion with continue";
  if (version !== "" && !/^\d+$/.test(version)) return `resourceVersion ${version}`;
  // A version other than "0" with a limit and no match is an exact read (legacy semantics): 410 once compacted.
  if (version !== "" && version !== "0" && match === "" && q.limit !== undefined)
    return "exact read by accident";
  return null;
}

// --- set-up -----------------------------------------------------------------------------------------------

let server: KubeApiServer;
let clock: { t: number };
let warnings: string[];
/** Requests of the running test that a counts reset took out of server.requests(). */
let earlier: RecordedRequest[] = [];

/** Resets the server's request log, keeping the requests for the afterEach check. */
function resetRequests(): void {
  earlier.push(...server.requests());
  server.counts.reset();
}

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => server.close());
beforeEach(() => {
  server.setInterceptor(null);
  server.store.clear();
  server.store.put("namespaces", kubeObjects.namespace({ name: "shop", labels: { team: "checkout" } }));
  server.counts.reset();
  earlier = [];
  clock = { t: T + 60 * MIN };
  warnings = [];
});
afterEach(async () => {
  server.setInterceptor(null);
  await server.setFault(null);
  // Every request of every test is one a real API server would take.
  const refused = [...earlier, ...server.requests()]
    .map((r) => ({ r: `${r.path}?${new URLSearchParams(r.query)}`, why: refusal(r) }))
    .filter((x) => x.why !== null);
  expect(refused).toEqual([]);
});

function directory(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, {
    cluster: "review",
    timeoutMs: 1_000,
    now: () => clock.t,
    logger: { warn: (message) => warnings.push(message) },
    ...options,
  });
}

function addPod(name: string, extra: Partial<Parameters<typeof kubeObjects.pod>[0]>): KubeObject {
  return server.store.put(
    "pods",
    kubeObjects.pod({
      name,
      namespace: "shop",
      created: T,
      node: "node-a",
      owner: { kind: "StatefulSet", name: name.replace(/-\d+$/, "") },
      uid: `uid-${name}`,
      ...extra,
    }),
  );
}

const at = (ip: string, t: number = clock.t): Lookup => ({ ip, at: t });
const podRequests = () => server.requests().filter((r) => r.path === "/api/v1/pods");
const resourceVersionOf = (object: KubeObject) =>
  String((object.metadata as Record<string, unknown>).resourceVersion);

/** A Status as the API server writes it. */
function status(code: number, reason: string, message: string, details?: KubeObject): KubeObject {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
    details,
  };
}

/**
 * An API server instance whose watch cache lags: reads at any version ("0") of `paths` get the state of
 * `version`, without `hidden`; a NotOlderThan read waits for the cache to catch up, as the real one does, and
 * gets the current state.
 */
function laggingCache(paths: readonly string[], hidden: ReadonlySet<string>, version: string): Interceptor {
  return (request) => {
    if (request.method !== "GET" || !paths.includes(request.path)) return undefined;
    if (request.query.get("resourceVersion") !== "0") return undefined;
    const answer = request.next();
    if (answer.code !== 200 || typeof answer.body === "string") return answer;
    const items = (answer.body.items as KubeObject[]).filter(
      (o) => !hidden.has(String((o.metadata as Record<string, unknown>).name)),
    );
    return {
      code: 200,
      body: {
        ...answer.body,
        metadata: { ...(answer.body.metadata as KubeObject), resourceVersion: version },
        items,
      },
    };
  };
}

// --- lists --------------------------------------------------------------------------------------------------

describe("lists: complete across pages, never half a list taken for a whole one", () => {
  it("reads every page of pods, nodes and namespaces, then reads no older than its last answer", async () => {
    for (let i = 1; i <= 23; i++) addPod(`web-${i}`, { ip: `192.168.30.${i}` });
    for (let i = 1; i <= 12; i++) {
      server.store.put(
        "nodes",
        kubeObjects.node({ name: `node-${i}`, ip: `192.168.0.${i}`, created: T - MIN }),
      );
    }
    for (let i = 1; i <= 6; i++) server.store.put("namespaces", kubeObjects.namespace({ name: `ns-${i}` }));
    const last = addPod("late-0", { namespace: "ns-6", ip: "192.168.31.1" });
    const dir = directory({ pageSize: 5, namespaceLabelKeys: ["team"], nodeTtlMs: 60 * SEC });
    const lookups = [
      ...Array.from({ length: 23 }, (_, i) => at(`192.168.30.${i + 1}`)),
      ...Array.from({ length: 12 }, (_, i) => at(`192.168.0.${i + 1}`)),
      at("192.168.31.1"),
    ];
    const answers = await dir.resolve(lookups);
    expect(names(answers)).toEqual([
      ...Array.from({ length: 23 }, (_, i) => `pod:web-${i + 1}`),
      ...Array.from({ length: 12 }, (_, i) => `node:node-${i + 1}`),
      "pod:late-0",
    ]);
    expect(answers[0]).toMatchObject({ holder: { labels: { team: "checkout" } } });
    const pages = (path: string) => server.requests().filter((r) => r.path === path);
    expect(pages("/api/v1/pods")).toHaveLength(5);
    expect(pages("/api/v1/nodes")).toHaveLength(3);
    expect(pages("/api/v1/namespaces")).toHaveLength(2);
    expect(pages("/api/v1/pods")[0]?.query).toMatchObject({ limit: "5", resourceVersion: "0" });

    // A minute later: the next full list and node list ask for data not older than the last answer, whole,
    // from the watch cache (a paginated read at a version would go to etcd before Kubernetes 1.34).
    resetRequests();
    clock.t += 61 * SEC;
    expect(names(await dir.resolve(lookups.map((l) => at(l.ip))))).toEqual(names(answers));
    for (const path of ["/api/v1/pods", "/api/v1/nodes"]) {
      expect(pages(path)).toHaveLength(1);
      expect(pages(path)[0]?.query.resourceVersionMatch).toBe("NotOlderThan");
      expect(pages(path)[0]?.query.limit).toBeUndefined();
      // Nothing changed since: the version of the first answers.
      expect(pages(path)[0]?.query.resourceVersion).toBe(resourceVersionOf(last));
    }
  });

  it("takes a list the watch cache answers whole, however large (it ignores limit before Kubernetes 1.34)", async () => {
    // 130,000 pods in one page, as a cache answers resourceVersion=0&limit=500 for a large cluster.
    const count = 130_000;
    const ipOf = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const created = kubeTime(T);
    const items = Array.from({ length: count }, (_, i) => ({
      metadata: { name: `p-${i}`, namespace: "shop", uid: `u-${i}`, creationTimestamp: created },
      spec: { nodeName: "node-a", containers: [] },
      status: { phase: "Running", podIP: ipOf(i), podIPs: [{ ip: ipOf(i) }] },
    }));
    server.setInterceptor((request) =>
      request.path === "/api/v1/pods" && request.query.get("fieldSelector") === null
        ? {
            code: 200,
            body: { kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "7" }, items },
          }
        : undefined,
    );
    const wanted = [5, 70_000, 129_999, 1_000, 2_000, 3_000];
    const answers = await directory({ timeoutMs: 20_000 }).resolve(wanted.map((i) => at(ipOf(i))));
    expect(names(answers)).toEqual(wanted.map((i) => `pod:p-${i}`));
    expect(podRequests()).toHaveLength(1);
  });

  it("restarts a list whose continue token expired and answers from the restarted list alone", async () => {
    for (let i = 1; i <= 30; i++) addPod(`web-${i}`, { ip: `192.168.32.${i}` });
    const dir = directory({ pageSize: 10 });
    let pageTwo = 0;
    server.setInterceptor((request) => {
      if (request.path !== "/api/v1/pods" || request.query.get("continue") === null) return undefined;
      if (++pageTwo === 1) {
        // Between the first and the second page the token expires and the cluster changes: web-3 goes,
        // web-31 comes. Only the restarted list, consistent, may answer.
        server.expireContinueTokens();
        server.store.delete("pods", "web-3", "shop");
        addPod("web-31", { ip: "192.168.32.31", created: clock.t - 5 * SEC });
      }
      return undefined;
    });
    const lookups = Array.from({ length: 31 }, (_, i) => at(`192.168.32.${i + 1}`, clock.t - 30 * SEC));
    const answers = names(await dir.resolve(lookups));
    // From the restarted list alone: web-3, on the first attempt's first page but gone since, is not known
    // (nothing of the discarded attempt is kept); web-31 did not exist 30 s ago.
    expect(answers).toEqual(
      Array.from({ length: 31 }, (_, i) => (i === 2 || i === 30 ? "absent" : `pod:web-${i + 1}`)),
    );
    expect(podRequests().map((r) => r.status)).toEqual([200, 410, 200, 200, 200]);
    clock.t += 20 * SEC;
    expect(names(await dir.resolve([at("192.168.32.3"), at("192.168.32.31")]))).toEqual([
      "absent",
      "pod:web-31",
    ]);
  });

  it("fails, rather than loops, when the server answers a continue token with itself", async () => {
    for (let i = 1; i <= 3; i++) addPod(`web-${i}`, { ip: `192.168.33.${i}` });
    const dir = directory({ pageSize: 1, fieldSelectorMax: 0 });
    let pages = 0;
    server.setInterceptor((request) => {
      if (request.path !== "/api/v1/pods") return undefined;
      // A broken server or proxy: every page says "more after the same token". Stop a looping client at 25.
      if (++pages > 25) return { code: 500, body: status(500, "InternalError", "stop looping") };
      const page = request.next(new URLSearchParams({ limit: "1" }));
      const body = page.body as KubeObject;
      return {
        code: 200,
        body: { ...body, metadata: { ...(body.metadata as KubeObject), continue: "c2FtZQ==" } },
      };
    });
    const answers = await dir.resolve([at("192.168.33.1"), at("192.168.33.2")]);
    expect(answers.every((a) => a.status === "unavailable" && /continue token/.test(a.reason))).toBe(true);
    expect(pages).toBe(2);
  });
});

// --- resource versions ------------------------------------------------------------------------------------

describe("reads: never older than an answer already seen (resourceVersionMatch=NotOlderThan)", () => {
  it("does not end a live pod when a lagging API server instance answers a later query from an older state", async () => {
    const history = new Remembered();
    const before = addPod("web-0", { ip: "192.168.40.1" });
    addPod("web-1", { ip: "192.168.40.2", created: clock.t - 2 * MIN });
    const dir = directory({ history });
    expect(names(await dir.resolve([at("192.168.40.1"), at("192.168.40.2")]))).toEqual([
      "pod:web-0",
      "pod:web-1",
    ]);
    // Another API server instance behind the load balancer, whose watch cache is still where it was before
    // web-1 was created (the docs: "a much older resource version ... in high availability configurations").
    server.setInterceptor(laggingCache(["/api/v1/pods"], new Set(["web-1"]), resourceVersionOf(before)));
    clock.t += 40 * SEC;
    const asked = clock.t;
    expect(names(await dir.resolve([at("192.168.40.2")]))).toEqual(["pod:web-1"]);
    const query = podRequests().at(-1)?.query;
    clock.t += 20 * SEC;
    // A line 15 s after that read is web-1's: it is alive, and the history never got an end for it.
    expect(names(await dir.resolve([at("192.168.40.2", asked + 15 * SEC)]))).toEqual(["pod:web-1"]);
    expect(history.ends("192.168.40.2")).toEqual([null]);
    // It asked for data not older than its first answer, which the lagging instance cannot serve until it has
    // caught up.
    expect(query).toMatchObject({ resourceVersionMatch: "NotOlderThan" });
  });

  it("does not end a node that a lagging instance's node list leaves out", async () => {
    const history = new Remembered();
    const before = server.store.put(
      "nodes",
      kubeObjects.node({ name: "node-a", ip: "192.168.0.1", created: T }),
    );
    server.store.put(
      "nodes",
      kubeObjects.node({ name: "node-b", ip: "192.168.0.2", created: clock.t - MIN }),
    );
    const dir = directory({ history, nodeTtlMs: 30 * SEC });
    expect(names(await dir.resolve([at("192.168.0.1"), at("192.168.0.2")]))).toEqual([
      "node:node-a",
      "node:node-b",
    ]);
    server.setInterceptor(laggingCache(["/api/v1/nodes"], new Set(["node-b"]), resourceVersionOf(before)));
    clock.t += 40 * SEC;
    const asked = clock.t;
    expect(names(await dir.resolve([at("192.168.0.2")]))).toEqual(["node:node-b"]);
    clock.t += 20 * SEC;
    expect(names(await dir.resolve([at("192.168.0.2", asked + 15 * SEC)]))).toEqual(["node:node-b"]);
    expect(history.ends("192.168.0.2")).toEqual([null]);
  });
});

// --- list, then watch --------------------------------------------------------------------------------------

describe("refreshes: a short watch from the last list's version, as the docs' list-then-watch", () => {
  it("catches up from the list's resourceVersion with bookmarks and a timeout, and sees a pod deleted since", async () => {
    for (let i = 1; i <= 8; i++) addPod(`web-${i}`, { ip: `192.168.41.${i}` });
    const wanted = Array.from({ length: 8 }, (_, i) => `192.168.41.${i + 1}`);
    const dir = directory({ timeoutMs: 3_000 });
    await dir.resolve(wanted.map((ip) => at(ip)));
    const listed = podRequests().at(-1);
    addPod("web-3", { ip: "192.168.41.3", deleted: clock.t });
    server.store.delete("pods", "web-3", "shop");
    clock.t += 40 * SEC;
    const answers = names(await dir.resolve(wanted.map((ip) => at(ip))));
    expect(answers[2]).toBe("absent");
    expect(answers.filter((a) => a.startsWith("pod:"))).toHaveLength(7);
    const watch = podRequests().at(-1);
    expect(listed?.query.watch).toBeUndefined();
    expect(watch?.query).toMatchObject({ watch: "1", allowWatchBookmarks: "true", timeoutSeconds: "1" });
    expect(Number(watch?.query.resourceVersion)).toBeGreaterThan(0);
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 1 });
  });
});

// --- throttling and server errors -------------------------------------------------------------------------

describe("429 and 5xx: asked again after Retry-After within the deadline, else unavailable and paused", () => {
  const throttled = (seconds: number) => ({
    code: 429,
    body: status(429, "TooManyRequests", "Too many requests, please try again later.", {
      retryAfterSeconds: seconds,
    }),
  });
  const tooLarge = {
    code: 504,
    body: status(504, "Timeout", "Too large resource version: 9999, current: 1200", {
      causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
      retryAfterSeconds: 1,
    }),
  };

  it.each([
    ["429 from API Priority and Fairness", throttled(1)],
    ["504 'Too large resource version' from a cache catching up", tooLarge],
  ])("asks again after the Retry-After of a %s, within the request deadline", async (_, first) => {
    addPod("web-0", { ip: "192.168.50.1" });
    const dir = directory({ timeoutMs: 3_000 });
    let calls = 0;
    server.setInterceptor((request) =>
      request.path === "/api/v1/pods" && ++calls === 1 ? first : undefined,
    );
    expect(names(await dir.resolve([at("192.168.50.1")]))).toEqual(["pod:web-0"]);
    expect(podRequests().map((r) => r.status)).toEqual([first.code, 200]);
    // Answered: no pause; the next payload asks at once.
    expect(names(await dir.resolve([at("192.168.50.9")]))).toEqual(["absent"]);
    expect(dir.stats()).toMatchObject({ unavailable: 0, apiErrors: 1 });
  });

  it.each([
    ["500", { kind: "status", code: 500 } as const],
    ["503", { kind: "status", code: 503 } as const],
  ])("answers a %s without Retry-After unavailable at once, without asking again", async (_, fault) => {
    addPod("web-0", { ip: "192.168.50.1" });
    await server.setFault({ fault, path: "/api/v1/pods" });
    const answers = await directory({ timeoutMs: 3_000 }).resolve([at("192.168.50.1")]);
    expect(answers[0]).toMatchObject({
      status: "unavailable",
      reason: expect.stringMatching(`HTTP ${fault.code}`),
    });
    expect(podRequests()).toHaveLength(1);
  });

  it("does not wait past the deadline: a Retry-After longer than it fails at once, and pauses that long", async () => {
    addPod("web-0", { ip: "192.168.50.1" });
    const dir = directory({ timeoutMs: 3_000 });
    server.setInterceptor((request) => (request.path === "/api/v1/pods" ? throttled(20) : undefined));
    const [answer] = await dir.resolve([at("192.168.50.1")]);
    expect(answer).toMatchObject({ status: "unavailable", reason: expect.stringMatching(/HTTP 429/) });
    expect(podRequests()).toHaveLength(1);
    // Past the directory's own first backoff (1 s), still within the 20 s the server asked for: not asked.
    server.setInterceptor(null);
    clock.t += 5 * SEC;
    const [paused] = await dir.resolve([at("192.168.50.1")]);
    expect(paused).toMatchObject({ status: "unavailable", reason: expect.stringMatching(/paused/) });
    expect(podRequests()).toHaveLength(1);
    clock.t += 16 * SEC;
    expect(names(await dir.resolve([at("192.168.50.1")]))).toEqual(["pod:web-0"]);
  });

  it("gives up within the deadline when the server keeps throttling", async () => {
    addPod("web-0", { ip: "192.168.50.1" });
    server.setInterceptor((request) => (request.path === "/api/v1/pods" ? throttled(1) : undefined));
    const [answer] = await directory({ timeoutMs: 2_500 }).resolve([at("192.168.50.1")]);
    expect(answer).toMatchObject({ status: "unavailable", reason: expect.stringMatching(/HTTP 429/) });
    // Asked at 0 s, 1 s and 2 s at most: a fourth answer could not come within 2.5 s.
    expect(podRequests().length).toBeGreaterThanOrEqual(2);
    expect(podRequests().length).toBeLessThanOrEqual(3);
  });
});

// --- attribution ------------------------------------------------------------------------------------------

describe("attribution of what the API reports, per docs/architecture.md", () => {
  it("finds a dual-stack pod by either address, IPv6 primary included, and learns the second from any list", async () => {
    addPod("v6-first", { ip: ["fd00:10::6", "192.168.10.6"] });
    addPod("v4-first", { ip: ["192.168.10.7", "fd00:10::7"] });
    addPod("listed", { ip: ["192.168.10.8", "fd00:10::8"] });
    const dir = directory();
    // By the primary address (status.podIP, also when it is IPv6), spelled as the parser prints it; the
    // second address is then known from the pod the answer carried.
    expect(
      names(await dir.resolve([at("FD00:10:0:0:0:0:0:6"), at("192.168.10.7"), at("fd00:10::8")])),
    ).toEqual(["pod:v6-first", "pod:v4-first", "absent"]);
    expect(
      podRequests()
        .map((r) => r.query.fieldSelector)
        .sort(),
    ).toEqual(["status.podIP=192.168.10.7", "status.podIP=fd00:10::6", "status.podIP=fd00:10::8"]);
    clock.t += 40 * SEC;
    // "listed"'s second address is in no status.podIP= answer (docs, known limits): a full list finds it.
    expect(
      names(
        await directory({ fieldSelectorMax: 0 }).resolve([
          at("192.168.10.6"),
          at("fd00:10::7"),
          at("fd00:10::8"),
        ]),
      ),
    ).toEqual(["pod:v6-first", "pod:v4-first", "pod:listed"]);
    expect(names(await dir.resolve([at("192.168.10.6"), at("fd00:10::7")]))).toEqual([
      "pod:v6-first",
      "pod:v4-first",
    ]);
  });

  it("gives a node every InternalIP it has, IPv6 ones too, and none of its other addresses", async () => {
    const node = kubeObjects.node({
      name: "node-a",
      ip: ["192.168.0.10", "192.168.0.11", "fd00::a"],
      created: T,
    });
    (node.status as { addresses: { type: string; address: string }[] }).addresses.push(
      { type: "ExternalIP", address: "192.168.99.10" },
      { type: "InternalDNS", address: "ip-192-168-0-10.ec2.internal" },
    );
    server.store.put("nodes", node);
    const dir = directory();
    expect(
      names(
        await dir.resolve(
          ["192.168.0.10", "192.168.0.11", "fd00:0:0::a", "192.168.99.10"].map((ip) => at(ip)),
        ),
      ),
    ).toEqual(["node:node-a", "node:node-a", "node:node-a", "absent"]);
  });

  it("takes every address of a hostNetwork pod for its node's, and a pod on a node's address over the node", async () => {
    server.store.put("nodes", kubeObjects.node({ name: "node-c", ip: "192.168.0.30", created: T - MIN }));
    addPod("kube-proxy-x", {
      ip: ["192.168.0.30", "fd00::30"],
      hostNetwork: true,
      node: "node-c",
      owner: { kind: "DaemonSet", name: "kube-proxy" },
    });
    // EKS Fargate: the pod is not hostNetwork and holds its (single-pod) node's address.
    server.store.put(
      "nodes",
      kubeObjects.node({ name: "fargate-ip-192-168-0-40", ip: "192.168.0.40", created: T }),
    );
    addPod("api-0", { ip: "192.168.0.40", node: "fargate-ip-192-168-0-40" });
    const answers = await directory().resolve([at("192.168.0.30"), at("fd00::30"), at("192.168.0.40")]);
    expect(names(answers)).toEqual(["node:node-c", "node:node-c", "pod:api-0"]);
  });

  it("keeps a finished pod's IP its own until it finished, then gives it to the running pod that reused it", async () => {
    const ip = "192.168.60.1";
    const finished = T + 20 * MIN;
    const reused = T + 25 * MIN;
    addPod("job-1", { ip, phase: "Succeeded", finished, owner: { kind: "Job", name: "nightly" } });
    const web = kubeObjects.pod({
      name: "web-5d4f8-x2x",
      namespace: "shop",
      ip,
      created: reused,
      uid: "uid-web",
    });
    // Several owners: the controller is the workload (ReplicaSet of a Deployment, by its template hash).
    (web.metadata as Record<string, unknown>).labels = { "pod-template-hash": "5d4f8" };
    (web.metadata as Record<string, unknown>).ownerReferences = [
      { apiVersion: "v1", kind: "ConfigMap", name: "settings", uid: "c1" },
      { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-5d4f8", uid: "r1", controller: true },
    ];
    server.store.put("pods", web);
    const answers = await directory().resolve([
      at(ip, T + 10 * MIN),
      at(ip, finished + 5 * SEC),
      at(ip, T + 23 * MIN),
      at(ip, reused + 1 * SEC),
    ]);
    expect(names(answers)).toEqual(["pod:job-1", "pod:job-1", "absent", "pod:web-5d4f8-x2x"]);
    expect(answers[0]).toMatchObject({ holder: { workload: { kind: "Job", name: "nightly" } } });
    expect(answers[3]).toMatchObject({ holder: { workload: { kind: "Deployment", name: "web" } } });
  });

  it("ends a pod being deleted at its deletionTimestamp, and gives its IP to the newer pod that took it", async () => {
    const ip = "192.168.60.2";
    const grace = clock.t + 30 * SEC;
    addPod("old-0", { ip, deleted: grace });
    const stuck = "192.168.60.3";
    addPod("stuck-0", { ip: stuck, deleted: clock.t - 5 * MIN });
    const dir = directory();
    expect(
      names(await dir.resolve([at(ip), at(stuck, clock.t - 10 * MIN), at(stuck, clock.t - 4 * MIN)])),
    ).toEqual(["pod:old-0", "pod:stuck-0", "absent"]);
    // old-0 goes before its grace period is over; new-0 gets the IP from the pool.
    server.store.delete("pods", "old-0", "shop");
    addPod("new-0", { ip, created: clock.t + 5 * SEC });
    const deletedSeen = clock.t;
    clock.t += 40 * SEC;
    expect(names(await dir.resolve([at(ip, deletedSeen - SEC), at(ip, deletedSeen + 10 * SEC)]))).toEqual([
      "pod:old-0",
      "pod:new-0",
    ]);
  });

  it("asks by an IPv6 address spelled as kubelet writes it, whatever the line's spelling", async () => {
    addPod("web-0", { ip: "fd00::1:0:0:1" });
    const [answer] = await directory().resolve([at("FD00:0:0:0:1::1")]);
    expect(answer).toMatchObject({ status: "found", holder: { name: "web-0" } });
    expect(podRequests()[0]?.query.fieldSelector).toBe("status.podIP=fd00::1:0:0:1");
  });
});

describe("the check every test's requests go through", () => {
  const request = (query: Record<string, string>, path = "/api/v1/pods"): RecordedRequest => ({
    method: "GET",
    path,
    query,
    contentType: null,
    status: 200,
  });

  it("refuses what a real API server refuses", () => {
    expect(refusal(request({ fieldSelector: "status.podIP=192.168.1.1", resourceVersion: "0" }))).toBeNull();
    expect(refusal(request({ resourceVersion: "12", resourceVersionMatch: "NotOlderThan" }))).toBeNull();
    expect(refusal(request({ limit: "500", continue: "abc" }))).toBeNull();
    expect(
      refusal(
        request({ watch: "1", resourceVersion: "12", allowWatchBookmarks: "true", timeoutSeconds: "1" }),
      ),
    ).toBeNull();
    for (const [query, path] of [
      [{ fieldSelector: "status.podIPs=192.168.1.1" }, "/api/v1/pods"],
      [{ fieldSelector: "status.podIP=FD00::1" }, "/api/v1/pods"],
      [{ fieldSelector: "status.addresses=192.168.1.1" }, "/api/v1/nodes"],
      [{ labelSelector: "app=web" }, "/api/v1/pods"],
      [{ resourceVersionMatch: "NotOlderThan" }, "/api/v1/pods"],
      [{ resourceVersion: "12", resourceVersionMatch: "NotOlderThan", continue: "abc" }, "/api/v1/pods"],
      [{ resourceVersion: "12", continue: "abc" }, "/api/v1/pods"],
      [{ resourceVersion: "12", limit: "500" }, "/api/v1/pods"],
      [{ watch: "true" }, "/api/v1/pods"],
      [{ watch: "1", resourceVersion: "0", timeoutSeconds: "1" }, "/api/v1/pods"],
      [{ watch: "1", resourceVersion: "12" }, "/api/v1/pods"],
      [
        { watch: "1", resourceVersion: "12", timeoutSeconds: "1", resourceVersionMatch: "NotOlderThan" },
        "/api/v1/pods",
      ],
      [{ watch: "1", resourceVersion: "12", timeoutSeconds: "1", limit: "500" }, "/api/v1/pods"],
    ] as const) {
      expect(refusal(request({ ...query }, path))).not.toBeNull();
    }
  });

  it("is the test server's own: it refuses those list options too", async () => {
    server.setInterceptor((r) => {
      const refused = r.next(new URLSearchParams({ resourceVersion: "1", limit: "5", continue: "x" }));
      const unsupported = r.next(new URLSearchParams({ fieldSelector: "status.podIPs=1.2.3.4" }));
      const orphan = r.next(new URLSearchParams({ resourceVersionMatch: "NotOlderThan" }));
      const ahead = r.next(
        new URLSearchParams({ resourceVersion: "999999", resourceVersionMatch: "NotOlderThan" }),
      );
      const watchMatch = r.next(
        new URLSearchParams({ watch: "1", resourceVersion: "1", resourceVersionMatch: "NotOlderThan" }),
      );
      // A watch from a version not reached yet is not among them: the watch cache takes it (kube-api-server.test.ts).
      return {
        code: 200,
        body: {
          kind: "Codes",
          codes: [refused.code, unsupported.code, orphan.code, ahead.code, watchMatch.code],
        },
      };
    });
    const response = await fetchWithCa(`${server.url}/api/v1/namespaces`, {
      authorization: `Bearer ${server.token}`,
    });
    expect(response).toMatchObject({ codes: [400, 400, 422, 504, 422] });
  });
});

/** GET with the test server's CA (fetch has no CA option: node:https does). */
async function fetchWithCa(url: string, headers: Record<string, string>): Promise<unknown> {
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, ca: server.caPem }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(JSON.parse(Buffer.concat(chunks).toString("utf8"))));
    });
    req.on("error", reject);
    req.end();
  });
}
