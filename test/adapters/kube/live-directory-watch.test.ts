// How a warm directory keeps its pod view up to date at scale: after one full list, a short watch from the list's
// resourceVersion brings the changes since (list-then-watch), falling back to a full list when the version is too old
// (410), watch is forbidden (403, an older deploy/rbac.yaml) or the watch ends early; a list slower than the hit TTL
// still answers after it lands; a version floor the API server keeps refusing (an etcd restore) is let go.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KUBECONFIG_FIXES, loadKubeconfig } from "../../../functions/adapters/kube/cluster-access.ts";
import { LiveDirectory, type LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import type { Lookup } from "../../../functions/core/types.ts";
import {
  type KubeApiServer,
  type KubeObject,
  kubeObjects,
  type RecordedRequest,
  startKubeApiServer,
} from "../../support/kube-api-server.ts";
import { liveDirectoryOn, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-06-02T10:00:00Z");
const SEC = 1_000;
const MIN = 60 * SEC;

let server: KubeApiServer;
let clock: { t: number };
let warnings: string[];

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => server.close());
beforeEach(() => {
  server.setInterceptor(null);
  server.store.clear();
  server.store.put("namespaces", kubeObjects.namespace({ name: "shop" }));
  clock = { t: T + 60 * MIN };
  warnings = [];
  // Twenty pods, 192.168.1.1 … 192.168.1.20: more than fieldSelectorMax, so a payload of them lists in full.
  for (let i = 1; i <= 20; i++) addPod(`web-${i}`, `192.168.1.${i}`);
  server.counts.reset();
});
afterEach(async () => {
  server.setInterceptor(null);
  await server.setFault(null);
});

function directory(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, {
    cluster: "watch",
    // Room for a one-second catch-up watch within a request's deadline.
    timeoutMs: 3_000,
    now: () => clock.t,
    logger: { warn: (message) => warnings.push(message) },
    ...options,
  });
}

function addPod(name: string, ip: string, extra: Partial<Parameters<typeof kubeObjects.pod>[0]> = {}) {
  return server.store.put(
    "pods",
    kubeObjects.pod({
      name,
      namespace: "shop",
      ip,
      created: T,
      node: "node-a",
      owner: { kind: "StatefulSet", name: "web" },
      uid: `uid-${name}`,
      ...extra,
    }),
  );
}

const ips = Array.from({ length: 20 }, (_, i) => `192.168.1.${i + 1}`);
/** One lookup per address, for lines `ago` before now. */
const payload = (addresses: readonly string[] = ips, ago = 2 * SEC): Lookup[] =>
  addresses.map((ip) => ({ ip, at: clock.t - ago }));
const podRequests = (): RecordedRequest[] => server.requests().filter((r) => r.path === "/api/v1/pods");
const watches = () => podRequests().filter((r) => r.query.watch !== undefined);
const versionOf = (list: RecordedRequest[]) => list.map((r) => r.query.resourceVersion);

describe("LiveDirectory: list, then watch", () => {
  it("catches up with a one-second watch from the list's version instead of listing every pod again", async () => {
    const dir = directory();
    expect(names(await dir.resolve(payload()))).toEqual(ips.map((_, i) => `pod:web-${i + 1}`));
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 0 });
    const listVersion = await listVersionNow();

    // Meanwhile web-1 is deleted and its address goes to web-21; web-2 is being deleted; web-22 is new.
    clock.t += 10 * SEC;
    const deletedAt = clock.t;
    addPod("web-1", "192.168.1.1", { deleted: deletedAt });
    server.store.delete("pods", "web-1", "shop");
    addPod("web-2", "192.168.1.2", { deleted: deletedAt });
    clock.t += 5 * SEC;
    addPod("web-21", "192.168.1.1", { created: clock.t });
    addPod("web-22", "192.168.1.22", { created: clock.t });
    const caughtUpTo = await listVersionNow();
    clock.t += 20 * SEC;
    server.counts.reset();

    expect(names(await dir.resolve([...payload(), ...payload(["192.168.1.22"])]))).toEqual([
      "pod:web-21",
      "absent",
      ...ips.slice(2).map((_, i) => `pod:web-${i + 3}`),
      "pod:web-22",
    ]);
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 1 });
    // The pods' current version (one pod, a consistent read), then the watch.
    expect(podRequests().map((r) => r.query)).toEqual([
      { limit: "1", timeoutSeconds: "3" },
      watches()[0]?.query,
    ]);
    expect(watches()[0]?.query).toEqual({
      watch: "1",
      resourceVersion: listVersion,
      allowWatchBookmarks: "true",
      timeoutSeconds: "1",
    });
    // Lines before the deletions: web-1 and web-2, ended at their deletion.
    const before = await dir.resolve([
      { ip: "192.168.1.1", at: deletedAt - 5 * SEC },
      { ip: "192.168.1.2", at: deletedAt - 5 * SEC },
    ]);
    expect(before).toMatchObject([
      { status: "found", holder: { name: "web-1", validTo: deletedAt } },
      { status: "found", holder: { name: "web-2", validTo: deletedAt } },
    ]);

    // The next catch-up takes up where this one ended: at the version the pods were at.
    addPod("web-22", "192.168.1.22", { created: T + 60 * MIN + 15 * SEC, deleted: clock.t });
    server.store.delete("pods", "web-22", "shop");
    clock.t += 31 * SEC;
    server.counts.reset();
    expect(names(await dir.resolve(payload(["192.168.1.22", ...ips.slice(2)])))).toEqual([
      "absent",
      ...ips.slice(2).map((_, i) => `pod:web-${i + 3}`),
    ]);
    expect(versionOf(watches())).toEqual([caughtUpTo]);
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 2 });
    expect(server.openWatches()).toBe(0);
  });

  it("lists in full again when the watch cache no longer has the changes since its version (410)", async () => {
    const dir = directory();
    await dir.resolve(payload());
    addPod("web-3", "192.168.1.3", { deleted: clock.t });
    server.store.delete("pods", "web-3", "shop");
    server.compactWatchHistory();
    clock.t += 31 * SEC;
    server.counts.reset();
    const answers = await dir.resolve(payload());
    expect(names(answers).slice(0, 2)).toEqual(["pod:web-1", "pod:web-2"]);
    // Seen gone by the list: ended at its start.
    expect(dir.holders("192.168.1.3")).toMatchObject([{ name: "web-3", validTo: clock.t }]);
    expect(dir.stats()).toMatchObject({ fullLists: 2, catchUps: 0 });
    expect(podRequests().map((r) => r.query.watch ?? `list ${r.query.limit ?? "all"}`)).toEqual([
      "list 1",
      "1",
      "list all",
    ]);
    expect(warnings).toEqual([]);
  });

  it("lists in full when watch is forbidden, and says so once", async () => {
    server.setInterceptor((r) =>
      r.query.get("watch") === null
        ? undefined
        : {
            code: 403,
            body: {
              kind: "Status",
              apiVersion: "v1",
              metadata: {},
              status: "Failure",
              message:
                'pods is forbidden: User "calico-flows" cannot watch resource "pods" in API group "" at the cluster scope',
              reason: "Forbidden",
              details: { kind: "pods" },
              code: 403,
            },
          },
    );
    const dir = directory();
    await dir.resolve(payload());
    for (let round = 0; round < 3; round++) {
      clock.t += 2 * MIN;
      expect(names(await dir.resolve(payload()))[0]).toBe("pod:web-1");
    }
    expect(dir.stats()).toMatchObject({ fullLists: 4, catchUps: 0 });
    expect(watches()).toHaveLength(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("watch pods is forbidden");
    expect(warnings[0]).toContain("deploy/rbac.yaml");
  });

  it("lists in full when a watch ends before its timeout: changes may be missing", async () => {
    server.setInterceptor((r) => (r.query.get("watch") === null ? undefined : { code: 200, body: "" }));
    const dir = directory();
    await dir.resolve(payload());
    clock.t += 31 * SEC;
    await dir.resolve(payload());
    expect(dir.stats()).toMatchObject({ fullLists: 2, catchUps: 0 });
    expect(watches()).toHaveLength(1);
  });

  it("does not reopen a holder it saw end with an older state a lagging watch cache replays", async () => {
    const dir = directory({ fieldSelectorMax: 1 });
    await dir.resolve(payload());
    // web-5 ends; one query sees it gone, at a version after its deletion.
    clock.t += 10 * SEC;
    const before = structuredClone(server.store.get("pods", "web-5", "shop") as KubeObject);
    addPod("web-5", "192.168.1.5", { deleted: clock.t });
    server.store.delete("pods", "web-5", "shop");
    clock.t += 25 * SEC;
    const seenGone = clock.t;
    await dir.resolve(payload(["192.168.1.5"], 0));
    expect(dir.holders("192.168.1.5")).toMatchObject([{ name: "web-5", validTo: seenGone }]);
    // An API server instance whose cache is behind replays web-5 as it was, alive, at once, and ends the watch after
    // its second (the rest of the answer, blank, a second later).
    server.setInterceptor((r) => {
      if (r.query.get("watch") === null) return undefined;
      const event = `${JSON.stringify({ type: "MODIFIED", object: { ...before, kind: "Pod", apiVersion: "v1" } })}\n`;
      return { code: 200, body: event + " ".repeat(event.length) };
    });
    // After the version read: the watch.
    await server.setFault({
      fault: { kind: "trickle", pieces: 2, everyMs: 1_000 },
      path: "/api/v1/pods",
      skip: 1,
      times: 1,
    });
    clock.t += 31 * SEC;
    expect(names(await dir.resolve(payload(["192.168.1.5", "192.168.1.6"], 0)))).toEqual([
      "absent",
      "pod:web-6",
    ]);
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 1 });
    expect(dir.holders("192.168.1.5")).toMatchObject([{ name: "web-5", validTo: seenGone }]);
  });
});

describe("LiveDirectory: a catch-up that cannot tell all", () => {
  it("lists in full when the API server's version is below the view's (an etcd restore): a watch from a version it has not reached sends nothing", async () => {
    // The cluster's etcd has counted far; restored from a backup, it counts from lower, with other pods at the addresses.
    for (let i = 0; i < 50; i++) server.store.put("namespaces", kubeObjects.namespace({ name: `ns-${i}` }));
    const restored = await startKubeApiServer();
    try {
      for (let i = 1; i <= 20; i++) {
        restored.store.put(
          "pods",
          kubeObjects.pod({
            name: `new-${i}`,
            namespace: "shop",
            ip: `192.168.1.${i}`,
            created: T,
            uid: `new-${i}`,
          }),
        );
      }
      let kc = loadKubeconfig({ kubeconfig: server.kubeconfigPath });
      const dir = new LiveDirectory({
        kubeConfig: () => kc,
        fixes: KUBECONFIG_FIXES,
        cluster: "watch",
        timeoutMs: 3_000,
        nodeTtlMs: 60 * MIN,
        now: () => clock.t,
        logger: { warn: (message) => warnings.push(message) },
      });
      expect(names(await dir.resolve(payload()))[0]).toBe("pod:web-1");
      const viewVersion = await listVersionNow();
      kc = loadKubeconfig({ kubeconfig: restored.kubeconfigPath });
      clock.t += 2 * MIN;
      expect(names(await dir.resolve(payload()))).toEqual(ips.map((_, i) => `pod:new-${i + 1}`));
      expect(dir.stats()).toMatchObject({ fullLists: 2, catchUps: 0 });
      // One pod read for the version, then every pod from any version: no watch from one the server has not reached.
      expect(
        restored.requests().map((r) => [r.path, r.query.limit, r.query.resourceVersion, r.query.watch]),
      ).toEqual([
        ["/api/v1/pods", "1", undefined, undefined],
        ["/api/v1/pods", "500", "0", undefined],
      ]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`older than the ${viewVersion} the pod view is at`);
      // The view is at the restored cluster's version: the next refresh catches up from it.
      clock.t += 2 * MIN;
      expect(names(await dir.resolve(payload()))[0]).toBe("pod:new-1");
      expect(dir.stats()).toMatchObject({ fullLists: 2, catchUps: 1 });
    } finally {
      await restored.close();
    }
  });

  it("ends a pod's holder at an address its new state no longer shows (a sandbox recreated: same uid, new IP)", async () => {
    const dir = directory();
    await dir.resolve(payload());
    clock.t += 10 * SEC;
    addPod("web-3", "192.168.1.33");
    clock.t += 21 * SEC;
    const refreshed = clock.t;
    const answers = await dir.resolve([...payload(), ...payload(["192.168.1.33"])]);
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 1 });
    expect(names(answers).slice(-1)).toEqual(["pod:web-3"]);
    // As a full list would: seen elsewhere at the catch-up's start.
    expect(dir.holders("192.168.1.3")).toMatchObject([{ name: "web-3", validTo: refreshed }]);
    expect(dir.holders("192.168.1.33")).toMatchObject([{ name: "web-3", validTo: null }]);
    clock.t += 31 * SEC;
    expect(names(await dir.resolve(payload(["192.168.1.3", ...ips.slice(3)], 0)))[0]).toBe("absent");
  });

  it("lists nothing in a quiet cluster, and watches again from the view's own version: no event proved the server's", async () => {
    const dir = directory();
    await dir.resolve(payload());
    // Other objects change: the version moves on, no pod event comes.
    for (let i = 0; i < 3; i++) server.store.put("namespaces", kubeObjects.namespace({ name: `ns-${i}` }));
    const current = await listVersionNow();
    for (let round = 0; round < 2; round++) {
      clock.t += 31 * SEC;
      expect(names(await dir.resolve(payload()))[0]).toBe("pod:web-1");
    }
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 2 });
    const [first, second] = versionOf(watches());
    expect(second).toBe(first);
    expect(second).not.toBe(current);
  });

  it("does not take a watch with nothing from a lagging watch cache as the server's version: the next one replays the changes", async () => {
    const dir = directory();
    await dir.resolve(payload());
    // A rollout: web-1 … web-20 replaced by new-1 … new-20 at the same addresses.
    clock.t += 5 * SEC;
    for (let i = 1; i <= 20; i++) {
      server.store.delete("pods", `web-${i}`, "shop");
      addPod(`new-${i}`, `192.168.1.${i}`, { created: clock.t - 60 * MIN + 5 * SEC });
    }
    // The first watch reaches an API server instance whose watch cache has none of it yet: its second passes with
    // nothing sent (the version read before it, the first request, is answered as ever).
    let lagging = true;
    server.setInterceptor((r) =>
      r.query.get("watch") !== null && lagging ? { code: 200, body: "\n\n" } : undefined,
    );
    await server.setFault({
      fault: { kind: "trickle", pieces: 2, everyMs: 1_100 },
      path: "/api/v1/pods",
      skip: 1,
      times: 1,
    });
    clock.t += 31 * SEC;
    await dir.resolve(payload());
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 1 });
    lagging = false;
    clock.t += 31 * SEC;
    expect(names(await dir.resolve(payload()))).toEqual(ips.map((_, i) => `pod:new-${i + 1}`));
    expect(dir.stats()).toMatchObject({ fullLists: 1 });
  });

  it("lists in full when a watch asked again after a 429 ends before its timeout", async () => {
    const dir = directory();
    await dir.resolve(payload());
    let asked = 0;
    server.setInterceptor((r) => {
      if (r.query.get("watch") === null) return undefined;
      asked++;
      // Throttled once (Retry-After: 1), then an API server going away: answered, and ended at once with nothing.
      return asked === 1
        ? {
            code: 429,
            body: {
              kind: "Status",
              apiVersion: "v1",
              status: "Failure",
              code: 429,
              reason: "TooManyRequests",
            },
            headers: { "retry-after": "1" },
          }
        : { code: 200, body: "" };
    });
    clock.t += 31 * SEC;
    await dir.resolve(payload());
    expect(asked).toBe(2);
    expect(dir.stats()).toMatchObject({ fullLists: 2, catchUps: 0 });
  });

  it("goes on from the last event when a watch ended still sending its backlog, and is complete once the rest came", async () => {
    const dir = directory();
    await dir.resolve(payload());
    clock.t += 10 * SEC;
    server.store.delete("pods", "web-1", "shop");
    server.store.delete("pods", "web-2", "shop");
    const third = addPod("web-21", "192.168.1.1", { created: clock.t });
    addPod("web-22", "192.168.1.2", { created: clock.t });
    // Out at 0, 400 and 800 ms: the fourth event is not out when the first watch ends.
    server.setWatchPace(400);
    try {
      clock.t += 21 * SEC;
      server.counts.reset();
      expect(names(await dir.resolve(payload())).slice(0, 3)).toEqual([
        "pod:web-21",
        "pod:web-22",
        "pod:web-3",
      ]);
    } finally {
      server.setWatchPace(null);
    }
    expect(dir.stats()).toMatchObject({ fullLists: 1, catchUps: 1 });
    expect(versionOf(watches()).at(-1)).toBe((third.metadata as KubeObject).resourceVersion);
    expect(watches()).toHaveLength(2);
  });

  it("lists in full when three watches in a row ended still sending the backlog (a rollout bigger than they carry)", async () => {
    const dir = directory();
    await dir.resolve(payload());
    clock.t += 5 * SEC;
    for (let i = 1; i <= 20; i++) server.store.delete("pods", `web-${i}`, "shop");
    clock.t += 10 * SEC;
    for (let i = 1; i <= 20; i++) addPod(`new-${i}`, `192.168.1.${i}`, { created: clock.t });
    server.setWatchPace(100);
    try {
      clock.t += 20 * SEC;
      server.counts.reset();
      expect(names(await dir.resolve(payload(ips, 1 * SEC)))).toEqual(ips.map((_, i) => `pod:new-${i + 1}`));
    } finally {
      server.setWatchPace(null);
    }
    expect(dir.stats()).toMatchObject({ fullLists: 2, catchUps: 0 });
    expect(podRequests().map((r) => r.query.watch ?? `list ${r.query.limit ?? "all"}`)).toEqual([
      "list 1",
      "1",
      "1",
      "1",
      "list all",
    ]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("still sending");
  });
});

describe("LiveDirectory: a full list slower than the hit TTL", () => {
  it("answers lines for up to twice the TTL after the list started, however long it took to come", async () => {
    // No watch (a deadline too short for one): every refresh is a full list, which the interceptor makes last 35 s.
    const dir = directory({ timeoutMs: 1_000 });
    server.setInterceptor((r) => {
      if (r.path === "/api/v1/pods" && r.query.get("fieldSelector") === null) clock.t += 35 * SEC;
      return undefined;
    });
    const started = clock.t;
    expect(names(await dir.resolve(payload()))[0]).toBe("pod:web-1");
    expect(clock.t).toBe(started + 35 * SEC);
    // Landed 35 s after it started: lines since answer from it until 60 s after its start.
    clock.t = started + 59 * SEC;
    expect(names(await dir.resolve(payload(ips, 0)))).toEqual(ips.map((_, i) => `pod:web-${i + 1}`));
    expect(dir.stats().fullLists).toBe(1);
    clock.t = started + 61 * SEC;
    await dir.resolve(payload(ips, 0));
    expect(dir.stats().fullLists).toBe(2);
  });
});

describe("LiveDirectory: a version floor the API server keeps refusing", () => {
  it("reads from any version again after three calls in a row refused as too large (an etcd restore)", async () => {
    // Nodes listed once: a refused node list's Retry-After would hold the pod reads back.
    const dir = directory({ timeoutMs: 1_000, nodeTtlMs: 60 * MIN });
    expect(names(await dir.resolve(payload(["192.168.1.7"])))).toEqual(["pod:web-7"]);
    // The cluster's etcd was restored from a backup: its versions are below the floor the directory keeps.
    server.setInterceptor((r) => {
      if (r.query.get("resourceVersionMatch") !== "NotOlderThan") return undefined;
      return {
        code: 504,
        body: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: `Too large resource version: ${r.query.get("resourceVersion")}, current: 17`,
          reason: "Timeout",
          details: {
            causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
            retryAfterSeconds: 1,
          },
          code: 504,
        },
      };
    });
    const statuses: string[] = [];
    for (let call = 0; call < 4; call++) {
      clock.t += 2 * MIN;
      // Two addresses a call: requests side by side, refused together, count as one call.
      const answers = await dir.resolve(payload(["192.168.1.7", "192.168.1.8"], 0));
      statuses.push(names(answers).join(","));
    }
    expect(statuses).toEqual([
      "unavailable,unavailable",
      "unavailable,unavailable",
      "unavailable,unavailable",
      "pod:web-7,pod:web-8",
    ]);
    expect(podRequests().at(-1)?.query.resourceVersion).toBe("0");
    expect(warnings.some((w) => w.includes("reading from any version again"))).toBe(true);
  });
});

/** The server's current resourceVersion, as a list answers it. */
async function listVersionNow(): Promise<string | undefined> {
  let version: string | undefined;
  server.setInterceptor((r) => {
    const answer = r.next();
    version = ((answer.body as KubeObject).metadata as KubeObject).resourceVersion as string;
    return answer;
  });
  const { request } = await import("node:https");
  await new Promise<void>((resolve, reject) => {
    const req = request(
      `${server.url}/api/v1/namespaces`,
      { headers: { authorization: `Bearer ${server.token}` }, ca: server.caPem },
      (res) => {
        res.resume();
        res.on("end", () => resolve());
      },
    );
    req.on("error", reject);
    req.end();
  });
  server.setInterceptor(null);
  return version;
}
