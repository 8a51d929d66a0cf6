// Hostile or bizarre input from the logs themselves. A node's syslog relay, a Fluent Bit JSON record or a log line
// can carry any bytes in its host field, its PROTO= token or its timestamp: none of that may reach an operator's
// terminal as control sequences, forge lines of an alert e-mail, push an alert past SNS's message limit, or make
// one line fail the rest of its batch (DESIGN.md §4: "Bad input gets a clear error and loses nothing else").
// Everything runs the real `calico-flows` binary against its embedded store (dynalite) and, for alerts, a local
// SNS/SQS (fauxqs) on loopback.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AlertRecord, FlowRecord } from "../../functions/core/types.ts";
import { ndjson, runCli } from "../cli/run.ts";
import {
  createTopic,
  drainQueue,
  type LocalSns,
  REGION,
  startLocalSns,
  structureOf,
  subscribeQueue,
} from "../support/fauxqs.ts";

const dir = mkdtempSync(join(tmpdir(), "cf-hostile-input-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** No pod or node holds anything: every internal address is `unknown`, and every internal denial alerts. */
const EMPTY_LIST = join(dir, "empty.json");
writeFileSync(EMPTY_LIST, '{"apiVersion":"v1","kind":"List","items":[]}');
const NO_CLUSTER = ["--pods", EMPTY_LIST, "--nodes", EMPTY_LIST];
const DAY = ["--since", "2026-04-19T00:00:00Z", "--until", "2026-04-20T00:00:00Z"];

/** The kernel's packet fields of one internal, denied TCP SYN (both ends in 192.168.0.0/16). */
const packet = (src = "192.168.22.247", proto = "TCP") =>
  `IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=${src} DST=192.168.94.122 ` +
  `LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=${proto} SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0`;
const syslog = (time: string, host: string, fields: string) =>
  `${time} ${host} kernel: calico-packet: ${fields}`;
/** A Fluent Bit record (tail input): the line in `log`, the node in `host`; any character can be JSON-escaped. */
const fluentBit = (host: string, fields: string, time = "2026-04-19T04:52:19Z") =>
  JSON.stringify({ log: `calico-packet: ${fields}`, host, time });

/** The control characters of a text but its line feeds: C0, DEL and C1 (U+009B is CSI on its own). */
const controls = (text: string): string[] => text.replaceAll("\n", "").match(/\p{Cc}/gu) ?? [];
/** Bidirectional overrides and isolates ("Trojan Source", CVE-2021-42574): they reorder what follows them. */
const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/u;

let run = 0;
const store = () => ["--store", join(dir, `store-${++run}`), "--cluster", "prod"];

async function replay(lines: readonly string[], storeArgs: string[], extra: string[] = [], env = {}) {
  const file = join(dir, `input-${run}.log`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return runCli(["replay", file, ...storeArgs, ...NO_CLUSTER, "--quiet", ...extra], { env });
}

describe("log-derived text in the CLI's tables and reports", () => {
  // What goes wrong: `flows` and `alerts` print the reporter (the line's host field) and the protocol (the PROTO=
  // token) as they came (cli/format.ts, flowsTable/alertsTable), so an ESC in a Fluent Bit record's host or PROTO=
  // reaches the operator's terminal: here an OSC that retitles the window, a screen clear and a C1 CSI that hides
  // text. Why it matters: anyone who can write one log line can rewrite what the operator sees during an incident.
  // Expected: control characters in table cells are shown escaped or replaced (as kubectl does), never emitted.
  //
  // (Amended with the fix: a PROTO= that is not a protocol name or number makes its line malformed, as the kernel
  // prints nothing else there, so the hostile PROTO= is on a line of its own, which must be reported and kept out of
  // the tables; the hostile host stays on a line that is stored.)
  it("flows and alerts tables print no terminal control characters from a line's host or PROTO=", async () => {
    const at = store();
    const host = "ip-192-168-74-5\u001b]0;all clear\u0007\u001b[2J\u009b8m";
    const replayed = await replay(
      [
        fluentBit(host, packet("192.168.22.247")),
        fluentBit("ip-192-168-74-5", packet("192.168.22.248", "TCP\u001b[8m")),
      ],
      at,
    );
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).toMatch(/ 1 malformed/);

    const flows = await runCli(["flows", ...at, ...DAY]);
    expect(flows.code, flows.stderr).toBe(0);
    expect(flows.stdout).toContain("192.168.22.247");
    expect(controls(flows.stdout), flows.stdout).toEqual([]);

    const grouped = await runCli(["flows", ...at, ...DAY, "--group"]);
    expect(grouped.code, grouped.stderr).toBe(0);
    expect(controls(grouped.stdout), grouped.stdout).toEqual([]);

    const alerts = await runCli(["alerts", ...at, ...DAY]);
    expect(alerts.code, alerts.stderr).toBe(0);
    expect(alerts.stdout).toContain("192.168.22.247");
    expect(controls(alerts.stdout), alerts.stdout).toEqual([]);
  });

  // What goes wrong: a host name carrying U+202E (right-to-left override) is printed as it came, and reverses the
  // rest of its table row on screen: the REPORTER, PACKETS, INTERNAL and POLICY columns read backwards, and a crafted
  // name can make the row show other values than it holds. Expected: bidi controls in cells escaped or dropped.
  it("flows table prints no bidirectional override from a line's host", async () => {
    const at = store();
    const replayed = await replay([fluentBit("ip-192-168-74-5\u202eon\u2066", packet())], at);
    expect(replayed.code, replayed.stderr).toBe(0);
    const flows = await runCli(["flows", ...at, ...DAY]);
    expect(flows.code, flows.stderr).toBe(0);
    expect(flows.stdout).toContain("192.168.22.247");
    expect(flows.stdout).not.toMatch(BIDI_CONTROL);
  });

  // What goes wrong: a JSON record with a syntax error is reported with V8's own message (parse.ts, "malformed JSON
  // record: ${detail}"), and V8 quotes the input around the error raw: an ESC sequence in the record goes to the
  // terminal through `calico-flows parse`'s stderr report. Expected: the reason quotes input escaped, as the other
  // reasons do (parse.ts, quote()).
  it("parse reports a malformed JSON record without its raw control characters", async () => {
    const line = `{"log":"calico-packet: ${packet()}", "x": t\u001b]0;owned\u0007\u001b[2J}`;
    const parsed = await runCli(["parse"], { input: `${line}\n` });
    expect(parsed.code).toBe(0);
    expect(parsed.stderr).toMatch(/line 1: malformed JSON record/);
    expect(controls(parsed.stderr), parsed.stderr).toEqual([]);
  });
});

describe("log-derived text in alerts (local SNS)", () => {
  let sns: LocalSns;
  let env: Record<string, string>;
  beforeAll(async () => {
    sns = await startLocalSns();
    env = {
      AWS_ENDPOINT_URL_SNS: sns.endpoint,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    };
  });
  afterAll(() => sns.close());

  // What goes wrong: the e-mail's "Port:" line prints the protocol as it came (alert-message.ts, portText in
  // internalDenialText and fanInText), while every other log-derived value goes through noControl/oneLine. A PROTO=
  // token can hold line feeds and tabs (only a space ends it), so a log line writes whole lines of its own into the
  // alert e-mail: here a forged "all clear" under the Port line. Why it matters: the e-mail is what the on-call
  // reads. Expected: the protocol printed on one line without control characters, like the reporter.
  //
  // (Amended with the fix: such a PROTO= makes its line malformed, so no e-mail carries it; the e-mail checked is
  // that of an ordinary line of the same batch.)
  it("a PROTO= value cannot write lines of its own into the alert e-mail", async () => {
    const topicArn = await createTopic(sns, "hostile-email");
    const queue = await subscribeQueue(sns, topicArn, "hostile-email-all");
    const forged = "TCP\n\nNote:\tthis\tis\ta\tscheduled\tpenetration\ttest,\tno\taction\tneeded.\n";
    const replayed = await replay(
      [
        fluentBit("ip-192-168-74-5", packet("192.168.22.247", forged)),
        fluentBit("ip-192-168-74-5", packet("192.168.22.248")),
      ],
      store(),
      ["--alerts-topic", topicArn],
      env,
    );
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).toMatch(/ 1 malformed/);
    const messages = await drainQueue(sns, queue);
    expect(messages).toHaveLength(1);
    const email = structureOf(messages[0] as NonNullable<(typeof messages)[0]>).email;
    const lines = email.split("\n");
    const port = lines.findIndex((l) => l.startsWith("  Port:"));
    expect(port, email).toBeGreaterThan(0);
    expect(lines[port + 1], email).toMatch(/^ {2}Direction:/);
    expect(controls(email), email).toEqual([]);
    expect(email).not.toContain("penetration");
  });

  // What goes wrong: a JSON record may escape a lone surrogate (`\ud800`), which JSON.parse keeps as such; in the
  // PROTO= token it reaches the alert's Subject and its `protocol` attribute unchanged (alert-message.ts: noControl
  // and str() leave surrogates alone), and the SDK cannot even encode the Publish request ("URIError: URI
  // malformed"). SNS takes "UTF-8 text" for both (Publish: "Subjects must be UTF-8 text…"; MessageAttributeValue:
  // "Strings are Unicode with UTF8 binary encoding"), which a lone surrogate cannot be written as. A seven-character
  // escape keeps an internal-denial alert from ever being sent, and the runs that hand it out fail on it.
  // Expected: the subject and attributes made well-formed (toWellFormed, U+FFFD), or the line refused as malformed.
  //
  // (Amended with the fix: the line is refused as malformed, the comment's second way; the alert that must still go
  // out is that of an ordinary line of the same batch. snsPublication's own tests cover the well-formed strings.)
  it("a lone surrogate escaped in PROTO= does not keep the alert from SNS", async () => {
    const topicArn = await createTopic(sns, "hostile-surrogate");
    const queue = await subscribeQueue(sns, topicArn, "hostile-surrogate-all");
    const line = fluentBit("ip-192-168-74-5", packet("192.168.22.247", "TCP\ud800"));
    expect(line).toContain("TCP\\ud800");
    const ordinary = fluentBit("ip-192-168-74-5", packet("192.168.22.248"));
    const replayed = await replay([line, ordinary], store(), ["--alerts-topic", topicArn], env);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).toMatch(/ 1 malformed/);
    expect(await drainQueue(sns, queue)).toHaveLength(1);
  });

  // What goes wrong: the protocol has no bound, and one alert carries it four times (the `protocol` attribute, the
  // default JSON's `protocol` and `key.protocol`, the e-mail's Port line), so a 90 KB PROTO= token (well inside
  // CloudWatch Logs' 256 KB event) makes a publish over SNS's limit: "messages must be UTF-8 encoded strings and at
  // most 256 KB in size (262,144 bytes)", attributes included (Publish, MessageAttributeValue API reference). fauxqs
  // enforces that limit as SNS does. The alert is never sent, stays pending, and every run that folds into it fails
  // again (the Lambda's payload goes to the on-failure queue, `replay` exits 1). Expected: such a line is malformed,
  // or its alert is published with the value cut short; the run ends cleanly with every alert delivered.
  it("a line with a 90 KB PROTO= token still gets its alert out, and the run ends cleanly", async () => {
    const topicArn = await createTopic(sns, "hostile-size");
    const queue = await subscribeQueue(sns, topicArn, "hostile-size-all");
    const at = store();
    const replayed = await replay(
      [
        syslog("2026-04-19T04:52:19Z", "ip-192-168-74-5", packet("192.168.22.247")),
        syslog("2026-04-19T04:52:20Z", "ip-192-168-74-5", packet("192.168.22.248", `X${"9".repeat(90_000)}`)),
      ],
      at,
      ["--alerts-topic", topicArn],
      env,
    );
    expect(replayed.code, replayed.stderr.slice(0, 600)).toBe(0);
    const listed = await runCli(["alerts", ...at, ...DAY, "--json"]);
    expect(listed.code).toBe(0);
    const alerts = ndjson<AlertRecord>(listed.stdout);
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(alerts.filter((a) => a.delivery === "pending").map((a) => a.src.ip)).toEqual([]);
    expect((await drainQueue(sns, queue)).length).toBe(alerts.length);
  });
});

describe("one bad line and the rest of its batch", () => {
  // What goes wrong: the PROTO= value (and the host) are stored whole on the flow and alert items, and replay keeps
  // lines up to 16 MB (cli/lines.ts, MAX_LINE_LENGTH). One 450 KB line makes a flow item over DynamoDB's 400 KB item
  // limit: dynalite answers "Item size to update has exceeded the maximum allowed size", as DynamoDB does, and the
  // whole replay stops with that error (no line number); the batch's alerts are never applied, so the two ordinary
  // internal denials beside it never alert. Expected: the oversized line reported as malformed (or its text cut),
  // the others stored and alerted, exit 0.
  it("a 450 KB line does not stop the alerts of the lines beside it", async () => {
    const at = store();
    const replayed = await replay(
      [
        syslog("2026-04-19T04:52:19Z", "ip-a", packet("192.168.22.247")),
        syslog("2026-04-19T04:52:20Z", "ip-b", packet("192.168.22.248", "X".repeat(450_000))),
        syslog("2026-04-19T04:52:21Z", "ip-c", packet("192.168.22.249")),
      ],
      at,
    );
    expect(replayed.code, replayed.stderr.slice(0, 600)).toBe(0);
    const listed = await runCli(["alerts", ...at, ...DAY, "--json"]);
    expect(listed.code).toBe(0);
    const sources = ndjson<AlertRecord>(listed.stdout).map((a) => a.src.ip);
    expect(sources).toEqual(expect.arrayContaining(["192.168.22.247", "192.168.22.249"]));
  });

  // What goes wrong: the parser takes any time up to 9999-12-31T23:59:59.999Z (parse.ts, MAX_MS), but the denial
  // tallies read the windows either side of a hit (tallies.ts, `hi: iso(start + windowMs)`): past year 9999
  // toISOString gives "+010000-…", which sorts before "9999-…", and DynamoDB (dynalite alike) refuses the Query
  // ("The BETWEEN operator requires upper bound to be greater than or equal to lower bound"). One line with a
  // forged timestamp fails the whole replay with --scan-threshold, and the ordinary line beside it is never alerted.
  // Expected: a time whose windows leave the four-digit years is malformed (or clamped); the rest is processed.
  it("a line stamped 9999-12-31T23:59:59.999Z does not fail the batch when scans are counted", async () => {
    const at = store();
    const replayed = await replay(
      [
        syslog("2026-04-19T04:52:19Z", "ip-a", packet("192.168.22.247")),
        syslog("9999-12-31T23:59:59.999Z", "ip-b", packet("192.168.22.248")),
      ],
      at,
      ["--scan-threshold", "3"],
    );
    expect(replayed.code, replayed.stderr).toBe(0);
    const listed = await runCli(["alerts", ...at, ...DAY, "--json"]);
    expect(listed.code).toBe(0);
    expect(ndjson<AlertRecord>(listed.stdout).map((a) => a.src.ip)).toContain("192.168.22.247");
    const flows = await runCli(["flows", ...at, ...DAY, "--json"]);
    expect(ndjson<FlowRecord>(flows.stdout).map((f) => f.src.ip)).toContain("192.168.22.247");
  });
});
