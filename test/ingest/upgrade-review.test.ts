// Review: updating a running deployment. For minutes the old and the new function run side by side, retries of
// payloads the old version failed are run by the new one, and the table holds what earlier versions wrote. Each
// test writes the table as the named older commit left it (its item shapes, reproduced here by direct writes or
// by the current stores where the shapes did not change), then runs the current code on it.
import { readFileSync } from "node:fs";
import { DeleteCommand, DynamoDBDocumentClient, PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { DynamoHolderHistory } from "../../functions/adapters/dynamo/history.ts";
import { alertDaysPartition, expiresAt, historyPk, historySk } from "../../functions/adapters/dynamo/keys.ts";
import { StoreUnavailableError } from "../../functions/adapters/dynamo/retry.ts";
import { tableStores } from "../../functions/adapters/dynamo/stores.ts";
import { SnapshotDirectory } from "../../functions/adapters/kube/snapshot-directory.ts";
import {
  backfillMinute,
  type CloudWatchEvent,
  ingestDelivery,
  MINUTE_MS,
  PENDING_GRACE_MS,
} from "../../functions/core/coverage.ts";
import type { FlowWriteResult } from "../../functions/core/ports.ts";
import type { AlertCandidate, Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { handleQuery } from "../../functions/query/handler.ts";
import { restApiEvent } from "../support/api-events.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../support/kube-api-server.ts";
import { addReplicaSetPod, liveDirectoryOn, holderNames as names } from "../support/live-directory.ts";
import { COREDNS, clientIp, clusterRuntime, deniedLine, nodeName, T0 } from "../support/node-streams.ts";

const iso = (ms: number) => new Date(ms).toISOString();
const MIN = 60_000;

let ts: TestStore;
let kube: KubeApiServer;
beforeAll(async () => {
  ts = await startTestStore();
  kube = await startKubeApiServer();
});
afterAll(async () => {
  await kube?.close();
  await ts?.close();
});

describe("a backfill by b09034c finishing, a minute at a time, a delivery the previous version failed", () => {
  it("attributes each minute from the failed run's memo, so the flows that run stored count once", async () => {
    // Defect: b09034c lets a backfill finish a failed delivery's claim over several minutes one minute at a time
    // ("written under its contribution as its failed run wrote them (attributed from its memo)"), for the claims
    // that baa7d9f and earlier left pending for good. But the memo keeps span answers keyed by the exact span the
    // delivery asked ([ip, first line, last line] over the whole delivery), and RecordingDirectory#fromMemo answers a
    // span question only for that exact span: the minute's narrower span misses, the directory is asked afresh, and
    // once it answers otherwise (the pod since gone: the reason the memo exists) the minute's flows get other ids.
    // Impact: the first thing an operator does after the update, backfilling the stuck claims, counts the packets the
    // failed run stored twice: once under the pod, once as `unknown`.
    // Expected: a span inside a memo's span is answered from it (a span answer holds at every time in it), and the
    // backfill's flows take the failed run's ids.
    const tableName = await ts.freshTable();
    const stores = tableStores({ client: ts.client, tableName });
    const node = nodeName(3);
    const group = "/aws/eks/prod/nodes";
    const minute = T0 + 10 * MINUTE_MS;
    let id = 91_000_000;
    // Client 3 (svc3, on node 3) denied on coredns, three lines in each of two minutes: one delivery.
    const events: CloudWatchEvent[] = [0, 1].flatMap((m) =>
      [5_000, 20_000, 40_000].map((offset) => ({
        id: String(id++).padStart(56, "0"),
        timestamp: minute + m * MINUTE_MS + offset,
        message: deniedLine(node, clientIp(3), COREDNS, 53, true),
      })),
    );
    // baa7d9f's run: its flows are written, then its last write's tries run out; it keeps its memo and fails with
    // its claims unmarked. The failed-payloads queue did not keep the payload (or it expired there): only a backfill
    // can finish the claim.
    class MarkFails extends DynamoFlowStore {
      override async writeFlows(
        flows: readonly FlowRecord[],
        contribution: string,
        options?: { signal?: AbortSignal },
      ): Promise<FlowWriteResult> {
        await super.writeFlows(flows, contribution, options);
        throw new StoreUnavailableError("UpdateItem: ProvisionedThroughputExceededException after 10 tries");
      }
    }
    const live = clusterRuntime({
      store: new MarkFails({ client: ts.client, tableName }),
      memos: stores.memos,
    });
    await expect(
      ingestDelivery(
        { logGroup: group, logStream: node, logEvents: events },
        live.deps,
        stores.coverage,
        "live",
      ),
    ).rejects.toThrow(StoreUnavailableError);

    // Hours later, after the update: svc3's pod is gone (the snapshot the backfill is given, or the live cluster,
    // no longer has it).
    const now = Date.now() + PENDING_GRACE_MS + MINUTE_MS;
    const gone = new SnapshotDirectory({ pods: { items: [] }, nodes: { items: [] } });
    const base = clusterRuntime({ store: stores.store, memos: stores.memos }).deps;
    const deps = { ...base, pipeline: { ...base.pipeline, directory: gone } };
    const ref = { cluster: "prod", group, stream: node };
    for (const m of [minute, minute + MINUTE_MS]) {
      const result = await backfillMinute(
        ref,
        m,
        events.filter((e) => e.timestamp - (e.timestamp % MINUTE_MS) === m),
        deps,
        stores.coverage,
        { now: () => now },
      );
      expect(result.completed).toBe(3);
    }

    const page = await stores.store.queryFlows({
      cluster: "prod",
      since: iso(minute),
      until: iso(minute + 5 * MINUTE_MS),
      limit: 1000,
    });
    expect(page.items.map((f) => `${f.src.kind}:${f.src.name} ${f.bucket} ×${f.packets}`).sort()).toEqual([
      `pod:svc3-5d4f8b7c9-x ${iso(minute)} ×3`,
      `pod:svc3-5d4f8b7c9-x ${iso(minute + MINUTE_MS)} ×3`,
    ]);
  });
});

describe("alerts written before alert-day markers (696ced5)", () => {
  it("lists the alert b901760 opened that the new version keeps folding hits into, and deploy.md says of the others", async () => {
    // Defect: since 696ced5 an alert listing reads only the days that have an `ALERTDAYS#<cluster>` marker, and a
    // marker is put only when a window opens. b901760 (the commit before) opened windows without markers, so after
    // the update every alert of the days before it is gone from GET /alerts and `calico-flows alerts`, and so is
    // an alert of the update's day that is still open and taking hits, until some other window opens that day.
    // flow-store.md says "none was deployed before them"; deploy.md itself tells how to update a stack first
    // deployed before 36ed5cf, an earlier commit, and says nothing of the alerts such a stack would lose.
    // Impact: during and after the update, on-call's listing of what alerted (yesterday's incident, the storm under
    // way) comes back empty; nothing says alerts are missing.
    // Expected: alerts stored by the previous version are listed (markers written for the days the table already
    // holds, or listings that also read the days before the first marker), or deploy.md gives the migration step.
    // Done: a fold marks its alert's day, so the open alert is listed; reading every unmarked day before the first
    // marker would cost every listing of a cluster with few alerts a Query per day, so deploy.md says what an update
    // leaves unlisted and where it is.
    const tableName = await ts.freshTable();
    const upgradeAt = Date.parse("2026-12-07T08:19:52Z");
    const old = new DynamoFlowStore({ client: ts.client, tableName, now: () => upgradeAt - 30 * MIN });
    const yesterday = Date.parse("2026-12-06T14:02:00Z");
    const today = Date.parse("2026-12-07T07:55:00Z");
    await old.applyAlerts([candidate("shop/Deployment/web", yesterday, 4)], "old-delivery-1", WINDOW);
    await old.applyAlerts([candidate("shop/Deployment/api", today, 2)], "old-delivery-2", WINDOW);
    // b901760's openWindow put no day marker (`git show b901760:functions/adapters/dynamo/alerts.ts`); its record,
    // slots and state are those the current code writes, so the table it left is this one without the markers.
    const doc = DynamoDBDocumentClient.from(ts.client);
    for (const day of ["2026-12-06", "2026-12-07"]) {
      await doc.send(
        new DeleteCommand({ TableName: tableName, Key: { pk: alertDaysPartition("prod"), sk: day } }),
      );
    }

    // The new version: a fresh container folds the storm's later hits into today's open window.
    const now = upgradeAt + 10 * MIN;
    const store = new DynamoFlowStore({ client: ts.client, tableName, now: () => now });
    await store.applyAlerts(
      [candidate("shop/Deployment/api", today + 5 * MIN, 30)],
      "new-delivery-1",
      WINDOW,
    );

    // GET /alerts for the last two days, every page followed.
    const items: { key: { src: string }; count: number }[] = [];
    let cursor: string | null = null;
    do {
      const answer = await handleQuery(
        restApiEvent("/alerts", {
          since: "2026-12-06T00:00:00Z",
          until: iso(now),
          ...(cursor === null ? {} : { cursor }),
        }),
        { store, cluster: "prod", now: () => now },
      );
      expect(answer.statusCode).toBe(200);
      const page = JSON.parse(answer.body) as { items: typeof items; cursor: string | null };
      items.push(...page.items);
      cursor = page.cursor;
    } while (cursor !== null);
    expect(items.map((a) => `${a.key.src} ×${a.count}`)).toEqual(["shop/Deployment/api ×32"]);
    const deploy = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");
    const update = deploy.slice(deploy.indexOf("### Updating a deployed stack"));
    expect(update).toMatch(/Alerts opened before day markers \(696ced5\)/);
    expect(update).toMatch(/ALERTS#<cluster>#<day>/);
  });
});

describe("holder history written before seenAt (dbaec2d)", () => {
  it("ends a pod a6de762 remembered alive at a look that shows the address free, as it ends one the new version saw", async () => {
    // Defect: since dbaec2d a look of the live directory ends a remembered holder only if the history says when a
    // directory saw it hold the address (`seenAt`). a6de762 wrote live holders without `seenAt`, and treated such a
    // holder as ended by the first look that did not find it. The new version never ends one: a pod that a6de762
    // remembered alive, whose end no container wrote (Lambda recycled it first), holds its address in every new
    // container's answers until another pod takes the address or the item expires (30 days).
    // Impact: denials to a freed address (clients with stale endpoints, a scanner) are attributed to a gone pod and
    // its workload, stored as resolved and alerted on under that workload's name, where a6de762 answered "absent";
    // a holder the new version remembered is ended alike (the second address, below).
    // Expected: an item without `seenAt` is read as seen when it was written (its TTL, `retentionDays` after that
    // write, tells when), or as its validFrom, so a look after that which shows the address free ends it.
    const tableName = await ts.freshTable();
    const clock = { t: Date.parse("2026-12-07T06:30:00Z") };
    const history = new DynamoHolderHistory({ client: ts.client, tableName, now: () => clock.t });
    kube.store.clear();
    kube.store.put("namespaces", kubeObjects.namespace({ name: "shop" }));
    const created = clock.t - 60 * MIN;
    const oldIp = "192.168.45.7";
    const newIp = "192.168.45.8";
    addReplicaSetPod(kube, "api-5d8f7-q7k2z", oldIp, created);
    addReplicaSetPod(kube, "web-6b7c8-x4v9n", newIp, created);

    // 06:30, a6de762: a container attributes api's traffic and remembers it alive, as that commit's remember()
    // wrote it (no seenAt), then Lambda recycles the container.
    const doc = DynamoDBDocumentClient.from(ts.client);
    await doc.send(
      new PutCommand({
        TableName: tableName,
        Item: {
          pk: historyPk("prod", oldIp),
          sk: historySk(created, "uid-api-5d8f7-q7k2z"),
          kind: "pod",
          namespace: "shop",
          name: "api-5d8f7-q7k2z",
          workload: { kind: "ReplicaSet", name: "api-5d8f7" },
          node: "ip-192-168-0-1",
          uid: "uid-api-5d8f7-q7k2z",
          validFrom: created,
          expiresAt: expiresAt(clock.t, 30, clock.t),
        },
      }),
    );
    // 07:00, after the update: a container of the new version attributes web's traffic, remembers it (with
    // seenAt), and is recycled.
    clock.t = Date.parse("2026-12-07T07:00:00Z");
    const seen = liveDirectoryOn(kube, { cluster: "prod", timeoutMs: 2_000, now: () => clock.t, history });
    expect(names(await seen.resolve([{ ip: newIp, at: clock.t - 1_000 }]))).toEqual(["pod:web-6b7c8-x4v9n"]);

    // 07:05 both pods are deleted; nobody takes their addresses.
    kube.store.delete("pods", "api-5d8f7-q7k2z", "shop");
    kube.store.delete("pods", "web-6b7c8-x4v9n", "shop");
    // 07:10 a new container answers denials of 07:09 to both addresses: its look finds them free.
    clock.t = Date.parse("2026-12-07T07:10:00Z");
    const dir = liveDirectoryOn(kube, { cluster: "prod", timeoutMs: 2_000, now: () => clock.t, history });
    await dir.resolve([
      { ip: oldIp, at: clock.t - 1_000 },
      { ip: newIp, at: clock.t - 1_000 },
    ]);
    // 07:20 it answers denials of 07:15: nobody held either address then, as its own look of 07:10 showed.
    clock.t = Date.parse("2026-12-07T07:20:00Z");
    const at = Date.parse("2026-12-07T07:15:00Z");
    expect(
      names(
        await dir.resolve([
          { ip: newIp, at },
          { ip: oldIp, at },
        ]),
      ),
    ).toEqual(["absent", "absent"]);
  });
});

const WINDOW = { windowMs: 15 * MIN };

function endpoint(ip: string, workload: string): Endpoint {
  return {
    ip,
    kind: "pod",
    namespace: "shop",
    name: `${workload}-5d4f8b7c9-x`,
    workload: { kind: "Deployment", name: workload },
    node: nodeName(1),
    resolved: true,
  };
}

function candidate(src: string, at: number, hits: number): AlertCandidate {
  const workload = src.split("/")[2] as string;
  return {
    key: { cluster: "prod", src, dst: "shop/Deployment/db", protocol: "TCP", dstPort: 5432 },
    src: endpoint(workload === "web" ? "192.168.22.7" : "192.168.22.8", workload),
    dst: endpoint("192.168.94.122", "db"),
    direction: "ingress",
    reporter: nodeName(1),
    policy: null,
    hits,
    firstSeen: iso(at),
    lastSeen: iso(at),
    severity: "high",
    reason: "internal-denial",
  };
}
