/**
 * A pooled URL download (docs/protocol.md 7.3; seed 000's bandwidth pooling): the job that ties
 * its parts together. The object is cut into pieces (url-pieces.ts; `pieceSizeBytes`, default
 * 4 MiB). A `PieceScheduler` in in-order mode assigns them to `SELF_SOURCE` (a `fetch-origin`
 * output through this device's own link) and to ready pod peers that advertise `fetchOrigin`
 * (FETCH_ASSIGN; they fetch through their own WAN and stream DATA back). Every fetch carries
 * the validator, so all pieces come from one object version; a helper's `originChanged` or this
 * device's `changed` fails the download with reason 'origin-changed' (the core's fallback
 * policy then tells the host what to do, fallback-policy.ts).
 *
 * Integrity without a manifest: the whole object is the integrity unit (DESIGN.md decision 6).
 * - Pieces this device fetched itself are trusted as much as the origin is.
 * - A helper's piece is spot checked before it is accepted (url-spot-checks.ts). A mismatch is
 *   an integrity failure: the piece is discarded and refetched elsewhere, and the helper gets
 *   strikes (all `banThreshold` at once when a strong pin (`pinStrength`) ties the version to
 *   one sequence of bytes, so the mismatch cannot be an origin change; one otherwise).
 * - A banned helper's accepted pieces become suspect and are repaired (url-repairs.ts): a
 *   suspect still in the reorder buffer is taken out of it (its place is a gap again); one
 *   already delivered goes to the host again as `deliver` with `repair: true`.
 * - End to end: without repairs, the running SHA-256 of the delivered bytes (reorder-buffer.ts)
 *   is the digest: one pass per delivered byte. After a repair of a delivered range it is void
 *   and stopped; once every byte is delivered and no piece is suspect the output is read back
 *   from the host once (`OutputReadBack`, bounded slices) and hashed. With `sha256`, a mismatch
 *   starts an audit (once, url-repairs.ts); then the output is read back and checked again; a
 *   mismatch now fails the download with 'sha256-mismatch'; a host that cannot read back
 *   fails it with 'output-unreadable'. A resumed download (`startOffset > 0`) hashes nothing
 *   and completes with `sha256` undefined, without a read-back: the host hashes the whole
 *   object (transfer-api.ts, "Digest responsibility").
 * What is guaranteed: with a digest, the output is exact or the download fails, and a helper
 * whose bytes differed is banned. Without one, a helper caught by a spot check costs only time
 * (its pieces are repaired); a helper whose corruption escapes every sample goes unnoticed:
 * only an end-to-end digest can catch it. Spot checks cost sample bytes / piece bytes of extra
 * WAN traffic on this device (at most 0.8 % with 4 MiB pieces); an audit costs the helpers'
 * share of the object again; a repair costs the suspect pieces again, plus one read of the
 * whole output from the host's disk.
 *
 * Pipelining is just in time (the scheduler's `justInTime`): a source gets its next piece only
 * when its current one is about to end. An origin serves a client's concurrent ranges side by
 * side, so two pieces assigned at once would each take twice as long; with 8 sources x 2
 * pieces x 4 MiB the 64 MiB window then held nothing but work in flight, and every source
 * waited for the slowest piece.
 *
 * Liveness: `SELF_SOURCE` is always a source, so the download never waits on peers. Five origin
 * errors in a row on this device's own fetches fail it with reason 'origin-error'; no progress
 * for the source's `stallTimeoutMs` fails it with 'stalled', naming who held the next missing
 * piece (stall-watch.ts says what counts as progress).
 */
import { equalBytes, toHex } from '../bytes.js';
import { shortDeviceId } from '../identity.js';
import {
  Capability,
  TransferStatus,
  type DataMessage,
  type StatusMessage,
} from '../wire/messages.js';
import { DownloadDelivery } from './download-delivery.js';
import { fallbackFor } from './fallback-policy.js';
import { OutputReadBack, type ReadBackOwner } from './output-readback.js';
import { PieceScheduler, SELF_SOURCE, type SourceId } from './scheduler.js';
import { StallWatch, urlHost } from './stall-watch.js';
import type { OriginOutcome } from './transfer-api.js';
import type { DownloadJob, FetchHandler, TransferContext } from './transfer-context.js';
import { PieceLayout, PieceTransfers, type PieceTransfer, type UrlSource } from './url-pieces.js';
import { RepairLedger } from './url-repairs.js';
import {
  SpotChecks,
  type SpotCheck,
  type SpotCheckOwner,
  type SpotVerdict,
} from './url-spot-checks.js';

export type { UrlSource } from './url-pieces.js';

const SELF_ERRORS_MAX = 5;

export class UrlDownload implements DownloadJob, FetchHandler, ReadBackOwner, SpotCheckOwner {
  readonly kind = 'url-download';
  state: 'running' | 'done' | 'failed' = 'running';
  private readonly layout: PieceLayout;
  private readonly scheduler: PieceScheduler;
  private readonly delivery: DownloadDelivery;
  private readonly transfers: PieceTransfers;
  private readonly spots: SpotChecks;
  private readonly ledger: RepairLedger;
  private selfErrorStreak = 0;
  /** Links that refused FETCH_ASSIGN outright (capability, policy). */
  private readonly refusedBy = new Set<number>();
  private readBack: OutputReadBack | undefined;
  private readonly stallWatch: StallWatch;

  constructor(
    private readonly ctx: TransferContext,
    readonly jobId: number,
    readonly priority: number,
    private readonly source: UrlSource,
  ) {
    const layout = new PieceLayout(source);
    this.layout = layout;
    this.scheduler = new PieceScheduler({
      pieceCount: layout.pieceCount,
      pieceStart: (index) => layout.start(index),
      mode: 'in-order',
      prng: ctx.prng.fork(),
      stallFloorMs: ctx.settings.stallFloorMs,
      banThreshold: ctx.settings.banThreshold,
      justInTime: true,
    });
    this.scheduler.upsertSource(SELF_SOURCE);
    this.spots = new SpotChecks(ctx, layout, this);
    this.transfers = new PieceTransfers(ctx, layout, this.spots, this);
    this.ledger = new RepairLedger(ctx.crypto, layout.pieceCount, source.sha256 !== undefined);
    this.stallWatch = new StallWatch(source.stallTimeoutMs);
    // Resumed: the host hashes the whole object, so the core hashes nothing (transfer-api.ts).
    const hashing = source.startOffset === 0 ? ctx.crypto : undefined;
    this.delivery = new DownloadDelivery(ctx, hashing, jobId, layout.length);
    // An empty object is complete at once.
    if (this.delivery.finished) this.finish(this.delivery.buffer.digest(), 0);
  }

  schedule(nowMs: number): void {
    if (this.state !== 'running') return;
    this.stallWatch.observe(nowMs, this.waitingOnHost());
    if (this.source.pooled) {
      for (const linkId of this.ctx.links.ready()) {
        const peer = this.ctx.links.peer(linkId);
        if (
          peer === undefined ||
          peer.trust !== 'pod' ||
          (peer.capabilities & Capability.fetchOrigin) === 0 ||
          this.refusedBy.has(linkId) ||
          this.ledger.isDistrusted(peer.deviceIdHex)
        )
          continue;
        this.scheduler.upsertSource(linkId, { rttMs: peer.rttMs ?? 0 });
      }
    }
    // Suspect pieces first: their slots count as load, so new pieces take what is left.
    this.assignRepairs(nowMs);
    if (this.state !== 'running') return;
    const assignments = this.scheduler.assign(nowMs, {
      windowEndBytes: this.delivery.buffer.windowEnd,
      windowStartBytes: this.delivery.buffer.ackedOffset,
      canServe: (source) => source === SELF_SOURCE || !this.refusedBy.has(source),
      otherLoad: (source) =>
        this.ctx.otherLoad(this.jobId, source) + this.ledger.repairLoad(source),
    });
    for (const { piece, source } of assignments) this.start(piece, source, nowMs, false);
  }

  /** A device was banned: everything accepted from it is suspect (url-repairs.ts). */
  onDeviceBanned(deviceIdHex: string, nowMs: number): void {
    this.distrust(deviceIdHex, nowMs);
  }

  // --- self fetches (pieces and repairs; spot samples are url-spot-checks.ts's own) ---

  onOriginData(fetchId: number, bytes: Uint8Array, nowMs: number): void {
    const transfer = this.transfers.self(fetchId);
    if (transfer === undefined) return;
    if (!this.transfers.write(transfer, bytes, nowMs)) {
      this.ctx.cancelFetch(fetchId);
      this.transfers.remove(transfer);
      this.selfError(transfer, 'the origin sent more than the range', nowMs);
      return;
    }
    this.stallWatch.selfReceived(transfer.piece, transfer.received, nowMs);
    if (!transfer.repair) this.scheduler.progress(transfer.piece, SELF_SOURCE, bytes.length, nowMs);
  }

  onOriginEnd(fetchId: number, outcome: OriginOutcome, detail: string, nowMs: number): void {
    this.ctx.endFetch(fetchId);
    const transfer = this.transfers.self(fetchId);
    if (transfer === undefined) return;
    this.transfers.remove(transfer);
    if (outcome === 'changed') {
      this.onOriginChanged(detail, nowMs);
      return;
    }
    if (outcome !== 'ok' || transfer.received !== this.layout.lengthOf(transfer.piece)) {
      this.selfError(transfer, outcome === 'ok' ? 'the body ended early' : detail, nowMs);
      return;
    }
    this.selfErrorStreak = 0;
    if (transfer.repair) {
      this.repairChecked(transfer.piece, transfer.buffer!, 'self', nowMs);
      return;
    }
    const losers = this.scheduler.received(transfer.piece, SELF_SOURCE, nowMs);
    this.cancelLosers(transfer.piece, losers);
    this.scheduler.accept(transfer.piece);
    this.deliverPiece(transfer.piece, transfer.buffer!, 'self', nowMs);
  }

  onOriginChanged(detail: string, nowMs: number): void {
    this.fail('origin-changed', `the origin object changed: ${detail}`, nowMs);
  }

  // --- helpers ---

  onData(linkId: number, message: DataMessage, nowMs: number): void {
    const transfer = this.transfers.helper(linkId, message.requestId);
    if (transfer === undefined) return;
    const expected =
      this.source.startOffset + this.layout.start(transfer.piece) + transfer.received;
    if (message.offset !== expected || !this.transfers.write(transfer, message.bytes, nowMs)) {
      this.ctx.protocolError(
        linkId,
        `FETCH DATA at ${message.offset}; expected ${expected} within the range`,
        nowMs,
      );
      return;
    }
    if (!transfer.repair)
      this.scheduler.progress(transfer.piece, linkId, message.bytes.length, nowMs);
  }

  onStatus(linkId: number, message: StatusMessage, nowMs: number): void {
    const transfer = this.transfers.helper(linkId, message.requestId);
    if (transfer === undefined) return;
    this.transfers.remove(transfer);
    const piece = transfer.piece;
    if (this.state !== 'running') return;
    const suspect = transfer.repair ? this.ledger.suspect(piece) : undefined;
    const stillHeld = transfer.repair
      ? suspect?.holder === linkId
      : this.scheduler.isAssigned(piece, linkId);
    if (message.status !== TransferStatus.ok || !stillHeld) this.transfers.discardSpot(transfer);
    if (!stillHeld) return;
    switch (message.status) {
      case TransferStatus.ok:
        break;
      case TransferStatus.originChanged:
        this.fail(
          'origin-changed',
          `a helper saw the origin object change: ${message.message}`,
          nowMs,
        );
        return;
      case TransferStatus.busy:
      case TransferStatus.cancelled:
        if (suspect !== undefined) this.ledger.requeue(suspect, undefined);
        else
          this.scheduler.fail(
            piece,
            linkId,
            message.status === TransferStatus.busy ? 'busy' : 'cancelled',
            nowMs,
          );
        return;
      case TransferStatus.error:
        if (suspect !== undefined) this.ledger.requeue(suspect, linkId);
        this.refusedBy.add(linkId);
        this.scheduler.removeSource(linkId, nowMs);
        return;
      default:
        if (suspect !== undefined) this.ledger.requeue(suspect, linkId);
        else this.scheduler.fail(piece, linkId, 'error', nowMs);
        return;
    }
    const length = this.layout.lengthOf(piece);
    if (message.length !== length || transfer.received !== length) {
      this.ctx.protocolError(
        linkId,
        `STATUS(ok) after ${transfer.received} of ${length} bytes`,
        nowMs,
      );
      this.transfers.discardSpot(transfer);
      return;
    }
    if (suspect === undefined) {
      const losers = this.scheduler.received(piece, linkId, nowMs);
      this.cancelLosers(piece, losers);
    }
    const spot = this.transfers.takeSpot(transfer)!;
    // The helper is done; the piece now waits on this device's spot-check sample.
    if (spot.sampleState === 'fetching')
      this.stallWatch.asked(piece, this.sourceLabel(SELF_SOURCE));
    this.spots.pieceArrived(spot, transfer.buffer!, nowMs);
  }

  onLinkClosed(linkId: number, nowMs: number): void {
    for (const transfer of this.transfers.onLink(linkId)) {
      this.transfers.remove(transfer);
      this.transfers.discardSpot(transfer);
      const suspect = transfer.repair ? this.ledger.suspect(transfer.piece) : undefined;
      if (suspect?.holder === linkId) this.ledger.requeue(suspect, linkId);
    }
    this.refusedBy.delete(linkId);
    this.scheduler.removeSource(linkId, nowMs);
    // A piece awaiting its spot check stays: the check does not need the helper.
  }

  // --- spot-check verdicts ---

  onSpotVerdict(spot: SpotCheck, bytes: Uint8Array, verdict: SpotVerdict, nowMs: number): void {
    if (this.state !== 'running') return;
    if (verdict === 'unchecked' || this.ledger.isDistrusted(spot.sourceName)) {
      this.dropSpotChecked(spot, nowMs);
      return;
    }
    if (verdict === 'mismatch') {
      // With a strong pin the version is exactly one sequence of bytes: certainly a lie.
      const certain = this.source.pinStrength === 'strong';
      const weight = certain ? this.ctx.settings.banThreshold : 1;
      // For a repair the piece stays done in the scheduler; only the strikes count.
      const { banned } = this.scheduler.reject(spot.piece, spot.source, weight, nowMs);
      if (spot.repair) {
        const suspect = this.ledger.suspect(spot.piece);
        if (suspect?.holder === spot.source) this.ledger.requeue(suspect, spot.source);
      }
      if (banned || certain) {
        const detail = `piece ${spot.piece} failed its spot check against the origin`;
        // Bans the link if it is still up (every download hears onDeviceBanned); distrust the
        // device here too, in case its link is already gone.
        this.ctx.ban(spot.source, detail, nowMs);
        this.distrust(spot.sourceName, nowMs);
      }
      return;
    }
    if (spot.repair) {
      this.repairChecked(spot.piece, bytes, spot.sourceName, nowMs);
      return;
    }
    this.scheduler.accept(spot.piece);
    this.deliverPiece(spot.piece, bytes, spot.sourceName, nowMs);
  }

  /** A piece whose check could not vouch for it goes back to be fetched again. */
  private dropSpotChecked(spot: SpotCheck, nowMs: number): void {
    if (!spot.repair) {
      this.scheduler.reject(spot.piece, spot.source, 0, nowMs);
      return;
    }
    const suspect = this.ledger.suspect(spot.piece);
    if (suspect?.holder === spot.source) this.ledger.requeue(suspect, spot.source);
  }

  private deliverPiece(piece: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    this.ledger.accepted(piece, sourceName, bytes);
    this.stallWatch.placed(piece, nowMs);
    this.delivery.add(this.layout.start(piece), bytes, sourceName, nowMs);
    this.maybeComplete(nowMs);
  }

  // --- timers and the engine's questions ---

  onTimer(nowMs: number): void {
    if (this.state !== 'running') return;
    if (this.stallWatch.stalled(nowMs, this.waitingOnHost())) {
      this.fail('stalled', this.stallDetail(), nowMs);
      return;
    }
    this.delivery.onTimer(nowMs);
    this.scheduler.endBackoffs(nowMs);
    for (const source of this.scheduler.stalled(nowMs)) {
      for (const { piece, source: holder } of this.scheduler.assignments()) {
        if (holder !== source) continue;
        this.transfers.cancelAssignment(piece, source);
        this.scheduler.fail(piece, source, 'stall', nowMs);
      }
    }
    for (const transfer of this.repairTransfers()) {
      if (nowMs < this.repairStallDeadlineMs(transfer)) continue;
      this.transfers.cancel(transfer);
      const suspect = this.ledger.suspect(transfer.piece);
      if (suspect !== undefined) this.ledger.requeue(suspect, transfer.source);
    }
  }

  nextDeadlineMs(_nowMs: number): number | undefined {
    if (this.state !== 'running') return undefined;
    let min = this.scheduler.nextDeadlineMs();
    const consider = (at: number | undefined): void => {
      if (at !== undefined && (min === undefined || at < min)) min = at;
    };
    consider(this.delivery.nextDeadlineMs());
    consider(this.stallWatch.deadlineMs(this.waitingOnHost()));
    for (const transfer of this.repairTransfers()) consider(this.repairStallDeadlineMs(transfer));
    return min;
  }

  fail(reason: string, detail: string, nowMs: number): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    void nowMs;
    this.transfers.cancelAll();
    this.readBack?.cancel();
    this.readBack = undefined;
    const { pooled, attempt } = this.source;
    this.ctx.event({
      type: 'download:failed',
      downloadId: this.jobId,
      reason,
      detail,
      fallback: fallbackFor({ kind: 'url', pooled, attempt, reason }),
    });
  }

  acknowledge(byteCount: number): void {
    this.delivery.buffer.acknowledge(byteCount);
    this.stallWatch.hostAcknowledged();
  }

  memoryBytes(): number {
    return (
      this.delivery.buffer.heldBytes +
      (this.readBack?.memoryBytes ?? 0) +
      this.transfers.memoryBytes() +
      // A spot check's piece bytes are the transfer's buffer until the piece arrived.
      this.spots.memoryBytes()
    );
  }

  inflightOf(source: SourceId): number {
    return this.scheduler.inflightOf(source) + this.ledger.repairLoad(source);
  }

  // --- read-back (after repairs) ---

  onReadBackDone(sha256: Uint8Array, nowMs: number): void {
    this.readBack = undefined;
    if (this.state !== 'running') return;
    this.finish(sha256, nowMs);
  }

  onReadBackFailed(detail: string, nowMs: number): void {
    this.readBack = undefined;
    this.fail('output-unreadable', detail, nowMs);
  }

  // --- assignments ---

  private start(piece: number, source: SourceId, nowMs: number, repair: boolean): boolean {
    this.stallWatch.asked(piece, this.sourceLabel(source));
    if (this.transfers.start(piece, source, repair, nowMs)) return true;
    if (!repair) this.scheduler.fail(piece, source, 'error', nowMs);
    return false;
  }

  private cancelLosers(piece: number, losers: readonly SourceId[]): void {
    for (const loser of losers) this.transfers.cancelAssignment(piece, loser);
  }

  private selfError(transfer: PieceTransfer, detail: string, nowMs: number): void {
    const suspect = transfer.repair ? this.ledger.suspect(transfer.piece) : undefined;
    if (suspect !== undefined) this.ledger.requeue(suspect, undefined);
    else if (!transfer.repair) this.scheduler.fail(transfer.piece, SELF_SOURCE, 'error', nowMs);
    this.selfErrorStreak++;
    if (this.selfErrorStreak >= SELF_ERRORS_MAX) {
      this.fail(
        'origin-error',
        `${SELF_ERRORS_MAX} origin requests failed in a row; last: ${detail}`,
        nowMs,
      );
    }
  }

  // --- repairs (the ledger decides; this carries it out) ---

  /**
   * `deviceIdHex` lied: take nothing more from it, drop its pieces awaiting a check, and make
   * every piece accepted from it suspect.
   */
  private distrust(deviceIdHex: string, nowMs: number): void {
    if (this.state !== 'running') return;
    const emitted = this.delivery.buffer.emittedOffset;
    const pieces = this.ledger.distrust(deviceIdHex, (piece) => this.layout.start(piece) < emitted);
    if (pieces === undefined) return;
    // Pieces received from it and awaiting their sample are dropped; those still in flight end
    // with its link (or are dropped at their verdict if their bytes still come).
    for (const spot of this.spots.discardReceivedFrom(deviceIdHex))
      this.dropSpotChecked(spot, nowMs);
    for (const piece of pieces) {
      this.delivery.withdraw(this.layout.start(piece), this.layout.lengthOf(piece), deviceIdHex);
    }
    if (pieces.length > 0 && this.readBack !== undefined) {
      // The output is about to change again: read it back once the repairs are done.
      this.readBack.cancel();
      this.readBack = undefined;
    }
  }

  /** Starts refetches of suspect pieces (url-repairs.ts), each to a usable source. */
  private assignRepairs(nowMs: number): void {
    if (this.ledger.suspectCount === 0) return;
    const sources = [SELF_SOURCE, ...this.ctx.links.ready()].filter((source) =>
      this.canRepair(source),
    );
    sources.sort(
      (a, b) =>
        this.scheduler.throughputOf(b) - this.scheduler.throughputOf(a) ||
        (a === SELF_SOURCE ? -1 : b === SELF_SOURCE ? 1 : a - b),
    );
    this.ledger.assign(sources, (piece, source) => this.start(piece, source, nowMs, true));
  }

  /** Whether `source` may refetch suspect pieces: self, or a usable, trusted helper. */
  private canRepair(source: SourceId): boolean {
    if (source === SELF_SOURCE) return true;
    const peer = this.ctx.links.peer(source);
    return (
      this.source.pooled &&
      peer !== undefined &&
      this.scheduler.hasSource(source) &&
      !this.scheduler.isBanned(source) &&
      !this.refusedBy.has(source) &&
      !this.ledger.isDistrusted(peer.deviceIdHex)
    );
  }

  private repairTransfers(): PieceTransfer[] {
    if (this.ledger.suspectCount === 0) return [];
    return this.transfers.all().filter((t) => t.repair);
  }

  private repairStallDeadlineMs(transfer: PieceTransfer): number {
    return transfer.lastProgressMs + this.scheduler.stallTimeoutMs(transfer.source);
  }

  /** A suspect piece's new copy passed its check (or came from self): put it in place. */
  private repairChecked(piece: number, bytes: Uint8Array, sourceName: string, nowMs: number): void {
    const suspect = this.ledger.suspect(piece);
    if (suspect === undefined || this.ledger.isDistrusted(sourceName)) return;
    this.ledger.resolve(piece);
    this.stallWatch.placed(piece, nowMs);
    if (suspect.audit !== undefined) {
      if (this.ledger.auditMatches(suspect, bytes)) {
        this.maybeComplete(nowMs);
        return;
      }
      // The helper's copy differs from this device's own: it lied. Everything it gave becomes
      // suspect (this piece too), and this copy repairs this piece at once.
      this.convict(suspect.audit.helper, `piece ${piece} differs from the origin's (audit)`, nowMs);
      if (this.ledger.suspect(piece) === undefined) return;
      this.repairChecked(piece, bytes, sourceName, nowMs);
      return;
    }
    this.ledger.accepted(piece, sourceName, bytes);
    if (suspect.emitted) {
      this.ledger.markRepairedDelivered();
      // The running digest no longer describes the output: stop paying for it.
      this.delivery.buffer.stopHashing();
      this.delivery.repair(this.layout.start(piece), bytes, sourceName, nowMs);
    } else {
      this.delivery.add(this.layout.start(piece), bytes, sourceName, nowMs);
    }
    this.maybeComplete(nowMs);
  }

  /** `deviceIdHex` gave bytes that differ from the origin's: ban its link and distrust it. */
  private convict(deviceIdHex: string, detail: string, nowMs: number): void {
    for (const linkId of this.ctx.links.ready()) {
      if (this.ctx.links.peer(linkId)?.deviceIdHex === deviceIdHex)
        this.ctx.ban(linkId, detail, nowMs);
    }
    this.distrust(deviceIdHex, nowMs);
  }

  // --- completion ---

  /** The download waits on its host (unacknowledged bytes, a read-back), not on a source. */
  private waitingOnHost(): boolean {
    const buffer = this.delivery.buffer;
    return this.readBack !== undefined || buffer.emittedOffset > buffer.ackedOffset;
  }

  private maybeComplete(nowMs: number): void {
    if (this.state !== 'running' || !this.delivery.finished || this.ledger.suspectCount > 0) return;
    if (!this.ledger.repairedDelivered) {
      this.finish(this.delivery.buffer.digest(), nowMs);
      return;
    }
    // Resumed: no digest to give (the host, which saw the repairs, hashes its whole output).
    if (this.source.startOffset > 0) {
      this.finish(undefined, nowMs);
      return;
    }
    if (this.readBack !== undefined) return;
    this.readBack = new OutputReadBack(this.ctx, this, this.jobId, this.layout.length);
    this.readBack.start(nowMs);
  }

  /**
   * The end-to-end digest failed: before giving up, audit (url-repairs.ts); the output is read
   * back and checked again afterwards. False when there is nothing to audit.
   */
  private startAudit(nowMs: number): boolean {
    if (!this.ledger.startAudit()) return false;
    this.assignRepairs(nowMs);
    return true;
  }

  /** `digest` undefined: a resumed download (no digest known, none expected). */
  private finish(digest: Uint8Array | undefined, nowMs: number): void {
    const expected = this.source.sha256;
    const mismatch =
      expected !== undefined && (digest === undefined || !equalBytes(digest, expected));
    if (mismatch && this.startAudit(nowMs)) return;
    if (mismatch) {
      this.fail(
        'sha256-mismatch',
        `the ${this.ledger.repairedDelivered ? 'output (read back after repairs)' : 'delivered bytes'} ` +
          `hash to ${digest === undefined ? 'nothing' : toHex(digest)}, not the expected ${toHex(expected)}; ` +
          (this.ledger.audited ? 'an audit of every helper piece found no liar; ' : '') +
          'discard them and retry without pooling',
        nowMs,
      );
      return;
    }
    this.state = 'done';
    this.ctx.event({
      type: 'download:complete',
      downloadId: this.jobId,
      totalBytes: this.layout.length,
      sha256: digest,
    });
  }

  /** `source` as a person reads it: "the origin (host)" or "peer NAME (SHORTID)". */
  private sourceLabel(source: SourceId): string {
    if (source === SELF_SOURCE) return `the origin (${urlHost(this.source.url)})`;
    const peer = this.ctx.links.peer(source);
    if (peer === undefined) return `peer link ${source}`;
    return `peer ${peer.deviceName} (${shortDeviceId(peer.deviceId)})`;
  }

  /** The 'stalled' sentence: who held the next missing piece, and what to do. */
  private stallDetail(): string {
    const emitted = this.delivery.buffer.emittedOffset;
    const lowestSuspect = this.ledger.lowestSuspect();
    const piece =
      emitted < this.layout.length || lowestSuspect === undefined
        ? this.layout.pieceAt(emitted)
        : lowestSuspect;
    const holder = this.stallWatch.holderOf(piece) ?? this.sourceLabel(SELF_SOURCE);
    const start = this.source.startOffset + this.layout.start(piece);
    const end = this.source.startOffset + this.layout.start(piece + 1);
    const ms = this.stallWatch.timeoutMs;
    const timeout = ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
    return (
      `the download made no progress for ${timeout}: ${holder} stopped sending bytes ${start}-${end - 1}; ` +
      'try again later, or raise the stall timeout'
    );
  }
}
