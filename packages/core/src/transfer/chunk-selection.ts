/**
 * The chunks one content download fetches (`DownloadSource.chunks`, `peapod fetch --only`):
 * every chunk, or sorted, disjoint index ranges of them.
 *
 * A download works in *piece* numbers: piece `p` is the `p`-th selected chunk, and the
 * download's byte space is the selected bytes laid end to end (piece `p` starts at
 * `p * chunkSizeBytes`, since only the content's last chunk can be short and it sorts last).
 * The scheduler, the reorder buffer and progress all count in that space, so a selection needs
 * no special case there; this module maps pieces to chunk indices at the edges (requests,
 * availability, the store) and positions back to content offsets for `deliver`.
 *
 * `selectionProblem` checks a host's ranges (an API entry point: host input is checked, never
 * trusted). Lookups are binary searches over the ranges, so a selection costs memory in ranges,
 * not chunks.
 */
import { chunkCount, type ChunkLayout } from '../content/layout.js';
import type { IndexRange } from '../wire/messages.js';

/**
 * Why `ranges` is not a valid selection of a content of `count` chunks, or undefined when it
 * is: each range `[start, end)` of safe integers with `0 <= start < end <= count`, ranges
 * sorted and disjoint (`start` at or after the previous `end`). Never throws.
 */
export function selectionProblem(ranges: unknown, count: number): string | undefined {
  if (!Array.isArray(ranges)) return 'is not an array of {start, end} ranges';
  let previousEnd = 0;
  for (let i = 0; i < ranges.length; i++) {
    const range: unknown = ranges[i];
    if (typeof range !== 'object' || range === null) return `[${i}] is not a {start, end} range`;
    const { start, end } = range as { start?: unknown; end?: unknown };
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) {
      return `[${i}] has a start or end that is not an integer`;
    }
    const [s, e] = [start as number, end as number];
    if (s >= e) return `[${i}] [${s}, ${e}) is empty`;
    if (s < previousEnd) return `[${i}] [${s}, ${e}) is not after the range before it`;
    if (e > count) return `[${i}] [${s}, ${e}) passes the content's ${count} chunks`;
    previousEnd = e;
  }
  return undefined;
}

export class ChunkSelection {
  /** Selected pieces. */
  readonly count: number;
  /** Selected bytes. */
  readonly totalBytes: number;
  private readonly chunkSizeBytes: number;
  /** The ranges; undefined for every chunk (the identity mapping). */
  private readonly ranges: readonly IndexRange[] | undefined;
  /** Piece number of each range's first chunk. */
  private readonly firstPiece: readonly number[];

  /** `ranges` must be valid (`selectionProblem`); undefined selects every chunk. */
  constructor(layout: ChunkLayout, ranges: readonly IndexRange[] | undefined) {
    this.chunkSizeBytes = layout.chunkSizeBytes;
    const contentChunks = chunkCount(layout);
    const first: number[] = [];
    let pieces = 0;
    let bytes = 0;
    if (ranges === undefined) {
      pieces = contentChunks;
      bytes = layout.totalBytes;
    } else {
      for (const range of ranges) {
        first.push(pieces);
        pieces += range.end - range.start;
        bytes += (range.end - range.start) * layout.chunkSizeBytes;
      }
      const last = ranges[ranges.length - 1];
      // The content's short last chunk, when selected, is the last piece.
      if (last !== undefined && last.end === contentChunks) {
        bytes -= contentChunks * layout.chunkSizeBytes - layout.totalBytes;
      }
    }
    this.count = pieces;
    this.totalBytes = bytes;
    this.ranges = ranges === undefined ? undefined : ranges.map((r) => ({ ...r }));
    this.firstPiece = first;
  }

  /** Where piece `piece` starts in the download's byte space. */
  pieceStart(piece: number): number {
    return Math.min(piece * this.chunkSizeBytes, this.totalBytes);
  }

  /** The chunk index of piece `piece` (in [0, count)). */
  chunkOf(piece: number): number {
    const ranges = this.ranges;
    if (ranges === undefined) return piece;
    let low = 0;
    let high = ranges.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.firstPiece[mid]! <= piece) low = mid;
      else high = mid - 1;
    }
    return ranges[low]!.start + piece - this.firstPiece[low]!;
  }

  /** The piece of chunk `index`, or undefined when the chunk is not selected. */
  pieceOf(index: number): number | undefined {
    const ranges = this.ranges;
    if (ranges === undefined) return index >= 0 && index < this.count ? index : undefined;
    let low = 0;
    let high = ranges.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const range = ranges[mid]!;
      if (index < range.start) high = mid - 1;
      else if (index >= range.end) low = mid + 1;
      else return this.firstPiece[mid]! + index - range.start;
    }
    return undefined;
  }

  /** The content offset of a piece-start position of the download's byte space. */
  contentOffset(position: number): number {
    const piece = Math.floor(position / this.chunkSizeBytes);
    return this.chunkOf(piece) * this.chunkSizeBytes + (position - piece * this.chunkSizeBytes);
  }
}
