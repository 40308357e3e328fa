/**
 * The gateway's `/metrics`: Prometheus's text exposition format (version 0.0.4).
 *
 * Theory of operation
 * - A `Metrics` registry holds counters and gauges by name and label set, and one histogram of
 *   request durations; `render()` writes them in the format Prometheus scrapes: `# HELP`,
 *   `# TYPE`, then one line per series, `name{label="value",...} number`. Label values escape
 *   backslash, double quote and newline; HELP text escapes backslash and newline. Names are
 *   checked against the format's grammar when a metric is declared (a programming error throws).
 * - Series are created on first use; values only go up for counters (`inc` refuses negatives).
 * - Gauges whose value lives elsewhere (cache bytes, the back-to-origin ratio) are read at scrape
 *   time through a callback, so they are never stale.
 * The metric names and what they mean are listed in docs/gateway.md; docs/gateway-dashboard.json
 * is a Grafana dashboard over them.
 */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Labels = Readonly<Record<string, string>>;

interface Family {
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  readonly series: Map<string, { labels: Labels; value: number }>;
  readonly collect?: () => readonly { labels: Labels; value: number }[];
}

export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly histograms = new Map<
    string,
    { help: string; buckets: readonly number[]; counts: number[]; sum: number; count: number }
  >();

  /**
   * Declares a counter, optionally read at scrape time from `collect`.
   * @throws Error for a name outside the format's grammar.
   */
  counter(
    name: string,
    help: string,
    collect?: () => readonly { labels: Labels; value: number }[],
  ): void {
    this.declare(name, {
      type: 'counter',
      help,
      series: new Map(),
      ...(collect === undefined ? {} : { collect }),
    });
  }

  /** Declares a gauge, optionally read at scrape time from `collect`. */
  gauge(
    name: string,
    help: string,
    collect?: () => readonly { labels: Labels; value: number }[],
  ): void {
    this.declare(name, {
      type: 'gauge',
      help,
      series: new Map(),
      ...(collect === undefined ? {} : { collect }),
    });
  }

  /** Declares a histogram with upper bounds `buckets` (ascending; +Inf is added). */
  histogram(name: string, help: string, buckets: readonly number[]): void {
    checkName(name);
    this.histograms.set(name, { help, buckets, counts: buckets.map(() => 0), sum: 0, count: 0 });
  }

  inc(name: string, labels: Labels = {}, by = 1): void {
    const family = this.families.get(name);
    if (family === undefined || !(by >= 0)) return;
    const key = labelKey(labels);
    const series = family.series.get(key);
    if (series === undefined) family.series.set(key, { labels, value: by });
    else series.value += by;
  }

  observe(name: string, value: number): void {
    const histogram = this.histograms.get(name);
    if (histogram === undefined || !Number.isFinite(value)) return;
    histogram.buckets.forEach((bound, i) => {
      if (value <= bound) histogram.counts[i]!++;
    });
    histogram.sum += value;
    histogram.count++;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, family] of this.families) {
      lines.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`);
      const series = family.collect?.() ?? [...family.series.values()];
      for (const { labels, value } of series)
        lines.push(`${name}${formatLabels(labels)} ${formatNumber(value)}`);
    }
    for (const [name, h] of this.histograms) {
      lines.push(`# HELP ${name} ${escapeHelp(h.help)}`, `# TYPE ${name} histogram`);
      h.buckets.forEach((bound, i) =>
        lines.push(`${name}_bucket{le="${formatNumber(bound)}"} ${h.counts[i]}`),
      );
      lines.push(
        `${name}_bucket{le="+Inf"} ${h.count}`,
        `${name}_sum ${formatNumber(h.sum)}`,
        `${name}_count ${h.count}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }

  private declare(name: string, family: Family): void {
    checkName(name);
    this.families.set(name, family);
  }
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`metric name ${JSON.stringify(name)} is not valid`);
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** `{a="x",b="y"}` (empty for no labels). @throws Error for an invalid label name. */
export function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries
    .map(([name, value]) => {
      if (!LABEL.test(name) || name.startsWith('__'))
        throw new Error(`label name ${JSON.stringify(name)} is not valid`);
      return `${name}="${escapeLabelValue(value)}"`;
    })
    .join(',')}}`;
}

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
