// The single-table schema of the flow store: one source of truth for the store adapter, the embedded
// (dynalite) table the CLI creates, and the CDK table construct. docs/architecture.md explains each key.

export const TABLE_KEYS = { partitionKey: "pk", sortKey: "sk" } as const;
export const TTL_ATTRIBUTE = "expiresAt";

export interface IndexDefinition {
  readonly indexName: string;
  readonly partitionKey: string;
  readonly sortKey: string;
}

/**
 * Sparse GSIs over flow items. All share the base sort key (`<bucket ISO>#<flow id>`), so every index query
 * is a time-range key condition. Namespace-keyed indexes also answer workload and pod questions with a
 * filter on the namespace's flows; IP-keyed indexes answer "anything involving this IP", resolved or not.
 */
export const FLOW_INDEXES: readonly IndexDefinition[] = [
  { indexName: "bySrcNamespace", partitionKey: "srcNsKey", sortKey: "sk" },
  { indexName: "byDstNamespace", partitionKey: "dstNsKey", sortKey: "sk" },
  { indexName: "bySrcIp", partitionKey: "srcIpKey", sortKey: "sk" },
  { indexName: "byDstIp", partitionKey: "dstIpKey", sortKey: "sk" },
];
