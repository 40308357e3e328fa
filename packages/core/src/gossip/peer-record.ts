/**
 * Peer records: a device's own signed statement of how (and whether) it may be reached.
 *
 * A record is the one place a peer address ever travels beyond a pod (gossip, the tracker, the
 * persisted peer table), and it is signed by the device it describes, so:
 *   - nobody can announce, move or withdraw another device (the signature is over every field);
 *   - the IP-sharing rule is checkable by every receiver: a record that carries an address
 *     without its `broadcast` flag is malformed, and `buildPeerRecord` refuses to make one;
 *   - a relay, a tracker or a disk can hand records on verbatim; each receiver verifies.
 *
 * Layout (docs/protocol.md section 11.2), all integers big-endian:
 *   u8 version = 1 | 32 Ed25519 public key | u64 issuedAtMs (wall clock) | u8 flags
 *   | u32 capabilities | u16 listenPort | u8 n + n bytes device name (UTF-8, <= 64)
 *   | u8 k (0..4; 0 unless broadcast) + k x (u8 m + m bytes host: an IP literal or DNS name)
 *   | 64 signature over "PeaPod/1 peer-record" || every byte before the signature.
 * `decodePeerRecord` never throws; `verifyPeerRecord` checks the signature.
 */
import { concatBytes, utf8Encode } from '../bytes.js';
import type { CryptoProvider, KeyPair } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { deriveDeviceId } from '../identity.js';
import { FrameDecodeError, FrameReader } from '../wire/frame-reader.js';
import { FrameWriter } from '../wire/frame-writer.js';

export const PEER_RECORD_VERSION = 1;
export const PeerRecordFlag = {
  /** The device lets its address be passed on (the IP-sharing rule's only "yes"). */
  broadcast: 1 << 0,
  /** The device offers itself as a bootstrap node (registered with a tracker). */
  bootstrap: 1 << 1,
  /** The device is leaving: forget its address (a PEER_UPDATE sends this). */
  leaving: 1 << 2,
} as const;
const KNOWN_FLAGS = PeerRecordFlag.broadcast | PeerRecordFlag.bootstrap | PeerRecordFlag.leaving;

export const PeerRecordLimits = {
  deviceNameBytes: 64,
  addresses: 4,
  hostBytes: 253,
  /** Largest encoded record: 1+32+8+1+4+2 + 1+64 + 1+4*(1+253) + 64. */
  recordBytes: 1 + 32 + 8 + 1 + 4 + 2 + 1 + 64 + 1 + 4 * (1 + 253) + 64,
} as const;

const SIGNATURE_DOMAIN = utf8Encode('PeaPod/1 peer-record');
/** Hosts: IPv4/IPv6 literals (no brackets, no zone) and DNS names. */
const HOST_PATTERN = /^[A-Za-z0-9.:-]+$/;
/**
 * Strict UTF-8 that keeps a leading U+FEFF (bytes.ts's `utf8Decode` strips it), so a decoded
 * name is exactly the signed bytes and re-encodes to them.
 */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export interface PeerRecordFields {
  readonly issuedAtMs: number;
  readonly broadcast: boolean;
  readonly bootstrap: boolean;
  readonly leaving: boolean;
  readonly capabilities: number;
  /** TCP port the device accepts links on; 0 when it accepts none. */
  readonly listenPort: number;
  readonly deviceName: string;
  /** Where to reach it; empty unless `broadcast` (the IP-sharing rule). */
  readonly addresses: readonly string[];
}

export interface PeerRecord extends PeerRecordFields {
  /** The device's Ed25519 key (its Device ID is the SHA-256 of it: `peerRecordDeviceId`). */
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  /** The whole signed record as it travels. */
  readonly bytes: Uint8Array;
  /** The bytes the signature covers (without the domain prefix). */
  readonly signedBytes: Uint8Array;
}

/** A parse's outcome; `R` is what the parser hands back (record-cache.ts adds derived facts). */
export type PeerRecordResult<R extends PeerRecord = PeerRecord> =
  { readonly ok: true; readonly record: R } | { readonly ok: false; readonly detail: string };

/** Why `fields` cannot be a record, or undefined when they can. */
export function peerRecordProblem(fields: PeerRecordFields): string | undefined {
  const { issuedAtMs, capabilities, listenPort, deviceName, addresses } = fields;
  if (!Number.isSafeInteger(issuedAtMs) || issuedAtMs < 0) return 'issuedAtMs must be a u53';
  if (!Number.isInteger(capabilities) || capabilities < 0 || capabilities > 0xffff_ffff)
    return 'capabilities must be a u32';
  if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 0xffff)
    return 'listenPort must be a u16';
  if (utf8Encode(deviceName).length > PeerRecordLimits.deviceNameBytes)
    return `deviceName is over ${PeerRecordLimits.deviceNameBytes} bytes`;
  if (addresses.length > PeerRecordLimits.addresses)
    return `at most ${PeerRecordLimits.addresses} addresses`;
  if (addresses.length > 0 && !fields.broadcast)
    return 'a record without the broadcast flag must carry no address (the IP-sharing rule)';
  if (addresses.length > 0 && listenPort === 0) return 'addresses need a listenPort';
  for (const host of addresses) {
    if (host.length === 0 || host.length > PeerRecordLimits.hostBytes || !HOST_PATTERN.test(host))
      return `address ${JSON.stringify(host.slice(0, 80))} is not an IP literal or DNS name`;
  }
  return undefined;
}

/**
 * Builds and signs this device's record.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `peerRecordProblem(fields)` names one:
 * in particular an address on a record that does not broadcast.
 */
export function buildPeerRecord(
  crypto: CryptoProvider,
  identity: KeyPair,
  fields: PeerRecordFields,
): Uint8Array {
  const problem = peerRecordProblem(fields);
  if (problem !== undefined) invalidArgument('peer record', problem);
  if (identity.publicKey.length !== 32) invalidArgument('identity.publicKey', 'must be 32 bytes');
  const name = utf8Encode(fields.deviceName);
  const hosts = fields.addresses.map((host) => utf8Encode(host));
  const size =
    1 + 32 + 8 + 1 + 4 + 2 + 1 + name.length + 1 + hosts.reduce((n, h) => n + 1 + h.length, 0);
  const writer = new FrameWriter(size);
  writer.u8(PEER_RECORD_VERSION);
  writer.bytes(identity.publicKey);
  writer.u64(fields.issuedAtMs);
  writer.u8(
    (fields.broadcast ? PeerRecordFlag.broadcast : 0) |
      (fields.bootstrap ? PeerRecordFlag.bootstrap : 0) |
      (fields.leaving ? PeerRecordFlag.leaving : 0),
  );
  writer.u32(fields.capabilities);
  writer.u16(fields.listenPort);
  writer.u8(name.length);
  writer.bytes(name);
  writer.u8(hosts.length);
  for (const host of hosts) {
    writer.u8(host.length);
    writer.bytes(host);
  }
  const signed = writer.finish();
  const signature = crypto.ed25519Sign(identity.secretKey, concatBytes(SIGNATURE_DOMAIN, signed));
  return concatBytes(signed, signature);
}

/** Parses a record's layout and rules (not its signature). Never throws on any bytes. */
export function decodePeerRecord(bytes: Uint8Array): PeerRecordResult {
  if (!(bytes instanceof Uint8Array)) return { ok: false, detail: 'not bytes' };
  if (bytes.length > PeerRecordLimits.recordBytes)
    return { ok: false, detail: `record is ${bytes.length} bytes, above the limit` };
  if (bytes.length < 64 + 1) return { ok: false, detail: 'record too short' };
  const signedBytes = bytes.subarray(0, bytes.length - 64);
  const reader = new FrameReader(signedBytes, 0);
  try {
    const version = reader.u8('record.version');
    if (version !== PEER_RECORD_VERSION) return { ok: false, detail: `version ${version}` };
    const publicKey = reader.copy('record.publicKey', 32);
    const issuedAtMs = reader.u64('record.issuedAtMs');
    const flags = reader.u8('record.flags');
    if ((flags & ~KNOWN_FLAGS) !== 0) return { ok: false, detail: 'unknown flag bits' };
    const capabilities = reader.u32('record.capabilities');
    const listenPort = reader.u16('record.listenPort');
    const nameLength = reader.u8('record.deviceName');
    if (nameLength > PeerRecordLimits.deviceNameBytes)
      return { ok: false, detail: 'deviceName too long' };
    const deviceName = decodeUtf8(reader.copy('record.deviceName', nameLength));
    if (deviceName === undefined) return { ok: false, detail: 'deviceName is not UTF-8' };
    const count = reader.u8('record.addresses');
    if (count > PeerRecordLimits.addresses) return { ok: false, detail: 'too many addresses' };
    const addresses: string[] = [];
    for (let i = 0; i < count; i++) {
      const length = reader.u8('record.address');
      const host = decodeUtf8(reader.copy('record.address', length));
      if (host === undefined) return { ok: false, detail: 'an address is not UTF-8' };
      addresses.push(host);
    }
    if (reader.remaining !== 0) return { ok: false, detail: 'bytes after the last field' };
    const fields: PeerRecordFields = {
      issuedAtMs,
      broadcast: (flags & PeerRecordFlag.broadcast) !== 0,
      bootstrap: (flags & PeerRecordFlag.bootstrap) !== 0,
      leaving: (flags & PeerRecordFlag.leaving) !== 0,
      capabilities,
      listenPort,
      deviceName,
      addresses,
    };
    const problem = peerRecordProblem(fields);
    if (problem !== undefined) return { ok: false, detail: problem };
    return {
      ok: true,
      record: {
        ...fields,
        publicKey,
        signature: bytes.slice(bytes.length - 64),
        bytes,
        signedBytes,
      },
    };
  } catch (error) {
    if (error instanceof FrameDecodeError) return { ok: false, detail: error.detail };
    throw error;
  }
}

/** True when the record's signature is its own key's, over its bytes. */
export function verifyPeerRecord(crypto: CryptoProvider, record: PeerRecord): boolean {
  return crypto.ed25519Verify(
    record.publicKey,
    concatBytes(SIGNATURE_DOMAIN, record.signedBytes),
    record.signature,
  );
}

/** Decodes and verifies: the one call receivers use. */
export function openPeerRecord(crypto: CryptoProvider, bytes: Uint8Array): PeerRecordResult {
  const result = decodePeerRecord(bytes);
  if (!result.ok) return result;
  if (!verifyPeerRecord(crypto, result.record)) return { ok: false, detail: 'bad signature' };
  return result;
}

/** The Device ID a record speaks for. */
export function peerRecordDeviceId(crypto: CryptoProvider, record: PeerRecord): Uint8Array {
  return deriveDeviceId(crypto, record.publicKey);
}
