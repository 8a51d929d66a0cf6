// The panic function's configuration, read from the environment once per container and validated, so that a
// misconfigured deployment fails on its first invocation naming the variable and the value it got.
//
// Environment (set by the CDK stack):
//   CLUSTER_NAME          EKS cluster the panic policy is applied to (required)
//   TABLE_NAME            DynamoDB table of the audit trail (the flow store's table) (required)
//   ALERTS_TOPIC_ARN      SNS topic announcements go to; unset: no announcements
//   CALICO_API_GROUP      projectcalico.org/v3 (Calico API server, default) or crd.projectcalico.org/v1;
//                         the bare group names projectcalico.org / crd.projectcalico.org are accepted too
//   PANIC_POLICY_NAME     GlobalNetworkPolicy name (default allow-all)
//   PANIC_NAMESPACE_SELECTOR  Calico selector of the namespaces opened up
//                         (default baseten.co/organization == 'true')
//   PANIC_ORDER           policy order, lower = evaluated first (default 100)
//   PANIC_TIER            Calico tier of the policy (default "default")
//   PANIC_TYPES           directions allowed, comma-separated: Ingress,Egress (default both)
//   PANIC_TTL_MINUTES     default TTL when a request gives none; 0 = until reverted (default 60)
//   SCHEDULE_GROUP_NAME   EventBridge Scheduler group of the expiry schedules; unset: TTLs are refused
//   SCHEDULER_ROLE_ARN    role the scheduler assumes to invoke this function; needed with SCHEDULE_GROUP_NAME
//   SCHEDULE_DEAD_LETTER_QUEUE_ARN  SQS queue the schedules send a revert they could not deliver to;
//                         needed with SCHEDULE_GROUP_NAME (a missed revert must not be dropped unnoticed)
//   KUBE_TIMEOUT_SECONDS  per-request timeout towards the Kubernetes API (default 10); a request also ends at
//                         the invocation's deadline (handler.ts, ANSWER_RESERVE_MS)
import * as z from "zod";
import {
  CALICO_API_GROUPS,
  type CalicoApiGroup,
  DEFAULT_PANIC_SETTINGS,
  type PanicPolicySettings,
  POLICY_TYPES,
} from "../core/panic-policy.ts";
import { parseEnv } from "../shared/env.ts";
import { MAX_TTL_MINUTES } from "./service.ts";

/** The bare group names (as the CDK context spells them) mean the version each group serves. */
const GROUP_ALIASES: Record<string, CalicoApiGroup> = {
  "projectcalico.org": "projectcalico.org/v3",
  "crd.projectcalico.org": "crd.projectcalico.org/v1",
};

const apiGroup = z
  .string()
  .transform((v) => GROUP_ALIASES[v.trim()] ?? v.trim())
  .pipe(z.enum(CALICO_API_GROUPS, { error: `expected ${CALICO_API_GROUPS.join(" or ")}` }));

const k8sName = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
    "expected a Kubernetes object name (lowercase, digits, - and .)",
  );

const types = z
  .string()
  .transform((v) => [
    ...new Set(
      v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    ),
  ])
  .pipe(z.array(z.enum(POLICY_TYPES, { error: "expected Ingress and/or Egress" })).min(1));

/** A standard SQS queue's ARN, as Scheduler's DeadLetterConfig takes it (checked at start, not at the first schedule). */
export const SQS_QUEUE_ARN = /^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}$/;
const sqsArn = z.string().regex(SQS_QUEUE_ARN, "expected an SQS queue ARN");

const PanicEnv = z
  .object({
    CLUSTER_NAME: z.string().min(1),
    TABLE_NAME: z.string().min(1),
    ALERTS_TOPIC_ARN: z.string().startsWith("arn:").optional(),
    CALICO_API_GROUP: apiGroup.default(DEFAULT_PANIC_SETTINGS.apiGroup),
    PANIC_POLICY_NAME: k8sName.default(DEFAULT_PANIC_SETTINGS.name),
    PANIC_NAMESPACE_SELECTOR: z.string().trim().min(1).default(DEFAULT_PANIC_SETTINGS.namespaceSelector),
    PANIC_ORDER: z.coerce.number().min(0).default(DEFAULT_PANIC_SETTINGS.order),
    PANIC_TIER: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "expected a Calico tier name")
      .default(DEFAULT_PANIC_SETTINGS.tier),
    PANIC_TYPES: types.default([...DEFAULT_PANIC_SETTINGS.types]),
    PANIC_TTL_MINUTES: z.coerce.number().int().min(0).max(MAX_TTL_MINUTES).default(60),
    SCHEDULE_GROUP_NAME: z.string().min(1).optional(),
    SCHEDULER_ROLE_ARN: z.string().startsWith("arn:").optional(),
    SCHEDULE_DEAD_LETTER_QUEUE_ARN: sqsArn.optional(),
    KUBE_TIMEOUT_SECONDS: z.coerce.number().min(1).max(60).default(10),
  })
  .refine((e) => (e.SCHEDULE_GROUP_NAME === undefined) === (e.SCHEDULER_ROLE_ARN === undefined), {
    message: "SCHEDULE_GROUP_NAME and SCHEDULER_ROLE_ARN are set together (both or neither)",
    path: ["SCHEDULER_ROLE_ARN"],
  })
  .refine((e) => (e.SCHEDULE_GROUP_NAME === undefined) === (e.SCHEDULE_DEAD_LETTER_QUEUE_ARN === undefined), {
    message: "SCHEDULE_DEAD_LETTER_QUEUE_ARN is set with SCHEDULE_GROUP_NAME (both or neither)",
    path: ["SCHEDULE_DEAD_LETTER_QUEUE_ARN"],
  });

export type PanicEnv = z.infer<typeof PanicEnv>;

export interface PanicConfig {
  cluster: string;
  tableName: string;
  alertsTopicArn: string | undefined;
  settings: PanicPolicySettings;
  defaultTtlMinutes: number;
  /** All set, or expiry is unavailable. */
  scheduler: { groupName: string; roleArn: string; deadLetterArn: string } | undefined;
  kubeTimeoutMs: number;
}

/** Empty variables count as unset (a CDK construct may pass "" for an optional value). */
function withoutEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ""),
  );
}

export function loadPanicConfig(env: NodeJS.ProcessEnv): PanicConfig {
  const e = parseEnv(PanicEnv, env, "panic", withoutEmpty(env));
  return {
    cluster: e.CLUSTER_NAME,
    tableName: e.TABLE_NAME,
    alertsTopicArn: e.ALERTS_TOPIC_ARN,
    settings: {
      apiGroup: e.CALICO_API_GROUP,
      name: e.PANIC_POLICY_NAME,
      namespaceSelector: e.PANIC_NAMESPACE_SELECTOR,
      order: e.PANIC_ORDER,
      tier: e.PANIC_TIER,
      types: e.PANIC_TYPES,
    },
    defaultTtlMinutes: e.PANIC_TTL_MINUTES,
    scheduler:
      e.SCHEDULE_GROUP_NAME !== undefined &&
      e.SCHEDULER_ROLE_ARN !== undefined &&
      e.SCHEDULE_DEAD_LETTER_QUEUE_ARN !== undefined
        ? {
            groupName: e.SCHEDULE_GROUP_NAME,
            roleArn: e.SCHEDULER_ROLE_ARN,
            deadLetterArn: e.SCHEDULE_DEAD_LETTER_QUEUE_ARN,
          }
        : undefined,
    kubeTimeoutMs: e.KUBE_TIMEOUT_SECONDS * 1000,
  };
}
