// `calico-flows panic apply|status|revert`: the panic button from a terminal. Through the deployed API
// (`--api URL`, SigV4 with the default AWS credentials) or straight to the cluster with a kubeconfig
// (`--direct`, for when AWS itself is the problem) — the latter runs the Lambda's own service code.
import { hostname, userInfo } from "node:os";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { dumpYaml } from "@kubernetes/client-node";
import { type Command, InvalidArgumentError, Option } from "commander";
import { startEmbeddedStore } from "../../functions/adapters/dynamo/embedded.ts";
import { DynamoPanicAudit } from "../../functions/adapters/dynamo/panic-audit.ts";
import { CalicoPolicies, PANIC_KUBECONFIG_FIXES } from "../../functions/adapters/kube/calico.ts";
import { loadKubeconfig } from "../../functions/adapters/kube/cluster-access.ts";
import { EventBridgeExpiryScheduler } from "../../functions/adapters/scheduler.ts";
import type { AlertPublisher } from "../../functions/core/alert-delivery.ts";
import { directRequester } from "../../functions/core/alert-message.ts";
import {
  CALICO_API_GROUPS,
  type CalicoApiGroup,
  DEFAULT_PANIC_SETTINGS,
  describeConflict,
  OutOfTime,
  PanicFailure,
  type PanicPolicySettings,
  POLICY_TYPES,
  type PolicyType,
} from "../../functions/core/panic-policy.ts";
import { SQS_QUEUE_ARN } from "../../functions/panic/config.ts";
import {
  CONFLICTS_UNLISTED,
  DEFAULT_HISTORY,
  expiryNotScheduled,
  failureBody,
  MAX_HISTORY,
  MAX_TTL_MINUTES,
  type PanicResponse,
  PanicService,
  racedExpiry,
} from "../../functions/panic/service.ts";
import type { ApiRequest, ApiUnanswered } from "../api-client.ts";
import { apiStageUrl } from "../api-url.ts";
import {
  type CommonOptions,
  checkKubeconfigCluster,
  commonOptions,
  describeError,
  parseInteger,
  requireClusterNamed,
  UsageError,
  withCommonOptions,
} from "../common.ts";
import { table } from "../format.ts";
import { openAlertSink } from "../sink.ts";

interface PanicOptions {
  api?: string;
  direct?: boolean;
  kubeconfig?: string;
  context?: string;
  json?: boolean;
  reason?: string;
  ttl?: number;
  dryRun?: boolean;
  force?: boolean;
  history?: number;
  apiGroup: CalicoApiGroup;
  policyName: string;
  namespaceSelector: string;
  order: number;
  tier: string;
  types: PolicyType[];
  timeout: number;
  alertsTopic?: string;
  scheduleGroup?: string;
  schedulerRoleArn?: string;
  expiryFunctionArn?: string;
  deadLetterQueueArn?: string;
}

type Action = "apply" | "status" | "revert";

function parseTypes(value: string): PolicyType[] {
  const types = [
    ...new Set(
      value
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    ),
  ];
  for (const t of types) {
    if (!(POLICY_TYPES as readonly string[]).includes(t)) {
      throw new InvalidArgumentError(`--types takes Ingress and/or Egress, got "${t}"`);
    }
  }
  if (types.length === 0) throw new InvalidArgumentError("--types needs Ingress and/or Egress");
  return types as PolicyType[];
}

function parseOrder(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`--order must be a number ≥ 0, got "${value}"`);
  return n;
}

function addAccessOptions(command: Command): Command {
  const viaApi = (o: Record<string, unknown>) =>
    o.api === undefined ? undefined : "through --api, the deployed stack keeps the audit in its own table";
  return withCommonOptions(command, {
    internalCidr: "it reads and stores no flow",
    // --direct audits into --table when given, else into the embedded store under --store.
    store: (o) =>
      viaApi(o) ??
      (o.table === undefined ? undefined : "--table names its store: the embedded store is not opened"),
    table: viaApi,
    // --api signs for its region; --direct calls AWS only for an audit --table and an expiry --schedule-group.
    region: (o) =>
      o.direct === true && o.table === undefined && o.scheduleGroup === undefined
        ? "with --direct it is the region of --table and --schedule-group, and neither is given"
        : undefined,
  })
    .addOption(
      new Option(
        "--api <url>",
        "the deployed API's stage URL (SigV4 with the default AWS credentials)",
      ).argParser(apiStageUrl),
    )
    .addOption(
      new Option("--direct", "go straight to the cluster with a kubeconfig (when AWS itself is the problem)"),
    )
    .addOption(
      new Option("--kubeconfig <file>", "kubeconfig for --direct (default KUBECONFIG, ~/.kube/config)"),
    )
    .addOption(new Option("--context <name>", "kubeconfig context for --direct"))
    .addOption(new Option("--json", "print the API's JSON answer"))
    .addOption(
      new Option("--api-group <group>", "--direct: Calico API group")
        .choices(CALICO_API_GROUPS)
        .default(DEFAULT_PANIC_SETTINGS.apiGroup),
    )
    .addOption(
      new Option("--policy-name <name>", "--direct: panic policy name").default(DEFAULT_PANIC_SETTINGS.name),
    )
    .addOption(
      new Option("--namespace-selector <selector>", "--direct: namespaces the policy opens up").default(
        DEFAULT_PANIC_SETTINGS.namespaceSelector,
      ),
    )
    .addOption(
      new Option("--order <n>", "--direct: policy order (lower is evaluated first)")
        .argParser(parseOrder)
        .default(DEFAULT_PANIC_SETTINGS.order),
    )
    .addOption(
      new Option("--tier <tier>", "--direct: Calico tier of the policy").default(DEFAULT_PANIC_SETTINGS.tier),
    )
    .addOption(
      new Option("--types <list>", "--direct: directions allowed, Ingress,Egress")
        .argParser(parseTypes)
        .default([...DEFAULT_PANIC_SETTINGS.types], "Ingress,Egress"),
    )
    .addOption(
      new Option("--timeout <seconds>", "--direct: per-request Kubernetes timeout")
        .argParser(parseInteger("--timeout", 1, 120))
        .default(10),
    )
    .addOption(new Option("--alerts-topic <arn>", "--direct: SNS topic to announce the action on"));
}

function addExpiryOptions(command: Command): Command {
  return command
    .addOption(new Option("--schedule-group <name>", "--direct: EventBridge Scheduler group for the expiry"))
    .addOption(new Option("--scheduler-role-arn <arn>", "--direct: role the expiry schedule assumes"))
    .addOption(
      new Option("--expiry-function-arn <arn>", "--direct: the panic function the expiry schedule invokes"),
    )
    .addOption(
      new Option(
        "--dead-letter-queue-arn <arn>",
        "--direct: SQS queue the expiry schedule sends a revert it cannot deliver to (stack output PanicDeadLettersQueueArn)",
      ).argParser(parseQueueArn),
    );
}

function parseQueueArn(value: string): string {
  if (!SQS_QUEUE_ARN.test(value))
    throw new InvalidArgumentError(`--dead-letter-queue-arn: expected an SQS queue ARN, got "${value}"`);
  return value;
}

function settingsOf(o: PanicOptions): PanicPolicySettings {
  return {
    apiGroup: o.apiGroup,
    name: o.policyName,
    namespaceSelector: o.namespaceSelector,
    order: o.order,
    tier: o.tier,
    types: o.types,
  };
}

interface DirectRuntime {
  service: PanicService;
  requester: string;
  close(): Promise<void>;
}

/**
 * Wires the Lambda's service to a kubeconfig, the flow store's table (or the embedded store) and SNS. A `--cluster`
 * given (`clusterGiven`) must be the EKS cluster the kubeconfig reaches, when it says which.
 */
async function openDirect(
  o: PanicOptions,
  common: CommonOptions,
  clusterGiven: boolean,
): Promise<DirectRuntime> {
  // Before anything is opened: a topic ARN the sink refuses is a usage error, and would otherwise leave the
  // embedded store open (and the command waiting on it) behind its error.
  let sink: AlertPublisher | undefined;
  try {
    sink = o.alertsTopic === undefined ? undefined : openAlertSink(o.alertsTopic);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const kc = loadKubeconfig({ kubeconfig: o.kubeconfig, context: o.context });
  if (clusterGiven) checkKubeconfigCluster(kc, common.cluster);
  const where = `kubeconfig context "${kc.getCurrentContext()}" (${kc.getCurrentCluster()?.server})`;
  const closers: (() => Promise<void> | void)[] = [];
  let audit: DynamoPanicAudit;
  if (common.table !== undefined) {
    const client = new DynamoDBClient(common.region === undefined ? {} : { region: common.region });
    closers.push(() => client.destroy());
    audit = new DynamoPanicAudit({ client, tableName: common.table });
  } else {
    // No table: the audit trail is kept in the local embedded store, so --direct is never unaudited.
    const embedded = await startEmbeddedStore({ dir: common.store, ownThread: true });
    closers.push(() => embedded.close());
    audit = new DynamoPanicAudit({ client: embedded.client, tableName: embedded.tableName });
  }
  let scheduler: EventBridgeExpiryScheduler | undefined;
  // The group alone is enough to remove a schedule; creating one also needs the role (checked by the caller).
  if (o.scheduleGroup !== undefined) {
    const client = new SchedulerClient(common.region === undefined ? {} : { region: common.region });
    closers.push(() => client.destroy());
    scheduler = new EventBridgeExpiryScheduler({
      client,
      groupName: o.scheduleGroup,
      roleArn: o.schedulerRoleArn ?? "",
      ...(o.deadLetterQueueArn === undefined ? {} : { deadLetterArn: o.deadLetterQueueArn }),
    });
  }
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep "unknown"
  }
  return {
    requester: directRequester(`${user}@${hostname()}`, where),
    service: new PanicService({
      cluster: common.cluster,
      settings: settingsOf(o),
      calico: new CalicoPolicies({
        apiGroup: o.apiGroup,
        kubeConfig: () => kc,
        description: where,
        timeoutMs: o.timeout * 1000,
        fixes: PANIC_KUBECONFIG_FIXES,
      }),
      defaultTtlMinutes: 0,
      audit,
      sink,
      scheduler,
      logger: {
        warn: (message) => process.stderr.write(`warning: ${message}\n`),
        error: (message) => process.stderr.write(`warning: ${message}\n`),
      },
    }),
    close: async () => {
      for (const close of closers.reverse()) await close();
    },
  };
}

async function runDirect(
  action: Action,
  o: PanicOptions,
  common: CommonOptions,
  clusterGiven: boolean,
): Promise<PanicResponse> {
  const runtime = await openDirect(o, common, clusterGiven);
  try {
    return await directAction(action, o, runtime);
  } catch (error) {
    throw outcomeOf(action, o, error);
  } finally {
    await runtime.close();
  }
}

function directAction(action: Action, o: PanicOptions, runtime: DirectRuntime): Promise<PanicResponse> {
  switch (action) {
    case "apply":
      return runtime.service.apply({
        reason: o.reason ?? "",
        ttlMinutes: o.ttl ?? 0,
        dryRun: o.dryRun === true,
        force: o.force === true,
        requester: runtime.requester,
        via: "cli",
        expiryTarget: o.expiryFunctionArn,
      });
    case "status":
      return runtime.service.status(o.history ?? DEFAULT_HISTORY, undefined, o.expiryFunctionArn);
    case "revert":
      return runtime.service.revert({
        requester: runtime.requester,
        via: "cli",
        reason: o.reason,
        force: o.force === true,
        // Writing a schedule back (an apply meanwhile) takes the role as well as the target.
        expiryTarget: o.schedulerRoleArn === undefined ? undefined : o.expiryFunctionArn,
      });
  }
}

/** Loaded only for --api, so that --direct works without the AWS credential chain's modules. */
async function callPanicApi(request: ApiRequest): Promise<PanicResponse> {
  const { callApi } = await import("../api-client.ts");
  return callApi<PanicResponse>(request);
}

/** The API client's error (HTTP status and JSON body), recognised without importing its module. */
function apiErrorOf(error: unknown): { status: number; body: unknown; message: string } | undefined {
  return error instanceof Error && error.name === "ApiError" && "status" in error
    ? (error as Error & { status: number; body: unknown })
    : undefined;
}

/**
 * An answer's body as `--json` prints it: as it came when it is a JSON object (the function's error, API Gateway's
 * `{"message": …}`), else (no body, a proxy's text) in one of its own, so that every failure prints one object.
 */
function answerObject(body: unknown, status: number): object {
  if (body !== null && typeof body === "object" && !Array.isArray(body)) return body;
  return {
    error: "http",
    status,
    message: typeof body === "string" ? body : `HTTP ${status} without a JSON body`,
  };
}

/** Exit status of an apply or revert that may or may not have been carried out (OutcomeUnknown). */
const EXIT_OUTCOME_UNKNOWN = 4;

/**
 * An apply or a revert that may or may not have been carried out, so neither done nor refused: the status tells.
 * API Gateway answered 5xx itself, not the panic function (whose answers name their `error`): its 504 after 29 s, a
 * 502 or 503 when the function failed or could not run. Or the function (or `--direct`) answered that its write
 * was sent and given up on (`outcome: "unknown"`).
 */
class OutcomeUnknown extends Error {
  override name = "OutcomeUnknown";
  /** What answered: `HTTP 504`, `HTTP 502 kube-unavailable`, `kube-unavailable`. */
  readonly source: string;
  /** What `--json` prints. */
  readonly body: object;

  constructor(message: string, source: string, body: object) {
    super(message);
    this.source = source;
    this.body = body;
  }
}

/** `error` as an OutcomeUnknown when it leaves unknown whether `action` changed the cluster. */
function outcomeOf(action: Action, o: PanicOptions, error: unknown): unknown {
  if (action === "status" || o.dryRun === true) return error;
  const check = "Run `calico-flows panic status` before trying again";
  const sent =
    `the ${action} may have been carried out: its change was sent to the Kubernetes API, which did not confirm it. ` +
    check;
  if (error instanceof OutOfTime && error.sent)
    return new OutcomeUnknown(sent, error.kind, failureBody(error));
  // By name: the client is loaded only for --api.
  if (error instanceof Error && error.name === "ApiUnanswered") {
    if (!(error as ApiUnanswered).maybeSent) return error;
    return new OutcomeUnknown(
      `the ${action} may have been carried out: the request was sent and no answer came. ${check}`,
      "no answer",
      { error: "no-answer", message: describeError(error.cause), outcome: "unknown" },
    );
  }
  const apiError = apiErrorOf(error);
  if (apiError === undefined || apiError.status < 500) return error;
  const body = apiError.body as { error?: unknown; outcome?: unknown } | null;
  if (body === null || typeof body !== "object" || !("error" in body)) {
    const done = action === "apply" ? "applied" : "reverted";
    return new OutcomeUnknown(
      `the ${action} may have been carried out: API Gateway answered for the panic function, which may still have ` +
        `${done} the policy. ${check}`,
      `HTTP ${apiError.status}`,
      answerObject(body, apiError.status),
    );
  }
  return body.outcome === "unknown"
    ? new OutcomeUnknown(sent, `HTTP ${apiError.status} ${String(body.error)}`, body)
    : error;
}

/**
 * The error for an API that answers for `answered`, not the `--cluster` given: one stack per cluster, so a URL
 * pasted from another stack would open up (or report) another cluster.
 */
function foreignApi(api: string, answered: string, asked: string): Error {
  return new Error(
    `the API at ${api} answers for cluster ${JSON.stringify(answered)}, not ${JSON.stringify(asked)}: give the ` +
      `API of ${JSON.stringify(asked)}'s stack, or --cluster ${answered}`,
  );
}

async function runApi(
  action: Action,
  o: PanicOptions,
  common: CommonOptions,
  clusterGiven: boolean,
): Promise<PanicResponse> {
  const api = o.api as string;
  const region = common.region;
  if (clusterGiven && action !== "status") {
    // Asked before anything changes: the status names the cluster the API's stack serves.
    const status = await callPanicApi({
      api,
      region,
      method: "GET",
      path: "/panic",
      query: { history: "0" },
    });
    if (status.cluster !== common.cluster) throw foreignApi(api, status.cluster, common.cluster);
  }
  const response = await panicRequest(action, o, api, region).catch((error: unknown) => {
    throw outcomeOf(action, o, error);
  });
  // A status changes nothing: its own answer names the cluster.
  if (clusterGiven && action === "status" && response.cluster !== common.cluster) {
    throw foreignApi(api, response.cluster, common.cluster);
  }
  return response;
}

/** The API request of `action`. */
function panicRequest(
  action: Action,
  o: PanicOptions,
  api: string,
  region: string | undefined,
): Promise<PanicResponse> {
  switch (action) {
    case "apply":
      return callPanicApi({
        api,
        region,
        method: "POST",
        path: "/panic",
        body: {
          reason: o.reason,
          ...(o.ttl === undefined ? {} : { ttlMinutes: o.ttl }),
          ...(o.dryRun === true ? { dryRun: true } : {}),
          ...(o.force === true ? { force: true } : {}),
        },
      });
    case "status":
      return callPanicApi({
        api,
        region,
        method: "GET",
        path: "/panic",
        query: { history: o.history === undefined ? undefined : String(o.history) },
      });
    case "revert":
      return callPanicApi({
        api,
        region,
        method: "DELETE",
        path: "/panic",
        body:
          o.reason === undefined && o.force !== true
            ? undefined
            : {
                ...(o.reason === undefined ? {} : { reason: o.reason }),
                ...(o.force === true ? { force: true } : {}),
              },
      });
  }
}

const HEADLINE: Record<string, string> = {
  applied: "APPLIED",
  refreshed: "REFRESHED",
  "taken-over": "TAKEN OVER",
  "would-apply": "DRY RUN (would apply)",
  "would-refresh": "DRY RUN (would refresh)",
  "would-take-over": "DRY RUN (would take over)",
  active: "ACTIVE",
  inactive: "INACTIVE",
  foreign: "FOREIGN POLICY",
  reverted: "REVERTED",
  "not-applied": "NOTHING TO REVERT",
  expired: "EXPIRED",
  skipped: "SKIPPED",
};

function conflictBlock(r: PanicResponse): string[] {
  if (r.conflicts.length === 0) {
    // None listed is not none there when the listing did not come (its warning is printed below).
    const unknown = r.warnings.some((w) => w.startsWith(CONFLICTS_UNLISTED));
    return r.action === "revert" || unknown
      ? []
      : ["No policy evaluated before it can deny traffic it allows."];
  }
  const n = r.conflicts.length;
  return [
    "!".repeat(100),
    `!! WARNING: ${n} polic${n === 1 ? "y is" : "ies are"} evaluated before ${r.policyName} and may still DENY traffic:`,
    ...r.conflicts.map((c) => `!!   - ${describeConflict(c)}`),
    "!! allow-all will not help traffic these drop: fix or relax them as well.",
    "!".repeat(100),
  ];
}

/**
 * An applied policy whose expiry may not be scheduled stays past the expiry its answer and announcement give. Through
 * the API the panic function counts it for the PanicExpiryNotScheduled alarm; a --direct apply no alarm sees, so its
 * caller alone can act on it.
 */
function expiryBlock(r: PanicResponse, direct: boolean): string[] {
  const warnings = expiryNotScheduled(r.warnings);
  if (warnings.length === 0) return [];
  // The policy the cluster holds now: that of an apply which raced this one (or this revert), when it says so.
  const expiry = warnings.map(racedExpiry).findLast((e) => e !== undefined) ?? r.expiresAt;
  return [
    "!".repeat(100),
    `!! WARNING: the expiry at ${expiry} is NOT SCHEDULED: ${r.policyName} stays applied until reverted by hand:`,
    ...warnings.map((w) => `!!   - ${w}`),
    "!! once traffic is fixed, run `calico-flows panic revert`; or apply again with --ttl to schedule the expiry.",
    ...(direct
      ? ["!! No alarm reports it: the stack's PanicExpiryNotScheduled counts API applies only."]
      : []),
    "!".repeat(100),
  ];
}

/** `revertReason`: the reason this revert was given, which the answer (the removed policy's stamp) does not carry. */
function humanText(r: PanicResponse, revertReason?: string): string {
  const lines = [`${HEADLINE[r.result] ?? r.result.toUpperCase()}  ${r.message.split(". WARNING")[0]}`];
  // After a revert the stamp is the removed policy's: said as what was, with no expiry to come.
  const details: [string, string | null][] =
    r.result === "reverted"
      ? [
          ["cluster", r.cluster],
          ["policy", `${r.policyName} (${r.apiGroup})`],
          ["reverted for", revertReason ?? null],
          ["was applied for", r.reason],
          ["was applied by", r.appliedBy],
          ["was applied at", r.appliedAt],
        ]
      : [
          ["cluster", r.cluster],
          ["policy", `${r.policyName} (${r.apiGroup})`],
          ["reason", r.reason],
          ["applied by", r.appliedBy],
          ["applied at", r.appliedAt],
          ["expires at", r.appliedAt === null ? null : (r.expiresAt ?? "never (revert by hand)")],
        ];
  const width = Math.max(...details.map(([k]) => k.length)) + 2;
  for (const [k, v] of details) if (v !== null) lines.push(`  ${`${k}:`.padEnd(width)} ${v}`);
  if (r.result.startsWith("would-") && r.policy !== null) {
    lines.push("", "Would apply:", dumpYaml(r.policy).trimEnd());
  }
  const block = conflictBlock(r);
  if (block.length > 0) lines.push("", ...block);
  for (const w of r.warnings) lines.push("", `WARNING: ${w}`);
  if (r.history !== undefined && r.history.length > 0) {
    lines.push(
      "",
      "Recent actions:",
      table(
        ["AT", "ACTION", "RESULT", "BY", "REASON"],
        r.history.map((h) => [h.at, h.action, `${h.outcome}/${h.result}`, h.requester, h.reason]),
      ),
    );
  }
  return `${lines.join("\n")}\n`;
}

function fail(error: unknown, json: boolean): void {
  process.exitCode = error instanceof UsageError ? 2 : 1;
  if (error instanceof OutcomeUnknown) {
    process.exitCode = EXIT_OUTCOME_UNKNOWN;
    if (json) process.stdout.write(`${JSON.stringify(error.body)}\n`);
    const { body } = error;
    const said = "message" in body ? String(body.message) : JSON.stringify(body);
    process.stderr.write(`error (${error.source}): ${said}\n!! ${error.message}\n`);
    return;
  }
  const apiError = apiErrorOf(error);
  if (apiError !== undefined) {
    const body = apiError.body as { error?: string; message?: string; field?: string } | null;
    if (json) process.stdout.write(`${JSON.stringify(answerObject(body, apiError.status))}\n`);
    const text =
      body !== null && typeof body === "object" && body.message !== undefined
        ? body.message
        : apiError.message;
    process.stderr.write(`error (HTTP ${apiError.status}${body?.error ? ` ${body.error}` : ""}): ${text}\n`);
    return;
  }
  if (error instanceof PanicFailure) {
    if (json) process.stdout.write(`${JSON.stringify(failureBody(error))}\n`);
    process.stderr.write(`error (${error.kind}): ${error.message}\n`);
    return;
  }
  // The CLI's own failures (the command line, the kubeconfig, a connection refused, another cluster): a script
  // reading --json finds an object for them too.
  if (json) {
    const kind = error instanceof UsageError ? "usage" : "cli";
    process.stdout.write(`${JSON.stringify({ error: kind, message: describeError(error) })}\n`);
  }
  process.stderr.write(`error: ${describeError(error)}\n`);
}

/** The ways of reaching the cluster that go together, before anything is opened. */
function checkAccess(action: Action, o: PanicOptions): void {
  if ((o.api === undefined) === (o.direct !== true)) {
    throw new UsageError(
      "choose one of --api URL (through the deployed API) or --direct (straight to the cluster with a kubeconfig)",
    );
  }
  if (o.api !== undefined && (o.kubeconfig !== undefined || o.context !== undefined)) {
    throw new UsageError("--kubeconfig and --context go with --direct, not --api");
  }
  if (
    o.direct === true &&
    action === "apply" &&
    (o.ttl ?? 0) > 0 &&
    (o.scheduleGroup === undefined || o.schedulerRoleArn === undefined || o.expiryFunctionArn === undefined)
  ) {
    throw new UsageError(
      "--ttl with --direct needs --schedule-group, --scheduler-role-arn and --expiry-function-arn (the " +
        "deployed stack's values); without them use --ttl 0 and revert by hand",
    );
  }
}

async function run(action: Action, command: Command): Promise<void> {
  const raw = command.optsWithGlobals();
  const source = command.getOptionValueSourceWithGlobals("cluster");
  const clusterGiven = source !== undefined && source !== "default";
  const o = raw as unknown as PanicOptions;
  const common = commonOptions(raw);
  const json = o.json === true;
  try {
    checkAccess(action, o);
    // --direct into the stack's table, topic or schedule group files the audit, announcement and expiry by cluster.
    if (o.direct === true) requireClusterNamed(command);
    const response =
      o.api !== undefined
        ? await runApi(action, o, common, clusterGiven)
        : await runDirect(action, o, common, clusterGiven);
    if (json) {
      process.stdout.write(`${JSON.stringify(response, null, 2)}\n`);
      // Conflicts must not go unnoticed when a script reads the JSON.
      if (action === "apply" && response.conflicts.length > 0) {
        process.stderr.write(`${conflictBlock(response).join("\n")}\n`);
      }
    } else {
      process.stdout.write(humanText(response, action === "revert" ? o.reason : undefined));
    }
    // Applied, but not to be reverted on time: on stderr whatever the format, and an exit status of its own.
    const unscheduled = expiryBlock(response, o.direct === true);
    if (unscheduled.length > 0) {
      process.stderr.write(`${unscheduled.join("\n")}\n`);
      process.exitCode = 3;
    }
  } catch (error) {
    fail(error, json);
  }
}

export function registerPanic(program: Command): void {
  const panic = program
    .command("panic")
    .description(
      "The panic button: allow all traffic of the customer namespaces with one audited, revertible " +
        "GlobalNetworkPolicy (docs/panic.md)",
    );

  addExpiryOptions(addAccessOptions(panic.command("apply")))
    .description("apply (or refresh) the panic policy; prints the policies that may still deny traffic")
    .requiredOption(
      "--reason <text>",
      "why traffic must be opened up (1-500 characters; audited and announced)",
    )
    .addOption(
      new Option(
        "--ttl <minutes>",
        "revert automatically after this long; 0 = never (default: the API's setting; 0 with --direct)",
      ).argParser(parseInteger("--ttl", 0, MAX_TTL_MINUTES)),
    )
    .option("--dry-run", "show exactly what would be applied, change nothing")
    .option("--force", "take over a policy of the same name that calico-flows did not create")
    .action((_opts, command: Command) => run("apply", command));

  addAccessOptions(panic.command("status"))
    .description("is the panic policy applied, by whom, why, until when; what may still deny; recent actions")
    .addOption(
      new Option("--history <n>", "recent actions to show")
        .argParser(parseInteger("--history", 0, MAX_HISTORY))
        .default(DEFAULT_HISTORY),
    )
    .addOption(
      new Option(
        "--schedule-group <name>",
        "--direct: EventBridge Scheduler group of the expiry, to check that it is scheduled",
      ),
    )
    .addOption(
      new Option(
        "--expiry-function-arn <arn>",
        "--direct: the panic function the expiry schedule must invoke (checked with --schedule-group)",
      ),
    )
    .action((_opts, command: Command) => run("status", command));

  addExpiryOptions(addAccessOptions(panic.command("revert")))
    .description("remove the panic policy (and its expiry schedule); a no-op success when none is applied")
    .option("--reason <text>", "why it is reverted (audited and announced)")
    .option(
      "--force",
      "remove a panic policy that took over another even when its copy of that policy cannot be read (it is then not put back)",
    )
    .action((_opts, command: Command) => run("revert", command));
}
