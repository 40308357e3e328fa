/**
 * The progress line of `peapod get` (and the demo) on stderr.
 *
 * Theory of operation
 * - `renderProgress` is pure: from a snapshot (bytes, total, smoothed rate, elapsed time, each
 *   source's bytes and display label) and a width it builds the line from segments, each with a
 *   priority: percent and bytes first, then rate, ETA, labelled elapsed time, the sources (as
 *   many as fit, then "+N more"), and a bar last. Segments that do not fit are left out, so the
 *   line never wraps; a terminal too narrow for even the first segment gets it cut with "…".
 *   The last column stays empty (a full line makes some terminals wrap the cursor).
 * - `ProgressLine` owns the terminal: on a TTY it redraws in place (`\r`, the line, clear to
 *   end of line) at most 4 times a second, at the width the terminal has now
 *   (`stream.columns`, read on every draw, so a resize is followed). Off a TTY (a pipe, a CI log)
 *   it writes a plain line every 10 s, at most 80 columns, or nothing at all (`plain: false`).
 * - The rate is the verified bytes over the last 5 s (a sliding window), so one burst does not
 *   swing it and the ETA, which divides what is left by it, stays steady.
 * - `note` and `finish` clear the drawn line first, so no message is ever glued to it.
 */
import { printable } from './printable.js';
import { formatBytes } from './rate-limit.js';
import { shortDeviceId } from './device-label.js';

/** What one progress line shows. */
export interface ProgressSnapshot {
  readonly verifiedBytes: number;
  readonly totalBytes: number | undefined;
  /** Smoothed bytes per second; undefined until there is a measurement. */
  readonly rateBytesPerSec: number | undefined;
  readonly elapsedSec: number;
  /** Verified bytes by source key (the core's: `self` or a Device ID in hex). */
  readonly bySource: Readonly<Record<string, number>>;
  /** Display labels by source key (`laptop (MFQWCYL)`), as the daemon sends them. */
  readonly labels?: Readonly<Record<string, string>>;
  /** A word before the line (the demo's `pooled` / `alone`). */
  readonly label?: string;
}

/** `1:05`, `1:02:05`: minutes and seconds, hours when needed. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** The label of a source key when the daemon sent none. */
export function sourceLabel(key: string, labels?: Readonly<Record<string, string>>): string {
  const label = labels?.[key];
  if (label !== undefined) return label;
  if (key === 'self') return 'this device';
  return /^[0-9a-f]{64}$/.test(key) ? `(${shortDeviceId(key)})` : key;
}

/** `laptop (MFQWCYL) 52% · phone (KXQ2D3A) 48%`, largest first, labels made printable. */
export function sourceShares(
  bySource: Readonly<Record<string, number>>,
  labels: Readonly<Record<string, string>> | undefined,
): string {
  const sum = Object.values(bySource).reduce((a, b) => a + b, 0);
  return Object.entries(bySource)
    .sort((a, b) => b[1] - a[1])
    .map(
      ([key, bytes]) =>
        `${printable(sourceLabel(key, labels))} ${sum ? Math.round((bytes / sum) * 100) : 0}%`,
    )
    .join(' · ');
}

/** Display width of `text` (code points; device names are the only non-ASCII part). */
function widthOf(text: string): number {
  return [...text].length;
}

function cut(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  return width <= 0 ? '' : `${chars.slice(0, width - 1).join('')}…`;
}

/**
 * The progress line for `snapshot`, at most `columns - 1` characters wide.
 * @example
 * renderProgress({ verifiedBytes: 50, totalBytes: 100, rateBytesPerSec: 10, elapsedSec: 5,
 *   bySource: { self: 50 } }, 80);
 * // => '[###########...........] 50.0% 50 B / 100 B  10 B/s  ETA 0:05  elapsed 0:05  this device 100%'
 */
export function renderProgress(snapshot: ProgressSnapshot, columns: number): string {
  const width = Math.max(1, Math.floor(columns) - 1);
  const { verifiedBytes: done, totalBytes: total, rateBytesPerSec: rate } = snapshot;
  const percent = total === undefined || total === 0 ? undefined : (done / total) * 100;
  const head =
    (snapshot.label === undefined ? '' : `${snapshot.label} `) +
    (percent === undefined ? '' : `${percent.toFixed(1)}% `) +
    formatBytes(done) +
    (total === undefined ? '' : ` / ${formatBytes(total)}`);
  if (widthOf(head) >= width) return cut(head, width);

  const eta =
    total === undefined || rate === undefined || rate <= 0
      ? undefined
      : `ETA ${formatDuration(Math.max(0, total - done) / rate)}`;
  const sum = Object.values(snapshot.bySource).reduce((a, b) => a + b, 0);
  const shares = Object.entries(snapshot.bySource)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(
      ([key, bytes]) =>
        `${sourceLabel(key, snapshot.labels)} ${sum ? Math.round((bytes / sum) * 100) : 0}%`,
    );
  // Display order; `rank` is the order in which segments claim the width.
  const segments: Array<{ rank: number; text: string | ((room: number) => string) }> = [
    { rank: 0, text: head },
    { rank: 1, text: rate === undefined ? '' : `${formatBytes(rate)}/s` },
    { rank: 2, text: eta ?? '' },
    { rank: 3, text: `elapsed ${formatDuration(snapshot.elapsedSec)}` },
    { rank: 4, text: (room) => fitSources(shares, room) },
  ];
  const chosen = new Map<number, string>();
  let used = widthOf(head);
  chosen.set(0, head);
  for (const segment of [...segments].sort((a, b) => a.rank - b.rank).slice(1)) {
    const room = width - used - 2; // two spaces before a segment
    const text = typeof segment.text === 'string' ? segment.text : segment.text(room);
    if (text === '' || widthOf(text) > room) continue;
    chosen.set(segment.rank, text);
    used += 2 + widthOf(text);
  }
  const line = segments
    .map((segment) => chosen.get(segment.rank))
    .filter((text): text is string => text !== undefined)
    .join('  ');
  // A bar when 12 or more columns are left over: the width that remains, up to 30.
  const barWidth = Math.min(30, width - widthOf(line) - 3);
  if (percent === undefined || barWidth < 10) return line;
  const filled = Math.min(barWidth, Math.round((percent / 100) * barWidth));
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${line}`;
}

/** As many of `shares` as fit in `room` columns, then "+N more" for the rest. */
function fitSources(shares: readonly string[], room: number): string {
  for (let count = shares.length; count > 0; count--) {
    const rest = shares.length - count;
    const text = shares.slice(0, count).join(' · ') + (rest > 0 ? ` · +${rest} more` : '');
    if (widthOf(text) <= room) return text;
  }
  return '';
}

/** Options of `ProgressLine`. */
export interface ProgressLineOptions {
  /** Off a TTY: write a plain line every 10 s (true) or nothing (false). Default true. */
  readonly plain?: boolean;
  /** A word before the line (see `ProgressSnapshot.label`). */
  readonly label?: string;
  /** Clock in milliseconds (tests); default `performance.now`. */
  readonly now?: () => number;
}

/** The progress line on one stream; see the module comment. */
export class ProgressLine {
  private readonly now: () => number;
  private readonly startMs: number;
  private lastDrawMs = -Infinity;
  private samples: Array<{ ms: number; bytes: number }> = [];
  private drawn = false;
  private last: Omit<ProgressSnapshot, 'rateBytesPerSec' | 'elapsedSec'> | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly options: ProgressLineOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.startMs = this.now();
  }

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  /** Records the progress and redraws when it is time. */
  update(
    verifiedBytes: number,
    totalBytes: number | undefined,
    bySource: Readonly<Record<string, number>>,
    labels?: Readonly<Record<string, string>>,
  ): void {
    const now = this.now();
    this.samples.push({ ms: now, bytes: verifiedBytes });
    while (this.samples.length > 2 && now - this.samples[0]!.ms > 5000) this.samples.shift();
    this.last = {
      verifiedBytes,
      totalBytes,
      bySource,
      ...(labels === undefined ? {} : { labels }),
    };
    if (!this.tty && this.options.plain === false) return;
    if (now - this.lastDrawMs < (this.tty ? 250 : 10_000)) return;
    this.lastDrawMs = now;
    this.draw();
  }

  /** The smoothed rate in bytes per second, undefined before two samples 0.5 s apart. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (first === undefined || last === undefined || last.ms - first.ms < 500) return undefined;
    return ((last.bytes - first.bytes) * 1000) / (last.ms - first.ms);
  }

  /** Verified bytes of the last update (0 before any). */
  get verifiedBytes(): number {
    return this.last?.verifiedBytes ?? 0;
  }

  /** A line of its own (a note, a warning), above the progress line. */
  note(message: string): void {
    this.clear();
    this.out.write(`${message}\n`);
  }

  /** The final line (kept on screen). */
  finish(message: string): void {
    this.note(message);
  }

  /** Removes the drawn progress line, if any. */
  clear(): void {
    if (this.drawn && this.tty) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  private draw(): void {
    if (this.last === undefined) return;
    const columns = this.tty ? this.out.columns || 80 : 81;
    const line = renderProgress(
      {
        ...this.last,
        ...(this.options.label === undefined ? {} : { label: this.options.label }),
        rateBytesPerSec: this.rate(),
        elapsedSec: (this.now() - this.startMs) / 1000,
      },
      columns,
    );
    if (this.tty) {
      this.out.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else this.out.write(`${line}\n`);
  }
}
