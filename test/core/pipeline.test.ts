import { describe, expect, it } from "vitest";
import { CidrSet } from "../../functions/core/classify.ts";
import { createParser } from "../../functions/core/parse.ts";
import { type PipelineOptions, runPipeline } from "../../functions/core/pipeline.ts";
import type { Holder, IpDirectory, Lookup, Resolution } from "../../functions/core/types.ts";

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
    parse: createParser({ year: 2026 }),
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
