/**
 * Bandwidth limits (`--max-upload`, `--max-download`), as a token bucket with debt.
 *
 * Theory of operation: a bucket refills at `rateBytesPerSec` up to `burstBytes`. `take(n)` always
 * succeeds and may drive the balance negative; it returns how long the caller must wait until the
 * balance is back to zero. Callers that move bytes (a socket writer, a response reader) take the
 * bytes they just moved and pause for the returned delay. Over any interval longer than the
 * burst, the bytes moved are at most `rate x interval + burst`, which is what "honoured within a
 * few percent" needs, with no per-byte timers.
 *
 * `Limits.exempt(address)` follows Syncthing: peers on the LAN (private, loopback, link-local
 * addresses) are not limited unless `limitLan` is set; origin traffic is always limited, since it
 * is what goes through the internet link.
 */
import { isIP } from 'node:net';

export class TokenBucket {
  private balance: number;
  private lastMs: number;

  constructor(
    readonly rateBytesPerSec: number,
    readonly burstBytes = Math.max(64 * 1024, rateBytesPerSec / 20),
    nowMs = performance.now(),
  ) {
    this.balance = burstBytes;
    this.lastMs = nowMs;
  }

  /** Takes `bytes`; returns the milliseconds to wait before moving more (0: go on). */
  take(bytes: number, nowMs = performance.now()): number {
    this.refill(nowMs);
    this.balance -= bytes;
    return this.balance >= 0 ? 0 : (-this.balance / this.rateBytesPerSec) * 1000;
  }

  /** Milliseconds until the balance is back to zero (0 if it is not in debt). */
  waitMs(nowMs = performance.now()): number {
    this.refill(nowMs);
    return this.balance >= 0 ? 0 : (-this.balance / this.rateBytesPerSec) * 1000;
  }

  private refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    this.balance = Math.min(
      this.burstBytes,
      this.balance + (elapsed / 1000) * this.rateBytesPerSec,
    );
  }
}

/** A daemon's limits. Undefined rate: unlimited. */
export interface BandwidthLimits {
  readonly upload: TokenBucket | undefined;
  readonly download: TokenBucket | undefined;
  /** Apply limits to LAN peers too (Syncthing's `limitBandwidthInLan`). Default false. */
  readonly limitLan: boolean;
}

export function createLimits(options: {
  maxUploadBytesPerSec?: number | undefined;
  maxDownloadBytesPerSec?: number | undefined;
  limitLan?: boolean | undefined;
}): BandwidthLimits {
  const bucket = (rate: number | undefined) =>
    rate === undefined || rate <= 0 ? undefined : new TokenBucket(rate);
  return {
    upload: bucket(options.maxUploadBytesPerSec),
    download: bucket(options.maxDownloadBytesPerSec),
    limitLan: options.limitLan ?? false,
  };
}

/** True when a peer at `address` is on the LAN: private, loopback, link-local or ULA. */
export function isLanAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) {
    const [a = 0, b = 0] = v4.split('.').map(Number);
    return (
      a === 10 ||
      a === 127 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254)
    );
  }
  if (isIP(address) === 6) {
    const lower = address.toLowerCase();
    return lower === '::1' || /^fe[89ab]/.test(lower) || /^f[cd]/.test(lower);
  }
  return false;
}

/** The bucket that applies to a peer link at `address`, or undefined when it is exempt. */
export function peerBucket(
  limits: BandwidthLimits,
  direction: 'upload' | 'download',
  address: string,
): TokenBucket | undefined {
  if (!limits.limitLan && isLanAddress(address)) return undefined;
  return limits[direction];
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
};

/**
 * Parses a rate such as `50Mbit`, `6.25MB`, `800KiB`, `1e6` (bytes per second; a `/s` suffix is
 * allowed) into bytes per second. Returns undefined for a string it does not understand.
 */
export function parseRate(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmg]i?)?(bit|b|byte|bytes)?(?:\/s|ps)?\s*$/i.exec(
    text,
  );
  if (match === null) return undefined;
  const value = Number(match[1]);
  const unit = UNITS[(match[2] ?? '').toLowerCase()];
  if (unit === undefined || !Number.isFinite(value)) return undefined;
  const bits = match[3] !== undefined && match[3].toLowerCase() === 'bit';
  const bytes = value * unit * (bits ? 1 / 8 : 1);
  return bytes > 0 ? bytes : undefined;
}

/** Parses a size such as `256MiB`, `1GiB`, `4096` into bytes; undefined if not understood. */
export function parseSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?)?b?\s*$/i.exec(text);
  if (match === null) return undefined;
  const unit = UNITS[(match[2] ?? '').toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** `123.4 MiB` style. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
