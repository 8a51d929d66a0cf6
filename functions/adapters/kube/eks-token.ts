// EKS bearer tokens, as aws-iam-authenticator and `aws eks get-token` make them: an STS GetCallerIdentity
// URL presigned with SigV4, the `x-k8s-aws-id: <cluster>` header signed in (so a token for one cluster is
// useless on another), base64url-encoded without padding behind `k8s-aws-v1.`. EKS calls the URL to learn
// who is asking; it accepts a token for 15 minutes after its X-Amz-Date whatever X-Amz-Expires says.
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

export const TOKEN_PREFIX = "k8s-aws-v1.";
export const CLUSTER_ID_HEADER = "x-k8s-aws-id";
/** X-Amz-Expires of the presigned URL: the value aws-iam-authenticator uses. */
export const PRESIGN_EXPIRES_SECONDS = 60;
/** EKS accepts a token this long after it was signed. */
export const TOKEN_LIFETIME_MS = 15 * 60_000;
/** Renewed this long before EKS would refuse it, so a token never expires during a call. */
export const RENEW_BEFORE_MS = 60_000;

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** The SDK's credential providers (`fromNodeProviderChain()` …) fit this. */
export type CredentialsProvider = () => Promise<AwsCredentials>;

export interface EksToken {
  token: string;
  /** Epoch ms after which the token must not be used any more (renewal time). */
  renewAt: number;
  signedAt: number;
}

export interface EksTokenRequest {
  clusterName: string;
  region: string;
  credentials: AwsCredentials;
  signingDate?: Date;
}

/** DNS suffix of the partitions whose suffix is not amazonaws.com, by region prefix. */
const PARTITION_DNS_SUFFIXES: readonly (readonly [string, string])[] = [
  ["cn-", "amazonaws.com.cn"],
  ["eusc-", "amazonaws.eu"],
  ["us-iso-", "c2s.ic.gov"],
  ["us-isob-", "sc2s.sgov.gov"],
  ["us-isof-", "csp.hci.ic.gov"],
  ["eu-isoe-", "cloud.adc-e.uk"],
];

/** The regional STS endpoint: EKS accepts it, and it keeps the call inside the region. */
export function stsHostname(region: string): string {
  const suffix = PARTITION_DNS_SUFFIXES.find(([prefix]) => region.startsWith(prefix))?.[1] ?? "amazonaws.com";
  return `sts.${region}.${suffix}`;
}

/** Presigns GetCallerIdentity for `clusterName` and returns the bearer token. */
export async function createEksToken(request: EksTokenRequest): Promise<EksToken> {
  const hostname = stsHostname(request.region);
  const signer = new SignatureV4({
    credentials: request.credentials,
    region: request.region,
    service: "sts",
    sha256: Hash.bind(null, "sha256"),
  });
  const signingDate = request.signingDate ?? new Date();
  const presigned = await signer.presign(
    new HttpRequest({
      method: "GET",
      protocol: "https:",
      hostname,
      path: "/",
      query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
      headers: { host: hostname, [CLUSTER_ID_HEADER]: request.clusterName },
    }),
    { expiresIn: PRESIGN_EXPIRES_SECONDS, signingDate },
  );
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(presigned.query ?? {})) {
    if (typeof value === "string") query.append(key, value);
    else if (Array.isArray(value)) for (const v of value) query.append(key, v);
  }
  const url = `https://${hostname}/?${query.toString()}`;
  const signedAt = signingDate.getTime();
  // The URL is only good while the credentials that signed it are.
  const credentialsEnd = request.credentials.expiration?.getTime() ?? Number.POSITIVE_INFINITY;
  const renewAt = Math.min(signedAt + TOKEN_LIFETIME_MS, credentialsEnd) - RENEW_BEFORE_MS;
  return { token: TOKEN_PREFIX + Buffer.from(url, "utf8").toString("base64url"), renewAt, signedAt };
}

/** The presigned URL inside a token (for checks and logs); throws when it is not an EKS token. */
export function decodeEksToken(token: string): URL {
  if (!token.startsWith(TOKEN_PREFIX))
    throw new Error(`not an EKS token: it does not start with ${TOKEN_PREFIX}`);
  return new URL(Buffer.from(token.slice(TOKEN_PREFIX.length), "base64url").toString("utf8"));
}

export interface EksTokenProviderOptions {
  clusterName: string;
  region: string;
  credentials: CredentialsProvider;
  now?: () => number;
}

/** One token per container, renewed before EKS would refuse it; concurrent callers share one signing. */
export class EksTokenProvider {
  readonly #options: EksTokenProviderOptions;
  readonly #now: () => number;
  #current: EksToken | undefined;
  #pending: Promise<EksToken> | undefined;

  constructor(options: EksTokenProviderOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async token(): Promise<string> {
    const current = this.#current;
    if (current !== undefined && this.#now() < current.renewAt) return current.token;
    // Cleared once settled, in a callback: it runs after this assignment even when the credentials provider
    // throws before returning a promise (cleared inside the signing, it was cleared first and then set for good).
    this.#pending ??= this.#renew().finally(() => {
      this.#pending = undefined;
    });
    return (await this.#pending).token;
  }

  async #renew(): Promise<EksToken> {
    const credentials = await this.#options.credentials();
    const token = await createEksToken({
      clusterName: this.#options.clusterName,
      region: this.#options.region,
      credentials,
      signingDate: new Date(this.#now()),
    });
    this.#current = token;
    return token;
  }
}
