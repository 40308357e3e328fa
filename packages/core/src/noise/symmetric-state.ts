/**
 * The Noise SymmetricState (Noise spec rev 34, section 5.2): the chaining key `ck`, the
 * handshake hash `h` and a CipherState. The HandshakeState drives it token by token; at the end
 * Split() turns the chaining key into the two transport CipherStates.
 *
 * Hash is SHA256 only (HASHLEN 32, BLOCKLEN 64), so InitializeKey()'s truncation of HKDF output
 * to 32 bytes is a no-op and is not spelled out.
 */
import type { AeadCipher, CryptoProvider } from '../crypto-provider.js';
import { utf8Encode } from '../bytes.js';
import { CipherState } from './cipher-state.js';
import { SHA256_HASH_BYTES, hkdf2, hkdf3 } from './hkdf.js';

const EMPTY = new Uint8Array(0);

export class SymmetricState {
  private readonly crypto: CryptoProvider;
  private readonly cipher: AeadCipher;
  private readonly cipherState: CipherState;
  private chainingKey: Uint8Array;
  private hash: Uint8Array;

  /** InitializeSymmetric(protocol_name). */
  constructor(crypto: CryptoProvider, cipher: AeadCipher, protocolName: string) {
    this.crypto = crypto;
    this.cipher = cipher;
    this.cipherState = new CipherState(crypto, cipher);
    const name = utf8Encode(protocolName);
    if (name.length <= SHA256_HASH_BYTES) {
      this.hash = new Uint8Array(SHA256_HASH_BYTES);
      this.hash.set(name);
    } else {
      this.hash = crypto.sha256(name);
    }
    this.chainingKey = this.hash;
  }

  /** The current handshake hash `h`. Treat as read-only. */
  get handshakeHash(): Uint8Array {
    return this.hash;
  }

  /** Whether the inner CipherState has a key (HasKey()). */
  hasKey(): boolean {
    return this.cipherState.hasKey();
  }

  /** MixKey(input_key_material). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [chainingKey, tempKey] = hkdf2(this.crypto, this.chainingKey, inputKeyMaterial);
    this.chainingKey = chainingKey;
    this.cipherState.initializeKey(tempKey);
  }

  /** MixHash(data): h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    const hasher = this.crypto.createSha256();
    hasher.update(this.hash);
    hasher.update(data);
    this.hash = hasher.digest();
  }

  /** MixKeyAndHash(input_key_material), used for `psk` tokens. */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [chainingKey, tempHash, tempKey] = hkdf3(this.crypto, this.chainingKey, inputKeyMaterial);
    this.chainingKey = chainingKey;
    this.mixHash(tempHash);
    this.cipherState.initializeKey(tempKey);
  }

  /** EncryptAndHash(plaintext). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipherState.encryptWithAd(this.hash, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** DecryptAndHash(ciphertext); `undefined` when authentication fails. */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array | undefined {
    const plaintext = this.cipherState.decryptWithAd(this.hash, ciphertext);
    if (plaintext === undefined) return undefined;
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): the initiator-to-responder and responder-to-initiator CipherStates. */
  split(): [CipherState, CipherState] {
    const [key1, key2] = hkdf2(this.crypto, this.chainingKey, EMPTY);
    return [
      new CipherState(this.crypto, this.cipher, key1),
      new CipherState(this.crypto, this.cipher, key2),
    ];
  }
}
