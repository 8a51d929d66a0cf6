// Reading history back out of CloudWatch Logs for `calico-flows backfill`: the log streams of a group that may hold
// events in a window (DescribeLogStreams), and their calico-packet events (FilterLogEvents paged by nextToken),
// carrying on past a stream deleted while it is read. CloudWatch Logs throttles these APIs at low per-account rates,
// so every call goes through one pacer shared by all concurrent readers, which slows down when throttled and
// recovers as calls succeed.
import { setTimeout as timer } from "node:timers/promises";
import {
  CloudWatchLogsClient,
  type CloudWatchLogsClientConfig,
  DescribeLogStreamsCommand,
  FilterLogEventsCommand,
  type FilterLogEventsCommandOutput,
} from "@aws-sdk/client-cloudwatch-logs";

/**
 * Per-request limits of the reader's client. Without them a request whose answer never comes waits for the SDK's
 * 300 s socket timeout, holding up its stream. FilterLogEvents scans for a while before it answers (it may then
 * answer an empty page with a nextToken), so its limit is generous. A request given up is a `TimeoutError`,
 * which the reader retries like any transient error.
 */
export const LOGS_REQUEST_TIMEOUTS = {
  connectionTimeout: 5_000,
  requestTimeout: 60_000,
  throwOnRequestTimeout: true,
} as const;

/**
 * The reader's client: one HTTP request per call (the retries are the reader's, paced and counted; the SDK's own
 * would hide throttling from the pacer), each given up after LOGS_REQUEST_TIMEOUTS. `config.requestHandler`, when
 * given, replaces the timeouts.
 */
export function logsClient(config: CloudWatchLogsClientConfig = {}): CloudWatchLogsClient {
  return new CloudWatchLogsClient({
    requestHandler: { ...LOGS_REQUEST_TIMEOUTS },
    ...config,
    maxAttempts: 1,
  });
}

/**
 * The filter pattern matching events that contain `text` as an exact phrase. A quoted term, with `\` and `"`
 * escaped: unquoted, `calico-packet` would be read as the term `calico` and a `-packet` exclusion.
 */
export function termPattern(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export interface LogStreamInfo {
  name: string;
  creationTime?: number;
  firstEventTimestamp?: number;
  lastEventTimestamp?: number;
  lastIngestionTime?: number;
}

export interface FilteredEvent {
  id: string;
  stream: string;
  timestamp: number;
  message: string;
}

export interface EventPage {
  events: FilteredEvent[];
  /** Absent on the last page. */
  nextToken?: string;
}

/** A stream that FilterLogEvents found gone while it was read (`CloudWatchLogsReader.deletedStreams`). */
export interface DeletedStream {
  group: string;
  stream: string;
}

/** Most stream names one FilterLogEvents call takes (`logStreamNames`: 1 to 100 items). */
export const MAX_STREAM_NAMES = 100;

export interface EventQuery {
  group: string;
  /** Limit to these streams (1 to MAX_STREAM_NAMES of them); all streams of the group when absent. */
  streams?: readonly string[];
  /**
   * Inclusive bounds on the event timestamp, epoch ms: the reader returns exactly the events stamped in
   * [start, end], whether or not the service's `endTime` includes its own bound (see `events`).
   */
  start: number;
  end: number;
  filterPattern?: string;
  /** Largest page asked for (FilterLogEvents' maximum is 10,000). */
  limit?: number;
}

export interface RetryPolicy {
  /** Tries per call, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface CloudWatchLogsReaderOptions {
  client: CloudWatchLogsClient;
  /** Calls per second at most, across everything this reader does. @default 5 */
  callsPerSecond?: number;
  /** @default { attempts: 10, baseDelayMs: 500, maxDelayMs: 20_000 } */
  retry?: Partial<RetryPolicy>;
  /**
   * The run's stop: once aborted, no call is tried again, a request in flight is abandoned and no pause is waited
   * out; the reader throws `signal.reason` instead (whatever the abandoned call failed with).
   */
  signal?: AbortSignal;
  /** Waits `ms`, or less once `signal` aborts. @default a timer that the signal ends early */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

export interface ReaderStats {
  calls: number;
  /** Calls answered with ThrottlingException (each was retried after a backoff). */
  throttled: number;
  /** Calls that failed with a transient error other than throttling and were retried. */
  retried: number;
  backoffMs: number;
}

/**
 * Errors worth retrying after a pause. The SDK retries too, but gives up after a few attempts, which a long
 * backfill sharing the account's quota with other tools would hit. CloudWatch Logs answers an exceeded rate
 * with ThrottlingException ("Rate exceeded"); AWS's troubleshooting guide also names RequestLimitExceeded, and
 * HTTP 429 or an error the SDK marks as throttling mean the same.
 */
const THROTTLED = new Set([
  "ThrottlingException",
  "Throttling",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "LimitExceededException",
]);
const TRANSIENT = new Set([
  "ServiceUnavailableException",
  "InternalFailure",
  "RequestTimeout",
  "TimeoutError",
]);
/** Connection failures worth another try (a refused connection or unknown host is a wrong endpoint). */
const NETWORK = new Set(["ECONNRESET", "ETIMEDOUT", "EPIPE", "EAI_AGAIN"]);

/** Resolves after `ms`, or as soon as `signal` aborts: the reader looks at the signal after every pause. */
async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  await timer(ms, undefined, { signal }).catch((error: unknown) => {
    if (!signal?.aborted) throw error;
  });
}

/** The reader's error for a ResourceNotFoundException (see `#call`): a group or stream that does not exist. */
function isNotFound(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.cause as { name?: string } | undefined)?.name === "ResourceNotFoundException"
  );
}

function retryClass(error: unknown): "throttled" | "transient" | "fatal" {
  const e = error as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: { throttling?: boolean };
  };
  if (e.name !== undefined && THROTTLED.has(e.name)) return "throttled";
  if (e.$metadata?.httpStatusCode === 429 || e.$retryable?.throttling === true) return "throttled";
  if (e.name !== undefined && TRANSIENT.has(e.name)) return "transient";
  if (e.code !== undefined && NETWORK.has(e.code)) return "transient";
  if ((e.$metadata?.httpStatusCode ?? 0) >= 500) return "transient";
  return "fatal";
}

const HOUR_MS = 3_600_000;
/** PutLogEvents refuses events stamped more than 2 hours after the call… */
const FUTURE_TOLERANCE_MS = 2 * HOUR_MS;
/** …or more than 14 days before it. */
const PAST_TOLERANCE_MS = 14 * 24 * HOUR_MS;
/** DescribeLogStreams' lastIngestionTime and lastEventTimestamp are updated eventually, "typically" within an hour. */
const METADATA_LAG_MS = HOUR_MS;

/** Events stamped in [since, until) are asked for; the streams were listed at `listedAt`. */
export interface StreamWindow {
  since: number;
  until: number;
  listedAt: number;
}

/**
 * Whether `stream` may hold an event stamped in [since, until): false only when DescribeLogStreams' view of it
 * proves it holds none, by the limits PutLogEvents puts on an event's timestamp (at most 14 days before the call,
 * 2 hours after it). Metadata that is absent proves nothing: the stream is read.
 * - Created 14 days or more after `until`: every event was put after the stream was created, so none is stamped
 *   before `until`. (A stream created after `until` may hold events stamped before it.)
 * - Last ingestion more than 2 hours before `since`, and `until` 14 days and an hour or more before the listing.
 *   `lastIngestionTime` shows every put made over an hour before the listing (it is eventually consistent), and
 *   none of those put an event stamped after it plus 2 hours; a put of the last hour, which it may not show, put
 *   events stamped at most 14 days before it. `firstEventTimestamp` proves nothing: a later put may add events
 *   stamped up to 14 days before it.
 */
export function mayHoldEvents(stream: LogStreamInfo, window: StreamWindow): boolean {
  if (stream.creationTime !== undefined && stream.creationTime - PAST_TOLERANCE_MS >= window.until)
    return false;
  if (stream.lastIngestionTime === undefined) return true;
  // Either field may be the fresher one.
  const newest = Math.max(stream.lastIngestionTime + FUTURE_TOLERANCE_MS, stream.lastEventTimestamp ?? 0);
  const unseenFrom = window.listedAt - METADATA_LAG_MS - PAST_TOLERANCE_MS;
  return !(newest < window.since && window.until <= unseenFrom);
}

export class CloudWatchLogsReader {
  readonly stats: ReaderStats = { calls: 0, throttled: 0, retried: 0, backoffMs: 0 };
  /**
   * Streams of an `events` query that turned out deleted while it was read (a clean-up job deleting streams after
   * they were listed): their events went with them, and the query read its other streams on.
   */
  readonly deletedStreams: DeletedStream[] = [];
  readonly #client: CloudWatchLogsClient;
  readonly #retry: RetryPolicy;
  readonly #signal: AbortSignal | undefined;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #minIntervalMs: number;
  #intervalMs: number;
  #nextSlot = 0;

  constructor(options: CloudWatchLogsReaderOptions) {
    this.#client = options.client;
    this.#retry = { attempts: 10, baseDelayMs: 500, maxDelayMs: 20_000, ...options.retry };
    this.#signal = options.signal;
    this.#sleep = options.sleep ?? pause;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    const rate = options.callsPerSecond ?? 5;
    if (!(rate > 0)) throw new Error(`callsPerSecond must be positive, got ${rate}`);
    this.#minIntervalMs = 1000 / rate;
    this.#intervalMs = this.#minIntervalMs;
  }

  /** Current pace, calls per second (lower than configured while recovering from throttling). */
  get callsPerSecond(): number {
    return 1000 / this.#intervalMs;
  }

  /** Waits `ms` unless stopped: throws the stop's reason before and after, so that no call follows a stop. */
  async #wait(ms: number): Promise<void> {
    this.#signal?.throwIfAborted();
    if (ms <= 0) return;
    await this.#sleep(ms, this.#signal);
    this.#signal?.throwIfAborted();
  }

  /** Waits for this call's slot: slots are handed out `interval` apart, so concurrent readers share the rate. */
  async #pace(): Promise<void> {
    const now = this.#now();
    const slot = Math.max(now, this.#nextSlot);
    this.#nextSlot = slot + this.#intervalMs;
    await this.#wait(slot - now);
  }

  /** `send` (given the stop, for its request) with the retries; `operation` on `target` names it in errors. */
  async #call<T>(
    operation: string,
    target: string,
    send: (abortSignal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.#pace();
      this.stats.calls++;
      try {
        const result = await send(this.#signal);
        // Gradual recovery towards the configured rate after throttling slowed it down.
        this.#intervalMs = Math.max(this.#minIntervalMs, this.#intervalMs * 0.9);
        return result;
      } catch (error) {
        // Stopped: the call is abandoned, whether its request was aborted or it failed in a way worth retrying.
        this.#signal?.throwIfAborted();
        if ((error as { name?: string }).name === "ResourceNotFoundException") {
          // The service's message names no resource ("The specified log group does not exist."): with several
          // groups, or a profile of another account or region, which one was asked is what the operator needs.
          const region = await this.#client.config.region();
          throw new Error(`${target} (${operation} in ${region}): ${(error as Error).message}`, {
            cause: error,
          });
        }
        const kind = retryClass(error);
        if (kind === "fatal" || attempt >= this.#retry.attempts) throw error;
        if (kind === "throttled") {
          this.stats.throttled++;
          this.#intervalMs = Math.min(this.#intervalMs * 2, 10_000);
        } else {
          this.stats.retried++;
        }
        // Exponential backoff with jitter, so readers throttled together do not retry together.
        const ceiling = Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (attempt - 1));
        const delay = Math.round(ceiling * (0.5 + this.#random() * 0.5));
        this.stats.backoffMs += delay;
        await this.#wait(delay);
      }
    }
  }

  /** Every stream of `group` (whose name starts with `prefix`), with its metadata (see `mayHoldEvents`). */
  async *streams(group: string, options: { prefix?: string } = {}): AsyncGenerator<LogStreamInfo> {
    // DescribeLogStreams takes a prefix of 1 to 512 characters: an empty one means every stream.
    const prefix = options.prefix === "" ? undefined : options.prefix;
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      const page = await this.#call("DescribeLogStreams", `log group ${group}`, (abortSignal) =>
        this.#client.send(
          new DescribeLogStreamsCommand({
            logGroupName: group,
            logStreamNamePrefix: prefix,
            nextToken: token,
          }),
          { abortSignal },
        ),
      );
      for (const s of page.logStreams ?? []) {
        if (s.logStreamName === undefined) continue;
        yield {
          name: s.logStreamName,
          creationTime: s.creationTime,
          firstEventTimestamp: s.firstEventTimestamp,
          lastEventTimestamp: s.lastEventTimestamp,
          lastIngestionTime: s.lastIngestionTime,
        };
      }
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
  }

  /**
   * Pages of matching events in time order (as FilterLogEvents returns them: by timestamp, then ingestion).
   * Pages may be empty while more follow, and the service may hand the same nextToken back more than once
   * (it did to botocore's paginator, which then gave up): paging follows every token until none comes back.
   *
   * The API reference says `endTime` is inclusive ("events with a timestamp later than this time are not
   * returned"), but an event stamped exactly at `endTime` has been reported missing (aws/aws-cli#4262). So the
   * reader asks up to `end + 1` and drops whatever lies outside [start, end] itself: the bounds hold either way.
   *
   * A stream of `query.streams` deleted after it was listed makes FilterLogEvents answer ResourceNotFoundException
   * for the whole query. The streams still there (`#remaining`) are then asked again, without the token (it pages the
   * list it was given), from the instant of the last event handed out, whose events already handed out are left out:
   * each event comes once, in order. The deleted ones go to `deletedStreams`.
   */
  async *events(query: EventQuery): AsyncGenerator<EventPage> {
    let streams = query.streams === undefined ? undefined : [...query.streams];
    if (streams !== undefined && (streams.length === 0 || streams.length > MAX_STREAM_NAMES)) {
      throw new RangeError(
        `FilterLogEvents takes 1 to ${MAX_STREAM_NAMES} log stream names, got ${streams.length}`,
      );
    }
    // An empty range: nothing to ask for (and a startTime past endTime is no range the API describes).
    if (query.start > query.end) return;
    let from = query.start;
    // The instant of the last event handed out, and the ids handed out at it.
    let last: { timestamp: number; ids: Set<string> } | undefined;
    let nextToken: string | undefined;
    for (;;) {
      const token = nextToken;
      const asked = streams;
      const startTime = from;
      const target = `log group ${query.group}${asked === undefined ? "" : `, log stream ${asked.join(", ")}`}`;
      let page: FilterLogEventsCommandOutput;
      try {
        page = await this.#call("FilterLogEvents", target, (abortSignal) =>
          this.#client.send(
            new FilterLogEventsCommand({
              logGroupName: query.group,
              logStreamNames: asked,
              startTime,
              endTime: query.end + 1,
              filterPattern: query.filterPattern,
              limit: query.limit,
              nextToken: token,
            }),
            { abortSignal },
          ),
        );
      } catch (error) {
        if (asked === undefined || !isNotFound(error)) throw error;
        streams = await this.#remaining(query.group, asked, error);
        if (streams.length === 0) return;
        nextToken = undefined;
        if (last !== undefined) from = last.timestamp;
        continue;
      }
      const events: FilteredEvent[] = [];
      for (const e of page.events ?? []) {
        if (e.eventId === undefined || e.timestamp === undefined || e.logStreamName === undefined) continue;
        if (e.timestamp < query.start || e.timestamp > query.end) continue;
        if (e.timestamp === last?.timestamp && last.ids.has(e.eventId)) continue;
        if (last === undefined || e.timestamp > last.timestamp)
          last = { timestamp: e.timestamp, ids: new Set() };
        last.ids.add(e.eventId);
        events.push({
          id: e.eventId,
          stream: e.logStreamName,
          timestamp: e.timestamp,
          message: e.message ?? "",
        });
      }
      nextToken = page.nextToken;
      yield nextToken === undefined ? { events } : { events, nextToken };
      if (nextToken === undefined) return;
    }
  }

  /**
   * Which of `streams` still exist, after FilterLogEvents answered `failure` (not found) for them: the others are
   * added to `deletedStreams`. Throws `failure` when none is missing (the answer was not about them) or the group
   * itself is gone, so that the error names what the query asked.
   */
  async #remaining(group: string, streams: readonly string[], failure: unknown): Promise<string[]> {
    const left: string[] = [];
    try {
      for (const name of streams) if (await this.#exists(group, name)) left.push(name);
    } catch (error) {
      throw isNotFound(error) ? failure : error;
    }
    if (left.length === streams.length) throw failure;
    for (const stream of streams) if (!left.includes(stream)) this.deletedStreams.push({ group, stream });
    return left;
  }

  /**
   * Whether `group` holds a stream named `name`. Listed by name, a name comes before every longer one it starts, so
   * the first stream listed with it as prefix is it, when it exists.
   */
  async #exists(group: string, name: string): Promise<boolean> {
    for await (const s of this.streams(group, { prefix: name })) return s.name === name;
    return false;
  }
}
