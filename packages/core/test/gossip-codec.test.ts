/**
 * The gossip codec (gossip/gossip-codec.ts, docs/protocol.md sections 11.1 and 11.3):
 * 1. every type round-trips through encode -> decode -> verify;
 * 2. the encoder refuses out-of-range fields and records that break the IP-sharing rule;
 * 3. a named table of hand-built, correctly signed frames with the rejection each must get;
 * 4. a flipped bit in any byte of the signed part fails decode or verify, a new ttl does not;
 * 5. fast-check: arbitrary bytes and mutated valid frames never throw, and never verify unless
 *    the signed part is unchanged.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { concatBytes, utf8Encode } from '../src/bytes.js';
import {
  decodeGossip,
  encodeGossip,
  verifyGossip,
  withTtl,
  type UnsignedGossip,
} from '../src/gossip/gossip-codec.js';
import { GossipCode, GossipLimits, type GossipRejection } from '../src/gossip/messages.js';
import { buildPeerRecord, type PeerRecordFields } from '../src/gossip/peer-record.js';
import type { GossipFrameMessage } from '../src/wire/messages.js';
import { alice, bob, crypto, rawBody, rawRecord, u16 } from './gossip-codec-fixture.js';

const T0 = 1_767_225_600_000;
const FIELDS: PeerRecordFields = {
  issuedAtMs: T0,
  broadcast: true,
  bootstrap: false,
  leaving: false,
  capabilities: 8,
  listenPort: 9000,
  deviceName: 'alice',
  addresses: ['192.0.2.1'],
};
const aliceRecord = buildPeerRecord(crypto, alice, FIELDS);
const bobSilent = buildPeerRecord(crypto, bob, {
  ...FIELDS,
  broadcast: false,
  addresses: [],
  deviceName: 'bob',
});
const messageId = new Uint8Array(16).fill(7);
const lookupKey = new Uint8Array(32).fill(0xcc);
const envelope = { ttl: 1, initialTtl: 2, messageId, timestampMs: T0 };

const examples: Array<[string, UnsignedGossip]> = [
  [
    'PEER_ANNOUNCEMENT',
    {
      ...envelope,
      code: GossipCode.peerAnnouncement,
      ttl: 31,
      initialTtl: 32,
      record: aliceRecord,
    },
  ],
  ['PEER_UPDATE', { ...envelope, code: GossipCode.peerUpdate, record: aliceRecord }],
  [
    'PEER_REQUEST with content',
    { ...envelope, code: GossipCode.peerRequest, lookupKey, maxResults: 16 },
  ],
  [
    'PEER_REQUEST without content',
    { ...envelope, code: GossipCode.peerRequest, lookupKey: undefined, maxResults: 1 },
  ],
  [
    'PEER_LIST_RESPONSE',
    {
      ...envelope,
      code: GossipCode.peerListResponse,
      requestId: messageId,
      records: [aliceRecord, bobSilent],
    },
  ],
  [
    'PEER_LIST_RESPONSE empty table sync',
    { ...envelope, code: GossipCode.peerListResponse, requestId: new Uint8Array(16), records: [] },
  ],
  ['HEARTBEAT', { ...envelope, code: GossipCode.heartbeat }],
  [
    'CONTENT_AVAILABILITY',
    {
      ...envelope,
      code: GossipCode.contentAvailability,
      entries: [
        { lookupKey, held: true },
        { lookupKey: new Uint8Array(32), held: false },
      ],
    },
  ],
];

function frameOf(code: number, body: Uint8Array): GossipFrameMessage {
  return { type: 'gossip', code, body };
}

describe('gossip codec: round trips', () => {
  for (const [name, message] of examples) {
    test(`${name}: decodes to the same fields, verifies, and re-encodes to the same bytes`, () => {
      const frame = encodeGossip(crypto, alice, message);
      assert.equal(frame.code, message.code);
      const result = decodeGossip(frame);
      assert.ok(result.ok, result.ok ? '' : result.detail);
      const { signature, originPublicKey, ...rest } = result.message;
      assert.deepEqual(rest, message);
      assert.deepEqual(originPublicKey, alice.publicKey);
      assert.equal(signature.length, 64);
      assert.ok(verifyGossip(crypto, frame));
      assert.deepEqual(encodeGossip(crypto, alice, message).body, frame.body);
    });
  }
});

describe('gossip codec: the encoder refuses', () => {
  const silentWithAddress = rawRecord(alice, { flags: 0, hosts: [utf8Encode('192.0.2.1')] });
  const cases: Array<[string, UnsignedGossip]> = [
    [
      'an announcement of a record without broadcast that carries an address',
      { ...envelope, code: GossipCode.peerAnnouncement, record: silentWithAddress },
    ],
    [
      'a list response carrying a record without broadcast that carries an address',
      {
        ...envelope,
        code: GossipCode.peerListResponse,
        requestId: messageId,
        records: [silentWithAddress],
      },
    ],
    [
      "an announcement of another device's record",
      { ...envelope, code: GossipCode.peerAnnouncement, record: bobSilent },
    ],
    ['ttl above initialTtl', { ...envelope, ttl: 3, code: GossipCode.heartbeat }],
    ['ttl 0', { ...envelope, ttl: 0, code: GossipCode.heartbeat }],
    ['initialTtl 0', { ...envelope, ttl: 0, initialTtl: 0, code: GossipCode.heartbeat }],
    [
      'initialTtl above the heartbeat budget',
      { ...envelope, initialTtl: 3, code: GossipCode.heartbeat },
    ],
    [
      'initialTtl above the request budget',
      { ...envelope, initialTtl: 17, code: GossipCode.peerRequest, lookupKey, maxResults: 1 },
    ],
    [
      'a 15-byte message ID',
      { ...envelope, messageId: new Uint8Array(15), code: GossipCode.heartbeat },
    ],
    ['a negative timestamp', { ...envelope, timestampMs: -1, code: GossipCode.heartbeat }],
    [
      'maxResults 0',
      { ...envelope, code: GossipCode.peerRequest, lookupKey: undefined, maxResults: 0 },
    ],
    [
      'maxResults 17',
      { ...envelope, code: GossipCode.peerRequest, lookupKey: undefined, maxResults: 17 },
    ],
    [
      '17 records',
      {
        ...envelope,
        code: GossipCode.peerListResponse,
        requestId: messageId,
        records: Array<Uint8Array>(17).fill(aliceRecord),
      },
    ],
    [
      'the same record twice',
      {
        ...envelope,
        code: GossipCode.peerListResponse,
        requestId: messageId,
        records: [aliceRecord, aliceRecord],
      },
    ],
    ['no content entry', { ...envelope, code: GossipCode.contentAvailability, entries: [] }],
    [
      '65 content entries',
      {
        ...envelope,
        code: GossipCode.contentAvailability,
        entries: Array.from({ length: 65 }, (_, i) => ({
          lookupKey: new Uint8Array(32).fill(i),
          held: true,
        })),
      },
    ],
  ];
  for (const [name, message] of cases) {
    test(`${name}: PEAPOD_ERR_INVALID_ARGUMENT`, () => {
      assert.throws(() => encodeGossip(crypto, alice, message), {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
      });
    });
  }
});

describe('gossip codec: decodeGossip rejects (hand-built, correctly signed)', () => {
  const P = {
    announce: GossipCode.peerAnnouncement,
    request: GossipCode.peerRequest,
    list: GossipCode.peerListResponse,
    heartbeat: GossipCode.heartbeat,
    content: GossipCode.contentAvailability,
  };
  const prefixed = (record: Uint8Array): Uint8Array => concatBytes(u16(record.length), record);
  const listOf = (...records: Uint8Array[]): Uint8Array =>
    concatBytes(new Uint8Array(16), Uint8Array.of(records.length), ...records.map(prefixed));
  const entry = (fill: number, flags = 1): Uint8Array =>
    concatBytes(new Uint8Array(32).fill(fill), Uint8Array.of(flags));
  const silentWithAddress = rawRecord(alice, { flags: 0, hosts: [utf8Encode('192.0.2.1')] });
  const big = concatBytes(
    new Uint8Array(16),
    Uint8Array.of(16),
    ...Array<Uint8Array>(16).fill(prefixed(new Uint8Array(2100))),
  );
  const table: Array<[string, number, Uint8Array, GossipRejection]> = [
    ['a body shorter than the envelope', P.heartbeat, new Uint8Array(121), 'malformed'],
    ['a code outside 0x40-0x45', 0x46, rawBody(0x46, new Uint8Array(0)), 'malformed'],
    [
      'a heartbeat with a trailing byte',
      P.heartbeat,
      rawBody(P.heartbeat, Uint8Array.of(0)),
      'malformed',
    ],
    [
      'a timestamp above 2^53 - 1',
      P.heartbeat,
      rawBody(P.heartbeat, new Uint8Array(0), { timestamp: new Uint8Array(8).fill(0xff) }),
      'malformed',
    ],
    [
      'an announcement record length past the end',
      P.announce,
      rawBody(P.announce, concatBytes(u16(aliceRecord.length + 1), aliceRecord), {
        initialTtl: 32,
      }),
      'malformed',
    ],
    [
      'an announcement with a byte after its record',
      P.announce,
      rawBody(P.announce, concatBytes(prefixed(aliceRecord), Uint8Array.of(0)), { initialTtl: 32 }),
      'malformed',
    ],
    [
      'a request flag with unknown bits',
      P.request,
      rawBody(P.request, Uint8Array.of(2, 1)),
      'malformed',
    ],
    [
      'a request whose content ID is truncated',
      P.request,
      rawBody(P.request, concatBytes(Uint8Array.of(1), new Uint8Array(31))),
      'malformed',
    ],
    [
      'a request with maxResults 0',
      P.request,
      rawBody(P.request, Uint8Array.of(0, 0)),
      'malformed',
    ],
    [
      'a request with maxResults 17',
      P.request,
      rawBody(P.request, Uint8Array.of(0, 17)),
      'malformed',
    ],
    [
      'a list response with count 17',
      P.list,
      rawBody(P.list, concatBytes(new Uint8Array(16), Uint8Array.of(17))),
      'malformed',
    ],
    [
      'a list response with one record short of its count',
      P.list,
      rawBody(
        P.list,
        listOf(aliceRecord).map((b, i) => (i === 16 ? 2 : b)),
      ),
      'malformed',
    ],
    [
      'a list response with the same key twice',
      P.list,
      rawBody(P.list, listOf(aliceRecord, aliceRecord)),
      'malformed',
    ],
    [
      'a list response carrying an address without the broadcast flag (hand-built record)',
      P.list,
      rawBody(P.list, listOf(silentWithAddress)),
      'malformed',
    ],
    [
      'a content message with no entry',
      P.content,
      rawBody(P.content, Uint8Array.of(0)),
      'malformed',
    ],
    [
      'a content message with 65 entries',
      P.content,
      rawBody(
        P.content,
        concatBytes(Uint8Array.of(65), ...Array.from({ length: 65 }, (_, i) => entry(i))),
      ),
      'malformed',
    ],
    [
      'a content entry with unknown flag bits',
      P.content,
      rawBody(P.content, concatBytes(Uint8Array.of(1), entry(1, 3))),
      'malformed',
    ],
    [
      'a content ID listed twice',
      P.content,
      rawBody(P.content, concatBytes(Uint8Array.of(2), entry(1), entry(1, 0))),
      'malformed',
    ],
    [
      'ttl above initialTtl',
      P.heartbeat,
      rawBody(P.heartbeat, new Uint8Array(0), { ttl: 3 }),
      'ttl-inflated',
    ],
    [
      'a heartbeat with initialTtl 3 (budget 2)',
      P.heartbeat,
      rawBody(P.heartbeat, new Uint8Array(0), { ttl: 1, initialTtl: 3 }),
      'ttl-inflated',
    ],
    [
      'a request with initialTtl 17 (budget 16)',
      P.request,
      rawBody(P.request, Uint8Array.of(0, 1), { initialTtl: 17 }),
      'ttl-inflated',
    ],
    [
      'an announcement with initialTtl 33 (budget 32)',
      P.announce,
      rawBody(P.announce, prefixed(aliceRecord), { initialTtl: 33 }),
      'ttl-inflated',
    ],
    ['ttl 0', P.heartbeat, rawBody(P.heartbeat, new Uint8Array(0), { ttl: 0 }), 'malformed'],
    [
      'ttl 0 and initialTtl 0',
      P.heartbeat,
      rawBody(P.heartbeat, new Uint8Array(0), { ttl: 0, initialTtl: 0 }),
      'malformed',
    ],
    ['a body over 32 KiB', P.list, rawBody(P.list, big), 'oversized'],
    [
      "an announcement of another key's record",
      P.announce,
      rawBody(P.announce, prefixed(bobSilent)),
      'record-mismatch',
    ],
    [
      'an announcement of a record with unknown flag bits',
      P.announce,
      rawBody(P.announce, prefixed(rawRecord(alice, { flags: 0x81 }))),
      'record-mismatch',
    ],
    [
      'an announcement carrying an address without the broadcast flag (hand-built record)',
      P.announce,
      rawBody(P.announce, prefixed(silentWithAddress)),
      'record-mismatch',
    ],
    [
      'an announcement of a record whose name is not UTF-8',
      P.announce,
      rawBody(P.announce, prefixed(rawRecord(alice, { name: Uint8Array.of(0xe2, 0x82) }))),
      'record-mismatch',
    ],
    [
      'an announcement of a record with a bad host character',
      P.announce,
      rawBody(P.announce, prefixed(rawRecord(alice, { hosts: [utf8Encode('host_name')] }))),
      'record-mismatch',
    ],
    [
      'an update of a record with a trailing byte',
      GossipCode.peerUpdate,
      rawBody(GossipCode.peerUpdate, prefixed(rawRecord(alice, { trailing: Uint8Array.of(0) }))),
      'record-mismatch',
    ],
  ];

  test('the control frames of this table decode and verify', () => {
    for (const [code, body] of [
      [P.heartbeat, rawBody(P.heartbeat, new Uint8Array(0))],
      [P.list, rawBody(P.list, listOf(aliceRecord, bobSilent))],
      [P.announce, rawBody(P.announce, prefixed(aliceRecord))],
      [P.content, rawBody(P.content, concatBytes(Uint8Array.of(2), entry(1), entry(2, 0)))],
    ] as const) {
      const frame = frameOf(code, body);
      assert.ok(decodeGossip(frame).ok);
      assert.ok(verifyGossip(crypto, frame));
    }
    assert.ok(big.length + 58 + 64 > GossipLimits.bodyBytes);
  });

  for (const [name, code, body, rejection] of table) {
    test(`${name}: '${rejection}'`, () => {
      const result = decodeGossip(frameOf(code, body));
      assert.equal(result.ok, false, `accepted: ${name}`);
      if (!result.ok) assert.equal(result.rejection, rejection, result.detail);
    });
  }
});

describe('gossip codec: signature coverage', () => {
  for (const [name, message] of examples) {
    // One flip per byte (bit i mod 8 of byte i) reaches every byte and every bit position, at an
    // eighth of the signature checks of flipping all bits (noble's verify is ~2 ms here).
    test(`${name}: a flipped bit in any byte after ttl fails decode or verify`, () => {
      const frame = encodeGossip(crypto, alice, message);
      for (let at = 1; at < frame.body.length; at++) {
        const body = frame.body.slice();
        body[at]! ^= 1 << (at % 8);
        const copy = frameOf(frame.code, body);
        const accepted = decodeGossip(copy).ok && verifyGossip(crypto, copy);
        assert.equal(accepted, false, `byte ${at} changed, still accepted`);
      }
    });
  }

  test('the type code is signed: the same body under another code does not verify', () => {
    const frame = encodeGossip(crypto, alice, {
      ...envelope,
      code: GossipCode.peerUpdate,
      record: aliceRecord,
    });
    assert.equal(verifyGossip(crypto, frameOf(GossipCode.peerAnnouncement, frame.body)), false);
  });

  test('withTtl changes byte 0 only and the signature stays valid', () => {
    const frame = encodeGossip(crypto, alice, {
      ...envelope,
      ttl: 31,
      initialTtl: 32,
      code: GossipCode.peerAnnouncement,
      record: aliceRecord,
    });
    for (const ttl of [30, 1]) {
      const relayed = withTtl(frame, ttl);
      assert.equal(relayed.body[0], ttl);
      assert.deepEqual(relayed.body.subarray(1), frame.body.subarray(1));
      assert.ok(verifyGossip(crypto, relayed));
      const result = decodeGossip(relayed);
      assert.ok(result.ok && result.message.ttl === ttl);
    }
    assert.equal(frame.body[0], 31, 'withTtl must not modify its input');
  });

  test('withTtl refuses a ttl outside 1..255', () => {
    const frame = encodeGossip(crypto, alice, { ...envelope, code: GossipCode.heartbeat });
    for (const ttl of [0, -1, 256, 1.5]) {
      assert.throws(() => withTtl(frame, ttl), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
    }
  });

  test('a frame signed by bob but naming alice as origin does not verify', () => {
    const frame = encodeGossip(crypto, bob, { ...envelope, code: GossipCode.heartbeat });
    const body = frame.body.slice();
    body.set(alice.publicKey, 17);
    assert.equal(verifyGossip(crypto, frameOf(frame.code, body)), false);
  });
});

describe('gossip codec: fast-check', () => {
  const codes = Object.values(GossipCode);

  test('arbitrary bodies never throw and never verify', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...codes, 0x46, 0),
        fc.uint8Array({ maxLength: 600 }),
        (code, body) => {
          const frame = frameOf(code, body);
          decodeGossip(frame);
          assert.equal(verifyGossip(crypto, frame), false);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  test('arbitrary bodies behind a valid envelope header never throw', () => {
    const header = encodeGossip(crypto, alice, {
      ...envelope,
      code: GossipCode.heartbeat,
    }).body.subarray(0, 58);
    fc.assert(
      fc.property(fc.constantFrom(...codes), fc.uint8Array({ maxLength: 1500 }), (code, rest) => {
        decodeGossip(frameOf(code, concatBytes(header, rest)));
      }),
      { numRuns: 10_000 },
    );
  });

  test('mutated valid frames never throw and never verify unless the signed part is unchanged', () => {
    const frames = examples.map(([, message]) => encodeGossip(crypto, alice, message));
    fc.assert(
      fc.property(
        fc.constantFrom(...frames),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: -3, max: 3 }),
        (frame, edits, lengthChange) => {
          let body: Uint8Array = frame.body.slice();
          for (const [at, value] of edits) body[at % body.length] = value;
          if (lengthChange < 0) body = body.subarray(0, body.length + lengthChange);
          if (lengthChange > 0) body = concatBytes(body, new Uint8Array(lengthChange));
          const copy = frameOf(frame.code, body);
          const accepted = decodeGossip(copy).ok && verifyGossip(crypto, copy);
          const unchanged =
            body.length === frame.body.length &&
            body.subarray(1).every((b, i) => b === frame.body[i + 1]);
          if (accepted) assert.ok(unchanged, 'a changed signed part was accepted');
          if (unchanged && body[0]! >= 1 && body[0]! <= frame.body[0]!) assert.ok(accepted);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  test('any valid request or content message round-trips', () => {
    const request = fc.record({
      code: fc.constant(GossipCode.peerRequest),
      initialTtl: fc.integer({ min: 1, max: 16 }),
      lookupKey: fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
      maxResults: fc.integer({ min: 1, max: 16 }),
    });
    const content = fc.record({
      code: fc.constant(GossipCode.contentAvailability),
      initialTtl: fc.integer({ min: 1, max: 32 }),
      entries: fc.uniqueArray(
        fc
          .record({
            lookupKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
            held: fc.boolean(),
          })
          .map((e) => ({ ...e })),
        { minLength: 1, maxLength: 64, selector: (e) => e.lookupKey.join() },
      ),
    });
    fc.assert(
      fc.property(
        fc.oneof(request, content),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.nat(),
        (body, id, timestampMs, ttlSeed) => {
          const message = {
            ...body,
            ttl: 1 + (ttlSeed % body.initialTtl),
            messageId: id,
            timestampMs,
          } as UnsignedGossip;
          const frame = encodeGossip(crypto, bob, message);
          const result = decodeGossip(frame);
          assert.ok(result.ok);
          const { signature: _s, originPublicKey: _o, ...rest } = result.message;
          assert.deepEqual(rest, message);
          assert.ok(verifyGossip(crypto, frame));
        },
      ),
      { numRuns: 300 },
    );
  });
});
