/**
 * The progress line of `peapod get` on stderr: bytes, percent, total rate and each source's
 * share ("self 26% · 3f2a9c 25% · ..."). Redrawn at most 4 times a second on a TTY; on a non-TTY
 * (CI logs, pipes) one line every 5 s, so logs stay readable.
 */
import { formatBytes } from './rate-limit.js';

export class ProgressLine {
  private lastDrawMs = 0;
  private readonly startMs = performance.now();
  private samples: Array<{ ms: number; bytes: number }> = [];
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
  ) {}

  update(verifiedBytes: number, totalBytes: number | undefined, bySource: Record<string, number>) {
    const now = performance.now();
    this.samples.push({ ms: now, bytes: verifiedBytes });
    while (this.samples.length > 2 && now - this.samples[0]!.ms > 3000) this.samples.shift();
    const interval = this.out.isTTY ? 250 : 5000;
    if (now - this.lastDrawMs < interval) return;
    this.lastDrawMs = now;
    this.draw(verifiedBytes, totalBytes, bySource);
  }

  /** The final line (kept on screen). */
  finish(message: string): void {
    if (this.drawn && this.out.isTTY) this.out.write('\r\x1b[2K');
    this.out.write(`${message}\n`);
  }

  private draw(verified: number, total: number | undefined, bySource: Record<string, number>) {
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const seconds = Math.max(0.001, (last.ms - first.ms) / 1000);
    const rate = (last.bytes - first.bytes) / seconds;
    const percent = total === undefined || total === 0 ? undefined : (verified / total) * 100;
    const width = 24;
    const filled = percent === undefined ? 0 : Math.round((percent / 100) * width);
    const bar =
      percent === undefined ? '' : `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] `;
    const sum = Object.values(bySource).reduce((a, b) => a + b, 0);
    const shares = Object.entries(bySource)
      .sort((a, b) => b[1] - a[1])
      .map(
        ([name, bytes]) =>
          `${name === 'self' ? 'self' : name.slice(0, 6)} ${sum ? Math.round((bytes / sum) * 100) : 0}%`,
      )
      .join(' · ');
    const line =
      `${this.label} ${bar}${percent === undefined ? '' : `${percent.toFixed(1)}% `}` +
      `${formatBytes(verified)}${total === undefined ? '' : ` / ${formatBytes(total)}`} ` +
      `${formatBytes(rate)}/s${shares ? `  ${shares}` : ''}` +
      `  ${((performance.now() - this.startMs) / 1000).toFixed(0)}s`;
    this.out.write(this.out.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
    this.drawn = true;
  }
}
