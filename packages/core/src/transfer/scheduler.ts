/**
 * The piece scheduler of one download (DESIGN.md decision 9): pure decisions, no I/O, driven by
 * `nowMs`. A download is a row of pieces (a content's chunks, or a URL object's byte ranges);
 * sources are `SELF_SOURCE` (this device's own origin link) and link IDs of peers.
 *
 * What it decides:
 * - **Who gets which piece.** `assign()` walks the pending pieces inside the memory window, in
 *   order (`'in-order'`: URL downloads, where delivery is sequential) or rarest first with PRNG
 *   tie breaks (`'rarest-first'`: content swarms), and gives each to the best free source that
 *   can serve it: non-seeds before seeds (so a seed uploads each chunk about once), then the
 *   highest measured throughput (unmeasured sources are tried first, optimistically), then a
 *   PRNG draw. Only the K best sources (`sourcesMax`) get new work.
 * - **How much in flight.** Each source keeps a bounded pipeline: enough pieces to cover its
 *   bandwidth x RTT product, at least `pipelineMin`, at most `pipelineMax`, shared with the
 *   other downloads of the same core (the caller passes their load, so lower priority numbers,
 *   scheduled first, win a contended source).
 * - **Endgame / head of line.** A source with free slots and nothing pending it can take
 *   duplicates an active piece (at most `copiesMax` copies) when it would finish that piece
 *   before the current holder is expected to. The first copy to arrive wins; `received()`
 *   returns the losers, which the caller cancels.
 * - **Failures.** A stalled source (no progress for `stallTimeoutMs(source)`, derived from its
 *   throughput with a floor; for content swarms at least the time to drain what is in flight,
 *   `queueAllowanceMs`), a departed one, an error or an integrity failure return the piece
 *   to pending. Errors back the source off; integrity failures add strikes, and a source that
 *   reaches `banThreshold` strikes is banned: it gets nothing more.
 *
 * Throughput is measured per source as bytes per *busy* millisecond (time with at least one
 * piece in flight), folded into an integer EWMA at each received piece, so pipelining does not
 * make a source look slower than it is. All state is integers except the time estimates used
 * to compare two sources.
 */
import { assert } from '../errors.js';
import type { Prng } from '../prng.js';

/** The scheduler's name for this device's own origin link. */
export const SELF_SOURCE = -1;

/** A source: `SELF_SOURCE` or a link ID. */
export type SourceId = number;

/** Tunables; every field has a default in `SchedulerDefaults`. */
export interface SchedulerOptions {
  readonly pieceCount: number;
  /** Byte offset where piece `i` starts; `pieceStart(pieceCount)` is the total size. */
  readonly pieceStart: (index: number) => number;
  readonly mode: 'in-order' | 'rarest-first';
  readonly prng: Prng;
  readonly pipelineMin?: number;
  readonly pipelineMax?: number;
  /** K of the K-selection: at most this many sources get new work. */
  readonly sourcesMax?: number;
  readonly copiesMax?: number;
  readonly stallFloorMs?: number;
  readonly banThreshold?: number;
  /**
   * Just-in-time pipelining (in-order downloads): a source that has pieces in flight gets its
   * next one only when those are about to end (see `SchedulerDefaults.leadFloorMs`). Off by
   * default: every free slot is filled at once.
   */
  readonly justInTime?: boolean;
  /**
   * Stall timeouts include the queueing allowance (`queueAllowanceMs`): for content swarms,
   * whose sources all share this device's downlink. Off by default.
   */
  readonly queueAllowance?: boolean;
}

/** Defaults, with their reasons. */
export const SchedulerDefaults = {
  /** Two pieces: one arriving, one queued behind it, so a source never idles for an RTT. */
  pipelineMin: 2,
  /** Bounds memory and the damage when a source leaves with work in flight. */
  pipelineMax: 8,
  /** ElioP2P's K-selection uses 5-10; a pod of 8 (self + 7) must fit. */
  sourcesMax: 10,
  /** An original and one endgame copy. */
  copiesMax: 2,
  /** A helper's origin may take seconds to answer its first byte. */
  stallFloorMs: 5_000,
  /** Three strikes (docs/protocol.md 7.2: ban after repeated failures). */
  banThreshold: 3,
  /**
   * Just-in-time pipelining: a busy source gets its next piece once the bytes it still has to
   * send take at most its lead time at its measured rate. The lead is twice its measured first-
   * byte latency (assignment to first byte: the link's round trip plus, for URL pieces, the
   * origin's), so the next piece's first byte lands before the current piece's last one, plus
   * this floor for jitter. Unmeasured, the lead is `leadDefaultMs`.
   */
  leadFloorMs: 50,
  leadDefaultMs: 250,
} as const;

/** The longest queueing allowance a source's stall timeout gets (see `queueAllowanceMs`). */
const QUEUE_ALLOWANCE_MAX_MS = 60_000;

/** Why an assignment ended without the piece. */
export type FailureKind = 'error' | 'busy' | 'not-found' | 'stall' | 'cancelled';

export interface Assignment {
  readonly piece: number;
  readonly source: SourceId;
  /** True for an endgame / head-of-line copy of a piece another source is already fetching. */
  readonly duplicate: boolean;
}

/** What the caller tells `assign` about the world outside this download. */
export interface AssignContext {
  /** Pieces must end at or before this byte offset (the memory window) ... */
  readonly windowEndBytes: number;
  /**
   * ... unless they contain this one (the delivery point the host acknowledged), so a window
   * smaller than a piece still makes progress.
   */
  readonly windowStartBytes: number;
  /** Whether `source` can serve `piece` (availability, capability). */
  readonly canServe: (source: SourceId, piece: number) => boolean;
  /** Number of sources holding `piece` (rarest-first only). */
  readonly holders?: (piece: number) => number;
  /** Pieces `source` has in flight for other downloads of this core. */
  readonly otherLoad?: (source: SourceId) => number;
  /**
   * Most bytes this download may have in flight over all sources (content downloads, whose
   * memory is bounded by this rather than by the delivery window). Unbounded when absent.
   */
  readonly inflightBytesMax?: number;
}

interface SourceState {
  readonly id: SourceId;
  isSeed: boolean;
  rttMs: number;
  readonly inflight: Set<number>;
  /** EWMA of bytes per busy second; 0 = not measured yet. */
  bytesPerSecond: number;
  /** EWMA of the time from an assignment to its first byte, in ms; 0 = not measured yet. */
  firstByteMs: number;
  busySinceMs: number;
  sampleBytes: number;
  sampleBusyMs: number;
  lastProgressMs: number;
  strikes: number;
  errorStreak: number;
  banned: boolean;
  backoffUntilMs: number;
}

interface AssigneeState {
  bytes: number;
  readonly sinceMs: number;
}

type PieceStatus = 'pending' | 'active' | 'checking' | 'done';

interface PieceState {
  status: PieceStatus;
  readonly assignees: Map<SourceId, AssigneeState>;
  /** Sources that must not get this piece before the given time. */
  excludedUntil: Map<SourceId, number> | undefined;
}

export class PieceScheduler {
  readonly pieceCount: number;
  private readonly options: Required<Omit<SchedulerOptions, 'pieceStart' | 'prng' | 'mode'>>;
  private readonly pieceStart: (index: number) => number;
  private readonly mode: 'in-order' | 'rarest-first';
  private readonly prng: Prng;
  private readonly pieces: PieceState[];
  private readonly sources = new Map<SourceId, SourceState>();
  private headIndex = 0;
  private doneCount = 0;
  /** Bytes of the pieces in flight, counted once per assignee. */
  private inflightBytes = 0;
  /** Bytes already received of the pieces in flight (same counting as `inflightBytes`). */
  private inflightReceivedBytes = 0;

  constructor(options: SchedulerOptions) {
    this.pieceCount = options.pieceCount;
    this.pieceStart = options.pieceStart;
    this.mode = options.mode;
    this.prng = options.prng;
    this.options = {
      pieceCount: options.pieceCount,
      pipelineMin: options.pipelineMin ?? SchedulerDefaults.pipelineMin,
      pipelineMax: options.pipelineMax ?? SchedulerDefaults.pipelineMax,
      sourcesMax: options.sourcesMax ?? SchedulerDefaults.sourcesMax,
      copiesMax: options.copiesMax ?? SchedulerDefaults.copiesMax,
      stallFloorMs: options.stallFloorMs ?? SchedulerDefaults.stallFloorMs,
      banThreshold: options.banThreshold ?? SchedulerDefaults.banThreshold,
      justInTime: options.justInTime ?? false,
      queueAllowance: options.queueAllowance ?? false,
    };
    this.pieces = Array.from({ length: options.pieceCount }, () => ({
      status: 'pending' as PieceStatus,
      assignees: new Map<SourceId, AssigneeState>(),
      excludedUntil: undefined,
    }));
  }

  /** True once every piece was accepted. */
  get complete(): boolean {
    return this.doneCount === this.pieceCount;
  }

  /** Adds a source, or updates its seed flag and RTT. Banned sources stay banned. */
  upsertSource(id: SourceId, info: { isSeed?: boolean; rttMs?: number } = {}): void {
    let source = this.sources.get(id);
    if (source === undefined) {
      source = {
        id,
        isSeed: false,
        rttMs: 0,
        inflight: new Set(),
        bytesPerSecond: 0,
        firstByteMs: 0,
        busySinceMs: 0,
        sampleBytes: 0,
        sampleBusyMs: 0,
        lastProgressMs: 0,
        strikes: 0,
        errorStreak: 0,
        banned: false,
        backoffUntilMs: 0,
      };
      this.sources.set(id, source);
    }
    if (info.isSeed !== undefined) source.isSeed = info.isSeed;
    if (info.rttMs !== undefined) source.rttMs = info.rttMs;
  }

  hasSource(id: SourceId): boolean {
    return this.sources.has(id);
  }

  /** Pieces in flight at `source` for this download. */
  inflightOf(id: SourceId): number {
    return this.sources.get(id)?.inflight.size ?? 0;
  }

  /** The source's measured throughput in bytes per second (0 = unmeasured). */
  throughputOf(id: SourceId): number {
    return this.sources.get(id)?.bytesPerSecond ?? 0;
  }

  isBanned(id: SourceId): boolean {
    return this.sources.get(id)?.banned ?? false;
  }

  /** Whether `source` currently holds an assignment for `piece`. */
  isAssigned(piece: number, source: SourceId): boolean {
    return this.pieces[piece]?.assignees.has(source) ?? false;
  }

  /** Every (piece, source) assignment in flight. */
  assignments(): Assignment[] {
    const out: Assignment[] = [];
    for (const source of this.sources.values()) {
      for (const piece of source.inflight) out.push({ piece, source: source.id, duplicate: false });
    }
    return out;
  }

  /**
   * Removes a source (its link closed): its pieces return to pending unless another source has
   * them. Returns those pieces.
   */
  removeSource(id: SourceId, nowMs: number): number[] {
    const source = this.sources.get(id);
    if (source === undefined) return [];
    const freed = [...source.inflight];
    for (const piece of freed) this.unassign(piece, source, nowMs);
    this.sources.delete(id);
    return freed;
  }

  /** Bans a source at once: it keeps nothing and gets nothing. Returns the pieces it held. */
  ban(id: SourceId, nowMs: number): number[] {
    this.upsertSource(id);
    const source = this.sources.get(id)!;
    source.banned = true;
    const freed = [...source.inflight];
    for (const piece of freed) this.unassign(piece, source, nowMs);
    return freed;
  }

  /**
   * A done piece must be fetched again (the host's stored copy was lost or failed its check
   * when read back for delivery): it returns to pending.
   */
  reopen(piece: number): void {
    const state = this.pieces[piece];
    assert(state !== undefined && state.status === 'done', `reopen: piece ${piece} not done`);
    state.status = 'pending';
    this.doneCount--;
    if (piece < this.headIndex) this.headIndex = piece;
  }

  /** New assignments. The caller carries each out (request, FETCH_ASSIGN, fetch-origin). */
  assign(nowMs: number, context: AssignContext): Assignment[] {
    const out: Assignment[] = [];
    const chosen = this.selectSources(nowMs);
    const free = new Map<SourceId, number>();
    for (const source of chosen) {
      let slots =
        this.depthOf(source) - source.inflight.size - (context.otherLoad?.(source.id) ?? 0);
      // Just in time: one piece at a time, and only to a source about to need it.
      if (this.options.justInTime)
        slots = this.readyForMore(source, nowMs) ? Math.min(1, slots) : 0;
      if (slots > 0) free.set(source.id, slots);
    }
    if (free.size === 0) return out;
    let pendingAnywhere = false;
    const candidates: number[] = [];
    for (let index = this.headIndex; index < this.pieceCount; index++) {
      const piece = this.pieces[index]!;
      if (piece.status !== 'pending') continue;
      pendingAnywhere = true;
      if (!this.inWindow(index, context)) break;
      candidates.push(index);
    }
    if (this.mode === 'rarest-first' && context.holders !== undefined) {
      const keyed = candidates.map((index) => ({
        index,
        rarity: context.holders!(index),
        tie: this.prng.nextU32(),
      }));
      keyed.sort((a, b) => a.rarity - b.rarity || a.tie - b.tie);
      candidates.length = 0;
      for (const entry of keyed) candidates.push(entry.index);
    }
    const budget = context.inflightBytesMax ?? Number.MAX_SAFE_INTEGER;
    const fits = (index: number): boolean =>
      this.inflightBytes === 0 ||
      this.inflightBytes + this.pieceStart(index + 1) - this.pieceStart(index) <= budget;
    for (const index of candidates) {
      if (free.size === 0 || !fits(index)) break;
      const source = this.bestSourceFor(index, free, context, nowMs);
      if (source === undefined) continue;
      this.give(index, source, nowMs);
      out.push({ piece: index, source: source.id, duplicate: false });
      const left = free.get(source.id)! - 1;
      if (left > 0) free.set(source.id, left);
      else free.delete(source.id);
    }
    // Endgame and head-of-line copies, fastest idle sources first.
    if (free.size > 0) {
      const idle = [...free.keys()]
        .map((id) => this.sources.get(id)!)
        .sort((a, b) => b.bytesPerSecond - a.bytesPerSecond || a.id - b.id);
      for (const source of idle) {
        if (this.mode === 'rarest-first' && (pendingAnywhere || source.isSeed)) continue;
        const piece = this.duplicateFor(source, context, nowMs, !pendingAnywhere);
        if (piece === undefined || !fits(piece)) continue;
        this.give(piece, source, nowMs);
        out.push({ piece, source: source.id, duplicate: true });
      }
    }
    return out;
  }

  /** `byteCount` more bytes of `piece` arrived from `source`. */
  progress(piece: number, source: SourceId, byteCount: number, nowMs: number): void {
    const state = this.sources.get(source);
    const assignee = this.pieces[piece]?.assignees.get(source);
    if (state === undefined || assignee === undefined) return;
    if (assignee.bytes === 0 && byteCount > 0) {
      const sample = Math.max(1, Math.ceil(nowMs - assignee.sinceMs));
      state.firstByteMs =
        state.firstByteMs === 0 ? sample : Math.floor((state.firstByteMs * 3 + sample) / 4);
    }
    assignee.bytes += byteCount;
    if (state.inflight.has(piece)) this.inflightReceivedBytes += byteCount;
    state.sampleBytes += byteCount;
    state.lastProgressMs = nowMs;
  }

  /**
   * `source` delivered all of `piece`; it is now being checked (or, for content, already
   * verified: call `accept` next). Frees the source's slot, updates its throughput, and takes
   * the piece away from every other assignee: those are returned, to be cancelled.
   */
  received(piece: number, sourceId: SourceId, nowMs: number): SourceId[] {
    const state = this.pieces[piece];
    const source = this.sources.get(sourceId);
    assert(state !== undefined && source !== undefined, 'received: unknown piece or source');
    assert(
      state.assignees.has(sourceId),
      `received: piece ${piece} is not assigned to ${sourceId}`,
    );
    this.accrue(source, nowMs);
    if (source.sampleBusyMs > 0 && source.sampleBytes > 0) {
      const sample = Math.floor((source.sampleBytes * 1000) / source.sampleBusyMs);
      source.bytesPerSecond =
        source.bytesPerSecond === 0 ? sample : Math.floor((source.bytesPerSecond * 3 + sample) / 4);
      source.sampleBytes = 0;
      source.sampleBusyMs = 0;
    }
    source.errorStreak = 0;
    this.unassign(piece, source, nowMs);
    const losers = [...state.assignees.keys()];
    for (const loser of losers) this.unassign(piece, this.sources.get(loser)!, nowMs);
    state.status = 'checking';
    return losers;
  }

  /** The checked piece is good: it is done. */
  accept(piece: number): void {
    const state = this.pieces[piece];
    assert(
      state !== undefined && state.status === 'checking',
      `accept: piece ${piece} not checking`,
    );
    this.markDone(state);
  }

  /**
   * A pending piece this device already holds (a content download reads it back from the host
   * instead of fetching it): it is done, until `reopen`. Returns false when the piece is not
   * pending (in flight, being checked, or done), which changes nothing.
   */
  markHeld(piece: number): boolean {
    const state = this.pieces[piece];
    if (state === undefined || state.status !== 'pending') return false;
    this.markDone(state);
    return true;
  }

  /** Whether `piece` is done (accepted or held). */
  isDone(piece: number): boolean {
    return this.pieces[piece]?.status === 'done';
  }

  private markDone(state: PieceState): void {
    state.status = 'done';
    this.doneCount++;
    while (this.headIndex < this.pieceCount && this.pieces[this.headIndex]!.status === 'done') {
      this.headIndex++;
    }
  }

  /**
   * The piece from `source` failed an integrity check: it returns to pending, `source` may not
   * take it again, and gets `weight` strikes. Returns whether the source is now banned.
   */
  reject(piece: number, sourceId: SourceId, weight: number, nowMs: number): { banned: boolean } {
    const state = this.pieces[piece];
    assert(state !== undefined, 'reject: unknown piece');
    const source = this.sources.get(sourceId);
    if (state.assignees.has(sourceId) && source !== undefined) this.unassign(piece, source, nowMs);
    if (state.status === 'checking' && state.assignees.size === 0) state.status = 'pending';
    if (source === undefined) return { banned: false };
    this.exclude(state, sourceId, Number.MAX_SAFE_INTEGER);
    source.strikes += weight;
    if (source.strikes >= this.options.banThreshold && sourceId !== SELF_SOURCE) {
      this.ban(sourceId, nowMs);
      return { banned: true };
    }
    return { banned: false };
  }

  /** An assignment ended without the piece (error, busy, not found, stall, cancel). */
  fail(piece: number, sourceId: SourceId, kind: FailureKind, nowMs: number): void {
    const state = this.pieces[piece];
    const source = this.sources.get(sourceId);
    if (state === undefined || source === undefined || !state.assignees.has(sourceId)) return;
    this.unassign(piece, source, nowMs);
    switch (kind) {
      case 'busy':
        source.backoffUntilMs = nowMs + 500;
        break;
      case 'not-found':
        this.exclude(state, sourceId, nowMs + 10_000);
        break;
      case 'error':
        source.errorStreak++;
        source.backoffUntilMs =
          nowMs + Math.min(30_000, 1_000 * 2 ** Math.min(5, source.errorStreak - 1));
        break;
      case 'stall':
        source.errorStreak++;
        source.backoffUntilMs = nowMs + this.options.stallFloorMs;
        if (sourceId !== SELF_SOURCE) this.exclude(state, sourceId, nowMs + 30_000);
        break;
      case 'cancelled':
        break;
      default: {
        const unreachable: never = kind;
        assert(false, `unknown failure ${String(unreachable)}`);
      }
    }
  }

  /**
   * How long `source` may go without progress before it counts as stalled: eight 64 KiB
   * frames' worth of time at its measured rate, or the floor, or the queueing allowance
   * (`queueAllowanceMs`), whichever is longest.
   */
  stallTimeoutMs(id: SourceId, allowanceMs = this.queueAllowanceMs()): number {
    const source = this.sources.get(id);
    const rate = source?.bytesPerSecond ?? 0;
    const derived = rate > 0 ? Math.ceil((8 * 65_536 * 1000) / rate) : 0;
    return Math.max(this.options.stallFloorMs, derived, allowanceMs);
  }

  /**
   * The time this download needs to receive what it still has in flight, at the summed measured
   * rates of its busy sources (at most `QUEUE_ALLOWANCE_MAX_MS`; 0 while none is measured).
   * When this device's own downlink is the bottleneck, the bytes of every request in flight
   * share one queue in front of it, so a new request's first byte waits behind the others' and
   * a healthy source can be silent for that long. Without the allowance such a source counts as
   * stalled, its request is cancelled (the bytes already on the wire are wasted) and the chunk
   * moves to the next source, which waits behind the same queue: a chunk can then starve for
   * minutes while every other chunk arrives (sim seed 173033983: the first chunk, so nothing was
   * delivered).
   */
  private queueAllowanceMs(): number {
    if (!this.options.queueAllowance) return 0;
    let rate = 0;
    for (const source of this.sources.values()) {
      if (source.inflight.size > 0) rate += source.bytesPerSecond;
    }
    const outstanding = this.inflightBytes - this.inflightReceivedBytes;
    if (rate <= 0 || outstanding <= 0) return 0;
    return Math.min(QUEUE_ALLOWANCE_MAX_MS, Math.ceil((outstanding * 1000) / rate));
  }

  private stallDeadlineMs(
    source: { readonly id: SourceId; readonly lastProgressMs: number },
    allowanceMs: number,
  ): number {
    return source.lastProgressMs + this.stallTimeoutMs(source.id, allowanceMs);
  }

  /** Sources with work in flight and no progress for their stall timeout. */
  stalled(nowMs: number): SourceId[] {
    const out: SourceId[] = [];
    const allowanceMs = this.queueAllowanceMs();
    for (const source of this.sources.values()) {
      if (
        source.inflight.size > 0 &&
        // The same expression as nextDeadlineMs: with fractional clocks, `now - last >= t` can
        // be false at the very instant `last + t` was promised, and the timer would spin.
        nowMs >= this.stallDeadlineMs(source, allowanceMs)
      ) {
        out.push(source.id);
      }
    }
    return out;
  }

  /** The next time the scheduler wants to look again: a stall check or a back-off ending. */
  nextDeadlineMs(): number | undefined {
    let min: number | undefined;
    const consider = (at: number): void => {
      if (min === undefined || at < min) min = at;
    };
    const allowanceMs = this.queueAllowanceMs();
    for (const source of this.sources.values()) {
      if (source.inflight.size > 0) consider(this.stallDeadlineMs(source, allowanceMs));
      // A back-off that ended still counts until `endBackoffs`: the timer that fires at its end
      // must find it due, or the caller never looks at the source again.
      if (!source.banned && source.backoffUntilMs > 0) consider(source.backoffUntilMs);
    }
    return min;
  }

  /** Forgets the back-offs that have ended (call when the timer fires, before assigning). */
  endBackoffs(nowMs: number): void {
    for (const source of this.sources.values()) {
      if (source.backoffUntilMs <= nowMs) source.backoffUntilMs = 0;
    }
  }

  /** The earliest future end of a source's exclusion from a pending piece, if any. */
  nextExclusionEndMs(nowMs: number): number | undefined {
    let min: number | undefined;
    for (let index = this.headIndex; index < this.pieceCount; index++) {
      const state = this.pieces[index]!;
      if (state.status !== 'pending' || state.excludedUntil === undefined) continue;
      for (const until of state.excludedUntil.values()) {
        if (until > nowMs && until < Number.MAX_SAFE_INTEGER && (min === undefined || until < min))
          min = until;
      }
    }
    return min;
  }

  private inWindow(index: number, context: AssignContext): boolean {
    return (
      this.pieceStart(index + 1) <= context.windowEndBytes ||
      this.pieceStart(index) <= context.windowStartBytes
    );
  }

  private exclude(state: PieceState, source: SourceId, untilMs: number): void {
    state.excludedUntil ??= new Map();
    state.excludedUntil.set(source, untilMs);
  }

  private isExcluded(state: PieceState, source: SourceId, nowMs: number): boolean {
    const until = state.excludedUntil?.get(source);
    return until !== undefined && until > nowMs;
  }

  private give(piece: number, source: SourceState, nowMs: number): void {
    const state = this.pieces[piece]!;
    this.accrue(source, nowMs);
    if (source.inflight.size === 0) {
      source.busySinceMs = nowMs;
      source.lastProgressMs = nowMs;
    }
    source.inflight.add(piece);
    this.inflightBytes += this.pieceStart(piece + 1) - this.pieceStart(piece);
    state.assignees.set(source.id, { bytes: 0, sinceMs: nowMs });
    state.status = 'active';
  }

  private unassign(piece: number, source: SourceState, nowMs: number): void {
    const state = this.pieces[piece]!;
    this.accrue(source, nowMs);
    if (source.inflight.delete(piece)) {
      this.inflightBytes -= this.pieceStart(piece + 1) - this.pieceStart(piece);
      this.inflightReceivedBytes -= state.assignees.get(source.id)?.bytes ?? 0;
    }
    state.assignees.delete(source.id);
    if (state.status === 'active' && state.assignees.size === 0) state.status = 'pending';
  }

  /** Adds the busy time since the last accrual to the source's sample. */
  private accrue(source: SourceState, nowMs: number): void {
    if (source.inflight.size > 0) source.sampleBusyMs += nowMs - source.busySinceMs;
    source.busySinceMs = nowMs;
  }

  /**
   * Just-in-time pipelining: whether a source should get another piece now: it is idle, or what
   * it still has to send takes at most its lead time (`assign` then gives it one piece; the next
   * call looks again, so a lead longer than a piece still fills the pipeline). Pieces fetched at
   * the same time share the source's link (an origin serves a client's requests side by side),
   * so each would take longer; in-order delivery then holds more pieces out of order, and the
   * memory window fills with work in flight instead of leaving room for the slowest piece.
   */
  private readyForMore(source: SourceState, nowMs: number): boolean {
    if (source.inflight.size === 0) return true;
    let rate = source.bytesPerSecond;
    if (rate === 0) {
      // Not measured yet: the current sample (bytes per busy ms so far), if any.
      const busyMs = source.sampleBusyMs + (nowMs - source.busySinceMs);
      if (busyMs <= 0 || source.sampleBytes === 0) return false;
      rate = (source.sampleBytes * 1000) / busyMs;
    }
    let remaining = 0;
    for (const piece of source.inflight) {
      const length = this.pieceStart(piece + 1) - this.pieceStart(piece);
      remaining += length - (this.pieces[piece]!.assignees.get(source.id)?.bytes ?? 0);
    }
    const leadMs =
      source.firstByteMs === 0
        ? SchedulerDefaults.leadDefaultMs
        : 2 * source.firstByteMs + SchedulerDefaults.leadFloorMs;
    return remaining * 1000 <= rate * leadMs;
  }

  private depthOf(source: SourceState): number {
    const size = Math.max(1, this.pieceStart(1) - this.pieceStart(0));
    const bdp = Math.ceil((source.bytesPerSecond * source.rttMs) / 1000);
    const depth = 1 + Math.ceil(bdp / size);
    return Math.min(this.options.pipelineMax, Math.max(this.options.pipelineMin, depth));
  }

  /** The K best usable sources: unmeasured first (optimism), then by throughput, PRNG ties. */
  private selectSources(nowMs: number): SourceState[] {
    const usable = [...this.sources.values()].filter((s) => !s.banned && s.backoffUntilMs <= nowMs);
    const keyed = usable.map((source) => ({ source, tie: this.prng.nextU32() }));
    keyed.sort(
      (a, b) =>
        (a.source.bytesPerSecond === 0 ? 0 : 1) - (b.source.bytesPerSecond === 0 ? 0 : 1) ||
        b.source.bytesPerSecond - a.source.bytesPerSecond ||
        a.tie - b.tie,
    );
    // Sources already working keep their place among the K, so K-selection does not thrash.
    const working = keyed.filter((k) => k.source.inflight.size > 0);
    const idle = keyed.filter((k) => k.source.inflight.size === 0);
    return [...working, ...idle].slice(0, this.options.sourcesMax).map((k) => k.source);
  }

  private bestSourceFor(
    piece: number,
    free: Map<SourceId, number>,
    context: AssignContext,
    nowMs: number,
  ): SourceState | undefined {
    const state = this.pieces[piece]!;
    // Swarms: a seed's upload is the only source of chunks nobody else has, so a piece that a
    // usable non-seed holds waits for that non-seed (even if it is busy now) rather than taking
    // a seed's time. Seeds thus serve the chunks only they hold, about once each.
    const seedsAllowed =
      this.mode !== 'rarest-first' || !this.nonSeedCanServe(piece, state, context, nowMs);
    let best: SourceState | undefined;
    let bestKey: [number, number, number] | undefined;
    for (const id of free.keys()) {
      const source = this.sources.get(id)!;
      if (source.isSeed && !seedsAllowed) continue;
      if (this.isExcluded(state, id, nowMs) || !context.canServe(id, piece)) continue;
      // Lower is better: non-seeds first, unmeasured (optimistic) or faster next, then chance.
      const key: [number, number, number] = [
        source.isSeed ? 1 : 0,
        source.bytesPerSecond === 0 ? -Number.MAX_SAFE_INTEGER : -source.bytesPerSecond,
        this.prng.nextU32(),
      ];
      if (bestKey === undefined || compareKeys(key, bestKey) < 0) {
        best = source;
        bestKey = key;
      }
    }
    return best;
  }

  /** Whether some usable (not banned, not backed off, not excluded) non-seed holds `piece`. */
  private nonSeedCanServe(
    piece: number,
    state: PieceState,
    context: AssignContext,
    nowMs: number,
  ): boolean {
    for (const source of this.sources.values()) {
      if (source.isSeed || source.banned || source.backoffUntilMs > nowMs) continue;
      if (!this.isExcluded(state, source.id, nowMs) && context.canServe(source.id, piece))
        return true;
    }
    return false;
  }

  /**
   * A piece worth copying to `source`: active, in the window, fewer than `copiesMax` copies,
   * and `source` would finish it before its current holders (in the pure endgame, with no
   * pending piece anywhere, an unmeasured source may copy too).
   */
  private duplicateFor(
    source: SourceState,
    context: AssignContext,
    nowMs: number,
    pureEndgame: boolean,
  ): number | undefined {
    let best: number | undefined;
    let bestRemainingMs = 0;
    for (let index = this.headIndex; index < this.pieceCount; index++) {
      if (!this.inWindow(index, context)) break;
      const state = this.pieces[index]!;
      if (state.status !== 'active' || state.assignees.size >= this.options.copiesMax) continue;
      if (state.assignees.has(source.id) || this.isExcluded(state, source.id, nowMs)) continue;
      if (!context.canServe(source.id, index)) continue;
      const length = this.pieceStart(index + 1) - this.pieceStart(index);
      let remainingMs = Infinity;
      for (const [holderId, assignee] of state.assignees) {
        const holder = this.sources.get(holderId)!;
        const rate =
          holder.bytesPerSecond > 0
            ? holder.bytesPerSecond
            : assignee.bytes > 0
              ? (assignee.bytes * 1000) / Math.max(1, nowMs - assignee.sinceMs)
              : 0;
        const estimate = rate > 0 ? ((length - assignee.bytes) * 1000) / rate : Infinity;
        remainingMs = Math.min(remainingMs, estimate);
      }
      const mineMs = source.bytesPerSecond > 0 ? (length * 1000) / source.bytesPerSecond : Infinity;
      const worth = mineMs < remainingMs || (pureEndgame && mineMs === Infinity);
      if (!worth) continue;
      if (best === undefined || remainingMs > bestRemainingMs) {
        best = index;
        bestRemainingMs = remainingMs;
      }
    }
    return best;
  }
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}
