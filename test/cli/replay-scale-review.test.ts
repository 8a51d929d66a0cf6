// `calico-flows replay` at the scale of a busy cluster: a day of node logs replayed from a file, or
// `kubectl logs -f | calico-flows replay -` followed for hours and restarted, or a day's logs kept compressed. Each
// test pins a defect an operator meets past the sizes, run lengths or inputs the other replay tests use (DESIGN.md
// §4: "Nothing lost, nothing double-counted", "Bad input gets a clear error"; docs/backfill.md: "The same lines
// replayed again … are counted once").
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoCoverageStore } from "../../functions/adapters/dynamo/coverage.ts";
import { startEmbeddedStore } from "../../functions/adapters/dynamo/embedded.ts";
import { DynamoFlowStore } from "../../functions/adapters/dynamo/flow-store.ts";
import { CidrSet } from "../../functions/core/classify.ts";
import { createScanner } from "../../functions/core/parse.ts";
import { runPipeline } from "../../functions/core/pipeline.ts";
import type { FlowRecord } from "../../functions/core/types.ts";
import { ndjson, runCli } from "./run.ts";

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "cf-replay-scale-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const fresh = (name: string): string => mkdtempSync(join(scratch, `${name}-`));
/** No pods, nodes or kubeconfig: nothing to ask, nothing of the user's picked up. */
const bare = (dir: string) => ({ env: { KUBECONFIG: "", HOME: dir } });
const DAY = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z"];

/**
 * `n` distinct denials of one internet address to one pod port, `perSecond` a second from 06:00 of the demo's day,
 * as a node's kernel logs them (`kubectl logs --timestamps`): few flows, so that many lines replay quickly.
 */
function denials(n: number, perSecond: number, from = 0): string[] {
  const start = Date.UTC(2026, 3, 19, 6, 0, 0);
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const time = new Date(start + Math.floor(i / perSecond) * 1000).toISOString();
    return (
      `${time} ip-192-168-74-5 kernel: calico-packet: IN=eth0 OUT=eni8d48114818c SRC=203.0.113.9 ` +
      `DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=53 ID=${i % 65536} DF PROTO=TCP SPT=${1024 + (i % 60000)} ` +
      "DPT=443 WINDOW=62727 RES=0x00 SYN URGP=0"
    );
  });
}

async function storedPackets(store: string): Promise<number> {
  const run = await runCli(["flows", "--store", store, ...DAY, "--json", "--limit", "100000"]);
  expect(run.code).toBe(0);
  return ndjson<FlowRecord>(run.stdout).reduce((n, f) => n + f.packets, 0);
}

describe("calico-flows replay at scale", () => {
  // Defect: a replayed line's event id is its text's digest, its repeat count *and the number of times the
  // remembered texts were cleared before it* (LineIds: cleared every 200,000 distinct texts). So past the
  // 200,000th distinct calico line of an input, a line's id depends on where it stands in that input, not on the
  // line. Impact: `kubectl logs -f | calico-flows replay -` on a busy cluster passes 200,000 lines within the
  // hour; when kubectl is restarted (`--since 1m`, the API server's stream dropped) it re-sends the last lines,
  // which the new replay names `#0.n` where the first one named them `#1.n`: every such line is counted a second
  // time, silently, and the summary says nothing was counted before. Expected: the same line text (with its
  // repeat count) is the same event whatever came before it, as docs/backfill.md promises ("The same lines
  // replayed again … are counted once").
  it("counts the lines a restarted follow sends again once, past 200,000 lines", async () => {
    const dir = fresh("restart");
    const store = join(dir, "store");
    const log = join(dir, "followed.log");
    const lines = denials(200_020, 2000);
    writeFileSync(log, `${lines.join("\n")}\n`);
    const first = await runCli(["replay", log, "--store", store, "--quiet"], bare(dir));
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/replayed 200020 lines: 200020 calico records,/);

    // The restarted follow: the last 20 lines again, then 10 new ones.
    const again = [...lines.slice(-20), ...denials(10, 2000, 200_020)];
    const second = await runCli(["replay", "-", "--store", store, "--quiet"], {
      ...bare(dir),
      input: `${again.join("\n")}\n`,
    });
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/replayed 30 lines: 30 calico records \(20 counted by an earlier replay\)/);
    expect(await storedPackets(store)).toBe(200_030);
  }, 60_000);

  // Defect: the embedded store leaves a LevelDB iterator open for every Query it answers, until the store is
  // closed. dynalite 4 (on level 10 / abstract-level 3) reads a Query through a stream whose destroy() calls
  // `iterator.return()`, which abstract-level 3 iterators do not have, and nothing else closes them; each open
  // iterator stays in the database's resource set and pins LevelDB's memtables and table files of its moment.
  // Impact: every replay batch reads the coverage records (a Query), and `kubectl logs -f | calico-flows replay -`
  // closes a batch within 2 s of its first line, so a steady trickle leaks 43,200 iterators a day. Measured while
  // writing this: 10-15 KB of native memory each on coverage reads alone (RSS +109 MB over 8,000 reads, flat once
  // the iterators are closed), and about 90 KB per one-line batch of a whole replay (peak RSS 427 MB after 1,000
  // such batches, 609 MB after 3,000) — a follow left running for days grows by gigabytes until the OOM killer
  // ends it, outside the V8 heap, where --max-old-space-size cannot bound it. Expected: an iterator is closed once
  // its Query is answered, so the iterators open at once stay bounded by the requests in flight (the stores send
  // at most 16 at once), however many batches the replay stored (functions/adapters/dynamo/embedded.ts sets up the
  // store's dynalite and already loads dynalite's own `level`: it can close them).
  // The CLI serves its store from a worker thread (embedded-server.ts), whose modules this thread cannot watch: the
  // iterators are counted on a store served here by the same code, over a replay's batches of store requests.
  it("does not keep a LevelDB iterator open for every batch a long replay stores", async () => {
    const dir = fresh("iterators");
    // The `abstract-level` behind dynalite's `level`, as embedded-server.ts reaches it.
    const fromDynalite = createRequire(createRequire(import.meta.url).resolve("dynalite"));
    const { AbstractLevel, AbstractIterator } = createRequire(fromDynalite.resolve("level"))(
      "abstract-level",
    ) as {
      AbstractLevel: { prototype: { attachResource(r: object): void; detachResource(r: object): void } };
      AbstractIterator: abstract new (...args: never[]) => object;
    };
    const { attachResource, detachResource } = AbstractLevel.prototype;
    const open = new Set<object>();
    let made = 0;
    let peak = 0;
    AbstractLevel.prototype.attachResource = function (this: object, r: object) {
      if (r instanceof AbstractIterator) {
        made++;
        open.add(r);
        peak = Math.max(peak, open.size);
      }
      attachResource.call(this, r);
    };
    AbstractLevel.prototype.detachResource = function (this: object, r: object) {
      open.delete(r);
      detachResource.call(this, r);
    };
    const embedded = await startEmbeddedStore({ dir: join(dir, "store") });
    try {
      // A batch per line: what a followed stream's trickle gives (a batch every 0.5 to 2 s), 200 of them, each
      // stored and its coverage and flows read back as a replay batch does.
      const store = new DynamoFlowStore({ client: embedded.client, tableName: embedded.tableName });
      const coverage = new DynamoCoverageStore({ client: embedded.client, tableName: embedded.tableName });
      const lines = denials(200, 1);
      for (const [k, line] of lines.entries()) {
        const { flows } = await runPipeline([{ message: line }], {
          cluster: "local",
          internal: new CidrSet(["192.168.0.0/16"]),
          bucketSeconds: 60,
          scanner: createScanner({ year: 2026 }),
          directory: { resolve: async (lookups) => lookups.map(() => ({ status: "absent" as const })) },
        });
        await store.writeFlows(flows, `replay/${k}`);
        const minute = Date.UTC(2026, 3, 19, 6) / 60_000;
        await coverage.read({ cluster: "local", group: "replay", stream: "-" }, minute, minute + 60);
        await store.queryFlows({
          cluster: "local",
          since: "2026-04-19T06:00:00Z",
          until: "2026-04-19T07:00:00Z",
        });
      }
    } finally {
      await embedded.close();
      AbstractLevel.prototype.attachResource = attachResource;
      AbstractLevel.prototype.detachResource = detachResource;
    }
    expect(made).toBeGreaterThanOrEqual(200);
    expect(peak, `iterators open at once, of ${made} made`).toBeLessThanOrEqual(16);
  }, 60_000);

  // Defect: replay recognises one compression, gzip, by its magic bytes and refuses it with a clear error; a file
  // compressed otherwise — zstd (`zstd node-logs.log`, logrotate's `compresscmd zstd`) — is read as a few lines of
  // binary, none calico, and the run "succeeds": exit 0, "0 calico records", and a note telling the operator to
  // change --prefix, which is not what is wrong. Impact: a day of node logs kept as `.zst` replays to nothing, a
  // script sees success, and the operator is sent after Felix's logPrefix. Expected: as for gzip, one clear error
  // that the input is compressed (zstd's frame magic 28 B5 2F FD is as certain as gzip's 1F 8B), exit 1, nothing
  // replayed (cli/commands/replay.ts, the gzip check on the first line).
  it("refuses zstd-compressed input with a clear error, as it refuses gzip", async () => {
    const dir = fresh("compressed");
    const text = `${denials(500, 10).join("\n")}\n`;
    const gz = join(dir, "node-logs.log.gz");
    writeFileSync(gz, gzipSync(text));
    const zst = join(dir, "node-logs.log.zst");
    writeFileSync(zst, zstdCompressSync(text));
    const refused = await runCli(["replay", gz, "--store", join(dir, "a"), "--quiet"], bare(dir));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/node-logs\.log\.gz is gzip-compressed/);
    const run = await runCli(["replay", zst, "--store", join(dir, "b"), "--quiet"], bare(dir));
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 1,
      stderr: expect.stringMatching(/node-logs\.log\.zst is (zstd-)?compressed/),
    });
    expect(run.stderr).not.toMatch(/replayed|--prefix/);
  }, 30_000);
});
