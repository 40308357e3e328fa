/**
 * HMAC-SHA256 (RFC 2104) and the Noise HKDF (Noise spec rev 34, section 4.3), built on the
 * crypto provider's incremental SHA-256 so that neither provider needs an HMAC primitive of its
 * own.
 *
 * Noise's HKDF is RFC 5869 with the chaining key as salt and an empty `info`, producing two or
 * three HASHLEN-byte outputs. It runs a handful of times per handshake and never per transport
 * record, so clarity wins over allocation-free code here.
 */
import type { CryptoProvider } from '../crypto-provider.js';

/** SHA-256 block length in bytes (Noise's BLOCKLEN). */
export const SHA256_BLOCK_BYTES = 64;
/** SHA-256 digest length in bytes (Noise's HASHLEN). */
export const SHA256_HASH_BYTES = 32;

const INNER_PAD = 0x36;
const OUTER_PAD = 0x5c;

/**
 * HMAC-SHA256 of the concatenation of `parts` under `key` (RFC 2104). Keys longer than the block
 * length are hashed first, as the RFC requires; Noise only ever passes 32-byte keys.
 */
export function hmacSha256(
  crypto: CryptoProvider,
  key: Uint8Array,
  ...parts: readonly Uint8Array[]
): Uint8Array {
  const blockKey = new Uint8Array(SHA256_BLOCK_BYTES);
  blockKey.set(key.length > SHA256_BLOCK_BYTES ? crypto.sha256(key) : key);
  const pad = new Uint8Array(SHA256_BLOCK_BYTES);

  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) pad[i] = blockKey[i]! ^ INNER_PAD;
  const inner = crypto.createSha256();
  inner.update(pad);
  for (const part of parts) inner.update(part);
  const innerDigest = inner.digest();

  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) pad[i] = blockKey[i]! ^ OUTER_PAD;
  const outer = crypto.createSha256();
  outer.update(pad);
  outer.update(innerDigest);
  return outer.digest();
}

const ONE = Uint8Array.of(0x01);
const TWO = Uint8Array.of(0x02);
const THREE = Uint8Array.of(0x03);

/** The Noise HKDF with two outputs: `[output1, output2]`, each 32 bytes. */
export function hkdf2(
  crypto: CryptoProvider,
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
): [Uint8Array, Uint8Array] {
  const tempKey = hmacSha256(crypto, chainingKey, inputKeyMaterial);
  const output1 = hmacSha256(crypto, tempKey, ONE);
  const output2 = hmacSha256(crypto, tempKey, output1, TWO);
  return [output1, output2];
}

/** The Noise HKDF with three outputs: `[output1, output2, output3]`, each 32 bytes. */
export function hkdf3(
  crypto: CryptoProvider,
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
): [Uint8Array, Uint8Array, Uint8Array] {
  const tempKey = hmacSha256(crypto, chainingKey, inputKeyMaterial);
  const output1 = hmacSha256(crypto, tempKey, ONE);
  const output2 = hmacSha256(crypto, tempKey, output1, TWO);
  const output3 = hmacSha256(crypto, tempKey, output2, THREE);
  return [output1, output2, output3];
}
