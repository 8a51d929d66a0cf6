// Calls the calico-flows REST API with SigV4 (service execute-api), credentials from the default AWS chain, and
// sends a request again when API Gateway throttled or failed it and that is safe.
import { setTimeout as sleep } from "node:timers/promises";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { retryAfterHeaderMs } from "../functions/core/retry-after.ts";
import { apiUrlProblem } from "./api-url.ts";
import { describeError } from "./common.ts";

export interface ApiRequest {
  /** Base URL of the API stage, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod */
  api: string;
  method: "GET" | "POST" | "DELETE";
  /** Path under the stage, e.g. /panic */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  region?: string;
  credentials?: AwsCredentialIdentityProvider;
}

export class ApiError extends Error {
  override name = "ApiError";
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const message =
      body !== null && typeof body === "object" && "message" in body
        ? String(body.message)
        : JSON.stringify(body);
    // The id the function logged the failure under (`correlation_id`): what on-call searches its logs for.
    const requestId =
      body !== null && typeof body === "object" && "requestId" in body && typeof body.requestId === "string"
        ? ` (request id ${body.requestId})`
        : "";
    super(`API answered ${status}: ${message}${requestId}`);
    this.status = status;
    this.body = body;
  }
}

/**
 * A request the API did not answer: the connection failed, dropped or went quiet before an answer came. `maybeSent`
 * unless it failed while connecting (refused, no such host, TLS refused): the API may then have received it, and
 * an apply or revert may have been carried out.
 */
export class ApiUnanswered extends Error {
  override name = "ApiUnanswered";
  readonly maybeSent: boolean;
  constructor(cause: unknown) {
    const maybeSent = !failedToConnect(cause);
    super(`${maybeSent ? "no answer from the API: " : ""}${describeError(cause)}`, { cause });
    this.maybeSent = maybeSent;
  }
}

/** Errors of the connection's making (socket, DNS, TLS handshake), before any byte of the request went out. */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function failedToConnect(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (CONNECT_CODES.has(code) || /CERT|^ERR_TLS_|^ERR_SSL_/.test(code)) return true;
  }
  return false;
}

/**
 * How long an attempt waits for its answer: API Gateway gives up on the function after 29 s (its 504), so an
 * answer not come by then is not coming. Undici's own limit is 300 s of silence.
 */
const ANSWER_WAIT_MS = 60_000;

/** The region of an execute-api host, when the URL is the API's default endpoint. */
export function regionOf(url: URL): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(url.hostname)?.[1];
}

/**
 * The region of the SDK's standard configuration (AWS_REGION, then the profile's `region` in the shared config
 * files), resolved by an SDK client as every other command's client resolves it; undefined when it names none.
 */
async function configuredRegion(): Promise<string | undefined> {
  const { DynamoDBClient } = await import("@aws-sdk/client-dynamodb");
  const client = new DynamoDBClient({});
  try {
    return (await client.config.region()) || undefined;
  } catch {
    return undefined;
  } finally {
    client.destroy();
  }
}

/**
 * The default chain, made once for the process (it loads its providers on first use): it keeps the credentials it
 * resolves until they near expiry. A chain made per request resolved them per request: with an SSO or assume-role
 * profile, a container or pod role, a call to the SSO portal, STS or the credentials endpoint for every page.
 */
const defaultCredentials = fromNodeProviderChain();

/** Requests per call at most; between them a backoff from BACKOFF_BASE_MS, doubling, with full jitter. */
const ATTEMPTS = 4;
const BACKOFF_BASE_MS = 500;
/** The longest wait before a retry, whatever the API's Retry-After asks. */
const BACKOFF_MAX_MS = 10_000;

/**
 * Whether an answer is worth sending the same request again. API Gateway answers 429 when a throttle (the stage's,
 * the account's) refused the request before the function ran: any request may be resent. It answers 502 when the
 * function failed, 503 when it was unavailable and 504 when it gave up waiting after 29 s: the function may have
 * acted, so only a GET (a page, a status: it changes nothing) is resent, never a POST or DELETE /panic, which would
 * apply or revert a second time (audited and announced twice); the operator asks the status instead. A 502 of the
 * panic function's own (its body names the `error`, as `kube-unavailable`) comes after its own retries, up to its
 * deadline: not resent either.
 */
function resendable(method: ApiRequest["method"], status: number, body: unknown): boolean {
  if (status === 429) return true;
  if (method !== "GET" || (status !== 502 && status !== 503 && status !== 504)) return false;
  return !(body !== null && typeof body === "object" && "error" in body);
}

/** The wait before retry `retry` (1-based): full jitter, but at least what the API asked for, up to the cap. */
function backoffMs(retry: number, asked: number | undefined): number {
  const jittered = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (retry - 1));
  return Math.max(jittered, Math.min(asked ?? 0, BACKOFF_MAX_MS));
}

export async function callApi<T>(request: ApiRequest): Promise<T> {
  const base = new URL(request.api);
  const problem = apiUrlProblem(base);
  if (problem !== undefined) throw new Error(problem);
  const url = new URL(base.pathname.replace(/\/$/, "") + request.path, base);
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.query ?? {})) {
    if (v !== undefined) {
      query[k] = v;
      url.searchParams.set(k, v);
    }
  }
  const region = request.region || regionOf(base) || (await configuredRegion());
  if (region === undefined) {
    throw new Error("no AWS region: pass --region, set AWS_REGION, or give the profile a region");
  }
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  const unsigned = new HttpRequest({
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port === "" ? undefined : Number(url.port),
    method: request.method,
    path: url.pathname,
    query,
    headers: {
      host: url.host,
      accept: "application/json",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body,
  });
  const signer = new SignatureV4({
    service: "execute-api",
    region,
    credentials: request.credentials ?? defaultCredentials,
    sha256: Hash.bind(null, "sha256"),
  });
  for (let attempt = 1; ; attempt++) {
    // Signed again for every attempt: a signature is valid for a few minutes only, and credentials may refresh.
    const signed = await signer.sign(unsigned);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: request.method,
        headers: signed.headers,
        body,
        signal: AbortSignal.timeout(ANSWER_WAIT_MS),
        // API Gateway never redirects; following one would resend the session token to wherever it points.
        redirect: "manual",
      });
      text = await response.text();
    } catch (error) {
      throw new ApiUnanswered(error);
    }
    if (response.status >= 300 && response.status < 400) {
      const to = response.headers.get("location");
      throw new ApiError(response.status, `a redirect${to === null ? "" : ` to ${to}`}, not followed`);
    }
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text for the error message
    }
    if (response.ok) return parsed as T;
    if (attempt === ATTEMPTS || !resendable(request.method, response.status, parsed)) {
      throw new ApiError(response.status, parsed);
    }
    await sleep(backoffMs(attempt, retryAfterHeaderMs(response.headers.get("retry-after"))));
  }
}
