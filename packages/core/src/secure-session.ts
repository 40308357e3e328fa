/**
 * SecureSession: PeaPod's secure channel (DESIGN.md decision 4) as a sans-I/O state machine over
 * *records*. A record is one Noise message of at most 65535 bytes; how records are delimited
 * (a u16 length prefix on TCP, one message per WebRTC/WebSocket message) is the caller's concern.
 *
 * Inputs: `start()`, `receiveRecord(record)`, `send(plaintext)`, `close(reason)`. Outputs, drained
 * with `poll()` until `undefined` after every input: `transmit` (a record for the remote), `open`,
 * `message` (authenticated plaintext, in order) and one final `closed`. No callbacks except the
 * optional `acceptRemote` policy predicate, no clock, no I/O.
 *
 * Handshake (Noise XX or XXpsk3 over 25519 / ChaChaPoly or AESGCM / SHA256, see noise/):
 *
 *   initiator                                                     responder
 *   [u8 version = 1][u8 suiteId] e (psk: + tag of the empty payload)  -->  checks the header
 *                     <--  e, ee, s, es, responder's identity proof
 *   s, se (, psk), initiator's identity proof  -->                          responder open
 *                     <--  key confirmation: an empty transport record
 *   initiator open
 *
 * The two header bytes are part of the prologue ("PeaPod/1" || version || suiteId), so a header
 * changed in flight (a suite downgrade) makes the handshake fail.
 *
 * Identity binding: an identity proof is `[32-byte Ed25519 public key][64-byte signature]`, the
 * signature covering "PeaPod/1 identity" || h, where h is the handshake hash just before the
 * proof is encrypted. h covers both ephemerals and the sender's static key, so the proof binds
 * the device identity to this handshake and to that Noise static key; it cannot be replayed into
 * another handshake. The Device ID is SHA-256 of the Ed25519 key (identity.ts). A bad proof
 * closes with identityInvalid; a proof the `acceptRemote` / `expectedRemoteDeviceId` policy
 * refuses closes with identityRejected.
 *
 * Two additions to the bare XX flow, both so that each side learns how the other ended:
 * - Key confirmation. The responder's first transport record is an empty one, sent as soon as it
 *   accepts message 3, and the initiator reports `open` only once that record authenticates. In
 *   XXpsk3 the psk enters only at message 3, so before this record the initiator has no proof
 *   that the responder holds the pod secret; without it an outsider could answer as a "pod
 *   member". It delays the initiator's first record by one round trip; with the HELLO exchange
 *   on top, a link is ready after 2.5 round trips instead of 2.
 * - Handshake aborts. A side that fails or closes while the remote may still be handshaking sends
 *   one 2-byte record `[0x00][reason]` before its `closed` event, and a handshaking side that
 *   receives one closes with that reason (a psk mismatch, a refused suite or identity thus fail
 *   both sides). An abort can never be mistaken for a Noise message, which is at least 16 bytes
 *   here. It is unauthenticated, like a TCP reset: an attacker on the path can end a handshake,
 *   which it could do anyway by dropping packets. Once open, the session never sends an abort;
 *   GOODBYE frames inside the channel are the upper layer's business.
 *
 * Transport: each direction has its own CipherState (Split()). Both sides Rekey() a direction's
 * cipher after every `rekeyIntervalRecords` records in that direction (the confirmation record
 * counts), so rekeying needs no signalling. Any record that fails authentication (tampered,
 * replayed, reordered, truncated, wrong key) closes the session with decryptFailed: the transport
 * is ordered and reliable, so the first bad record means the channel is compromised or broken.
 *
 * Errors (STYLE.md section 5): input bytes never throw, they end the session with a reason code;
 * misuse of the API (send before open, an oversized plaintext, bad options) throws PeapodError.
 */
import type { CryptoProvider, KeyPair } from './crypto-provider.js';
import { concatBytes, equalBytes, utf8Encode } from './bytes.js';
import { PeapodError, assert, invalidArgument } from './errors.js';
import { deriveDeviceId } from './identity.js';
import { ReasonCode, reasonName } from './wire/reason-codes.js';
import type { CipherState } from './noise/cipher-state.js';
import { NOISE_TAG_BYTES } from './noise/cipher-state.js';
import type { NoiseFailure } from './noise/handshake-state.js';
import {
  NOISE_DH_BYTES,
  NOISE_MAX_MESSAGE_BYTES,
  NoiseHandshake,
} from './noise/handshake-state.js';

/** The session suites by wire ID. Append only; the ID travels in the initiator's first record. */
export const NoiseSuite = {
  1: 'Noise_XX_25519_ChaChaPoly_SHA256',
  2: 'Noise_XX_25519_AESGCM_SHA256',
  3: 'Noise_XXpsk3_25519_ChaChaPoly_SHA256',
  4: 'Noise_XXpsk3_25519_AESGCM_SHA256',
} as const;
/** A suite's wire ID. */
export type NoiseSuiteId = keyof typeof NoiseSuite;
/** A suite's Noise protocol name. */
export type NoiseSuiteName = (typeof NoiseSuite)[NoiseSuiteId];

/** The session wire version: the first byte of the initiator's first record. */
export const SESSION_WIRE_VERSION = 1;
/** Largest record, and the default `maxRecordBytes` (a Noise message, section 3). */
export const SESSION_MAX_RECORD_BYTES = NOISE_MAX_MESSAGE_BYTES;
/** Largest plaintext one `send` takes at the default record size: 65535 - 16 = 65519 bytes. */
export const SESSION_MAX_PLAINTEXT_BYTES = SESSION_MAX_RECORD_BYTES - NOISE_TAG_BYTES;
/** Default records per direction between rekeys (2^20: with 64 KiB records, every 64 GiB). */
export const SESSION_DEFAULT_REKEY_INTERVAL_RECORDS = 2 ** 20;
/** Size of an identity proof: Ed25519 public key plus signature. */
export const IDENTITY_PROOF_BYTES = 32 + 64;
/**
 * Smallest allowed `maxRecordBytes`: the largest handshake record, message 2 =
 * e (32) + encrypted s (48) + encrypted identity proof (96 + 16) = 192 bytes.
 */
export const SESSION_MIN_RECORD_BYTES =
  NOISE_DH_BYTES + (NOISE_DH_BYTES + NOISE_TAG_BYTES) + (IDENTITY_PROOF_BYTES + NOISE_TAG_BYTES);

const PROLOGUE_PREFIX = utf8Encode('PeaPod/1');
const IDENTITY_CONTEXT = utf8Encode('PeaPod/1 identity');
const HEADER_BYTES = 2;
const ABORT_MARKER = 0x00;
const ABORT_RECORD_BYTES = 2;
const ED25519_KEY_BYTES = 32;
const PSK_BYTES = 32;
const DEVICE_ID_BYTES = 32;
const EMPTY = new Uint8Array(0);
const knownReasons = new Set<number>(Object.values(ReasonCode));
const suiteIdsByName = new Map<string, NoiseSuiteId>(
  (Object.keys(NoiseSuite) as `${NoiseSuiteId}`[]).map((key) => {
    const id = Number(key) as NoiseSuiteId;
    return [NoiseSuite[id], id];
  }),
);

/** The session's coarse state, for callers. */
export type SessionState = 'handshaking' | 'open' | 'closed';
export type SessionRole = 'initiator' | 'responder';

/** What the remote proved during the handshake. */
export interface RemoteIdentity {
  /** SHA-256 of `publicKey` (identity.ts). */
  readonly deviceId: Uint8Array;
  /** The remote's Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The remote's Noise static X25519 public key. */
  readonly staticKey: Uint8Array;
}

/** What `poll()` returns. Hosts switch over `type` with an exhaustive `never` check. */
export type SessionEvent =
  | { readonly type: 'transmit'; readonly record: Uint8Array }
  | { readonly type: 'open'; readonly remote: RemoteIdentity; readonly suite: NoiseSuiteName }
  | { readonly type: 'message'; readonly plaintext: Uint8Array }
  | { readonly type: 'closed'; readonly reason: ReasonCode; readonly detail: string };

interface SessionOptionsBase {
  readonly crypto: CryptoProvider;
  /** This device's Ed25519 identity key pair (`secretKey` is the 32-byte seed). */
  readonly identity: KeyPair;
  /** The Noise static X25519 key pair; a fresh one is generated when absent. */
  readonly staticKeyPair?: KeyPair;
  /** The 32-byte pod or cluster secret, required by the psk suites. */
  readonly psk?: Uint8Array;
  /** Records per direction between deterministic rekeys. Default 2^20. Both sides must agree. */
  readonly rekeyIntervalRecords?: number;
  /**
   * Largest record accepted and produced, in [SESSION_MIN_RECORD_BYTES, 65535]. Default 65535.
   * `send` takes plaintexts up to `maxRecordBytes - 16`.
   */
  readonly maxRecordBytes?: number;
  /** Policy: return false to refuse a remote that proved this identity (identityRejected). */
  readonly acceptRemote?: (deviceId: Uint8Array, publicKey: Uint8Array) => boolean;
  /** Policy: the only Device ID this session accepts (identityRejected otherwise). */
  readonly expectedRemoteDeviceId?: Uint8Array;
  /** A fixed Noise ephemeral key pair. Tests only: reusing one destroys forward secrecy. */
  readonly ephemeralKeyPair?: KeyPair;
}

export interface InitiatorSessionOptions extends SessionOptionsBase {
  readonly role: 'initiator';
  /**
   * The suite to offer. Default: `Noise_XXpsk3_25519_ChaChaPoly_SHA256` with a psk,
   * `Noise_XX_25519_ChaChaPoly_SHA256` without.
   */
  readonly suite?: NoiseSuiteName;
}

export interface ResponderSessionOptions extends SessionOptionsBase {
  readonly role: 'responder';
  /**
   * The suites to accept. Default: both psk suites with a psk (a pod or cluster admits only its
   * members), both plain XX suites without.
   */
  readonly allowedSuites?: readonly NoiseSuiteName[];
}

export type SecureSessionOptions = InitiatorSessionOptions | ResponderSessionOptions;

/**
 * Internal phases, as data: the public state each maps to, whether a failure in it sends a
 * handshake abort (the remote may still be handshaking), and whether it accepts one.
 */
const PHASES = {
  'initiator-idle': { state: 'handshaking', sendsAbort: false, acceptsAbort: false },
  'initiator-awaiting-message-2': { state: 'handshaking', sendsAbort: true, acceptsAbort: true },
  // The responder is open (or gone) by now: it would take an abort for a malformed record.
  'initiator-awaiting-confirmation': {
    state: 'handshaking',
    sendsAbort: false,
    acceptsAbort: true,
  },
  'responder-awaiting-message-1': { state: 'handshaking', sendsAbort: true, acceptsAbort: false },
  'responder-awaiting-message-3': { state: 'handshaking', sendsAbort: true, acceptsAbort: true },
  open: { state: 'open', sendsAbort: false, acceptsAbort: false },
  closed: { state: 'closed', sendsAbort: false, acceptsAbort: false },
} as const satisfies Record<
  string,
  { state: SessionState; sendsAbort: boolean; acceptsAbort: boolean }
>;
type Phase = keyof typeof PHASES;

/**
 * One end of a PeaPod secure channel.
 * @example
 * const initiator = new SecureSession({ role: 'initiator', crypto, identity: identityA });
 * const responder = new SecureSession({ role: 'responder', crypto, identity: identityB });
 * initiator.start();
 * // The host's loop: carry every `transmit` to the other side until neither has one left.
 * const move = (from: SecureSession, to: SecureSession): boolean => {
 *   let moved = false;
 *   for (let e = from.poll(); e; e = from.poll()) {
 *     if (e.type === 'transmit') {
 *       to.receiveRecord(e.record);
 *       moved = true;
 *     }
 *   }
 *   return moved;
 * };
 * while (move(initiator, responder) || move(responder, initiator));
 * initiator.state; // => 'open'
 * initiator.send(utf8Encode('hello'));
 * move(initiator, responder);
 * responder.poll(); // => { type: 'message', plaintext: utf8Encode('hello') }
 */
export class SecureSession {
  readonly role: SessionRole;
  private readonly crypto: CryptoProvider;
  private readonly identity: KeyPair;
  private readonly staticKeyPair: KeyPair;
  private readonly ephemeralKeyPair: KeyPair | undefined;
  private readonly psk: Uint8Array | undefined;
  private readonly offeredSuite: NoiseSuiteName | undefined;
  private readonly allowedSuites: ReadonlySet<NoiseSuiteName>;
  private readonly rekeyIntervalRecords: number;
  private readonly maxRecordBytes: number;
  private readonly maxPlaintextBytes: number;
  private readonly acceptRemote:
    ((deviceId: Uint8Array, publicKey: Uint8Array) => boolean) | undefined;
  private readonly expectedRemoteDeviceId: Uint8Array | undefined;

  private phase: Phase;
  private started = false;
  private handshake: NoiseHandshake | undefined;
  private suite: NoiseSuiteName | undefined;
  private remoteIdentity: RemoteIdentity | undefined;
  private finalHandshakeHash: Uint8Array | undefined;
  private sendCipher: CipherState | undefined;
  private receiveCipher: CipherState | undefined;
  /** Output queue; `eventHead` is the next to poll (avoids Array.shift's O(n)). */
  private readonly events: (SessionEvent | undefined)[] = [];
  private eventHead = 0;

  /**
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a bad option, naming it: keys of the wrong
   *   length, an unknown suite, a psk suite without a psk (or a psk with a plain initiator suite),
   *   an empty allow-list, a non-positive rekey interval, or maxRecordBytes out of range.
   */
  constructor(options: SecureSessionOptions) {
    const role: unknown = options.role;
    if (role !== 'initiator' && role !== 'responder') {
      invalidArgument('role', `must be "initiator" or "responder", got ${String(role)}`);
    }
    this.role = role;
    this.crypto = options.crypto;
    checkKeyPair('identity', options.identity, ED25519_KEY_BYTES);
    this.identity = options.identity;
    if (options.staticKeyPair !== undefined) {
      checkKeyPair('staticKeyPair', options.staticKeyPair, NOISE_DH_BYTES);
    }
    if (options.ephemeralKeyPair !== undefined) {
      checkKeyPair('ephemeralKeyPair', options.ephemeralKeyPair, NOISE_DH_BYTES);
    }
    this.ephemeralKeyPair = options.ephemeralKeyPair;
    if (options.psk !== undefined) checkBytes('psk', options.psk, PSK_BYTES);
    this.psk = options.psk;
    const hasPsk = options.psk !== undefined;

    if (options.role === 'initiator') {
      const suite =
        options.suite ??
        (hasPsk ? 'Noise_XXpsk3_25519_ChaChaPoly_SHA256' : 'Noise_XX_25519_ChaChaPoly_SHA256');
      if (!suiteIdsByName.has(suite)) invalidArgument('suite', `unknown suite "${String(suite)}"`);
      if (isPskSuite(suite) !== hasPsk) {
        invalidArgument('suite', hasPsk ? `${suite} would ignore the psk` : `${suite} needs a psk`);
      }
      this.offeredSuite = suite;
      this.allowedSuites = new Set();
      this.phase = 'initiator-idle';
    } else {
      const allowed =
        options.allowedSuites ??
        (hasPsk
          ? (['Noise_XXpsk3_25519_ChaChaPoly_SHA256', 'Noise_XXpsk3_25519_AESGCM_SHA256'] as const)
          : (['Noise_XX_25519_ChaChaPoly_SHA256', 'Noise_XX_25519_AESGCM_SHA256'] as const));
      if (allowed.length === 0) invalidArgument('allowedSuites', 'must not be empty');
      for (const suite of allowed) {
        if (!suiteIdsByName.has(suite))
          invalidArgument('allowedSuites', `unknown suite "${suite}"`);
        if (isPskSuite(suite) && !hasPsk) invalidArgument('allowedSuites', `${suite} needs a psk`);
      }
      this.offeredSuite = undefined;
      this.allowedSuites = new Set(allowed);
      this.phase = 'responder-awaiting-message-1';
    }

    const interval = options.rekeyIntervalRecords ?? SESSION_DEFAULT_REKEY_INTERVAL_RECORDS;
    if (!Number.isSafeInteger(interval) || interval < 1) {
      invalidArgument('rekeyIntervalRecords', `must be a positive integer, got ${interval}`);
    }
    this.rekeyIntervalRecords = interval;
    const maxRecordBytes = options.maxRecordBytes ?? SESSION_MAX_RECORD_BYTES;
    if (
      !Number.isInteger(maxRecordBytes) ||
      maxRecordBytes < SESSION_MIN_RECORD_BYTES ||
      maxRecordBytes > SESSION_MAX_RECORD_BYTES
    ) {
      invalidArgument(
        'maxRecordBytes',
        `must be an integer in [${SESSION_MIN_RECORD_BYTES}, ${SESSION_MAX_RECORD_BYTES}], got ${maxRecordBytes}`,
      );
    }
    this.maxRecordBytes = maxRecordBytes;
    this.maxPlaintextBytes = maxRecordBytes - NOISE_TAG_BYTES;
    if (options.acceptRemote !== undefined && typeof options.acceptRemote !== 'function') {
      invalidArgument('acceptRemote', 'must be a function');
    }
    this.acceptRemote = options.acceptRemote;
    if (options.expectedRemoteDeviceId !== undefined) {
      checkBytes('expectedRemoteDeviceId', options.expectedRemoteDeviceId, DEVICE_ID_BYTES);
    }
    this.expectedRemoteDeviceId = options.expectedRemoteDeviceId;
    this.staticKeyPair = options.staticKeyPair ?? this.crypto.x25519GenerateKeyPair();
  }

  /** 'handshaking' until `open` has been emitted, then 'open', and 'closed' at the end. */
  get state(): SessionState {
    return PHASES[this.phase].state;
  }

  /** The final handshake hash (unique to this session; usable for channel binding) once open. */
  get handshakeHash(): Uint8Array | undefined {
    return this.phase === 'open' ? this.finalHandshakeHash : undefined;
  }

  /** The remote's proven identity once open (also carried by the `open` event). */
  get remote(): RemoteIdentity | undefined {
    return this.phase === 'open' ? this.remoteIdentity : undefined;
  }

  /** This side's Noise static public key. */
  get staticPublicKey(): Uint8Array {
    return this.staticKeyPair.publicKey;
  }

  /**
   * Starts the handshake: the initiator queues its first record. A no-op for the responder,
   * which waits for that record, so hosts may call it for either role.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE on a second call.
   */
  start(): void {
    if (this.started)
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', 'start() was already called');
    this.started = true;
    if (this.phase !== 'initiator-idle') return;
    const suite = this.offeredSuite;
    assert(suite !== undefined, 'an initiator has a suite');
    const suiteId = suiteIdsByName.get(suite);
    assert(suiteId !== undefined, 'suite validated in the constructor');
    const header = Uint8Array.of(SESSION_WIRE_VERSION, suiteId);
    const handshake = this.createHandshake(suite, header);
    const written = handshake.writeMessage(EMPTY);
    // Message 1 is `e` (and `psk` nothing else): no DH, so it cannot fail.
    assert(written.ok, 'message 1 has no DH');
    this.transmit(concatBytes(header, written.message));
    this.phase = 'initiator-awaiting-message-2';
  }

  /**
   * Feeds one record from the remote. Never throws on its bytes: a bad record ends the session
   * with a `closed` event. Ignored once closed.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `record` is not a Uint8Array.
   */
  receiveRecord(record: Uint8Array): void {
    if (!(record instanceof Uint8Array)) invalidArgument('record', 'must be a Uint8Array');
    const phase = this.phase;
    if (phase === 'closed') return;
    if (record.length > this.maxRecordBytes) {
      this.fail(
        ReasonCode.frameTooLarge,
        `a ${record.length}-byte record exceeds the ${this.maxRecordBytes}-byte limit`,
      );
      return;
    }
    if (phase === 'open') {
      this.receiveTransport(record);
      return;
    }
    if (PHASES[phase].acceptsAbort && isAbortRecord(record)) {
      const code = record[1]!;
      const reason = knownReasons.has(code) ? (code as ReasonCode) : ReasonCode.protocolError;
      this.fail(reason, `the remote aborted the handshake (${reasonName(code)})`, false);
      return;
    }
    switch (phase) {
      case 'initiator-idle':
        this.fail(ReasonCode.protocolError, 'a record arrived before the initiator started');
        return;
      case 'responder-awaiting-message-1':
        this.receiveMessage1(record);
        return;
      case 'initiator-awaiting-message-2':
        this.receiveMessage2(record);
        return;
      case 'responder-awaiting-message-3':
        this.receiveMessage3(record);
        return;
      case 'initiator-awaiting-confirmation':
        this.receiveConfirmation(record);
        return;
      default: {
        const unreachable: never = phase;
        assert(false, `unhandled phase ${String(unreachable)}`);
      }
    }
  }

  /**
   * Seals `plaintext` into one record and queues it as a `transmit` event.
   * @throws PeapodError PEAPOD_ERR_INVALID_STATE unless the session is open;
   *   PEAPOD_ERR_INVALID_ARGUMENT if `plaintext` is not a Uint8Array or is longer than
   *   `maxRecordBytes - 16` (65519 by default).
   */
  send(plaintext: Uint8Array): void {
    if (this.phase !== 'open') {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        `send() while the session is ${this.state}`,
      );
    }
    if (!(plaintext instanceof Uint8Array)) invalidArgument('plaintext', 'must be a Uint8Array');
    if (plaintext.length > this.maxPlaintextBytes) {
      invalidArgument(
        'plaintext',
        `${plaintext.length} bytes exceeds the ${this.maxPlaintextBytes}-byte limit`,
      );
    }
    this.sealAndTransmit(plaintext);
  }

  /**
   * Seals the concatenation of `plaintextParts` (one frame) into one transport record and returns
   * the record at once, as pieces whose concatenation is the record, instead of queuing a
   * `transmit` event: the zero-copy form of `send` for the data path (a DATA frame's header and
   * a view of its payload go in; Node's ciphertext buffers and the tag come out and go to the
   * socket as one writev). The caller must drain `poll()` first, so the record cannot overtake a
   * queued one. The parts are read, not kept.
   * @throws PeapodError as `send` does, for the joined length.
   */
  sealParts(plaintextParts: readonly Uint8Array[]): readonly Uint8Array[] {
    if (this.phase !== 'open') {
      throw new PeapodError(
        'PEAPOD_ERR_INVALID_STATE',
        `sealParts() while the session is ${this.state}`,
      );
    }
    let length = 0;
    for (const part of plaintextParts) {
      if (!(part instanceof Uint8Array)) invalidArgument('plaintextParts', 'must be Uint8Arrays');
      length += part.length;
    }
    if (length > this.maxPlaintextBytes) {
      invalidArgument(
        'plaintextParts',
        `${length} bytes exceeds the ${this.maxPlaintextBytes}-byte limit`,
      );
    }
    assert(this.eventHead === this.events.length, 'sealParts() with session events queued');
    const cipher = this.sendCipher;
    assert(cipher !== undefined, 'an open session has transport keys');
    const pieces = cipher.encryptPartsWithAd(EMPTY, plaintextParts);
    this.countRecord(cipher);
    return pieces;
  }

  /**
   * Ends the session locally: queues a handshake abort if the remote may still be handshaking,
   * then one `closed` event with `reason`. Idempotent; a no-op once closed.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `reason` is not an integer in [0, 255].
   */
  close(reason: ReasonCode): void {
    if (!Number.isInteger(reason) || reason < 0 || reason > 255) {
      invalidArgument('reason', `must be a reason code, got ${String(reason)}`);
    }
    if (this.phase === 'closed') return;
    this.fail(reason, 'closed by the local side');
  }

  /** The next output, or `undefined` when there is none. Drain after every input. */
  poll(): SessionEvent | undefined {
    if (this.eventHead === this.events.length) {
      if (this.eventHead !== 0) {
        this.events.length = 0;
        this.eventHead = 0;
      }
      return undefined;
    }
    const event = this.events[this.eventHead];
    this.events[this.eventHead++] = undefined;
    return event;
  }

  // --- handshake ---------------------------------------------------------------------------

  private createHandshake(suite: NoiseSuiteName, header: Uint8Array): NoiseHandshake {
    this.suite = suite;
    this.handshake = new NoiseHandshake(this.crypto, {
      protocolName: suite,
      role: this.role,
      prologue: concatBytes(PROLOGUE_PREFIX, header),
      staticKeyPair: this.staticKeyPair,
      ...(this.ephemeralKeyPair === undefined ? {} : { ephemeralKeyPair: this.ephemeralKeyPair }),
      ...(isPskSuite(suite) ? { psks: [this.pskForSuite()] } : {}),
    });
    return this.handshake;
  }

  private pskForSuite(): Uint8Array {
    assert(this.psk !== undefined, 'psk suites are allowed only with a psk');
    return this.psk;
  }

  private receiveMessage1(record: Uint8Array): void {
    if (record.length < HEADER_BYTES) {
      this.fail(ReasonCode.protocolError, `a ${record.length}-byte first record has no header`);
      return;
    }
    const version = record[0]!;
    const suiteId = record[1]!;
    if (version !== SESSION_WIRE_VERSION) {
      this.fail(ReasonCode.versionUnsupported, `unsupported session wire version ${version}`);
      return;
    }
    const suite = Object.hasOwn(NoiseSuite, suiteId)
      ? NoiseSuite[suiteId as NoiseSuiteId]
      : undefined;
    if (suite === undefined || !this.allowedSuites.has(suite)) {
      const name = suite ?? `unknown suite ${suiteId}`;
      this.fail(
        ReasonCode.suiteUnsupported,
        `the remote offered ${name}, which this side does not accept`,
      );
      return;
    }
    const handshake = this.createHandshake(suite, record.subarray(0, HEADER_BYTES));
    const read = handshake.readMessage(record.subarray(HEADER_BYTES));
    if (!read.ok) {
      this.failHandshake(read.failure, 1);
      return;
    }
    if (read.payload.length !== 0) {
      this.fail(
        ReasonCode.protocolError,
        'handshake message 1 carries a payload; it must be empty',
      );
      return;
    }
    const written = handshake.writeMessage((hash) => this.identityProof(hash));
    if (!written.ok) {
      this.failHandshake(written.failure, 1);
      return;
    }
    this.transmit(written.message);
    this.phase = 'responder-awaiting-message-3';
  }

  private receiveMessage2(record: Uint8Array): void {
    const handshake = this.handshake;
    assert(handshake !== undefined, 'the initiator created its handshake in start()');
    const read = handshake.readMessage(record);
    if (!read.ok) {
      this.failHandshake(read.failure, 2);
      return;
    }
    if (!this.acceptIdentity(read.payload, read.handshakeHashBeforePayload, handshake)) return;
    const written = handshake.writeMessage((hash) => this.identityProof(hash));
    if (!written.ok) {
      this.failHandshake(written.failure, 2);
      return;
    }
    this.transmit(written.message);
    this.takeTransport(handshake);
    this.phase = 'initiator-awaiting-confirmation';
  }

  private receiveMessage3(record: Uint8Array): void {
    const handshake = this.handshake;
    assert(handshake !== undefined, 'the responder created its handshake at message 1');
    const read = handshake.readMessage(record);
    if (!read.ok) {
      this.failHandshake(read.failure, 3);
      return;
    }
    if (!this.acceptIdentity(read.payload, read.handshakeHashBeforePayload, handshake)) return;
    this.takeTransport(handshake);
    this.phase = 'open';
    this.sealAndTransmit(EMPTY); // key confirmation, sealed first so it precedes any data
    this.emitOpen();
  }

  private receiveConfirmation(record: Uint8Array): void {
    const cipher = this.receiveCipher;
    assert(cipher !== undefined, 'transport keys exist after message 3');
    const plaintext = cipher.decryptWithAd(EMPTY, record);
    if (plaintext === undefined) {
      this.fail(
        ReasonCode.handshakeFailed,
        "the responder's key confirmation failed authentication (wrong pre-shared key or tampering)",
      );
      return;
    }
    if (plaintext.length !== 0) {
      this.fail(ReasonCode.protocolError, "the responder's key confirmation record is not empty");
      return;
    }
    this.countRecord(cipher);
    this.phase = 'open';
    this.emitOpen();
  }

  private identityProof(handshakeHash: Uint8Array): Uint8Array {
    const signature = this.crypto.ed25519Sign(
      this.identity.secretKey,
      concatBytes(IDENTITY_CONTEXT, handshakeHash),
    );
    return concatBytes(this.identity.publicKey, signature);
  }

  /** Verifies the remote's identity proof and applies the policy; fails the session if not. */
  private acceptIdentity(
    payload: Uint8Array,
    handshakeHash: Uint8Array,
    handshake: NoiseHandshake,
  ): boolean {
    if (payload.length !== IDENTITY_PROOF_BYTES) {
      this.fail(
        ReasonCode.identityInvalid,
        `the remote's identity proof is ${payload.length} bytes, not ${IDENTITY_PROOF_BYTES}`,
      );
      return false;
    }
    const publicKey = payload.slice(0, ED25519_KEY_BYTES);
    const signature = payload.subarray(ED25519_KEY_BYTES);
    const message = concatBytes(IDENTITY_CONTEXT, handshakeHash);
    if (!this.crypto.ed25519Verify(publicKey, message, signature)) {
      this.fail(ReasonCode.identityInvalid, "the remote's identity signature does not verify");
      return false;
    }
    const deviceId = deriveDeviceId(this.crypto, publicKey);
    const expected = this.expectedRemoteDeviceId;
    if (expected !== undefined && !equalBytes(deviceId, expected)) {
      this.fail(
        ReasonCode.identityRejected,
        'the remote proved a different Device ID than expected',
      );
      return false;
    }
    if (this.acceptRemote !== undefined && !this.acceptRemote(deviceId, publicKey)) {
      this.fail(ReasonCode.identityRejected, "the remote's Device ID is not accepted by policy");
      return false;
    }
    const staticKey = handshake.remoteStaticPublicKey;
    assert(staticKey !== undefined, 'XX transmits the static key before the identity proof');
    this.remoteIdentity = { deviceId, publicKey, staticKey };
    return true;
  }

  private takeTransport(handshake: NoiseHandshake): void {
    const transport = handshake.split();
    this.sendCipher = transport.send;
    this.receiveCipher = transport.receive;
    this.finalHandshakeHash = handshake.handshakeHash;
    this.handshake = undefined;
  }

  private emitOpen(): void {
    assert(this.remoteIdentity !== undefined && this.suite !== undefined, 'open after identity');
    this.events.push({ type: 'open', remote: this.remoteIdentity, suite: this.suite });
  }

  private failHandshake(failure: NoiseFailure, messageNumber: number): void {
    if (failure === 'malformed') {
      this.fail(
        ReasonCode.protocolError,
        `handshake message ${messageNumber} is malformed (wrong length)`,
      );
    } else if (failure === 'low-order-key') {
      this.fail(
        ReasonCode.handshakeFailed,
        `handshake message ${messageNumber} holds a low-order public key`,
      );
    } else {
      this.fail(
        ReasonCode.handshakeFailed,
        `handshake message ${messageNumber} failed authentication (wrong pre-shared key, tampering, or a different header)`,
      );
    }
  }

  // --- transport (the hot path) --------------------------------------------------------------

  private receiveTransport(record: Uint8Array): void {
    const cipher = this.receiveCipher;
    assert(cipher !== undefined, 'an open session has transport keys');
    if (record.length < NOISE_TAG_BYTES) {
      this.fail(
        ReasonCode.protocolError,
        `a ${record.length}-byte record is shorter than the 16-byte tag`,
      );
      return;
    }
    const plaintext = cipher.decryptWithAd(EMPTY, record);
    if (plaintext === undefined) {
      this.fail(
        ReasonCode.decryptFailed,
        `record ${cipher.nonce + 1} failed authentication (tampered, replayed, reordered, truncated or a wrong key)`,
      );
      return;
    }
    this.countRecord(cipher);
    this.events.push({ type: 'message', plaintext });
  }

  private sealAndTransmit(plaintext: Uint8Array): void {
    const cipher = this.sendCipher;
    assert(cipher !== undefined, 'an open session has transport keys');
    const record = cipher.encryptWithAd(EMPTY, plaintext);
    this.countRecord(cipher);
    this.events.push({ type: 'transmit', record });
  }

  /** Deterministic rekey after every `rekeyIntervalRecords` records in one direction. */
  private countRecord(cipher: CipherState): void {
    if (cipher.nonce % this.rekeyIntervalRecords === 0) cipher.rekey();
  }

  // --- endings -------------------------------------------------------------------------------

  private transmit(record: Uint8Array): void {
    this.events.push({ type: 'transmit', record });
  }

  private fail(reason: ReasonCode, detail: string, mayAbort = true): void {
    if (mayAbort && PHASES[this.phase].sendsAbort) {
      this.transmit(Uint8Array.of(ABORT_MARKER, reason));
    }
    this.phase = 'closed';
    this.handshake = undefined;
    this.sendCipher = undefined;
    this.receiveCipher = undefined;
    this.events.push({ type: 'closed', reason, detail });
  }
}

function isPskSuite(suite: NoiseSuiteName): boolean {
  return suite.startsWith('Noise_XXpsk3_');
}

function isAbortRecord(record: Uint8Array): boolean {
  return record.length === ABORT_RECORD_BYTES && record[0] === ABORT_MARKER;
}

function checkBytes(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    invalidArgument(name, `must be a ${length}-byte Uint8Array`);
  }
}

function checkKeyPair(name: string, keyPair: KeyPair, length: number): void {
  if (typeof keyPair !== 'object' || keyPair === null) invalidArgument(name, 'must be a key pair');
  checkBytes(`${name}.publicKey`, keyPair.publicKey, length);
  checkBytes(`${name}.secretKey`, keyPair.secretKey, length);
}
