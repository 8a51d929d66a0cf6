// The calico-packet line parser (DESIGN.md §3.1): the kernel's nf_log_syslog packet format, behind whichever
// syslog header or JSON record it reached CloudWatch in.
//
// A hand-written scanner: every line is read forwards a bounded number of times, with indexOf and byte reads and
// no regular expressions, so the cost is linear in the line's length. It never throws on input: a line is a record,
// a skip (not a calico-packet line, cheaply rejected), or an error with a precise reason.
import { formatIpv6Groups, readDottedQuad, readIpv6Groups } from "./ipv6.ts";
import { controlAt, jsonNumberEnd, jsonSpace } from "./json-bytes.ts";
import type { PacketRecord, ParseOutcome, PolicyRef } from "./types.ts";

export interface ParseOptions {
  /** Year of year-less (RFC 3164) syslog timestamps. Default: inferred from `now`. */
  year?: number;
  /** Epoch ms that year inference is relative to. Default: the clock when the line is parsed. */
  now?: number;
  /**
   * The log prefix to look for (Felix `logPrefix`). Default "calico-packet". With a `prefixFormat` that does not
   * start with it, the format's literal head is looked for instead (see `prefixFormat`).
   */
  prefix?: string;
  /**
   * Felix `logPrefix` carrying `%t %k %n %p` (tier, kind, name, namespace/name), e.g. "calico-packet %t %k %n":
   * says where those values sit in the logged prefix so that they are decoded into `policy`. It must start with
   * literal text: lines are found by `prefix` when the format starts with it, else by that text without the
   * separators that end it (`cfd` of `cfd-%k-%n`).
   */
  prefixFormat?: string;
}

export const DEFAULT_PREFIX = "calico-packet";

const DAY_MS = 86_400_000;
/** Longest stretch from the prefix to `IN=` that is still taken as a prefix (nftables allows 127 characters). */
const MAX_PREFIX_REGION = 256;
/** What iptables' LOG target keeps of a prefix, Felix's ": " included (nftables keeps 127). */
const IPTABLES_PREFIX_LENGTH = 29;
/** Earliest and latest instants `Date#toISOString` prints as a four-digit year: what a time field may name. */
const MIN_MS = -62_167_219_200_000;
const MAX_MS = 253_402_300_799_999;
/**
 * Earliest and latest times a line may carry: a week inside those. The store and the alerts write ISO text of times
 * a few alert windows (24 h at most) either side of a line's (tally and alert windows, the e-mail's `--since` and
 * `--until`); past 9999 that text is "+010000-…", which sorts before "9999-…" (DynamoDB refused the tallies' Query
 * and the whole batch failed) and which no `--until` takes. Such a line is malformed instead.
 */
const EARLIEST_LINE_MS = MIN_MS + 7 * DAY_MS;
const LATEST_LINE_MS = MAX_MS - 7 * DAY_MS;
/**
 * Longest PROTO= value: nf_log_syslog prints a protocol's name (TCP, UDPLITE, ICMPv6, …) or its number, and nothing
 * longer than 7 characters; 16 leaves room for a name a newer kernel adds.
 */
const MAX_PROTOCOL_LENGTH = 16;
/** Longest host name that names a node: a DNS name's 253 characters (a Kubernetes node name is one). */
const MAX_HOST_LENGTH = 253;
/** Longest `<pod>/<container>` of `kubectl logs --prefix`: a pod's name (253 characters), "/", a container's (63). */
const MAX_KUBECTL_SOURCE = 253 + 1 + 63;

/** Lines up to this long are scanned in a reused buffer; longer ones get a buffer of their own. */
const SCRATCH_BYTES = 1 << 16;
/** Zeros after the text: the scanner looks at most this far past a position it has checked. */
const SENTINEL_BYTES = 64;

/** "000Z" to "999Z": the end of an ISO instant. */
const MILLIS = Array.from({ length: 1000 }, (_, n) => `${String(n).padStart(3, "0")}Z`);

const SKIP: ParseOutcome = Object.freeze({ kind: "skip" });

/**
 * What a scan found on a line that is a record, before any of it is materialised: text values as [start, end)
 * in `text` (start -1: the string beside it, often null), numbers with -1 for null. One per parser, overwritten
 * by every line: parsing is synchronous.
 */
interface Fields {
  text: string;
  /** `text` as bytes (see LineParser#fill). */
  b: Uint8Array;
  /** `b` as a DataView, when there is one (see scanWithin). */
  view: DataView | null;
  time: string | null;
  nodeS: number;
  nodeE: number;
  node: string | null;
  prefix: string;
  inS: number;
  inE: number;
  outS: number;
  outE: number;
  macS: number;
  macE: number;
  mac: string | null;
  srcS: number;
  srcE: number;
  /** The IPv4 source's value as an unsigned 32-bit number (-1 for IPv6): a dotted quad and its value match. */
  srcV4: number;
  src: string | null;
  dstS: number;
  dstE: number;
  dstV4: number;
  dst: string | null;
  ipVersion: 4 | 6;
  length: number;
  ttl: number;
  protocol: string;
  srcPort: number;
  dstPort: number;
  /** Bits of TCP_FLAG_NAMES; 0 unless TCP. */
  flags: number;
  icmpType: number;
  icmpCode: number;
}

/**
 * A scan's answer: an outcome, or null when the parser is encoding and has left the record's values in `fields`.
 */
export type Scan = ParseOutcome | null;

/**
 * The lines of a text not read yet (LineParser#scanMore): a log event's, or a JSON record's message, holding a line
 * break. `depth` -1: its lines are read as `scan` reads a line; else as `parseMessage` reads a message at that
 * depth, with the record's host and time.
 */
interface LinesLeft {
  text: string;
  /** Where the next line starts. */
  at: number;
  depth: number;
  host: string | null;
  ms: number;
}

function fail(reason: string): ParseOutcome {
  return { kind: "error", reason };
}

/** The reason for a line whose time is outside EARLIEST_LINE_MS to LATEST_LINE_MS. */
function outsideLineTimes(ms: number): string {
  const limit = new Date(ms < EARLIEST_LINE_MS ? EARLIEST_LINE_MS : LATEST_LINE_MS).toISOString();
  return `the time ${new Date(ms).toISOString()} is ${ms < EARLIEST_LINE_MS ? "before" : "after"} ${limit}: the windows around it would leave the years 0000 to 9999`;
}

/**
 * What a terminal or a reader acts on rather than shows: C0, DEL and C1 controls (ESC starts a terminal's control
 * sequences, U+009B is CSI on its own), line and paragraph separators, bidirectional overrides and isolates (they
 * reorder the text after them: CVE-2021-42574), and lone surrogates (not text: no UTF-8 encodes them).
 */
const UNSAFE_TEXT = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/gu;

/**
 * `text` with what UNSAFE_TEXT matches written as `\u001b`-style escapes: log text shown to an operator (error
 * reasons, the CLI's tables) reads as it is and changes nothing on their screen.
 */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_TEXT, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Quotes a piece of input for an error message, cut short so that a 1 MB line does not make a 1 MB reason, with
 * nothing a terminal acts on (JSON escapes C0 controls and lone surrogates, escapeControls the rest).
 */
function quote(text: string, start: number, end: number): string {
  return escapeControls(
    JSON.stringify(end - start > 40 ? `${text.slice(start, start + 40)}…` : text.slice(start, end)),
  );
}

/**
 * Whether `text[start, end)`, a host name from a line or a JSON record, names a node: at most MAX_HOST_LENGTH
 * characters, no control character (C0, DEL, C1) and no bidirectional override or isolate (which no DNS or
 * Kubernetes name holds, and which would reorder the table rows and e-mail lines the reporter is shown on). Any
 * other is taken as absent, so that the line's log stream names its node
 * (as for `localhost`) and the packet is still counted and alerted: the host is what a relay added, the packet
 * what the kernel saw, and refusing the line would hide a denial behind a relay's bad field. Taken whole, such a
 * host would put control sequences on terminals and e-mails, or kilobytes into every flow and alert of the node.
 */
function isNodeName(text: string, start: number, end: number): boolean {
  if (end - start > MAX_HOST_LENGTH) return false;
  for (let k = start; k < end; k++) {
    const c = text.charCodeAt(k);
    if (c < 32 || (c >= 127 && c < 160) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Keys of the kernel's KEY=value tokens, packed into one small integer (length and first four characters) so that
// a token is dispatched with one switch and without allocating its key.

function packKey(b: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n < 2 || n > 9) return -1;
  let k = n;
  const stop = n < 4 ? end : start + 4;
  for (let i = start; i < stop; i++) {
    const c = b[i] as number;
    if (c > 127) return -1;
    k = (k << 7) | c;
  }
  return k;
}

function key(name: string): number {
  return packKey(
    Uint8Array.from(name, (c) => c.charCodeAt(0)),
    0,
    name.length,
  );
}

const K_IN = key("IN");
const K_OUT = key("OUT");
const K_MAC = key("MAC");
const K_MACSRC = key("MACSRC");
const K_MACDST = key("MACDST");
const K_MACPROTO = key("MACPROTO");
const K_SRC = key("SRC");
const K_DST = key("DST");
const K_LEN = key("LEN");
const K_TTL = key("TTL");
const K_HOPLIMIT = key("HOPLIMIT");
const K_PROTO = key("PROTO");
const K_SPT = key("SPT");
const K_DPT = key("DPT");
const K_RES = key("RES");
const K_URGP = key("URGP");
const K_TYPE = key("TYPE");
const K_CODE = key("CODE");

/** Bit per TCP flag, in the kernel's printing order; AE is printed by kernels with accurate ECN. */
const TCP_FLAG_NAMES = ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"] as const;
const SYN_ONLY = 1 << TCP_FLAG_NAMES.indexOf("SYN");
/** The flag lists most records carry, shared by them (records are read, not changed). */
const NO_FLAGS: readonly string[] = Object.freeze([]);
const SYN_FLAGS: readonly string[] = Object.freeze(["SYN"]);

/** The names of the flags set in `flags` (bits of TCP_FLAG_NAMES). */
export function flagNames(flags: number): string[] {
  const names: string[] = [];
  for (let f = 0; f < TCP_FLAG_NAMES.length; f++) {
    if (flags & (1 << f)) names.push(TCP_FLAG_NAMES[f] as string);
  }
  return names;
}

/** The bits of TCP flag names (flagNames' inverse), or -1 when one of them is not a flag the kernel prints. */
export function flagBits(names: readonly string[]): number {
  let bits = 0;
  for (const name of names) {
    const f = (TCP_FLAG_NAMES as readonly string[]).indexOf(name);
    if (f < 0) return -1;
    bits |= 1 << f;
  }
  return bits;
}

/** Index in TCP_FLAG_NAMES of the bare token `text[start, end)`, or -1. */
function tcpFlag(b: Uint8Array, start: number, end: number): number {
  const n = end - start;
  const x = b[start] as number;
  if (n === 2) return x === 65 && b[start + 1] === 69 ? 0 : -1;
  if (n !== 3) return -1;
  const y = b[start + 1] as number;
  const z = b[start + 2] as number;
  switch (x) {
    case 67: // C
      return y === 87 && z === 82 ? 1 : -1;
    case 69: // E
      return y === 67 && z === 69 ? 2 : -1;
    case 85: // U
      return y === 82 && z === 71 ? 3 : -1;
    case 65: // A
      return y === 67 && z === 75 ? 4 : -1;
    case 80: // P
      return y === 83 && z === 72 ? 5 : -1;
    case 82: // R
      return y === 83 && z === 84 ? 6 : -1;
    case 83: // S
      return y === 89 && z === 78 ? 7 : -1;
    case 70: // F
      return y === 73 && z === 78 ? 8 : -1;
    default:
      return -1;
  }
}

/** Decimal `%u` in `text[start, end)`, or -1 when it is not one or exceeds `max`. */
function readUint(b: Uint8Array, start: number, end: number, max: number): number {
  if (start >= end || end - start > 10) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = (b[i] as number) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v <= max ? v : -1;
}

/** True when `b[start, end)` is a dotted quad as `%pI4` prints it (no leading zeros). */
function isIpv4(b: Uint8Array, start: number, end: number): boolean {
  return readDottedQuad(b, start, end) >= 0;
}

/**
 * Index just past the `]` matching the `[` at `start` (the kernel nests one level: `INCOMPLETE [8 bytes]`
 * inside a quoted packet), or `end`. Jumps with indexOf rather than visiting each character.
 */
function skipBracketed(text: string, start: number, end: number): number {
  let depth = 1;
  // The next "[" and "]": each search starts past the last one found, so the text is read once, however many
  // brackets it holds (searching for "]" again from every "[" read a line of them in quadratic time).
  let open = text.indexOf("[", start + 1);
  let close = text.indexOf("]", start + 1);
  for (;;) {
    if (close < 0 || close >= end) return end;
    if (open >= 0 && open < close) {
      depth++;
      open = text.indexOf("[", open + 1);
    } else {
      if (--depth === 0) return close + 1;
      close = text.indexOf("]", close + 1);
    }
  }
}

/** Whether b[start, end) starts with a token of capitals and "=" (`OUT=`, `SRC=`): how packet fields look. */
function startsWithKey(b: Uint8Array, start: number, end: number): boolean {
  let k = start;
  while (k < end && k - start < 10 && (b[k] as number) >= 65 && (b[k] as number) <= 90) k++;
  return k > start && k < end && b[k] === 61;
}

/**
 * How an IPv6 line without PROTO= ends: 1 after `FLOWLBL=<digits>` (the fixed header), 2 after a fragment
 * header's `ID:<8 hex digits>`, 0 otherwise.
 */
function ipv6HeaderEnd(b: Uint8Array, start: number, end: number): number {
  let e = end;
  while (e > start && b[e - 1] === 32) e--;
  let t = e;
  while (t > start && b[t - 1] !== 32) t--;
  if (e - t > 8 && has(b, t, "FLOWLBL=") && readUint(b, t + 8, e, 0xfffff) >= 0) return 1;
  if (e - t !== 11 || !has(b, t, "ID:")) return 0;
  for (let k = t + 3; k < e; k++) {
    const c = (b[k] as number) | 32;
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return 0;
  }
  return 2;
}

/**
 * Whether nf_log_syslog prints more after `CODE=%u ` for every ICMP (or ICMPv6) message of this type: an echo's
 * ID= SEQ=, a redirect's GATEWAY=, a parameter problem's PARAMETER= or POINTER=, an error's quoted packet, or
 * INCOMPLETE when the message is shorter than its type needs. A line of such a type that ends at CODE= was cut, maybe
 * inside the code's digits.
 */
function printsAfterCode(v6: boolean, type: number): boolean {
  if (v6) return (type >= 1 && type <= 4) || type === 128 || type === 129;
  return type === 0 || type === 8 || type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** Where the last scanDigits or scanIpv4 stopped. Parsing is synchronous, so one variable serves every call. */
let scanned = 0;
/** The address the last successful scanIpv4 read, as an unsigned 32-bit number. */
let scannedIpv4 = 0;

/** A decimal number at `start` up to the first non-digit (left in `scanned`); -1 for none or over 10 digits. */
function scanDigits(b: Uint8Array, start: number): number {
  let v = 0;
  let i = start;
  for (;;) {
    const d = (b[i] as number) - 48;
    if (!(d >= 0 && d <= 9)) break;
    v = v * 10 + d;
    i++;
  }
  scanned = i;
  return i === start || i - start > 10 ? -1 : v;
}

/** A dotted quad as `%pI4` prints it at `start`; its end is left in `scanned`, its value in `scannedIpv4`. */
function scanIpv4(b: Uint8Array, start: number): boolean {
  let i = start;
  let value = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (b[i] !== 46) return false;
      i++;
    }
    // One to three digits, no leading zero, at most 255: the digits after the first are read one by one.
    let octet = (b[i] as number) - 48;
    if (!(octet >= 0 && octet <= 9)) return false;
    let d = (b[++i] as number) - 48;
    if (d >= 0 && d <= 9) {
      if (octet === 0) return false;
      octet = octet * 10 + d;
      d = (b[++i] as number) - 48;
      if (d >= 0 && d <= 9) {
        octet = octet * 10 + d;
        d = (b[++i] as number) - 48;
        if ((d >= 0 && d <= 9) || octet > 255) return false;
      }
    }
    value = value * 256 + octet;
  }
  scanned = i;
  scannedIpv4 = value;
  return true;
}

// Key tests (letters, then "=") at a position, spelled out for the keys of the fast path.

function isKey2(b: Uint8Array, at: number, c0: number, c1: number): boolean {
  return b[at] === c0 && b[at + 1] === c1 && b[at + 2] === 61;
}

function isKey3(b: Uint8Array, at: number, c0: number, c1: number, c2: number): boolean {
  return b[at] === c0 && b[at + 1] === c1 && b[at + 2] === c2 && b[at + 3] === 61;
}

function isKey4(b: Uint8Array, at: number, c0: number, c1: number, c2: number, c3: number): boolean {
  return b[at] === c0 && b[at + 1] === c1 && b[at + 2] === c2 && b[at + 3] === c3 && b[at + 4] === 61;
}

/** PROTO= */
function isProtoKey(b: Uint8Array, at: number): boolean {
  return (
    b[at] === 80 &&
    b[at + 1] === 82 &&
    b[at + 2] === 79 &&
    b[at + 3] === 84 &&
    b[at + 4] === 79 &&
    b[at + 5] === 61
  );
}

/** WINDOW= */
function isWindowKey(b: Uint8Array, at: number): boolean {
  return (
    b[at] === 87 &&
    b[at + 1] === 73 &&
    b[at + 2] === 78 &&
    b[at + 3] === 68 &&
    b[at + 4] === 79 &&
    b[at + 5] === 87 &&
    b[at + 6] === 61
  );
}

/** End of the space-delimited token starting at `start`. */
function tokenEnd(b: Uint8Array, start: number, end: number): number {
  let j = start;
  while (j < end && b[j] !== 32) j++;
  return j;
}

/**
 * End of a `KEY=0x%02X` token at `start` that is `width` characters long as the kernel prints it; the general
 * token end otherwise.
 */
function hexTokenEnd(b: Uint8Array, start: number, width: number, end: number): number {
  const j = start + width;
  return b[j] === 32 && b[j - 1] !== 32 && b[j - 2] !== 32 && b[j - 3] !== 32 && b[j - 4] !== 32 && j <= end
    ? j
    : tokenEnd(b, start, end);
}

/** Whether an RFC 5424 header (`<PRI>` and a version) starts at `start`. */
function isRfc5424(b: Uint8Array, start: number): boolean {
  if (b[start] !== 60) return false;
  let j = start + 1;
  while (j - start <= 4 && (b[j] as number) >= 48 && (b[j] as number) <= 57) j++;
  const v = b[j + 1] as number;
  return j > start + 1 && b[j] === 62 && v >= 49 && v <= 57 && b[j + 2] === 32;
}

/**
 * Index just past the RFC 5424 SD-ELEMENT at `start` (`[id name="value"]`, with `\]` and `\"` escaped in values), or
 * `end`.
 */
function sdElementEnd(b: Uint8Array, start: number, end: number): number {
  let quoted = false;
  for (let k = start + 1; k < end; k++) {
    const c = b[k] as number;
    if (c === 92) k++;
    else if (c === 34) quoted = !quoted;
    else if (c === 93 && !quoted) return k + 1;
  }
  return end;
}

/**
 * Where the message starts in a syslog line whose header, from `start`, readHeader read up to `at` (its host, or
 * its timestamp when it has none): past RFC 5424's APP-NAME, PROCID, MSGID and structured data, or past RFC 3164's
 * tag (the word ending in ":", `kernel:` or `calico-packet[812]:`); `at` when there is neither.
 */
function messageStart(b: Uint8Array, start: number, at: number, end: number): number {
  if (b[at] !== 32) return at;
  let i = at + 1;
  if (!isRfc5424(b, start)) {
    const j = tokenEnd(b, i, end);
    return j > i && b[j - 1] === 58 ? j : at;
  }
  for (let field = 0; field < 3; field++) {
    i = tokenEnd(b, i, end);
    if (b[i] !== 32) return i;
    i++;
  }
  if (b[i] === 45) return i + 1;
  while (i < end && b[i] === 91) i = sdElementEnd(b, i, end);
  return i;
}

/** Where the logged prefix that ends before the fields at `fields` ends without Felix's ": ", never before `min`. */
function loggedPrefixEnd(b: Uint8Array, min: number, fields: number): number {
  let i = fields;
  while (i > min && b[i - 1] === 32) i--;
  if (i > min && b[i - 1] === 58) i--;
  while (i > min && b[i - 1] === 32) i--;
  return i;
}

/** Whether a token starting with byte `c` may be a syslog header: `<PRI>`, an ISO stamp, or a month's name. */
function mayStartHeader(c: number): boolean {
  return c === 60 || (c >= 48 && c <= 57) || (c >= 65 && c <= 90);
}

/**
 * Where the line starts after the `[pod/<pod>/<container>] ` that `kubectl logs --prefix` puts before it, or
 * `start` when it has none there. The names hold no space, bracket or slash.
 */
function kubectlPrefixEnd(b: Uint8Array, start: number, end: number): number {
  if (!has(b, start, "[pod/")) return start;
  const from = start + 5;
  const last = Math.min(end, from + MAX_KUBECTL_SOURCE);
  let slash = -1;
  let i = from;
  for (; i < last; i++) {
    const c = b[i] as number;
    if (c === 93) break;
    if (c === 47) {
      if (slash >= 0) return start;
      slash = i;
    } else if (c <= 32 || c >= 127 || c === 91) {
      return start;
    }
  }
  return slash > from && i > slash + 1 && i + 1 < end && b[i] === 93 && b[i + 1] === 32 ? i + 2 : start;
}

/** True when `literal` (ASCII) is at `at`. */
function has(b: Uint8Array, at: number, literal: string): boolean {
  for (let k = 0; k < literal.length; k++) {
    if (b[at + k] !== literal.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * The PROTO= value; the common names are shared strings rather than a fresh copy per line. nf_log_syslog names only
 * the protocols whose headers it prints (TCP, UDP, UDPLITE, ICMP, ICMPv6, AH, ESP) and prints any other's number:
 * SCTP's, 132, is named as DESIGN.md §3.1 lists it. Null when it is not 1 to MAX_PROTOCOL_LENGTH ASCII letters and
 * digits: nf_log_syslog prints only a name or a number there, and any other value (line breaks, control characters,
 * kilobytes) would reach flows, alerts, e-mails and terminals.
 */
function protocolName(text: string, b: Uint8Array, start: number, end: number): string | null {
  switch (end - start) {
    case 3:
      if (has(b, start, "TCP")) return "TCP";
      if (has(b, start, "UDP")) return "UDP";
      if (has(b, start, "132")) return "SCTP";
      break;
    case 4:
      if (has(b, start, "ICMP")) return "ICMP";
      break;
    case 6:
      if (has(b, start, "ICMPv6")) return "ICMPv6";
      break;
  }
  if (end - start > MAX_PROTOCOL_LENGTH || end === start) return null;
  // (A character outside ASCII is the byte 0x80 here: refused too.)
  for (let k = start; k < end; k++) {
    const c = b[k] as number;
    const letter = c | 32;
    if (!((letter >= 97 && letter <= 122) || (c >= 48 && c <= 57))) return null;
  }
  return text.slice(start, end);
}

// ---------------------------------------------------------------------------------------------------------------
// Time

/** Days from 1970-01-01 to the proleptic Gregorian date (month 1-12); exact for every year, unlike Date.UTC. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Month 1-12 of a three-letter English abbreviation at `i`, or 0. */
function monthAt(b: Uint8Array, i: number): number {
  const k = ((b[i] as number) << 16) | ((b[i + 1] as number) << 8) | (b[i + 2] as number);
  switch (k) {
    case 0x4a616e:
      return 1; // Jan
    case 0x466562:
      return 2; // Feb
    case 0x4d6172:
      return 3; // Mar
    case 0x417072:
      return 4; // Apr
    case 0x4d6179:
      return 5; // May
    case 0x4a756e:
      return 6; // Jun
    case 0x4a756c:
      return 7; // Jul
    case 0x417567:
      return 8; // Aug
    case 0x536570:
      return 9; // Sep
    case 0x4f6374:
      return 10; // Oct
    case 0x4e6f76:
      return 11; // Nov
    case 0x446563:
      return 12; // Dec
    default:
      return 0;
  }
}

function digits2(b: Uint8Array, i: number): number {
  const hi = (b[i] as number) - 48;
  const lo = (b[i + 1] as number) - 48;
  return hi >= 0 && hi <= 9 && lo >= 0 && lo <= 9 ? hi * 10 + lo : -1;
}

/**
 * Result of reading a timestamp: where it ended, and either the instant (ISO forms) or the year-less fields
 * (RFC 3164). Reused between lines: parsing is synchronous.
 */
interface Stamp {
  end: number;
  ms: number;
  month: number;
  day: number;
  /** Milliseconds into the day. */
  dayMs: number;
}

/**
 * Reads `hh:mm:ss[.fraction]` at `i` into `stamp.dayMs`; returns the index after it or -1.
 * Fractions finer than a millisecond are dropped (the record's time has millisecond precision).
 */
function readClock(b: Uint8Array, i: number, end: number, stamp: Stamp): number {
  if (i + 8 > end || b[i + 2] !== 58 || b[i + 5] !== 58) return -1;
  const h = digits2(b, i);
  const m = digits2(b, i + 3);
  const s = digits2(b, i + 6);
  if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60) return -1;
  let j = i + 8;
  let fraction = 0;
  if (j < end && (b[j] === 46 || b[j] === 44)) {
    j++;
    const start = j;
    let scale = 100;
    while (j < end) {
      const d = (b[j] as number) - 48;
      if (d < 0 || d > 9) break;
      // Digits after the third add nothing (scale 0): summing their tenths of a millisecond in floating point
      // could carry into the next second.
      fraction += d * scale;
      scale = (scale / 10) | 0;
      j++;
    }
    if (j === start) return -1;
  }
  stamp.dayMs = ((h * 60 + m) * 60 + s) * 1000 + fraction;
  return j;
}

/**
 * ISO-8601 / RFC 3339 / RFC 5424 timestamp at `i` (`2024-04-19T04:52:19.123456+02:00`, `Z`, or no offset, which
 * is taken as UTC). Sets `stamp.ms` and `stamp.end`; false when there is none.
 */
function readIsoStamp(b: Uint8Array, i: number, end: number, stamp: Stamp): boolean {
  if (i + 19 > end || b[i + 4] !== 45 || b[i + 7] !== 45) return false;
  const sep = b[i + 10] as number;
  if (sep !== 84 && sep !== 116 && sep !== 32) return false;
  const hi = digits2(b, i);
  const lo = digits2(b, i + 2);
  const month = digits2(b, i + 5);
  const day = digits2(b, i + 8);
  if (hi < 0 || lo < 0 || month < 1 || month > 12 || day < 1) return false;
  const year = hi * 100 + lo;
  if (day > daysInMonth(year, month)) return false;
  let j = readClock(b, i + 11, end, stamp);
  if (j < 0) return false;
  let offsetMinutes = 0;
  if (j < end) {
    const c = b[j] as number;
    if (c === 90 || c === 122) {
      j++;
    } else if (c === 43 || c === 45) {
      const oh = digits2(b, j + 1);
      if (oh < 0 || oh > 23 || j + 3 > end) return false;
      let om = 0;
      if (b[j + 3] === 58) {
        om = digits2(b, j + 4);
        j += 6;
      } else {
        const m = j + 5 <= end ? digits2(b, j + 3) : -1;
        if (m >= 0) {
          om = m;
          j += 5;
        } else {
          j += 3;
        }
      }
      if (om < 0 || om > 59) return false;
      offsetMinutes = (oh * 60 + om) * (c === 45 ? -1 : 1);
    }
  }
  stamp.ms = daysFromCivil(year, month, day) * DAY_MS + stamp.dayMs - offsetMinutes * 60_000;
  stamp.end = j;
  return true;
}

/**
 * Whether `b[i…]` has the shape of an ISO timestamp (`dddd-dd-dd`, `T`, `t` or a space, `dd:`): one readIsoStamp
 * refused then names no instant (30 February, hour 25), which is an error rather than a line without a time.
 */
function isoShaped(b: Uint8Array, i: number, end: number): boolean {
  if (i + 14 > end || b[i + 4] !== 45 || b[i + 7] !== 45 || b[i + 13] !== 58) return false;
  const sep = b[i + 10] as number;
  return (
    (sep === 84 || sep === 116 || sep === 32) &&
    digits2(b, i) >= 0 &&
    digits2(b, i + 2) >= 0 &&
    digits2(b, i + 5) >= 0 &&
    digits2(b, i + 8) >= 0 &&
    digits2(b, i + 11) >= 0
  );
}

/** RFC 3164 timestamp at `i`: `Apr 19 04:52:19`, `Apr  9 04:52:19` (or `Apr 9`, `Apr 09`). */
function readSyslogStamp(b: Uint8Array, i: number, end: number, stamp: Stamp): boolean {
  if (i + 14 > end || b[i + 3] !== 32) return false;
  const month = monthAt(b, i);
  if (month === 0) return false;
  let j = i + 4;
  if (b[j] === 32) j++;
  let day = (b[j] as number) - 48;
  if (day < 0 || day > 9) return false;
  j++;
  const d2 = (b[j] as number) - 48;
  if (d2 >= 0 && d2 <= 9) {
    day = day * 10 + d2;
    j++;
  }
  if (day < 1 || day > 31 || b[j] !== 32) return false;
  const k = readClock(b, j + 1, end, stamp);
  if (k < 0) return false;
  stamp.month = month;
  stamp.day = day;
  stamp.end = k;
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Prefix formats: Felix expands `%t %k %n %p` in logPrefix per policy and appends ": ".

export type FormatPart = { literal: string; spec: "" } | { literal: ""; spec: "t" | "k" | "n" | "p" };

function compileFormat(format: string): FormatPart[] {
  const parts: FormatPart[] = [];
  let literal = "";
  for (let i = 0; i < format.length; i++) {
    const c = format[i] as string;
    const next = format[i + 1];
    if (c === "%" && (next === "t" || next === "k" || next === "n" || next === "p")) {
      if (literal !== "") parts.push({ literal, spec: "" });
      literal = "";
      parts.push({ literal: "", spec: next });
      i++;
    } else {
      literal += c;
    }
  }
  if (literal !== "") parts.push({ literal, spec: "" });
  return parts;
}

/** Felix's short names (`%k`) of the namespaced policy kinds, whose `%p` is `namespace/name`. */
const NAMESPACED_KINDS: ReadonlySet<string> = new Set(["np", "knp", "snp", "sknp"]);
/** Every short name Felix writes for `%k`: global, namespaced, Kubernetes, cluster-wide Kubernetes, staged, profile. */
const POLICY_KINDS: ReadonlySet<string> = new Set(["gnp", "np", "knp", "kcnp", "sgnp", "snp", "sknp", "pro"]);

type Spec = "t" | "k" | "n" | "p";
type Values = [Spec, string][];

/**
 * The values of the format's specifiers in the whole prefix, split where the `%k` value is a kind Felix writes:
 * a separator that names may also hold (`-` in `calico-packet-%t-%k-%n`, and tiers and namespaces are DNS names)
 * has several places to split, and the closed set of kinds tells which is Felix's. Null when no split gives a
 * known kind (no `%k` in the format, a prefix cut short).
 */
function anchoredValues(parts: readonly FormatPart[], prefix: string): Values | null {
  if (!parts.some((part) => part.spec === "k")) return null;
  const match = (k: number, at: number): Values | null => {
    const part = parts[k];
    if (part === undefined) return at === prefix.length ? [] : null;
    if (part.spec === "")
      return prefix.startsWith(part.literal, at) ? match(k + 1, at + part.literal.length) : null;
    const next = parts[k + 1];
    // Every place the next literal occurs, or the end for a last specifier.
    const stops: number[] = [];
    if (next === undefined) stops.push(prefix.length);
    else if (next.spec === "") {
      for (let i = prefix.indexOf(next.literal, at + 1); i >= 0; i = prefix.indexOf(next.literal, i + 1))
        stops.push(i);
    }
    for (const stop of stops) {
      const value = prefix.slice(at, stop);
      if (part.spec === "k" && !POLICY_KINDS.has(value)) continue;
      const rest = match(k + 1, stop);
      if (rest !== null) return [[part.spec, value], ...rest];
    }
    return null;
  };
  return match(0, 0);
}

/**
 * The values of the format's specifiers, each running to the next literal of the format (or the end): a prefix that
 * iptables cut at 29 characters yields the values it still holds.
 */
function greedyValues(parts: readonly FormatPart[], prefix: string): Values {
  const values: Values = [];
  let at = 0;
  for (let k = 0; k < parts.length && at <= prefix.length; k++) {
    const part = parts[k] as FormatPart;
    if (part.spec === "") {
      if (!prefix.startsWith(part.literal, at)) break;
      at += part.literal.length;
      continue;
    }
    const next = parts[k + 1];
    let stop = prefix.length;
    if (next !== undefined && next.spec === "") {
      const i = prefix.indexOf(next.literal, at);
      if (i >= 0) stop = i;
    }
    if (stop > at) values.push([part.spec, prefix.slice(at, stop)]);
    at = stop;
  }
  return values;
}

/**
 * Tiers, kinds, names and namespaces as Felix writes them: Kubernetes names (lower case, digits, "-" and "."; the
 * end maybe cut by iptables). Anything else is a forged or foreign line's text, which alert e-mails would paste into
 * commands (a leading "-" is a kubectl option) or show reordered (a bidirectional control): no value.
 */
const KUBERNETES_NAME = /^[a-z0-9][a-z0-9.-]*$/;
const asName = (value: string): string | null => (KUBERNETES_NAME.test(value) ? value : null);

/**
 * Decodes the values of a prefix format from the logged prefix (anchoredValues, else greedyValues). A value that is
 * its specifier's own text (`%t`) was not expanded: a Felix that predates the specifiers logs LogPrefix as written
 * (nodes not yet upgraded), which names no policy.
 */
export function decodePolicy(parts: readonly FormatPart[], prefix: string): PolicyRef | null {
  const ref: PolicyRef = { tier: null, kind: null, name: null, namespace: null };
  let found = false;
  /** The `%n` value, and a `%p` value without "/". */
  let named: string | null = null;
  let unsplit: string | null = null;
  for (const [spec, value] of anchoredValues(parts, prefix) ?? greedyValues(parts, prefix)) {
    if (value === `%${spec}`) continue;
    found = true;
    if (spec === "t") ref.tier = asName(value);
    else if (spec === "k") ref.kind = asName(value);
    else if (spec === "n") {
      named ??= asName(value);
      ref.name ??= asName(value);
    } else {
      const slash = value.indexOf("/");
      if (slash < 0) {
        unsplit = asName(value);
        ref.name = unsplit;
      } else {
        ref.namespace = asName(value.slice(0, slash));
        ref.name = asName(value.slice(slash + 1));
      }
    }
  }
  // A namespaced policy's `%p` without its "/" was cut inside the namespace (iptables keeps 29 characters, and
  // `calico-packet default knp ` takes 26): what is left is the start of the namespace, not a name.
  if (unsplit !== null && ref.kind !== null && NAMESPACED_KINDS.has(ref.kind)) {
    ref.namespace = unsplit;
    ref.name = named;
  }
  return found ? ref : null;
}

/**
 * Whether Felix writes `prefix` for the format, its values read as decodePolicy reads them: a value for each specifier,
 * none holding a space (tiers, names and namespaces are DNS names), `%k` a kind Felix writes (or each as written, by a
 * Felix that predates them). A prefix `cut` by iptables holds the values it still has, the last maybe cut too.
 */
function formatWrites(parts: readonly FormatPart[], prefix: string, cut: boolean): boolean {
  const values = anchoredValues(parts, prefix) ?? greedyValues(parts, prefix);
  const whole = cut ? values.length - 1 : parts.filter((part) => part.spec !== "").length;
  if (values.length === 0 || values.length < whole) return false;
  return values.every(
    ([spec, value], i) =>
      !value.includes(" ") && (spec !== "k" || i >= whole || POLICY_KINDS.has(value) || value === "%k"),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// JSON wrappers

/**
 * Fields that hold the wrapped line: journald (Fluent Bit systemd), CloudWatch agent, Fluent Bit tail, kmsg, and
 * the OpenTelemetry collector's CloudWatch Logs exporter (`body`: the line, or journald's entry as an object).
 */
const MESSAGE_KEYS = ["MESSAGE", "message", "log", "msg", "body"] as const;
/**
 * Fields that name the node: journald (as Fluent Bit's systemd input writes `_HOSTNAME` with `Strip_Underscores`
 * or `Lowercase`), CloudWatch agent / Container Insights, Fluent Bit, kubernetes filter.
 */
const HOST_KEYS = ["_HOSTNAME", "HOSTNAME", "_hostname", "host", "hostname", "kubernetes.host"] as const;
/**
 * Time fields, most precise first: journald's µs (when the source wrote the entry, then when journald got it),
 * then the agents', then Fluent Bit's `json_date_key` (`date`, epoch seconds with a fraction by default).
 */
const TIME_KEYS = [
  "_SOURCE_REALTIME_TIMESTAMP",
  "__REALTIME_TIMESTAMP",
  "time",
  "timestamp",
  "@timestamp",
  "date",
] as const;

const utf8Decoder = new TextDecoder();
const utf8 = new TextEncoder();

/** journald exports a message that is not valid UTF-8 as an array of byte values. */
function asText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((b) => Number.isInteger(b) && b >= 0 && b < 256)
  ) {
    return utf8Decoder.decode(Uint8Array.from(value as number[]));
  }
  return null;
}

// The flat JSON reader (LineParser#parseFlatJson): value kinds, and a slot per key it looks for.
const JSON_STRING = 1;
const JSON_NUMBER = 2;
const JSON_LITERAL = 3;
const JSON_OTHER = 4;
/** A string whose only escape is a `\n` just before its closing quote; its end is that of the text before it. */
const JSON_STRING_NEWLINE = 5;
const SLOT_MESSAGE = 0;
const SLOT_HOST = SLOT_MESSAGE + MESSAGE_KEYS.length;
const SLOT_TIME = SLOT_HOST + HOST_KEYS.length;
const JSON_SLOTS = SLOT_TIME + TIME_KEYS.length;
const messageSlot = (key: (typeof MESSAGE_KEYS)[number]): number => SLOT_MESSAGE + MESSAGE_KEYS.indexOf(key);
const hostSlot = (key: (typeof HOST_KEYS)[number]): number => SLOT_HOST + HOST_KEYS.indexOf(key);
const timeSlot = (key: (typeof TIME_KEYS)[number]): number => SLOT_TIME + TIME_KEYS.indexOf(key);
const SLOT_MESSAGE_UPPER = messageSlot("MESSAGE");
const SLOT_MESSAGE_LOWER = messageSlot("message");
const SLOT_LOG = messageSlot("log");
const SLOT_MSG = messageSlot("msg");
const SLOT_BODY = messageSlot("body");
const SLOT_JOURNAL_HOSTNAME = hostSlot("_HOSTNAME");
const SLOT_HOSTNAME_UPPER = hostSlot("HOSTNAME");
const SLOT_JOURNAL_HOSTNAME_LOWER = hostSlot("_hostname");
const SLOT_HOST_KEY = hostSlot("host");
const SLOT_HOSTNAME = hostSlot("hostname");
const SLOT_KUBERNETES_HOST = hostSlot("kubernetes.host");
const SLOT_SOURCE_REALTIME = timeSlot("_SOURCE_REALTIME_TIMESTAMP");
const SLOT_REALTIME = timeSlot("__REALTIME_TIMESTAMP");
const SLOT_TIME_KEY = timeSlot("time");
const SLOT_TIMESTAMP = timeSlot("timestamp");
const SLOT_AT_TIMESTAMP = timeSlot("@timestamp");
const SLOT_DATE = timeSlot("date");

/** The slot of the key `b[start, end)`, or -1 for a key parseJson does not read. */
function jsonKeySlot(b: Uint8Array, start: number, end: number): number {
  switch (end - start) {
    case 3:
      return has(b, start, "log") ? SLOT_LOG : has(b, start, "msg") ? SLOT_MSG : -1;
    case 4:
      return has(b, start, "host")
        ? SLOT_HOST_KEY
        : has(b, start, "time")
          ? SLOT_TIME_KEY
          : has(b, start, "date")
            ? SLOT_DATE
            : has(b, start, "body")
              ? SLOT_BODY
              : -1;
    case 7:
      return has(b, start, "MESSAGE")
        ? SLOT_MESSAGE_UPPER
        : has(b, start, "message")
          ? SLOT_MESSAGE_LOWER
          : -1;
    case 8:
      return has(b, start, "hostname") ? SLOT_HOSTNAME : has(b, start, "HOSTNAME") ? SLOT_HOSTNAME_UPPER : -1;
    case 9:
      return has(b, start, "_HOSTNAME")
        ? SLOT_JOURNAL_HOSTNAME
        : has(b, start, "_hostname")
          ? SLOT_JOURNAL_HOSTNAME_LOWER
          : has(b, start, "timestamp")
            ? SLOT_TIMESTAMP
            : -1;
    case 10:
      return has(b, start, "@timestamp") ? SLOT_AT_TIMESTAMP : -1;
    case 15:
      return has(b, start, "kubernetes.host") ? SLOT_KUBERNETES_HOST : -1;
    case 20:
      return has(b, start, "__REALTIME_TIMESTAMP") ? SLOT_REALTIME : -1;
    case 26:
      return has(b, start, "_SOURCE_REALTIME_TIMESTAMP") ? SLOT_SOURCE_REALTIME : -1;
    default:
      return -1;
  }
}

/** Nesting parseFlatJson follows; anything deeper goes to JSON.parse. */
const MAX_JSON_DEPTH = 32;

/**
 * End of the JSON value at `i` in a text without escapes or control characters, or -1 when it is not one (or
 * nests too deep). For an object, its last `"host"` member holding a string is left in `host` (start, end), when
 * given.
 */
function jsonValueEnd(
  line: string,
  b: Uint8Array,
  i: number,
  end: number,
  depth: number,
  host: Int32Array | null,
): number {
  const c = b[i] as number;
  if (c === 34) {
    const close = quoteAt(line, i + 1, end);
    return close < 0 ? -1 : close + 1;
  }
  if (c === 45 || (c >= 48 && c <= 57)) return jsonNumberEnd(b, i);
  if (has(b, i, "true") || has(b, i, "null")) return i + 4;
  if (has(b, i, "false")) return i + 5;
  if ((c !== 123 && c !== 91) || depth >= MAX_JSON_DEPTH) return -1;
  const object = c === 123;
  const close = object ? 125 : 93;
  i = jsonSpace(b, i + 1);
  if (b[i] === close) return i + 1;
  for (;;) {
    if (object) {
      if (b[i] !== 34) return -1;
      const keyEnd = quoteAt(line, i + 1, end);
      if (keyEnd < 0) return -1;
      const isHost = host !== null && keyEnd - i === 5 && has(b, i + 1, "host");
      i = jsonSpace(b, keyEnd + 1);
      if (b[i] !== 58) return -1;
      i = jsonSpace(b, i + 1);
      const valueEnd = jsonValueEnd(line, b, i, end, depth + 1, null);
      if (valueEnd < 0) return -1;
      if (isHost) {
        const text = b[i] === 34;
        (host as Int32Array)[0] = text ? i + 1 : -1;
        (host as Int32Array)[1] = text ? valueEnd - 1 : -1;
      }
      i = valueEnd;
    } else {
      i = jsonValueEnd(line, b, i, end, depth + 1, null);
      if (i < 0) return -1;
    }
    i = jsonSpace(b, i);
    if (b[i] === 44) {
      i = jsonSpace(b, i + 1);
      continue;
    }
    return b[i] === close ? i + 1 : -1;
  }
}

/** The first quote in `text[from, end)`, or -1. */
function quoteAt(text: string, from: number, end: number): number {
  const at = text.indexOf('"', from);
  return at < end ? at : -1;
}

/**
 * Whether `text[from, end)` holds an array as the value of a key parseJson takes a message from (journald's bytes
 * are one; `journalctl -o json` spaces them as `"MESSAGE" : [`). Each "[" is found by `next`, or by indexOf.
 */
function hasArrayMessage(text: string, from: number, end: number, next: NextIndex | null): boolean {
  for (let at = from; ; at++) {
    at = next === null ? text.indexOf("[", at) : next.at(text, at);
    if (at < 0 || at >= end) return false;
    // Back over spaces, ":" and spaces to the quote that ends the key.
    let i = at - 1;
    while (i > from && isJsonSpace(text.charCodeAt(i))) i--;
    if (text.charCodeAt(i) !== 58) continue;
    i--;
    while (i > from && isJsonSpace(text.charCodeAt(i))) i--;
    if (text.charCodeAt(i) !== 34) continue;
    for (const key of MESSAGE_KEYS) {
      const open = i - key.length - 1;
      if (open >= from && text.charCodeAt(open) === 34 && text.startsWith(key, open + 1)) return true;
    }
  }
}

function isJsonSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

function hostOf(record: Record<string, unknown>): string | null {
  for (const name of HOST_KEYS) {
    const value = record[name];
    if (typeof value === "string" && value !== "") return value;
  }
  const k8s = record.kubernetes;
  if (k8s !== null && typeof k8s === "object") {
    const host = (k8s as Record<string, unknown>).host;
    if (typeof host === "string" && host !== "") return host;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Where `pattern` next appears in a text read line by line in order: found once for all the lines before it,
 * where a search from each line would read the rest of the text every time.
 */
class NextIndex {
  readonly pattern: string;
  #text = "";
  #from = 0;
  /** The first occurrence at or after `#from` in `#text`, or -1. */
  #found = -1;

  constructor(pattern: string) {
    this.pattern = pattern;
  }

  /** text.indexOf(pattern, from). */
  at(text: string, from: number): number {
    if (text !== this.#text || from < this.#from || (this.#found >= 0 && this.#found < from)) {
      this.#text = text;
      this.#from = from;
      this.#found = text.indexOf(this.pattern, from);
    }
    return this.#found;
  }
}

/** The parser itself; `createParser` and `NdjsonEncoder` (ndjson.ts) are its public faces. */
export class LineParser {
  readonly needle: string;
  /** False when a JSON encoder could have escaped the needle, so JSON lines cannot be rejected by a raw search. */
  readonly needleJsonSafe: boolean;
  readonly format: FormatPart[] | null;
  readonly year: number | undefined;
  readonly now: number | undefined;
  readonly stamp: Stamp = { end: 0, ms: 0, month: 0, day: 0, dayMs: 0 };
  /** False only for the reference parser that the fast path is tested against. */
  readonly fastPath: boolean;
  /** The line being parsed, one byte per UTF-16 unit, followed by zeros (see fill). */
  readonly scratch = new Uint8Array(SCRATCH_BYTES + SENTINEL_BYTES);
  readonly scratchView = new DataView(this.scratch.buffer);
  /** The bytes and view scanWithin is scanning, and what it saved from after the line. */
  withinBytes: Uint8Array | null = null;
  withinView: DataView | null = null;
  readonly withinSaved = new Int32Array(SENTINEL_BYTES / 4);
  /** The groups of the last IPv6 source and destination read (what the NDJSON encoder writes). */
  readonly srcGroups = new Uint16Array(8);
  readonly dstGroups = new Uint16Array(8);
  /** Where the prefix, and "[" (see hasArrayMessage), next appear in the text scanWithin is reading. */
  readonly nextPrefix: NextIndex;
  readonly nextBracket = new NextIndex("[");
  /** Where the next backslash is in the text readFlatJson is reading. */
  readonly nextBackslash = new NextIndex("\\");
  /** Texts whose lines after the one read last are still to be read (scanMore), the innermost last. */
  readonly linesLeft: LinesLeft[] = [];
  /** Per key slot of parseFlatJson: value kind, start, end. */
  readonly jsonSlots = new Int32Array(3 * JSON_SLOTS);
  /** Start and end of `kubernetes.host` for parseFlatJson. */
  readonly jsonKubernetesHost = new Int32Array(2);

  // Per-line header results (parsing is synchronous, so they live on the parser rather than in a fresh object).
  /**
   * 0: no timestamp, 1: ISO instant in `stampMs`, 2: year-less RFC 3164 fields in `stamp`, 3: an ISO timestamp
   * that names no instant, starting at `stampAt`.
   */
  stampKind = 0;
  stampAt = 0;
  stampMs = 0;
  /** The syslog host name as [hostS, hostE) in the text; hostS -1 when there is none. */
  hostS = -1;
  /**
   * For the line `scan` last read: where the line it parsed starts, past what a tool put before it (`kubectl logs`'
   * `--prefix` and `--timestamps`, a container runtime's `<time> stdout F `); 0 when it read the line as it is
   * (or for a JSON record). parseText sets it to the header's start in whatever text it reads.
   */
  lineS = 0;
  hostE = -1;
  /** True for the NDJSON encoder: a record's values are left in `fields` rather than built into an object. */
  encoding = false;
  readonly fields: Fields = {
    text: "",
    b: this.scratch,
    view: null,
    time: null,
    nodeS: -1,
    nodeE: -1,
    node: null,
    prefix: "",
    inS: -1,
    inE: -1,
    outS: -1,
    outE: -1,
    macS: -1,
    macE: -1,
    mac: null,
    srcS: -1,
    srcE: -1,
    srcV4: -1,
    src: null,
    dstS: -1,
    dstE: -1,
    dstV4: -1,
    dst: null,
    ipVersion: 4,
    length: 0,
    ttl: -1,
    protocol: "",
    srcPort: -1,
    dstPort: -1,
    flags: 0,
    icmpType: -1,
    icmpCode: -1,
  };

  // Consecutive lines mostly share their second: remember the last conversion.
  lastMs = Number.NaN;
  lastIso: string | null = "";
  lastSecond = Number.NaN;
  /** ISO text of `lastSecond` up to and including the "." before the milliseconds. */
  lastSecondIso = "";
  lastSyslogKey = -1;
  lastSyslogIso: string | null = null;
  /** The instant of `lastSyslogKey`, NaN when its date does not exist in its year. */
  lastSyslogMs = Number.NaN;
  /** The last JSON record's host found to name a node (see nodeName). */
  namedHost: string | null = null;
  /** When set, the years of year-less stamps are inferred from it rather than from `now` (inferYearsFrom). */
  yearBasis: number | undefined;
  /**
   * Set by a scan that failed only because a year-less stamp's date (Feb 29) does not exist in the year inferred
   * for it; its reader clears it.
   */
  missingDate = false;

  constructor(options: ParseOptions, fastPath = true) {
    this.fastPath = fastPath;
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (prefix.trim() === "") throw new RangeError(`prefix must not be empty, got ${JSON.stringify(prefix)}`);
    if (options.prefixFormat !== undefined) {
      const parts = compileFormat(options.prefixFormat);
      const head = parts[0];
      const literal = head?.spec === "" ? head.literal : "";
      // Lines are found by the prefix when the format starts with it, as the subscription filter finds them, else
      // by the format's literal head without the separators that end it (`cfd` of `cfd-%k-%n`): either way a line
      // whose prefix carries no policy (from a node on the plain LogPrefix: "calico-packet: IN=...") is found too.
      this.needle = literal.startsWith(prefix) ? prefix : literal.replace(/[^0-9A-Za-z]+$/, "");
      if (this.needle === "") {
        throw new RangeError(
          `prefixFormat must start with literal text holding a letter or digit, which is how lines are found (e.g. "calico-packet %t %n"), got ${JSON.stringify(options.prefixFormat)}`,
        );
      }
      this.format = parts;
    } else {
      this.needle = prefix;
      this.format = null;
    }
    let safe = true;
    for (let i = 0; i < this.needle.length; i++) {
      const c = this.needle.charCodeAt(i);
      // Beyond what JSON must escape: "/" (PHP), "<>&" (Go's encoding/json), "'+`" (.NET's default encoder).
      if (c < 32 || c > 126 || "\"\\/<>&'+`".includes(this.needle[i] as string)) safe = false;
    }
    this.needleJsonSafe = safe;
    this.nextPrefix = new NextIndex(this.needle);
    if (
      options.year !== undefined &&
      (!Number.isInteger(options.year) || options.year < 1 || options.year > 9999)
    ) {
      throw new RangeError(`year must be an integer from 1 to 9999, got ${options.year}`);
    }
    if (options.now !== undefined && !(options.now >= MIN_MS && options.now <= MAX_MS)) {
      throw new RangeError(`now must be epoch milliseconds, got ${options.now}`);
    }
    this.year = options.year;
    this.now = options.now;
  }

  /**
   * The UTF-16 units of `text` as bytes, at the same positions: scanning a typed array costs a fraction of
   * charCodeAt on the sliced strings lines arrive as. An ASCII line is copied by the native UTF-8 encoder; any
   * other unit becomes 0x80, which no part of the syntax uses, and values are still sliced from the string.
   * Zeros follow the text, so reading past its end finds no digit, letter or space, as charCodeAt's NaN would.
   */
  fill(text: string): Uint8Array {
    const n = text.length;
    const b = n <= SCRATCH_BYTES ? this.scratch : new Uint8Array(n + SENTINEL_BYTES);
    const { read, written } = utf8.encodeInto(text, b);
    if (read !== n || written !== n) {
      for (let i = 0; i < n; i++) {
        const c = text.charCodeAt(i);
        b[i] = c < 128 ? c : 0x80;
      }
    }
    if (b === this.scratch) {
      const view = this.scratchView;
      for (let k = 0; k < SENTINEL_BYTES; k += 4) view.setInt32(n + k, 0);
    } else {
      b.fill(0, n, n + SENTINEL_BYTES);
    }
    return b;
  }

  /**
   * scan for the line `text[start, end)` of a larger text whose bytes `bytes` (viewed as `view`) hold it one
   * byte per character (the text is ASCII) and have room for SENTINEL_BYTES after `end`: the line is scanned
   * where it lies instead of being copied out, with zeros put after it for the scan and the bytes put back.
   * JSON records are read as lines of their own. The line holds no line break (its caller splits the text at them).
   */
  scanWithin(text: string, bytes: Uint8Array, view: DataView, start: number, end: number): Scan {
    if (this.linesLeft.length > 0) this.linesLeft.length = 0;
    let from = start;
    while (from < end && (bytes[from] === 32 || bytes[from] === 9)) from++;
    const json = bytes[from] === 123;
    const found = this.nextPrefix.at(text, from);
    if (found < 0 || found + this.needle.length > end) {
      if (!json) return SKIP;
      // As scan: journald's byte-array message hides the prefix.
      if (this.needleJsonSafe && !hasArrayMessage(text, from, end, this.nextBracket)) return SKIP;
    }
    const saved = this.withinSaved;
    for (let k = 0; k < SENTINEL_BYTES / 4; k++) {
      saved[k] = view.getInt32(end + 4 * k);
      view.setInt32(end + 4 * k, 0);
    }
    this.withinBytes = bytes;
    this.withinView = view;
    let outcome: Scan | undefined;
    if (json) {
      outcome = this.fastPath ? this.readFlatJson(text, bytes, view, from, end) : undefined;
      // (null is an answer: the record is in `fields`.)
      if (outcome === undefined) outcome = this.parseJson(text.slice(from, end), 0, null, Number.NaN);
    } else {
      outcome = this.parseText(text, from, found, null, Number.NaN, bytes, end);
    }
    for (let k = 0; k < SENTINEL_BYTES / 4; k++) view.setInt32(end + 4 * k, saved[k] as number);
    this.withinBytes = null;
    return outcome;
  }

  /**
   * scan for a JSON string value without escapes, `text[start, end)` of a larger ASCII text whose bytes `bytes`
   * (viewed as `view`) hold it one byte per character, with its closing quote at `end`: scanned where it lies.
   * Nothing is written: the quote ends every scan as the zeros after a scratch line do (see parseText). A value
   * that is a JSON record is scanned as a line of its own. (Without escapes it holds no line break.)
   */
  scanQuoted(text: string, bytes: Uint8Array, view: DataView, start: number, end: number): Scan {
    if (this.linesLeft.length > 0) this.linesLeft.length = 0;
    let from = start;
    while (from < end && (bytes[from] === 32 || bytes[from] === 9)) from++;
    if (bytes[from] === 123) return this.scan(text.slice(start, end));
    const found = this.nextPrefix.at(text, from);
    if (found < 0 || found + this.needle.length > end) return SKIP;
    this.withinBytes = bytes;
    this.withinView = view;
    const outcome = this.parseText(text, from, found, null, Number.NaN, bytes, end);
    this.withinBytes = null;
    return outcome;
  }

  /**
   * The IPv6 address in `b[start, end)` read into `into`: its RFC 5952 text, or "" when encoding (the encoder
   * writes it from `into`); null when it is not one.
   */
  ipv6(b: Uint8Array, start: number, end: number, into: Uint16Array): string | null {
    if (!readIpv6Groups(b, start, end, into)) return null;
    return this.encoding ? "" : formatIpv6Groups(into);
  }

  /**
   * A line's outcome; when `encoding`, a record is left in `fields` and null returned instead. A log event may hold
   * several lines: this is the outcome of its first line that holds the prefix, and scanMore reads the next ones.
   */
  scan(line: string): Scan {
    if (typeof line !== "string") return fail("input is not a string");
    if (this.linesLeft.length > 0) this.linesLeft.length = 0;
    return this.scanLine(line);
  }

  /** scan, keeping the lines left of the text that `line` is a line of. */
  scanLine(line: string): Scan {
    const found = line.indexOf(this.needle);
    let start = 0;
    const end = line.length;
    while (start < end) {
      const c = line.charCodeAt(start);
      if (c !== 32 && c !== 9 && c !== 0xfeff) break;
      start++;
    }
    if (line.charCodeAt(start) === 123) {
      // journald writes a message that is not clean UTF-8 as an array of bytes, where the prefix is not visible.
      if (found < 0 && this.needleJsonSafe && !hasArrayMessage(line, start, end, null)) return SKIP;
      // A record without escapes (journald's and the CloudWatch agent's nearly always; Fluent Bit's tail `log` but
      // for the newline ending it) is read in place; any other goes through JSON.parse, which also words the error
      // for a malformed one.
      // A record is read whole; the line in its message is no start of `line` (parseText set lineS in it).
      let outcome = this.fastPath ? this.parseFlatJson(line, start) : undefined;
      outcome ??= this.parseJson(line.slice(start), 0, null, Number.NaN);
      this.lineS = 0;
      return outcome;
    }
    this.lineS = 0;
    if (found < 0) return SKIP;
    const lines = this.linesOf(line, start, found, -1, null, Number.NaN);
    if (lines !== undefined) return lines;
    const outcome = this.parseText(line, start, found, null, Number.NaN);
    if (this.lineS === start) this.lineS = 0;
    return outcome;
  }

  /**
   * The outcome of the line of `text` that holds the prefix at `found`, read on its own, when the text has more than
   * one line: a line break (LF, or CRLF) before the prefix, or after it other than one ending the text. A shipper's
   * multiline mode (CloudWatch agent `multi_line_start_pattern`, Fluent Bit multiline) puts several lines in one log
   * event, and a line's header and fields are its own. The lines after it are left to scanMore. Undefined for a text
   * of one line. `depth`, `host`, `ms`: how the text's lines are read (LinesLeft). Only texts read as strings pass
   * here: a line read where it lies in a chunk or a delivery holds no line break.
   */
  linesOf(
    text: string,
    start: number,
    found: number,
    depth: number,
    host: string | null,
    ms: number,
  ): Scan | undefined {
    const after = text.indexOf("\n", found);
    const before = text.lastIndexOf("\n", found);
    if (before < start && (after < 0 || after === text.length - 1)) return undefined;
    if (after >= 0) this.linesLeft.push({ text, at: after + 1, depth, host, ms });
    return this.readLine(
      text,
      before < start ? start : before + 1,
      after < 0 ? text.length : after,
      depth,
      host,
      ms,
    );
  }

  /** The line `text[start, end)` of a text of several lines, read as `depth` says (LinesLeft). */
  readLine(text: string, start: number, end: number, depth: number, host: string | null, ms: number): Scan {
    const line = text.slice(start, end);
    if (depth >= 0) return this.parseMessage(line, depth, host, ms);
    const outcome = this.scanLine(line);
    this.lineS += start;
    return outcome;
  }

  /**
   * The outcome of the next line that holds the prefix in the text the last scan read (scan, scanWithin, scanQuoted,
   * or scanMore: a log event's lines, the lines of a JSON record's message), as scan answers; undefined when there is
   * none.
   */
  scanMore(): Scan | undefined {
    const left = this.linesLeft;
    while (left.length > 0) {
      const lines = left[left.length - 1] as LinesLeft;
      const text = lines.text;
      const found = text.indexOf(this.needle, lines.at);
      if (found < 0) {
        left.pop();
        continue;
      }
      const after = text.indexOf("\n", found);
      if (after < 0) left.pop();
      else lines.at = after + 1;
      const start = text.lastIndexOf("\n", found) + 1;
      return this.readLine(text, start, after < 0 ? text.length : after, lines.depth, lines.host, lines.ms);
    }
    return undefined;
  }

  /** A JSON record wrapping a line; `depth` 1 is a record inside a record's message. */
  parseJson(text: string, depth: number, outerHost: string | null, outerMs: number): Scan {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      // Records one a line (a log event of several lines; a record over several lines is valid JSON): each line is
      // read on its own.
      const found = depth === 0 ? text.indexOf(this.needle) : -1;
      const lines = found < 0 ? undefined : this.linesOf(text, 0, found, -1, null, Number.NaN);
      if (lines !== undefined) return lines;
      const detail = error instanceof Error ? error.message : String(error);
      // V8 quotes the input around the error as it is: escaped, as every reason quotes input.
      return fail(
        `malformed JSON record: ${escapeControls(detail.length > 120 ? `${detail.slice(0, 120)}…` : detail)}`,
      );
    }
    // The text starts with "{", so what JSON.parse returns is an object.
    return this.parseRecord(value as Record<string, unknown>, depth, outerHost, outerMs);
  }

  /**
   * parseJson's record, parsed; its host and time stand for those of the line it wraps when that has none. `inBody`:
   * the record is another's `body`, which is followed once, whatever the depth of messages.
   */
  parseRecord(
    record: Record<string, unknown>,
    depth: number,
    outerHost: string | null,
    outerMs: number,
    inBody = false,
  ): Scan {
    let message: string | null = null;
    for (const name of MESSAGE_KEYS) {
      const candidate = asText(record[name]);
      if (candidate?.includes(this.needle)) {
        message = candidate;
        break;
      }
    }
    const host = hostOf(record) ?? outerHost;
    let ms = Number.NaN;
    for (const name of TIME_KEYS) {
      if (record[name] === undefined) continue;
      ms = this.jsonTime(record[name]);
      if (!Number.isNaN(ms)) break;
    }
    if (Number.isNaN(ms)) ms = outerMs;
    if (message !== null) return this.parseMessage(message, depth, host, ms);
    // The OpenTelemetry exporter's `body` may be the wrapped record itself (journald's entry, as the CloudWatch
    // agent's journald collection sends it).
    const body = record.body;
    if (!inBody && body !== null && typeof body === "object" && !Array.isArray(body)) {
      return this.parseRecord(body as Record<string, unknown>, depth, host, ms, true);
    }
    // The prefix was somewhere else in the record (a label, a path): not a packet line.
    return SKIP;
  }

  /**
   * The line a JSON record wraps (`depth` as parseJson's), with the host and time the record gave it; its first line
   * that holds the prefix when it holds several, each of them with that host and time.
   */
  parseMessage(message: string, depth: number, host: string | null, ms: number): Scan {
    let start = 0;
    while (start < message.length && (message.charCodeAt(start) === 32 || message.charCodeAt(start) === 9))
      start++;
    if (message.charCodeAt(start) === 123 && depth === 0) {
      return this.parseJson(message.slice(start), depth + 1, host, ms);
    }
    const found = message.indexOf(this.needle, start);
    const lines = found < 0 ? undefined : this.linesOf(message, start, found, depth, host, ms);
    return lines !== undefined ? lines : this.parseText(message, start, found, host, ms);
  }

  /**
   * parseJson for a record at `line[start]` whose values are strings without escapes, numbers and literals: read
   * from the line's bytes, without building the record. Undefined for any other text, valid or not.
   */
  parseFlatJson(line: string, start: number): Scan | undefined {
    const b = this.fill(line);
    if (b !== this.scratch) return undefined;
    return this.readFlatJson(line, b, this.scratchView, start, line.length);
  }

  /**
   * The first backslash in `line[from, end)`, or -1. When the record goes on to the end of the text it is searched
   * for there; in a chunk (scanWithin) the next one is remembered, so that a chunk is searched once.
   */
  backslashAt(line: string, from: number, end: number): number {
    const at = end === line.length ? line.indexOf("\\", from) : this.nextBackslash.at(line, from);
    return at < end ? at : -1;
  }

  /**
   * parseFlatJson for the record `line[start, end)` whose bytes are `b` (viewed as `view`), with zeros after
   * `end`: `line` may go on after the record (scanWithin). `inBody`: it is the object `body` of a record, whose
   * host and time stand in for its own (`outerHost`, `outerMs`), as in parseRecord.
   */
  readFlatJson(
    line: string,
    b: Uint8Array,
    view: DataView,
    start: number,
    end: number,
    inBody = false,
    outerHost: string | null = null,
    outerMs = Number.NaN,
  ): Scan | undefined {
    // Without escapes, strings end at the next quote. (Escapes and control characters are rare, and JSON.parse
    // judges them.) One escape is let through: the `\n` that ends the value of Fluent Bit's tail `log` (the line
    // with its newline), when it is the record's only one and the message of the record holds it.
    if (controlAt(b, view, start, end) < end) return undefined;
    const newline = this.backslashAt(line, start, end);
    if (
      newline >= 0 &&
      (!this.needleJsonSafe ||
        b[newline + 1] !== 110 ||
        b[newline + 2] !== 34 ||
        this.backslashAt(line, newline + 1, end) >= 0)
    ) {
      return undefined;
    }
    const slots = this.jsonSlots;
    slots.fill(0);
    const kubernetesHost = this.jsonKubernetesHost;
    /** Whether the last `kubernetes` member is an object, and its `host` string if it has one. */
    let kubernetes = false;
    let kubernetesHostStart = -1;
    let kubernetesHostEnd = -1;
    /** The last `body` member, when it is an object (the OpenTelemetry exporter's wrapped record). */
    let bodyStart = -1;
    let bodyEnd = -1;
    let i = jsonSpace(b, start + 1);
    if (b[i] === 125) {
      i++;
    } else {
      for (;;) {
        if (b[i] !== 34) return undefined;
        const keyStart = i + 1;
        const keyEnd = quoteAt(line, keyStart, end);
        if (keyEnd < 0 || (newline >= keyStart && newline < keyEnd)) return undefined;
        i = jsonSpace(b, keyEnd + 1);
        if (b[i] !== 58) return undefined;
        i = jsonSpace(b, i + 1);
        const c = b[i] as number;
        let kind: number;
        let valueStart = i;
        let valueEnd: number;
        if (c === 34) {
          kind = JSON_STRING;
          valueStart = i + 1;
          valueEnd = quoteAt(line, valueStart, end);
          if (valueEnd < 0) return undefined;
          i = valueEnd + 1;
          if (newline >= valueStart && newline < valueEnd) {
            kind = JSON_STRING_NEWLINE;
            valueEnd = newline;
          }
        } else if (c === 45 || (c >= 48 && c <= 57)) {
          kind = JSON_NUMBER;
          valueEnd = jsonNumberEnd(b, i);
          if (valueEnd < 0) return undefined;
          i = valueEnd;
        } else if (has(b, i, "true") || has(b, i, "null")) {
          kind = JSON_LITERAL;
          i += 4;
          valueEnd = i;
        } else if (has(b, i, "false")) {
          kind = JSON_LITERAL;
          i += 5;
          valueEnd = i;
        } else {
          // An object or an array, read through: not a value parseJson takes, unless it is `kubernetes.host`
          // (from Fluent Bit's kubernetes filter) or a message as journald's array of bytes (for JSON.parse).
          kubernetesHost[0] = -1;
          kubernetesHost[1] = -1;
          valueEnd = jsonValueEnd(line, b, i, end, 1, c === 123 ? kubernetesHost : null);
          if (valueEnd < 0 || (newline >= i && newline < valueEnd)) return undefined;
          i = valueEnd;
          kind = JSON_OTHER;
        }
        if (keyEnd - keyStart === 10 && has(b, keyStart, "kubernetes")) {
          kubernetes = c === 123;
          kubernetesHostStart = kubernetesHost[0] as number;
          kubernetesHostEnd = kubernetesHost[1] as number;
        }
        const slot = jsonKeySlot(b, keyStart, keyEnd);
        if (slot === SLOT_BODY) {
          const object = kind === JSON_OTHER && c === 123 && !inBody;
          bodyStart = object ? valueStart : -1;
          bodyEnd = object ? valueEnd : -1;
          if (object) kind = 0;
        }
        if (kind === JSON_OTHER && slot >= SLOT_MESSAGE && slot < SLOT_HOST) return undefined;
        // A value with the newline is read as a message only (a host or time with one goes to JSON.parse).
        if (kind === JSON_STRING_NEWLINE && slot >= SLOT_HOST) return undefined;
        if (slot >= 0) {
          // A repeated key: the last one counts, as in JSON.parse.
          slots[3 * slot] = kind;
          slots[3 * slot + 1] = valueStart;
          slots[3 * slot + 2] = valueEnd;
        }
        i = jsonSpace(b, i);
        if (b[i] === 44) {
          i = jsonSpace(b, i + 1);
          continue;
        }
        if (b[i] !== 125) return undefined;
        i++;
        break;
      }
    }
    if (jsonSpace(b, i) !== end) return undefined;

    // What parseJson takes from the record, in its order of preference.
    const needle = this.needle;
    let messageStart = -1;
    let messageEnd = -1;
    let found = -1;
    let messageNewline = false;
    for (let slot = SLOT_MESSAGE; slot < SLOT_MESSAGE + MESSAGE_KEYS.length; slot++) {
      const kind = slots[3 * slot];
      if (kind !== JSON_STRING && kind !== JSON_STRING_NEWLINE) continue;
      const from = slots[3 * slot + 1] as number;
      const to = slots[3 * slot + 2] as number;
      // (The needle has no newline, as it is JSON-safe: it is not found across the escaped one.)
      const at = line.indexOf(needle, from);
      if (at >= 0 && at + needle.length <= to) {
        messageStart = from;
        messageEnd = to;
        messageNewline = kind === JSON_STRING_NEWLINE;
        found = at;
        break;
      }
    }
    if (messageStart < 0 && bodyStart < 0) return SKIP;
    let host: string | null = null;
    for (let slot = SLOT_HOST; slot < SLOT_HOST + HOST_KEYS.length; slot++) {
      const from = slots[3 * slot + 1] as number;
      const to = slots[3 * slot + 2] as number;
      if (slots[3 * slot] === JSON_STRING && to > from) {
        host = line.slice(from, to);
        break;
      }
    }
    if (host === null && kubernetes && kubernetesHostEnd > kubernetesHostStart) {
      host = line.slice(kubernetesHostStart, kubernetesHostEnd);
    }
    host ??= outerHost;
    let ms = Number.NaN;
    for (let slot = SLOT_TIME; slot < SLOT_TIME + TIME_KEYS.length; slot++) {
      const kind = slots[3 * slot];
      if (kind === 0) continue;
      const from = slots[3 * slot + 1] as number;
      const text = line.slice(from, slots[3 * slot + 2]);
      ms =
        kind === JSON_STRING
          ? this.jsonTime(text, b, from)
          : kind === JSON_NUMBER
            ? this.jsonTime(Number(text))
            : Number.NaN;
      if (!Number.isNaN(ms)) break;
    }
    if (Number.isNaN(ms)) ms = outerMs;
    if (messageStart < 0) return this.readFlatJson(line, b, view, bodyStart, bodyEnd, true, host, ms);
    // The message's own leading spaces and tabs, as parseMessage skips them.
    let text = messageStart;
    while (text < messageEnd && (b[text] === 32 || b[text] === 9)) text++;
    if (b[text] === 123) {
      const message = line.slice(messageStart, messageEnd);
      return this.parseMessage(messageNewline ? `${message}\n` : message, 0, host, ms);
    }
    if (!messageNewline) return this.parseText(line, text, found, host, ms, b, messageEnd);
    // The message is its text and a newline, which parseText would drop as a line ending: it reads the text
    // alone. The escape after it is hidden behind quotes for the scan, as after any other value (see parseText).
    b[messageEnd] = 34;
    b[messageEnd + 1] = 34;
    const outcome = this.parseText(line, text, found, host, ms, b, messageEnd);
    b[messageEnd] = 92;
    b[messageEnd + 1] = 110;
    return outcome;
  }

  /**
   * A JSON record's host, or null when it names no node (isNodeName: it is then taken as absent). Checked once per
   * distinct host: the lines of a stream carry one.
   */
  nodeName(host: string): string | null {
    if (host === this.namedHost) return host;
    if (!isNodeName(host, 0, host.length)) return null;
    this.namedHost = host;
    return host;
  }

  /** Epoch ms of a JSON record's time field: ISO text, or epoch seconds/ms/µs/ns as a number or digits. */
  jsonTime(value: unknown, bytes: Uint8Array | null = null, at = 0): number {
    let n: number;
    if (typeof value === "number") {
      n = value;
    } else if (typeof value === "string") {
      // Digits (journald's µs) cannot be ISO text: only copy what may be (unless its bytes, at `at`, are given).
      if (
        value.length >= 19 &&
        value.charCodeAt(4) === 45 &&
        (bytes === null
          ? readIsoStamp(this.fill(value), 0, value.length, this.stamp)
          : readIsoStamp(bytes, at, at + value.length, this.stamp))
      ) {
        return this.stamp.ms;
      }
      if (value.length === 0 || value.length > 20) return Number.NaN;
      n = Number(value);
    } else {
      return Number.NaN;
    }
    if (!Number.isFinite(n) || n <= 0) return Number.NaN;
    // Magnitude says the unit: 2001-09-09 is 1e9 s, 1e12 ms, 1e15 µs, 1e18 ns.
    if (n >= 1e17) n /= 1e6;
    else if (n >= 1e14) n /= 1e3;
    else if (n < 1e11) n *= 1e3;
    n = Math.floor(n);
    return n >= MIN_MS && n <= MAX_MS ? n : Number.NaN;
  }

  /**
   * Reads the syslog header at `start`: `<PRI>`, RFC 5424 version, an ISO or RFC 3164 timestamp (or RFC 5424's
   * nil one), then the host name (a token that ends in ":" is a tag, not a host). Returns where the header ends.
   */
  readHeader(text: string, b: Uint8Array, start: number, end: number): number {
    const stamp = this.stamp;
    let i = start;
    let nil = false;
    this.stampKind = 0;
    this.hostS = -1;
    if (b[i] === 60) {
      let j = i + 1;
      while (j < end && j - i <= 4 && (b[j] as number) >= 48 && (b[j] as number) <= 57) j++;
      if (j > i + 1 && b[j] === 62) {
        i = j + 1;
        // RFC 5424 version, "1 ".
        const v = b[i] as number;
        if (v >= 49 && v <= 57 && b[i + 1] === 32) {
          i += 2;
          // RFC 5424's nil timestamp ("-"): no time, but the host name still follows.
          nil = b[i] === 45 && b[i + 1] === 32;
        }
      }
    }
    const c = b[i] as number;
    if (nil) {
      stamp.end = i + 1;
    } else if (c >= 48 && c <= 57) {
      if (!readIsoStamp(b, i, end, stamp)) {
        if (isoShaped(b, i, end)) {
          this.stampKind = 3;
          this.stampAt = i;
        }
        return i;
      }
      this.stampKind = 1;
      this.stampMs = stamp.ms;
    } else {
      if (!readSyslogStamp(b, i, end, stamp)) return i;
      this.stampKind = 2;
    }
    i = stamp.end;
    if (b[i] !== 32) return i;
    const hostStart = i + 1;
    // Printable ASCII up to the space: a host name nearly always, checked on the way to the token's end. A token
    // with anything else (a character outside ASCII is the byte 0x80 here) is read on to its end and checked
    // character by character.
    let hostEnd = hostStart;
    while (hostEnd < end) {
      const c = b[hostEnd] as number;
      if (c <= 32 || c >= 127) break;
      hostEnd++;
    }
    let named = true;
    if (hostEnd < end && b[hostEnd] !== 32) {
      const from = hostEnd;
      hostEnd = tokenEnd(b, hostEnd, end);
      named = isNodeName(text, from, hostEnd);
    }
    named &&= hostEnd - hostStart <= MAX_HOST_LENGTH;
    // A token ending in ":" is a tag; one starting with "[" is the kernel's [seconds.micros] stamp (no host name
    // holds a bracket).
    if (hostEnd === hostStart || b[hostEnd - 1] === 58 || b[hostStart] === 91) return i;
    // A host that names no node (isNodeName) is taken as absent, as "-" is.
    if ((hostEnd - hostStart !== 1 || b[hostStart] !== 45) && named) {
      this.hostS = hostStart;
      this.hostE = hostEnd;
    }
    return hostEnd;
  }

  /**
   * Where the logged prefix starts when a timestamp is right before it (`aws logs tail --format short`, `dmesg
   * --time-format=iso`, the `<ISO> <message>` of an export to S3), which made the prefix's first word the host; the
   * host is then cleared. -1 when that word is a host: it does not start with the prefix, is RFC 5424's HOSTNAME (a
   * field of its own), a tag follows it (`cfd-7 kernel: DROP: IN=`; a word ending in ":" right before IN= closes the
   * prefix instead, `calico-packet deny-all: IN=`), or the text from it to IN= is neither the configured prefix nor
   * one the format writes (`cfd-7 cfd gnp deny-all: IN=`; a log stream named after a node in `aws logs tail --format
   * detailed`'s `<ISO> <stream> <message>`).
   */
  hostlessPrefix(text: string, b: Uint8Array, headerStart: number, headerEnd: number, end: number): number {
    const at = this.hostS;
    const needle = this.needle;
    if (at < 0 || !text.startsWith(needle, at) || isRfc5424(b, headerStart)) return -1;
    const min = at + needle.length;
    const fields = text.indexOf("IN=", min);
    if (fields < 0 || fields >= end || fields - at > MAX_PREFIX_REGION) return -1;
    let message = messageStart(b, headerStart, headerEnd, end);
    if (message !== headerEnd) {
      while (b[message] === 32) message++;
      if (message !== fields) return -1;
    }
    const prefixEnd = loggedPrefixEnd(b, min, fields);
    if (prefixEnd !== min) {
      // Cut: as long as iptables keeps, and without Felix's ": ".
      const cut = prefixEnd === fields && fields - at === IPTABLES_PREFIX_LENGTH;
      if (this.format === null || !formatWrites(this.format, text.slice(at, prefixEnd), cut)) return -1;
    }
    this.hostS = -1;
    return at;
  }

  /** A line of text: optional container-runtime and syslog headers, then the prefix and the packet fields. */
  parseText(
    text: string,
    start: number,
    found: number,
    outerHost: string | null,
    outerMs: number,
    filled: Uint8Array | null = null,
    textEnd = text.length,
  ): Scan {
    // `filled`: the text's bytes are already scanned (a JSON string value, `text[start, textEnd)`, from
    // parseFlatJson). What follows textEnd is then the value's closing quote and the rest of the record rather
    // than zeros: no read past the end finds a digit, letter or space there either, which is what the scan needs.
    const b = filled ?? this.fill(text);
    let end = textEnd;
    while (end > start) {
      const c = b[end - 1] as number;
      if (c !== 10 && c !== 13) break;
      end--;
    }
    // `kubectl logs --prefix` puts `[pod/<pod>/<container>] ` before each line (and before --timestamps' stamp).
    const lineStart = b[start] === 91 ? kubectlPrefixEnd(b, start, end) : start;
    let headerStart = lineStart;
    let headerEnd = this.readHeader(text, b, lineStart, end);
    // A container runtime's log line (`<ISO time> stdout F <line>`) wraps the line the pod printed.
    const h = this.hostS;
    if (
      this.stampKind === 1 &&
      h >= 0 &&
      this.hostE - h === 6 &&
      (has(b, h, "stdout") || has(b, h, "stderr"))
    ) {
      const flag = b[headerEnd + 1] as number;
      if ((flag === 70 || flag === 80) && b[headerEnd + 2] === 32) {
        // Its time is the nearest full timestamp, unless the pod's line carries one itself.
        outerMs = this.stampMs;
        headerStart = headerEnd + 3;
        headerEnd = this.readHeader(text, b, headerStart, end);
      }
    } else if (this.stampKind === 1 && h >= 0 && mayStartHeader(b[h] as number)) {
      // A timestamp a tool put before the syslog line (`kubectl logs --timestamps`, an S3 export of CloudWatch
      // Logs): what looked like the host is the line's own header. Its time is the outer one, unless the line's
      // is full; a token that starts no header (a host named with capitals, an address) stays the host.
      const outer = this.stampMs;
      const hostE = this.hostE;
      const inner = this.readHeader(text, b, h, end);
      if ((this.stampKind as number) === 0) {
        this.stampKind = 1;
        this.stampMs = outer;
        this.hostS = h;
        this.hostE = hostE;
      } else {
        outerMs = outer;
        headerStart = h;
        headerEnd = inner;
      }
    }
    this.lineS = headerStart;
    const needle = this.needle;
    const nlen = needle.length;
    let p = found >= headerEnd ? found : text.indexOf(needle, headerEnd);
    if (p < 0 || p + nlen > end) {
      // None after the header: it may have taken the prefix's first word for the host.
      p = this.hostlessPrefix(text, b, headerStart, headerEnd, end);
      if (p < 0) return SKIP;
    }

    // The usual shape first: the prefix, an optional ":" and spaces, then IN=. The logged prefix is then the
    // configured one.
    let fields = p + nlen;
    if (fields < end && b[fields] === 58) fields++;
    while (fields < end && b[fields] === 32) fields++;
    if (b[fields] === 73 && b[fields + 1] === 78 && b[fields + 2] === 61) {
      // Unless it ends a policy's name (`default-deny` of `deny %t %n`) in a prefix right after a timestamp: only a
      // format's values hold the prefix's text.
      const at = this.format === null ? -1 : this.hostlessPrefix(text, b, headerStart, headerEnd, end);
      if (at < 0) return this.parseFields(text, b, fields, end, needle, outerHost, outerMs);
      p = at;
    }
    {
      let rest = fields;
      if (p >= headerEnd && headerEnd > headerStart) {
        const at = this.hostlessPrefix(text, b, headerStart, headerEnd, end);
        if (at >= 0) {
          // The mention is in a policy's name (`calico-packet-deny`), after the prefix the host was taken from.
          p = at;
        } else {
          // A mention in the rest of the header is the program's name (RFC 3164's tag `calico-packet[812]:`, RFC
          // 5424's APP-NAME): the logged prefix is the next one, in the message, when there is one.
          const message = messageStart(b, headerStart, headerEnd, end);
          const next = p < message ? text.indexOf(needle, message) : -1;
          if (next >= 0 && next + nlen <= end) {
            p = next;
            rest = p + nlen;
            if (rest < end && b[rest] === 58) rest++;
            while (rest < end && b[rest] === 32) rest++;
          }
        }
      }
      fields = text.indexOf("IN=", p + nlen);
      // The prefix starts at the first mention, unless that is too far from the fields to be one: then at the
      // last mention before them (a policy's name may hold the prefix's text, so the last is not always right).
      if (fields >= 0 && fields < end && fields - p > MAX_PREFIX_REGION) {
        p = text.lastIndexOf(needle, fields - nlen);
      }
      if (fields < 0 || fields >= end || fields - p > MAX_PREFIX_REGION) {
        // Nothing but the start of "IN=" after the prefix (or Felix's ": " ending a prefix format): the line was
        // cut short. Any other text means the prefix was only mentioned, e.g. in a Felix log line.
        const tail = end - rest;
        const cut =
          tail === 0 ||
          (tail === 1 && b[rest] === 73) ||
          (tail === 2 && b[rest] === 73 && b[rest + 1] === 78) ||
          (this.format !== null && tail <= MAX_PREFIX_REGION && b[end - 1] === 58);
        if (cut) return fail("line ends after the log prefix, before the packet fields");
        // Packet fields (a KEY= token right after the prefix) without IN=, which the kernel always prints first:
        // a damaged packet log, not a mention of the prefix.
        if (startsWithKey(b, rest, end))
          return fail("no IN= after the log prefix: the packet fields are damaged");
        return SKIP;
      }
    }

    // The logged prefix, without Felix's ": " (but never shorter than the configured text).
    const prefixEnd = loggedPrefixEnd(b, p + nlen, fields);
    const prefix = prefixEnd === p + nlen ? needle : text.slice(p, prefixEnd);

    return this.parseFields(text, b, fields, end, prefix, outerHost, outerMs);
  }

  /**
   * The ISO text of an instant, remembered for the next line of the same millisecond; null outside the times a
   * line may carry (EARLIEST_LINE_MS to LATEST_LINE_MS), which is checked only when the millisecond changes.
   */
  iso(ms: number): string | null {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      if (!(ms >= EARLIEST_LINE_MS && ms <= LATEST_LINE_MS)) {
        this.lastIso = null;
        return null;
      }
      // Lines of one second share the text up to the milliseconds.
      const second = Math.floor(ms / 1000);
      const milli = ms - second * 1000;
      if (second !== this.lastSecond) {
        const whole = new Date(second * 1000).toISOString();
        this.lastSecond = second;
        this.lastSecondIso = whole.slice(0, whole.length - 4);
      }
      this.lastIso =
        milli === Math.floor(milli)
          ? this.lastSecondIso + (MILLIS[milli] as string)
          : new Date(ms).toISOString();
    }
    return this.lastIso;
  }

  /**
   * Infers the years of year-less stamps from `at` (a log event's own time: a backfilled Feb 29 is of a leap year)
   * instead of `now`, until called with undefined.
   */
  inferYearsFrom(at: number | undefined): void {
    this.yearBasis = at;
    this.lastSyslogKey = -1;
  }

  /**
   * The ISO text of a year-less RFC 3164 timestamp, or null when the date does not exist in its year or is outside
   * the times a line may carry (`lastSyslogMs` tells which). Such timestamps are taken as UTC: nodes of EKS AMIs log in
   * UTC, and a log line carries no zone. The year is `year` when given, else the latest year that puts the line at
   * most a day after `now`: the next one, this one or the one before, or for Feb 29 the last leap year (up to eight
   * years back, past a century that is not one).
   */
  syslogIso(): string | null {
    const s = this.stamp;
    // dayMs reaches past DAY_MS with a leap second (23:59:60): step by two days so that no two stamps share a key.
    const key = (s.month * 32 + s.day) * 2 * DAY_MS + s.dayMs;
    if (key === this.lastSyslogKey) return this.lastSyslogIso;
    let ms = Number.NaN;
    if (this.year !== undefined) {
      if (s.day <= daysInMonth(this.year, s.month)) {
        ms = daysFromCivil(this.year, s.month, s.day) * DAY_MS + s.dayMs;
      }
    } else {
      // The latest year that puts the line at most a day after now: the next one too, for a line stamped just
      // after New Year by a node whose clock is ahead of the reader's.
      const now = this.yearBasis ?? this.now ?? Date.now();
      const year = new Date(now).getUTCFullYear();
      for (let y = year + 1; y >= year - 8 && Number.isNaN(ms); y--) {
        if (s.day > daysInMonth(y, s.month)) continue;
        const at = daysFromCivil(y, s.month, s.day) * DAY_MS + s.dayMs;
        if (at <= now + DAY_MS) ms = at;
      }
    }
    this.lastSyslogKey = key;
    this.lastSyslogMs = ms;
    this.lastSyslogIso = ms >= EARLIEST_LINE_MS && ms <= LATEST_LINE_MS ? new Date(ms).toISOString() : null;
    return this.lastSyslogIso;
  }

  /** The netfilter fields from `IN=` on, as nf_log_syslog prints them. */
  parseFields(
    text: string,
    b: Uint8Array,
    start: number,
    end: number,
    prefix: string,
    outerHost: string | null,
    outerMs: number,
  ): Scan {
    // 0: link layer (IN OUT MAC), 1: IP header (from SRC=), 2: transport (from PROTO=).
    let section = 0;
    // Text values are kept as [start, end) in `text` (start -1: null) until the line is known to be a record:
    // the record slices them, the NDJSON encoder copies their bytes.
    let inS = -1;
    let inE = -1;
    let outS = -1;
    let outE = -1;
    let macS = -1;
    let macE = -1;
    let macSrc = -1;
    let macDst = -1;
    let macProto = -1;
    // IPv4 addresses as printed; IPv6 ones normalised (src6/dst6).
    let srcS = -1;
    let srcE = -1;
    let srcV4 = -1;
    let src6: string | null = null;
    let dstS = -1;
    let dstE = -1;
    let dstV4 = -1;
    let dst6: string | null = null;
    let hasDst = false;
    let ipVersion: 4 | 6 = 4;
    let length = -1;
    let ttl = -1;
    let protocol = "";
    let srcPort = -1;
    let dstPort = -1;
    let icmpType = -1;
    let icmpCode = -1;
    let flags = 0;
    let inFlags = false;
    let transportDone = false;
    let fragment = false;
    let incomplete = false;
    let truncated = false;
    let unknownHeader = false;
    let arp = false;
    /** AH or ESP named among IPv6 extension headers (OPT ( AH ), OPT ( ESP SPI=… )). */
    let extension: string | null = null;
    let seenIn = false;
    /** Whether anything follows an ICMP header's CODE= (see printsAfterCode). */
    let afterCode = false;

    let i = start;
    // The kernel prints fields in one fixed order. Walk that order, checking each expected key where it must be
    // and handling each token exactly as the token loop below would, and leave the loop to carry on from the first
    // token that does not fit (MACDECODE, fragments, options, ICMP errors, trailers, anything malformed). A loop
    // only so that "break fast" can leave it from anywhere; it runs once.
    fast: for (; this.fastPath; ) {
      let c = start + 3;
      let j = tokenEnd(b, c, end);
      seenIn = true;
      inS = j > c ? c : -1;
      inE = j;
      i = j;
      c = j + 1;
      if (!isKey3(b, c, 79, 85, 84)) break; // OUT=
      c += 4;
      j = tokenEnd(b, c, end);
      outS = j > c ? c : -1;
      outE = j;
      i = j;
      c = j + 1;
      if (isKey3(b, c, 77, 65, 67)) {
        c += 4;
        // 41 characters for Ethernet: a native search beats a byte loop at that length.
        j = text.indexOf(" ", c);
        if (j < 0 || j > end) j = end;
        macS = j > c ? c : -1;
        macE = j;
        i = j;
        c = j + 1;
      }
      if (!isKey3(b, c, 83, 82, 67)) break; // SRC=
      c += 4;
      if (scanIpv4(b, c) && b[scanned] === 32) {
        j = scanned;
        srcS = c;
        srcE = j;
        srcV4 = scannedIpv4;
      } else {
        j = tokenEnd(b, c, end);
        const v6 = this.ipv6(b, c, j, this.srcGroups);
        if (v6 === null || j === end) break;
        src6 = v6;
        ipVersion = 6;
      }
      section = 1;
      i = j;
      c = j + 1;
      if (!isKey3(b, c, 68, 83, 84)) break; // DST=
      c += 4;
      if (ipVersion === 4) {
        if (!scanIpv4(b, c) || b[scanned] !== 32) break;
        j = scanned;
        dstS = c;
        dstE = j;
        dstV4 = scannedIpv4;
      } else {
        j = tokenEnd(b, c, end);
        const v6 = this.ipv6(b, c, j, this.dstGroups);
        if (v6 === null || j === end) break;
        dst6 = v6;
      }
      hasDst = true;
      i = j;
      c = j + 1;
      if (!isKey3(b, c, 76, 69, 78)) break; // LEN=
      let n = scanDigits(b, c + 4);
      if (n < 0 || n > 0xffffffff || b[scanned] !== 32) break;
      length = n;
      i = scanned;
      c = i + 1;
      if (ipVersion === 4) {
        // TOS, PREC and ID are whole tokens the record does not carry: jump over them.
        if (!isKey3(b, c, 84, 79, 83)) break; // TOS=
        i = hexTokenEnd(b, c, 8, end);
        c = i + 1;
        if (!isKey4(b, c, 80, 82, 69, 67)) break; // PREC=
        i = hexTokenEnd(b, c, 9, end);
        c = i + 1;
        if (!isKey3(b, c, 84, 84, 76)) break; // TTL=
        n = scanDigits(b, c + 4);
        if (n < 0 || n > 255 || b[scanned] !== 32) break;
        ttl = n;
        i = scanned;
        c = i + 1;
        if (!isKey2(b, c, 73, 68)) break; // ID=
        i = tokenEnd(b, c, end);
        c = i + 1;
        // CE DF MF
        while (
          b[c + 2] === 32 &&
          ((b[c] === 68 && b[c + 1] === 70) ||
            (b[c] === 67 && b[c + 1] === 69) ||
            (b[c] === 77 && b[c + 1] === 70))
        ) {
          i = c + 2;
          c += 3;
        }
      } else {
        if (!isKey2(b, c, 84, 67)) break; // TC=
        i = tokenEnd(b, c, end);
        c = i + 1;
        if (!has(b, c, "HOPLIMIT=")) break;
        n = scanDigits(b, c + 9);
        if (n < 0 || n > 255 || b[scanned] !== 32) break;
        ttl = n;
        i = scanned;
        c = i + 1;
        if (!has(b, c, "FLOWLBL=")) break;
        i = tokenEnd(b, c, end);
        c = i + 1;
      }
      if (!isProtoKey(b, c)) break;
      c += 6;
      j = tokenEnd(b, c, end);
      const name = protocolName(text, b, c, j);
      // (The token loop words the error.)
      if (name === null) break;
      protocol = name;
      section = 2;
      i = j;
      c = j + 1;
      const isTcp = protocol === "TCP";
      if (isTcp || protocol === "UDP") {
        if (!isKey3(b, c, 83, 80, 84)) break; // SPT=
        n = scanDigits(b, c + 4);
        if (n < 0 || n > 65535 || b[scanned] !== 32) break;
        srcPort = n;
        i = scanned;
        c = i + 1;
        if (!isKey3(b, c, 68, 80, 84)) break; // DPT=
        n = scanDigits(b, c + 4);
        if (n < 0 || n > 65535 || b[scanned] !== 32) break;
        dstPort = n;
        i = scanned;
        c = i + 1;
      }
      if (isTcp) {
        if (has(b, c, "SEQ=")) {
          i = tokenEnd(b, c, end);
          c = i + 1;
          if (!has(b, c, "ACK=")) break;
          i = tokenEnd(b, c, end);
          c = i + 1;
        }
        if (!isWindowKey(b, c)) break;
        i = tokenEnd(b, c, end);
        c = i + 1;
        if (!isKey3(b, c, 82, 69, 83)) break; // RES=
        i = hexTokenEnd(b, c, 8, end);
        c = i + 1;
        inFlags = true;
        while (!isKey4(b, c, 85, 82, 71, 80)) {
          const width = b[c + 3] === 32 ? 3 : b[c + 2] === 32 ? 2 : 0;
          if (width === 0) break fast;
          const flag = tcpFlag(b, c, c + width);
          if (flag < 0) break fast;
          flags |= 1 << flag;
          i = c + width;
          c = i + 1;
        }
        scanDigits(b, c + 5);
        if (scanned !== end && b[scanned] !== 32) break;
        inFlags = false;
        transportDone = true;
        i = scanned;
      } else if (protocol === "UDP") {
        if (!isKey3(b, c, 76, 69, 78)) break; // LEN=
        scanDigits(b, c + 4);
        if (scanned !== end && b[scanned] !== 32) break;
        transportDone = true;
        i = scanned;
      } else if (protocol === "ICMP" || protocol === "ICMPv6") {
        if (!isKey4(b, c, 84, 89, 80, 69)) break; // TYPE=
        n = scanDigits(b, c + 5);
        if (n < 0 || n > 255 || b[scanned] !== 32) break;
        icmpType = n;
        i = scanned;
        c = i + 1;
        if (!isKey4(b, c, 67, 79, 68, 69)) break; // CODE=
        n = scanDigits(b, c + 5);
        if (n < 0 || n > 255 || (scanned !== end && b[scanned] !== 32)) break;
        icmpCode = n;
        i = scanned;
      }
      break;
    }
    while (i < end) {
      const c = b[i] as number;
      if (c === 32) {
        i++;
        continue;
      }
      if (icmpCode >= 0) afterCode = true;
      if (c === 91) {
        // An ICMP error's quoted packet, or INCOMPLETE's byte count: never part of the outer record.
        i = skipBracketed(text, i, end);
        continue;
      }
      const j = tokenEnd(b, i, end);
      // Keys are at most 9 characters: look for "=" no further.
      let eq = -1;
      const keyLimit = j - i > 10 ? i + 10 : j;
      for (let k = i; k < keyLimit; k++) {
        if (b[k] === 61) {
          eq = k;
          break;
        }
      }
      if (eq > i) {
        const vs = eq + 1;
        switch (packKey(b, i, eq)) {
          case K_IN:
            if (seenIn) return fail("a second IN= in one line: two packet logs run together");
            seenIn = true;
            inS = vs < j ? vs : -1;
            inE = j;
            break;
          case K_OUT:
            if (section === 0) {
              outS = vs < j ? vs : -1;
              outE = j;
            }
            break;
          case K_MAC:
            if (section === 0) {
              macS = vs < j ? vs : -1;
              macE = j;
            }
            break;
          case K_SRC: {
            if (section !== 0) return fail("a second SRC= outside a quoted packet");
            const v4 = readDottedQuad(b, vs, j);
            if (v4 >= 0) {
              srcS = vs;
              srcE = j;
              srcV4 = v4;
            } else {
              src6 = this.ipv6(b, vs, j, this.srcGroups);
              if (src6 === null) return fail(`SRC= is not an IP address: ${quote(text, vs, j)}`);
              ipVersion = 6;
            }
            section = 1;
            break;
          }
          case K_DST:
            if (section === 1) {
              if (hasDst) return fail("a second DST= outside a quoted packet");
              const v4 = ipVersion === 4 ? readDottedQuad(b, vs, j) : -1;
              if (v4 >= 0) {
                dstS = vs;
                dstE = j;
                dstV4 = v4;
              } else {
                dst6 = ipVersion === 6 && !isIpv4(b, vs, j) ? this.ipv6(b, vs, j, this.dstGroups) : null;
                if (dst6 === null)
                  return fail(`DST= is not an IPv${ipVersion} address: ${quote(text, vs, j)}`);
              }
              hasDst = true;
            }
            break;
          case K_LEN:
            if (section === 1) {
              if (length >= 0) return fail("a second LEN= in the IP header");
              length = readUint(b, vs, j, 0xffffffff);
              if (length < 0) return fail(`LEN= is not a length: ${quote(text, vs, j)}`);
            } else if (section === 2) {
              transportDone = true;
            }
            break;
          case K_TTL:
          case K_HOPLIMIT:
            if (section === 1) {
              if (eq - i === 8 && !has(b, i, "HOPLIMIT")) break;
              ttl = readUint(b, vs, j, 255);
              if (ttl < 0) return fail(`${text.slice(i, eq)}= is not a hop count: ${quote(text, vs, j)}`);
            }
            break;
          case K_PROTO:
            if (section === 2) return fail("a second PROTO= outside a quoted packet");
            if (section === 0) return fail("PROTO= before SRC=");
            if (vs === j) return fail("empty PROTO=");
            {
              const name = protocolName(text, b, vs, j);
              if (name === null) {
                return fail(
                  `PROTO= is not a protocol name or number (1 to ${MAX_PROTOCOL_LENGTH} ASCII letters and digits): ${quote(text, vs, j)}`,
                );
              }
              protocol = name;
            }
            section = 2;
            break;
          case K_SPT:
            if (section === 2) {
              srcPort = readUint(b, vs, j, 65535);
              if (srcPort < 0) return fail(`SPT= is not a port: ${quote(text, vs, j)}`);
            }
            break;
          case K_DPT:
            if (section === 2) {
              dstPort = readUint(b, vs, j, 65535);
              if (dstPort < 0) return fail(`DPT= is not a port: ${quote(text, vs, j)}`);
            }
            break;
          case K_RES:
            if (section === 2) inFlags = true;
            break;
          case K_URGP:
            if (section === 2) {
              inFlags = false;
              transportDone = true;
            }
            break;
          case K_TYPE:
            if (section === 2 && icmpType < 0) {
              icmpType = readUint(b, vs, j, 255);
              if (icmpType < 0) return fail(`TYPE= is not an ICMP type: ${quote(text, vs, j)}`);
            }
            break;
          case K_CODE:
            if (section === 2 && icmpCode < 0) {
              icmpCode = readUint(b, vs, j, 255);
              if (icmpCode < 0) return fail(`CODE= is not an ICMP code: ${quote(text, vs, j)}`);
            }
            break;
          case K_MACSRC:
            if (section === 0 && has(b, i, "MACSRC")) macSrc = vs;
            break;
          case K_MACDST:
            if (section === 0 && has(b, i, "MACDST")) macDst = vs;
            break;
          case K_MACPROTO:
            if (section === 0 && j - vs === 4 && has(b, i, "MACPROTO")) macProto = vs;
            break;
          default:
            // SEQ ACK WINDOW TOS PREC ID TC FLOWLBL PHYSIN PHYSOUT TUNNEL VPROTO VID GATEWAY PARAMETER POINTER MTU SPI
            // UID GID MARK, and any field a newer kernel adds: nothing the record carries.
            break;
        }
      } else if (inFlags) {
        const flag = tcpFlag(b, i, j);
        if (flag < 0) {
          if (j === end) return fail("TCP fields end before URGP=: line cut short");
          return fail(`unexpected ${quote(text, i, j)} among the TCP flags`);
        }
        flags |= 1 << flag;
      } else {
        switch (b[i]) {
          case 70: // FRAG:<offset>, present only for a fragment after the first when the offset is non-zero
            if (section === 1 && j - i > 5 && has(b, i, "FRAG:")) {
              // An IPv6 fragment header the kernel could not read.
              if (j - i === 14 && has(b, i + 5, "TRUNCATED")) {
                truncated = true;
                break;
              }
              const offset = readUint(b, i + 5, j, 0xffff);
              if (offset < 0) return fail(`FRAG: is not an offset: ${quote(text, i, j)}`);
              if (offset > 0) fragment = true;
            }
            break;
          case 73: // INCOMPLETE: the transport header was not in the packet (in the IP section: more fragments)
            if (section === 2 && j - i === 10 && has(b, i, "INCOMPLETE")) incomplete = true;
            break;
          case 84: // TRUNCATED: the kernel could not read a header
            if (j - i === 9 && has(b, i, "TRUNCATED")) truncated = true;
            break;
          case 85: // Unknown Ext Hdr <n>
            if (section === 1 && j - i === 7 && has(b, i, "Unknown")) unknownHeader = true;
            break;
          case 65: // ARP HTYPE=..., or an IPv6 AH header
            if (section === 0 && j - i === 3 && has(b, i, "ARP")) arp = true;
            else if (section === 1 && j - i === 2 && has(b, i, "AH")) extension = "AH";
            break;
          case 69: // an IPv6 ESP header
            if (section === 1 && j - i === 3 && has(b, i, "ESP")) extension = "ESP";
            break;
          default:
            // DF MF CE, OPT (..), AH, ESP, "(", ")": flags and options the record does not carry.
            break;
        }
      }
      i = j;
    }

    if (section === 0) {
      if (arp) return fail("an ARP packet, not an IP packet");
      if (truncated) return fail("the kernel could not read the IP header (TRUNCATED)");
      return fail("no SRC=: the line ends before the IP header");
    }
    if (!hasDst) return fail("no DST=");
    if (length < 0) return fail("no LEN=");
    if (section === 1) {
      if (unknownHeader) return fail("an IPv6 extension header the kernel does not decode: no protocol");
      if (truncated) {
        return fail(
          ipVersion === 4
            ? "the kernel could not read the IP options (TRUNCATED)"
            : "the kernel could not read an IPv6 extension header (TRUNCATED)",
        );
      }
      // Packets nf_log_syslog prints without PROTO=: an IPv4 AH fragment after the first; IPv6 ESP ("OPT ( ESP
      // SPI=… )" when IP options are logged, else nothing after FLOWLBL= or after the fragment header's ID:); an
      // IPv6 AH fragment after the first ("OPT ( AH )"). After a later fragment's header, a hop-by-hop, routing
      // or destination options header also ends the line unnamed: then the protocol is not known.
      const v6End = ipVersion === 6 ? ipv6HeaderEnd(b, start, end) : 0;
      if (extension !== null) protocol = extension;
      else if (ipVersion === 4 && fragment) protocol = "AH";
      else if (v6End === 1 || (v6End === 2 && !fragment)) protocol = "ESP";
      else if (v6End === 2)
        return fail("an IPv6 fragment after the first whose next header the kernel does not name");
      else return fail("no PROTO=: the line ends in the IP header");
    }
    const tcp = protocol === "TCP";
    if (!fragment && !incomplete) {
      if (tcp || protocol === "UDP" || protocol === "UDPLITE") {
        if (srcPort < 0) return fail(`${protocol} without SPT=`);
        if (dstPort < 0) return fail(`${protocol} without DPT=`);
        if (!transportDone) {
          return fail(
            tcp ? "TCP fields end before URGP=: line cut short" : `${protocol} fields end before LEN=`,
          );
        }
      } else if (protocol === "ICMP" || protocol === "ICMPv6") {
        if (icmpType < 0) return fail(`${protocol} without TYPE=`);
        if (icmpCode < 0) return fail(`${protocol} without CODE=`);
        if (!afterCode && printsAfterCode(protocol === "ICMPv6", icmpType)) {
          return fail(`${protocol} fields end at CODE=, where type ${icmpType} has more: line cut short`);
        }
      }
    }

    let macText: string | null = null;
    if (macS < 0 && macSrc >= 0 && macDst >= 0 && macProto >= 0) {
      // MACDECODE splits what MAC= prints (destination, source, EtherType); put it back in MAC= form.
      const dstEnd = text.indexOf(" ", macDst);
      const srcEnd = text.indexOf(" ", macSrc);
      if (dstEnd > macDst && srcEnd > macSrc && dstEnd <= end && srcEnd <= end) {
        macText = `${text.slice(macDst, dstEnd)}:${text.slice(macSrc, srcEnd)}:${text.slice(macProto, macProto + 2)}:${text.slice(macProto + 2, macProto + 4)}`;
      }
    }

    let time: string | null = null;
    if (this.stampKind === 1 || !Number.isNaN(outerMs)) {
      const ms = this.stampKind === 1 ? this.stampMs : outerMs;
      time = this.iso(ms);
      if (time === null) return fail(outsideLineTimes(ms));
    } else if (this.stampKind === 2) {
      time = this.syslogIso();
      if (time === null) {
        const ms = this.lastSyslogMs;
        this.missingDate = Number.isNaN(ms);
        return fail(
          Number.isNaN(ms)
            ? `the date ${this.stamp.month}-${this.stamp.day} does not exist in ${this.year ?? "the inferred year"}`
            : outsideLineTimes(ms),
        );
      }
    } else if (this.stampKind === 3) {
      const at = this.stampAt;
      const stop = text.indexOf(" ", at + 11);
      return fail(`the timestamp ${quote(text, at, stop < 0 ? at + 19 : stop)} names no instant`);
    }
    const node = outerHost === null ? null : this.nodeName(outerHost);

    if (!this.encoding) {
      let tcpFlags: readonly string[];
      if (!tcp || flags === 0) {
        tcpFlags = NO_FLAGS;
      } else if (flags === SYN_ONLY) {
        // Most denied packets are connection attempts.
        tcpFlags = SYN_FLAGS;
      } else {
        tcpFlags = flagNames(flags);
      }
      const record: PacketRecord = {
        time,
        node: this.hostS >= 0 ? text.slice(this.hostS, this.hostE) : node,
        prefix,
        policy: this.format === null ? null : decodePolicy(this.format, prefix),
        inInterface: inS >= 0 ? text.slice(inS, inE) : null,
        outInterface: outS >= 0 ? text.slice(outS, outE) : null,
        mac: macS >= 0 ? text.slice(macS, macE) : macText,
        src: srcS >= 0 ? text.slice(srcS, srcE) : (src6 as string),
        dst: dstS >= 0 ? text.slice(dstS, dstE) : (dst6 as string),
        ipVersion,
        length,
        ttl: ttl < 0 ? null : ttl,
        protocol,
        srcPort: srcPort < 0 ? null : srcPort,
        dstPort: dstPort < 0 ? null : dstPort,
        tcpFlags,
        icmpType: icmpType < 0 ? null : icmpType,
        icmpCode: icmpCode < 0 ? null : icmpCode,
      };
      return { kind: "record", record };
    }
    const r = this.fields;
    r.text = text;
    r.b = b;
    r.view = b === this.scratch ? this.scratchView : b === this.withinBytes ? this.withinView : null;
    r.time = time;
    r.nodeS = this.hostS;
    r.nodeE = this.hostE;
    r.node = node;
    r.prefix = prefix;
    r.inS = inS;
    r.inE = inE;
    r.outS = outS;
    r.outE = outE;
    r.macS = macS;
    r.macE = macE;
    r.mac = macText;
    r.srcS = srcS;
    r.srcE = srcE;
    r.srcV4 = srcV4;
    r.src = src6;
    r.dstS = dstS;
    r.dstE = dstE;
    r.dstV4 = dstV4;
    r.dst = dst6;
    r.ipVersion = ipVersion;
    r.length = length;
    r.ttl = ttl;
    r.protocol = protocol;
    r.srcPort = srcPort;
    r.dstPort = dstPort;
    r.flags = tcp ? flags : 0;
    r.icmpType = icmpType;
    r.icmpCode = icmpCode;
    return null;
  }
}

/**
 * A parser for one configuration: options are checked and precomputed once (it throws a RangeError for invalid
 * options); the returned function never throws.
 */
export function createParser(options: ParseOptions = {}): (line: string) => ParseOutcome {
  const parser = new LineParser(options);
  return (line) => parser.scan(line) as ParseOutcome;
}

/**
 * A parser that leaves each record's values in its `fields` (`scan` answers null for a record) instead of
 * building a PacketRecord: for readers that take a few values of every line and keep none of the line's strings,
 * the ingest pipeline and the NDJSON encoder. Throws a RangeError for invalid options, as createParser does.
 */
export function createScanner(options: ParseOptions = {}): LineParser {
  const parser = new LineParser(options);
  parser.encoding = true;
  return parser;
}

/**
 * The same parser without its fast path: every line goes through the token-by-token scanner. Slower; it is the
 * reference the fast path is checked against in tests.
 */
export function createReferenceParser(options: ParseOptions = {}): (line: string) => ParseOutcome {
  const parser = new LineParser(options, false);
  return (line) => parser.scan(line) as ParseOutcome;
}

/** Parses one line. Prefer `createParser` for many lines. */
export function parseLine(line: string, options: ParseOptions = {}): ParseOutcome {
  return new LineParser(options).scan(line) as ParseOutcome;
}
