// A full pod list read from the watch cache comes as one page of every pod before Kubernetes 1.34 (hundreds of MB
// in a large cluster), so its download takes what it takes: a request's deadline (timeoutMs) bounds the wait for
// its answer and each silence of its body, not the body's size; the call's budget (resolveBudgetMs) bounds how long
// a payload waits for it. The local API server trickles the body: parts well within the deadline, all of them well
// past it.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { LiveDirectory, LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import { type Fault, type KubeApiServer, startKubeApiServer } from "../../support/kube-api-server.ts";
import { addReplicaSetPod, liveDirectoryOn, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const TIMEOUT_MS = 300;
/** 20 parts 75 ms apart: 1.5 s in all, past the deadline and the second the answer is given besides. */
const TRICKLE = { kind: "trickle", pieces: 20, everyMs: 75 } as const;

let server: KubeApiServer;
let warnings: string[];
const ips = Array.from({ length: 8 }, (_, i) => `192.168.90.${i + 1}`);

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => server.close());
beforeEach(() => {
  server.store.clear();
  for (const [i, ip] of ips.entries()) addReplicaSetPod(server, `web-7d9f8-${i}`, ip, T);
  server.counts.reset();
  warnings = [];
});
afterEach(async () => server.setFault(null));

function directory(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, {
    cluster: "prod",
    timeoutMs: TIMEOUT_MS,
    now: () => T + 60_000,
    logger: { warn: (message) => warnings.push(message) },
    ...options,
  });
}

/** More addresses than are looked up one by one: the directory lists every pod. */
const lookups = () => ips.map((ip) => ({ ip, at: T + 60_000 }));
const fullLists = () => server.requests().filter((r) => r.path === "/api/v1/pods" && !r.query.fieldSelector);

describe("a full pod list that takes longer than the request deadline to download", () => {
  it("is read whole while its body keeps coming", async () => {
    await server.setFault({ fault: TRICKLE, path: "/api/v1/pods" });
    const dir = directory();
    expect(names(await dir.resolve(lookups()))).toEqual(ips.map((_, i) => `pod:web-7d9f8-${i}`));
    expect(fullLists()).toHaveLength(1);
    expect(dir.stats()).toMatchObject({ fullLists: 1, apiErrors: 0 });
  });

  it("fails once its body stops coming for the deadline, however long it came before", async () => {
    // Six parts (450 ms, past the deadline), then silence.
    await server.setFault({ fault: { ...TRICKLE, stallAfter: 6 }, path: "/api/v1/pods" });
    const answers = await directory().resolve(lookups());
    expect(answers.map((a) => a.status)).toEqual(ips.map(() => "unavailable"));
    expect(answers[0]?.status === "unavailable" && answers[0].reason).toMatch(
      /^Kubernetes API list pods failed: the answer stopped: nothing received for 300 ms/,
    );
  });

  it("answers unavailable at the call's budget, goes on, and answers later calls from the list", async () => {
    await server.setFault({ fault: TRICKLE, path: "/api/v1/pods" });
    const dir = directory({ resolveBudgetMs: 500 });
    const first = await dir.resolve(lookups());
    expect(first.map((a) => a.status)).toEqual(ips.map(() => "unavailable"));
    expect(first[0]?.status === "unavailable" && first[0].reason).toMatch(
      /^attribution not done within 500 ms/,
    );
    // A call made while the list is still coming waits for it within its own budget.
    expect((await dir.resolve(lookups())).map((a) => a.status)).toEqual(ips.map(() => "unavailable"));
    await vi.waitFor(() => expect(dir.stats().fullLists).toBe(1), { timeout: 5_000, interval: 50 });
    expect(names(await dir.resolve(lookups()))).toEqual(ips.map((_, i) => `pod:web-7d9f8-${i}`));
    expect(fullLists()).toHaveLength(1);
  });
});

describe("a small request to a silent server", () => {
  it.each<[string, Fault]>([
    ["never answers", { kind: "hang" }],
    ["answers, then sends no body", { ...TRICKLE, stallAfter: 0 }],
  ])("fails at the deadline when the server %s: a pod lookup, a node list", async (_, fault) => {
    await server.setFault(fault);
    const dir = directory();
    const answers = await dir.resolve(lookups().slice(0, 2));
    expect(answers.map((a) => a.status)).toEqual(["unavailable", "unavailable"]);
    expect(answers[0]?.status === "unavailable" && answers[0].reason).toMatch(
      /^Kubernetes API list pods with status.podIP=192.168.90.1 failed: (no answer within|the answer stopped: nothing received for) 300 ms/,
    );
    expect(warnings.some((w) => /^Kubernetes API list nodes failed: .*300 ms/.test(w))).toBe(true);
    expect(dir.stats()).toMatchObject({ podQueries: 0, nodeLists: 0 });
  });
});
