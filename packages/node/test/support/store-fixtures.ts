/**
 * Deterministic contents for the store tests and the crash writer: a chunk's bytes are a pure
 * function of (seed, block ID, length), so a content is a list of block IDs and any process can
 * regenerate every byte it should hold. Two contents that list one block ID share that chunk
 * (same bytes, same hash): that is how the tests make dedup happen.
 */
import { createManifest, toHex, type Manifest } from '@peapod/core';
import { createNodeCryptoProvider } from '../../src/node-crypto-provider.js';

export const crypto = createNodeCryptoProvider();
/** The smallest chunk size a manifest allows; small chunks keep the tests fast. */
export const CHUNK_BYTES = 65_536;

export interface TestContent {
  readonly manifest: Manifest;
  readonly chunks: readonly Uint8Array[];
  readonly hex: string;
}

/** `length` bytes of block `blockId`: xorshift32 from a seed mixed with the ID. */
export function blockBytes(seed: number, blockId: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(blockId + 1, 0xc2b2ae35)) | 0;
  if (x === 0) x = 1;
  for (let i = 0; i < length; i++) {
    if ((i & 3) === 0) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
    }
    out[i] = (x >>> ((i & 3) * 8)) & 0xff;
  }
  return out;
}

/**
 * A content of `blockIds.length` chunks of CHUNK_BYTES, except the last, which is
 * `lastChunkBytes` long (so its block is only shared with contents that end alike).
 */
export function makeContent(
  seed: number,
  blockIds: readonly number[],
  lastChunkBytes: number = CHUNK_BYTES,
): TestContent {
  const chunks = blockIds.map((blockId, i) =>
    blockBytes(seed, blockId, i === blockIds.length - 1 ? lastChunkBytes : CHUNK_BYTES),
  );
  const totalBytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const manifest = createManifest(crypto, {
    totalBytes,
    chunkSizeBytes: CHUNK_BYTES,
    chunkHashes: chunks.map((chunk) => crypto.sha256(chunk)),
  });
  return { manifest, chunks, hex: toHex(manifest.contentId) };
}

/** What the crash writer writes for `seed`: content 0 pinned, the others not. */
export interface CrashPlan {
  readonly contents: readonly TestContent[];
  readonly budgetBytes: number;
}

export const CRASH_PINNED_CHUNKS = 8;
const CRASH_UNPINNED_CONTENTS = 6;
const CRASH_CHUNKS_PER_CONTENT = 8;
const CRASH_SHARED_BLOCKS = 16;

/**
 * Content 0: CRASH_PINNED_CHUNKS chunks of its own, pinned. Contents 1..6: 8 chunks each drawn
 * from a pool of 16 shared blocks (dedup) and a short last chunk of their own. The budget holds
 * the pinned content and 16 more chunks, so the writer evicts all the time.
 */
export function crashPlan(seed: number): CrashPlan {
  const contents = [
    makeContent(
      seed,
      [...Array(CRASH_PINNED_CHUNKS).keys()].map((i) => 1000 + i),
    ),
  ];
  for (let c = 1; c <= CRASH_UNPINNED_CONTENTS; c++) {
    const blocks = [...Array(CRASH_CHUNKS_PER_CONTENT - 1).keys()].map(
      (i) => (c * 5 + i * 3) % CRASH_SHARED_BLOCKS,
    );
    contents.push(makeContent(seed, [...blocks, 2000 + c], 1000 + c * 100));
  }
  return { contents, budgetBytes: (CRASH_PINNED_CHUNKS + 16) * CHUNK_BYTES };
}
