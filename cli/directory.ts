// Where the CLI resolves IPs: kubectl JSON snapshots (--pods/--nodes/--namespaces), else the live cluster of
// the kubeconfig (--kubeconfig/--context, KUBECONFIG, ~/.kube/config), else nowhere (stored unresolved).
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { KUBECONFIG_FIXES, loadKubeconfig } from "../functions/adapters/kube/cluster-access.ts";
import { LiveDirectory } from "../functions/adapters/kube/live-directory.ts";
import { SnapshotDirectory } from "../functions/adapters/kube/snapshot-directory.ts";
import { CidrSet } from "../functions/core/classify.ts";
import type { HolderHistory } from "../functions/core/ports.ts";
import type { Holder, IpDirectory } from "../functions/core/types.ts";
import { checkKubeconfigCluster, DEFAULT_CLUSTER, UsageError } from "./common.ts";

export interface OpenedDirectory {
  directory: IpDirectory;
  /** How IPs are resolved, for messages. */
  description: string;
  /** Whether a warning already said that addresses it holds are outside the internal ranges. */
  rangesWarned(): boolean;
  close(): Promise<void>;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addDirectoryOptions(command: Command): Command {
  return command
    .option("--pods <file>", "`kubectl get pods -A -o json` output to resolve IPs from, repeatable", collect)
    .option("--nodes <file>", "`kubectl get nodes -o json` output, repeatable", collect)
    .option(
      "--namespaces <file>",
      "`kubectl get namespaces -o json` output (for --namespace-label), repeatable",
      collect,
    )
    .option("--namespace-label <key>", "namespace label carried into flows, repeatable", collect)
    .option("--kubeconfig <file>", "resolve through this cluster (default: KUBECONFIG, ~/.kube/config)")
    .option("--context <name>", "kubeconfig context");
}

const warn = {
  warn(message: string, ...details: Record<string, unknown>[]) {
    process.stderr.write(
      `warning: ${message}${details.length ? ` ${JSON.stringify(Object.assign({}, ...details))}` : ""}\n`,
    );
  },
};

/**
 * Reads what the options name (snapshot files, the kubeconfig) and returns how to make the directory once the
 * store is open: a file that cannot be read fails here, before anything is made.
 */
export async function openDirectory(
  raw: Record<string, unknown>,
  cluster: string,
  internalCidrs: readonly string[],
): Promise<(history: HolderHistory) => OpenedDirectory> {
  const labelKeys = (raw.namespaceLabel as string[] | undefined) ?? [];
  const internal = new CidrSet(internalCidrs);
  const files = raw.pods !== undefined || raw.nodes !== undefined;
  // Files replace the cluster: a kubeconfig or namespaces file given with the other source would be ignored.
  for (const option of ["kubeconfig", "context"] as const) {
    if (files && raw[option] !== undefined) {
      throw new UsageError(
        `--${option} resolves IPs through a live cluster, which --pods/--nodes files replace: give one or the other`,
      );
    }
  }
  if (!files && raw.namespaces !== undefined) {
    throw new UsageError(
      "--namespaces is read with --pods/--nodes files; through a live cluster the namespaces are read from it",
    );
  }
  if (files) {
    // Pods and nodes carry no namespace labels: without the namespaces' file every flow would be stored without
    // the labels asked for, and nothing would say why.
    if (labelKeys.length > 0 && raw.namespaces === undefined) {
      throw new UsageError(
        "--namespace-label needs --namespaces FILE (`kubectl get namespaces -o json`) when IPs are resolved from --pods/--nodes files: the labels are read from it",
      );
    }
    const snapshot = await SnapshotDirectory.fromFiles({
      pods: raw.pods as string[] | undefined,
      nodes: raw.nodes as string[] | undefined,
      namespaces: raw.namespaces as string[] | undefined,
      namespaceLabelKeys: labelKeys,
    });
    for (const problem of snapshot.summary.malformed) process.stderr.write(`warning: skipped ${problem}\n`);
    const warned = warnOutside(snapshot, internal, internalCidrs, "in the snapshot files");
    return () => ({
      directory: snapshot,
      description: "snapshot files",
      rangesWarned: () => warned,
      close: async () => {},
    });
  }
  const haveKubeconfig =
    raw.kubeconfig !== undefined ||
    (process.env.KUBECONFIG ?? "") !== "" ||
    existsSync(join(homedir(), ".kube", "config"));
  if (haveKubeconfig) {
    const options = {
      kubeconfig: raw.kubeconfig as string | undefined,
      context: raw.context as string | undefined,
    };
    // Fails here, before any line is read, when the kubeconfig cannot work at all.
    const kubeConfig = loadKubeconfig(options);
    // A cluster named (not the local default) must be the EKS cluster the kubeconfig reaches, when it says which:
    // prod's lines attributed to staging's pods would be stored, and their holders kept in prod's history.
    if (cluster !== DEFAULT_CLUSTER) checkKubeconfigCluster(kubeConfig, cluster);
    return (history) => {
      const live = new LiveDirectory({
        kubeConfig: () => kubeConfig,
        cluster,
        history,
        namespaceLabelKeys: labelKeys,
        fixes: KUBECONFIG_FIXES,
        logger: warn,
      });
      let warned = false;
      return {
        directory: live,
        description: `cluster of ${kubeConfig.getCurrentContext()}`,
        rangesWarned: () => warned,
        // What the cluster showed is known once it was asked: its pods and nodes outside the ranges are told then.
        close: async () => {
          warned ||= warnOutside(live, internal, internalCidrs, "the cluster listed");
        },
      };
    };
  }
  return () => {
    process.stderr.write(
      `warning: no --pods/--nodes files and no kubeconfig: internal endpoints are stored unresolved (IPs only); to resolve them, run with --pods/--nodes files or a kubeconfig ${ANOTHER_STORE}\n`,
    );
    return {
      directory: {
        resolve: async (lookups) => lookups.map(() => ({ status: "unavailable", reason: "no pod source" })),
      },
      description: "none",
      rangesWarned: () => false,
      close: async () => {},
    };
  };
}

/**
 * Where a run must store its lines for other options to count: coverage counts each line once per store, so a run
 * into the same one stores none of them again, whatever its options.
 */
export const ANOTHER_STORE =
  "into a new --store or table (a store counts each line once: run into it again with other options, it does not store again the lines it holds)";

/** What becomes of traffic outside the internal ranges, and what to do: the end of every such warning. */
export const STORED_EXTERNAL = `stored as external, unattributed, and raises no alert; run with the cluster's ranges (--internal-cidr, repeatable) ${ANOTHER_STORE}`;

/**
 * Only addresses inside the internal CIDRs are attributed and alerted on: pods outside them (the default
 * 192.168.0.0/16 against a VPC of 10.0.0.0/16) would all be stored as external, silently, and so would nodes outside
 * them (Calico's pod pool given, the VPC's node range not). Warns of those `source` holds; returns whether it did.
 */
function warnOutside(
  source: { ips(): string[]; holders(ip: string): Holder[] },
  internal: CidrSet,
  internalCidrs: readonly string[],
  where: string,
): boolean {
  const parts: string[] = [];
  for (const kind of ["pod", "node"] as const) {
    const held = source.ips().filter((ip) => source.holders(ip).some((h) => h.kind === kind));
    const outside = held.filter((ip) => !internal.contains(ip));
    if (outside.length > 0)
      parts.push(`${outside.length} of the ${held.length} ${kind} addresses (${outside[0]}…)`);
  }
  if (parts.length === 0) return false;
  process.stderr.write(
    `warning: ${parts.join(" and ")} ${where} are outside --internal-cidr ${internalCidrs.join(", ")}: their ` +
      `traffic is ${STORED_EXTERNAL}\n`,
  );
  return true;
}
