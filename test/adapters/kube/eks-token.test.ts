import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, it } from "vitest";
import {
  type AwsCredentials,
  createEksToken,
  decodeEksToken,
  EksTokenProvider,
  PRESIGN_EXPIRES_SECONDS,
  RENEW_BEFORE_MS,
  TOKEN_LIFETIME_MS,
} from "../../../functions/adapters/kube/eks-token.ts";
import { checkEksToken } from "../../support/kube-api-server.ts";

const credentials: AwsCredentials = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "IQoJb3JpZ2luX2VjEJr//////////+session/token=",
};
const signingDate = new Date("2025-04-19T04:52:19Z");
const region = "eu-west-1";
const clusterName = "prod-eu";

describe("createEksToken", () => {
  it("is k8s-aws-v1. + base64url without padding of a presigned STS GetCallerIdentity URL", async () => {
    const { token } = await createEksToken({ clusterName, region, credentials, signingDate });
    expect(token.startsWith("k8s-aws-v1.")).toBe(true);
    expect(token.slice("k8s-aws-v1.".length)).toMatch(/^[A-Za-z0-9_-]+$/);
    const url = decodeEksToken(token);
    expect(url.host).toBe("sts.eu-west-1.amazonaws.com");
    const q = url.searchParams;
    expect(q.get("Action")).toBe("GetCallerIdentity");
    expect(q.get("Version")).toBe("2011-06-15");
    expect(q.get("X-Amz-Expires")).toBe(String(PRESIGN_EXPIRES_SECONDS));
    expect(q.get("X-Amz-Expires")).toBe("60");
    expect(q.get("X-Amz-SignedHeaders")).toBe("host;x-k8s-aws-id");
    expect(q.get("X-Amz-Date")).toBe("20250419T045219Z");
    expect(q.get("X-Amz-Credential")).toBe("AKIDEXAMPLE/20250419/eu-west-1/sts/aws4_request");
    expect(q.get("X-Amz-Security-Token")).toBe(credentials.sessionToken);
  });

  it("carries a signature that verifies for its cluster, and only for it", async () => {
    const { token } = await createEksToken({ clusterName, region, credentials, signingDate });
    const expectation = { clusterName, region, ...credentials, now: signingDate.getTime() + 60_000 };
    expect(checkEksToken(token, expectation)).toBeNull();
    expect(checkEksToken(token, { ...expectation, clusterName: "other" })).toBe("signature mismatch");
    expect(checkEksToken(token, { ...expectation, secretAccessKey: "wrong" })).toBe("signature mismatch");
    expect(checkEksToken(token, { ...expectation, now: signingDate.getTime() + 16 * 60_000 })).toBe(
      "expired",
    );
  });

  it("signs what @smithy/signature-v4 signs for the same request", async () => {
    const { token } = await createEksToken({ clusterName, region, credentials, signingDate });
    const url = decodeEksToken(token);
    const hostname = url.hostname;
    const again = await new SignatureV4({
      credentials,
      region,
      service: "sts",
      sha256: Hash.bind(null, "sha256"),
    }).presign(
      new HttpRequest({
        method: "GET",
        protocol: "https:",
        hostname,
        path: "/",
        query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
        headers: { host: hostname, "x-k8s-aws-id": clusterName },
      }),
      { expiresIn: 60, signingDate },
    );
    expect(url.searchParams.get("X-Amz-Signature")).toBe(again.query?.["X-Amz-Signature"]);
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is renewed a minute before EKS's 15 minutes, or before the credentials expire", async () => {
    const long = await createEksToken({ clusterName, region, credentials, signingDate });
    expect(long.renewAt).toBe(signingDate.getTime() + TOKEN_LIFETIME_MS - RENEW_BEFORE_MS);
    const expiration = new Date(signingDate.getTime() + 5 * 60_000);
    const short = await createEksToken({
      clusterName,
      region,
      credentials: { ...credentials, expiration },
      signingDate,
    });
    expect(short.renewAt).toBe(expiration.getTime() - RENEW_BEFORE_MS);
  });

  it("refuses to decode what is not an EKS token", () => {
    expect(() => decodeEksToken("Bearer abc")).toThrow(/k8s-aws-v1\./);
  });
});

describe("EksTokenProvider", () => {
  function provider(now: { t: number }, expiration?: () => Date) {
    let fetched = 0;
    const p = new EksTokenProvider({
      clusterName,
      region,
      credentials: async () => {
        fetched++;
        return { ...credentials, expiration: expiration?.() };
      },
      now: () => now.t,
    });
    return { p, fetched: () => fetched };
  }

  it("reuses its token until 14 minutes, then signs a new one", async () => {
    const now = { t: signingDate.getTime() };
    const { p, fetched } = provider(now);
    const first = await p.token();
    now.t += 13 * 60_000;
    expect(await p.token()).toBe(first);
    expect(fetched()).toBe(1);
    now.t = signingDate.getTime() + 14 * 60_000;
    const second = await p.token();
    expect(second).not.toBe(first);
    expect(fetched()).toBe(2);
    expect(checkEksToken(second, { clusterName, region, ...credentials, now: now.t })).toBeNull();
  });

  it("renews early when the credentials behind it expire sooner", async () => {
    const now = { t: signingDate.getTime() };
    const { p, fetched } = provider(now, () => new Date(now.t + 3 * 60_000));
    await p.token();
    now.t += 2 * 60_000 + 1;
    await p.token();
    expect(fetched()).toBe(2);
  });

  it("signs once for concurrent callers", async () => {
    const now = { t: signingDate.getTime() };
    const { p, fetched } = provider(now);
    const tokens = await Promise.all([p.token(), p.token(), p.token()]);
    expect(new Set(tokens).size).toBe(1);
    expect(fetched()).toBe(1);
  });
});
