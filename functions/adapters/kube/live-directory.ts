// Attribution through the live Kubernetes API (DESIGN.md §4), gentle on the API server: an in-memory index
// per warm container, a field-selector lookup per unknown IP when few are unknown, one paginated full list
// when many are and then a one-second watch from its version for the changes since, nodes listed separately,
// and a HolderHistory for lines older than what the API can still tell. Lists are read an item at a time,
// keeping only what holders are made of (list-reader.ts). Kubernetes trouble never throws: the affected lookups
// answer `unavailable` and later calls recover.
import type { Configuration, KubeConfig } from "@kubernetes/client-node";
import {
  HolderIndex,
  holderKey,
  holderThroughout,
  hostNetworkNodeHolders,
  type IpHolder,
  MalformedObjectError,
  mergeHolders,
  namespaceLabels,
  nodeToHolders,
  normalizeIp,
  pickHolder,
  podToHolders,
  VARIES,
} from "../../core/holders.ts";
import type { HolderHistory } from "../../core/ports.ts";
import type {
  Holder,
  IpDirectory,
  Lookup,
  Resolution,
  SpanLookup,
  SpanResolution,
} from "../../core/types.ts";
import {
  type AccessFixes,
  DEFAULT_TIMEOUT_MS,
  describeKubeError,
  EKS_FIXES,
  formatFailure,
  type KubeFailure,
  kubeConfiguration,
  retryAfterMs,
  withDeadline,
} from "./cluster-access.ts";
import { type LeanWatchEvent, leanNamespace, leanNode, leanPod, listLean, watchLean } from "./list-reader.ts";

/** Powertools' Logger fits this. */
export interface DirectoryLogger {
  warn(message: string, ...details: Record<string, unknown>[]): void;
}

export interface LiveDirectoryOptions {
  /** Called per payload; EKS (`eksKubeConfig`) or a kubeconfig (`loadKubeconfig`). */
  kubeConfig: () => KubeConfig | Promise<KubeConfig>;
  /** Cluster name under which holders are remembered. */
  cluster: string;
  history?: HolderHistory;
  /** Namespace labels carried into flows (e.g. an organisation label). */
  namespaceLabelKeys?: readonly string[];
  /**
   * Deadline of every Kubernetes request's answer, asking again after a 429/5xx's Retry-After included (plus a
   * second for loading the KubeConfig and signing the token), and of each silence of its body: not of the whole
   * body, which for a full pod list of a large cluster is hundreds of MB (resolveBudgetMs bounds the wait for it).
   * @default 5000
   */
  timeoutMs?: number;
  /** What 401/403 logs tell the operator to do. @default EKS_FIXES (the Lambda function role) */
  fixes?: AccessFixes;
  logger?: DirectoryLogger;
  /**
   * How long a seen holder answers for newer lines without asking again: a pod replaced meanwhile whose IP
   * went to a new pod is only noticed after this. @default 30 s
   */
  hitTtlMs?: number;
  /** How long "nobody holds this IP" answers for newer lines. @default 30 s */
  missTtlMs?: number;
  /** Node list lifetime. @default 5 min */
  nodeTtlMs?: number;
  /** Namespace label lifetime. @default 5 min */
  namespaceTtlMs?: number;
  /**
   * Up to this many unknown IPs in a payload are looked up one by one, more refresh the whole pod view (a full list,
   * or a catch-up watch after one). @default 5
   */
  fieldSelectorMax?: number;
  /**
   * After a failed refresh of the whole pod view (a full list or a catch-up watch), none again for this long; must
   * not exceed missTtlMs. @default 30 s
   */
  fullListIntervalMs?: number;
  /** Items per page of a full list. @default 500 */
  pageSize?: number;
  /** Parallel Kubernetes or history requests. @default 4 */
  concurrency?: number;
  /** Ended holders stay in memory this long (the history keeps them for good). @default 1 h */
  retainEndedMs?: number;
  /** Longest pause of API calls after failures (doubling from 1 s, at least a Retry-After). @default 60 s */
  maxBackoffMs?: number;
  /** Deadline of a history read or write; a slow history must not hold up the payload. @default 10 s */
  historyTimeoutMs?: number;
  /**
   * Longest a resolve or resolveSpans call takes from the start of its own work (from the call, behind one that ran
   * out of its budget): its lookups are then `unavailable` (but for what fresh memory answers), stored unresolved,
   * while the work goes on for later calls. Each request has its own
   * deadlines, but a full list is many pages, or one page of every pod that takes what it takes to come, and a
   * payload may read the history for many addresses: without this, a slow API server could hold a payload past the
   * function's timeout. @default 20 s
   */
  resolveBudgetMs?: number;
  now?: () => number;
}

/** Cumulative counters, for the handler's metrics. */
export interface LiveDirectoryStats {
  lookups: number;
  /** Lookups answered from memory, with no Kubernetes call. */
  hits: number;
  /** Lookups whose IP needed a Kubernetes call. */
  misses: number;
  found: number;
  absent: number;
  unavailable: number;
  /** Kubernetes requests made (each page of a list counts). */
  apiCalls: number;
  apiErrors: number;
  podQueries: number;
  fullLists: number;
  /** Pod views brought up to date by a catch-up watch instead of a full list. */
  catchUps: number;
  nodeLists: number;
  namespaceLists: number;
  historyReads: number;
  /** Lookups only the history could answer. */
  historyFound: number;
  historyWrites: number;
  historyErrors: number;
  /** Objects skipped because they could not be read. */
  malformed: number;
  /** Calls answered `unavailable` at resolveBudgetMs (their lookups are counted again when their work ends). */
  overBudget: number;
}

interface IpGroup {
  maxAt: number;
}

interface HistoryEntry {
  /** The history's holders for lines of [from, upTo]. */
  from: number;
  upTo: number;
  holders: Holder[];
  fetchedAt: number;
}

const LOG_EVERY_MS = 60_000;
/** Shortest wait before asking again after a Retry-After (of "0", or a date already past). */
const MIN_RETRY_WAIT_MS = 1_000;
/** Secondary addresses remembered (#secondary) before starting over; a full list rebuilds them. */
const MAX_SECONDARY_IPS = 100_000;
/**
 * A catch-up watch's timeoutSeconds: the API server sends the changes since the version asked at once and ends the
 * watch after this, whether or not they were all out. Its silence must fit in a request's deadline (timeoutMs), with
 * a second to spare: a directory with a shorter one lists in full.
 */
const CATCH_UP_SECONDS = 1;
/**
 * How much sooner than CATCH_UP_SECONDS after its answer a watch may end and still be one the server ended at its
 * timeout: the server's timer starts before its answer reaches the client (sooner still behind a proxy that holds the
 * headers back), while an API server going away ends a watch at once.
 */
const WATCH_CLOCK_SLACK_MS = 500;
/**
 * A catch-up watch whose last event came this long before its end had sent its backlog: a watch cache sends it at
 * once, and a server still sending when the watch ended sent its last event just before.
 */
const CAUGHT_UP_QUIET_MS = 500;
/** Watches of one catch-up, each going on from the last event of the one before, before a full list does instead. */
const CATCH_UP_WATCHES = 3;
/** Calls in a row in which a read at a resource's version floor was answered "Too large resource version". */
const TOO_LARGE_BEFORE_RESET = 3;

async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function emptyStats(): LiveDirectoryStats {
  return {
    lookups: 0,
    hits: 0,
    misses: 0,
    found: 0,
    absent: 0,
    unavailable: 0,
    apiCalls: 0,
    apiErrors: 0,
    podQueries: 0,
    fullLists: 0,
    catchUps: 0,
    nodeLists: 0,
    namespaceLists: 0,
    historyReads: 0,
    historyFound: 0,
    historyWrites: 0,
    historyErrors: 0,
    malformed: 0,
    overBudget: 0,
  };
}

class ApiPaused extends Error {}

/** The resources whose lists end holders: what they were read at is kept so that no later read is older. */
type VersionedResource = "pods" | "nodes";

/** What the directory lists: where, and what it keeps of each item (all that holders.ts reads). */
const LISTS = {
  pods: { path: "/api/v1/pods", pick: leanPod },
  nodes: { path: "/api/v1/nodes", pick: leanNode },
  namespaces: { path: "/api/v1/namespaces", pick: leanNamespace },
} as const;

/** List options of one page (`limit`/`continue`, and the first page's resourceVersion semantics). */
interface ListPage {
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

/**
 * Whether resourceVersion `a` is newer than `b`. Resource versions are etcd revisions, decimal integers,
 * however opaque the API calls them; anything else counts as newer, being the later answer.
 */
function newerVersion(a: string, b: string): boolean {
  return compareVersions(a, b) ?? true;
}

/** Whether revision `a` is newer than `b`, or undefined when either is no decimal integer. */
function compareVersions(a: string, b: string): boolean | undefined {
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return undefined;
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  return x.length !== y.length ? x.length > y.length : x > y;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What tells a pod's watch events from another pod's: its uid, else (malformed) its namespace and name. */
function podIdentity(pod: unknown): string {
  const m = (pod as { metadata?: { uid?: unknown; namespace?: unknown; name?: unknown } } | null)?.metadata;
  return typeof m?.uid === "string" ? m.uid : `${String(m?.namespace)}/${String(m?.name)}`;
}

/** The uid of the pod a holder of the pod view comes from (a hostNetwork pod's node holder included). */
function podUidOf(holder: Holder): string | undefined {
  return holder.uid?.replace(/^hostNetwork:/, "");
}

/** Whether a failed read at a version floor was refused for a version the API server has not reached. */
function tooLargeVersion(failure: KubeFailure): boolean {
  return failure.status === 504 && failure.message.includes("Too large resource version");
}

/** A pod's own IPs, or for a hostNetwork pod its node's. */
function podHolders(pod: unknown): IpHolder[] {
  return [...podToHolders(pod), ...hostNetworkNodeHolders(pod)];
}

/** The pod's `status.podIP`, normalised: the only address a `status.podIP=` field selector finds it by. */
function primaryIpOf(pod: unknown): string | undefined {
  const ip = (pod as { status?: { podIP?: unknown } } | null)?.status?.podIP;
  return typeof ip === "string" && ip !== "" ? normalizeIp(ip) : undefined;
}

export class LiveDirectory implements IpDirectory {
  readonly #kubeConfig: LiveDirectoryOptions["kubeConfig"];
  readonly #cluster: string;
  readonly #history: HolderHistory | undefined;
  readonly #labelKeys: readonly string[];
  readonly #timeoutMs: number;
  readonly #fixes: AccessFixes;
  readonly #logger: DirectoryLogger | undefined;
  readonly #hitTtl: number;
  readonly #missTtl: number;
  readonly #nodeTtl: number;
  readonly #namespaceTtl: number;
  readonly #fieldSelectorMax: number;
  readonly #fullListInterval: number;
  readonly #pageSize: number;
  readonly #concurrency: number;
  readonly #retainEnded: number;
  readonly #maxBackoff: number;
  readonly #historyTimeout: number;
  readonly #resolveBudget: number;
  readonly #now: () => number;

  readonly #pods = new HolderIndex();
  /** When each IP was last asked about on its own (field selector). */
  readonly #checkedAt = new Map<string, number>();
  /**
   * Start of the last complete pod view (a full list, or a catch-up watch after one): every IP not in the index was
   * free then.
   */
  #fullListAt: number | undefined;
  /** When that view came: the TTLs of the lines newer than its start count from then (#podsFresh). */
  #fullListLandedAt: number | undefined;
  /** The resourceVersion the pod view is complete at: a watch from it catches the view up (#catchUp). */
  #podsVersion: string | undefined;
  /** The API server refused to watch pods (403, an older deploy/rbac.yaml): full lists only, in this container. */
  #watchForbidden = false;
  /**
   * Per pod uid, the addresses the pod view last saw it at: a catch-up ends its holders at those its new state no
   * longer shows (a sandbox recreated keeps the uid, not the address), as a full list ends what it does not show.
   */
  readonly #podIps = new Map<string, string[]>();
  /**
   * The first look within the last retainEndedMs at each IP on its own, and the first complete pod list: with the
   * latest ones, when this container saw who held an address (#seenSince).
   */
  readonly #firstCheckedAt = new Map<string, number>();
  #firstFullListAt: number | undefined;
  #fullListAttemptAt: number | undefined;
  readonly #nodes = new HolderIndex();
  #nodesAt: number | undefined;
  #nodesAttemptAt: number | undefined;
  readonly #namespaceLabels = new Map<string, Record<string, string>>();
  /**
   * Per IP, the holders that hold it besides their pod's primary IP (a dual-stack pod's second address). A
   * `status.podIP=` query cannot see them, so its empty answer must not end them; a full list can.
   */
  readonly #secondary = new Map<string, Set<string>>();
  #namespacesAt: number | undefined;
  #namespacesAttemptAt: number | undefined;
  readonly #historyCache = new Map<string, HistoryEntry>();
  /** `ip|holder` → validTo last written to the history. */
  readonly #remembered = new Map<string, number | null>();
  #toRemember: IpHolder[] = [];

  #prunedAt: number | undefined;
  /**
   * Per resource, the newest list resourceVersion seen: later reads ask for data not older than it, so that an
   * API server whose watch cache lags cannot take back what a fresher one showed (and end holders it saw alive).
   */
  readonly #versions = new Map<VersionedResource, string>();
  /**
   * Per resource, the calls in a row in which a read at its floor was answered "Too large resource version", and the
   * last of them (#calls): requests side by side, refused together, count once.
   */
  readonly #tooLarge = new Map<VersionedResource, { calls: number; last: number }>();
  /** resolve and resolveSpans calls whose work started. */
  #calls = 0;
  #pausedUntil = 0;
  /** Until when the API server asked not to be asked again (Retry-After); a success elsewhere does not end it. */
  #throttledUntil = 0;
  #backoff = 0;
  #lastFailure: KubeFailure | undefined;
  readonly #loggedAt = new Map<string, number>();
  #client: { kc: KubeConfig; api: Configuration } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Calls answered at their budget whose work still runs. */
  #abandoned = 0;
  /** Starts the budget of each call still waiting for its turn. */
  readonly #waiting = new Set<() => void>();
  readonly #stats = emptyStats();

  constructor(options: LiveDirectoryOptions) {
    this.#kubeConfig = options.kubeConfig;
    this.#cluster = options.cluster;
    this.#history = options.history;
    this.#labelKeys = options.namespaceLabelKeys ?? [];
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#fixes = options.fixes ?? EKS_FIXES;
    this.#logger = options.logger;
    this.#hitTtl = options.hitTtlMs ?? 30_000;
    this.#missTtl = options.missTtlMs ?? 30_000;
    this.#nodeTtl = options.nodeTtlMs ?? 5 * 60_000;
    this.#namespaceTtl = options.namespaceTtlMs ?? 5 * 60_000;
    this.#fieldSelectorMax = options.fieldSelectorMax ?? 5;
    this.#fullListInterval = options.fullListIntervalMs ?? 30_000;
    this.#pageSize = options.pageSize ?? 500;
    this.#concurrency = options.concurrency ?? 4;
    this.#retainEnded = options.retainEndedMs ?? 3600_000;
    this.#maxBackoff = options.maxBackoffMs ?? 60_000;
    this.#historyTimeout = options.historyTimeoutMs ?? 10_000;
    this.#resolveBudget = options.resolveBudgetMs ?? 20_000;
    this.#now = options.now ?? Date.now;
    const positive: [string, number][] = [
      ["timeoutMs", this.#timeoutMs],
      ["hitTtlMs", this.#hitTtl],
      ["missTtlMs", this.#missTtl],
      ["nodeTtlMs", this.#nodeTtl],
      ["namespaceTtlMs", this.#namespaceTtl],
      ["pageSize", this.#pageSize],
      ["concurrency", this.#concurrency],
      ["historyTimeoutMs", this.#historyTimeout],
      ["resolveBudgetMs", this.#resolveBudget],
    ];
    for (const [name, value] of positive) {
      if (!Number.isFinite(value) || value <= 0) {
        throw new RangeError(`${name} must be positive, got ${value}`);
      }
    }
    if (!Number.isInteger(this.#fieldSelectorMax) || this.#fieldSelectorMax < 0) {
      throw new RangeError(`fieldSelectorMax must be a non-negative integer, got ${this.#fieldSelectorMax}`);
    }
    // A full list proves presence for hitTtl and absence for missTtl; if it could not run again before either
    // ran out, many IPs would have no way to be answered.
    if (this.#fullListInterval > this.#missTtl) {
      throw new RangeError(
        `fullListIntervalMs (${this.#fullListInterval}) must not exceed missTtlMs (${this.#missTtl})`,
      );
    }
    if (this.#fullListInterval > this.#hitTtl) {
      throw new RangeError(
        `fullListIntervalMs (${this.#fullListInterval}) must not exceed hitTtlMs (${this.#hitTtl})`,
      );
    }
  }

  stats(): LiveDirectoryStats {
    return { ...this.#stats };
  }

  /** Every address this directory has seen held, by a pod or a node (for diagnostics). */
  ips(): string[] {
    return [...new Set([...this.#pods.ips(), ...this.#nodes.ips()])];
  }

  /** The holders this directory knows of `ip` (for diagnostics). */
  holders(ip: string): Holder[] {
    return [...this.#pods.holders(ip), ...this.#nodes.holders(ip)];
  }

  /** Answers in the order of `lookups`; never rejects. Payloads of one container are resolved one at a time. */
  resolve(lookups: readonly Lookup[]): Promise<Resolution[]> {
    return this.#enqueue(lookups) as Promise<Resolution[]>;
  }

  /**
   * As resolve, for spans: an address's holder when the live view has one holder throughout the span, else
   * "varies" — also when it has none, so that the caller's per-time lookups reach the history as usual.
   */
  resolveSpans(spans: readonly SpanLookup[]): Promise<SpanResolution[]> {
    return this.#enqueue(spans);
  }

  #enqueue(queries: readonly (Lookup | SpanLookup)[]): Promise<SpanResolution[]> {
    // A call's budget starts with its own work: callers sharing the directory (a backfill's streams) wait their
    // turn without it. Behind a call that ran out of its budget, whose work goes on, the wait counts too.
    let startBudget = () => {};
    const budgetStarted = new Promise<void>((resolve) => {
      startBudget = resolve;
    });
    if (this.#abandoned > 0) startBudget();
    else this.#waiting.add(startBudget);
    const call = { answered: false };
    const run = this.#queue.then(() => {
      this.#waiting.delete(startBudget);
      // Answered at its budget before its turn came: nobody reads its answers, and behind a slow API or history
      // every later call would be, so doing its work would only queue up more of it. The next call asks afresh.
      if (call.answered) return [];
      startBudget();
      return this.#resolveSafely(queries);
    });
    this.#queue = run.catch(() => undefined);
    return this.#withinBudget(run, budgetStarted, queries, call);
  }

  /**
   * `run`'s answers, or `count` times `unavailable` once resolveBudgetMs has passed since `started` (run goes on
   * meanwhile, and the calls waiting behind it start counting their budgets).
   */
  async #withinBudget(
    run: Promise<SpanResolution[]>,
    started: Promise<void>,
    queries: readonly (Lookup | SpanLookup)[],
    call: { answered: boolean },
  ): Promise<SpanResolution[]> {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const late = started.then(
      () =>
        new Promise<undefined>((resolve) => {
          if (!settled) timer = setTimeout(() => resolve(undefined), this.#resolveBudget);
        }),
    );
    try {
      const answers = await Promise.race([run, late]);
      if (answers !== undefined) return answers;
    } finally {
      settled = true;
      clearTimeout(timer);
    }
    this.#stats.overBudget++;
    call.answered = true;
    this.#abandoned++;
    run
      .finally(() => {
        this.#abandoned--;
      })
      .catch(() => undefined);
    for (const start of this.#waiting) start();
    this.#waiting.clear();
    const reason = `attribution not done within ${this.#resolveBudget} ms: the Kubernetes API or the holder history is slow; stored unresolved`;
    this.#warn("budget", reason, {});
    return queries.map((q) => this.#fromMemory(q) ?? { status: "unavailable", reason });
  }

  /**
   * What memory alone answers for `q`, as #resolve would without asking anyone: a holder still alive in a view fresh
   * enough for the line (#podsFresh). Anything else (no holder, one seen to end, a view too old) is undefined.
   */
  #fromMemory(q: Lookup | SpanLookup): SpanResolution | undefined {
    const ip = normalizeIp(q.ip);
    const until = (q as Partial<SpanLookup>).until;
    if (!this.#podsFresh(ip, until ?? q.at)) return undefined;
    const live = mergeHolders(this.#pods.holders(ip), this.#nodes.holders(ip));
    const picked = until === undefined ? pickHolder(live, q.at) : holderThroughout(live, q.at, until);
    if (picked === undefined || picked === VARIES || picked.validTo !== null) return undefined;
    this.#stats.hits++;
    return { status: "found", holder: this.#labelled(picked) };
  }

  async #resolveSafely(lookups: readonly (Lookup | SpanLookup)[]): Promise<SpanResolution[]> {
    try {
      return await this.#resolve(lookups);
    } catch (error) {
      const reason = `attribution failed: ${(error as Error)?.message ?? String(error)}`;
      this.#warn("internal", reason, {});
      this.#stats.unavailable += lookups.length;
      return lookups.map(() => ({ status: "unavailable", reason }));
    }
  }

  async #resolve(lookups: readonly (Lookup | SpanLookup)[]): Promise<SpanResolution[]> {
    this.#calls++;
    this.#stats.lookups += lookups.length;
    this.#housekeeping();
    const groups = new Map<string, IpGroup>();
    for (const l of lookups) {
      const ip = normalizeIp(l.ip);
      const last = (l as Partial<SpanLookup>).until ?? l.at;
      const g = groups.get(ip);
      if (g === undefined) groups.set(ip, { maxAt: last });
      else if (last > g.maxAt) g.maxAt = last;
    }

    // 1. What memory cannot answer needs the API: nodes first (one call), then pods. A node holding the IP is
    // not enough: a pod that is not hostNetwork and holds its node's address (EKS Fargate) wins over the node,
    // and only the pod view can tell.
    const fromMemory = new Set<string>();
    for (const [ip, g] of groups) if (this.#podsFresh(ip, g.maxAt)) fromMemory.add(ip);
    const hits = new Set(fromMemory);
    const failed = new Map<string, string>();
    const needPods = [...groups.keys()].filter((ip) => !fromMemory.has(ip));
    if (needPods.length > 0 && this.#nodesDue()) await this.#refreshNodes();
    // A pod's second address is in no `status.podIP=` answer: only a full list can refresh or end it.
    if (needPods.length > this.#fieldSelectorMax || needPods.some((ip) => this.#secondary.has(ip))) {
      await this.#refreshPods(needPods, failed);
    } else if (needPods.length > 0) {
      await forEachLimit(needPods, this.#concurrency, (ip) => this.#queryIp(ip, failed));
    }
    for (const l of lookups) {
      if (hits.has(normalizeIp(l.ip))) this.#stats.hits++;
      else this.#stats.misses++;
    }

    // 2. Live answers; the history for lines the live view has no holder for.
    const live = new Map<string, Holder[]>();
    for (const ip of groups.keys()) {
      live.set(ip, mergeHolders(this.#pods.holders(ip), this.#nodes.holders(ip)));
    }
    const answers = lookups.map((l) => {
      const ip = normalizeIp(l.ip);
      const until = (l as Partial<SpanLookup>).until;
      if (until === undefined)
        return { ip, at: l.at, holder: pickHolder(live.get(ip) ?? [], l.at), varies: false, until: l.at };
      const throughout = holderThroughout(live.get(ip) ?? [], l.at, until);
      // An ended holder is asked about per time, which reads the history (below).
      const holder = throughout === VARIES || this.#unsure(throughout) ? undefined : throughout;
      return { ip, at: l.at, holder, varies: holder === undefined, until };
    });
    // The history, for lines the live view has no holder for, or only one it has seen end: the moment it saw it
    // gone is an upper bound, and another container may have seen the address go on to a newer pod meanwhile.
    const historyWanted = new Map<string, { from: number; upTo: number }>();
    for (const { ip, at, holder, varies } of answers) {
      if (varies || failed.has(ip) || (holder !== undefined && !this.#unsure(holder))) continue;
      const range = historyWanted.get(ip);
      if (range === undefined) historyWanted.set(ip, { from: at, upTo: at });
      else {
        range.from = Math.min(range.from, at);
        range.upTo = Math.max(range.upTo, at);
      }
    }
    const historyFailed = await this.#readHistory(historyWanted);

    // 3. Namespace labels for the pods about to be answered.
    if (this.#labelKeys.length > 0) {
      const namespaces = new Set(
        answers.flatMap((a) =>
          a.holder?.kind === "pod" && a.holder.namespace !== null ? [a.holder.namespace] : [],
        ),
      );
      await this.#refreshNamespaces(namespaces);
    }

    // 4. Resolutions.
    // Per address, once: the live view's holders and the history's, as this container's looks leave them.
    const merged = new Map<string, Holder[]>();
    const withHistory = (ip: string): Holder[] => {
      let holders = merged.get(ip);
      if (holders === undefined) {
        const liveHolders = live.get(ip) ?? [];
        const remembered = this.#seenSince(ip, liveHolders, this.#historyCache.get(ip)?.holders ?? []);
        holders = mergeHolders(liveHolders, remembered);
        merged.set(ip, holders);
      }
      return holders;
    };
    const resolutions = answers.map(({ ip, at, holder, varies }): SpanResolution => {
      const failure = failed.get(ip);
      if (failure !== undefined) return { status: "unavailable", reason: failure };
      if (varies) return { status: "varies" };
      const found = (h: Holder): SpanResolution => {
        const withLabels = this.#labelled(h);
        this.#rememberLater(ip, withLabels);
        return { status: "found", holder: withLabels };
      };
      if (historyWanted.has(ip) && !historyFailed.has(ip)) {
        const picked = pickHolder(withHistory(ip), at);
        if (picked !== undefined && picked === holder) return found(picked);
        if (picked !== undefined) {
          this.#stats.historyFound++;
          return { status: "found", holder: picked };
        }
        return { status: "absent" };
      }
      // A live holder the history could not be read for is still the best answer there is.
      if (holder !== undefined) return found(holder);
      const historyFailure = historyFailed.get(ip);
      if (historyFailure !== undefined) return { status: "unavailable", reason: historyFailure };
      return { status: "absent" };
    });
    for (const r of resolutions) if (r.status !== "varies") this.#stats[r.status]++;
    await this.#writeHistory();
    return resolutions;
  }

  /**
   * Whether a live holder's answer needs the history: it has ended in this view (a deletion time, or the moment
   * this container saw it gone), so a newer holder this container never saw may have taken the address since.
   */
  #unsure(holder: Holder | undefined): boolean {
    return holder !== undefined && holder.validTo !== null && this.#history !== undefined;
  }

  /**
   * The history's holders, ended where a look of this container at `ip` did not find them after a directory saw them
   * hold it (`seenAt`): a look finds every pod holding the address as its primary one, hostNetwork pods included
   * (see docs/architecture.md for a dual-stack pod's second address), and a full list every pod. Only looks of the
   * last retainEndedMs count: the index may have forgotten since what an older one saw. The history may have no end
   * for a holder whose container was recycled before it saw it go.
   */
  #seenSince(ip: string, live: readonly Holder[], remembered: readonly Holder[]): Holder[] {
    const recent = this.#now() - this.#retainEnded;
    const looks = [
      this.#firstCheckedAt.get(ip),
      this.#checkedAt.get(ip),
      this.#firstFullListAt,
      this.#fullListAt,
    ].filter((t): t is number => t !== undefined && t >= recent);
    const inView = new Set(live.map(holderKey));
    return remembered.map((item) => {
      // Versions before seenAt (a6de762 and earlier) wrote holders without it, when a look showed them: such a holder
      // held the address from its validFrom on, and those versions ended it at the first look that did not show it.
      // Without a seenAt, an open holder would count as holding the address now (holders.ts, heldUntil).
      const seenAt = item.seenAt ?? item.validFrom;
      const h = item.seenAt === seenAt ? item : { ...item, seenAt };
      // Node-list holders are not what a pod look finds.
      const fromPods = h.kind === "pod" || (h.kind === "node" && h.uid?.startsWith("hostNetwork:") === true);
      if (!fromPods || inView.has(holderKey(h))) return h;
      // The first look after it was seen holding the address that did not show it.
      let gone: number | undefined;
      for (const t of looks) if (t > seenAt && (gone === undefined || t < gone)) gone = t;
      return gone !== undefined && (h.validTo === null || h.validTo > gone) ? { ...h, validTo: gone } : h;
    });
  }

  // --- freshness ----------------------------------------------------------------------------------------

  #nodesFresh(): boolean {
    return this.#nodesAt !== undefined && this.#now() - this.#nodesAt <= this.#nodeTtl;
  }

  /**
   * Whether the pod view of `ip` answers lines up to `maxAt`. Lines no newer than the last look are always
   * answered: the API only knows the present, so asking again could not tell more about the past (that is
   * the history's part). Newer lines are answered for the hit TTL (a holder was alive) or the miss TTL (nobody
   * was) after the look came: a full list that took longer than the TTL to come would otherwise never answer one.
   * Its view is as old as its start, so the TTL counts from its arrival for at most another TTL: a view is used at
   * most twice the TTL after it was taken (a catch-up watch, a second, comes within a second of its start).
   */
  #podsFresh(ip: string, maxAt: number): boolean {
    const checked = this.#checkedAt.get(ip) ?? Number.NEGATIVE_INFINITY;
    const listed = this.#fullListAt ?? Number.NEGATIVE_INFINITY;
    const knownAt = Math.max(checked, listed);
    if (knownAt === Number.NEGATIVE_INFINITY) return false;
    if (maxAt <= knownAt) return true;
    const alive = this.#pods.holders(ip).some((h) => h.validTo === null);
    const ttl = alive ? this.#hitTtl : this.#missTtl;
    // A field-selector query takes one request's time: it counts from its start.
    const came = checked >= listed ? checked : (this.#fullListLandedAt ?? listed);
    return this.#now() <= Math.min(came, knownAt + ttl) + ttl;
  }

  /** Nodes are listed when stale, but a failed list is retried only after missTtl. */
  #nodesDue(): boolean {
    if (this.#nodesFresh()) return false;
    return this.#nodesAttemptAt === undefined || this.#now() - this.#nodesAttemptAt >= this.#missTtl;
  }

  // --- Kubernetes calls ---------------------------------------------------------------------------------

  async #api(): Promise<Configuration> {
    const kc = await this.#kubeConfig();
    if (this.#client === undefined || this.#client.kc !== kc) {
      this.#client = { kc, api: kubeConfiguration(kc, this.#timeoutMs) };
    }
    return this.#client.api;
  }

  /**
   * One request under the deadline and the pause after failures; throws KubeFailure-bearing errors. A 429 or
   * 5xx answer with a Retry-After is asked again once that wait has passed, if the answer can still come within
   * the request's deadline (`timeoutMs`, plus a second for loading the KubeConfig and signing the token): these
   * are all reads, and a throttled request was never executed. The deadline is the answer's: its body, read by
   * what `send` resolves to, comes for as long as it keeps coming (kubeConfiguration), its wait bounded by the
   * call's budget.
   */
  async #call<T>(what: string, send: (api: Configuration) => Promise<() => Promise<T>>): Promise<T> {
    if (this.#now() < Math.max(this.#pausedUntil, this.#throttledUntil)) throw new ApiPaused(what);
    const started = performance.now();
    const giveUpAt = started + this.#timeoutMs + 1_000;
    for (;;) {
      this.#stats.apiCalls++;
      try {
        // The deadline also covers loading the KubeConfig (DescribeCluster) and signing the token.
        const read = await withDeadline(giveUpAt - performance.now(), what, async () =>
          send(await this.#api()),
        );
        const result = await read();
        this.#backoff = 0;
        this.#pausedUntil = 0;
        return result;
      } catch (error) {
        this.#stats.apiErrors++;
        const asked = retryAfterMs(error);
        if (asked === undefined) throw error;
        const wait = Math.max(asked, MIN_RETRY_WAIT_MS);
        if (performance.now() + wait >= started + this.#timeoutMs) throw error;
        await sleep(wait);
        // Another request failed meanwhile and paused the API: this one stops too.
        if (this.#now() < Math.max(this.#pausedUntil, this.#throttledUntil)) throw error;
      }
    }
  }

  /** Records a failed operation: pause the API for a while, log once a minute per kind, return the reason. */
  #failure(what: string, error: unknown, pause = true): string {
    if (error instanceof ApiPaused) {
      const last = this.#lastFailure === undefined ? "" : `: ${formatFailure(this.#lastFailure)}`;
      return `Kubernetes API paused after failures${last}`;
    }
    const failure = describeKubeError(error, this.#fixes);
    this.#lastFailure = failure;
    // Requests sent side by side fail together in one blip: the pause doubles per failure after a pause, not per
    // request failing within one (five lookups of a payload would otherwise pause the API 16 s at once).
    if (pause && this.#now() >= this.#pausedUntil) {
      this.#backoff = Math.min(Math.max(this.#backoff * 2, 1_000), this.#maxBackoff);
      this.#pausedUntil = this.#now() + this.#backoff;
    }
    // The server said how long to leave it alone (a failed node or namespace list included): at least that,
    // up to maxBackoffMs.
    const asked = retryAfterMs(error);
    if (asked !== undefined) {
      const until = this.#now() + Math.min(Math.max(asked, MIN_RETRY_WAIT_MS), this.#maxBackoff);
      this.#throttledUntil = Math.max(this.#throttledUntil, until);
    }
    this.#warn(failure.kind, `Kubernetes API ${what} failed: ${formatFailure(failure)}`, {
      kind: failure.kind,
      status: failure.status,
      fix: failure.fix,
    });
    return `Kubernetes API ${what} failed: ${formatFailure(failure)}`;
  }

  #warn(kind: string, message: string, details: Record<string, unknown>): void {
    const now = this.#now();
    const last = this.#loggedAt.get(kind);
    if (last !== undefined && now - last < LOG_EVERY_MS) return;
    this.#loggedAt.set(kind, now);
    this.#logger?.warn(message, details);
  }

  #timeoutSeconds(): number {
    return Math.max(1, Math.ceil(this.#timeoutMs / 1000));
  }

  #read<T>(what: string, items: readonly unknown[], toHolders: (o: unknown) => T[]): T[] {
    const out: T[] = [];
    for (const item of items) {
      try {
        out.push(...toHolders(item));
      } catch (error) {
        if (!(error instanceof MalformedObjectError)) throw error;
        this.#stats.malformed++;
        this.#warn(`malformed:${what}`, `skipped a ${what} that cannot be read: ${error.message}`, {});
      }
    }
    return out;
  }

  /** Remembers which holders of `pods` hold an address other than their pod's primary one (#secondary). */
  #noteSecondary(pods: readonly unknown[]): void {
    if (this.#secondary.size > MAX_SECONDARY_IPS) this.#secondary.clear();
    for (const pod of pods) {
      // Nearly every pod has one address: only dual-stack ones are read into holders again.
      const podIps = (pod as { status?: { podIPs?: unknown } } | null)?.status?.podIPs;
      if (!Array.isArray(podIps) || podIps.length < 2) continue;
      let holders: IpHolder[];
      try {
        // A hostNetwork pod's addresses are its node's: the second one is as hidden from status.podIP= queries.
        holders = podHolders(pod);
      } catch (error) {
        if (error instanceof MalformedObjectError) continue;
        throw error;
      }
      if (holders.length < 2) continue;
      const primary = primaryIpOf(pod);
      for (const { ip, holder } of holders) {
        if (ip === primary) continue;
        let keys = this.#secondary.get(ip);
        if (keys === undefined) {
          keys = new Set();
          this.#secondary.set(ip, keys);
        }
        keys.add(holderKey(holder));
      }
    }
  }

  /**
   * Adds what was seen and ends open holders of `ips` that were not: they are gone — except those in `unseen`,
   * which the request could not have returned. An open holder seen keeps the time of the look (`seenAt`): the end a
   * later look gives it is only when it was seen gone, no evidence that it held the address until then (heldUntil in
   * holders.ts).
   */
  #record(
    index: HolderIndex,
    seen: readonly IpHolder[],
    ips: Iterable<string>,
    observedAt: number,
    unseen?: ReadonlySet<string>,
  ): void {
    const seenKeys = new Map<string, Set<string>>();
    for (const { ip, holder } of seen) {
      // Made for this look by #read: nothing else has it yet.
      if (holder.validTo === null) holder.seenAt = observedAt;
      const previous = index.add(ip, holder);
      if (previous !== undefined && previous !== "new") this.#rememberChange(ip, holder);
      let keys = seenKeys.get(ip);
      if (keys === undefined) {
        keys = new Set();
        seenKeys.set(ip, keys);
      }
      keys.add(holderKey(holder));
    }
    for (const ip of ips) {
      let keep = seenKeys.get(ip) ?? new Set<string>();
      if (unseen !== undefined && unseen.size > 0) keep = new Set([...keep, ...unseen]);
      for (const closed of index.close(ip, keep, observedAt)) {
        this.#rememberChange(closed.ip, closed.holder);
      }
    }
  }

  async #refreshNodes(): Promise<void> {
    const started = this.#now();
    this.#nodesAttemptAt = started;
    try {
      const { items } = await this.#listAll("list nodes", "nodes");
      this.#stats.nodeLists++;
      const seen = this.#addressesSince(this.#read("node", items, nodeToHolders));
      this.#record(this.#nodes, seen, this.#nodes.ips(), started);
      this.#nodesAt = started;
    } catch (error) {
      this.#versionRefused("nodes", error);
      // Not a reason to pause pod lookups: an identity with the view policy may not list nodes at all, and
      // hostNetwork pods still reveal node IPs. An older node list keeps answering meanwhile.
      this.#failure("list nodes", error, false);
    }
  }

  /**
   * A node holds its addresses from its creation, but one it shows with an address the last list did not show it
   * with (a DHCP lease, an on-premises node) has held that address only since that list.
   */
  #addressesSince(seen: IpHolder[]): IpHolder[] {
    const since = this.#nodesAt;
    if (since === undefined) return seen;
    // Per node name (unique among live nodes), the addresses the index has it hold now, from when.
    const held = new Map<string, Map<string, number>>();
    for (const ip of this.#nodes.ips()) {
      for (const h of this.#nodes.holders(ip)) {
        if (h.validTo !== null) continue;
        let ips = held.get(h.name);
        if (ips === undefined) {
          ips = new Map();
          held.set(h.name, ips);
        }
        ips.set(ip, h.validFrom);
      }
    }
    return seen.map((entry) => {
      const ips = held.get(entry.holder.name);
      if (ips === undefined) return entry;
      // Held already: from when the index says (a start moved by an earlier list stays moved).
      const from = Math.max(entry.holder.validFrom, ips.get(entry.ip) ?? since);
      return from === entry.holder.validFrom
        ? entry
        : { ip: entry.ip, holder: { ...entry.holder, validFrom: from } };
    });
  }

  async #queryIp(ip: string, failed: Map<string, string>): Promise<void> {
    const started = this.#now();
    try {
      const list = await this.#call(`list pods with status.podIP=${ip}`, (api) =>
        listLean(
          api,
          LISTS.pods.path,
          {
            // The only pod field selector on an address: it matches status.podIPs[0] alone.
            fieldSelector: `status.podIP=${ip}`,
            // Served from the API server's watch cache rather than etcd, never older than what was seen.
            ...this.#readAt("pods"),
            timeoutSeconds: this.#timeoutSeconds(),
          },
          LISTS.pods.pick,
        ),
      );
      this.#stats.podQueries++;
      this.#noteVersion("pods", list.metadata.resourceVersion);
      this.#noteSecondary(list.items);
      const seen = this.#read("pod", list.items, podHolders);
      this.#record(this.#pods, seen, [ip], started, this.#secondary.get(ip));
      this.#notePodIps(seen);
      this.#checkedAt.set(ip, started);
      if (!this.#firstCheckedAt.has(ip)) this.#firstCheckedAt.set(ip, started);
    } catch (error) {
      this.#versionRefused("pods", error);
      failed.set(ip, this.#failure(`list pods with status.podIP=${ip}`, error));
    }
  }

  /**
   * Brings the whole pod view up to date: with a catch-up watch from the version it is complete at (the changes since,
   * a few KB where a list of every pod is a hundred MB), else (no view yet, its version ahead of the server's or too
   * old for the watch cache, watch forbidden, a watch cut short or its backlog cut off) with a full list. After a failure, once per fullListIntervalMs at most.
   */
  async #refreshPods(ips: readonly string[], failed: Map<string, string>): Promise<void> {
    const now = this.#now();
    if (this.#fullListAttemptAt !== undefined && now - this.#fullListAttemptAt < this.#fullListInterval) {
      // Only reached when the last refresh failed: a successful one answers everything for missTtlMs.
      const last = this.#lastFailure === undefined ? "" : `: ${formatFailure(this.#lastFailure)}`;
      for (const ip of ips) failed.set(ip, `full pod list rate-limited after a failure${last}`);
      return;
    }
    this.#fullListAttemptAt = now;
    const canWatch = !this.#watchForbidden && this.#timeoutMs >= (CATCH_UP_SECONDS + 1) * 1000;
    if (this.#podsVersion !== undefined && canWatch && (await this.#catchUp(ips, failed))) return;
    await this.#fullList(ips, failed);
  }

  async #fullList(ips: readonly string[], failed: Map<string, string>): Promise<void> {
    const started = this.#now();
    try {
      const { items, version } = await this.#listAll("list pods", "pods");
      this.#stats.fullLists++;
      this.#secondary.clear();
      this.#noteSecondary(items);
      const seen = this.#read("pod", items, podHolders);
      this.#record(this.#pods, seen, this.#pods.ips(), started);
      this.#podIps.clear();
      this.#notePodIps(seen);
      this.#viewed(started, version);
      this.#firstFullListAt ??= started;
    } catch (error) {
      this.#versionRefused("pods", error);
      const reason = this.#failure("list pods", error);
      for (const ip of ips) failed.set(ip, reason);
    }
  }

  /** The pod view is complete as of `started`, at `version`. */
  #viewed(started: number, version: string | undefined): void {
    this.#fullListAt = started;
    this.#fullListLandedAt = this.#now();
    this.#podsVersion = version;
    this.#checkedAt.clear();
  }

  /** Remembers at which addresses the pod view saw each pod (#podIps). */
  #notePodIps(seen: readonly IpHolder[]): void {
    for (const { ip, holder } of seen) {
      const uid = podUidOf(holder);
      if (uid === undefined) continue;
      const ips = this.#podIps.get(uid);
      if (ips === undefined) this.#podIps.set(uid, [ip]);
      else if (!ips.includes(ip)) ips.push(ip);
    }
  }

  /**
   * The pods' current resourceVersion, by a consistent read of one pod (no resourceVersion, `limit=1`): a quorum read
   * of etcd, or the watch cache once it has caught up with etcd (consistent reads from cache); a few KB either way.
   */
  async #currentPodsVersion(): Promise<string | undefined> {
    const list = await this.#call("list pods with limit=1", (api) =>
      listLean(api, LISTS.pods.path, { limit: 1, timeoutSeconds: this.#timeoutSeconds() }, LISTS.pods.pick),
    );
    return list.metadata.resourceVersion;
  }

  /**
   * Brings the pod view from the version it is complete at up to the current one, C (#currentPodsVersion), with
   * watches of CATCH_UP_SECONDS: the watch cache sends every change since at once, and the server ends the watch at
   * its timeout whether or not they were all out. A watch has sent them all when an event (or a BOOKMARK) at C or
   * after came, or when its last event came CAUGHT_UP_QUIET_MS before its end (none at all in a quiet cluster);
   * else the next watch goes on from its last event, CATCH_UP_WATCHES in all. The view is then complete as of the
   * catch-up's start. One short request at a time, none kept open: a Lambda container is frozen between invocations.
   * False when a full list should do instead: C is older than the view (an etcd restored from a backup, or a cluster
   * recreated under the same name: a watch from a version the server has not reached sends nothing, for good), the
   * version is too old for the watch cache (410), watch is forbidden (403, said once), a watch ended before its
   * time (an API server going away) or the watches ended still sending.
   */
  async #catchUp(ips: readonly string[], failed: Map<string, string>): Promise<boolean> {
    const started = this.#now();
    const view = this.#podsVersion;
    let current: string | undefined;
    try {
      current = await this.#currentPodsVersion();
    } catch (error) {
      const reason = this.#failure("list pods with limit=1", error);
      for (const ip of ips) failed.set(ip, reason);
      return true;
    }
    if (view !== undefined && current !== undefined && compareVersions(view, current) === true) {
      this.#letFloorsGo(current, view);
      return false;
    }
    // An event (or a BOOKMARK) at C or after: the watch's cache had reached C, and sent every change before it.
    const reached = (e: LeanWatchEvent) =>
      current !== undefined &&
      e.resourceVersion !== undefined &&
      compareVersions(current, e.resourceVersion) === false;
    const events: LeanWatchEvent[] = [];
    let from = view;
    for (let watch = 0; watch < CATCH_UP_WATCHES; watch++) {
      let batch: LeanWatchEvent[];
      let answeredAt: number;
      try {
        ({ events: batch, answeredAt } = await this.#call("watch pods", (api) =>
          watchLean(
            api,
            LISTS.pods.path,
            { resourceVersion: from, allowWatchBookmarks: "true", timeoutSeconds: CATCH_UP_SECONDS },
            LISTS.pods.pick,
          ),
        ));
      } catch (error) {
        const failure = describeKubeError(error, this.#fixes);
        if (failure.kind === "forbidden") {
          this.#watchForbidden = true;
          this.#warn(
            "watch-forbidden",
            `Kubernetes API watch pods is forbidden (${failure.message}): every pod is listed instead whenever many addresses are stale; apply the current deploy/rbac.yaml, which grants watch on pods`,
            { kind: failure.kind, status: failure.status },
          );
          return false;
        }
        if (failure.kind === "expired") return false;
        this.#versionRefused("pods", error);
        const reason = this.#failure("watch pods", error);
        for (const ip of ips) failed.set(ip, reason);
        return true;
      }
      const ended = performance.now();
      // The server ends a watch at its timeout, counted from when it answered (the client's clock starts earlier).
      if (ended - answeredAt < CATCH_UP_SECONDS * 1000 - WATCH_CLOCK_SLACK_MS) {
        this.#warn(
          "watch-cut",
          "Kubernetes API watch pods ended before its timeout; listing every pod instead",
          {},
        );
        return false;
      }
      // One by one: a mass rollout's backlog can be long.
      for (const event of batch) events.push(event);
      const last = batch.at(-1);
      if (last === undefined || ended - last.receivedAt >= CAUGHT_UP_QUIET_MS || batch.some(reached)) {
        this.#applyEvents(events, started);
        // The view is at its newest event's version (events come in version order), not at C: a watch served by an
        // API server whose cache lags sends nothing, or part, and is quiet, and its next catch-up then replays what
        // it missed. An event at C or after puts it there anyway.
        const version = events.at(-1)?.resourceVersion ?? view;
        this.#stats.catchUps++;
        this.#noteVersion("pods", version);
        this.#viewed(started, version);
        return true;
      }
      from = last.resourceVersion ?? from;
    }
    this.#warn(
      "watch-behind",
      `Kubernetes API watch pods was still sending the changes since version ${view} when it ended, ${CATCH_UP_WATCHES} times in a row (${events.length} events); listing every pod instead`,
      {},
    );
    return false;
  }

  /**
   * Applies a catch-up's events to the pod view: each pod's last state (a pod's events come in order), the holders
   * of one alive seen at the catch-up's start, of one deleted ended at its deletion (or then), and its holders at
   * addresses that state no longer shows ended at the catch-up's start, as a full list ends them. A state showing
   * alive a holder this view has seen end is older than what showed that (a lagging watch cache): it reopens nothing.
   */
  #applyEvents(events: readonly LeanWatchEvent[], started: number): void {
    const last = new Map<string, LeanWatchEvent>();
    for (const event of events) if (event.type !== "BOOKMARK") last.set(podIdentity(event.object), event);
    const alive: unknown[] = [];
    const gone: unknown[] = [];
    for (const event of last.values()) (event.type === "DELETED" ? gone : alive).push(event.object);
    this.#noteSecondary(alive);
    const known = (ip: string, holder: Holder) =>
      this.#pods.holders(ip).find((h) => holderKey(h) === holderKey(holder));
    const update = (ip: string, holder: Holder) => {
      const previous = this.#pods.add(ip, holder);
      if (previous !== undefined && previous !== "new") this.#rememberChange(ip, holder);
    };
    const aliveHolders = this.#read("pod", alive, podHolders);
    const goneHolders = this.#read("pod", gone, podHolders);
    // Per pod of the events, the addresses its last state shows (none: it shows none, or could not be read).
    const shows = new Map<string, Set<string>>();
    for (const id of last.keys()) shows.set(id, new Set());
    for (const { ip, holder } of [...aliveHolders, ...goneHolders]) {
      const uid = podUidOf(holder);
      if (uid !== undefined) shows.get(uid)?.add(ip);
    }
    for (const [uid, now] of shows) {
      for (const ip of this.#podIps.get(uid) ?? []) {
        if (now.has(ip)) continue;
        for (const h of this.#pods.holders(ip)) {
          if (h.validTo === null && podUidOf(h) === uid)
            update(ip, { ...h, validTo: Math.max(started, h.validFrom) });
        }
      }
      this.#podIps.delete(uid);
    }
    this.#notePodIps(aliveHolders);
    for (const { ip, holder } of aliveHolders) {
      const before = known(ip, holder);
      if (holder.validTo === null) {
        if (before !== undefined && before.validTo !== null) continue;
        holder.seenAt = started;
      } else if (before?.seenAt !== undefined) holder.seenAt = before.seenAt;
      update(ip, holder);
    }
    for (const { ip, holder } of goneHolders) {
      const before = known(ip, holder);
      const end = Math.min(holder.validTo ?? started, before?.validTo ?? Number.POSITIVE_INFINITY);
      const ended: Holder = { ...holder, validTo: Math.max(end, holder.validFrom) };
      if (before?.seenAt !== undefined) ended.seenAt = before.seenAt;
      update(ip, ended);
    }
  }

  /**
   * The pods' current version is older than the `view` the pod view is at: an etcd restored from a backup, or a
   * cluster recreated under the same name, counts its versions from lower. Every floor newer than `current` is let
   * go (reads at it would be refused, or a watch from it send nothing, for good), and the view with it.
   */
  #letFloorsGo(current: string, view: string): void {
    this.#warn(
      "version-reset",
      `Kubernetes API pods are at version ${current}, older than the ${view} the pod view is at (an etcd restore, or a cluster recreated under the same name): listing every pod again, from any version`,
      {},
    );
    for (const [resource, floor] of this.#versions) {
      if (compareVersions(floor, current) === true) this.#dropFloor(resource);
    }
    this.#podsVersion = undefined;
  }

  /** Lets `resource`'s version floor go: its next read is at "0", and a pod view at it is watched from no more. */
  #dropFloor(resource: VersionedResource): void {
    this.#versions.delete(resource);
    this.#tooLarge.delete(resource);
    if (resource === "pods") this.#podsVersion = undefined;
  }

  /**
   * After TOO_LARGE_BEFORE_RESET calls in a row whose reads at `resource`'s floor were answered "Too large resource
   * version", lets the floor go: an etcd restored from a backup, or a cluster recreated under the same name, counts
   * its versions from lower, and every read not older than the floor would be refused for good. An API server
   * instance whose cache lags (what the floor is for) catches up within seconds; the next read is at "0".
   */
  #versionRefused(resource: VersionedResource, error: unknown): void {
    if (error instanceof ApiPaused || !this.#versions.has(resource)) return;
    const failure = describeKubeError(error, this.#fixes);
    if (!tooLargeVersion(failure)) {
      this.#tooLarge.delete(resource);
      return;
    }
    const before = this.#tooLarge.get(resource);
    if (before?.last === this.#calls) return;
    const calls = (before?.calls ?? 0) + 1;
    if (calls < TOO_LARGE_BEFORE_RESET) {
      this.#tooLarge.set(resource, { calls, last: this.#calls });
      return;
    }
    this.#warn(
      "version-reset",
      `Kubernetes API refused reads of ${resource} at version ${this.#versions.get(resource)} in ${calls} calls in a row (${failure.message}): reading from any version again (an etcd restore, or a cluster recreated under the same name)`,
      {},
    );
    this.#dropFloor(resource);
  }

  /**
   * How a read of `resource` asks the API server: from its watch cache at any version ("0") until a list of it
   * was answered, then at a version not older than the newest answer (`NotOlderThan`): the cache waits until it
   * has caught up, or fails (504, Retry-After). An API server whose cache lags (another instance behind the
   * load balancer, a restarted one) could otherwise answer with an older state, in which a pod seen alive a
   * moment ago is missing, and the directory would end it.
   */
  #readAt(resource: VersionedResource): { resourceVersion: string; resourceVersionMatch?: string } {
    const floor = this.#versions.get(resource);
    return floor === undefined
      ? { resourceVersion: "0" }
      : { resourceVersion: floor, resourceVersionMatch: "NotOlderThan" };
  }

  #noteVersion(resource: VersionedResource, version: string | undefined): void {
    this.#tooLarge.delete(resource);
    if (version === undefined || version === "") return;
    const known = this.#versions.get(resource);
    if (known === undefined || newerVersion(version, known)) this.#versions.set(resource, version);
  }

  /**
   * Every item of a list, page by page (`limit`/`continue`). The first page is read from the watch cache
   * (#readAt): at version "0" with `limit`, which caches before Kubernetes 1.34 ignore (the whole list comes as
   * one page); at a version already seen, without `limit`, as client-go's reflector does, since a paginated
   * read at a given version would go to etcd on those versions. A 410 on a stale `continue` restarts the list
   * once from the beginning, as the API documentation asks of a client that needs a consistent list (and as
   * client-go's pager does); a `continue` token answered with itself fails the list rather than loop.
   */
  async #listAll(
    what: string,
    listed: keyof typeof LISTS,
  ): Promise<{ items: unknown[]; version: string | undefined }> {
    const { path, pick } = LISTS[listed];
    // Namespaces (labels only, nothing ended) are always read at "0".
    const resource = listed === "namespaces" ? undefined : listed;
    let restarted = false;
    for (;;) {
      const items: unknown[] = [];
      let token: string | undefined;
      let version: string | undefined;
      try {
        do {
          let page: ListPage;
          if (token !== undefined) page = { limit: this.#pageSize, continue: token };
          else if (resource !== undefined && this.#versions.has(resource)) page = this.#readAt(resource);
          else page = { limit: this.#pageSize, resourceVersion: "0" };
          const list = await this.#call(what, (api) =>
            listLean(api, path, { ...page, timeoutSeconds: this.#timeoutSeconds() }, pick),
          );
          // One by one: a page can hold every object of a large cluster, and spreading 125,000 arguments
          // into push() overflows the stack.
          for (const item of list.items) items.push(item);
          if (token === undefined) version = list.metadata.resourceVersion;
          const next = list.metadata.continue || undefined;
          if (next !== undefined && next === token) {
            throw new Error(
              `${what}: the API server answered a continue token with the same token; the list would not end`,
            );
          }
          token = next;
        } while (token !== undefined);
        if (resource !== undefined) this.#noteVersion(resource, version);
        return { items, version };
      } catch (error) {
        const expired = describeKubeError(error, this.#fixes).kind === "expired";
        if (!expired || restarted || token === undefined) throw error;
        restarted = true;
      }
    }
  }

  async #refreshNamespaces(namespaces: ReadonlySet<string>): Promise<void> {
    const now = this.#now();
    const stale = this.#namespacesAt === undefined || now - this.#namespacesAt > this.#namespaceTtl;
    const missing = [...namespaces].some((n) => !this.#namespaceLabels.has(n));
    if (namespaces.size === 0 || (!stale && !missing)) return;
    // A failed or just-made list is not retried at once: labels are a nicety, never worth hammering for.
    if (this.#namespacesAttemptAt !== undefined && now - this.#namespacesAttemptAt < this.#missTtl) return;
    this.#namespacesAttemptAt = now;
    try {
      const { items } = await this.#listAll("list namespaces", "namespaces");
      this.#stats.namespaceLists++;
      this.#namespaceLabels.clear();
      for (const { name, labels } of this.#read("namespace", items, (o) => [
        namespaceLabels(o, this.#labelKeys),
      ])) {
        this.#namespaceLabels.set(name, labels);
      }
      this.#namespacesAt = now;
    } catch (error) {
      // Missing labels are not worth pausing pod lookups for (the role may simply lack namespaces).
      this.#failure("list namespaces", error, false);
    }
  }

  #labelled(holder: Holder): Holder {
    if (this.#labelKeys.length === 0 || holder.kind !== "pod" || holder.namespace === null) return holder;
    const labels = this.#namespaceLabels.get(holder.namespace);
    if (labels === undefined || Object.keys(labels).length === 0) return holder;
    return { ...holder, labels };
  }

  /** Bounds memory in a long-lived container: what it forgets, the history or the API can tell again. */
  #housekeeping(): void {
    const now = this.#now();
    if (this.#prunedAt !== undefined && now - this.#prunedAt < this.#retainEnded / 4) return;
    this.#prunedAt = now;
    this.#pods.prune(now - this.#retainEnded);
    this.#nodes.prune(now - this.#retainEnded);
    for (const [ip, at] of this.#checkedAt) if (now - at > this.#retainEnded) this.#checkedAt.delete(ip);
    // What the history was told of holders that ended before the hour the index keeps: no end of theirs is to come.
    for (const [key, end] of this.#remembered) {
      if (end !== null && now - end > this.#retainEnded) this.#remembered.delete(key);
    }
    // Looks older than what the index keeps of ended holders: a holder they saw may be pruned since, and its
    // absence from the index would no longer mean they did not see it.
    for (const [ip, at] of this.#firstCheckedAt) {
      if (now - at > this.#retainEnded) this.#firstCheckedAt.delete(ip);
    }
    if (this.#firstFullListAt !== undefined && now - this.#firstFullListAt > this.#retainEnded) {
      const latest = this.#fullListAt;
      this.#firstFullListAt = latest !== undefined && now - latest <= this.#retainEnded ? latest : undefined;
    }
    for (const [ip, entry] of this.#historyCache) {
      if (now - entry.fetchedAt > this.#missTtl) this.#historyCache.delete(ip);
    }
  }

  // --- history ------------------------------------------------------------------------------------------

  async #readHistory(
    wanted: ReadonlyMap<string, { from: number; upTo: number }>,
  ): Promise<Map<string, string>> {
    const failures = new Map<string, string>();
    const history = this.#history;
    if (history === undefined || wanted.size === 0) return failures;
    const now = this.#now();
    const toRead = [...wanted].filter(([ip, { from, upTo }]) => {
      const cached = this.#historyCache.get(ip);
      return (
        cached === undefined ||
        cached.upTo < upTo ||
        cached.from > from ||
        now - cached.fetchedAt > this.#missTtl
      );
    });
    await forEachLimit(toRead, this.#concurrency, async ([ip, { from, upTo }]) => {
      this.#stats.historyReads++;
      try {
        const holders = await withDeadline(this.#historyTimeout, "holder history read", () =>
          history.holdersOf(this.#cluster, ip, upTo, from),
        );
        this.#historyCache.set(ip, { from, upTo, holders, fetchedAt: now });
      } catch (error) {
        this.#stats.historyErrors++;
        const reason = `holder history unavailable: ${(error as Error)?.message ?? String(error)}`;
        this.#warn("history-read", reason, {});
        failures.set(ip, reason);
      }
    });
    return failures;
  }

  #rememberLater(ip: string, holder: Holder): void {
    const key = `${ip}|${holderKey(holder)}`;
    if (this.#remembered.get(key) === holder.validTo && this.#remembered.has(key)) return;
    this.#remembered.set(key, holder.validTo);
    // An open holder of the live view holds the address now; an ended one keeps the time it was last seen with it
    // (the history does not take a seenAt away).
    this.#toRemember.push({
      ip,
      holder: holder.validTo === null ? { ...holder, seenAt: this.#now() } : holder,
    });
  }

  /** A holder the history already has changed (it ended): write the end too. */
  #rememberChange(ip: string, holder: Holder): void {
    if (this.#remembered.has(`${ip}|${holderKey(holder)}`)) this.#rememberLater(ip, holder);
  }

  async #writeHistory(): Promise<void> {
    const entries = this.#toRemember;
    this.#toRemember = [];
    if (this.#history === undefined || entries.length === 0) return;
    try {
      const history = this.#history;
      await withDeadline(this.#historyTimeout, "holder history write", () =>
        history.remember(this.#cluster, entries),
      );
      this.#stats.historyWrites += entries.length;
    } catch (error) {
      this.#stats.historyErrors++;
      // Forget that they were written, so the next resolution of these holders tries again.
      for (const { ip, holder } of entries) this.#remembered.delete(`${ip}|${holderKey(holder)}`);
      this.#warn(
        "history-write",
        `holder history write failed: ${(error as Error)?.message ?? String(error)}`,
        {},
      );
    }
  }
}
