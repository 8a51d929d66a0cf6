// Generates the bundled demo: a fictional cluster "demo" (kubectl JSON snapshots of pods, nodes and
// namespaces) and ten minutes of its nodes' kernel logs, with internal denials, an external port scan, a pod
// whose IP is reused by its replacement, hostNetwork traffic, IPv6, JSON-wrapped lines, noise and two
// malformed lines. Deterministic: `node examples/demo/generate.ts` rewrites the same files.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = import.meta.dirname;
const T0 = Date.parse("2026-04-19T04:50:00Z");
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

let seed = 42;
const random = () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
  return seed / 2_147_483_648;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

const nodes = [
  { name: "ip-192-168-74-5.eu-west-1.compute.internal", host: "ip-192-168-74-5", ip: "192.168.74.5" },
  { name: "ip-192-168-12-9.eu-west-1.compute.internal", host: "ip-192-168-12-9", ip: "192.168.12.9" },
];

interface PodSpec {
  ns: string;
  name: string;
  ip: string;
  node: (typeof nodes)[number];
  owner?: { kind: string; name: string };
  labels?: Record<string, string>;
  created: number;
  deleted?: number;
  hostNetwork?: boolean;
}

const pods: PodSpec[] = [
  {
    ns: "customer-a",
    name: "web-7d9f8b6c5-x2k4q",
    ip: "192.168.22.247",
    node: nodes[0],
    owner: { kind: "ReplicaSet", name: "web-7d9f8b6c5" },
    labels: { app: "web", "pod-template-hash": "7d9f8b6c5" },
    created: T0 - 86_400_000,
  },
  {
    ns: "customer-b",
    name: "db-0",
    ip: "192.168.94.122",
    node: nodes[1],
    owner: { kind: "StatefulSet", name: "db" },
    labels: { app: "db" },
    created: T0 - 172_800_000,
  },
  {
    ns: "customer-b",
    name: "api-5c8d7f9b4-m7p2z",
    ip: "192.168.30.17",
    node: nodes[0],
    owner: { kind: "ReplicaSet", name: "api-5c8d7f9b4" },
    labels: { app: "api", "pod-template-hash": "5c8d7f9b4" },
    created: T0 - 3_600_000,
  },
  // The CronJob "report" runs every 6 minutes (Job names carry the scheduled minute since the epoch). The run
  // at T0-1min finishes at T0+4min; its IP is handed to the next run's pod two minutes later.
  {
    ns: "customer-a",
    name: `report-${T0 / 60_000 - 1}-abcde`,
    ip: "192.168.41.8",
    node: nodes[1],
    owner: { kind: "Job", name: `report-${T0 / 60_000 - 1}` },
    created: T0 - 60_000,
    deleted: T0 + 240_000,
  },
  {
    ns: "customer-a",
    name: `report-${T0 / 60_000 + 6}-fghij`,
    ip: "192.168.41.8",
    node: nodes[1],
    owner: { kind: "Job", name: `report-${T0 / 60_000 + 6}` },
    created: T0 + 360_000,
  },
  {
    ns: "monitoring",
    name: "node-exporter-8xk2p",
    ip: nodes[0].ip,
    node: nodes[0],
    owner: { kind: "DaemonSet", name: "node-exporter" },
    created: T0 - 604_800_000,
    hostNetwork: true,
  },
  {
    ns: "kube-system",
    name: "coredns-6d4b75cb6d-q9w8e",
    ip: "192.168.55.3",
    node: nodes[1],
    owner: { kind: "ReplicaSet", name: "coredns-6d4b75cb6d" },
    labels: { "k8s-app": "kube-dns", "pod-template-hash": "6d4b75cb6d" },
    created: T0 - 604_800_000,
  },
];

const podJson = (p: PodSpec) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name: p.name,
    namespace: p.ns,
    uid: `uid-${p.name}`,
    creationTimestamp: iso(p.created),
    ...(p.deleted ? { deletionTimestamp: iso(p.deleted) } : {}),
    labels: p.labels ?? {},
    ownerReferences: p.owner
      ? [
          {
            apiVersion: "apps/v1",
            kind: p.owner.kind,
            name: p.owner.name,
            uid: `uid-${p.owner.name}`,
            controller: true,
          },
        ]
      : [],
  },
  spec: { nodeName: p.node.name, hostNetwork: p.hostNetwork === true },
  status: {
    phase: p.deleted ? "Succeeded" : "Running",
    hostIP: p.node.ip,
    podIP: p.ip,
    podIPs: [{ ip: p.ip }],
    startTime: iso(p.created + 2_000),
    containerStatuses: [
      {
        name: "main",
        ready: !p.deleted,
        restartCount: 0,
        state: p.deleted
          ? {
              terminated: {
                exitCode: 0,
                reason: "Completed",
                startedAt: iso(p.created + 3_000),
                finishedAt: iso(p.deleted),
              },
            }
          : { running: { startedAt: iso(p.created + 3_000) } },
      },
    ],
  },
});

const namespaces = ["customer-a", "customer-b", "kube-system", "monitoring"].map((name) => ({
  apiVersion: "v1",
  kind: "Namespace",
  metadata: {
    name,
    uid: `uid-ns-${name}`,
    creationTimestamp: iso(T0 - 30 * 86_400_000),
    labels: {
      "kubernetes.io/metadata.name": name,
      ...(name.startsWith("customer-") ? { "baseten.co/organization": "true" } : {}),
    },
  },
}));

const nodeJson = (n: (typeof nodes)[number]) => ({
  apiVersion: "v1",
  kind: "Node",
  metadata: {
    name: n.name,
    uid: `uid-${n.host}`,
    creationTimestamp: iso(T0 - 30 * 86_400_000),
    labels: { "kubernetes.io/hostname": n.name },
  },
  status: {
    addresses: [
      { type: "InternalIP", address: n.ip },
      { type: "Hostname", address: n.name },
    ],
  },
});

const list = (items: unknown[]) => ({
  apiVersion: "v1",
  kind: "List",
  metadata: { resourceVersion: "" },
  items,
});

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
function syslogTime(ms: number): string {
  const d = new Date(ms);
  const day = String(d.getUTCDate()).padStart(2, " ");
  const hms = [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
  return `${MONTHS[d.getUTCMonth()]} ${day} ${hms}`;
}

const mac = "0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00";
let packetId = 52_000;
function tcp(
  at: number,
  node: (typeof nodes)[number],
  inIf: string,
  outIf: string,
  src: string,
  dst: string,
  dport: number,
): string {
  packetId++;
  const sport = 32_768 + Math.floor(random() * 28_000);
  return `${syslogTime(at)} ${node.host} kernel: calico-packet: IN=${inIf} OUT=${outIf} MAC=${mac} SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${packetId} DF PROTO=TCP SPT=${sport} DPT=${dport} WINDOW=62727 RES=0x00 SYN URGP=0`;
}

const lines: { at: number; text: string }[] = [];
const add = (at: number, text: string) => lines.push({ at, text });

// customer-a/web keeps trying customer-b/db on 5432 (a policy bug): logged on db's node as it arrives.
for (let i = 0; i < 120; i++) {
  const at = T0 + Math.floor(random() * 600_000);
  add(at, tcp(at, nodes[1], "eth0", "eni3b1f0c2a9d4", "192.168.22.247", "192.168.94.122", 5432));
}
// customer-b/api → customer-a/web:8080, logged on the shared node as it leaves api.
for (let i = 0; i < 40; i++) {
  const at = T0 + Math.floor(random() * 600_000);
  add(at, tcp(at, nodes[0], "eni8d48114818c", "eni77aa10fe321", "192.168.30.17", "192.168.22.247", 8080));
}
// The report job (then its replacement on the same IP) probing customer-b/api:9090.
for (let i = 0; i < 30; i++) {
  const at = T0 + (i < 15 ? 30_000 + i * 12_000 : 380_000 + (i - 15) * 12_000);
  add(at, tcp(at, nodes[1], "eni5512ab34cd0", "eth0", "192.168.41.8", "192.168.30.17", 9090));
}
// node-exporter on the host network scraping customer-a/web's metrics port: the source is the node.
for (let i = 0; i < 20; i++) {
  const at = T0 + i * 29_000;
  add(at, tcp(at, nodes[0], "", "eni77aa10fe321", nodes[0].ip, "192.168.22.247", 9102));
}
// An internet scanner walking customer-a/web's ports.
for (let i = 0; i < 60; i++) {
  const at = T0 + 120_000 + i * 1_500;
  add(at, tcp(at, nodes[0], "eth0", "eni77aa10fe321", "203.0.113.77", "192.168.22.247", 20 + i * 37));
}
// DNS from an address nobody holds any more, inside the cluster range.
for (let i = 0; i < 12; i++) {
  const at = T0 + i * 45_000;
  packetId++;
  add(
    at,
    `${syslogTime(at)} ${nodes[1].host} kernel: calico-packet: IN=eni9c9c9c9c9c9 OUT=eth0 MAC=${mac} SRC=192.168.99.14 DST=192.168.55.3 LEN=71 TOS=0x00 PREC=0x00 TTL=64 ID=${packetId} PROTO=UDP SPT=41000 DPT=53 LEN=51`,
  );
}
// IPv6 ICMPv6 echo from outside, and a journald record shipped by Fluent Bit as JSON.
for (let i = 0; i < 6; i++) {
  const at = T0 + 200_000 + i * 10_000;
  add(
    at,
    `${syslogTime(at)} ${nodes[0].host} kernel: calico-packet: IN=eth0 OUT=eni77aa10fe321 MAC=${mac} SRC=2001:0db8:0000:0000:0000:0000:0000:0042 DST=fd00:0000:0000:0000:0000:0000:0000:0017 LEN=104 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=${i + 1}`,
  );
}
for (let i = 0; i < 8; i++) {
  const at = T0 + 300_000 + i * 20_000;
  packetId++;
  const message = `calico-packet: IN=eth0 OUT=eni3b1f0c2a9d4 MAC=${mac} SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${packetId} DF PROTO=TCP SPT=${40_000 + i} DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0`;
  add(
    at,
    JSON.stringify({
      _HOSTNAME: nodes[1].host,
      SYSLOG_IDENTIFIER: "kernel",
      __REALTIME_TIMESTAMP: String(at * 1000),
      MESSAGE: message,
    }),
  );
}
// Noise every log group carries, and two lines damaged in transit.
for (let i = 0; i < 25; i++) {
  const at = T0 + i * 24_000;
  add(
    at,
    `${syslogTime(at)} ${pick(nodes).host} kubelet[2817]: I0419 ${i} reconciler.go:357] "operationExecutor.VerifyControllerAttachedVolume started"`,
  );
}
add(
  T0 + 500_000,
  `${syslogTime(T0 + 500_000)} ${nodes[0].host} kernel: calico-packet: IN=eth0 OUT=eni77aa10fe321 SRC=192.168.22.`,
);
add(
  T0 + 510_000,
  `${syslogTime(T0 + 510_000)} ${nodes[0].host} kernel: calico-packet: IN=eth0 OUT= SRC=not-an-ip DST=192.168.94.122 LEN=60 PROTO=TCP SPT=1 DPT=2`,
);

lines.sort((a, b) => a.at - b.at);
writeFileSync(join(dir, "node-logs.log"), `${lines.map((l) => l.text).join("\n")}\n`);
writeFileSync(join(dir, "pods.json"), `${JSON.stringify(list(pods.map(podJson)), null, 2)}\n`);
writeFileSync(join(dir, "nodes.json"), `${JSON.stringify(list(nodes.map(nodeJson)), null, 2)}\n`);
writeFileSync(join(dir, "namespaces.json"), `${JSON.stringify(list(namespaces), null, 2)}\n`);
process.stdout.write(
  `wrote ${lines.length} log lines, ${pods.length} pods, ${nodes.length} nodes to ${dir}\n`,
);
