// The embedded store: dynalite (DynamoDB on LevelDB, in this process) on an ephemeral loopback port, with
// the store's table created on first use. The CLI's local mode and the tests run the same adapter code
// against it as Lambda runs against DynamoDB.
import { mkdir, open, readFile, readlink, realpath, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { createTableInput } from "./schema.ts";

export const DEFAULT_TABLE_NAME = "calico-flows";

export interface EmbeddedStoreOptions {
  /** Directory the data persists in (created if missing); in memory when undefined. */
  dir?: string;
  /** @default "calico-flows" */
  tableName?: string;
}

export interface EmbeddedStore {
  endpoint: string;
  tableName: string;
  client: DynamoDBClient;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

const LOCK_FILE = "calico-flows.lock";

/**
 * The lock files this process holds (their real paths). One with this process's pid that is not among them was
 * left by an earlier process that had the same pid (a container's command restarted after a crash).
 */
const held = new Set<string>();

/**
 * Whether the live process `pid` may be one that uses an embedded store: only a Node process can. Its executable
 * (/proc/<pid>/exe, Linux) tells, not its command line, which a process may rewrite (`process.title`, as pm2 sets
 * it). None (ENOENT) is a kernel thread's, or a process's that has exited and not yet been reaped; where it cannot be
 * read (another user's process, not Linux), it may be ours.
 */
async function mayBeOurs(pid: number): Promise<boolean> {
  let executable: string;
  try {
    executable = await readlink(`/proc/${pid}/exe`);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ENOENT";
  }
  // node, nodejs, node24…, as Node is installed (not node_exporter, which runs on many a node); a binary replaced
  // since the process started reads "… (deleted)".
  return /^node(js)?[-.\d]*$/.test(basename(executable.replace(/ \(deleted\)$/, "")));
}

/**
 * LevelDB allows one process per directory, and dynalite hangs rather than fail when it cannot open it: a
 * lock file with our pid makes a second user fail at once, with a message that says why. A lock left by a
 * process that is gone is taken over, and so is one whose pid now belongs to a process that cannot be ours
 * (pids are reused, in a container within minutes).
 */
async function lockDirectory(dir: string): Promise<() => Promise<void>> {
  const path = join(await realpath(dir), LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      held.add(path);
      return async () => {
        held.delete(path);
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
    const inUse =
      Number.isInteger(pid) &&
      pid > 0 &&
      (pid === process.pid ? held.has(path) : isAlive(pid) && (await mayBeOurs(pid)));
    if (inUse) {
      throw new Error(
        `the embedded store in ${dir} is in use by another calico-flows process (pid ${pid}); stop it or use another --store directory ` +
          `(if no calico-flows process has pid ${pid}, one that was killed left the lock: remove ${path})`,
      );
    }
    await rm(path, { force: true });
  }
  throw new Error(`could not lock the embedded store in ${dir}`);
}

/**
 * Whether `dir` holds an embedded store: LevelDB's CURRENT file, naming the store's manifest, which LevelDB writes
 * when dynalite first opens the directory. Without it a directory holds nothing a command stored, whatever else is
 * in it (a lock file alone is left by a command stopped before LevelDB opened).
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
  let unlock = async () => {};
  if (options.dir !== undefined) {
    await mkdir(options.dir, { recursive: true });
    unlock = await lockDirectory(options.dir);
  }
  const server = dynalite({
    ...(options.dir === undefined ? {} : { path: options.dir }),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await unlock();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  // Local data, local credentials: nothing here may pick up (or need) the user's AWS configuration. One HTTP
  // request per call, as the stores' client (client.ts): they retry themselves, and SDK retries under theirs would
  // multiply the attempts and make every retried write look possibly applied. No request timeout: dynalite runs
  // on this process's event loop, so a busy replay could delay an answer past one without anything being wrong.
  const client = new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "embedded", secretAccessKey: "embedded" },
    maxAttempts: 1,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    client.destroy();
    server.closeAllConnections();
    try {
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    } finally {
      await unlock();
    }
  };
  try {
    await ensureTable(client, tableName);
  } catch (error) {
    await close().catch(() => {});
    const where = options.dir === undefined ? "in memory" : `in ${options.dir}`;
    throw new Error(`could not open the embedded store ${where}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { endpoint, tableName, client, close };
}
