/**
 * Test content: deterministic bytes and their manifest.
 */
import { createManifest, type Manifest } from '../../src/content/manifest.js';
import type { CryptoProvider } from '../../src/crypto-provider.js';
import { Prng } from '../../src/prng.js';
import { deterministicCrypto } from './deterministic-crypto.js';

export const CHUNK = 64 * 1024;

/** `length` pseudo-random bytes from `seed`. */
export function testBytes(length: number, seed = 7): Uint8Array {
  const prng = new Prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 4) {
    const word = prng.nextU32();
    for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
  }
  return out;
}

/** The manifest of `data` cut into `chunkSizeBytes` chunks. */
export function manifestOf(
  data: Uint8Array,
  chunkSizeBytes = CHUNK,
  crypto: CryptoProvider = deterministicCrypto(99),
): Manifest {
  const chunkHashes: Uint8Array[] = [];
  for (let start = 0; start < data.length; start += chunkSizeBytes) {
    chunkHashes.push(
      crypto.sha256(data.subarray(start, Math.min(data.length, start + chunkSizeBytes))),
    );
  }
  return createManifest(crypto, { totalBytes: data.length, chunkSizeBytes, chunkHashes });
}
