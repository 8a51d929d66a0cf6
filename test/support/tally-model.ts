// A reference model of the denial tally (functions/core/ports.ts, DenialTally), in memory: the differential test
// holds the DynamoDB adapter to it, and the rule tests count with it where the store is not the subject.
import { tallyMember } from "../../functions/adapters/dynamo/keys.ts";
import type { DenialTally, TallyEntry, TallyVerdict } from "../../functions/core/ports.ts";

export class TallyModel implements DenialTally {
  readonly #sets = new Map<string, Set<string>>();
  readonly #verdicts = new Map<string, Set<string>>();
  /** Every entry asked about, in order. */
  readonly asked: TallyEntry[] = [];

  async tally(entries: readonly TallyEntry[], options: { windowMs: number; cap: number }): Promise<number[]> {
    const { windowMs, cap } = options;
    return entries.map((e) => {
      this.asked.push(e);
      const start = Math.floor(e.atMs / windowMs) * windowMs;
      const set = (at: number) => {
        const id = `${e.cluster}\n${e.subject}\n${at}`;
        let s = this.#sets.get(id);
        if (s === undefined) {
          s = new Set();
          this.#sets.set(id, s);
        }
        return s;
      };
      const current = set(start);
      // Full already: nothing is added, and the count is the cap.
      if (current.size >= cap) return cap;
      for (const m of [...new Set(e.members.map(tallyMember))].sort().slice(0, cap)) current.add(m);
      if (current.size >= cap) return current.size;
      return new Set([...current, ...set(start - windowMs), ...set(start + windowMs)]).size;
    });
  }

  async loadVerdict(cluster: string, contribution: string): Promise<TallyVerdict | undefined> {
    const over = this.#verdicts.get(`${cluster}\n${contribution}`);
    return over === undefined ? undefined : { over: (subject) => over.has(subject) };
  }

  async saveVerdict(cluster: string, contribution: string, over: readonly string[]): Promise<TallyVerdict> {
    const id = `${cluster}\n${contribution}`;
    if (!this.#verdicts.has(id)) this.#verdicts.set(id, new Set(over));
    return (await this.loadVerdict(cluster, contribution)) as TallyVerdict;
  }
}
