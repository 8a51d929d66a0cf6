// The metric side of the alarm tests: series named as CloudWatch names them, the EMF that Powertools prints read
// back into series, and a synthesized alarm's value for one period computed as CloudWatch computes it.
import { vi } from "vitest";

export type Json = Record<string, unknown>;
export type Dimension = { Name: string; Value: unknown };
export type MetricStat = {
  Metric: { Namespace: string; MetricName: string; Dimensions?: Dimension[] };
  Stat: string;
};
export type MetricQuery = { Id: string; Expression?: string; MetricStat?: MetricStat; ReturnData?: boolean };

/** A series by (namespace, metric, dimension set), the dimensions in any order. */
export const seriesKey = (namespace: string, metric: string, dims: readonly Dimension[]) =>
  `${namespace}|${metric}|${JSON.stringify(
    [...dims].sort((a, b) => a.Name.localeCompare(b.Name)).map((d) => [d.Name, d.Value]),
  )}`;

/** One metric of an EMF blob: its series (`key`, and what names it) and the values the blob gives it. */
export interface EmfSample {
  key: string;
  namespace: string;
  metric: string;
  dimensions: Record<string, unknown>;
  values: number[];
}

/** The samples of every EMF blob among `text`'s lines (Powertools prints one per line, on stdout). */
export function emfSamples(text: string): EmfSample[] {
  const samples: EmfSample[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as Json;
    const aws = record._aws as
      | { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] }
      | undefined;
    for (const directive of aws?.CloudWatchMetrics ?? []) {
      for (const names of directive.Dimensions) {
        const dims = names.map((n) => ({ Name: n, Value: record[n] }));
        for (const { Name } of directive.Metrics) {
          samples.push({
            key: seriesKey(directive.Namespace, Name, dims),
            namespace: directive.Namespace,
            metric: Name,
            dimensions: Object.fromEntries(names.map((n) => [n, record[n]])),
            values: [record[Name] as number | number[]].flat(),
          });
        }
      }
    }
  }
  return samples;
}

/** Adds the sum of each series of `samples` to `sums`. */
export function emfSums(
  samples: readonly EmfSample[],
  sums = new Map<string, number>(),
): Map<string, number> {
  for (const { key, values } of samples) {
    sums.set(key, (sums.get(key) ?? 0) + values.reduce((a, b) => a + b, 0));
  }
  return sums;
}

/** What `run` prints on stdout and stderr (kept out of the test's output), read as EMF. */
export async function printedEmf<T>(run: () => Promise<T>): Promise<{ result: T; emf: EmfSample[] }> {
  const chunks: string[] = [];
  const capture = (chunk: unknown) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
    return true;
  };
  const spies = [process.stdout, process.stderr].map((s) =>
    vi.spyOn(s, "write").mockImplementation(capture as typeof s.write),
  );
  try {
    const result = await run();
    return { result, emf: emfSamples(chunks.join("")) };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

/**
 * The value an alarm compares with its threshold for one period, or undefined when it has none, given each series'
 * statistic for that period: its one metric, or its metric math as CloudWatch computes it ("Using metric math": one
 * series divided by another takes a missing value as 0 and drops a data point that would divide by zero; FILL(id, 0)
 * is the series with its missing values 0; SUM of an array of series leaves the missing ones out).
 */
export function alarmValue(
  alarm: Json,
  statistic: (key: string, stat: string) => number | undefined,
): number | undefined {
  if (typeof alarm.MetricName === "string") {
    const dims = (alarm.Dimensions as Dimension[] | undefined) ?? [];
    return statistic(seriesKey(alarm.Namespace as string, alarm.MetricName, dims), alarm.Statistic as string);
  }
  const queries = alarm.Metrics as MetricQuery[];
  const value = (id: string): number | undefined => {
    const query = queries.find((q) => q.Id === id);
    if (query === undefined) throw new Error(`no query ${id}`);
    if (query.MetricStat !== undefined) {
      const { Metric, Stat } = query.MetricStat;
      return statistic(seriesKey(Metric.Namespace, Metric.MetricName, Metric.Dimensions ?? []), Stat);
    }
    const expression = (query.Expression ?? "").replace(/\s+/g, "");
    const ratio = /^(?:FILL\((\w+),0\)|(\w+))\/(\w+)$/.exec(expression);
    if (ratio !== null) {
      const denominator = value(ratio[3] as string) ?? 0;
      return denominator === 0 ? undefined : (value((ratio[1] ?? ratio[2]) as string) ?? 0) / denominator;
    }
    const sum = /^SUM\(\[([^\]]*)\]\)$/.exec(expression);
    if (sum === null) throw new Error(`expression ${query.Expression} is not evaluated here`);
    const values = (sum[1] as string)
      .split(",")
      .map(value)
      .filter((v): v is number => v !== undefined);
    return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
  };
  const returned = queries.filter((q) => q.ReturnData !== false);
  if (returned.length !== 1) throw new Error(`an alarm returning ${returned.length} queries`);
  return value((returned[0] as MetricQuery).Id);
}

/** Whether `value` is on the alarming side of the alarm's threshold. */
export function breaches(alarm: Json, value: number): boolean {
  const threshold = alarm.Threshold as number;
  switch (alarm.ComparisonOperator) {
    case "GreaterThanOrEqualToThreshold":
      return value >= threshold;
    case "GreaterThanThreshold":
      return value > threshold;
    case "LessThanThreshold":
      return value < threshold;
    case "LessThanOrEqualToThreshold":
      return value <= threshold;
    default:
      throw new Error(`comparison ${String(alarm.ComparisonOperator)} is not evaluated here`);
  }
}
