// Attribution from `kubectl get pods -A -o json` / `kubectl get nodes -o json` (and optionally
// `kubectl get namespaces -o json` for labels): the CLI's offline directory. A snapshot knows the pods that
// existed when it was taken, with their creation (and end, for finished ones), so the time rules still hold.
import { readFile } from "node:fs/promises";
import {
  HolderIndex,
  holderKey,
  hostNetworkNodeHolders,
  type IpHolder,
  MalformedObjectError,
  namespaceLabels,
  nodeToHolders,
  normalizeIp,
  podToHolders,
  VARIES,
} from "../../core/holders.ts";
import type {
  Holder,
  IpDirectory,
  Lookup,
  Resolution,
  SpanLookup,
  SpanResolution,
} from "../../core/types.ts";

const ABSENT: Resolution = Object.freeze({ status: "absent" });
const SPAN_VARIES: SpanResolution = Object.freeze({ status: "varies" });

export interface SnapshotSources {
  /** Parsed `kubectl get pods -A -o json`. */
  pods?: unknown;
  /** Parsed `kubectl get nodes -o json`. */
  nodes?: unknown;
  /** Parsed `kubectl get namespaces -o json`. */
  namespaces?: unknown;
  /** Namespace labels carried into flows. */
  namespaceLabelKeys?: readonly string[];
}

/** The files of each kind (several: snapshots of parts of a cluster, or of one cluster at several times). */
export interface SnapshotFiles {
  pods?: string | readonly string[];
  nodes?: string | readonly string[];
  namespaces?: string | readonly string[];
  namespaceLabelKeys?: readonly string[];
}

export interface SnapshotSummary {
  pods: number;
  nodes: number;
  namespaces: number;
  /** Distinct IPs with at least one holder. */
  ips: number;
  /** Objects skipped, with why. */
  malformed: string[];
}

/** The items of a List (`kubectl get -o json`), a bare array, or a single object. */
function itemsOf(what: string, document: unknown): unknown[] {
  if (Array.isArray(document)) return document;
  if (typeof document === "object" && document !== null) {
    const items = (document as { items?: unknown }).items;
    if (Array.isArray(items)) return items;
    if ((document as { metadata?: unknown }).metadata !== undefined) return [document];
  }
  throw new Error(`${what}: expected the output of \`kubectl get ${what} -o json\` (a List with items)`);
}

const KINDS: Record<string, string> = { pods: "Pod", nodes: "Node", namespaces: "Namespace" };

/**
 * Throws when a whole file holds objects of another kind (the pods file given as --nodes, or the reverse): the
 * List's own kind (`PodList`, whose items carry no kind) or every item's kind says so. A mixed file keeps
 * its usable objects, the others skipped one by one.
 */
function wrongKind(what: string, document: unknown, items: unknown[]): void {
  const expected = KINDS[what] as string;
  const listKind = Array.isArray(document) ? undefined : (document as { kind?: unknown }).kind;
  let found: string | undefined;
  if (typeof listKind === "string" && /.List$/.test(listKind) && listKind !== `${expected}List`) {
    found = listKind.slice(0, -"List".length);
  } else if (items.length > 0) {
    const kinds = items.map((item) => (item as { kind?: unknown } | null)?.kind);
    if (kinds.every((k) => typeof k === "string" && k !== expected)) found = kinds[0] as string;
  }
  if (found !== undefined) {
    throw new Error(
      `${what}: holds ${found} objects, not ${expected}s: expected the output of \`kubectl get ${what} -o json\``,
    );
  }
}

export class SnapshotDirectory implements IpDirectory {
  readonly #index = new HolderIndex();
  readonly summary: SnapshotSummary;

  constructor(sources: SnapshotSources) {
    const malformed: string[] = [];
    const read = (what: string, document: unknown, toHolders: (o: unknown) => IpHolder[]): number => {
      if (document === undefined) return 0;
      let count = 0;
      for (const item of itemsOf(what, document)) {
        try {
          for (const { ip, holder } of toHolders(item)) this.#add(ip, holder);
          count++;
        } catch (error) {
          if (!(error instanceof MalformedObjectError)) throw error;
          malformed.push(error.message);
        }
      }
      return count;
    };

    const keys = sources.namespaceLabelKeys ?? [];
    const labels = new Map<string, Record<string, string>>();
    let namespaces = 0;
    if (sources.namespaces !== undefined) {
      for (const item of itemsOf("namespaces", sources.namespaces)) {
        try {
          const ns = namespaceLabels(item, keys);
          labels.set(ns.name, ns.labels);
          namespaces++;
        } catch (error) {
          if (!(error instanceof MalformedObjectError)) throw error;
          malformed.push(error.message);
        }
      }
    }
    const withLabels = (entries: IpHolder[]): IpHolder[] =>
      entries.map(({ ip, holder }) => {
        const l =
          holder.kind === "pod" && holder.namespace !== null ? labels.get(holder.namespace) : undefined;
        return l === undefined || Object.keys(l).length === 0
          ? { ip, holder }
          : { ip, holder: { ...holder, labels: l } };
      });
    const pods = read("pods", sources.pods, (o) => [
      ...withLabels(podToHolders(o)),
      ...hostNetworkNodeHolders(o),
    ]);
    const nodes = read("nodes", sources.nodes, nodeToHolders);
    this.summary = { pods, nodes, namespaces, ips: this.#index.size, malformed };
  }

  /**
   * Adds a holder, unless the index knows it ended and this copy does not: two snapshots of one pod, taken while it
   * ran and after it finished, in either order, say that it finished.
   */
  #add(ip: string, holder: Holder): void {
    if (holder.validTo === null) {
      const key = holderKey(holder);
      if (this.#index.holders(ip).some((h) => h.validTo !== null && holderKey(h) === key)) return;
    }
    this.#index.add(ip, holder);
  }

  /** Reads and parses the files; errors name the file and what is wrong with it. */
  static async fromFiles(files: SnapshotFiles): Promise<SnapshotDirectory> {
    const load = async (what: string, path: string): Promise<unknown[]> => {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        throw new Error(`cannot read ${what} file ${path}: ${(error as Error).message}`);
      }
      let document: unknown;
      try {
        // A byte-order mark (an editor's or PowerShell's `Out-File -Encoding utf8`) is no part of the JSON.
        document = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
      } catch (error) {
        throw new Error(
          `${what} file ${path} is not JSON (kubectl get ${what} -o json): ${(error as Error).message}`,
        );
      }
      try {
        const items = itemsOf(what, document);
        wrongKind(what, document, items);
        return items;
      } catch (error) {
        throw new Error(`${path}: ${(error as Error).message}`);
      }
    };
    // Every file's items, in the order given; undefined when no file of that kind was.
    const all = async (what: string, paths: string | readonly string[] | undefined) => {
      if (paths === undefined) return undefined;
      const lists = await Promise.all(
        (typeof paths === "string" ? [paths] : paths).map((p) => load(what, p)),
      );
      return lists.flat();
    };
    const [pods, nodes, namespaces] = await Promise.all([
      all("pods", files.pods),
      all("nodes", files.nodes),
      all("namespaces", files.namespaces),
    ]);
    return new SnapshotDirectory({ pods, nodes, namespaces, namespaceLabelKeys: files.namespaceLabelKeys });
  }

  /** Every address the files give a holder (for diagnostics). */
  ips(): string[] {
    return this.#index.ips();
  }

  /** Holders known for `ip` (for tests and diagnostics). */
  holders(ip: string): Holder[] {
    return this.#index.holders(normalizeIp(ip));
  }

  async resolve(lookups: readonly Lookup[]): Promise<Resolution[]> {
    return lookups.map((l): Resolution => {
      const holder = this.#index.pick(l.ip, l.at);
      return holder === undefined ? ABSENT : { status: "found", holder };
    });
  }

  async resolveSpans(spans: readonly SpanLookup[]): Promise<SpanResolution[]> {
    return spans.map((s): SpanResolution => {
      const holder = this.#index.pickThroughout(s.ip, s.at, s.until);
      if (holder === VARIES) return SPAN_VARIES;
      return holder === undefined ? ABSENT : { status: "found", holder };
    });
  }
}
