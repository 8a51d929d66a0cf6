// Review of the recent CLI changes (flows --group, RFC 3339 time arguments, replay's untimed count, the directory
// opened before the store, the usage-error hint). Each test here exposed a defect found in review, since fixed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConversationTally } from "../../cli/conversations.ts";
import type { Endpoint, FlowRecord } from "../../functions/core/types.ts";
import { runCli } from "./run.ts";

const PACKET =
  "calico-packet: IN=eth0 OUT=eni1 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0";

function flow(src: Endpoint, dst: Endpoint, reporter: string, at: string): FlowRecord {
  return {
    id: `${src.ip}-${reporter}-${at}`,
    cluster: "prod",
    bucket: at,
    src,
    dst,
    protocol: "TCP",
    dstPort: 5432,
    direction: "ingress",
    reporter,
    internal: true,
    packets: 1,
    bytes: 60,
    firstSeen: at,
    lastSeen: at,
    policy: null,
    tcpFlags: ["SYN"],
  };
}

describe("flows --group: what a conversation is", () => {
  it("keeps a node and a pod of a namespace named `node` apart", () => {
    // A node and a bare pod (no owner) named alike in a namespace called "node" both print as "node/web-1":
    // keyed by the printed text, they become one conversation with the totals, reporters and times of both.
    const node: Endpoint = {
      ip: "192.168.74.5",
      kind: "node",
      namespace: null,
      name: "web-1",
      workload: null,
      node: "web-1",
      resolved: true,
    };
    const pod: Endpoint = {
      ip: "192.168.22.9",
      kind: "pod",
      namespace: "node",
      name: "web-1",
      workload: null,
      node: "ip-192-168-12-9",
      resolved: true,
    };
    const db: Endpoint = {
      ip: "192.168.94.122",
      kind: "pod",
      namespace: "shop",
      name: "db-0",
      workload: { kind: "StatefulSet", name: "db" },
      node: "ip-192-168-12-9",
      resolved: true,
    };
    const tally = new ConversationTally();
    tally.add(flow(node, db, "ip-192-168-12-9", "2026-04-19T04:50:00.000Z"));
    tally.add(flow(pod, db, "ip-192-168-12-9", "2026-04-19T04:51:00.000Z"));
    const conversations = tally.conversations();
    expect(conversations).toHaveLength(2);
    // And a reader can tell them apart in the table.
    expect(new Set(conversations.map((c) => c.src)).size).toBe(2);
  });
});

describe("replay: records whose time is present but not a time", () => {
  it("refuses a line stamped with an impossible ISO time, as it refuses `Feb 30`, instead of storing it as untimed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-review-untimed-"));
    try {
      const input = [
        // The stamps are there, but name no instant: 30 February, hour 25.
        `2026-02-30T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}`,
        `2026-04-19T25:52:19Z ip-192-168-74-5 kernel: ${PACKET}`,
        // A valid one, stored at its time.
        `2026-04-19T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}`,
      ].join("\n");
      const run = await runCli(
        ["replay", "-", "--store", join(dir, "store"), "--cluster", "review", "--quiet"],
        { input, env: { KUBECONFIG: "", HOME: dir } },
      );
      expect(run.code).toBe(0);
      // As `Feb 30 04:52:19 host kernel: …` is ("the date 2-30 does not exist"): not stored at the time it is
      // read, under reporter "unknown" (the host name after the stamp is dropped with it), and not reported as a
      // record that "carried no time of its own".
      expect(run.stderr).toMatch(/replayed 3 lines: 1 calico records, 2 malformed/);
      expect(run.stderr).not.toContain("carried no time of their own");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("usage errors", () => {
  it.each([
    [["flows", "--workload", "api"], /^error: --workload and --pod need --namespace$/m],
    [["flows", "--since", "2026-04-19 04:00:00 z"], /^error: expected an ISO-8601 or RFC 3339 time/m],
  ])("%j: exit 2 with the same hint commander's usage errors get", async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    // `flows --bogus` (commander) is followed by the hint; the commands' own usage errors (UsageError, also
    // exit 2) are not, so a mistyped time says nothing of where the accepted forms are listed.
    expect(run.stderr).toContain("(add --help to see the options)");
  });
});
