// `calico-flows panic` as a user runs it: the real binary, straight to the local HTTPS Kubernetes API with a
// kubeconfig (--direct), and through a local endpoint that verifies SigV4 and hands the request to the panic
// handler (--api).
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CalicoPolicy } from "../../functions/core/panic-policy.ts";
import type { PanicResponse } from "../../functions/panic/service.ts";
import {
  GNP_V3,
  type PanicHarness,
  type SigV4Gateway,
  startPanicHarness,
  startSigV4Gateway,
  verifySigV4,
} from "../panic/harness.ts";
import { runCli } from "./run.ts";

// The suite's fake credentials (vitest.config.ts), which the CLI's default credential chain picks up.
const ACCESS_KEY = "AKIDTESTTESTTEST";
const SECRET = "test-secret";
const TESTER = "arn:aws:iam::123456789012:user/cli-tester";
const principals = new Map([[ACCESS_KEY, { secretAccessKey: SECRET, arn: TESTER }]]);

const scheduler = mockClient(SchedulerClient);
let h: PanicHarness;
let gateway: SigV4Gateway;
let store: string;

beforeAll(async () => {
  h = await startPanicHarness();
  const runtime = h.runtime();
  gateway = await startSigV4Gateway(async (event) => h.invoke(event, runtime), principals);
  store = mkdtempSync(join(tmpdir(), "cf-panic-"));
});
afterAll(async () => {
  scheduler.restore();
  await gateway?.close();
  await h?.close();
  rmSync(store, { recursive: true, force: true });
});
beforeEach(async () => {
  scheduler.reset();
  scheduler.on(CreateScheduleCommand).resolves({});
  await h.kube.setFault(null);
  h.kube.store.clear();
});

const stored = () => h.kube.store.get(GNP_V3, "allow-all") as unknown as CalicoPolicy | undefined;
const direct = (...args: string[]) =>
  runCli([
    "panic",
    ...args,
    "--direct",
    "--kubeconfig",
    h.kube.kubeconfigPath,
    "--cluster",
    "cli-test",
    "--store",
    store,
  ]);
const viaApi = (args: string[], env?: NodeJS.ProcessEnv) =>
  runCli(["panic", ...args, "--api", gateway.url], { env });

function seedDenyPolicy() {
  h.kube.store.put(GNP_V3, {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name: "deny-db" },
    spec: {
      order: 10,
      selector: "all()",
      ingress: [{ action: "Deny", protocol: "TCP", destination: { ports: [5432] } }],
    },
  });
}

describe("calico-flows panic --direct", () => {
  it("applies, reports and reverts with a kubeconfig, printing conflicts prominently", async () => {
    seedDenyPolicy();
    const applied = await direct("apply", "--reason", "payments down, INC-7");
    expect(applied.stderr).toBe("");
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/^APPLIED {2}panic policy allow-all applied on cli-test/);
    expect(applied.stdout).toMatch(/expires at: +never \(revert by hand\)/);
    expect(applied.stdout).toContain(
      "!! WARNING: 1 policy is evaluated before allow-all and may still DENY traffic:",
    );
    expect(applied.stdout).toContain(
      "!!   - GlobalNetworkPolicy deny-db (tier default, order 10): Deny rule (Ingress)",
    );
    const policy = stored();
    expect(policy?.metadata.annotations?.["calico-flows.io/reason"]).toBe("payments down, INC-7");
    expect(policy?.metadata.annotations?.["calico-flows.io/requester"]).toMatch(
      /via kubeconfig context "calico-flows-test"/,
    );
    expect(h.kube.requests()).toContainEqual(
      expect.objectContaining({ method: "POST", query: { fieldManager: "calico-flows-panic" }, status: 201 }),
    );

    const status = await direct("status", "--json");
    expect(status.code).toBe(0);
    const answer = JSON.parse(status.stdout) as PanicResponse;
    expect(answer).toMatchObject({ action: "status", result: "active", reason: "payments down, INC-7" });
    expect(answer.conflicts.map((c) => c.name)).toEqual(["deny-db"]);
    // Audited in the embedded store when no table is given.
    expect(answer.history?.[0]).toMatchObject({
      action: "apply",
      result: "applied",
      via: "cli",
      cluster: "cli-test",
    });

    const reverted = await direct("revert", "--reason", "fixed");
    expect(reverted.code).toBe(0);
    expect(reverted.stdout).toMatch(/^REVERTED/);
    // This revert's reason, and the removed policy's stamp said as what was, without an expiry to come.
    expect(reverted.stdout).toContain("\n  reverted for:     fixed\n");
    expect(reverted.stdout).toContain("\n  was applied for:  payments down, INC-7\n");
    expect(reverted.stdout).not.toContain("expires at");
    expect(stored()).toBeUndefined();
    const again = await direct("revert");
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^NOTHING TO REVERT .*nothing to revert/);
  });

  it("does not say no policy may deny traffic when the policies could not be listed", async () => {
    await h.kube.setFault({
      fault: { kind: "status", code: 403 },
      method: "GET",
      path: "/apis/projectcalico.org/v3/networkpolicies",
    });
    const applied = await direct("apply", "--reason", "listing refused");
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/^APPLIED/);
    expect(applied.stdout).toContain("conflicts could not be listed");
    expect(applied.stdout).not.toContain("No policy evaluated before it can deny traffic it allows.");
    await h.kube.setFault(null);
    const status = await direct("status");
    expect(status.stdout).toContain("No policy evaluated before it can deny traffic it allows.");
  });

  it("shows the exact document in a dry run and writes nothing", async () => {
    const run = await direct(
      "apply",
      "--reason",
      "what if",
      "--dry-run",
      "--order",
      "42",
      "--namespace-selector",
      "all()",
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^DRY RUN \(would apply\)/);
    expect(run.stdout).toContain("Would apply:");
    expect(run.stdout).toContain("order: 42");
    expect(run.stdout).toContain("namespaceSelector: all()");
    expect(stored()).toBeUndefined();
  });

  it("refuses a foreign policy unless --force", async () => {
    h.kube.store.put(GNP_V3, { metadata: { name: "allow-all" }, spec: { order: 1, selector: "app == 'x'" } });
    const refused = await direct("apply", "--reason", "mine now?");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/error \(not-owned\): .*not created by calico-flows/);
    const forced = await direct("apply", "--reason", "mine now", "--force");
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/^TAKEN OVER/);
    expect(stored()?.spec.selector).toBeUndefined();
  });

  it("explains a 403 with the RBAC fix", async () => {
    await h.kube.setFault({ kind: "status", code: 403 });
    const run = await direct("status");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /error \(kube-access\): .*calico-flows-panic ClusterRole \(deploy\/rbac\.yaml\)/,
    );
  });

  it("suggests the other API group when the cluster lacks the one asked for", async () => {
    const run = await direct("status", "--api-group", "crd.projectcalico.org/v1");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error \(api-missing\): .*--api-group projectcalico\.org\/v3/);
  });

  it("refuses a blank or over-long revert reason as the API does, and leaves the policy", async () => {
    expect((await direct("apply", "--reason", "payments down")).code).toBe(0);
    for (const reason of ["   ", "x".repeat(501)]) {
      const refused = await direct("revert", "--reason", reason);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/reason (must not be blank|must be at most 500 characters)/);
    }
    expect(stored()).toBeDefined();
    expect((await direct("revert", "--reason", "fixed")).code).toBe(0);
    expect(stored()).toBeUndefined();
  });

  it("says so when an applied policy is past its expiry", async () => {
    expect((await direct("apply", "--reason", "payments down")).code).toBe(0);
    const policy = stored() as CalicoPolicy;
    h.kube.store.put(GNP_V3, {
      ...policy,
      metadata: {
        ...policy.metadata,
        annotations: {
          ...policy.metadata.annotations,
          "calico-flows.io/expires-at": "2026-01-01T00:00:00.000Z",
        },
      },
    });
    const status = await direct("status");
    expect(status.stdout).toMatch(/should have expired at 2026-01-01T00:00:00.000Z but is still in place/);
  });

  it("names the dead-letter queue on the expiry schedule it writes, and refuses one that is not a queue's ARN", async () => {
    // Scheduler has no local implementation: this endpoint keeps the CreateSchedule requests the binary sends
    // (REST JSON, POST /schedules/<name>) and answers as the service does.
    const requests: { url: string; body: Record<string, unknown> }[] = [];
    const endpoint = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8").on("data", (d: string) => {
        body += d;
      });
      req.on("end", () => {
        requests.push({ url: `${req.method} ${req.url}`, body: JSON.parse(body || "{}") });
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ ScheduleArn: "arn:aws:scheduler:eu-west-1:123456789012:schedule/g/s" }));
      });
    });
    await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
    const queue = "arn:aws:sqs:eu-west-1:123456789012:CalicoFlows-PanicExpiryDeadLetters";
    const expiry = [
      "--ttl",
      "30",
      "--schedule-group",
      "calico-flows-panic",
      "--scheduler-role-arn",
      "arn:aws:iam::123456789012:role/scheduler",
      "--expiry-function-arn",
      "arn:aws:lambda:eu-west-1:123456789012:function:panic",
    ];
    const base = ["panic", "apply", "--direct", "--reason", "timed", "--kubeconfig", h.kube.kubeconfigPath];
    const tail = ["--cluster", "cli-test", "--store", store];
    try {
      const env = {
        AWS_ENDPOINT_URL_SCHEDULER: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`,
      };
      const applied = await runCli([...base, ...expiry, "--dead-letter-queue-arn", queue, ...tail], { env });
      expect(applied.stderr).toBe("");
      expect(applied.code).toBe(0);
      expect(requests).toHaveLength(1);
      expect(requests[0]?.url).toMatch(/^POST \/schedules\/panic-cli-test-allow-all/);
      expect(requests[0]?.body).toMatchObject({
        GroupName: "calico-flows-panic",
        Target: { DeadLetterConfig: { Arn: queue } },
      });

      const refused = await runCli(
        [...base, ...expiry, "--dead-letter-queue-arn", "https://sqs/q", ...tail],
        {
          env,
        },
      );
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/--dead-letter-queue-arn: expected an SQS queue ARN/);
      expect(requests).toHaveLength(1);
    } finally {
      endpoint.close();
    }
  });

  it("refuses a --alerts-topic that is no SNS topic ARN as a usage error, before it opens the audit store", async () => {
    // The embedded store it audits to, opened first, kept the command waiting after the error.
    const fresh = join(mkdtempSync(join(tmpdir(), "cf-panic-topic-")), "store");
    try {
      const run = await runCli([
        "panic",
        "status",
        "--direct",
        "--kubeconfig",
        h.kube.kubeconfigPath,
        "--cluster",
        "cli-test",
        "--store",
        fresh,
        "--alerts-topic",
        "not-an-arn",
      ]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^error: invalid SNS topic ARN "not-an-arn"/);
      expect(existsSync(fresh)).toBe(false);
    } finally {
      rmSync(dirname(fresh), { recursive: true, force: true });
    }
  });

  it("needs the scheduler's settings for --ttl: options that do not go together, a usage error", async () => {
    const run = await direct("apply", "--reason", "timed", "--ttl", "30");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--ttl with --direct needs --schedule-group/);
    expect(stored()).toBeUndefined();
  });
});

describe("calico-flows panic usage", () => {
  it("needs exactly one of --api and --direct", async () => {
    const neither = await runCli(["panic", "status"]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/choose one of --api URL .* or --direct/);
    const both = await runCli(["panic", "status", "--direct", "--api", "http://127.0.0.1:1"]);
    expect(both.code).toBe(2);
  });

  it("needs --reason to apply", async () => {
    const run = await runCli(["panic", "apply", "--direct"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--reason/);
  });

  it("exits with 2 for what commander refuses, as docs/panic.md says", async () => {
    const ttl = await runCli(["panic", "apply", "--direct", "--reason", "x", "--ttl", "abc"]);
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toMatch(/--ttl/);
    expect((await runCli(["panic", "status", "--bogus"])).code).toBe(2);
  });
});

describe("calico-flows panic --api (SigV4)", () => {
  it("applies through the API as the signed-in IAM principal, with the API's expiry", async () => {
    seedDenyPolicy();
    const run = await viaApi(["apply", "--reason", "via the API", "--ttl", "15"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^APPLIED/);
    expect(run.stdout).toMatch(new RegExp(`applied by: +${TESTER}`));
    expect(run.stdout).toContain("!! WARNING: 1 policy is evaluated before allow-all");
    expect(stored()?.metadata.annotations?.["calico-flows.io/requester"]).toBe(TESTER);
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);

    const status = await viaApi(["status", "--json", "--history", "5"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ result: "active", appliedBy: TESTER });

    const reverted = await viaApi(["revert", "--reason", "done", "--json"]);
    expect(reverted.code).toBe(0);
    expect(JSON.parse(reverted.stdout)).toMatchObject({ result: "reverted" });
    expect(stored()).toBeUndefined();
  });

  it("reports the API's 400 naming the field", async () => {
    const run = await viaApi(["apply", "--reason", " "]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error \(HTTP 400 invalid\): reason: /);
  });

  it("is refused when the signature does not verify", async () => {
    const before = gateway.rejected.length;
    const run = await viaApi(["apply", "--reason", "forged"], { AWS_SECRET_ACCESS_KEY: "not-the-secret" });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/HTTP 403.*signature we calculated does not match/);
    expect(gateway.rejected.length).toBe(before + 1);
    expect(stored()).toBeUndefined();
  });
});

describe("the SigV4 verifier", () => {
  it("accepts a request signed as the CLI signs it (SignatureV4 for execute-api) and rejects any change to it", async () => {
    const { HttpRequest } = await import("@smithy/protocol-http");
    const { SignatureV4 } = await import("@smithy/signature-v4");
    const { Hash } = await import("@smithy/hash-node");
    const url = new URL("http://127.0.0.1:8080/prod/panic?history=3");
    const body = JSON.stringify({ reason: "x" });
    const signed = await new SignatureV4({
      service: "execute-api",
      region: "eu-west-1",
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET },
      sha256: Hash.bind(null, "sha256"),
    }).sign(
      new HttpRequest({
        method: "POST",
        protocol: "http:",
        hostname: url.hostname,
        port: 8080,
        path: url.pathname,
        query: { history: "3" },
        headers: { host: url.host, "content-type": "application/json" },
        body,
      }),
    );
    const headers = signed.headers as Record<string, string>;
    expect(await verifySigV4({ method: "POST", url, headers, body }, principals)).toEqual({ arn: TESTER });
    const tampered = [
      { method: "DELETE", url, headers, body },
      { method: "POST", url, headers, body: JSON.stringify({ reason: "y" }) },
      { method: "POST", url: new URL("http://127.0.0.1:8080/prod/panic?history=4"), headers, body },
      { method: "POST", url, headers: { ...headers, "content-type": "text/plain" }, body },
    ];
    for (const request of tampered) {
      expect(await verifySigV4(request, principals)).toHaveProperty("refused");
    }
    expect(await verifySigV4({ method: "POST", url, headers: {}, body }, principals)).toEqual({
      refused: "Missing Authentication Token",
    });
  });
});
