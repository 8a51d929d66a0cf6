// The EKS bearer token checked the way the server side reads it, written here from the documented format
// rather than with the module's helpers: `k8s-aws-v1.` + base64url without padding of a presigned STS
// GetCallerIdentity GET on the regional STS endpoint, whose query is read as Go's url.ParseQuery reads it
// (aws-iam-authenticator: only the presign parameters, each once, `x-k8s-aws-id` signed, X-Amz-Expires
// 0–900, at most 15 minutes after X-Amz-Date), and whose SigV4 signature is recomputed here from the
// canonical request, string to sign and HMAC chain of the AWS SigV4 documentation, as STS would with the
// `x-k8s-aws-id` header the verifier sends.
import { createHash, createHmac } from "node:crypto";
import { DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { CoreV1Api } from "@kubernetes/client-node";
import { mockClient } from "aws-sdk-client-mock";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eksKubeConfig, kubeApiClient } from "../../../functions/adapters/kube/cluster-access.ts";
import {
  type AwsCredentials,
  createEksToken,
  EksTokenProvider,
} from "../../../functions/adapters/kube/eks-token.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";

const PREFIX = "k8s-aws-v1.";
const SERVER_LIFETIME_MS = 15 * 60_000;
const MARGIN_MS = 60_000;
const MAX_TOKEN_BYTES = 4096;
const ALLOWED_PARAMETERS = new Set([
  "action",
  "version",
  "x-amz-algorithm",
  "x-amz-credential",
  "x-amz-date",
  "x-amz-expires",
  "x-amz-security-token",
  "x-amz-signature",
  "x-amz-signedheaders",
]);

/** STS DNS suffix per partition, by region prefix (AWS General Reference, "AWS STS endpoints"). */
function expectedStsHost(region: string): string {
  const suffixes: [string, string][] = [
    ["cn-", "amazonaws.com.cn"],
    ["us-iso-", "c2s.ic.gov"],
    ["us-isob-", "sc2s.sgov.gov"],
    ["us-isof-", "csp.hci.ic.gov"],
    ["eu-isoe-", "cloud.adc-e.uk"],
    ["eusc-", "amazonaws.eu"],
  ];
  const suffix = suffixes.find(([prefix]) => region.startsWith(prefix))?.[1] ?? "amazonaws.com";
  return `sts.${region}.${suffix}`;
}

/** SigV4 UriEncode: every byte but A–Z a–z 0–9 - . _ ~ as %XY (upper-case hex). */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Go's url.ParseQuery: `&`-separated, `;` refused, `+` is a space, %XY decoded. */
function parseQueryAsGo(raw: string): [string, string][] {
  if (raw.includes(";")) throw new Error("invalid semicolon separator in query");
  const decode = (s: string) => decodeURIComponent(s.replaceAll("+", " "));
  return raw
    .split("&")
    .filter((part) => part !== "")
    .map((part) => {
      const eq = part.indexOf("=");
      return eq < 0 ? [decode(part), ""] : [decode(part.slice(0, eq)), decode(part.slice(eq + 1))];
    });
}

interface Expectation {
  clusterName: string;
  region: string;
  credentials: AwsCredentials;
}

interface ReadToken {
  url: URL;
  params: Map<string, string>;
  /** Epoch ms of X-Amz-Date. */
  signedAt: number;
  accessKeyId: string;
}

/** Reads a token as aws-iam-authenticator does and checks it for `expected`; throws what it refuses. */
function readToken(token: string): ReadToken {
  if (token.length > MAX_TOKEN_BYTES) throw new Error("token is too large");
  if (!token.startsWith(PREFIX)) throw new Error("no k8s-aws-v1. prefix");
  const encoded = token.slice(PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(encoded)) throw new Error("not base64url without padding");
  if (encoded.length % 4 === 1) throw new Error("impossible base64 length");
  const bytes = Buffer.from(encoded, "base64url");
  // Strict (RawURLEncoding): the bytes encode back to exactly the same text.
  if (bytes.toString("base64url") !== encoded) throw new Error("non-canonical base64url");
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  const url = new URL(text);
  if (url.hash !== "" || text.includes("#")) throw new Error("fragment in the URL");
  const rawQuery = text.slice(text.indexOf("?") + 1);
  const params = new Map<string, string>();
  for (const [key, value] of parseQueryAsGo(rawQuery)) {
    if (!ALLOWED_PARAMETERS.has(key.toLowerCase())) throw new Error(`non-whitelisted parameter ${key}`);
    if (params.has(key)) throw new Error(`parameter ${key} given twice`);
    params.set(key, value);
  }
  const date = params.get("X-Amz-Date") ?? "";
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (m === null) throw new Error(`bad X-Amz-Date ${date}`);
  const n = (i: number) => Number(m[i]);
  const signedAt = Date.UTC(n(1), n(2) - 1, n(3), n(4), n(5), n(6));
  const accessKeyId = (params.get("X-Amz-Credential") ?? "").split("/")[0] ?? "";
  return { url, params, signedAt, accessKeyId };
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

function sha256Hex(data: string): string {
  return createHash("sha256").update(data, "utf8").digest("hex");
}

/** The signature STS computes for the presigned URL, given the headers the verifier sends with it. */
function expectedSignature(read: ReadToken, expected: Expectation, host: string): string {
  const { params } = read;
  const date = params.get("X-Amz-Date") ?? "";
  const day = date.slice(0, 8);
  const scope = `${day}/${expected.region}/sts/aws4_request`;
  const signedHeaders = (params.get("X-Amz-SignedHeaders") ?? "").split(";");
  const headerValues: Record<string, string> = { host, "x-k8s-aws-id": expected.clusterName };
  const canonicalHeaders = signedHeaders
    .map((name) => {
      const value = headerValues[name];
      if (value === undefined) throw new Error(`signed header ${name} is not one the verifier sends`);
      return `${name}:${value.trim().replace(/ +/g, " ")}\n`;
    })
    .join("");
  const canonicalQuery = [...params]
    .filter(([key]) => key !== "X-Amz-Signature")
    .map(([key, value]): [string, string] => [uriEncode(key), uriEncode(value)])
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join("&");
  const canonicalRequest = [
    "GET",
    "/",
    canonicalQuery,
    canonicalHeaders,
    signedHeaders.join(";"),
    sha256Hex(""),
  ].join("\n");
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, sha256Hex(canonicalRequest)].join("\n");
  const kDate = hmac(`AWS4${expected.credentials.secretAccessKey}`, day);
  const kRegion = hmac(kDate, expected.region);
  const kService = hmac(kRegion, "sts");
  const kSigning = hmac(kService, "aws4_request");
  return createHmac("sha256", kSigning).update(stringToSign, "utf8").digest("hex");
}

/** Every check of the format; `at` (epoch ms) is when the server receives it. */
function checkToken(token: string, expected: Expectation, at?: number): ReadToken {
  const read = readToken(token);
  const { url, params } = read;
  const host = expectedStsHost(expected.region);
  expect(url.protocol).toBe("https:");
  expect(url.host).toBe(host);
  expect(url.pathname).toBe("/");
  expect(url.username + url.password).toBe("");
  expect(params.get("Action")).toBe("GetCallerIdentity");
  expect(params.get("Version")).toBe("2011-06-15");
  expect(params.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
  expect(params.get("X-Amz-Expires")).toBe("60");
  const date = params.get("X-Amz-Date") ?? "";
  expect(params.get("X-Amz-Credential")).toBe(
    `${expected.credentials.accessKeyId}/${date.slice(0, 8)}/${expected.region}/sts/aws4_request`,
  );
  const signedHeaders = (params.get("X-Amz-SignedHeaders") ?? "").split(";");
  expect(signedHeaders).toContain("host");
  expect(signedHeaders).toContain("x-k8s-aws-id");
  expect(signedHeaders).toEqual([...signedHeaders].sort());
  expect(params.get("X-Amz-Security-Token")).toBe(expected.credentials.sessionToken);
  expect(params.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
  expect(params.get("X-Amz-Signature")).toBe(expectedSignature(read, expected, host));
  if (at !== undefined) {
    expect(at - read.signedAt).toBeGreaterThanOrEqual(0);
    expect(at - read.signedAt).toBeLessThanOrEqual(SERVER_LIFETIME_MS);
  }
  return read;
}

function signatureVerifies(token: string, expected: Expectation): boolean {
  const read = readToken(token);
  return read.params.get("X-Amz-Signature") === expectedSignature(read, expected, read.url.host);
}

// --- arbitraries -------------------------------------------------------------------------------------

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const base64Chars = `${alnum}+/=`;
/** EKS CreateCluster: `^[0-9A-Za-z][A-Za-z0-9\-_]*$`, 1–100 characters. */
const clusterNames = fc
  .tuple(fc.constantFrom(...alnum), fc.string({ unit: fc.constantFrom(...`${alnum}-_`), maxLength: 99 }))
  .map(([first, rest]) => first + rest);
const commercialRegions = fc
  .tuple(
    fc.constantFrom("us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"),
    fc.constantFrom("east", "west", "north", "south", "central", "northeast", "southeast", "southwest"),
    fc.integer({ min: 1, max: 9 }),
  )
  .map(([area, direction, n]) => `${area}-${direction}-${n}`);
const regions = fc.oneof(
  commercialRegions,
  fc.constantFrom(
    "us-east-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-gov-east-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "us-isof-south-1",
    "eu-isoe-west-1",
    "eusc-de-east-1",
  ),
);
const credentialsArb: fc.Arbitrary<AwsCredentials> = fc.record(
  {
    accessKeyId: fc
      .string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), minLength: 16, maxLength: 20 })
      .map((s) => `ASIA${s}`),
    secretAccessKey: fc.string({ unit: fc.constantFrom(...base64Chars), minLength: 40, maxLength: 40 }),
    sessionToken: fc.string({ unit: fc.constantFrom(...base64Chars), minLength: 1, maxLength: 1200 }),
  },
  { requiredKeys: ["accessKeyId", "secretAccessKey"] },
);
const signingDates = fc.date({
  min: new Date("2020-01-01T00:00:00Z"),
  max: new Date("2035-12-31T23:59:59Z"),
  noInvalidDate: true,
});

// --- tests -------------------------------------------------------------------------------------------

describe("createEksToken against the server-side format", () => {
  it("is a presigned regional STS GetCallerIdentity GET whose SigV4 signature verifies (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(
        clusterNames,
        regions,
        credentialsArb,
        signingDates,
        async (clusterName, region, credentials, signingDate) => {
          const { token } = await createEksToken({ clusterName, region, credentials, signingDate });
          const read = checkToken(token, { clusterName, region, credentials });
          expect(read.signedAt).toBe(Math.floor(signingDate.getTime() / 1000) * 1000);
          // Signed for this cluster only, and with this secret only.
          expect(signatureVerifies(token, { clusterName: `${clusterName}x`, region, credentials })).toBe(
            false,
          );
          expect(
            signatureVerifies(token, {
              clusterName,
              region,
              credentials: { ...credentials, secretAccessKey: `${credentials.secretAccessKey}x` },
            }),
          ).toBe(false);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("signs a fixed example with a session token (the scope, date and token are in the signed query)", async () => {
    const credentials = {
      accessKeyId: "ASIAREVIEWEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYREVIEWKEY",
      sessionToken: "FwoGZXIvYXdzEJr//////////wEaDO+review+token/with=padding==",
    };
    const signingDate = new Date("2026-02-28T23:59:59.999Z");
    const expected = { clusterName: "Prod_eu-1", region: "eu-central-1", credentials };
    const { token } = await createEksToken({ ...expected, signingDate });
    const read = checkToken(token, expected, signingDate.getTime());
    expect(read.params.get("X-Amz-Date")).toBe("20260228T235959Z");
    // The session token is in the signed query: a token whose X-Amz-Security-Token was changed fails.
    const tampered = PREFIX + Buffer.from(read.url.href.replace("padding", "paddinG")).toString("base64url");
    expect(readToken(tampered).params.get("X-Amz-Security-Token")).toContain("paddinG");
    expect(signatureVerifies(tampered, expected)).toBe(false);
    const withoutSession = await createEksToken({
      ...expected,
      credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
      signingDate,
    });
    checkToken(withoutSession.token, {
      ...expected,
      credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
    });
  });

  it("keeps a 1,200-character session token and a 100-character name under the authenticator's 4 KiB limit", async () => {
    const credentials = {
      accessKeyId: "ASIAREVIEWEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYREVIEWKEY",
      sessionToken: "IQoJb3JpZ2luX2VjE/+=".repeat(60),
    };
    const expected = { clusterName: "a".repeat(100), region: "ap-southeast-2", credentials };
    const { token } = await createEksToken({ ...expected, signingDate: new Date("2026-01-01T00:00:00Z") });
    checkToken(token, expected);
  });
});

describe("EksTokenProvider refresh (injected clock)", () => {
  it("reuses a token while fresh and replaces it before the server or its credentials refuse it (fast-check)", async () => {
    await fc.assert(
      fc.asyncProperty(
        clusterNames,
        regions,
        signingDates,
        // A step forward, or to just around the renewal time of the token in hand (ms from it).
        fc.array(
          fc.oneof(
            fc.integer({ min: 0, max: 6 * 60_000 }),
            fc.record({ aroundRenewal: fc.integer({ min: -1_500, max: 1_500 }) }),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        fc.array(fc.option(fc.integer({ min: 2 * 60_000, max: 60 * 60_000 })), {
          minLength: 1,
          maxLength: 8,
        }),
        async (clusterName, region, start, steps, lifetimes) => {
          const clock = { t: start.getTime() };
          const issued = new Map<string, AwsCredentials>();
          const provider = new EksTokenProvider({
            clusterName,
            region,
            now: () => clock.t,
            credentials: async () => {
              const n = issued.size;
              const lifetime = lifetimes[n % lifetimes.length] ?? null;
              const credentials: AwsCredentials = {
                accessKeyId: `ASIAREVIEW${String(n).padStart(6, "0")}`,
                secretAccessKey: `secret-${n}`,
                sessionToken: `session/${n}+token=`,
                expiration: lifetime === null ? undefined : new Date(clock.t + lifetime),
              };
              issued.set(credentials.accessKeyId, credentials);
              return credentials;
            },
          });
          const distinct = new Set<string>();
          let previous: { token: string; signedClock: number; credentials: AwsCredentials } | undefined;
          for (const step of [0, ...steps]) {
            if (typeof step === "number") clock.t += step;
            else if (previous !== undefined) {
              const renewal =
                Math.min(
                  previous.signedClock + SERVER_LIFETIME_MS,
                  previous.credentials.expiration?.getTime() ?? Number.POSITIVE_INFINITY,
                ) - MARGIN_MS;
              clock.t = Math.max(clock.t, renewal + step.aroundRenewal);
            }
            const token = await provider.token();
            distinct.add(token);
            const read = readToken(token);
            const credentials = issued.get(read.accessKeyId);
            expect(credentials).toBeDefined();
            if (credentials === undefined) return;
            // Whatever it hands out the server accepts now, with a minute to spare, signed by live credentials.
            checkToken(token, { clusterName, region, credentials }, clock.t);
            expect(clock.t - read.signedAt).toBeLessThan(SERVER_LIFETIME_MS - MARGIN_MS + 1000);
            if (credentials.expiration !== undefined) {
              expect(credentials.expiration.getTime() - clock.t).toBeGreaterThan(MARGIN_MS);
            }
            if (previous !== undefined) {
              const end = Math.min(
                previous.signedClock + SERVER_LIFETIME_MS,
                previous.credentials.expiration?.getTime() ?? Number.POSITIVE_INFINITY,
              );
              // Reused exactly while more than a minute is left of it, then replaced.
              if (clock.t < end - MARGIN_MS) expect(token).toBe(previous.token);
              else expect(token).not.toBe(previous.token);
            }
            if (previous === undefined || token !== previous.token) {
              expect(read.signedAt).toBe(Math.floor(clock.t / 1000) * 1000);
              previous = { token, signedClock: clock.t, credentials };
            }
          }
          // One credentials fetch (and one signing) per distinct token handed out.
          expect(issued.size).toBe(distinct.size);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("tries again after a credentials provider that failed, however it failed", async () => {
    const clock = { t: Date.UTC(2026, 5, 1) };
    let failures = 2;
    const credentials = { accessKeyId: "ASIARETRY", secretAccessKey: "retry-secret" };
    const provider = new EksTokenProvider({
      clusterName: "retry",
      region: "eu-west-1",
      now: () => clock.t,
      // Typed as returning a promise, but a plain function may still throw before returning one.
      credentials: () => {
        if (failures-- > 0) throw new Error("no credentials yet");
        return Promise.resolve(credentials);
      },
    });
    await expect(provider.token()).rejects.toThrow("no credentials yet");
    await expect(provider.token()).rejects.toThrow("no credentials yet");
    const token = await provider.token();
    checkToken(token, { clusterName: "retry", region: "eu-west-1", credentials }, clock.t);
  });
});

describe("eksKubeConfig sends the token the API server accepts, renewed on the injected clock", () => {
  const eksMock = mockClient(EKSClient);
  const region = "eu-north-1";
  const clusterName = "review-token-cluster";
  const credentials = {
    accessKeyId: "ASIAKUBEREVIEW",
    secretAccessKey: "kube-review-secret",
    sessionToken: "kube/review+session=",
  };
  const clock = { t: Date.UTC(2026, 11, 6, 12, 0, 0) };
  const seen: string[] = [];
  let server: KubeApiServer;

  beforeAll(async () => {
    server = await startKubeApiServer({
      authenticate: (token) => {
        seen.push(token);
        try {
          checkToken(token, { clusterName, region, credentials }, clock.t);
          return true;
        } catch {
          return false;
        }
      },
    });
    server.store.put("namespaces", kubeObjects.namespace({ name: "review" }));
  });
  afterAll(async () => {
    eksMock.restore();
    await server.close();
  });

  it("reuses the bearer token across requests while fresh and sends a new one when it is due", async () => {
    eksMock.on(DescribeClusterCommand, { name: clusterName }).resolves({
      cluster: {
        name: clusterName,
        status: "ACTIVE",
        endpoint: server.url,
        certificateAuthority: { data: Buffer.from(server.caPem).toString("base64") },
      },
    });
    const kc = await eksKubeConfig({
      clusterName,
      region,
      eks: new EKSClient({ region, credentials }),
      credentials: async () => credentials,
      now: () => clock.t,
    });
    const core = kubeApiClient(kc, CoreV1Api, 2_000);
    const names = async () => (await core.listNamespace()).items.map((n) => n.metadata?.name);
    expect(await names()).toEqual(["review"]);
    clock.t += 13 * 60_000;
    expect(await names()).toEqual(["review"]);
    clock.t += 60_000; // 14 minutes after signing: the first token has only a minute left
    expect(await names()).toEqual(["review"]);
    expect(seen).toHaveLength(3);
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).not.toBe(seen[0]);
    expect(readToken(seen[2] ?? "").signedAt).toBe(clock.t);
    expect(eksMock.commandCalls(DescribeClusterCommand)).toHaveLength(1);
  });
});
