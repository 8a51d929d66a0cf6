// dynalite serving the embedded store on an ephemeral loopback port: in the caller's thread, or in a worker thread
// of its own. The CLI takes the worker: dynalite's share of a replay (parsing each request and its expressions,
// LevelDB) is about half of it, and in a thread of its own it runs on another core beside the pipeline and the
// SDK's share (docs/architecture.md, "The embedded store").
import { once } from "node:events";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

/** dynalite serving: its port, and how to stop it (its connections closed, LevelDB closed). */
export interface ServedStore {
  port: number;
  close(): Promise<void>;
}

export const requireFromDynalite = createRequire(createRequire(import.meta.url).resolve("dynalite"));

/**
 * dynalite (4.0) ends the stream of a Query or Scan by calling its iterator's `return()`, which abstract-level 3's
 * iterators do not have (they have `close()`): every Query left its LevelDB iterator open until the store closed,
 * pinning LevelDB's memory outside V8's heap, some 10 KB each, so a replay following a stream for days grew by
 * gigabytes. Given `return()`, each is closed when its stream ends. Per thread: a worker loads modules of its own.
 */
export function closeIteratorsOnReturn(): void {
  const abstractLevel = createRequire(requireFromDynalite.resolve("level"))("abstract-level") as Record<
    string,
    { prototype: { close(): Promise<void>; return?: () => Promise<void> } } | undefined
  >;
  for (const name of ["AbstractIterator", "AbstractKeyIterator", "AbstractValueIterator"]) {
    const prototype = abstractLevel[name]?.prototype;
    if (prototype !== undefined && prototype.return === undefined) {
      prototype.return = function (this: { close(): Promise<void> }) {
        return this.close();
      };
    }
  }
}

/** dynalite on a loopback port in this thread, its data in `path` (in memory when undefined). */
export async function serveHere(path: string | undefined): Promise<ServedStore> {
  closeIteratorsOnReturn();
  // Loaded here, not with this module: a thread that has the store served by a worker never needs it.
  const { default: dynalite } = await import("dynalite");
  const server = dynalite({
    ...(path === undefined ? {} : { path }),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  // Idle connections stay open until the client or close() ends them. With Node's default (5 s) the server closed
  // connections the client could be reusing at that moment: a replay following a quiet stream, or any run on a
  // loaded machine whose timers run late, had a write fail with ECONNRESET, which may hide a success (retry.ts), so
  // its counts were reported as possibly applied twice and non-idempotent writes failed.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}

/** What the worker is given, and says back. */
interface WorkerStart {
  embeddedStore: { path: string | undefined };
}
type WorkerMessage = { port: number } | { failed: string };

/**
 * dynalite on a loopback port in a worker thread of its own. A failure of dynalite's after it started (LevelDB's,
 * thrown from its request handler) ends the worker and is thrown in this thread, as it would be if it ran here.
 */
export async function serveInWorker(path: string | undefined): Promise<ServedStore> {
  const start: WorkerStart = { embeddedStore: { path } };
  const worker = new Worker(new URL(import.meta.url), { workerData: start });
  const exited = once(worker, "exit");
  const first = (await Promise.race([
    once(worker, "message"),
    exited.then(([code]) => [{ failed: `its thread exited (code ${code}) before it served` }]),
  ])) as [WorkerMessage];
  const message = first[0];
  if ("failed" in message) {
    await worker.terminate();
    throw new Error(message.failed);
  }
  let closed = false;
  return {
    port: message.port,
    close: async () => {
      if (closed) return;
      closed = true;
      worker.postMessage("close");
      await exited;
    },
  };
}

// The worker's side: serve, say on which port (or why not), close when told.
const started = isMainThread ? undefined : (workerData as Partial<WorkerStart> | undefined)?.embeddedStore;
if (started !== undefined && parentPort !== null) {
  const port = parentPort;
  try {
    const served = await serveHere(started.path);
    port.once("message", () => {
      void served.close().finally(() => port.close());
    });
    port.postMessage({ port: served.port } satisfies WorkerMessage);
  } catch (error) {
    port.postMessage({ failed: (error as Error).message } satisfies WorkerMessage);
  }
}
