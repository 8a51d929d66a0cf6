// The flow store on one DynamoDB table (docs/flow-store.md): flows, alert windows and alert records. Every
// write is idempotent per contribution; transient failures are retried here with bounded concurrency, and
// whatever still fails is thrown so that the caller fails the payload as a whole.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type {
  AlertApplyResult,
  AlertOptions,
  AlertQuery,
  FlowQuery,
  FlowStore,
  FlowWriteResult,
  Page,
} from "../../core/ports.ts";
import type { AlertCandidate, AlertRecord, FlowRecord } from "../../core/types.ts";
import {
  type AlertContext,
  applyAlerts,
  DEFAULT_MAX_SLOT_TOKENS,
  markAlertSent,
  queryAlertsPage,
} from "./alerts.ts";
import { queryFlowsPage } from "./flow-query.ts";
import { endpointAttribute, policyAttribute } from "./items.ts";
import {
  canonicalMs,
  checkCluster,
  contributionToken,
  expiresAt,
  flowPartition,
  flowPk,
  flowSk,
  hourOf,
  InvalidInputError,
  ipKey,
  iso,
  namespaceKey,
  nextHour,
  timeRange,
} from "./keys.ts";
import { markHours } from "./markers.ts";
import { type CountedWrite, countedUpdate, documentClient, freshReport, queryAll } from "./requests.ts";
import { checkRetryPolicy, DEFAULT_RETRY, mapBounded, type RetryPolicy } from "./retry.ts";
import { TABLE_KEYS } from "./schema.ts";

/** Who counted a flow item: what replay reads to tell the flows other writers stored from its own. */
export interface FlowCounting {
  /** Tokens (contributionToken) of the contributions the flow counted. */
  applied: string[];
  /** Epoch ms of the flow's first and last packet. */
  firstSeen: number;
  lastSeen: number;
}

export interface DynamoFlowStoreOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  tableName: string;
  /** Days items live after their bucket (flows) or opening (alerts), by TTL. @default 30 */
  retentionDays?: number;
  /** Requests in flight per call. @default 16 */
  concurrency?: number;
  /**
   * Tries per request (give it a client without SDK retries: client.ts). @default DEFAULT_RETRY (10 tries, 50 ms
   * doubling to 5 s, full jitter)
   */
  retry?: Partial<RetryPolicy>;
  /**
   * How long (ms) after opening a still-pending alert is returned by deliveries other than the one that opened
   * it: long enough for the opener to publish it, so that concurrent invocations do not all send it.
   * @default 60000
   */
  pendingRedeliveryAfterMs?: number;
  /**
   * Deliveries each shard of a fold slot remembers (its applied set); later ones are claimed on items of their own
   * (docs/flow-store.md, "Alerts"). Keeps an alert's items small enough to be read whole. @default 32
   */
  maxSlotTokens?: number;
  /**
   * Seconds per bucket the flows were counted in (the ingest's AGGREGATION_SECONDS), or every length they were
   * counted in: a query reads from the start of the bucket (of each length) that holds its start. @default 60
   */
  bucketSeconds?: number | readonly number[];
  /** Wall clock (epoch ms), for alert bookkeeping. @default Date.now */
  now?: () => number;
}

export const DEFAULT_RETENTION_DAYS = 30;
export const DEFAULT_CONCURRENCY = 16;
/** The ingest's default bucket (AGGREGATION_SECONDS, replay's --bucket-seconds). */
export const DEFAULT_BUCKET_SECONDS = 60;

function mergeFlows(flows: readonly FlowRecord[]): FlowRecord[] {
  // Two records of one flow in one call would be one contribution to one item: the second would be dropped
  // as a redelivery. Summing them first keeps both.
  const byKey = new Map<string, FlowRecord>();
  for (const f of flows) {
    const key = `${f.cluster}\n${f.bucket}\n${f.id}`;
    const seen = byKey.get(key);
    if (seen === undefined) {
      byKey.set(key, { ...f, tcpFlags: [...f.tcpFlags] });
      continue;
    }
    seen.packets += f.packets;
    seen.bytes += f.bytes;
    if (f.firstSeen < seen.firstSeen) seen.firstSeen = f.firstSeen;
    if (f.lastSeen > seen.lastSeen) seen.lastSeen = f.lastSeen;
    seen.tcpFlags = [...new Set([...seen.tcpFlags, ...f.tcpFlags])].sort();
  }
  return [...byKey.values()];
}

function checkFlow(f: FlowRecord): void {
  checkCluster(f.cluster);
  canonicalMs(f.bucket, "flow bucket");
  canonicalMs(f.firstSeen, "flow firstSeen");
  canonicalMs(f.lastSeen, "flow lastSeen");
  if (f.id.length === 0 || f.id.includes("#")) {
    throw new InvalidInputError(`flow id must be non-empty without "#", got ${JSON.stringify(f.id)}`);
  }
  for (const [name, value] of [
    ["packets", f.packets],
    ["bytes", f.bytes],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidInputError(`flow ${name} must be an integer ≥ 0, got ${value}`);
    }
  }
}

export class DynamoFlowStore implements FlowStore {
  readonly #ctx: AlertContext;
  readonly #bucketsMs: readonly number[];

  constructor(options: DynamoFlowStoreOptions) {
    const retentionDays = options.retentionDays ?? DEFAULT_RETENTION_DAYS;
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    const pending = options.pendingRedeliveryAfterMs ?? 60_000;
    if (options.tableName.length === 0) throw new Error("tableName must be non-empty");
    if (!(retentionDays > 0) || !Number.isFinite(retentionDays)) {
      throw new Error(`retentionDays must be a positive number, got ${retentionDays}`);
    }
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`concurrency must be an integer ≥ 1, got ${concurrency}`);
    }
    if (!(pending >= 0)) throw new Error(`pendingRedeliveryAfterMs must be ≥ 0, got ${pending}`);
    const lengths = [options.bucketSeconds ?? DEFAULT_BUCKET_SECONDS].flat();
    for (const bucketSeconds of lengths) {
      if (!Number.isInteger(bucketSeconds) || bucketSeconds < 1 || bucketSeconds > 3600) {
        throw new Error(`bucketSeconds must be an integer from 1 to 3600, got ${bucketSeconds}`);
      }
    }
    if (lengths.length === 0) throw new Error("bucketSeconds must name at least one length");
    this.#bucketsMs = lengths.map((seconds) => seconds * 1000);
    const maxSlotTokens = options.maxSlotTokens ?? DEFAULT_MAX_SLOT_TOKENS;
    if (!Number.isInteger(maxSlotTokens) || maxSlotTokens < 1) {
      throw new Error(`maxSlotTokens must be an integer ≥ 1, got ${maxSlotTokens}`);
    }
    this.#ctx = {
      doc: documentClient(options.client),
      tableName: options.tableName,
      retry: checkRetryPolicy({ ...DEFAULT_RETRY, ...options.retry }),
      retentionDays,
      concurrency,
      pendingRedeliveryAfterMs: pending,
      maxSlotTokens,
      marked: new Map(),
      now: options.now ?? Date.now,
    };
  }

  async writeFlows(
    flows: readonly FlowRecord[],
    contribution: string,
    options: { signal?: AbortSignal; progress?: FlowWriteResult } = {},
  ): Promise<FlowWriteResult> {
    const token = contributionToken(contribution);
    for (const f of flows) checkFlow(f);
    const merged = mergeFlows(flows);
    const reads = freshReport();
    const now = this.#ctx.now();
    const written: FlowWriteResult = { applied: 0, duplicates: 0, writeRequests: 0 };
    // Counted as each write ends, failed ones' requests too: a call that fails has stored the others.
    const count = (what: keyof FlowWriteResult, n: number) => {
      written[what] += n;
      if (options.progress !== undefined) options.progress[what] += n;
    };
    // The hours' markers first: a flow is never stored in an hour that questions by time would not read.
    const bucketsByCluster = new Map<string, string[]>();
    for (const f of merged) {
      const buckets = bucketsByCluster.get(f.cluster);
      if (buckets === undefined) bucketsByCluster.set(f.cluster, [f.bucket]);
      else buckets.push(f.bucket);
    }
    for (const [cluster, buckets] of bucketsByCluster) {
      const markers = freshReport();
      try {
        await markHours(this.#ctx, this.#ctx.marked, cluster, buckets, now, markers, options.signal);
      } finally {
        count("writeRequests", markers.requests);
      }
    }
    await mapBounded(
      merged,
      this.#ctx.concurrency,
      async (f) => {
        const writes = freshReport();
        try {
          const outcome = await countedUpdate(this.#ctx, this.#flowWrite(f, token, now), writes, reads);
          count(outcome.applied ? "applied" : "duplicates", 1);
        } finally {
          count("writeRequests", writes.requests);
        }
      },
      options.signal,
    );
    return written;
  }

  /** The write of one flow; `now` (the store's clock) bounds its TTL's age (keys.ts, expiresAt). */
  #flowWrite(f: FlowRecord, token: string, now: number): CountedWrite {
    const cluster = f.cluster;
    return {
      key: { pk: flowPk(cluster, f.bucket), sk: flowSk(f.bucket, f.id) },
      token,
      counters: { packets: f.packets, bytes: f.bytes },
      sets: { tcpFlags: f.tcpFlags },
      init: {
        id: f.id,
        cluster,
        bucket: f.bucket,
        src: endpointAttribute(f.src),
        dst: endpointAttribute(f.dst),
        protocol: f.protocol,
        dstPort: f.dstPort,
        direction: f.direction,
        reporter: f.reporter,
        internal: f.internal,
        policy: policyAttribute(f.policy),
        // Sparse index keys: an endpoint without a namespace (node, external, unknown) is not in that index.
        srcNsKey: f.src.namespace === null ? undefined : namespaceKey(cluster, f.src.namespace),
        dstNsKey: f.dst.namespace === null ? undefined : namespaceKey(cluster, f.dst.namespace),
        srcIpKey: ipKey(cluster, f.src.ip),
        dstIpKey: ipKey(cluster, f.dst.ip),
        expiresAt: expiresAt(Date.parse(f.bucket), this.#ctx.retentionDays, now),
      },
      firstSeen: f.firstSeen,
      lastSeen: f.lastSeen,
    };
  }

  async applyAlerts(
    candidates: readonly AlertCandidate[],
    contribution: string,
    options: AlertOptions,
  ): Promise<AlertApplyResult> {
    return applyAlerts(this.#ctx, candidates, contributionToken(contribution), options);
  }

  markAlertSent(alert: AlertRecord, how: "sent" | "summarized" = "sent"): Promise<void> {
    return markAlertSent(this.#ctx, alert, how);
  }

  queryFlows(query: FlowQuery): Promise<Page<FlowRecord>> {
    return queryFlowsPage(this.#ctx, query, freshReport(), this.#bucketsMs);
  }

  queryAlerts(query: AlertQuery): Promise<Page<AlertRecord>> {
    return queryAlertsPage(this.#ctx, query, freshReport());
  }

  /**
   * Who counted each flow of `cluster` whose bucket starts from `fromMs` to `toMs` (both included): one Query of each
   * hour's flow partition, every page.
   */
  async countingOf(cluster: string, fromMs: number, toMs: number): Promise<FlowCounting[]> {
    checkCluster(cluster);
    const { lo, hi } = timeRange(iso(fromMs), iso(toMs));
    const out: FlowCounting[] = [];
    for (let hour = hourOf(lo); hour <= hourOf(hi); hour = nextHour(hour)) {
      const request = {
        keyAttribute: TABLE_KEYS.partitionKey,
        keyValue: flowPartition(cluster, hour),
        lo,
        hi,
      };
      for (const item of await queryAll(this.#ctx, request, freshReport())) {
        out.push({
          applied: [...((item.applied as Set<string> | undefined) ?? [])],
          firstSeen: Date.parse(item.firstSeen as string),
          lastSeen: Date.parse(item.lastSeen as string),
        });
      }
    }
    return out;
  }
}
