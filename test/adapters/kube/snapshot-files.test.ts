// What an operator hands `replay --pods/--nodes/--namespaces`: whatever kubectl printed, through the CLI's
// entry point (SnapshotDirectory.fromFiles, called by cli/directory.ts openDirectory).
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

const list = (items: unknown[], kind = "List") => ({ apiVersion: "v1", kind, metadata: {}, items });
const web = kubeObjects.pod({ name: "web-1", namespace: "shop", ip: "192.168.1.10", created: T });
const node = kubeObjects.node({ name: "node-a", ip: "192.168.74.5", created: T - 60 * MIN });
const pods = list([web]);
const nodes = list([node]);
/** An API PodList (`kubectl get --raw /api/v1/pods`): the items carry no kind. */
const stripKind = (o: unknown) => {
  const { kind: _, ...rest } = o as Record<string, unknown>;
  return rest;
};

const file = (name: string) => join(dir, name);
const show = (r: Resolution) =>
  r.status === "found" ? `${r.holder.kind}:${r.holder.namespace ?? "-"}/${r.holder.name}` : r.status;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "snapshot-files-"));
  const json = (o: unknown) => `${JSON.stringify(o, null, 4)}\n`;
  await writeFile(file("pods.json"), json(pods));
  await writeFile(file("nodes.json"), json(nodes));
  await writeFile(file("podlist.json"), json(list([stripKind(web)], "PodList")));
  await writeFile(file("nodelist.json"), json(list([stripKind(node)], "NodeList")));
  await writeFile(file("one-pod.json"), json(web));
  await writeFile(file("one-node.json"), json(node));
  await writeFile(file("empty.json"), json(list([])));
  await writeFile(file("bom.json"), `\uFEFF${json(pods)}`);
  await writeFile(file("crlf.json"), `${JSON.stringify(pods)}\r\n\r\n`);
  await writeFile(file("truncated.json"), json(pods).slice(0, 200));
  await writeFile(file("empty-file.json"), "");
  await writeFile(
    file("pods.yaml"),
    "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: web-1\nkind: List\n",
  );
  await writeFile(
    file("namespaces.json"),
    json(list([kubeObjects.namespace({ name: "shop", labels: { team: "a" } })])),
  );
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe("snapshot files as kubectl prints them", () => {
  it.each([
    ["a List", "pods.json", "nodes.json"],
    ["a PodList and NodeList whose items carry no kind", "podlist.json", "nodelist.json"],
    ["single objects (kubectl get pod x -o json)", "one-pod.json", "one-node.json"],
    ["a file starting with a byte-order mark", "bom.json", "nodes.json"],
    ["CRLF and trailing blank lines", "crlf.json", "nodes.json"],
  ])("reads %s", async (_, podsFile, nodesFile) => {
    const snapshot = await SnapshotDirectory.fromFiles({ pods: file(podsFile), nodes: file(nodesFile) });
    const answers = await snapshot.resolve([
      { ip: "192.168.1.10", at: T + MIN },
      { ip: "192.168.74.5", at: T + MIN },
    ]);
    expect(answers.map(show)).toEqual(["pod:shop/web-1", "node:-/node-a"]);
    expect(snapshot.summary).toMatchObject({ pods: 1, nodes: 1, malformed: [] });
  });

  it("takes an empty list as no objects", async () => {
    const snapshot = await SnapshotDirectory.fromFiles({
      pods: file("empty.json"),
      nodes: file("empty.json"),
    });
    expect(snapshot.summary).toEqual({ pods: 0, nodes: 0, namespaces: 0, ips: 0, malformed: [] });
  });

  it.each([
    ["pods file given as --nodes", { nodes: "pods.json" }, /pods\.json: nodes: holds Pod objects, not Nodes/],
    ["nodes file given as --pods", { pods: "nodes.json" }, /nodes\.json: pods: holds Node objects, not Pods/],
    ["a PodList given as --nodes", { nodes: "podlist.json" }, /podlist\.json: nodes: holds Pod objects/],
    ["a single Node given as --pods", { pods: "one-node.json" }, /one-node\.json: pods: holds Node objects/],
    [
      "pods file given as --namespaces",
      { pods: "pods.json", namespaces: "pods.json" },
      /pods\.json: namespaces: holds Pod objects, not Namespaces/,
    ],
    ["a YAML file", { pods: "pods.yaml" }, /pods file .*pods\.yaml is not JSON/],
    ["a truncated file", { pods: "truncated.json" }, /pods file .*truncated\.json is not JSON/],
    ["an empty file", { nodes: "empty-file.json" }, /nodes file .*empty-file\.json is not JSON/],
  ])("refuses the %s, naming the file and what is wrong", async (_, files, message) => {
    const paths = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, file(v)]));
    await expect(SnapshotDirectory.fromFiles(paths)).rejects.toThrow(message);
  });

  it("keeps the usable objects of a mixed file and counts the others", async () => {
    await writeFile(
      file("mixed.json"),
      JSON.stringify(
        list([
          web,
          null,
          "text",
          { kind: "Pod", metadata: { name: "no-ns", creationTimestamp: new Date(T).toISOString() } },
          { kind: "Pod", metadata: { name: "no-time", namespace: "shop" } },
          { kind: "Pod", metadata: { namespace: "shop" } },
          { kind: "Service", metadata: { name: "svc", namespace: "shop" } },
          {
            kind: "Pod",
            metadata: { name: "bad-ip", namespace: "shop", creationTimestamp: new Date(T).toISOString() },
            status: { podIP: "not-an-ip" },
          },
          // No spec, no status: a pod just created. Holds nothing, but is a pod.
          {
            kind: "Pod",
            metadata: { name: "bare", namespace: "shop", creationTimestamp: new Date(T).toISOString() },
          },
        ]),
      ),
    );
    const snapshot = await SnapshotDirectory.fromFiles({ pods: file("mixed.json") });
    expect((await snapshot.resolve([{ ip: "192.168.1.10", at: T + MIN }])).map(show)).toEqual([
      "pod:shop/web-1",
    ]);
    expect(snapshot.summary.pods).toBe(2);
    expect(snapshot.summary.malformed).toEqual([
      "malformed Pod: not an object",
      "malformed Pod: not an object",
      'malformed Pod "no-ns": no metadata.namespace',
      'malformed Pod "no-time": creationTimestamp undefined',
      "malformed Pod: no metadata.name",
      'malformed Pod "svc": is a Service',
      'malformed Pod "bad-ip": "not-an-ip" is not an IP address',
    ]);
  });

  it("attributes pods in every phase by their lifetimes (§4)", async () => {
    await writeFile(
      file("phases.json"),
      JSON.stringify(
        list([
          kubeObjects.pod({ name: "pending", namespace: "a", ip: null, created: T }),
          kubeObjects.pod({
            name: "done",
            namespace: "a",
            ip: "192.168.2.1",
            created: T,
            phase: "Succeeded",
            finished: T + 5 * MIN,
          }),
          kubeObjects.pod({
            name: "failed",
            namespace: "a",
            ip: "192.168.2.2",
            created: T,
            phase: "Failed",
            finished: T + 3 * MIN,
          }),
          kubeObjects.pod({
            name: "terminating",
            namespace: "a",
            ip: "192.168.2.3",
            created: T,
            deleted: T + 20 * MIN,
          }),
          // The IP of "done", reused later.
          kubeObjects.pod({ name: "next", namespace: "a", ip: "192.168.2.1", created: T + 10 * MIN }),
        ]),
      ),
    );
    const snapshot = await SnapshotDirectory.fromFiles({
      pods: file("phases.json"),
      namespaces: file("namespaces.json"),
    });
    const answers = await snapshot.resolve([
      { ip: "192.168.2.1", at: T + MIN },
      { ip: "192.168.2.1", at: T + 7 * MIN },
      { ip: "192.168.2.1", at: T + 11 * MIN },
      { ip: "192.168.2.2", at: T + 2 * MIN },
      { ip: "192.168.2.2", at: T + 4 * MIN },
      { ip: "192.168.2.3", at: T + 19 * MIN },
      { ip: "192.168.2.3", at: T + 21 * MIN },
      { ip: "192.168.2.3", at: T - MIN },
    ]);
    expect(answers.map(show)).toEqual([
      "pod:a/done",
      "absent",
      "pod:a/next",
      "pod:a/failed",
      "absent",
      "pod:a/terminating",
      "absent",
      "absent",
    ]);
    expect(snapshot.summary).toMatchObject({ pods: 5, ips: 3, malformed: [] });
  });

  it("reads a 20,000-pod snapshot (tens of MB) whole", async () => {
    const items = Array.from({ length: 20_000 }, (_, i) => {
      const pod = kubeObjects.pod({
        name: `app-${i}`,
        namespace: `ns-${i % 50}`,
        ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        created: T,
        labels: { "pod-template-hash": "abc12", app: `app-${i}` },
        owner: { kind: "ReplicaSet", name: `app-${i % 100}-abc12` },
        node: `node-${i % 200}`,
      }) as Record<string, unknown>;
      // Bulk like a real pod's spec.
      pod.spec = { ...(pod.spec as object), containers: [{ name: "main", image: "x".repeat(900) }] };
      return pod;
    });
    await writeFile(file("big.json"), JSON.stringify(list(items), null, 4));
    const snapshot = await SnapshotDirectory.fromFiles({ pods: file("big.json") });
    expect(snapshot.summary).toMatchObject({ pods: 20_000, ips: 20_000, malformed: [] });
    expect((await snapshot.resolve([{ ip: "10.0.78.31", at: T }])).map(show)).toEqual([
      "pod:ns-49/app-19999",
    ]);
  });
});
