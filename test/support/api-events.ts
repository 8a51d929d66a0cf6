// API Gateway events for the Lambda handlers, called in process: what API Gateway hands the function.
import type { APIGatewayProxyEvent } from "aws-lambda";

/** When the events were received (no handler reads it). */
const REQUEST_TIME = Date.parse("2026-04-19T12:00:00.000Z");

/**
 * A REST API (payload 1.0) proxy event for an IAM-authenticated caller, as API Gateway builds it: values already
 * URL-decoded, a repeated parameter in `multiValueQueryStringParameters` and its last value in the single map.
 */
export function restApiEvent(
  path: string,
  query: Record<string, string | string[]> = {},
  method = "GET",
): APIGatewayProxyEvent {
  // Own properties whatever their names, as the Lambda runtime's JSON.parse makes them (`__proto__` included).
  const single: Record<string, string> = Object.create(null);
  const multi: Record<string, string[]> = Object.create(null);
  for (const [k, v] of Object.entries(query)) {
    const values = Array.isArray(v) ? v : [v];
    single[k] = values[values.length - 1] as string;
    multi[k] = values;
  }
  const empty = Object.keys(query).length === 0;
  return {
    resource: path,
    path,
    httpMethod: method,
    headers: { Host: "abc123.execute-api.eu-west-1.amazonaws.com", "User-Agent": "test" },
    multiValueHeaders: { Host: ["abc123.execute-api.eu-west-1.amazonaws.com"], "User-Agent": ["test"] },
    queryStringParameters: empty ? null : single,
    multiValueQueryStringParameters: empty ? null : multi,
    pathParameters: null,
    stageVariables: null,
    body: null,
    isBase64Encoded: false,
    requestContext: {
      accountId: "123456789012",
      apiId: "abc123",
      authorizer: null,
      domainName: "abc123.execute-api.eu-west-1.amazonaws.com",
      domainPrefix: "abc123",
      httpMethod: method,
      identity: {
        accessKey: "ASIAEXAMPLE",
        accountId: "123456789012",
        apiKey: null,
        apiKeyId: null,
        caller: "AROAEXAMPLE:operator",
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: "198.51.100.1",
        user: "AROAEXAMPLE:operator",
        userAgent: "test",
        userArn: "arn:aws:sts::123456789012:assumed-role/operator/alice",
      },
      path: `/v1${path}`,
      protocol: "HTTP/1.1",
      requestId: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
      requestTimeEpoch: REQUEST_TIME,
      resourceId: "abcdef",
      resourcePath: path,
      stage: "v1",
    },
  };
}
