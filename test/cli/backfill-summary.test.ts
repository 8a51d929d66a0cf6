// The summary `calico-flows backfill` prints, against a local CloudWatch Logs endpoint: what it counts is what
// the store holds.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import { type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { ndjson, runCli } from "./run.ts";

const MINUTE = 60_000;
const T0 = Math.floor(Date.now() / MINUTE) * MINUTE - 10 * MINUTE;
const iso = (ms: number) => new Date(ms).toISOString();

let logs: LocalLogs;
let dir: string;
beforeAll(async () => {
  logs = await startLocalLogs();
  dir = mkdtempSync(join(tmpdir(), "cf-backfill-summary-"));
});
afterAll(async () => {
  await logs.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("calico-flows backfill's summary", () => {
  it("counts each address stored unresolved once, however many minutes (batches) it came in", async () => {
    // Three internal addresses nobody can resolve (no pods file, no kubeconfig), denied in each of four minutes.
    const line = (at: number, src: string, port: number) =>
      `${iso(at)} ip-192-168-0-5 kernel: calico-packet: IN=eth0 OUT=eni0a1b2c3d4e5 SRC=${src} ` +
      `DST=192.168.60.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=${port} WINDOW=1 RES=0x00 SYN URGP=0`;
    const events = [0, 1, 2, 3].flatMap((m) => [
      { timestamp: T0 + m * MINUTE + 1000, message: line(T0 + m * MINUTE + 1000, "192.168.50.1", 5432) },
      { timestamp: T0 + m * MINUTE + 2000, message: line(T0 + m * MINUTE + 2000, "192.168.50.2", 8080) },
    ]);
    logs.put("nodes", "ip-192-168-0-5", events);
    const store = ["--store", join(dir, "store"), "--cluster", "summary"];
    const range = ["--since", iso(T0), "--until", iso(T0 + 4 * MINUTE)];
    const run = await runCli(["backfill", "--log-group", "nodes", ...range, ...store, "--quiet"], {
      env: {
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        KUBECONFIG: "",
        HOME: dir,
      },
    });
    expect(run.code, run.stderr).toBe(0);
    const listed = await runCli(["flows", ...store, ...range, "--json"]);
    const flows = ndjson<FlowRecord>(listed.stdout);
    expect(flows.reduce((n, f) => n + f.packets, 0)).toBe(events.length);
    const addresses = new Set(
      flows
        .flatMap((f) => [f.src, f.dst])
        .filter((e) => !e.resolved)
        .map((e) => e.ip),
    );
    expect([...addresses].sort()).toEqual(["192.168.50.1", "192.168.50.2", "192.168.60.1"]);
    expect(run.stderr).toMatch(/, 3 unresolved endpoints\n/);
  });

  it("refuses to run without --table or --store, before reading anything", async () => {
    logs.put("refused", "ip-192-168-0-9", [{ timestamp: T0, message: "x" }]);
    const before = logs.calls.length;
    const run = await runCli(["backfill", "--log-group", "refused", "--since", "1h", "--cluster", "prod"], {
      env: {
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
      },
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /backfill stores the history of the deployed log groups, so name where to store/,
    );
    expect(run.stderr).toMatch(/--table <the stack's TableName output>/);
    expect(logs.calls.length).toBe(before);
  });
});
