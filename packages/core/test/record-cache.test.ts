/**
 * The peer-record cache (gossip/record-cache.ts):
 * 1. the same bytes give the same shared object, decoded over the cache's own copy;
 * 2. a record differing in one byte is decoded (and verified) afresh, never answered from memory;
 * 3. the signature is verified once per remembered record, and a forged one stays invalid;
 * 4. memory is bounded by two generations; arbitrary bytes never throw and agree with
 *    decodePeerRecord.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { deriveDeviceId } from '../src/identity.js';
import { bytesKey } from '../src/gossip/byte-key.js';
import { buildPeerRecord, decodePeerRecord, verifyPeerRecord } from '../src/gossip/peer-record.js';
import { PeerRecordCache } from '../src/gossip/record-cache.js';
import { alice, bob, crypto } from './gossip-codec-fixture.js';

function record(name: string, issuedAtMs = 1_767_225_600_000, identity = alice): Uint8Array {
  return buildPeerRecord(crypto, identity, {
    issuedAtMs,
    broadcast: true,
    bootstrap: false,
    leaving: false,
    capabilities: 8,
    listenPort: 9000,
    deviceName: name,
    addresses: ['192.0.2.10'],
  });
}

/** The crypto provider, counting signature checks. */
function counting(): { provider: CryptoProvider; verifies: () => number } {
  let verifies = 0;
  return {
    provider: {
      ...crypto,
      ed25519Verify(publicKey, message, signature) {
        verifies++;
        return crypto.ed25519Verify(publicKey, message, signature);
      },
    },
    verifies: () => verifies,
  };
}

function decoded(cache: PeerRecordCache, bytes: Uint8Array) {
  const result = cache.decode(bytes);
  assert.equal(result.ok, true, result.ok ? '' : result.detail);
  return (result as Extract<typeof result, { ok: true }>).record;
}

describe('peer-record cache', () => {
  test('the same bytes, even in another buffer, give the one shared object with its derived key', () => {
    const cache = new PeerRecordCache(crypto);
    const bytes = record('alpha');
    const first = decoded(cache, bytes);
    const again = decoded(cache, bytes.slice());
    assert.equal(again, first);
    assert.equal(first.held, again.held);
    assert.deepEqual(first.deviceId, deriveDeviceId(crypto, alice.publicKey));
    assert.equal(first.key, bytesKey(first.deviceId));
    assert.equal(first.deviceName, 'alpha');
    assert.deepEqual(cache.stats, { remembered: 1, decoded: 1 });
  });

  test('the cached record owns its bytes: changing the caller’s buffer changes nothing', () => {
    const cache = new PeerRecordCache(crypto);
    const bytes = record('alpha');
    const known = decoded(cache, bytes);
    const copy = bytes.slice();
    bytes.fill(0);
    assert.deepEqual(known.bytes, copy);
    assert.deepEqual(known.held.bytes, copy);
  });

  test('a record differing in one byte is decoded afresh, and its forged signature is invalid', () => {
    const { provider, verifies } = counting();
    const cache = new PeerRecordCache(provider);
    const bytes = record('alpha');
    const genuine = decoded(cache, bytes);
    const forged = bytes.slice();
    forged[forged.length - 40]! ^= 0x01; // inside the signature: still decodes
    const other = decoded(cache, forged);
    assert.notEqual(other, genuine);
    assert.equal(cache.valid(genuine), true);
    assert.equal(cache.valid(other), false);
    assert.equal(cache.valid(other), false);
    assert.equal(cache.valid(genuine), true);
    assert.equal(verifies(), 2, 'one signature check per distinct record');
  });

  test('records of different devices and versions are kept apart', () => {
    const cache = new PeerRecordCache(crypto);
    const a1 = decoded(cache, record('a', 1_767_225_600_000));
    const a2 = decoded(cache, record('a', 1_767_225_600_001));
    const b1 = decoded(cache, record('a', 1_767_225_600_000, bob));
    assert.notEqual(a1, a2);
    assert.equal(a1.key, a2.key);
    assert.notEqual(a1.key, b1.key);
    assert.equal(a2.issuedAtMs, 1_767_225_600_001);
  });

  test('bounded: past two generations a record is decoded again (as a new object)', () => {
    const cache = new PeerRecordCache(crypto, 2);
    const records = ['r0', 'r1', 'r2', 'r3', 'r4'].map((name) => record(name));
    const first = decoded(cache, records[0]!);
    for (const bytes of records.slice(1)) decoded(cache, bytes);
    const later = decoded(cache, records[0]!);
    assert.notEqual(later, first);
    assert.deepEqual(later.bytes, first.bytes);
    assert.equal(cache.stats.decoded, 6);
    // A recent one is still answered from memory.
    assert.equal(decoded(cache, records[4]!), decoded(cache, records[4]!.slice()));
  });

  test('a bad size of generation is refused', () => {
    assert.throws(() => new PeerRecordCache(crypto, 0), RangeError);
    assert.throws(() => new PeerRecordCache(crypto, 1.5), RangeError);
  });

  test('property: any bytes never throw, and the verdict is decodePeerRecord’s', () => {
    const cache = new PeerRecordCache(crypto, 64);
    const genuine = record('alpha');
    const inputs = fc.oneof(
      fc.uint8Array({ maxLength: 400 }),
      fc.tuple(fc.nat(genuine.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, bit]) => {
        const changed = genuine.slice();
        changed[at]! ^= bit;
        return changed;
      }),
      fc.constant(genuine),
    );
    fc.assert(
      fc.property(inputs, (bytes) => {
        const plain = decodePeerRecord(bytes);
        const cached = cache.decode(bytes);
        assert.equal(cached.ok, plain.ok);
        if (cached.ok && plain.ok) {
          assert.deepEqual(cached.record.bytes, plain.record.bytes);
          assert.equal(cached.record.issuedAtMs, plain.record.issuedAtMs);
          assert.deepEqual(cached.record.addresses, plain.record.addresses);
          assert.equal(cache.valid(cached.record), verifyPeerRecord(crypto, plain.record));
        }
      }),
      { numRuns: 300 },
    );
  });
});
