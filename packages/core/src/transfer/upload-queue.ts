/**
 * The upload queue of a serving device: which accepted chunk requests are being sent now, and
 * which wait their turn (docs/protocol.md 7.2, "Upload queue").
 *
 * A device's uplink is shared by every link with DATA queued, so N chunks sent side by side
 * each crawl at 1/N of the rate, and none is complete, verified and passed on by its receiver
 * until the slowest moment. In a swarm that is what matters: a chunk forwarded after one chunk
 * time instead of N doubles its holders N times sooner. So `slots` chunks are sent at once
 * (more only while a stalled one is set aside, below), and accepted requests beyond that wait,
 * up to `waitingBytesMax` bytes (one job may always wait): enough that the uplink never idles
 * for the round trip a requester needs to ask again. A request that finds the queue full is
 * refused `busy`, and its requester asks another holder.
 *
 * Turns go first to links the device is not sending to, then to the requester that holds the
 * fewest chunks (`rank`), ties drawn at random (so the peers nearest every holder do not win
 * every turn everywhere); when the queue is full, a new request takes the place of waiting ones
 * that rank below it, as many as it needs (the displaced jobs are refused `busy`). With one
 * requester, its pipeline keeps the uplink busy. With many, each chunk goes to a peer that has
 * little to pass on yet, which starts uploading it at once: the swarm's uploaders multiply
 * instead of one fast peer taking every chunk in turn (BitTorrent's super-seeding and new-peer
 * unchoking, decided per chunk).
 *
 * A sending job ends when its DATA and STATUS have all been cut into frames (the caller's
 * `isSending` answers false; the caller looks at each flush): the frames still in the link's
 * send window cover the time to read the next chunk, so the uplink does not idle between two
 * jobs. The caller also answers false for a job whose link stopped draining (a receiver that
 * stalled): its slot goes to the next job.
 *
 * Pure bookkeeping: no I/O, no clock. The chunk server starts the jobs `offer` and `next`
 * return, and refuses the jobs that later arrivals passed over for too long (`waitingJobs`,
 * `wasPassedOver`, `remove`).
 */

/** One accepted chunk request. */
export interface UploadJob {
  readonly linkId: number;
  readonly requestId: number;
  readonly byteCount: number;
}

export type OfferResult<Job> =
  | { readonly kind: 'start' }
  | { readonly kind: 'wait'; readonly displaced: readonly Job[] }
  | { readonly kind: 'busy' };

export class UploadQueue<Job extends UploadJob> {
  private readonly sending: Job[] = [];
  private readonly waiting: Job[] = [];
  private waitingBytes = 0;
  /** Waiting jobs that a later arrival went ahead of. */
  private readonly passedOver = new Set<Job>();

  constructor(
    /** Chunks sent at once. */
    private readonly slots: number,
    /** Bytes that may wait, over all links (one job may always wait). */
    private readonly waitingBytesMax: number,
    /** Whether a started job is still being read or has DATA not yet cut into frames. */
    private readonly isSending: (job: Job) => boolean,
    /** Lower is served sooner: how much the requester already holds. */
    private readonly rank: (job: Job) => number,
    /** A uniform draw from [0, n), to break ties. */
    private readonly draw: (n: number) => number,
  ) {}

  /** A new accepted request: start it now, let it wait (maybe displacing one), or refuse it. */
  offer(job: Job): OfferResult<Job> {
    this.prune();
    if (this.sending.length < this.slots && this.waiting.length === 0) {
      this.sending.push(job);
      return { kind: 'start' };
    }
    const displaced: Job[] = [];
    if (this.waiting.length > 0 && this.waitingBytes + job.byteCount > this.waitingBytesMax) {
      // Jobs ranked below the new one, worst first, make room if enough of them do.
      const worse = this.waiting
        .map((other, order) => ({ other, order }))
        .filter(({ other }) => this.compare(job, other) < 0)
        .sort((a, b) => this.compare(b.other, a.other) || b.order - a.order)
        .map(({ other }) => other);
      let bytes = this.waitingBytes;
      let count = this.waiting.length;
      for (const other of worse) {
        if (count === 0 || bytes + job.byteCount <= this.waitingBytesMax) break;
        displaced.push(other);
        bytes -= other.byteCount;
        count--;
      }
      if (count > 0 && bytes + job.byteCount > this.waitingBytesMax) return { kind: 'busy' };
      for (const other of displaced) this.removeWaitingAt(this.waiting.indexOf(other));
    }
    this.waiting.push(job);
    this.waitingBytes += job.byteCount;
    return { kind: 'wait', displaced };
  }

  /** Waiting jobs whose turn came (slots freed since the last call), best ranked first. */
  next(): Job[] {
    if (this.waiting.length === 0) return [];
    this.prune();
    const started: Job[] = [];
    while (this.sending.length < this.slots && this.waiting.length > 0) {
      let ties = [0];
      for (let i = 1; i < this.waiting.length; i++) {
        const order = this.compare(this.waiting[i]!, this.waiting[ties[0]!]!);
        if (order < 0) ties = [i];
        else if (order === 0) ties.push(i);
      }
      const best = ties[this.draw(ties.length)]!;
      for (let i = 0; i < best; i++) this.passedOver.add(this.waiting[i]!);
      const job = this.waiting[best]!;
      this.removeWaitingAt(best);
      this.sending.push(job);
      started.push(job);
    }
    return started;
  }

  /** Jobs counted as sending when last pruned (some may have ended since). */
  get sendingJobs(): readonly Job[] {
    return this.sending;
  }

  get waitingJobs(): readonly Job[] {
    return this.waiting;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Whether a job that arrived after this waiting one was started first. */
  wasPassedOver(job: Job): boolean {
    return this.passedOver.has(job);
  }

  isWaiting(linkId: number, requestId: number): boolean {
    return this.waiting.some((job) => job.linkId === linkId && job.requestId === requestId);
  }

  /** Forgets a job (cancelled, or its read failed). Returns whether it was waiting. */
  remove(linkId: number, requestId: number): boolean {
    const match = (job: Job): boolean => job.linkId === linkId && job.requestId === requestId;
    this.removeSending(match);
    return this.removeWaiting(match);
  }

  /** Forgets every job of a closed link. */
  dropLink(linkId: number): void {
    const match = (job: Job): boolean => job.linkId === linkId;
    this.removeSending(match);
    this.removeWaiting(match);
  }

  /** Order of service: links not being sent to, then lower rank (`next` draws among ties). */
  private compare(a: Job, b: Job): number {
    return (
      Number(this.isSendingTo(a.linkId)) - Number(this.isSendingTo(b.linkId)) ||
      this.rank(a) - this.rank(b)
    );
  }

  private isSendingTo(linkId: number): boolean {
    return this.sending.some((job) => job.linkId === linkId);
  }

  private prune(): void {
    this.removeSending((job) => !this.isSending(job));
  }

  private removeSending(match: (job: Job) => boolean): void {
    for (let i = this.sending.length - 1; i >= 0; i--) {
      if (match(this.sending[i]!)) this.sending.splice(i, 1);
    }
  }

  private removeWaiting(match: (job: Job) => boolean): boolean {
    let removed = false;
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (!match(this.waiting[i]!)) continue;
      this.removeWaitingAt(i);
      removed = true;
    }
    return removed;
  }

  private removeWaitingAt(index: number): void {
    this.passedOver.delete(this.waiting[index]!);
    this.waitingBytes -= this.waiting[index]!.byteCount;
    this.waiting.splice(index, 1);
  }
}
