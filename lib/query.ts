// The query API's function: GET /flows and GET /alerts over the flow store, read-only.
import { Duration } from "aws-cdk-lib";
import type * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { QUERY_TIMEOUT_SECONDS } from "../functions/query/config.ts";
import { BaseFunction } from "./base-function.ts";
import type { FlowStore } from "./flow-store.ts";

export const QUERY_SERVICE_NAME = "calico-flows-query";

export interface FlowQueriesProps {
  readonly clusterName: string;
  readonly flowStore: FlowStore;
  readonly logRetention: logs.RetentionDays;
}

export class FlowQueries extends Construct {
  readonly function: BaseFunction;

  constructor(scope: Construct, id: string, props: FlowQueriesProps) {
    super(scope, id);
    this.function = new BaseFunction(this, "Function", {
      entry: "functions/query/handler.ts",
      serviceName: QUERY_SERVICE_NAME,
      description: `Flow and alert queries for ${props.clusterName}`,
      logRetention: props.logRetention,
      // API Gateway gives up after 29 s; a query still running then is only spending money.
      timeout: Duration.seconds(QUERY_TIMEOUT_SECONDS),
      environment: { CLUSTER_NAME: props.clusterName },
    });
    props.flowStore.bindQuery(this.function);
  }
}
