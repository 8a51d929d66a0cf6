// The single-table schema of the flow store: one source of truth for the store adapter, the embedded
// (dynalite) table the CLI creates, and the CDK table construct. docs/flow-store.md explains each key.
import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";

export const TABLE_KEYS = { partitionKey: "pk", sortKey: "sk" } as const;
export const TTL_ATTRIBUTE = "expiresAt";

export interface IndexProjection {
  readonly type: "ALL" | "KEYS_ONLY" | "INCLUDE";
  /** Attributes copied into the index besides its keys and the table's keys (INCLUDE only). */
  readonly nonKeyAttributes?: readonly string[];
}

export interface IndexDefinition {
  readonly indexName: string;
  readonly partitionKey: string;
  readonly sortKey: string;
  readonly projection: IndexProjection;
}

/**
 * The attributes of a flow item that make up a FlowRecord. Indexes project exactly these, so that a page
 * read from an index needs no second read, while the item's idempotency bookkeeping (the set of applied
 * contributions, which grows with every delivery) stays out of the four index copies.
 */
export const FLOW_RECORD_ATTRIBUTES = [
  "id",
  "cluster",
  "bucket",
  "src",
  "dst",
  "protocol",
  "dstPort",
  "direction",
  "reporter",
  "internal",
  "packets",
  "bytes",
  "firstSeen",
  "lastSeen",
  "policy",
  "tcpFlags",
] as const;

const FLOW_PROJECTION: IndexProjection = { type: "INCLUDE", nonKeyAttributes: FLOW_RECORD_ATTRIBUTES };

/**
 * Sparse GSIs over flow items. All share the base sort key (`<bucket ISO>#<flow id>`), so every index query
 * is a time-range key condition. Namespace-keyed indexes also answer workload and pod questions with a
 * filter on the namespace's flows; IP-keyed indexes answer "anything involving this IP", resolved or not.
 */
export const FLOW_INDEXES: readonly IndexDefinition[] = [
  { indexName: "bySrcNamespace", partitionKey: "srcNsKey", sortKey: "sk", projection: FLOW_PROJECTION },
  { indexName: "byDstNamespace", partitionKey: "dstNsKey", sortKey: "sk", projection: FLOW_PROJECTION },
  { indexName: "bySrcIp", partitionKey: "srcIpKey", sortKey: "sk", projection: FLOW_PROJECTION },
  { indexName: "byDstIp", partitionKey: "dstIpKey", sortKey: "sk", projection: FLOW_PROJECTION },
];

/** Index names, for code that picks one (typed so a typo is a compile error). */
export const INDEX = {
  srcNamespace: "bySrcNamespace",
  dstNamespace: "byDstNamespace",
  srcIp: "bySrcIp",
  dstIp: "byDstIp",
} as const;

/**
 * The CreateTable input for the store's table (on-demand capacity), built from the constants above. Used by
 * the embedded store and the tests; the CDK construct builds the same table from the same constants. TTL is
 * not part of CreateTable: it is switched on separately (UpdateTimeToLive, or `timeToLiveAttribute` in CDK).
 */
export function createTableInput(tableName: string): CreateTableCommandInput {
  const keyAttributes = new Set<string>([TABLE_KEYS.partitionKey, TABLE_KEYS.sortKey]);
  for (const index of FLOW_INDEXES) {
    keyAttributes.add(index.partitionKey);
    keyAttributes.add(index.sortKey);
  }
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [...keyAttributes].map((name) => ({ AttributeName: name, AttributeType: "S" })),
    KeySchema: [
      { AttributeName: TABLE_KEYS.partitionKey, KeyType: "HASH" },
      { AttributeName: TABLE_KEYS.sortKey, KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: FLOW_INDEXES.map((index) => ({
      IndexName: index.indexName,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: "HASH" },
        { AttributeName: index.sortKey, KeyType: "RANGE" },
      ],
      Projection:
        index.projection.type === "INCLUDE"
          ? { ProjectionType: "INCLUDE", NonKeyAttributes: [...(index.projection.nonKeyAttributes ?? [])] }
          : { ProjectionType: index.projection.type },
    })),
  };
}
