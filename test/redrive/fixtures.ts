// What the redrive tests share: a node's events, the on-failure record Lambda writes, and a queue on the local SQS
// (fauxqs).
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { MINUTE_MS } from "../../functions/core/coverage.ts";
import { type CwEvent, calicoLine, T0 } from "../backfill/fixtures.ts";
import type { LocalSns } from "../support/fauxqs.ts";

/** The node whose log stream the tests' deliveries come from. */
export const STREAM = "ip-192-168-74-5";

let records = 0;
let sequence = 0;

/**
 * `count` denials from `src` in minute `minute` (3 s apart), ids shaped like CloudWatch's. The addresses are ones no
 * pods file knows: a failed live attempt and its redrive attribute them alike.
 */
export function redriveEvents(count: number, minute: number, src = "192.168.200.10"): CwEvent[] {
  return Array.from({ length: count }, (_, i) => {
    sequence++;
    const at = T0 + minute * MINUTE_MS + i * 3_000;
    return {
      id: `${String(at).padStart(20, "0")}${String(sequence).padStart(36, "0")}`,
      timestamp: at,
      stream: STREAM,
      message: calicoLine(at, STREAM, src, "192.168.201.20", 5432),
    };
  });
}

/** The body Lambda's on-failure destination writes for an asynchronous invocation whose retries ran out. */
export function invocationRecord(
  requestPayload: unknown,
  errorType = "StoreUnavailableError",
  errorMessage = "UpdateItem failed after 10 tries",
): string {
  records++;
  return JSON.stringify({
    version: "1.0",
    timestamp: "2026-04-19T05:01:02.123Z",
    requestContext: {
      requestId: `6f1b7c0e-0000-4000-8000-${String(records).padStart(12, "0")}`,
      functionArn: "arn:aws:lambda:eu-west-1:123456789012:function:calico-flows-ingest:$LATEST",
      condition: "RetriesExhausted",
      approximateInvokeCount: 3,
    },
    requestPayload,
    responseContext: { statusCode: 200, executedVersion: "$LATEST", functionError: "Unhandled" },
    responsePayload: { errorType, errorMessage, trace: [] },
  });
}

/** The record of a failed subscription delivery whose `awslogs.data` is `data`. */
export const dataRecord = (data: unknown, errorType?: string, errorMessage?: string): string =>
  invocationRecord({ awslogs: { data } }, errorType, errorMessage);

/**
 * A new queue, addressed by its path on the local endpoint: fauxqs names a host (sqs.<region>.localhost) that does
 * not resolve here, and the command's client, configured from the environment, would go to it.
 */
export async function localQueue(local: LocalSns, name: string): Promise<string> {
  const queue = await local.sqs.send(new CreateQueueCommand({ QueueName: name }));
  return new URL(new URL(queue.QueueUrl as string).pathname, local.endpoint).toString();
}

/** The messages a queue holds: visible, and hidden (received, and neither deleted nor given back yet). */
export async function queueDepth(sqs: SQSClient, url: string): Promise<{ visible: number; hidden: number }> {
  const a = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return {
    visible: Number(a.Attributes?.ApproximateNumberOfMessages),
    hidden: Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible),
  };
}
