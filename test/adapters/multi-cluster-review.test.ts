// Several clusters, one stack each, in one account and region (dev, staging, prod): what the platform team runs
// from a terminal must act on, and store under, the cluster it means, never on or under another one. The real
// `calico-flows` binary against local implementations: the HTTPS Kubernetes API test server behind the panic
// function (test/panic/harness.ts), a loopback endpoint standing in for EventBridge Scheduler, dynalite as the
// stack's table, fauxqs as its failed-payloads queue, the local CloudWatch Logs endpoint, and the query function
// behind a SigV4-checking stand-in for API Gateway.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { handleQuery } from "../../functions/query/handler.ts";
import { calicoLine, PODS_FILE, payloadOf, T0 } from "../backfill/fixtures.ts";
import { runCli, SAMPLE } from "../cli/run.ts";
import {
  CLUSTER,
  FUNCTION_ARN,
  lambdaContext,
  type PanicHarness,
  resetPanicWorld,
  SCHEDULE_GROUP,
  SCHEDULER_ROLE,
  type SigV4Gateway,
  startPanicHarness,
  startSigV4Gateway,
  storedPanicPolicy,
} from "../panic/harness.ts";
import { dataRecord, localQueue, redriveEvents, STREAM } from "../redrive/fixtures.ts";
import { type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import { type LocalSns, REGION, startLocalSns } from "../support/fauxqs.ts";

/** The EKS ARN `aws eks update-kubeconfig` names a cluster's kubeconfig entry (and context) by. */
const eksArn = (name: string) => `arn:aws:eks:${REGION}:123456789012:cluster/${name}`;

// The suite's fake credentials (vitest.config.ts), which the binary's default credential chain picks up.
const CREDENTIALS = { AWS_ACCESS_KEY_ID: "AKIDTESTTESTTEST", AWS_SECRET_ACCESS_KEY: "test-secret" };
const PRINCIPALS = new Map([
  [
    CREDENTIALS.AWS_ACCESS_KEY_ID,
    { secretAccessKey: CREDENTIALS.AWS_SECRET_ACCESS_KEY, arn: "arn:aws:iam::123456789012:user/oncall" },
  ],
]);

const scheduler = mockClient(SchedulerClient);
let h: PanicHarness;
let ts: TestStore;
let sqs: LocalSns;
let logs: LocalLogs;
let scratch: string;
/** No kubeconfig of the machine running the tests is ever read. */
let noKube: NodeJS.ProcessEnv;

beforeAll(async () => {
  [h, ts, sqs, logs] = await Promise.all([
    startPanicHarness(),
    startTestStore(),
    startLocalSns(),
    startLocalLogs(),
  ]);
  scratch = mkdtempSync(join(tmpdir(), "cf-multi-cluster-"));
  noKube = { KUBECONFIG: "", HOME: scratch };
});
afterAll(async () => {
  scheduler.restore();
  await Promise.all([h?.close(), ts?.close(), sqs?.close(), logs?.close()]);
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});
beforeEach(async () => {
  await resetPanicWorld(h, scheduler);
});

/** A loopback stand-in for EventBridge Scheduler (REST JSON): keeps the CreateSchedule bodies the binary sends. */
async function startScheduler(): Promise<{
  url: string;
  created: Record<string, unknown>[];
  server: Server;
}> {
  const created: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => {
      if (req.method === "POST") created.push(JSON.parse(body || "{}") as Record<string, unknown>);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ ScheduleArn: `arn:aws:scheduler:${REGION}:123456789012:schedule/g/s` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, created, server };
}

describe("panic --direct in an account of several clusters", () => {
  it("schedules a self-expiry that the stack's panic function carries out", async () => {
    // Defect: `panic apply --direct` acts for the default cluster "local" unless --cluster is given, and neither
    // docs/panic.md ("CLI") nor deploy.md (the outputs `ScheduleGroupName`, `SchedulerRoleArn`, `PanicFunctionArn` for
    // "`calico-flows panic --direct` with self-expiry") asks for it. The expiry schedule it writes into the stack's
    // group carries `"cluster":"local"`, and the stack's panic function, which manages prod-eu, answers it
    // `skipped` ("expiry for local/allow-all ignored"): a success, so no retry, no dead letter, no alarm.
    // Impact: the allow-all policy announced as expiring in 30 minutes stays on prod-eu for good, customer namespaces
    // without isolation, and its audit record and SNS announcement are filed under "local" (a subscription filter
    // on `cluster` drops it; `panic status --api` shows no such action).
    // Expected: either the command refuses to act without knowing the cluster (a usage error, nothing applied; it
    // could also take the name from the kubeconfig's EKS cluster ARN), or the expiry it schedules reverts the policy.
    const kubeconfig = await h.kube.writeKubeconfig({ contextName: eksArn(CLUSTER) });
    const schedulerApi = await startScheduler();
    try {
      const applied = await runCli(
        [
          "panic",
          "apply",
          "--direct",
          "--kubeconfig",
          kubeconfig,
          "--reason",
          "INC-9 payments down",
          "--ttl",
          "30",
          "--schedule-group",
          SCHEDULE_GROUP,
          "--scheduler-role-arn",
          SCHEDULER_ROLE,
          "--expiry-function-arn",
          FUNCTION_ARN,
          "--store",
          join(scratch, "audit"),
        ],
        { env: { AWS_ENDPOINT_URL_SCHEDULER: schedulerApi.url, AWS_REGION: REGION } },
      );
      if (applied.code !== 0) {
        // Refused: nothing may have been opened up.
        expect(applied.code, applied.stderr).toBe(2);
        expect(storedPanicPolicy(h)).toBeUndefined();
        return;
      }
      expect(storedPanicPolicy(h), applied.stderr).toBeDefined();
      expect(schedulerApi.created).toHaveLength(1);
      // The schedule fires: Scheduler invokes the stack's panic function with the schedule's input.
      const input = (schedulerApi.created[0]?.Target as { Input?: string } | undefined)?.Input ?? "{}";
      const fired = await h.invoke(JSON.parse(input), h.runtime(), lambdaContext());
      expect(fired.result, String(fired.message)).toBe("expired");
      expect(storedPanicPolicy(h), "the allow-all policy is still applied after its expiry").toBeUndefined();
    } finally {
      schedulerApi.server.close();
    }
  });

  it("does not open up a cluster that the kubeconfig names as another EKS cluster than --cluster", async () => {
    // Defect: `panic apply --direct --cluster prod-eu` writes the allow-all policy to whatever cluster the kubeconfig's
    // current context points at, here an entry `aws eks update-kubeconfig` named after the EKS cluster staging. The
    // answer, the audit record (PANIC#prod-eu) and the SNS announcement all say "applied on prod-eu".
    // Impact: with dev, staging and prod contexts in one kubeconfig (the usual set-up of a platform team), pressing
    // the button for prod during a prod incident opens up staging, tells everyone prod is open, and leaves prod
    // broken; the revert later run "for prod" removes staging's policy, or finds nothing on prod.
    // Expected: the EKS cluster the kubeconfig names (its cluster entry's ARN) is not --cluster: refused before
    // anything is written.
    const staging = await h.kube.writeKubeconfig({ contextName: eksArn("staging") });
    const run = await runCli([
      "panic",
      "apply",
      "--direct",
      "--kubeconfig",
      staging,
      "--cluster",
      CLUSTER,
      "--reason",
      "INC-9 payments down on prod-eu",
      "--store",
      join(scratch, "audit-2"),
    ]);
    expect(run.code, run.stdout).not.toBe(0);
    expect(storedPanicPolicy(h), "staging was opened up for prod-eu's incident").toBeUndefined();
    expect(h.kube.requests().filter((r) => r.method !== "GET")).toEqual([]);
  });
});

describe("commands that write the stack's table", () => {
  it("redrive into --table refuses the default cluster before deleting a message", async () => {
    // Defect: `redrive --queue-url <FailedPayloadsQueueUrl> --table <TableName>` without --cluster stores the failed
    // payloads' flows and alerts under the default cluster "local" (FLOW#local#…, COVER#local#…) and then deletes each
    // message from the queue. requireStoreNamed refuses a defaulted store for exactly this reason ("data moved out of
    // the deployed stack's reach"), and the help says "--table … with the stack's --cluster", but the cluster is
    // defaulted silently.
    // Impact: the redriven flows are in the stack's table but under a cluster its query API and alerts never read;
    // the messages are gone from the queue, and a later backfill for the right cluster counts those events afresh
    // (their coverage claims are under "local").
    // Expected: with --table and no --cluster, a usage error (exit 2) before the queue is read; the message stays.
    const table = await ts.freshTable();
    const url = await localQueue(sqs, "calico-flows-prod-ingest-failures");
    const body = dataRecord(encodeSubscriptionData(payloadOf(STREAM, redriveEvents(3, 0))));
    await sqs.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
    const run = await runCli(
      [
        "redrive",
        "--queue-url",
        url,
        "--table",
        table,
        "--pods",
        join(SAMPLE, "pods.json"),
        "--wait-seconds",
        "0",
      ],
      {
        cwd: scratch,
        env: {
          ...noKube,
          AWS_ENDPOINT_URL_SQS: sqs.endpoint,
          AWS_ENDPOINT_URL_DYNAMODB: ts.endpoint,
          AWS_REGION: REGION,
        },
      },
    );
    const attributes = await sqs.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    const left =
      Number(attributes.Attributes?.ApproximateNumberOfMessages) +
      Number(attributes.Attributes?.ApproximateNumberOfMessagesNotVisible);
    expect({ code: run.code, left }, run.stderr).toEqual({ code: 2, left: 1 });
    expect(run.stderr).toMatch(/--cluster/);
  });

  it("backfill into --table refuses the default cluster before reading the log groups", async () => {
    // Defect: `backfill --log-group <the stack's group> --table <TableName>` without --cluster stores the history
    // under the default cluster "local", with coverage claims under COVER#local#…, although its help says "--table
    // … with the stack's --cluster" and it refuses a defaulted store for the same reason.
    // Impact: an operator filling the gap of a lost subscription gets "N events stored now", and the deployed
    // stack's API, alerts and coverage still miss every one of those lines.
    // Expected: with --table and no --cluster, a usage error (exit 2) before anything is read or stored.
    const table = await ts.freshTable();
    const group = "/eks/prod-eu/calico";
    logs.put(group, STREAM, [
      { timestamp: T0, message: calicoLine(T0, STREAM, "192.168.22.247", "192.168.94.122", 5432) },
    ]);
    const run = await runCli(
      [
        "backfill",
        "--log-group",
        group,
        "--since",
        new Date(T0 - MINUTE_MS).toISOString(),
        "--until",
        new Date(T0 + MINUTE_MS).toISOString(),
        "--table",
        table,
        "--pods",
        PODS_FILE,
        "--quiet",
      ],
      {
        cwd: scratch,
        env: {
          ...noKube,
          AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.endpoint,
          AWS_ENDPOINT_URL_DYNAMODB: ts.endpoint,
          AWS_REGION: REGION,
        },
      },
    );
    const local = await new DynamoFlowStore({ client: ts.client, tableName: table }).queryFlows({
      cluster: "local",
      since: new Date(T0 - MINUTE_MS).toISOString(),
      until: new Date(T0 + MINUTE_MS).toISOString(),
    });
    expect({ code: run.code, storedAsLocal: local.items.length }, run.stderr).toEqual({
      code: 2,
      storedAsLocal: 0,
    });
    expect(logs.calls.filter((c) => c.operation === "FilterLogEvents")).toEqual([]);
  });
});

describe("flows and alerts --api of another cluster's stack", () => {
  let gateway: SigV4Gateway;
  let stagingTable: string;
  const stagingFlow = (): FlowRecord => {
    const bucket = new Date(T0).toISOString();
    const end = (ip: string, namespace: string) => ({
      ip,
      kind: "pod" as const,
      namespace,
      name: `${namespace}-0`,
      workload: { kind: "StatefulSet", name: namespace },
      node: null,
      resolved: true,
    });
    return {
      id: "staging-flow-0000000000",
      cluster: "staging",
      bucket,
      src: end("192.168.22.247", "customer-a"),
      dst: end("192.168.94.122", "customer-b"),
      protocol: "TCP",
      dstPort: 5432,
      direction: "ingress",
      reporter: STREAM,
      internal: true,
      packets: 3,
      bytes: 180,
      firstSeen: bucket,
      lastSeen: bucket,
      policy: null,
      tcpFlags: ["SYN"],
    };
  };

  beforeAll(async () => {
    stagingTable = await ts.freshTable();
    const store = new DynamoFlowStore({ client: ts.client, tableName: stagingTable });
    await store.writeFlows([stagingFlow()], "staging-seed");
    const runtime = { store, cluster: "staging", now: () => T0 + 3_600_000 };
    gateway = await startSigV4Gateway((event) => handleQuery(event, runtime), PRINCIPALS);
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it("refuses an API that serves another cluster than --cluster even when the range holds nothing", async () => {
    // Defect: `flows --api URL --cluster prod` and `alerts --api URL --cluster prod` check the cluster only on the
    // records a page returns (cli/commands/flows.ts apiPages): the query API's page does not say which cluster it
    // serves, so the ApiUrl of the staging stack, pasted by mistake, answers a quiet range with "no records in that
    // range", exit 0. docs/panic.md: "`flows --api` and `alerts --api` refuse its records alike".
    // Impact: during a prod incident, "what was denied in prod in the last hour" answers "nothing" from staging's
    // stack: the operator rules out Calico for the outage. The same API with one record in range is refused.
    // Expected: with --cluster given, an API whose stack serves another cluster is refused (exit 1, naming it)
    // whatever the range holds, as `panic --api --cluster` refuses one before anything.
    const range = [
      "--since",
      new Date(T0 + 10 * MINUTE_MS).toISOString(),
      "--until",
      new Date(T0 + 40 * MINUTE_MS).toISOString(),
    ];
    const results = [];
    for (const command of ["flows", "alerts"]) {
      const run = await runCli([command, "--api", gateway.url, "--cluster", "prod", ...range, "--json"], {
        env: { ...CREDENTIALS, AWS_REGION: REGION },
      });
      results.push({ command, code: run.code, stdout: run.stdout, namesStaging: /staging/.test(run.stderr) });
    }
    expect(results).toEqual([
      { command: "flows", code: 1, stdout: "", namesStaging: true },
      { command: "alerts", code: 1, stdout: "", namesStaging: true },
    ]);
  });
});
