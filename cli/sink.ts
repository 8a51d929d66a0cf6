// `--alerts-topic ARN`: the local mode publishes through the same SNS sink as the ingest function.
import { SNSClient } from "@aws-sdk/client-sns";
import { SnsAlertSink } from "../functions/adapters/sns-sink.ts";
import type { AlertPublisher } from "../functions/core/alert-delivery.ts";
import type { CommonOptions } from "./common.ts";

export function openAlertSink(topicArn: string, common: CommonOptions): AlertPublisher {
  return new SnsAlertSink(
    common.region === undefined
      ? { topicArn }
      : { topicArn, client: new SNSClient({ region: common.region }) },
  );
}
