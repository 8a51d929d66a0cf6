// The flow store: the single DynamoDB table of flows, alerts, IP holder history, coverage claims, attribution memos,
// denial tallies and panic audit items (docs/flow-store.md).
// Keys and indexes come from the adapter's schema, the one definition the store code and this table share.
import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { panicPartitionKey } from "../functions/adapters/dynamo/keys.ts";
import { FLOW_INDEXES, TABLE_KEYS, TTL_ATTRIBUTE } from "../functions/adapters/dynamo/schema.ts";
import type { BaseFunction } from "./base-function.ts";

export class FlowStore extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      // Log volume follows incidents and deploys, not a schedule: pay per request, no capacity planning.
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      // Flows and the panic audit trail outlive the stack: deleting it must not delete them.
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
    });
    for (const index of FLOW_INDEXES) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType[index.projection.type],
        nonKeyAttributes: index.projection.nonKeyAttributes
          ? [...index.projection.nonKeyAttributes]
          : undefined,
      });
    }
  }

  /** ARNs of the flow indexes, one by one: grants name each index rather than `index/*`. */
  get indexArns(): string[] {
    return FLOW_INDEXES.map((index) => `${this.table.tableArn}/index/${index.indexName}`);
  }

  /** The ingest function writes flows, alerts and holder history and reads alert state and history back. */
  bindIngest(fn: BaseFunction): void {
    fn.addEnvironment("TABLE_NAME", this.table.tableName);
    this.allow(fn, "Ingest", INGEST_ACTIONS, [this.table.tableArn]);
    // It parses untrusted log text: it must not be able to forge or rewrite who pressed the panic button.
    this.denyPanicAudit(fn, "Ingest", INGEST_ACTIONS);
  }

  /** The query function only reads, and only with Query (never Scan), on the table and its flow indexes. */
  bindQuery(fn: BaseFunction): void {
    fn.addEnvironment("TABLE_NAME", this.table.tableName);
    this.allow(fn, "Query", QUERY_ACTIONS, [this.table.tableArn, ...this.indexArns]);
    // The audit trail (copies of taken-over policies included) is the panic function's to show, to operators only.
    this.denyPanicAudit(fn, "Query", QUERY_ACTIONS);
  }

  /** The panic function reads and writes its cluster's audit partition, and no other item of the table. */
  bindPanic(fn: BaseFunction, clusterName: string): void {
    fn.addEnvironment("TABLE_NAME", this.table.tableName);
    this.allow(fn, "PanicAudit", PANIC_ACTIONS, [this.table.tableArn], {
      "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [panicPartitionKey(clusterName)] },
    });
  }

  /**
   * Denies `actions` on the table's panic audit partitions (`PANIC#…`): no other item type's key starts so
   * (functions/adapters/dynamo/keys.ts). ForAnyValue, so that a request without leading keys is not denied; the
   * table only, since an index's keys are `<cluster>#…` and a cluster may be named PANIC (no audit item is indexed).
   */
  private denyPanicAudit(fn: BaseFunction, sid: string, actions: readonly string[]): void {
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: `FlowStore${sid}NotPanicAudit`,
        effect: iam.Effect.DENY,
        actions: [...actions],
        resources: [this.table.tableArn],
        conditions: { "ForAnyValue:StringLike": { "dynamodb:LeadingKeys": [PANIC_AUDIT_PARTITIONS] } },
      }),
    );
  }

  private allow(
    fn: BaseFunction,
    sid: string,
    actions: readonly string[],
    resources: string[],
    conditions?: Record<string, unknown>,
  ): void {
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: `FlowStore${sid}`, actions: [...actions], resources, conditions }),
    );
  }
}

/** Every cluster's panic audit partition, as a StringLike pattern. */
const PANIC_AUDIT_PARTITIONS = `${panicPartitionKey("")}*`;

// The DynamoDB calls each function's adapters make (functions/adapters/dynamo), and nothing else: no Scan,
// no DeleteItem, no batch or transaction APIs, no table management.
/** Flows and alerts: conditional updates, alert records, consistent reads of alert state; holder history. */
export const INGEST_ACTIONS = [
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:Query",
  "dynamodb:UpdateItem",
] as const;
/** Flow and alert pages: Query on the table and the flow indexes. */
export const QUERY_ACTIONS = ["dynamodb:Query"] as const;
/** Audit records are put once (never overwritten) and read back newest first. */
export const PANIC_ACTIONS = ["dynamodb:PutItem", "dynamodb:Query"] as const;
