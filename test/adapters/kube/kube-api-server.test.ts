// The local Kubernetes API server other tests rely on: its wire format must be the real one.
import { request } from "node:https";
import { CustomObjectsApi, Observable, PatchStrategy } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { kubeApiClient, loadKubeconfig } from "../../../functions/adapters/kube/cluster-access.ts";
import {
  type KubeApiServer,
  kubeObjects,
  type ResourceSpec,
  startKubeApiServer,
} from "../../support/kube-api-server.ts";

const GNP: ResourceSpec = {
  group: "crd.projectcalico.org",
  version: "v1",
  plural: "globalnetworkpolicies",
  kind: "GlobalNetworkPolicy",
  namespaced: false,
};
const BASE = "/apis/crd.projectcalico.org/v1/globalnetworkpolicies";
let server: KubeApiServer;

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: wire JSON
  body: any;
}

function call(
  method: string,
  path: string,
  options: { body?: unknown; contentType?: string; token?: string | null } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: "application/json" };
    const token = options.token === undefined ? server.token : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const text =
      options.body === undefined
        ? undefined
        : typeof options.body === "string"
          ? options.body
          : JSON.stringify(options.body);
    if (text !== undefined) headers["content-type"] = options.contentType ?? "application/json";
    const req = request(
      new URL(path, server.url),
      { method, ca: server.caPem, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8");
          let body: unknown = raw;
          try {
            body = JSON.parse(raw);
          } catch {
            // plain text (healthz)
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on("error", reject);
    req.end(text);
  });
}

const policy = (name: string, order = 100) => ({
  apiVersion: "crd.projectcalico.org/v1",
  kind: "GlobalNetworkPolicy",
  metadata: { name },
  spec: { order, types: ["Ingress"] },
});

beforeAll(async () => {
  server = await startKubeApiServer({ resources: [GNP] });
});
afterAll(async () => server.close());
beforeEach(() => {
  server.store.clear();
  server.counts.reset();
});
afterEach(async () => server.setFault(null));

describe("test Kubernetes API server", () => {
  it("requires the bearer token, with a Status object", async () => {
    for (const token of [null, "wrong"]) {
      expect(await call("GET", "/api/v1/pods", { token })).toEqual({
        status: 401,
        body: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: "Unauthorized",
          reason: "Unauthorized",
          code: 401,
        },
      });
    }
  });

  it("serves discovery for core and registered groups, and 404s groups that are not there", async () => {
    expect((await call("GET", "/apis")).body).toMatchObject({
      kind: "APIGroupList",
      groups: [
        { name: "crd.projectcalico.org", preferredVersion: { groupVersion: "crd.projectcalico.org/v1" } },
      ],
    });
    expect((await call("GET", "/apis/crd.projectcalico.org/v1")).body.resources).toEqual([
      {
        name: "globalnetworkpolicies",
        singularName: "globalnetworkpolicy",
        namespaced: false,
        kind: "GlobalNetworkPolicy",
        verbs: ["create", "delete", "get", "list", "patch", "update"],
      },
    ]);
    expect((await call("GET", "/api/v1")).body.resources.map((r: { name: string }) => r.name)).toEqual([
      "pods",
      "nodes",
      "namespaces",
    ]);
    for (const path of ["/apis/projectcalico.org/v3", "/apis/projectcalico.org/v3/globalnetworkpolicies/x"]) {
      expect(await call("GET", path)).toEqual({
        status: 404,
        body: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: "the server could not find the requested resource",
          reason: "NotFound",
          details: {},
          code: 404,
        },
      });
    }
  });

  it("creates, reads, updates with optimistic concurrency, patches and deletes", async () => {
    const created = await call("POST", BASE, { body: policy("allow-all") });
    expect(created.status).toBe(201);
    expect(created.body.metadata).toMatchObject({ name: "allow-all", generation: 1 });
    expect(created.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);

    const again = await call("POST", BASE, { body: policy("allow-all") });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      reason: "AlreadyExists",
      message: 'globalnetworkpolicies.crd.projectcalico.org "allow-all" already exists',
      details: { name: "allow-all", group: "crd.projectcalico.org", kind: "globalnetworkpolicies" },
    });

    const stale = { ...policy("allow-all", 5), metadata: { name: "allow-all", resourceVersion: "1" } };
    const conflict = await call("PUT", `${BASE}/allow-all`, { body: stale });
    expect(conflict.status).toBe(409);
    expect(conflict.body.message).toBe(
      'Operation cannot be fulfilled on globalnetworkpolicies.crd.projectcalico.org "allow-all": the object has been modified; please apply your changes to the latest version and try again',
    );

    const current = { ...policy("allow-all", 5), metadata: created.body.metadata };
    const updated = await call("PUT", `${BASE}/allow-all`, { body: current });
    expect(updated.status).toBe(200);
    expect(updated.body.metadata.generation).toBe(2);
    expect(Number(updated.body.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.body.metadata.resourceVersion),
    );
    expect(updated.body.metadata.uid).toBe(created.body.metadata.uid);

    const merged = await call("PATCH", `${BASE}/allow-all`, {
      body: { spec: { order: 7, types: null } },
      contentType: "application/merge-patch+json",
    });
    expect(merged.body.spec).toEqual({ order: 7 });
    const patched = await call("PATCH", `${BASE}/allow-all`, {
      body: [
        { op: "test", path: "/spec/order", value: 7 },
        { op: "add", path: "/spec/selector", value: "all()" },
      ],
      contentType: "application/json-patch+json",
    });
    expect(patched.body.spec).toEqual({ order: 7, selector: "all()" });
    const strategic = await call("PATCH", `${BASE}/allow-all`, {
      body: { spec: {} },
      contentType: "application/strategic-merge-patch+json",
    });
    expect(strategic.status).toBe(415);

    const deleted = await call("DELETE", `${BASE}/allow-all`);
    expect(deleted.body).toMatchObject({ kind: "Status", status: "Success", details: { name: "allow-all" } });
    const gone = await call("GET", `${BASE}/allow-all`);
    expect(gone.status).toBe(404);
    expect(gone.body.message).toBe('globalnetworkpolicies.crd.projectcalico.org "allow-all" not found');
    expect(server.counts.snapshot()).toMatchObject({ [`POST ${BASE}`]: 2, [`PATCH ${BASE}/allow-all`]: 3 });
  });

  it("server-side applies: creates or merges, records fieldManager and force, needs a fieldManager", async () => {
    const missing = await call("PATCH", `${BASE}/panic`, {
      body: policy("panic"),
      contentType: "application/apply-patch+yaml",
    });
    expect(missing.status).toBe(422);
    expect(missing.body.message).toMatch(/fieldManager: Required value/);

    const yaml =
      "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\nmetadata:\n  name: panic\nspec:\n  order: 100\n";
    const created = await call("PATCH", `${BASE}/panic?fieldManager=calico-flows&force=true`, {
      body: yaml,
      contentType: "application/apply-patch+yaml",
    });
    expect(created.status).toBe(201);
    // Through the client, as the panic adapter calls it.
    const api = kubeApiClient(loadKubeconfig({ kubeconfig: server.kubeconfigPath }), CustomObjectsApi, 2_000);
    const merged = await api.patchClusterCustomObject(
      {
        group: GNP.group,
        version: GNP.version,
        plural: GNP.plural,
        name: "panic",
        body: { ...policy("panic"), spec: { types: ["Egress"] } },
        fieldManager: "other",
      },
      {
        middleware: [
          {
            pre: (r) => {
              r.setHeaderParam("Content-Type", PatchStrategy.ServerSideApply);
              return new Observable(Promise.resolve(r));
            },
            post: (r) => new Observable(Promise.resolve(r)),
          },
        ],
        middlewareMergeStrategy: "append",
      },
    );
    expect(merged.spec).toEqual({ order: 100, types: ["Egress"] });
    expect(merged.metadata.managedFields.map((f: { manager: string }) => f.manager)).toEqual([
      "calico-flows",
      "other",
    ]);
    expect(server.applies()).toEqual([
      {
        resource: "globalnetworkpolicies.crd.projectcalico.org",
        namespace: null,
        name: "panic",
        fieldManager: "calico-flows",
        force: true,
        created: true,
      },
      {
        resource: "globalnetworkpolicies.crd.projectcalico.org",
        namespace: null,
        name: "panic",
        fieldManager: "other",
        force: false,
        created: false,
      },
    ]);
  });

  it("refuses to create in a namespace that does not exist", async () => {
    const answer = await call("POST", "/api/v1/namespaces/nowhere/pods", {
      body: kubeObjects.pod({ name: "p", namespace: "nowhere", ip: null, created: 0 }),
    });
    expect(answer.status).toBe(404);
    expect(answer.body.message).toBe('namespaces "nowhere" not found');
  });

  it("lists with field and label selectors, and pages with continue until the token expires", async () => {
    for (let i = 0; i < 5; i++) {
      server.store.put(
        "pods",
        kubeObjects.pod({
          name: `p${i}`,
          namespace: i < 3 ? "a" : "b",
          ip: `10.0.0.${i}`,
          created: 0,
          labels: { app: i % 2 === 0 ? "even" : "odd" },
        }),
      );
    }
    const byIp = await call("GET", "/api/v1/pods?fieldSelector=status.podIP%3D10.0.0.3");
    expect(byIp.body).toMatchObject({
      kind: "PodList",
      apiVersion: "v1",
      metadata: { resourceVersion: expect.any(String) },
    });
    expect(byIp.body.items.map((p: { metadata: { name: string } }) => p.metadata.name)).toEqual(["p3"]);
    expect(byIp.body.items[0].kind).toBeUndefined();
    const labelled = await call("GET", "/api/v1/namespaces/a/pods?labelSelector=app%3Deven");
    expect(labelled.body.items.map((p: { metadata: { name: string } }) => p.metadata.name)).toEqual([
      "p0",
      "p2",
    ]);
    const setBased = await call(
      "GET",
      `/api/v1/pods?labelSelector=${encodeURIComponent("app in (odd),!missing")}`,
    );
    expect(setBased.body.items).toHaveLength(2);
    const unsupported = await call("GET", "/api/v1/pods?fieldSelector=spec.foo%3Dbar");
    expect(unsupported).toMatchObject({
      status: 400,
      body: { reason: "BadRequest", message: "field label not supported: spec.foo" },
    });

    const first = await call("GET", "/api/v1/pods?limit=2");
    expect(first.body.metadata).toMatchObject({ remainingItemCount: 3, continue: expect.any(String) });
    // Continuing is consistent: a pod created meanwhile is not in this list.
    server.store.put("pods", kubeObjects.pod({ name: "p00", namespace: "a", ip: "10.0.0.9", created: 0 }));
    const second = await call(
      "GET",
      `/api/v1/pods?limit=2&continue=${encodeURIComponent(first.body.metadata.continue)}`,
    );
    expect(second.body.items.map((p: { metadata: { name: string } }) => p.metadata.name)).toEqual([
      "p2",
      "p3",
    ]);
    server.expireContinueTokens();
    const expired = await call(
      "GET",
      `/api/v1/pods?limit=2&continue=${encodeURIComponent(second.body.metadata.continue)}`,
    );
    expect(expired).toMatchObject({ status: 410, body: { kind: "Status", reason: "Expired", code: 410 } });
  });

  it("serves watches: every object from 0, the changes since a version, 410 once let go, until timeoutSeconds", async () => {
    const pod = (name: string, ip: string) =>
      kubeObjects.pod({ name, namespace: "shop", ip, created: "2026-04-19T04:00:00Z" });
    const a = server.store.put("pods", pod("a", "10.0.0.1"));
    const since = (a.metadata as { resourceVersion: string }).resourceVersion;
    server.store.put("pods", pod("b", "10.0.0.2"));
    server.store.delete("pods", "a", "shop");
    // One event a line (call() has parsed a body of one line already).
    const events = (body: unknown) =>
      (typeof body === "string"
        ? body
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line))
        : [body]
      ).map(
        // biome-ignore lint/suspicious/noExplicitAny: wire JSON
        (e: any) => [e.type, e.object.kind, e.object.metadata?.name ?? e.object.code],
      );

    let started = performance.now();
    const changes = await call("GET", `/api/v1/pods?watch=1&resourceVersion=${since}&timeoutSeconds=1`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
    expect(changes.status).toBe(200);
    expect(events(changes.body)).toEqual([
      ["ADDED", "Pod", "b"],
      ["DELETED", "Pod", "a"],
    ]);
    expect(
      events((await call("GET", "/api/v1/pods?watch=1&resourceVersion=0&timeoutSeconds=1")).body),
    ).toEqual([["ADDED", "Pod", "b"]]);

    // Live changes as they come, and a bookmark 2 s before the end.
    const now = (await call("GET", "/api/v1/pods")).body.metadata.resourceVersion as string;
    const live = call(
      "GET",
      `/api/v1/pods?watch=true&resourceVersion=${now}&timeoutSeconds=3&allowWatchBookmarks=true`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.openWatches()).toBe(1);
    server.store.put("pods", pod("c", "10.0.0.3"));
    expect(events((await live).body)).toEqual([
      ["ADDED", "Pod", "c"],
      ["BOOKMARK", "Pod", undefined],
    ]);
    expect(server.openWatches()).toBe(0);

    // From a version not reached yet (an etcd restored from a backup): served, no refusal, the changes after it.
    const ahead = String(Number(now) + 1_000);
    started = performance.now();
    const unreached = await call("GET", `/api/v1/pods?watch=1&resourceVersion=${ahead}&timeoutSeconds=1`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
    expect(unreached).toMatchObject({ status: 200, body: "" });

    server.compactWatchHistory();
    started = performance.now();
    const gone = await call("GET", `/api/v1/pods?watch=1&resourceVersion=${since}&timeoutSeconds=1`);
    expect(performance.now() - started).toBeLessThan(900);
    expect(events(gone.body)).toEqual([["ERROR", "Status", 410]]);
  });

  it("paces a watch's events when asked, and does not send those not out at its timeout", async () => {
    const pod = (name: string) =>
      kubeObjects.pod({ name, namespace: "shop", ip: "10.0.0.1", created: "2026-04-19T04:00:00Z" });
    const since = (await call("GET", "/api/v1/pods")).body.metadata.resourceVersion as string;
    for (const name of ["a", "b", "c", "d", "e"]) server.store.put("pods", pod(name));
    server.setWatchPace(400);
    try {
      const started = performance.now();
      const paced = await call("GET", `/api/v1/pods?watch=1&resourceVersion=${since}&timeoutSeconds=1`);
      expect(performance.now() - started).toBeGreaterThanOrEqual(990);
      // Out at 0, 400 and 800 ms; the watch ends at 1,000.
      const names = String(paced.body)
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).object.metadata.name);
      expect(names).toEqual(["a", "b", "c"]);
    } finally {
      server.setWatchPace(null);
    }
  });

  it("applies faults to matching requests only, as many times as asked", async () => {
    await server.setFault({ fault: { kind: "status", code: 503 }, path: "/api/v1/nodes", skip: 1, times: 2 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await call("GET", "/api/v1/nodes")).status);
    statuses.push((await call("GET", "/api/v1/pods")).status);
    expect(statuses).toEqual([200, 503, 503, 200, 200]);
    expect(server.counts.get("GET", "/api/v1/nodes")).toBe(4);
    expect(server.counts.total({ method: "GET", path: "/api/v1/" })).toBe(5);

    await server.setFault({ kind: "down" });
    await expect(call("GET", "/api/v1/nodes")).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await server.setFault(null);
    expect((await call("GET", "/api/v1/nodes")).status).toBe(200);
  });
});
