// `--alerts-topic ARN`: the local mode publishes through the same SNS sink as the ingest function, in the topic's
// own region (the ARN's) whatever `--region` says: `--region` is the table's, and SNS answers NotFound to a client
// of another region than its topic's.
import { SnsAlertSink } from "../functions/adapters/sns-sink.ts";
import type { AlertPublisher } from "../functions/core/alert-delivery.ts";

export function openAlertSink(topicArn: string): AlertPublisher {
  return new SnsAlertSink({ topicArn });
}
