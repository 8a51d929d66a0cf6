// Review: Lambda packaging, cold start and runtime configuration (DESIGN.md §4 and §5, docs/architecture.md "The live
// directory's Kubernetes reads" and "Resolution never blocks storage", docs/deploy.md §6 and §7). Each function's
// deployed settings are read from the synthesized template (bundling skipped: synth.test.ts bundles for real), and the
// code runs as the function runs it: in a process of its own sized as Lambda sizes it, against the local Kubernetes
// API server.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import { type KubeApiServer, startKubeApiServer } from "../support/kube-api-server.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};

interface DeployedFunction {
  memorySize: number;
  timeout: number;
  env: Record<string, unknown>;
}

/** Each function of the stack `cdk synth` builds from cdk.json, by its Powertools service name. */
function deployedFunctions(): Record<"ingest" | "panic" | "query", DeployedFunction> {
  const app = new App({ context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const template = Template.fromStack(new CalicoFlowsStack(app, "CalicoFlows", { config }));
  const found: Partial<Record<"ingest" | "panic" | "query", DeployedFunction>> = {};
  for (const fn of Object.values(template.findResources("AWS::Lambda::Function"))) {
    const p = fn.Properties as {
      MemorySize: number;
      Timeout: number;
      Environment: { Variables: Record<string, unknown> };
    };
    const service = String(p.Environment.Variables.POWERTOOLS_SERVICE_NAME);
    const which = (["ingest", "panic", "query"] as const).find((w) => service.endsWith(`-${w}`));
    if (which !== undefined)
      found[which] = { memorySize: p.MemorySize, timeout: p.Timeout, env: p.Environment.Variables };
  }
  return found as Record<"ingest" | "panic" | "query", DeployedFunction>;
}

/**
 * Node's heap as Lambda's Node.js bootstrap sizes it for a function's memory (MB): old space 90 % of it, semi-space
 * 5 %. The container as a whole is held to the memory itself: past it Lambda ends the runtime (Runtime.OutOfMemory).
 */
const lambdaHeapFlags = (memoryMb: number) => [
  `--max-semi-space-size=${Math.floor((memoryMb * 5) / 100)}`,
  `--max-old-space-size=${Math.floor((memoryMb * 90) / 100)}`,
];

/**
 * A pod as an EKS API server lists it: managedFields, an app container and a mesh sidecar with probes, env and
 * resources, projected service-account volumes, tolerations, conditions and container statuses. About 8 KB of JSON,
 * as real pods are (kubectl hides managedFields; the API does not). NAME, UID, NS and IP are filled in per pod.
 */
function podTemplate(created: string): string {
  const container = (name: string, image: string) => ({
    name,
    image,
    imagePullPolicy: "IfNotPresent",
    ports: [{ containerPort: 8080, name: "http", protocol: "TCP" }],
    env: Array.from({ length: 12 }, (_, k) => ({
      name: `APP_SETTING_${k}`,
      value: `value-${k}-${"x".repeat(20)}`,
    })),
    resources: { limits: { cpu: "500m", memory: "512Mi" }, requests: { cpu: "250m", memory: "256Mi" } },
    volumeMounts: [
      {
        mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
        name: "kube-api-access-abcde",
        readOnly: true,
      },
      {
        mountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount",
        name: "aws-iam-token",
        readOnly: true,
      },
    ],
    livenessProbe: {
      httpGet: { path: "/healthz", port: 8080, scheme: "HTTP" },
      periodSeconds: 10,
      timeoutSeconds: 1,
    },
    readinessProbe: {
      httpGet: { path: "/ready", port: 8080, scheme: "HTTP" },
      periodSeconds: 5,
      timeoutSeconds: 1,
    },
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
  });
  const fields = (n: number) =>
    Object.fromEntries(Array.from({ length: n }, (_, k) => [`f:field${k}`, { ".": {}, [`f:sub${k}`]: {} }]));
  return JSON.stringify({
    metadata: {
      name: "NAME",
      generateName: "checkout-api-7d9f8b6c5d-",
      namespace: "NS",
      uid: "UID",
      resourceVersion: "100001",
      creationTimestamp: created,
      labels: { app: "checkout-api", "pod-template-hash": "7d9f8b6c5d", "baseten.co/organization": "true" },
      annotations: { "kubectl.kubernetes.io/restartedAt": created, "prometheus.io/scrape": "true" },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "checkout-api-7d9f8b6c5d",
          uid: "9a8b7c6d",
          controller: true,
        },
      ],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time: created,
          fieldsType: "FieldsV1",
          fieldsV1: { "f:metadata": fields(6), "f:spec": fields(20) },
        },
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          time: created,
          fieldsType: "FieldsV1",
          fieldsV1: { "f:status": fields(14) },
          subresource: "status",
        },
      ],
    },
    spec: {
      volumes: [
        {
          name: "aws-iam-token",
          projected: { sources: [{ serviceAccountToken: { audience: "sts.amazonaws.com", path: "token" } }] },
        },
        {
          name: "kube-api-access-abcde",
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
            ],
          },
        },
      ],
      containers: [
        container("app", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/checkout-api:1.42.7"),
        container("envoy", "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod"),
      ],
      restartPolicy: "Always",
      dnsPolicy: "ClusterFirst",
      serviceAccountName: "checkout-api",
      nodeName: "ip-192-168-74-5.eu-west-1.compute.internal",
      schedulerName: "default-scheduler",
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
        {
          key: "node.kubernetes.io/unreachable",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
    },
    status: {
      phase: "Running",
      conditions: [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
      ].map((type) => ({ type, status: "True", lastProbeTime: null, lastTransitionTime: created })),
      hostIP: "192.168.74.5",
      hostIPs: [{ ip: "192.168.74.5" }],
      podIP: "IP",
      podIPs: [{ ip: "IP" }],
      startTime: created,
      qosClass: "Burstable",
      containerStatuses: ["app", "envoy"].map((name) => ({
        name,
        state: { running: { startedAt: created } },
        ready: true,
        restartCount: 0,
        image: name,
        imageID: `123456789012.dkr.ecr.eu-west-1.amazonaws.com/${name}@sha256:${"a".repeat(64)}`,
        containerID: `containerd://${"b".repeat(64)}`,
        started: true,
      })),
    },
  });
}

const podIp = (i: number) => `192.168.${(i >> 8) & 255}.${i & 255}`;

/** The whole PodList of `count` pods, as one JSON text (as a watch cache before Kubernetes 1.34 answers it). */
function podList(count: number, created: string): string {
  const template = podTemplate(created);
  const pods = Array.from({ length: count }, (_, i) =>
    template
      .replace('"NAME"', `"checkout-api-7d9f8b6c5d-${i.toString(36).padStart(5, "0")}"`)
      .replace('"NS"', `"customer-${i % 200}"`)
      .replace('"UID"', `"0b5e6a4e-1c2d-4e5f-8a9b-${String(i).padStart(12, "0")}"`)
      .replaceAll('"IP"', `"${podIp(i)}"`),
  );
  return `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[${pods.join(",")}]}`;
}

/**
 * Run in a process of its own: a cold container's live directory, built as functions/ingest/handler.ts builds it
 * (its per-request timeout is the deployed KUBE_TIMEOUT_SECONDS), asked about a delivery's internal addresses. Its
 * resolve budget is the function's timeout, so that the process ends only once the first list has been read.
 */
const COLD_DIRECTORY = `
const [root, kubeconfig, timeoutMs, budgetMs, ips] = process.argv.slice(1);
const { KUBECONFIG_FIXES, loadKubeconfig } = await import(root + "functions/adapters/kube/cluster-access.ts");
const { LiveDirectory } = await import(root + "functions/adapters/kube/live-directory.ts");
const kc = loadKubeconfig({ kubeconfig });
const directory = new LiveDirectory({
  kubeConfig: () => kc, fixes: KUBECONFIG_FIXES, cluster: "prod",
  timeoutMs: Number(timeoutMs), resolveBudgetMs: Number(budgetMs),
});
const at = Date.now();
const answers = await directory.resolve(JSON.parse(ips).map((ip) => ({ ip, at })));
process.stdout.write(JSON.stringify({
  statuses: answers.map((a) => a.status),
  maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
}));
`;

describe("the ingest function's memory on a cold container", { timeout: 120_000 }, () => {
  let kube: KubeApiServer;

  beforeAll(async () => {
    kube = await startKubeApiServer();
  });
  afterAll(async () => {
    await kube.close();
  });

  it("reads the first pod list of a 24,000-pod cluster within the function's memory", async () => {
    // Defect: the ingest function runs with 1024 MB (lib/ingest.ts, sized for CPU: "1 GB buys most of a vCPU"), and a
    // cold container's live directory asks for the whole pod list at resourceVersion=0 with limit=500, which a watch
    // cache before Kubernetes 1.34 answers as one page of every pod (architecture.md: "tested with 130,000 pods", pods
    // of 250 bytes there). @kubernetes/client-node holds that page three times at once (the response text, its
    // JSON.parse and the V1Pod models ObjectSerializer builds), about 50 MB per thousand pods of 7 KB: the list of a
    // 24,000-pod cluster (176 MB of JSON; the README benchmarks 65,024 pods) takes the process to about 1,200 MB.
    // Impact: Lambda ends the container (Runtime.OutOfMemory) at the first delivery with more than five unknown
    // internal addresses; that delivery fails, and so does each retry, in a new cold container that lists again,
    // until the failed-payloads queue holds it: in a denial storm, most deliveries. Attribution blocks storage, which
    // DESIGN.md §4 says it never does ("flows are stored unresolved").
    // Expected: the first list fits the function's memory: read a page at a time (consistent pagination, or only the
    // fields a holder needs), or give the function memory for the clusters the docs promise.
    const { ingest } = deployedFunctions();
    const count = 24_000;
    const created = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, "Z");
    const body = podList(count, created);
    kube.setInterceptor((request) =>
      request.path === "/api/v1/pods" && request.query.get("fieldSelector") === null
        ? { code: 200, body, headers: { "content-type": "application/json" } }
        : undefined,
    );
    // A delivery with eight internal addresses (more than the five asked one by one): the directory lists.
    const ips = Array.from({ length: 8 }, (_, k) => podIp(k * 2_999 + 1));
    const child = await run(
      process.execPath,
      [
        ...lambdaHeapFlags(ingest.memorySize),
        "--input-type=module",
        "-e",
        COLD_DIRECTORY,
        ROOT,
        kube.kubeconfigPath,
        String(Number(ingest.env.KUBE_TIMEOUT_SECONDS) * 1000),
        String(ingest.timeout * 1000),
        JSON.stringify(ips),
      ],
      { maxBuffer: 1 << 20, timeout: 110_000 },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: "" }),
      (e: { code: number | string; signal?: string; stdout: string; stderr: string }) => ({
        code: e.signal ?? e.code,
        stdout: e.stdout,
        stderr: e.stderr.slice(-600),
      }),
    );
    expect({ code: child.code, stderr: child.stderr }, "the directory's process").toEqual({
      code: 0,
      stderr: "",
    });
    const result = JSON.parse(child.stdout) as { statuses: string[]; maxRssMb: number };
    expect(result.statuses).toEqual(ips.map(() => "found"));
    expect(
      result.maxRssMb,
      `peak memory of a cold directory's first list of ${count} pods (${Math.round(body.length / 1_048_576)} MB)`,
    ).toBeLessThanOrEqual(ingest.memorySize);
  });
});
