/**
 * Where a pooled download's time goes, link by link, for bench/pooled.ts (`--timeline`): how
 * busy each device's internet link was while the download ran.
 *
 * Theory of operation: one shell loop in the origin namespace prints a timestamp and
 * /proc/net/dev (that namespace's counters) every 100 ms; the transmit bytes of `wanI` there are
 * what the origin sent to device I through its shaped link (payload and headers). `summarize`
 * turns the samples into, per link: the bytes, when it first carried traffic at half its rate or
 * more, when it carried its last bytes, and the share of the time between the two it ran at 80 %
 * of the rate or more. A link that starts late lost time to the probe or the ramp-up, one that
 * ends early was left idle at the end (the tail), and a low busy share means gaps between
 * pieces. The loop costs one `cat` per 100 ms.
 */
import type { ChildProcess } from 'node:child_process';

/** One link's figures, times in seconds from the start of sampling. */
export interface LinkSummary {
  readonly link: string;
  readonly bytes: number;
  readonly firstBusySeconds: number | undefined;
  readonly lastByteSeconds: number | undefined;
  /** Share of [firstBusy, lastByte] at >= 80 % of the rate. */
  readonly busyShare: number;
}

/** The sampling loop's command line (run it in the origin namespace). */
export const SAMPLER = [
  'sh',
  '-c',
  'while :; do echo "T $(date +%s%N)"; cat /proc/net/dev; sleep 0.1; done',
] as const;

/** Collects a sampler's output; `summarize` once the download ended. */
export class LinkTimeline {
  private text = '';

  constructor(
    child: ChildProcess,
    private readonly links: readonly string[],
  ) {
    child.stdout!.on('data', (part: Buffer) => (this.text += part.toString()));
  }

  /** The samples so far, as per-link transmit counters by time (ms since the first sample). */
  private samples(): Array<{ ms: number; tx: Map<string, number> }> {
    const samples: Array<{ ms: number; tx: Map<string, number> }> = [];
    let first: bigint | undefined;
    for (const line of this.text.split('\n')) {
      const stamp = /^T (\d+)$/.exec(line);
      if (stamp !== null) {
        const ns = BigInt(stamp[1]!);
        first ??= ns;
        samples.push({ ms: Number((ns - first) / 1_000_000n), tx: new Map() });
        continue;
      }
      const counters = /^\s*([\w-]+):\s*(.*)$/.exec(line);
      if (counters === null || samples.length === 0) continue;
      const fields = counters[2]!.trim().split(/\s+/);
      samples.at(-1)!.tx.set(counters[1]!, Number(fields[8]));
    }
    return samples.filter((sample) => this.links.every((link) => sample.tx.has(link)));
  }

  /** The samples as CSV: seconds, then each link's bytes in the interval before. */
  csv(): string {
    const samples = this.samples();
    const rows = samples.slice(1).map((sample, i) => {
      const previous = samples[i]!;
      const bytes = this.links.map((link) => sample.tx.get(link)! - previous.tx.get(link)!);
      return [(sample.ms / 1000).toFixed(3), ...bytes].join(',');
    });
    return `${['seconds', ...this.links].join(',')}\n${rows.join('\n')}\n`;
  }

  /** Each link's figures against `rateBytesPerSec`. */
  summarize(rateBytesPerSec: number): LinkSummary[] {
    const samples = this.samples();
    return this.links.map((link) => {
      const intervals = samples.slice(1).map((sample, i) => {
        const previous = samples[i]!;
        const seconds = Math.max(0.001, (sample.ms - previous.ms) / 1000);
        const bytes = sample.tx.get(link)! - previous.tx.get(link)!;
        return { start: previous.ms / 1000, end: sample.ms / 1000, bytes, rate: bytes / seconds };
      });
      const bytes = intervals.reduce((sum, interval) => sum + interval.bytes, 0);
      const firstBusy = intervals.findIndex((interval) => interval.rate >= rateBytesPerSec / 2);
      let lastByte = -1;
      intervals.forEach((interval, i) => {
        if (interval.bytes > 4096) lastByte = i;
      });
      const span =
        firstBusy >= 0 && lastByte >= firstBusy ? intervals.slice(firstBusy, lastByte + 1) : [];
      const busy = span.filter((interval) => interval.rate >= rateBytesPerSec * 0.8);
      const seconds = (list: typeof span) => list.reduce((sum, i) => sum + (i.end - i.start), 0);
      return {
        link,
        bytes,
        firstBusySeconds: firstBusy >= 0 ? intervals[firstBusy]!.start : undefined,
        lastByteSeconds: lastByte >= 0 ? intervals[lastByte]!.end : undefined,
        busyShare: span.length > 0 ? seconds(busy) / seconds(span) : 0,
      };
    });
  }
}

/**
 * Packets each qdisc dropped, by device, from `tc -s qdisc show` (tbf drops what exceeds its
 * 50 ms queue: how TCP finds the rate, but many drops mean losses and retransmission waits).
 */
export function parseQdiscDrops(text: string): Map<string, number> {
  const drops = new Map<string, number>();
  let device: string | undefined;
  for (const line of text.split('\n')) {
    const qdisc = /^qdisc \S+ \S+ dev (\S+)/.exec(line);
    if (qdisc !== null) device = qdisc[1];
    const sent = /dropped (\d+)/.exec(line);
    if (sent !== null && device !== undefined) drops.set(device, Number(sent[1]));
  }
  return drops;
}
