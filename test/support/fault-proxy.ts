// An HTTP proxy on loopback in front of dynalite that fails a share of DynamoDB requests the way DynamoDB does:
// throttling (400 ProvisionedThroughputExceededException), a 500 InternalServerError before the request is
// applied, or a 500 after it was applied (the answer lost: the case that makes idempotency necessary). The
// choice is a seeded pseudo-random sequence, so a run's fault share is reproducible. Every request is logged.
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { prng } from "../../bench/corpus.ts";

export type Outcome = "forwarded" | "throttled" | "error" | "lost";

export interface LoggedRequest {
  operation: string;
  body: Record<string, unknown>;
  outcome: Outcome;
}

export interface FaultPlan {
  /** Share of eligible requests answered 400 throttling, not forwarded. */
  throttle?: number;
  /** Share answered 500, not forwarded. */
  error?: number;
  /** Share forwarded (so applied), then answered 500. */
  lost?: number;
  seed?: number;
  /** Which requests may fail. @default all */
  eligible?: (operation: string, body: Record<string, unknown>) => boolean;
}

export interface FaultProxy {
  endpoint: string;
  readonly log: readonly LoggedRequest[];
  /** Requests logged, optionally only those of one operation and outcome. */
  count(filter?: { operation?: string; outcome?: Outcome }): number;
  setPlan(plan: FaultPlan): void;
  /** Holds the requests `which` selects (not answered, not forwarded) until `release`; they are then forwarded. */
  hold(which: (operation: string, body: Record<string, unknown>) => boolean): void;
  /** Forwards the held requests and holds no more; resolves once every one of them is answered. */
  release(): Promise<void>;
  /** Requests being held now. */
  readonly held: number;
  clearLog(): void;
  close(): Promise<void>;
}

const ERROR_TYPES = {
  throttled: {
    status: 400,
    type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    message:
      "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
  },
  error: {
    status: 500,
    type: "com.amazonaws.dynamodb.v20120810#InternalServerError",
    message: "Internal server error",
  },
} as const;

function sendError(res: import("node:http").ServerResponse, kind: "throttled" | "error"): void {
  const { status, type, message } = ERROR_TYPES[kind];
  const body = JSON.stringify({ __type: type, message });
  res.writeHead(status, {
    "Content-Type": "application/x-amz-json-1.0",
    "Content-Length": Buffer.byteLength(body),
    "x-amzn-RequestId": `fault-${Math.random().toString(36).slice(2)}`,
  });
  res.end(body);
}

/** Sends one request on to `target` and reads its whole answer (also used by tests' own scripted proxies). */
export function forward(
  target: URL,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
  body: Buffer,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: target.hostname, port: target.port, method, path, headers: { ...headers, host: target.host } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export async function startFaultProxy(target: string, initial: FaultPlan = {}): Promise<FaultProxy> {
  const targetUrl = new URL(target);
  let plan = initial;
  let next = prng(initial.seed ?? 1);
  const log: LoggedRequest[] = [];
  let holding: ((operation: string, body: Record<string, unknown>) => boolean) | undefined;
  let open: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();
  const inFlight = new Set<Promise<void>>();
  let held = 0;

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks);
      const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw.toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        // Not JSON: forwarded as it is, dynalite answers it.
      }
      let outcome: Outcome = "forwarded";
      if (plan.eligible === undefined || plan.eligible(operation, body)) {
        const r = next();
        const throttle = plan.throttle ?? 0;
        const error = plan.error ?? 0;
        const lost = plan.lost ?? 0;
        if (r < throttle) outcome = "throttled";
        else if (r < throttle + error) outcome = "error";
        else if (r < throttle + error + lost) outcome = "lost";
      }
      log.push({ operation, body, outcome });
      if (outcome === "throttled" || outcome === "error") {
        sendError(res, outcome);
        return;
      }
      let done = () => {};
      if (holding?.(operation, body) === true) {
        const answered = new Promise<void>((resolve) => {
          done = resolve;
        });
        inFlight.add(answered);
        void answered.then(() => inFlight.delete(answered));
        held++;
        await gate;
        held--;
      }
      try {
        const answer = await forward(targetUrl, req.method ?? "POST", req.url ?? "/", req.headers, raw);
        if (outcome === "lost") {
          sendError(res, "error");
          return;
        }
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      } catch (error) {
        res.writeHead(502, { "Content-Type": "text/plain" });
        res.end(String(error));
      } finally {
        done();
      }
    });
  });
  // As the embedded store (embedded.ts): idle connections are never closed under a client about to reuse them.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    count(filter = {}) {
      return log.filter(
        (r) =>
          (filter.operation === undefined || r.operation === filter.operation) &&
          (filter.outcome === undefined || r.outcome === filter.outcome),
      ).length;
    },
    setPlan(p) {
      plan = p;
      next = prng(p.seed ?? 1);
    },
    hold(which) {
      holding = which;
      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
    },
    async release() {
      holding = undefined;
      open();
      await Promise.all([...inFlight]);
    },
    get held() {
      return held;
    },
    clearLog() {
      log.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}
