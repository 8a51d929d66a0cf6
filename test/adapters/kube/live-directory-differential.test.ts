// The live directory against a reference written from the documented time rules (DESIGN.md §4,
// docs/architecture.md "Attribution: correct in time"): random timelines of pods created and deleted (gone from
// the API), IPs reused, nodes added and removed, hostNetwork and Fargate pods, dual-stack, applied step by step
// to the local API server (sometimes failing) while the directory is asked about present and past times.
//
// The reference knows the true lifetimes. The directory may only differ where the docs say it cannot know:
// - a holder it never saw alive (gone from the API before any look) may be `absent`, and the holder before it
//   may then still be answered;
// - a deletion time is an upper bound: an ended holder may be answered until the first look that could see it
//   gone (a full pod list; a `status.podIP=` query of its primary address; a node list for nodes), plus the
//   end tolerance — unless a holder the rules prefer was seen;
// - while the API fails, `unavailable`.
// Steps are a minute apart, beyond the hit and miss lifetimes: a line newer than the last step must get a look
// (and the node list a refresh once older than its lifetime), so the directory cannot pass by never asking.
// Spans are held to the same answers at every second; a cold container sharing the DynamoDB history must
// still answer what the first one answered rightly.
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DynamoHolderHistory } from "../../../functions/adapters/dynamo/history.ts";
import { KUBECONFIG_FIXES, loadKubeconfig } from "../../../functions/adapters/kube/cluster-access.ts";
import { LiveDirectory } from "../../../functions/adapters/kube/live-directory.ts";
import type { Lookup, Resolution, SpanResolution } from "../../../functions/core/types.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";

const T0 = Date.parse("2025-06-02T08:00:00Z");
const S = 1_000;
const STEP = 60 * S;
const TOLERANCE = 10 * S;
const NS = "shop";

const POD_V4 = ["192.168.10.1", "192.168.10.2", "192.168.10.3", "192.168.10.4", "192.168.10.5"];
const POD_V6 = ["fd00:10::1", "fd00:10::2", "fd00:10::3"];
const NODE_V4 = ["192.168.0.1", "192.168.0.2", "192.168.0.3"];
const NODE_V6 = ["fd00::1", "fd00::2"];
/** Never held by anyone. */
const NOBODY = "192.168.10.99";
const ALL_IPS = [...POD_V4, ...POD_V6, ...NODE_V4, ...NODE_V6, NOBODY];

let server: KubeApiServer;
let store: TestStore;
let run = 0;

beforeAll(async () => {
  [server, store] = await Promise.all([startKubeApiServer(), startTestStore()]);
});
afterAll(async () => {
  await server.setFault(null);
  await Promise.all([server.close(), store.close()]);
});

// --- the reference ------------------------------------------------------------------------------------

/** One true hold of addresses: a pod, a node, or a hostNetwork pod (evidence of its node). */
interface TrueHolder {
  /** What the directory should answer: `pod:<name>` or `node:<name>`. */
  answer: string;
  kind: "pod" | "node";
  ips: string[];
  /** status.podIP of the pod object (the only address a field selector finds it by); none for nodes. */
  primary: string | undefined;
  /** Seen through pod requests or node lists. */
  via: "pods" | "nodes";
  created: number;
  deleted: number | null;
}

interface Observation {
  at: number;
  what: "full" | "field" | "nodes";
  ip?: string;
}

class Reference {
  readonly holders: TrueHolder[] = [];
  readonly observations: Observation[] = [];

  holding(ip: string): TrueHolder[] {
    return this.holders.filter((h) => h.ips.includes(ip));
  }

  /** The documented rules over the true lifetimes (of holders whose answer is not in `exclude`). */
  ideal(ip: string, t: number, exclude: ReadonlySet<string> = new Set()): string {
    let covering: TrueHolder | undefined;
    let recent: TrueHolder | undefined;
    for (const h of this.holding(ip)) {
      if (h.created > t || exclude.has(h.answer)) continue; // never a holder created after the line
      if (h.deleted === null || t <= h.deleted) {
        const better =
          covering === undefined ||
          (h.kind !== covering.kind
            ? h.kind === "pod" // a pod wins over a node holding the same address (Fargate)
            : h.created > covering.created); // the newest of several
        if (better) covering = h;
      } else if (t <= h.deleted + TOLERANCE) {
        if (recent === undefined || (recent.deleted as number) < h.deleted) recent = h;
      }
    }
    return (covering ?? recent)?.answer ?? "absent";
  }

  /** Whether the directory made a request, at `now` or before, that returned `h` while it was alive. */
  seenAlive(h: TrueHolder, now: number): boolean {
    return this.observations.some(
      (o) =>
        o.at <= now &&
        o.at >= h.created &&
        (h.deleted === null || o.at < h.deleted) &&
        this.#shows(o, h, h.primary),
    );
  }

  /** First look after `h` ended that could show it gone from `ip`; +∞ when none yet. */
  seenGoneAt(h: TrueHolder, ip: string, now: number): number {
    let first = Number.POSITIVE_INFINITY;
    for (const o of this.observations) {
      if (o.at > now || h.deleted === null || o.at < h.deleted) continue;
      if (this.#shows(o, h, ip) && o.at < first) first = o.at;
    }
    return first;
  }

  #shows(o: Observation, h: TrueHolder, ip: string | undefined): boolean {
    if (h.via === "nodes") return o.what === "nodes";
    return o.what === "full" || (o.what === "field" && o.ip === ip && ip === h.primary);
  }

  /** Whether the directory cannot know about the holders behind `answer` (all gone before any look). */
  unseen(ip: string, t: number, answer: string, now: number): boolean {
    return this.holding(ip)
      .filter((h) => h.answer === answer && h.created <= t)
      .every((h) => !this.seenAlive(h, now));
  }

  /** Why `answer` is acceptable for (ip, t) asked at `now`, or undefined when it is not. */
  accepts(ip: string, t: number, now: number, answer: string, apiFailing: boolean): string | undefined {
    if (answer === "unavailable") return apiFailing ? "API failing" : undefined;
    // The ideal answer, or when the directory can know nothing of its holders (gone before any look), the
    // answer the rules give without them, and so on.
    const excluded = new Set<string>();
    let ideal = this.ideal(ip, t);
    for (;;) {
      if (answer === ideal) return excluded.size === 0 ? "ideal" : "the better holders were never seen";
      if (ideal === "absent" || !this.unseen(ip, t, ideal, now)) break;
      excluded.add(ideal);
      ideal = this.ideal(ip, t, excluded);
    }
    if (answer === "absent") return undefined;
    const idealKind = ideal.startsWith("node:") ? "node" : ideal.startsWith("pod:") ? "pod" : undefined;
    for (const h of this.holding(ip)) {
      if (h.answer !== answer || h.created > t || h.deleted === null || t <= h.deleted) continue;
      // An end is only known at the first look that could see it: up to then (and the tolerance after) the
      // ended holder still covers the line, unless a holder the rules prefer is known.
      if (t > this.seenGoneAt(h, ip, now) + TOLERANCE) continue;
      if (ideal === "absent" || (h.kind === "pod" && idealKind === "node")) {
        return "deletion time is an upper bound";
      }
    }
    return undefined;
  }
}

// --- timelines ----------------------------------------------------------------------------------------

type ActionKind = "pod" | "delete" | "node" | "removeNode" | "hostNetwork" | "fargate";

interface Action {
  kind: ActionKind;
  pick: number;
  dual: boolean;
  v6First: boolean;
  offset: number;
}

interface Step {
  actions: Action[];
  fault: null | "500" | "down" | "reset";
  /** `aim`: around a creation or deletion, at an address of that holder; else any address at any such time. */
  queries: { ip: number; time: number; shift: number; aim?: boolean }[];
}

const actionArb: fc.Arbitrary<Action> = fc.record({
  kind: fc.constantFrom<ActionKind>(
    "pod",
    "pod",
    "pod",
    "delete",
    "delete",
    "node",
    "removeNode",
    "hostNetwork",
    "fargate",
  ),
  pick: fc.nat(1_000),
  dual: fc.boolean(),
  v6First: fc.boolean(),
  offset: fc.integer({ min: 1, max: 59 }),
});

const stepArb: fc.Arbitrary<Step> = fc.record({
  actions: fc.array(actionArb, { maxLength: 4 }),
  fault: fc.constantFrom<Step["fault"]>(null, null, null, null, null, "500", "down", "reset"),
  queries: fc.array(
    fc.record({
      ip: fc.nat(1_000),
      time: fc.nat(1_000),
      shift: fc.constantFrom(-11, -1, 0, 0, 1, 5, 10, 11, 30),
      aim: fc.boolean(),
    }),
    { minLength: 1, maxLength: 6 },
  ),
});

const scenarioArb = fc.record({
  steps: fc.array(stepArb, { minLength: 3, maxLength: 10 }),
  nodeTtlMs: fc.constantFrom(30_000, 300_000),
  fieldSelectorMax: fc.constantFrom(0, 2, 5),
});

interface PodState {
  name: string;
  ips: string[];
  node: string;
  hostNetwork: boolean;
  fargate: boolean;
  holder: TrueHolder;
}

interface NodeState {
  name: string;
  ips: string[];
  holder: TrueHolder;
}

/** Applies the timeline to the API server and the reference, one step (a minute) at a time. */
class Cluster {
  readonly ref = new Reference();
  readonly pods = new Map<string, PodState>();
  readonly nodes = new Map<string, NodeState>();
  #next = 0;

  /** Free: every past holder ended strictly before `at` (a new pod gets an IP only after the old one went). */
  #free(pool: readonly string[], at: number, pick: number): string | undefined {
    const free = pool.filter((ip) => this.ref.holding(ip).every((h) => h.deleted !== null && h.deleted < at));
    return free.length === 0 ? undefined : free[pick % free.length];
  }

  #alive<T>(map: Map<string, T>, pick: number, keep: (v: T) => boolean = () => true): T | undefined {
    const alive = [...map.values()].filter(keep);
    return alive.length === 0 ? undefined : alive[pick % alive.length];
  }

  apply(a: Action, at: number): void {
    const name = `${a.kind === "node" ? "n" : "p"}${++this.#next}`;
    switch (a.kind) {
      case "pod": {
        const v4 = this.#free(POD_V4, at, a.pick);
        const v6 = a.dual ? this.#free(POD_V6, at, a.pick >> 3) : undefined;
        if (v4 === undefined) return;
        const ips = v6 === undefined ? [v4] : a.v6First ? [v6, v4] : [v4, v6];
        const node = this.#alive(this.nodes, a.pick)?.name ?? "ip-192-168-0-250";
        this.#addPod(name, ips, node, at, false, false);
        return;
      }
      case "delete": {
        const pod = this.#alive(this.pods, a.pick, (p) => !p.hostNetwork);
        if (pod !== undefined) this.#deletePod(pod, at);
        return;
      }
      case "node": {
        const v4 = this.#free(NODE_V4, at, a.pick);
        const v6 = a.dual ? this.#free(NODE_V6, at, a.pick >> 3) : undefined;
        if (v4 !== undefined) this.#addNode(name, v6 === undefined ? [v4] : [v4, v6], at);
        return;
      }
      case "removeNode": {
        const node = this.#alive(this.nodes, a.pick);
        if (node !== undefined) this.#removeNode(node, at);
        return;
      }
      case "hostNetwork": {
        // DaemonSets do not run on Fargate.
        const node = this.#alive(this.nodes, a.pick, (n) => !n.name.startsWith("fargate-"));
        if (node === undefined) return;
        const ips = a.v6First ? [...node.ips].reverse() : node.ips;
        this.#addPod(name, ips, node.name, at, true, false);
        return;
      }
      case "fargate": {
        // EKS Fargate: a node of its own for the pod, whose InternalIP the pod (not hostNetwork) holds too.
        const ip = this.#free(NODE_V4, at, a.pick);
        if (ip === undefined) return;
        const node = `fargate-${name}`;
        this.#addNode(node, [ip], at);
        this.#addPod(name, [ip], node, at, false, true);
        return;
      }
    }
  }

  #addNode(name: string, ips: string[], at: number): void {
    const holder: TrueHolder = {
      answer: `node:${name}`,
      kind: "node",
      ips,
      primary: undefined,
      via: "nodes",
      created: at,
      deleted: null,
    };
    this.ref.holders.push(holder);
    this.nodes.set(name, { name, ips, holder });
    server.store.put("nodes", kubeObjects.node({ name, ip: ips, created: at, uid: `uid-${name}` }));
  }

  #removeNode(node: NodeState, at: number): void {
    node.holder.deleted = at;
    this.nodes.delete(node.name);
    server.store.delete("nodes", node.name);
    // Its pods go with it.
    for (const pod of [...this.pods.values()]) if (pod.node === node.name) this.#deletePod(pod, at);
  }

  #addPod(name: string, ips: string[], node: string, at: number, hostNetwork: boolean, fargate: boolean) {
    const holder: TrueHolder = {
      answer: hostNetwork ? `node:${node}` : `pod:${name}`,
      kind: hostNetwork ? "node" : "pod",
      ips,
      primary: ips[0],
      via: "pods",
      created: at,
      deleted: null,
    };
    this.ref.holders.push(holder);
    this.pods.set(name, { name, ips, node, hostNetwork, fargate, holder });
    server.store.put(
      "pods",
      kubeObjects.pod({ name, namespace: NS, ip: ips, created: at, node, hostNetwork, uid: `uid-${name}` }),
    );
  }

  #deletePod(pod: PodState, at: number): void {
    pod.holder.deleted = at;
    this.pods.delete(pod.name);
    server.store.delete("pods", pod.name, NS);
    // A Fargate pod's node goes with it.
    const node = this.nodes.get(pod.node);
    if (pod.fargate && node !== undefined) this.#removeNode(node, at);
  }

  /** Times worth asking about: around every creation and deletion, and now. */
  interestingTimes(now: number): number[] {
    const times = new Set<number>([now, T0]);
    for (const h of this.ref.holders) {
      times.add(h.created);
      if (h.deleted !== null) times.add(h.deleted);
    }
    return [...times].sort((a, b) => a - b);
  }

  /** Records the looks the directory just made (successful requests only), at `now`. */
  recordLooks(now: number): void {
    for (const r of server.requests()) {
      if (r.status !== 200 || r.method !== "GET") continue;
      if (r.path === "/api/v1/nodes") this.ref.observations.push({ at: now, what: "nodes" });
      if (r.path !== "/api/v1/pods") continue;
      const selector = r.query.fieldSelector;
      if (selector === undefined || selector === "") {
        // Only the first page starts a look; later pages belong to it.
        if (r.query.continue === undefined) this.ref.observations.push({ at: now, what: "full" });
      } else {
        const ip = /^status\.podIP=(.+)$/.exec(selector)?.[1];
        if (ip !== undefined) this.ref.observations.push({ at: now, what: "field", ip });
      }
    }
    server.counts.reset();
  }
}

const label = (r: Resolution | SpanResolution) =>
  r.status === "found" ? `${r.holder.kind}:${r.holder.name}` : r.status === "absent" ? "absent" : r.status;

const FAULTS = {
  "500": { kind: "status", code: 500 },
  down: { kind: "down" },
  reset: { kind: "reset" },
} as const;

// --- the property ---------------------------------------------------------------------------------------

type Scenario = { steps: Step[]; nodeTtlMs: number; fieldSelectorMax: number };

/** Runs a timeline, failing on any answer the reference does not accept; returns the answers, step by step. */
async function check({ steps, nodeTtlMs, fieldSelectorMax }: Scenario): Promise<string[][]> {
  await server.setFault(null);
  server.store.clear();
  server.counts.reset();
  const cluster = new Cluster();
  const clock = { t: T0 };
  const clusterName = `diff-${++run}`;
  const history = new DynamoHolderHistory({
    client: store.client,
    tableName: store.tableName,
    now: () => clock.t,
  });
  const kc = loadKubeconfig({ kubeconfig: server.kubeconfigPath });
  const make = () =>
    new LiveDirectory({
      kubeConfig: () => kc,
      cluster: clusterName,
      history,
      timeoutMs: 1_000,
      nodeTtlMs,
      fieldSelectorMax,
      fixes: KUBECONFIG_FIXES,
      now: () => clock.t,
    });
  const dir = make();
  const asked: { lookup: Lookup; answer: string; ideal: string }[] = [];
  const byStep: string[][] = [];

  for (const step of steps) {
    const base = clock.t;
    const now = base + STEP;
    for (const a of [...step.actions].sort((x, y) => x.offset - y.offset)) {
      cluster.apply(a, base + a.offset * S);
    }
    clock.t = now;
    const times = cluster.interestingTimes(now);
    const holders = cluster.ref.holders;
    const lookups = step.queries.map((q) => {
      const h = holders[q.time % Math.max(1, holders.length)];
      if (q.aim !== true || h === undefined) {
        return {
          ip: ALL_IPS[q.ip % ALL_IPS.length] as string,
          at: Math.min(now, (times[q.time % times.length] as number) + q.shift * S),
        };
      }
      const around = h.deleted !== null && q.ip % 2 === 1 ? h.deleted : h.created;
      return { ip: h.ips[q.ip % h.ips.length] as string, at: Math.min(now, around + q.shift * S) };
    });
    if (step.fault !== null) await server.setFault(FAULTS[step.fault]);
    server.counts.reset();
    const answers = await dir.resolve(lookups);
    cluster.recordLooks(now);
    byStep.push(answers.map(label));
    const failing = step.fault !== null;
    const explain = (ip: string, at: number, answer: string) =>
      `${ip} at ${(at - T0) / S} s, asked at ${(now - T0) / S} s: directory said ${answer}, the rules say ` +
      `${cluster.ref.ideal(ip, at)}\nholders: ${JSON.stringify(
        cluster.ref
          .holding(ip)
          .map((h) => [h.answer, (h.created - T0) / S, h.deleted === null ? null : (h.deleted - T0) / S]),
      )}\nlooks: ${JSON.stringify(cluster.ref.observations.map((o) => [(o.at - T0) / S, o.what, o.ip]))}`;

    // The hit and miss lifetimes (30 s) are shorter than a step: a line newer than the last step needs a look
    // now, and the node list is refreshed once older than its lifetime.
    if (!failing && lookups.some((l) => l.at > now - STEP)) {
      const lists = cluster.ref.observations.filter((o) => o.what === "nodes" && now - o.at <= nodeTtlMs);
      expect(lists.length, `no node list within ${nodeTtlMs} ms of ${(now - T0) / S} s`).toBeGreaterThan(0);
    }
    for (const { ip, at } of lookups) {
      if (failing || at <= now - STEP) continue;
      const looked = cluster.ref.observations.some(
        (o) => o.at === now && (o.what === "full" || (o.what === "field" && o.ip === ip)),
      );
      expect(looked, `${ip} at ${(at - T0) / S} s answered at ${(now - T0) / S} s without a look`).toBe(true);
    }

    lookups.forEach((lookup, i) => {
      const answer = label(answers[i] as Resolution);
      if (cluster.ref.accepts(lookup.ip, lookup.at, now, answer, failing) === undefined) {
        expect.fail(explain(lookup.ip, lookup.at, answer));
      }
      asked.push({ lookup, answer, ideal: cluster.ref.ideal(lookup.ip, lookup.at) });
    });

    // Spans ending at the same lines: one holder throughout only where it is acceptable at every second.
    const spans = lookups.slice(0, 2).map((l) => ({ ...l, at: l.at - 20 * S, until: l.at }));
    const spanAnswers = await dir.resolveSpans(spans);
    if (failing) await server.setFault(null);
    cluster.recordLooks(now);
    spans.forEach((span, i) => {
      const answer = spanAnswers[i] as SpanResolution;
      if (answer.status === "varies") return;
      const text = label(answer);
      for (let t = span.at; t <= span.until; t += S) {
        if (cluster.ref.accepts(span.ip, t, now, text, failing) === undefined) {
          expect.fail(`span ${(span.at - T0) / S}–${(span.until - T0) / S} s: ${explain(span.ip, t, text)}`);
        }
      }
    });
  }

  // A new container (cold start, backfill) with the same history: what the first one answered rightly
  // about a holder still resolves; nothing is ever a holder created after the line or foreign to the IP.
  clock.t += STEP;
  const cold = make();
  const coldAnswers = (await cold.resolve(asked.map((a) => a.lookup))).map(label);
  asked.forEach(({ lookup, answer, ideal }, i) => {
    const coldAnswer = coldAnswers[i] as string;
    const context = `${lookup.ip} at ${(lookup.at - T0) / S} s: cold container said ${coldAnswer}, first said ${answer}, the rules say ${ideal}`;
    if (answer === ideal && ideal !== "absent") expect(coldAnswer, context).toBe(ideal);
    if (coldAnswer.startsWith("pod:") || coldAnswer.startsWith("node:")) {
      const candidates = cluster.ref
        .holding(lookup.ip)
        .filter((h) => h.answer === coldAnswer && h.created <= lookup.at);
      expect(candidates.length, context).toBeGreaterThan(0);
    } else {
      expect(["absent"], context).toContain(coldAnswer);
    }
  });
  return byStep;
}

const act = (kind: ActionKind, offset: number, pick = 0): Action => ({
  kind,
  pick,
  dual: false,
  v6First: false,
  offset,
});
/** Indexes into ALL_IPS. */
const POD_IP = 0;
const NODE_IP = POD_V4.length + POD_V6.length;

it("answers every (ip, time) as the documented rules do, or as they allow when the API cannot know", async () => {
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (scenario) => {
      await check(scenario);
    }),
    { numRuns: Number(process.env.DIFF_RUNS ?? 40) },
  );
}, 60_000);

it("asks the pod view about an address a listed node holds: an EKS Fargate pod wins over its node", async () => {
  const answers = await check({
    nodeTtlMs: 30_000,
    fieldSelectorMax: 5,
    steps: [
      // Nobody holds the address yet; the directory lists nodes and asks about it.
      { actions: [], fault: null, queries: [{ ip: NODE_IP, time: 0, shift: 0 }] },
      // A Fargate pod and its node appear with that address; asked now, and just before they appeared.
      {
        actions: [act("fargate", 1)],
        fault: null,
        queries: [
          { ip: NODE_IP, time: 2, shift: 0 },
          { ip: NODE_IP, time: 1, shift: -1 },
        ],
      },
    ],
  });
  expect(answers).toEqual([["absent"], ["pod:p1", "absent"]]);
});

it.each([
  ["stopped", "down"],
  ["answering 500", "500"],
  ["dropping connections", "reset"],
] as const)(
  "answers unavailable while the API server is %s, never a holder it cannot vouch for, and recovers",
  async (_, fault) => {
    const answers = await check({
      nodeTtlMs: 30_000,
      fieldSelectorMax: 5,
      steps: [
        {
          actions: [act("pod", 1), act("node", 2)],
          fault: null,
          queries: [
            { ip: POD_IP, time: 3, shift: 0 },
            { ip: NODE_IP, time: 3, shift: 0 },
          ],
        },
        // While the API fails, p1 goes and p4 gets its address: lines of now cannot be vouched for (nor, as an
        // address is asked about once per payload, the older line of the same address).
        {
          actions: [act("delete", 10), act("pod", 20)],
          fault,
          queries: [
            { ip: POD_IP, time: 5, shift: 0 },
            { ip: POD_IP, time: 1, shift: 30 },
            { ip: NODE_IP, time: 5, shift: 0 },
          ],
        },
        // Back: now p4; between p1's deletion and p4's creation (within the end tolerance) p1; after it p4.
        {
          actions: [],
          fault: null,
          queries: [
            { ip: POD_IP, time: 5, shift: 0 },
            { ip: POD_IP, time: 3, shift: 5 },
            { ip: POD_IP, time: 4, shift: 5 },
            { ip: NODE_IP, time: 5, shift: 0 },
          ],
        },
      ],
    });
    expect(answers).toEqual([
      ["pod:p1", "node:n2"],
      ["unavailable", "unavailable", "unavailable"],
      ["pod:p4", "pod:p1", "pod:p4", "node:n2"],
    ]);
  },
);
