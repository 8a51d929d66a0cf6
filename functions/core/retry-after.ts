// The wait an HTTP Retry-After header asks for (RFC 9110 §10.2.3): delay-seconds, or an HTTP date. Read by the
// Kubernetes clients (a throttled API server) and the CLI's API client (API Gateway's throttle).

/** The wait `header` asks for, in ms (0 for a date already past); undefined without a valid value. */
export function retryAfterHeaderMs(
  header: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  const value = header?.trim();
  if (value === undefined || value === "") return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
