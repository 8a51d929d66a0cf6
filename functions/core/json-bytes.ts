// Byte-level pieces of JSON syntax (RFC 8259) shared by the parser's flat-record reader (parse.ts) and the
// delivery reader (delivery-reader.ts). They read bytes; reading past the end of the array gives undefined,
// which no test here accepts, so a text may end anywhere.

/**
 * Index of the first byte of `b[start, end)` below 0x20, or `end`: eight bytes a round, read as two words through
 * `view` (a word has a byte below 0x20 exactly when `(x - 0x20202020) & ~x & 0x80808080` is not zero).
 */
export function controlAt(b: Uint8Array, view: DataView, start: number, end: number): number {
  let k = start;
  for (; k + 8 <= end; k += 8) {
    const x = view.getInt32(k, true);
    const y = view.getInt32(k + 4, true);
    if ((((x - 0x20202020) & ~x) | ((y - 0x20202020) & ~y)) & 0x80808080) break;
  }
  while (k < end && (b[k] as number) >= 32) k++;
  return k;
}

/** Past JSON whitespace from `i`. */
export function jsonSpace(b: Uint8Array, i: number): number {
  for (;;) {
    const c = b[i];
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return i;
    i++;
  }
}

/** End of a JSON number at `i` (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`), or -1. */
export function jsonNumberEnd(b: Uint8Array, i: number): number {
  if (b[i] === 45) i++;
  if (b[i] === 48) {
    i++;
  } else {
    const first = i;
    while ((b[i] as number) >= 48 && (b[i] as number) <= 57) i++;
    if (i === first) return -1;
  }
  if (b[i] === 46) {
    const first = ++i;
    while ((b[i] as number) >= 48 && (b[i] as number) <= 57) i++;
    if (i === first) return -1;
  }
  if (b[i] === 101 || b[i] === 69) {
    i++;
    if (b[i] === 43 || b[i] === 45) i++;
    const first = i;
    while ((b[i] as number) >= 48 && (b[i] as number) <= 57) i++;
    if (i === first) return -1;
  }
  return i;
}
