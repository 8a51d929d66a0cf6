// Who held an IP, and when (DESIGN.md §4 "Attribution is correct in time"). Pure: turns pod and node objects
// (`kubectl get -o json` output or @kubernetes/client-node objects: same field names, dates as strings or
// Date) into time-bounded holders, and picks the holder of an IP at an event's time.
import { isIP } from "node:net";
import { canonicalIpv4 } from "./classify.ts";
import { normalizeIpv6 } from "./ipv6.ts";
import type { Holder, WorkloadRef } from "./types.ts";

export interface IpHolder {
  ip: string;
  holder: Holder;
}

/** An object that cannot be turned into holders; directories skip it and count it. */
export class MalformedObjectError extends Error {
  override readonly name = "MalformedObjectError";
  readonly objectKind: string;
  readonly objectName: string | null;
  readonly reason: string;
  constructor(objectKind: string, objectName: string | null, reason: string) {
    super(`malformed ${objectKind}${objectName === null ? "" : ` "${objectName}"`}: ${reason}`);
    this.objectKind = objectKind;
    this.objectName = objectName;
    this.reason = reason;
  }
}

/**
 * Lines are timestamped when collected (CloudWatch event time) or by a node clock, and collection only ever
 * lags the kernel's write: a line can carry a time slightly after its holder's end, never before its start.
 * So the tolerance applies after a lifetime ends, and a holder created after the event is never chosen.
 */
export const END_TOLERANCE_MS = 10_000;

type Obj = Record<string, unknown>;

function asObject(value: unknown): Obj | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Obj) : undefined;
}

function asString(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Epoch ms of a Kubernetes timestamp (RFC 3339 string or Date); undefined when absent or unparseable. */
export function timeOf(value: unknown): number | undefined {
  if (value instanceof Date) {
    const t = value.getTime();
    return Number.isNaN(t) ? undefined : t;
  }
  if (typeof value === "string" && value.length > 0) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

const MAPPED_PREFIX = "::ffff:";

/**
 * Trimmed, and IPv6 in the RFC 5952 form the parser prints: Kubernetes keeps an address as its writer spelled
 * it (`fd00:0:0:0:0:0:0:7`, `FD00::0007`). An IPv4-mapped IPv6 address (`::ffff:192.168.1.5`, `::ffff:c0a8:105`)
 * is the IPv4 address that pods and nodes hold. Text that is no address is only lower-cased.
 */
export function normalizeIp(ip: string): string {
  const text = ip.trim().toLowerCase();
  if (!text.includes(":")) return text;
  const v6 = normalizeIpv6(text) ?? text;
  if (v6.startsWith(MAPPED_PREFIX) && canonicalIpv4(v6.slice(MAPPED_PREFIX.length)) >= 0) {
    return v6.slice(MAPPED_PREFIX.length);
  }
  return v6;
}

/** Stable identity of a holder, to merge what the index, the API and the history know about the same one. */
export function holderKey(holder: Holder): string {
  return holder.uid ?? `${holder.kind}/${holder.namespace ?? ""}/${holder.name}/${holder.validFrom}`;
}

/**
 * The CronJob controller names its Jobs `<cronjob>-<scheduled time in minutes since the epoch>`. A Job name
 * is taken for a CronJob's only when that suffix decodes to a time no later than the pod's creation (plus
 * skew) and at most a week before it: a hand-made Job called `migrate-2` stays a Job.
 */
const CRONJOB_SUFFIX = /^(.+)-(\d{1,12})$/;
const CRONJOB_MAX_AGE_MS = 7 * 24 * 3600_000;
const CRONJOB_SKEW_MS = 5 * 60_000;

function cronJobOf(jobName: string, podCreated: number): string | undefined {
  const match = CRONJOB_SUFFIX.exec(jobName);
  if (match === null) return undefined;
  const scheduled = Number(match[2]) * 60_000;
  if (scheduled > podCreated + CRONJOB_SKEW_MS || podCreated - scheduled > CRONJOB_MAX_AGE_MS)
    return undefined;
  return match[1];
}

/** Pod labels that carry the hash its ReplicaSet's name ends with, and the kind of workload that names it so. */
const REPLICASET_OWNERS = [
  ["pod-template-hash", "Deployment"],
  ["rollouts-pod-template-hash", "Rollout"],
] as const;

/**
 * The workload a pod belongs to, from its controlling owner reference: ReplicaSet → Deployment when the
 * ReplicaSet name is `<deployment>-<pod-template-hash>` (the Deployment controller's naming and label), or →
 * Rollout when it is `<rollout>-<rollouts-pod-template-hash>` (Argo Rollouts'), Job → CronJob by the naming heuristic above, StatefulSet / DaemonSet / other owners as they are, and a
 * bare pod as `{ kind: "Pod", name }`.
 */
export function workloadOf(pod: unknown): WorkloadRef | null {
  const metadata = asObject(asObject(pod)?.metadata);
  const podName = asString(metadata?.name);
  if (metadata === undefined || podName === undefined) return null;
  const owners = asArray(metadata.ownerReferences)
    .map(asObject)
    .filter(
      (o): o is Obj => o !== undefined && asString(o.kind) !== undefined && asString(o.name) !== undefined,
    );
  const owner = owners.find((o) => o.controller === true) ?? owners[0];
  if (owner === undefined) return { kind: "Pod", name: podName };
  const kind = owner.kind as string;
  const name = owner.name as string;
  if (kind === "ReplicaSet") {
    // The Deployment controller names a ReplicaSet `<deployment>-<pod-template-hash>`; Argo Rollouts names its
    // revisions `<rollout>-<rollouts-pod-template-hash>`, so a canary's pods and a promotion stay one workload.
    const labels = asObject(metadata.labels);
    for (const [label, owner] of REPLICASET_OWNERS) {
      const hash = asString(labels?.[label]);
      if (hash !== undefined && name.endsWith(`-${hash}`) && name.length > hash.length + 1) {
        return { kind: owner, name: name.slice(0, -(hash.length + 1)) };
      }
    }
    return { kind, name };
  }
  if (kind === "Job") {
    const created = timeOf(metadata.creationTimestamp);
    const cronJob = created === undefined ? undefined : cronJobOf(name, created);
    return cronJob === undefined ? { kind, name } : { kind: "CronJob", name: cronJob };
  }
  return { kind, name };
}

function latest(values: Iterable<number | undefined>): number | undefined {
  let max: number | undefined;
  for (const v of values) if (v !== undefined && (max === undefined || v > max)) max = v;
  return max;
}

/**
 * End of a pod's hold on its IP: its deletion time, or for a pod that ran to completion (Succeeded/Failed,
 * whose status keeps the IP) the last container finish, once every app container has one. Otherwise the latest
 * time the status proves the pod existed: an early end says `unknown` for later lines rather than guessing. A pod
 * the garbage collector marked Failed after its node vanished keeps its app containers `running` (the kubelet was
 * gone), and only its init containers' finishes, seconds after the start: they do not end it.
 */
function podEnd(metadata: Obj, status: Obj | undefined, start: number): number | null {
  const deleted = timeOf(metadata.deletionTimestamp);
  const phase = asString(status?.phase);
  let finished: number | undefined;
  if (status !== undefined && (phase === "Succeeded" || phase === "Failed")) {
    const finishOf = (s: unknown) => timeOf(asObject(asObject(asObject(s)?.state)?.terminated)?.finishedAt);
    const apps = asArray(status.containerStatuses).map(finishOf);
    const finishes = [
      ...apps,
      ...asArray(status.initContainerStatuses).map(finishOf),
      ...asArray(status.ephemeralContainerStatuses).map(finishOf),
    ];
    const allFinished = apps.length > 0 && apps.every((t) => t !== undefined);
    finished = allFinished
      ? latest(finishes)
      : latest([
          start,
          ...finishes,
          ...asArray(status.conditions).map((c) => timeOf(asObject(c)?.lastTransitionTime)),
        ]);
  }
  const end =
    deleted === undefined ? finished : finished === undefined ? deleted : Math.min(deleted, finished);
  // Kubelet and API server clocks may disagree by a little: an end never precedes the start.
  return end === undefined ? null : Math.max(end, start);
}

/**
 * When a pod can first have held its address: kubelet's acknowledgement of it (`status.startTime`), which comes
 * before the sandbox and the CNI's address, else its creation. A pod can wait minutes, Pending, between the two
 * (while a node is provisioned), and meanwhile its address may still be another pod's.
 */
function podStart(created: number, status: Obj | undefined): number {
  const started = timeOf(status?.startTime);
  return started === undefined || started < created ? created : started;
}

function checkIp(kind: string, name: string, ip: unknown): string {
  if (typeof ip !== "string" || isIP(ip.trim()) === 0) {
    throw new MalformedObjectError(kind, name, `"${String(ip)}" is not an IP address`);
  }
  return normalizeIp(ip);
}

function requireMetadata(kind: string, object: unknown): { metadata: Obj; name: string; created: number } {
  const o = asObject(object);
  if (o === undefined) throw new MalformedObjectError(kind, null, "not an object");
  if (o.kind !== undefined && o.kind !== kind) {
    throw new MalformedObjectError(
      kind,
      asString(asObject(o.metadata)?.name) ?? null,
      `is a ${String(o.kind)}`,
    );
  }
  const metadata = asObject(o.metadata);
  const name = asString(metadata?.name);
  if (metadata === undefined || name === undefined)
    throw new MalformedObjectError(kind, null, "no metadata.name");
  const created = timeOf(metadata.creationTimestamp);
  if (created === undefined) {
    throw new MalformedObjectError(
      kind,
      name,
      `creationTimestamp ${JSON.stringify(metadata.creationTimestamp)}`,
    );
  }
  return { metadata, name, created };
}

/** A pod's IPs: all of `status.podIPs` (one per family), plus `status.podIP` (the first of them). */
function podIps(name: string, status: Obj | undefined): Set<string> {
  const ips = new Set<string>();
  for (const entry of asArray(status?.podIPs)) ips.add(checkIp("Pod", name, asObject(entry)?.ip));
  if (status?.podIP !== undefined && status.podIP !== null && status.podIP !== "") {
    ips.add(checkIp("Pod", name, status.podIP));
  }
  return ips;
}

/**
 * Holders of a pod's IPs (all of `status.podIPs`, plus `status.podIP`). A hostNetwork pod holds none: its
 * IP is its node's. A pod without an IP yet (Pending) holds none. Throws MalformedObjectError for an object
 * that is not a usable pod.
 */
export function podToHolders(pod: unknown): IpHolder[] {
  const { metadata, name, created } = requireMetadata("Pod", pod);
  const namespace = asString(metadata.namespace);
  if (namespace === undefined) throw new MalformedObjectError("Pod", name, "no metadata.namespace");
  const spec = asObject((pod as Obj).spec);
  const status = asObject((pod as Obj).status);
  if (spec?.hostNetwork === true) return [];
  const ips = podIps(name, status);
  if (ips.size === 0) return [];
  const from = podStart(created, status);
  const holder: Holder = {
    kind: "pod",
    namespace,
    name,
    workload: workloadOf(pod),
    node: asString(spec?.nodeName) ?? null,
    uid: asString(metadata.uid) ?? null,
    validFrom: from,
    validTo: podEnd(metadata, status, from),
  };
  return [...ips].map((ip) => ({ ip, holder }));
}

/**
 * A hostNetwork pod's IPs are its node's InternalIPs (`status.podIPs`: one per family on a dual-stack node;
 * `status.podIP` is only the first). Such pods (aws-node and kube-proxy run on every EKS node) reveal node IPs
 * even to an identity that may not list nodes: holders of kind "node", for the pod's lifetime. Other pods
 * give none.
 */
export function hostNetworkNodeHolders(pod: unknown): IpHolder[] {
  const { metadata, name, created } = requireMetadata("Pod", pod);
  const spec = asObject((pod as Obj).spec);
  const status = asObject((pod as Obj).status);
  const nodeName = asString(spec?.nodeName);
  if (spec?.hostNetwork !== true || nodeName === undefined) return [];
  const ips = podIps(name, status);
  if (ips.size === 0) return [];
  const podUid = asString(metadata.uid);
  const from = podStart(created, status);
  const holder: Holder = {
    kind: "node",
    namespace: null,
    name: nodeName,
    workload: null,
    node: nodeName,
    // Each pod's evidence apart: aws-node and kube-proxy start in the same second on a node, and one ending
    // must not end what the other still shows.
    uid: podUid === undefined ? null : `hostNetwork:${podUid}`,
    validFrom: from,
    validTo: podEnd(metadata, status, from),
  };
  return [...ips].map((ip) => ({ ip, holder }));
}

/** Holders of a node's InternalIP addresses, from the node's creation (to its deletion, if under way). */
export function nodeToHolders(node: unknown): IpHolder[] {
  const { metadata, name, created } = requireMetadata("Node", node);
  const status = asObject((node as Obj).status);
  const deleted = timeOf(metadata.deletionTimestamp);
  const ips = new Set<string>();
  for (const entry of asArray(status?.addresses)) {
    const address = asObject(entry);
    if (address?.type === "InternalIP") ips.add(checkIp("Node", name, address.address));
  }
  if (ips.size === 0) return [];
  const holder: Holder = {
    kind: "node",
    namespace: null,
    name,
    workload: null,
    node: name,
    uid: asString(metadata.uid) ?? null,
    validFrom: created,
    validTo: deleted === undefined ? null : Math.max(deleted, created),
  };
  return [...ips].map((ip) => ({ ip, holder }));
}

/** `name` and selected labels of a namespace object; throws MalformedObjectError for a non-namespace. */
export function namespaceLabels(
  namespace: unknown,
  keys: readonly string[],
): { name: string; labels: Record<string, string> } {
  const o = asObject(namespace);
  const metadata = asObject(o?.metadata);
  const name = asString(metadata?.name);
  if (o === undefined || name === undefined)
    throw new MalformedObjectError("Namespace", null, "no metadata.name");
  const all = asObject(metadata?.labels) ?? {};
  const labels: Record<string, string> = {};
  for (const key of keys) {
    const value = all[key];
    if (typeof value === "string") labels[key] = value;
  }
  return { name, labels };
}

/**
 * Which of two holders that both cover a time is the answer first: a pod before the node it runs on (a pod that is
 * not hostNetwork and holds its node's InternalIP is an EKS Fargate pod, whose node exists only to run it: the
 * traffic is the pod's), then the most recently created.
 */
function newestFirst(a: Holder, b: Holder): number {
  if (a.kind === "pod" && b.kind === "node" && a.node === b.name) return -1;
  if (a.kind === "node" && b.kind === "pod" && b.node === a.name) return 1;
  if (a.validFrom !== b.validFrom) return b.validFrom - a.validFrom;
  return holderKey(a) < holderKey(b) ? -1 : holderKey(a) > holderKey(b) ? 1 : 0;
}

/** A node holder made from a hostNetwork pod's address (hostNetworkNodeHolders), not from the Node object. */
function fromHostNetworkPod(h: Holder): boolean {
  return h.uid?.startsWith("hostNetwork:") === true;
}

/**
 * Whether `later` (created after `h`) cannot have held the address while `h` did: an address is one pod's at a time,
 * and a pod's hold is never given back to it; nor is a node's address a pod's, unless the pod runs on that node
 * (EKS Fargate, see newestFirst); a pod on another node holds no live node's address; and a node's address is no
 * other node's: one of another name, or another Node object of its name (EKS names a node after its address, so an
 * instance given a gone one's address gets its name too). A node's hostNetwork pods are its own.
 */
function excludes(later: Holder, h: Holder): boolean {
  if (later.validFrom <= h.validFrom) return false;
  if (h.kind === "pod") return later.kind === "pod" || (later.kind === "node" && later.name !== h.node);
  if (h.kind !== "node") return false;
  if (later.kind === "pod") return later.node !== h.name;
  return (
    later.kind === "node" && (later.name !== h.name || (!fromHostNetworkPod(later) && later.uid !== h.uid))
  );
}

/**
 * The latest time `h` is known to have held its address: when a directory last saw it do so (`seenAt`), else its
 * recorded end, or, open in the view it comes from (a snapshot, a list), now.
 */
function heldUntil(h: Holder): number {
  return h.seenAt ?? h.validTo ?? Number.POSITIVE_INFINITY;
}

/**
 * `h` with the part of its recorded lifetime in which it can have held its address among `holders` (`h` itself when
 * that is all of it). A holder it excludes (see excludes) ends it where it begins: its recorded end is an upper bound
 * (a deletion time, or the moment a directory saw it gone), and a holder whose end nobody saw (a Lambda container
 * recycled before it looked again) thus ends where its address went on. Unless `h` is known to have held the address
 * after that holder let it go: then it got the address only then, its `validFrom` being earlier (a pod's startTime
 * precedes its address, by minutes when the VPC CNI has none free; a recreated sandbox gets a new one), and a finished
 * pod that Kubernetes keeps with its status.podIP must not end the pod that holds the address now.
 */
function lifetimeAmong(h: Holder, holders: readonly Holder[]): Holder {
  if (h.kind === "service") return h;
  let from = h.validFrom;
  let to = h.validTo;
  const held = heldUntil(h);
  for (const later of holders) {
    if (!excludes(later, h)) continue;
    // A look that saw `h` hold the address and `later` gone (one instant, seenAt = validTo) saw it let go by then;
    // two recorded ends alike say nothing of which came first.
    const letGo =
      later.validTo !== null && (h.seenAt === undefined ? later.validTo < held : later.validTo <= held);
    if (letGo) from = Math.max(from, later.validTo as number);
    else if (to === null || later.validFrom < to) to = later.validFrom;
  }
  return from === h.validFrom && to === h.validTo ? h : { ...h, validFrom: from, validTo: to };
}

/** Whether a lifetime lifetimeAmong gives is empty: others held the address throughout. */
function neverHeld(h: Holder): boolean {
  return h.validTo !== null && h.validTo < h.validFrom;
}

/**
 * The holder of an IP at `at` (epoch ms), or undefined ("say unknown rather than guess"):
 * - never a holder created after `at`;
 * - only within the part of its lifetime the others leave it (lifetimeAmong: one pod at a time, no pod on a live
 *   node's address, one node at a time);
 * - among holders whose lifetime covers `at`, the most recently created: an IP is held by one pod at a
 *   time, so when recorded lifetimes overlap (a deletion time is an upper bound) the newer holder is the
 *   one that got the IP back from the pool; but a pod before the node it runs on (EKS Fargate, see newestFirst);
 * - otherwise a holder that ended at most `toleranceMs` before `at` (collection lag, see END_TOLERANCE_MS),
 *   the latest to end.
 * The holder returned is the one given, with its recorded lifetime.
 */
export function pickHolder(
  holders: Iterable<Holder>,
  at: number,
  toleranceMs: number = END_TOLERANCE_MS,
): Holder | undefined {
  const list = Array.isArray(holders) ? (holders as Holder[]) : [...holders];
  let covering: Holder | undefined;
  let recent: Holder | undefined;
  let recentEnd = 0;
  for (const h of list) {
    if (h.validFrom > at) continue;
    const life = list.length === 1 ? h : lifetimeAmong(h, list);
    if (life.validFrom > at || neverHeld(life)) continue;
    const end = life.validTo;
    if (end === null || at <= end) {
      if (covering === undefined || newestFirst(h, covering) < 0) covering = h;
    } else if (at <= end + toleranceMs) {
      if (recent === undefined || recentEnd < end || (recentEnd === end && newestFirst(h, recent) < 0)) {
        recent = h;
        recentEnd = end;
      }
    }
  }
  return covering ?? recent;
}

/** holderThroughout's answer when no one holder is pickHolder's answer at every time of the span. */
export const VARIES = "varies";

/**
 * The holder pickHolder picks at every time in [from, until], undefined when it picks none at any of them, or
 * VARIES. Decided without pickHolder's preferences: when exactly one holder's lifetime (the part lifetimeAmong leaves
 * it, with the tolerance after it) meets the span and covers all of it, it is the only candidate at every time, so
 * it is the answer; when none meets the span there is never a candidate. Anything else (two holders meet the span, or one covers
 * only part of it) is VARIES, and the caller asks per time.
 */
export function holderThroughout(
  holders: Iterable<Holder>,
  from: number,
  until: number,
  toleranceMs: number = END_TOLERANCE_MS,
): Holder | undefined | typeof VARIES {
  const list = Array.isArray(holders) ? (holders as Holder[]) : [...holders];
  let only: { given: Holder; life: Holder } | undefined;
  for (const h of list) {
    const life = list.length === 1 ? h : lifetimeAmong(h, list);
    const end = life.validTo === null ? Number.POSITIVE_INFINITY : life.validTo + toleranceMs;
    if (life.validFrom > until || end < from || neverHeld(life)) continue;
    if (only !== undefined) return VARIES;
    only = { given: h, life };
  }
  if (only === undefined) return undefined;
  const answer = onlyThroughout(only.life, from, until, toleranceMs);
  // The holder as given, not its copy with the lifetime the others left it.
  return answer === undefined || answer === VARIES ? answer : only.given;
}

/** pickHolder for a single holder. */
function pickOnly(h: Holder, at: number, toleranceMs: number): Holder | undefined {
  if (h.validFrom > at) return undefined;
  if (h.validTo === null || at <= h.validTo) return h;
  return at <= h.validTo + toleranceMs ? h : undefined;
}

/** holderThroughout for a single holder. */
function onlyThroughout(
  h: Holder,
  from: number,
  until: number,
  toleranceMs: number,
): Holder | undefined | typeof VARIES {
  const end = h.validTo === null ? Number.POSITIVE_INFINITY : h.validTo + toleranceMs;
  if (h.validFrom > until || end < from) return undefined;
  return h.validFrom <= from && until <= end ? h : VARIES;
}

/** Merges holder lists (same holder known from several sources): the entry with the known end wins. */
export function mergeHolders(...lists: readonly (readonly Holder[])[]): Holder[] {
  const byKey = new Map<string, Holder>();
  for (const list of lists) {
    for (const h of list) {
      const key = holderKey(h);
      const seen = byKey.get(key);
      if (seen === undefined || (seen.validTo === null && h.validTo !== null)) byKey.set(key, h);
    }
  }
  return [...byKey.values()];
}

/** IP → every holder seen for it, as the directories' in-memory index. */
export class HolderIndex {
  readonly #byIp = new Map<string, Map<string, Holder>>();
  /**
   * The holder of each dotted quad that has exactly one, by the address's number: nearly every address, found
   * with small-integer keys (the number's low two bits pick the map, the other 30 are the key) instead of a
   * string hash and two nested maps. Kept in step with #byIp by #sync after every change.
   */
  readonly #onlyHolder = [
    new Map<number, Holder>(),
    new Map<number, Holder>(),
    new Map<number, Holder>(),
    new Map<number, Holder>(),
  ];

  #sync(key: string, holders: Map<string, Holder>): void {
    const v4 = canonicalIpv4(key);
    if (v4 < 0) return;
    const only = this.#onlyHolder[v4 & 3] as Map<number, Holder>;
    if (holders.size === 1) only.set(v4 >>> 2, holders.values().next().value as Holder);
    else only.delete(v4 >>> 2);
  }

  /** The only holder of `ip` when it is a dotted quad that has exactly one; undefined otherwise. */
  #only(ip: string): Holder | undefined {
    const v4 = canonicalIpv4(ip);
    return v4 < 0 ? undefined : (this.#onlyHolder[v4 & 3] as Map<number, Holder>).get(v4 >>> 2);
  }

  /**
   * Adds or updates a holder of `ip`. Returns the previous version of the same holder when this changed
   * its lifetime, `"new"` when it was not known, undefined when nothing changed.
   */
  add(ip: string, holder: Holder): Holder | "new" | undefined {
    const key = normalizeIp(ip);
    let holders = this.#byIp.get(key);
    if (holders === undefined) {
      holders = new Map();
      this.#byIp.set(key, holders);
    }
    const id = holderKey(holder);
    const previous = holders.get(id);
    holders.set(id, holder);
    this.#sync(key, holders);
    if (previous === undefined) return "new";
    return previous.validTo !== holder.validTo || previous.validFrom !== holder.validFrom
      ? previous
      : undefined;
  }

  holders(ip: string): Holder[] {
    const holders = this.#byIp.get(normalizeIp(ip));
    return holders === undefined ? [] : [...holders.values()];
  }

  has(ip: string): boolean {
    return this.#byIp.has(normalizeIp(ip));
  }

  pick(ip: string, at: number, toleranceMs: number = END_TOLERANCE_MS): Holder | undefined {
    const only = this.#only(ip);
    if (only !== undefined) return pickOnly(only, at, toleranceMs);
    // Keys are normalised and normalising is idempotent, so an address found as given needs no normalising.
    const holders = this.#byIp.get(ip) ?? this.#byIp.get(normalizeIp(ip));
    if (holders === undefined) return undefined;
    // Straight from the index: this runs once per lookup, a copied array per call is garbage for nothing.
    if (holders.size === 1) return pickOnly(holders.values().next().value as Holder, at, toleranceMs);
    return pickHolder(holders.values(), at, toleranceMs);
  }

  /** holderThroughout over the holders of `ip` (see pick for the address as given). */
  pickThroughout(
    ip: string,
    from: number,
    until: number,
    toleranceMs: number = END_TOLERANCE_MS,
  ): Holder | undefined | typeof VARIES {
    const only = this.#only(ip);
    if (only !== undefined) return onlyThroughout(only, from, until, toleranceMs);
    const holders = this.#byIp.get(ip) ?? this.#byIp.get(normalizeIp(ip));
    return holders === undefined ? undefined : holderThroughout(holders.values(), from, until, toleranceMs);
  }

  /** Sets the end of `ip`'s open holders not in `keep` (they were not seen where they should have been). */
  close(ip: string, keep: ReadonlySet<string>, at: number): { ip: string; holder: Holder }[] {
    const holders = this.#byIp.get(normalizeIp(ip));
    const closed: { ip: string; holder: Holder }[] = [];
    if (holders === undefined) return closed;
    for (const [id, h] of holders) {
      if (h.validTo === null && !keep.has(id)) {
        const ended = { ...h, validTo: Math.max(at, h.validFrom) };
        holders.set(id, ended);
        closed.push({ ip: normalizeIp(ip), holder: ended });
      }
    }
    if (closed.length > 0) this.#sync(normalizeIp(ip), holders);
    return closed;
  }

  /** Forgets holders that ended before `before` (the history keeps them); returns how many. */
  prune(before: number): number {
    let removed = 0;
    for (const [ip, holders] of this.#byIp) {
      const size = holders.size;
      for (const [id, h] of holders) {
        if (h.validTo !== null && h.validTo < before) {
          holders.delete(id);
          removed++;
        }
      }
      if (holders.size === 0) this.#byIp.delete(ip);
      if (holders.size !== size) this.#sync(ip, holders);
    }
    return removed;
  }

  ips(): string[] {
    return [...this.#byIp.keys()];
  }

  get size(): number {
    return this.#byIp.size;
  }
}
