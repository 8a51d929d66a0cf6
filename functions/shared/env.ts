// Reading a function's environment once per container through a zod schema, so that a misconfigured
// deployment fails on its first invocation naming each offending variable and the value it has.
import type * as z from "zod";

export function parseEnv<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv,
  what: string,
  input: unknown = env,
): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues
    .map((i) => {
      const name = String(i.path[0]);
      return `${name}=${JSON.stringify(env[name])}: ${i.message}`;
    })
    .join("; ");
  throw new Error(`invalid ${what} configuration: ${problems}`);
}
