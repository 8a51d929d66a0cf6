// A sample alert and its endpoints (customer-a/web denied on customer-b/db:8012), shared by the alert tests.
import type { AlertRecord, Endpoint } from "../../functions/core/types.ts";

export const web: Endpoint = {
  ip: "192.168.22.247",
  kind: "pod",
  namespace: "customer-a",
  name: "web-5f7c9-abcde",
  workload: { kind: "Deployment", name: "web" },
  node: "ip-192-168-22-10",
  resolved: true,
};

export const db: Endpoint = {
  ip: "192.168.94.122",
  kind: "pod",
  namespace: "customer-b",
  name: "db-0",
  workload: { kind: "StatefulSet", name: "db" },
  node: "ip-192-168-94-7",
  resolved: true,
};

/** The sample alert, with `extra` fields overriding its defaults. */
export function sampleAlert(extra: Partial<AlertRecord> = {}): AlertRecord {
  return {
    id: "al_0001",
    cluster: "prod",
    key: {
      cluster: "prod",
      src: "customer-a/Deployment/web",
      dst: "customer-b/StatefulSet/db",
      protocol: "TCP",
      dstPort: 8012,
    },
    src: web,
    dst: db,
    protocol: "TCP",
    dstPort: 8012,
    direction: "ingress",
    reporter: "ip-192-168-74-5",
    policy: null,
    severity: "high",
    reason: "internal-denial",
    count: 12,
    foldedBefore: 0,
    openedAt: "2026-04-19T04:52:19.000Z",
    windowEnd: "2026-04-19T05:07:19.000Z",
    firstSeen: "2026-04-19T04:52:19.000Z",
    lastSeen: "2026-04-19T04:53:02.000Z",
    delivery: "pending",
    ...extra,
  };
}
