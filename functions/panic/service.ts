// The panic button's use cases — apply, status, revert, expire — over the Calico policy store, the audit log,
// the SNS announcements and the expiry scheduler. The Lambda handler and `calico-flows panic --direct` both
// run exactly this code; they differ only in the adapters they pass in.
import { isDeepStrictEqual } from "node:util";
import * as z from "zod";
import type { PanicConflict, PanicEvent } from "../core/alert-message.ts";
import { Deadline } from "../core/deadline.ts";
import {
  ANNOTATIONS,
  ANNOTATIONS_MAX_BYTES,
  annotationBytes,
  type CalicoPolicy,
  type CalicoPolicyStore,
  type CalicoTier,
  DEFAULT_TIER,
  describeConflict,
  type ExpiryEvent,
  type ExpiryScheduler,
  effectiveTypes,
  expiryOf,
  findConflicts,
  isManagedByCalicoFlows,
  keptCopy,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OutOfTime,
  type PanicAction,
  type PanicAuditEntry,
  type PanicAuditLog,
  PanicFailure,
  type PanicOutcome,
  type PanicPolicySettings,
  type PanicStamp,
  type PolicyConflict,
  type PolicyInventory,
  panicPolicyDocument,
  policyObjectName,
  readStamp,
  replacedPolicy,
  type ScheduledExpiry,
} from "../core/panic-policy.ts";

/** How a warning that the conflicts are unknown begins (the CLI then says nothing about there being none). */
export const CONFLICTS_UNLISTED = "conflicts could not be listed";
/**
 * How the warnings of an apply whose expiry may not be scheduled begin: Scheduler refused it, or did not answer in
 * time. The policy then stays past its announced expiry.
 */
const EXPIRY_NOT_SCHEDULED = "the expiry could not be scheduled";
const EXPIRY_UNCONFIRMED = "the expiry schedule was not confirmed in time";
/**
 * How a warning about the schedule of another apply's expiry begins: one that wrote the policy while this request
 * ran, whose schedule this request then moved or removed.
 */
const RACED = /^another apply set the policy's expiry to (\S+) meanwhile, and /;
const raced = (expiresAt: string) => `another apply set the policy's expiry to ${expiresAt} meanwhile, and `;

/**
 * The warnings that say an applied policy's expiry may not be scheduled, this apply's or that of another apply
 * which raced this apply or revert: the panic function counts them for the PanicExpiryNotScheduled alarm, and the
 * CLI, whose `--direct` apply no alarm sees, makes them impossible to miss.
 */
export function expiryNotScheduled(warnings: readonly string[]): string[] {
  return warnings.filter((w) => {
    const own = w.replace(RACED, "");
    return own.startsWith(EXPIRY_NOT_SCHEDULED) || own.startsWith(EXPIRY_UNCONFIRMED);
  });
}

/** The expiry a warning is about when another apply set it meanwhile (the policy now holds it); else undefined. */
export function racedExpiry(warning: string): string | undefined {
  return RACED.exec(warning)?.[1];
}

/**
 * How a warning begins that says a revert or an expiry removed the panic policy without putting back the policy
 * it had taken over: the panic function counts it for the PanicErrors alarm when no caller is there to read it (an
 * expiry).
 */
const COPY_NOT_RESTORED = "the policy it had taken over was not put back";

export function copyNotRestored(warnings: readonly string[]): boolean {
  return warnings.some((w) => w.startsWith(COPY_NOT_RESTORED));
}

/** A write sent and given up on: the API server may have carried it out (or still do). */
export const outcomeUnknown = (error: unknown): boolean => error instanceof OutOfTime && error.sent;

/**
 * An apply's write sent and given up on, whose expiry was scheduled all the same or not: `warnings` say why it may
 * not be, as an applied policy's answer would, since the policy may be applied too.
 */
export class UnconfirmedApply extends OutOfTime {
  readonly warnings: readonly string[];

  constructor(message: string, options: { cause?: unknown; warnings: readonly string[] }) {
    super(message, { cause: options.cause, sent: true });
    this.warnings = options.warnings;
  }
}

/**
 * A failure's JSON (the API's error body, `calico-flows panic --json`'s): `outcome: "unknown"` when a write was
 * sent and given up on, which the API server may have carried out (or still do).
 */
export function failureBody(error: PanicFailure): {
  error: PanicFailure["kind"];
  message: string;
  field?: string;
  outcome?: "unknown";
} {
  return {
    error: error.kind,
    message: error.message,
    ...(error.field === undefined ? {} : { field: error.field }),
    ...(outcomeUnknown(error) ? { outcome: "unknown" as const } : {}),
  };
}

/** Longest TTL accepted: a panic policy is a stopgap, not a way of running. */
export const MAX_TTL_MINUTES = 7 * 24 * 60;
export const DEFAULT_HISTORY = 20;
export const MAX_HISTORY = 100;
/** Attempts when the policy changes between our read and our write (concurrent appliers). */
const WRITE_ATTEMPTS = 4;

// How a request's time is shared when it has a deadline (the Lambda's; docs/panic.md, "Time budget").
/**
 * Time the reads leave for the write. A write is not sent with less: cut short, it could still be applied by
 * the API server after the answer said it failed.
 */
const MIN_WRITE_MS = 1_000;
/**
 * Kept after the policy write for the expiry schedule when there is a TTL (a policy that stays past its
 * announced expiry is the worst outcome): one Scheduler request normally takes well under a second; at most a
 * quarter of a short deadline.
 */
const SCHEDULE_ROOM_MS = 5_000;
const SCHEDULE_ROOM_SHARE = 0.25;
/**
 * How long the answer waits for the conflict listing, as a share of the time: it runs beside the reads and the
 * write and only informs, so a slow listing costs the apply a warning, never its write.
 */
const CONFLICTS_SHARE = 0.5;

const reason = z
  .string({ error: "reason must be a string" })
  .trim()
  .min(1, "reason is required: say why traffic must be opened up")
  .max(500, "reason must be at most 500 characters");

/** The body of `POST /panic`; unknown fields are rejected so that a typo does not go unnoticed. */
export const ApplyBody = z.strictObject({
  reason,
  ttlMinutes: z
    .number({ error: "ttlMinutes must be a number" })
    .int("ttlMinutes must be a whole number of minutes")
    .min(0, "ttlMinutes must be 0 (never) or more")
    .max(MAX_TTL_MINUTES, `ttlMinutes must be at most ${MAX_TTL_MINUTES} (7 days)`)
    .optional(),
  dryRun: z.boolean({ error: "dryRun must be true or false" }).optional(),
  force: z.boolean({ error: "force must be true or false" }).optional(),
});
export type ApplyBody = z.infer<typeof ApplyBody>;

/** The schedule target is the unqualified function: that is what the scheduler role may invoke. */
export function unqualifiedArn(arn: string): string {
  return arn.split(":").slice(0, 7).join(":");
}

/** Rounds of #reconcileSchedule: each is a read of the policy, and a schedule write when they disagree. */
const RECONCILE_ROUNDS = 3;
/** An active policy this long past its expiry is reported as overdue (the schedule fires within a minute). */
const OVERDUE_AFTER_MS = 5 * 60_000;

/** The optional body of `DELETE /panic`. */
export const RevertBody = z.strictObject({
  reason: z
    .string({ error: "reason must be a string" })
    .trim()
    .min(1, "reason must not be blank: leave it out, or say why isolation is restored")
    .max(500, "reason must be at most 500 characters")
    .optional(),
  force: z.boolean({ error: "force must be true or false" }).optional(),
});
export type RevertBody = z.infer<typeof RevertBody>;

/**
 * A request refused as it was asked, which the caller is to change, not the panic button failing: a body or query
 * that is not valid (400), or a policy of that name that calico-flows did not create (409, which `force` takes
 * over). The audit trail records these as refused and every other failure as failed; the PanicErrors alarm counts
 * only the failed ones.
 */
export function isRefusal(error: unknown): boolean {
  return error instanceof PanicFailure && (error.kind === "invalid" || error.kind === "not-owned");
}

/** Turns the first zod issue into a 400 failure naming the field. */
export function invalidRequest(error: z.ZodError, schema: z.ZodObject = ApplyBody): PanicFailure {
  const issue = error.issues[0];
  const path = issue?.path.map(String).join(".") ?? "";
  const field = issue?.code === "unrecognized_keys" ? (issue.keys[0] ?? "body") : path === "" ? "body" : path;
  const message =
    issue?.code === "unrecognized_keys"
      ? `unknown field "${field}" (expected ${Object.keys(schema.shape).join(", ")})`
      : `${field}: ${issue?.message ?? "invalid"}`;
  return new PanicFailure("invalid", message, { field });
}

export interface ApplyRequest extends ApplyBody {
  /** The caller's IAM principal ARN (API) or local identity (CLI --direct). */
  requester: string;
  /** "api", "cli". */
  via: string;
  /** ARN the expiry schedule invokes (the panic function's own). */
  expiryTarget?: string;
  /** When the work must be done (the Lambda's remaining time); none: each request's own timeout only. */
  deadline?: Deadline;
}

export interface RevertRequest {
  requester: string;
  via: string;
  reason?: string;
  /**
   * Remove a panic policy that took over another even when the copy it keeps of that policy cannot be read: the
   * policy is then lost, which a revert otherwise refuses (409).
   */
  force?: boolean;
  /** As for apply: a policy an apply wrote meanwhile gets its expiry schedule back (see #reconcileSchedule). */
  expiryTarget?: string;
  /** As for apply. */
  deadline?: Deadline;
}

export type PanicResult =
  | "applied"
  | "refreshed"
  | "taken-over"
  | "would-apply"
  | "would-refresh"
  | "would-take-over"
  | "active"
  | "inactive"
  | "foreign"
  | "reverted"
  | "not-applied"
  | "expired"
  | "skipped";

/** The JSON every panic endpoint answers with (and `calico-flows panic --json` prints). */
export interface PanicResponse {
  cluster: string;
  action: PanicAction | "status";
  result: PanicResult;
  message: string;
  apiGroup: string;
  policyName: string;
  /** The policy as the cluster holds it (for a dry run: exactly what would be applied); null when absent. */
  policy: CalicoPolicy | null;
  appliedBy: string | null;
  reason: string | null;
  appliedAt: string | null;
  expiresAt: string | null;
  /** Policies evaluated before the panic policy that may still deny traffic (docs/panic.md). */
  conflicts: PolicyConflict[];
  /** Recent audited actions, most recent first (status only). */
  history?: PanicAuditEntry[];
  /** Side effects that failed without undoing the main action (audit, announcement, schedule). */
  warnings: string[];
}

/** The Powertools Logger fits this; the CLI passes a stderr one. */
export interface PanicLogger {
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface PanicServiceDeps {
  cluster: string;
  settings: PanicPolicySettings;
  calico: CalicoPolicyStore;
  /** TTL when the request gives none; 0 = never. */
  defaultTtlMinutes: number;
  audit?: PanicAuditLog;
  sink?: { publishPanic(event: PanicEvent): Promise<void> };
  scheduler?: ExpiryScheduler;
  clock?: () => Date;
  logger?: PanicLogger;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The policy as returned to callers: server bookkeeping that says nothing to a human is dropped. */
function presentable(policy: CalicoPolicy | null): CalicoPolicy | null {
  if (policy === null) return null;
  const { managedFields: _, ...metadata } = policy.metadata;
  return { ...policy, metadata };
}

function toPanicConflict(c: PolicyConflict): PanicConflict {
  return {
    kind: c.kind,
    name: c.name,
    namespace: c.namespace,
    tier: c.tier,
    order: c.order,
    explanation: c.reasons.join("; "),
  };
}

export class PanicService {
  readonly #deps: PanicServiceDeps;
  readonly #objectName: string;
  readonly #clock: () => Date;

  constructor(deps: PanicServiceDeps) {
    this.#deps = deps;
    this.#objectName = policyObjectName(deps.settings);
    this.#clock = deps.clock ?? (() => new Date());
  }

  async apply(request: ApplyRequest): Promise<PanicResponse> {
    const parsed = ApplyBody.safeParse({
      reason: request.reason,
      ttlMinutes: request.ttlMinutes,
      dryRun: request.dryRun,
      force: request.force,
    });
    if (!parsed.success) {
      // Refused before anything was touched: still in the audit trail, and announced.
      const refusal = invalidRequest(parsed.error);
      await this.refused("apply", request, refusal);
      throw refusal;
    }
    const body = parsed.data;
    const action: PanicAction = body.dryRun === true ? "dry-run" : "apply";
    const now = this.#clock();
    const ttl = body.ttlMinutes ?? this.#deps.defaultTtlMinutes;
    const expiresAt = expiryOf(now, ttl);
    const stamp: PanicStamp = {
      reason: body.reason,
      requester: request.requester,
      appliedAt: now.toISOString(),
      expiresAt,
    };
    const base = { action, requester: request.requester, reason: body.reason, via: request.via, expiresAt };
    if (expiresAt !== null && (this.#deps.scheduler === undefined || request.expiryTarget === undefined)) {
      const refusal = new PanicFailure(
        "invalid",
        `ttlMinutes: expiry needs the EventBridge Scheduler, which is not configured here; ` +
          "use ttlMinutes 0 and revert by hand, or go through the API",
        { field: "ttlMinutes" },
      );
      await this.#recordFailure(base, refusal, [], action === "apply");
      throw refusal;
    }
    // The schedule invokes the function itself: a version or alias ARN is not what its role may invoke.
    const expiryTarget =
      request.expiryTarget === undefined ? undefined : unqualifiedArn(request.expiryTarget);
    const document = panicPolicyDocument(this.#deps.settings, stamp);
    const warnings: string[] = [];
    let conflicts: PolicyConflict[] = [];

    // The time, shared out: the Kubernetes calls leave room for the expiry schedule, the reads leave time
    // for the write; the conflict listing runs beside them, and the answer waits for it only so long.
    const deadline = request.deadline ?? Deadline.unbounded();
    const kube =
      action === "apply" && expiresAt !== null
        ? deadline.earlier(Math.min(SCHEDULE_ROOM_MS, deadline.remainingMs() * SCHEDULE_ROOM_SHARE))
        : deadline;
    const reads = kube.earlier(MIN_WRITE_MS);
    const listing = this.#deps.calico.listPolicies({
      deadline: deadline.within(deadline.remainingMs() * CONFLICTS_SHARE),
    });
    // Awaited once the tier check passed; a request refused before that leaves it to finish on its own.
    listing.catch(() => undefined);
    let tiers: CalicoTier[] | null = null;
    let existing: CalicoPolicy | null = null;
    let writing = false;

    try {
      const [first, listedTiers] = await Promise.all([
        this.#deps.calico.getGlobalPolicy(this.#objectName, { deadline: reads }),
        this.#deps.calico.listTiers({ deadline: reads }),
      ]);
      this.#requireTier(listedTiers);
      tiers = listedTiers;
      existing = first;
      let result: PanicResult | undefined;
      let policy: CalicoPolicy | null = null;
      for (let attempt = 1; result === undefined; attempt++) {
        if (existing !== null && !isManagedByCalicoFlows(existing) && body.force !== true) {
          throw this.#notOwned(existing, "apply");
        }
        const ours = existing !== null && isManagedByCalicoFlows(existing);
        const written = this.#replacing(document, existing);
        if (action === "dry-run") {
          result = existing === null ? "would-apply" : ours ? "would-refresh" : "would-take-over";
          policy = written;
          break;
        }
        writing = true;
        try {
          if (existing === null) {
            // A policy of that name made since the read (by hand, or by another apply) fails the create as a
            // conflict: it is read again, and refused if it is not ours.
            policy = await this.#deps.calico.createGlobalPolicy(written, { deadline: kube });
            result = "applied";
          } else {
            // A full replace on condition of the resourceVersion read, for a refresh and a take-over alike:
            // fields someone else set (a narrower selector, extra rules) must not survive in the panic policy,
            // which a merge (a patch, a server-side apply) would leave in place. Under the name it is stored as
            // (the CRD backend's `default.<name>`).
            policy = await this.#deps.calico.replaceGlobalPolicy(
              {
                ...written,
                metadata: {
                  ...written.metadata,
                  name: existing.metadata.name,
                  resourceVersion: existing.metadata.resourceVersion,
                },
              },
              { deadline: kube },
            );
            result = ours ? "refreshed" : "taken-over";
          }
        } catch (error) {
          if (!(error instanceof PanicFailure && error.kind === "conflict") || attempt >= WRITE_ATTEMPTS)
            throw error;
          // Refused on its precondition: nothing was written.
          writing = false;
          existing = await this.#deps.calico.getGlobalPolicy(this.#objectName, { deadline: reads });
        }
      }
      writing = false;

      if (action === "apply") await this.#reconcileSchedule(expiresAt, expiryTarget, warnings, deadline);
      conflicts = await this.#conflicts(tiers, listing, warnings);
      const applied = policy === null ? null : readStamp(policy);
      const response: PanicResponse = {
        ...this.#frame(action, result, policy),
        message: this.#applyMessage(result, expiresAt, conflicts),
        appliedBy: applied?.requester ?? null,
        reason: applied?.reason ?? null,
        appliedAt: applied?.appliedAt ?? null,
        expiresAt: applied?.expiresAt ?? null,
        conflicts,
        warnings,
      };
      // The record says what the answer does: an expiry not scheduled, above all, stays in the trail. So does
      // the announcement, whose readers would otherwise wait for a removal that is not coming.
      const audited = [response.message, ...warnings].join(". WARNING: ");
      const unscheduled = expiryNotScheduled(warnings);
      // A take-over keeps the policy it replaced in the record too: the annotation can be edited, or lost with
      // the panic policy.
      const kept = result === "taken-over" ? policy?.metadata.annotations?.[ANNOTATIONS.replaced] : undefined;
      await this.#report(
        { ...base, outcome: "success", result, conflicts, message: audited, replacedPolicy: kept },
        action === "apply"
          ? {
              ...this.#event("applied", request.requester, body.reason),
              expiresAt,
              conflicts,
              ...(unscheduled.length > 0 ? { expiryNotScheduled: unscheduled } : {}),
            }
          : null,
        warnings,
      );
      return response;
    } catch (error) {
      // Past the tier check the conflicts are part of the record, as far as they could be listed in time.
      if (tiers !== null) conflicts = await this.#conflicts(tiers, listing, []);
      let failure = this.#timedOut(error, writing, "apply");
      if (failure instanceof OutOfTime && failure.sent && writing && expiresAt !== null) {
        failure = await this.#scheduleUnconfirmed(failure, expiresAt, existing, expiryTarget, deadline);
      }
      await this.#recordFailure(base, failure, conflicts, action === "apply");
      throw failure;
    }
  }

  /**
   * A write given up on may still be carried out by the API server, after this answer: its expiry is scheduled all
   * the same, or the policy would stay for good (announced to expire, and `status` saying it does). Not checked
   * against the policy, which may not be there yet; an expiry that finds none, or finds the one this write meant to
   * replace, leaves it alone (#refreshedSince). So the schedule is for the later of the two expiries: whichever
   * policy the cluster ends with is removed, never before its own expiry.
   */
  async #scheduleUnconfirmed(
    failure: OutOfTime,
    expiresAt: string,
    replacing: CalicoPolicy | null,
    target: string | undefined,
    deadline: Deadline,
  ): Promise<UnconfirmedApply> {
    const before =
      replacing !== null && isManagedByCalicoFlows(replacing)
        ? (readStamp(replacing)?.expiresAt ?? null)
        : null;
    const at = before !== null && Date.parse(before) > Date.parse(expiresAt) ? before : expiresAt;
    const warnings: string[] = [];
    await this.#syncSchedule(at, target, warnings, deadline);
    const outcome =
      warnings.length === 0
        ? `If it was carried out, it is removed at ${at}: its expiry is scheduled all the same`
        : `If it was carried out: ${warnings.join("; ")}`;
    return new UnconfirmedApply(`${failure.message}. ${outcome}`, { cause: failure.cause, warnings });
  }

  /**
   * The document to write in place of `existing`: a foreign policy taken over is kept in it (keptCopy) for revert
   * to put back, and a refresh carries the copy its predecessor kept. Refused rather than lose the policy when the
   * copy would pass Kubernetes' limit on annotations.
   */
  #replacing(document: CalicoPolicy, existing: CalicoPolicy | null): CalicoPolicy {
    if (existing === null) return document;
    const copy = isManagedByCalicoFlows(existing)
      ? existing.metadata.annotations?.[ANNOTATIONS.replaced]
      : keptCopy(existing);
    if (copy === undefined) return document;
    const annotations = { ...document.metadata.annotations, [ANNOTATIONS.replaced]: copy };
    const bytes = annotationBytes(annotations);
    if (bytes > ANNOTATIONS_MAX_BYTES) {
      const look = `kubectl get globalnetworkpolicies.${this.#deps.settings.apiGroup.split("/")[0]} ${this.#objectName} -o yaml`;
      throw new PanicFailure(
        "not-owned",
        `the GlobalNetworkPolicy "${this.#objectName}" that calico-flows did not create is too large to keep a copy ` +
          `of in the panic policy's annotations (${bytes} bytes; Kubernetes allows ${ANNOTATIONS_MAX_BYTES}), which ` +
          `revert puts back: it was left untouched. Save it (${look} > saved.yaml), delete it, apply again, and ` +
          "once the incident is over revert and `kubectl apply -f saved.yaml`",
      );
    }
    return { ...document, metadata: { ...document.metadata, annotations } };
  }

  /** A request the API refused before it reached apply or revert (its body): audited and announced as such. */
  async refused(
    action: "apply" | "revert",
    request: { requester: string; via: string; reason?: unknown; dryRun?: unknown },
    failure: PanicFailure,
  ): Promise<void> {
    const reasonGiven = typeof request.reason === "string" ? request.reason : "";
    const dryRun = action === "apply" && request.dryRun === true;
    const base = {
      action: dryRun ? ("dry-run" as const) : action,
      requester: request.requester,
      reason: reasonGiven,
      via: request.via,
      expiresAt: null,
    };
    // A dry run is audited as one, never announced, refused or not.
    await this.#recordFailure(base, failure, [], !dryRun);
  }

  /** `expiryTarget`: the function the expiry schedule must invoke (the panic function's own); unchecked without. */
  async status(
    historyLimit = DEFAULT_HISTORY,
    deadline = Deadline.unbounded(),
    expiryTarget?: string,
  ): Promise<PanicResponse> {
    // Settled together: a failing cluster read must not leave the history query running past the caller's
    // cleanup (the CLI closes its embedded store right after).
    const reading = this.#deps.calico.getGlobalPolicy(this.#objectName, { deadline });
    const [read, tiers, policies, history, scheduled] = await Promise.allSettled([
      reading,
      this.#deps.calico.listTiers({ deadline }),
      this.#deps.calico.listPolicies({ deadline }),
      this.#history(historyLimit),
      reading.then((policy) => this.#schedule(policy, deadline)),
    ]);
    if (read.status === "rejected") throw read.reason;
    const policy = read.value;
    let conflicts: PolicyConflict[] = [];
    const unlisted: string[] = [];
    if (tiers.status === "fulfilled" && policies.status === "fulfilled") {
      conflicts = findConflicts(this.#heldSettings(policy), { tiers: tiers.value, ...policies.value });
    } else {
      // The listing only informs, here as in apply: whatever stopped it, the policy's state is the answer.
      const reason = tiers.status === "rejected" ? tiers.reason : (policies as PromiseRejectedResult).reason;
      const text =
        reason instanceof OutOfTime
          ? `${CONFLICTS_UNLISTED} in time: the policies that may still deny traffic are not known; ` +
            "ask again, or with `calico-flows panic status --direct`"
          : `${CONFLICTS_UNLISTED} (${errorText(reason)}): the policies that may still deny traffic are not known`;
      unlisted.push(text);
      this.#deps.logger?.warn(text, { error: errorText(reason) });
    }
    if (history.status === "rejected") throw history.reason;
    const warnings = [...(history.value.warning === undefined ? [] : [history.value.warning]), ...unlisted];
    const stamp = policy === null ? null : readStamp(policy);
    let result: PanicResult;
    let message: string;
    if (policy === null) {
      result = "inactive";
      message = `no panic policy is applied on ${this.#deps.cluster}`;
    } else if (!isManagedByCalicoFlows(policy)) {
      result = "foreign";
      message =
        `a GlobalNetworkPolicy named "${this.#objectName}" exists but was not created by calico-flows ` +
        `(no ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE} label): applying needs force, reverting is refused`;
    } else {
      result = "active";
      const expiry = stamp?.expiresAt ?? null;
      const overdue = expiry !== null && Date.parse(expiry) + OVERDUE_AFTER_MS < this.#clock().getTime();
      const schedule = scheduled.status === "fulfilled" ? scheduled.value : undefined;
      if (scheduled.status === "rejected") {
        const text = `the expiry schedule could not be checked: ${errorText(scheduled.reason)}`;
        warnings.push(text);
        this.#deps.logger?.warn(text);
      }
      const found = expiry === null ? undefined : this.#unscheduledBy(schedule, expiry, expiryTarget);
      const unscheduled = found !== undefined;
      if (unscheduled) {
        warnings.push(
          `the expiry at ${expiry} is not scheduled (${found}): the policy stays until reverted by hand; revert it ` +
            "once traffic is fixed, or apply again with a TTL",
        );
      }
      const until =
        expiry === null
          ? ", until reverted"
          : overdue
            ? `; it should have expired at ${expiry} but is still in place: the expiry did not remove it, revert it`
            : unscheduled
              ? `, announced to expire at ${expiry}, but no expiry schedule will remove it: revert it by hand`
              : schedule != null && schedule.expiresAt !== expiry
                ? `, expiring at ${expiry}; its expiry schedule removes it at ${schedule.expiresAt}`
                : `, expiring at ${expiry}`;
      const copy = replacedPolicy(policy);
      if (copy instanceof Error) {
        warnings.push(
          `the copy of the policy it took over (${ANNOTATIONS.replaced}) cannot be read (${copy.message}): revert ` +
            "refuses to remove the panic policy without force, and the expiry removes it without putting that " +
            `policy back. Make the annotation the policy's JSON again, or keep its text: ${
              policy.metadata.annotations?.[ANNOTATIONS.replaced]
            }`,
        );
      }
      const takenOver =
        copy === null
          ? ""
          : copy instanceof Error
            ? "; it took over a policy of that name, whose kept copy cannot be read, so revert cannot put it back"
            : "; it took over a policy of that name, which revert puts back";
      message = `the panic policy is applied on ${this.#deps.cluster}${until}${takenOver}`;
    }
    return {
      ...this.#frame("status", result, policy),
      message: message + this.#conflictNote(conflicts),
      appliedBy: stamp?.requester ?? null,
      reason: stamp?.reason ?? null,
      appliedAt: stamp?.appliedAt ?? null,
      expiresAt: stamp?.expiresAt ?? null,
      conflicts,
      history: history.value.entries,
      warnings,
    };
  }

  async revert(request: RevertRequest): Promise<PanicResponse> {
    const parsed = RevertBody.safeParse({ reason: request.reason, force: request.force });
    if (!parsed.success) {
      const refusal = invalidRequest(parsed.error, RevertBody);
      await this.refused("revert", request, refusal);
      throw refusal;
    }
    return this.#remove(
      "revert",
      request.requester,
      parsed.data.reason ?? "reverted by hand",
      request.via,
      null,
      request.deadline ?? Deadline.unbounded(),
      {
        expiryTarget: request.expiryTarget === undefined ? undefined : unqualifiedArn(request.expiryTarget),
        force: request.force === true,
      },
    );
  }

  /** The expiry schedule fired: remove the policy unless it was refreshed (or replaced) since. */
  async expire(event: ExpiryEvent, deadline = Deadline.unbounded()): Promise<PanicResponse> {
    const requester = "calico-flows expiry schedule";
    const reason = `expired at ${event.expiresAt}`;
    if (event.cluster !== this.#deps.cluster || event.policyName !== this.#objectName) {
      // A schedule left over from another configuration: nothing of ours to remove. Audited all the same, as every
      // expiry is: whatever policy it was for stays in place.
      const message =
        `expiry for ${event.cluster}/${event.policyName} ignored: this function manages ` +
        `${this.#deps.cluster}/${this.#objectName}, and leaves that policy, if any, in place`;
      const warnings: string[] = [];
      await this.#report(
        {
          action: "expire",
          requester,
          reason,
          via: "schedule",
          expiresAt: null,
          outcome: "success",
          result: "skipped",
          conflicts: [],
          message,
        },
        null,
        warnings,
      );
      return {
        ...this.#frame("expire", "skipped", null),
        message,
        appliedBy: null,
        reason: null,
        appliedAt: null,
        expiresAt: null,
        conflicts: [],
        warnings,
      };
    }
    return this.#remove("expire", requester, reason, "schedule", event, deadline);
  }

  async #remove(
    action: "revert" | "expire",
    requester: string,
    reason: string,
    via: string,
    expiry: ExpiryEvent | null,
    deadline: Deadline,
    options: { expiryTarget?: string; force?: boolean } = {},
  ): Promise<PanicResponse> {
    const warnings: string[] = [];
    const base = { action, requester, reason, via, expiresAt: null };
    // The reads leave time for the delete; the schedule's removal may fail harmlessly (it finds nothing).
    const reads = deadline.earlier(MIN_WRITE_MS);
    let writing = false;
    try {
      let existing = await this.#deps.calico.getGlobalPolicy(this.#objectName, { deadline: reads });
      let result: PanicResult | undefined;
      let message = "";
      let restored: CalicoPolicy | null = null;
      /** The copy of a policy it had taken over, deleted with the panic policy rather than put back. */
      let lost: string | undefined;
      /** The panic policy was deleted: isolation is back, unless an apply wrote it again meanwhile. */
      let deleted = false;
      /** The policy the last attempt was to put back, which another revert may have put back first. */
      let puttingBack: CalicoPolicy | null = null;
      const removed = existing;
      for (let attempt = 1; result === undefined; attempt++) {
        if (existing === null) {
          result = "not-applied";
          message = `no panic policy is applied on ${this.#deps.cluster}: nothing to revert`;
          break;
        }
        if (puttingBack !== null && isPutBack(existing, puttingBack)) {
          // Another revert (or expiry) won the race to the same end: as when it deleted a plain panic policy.
          result = "not-applied";
          message =
            `the panic policy was already removed from ${this.#deps.cluster}, and the policy it had taken over put ` +
            "back, by another revert meanwhile: nothing to revert";
          break;
        }
        if (!isManagedByCalicoFlows(existing)) {
          if (expiry !== null) {
            result = "skipped";
            message = `"${this.#objectName}" is no longer a calico-flows policy: left in place`;
            break;
          }
          throw this.#notOwned(existing, "revert");
        }
        const stamp = readStamp(existing);
        if (expiry !== null && this.#refreshedSince(stamp, expiry)) {
          result = "skipped";
          message = `the panic policy was refreshed since this expiry was scheduled; it now expires ${
            stamp?.expiresAt ? `at ${stamp.expiresAt}` : "never"
          }`;
          break;
        }
        const copy = replacedPolicy(existing);
        // A revert by hand can wait for the copy to be fixed; an expiry does not leave allow-all in place for it.
        if (copy instanceof Error && expiry === null && options.force !== true)
          throw this.#copyUnreadable(existing, copy);
        writing = true;
        try {
          let rejected: PanicFailure | undefined;
          if (copy !== null && !(copy instanceof Error)) {
            puttingBack = copy;
            try {
              // A take-over: the policy it replaced is put back in its place, on condition of the version read.
              restored = await this.#deps.calico.replaceGlobalPolicy(
                {
                  ...copy,
                  apiVersion: existing.apiVersion,
                  kind: existing.kind,
                  metadata: {
                    ...copy.metadata,
                    name: existing.metadata.name,
                    resourceVersion: existing.metadata.resourceVersion,
                  },
                },
                { deadline },
              );
              writing = false;
              result = expiry === null ? "reverted" : "expired";
              message =
                `panic policy ${this.#objectName} removed from ${this.#deps.cluster}, and the policy it had taken ` +
                "over put back as it was";
              break;
            } catch (error) {
              // A copy the API server refuses would fail every revert, and leave allow-all for good: isolation
              // comes back without it.
              if (!(error instanceof PanicFailure && error.kind === "kube-rejected")) throw error;
              rejected = error;
            }
          }
          deleted = await this.#deps.calico.deleteGlobalPolicy(
            existing.metadata.name,
            { uid: existing.metadata.uid, resourceVersion: existing.metadata.resourceVersion },
            { deadline },
          );
          writing = false;
          result = deleted ? (expiry === null ? "reverted" : "expired") : "not-applied";
          message = deleted
            ? `panic policy ${this.#objectName} removed from ${this.#deps.cluster}`
            : `the panic policy was already gone from ${this.#deps.cluster}: nothing to revert`;
          if (deleted && copy !== null) {
            lost = existing.metadata.annotations?.[ANNOTATIONS.replaced];
            const why =
              rejected === undefined
                ? `could not be read (${(copy as Error).message})`
                : `was rejected by the API server (${rejected.message})`;
            message += `, without the policy it had taken over, which could not be put back`;
            const text =
              `${COPY_NOT_RESTORED}: its copy (${ANNOTATIONS.replaced}) ${why}. Put it back by hand from the ` +
              `copy, which the audit record keeps too: ${lost}`;
            warnings.push(text);
            this.#deps.logger?.error(text);
          }
        } catch (error) {
          if (!(error instanceof PanicFailure && error.kind === "conflict") || attempt >= WRITE_ATTEMPTS)
            throw error;
          writing = false;
          existing = await this.#deps.calico.getGlobalPolicy(this.#objectName, { deadline: reads });
        }
      }
      // An apply may have written the policy and its schedule since the delete: the check after the removal puts the
      // schedule back for it, and the answer does not say that isolation is back.
      const now =
        result !== "skipped" && expiry === null
          ? await this.#reconcileSchedule(null, options.expiryTarget, warnings, deadline)
          : undefined;
      const again = now != null && isManagedByCalicoFlows(now) ? readStamp(now) : null;
      if (again !== null) {
        const until = again.expiresAt === null ? "until reverted" : `until ${again.expiresAt}`;
        message += `; but another apply, by ${again.requester}, applied it again meanwhile (${until}): ${this.#objectName} is in force`;
      } else if (deleted) {
        message += ": Calico isolation is back in force";
      }
      const stamp = removed === null ? null : readStamp(removed);
      const response: PanicResponse = {
        ...this.#frame(action, result, result === "skipped" ? presentable(existing) : restored),
        message,
        appliedBy: stamp?.requester ?? null,
        reason: stamp?.reason ?? null,
        appliedAt: stamp?.appliedAt ?? null,
        expiresAt: stamp?.expiresAt ?? null,
        conflicts: [],
        warnings,
      };
      await this.#report(
        {
          ...base,
          outcome: "success",
          result,
          conflicts: [],
          // As for apply: the record says what the answer does, its warnings included.
          message: [message, ...warnings].join(". WARNING: "),
          replacedPolicy: lost,
        },
        result === "reverted" || result === "expired" ? this.#event(result, requester, reason) : null,
        warnings,
      );
      return response;
    } catch (error) {
      const failure = this.#timedOut(error, writing, "revert");
      await this.#recordFailure(base, failure, [], true);
      throw failure;
    }
  }

  /**
   * A revert refused because the policy the panic policy took over could not be put back: the copy it keeps of it
   * cannot be read (edited by hand). Its text is in the answer, to fix the annotation or put the policy back by hand.
   */
  #copyUnreadable(existing: CalicoPolicy, copy: Error): PanicFailure {
    const group = this.#deps.settings.apiGroup.split("/")[0];
    const text = existing.metadata.annotations?.[ANNOTATIONS.replaced];
    return new PanicFailure(
      "not-owned",
      `the panic policy ${this.#objectName} took over a policy of that name, and the copy it keeps of it (the ` +
        `annotation ${ANNOTATIONS.replaced}) cannot be read (${copy.message}): a revert would delete that policy ` +
        "with the panic policy, so nothing was changed. Either make the annotation the policy's JSON again " +
        `(kubectl edit globalnetworkpolicies.${group} ${existing.metadata.name}) and revert again; or revert with ` +
        "force (`--force` in the CLI), which removes the panic policy without putting the policy back, then " +
        `re-create it by hand from the annotation's text: ${text}`,
    );
  }

  /**
   * The expiry schedule (null: none), for a policy of ours whose expiry is still to come: the schedule must then be
   * there. Once the expiry passed, it may have run and deleted itself. Undefined when there is nothing to check, or
   * no way to.
   */
  async #schedule(
    policy: CalicoPolicy | null,
    deadline: Deadline,
  ): Promise<ScheduledExpiry | null | undefined> {
    const scheduler = this.#deps.scheduler;
    const expiry = policy !== null && isManagedByCalicoFlows(policy) ? readStamp(policy)?.expiresAt : null;
    if (expiry == null || scheduler?.scheduledExpiry === undefined) return undefined;
    if (Date.parse(expiry) <= this.#clock().getTime()) return undefined;
    return settledBy(
      deadline,
      "EventBridge Scheduler",
      scheduler.scheduledExpiry(this.#deps.cluster, this.#objectName),
    );
  }

  /**
   * Why `schedule` will not remove the policy at `expiry`, or undefined when it will (or could not be read): there is
   * none; it is for an earlier expiry, which skips the policy (#refreshedSince; a later one removes it then); it is
   * disabled; or it invokes another function than `target`, when that is known.
   */
  #unscheduledBy(
    schedule: ScheduledExpiry | null | undefined,
    expiry: string,
    target: string | undefined,
  ): string | undefined {
    if (schedule === undefined) return undefined;
    if (schedule === null) return "there is none";
    if (schedule.state !== "ENABLED")
      return `the one there is is not enabled (${schedule.state ?? "no state"}): Scheduler does not run it`;
    if (target !== undefined && schedule.target !== unqualifiedArn(target))
      return `the one there is invokes ${schedule.target ?? "nothing"}, not this panic function (${unqualifiedArn(target)})`;
    if (Date.parse(schedule.expiresAt) < Date.parse(expiry))
      return `the one there is for ${schedule.expiresAt}, and will skip it`;
    return undefined;
  }

  /**
   * The panic policy as the cluster holds it, for its conflicts: its own order and directions, which someone
   * may have changed by hand since it was applied (an edit keeps the label). One absent or not ours is judged
   * as the configured policy that an apply would write.
   */
  #heldSettings(policy: CalicoPolicy | null): PanicPolicySettings {
    const settings = this.#deps.settings;
    if (policy === null || !isManagedByCalicoFlows(policy)) return settings;
    const spec = policy.spec ?? {};
    // Calico evaluates a policy without an order after every ordered one.
    return { ...settings, order: spec.order ?? Number.POSITIVE_INFINITY, types: effectiveTypes(spec) };
  }

  #refreshedSince(stamp: PanicStamp | null, expiry: ExpiryEvent): boolean {
    if (stamp === null) return false;
    if (stamp.expiresAt === null) return true;
    return stamp.expiresAt !== expiry.expiresAt && Date.parse(stamp.expiresAt) > this.#clock().getTime();
  }

  /**
   * The panic tier must exist. The Calico API server refuses a policy in a tier that does not; written as a
   * crd.projectcalico.org CRD nothing checks it, and the policy would not be enforced where it was meant to be:
   * refused here, before anything is written, whichever the API group.
   */
  #requireTier(tiers: readonly CalicoTier[]): void {
    const { tier, apiGroup } = this.#deps.settings;
    if (tier === DEFAULT_TIER || tiers.some((t) => t.metadata.name === tier)) return;
    throw new PanicFailure(
      "kube-rejected",
      `the panic policy's tier "${tier}" does not exist on ${this.#deps.cluster} (tiers.${apiGroup.split("/")[0]}): ` +
        "create the tier, or set PANIC_TIER (CLI: --tier) to an existing one; nothing was applied",
    );
  }

  /** The conflicts, once the policies are listed; a warning instead when they could not be, in time or at all. */
  async #conflicts(
    tiers: readonly CalicoTier[],
    listing: Promise<Omit<PolicyInventory, "tiers">>,
    warnings: string[],
  ): Promise<PolicyConflict[]> {
    try {
      return findConflicts(this.#deps.settings, { tiers, ...(await listing) });
    } catch (error) {
      const see = "run `calico-flows panic status` to see the policies that may still deny traffic";
      const text =
        error instanceof OutOfTime
          ? `${CONFLICTS_UNLISTED} in time: ${see}`
          : `${CONFLICTS_UNLISTED} (${errorText(error)}): ${see}`;
      warnings.push(text);
      this.#deps.logger?.warn(text, { error: errorText(error) });
      return [];
    }
  }

  /**
   * A request that ran out of time, said in terms of what was done: nothing, when no write was on its way;
   * possibly everything, when the write was sent and its answer did not come in time.
   */
  #timedOut(error: unknown, writing: boolean, action: "apply" | "revert"): unknown {
    if (!(error instanceof OutOfTime)) return error;
    const message =
      writing && error.sent
        ? `${error.message}: the ${action === "apply" ? "write" : "delete"} was sent, and the API server may have ` +
          "carried it out (or still do): check with `calico-flows panic status` before trying again"
        : `${error.message}; nothing was ${action === "apply" ? "applied" : "reverted"}. The Kubernetes API is ` +
          `too slow for the time this request has: try again, or use \`calico-flows panic ${action} --direct\`, ` +
          "which waits for each request's own timeout";
    return new OutOfTime(message, { cause: error, sent: writing && error.sent });
  }

  #notOwned(existing: CalicoPolicy, doing: "apply" | "revert"): PanicFailure {
    const who =
      existing.metadata.managedFields === undefined ? "" : ` (field managers: ${managers(existing)})`;
    const look = `kubectl get globalnetworkpolicies.${this.#deps.settings.apiGroup.split("/")[0]} ${this.#objectName} -o yaml`;
    const what =
      doing === "apply"
        ? "It was left untouched. Pass force (`--force` in the CLI) to take it over (it is then replaced by the panic policy, and put back by revert)."
        : "calico-flows never deletes a policy it did not create: delete it with kubectl if it should go.";
    return new PanicFailure(
      "not-owned",
      `a GlobalNetworkPolicy named "${this.#objectName}" already exists and was not created by calico-flows ` +
        `(it lacks the label ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE})${who}. ${what} Inspect it: ${look}`,
    );
  }

  #frame(action: PanicResponse["action"], result: PanicResult, policy: CalicoPolicy | null) {
    return {
      cluster: this.#deps.cluster,
      action,
      result,
      apiGroup: this.#deps.settings.apiGroup,
      policyName: this.#objectName,
      policy: presentable(policy),
    };
  }

  #applyMessage(result: PanicResult, expiresAt: string | null, conflicts: PolicyConflict[]): string {
    const s = this.#deps.settings;
    const scope = `traffic (${s.types.join(" and ").toLowerCase()}) of namespaces matching ${s.namespaceSelector}`;
    const until = expiresAt === null ? "until reverted" : `until ${expiresAt}`;
    const text: Record<string, string> = {
      applied: `panic policy ${this.#objectName} applied on ${this.#deps.cluster}: all ${scope} is allowed ${until}`,
      refreshed: `panic policy ${this.#objectName} was already applied; its reason and expiry were refreshed (${until})`,
      "taken-over": `took over the existing policy ${this.#objectName} (not created by calico-flows) and replaced it with the panic policy, ${until}; a copy of it is kept in the annotation ${ANNOTATIONS.replaced}, and revert puts it back`,
      "would-apply": `dry run, nothing changed: this policy would be applied, allowing all ${scope} ${until}`,
      "would-refresh": `dry run, nothing changed: the panic policy is applied and would be refreshed (${until})`,
      "would-take-over": `dry run, nothing changed: the existing foreign policy ${this.#objectName} would be replaced (force)`,
    };
    return (text[result] ?? result) + this.#conflictNote(conflicts);
  }

  #conflictNote(conflicts: PolicyConflict[]): string {
    if (conflicts.length === 0) return "";
    return `. WARNING: ${conflicts.length} polic${conflicts.length === 1 ? "y is" : "ies are"} evaluated before it and may still deny traffic: ${conflicts
      .slice(0, 3)
      .map(describeConflict)
      .join(" | ")}${conflicts.length > 3 ? " | …" : ""}`;
  }

  #event(action: PanicEvent["action"], requester: string, reason: string): Omit<PanicEvent, "conflicts"> {
    return {
      action,
      cluster: this.#deps.cluster,
      policyName: this.#objectName,
      requester,
      reason,
      at: this.#clock().toISOString(),
    };
  }

  /**
   * The schedule written for `scheduled` (removed for null), then brought in line with the policy as it is now:
   * another apply or revert may have written the policy after this one did and its schedule before this one's,
   * which would leave the policy with no expiry, or one that skips it. A few rounds, until a read of the policy
   * agrees. Answers the policy as last read (undefined: it could not be).
   */
  async #reconcileSchedule(
    scheduled: string | null,
    target: string | undefined,
    warnings: string[],
    deadline: Deadline,
  ): Promise<CalicoPolicy | null | undefined> {
    let written = scheduled;
    let current: CalicoPolicy | null | undefined;
    await this.#syncSchedule(written, target, warnings, deadline);
    for (let round = 0; round < RECONCILE_ROUNDS; round++) {
      try {
        current = await this.#deps.calico.getGlobalPolicy(this.#objectName, { deadline });
      } catch (error) {
        warnings.push(`the expiry schedule could not be checked against the policy: ${errorText(error)}`);
        return undefined;
      }
      const stamp = current !== null && isManagedByCalicoFlows(current) ? readStamp(current) : null;
      const wanted = stamp?.expiresAt ?? null;
      if (wanted === written) return current;
      if (wanted !== null && target === undefined) {
        // Another apply set an expiry this request cannot schedule (no target here), and may have lost its
        // schedule to this one's removal.
        warnings.push(
          `${raced(wanted)}this request cannot write its schedule: check with \`calico-flows panic status\` that ` +
            "the expiry is scheduled, or apply again with its TTL",
        );
        return current;
      }
      written = wanted;
      await this.#syncSchedule(written, target, warnings, deadline, true);
    }
    return current;
  }

  /**
   * Writes or removes the schedule. Always sent, however little time is left (an expiry that is not
   * scheduled leaves the policy in place), but waited for only until the deadline. `ofAnother`: the expiry is that
   * of another apply, which a warning then says.
   */
  async #syncSchedule(
    expiresAt: string | null,
    target: string | undefined,
    warnings: string[],
    deadline: Deadline,
    ofAnother = false,
  ): Promise<void> {
    const scheduler = this.#deps.scheduler;
    if (scheduler === undefined) return;
    try {
      const call: Promise<unknown> =
        expiresAt !== null && target !== undefined
          ? scheduler.schedule({
              cluster: this.#deps.cluster,
              policyName: this.#objectName,
              expiresAt,
              functionArn: target,
            })
          : scheduler.cancel(this.#deps.cluster, this.#objectName);
      await settledBy(deadline, "EventBridge Scheduler", call);
    } catch (error) {
      const text =
        expiresAt === null
          ? `the expiry schedule could not be removed (${errorText(error)}); it will find nothing to revert`
          : (ofAnother ? raced(expiresAt) : "") +
            (error instanceof NotInTime
              ? `${EXPIRY_UNCONFIRMED} (${errorText(error)}): if it was not written, ` +
                "the policy stays until reverted by hand"
              : `${EXPIRY_NOT_SCHEDULED} (${errorText(error)}): the policy stays until reverted by hand`);
      warnings.push(text);
      this.#deps.logger?.error(text, { error: errorText(error) });
    }
  }

  async #history(limit: number): Promise<{ entries: PanicAuditEntry[]; warning?: string }> {
    if (this.#deps.audit === undefined) return { entries: [] };
    try {
      return { entries: await this.#deps.audit.recent(this.#deps.cluster, limit) };
    } catch (error) {
      const warning = `history unavailable: ${errorText(error)}`;
      this.#deps.logger?.warn(warning);
      return { entries: [], warning };
    }
  }

  async #record(
    entry: Omit<PanicAuditEntry, "cluster" | "at" | "policyName"> & { outcome: PanicOutcome },
    warnings: string[],
  ): Promise<void> {
    if (this.#deps.audit === undefined) return;
    try {
      await this.#deps.audit.record({
        ...entry,
        cluster: this.#deps.cluster,
        at: this.#clock().toISOString(),
        policyName: this.#objectName,
      });
    } catch (error) {
      // The cluster change stands: an emergency action is not undone because its audit record failed.
      const text = `the audit record could not be written: ${errorText(error)}`;
      warnings.push(text);
      this.#deps.logger?.error(text, { entry });
    }
  }

  /**
   * The audit record and, when there is one, the announcement, side by side: what the handler keeps back of
   * the Lambda's time for them covers the slower of the two, not their sum.
   */
  async #report(
    entry: Omit<PanicAuditEntry, "cluster" | "at" | "policyName"> & { outcome: PanicOutcome },
    event: (Omit<PanicEvent, "conflicts"> & { conflicts?: PolicyConflict[] }) | null,
    warnings: string[],
  ): Promise<void> {
    const recorded: string[] = [];
    const announced: string[] = [];
    await Promise.all([
      this.#record(entry, recorded),
      event === null ? undefined : this.#announce(event, announced),
    ]);
    warnings.push(...recorded, ...announced);
  }

  async #announce(
    event: Omit<PanicEvent, "conflicts"> & { conflicts?: PolicyConflict[] },
    warnings: string[],
  ): Promise<void> {
    if (this.#deps.sink === undefined) return;
    try {
      await this.#deps.sink.publishPanic({
        ...event,
        conflicts: (event.conflicts ?? []).map(toPanicConflict),
      });
    } catch (error) {
      const text = `the announcement could not be published: ${errorText(error)}`;
      warnings.push(text);
      this.#deps.logger?.error(text);
    }
  }

  /** Audits (and, for real actions, announces) a request that was refused or failed. */
  async #recordFailure(
    base: { action: PanicAction; requester: string; reason: string; via: string; expiresAt: string | null },
    error: unknown,
    conflicts: PolicyConflict[],
    announce: boolean,
  ): Promise<void> {
    const result = error instanceof PanicFailure ? error.kind : "error";
    await this.#report(
      {
        ...base,
        outcome: outcomeUnknown(error) ? "unknown" : isRefusal(error) ? "refused" : "failed",
        result,
        conflicts,
        message: errorText(error),
      },
      announce
        ? {
            ...this.#event("refused", base.requester, base.reason),
            ...(base.action === "dry-run" ? {} : { request: base.action }),
            detail: errorText(error),
            conflicts,
            // Not carried out as far as the answer knows, but it may be: its readers must check, not try again.
            ...(outcomeUnknown(error) ? { outcome: "unknown" as const } : {}),
          }
        : null,
      [],
    );
  }
}

/** A call not settled by its deadline. */
class NotInTime extends Error {
  override name = "NotInTime";
}

/**
 * `work`'s outcome, or NotInTime once `deadline` passed first. The work itself goes on (nothing here can
 * abort it); its late failure is dropped.
 */
async function settledBy<T>(deadline: Deadline, what: string, work: Promise<T>): Promise<T> {
  if (!deadline.bounded) return work;
  work.catch(() => undefined);
  const left = deadline.remainingMs();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new NotInTime(`no answer from ${what} within the ${Math.round(left)} ms left`)),
      left,
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether `policy` is `copy` as a revert puts it back: the same labels, annotations and spec, what the copy is made
 * of (the API server's bookkeeping is not in it). Read through keptCopy, as the copy was written, so that a field
 * held as undefined compares as one left out.
 */
function isPutBack(policy: CalicoPolicy, copy: CalicoPolicy): boolean {
  const held = JSON.parse(keptCopy(policy)) as CalicoPolicy;
  const fields = (p: CalicoPolicy) => ({
    labels: p.metadata.labels ?? {},
    annotations: p.metadata.annotations ?? {},
    spec: p.spec,
  });
  return isDeepStrictEqual(fields(held), fields(copy));
}

function managers(policy: CalicoPolicy): string {
  const names = (policy.metadata.managedFields ?? [])
    .map((m) => (m !== null && typeof m === "object" && "manager" in m ? String(m.manager) : ""))
    .filter((m) => m !== "");
  return [...new Set(names)].join(", ") || "unknown";
}
