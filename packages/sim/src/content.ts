/**
 * Deterministic content: the bytes of a simulated object are a pure function of
 * `(contentSeed, offset)`, so a 1 GiB object never exists as one array, and every checker can ask
 * "what is the byte at offset X" without anyone having stored it.
 *
 * Theory of operation
 * - The content is cut into 64 KiB blocks. Block `b` is filled by xorshift32 seeded from a mix of
 *   `(contentSeed, b)`, written as little-endian 32-bit words (every machine Node runs on here is
 *   little-endian; a big-endian host would generate different, still deterministic, bytes).
 * - Blocks are cached in a bounded LRU (`cacheBlocks`, default 4096 = 256 MiB). A read that
 *   covers exactly one whole block returns the cached block itself: origin pieces and chunk reads
 *   are then references to one shared buffer, never copies. Such shared views are read-only by
 *   convention; a host that must alter bytes (the corrupt fault) copies first. Other ranges are
 *   assembled into a fresh array.
 * - `matches(offset, bytes)` compares in place, block by block, without allocating.
 * - `digest()` streams the content once through SHA-256 (whole object) and the chunk hashes of a
 *   manifest layout; the result is memoised.
 */
import { createHash } from 'node:crypto';

export const CONTENT_BLOCK_BYTES = 64 * 1024;
const WORDS_PER_BLOCK = CONTENT_BLOCK_BYTES / 4;

export interface ContentDigest {
  /** SHA-256 of the whole object. */
  readonly sha256: Uint8Array;
  /** SHA-256 of each chunk of `chunkSizeBytes`. */
  readonly chunkHashes: readonly Uint8Array[];
  readonly chunkSizeBytes: number;
}

export class Content {
  private readonly cache = new Map<number, Uint8Array>();
  private readonly digests = new Map<number, ContentDigest>();
  /** Blocks generated so far (cache misses); the CLI reports it. */
  generatedBlocks = 0;

  constructor(
    readonly contentSeed: number,
    readonly totalBytes: number,
    private readonly cacheBlocks = 4096,
  ) {
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
      throw new RangeError(`totalBytes must be a non-negative safe integer, got ${totalBytes}`);
    }
  }

  /** The (shared, read-only) bytes of block `index`; the last block may be short. */
  block(index: number): Uint8Array {
    const hit = this.cache.get(index);
    if (hit !== undefined) {
      this.cache.delete(index);
      this.cache.set(index, hit);
      return hit;
    }
    const start = index * CONTENT_BLOCK_BYTES;
    const length = Math.min(CONTENT_BLOCK_BYTES, this.totalBytes - start);
    if (length <= 0) throw new RangeError(`block ${index} is past the end of the content`);
    const words = new Uint32Array(WORDS_PER_BLOCK);
    let x = mix32(this.contentSeed ^ Math.imul(index + 1, 0x9e3779b1)) | 1;
    for (let i = 0; i < WORDS_PER_BLOCK; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    const bytes = new Uint8Array(words.buffer, 0, length);
    this.generatedBlocks++;
    this.cache.set(index, bytes);
    if (this.cache.size > this.cacheBlocks) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return bytes;
  }

  /**
   * The bytes of `[start, end)`. A whole aligned block comes back shared (read-only by
   * convention); anything else is a fresh copy.
   * @throws RangeError when the range is outside the content.
   */
  slice(start: number, end: number): Uint8Array {
    if (start < 0 || end > this.totalBytes || start > end) {
      throw new RangeError(`range [${start}, ${end}) outside content of ${this.totalBytes} bytes`);
    }
    const first = Math.floor(start / CONTENT_BLOCK_BYTES);
    const within = start - first * CONTENT_BLOCK_BYTES;
    const firstBlock = this.block(first);
    if (end - start <= firstBlock.length - within) {
      return within === 0 && end - start === firstBlock.length
        ? firstBlock
        : firstBlock.slice(within, within + (end - start));
    }
    const out = new Uint8Array(end - start);
    let written = 0;
    for (let b = first; written < out.length; b++) {
      const block = this.block(b);
      const from = b === first ? within : 0;
      const take = Math.min(block.length - from, out.length - written);
      out.set(block.subarray(from, from + take), written);
      written += take;
    }
    return out;
  }

  /** True when `bytes` equal the content at `offset` (false when they run past the end). */
  matches(offset: number, bytes: Uint8Array): boolean {
    if (offset < 0 || offset + bytes.length > this.totalBytes) return false;
    let checked = 0;
    while (checked < bytes.length) {
      const at = offset + checked;
      const b = Math.floor(at / CONTENT_BLOCK_BYTES);
      const block = this.block(b);
      const from = at - b * CONTENT_BLOCK_BYTES;
      const take = Math.min(block.length - from, bytes.length - checked);
      const expected = Buffer.from(block.buffer, block.byteOffset + from, take);
      const actual = Buffer.from(bytes.buffer, bytes.byteOffset + checked, take);
      if (!expected.equals(actual)) return false;
      checked += take;
    }
    return true;
  }

  /** The first offset in `bytes` (placed at `offset`) that differs from the content, or -1. */
  firstMismatch(offset: number, bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length; i++) {
      const at = offset + i;
      if (at >= this.totalBytes) return at;
      const b = Math.floor(at / CONTENT_BLOCK_BYTES);
      if (this.block(b)[at - b * CONTENT_BLOCK_BYTES] !== bytes[i]) return at;
    }
    return -1;
  }

  /** SHA-256 of the whole content and of each chunk of `chunkSizeBytes` (memoised). */
  digest(chunkSizeBytes: number): ContentDigest {
    const known = this.digests.get(chunkSizeBytes);
    if (known !== undefined) return known;
    const whole = createHash('sha256');
    const chunkHashes: Uint8Array[] = [];
    for (let start = 0; start < this.totalBytes; start += chunkSizeBytes) {
      const end = Math.min(this.totalBytes, start + chunkSizeBytes);
      const chunk = createHash('sha256');
      for (let at = start; at < end;) {
        const b = Math.floor(at / CONTENT_BLOCK_BYTES);
        const block = this.block(b);
        const from = at - b * CONTENT_BLOCK_BYTES;
        const take = Math.min(block.length - from, end - at);
        const view = block.subarray(from, from + take);
        chunk.update(view);
        whole.update(view);
        at += take;
      }
      chunkHashes.push(new Uint8Array(chunk.digest()));
    }
    const digest: ContentDigest = {
      sha256: new Uint8Array(whole.digest()),
      chunkHashes,
      chunkSizeBytes,
    };
    this.digests.set(chunkSizeBytes, digest);
    return digest;
  }
}

/** A 32-bit integer mix (murmur3's finaliser). */
export function mix32(value: number): number {
  let z = value | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) | 0;
}
