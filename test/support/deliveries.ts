// Subscription deliveries as CloudWatch Logs sends them, for tests of the ingest handler and of redrive.
import { encodeSubscriptionData } from "../../functions/core/subscription-payload.ts";

/** `awslogs.data` of the control message CloudWatch Logs sends to check that a destination is reachable. */
export function controlMessageData(at: number): string {
  return encodeSubscriptionData({
    messageType: "CONTROL_MESSAGE",
    owner: "CloudwatchLogs",
    logGroup: "",
    logStream: "",
    subscriptionFilters: [],
    logEvents: [
      { id: "", timestamp: at, message: "CWL CONTROL MESSAGE: Checking health of destination Lambda." },
    ],
  });
}
