/**
 * Per-client rate limits: one token bucket per key (a source address, or a device ID), in
 * memory, per tracker instance. Several instances behind one address each keep their own
 * buckets; that only changes how much one client gets in total, never what is correct (the
 * store holds all state that correctness needs).
 *
 * A bucket holds up to `burst` tokens and refills at `ratePerSecond`; a request takes one or is
 * refused with the seconds until one is back (the 429's Retry-After). Memory is bounded: at most
 * `bucketsMax` buckets, the least recently created forgotten first (a forgotten bucket is a full
 * one, the state any new client starts in). `ratePerSecond` 0 turns the limit off.
 */
export interface TokenBucketOptions {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly bucketsMax: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly options: TokenBucketOptions) {}

  /** Takes one token for `key` at `nowMs`: 0 when allowed, else seconds to wait (>= 1). */
  take(key: string, nowMs: number): number {
    const { ratePerSecond, burst, bucketsMax } = this.options;
    if (ratePerSecond <= 0) return 0;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= bucketsMax) {
        const oldest = this.buckets.keys().next();
        if (oldest.done !== true) this.buckets.delete(oldest.value);
      }
      bucket = { tokens: burst, updatedMs: nowMs };
      this.buckets.set(key, bucket);
    }
    const elapsedMs = Math.max(0, nowMs - bucket.updatedMs);
    bucket.tokens = Math.min(burst, bucket.tokens + (elapsedMs * ratePerSecond) / 1000);
    bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond));
  }

  /** Forgets buckets that have refilled completely (they equal a new one). */
  sweep(nowMs: number): void {
    const { ratePerSecond, burst } = this.options;
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((nowMs - bucket.updatedMs) * ratePerSecond) / 1000 >= burst)
        this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
