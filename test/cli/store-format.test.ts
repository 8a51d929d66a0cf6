// Embedded stores written by earlier versions: before hour markers (705b5ff) a store put no FLOWHOURS# items, before
// alert day markers (696ced5) no ALERTDAYS# items, and calico-flows.json held only the clusters, as it did until
// now for every store. Questions by time read only the marked periods, so such a store read as empty over any range
// longer than two hours (and its alerts over any range), with exit 0 and a note that it held no flows at any time.
// The old stores are made here as those versions wrote them: the demo replayed, its markers then deleted.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeleteCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedStore } from "../../functions/adapters/dynamo/embedded.ts";
import { documentClient } from "../../functions/adapters/dynamo/requests.ts";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { ndjson, replaySample, runCli, SAMPLE, SAMPLE_ATTRIBUTION, SAMPLE_DAY } from "./run.ts";

/** What the demo replay stores (README, "Try it"): its flows and alerts over its day. */
const DEMO_FLOWS = 109;
const DEMO_ALERTS = 5;

const HOURS_ERROR =
  /^error: the embedded store in (\S+) was written by a calico-flows before hour markers \(its flows of cluster "local" are in hours no marker lists, so a range over two hours reads none of them\): replay its logs into a new --store$/m;
const DAYS_ERROR =
  /^error: the embedded store in (\S+) was written by a calico-flows before alert day markers \(its alerts of cluster "local" are on days no marker lists, so no listing reads them\): replay its logs into a new --store$/m;

let scratch: string;
/** The demo replayed by this version, copied for each test. */
let written: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "cf-store-format-"));
  written = join(scratch, "written");
  expect((await replaySample(written, "local")).code).toBe(0);
}, 60_000);
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

let copies = 0;
/** A copy of the demo's store, with the markers of `partitions` deleted and calico-flows.json as earlier versions left it. */
async function earlierStore(partitions: readonly string[]): Promise<string> {
  const dir = join(scratch, `copy-${++copies}`);
  cpSync(written, dir, { recursive: true });
  const embedded = await startEmbeddedStore({ dir });
  try {
    const doc = documentClient(embedded.client);
    for (const pk of partitions) {
      const markers = await doc.send(
        new QueryCommand({
          TableName: embedded.tableName,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": pk },
        }),
      );
      expect(markers.Items?.length).toBeGreaterThan(0);
      for (const { sk } of markers.Items ?? []) {
        await doc.send(new DeleteCommand({ TableName: embedded.tableName, Key: { pk, sk } }));
      }
    }
  } finally {
    await embedded.close();
  }
  writeFileSync(join(dir, "calico-flows.json"), '{"clusters":["local"]}\n');
  return dir;
}

const settingsOf = (dir: string): unknown => JSON.parse(readFileSync(join(dir, "calico-flows.json"), "utf8"));

describe("an embedded store written before hour markers", () => {
  it("is refused by flows and alerts, naming the cause and the fix, rather than read as empty", async () => {
    const store = await earlierStore(["FLOWHOURS#local", "ALERTDAYS#local"]);
    // Two hours are read directly, and found its flows: refused all the same, as a longer range would miss them.
    const direct = await runCli([
      "flows",
      "--store",
      store,
      "--since",
      "2026-04-19T04:00:00Z",
      "--until",
      "2026-04-19T05:59:00Z",
      "--json",
    ]);
    expect(direct.code).toBe(1);
    expect(direct.stderr).toMatch(HOURS_ERROR);
    expect(direct.stdout).toBe("");

    const day = await runCli(["flows", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect(day.code).toBe(1);
    expect(day.stdout).toBe("");
    expect(day.stderr.match(HOURS_ERROR)?.[1]).toBe(store);

    const alerts = await runCli(["alerts", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect(alerts.code).toBe(1);
    expect(alerts.stdout).toBe("");
    expect(alerts.stderr).toMatch(HOURS_ERROR);
  }, 60_000);

  it("never gets the note that it holds no flows at any time", async () => {
    const store = await earlierStore(["FLOWHOURS#local", "ALERTDAYS#local"]);
    const listing = await runCli(["flows", "--store", store]);
    expect(listing.code).toBe(1);
    expect(listing.stdout).toBe("");
    expect(listing.stderr).not.toContain("at any time");
    expect(listing.stderr).toMatch(HOURS_ERROR);
  }, 60_000);

  it("is refused without calico-flows.json too, as versions before it left it", async () => {
    const store = await earlierStore(["FLOWHOURS#local", "ALERTDAYS#local"]);
    rmSync(join(store, "calico-flows.json"));
    const listing = await runCli(["flows", "--store", store, ...SAMPLE_DAY]);
    expect(listing.code).toBe(1);
    expect(listing.stderr).toMatch(HOURS_ERROR);
  }, 60_000);

  it("is refused by replay, which would mark only its own hours, and left as it was", async () => {
    const store = await earlierStore(["FLOWHOURS#local", "ALERTDAYS#local"]);
    const replay = await runCli([
      "replay",
      join(SAMPLE, "node-logs.log"),
      "--store",
      store,
      ...SAMPLE_ATTRIBUTION,
      "--quiet",
    ]);
    expect(replay.code).toBe(1);
    expect(replay.stderr).toMatch(HOURS_ERROR);
    expect(settingsOf(store)).toEqual({ clusters: ["local"] });
  }, 60_000);
});

describe("an embedded store written before alert day markers", () => {
  it("is refused by alerts and by replay; its flows, all marked, are still listed", async () => {
    const store = await earlierStore(["ALERTDAYS#local"]);
    const alerts = await runCli(["alerts", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect(alerts.code).toBe(1);
    expect(alerts.stdout).toBe("");
    expect(alerts.stderr).toMatch(DAYS_ERROR);

    const flows = await runCli(["flows", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect({ code: flows.code, stderr: flows.stderr }).toEqual({ code: 0, stderr: "" });
    expect(ndjson<FlowRecord>(flows.stdout)).toHaveLength(DEMO_FLOWS);
    // Not whole: no format is recorded, and alerts still refuse it.
    expect(settingsOf(store)).toEqual({ clusters: ["local"] });

    const replay = await runCli(["replay", "-", "--store", store, "--quiet"]);
    expect(replay.code).toBe(1);
    expect(replay.stderr).toMatch(DAYS_ERROR);
  }, 60_000);
});

describe("an embedded store written by this version", () => {
  it("records its format, and one without it but with its markers is read as before, without a word", async () => {
    expect(settingsOf(written)).toEqual({ clusters: ["local"], format: 1 });
    // As every store this version wrote before it recorded the format.
    const store = await earlierStore([]);
    const flows = await runCli(["flows", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect({ code: flows.code, stderr: flows.stderr }).toEqual({ code: 0, stderr: "" });
    expect(ndjson<FlowRecord>(flows.stdout)).toHaveLength(DEMO_FLOWS);
    const alerts = await runCli(["alerts", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect({ code: alerts.code, stderr: alerts.stderr }).toEqual({ code: 0, stderr: "" });
    expect(ndjson<AlertRecord>(alerts.stdout)).toHaveLength(DEMO_ALERTS);
    // Found whole, it has its format recorded by the first reader: the check is not made again.
    expect(settingsOf(store)).toEqual({ clusters: ["local"], format: 1 });
  }, 60_000);

  it("is checked once: a reader that finds it whole records its format, one that only lists flows too", async () => {
    // A store recording a cluster with no flows (a replay of a file without calico lines) is checked with a Scan.
    const store = await earlierStore([]);
    writeFileSync(join(store, "calico-flows.json"), '{"clusters":["local","staging"]}\n');
    const flows = await runCli(["flows", "--store", store, ...SAMPLE_DAY, "--json"]);
    expect({ code: flows.code, stderr: flows.stderr }).toEqual({ code: 0, stderr: "" });
    expect(settingsOf(store)).toEqual({ clusters: ["local", "staging"], format: 1 });
  }, 60_000);

  it("holding no flow, is not taken for an earlier one", async () => {
    const store = join(scratch, "empty");
    expect((await runCli(["replay", "-", "--store", store, "--quiet"])).code).toBe(0);
    writeFileSync(join(store, "calico-flows.json"), '{"clusters":["local"]}\n');
    const listing = await runCli(["flows", "--store", store]);
    expect(listing).toEqual({
      code: 0,
      stdout: "no records in that range\n",
      stderr: 'note: the store holds no flows of cluster "local" at any time: no --since will find one\n',
    });
  }, 60_000);
});
