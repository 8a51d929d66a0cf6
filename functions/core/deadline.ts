// A time budget shared by the Lambda handlers and the work they hand it to.
/**
 * When a piece of work must be done by. A Lambda handler sets it from the invocation's remaining time, less what
 * it keeps back for what must follow: the panic function for the audit record, the announcement and the answer,
 * the ingest function for keeping a failed batch's attribution memo. The CLI has none (each request still has its
 * own timeout). Steps take earlier deadlines from it (`earlier`, `within`), so that what comes after them keeps its
 * share.
 */
export class Deadline {
  readonly #at: number;
  readonly #now: () => number;

  private constructor(at: number, now: () => number) {
    this.#at = at;
    this.#now = now;
  }

  static unbounded(): Deadline {
    return new Deadline(Number.POSITIVE_INFINITY, Date.now);
  }

  /** `ms` from now on the given clock (milliseconds, default the system's). */
  static after(ms: number, now: () => number = Date.now): Deadline {
    return new Deadline(now() + ms, now);
  }

  get bounded(): boolean {
    return Number.isFinite(this.#at);
  }

  /** Milliseconds left, 0 when past; Infinity when unbounded. */
  remainingMs(): number {
    return Math.max(0, this.#at - this.#now());
  }

  /** This deadline brought forward by `ms`: a step's, leaving `ms` to what follows it. */
  earlier(ms: number): Deadline {
    return new Deadline(this.#at - ms, this.#now);
  }

  /** At most `ms` from now, and never past this deadline. */
  within(ms: number): Deadline {
    return new Deadline(Math.min(this.#at, this.#now() + ms), this.#now);
  }
}
