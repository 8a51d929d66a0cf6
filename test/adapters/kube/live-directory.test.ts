import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LiveDirectory, LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import type { Lookup, Resolution } from "../../../functions/core/types.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";
import { liveDirectoryOn, MemoryHistory, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const MIN = 60_000;

let server: KubeApiServer;
let clock: { t: number };
let warnings: string[];

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => server.close());
beforeEach(() => {
  server.store.clear();
  server.store.put(
    "namespaces",
    kubeObjects.namespace({ name: "shop", labels: { "example.com/org": "acme" } }),
  );
  server.counts.reset();
  clock = { t: T + 60 * MIN };
  warnings = [];
});
afterEach(async () => server.setFault(null));

function directory(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, {
    cluster: "test",
    timeoutMs: 1_000,
    now: () => clock.t,
    logger: { warn: (message) => warnings.push(message) },
    ...options,
  });
}

function addPod(
  name: string,
  ip: string | null,
  created: number,
  extra: Partial<Parameters<typeof kubeObjects.pod>[0]> = {},
) {
  return server.store.put(
    "pods",
    kubeObjects.pod({
      name,
      namespace: "shop",
      ip,
      created,
      node: "ip-192-168-0-1",
      owner: { kind: "StatefulSet", name: name.replace(/-\d+$/, "") },
      uid: `uid-${name}`,
      ...extra,
    }),
  );
}

/** Lookups as the pipeline makes them from lines: one per distinct (ip, time). */
function linesToLookups(lines: { src: string; dst: string; at: number }[]): Lookup[] {
  const seen = new Set<string>();
  const lookups: Lookup[] = [];
  for (const { src, dst, at } of lines) {
    for (const ip of [src, dst]) {
      if (!seen.has(`${ip}|${at}`)) {
        seen.add(`${ip}|${at}`);
        lookups.push({ ip, at });
      }
    }
  }
  return lookups;
}

describe("LiveDirectory: calls to the API server", () => {
  it("resolves 1,000 lines over 50 IPs with at most 2 calls cold and none warm", async () => {
    const ips: string[] = [];
    const expected = new Map<string, string>();
    for (let i = 1; i <= 45; i++) {
      addPod(`web-${i}`, `192.168.10.${i}`, T + i * 1_000);
      ips.push(`192.168.10.${i}`);
      expected.set(`192.168.10.${i}`, `pod:web-${i}`);
    }
    for (let i = 1; i <= 5; i++) {
      server.store.put(
        "nodes",
        kubeObjects.node({ name: `node-${i}`, ip: `192.168.0.${i}`, created: T - 86_400_000 }),
      );
      ips.push(`192.168.0.${i}`);
      expected.set(`192.168.0.${i}`, `node:node-${i}`);
    }
    const payload = (start: number) =>
      linesToLookups(
        Array.from({ length: 1_000 }, (_, i) => ({
          src: ips[i % 50] as string,
          dst: ips[(i * 7 + 3) % 50] as string,
          at: start + i * 10,
        })),
      );
    const dir = directory();

    const cold = payload(clock.t - 30_000);
    const coldAnswers = await dir.resolve(cold);
    expect(server.counts.total()).toBeLessThanOrEqual(2);
    expect(server.counts.snapshot()).toEqual({ "GET /api/v1/nodes": 1, "GET /api/v1/pods": 1 });
    expect(names(coldAnswers)).toEqual(cold.map((l) => expected.get(l.ip)));

    server.counts.reset();
    clock.t += 20_000;
    const warm = payload(clock.t - 10_000);
    const warmAnswers = await dir.resolve(warm);
    expect(server.counts.total()).toBe(0);
    expect(names(warmAnswers)).toEqual(warm.map((l) => expected.get(l.ip)));
    expect(dir.stats()).toMatchObject({
      apiCalls: 2,
      hits: warm.length,
      misses: cold.length,
      unavailable: 0,
    });
  });

  it("asks about a few unknown IPs one by one, at most once each per payload, and not again while known", async () => {
    addPod("db-0", "192.168.20.1", T);
    addPod("db-1", "192.168.20.2", T);
    const dir = directory({ hitTtlMs: 60_000, missTtlMs: 30_000 });
    const lookups = [
      { ip: "192.168.20.1", at: clock.t - 5_000 },
      { ip: "192.168.20.2", at: clock.t - 5_000 },
      { ip: "192.168.20.1", at: clock.t - 4_000 },
      { ip: "192.168.20.9", at: clock.t - 4_000 },
    ];
    expect(names(await dir.resolve(lookups))).toEqual(["pod:db-0", "pod:db-1", "pod:db-0", "absent"]);
    const podRequests = server.requests().filter((r) => r.path === "/api/v1/pods");
    expect(podRequests.map((r) => r.query.fieldSelector).sort()).toEqual([
      "status.podIP=192.168.20.1",
      "status.podIP=192.168.20.2",
      "status.podIP=192.168.20.9",
    ]);
    expect(podRequests.every((r) => r.query.resourceVersion === "0" && r.query.timeoutSeconds === "1")).toBe(
      true,
    );

    server.counts.reset();
    clock.t += 20_000;
    expect(names(await dir.resolve(lookups))).toEqual(["pod:db-0", "pod:db-1", "pod:db-0", "absent"]);
    expect(server.counts.total()).toBe(0);

    // A miss is remembered for less time than a hit: after 30 s only the missing IP is asked about again.
    clock.t += 15_000;
    await dir.resolve([
      { ip: "192.168.20.1", at: clock.t },
      { ip: "192.168.20.9", at: clock.t },
    ]);
    expect(server.requests().map((r) => r.query.fieldSelector)).toEqual(["status.podIP=192.168.20.9"]);
  });

  it("pages through a full list with limit and continue", async () => {
    for (let i = 1; i <= 50; i++) addPod(`web-${i}`, `192.168.30.${i}`, T);
    const dir = directory({ pageSize: 10 });
    const lookups = Array.from({ length: 50 }, (_, i) => ({ ip: `192.168.30.${i + 1}`, at: clock.t }));
    const answers = await dir.resolve(lookups);
    expect(answers.every((a) => a.status === "found")).toBe(true);
    const pages = server.requests().filter((r) => r.path === "/api/v1/pods");
    expect(pages).toHaveLength(5);
    expect(pages[0]?.query).toMatchObject({ limit: "10", resourceVersion: "0" });
    expect(
      pages.slice(1).every((p) => p.query.continue !== undefined && p.query.resourceVersion === undefined),
    ).toBe(true);
  });

  it("restarts a full list once when a continue token expires (410)", async () => {
    for (let i = 1; i <= 30; i++) addPod(`web-${i}`, `192.168.31.${i}`, T);
    const dir = directory({ pageSize: 10 });
    await server.setFault({ fault: { kind: "status", code: 410 }, path: "/api/v1/pods", skip: 1, times: 1 });
    const answers = await dir.resolve(
      Array.from({ length: 30 }, (_, i) => ({ ip: `192.168.31.${i + 1}`, at: clock.t })),
    );
    expect(answers.every((a) => a.status === "found")).toBe(true);
    expect(
      server
        .requests()
        .filter((r) => r.path === "/api/v1/pods")
        .map((r) => r.status),
    ).toEqual([200, 410, 200, 200, 200]);
  });

  it("answers unavailable when continue tokens keep expiring, and recovers later", async () => {
    for (let i = 1; i <= 30; i++) addPod(`web-${i}`, `192.168.32.${i}`, T);
    const dir = directory({ pageSize: 10 });
    await server.setFault({ fault: { kind: "status", code: 410 }, path: "/api/v1/pods", skip: 1 });
    const lookups = Array.from({ length: 30 }, (_, i) => ({ ip: `192.168.32.${i + 1}`, at: clock.t }));
    const answers = await dir.resolve(lookups);
    expect(answers.every((a) => a.status === "unavailable" && /HTTP 410/.test(a.reason))).toBe(true);
    // Rate-limited: a second payload right away does not list again.
    server.counts.reset();
    expect((await dir.resolve(lookups)).every((a) => a.status === "unavailable")).toBe(true);
    expect(server.counts.total()).toBe(0);
    await server.setFault(null);
    clock.t += 60_000;
    expect(
      (await dir.resolve(lookups.map((l) => ({ ...l, at: clock.t })))).every((a) => a.status === "found"),
    ).toBe(true);
  });

  it("shares one lookup between payloads resolved at the same time", async () => {
    addPod("db-0", "192.168.20.1", T);
    const dir = directory();
    const [a, b] = await Promise.all([
      dir.resolve([{ ip: "192.168.20.1", at: clock.t - 1_000 }]),
      dir.resolve([{ ip: "192.168.20.1", at: clock.t - 2_000 }]),
    ]);
    expect(names([...(a ?? []), ...(b ?? [])])).toEqual(["pod:db-0", "pod:db-0"]);
    expect(server.counts.total()).toBe(2);
  });
});

describe("LiveDirectory: attribution in time", () => {
  it("follows an IP from one pod to the next, and asks the history about lines before the current pod", async () => {
    const history = new MemoryHistory();
    const ip = "192.168.40.7";
    addPod("job-a", ip, T);
    clock.t = T + 10 * MIN;
    const first = directory({ history });
    expect(names(await first.resolve([{ ip, at: T + 9 * MIN }]))).toEqual(["pod:job-a"]);

    // job-a goes, job-b gets the same IP from the pool.
    server.store.delete("pods", "job-a", "shop");
    addPod("job-b", ip, T + 11 * MIN);
    clock.t = T + 12 * MIN;
    const both = [
      { ip, at: T + 9 * MIN },
      { ip, at: T + 11 * MIN + 30_000 },
    ];
    expect(names(await first.resolve(both))).toEqual(["pod:job-a", "pod:job-b"]);
    // The history knows both, job-a with the end the directory observed.
    expect(history.holders(ip).map((h) => [h.name, h.validTo])).toEqual([
      ["job-a", T + 12 * MIN],
      ["job-b", null],
    ]);

    // A new container only sees job-b live: the older line is answered from the history.
    const cold = directory({ history });
    expect(names(await cold.resolve(both))).toEqual(["pod:job-a", "pod:job-b"]);
    expect(cold.stats().historyFound).toBe(1);

    // Without a history, the older line is unknown: never the pod created after it.
    const forgetful = directory();
    expect(names(await forgetful.resolve(both))).toEqual(["absent", "pod:job-b"]);
  });

  it("answers a span with the one live holder throughout it, and says varies when there is none or more", async () => {
    const history = new MemoryHistory();
    addPod("job-a", "192.168.40.7", T);
    addPod("steady-0", "192.168.40.9", T);
    clock.t = T + 10 * MIN;
    const dir = directory({ history });
    await dir.resolve([{ ip: "192.168.40.7", at: T + 9 * MIN }]);
    // job-a goes, job-b gets its IP from the pool.
    server.store.delete("pods", "job-a", "shop");
    addPod("job-b", "192.168.40.7", T + 11 * MIN);
    clock.t = T + 12 * MIN;
    // Seen gone at T+12 min: job-a's lifetime ends there, overlapping job-b's (a deletion time is an upper bound).
    expect(names(await dir.resolve([{ ip: "192.168.40.7", at: T + 11 * MIN + 30_000 }]))).toEqual([
      "pod:job-b",
    ]);
    clock.t = T + 13 * MIN;
    const spans = [
      { ip: "192.168.40.9", at: T + 9 * MIN, until: T + 11 * MIN },
      { ip: "192.168.40.7", at: T + 9 * MIN, until: T + 11 * MIN + 30_000 },
      // Within job-a's end and the tolerance after it, both are candidates: per time, pickHolder decides.
      { ip: "192.168.40.7", at: T + 11 * MIN + 1_000, until: T + 11 * MIN + 30_000 },
      { ip: "192.168.40.7", at: T + 12 * MIN + 15_000, until: T + 12 * MIN + 50_000 },
      { ip: "192.168.40.99", at: T + 9 * MIN, until: T + 11 * MIN },
    ];
    expect(names((await dir.resolveSpans(spans)) as Resolution[])).toEqual([
      "pod:steady-0",
      "varies",
      "varies",
      "pod:job-b",
      // Nobody live: per-time lookups then reach the history, as resolve's do.
      "varies",
    ]);
    // The span answers were remembered like resolve's.
    expect(history.holders("192.168.40.9").map((h) => h.name)).toEqual(["steady-0"]);
  });

  it("asks the API again when the end of a span is newer than what it knows, not only its start", async () => {
    const ip = "192.168.40.12";
    addPod("job-a", ip, T);
    clock.t = T + 10 * MIN;
    const dir = directory();
    expect(names(await dir.resolve([{ ip, at: T + 10 * MIN }]))).toEqual(["pod:job-a"]);
    // Beyond the hit TTL (30 s) after that look, job-a is gone and job-b holds the IP.
    server.store.delete("pods", "job-a", "shop");
    addPod("job-b", ip, T + 10 * MIN + 40_000);
    clock.t = T + 11 * MIN;
    const span = { ip, at: T + 10 * MIN, until: T + 10 * MIN + 50_000 };
    expect(names((await dir.resolveSpans([span])) as Resolution[])).toEqual(["varies"]);
  });

  it("answers every span of an address unavailable when the API cannot be asked about it", async () => {
    await server.setFault({ fault: { kind: "reset" } });
    const answers = await directory().resolveSpans([{ ip: "192.168.40.7", at: T, until: T + MIN }]);
    expect(answers[0]).toMatchObject({ status: "unavailable" });
  });

  it("says unavailable, not absent, when the history cannot be read", async () => {
    const history = new MemoryHistory();
    history.failReads = true;
    addPod("job-b", "192.168.40.8", T + 11 * MIN);
    clock.t = T + 12 * MIN;
    const answers = await directory({ history }).resolve([
      { ip: "192.168.40.8", at: T + 5 * MIN },
      { ip: "192.168.40.8", at: T + 11 * MIN + 1_000 },
    ]);
    expect(answers[0]).toMatchObject({
      status: "unavailable",
      reason: expect.stringMatching(/history unavailable/),
    });
    expect(names(answers.slice(1))).toEqual(["pod:job-b"]);
  });

  it("resolves hostNetwork pods and node InternalIPs to the node, even when nodes may not be listed", async () => {
    server.store.put("nodes", kubeObjects.node({ name: "node-a", ip: "192.168.0.10", created: T - MIN }));
    addPod("aws-node-x", "192.168.0.11", T, {
      hostNetwork: true,
      node: "node-b",
      owner: { kind: "DaemonSet", name: "aws-node" },
    });
    addPod("web-0", "192.168.50.1", T);
    const lookups = ["192.168.0.10", "192.168.0.11", "192.168.50.1"].map((ip) => ({ ip, at: clock.t }));
    expect(names(await directory().resolve(lookups))).toEqual(["node:node-a", "node:node-b", "pod:web-0"]);

    await server.setFault({ fault: { kind: "status", code: 403 }, path: "/api/v1/nodes" });
    const restricted = directory();
    expect(names(await restricted.resolve(lookups))).toEqual(["absent", "node:node-b", "pod:web-0"]);
    expect(warnings.some((w) => /list nodes failed: HTTP 403/.test(w))).toBe(true);
  });

  it("keeps a dual-stack pod's second address, which no status.podIP query finds, and ends it by a full list", async () => {
    // Kubernetes matches `status.podIP=` against the primary address alone.
    addPod("web-1", null, T, { ip: ["192.168.10.5", "fd00::5"] });
    const history = new MemoryHistory();
    const dir = directory({ history });
    expect(names(await dir.resolve([{ ip: "192.168.10.5", at: clock.t }]))).toEqual(["pod:web-1"]);
    // The primary's answer named the second address: it is known now, and refreshed by full lists only.
    for (let round = 0; round < 3; round++) {
      clock.t += 2 * MIN;
      expect(names(await dir.resolve([{ ip: "fd00::5", at: clock.t }]))).toEqual(["pod:web-1"]);
    }
    expect(dir.stats()).toMatchObject({ podQueries: 1, fullLists: 3 });
    expect(history.holders("fd00::5").map((h) => h.validTo)).toEqual([null]);
    // Deleted: the next full list ends both addresses (a line of that moment is still the pod's, by the end's
    // tolerance); later lines find nobody.
    server.store.delete("pods", "web-1", "shop");
    clock.t += 2 * MIN;
    const ended = clock.t;
    await dir.resolve([{ ip: "fd00::5", at: ended }]);
    expect(history.holders("fd00::5").map((h) => h.validTo)).toEqual([ended]);
    expect(history.holders("192.168.10.5").map((h) => h.validTo)).toEqual([ended]);
    clock.t += 10 * MIN;
    expect(names(await dir.resolve([{ ip: "fd00::5", at: clock.t }]))).toEqual(["absent"]);
  });

  it("keeps a dual-stack hostNetwork pod's second address as its node's, when nodes may not be listed", async () => {
    await server.setFault({ fault: { kind: "status", code: 403 }, path: "/api/v1/nodes" });
    addPod("aws-node-y", null, T, {
      ip: ["192.168.0.21", "fd00::21"],
      hostNetwork: true,
      node: "node-c",
      owner: { kind: "DaemonSet", name: "aws-node" },
    });
    const history = new MemoryHistory();
    const dir = directory({ history });
    expect(names(await dir.resolve([{ ip: "192.168.0.21", at: clock.t }]))).toEqual(["node:node-c"]);
    // No status.podIP query finds the second address: it stays the node's, refreshed by full lists.
    for (let round = 0; round < 3; round++) {
      clock.t += 2 * MIN;
      expect(names(await dir.resolve([{ ip: "fd00::21", at: clock.t }]))).toEqual(["node:node-c"]);
    }
    expect(history.holders("fd00::21").map((h) => h.validTo)).toEqual([null]);
  });

  it("carries the configured namespace labels", async () => {
    addPod("web-0", "192.168.50.1", T);
    const [answer] = await directory({ namespaceLabelKeys: ["example.com/org"] }).resolve([
      { ip: "192.168.50.1", at: clock.t },
    ]);
    expect(answer).toMatchObject({
      status: "found",
      holder: { name: "web-0", labels: { "example.com/org": "acme" } },
    });
    expect(server.counts.get("GET", "/api/v1/namespaces")).toBe(1);
  });

  it("skips objects it cannot read and resolves the rest", async () => {
    for (let i = 1; i <= 6; i++) addPod(`web-${i}`, `192.168.60.${i}`, T);
    const garbled = kubeObjects.pod({ name: "garbled", namespace: "shop", ip: "192.168.60.7", created: T });
    (garbled.metadata as Record<string, unknown>).creationTimestamp = "last tuesday";
    server.store.put("pods", garbled);
    server.store.put(
      "pods",
      kubeObjects.pod({ name: "bad-ip", namespace: "shop", ip: "192.168.60.300", created: T }),
    );
    const dir = directory();
    const lookups = Array.from({ length: 7 }, (_, i) => ({ ip: `192.168.60.${i + 1}`, at: clock.t }));
    expect(names(await dir.resolve(lookups))).toEqual([
      ...Array.from({ length: 6 }, (_, i) => `pod:web-${i + 1}`),
      "absent",
    ]);
    expect(dir.stats().malformed).toBe(2);
    expect(warnings.some((w) => /skipped a pod that cannot be read/.test(w))).toBe(true);
  });
});

describe("LiveDirectory: when Kubernetes misbehaves", () => {
  it("answers unavailable within its budget when every request is slow, and from the work done meanwhile later", async () => {
    // Each request within its own deadline, but the node list, then the pod list (six addresses: one list) and
    // a history read for each address the list did not find take longer than the payload may wait.
    const ips = Array.from({ length: 6 }, (_, i) => `192.168.71.${i + 1}`);
    addPod("web-0", ips[0] as string, T);
    const history = new MemoryHistory();
    const dir = directory({ timeoutMs: 3_000, resolveBudgetMs: 1_000, history });
    await server.setFault({ kind: "delay", ms: 1_500 });
    const lookups = ips.map((ip) => ({ ip, at: clock.t }));
    const started = Date.now();
    const answers = await dir.resolve(lookups);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(answers.map((a) => a.status)).toEqual(ips.map(() => "unavailable"));
    expect(answers[0]?.status === "unavailable" && answers[0].reason).toMatch(
      /^attribution not done within 1000 ms: the Kubernetes API or the holder history is slow/,
    );
    expect(dir.stats().overBudget).toBe(1);
    // A call behind the slow one has its own budget, waiting included.
    expect((await dir.resolve(lookups.slice(0, 1))).map((a) => a.status)).toEqual(["unavailable"]);
    // The work went on: once it is done, memory answers at once.
    await server.setFault(null);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const calls = server.counts.total();
    expect(names(await dir.resolve(lookups.slice(0, 2)))).toEqual(["pod:web-0", "absent"]);
    expect(server.counts.total()).toBe(calls);
  });

  it("past its budget still answers what fresh memory holds, and unavailable only the rest", async () => {
    addPod("web-0", "192.168.72.1", T);
    const dir = directory({ timeoutMs: 3_000, resolveBudgetMs: 1_000 });
    expect(names(await dir.resolve([{ ip: "192.168.72.1", at: clock.t }]))).toEqual(["pod:web-0"]);
    // The API slows down; an address memory does not know needs it, one it saw a moment ago does not.
    await server.setFault({ kind: "delay", ms: 1_500 });
    const answers = await dir.resolve([
      { ip: "192.168.72.1", at: clock.t },
      { ip: "192.168.72.2", at: clock.t },
    ]);
    expect(answers.map((a) => (a.status === "found" ? `pod:${a.holder.name}` : a.status))).toEqual([
      "pod:web-0",
      "unavailable",
    ]);
    expect(dir.stats().overBudget).toBe(1);
    await server.setFault(null);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  });

  it.each([
    ["401", { kind: "status", code: 401 } as const, /HTTP 401.*fix: the kubeconfig credentials were refused/],
    ["403", { kind: "status", code: 403 } as const, /HTTP 403.*fix: .*apply deploy\/rbac\.yaml/],
    ["500", { kind: "status", code: 500 } as const, /HTTP 500: Internal error occurred/],
    ["a hang", { kind: "hang" } as const, /no answer/],
    ["a stopped server", { kind: "down" } as const, /cannot reach the API server/],
  ])("answers unavailable on %s, never throws, and recovers later", async (_, fault, reason) => {
    addPod("web-0", "192.168.70.1", T);
    const dir = directory({ timeoutMs: 300 });
    await server.setFault(fault);
    const lookups = [
      { ip: "192.168.70.1", at: clock.t },
      { ip: "192.168.70.2", at: clock.t },
    ];
    const answers = await dir.resolve(lookups);
    expect(answers.map((a) => a.status)).toEqual(["unavailable", "unavailable"]);
    expect(answers[0]?.status === "unavailable" && answers[0].reason).toMatch(reason);
    expect(warnings.some((w) => reason.test(w))).toBe(true);
    expect(dir.stats()).toMatchObject({ unavailable: 2 });

    await server.setFault(null);
    clock.t += 61_000;
    expect(names(await dir.resolve(lookups.map((l) => ({ ...l, at: clock.t }))))).toEqual([
      "pod:web-0",
      "absent",
    ]);
  });

  it("refuses options under which a full list could not run again before what it proved runs out", () => {
    expect(() => directory({ hitTtlMs: 10_000, fullListIntervalMs: 30_000 })).toThrow(
      "fullListIntervalMs (30000) must not exceed hitTtlMs (10000)",
    );
    expect(() => directory({ missTtlMs: 10_000, fullListIntervalMs: 30_000 })).toThrow(
      "fullListIntervalMs (30000) must not exceed missTtlMs (10000)",
    );
    expect(() =>
      directory({ hitTtlMs: 30_000, missTtlMs: 30_000, fullListIntervalMs: 30_000 }),
    ).not.toThrow();
  });

  it("names the EKS access entry fix by default", async () => {
    const dir = directory({ fixes: undefined });
    await server.setFault({ kind: "status", code: 401 });
    const [answer] = await dir.resolve([{ ip: "192.168.70.1", at: clock.t }]);
    expect(answer?.status === "unavailable" && answer.reason).toMatch(
      /the function role needs an EKS access entry \(see docs\/deploy\.md\)/,
    );
  });

  it("names the reader group and its RBAC as the 403 fix by default, as docs/deploy.md sets them up", async () => {
    const dir = directory({ fixes: undefined });
    await server.setFault({ kind: "status", code: 403 });
    const [answer] = await dir.resolve([{ ip: "192.168.70.1", at: clock.t }]);
    const reason = answer?.status === "unavailable" ? answer.reason : "";
    expect(reason).toMatch(/group calico-flows-reader/);
    expect(reason).toMatch(/kubectl apply -f deploy\/rbac\.yaml/);
    // No access policy is attached (docs/deploy.md), and the view policy would not cover nodes.
    expect(reason).not.toMatch(/AmazonEKS\w*Policy/);
  });

  it("pauses after a failure instead of hammering a failing server", async () => {
    const dir = directory();
    await server.setFault({ kind: "status", code: 503 });
    await dir.resolve([{ ip: "192.168.70.1", at: clock.t }]);
    const afterFirst = server.counts.total();
    clock.t += 500;
    const [answer] = await dir.resolve([{ ip: "192.168.70.3", at: clock.t }]);
    expect(answer).toMatchObject({
      status: "unavailable",
      reason: expect.stringMatching(/paused after failures/),
    });
    expect(server.counts.total()).toBe(afterFirst);
  });

  it("pauses a second after one blip, however many of a payload's lookups it failed at once", async () => {
    const dir = directory();
    await server.setFault({ kind: "status", code: 503 });
    // Lookups of a payload go out side by side and fail together: one failure of the API, not five.
    const ips = ["192.168.70.11", "192.168.70.12", "192.168.70.13", "192.168.70.14", "192.168.70.15"];
    await dir.resolve(ips.map((ip) => ({ ip, at: clock.t })));
    expect(server.counts.total({ method: "GET" })).toBeGreaterThan(2);
    await server.setFault(null);
    addPod("a-0", "192.168.70.16", T);
    clock.t += 1_100;
    expect(names(await dir.resolve([{ ip: "192.168.70.16", at: clock.t }]))).toEqual(["pod:a-0"]);
  });

  it("loses no lookup when the API server goes away in the middle of a payload", async () => {
    addPod("a-0", "192.168.80.1", T);
    addPod("b-0", "192.168.80.2", T);
    addPod("c-0", "192.168.80.3", T);
    const dir = directory({ concurrency: 1 });
    // The node list and the first pod lookup get through, then connections drop.
    await server.setFault({ fault: { kind: "reset" }, skip: 2 });
    const lookups = ["192.168.80.1", "192.168.80.2", "192.168.80.3", "192.168.80.1"].map((ip, i) => ({
      ip,
      at: clock.t - i,
    }));
    const answers = await dir.resolve(lookups);
    expect(names(answers)).toEqual(["pod:a-0", "unavailable", "unavailable", "pod:a-0"]);
  });
});
