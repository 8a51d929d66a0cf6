// The ingest pipeline with live attribution against the local Kubernetes API server: what the Lambda does.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LiveDirectory } from "../../../functions/adapters/kube/live-directory.ts";
import { CidrSet } from "../../../functions/core/classify.ts";
import { createScanner } from "../../../functions/core/parse.ts";
import { type LogEvent, runPipeline } from "../../../functions/core/pipeline.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";
import { liveDirectoryOn } from "../../support/live-directory.ts";

const T = Date.parse("2026-04-19T04:00:00Z");
let server: KubeApiServer;
let clock: { t: number };

beforeAll(async () => {
  server = await startKubeApiServer();
});
afterAll(async () => server.close());
beforeEach(() => {
  server.store.clear();
  server.counts.reset();
  clock = { t: T + 3600_000 };
});
afterEach(async () => server.setFault(null));

function line(at: number, src: string, dst: string, dpt: number): LogEvent {
  const d = new Date(at);
  const stamp = `Apr 19 ${d.toISOString().slice(11, 19)}`;
  return {
    message: `${stamp} ip-192-168-0-1 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=${dpt} WINDOW=62727 RES=0x00 SYN URGP=0`,
    timestamp: at,
  };
}

function pipeline(directory: LiveDirectory) {
  return {
    cluster: "prod",
    internal: new CidrSet(["192.168.0.0/16"]),
    bucketSeconds: 60,
    scanner: createScanner({ year: 2026 }),
    directory,
    now: () => clock.t,
  };
}

function directory(): LiveDirectory {
  return liveDirectoryOn(server, { cluster: "prod", timeoutMs: 1_000, now: () => clock.t });
}

function seedPods(count: number, prefix: string): string[] {
  const ips: string[] = [];
  for (let i = 1; i <= count; i++) {
    const ip = `${prefix}.${i}`;
    server.store.put(
      "pods",
      kubeObjects.pod({
        name: `web-${i}`,
        namespace: "shop",
        ip,
        created: T,
        owner: { kind: "StatefulSet", name: "web" },
      }),
    );
    ips.push(ip);
  }
  return ips;
}

const packets = (flows: { packets: number }[]) => flows.reduce((n, f) => n + f.packets, 0);

describe("ingest pipeline with live attribution", () => {
  it("attributes 1,000 lines over 50 IPs with at most 2 API calls cold and none warm", async () => {
    const ips = seedPods(50, "192.168.10");
    const dir = directory();
    const payload = (start: number) =>
      Array.from({ length: 1_000 }, (_, i) =>
        line(start + i * 20, ips[i % 50] as string, ips[(i * 7 + 3) % 50] as string, 8080),
      );

    const cold = await runPipeline(payload(clock.t - 60_000), pipeline(dir));
    expect(server.counts.total()).toBeLessThanOrEqual(2);
    expect(cold.stats).toMatchObject({ calico: 1_000, unresolved: 0, attributionMisses: 0 });
    expect(packets(cold.flows)).toBe(1_000);
    expect(cold.flows.every((f) => f.src.kind === "pod" && f.dst.kind === "pod")).toBe(true);

    server.counts.reset();
    clock.t += 15_000;
    const warm = await runPipeline(payload(clock.t - 20_000), pipeline(dir));
    expect(server.counts.total()).toBe(0);
    expect(warm.stats.unresolved).toBe(0);
  });

  it("makes the same flows when the directory answers for spans as when it answers per second, IP reuse included", async () => {
    const ips = seedPods(6, "192.168.30");
    // 192.168.30.1 changes hands during the payload: web-1 is deleted at T+40 min, web-1b gets its IP.
    const reused = ips[0] as string;
    const events = (start: number) =>
      Array.from({ length: 600 }, (_, i) =>
        line(start + i * 200, ips[i % 6] as string, ips[(i * 5 + 1) % 6] as string, 8080),
      );
    const start = T + 40 * 60_000 - 60_000;
    server.store.delete("pods", "web-1", "shop");
    server.store.put(
      "pods",
      kubeObjects.pod({
        name: "web-1b",
        namespace: "shop",
        ip: reused,
        created: T + 40 * 60_000,
        owner: { kind: "StatefulSet", name: "web" },
      }),
    );
    clock.t = start + 130_000;
    const spans = directory();
    const perSecond = directory();
    const bySpan = await runPipeline(events(start), pipeline(spans));
    const bySecond = await runPipeline(events(start), {
      ...pipeline(perSecond),
      directory: { resolve: (lookups) => perSecond.resolve(lookups) },
    });
    expect(bySpan.flows).toEqual(bySecond.flows);
    expect(bySpan.candidates).toEqual(bySecond.candidates);
    expect(bySpan.stats).toEqual(bySecond.stats);
    // Spans ask the directory far fewer questions: one per address, plus the seconds of the one that varies.
    expect(spans.stats().lookups).toBeLessThan(perSecond.stats().lookups / 5);
  });

  it("loses no flow when the API server goes away mid-payload: endpoints are stored unresolved with their IPs", async () => {
    const ips = seedPods(4, "192.168.20");
    const dir = directory();
    // The node list and one pod lookup get through, then every connection drops.
    await server.setFault({ fault: { kind: "reset" }, skip: 2 });
    const events = Array.from({ length: 200 }, (_, i) =>
      line(clock.t - 10_000 + i, ips[i % 4] as string, ips[(i + 1) % 4] as string, 5432),
    );
    const result = await runPipeline(events, pipeline(dir));
    expect(result.stats.calico).toBe(200);
    expect(packets(result.flows)).toBe(200);
    expect(result.stats.unresolved).toBeGreaterThan(0);
    const unresolved = result.flows.flatMap((f) => [f.src, f.dst]).filter((e) => !e.resolved);
    expect(unresolved.length).toBeGreaterThan(0);
    expect(unresolved.every((e) => e.kind === "unknown" && ips.includes(e.ip))).toBe(true);
    // Internal denials still raise alert candidates, keyed by IP where attribution failed.
    expect(result.candidates.some((c) => ips.includes(c.key.src) || ips.includes(c.key.dst))).toBe(true);

    // The next payload, once the server is back, resolves on its own.
    await server.setFault(null);
    clock.t += 61_000;
    const later = await runPipeline(
      events.map((_, i) => line(clock.t - 1_000 + i, ips[i % 4] as string, ips[(i + 1) % 4] as string, 5432)),
      pipeline(dir),
    );
    expect(later.stats.unresolved).toBe(0);
  });
});
