// The one way this app builds a Lambda function, so every function gets the same runtime, bundling,
// logging, tracing and Powertools settings, and a role that starts empty: each construct that uses a
// function grants exactly what that function calls, nothing is inherited from a managed policy.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

/** The repository root: entries, the lock file and tsconfig.json are resolved from here, whatever the cwd. */
export const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Namespace of the functions' embedded metrics (Powertools EMF). */
export const METRICS_NAMESPACE = "CalicoFlows";

// ESM output keeps top-level await and the `.ts` import graph as written; the banner gives CommonJS
// dependencies bundled into an ES module the `require` they expect.
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

export interface BaseFunctionProps {
  /** Handler module, relative to the repository root, exporting `handler`. */
  readonly entry: string;
  /** Powertools service name: the `service` dimension of the function's metrics and its log field. */
  readonly serviceName: string;
  readonly description: string;
  /** Days the function's log group keeps events. */
  readonly logRetention: logs.RetentionDays;
  /** @default - none besides the Powertools and Node settings */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default - none: the function shares the account's unreserved concurrency */
  readonly reservedConcurrentExecutions?: number;
}

export class BaseFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly serviceName: string;

  constructor(scope: Construct, id: string, props: BaseFunctionProps) {
    super(scope, id);
    this.serviceName = props.serviceName;

    // Owned here rather than left to Lambda, so it has a retention; kept after a stack deletion (the
    // panic function's logs are part of its audit trail) and then expires on its own.
    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `Execution role of ${props.serviceName}`,
    });
    // Only its own log group: the AWSLambdaBasicExecutionRole managed policy would allow every group.
    this.logGroup.grant(this.role, "logs:CreateLogStream", "logs:PutLogEvents");

    this.function = new NodejsFunction(this, "Function", {
      entry: join(PROJECT_ROOT, props.entry),
      handler: "handler",
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, "package-lock.json"),
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: "INFO",
        // Responses can be whole pages of flows: too big and too revealing for trace metadata.
        POWERTOOLS_TRACER_CAPTURE_RESPONSE: "false",
        NODE_OPTIONS: "--enable-source-maps",
        ...props.environment,
      },
      bundling: {
        // The local esbuild (a devDependency) builds every bundle; Docker is never needed.
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: "node24",
        platform: "node",
        mainFields: ["module", "main"],
        banner: ESM_REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        // Names and lines are what a stack trace needs: the sources' own text was about 73 % of each package, and
        // --enable-source-maps parses the whole map at the function's start (some 45 MB and 100 ms more).
        sourcesContent: false,
        // The AWS SDK is bundled at the versions the tests ran against rather than taken from the runtime.
        externalModules: [],
      },
    });
    Validations.of(this.role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level " +
        'permissions, so AWS requires Resource "*" for them; the role has no other wildcard (tests assert it).',
    });
  }

  /** Sets an environment variable; the `bindX` methods of other constructs use it with their grants. */
  addEnvironment(name: string, value: string): void {
    this.function.addEnvironment(name, value);
  }
}
