// A local HTTPS Kubernetes API server for tests and benchmarks. It speaks the real wire format (List kinds
// with metadata.resourceVersion, Status objects for errors, field and label selectors, `limit`/`continue`
// pagination with 410 Expired, watches replayed from a bounded event log per resource, discovery under /api and
// /apis) over a generic object store, so any resource
// can be registered: core pods/nodes/namespaces by default, Calico CRDs by the tests that need them.
// TLS uses a CA generated for the run; requests need the bearer token. Faults (401/403/500/hang/down/delay/trickle…)
// and per-path request counts let tests prove how clients behave when Kubernetes misbehaves.
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadYaml } from "@kubernetes/client-node";
import { generate } from "selfsigned";

export type KubeObject = Record<string, unknown>;

export interface ResourceSpec {
  /** "" for the core group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Field paths usable in field selectors besides metadata.name and metadata.namespace. */
  selectableFields?: readonly string[];
}

export const PODS: ResourceSpec = {
  group: "",
  version: "v1",
  plural: "pods",
  kind: "Pod",
  namespaced: true,
  selectableFields: [
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
  ],
};
export const NODES: ResourceSpec = {
  group: "",
  version: "v1",
  plural: "nodes",
  kind: "Node",
  namespaced: false,
  selectableFields: ["spec.unschedulable"],
};
export const NAMESPACES: ResourceSpec = {
  group: "",
  version: "v1",
  plural: "namespaces",
  kind: "Namespace",
  namespaced: false,
  selectableFields: ["status.phase"],
};

/** `pods`, or `globalnetworkpolicies.crd.projectcalico.org` for a grouped resource (kubectl's spelling). */
export function resourceId(spec: Pick<ResourceSpec, "group" | "plural">): string {
  return spec.group === "" ? spec.plural : `${spec.plural}.${spec.group}`;
}

export type Fault =
  /** Answer with this status code and a Status object as the API server would. */
  | { kind: "status"; code: number; message?: string }
  /** Accept the request and never answer. */
  | { kind: "hang" }
  /** Drop the connection without an answer. */
  | { kind: "reset" }
  /**
   * Stop listening (connection refused) until `setFault(null)`; scoped to a method or path, drop the
   * matching connections instead.
   */
  | { kind: "down" }
  /**
   * A slow API server: handle the request `ms` later, as it would have been. The request is carried out then
   * even if its client gave up meanwhile, as a real API server may still complete a write whose client went
   * away; only the answer is dropped.
   */
  | { kind: "delay"; ms: number }
  /**
   * A slow transfer (a large list over a slow link): the answer's status and headers at once, then its body in
   * `pieces` parts `everyMs` apart; with `stallAfter`, only that many parts (0: none), and then nothing more, the
   * connection left open.
   */
  | { kind: "trickle"; pieces: number; everyMs: number; stallAfter?: number };

export interface FaultRule {
  fault: Fault;
  /** Only requests with this method (GET, POST…). */
  method?: string;
  /** Only requests whose path starts with this string or matches this expression. */
  path?: string | RegExp;
  /** Let this many matching requests through first. */
  skip?: number;
  /** Apply to this many matching requests, then clear itself; unlimited when absent. */
  times?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | null;
  status: number;
}

export interface AppliedPatch {
  resource: string;
  namespace: string | null;
  name: string;
  fieldManager: string;
  force: boolean;
  created: boolean;
}

export interface RequestCounts {
  /** Requests received, optionally only those matching method and path (prefix or expression). */
  total(filter?: { method?: string; path?: string | RegExp }): number;
  /** Requests with exactly this method and path. */
  get(method: string, path: string): number;
  /** `METHOD /path` → count. */
  snapshot(): Record<string, number>;
  /** Forgets counts and the request log. */
  reset(): void;
}

export interface ObjectStore {
  /** Stores an object as given (malformed ones too: tests use that); fills uid and resourceVersion. */
  put(resource: string, object: KubeObject): KubeObject;
  get(resource: string, name: string, namespace?: string): KubeObject | undefined;
  delete(resource: string, name: string, namespace?: string): boolean;
  list(resource: string): KubeObject[];
  clear(resource?: string): void;
}

export interface KubeApiServerOptions {
  /** Accepted bearer token; a random one by default. */
  token?: string;
  /** Custom token check (e.g. verifying EKS presigned tokens); replaces the `token` comparison. */
  authenticate?: (token: string) => boolean;
  /** Resources besides pods, nodes and namespaces. */
  resources?: readonly ResourceSpec[];
  /** Lifetime of `continue` tokens (the real server's is about 5 minutes). */
  continueTtlMs?: number;
  /** Name of the cluster, user and context in the written kubeconfig. */
  contextName?: string;
  /**
   * Events kept per resource for watches to replay, as the watch cache keeps a bounded window: a watch from a
   * version older than the oldest event let go gets an ERROR event with a 410 Status. @default 1000
   */
  watchCacheSize?: number;
}

/** A request as an interceptor sees it. */
export interface InterceptedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** The server's own answer to this request, or to it with another query (a page the caller chooses…). */
  next(query?: URLSearchParams): { code: number; body: KubeObject | string };
}

/** An answer replacing the server's (e.g. a lagging watch cache, throttling), or undefined for the server's. */
export type Interceptor = (
  request: InterceptedRequest,
) => { code: number; body: KubeObject | string; headers?: Record<string, string> } | undefined;

export interface KubeApiServer {
  url: string;
  caPem: string;
  token: string;
  /** A kubeconfig file (certificate-authority-data + token) pointing at this server, for CLI tests. */
  kubeconfigPath: string;
  counts: RequestCounts;
  requests(): readonly RecordedRequest[];
  /** Server-side applies received, with their fieldManager and force. */
  applies(): readonly AppliedPatch[];
  store: ObjectStore;
  register(spec: ResourceSpec): void;
  setFault(rule: FaultRule | Fault | null): Promise<void>;
  /** Answers authenticated requests that no fault took, before the server does; null removes it. */
  setInterceptor(interceptor: Interceptor | null): void;
  /** Makes every outstanding continue token answer 410 Expired. */
  expireContinueTokens(): void;
  /** Lets go of every event kept for watches: a watch from any version older than now is too old (410). */
  compactWatchHistory(): void;
  /** Watches being served now. */
  openWatches(): number;
  /**
   * Sends each watch started from now on its events `ms` apart (null: all at once), as a server whose link cannot
   * carry a large backlog within a short watch: what is not out at its timeoutSeconds is not sent.
   */
  setWatchPace(ms: number | null): void;
  /** Writes another kubeconfig for this server, e.g. with a wrong CA or token. */
  writeKubeconfig(options?: { caPem?: string; token?: string; contextName?: string }): Promise<string>;
  close(): Promise<void>;
}

export interface TestCertificates {
  caPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}

/** A CA and a server certificate it signed, valid for localhost, 127.0.0.1 and ::1. */
export async function createTestCertificates(): Promise<TestCertificates> {
  const notBeforeDate = new Date(Date.now() - 3600_000);
  const notAfterDate = new Date(Date.now() + 7 * 24 * 3600_000);
  const ca = await generate([{ name: "commonName", value: "calico-flows test CA" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: "commonName", value: "kube-apiserver" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  return { caPem: ca.cert, caKeyPem: ca.private, certPem: server.cert, keyPem: server.private };
}

/** Kubernetes prints timestamps as RFC 3339 with second precision. */
export function kubeTime(time: number | string | Date): string {
  const ms = time instanceof Date ? time.getTime() : typeof time === "string" ? Date.parse(time) : time;
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export interface PodFixture {
  name: string;
  namespace?: string;
  /** One IP, several (dual-stack: first is status.podIP), or none (Pending). */
  ip?: string | readonly string[] | null;
  created: number | string | Date;
  node?: string;
  hostNetwork?: boolean;
  owner?: { kind: string; name: string };
  labels?: Record<string, string>;
  phase?: string;
  deleted?: number | string | Date;
  /** Container finish time (for Succeeded/Failed pods). */
  finished?: number | string | Date;
  uid?: string;
}

/** Objects as `kubectl get -o json` shows them, for tests and benchmarks. */
export const kubeObjects = {
  pod(p: PodFixture): KubeObject {
    const ips = p.ip === undefined || p.ip === null ? [] : typeof p.ip === "string" ? [p.ip] : [...p.ip];
    const metadata: KubeObject = {
      name: p.name,
      namespace: p.namespace ?? "default",
      uid: p.uid ?? randomUUID(),
      creationTimestamp: kubeTime(p.created),
      labels: p.labels ?? {},
    };
    if (p.owner !== undefined) {
      metadata.ownerReferences = [
        {
          apiVersion: "apps/v1",
          kind: p.owner.kind,
          name: p.owner.name,
          uid: randomUUID(),
          controller: true,
        },
      ];
    }
    if (p.deleted !== undefined) metadata.deletionTimestamp = kubeTime(p.deleted);
    const status: KubeObject = { phase: p.phase ?? (ips.length > 0 ? "Running" : "Pending") };
    if (ips.length > 0) {
      status.podIP = ips[0];
      status.podIPs = ips.map((ip) => ({ ip }));
      status.startTime = kubeTime(p.created);
    }
    if (p.finished !== undefined) {
      status.containerStatuses = [
        {
          name: "main",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0, finishedAt: kubeTime(p.finished), reason: "Completed" } },
        },
      ];
    }
    const spec: KubeObject = { containers: [{ name: "main", image: "busybox" }] };
    if (p.node !== undefined) spec.nodeName = p.node;
    if (p.hostNetwork === true) spec.hostNetwork = true;
    return { apiVersion: "v1", kind: "Pod", metadata, spec, status };
  },
  node(n: {
    name: string;
    ip: string | readonly string[];
    created: number | string | Date;
    uid?: string;
  }): KubeObject {
    const ips = typeof n.ip === "string" ? [n.ip] : [...n.ip];
    return {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: n.name,
        uid: n.uid ?? randomUUID(),
        creationTimestamp: kubeTime(n.created),
        labels: {},
      },
      spec: {},
      status: {
        addresses: [
          ...ips.map((address) => ({ type: "InternalIP", address })),
          { type: "Hostname", address: n.name },
        ],
      },
    };
  },
  namespace(n: {
    name: string;
    labels?: Record<string, string>;
    created?: number | string | Date;
  }): KubeObject {
    return {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: n.name,
        uid: randomUUID(),
        creationTimestamp: kubeTime(n.created ?? 0),
        labels: { "kubernetes.io/metadata.name": n.name, ...n.labels },
      },
      spec: { finalizers: ["kubernetes"] },
      status: { phase: "Active" },
    };
  },
};

export interface EksTokenExpectation {
  clusterName: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Epoch ms to check the token's age against; unchecked when absent. */
  now?: number;
}

function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Checks an EKS bearer token the way the EKS authenticator does before calling STS: the `k8s-aws-v1.` prefix,
 * a presigned GetCallerIdentity URL on the regional STS host, `x-k8s-aws-id` among the signed headers, at
 * most 15 minutes old, and (standing in for STS) a SigV4 signature recomputed here from the secret with the
 * expected cluster name. Returns why a token is refused, or null.
 */
export function checkEksToken(token: string, expected: EksTokenExpectation): string | null {
  const prefix = "k8s-aws-v1.";
  if (!token.startsWith(prefix)) return "no k8s-aws-v1. prefix";
  const encoded = token.slice(prefix.length);
  if (/[=+/]/.test(encoded)) return "not base64url without padding";
  let url: URL;
  try {
    url = new URL(Buffer.from(encoded, "base64url").toString("utf8"));
  } catch {
    return "not a URL";
  }
  const host = `sts.${expected.region}.amazonaws.com`;
  if (url.protocol !== "https:" || url.host !== host || url.pathname !== "/") return `not ${host}`;
  const q = url.searchParams;
  if (q.get("Action") !== "GetCallerIdentity" || q.get("Version") !== "2011-06-15")
    return "not GetCallerIdentity";
  if (q.get("X-Amz-Algorithm") !== "AWS4-HMAC-SHA256") return "not SigV4";
  const date = q.get("X-Amz-Date") ?? "";
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (match === null) return "bad X-Amz-Date";
  const [, y, mo, d, h, mi, se] = match;
  const signedAt = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se));
  if (
    expected.now !== undefined &&
    (expected.now - signedAt > 15 * 60_000 || signedAt - expected.now > 60_000)
  ) {
    return "expired";
  }
  const day = date.slice(0, 8);
  const scope = `${day}/${expected.region}/sts/aws4_request`;
  if (q.get("X-Amz-Credential") !== `${expected.accessKeyId}/${scope}`) return "unexpected credential scope";
  const signedHeaders = (q.get("X-Amz-SignedHeaders") ?? "").split(";");
  if (!signedHeaders.includes("host") || !signedHeaders.includes("x-k8s-aws-id")) {
    return "x-k8s-aws-id is not signed";
  }
  const headerValues: Record<string, string> = { host, "x-k8s-aws-id": expected.clusterName };
  if (signedHeaders.some((header) => headerValues[header] === undefined)) return "unexpected signed header";
  const canonicalQuery = [...q]
    .filter(([key]) => key !== "X-Amz-Signature")
    .map(([key, value]) => [rfc3986(key), rfc3986(value)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join("&");
  const canonicalRequest = [
    "GET",
    "/",
    canonicalQuery,
    signedHeaders.map((header) => `${header}:${headerValues[header]}\n`).join(""),
    signedHeaders.join(";"),
    createHash("sha256").update("").digest("hex"),
  ].join("\n");
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();
  const signingKey = hmac(
    hmac(hmac(hmac(`AWS4${expected.secretAccessKey}`, day), expected.region), "sts"),
    "aws4_request",
  );
  const signature = createHmac("sha256", signingKey).update(stringToSign).digest("hex");
  return signature === q.get("X-Amz-Signature") ? null : "signature mismatch";
}

class HttpError extends Error {
  readonly status: KubeObject;
  readonly code: number;
  constructor(code: number, status: KubeObject) {
    super(String(status.message));
    this.code = code;
    this.status = status;
  }
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

function statusObject(code: number, message: string, reason?: string, details?: KubeObject): KubeObject {
  const status: KubeObject = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: reason ?? REASONS[code] ?? "Unknown",
    code,
  };
  if (details !== undefined) status.details = details;
  return status;
}

function fail(code: number, message: string, reason?: string, details?: KubeObject): never {
  throw new HttpError(code, statusObject(code, message, reason, details));
}

/** What the API server answers for a path no registered resource serves (e.g. no Calico API server). */
function notFoundResource(): never {
  fail(404, "the server could not find the requested resource", "NotFound", {});
}

function qualified(spec: ResourceSpec): string {
  return spec.group === "" ? spec.plural : `${spec.plural}.${spec.group}`;
}

function details(spec: ResourceSpec, name?: string): KubeObject {
  const d: KubeObject = { kind: spec.plural };
  if (name !== undefined) d.name = name;
  if (spec.group !== "") d.group = spec.group;
  return d;
}

function apiVersionOf(spec: ResourceSpec): string {
  return spec.group === "" ? spec.version : `${spec.group}/${spec.version}`;
}

function meta(object: KubeObject): KubeObject {
  const m = object.metadata;
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    const fresh: KubeObject = {};
    object.metadata = fresh;
    return fresh;
  }
  return m as KubeObject;
}

function fieldValue(object: unknown, path: string): string {
  let value: unknown = object;
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null) return "";
    value = (value as KubeObject)[part];
  }
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : String(value);
}

interface FieldTerm {
  path: string;
  value: string;
  negate: boolean;
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === "\\" && i + 1 < text.length) {
      current += text[i + 1];
      i++;
    } else if (c === separator) {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function parseFieldSelector(selector: string, spec: ResourceSpec): FieldTerm[] {
  if (selector.trim() === "") return [];
  const allowed = new Set(["metadata.name", "metadata.namespace", ...(spec.selectableFields ?? [])]);
  return splitUnescaped(selector, ",").map((term) => {
    const match = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
    if (match === null) fail(400, `invalid selector: '${selector}'; can't understand '${term}'`);
    const [, path, op, value] = match as unknown as [string, string, string, string];
    if (!allowed.has(path)) fail(400, `field label not supported: ${path}`);
    return { path, value, negate: op === "!=" };
  });
}

type LabelTerm = (labels: Record<string, unknown>) => boolean;

function parseLabelSelector(selector: string): LabelTerm[] {
  const terms: LabelTerm[] = [];
  const pattern =
    /\s*(?:(!)\s*([A-Za-z0-9./_-]+)|([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s(in|notin)\s*\(([^)]*)\))?)\s*(?:,|$)/y;
  let index = 0;
  while (index < selector.length) {
    pattern.lastIndex = index;
    const m = pattern.exec(selector);
    if (m === null || m[0].length === 0)
      fail(400, `unable to parse requirement: found '${selector.slice(index)}'`);
    index = pattern.lastIndex;
    const [, bang, notKey, key, op, value, setOp, set] = m;
    if (bang !== undefined && notKey !== undefined) {
      terms.push((labels) => !(notKey in labels));
    } else if (key !== undefined && op !== undefined) {
      const want = value ?? "";
      terms.push(op === "!=" ? (labels) => labels[key] !== want : (labels) => labels[key] === want);
    } else if (key !== undefined && setOp !== undefined) {
      const values = new Set((set ?? "").split(",").map((v) => v.trim()));
      terms.push(
        setOp === "in"
          ? (labels) => values.has(String(labels[key]))
          : (labels) => !(key in labels) || !values.has(String(labels[key])),
      );
    } else if (key !== undefined) {
      terms.push((labels) => key in labels);
    }
  }
  return terms;
}

function isObject(value: unknown): value is KubeObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: KubeObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Server-side apply, approximately: maps merge recursively, lists and scalars are replaced. */
function applyMerge(target: unknown, applied: unknown): unknown {
  if (!isObject(applied) || !isObject(target)) return applied;
  const result: KubeObject = { ...target };
  for (const [key, value] of Object.entries(applied)) result[key] = applyMerge(result[key], value);
  return result;
}

function pointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) fail(422, `invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split("/")
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** RFC 6902 JSON patch: add, remove, replace, test. */
function jsonPatch(target: KubeObject, operations: unknown): KubeObject {
  if (!Array.isArray(operations)) fail(400, "json patch must be an array of operations");
  const doc = structuredClone(target);
  for (const raw of operations) {
    if (!isObject(raw)) fail(400, "json patch operation must be an object");
    const parts = pointer(String(raw.path));
    const last = parts.pop();
    let parent: unknown = doc;
    for (const p of parts) parent = (parent as KubeObject)?.[p];
    if (typeof parent !== "object" || parent === null || last === undefined) {
      fail(
        422,
        `the server rejected our request due to an error in our request: path ${String(raw.path)} not found`,
      );
    }
    const list = Array.isArray(parent) ? (parent as unknown[]) : undefined;
    const object = parent as KubeObject;
    const present = list === undefined ? last in object : Number(last) < list.length;
    switch (raw.op) {
      case "add":
        if (list !== undefined) list.splice(last === "-" ? list.length : Number(last), 0, raw.value);
        else object[last] = raw.value;
        break;
      case "replace":
        if (!present) fail(422, `replace operation does not apply: doc is missing key: ${String(raw.path)}`);
        if (list !== undefined) list[Number(last)] = raw.value;
        else object[last] = raw.value;
        break;
      case "remove":
        if (!present) fail(422, `remove operation does not apply: doc is missing key: ${String(raw.path)}`);
        if (list !== undefined) list.splice(Number(last), 1);
        else delete object[last];
        break;
      case "test": {
        const current = list !== undefined ? list[Number(last)] : object[last];
        if (JSON.stringify(current) !== JSON.stringify(raw.value))
          fail(422, `testing value ${String(raw.path)} failed`);
        break;
      }
      default:
        fail(400, `Unexpected kind: ${String(raw.op)}`);
    }
  }
  return doc;
}

interface Snapshot {
  items: KubeObject[];
  resourceVersion: string;
  issuedAt: number;
}

type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

/** A change of one object, as the watch cache keeps it: the object as it was after the change. */
interface StoredEvent {
  type: WatchEventType;
  object: KubeObject;
  version: number;
}

/** The changes of one resource that a watch can still replay, and the newest version let go of. */
interface EventLog {
  events: StoredEvent[];
  evictedThrough: number;
}

/** A watch being served: the changes it wants, and where they go. */
interface Watcher {
  resource: string;
  wants(object: KubeObject): boolean;
  send(type: WatchEventType, object: KubeObject): void;
}

/** Thrown by the router for a watch request that passed validation: handle() streams it. */
class WatchStart {
  readonly spec: ResourceSpec;
  readonly wants: (object: KubeObject) => boolean;
  readonly query: URLSearchParams;

  constructor(spec: ResourceSpec, wants: (object: KubeObject) => boolean, query: URLSearchParams) {
    this.spec = spec;
    this.wants = wants;
    this.query = query;
  }
}

interface ContinueToken {
  v: string;
  rv: string;
  start: number;
  snapshot: string;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const certificates = await createTestCertificates();
  const token = options.token ?? randomBytes(24).toString("base64url");
  const authenticate = options.authenticate ?? ((t: string) => t === token);
  const continueTtlMs = options.continueTtlMs ?? 5 * 60_000;
  const contextName = options.contextName ?? "calico-flows-test";

  const resources = new Map<string, ResourceSpec>();
  const objects = new Map<string, Map<string, KubeObject>>();
  const register = (spec: ResourceSpec) => {
    resources.set(resourceId(spec), spec);
    if (!objects.has(resourceId(spec))) objects.set(resourceId(spec), new Map());
  };
  for (const spec of [PODS, NODES, NAMESPACES, ...(options.resources ?? [])]) register(spec);

  let resourceVersion = 1000;
  const nextVersion = () => String(++resourceVersion);
  const snapshots = new Map<string, Snapshot>();
  const counts = new Map<string, number>();
  let log: RecordedRequest[] = [];
  const applied: AppliedPatch[] = [];
  let faultRule: (FaultRule & { seen: number; applied: number }) | null = null;
  let interceptor: Interceptor | null = null;
  /** Milliseconds between a watch's events (setWatchPace), or null: all at once. */
  let watchPaceMs: number | null = null;

  const specOf = (resource: string): ResourceSpec => {
    const spec = resources.get(resource);
    if (spec === undefined) throw new Error(`resource ${resource} is not registered`);
    return spec;
  };
  const keyOf = (name: string, namespace: string | undefined | null) => `${namespace ?? ""}/${name}`;
  const bucket = (spec: ResourceSpec) => objects.get(resourceId(spec)) as Map<string, KubeObject>;

  const watchCacheSize = options.watchCacheSize ?? 1000;
  const eventLogs = new Map<string, EventLog>();
  const watchers = new Set<Watcher>();
  /** Records a change (`object` as stored after it, never changed in place) and tells the watches that want it. */
  const emit = (spec: ResourceSpec, type: WatchEventType, object: KubeObject) => {
    const id = resourceId(spec);
    let log = eventLogs.get(id);
    if (log === undefined) {
      log = { events: [], evictedThrough: 0 };
      eventLogs.set(id, log);
    }
    log.events.push({ type, object, version: Number(meta(object).resourceVersion) });
    while (log.events.length > watchCacheSize) {
      log.evictedThrough = (log.events.shift() as StoredEvent).version;
    }
    for (const w of watchers) if (w.resource === id && w.wants(object)) w.send(type, object);
  };
  /** A deleted object as its DELETED event carries it: its last state, at the version of the deletion. */
  const deleted = (object: KubeObject, version: string): KubeObject => ({
    ...object,
    metadata: { ...meta(object), resourceVersion: version },
  });

  const store: ObjectStore = {
    put(resource, object) {
      const spec = specOf(resource);
      const copy = structuredClone(object);
      const m = meta(copy);
      if (typeof m.name !== "string") throw new Error(`store.put(${resource}): object needs metadata.name`);
      if (m.uid === undefined) m.uid = randomUUID();
      m.resourceVersion = nextVersion();
      const namespace = spec.namespaced ? String(m.namespace ?? "default") : null;
      if (spec.namespaced) m.namespace = namespace;
      const key = keyOf(m.name, namespace);
      const existed = bucket(spec).has(key);
      bucket(spec).set(key, copy);
      emit(spec, existed ? "MODIFIED" : "ADDED", copy);
      return structuredClone(copy);
    },
    get(resource, name, namespace) {
      const spec = specOf(resource);
      const found = bucket(spec).get(keyOf(name, spec.namespaced ? (namespace ?? "default") : null));
      return found === undefined ? undefined : structuredClone(found);
    },
    delete(resource, name, namespace) {
      const spec = specOf(resource);
      const version = nextVersion();
      const key = keyOf(name, spec.namespaced ? (namespace ?? "default") : null);
      const found = bucket(spec).get(key);
      if (found === undefined) return false;
      bucket(spec).delete(key);
      emit(spec, "DELETED", deleted(found, version));
      return true;
    },
    list(resource) {
      return [...bucket(specOf(resource)).values()].map((o) => structuredClone(o));
    },
    clear(resource) {
      for (const [id, b] of objects) {
        if (resource !== undefined && id !== resource) continue;
        const spec = specOf(id);
        for (const object of b.values()) emit(spec, "DELETED", deleted(object, nextVersion()));
        b.clear();
      }
      nextVersion();
    },
  };

  // --- request handling -------------------------------------------------------------------------------

  function discoveryResources(group: string, version: string): KubeObject[] {
    return [...resources.values()]
      .filter((s) => s.group === group && s.version === version)
      .map((s) => ({
        name: s.plural,
        singularName: s.kind.toLowerCase(),
        namespaced: s.namespaced,
        kind: s.kind,
        verbs: ["create", "delete", "get", "list", "patch", "update"],
      }));
  }

  function groupVersions(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const s of resources.values()) {
      if (s.group === "") continue;
      const versions = groups.get(s.group) ?? [];
      if (!versions.includes(s.version)) versions.push(s.version);
      groups.set(s.group, versions);
    }
    return groups;
  }

  function apiGroup(name: string, versions: string[]): KubeObject {
    const list = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
    return { name, versions: list, preferredVersion: list[0] };
  }

  /**
   * resourceVersion and resourceVersionMatch as the API server takes them (ListOptions validation, then the
   * storage): a match only with a version and without continue, a continue without a version, versions that
   * are revisions. Every answer here is the current state: an exact read of another version is refused as
   * expired (410), and any "NotOlderThan" read accepts the current state; a version the
   * server has not reached yet is refused as the watch cache does after waiting for it (504, Retry-After).
   */
  function checkListVersion(query: URLSearchParams, continueText: string | null, limit: number): void {
    const version = query.get("resourceVersion") ?? "";
    const match = query.get("resourceVersionMatch") ?? "";
    const invalid = (message: string) =>
      fail(422, `ListOptions.meta.k8s.io "" is invalid: ${message}`, "Invalid", {
        kind: "ListOptions",
        group: "meta.k8s.io",
      });
    if (match !== "") {
      if (version === "")
        invalid(
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        );
      if (continueText !== null && continueText !== "")
        invalid(
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
        );
      if (match !== "Exact" && match !== "NotOlderThan")
        invalid(
          `resourceVersionMatch: Unsupported value: "${match}": supported values: "Exact", "NotOlderThan", ""`,
        );
      if (match === "Exact" && version === "0")
        invalid(
          'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
        );
    }
    if (continueText !== null && continueText !== "" && version !== "" && version !== "0") {
      fail(400, "specifying resource version is not allowed when using continue");
    }
    if (version === "" || version === "0") return;
    if (!/^\d+$/.test(version)) fail(400, `invalid resource version: ${version}`);
    // Without a match, a version with a limit is read exactly (the legacy semantics), without one not older.
    if (match === "Exact" || (match === "" && limit > 0)) {
      if (Number(version) !== resourceVersion)
        fail(410, `too old resource version: ${version} (${resourceVersion})`, "Expired");
      return;
    }
    if (Number(version) > resourceVersion) {
      fail(504, `Too large resource version: ${version}, current: ${resourceVersion}`, "Timeout", {
        causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
        retryAfterSeconds: 1,
      });
    }
  }

  function list(spec: ResourceSpec, namespace: string | null, query: URLSearchParams): KubeObject {
    const listMeta: KubeObject = { resourceVersion: String(resourceVersion) };
    const limitText = query.get("limit");
    const limit = limitText === null ? 0 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0) fail(400, `invalid limit: ${limitText}`);
    const continueText = query.get("continue");
    checkListVersion(query, continueText, limit);

    let items: KubeObject[];
    let start = 0;
    let snapshotId: string;
    if (continueText !== null && continueText !== "") {
      let parsed: ContinueToken;
      try {
        parsed = JSON.parse(Buffer.from(continueText, "base64").toString("utf8")) as ContinueToken;
      } catch {
        fail(400, `continue key is not valid: ${continueText}`);
      }
      const snapshot = snapshots.get(parsed.snapshot);
      if (snapshot === undefined || Date.now() - snapshot.issuedAt > continueTtlMs) {
        snapshots.delete(parsed.snapshot);
        // The real server also offers an inconsistent continuation token here; clients of this project
        // restart the list instead, so it is left out.
        fail(
          410,
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
          "Expired",
        );
      }
      items = snapshot.items;
      start = parsed.start;
      snapshotId = parsed.snapshot;
      listMeta.resourceVersion = snapshot.resourceVersion;
    } else {
      const fields = parseFieldSelector(query.get("fieldSelector") ?? "", spec);
      const labels = parseLabelSelector(query.get("labelSelector") ?? "");
      const prefix = namespace === null ? "" : `${namespace}/`;
      items = [...bucket(spec).entries()]
        .filter(([key]) => key.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, o]) => o)
        .filter((o) => fields.every((f) => (fieldValue(o, f.path) === f.value) !== f.negate))
        .filter((o) => {
          const l = meta(o).labels;
          const objectLabels = isObject(l) ? l : {};
          return labels.every((term) => term(objectLabels));
        })
        .map((o) => structuredClone(o));
      snapshotId = randomUUID();
      if (limit > 0 && items.length > limit) {
        snapshots.set(snapshotId, { items, resourceVersion: String(resourceVersion), issuedAt: Date.now() });
      }
      if (fields.length === 0 && labels.length === 0 && limit > 0 && items.length > limit) {
        listMeta.remainingItemCount = items.length - limit;
      }
    }
    const end = limit > 0 ? Math.min(items.length, start + limit) : items.length;
    const page = items.slice(start, end);
    if (end < items.length) {
      const next: ContinueToken = {
        v: "meta.k8s.io/v1",
        rv: String(listMeta.resourceVersion),
        start: end,
        snapshot: snapshotId,
      };
      listMeta.continue = Buffer.from(JSON.stringify(next)).toString("base64");
      if (start > 0) listMeta.remainingItemCount = items.length - end;
    }
    // Typed (core) lists carry no kind/apiVersion on their items; custom resources do.
    const shown =
      spec.group === ""
        ? page.map(({ kind: _k, apiVersion: _a, ...rest }) => rest)
        : page.map((o) => ({ ...o, apiVersion: apiVersionOf(spec), kind: spec.kind }));
    return { kind: `${spec.kind}List`, apiVersion: apiVersionOf(spec), metadata: listMeta, items: shown };
  }

  /**
   * A watch request checked as the API server checks it (ListOptions validation), thrown for handle() to stream. A
   * version the server has not reached is accepted, as the watch cache accepts one without sendInitialEvents (it
   * neither waits nor refuses: kubernetes/kubernetes#135452); the watch sends the changes after it. Selectors are
   * applied to each change's object (the real server also turns an object leaving or entering the selection into
   * DELETED or ADDED, which no client here relies on).
   */
  function watchRequest(spec: ResourceSpec, namespace: string | null, query: URLSearchParams): never {
    const version = query.get("resourceVersion") ?? "";
    if ((query.get("resourceVersionMatch") ?? "") !== "") {
      fail(
        422,
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch',
        "Invalid",
        { kind: "ListOptions", group: "meta.k8s.io" },
      );
    }
    if (version !== "" && version !== "0" && !/^\d+$/.test(version)) {
      fail(400, `invalid resource version: ${version}`);
    }
    const timeout = query.get("timeoutSeconds");
    if (timeout !== null && !/^\d+$/.test(timeout)) fail(400, `invalid timeoutSeconds: ${timeout}`);
    const fields = parseFieldSelector(query.get("fieldSelector") ?? "", spec);
    const labels = parseLabelSelector(query.get("labelSelector") ?? "");
    const wants = (o: KubeObject) => {
      if (namespace !== null && meta(o).namespace !== namespace) return false;
      if (!fields.every((f) => (fieldValue(o, f.path) === f.value) !== f.negate)) return false;
      const l = meta(o).labels;
      const objectLabels = isObject(l) ? l : {};
      return labels.every((term) => term(objectLabels));
    };
    throw new WatchStart(spec, wants, query);
  }

  /**
   * Streams a watch as the watch cache serves one: from "0" (or no version) every object as ADDED, from a version
   * every change since it that the log still has (an ERROR event with a 410 Status when it let one go), then the
   * changes as they come until `timeoutSeconds` (default 30 minutes); with allowWatchBookmarks, a BOOKMARK at the
   * current version 2 s before the end, when the watch is longer than that (cacheWatcher.nextBookmarkTime). With a
   * pace (setWatchPace), the events go out in order that far apart, and those not out at the timeout are not sent:
   * the WatchServer ends the answer cleanly at its timeout however much of a backlog its link has not carried.
   */
  function streamWatch(res: ServerResponse, { spec, wants, query }: WatchStart): void {
    const id = resourceId(spec);
    const version = query.get("resourceVersion") ?? "";
    const timeoutText = query.get("timeoutSeconds");
    const timeoutMs = timeoutText === null ? 1_800_000 : Number(timeoutText) * 1000;
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache, private" });
    res.flushHeaders();
    const write = (type: string, object: KubeObject) => {
      if (!res.destroyed && !res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const pace = watchPaceMs;
    const queue: (() => void)[] = [];
    let pacing: ReturnType<typeof setTimeout> | undefined;
    // Sends the next event, and lets the one after it go `pace` later.
    const pump = () => {
      pacing = undefined;
      const next = queue.shift();
      if (next === undefined) return;
      next();
      pacing = setTimeout(pump, pace ?? 0);
    };
    const send = (type: WatchEventType, object: KubeObject) => {
      const shownObject = shown(spec, object);
      if (pace === null) return write(type, shownObject);
      queue.push(() => write(type, shownObject));
      if (pacing === undefined) pump();
    };
    const log = eventLogs.get(id) ?? { events: [], evictedThrough: 0 };
    if (version === "" || version === "0") {
      for (const o of bucket(spec).values()) if (wants(o)) send("ADDED", o);
    } else if (Number(version) < log.evictedThrough) {
      write(
        "ERROR",
        statusObject(410, `too old resource version: ${version} (${log.evictedThrough})`, "Expired"),
      );
      res.end();
      return;
    } else {
      for (const e of log.events) if (e.version > Number(version) && wants(e.object)) send(e.type, e.object);
    }
    const watcher: Watcher = { resource: id, wants, send };
    watchers.add(watcher);
    watching.add(res);
    const timers: ReturnType<typeof setTimeout>[] = [];
    const end = () => {
      for (const timer of timers) clearTimeout(timer);
      clearTimeout(pacing);
      watchers.delete(watcher);
      watching.delete(res);
      if (!res.writableEnded) res.end();
    };
    timers.push(setTimeout(end, timeoutMs));
    if (query.get("allowWatchBookmarks") === "true" && timeoutMs > 2_000) {
      const bookmark = () =>
        write("BOOKMARK", {
          kind: spec.kind,
          apiVersion: apiVersionOf(spec),
          metadata: { resourceVersion: String(resourceVersion) },
        });
      timers.push(setTimeout(bookmark, timeoutMs - 2_000));
    }
    res.on("close", end);
  }

  function shown(spec: ResourceSpec, object: KubeObject): KubeObject {
    return { ...structuredClone(object), apiVersion: apiVersionOf(spec), kind: spec.kind };
  }

  function parseJson(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch (error) {
      fail(400, `error decoding the body: ${(error as Error).message}`);
    }
  }

  function checkKind(spec: ResourceSpec, body: KubeObject) {
    if (body.kind !== undefined && body.kind !== spec.kind) {
      fail(400, `the kind in the body (${String(body.kind)}) does not match the resource (${spec.kind})`);
    }
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(spec)) {
      fail(
        400,
        `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(spec)})`,
      );
    }
  }

  function requireNamespace(spec: ResourceSpec, namespace: string | null) {
    if (spec.namespaced && namespace !== null && !bucket(NAMESPACES).has(keyOf(namespace, null))) {
      fail(404, `namespaces "${namespace}" not found`, "NotFound", { name: namespace, kind: "namespaces" });
    }
  }

  function create(
    spec: ResourceSpec,
    namespace: string | null,
    body: KubeObject,
    dryRun: boolean,
  ): { code: number; object: KubeObject } {
    checkKind(spec, body);
    const m = meta(body);
    if (typeof m.name !== "string" || m.name === "") {
      if (typeof m.generateName === "string" && m.generateName !== "") {
        m.name = `${m.generateName}${randomBytes(3).toString("hex").slice(0, 5)}`;
      } else {
        fail(
          422,
          `${spec.kind} "" is invalid: metadata.name: Required value: name or generateName is required`,
        );
      }
    }
    const name = m.name as string;
    if (spec.namespaced) {
      if (m.namespace !== undefined && m.namespace !== namespace) {
        fail(400, "the namespace of the provided object does not match the namespace sent on the request");
      }
      m.namespace = namespace;
    }
    requireNamespace(spec, namespace);
    const key = keyOf(name, namespace);
    if (bucket(spec).has(key)) {
      fail(409, `${qualified(spec)} "${name}" already exists`, "AlreadyExists", details(spec, name));
    }
    m.uid = randomUUID();
    m.creationTimestamp = kubeTime(Date.now());
    if (spec.group !== "") m.generation = 1;
    const object = { ...body, apiVersion: apiVersionOf(spec), kind: spec.kind };
    if (!dryRun) {
      meta(object).resourceVersion = nextVersion();
      const stored = structuredClone(object);
      bucket(spec).set(key, stored);
      emit(spec, "ADDED", stored);
    }
    return { code: 201, object };
  }

  function existing(spec: ResourceSpec, namespace: string | null, name: string): KubeObject {
    const found = bucket(spec).get(keyOf(name, namespace));
    if (found === undefined)
      fail(404, `${qualified(spec)} "${name}" not found`, "NotFound", details(spec, name));
    return found;
  }

  function save(
    spec: ResourceSpec,
    namespace: string | null,
    name: string,
    before: KubeObject,
    after: KubeObject,
    dryRun: boolean,
  ) {
    const m = meta(after);
    const b = meta(before);
    m.name = name;
    if (spec.namespaced) m.namespace = namespace;
    m.uid = b.uid;
    m.creationTimestamp = b.creationTimestamp;
    if (spec.group !== "") {
      const changed = JSON.stringify(after.spec) !== JSON.stringify(before.spec);
      m.generation = Number(b.generation ?? 1) + (changed ? 1 : 0);
    }
    after.apiVersion = apiVersionOf(spec);
    after.kind = spec.kind;
    if (!dryRun) {
      m.resourceVersion = nextVersion();
      const stored = structuredClone(after);
      bucket(spec).set(keyOf(name, namespace), stored);
      emit(spec, "MODIFIED", stored);
    } else {
      m.resourceVersion = b.resourceVersion;
    }
    return after;
  }

  function update(
    spec: ResourceSpec,
    namespace: string | null,
    name: string,
    body: KubeObject,
    dryRun: boolean,
  ) {
    checkKind(spec, body);
    const before = existing(spec, namespace, name);
    const m = meta(body);
    if (m.name !== undefined && m.name !== name) {
      fail(400, `the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
    }
    if (m.resourceVersion !== undefined && m.resourceVersion !== meta(before).resourceVersion) {
      fail(
        409,
        `Operation cannot be fulfilled on ${qualified(spec)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        "Conflict",
        details(spec, name),
      );
    }
    return save(spec, namespace, name, before, structuredClone(body), dryRun);
  }

  function patch(
    spec: ResourceSpec,
    namespace: string | null,
    name: string,
    contentType: string,
    text: string,
    query: URLSearchParams,
    dryRun: boolean,
  ): { code: number; object: KubeObject } {
    if (contentType === "application/apply-patch+yaml") {
      const fieldManager = query.get("fieldManager");
      if (fieldManager === null || fieldManager === "") {
        fail(
          422,
          'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        );
      }
      let body: unknown;
      try {
        body = loadYaml(text);
      } catch (error) {
        fail(400, `error decoding YAML: ${(error as Error).message}`);
      }
      if (!isObject(body)) fail(400, "the body of an apply patch must be an object");
      if (body.kind === undefined || body.apiVersion === undefined) {
        fail(400, "apply patch needs apiVersion and kind");
      }
      checkKind(spec, body);
      const m = meta(body);
      if (m.name !== undefined && m.name !== name) {
        fail(400, `the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
      }
      const force = query.get("force") === "true";
      const managed = [
        {
          manager: fieldManager,
          operation: "Apply",
          apiVersion: apiVersionOf(spec),
          time: kubeTime(Date.now()),
        },
      ];
      const before = bucket(spec).get(keyOf(name, namespace));
      applied.push({
        resource: resourceId(spec),
        namespace,
        name,
        fieldManager,
        force,
        created: before === undefined,
      });
      if (before === undefined) {
        m.name = name;
        m.managedFields = managed;
        return create(spec, namespace, body, dryRun);
      }
      const after = applyMerge(structuredClone(before), body) as KubeObject;
      const others = (
        Array.isArray(meta(before).managedFields) ? (meta(before).managedFields as KubeObject[]) : []
      ).filter((f) => f.manager !== fieldManager);
      meta(after).managedFields = [...others, ...managed];
      return { code: 200, object: save(spec, namespace, name, before, after, dryRun) };
    }
    const before = existing(spec, namespace, name);
    let after: KubeObject;
    if (
      contentType === "application/merge-patch+json" ||
      (contentType === "application/strategic-merge-patch+json" && spec.group === "")
    ) {
      const body = parseJson(text);
      if (!isObject(body)) fail(400, "a merge patch must be a JSON object");
      after = mergePatch(structuredClone(before), body) as KubeObject;
    } else if (contentType === "application/json-patch+json") {
      after = jsonPatch(before, parseJson(text));
    } else {
      fail(
        415,
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml${spec.group === "" ? ", application/strategic-merge-patch+json" : ""}`,
      );
    }
    return { code: 200, object: save(spec, namespace, name, before, after, dryRun) };
  }

  function remove(spec: ResourceSpec, namespace: string | null, name: string, dryRun: boolean): KubeObject {
    const before = existing(spec, namespace, name);
    if (!dryRun) {
      bucket(spec).delete(keyOf(name, namespace));
      emit(spec, "DELETED", deleted(before, nextVersion()));
    }
    if (spec === PODS) return shown(spec, before);
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { ...details(spec, name), uid: meta(before).uid },
    };
  }

  function resourceRoute(
    group: string,
    version: string,
    rest: string[],
    method: string,
    query: URLSearchParams,
    contentType: string,
    text: string,
  ): { code: number; body: KubeObject } {
    let namespace: string | null = null;
    let plural: string | undefined;
    let name: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1] as string;
      plural = rest[2];
      name = rest[3];
      if (rest.length > 4) notFoundResource();
    } else {
      plural = rest[0];
      name = rest[1];
      if (rest.length > 2) notFoundResource();
    }
    const spec = [...resources.values()].find(
      (s) => s.group === group && s.version === version && s.plural === plural,
    );
    if (spec === undefined) notFoundResource();
    if (!spec.namespaced && namespace !== null) notFoundResource();
    const dryRun = query.get("dryRun") === "All";

    if (name === undefined) {
      const watch = query.get("watch");
      if (method === "GET" && (watch === "true" || watch === "1")) watchRequest(spec, namespace, query);
      if (method === "GET") return { code: 200, body: list(spec, namespace, query) };
      if (method === "POST") {
        if (spec.namespaced && namespace === null)
          fail(405, "the server does not allow this method on the requested resource");
        const body = parseJson(text);
        if (!isObject(body)) fail(400, "the body of a create must be an object");
        const result = create(spec, namespace, body, dryRun);
        return { code: result.code, body: result.object };
      }
      fail(405, "the server does not allow this method on the requested resource");
    }
    if (spec.namespaced && namespace === null) notFoundResource();
    switch (method) {
      case "GET":
        return { code: 200, body: shown(spec, existing(spec, namespace, name)) };
      case "PUT": {
        const body = parseJson(text);
        if (!isObject(body)) fail(400, "the body of an update must be an object");
        return { code: 200, body: update(spec, namespace, name, body, dryRun) };
      }
      case "PATCH": {
        const result = patch(spec, namespace, name, contentType, text, query, dryRun);
        return { code: result.code, body: result.object };
      }
      case "DELETE":
        return { code: 200, body: remove(spec, namespace, name, dryRun) };
      default:
        fail(405, "the server does not allow this method on the requested resource");
    }
  }

  function route(
    method: string,
    url: URL,
    contentType: string,
    text: string,
  ): { code: number; body: KubeObject | string } {
    const segments = url.pathname
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
    const [root, second, third] = segments;
    if (segments.length === 1 && (root === "healthz" || root === "readyz" || root === "livez")) {
      return { code: 200, body: "ok" };
    }
    if (segments.length === 1 && root === "version") {
      return {
        code: 200,
        body: { major: "1", minor: "33", gitVersion: "v1.33.0-calico-flows-test", platform: "linux/amd64" },
      };
    }
    if (root === "api") {
      if (segments.length === 1) return { code: 200, body: { kind: "APIVersions", versions: ["v1"] } };
      if (second !== "v1") notFoundResource();
      if (segments.length === 2) {
        return {
          code: 200,
          body: { kind: "APIResourceList", groupVersion: "v1", resources: discoveryResources("", "v1") },
        };
      }
      return resourceRoute("", "v1", segments.slice(2), method, url.searchParams, contentType, text);
    }
    if (root === "apis") {
      const groups = groupVersions();
      if (segments.length === 1) {
        return {
          code: 200,
          body: {
            kind: "APIGroupList",
            apiVersion: "v1",
            groups: [...groups].map(([name, versions]) => apiGroup(name, versions)),
          },
        };
      }
      const versions = groups.get(second as string);
      if (versions === undefined) notFoundResource();
      if (segments.length === 2) {
        return {
          code: 200,
          body: { kind: "APIGroup", apiVersion: "v1", ...apiGroup(second as string, versions) },
        };
      }
      if (!versions.includes(third as string)) notFoundResource();
      if (segments.length === 3) {
        return {
          code: 200,
          body: {
            kind: "APIResourceList",
            apiVersion: "v1",
            groupVersion: `${second}/${third}`,
            resources: discoveryResources(second as string, third as string),
          },
        };
      }
      return resourceRoute(
        second as string,
        third as string,
        segments.slice(3),
        method,
        url.searchParams,
        contentType,
        text,
      );
    }
    notFoundResource();
  }

  function faultFor(method: string, path: string): Fault | null {
    const rule = faultRule;
    if (rule === null) return null;
    if (rule.method !== undefined && rule.method.toUpperCase() !== method) return null;
    if (rule.path !== undefined) {
      const matches = typeof rule.path === "string" ? path.startsWith(rule.path) : rule.path.test(path);
      if (!matches) return null;
    }
    rule.seen++;
    if (rule.seen <= (rule.skip ?? 0)) return null;
    rule.applied++;
    if (rule.times !== undefined && rule.applied >= rule.times) faultRule = null;
    return rule.fault;
  }

  function faultStatus(code: number, method: string, path: string, message?: string): KubeObject {
    switch (code) {
      case 401:
        return statusObject(401, message ?? "Unauthorized");
      case 403: {
        const plural = path.split("/").filter(Boolean).at(-1) ?? "";
        return statusObject(
          403,
          message ??
            `${plural} is forbidden: User "system:serviceaccount:test:calico-flows" cannot ${method === "GET" ? "list" : method.toLowerCase()} resource "${plural}" in API group "" at the cluster scope`,
          "Forbidden",
          { kind: plural },
        );
      }
      case 429:
        return statusObject(429, message ?? "Too many requests, please try again later.", "TooManyRequests", {
          retryAfterSeconds: 1,
        });
      case 500: {
        const cause = message ?? "etcdserver: request timed out";
        return statusObject(500, `Internal error occurred: ${cause}`, "InternalError", {
          causes: [{ message: cause }],
        });
      }
      default:
        return statusObject(code, message ?? `test fault ${code}`);
    }
  }

  const hanging = new Set<ServerResponse>();
  const watching = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const delays = new Set<ReturnType<typeof setTimeout>>();
  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        delays.delete(timer);
        resolve();
      }, ms);
      delays.add(timer);
    });

  /** Writes `body` as a trickle fault says; one that stalls is left hanging, as a hang fault is. */
  function writeSlowly(res: ServerResponse, body: Buffer, pace: Extract<Fault, { kind: "trickle" }>) {
    const size = Math.ceil(body.length / pace.pieces);
    let written = 0;
    res.flushHeaders();
    const next = () => {
      if (res.destroyed) return;
      if (written === pace.stallAfter) {
        hanging.add(res);
        return;
      }
      res.write(body.subarray(written * size, (written + 1) * size));
      written++;
      if (written * size >= body.length) res.end();
      else void delay(pace.everyMs).then(next);
    };
    next();
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const method = (req.method ?? "GET").toUpperCase();
    const url = new URL(req.url ?? "/", "https://localhost");
    const key = `${method} ${url.pathname}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    const record: RecordedRequest = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: contentType === "" ? null : contentType,
      status: 0,
    };
    log.push(record);
    let delayed = false;
    let trickle: Extract<Fault, { kind: "trickle" }> | undefined;
    const send = (code: number, body: KubeObject | string, extra: Record<string, string> = {}) => {
      record.status = code;
      // A delayed request whose client went away: carried out, but there is no one to answer.
      if (delayed && (res.destroyed || req.socket.destroyed)) return;
      const text = typeof body === "string" ? body : JSON.stringify(body);
      const headers: Record<string, string> = {
        "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
        "cache-control": "no-cache, private",
      };
      // As the API server's error writer does: a Status that says when to retry says it in Retry-After too.
      const retryAfter =
        typeof body === "string" ? undefined : (body.details as KubeObject | undefined)?.retryAfterSeconds;
      if (typeof retryAfter === "number" && retryAfter > 0) headers["retry-after"] = String(retryAfter);
      else if (code === 429) headers["retry-after"] = "1";
      res.writeHead(code, { ...headers, ...extra });
      if (trickle === undefined) res.end(text);
      else writeSlowly(res, Buffer.from(text), trickle);
    };
    try {
      const text = await readBody(req);
      const auth = req.headers.authorization ?? "";
      const bearer = auth.startsWith("Bearer ") ? auth.slice("Bearer ".length).trim() : "";
      if (bearer === "" || !authenticate(bearer)) {
        send(401, statusObject(401, "Unauthorized"));
        return;
      }
      const fault = faultFor(method, url.pathname);
      if (fault?.kind === "delay") {
        delayed = true;
        await delay(fault.ms);
      } else if (fault?.kind === "trickle") {
        trickle = fault;
      } else if (fault !== null) {
        if (fault.kind === "hang") {
          record.status = -1;
          hanging.add(res);
          return;
        }
        if (fault.kind === "reset" || fault.kind === "down") {
          record.status = -1;
          req.socket.destroy();
          return;
        }
        send(fault.code, faultStatus(fault.code, method, url.pathname, fault.message));
        return;
      }
      const answer = (u: URL) => {
        try {
          return route(method, u, contentType, text);
        } catch (error) {
          if (error instanceof HttpError) return { code: error.code, body: error.status };
          throw error;
        }
      };
      const intercepted = interceptor?.({
        method,
        path: url.pathname,
        query: new URLSearchParams(url.searchParams),
        next: (query) => {
          if (query === undefined) return answer(url);
          const other = new URL(url);
          other.search = query.toString();
          return answer(other);
        },
      });
      if (intercepted !== undefined) {
        send(intercepted.code, intercepted.body, intercepted.headers);
        return;
      }
      const result = route(method, url, contentType, text);
      send(result.code, result.body);
    } catch (error) {
      if (error instanceof WatchStart) {
        record.status = 200;
        streamWatch(res, error);
      } else if (error instanceof HttpError) send(error.code, error.status);
      else send(500, faultStatus(500, method, url.pathname, (error as Error).message));
    }
  }

  const server: Server = createServer(
    { key: certificates.keyPem, cert: certificates.certPem },
    (req, res) => {
      void handle(req, res);
    },
  );
  // Idle connections stay open (see fault-proxy.ts): none is closed under a client about to reuse it.
  server.keepAliveTimeout = 0;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("secureConnection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        const address = server.address();
        resolve(typeof address === "object" && address !== null ? address.port : port);
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.destroy();
      hanging.clear();
      for (const res of watching) res.destroy();
      // Delayed requests are dropped unanswered, and not carried out.
      for (const timer of delays) clearTimeout(timer);
      delays.clear();
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    });

  const port = await listen(0);
  const url = `https://127.0.0.1:${port}`;
  let down = false;
  const directory = await mkdtemp(join(tmpdir(), "kube-api-"));
  let written = 0;

  const writeKubeconfig = async (o: { caPem?: string; token?: string; contextName?: string } = {}) => {
    const name = o.contextName ?? contextName;
    const config = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name,
          cluster: {
            server: url,
            "certificate-authority-data": Buffer.from(o.caPem ?? certificates.caPem).toString("base64"),
          },
        },
      ],
      users: [{ name, user: { token: o.token ?? token } }],
      contexts: [{ name, context: { cluster: name, user: name } }],
      "current-context": name,
    };
    const path = join(directory, `kubeconfig-${written++}.json`);
    await writeFile(path, JSON.stringify(config, null, 2));
    return path;
  };

  const kubeconfigPath = await writeKubeconfig();

  return {
    url,
    caPem: certificates.caPem,
    token,
    kubeconfigPath,
    counts: {
      total(filter) {
        let n = 0;
        for (const r of log) {
          if (filter?.method !== undefined && r.method !== filter.method.toUpperCase()) continue;
          if (filter?.path !== undefined) {
            const p = filter.path;
            if (typeof p === "string" ? !r.path.startsWith(p) : !p.test(r.path)) continue;
          }
          n++;
        }
        return n;
      },
      get: (method, path) => counts.get(`${method.toUpperCase()} ${path}`) ?? 0,
      snapshot: () => Object.fromEntries(counts),
      reset() {
        counts.clear();
        log = [];
      },
    },
    requests: () => log,
    applies: () => applied,
    store,
    register,
    async setFault(rule) {
      const next: FaultRule | null = rule === null ? null : "fault" in rule ? rule : { fault: rule };
      faultRule = next === null ? null : { ...next, seen: 0, applied: 0 };
      if (next?.fault.kind === "down" && next.method === undefined && next.path === undefined && !down) {
        // Refuse connections outright, as a stopped API server does.
        down = true;
        faultRule = null;
        await stopListening();
      } else if (next === null && down) {
        down = false;
        await listen(port);
      }
    },
    setInterceptor(next) {
      interceptor = next;
    },
    expireContinueTokens() {
      snapshots.clear();
    },
    compactWatchHistory() {
      for (const id of objects.keys()) eventLogs.set(id, { events: [], evictedThrough: resourceVersion });
    },
    openWatches: () => watchers.size,
    setWatchPace(ms) {
      watchPaceMs = ms;
    },
    writeKubeconfig,
    async close() {
      if (!down) await stopListening();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
