import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import { FlowAggregator } from "../../functions/core/aggregate.ts";
import { CidrSet, directionOf } from "../../functions/core/classify.ts";
import { createParser, createScanner, LineParser } from "../../functions/core/parse.ts";
import {
  endpointFor,
  type LogEvent,
  type PipelineOptions,
  runPipeline,
} from "../../functions/core/pipeline.ts";
import type {
  FlowRecord,
  Holder,
  IpDirectory,
  Lookup,
  Resolution,
  SpanLookup,
  SpanResolution,
} from "../../functions/core/types.ts";

const line = (
  time: string,
  host: string,
  src: string,
  dst: string,
  dpt: number,
  inIf = "eth0",
  outIf = "eni1",
) =>
  `${time} ${host} kernel: calico-packet: IN=${inIf} OUT=${outIf} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=${dpt} WINDOW=62727 RES=0x00 SYN URGP=0`;

const holder = (name: string, ns: string, workload: string): Holder => ({
  kind: "pod",
  namespace: ns,
  name,
  workload: { kind: "Deployment", name: workload },
  node: "node-a",
  uid: `uid-${name}`,
  validFrom: 0,
  validTo: null,
});

/** Answers from a fixed table and records every lookup, so the test can see what the pipeline asked. */
class RecordingDirectory implements IpDirectory {
  calls: Lookup[][] = [];
  readonly answers: Record<string, Resolution>;
  constructor(answers: Record<string, Resolution>) {
    this.answers = answers;
  }
  async resolve(lookups: readonly Lookup[]): Promise<Resolution[]> {
    this.calls.push([...lookups]);
    return lookups.map((l) => this.answers[l.ip] ?? { status: "absent" });
  }
}

function options(directory: IpDirectory, extra: Partial<PipelineOptions> = {}): PipelineOptions {
  return {
    cluster: "prod",
    internal: new CidrSet(["192.168.0.0/16"]),
    bucketSeconds: 60,
    scanner: createScanner({ year: 2026 }),
    directory,
    ...extra,
  };
}

describe("runPipeline", () => {
  it("attributes, classifies and aggregates a payload", async () => {
    const directory = new RecordingDirectory({
      "192.168.22.247": { status: "found", holder: holder("web-1", "customer-a", "web") },
      "192.168.94.122": { status: "found", holder: holder("db-0", "customer-b", "db") },
    });
    const t = Date.parse("2026-04-19T04:52:19Z");
    const events = [
      { message: line("Apr 19 04:52:19", "ip-1", "192.168.22.247", "192.168.94.122", 5432), timestamp: t },
      {
        message: line("Apr 19 04:52:20", "ip-1", "192.168.22.247", "192.168.94.122", 5432),
        timestamp: t + 1000,
      },
      { message: line("Apr 19 04:52:21", "ip-1", "203.0.113.9", "192.168.94.122", 22), timestamp: t + 2000 },
      { message: "Apr 19 04:52:21 ip-1 kubelet[1]: unrelated", timestamp: t + 2000 },
      { message: "Apr 19 04:52:21 ip-1 kernel: calico-packet: IN=eth0 SRC=192.168.", timestamp: t + 2000 },
    ];
    const result = await runPipeline(events, options(directory));
    expect(result.stats).toEqual({
      lines: 5,
      calico: 3,
      skipped: 1,
      malformed: 1,
      unresolved: 0,
      attributionMisses: 0,
    });
    expect(result.malformed).toEqual([{ index: 4, reason: expect.any(String) }]);
    // Internal addresses only, one lookup per distinct (ip, time).
    const asked = directory.calls.flat().map((l) => l.ip);
    expect(asked).not.toContain("203.0.113.9");
    expect(new Set(asked)).toEqual(new Set(["192.168.22.247", "192.168.94.122"]));
    expect(result.flows).toHaveLength(2);
    const internal = result.flows.find((f) => f.internal);
    expect(internal).toMatchObject({
      src: { kind: "pod", namespace: "customer-a", workload: { name: "web" } },
      dst: { kind: "pod", namespace: "customer-b", workload: { name: "db" } },
      dstPort: 5432,
      packets: 2,
      bytes: 120,
      direction: "ingress",
      reporter: "ip-1",
      firstSeen: "2026-04-19T04:52:19.000Z",
      lastSeen: "2026-04-19T04:52:20.000Z",
    });
    const external = result.flows.find((f) => !f.internal);
    expect(external?.src).toMatchObject({ ip: "203.0.113.9", kind: "external", resolved: true });
    // Only the internal flow makes an alert candidate.
    expect(result.candidates).toHaveLength(1);
    expect(result.candidates[0]).toMatchObject({ hits: 2, key: { dstPort: 5432, protocol: "TCP" } });
  });

  it("uses the event's timestamp over the line's and the stream's node when the line has none", async () => {
    const directory = new RecordingDirectory({});
    const eventTime = Date.parse("2026-04-19T04:52:19.250Z");
    const bare =
      "calico-packet: IN=eth0 OUT=eni1 SRC=192.168.1.1 DST=192.168.2.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=80 WINDOW=1 RES=0x00 SYN URGP=0";
    const result = await runPipeline(
      [{ message: bare, timestamp: eventTime, node: "stream-node" }],
      options(directory),
    );
    expect(result.flows[0]).toMatchObject({ reporter: "stream-node", firstSeen: "2026-04-19T04:52:19.250Z" });
    // Lookups are asked at one-second resolution, the resolution of Kubernetes timestamps.
    expect(directory.calls.flat().map((l) => l.at)).toEqual([
      Math.floor(eventTime / 1000) * 1000,
      Math.floor(eventTime / 1000) * 1000,
    ]);
  });

  it("takes a host that names no node (a control character, over 253 characters) as absent: the stream's node", async () => {
    const t = Date.parse("2026-04-19T04:52:19Z");
    const hosts = ["ip-1\u001b[2J", "x".repeat(254), "ip-2"];
    const events = hosts.flatMap((host, k) => [
      {
        message: line("Apr 19 04:52:19", host, "192.168.1.1", "192.168.2.2", 80 + k),
        timestamp: t,
        node: "stream-node",
      },
      {
        message: JSON.stringify({
          log: line("Apr 19 04:52:19", "-", "192.168.1.1", "192.168.2.2", 90 + k),
          host,
        }),
        timestamp: t,
        node: "stream-node",
      },
    ]);
    const result = await runPipeline(events, options(new RecordingDirectory({})));
    expect(result.stats.malformed).toBe(0);
    expect(result.flows.map((f) => [f.dstPort, f.reporter])).toEqual([
      [80, "stream-node"],
      [90, "stream-node"],
      [81, "stream-node"],
      [91, "stream-node"],
      [82, "ip-2"],
      [92, "ip-2"],
    ]);
  });

  it("stores endpoints unresolved when the directory cannot answer, and still raises the alert", async () => {
    const directory: IpDirectory = {
      resolve: async (lookups) => lookups.map(() => ({ status: "unavailable", reason: "API down" })),
    };
    const t = Date.parse("2026-04-19T04:52:19Z");
    const result = await runPipeline(
      [{ message: line("Apr 19 04:52:19", "ip-1", "192.168.1.1", "192.168.2.2", 8080), timestamp: t }],
      options(directory),
    );
    expect(result.flows[0]?.src).toMatchObject({ ip: "192.168.1.1", kind: "unknown", resolved: false });
    expect(result.stats.unresolved).toBe(2);
    expect(result.candidates[0]?.key).toMatchObject({
      src: "192.168.1.1",
      dst: "192.168.2.2",
      dstPort: 8080,
    });
  });

  it("counts internal addresses nobody held as attribution misses", async () => {
    const result = await runPipeline(
      [{ message: line("Apr 19 04:52:19", "ip-1", "192.168.1.1", "192.168.2.2", 53), timestamp: 0 }],
      options(new RecordingDirectory({})),
    );
    expect(result.stats.attributionMisses).toBe(2);
    expect(result.flows[0]?.dst).toMatchObject({ kind: "unknown", resolved: true });
  });

  it("asks a directory that answers for spans once per address, and per second only where the answer varies", async () => {
    const T = Date.parse("2026-04-19T04:52:00Z");
    const iso = (ms: number) => new Date(ms).toISOString();
    // 192.168.1.1 is reused at T+20 s: old-pod until then, new-pod after; 192.168.2.2 is one pod throughout.
    const pod = (name: string, ip: string, created: number, deleted?: number) => ({
      metadata: {
        name,
        namespace: "ns",
        uid: name,
        creationTimestamp: iso(created),
        ...(deleted === undefined ? {} : { deletionTimestamp: iso(deleted) }),
      },
      spec: { nodeName: "node-a" },
      status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
    });
    const snapshot = new SnapshotDirectory({
      pods: {
        items: [
          pod("old-pod", "192.168.1.1", T - 3_600_000, T + 20_000),
          pod("new-pod", "192.168.1.1", T + 20_000),
          pod("server", "192.168.2.2", T - 3_600_000),
        ],
      },
    });
    const spans: SpanLookup[][] = [];
    const perSecond: Lookup[][] = [];
    const recording: IpDirectory = {
      resolve: (lookups) => {
        perSecond.push([...lookups]);
        return snapshot.resolve(lookups);
      },
      resolveSpans: (asked) => {
        spans.push([...asked]);
        return snapshot.resolveSpans(asked);
      },
    };
    const events = Array.from({ length: 60 }, (_, k) => ({
      message: line("Apr 19 04:52:00", "ip-1", "192.168.1.1", "192.168.2.2", 5432),
      timestamp: T + k * 1000,
    }));
    const result = await runPipeline(events, options(recording));
    expect(spans).toEqual([
      [
        { ip: "192.168.1.1", at: T, until: T + 59_000 },
        { ip: "192.168.2.2", at: T, until: T + 59_000 },
      ],
    ]);
    // Only the reused address is asked per second.
    expect(perSecond).toHaveLength(1);
    expect(new Set(perSecond[0]?.map((l) => l.ip))).toEqual(new Set(["192.168.1.1"]));
    expect(perSecond[0]).toHaveLength(60);
    // Seconds 0–19 are the old pod's; from its successor's creation on, the successor's.
    const bySource = Object.fromEntries(result.flows.map((f) => [f.src.name, f.packets]));
    expect(bySource).toEqual({ "old-pod": 20, "new-pod": 40 });
  });

  it("makes the same flows and alerts whether the directory answers for spans or per second (property)", async () => {
    const T = Date.parse("2026-04-19T04:52:00Z");
    const iso = (ms: number) => new Date(ms).toISOString();
    const ips = ["192.168.1.1", "192.168.1.2", "192.168.2.2", "10.0.0.1"];
    const arbPod = fc.record({
      ip: fc.constantFrom(...ips),
      created: fc.integer({ min: -20, max: 100 }),
      life: fc.option(fc.integer({ min: 0, max: 60 })),
    });
    const arbEvent = fc.record({
      src: fc.constantFrom(...ips),
      dst: fc.constantFrom(...ips),
      second: fc.integer({ min: 0, max: 90 }),
      ms: fc.integer({ min: 0, max: 999 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(arbPod, { maxLength: 8 }),
        fc.array(arbEvent, { minLength: 1, maxLength: 80 }),
        async (pods, evs) => {
          const snapshot = new SnapshotDirectory({
            pods: {
              items: pods.map((p, k) => ({
                metadata: {
                  name: `pod-${k}`,
                  namespace: "ns",
                  uid: `uid-${k}`,
                  creationTimestamp: iso(T + p.created * 1000),
                  ...(p.life === null ? {} : { deletionTimestamp: iso(T + (p.created + p.life) * 1000) }),
                },
                spec: { nodeName: "node-a" },
                status: { phase: "Running", podIP: p.ip, podIPs: [{ ip: p.ip }] },
              })),
            },
          });
          const perSecondOnly: IpDirectory = { resolve: (lookups) => snapshot.resolve(lookups) };
          const events = evs.map((e) => ({
            message: line("Apr 19 04:52:00", "ip-1", e.src, e.dst, 5432),
            timestamp: T + e.second * 1000 + e.ms,
          }));
          const bySpan = await runPipeline(events, options(snapshot));
          const bySecond = await runPipeline(events, options(perSecondOnly));
          expect(bySpan).toEqual(bySecond);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("counts every line as the record the parser builds for it, whatever its form (property)", async () => {
    // The pipeline reads lines through the scanner's fields, numbers their texts and addresses, and asks the
    // directory once per address span. Its meaning, spelled out: each line's record from createParser, both ends
    // looked up on their own at the line's second, counted through FlowAggregator#add.
    const T = Date.parse("2026-04-19T04:52:00Z");
    const format = "calico-packet %t %k %n";
    const internal = ["192.168.0.0/16", "fd00::/8"];
    const v6 = (last: string) => `fd00:0000:0000:0000:0000:0000:0000:${last}`;
    // Holders change within the payload: 192.168.1.1 passes to another pod after a minute; 192.168.1.2's pod is
    // recreated under the same name (a StatefulSet's), another holder that names the same endpoint.
    const found = (h: Holder): Resolution => ({ status: "found", holder: h });
    const web1 = found(holder("web-1", "shop", "web"));
    const web9 = found(holder("web-9", "shop", "web"));
    const db = found({ ...holder("db-0", "shop", "db"), labels: { app: "db" } });
    const dbAgain = found({ ...holder("db-0", "shop", "db"), uid: "uid-db-0-again" });
    const held: Record<string, (at: number) => Resolution> = {
      "192.168.1.1": (at) => (at < T + 60_000 ? web1 : web9),
      "192.168.1.2": (at) => (at < T + 90_000 ? db : dbAgain),
      "192.168.3.3": () => ({ status: "unavailable", reason: "the API server is down" }),
      // A directory may hand back a new object for the same holder every time.
      "fd00::1": () => found(holder("web-2", "shop", "web")),
    };
    const directory: IpDirectory = {
      resolve: async (lookups) => lookups.map((l) => held[l.ip]?.(l.at) ?? { status: "absent" }),
    };
    const arbPacket = fc.oneof(
      fc.record({
        family: fc.constant(4 as const),
        src: fc.constantFrom("192.168.1.1", "192.168.1.2", "192.168.3.3", "192.168.7.7", "203.0.113.9"),
        dst: fc.constantFrom("192.168.1.1", "192.168.1.2", "192.168.7.7", "8.8.8.8"),
      }),
      fc.record({
        family: fc.constant(6 as const),
        src: fc.constantFrom(v6("0001"), v6("0002"), "2001:0db8:0000:0000:0000:0000:0000:0009"),
        dst: fc.constantFrom(v6("0001"), v6("0003"), "2001:0db8:0000:0000:0000:0000:0000:0009"),
      }),
    );
    const interfaces = ["eth0", "eni1a2b3c", "cali0ab1", "vlan.7", "", "en", "calico9"];
    const arbLine = fc.record({
      packet: arbPacket,
      inIf: fc.constantFrom(...interfaces),
      outIf: fc.constantFrom(...interfaces),
      transport: fc.oneof(
        fc.record({
          kind: fc.constant("TCP" as const),
          port: fc.constantFrom(22, 443, 5432),
          flags: fc.subarray(["CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"]),
        }),
        fc.record({ kind: fc.constant("UDP" as const), port: fc.constantFrom(53, 123) }),
        fc.record({ kind: fc.constant("ICMP" as const), type: fc.constantFrom(0, 8) }),
      ),
      prefix: fc.constantFrom(
        "calico-packet: ",
        "calico-packet default gnp deny-a: ",
        "calico-packet sec gnp deny-b: ",
      ),
      wrapper: fc.constantFrom("syslog", "json", "bare", "skip", "malformed"),
      host: fc.constantFrom("ip-a", "ip-b", "ip-a-longer"),
      length: fc.integer({ min: 20, max: 1500 }),
      second: fc.integer({ min: 0, max: 150 }),
      ms: fc.integer({ min: 0, max: 999 }),
      stamped: fc.boolean(),
      node: fc.option(fc.constantFrom("stream-a", "stream-b"), { nil: undefined }),
    });
    const message = (l: typeof arbLine extends fc.Arbitrary<infer L> ? L : never): string => {
      const { packet: p, transport: t } = l;
      const ip =
        p.family === 4
          ? `SRC=${p.src} DST=${p.dst} LEN=${l.length} TOS=0x00 PREC=0x00 TTL=63 ID=7 DF`
          : `SRC=${p.src} DST=${p.dst} LEN=${l.length} TC=0 HOPLIMIT=63 FLOWLBL=0`;
      const transport =
        t.kind === "TCP"
          ? `PROTO=TCP SPT=40000 DPT=${t.port} WINDOW=100 RES=0x00 ${t.flags.map((f) => `${f} `).join("")}URGP=0`
          : t.kind === "UDP"
            ? `PROTO=UDP SPT=40000 DPT=${t.port} LEN=40`
            : `PROTO=${p.family === 4 ? "ICMP" : "ICMPv6"} TYPE=${p.family === 4 ? t.type : 128 + t.type} CODE=0 ID=1 SEQ=1`;
      const text = `${l.prefix}IN=${l.inIf} OUT=${l.outIf} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 ${ip} ${transport}`;
      const time = `Apr 19 04:${String(52 + Math.floor(l.second / 60)).padStart(2, "0")}:${String(l.second % 60).padStart(2, "0")}`;
      switch (l.wrapper) {
        case "syslog":
          return `${time} ${l.host} kernel: ${text}`;
        case "json":
          return JSON.stringify({ _HOSTNAME: l.host, MESSAGE: text });
        case "bare":
          return text;
        case "skip":
          return `${time} ${l.host} kubelet[1]: ${text.slice(0, 20)}`;
        case "malformed":
          return `${time} ${l.host} kernel: ${text.slice(0, text.indexOf(" DST="))}`;
      }
    };
    const reference = async (events: LogEvent[]) => {
      const parse = createParser({ year: 2026, prefixFormat: format });
      const cidrs = new CidrSet(internal);
      const aggregator = new FlowAggregator("prod", 60);
      const counts = { lines: 0, calico: 0, skipped: 0, malformed: 0 };
      for (const event of events) {
        counts.lines++;
        const outcome = parse(event.message);
        if (outcome.kind !== "record") {
          counts[outcome.kind === "skip" ? "skipped" : "malformed"]++;
          continue;
        }
        counts.calico++;
        const r = outcome.record;
        const at = event.timestamp ?? (r.time === null ? T : Date.parse(r.time));
        const end = async (ip: string) => {
          const inside = cidrs.contains(ip);
          if (!inside) return endpointFor(ip, false, undefined);
          const [answer] = await directory.resolve([{ ip, at: Math.floor(at / 1000) * 1000 }]);
          return endpointFor(ip, true, answer);
        };
        aggregator.add({
          at,
          src: await end(r.src),
          dst: await end(r.dst),
          protocol: r.protocol,
          dstPort: r.dstPort,
          direction: directionOf(r.inInterface, r.outInterface),
          reporter: r.node ?? event.node ?? "unknown",
          internal: cidrs.contains(r.src) && cidrs.contains(r.dst),
          length: r.length,
          policy: r.policy,
          tcpFlags: r.tcpFlags,
        });
      }
      return { flows: aggregator.flows(), counts };
    };
    let policies = 0;
    let flagged = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(arbLine, { minLength: 1, maxLength: 60 }), async (lines) => {
        const events: LogEvent[] = lines.map((l) => ({
          message: message(l),
          ...(l.stamped ? { timestamp: T + l.second * 1000 + l.ms } : {}),
          ...(l.node === undefined ? {} : { node: l.node }),
        }));
        const result = await runPipeline(
          events,
          options(directory, {
            internal: new CidrSet(internal),
            scanner: createScanner({ year: 2026, prefixFormat: format }),
            now: () => T,
          }),
        );
        const expected = await reference(events);
        expect(result.flows).toEqual(expected.flows);
        expect(result.stats).toMatchObject(expected.counts);
        policies += result.flows.filter((f: FlowRecord) => f.policy !== null).length;
        flagged += result.flows.filter((f: FlowRecord) => f.tcpFlags.length > 1).length;
      }),
      { numRuns: 300 },
    );
    // The generator reaches what it is for: policies and several flags per flow.
    expect(policies).toBeGreaterThan(0);
    expect(flagged).toBeGreaterThan(0);
  });

  it("asks once per address and second, in whatever order the seconds come", async () => {
    const directory = new RecordingDirectory({});
    const T = Date.parse("2026-04-19T04:52:00Z");
    const seconds = [5, 3, 5, 3, 4, 9, 4, 5];
    const events = seconds.map((second) => ({
      message: line("Apr 19 04:52:00", "ip-1", "192.168.1.1", "203.0.113.9", 443),
      timestamp: T + second * 1000 + 123,
    }));
    const result = await runPipeline(events, options(directory));
    expect(directory.calls.flat().map((l) => (l.at - T) / 1000)).toEqual([5, 3, 4, 9]);
    expect(result.flows).toHaveLength(1);
    expect(result.flows[0]?.packets).toBe(seconds.length);
  });

  it("counts two holders that name the same endpoint as one, and each endpoint's miss once", async () => {
    const T = Date.parse("2026-04-19T04:52:00Z");
    // 192.168.1.1: db-0, then db-0 recreated (another uid, same name), then db-0 again. 192.168.5.5: nobody,
    // then a pod, then nobody again.
    const db = holder("db-0", "shop", "db");
    const dbAgain = { ...holder("db-0", "shop", "db"), uid: "uid-db-0-again" };
    const cache = holder("cache-1", "shop", "cache");
    const directory: IpDirectory = {
      resolve: async (lookups) =>
        lookups.map((l): Resolution => {
          const second = (l.at - T) / 1000;
          if (l.ip === "192.168.1.1") return { status: "found", holder: second % 20 < 10 ? db : dbAgain };
          if (l.ip === "192.168.5.5" && second >= 10 && second < 20)
            return { status: "found", holder: cache };
          return { status: "absent" };
        }),
    };
    const events = Array.from({ length: 30 }, (_, second) => [
      {
        message: line("Apr 19 04:52:00", "ip-1", "192.168.5.5", "192.168.1.1", 5432),
        timestamp: T + second * 1000,
      },
      {
        message: line("Apr 19 04:52:00", "ip-1", "203.0.113.9", "192.168.1.1", 5432),
        timestamp: T + second * 1000,
      },
    ]).flat();
    const result = await runPipeline(events, options(directory));
    const flows = result.flows.map((f) => [f.src.ip, f.src.name, f.dst.name, f.packets]);
    expect(flows).toHaveLength(3);
    expect(flows).toEqual(
      expect.arrayContaining([
        ["192.168.5.5", "cache-1", "db-0", 10],
        ["192.168.5.5", null, "db-0", 20],
        ["203.0.113.9", null, "db-0", 30],
      ]),
    );
    expect(new Set(result.flows.map((f) => f.id)).size).toBe(3);
    // 192.168.5.5's "nobody" is one endpoint, however often the address returns to it.
    expect(result.stats.attributionMisses).toBe(1);
  });

  it("keeps every reporting node apart, however many share a line's stream", async () => {
    // Names that are prefixes of one another, and names of one length: more of them than the pipeline caches.
    const hosts = [
      ...Array.from({ length: 150 }, (_, k) => `h${"1".repeat(k)}`),
      ...Array.from({ length: 150 }, (_, k) => `ip-10-0-${String(k).padStart(3, "0")}`),
    ];
    const T = Date.parse("2026-04-19T04:52:00Z");
    const events = [...hosts, ...hosts.toReversed()].map((host, k) => ({
      message: line("Apr 19 04:52:00", host, "192.168.1.1", "203.0.113.9", 443),
      timestamp: T + k,
    }));
    const result = await runPipeline(events, options(new RecordingDirectory({})));
    const packets = new Map(result.flows.map((f) => [f.reporter, f.packets]));
    expect(packets.size).toBe(new Set(hosts).size);
    for (const host of hosts) expect(packets.get(host)).toBe(2);
  });

  it("makes the same flows when runs overlap, each waiting on its directory, as when they run one at a time", async () => {
    // Runs reuse the columns they keep a batch's packets in: runs that overlap must never share them.
    const T = Date.parse("2026-04-19T04:52:00Z");
    const batch = (n: number, size: number) =>
      Array.from({ length: size }, (_, k) => ({
        message: line(
          "Apr 19 04:52:00",
          `ip-${n}`,
          `192.168.${n}.${k % 250}`,
          k % 3 === 0 ? "203.0.113.9" : `192.168.${n + 100}.${k % 7}`,
          1000 * n + (k % 11),
        ),
        timestamp: T + 997 * k,
      }));
    const batches = [batch(1, 3000), batch(2, 10), batch(3, 1500), batch(4, 700), batch(5, 2100)];
    const table: Record<string, Resolution> = {};
    for (let a = 0; a < 250; a++)
      table[`192.168.2.${a}`] = { status: "found", holder: holder(`p${a}`, "ns", "w") };
    const alone = [];
    for (const events of batches)
      alone.push(await runPipeline(events, options(new RecordingDirectory(table))));
    // Each run waits for its directory's answer; the answers come in the reverse order of the runs.
    const releases: (() => void)[] = [];
    const held = (): IpDirectory => ({
      resolve: async (lookups) => {
        await new Promise<void>((release) => releases.push(release));
        return lookups.map((l) => table[l.ip] ?? { status: "absent" });
      },
    });
    const runs = batches.map((events) => runPipeline(events, options(held())));
    while (releases.length < batches.length) await new Promise((r) => setTimeout(r, 1));
    for (const release of releases.toReversed()) release();
    expect(await Promise.all(runs)).toEqual(alone);
    // And after them, runs one at a time on the columns they left.
    for (const [k, events] of batches.entries()) {
      expect(await runPipeline(events, options(new RecordingDirectory(table)))).toEqual(alone[k]);
    }
  });

  it("refuses a parser that builds records instead of leaving them in its fields", async () => {
    await expect(
      runPipeline([{ message: "x" }], {
        ...options(new RecordingDirectory({})),
        scanner: new LineParser({}),
      }),
    ).rejects.toThrow("createScanner");
  });

  it("fails loudly when a directory answers a different number of spans", async () => {
    const broken: IpDirectory = {
      resolve: async (lookups) => lookups.map((): Resolution => ({ status: "absent" })),
      resolveSpans: async (): Promise<SpanResolution[]> => [],
    };
    const t = Date.parse("2026-04-19T04:52:19Z");
    await expect(
      runPipeline(
        [{ message: line("Apr 19 04:52:19", "ip-1", "192.168.1.1", "192.168.2.2", 53), timestamp: t }],
        options(broken),
      ),
    ).rejects.toThrow("0 resolutions for 2 spans");
  });

  it("fails loudly when a directory breaks its contract", async () => {
    const broken: IpDirectory = { resolve: async () => [] };
    const t = Date.parse("2026-04-19T04:52:19Z");
    await expect(
      runPipeline(
        [{ message: line("Apr 19 04:52:19", "ip-1", "192.168.1.1", "192.168.2.2", 53), timestamp: t }],
        options(broken),
      ),
    ).rejects.toThrow("0 resolutions for 2 lookups");
  });
});
