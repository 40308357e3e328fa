/**
 * When a content download gives up (`DownloadSource.stallTimeoutMs`): no newly verified byte
 * for that long *and* something it needs is held by no ready link. Either alone is not enough:
 * a slow swarm still verifies bytes, and a chunk some link announced may yet come (stalled
 * sources are reassigned by the scheduler). So the download waits for good while every missing
 * chunk has a holder, and fails 'unavailable' the moment both hold.
 *
 * The clock: `verified(nowMs)` restarts it (a chunk verified from a peer or read back from the
 * host, the manifest accepted). `deadlineMs()` is the time of the first check, reported only
 * until that check ran, so a timer never spins on a deadline in the past; after it the caller
 * asks again (`due`) whenever availability changed (a link closed, an announce, a remove),
 * which is when the answer can change. Sans-I/O: time comes only from the callers' `nowMs`.
 *
 * `unavailableDetail` is the check: the needed chunks (selected, not done) that no ready link
 * able to serve chunks announced, or, before the manifest, whether any such link announced the
 * content at all; its sentence names counts and bytes.
 */
import { Capability } from '../wire/messages.js';
import type { ChunkSelection } from './chunk-selection.js';
import type { TransferContext } from './transfer-context.js';

export class UnavailableWatch {
  private lastVerifiedMs: number;
  /** The `lastVerifiedMs` whose check ran, with the availability revision it saw. */
  private checkedFor: number | undefined;
  private checkedRevision = -1;

  constructor(
    readonly timeoutMs: number,
    nowMs: number,
  ) {
    this.lastVerifiedMs = nowMs;
  }

  /** A verified byte: the clock restarts. */
  verified(nowMs: number): void {
    this.lastVerifiedMs = nowMs;
    this.checkedFor = undefined;
  }

  /** When the first check is due, while it has not run. */
  deadlineMs(): number | undefined {
    return this.checkedFor === this.lastVerifiedMs
      ? undefined
      : this.lastVerifiedMs + this.timeoutMs;
  }

  /**
   * Whether the caller should check for missing chunks now: the timeout passed and the check
   * did not run yet at this availability `revision`. Records that it runs.
   */
  due(nowMs: number, revision: number): boolean {
    if (nowMs < this.lastVerifiedMs + this.timeoutMs) return false;
    if (this.checkedFor === this.lastVerifiedMs && this.checkedRevision === revision) return false;
    this.checkedFor = this.lastVerifiedMs;
    this.checkedRevision = revision;
    return true;
  }
}

/** A size as a person reads it: `512 B`, `64.0 KiB`, `48.0 MiB`, `1.5 GiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** The detail of 'unavailable' when chunks are missing. */
export function missingChunksDetail(missing: number, total: number, missingBytes: number): string {
  const chunks = total === 1 ? 'chunk' : 'chunks';
  const verb = missing === 1 ? 'is' : 'are';
  return (
    `${missing} of ${total} ${chunks} (${formatSize(missingBytes)}) ${verb} held by no ` +
    'connected pod member; connect a device that has them and fetch again'
  );
}

/** The detail of 'unavailable' when the manifest is unknown and nobody announced the content. */
export function noHolderDetail(contentIdHex: string): string {
  return (
    `no connected pod member holds content ${contentIdHex.slice(0, 12)}…; ` +
    'connect a device that has it and fetch again'
  );
}

/** A content download's pieces, once it has the manifest. */
export interface NeededPieces {
  readonly selection: ChunkSelection;
  /** Whether the piece needs nothing from peers (verified, or held by this device). */
  readonly isDone: (piece: number) => boolean;
}

/**
 * What no usable ready link holds of content `key`, as the failure detail; undefined when every
 * needed piece (or, with `pieces` undefined, the manifest) has a holder.
 */
export function unavailableDetail(
  ctx: TransferContext,
  key: string,
  pieces: NeededPieces | undefined,
): string | undefined {
  const availability = ctx.availability;
  const usable = ctx.links.ready().filter((linkId) => {
    const peer = ctx.links.peer(linkId);
    return peer !== undefined && (peer.capabilities & Capability.serveChunks) !== 0;
  });
  if (pieces === undefined) {
    return usable.some((linkId) => availability.knows(linkId, key))
      ? undefined
      : noHolderDetail(key);
  }
  const { selection, isDone } = pieces;
  let missing = 0;
  let missingBytes = 0;
  for (let piece = 0; piece < selection.count; piece++) {
    if (isDone(piece)) continue;
    const index = selection.chunkOf(piece);
    if (
      availability.holderCount(key, index) > 0 &&
      usable.some((linkId) => availability.has(linkId, key, index))
    ) {
      continue;
    }
    missing++;
    missingBytes += selection.pieceStart(piece + 1) - selection.pieceStart(piece);
  }
  return missing === 0 ? undefined : missingChunksDetail(missing, selection.count, missingBytes);
}
