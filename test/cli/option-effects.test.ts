// What the CLI's options do where a command takes them and has no use for them, what `replay --quiet` leaves out,
// and the input `parse` refuses as not text.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { zstdCompressSync } from "node:zlib";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { registerFlows } from "../../cli/commands/flows.ts";
import { registerPanic } from "../../cli/commands/panic.ts";
import { parseStream, registerParse } from "../../cli/commands/parse.ts";
import { NdjsonEncoder } from "../../functions/core/ndjson.ts";
import { createScanner } from "../../functions/core/parse.ts";
import { notesBeforeAction as notes, runCli } from "./run.ts";

const dir = mkdtempSync(join(tmpdir(), "cf-option-effects-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.restoreAllMocks();
});

const PACKET =
  "calico-packet: IN=eth0 OUT=eni1 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=5432 WINDOW=62727 RES=0x00 SYN URGP=0";
const LINE = `2026-04-19T04:52:19Z ip-192-168-74-5 kernel: ${PACKET}`;
const API = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1";
/** Each common option given, with a value other than its default. */
const GIVEN_COMMON = [
  "--cluster",
  "prod",
  "--internal-cidr",
  "10.0.0.0/8",
  "--store",
  join(dir, "store"),
  "--table",
  "flows",
  "--region",
  "eu-central-1",
];

describe("a common option given where it has no effect", () => {
  const STORED =
    "whether a flow is internal was decided when it was stored (replay, backfill, the ingest function)";

  it("flows and alerts say, once, that --internal-cidr does not re-decide which flows are internal", async () => {
    const ranges = ["--internal-cidr", "10.0.0.0/8", "--internal-cidr", "172.16.0.0/12"];
    expect(await notes(registerFlows, ["flows"], ["flows", "--internal", ...ranges])).toEqual([
      `note: --internal-cidr has no effect on flows: ${STORED}\n`,
    ]);
    expect(await notes(registerFlows, ["alerts"], ["alerts", ...ranges])).toEqual([
      `note: --internal-cidr has no effect on alerts: ${STORED}\n`,
    ]);
    // Options they use, and defaults, are not noted.
    const used = ["--cluster", "prod", "--store", join(dir, "s")];
    expect(await notes(registerFlows, ["flows"], ["flows", "--internal", ...used])).toEqual([]);
    expect(
      await notes(registerFlows, ["flows"], ["flows", "--table", "t", "--region", "eu-central-1"]),
    ).toEqual([]);
    expect(
      await notes(registerFlows, ["flows"], ["flows", "--api", API, "--region", "eu-central-1"]),
    ).toEqual([]);
    expect(await notes(registerFlows, ["alerts"], ["alerts"])).toEqual([]);
  });

  it("parse names each of the five it makes no use of, and none by default", async () => {
    const written = await notes(registerParse, ["parse"], ["parse", ...GIVEN_COMMON]);
    expect(written).toHaveLength(5);
    for (const [i, option] of ["--cluster", "--internal-cidr", "--store", "--table", "--region"].entries()) {
      expect(written[i]).toMatch(new RegExp(`^note: ${option} has no effect on parse: \\S.*\\n$`));
    }
    expect(await notes(registerParse, ["parse"], ["parse", "--year", "2026"])).toEqual([]);
  });

  it("panic names --internal-cidr, --store beside --table, and both with --api (its stack audits into its own table)", async () => {
    const apply = ["panic", "apply", "--reason", "INC-1"];
    const direct = await notes(registerPanic, ["panic", "apply"], [...apply, "--direct", ...GIVEN_COMMON]);
    expect(direct).toEqual([
      expect.stringMatching(/^note: --internal-cidr has no effect on panic apply: \S/),
      expect.stringMatching(/^note: --store has no effect on panic apply: --table names its store/),
    ]);
    const api = await notes(
      registerPanic,
      ["panic", "status"],
      ["panic", "status", "--api", API, ...GIVEN_COMMON],
    );
    expect(api.map((n) => n.split(":")[1])).toEqual([
      " --internal-cidr has no effect on panic status",
      " --store has no effect on panic status",
      " --table has no effect on panic status",
    ]);
    // --direct audits into --table (else the embedded store under --store); --region and --cluster always count.
    const used = ["--direct", "--cluster", "prod", "--table", "t", "--region", "eu-central-1"];
    expect(await notes(registerPanic, ["panic", "revert"], ["panic", "revert", ...used])).toEqual([]);
    expect(await notes(registerPanic, ["panic", "apply"], [...apply, "--api", API])).toEqual([]);
  });

  it("leaves parse's NDJSON untouched, and parse still runs", async () => {
    const plain = await runCli(["parse"], { input: `${LINE}\n` });
    const noted = await runCli(["parse", ...GIVEN_COMMON], { input: `${LINE}\n` });
    expect(noted.code).toBe(0);
    expect(noted.stdout).toBe(plain.stdout);
    expect(noted.stdout).toContain('"dstPort":5432');
    expect(noted.stderr.match(/^note: --[a-z-]+ has no effect on parse: /gm)).toHaveLength(5);
    expect(noted.stderr).toContain("calico-flows parse: 1 lines, 1 records");
  });
});

describe("replay --quiet", () => {
  it("lists no malformed line, and its summary says how many and shows the first", async () => {
    const bad = [LINE.replace("SRC=192.168.22.247", "SRC=not-an-ip"), LINE.slice(0, LINE.indexOf("PROTO="))];
    const input = [LINE, "systemd[1]: Started Session 42.", bad[0], LINE, bad[1]].join("\n");
    const scanner = createScanner();
    const reason = (line: string) => {
      const outcome = scanner.scan(line);
      if (outcome?.kind !== "error") throw new Error(`not malformed: ${line}`);
      return outcome.reason;
    };
    const run = await runCli(["replay", "-", "--store", join(dir, "quiet"), "--quiet"], {
      input,
      env: { KUBECONFIG: "", HOME: dir },
    });
    expect(run.code).toBe(0);
    expect(run.stderr).not.toMatch(/^line \d+:/m);
    expect(run.stderr).toMatch(/^replayed 5 lines: 2 calico records, 2 malformed, /m);
    expect(run.stderr).toContain(
      `note: 2 malformed lines are not listed (--quiet); the first is line 3: ${reason(bad[0] as string)}\n`,
    );
    expect(reason(bad[1] as string)).not.toBe(reason(bad[0] as string));
  });
});

describe("parse refuses compressed input", () => {
  // `xz -c` and `bzip2 -c` of "Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: IN=eth0\n": xz keeps a
  // text this short as it is, calico-packet and all, behind its header.
  const XZ =
    "/Td6WFoAAATm1rRGAgAhARYAAAB0L+WjAQA+QXByIDE5IDA0OjUyOjE5IGlwLTE5Mi0xNjgtNzQtNSBrZXJuZWw6IGNhbGljby1wYWNrZXQ6IElOPWV0aDAKAAANviDS0pxCwQABVz+FUxpjH7bzfQEAAAAABFla";
  const BZIP2 =
    "QlpoOTFBWSZTWcU85rsAABHdgAAQQAJ38iAhKm3UACAASIo9ED0nk1GjE2UKAAAADSEmMBLhpI1uTzISJTjpMVHJ2WdaJWl4Xw7hhE2BYM8ZtggofxdyRThQkMU85rs=";

  it.each([
    ["zstd", zstdCompressSync(`${LINE}\n${LINE}\n`), "zstd -dc"],
    ["xz", Buffer.from(XZ, "base64"), "xz -dc"],
    ["bzip2", Buffer.from(BZIP2, "base64"), "bzip2 -dc"],
  ])("refuses %s with the command that decompresses it", async (format, bytes, tool) => {
    // In one chunk, and as a pipe may write it: its magic a byte at a time.
    const bytewise = [...bytes.subarray(0, 10)].map((b) => Buffer.from([b]));
    for (const chunks of [[bytes], [...bytewise, bytes.subarray(10)]]) {
      const malformed: number[] = [];
      const parsed = parseStream(Readable.from(chunks), {
        encoder: new NdjsonEncoder(),
        write: () => {},
        onMalformed: (line) => malformed.push(line),
      });
      await expect(parsed).rejects.toThrow(
        `it is ${format}-compressed: decompress it (${tool} FILE | calico-flows parse)`,
      );
      expect(malformed).toEqual([]);
    }
  });
});
