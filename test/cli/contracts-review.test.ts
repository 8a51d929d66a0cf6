// Contracts other tools depend on (DESIGN.md §3), as the real binary keeps them.
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./run.ts";

let dir: string;
let server: Server;
let api: string;
const requests: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];

/** What the stand-in API's panic function answers: the panic λ of the stack of cluster "staging". */
const STAGING_PANIC = {
  cluster: "staging",
  action: "status",
  result: "inactive",
  message: "no panic policy is applied",
  apiGroup: "projectcalico.org",
  policyName: "calico-flows-panic",
  policy: null,
  appliedBy: null,
  reason: null,
  appliedAt: null,
  expiresAt: null,
  conflicts: [],
  warnings: [],
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "contracts-review-"));
  server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    res.writeHead(200, { "content-type": "application/json" });
    if (req.url?.startsWith("/v1/panic")) {
      const applied = req.method === "POST";
      res.end(
        JSON.stringify({ ...STAGING_PANIC, ...(applied ? { action: "apply", result: "applied" } : {}) }),
      );
    } else {
      res.end(JSON.stringify({ items: [], cursor: null }));
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("§3.2: AWS access through the SDK's standard configuration", () => {
  // §3.2: "Every command that talks to AWS honours the SDK's standard configuration: profiles, region". An operator
  // whose region is in the profile (`aws configure` writes `region = ...` into ~/.aws/config, AWS_REGION unset)
  // reaching the API through a custom domain or a local stand-in gets "no AWS region: pass --region or set
  // AWS_REGION": cli/api-client.ts reads only AWS_REGION / AWS_DEFAULT_REGION, never the profile's region, while
  // every SDK client of the other commands (--table, backfill, redrive) does. Expected: the request is signed for
  // the profile's region.
  it("flows --api and panic status --api sign for the region of the selected profile", async () => {
    const config = join(dir, "config");
    const credentials = join(dir, "credentials");
    writeFileSync(config, "[profile ops]\nregion = ap-southeast-2\n");
    writeFileSync(credentials, "[ops]\naws_access_key_id = AKIDPROFILEPROFILE\naws_secret_access_key = s\n");
    const env = {
      AWS_CONFIG_FILE: config,
      AWS_SHARED_CREDENTIALS_FILE: credentials,
      AWS_PROFILE: "ops",
      AWS_REGION: undefined,
      AWS_DEFAULT_REGION: undefined,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
    };
    for (const command of [
      ["flows", "--api", api, "--json"],
      ["panic", "status", "--api", api, "--json"],
    ]) {
      requests.length = 0;
      const run = await runCli(command, { env });
      expect(run.stderr, command.join(" ")).not.toContain("no AWS region");
      expect(run.code, command.join(" ")).toBe(0);
      expect(String(requests[0]?.headers.authorization), command.join(" ")).toContain(
        "/ap-southeast-2/execute-api/",
      );
    }
  });
});

describe("§3.2: --cluster on every command", () => {
  // §3.2 gives every command --cluster, and `flows --api` / `alerts --api` refuse an API that answers for another
  // cluster than an explicit --cluster (cli/commands/flows.ts, apiPages). `panic --api` takes --cluster and ignores
  // it (cli/commands/panic.ts, runApi never looks at common.cluster): an on-call engineer who pastes the staging
  // stack's URL with `--cluster prod` opens up every customer namespace of staging with an allow-all policy while
  // prod stays down, and is told so only by a "cluster: staging" line afterwards. Expected: with an explicit
  // --cluster, the command checks the API's cluster (GET /panic answers with it) and refuses before any POST.
  it("panic apply --api refuses an API that answers for another cluster than --cluster", async () => {
    requests.length = 0;
    const env = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret", AWS_PROFILE: undefined };
    const run = await runCli(
      [
        "panic",
        "apply",
        "--api",
        api,
        "--region",
        "eu-west-1",
        "--cluster",
        "prod",
        "--reason",
        "INC-1 checkout down",
      ],
      { env },
    );
    expect(requests.filter((r) => r.method === "POST")).toEqual([]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("staging");
  });

  // A status changes nothing: one request, whose answer names the cluster, and the same refusal.
  it("panic status --api refuses another cluster's answer with one request", async () => {
    requests.length = 0;
    const env = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret", AWS_PROFILE: undefined };
    const run = await runCli(
      ["panic", "status", "--api", api, "--region", "eu-west-1", "--cluster", "prod"],
      {
        env,
      },
    );
    expect(requests.map((r) => r.method)).toEqual(["GET"]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('answers for cluster "staging", not "prod"');
  });
});

describe("§3.2: --store and --api", () => {
  // `--api` reads the deployed stack; `--table` beside it was refused and `--store` ignored without a word, so a
  // reader who meant the local store was shown the stack's records. Both are usage errors now (exit 2).
  it("flows --api and alerts --api refuse --store as they refuse --table", async () => {
    for (const command of ["flows", "alerts"]) {
      requests.length = 0;
      const run = await runCli([
        command,
        "--api",
        api,
        "--region",
        "eu-west-1",
        "--store",
        join(dir, "store"),
      ]);
      expect(run.code, command).toBe(2);
      expect(run.stderr, command).toContain("--api and --store are alternatives");
      expect(requests, command).toEqual([]);
    }
  });
});
