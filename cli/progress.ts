// Progress of long runs on stderr. On a terminal, a cli-progress bar. Elsewhere (nohup, a CI job, a container,
// `2>run.log`) cli-progress draws nothing, and a run of hours would print nothing until its end: there a plain
// line says every 30 s what the run has done, so that a slow run can be told from a stuck one. (cli-progress's
// own `noTTYOutput` also prints a line as the bar starts and as it stops: two lines in every short run's stderr.)
import cliProgress from "cli-progress";

/** Runs `tick` every `ms` until the function it returns is called. */
export type Every = (ms: number, tick: () => void) => () => void;

/** Between two plain progress lines (and before the first): shorter runs print none. */
export const PLAIN_PROGRESS_MS = 30_000;

const everyInterval: Every = (ms, tick) => {
  const timer = setInterval(tick, ms);
  // The run's end stops it; until then it must not be what keeps the process alive.
  timer.unref();
  return () => clearInterval(timer);
};

/** Where progress goes, and the clocks it runs on (tests replace them). */
export interface ProgressOutput {
  /** @default process.stderr */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** The plain lines' timer. @default setInterval */
  every?: Every;
  /** @default Date.now */
  now?: () => number;
}

export interface ProgressDisplayOptions extends ProgressOutput {
  enabled: boolean;
  /** The bar's cli-progress format, its placeholders those of the payload given to `start` and `update`. */
  format: string;
  /** The plain line, from the run's state at the moment (no newline). */
  line: () => string;
}

/** A bar on a terminal, or else a plain line every PLAIN_PROGRESS_MS; nothing when disabled (`--quiet`). */
export class ProgressDisplay {
  readonly #stream: NodeJS.WritableStream;
  readonly #bar: cliProgress.SingleBar | undefined;
  readonly #stopLines: (() => void) | undefined;

  constructor(options: ProgressDisplayOptions) {
    const stream = options.stream ?? process.stderr;
    this.#stream = stream;
    if (!options.enabled) return;
    if (stream.isTTY === true) {
      this.#bar = new cliProgress.SingleBar(
        { format: options.format, stream, hideCursor: true, clearOnComplete: true, fps: 5 },
        cliProgress.Presets.shades_classic,
      );
    } else {
      const line = options.line;
      this.#stopLines = (options.every ?? everyInterval)(PLAIN_PROGRESS_MS, () =>
        stream.write(`${line()}\n`),
      );
    }
  }

  start(total: number, payload: Record<string, unknown>): void {
    this.#bar?.start(total, 0, payload);
  }

  update(value: number, payload: Record<string, unknown>): void {
    this.#bar?.update(value, payload);
  }

  /** A message line on stderr; with a bar on the terminal, written over it and the bar drawn again below. */
  log(message: string): void {
    if (this.#bar === undefined) {
      this.#stream.write(message);
      return;
    }
    this.#stream.write(`\r\u001b[2K${message}`);
    this.#bar.render();
  }

  stop(): void {
    this.#bar?.stop();
    this.#stopLines?.();
  }
}

/** `1h02m`, `4m05s`, `12s`: how long a run has gone on. */
export function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s >= 3600) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${s}s`;
}

/** Per second over `ms`, rounded (0 before any time has passed). */
export function rate(count: number, ms: number): number {
  return ms > 0 ? Math.round((count * 1000) / ms) : 0;
}

export interface ProgressOptions extends ProgressOutput {
  /** Known size of the input (bytes, events…) for a bar with ETA; undefined for a stream. */
  total?: number;
  enabled: boolean;
}

interface Counts {
  lines: number;
  calico: number;
  flowsApplied: number;
  alertsOpened: number;
}

/** The progress of a run over lines (replay): lines read, calico records, flows and alerts stored, the rate. */
export class Progress {
  readonly #display: ProgressDisplay;
  readonly #now: () => number;
  readonly #started: number;
  readonly #total: number | undefined;
  #value = 0;
  #counts: Counts = { lines: 0, calico: 0, flowsApplied: 0, alertsOpened: 0 };

  constructor(options: ProgressOptions) {
    this.#now = options.now ?? Date.now;
    this.#started = this.#now();
    this.#total = options.total;
    const counters = "{lines} lines | {calico} calico | {flows} flows | {alerts} alerts | {rate} lines/s";
    this.#display = new ProgressDisplay({
      ...options,
      format: options.total ? `{bar} {percentage}% | ${counters} | ETA {eta_formatted}` : counters,
      line: () => this.#line(),
    });
    this.#display.start(options.total ?? 0, { lines: 0, calico: 0, flows: 0, alerts: 0, rate: 0 });
  }

  update(value: number, counts: Counts): void {
    this.#value = value;
    this.#counts = { ...counts };
    this.#display.update(value, {
      lines: counts.lines,
      calico: counts.calico,
      flows: counts.flowsApplied,
      alerts: counts.alertsOpened,
      rate: rate(counts.lines, this.#now() - this.#started),
    });
  }

  #line(): string {
    const c = this.#counts;
    const ms = this.#now() - this.#started;
    const share = this.#total ? ` (${Math.floor((100 * this.#value) / this.#total)}% of the input)` : "";
    return (
      `progress after ${elapsed(ms)}: ${c.lines} lines read${share}, ${c.calico} calico records, ` +
      `${c.flowsApplied} flow updates, ${c.alertsOpened} alerts, ${rate(c.lines, ms)} lines/s`
    );
  }

  /** A message line on stderr; with a bar on the terminal, written over it and the bar drawn again below. */
  log(message: string): void {
    this.#display.log(message);
  }

  stop(): void {
    this.#display.stop();
  }
}
