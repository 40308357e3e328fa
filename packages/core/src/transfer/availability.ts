/**
 * Who has which chunk: per link and content, the union of CHUNK_ANNOUNCE ranges minus
 * CHUNK_REMOVE ranges (docs/protocol.md 6.8). Availability is a hint; a request may still be
 * answered `notFound`. State per link is bounded (`contentsPerLinkMax`); the excess is forgotten,
 * oldest first. A link's state goes when the link closes.
 *
 * Ranges are kept as a sorted set of chunk indices (a `Set<number>`), which is simple and fast
 * enough for the contents a pod handles (a 1 GiB content has 256 chunks); indices past a
 * content's chunk count are ignored by the downloads that ask.
 *
 * Downloads ask "how many links hold chunk i" for every pending chunk when they schedule
 * (rarest first), so that count is kept per content as announcements come and go instead of
 * being recounted over every link. `revision` changes whenever anything here changes, so a
 * download can skip rescheduling when nothing it depends on moved.
 */
import { toHex } from '../bytes.js';
import type { IndexRange } from '../wire/messages.js';

/** Most indices one announce may add (2^20 chunks is the largest content). */
const INDICES_PER_CONTENT_MAX = 2 ** 20;

export class Availability {
  private readonly byLink = new Map<number, Map<string, Set<number>>>();
  /** content key -> chunk index -> number of links holding it. */
  private readonly holderCounts = new Map<string, Map<number, number>>();
  private revisionCount = 0;

  constructor(private readonly contentsPerLinkMax = 256) {}

  /** Changes whenever any link's announced set changes. */
  get revision(): number {
    return this.revisionCount;
  }

  /** Applies CHUNK_ANNOUNCE. Returns the content key (hex). */
  announce(linkId: number, contentId: Uint8Array, ranges: readonly IndexRange[]): string {
    const key = toHex(contentId);
    let contents = this.byLink.get(linkId);
    if (contents === undefined) {
      contents = new Map();
      this.byLink.set(linkId, contents);
    }
    let held = contents.get(key);
    if (held === undefined) {
      if (contents.size >= this.contentsPerLinkMax) {
        const oldest = contents.keys().next().value;
        if (oldest !== undefined) {
          this.uncount(oldest, contents.get(oldest)!);
          contents.delete(oldest);
        }
      }
      held = new Set();
      contents.set(key, held);
    }
    const counts = this.countsOf(key);
    for (const range of ranges) {
      for (let i = range.start; i < range.end && held.size < INDICES_PER_CONTENT_MAX; i++) {
        if (held.has(i)) continue;
        held.add(i);
        counts.set(i, (counts.get(i) ?? 0) + 1);
      }
    }
    this.revisionCount++;
    return key;
  }

  /** Applies CHUNK_REMOVE. Returns the content key (hex). */
  remove(linkId: number, contentId: Uint8Array, ranges: readonly IndexRange[]): string {
    const key = toHex(contentId);
    const held = this.byLink.get(linkId)?.get(key);
    if (held !== undefined) {
      const drop = (index: number): void => {
        if (held.delete(index)) this.decrement(key, index);
      };
      for (const range of ranges) {
        if (range.end - range.start > held.size) {
          for (const index of [...held]) if (index >= range.start && index < range.end) drop(index);
        } else {
          for (let i = range.start; i < range.end; i++) drop(i);
        }
      }
      this.revisionCount++;
    }
    return key;
  }

  /** Whether `linkId` announced chunk `index` of the content `key`. */
  has(linkId: number, key: string, index: number): boolean {
    return this.byLink.get(linkId)?.get(key)?.has(index) ?? false;
  }

  /** Whether `linkId` announced anything of the content `key` (so it has its manifest). */
  knows(linkId: number, key: string): boolean {
    return (this.byLink.get(linkId)?.get(key)?.size ?? 0) > 0;
  }

  /**
   * Whether the link announced the content at all, with no ranges included: a stranger's
   * interest (docs/protocol.md 6.8). Forgotten with the link's other excess state.
   */
  mentioned(linkId: number, key: string): boolean {
    return this.byLink.get(linkId)?.has(key) ?? false;
  }

  /** How many indices below `chunkCount` the link announced. */
  countBelow(linkId: number, key: string, chunkCount: number): number {
    const held = this.byLink.get(linkId)?.get(key);
    if (held === undefined) return 0;
    let count = 0;
    for (const index of held) if (index < chunkCount) count++;
    return count;
  }

  /** How many chunks of content `key` the link announced. */
  heldCount(linkId: number, key: string): number {
    return this.byLink.get(linkId)?.get(key)?.size ?? 0;
  }

  /** How many links announced chunk `index` of content `key`. */
  holderCount(key: string, index: number): number {
    return this.holderCounts.get(key)?.get(index) ?? 0;
  }

  /** Links that announced chunk `index` of content `key`. */
  holders(key: string, index: number): number[] {
    const out: number[] = [];
    for (const [linkId, contents] of this.byLink)
      if (contents.get(key)?.has(index)) out.push(linkId);
    return out;
  }

  /** Links that announced anything of content `key`. */
  linksKnowing(key: string): number[] {
    const out: number[] = [];
    for (const [linkId, contents] of this.byLink)
      if ((contents.get(key)?.size ?? 0) > 0) out.push(linkId);
    return out;
  }

  /** Forgets a closed link. */
  dropLink(linkId: number): void {
    const contents = this.byLink.get(linkId);
    if (contents === undefined) return;
    for (const [key, held] of contents) this.uncount(key, held);
    this.byLink.delete(linkId);
    this.revisionCount++;
  }

  private countsOf(key: string): Map<number, number> {
    let counts = this.holderCounts.get(key);
    if (counts === undefined) {
      counts = new Map();
      this.holderCounts.set(key, counts);
    }
    return counts;
  }

  private uncount(key: string, held: Set<number>): void {
    for (const index of held) this.decrement(key, index);
  }

  private decrement(key: string, index: number): void {
    const counts = this.holderCounts.get(key);
    const count = counts?.get(index) ?? 0;
    if (count <= 1) counts?.delete(index);
    else counts!.set(index, count - 1);
    if (counts !== undefined && counts.size === 0) this.holderCounts.delete(key);
  }
}

/** Turns sorted chunk indices into merged ranges, at most `maxRanges` per group. */
export function indicesToRangeGroups(indices: readonly number[], maxRanges = 1024): IndexRange[][] {
  const ranges: IndexRange[] = [];
  const sorted = [...indices].sort((a, b) => a - b);
  for (const index of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && index < last.end) continue;
    if (last !== undefined && last.end === index) {
      ranges[ranges.length - 1] = { start: last.start, end: index + 1 };
    } else {
      ranges.push({ start: index, end: index + 1 });
    }
  }
  const groups: IndexRange[][] = [];
  for (let i = 0; i < ranges.length; i += maxRanges) groups.push(ranges.slice(i, i + maxRanges));
  return groups;
}
