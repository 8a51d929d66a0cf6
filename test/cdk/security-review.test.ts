// Security review (least privilege, abuse cases, secrets in output) of what an operator deploys and runs: the
// synthesized stack (bundling skipped, as in stack.test.ts), deploy/rbac.yaml, and the CLI's API client and
// kubeconfig loading. Each test shows one defect and fails until it is fixed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { App, type CfnResource } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { callApi } from "../../cli/api-client.ts";
import { coveragePartition } from "../../functions/adapters/dynamo/coverage.ts";
import {
  alertDaysPartition,
  alertPartition,
  alertStateKey,
  flowHoursPartition,
  flowPk,
  foldClaimKey,
  historyPk,
  tallyKey,
} from "../../functions/adapters/dynamo/keys.ts";
import { memoKey } from "../../functions/adapters/dynamo/memos.ts";
import { panicPartitionKey } from "../../functions/adapters/dynamo/panic-audit.ts";
import { CalicoFlowsStack } from "../../lib/calico-flows-stack.ts";
import { READER_KUBERNETES_GROUP } from "../../lib/cluster-access.ts";
import { appContext, parseConfig } from "../../lib/config.ts";
import { INGEST_ACTIONS, QUERY_ACTIONS } from "../../lib/flow-store.ts";
import { runCli } from "../cli/run.ts";

const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
  context: Record<string, unknown>;
};
const rbacYaml = readFileSync(new URL("../../deploy/rbac.yaml", import.meta.url), "utf8");

type Json = Record<string, unknown>;
type Statement = { Effect: string; Action: string | string[]; Resource?: unknown; Condition?: Json };
type PolicyRule = {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
};
type K8sObject = { kind?: string; metadata?: { name?: string }; rules?: PolicyRule[] };

const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** The app as `cdk synth` builds it from cdk.json's example context, bundling skipped. */
function synth() {
  const app = new App({ context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } });
  const config = parseConfig(appContext((key) => app.node.tryGetContext(key)));
  const stack = new CalicoFlowsStack(app, "CalicoFlows", { config });
  return { stack, config, template: Template.fromStack(stack) };
}

function logicalId(stack: CalicoFlowsStack, construct: IConstruct): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnResource);
}

/** Every statement of every policy attached to the role `roleId`. */
function statementsOf(template: Template, roleId: string): Statement[] {
  const policies = Object.values(template.findResources("AWS::IAM::Policy")) as { Properties: Json }[];
  return policies
    .filter((p) =>
      list(p.Properties.Roles as unknown[]).some((r) => JSON.stringify(r) === `{"Ref":"${roleId}"}`),
    )
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

function clusterRole(name: string): K8sObject {
  const found = (loadAllYaml(rbacYaml) as K8sObject[]).find(
    (doc) => doc?.kind === "ClusterRole" && doc.metadata?.name === name,
  );
  if (found === undefined) throw new Error(`deploy/rbac.yaml has no ClusterRole ${name}`);
  return found;
}

describe("security review", () => {
  let built: ReturnType<typeof synth>;

  beforeAll(() => {
    built = synth();
  });

  describe("Kubernetes RBAC (deploy/rbac.yaml)", () => {
    it("lets the panic ClusterRole patch, update and delete only the panic GlobalNetworkPolicy", () => {
      // Defect: the calico-flows-panic ClusterRole grants patch, update and delete on every GlobalNetworkPolicy
      // (and every tier's, through tier.globalnetworkpolicies, and every CRD globalnetworkpolicy), with no
      // resourceNames, although its own comment says it writes "the panic GlobalNetworkPolicy" only.
      // Impact: the panic function's role, and every person given the group for `panic --direct`, can rewrite
      // or delete the cluster's isolation policies (a security tier's deny rules, the Log rules calico-flows
      // itself depends on) — "never touches what it did not create" (docs/panic.md) rests on the code alone.
      // Expected: the modifying verbs are limited by resourceNames to the panic policy's names (`allow-all`,
      // and `default.allow-all` as the CRD backend stores it); create and list, which Kubernetes cannot limit by
      // name, may stay in separate rules.
      const panicNames = new Set(["allow-all", "default.allow-all"]);
      const modifying = ["patch", "update", "delete"];
      const unrestricted: string[] = [];
      for (const rule of clusterRole("calico-flows-panic").rules ?? []) {
        const policies = (rule.resources ?? []).filter((r) => /(^|\.)globalnetworkpolicies$/.test(r));
        const verbs = (rule.verbs ?? []).filter((v) => modifying.includes(v) || v === "*");
        if (policies.length === 0 || verbs.length === 0) continue;
        const names = rule.resourceNames ?? [];
        if (names.length === 0 || names.some((n) => !panicNames.has(n))) {
          unrestricted.push(
            `${(rule.apiGroups ?? []).join(",")} ${policies.join(",")} [${verbs.join(",")}] on ${
              names.length === 0 ? "every name" : names.join(",")
            }`,
          );
        }
      }
      expect(unrestricted).toEqual([]);
    });

    it("lets the reader ClusterRole only list pods, nodes and namespaces and watch pods: the reads the ingest makes", () => {
      // Defect: calico-flows-reader granted `get` besides `list`, though the live directory only lists
      // (/api/v1/pods, /nodes, /namespaces, with a field selector or paged; functions/adapters/kube/live-directory.ts)
      // and watches pods for a second to catch up after a full list.
      // Impact: a verb the function never uses, held by a function that parses untrusted log text.
      // Expected: exactly `list` on the three core resources and `watch` on pods, nothing else.
      const rules = clusterRole("calico-flows-reader").rules ?? [];
      const grants = rules.flatMap((r) =>
        (r.apiGroups ?? []).flatMap((group) =>
          (r.resources ?? []).flatMap((resource) =>
            (r.verbs ?? []).map((verb) => `${group}/${resource}:${verb}${r.resourceNames ? " by name" : ""}`),
          ),
        ),
      );
      expect(grants.sort()).toEqual(["/namespaces:list", "/nodes:list", "/pods:list", "/pods:watch"]);
    });
  });

  describe("EKS access entries", () => {
    it("gives the ingest role only the reader group, which covers every list it makes, and no view access policy", () => {
      // Defect: besides the calico-flows-reader group, the ingest role's access entry carries the AWS-managed
      // AmazonEKSViewPolicy at cluster scope. The ingest function only lists pods, nodes and namespaces
      // (functions/adapters/kube/live-directory.ts), all of which the reader group already grants; the view
      // policy (like Kubernetes' `view` role) adds read access to every namespace's ConfigMaps, pod logs,
      // Services, Endpoints, events and workloads.
      // Impact: a function that parses untrusted log text holds cluster-wide read of application logs and
      // configuration it never uses; AWS's own guidance is to use a Kubernetes group instead when the access
      // policies do not fit.
      // Expected: the ingest entry maps to the reader group only, with no access policy.
      const reader = clusterRole("calico-flows-reader").rules ?? [];
      const grants = (resource: string, verb: string) =>
        reader.some(
          (r) =>
            (r.apiGroups ?? []).includes("") && r.resources?.includes(resource) && r.verbs?.includes(verb),
        );
      for (const resource of ["pods", "nodes", "namespaces"])
        expect(grants(resource, "list"), resource).toBe(true);

      const { stack, template } = built;
      const ingestRole = logicalId(stack, stack.ingest.function.role);
      const entries = Object.values(template.findResources("AWS::EKS::AccessEntry")) as {
        Properties: Json;
      }[];
      const ingestEntry = entries.find(
        (e) =>
          JSON.stringify(e.Properties.PrincipalArn) === JSON.stringify({ "Fn::GetAtt": [ingestRole, "Arn"] }),
      );
      expect(ingestEntry?.Properties.KubernetesGroups).toEqual([READER_KUBERNETES_GROUP]);
      expect(ingestEntry?.Properties.AccessPolicies ?? []).toEqual([]);
    });
  });

  describe("IAM", () => {
    it("confines the panic role's DynamoDB access to its own audit partition", () => {
      // Defect: the panic role may PutItem and Query anywhere in the flow store's table, although the panic
      // function only writes and reads its audit items under `PANIC#<cluster>`
      // (functions/adapters/dynamo/panic-audit.ts).
      // Impact: the function behind the most privileged button can overwrite any flow, alert, coverage record or
      // IP-holder history item (an unconditional PutItem replaces it whole) and read every flow of the cluster.
      // Expected: the grant carries a `dynamodb:LeadingKeys` condition (ForAllValues) naming only
      // PANIC#<cluster>, as DynamoDB's fine-grained access control provides for exactly this.
      const { stack, config, template } = built;
      const role = logicalId(stack, stack.panic.function.role);
      const grants = statementsOf(template, role).filter((s) =>
        list(s.Action).some((a) => a.startsWith("dynamodb:")),
      );
      expect(grants.length).toBeGreaterThan(0);
      for (const grant of grants) {
        const leadingKeys = Object.entries(grant.Condition ?? {})
          .filter(([operator]) => operator.startsWith("ForAllValues:"))
          .map(([, keys]) => (keys as Json)["dynamodb:LeadingKeys"])
          .filter((v) => v !== undefined);
        expect(
          leadingKeys.map((v) => list(v)),
          `leading keys of the grant of ${list(grant.Action).join(", ")}`,
        ).toEqual([[panicPartitionKey(config.clusterName)]]);
      }
    });

    it("denies the ingest and query roles the panic audit partition", () => {
      // Defect: the ingest role (which parses untrusted log text) holds PutItem and UpdateItem on the whole table,
      // the query role Query: nothing kept them off `PANIC#<cluster>`.
      // Impact: a compromised ingest function could forge or rewrite the record of who pressed the panic button and
      // why; the query function could read the audit trail, copies of taken-over policies included.
      // Expected: an explicit Deny of each role's DynamoDB actions on the table whenever a leading key is PANIC#…
      // (ForAnyValue: a request without leading keys is not denied, rather than every request).
      const { stack, template } = built;
      const table = { "Fn::GetAtt": [logicalId(stack, stack.flowStore.table), "Arn"] };
      const cases = [
        [stack.ingest.function, "FlowStoreIngestNotPanicAudit", [...INGEST_ACTIONS]],
        [stack.queries.function, "FlowStoreQueryNotPanicAudit", QUERY_ACTIONS[0]],
      ] as const;
      for (const [fn, sid, actions] of cases) {
        const denies = statementsOf(template, logicalId(stack, fn.role)).filter((s) => s.Effect === "Deny");
        expect(denies, sid).toEqual([
          {
            Sid: sid,
            Effect: "Deny",
            Action: actions,
            // The table only: an index's keys are `<cluster>#…`, and a cluster named PANIC would start with PANIC#.
            Resource: table,
            Condition: { "ForAnyValue:StringLike": { "dynamodb:LeadingKeys": ["PANIC#*"] } },
          },
        ]);
      }
    });

    it("keeps every other partition of the table out of the denied pattern, even for a cluster named PANIC", () => {
      const cluster = "PANIC";
      const at = "2024-04-19T04:52:00.000Z";
      const partitions = [
        flowPk(cluster, at),
        flowHoursPartition(cluster),
        alertStateKey(cluster, "digest").pk,
        alertPartition(cluster, "2024-04-19"),
        alertDaysPartition(cluster),
        foldClaimKey(cluster, "token", "sk").pk,
        tallyKey(cluster, "subject", 0).pk,
        historyPk(cluster, "192.168.1.1"),
        coveragePartition({ cluster, group: "/eks/nodes", stream: "ip-10-0-0-1" }),
        memoKey(cluster, "contribution").pk,
      ];
      expect(partitions.filter((pk) => pk.startsWith("PANIC#"))).toEqual([]);
      expect(panicPartitionKey(cluster)).toBe("PANIC#PANIC");
    });
  });

  describe("CLI", () => {
    const fetchSpy = vi.fn(
      async (_url: string | URL | Request, _init?: RequestInit) =>
        new Response(JSON.stringify({ ok: true }), {
          status: 200,
          headers: { "content-type": "application/json" },
        }),
    );
    afterEach(() => {
      vi.unstubAllGlobals();
      fetchSpy.mockClear();
    });

    it("refuses to send a SigV4-signed panic request over plain HTTP to anything but loopback", async () => {
      // Defect: callApi (cli/api-client.ts), behind `panic --api` and `flows/alerts --api`, signs and sends the
      // request whatever the URL's scheme: an `http://` stage URL (a typo, a pasted link, a proxy rewriting it)
      // puts the Authorization header, the session token and the body on the wire in clear.
      // Impact: anyone on the path can replay the captured signed `POST /panic` against the real (HTTPS) API
      // within SigV4's clock window and open every customer namespace, in the operator's name.
      // Expected: plain HTTP is refused before anything is signed or sent, except to a loopback address (which
      // the local tests and emulators use).
      vi.stubGlobal("fetch", fetchSpy);
      const credentials = async () => ({
        accessKeyId: "AKIDEXAMPLE",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        sessionToken: "FwoGZXIvYXdzEXAMPLESESSIONTOKEN",
      });
      const apply = (api: string) =>
        callApi({
          api,
          method: "POST",
          path: "/panic",
          body: { reason: "INC-42 payments down" },
          region: "eu-west-1",
          credentials,
        });

      // Loopback over HTTP keeps working (what the suite's SigV4 gateway listens on).
      await expect(apply("http://127.0.0.1:8080/v1")).resolves.toEqual({ ok: true });
      fetchSpy.mockClear();

      const outcome = await apply("http://abc123.execute-api.eu-west-1.amazonaws.com/v1").then(
        () => "sent",
        (error: Error) => `refused: ${error.message}`,
      );
      const sent = fetchSpy.mock.calls.map(([url, init]) => ({
        url: String(url),
        headers: Object.keys((init?.headers ?? {}) as Record<string, string>).sort(),
      }));
      expect(sent, "requests put on the wire over plain HTTP").toEqual([]);
      expect(outcome).toMatch(/^refused: .*https/i);
    });

    describe("a kubeconfig that cannot be parsed", () => {
      let dir: string;
      beforeAll(() => {
        dir = mkdtempSync(join(tmpdir(), "cf-security-"));
      });
      afterAll(() => rmSync(dir, { recursive: true, force: true }));

      it("is reported without printing the credentials it holds", async () => {
        // Defect: loadKubeconfig (functions/adapters/kube/cluster-access.ts) puts the YAML parser's message in
        // its error, and js-yaml's message quotes the lines around the fault; `calico-flows panic --direct` and
        // `replay` print it on stderr. A kubeconfig with one mis-indented line next to its user's credentials
        // prints the bearer token and password.
        // Impact: the cluster credentials end up in terminal scrollback, CI logs and incident-channel pastes of
        // the error, exactly when an operator is hurrying through an incident with `--direct`.
        // Expected: the error names the file and the line and column at fault, and quotes none of the file's
        // content.
        const token = "07401b.f395accd246ae52d"; // a kubeadm bootstrap token
        const password = "hunter2-cluster-admin";
        const file = join(dir, "kubeconfig");
        writeFileSync(
          file,
          [
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            "- cluster:",
            "    server: https://127.0.0.1:6443",
            "  name: prod",
            "users:",
            "- name: admin",
            "  user:",
            `    token: ${token}`,
            `    password: ${password}`,
            "   username: admin",
            "contexts:",
            "- context: {cluster: prod, user: admin}",
            "  name: prod",
            "current-context: prod",
            "",
          ].join("\n"),
        );
        const run = await runCli(["panic", "status", "--direct", "--kubeconfig", file]);
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(file);
        expect(run.stderr).not.toContain(token);
        expect(run.stderr).not.toContain(password);
      });
    });
  });
});
