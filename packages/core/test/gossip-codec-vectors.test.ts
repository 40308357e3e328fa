/**
 * Golden vectors (test/vectors/gossip-v1.json, made by gossip-v1.py from docs/protocol.md
 * section 11 alone, with its own RFC 8032 Ed25519): the TypeScript encoders must produce exactly
 * those bytes from the same seeds and fields, and the decoders and verifiers must accept them
 * and read back the same fields.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { concatBytes, fromHex, toHex } from '../src/bytes.js';
import type { KeyPair } from '../src/crypto-provider.js';
import {
  decodeGossip,
  encodeGossip,
  verifyGossip,
  type UnsignedGossip,
} from '../src/gossip/gossip-codec.js';
import { lookupKeyOf } from '../src/gossip/lookup-key.js';
import { GossipCode } from '../src/gossip/messages.js';
import {
  buildPeerRecord,
  openPeerRecord,
  type PeerRecordFields,
} from '../src/gossip/peer-record.js';
import { crypto, keyFromSeed } from './gossip-codec-fixture.js';

interface RawVectors {
  keys: Array<{ name: string; seed: string; publicKey: string }>;
  records: Array<{ name: string; key: string; fields: PeerRecordFields; bytes: string }>;
  messages: Array<{ name: string; key: string; message: Record<string, unknown>; body: string }>;
}

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  assert.ok(bytes, `bad hex in vectors: ${text.slice(0, 40)}`);
  return bytes;
}

function load(): RawVectors {
  const candidates = [
    new URL('./vectors/gossip-v1.json', import.meta.url),
    new URL('../../test/vectors/gossip-v1.json', import.meta.url),
  ];
  const url = candidates.find((candidate) => existsSync(candidate));
  assert.ok(url, 'test/vectors/gossip-v1.json not found');
  return JSON.parse(readFileSync(url, 'utf8')) as RawVectors;
}

/**
 * The JSON message (hex strings, null for absent) as the codec's UnsignedGossip. A `contentId`
 * beside a `lookupKey` is the example content the key blinds: checked against lookupKeyOf and
 * left out of the message (gossip never carries it).
 */
function parseMessage(raw: Record<string, unknown>): UnsignedGossip {
  const out: Record<string, unknown> = {};
  const blinded = (entry: { lookupKey: string; contentId?: string }): Uint8Array => {
    const key = hex(entry.lookupKey);
    if (entry.contentId !== undefined)
      assert.equal(toHex(lookupKeyOf(crypto, hex(entry.contentId))), entry.lookupKey);
    return key;
  };
  for (const [name, value] of Object.entries(raw)) {
    if (name === 'contentId') continue;
    if (value === null) out[name] = undefined;
    else if (name === 'records') out[name] = (value as string[]).map(hex);
    else if (name === 'lookupKey')
      out[name] = blinded({ lookupKey: value as string, contentId: raw['contentId'] as string });
    else if (name === 'entries') {
      type RawEntry = { lookupKey: string; contentId?: string; held: boolean };
      out[name] = (value as RawEntry[]).map((e) => ({ lookupKey: blinded(e), held: e.held }));
    } else if (typeof value === 'string') out[name] = hex(value);
    else out[name] = value;
  }
  return out as unknown as UnsignedGossip;
}

const vectors = load();
const keys = new Map<string, KeyPair>(
  vectors.keys.map((k) => {
    const pair = keyFromSeed(hex(k.seed));
    assert.equal(toHex(pair.publicKey), k.publicKey, `public key of ${k.name}`);
    return [k.name, pair];
  }),
);
function keyOf(name: string): KeyPair {
  const key = keys.get(name);
  assert.ok(key, `unknown key ${name}`);
  return key;
}

describe('gossip golden vectors (test/vectors/gossip-v1.json)', () => {
  test('cover every gossip type, a broadcasting and a silent record, and a table sync', () => {
    const codes = new Set(vectors.messages.map((m) => m.message['code']));
    for (const code of Object.values(GossipCode)) assert.ok(codes.has(code), `code ${code}`);
    assert.ok(vectors.records.some((r) => r.fields.addresses.length > 0));
    assert.ok(vectors.records.some((r) => !r.fields.broadcast));
    assert.ok(
      vectors.messages.some(
        (m) =>
          m.message['code'] === GossipCode.peerListResponse &&
          /^0+$/.test(String(m.message['requestId'])),
      ),
    );
  });

  for (const vector of vectors.records) {
    test(`record "${vector.name}": built byte for byte, decoded to its fields, verified`, () => {
      const key = keyOf(vector.key);
      const bytes = buildPeerRecord(crypto, key, vector.fields);
      assert.equal(toHex(bytes), vector.bytes);
      const result = openPeerRecord(crypto, hex(vector.bytes));
      assert.ok(result.ok, result.ok ? '' : result.detail);
      const { publicKey, signature: _s, bytes: _b, signedBytes: _sb, ...fields } = result.record;
      assert.deepEqual(fields, vector.fields);
      assert.deepEqual(publicKey, key.publicKey);
    });
  }

  for (const vector of vectors.messages) {
    test(`message "${vector.name}": encoded byte for byte, decoded to its fields, verified`, () => {
      const key = keyOf(vector.key);
      const message = parseMessage(vector.message);
      const frame = encodeGossip(crypto, key, message);
      assert.equal(toHex(frame.body), vector.body);
      const golden = { type: 'gossip' as const, code: message.code, body: hex(vector.body) };
      const result = decodeGossip(golden);
      assert.ok(result.ok, result.ok ? '' : result.detail);
      const { signature, originPublicKey, ...rest } = result.message;
      assert.deepEqual(rest, message);
      assert.deepEqual(originPublicKey, key.publicKey);
      assert.deepEqual(signature, golden.body.subarray(golden.body.length - 64));
      assert.ok(verifyGossip(crypto, golden));
    });

    test(`message "${vector.name}": every strict prefix and a trailing byte are refused`, () => {
      const body = hex(vector.body);
      const code = vector.message['code'] as number;
      const variants = [
        ...Array.from({ length: body.length }, (_, n) => body.subarray(0, n)),
        concatBytes(body, Uint8Array.of(0)),
      ];
      for (const variant of variants) {
        const frame = { type: 'gossip' as const, code, body: variant };
        const accepted = decodeGossip(frame).ok && verifyGossip(crypto, frame);
        assert.equal(accepted, false, `${variant.length} of ${body.length} bytes accepted`);
      }
    });
  }
});
