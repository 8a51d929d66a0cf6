// The CloudWatch Logs reader through the real SDK client against a local JSON 1.1 endpoint: filter pattern
// quoting, nextToken paging with partly full and empty pages, interleaved streams, throttling and pacing.
import { afterEach, describe, expect, it } from "vitest";
import {
  CloudWatchLogsReader,
  type FilteredEvent,
  LOGS_REQUEST_TIMEOUTS,
  logsClient,
  termPattern,
} from "../../functions/adapters/cloudwatch-logs.ts";
import { compileFilterPattern, type LocalLogs, startLocalLogs } from "../support/cloudwatch-logs-server.ts";
import { calicoLine, GROUP, T0 } from "./fixtures.ts";

let logs: LocalLogs | undefined;
afterEach(async () => {
  await logs?.close();
  logs = undefined;
});

/** A clock that only moves when someone sleeps, so pacing and backoff are observed without waiting. */
function fakeTime() {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
}

/** Three nodes logging in the same seconds, with unrelated kernel and kubelet lines between the calico ones. */
function seed(local: LocalLogs): Map<string, string[]> {
  const ids = new Map<string, string[]>();
  for (const [n, stream] of ["ip-10-0-1-1", "ip-10-0-1-2", "ip-10-0-1-3"].entries()) {
    const events: { timestamp: number; message: string }[] = [];
    for (let i = 0; i < 40; i++) {
      const at = T0 + i * 1500 + n * 100;
      events.push({
        timestamp: at,
        message: calicoLine(at, stream, "192.168.22.247", "192.168.94.122", 5432),
      });
      if (i % 3 === 0) events.push({ timestamp: at + 10, message: `${stream} kubelet[812]: I0419 probe ok` });
      if (i % 5 === 0)
        events.push({ timestamp: at + 20, message: `${stream} kernel: eth0: link up calico_packet` });
    }
    const stored = local.put(GROUP, stream, events);
    ids.set(
      stream,
      stored.filter((e) => e.message.includes("calico-packet")).map((e) => e.id),
    );
  }
  return ids;
}

async function collect(pages: AsyncGenerator<{ events: FilteredEvent[]; nextToken?: string }>) {
  const events: FilteredEvent[] = [];
  const sizes: number[] = [];
  for await (const page of pages) {
    events.push(...page.events);
    sizes.push(page.events.length);
  }
  return { events, sizes };
}

/** Every calico-packet event of the seeded hour of GROUP, as `reader` pages through them. */
const readHour = (reader: CloudWatchLogsReader) =>
  collect(
    reader.events({
      group: GROUP,
      start: T0,
      end: T0 + 3_600_000,
      filterPattern: termPattern("calico-packet"),
    }),
  );

describe("termPattern", () => {
  it("quotes the prefix as one exact term, escaping quotes and backslashes", () => {
    expect(termPattern("calico-packet")).toBe('"calico-packet"');
    expect(termPattern('calico "x" \\y')).toBe('"calico \\"x\\" \\\\y"');
    const matches = compileFilterPattern(termPattern('calico "x" \\y'));
    expect(matches('kernel: calico "x" \\y: IN=eth0')).toBe(true);
    expect(matches("kernel: calico x y")).toBe(false);
  });

  it("is what the service accepts: the bare prefix is not a valid term", async () => {
    logs = await startLocalLogs();
    logs.put(GROUP, "s", [{ timestamp: T0, message: "x" }]);
    const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
    const bare = reader.events({ group: GROUP, start: T0, end: T0 + 1, filterPattern: "calico-packet" });
    await expect(bare.next()).rejects.toMatchObject({ name: "InvalidParameterException" });
  });
});

describe("CloudWatchLogsReader.events", () => {
  it("pages through a whole group by nextToken: every calico event once, streams interleaved in time order", async () => {
    logs = await startLocalLogs({ scanWindow: 7, pageSize: 5 });
    const ids = seed(logs);
    const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
    const { events, sizes } = await readHour(reader);
    const expected = [...ids.values()].flat().sort();
    expect(events.map((e) => e.id).sort()).toEqual(expected);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    // Time order across pages, and the streams really interleave.
    expect(events.map((e) => e.timestamp)).toEqual([...events.map((e) => e.timestamp)].sort((a, b) => a - b));
    expect(new Set(events.slice(0, 6).map((e) => e.stream)).size).toBe(3);
    // Partly full pages are normal, and paging went on after them.
    expect(sizes.length).toBeGreaterThan(expected.length / 5);
    expect(sizes.some((n) => n < 5)).toBe(true);
    expect(logs.calls.every((c) => c.params.filterPattern === '"calico-packet"')).toBe(true);
  });

  it("pages through an empty page that carries a nextToken", async () => {
    logs = await startLocalLogs({ scanWindow: 4, pageSize: 10 });
    const noise = Array.from({ length: 9 }, (_, i) => ({ timestamp: T0 + i, message: "kubelet: probe ok" }));
    logs.put(GROUP, "s", [
      ...noise,
      { timestamp: T0 + 100, message: calicoLine(T0 + 100, "s", "1.2.3.4", "5.6.7.8", 22) },
    ]);
    const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
    const { events, sizes } = await collect(
      reader.events({ group: GROUP, start: T0, end: T0 + 1000, filterPattern: termPattern("calico-packet") }),
    );
    expect(events).toHaveLength(1);
    expect(sizes).toEqual([0, 0, 1]);
  });

  it("reads one stream, within inclusive time bounds", async () => {
    logs = await startLocalLogs({ scanWindow: 10, pageSize: 4 });
    const ids = seed(logs);
    const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
    const start = T0 + 1500 * 10 + 100;
    const end = T0 + 1500 * 19 + 100;
    const { events } = await collect(
      reader.events({
        group: GROUP,
        streams: ["ip-10-0-1-2"],
        start,
        end,
        filterPattern: termPattern("calico-packet"),
      }),
    );
    expect(events.every((e) => e.stream === "ip-10-0-1-2")).toBe(true);
    expect(events.map((e) => e.id)).toEqual(ids.get("ip-10-0-1-2")?.slice(10, 20));
  });

  it("backs off and retries throttled calls, slows its pace, and still returns every event once", async () => {
    const time = fakeTime();
    logs = await startLocalLogs({ scanWindow: 8, pageSize: 5, throttle: (n) => n % 3 === 2 });
    const ids = seed(logs);
    const reader = new CloudWatchLogsReader({
      client: logs.client(),
      callsPerSecond: 5,
      sleep: time.sleep,
      now: time.now,
      random: () => 0.5,
    });
    const { events } = await readHour(reader);
    expect(events.map((e) => e.id).sort()).toEqual([...ids.values()].flat().sort());
    const throttled = logs.calls.filter((c) => c.outcome === "throttled").length;
    expect(throttled).toBeGreaterThan(5);
    expect(reader.stats.throttled).toBe(throttled);
    expect(reader.stats.calls).toBe(logs.calls.length);
    // Each throttle waits a backoff of 0.75 × 500 ms on its first retry (jitter fixed at the midpoint) …
    expect(reader.stats.backoffMs).toBe(375 * throttled);
    // … and the pace halves: the fake clock advanced by more than backoffs and the 5/s schedule explain.
    expect(time.now() - 1_000_000).toBeGreaterThan(375 * throttled + (logs.calls.length - 1) * 200);
  });

  it("gives up after the configured tries and surfaces the throttling", async () => {
    const time = fakeTime();
    logs = await startLocalLogs({ throttle: () => true });
    logs.put(GROUP, "s", [{ timestamp: T0, message: "calico-packet" }]);
    const reader = new CloudWatchLogsReader({
      client: logs.client(),
      retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 250 },
      sleep: time.sleep,
      now: time.now,
      random: () => 1,
    });
    const pages = reader.events({ group: GROUP, start: T0, end: T0 + 1, filterPattern: '"calico-packet"' });
    await expect(pages.next()).rejects.toMatchObject({ name: "ThrottlingException" });
    expect(logs.calls).toHaveLength(4);
    // Backoffs 100, 200, then capped at 250, between the four tries.
    expect(reader.stats.backoffMs).toBe(550);
    expect(reader.stats.throttled).toBe(3);
  });

  it("spaces calls to the configured rate across concurrent readers", async () => {
    const time = fakeTime();
    logs = await startLocalLogs({ scanWindow: 5, pageSize: 5 });
    seed(logs);
    const reader = new CloudWatchLogsReader({
      client: logs.client(),
      callsPerSecond: 4,
      sleep: time.sleep,
      now: time.now,
    });
    const started = time.now();
    const streams = ["ip-10-0-1-1", "ip-10-0-1-2", "ip-10-0-1-3"];
    await Promise.all(
      streams.map((s) =>
        collect(
          reader.events({
            group: GROUP,
            streams: [s],
            start: T0,
            end: T0 + 3_600_000,
            filterPattern: '"calico-packet"',
          }),
        ),
      ),
    );
    // N calls at 4 per second take (N - 1) × 250 ms of the shared schedule.
    expect(logs.calls.length).toBeGreaterThan(10);
    expect(time.now() - started).toBeGreaterThanOrEqual((logs.calls.length - 1) * 250 - 250);
  });
});

describe("CloudWatchLogsReader.streams", () => {
  it("lists every stream page by page, with its metadata", async () => {
    logs = await startLocalLogs({ pageSize: 2 });
    const day = 86_400_000;
    for (let i = 0; i < 5; i++)
      logs.put(GROUP, `ip-10-0-2-${i}`, [{ timestamp: T0 - i * day, message: "calico-packet" }]);
    const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
    const listed: { name: string; lastEventTimestamp?: number }[] = [];
    for await (const s of reader.streams(GROUP)) listed.push(s);
    // Which of them a backfill reads is `mayHoldEvents`' call (backfill-ops.test.ts).
    expect(listed.map((s) => [s.name, s.lastEventTimestamp])).toEqual(
      [0, 1, 2, 3, 4].map((i) => [`ip-10-0-2-${i}`, T0 - i * day]),
    );
    expect(logs.calls.filter((c) => c.operation === "DescribeLogStreams")).toHaveLength(3);
  });

  it("reports a missing log group with its name, the operation and the region, the service's error as cause", async () => {
    logs = await startLocalLogs();
    const reader = new CloudWatchLogsReader({ client: logs.client(), callsPerSecond: 1000 });
    await expect(reader.streams("/nope").next()).rejects.toMatchObject({
      message: "log group /nope (DescribeLogStreams in eu-west-1): The specified log group does not exist.",
      cause: { name: "ResourceNotFoundException" },
    });
    await expect(
      reader.events({ group: "/nope", streams: ["ip-10-0-1-1"], start: T0, end: T0 + 60_000 }).next(),
    ).rejects.toMatchObject({
      message:
        "log group /nope, log stream ip-10-0-1-1 (FilterLogEvents in eu-west-1): The specified log group does not exist.",
      cause: { name: "ResourceNotFoundException" },
    });
  });
});

describe("stopping the reader", () => {
  it("ends a backoff at the stop and tries no more, throwing the stop's reason", async () => {
    logs = await startLocalLogs({ throttle: () => true });
    logs.put(GROUP, "s", [{ timestamp: T0, message: "calico-packet" }]);
    const stop = new AbortController();
    // The default sleep: a 60 s backoff after the first throttled try, which the stop must cut short.
    const reader = new CloudWatchLogsReader({
      client: logs.client(),
      retry: { baseDelayMs: 60_000 },
      random: () => 1,
      signal: stop.signal,
    });
    const pages = reader.events({ group: GROUP, start: T0, end: T0 + 1, filterPattern: '"calico-packet"' });
    const next = pages.next();
    while (reader.stats.throttled === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const stoppedAt = Date.now();
    stop.abort();
    await expect(next).rejects.toBe(stop.signal.reason);
    expect(Date.now() - stoppedAt).toBeLessThan(1_000);
    expect(logs.calls).toHaveLength(1);
  });

  it("abandons the request in flight at the stop", async () => {
    let release: () => void = () => {};
    const hung = new Promise<void>((resolve) => {
      release = resolve;
    });
    logs = await startLocalLogs({ beforeFilter: () => hung });
    logs.put(GROUP, "s", [{ timestamp: T0, message: "calico-packet" }]);
    try {
      const stop = new AbortController();
      const reader = new CloudWatchLogsReader({ client: logs.client(), signal: stop.signal });
      const next = reader
        .events({ group: GROUP, start: T0, end: T0 + 1, filterPattern: '"calico-packet"' })
        .next();
      while (logs.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      stop.abort();
      await expect(next).rejects.toBe(stop.signal.reason);
      expect(reader.stats.calls).toBe(1);
    } finally {
      release();
    }
  });

  it("makes no call once stopped, and waits no pace", async () => {
    logs = await startLocalLogs();
    const stop = new AbortController();
    stop.abort();
    const sleeps: number[] = [];
    const reader = new CloudWatchLogsReader({
      client: logs.client(),
      signal: stop.signal,
      sleep: async (ms) => void sleeps.push(ms),
    });
    await expect(reader.streams(GROUP).next()).rejects.toBe(stop.signal.reason);
    expect(logs.calls).toHaveLength(0);
    expect(sleeps).toEqual([]);
  });
});

describe("the reader's client", () => {
  it("gives up on a FilterLogEvents that never answers and asks again, reading every event once", async () => {
    let release: () => void = () => {};
    const hung = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The second call hangs until the test ends: only the client's request timeout gets the reader past it.
    logs = await startLocalLogs({
      scanWindow: 7,
      pageSize: 5,
      beforeFilter: (n) => (n === 2 ? hung : Promise.resolve()),
    });
    const ids = seed(logs);
    try {
      const reader = new CloudWatchLogsReader({ client: logs.client(300), callsPerSecond: 1000 });
      const { events } = await readHour(reader);
      expect(events.map((e) => e.id).sort()).toEqual([...ids.values()].flat().sort());
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    } finally {
      release();
    }
  });

  it("has request timeouts by default, under the 300 s the SDK would wait", async () => {
    const client = logsClient({ region: "eu-west-1" });
    try {
      expect(await client.config.maxAttempts()).toBe(1);
      expect(LOGS_REQUEST_TIMEOUTS.requestTimeout).toBeLessThan(300_000);
      expect(LOGS_REQUEST_TIMEOUTS.throwOnRequestTimeout).toBe(true);
    } finally {
      client.destroy();
    }
  });
});
