// `--alerts-topic ARN`: the local mode publishes through the same SNS sink as the ingest function, in the topic's
// own region (the ARN's) whatever `--region` says: `--region` is the table's, and SNS answers NotFound to a client
// of another region than its topic's.
import { resolve } from "node:path";
import { SnsAlertSink } from "../functions/adapters/sns-sink.ts";
import type { AlertPublisher } from "../functions/core/alert-delivery.ts";
import { MAX_AGGREGATION_SECONDS } from "../functions/ingest/config.ts";
import type { CommonOptions } from "./common.ts";

/** The options that reach the store this run writes to, for the alert e-mails' commands to run as pasted. */
export function storeArgs(common: Pick<CommonOptions, "store" | "table" | "region">): string[] {
  if (common.table === undefined) return ["--store", resolve(common.store)];
  return ["--table", common.table, ...(common.region === undefined ? [] : ["--region", common.region])];
}

/**
 * The options of the e-mails' `flows` commands alone: a table does not record its bucket lengths (an embedded store
 * does), and `flows --table` reads every length the stack's ingest may count in (up to a minute), and a length it is
 * told besides them: only a longer one needs telling.
 */
export function flowsArgs(common: Pick<CommonOptions, "table">, bucketSeconds: number): string[] {
  return common.table === undefined || bucketSeconds <= MAX_AGGREGATION_SECONDS
    ? []
    : ["--bucket-seconds", String(bucketSeconds)];
}

export function openAlertSink(
  topicArn: string,
  storeArgs: readonly string[] = [],
  flowsArgs: readonly string[] = [],
): AlertPublisher {
  return new SnsAlertSink({ topicArn, storeArgs, flowsArgs });
}
