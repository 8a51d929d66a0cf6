// The REST API of the panic button and the flow queries. Every method requires SigV4 (AWS_IAM); the
// resource policy lets this account's IAM decide for the query routes but reserves /panic for the
// configured operators, so an account-wide `execute-api:Invoke` grant cannot press the panic button.
import { RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { BaseFunction } from "./base-function.ts";

export const STAGE_NAME = "v1";

/** Requests per second across the stage, and the burst above it. */
export const STAGE_THROTTLE = { rateLimit: 25, burstLimit: 50 } as const;
/** Changing the cluster's policy is rare and slow; a client looping on it is a bug, not an emergency. */
export const PANIC_WRITE_THROTTLE = { rateLimit: 1, burstLimit: 5 } as const;

export interface ApiProps {
  readonly panicFunction: BaseFunction;
  readonly queryFunction: BaseFunction;
  /** IAM principal ARN patterns (aws:PrincipalArn) allowed on /panic. */
  readonly panicPrincipalArns: readonly string[];
  readonly logRetention: logs.RetentionDays;
}

export class Api extends Construct {
  readonly restApi: apigateway.RestApi;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const invoke = "execute-api:Invoke";
    const panicResources = ["execute-api:/*/*/panic", "execute-api:/*/*/panic/*"];
    const operators = { "aws:PrincipalArn": [...props.panicPrincipalArns] };
    const policy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: "AccountPrincipalsByTheirIamPolicies",
          principals: [new iam.AccountRootPrincipal()],
          actions: [invoke],
          resources: ["execute-api:/*"],
        }),
        new iam.PolicyStatement({
          sid: "PanicOperators",
          principals: [new iam.AnyPrincipal()],
          actions: [invoke],
          resources: ["execute-api:/*"],
          conditions: { ArnLike: operators },
        }),
        new iam.PolicyStatement({
          sid: "PanicOnlyForOperators",
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: [invoke],
          resources: panicResources,
          conditions: { ArnNotLike: operators },
        }),
      ],
    });

    this.accessLogs = new logs.LogGroup(this, "AccessLogs", { retention: props.logRetention });

    this.restApi = new apigateway.RestApi(this, "RestApi", {
      // Named after the stack: the ApiName dimension of the API's metrics must not mix two deployments.
      restApiName: Stack.of(this).stackName,
      description: "calico-flows: panic button and flow queries (IAM authorised)",
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      policy,
      // Execution and access logging need the account's API Gateway CloudWatch role. It is an account-wide
      // setting, so it is kept when this stack is deleted: other APIs of the account may rely on it.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.IAM },
      deployOptions: {
        stageName: STAGE_NAME,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        // Caller and user are the IAM identities: the access log is also who-pressed-what.
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields({
          caller: true,
          httpMethod: true,
          ip: true,
          protocol: true,
          requestTime: true,
          resourcePath: true,
          responseLength: true,
          status: true,
          user: true,
        }),
        loggingLevel: apigateway.MethodLoggingLevel.ERROR,
        // Bodies carry reasons and flow data: never copied into execution logs.
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
        throttlingRateLimit: STAGE_THROTTLE.rateLimit,
        throttlingBurstLimit: STAGE_THROTTLE.burstLimit,
        methodOptions: {
          "/panic/POST": {
            throttlingRateLimit: PANIC_WRITE_THROTTLE.rateLimit,
            throttlingBurstLimit: PANIC_WRITE_THROTTLE.burstLimit,
          },
          "/panic/DELETE": {
            throttlingRateLimit: PANIC_WRITE_THROTTLE.rateLimit,
            throttlingBurstLimit: PANIC_WRITE_THROTTLE.burstLimit,
          },
        },
      },
    });

    // Execution logs (errors only) go to a group API Gateway makes itself, with no retention, outside the stack:
    // made here, it keeps logRetentionDays like the access logs, before the stage first writes to it.
    const executionLogs = new logs.LogGroup(this, "ExecutionLogs", {
      logGroupName: `API-Gateway-Execution-Logs_${this.restApi.restApiId}/${STAGE_NAME}`,
      retention: props.logRetention,
    });
    this.restApi.deploymentStage.node.addDependency(executionLogs);

    const panicIntegration = new apigateway.LambdaIntegration(props.panicFunction.function, {
      allowTestInvoke: false,
    });
    const queryIntegration = new apigateway.LambdaIntegration(props.queryFunction.function, {
      allowTestInvoke: false,
    });

    // No request validator: the panic function validates every body and query itself (400 naming the field,
    // the documented error body) and audits and announces each refusal. A body model at the gateway would
    // refuse some bodies before the function runs, unrecorded and in API Gateway's own error shape; the GET
    // parameters are all optional, which a validator, checking presence only, could not add to.
    const panic = this.restApi.root.addResource("panic");
    panic.addMethod("POST", panicIntegration);
    panic.addMethod("GET", panicIntegration);
    panic.addMethod("DELETE", panicIntegration);
    this.restApi.root.addResource("flows").addMethod("GET", queryIntegration);
    this.restApi.root.addResource("alerts").addMethod("GET", queryIntegration);

    const acknowledge = Validations.of(this.restApi);
    acknowledge.acknowledge({
      id: "AwsSolutions-APIG2",
      reason:
        "No API Gateway request validation on purpose: the panic function validates every POST and DELETE body " +
        "and GET query itself (400 naming the field) and audits and announces every refused body, which a " +
        "gateway model would reject unrecorded; the query function validates its query parameters, all optional.",
    });
    acknowledge.acknowledge({
      id: "AwsSolutions-APIG3",
      reason:
        "Every method requires SigV4 (AWS_IAM) and the resource policy admits only this account's principals " +
        "and the panic operators; API Gateway rejects unsigned requests before any integration runs, and " +
        "stage and method throttling bound the rate. A web ACL would check no identity IAM does not.",
    });
    acknowledge.acknowledge({
      id: "AwsSolutions-COG4",
      reason:
        "Callers are IAM principals (operators' roles, the calico-flows CLI signing with SigV4): AWS_IAM " +
        "authorization is the intended authorizer; there are no end users for a Cognito user pool.",
    });
    acknowledge.acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
      reason:
        "The account-level API Gateway CloudWatch role needs AmazonAPIGatewayPushToCloudWatchLogs, the " +
        "AWS-maintained policy for exactly that purpose; API Gateway writes to log groups it creates itself, " +
        "whose names are not known in advance.",
    });
  }

  /** The stage's base URL, which the CLI's --api option takes. */
  get url(): string {
    return this.restApi.url;
  }
}
