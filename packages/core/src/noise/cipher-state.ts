/**
 * The Noise CipherState (Noise spec rev 34, section 5.1): a 32-byte key `k` and a nonce counter
 * `n`, wrapping the provider's AEAD. It encrypts handshake payloads and, after Split(), every
 * transport record, so its encrypt and decrypt paths are the session's hot path: the 12-byte
 * nonce is written into one reused buffer and the only allocation per call is the provider's
 * output.
 *
 * Nonce layout (section 12): 4 zero bytes, then the 64-bit counter, little-endian for
 * ChaChaPoly (12.3) and big-endian for AESGCM (12.4).
 *
 * The counter is a JavaScript number, so it stays exact only up to 2^53. Encryption refuses
 * once the counter reaches 2^53 (and decryption fails) rather than reuse a nonce. That limit is
 * unreachable in practice: at a million records a second one link would need 285 years. The
 * spec's own reserved value 2^64-1 is therefore never reached by the counter; it is used only as
 * the Rekey() nonce.
 *
 * Authentication failures are data, not exceptions: `decryptWithAd` returns `undefined` and,
 * as section 5.1 requires, leaves the nonce unchanged.
 */
import type { AeadCipher, CryptoProvider } from '../crypto-provider.js';
import { PeapodError, assert } from '../errors.js';

/** Noise cipher key length in bytes. */
export const NOISE_KEY_BYTES = 32;
/** AEAD tag length in bytes for both Noise ciphers. */
export const NOISE_TAG_BYTES = 16;
/** The first counter value a CipherState refuses (see the module comment). */
export const NOISE_NONCE_LIMIT = 2 ** 53;

const NONCE_BYTES = 12;
const EMPTY = new Uint8Array(0);
const REKEY_PLAINTEXT = new Uint8Array(NOISE_KEY_BYTES);

/**
 * The Rekey() nonce: 4 zero bytes, then maxnonce = 2^64-1 in the cipher's byte order (section
 * 4.2, REKEY). 2^64-1 is eight 0xff bytes in either byte order, so one buffer serves both
 * ciphers; it is spelled out here rather than computed because a number cannot hold 2^64-1.
 */
const REKEY_NONCE = Uint8Array.of(0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/**
 * A Noise CipherState. Low-level API: most callers want `SecureSession`, which owns two of these
 * after the handshake.
 */
export class CipherState {
  /** The AEAD this state uses. */
  readonly cipher: AeadCipher;
  private readonly crypto: CryptoProvider;
  private key: Uint8Array | undefined;
  private counter = 0;
  private readonly nonceBytes = new Uint8Array(NONCE_BYTES);
  private readonly nonceView = new DataView(this.nonceBytes.buffer);
  private readonly littleEndian: boolean;

  /**
   * @param key optional 32-byte key; without one the state is empty and passes data through
   *   unencrypted, as Noise does before the first MixKey().
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `key` is not 32 bytes.
   */
  constructor(crypto: CryptoProvider, cipher: AeadCipher, key?: Uint8Array) {
    this.crypto = crypto;
    this.cipher = cipher;
    this.littleEndian = cipher === 'ChaChaPoly';
    if (key !== undefined) this.initializeKey(key);
  }

  /** The next nonce value: the number of messages encrypted (or decrypted) so far. */
  get nonce(): number {
    return this.counter;
  }

  /** Whether a key is set (Noise's HasKey()). */
  hasKey(): boolean {
    return this.key !== undefined;
  }

  /**
   * Sets the key and resets the nonce to zero (Noise's InitializeKey()). The key is copied.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `key` is not 32 bytes.
   */
  initializeKey(key: Uint8Array): void {
    if (key.length !== NOISE_KEY_BYTES) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_ARGUMENT',
        `key: must be 32 bytes, got ${key.length}`,
      );
    }
    this.key = key.slice();
    this.counter = 0;
  }

  /**
   * Sets the nonce (Noise's SetNonce(), for transports that deliver out of order).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT unless `nonce` is an integer in
   *   [0, NOISE_NONCE_LIMIT].
   */
  setNonce(nonce: number): void {
    if (!Number.isInteger(nonce) || nonce < 0 || nonce > NOISE_NONCE_LIMIT) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_ARGUMENT',
        'nonce: must be an integer in [0, 2^53]',
      );
    }
    this.counter = nonce;
  }

  /**
   * Encrypts `plaintext` with associated data `ad` under the current nonce, then advances the
   * nonce. Without a key it returns `plaintext` itself (the same array).
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE once the nonce reaches NOISE_NONCE_LIMIT.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const key = this.key;
    if (key === undefined) return plaintext;
    if (this.counter >= NOISE_NONCE_LIMIT) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        'Noise nonce exhausted; rekeying cannot help',
      );
    }
    this.writeNonce(this.counter);
    const sealed = this.crypto.aeadSeal(this.cipher, key, this.nonceBytes, ad, plaintext);
    this.counter++;
    return sealed;
  }

  /**
   * `encryptWithAd` over the concatenation of `plaintextParts`, returned as pieces whose
   * concatenation is the ciphertext and tag (the provider's `aeadSealParts`; neither the parts
   * nor the output are joined). Requires a key: the transport phase only.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE without a key or once the nonce reaches
   *   NOISE_NONCE_LIMIT.
   */
  encryptPartsWithAd(ad: Uint8Array, plaintextParts: readonly Uint8Array[]): readonly Uint8Array[] {
    const key = this.key;
    if (key === undefined || this.counter >= NOISE_NONCE_LIMIT) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        key === undefined ? 'encryptPartsWithAd() without a key' : 'Noise nonce exhausted',
      );
    }
    this.writeNonce(this.counter);
    const sealed = this.crypto.aeadSealParts(this.cipher, key, this.nonceBytes, ad, plaintextParts);
    this.counter++;
    return sealed;
  }

  /**
   * Decrypts and authenticates `ciphertext` (ciphertext followed by the 16-byte tag). Returns the
   * plaintext and advances the nonce, or returns `undefined` on any failure and leaves the nonce
   * unchanged. Without a key it returns `ciphertext` itself. Never throws on input bytes.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
    const key = this.key;
    if (key === undefined) return ciphertext;
    if (ciphertext.length < NOISE_TAG_BYTES || this.counter >= NOISE_NONCE_LIMIT) return undefined;
    this.writeNonce(this.counter);
    const opened = this.crypto.aeadOpen(this.cipher, key, this.nonceBytes, ad, ciphertext);
    if (opened === undefined) return undefined;
    this.counter++;
    return opened;
  }

  /**
   * Replaces the key with REKEY(k) = the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero
   * bytes) (sections 4.2 and 11.3). The nonce is not reset.
   */
  rekey(): void {
    const key = this.key;
    assert(key !== undefined, 'rekey() on a CipherState without a key');
    const sealed = this.crypto.aeadSeal(this.cipher, key, REKEY_NONCE, EMPTY, REKEY_PLAINTEXT);
    this.key = sealed.slice(0, NOISE_KEY_BYTES);
  }

  private writeNonce(counter: number): void {
    // The first 4 bytes stay zero forever. `>>> 0` takes the low 32 bits of any safe integer.
    const low = counter >>> 0;
    const high = (counter - low) / 0x1_0000_0000;
    if (this.littleEndian) {
      this.nonceView.setUint32(4, low, true);
      this.nonceView.setUint32(8, high, true);
    } else {
      this.nonceView.setUint32(4, high, false);
      this.nonceView.setUint32(8, low, false);
    }
  }
}
