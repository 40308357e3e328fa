/**
 * Duplicate and replay memory for gossip messages, in bounded space (docs/protocol.md section 11).
 *
 * Theory of operation
 * - The engine asks `check(key, timestampMs, origin)` before it spends a signature verification,
 *   and calls `add` only after the signature verified (so a forged copy never suppresses the real
 *   message). A key is the message ID together with its origin's key, so one origin cannot burn
 *   another origin's message IDs.
 * - Every entry is kept by its own timestamp: it is forgotten once that timestamp falls out of the
 *   clock window (wall clock - `windowMs`), where the clock check already rejects the message as
 *   stale. In steady state the set holds only the last minute of traffic.
 * - Quota per origin: an origin holding `originQuota` live entries gets its further new messages
 *   answered 'over-quota' (refused, not recorded) until its entries age out. A flooding key thus
 *   never evicts other origins' entries.
 * - Memory is bounded by `capacity`: when many origins together fill it, the oldest entry goes.
 *   Forgetting raises the floor (a message stamped at or below it is 'replayed' without a
 *   lookup), but never above wall - `windowMs`: a flood of messages stamped near wall + 30 s
 *   cannot make fresh honest messages look replayed. An entry forgotten early for room may be
 *   accepted once more (a bounded, harmless re-forward); the floor still keeps replays out when the
 *   host's wall clock steps backwards.
 * Nothing is allocated until the first `add`.
 */
export type SeenVerdict = 'new' | 'duplicate' | 'replayed' | 'over-quota';

/** The default live entries per origin: 1/64 of the capacity, at least 64. */
export function defaultOriginQuota(capacity: number): number {
  return Math.max(64, Math.floor(capacity / 64));
}

export class SeenSet {
  private readonly timestamps = new Map<string, number>();
  private readonly origins = new Map<string, string>();
  private readonly perOrigin = new Map<string, number>();
  private readonly heapKeys: string[] = [];
  private readonly heapTimes: number[] = [];
  private floor = -1;

  /**
   * @param capacity entries remembered at most (>= 1).
   * @param windowMs how far behind the wall clock a timestamp may be before it is forgotten.
   * @param originQuota live entries one origin may hold (>= 1).
   */
  constructor(
    readonly capacity: number,
    readonly windowMs: number,
    readonly originQuota: number = defaultOriginQuota(capacity),
  ) {}

  get size(): number {
    return this.timestamps.size;
  }

  /** The newest timestamp forgotten so far, capped at wall - window (-1 before any). */
  get floorMs(): number {
    return this.floor;
  }

  /** Live entries of `origin` (entries added without an origin, this device's own, count nowhere). */
  countOf(origin: string): number {
    return this.perOrigin.get(origin) ?? 0;
  }

  /**
   * The verdict for a message, before its signature is checked. With `wallClockMs`, entries
   * that fell out of the window are forgotten first (so an origin's quota frees up on time).
   */
  check(key: string, timestampMs: number, origin?: string, wallClockMs?: number): SeenVerdict {
    if (wallClockMs !== undefined) this.forgetOlderThan(wallClockMs - this.windowMs);
    if (timestampMs <= this.floor) return 'replayed';
    if (this.timestamps.has(key)) return 'duplicate';
    return origin !== undefined && this.countOf(origin) >= this.originQuota ? 'over-quota' : 'new';
  }

  /** Remembers `key` (a verified message), forgetting what the window and the bound require. */
  add(key: string, timestampMs: number, wallClockMs: number, origin?: string): void {
    if (this.timestamps.has(key) || timestampMs <= this.floor) return;
    const edge = wallClockMs - this.windowMs;
    this.forgetOlderThan(edge);
    if (origin !== undefined && this.countOf(origin) >= this.originQuota) return;
    while (this.timestamps.size >= this.capacity) this.forgetOldest(edge);
    this.timestamps.set(key, timestampMs);
    if (origin !== undefined) {
      this.origins.set(key, origin);
      this.perOrigin.set(origin, this.countOf(origin) + 1);
    }
    this.push(key, timestampMs);
  }

  /** Forgets every entry stamped before `timestampMs` (the clock window's lower edge). */
  forgetOlderThan(timestampMs: number): void {
    while (this.heapTimes.length > 0 && this.heapTimes[0]! < timestampMs)
      this.forgetOldest(timestampMs);
  }

  /** Forgets the oldest entry; the floor rises to its timestamp, at most to `edge`. */
  private forgetOldest(edge: number): void {
    const key = this.heapKeys[0]!;
    const time = this.heapTimes[0]!;
    this.timestamps.delete(key);
    const origin = this.origins.get(key);
    if (origin !== undefined) {
      this.origins.delete(key);
      const count = this.countOf(origin) - 1;
      if (count > 0) this.perOrigin.set(origin, count);
      else this.perOrigin.delete(origin);
    }
    const raised = Math.min(time, edge);
    if (raised > this.floor) this.floor = raised;
    const lastKey = this.heapKeys.pop()!;
    const lastTime = this.heapTimes.pop()!;
    if (this.heapKeys.length === 0) return;
    this.heapKeys[0] = lastKey;
    this.heapTimes[0] = lastTime;
    this.siftDown(0);
  }

  private push(key: string, time: number): void {
    const keys = this.heapKeys;
    const times = this.heapTimes;
    let i = keys.length;
    keys.push(key);
    times.push(time);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent]! <= time) break;
      keys[i] = keys[parent]!;
      times[i] = times[parent]!;
      i = parent;
    }
    keys[i] = key;
    times[i] = time;
  }

  private siftDown(start: number): void {
    const keys = this.heapKeys;
    const times = this.heapTimes;
    const n = keys.length;
    const key = keys[start]!;
    const time = times[start]!;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1]! < times[child]!) child++;
      if (times[child]! >= time) break;
      keys[i] = keys[child]!;
      times[i] = times[child]!;
      i = child;
    }
    keys[i] = key;
    times[i] = time;
  }
}
