/**
 * Shared pieces of the peer-record and gossip-codec tests: keys from fixed seeds, and hand-built
 * records and frames (correctly signed, whatever their layout), so a test can present a receiver
 * with exactly the bytes a hostile or buggy sender would.
 */
import { concatBytes, utf8Encode } from '../src/bytes.js';
import type { CryptoProvider, KeyPair } from '../src/crypto-provider.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

export const crypto: CryptoProvider = deterministicCrypto(12);

export function keyFromSeed(seed: Uint8Array): KeyPair {
  return { publicKey: crypto.ed25519PublicKey(seed), secretKey: seed };
}

export const alice = keyFromSeed(new Uint8Array(32).fill(0xa1));
export const bob = keyFromSeed(new Uint8Array(32).fill(0xb0));

export function u16(value: number): Uint8Array {
  return Uint8Array.of(value >> 8, value & 0xff);
}

export function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

export interface RawRecordFields {
  readonly version?: number;
  readonly flags?: number;
  readonly listenPort?: number;
  readonly name?: Uint8Array;
  readonly hosts?: readonly Uint8Array[];
  readonly issuedAt?: Uint8Array;
  readonly trailing?: Uint8Array;
}

/** A record laid out field by field, signed by `key` over whatever was laid out. */
export function rawRecord(key: KeyPair, fields: RawRecordFields = {}): Uint8Array {
  const hosts = fields.hosts ?? [];
  const signed = concatBytes(
    Uint8Array.of(fields.version ?? 1),
    key.publicKey,
    fields.issuedAt ?? u64(1_767_225_600_000),
    Uint8Array.of(fields.flags ?? 1),
    Uint8Array.of(0, 0, 0, 8),
    u16(fields.listenPort ?? 9000),
    Uint8Array.of((fields.name ?? utf8Encode('node')).length),
    fields.name ?? utf8Encode('node'),
    Uint8Array.of(hosts.length),
    ...hosts.flatMap((h) => [Uint8Array.of(h.length), h]),
    fields.trailing ?? new Uint8Array(0),
  );
  const signature = crypto.ed25519Sign(
    key.secretKey,
    concatBytes(utf8Encode('PeaPod/1 peer-record'), signed),
  );
  return concatBytes(signed, signature);
}

export interface RawEnvelope {
  readonly ttl?: number;
  readonly initialTtl?: number;
  readonly key?: KeyPair;
  readonly timestamp?: Uint8Array;
}

/** A gossip body laid out by hand around `typeBody`, with a valid signature over it. */
export function rawBody(
  code: number,
  typeBody: Uint8Array,
  envelope: RawEnvelope = {},
): Uint8Array {
  const key = envelope.key ?? alice;
  const unsigned = concatBytes(
    Uint8Array.of(envelope.ttl ?? 1),
    new Uint8Array(16).fill(0x5a),
    key.publicKey,
    envelope.timestamp ?? u64(1_767_225_600_000),
    Uint8Array.of(envelope.initialTtl ?? 2),
    typeBody,
  );
  const signed = concatBytes(
    utf8Encode('PeaPod/1 gossip'),
    Uint8Array.of(code),
    unsigned.subarray(1),
  );
  const signature = crypto.ed25519Sign(key.secretKey, signed);
  return concatBytes(unsigned, signature);
}
