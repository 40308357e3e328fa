/**
 * The portable crypto provider, on the audited pure-JS `@noble/*` libraries. It runs wherever
 * JavaScript runs (browsers, workers, the simulator) and touches no platform API: randomness is
 * injected by the host, like everything else the core needs (DESIGN.md decision 2).
 *
 * It lives in pea-core rather than in the browser host because it is pure computation, and the
 * core's own tests need a provider without depending on a host package.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import type { AeadCipher, CryptoProvider, KeyPair, Sha256Hasher } from '../crypto-provider.js';
import { concatBytes } from '../bytes.js';
import { invalidArgument } from '../errors.js';

export interface NobleCryptoProviderOptions {
  /**
   * Cryptographically secure random bytes, e.g. `(n) => crypto.getRandomValues(new Uint8Array(n))`
   * in a browser. Tests may pass a seeded generator to make runs reproducible.
   */
  readonly randomBytes: (length: number) => Uint8Array;
}

/**
 * The AEAD instance for one operation. Noise fixes 32-byte keys and 12-byte nonces; noble's GCM
 * would also take AES-128/192 keys and other nonce sizes, so check here, as node:crypto does.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a wrong key or nonce length.
 */
function aeadFor(cipher: AeadCipher, key: Uint8Array, nonce: Uint8Array, ad: Uint8Array) {
  if (key.length !== 32) invalidArgument('key', `AEAD keys are 32 bytes, got ${key.length}`);
  if (nonce.length !== 12)
    invalidArgument('nonce', `AEAD nonces are 12 bytes, got ${nonce.length}`);
  return cipher === 'ChaChaPoly' ? chacha20poly1305(key, nonce, ad) : gcm(key, nonce, ad);
}

/**
 * Creates the `@noble/*` crypto provider.
 * @example
 * const provider = createNobleCryptoProvider({ randomBytes: (n) => new Uint8Array(n).fill(7) });
 * provider.sha256(new Uint8Array()).length; // 32
 */
export function createNobleCryptoProvider(options: NobleCryptoProviderOptions): CryptoProvider {
  const randomBytes = options.randomBytes;
  return {
    name: 'noble',
    sha256: (data) => sha256(data),
    createSha256(): Sha256Hasher {
      const hash = sha256.create();
      return {
        update(data) {
          hash.update(data);
        },
        digest: () => hash.digest(),
      };
    },
    aeadSeal: (cipher, key, nonce, ad, plaintext) =>
      aeadFor(cipher, key, nonce, ad).encrypt(plaintext),
    // Pure-JS AEAD costs far more than one join, so noble simply seals the joined plaintext.
    aeadSealParts: (cipher, key, nonce, ad, parts) => [
      aeadFor(cipher, key, nonce, ad).encrypt(
        parts.length === 1 ? parts[0]! : concatBytes(...parts),
      ),
    ],
    aeadOpen(cipher, key, nonce, ad, sealed) {
      if (sealed.length < 16) return undefined;
      try {
        return aeadFor(cipher, key, nonce, ad).decrypt(sealed);
      } catch {
        return undefined;
      }
    },
    x25519GenerateKeyPair(): KeyPair {
      const secretKey = randomBytes(32);
      return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
    },
    x25519PublicKey: (secretKey) => x25519.getPublicKey(secretKey),
    x25519(secretKey, remotePublicKey) {
      try {
        const shared = x25519.getSharedSecret(secretKey, remotePublicKey);
        return shared.some((byte) => byte !== 0) ? shared : undefined;
      } catch {
        return undefined; // noble rejects low-order points (all-zero shared secret)
      }
    },
    ed25519GenerateKeyPair(): KeyPair {
      const secretKey = randomBytes(32);
      return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
    },
    ed25519PublicKey: (secretKey) => ed25519.getPublicKey(secretKey),
    ed25519Sign: (secretKey, message) => ed25519.sign(message, secretKey),
    ed25519Verify(publicKey, message, signature) {
      try {
        return ed25519.verify(signature, message, publicKey);
      } catch {
        return false;
      }
    },
    randomBytes,
  };
}
