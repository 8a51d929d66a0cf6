// Kubernetes API calls per 1,000 log lines (cold container, warm container, pod churn, many distinct IPs)
// and lookup latency, for the live directory against the local HTTPS test API server over loopback; and the bytes a
// warm container takes from the API server of a large cluster, with and without `watch` on pods.
// `node bench/kube.ts`, or through `npm run bench`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { KUBECONFIG_FIXES, loadKubeconfig } from "../functions/adapters/kube/cluster-access.ts";
import { LiveDirectory } from "../functions/adapters/kube/live-directory.ts";
import type { Lookup, Resolution } from "../functions/core/types.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../test/support/kube-api-server.ts";
import { prng } from "./corpus.ts";

const PODS = 2_000;
const NODES = 50;
const LINES = 1_000;
const PAYLOAD_GAP_MS = 10_000;
const T0 = Date.parse("2026-04-19T00:00:00Z");

const podIp = (i: number) => `192.168.${64 + Math.floor(i / 250)}.${(i % 250) + 1}`;
const nodeIp = (i: number) => `192.168.0.${i + 1}`;

function seed(server: KubeApiServer): void {
  server.store.clear();
  for (let i = 0; i < NODES; i++)
    server.store.put("nodes", kubeObjects.node({ name: `node-${i}`, ip: nodeIp(i), created: T0 }));
  for (let i = 0; i < PODS; i++) {
    server.store.put(
      "pods",
      kubeObjects.pod({
        name: `app-${i}-0`,
        namespace: `tenant-${i % 40}`,
        ip: podIp(i),
        created: T0,
        node: `node-${i % NODES}`,
        owner: { kind: "StatefulSet", name: `app-${i}` },
      }),
    );
  }
}

/** One payload of `LINES` lines between IPs of the working set, deduplicated per (ip, time) as the pipeline does. */
function payload(ips: readonly string[], end: number, random: () => number): Lookup[] {
  const seen = new Set<string>();
  const lookups: Lookup[] = [];
  for (let i = 0; i < LINES; i++) {
    const at = end - PAYLOAD_GAP_MS + Math.floor((i * PAYLOAD_GAP_MS) / LINES);
    for (const ip of [
      ips[Math.floor(random() * ips.length)] as string,
      ips[Math.floor(random() * ips.length)] as string,
    ]) {
      if (!seen.has(`${ip}|${at}`)) {
        seen.add(`${ip}|${at}`);
        lookups.push({ ip, at });
      }
    }
  }
  return lookups;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

interface Row {
  scenario: string;
  payloads: number;
  callsPer1000: number;
  medianMs: number;
  p95Ms: number;
  note: string;
}

/** The API calls table. */
async function callsTable(): Promise<void> {
  const server = await startKubeApiServer();
  const kc = loadKubeconfig({ kubeconfig: server.kubeconfigPath });
  const rows: Row[] = [];
  try {
    const measure = async (
      scenario: string,
      dir: LiveDirectory,
      clock: { t: number },
      payloads: number,
      ips: readonly string[],
      note: (answers: Resolution[][]) => string,
    ) => {
      const random = prng(7);
      const before = server.counts.total();
      const times: number[] = [];
      const answers: Resolution[][] = [];
      for (let i = 0; i < payloads; i++) {
        const lookups = payload(ips, clock.t, random);
        const start = performance.now();
        answers.push(await dir.resolve(lookups));
        times.push(performance.now() - start);
        clock.t += PAYLOAD_GAP_MS;
      }
      rows.push({
        scenario,
        payloads,
        callsPer1000: (server.counts.total() - before) / payloads,
        medianMs: percentile(times, 50),
        p95Ms: percentile(times, 95),
        note: note(answers),
      });
    };
    const fresh = (clock: { t: number }) =>
      new LiveDirectory({
        kubeConfig: () => kc,
        cluster: "bench",
        fixes: KUBECONFIG_FIXES,
        now: () => clock.t,
      });
    const unresolved = (answers: Resolution[][]) => {
      const all = answers.flat();
      return `${all.filter((a) => a.status !== "found").length} of ${all.length} lookups not found`;
    };

    // 50 distinct IPs (45 pods, 5 nodes): the common payload.
    const workingSet = [
      ...Array.from({ length: 45 }, (_, i) => podIp(i * 37)),
      ...Array.from({ length: 5 }, (_, i) => nodeIp(i)),
    ];
    seed(server);
    const clock = { t: T0 + 3600_000 };
    const dir = fresh(clock);
    await measure("cold, 50 IPs", dir, clock, 1, workingSet, unresolved);
    await measure("warm (next payload), 50 IPs", dir, clock, 1, workingSet, unresolved);
    await measure("steady, 50 IPs, 5 min", dir, clock, 30, workingSet, unresolved);

    // Churn: each payload, 2 of the 45 pods are deleted; 30 s later (the VPC CNI's IP cooldown) a new pod
    // gets the same IP. Each payload's lookups are checked against who really held the IP at that time.
    seed(server);
    const churnClock = { t: T0 + 3600_000 };
    const churnDir = fresh(churnClock);
    const generation = new Map<number, number>();
    /** ip → holders' [name, from, to] as the cluster really had them. */
    const truth = new Map<string, { name: string; from: number; to: number | null }[]>();
    const churnPayloads = 60;
    const churnRandom = prng(11);
    const pending: { i: number; at: number }[] = [];
    await churnDir.resolve(payload(workingSet, churnClock.t, churnRandom));
    churnClock.t += PAYLOAD_GAP_MS;
    const before = server.counts.total();
    const churnTimes: number[] = [];
    let reused = 0;
    let idle = 0;
    let unknown = 0;
    let total = 0;
    for (let p = 0; p < churnPayloads; p++) {
      const now = churnClock.t - PAYLOAD_GAP_MS;
      for (let k = 0; k < 2; k++) {
        const i = ((p * 2 + k) % 45) * 37;
        const g = generation.get(i) ?? 0;
        if (server.store.delete("pods", `app-${i}-${g}`, `tenant-${i % 40}`)) {
          const held = truth.get(podIp(i)) ?? [{ name: `app-${i}-${g}`, from: T0, to: null }];
          const last = held.at(-1);
          if (last !== undefined) last.to = now;
          truth.set(podIp(i), held);
          pending.push({ i, at: now + 30_000 });
        }
      }
      for (const due of pending.filter((d) => d.at <= churnClock.t)) {
        pending.splice(pending.indexOf(due), 1);
        const g = (generation.get(due.i) ?? 0) + 1;
        generation.set(due.i, g);
        const created = Math.ceil(due.at / 1000) * 1000;
        server.store.put(
          "pods",
          kubeObjects.pod({
            name: `app-${due.i}-${g}`,
            namespace: `tenant-${due.i % 40}`,
            ip: podIp(due.i),
            created,
            owner: { kind: "StatefulSet", name: `app-${due.i}` },
          }),
        );
        truth.get(podIp(due.i))?.push({ name: `app-${due.i}-${g}`, from: created, to: null });
      }
      const lookups = payload(workingSet, churnClock.t, churnRandom);
      const start = performance.now();
      const answers = await churnDir.resolve(lookups);
      churnTimes.push(performance.now() - start);
      lookups.forEach((l, n) => {
        const history = truth.get(l.ip);
        const a = answers[n];
        if (history === undefined || a === undefined) return;
        total++;
        const real = history.find((h) => h.from <= l.at && (h.to === null || l.at < h.to));
        if (a.status !== "found") unknown++;
        else if (real === undefined) idle++;
        else if (a.holder.name !== real.name) reused++;
      });
      churnClock.t += PAYLOAD_GAP_MS;
    }
    rows.push({
      scenario: "churn, 2 pods replaced per payload",
      payloads: churnPayloads,
      callsPer1000: (server.counts.total() - before) / churnPayloads,
      medianMs: percentile(churnTimes, 50),
      p95Ms: percentile(churnTimes, 95),
      note:
        `of ${total} lookups on churned IPs: ${reused} name the previous pod while a new one held the IP, ` +
        `${idle} name it during the cooldown (nobody held it), ${unknown} unknown`,
    });

    // Many distinct IPs: one paginated full list instead of a call per IP.
    seed(server);
    const wideClock = { t: T0 + 3600_000 };
    const wide = Array.from({ length: 500 }, (_, i) => podIp(i * 3));
    const wideDir = fresh(wideClock);
    await measure("cold, 500 IPs (full list)", wideDir, wideClock, 1, wide, unresolved);
    await measure("warm (next payload), 500 IPs", wideDir, wideClock, 1, wide, unresolved);
  } finally {
    await server.close();
  }

  process.stdout.write(
    `\nKubernetes attribution (${PODS} pods, ${NODES} nodes, ${LINES} lines per payload, one payload every ${PAYLOAD_GAP_MS / 1000} s)\n`,
  );
  process.stdout.write(
    `${"scenario".padEnd(38)} ${"payloads".padStart(8)} ${"API calls/1k lines".padStart(19)} ${"median ms".padStart(10)} ${"p95 ms".padStart(8)}  note\n`,
  );
  for (const r of rows) {
    process.stdout.write(
      `${r.scenario.padEnd(38)} ${String(r.payloads).padStart(8)} ${r.callsPer1000.toFixed(2).padStart(19)} ${r.medianMs.toFixed(2).padStart(10)} ${r.p95Ms.toFixed(2).padStart(8)}  ${r.note}\n`,
    );
  }
}

/** Pods of the large cluster, and their size: EKS lists a pod at about 7 KB (managedFields, a last-applied copy). */
const LARGE_PODS = 20_000;
const LARGE_NODES = 300;
const POD_PADDING = "x".repeat(5_600);

/** Pod `i` of the large cluster in its `generation` (a replacement on the same address is the next). */
function largePod(i: number, generation: number, created: number) {
  const pod = kubeObjects.pod({
    name: `app-${i}-${generation}`,
    namespace: `tenant-${i % 50}`,
    ip: `192.168.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    created,
    node: `node-${i % LARGE_NODES}`,
    owner: { kind: "ReplicaSet", name: `app-${i % 400}-7d9f8c` },
    labels: { app: `app-${i % 400}`, "pod-template-hash": "7d9f8c" },
  });
  (pod.metadata as Record<string, unknown>).annotations = {
    "kubectl.kubernetes.io/last-applied-configuration": POD_PADDING,
  };
  return pod;
}

/**
 * Bytes one warm container takes from the API server of a 20,000-pod cluster over 5 simulated minutes, a payload of
 * 50 addresses every 10 s, 10 pods replaced between payloads: with `watch` (its view caught up) and without (an older
 * rbac.yaml: every refresh a full list). Counted by a TCP proxy in front of the server, TLS included.
 */
async function apiServerBytes(watch: boolean): Promise<string> {
  const server = await startKubeApiServer();
  const dir = mkdtempSync(join(tmpdir(), "calico-flows-bench-kube-"));
  let bytes = 0;
  const target = new URL(server.url);
  const proxy = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), "127.0.0.1");
    upstream.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  try {
    const created = Date.now() - 86_400_000;
    for (let i = 0; i < LARGE_NODES; i++) {
      const ip = `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`;
      server.store.put("nodes", kubeObjects.node({ name: `node-${i}`, ip, created }));
    }
    for (let i = 0; i < LARGE_PODS; i++) server.store.put("pods", largePod(i, 0, created));
    if (!watch) {
      server.setInterceptor((r) =>
        r.query.get("watch") === null
          ? undefined
          : {
              code: 403,
              body: {
                kind: "Status",
                apiVersion: "v1",
                metadata: {},
                status: "Failure",
                reason: "Forbidden",
                code: 403,
              },
            },
      );
    }
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const config = JSON.parse(readFileSync(server.kubeconfigPath, "utf8"));
    config.clusters[0].cluster.server = `https://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const kubeconfig = join(dir, "kubeconfig.json");
    writeFileSync(kubeconfig, JSON.stringify(config));
    const kc = loadKubeconfig({ kubeconfig });
    let skew = 0;
    const now = () => Date.now() + skew;
    const directory = new LiveDirectory({
      kubeConfig: () => kc,
      cluster: "bench",
      fixes: KUBECONFIG_FIXES,
      now,
    });
    const ips = Array.from({ length: 50 }, (_, k) => {
      const i = (k * 397) % LARGE_PODS;
      return `192.168.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    });
    const ask = () => directory.resolve(ips.map((ip) => ({ ip, at: now() - 2_000 })));
    await ask();
    const cold = bytes;
    const generations = new Map<number, number>();
    let found = 0;
    for (let step = 0; step < 30; step++) {
      skew += 10_000;
      for (let c = 0; c < 10; c++) {
        const i = ((step * 10 + c) * 7) % LARGE_PODS;
        const generation = generations.get(i) ?? 0;
        server.store.delete("pods", `app-${i}-${generation}`, `tenant-${i % 50}`);
        generations.set(i, generation + 1);
        server.store.put("pods", largePod(i, generation + 1, now()));
      }
      found = (await ask()).filter((a) => a.status === "found").length;
    }
    const stats = directory.stats();
    return (
      `${watch ? "with watch on pods" : "watch refused (an older rbac.yaml)"}: first list ${(cold / 1e6).toFixed(1)} MB, ` +
      `then ${((bytes - cold) / 5 / 1e6).toFixed(2)} MB a minute (${stats.fullLists - 1} full lists, ` +
      `${stats.catchUps} catch-ups in 5 minutes); last payload ${found} of 50 found`
    );
  } finally {
    proxy.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bytes figures, after the calls table. */
async function bytesFigures(): Promise<void> {
  process.stdout.write(
    `\nAPI server bytes of one warm container (${LARGE_PODS.toLocaleString("en")} pods of ~7 KB, ${LARGE_NODES} nodes; ` +
      "50 addresses every 10 s for 5 simulated minutes, 10 pods replaced between payloads)\n",
  );
  for (const watch of [true, false]) process.stdout.write(`${await apiServerBytes(watch)}\n`);
}

export async function run(): Promise<void> {
  await callsTable();
  await bytesFigures();
}

if (import.meta.main) await run();
