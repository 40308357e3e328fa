/**
 * One table of named deadlines (quinn's timer table, STYLE.md section 3). Modules set and clear
 * deadlines by name; the core's `nextDeadlineMs()` is the table's minimum; when the host wakes
 * the core, `takeExpired(nowMs)` returns the names that are due. No callbacks: the owner
 * dispatches on the names it gets back.
 *
 * Times are monotonic milliseconds from the host (`nowMs`), never wall-clock time.
 */
export class TimerTable<Name extends string = string> {
  private readonly deadlines = new Map<Name, number>();
  private cachedMin: number | undefined = undefined;
  private cacheValid = true;

  /** Sets (or moves) the deadline called `name`. */
  set(name: Name, atMs: number): void {
    this.deadlines.set(name, atMs);
    if (this.cacheValid && (this.cachedMin === undefined || atMs < this.cachedMin)) {
      this.cachedMin = atMs;
    } else {
      this.cacheValid = false;
    }
  }

  /** Removes the deadline called `name`, if any. */
  clear(name: Name): void {
    if (this.deadlines.delete(name)) this.cacheValid = false;
  }

  /** The deadline called `name`, if set. */
  get(name: Name): number | undefined {
    return this.deadlines.get(name);
  }

  /** The earliest deadline, or `undefined` when none is set. */
  nextDeadlineMs(): number | undefined {
    if (!this.cacheValid) {
      let min: number | undefined = undefined;
      for (const at of this.deadlines.values()) if (min === undefined || at < min) min = at;
      this.cachedMin = min;
      this.cacheValid = true;
    }
    return this.cachedMin;
  }

  /** Removes and returns, earliest first, every deadline due at `nowMs`. */
  takeExpired(nowMs: number): Name[] {
    const next = this.nextDeadlineMs();
    if (next === undefined || next > nowMs) return [];
    const due: Array<[Name, number]> = [];
    for (const [name, at] of this.deadlines) if (at <= nowMs) due.push([name, at]);
    due.sort((a, b) => a[1] - b[1]);
    for (const [name] of due) this.deadlines.delete(name);
    this.cacheValid = false;
    return due.map(([name]) => name);
  }

  /** Removes every deadline. */
  clearAll(): void {
    this.deadlines.clear();
    this.cachedMin = undefined;
    this.cacheValid = true;
  }
}
