// Progress on long inputs, on stderr and only on a terminal (cli-progress stays silent when stderr is piped).
import cliProgress from "cli-progress";

export interface ProgressOptions {
  /** Known size of the input (bytes, events…) for a bar with ETA; undefined for a stream. */
  total?: number;
  enabled: boolean;
}

export class Progress {
  readonly #bar: cliProgress.SingleBar | undefined;
  readonly #started = Date.now();

  constructor(options: ProgressOptions) {
    if (!options.enabled || !process.stderr.isTTY) return;
    const counters = "{lines} lines | {calico} calico | {flows} flows | {alerts} alerts | {rate} lines/s";
    this.#bar = new cliProgress.SingleBar(
      {
        format: options.total ? `{bar} {percentage}% | ${counters} | ETA {eta_formatted}` : counters,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(options.total ?? 0, 0, { lines: 0, calico: 0, flows: 0, alerts: 0, rate: 0 });
  }

  update(
    value: number,
    counts: { lines: number; calico: number; flowsApplied: number; alertsOpened: number },
  ): void {
    const seconds = Math.max((Date.now() - this.#started) / 1000, 0.001);
    this.#bar?.update(value, {
      lines: counts.lines,
      calico: counts.calico,
      flows: counts.flowsApplied,
      alerts: counts.alertsOpened,
      rate: Math.round(counts.lines / seconds),
    });
  }

  /** A message line on stderr; with a bar on the terminal, written over it and the bar drawn again below. */
  log(message: string): void {
    if (this.#bar === undefined) {
      process.stderr.write(message);
      return;
    }
    process.stderr.write(`\r\u001b[2K${message}`);
    this.#bar.render();
  }

  stop(): void {
    this.#bar?.stop();
  }
}
