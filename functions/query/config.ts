// The query function's configuration, read from the environment once per container and validated, so a
// misconfigured deployment fails on its first invocation with the offending variable and value.
//
//   TABLE_NAME    the flow store table (read only: Query on the base table and its flow indexes, never Scan)
//   CLUSTER_NAME  the cluster whose flows and alerts this API answers for (the partition of every query)
//   AGGREGATION_SECONDS  the ingest's bucket length now, as the stack sets it; a range is read alike whatever it
//                        is (handler.ts, INGEST_BUCKET_LENGTHS), since older flows may be in buckets of another
import * as z from "zod";
import { parseEnv } from "../shared/env.ts";

/** The function's timeout (lib/query.ts): API Gateway gives up after 29 s, so a later answer is lost anyway. */
export const QUERY_TIMEOUT_SECONDS = 25;

const QueryEnv = z.object({
  TABLE_NAME: z.string().min(1),
  CLUSTER_NAME: z.string().min(1),
  AGGREGATION_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
});

export type QueryConfig = z.infer<typeof QueryEnv>;

export function loadQueryConfig(env: NodeJS.ProcessEnv): QueryConfig {
  return parseEnv(QueryEnv, env, "query");
}
