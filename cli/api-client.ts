// Calls the calico-flows REST API with SigV4 (service execute-api), credentials from the default AWS chain.
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { apiUrlProblem } from "./api-url.ts";

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
    super(`API answered ${status}: ${message}`);
    this.status = status;
    this.body = body;
  }
}

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
    credentials: request.credentials ?? fromNodeProviderChain(),
    sha256: Hash.bind(null, "sha256"),
  });
  const signed = await signer.sign(unsigned);
  const response = await fetch(url, { method: request.method, headers: signed.headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text for the error message
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed as T;
}
