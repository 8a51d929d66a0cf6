// The DynamoDB client the flow, coverage and history stores are given. The SDK's own retries are off: every
// store request goes through withRetry (retry.ts), which then sees each HTTP request on its own and can tell a
// throttled one (refused, never applied) from one whose answer was lost (a 5xx, a broken connection). Behind
// an SDK retry both look alike, and a redelivery would be reported as new writes. It also keeps the bound on
// requests what withRetry says: the two retry loops would multiply (the SDK's default is 3 or 4 attempts).
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";

/**
 * Per-request limits. DynamoDB answers in milliseconds; without them a request whose answer never comes waits
 * for the SDK's socket timeout of 300 s, past the ingest function's 2 minutes, so one stalled connection failed
 * the whole invocation instead of being retried. `throwOnRequestTimeout`: without it the SDK only logs a
 * request past `requestTimeout`. A timed-out request may have been applied: withRetry treats it as a 5xx.
 */
export const STORE_REQUEST_TIMEOUTS = {
  connectionTimeout: 3_000,
  requestTimeout: 5_000,
  throwOnRequestTimeout: true,
} as const;

/** `config.requestHandler`, when given, replaces the timeouts above. */
export function storeClient(config: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({ requestHandler: { ...STORE_REQUEST_TIMEOUTS }, ...config, maxAttempts: 1 });
}
