// An on-call engineer's incident day, read from what the alerts topic's subscribers receive: real node-stream
// payloads through the ingest pipeline (the deployed Lambda handler, or the CLI's replay setup) into dynalite,
// published by the real SNS sink to fauxqs, and the e-mail's runbook commands run as pasted through the CLI's own
// option definitions. Each test is one defect: it fails on the code as reviewed and passes once that is fixed.
import { isIPv6 } from "node:net";
import { join } from "node:path";
import type { CloudWatchLogsEvent, Context, Handler } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { listFlows, registerFlows } from "../../cli/commands/flows.ts";
import { registerPanic } from "../../cli/commands/panic.ts";
import { registerReplay } from "../../cli/commands/replay.ts";
import { commonOptions } from "../../cli/common.ts";
import { openIngest } from "../../cli/ingest.ts";
import type { SnsAlertSink } from "../../functions/adapters/sns-sink.ts";
import { ingestBatch } from "../../functions/core/ingest.ts";
import { parsedOptions } from "../cli/run.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";
import {
  createTopic,
  drainQueue,
  envelopeOf,
  type LocalSns,
  REGION,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";
import { clientIp, delivery, deniedLine, nodeName, T0, targetIp } from "../support/node-streams.ts";

/** The stack's API, as CDK hands it to the ingest function (API_URL). */
const API_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1";
/** The bundled sample cluster's `kubectl get … -o json` snapshots. */
const DEMO = join(import.meta.dirname, "..", "..", "examples", "demo");
const CREDENTIALS = { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: REGION };

let testStore: TestStore;
let sns: LocalSns;
let serial = 0;

beforeAll(async () => {
  [testStore, sns] = await Promise.all([startTestStore(), startLocalSns()]);
});
afterEach(() => {
  vi.unstubAllEnvs();
});
afterAll(async () => {
  await Promise.all([testStore.close(), sns.close()]);
});

/** A fresh alerts topic with one unfiltered (envelope) SQS subscriber. */
async function alertsTopic(): Promise<{ topicArn: string; queueUrl: string }> {
  serial++;
  const topicArn = await createTopic(sns, `incident-${serial}`);
  return { topicArn, queueUrl: await subscribeQueue(sns, topicArn, `on-call-${serial}`) };
}

/** The ingest function as deployed (attribution off: IPs only, as when Kubernetes cannot be asked), fresh. */
async function deployedHandler(env: Record<string, string>): Promise<Handler<CloudWatchLogsEvent>> {
  const tableName = await testStore.freshTable();
  const variables: Record<string, string> = {
    ...CREDENTIALS,
    CLUSTER_NAME: "prod",
    TABLE_NAME: tableName,
    ATTRIBUTION: "none",
    AWS_ENDPOINT_URL_DYNAMODB: testStore.endpoint,
    AWS_ENDPOINT_URL_SNS: sns.endpoint,
    API_URL,
    POWERTOOLS_METRICS_NAMESPACE: "CalicoFlowsIncidentReview",
    ...env,
  };
  for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value);
  vi.resetModules();
  const { handler } = await import("../../functions/ingest/handler.ts");
  return handler as Handler<CloudWatchLogsEvent>;
}

const lambdaContext = (): Context =>
  ({
    functionName: "ingest",
    awsRequestId: `req-${++serial}`,
    getRemainingTimeInMillis: () => 120_000,
  }) as Context;

/** The `email` structure of each message an unfiltered subscriber received, with its subject. */
async function received(queueUrl: string): Promise<{ subject: string; email: string }[]> {
  return (await drainQueue(sns, queueUrl)).map((m) => ({
    subject: envelopeOf(m).Subject ?? "",
    email: structureOf(m).email,
  }));
}

describe("incident day: what the alerts topic's subscribers receive", () => {
  it("a replay into a table with 5-minute buckets: the e-mail's `calico-flows flows` commands list the alert's own flow", async () => {
    // `kubectl logs -f … | calico-flows replay - --table T --region R --bucket-seconds 300 --alerts-topic ARN`, set up
    // as `replay` sets itself up: its options parsed by its own definitions, then openIngest (store, sink, pipeline).
    const { topicArn, queueUrl } = await alertsTopic();
    const tableName = await testStore.freshTable();
    const env = {
      ...CREDENTIALS,
      AWS_ENDPOINT_URL_SNS: sns.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: testStore.endpoint,
    };
    for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
    const replayOptions = await parsedOptions(
      registerReplay,
      ["replay"],
      [
        "replay",
        "-",
        ...["--table", tableName, "--region", REGION, "--cluster", "demo", "--bucket-seconds", "300"],
        ...[
          "--alerts-topic",
          topicArn,
          "--pods",
          join(DEMO, "pods.json"),
          "--nodes",
          join(DEMO, "nodes.json"),
        ],
        ...["--year", "2026", "--quiet"],
      ],
    );
    const { deps, close } = await openIngest(replayOptions, commonOptions(replayOptions), { year: 2026 });
    // customer-a/web denied on customer-b/db:5432 at 04:52:19, counted in the 5-minute bucket of 04:50.
    const line =
      "Apr 19 04:52:19 ip-192-168-12-9 kernel: calico-packet: IN=eth0 OUT=eni3b1f0c2a9d4 " +
      "MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 " +
      "PREC=0x00 TTL=63 ID=52019 DF PROTO=TCP SPT=48932 DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0";
    let result: Awaited<ReturnType<typeof ingestBatch>>;
    try {
      result = await ingestBatch(
        [{ timestamp: Date.parse("2026-04-19T04:52:19Z"), message: line }],
        "replay-batch-1",
        deps,
      );
    } finally {
      (deps.sink as SnsAlertSink | undefined)?.close();
      await close();
    }
    expect(result.flows.map((f) => [f.bucket, f.firstSeen, f.dst.namespace])).toEqual([
      ["2026-04-19T04:50:00.000Z", "2026-04-19T04:52:19.000Z", "customer-b"],
    ]);
    const [message] = await received(queueUrl);
    const commands = (message?.email ?? "")
      .split("\n")
      .filter((l) => l.startsWith("   calico-flows flows "))
      .map((l) => l.trim().split(" ").slice(1));
    expect(commands).toHaveLength(2);

    // Run as pasted (README: the e-mail's "runbook commands carry … the CLI's `--store` or `--table`, so that they
    // run as pasted"), parsed by the real `flows` options, against the same table.
    for (const argv of commands) {
      const listing = await listFlows(await parsedOptions(registerFlows, ["flows"], argv));
      // README: "for a table with buckets other than a minute, tell `flows` their length with `--bucket-seconds`";
      // the e-mail does not, so its range, from 04:52:19, is read from the minute bucket of 04:52, and the flow
      // counted at 04:50 is not found: "no records in that range".
      expect(
        listing.records.map((f) => f.id),
        `calico-flows ${argv.join(" ")}`,
      ).toEqual(result.flows.map((f) => f.id));
    }
  });

  it("the panic command the e-mail of a deployed stack suggests carries the stack's --api, as its flows commands do", async () => {
    const { topicArn, queueUrl } = await alertsTopic();
    const handler = await deployedHandler({ ALERTS_TOPIC_ARN: topicArn });
    // A bad NetworkPolicy rollout: team-0's client denied on shop-1's API.
    const node = nodeName(0);
    await handler(
      delivery(node, [{ at: T0 + 139_000, message: deniedLine(node, clientIp(0), targetIp(1), 8080, true) }]),
      lambdaContext(),
      () => {},
    );
    const [message] = await received(queueUrl);
    const email = message?.email ?? "";
    // Its flows commands name the stack's API (README: "runbook commands carry the stack's `--api` … so that they
    // run as pasted"; deploy.md: ApiUrl is "`--api` of `calico-flows flows`, `alerts`, `panic`").
    expect(email).toContain(`calico-flows flows --api ${API_URL} --cluster prod`);
    const panic = /`(calico-flows panic apply [^`]*)`/.exec(email)?.[1];
    expect(panic, email).toBeDefined();

    // Parsed by the real `panic apply` options. Without --api (or --direct) the CLI refuses to run it: "error: choose
    // one of --api URL (through the deployed API) or --direct (straight to the cluster with a kubeconfig)", exit 2.
    const options = await parsedOptions(
      registerPanic,
      ["panic", "apply"],
      (panic as string).split(" ").slice(1),
    );
    expect(options.dryRun).toBe(true);
    expect(options.api, `the e-mail suggests: ${panic}`).toBe(API_URL);
  });

  it("IPv6 with Kubernetes down: the subject writes the destination and its port as [address]:port, not as another address", async () => {
    const { topicArn, queueUrl } = await alertsTopic();
    const handler = await deployedHandler({ ALERTS_TOPIC_ARN: topicArn, INTERNAL_CIDRS: "fd00::/8" });
    // DNS denied in an IPv6 cluster, the ends known by address only.
    const node = nodeName(0);
    const line =
      `Apr 19 04:52:19 ${node} kernel: calico-packet: IN=eni1a2b3c4d5e6 OUT=eth0 ` +
      "MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:86:dd SRC=fd00:10:244:1::5 DST=fd00:10:244:2::a LEN=72 TC=0 " +
      "HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=40000 DPT=53 LEN=32";
    await handler(delivery(node, [{ at: T0 + 139_000, message: line }]), lambdaContext(), () => {});
    const messages = await received(queueUrl);
    expect(messages).toHaveLength(1);
    const subject = messages[0]?.subject ?? "";
    // Today: "Calico denied fd00:10:244:1::5 → fd00:10:244:2::a:53/UDP (prod)", where fd00:10:244:2::a:53 is itself
    // an IPv6 address (another host, no port). RFC 5952 §6 writes an address with a port as [address]:port.
    const words = subject.split(/[ →]+/).map((w) => w.replace(/\/\w+$/, ""));
    expect(
      words.filter((w) => isIPv6(w) && w !== "fd00:10:244:1::5" && w !== "fd00:10:244:2::a"),
      subject,
    ).toEqual([]);
    expect(subject).toContain("[fd00:10:244:2::a]:53/UDP");
  });
});
