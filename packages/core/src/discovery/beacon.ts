/**
 * LAN discovery beacons (DESIGN.md decisions 5 and 8; docs/protocol.md, "Discovery beacons").
 *
 * Theory of operation
 * - A beacon is one UDP datagram a device multicasts on its LAN to say "I am here, in this pod,
 *   and accept peer links on this TCP port" (`announce`), to ask pod members to say so
 *   (`query`), or to answer such a question (`reply`). Hosts own the sockets and the clocks; this
 *   module only turns beacons into bytes and back, with the crypto provider it is given.
 * - Pod-scoped: everything but a fixed 5-byte prefix is sealed with ChaChaPoly under a key
 *   derived from the 32-byte pod secret (`deriveBeaconKey`: HKDF-SHA256, RFC 5869, on the
 *   HMAC of noise/hkdf.ts). The prefix, magic "PEAB" and a version byte, makes a PeaPod packet
 *   recognisable and versioned; it says nothing about the pod or the device, and it is bound to
 *   the ciphertext as associated data. Each beacon draws a fresh 12-byte nonce from the
 *   provider's `randomBytes`: with 96-bit random nonces, 2^32 beacons under one key keep the
 *   collision chance below 2^-32 (NIST SP 800-38D section 8.3), about 4000 years of a device
 *   sending one beacon a second. Every beacon has the same length, so lengths leak nothing
 *   either.
 * - Plaintext (fixed 59 bytes): kind, sender Device ID (SHA-256 of its Ed25519 public key, see
 *   identity.ts), TCP peer port, sender wall-clock timestamp (ms since the Unix epoch, supplied
 *   by the host) and a random 16-byte beacon ID.
 * - Replay: `BeaconCodec.decode` takes the receiver's wall clock and rejects a beacon whose
 *   timestamp is more than `windowMs` (30 s, the same bound as gossip, DESIGN.md decision 8)
 *   away from it, and a beacon ID it has already accepted within that window
 *   (`BeaconReplayCache`). A beacon is only entered in the cache after it authenticated, so an
 *   outsider cannot fill it.
 * - What a beacon proves: that its sender holds the pod secret, and nothing about the UDP source
 *   address, which a pod member's replayed beacon (from another address, after the cache evicted
 *   its ID under a flood) could misstate. Discovery is therefore a hint: the Noise XXpsk3
 *   handshake that follows authenticates the device key behind the Device ID.
 * - Errors: network bytes never throw (STYLE.md section 5). `decode` returns a typed result whose
 *   `reason` says why a datagram was dropped. Caller misuse (a pod secret of the wrong length, an
 *   invalid field to encode) throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT.
 *
 * Pure computation: no platform API, no Buffer, no clock, no global randomness (STYLE.md
 * section 1).
 */
import { equalBytes, toHex, utf8Encode } from '../bytes.js';
import type { CryptoProvider } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { DEVICE_ID_BYTES } from '../identity.js';
import { hmacSha256 } from '../noise/hkdf.js';

/** The 4 magic bytes that open every beacon: ASCII "PEAB". */
export const BEACON_MAGIC: Uint8Array = Uint8Array.of(0x50, 0x45, 0x41, 0x42);
/** The beacon format version this implementation writes and reads. */
export const BEACON_VERSION = 1;
/** Length of a pod secret in bytes (also the Noise PSK of pod links). */
export const POD_SECRET_BYTES = 32;
/** Length of a beacon ID in bytes. */
export const BEACON_ID_BYTES = 16;
/** Default replay window: timestamps further than this from the receiver's clock are stale. */
export const BEACON_WINDOW_MS = 30_000;
/** Default number of beacon IDs the replay cache remembers. */
export const BEACON_REPLAY_ENTRIES_MAX = 4096;

/** The HKDF `info` of the beacon key: domain separation from every other use of the secret. */
const KEY_INFO = utf8Encode('peapod/discovery-beacon/v1');
const HEADER_BYTES = 5;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const PLAINTEXT_BYTES = 1 + DEVICE_ID_BYTES + 2 + 8 + BEACON_ID_BYTES; // 59
/** Length of every version-1 beacon on the wire: 5 + 12 + 59 + 16 = 92. */
export const BEACON_BYTES = HEADER_BYTES + NONCE_BYTES + PLAINTEXT_BYTES + TAG_BYTES;
const HEADER = Uint8Array.of(...BEACON_MAGIC, BEACON_VERSION);
const TIMESTAMP_MAX = Number.MAX_SAFE_INTEGER;

/** Why a beacon was sent. Codes on the wire: announce 1, query 2, reply 3. */
export type BeaconKind = 'announce' | 'query' | 'reply';

const KIND_CODES = { announce: 1, query: 2, reply: 3 } as const satisfies Record<
  BeaconKind,
  number
>;
const KINDS_BY_CODE: readonly (BeaconKind | undefined)[] = [
  undefined,
  'announce',
  'query',
  'reply',
];

/** What a sender fills in; the codec adds the random beacon ID. */
export interface BeaconFields {
  readonly kind: BeaconKind;
  /** The sender's raw 32-byte Device ID. */
  readonly deviceId: Uint8Array;
  /** The TCP port the sender accepts peer links on, 1-65535. */
  readonly peerPort: number;
  /** The sender's wall clock when sending, in ms since the Unix epoch (an integer >= 0). */
  readonly timestampMs: number;
}

/** A beacon as it travels: the sender's fields plus a random ID for replay detection. */
export interface Beacon extends BeaconFields {
  /** 16 random bytes, unique per beacon. */
  readonly beaconId: Uint8Array;
}

/** Why `BeaconCodec.decode` dropped a datagram. */
export type BeaconRejectReason =
  /** Does not start with the magic "PEAB": some other protocol's packet. */
  | 'not-peapod'
  /** A PeaPod beacon of a version this implementation cannot read. */
  | 'unsupported-version'
  /** The right magic and version but the wrong length, or authentic fields out of range. */
  | 'malformed'
  /** Authentication failed: another pod's beacon, or bytes changed on the way. */
  | 'wrong-pod-or-tampered'
  /** Authentic, but its timestamp is outside the window around the receiver's clock. */
  | 'stale'
  /** Authentic and fresh, but this beacon ID was already accepted: a replay. */
  | 'duplicate';

/** The outcome of `BeaconCodec.decode`: a beacon, or why there is none. */
export type BeaconDecodeResult =
  | { readonly ok: true; readonly beacon: Beacon }
  | { readonly ok: false; readonly reason: BeaconRejectReason; readonly detail: string };

/**
 * The 32-byte ChaChaPoly key of a pod's beacons: HKDF-SHA256 (RFC 5869) with an empty salt, the
 * pod secret as input key material and `info` = "peapod/discovery-beacon/v1".
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `podSecret` is not 32 bytes.
 * @example
 * toHex(deriveBeaconKey(crypto, new Uint8Array(32)));
 * // => the same 64 hex digits as node:crypto's hkdfSync('sha256', secret, '', info, 32)
 */
export function deriveBeaconKey(crypto: CryptoProvider, podSecret: Uint8Array): Uint8Array {
  if (!(podSecret instanceof Uint8Array) || podSecret.length !== POD_SECRET_BYTES) {
    invalidArgument('podSecret', `must be a ${POD_SECRET_BYTES}-byte Uint8Array`);
  }
  // RFC 5869: an empty salt stands for HashLen zero bytes, and HMAC pads both to the same key.
  const pseudoRandomKey = hmacSha256(crypto, new Uint8Array(0), podSecret);
  return hmacSha256(crypto, pseudoRandomKey, KEY_INFO, Uint8Array.of(1));
}

/**
 * Remembers the IDs of accepted beacons for as long as their timestamps stay inside the window,
 * so a replayed beacon is refused. Bounded: past `entriesMax` IDs it forgets the oldest
 * insertion first. Forgetting weakens only replay detection, never authentication (see the
 * module comment); the default of 4096 covers a pod of 100 devices each sending a beacon a
 * second for the whole 30 s window.
 */
export class BeaconReplayCache {
  readonly windowMs: number;
  readonly entriesMax: number;
  /** Beacon ID (hex) -> its timestamp, in insertion order. */
  private readonly entries = new Map<string, number>();

  /**
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT if `windowMs` or `entriesMax` is not a
   *   positive integer.
   */
  constructor(options: { readonly windowMs?: number; readonly entriesMax?: number } = {}) {
    this.windowMs = options.windowMs ?? BEACON_WINDOW_MS;
    this.entriesMax = options.entriesMax ?? BEACON_REPLAY_ENTRIES_MAX;
    if (!Number.isSafeInteger(this.windowMs) || this.windowMs <= 0) {
      invalidArgument('windowMs', `must be a positive integer, got ${this.windowMs}`);
    }
    if (!Number.isSafeInteger(this.entriesMax) || this.entriesMax <= 0) {
      invalidArgument('entriesMax', `must be a positive integer, got ${this.entriesMax}`);
    }
  }

  /** How many beacon IDs are remembered now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Records `beacon` if its ID is new and returns `'fresh'`; returns `'duplicate'` (and records
   * nothing) if the ID is already remembered. Expects a beacon whose timestamp is inside the
   * window around `nowMs` (the codec checks that first).
   */
  admit(beacon: Beacon, nowMs: number): 'fresh' | 'duplicate' {
    // Entries arrive roughly in timestamp order, so expired ones gather at the front.
    for (const [id, timestampMs] of this.entries) {
      if (timestampMs + this.windowMs >= nowMs) break;
      this.entries.delete(id);
    }
    const key = toHex(beacon.beaconId);
    if (this.entries.has(key)) return 'duplicate';
    if (this.entries.size >= this.entriesMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(key, beacon.timestampMs);
    return 'fresh';
  }
}

/** Options of a `BeaconCodec`. */
export interface BeaconCodecOptions {
  readonly crypto: CryptoProvider;
  /** The pod's 32-byte secret. */
  readonly podSecret: Uint8Array;
  /** Replay window in ms (default 30 000). */
  readonly windowMs?: number;
  /** Beacon IDs the replay cache remembers (default 4096). */
  readonly replayEntriesMax?: number;
}

/**
 * Seals and opens one pod's beacons, and remembers which it has accepted. One codec per pod and
 * socket; it holds no other state.
 * @example
 * const codec = new BeaconCodec({ crypto, podSecret });
 * const bytes = codec.encode({ kind: 'announce', deviceId, peerPort: 9000, timestampMs: now });
 * const result = otherCodecOfThePod.decode(bytes, now); // => { ok: true, beacon: {...} }
 * result.ok && result.beacon.peerPort; // => 9000
 * otherCodecOfThePod.decode(bytes, now); // => { ok: false, reason: 'duplicate', ... }
 */
export class BeaconCodec {
  private readonly crypto: CryptoProvider;
  private readonly key: Uint8Array;
  private readonly replay: BeaconReplayCache;

  /** @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a bad secret, window or cache size. */
  constructor(options: BeaconCodecOptions) {
    this.crypto = options.crypto;
    this.key = deriveBeaconKey(options.crypto, options.podSecret);
    this.replay = new BeaconReplayCache({
      ...(options.windowMs === undefined ? {} : { windowMs: options.windowMs }),
      ...(options.replayEntriesMax === undefined ? {} : { entriesMax: options.replayEntriesMax }),
    });
  }

  /**
   * Encodes and seals a beacon with a fresh random nonce and beacon ID (both from the crypto
   * provider's `randomBytes`, nonce first). Returns `BEACON_BYTES` bytes.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT naming the field if `kind` is unknown,
   *   `deviceId` is not 32 bytes, `peerPort` is not in 1-65535 or `timestampMs` is not an
   *   integer in [0, 2^53 - 1].
   */
  encode(fields: BeaconFields): Uint8Array {
    if (!Object.hasOwn(KIND_CODES, fields.kind)) {
      invalidArgument('kind', `must be announce, query or reply, got ${String(fields.kind)}`);
    }
    if (!(fields.deviceId instanceof Uint8Array) || fields.deviceId.length !== DEVICE_ID_BYTES) {
      invalidArgument('deviceId', `must be a ${DEVICE_ID_BYTES}-byte Uint8Array`);
    }
    if (!Number.isInteger(fields.peerPort) || fields.peerPort < 1 || fields.peerPort > 0xffff) {
      invalidArgument('peerPort', `must be an integer in 1-65535, got ${fields.peerPort}`);
    }
    if (!Number.isSafeInteger(fields.timestampMs) || fields.timestampMs < 0) {
      invalidArgument(
        'timestampMs',
        `must be an integer in [0, 2^53 - 1], got ${fields.timestampMs}`,
      );
    }
    const nonce = this.crypto.randomBytes(NONCE_BYTES);
    const beaconId = this.crypto.randomBytes(BEACON_ID_BYTES);
    const plaintext = new Uint8Array(PLAINTEXT_BYTES);
    const view = new DataView(plaintext.buffer);
    plaintext[0] = KIND_CODES[fields.kind];
    plaintext.set(fields.deviceId, 1);
    view.setUint16(33, fields.peerPort);
    view.setUint32(35, Math.floor(fields.timestampMs / 2 ** 32));
    view.setUint32(39, fields.timestampMs >>> 0);
    plaintext.set(beaconId, 43);
    const sealed = this.crypto.aeadSeal('ChaChaPoly', this.key, nonce, HEADER, plaintext);
    const out = new Uint8Array(BEACON_BYTES);
    out.set(HEADER, 0);
    out.set(nonce, HEADER_BYTES);
    out.set(sealed, HEADER_BYTES + NONCE_BYTES);
    return out;
  }

  /**
   * Opens a datagram received at the receiver's wall-clock time `nowMs` (ms since the Unix
   * epoch). Never throws on any bytes. A beacon is accepted (and its ID remembered) only if it
   * authenticates under this pod's key, its fields are in range, its timestamp is within the
   * window of `nowMs`, and its ID was not accepted before.
   */
  decode(bytes: Uint8Array, nowMs: number): BeaconDecodeResult {
    if (bytes.length < BEACON_MAGIC.length || !equalBytes(bytes.subarray(0, 4), BEACON_MAGIC)) {
      return reject('not-peapod', 'does not start with the beacon magic "PEAB"');
    }
    if (bytes.length < HEADER_BYTES || bytes[4] !== BEACON_VERSION) {
      const version = bytes.length < HEADER_BYTES ? 'missing' : String(bytes[4]);
      return reject('unsupported-version', `beacon version ${version}; this reads version 1`);
    }
    if (bytes.length !== BEACON_BYTES) {
      return reject('malformed', `a beacon is ${BEACON_BYTES} bytes, got ${bytes.length}`);
    }
    const nonce = bytes.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
    const sealed = bytes.subarray(HEADER_BYTES + NONCE_BYTES);
    const plaintext = this.crypto.aeadOpen('ChaChaPoly', this.key, nonce, HEADER, sealed);
    if (plaintext === undefined || plaintext.length !== PLAINTEXT_BYTES) {
      return reject('wrong-pod-or-tampered', 'does not authenticate under this pod key');
    }
    const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
    const kind = KINDS_BY_CODE[plaintext[0]!];
    if (kind === undefined) return reject('malformed', `unknown beacon kind ${plaintext[0]!}`);
    const peerPort = view.getUint16(33);
    if (peerPort === 0) return reject('malformed', 'peer port 0');
    const timestampMs = view.getUint32(35) * 2 ** 32 + view.getUint32(39);
    if (timestampMs > TIMESTAMP_MAX) return reject('malformed', 'timestamp above 2^53 - 1');
    if (Math.abs(timestampMs - nowMs) > this.replay.windowMs) {
      return reject(
        'stale',
        `timestamp ${timestampMs} is ${timestampMs - nowMs} ms from this clock (${nowMs}); ` +
          `the window is +-${this.replay.windowMs} ms`,
      );
    }
    const beacon: Beacon = {
      kind,
      // Copies, so a reused receive buffer cannot change an accepted beacon.
      deviceId: plaintext.slice(1, 33),
      peerPort,
      timestampMs,
      beaconId: plaintext.slice(43, 43 + BEACON_ID_BYTES),
    };
    if (this.replay.admit(beacon, nowMs) === 'duplicate') {
      return reject('duplicate', `beacon ID ${toHex(beacon.beaconId)} was already accepted`);
    }
    return { ok: true, beacon };
  }
}

function reject(reason: BeaconRejectReason, detail: string): BeaconDecodeResult {
  return { ok: false, reason, detail };
}
