// The query function's configuration, read from the environment once per container and validated, so a
// misconfigured deployment fails on its first invocation with the offending variable and value.
//
//   TABLE_NAME    the flow store table (read only: Query on the base table and its flow indexes, never Scan)
//   CLUSTER_NAME  the cluster whose flows and alerts this API answers for (the partition of every query)
import { z } from "zod";

const QueryEnv = z.object({
  TABLE_NAME: z.string().min(1),
  CLUSTER_NAME: z.string().min(1),
});

export type QueryConfig = z.infer<typeof QueryEnv>;

export function loadQueryConfig(env: NodeJS.ProcessEnv): QueryConfig {
  const parsed = QueryEnv.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => {
        const name = String(i.path[0]);
        return `${name}=${JSON.stringify(env[name])}: ${i.message}`;
      })
      .join("; ");
    throw new Error(`invalid query configuration: ${problems}`);
  }
  return parsed.data;
}
