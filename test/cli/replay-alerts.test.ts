// `calico-flows replay --alerts-topic ARN`: the local mode publishes through the same SNS sink as the Lambda,
// here to fauxqs on loopback through the SDK's standard AWS_ENDPOINT_URL_SNS.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlowRecord } from "../../functions/core/types.ts";
import {
  createTopic,
  drainQueue,
  type LocalSns,
  REGION,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";
import { ndjson, runCli, SAMPLE, SAMPLE_ATTRIBUTION } from "./run.ts";

describe("calico-flows replay --alerts-topic", () => {
  let sns: LocalSns;
  let store: string;

  beforeAll(async () => {
    sns = await startLocalSns();
    store = mkdtempSync(join(tmpdir(), "cf-replay-alerts-"));
  });
  afterAll(async () => {
    await sns.close();
    rmSync(store, { recursive: true, force: true });
  });

  /** The sample replayed into `dir` with its alerts published to `topicArn` on the local SNS. */
  const replayPublishing = (dir: string, topicArn: string) =>
    runCli(
      [
        "replay",
        join(SAMPLE, "node-logs.log"),
        "--store",
        dir,
        "--cluster",
        "demo",
        ...SAMPLE_ATTRIBUTION,
        "--alerts-topic",
        topicArn,
        "--quiet",
      ],
      {
        env: {
          AWS_ENDPOINT_URL_SNS: sns.endpoint,
          AWS_REGION: REGION,
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
        },
      },
    );

  it("publishes each new alert once, with subject, both structures and filterable attributes", async () => {
    const topicArn = await createTopic(sns, "calico-flows-alerts");
    const all = await subscribeQueue(sns, topicArn, "all-alerts");
    const customerB = await subscribeQueue(sns, topicArn, "customer-b-only", {
      filterPolicy: { dstNamespace: ["customer-b"] },
    });
    const run = await replayPublishing(store, topicArn);
    expect(run.stderr).toMatch(/5 alerts \(5 published\)/);
    expect(run.code).toBe(0);

    const messages = await drainQueue(sns, all);
    expect(messages).toHaveLength(5);
    const subjects = messages.map((m) => JSON.parse(m.Body ?? "{}").Subject as string).sort();
    expect(subjects).toContain("Calico denied customer-a/web → customer-b/db:5432/TCP (demo)");
    for (const s of subjects) expect(s.length).toBeLessThan(100);
    const bug = messages.find((m) => JSON.parse(m.Body ?? "{}").Subject.includes("customer-b/db:5432"));
    expect(bug).toBeDefined();
    const structure = structureOf(bug as NonNullable<typeof bug>);
    expect(JSON.parse(structure.default)).toMatchObject({ count: 128, dstPort: 5432, severity: "high" });
    expect(structure.email).toContain("kubectl describe pod");
    // Its commands reach this store as pasted, and show the alert's traffic: every hit it counted.
    expect(structure.email).toContain(
      `   calico-flows flows --store ${store} --cluster demo --namespace customer-a`,
    );
    const commands = structure.email
      .split("\n")
      .filter((l) => l.startsWith("   calico-flows flows "))
      .map((l) => l.trim().split(" ").slice(1));
    expect(commands).toHaveLength(2);
    for (const command of commands) {
      const shown = await runCli([...command, "--json"]);
      expect(shown.code).toBe(0);
      const hits = ndjson<FlowRecord>(shown.stdout)
        .filter((f) => f.src.workload?.name === "web" && f.dst.workload?.name === "db" && f.dstPort === 5432)
        .reduce((n, f) => n + f.packets, 0);
      expect(hits).toBe(128);
    }

    // The filter policy lets only customer-b's destinations through: db:5432 and api:9090.
    const filtered = await drainQueue(sns, customerB);
    expect(filtered).toHaveLength(2);

    // Replaying again opens nothing new and sends nothing twice.
    const again = await replayPublishing(store, topicArn);
    expect(again.code).toBe(0);
    expect(await drainQueue(sns, all)).toHaveLength(0);
  });

  it("says which alerts a failed replay of the same lines still holds, and exits 1, rather than reporting them handled", async () => {
    const held = mkdtempSync(join(tmpdir(), "cf-replay-held-"));
    try {
      // The topic is not there yet: every publish fails, and the alerts stay pending under the run's lease.
      const topicArn = `arn:aws:sns:${REGION}:000000000000:calico-held-replay`;
      const failed = await replayPublishing(held, topicArn);
      expect(failed.code).not.toBe(0);
      // The topic fixed and the same input replayed at once: the failed run's lease on sending them has not run out.
      expect(await createTopic(sns, "calico-held-replay")).toBe(topicArn);
      const queue = await subscribeQueue(sns, topicArn, "held-replay");
      const again = await replayPublishing(held, topicArn);
      expect(again.stderr).toMatch(
        /warning: alerts [0-9A-Za-z_-]+ \(opened [^)]+, held until [^)]+\), .* and 2 more not sent: another run of this input holds the lease/,
      );
      expect(again.stderr).toMatch(/replay the same input \(its lines are not counted again\) after \S+Z\n/);
      expect(again.code).toBe(1);
      expect(await drainQueue(sns, queue)).toHaveLength(0);
    } finally {
      rmSync(held, { recursive: true, force: true });
    }
  });
});
