// The ingest function on real subscription payloads (base64 of gzip of JSON) against dynalite, through a
// fault-injecting proxy where the test needs one.
import { randomUUID } from "node:crypto";
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import type { CloudWatchLogsEvent, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { createTableInput } from "../../functions/adapters/dynamo/schema.ts";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { createScanner } from "../../functions/core/parse.ts";
import type { FlowStore } from "../../functions/core/ports.ts";
import { CorruptPayloadError, encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { type IngestRuntime, ingestEvent } from "../../functions/ingest/handler.ts";
import { metrics } from "../../functions/shared/powertools.ts";
import { controlMessageData } from "../support/deliveries.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";

const T0 = Date.parse("2026-04-19T04:50:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const NODE_A = { name: "ip-192-168-74-5.eu-west-1.compute.internal", ip: "192.168.74.5" };

const pod = (
  name: string,
  ns: string,
  ip: string,
  created: number,
  deleted?: number,
  hostNetwork = false,
) => ({
  metadata: {
    name,
    namespace: ns,
    uid: `uid-${name}`,
    creationTimestamp: iso(created),
    ...(deleted === undefined ? {} : { deletionTimestamp: iso(deleted) }),
    labels: { "pod-template-hash": "5d4f8b7c9" },
    ownerReferences: [{ kind: "ReplicaSet", name: `${name.split("-")[0]}-5d4f8b7c9`, controller: true }],
  },
  spec: { nodeName: NODE_A.name, hostNetwork },
  status: { phase: "Running", podIP: ip, podIPs: [{ ip }], hostIP: NODE_A.ip },
});

const directory = new SnapshotDirectory({
  pods: {
    items: [
      pod("web-5d4f8b7c9-aaaaa", "customer-a", "192.168.22.247", T0 - 3_600_000),
      pod("db-5d4f8b7c9-bbbbb", "customer-b", "192.168.94.122", T0 - 3_600_000),
      // 192.168.5.5 is reused inside one payload: old-worker until T0+20s, new-worker from T0+30s.
      pod("old-5d4f8b7c9-ccccc", "customer-a", "192.168.5.5", T0 - 3_600_000, T0 + 20_000),
      pod("new-5d4f8b7c9-ddddd", "customer-c", "192.168.5.5", T0 + 30_000),
      pod("exporter-5d4f8b7c9-eeeee", "monitoring", NODE_A.ip, T0 - 3_600_000, undefined, true),
    ],
  },
  nodes: {
    items: [
      {
        metadata: { name: NODE_A.name, uid: "uid-node-a", creationTimestamp: iso(T0 - 86_400_000) },
        status: { addresses: [{ type: "InternalIP", address: NODE_A.ip }] },
      },
    ],
  },
});

const line = (src: string, dst: string, dport: number, spt = 40000) =>
  `Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=${spt} DPT=${dport} WINDOW=62727 RES=0x00 SYN URGP=0`;

let eventId = 37_000_000;
function payload(lines: { at: number; message: string }[], stream = "ip-192-168-74-5"): CloudWatchLogsEvent {
  const data = encodeSubscriptionData({
    messageType: "DATA_MESSAGE",
    owner: "123456789012",
    logGroup: "/aws/eks/prod/nodes",
    logStream: stream,
    subscriptionFilters: ["calico-packet"],
    logEvents: lines.map((l) => ({ id: String(eventId++), timestamp: l.at, message: l.message })) as [
      { id: string; timestamp: number; message: string },
      ...{ id: string; timestamp: number; message: string }[],
    ],
  });
  return { awslogs: { data } };
}

function runtime(store: FlowStore): IngestRuntime {
  return {
    directory,
    deps: {
      store,
      alertWindowMs: 15 * 60_000,
      alertCap: 50,
      pipeline: {
        cluster: "prod",
        internal: new CidrSet(["192.168.0.0/16"]),
        bucketSeconds: 60,
        scanner: createScanner(),
        directory,
      },
    },
  };
}

async function allFlows(store: FlowStore): Promise<FlowRecord[]> {
  const out: FlowRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.queryFlows({
      cluster: "prod",
      since: iso(T0 - 3_600_000),
      until: iso(T0 + 3_600_000),
      cursor,
    });
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

const total = (flows: FlowRecord[]) => flows.reduce((n, f) => n + f.packets, 0);

describe("ingest handler", () => {
  let testStore: TestStore;

  beforeAll(async () => {
    testStore = await startTestStore();
  });
  afterAll(async () => {
    await testStore.close();
  });

  const freshStore = async (endpoint?: string) => {
    const tableName = `t-${randomUUID()}`;
    await testStore.client.send(new CreateTableCommand(createTableInput(tableName)));
    return new DynamoFlowStore({
      client: testStore.clientFor(endpoint),
      tableName,
      retry: { baseDelayMs: 1, maxDelayMs: 5 },
    });
  };

  it("stores attributed flows, resolving a reused IP by time and hostNetwork to the node", async () => {
    const store = await freshStore();
    const event = payload([
      { at: T0 + 1_000, message: line("192.168.22.247", "192.168.94.122", 5432, 40001) },
      { at: T0 + 2_000, message: line("192.168.22.247", "192.168.94.122", 5432, 40002) },
      { at: T0 + 10_000, message: line("192.168.5.5", "192.168.94.122", 5432) },
      { at: T0 + 40_000, message: line("192.168.5.5", "192.168.94.122", 5432) },
      { at: T0 + 50_000, message: line(NODE_A.ip, "192.168.22.247", 9102) },
      { at: T0 + 50_000, message: "Apr 19 04:52:19 ip-192-168-74-5 kubelet[1]: not a calico line" },
    ]);
    const result = await ingestEvent(event, runtime(store));
    expect(result?.stats).toMatchObject({ lines: 6, calico: 5, skipped: 1, malformed: 0 });
    const flows = await allFlows(store);
    expect(total(flows)).toBe(5);
    const bySource = Object.fromEntries(
      flows.map((f) => [`${f.src.kind}:${f.src.namespace}/${f.src.name}`, f.packets]),
    );
    expect(bySource).toEqual({
      "pod:customer-a/web-5d4f8b7c9-aaaaa": 2,
      "pod:customer-a/old-5d4f8b7c9-ccccc": 1,
      "pod:customer-c/new-5d4f8b7c9-ddddd": 1,
      [`node:null/${NODE_A.name}`]: 1,
    });
    expect(flows.every((f) => f.reporter === "ip-192-168-74-5" && f.internal)).toBe(true);
  });

  it("leaves every count unchanged when the same payload is delivered again", async () => {
    const store = await freshStore();
    const event = payload(
      Array.from({ length: 50 }, (_, i) => ({
        at: T0 + i * 1_000,
        message: line("192.168.22.247", "192.168.94.122", 5432, 30000 + i),
      })),
    );
    const first = await ingestEvent(event, runtime(store));
    const before = await allFlows(store);
    const again = await ingestEvent(event, runtime(store));
    expect(first?.flowsApplied).toBe(1);
    expect(again).toMatchObject({ flowsApplied: 0, flowsDuplicate: 1 });
    expect(await allFlows(store)).toEqual(before);
    expect(total(before)).toBe(50);
  });

  it("stores exact counts through throttling, 500s and lost answers, retrying failed payloads as Lambda does", async () => {
    const proxy: FaultProxy = await startFaultProxy(testStore.endpoint);
    try {
      const store = await freshStore(proxy.endpoint);
      proxy.setPlan({ throttle: 0.2, error: 0.1, lost: 0.1, seed: 7 });
      const payloads = Array.from({ length: 12 }, (_, p) =>
        payload(
          Array.from({ length: 40 }, (_, i) => ({
            at: T0 + p * 30_000 + i * 500,
            message: line(i % 2 ? "192.168.22.247" : "192.168.5.5", "192.168.94.122", 5000 + (i % 5)),
          })),
        ),
      );
      for (const event of payloads) {
        // Lambda retries a failed asynchronous invocation with the same event.
        for (let attempt = 0; ; attempt++) {
          try {
            await ingestEvent(event, runtime(store));
            break;
          } catch (error) {
            if (attempt > 5) throw error;
          }
        }
      }
      expect(proxy.count({ outcome: "lost" }) + proxy.count({ outcome: "throttled" })).toBeGreaterThan(10);
      proxy.setPlan({});
      const flows = await allFlows(store);
      expect(total(flows)).toBe(12 * 40);
      expect(flows.reduce((n, f) => n + f.bytes, 0)).toBe(12 * 40 * 60);
      // Retried payloads, whole or partial, were not double counted: the same flows again change nothing.
      for (const event of payloads) await ingestEvent(event, runtime(store));
      expect(total(await allFlows(store))).toBe(12 * 40);
    } finally {
      await proxy.close();
    }
  });

  it("fails a corrupt payload with a precise error and a metric, storing nothing", async () => {
    const store = await freshStore();
    const spy = vi.spyOn(metrics, "addMetric");
    await expect(ingestEvent({ awslogs: { data: "H4sIAAAA" } }, runtime(store))).rejects.toThrow(
      CorruptPayloadError,
    );
    await expect(ingestEvent({} as CloudWatchLogsEvent, runtime(store))).rejects.toThrow(
      "awslogs.data is missing",
    );
    expect(spy).toHaveBeenCalledWith("CorruptPayloads", "Count", 1);
    spy.mockRestore();
    expect(await allFlows(store)).toEqual([]);
  });

  it("acknowledges a CONTROL_MESSAGE without storing anything", async () => {
    const store = await freshStore();
    const data = controlMessageData(T0);
    expect(await ingestEvent({ awslogs: { data } }, runtime(store))).toBeUndefined();
    expect(await allFlows(store)).toEqual([]);
  });

  /**
   * The Lambda handler as deployed: configured from the environment (attribution off, plus `env`), on a table of
   * its own, handed a context; `run` invokes it and reads the table back.
   */
  async function withDeployedHandler(
    env: Record<string, string>,
    run: (
      invoke: (event: Parameters<typeof payload>[0]) => Promise<unknown>,
      store: DynamoFlowStore,
    ) => Promise<void>,
  ): Promise<void> {
    const tableName = `t-${randomUUID()}`;
    await testStore.client.send(new CreateTableCommand(createTableInput(tableName)));
    const variables = {
      CLUSTER_NAME: "prod",
      TABLE_NAME: tableName,
      ATTRIBUTION: "none",
      AWS_ENDPOINT_URL_DYNAMODB: testStore.endpoint,
      AWS_REGION: "eu-west-1",
      ...env,
    };
    for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value);
    vi.resetModules();
    try {
      const { handler } = await import("../../functions/ingest/handler.ts");
      const context = {
        functionName: "ingest",
        awsRequestId: `req-${randomUUID()}`,
        // A fresh invocation of the deployed function (a 2-minute timeout).
        getRemainingTimeInMillis: () => 120_000,
      } as Context;
      await run(
        (events) => handler(payload(events), context),
        new DynamoFlowStore({ client: testStore.clientFor(), tableName }),
      );
    } finally {
      vi.unstubAllEnvs();
    }
  }

  it("runs as a Lambda handler configured from the environment", async () => {
    await withDeployedHandler({}, async (invoke, store) => {
      await invoke([{ at: T0, message: line("192.168.22.247", "192.168.94.122", 5432) }]);
      const flows = await allFlows(store);
      expect(flows).toHaveLength(1);
      // Attribution off: stored with IPs only, marked unresolved.
      expect(flows[0]?.src).toMatchObject({ ip: "192.168.22.247", kind: "unknown", resolved: false });
    });
  });

  it("classifies by the workload interface prefixes of its environment", async () => {
    await withDeployedHandler({ WORKLOAD_INTERFACE_PREFIXES: " cali , tap " }, async (invoke, store) => {
      const via = (inIf: string, outIf: string, dport: number) =>
        line("192.168.22.247", "192.168.94.122", dport).replace(
          "IN=eth0 OUT=eni8d48114818c",
          `IN=${inIf} OUT=${outIf}`,
        );
      await invoke([
        { at: T0, message: via("eth0", "tap0a1b2c3d4e5", 1001) },
        { at: T0, message: via("tap0a1b2c3d4e5", "eth0", 1002) },
        // The defaults are replaced: the VPC CNI's veth is no workload's interface here.
        { at: T0, message: via("eth0", "eni8d48114818c", 1003) },
      ]);
      const byPort = Object.fromEntries((await allFlows(store)).map((f) => [f.dstPort, f.direction]));
      expect(byPort).toEqual({ 1001: "ingress", 1002: "egress", 1003: "forward" });
    });
  });

  it("refuses to start with an invalid configuration, naming the variable and its value", async () => {
    const { loadIngestConfig } = await import("../../functions/ingest/config.ts");
    expect(() =>
      loadIngestConfig({ CLUSTER_NAME: "prod", TABLE_NAME: "t", AGGREGATION_SECONDS: "0" }),
    ).toThrow('AGGREGATION_SECONDS="0"');
    expect(() => loadIngestConfig({ CLUSTER_NAME: "prod" })).toThrow("TABLE_NAME=undefined");
    expect(() =>
      loadIngestConfig({ CLUSTER_NAME: "prod", TABLE_NAME: "t", INTERNAL_CIDRS: "10.0.0.0/8,bogus" }),
    ).toThrow('invalid CIDR "bogus"');
    for (const empty of ["", " , "]) {
      expect(() =>
        loadIngestConfig({ CLUSTER_NAME: "prod", TABLE_NAME: "t", INTERNAL_CIDRS: empty }),
      ).toThrow("INTERNAL_CIDRS");
    }
    expect(loadIngestConfig({ CLUSTER_NAME: "prod", TABLE_NAME: "t" }).INTERNAL_CIDRS).toEqual([
      "192.168.0.0/16",
    ]);
  });

  it("reads WORKLOAD_INTERFACE_PREFIXES as a list, the defaults when unset, and names it when refused", async () => {
    const { loadIngestConfig } = await import("../../functions/ingest/config.ts");
    const base = { CLUSTER_NAME: "prod", TABLE_NAME: "t" };
    expect(loadIngestConfig(base).WORKLOAD_INTERFACE_PREFIXES).toEqual(["cali", "eni", "vlan"]);
    expect(
      loadIngestConfig({ ...base, WORKLOAD_INTERFACE_PREFIXES: " cali, tap " }).WORKLOAD_INTERFACE_PREFIXES,
    ).toEqual(["cali", "tap"]);
    for (const [value, problem] of [
      ["", '"": empty'],
      ["cali,", '"": empty'],
      ["cali,,tap", '"": empty'],
      ["cali,cali", '"cali": given twice'],
      ["cali,abcdefghijklmnop", '"abcdefghijklmnop": longer than 15 characters'],
      ["cali,ta p", '"ta p": expected printable ASCII'],
      ["cali,tap/", '"tap/": expected printable ASCII'],
    ]) {
      expect(() => loadIngestConfig({ ...base, WORKLOAD_INTERFACE_PREFIXES: value })).toThrow(
        `WORKLOAD_INTERFACE_PREFIXES=${JSON.stringify(value)}: invalid workload interface prefix ${problem}`,
      );
    }
  });
});
