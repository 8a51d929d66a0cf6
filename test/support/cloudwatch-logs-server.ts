// A local CloudWatch Logs endpoint speaking the real JSON 1.1 protocol (POST / with
// `X-Amz-Target: Logs_20140328.<Operation>`), for FilterLogEvents and DescribeLogStreams, so the SDK client is
// exercised end to end through `endpoint`. Paging behaves like the service's: a call scans a bounded window
// of stored events, so pages can be partly full or empty while a nextToken says more follow; events of the
// streams searched come back interleaved in (timestamp, ingestion) order; a share of calls is throttled.
// Parameters the API reference refuses are answered 400 InvalidParameterException. Scripted, for what the
// service is reported to do: the same nextToken handed back on an empty page (boto/boto3#1584), an `endTime`
// that leaves out its own millisecond (aws/aws-cli#4262), other errors (RequestLimitExceeded, 429, …), and
// stream metadata that lags ingestion. FilterLogEvents naming a stream the group does not hold (one deleted after it
// was listed) answers ResourceNotFoundException, as the service does (percona/rds_exporter#81).
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { LOGS_REQUEST_TIMEOUTS, logsClient } from "../../functions/adapters/cloudwatch-logs.ts";

export interface StoredEvent {
  id: string;
  stream: string;
  timestamp: number;
  ingestionTime: number;
  message: string;
}

/** An error answered instead of a call's result. */
export interface ApiFailure {
  status: number;
  /** The error's `__type` (and x-amzn-errortype): the name the SDK gives the error. */
  type: string;
  /** @default "Rate exceeded" */
  message?: string;
}

export interface LogsServerOptions {
  /** Most stored events (of the streams searched, in order) one FilterLogEvents call looks at. @default 25 */
  scanWindow?: number;
  /** Most events one page returns, before the caller's own `limit`. @default 10 */
  pageSize?: number;
  /** Most streams one DescribeLogStreams page lists, before the caller's own `limit` (at most 50). @default pageSize */
  describePageSize?: number;
  /**
   * Decides whether the n-th call (1-based, every operation counted) is answered with ThrottlingException, given
   * its parameters (a retry repeats those of the call it retries).
   */
  throttle?: (n: number, operation: string, params: Record<string, unknown>) => boolean;
  /** An error for the n-th call (1-based, every operation counted), answered instead of the result. */
  fail?: (n: number, operation: string) => ApiFailure | undefined;
  /**
   * Leave out events stamped exactly at FilterLogEvents' endTime, as aws/aws-cli#4262 reports the service doing,
   * instead of including them as the API reference says. @default false
   */
  endExclusive?: boolean;
  /**
   * Whether the n-th FilterLogEvents call (1-based, counting those not answered by `throttle` or `fail`) answers,
   * while events are left, an empty page carrying the very nextToken it was given (or a first one).
   */
  stall?: (n: number) => boolean;
  /**
   * DescribeLogStreams' view of a stream (all but its name), instead of the one computed from its events:
   * metadata that lags ingestion, `lastIngestionTime` absent or late.
   */
  streamMetadata?: (stream: string) => Record<string, unknown> | undefined;
  /** Awaited before the n-th FilterLogEvents call (numbered as for `stall`) is answered. */
  beforeFilter?: (n: number) => Promise<void>;
}

export interface LoggedCall {
  operation: string;
  params: Record<string, unknown>;
  outcome: "ok" | "throttled" | "error";
  /** The type of the error answered. */
  error?: string;
  returned: number;
  /** FilterLogEvents answered an empty page carrying the token it was given (`stall`). */
  stalled?: boolean;
}

export interface LocalLogs {
  endpoint: string;
  /**
   * A client for the endpoint as the reader makes them (logsClient: SDK retries off, so throttling reaches the
   * caller's own backoff), optionally giving up on a request after `requestTimeoutMs`.
   */
  client(requestTimeoutMs?: number): CloudWatchLogsClient;
  /**
   * Appends events to a stream (creating group and stream); ids are assigned like the service's. An event is
   * ingested a second after its timestamp unless it says when; a stream this creates was created at `createdAt`,
   * by default its first event's timestamp.
   */
  put(
    group: string,
    stream: string,
    events: readonly { timestamp: number; message: string; ingestionTime?: number }[],
    options?: { createdAt?: number },
  ): StoredEvent[];
  events(group: string, stream?: string): StoredEvent[];
  /** Deletes a stream and its events, as DeleteLogStream does (a clean-up job deleting streams, say). */
  deleteStream(group: string, stream: string): void;
  calls: LoggedCall[];
  close(): Promise<void>;
}

interface Group {
  streams: Map<string, { creationTime: number; events: StoredEvent[] }>;
}

class ApiError extends Error {
  readonly type: string;
  readonly status: number;
  constructor(type: string, message: string, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

const invalid = (message: string) => new ApiError("InvalidParameterException", message);

/** Refuses a parameter outside what the API reference allows: an integer in [min, max], a length in [min, max]. */
function checkRange(p: Record<string, unknown>, name: string, min: number, max: number): void {
  const value = p[name];
  if (value === undefined) return;
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < min || value > max)
      throw invalid(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  } else if (typeof value === "string" || Array.isArray(value)) {
    if (value.length < min || value.length > max)
      throw invalid(`${name} must have length from ${min} to ${max}, got ${value.length}`);
  } else {
    throw invalid(`${name} has the wrong type`);
  }
}

/** What the API reference allows of FilterLogEvents' parameters. */
function checkFilterParams(p: Record<string, unknown>): void {
  checkRange(p, "logStreamNames", 1, 100);
  checkRange(p, "logStreamNamePrefix", 1, 512);
  if (p.logStreamNames !== undefined && p.logStreamNamePrefix !== undefined)
    throw invalid("Cannot specify both logStreamNames and logStreamNamePrefix.");
  checkRange(p, "limit", 1, 10_000);
  checkRange(p, "filterPattern", 0, 1024);
  checkRange(p, "startTime", 0, Number.MAX_SAFE_INTEGER);
  checkRange(p, "endTime", 0, Number.MAX_SAFE_INTEGER);
  // No range the API reference describes: refused.
  if (typeof p.startTime === "number" && typeof p.endTime === "number" && p.startTime > p.endTime)
    throw invalid("startTime must not be after endTime");
}

/** What the API reference allows of DescribeLogStreams' parameters. */
function checkDescribeParams(p: Record<string, unknown>): void {
  checkRange(p, "logStreamNamePrefix", 1, 512);
  checkRange(p, "limit", 1, 50);
  if (p.orderBy === "LastEventTime" && p.logStreamNamePrefix !== undefined)
    throw invalid("Cannot order by LastEventTime with a logStreamNamePrefix.");
}

/**
 * Matches CloudWatch's term syntax for the cases backfill uses: empty (everything), quoted phrases with
 * `\"` and `\\` escapes, and bare alphanumeric terms, all of which must occur. A bare term holding other
 * characters is refused as the service refuses it.
 */
export function compileFilterPattern(pattern: string | undefined): (message: string) => boolean {
  const text = (pattern ?? "").trim();
  if (text.length === 0) return () => true;
  const terms: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " ") {
      i++;
    } else if (c === '"') {
      let term = "";
      i++;
      for (;;) {
        if (i >= text.length)
          throw new ApiError("InvalidParameterException", "Invalid filter pattern: unterminated quote");
        const d = text[i] as string;
        if (d === "\\" && i + 1 < text.length) {
          term += text[i + 1];
          i += 2;
        } else if (d === '"') {
          i++;
          break;
        } else {
          term += d;
          i++;
        }
      }
      terms.push(term);
    } else {
      let end = text.indexOf(" ", i);
      if (end === -1) end = text.length;
      const term = text.slice(i, end);
      if (!/^[A-Za-z0-9_]+$/.test(term)) {
        throw new ApiError("InvalidParameterException", `Invalid character(s) in term '${term}'`);
      }
      terms.push(term);
      i = end;
    }
  }
  return (message) => terms.every((t) => message.includes(t));
}

function tokenOf(fingerprint: string, position: number): string {
  return Buffer.from(JSON.stringify({ f: fingerprint, p: position })).toString("base64");
}

function readToken(token: string, fingerprint: string): number {
  try {
    const value = JSON.parse(Buffer.from(token, "base64").toString("utf8")) as { f: string; p: number };
    if (value.f === fingerprint && Number.isInteger(value.p)) return value.p;
  } catch {
    // fall through to the service's answer
  }
  throw new ApiError("InvalidParameterException", "The specified nextToken is invalid.");
}

export async function startLocalLogs(options: LogsServerOptions = {}): Promise<LocalLogs> {
  const scanWindow = options.scanWindow ?? 25;
  const pageSize = options.pageSize ?? 10;
  const describePageSize = options.describePageSize ?? pageSize;
  const groups = new Map<string, Group>();
  const calls: LoggedCall[] = [];
  let sequence = 0;
  let filterCalls = 0;
  const clients: CloudWatchLogsClient[] = [];

  const group = (name: unknown): Group => {
    const g = typeof name === "string" ? groups.get(name) : undefined;
    if (g === undefined)
      throw new ApiError("ResourceNotFoundException", "The specified log group does not exist.");
    return g;
  };

  const filterLogEvents = async (p: Record<string, unknown>, call: LoggedCall) => {
    const n = ++filterCalls;
    await options.beforeFilter?.(n);
    const g = group(p.logGroupName);
    checkFilterParams(p);
    const names = p.logStreamNames as string[] | undefined;
    // A missing group is answered first (group above), with its own message.
    if (names?.some((name) => !g.streams.has(name)))
      throw new ApiError("ResourceNotFoundException", "The specified log stream does not exist.");
    const prefix = p.logStreamNamePrefix as string | undefined;
    const matches = compileFilterPattern(p.filterPattern as string | undefined);
    const start = (p.startTime as number | undefined) ?? 0;
    const end = (p.endTime as number | undefined) ?? Number.MAX_SAFE_INTEGER;
    const inRange = (t: number) => t >= start && (options.endExclusive === true ? t < end : t <= end);
    const searched = [...g.streams.entries()].filter(
      ([name]) =>
        (names === undefined || names.includes(name)) && (prefix === undefined || name.startsWith(prefix)),
    );
    const candidates = searched
      .flatMap(([, s]) => s.events)
      .filter((e) => inRange(e.timestamp))
      .sort(
        (a, b) => a.timestamp - b.timestamp || a.ingestionTime - b.ingestionTime || (a.id < b.id ? -1 : 1),
      );
    const fingerprint = JSON.stringify([p.logGroupName, names, prefix, p.filterPattern ?? "", start, end]);
    const given = p.nextToken as string | undefined;
    let position = given === undefined ? 0 : readToken(given, fingerprint);
    if (options.stall?.(n) === true && position < candidates.length) {
      // An empty page and the very token it was given (or a first one): paging must go on.
      call.stalled = true;
      return {
        events: [],
        searchedLogStreams: searched.map(([name]) => ({ logStreamName: name, searchedCompletely: false })),
        nextToken: given ?? tokenOf(fingerprint, position),
      };
    }
    const limit = Math.min((p.limit as number | undefined) ?? 10_000, pageSize);
    const events: StoredEvent[] = [];
    const scanEnd = Math.min(candidates.length, position + scanWindow);
    while (position < scanEnd && events.length < limit) {
      const e = candidates[position] as StoredEvent;
      position++;
      if (matches(e.message)) events.push(e);
    }
    return {
      events: events.map((e) => ({
        logStreamName: e.stream,
        timestamp: e.timestamp,
        message: e.message,
        ingestionTime: e.ingestionTime,
        eventId: e.id,
      })),
      searchedLogStreams: searched.map(([name]) => ({
        logStreamName: name,
        searchedCompletely: position >= candidates.length,
      })),
      ...(position < candidates.length ? { nextToken: tokenOf(fingerprint, position) } : {}),
    };
  };

  const describeLogStreams = (p: Record<string, unknown>) => {
    const g = group(p.logGroupName);
    checkDescribeParams(p);
    const prefix = (p.logStreamNamePrefix as string | undefined) ?? "";
    const all = [...g.streams.entries()]
      .filter(([name]) => name.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const fingerprint = JSON.stringify([p.logGroupName, prefix]);
    const from = p.nextToken === undefined ? 0 : readToken(p.nextToken as string, fingerprint);
    const limit = Math.min((p.limit as number | undefined) ?? 50, 50, describePageSize);
    const page = all.slice(from, from + limit);
    return {
      logStreams: page.map(([name, s]) => {
        const lagging = options.streamMetadata?.(name);
        if (lagging !== undefined) return { logStreamName: name, ...lagging };
        const last = s.events.reduce((m, e) => Math.max(m, e.timestamp), Number.NEGATIVE_INFINITY);
        const first = s.events.reduce((m, e) => Math.min(m, e.timestamp), Number.POSITIVE_INFINITY);
        const ingested = s.events.reduce((m, e) => Math.max(m, e.ingestionTime), Number.NEGATIVE_INFINITY);
        return {
          logStreamName: name,
          creationTime: s.creationTime,
          ...(s.events.length > 0
            ? { firstEventTimestamp: first, lastEventTimestamp: last, lastIngestionTime: ingested }
            : {}),
          arn: `arn:aws:logs:eu-west-1:123456789012:log-group:${p.logGroupName}:log-stream:${name}`,
        };
      }),
      ...(from + limit < all.length ? { nextToken: tokenOf(fingerprint, from + limit) } : {}),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: string) => {
    const target = String(req.headers["x-amz-target"] ?? "");
    const operation = target.startsWith("Logs_20140328.") ? target.slice("Logs_20140328.".length) : target;
    const reply = (status: number, payload: unknown, type?: string) => {
      res.writeHead(status, {
        "content-type": "application/x-amz-json-1.1",
        "x-amzn-requestid": `req-${calls.length}`,
        ...(type === undefined ? {} : { "x-amzn-errortype": type }),
      });
      res.end(JSON.stringify(payload));
    };
    let params: Record<string, unknown> = {};
    try {
      params = body.length > 0 ? (JSON.parse(body) as Record<string, unknown>) : {};
    } catch {
      reply(400, { __type: "SerializationException", message: "body is not JSON" }, "SerializationException");
      return;
    }
    const call: LoggedCall = { operation, params, outcome: "ok", returned: 0 };
    calls.push(call);
    if (
      req.method !== "POST" ||
      !String(req.headers["content-type"]).startsWith("application/x-amz-json-1.1")
    ) {
      call.outcome = "error";
      reply(
        400,
        { __type: "UnknownOperationException", message: "expected a JSON 1.1 POST" },
        "UnknownOperationException",
      );
      return;
    }
    if (options.throttle?.(calls.length, operation, params)) {
      call.outcome = "throttled";
      call.error = "ThrottlingException";
      reply(400, { __type: "ThrottlingException", message: "Rate exceeded" }, "ThrottlingException");
      return;
    }
    try {
      const failure = options.fail?.(calls.length, operation);
      if (failure !== undefined)
        throw new ApiError(failure.type, failure.message ?? "Rate exceeded", failure.status);
      if (operation === "FilterLogEvents") {
        const result = await filterLogEvents(params, call);
        call.returned = result.events.length;
        reply(200, result);
      } else if (operation === "DescribeLogStreams") {
        const result = describeLogStreams(params);
        call.returned = result.logStreams.length;
        reply(200, result);
      } else {
        throw new ApiError("UnknownOperationException", `operation ${operation} is not implemented here`);
      }
    } catch (error) {
      const e =
        error instanceof ApiError ? error : new ApiError("ServiceUnavailableException", String(error), 500);
      call.outcome = "error";
      call.error = e.type;
      reply(e.status, { __type: e.type, message: e.message }, e.type);
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => void handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  // Idle connections stay open (see fault-proxy.ts): none is closed under a client about to reuse it.
  server.keepAliveTimeout = 0;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;

  return {
    endpoint,
    calls,
    client(requestTimeoutMs?: number) {
      // The reader's own client (its timeouts), or one that gives up sooner.
      const client = logsClient({
        endpoint,
        region: "eu-west-1",
        credentials: { accessKeyId: "test", secretAccessKey: "test" },
        ...(requestTimeoutMs === undefined
          ? {}
          : { requestHandler: { ...LOGS_REQUEST_TIMEOUTS, requestTimeout: requestTimeoutMs } }),
      });
      clients.push(client);
      return client;
    },
    put(groupName, streamName, events, options = {}) {
      let g = groups.get(groupName);
      if (g === undefined) {
        g = { streams: new Map() };
        groups.set(groupName, g);
      }
      let s = g.streams.get(streamName);
      if (s === undefined) {
        s = { creationTime: options.createdAt ?? events[0]?.timestamp ?? 0, events: [] };
        g.streams.set(streamName, s);
      }
      const stored = events.map((e) => {
        sequence++;
        // 56 digits like the service's ids, unique and ordered by timestamp then arrival.
        const id = `${String(e.timestamp).padStart(20, "0")}${String(sequence).padStart(36, "0")}`;
        return {
          id,
          stream: streamName,
          timestamp: e.timestamp,
          ingestionTime: e.ingestionTime ?? e.timestamp + 1_000,
          message: e.message,
        };
      });
      s.events.push(...stored);
      return stored;
    },
    events(groupName, streamName) {
      const g = groups.get(groupName);
      if (g === undefined) return [];
      return [...g.streams.entries()]
        .filter(([name]) => streamName === undefined || name === streamName)
        .flatMap(([, s]) => s.events);
    },
    deleteStream(groupName, streamName) {
      if (groups.get(groupName)?.streams.delete(streamName) !== true)
        throw new Error(`no log stream ${streamName} in ${groupName} to delete`);
    },
    async close() {
      for (const c of clients) c.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
