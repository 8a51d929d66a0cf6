// The query function's configuration, read from the environment once per container and validated, so a
// misconfigured deployment fails on its first invocation with the offending variable and value.
//
//   TABLE_NAME    the flow store table (read only: Query on the base table and its flow indexes, never Scan)
//   CLUSTER_NAME  the cluster whose flows and alerts this API answers for (the partition of every query)
import * as z from "zod";
import { parseEnv } from "../shared/env.ts";

/** The function's timeout (lib/query.ts): API Gateway gives up after 29 s, so a later answer is lost anyway. */
export const QUERY_TIMEOUT_SECONDS = 25;

const QueryEnv = z.object({
  TABLE_NAME: z.string().min(1),
  CLUSTER_NAME: z.string().min(1),
});

export type QueryConfig = z.infer<typeof QueryEnv>;

export function loadQueryConfig(env: NodeJS.ProcessEnv): QueryConfig {
  return parseEnv(QueryEnv, env, "query");
}
