/**
 * A noble crypto provider whose randomBytes comes from a seeded PRNG, so core tests replay
 * exactly. Test-only: never use predictable randomness outside tests.
 */
import { createNobleCryptoProvider } from '../../src/crypto/noble-crypto-provider.js';
import type { CryptoProvider } from '../../src/crypto-provider.js';
import { Prng } from '../../src/prng.js';

export function deterministicCrypto(seed: number): CryptoProvider {
  const prng = new Prng(seed);
  return createNobleCryptoProvider({
    randomBytes(length) {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = prng.nextU32() & 0xff;
      return out;
    },
  });
}
