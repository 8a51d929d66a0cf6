// The flow store as it was when a run failed part-way: half of each batch's flows written, then an error. What sends a
// payload to the on-failure queue, or makes Lambda retry it, with some of its flows already stored.
import type { FlowStore, FlowWriteResult } from "../../functions/core/ports.ts";
import type { FlowRecord } from "../../functions/core/types.ts";

export class HalfWrittenStore implements FlowStore {
  readonly inner: FlowStore;
  readonly #failure: () => Error;
  /** Flows the last write stored before it failed. */
  written = 0;

  /** `failure`: the error each write ends with. @default an Error "injected: timed out after a partial write" */
  constructor(
    inner: FlowStore,
    failure: () => Error = () => new Error("injected: timed out after a partial write"),
  ) {
    this.inner = inner;
    this.#failure = failure;
  }

  async writeFlows(records: readonly FlowRecord[], contribution: string): Promise<FlowWriteResult> {
    const half = await this.inner.writeFlows(records.slice(0, Math.ceil(records.length / 2)), contribution);
    this.written = half.applied;
    throw this.#failure();
  }
  applyAlerts: FlowStore["applyAlerts"] = (c, id, o) => this.inner.applyAlerts(c, id, o);
  markAlertSent: FlowStore["markAlertSent"] = (a, how) => this.inner.markAlertSent(a, how);
  queryFlows: FlowStore["queryFlows"] = (q) => this.inner.queryFlows(q);
  queryAlerts: FlowStore["queryAlerts"] = (q) => this.inner.queryAlerts(q);
}
