/**
 * The virtual clock and the event queue: the heart of the discrete-event simulator.
 *
 * Theory of operation
 * - Every future happening (a segment finishing serialization, a timer, a fault) is an `Event`
 *   in one binary min-heap keyed by `(atMs, seq)`. `seq` is a global insertion counter, so two
 *   events at the same instant run in the order they were scheduled: the run is a pure function
 *   of the seed (no object identity, no Map iteration order over floats, no wall clock).
 * - `step()` pops the earliest event, moves the clock to its time (the clock only ever jumps
 *   forward; it never ticks) and runs it. Core deadlines are ordinary events, armed by each node's
 *   host loop, so "jump to the next event or the earliest core deadline" is one pop.
 * - Cancellation is lazy: an event owner keeps a token and ignores a stale event when it fires
 *   (cheaper than deleting from the middle of a heap).
 * - Each processed event is offered to an observer (the trace), with a short kind, the node it
 *   concerns and one numeric argument, so a trace costs no string formatting per event.
 */

/** One scheduled happening. */
export interface SimEvent {
  readonly atMs: number;
  readonly seq: number;
  /** A short constant name, e.g. 'egress-done'; used by the trace. */
  readonly kind: string;
  /** The node this event concerns (-1: none, e.g. the origin or the fault plan). */
  readonly node: number;
  /** One number for the trace (a byte count, a link ID). */
  readonly arg: number;
  readonly run: () => void;
}

/** Receives every event just before it runs. */
export type EventObserver = (event: SimEvent) => void;

export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private seq = 0;
  private clockMs = 0;
  /** Events run so far. */
  processed = 0;
  observer: EventObserver | undefined;

  /** The virtual time now, in milliseconds. */
  get nowMs(): number {
    return this.clockMs;
  }

  get size(): number {
    return this.heap.length;
  }

  /** The time of the next event, or undefined when the queue is empty. */
  peekMs(): number | undefined {
    return this.heap[0]?.atMs;
  }

  /**
   * Schedules `run` at `atMs` (clamped to now: nothing is ever scheduled in the past).
   * @throws RangeError when `atMs` is NaN.
   */
  schedule(atMs: number, kind: string, node: number, arg: number, run: () => void): void {
    if (Number.isNaN(atMs)) throw new RangeError(`schedule ${kind}: atMs is NaN`);
    const event: SimEvent = {
      atMs: atMs < this.clockMs ? this.clockMs : atMs,
      seq: this.seq++,
      kind,
      node,
      arg,
      run,
    };
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(event, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  /** Runs the earliest event. Returns false when the queue is empty. */
  step(): boolean {
    const event = this.pop();
    if (event === undefined) return false;
    this.clockMs = event.atMs;
    this.processed++;
    this.observer?.(event);
    event.run();
    return true;
  }

  private pop(): SimEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && before(heap[r]!, heap[l]!)) c = r;
        if (!before(heap[c]!, last)) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
