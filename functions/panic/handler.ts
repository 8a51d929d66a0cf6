// Panic Lambda: `POST|GET|DELETE /panic` behind API Gateway (AWS_IAM), and the revert event its own expiry
// schedule sends. Thin by design: configuration and clients are built once per container; the work is in
// service.ts, which `calico-flows panic --direct` runs too.

import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EKSClient } from "@aws-sdk/client-eks";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SNSClient } from "@aws-sdk/client-sns";
import middy from "@middy/core";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import * as z from "zod";
import { STORE_REQUEST_TIMEOUTS } from "../adapters/dynamo/client.ts";
import { DynamoPanicAudit } from "../adapters/dynamo/panic-audit.ts";
import { CalicoPolicies, panicEksFixes } from "../adapters/kube/calico.ts";
import { eksKubeConfig } from "../adapters/kube/cluster-access.ts";
import { EventBridgeExpiryScheduler } from "../adapters/scheduler.ts";
import { SnsAlertSink } from "../adapters/sns-sink.ts";
import { Deadline } from "../core/deadline.ts";
import { EXPIRY_EVENT_SOURCE, PanicFailure, type PanicFailureKind } from "../core/panic-policy.ts";
import { json, responseBytes } from "../shared/http.ts";
import { logger, metrics, tracer } from "../shared/powertools.ts";
import { loadPanicConfig, type PanicConfig } from "./config.ts";
import {
  ApplyBody,
  copyNotRestored,
  DEFAULT_HISTORY,
  expiryNotScheduled,
  failureBody,
  invalidRequest,
  isRefusal,
  MAX_HISTORY,
  type PanicResponse,
  PanicService,
  RevertBody,
  UnconfirmedApply,
  unqualifiedArn,
} from "./service.ts";

export const PANIC_PATH = "/panic";
const ALLOWED = "GET, POST, DELETE";

/**
 * The audit record's and the announcement's clients: each request given up after 2 s (DynamoDB and SNS answer
 * in milliseconds; connecting included, as the SDK's timer starts with the request), and tried twice, so that a
 * throttled or lost first attempt is retried and both still end within 2 × 2 s and the SDK's short backoff.
 */
const RECORD_TIMEOUTS = {
  connectionTimeout: 1_000,
  requestTimeout: 2_000,
  throwOnRequestTimeout: true,
} as const;
const RECORD_ATTEMPTS = 2;

/**
 * Kept back from the invocation's remaining time for what follows the Kubernetes and Scheduler calls: the
 * audit record and the announcement, sent side by side (RECORD_ATTEMPTS tries of RECORD_TIMEOUTS each), then the
 * answer itself (logged, metrics flushed). What is left is the service's deadline, so that a slow Kubernetes API
 * ends in an audited answer before Lambda's timeout (28 s) and API Gateway's (29 s), never in either.
 */
export const ANSWER_RESERVE_MS = RECORD_ATTEMPTS * RECORD_TIMEOUTS.requestTimeout + 2_000;

/** The service's deadline for this invocation (docs/panic.md, "Time budget"). */
export function invocationDeadline(context: Pick<Context, "getRemainingTimeInMillis">): Deadline {
  return Deadline.after(context.getRemainingTimeInMillis() - ANSWER_RESERVE_MS);
}

export interface PanicRuntime {
  service: PanicService;
}

/** The expiry schedules as configured: the group, the role, and the dead-letter queue every schedule names. */
export function expiryScheduler(
  config: PanicConfig,
  client: SchedulerClient,
): EventBridgeExpiryScheduler | undefined {
  return config.scheduler === undefined
    ? undefined
    : new EventBridgeExpiryScheduler({
        client,
        groupName: config.scheduler.groupName,
        roleArn: config.scheduler.roleArn,
        deadLetterArn: config.scheduler.deadLetterArn,
      });
}

export function createRuntime(config: PanicConfig): PanicRuntime {
  const eks = tracer.captureAWSv3Client(new EKSClient({}));
  const calico = new CalicoPolicies({
    apiGroup: config.settings.apiGroup,
    kubeConfig: () => eksKubeConfig({ clusterName: config.cluster, eks, timeoutMs: config.kubeTimeoutMs }),
    description: `EKS cluster ${config.cluster}`,
    timeoutMs: config.kubeTimeoutMs,
    fixes: panicEksFixes(config.cluster),
  });
  return {
    service: new PanicService({
      cluster: config.cluster,
      settings: config.settings,
      calico,
      defaultTtlMinutes: config.defaultTtlMinutes,
      // The audit record and the announcement: bounded as ANSWER_RESERVE_MS counts them (the SDK's defaults
      // have no timeout and up to three attempts).
      audit: new DynamoPanicAudit({
        client: tracer.captureAWSv3Client(
          new DynamoDBClient({ requestHandler: { ...RECORD_TIMEOUTS }, maxAttempts: RECORD_ATTEMPTS }),
        ),
        tableName: config.tableName,
      }),
      sink:
        config.alertsTopicArn === undefined
          ? undefined
          : new SnsAlertSink({
              client: tracer.captureAWSv3Client(
                new SNSClient({ requestHandler: { ...RECORD_TIMEOUTS }, maxAttempts: RECORD_ATTEMPTS }),
              ),
              topicArn: config.alertsTopicArn,
            }),
      // The service waits for the schedule only until its deadline; the timeouts end what it gave up on.
      scheduler:
        config.scheduler === undefined
          ? undefined
          : expiryScheduler(
              config,
              tracer.captureAWSv3Client(
                new SchedulerClient({ requestHandler: { ...STORE_REQUEST_TIMEOUTS } }),
              ),
            ),
      logger,
    }),
  };
}

const STATUS: Record<PanicFailureKind, number> = {
  invalid: 400,
  "not-owned": 409,
  conflict: 409,
  "kube-access": 502,
  "api-missing": 502,
  "kube-rejected": 502,
  "kube-unavailable": 502,
};

const ExpiryEventSchema = z.object({
  source: z.literal(EXPIRY_EVENT_SOURCE),
  action: z.literal("revert"),
  cluster: z.string().min(1),
  policyName: z.string().min(1),
  expiresAt: z.iso.datetime(),
});

/** What each method asks of the service: a failure's record and metric name it (a dry run is POST's other one). */
const ACTION_OF = { GET: "status", POST: "apply", DELETE: "revert" } as const;

/**
 * Counts an action that failed, by action and kind; and in PanicFailures when `alarmed`: a failure the function
 * answered (a 409 conflict, a 502, a 500) or finished without retrying is a success for Lambda, so the PanicErrors
 * alarm reads PanicFailures beside the function's Errors (the failures it threw). A refusal (isRefusal) is the
 * caller's to change: the button worked.
 */
function countFailure(action: string, kind: string, alarmed: boolean): void {
  metrics.addMetric(`PanicFailure_${action}_${kind}`, MetricUnit.Count, 1);
  if (alarmed) metrics.addMetric("PanicFailures", MetricUnit.Count, 1);
}

function failureResponse(error: PanicFailure): APIGatewayProxyResult {
  return json(STATUS[error.kind], failureBody(error));
}

/** Whether a refused body asked for a dry run (audited, not announced). */
function dryRunIn(body: unknown): unknown {
  return typeof body === "object" && body !== null ? (body as { dryRun?: unknown }).dryRun : undefined;
}

/** The `reason` a refused body carried, for the audit trail. */
function reasonIn(body: unknown): unknown {
  return typeof body === "object" && body !== null ? (body as { reason?: unknown }).reason : undefined;
}

/** A request body read and validated, or the refusal it earns and whatever of it could be parsed. */
type BodyCheck<T> = { ok: true; data: T } | { ok: false; body: unknown; failure: PanicFailure };

/**
 * Reads the body as JSON and validates it against `schema`. Absent or empty is `{}` where the body is optional
 * (DELETE) and a refusal where it is required (POST). Every way of failing — missing, not JSON, not the
 * schema — ends here as one PanicFailure, so the handler refuses them all through the service alike: a body
 * refused before it could be parsed is audited and announced as much as one that parsed but was invalid.
 */
function checkBody<S extends z.ZodObject>(
  event: APIGatewayProxyEvent,
  schema: S,
  required: boolean,
): BodyCheck<z.infer<S>> {
  const raw = event.body ?? "";
  const text = event.isBase64Encoded ? Buffer.from(raw, "base64").toString("utf8") : raw;
  let body: unknown;
  if (text.trim() === "") {
    if (required) {
      const failure = new PanicFailure("invalid", "body: a JSON object with at least reason is required", {
        field: "reason",
      });
      return { ok: false, body: undefined, failure };
    }
    body = {};
  } else {
    try {
      const value: unknown = JSON.parse(text);
      // A JSON null stands for no optional body (DELETE accepted it so before); a required one it fails.
      body = value === null && !required ? {} : value;
    } catch (error) {
      const failure = new PanicFailure("invalid", `body: not valid JSON (${(error as Error).message})`, {
        field: "body",
      });
      return { ok: false, body: undefined, failure };
    }
  }
  const parsed = schema.safeParse(body);
  return parsed.success
    ? { ok: true, data: parsed.data as z.infer<S> }
    : { ok: false, body, failure: invalidRequest(parsed.error, schema) };
}

/** The caller: API Gateway puts the SigV4-authenticated principal in the request context. */
function requesterOf(event: APIGatewayProxyEvent): string | undefined {
  const identity = event.requestContext?.identity;
  return identity?.userArn || identity?.caller || undefined;
}

/**
 * An applied policy whose expiry may not be scheduled stays past the expiry announced: an alarm reads this, as the
 * apply itself succeeds (the emergency wins), or may have (its write not confirmed), and only its caller sees the
 * warning.
 */
function countExpiryNotScheduled(warnings: readonly string[]): void {
  if (expiryNotScheduled(warnings).length > 0) {
    metrics.addMetric("PanicExpiryNotScheduled", MetricUnit.Count, 1);
  }
}

function respond(response: PanicResponse): APIGatewayProxyResult {
  metrics.addMetric(`Panic_${response.action}_${response.result}`, MetricUnit.Count, 1);
  countExpiryNotScheduled(response.warnings);
  return json(200, fitAnswer(response));
}

/**
 * The bytes a synchronous invocation may answer (Lambda's 6 MB, 6,291,456 bytes), with room to spare: counted as
 * responseBytes counts them.
 */
export const ANSWER_MAX_BYTES = 6_000_000;
const answerBytes = (response: PanicResponse) => responseBytes(json(200, response));
const TOO_LARGE = "the answer must fit in Lambda's 6 MB";

/**
 * `response` cut to what Lambda may answer, saying so in its warnings; API Gateway would otherwise answer 502 to
 * the status of a cluster with tens of thousands of policies in conflict, or with many take-overs in its history
 * (each record keeps a copy of up to 64 KB). Left out first the copies (their digests stay), then the oldest
 * history entries, then the last conflicts: `--direct` answers in full.
 */
export function fitAnswer(response: PanicResponse, maxBytes = ANSWER_MAX_BYTES): PanicResponse {
  if (answerBytes(response) <= maxBytes) return response;
  const history = response.history ?? [];
  let fitted = response;
  if (history.some((e) => e.replacedPolicy !== undefined)) {
    fitted = {
      ...fitted,
      history: history.map(({ replacedPolicy: _, ...entry }) => entry),
      warnings: [
        ...fitted.warnings,
        "the copies of taken-over policies are left out of the history (their SHA-256 is given; the audit " +
          `records in the flow table keep them): ${TOO_LARGE}`,
      ],
    };
    if (answerBytes(fitted) <= maxBytes) return fitted;
  }
  // The most that fit of a list cut from its end, by bisection (the warning's own bytes counted in).
  const longest = (total: number, cut: (n: number) => PanicResponse): PanicResponse => {
    let low = 0;
    let high = total;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if (answerBytes(cut(mid)) <= maxBytes) low = mid;
      else high = mid - 1;
    }
    return cut(low);
  };
  const entries = fitted.history ?? [];
  const withHistory = (n: number): PanicResponse => ({
    ...fitted,
    history: entries.slice(0, n),
    warnings: [
      ...fitted.warnings,
      `history cut to its ${n} most recent of ${entries.length} entries: ${TOO_LARGE}`,
    ],
  });
  if (entries.length > 0) {
    const cut = longest(entries.length, withHistory);
    if (answerBytes(cut) <= maxBytes) return cut;
    fitted = withHistory(0);
  }
  const all = fitted.conflicts;
  return longest(all.length, (n) => ({
    ...fitted,
    conflicts: all.slice(0, n),
    warnings: [
      ...fitted.warnings,
      `${n} of ${all.length} conflicts listed: ${TOO_LARGE}; \`calico-flows panic status --direct\` lists them all`,
    ],
  }));
}

export async function handleHttp(
  event: APIGatewayProxyEvent,
  context: Pick<Context, "invokedFunctionArn" | "getRemainingTimeInMillis">,
  runtime: PanicRuntime,
): Promise<APIGatewayProxyResult> {
  // The resource when the API names it; the path under a greedy proxy resource.
  const route = event.resource !== undefined && !event.resource.includes("{") ? event.resource : event.path;
  const path = (route ?? "").replace(/\/+$/, "") || "/";
  if (path !== PANIC_PATH) return json(404, { error: "not-found", message: `no route ${event.path}` });
  const method = event.httpMethod?.toUpperCase();
  if (method !== "GET" && method !== "POST" && method !== "DELETE") {
    return json(
      405,
      { error: "method-not-allowed", message: `${method} is not allowed on ${PANIC_PATH}` },
      { allow: ALLOWED },
    );
  }
  let action: PanicResponse["action"] = ACTION_OF[method];
  const deadline = invocationDeadline(context);
  const requester = requesterOf(event);
  if (requester === undefined) {
    // Only reachable if the method lost its AWS_IAM authorisation: refuse rather than act anonymously.
    return json(401, {
      error: "unauthenticated",
      message: "no IAM identity in the request context: the method must use AWS_IAM authorisation",
    });
  }
  try {
    switch (method) {
      case "GET": {
        const raw = event.queryStringParameters?.history;
        // Decimal digits only: Number() would also take "1e1", "0x10", " 5" and "".
        const history = raw === undefined ? DEFAULT_HISTORY : /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
        if (!Number.isInteger(history) || history < 0 || history > MAX_HISTORY) {
          throw new PanicFailure(
            "invalid",
            `history: expected an integer from 0 to ${MAX_HISTORY}, got "${raw}"`,
            {
              field: "history",
            },
          );
        }
        return respond(
          await runtime.service.status(history, deadline, unqualifiedArn(context.invokedFunctionArn)),
        );
      }
      case "POST": {
        const checked = checkBody(event, ApplyBody, true);
        if (dryRunIn(checked.ok ? checked.data : checked.body) === true) action = "dry-run";
        if (!checked.ok) {
          const { body, failure } = checked;
          await runtime.service.refused(
            "apply",
            { requester, via: "api", reason: reasonIn(body), dryRun: dryRunIn(body) },
            failure,
          );
          throw failure;
        }
        logger.appendKeys({ requester });
        return respond(
          await runtime.service.apply({
            ...checked.data,
            requester,
            via: "api",
            expiryTarget: unqualifiedArn(context.invokedFunctionArn),
            deadline,
          }),
        );
      }
      case "DELETE": {
        const checked = checkBody(event, RevertBody, false);
        if (!checked.ok) {
          const { body, failure } = checked;
          await runtime.service.refused("revert", { requester, via: "api", reason: reasonIn(body) }, failure);
          throw failure;
        }
        logger.appendKeys({ requester });
        return respond(
          await runtime.service.revert({
            requester,
            via: "api",
            reason: checked.data.reason,
            force: checked.data.force,
            expiryTarget: unqualifiedArn(context.invokedFunctionArn),
            deadline,
          }),
        );
      }
    }
  } catch (error) {
    // Which action failed decides what is left to do: an allow-all not applied, or isolation still off.
    if (error instanceof PanicFailure) {
      countFailure(action, error.kind, !isRefusal(error));
      if (error instanceof UnconfirmedApply) countExpiryNotScheduled(error.warnings);
      (STATUS[error.kind] >= 500 ? logger.error : logger.warn).call(logger, "panic request failed", {
        action,
        kind: error.kind,
        reason: error.message,
      });
      return failureResponse(error);
    }
    countFailure(action, "internal", true);
    logger.error("panic request failed unexpectedly", { action, error });
    return json(500, {
      error: "internal",
      message: "internal error: see the function's logs",
      requestId: event.requestContext?.requestId,
    });
  }
}

function isExpiryEvent(event: unknown): boolean {
  return (
    typeof event === "object" &&
    event !== null &&
    (event as { source?: unknown }).source === EXPIRY_EVENT_SOURCE
  );
}

export type PanicLambdaEvent = APIGatewayProxyEvent | z.infer<typeof ExpiryEventSchema>;

/** Builds the Lambda handler over a runtime (tests pass one wired to local servers). */
export function createPanicHandler(runtime: () => PanicRuntime) {
  return middy(async (event: PanicLambdaEvent, context: Context) => {
    if (isExpiryEvent(event)) {
      const parsed = ExpiryEventSchema.safeParse(event);
      if (!parsed.success) {
        // Retrying a malformed event cannot help: log it and finish. Its policy, if any, stays applied.
        countFailure("expire", "invalid", true);
        logger.error("malformed expiry event", { issues: parsed.error.issues });
        return { statusCode: 400, error: "invalid expiry event" };
      }
      // Errors propagate on purpose: Scheduler invokes the function asynchronously, so Lambda retries the
      // revert (twice), then puts it in the dead-letter queue, whose alarm asks for a revert by hand; the
      // schedule's own retry policy only covers deliveries that failed.
      // In time too: a revert that runs out of time fails (and is retried) rather than being killed unaudited.
      const expiry = parsed.data;
      const { service } = runtime();
      let response: PanicResponse;
      try {
        response = await service.expire(expiry, invocationDeadline(context));
      } catch (error) {
        // Recorded before Lambda takes it: what the runtime logs of a thrown error is a text line, without fields.
        // Lambda's Errors count it for PanicErrors.
        const kind = error instanceof PanicFailure ? error.kind : "internal";
        countFailure("expire", kind, false);
        logger.error("panic expiry failed (retried by Lambda, then kept in the panic dead-letter queue)", {
          action: "expire",
          kind,
          cluster: expiry.cluster,
          policyName: expiry.policyName,
          expiresAt: expiry.expiresAt,
          error,
        });
        throw error;
      }
      metrics.addMetric(`Panic_expire_${response.result}`, MetricUnit.Count, 1);
      // Isolation is back, but the policy a take-over replaced is lost (its copy unreadable, or refused by the API
      // server): its text is in the audit record, and no one called to read the warning. PanicErrors reads it.
      if (copyNotRestored(response.warnings)) countFailure("expire", "copy-not-restored", true);
      // An expiry for another cluster or policy name (a schedule written under another configuration) removes
      // nothing: the policy it was for stays applied, and PanicErrors reads it.
      if (expiry.cluster !== response.cluster || expiry.policyName !== response.policyName)
        countFailure("expire", "other-policy", true);
      // `detail`: Powertools drops a `message` key, which is the log line's own.
      logger.info("expiry handled", { result: response.result, detail: response.message });
      return response;
    }
    const request = event as APIGatewayProxyEvent;
    // The request's records under the id API Gateway gives its caller (x-amzn-RequestId, a 500's requestId).
    const requestId = request.requestContext?.requestId;
    if (requestId !== undefined) logger.setCorrelationId(requestId);
    return handleHttp(request, context, runtime());
  })
    .use(captureLambdaHandler(tracer))
    .use(injectLambdaContext(logger, { clearState: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .use(httpHeaderNormalizer());
}

let runtime: PanicRuntime | undefined;

export const handler = createPanicHandler(() => {
  runtime ??= createRuntime(loadPanicConfig(process.env));
  return runtime;
});
