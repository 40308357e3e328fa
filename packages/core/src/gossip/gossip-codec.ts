/**
 * Gossip frames: the signed envelope and the six bodies (docs/protocol.md section 11).
 *
 * Theory of operation
 * - The wire codec frames a gossip message as `{ type: 'gossip', code, body }` and leaves the
 *   body alone; this module is the only code that reads or builds those bodies.
 * - Body layout (big-endian): u8 ttl | 16 messageId | 32 originPublicKey | u64 timestampMs
 *   | u8 initialTtl | type body | 64 signature. The signature is the origin's Ed25519 over
 *   "PeaPod/1 gossip" || code || every body byte after ttl and before the signature
 *   (`gossipSignedBytes`), so a relay may lower ttl (`withTtl`) and nothing else.
 * - ttl counts the hops a copy may still travel, the one it is on included: the origin sends
 *   ttl = initialTtl, a relay forwards with ttl - 1 only when ttl > 1, so ttl 0 never travels
 *   and 1 <= ttl <= initialTtl <= the type's budget (GossipTtl).
 * - `encodeGossip` validates every field first and refuses what a receiver would reject, in
 *   particular a record that breaks the IP-sharing rule (decodePeerRecord refuses an address
 *   without the broadcast flag) or an announcement carrying another device's record.
 * - `decodeGossip` checks layout and limits only (never the signature, never the clock), never
 *   throws, and accepts only the canonical encoding, so whatever it accepts re-encodes to the
 *   same bytes. Rejections: 'oversized' (body over 32 KiB), 'ttl-inflated' (ttl > initialTtl,
 *   or initialTtl above the type's budget), 'record-mismatch' (an announcement's or update's
 *   record is malformed or not the origin's own), 'malformed' (everything else).
 *   'address-not-broadcast' never comes from here: a record carrying an address without its
 *   broadcast flag does not decode at all (peer-record.ts), so it surfaces as 'record-mismatch'
 *   in an announcement and 'malformed' in a list response.
 * - `verifyGossip` checks the envelope signature. Records carried in a list response are each
 *   verified on their own (openPeerRecord) by whoever stores them.
 */
import { concatBytes, equalBytes, toHex, utf8Encode } from '../bytes.js';
import type { CryptoProvider, KeyPair } from '../crypto-provider.js';
import { invalidArgument } from '../errors.js';
import { FrameDecodeError, FrameReader, malformed } from '../wire/frame-reader.js';
import { FrameWriter } from '../wire/frame-writer.js';
import type { GossipFrameMessage } from '../wire/messages.js';
import {
  decodePeerRecord,
  PeerRecordLimits,
  type PeerRecord,
  type PeerRecordResult,
} from './peer-record.js';
import {
  GossipCode,
  GossipLimits,
  GossipTtl,
  type ContentAvailabilityEntry,
  type GossipMessage,
  type GossipRejection,
} from './messages.js';

/** A message before signing: the envelope fields the origin chooses, and the body. */
export type UnsignedGossip = GossipMessage extends infer M
  ? M extends GossipMessage
    ? Omit<M, 'signature' | 'originPublicKey'>
    : never
  : never;

export type GossipDecodeResult =
  | { readonly ok: true; readonly message: GossipMessage }
  | { readonly ok: false; readonly rejection: GossipRejection; readonly detail: string };

const SIGNATURE_DOMAIN = utf8Encode('PeaPod/1 gossip');
const SIGNATURE_BYTES = 64;
const KEY_BYTES = 32;
const CONTENT_ID_BYTES = 32;
/** ttl | messageId | originPublicKey | timestampMs | initialTtl. */
const HEADER_BYTES = 1 + GossipLimits.messageIdBytes + KEY_BYTES + 8 + 1;
const REQUEST_FLAG_CONTENT_ID = 1 << 0;
const CONTENT_FLAG_HELD = 1 << 0;
const GOSSIP_CODES: ReadonlySet<number> = new Set(Object.values(GossipCode));

/** A rejection other than 'malformed', raised inside the decoder and caught at its edge. */
class GossipReject {
  constructor(
    readonly rejection: GossipRejection,
    readonly detail: string,
  ) {}
}

/**
 * The bytes the origin signs: "PeaPod/1 gossip" || code || body[1 .. length - 64].
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `code` is not a gossip type code.
 */
export function gossipSignedBytes(code: number, body: Uint8Array): Uint8Array {
  if (!GOSSIP_CODES.has(code)) invalidArgument('code', 'is not a gossip type code');
  const covered = body.subarray(1, Math.max(1, body.length - SIGNATURE_BYTES));
  return concatBytes(SIGNATURE_DOMAIN, Uint8Array.of(code), covered);
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    invalidArgument(name, `must be an integer in ${min}..${max}`);
  }
}

function checkBytes(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    invalidArgument(name, `must be ${length} bytes`);
  }
}

/** Parses one peer record (decodePeerRecord, or a cache of it: record-cache.ts). */
export type PeerRecordDecoder<R extends PeerRecord> = (bytes: Uint8Array) => PeerRecordResult<R>;

/** The record's encoded size, or a throw naming why it cannot be carried. */
function checkRecord(
  name: string,
  record: Uint8Array,
  key: Uint8Array | undefined,
  decodeRecord: PeerRecordDecoder<PeerRecord>,
): void {
  const result = decodeRecord(record);
  if (!result.ok) invalidArgument(name, `not a valid peer record (${result.detail})`);
  if (key !== undefined && !equalBytes(result.record.publicKey, key)) {
    invalidArgument(name, "must be the origin's own record (same key as the envelope)");
  }
}

function checkDistinct(name: string, values: readonly Uint8Array[]): void {
  if (new Set(values.map(toHex)).size !== values.length) invalidArgument(name, 'has duplicates');
}

/** Validates the type body and returns its encoder. */
function typeBody(
  message: UnsignedGossip,
  origin: Uint8Array,
  decodeRecord: PeerRecordDecoder<PeerRecord>,
): [number, (w: FrameWriter) => void] {
  switch (message.code) {
    case GossipCode.peerAnnouncement:
    case GossipCode.peerUpdate: {
      const { record } = message;
      checkRecord('record', record, origin, decodeRecord);
      return [2 + record.length, (w) => w.prefixed16(record)];
    }
    case GossipCode.peerRequest: {
      const { lookupKey, maxResults } = message;
      if (lookupKey !== undefined) checkBytes('lookupKey', lookupKey, CONTENT_ID_BYTES);
      checkInteger('maxResults', maxResults, 1, GossipLimits.listRecords);
      return [
        1 + (lookupKey === undefined ? 0 : CONTENT_ID_BYTES) + 1,
        (w) => {
          w.u8(lookupKey === undefined ? 0 : REQUEST_FLAG_CONTENT_ID);
          if (lookupKey !== undefined) w.bytes(lookupKey);
          w.u8(maxResults);
        },
      ];
    }
    case GossipCode.peerListResponse: {
      const { requestId, records } = message;
      checkBytes('requestId', requestId, GossipLimits.messageIdBytes);
      if (records.length > GossipLimits.listRecords) {
        invalidArgument('records', `at most ${GossipLimits.listRecords}`);
      }
      records.forEach((record, i) => checkRecord(`records[${i}]`, record, undefined, decodeRecord));
      checkDistinct(
        'records (keys)',
        records.map((r) => r.subarray(1, 1 + KEY_BYTES)),
      );
      const size = records.reduce((n, r) => n + 2 + r.length, GossipLimits.messageIdBytes + 1);
      return [
        size,
        (w) => {
          w.bytes(requestId);
          w.u8(records.length);
          for (const record of records) w.prefixed16(record);
        },
      ];
    }
    case GossipCode.heartbeat:
      return [0, () => undefined];
    case GossipCode.contentAvailability: {
      const { entries } = message;
      if (entries.length < 1 || entries.length > GossipLimits.contentEntries) {
        invalidArgument('entries', `must hold 1..${GossipLimits.contentEntries}`);
      }
      entries.forEach((e, i) => checkBytes(`entries[${i}].lookupKey`, e.lookupKey, 32));
      checkDistinct(
        'entries (content IDs)',
        entries.map((e) => e.lookupKey),
      );
      return [
        1 + entries.length * (CONTENT_ID_BYTES + 1),
        (w) => {
          w.u8(entries.length);
          for (const entry of entries) {
            w.bytes(entry.lookupKey);
            w.u8(entry.held ? CONTENT_FLAG_HELD : 0);
          }
        },
      ];
    }
    default:
      return invalidArgument('code', 'is not a gossip type code');
  }
}

/**
 * Signs `message` as `identity` and frames it.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a field out of range (the builder's rules,
 * the IP-sharing rule of the records it carries included). `decodeRecord` checks each record
 * (default `decodePeerRecord`; an engine passes its record cache's).
 */
export function encodeGossip(
  crypto: CryptoProvider,
  identity: KeyPair,
  message: UnsignedGossip,
  decodeRecord: PeerRecordDecoder<PeerRecord> = decodePeerRecord,
): GossipFrameMessage {
  const { code, ttl, initialTtl, messageId, timestampMs } = message;
  if (!GOSSIP_CODES.has(code)) invalidArgument('code', 'is not a gossip type code');
  checkBytes('identity.publicKey', identity.publicKey, KEY_BYTES);
  checkInteger('initialTtl', initialTtl, 1, GossipTtl[code]);
  checkInteger('ttl', ttl, 1, initialTtl);
  checkBytes('messageId', messageId, GossipLimits.messageIdBytes);
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) {
    invalidArgument('timestampMs', 'must be a non-negative safe integer (Unix ms)');
  }
  const [bodySize, writeBody] = typeBody(message, identity.publicKey, decodeRecord);
  const size = HEADER_BYTES + bodySize + SIGNATURE_BYTES;
  if (size > GossipLimits.bodyBytes) invalidArgument('message', `over ${GossipLimits.bodyBytes}`);
  const writer = new FrameWriter(size - SIGNATURE_BYTES);
  writer.u8(ttl);
  writer.bytes(messageId);
  writer.bytes(identity.publicKey);
  writer.u64(timestampMs);
  writer.u8(initialTtl);
  writeBody(writer);
  const unsigned = writer.finish();
  // `unsigned` has no signature yet, so everything after its ttl byte is what gets signed.
  const signed = concatBytes(SIGNATURE_DOMAIN, Uint8Array.of(code), unsigned.subarray(1));
  const signature = crypto.ed25519Sign(identity.secretKey, signed);
  return { type: 'gossip', code, body: concatBytes(unsigned, signature) };
}

function readRecord(reader: FrameReader, field: string): Uint8Array {
  const length = reader.u16(`${field} length`);
  if (length > PeerRecordLimits.recordBytes) malformed(`${field}: ${length} bytes, over the limit`);
  return reader.copy(field, length);
}

function readContentEntries(reader: FrameReader): ContentAvailabilityEntry[] {
  const count = reader.u8('entries count');
  if (count < 1 || count > GossipLimits.contentEntries) {
    malformed(`entries count ${count} is outside 1..${GossipLimits.contentEntries}`);
  }
  const entries: ContentAvailabilityEntry[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const lookupKey = reader.copy('entry.lookupKey', CONTENT_ID_BYTES);
    const flags = reader.u8('entry.flags');
    if ((flags & ~CONTENT_FLAG_HELD) !== 0) malformed('entry.flags: unknown bits');
    const hex = toHex(lookupKey);
    if (seen.has(hex)) malformed('entries: a lookup key appears twice');
    seen.add(hex);
    entries.push({ lookupKey, held: (flags & CONTENT_FLAG_HELD) !== 0 });
  }
  return entries;
}

function decodeUnchecked<R extends PeerRecord>(
  frame: GossipFrameMessage,
  parsed: R[] | undefined,
  decodeRecord: PeerRecordDecoder<R>,
): GossipMessage {
  const { code, body } = frame;
  if (!GOSSIP_CODES.has(code)) malformed(`code ${String(code)} is not a gossip code`);
  const gossipCode = code as GossipCode;
  if (body.length > GossipLimits.bodyBytes) {
    throw new GossipReject('oversized', `body is ${body.length} bytes, over the limit`);
  }
  if (body.length < HEADER_BYTES + SIGNATURE_BYTES) malformed('body shorter than the envelope');
  const reader = new FrameReader(body.subarray(0, body.length - SIGNATURE_BYTES), 0);
  const ttl = reader.u8('ttl');
  const messageId = reader.copy('messageId', GossipLimits.messageIdBytes);
  const originPublicKey = reader.copy('originPublicKey', KEY_BYTES);
  const timestampMs = reader.u64('timestampMs');
  const initialTtl = reader.u8('initialTtl');
  if (initialTtl > GossipTtl[gossipCode]) {
    throw new GossipReject('ttl-inflated', `initialTtl ${initialTtl} over the type's budget`);
  }
  if (ttl > initialTtl) throw new GossipReject('ttl-inflated', `ttl ${ttl} > initialTtl`);
  if (ttl === 0) malformed('ttl 0 (a copy with no hop left is never sent)');
  const signature = body.slice(body.length - SIGNATURE_BYTES);
  const envelope = { ttl, initialTtl, messageId, originPublicKey, timestampMs, signature };
  let message: GossipMessage;
  switch (gossipCode) {
    case GossipCode.peerAnnouncement:
    case GossipCode.peerUpdate: {
      const record = readRecord(reader, 'record');
      reader.end('announcement');
      const decoded = decodeRecord(record);
      if (!decoded.ok) throw new GossipReject('record-mismatch', `record: ${decoded.detail}`);
      if (!equalBytes(decoded.record.publicKey, originPublicKey)) {
        throw new GossipReject('record-mismatch', "the record is not the origin's own");
      }
      parsed?.push(decoded.record);
      message = { ...envelope, code: gossipCode, record };
      break;
    }
    case GossipCode.peerRequest: {
      const flags = reader.u8('flags');
      if ((flags & ~REQUEST_FLAG_CONTENT_ID) !== 0) malformed('flags: unknown bits');
      const lookupKey =
        (flags & REQUEST_FLAG_CONTENT_ID) !== 0
          ? reader.copy('lookupKey', CONTENT_ID_BYTES)
          : undefined;
      const maxResults = reader.u8('maxResults');
      if (maxResults < 1 || maxResults > GossipLimits.listRecords) {
        malformed(`maxResults ${maxResults} is outside 1..${GossipLimits.listRecords}`);
      }
      reader.end('peer request');
      message = { ...envelope, code: gossipCode, lookupKey, maxResults };
      break;
    }
    case GossipCode.peerListResponse: {
      const requestId = reader.copy('requestId', GossipLimits.messageIdBytes);
      const count = reader.u8('records count');
      if (count > GossipLimits.listRecords) malformed(`records count ${count} over the limit`);
      const records: Uint8Array[] = [];
      const keys = new Set<string>();
      for (let i = 0; i < count; i++) {
        const record = readRecord(reader, `records[${i}]`);
        const decoded = decodeRecord(record);
        if (!decoded.ok) malformed(`records[${i}]: ${decoded.detail}`);
        const key = toHex(decoded.record.publicKey);
        if (keys.has(key)) malformed(`records[${i}]: a second record for one key`);
        keys.add(key);
        records.push(record);
        parsed?.push(decoded.record);
      }
      reader.end('peer list response');
      message = { ...envelope, code: gossipCode, requestId, records };
      break;
    }
    case GossipCode.heartbeat:
      reader.end('heartbeat');
      message = { ...envelope, code: gossipCode };
      break;
    case GossipCode.contentAvailability: {
      const entries = readContentEntries(reader);
      reader.end('content availability');
      message = { ...envelope, code: gossipCode, entries };
      break;
    }
  }
  return message;
}

/**
 * Parses a gossip frame's layout and limits (not the signature, not the clock). Never throws on
 * any bytes: `malformed`, `oversized`, `ttl-inflated` (ttl > initialTtl, or initialTtl above
 * the type's budget) or, for PEER_ANNOUNCEMENT and PEER_UPDATE, `record-mismatch`.
 * `parsed`, when given, gets the peer records the message carries as they were parsed (not
 * verified), in order, so a receiver does not parse them twice; `decodeRecord` parses them
 * (default `decodePeerRecord`; an engine passes its record cache's).
 */
export function decodeGossip<R extends PeerRecord = PeerRecord>(
  frame: GossipFrameMessage,
  parsed?: R[],
  decodeRecord: PeerRecordDecoder<R> = decodePeerRecord as PeerRecordDecoder<R>,
): GossipDecodeResult {
  if (frame === null || typeof frame !== 'object' || !(frame.body instanceof Uint8Array)) {
    return { ok: false, rejection: 'malformed', detail: 'not a gossip frame' };
  }
  try {
    return { ok: true, message: decodeUnchecked(frame, parsed, decodeRecord) };
  } catch (error) {
    if (error instanceof GossipReject) {
      return { ok: false, rejection: error.rejection, detail: error.detail };
    }
    if (error instanceof FrameDecodeError) {
      return { ok: false, rejection: 'malformed', detail: error.detail };
    }
    throw error;
  }
}

/**
 * True when the envelope's signature is its origin's over the frame. Checks nothing else: call
 * it on frames `decodeGossip` accepted. False (never a throw) for a body too short to hold one.
 */
export function verifyGossip(crypto: CryptoProvider, frame: GossipFrameMessage): boolean {
  const { code, body } = frame;
  if (!GOSSIP_CODES.has(code) || body.length < HEADER_BYTES + SIGNATURE_BYTES) return false;
  const originPublicKey = body.subarray(
    1 + GossipLimits.messageIdBytes,
    1 + GossipLimits.messageIdBytes + KEY_BYTES,
  );
  return crypto.ed25519Verify(
    originPublicKey,
    gossipSignedBytes(code, body),
    body.subarray(body.length - SIGNATURE_BYTES),
  );
}

/**
 * The same frame with `ttl` replaced (what a relay sends); the signature stays valid.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `ttl` is not an integer in 1..255 or the
 * body is empty.
 */
export function withTtl(frame: GossipFrameMessage, ttl: number): GossipFrameMessage {
  checkInteger('ttl', ttl, 1, 0xff);
  if (frame.body.length === 0) invalidArgument('frame.body', 'is empty');
  const body = frame.body.slice();
  body[0] = ttl;
  return { type: 'gossip', code: frame.code, body };
}
