// Hash tables from integer keys to integers from 0, held in typed arrays: open addressing with linear probing.
// KeyTable (keys of six integers, each from 0 to 2^31 - 1) is the flow aggregator's per-packet lookup: one probe
// sequence over a few machine words, where a key of six parts would otherwise cost several Map lookups or a
// string. NumberTable (keys from 0 to 2^32 - 1) finds the pipeline's addresses by their IPv4 value, twice a line.

const ARITY = 6;
const INITIAL_CAPACITY = 1024;

/** Slots for about `expected` keys with the table at most half full: a power of two from 16. */
function capacityFor(expected: number): number {
  let capacity = 16;
  while (capacity < 2 * expected && capacity < 1 << 30) capacity *= 2;
  return capacity;
}

/** A well-mixed 32-bit hash of the six parts (multiply-xorshift rounds, murmur3's finaliser at the end). */
function mix(a: number, b: number, c: number, d: number, e: number, f: number): number {
  let h = Math.imul(a ^ 0x2545f491, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ b, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 13) ^ c, 0xc2b2ae3d);
  h = Math.imul(h ^ (h >>> 16) ^ d, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15) ^ e, 0x165667b1);
  h = Math.imul(h ^ (h >>> 13) ^ f, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Throws a RangeError for a key part or value outside 0 … 2^31 - 1 (the typed arrays would silently wrap it). */
function checkPart(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) {
    throw new RangeError(`key parts and values are integers from 0 to 2^31 - 1, got ${n}`);
  }
}

export class KeyTable {
  #mask: number;
  #keys: Int32Array;
  /** The value of each slot; -1 for an empty one. */
  #values: Int32Array;
  #size = 0;

  /** A table with room for `expected` keys before it grows (it grows as needed either way). */
  constructor(expected: number = INITIAL_CAPACITY / 2) {
    const capacity = capacityFor(expected);
    this.#mask = capacity - 1;
    this.#keys = new Int32Array(capacity * ARITY);
    this.#values = new Int32Array(capacity).fill(-1);
  }

  get size(): number {
    return this.#size;
  }

  /** The value of the key, or -1 when it has none. */
  get(a: number, b: number, c: number, d: number, e: number, f: number): number {
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    let slot = mix(a, b, c, d, e, f) & mask;
    for (;;) {
      const value = values[slot] as number;
      if (value < 0) return -1;
      const k = slot * ARITY;
      if (
        keys[k] === a &&
        keys[k + 1] === b &&
        keys[k + 2] === c &&
        keys[k + 3] === d &&
        keys[k + 4] === e &&
        keys[k + 5] === f
      ) {
        return value;
      }
      slot = (slot + 1) & mask;
    }
  }

  /**
   * Gives a key that has no value the value `value`. Throws a RangeError for a part or value outside the table's
   * range (the typed arrays would silently wrap it).
   */
  add(a: number, b: number, c: number, d: number, e: number, f: number, value: number): void {
    // One check per number, not a loop over an array of them: add() runs for every new flow.
    checkPart(a);
    checkPart(b);
    checkPart(c);
    checkPart(d);
    checkPart(e);
    checkPart(f);
    checkPart(value);
    // At most half full, so that probe sequences stay short.
    if (2 * (this.#size + 1) > this.#values.length) this.#grow();
    this.#place(a, b, c, d, e, f, value);
    this.#size++;
  }

  #place(a: number, b: number, c: number, d: number, e: number, f: number, value: number): void {
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    let slot = mix(a, b, c, d, e, f) & mask;
    while ((values[slot] as number) >= 0) slot = (slot + 1) & mask;
    const k = slot * ARITY;
    keys[k] = a;
    keys[k + 1] = b;
    keys[k + 2] = c;
    keys[k + 3] = d;
    keys[k + 4] = e;
    keys[k + 5] = f;
    values[slot] = value;
  }

  #grow(): void {
    const keys = this.#keys;
    const values = this.#values;
    const capacity = 2 * values.length;
    this.#mask = capacity - 1;
    this.#keys = new Int32Array(capacity * ARITY);
    this.#values = new Int32Array(capacity).fill(-1);
    for (let slot = 0; slot < values.length; slot++) {
      const value = values[slot] as number;
      if (value < 0) continue;
      const k = slot * ARITY;
      this.#place(
        keys[k] as number,
        keys[k + 1] as number,
        keys[k + 2] as number,
        keys[k + 3] as number,
        keys[k + 4] as number,
        keys[k + 5] as number,
        value,
      );
    }
  }
}

/** murmur3's 32-bit finaliser: every bit of the key reaches every bit of the hash. */
function mix32(key: number): number {
  let h = key ^ (key >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const NUMBER_TABLE_CAPACITY = 256;

export class NumberTable {
  #mask = NUMBER_TABLE_CAPACITY - 1;
  /** Each slot's key as a signed 32-bit integer (the key's bits). */
  #keys = new Int32Array(NUMBER_TABLE_CAPACITY);
  /** The value of each slot; -1 for an empty one. */
  #values = new Int32Array(NUMBER_TABLE_CAPACITY).fill(-1);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The value of `key` (an integer from 0 to 2^32 - 1), or -1 when it has none. */
  get(key: number): number {
    const bits = key | 0;
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    let slot = mix32(bits) & mask;
    for (;;) {
      const value = values[slot] as number;
      if (value < 0 || keys[slot] === bits) return value;
      slot = (slot + 1) & mask;
    }
  }

  /**
   * Gives a key that has no value the value `value`. Throws a RangeError for a key or value outside the table's
   * range (the typed arrays would silently wrap it).
   */
  add(key: number, value: number): void {
    if (!Number.isInteger(key) || key < 0 || key > 0xffffffff) {
      throw new RangeError(`keys are integers from 0 to 2^32 - 1, got ${key}`);
    }
    if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
      throw new RangeError(`values are integers from 0 to 2^31 - 1, got ${value}`);
    }
    // At most half full, so that probe sequences stay short.
    if (2 * (this.#size + 1) > this.#values.length) this.#grow();
    this.#place(key | 0, value);
    this.#size++;
  }

  #place(bits: number, value: number): void {
    const values = this.#values;
    const mask = this.#mask;
    let slot = mix32(bits) & mask;
    while ((values[slot] as number) >= 0) slot = (slot + 1) & mask;
    this.#keys[slot] = bits;
    values[slot] = value;
  }

  #grow(): void {
    const keys = this.#keys;
    const values = this.#values;
    const capacity = 2 * values.length;
    this.#mask = capacity - 1;
    this.#keys = new Int32Array(capacity);
    this.#values = new Int32Array(capacity).fill(-1);
    for (let slot = 0; slot < values.length; slot++) {
      const value = values[slot] as number;
      if (value >= 0) this.#place(keys[slot] as number, value);
    }
  }
}
