// Test access to the embedded store: an in-memory dynalite per test file, and clients pointed at it (or at a
// fault proxy in front of it). Fake credentials and a fixed region: nothing may reach AWS.
import { randomUUID } from "node:crypto";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  type EmbeddedStore,
  type EmbeddedStoreOptions,
  startEmbeddedStore,
} from "../../functions/adapters/dynamo/embedded.ts";
import { createTableInput } from "../../functions/adapters/dynamo/schema.ts";

export interface ClientOptions {
  /** SDK attempts per call (its own retry strategy). @default 3 */
  maxAttempts?: number;
}

interface Token {
  getRetryCount(): number;
  getRetryDelay(): number;
}

const token = (count: number): Token => ({ getRetryCount: () => count, getRetryDelay: () => 1 });

/**
 * The SDK's retry contract (retry throttling, transient and server errors up to `maxAttempts`) without its
 * backoff of up to seconds, which would only make the fault-injection tests slow.
 */
function quickRetries(maxAttempts: number) {
  return {
    mode: "standard",
    acquireInitialRetryToken: async (): Promise<Token> => token(0),
    refreshRetryTokenForRetry: async (previous: Token, info: { errorType: string }): Promise<Token> => {
      if (info.errorType === "CLIENT_ERROR" || previous.getRetryCount() + 1 >= maxAttempts) {
        throw new Error("no retry left");
      }
      return token(previous.getRetryCount() + 1);
    },
    recordSuccess: () => {},
  };
}

export function dynamoClient(endpoint: string, options: ClientOptions = {}): DynamoDBClient {
  const maxAttempts = options.maxAttempts ?? 3;
  return new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts,
    retryStrategy: quickRetries(maxAttempts),
  });
}

export interface TestStore extends EmbeddedStore {
  /** A new client for `endpoint` (default: the store itself); closed by `close()`. */
  clientFor(endpoint?: string, options?: ClientOptions): DynamoDBClient;
  /** A new, empty table of the store's schema in it: its name. */
  freshTable(): Promise<string>;
}

export async function startTestStore(options: EmbeddedStoreOptions = {}): Promise<TestStore> {
  const store = await startEmbeddedStore(options);
  const clients: DynamoDBClient[] = [];
  return {
    ...store,
    clientFor(endpoint = store.endpoint, clientOptions = {}) {
      const client = dynamoClient(endpoint, clientOptions);
      clients.push(client);
      return client;
    },
    async freshTable() {
      const tableName = `t-${randomUUID()}`;
      await store.client.send(new CreateTableCommand(createTableInput(tableName)));
      return tableName;
    },
    async close() {
      for (const client of clients) client.destroy();
      await store.close();
    },
  };
}
