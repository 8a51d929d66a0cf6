// How calico-flows reaches a Kubernetes API server: from Lambda through EKS (DescribeCluster for endpoint
// and CA, cached per container, and an IAM bearer token renewed before it expires), from the CLI through a
// kubeconfig. Either way TLS is verified, every request has a deadline in seconds (for its answer to start, and for
// each silence of its body), and failures are classified with the fix to apply.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { buffer, text } from "node:stream/consumers";
import { DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import {
  type ApiConstructor,
  ApiException,
  type ApiType,
  type Configuration,
  createConfiguration,
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  type Middleware,
  type PromiseHttpLibrary,
  type RequestContext,
  type ResponseBody,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
} from "@kubernetes/client-node";
import { retryAfterHeaderMs } from "../../core/retry-after.ts";
import { type CredentialsProvider, EksTokenProvider } from "./eks-token.ts";

/**
 * Per-request deadline, for the answer to start and for each silence of its body: a slow API server must not eat the
 * Lambda's time (the client has none by default).
 */
export const DEFAULT_TIMEOUT_MS = 5_000;
const USER_AGENT = "calico-flows";

/** What to tell the operator when the API server refuses us. */
export interface AccessFixes {
  unauthorized: string;
  forbidden: string;
}

export const EKS_FIXES: AccessFixes = {
  unauthorized: "the function role needs an EKS access entry (see docs/deploy.md)",
  // The access entry maps the role to a group and attaches no access policy: deploy/rbac.yaml grants the group all it
  // reads (docs/deploy.md).
  forbidden:
    "the function role's EKS access entry must map it to the Kubernetes group calico-flows-reader, which " +
    "deploy/rbac.yaml lets list pods, nodes and namespaces: kubectl apply -f deploy/rbac.yaml (see docs/deploy.md)",
};

export const KUBECONFIG_FIXES: AccessFixes = {
  unauthorized:
    "the kubeconfig credentials were refused: refresh them (for EKS: aws eks update-kubeconfig --name <cluster>)",
  forbidden: "the kubeconfig user may not read pods, nodes and namespaces: apply deploy/rbac.yaml",
};

export type KubeFailureKind =
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "expired"
  | "throttled"
  | "server"
  | "timeout"
  | "unreachable"
  | "tls"
  | "malformed"
  | "aws"
  | "other";

export interface KubeFailure {
  kind: KubeFailureKind;
  /** HTTP status when the server answered. */
  status: number | null;
  message: string;
  /** The remedy, when there is one the operator can apply. */
  fix: string | null;
}

/** A configuration that cannot work (no kubeconfig, unknown context, TLS verification turned off…). */
export class AccessConfigError extends Error {
  override readonly name = "AccessConfigError";
}

export class KubeTimeoutError extends Error {
  override readonly name = "KubeTimeoutError";
}

const TLS_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_SIGNATURE_FAILURE",
]);

const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);

function statusMessage(body: unknown): string | undefined {
  let parsed: unknown = body;
  if (typeof body === "string") {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.trim() === "" ? undefined : body.trim().slice(0, 300);
    }
  }
  if (
    typeof parsed === "object" &&
    parsed !== null &&
    typeof (parsed as { message?: unknown }).message === "string"
  ) {
    return (parsed as { message: string }).message;
  }
  return undefined;
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Classifies any error from a Kubernetes or EKS call, with the fix for 401/403. */
export function describeKubeError(error: unknown, fixes: AccessFixes): KubeFailure {
  if (error instanceof ApiException) {
    const status = error.code;
    const detail = statusMessage(error.body);
    const message = `HTTP ${status}${detail === undefined ? "" : `: ${detail}`}`;
    if (status === 401) return { kind: "unauthorized", status, message, fix: fixes.unauthorized };
    if (status === 403) return { kind: "forbidden", status, message, fix: fixes.forbidden };
    if (status === 404) return { kind: "not-found", status, message, fix: null };
    if (status === 410) return { kind: "expired", status, message, fix: null };
    if (status === 429) return { kind: "throttled", status, message, fix: null };
    if (status >= 500) return { kind: "server", status, message, fix: null };
    return { kind: "other", status, message, fix: null };
  }
  if (error instanceof KubeTimeoutError)
    return { kind: "timeout", status: null, message: error.message, fix: null };
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") {
      return { kind: "timeout", status: null, message: `no answer in time (${error.message})`, fix: null };
    }
    const cause = (error as { cause?: unknown }).cause;
    const code = errorCode(cause) ?? errorCode(error);
    if (code !== undefined && TLS_CODES.has(code)) {
      return {
        kind: "tls",
        status: null,
        message: `TLS verification failed (${code}): ${(cause as Error | undefined)?.message ?? error.message}`,
        fix: "the API server certificate must be signed by the cluster CA (certificate-authority-data)",
      };
    }
    if (code !== undefined && UNREACHABLE_CODES.has(code)) {
      return {
        kind: "unreachable",
        status: null,
        message: `cannot reach the API server (${code})`,
        fix: null,
      };
    }
    if (cause instanceof Error && (cause.name === "TimeoutError" || cause.name === "ConnectTimeoutError")) {
      return { kind: "timeout", status: null, message: `no answer in time (${cause.message})`, fix: null };
    }
    const metadata = (error as { $metadata?: { httpStatusCode?: number } }).$metadata;
    if (metadata !== undefined) {
      const status = metadata.httpStatusCode ?? null;
      const fix =
        error.name === "AccessDeniedException"
          ? "the function role needs eks:DescribeCluster on this cluster (see docs/deploy.md)"
          : error.name === "ResourceNotFoundException"
            ? "check the cluster name and region"
            : null;
      return { kind: "aws", status, message: `${error.name}: ${error.message}`, fix };
    }
    if (error.message === "fetch failed") {
      return {
        kind: "unreachable",
        status: null,
        message: `cannot reach the API server (${String(cause)})`,
        fix: null,
      };
    }
    if (error instanceof TypeError) {
      return { kind: "malformed", status: null, message: `unexpected response: ${error.message}`, fix: null };
    }
    return { kind: "other", status: null, message: error.message, fix: null };
  }
  return { kind: "other", status: null, message: String(error), fix: null };
}

function parsedBody(body: unknown): unknown {
  if (typeof body !== "string") return body;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/**
 * How long, in ms, the API server asked the client to wait before asking again: the `Retry-After` of a 429
 * (API Priority and Fairness or max-in-flight) or of a 5xx (a 504 "Too large resource version", a 500 server
 * timeout), in seconds or as an HTTP date, else its Status's `details.retryAfterSeconds`. Undefined for any
 * other error: @kubernetes/client-node retries nothing itself, whatever the server asks.
 */
export function retryAfterMs(error: unknown, now: number = Date.now()): number | undefined {
  if (!(error instanceof ApiException) || (error.code !== 429 && error.code < 500)) return undefined;
  const headers = (error.headers ?? {}) as Record<string, string | undefined>;
  const header = Object.entries(headers).find(([name]) => name.toLowerCase() === "retry-after")?.[1];
  const asked = retryAfterHeaderMs(header, now);
  if (asked !== undefined) return asked;
  const seconds = (parsedBody(error.body) as { details?: { retryAfterSeconds?: unknown } } | undefined)
    ?.details?.retryAfterSeconds;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** One line for logs and `unavailable` reasons. */
export function formatFailure(failure: KubeFailure): string {
  return failure.fix === null ? failure.message : `${failure.message}; fix: ${failure.fix}`;
}

/** Rejects with KubeTimeoutError when `fn` has not settled after `ms`. */
export async function withDeadline<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KubeTimeoutError(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const userAgent: Middleware = {
  pre: async (context) => {
    context.setHeaderParam("User-Agent", USER_AGENT);
    return context;
  },
  post: async (response) => response,
};

/** `body` as it comes, aborted by `abort` once `ms` pass without a chunk of it (counted from its headers). */
function watchedBody(body: ResponseBody, ms: number, abort: (reason: Error) => void): ResponseBody {
  const source = body.stream();
  if (source === null) return body;
  let timer: NodeJS.Timeout | undefined;
  const watched = source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start() {
        // Unreferenced: a body nobody reads (an answer a caller dropped) must not hold a CLI's exit for `ms`; one
        // being read keeps the process up by its socket.
        timer = setTimeout(
          () => abort(new KubeTimeoutError(`the answer stopped: nothing received for ${ms} ms`)),
          ms,
        ).unref();
      },
      transform(chunk, controller) {
        timer?.refresh();
        controller.enqueue(chunk);
      },
      flush() {
        clearTimeout(timer);
      },
      cancel() {
        clearTimeout(timer);
      },
    }),
  );
  return { stream: () => watched, text: () => text(watched), binary: () => buffer(watched) };
}

/**
 * Sends as client-node's own library does (fetch), under a deadline as client-go's transport keeps one: the answer
 * (status and headers) within `timeoutMs` of sending, then never `timeoutMs` without a chunk of its body. Not the
 * whole answer within it: a watch cache before Kubernetes 1.34 answers a first pod list as one page of every pod,
 * 370 MB for 48,000 pods as EKS lists them, whose download takes what it takes however healthy the server is.
 */
class DeadlineHttpLibrary implements PromiseHttpLibrary {
  readonly #fetch = new IsomorphicFetchHttpLibrary();
  readonly #timeoutMs: number;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  async send(request: RequestContext): Promise<ResponseContext> {
    const ms = this.#timeoutMs;
    const controller = new AbortController();
    const abort = (reason: Error) => controller.abort(reason);
    const timer = setTimeout(() => abort(new KubeTimeoutError(`no answer within ${ms} ms`)), ms);
    request.setSignal(controller.signal);
    let response: ResponseContext;
    try {
      response = await this.#fetch.send(request).toPromise();
    } finally {
      clearTimeout(timer);
    }
    return new ResponseContext(
      response.httpStatusCode,
      response.headers,
      watchedBody(response.body, ms, abort),
    );
  }
}

/**
 * How requests to `kc`'s API server are sent: under DeadlineHttpLibrary's deadline of `timeoutMs` (the client sets
 * none of its own). Authentication, CA and token renewal stay the KubeConfig's.
 */
export function kubeConfiguration(kc: KubeConfig, timeoutMs: number): Configuration {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new AccessConfigError("the kubeconfig's current context names no cluster");
  return createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    httpApi: wrapHttpLibrary(new DeadlineHttpLibrary(timeoutMs)),
    promiseMiddleware: [userAgent],
  });
}

/** An API client for `kc` sending as kubeConfiguration says. */
export function kubeApiClient<T extends ApiType>(
  kc: KubeConfig,
  type: ApiConstructor<T>,
  timeoutMs: number,
): T {
  return new type(kubeConfiguration(kc, timeoutMs));
}

/**
 * A GET sent as the generated API clients send it under `config` (its authentication, middleware and HTTP library),
 * for a caller that reads the answer's body itself rather than into client-node's typed models. A non-2xx answer
 * throws the ApiException those clients throw, with the server's Status as its body.
 */
export async function kubeGet(
  config: Configuration,
  path: string,
  query: Readonly<Record<string, string | number | undefined>>,
): Promise<ResponseContext> {
  let request = config.baseServer.makeRequestContext(path, HttpMethod.GET);
  request.setHeaderParam("Accept", "application/json");
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) request.setQueryParam(name, String(value));
  }
  await config.authMethods.default?.applySecurityAuthentication(request);
  for (const middleware of config.middleware) request = await middleware.pre(request).toPromise();
  let response = await config.httpApi.send(request).toPromise();
  for (const middleware of [...config.middleware].reverse()) {
    response = await middleware.post(response).toPromise();
  }
  if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return response;
  throw new ApiException(
    response.httpStatusCode,
    `GET ${path}`,
    await response.getBodyAsAny(),
    response.headers,
  );
}

function refuseDisabledTls(): void {
  // Node honours this variable for every TLS connection the client opens: with it, "verified" would be a lie.
  if (process.env.NODE_TLS_REJECT_UNAUTHORIZED === "0") {
    throw new AccessConfigError(
      "NODE_TLS_REJECT_UNAUTHORIZED=0 turns off TLS verification; calico-flows does not talk to Kubernetes without it",
    );
  }
}

function checkCluster(kc: KubeConfig, where: string): void {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new AccessConfigError(`${where}: the current context names no cluster`);
  if (!cluster.server.startsWith("https://")) {
    throw new AccessConfigError(`${where}: the API server ${cluster.server} is not https; TLS is required`);
  }
  if (cluster.skipTLSVerify) {
    throw new AccessConfigError(
      `${where}: insecure-skip-tls-verify is set for cluster "${cluster.name}"; calico-flows always verifies TLS: set certificate-authority(-data) instead`,
    );
  }
}

// --- EKS ----------------------------------------------------------------------------------------------

export interface EksEndpoint {
  endpoint: string;
  /** Base64 PEM, as DescribeCluster returns it and kubeconfig's certificate-authority-data wants it. */
  caData: string;
}

export async function describeEksCluster(
  eks: EKSClient,
  clusterName: string,
  timeoutMs: number,
): Promise<EksEndpoint> {
  const { cluster } = await eks.send(new DescribeClusterCommand({ name: clusterName }), {
    abortSignal: AbortSignal.timeout(timeoutMs),
  });
  const endpoint = cluster?.endpoint;
  const caData = cluster?.certificateAuthority?.data;
  if (endpoint === undefined || caData === undefined) {
    throw new AccessConfigError(
      `EKS cluster "${clusterName}" has no endpoint or CA yet (status ${cluster?.status ?? "unknown"})`,
    );
  }
  if (!endpoint.startsWith("https://")) {
    throw new AccessConfigError(`EKS cluster "${clusterName}" endpoint ${endpoint} is not https`);
  }
  return { endpoint, caData };
}

export interface EksKubeConfigOptions {
  clusterName: string;
  /** Default: the EKS client's region (AWS_REGION in Lambda). */
  region?: string;
  /** Default: a client with `timeoutMs` connection and request timeouts. */
  eks?: EKSClient;
  /** Default: the SDK's node provider chain (the function role in Lambda). */
  credentials?: CredentialsProvider;
  /** Deadline of DescribeCluster. */
  timeoutMs?: number;
  /** Clock of the token cache. */
  now?: () => number;
}

const EKS_AUTH_PROVIDER = "calico-flows-eks-token";

/** One KubeConfig per cluster and container: DescribeCluster runs once, the token renews itself. */
const eksKubeConfigs = new Map<string, Promise<KubeConfig>>();

/**
 * A KubeConfig for an EKS cluster with the caller's IAM identity (the function role): endpoint and CA from
 * DescribeCluster, a bearer token from EksTokenProvider applied to every request. Cached per container and
 * cheap to call per operation; a failed DescribeCluster is not cached, so the next call retries.
 */
export function eksKubeConfig(options: EksKubeConfigOptions): Promise<KubeConfig> {
  const key = `${options.region ?? process.env.AWS_REGION ?? ""}/${options.clusterName}`;
  const cached = eksKubeConfigs.get(key);
  if (cached !== undefined) return cached;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const loading = (async () => {
    refuseDisabledTls();
    const eks =
      options.eks ??
      new EKSClient({
        region: options.region,
        maxAttempts: 3,
        requestHandler: { connectionTimeout: timeoutMs, requestTimeout: timeoutMs },
      });
    const region = options.region ?? (await eks.config.region());
    const { endpoint, caData } = await describeEksCluster(eks, options.clusterName, timeoutMs);
    const tokens = new EksTokenProvider({
      clusterName: options.clusterName,
      region,
      credentials: options.credentials ?? fromNodeProviderChain(),
      now: options.now,
    });
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: options.clusterName, server: endpoint, caData, skipTLSVerify: false }],
      users: [{ name: "calico-flows", authProvider: { name: EKS_AUTH_PROVIDER, config: {} } }],
      contexts: [{ name: options.clusterName, cluster: options.clusterName, user: "calico-flows" }],
      currentContext: options.clusterName,
    });
    kc.addAuthenticator({
      isAuthProvider: (user) => user?.authProvider?.name === EKS_AUTH_PROVIDER,
      applyAuthentication: async (_user, opts) => {
        const headers = (opts.headers ?? {}) as Record<string, string>;
        opts.headers = { ...headers, Authorization: `Bearer ${await tokens.token()}` };
      },
    });
    checkCluster(kc, `EKS cluster "${options.clusterName}"`);
    return kc;
  })();
  eksKubeConfigs.set(key, loading);
  loading.catch(() => {
    if (eksKubeConfigs.get(key) === loading) eksKubeConfigs.delete(key);
  });
  return loading;
}

// --- kubeconfig ---------------------------------------------------------------------------------------

export interface KubeconfigOptions {
  /** Path of the kubeconfig; default KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string;
  /** Context to use instead of the current one. */
  context?: string;
}

/** The kubeconfig as `kubectl` would use it (the CLI). Throws AccessConfigError for one that cannot work. */
/**
 * Why a kubeconfig could not be read, without its content: the YAML parser's message quotes the lines around the
 * fault, which in a kubeconfig hold tokens and passwords; its reason and position say as much.
 */
function readFailure(error: unknown): string {
  const e = error as { reason?: unknown; mark?: { line?: unknown; column?: unknown }; message?: unknown };
  if (
    typeof e?.reason === "string" &&
    typeof e.mark?.line === "number" &&
    typeof e.mark.column === "number"
  ) {
    return `${e.reason} (line ${e.mark.line + 1}, column ${e.mark.column + 1})`;
  }
  return String(e?.message ?? error);
}

export function loadKubeconfig(options: KubeconfigOptions = {}): KubeConfig {
  refuseDisabledTls();
  const kc = new KubeConfig();
  let source: string;
  if (options.kubeconfig !== undefined) {
    source = options.kubeconfig;
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (error) {
      throw new AccessConfigError(`cannot read kubeconfig ${options.kubeconfig}: ${readFailure(error)}`);
    }
  } else {
    const fromEnv = process.env.KUBECONFIG;
    const home = join(homedir(), ".kube", "config");
    if ((fromEnv === undefined || fromEnv === "") && !existsSync(home)) {
      throw new AccessConfigError(
        "no kubeconfig found (KUBECONFIG unset and no ~/.kube/config): pass --kubeconfig, or --pods/--nodes snapshot files",
      );
    }
    source = fromEnv !== undefined && fromEnv !== "" ? fromEnv : home;
    try {
      kc.loadFromDefault();
    } catch (error) {
      throw new AccessConfigError(`cannot read kubeconfig ${source}: ${readFailure(error)}`);
    }
  }
  if (options.context !== undefined) {
    if (kc.getContextObject(options.context) === null) {
      const known = kc.getContexts().map((c) => c.name);
      throw new AccessConfigError(
        `context "${options.context}" is not in ${source} (contexts: ${known.length > 0 ? known.join(", ") : "none"})`,
      );
    }
    kc.setCurrentContext(options.context);
  }
  checkCluster(kc, `kubeconfig ${source} context "${kc.getCurrentContext()}"`);
  return kc;
}
