// The log events of one subscription delivery, kept where they lie in the delivery's bytes.
//
// A delivery holds thousands of events. Reading each into an object and two strings (id and message) cost about as
// much as parsing its line, and the scanner then copied every message back into bytes. Here an event is its
// timestamp and the positions of its id and message in the delivery's bytes (delivery-reader.ts finds them), and a
// message without escapes is scanned where it lies (LineParser#scanQuoted). The scanner needs the text beside the
// bytes: it is decoded a window of events at a time, one character per byte when the window is ASCII (CloudWatch
// Logs escapes nothing else in calico-packet lines), as a string small enough to die young; a window with other
// bytes decodes each message as UTF-8 instead. Strings are made only when asked for.
import { isAscii } from "node:buffer";
import type { Hash } from "node:crypto";
import type { LineParser, Scan } from "./parse.ts";

/** A log event as CloudWatch Logs knows it: id, own timestamp, text. */
export interface CloudWatchEvent {
  id: string;
  timestamp: number;
  message: string;
}

/**
 * Where an event's strings are. For each event, [start, end) in the delivery's bytes of its id and of its message;
 * a start of -1 means the string is in `ids` or `messages` instead (it held an escape, or the events were given as
 * objects).
 */
export interface EventColumns {
  count: number;
  timestamps: Float64Array;
  idAt: Int32Array;
  messageAt: Int32Array;
  ids: (string | undefined)[];
  messages: (string | undefined)[];
}

/**
 * Bytes of delivery decoded as one window of text: a few dozen events, and far below the size from which V8 puts a
 * string straight into the old generation (a window lives only while its events are scanned).
 */
const WINDOW_BYTES = 32 * 1024;

/** The text the scanner reads a window's messages in, and the bytes under it from the window's start. */
interface Window {
  /** [start, end) of the window in the delivery's bytes. */
  start: number;
  end: number;
  /** The window as text, one character per byte; null when it holds bytes other than ASCII. */
  text: string | null;
  bytes: Uint8Array;
  view: DataView;
}

/** updateWithIds' buffer: ids are joined in it and hashed a chunk at a time. */
const ID_CHUNK = Buffer.allocUnsafe(16 * 1024);
const ID_CHUNK_VIEW = new DataView(ID_CHUNK.buffer, ID_CHUNK.byteOffset, ID_CHUNK.byteLength);

const NO_WINDOW: Window = {
  start: 0,
  end: 0,
  text: null,
  bytes: new Uint8Array(0),
  view: new DataView(new ArrayBuffer(0)),
};

export class DeliveredEvents {
  readonly length: number;
  /** The reporting node of lines that name none: the log stream, which is the node's. */
  readonly node: string | undefined;
  /** The delivery's bytes (the gunzipped JSON); null when every string is in the columns. */
  readonly #bytes: Buffer | null;
  readonly #columns: EventColumns;
  #window: Window = NO_WINDOW;

  /** Events read by the delivery reader (delivery-reader.ts) from `bytes`. */
  constructor(bytes: Buffer | null, columns: EventColumns, node?: string) {
    this.#bytes = bytes;
    this.#columns = columns;
    this.length = columns.count;
    this.node = node;
  }

  /** Events given as objects (backfill pages, tests): every string already made. */
  static fromArray(events: readonly CloudWatchEvent[], node?: string): DeliveredEvents {
    const count = events.length;
    const columns: EventColumns = {
      count,
      timestamps: new Float64Array(count),
      idAt: new Int32Array(2 * count).fill(-1),
      messageAt: new Int32Array(2 * count).fill(-1),
      ids: new Array(count),
      messages: new Array(count),
    };
    for (let i = 0; i < count; i++) {
      const e = events[i] as CloudWatchEvent;
      columns.timestamps[i] = e.timestamp;
      columns.ids[i] = e.id;
      columns.messages[i] = e.message;
    }
    return new DeliveredEvents(null, columns, node);
  }

  #check(i: number): void {
    if (!(i >= 0 && i < this.length && Number.isInteger(i))) {
      throw new RangeError(`event ${i} of ${this.length}`);
    }
  }

  timestamp(i: number): number {
    this.#check(i);
    return this.#columns.timestamps[i] as number;
  }

  id(i: number): string {
    return this.#string(i, this.#columns.idAt, this.#columns.ids);
  }

  message(i: number): string {
    return this.#string(i, this.#columns.messageAt, this.#columns.messages);
  }

  /** Event i's string of the column `at`/`strings` (see EventColumns). */
  #string(i: number, at: Int32Array, strings: (string | undefined)[]): string {
    this.#check(i);
    const start = at[2 * i] as number;
    return start < 0
      ? (strings[i] as string)
      : (this.#bytes as Buffer).toString("utf8", start, at[2 * i + 1]);
  }

  /**
   * The window that holds the bytes [start, end]: the current one, or a new one from `start` on (a message longer
   * than a window gets a window of its own).
   */
  #windowOver(start: number, end: number): Window {
    const w = this.#window;
    if (start >= w.start && end < w.end) return w;
    const b = this.#bytes as Buffer;
    const stop = Math.min(b.length, Math.max(end + 1, start + WINDOW_BYTES));
    // The bytes run on to the delivery's end: the scanner reads a little past a message (its closing quote).
    const bytes = new Uint8Array(b.buffer, b.byteOffset + start, b.length - start);
    const window: Window = {
      start,
      end: stop,
      text: isAscii(bytes.subarray(0, stop - start)) ? b.toString("latin1", start, stop) : null,
      bytes,
      view: new DataView(b.buffer, b.byteOffset + start, b.length - start),
    };
    this.#window = window;
    return window;
  }

  /**
   * The scanner's outcome for event i's message: scanned where it lies in the delivery's bytes when its window is
   * ASCII, else as a string of its own.
   */
  scan(i: number, scanner: LineParser): Scan {
    this.#check(i);
    const c = this.#columns;
    const start = c.messageAt[2 * i] as number;
    if (start < 0) return scanner.scan(c.messages[i] as string);
    const end = c.messageAt[2 * i + 1] as number;
    const w = this.#windowOver(start, end);
    if (w.text === null) return scanner.scan((this.#bytes as Buffer).toString("utf8", start, end));
    return scanner.scanQuoted(w.text, w.bytes, w.view, start - w.start, end - w.start);
  }

  /** These events, reported as coming from `node`. */
  withNode(node: string | undefined): DeliveredEvents {
    return new DeliveredEvents(this.#bytes, this.#columns, node);
  }

  /** The events at `indices`, in that order (the delivery's bytes are shared, not copied). */
  select(indices: readonly number[]): DeliveredEvents {
    const from = this.#columns;
    const count = indices.length;
    const columns: EventColumns = {
      count,
      timestamps: new Float64Array(count),
      idAt: new Int32Array(2 * count),
      messageAt: new Int32Array(2 * count),
      ids: new Array(count),
      messages: new Array(count),
    };
    for (let k = 0; k < count; k++) {
      const i = indices[k] as number;
      this.#check(i);
      columns.timestamps[k] = from.timestamps[i] as number;
      columns.idAt[2 * k] = from.idAt[2 * i] as number;
      columns.idAt[2 * k + 1] = from.idAt[2 * i + 1] as number;
      columns.messageAt[2 * k] = from.messageAt[2 * i] as number;
      columns.messageAt[2 * k + 1] = from.messageAt[2 * i + 1] as number;
      columns.ids[k] = from.ids[i];
      columns.messages[k] = from.messages[i];
    }
    return new DeliveredEvents(this.#bytes, columns, this.node);
  }

  /** Calls `visit` with the UTF-8 bytes of each event's id (a view into the delivery, not to be kept), in order. */
  forEachId(visit: (bytes: Uint8Array, i: number) => void): void {
    const c = this.#columns;
    const b = this.#bytes;
    for (let i = 0; i < this.length; i++) {
      const start = c.idAt[2 * i] as number;
      if (start >= 0 && b !== null) visit(b.subarray(start, c.idAt[2 * i + 1]), i);
      else visit(Buffer.from(c.ids[i] as string, "utf8"), i);
    }
  }

  /**
   * Feeds `hash` the UTF-8 bytes of every event's id, joined by commas (what a delivery's contribution digests),
   * a few kilobytes at a time through a reused buffer: the whole join is 57 bytes an event, and buffers that size
   * made for every delivery drive V8's collections of the old generation (it counts memory outside its heap).
   */
  updateWithIds(hash: Hash): void {
    const c = this.#columns;
    const b = this.#bytes;
    const out = ID_CHUNK;
    // Ids are copied four bytes at a time (an id is 56 digits): half the time of a byte loop, and of a native
    // copy per id, whose call costs as much as the copy.
    const from = b === null ? null : new DataView(b.buffer, b.byteOffset, b.byteLength);
    const to = ID_CHUNK_VIEW;
    let at = 0;
    for (let i = 0; i < this.length; i++) {
      const start = c.idAt[2 * i] as number;
      const end = start >= 0 ? (c.idAt[2 * i + 1] as number) : -1;
      // Room for the comma and the id (the most an id given as a string can take in UTF-8: 3 bytes a unit).
      const room = 1 + (start >= 0 ? end - start : 3 * (c.ids[i] as string).length);
      if (at + room > out.length) {
        hash.update(out.subarray(0, at));
        at = 0;
        if (room > out.length) {
          // An id longer than the buffer: hashed on its own.
          if (i > 0) hash.update(",");
          if (start >= 0 && b !== null) hash.update(b.subarray(start, end));
          else hash.update(c.ids[i] as string, "utf8");
          continue;
        }
      }
      if (i > 0) out[at++] = 44;
      if (start >= 0 && b !== null && from !== null) {
        let k = start;
        for (; k + 4 <= end; k += 4, at += 4) to.setInt32(at, from.getInt32(k));
        for (; k < end; k++) out[at++] = b[k] as number;
      } else {
        at += out.write(c.ids[i] as string, at, "utf8");
      }
    }
    hash.update(out.subarray(0, at));
  }

  /** The events as objects, every string made. */
  toArray(): CloudWatchEvent[] {
    const out: CloudWatchEvent[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) {
      out[i] = { id: this.id(i), timestamp: this.timestamp(i), message: this.message(i) };
    }
    return out;
  }
}
