// The CLI's tables show log text as it is, and nothing in it acts on the terminal: every cell is escaped in
// `table()` (cli/format.ts), whichever table it belongs to.
import { describe, expect, it } from "vitest";
import { flowsTable, table } from "../../cli/format.ts";
import { escapeControls } from "../../functions/core/parse.ts";
import { flow, pod, unknown } from "../core/alert-fixtures.ts";

/** What a terminal acts on: controls (C0, DEL, C1), separators, bidi overrides and isolates, lone surrogates. */
const UNSAFE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/u;
/** A table's rows, each checked for UNSAFE (the line feeds between them aside). */
const rowsOf = (shown: string) => shown.split("\n");

describe("escapeControls", () => {
  it("writes what a terminal acts on as \\u escapes, and leaves the rest as it is", () => {
    expect(escapeControls("ip-1\u001b]0;x\u0007\u001b[2J\u009b8m\u007f")).toBe(
      "ip-1\\u001b]0;x\\u0007\\u001b[2J\\u009b8m\\u007f",
    );
    expect(escapeControls("a\nb\tc\u2028d\u202ee\u2066f\u2069g")).toBe(
      "a\\u000ab\\u0009c\\u2028d\\u202ee\\u2066f\\u2069g",
    );
    expect(escapeControls("lone\ud800 pair🙂 trail\udc00")).toBe("lone\\ud800 pair🙂 trail\\udc00");
    for (const plain of ["ip-192-168-74-5", "nœud-é", "customer-a/deployment/web", "8012/TCP", ""]) {
      expect(escapeControls(plain)).toBe(plain);
    }
  });
});

describe("table", () => {
  it("escapes every cell and aligns the columns on what is shown", () => {
    const shown = table(
      ["A", "B", "C"],
      [
        ["x\u001b[2J", "\u202eyes", "last\ncell"],
        ["plain", "ok", "z"],
      ],
    );
    for (const row of rowsOf(shown)) expect(row).not.toMatch(UNSAFE);
    expect(rowsOf(shown)).toEqual([
      "A           B          C",
      "x\\u001b[2J  \\u202eyes  last\\u000acell",
      "plain       ok         z",
    ]);
  });

  it("shows a flow's reporter, protocol and policy escaped", () => {
    const f = flow(pod("192.168.22.247", "customer-a", "web-1", "web"), unknown("192.168.94.122"), {
      reporter: "ip-1\u001b]0;all clear\u0007\u202e",
      protocol: "TCP\u009b8m",
      policy: { tier: "default", kind: "gnp", name: "deny\u001b[8m", namespace: null },
    });
    const shown = flowsTable([f]);
    expect(rowsOf(shown)).toHaveLength(2);
    for (const row of rowsOf(shown)) expect(row).not.toMatch(UNSAFE);
    expect(shown).toContain("ip-1\\u001b]0;all clear\\u0007\\u202e");
    expect(shown).toContain("TCP\\u009b8m");
    expect(shown).toContain("default: gnp deny\\u001b[8m");
  });
});
