/**
 * Discovery beacon tests (src/discovery/beacon.ts, docs/protocol.md "Discovery beacons").
 *
 * 1. Golden vectors (test/vectors/beacon-v1.json, frozen hex), both directions: encoding with the
 *    vector's nonce and beacon ID gives its bytes; decoding its bytes gives its fields. Each is
 *    also rebuilt independently with node:crypto (hkdfSync, chacha20-poly1305), so the vectors
 *    pin the spec, not just this implementation. Truncated and extended copies are rejected.
 * 2. Tables: every rejection reason, the window edges, the replay cache's bounds, caller misuse.
 * 3. fast-check properties, 10 000 runs each: round trip; arbitrary bytes (and mutated beacons)
 *    never throw; a beacon never decodes under another pod's secret. On failure fast-check
 *    prints the seed and the shrunk counterexample.
 */
import assert from 'node:assert/strict';
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex } from '../src/bytes.js';
import type { CryptoProvider } from '../src/crypto-provider.js';
import { createNobleCryptoProvider } from '../src/crypto/noble-crypto-provider.js';
import {
  BEACON_BYTES,
  BEACON_WINDOW_MS,
  BeaconCodec,
  BeaconReplayCache,
  deriveBeaconKey,
  type Beacon,
  type BeaconDecodeResult,
  type BeaconFields,
  type BeaconKind,
  type BeaconRejectReason,
} from '../src/discovery/beacon.js';

const NUM_RUNS = 10_000;

interface BeaconVector {
  readonly name: string;
  readonly podSecret: string;
  readonly beaconKey: string;
  readonly nonce: string;
  readonly beacon: {
    readonly kind: BeaconKind;
    readonly deviceId: string;
    readonly peerPort: number;
    readonly timestampMs: number;
    readonly beaconId: string;
  };
  readonly bytes: string;
}

/** The package root, whether this runs from test/ (tsx) or dist/test/ (compiled). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const vectors = JSON.parse(
  readFileSync(join(packageRoot(), 'test', 'vectors', 'beacon-v1.json'), 'utf8'),
) as BeaconVector[];

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  assert.ok(bytes !== undefined, `bad hex in test: ${text}`);
  return bytes;
}

const crypto = createNobleCryptoProvider({
  randomBytes: (length) => new Uint8Array(randomBytes(length)),
});

/** A provider whose randomBytes hands out `draws` in order, then fails the test. */
function scriptedCrypto(...draws: Uint8Array[]): CryptoProvider {
  return createNobleCryptoProvider({
    randomBytes(length) {
      const next = draws.shift();
      assert.ok(next !== undefined && next.length === length, `unexpected randomBytes(${length})`);
      return next;
    },
  });
}

/** Seals `plaintext` as a beacon under `podSecret` with node:crypto: an independent encoder. */
function nodeSeal(podSecret: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const info = Buffer.from('peapod/discovery-beacon/v1');
  const key = Buffer.from(hkdfSync('sha256', podSecret, new Uint8Array(0), info, 32));
  const header = Buffer.from('PEAB\x01', 'latin1');
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(header, { plaintextLength: plaintext.length });
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return new Uint8Array(Buffer.concat([header, nonce, sealed]));
}

/** The 59-byte plaintext of a beacon, laid out by hand from docs/protocol.md. */
function plaintextOf(kindCode: number, beacon: Omit<Beacon, 'kind'>): Uint8Array {
  const out = Buffer.alloc(59);
  out[0] = kindCode;
  out.set(beacon.deviceId, 1);
  out.writeUInt16BE(beacon.peerPort, 33);
  out.writeBigUInt64BE(BigInt(beacon.timestampMs), 35);
  out.set(beacon.beaconId, 43);
  return new Uint8Array(out);
}

function expectReject(result: BeaconDecodeResult, reason: BeaconRejectReason): void {
  if (result.ok) assert.fail(`expected ${reason}, got a beacon`);
  assert.equal(result.reason, reason, result.detail);
}

function expectOk(result: BeaconDecodeResult): Beacon {
  if (!result.ok) assert.fail(`expected a beacon, got ${result.reason}: ${result.detail}`);
  return result.beacon;
}

function beaconJson(beacon: Beacon): object {
  return { ...beacon, deviceId: toHex(beacon.deviceId), beaconId: toHex(beacon.beaconId) };
}

const SECRET_A = hex('a1'.repeat(32));
const SECRET_B = hex('b2'.repeat(32));
const DEVICE = hex('d0'.repeat(32));
const NOW = 1_767_225_600_000;

function announce(timestampMs = NOW): BeaconFields {
  return { kind: 'announce', deviceId: DEVICE, peerPort: 9000, timestampMs };
}

describe('golden vectors (vectors/beacon-v1.json)', () => {
  test('the file has the agreed cases', () => {
    assert.deepEqual(
      vectors.map((v) => v.name),
      ['announce', 'query, port 65535, timestamp 0', 'reply, timestamp 2^53 - 1'],
    );
  });

  for (const v of vectors) {
    test(`${v.name}: key, encode, decode, independent node:crypto encoding`, () => {
      const podSecret = hex(v.podSecret);
      const bytes = hex(v.bytes);
      assert.equal(bytes.length, BEACON_BYTES);
      assert.equal(toHex(deriveBeaconKey(crypto, podSecret)), v.beaconKey);

      const sender = new BeaconCodec({
        crypto: scriptedCrypto(hex(v.nonce), hex(v.beacon.beaconId)),
        podSecret,
      });
      const fields = { ...v.beacon, deviceId: hex(v.beacon.deviceId) };
      assert.equal(toHex(sender.encode(fields)), v.bytes);

      const kindCode = { announce: 1, query: 2, reply: 3 }[v.beacon.kind];
      const plaintext = plaintextOf(kindCode, { ...fields, beaconId: hex(v.beacon.beaconId) });
      assert.equal(toHex(nodeSeal(podSecret, hex(v.nonce), plaintext)), v.bytes);

      const receiver = new BeaconCodec({ crypto, podSecret });
      const beacon = expectOk(receiver.decode(bytes, v.beacon.timestampMs));
      assert.deepEqual(beaconJson(beacon), v.beacon);
    });

    test(`${v.name}: every truncation and an extra byte are rejected`, () => {
      const bytes = hex(v.bytes);
      const receiver = new BeaconCodec({ crypto, podSecret: hex(v.podSecret) });
      for (let length = 0; length < bytes.length; length++) {
        const reason = length < 4 ? 'not-peapod' : length < 5 ? 'unsupported-version' : 'malformed';
        expectReject(receiver.decode(bytes.subarray(0, length), v.beacon.timestampMs), reason);
      }
      const extended = new Uint8Array(bytes.length + 1);
      extended.set(bytes);
      expectReject(receiver.decode(extended, v.beacon.timestampMs), 'malformed');
      expectOk(receiver.decode(bytes, v.beacon.timestampMs)); // nothing above was remembered
    });
  }
});

describe('rejections', () => {
  test('TSDoc example of BeaconCodec: accept once, then duplicate', () => {
    const sender = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const bytes = sender.encode(announce());
    assert.equal(expectOk(receiver.decode(bytes, NOW)).peerPort, 9000);
    expectReject(receiver.decode(bytes, NOW), 'duplicate');
  });

  test('not PeaPod, another version, another pod, tampered', () => {
    const sender = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const bytes = sender.encode(announce());
    expectReject(receiver.decode(new Uint8Array(0), NOW), 'not-peapod');
    expectReject(receiver.decode(Uint8Array.of(0x50, 0x45, 0x41, 0x4d, 1), NOW), 'not-peapod');
    const v2 = bytes.slice();
    v2[4] = 2;
    expectReject(receiver.decode(v2, NOW), 'unsupported-version');
    const outsider = new BeaconCodec({ crypto, podSecret: SECRET_B });
    expectReject(outsider.decode(bytes, NOW), 'wrong-pod-or-tampered');
    // Every byte after the magic and version is authenticated (nonce, ciphertext, tag).
    for (let i = 5; i < bytes.length; i++) {
      const tampered = bytes.slice();
      tampered[i]! ^= 0x01;
      expectReject(receiver.decode(tampered, NOW), 'wrong-pod-or-tampered');
    }
    expectOk(receiver.decode(bytes, NOW));
  });

  test('authentic beacons with fields out of range are malformed', () => {
    const base = {
      deviceId: DEVICE,
      peerPort: 9000,
      timestampMs: NOW,
      beaconId: new Uint8Array(16),
    };
    const cases: [string, Uint8Array][] = [
      ['kind 0', plaintextOf(0, base)],
      ['kind 4', plaintextOf(4, base)],
      ['port 0', plaintextOf(1, { ...base, peerPort: 0 })],
    ];
    const bigTimestamp = plaintextOf(1, base);
    new DataView(bigTimestamp.buffer).setBigUint64(35, 2n ** 53n);
    cases.push(['timestamp 2^53', bigTimestamp]);
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    for (const [name, plaintext] of cases) {
      const result = receiver.decode(nodeSeal(SECRET_A, new Uint8Array(12), plaintext), NOW);
      assert.ok(!result.ok && result.reason === 'malformed', `${name}: ${JSON.stringify(result)}`);
    }
  });

  test('the window is +-30 s inclusive, in both directions', () => {
    const sender = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    for (const offsetMs of [-BEACON_WINDOW_MS, 0, BEACON_WINDOW_MS]) {
      expectOk(receiver.decode(sender.encode(announce(NOW + offsetMs)), NOW));
    }
    for (const offsetMs of [-BEACON_WINDOW_MS - 1, BEACON_WINDOW_MS + 1]) {
      expectReject(receiver.decode(sender.encode(announce(NOW + offsetMs)), NOW), 'stale');
    }
    // A stale beacon is not remembered: the same bytes are fine where the clock agrees.
    const late = sender.encode(announce(NOW + BEACON_WINDOW_MS + 1));
    expectReject(receiver.decode(late, NOW), 'stale');
    expectOk(receiver.decode(late, NOW + BEACON_WINDOW_MS + 1));
  });

  test('a replay is refused for as long as its timestamp is inside the window', () => {
    const sender = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const bytes = sender.encode(announce(NOW));
    expectOk(receiver.decode(bytes, NOW));
    expectReject(receiver.decode(bytes, NOW + BEACON_WINDOW_MS), 'duplicate');
    expectReject(receiver.decode(bytes, NOW + BEACON_WINDOW_MS + 1), 'stale');
  });
});

describe('BeaconReplayCache', () => {
  function beaconWithId(id: number, timestampMs: number): Beacon {
    const beaconId = new Uint8Array(16);
    new DataView(beaconId.buffer).setUint32(0, id);
    return { ...announce(timestampMs), beaconId };
  }

  test('forgets expired IDs and stays within entriesMax', () => {
    const cache = new BeaconReplayCache({ windowMs: 1000, entriesMax: 3 });
    assert.equal(cache.admit(beaconWithId(1, 0), 0), 'fresh');
    assert.equal(cache.admit(beaconWithId(1, 0), 1000), 'duplicate');
    assert.equal(cache.admit(beaconWithId(2, 500), 1000), 'fresh');
    assert.equal(cache.size, 2);
    assert.equal(cache.admit(beaconWithId(3, 1001), 1001), 'fresh'); // ID 1 expired (0 + 1000 < 1001)
    assert.equal(cache.size, 2);
    assert.equal(cache.admit(beaconWithId(4, 1001), 1001), 'fresh');
    assert.equal(cache.admit(beaconWithId(5, 1001), 1001), 'fresh'); // full: evicts ID 2
    assert.equal(cache.size, 3);
    assert.equal(cache.admit(beaconWithId(2, 500), 1001), 'fresh');
    assert.equal(cache.admit(beaconWithId(5, 1001), 1001), 'duplicate');
  });

  test('rejects a bad window or size', () => {
    for (const options of [{ windowMs: 0 }, { windowMs: 1.5 }, { entriesMax: 0 }]) {
      assert.throws(() => new BeaconReplayCache(options), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
    }
  });
});

describe('caller misuse throws PEAPOD_ERR_INVALID_ARGUMENT naming the argument', () => {
  test('pod secret', () => {
    for (const podSecret of [new Uint8Array(31), new Uint8Array(33)]) {
      assert.throws(() => new BeaconCodec({ crypto, podSecret }), {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
        message: /^podSecret: /,
      });
    }
  });

  test('fields', () => {
    const codec = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const cases: [Partial<Record<keyof BeaconFields, unknown>>, RegExp][] = [
      [{ kind: 'goodbye' }, /^kind: /],
      [{ deviceId: new Uint8Array(31) }, /^deviceId: /],
      [{ peerPort: 0 }, /^peerPort: /],
      [{ peerPort: 65536 }, /^peerPort: /],
      [{ peerPort: 80.5 }, /^peerPort: /],
      [{ timestampMs: -1 }, /^timestampMs: /],
      [{ timestampMs: 2 ** 53 }, /^timestampMs: /],
    ];
    for (const [patch, message] of cases) {
      const fields = { ...announce(), ...patch } as BeaconFields;
      assert.throws(() => codec.encode(fields), { code: 'PEAPOD_ERR_INVALID_ARGUMENT', message });
    }
  });
});

describe('properties (fast-check)', () => {
  const fieldsArbitrary = fc.record({
    kind: fc.constantFrom<BeaconKind>('announce', 'query', 'reply'),
    deviceId: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    peerPort: fc.integer({ min: 1, max: 65535 }),
    // Leaves room for the receiver clock skew below to stay a safe integer.
    timestampMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - BEACON_WINDOW_MS }),
  });
  const secretArbitrary = fc.uint8Array({ minLength: 32, maxLength: 32 });

  test('round trip: what is encoded decodes to the same fields, once', () => {
    fc.assert(
      fc.property(
        secretArbitrary,
        fieldsArbitrary,
        fc.integer({ min: -BEACON_WINDOW_MS, max: BEACON_WINDOW_MS }),
        (podSecret, fields, skewMs) => {
          const sender = new BeaconCodec({ crypto, podSecret });
          const receiver = new BeaconCodec({ crypto, podSecret });
          const bytes = sender.encode(fields);
          assert.equal(bytes.length, BEACON_BYTES);
          const beacon = expectOk(receiver.decode(bytes, fields.timestampMs + skewMs));
          assert.deepEqual({ ...beacon, beaconId: undefined }, { ...fields, beaconId: undefined });
          assert.equal(beacon.beaconId.length, 16);
          expectReject(receiver.decode(bytes, fields.timestampMs), 'duplicate');
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  test('arbitrary bytes never throw and never decode', () => {
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const magicPrefixed = fc
      .uint8Array({ minLength: 0, maxLength: 120 })
      .map((tail) => Uint8Array.of(0x50, 0x45, 0x41, 0x42, 1, ...tail));
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 200 }), magicPrefixed),
        fc.integer({ min: -(2 ** 53), max: 2 ** 53 }),
        (bytes, nowMs) => {
          const result = receiver.decode(bytes, nowMs);
          assert.equal(result.ok, false);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  test('a mutated beacon never throws and never decodes', () => {
    const sender = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const receiver = new BeaconCodec({ crypto, podSecret: SECRET_A });
    const original = sender.encode(announce());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(BEACON_BYTES - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (flips) => {
          const bytes = original.slice();
          for (const [at, mask] of flips) bytes[at]! ^= mask;
          fc.pre(toHex(bytes) !== toHex(original)); // two flips of one byte can cancel out
          assert.equal(receiver.decode(bytes, NOW).ok, false);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  test('a beacon never decodes under another pod secret', () => {
    fc.assert(
      fc.property(secretArbitrary, secretArbitrary, fieldsArbitrary, (secretA, secretB, fields) => {
        fc.pre(toHex(secretA) !== toHex(secretB));
        const bytes = new BeaconCodec({ crypto, podSecret: secretA }).encode(fields);
        const outsider = new BeaconCodec({ crypto, podSecret: secretB });
        expectReject(outsider.decode(bytes, fields.timestampMs), 'wrong-pod-or-tampered');
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
