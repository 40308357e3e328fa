/**
 * One-at-a-time sections per key: `run(key, fn)` starts `fn` after every earlier `run` of the
 * same key settled, and runs sections of different keys concurrently. The store keys them by
 * chunk hash, so the write, the unlink and the confirming re-read of one chunk file never
 * interleave (a read that failed is confirmed under the lock before the file is dropped, so a
 * file that eviction unlinked and a later put wrote again is never mistaken for a corrupt one).
 * A key's entry is deleted when its last section settles, so the map holds only busy keys.
 */
export class KeyLocks {
  /** Per busy key: settles (never rejects) when the last section queued on it settled. */
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` when `key` is free; settles as `fn` does. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
