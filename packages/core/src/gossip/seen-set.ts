/**
 * Duplicate and replay memory for gossip messages, in bounded space (docs/protocol.md section 11).
 *
 * Theory of operation
 * - The engine asks `check(key, timestampMs)` before it spends a signature verification, and
 *   calls `add` only after the signature verified (so a forged copy never suppresses the real
 *   message). A key is the message ID together with its origin's key, so one origin cannot burn
 *   another origin's message IDs.
 * - Memory is bounded by `capacity`. Entries are forgotten oldest timestamp first (a binary
 *   min-heap on the origin's timestamp), either because the set is full or because the entry's
 *   timestamp fell out of the clock window (wall clock - `windowMs`): past that point the clock
 *   check already rejects the message as stale, so the entry is dead weight. In steady state the
 *   set therefore holds only the last minute of traffic, whatever `capacity` is.
 * - Forgetting raises the floor: the newest timestamp ever forgotten. A message stamped at or
 *   below the floor is answered 'replayed' without a lookup: it may be one this set no longer
 *   remembers. Evicting by smallest timestamp keeps the floor as low as the bound allows, so only
 *   a set too small for the traffic of one clock window refuses fresh messages. The floor also
 *   keeps replays out when the host's wall clock steps backwards.
 * Nothing is allocated until the first `add`.
 */
export type SeenVerdict = 'new' | 'duplicate' | 'replayed';

export class SeenSet {
  private readonly timestamps = new Map<string, number>();
  private readonly heapKeys: string[] = [];
  private readonly heapTimes: number[] = [];
  private floor = -1;

  /**
   * @param capacity entries remembered at most (>= 1).
   * @param windowMs how far behind the wall clock a timestamp may be before it is forgotten.
   */
  constructor(
    readonly capacity: number,
    readonly windowMs: number,
  ) {}

  get size(): number {
    return this.timestamps.size;
  }

  /** The newest timestamp forgotten so far (-1 before any): at or below it is 'replayed'. */
  get floorMs(): number {
    return this.floor;
  }

  check(key: string, timestampMs: number): SeenVerdict {
    if (timestampMs <= this.floor) return 'replayed';
    return this.timestamps.has(key) ? 'duplicate' : 'new';
  }

  /** Remembers `key` (a verified message), forgetting what the window and the bound require. */
  add(key: string, timestampMs: number, wallClockMs: number): void {
    if (this.timestamps.has(key) || timestampMs <= this.floor) return;
    this.forgetOlderThan(wallClockMs - this.windowMs);
    while (this.timestamps.size >= this.capacity) this.forgetOldest();
    this.timestamps.set(key, timestampMs);
    this.push(key, timestampMs);
  }

  /** Forgets every entry stamped before `timestampMs` (the clock window's lower edge). */
  forgetOlderThan(timestampMs: number): void {
    while (this.heapTimes.length > 0 && this.heapTimes[0]! < timestampMs) this.forgetOldest();
  }

  private forgetOldest(): void {
    const key = this.heapKeys[0]!;
    const time = this.heapTimes[0]!;
    this.timestamps.delete(key);
    if (time > this.floor) this.floor = time;
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
