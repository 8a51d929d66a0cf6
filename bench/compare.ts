// `npm run bench:compare -- REV [realistic|worst|parse]`: the core of commit REV against the working tree's, both
// loaded in this one process and their passes alternated, so that the machine's drift (its speed moves by tens of
// percent over hours) slows both alike. Prints each side's median and the ratio of every pair of passes.
//
// - realistic, worst: what the ingest bench's handler figure times (decode, name the delivery, the pipeline) on its
//   realistic cluster (the 65,024-pod snapshot, for both sides) or on the worst case's corpus;
// - parse: the in-process parser (createParser) over the parse bench's corpus.
//
// BENCH_PAIRS sets the number of pairs (8), BENCH_CLOCK=cpu times by CPU time rather than the wall clock.
//
// REV's `functions/` is taken from git into .bench/compare-REV/ (beside node_modules, which its imports need).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { generateLines } from "./corpus.ts";
import { clusterSnapshot, payloads, realisticLines } from "./ingest.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const PAIRS = Number(process.env.BENCH_PAIRS ?? 8);
/**
 * BENCH_CLOCK=cpu times passes by the process's CPU time (user and system, every thread's, so the collector's
 * helpers too) instead of the wall clock: steadier while other work shares the machine's cores.
 */
const CPU_CLOCK = process.env.BENCH_CLOCK === "cpu";

/** Now, in µs, on the chosen clock. */
function clock(): number {
  if (!CPU_CLOCK) return Number(process.hrtime.bigint()) / 1000;
  const used = process.cpuUsage();
  return used.user + used.system;
}

/** The modules a side is made of, from the tree at `root`. Older commits lack some exports: they are optional. */
interface Side {
  name: string;
  classify: { CidrSet: new (cidrs: string[]) => unknown };
  parse: { createParser: (o: object) => (line: string) => unknown; createScanner: () => unknown };
  pipeline: { runPipeline: (events: unknown, options: object) => Promise<{ stats: { lines: number } }> };
  payload: {
    decodeDelivery?: (data: string) => {
      logGroup: string;
      logStream: string;
      /** Before DeliveredEvents#updateWithIds, the contribution digested this join of the ids. */
      events: { joinedIds?(): Uint8Array };
    };
    deliveryContribution?: (group: string, stream: string, ids: unknown) => string;
    decodeSubscriptionData: (data: string) => { logEvents: unknown };
    contributionOf: (payload: object) => string;
  };
}

async function side(name: string, root: string): Promise<Side> {
  const load = (path: string) => import(pathToFileURL(join(root, "functions/core", path)).href);
  return {
    name,
    classify: await load("classify.ts"),
    parse: await load("parse.ts"),
    pipeline: await load("pipeline.ts"),
    payload: await load("subscription-payload.ts"),
  };
}

/** The tree of `rev`, extracted once. */
function checkout(rev: string): string {
  const sha = execFileSync("git", ["rev-parse", "--verify", `${rev}^{commit}`], {
    cwd: ROOT,
    encoding: "utf8",
  }).trim();
  const dir = join(ROOT, ".bench", `compare-${sha.slice(0, 12)}`);
  if (!existsSync(join(dir, "functions"))) {
    mkdirSync(dir, { recursive: true });
    const archive = execFileSync("git", ["archive", sha, "functions"], { cwd: ROOT, maxBuffer: 1 << 28 });
    execFileSync("tar", ["-x", "-C", dir], { input: archive });
  }
  return dir;
}

/** One pass of the handler's work over `data`, in µs per line. */
function handlerPass(s: Side, data: string[], directory: unknown): () => Promise<number> {
  const options = {
    cluster: "bench",
    internal: new s.classify.CidrSet(["192.168.0.0/16"]),
    bucketSeconds: 60,
    scanner: s.parse.createScanner(),
    directory,
  };
  return async () => {
    const start = clock();
    let lines = 0;
    for (const d of data) {
      let events: unknown;
      const { decodeDelivery, deliveryContribution } = s.payload;
      if (decodeDelivery !== undefined && deliveryContribution !== undefined) {
        const delivery = decodeDelivery(d);
        const ids = delivery.events.joinedIds?.() ?? delivery.events;
        deliveryContribution(delivery.logGroup, delivery.logStream, ids);
        events = delivery.events;
      } else {
        const payload = s.payload.decodeSubscriptionData(d);
        s.payload.contributionOf(payload);
        events = payload.logEvents;
      }
      lines += (await s.pipeline.runPipeline(events, options)).stats.lines;
    }
    return (clock() - start) / lines;
  };
}

/** One pass of the in-process parser over `lines`, in µs per line. */
function parsePass(s: Side, lines: string[]): () => Promise<number> {
  const parse = s.parse.createParser({ year: 2024 });
  return async () => {
    const start = clock();
    for (let i = 0; i < lines.length; i++) parse(lines[i] as string);
    return (clock() - start) / lines.length;
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

async function main(): Promise<void> {
  const [rev, scenario = "realistic"] = process.argv.slice(2);
  if (rev === undefined || !["realistic", "worst", "parse"].includes(scenario)) {
    console.error("usage: npm run bench:compare -- REV [realistic|worst|parse]");
    process.exitCode = 2;
    return;
  }
  const a = await side(rev, checkout(rev));
  const b = await side("working tree", ROOT);
  let passA: () => Promise<number>;
  let passB: () => Promise<number>;
  if (scenario === "parse") {
    const lines = [...generateLines(1_000_000, 1)];
    passA = parsePass(a, lines);
    passB = parsePass(b, lines);
  } else {
    const data = payloads(scenario === "worst" ? generateLines(1_000_000, 7) : realisticLines(1_000_000));
    const directory = clusterSnapshot();
    passA = handlerPass(a, data, directory);
    passB = handlerPass(b, data, directory);
  }
  // A pass of each to warm both up, then pairs in alternating order.
  await passA();
  await passB();
  const as: number[] = [];
  const bs: number[] = [];
  for (let pair = 0; pair < PAIRS; pair++) {
    if (pair % 2 === 0) {
      as.push(await passA());
      bs.push(await passB());
    } else {
      bs.push(await passB());
      as.push(await passA());
    }
  }
  const ratios = as.map((t, k) => (bs[k] as number) / t);
  console.log(
    `${scenario}${CPU_CLOCK ? " (CPU time)" : ""}: ${a.name} ${median(as).toFixed(3)} µs/line, ${b.name} ${median(bs).toFixed(3)} µs/line; ` +
      `time ${b.name} ÷ ${a.name}: median ${median(ratios).toFixed(3)} (pairs ${ratios.map((r) => r.toFixed(2)).join(" ")})`,
  );
}

if (import.meta.main) await main();
