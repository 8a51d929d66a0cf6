// Long-lived state of the live directory (functions/adapters/kube/live-directory.ts): a warm ingest Lambda
// container lives for hours under a steady subscription, and `calico-flows replay -` follows `kubectl logs -f` for
// days, both with one directory. Each test drives the real directory through the local HTTPS Kubernetes API server
// over a long simulated life (an injected clock, pods created and deleted as a busy EKS cluster churns them) and
// holds what it keeps to a bound an operator would expect: proportional to what is alive or recently used, never
// to everything ever seen, and never forgetting what the holder history needs to stay right.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LiveDirectory, LiveDirectoryOptions } from "../../../functions/adapters/kube/live-directory.ts";
import type { Holder, Lookup } from "../../../functions/core/types.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";
import { liveDirectoryOn, MemoryHistory, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const S = 1_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const CLUSTER = "prod";

let server: KubeApiServer;
let clock: { t: number };

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.store.clear();
  server.counts.reset();
  clock = { t: T };
});

/** One warm container's directory on the simulated clock. */
function container(options: Partial<LiveDirectoryOptions> = {}): LiveDirectory {
  return liveDirectoryOn(server, { cluster: CLUSTER, timeoutMs: 2_000, now: () => clock.t, ...options });
}

/** A Job's pod in namespace `ci` (a CronJob run, a preview environment's pod: short-lived, one address). */
function addJobPod(name: string, ip: string, created: number): void {
  server.store.put(
    "pods",
    kubeObjects.pod({
      name,
      namespace: "ci",
      ip,
      created,
      node: "ip-192-168-0-1",
      owner: { kind: "Job", name },
      uid: `uid-${name}`,
    }),
  );
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The history in memory, its reads as slow as a throttled DynamoDB table's while `delayMs` is set. */
class SlowHistory extends MemoryHistory {
  delayMs = 0;
  override async holdersOf(cluster: string, ip: string, at: number): Promise<Holder[]> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    return super.holdersOf(cluster, ip, at);
  }
}

describe("calls answered at their budget while the history is slow", () => {
  // What grows: the directory's queue of calls (#queue, live-directory.ts:381-386). A call answered `unavailable` at
  // resolveBudgetMs keeps its work queued, and every later call queues behind it; a call that is itself answered at
  // its budget before its work started still runs all of it later (lists, history reads) for answers nobody will
  // read. While each payload's work takes longer than the budget (holder history reads throttled, each up to
  // historyTimeoutMs; an API server answering slowly), the queue grows by nearly one payload per payload: measured
  // here, 25-26 of 30 payloads' work (200-208 history reads) still queued when the last of them had been answered. Each
  // queued call holds its payload's lookups; in the Lambda (1 GB) an incident of an hour queues hundreds of
  // payloads, keeps adding reads to the table that is already throttled, and delays the work of every fresh payload
  // behind work whose answers were already given. Expected: the work of a call answered at its budget before it
  // started is dropped (or merged into the next), so that at most the call running and one more are outstanding.
  it("does not keep the work of every payload already answered unavailable queued behind the slow one", async () => {
    const history = new SlowHistory();
    const directory = container({ history, resolveBudgetMs: 50 });
    let n = 0;
    /** A payload's per-time lookups: 8 addresses no pod holds now, so each is read from the history. */
    const payload = (): Lookup[] =>
      Array.from({ length: 8 }, () => {
        n++;
        return { ip: `192.168.${n >> 8}.${n & 255}`, at: T - MIN };
      });
    // One full list, after which memory answers the live side of every later line (no more Kubernetes calls).
    await directory.resolve(payload());
    history.delayMs = 150;
    for (let k = 0; k < 30; k++) {
      const answers = await directory.resolve(payload());
      expect(answers[0]?.status).toBe("unavailable");
    }
    // The table recovers; whatever is still queued now runs for payloads that were all answered already.
    const readsAnswered = history.reads;
    history.delayMs = 0;
    let last = -1;
    while (history.reads !== last) {
      last = history.reads;
      await sleep(200);
    }
    const readsAfterAnswers = history.reads - readsAnswered;
    // At most the payload running and one more (8 history reads each).
    expect(readsAfterAnswers).toBeLessThanOrEqual(2 * 8);
  });
});

describe("the holders remembered as written to the history (#remembered)", () => {
  // What grows: #remembered (live-directory.ts:268), a key per holder ever answered, not pruned with the index: it
  // holds every pod answered since the container started until REMEMBERED_LIMIT (50,000; 2,500 pods answered an hour
  // reach it in 20 hours), then `clear()` forgets all of them at once (live-directory.ts:1092). But #rememberChange
  // (live-directory.ts:1068) writes a holder's end to the history only when its key is there: every pod alive at
  // that moment, answered before it and not since, ends in this container's memory and never in the history (here
  // 10,001 pods, all those alive at the clear). The history keeps them open for good, and another container (or this
  // one, once memory pruned them) answers lines after their end with the gone pod: below, a line ten minutes after
  // the pod was deleted, at an address nobody took since, is attributed to it instead of `absent`. Expected: the
  // bound is kept by forgetting the keys of holders the index itself forgot (pruned after retainEndedMs), so that
  // a holder still in memory always gets its end written.
  it("writes the end of a pod it answered before the cap was reached, once the pod goes", async () => {
    const history = new MemoryHistory();
    const a = container({ history });
    const perRound = 10_000;
    const ipOf = (k: number) => `192.168.${k >> 8}.${k & 255}`;
    // A long-lived pod, answered once early in the container's life.
    const api = "192.168.250.1";
    server.store.put(
      "pods",
      kubeObjects.pod({ name: "api-0", namespace: "shop", ip: api, created: T - 10 * MIN, uid: "uid-api-0" }),
    );
    // A day of a busy cluster: every 4 hours 10,000 new pods take the addresses of the last ones (2,500 pods an
    // hour), and lines from each of them are attributed.
    let deletedAt = 0;
    for (let round = 0; round <= 6; round++) {
      clock.t = T + round * 4 * HOUR;
      if (round === 6) {
        server.store.delete("pods", "api-0", "shop");
        deletedAt = clock.t;
      }
      for (let k = 0; k < perRound; k++) {
        if (round > 0) server.store.delete("pods", `job-${round - 1}-${k}`, "ci");
        addJobPod(`job-${round}-${k}`, ipOf(k), clock.t - MIN);
      }
      const lookups: Lookup[] = Array.from({ length: perRound }, (_, k) => ({
        ip: ipOf(k),
        at: clock.t - 30 * S,
      }));
      if (round === 0) lookups.push({ ip: api, at: clock.t - 30 * S });
      const answers = await a.resolve(lookups);
      expect(answers.every((r) => r.status === "found")).toBe(true);
    }
    // Container a saw api-0 gone at its last full list. Another container (its own memory, the same history) asked
    // about a line of api-0's address ten minutes after that: nobody held the address then.
    clock.t = deletedAt + 20 * MIN;
    const b = container({ history });
    expect(names(await b.resolve([{ ip: api, at: deletedAt + 10 * MIN }]))).toEqual(["absent"]);
    // Every pod container a saw end has its end in the history.
    const alive = new Set(server.store.list("pods").map((p) => (p.metadata as { name: string }).name));
    const openButGone = [...history.rows.values()].filter(
      (r) => r.holder.validTo === null && !alive.has(r.holder.name),
    );
    expect(openButGone.length).toBe(0);
  });
});
