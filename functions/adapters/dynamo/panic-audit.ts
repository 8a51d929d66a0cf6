// The panic button's audit trail in the flow store's table: one item per action under `PANIC#<cluster>`,
// sorted by time, so "recent history" is a Query read backwards. Items never carry the table's TTL
// attribute: it is an audit log.
//
// An item must fit in DynamoDB's 400 KB, or the action goes unaudited: it keeps the first AUDITED_CONFLICTS
// conflicts and their count (a cluster with a denying policy per customer namespace has thousands), and clips the
// free text. Bounded so: conflicts ≤ 50 × ~2 KB (Kubernetes names and tiers ≤ 253 characters, at most three
// generated reasons each), message ≤ 8,000 characters and reason, requester ≤ 2,000 each (≤ 3 UTF-8 bytes a
// character): under 200 KB. The copy of a taken-over policy (up to Kubernetes' 256 KiB of annotations) is kept
// when it is at most 64 KB, its SHA-256 always: under 270 KB in all.
import { createHash, randomBytes } from "node:crypto";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { ANNOUNCED_CONFLICTS } from "../../core/alert-message.ts";
import type { PanicAuditEntry, PanicAuditLog } from "../../core/panic-policy.ts";
import { panicPartitionKey } from "./keys.ts";
import { TABLE_KEYS } from "./schema.ts";

export interface DynamoPanicAuditOptions {
  client: DynamoDBClient;
  tableName: string;
}

export const PANIC_ITEM_TYPE = "panic-audit";

export { panicPartitionKey };

const HISTORY_MAX = 100;
/** Conflicts a record lists, as many as an announcement does; the rest are counted (`conflictCount`). */
export const AUDITED_CONFLICTS = ANNOUNCED_CONFLICTS;
/** Characters kept of the free text: a message (the answer and its warnings), and a reason or requester. */
const MESSAGE_MAX = 8_000;
const TEXT_MAX = 2_000;

const CLIPPED = "… (clipped)";
/**
 * UTF-8 bytes of a taken-over policy's copy kept in full; a larger one (rare: a policy is a few KB) is known by its
 * digest, to match against the annotation or a saved copy. Never clipped: half a policy puts nothing back.
 */
const REPLACED_MAX_BYTES = 64 * 1024;

/** `text` cut to `max` characters (UTF-16 units, never half a pair), saying so. */
function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - CLIPPED.length;
  if (/[\uD800-\uDBFF]/.test(text.charAt(end - 1))) end -= 1;
  return text.slice(0, end) + CLIPPED;
}

export class DynamoPanicAudit implements PanicAuditLog {
  readonly #doc: DynamoDBDocumentClient;
  readonly #tableName: string;

  constructor(options: DynamoPanicAuditOptions) {
    this.#doc = DynamoDBDocumentClient.from(options.client, {
      marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    });
    this.#tableName = options.tableName;
  }

  async record(entry: PanicAuditEntry): Promise<void> {
    // The random suffix keeps two actions in the same millisecond apart (two concurrent applies).
    const { expiresAt, conflicts, replacedPolicy, ...rest } = entry;
    const sk = `${entry.at}#${randomBytes(6).toString("hex")}`;
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: {
            [TABLE_KEYS.partitionKey]: panicPartitionKey(entry.cluster),
            [TABLE_KEYS.sortKey]: sk,
            type: PANIC_ITEM_TYPE,
            ...rest,
            reason: clip(entry.reason, TEXT_MAX),
            requester: clip(entry.requester, TEXT_MAX),
            message: clip(entry.message, MESSAGE_MAX),
            conflicts: conflicts.slice(0, AUDITED_CONFLICTS),
            conflictCount: conflicts.length,
            // Stored under another name: the table's TTL attribute is also called expiresAt.
            policyExpiresAt: expiresAt,
            ...(replacedPolicy === undefined
              ? {}
              : {
                  replacedPolicySha256: createHash("sha256").update(replacedPolicy).digest("hex"),
                  ...(Buffer.byteLength(replacedPolicy) <= REPLACED_MAX_BYTES ? { replacedPolicy } : {}),
                }),
          },
          // Never overwrite an audit record.
          ConditionExpression: "attribute_not_exists(#pk)",
          ExpressionAttributeNames: { "#pk": TABLE_KEYS.partitionKey },
        }),
      );
    } catch (error) {
      // The key is this call's own (its random suffix). When the client retried the write (the answer to an
      // attempt that was applied got lost), the condition refuses the retry: the record is there, written by us.
      const { name, $metadata } = error as { name?: string; $metadata?: { attempts?: number } };
      if (name === "ConditionalCheckFailedException" && ($metadata?.attempts ?? 1) > 1) return;
      throw error;
    }
  }

  async recent(cluster: string, limit: number): Promise<PanicAuditEntry[]> {
    const wanted = Math.max(0, Math.min(limit, HISTORY_MAX));
    if (wanted === 0) return [];
    // A page ends at 1 MB: a few records of take-overs (a copy of up to 64 KB each) fill one, so read on.
    const entries: PanicAuditEntry[] = [];
    let from: Record<string, unknown> | undefined;
    do {
      const page = await this.#doc.send(
        new QueryCommand({
          TableName: this.#tableName,
          KeyConditionExpression: "#pk = :pk",
          ExpressionAttributeNames: { "#pk": TABLE_KEYS.partitionKey },
          ExpressionAttributeValues: { ":pk": panicPartitionKey(cluster) },
          ScanIndexForward: false,
          Limit: wanted - entries.length,
          ExclusiveStartKey: from,
        }),
      );
      entries.push(...(page.Items ?? []).map(toEntry));
      from = page.LastEvaluatedKey;
    } while (from !== undefined && entries.length < wanted);
    return entries;
  }
}

function toEntry(item: Record<string, unknown>): PanicAuditEntry {
  const text = (key: string) => (typeof item[key] === "string" ? (item[key] as string) : "");
  const conflicts = Array.isArray(item.conflicts) ? (item.conflicts as PanicAuditEntry["conflicts"]) : [];
  return {
    cluster: text("cluster"),
    at: text("at"),
    action: text("action") as PanicAuditEntry["action"],
    outcome: text("outcome") as PanicAuditEntry["outcome"],
    result: text("result"),
    requester: text("requester"),
    reason: text("reason"),
    via: text("via"),
    policyName: text("policyName"),
    expiresAt: typeof item.policyExpiresAt === "string" ? item.policyExpiresAt : null,
    conflicts,
    // Records written before the count was kept hold every conflict.
    conflictCount: typeof item.conflictCount === "number" ? item.conflictCount : conflicts.length,
    message: text("message"),
    ...(typeof item.replacedPolicy === "string" ? { replacedPolicy: item.replacedPolicy } : {}),
    ...(typeof item.replacedPolicySha256 === "string"
      ? { replacedPolicySha256: item.replacedPolicySha256 }
      : {}),
  };
}
