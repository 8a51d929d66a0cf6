import { writeFile } from "node:fs/promises";
import { DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { CoreV1Api } from "@kubernetes/client-node";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AccessConfigError,
  describeKubeError,
  EKS_FIXES,
  eksKubeConfig,
  KUBECONFIG_FIXES,
  kubeApiClient,
  loadKubeconfig,
} from "../../../functions/adapters/kube/cluster-access.ts";
import {
  checkEksToken,
  createTestCertificates,
  type KubeApiServer,
  kubeObjects,
  startKubeApiServer,
} from "../../support/kube-api-server.ts";

const credentials = { accessKeyId: "AKIDCLUSTERACCESS", secretAccessKey: "cluster-access-secret" };
const region = "eu-west-1";
const eksMock = mockClient(EKSClient);

let server: KubeApiServer;
// Accepts the project's own EKS tokens, for any of the clusters these tests describe.
const accepted = new Set<string>();

beforeAll(async () => {
  server = await startKubeApiServer({
    authenticate: (token) =>
      [...accepted].some(
        (clusterName) =>
          checkEksToken(token, { clusterName, region, ...credentials, now: Date.now() }) === null,
      ) || token === server.token,
  });
  server.store.put("namespaces", kubeObjects.namespace({ name: "shop" }));
});
afterAll(async () => server.close());
afterEach(async () => {
  eksMock.reset();
  await server.setFault(null);
  server.counts.reset();
});

function describeAnswer(overrides: Record<string, unknown> = {}) {
  return {
    cluster: {
      name: "x",
      status: "ACTIVE" as const,
      endpoint: server.url,
      certificateAuthority: { data: Buffer.from(server.caPem).toString("base64") },
      ...overrides,
    },
  };
}

describe("eksKubeConfig", () => {
  it("describes the cluster once per container and reaches it with a signed EKS token over verified TLS", async () => {
    accepted.add("prod-a");
    eksMock.on(DescribeClusterCommand, { name: "prod-a" }).resolves(describeAnswer());
    const eks = new EKSClient({ region });
    const options = { clusterName: "prod-a", region, eks, credentials: async () => credentials };
    const kc = await eksKubeConfig(options);
    const core = kubeApiClient(kc, CoreV1Api, 2_000);
    const namespaces = await core.listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toEqual(["shop"]);
    // Called again per operation, as the handlers do: no second DescribeCluster, same token.
    expect(await eksKubeConfig(options)).toBe(kc);
    await core.listNamespace();
    expect(eksMock.commandCalls(DescribeClusterCommand)).toHaveLength(1);
    expect(server.counts.get("GET", "/api/v1/namespaces")).toBe(2);
  });

  it("is refused by an API server that expects another cluster's token", async () => {
    eksMock.on(DescribeClusterCommand).resolves(describeAnswer());
    const kc = await eksKubeConfig({
      clusterName: "not-accepted",
      region,
      eks: new EKSClient({ region }),
      credentials: async () => credentials,
    });
    const error = await kubeApiClient(kc, CoreV1Api, 2_000)
      .listNamespace()
      .catch((e: unknown) => e);
    const failure = describeKubeError(error, EKS_FIXES);
    expect(failure).toMatchObject({ kind: "unauthorized", status: 401 });
    expect(failure.fix).toBe("the function role needs an EKS access entry (see docs/deploy.md)");
  });

  it("does not cache a failed DescribeCluster: the next call tries again", async () => {
    accepted.add("prod-b");
    const denied = Object.assign(new Error("User is not authorized to perform: eks:DescribeCluster"), {
      name: "AccessDeniedException",
      $metadata: { httpStatusCode: 403 },
    });
    eksMock.on(DescribeClusterCommand).rejectsOnce(denied).resolves(describeAnswer());
    const options = {
      clusterName: "prod-b",
      region,
      eks: new EKSClient({ region }),
      credentials: async () => credentials,
    };
    const error = await eksKubeConfig(options).catch((e: unknown) => e);
    expect(describeKubeError(error, EKS_FIXES)).toMatchObject({
      kind: "aws",
      fix: "the function role needs eks:DescribeCluster on this cluster (see docs/deploy.md)",
    });
    const kc = await eksKubeConfig(options);
    expect((await kubeApiClient(kc, CoreV1Api, 2_000).listNamespace()).items).toHaveLength(1);
    expect(eksMock.commandCalls(DescribeClusterCommand)).toHaveLength(2);
  });

  it("reports a cluster without endpoint yet", async () => {
    eksMock.on(DescribeClusterCommand).resolves(describeAnswer({ status: "CREATING", endpoint: undefined }));
    const error = await eksKubeConfig({
      clusterName: "creating",
      region,
      eks: new EKSClient({ region }),
      credentials: async () => credentials,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AccessConfigError);
    expect((error as Error).message).toMatch(/no endpoint or CA yet \(status CREATING\)/);
  });
});

describe("loadKubeconfig", () => {
  it("reaches the server named in the kubeconfig, verifying it against the kubeconfig's CA", async () => {
    const kc = loadKubeconfig({ kubeconfig: server.kubeconfigPath });
    const nodes = await kubeApiClient(kc, CoreV1Api, 2_000).listNode();
    expect(nodes.kind).toBe("NodeList");
  });

  it("fails TLS verification against a server whose certificate another CA signed", async () => {
    const other = await createTestCertificates();
    const path = await server.writeKubeconfig({ caPem: other.caPem, contextName: "wrong-ca" });
    const kc = loadKubeconfig({ kubeconfig: path });
    const error = await kubeApiClient(kc, CoreV1Api, 2_000)
      .listNode()
      .catch((e: unknown) => e);
    expect(describeKubeError(error, KUBECONFIG_FIXES).kind).toBe("tls");
    expect(server.counts.total()).toBe(0);
  });

  it("selects a context, and names the ones there are when it does not exist", async () => {
    const path = await server.writeKubeconfig({ contextName: "staging" });
    expect(loadKubeconfig({ kubeconfig: path, context: "staging" }).getCurrentContext()).toBe("staging");
    expect(() => loadKubeconfig({ kubeconfig: path, context: "prod" })).toThrow(
      /context "prod" is not in .* \(contexts: staging\)/,
    );
  });

  it.each([
    ["insecure-skip-tls-verify", { "insecure-skip-tls-verify": true }, /always verifies TLS/],
    ["plain http", { server: "http://127.0.0.1:1" }, /not https/],
  ])("refuses a cluster with %s", async (_, cluster, message) => {
    const path = `${server.kubeconfigPath}.${_.replaceAll(" ", "-")}.json`;
    await writeFile(
      path,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: server.url, ...cluster } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    expect(() => loadKubeconfig({ kubeconfig: path })).toThrow(message);
  });

  it("refuses to run with TLS verification turned off process-wide", () => {
    const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
    try {
      expect(() => loadKubeconfig({ kubeconfig: server.kubeconfigPath })).toThrow(
        /NODE_TLS_REJECT_UNAUTHORIZED=0/,
      );
    } finally {
      if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before;
    }
  });

  it("says which file it cannot read", () => {
    expect(() => loadKubeconfig({ kubeconfig: "/nonexistent/kubeconfig" })).toThrow(
      /cannot read kubeconfig \/nonexistent\/kubeconfig/,
    );
  });
});

describe("describeKubeError", () => {
  const core = () => kubeApiClient(loadKubeconfig({ kubeconfig: server.kubeconfigPath }), CoreV1Api, 500);
  const failureOf = async (call: () => Promise<unknown>, fixes = KUBECONFIG_FIXES) =>
    describeKubeError(
      await call().then(
        () => undefined,
        (e: unknown) => e,
      ),
      fixes,
    );

  it("names the fix for 401 and 403, per way of reaching the cluster", async () => {
    await server.setFault({ kind: "status", code: 403 });
    const forbidden = await failureOf(() => core().listPodForAllNamespaces());
    expect(forbidden).toMatchObject({ kind: "forbidden", status: 403, fix: KUBECONFIG_FIXES.forbidden });
    expect(forbidden.fix).toMatch(/apply deploy\/rbac\.yaml/);
    expect(forbidden.message).toMatch(/pods is forbidden: User ".*" cannot list resource "pods"/);
    await server.setFault({ kind: "status", code: 401 });
    expect(await failureOf(() => core().listPodForAllNamespaces(), EKS_FIXES)).toMatchObject({
      kind: "unauthorized",
      fix: "the function role needs an EKS access entry (see docs/deploy.md)",
    });
  });

  it("tells server errors, throttling and expired continue tokens apart", async () => {
    await server.setFault({ kind: "status", code: 500 });
    expect(await failureOf(() => core().listNode())).toMatchObject({
      kind: "server",
      message: "HTTP 500: Internal error occurred: etcdserver: request timed out",
    });
    await server.setFault({ kind: "status", code: 429 });
    expect((await failureOf(() => core().listNode())).kind).toBe("throttled");
    await server.setFault(null);
    server.store.put("namespaces", kubeObjects.namespace({ name: "b" }));
    const page = await core().listNamespace({ limit: 1 });
    server.expireContinueTokens();
    const expired = await failureOf(() =>
      core().listNamespace({ limit: 1, _continue: page.metadata?._continue }),
    );
    expect(expired).toMatchObject({ kind: "expired", status: 410 });
    expect(expired.message).toMatch(/continue parameter is too old/);
  });

  it("times out a hanging server after the configured deadline, and reports a stopped one as unreachable", async () => {
    await server.setFault({ kind: "hang" });
    expect((await failureOf(() => core().listNode())).kind).toBe("timeout");
    await server.setFault({ kind: "down" });
    expect((await failureOf(() => core().listNode())).kind).toBe("unreachable");
  });
});
