// Live attribution remembering holders in the real DynamoDB history (dynalite): a later container answers
// lines from before a pod's replacement, as the ingest Lambda does after a cold start or a backfill.
import { afterAll, beforeAll, expect, it } from "vitest";
import { DynamoHolderHistory } from "../../../functions/adapters/dynamo/history.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { type KubeApiServer, kubeObjects, startKubeApiServer } from "../../support/kube-api-server.ts";
import { liveDirectoryOn, holderNames as names } from "../../support/live-directory.ts";

const T = Date.parse("2025-04-19T04:00:00Z");
const MIN = 60_000;
let server: KubeApiServer;
let store: TestStore;

beforeAll(async () => {
  [server, store] = await Promise.all([startKubeApiServer(), startTestStore()]);
});
afterAll(async () => {
  await Promise.all([server.close(), store.close()]);
});

it("answers lines older than the current pod from the DynamoDB history, across containers", async () => {
  const history = new DynamoHolderHistory({ client: store.client, tableName: store.tableName, now: () => T });
  const clock = { t: T + 10 * MIN };
  const container = () => liveDirectoryOn(server, { cluster: "prod", history, now: () => clock.t });
  const ip = "192.168.40.7";
  const hostIp = "192.168.0.21";
  server.store.put(
    "pods",
    kubeObjects.pod({ name: "worker-a", namespace: "jobs", ip, created: T, uid: "uid-a" }),
  );
  server.store.put(
    "pods",
    kubeObjects.pod({
      name: "kube-proxy-q",
      namespace: "kube-system",
      ip: hostIp,
      created: T,
      hostNetwork: true,
      node: "node-q",
    }),
  );

  const first = container();
  expect(
    names(
      await first.resolve([
        { ip, at: T + 9 * MIN },
        { ip: hostIp, at: T + 9 * MIN },
      ]),
    ),
  ).toEqual(["pod:worker-a", "node:node-q"]);

  server.store.delete("pods", "worker-a", "jobs");
  server.store.put(
    "pods",
    kubeObjects.pod({ name: "worker-b", namespace: "jobs", ip, created: T + 11 * MIN, uid: "uid-b" }),
  );
  clock.t = T + 12 * MIN;
  await first.resolve([{ ip, at: T + 11 * MIN + 30_000 }]);
  expect(first.stats()).toMatchObject({ historyErrors: 0 });

  // What DynamoDB now says about the IP at the old line's time: worker-a, with the end the first container saw.
  const remembered = await history.holdersOf("prod", ip, T + 9 * MIN);
  expect(remembered.map((h) => [h.name, h.validTo])).toEqual([["worker-a", T + 12 * MIN]]);

  const cold = container();
  const answers = await cold.resolve([
    { ip, at: T + 9 * MIN },
    { ip, at: T + 11 * MIN + 30_000 },
    { ip, at: T - MIN },
  ]);
  expect(names(answers)).toEqual(["pod:worker-a", "pod:worker-b", "absent"]);
  expect(cold.stats()).toMatchObject({ historyFound: 1, historyErrors: 0 });
});
