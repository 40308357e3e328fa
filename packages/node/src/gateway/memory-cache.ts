/**
 * L1: verified chunks in memory, bounded in bytes, evicted by GreedyDual-Size-Frequency.
 *
 * Theory of operation
 * - Each entry has a priority `clock + hits / size` (size in MiB, at least one): small, often
 *   used chunks stay, big ones read once go first. The clock rises to the priority of each entry
 *   evicted, so an entry not used for a while falls below newer ones (recency) however often it
 *   was hit long ago (GDSF, Cherkasova 1998; the seed's "multi-factor weighted LRU").
 * - A binary heap of entries by priority; a hit raises an entry's priority, and the heap is
 *   repaired at that entry's position, so get, set and eviction are O(log n).
 * - Heat levels (the seed's hot/warm/cold), for `stats()`: hot = hit at least HOT_HITS times,
 *   cold = only the one use that brought it in, warm = between.
 * - An entry larger than `maxEntryBytes` (default an eighth of the budget) is not kept: one big
 *   object cannot flush the cache. Entries are the store's verified bytes; callers must not
 *   change them (they are handed out as they are, not copied).
 */
export interface MemoryCacheStats {
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  readonly levels: { readonly hot: number; readonly warm: number; readonly cold: number };
}

interface Entry {
  readonly key: string;
  readonly bytes: Uint8Array;
  hits: number;
  priority: number;
  position: number;
}

const HOT_HITS = 4;
const MIB = 2 ** 20;

export class MemoryCache {
  readonly maxBytes: number;
  readonly maxEntryBytes: number;
  private readonly byKey = new Map<string, Entry>();
  private readonly heap: Entry[] = [];
  private clock = 0;
  private used = 0;
  private counts = { hits: 0, misses: 0, evictions: 0 };

  /** @throws RangeError unless maxBytes >= 1 (and maxEntryBytes, when given, too). */
  constructor(options: { readonly maxBytes: number; readonly maxEntryBytes?: number }) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes < 1)
      throw new RangeError('maxBytes must be a positive integer');
    this.maxBytes = options.maxBytes;
    this.maxEntryBytes = options.maxEntryBytes ?? Math.max(1, Math.floor(options.maxBytes / 8));
    if (!Number.isSafeInteger(this.maxEntryBytes) || this.maxEntryBytes < 1)
      throw new RangeError('maxEntryBytes must be a positive integer');
  }

  get(key: string): Uint8Array | undefined {
    const entry = this.byKey.get(key);
    if (entry === undefined) {
      this.counts.misses++;
      return undefined;
    }
    this.counts.hits++;
    entry.hits++;
    entry.priority = this.priorityOf(entry.hits, entry.bytes.length);
    this.siftDown(entry.position);
    return entry.bytes;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Keeps `bytes` under `key` (replacing), evicting what the budget needs; false when too big. */
  set(key: string, bytes: Uint8Array): boolean {
    this.delete(key);
    if (bytes.length > this.maxEntryBytes || bytes.length > this.maxBytes) return false;
    while (this.used + bytes.length > this.maxBytes && this.heap.length > 0) {
      const victim = this.heap[0]!;
      this.clock = victim.priority;
      this.remove(victim);
      this.counts.evictions++;
    }
    const entry: Entry = {
      key,
      bytes,
      hits: 1,
      priority: this.priorityOf(1, bytes.length),
      position: this.heap.length,
    };
    this.byKey.set(key, entry);
    this.heap.push(entry);
    this.used += bytes.length;
    this.siftUp(entry.position);
    return true;
  }

  delete(key: string): boolean {
    const entry = this.byKey.get(key);
    if (entry === undefined) return false;
    this.remove(entry);
    return true;
  }

  stats(): MemoryCacheStats {
    let hot = 0;
    let cold = 0;
    for (const entry of this.heap) {
      if (entry.hits >= HOT_HITS) hot++;
      else if (entry.hits <= 1) cold++;
    }
    return {
      entries: this.heap.length,
      bytes: this.used,
      maxBytes: this.maxBytes,
      ...this.counts,
      levels: { hot, warm: this.heap.length - hot - cold, cold },
    };
  }

  private priorityOf(hits: number, size: number): number {
    return this.clock + hits / Math.max(1, size / MIB);
  }

  private remove(entry: Entry): void {
    this.byKey.delete(entry.key);
    this.used -= entry.bytes.length;
    const last = this.heap.pop()!;
    if (last !== entry) {
      this.heap[entry.position] = last;
      last.position = entry.position;
      this.siftDown(last.position);
      this.siftUp(last.position);
    }
  }

  private siftUp(at: number): void {
    const heap = this.heap;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (heap[parent]!.priority <= heap[at]!.priority) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private siftDown(at: number): void {
    const heap = this.heap;
    for (;;) {
      let smallest = at;
      for (const child of [2 * at + 1, 2 * at + 2])
        if (child < heap.length && heap[child]!.priority < heap[smallest]!.priority)
          smallest = child;
      if (smallest === at) return;
      this.swap(at, smallest);
      at = smallest;
    }
  }

  private swap(a: number, b: number): void {
    const heap = this.heap;
    const first = heap[a]!;
    heap[a] = heap[b]!;
    heap[b] = first;
    heap[a]!.position = a;
    heap[b]!.position = b;
  }
}
