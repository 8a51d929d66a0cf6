import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnapshotDirectory } from "../../../functions/adapters/kube/snapshot-directory.ts";
import type { Resolution } from "../../../functions/core/types.ts";
import { kubeObjects } from "../../support/kube-api-server.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const MIN = 60_000;
let dir: string;

/** What `kubectl get … -o json` prints: a List whose items carry kind and apiVersion. */
const list = (items: unknown[]) => ({
  apiVersion: "v1",
  kind: "List",
  metadata: { resourceVersion: "" },
  items,
});

const pods = list([
  kubeObjects.pod({
    name: "web-5c9f7-abcde",
    namespace: "shop",
    ip: "192.168.22.247",
    created: T,
    labels: { "pod-template-hash": "5c9f7" },
    owner: { kind: "ReplicaSet", name: "web-5c9f7" },
    node: "ip-192-168-74-5",
  }),
  // An IP reused: the old pod finished, a newer one holds it now.
  kubeObjects.pod({
    name: "report-1",
    namespace: "batch",
    ip: "192.168.94.122",
    created: T,
    phase: "Succeeded",
    finished: T + 5 * MIN,
  }),
  kubeObjects.pod({ name: "report-2", namespace: "batch", ip: "192.168.94.122", created: T + 10 * MIN }),
  kubeObjects.pod({
    name: "kube-proxy-x",
    namespace: "kube-system",
    ip: "192.168.74.6",
    created: T,
    hostNetwork: true,
    node: "ip-192-168-74-6",
  }),
  {
    kind: "Pod",
    metadata: { name: "broken", namespace: "shop", creationTimestamp: "not a time" },
    status: { podIP: "192.168.1.1" },
  },
]);
const nodes = list([
  kubeObjects.node({ name: "ip-192-168-74-5", ip: "192.168.74.5", created: T - 24 * 60 * MIN }),
]);
const namespaces = list([
  kubeObjects.namespace({ name: "shop", labels: { "example.com/org": "acme" } }),
  kubeObjects.namespace({ name: "batch" }),
]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "snapshot-"));
  await writeFile(join(dir, "pods.json"), JSON.stringify(pods));
  await writeFile(join(dir, "nodes.json"), JSON.stringify(nodes));
  await writeFile(join(dir, "namespaces.json"), JSON.stringify(namespaces));
  await writeFile(join(dir, "garbage.json"), "{ not json");
  await writeFile(join(dir, "table.json"), JSON.stringify({ kind: "Table", rows: [] }));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const show = (r: Resolution) =>
  r.status === "found"
    ? `${r.holder.kind}:${r.holder.namespace ?? "-"}/${r.holder.name}:${r.holder.workload?.kind ?? "-"}/${r.holder.workload?.name ?? "-"}`
    : r.status;

describe("SnapshotDirectory", () => {
  it("resolves pods, nodes and hostNetwork pods from kubectl output files, in time", async () => {
    const snapshot = await SnapshotDirectory.fromFiles({
      pods: join(dir, "pods.json"),
      nodes: join(dir, "nodes.json"),
      namespaces: join(dir, "namespaces.json"),
      namespaceLabelKeys: ["example.com/org"],
    });
    const answers = await snapshot.resolve([
      { ip: "192.168.22.247", at: T + MIN },
      { ip: "192.168.22.247", at: T - MIN },
      { ip: "192.168.94.122", at: T + 2 * MIN },
      { ip: "192.168.94.122", at: T + 8 * MIN },
      { ip: "192.168.94.122", at: T + 12 * MIN },
      { ip: "192.168.74.5", at: T },
      { ip: "192.168.74.6", at: T + MIN },
      { ip: "192.168.1.1", at: T + MIN },
      { ip: "192.168.99.99", at: T + MIN },
    ]);
    expect(answers.map(show)).toEqual([
      "pod:shop/web-5c9f7-abcde:Deployment/web",
      "absent",
      "pod:batch/report-1:Pod/report-1",
      "absent",
      "pod:batch/report-2:Pod/report-2",
      "node:-/ip-192-168-74-5:-/-",
      "node:-/ip-192-168-74-6:-/-",
      "absent",
      "absent",
    ]);
    expect(answers[0]).toMatchObject({ holder: { labels: { "example.com/org": "acme" } } });
    expect(answers[2]).not.toHaveProperty("holder.labels");
    expect(snapshot.summary).toEqual({
      pods: 4,
      nodes: 1,
      namespaces: 2,
      ips: 4,
      malformed: ['malformed Pod "broken": creationTimestamp "not a time"'],
    });
  });

  it("works from pods alone", async () => {
    const snapshot = new SnapshotDirectory({ pods });
    expect((await snapshot.resolve([{ ip: "192.168.22.247", at: T }])).map(show)).toEqual([
      "pod:shop/web-5c9f7-abcde:Deployment/web",
    ]);
  });

  it("answers a pod that got its address after its startTime, once a kept finished pod had let it go", async () => {
    // web: startTime T, Pending for a VPC CNI address until T+65 min; a Job's pod held that address from T+30 to
    // T+31 min and is kept, Succeeded, with its status.podIP.
    const ip = "192.168.94.200";
    const snapshot = new SnapshotDirectory({
      pods: list([
        kubeObjects.pod({ name: "web-5c9f7-fghij", namespace: "shop", ip, created: T }),
        kubeObjects.pod({
          name: "report-29080080-abcde",
          namespace: "batch",
          ip,
          created: T + 30 * MIN,
          phase: "Succeeded",
          finished: T + 31 * MIN,
        }),
      ]),
    });
    const answers = await snapshot.resolve([
      { ip, at: T + 90 * MIN },
      { ip, at: T + 30 * MIN + 30_000 },
      { ip, at: T + 10 * MIN },
    ]);
    expect(answers.map(show)).toEqual([
      "pod:shop/web-5c9f7-fghij:Pod/web-5c9f7-fghij",
      "pod:batch/report-29080080-abcde:Pod/report-29080080-abcde",
      "absent",
    ]);
  });

  it("reports a nodes file given as pods, item by item", () => {
    const snapshot = new SnapshotDirectory({ pods: nodes });
    expect(snapshot.summary.malformed).toEqual(['malformed Pod "ip-192-168-74-5": is a Node']);
  });

  it.each([
    ["a missing file", "missing.json", /cannot read pods file .*missing\.json/],
    [
      "a file that is not JSON",
      "garbage.json",
      /pods file .*garbage\.json is not JSON \(kubectl get pods -o json\)/,
    ],
    [
      "JSON that is not a List",
      "table.json",
      /table\.json: pods: expected the output of `kubectl get pods -o json`/,
    ],
  ])("says what is wrong with %s", async (_, file, message) => {
    await expect(SnapshotDirectory.fromFiles({ pods: join(dir, file) })).rejects.toThrow(message);
  });
});
