// IPv6 address text: read any RFC 4291 form (the kernel's %pI6 prints 8 groups of 4 hex digits, uncompressed)
// and print the one canonical RFC 5952 form, so that the same address always compares equal downstream.

/** Scratch for the 8 groups of the address being read: parsing is synchronous, so one buffer serves all calls. */
const groups = new Uint16Array(8);

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * The dotted quad in `b[start, end)` as `%pI4` prints it (four decimal octets, no leading zeros) as an unsigned
 * 32-bit number, or -1 when that is not exactly one.
 */
export function readDottedQuad(b: Uint8Array, start: number, end: number): number {
  if (end - start < 7 || end - start > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? (b[i] as number) : 46;
    if (c === 46) {
      if (digits === 0 || parts === 4) return -1;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else {
      const d = c - 48;
      // (No leading zero and at most 255: so at most three digits.)
      if (d < 0 || d > 9 || (digits > 0 && octet === 0)) return -1;
      octet = octet * 10 + d;
      digits++;
      if (octet > 255) return -1;
    }
  }
  return parts === 4 ? value : -1;
}

/** Value of each hex digit by character code; 255 for any other byte. */
const HEX_VALUE = Uint8Array.from({ length: 256 }, (_, c) => {
  const d = hexDigit(c);
  return d < 0 ? 255 : d;
});

/** Four hex digits at `i` as a group, or -1. */
function readHexGroup4(b: Uint8Array, i: number): number {
  const a = HEX_VALUE[b[i] as number] as number;
  const c = HEX_VALUE[b[i + 1] as number] as number;
  const d = HEX_VALUE[b[i + 2] as number] as number;
  const e = HEX_VALUE[b[i + 3] as number] as number;
  return (a | c | d | e) > 15 ? -1 : (a << 12) | (c << 8) | (d << 4) | e;
}

/** The kernel's `%pI6` form (8 groups of 4 hex digits) at `start`, read into `groups`; false when it is not. */
function readKernelIpv6(b: Uint8Array, start: number): boolean {
  for (let k = 0; k < 8; k++) {
    const at = start + 5 * k;
    if (k > 0 && b[at - 1] !== 58) return false;
    const g = readHexGroup4(b, at);
    if (g < 0) return false;
    groups[k] = g;
  }
  return true;
}

/** Parses `text[start, end)` into `groups`; false when it is not an IPv6 address (zone ids are not accepted). */
function readIpv6(b: Uint8Array, start: number, end: number): boolean {
  // What the kernel prints first; any other spelling (and anything that is not an address) the general way.
  if (end - start === 39 && readKernelIpv6(b, start)) return true;
  if (end - start < 2 || end - start > 45) return false;
  let count = 0;
  let gap = -1;
  let i = start;
  if (b[i] === 58) {
    if (b[i + 1] !== 58) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    if (count === 8) return false;
    const groupStart = i;
    let value = 0;
    while (i < end && i - groupStart < 5) {
      const d = hexDigit(b[i] as number);
      if (d < 0) break;
      value = (value << 4) | d;
      i++;
    }
    const length = i - groupStart;
    if (i < end && b[i] === 46) {
      // An embedded IPv4 address ends the text and fills the last two groups.
      const v4 = count > 6 ? -1 : readDottedQuad(b, groupStart, end);
      if (v4 < 0) return false;
      groups[count] = Math.floor(v4 / 65536);
      groups[count + 1] = v4 & 0xffff;
      count += 2;
      i = end;
      break;
    }
    if (length === 0 || length > 4) return false;
    groups[count++] = value;
    if (i === end) break;
    if (b[i] !== 58) return false;
    i++;
    if (i < end && b[i] === 58) {
      if (gap >= 0) return false;
      gap = count;
      i++;
    } else if (i === end) {
      return false;
    }
  }
  if (gap < 0) return count === 8;
  if (count > 7) return false;
  // Move the groups after "::" to the end and zero the run it stands for.
  const tail = count - gap;
  for (let k = 1; k <= tail; k++) groups[8 - k] = groups[count - k] as number;
  for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  return true;
}

/** Length of the run longestZeroRun found. Synchronous, so one variable serves every call. */
let runLength = 0;

/**
 * Start of the longest run of two or more zero groups, which RFC 5952 §4.2 writes as "::" (the first one wins a
 * tie), or -1; its length is left in runLength.
 */
function longestZeroRun(g: Uint16Array): number {
  let bestStart = -1;
  let bestLength = 1;
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let m = k;
    while (m < 8 && g[m] === 0) m++;
    if (m - k > bestLength) {
      bestStart = k;
      bestLength = m - k;
    }
    k = m;
  }
  runLength = bestLength;
  return bestStart;
}

/** The longest text of an IPv6 address (with an embedded IPv4 address). */
const MAX_TEXT = 45;
/** Scratch for the characters of a string argument, as bytes. */
const chars = new Uint8Array(MAX_TEXT);
/** Scratch for the text formatIpv6Groups makes. */
const textBytes = Buffer.alloc(MAX_TEXT);

/**
 * The RFC 5952 text of the address in `g`: written as bytes, then made a string in one step, which costs less
 * than joining up to fifteen pieces (and leaves a flat string, which hashing and printing want).
 */
export function formatIpv6Groups(g: Uint16Array): string {
  return textBytes.toString("latin1", 0, writeIpv6Groups(g, textBytes, 0));
}

/**
 * The RFC 5952 form (lowercase, no leading zeros, longest zero run as "::") of the IPv6 address in
 * `text[start, end)`, or null when that is not an IPv6 address.
 */
export function normalizeIpv6(text: string, start = 0, end = text.length): string | null {
  const n = end - start;
  if (n < 2 || n > MAX_TEXT) return null;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(start + i);
    // A unit outside ASCII is never part of an address: 0x80 stands for it.
    chars[i] = c < 128 ? c : 0x80;
  }
  return normalizeIpv6Bytes(chars, 0, n);
}

/** normalizeIpv6 for text held one byte per character (the parser's scanning buffer). */
function normalizeIpv6Bytes(b: Uint8Array, start: number, end: number): string | null {
  return readIpv6(b, start, end) ? formatIpv6Groups(groups) : null;
}

/** Reads the IPv6 address in `b[start, end)` into the 8 groups of `into`; false when it is not one. */
export function readIpv6Groups(b: Uint8Array, start: number, end: number, into: Uint16Array): boolean {
  if (!readIpv6(b, start, end)) return false;
  into.set(groups);
  return true;
}

/** Lowercase hex digits, by value. */
const HEX_DIGITS = Uint8Array.from("0123456789abcdef", (c) => c.charCodeAt(0));

function putDecimal(out: Uint8Array, p: number, n: number): number {
  if (n >= 100) out[p++] = 48 + Math.floor(n / 100);
  if (n >= 10) out[p++] = 48 + (Math.floor(n / 10) % 10);
  out[p++] = 48 + (n % 10);
  return p;
}

/** formatIpv6Groups(g) written as ASCII bytes at `p` in `out`; returns the index after it. */
export function writeIpv6Groups(g: Uint16Array, out: Uint8Array, p: number): number {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    for (const c of "::ffff:") out[p++] = c.charCodeAt(0);
    const a = g[6] as number;
    const b = g[7] as number;
    p = putDecimal(out, p, a >> 8);
    out[p++] = 46;
    p = putDecimal(out, p, a & 255);
    out[p++] = 46;
    p = putDecimal(out, p, b >> 8);
    out[p++] = 46;
    return putDecimal(out, p, b & 255);
  }
  const bestStart = longestZeroRun(g);
  const bestLength = runLength;
  for (let k = 0; k < 8; k++) {
    if (k === bestStart) {
      out[p++] = 58;
      if (k === 0) out[p++] = 58;
      k += bestLength - 1;
      continue;
    }
    const v = g[k] as number;
    if (v >= 0x1000) out[p++] = HEX_DIGITS[v >> 12] as number;
    if (v >= 0x100) out[p++] = HEX_DIGITS[(v >> 8) & 15] as number;
    if (v >= 0x10) out[p++] = HEX_DIGITS[(v >> 4) & 15] as number;
    out[p++] = HEX_DIGITS[v & 15] as number;
    if (k < 7) out[p++] = 58;
  }
  return p;
}
