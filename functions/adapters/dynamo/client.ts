// The DynamoDB client the flow, coverage and history stores are given. The SDK's own retries are off: every
// store request goes through withRetry (retry.ts), which then sees each HTTP request on its own and can tell a
// throttled one (refused, never applied) from one whose answer was lost (a 5xx, a broken connection). Behind
// an SDK retry both look alike, and a redelivery would be reported as new writes.
import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";

export function storeClient(config: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({ ...config, maxAttempts: 1 });
}
