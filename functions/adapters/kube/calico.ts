// Calico GlobalNetworkPolicies, NetworkPolicies and Tiers through the Kubernetes API, in either API group:
// projectcalico.org/v3 (the Calico API server) or crd.projectcalico.org/v1 (the CRDs, for clusters without
// it). The panic policy is created (POST) and replaced (PUT) under the panic field manager; deletes carry uid +
// resourceVersion preconditions. A request the API server throttles is asked again when its Retry-After fits
// the deadline. Kubernetes errors become PanicFailures that say what to do.
import { setTimeout as sleep } from "node:timers/promises";
import { ApiException, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { Deadline } from "../../core/deadline.ts";
import {
  type CalicoApiGroup,
  type CalicoPolicy,
  type CalicoPolicyStore,
  type CalicoTier,
  FIELD_MANAGER,
  type KubeCallOptions,
  OutOfTime,
  PanicFailure,
  type PolicyInventory,
} from "../../core/panic-policy.ts";
import {
  AccessConfigError,
  type AccessFixes,
  describeKubeError,
  kubeApiClient,
  retryAfterMs,
  withDeadline,
} from "./cluster-access.ts";

export interface CalicoPoliciesOptions {
  apiGroup: CalicoApiGroup;
  /**
   * The cluster's KubeConfig, asked per operation (EKS: cached per container, with a self-renewing token;
   * CLI: the loaded kubeconfig).
   */
  kubeConfig: () => KubeConfig | Promise<KubeConfig>;
  /** Which cluster, reached how: for messages. */
  description: string;
  /** Deadline of each Kubernetes request (shortened to what a call's own deadline leaves). */
  timeoutMs: number;
  /** What to do about a 401/403 where this runs. */
  fixes: AccessFixes;
}

/** What to do about a 401/403 from the panic function (EKS access entry → group → deploy/rbac.yaml). */
export function panicEksFixes(cluster: string): AccessFixes {
  return {
    unauthorized:
      `EKS did not accept the panic function's IAM role: it needs an EKS access entry on cluster ${cluster} ` +
      "mapping it to the Kubernetes group calico-flows-panic (the CDK stack creates it when manageClusterAccess is true)",
    forbidden:
      "the panic function's access entry maps to the Kubernetes group calico-flows-panic, which lacks RBAC on " +
      "Calico policies: kubectl apply -f deploy/rbac.yaml",
  };
}

/** What to do about a 401/403 with `calico-flows panic --direct`. */
export const PANIC_KUBECONFIG_FIXES: AccessFixes = {
  unauthorized:
    "the kubeconfig credentials were refused: refresh them (for EKS: aws eks update-kubeconfig --name <cluster>)",
  forbidden:
    "the kubeconfig user may not manage Calico GlobalNetworkPolicies: bind it to the calico-flows-panic " +
    "ClusterRole (deploy/rbac.yaml), e.g. through the calico-flows-panic group",
};

const PLURALS = {
  global: "globalnetworkpolicies",
  namespaced: "networkpolicies",
  tiers: "tiers",
} as const;

const PAGE = 500;
/**
 * Less time than this left: the request is not sent. It could not be answered (a TLS handshake and a round
 * trip), and a write cut short may still be applied by the server after its client gave up.
 */
const MIN_REQUEST_MS = 100;
/** How much later than a shortened request's own abort the whole call (KubeConfig included) is given up. */
const SHORTENED_GRACE_MS = 250;
/** The group of the CRDs themselves (clusters without the Calico API server). */
const CRD_GROUP = "crd.projectcalico.org";
/**
 * Tries of a request the API server throttles (429) and says when to ask again. API Priority and Fairness and
 * the max-in-flight limit refuse a request before carrying it out, so a write is asked again as safely as a read.
 */
const THROTTLED_TRIES = 3;
/** Shortest wait before asking again after a Retry-After (of "0", or a date already past). */
const MIN_RETRY_WAIT_MS = 1_000;

export class CalicoPolicies implements CalicoPolicyStore {
  readonly apiGroup: CalicoApiGroup;
  readonly #group: string;
  readonly #version: string;
  readonly #options: CalicoPoliciesOptions;
  /** Set once discovery confirmed the group serves GlobalNetworkPolicies. */
  #groupServed = false;

  constructor(options: CalicoPoliciesOptions) {
    this.apiGroup = options.apiGroup;
    const [group, version] = options.apiGroup.split("/") as [string, string];
    this.#group = group;
    this.#version = version;
    this.#options = options;
  }

  /**
   * The policy named `name`. On the CRD group, a default-tier name without a prefix is also looked for as
   * `default.<name>`, which some Calico versions store it as: the caller then acts on the name it comes back with.
   */
  async getGlobalPolicy(name: string, options: KubeCallOptions = {}): Promise<CalicoPolicy | null> {
    const found = await this.#getGlobalPolicy(name, options);
    if (found !== null || this.#group !== CRD_GROUP || name.includes(".")) return found;
    return this.#getGlobalPolicy(`default.${name}`, options);
  }

  async #getGlobalPolicy(name: string, options: KubeCallOptions): Promise<CalicoPolicy | null> {
    const doing = `reading ${PLURALS.global}/${name}`;
    try {
      return await this.#call(
        doing,
        (api) =>
          api.getClusterCustomObject({
            group: this.#group,
            version: this.#version,
            plural: PLURALS.global,
            name,
          }),
        options,
      );
    } catch (error) {
      if (!isNotFound(error)) throw this.#failure(error, doing);
      // A 404 is also what a cluster without the API group answers: tell the two apart.
      await this.#requireGroup(options);
      return null;
    }
  }

  /**
   * A create, never a server-side apply, which has no "must not exist" precondition: applied over a policy of
   * that name made meanwhile (by hand, from the old runbook) with the same values, it merges without a field
   * conflict and adopts it. A create of a name that exists is refused (409 AlreadyExists): a conflict the caller
   * re-reads.
   */
  async createGlobalPolicy(policy: CalicoPolicy, options: KubeCallOptions = {}): Promise<CalicoPolicy> {
    const doing = `creating ${PLURALS.global}/${policy.metadata.name}`;
    try {
      return await this.#call(
        doing,
        (api) =>
          api.createClusterCustomObject({
            group: this.#group,
            version: this.#version,
            plural: PLURALS.global,
            body: policy,
            fieldManager: FIELD_MANAGER,
          }),
        options,
        true,
      );
    } catch (error) {
      if (!isNotFound(error)) throw this.#failure(error, doing);
      // A cluster without the API group answers 404 too.
      await this.#requireGroup(options);
      throw this.#failure(error, doing);
    }
  }

  async replaceGlobalPolicy(policy: CalicoPolicy, options: KubeCallOptions = {}): Promise<CalicoPolicy> {
    const name = policy.metadata.name;
    const doing = `replacing ${PLURALS.global}/${name}`;
    try {
      return await this.#call(
        doing,
        (api) =>
          api.replaceClusterCustomObject({
            group: this.#group,
            version: this.#version,
            plural: PLURALS.global,
            name,
            body: policy,
            fieldManager: FIELD_MANAGER,
          }),
        options,
        true,
      );
    } catch (error) {
      if (!isNotFound(error)) throw this.#failure(error, doing);
      await this.#requireGroup(options);
      // Deleted since it was read (a revert meanwhile): it changed under the precondition, as a 409 says.
      throw new PanicFailure("conflict", `${doing}: it was deleted meanwhile`, { cause: error });
    }
  }

  async deleteGlobalPolicy(
    name: string,
    preconditions: { uid?: string; resourceVersion?: string },
    options: KubeCallOptions = {},
  ): Promise<boolean> {
    const doing = `deleting ${PLURALS.global}/${name}`;
    try {
      await this.#call(
        doing,
        (api) =>
          api.deleteClusterCustomObject({
            group: this.#group,
            version: this.#version,
            plural: PLURALS.global,
            name,
            body: { preconditions },
          }),
        options,
        true,
      );
      return true;
    } catch (error) {
      if (!isNotFound(error)) throw this.#failure(error, doing);
      await this.#requireGroup(options);
      return false;
    }
  }

  listTiers(options: KubeCallOptions = {}): Promise<CalicoTier[]> {
    return this.#listAll<CalicoTier>(PLURALS.tiers, false, options);
  }

  async listPolicies(options: KubeCallOptions = {}): Promise<Omit<PolicyInventory, "tiers">> {
    const [globalPolicies, namespacedPolicies] = await Promise.all([
      this.#listAll<CalicoPolicy>(PLURALS.global, false, options),
      this.#listAll<CalicoPolicy>(PLURALS.namespaced, true, options),
    ]);
    return { globalPolicies, namespacedPolicies };
  }

  async #listAll<T>(plural: string, allNamespaces: boolean, options: KubeCallOptions): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined;
    do {
      const params = { group: this.#group, version: this.#version, limit: PAGE, _continue: next };
      const doing = `listing ${plural}.${this.#group}`;
      let page: { items?: T[]; metadata?: { continue?: string } };
      try {
        page = await this.#call(
          doing,
          (api) =>
            allNamespaces
              ? api.listCustomObjectForAllNamespaces({ ...params, resourcePlural: plural })
              : api.listClusterCustomObject({ ...params, plural }),
          options,
        );
      } catch (error) {
        // Listing a collection never 404s when its resource exists.
        if (isNotFound(error)) throw this.#missingGroup(plural);
        throw this.#failure(error, doing);
      }
      items.push(...(page.items ?? []));
      next = page.metadata?.continue || undefined;
    } while (next !== undefined);
    return items;
  }

  /**
   * One request (`#send`), asked again after a throttle (429) once the wait the server asked for has passed, if
   * that wait is no longer than a request may take (the CLI has no deadline) and leaves time to send it before
   * the call's deadline. kubectl asks again so; failing instead would answer "try again" to a one-second throttle
   * when the API server is busiest, in an incident. `write`: the request changes the cluster.
   */
  // biome-ignore lint/suspicious/noExplicitAny: custom objects are untyped in client-node
  async #call<T = any>(
    doing: string,
    fn: (api: CustomObjectsApi) => Promise<T>,
    options: KubeCallOptions,
    write = false,
  ): Promise<T> {
    const deadline = options.deadline ?? Deadline.unbounded();
    for (let tries = 1; ; tries++) {
      try {
        return await this.#send(doing, fn, deadline, write);
      } catch (error) {
        const asked = error instanceof ApiException && error.code === 429 ? retryAfterMs(error) : undefined;
        if (asked === undefined || tries >= THROTTLED_TRIES) throw error;
        const wait = Math.max(asked, MIN_RETRY_WAIT_MS);
        if (wait > this.#options.timeoutMs || wait + MIN_REQUEST_MS > deadline.remainingMs()) throw error;
        await sleep(wait);
      }
    }
  }

  /**
   * One request, aborted when its answer or a silence of its body outlasts the request timeout
   * (kubeConfiguration) or at the call's deadline, whichever comes first, under a
   * deadline that also covers loading the KubeConfig (DescribeCluster, tokens): a little longer than the
   * request's own abort, which then reports first with the better message. Past the call's deadline, or too
   * close to it, the request is not sent at all.
   *
   * A write given up on once it went out, for its deadline, its own timeout or a connection lost before the answer,
   * may still be carried out by the API server, as may one the API server itself timed out (504: "may still be
   * processing the request", client-go says): an OutOfTime that says it was sent, whichever ended it, so that the
   * caller schedules its expiry all the same and says it may have been done.
   */
  async #send<T>(
    doing: string,
    fn: (api: CustomObjectsApi) => Promise<T>,
    deadline: Deadline,
    write: boolean,
  ): Promise<T> {
    const { timeoutMs, description } = this.#options;
    const left = Math.floor(deadline.remainingMs());
    if (left < MIN_REQUEST_MS) {
      throw new OutOfTime(
        `${doing} on ${description} was not attempted: the time this request may take is spent`,
        { sent: false },
      );
    }
    const requestMs = Math.min(timeoutMs, left);
    const shortened = requestMs < timeoutMs;
    // Set once the KubeConfig is loaded: a timeout before that (DescribeCluster, a token) sent nothing. One while
    // connecting is counted as sent: it cannot be told apart here, and "may have been done" is the safe answer.
    let sent = false;
    try {
      return await withDeadline(
        shortened ? requestMs + SHORTENED_GRACE_MS : timeoutMs + 1_000,
        doing,
        async () => {
          const kc = await this.#options.kubeConfig();
          sent = true;
          return fn(kubeApiClient(kc, CustomObjectsApi, requestMs));
        },
      );
    } catch (error) {
      const failure = describeKubeError(error, this.#options.fixes);
      const timedOut = failure.kind === "timeout";
      const serverTimedOut = error instanceof ApiException && error.code === 504;
      if (write && sent && (timedOut || serverTimedOut || connectionLost(error))) {
        const ended = timedOut
          ? `no answer within the ${requestMs} ms this request ${shortened ? "had left" : "may take"}`
          : serverTimedOut
            ? `the API server gave up on it (${failure.message})`
            : `the connection was lost before the answer (${errorCode(error)})`;
        throw new OutOfTime(`${doing} on ${description}: ${ended}`, { cause: error, sent: true });
      }
      // A read cut short by the deadline rather than by the server's own slowness alone: said so.
      if (shortened && timedOut) {
        throw new OutOfTime(
          `${doing} on ${description}: no answer within the ${requestMs} ms this request had left`,
          { cause: error, sent: false },
        );
      }
      throw error;
    }
  }

  async #requireGroup(options: KubeCallOptions): Promise<void> {
    if (this.#groupServed) return;
    const doing = `discovering ${this.apiGroup}`;
    let resources: { resources?: { name?: string }[] };
    try {
      resources = await this.#call(
        doing,
        (api) => api.getAPIResources({ group: this.#group, version: this.#version }),
        options,
      );
    } catch (error) {
      if (isNotFound(error)) throw this.#missingGroup(PLURALS.global);
      throw this.#failure(error, doing);
    }
    if (!(resources.resources ?? []).some((r) => r.name === PLURALS.global))
      throw this.#missingGroup(PLURALS.global);
    this.#groupServed = true;
  }

  #missingGroup(plural: string): PanicFailure {
    const other =
      this.apiGroup === "projectcalico.org/v3" ? "crd.projectcalico.org/v1" : "projectcalico.org/v3";
    const hint =
      this.apiGroup === "projectcalico.org/v3"
        ? "the Calico API server is not installed (or not available). Use the CRDs directly: set " +
          `CALICO_API_GROUP=${other} (CLI: --api-group ${other})`
        : `the Calico CRDs are not installed. If the Calico API server is, set CALICO_API_GROUP=${other} ` +
          `(CLI: --api-group ${other})`;
    return new PanicFailure(
      "api-missing",
      `the cluster does not serve ${plural}.${this.#group}/${this.#version}: ${hint}`,
    );
  }

  /** Maps an error of the Kubernetes API to an actionable PanicFailure; codes with no answer here are rethrown. */
  #failure(error: unknown, doing: string): Error {
    if (error instanceof PanicFailure) return error;
    if (error instanceof AccessConfigError) {
      return new PanicFailure("kube-unavailable", `${doing}: ${error.message}`, { cause: error });
    }
    const failure = describeKubeError(error, this.#options.fixes);
    const text = `${doing} failed on ${this.#options.description}: ${failure.message}`;
    const withFix = failure.fix === null ? text : `${text}; fix: ${failure.fix}`;
    if (failure.status === 503 && this.apiGroup === "projectcalico.org/v3") {
      // What the Kubernetes API server's aggregator answers for the whole group while it cannot reach the Calico
      // API server, whose pods the policy that caused the incident may well have cut off. The CRDs do not go
      // through it.
      return new PanicFailure(
        "api-missing",
        `${text}. The Kubernetes API server answers so for ${this.#group} while the Calico API server is down or ` +
          "cannot be reached (a network policy may have cut it off): use the CRDs directly, with " +
          `calico-flows panic --direct --api-group ${CRD_GROUP}/v1, or set CALICO_API_GROUP=${CRD_GROUP}/v1`,
        { cause: error },
      );
    }
    switch (failure.kind) {
      case "unauthorized":
      case "forbidden":
        return new PanicFailure("kube-access", withFix, { cause: error });
      case "timeout":
      case "unreachable":
      case "tls":
      case "server":
      case "throttled":
      case "aws":
      case "malformed":
        return new PanicFailure("kube-unavailable", withFix, { cause: error });
      default:
        break;
    }
    if (error instanceof ApiException) {
      if (error.code === 409) return new PanicFailure("conflict", text, { cause: error });
      if (error.code === 400 || error.code === 422) {
        return new PanicFailure("kube-rejected", `${text} (check the panic policy settings)`, {
          cause: error,
        });
      }
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

/**
 * Connection errors that may come after the request reached the API server: a reset or a closed socket. Unlike a
 * refused connection or a name that does not resolve, which leave nothing sent.
 */
const LOST_CONNECTION_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

/** The system or undici code of a failed fetch (on its cause) or of the error itself. */
function errorCode(error: unknown): string | undefined {
  for (const e of [(error as { cause?: unknown } | null)?.cause, error]) {
    const code = (e as { code?: unknown } | null | undefined)?.code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

function connectionLost(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && LOST_CONNECTION_CODES.has(code);
}
