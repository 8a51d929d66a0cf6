// `flows --group`: the range's flows summed into conversations, checked against the flows themselves and
// against the alerts, which count the same denials by their own path (alert-rules.ts, the alert store).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupFlows } from "../../cli/commands/flows.ts";
import type { Conversation } from "../../cli/conversations.ts";
import { describeEndpoint } from "../../cli/format.ts";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { ndjson, replaySample, runCli, SAMPLE_DAY } from "./run.ts";

let dir: string;
let store: string[];
let flows: FlowRecord[];
let conversations: Conversation[];

/** `flows` of the sample's cluster and day in the shared store, with `args`. */
const read = (command: "flows" | "alerts", ...args: string[]) =>
  runCli([command, ...store, "--cluster", "prod", ...SAMPLE_DAY, ...args]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cf-group-"));
  store = ["--store", join(dir, "store")];
  const run = await replaySample(join(dir, "store"), "prod");
  expect(run.code).toBe(0);
  flows = ndjson<FlowRecord>((await read("flows", "--json")).stdout);
  const grouped = await read("flows", "--group", "--json");
  expect(grouped.code).toBe(0);
  expect(grouped.stderr).toBe("");
  conversations = ndjson<Conversation>(grouped.stdout);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("flows --group", () => {
  it("sums every flow of the range into one conversation, most packets first", () => {
    expect(conversations.length).toBeGreaterThan(5);
    expect(conversations.length).toBeLessThan(flows.length);
    const sum = (list: readonly { packets: number; bytes: number }[]): [number, number] =>
      list.reduce<[number, number]>(([p, b], x) => [p + x.packets, b + x.bytes], [0, 0]);
    expect(sum(conversations)).toEqual(sum(flows));
    expect(conversations.reduce((n, c) => n + c.flows, 0)).toBe(flows.length);
    for (const [i, c] of conversations.entries()) {
      if (i > 0) expect(c.packets).toBeLessThanOrEqual((conversations[i - 1] as Conversation).packets);
      // Its flows: those printed with its source and destination, of its port, direction and policy.
      const mine = flows.filter(
        (f) =>
          describeEndpoint(f.src) === c.src &&
          describeEndpoint(f.dst) === c.dst &&
          f.protocol === c.protocol &&
          f.dstPort === c.dstPort &&
          f.direction === c.direction &&
          f.internal === c.internal &&
          JSON.stringify(f.policy) === JSON.stringify(c.policy),
      );
      expect({
        flows: c.flows,
        packets: c.packets,
        bytes: c.bytes,
        firstSeen: c.firstSeen,
        lastSeen: c.lastSeen,
        reporters: c.reporters,
      }).toEqual({
        flows: mine.length,
        packets: sum(mine)[0],
        bytes: sum(mine)[1],
        firstSeen: mine.map((f) => f.firstSeen).sort()[0],
        lastSeen: mine
          .map((f) => f.lastSeen)
          .sort()
          .at(-1),
        reporters: [...new Set(mine.map((f) => f.reporter))].sort(),
      });
    }
  });

  it("counts each internal denial as its alert does", async () => {
    const alerts = ndjson<AlertRecord>((await read("alerts", "--json")).stdout).filter(
      (a) => a.reason === "internal-denial",
    );
    expect(alerts.length).toBeGreaterThan(2);
    for (const a of alerts) {
      // The sample is shorter than an alert window: one alert per key holds every hit.
      const packets = conversations
        .filter(
          (c) =>
            c.src === describeEndpoint(a.src) &&
            c.dst === describeEndpoint(a.dst) &&
            c.protocol === a.protocol &&
            c.dstPort === a.dstPort,
        )
        .reduce((n, c) => n + c.packets, 0);
      expect(packets, `${a.key.src} → ${a.key.dst}`).toBe(a.count);
    }
  });

  it("prints a table, and says when --limit left conversations out", async () => {
    const table = await read("flows", "--group", "--limit", "3");
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^PACKETS\s+SOURCE\s+DESTINATION\s+PORT\s+DIR\s+FIRST SEEN\s+LAST SEEN\s+FLOWS\s+NODES/,
    );
    expect(lines).toHaveLength(4);
    const top = conversations[0] as Conversation;
    expect(lines[1]?.split(/\s{2,}/).slice(0, 3)).toEqual([String(top.packets), top.src, top.dst]);
    expect(table.stderr).toBe(
      "note: only the 3 conversations with the most packets are listed and the range holds more: raise --limit\n",
    );
  });

  it("reads at most its read limit of flows, and says the totals are of the oldest", async () => {
    const raw = {
      store: join(dir, "store"),
      cluster: "prod",
      since: SAMPLE_DAY[1],
      until: SAMPLE_DAY[3],
      limit: 1000,
    };
    const cut = await groupFlows(raw, 10);
    expect(cut).toMatchObject({ flows: 10, cut: true });
    expect(cut.records.reduce((n, c) => n + c.flows, 0)).toBe(10);
    const whole = await groupFlows(raw, flows.length);
    expect(whole).toMatchObject({ flows: flows.length, cut: false, more: false });
    expect(whole.records).toEqual(conversations);
  });
});
