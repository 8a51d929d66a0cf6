// `flows --group`: the flows of a range summed into conversations. A flow record is one bucket (a minute) of one
// pod pair as one node logged it, so a day of one denied retry loop is 1,440 rows; an operator asking "what is
// being denied" wants it once, with its totals. A conversation is what a reader tells apart in the table: the
// source and destination as printed (a pod's workload, a node, an address), the port and protocol, the direction
// (which side's policy denied) and the policy.
import { alertEndpointKey } from "../functions/core/alert-rules.ts";
import type { FlowRecord, PolicyRef } from "../functions/core/types.ts";
import { describeEndpoint } from "./format.ts";

/** One conversation: what `flows --group --json` prints, one per line. */
export interface Conversation {
  src: string;
  dst: string;
  protocol: string;
  dstPort: number | null;
  direction: FlowRecord["direction"];
  internal: boolean;
  policy: PolicyRef | null;
  packets: number;
  bytes: number;
  /** Flow records summed: buckets × pods × reporting nodes. */
  flows: number;
  /** The nodes that logged it, sorted. */
  reporters: string[];
  firstSeen: string;
  lastSeen: string;
}

/** Sums flows into conversations as they are read, so that a long range is never held whole. */
export class ConversationTally {
  readonly #byKey = new Map<string, Conversation & { key: string; nodes: Set<string> }>();
  #flows = 0;

  /** Flow records added so far. */
  get flows(): number {
    return this.#flows;
  }

  add(f: FlowRecord): void {
    this.#flows++;
    const src = describeEndpoint(f.src);
    const dst = describeEndpoint(f.dst);
    // Keyed by what each end is (kind and alert name), not by its printed text, which a node and a pod of a
    // namespace named "node" can share.
    const key = JSON.stringify([
      f.src.kind,
      alertEndpointKey(f.src),
      f.dst.kind,
      alertEndpointKey(f.dst),
      f.protocol,
      f.dstPort,
      f.direction,
      f.internal,
      f.policy,
    ]);
    const seen = this.#byKey.get(key);
    if (seen === undefined) {
      this.#byKey.set(key, {
        key,
        src,
        dst,
        protocol: f.protocol,
        dstPort: f.dstPort,
        direction: f.direction,
        internal: f.internal,
        policy: f.policy,
        packets: f.packets,
        bytes: f.bytes,
        flows: 1,
        reporters: [],
        nodes: new Set([f.reporter]),
        firstSeen: f.firstSeen,
        lastSeen: f.lastSeen,
      });
      return;
    }
    seen.packets += f.packets;
    seen.bytes += f.bytes;
    seen.flows++;
    seen.nodes.add(f.reporter);
    if (f.firstSeen < seen.firstSeen) seen.firstSeen = f.firstSeen;
    if (f.lastSeen > seen.lastSeen) seen.lastSeen = f.lastSeen;
  }

  /** The conversations, most packets first (then the latest, then by what they are, so the order is stable). */
  conversations(): Conversation[] {
    const order = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
    return [...this.#byKey.values()]
      .sort((a, b) => b.packets - a.packets || order(b.lastSeen, a.lastSeen) || order(a.key, b.key))
      .map(({ key: _key, nodes, ...c }) => ({ ...c, reporters: [...nodes].sort() }));
  }
}
