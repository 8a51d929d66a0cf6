// A Kubernetes List answer read one item at a time, keeping only what the live directory reads of each item. A watch
// cache before Kubernetes 1.34 answers a first list (resourceVersion=0) as one page of every object however small
// the `limit`: read whole, as @kubernetes/client-node reads it (the text, JSON.parse's tree and its typed models, all
// at once), a 24,000-pod cluster's 176 MB list took a 1 GB function past its memory (1,194 MB; 510–535 MB this way).
// A watch's events are read the same way, one line each.
import { ApiException, type Configuration } from "@kubernetes/client-node";
import { kubeGet } from "./cluster-access.ts";

/** What a List's `metadata` says of the list (the JSON names, not client-node's `_continue`). */
export interface ListMeta {
  continue?: string;
  resourceVersion?: string;
}

export interface LeanList {
  metadata: ListMeta;
  /** Each item as `pick` left it. */
  items: unknown[];
}

/** Query parameters of a list request, by their API names; undefined ones are not sent. */
export type ListQuery = Readonly<Record<string, string | number | undefined>>;

type Obj = Record<string, unknown>;

/** `value`'s `keys` that it has, as a new object; anything but an object as it is (for holders.ts to refuse). */
function only(
  value: unknown,
  keys: readonly string[],
  nested: Readonly<Record<string, (v: unknown) => unknown>> = {},
) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const out: Obj = {};
  for (const key of keys) {
    if (!Object.hasOwn(value, key)) continue;
    const field = (value as Obj)[key];
    const shrink = nested[key];
    out[key] = shrink === undefined ? field : shrink(field);
  }
  return out;
}

const each = (shrink: (v: unknown) => unknown) => (value: unknown) =>
  Array.isArray(value) ? value.map(shrink) : value;

const containerStatus = (s: unknown) =>
  only(s, ["state"], {
    state: (state) => only(state, ["terminated"], { terminated: (t) => only(t, ["finishedAt"]) }),
  });

/**
 * The fields of a pod that functions/core/holders.ts (podToHolders, hostNetworkNodeHolders, workloadOf) reads:
 * identity, owners and the labels naming a ReplicaSet's workload, node and hostNetwork, addresses, phase and the
 * times of its lifetime. Without them go managedFields, annotations, containers, volumes: nearly all of a pod.
 */
export function leanPod(pod: unknown): unknown {
  return only(pod, ["kind", "metadata", "spec", "status"], {
    metadata: (m) =>
      only(
        m,
        ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "labels", "ownerReferences"],
        {
          ownerReferences: each((o) => only(o, ["kind", "name", "controller"])),
        },
      ),
    spec: (s) => only(s, ["nodeName", "hostNetwork"]),
    status: (s) =>
      only(
        s,
        [
          "phase",
          "podIP",
          "podIPs",
          "startTime",
          "conditions",
          "containerStatuses",
          "initContainerStatuses",
          "ephemeralContainerStatuses",
        ],
        {
          conditions: each((c) => only(c, ["lastTransitionTime"])),
          containerStatuses: each(containerStatus),
          initContainerStatuses: each(containerStatus),
          ephemeralContainerStatuses: each(containerStatus),
        },
      ),
  });
}

/** The fields of a node that holders.ts's nodeToHolders reads (not its images, conditions or capacity). */
export function leanNode(node: unknown): unknown {
  return only(node, ["kind", "metadata", "status"], {
    metadata: (m) => only(m, ["name", "uid", "creationTimestamp", "deletionTimestamp"]),
    status: (s) => only(s, ["addresses"]),
  });
}

/** The fields of a namespace that holders.ts's namespaceLabels reads. */
export function leanNamespace(namespace: unknown): unknown {
  return only(namespace, ["kind", "metadata"], { metadata: (m) => only(m, ["name", "labels"]) });
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * Splits the JSON text of a List, chunk by chunk, into its top-level members (kept as text, parsed at the end: they
 * are small) and the elements of its `items` array (each parsed alone and handed to `pick` at once). Only the
 * structure is scanned here; JSON.parse reads every piece, and refuses what is not JSON.
 */
class ListSplitter {
  readonly #pick: (item: unknown) => unknown;
  readonly items: unknown[] = [];
  readonly #members: string[] = [];
  /** Nesting of objects and arrays at the current byte (1: inside the List object). */
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** Inside the `items` array: its elements are at depth 2. */
  #inItems = false;
  #itemsSeen = false;
  #ended = false;
  /** The piece (member or item) being read, when one is: its earlier chunks, and where it starts in this one. */
  #parts: Uint8Array[] = [];
  #start = -1;

  constructor(pick: (item: unknown) => unknown) {
    this.#pick = pick;
  }

  write(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (b === BACKSLASH) this.#escaped = true;
        else if (b === QUOTE) this.#inString = false;
        continue;
      }
      if (this.#ended) {
        if (!isSpace(b)) throw new SyntaxError("unexpected text after the end of the list");
        continue;
      }
      if (this.#start < 0 && this.#depth === 1 && !isSpace(b) && b !== COMMA && b !== CLOSE_OBJECT) {
        throw new SyntaxError(`unexpected "${String.fromCharCode(b)}" after the items`);
      }
      if (b === QUOTE) this.#inString = true;
      else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
        if (this.#depth === 0) {
          if (b !== OPEN_OBJECT) throw new SyntaxError("the answer is not a JSON object");
          this.#start = i + 1;
        } else if (this.#depth === 1 && b === OPEN_ARRAY && this.#memberKey(chunk, i) === "items") {
          // The items are read one by one rather than kept as the member's text.
          this.#inItems = true;
          this.#itemsSeen = true;
          this.#parts = [];
          this.#start = i + 1;
        }
        this.#depth++;
      } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        this.#depth--;
        // The brackets that end the items and the List must be the ones they close; deeper ones are checked by
        // JSON.parse, with the piece they are in.
        const closes =
          this.#inItems && this.#depth === 1 ? CLOSE_ARRAY : this.#depth === 0 ? CLOSE_OBJECT : b;
        if (b !== closes) throw new SyntaxError(`unexpected "${String.fromCharCode(b)}"`);
        if (this.#inItems && this.#depth === 1) {
          this.#item(chunk, i, true);
          this.#inItems = false;
        } else if (this.#depth === 0) {
          this.#member(chunk, i);
          this.#ended = true;
          this.#start = -1;
        } else if (this.#depth < 0) throw new SyntaxError(`unexpected "${String.fromCharCode(b)}"`);
      } else if (b === COMMA) {
        if (this.#inItems && this.#depth === 2) this.#item(chunk, i, false);
        else if (this.#depth === 1) this.#member(chunk, i);
      } else if (this.#depth === 0 && !isSpace(b)) throw new SyntaxError("the answer is not a JSON object");
    }
    if (this.#start >= 0) this.#parts.push(chunk.subarray(this.#start));
    this.#start = this.#start >= 0 ? 0 : -1;
  }

  /** The List's members but its items, parsed; throws SyntaxError when the text ended inside the List. */
  end(): Obj {
    if (!this.#ended) throw new SyntaxError("the answer ended before the list did");
    const rest = JSON.parse(`{${this.#members.join(",")}}`) as Obj;
    if (!this.#itemsSeen && rest.items !== undefined && rest.items !== null) {
      throw new SyntaxError(`items is ${JSON.stringify(rest.items)?.slice(0, 40)}, not a list`);
    }
    return rest;
  }

  /** The text of the piece that ends at `end` of `chunk`; the next one starts after it. */
  #take(chunk: Uint8Array, end: number): string {
    const bytes = Buffer.concat([...this.#parts, chunk.subarray(this.#start, end)]);
    this.#parts = [];
    this.#start = end + 1;
    return bytes.toString("utf8");
  }

  #item(chunk: Uint8Array, end: number, last: boolean): void {
    const text = this.#take(chunk, end);
    // `[]`: no item at all.
    if (last && this.items.length === 0 && text.trim() === "") {
      this.#start = -1;
      return;
    }
    this.items.push(this.#pick(JSON.parse(text)));
    // After the array, up to the next member, nothing is kept.
    if (last) this.#start = -1;
  }

  #member(chunk: Uint8Array, end: number): void {
    if (this.#start < 0) {
      // The end of the items member.
      this.#start = end + 1;
      return;
    }
    const text = this.#take(chunk, end);
    if (text.trim() !== "") this.#members.push(text);
  }

  /** The key of the member whose value opens at `at` (its text so far is `"key" :`). */
  #memberKey(chunk: Uint8Array, at: number): string | undefined {
    const text = Buffer.concat([...this.#parts, chunk.subarray(this.#start, at)])
      .toString("utf8")
      .trim();
    if (!text.endsWith(":")) return undefined;
    const key: unknown = JSON.parse(text.slice(0, -1));
    return typeof key === "string" ? key : undefined;
  }
}

/**
 * Reads the List JSON of `body`, then each item through `pick`. The bytes are taken first, as they arrive, and read
 * after: parsing as they came would slow the transfer down by the parse (the time of JSON.parse-ing every item), a
 * large list's seconds. They are the one copy of the answer kept meanwhile, outside the JavaScript heap, and each
 * chunk is let go once read.
 */
export async function readList(
  body: AsyncIterable<Uint8Array>,
  pick: (item: unknown) => unknown,
): Promise<LeanList> {
  const chunks: (Uint8Array | undefined)[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const splitter = new ListSplitter(pick);
  for (let i = 0; i < chunks.length; i++) {
    splitter.write(chunks[i] as Uint8Array);
    chunks[i] = undefined;
  }
  const { metadata } = splitter.end();
  const meta: ListMeta = {};
  if (typeof metadata === "object" && metadata !== null) {
    const { continue: token, resourceVersion } = metadata as Obj;
    if (typeof token === "string") meta.continue = token;
    if (typeof resourceVersion === "string") meta.resourceVersion = resourceVersion;
  }
  return { metadata: meta, items: splitter.items };
}

/**
 * A list request (GET `path`) through the same configuration as kubeApiClient's clients (authentication, CA,
 * deadline, User-Agent), its answer read by readList rather than by client-node's models: so it costs what the
 * picked fields of its items cost, not three copies of the whole answer. Resolves once the answer has started
 * (status and headers), with the reading of its body still to do: a caller's wait for the answer is not its wait
 * for the items, which take as long as they take to come.
 */
export async function listLean(
  config: Configuration,
  path: string,
  query: ListQuery,
  pick: (item: unknown) => unknown,
): Promise<() => Promise<LeanList>> {
  const response = await kubeGet(config, path, query);
  const body = response.body.stream();
  if (body === null) throw new TypeError(`GET ${path} answered without a body`);
  return () => readList(body, pick);
}

/** One event of a watch, its object as `pick` left it (a BOOKMARK's or an ERROR's as it came). */
export interface LeanWatchEvent {
  type: string;
  object: unknown;
  /** The object's `metadata.resourceVersion`: where a later watch takes up after this event. */
  resourceVersion: string | undefined;
  /** performance.now() when it was read: whether a watch was still sending when it ended. */
  receivedAt: number;
}

/** The version of a watch event's object, read before `pick` leaves its metadata out. */
function versionOf(object: unknown): string | undefined {
  const version = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
  return typeof version === "string" && version !== "" ? version : undefined;
}

/**
 * Reads a watch's events (one JSON object a line) until the server ends the watch. An ERROR event (a 410 when the
 * version asked is too old for the watch cache) throws the ApiException a failed request throws, with its Status,
 * so that it is handled as the same answer to a list would be.
 */
export async function readWatch(
  body: AsyncIterable<Uint8Array>,
  pick: (item: unknown) => unknown,
  what: string,
): Promise<LeanWatchEvent[]> {
  const events: LeanWatchEvent[] = [];
  const decoder = new TextDecoder();
  let pending = "";
  const line = (text: string) => {
    if (text.trim() === "") return;
    const event = JSON.parse(text) as { type?: unknown; object?: unknown };
    if (typeof event.type !== "string")
      throw new SyntaxError(`a watch event without a type: ${text.slice(0, 80)}`);
    if (event.type === "ERROR") {
      const status = event.object as { code?: unknown } | null;
      throw new ApiException(typeof status?.code === "number" ? status.code : 500, what, status, {});
    }
    const resourceVersion = versionOf(event.object);
    const object = event.type === "BOOKMARK" ? event.object : pick(event.object);
    events.push({ type: event.type, object, resourceVersion, receivedAt: performance.now() });
  };
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n", start)) {
      line(pending.slice(start, end));
      start = end + 1;
    }
    pending = pending.slice(start);
  }
  line(pending + decoder.decode());
  return events;
}

/**
 * A watch request (GET `path` with `watch=1`) as listLean sends a list, its events read by readWatch. Resolves once
 * the answer has started; the events are there once the server has ended the watch (its `timeoutSeconds`).
 */
export async function watchLean(
  config: Configuration,
  path: string,
  query: ListQuery,
  pick: (item: unknown) => unknown,
): Promise<() => Promise<{ events: LeanWatchEvent[]; answeredAt: number }>> {
  const response = await kubeGet(config, path, { ...query, watch: 1 });
  // When this request was answered (performance.now()): the watch's time runs from then, not from a first request
  // asked again after a 429.
  const answeredAt = performance.now();
  const body = response.body.stream();
  if (body === null) throw new TypeError(`GET ${path} answered without a body`);
  return async () => ({ events: await readWatch(body, pick, `GET ${path}`), answeredAt });
}
