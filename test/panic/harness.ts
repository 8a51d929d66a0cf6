// The panic function wired to local implementations: the HTTPS Kubernetes API test server serving the Calico
// resources, dynalite for the audit trail, fauxqs for SNS (a queue subscribed to the alerts topic shows what
// was announced) and a mocked EventBridge Scheduler (it has no local implementation).
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  GetScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import type { AwsClientStub } from "aws-sdk-client-mock";
import { DynamoPanicAudit } from "../../functions/adapters/dynamo/panic-audit.ts";
import { CalicoPolicies, panicEksFixes } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import { EventBridgeExpiryScheduler } from "../../functions/adapters/scheduler.ts";
import { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import {
  type CalicoPolicy,
  DEFAULT_PANIC_SETTINGS,
  type PanicPolicySettings,
} from "../../functions/core/panic-policy.ts";
import { createPanicHandler, type PanicRuntime } from "../../functions/panic/handler.ts";
import { type PanicResponse, PanicService } from "../../functions/panic/service.ts";
import { restApiEvent } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import {
  createTopic,
  drainQueue,
  type LocalSns,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";
import { type KubeApiServer, type ResourceSpec, startKubeApiServer } from "../support/kube-api-server.ts";

export const CLUSTER = "prod-eu";
export const FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:calico-flows-panic";
export const ALICE = "arn:aws:sts::123456789012:assumed-role/Oncall/alice";
export const SCHEDULE_GROUP = "calico-flows-panic";
export const SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/calico-flows-panic-scheduler";

function calicoResources(group: string, version: string): ResourceSpec[] {
  return [
    { group, version, plural: "globalnetworkpolicies", kind: "GlobalNetworkPolicy", namespaced: false },
    { group, version, plural: "networkpolicies", kind: "NetworkPolicy", namespaced: true },
    { group, version, plural: "tiers", kind: "Tier", namespaced: false },
    {
      group,
      version,
      plural: "stagedglobalnetworkpolicies",
      kind: "StagedGlobalNetworkPolicy",
      namespaced: false,
    },
  ];
}

export const CALICO_V3 = calicoResources("projectcalico.org", "v3");
export const CALICO_CRD = calicoResources("crd.projectcalico.org", "v1");
export const GNP_V3 = "globalnetworkpolicies.projectcalico.org";
export const NP_V3 = "networkpolicies.projectcalico.org";
export const TIERS_V3 = "tiers.projectcalico.org";

/**
 * Between two tests of the panic service: a Scheduler that accepts every call (and answers GetSchedule with what
 * was last written under that name), a cluster with no fault and no Calico objects, and no announcement left over.
 */
export async function resetPanicWorld(
  h: PanicHarness,
  scheduler: AwsClientStub<SchedulerClient>,
): Promise<void> {
  const scheduleArn = "arn:aws:scheduler:eu-west-1:123456789012:schedule/x/y";
  const written = new Map<string | undefined, CreateScheduleCommandInput>();
  scheduler.reset();
  scheduler.on(CreateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    written.set(input.Name, input);
    return { ScheduleArn: scheduleArn };
  });
  scheduler.on(UpdateScheduleCommand).callsFake(async (input: CreateScheduleCommandInput) => {
    written.set(input.Name, input);
    return { ScheduleArn: scheduleArn };
  });
  scheduler.on(DeleteScheduleCommand).callsFake(async (input: { Name?: string }) => {
    written.delete(input.Name);
    return {};
  });
  scheduler.on(GetScheduleCommand).callsFake(async (input: { Name?: string }) => {
    const schedule = written.get(input.Name);
    if (schedule === undefined)
      throw new ResourceNotFoundException({ message: "none", Message: "none", $metadata: {} });
    return { ...schedule, Arn: scheduleArn };
  });
  await h.kube.setFault(null);
  h.kube.store.clear();
  h.kube.counts.reset();
  await h.announcements();
}

/** An API answer's body. */
export const responseBody = (result: { body?: string }) =>
  JSON.parse(result.body ?? "null") as PanicResponse & Record<string, unknown>;

/** The panic policy as the cluster stores it, if it does. */
export const storedPanicPolicy = (h: PanicHarness) =>
  h.kube.store.get(GNP_V3, "allow-all") as unknown as CalicoPolicy | undefined;

export interface PanicHarness {
  kube: KubeApiServer;
  store: TestStore;
  sns: LocalSns;
  topicArn: string;
  /** Announcements published since the last call, as the `default` JSON structures. */
  announcements(): Promise<Record<string, unknown>[]>;
  /** `kubeTimeoutMs`: each Kubernetes request's own timeout (default 5 s). */
  runtime(
    overrides?: Partial<PanicPolicySettings> & { defaultTtlMinutes?: number; kubeTimeoutMs?: number },
  ): PanicRuntime;
  /** The middy handler over `runtime()` (or the runtime given), in `context` (default: 28 s to go). */
  invoke(
    event: unknown,
    runtime?: PanicRuntime,
    context?: Context,
  ): Promise<APIGatewayProxyResult & Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * A Lambda context for `arn`. Its remaining time runs down from `remainingMs` (the panic function's timeout
 * by default) as a real one does; a function for a remaining time the test decides itself.
 */
export function lambdaContext(
  arn = `${FUNCTION_ARN}:live`,
  remainingMs: number | (() => number) = 28_000,
): Context {
  const end = typeof remainingMs === "number" ? Date.now() + remainingMs : 0;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: "calico-flows-panic",
    functionVersion: "$LATEST",
    invokedFunctionArn: arn,
    memoryLimitInMB: "256",
    awsRequestId: "00000000-0000-0000-0000-000000000001",
    logGroupName: "/aws/lambda/calico-flows-panic",
    logStreamName: "test",
    getRemainingTimeInMillis:
      typeof remainingMs === "number" ? () => Math.max(0, end - Date.now()) : remainingMs,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export interface EventOptions {
  path?: string;
  identity?: { userArn?: string | null; caller?: string | null } | null;
  query?: Record<string, string>;
  /** Raw body text instead of JSON.stringify(body). */
  raw?: string;
}

/**
 * An API Gateway REST (v1) proxy event as an AWS_IAM-authorised method receives it (test/support/api-events.ts),
 * with the panic API's JSON body and the caller's identity (null: none at all).
 */
export function apiEvent(method: string, body?: unknown, options: EventOptions = {}): APIGatewayProxyEvent {
  const path = options.path ?? "/panic";
  const base = restApiEvent(path, options.query ?? {}, method);
  const given = options.identity;
  const text = options.raw ?? (body === undefined ? null : JSON.stringify(body));
  return {
    ...base,
    headers: text === null ? {} : { "Content-Type": "application/json" },
    multiValueHeaders: {},
    body: text,
    requestContext: {
      ...base.requestContext,
      identity: {
        ...base.requestContext.identity,
        userArn:
          given === null ? null : given !== undefined && "userArn" in given ? (given.userArn ?? null) : ALICE,
        caller:
          given === null
            ? null
            : given !== undefined && "caller" in given
              ? (given.caller ?? null)
              : "AROAEXAMPLE:alice",
        user: null,
      },
    },
  };
}

export async function startPanicHarness(
  resources: readonly ResourceSpec[] = CALICO_V3,
): Promise<PanicHarness> {
  const [kube, store, sns] = await Promise.all([
    startKubeApiServer({ resources }),
    startTestStore(),
    startLocalSns(),
  ]);
  const topicArn = await createTopic(sns, "calico-flows-alerts");
  const queueUrl = await subscribeQueue(sns, topicArn, "panic-announcements");
  const dynamo = store.clientFor();
  const kc = loadKubeconfig({ kubeconfig: kube.kubeconfigPath });
  const sink = new SnsAlertSink({ client: sns.sns, topicArn });
  const scheduler = new SchedulerClient({ region: "eu-west-1" });

  const runtime: PanicHarness["runtime"] = (overrides = {}) => {
    const { defaultTtlMinutes, kubeTimeoutMs, ...settings } = overrides;
    const merged = { ...DEFAULT_PANIC_SETTINGS, ...settings };
    return {
      service: new PanicService({
        cluster: CLUSTER,
        settings: merged,
        calico: new CalicoPolicies({
          apiGroup: merged.apiGroup,
          kubeConfig: () => kc,
          description: "the test cluster",
          timeoutMs: kubeTimeoutMs ?? 5_000,
          fixes: panicEksFixes(CLUSTER),
        }),
        defaultTtlMinutes: defaultTtlMinutes ?? 60,
        audit: new DynamoPanicAudit({ client: dynamo, tableName: store.tableName }),
        sink,
        scheduler: new EventBridgeExpiryScheduler({
          client: scheduler,
          groupName: SCHEDULE_GROUP,
          roleArn: SCHEDULER_ROLE,
        }),
      }),
    };
  };
  const standard = runtime();
  const handler = createPanicHandler(() => standard);

  return {
    kube,
    store,
    sns,
    topicArn,
    async announcements() {
      const messages = await drainQueue(sns, queueUrl);
      return messages.map((m) => JSON.parse(structureOf(m).default) as Record<string, unknown>);
    },
    runtime,
    async invoke(event, other, context = lambdaContext()) {
      const h = other === undefined ? handler : createPanicHandler(() => other);
      return (await h(event as APIGatewayProxyEvent, context)) as APIGatewayProxyResult &
        Record<string, unknown>;
    },
    async close() {
      scheduler.destroy();
      await Promise.all([kube.close(), store.close(), sns.close()]);
    },
  };
}

// --- a local API Gateway stand-in ------------------------------------------------------------------------

export interface SigV4Gateway {
  /** Base URL with the stage, e.g. http://127.0.0.1:PORT/prod */
  url: string;
  /** Requests whose signature did not verify. */
  rejected: string[];
  close(): Promise<void>;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/;

/**
 * Verifies an AWS_IAM (SigV4, service execute-api) request the way API Gateway does: recompute the signature
 * over the signed headers, the canonical path and query and the body with the caller's secret, and compare.
 * Answers the principal the access key belongs to, or why the request is refused.
 */
export async function verifySigV4(
  request: { method: string; url: URL; headers: Record<string, string | string[] | undefined>; body: string },
  principals: ReadonlyMap<string, { secretAccessKey: string; arn: string }>,
): Promise<{ arn: string } | { refused: string }> {
  const header = request.headers.authorization;
  const match = typeof header === "string" ? AUTHORIZATION.exec(header) : null;
  if (match === null) return { refused: "Missing Authentication Token" };
  const [, accessKeyId, , region, service, signedHeaders] = match as unknown as string[];
  const principal = principals.get(accessKeyId as string);
  if (principal === undefined) return { refused: "The security token included in the request is invalid." };
  if (service !== "execute-api")
    return { refused: `Credential should be scoped to correct service: 'execute-api'` };
  const amzDate = request.headers["x-amz-date"];
  if (typeof amzDate !== "string") return { refused: "Missing X-Amz-Date" };
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const headers: Record<string, string> = {};
  for (const name of (signedHeaders as string).split(";")) {
    const value = request.headers[name];
    if (typeof value !== "string") return { refused: `signed header ${name} is missing` };
    headers[name] = value;
  }
  // The signer takes a given x-amz-content-sha256 as the payload's hash: check it against the body itself.
  const payloadHash = request.headers["x-amz-content-sha256"];
  if (payloadHash !== undefined && payloadHash !== createHash("sha256").update(request.body).digest("hex")) {
    return { refused: "The request signature we calculated does not match the signature you provided." };
  }
  const query: Record<string, string> = {};
  for (const [k, v] of request.url.searchParams) query[k] = v;
  const signer = new SignatureV4({
    service: "execute-api",
    region: region as string,
    credentials: { accessKeyId: accessKeyId as string, secretAccessKey: principal.secretAccessKey },
    sha256: Hash.bind(null, "sha256"),
  });
  const expected = await signer.sign(
    new HttpRequest({
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      port: request.url.port === "" ? undefined : Number(request.url.port),
      path: request.url.pathname,
      query,
      headers,
      body: request.body === "" ? undefined : request.body,
    }),
    { signingDate },
  );
  if (expected.headers.authorization !== header) {
    return {
      refused:
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    };
  }
  return { arn: principal.arn };
}

/**
 * An HTTP endpoint that verifies SigV4 like an AWS_IAM method and hands verified requests to the panic
 * handler as REST proxy events carrying the caller's identity; 403 for anything that does not verify.
 */
export async function startSigV4Gateway(
  invoke: (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>,
  principals: ReadonlyMap<string, { secretAccessKey: string; arn: string }>,
  stage = "prod",
): Promise<SigV4Gateway> {
  const rejected: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
        const method = req.method ?? "GET";
        const verdict = await verifySigV4({ method, url, headers: req.headers, body }, principals);
        if ("refused" in verdict) {
          rejected.push(verdict.refused);
          res.writeHead(403, { "content-type": "application/json" });
          res.end(JSON.stringify({ message: verdict.refused }));
          return;
        }
        const path = url.pathname.startsWith(`/${stage}/`)
          ? url.pathname.slice(stage.length + 1)
          : url.pathname;
        const query = Object.fromEntries(url.searchParams);
        const event = apiEvent(method, undefined, {
          path,
          identity: { userArn: verdict.arn, caller: verdict.arn.split("/").pop() ?? null },
          query: Object.keys(query).length > 0 ? query : undefined,
          raw: body === "" ? undefined : body,
        });
        try {
          const result = await invoke(event);
          res.writeHead(result.statusCode, result.headers as Record<string, string> | undefined);
          res.end(result.body);
        } catch (error) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ message: String(error) }));
        }
      })();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${stage}`,
    rejected,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
