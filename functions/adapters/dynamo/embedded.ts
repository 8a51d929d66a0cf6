// The embedded store: dynalite (DynamoDB on LevelDB, in this process) on an ephemeral loopback port, with
// the store's table created on first use. The CLI's local mode and the tests run the same adapter code
// against it as Lambda runs against DynamoDB.
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";
import { requireFromDynalite, serveHere, serveInWorker } from "./embedded-server.ts";
import { createTableInput } from "./schema.ts";

export const DEFAULT_TABLE_NAME = "calico-flows";

export interface EmbeddedStoreOptions {
  /** Directory the data persists in (created if missing); in memory when undefined. */
  dir?: string;
  /** @default "calico-flows" */
  tableName?: string;
  /**
   * Serve it from a worker thread of its own (embedded-server.ts), beside the caller's work rather than taking
   * turns with it: the CLI's choice. @default false (tests start many stores, each a thread's start-up).
   */
  ownThread?: boolean;
  /**
   * Names in `dir` that are no part of the store, and that LevelDB never takes for its own (none of its file names:
   * CURRENT, LOCK, LOG, LOG.old, MANIFEST-…, digits with .log, .ldb, .sst or .dbtmp): a directory holding only these
   * may be made a store. @default none
   */
  besides?: readonly string[];
}

export interface EmbeddedStore {
  endpoint: string;
  tableName: string;
  client: DynamoDBClient;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The pid of the process that has the store open, for the message that refuses another. */
const LOCK_FILE = "calico-flows.lock";

/**
 * The `level` dynalite opens its LevelDB with: the same native LevelDB, so that one opened here and one dynalite
 * opens in this process exclude each other as two processes do (LevelDB keeps its own table of the files it has
 * locked in a process).
 */
const { Level } = requireFromDynalite("level") as typeof import("level");

async function inUse(dir: string): Promise<Error> {
  const pid = (await readFile(join(dir, LOCK_FILE), "utf8").catch(() => "")).trim();
  // In a container that shares the directory, the pid is as the container numbers it.
  const by = /^\d+$/.test(pid) ? ` (pid ${pid} where it runs)` : "";
  return new Error(
    `the embedded store in ${dir} is in use by another calico-flows process${by}; stop it or use another --store directory`,
  );
}

/**
 * Opens the LevelDB in `dir` (making it if there is none) and closes it again, so that what keeps it from opening
 * is a clear error here: dynalite opens it only as its first request comes, and throws LevelDB's failure from its
 * request handler, out of any caller's reach, as "Database is closed". LevelDB allows one process per directory
 * by its LOCK file, an fcntl lock that the kernel releases when the holder exits however it ends, and that holds
 * across pid namespaces (a container sharing the directory): no pid to judge. A process that opens the store in
 * the instant between this close and dynalite's open gets it, and this one fails at its first request (main.ts
 * prints what dynalite throws as one line).
 */
async function checkOpens(dir: string): Promise<void> {
  const db = new Level(dir);
  try {
    await db.open();
  } catch (error) {
    // abstract-level's "Database failed to open", with LevelDB's reason as its cause.
    const cause = (error as Error).cause as (Error & { code?: string }) | undefined;
    if (cause?.code === "LEVEL_LOCKED") throw await inUse(dir);
    const damaged =
      cause?.code === "LEVEL_CORRUPTION"
        ? " (damaged, as a full disk or an interrupted copy leaves it: restore it, or use another --store directory)"
        : "";
    throw new Error(
      `could not open the embedded store in ${dir}: ${cause?.message ?? (error as Error).message}${damaged}`,
      { cause: cause ?? error },
    );
  }
  await db.close();
}

/**
 * Whether `dir` holds an embedded store: LevelDB's CURRENT file, naming the store's manifest, which LevelDB writes
 * when dynalite first opens the directory. Without it a directory holds nothing a command stored, whatever else is
 * in it (a lock file alone is left by earlier versions' commands stopped before LevelDB opened).
 */
export async function holdsEmbeddedStore(dir: string): Promise<boolean> {
  try {
    return /^MANIFEST-\d+\n?$/.test(await readFile(join(dir, "CURRENT"), "utf8"));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return false;
    throw error;
  }
}

/**
 * A directory that holds no store must be empty to be made one, but for `besides` (EmbeddedStoreOptions): LevelDB
 * takes files there named as its own for its own, "recovering" a log named by digits (`20260419.log`) and then
 * deleting it, and moving a `LOG` over `LOG.old`.
 */
async function checkMayHoldStore(dir: string, besides: readonly string[]): Promise<void> {
  if (await holdsEmbeddedStore(dir)) return;
  const others = (await readdir(dir)).filter((name) => name !== LOCK_FILE && !besides.includes(name)).sort();
  if (others.length === 0) return;
  const shown = others.length > 3 ? `${others.slice(0, 3).join(", ")}, …` : others.join(", ");
  throw new Error(
    `--store ${dir} holds files (${shown}) but no embedded store: LevelDB would take some of them for its own ` +
      "and delete or replace them (a log named by digits, a LOG); name a new or empty directory",
  );
}

async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  await client.send(new CreateTableCommand(createTableInput(tableName)));
  // dynalite flips CREATING → ACTIVE on a timer, even at 0 ms.
  for (let i = 0; i < 200; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === "ACTIVE") return;
    await sleep(5);
  }
  throw new Error(`embedded table ${tableName} did not become ACTIVE`);
}

export async function startEmbeddedStore(options: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
  const tableName = options.tableName ?? DEFAULT_TABLE_NAME;
  if (options.dir !== undefined) {
    await mkdir(options.dir, { recursive: true });
    await checkMayHoldStore(options.dir, options.besides ?? []);
    await checkOpens(options.dir);
  }
  const served = await (options.ownThread === true ? serveInWorker : serveHere)(options.dir);
  const port = served.port;
  const endpoint = `http://127.0.0.1:${port}`;
  // Local data, local credentials: nothing here may pick up (or need) the user's AWS configuration. One HTTP
  // request per call, as the stores' client (client.ts): they retry themselves, and SDK retries under theirs would
  // multiply the attempts and make every retried write look possibly applied. No request timeout: dynalite runs
  // in this process, on its event loop or a thread's, so a busy replay could delay an answer past one without
  // anything being wrong.
  const client = new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "embedded", secretAccessKey: "embedded" },
    maxAttempts: 1,
  });
  /** calico-flows.lock, once this process has written it. */
  let lockFile: string | undefined;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    client.destroy();
    // Removed while LevelDB's lock is still held: a process that opens the store next writes its own.
    if (lockFile !== undefined) await rm(lockFile, { force: true });
    await served.close();
  };
  try {
    await ensureTable(client, tableName);
    // dynalite has LevelDB open now: the store is this process's.
    if (options.dir !== undefined) {
      const path = join(options.dir, LOCK_FILE);
      await writeFile(path, String(process.pid));
      lockFile = path;
    }
  } catch (error) {
    await close().catch(() => {});
    const where = options.dir === undefined ? "in memory" : `in ${options.dir}`;
    throw new Error(`could not open the embedded store ${where}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { endpoint, tableName, client, close };
}
