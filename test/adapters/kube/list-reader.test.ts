import { readFileSync } from "node:fs";
import { ApiException } from "@kubernetes/client-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  leanNamespace,
  leanNode,
  leanPod,
  readList,
  readWatch,
} from "../../../functions/adapters/kube/list-reader.ts";
import {
  hostNetworkNodeHolders,
  namespaceLabels,
  nodeToHolders,
  podToHolders,
  workloadOf,
} from "../../../functions/core/holders.ts";
import { kubeObjects } from "../../support/kube-api-server.ts";

const T = Date.parse("2026-04-19T04:00:00Z");
const MIN = 60_000;
const demo = (file: string) =>
  (
    JSON.parse(readFileSync(new URL(`../../../examples/demo/${file}`, import.meta.url), "utf8")) as {
      items: Record<string, unknown>[];
    }
  ).items;

/** `text` as a response body, cut at `cuts` (byte offsets). */
async function* chunked(text: string, cuts: readonly number[] = []) {
  const bytes = Buffer.from(text);
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const at = Math.min(cut, bytes.length);
    if (at > from) yield bytes.subarray(from, at);
    from = Math.max(from, at);
  }
  if (from < bytes.length) yield bytes.subarray(from);
}

const keep = (item: unknown) => item;

describe("readList", () => {
  it("reads what JSON.parse reads, however the text is cut and laid out", async () => {
    const json = fc.jsonValue({ maxDepth: 4 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(json, { maxLength: 8 }),
        fc.option(fc.string(), { nil: undefined }),
        fc.string(),
        fc.record({ other: json }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (items, token, resourceVersion, other, pretty, cuts) => {
          const list = { kind: "PodList", metadata: { continue: token, resourceVersion }, items, ...other };
          const text = JSON.stringify(list, null, pretty ? 2 : undefined);
          const read = await readList(
            chunked(
              text,
              cuts.map((c) => c % (text.length + 1)),
            ),
            keep,
          );
          const parsed = JSON.parse(text) as typeof list;
          expect(read.items).toEqual(parsed.items);
          expect(read.metadata).toEqual(
            token === undefined ? { resourceVersion } : { continue: token, resourceVersion },
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("cuts items at their own brackets and commas, not those in strings, in every chunking", async () => {
    const items = [
      { name: 'a "quoted" {name}, [x]', escaped: "\\", tail: '\\\\"' },
      { note: "é — ✓ 🙂", list: [1, [2, { three: "]}" }]] },
      "a string item, with a comma",
      [],
      {},
    ];
    const text = `{"metadata":{"resourceVersion":"9"},"items":${JSON.stringify(items)},"kind":"PodList"}`;
    // Every byte a chunk boundary: a multi-byte character, an escape or a quote cut in two.
    const cuts = Array.from({ length: Buffer.byteLength(text) }, (_, i) => i);
    for (const at of [cuts, [37], [40, 41, 90]]) {
      expect((await readList(chunked(text, at), keep)).items).toEqual(items);
    }
  });

  it("hands each item to pick as it reads it", async () => {
    const seen: unknown[] = [];
    const read = await readList(chunked(JSON.stringify({ items: [{ a: 1 }, { a: 2 }] })), (item) => {
      seen.push(item);
      return (item as { a: number }).a * 10;
    });
    expect(seen).toEqual([{ a: 1 }, { a: 2 }]);
    expect(read.items).toEqual([10, 20]);
  });

  it.each([
    ["no items", `{"kind":"PodList","metadata":{}}`],
    ["null items", `{"kind":"PodList","items":null}`],
    ["empty items", `{"items":[ ]}`],
  ])("takes %s for an empty list", async (_, text) => {
    expect(await readList(chunked(text), keep)).toEqual({ metadata: {}, items: [] });
  });

  it.each([
    ["a truncated list", `{"items":[{"a":1},{"a"`],
    ["a list cut after an item", `{"items":[{"a":1}`],
    ["text after the list", `{"items":[]} {}`],
    ["an array", `[{"a":1}]`],
    ["a string", `"items"`],
    ["an HTML page", "<html>502 Bad Gateway</html>"],
    ["an empty answer", ""],
    ["items that are no list", `{"items":{"a":1}}`],
    ["an item that is no JSON", `{"items":[{"a":1},{a:2}]}`],
    ["a member that is no JSON", `{"items":[],"metadata":{resourceVersion:1}}`],
    ["the items closed as an object", `{"items":[{"a":1}}}`],
    ["the list closed as an array", `{"items":[]]`],
    ["text between the items and the next member", `{"items":[] x,"kind":"PodList"}`],
  ])("refuses %s", async (_, text) => {
    await expect(readList(chunked(text, [5]), keep)).rejects.toThrow(SyntaxError);
  });
});

describe("what a list keeps of its items", () => {
  const pods = [
    ...demo("pods.json"),
    kubeObjects.pod({
      name: "batch-1",
      ip: "192.168.9.1",
      created: T,
      phase: "Succeeded",
      finished: T + 5 * MIN,
      owner: { kind: "Job", name: `nightly-${Math.floor(T / MIN)}` },
    }),
    kubeObjects.pod({
      name: "web-abc12",
      ip: ["192.168.9.2", "fd00::9:2"],
      created: T,
      deleted: T + MIN,
      node: "node-a",
      owner: { kind: "ReplicaSet", name: "web-5f6d7" },
      labels: { "pod-template-hash": "5f6d7" },
    }),
    kubeObjects.pod({
      name: "canary-xyz",
      ip: "192.168.9.3",
      created: T,
      owner: { kind: "ReplicaSet", name: "shop-6c7d8" },
      labels: { "rollouts-pod-template-hash": "6c7d8" },
    }),
    kubeObjects.pod({
      name: "aws-node-1",
      ip: ["192.168.0.1", "fd00::1"],
      created: T,
      node: "n",
      hostNetwork: true,
    }),
    kubeObjects.pod({ name: "pending", ip: null, created: T }),
    // Ended without a container's finish time: the status's condition times bound it.
    {
      ...kubeObjects.pod({ name: "failed", ip: "192.168.9.4", created: T }),
      status: {
        phase: "Failed",
        podIP: "192.168.9.4",
        conditions: [{ type: "Ready", status: "False", lastTransitionTime: "2026-04-19T04:07:00Z" }],
      },
    },
    {
      ...kubeObjects.pod({ name: "init-failed", ip: "192.168.9.6", created: T }),
      status: {
        phase: "Failed",
        podIP: "192.168.9.6",
        initContainerStatuses: [
          { state: { terminated: { finishedAt: "2026-04-19T04:03:00Z", exitCode: 1 } } },
        ],
      },
    },
  ];
  const malformed = [
    null,
    "a pod",
    { metadata: { namespace: "x" } },
    { kind: "Node", metadata: { name: "n" } },
    { metadata: { name: "p", namespace: "x", creationTimestamp: "last tuesday" } },
    kubeObjects.pod({ name: "bad-ip", ip: "192.168.9.300", created: T }),
    { ...kubeObjects.pod({ name: "odd", ip: "192.168.9.5", created: T }), metadata: ["not", "an", "object"] },
  ];
  /** What holders.ts makes of `object`, or the error it refuses it with. */
  const outcome = (read: (o: unknown) => unknown, object: unknown) => {
    try {
      return read(object);
    } catch (error) {
      return String(error);
    }
  };

  it("gives a pod's holders and workload as the whole pod does, and not its managedFields, annotations or containers", () => {
    for (const pod of [...pods, ...malformed]) {
      for (const read of [podToHolders, hostNetworkNodeHolders, workloadOf]) {
        expect(outcome(read, leanPod(pod)), `${read.name} of ${JSON.stringify(pod)}`).toEqual(
          outcome(read, pod),
        );
      }
    }
    const full = {
      ...(pods[0] as Record<string, unknown>),
      metadata: {
        ...((pods[0] as { metadata: object }).metadata as object),
        annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
        managedFields: [{ manager: "kubelet" }],
      },
    };
    const lean = leanPod(full) as { metadata: object; spec: object; status: object };
    expect(Object.keys(lean.metadata)).not.toContain("managedFields");
    expect(Object.keys(lean.metadata)).not.toContain("annotations");
    expect(Object.keys(lean.spec)).toEqual(["nodeName", "hostNetwork"]);
  });

  it("gives a node's holders and a namespace's labels as the whole object does", () => {
    const nodes = [
      ...demo("nodes.json"),
      kubeObjects.node({ name: "node-b", ip: ["192.168.1.2", "fd00::1:2"], created: T }),
      (() => {
        // Being drained away.
        const node = kubeObjects.node({ name: "node-c", ip: "192.168.1.3", created: T });
        (node.metadata as Record<string, unknown>).deletionTimestamp = "2026-04-19T05:00:00Z";
        return node;
      })(),
      ...malformed,
    ];
    for (const node of nodes)
      expect(outcome(nodeToHolders, leanNode(node))).toEqual(outcome(nodeToHolders, node));
    for (const namespace of [...demo("namespaces.json"), ...malformed]) {
      const labels = (o: unknown) => namespaceLabels(o, ["example.com/org", "kubernetes.io/metadata.name"]);
      expect(outcome(labels, leanNamespace(namespace))).toEqual(outcome(labels, namespace));
    }
  });
});

describe("readWatch", () => {
  const pod = kubeObjects.pod({ name: "web-0", namespace: "shop", ip: "192.168.1.1", created: T });
  const withVersion = (object: Record<string, unknown>, version: string) => ({
    ...object,
    kind: "Pod",
    apiVersion: "v1",
    metadata: { ...(object.metadata as object), resourceVersion: version },
  });
  const events = [
    { type: "ADDED", object: withVersion(pod, "11") },
    { type: "MODIFIED", object: withVersion({ ...pod, status: { phase: "Succeeded" } }, "12") },
    { type: "DELETED", object: withVersion(pod, "13") },
    { type: "BOOKMARK", object: { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: "20" } } },
  ];
  const text = events.map((e) => `${JSON.stringify(e)}\n`).join("");

  it("reads one event a line, however the text is cut, each object picked and its version kept", async () => {
    for (const cuts of [
      [],
      [1],
      [text.indexOf("\n")],
      [text.indexOf("\n") + 1, 200, 201],
      [text.length - 1],
    ]) {
      const read = await readWatch(chunked(text, cuts), leanPod, "GET /api/v1/pods");
      expect(read.map((e) => [e.type, e.resourceVersion])).toEqual([
        ["ADDED", "11"],
        ["MODIFIED", "12"],
        ["DELETED", "13"],
        ["BOOKMARK", "20"],
      ]);
      expect(read[0]?.object).toEqual(leanPod(events[0]?.object));
      expect(read[3]?.object).toEqual(events[3]?.object);
    }
  });

  it("throws an ERROR event's Status as the ApiException a failed request throws (410: too old a version)", async () => {
    const status = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "too old resource version: 5 (9)",
      reason: "Expired",
      code: 410,
    };
    const error = await readWatch(
      chunked(`${JSON.stringify({ type: "ERROR", object: status })}\n`),
      leanPod,
      "GET /api/v1/pods",
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiException);
    expect((error as ApiException<unknown>).code).toBe(410);
    expect((error as ApiException<unknown>).body).toEqual(status);
  });

  it("notes when each event came: whether the watch was still sending when it ended", async () => {
    const lines = text.split("\n");
    async function* slowly() {
      yield new TextEncoder().encode(`${lines[0]}\n`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      yield new TextEncoder().encode(`${lines[1]}\n`);
    }
    const before = performance.now();
    const [first, second] = await readWatch(slowly(), leanPod, "GET /api/v1/pods");
    expect(first?.receivedAt).toBeGreaterThanOrEqual(before);
    expect(first?.receivedAt).toBeLessThan(before + 100);
    expect((second?.receivedAt ?? 0) - (first?.receivedAt ?? 0)).toBeGreaterThanOrEqual(290);
  });

  it("reads a watch that ended without an event as none, and refuses a line that is not an event", async () => {
    expect(await readWatch(chunked(""), leanPod, "GET /api/v1/pods")).toEqual([]);
    await expect(readWatch(chunked('{"object":{}}\n'), leanPod, "GET /api/v1/pods")).rejects.toThrow(
      SyntaxError,
    );
  });
});
