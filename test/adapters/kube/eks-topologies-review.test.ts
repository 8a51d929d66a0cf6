// EKS cluster topologies an operator runs, end to end: kubectl-style snapshots, the local HTTPS Kubernetes API and
// `calico-flows replay`, checked against what an operator of such a cluster expects. Cases found in review.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SnapshotDirectory } from "../../../functions/adapters/kube/snapshot-directory.ts";
import { CidrSet } from "../../../functions/core/classify.ts";
import { createScanner } from "../../../functions/core/parse.ts";
import { runPipeline } from "../../../functions/core/pipeline.ts";
import type { FlowRecord, Resolution } from "../../../functions/core/types.ts";
import { ndjson, runCli } from "../../cli/run.ts";
import {
  type KubeApiServer,
  kubeObjects,
  kubeTime,
  startKubeApiServer,
} from "../../support/kube-api-server.ts";
import { holderNames, liveDirectoryOn, MemoryHistory } from "../../support/live-directory.ts";

const T = Date.parse("2026-04-19T04:00:00Z");
const S = 1000;
const DAY = 86_400_000;
const list = (items: unknown[]) => ({ apiVersion: "v1", kind: "List", metadata: {}, items });
const show = (r: Resolution) => (r.status === "found" ? `${r.holder.kind}:${r.holder.name}` : r.status);

/** A denied SYN logged on ip-10-0-1-5 at 04:52:19 (the demo's year, given with --year 2026). */
const line = (src: string, dst: string, port: number, outIf = "eni8d48114818c") =>
  `Apr 19 04:52:19 ip-10-0-1-5 kernel: calico-packet: IN=eth0 OUT=${outIf} MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=${port} WINDOW=62727 RES=0x00 SYN URGP=0\n`;
const DAY_RANGE = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z", "--json"];

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "eks-topologies-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const writeJson = (name: string, value: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(value, null, 4));
  return path;
};

/** The flows `replay` stored in `store`, as `flows --json` prints them. */
async function storedFlows(store: string): Promise<FlowRecord[]> {
  const read = await runCli(["flows", "--store", store, ...DAY_RANGE]);
  expect(read.code, read.stderr).toBe(0);
  return ndjson<FlowRecord>(read.stdout);
}

async function withApiServer(body: (server: KubeApiServer) => Promise<void>): Promise<void> {
  const server = await startKubeApiServer();
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

describe("snapshot files: what the replay options accept", () => {
  // An operator with per-namespace access, or one splitting a big cluster, has several `kubectl get pods -o json`
  // files and repeats --pods. Commander keeps only the last value of a non-repeatable option, so every file but
  // the last is dropped without a word: the source pod below is stored `unknown` and the internal denial alerts
  // with no workload for it. Expected: every --pods file is read (or the repeat is refused as a usage error).
  it("does not silently drop all but the last of repeated --pods files", async () => {
    const client = kubeObjects.pod({ name: "api-0", namespace: "team-a", ip: "192.168.1.1", created: T });
    const server = kubeObjects.pod({ name: "db-0", namespace: "team-b", ip: "192.168.1.2", created: T });
    const store = join(dir, "store");
    const run = await runCli(
      [
        "replay",
        "-",
        ...["--store", store, "--year", "2026", "--quiet"],
        ...["--pods", writeJson("team-a.json", list([client]))],
        ...["--pods", writeJson("team-b.json", list([server]))],
      ],
      { input: line("192.168.1.1", "192.168.1.2", 5432) },
    );
    if (run.code !== 0) {
      expect(run.stderr).toMatch(/--pods/);
      return;
    }
    const [flow] = await storedFlows(store);
    expect([flow?.src.kind, flow?.src.name, flow?.dst.name]).toEqual(["pod", "api-0", "db-0"]);
  });

  // `replay --nodes nodes.json --kubeconfig ~/.kube/config` (an identity that may list pods but not nodes, with
  // the nodes from a colleague's snapshot): any --pods/--nodes file switches the directory to snapshot files
  // alone (cli/directory.ts openDirectory), and the explicit --kubeconfig is ignored without a word, so every pod
  // is stored `unknown`. Expected: the pods come from the cluster given, or the combination is refused.
  it("does not silently ignore an explicit --kubeconfig when a --nodes file is given", async () => {
    await withApiServer(async (api) => {
      api.store.put(
        "pods",
        kubeObjects.pod({ name: "web-0", namespace: "shop", ip: "192.168.1.1", created: T, node: "n1" }),
      );
      const nodes = writeJson(
        "nodes.json",
        list([kubeObjects.node({ name: "n1", ip: "192.168.9.5", created: T - DAY })]),
      );
      const store = join(dir, "store");
      const run = await runCli(
        [
          "replay",
          "-",
          ...["--store", store, "--year", "2026", "--quiet"],
          ...["--kubeconfig", api.kubeconfigPath, "--nodes", nodes],
        ],
        { input: line("192.168.9.5", "192.168.1.1", 8080) },
      );
      if (run.code !== 0) {
        expect(run.stderr).toMatch(/--kubeconfig/);
        return;
      }
      const [flow] = await storedFlows(store);
      expect([flow?.src.kind, flow?.dst.kind, flow?.dst.name]).toEqual(["node", "pod", "web-0"]);
    });
  }, 15_000);
});

describe("--internal-cidr against the cluster's real ranges", () => {
  // The VPC CNI gives pods VPC addresses (10.0.0.0/16), the default range is 192.168.0.0/16. With --pods files the
  // CLI warns (warnPodsOutside); resolving through the kubeconfig, the default mode, it says nothing: every flow
  // is stored external and unattributed, and no internal denial alerts ("0 alerts"). Expected: the same warning
  // (e.g. from the pods the directory lists, or the replay noticing that no address was internal).
  it("warns when resolving through a live cluster whose pods are outside --internal-cidr", async () => {
    await withApiServer(async (api) => {
      for (const [name, ip] of [
        ["api-0", "10.0.1.1"],
        ["db-0", "10.0.1.2"],
      ] as const) {
        api.store.put("pods", kubeObjects.pod({ name, namespace: "shop", ip, created: T, node: "n1" }));
      }
      api.store.put("nodes", kubeObjects.node({ name: "n1", ip: "10.0.1.5", created: T - DAY }));
      const run = await runCli(
        [
          "replay",
          "-",
          ...["--store", join(dir, "store"), "--year", "2026", "--quiet"],
          ...["--kubeconfig", api.kubeconfigPath],
        ],
        { input: line("10.0.1.1", "10.0.1.2", 5432) },
      );
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/warning:[^\n]*--internal-cidr/);
    });
  }, 15_000);

  // Calico CNI on EKS: pods in Calico's pool (192.168.0.0/16, the default range), nodes in the VPC (10.0.0.0/16).
  // A hostNetwork client on another node (an ingress controller, a node-exporter scrape) denied to a pod is stored
  // external, its node unnamed although --nodes names it, and never alerts; warnPodsOutside looks at pod addresses
  // only, so nothing tells the operator to add the VPC range. (Custom networking is the mirror case: pods in
  // 100.64.0.0/10 given, nodes in the VPC range not.) Expected: a warning naming the node addresses outside.
  it("warns when the nodes file's addresses are outside --internal-cidr", async () => {
    const nodeName = (ip: string) => `ip-${ip.replaceAll(".", "-")}.eu-west-1.compute.internal`;
    const pods = writeJson(
      "pods.json",
      list([
        kubeObjects.pod({
          name: "web-0",
          namespace: "shop",
          ip: "192.168.1.1",
          created: T,
          node: nodeName("10.0.1.5"),
        }),
      ]),
    );
    const nodes = writeJson(
      "nodes.json",
      list(
        ["10.0.1.5", "10.0.2.6"].map((ip) => kubeObjects.node({ name: nodeName(ip), ip, created: T - DAY })),
      ),
    );
    const run = await runCli(
      [
        "replay",
        "-",
        ...["--store", join(dir, "store"), "--year", "2026", "--quiet"],
        ...["--pods", pods, "--nodes", nodes],
      ],
      { input: line("10.0.2.6", "192.168.1.1", 8080, "cali8d48114818c") },
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning:[^\n]*--internal-cidr/);
  });
});

describe("a pod that is created long before it gets its address (Pending while a node is provisioned)", () => {
  // A Job pod holds 10.0.5.7 until it finishes at T+60 s. The web pod was created at T but stayed Pending (no
  // room: the Job held the node's capacity) until the Job finished; kubelet started it at T+120 s and the VPC CNI
  // gave it the freed 10.0.5.7. Its lifetime starts at creationTimestamp (holders.ts podToHolders, validFrom:
  // created), so it "displaces" the running Job pod at T (endAmong) and the Job's own denials at T+30 s are
  // attributed to the web pod, which had no address then, in the snapshot and the live directory alike. Expected:
  // the Job pod (a pod holds an address from its status.startTime at the earliest, not from its creation).
  const job = () =>
    kubeObjects.pod({
      name: "etl-export-abcde",
      namespace: "etl",
      ip: "10.0.5.7",
      created: T - 600 * S,
      node: "n1",
      owner: { kind: "Job", name: "etl-export" },
      phase: "Succeeded",
      finished: T + 60 * S,
    });
  const web = () => {
    const pod = kubeObjects.pod({
      name: "web-6d4b8c7f9d-x2k4q",
      namespace: "shop",
      ip: "10.0.5.7",
      created: T,
      node: "n1",
    }) as { status: Record<string, unknown> };
    pod.status.startTime = kubeTime(T + 120 * S);
    pod.status.conditions = [
      { type: "PodScheduled", status: "True", lastTransitionTime: kubeTime(T + 118 * S) },
      { type: "Ready", status: "True", lastTransitionTime: kubeTime(T + 125 * S) },
    ];
    return pod;
  };

  it("attributes the finished Job pod's own lines to it, not to the pod that was still Pending", async () => {
    const snapshot = new SnapshotDirectory({ pods: list([job(), web()]) });
    const asked = [
      { ip: "10.0.5.7", at: T + 30 * S },
      { ip: "10.0.5.7", at: T + 200 * S },
    ];
    expect((await snapshot.resolve(asked)).map(show)).toEqual([
      "pod:etl-export-abcde",
      "pod:web-6d4b8c7f9d-x2k4q",
    ]);

    await withApiServer(async (api) => {
      api.store.put("pods", job());
      api.store.put("pods", web());
      const live = liveDirectoryOn(api, {
        cluster: "prod",
        history: new MemoryHistory(),
        now: () => T + 300 * S,
      });
      expect(holderNames(await live.resolve([asked[0] as (typeof asked)[0]]))).toEqual([
        "pod:etl-export-abcde",
      ]);
    });
  });
});

describe("workloads of custom controllers", () => {
  // Argo Rollouts owns its pods through ReplicaSets named `<rollout>-<hash>`, labelled
  // `rollouts-pod-template-hash` (not `pod-template-hash`). workloadOf (holders.ts) only strips the Deployment
  // controller's label, so each revision is a workload of its own: during a canary the stable and canary pods of one
  // app make two alerts for the same broken policy, and every promotion alerts again, against alert-rules.ts's
  // promise that "a rollout does not re-alert on the same broken policy". Expected: one workload (Rollout/checkout).
  it("gives the stable and canary pods of one Argo Rollout one workload, so one alert", async () => {
    const rolloutPod = (hash: string, suffix: string, ip: string) =>
      kubeObjects.pod({
        name: `checkout-${hash}-${suffix}`,
        namespace: "shop",
        ip,
        created: T,
        node: "n1",
        owner: { kind: "ReplicaSet", name: `checkout-${hash}` },
        labels: { app: "checkout", "rollouts-pod-template-hash": hash },
      });
    const db = kubeObjects.pod({
      name: "db-0",
      namespace: "data",
      ip: "10.0.9.9",
      created: T,
      node: "n2",
      owner: { kind: "StatefulSet", name: "db" },
    });
    const directory = new SnapshotDirectory({
      pods: list([
        rolloutPod("6d4b8c7f9d", "x2k4q", "10.0.5.1"),
        rolloutPod("5f7c9d8b6a", "p9z8r", "10.0.5.2"),
        db,
      ]),
    });
    const { flows, candidates } = await runPipeline(
      [
        { message: line("10.0.5.1", "10.0.9.9", 5432), timestamp: T + 60 * S },
        { message: line("10.0.5.2", "10.0.9.9", 5432), timestamp: T + 61 * S },
      ],
      {
        cluster: "prod",
        internal: new CidrSet(["10.0.0.0/16"]),
        bucketSeconds: 60,
        scanner: createScanner({ year: 2026 }),
        directory,
      },
    );
    expect(flows.map((f) => f.src.workload)).toEqual([
      { kind: "Rollout", name: "checkout" },
      { kind: "Rollout", name: "checkout" },
    ]);
    expect(candidates).toHaveLength(1);
  });
});

describe("around the fixes", () => {
  // Two snapshots of one Job pod, taken while it ran and after it finished: whichever file comes first, the pod
  // finished, and a line after its end is not its.
  it("keeps a pod's end from either of two snapshots of it", async () => {
    const uid = "5b1f0c2e-etl-0";
    const running = kubeObjects.pod({
      name: "etl-0",
      namespace: "etl",
      ip: "10.0.5.7",
      created: T,
      node: "n1",
      uid,
    });
    const done = kubeObjects.pod({
      uid,
      name: "etl-0",
      namespace: "etl",
      ip: "10.0.5.7",
      created: T,
      node: "n1",
      phase: "Succeeded",
      finished: T + 60 * S,
    });
    for (const order of [
      [running, done],
      [done, running],
    ]) {
      const files = order.map((pod, k) => writeJson(`pods-${k}.json`, list([pod])));
      const snapshot = await SnapshotDirectory.fromFiles({ pods: files });
      expect(
        (
          await snapshot.resolve([
            { ip: "10.0.5.7", at: T + 30 * S },
            { ip: "10.0.5.7", at: T + 600 * S },
          ])
        ).map(show),
      ).toEqual(["pod:etl-0", "absent"]);
    }
  });

  it("refuses --context with snapshot files, and --namespaces without them", async () => {
    const pods = writeJson("pods.json", list([]));
    const store = join(dir, "store");
    const withContext = await runCli(["replay", "-", "--store", store, "--pods", pods, "--context", "prod"], {
      input: "",
    });
    expect(withContext.code).toBe(2);
    expect(withContext.stderr).toMatch(/--context resolves IPs through a live cluster/);
    const namespaces = writeJson("namespaces.json", list([]));
    const alone = await runCli(["replay", "-", "--store", store, "--namespaces", namespaces], { input: "" });
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--namespaces is read with --pods\/--nodes files/);
  });

  // Calico CNI through the kubeconfig: the pods are inside the default range, the nodes (in the VPC) are not. The
  // cluster was asked about the pod, and what it listed says why the node's traffic is external.
  it("warns of the live cluster's node addresses outside --internal-cidr once it has listed them", async () => {
    await withApiServer(async (api) => {
      api.store.put(
        "pods",
        kubeObjects.pod({
          name: "web-0",
          namespace: "shop",
          ip: "192.168.1.1",
          created: T - DAY,
          node: "n1",
        }),
      );
      api.store.put("nodes", kubeObjects.node({ name: "n1", ip: "10.0.1.5", created: T - DAY }));
      const run = await runCli(
        [
          "replay",
          "-",
          ...["--store", join(dir, "store"), "--year", "2026", "--quiet"],
          ...["--kubeconfig", api.kubeconfigPath],
        ],
        { input: line("10.0.1.5", "192.168.1.1", 8080, "cali8d48114818c") },
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(
        /warning: 1 of the 1 node addresses \(10\.0\.1\.5…\) the cluster listed are outside --internal-cidr 192\.168\.0\.0\/16/,
      );
      expect(run.stderr).not.toMatch(/pod addresses/);
    });
  }, 15_000);
});
