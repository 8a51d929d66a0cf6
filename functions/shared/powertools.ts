// The one Logger / Metrics / Tracer of every function (Powertools' examples/app pattern). Service name and
// namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE, set by the CDK function construct;
// every metric also carries the function's cluster (CLUSTER_NAME), as the stacks of two clusters in one account
// and Region share the namespace and the service names, and each stack's alarms must see its own cluster only.
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";

const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? "calico-flows";
const cluster = process.env.CLUSTER_NAME;

export const logger = new Logger({ serviceName });
export const metrics = new Metrics({
  serviceName,
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "CalicoFlows",
  ...(cluster ? { defaultDimensions: { cluster } } : {}),
});
export const tracer = new Tracer({ serviceName });
