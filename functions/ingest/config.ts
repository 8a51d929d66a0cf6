// The ingest function's configuration, read from the environment once per container and validated, so a
// misconfigured deployment fails on its first invocation with the offending variable and value.
import * as z from "zod";
import {
  CidrSet,
  checkWorkloadInterfacePrefixes,
  DEFAULT_WORKLOAD_INTERFACE_PREFIXES,
} from "../core/classify.ts";
import { parseEnv } from "../shared/env.ts";

/**
 * The longest flow bucket a deployment may use: a flow item keeps the token of every delivery counted into its
 * bucket, so its writes grow dearer with the bucket's deliveries (an hour of one a second: 58 KB, every write).
 */
export const MAX_AGGREGATION_SECONDS = 60;
/**
 * Every bucket length (seconds) the ingest may count flows in. The stack's aggregationSeconds may have been another
 * when older flows were counted, so a reader of the stack's table (the query function, `flows --table`) reads a range
 * from the earliest start of a bucket of any of them that holds its start: less than a minute before it.
 */
export const INGEST_BUCKET_LENGTHS: readonly number[] = Array.from(
  { length: MAX_AGGREGATION_SECONDS },
  (_, i) => i + 1,
);

const csv = z.string().transform((v) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

const IngestEnv = z.object({
  CLUSTER_NAME: z.string().min(1),
  TABLE_NAME: z.string().min(1),
  // Empty, nothing would be internal and no denial would ever alert. Read into the CidrSet here, so that a
  // CIDR it refuses is reported like any other value: with the variable's name.
  INTERNAL_CIDRS: csv
    .pipe(z.array(z.string()).min(1, "at least one internal CIDR is needed"))
    .default(["192.168.0.0/16"])
    .transform((cidrs, ctx) => {
      try {
        return { cidrs, set: new CidrSet(cidrs) };
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    }),
  // Felix's InterfacePrefix list (plus any chained CNI's): replaces the defaults. Spaces around items are ignored,
  // but an empty item is refused rather than skipped, as an empty prefix would make every interface a workload's.
  WORKLOAD_INTERFACE_PREFIXES: z
    .string()
    .transform((value, ctx) => {
      try {
        return checkWorkloadInterfacePrefixes(value.split(",").map((s) => s.trim()));
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    })
    .default(DEFAULT_WORKLOAD_INTERFACE_PREFIXES),
  AGGREGATION_SECONDS: z.coerce.number().int().min(1).max(MAX_AGGREGATION_SECONDS).default(60),
  ALERT_WINDOW_MINUTES: z.coerce.number().int().min(1).max(1440).default(15),
  ALERT_CAP: z.coerce.number().int().min(1).max(10_000).default(50),
  ALERTS_TOPIC_ARN: z.string().startsWith("arn:").optional(),
  // The stack's API, which the alert e-mails' `calico-flows` commands name (`--api`).
  API_URL: z.url({ protocol: /^https?$/ }).optional(),
  SCAN_THRESHOLD: z.coerce.number().int().min(2).max(65_535).optional(),
  RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  LOG_PREFIX: z.string().min(1).default("calico-packet"),
  LOG_PREFIX_FORMAT: z.string().min(1).optional(),
  /** "eks": resolve through the cluster's API; "none": store flows with IPs only. */
  ATTRIBUTION: z.enum(["eks", "none"]).default("eks"),
  NAMESPACE_LABEL_KEYS: csv.default([]),
  KUBE_TIMEOUT_SECONDS: z.coerce.number().min(1).max(60).default(5),
});

export type IngestConfig = Omit<z.infer<typeof IngestEnv>, "INTERNAL_CIDRS"> & {
  INTERNAL_CIDRS: string[];
  internal: CidrSet;
};

export function loadIngestConfig(env: NodeJS.ProcessEnv): IngestConfig {
  const { INTERNAL_CIDRS, ...data } = parseEnv(IngestEnv, env, "ingest");
  return { ...data, INTERNAL_CIDRS: INTERNAL_CIDRS.cidrs, internal: INTERNAL_CIDRS.set };
}

/**
 * Time kept back from the invocation's for a batch not stored by then: to keep its attribution memo (one
 * conditional write, MEMO_RETRY's tries) and fail, rather than be stopped mid-write by the timeout.
 */
export const STORE_RESERVE_MS = 30_000;
