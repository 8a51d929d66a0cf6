// Query Lambda behind the IAM-authorised API: GET /flows and GET /alerts over the flow store.
// Thin by design: parameters are validated here (400 naming the parameter), the work is the store's
// queryFlows/queryAlerts, which only use Query access patterns (never Scan).
//
//   GET /flows  ?namespace= &workload=[kind/]name &pod= &ip= &internal=true|false &since= &until= &limit= &cursor=
//   GET /alerts ?since= &until= &limit= &cursor=
//
// since/until: ISO-8601, `now`, or a duration before now (15m, 6h, 7d); default the last 24 hours; flows with a
// packet between them, alerts opened by until and last seen at since or after (a late hit, folded into an alert
// opened after it, is listed by that opening, not by its own time). workload
// and pod need namespace. limit: 1–1000, default 100. cursor: the previous page's, which carries that page's
// time window (since/until are not read again). 200 `{ cluster, items, cursor }`: the cluster the stack serves
// (named even on an empty page, so that a client can tell another cluster's API from a quiet range), the flow
// records of DESIGN.md §3.3 (alert records for /alerts), and `cursor: null` on the last page; 400
// `{ message, parameter }`. A page whose answer would pass Lambda's response limit ends early (MAX_ANSWER_BYTES),
// its cursor going on after its last record.

import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import middy from "@middy/core";
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
  Context,
} from "aws-lambda";
import * as z from "zod";
import { STORE_REQUEST_TIMEOUTS, storeClient } from "../adapters/dynamo/client.ts";
import { InvalidCursorError } from "../adapters/dynamo/cursor.ts";
import { DynamoFlowStore } from "../adapters/dynamo/flow-store.ts";
import { InvalidInputError } from "../adapters/dynamo/keys.ts";
import type { RetryPolicy } from "../adapters/dynamo/retry.ts";
import { Deadline } from "../core/deadline.ts";
import { EARLIEST_MS, INSTANT_HELP, instantOf, isoMs } from "../core/instant.ts";
import type { AlertQuery, FlowQuery, FlowStore, Page } from "../core/ports.ts";
import { ipAddress, namespaceName, objectName, workloadRef } from "../core/query-filters.ts";
import { INGEST_BUCKET_LENGTHS } from "../ingest/config.ts";
import { json, responseBytes } from "../shared/http.ts";
import { logger, metrics, tracer } from "../shared/powertools.ts";
import { loadQueryConfig, type QueryConfig } from "./config.ts";

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
const DEFAULT_RANGE_MS = 24 * 3_600_000;

export interface QueryRuntime {
  store: FlowStore;
  cluster: string;
  now: () => number;
  /** Most bytes an answer takes (default MAX_ANSWER_BYTES). */
  maxAnswerBytes?: number;
}

/**
 * Most bytes of an answer as Lambda returns it: the proxy result's JSON, whose body is escaped once more. Lambda
 * refuses a response over 6 MB, and API Gateway answers 502 (the CLI asks again, and fails alike). A page reads up
 * to two Queries of 1 MB of items, and short strings grow in JSON: a namespace label `"ab": ""` is 4 bytes to
 * DynamoDB and 13 in the answer, so a page of many-labelled flows can pass 8 MB. Kept below 6 MB by a margin for
 * the cursor, which a cut page's differs from the first one's.
 */
export const MAX_ANSWER_BYTES = 5_500_000;

/** A request the API refuses, with the parameter at fault (the client can point at it). */
export class BadRequestError extends Error {
  override name = "BadRequestError";
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super(message);
    this.parameter = parameter;
  }
}

const instant = z.string().refine((v) => instantOf(v, Date.now()) !== undefined, {
  error: `must be ${INSTANT_HELP}`,
});
// Decimal digits only: Number() would also take "1e2", "0x10", " 5" and "".
const limit = z
  .string()
  .regex(/^[0-9]+$/, "must be an integer")
  .transform(Number)
  .pipe(z.number().min(1, "must be at least 1").max(MAX_LIMIT, `must be at most ${MAX_LIMIT}`));
const cursor = z.string().min(1).max(4096, "is too long");
const bool = z.enum(["true", "false"], { error: "must be true or false" }).transform((v) => v === "true");

const rangeParams = {
  since: instant.optional(),
  until: instant.optional(),
  limit: limit.optional(),
  cursor: cursor.optional(),
};
const FlowParams = z.object({
  ...rangeParams,
  namespace: namespaceName.optional(),
  workload: workloadRef.optional(),
  pod: objectName.optional(),
  ip: ipAddress.optional(),
  internal: bool.optional(),
});
const AlertParams = z.object(rangeParams);

function toMs(name: "since" | "until", value: string | undefined, now: number, fallback: number): number {
  if (value === undefined) return fallback;
  const at = instantOf(value, now);
  if (at === undefined) throw new BadRequestError(name, `invalid parameter ${name}: must be ${INSTANT_HELP}`);
  return at;
}

interface RawParams {
  values: Record<string, string>;
  repeated: string[];
}

function rawParams(event: APIGatewayProxyEvent | APIGatewayProxyEventV2): RawParams {
  // No prototype: a parameter named `__proto__` is a parameter like any other (and refused as unknown).
  const values: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(event.queryStringParameters ?? {})) if (v !== undefined) values[k] = v;
  const repeated: string[] = [];
  if ("multiValueQueryStringParameters" in event && event.multiValueQueryStringParameters) {
    for (const [k, v] of Object.entries(event.multiValueQueryStringParameters))
      if ((v?.length ?? 0) > 1) repeated.push(k);
  } else {
    // HTTP API (payload 2.0) joins repeated parameters with commas; none of ours may contain one.
    for (const [k, v] of Object.entries(values)) if (v.includes(",")) repeated.push(k);
  }
  return { values, repeated };
}

function parseParams<S extends z.ZodObject>(schema: S, raw: RawParams): z.infer<S> {
  const known = Object.keys(schema.shape);
  for (const name of Object.keys(raw.values)) {
    if (!known.includes(name)) {
      throw new BadRequestError(name, `unknown parameter ${name}; expected one of ${known.join(", ")}`);
    }
  }
  const first = raw.repeated[0];
  if (first !== undefined) throw new BadRequestError(first, `parameter ${first} given more than once`);
  const parsed = schema.safeParse(raw.values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? "(query)");
    throw new BadRequestError(
      name,
      `invalid parameter ${name}=${JSON.stringify(raw.values[name])}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

interface Window {
  since: string;
  until: string;
}

/**
 * The API's cursor: the store's cursor plus the time window of the first page. The window is resolved once
 * (`since=6h`, or no `until`, mean something else a second later) and the store's cursor is only valid for
 * the exact query that issued it, so later pages keep the first page's window.
 */
export function wrapCursor(window: Window, storeCursor: string): string {
  return Buffer.from(JSON.stringify({ w: [window.since, window.until], c: storeCursor })).toString(
    "base64url",
  );
}

function unwrapCursor(text: string): { window: Window; storeCursor: string } {
  let value: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new Error("not base64url");
    value = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw new BadRequestError("cursor", "invalid parameter cursor: not a cursor this API issued");
  }
  const v = value as { w?: unknown; c?: unknown };
  const w = Array.isArray(v.w) ? v.w : [];
  const [since, until] = w;
  // A window the store would refuse as input (parameter null), or answer with nothing (since after until).
  if (
    w.length !== 2 ||
    typeof since !== "string" ||
    typeof until !== "string" ||
    !(isoMs(since) <= isoMs(until)) ||
    typeof v.c !== "string"
  ) {
    throw new BadRequestError("cursor", "invalid parameter cursor: not a cursor this API issued");
  }
  return { window: { since, until }, storeCursor: v.c };
}

function timeRange(params: { since?: string; until?: string }, now: number): Window {
  const until = toMs("until", params.until, now, now);
  // Nothing is earlier than the year 0000 (the store's keys cannot say it), so the default day stops there.
  const since = toMs("since", params.since, now, Math.max(until - DEFAULT_RANGE_MS, EARLIEST_MS));
  if (since > until) {
    throw new BadRequestError(
      "since",
      `since (${new Date(since).toISOString()}) is after until (${new Date(until).toISOString()})`,
    );
  }
  return { since: new Date(since).toISOString(), until: new Date(until).toISOString() };
}

/** Window and store cursor of a request: from its cursor when it continues a listing, else from since/until. */
function position(
  p: { since?: string; until?: string; cursor?: string },
  now: number,
): Window & { cursor?: string } {
  if (p.cursor === undefined) return timeRange(p, now);
  const { window, storeCursor } = unwrapCursor(p.cursor);
  return { ...window, cursor: storeCursor };
}

export function flowQueryOf(
  event: APIGatewayProxyEvent | APIGatewayProxyEventV2,
  runtime: QueryRuntime,
): FlowQuery {
  const p = parseParams(FlowParams, rawParams(event));
  if (p.workload !== undefined && p.namespace === undefined) {
    throw new BadRequestError("workload", "parameter workload needs namespace");
  }
  if (p.pod !== undefined && p.namespace === undefined) {
    throw new BadRequestError("pod", "parameter pod needs namespace");
  }
  return {
    cluster: runtime.cluster,
    ...position(p, runtime.now()),
    namespace: p.namespace,
    workload: p.workload,
    pod: p.pod,
    ip: p.ip,
    internal: p.internal,
    limit: p.limit ?? DEFAULT_LIMIT,
  };
}

export function alertQueryOf(
  event: APIGatewayProxyEvent | APIGatewayProxyEventV2,
  runtime: QueryRuntime,
): AlertQuery {
  const p = parseParams(AlertParams, rawParams(event));
  return {
    cluster: runtime.cluster,
    ...position(p, runtime.now()),
    limit: p.limit ?? DEFAULT_LIMIT,
  };
}

/** Method and route template: REST API (payload 1.0) `resource`, HTTP API (2.0) `routeKey`, else the path. */
function routeOf(event: APIGatewayProxyEvent | APIGatewayProxyEventV2): { method: string; path: string } {
  if ("routeKey" in event && event.routeKey !== undefined && event.routeKey !== "$default") {
    const [method = "", path = ""] = event.routeKey.split(" ");
    return { method, path };
  }
  if ("httpMethod" in event) {
    const path = event.resource && !event.resource.includes("{") ? event.resource : event.path;
    return { method: event.httpMethod, path };
  }
  return { method: event.requestContext.http.method, path: event.rawPath };
}

export async function handleQuery(
  event: APIGatewayProxyEvent | APIGatewayProxyEventV2,
  runtime: QueryRuntime,
): Promise<APIGatewayProxyResult> {
  const { method, path } = routeOf(event);
  const route = path.replace(/\/+$/, "");
  if (route !== "/flows" && route !== "/alerts") return json(404, { message: `no route ${path}` });
  if (method !== "GET")
    return json(405, { message: `${method} is not allowed on ${route}` }, { allow: "GET" });
  try {
    const query = route === "/flows" ? flowQueryOf(event, runtime) : alertQueryOf(event, runtime);
    const read = (limit: number): Promise<Page<unknown>> =>
      route === "/flows"
        ? runtime.store.queryFlows({ ...query, limit })
        : runtime.store.queryAlerts({ ...query, limit });
    const answer = await fittingAnswer(
      read,
      query.limit ?? DEFAULT_LIMIT,
      (page) =>
        json(200, {
          cluster: runtime.cluster,
          items: page.items,
          cursor: page.cursor === undefined ? null : wrapCursor(query, page.cursor),
        }),
      runtime.maxAnswerBytes ?? MAX_ANSWER_BYTES,
    );
    metrics.addMetric(
      route === "/flows" ? "FlowsReturned" : "AlertsReturned",
      MetricUnit.Count,
      answer.items,
    );
    return answer.result;
  } catch (error) {
    if (error instanceof BadRequestError) {
      return json(400, { message: error.message, parameter: error.parameter });
    }
    // The store checks what only it can: that a cursor is one it issued for this very query.
    if (error instanceof InvalidCursorError) {
      return json(400, { message: `invalid parameter cursor: ${error.message}`, parameter: "cursor" });
    }
    if (error instanceof InvalidInputError) {
      return json(400, { message: error.message, parameter: null });
    }
    // Answered, so a success for Lambda (its Errors stay 0): counted here, where the QueryErrors alarm looks too.
    metrics.addMetric("QueryFailures", MetricUnit.Count, 1);
    logger.error("query failed", { route, error: error as Error });
    return json(500, { message: "internal error", requestId: event.requestContext.requestId });
  }
}

/**
 * The answer of the page `read` gives for `limit`, within `maxBytes`. One that would pass it is read again with as
 * many records as fit: a smaller limit reads the same items from the same place, fewer of them, so the page is the
 * first part of the one before; and its cursor is that read's own, so the next page goes on after the last record
 * answered, whatever was written in between. One record always fits: an item holds at most 400 KB, some 2 MB as JSON.
 */
async function fittingAnswer(
  read: (limit: number) => Promise<Page<unknown>>,
  limit: number,
  answer: (page: Page<unknown>) => APIGatewayProxyResult,
  maxBytes: number,
): Promise<{ result: APIGatewayProxyResult; items: number }> {
  let page = await read(limit);
  let result = answer(page);
  while (responseBytes(result) > maxBytes && page.items.length > 1) {
    // Each record takes its JSON escaped once more, and a comma.
    let room = maxBytes - responseBytes(answer({ ...page, items: [] }));
    let fit = 0;
    for (const item of page.items) {
      room -= Buffer.byteLength(JSON.stringify(JSON.stringify(item))) - 2 + 1;
      if (room < 0) break;
      fit++;
    }
    logger.info("page cut to fit the response limit", { read: page.items.length, fit });
    page = await read(Math.max(1, fit));
    result = answer(page);
  }
  return { result, items: page.items.length };
}

/**
 * Retries of each Query: fewer than the ingest's ten, three tries and two short backoffs. A page's Queries may go
 * one after the other (a page by time lists hour markers then reads a partition, an /alerts page the same by day),
 * so their tries share the page's deadline (invocationDeadline) rather than each having a budget of its own.
 */
export const QUERY_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 50, maxDelayMs: 1_000 };

/**
 * Kept back from the invocation's remaining time: one whole try, which a Query may start just before the deadline
 * and which only its client's timeouts end (client.ts: the SDK's request timer starts with the connection's, so
 * both are counted), then a second to answer (the 500 logged, metrics flushed). With the 25 s timeout
 * (QUERY_TIMEOUT_SECONDS) a page starts no try after 16 s, so a slow DynamoDB ends in a counted 500 with the
 * request id, never in Lambda's timeout or API Gateway's 29 s (a 502 or 504 nothing records).
 */
export const ANSWER_RESERVE_MS =
  STORE_REQUEST_TIMEOUTS.connectionTimeout + STORE_REQUEST_TIMEOUTS.requestTimeout + 1_000;

/** The page's deadline for this invocation, shared by its Queries (their tries and backoffs). */
export function invocationDeadline(context: Pick<Context, "getRemainingTimeInMillis">): Deadline {
  return Deadline.after(context.getRemainingTimeInMillis() - ANSWER_RESERVE_MS);
}

/** `client`: one without SDK retries (storeClient): the store retries every Query itself, SDK retries would multiply them. */
export function createRuntime(
  config: QueryConfig,
  deadline: Deadline = Deadline.unbounded(),
  client: DynamoDBClient = tracer.captureAWSv3Client(storeClient()),
): QueryRuntime {
  return {
    store: new DynamoFlowStore({
      client,
      tableName: config.TABLE_NAME,
      bucketSeconds: INGEST_BUCKET_LENGTHS,
      retry: { ...QUERY_RETRY, deadline },
    }),
    cluster: config.CLUSTER_NAME,
    now: Date.now,
  };
}

// Once per container: the configuration and the client (its connections). The store, which holds the
// invocation's deadline, is made for each invocation.
let config: QueryConfig | undefined;
let client: DynamoDBClient | undefined;

export const handler = middy(
  async (event: APIGatewayProxyEvent | APIGatewayProxyEventV2, context: Context) => {
    // The request's records under the id a 500 answer names (and API Gateway's x-amzn-RequestId header, its access
    // log): the Lambda request id they carry otherwise is one the caller never sees.
    logger.setCorrelationId(event.requestContext.requestId);
    config ??= loadQueryConfig(process.env);
    client ??= tracer.captureAWSv3Client(storeClient());
    return handleQuery(event, createRuntime(config, invocationDeadline(context), client));
  },
)
  .use(captureLambdaHandler(tracer))
  .use(injectLambdaContext(logger, { clearState: true }))
  .use(logMetrics(metrics));
