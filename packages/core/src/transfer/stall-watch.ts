/**
 * The download-level stall deadline of a pooled URL download (issue 9 item 3: "stalls end").
 *
 * The scheduler already times out one *source* that stops (its piece goes elsewhere after its
 * stall timeout, 5 s at least), but a download whose every source keeps stalling (an origin
 * that sends headers and a few bytes, then nothing, to every request) would retry for ever.
 * This watch ends that: when nothing moved for `timeoutMs` (default 60 s), the download fails
 * with reason 'stalled', naming who held the next missing piece.
 *
 * What counts as movement (each restarts the clock):
 * - a piece verified and put in place (accepted, spot checked, or repaired);
 * - bytes this device's own fetches received *beyond the most ever received of that piece*:
 *   this device's origin bytes are as trusted as the origin, and a slow link still moves, but
 *   a retry that gets the same first bytes again, then stalls again, is not movement;
 * - the host acknowledging delivered bytes.
 * A helper's bytes count only once its piece is accepted: they are not verified before, and a
 * helper could otherwise trickle a byte now and then to keep a dead download alive.
 *
 * While the download waits on its host (delivered bytes not yet acknowledged, or a read-back
 * running) the clock does not run: a slow disk or a client that reads slowly is not a stall of
 * any source. The caller reports that through `observe(nowMs, waitingOnHost)`, which it calls
 * after every input (the engine schedules every download after every input, with its time).
 *
 * Names: `asked(piece, who)` records who was last asked for a piece (this device's fetch, a
 * helper, or the origin for a helper piece awaiting its spot-check sample); the record of a
 * piece is dropped once it is in place, so the table holds at most the pieces in flight.
 * Sans-I/O: time comes only from the callers' `nowMs`.
 */

/** Default: no movement for this long fails the download. */
export const STALL_TIMEOUT_DEFAULT_MS = 60_000;

export class StallWatch {
  /** Last movement; undefined until the first `observe` (the download's start). */
  private lastMovedMs: number | undefined;
  private acknowledged = false;
  /** Per piece not yet in place: the most bytes this device's own fetches got of it. */
  private readonly highWater = new Map<number, number>();
  /** Per piece not yet in place: who was last asked for it, as a person reads it. */
  private readonly askedOf = new Map<number, string>();

  constructor(readonly timeoutMs: number) {}

  /** Restarts the clock at `nowMs`. */
  moved(nowMs: number): void {
    this.lastMovedMs = nowMs;
  }

  /** This device's own fetch of `piece` has received `received` bytes of it so far. */
  selfReceived(piece: number, received: number, nowMs: number): void {
    if (received <= (this.highWater.get(piece) ?? 0)) return;
    this.highWater.set(piece, received);
    this.moved(nowMs);
  }

  /** `who` (a phrase: "the origin (host)", "peer laptop (ABCDEFG)") was asked for `piece`. */
  asked(piece: number, who: string): void {
    this.askedOf.set(piece, who);
  }

  /** `piece` is in place (verified): forget it, and count it as movement. */
  placed(piece: number, nowMs: number): void {
    this.highWater.delete(piece);
    this.askedOf.delete(piece);
    this.moved(nowMs);
  }

  /** Who was last asked for `piece`, if anyone was. */
  holderOf(piece: number): string | undefined {
    return this.askedOf.get(piece);
  }

  /** The host acknowledged delivered bytes (the next `observe` restarts the clock). */
  hostAcknowledged(): void {
    this.acknowledged = true;
  }

  /** Called after every input with its time; see the module comment. */
  observe(nowMs: number, waitingOnHost: boolean): void {
    if (this.lastMovedMs === undefined || this.acknowledged || waitingOnHost) this.moved(nowMs);
    this.acknowledged = false;
  }

  /** When the download counts as stalled; undefined while it waits on its host. */
  deadlineMs(waitingOnHost: boolean): number | undefined {
    if (waitingOnHost || this.lastMovedMs === undefined) return undefined;
    return this.lastMovedMs + this.timeoutMs;
  }

  /** Whether the deadline has passed (the same expression as `deadlineMs`, so a timer fires). */
  stalled(nowMs: number, waitingOnHost: boolean): boolean {
    const at = this.deadlineMs(waitingOnHost);
    return at !== undefined && nowMs >= at;
  }
}

/** The host of an http(s) URL, for sentences ("the origin (example.com)"); the URL if none. */
export function urlHost(url: string): string {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?([^/?#]*)/i.exec(url);
  return match?.[1] || url;
}
