/**
 * SIMULATION ONLY: a crypto provider whose randomness is predictable.
 *
 * The simulator must replay a run exactly from its seed, and key material (static and ephemeral
 * X25519 keys, Ed25519 identities) is the one thing the Core takes from the provider's
 * `randomBytes` rather than from its own PRNG. So this wraps the fast `node:crypto` provider and
 * replaces `randomBytes`, `x25519GenerateKeyPair` and `ed25519GenerateKeyPair` with versions
 * drawn from a seeded `Prng`; every other primitive (SHA-256, AEAD, DH, signatures) is the real
 * OpenSSL one. Keys made this way are guessable by anyone who knows the seed: never use this
 * outside the simulator and tests.
 */
import { Prng, type CryptoProvider, type KeyPair } from '@peapod/core';
import { createNodeCryptoProvider } from '@peapod/node';

let shared: CryptoProvider | undefined;

/** One node:crypto provider for the whole process (its key cache is per key array anyway). */
function baseProvider(): CryptoProvider {
  shared ??= createNodeCryptoProvider();
  return shared;
}

/**
 * A provider whose key generation and `randomBytes` come from `new Prng(seed)`.
 * SIMULATION ONLY (see the module header).
 */
export function createSeededCryptoProvider(seed: number): CryptoProvider {
  const base = baseProvider();
  const prng = new Prng(seed);
  const randomBytes = (length: number): Uint8Array => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const word = prng.nextU32();
      out[i] = word & 0xff;
      if (i + 1 < length) out[i + 1] = (word >>> 8) & 0xff;
      if (i + 2 < length) out[i + 2] = (word >>> 16) & 0xff;
      if (i + 3 < length) out[i + 3] = word >>> 24;
    }
    return out;
  };
  return {
    ...base,
    name: `${base.name}+seeded(sim-only)`,
    randomBytes,
    x25519GenerateKeyPair(): KeyPair {
      const secretKey = randomBytes(32);
      return { secretKey, publicKey: base.x25519PublicKey(secretKey) };
    },
    ed25519GenerateKeyPair(): KeyPair {
      const secretKey = randomBytes(32);
      return { secretKey, publicKey: base.ed25519PublicKey(secretKey) };
    },
  };
}
