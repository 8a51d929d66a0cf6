// Ingest figures: handler throughput (decode + name the delivery + parse + classify + attribute + aggregate, store excluded) on
// the shared corpus delivered as real subscription payloads, and DynamoDB write requests per 1,000 lines for
// a retry storm and a port scan, counted on the wire in front of dynalite; then the write units live ingest bills per
// 1,000 lines for them, coverage included (the cost inputs of docs/deploy.md §5).
import { constants, type PerformanceEntry, PerformanceObserver } from "node:perf_hooks";
import { gunzipSync } from "node:zlib";
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { startEmbeddedStore } from "../functions/adapters/dynamo/embedded.ts";
import { DynamoFlowStore } from "../functions/adapters/dynamo/flow-store.ts";
import { createTableInput } from "../functions/adapters/dynamo/schema.ts";
import { DynamoDenialTally } from "../functions/adapters/dynamo/tallies.ts";
import { KUBECONFIG_FIXES, loadKubeconfig } from "../functions/adapters/kube/cluster-access.ts";
import { LiveDirectory } from "../functions/adapters/kube/live-directory.ts";
import { SnapshotDirectory } from "../functions/adapters/kube/snapshot-directory.ts";
import { digest, endpointKey, flowId, policyKey } from "../functions/core/aggregate.ts";
import { encodeMemo, RecordingDirectory } from "../functions/core/attribution-memo.ts";
import { CidrSet } from "../functions/core/classify.ts";
import { eventKeys } from "../functions/core/coverage.ts";
import type { DeliveredEvents } from "../functions/core/delivered-events.ts";
import { ingestBatch } from "../functions/core/ingest.ts";
import { createScanner } from "../functions/core/parse.ts";
import { type PipelineOptions, runPipeline } from "../functions/core/pipeline.ts";
import {
  contributionOf,
  decodeDelivery,
  decodeSubscriptionData,
  deliveryContribution,
  encodeSubscriptionData,
  type SubscriptionPayload,
} from "../functions/core/subscription-payload.ts";
import type { IpDirectory } from "../functions/core/types.ts";
import { dynamoClient } from "../test/support/dynalite.ts";
import { startFaultProxy } from "../test/support/fault-proxy.ts";
import { createTopic, REGION as SNS_REGION, startLocalSns } from "../test/support/fauxqs.ts";
import { kubeObjects, startKubeApiServer } from "../test/support/kube-api-server.ts";
import { CORPUS_EPOCH, generateLines, packetText, prng, wrap } from "./corpus.ts";
import { startWriteUnitsProxy, type WriteUnits } from "./write-units.ts";

const LINES = Number(process.env.BENCH_INGEST_LINES ?? 1_000_000);
const EVENTS_PER_PAYLOAD = 5_000;
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * A pod on every address of 192.168.0.0/16 (the shared corpus draws pod IPs from all of it): 65,024 pods; or, given
 * `only`, on those of its addresses alone.
 */
export function clusterSnapshot(only?: ReadonlySet<string>): SnapshotDirectory {
  const items: unknown[] = [];
  for (let a = 0; a < 256; a++) {
    for (let b = 1; b < 255; b++) {
      if (only !== undefined && !only.has(`192.168.${a}.${b}`)) continue;
      const ns = `tenant-${a % 50}`;
      const name = `app${b % 20}-5d4f8b7c9-${a}x${b}`;
      items.push({
        metadata: {
          name,
          namespace: ns,
          uid: `uid-${a}-${b}`,
          creationTimestamp: iso(CORPUS_EPOCH - 86_400_000),
          labels: { "pod-template-hash": "5d4f8b7c9" },
          ownerReferences: [{ kind: "ReplicaSet", name: `app${b % 20}-5d4f8b7c9`, controller: true }],
        },
        spec: { nodeName: `node-${a % 40}` },
        status: { phase: "Running", podIP: `192.168.${a}.${b}`, podIPs: [{ ip: `192.168.${a}.${b}` }] },
      });
    }
  }
  return new SnapshotDirectory({ pods: { items } });
}

/**
 * A realistic day of denials on that cluster: 60 misconfigured client → server pairs retrying their
 * connection (new source port each time), pods' DNS to a blocked resolver, and 10 internet scanners walking
 * ports of public-facing pods; in the proportions and wrappers the shared corpus uses for syslog lines.
 */
export function* realisticLines(count: number): Generator<string> {
  const rand = prng(11);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const anyIp = () => `192.168.${int(0, 255)}.${int(1, 254)}`;
  const pods = Array.from({ length: 2_000 }, anyIp);
  const podIp = () => pods[int(0, pods.length - 1)] as string;
  const pairs = Array.from({ length: 60 }, () => ({
    src: podIp(),
    dst: podIp(),
    port: [5432, 6379, 8080, 9090, 443][int(0, 4)] as number,
  }));
  const scanners = Array.from({ length: 10 }, () => ({ src: `203.0.113.${int(1, 254)}`, dst: podIp() }));
  // A pod's packets are logged by the node it runs on: the destination's, for these ingress denials.
  const nodeOf = (ip: string) => `ip-192-168-${Number(ip.split(".")[3]) % 40}-10`;
  let ms = CORPUS_EPOCH;
  for (let n = 0; n < count; n++) {
    ms += rand() * 4;
    const r = rand();
    let src: string;
    let dst: string;
    let dpt: number;
    if (r < 0.8) {
      ({ src, dst, port: dpt } = pairs[int(0, pairs.length - 1)] as (typeof pairs)[number]);
    } else if (r < 0.9) {
      src = podIp();
      dst = "192.168.0.10";
      dpt = 53;
    } else {
      ({ src, dst } = scanners[int(0, scanners.length - 1)] as (typeof scanners)[number]);
      dpt = int(1, 1024);
    }
    const text = packetText({
      inInterface: "eth0",
      outInterface: `eni${(dst.length * 7919).toString(16).padStart(11, "0")}`,
      mac: "0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00",
      ipVersion: 4,
      src,
      dst,
      length: 60,
      ttl: 63,
      id: int(0, 65535),
      ipFlags: ["DF"],
      transport:
        dpt === 53
          ? { kind: "udp", spt: int(32768, 60999), dpt, len: 40 }
          : { kind: "tcp", spt: int(32768, 60999), dpt, window: 62727, res: 0, flags: ["SYN"], urgp: 0 },
    });
    yield wrap("rfc3164", `calico-packet: ${text}`, ms, nodeOf(dst));
  }
}

/** The first 36 of an event id's 56 digits (the rest count the events). */
const EVENT_ID_HEAD = "371234567890123456789012345678901234";

export function payloads(lines: Iterable<string>): string[] {
  const out: string[] = [];
  let events: SubscriptionPayload["logEvents"][number][] = [];
  let id = 0;
  const flush = () => {
    out.push(
      encodeSubscriptionData({
        messageType: "DATA_MESSAGE",
        owner: "123456789012",
        logGroup: "/aws/eks/bench/nodes",
        logStream: `stream-${out.length % 40}`,
        subscriptionFilters: ["calico-packet"],
        logEvents: events as SubscriptionPayload["logEvents"],
      }),
    );
    events = [];
  };
  for (const message of lines) {
    // CloudWatch Logs' event ids are 56 digits.
    events.push({
      id: `${EVENT_ID_HEAD}${String(++id).padStart(20, "0")}`,
      timestamp: CORPUS_EPOCH + id * 2,
      message,
    });
    if (events.length === EVENTS_PER_PAYLOAD) flush();
  }
  if (events.length > 0) flush();
  return out;
}

/** The pipeline's options for the bench's cluster: as the Lambda's defaults, with the given directory. */
function benchPipeline(directory: IpDirectory): PipelineOptions {
  return {
    cluster: "bench",
    internal: new CidrSet(["192.168.0.0/16"]),
    bucketSeconds: 60,
    scanner: createScanner(),
    directory,
  };
}

/** The cluster's addresses that `lines` name (its pods, for the realistic cluster's snapshot). */
function clusterAddresses(lines: Iterable<string>): Set<string> {
  const ips = new Set<string>();
  for (const line of lines) {
    for (const m of line.matchAll(/(?:SRC|DST)=(192\.168\.\d+\.\d+)/g)) ips.add(m[1] as string);
  }
  return ips;
}

async function handlerThroughput(
  name: string,
  lines: Iterable<string>,
  snapshot: SnapshotDirectory,
): Promise<void> {
  // The directory's share of the time, measured around its calls (two clock reads per payload).
  let directoryNs = 0;
  let questions = 0;
  const timed = async <T>(asked: number, answer: () => Promise<T>): Promise<T> => {
    const start = process.hrtime.bigint();
    const result = await answer();
    directoryNs += Number(process.hrtime.bigint() - start);
    questions += asked;
    return result;
  };
  const directory: IpDirectory = {
    resolve: (lookups) => timed(lookups.length, () => snapshot.resolve(lookups)),
    resolveSpans: (spans) => timed(spans.length, () => snapshot.resolveSpans(spans)),
  };
  const data = payloads(lines);
  const options = benchPipeline(directory);
  // One warm-up pass so the figure is the warm container's, as in a steady stream of deliveries.
  // What the handler does with a delivery before it stores anything: decode it, name it (the contribution,
  // from every event id) and run the pipeline, its directory's answers recorded for a memo (core/ingest.ts).
  const handle = async (d: string) => {
    const delivery = decodeDelivery(d);
    deliveryContribution(delivery.logGroup, delivery.logStream, delivery.events);
    return runPipeline(delivery.events, { ...options, directory: new RecordingDirectory(directory) });
  };
  for (const d of data.slice(0, 20)) await handle(d);
  // The collector's work during each pass: V8 reports each collection (kind, start, duration) after it.
  const collections: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => collections.push(...list.getEntries()));
  observer.observe({ entryTypes: ["gc"] });
  // Best of three passes, as the floor below and the parser's figures: the machine's own noise only slows a pass.
  let total = 0;
  let flows = 0;
  const passes: number[] = [];
  let directoryUs = 0;
  let directoryQuestions = 0;
  let gc = "";
  for (let pass = 0; pass < 3; pass++) {
    total = 0;
    flows = 0;
    directoryNs = 0;
    questions = 0;
    const startMs = performance.now();
    const start = process.hrtime.bigint();
    for (const d of data) {
      const result = await handle(d);
      total += result.stats.lines;
      flows += result.flows.length;
    }
    passes.push(Number(process.hrtime.bigint() - start) / 1e9);
    const endMs = performance.now();
    // The observer is called from the event loop, which the pass never left.
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (passes.at(-1) === Math.min(...passes)) {
      directoryUs = directoryNs / 1000 / total;
      directoryQuestions = questions;
      const during = collections.filter((e) => e.startTime >= startMs && e.startTime < endMs);
      const of = (kind: number) =>
        during.filter((e) => (e as { detail?: { kind?: number } }).detail?.kind === kind);
      const ms = (entries: PerformanceEntry[]) => entries.reduce((sum, e) => sum + e.duration, 0).toFixed(0);
      const major = of(constants.NODE_PERFORMANCE_GC_MAJOR);
      const minor = of(constants.NODE_PERFORMANCE_GC_MINOR);
      gc = `; collections in that pass: ${major.length} of the old generation (${ms(major)} ms), ${minor.length} young (${ms(minor)} ms)`;
    }
  }
  observer.disconnect();
  const seconds = Math.min(...passes);
  console.log(
    `ingest handler, ${name} (decode + name the delivery + parse + classify + attribute + aggregate, store excluded): ` +
      `${total.toLocaleString("en")} lines in ${data.length} payloads of ${EVENTS_PER_PAYLOAD} events, ` +
      `best of 3 passes ${seconds.toFixed(2)} s (${passes.map((t) => t.toFixed(2)).join(", ")}) → ` +
      `${Math.round(total / seconds).toLocaleString("en")} lines/s; ${flows.toLocaleString("en")} flow records; ` +
      `the snapshot directory ${directoryUs.toFixed(2)} µs/line of it ` +
      `(${directoryQuestions.toLocaleString("en")} questions, ${((directoryUs * total) / directoryQuestions).toFixed(2)} µs each)${gc}`,
  );
}

/** What the id of each flow of a payload is made from, in arrays (kept small: the heap's size slows GC). */
interface FlowIdArguments {
  count: number;
  /** Distinct strings (endpoint keys, protocols, reporters, policy keys); the fields below index them. */
  texts: string[];
  bucket: Float64Array;
  src: Int32Array;
  dst: Int32Array;
  protocol: Int32Array;
  /** -1 for none. */
  port: Int32Array;
  reporter: Int32Array;
  policy: Int32Array;
  /** The ids the handler gave them, end to end. */
  expected: string;
}

/** The flows the handler makes of each payload (run once, not timed), as FlowIdArguments. */
async function flowIdArguments(data: string[]): Promise<FlowIdArguments[]> {
  const options = benchPipeline(clusterSnapshot());
  const texts: string[] = [];
  const numbers = new Map<string, number>();
  const intern = (text: string) => {
    let n = numbers.get(text);
    if (n === undefined) {
      n = texts.length;
      texts.push(text);
      numbers.set(text, n);
    }
    return n;
  };
  const out: FlowIdArguments[] = [];
  for (const d of data) {
    const { flows } = await runPipeline(decodeSubscriptionData(d).logEvents, options);
    const n = flows.length;
    const f: FlowIdArguments = {
      count: n,
      texts,
      bucket: new Float64Array(n),
      src: new Int32Array(n),
      dst: new Int32Array(n),
      protocol: new Int32Array(n),
      port: new Int32Array(n),
      reporter: new Int32Array(n),
      policy: new Int32Array(n),
      expected: flows.map((flow) => flow.id).join(""),
    };
    flows.forEach((flow, k) => {
      f.bucket[k] = Date.parse(flow.bucket);
      f.src[k] = intern(endpointKey(flow.src));
      f.dst[k] = intern(endpointKey(flow.dst));
      f.protocol[k] = intern(flow.protocol);
      f.port[k] = flow.dstPort ?? -1;
      f.reporter[k] = intern(flow.reporter);
      f.policy[k] = intern(policyKey(flow.policy));
    });
    out.push(f);
  }
  return out;
}

/**
 * The least any handler must do per line, measured on the same payloads: decoding the delivery (base64, gunzip and
 * the delivery reader: CloudWatch Logs delivers nothing else), then the parser over each message, then the stored id
 * (a SHA-256 digest of the flow's key) of each flow record the handler makes of the payload, from endpoint
 * keys prepared beforehand. Whatever attribution and aggregation cost, the handler cannot be faster than these.
 */
async function decodeFloor(name: string, lines: Iterable<string>): Promise<void> {
  const data = payloads(lines);
  // The parser as the pipeline runs it: each record left in its fields.
  const scanner = createScanner();
  const ids = await flowIdArguments(data);
  const flowCount = ids.reduce((n, f) => n + f.count, 0);
  // Stage -1: the same decoding through the whole text and JSON.parse, as before the delivery reader.
  const pass = (stage: -1 | 0 | 1 | 2) => {
    let total = 0;
    let wrong = 0;
    const start = process.hrtime.bigint();
    for (let p = 0; p < data.length; p++) {
      if (stage === -1) {
        const json = gunzipSync(Buffer.from(data[p] as string, "base64")).toString("utf8");
        total += (JSON.parse(json) as SubscriptionPayload).logEvents.length;
        continue;
      }
      const events = decodeDelivery(data[p] as string).events;
      total += events.length;
      if (stage >= 1) for (let i = 0; i < events.length; i++) events.scan(i, scanner);
      if (stage === 2) {
        const f = ids[p] as FlowIdArguments;
        const t = f.texts;
        for (let k = 0; k < f.count; k++) {
          const port = f.port[k] as number;
          const id = flowId(
            "bench",
            f.bucket[k] as number,
            t[f.src[k] as number] as string,
            t[f.dst[k] as number] as string,
            t[f.protocol[k] as number] as string,
            port < 0 ? null : port,
            t[f.reporter[k] as number] as string,
            t[f.policy[k] as number] as string,
          );
          if (!f.expected.startsWith(id, k * id.length)) wrong++;
        }
      }
    }
    const rate = total / (Number(process.hrtime.bigint() - start) / 1e9);
    if (wrong > 0) throw new Error(`floor: ${wrong} flow ids differ from the handler's`);
    return rate;
  };
  // Best of three after a warm-up, as for a warm container.
  pass(2);
  const best = (stage: -1 | 0 | 1 | 2) => Math.max(pass(stage), pass(stage), pass(stage));
  const decodeJsonParse = best(-1);
  const decode = best(0);
  const decodeParse = best(1);
  const withIds = best(2);
  const us = (rate: number) => (1e6 / rate).toFixed(2);
  const lps = (rate: number) => `${Math.round(rate).toLocaleString("en")} lines/s (${us(rate)} µs/line)`;
  console.log(
    `floor, ${name}: decoding alone (base64 + gunzip + delivery reader) ${lps(decode)}, ` +
      `with JSON.parse instead of the reader ${lps(decodeJsonParse)}; with the parser ${lps(decodeParse)}; ` +
      `with the id of each of the ${flowCount.toLocaleString("en")} flow records ${lps(withIds)} ` +
      "(500,000 lines/s leaves 2.00 µs/line for everything)",
  );
}

/**
 * What live ingest adds per line before storing, outside the handler figure: the coverage claims' digest of every
 * event id (core/coverage.ts), as XXH64 from the delivery's bytes, and as SHA-256 of each id's string (the digest
 * the claims used before) for comparison.
 */
function coverageKeys(lines: Iterable<string>): void {
  const deliveries = payloads(lines).map((d) => decodeDelivery(d).events);
  const total = deliveries.reduce((n, e) => n + e.length, 0);
  const pass = (keysOf: (events: DeliveredEvents) => unknown) => {
    const start = process.hrtime.bigint();
    for (const events of deliveries) keysOf(events);
    return Number(process.hrtime.bigint() - start) / 1000 / total;
  };
  const xxh64 = (events: DeliveredEvents) => eventKeys(events);
  const sha256 = (events: DeliveredEvents) => {
    const keys: string[] = [];
    for (let i = 0; i < events.length; i++) keys.push(digest(events.id(i)).slice(0, 11));
    return keys;
  };
  pass(xxh64);
  pass(sha256);
  const best = (f: (events: DeliveredEvents) => unknown) => Math.min(pass(f), pass(f), pass(f));
  console.log(
    `coverage digests of event ids (live ingest, outside the handler figure): XXH64 from the bytes ${best(xxh64).toFixed(2)} µs/line, ` +
      `SHA-256 of each id's string ${best(sha256).toFixed(2)} µs/line`,
  );
}

/**
 * What a run that fails after attributing adds before it fails: its attribution memo built and encoded
 * (core/attribution-memo.ts), per realistic delivery. A run that stores its batch builds none: this is the cost
 * that keeping every run's memo would add to the handler figure.
 */
async function memoCost(lines: Iterable<string>, snapshot: SnapshotDirectory): Promise<void> {
  const data = payloads(lines).slice(0, 40);
  const recorded: RecordingDirectory[] = [];
  let events = 0;
  for (const d of data) {
    const delivery = decodeDelivery(d);
    const recorder = new RecordingDirectory(snapshot);
    await runPipeline(delivery.events, benchPipeline(recorder));
    recorded.push(recorder);
    events += delivery.events.length;
  }
  let questions = 0;
  let bytes = 0;
  const pass = () => {
    questions = 0;
    bytes = 0;
    const start = process.hrtime.bigint();
    for (const recorder of recorded) {
      const memo = recorder.memo();
      questions += memo.spans.length + memo.points.length;
      bytes += (encodeMemo(memo) as Uint8Array).length;
    }
    return Number(process.hrtime.bigint() - start) / 1000;
  };
  pass();
  const us = Math.min(pass(), pass(), pass());
  console.log(
    `attribution memo of a failed run (outside the handler figure; built only when a run fails after attributing): ` +
      `${Math.round(us / data.length).toLocaleString("en")} µs per delivery of ${EVENTS_PER_PAYLOAD} events ` +
      `(${(us / events).toFixed(2)} µs/line), ${Math.round(questions / data.length)} questions, ` +
      `${(bytes / data.length / 1024).toFixed(1)} KB gzipped; best of 3 passes over ${data.length} deliveries`,
  );
}

/**
 * The pipeline (decoded payloads; parse to alert candidates) with the live directory the Lambda uses, warm:
 * the realistic cluster's pods served by the local Kubernetes API server, every answer from memory after the
 * first payloads. Asked for spans (one question per address and payload) and, through a wrapper that hides
 * resolveSpans, per (address, second) as before spans existed.
 */
async function liveDirectoryPipeline(lines: number): Promise<void> {
  const corpus = [...realisticLines(lines)];
  const server = await startKubeApiServer();
  try {
    const ips = clusterAddresses(corpus);
    let n = 0;
    for (const ip of ips) {
      const owner = { kind: "StatefulSet", name: `app-${n % 20}` };
      const created = CORPUS_EPOCH - 86_400_000;
      server.store.put(
        "pods",
        kubeObjects.pod({ name: `pod-${n++}`, namespace: "tenant", ip, created, owner }),
      );
    }
    const batches = payloads(corpus).map((d) => decodeSubscriptionData(d).logEvents);
    const kc = loadKubeconfig({ kubeconfig: server.kubeconfigPath });
    let clock = CORPUS_EPOCH;
    const live = () =>
      new LiveDirectory({
        kubeConfig: () => kc,
        cluster: "bench",
        fixes: KUBECONFIG_FIXES,
        now: () => clock,
      });
    const measure = async (directory: IpDirectory) => {
      const options = benchPipeline(directory);
      let best = Number.POSITIVE_INFINITY;
      for (let pass = 0; pass < 4; pass++) {
        const start = process.hrtime.bigint();
        for (const events of batches) {
          // The payload arrives a second after its last event, as a subscription delivers it.
          clock = (events.at(-1)?.timestamp ?? CORPUS_EPOCH) + 1000;
          await runPipeline(events, options);
        }
        // The first pass fills the directory from the API server: the others are the warm container's.
        if (pass > 0) best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / lines);
      }
      return best;
    };
    const spans = live();
    const bySpan = await measure(spans);
    const perSecond = live();
    const bySecond = await measure({ resolve: (lookups) => perSecond.resolve(lookups) });
    console.log(
      `pipeline with the live directory, warm, realistic cluster, ${lines.toLocaleString("en")} lines ` +
        `(decoded payloads; parse to alert candidates; best of 3 passes): asked per address span ` +
        `${bySpan.toFixed(2)} µs/line (${spans.stats().lookups.toLocaleString("en")} questions), per (address, second) ` +
        `${bySecond.toFixed(2)} µs/line (${perSecond.stats().lookups.toLocaleString("en")} questions)`,
    );
  } finally {
    await server.close();
  }
}

const storm = (i: number) =>
  `calico-packet: IN=eth0 OUT=eni1 MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.1.${1 + (i % 4)} DST=192.168.2.${1 + (i % 5)} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${i} DF PROTO=TCP SPT=${30000 + (i % 30000)} DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0`;
const scan = (i: number) =>
  `calico-packet: IN=eth0 OUT=eni1 MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=203.0.113.77 DST=192.168.2.1 LEN=44 TOS=0x00 PREC=0x00 TTL=50 ID=${i} PROTO=TCP SPT=41234 DPT=${1 + i} WINDOW=1024 RES=0x00 SYN URGP=0`;

async function writeAmplification(): Promise<void> {
  const embedded = await startEmbeddedStore();
  const proxy = await startFaultProxy(embedded.endpoint);
  const client = dynamoClient(proxy.endpoint);
  const directory = clusterSnapshot();
  try {
    const scenarios = [
      { name: "retry storm: 10,000 lines, 20 distinct flows in one minute", lines: 10_000, make: storm },
      { name: "port scan: 1,000 ports of one pod in one minute", lines: 1_000, make: scan },
    ];
    for (const scenario of scenarios) {
      for (const perPayload of new Set([scenario.lines, 1_000])) {
        const tableName = `bench-${scenario.lines}-${perPayload}`;
        await embedded.client.send(new CreateTableCommand(createTableInput(tableName)));
        const store = new DynamoFlowStore({ client, tableName });
        // As the ingest function counts: with the scan threshold, the internal rules' tallies are written too.
        const tally = new DynamoDenialTally({ client, tableName });
        const t0 = Date.UTC(2026, 3, 19, 4, 52, 0);
        proxy.clearLog();
        let flows = 0;
        for (let from = 0; from < scenario.lines; from += perPayload) {
          const logEvents = Array.from({ length: Math.min(perPayload, scenario.lines - from) }, (_, k) => {
            const i = from + k;
            return {
              id: `${tableName}-${i}`,
              timestamp: t0 + Math.floor((i * 59_000) / scenario.lines),
              message: scenario.make(i),
            };
          });
          const result = await ingestBatch(
            logEvents.map((e) => ({ message: e.message, timestamp: e.timestamp, node: "node-a" })),
            contributionOf({ logGroup: "g", logStream: "s", logEvents }),
            {
              store,
              tally,
              alertWindowMs: 15 * 60_000,
              alertCap: 50,
              pipeline: { ...benchPipeline(directory), scanThreshold: 20 },
            },
          );
          flows += result.flows.length;
        }
        const writes = proxy.log.filter((r) =>
          /^(UpdateItem|PutItem|BatchWriteItem|DeleteItem|TransactWriteItems)$/.test(r.operation),
        ).length;
        const reads = proxy.log.length - writes;
        console.log(
          `${scenario.name}, payloads of ${perPayload.toLocaleString("en")} lines: ${writes} write requests ` +
            `(${((writes * 1000) / scenario.lines).toFixed(1)} per 1,000 lines; ${flows} flow records written), ${reads} read requests`,
        );
      }
    }
  } finally {
    client.destroy();
    await proxy.close();
    await embedded.close();
  }
}

/** `x` per 1,000 of `lines`, to a tenth. */
const perThousand = (x: number, lines: number) => ((x * 1000) / lines).toFixed(1);

/**
 * Write request units per 1,000 lines of live ingest, through the ingest function's own path (createRuntime and
 * ingestEvent, its DynamoDB coverage store included), split into coverage records, flows (table and index copies)
 * and the rest (alert windows, fold slots, markers). Coverage rewrites the stream-minute's page with every claim and
 * mark, and a page grows by every event claimed: its units follow the delivery's size and the stream's lines a minute,
 * not the flows. Attribution from a snapshot of the lines' pods, so that flows carry their namespaces (and index keys)
 * as the live directory gives them; alerts published to a local SNS, so that their hand-out and sent marks are written.
 */
async function liveWriteUnits(): Promise<void> {
  const embedded = await startEmbeddedStore();
  const proxy = await startWriteUnitsProxy(embedded.endpoint);
  const sns = await startLocalSns();
  const topicArn = await createTopic(sns, "bench-alerts");
  // The handler builds its DynamoDB client from the SDK's configuration, and its Powertools from the environment, as
  // the Lambda does: both set before it is loaded, metrics and logs silenced (they would print to stdout).
  const env = {
    AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint,
    AWS_ENDPOINT_URL_SNS: sns.endpoint,
    AWS_REGION: SNS_REGION,
    AWS_ACCESS_KEY_ID: "bench",
    AWS_SECRET_ACCESS_KEY: "bench",
    POWERTOOLS_METRICS_DISABLED: "true",
    POWERTOOLS_LOG_LEVEL: "SILENT",
    POWERTOOLS_TRACE_ENABLED: "false",
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const { createRuntime, ingestEvent } = await import("../functions/ingest/handler.ts");
    const { loadIngestConfig } = await import("../functions/ingest/config.ts");
    const scenarios = [
      {
        name: "retry storm (20 distinct flows), 10,000 lines a minute from one stream, in deliveries of 10,000 lines",
        perMinute: 10_000,
        perDelivery: 10_000,
        make: storm,
      },
      {
        name: "the same in deliveries of 1,000 lines",
        perMinute: 10_000,
        perDelivery: 1_000,
        make: storm,
      },
      {
        name: "retry storm, 1,000 lines a minute from one stream, in deliveries of 50 lines",
        perMinute: 1_000,
        perDelivery: 50,
        make: storm,
      },
      {
        name: "port scan (every line a new flow), 1,000 lines in one delivery",
        perMinute: 1_000,
        perDelivery: 1_000,
        make: scan,
      },
    ];
    // Each on a table of its own, all at once: dynalite's writes take most of the time, and their units do not
    // depend on the order.
    const measured = await Promise.all(
      scenarios.map(async (scenario, s) => {
        const tableName = `live-${s}`;
        await embedded.client.send(new CreateTableCommand(createTableInput(tableName)));
        const runtime = createRuntime(
          loadIngestConfig({
            TABLE_NAME: tableName,
            CLUSTER_NAME: "bench",
            ATTRIBUTION: "none",
            ALERTS_TOPIC_ARN: topicArn,
          }),
        );
        const lines = Array.from({ length: scenario.perMinute }, (_, i) => scenario.make(i));
        const directory = clusterSnapshot(clusterAddresses(lines));
        runtime.directory = directory;
        runtime.deps.pipeline = { ...runtime.deps.pipeline, directory };
        const t0 = Date.UTC(2026, 3, 19, 4, 52, 0);
        for (let from = 0; from < lines.length; from += scenario.perDelivery) {
          const logEvents = lines.slice(from, from + scenario.perDelivery).map((message, k) => {
            const i = from + k;
            return {
              id: `${EVENT_ID_HEAD}${String(i + 1).padStart(20, "0")}`,
              timestamp: t0 + Math.floor((i * 59_000) / lines.length),
              message,
            };
          });
          const data = encodeSubscriptionData({
            messageType: "DATA_MESSAGE",
            owner: "123456789012",
            logGroup: "/aws/eks/bench/nodes",
            logStream: "ip-192-168-2-1.node",
            subscriptionFilters: ["calico-packet"],
            logEvents,
          });
          await ingestEvent({ awslogs: { data } }, runtime);
        }
        return { lines: lines.length, kinds: proxy.unitsOf(tableName) };
      }),
    );
    for (const [s, { lines: n, kinds: byKind }] of measured.entries()) {
      const kinds = [...byKind].sort(([a], [b]) => a.localeCompare(b));
      const sum = (of: typeof kinds, unit: (u: WriteUnits) => number) =>
        of.reduce((total, [, u]) => total + unit(u), 0);
      const cover = kinds.filter(([kind]) => kind === "COVER");
      const flows = kinds.filter(([kind]) => kind === "FLOW");
      const rest = kinds.filter(([kind]) => kind !== "COVER" && kind !== "FLOW");
      const all = (u: WriteUnits) => u.table + u.indexes;
      console.log(
        `live ingest write units per 1,000 lines (handler path, coverage on), ${scenarios[s]?.name}: ` +
          `coverage ${perThousand(sum(cover, all), n)} (${perThousand(
            sum(cover, (u) => u.requests),
            n,
          )} write requests); ` +
          `flows ${perThousand(sum(flows, all), n)} (table ${perThousand(
            sum(flows, (u) => u.table),
            n,
          )} + index copies ` +
          `${perThousand(
            sum(flows, (u) => u.indexes),
            n,
          )}; ${perThousand(
            sum(flows, (u) => u.requests),
            n,
          )} write requests); ` +
          `the rest ${perThousand(sum(rest, all), n)} (${rest.map(([kind, u]) => `${kind} ${perThousand(all(u), n)}`).join(", ")}; ` +
          `${perThousand(
            sum(rest, (u) => u.requests),
            n,
          )} write requests); total ${perThousand(sum(kinds, all), n)}`,
      );
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await sns.close();
    await proxy.close();
    await embedded.close();
  }
}

export async function run(): Promise<void> {
  console.log("target: ≥ 500,000 lines/s on realistic traffic");
  // The realistic cluster's directory holds its pods; the same lines are also run against the 65,024-pod snapshot the
  // worst case needs (and earlier sessions measured this scenario with), thirty times the pods to look through.
  const realisticPods = clusterAddresses(realisticLines(LINES));
  await handlerThroughput(
    `realistic cluster (${realisticPods.size.toLocaleString("en")} pods: 60 retrying pairs, blocked DNS, 10 scanners)`,
    realisticLines(LINES),
    clusterSnapshot(realisticPods),
  );
  await handlerThroughput(
    "the same lines, a directory of 65,024 pods",
    realisticLines(LINES),
    clusterSnapshot(),
  );
  await decodeFloor("realistic cluster", realisticLines(LINES));
  coverageKeys(realisticLines(Math.min(LINES, 300_000)));
  await memoCost(realisticLines(Math.min(LINES, 200_000)), clusterSnapshot(realisticPods));
  // The shared corpus draws every pod address at random from the whole /16: nearly every line is a flow
  // of its own, the worst case for aggregation (per-flow work dominates).
  await handlerThroughput(
    "worst case: shared corpus, ~85% of lines distinct flows",
    generateLines(LINES, 7),
    clusterSnapshot(),
  );
  await liveDirectoryPipeline(Math.min(LINES, 300_000));
  await writeAmplification();
  await liveWriteUnits();
}

if (import.meta.main) await run();
