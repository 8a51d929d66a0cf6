// Options every calico-flows command accepts (DESIGN.md §3.2), parsed once into a typed config.
import { constants } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import { type Command, InvalidArgumentError, Option } from "commander";
import { checkCluster } from "../functions/adapters/dynamo/keys.ts";
import { CidrSet } from "../functions/core/classify.ts";

/** Options that cannot go together or do not make sense: exit status 2, as commander's own usage errors. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Whether option `key` of `command` was given (on the command line or otherwise) rather than defaulted. */
function given(command: Command, key: string): boolean {
  const source = command.getOptionValueSource(key);
  return source !== undefined && source !== "default";
}

/**
 * For commands that move data out of the deployed stack's reach (redrive deletes what it stored; backfill reads the
 * deployed log groups): the store must be named, not defaulted. Without `--table` or `--store` the common options
 * fall back to the embedded store under the current directory, and the data would go there instead of the
 * deployed table. Then the cluster too, as for every command that writes to the stack (requireClusterNamed). Run as
 * a preAction hook, before any store is opened or anything is read.
 */
export function requireStoreNamed(command: Command, why: string): void {
  if (!given(command, "table") && !given(command, "store")) {
    throw new UsageError(
      `${why}, so name where to store: --table <the stack's TableName output> with the stack's --cluster, ` +
        "or --store DIR for a local embedded store on purpose",
    );
  }
  requireClusterNamed(command);
}

/** The options that name a deployed stack's resources, which the commands that take them write to. */
const DEPLOYED_RESOURCES: Readonly<Record<string, string>> = {
  table: "--table",
  queueUrl: "--queue-url",
  scheduleGroup: "--schedule-group",
  alertsTopic: "--alerts-topic",
};

/**
 * For commands that write to a deployed stack's resources (its table, failed-payloads queue, schedule group or
 * alerts topic): the cluster must be named, not defaulted to "local". A stack serves one cluster and reads, alerts
 * on and expires only what is filed under its own: flows and coverage claims stored under "local" are out of its
 * API's reach (and a redriven message is gone from the queue), a panic expiry for "local" is skipped by its panic
 * function (the allow-all policy stays), and an audit record or announcement under "local" escapes its readers.
 * Run before anything is opened or read; the embedded store alone keeps the local default.
 */
export function requireClusterNamed(command: Command): void {
  if (given(command, "cluster")) return;
  const named = Object.keys(DEPLOYED_RESOURCES).filter((key) => given(command, key));
  if (named.length === 0) return;
  throw new UsageError(
    `${named.map((key) => DEPLOYED_RESOURCES[key]).join(", ")} reach${named.length === 1 ? "es" : ""} a deployed ` +
      "stack, which reads only the records of its own cluster: give the stack's --cluster (the clusterName it " +
      `was deployed with), not the default "${DEFAULT_CLUSTER}"`,
  );
}

/** The cluster name in an EKS cluster ARN, `arn:<partition>:eks:<region>:<account>:cluster/<name>`. */
const EKS_CLUSTER_ARN = /^arn:aws[a-z-]*:eks:[a-z0-9-]+:[0-9]{12}:cluster\/(.+)$/;
const CLUSTER_NAME_ARG = "--cluster-name=";

/**
 * The EKS clusters a kubeconfig's current context says it reaches: its cluster entry's name when that is an EKS
 * cluster ARN (as `aws eks update-kubeconfig` names it, whatever `--alias` names the context), and the
 * `--cluster-name` its user's exec plugin (`aws eks get-token`) is run with. None when it says neither: another
 * distribution, or entries renamed by hand.
 */
function eksClustersOf(kc: KubeConfig): string[] {
  const names = new Set<string>();
  const arn = EKS_CLUSTER_ARN.exec(kc.getCurrentCluster()?.name ?? "");
  if (arn?.[1] !== undefined) names.add(arn[1]);
  const args: unknown = kc.getCurrentUser()?.exec?.args;
  if (Array.isArray(args)) {
    for (const [i, arg] of args.entries()) {
      const next: unknown = args[i + 1];
      if (arg === "--cluster-name" && typeof next === "string") names.add(next);
      else if (typeof arg === "string" && arg.startsWith(CLUSTER_NAME_ARG)) {
        names.add(arg.slice(CLUSTER_NAME_ARG.length));
      }
    }
  }
  return [...names];
}

/**
 * Refuses a kubeconfig whose current context reaches another EKS cluster than the `--cluster` given: with one
 * context per cluster in a kubeconfig, the current one is easily another cluster's, and what is done there would be
 * recorded and announced as done on `cluster`. A kubeconfig that does not say which EKS cluster it reaches cannot
 * be judged, and is taken at its word.
 */
export function checkKubeconfigCluster(kc: KubeConfig, cluster: string): void {
  const other = eksClustersOf(kc).find((name) => name !== cluster);
  if (other === undefined) return;
  throw new Error(
    `kubeconfig context "${kc.getCurrentContext()}" reaches EKS cluster ${JSON.stringify(other)}, not --cluster ` +
      `${JSON.stringify(cluster)}: choose ${JSON.stringify(cluster)}'s context (--context), or --cluster ${other}`,
  );
}

/** The exit status of a command stopped by `signal`, as a shell reports it: 130 for SIGINT, 143 for SIGTERM. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/**
 * Runs `work` with a signal the first SIGINT or SIGTERM aborts, after `notice` on stderr (say what is finished
 * first; a second signal quits at once). Answers what `work` did, and the signal that stopped it if one did.
 */
export async function stoppableBySignal<T>(
  notice: string,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<{ result: T; stoppedBy: NodeJS.Signals | undefined }> {
  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signalExitCode(signal));
    stoppedBy = signal;
    process.stderr.write(`\ninterrupted: ${notice} (again to quit now)\n`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return { result: await work(controller.signal), stoppedBy };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export const DEFAULT_INTERNAL_CIDRS = ["192.168.0.0/16"];
export const DEFAULT_STORE_DIR = ".calico-flows";
export const DEFAULT_CLUSTER = "local";

export interface CommonOptions {
  cluster: string;
  internalCidrs: string[];
  store: string;
  table: string | undefined;
  region: string | undefined;
}

/**
 * Each `--internal-cidr` is checked as it is read, as the ingest function checks INTERNAL_CIDRS: a usage error
 * (exit 2) before anything is opened, rather than a failure once the store exists and the input is being read.
 */
function collectCidr(value: string, previous: string[] | undefined): string[] {
  // A list as INTERNAL_CIDRS and the CDK context write it (`10.0.0.0/8,172.16.0.0/12`) is several options here.
  if (value.includes(",")) {
    throw new InvalidArgumentError("one range per --internal-cidr: repeat the option for each");
  }
  try {
    new CidrSet([value]);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  return [...(previous ?? []), value];
}

/** A cluster name the store can key records by: refused as a usage error, not when the first record is written. */
function clusterName(value: string): string {
  try {
    return checkCluster(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** The options every command takes, by their key in its options. */
const COMMON_OPTIONS = {
  cluster: "--cluster",
  internalCidr: "--internal-cidr",
  store: "--store",
  table: "--table",
  region: "--region",
} as const;

/**
 * Why a command takes a common option and has no use for it: a reason, or one given the command's other options
 * (undefined: the option has an effect with them).
 */
export type Ineffective = Partial<
  Record<keyof typeof COMMON_OPTIONS, string | ((options: Record<string, unknown>) => string | undefined)>
>;

/**
 * Notes on stderr each common option given to `command` that has no effect there, once, with why. Every command
 * takes them all (DESIGN.md §3.2), so a script can pass the same ones to each; but ignored in silence, the option
 * looks obeyed (`flows --internal --internal-cidr 10.0.0.0/8` answering by the ranges the flows were stored with).
 */
function noteIneffective(command: Command, ineffective: Ineffective): void {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  // In the options' order, however the reasons were put together.
  for (const [key, option] of Object.entries(COMMON_OPTIONS)) {
    const why = ineffective[key as keyof typeof COMMON_OPTIONS];
    const reason = typeof why === "function" ? why(command.opts()) : why;
    if (reason === undefined || !given(command, key)) continue;
    process.stderr.write(`note: ${option} has no effect on ${names.join(" ")}: ${reason}\n`);
  }
}

/**
 * Every command that opens a store opens the table `--table` names instead of the embedded one (openStore), so a
 * `--store` beside it is not used; a command that keeps something else under `--store` says otherwise.
 */
const STORE_BESIDE_TABLE: Ineffective = {
  store: (o) =>
    o.table === undefined ? undefined : "--table names its store: the embedded store is not opened",
};

/** What each command has no use for, as withCommonOptions and ineffectiveOptions were told. */
const INEFFECTIVE = new WeakMap<Command, Ineffective>();

/**
 * Adds the options shared by every command; those `ineffective` names (and `--store` beside `--table`, unless it
 * names `store` itself) are noted when given (noteIneffective).
 */
export function withCommonOptions(command: Command, ineffective: Ineffective = {}): Command {
  INEFFECTIVE.set(command, { ...STORE_BESIDE_TABLE, ...ineffective });
  command.hook("preAction", (self) => noteIneffective(self, INEFFECTIVE.get(command) ?? {}));
  return command
    .addOption(
      new Option(
        "--cluster <name>",
        "cluster name that flows, alerts and audit records are stored and read under",
      )
        .argParser(clusterName)
        .default(DEFAULT_CLUSTER),
    )
    .addOption(
      new Option(
        "--internal-cidr <cidr>",
        "private range of the cluster, repeatable (default 192.168.0.0/16)",
      ).argParser(collectCidr),
    )
    .addOption(new Option("--store <dir>", "directory of the embedded flow store").default(DEFAULT_STORE_DIR))
    .addOption(new Option("--table <name>", "use this DynamoDB table instead of the embedded store"))
    .addOption(new Option("--region <region>", "AWS region (default: the SDK's standard configuration)"));
}

/**
 * For a command whose common options a shared helper added (addIngestOptions): what it has no use for, each reason
 * replacing the one its option had.
 */
export function ineffectiveOptions(command: Command, ineffective: Ineffective): Command {
  INEFFECTIVE.set(command, { ...INEFFECTIVE.get(command), ...ineffective });
  return command;
}

export function commonOptions(raw: Record<string, unknown>): CommonOptions {
  const cidrs = raw.internalCidr as string[] | undefined;
  return {
    cluster: String(raw.cluster ?? DEFAULT_CLUSTER),
    internalCidrs: cidrs && cidrs.length > 0 ? cidrs : DEFAULT_INTERNAL_CIDRS,
    store: String(raw.store ?? DEFAULT_STORE_DIR),
    table: raw.table as string | undefined,
    region: raw.region as string | undefined,
  };
}

export function parseInteger(name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    // Decimal digits only: Number() would also take "1e2", "0x10", " 5" and "".
    const n = /^-?[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
}

/**
 * An error's message and those of its causes that it does not already say: fetch says only "fetch failed", and
 * why (a refused connection, an unknown host, a certificate) is in its cause.
 */
export function describeError(error: unknown): string {
  let text = "";
  let at: unknown = error;
  for (let depth = 0; at !== undefined && at !== null && depth < 5; depth++) {
    // A connection refused on every address of a name is an AggregateError without a message of its own.
    const message =
      at instanceof AggregateError && at.message === ""
        ? at.errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; ")
        : at instanceof Error
          ? at.message
          : String(at);
    if (message !== "" && !text.includes(message)) text = text === "" ? message : `${text}: ${message}`;
    at = at instanceof Error ? at.cause : undefined;
  }
  return text;
}
