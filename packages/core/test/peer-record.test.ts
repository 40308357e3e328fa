/**
 * Peer records (gossip/peer-record.ts, docs/protocol.md section 11.2):
 * 1. build -> decode -> verify round trips, by example and with fast-check;
 * 2. the builder refuses what a receiver would reject (the IP-sharing rule first);
 * 3. a named table of hand-built, correctly signed records that decodePeerRecord must refuse;
 * 4. a flipped bit anywhere fails decode or verify; arbitrary bytes never throw.
 * The golden vectors (records in vectors/gossip-v1.json) are checked in gossip-codec-vectors.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { utf8Encode } from '../src/bytes.js';
import {
  buildPeerRecord,
  decodePeerRecord,
  openPeerRecord,
  PeerRecordLimits,
  verifyPeerRecord,
  type PeerRecordFields,
} from '../src/gossip/peer-record.js';
import { alice, bob, crypto, rawRecord, u64 } from './gossip-codec-fixture.js';

const BROADCASTING: PeerRecordFields = {
  issuedAtMs: 1_767_225_600_000,
  broadcast: true,
  bootstrap: true,
  leaving: false,
  capabilities: 8,
  listenPort: 9000,
  deviceName: 'alpha',
  addresses: ['192.0.2.10', '2001:db8::1', 'peer.example.org'],
};
const SILENT: PeerRecordFields = { ...BROADCASTING, broadcast: false, addresses: [] };

function fieldsOf(fields: PeerRecordFields): PeerRecordFields {
  const { issuedAtMs, broadcast, bootstrap, leaving, capabilities, listenPort } = fields;
  return {
    issuedAtMs,
    broadcast,
    bootstrap,
    leaving,
    capabilities,
    listenPort,
    deviceName: fields.deviceName,
    addresses: [...fields.addresses],
  };
}

describe('peer records: round trips', () => {
  for (const [name, fields] of [
    ['broadcasting with three addresses', BROADCASTING],
    ['silent, no address', SILENT],
    ['a name starting with U+FEFF keeps it', { ...SILENT, deviceName: '\ufeffbom' }],
  ] as const) {
    test(`${name}: decodes to the same fields and verifies`, () => {
      const bytes = buildPeerRecord(crypto, alice, fields);
      const result = openPeerRecord(crypto, bytes);
      assert.ok(result.ok, result.ok ? '' : result.detail);
      assert.deepEqual(fieldsOf(result.record), fieldsOf(fields));
      assert.deepEqual(result.record.publicKey, alice.publicKey);
    });
  }

  test('fast-check: any valid fields round-trip and verify', () => {
    const host = fc.stringMatching(/^[A-Za-z0-9.:-]{1,40}$/);
    const fieldsArb = fc
      .record({
        issuedAtMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        broadcast: fc.boolean(),
        bootstrap: fc.boolean(),
        leaving: fc.boolean(),
        capabilities: fc.integer({ min: 0, max: 0xffff_ffff }),
        listenPort: fc.integer({ min: 1, max: 0xffff }),
        deviceName: fc.string({ maxLength: 16, unit: 'grapheme' }),
        addresses: fc.array(host, { maxLength: 4 }),
      })
      .map((f) => (f.broadcast ? f : { ...f, addresses: [] }));
    fc.assert(
      fc.property(fieldsArb, (fields) => {
        const result = openPeerRecord(crypto, buildPeerRecord(crypto, bob, fields));
        assert.ok(result.ok);
        assert.deepEqual(fieldsOf(result.record), fieldsOf(fields));
      }),
      { numRuns: 300 },
    );
  });
});

describe('peer records: the builder refuses', () => {
  const cases: Array<[string, Partial<PeerRecordFields>]> = [
    ['an address without the broadcast flag (the IP-sharing rule)', { broadcast: false }],
    ['addresses with listenPort 0', { listenPort: 0 }],
    ['five addresses', { addresses: ['a', 'b', 'c', 'd', 'e'] }],
    ['a host with a space', { addresses: ['a b'] }],
    ['a bracketed IPv6 literal', { addresses: ['[::1]'] }],
    ['an empty host', { addresses: [''] }],
    ['a 254-byte host', { addresses: ['a'.repeat(254)] }],
    ['a 65-byte name', { deviceName: 'n'.repeat(65) }],
    ['a negative issuedAtMs', { issuedAtMs: -1 }],
    ['a capabilities value over u32', { capabilities: 2 ** 32 }],
    ['a listenPort over u16', { listenPort: 65_536 }],
  ];
  for (const [name, change] of cases) {
    test(`${name}: PEAPOD_ERR_INVALID_ARGUMENT`, () => {
      assert.throws(() => buildPeerRecord(crypto, alice, { ...BROADCASTING, ...change }), {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
      });
    });
  }
});

describe('peer records: decodePeerRecord refuses (hand-built, correctly signed)', () => {
  const ok = rawRecord(alice, { hosts: [utf8Encode('192.0.2.1')] });
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['shorter than a signature', ok.subarray(0, 64)],
    ['truncated in the name', rawRecord(alice, { name: utf8Encode('x') }).subarray(0, 48 + 64)],
    ['a trailing byte before the signature', rawRecord(alice, { trailing: Uint8Array.of(0) })],
    ['version 2', rawRecord(alice, { version: 2 })],
    ['an unknown flag bit', rawRecord(alice, { flags: 0x09 })],
    [
      'an address without the broadcast flag (the IP-sharing rule)',
      rawRecord(alice, { flags: 0, hosts: [utf8Encode('192.0.2.1')] }),
    ],
    ['addresses with listenPort 0', rawRecord(alice, { listenPort: 0, hosts: [utf8Encode('h')] })],
    ['five addresses', rawRecord(alice, { hosts: Array(5).fill(utf8Encode('h')) as Uint8Array[] })],
    ['a name of 65 bytes', rawRecord(alice, { name: new Uint8Array(65).fill(0x61) })],
    ['a name that is not UTF-8', rawRecord(alice, { name: Uint8Array.of(0xc3, 0x28) })],
    ['a host with a slash', rawRecord(alice, { hosts: [utf8Encode('a/b')] })],
    ['a host with a zone index', rawRecord(alice, { hosts: [utf8Encode('fe80::1%eth0')] })],
    ['an empty host', rawRecord(alice, { hosts: [new Uint8Array(0)] })],
    ['a host that is not UTF-8', rawRecord(alice, { hosts: [Uint8Array.of(0xff)] })],
    [
      'issuedAtMs above 2^53 - 1',
      rawRecord(alice, { issuedAt: Uint8Array.of(0, 0x20, 0, 0, 0, 0, 0, 0) }),
    ],
    ['over the size limit', new Uint8Array(PeerRecordLimits.recordBytes + 1)],
  ];
  test('the control record of this table decodes and verifies', () => {
    assert.ok(openPeerRecord(crypto, ok).ok);
    assert.ok(decodePeerRecord(rawRecord(alice, { issuedAt: u64(2 ** 53 - 1) })).ok);
  });
  for (const [name, bytes] of cases) {
    test(`${name}: not a record`, () => {
      const result = decodePeerRecord(bytes);
      assert.equal(result.ok, false, `accepted: ${name}`);
    });
  }
});

describe('peer records: tampering and arbitrary bytes', () => {
  test('a flipped bit anywhere fails decode or verify', () => {
    const bytes = buildPeerRecord(crypto, alice, BROADCASTING);
    for (let i = 0; i < bytes.length * 8; i++) {
      const copy = bytes.slice();
      copy[i >> 3]! ^= 1 << (i & 7);
      assert.equal(openPeerRecord(crypto, copy).ok, false, `bit ${i} flipped still opens`);
    }
  });

  test("another key's signature does not verify", () => {
    const bytes = buildPeerRecord(crypto, alice, SILENT);
    const decoded = decodePeerRecord(bytes);
    assert.ok(decoded.ok);
    const forged = { ...decoded.record, publicKey: bob.publicKey };
    assert.equal(verifyPeerRecord(crypto, forged), false);
  });

  test('fast-check: arbitrary bytes never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1400 }), (bytes) => {
        decodePeerRecord(bytes);
      }),
      { numRuns: 10_000 },
    );
  });

  test('fast-check: mutated records never throw and never open', () => {
    const bytes = buildPeerRecord(crypto, alice, BROADCASTING);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: bytes.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (at, xor) => {
          const copy = bytes.slice();
          copy[at]! ^= xor;
          assert.equal(openPeerRecord(crypto, copy).ok, false);
        },
      ),
      { numRuns: 500 },
    );
  });
});
