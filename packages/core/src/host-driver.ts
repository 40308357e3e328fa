/**
 * The host driver: the core's contract (core.ts) carried out once, for every host and harness.
 *
 * Theory of operation
 * - `handle(input)` feeds the core, then drains `poll()` until `undefined`, handing each output to
 *   the adapter's `perform`, then calls `afterDrain` (a host that batches writes flushes them
 *   there) and arms the one timer for `nextDeadlineMs()` (the adapter's `setTimer` is called only
 *   when the deadline changed).
 * - An input that arrives while the driver is draining (an output's side effect, such as a
 *   socket callback that fires synchronously, or an adapter answering at once) is queued and fed
 *   after the drain, in order: the core is never re-entered from inside `poll`.
 * - The adapter is one exhaustive `switch` over `CoreOutput` ending in `unreachableOutput`, so a
 *   new output kind fails to compile until every host handles it.
 * - `timerFired(nowMs, wallClockMs)` is what the adapter's timer calls (the wall clock, Unix ms
 *   from the host's Date.now, is required by a core with gossip on); after it the driver always calls
 *   `setTimer` again (with `undefined` when nothing is due), since the host's timer is spent. A
 *   stale timer (re-armed since) is harmless: the core ignores a `timer-fired` with nothing due.
 * An exception from the core (host misuse) propagates out of `handle` after the driver resets,
 * so the next input is driven normally.
 */
import type { Core, CoreInput, CoreOutput } from './core.js';
import { PeapodError } from './errors.js';

/** What a host supplies to the driver. */
export interface HostAdapter {
  /** Carries out one output: one exhaustive switch over `CoreOutput`. */
  perform(output: CoreOutput): void;
  /** Arms the host's one timer for `deadlineMs` (the core's clock), or disarms it (`undefined`). */
  setTimer(deadlineMs: number | undefined): void;
  /** Called after each drain, before the timer is armed (flush batched writes here). */
  afterDrain?(): void;
}

export class HostDriver {
  private readonly queue: CoreInput[] = [];
  private draining = false;
  private armedMs: number | undefined = undefined;

  constructor(
    readonly core: Core,
    private readonly adapter: HostAdapter,
  ) {}

  /** Feeds one input and runs the host loop; queued when it arrives during a drain. */
  handle(input: CoreInput): void {
    if (this.draining) {
      this.queue.push(input);
      return;
    }
    this.draining = true;
    try {
      // The common case (nothing queued) touches no array: this runs for every received chunk.
      let next: CoreInput | undefined = input;
      for (; next !== undefined; next = this.queue.length > 0 ? this.queue.shift() : undefined) {
        this.core.handle(next);
        for (let out = this.core.poll(); out !== undefined; out = this.core.poll()) {
          this.adapter.perform(out);
        }
        this.adapter.afterDrain?.();
      }
    } catch (error) {
      this.queue.length = 0;
      throw error;
    } finally {
      this.draining = false;
    }
    this.arm();
  }

  /** The adapter's timer fired. */
  timerFired(nowMs: number, wallClockMs?: number): void {
    // The host's timer is spent: whatever the next deadline is (none included), say it.
    this.armedMs = Number.NaN;
    this.handle(
      wallClockMs === undefined
        ? { type: 'timer-fired', nowMs }
        : { type: 'timer-fired', nowMs, wallClockMs },
    );
  }

  /** True while outputs are being carried out (an input now is queued, not re-entered). */
  get isDraining(): boolean {
    return this.draining;
  }

  private arm(): void {
    const deadline = this.core.nextDeadlineMs();
    if (deadline === this.armedMs) return;
    this.armedMs = deadline;
    this.adapter.setTimer(deadline);
  }
}

/** The `never` check that ends every host's output switch. */
export function unreachableOutput(output: never): never {
  throw new PeapodError('PEAPOD_ERR_ASSERTION', `unhandled core output ${JSON.stringify(output)}`);
}
