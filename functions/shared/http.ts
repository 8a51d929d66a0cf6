// JSON responses of the API functions (panic, query): never cached, always typed.
import type { APIGatewayProxyResult } from "aws-lambda";

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * The bytes an answer takes of what Lambda lets a synchronous invocation return (6 MB): the proxy result, its body a
 * JSON string escaped once more.
 */
export function responseBytes(result: APIGatewayProxyResult): number {
  return Buffer.byteLength(JSON.stringify(result));
}
