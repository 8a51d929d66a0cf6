// An HTTP proxy on loopback in front of dynalite that adds up the write request units DynamoDB would bill for the
// writes passing through it, per table and kind of item (the partition key's first part: FLOW, COVER, ALERTS, …).
// The table's units are dynalite's own ConsumedCapacity, asked of every write (the larger of the item's old and new
// size, in 1 KB units); a write refused by its condition is billed the existing item's size, 1 at least, which
// dynalite does not report. dynalite bills no index: a write's index copies are sized here, with dynalite's item
// size, from the item before and after it, by the rules DynamoDB bills a global secondary index by. The item before
// is the one read after the previous write of it, so each table must start empty and be written through the proxy
// alone.

import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { FLOW_INDEXES, type IndexDefinition, TABLE_KEYS } from "../functions/adapters/dynamo/schema.ts";
import { forward } from "../test/support/fault-proxy.ts";

/** An item as DynamoDB's JSON protocol carries it. */
type WireItem = Record<string, unknown>;

const { itemSize } = createRequire(import.meta.url)("dynalite/db/index.js") as {
  itemSize: (item: WireItem) => number;
};

const units = (item: WireItem) => Math.max(1, Math.ceil(itemSize(item) / 1024));

export interface WriteUnits {
  requests: number;
  /** Units billed on the table. */
  table: number;
  /** Units billed on the indexes (their copies of the item written, changed or deleted). */
  indexes: number;
}

export interface WriteUnitsProxy {
  endpoint: string;
  /** What the writes to `tableName` have cost so far, per kind of item. */
  unitsOf(tableName: string): ReadonlyMap<string, WriteUnits>;
  close(): Promise<void>;
}

const WRITES = new Set(["PutItem", "UpdateItem", "DeleteItem"]);

/** The item's copy in `index`, or undefined when it has no key there (a sparse index). */
function indexCopy(item: WireItem | undefined, index: IndexDefinition): WireItem | undefined {
  if (item?.[index.partitionKey] === undefined || item[index.sortKey] === undefined) return undefined;
  if (index.projection.type === "ALL") return item;
  const kept = new Set<string>([
    TABLE_KEYS.partitionKey,
    TABLE_KEYS.sortKey,
    index.partitionKey,
    index.sortKey,
    ...(index.projection.type === "INCLUDE" ? (index.projection.nonKeyAttributes ?? []) : []),
  ]);
  return Object.fromEntries(Object.entries(item).filter(([name]) => kept.has(name)));
}

/**
 * What a write that changed `before` into `after` costs on one index: a copy put, updated or deleted is one write of
 * its size, a copy whose key changed a delete and a put, a copy unchanged nothing.
 */
function indexUnits(
  before: WireItem | undefined,
  after: WireItem | undefined,
  index: IndexDefinition,
): number {
  const old = indexCopy(before, index);
  const now = indexCopy(after, index);
  if (old === undefined) return now === undefined ? 0 : units(now);
  if (now === undefined) return units(old);
  const key = (copy: WireItem) => JSON.stringify([copy[index.partitionKey], copy[index.sortKey]]);
  if (key(old) !== key(now)) return units(old) + units(now);
  return JSON.stringify(old) === JSON.stringify(now) ? 0 : Math.max(units(old), units(now));
}

export async function startWriteUnitsProxy(
  target: string,
  indexes: readonly IndexDefinition[] = FLOW_INDEXES,
): Promise<WriteUnitsProxy> {
  const targetUrl = new URL(target);
  const byTable = new Map<string, Map<string, WriteUnits>>();
  /** The items that have index keys, as after their last write (by table and key). */
  const indexed = new Map<string, WireItem>();
  // A write that names none of these, to an item that has none, cannot change an index copy: no read after it.
  const indexKeys = new RegExp(`\\b(${indexes.map((i) => i.partitionKey).join("|")})\\b`);

  const call = async (headers: IncomingHttpHeaders, operation: string, body: unknown) => {
    const text = JSON.stringify(body);
    const answer = await forward(
      targetUrl,
      "POST",
      "/",
      {
        ...headers,
        "x-amz-target": `DynamoDB_20120810.${operation}`,
        "content-length": String(Buffer.byteLength(text)),
      },
      Buffer.from(text),
    );
    return { ...answer, json: JSON.parse(answer.body.toString("utf8") || "{}") as Record<string, unknown> };
  };
  const read = async (headers: IncomingHttpHeaders, tableName: unknown, key: WireItem) =>
    (await call(headers, "GetItem", { TableName: tableName, Key: key, ConsistentRead: true })).json.Item as
      | WireItem
      | undefined;

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      try {
        const raw = Buffer.concat(chunks);
        const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
        if (!WRITES.has(operation)) {
          const answer = await forward(targetUrl, req.method ?? "POST", req.url ?? "/", req.headers, raw);
          res.writeHead(answer.status, answer.headers);
          res.end(answer.body);
          return;
        }
        const body = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        const item = body.Item as WireItem | undefined;
        const key: WireItem = (body.Key as WireItem | undefined) ?? {
          [TABLE_KEYS.partitionKey]: item?.[TABLE_KEYS.partitionKey],
          [TABLE_KEYS.sortKey]: item?.[TABLE_KEYS.sortKey],
        };
        const where = JSON.stringify([body.TableName, key]);
        const before = indexed.get(where);
        const touchesIndexes = before !== undefined || indexKeys.test(raw.toString("utf8"));
        const answer = await call(req.headers, operation, { ...body, ReturnConsumedCapacity: "TOTAL" });
        let table = 0;
        let onIndexes = 0;
        if (answer.status === 200) {
          table =
            (answer.json.ConsumedCapacity as { CapacityUnits?: number } | undefined)?.CapacityUnits ?? 0;
          if (touchesIndexes) {
            const after = await read(req.headers, body.TableName, key);
            for (const index of indexes) onIndexes += indexUnits(before, after, index);
            if (indexes.some((index) => indexCopy(after, index) !== undefined))
              indexed.set(where, after as WireItem);
            else indexed.delete(where);
          }
        } else if (String(answer.json.__type).endsWith("ConditionalCheckFailedException")) {
          const existing = await read(req.headers, body.TableName, key);
          table = existing === undefined ? 1 : units(existing);
        }
        // Added up without an await in between: writes are answered concurrently.
        const pk = (key[TABLE_KEYS.partitionKey] as { S?: string } | undefined)?.S ?? "";
        const kind = pk.split("#")[0] as string;
        const kinds = byTable.get(String(body.TableName)) ?? new Map<string, WriteUnits>();
        const tally = kinds.get(kind) ?? { requests: 0, table: 0, indexes: 0 };
        tally.requests++;
        tally.table += table;
        tally.indexes += onIndexes;
        kinds.set(kind, tally);
        byTable.set(String(body.TableName), kinds);
        // Answered as DynamoDB would: without the capacity, unless the caller asked for it.
        if (body.ReturnConsumedCapacity === undefined) delete answer.json.ConsumedCapacity;
        const text = JSON.stringify(answer.json);
        // The checksum was of the answer with its capacity.
        const { "x-amz-crc32": _, ...headers } = answer.headers;
        headers["content-length"] = String(Buffer.byteLength(text));
        res.writeHead(answer.status, headers);
        res.end(text);
      } catch (error) {
        res.writeHead(502, { "Content-Type": "text/plain" });
        res.end(String(error));
      }
    });
  });
  // As the embedded store (embedded.ts): idle connections are never closed under a client about to reuse them.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    unitsOf: (tableName) => byTable.get(tableName) ?? new Map(),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}
