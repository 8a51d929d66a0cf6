// The cluster a command acts for when it reaches a deployed stack (cli/common.ts): named, not defaulted, for the
// stack's resources; the kubeconfig's own EKS cluster, where it says one, the same as the one named.
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { Command, Option } from "commander";
import { describe, expect, it } from "vitest";
import {
  checkKubeconfigCluster,
  requireClusterNamed,
  UsageError,
  withCommonOptions,
} from "../../cli/common.ts";
import { runCli } from "./run.ts";

const ARN = (name: string) => `arn:aws:eks:eu-west-1:123456789012:cluster/${name}`;

/** A kubeconfig whose one context reaches `cluster` (the entry's name) as `user` (its exec args, if any). */
function kubeconfig(cluster: string, execArgs?: string[]): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: cluster, server: "https://ABC.gr7.eu-west-1.eks.amazonaws.com", skipTLSVerify: false },
    ],
    users: [
      execArgs === undefined
        ? { name: "me", token: "t" }
        : {
            name: "me",
            exec: { apiVersion: "client.authentication.k8s.io/v1beta1", command: "aws", args: execArgs },
          },
    ],
    contexts: [{ name: "prod", cluster, user: "me" }],
    currentContext: "prod",
  });
  return kc;
}

describe("checkKubeconfigCluster", () => {
  it.each([
    ["the cluster entry's ARN (aws eks update-kubeconfig)", kubeconfig(ARN("staging"))],
    [
      "the exec plugin's --cluster-name",
      kubeconfig("renamed", ["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "staging"]),
    ],
    ["--cluster-name=", kubeconfig("renamed", ["eks", "get-token", "--cluster-name=staging"])],
    [
      "either of them, when they disagree",
      kubeconfig(ARN("prod"), ["eks", "get-token", "--cluster-name", "staging"]),
    ],
  ])("refuses another EKS cluster named by %s", (_, kc) => {
    expect(() => checkKubeconfigCluster(kc, "prod")).toThrow(/EKS cluster "staging", not --cluster "prod"/);
  });

  it.each([
    ["the same cluster", kubeconfig(ARN("prod"), ["eks", "get-token", "--cluster-name", "prod"])],
    ["a kubeconfig that names no EKS cluster", kubeconfig("kind-dev")],
  ])("goes on with %s", (_, kc) => {
    expect(() => checkKubeconfigCluster(kc, "prod")).not.toThrow();
  });
});

describe("requireClusterNamed", () => {
  /** A writing command's options, parsed from `args`, then checked. */
  const check = (args: string[]) => {
    const command = withCommonOptions(new Command("write").exitOverride())
      .addOption(new Option("--alerts-topic <arn>"))
      .addOption(new Option("--queue-url <url>"))
      .addOption(new Option("--schedule-group <name>"));
    command.parse(args, { from: "user" });
    return () => requireClusterNamed(command);
  };

  it.each([
    [["--table", "t"], "--table"],
    [["--store", "s", "--alerts-topic", "arn:aws:sns:eu-west-1:123456789012:t"], "--alerts-topic"],
    [["--queue-url", "https://sqs.eu-west-1.amazonaws.com/123456789012/q", "--store", "s"], "--queue-url"],
    [["--schedule-group", "g", "--table", "t"], "--table, --schedule-group"],
  ])("refuses %j without --cluster", (args, named) => {
    expect(check(args)).toThrow(UsageError);
    expect(check(args)).toThrow(new RegExp(`^${named} reach(es)? a deployed stack.*--cluster`));
  });

  it.each([[["--table", "t", "--cluster", "prod"]], [["--store", "s"]], [[]]])("accepts %j", (args) => {
    expect(check(args)).not.toThrow();
  });
});

describe("flows --api --cluster against a query API deployed before its pages named their cluster", () => {
  it("refuses the API by the cluster of its records", async () => {
    // Such an API answers `{ items, cursor }` alone: its records still say whose they are.
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ items: [{ cluster: "staging" }], cursor: null }));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const run = await runCli(["flows", "--api", api, "--cluster", "prod", "--since", "1h", "--json"], {
        env: {
          AWS_REGION: "eu-west-1",
          AWS_ACCESS_KEY_ID: "AKIDTESTTESTTEST",
          AWS_SECRET_ACCESS_KEY: "test",
        },
      });
      expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: "" });
      expect(run.stderr).toContain('answers for cluster "staging", not "prod"');
    } finally {
      server.close();
    }
  });
});

describe("replay --cluster through a kubeconfig of another EKS cluster", () => {
  it("refuses before it reads a line or makes a store, and goes on for the local default", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cf-deployed-cluster-"));
    try {
      const config = join(dir, "kubeconfig");
      writeFileSync(
        config,
        [
          "apiVersion: v1",
          "kind: Config",
          `clusters: [{ name: "${ARN("staging")}", cluster: { server: "https://127.0.0.1:1" } }]`,
          'users: [{ name: "me", user: { token: "t" } }]',
          `contexts: [{ name: "staging", context: { cluster: "${ARN("staging")}", user: "me" } }]`,
          "current-context: staging",
        ].join("\n"),
      );
      const store = join(dir, "store");
      const refused = await runCli(
        ["replay", "-", "--store", store, "--cluster", "prod", "--kubeconfig", config, "--quiet"],
        { input: "", env: { HOME: dir } },
      );
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('reaches EKS cluster "staging", not --cluster "prod"');
      expect(existsSync(store)).toBe(false);
      // The local default names no EKS cluster: the kubeconfig is not judged.
      const local = await runCli(["replay", "-", "--store", store, "--kubeconfig", config, "--quiet"], {
        input: "",
        env: { HOME: dir },
      });
      expect(local.stderr).not.toContain("reaches EKS cluster");
      expect(local.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
