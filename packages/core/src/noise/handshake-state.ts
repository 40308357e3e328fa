/**
 * The Noise HandshakeState (Noise spec rev 34, section 5.3) as a generic interpreter of the
 * token tables in patterns.ts: pre-messages, `e`, `s`, `ee`, `es`, `se`, `ss` and `psk`
 * (section 9: with psk modifiers, every `e` also calls MixKey(e.pub)). DH is X25519, the hash
 * SHA256, the cipher ChaChaPoly or AESGCM, all through the injected CryptoProvider.
 *
 * `NoiseHandshake` is the public low-level API: the conformance suite runs the published
 * cacophony vectors through it with each provider, and `SecureSession` builds PeaPod's handshake
 * on it. The caller alternates `writeMessage` and `readMessage` as `status` says, then takes the
 * transport CipherStates from `split()`.
 *
 * Error model (STYLE.md section 5): wrong use of the API (writing when it is the remote's turn,
 * missing keys, an oversized payload) throws a PeapodError; anything that comes from the network
 * (a short, long or unauthentic message, a low-order public key) is a `{ ok: false }` result and
 * moves the handshake to `failed`, after which it cannot be used (section 5.3: a failed
 * HandshakeState is deleted). A low-order key can also surface while *writing*, because the DH
 * with a received key happens in the next message the local side writes; so `writeMessage`
 * returns a result too.
 *
 * Binding data to the handshake: a payload may be a function of the handshake hash `h` as it is
 * just before the payload is encrypted, and `readMessage` reports that same hash. SecureSession
 * signs it to bind the device identity to this handshake.
 */
import type { CryptoProvider, KeyPair } from '../crypto-provider.js';
import { concatBytes } from '../bytes.js';
import { PeapodError, assert, invalidArgument } from '../errors.js';
import type { CipherState } from './cipher-state.js';
import { NOISE_TAG_BYTES } from './cipher-state.js';
import type { NoisePreMessageToken, NoiseProtocol, NoiseToken } from './patterns.js';
import { parseNoiseProtocolName } from './patterns.js';
import { SymmetricState } from './symmetric-state.js';

/** Largest Noise message, handshake or transport (section 3). */
export const NOISE_MAX_MESSAGE_BYTES = 65_535;
/** X25519 public key and DH output length (Noise's DHLEN). */
export const NOISE_DH_BYTES = 32;
/** Pre-shared key length (section 9.1). */
export const NOISE_PSK_BYTES = 32;

/** Which side of the handshake this state plays. */
export type NoiseRole = 'initiator' | 'responder';

/**
 * Where the handshake stands: `write` or `read` (whose turn it is), `complete` (call `split()`),
 * or `failed` (a message was rejected; the state is spent).
 */
export type NoiseHandshakeStatus = 'write' | 'read' | 'complete' | 'failed';

/**
 * Why a message was rejected: `malformed` (too short or too long for the pattern), `decrypt`
 * (authentication failed: tampering, a wrong key or psk, a wrong prologue), `low-order-key`
 * (a DH produced all zeros because a public key was a low-order point).
 */
export type NoiseFailure = 'malformed' | 'decrypt' | 'low-order-key';

/** The outcome of `readMessage`. */
export type NoiseReadResult =
  | {
      readonly ok: true;
      readonly payload: Uint8Array;
      /** The handshake hash just before the payload was decrypted (see module comment). */
      readonly handshakeHashBeforePayload: Uint8Array;
    }
  | { readonly ok: false; readonly failure: NoiseFailure };

/** The outcome of `writeMessage`. */
export type NoiseWriteResult =
  | { readonly ok: true; readonly message: Uint8Array }
  | { readonly ok: false; readonly failure: 'low-order-key' };

/** The payload of a message, or a function of the handshake hash that returns it. */
export type NoisePayload = Uint8Array | ((handshakeHashBeforePayload: Uint8Array) => Uint8Array);

/** The transport CipherStates after Split(), from this side's point of view. */
export interface NoiseTransport {
  /** Encrypts what this side sends (c1 for the initiator, c2 for the responder). */
  readonly send: CipherState;
  /** Decrypts what this side receives. */
  readonly receive: CipherState;
}

export interface NoiseHandshakeOptions {
  /** e.g. `Noise_XXpsk3_25519_ChaChaPoly_SHA256` (see `parseNoiseProtocolName`). */
  readonly protocolName: string;
  readonly role: NoiseRole;
  /** Bytes both sides must agree on, mixed into `h` first. Default: empty. */
  readonly prologue?: Uint8Array;
  /** The local static X25519 key pair, required when the pattern sends or pre-shares `s`. */
  readonly staticKeyPair?: KeyPair;
  /** The remote static public key, required when the remote's pre-message holds `s`. */
  readonly remoteStaticPublicKey?: Uint8Array;
  /** The remote ephemeral public key, required when the remote's pre-message holds `e`. */
  readonly remoteEphemeralPublicKey?: Uint8Array;
  /**
   * A fixed ephemeral key pair instead of a fresh one from the provider. For test vectors only:
   * reusing an ephemeral key across handshakes destroys forward secrecy.
   */
  readonly ephemeralKeyPair?: KeyPair;
  /** The 32-byte pre-shared keys, one per `psk` token, in token order. */
  readonly psks?: readonly Uint8Array[];
}

const EMPTY = new Uint8Array(0);

/**
 * A Noise handshake (low-level API).
 * @example
 * const crypto = createNobleCryptoProvider({ randomBytes });
 * const protocolName = 'Noise_NN_25519_ChaChaPoly_SHA256';
 * const initiator = new NoiseHandshake(crypto, { protocolName, role: 'initiator' });
 * const responder = new NoiseHandshake(crypto, { protocolName, role: 'responder' });
 * const first = initiator.writeMessage(new Uint8Array(0));
 * if (first.ok) responder.readMessage(first.message);
 * const second = responder.writeMessage(new Uint8Array(0));
 * if (second.ok) initiator.readMessage(second.message);
 * const { send } = initiator.split(); // initiator.status === 'complete'
 * const record = send.encryptWithAd(new Uint8Array(0), utf8Encode('hello'));
 */
export class NoiseHandshake {
  /** The parsed protocol name. */
  readonly protocol: NoiseProtocol;
  readonly role: NoiseRole;
  private readonly crypto: CryptoProvider;
  private readonly symmetric: SymmetricState;
  private readonly localStatic: KeyPair | undefined;
  private localEphemeral: KeyPair | undefined;
  private readonly fixedEphemeral: KeyPair | undefined;
  private remoteStatic: Uint8Array | undefined;
  private remoteEphemeral: Uint8Array | undefined;
  private readonly psks: readonly Uint8Array[];
  private pskIndex = 0;
  private messageIndex = 0;
  private currentStatus: NoiseHandshakeStatus;
  private transport: [CipherState, CipherState] | undefined;
  private transportTaken = false;

  /**
   * Initialize(): checks the keys against the pattern, then mixes the prologue and the
   * pre-message public keys into `h`.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for an unsupported protocol name, a key of the
   *   wrong length, a key the pattern needs but the options lack, or the wrong number of psks.
   */
  constructor(crypto: CryptoProvider, options: NoiseHandshakeOptions) {
    const protocol = parseNoiseProtocolName(options.protocolName);
    if (protocol === undefined) {
      invalidArgument('protocolName', `unsupported Noise protocol "${options.protocolName}"`);
    }
    if (options.role !== 'initiator' && options.role !== 'responder') {
      invalidArgument('role', `must be "initiator" or "responder", got ${String(options.role)}`);
    }
    this.crypto = crypto;
    this.protocol = protocol;
    this.role = options.role;
    const pattern = protocol.pattern;
    const isInitiator = this.role === 'initiator';
    const localPre = isInitiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const remotePre = isInitiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    const localSendsStatic = pattern.messages.some(
      (tokens, index) => index % 2 === (isInitiator ? 0 : 1) && tokens.includes('s'),
    );

    checkKeyPair('staticKeyPair', options.staticKeyPair);
    checkKeyPair('ephemeralKeyPair', options.ephemeralKeyPair);
    checkKey('remoteStaticPublicKey', options.remoteStaticPublicKey);
    checkKey('remoteEphemeralPublicKey', options.remoteEphemeralPublicKey);
    if ((localSendsStatic || localPre.includes('s')) && options.staticKeyPair === undefined) {
      invalidArgument('staticKeyPair', `${pattern.name} needs the ${this.role}'s static key`);
    }
    if (localPre.includes('e') && options.ephemeralKeyPair === undefined) {
      invalidArgument(
        'ephemeralKeyPair',
        `${pattern.name} pre-shares the ${this.role}'s ephemeral`,
      );
    }
    if (remotePre.includes('s') && options.remoteStaticPublicKey === undefined) {
      invalidArgument('remoteStaticPublicKey', `${pattern.name} needs the remote static key`);
    }
    if (remotePre.includes('e') && options.remoteEphemeralPublicKey === undefined) {
      invalidArgument('remoteEphemeralPublicKey', `${pattern.name} needs the remote ephemeral`);
    }
    const psks = options.psks ?? [];
    if (psks.length !== pattern.pskCount) {
      invalidArgument('psks', `${pattern.name} needs ${pattern.pskCount} psks, got ${psks.length}`);
    }
    for (const psk of psks) {
      if (psk.length !== NOISE_PSK_BYTES) invalidArgument('psks', 'each psk must be 32 bytes');
    }

    this.localStatic = options.staticKeyPair;
    this.fixedEphemeral = options.ephemeralKeyPair;
    this.localEphemeral = localPre.includes('e') ? options.ephemeralKeyPair : undefined;
    this.remoteStatic = remotePre.includes('s') ? options.remoteStaticPublicKey : undefined;
    this.remoteEphemeral = remotePre.includes('e') ? options.remoteEphemeralPublicKey : undefined;
    this.psks = psks;

    this.symmetric = new SymmetricState(crypto, protocol.cipher, protocol.name);
    this.symmetric.mixHash(options.prologue ?? EMPTY);
    // Pre-messages: the initiator's keys first, then the responder's (section 5.3, Initialize).
    this.mixPreMessage(pattern.initiatorPreMessage, isInitiator);
    this.mixPreMessage(pattern.responderPreMessage, !isInitiator);
    this.currentStatus = this.isLocalTurn() ? 'write' : 'read';
  }

  /** Whose turn it is, or whether the handshake has ended. */
  get status(): NoiseHandshakeStatus {
    return this.currentStatus;
  }

  /**
   * A copy of the handshake hash `h`; after completion, the value for channel binding
   * (section 11.2).
   */
  get handshakeHash(): Uint8Array {
    return this.symmetric.handshakeHash.slice();
  }

  /** The remote static public key, once known (pre-message or received). */
  get remoteStaticPublicKey(): Uint8Array | undefined {
    return this.remoteStatic;
  }

  /** The remote ephemeral public key, once known. */
  get remoteEphemeralPublicKey(): Uint8Array | undefined {
    return this.remoteEphemeral;
  }

  /**
   * WriteMessage(payload): returns the next handshake message.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE if it is not this side's turn to write;
   *   PEAPOD_ERR_INVALID_ARGUMENT if the message would exceed 65535 bytes.
   */
  writeMessage(payload: NoisePayload): NoiseWriteResult {
    if (this.currentStatus !== 'write') {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        `writeMessage() while ${this.currentStatus}`,
      );
    }
    const tokens = this.protocol.pattern.messages[this.messageIndex];
    assert(tokens !== undefined, 'write turn without a message pattern');
    this.currentStatus = 'failed'; // until this message is complete; a throw leaves it spent
    const parts: Uint8Array[] = [];
    for (const token of tokens) {
      if (token === 'e') {
        const ephemeral = this.fixedEphemeral ?? this.crypto.x25519GenerateKeyPair();
        this.localEphemeral = ephemeral;
        parts.push(ephemeral.publicKey);
        this.mixEphemeral(ephemeral.publicKey);
      } else if (token === 's') {
        assert(this.localStatic !== undefined, 'static key checked in the constructor');
        parts.push(this.symmetric.encryptAndHash(this.localStatic.publicKey));
      } else if (token === 'psk') {
        this.mixPsk();
      } else if (!this.mixDh(token)) {
        return { ok: false, failure: 'low-order-key' };
      }
    }
    const payloadBytes =
      typeof payload === 'function' ? payload(this.symmetric.handshakeHash.slice()) : payload;
    parts.push(this.symmetric.encryptAndHash(payloadBytes));
    const message = concatBytes(...parts);
    if (message.length > NOISE_MAX_MESSAGE_BYTES) {
      invalidArgument('payload', `the message would be ${message.length} bytes, over 65535`);
    }
    this.finishMessage();
    return { ok: true, message };
  }

  /**
   * ReadMessage(message): processes the remote's next handshake message. Never throws on the
   * message's bytes; a rejected message fails the handshake.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE if it is not this side's turn to read.
   */
  readMessage(message: Uint8Array): NoiseReadResult {
    if (this.currentStatus !== 'read') {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        `readMessage() while ${this.currentStatus}`,
      );
    }
    const tokens = this.protocol.pattern.messages[this.messageIndex];
    assert(tokens !== undefined, 'read turn without a message pattern');
    this.currentStatus = 'failed'; // until this message is accepted
    if (message.length > NOISE_MAX_MESSAGE_BYTES) return { ok: false, failure: 'malformed' };
    let offset = 0;
    for (const token of tokens) {
      if (token === 'e') {
        if (message.length - offset < NOISE_DH_BYTES) return { ok: false, failure: 'malformed' };
        const remoteEphemeral = message.slice(offset, offset + NOISE_DH_BYTES);
        offset += NOISE_DH_BYTES;
        this.remoteEphemeral = remoteEphemeral;
        this.mixEphemeral(remoteEphemeral);
      } else if (token === 's') {
        const length = NOISE_DH_BYTES + (this.symmetric.hasKey() ? NOISE_TAG_BYTES : 0);
        if (message.length - offset < length) return { ok: false, failure: 'malformed' };
        const remoteStatic = this.symmetric.decryptAndHash(
          message.subarray(offset, offset + length),
        );
        if (remoteStatic === undefined) return { ok: false, failure: 'decrypt' };
        offset += length;
        this.remoteStatic = remoteStatic.slice();
      } else if (token === 'psk') {
        this.mixPsk();
      } else if (!this.mixDh(token)) {
        return { ok: false, failure: 'low-order-key' };
      }
    }
    const handshakeHashBeforePayload = this.symmetric.handshakeHash.slice();
    const rest = message.subarray(offset);
    if (this.symmetric.hasKey() && rest.length < NOISE_TAG_BYTES) {
      return { ok: false, failure: 'malformed' };
    }
    const payload = this.symmetric.decryptAndHash(rest);
    if (payload === undefined) return { ok: false, failure: 'decrypt' };
    this.finishMessage();
    // Without a key the "plaintext" is a view of the caller's message; hand out a copy.
    return {
      ok: true,
      payload: payload === rest ? rest.slice() : payload,
      handshakeHashBeforePayload,
    };
  }

  /**
   * The transport CipherStates (Split(), section 5.2). Call once, after completion.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE before completion or on a second call.
   */
  split(): NoiseTransport {
    if (this.transport === undefined || this.transportTaken) {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        this.transportTaken ? 'split() was already called' : `split() while ${this.currentStatus}`,
      );
    }
    this.transportTaken = true;
    const [initiatorToResponder, responderToInitiator] = this.transport;
    return this.role === 'initiator'
      ? { send: initiatorToResponder, receive: responderToInitiator }
      : { send: responderToInitiator, receive: initiatorToResponder };
  }

  private isLocalTurn(): boolean {
    return (this.messageIndex % 2 === 0) === (this.role === 'initiator');
  }

  private finishMessage(): void {
    this.messageIndex++;
    if (this.messageIndex < this.protocol.pattern.messages.length) {
      this.currentStatus = this.isLocalTurn() ? 'write' : 'read';
      return;
    }
    this.transport = this.symmetric.split();
    this.currentStatus = 'complete';
    this.localEphemeral = undefined; // section 5.3: the ephemeral is deleted after the handshake
  }

  private mixPreMessage(tokens: readonly NoisePreMessageToken[], local: boolean): void {
    for (const token of tokens) {
      let publicKey: Uint8Array | undefined;
      if (token === 's') publicKey = local ? this.localStatic?.publicKey : this.remoteStatic;
      else publicKey = local ? this.localEphemeral?.publicKey : this.remoteEphemeral;
      assert(publicKey !== undefined, 'pre-message keys checked in the constructor');
      if (token === 'e') this.mixEphemeral(publicKey);
      else this.symmetric.mixHash(publicKey);
    }
  }

  /** An `e` token, sent, received or pre-shared: MixHash, plus MixKey in psk patterns (9.2). */
  private mixEphemeral(publicKey: Uint8Array): void {
    this.symmetric.mixHash(publicKey);
    if (this.protocol.pattern.hasPsk) this.symmetric.mixKey(publicKey);
  }

  private mixPsk(): void {
    const psk = this.psks[this.pskIndex++];
    assert(psk !== undefined, 'psk count checked in the constructor');
    this.symmetric.mixKeyAndHash(psk);
  }

  /** A DH token; `false` when the DH output is all zeros (a low-order key). */
  private mixDh(token: Exclude<NoiseToken, 'e' | 's' | 'psk'>): boolean {
    const isInitiator = this.role === 'initiator';
    let local: KeyPair | undefined;
    let remote: Uint8Array | undefined;
    // es: initiator's e with responder's s; se: initiator's s with responder's e (section 5.3).
    if (token === 'ee') {
      local = this.localEphemeral;
      remote = this.remoteEphemeral;
    } else if (token === 'ss') {
      local = this.localStatic;
      remote = this.remoteStatic;
    } else if (token === 'es') {
      local = isInitiator ? this.localEphemeral : this.localStatic;
      remote = isInitiator ? this.remoteStatic : this.remoteEphemeral;
    } else {
      local = isInitiator ? this.localStatic : this.localEphemeral;
      remote = isInitiator ? this.remoteEphemeral : this.remoteStatic;
    }
    assert(
      local !== undefined && remote !== undefined,
      `keys for ${token} present in a valid pattern`,
    );
    const shared = this.crypto.x25519(local.secretKey, remote);
    if (shared === undefined) return false;
    this.symmetric.mixKey(shared);
    return true;
  }
}

function checkKey(name: string, key: Uint8Array | undefined): void {
  if (key !== undefined && (!(key instanceof Uint8Array) || key.length !== NOISE_DH_BYTES)) {
    invalidArgument(name, 'must be a 32-byte Uint8Array');
  }
}

function checkKeyPair(name: string, keyPair: KeyPair | undefined): void {
  if (keyPair === undefined) return;
  checkKey(`${name}.publicKey`, keyPair.publicKey);
  checkKey(`${name}.secretKey`, keyPair.secretKey);
}
