/**
 * Wire codec and record framing tests (docs/protocol.md).
 *
 * 1. Golden vectors (test/vectors/wire-v1.json, frozen hex): each runs both directions, and
 *    through the record framer whole, one byte at a time, and followed by the next record's
 *    first bytes (h11's test_io).
 * 2. A table of malformed frames, each with its expected reason and the field it names; a table
 *    of invalid messages the encoder must refuse.
 * 3. fast-check properties, 10 000 runs each: valid messages round-trip canonically; arbitrary
 *    and mutated frames never make decodeMessage throw, and any frame it accepts re-encodes to
 *    the same bytes; record streams split anywhere reassemble exactly and agree with a simple
 *    reference parser; oversized lengths are rejected before anything is buffered or sliced.
 *    On failure fast-check prints the seed and the shrunk counterexample.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex, utf8Encode } from '../src/bytes.js';
import {
  DATA_HEADER_BYTES,
  HASH_BYTES,
  MAX_DATA_BYTES,
  decodeMessage,
  encodeDataFrame,
  encodeMessage,
} from '../src/wire/codec.js';
import type { DecodeResult } from '../src/wire/codec.js';
import { Limits, MAX_FRAME_BYTES, MessageType, TransferStatus } from '../src/wire/messages.js';
import type { HttpHeader, IndexRange, WireMessage } from '../src/wire/messages.js';
import {
  MAX_RECORD_BYTES,
  RECORD_HEADER_BYTES,
  RecordStreamDecoder,
  frameRecord,
} from '../src/wire/record-framer.js';
import { ReasonCode } from '../src/wire/reason-codes.js';

const NUM_RUNS = 10_000;
const U32_MAX = 0xffff_ffff;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Hex with optional spaces, for readable tables. */
function hex(text: string): Uint8Array {
  const bytes = fromHex(text.replace(/\s+/g, ''));
  assert.ok(bytes, `bad hex in test: ${text}`);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function decodeOk(frame: Uint8Array): WireMessage {
  const result = decodeMessage(frame);
  if (!result.ok) assert.fail(`expected a message, got ${result.reason}: ${result.detail}`);
  return result.message;
}

/** Pushes `pieces` and drains after each, collecting records; fails on a stream error. */
function reassemble(decoder: RecordStreamDecoder, pieces: readonly Uint8Array[]): Uint8Array[] {
  const records: Uint8Array[] = [];
  for (const piece of pieces) {
    decoder.push(piece);
    for (;;) {
      const event = decoder.next();
      if (event.kind === 'need-data') break;
      if (event.kind !== 'record') assert.fail(`stream error: ${JSON.stringify(event)}`);
      records.push(event.record);
    }
  }
  return records;
}

/** Splits `bytes` at the given cut points (any numbers; reduced modulo the length). */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))];
  points.sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const point of points) {
    pieces.push(bytes.subarray(from, point));
    from = point;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// 1. Golden vectors

interface Vector {
  readonly name: string;
  readonly message: WireMessage;
  readonly frame: Uint8Array;
}

const byteFields = new Set(['chunkHash', 'contentId', 'bytes', 'body']);

function loadVectors(): Vector[] {
  // Runs from test/ under tsx and from dist/test/ after `tsc -b`.
  const candidates = [
    new URL('./vectors/wire-v1.json', import.meta.url),
    new URL('../../test/vectors/wire-v1.json', import.meta.url),
  ];
  const url = candidates.find((candidate) => existsSync(candidate));
  assert.ok(url, 'test/vectors/wire-v1.json not found');
  const raw = JSON.parse(readFileSync(url, 'utf8')) as {
    name: string;
    message: Record<string, unknown>;
    frame: string;
  }[];
  return raw.map(({ name, message, frame }) => {
    const fields = Object.entries(message).map(([key, value]) => [
      key,
      byteFields.has(key) ? hex(value as string) : value,
    ]);
    return { name, message: Object.fromEntries(fields) as WireMessage, frame: hex(frame) };
  });
}

const vectors = loadVectors();

describe('golden vectors (test/vectors/wire-v1.json)', () => {
  test('cover every message type and the edge cases', () => {
    const types = new Set(vectors.map((v) => v.message.type));
    for (const type of [
      'hello',
      'heartbeat',
      'goodbye',
      'chunk-request',
      'data',
      'cancel',
      'status',
      'chunk-announce',
      'chunk-remove',
      'fetch-assign',
      'rpc-request',
      'rpc-response',
      'rpc-error',
      'unknown',
    ]) {
      assert.ok(types.has(type as WireMessage['type']), `no vector for ${type}`);
    }
    assert.ok(
      vectors.some((v) => v.frame.length === MAX_FRAME_BYTES),
      'no max-size DATA vector',
    );
    assert.ok(
      vectors.some(
        (v) =>
          v.message.type === 'goodbye' &&
          utf8Encode(v.message.message).length === Limits.goodbyeMessageBytes,
      ),
    );
    assert.ok(
      vectors.some(
        (v) =>
          v.message.type === 'hello' &&
          utf8Encode(v.message.deviceName).length === Limits.deviceNameBytes,
      ),
    );
    assert.ok(
      vectors.some(
        (v) =>
          v.message.type === 'fetch-assign' && utf8Encode(v.message.url).length === Limits.urlBytes,
      ),
    );
    assert.ok(
      vectors.some(
        (v) =>
          v.message.type === 'chunk-announce' && v.message.ranges.length === Limits.announceRanges,
      ),
    );
  });

  for (const vector of vectors) {
    describe(vector.name, () => {
      test('encode == frozen frame', () => {
        assert.equal(toHex(encodeMessage(vector.message)), toHex(vector.frame));
      });

      test('decode(frame) deep-equals the message', () => {
        assert.deepStrictEqual(decodeOk(vector.frame), vector.message);
      });

      test('through the record framer: whole', () => {
        const records = reassemble(new RecordStreamDecoder(), [frameRecord(vector.frame)]);
        assert.equal(records.length, 1);
        assert.deepStrictEqual(decodeOk(records[0]!), vector.message);
      });

      test('through the record framer: one byte at a time', () => {
        const decoder = new RecordStreamDecoder();
        const stream = frameRecord(vector.frame);
        for (let i = 0; i < stream.length - 1; i++) {
          decoder.push(stream.subarray(i, i + 1));
          assert.equal(decoder.next().kind, 'need-data');
          assert.equal(decoder.bufferedBytes, i + 1);
        }
        decoder.push(stream.subarray(stream.length - 1));
        const event = decoder.next();
        assert.equal(event.kind, 'record');
        if (event.kind === 'record') assert.deepStrictEqual(decodeOk(event.record), vector.message);
        assert.equal(decoder.next().kind, 'need-data');
        assert.equal(decoder.bufferedBytes, 0);
        assert.equal(decoder.end(), undefined);
      });

      test("through the record framer: with the next record's first bytes after it", () => {
        const following = frameRecord(hex('02 00 00000001')); // a heartbeat ping
        for (const kept of [1, 2, 3]) {
          const decoder = new RecordStreamDecoder();
          decoder.push(concat(frameRecord(vector.frame), following.subarray(0, kept)));
          const event = decoder.next();
          assert.equal(event.kind, 'record');
          if (event.kind === 'record') {
            assert.deepStrictEqual(decodeOk(event.record), vector.message);
          }
          assert.equal(decoder.next().kind, 'need-data');
          assert.equal(decoder.bufferedBytes, kept, 'the following bytes stay buffered');
          assert.equal(decoder.end(), ReasonCode.truncated);
        }
        const decoder = new RecordStreamDecoder();
        decoder.push(concat(frameRecord(vector.frame), following.subarray(0, 3)));
        decoder.push(following.subarray(3));
        const first = decoder.next();
        const second = decoder.next();
        assert.ok(first.kind === 'record' && second.kind === 'record');
        assert.deepStrictEqual(decodeOk(second.record), {
          type: 'heartbeat',
          isReply: false,
          id: 1,
        });
        assert.equal(decoder.end(), undefined);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// 2a. Malformed frames

const P = ReasonCode.protocolError;
const zeros = (n: number): string => '00'.repeat(n);
const hash = 'ab'.repeat(32);

/** [name, frame hex, expected reason, a substring of the detail (usually the field)]. */
const malformedFrames: readonly (readonly [string, Uint8Array, ReasonCode, string])[] = [
  ['empty frame', new Uint8Array(0), P, 'empty frame'],
  [
    'frame above MAX_FRAME_BYTES',
    new Uint8Array(MAX_FRAME_BYTES + 1).fill(0x31),
    ReasonCode.frameTooLarge,
    'MAX_FRAME_BYTES',
  ],
  [
    'unknown type above MAX_FRAME_BYTES',
    new Uint8Array(MAX_FRAME_BYTES + 1).fill(0x40),
    ReasonCode.frameTooLarge,
    'MAX_FRAME_BYTES',
  ],
  ['hello: no body', hex('01'), P, 'hello.versionMin'],
  ['hello: versionMin 0', hex('01 00 01 00000000 0000 0000'), P, 'version 0 is reserved'],
  ['hello: versionMin above versionMax', hex('01 02 01 00000000 0000 0000'), P, 'hello.versionMin'],
  [
    'hello: deviceName cut short',
    hex('01 01 01 0000000f 2328 0006 6c6170'),
    P,
    'hello.deviceName: needs 6 bytes but only 3 remain',
  ],
  [
    'hello: deviceName length prefix cut short',
    hex('01 01 01 0000000f 2328 00'),
    P,
    'hello.deviceName length',
  ],
  [
    'hello: deviceName above its limit',
    hex(`01 01 01 00000000 0000 0041 ${'61'.repeat(65)}`),
    P,
    'hello.deviceName: length 65 exceeds the limit 64',
  ],
  [
    'hello: deviceName length 0xffff in a short frame',
    hex('01 01 01 00000000 0000 ffff 61'),
    P,
    'hello.deviceName: length 65535 exceeds',
  ],
  ['hello: trailing byte', hex('01 01 01 00000000 0000 0000 00'), P, 'hello: 1 trailing bytes'],
  ['heartbeat: kind 2', hex('02 02 00000001'), P, 'heartbeat.kind'],
  ['heartbeat: id cut short', hex('02 00 000000'), P, 'heartbeat.id'],
  ['heartbeat: trailing byte', hex('02 00 00000001 00'), P, 'trailing'],
  ['goodbye: invalid UTF-8 (0xff)', hex('03 0000 0001 ff'), P, 'goodbye.message: not valid UTF-8'],
  ['goodbye: overlong NUL (c0 80)', hex('03 0000 0002 c080'), P, 'not valid UTF-8'],
  ['goodbye: encoded surrogate (ed a0 80)', hex('03 0000 0003 eda080'), P, 'not valid UTF-8'],
  ['goodbye: cut multi-byte sequence (c3)', hex('03 0000 0001 c3'), P, 'not valid UTF-8'],
  [
    'goodbye: code point above U+10FFFF (f4 90 80 80)',
    hex('03 0000 0004 f4908080'),
    P,
    'not valid UTF-8',
  ],
  [
    'goodbye: message above its limit',
    hex(`03 0000 0101 ${'61'.repeat(257)}`),
    P,
    'goodbye.message: length 257',
  ],
  [
    'chunk-request: hash cut short',
    hex(`10 00000001 ${'ab'.repeat(31)}`),
    P,
    'chunk-request.chunkHash',
  ],
  ['chunk-request: no priority', hex(`10 00000001 ${hash}`), P, 'chunk-request.priority'],
  ['chunk-request: trailing byte', hex(`10 00000001 ${hash} 00 00`), P, 'trailing'],
  [
    'data: no payload',
    hex('11 00000007 0000000000000000'),
    P,
    'data.bytes: a DATA frame carries at least one byte',
  ],
  ['data: offset cut short', hex('11 00000007 00000000'), P, 'data.offset'],
  [
    'data: offset above 2^53 - 1',
    hex('11 00000001 0020000000000000 00'),
    P,
    'data.offset: u64 value exceeds 2^53 - 1',
  ],
  ['data: offset 2^64 - 1', hex('11 00000001 ffffffffffffffff 00'), P, 'data.offset'],
  [
    'data: offset + length above 2^53 - 1',
    hex('11 00000001 001fffffffffffff 00'),
    P,
    'data.bytes: offset + length',
  ],
  ['cancel: cut short', hex('12 000000'), P, 'cancel.requestId'],
  ['cancel: trailing byte', hex('12 00000001 00'), P, 'trailing'],
  [
    'status: unknown TransferStatus 8',
    hex('13 00000001 08 0000000000000000 0000'),
    P,
    'status.status: unknown TransferStatus 8',
  ],
  ['status: TransferStatus 255', hex('13 00000001 ff 0000000000000000 0000'), P, 'status.status'],
  [
    'status: length above 2^53 - 1',
    hex('13 00000001 00 ffffffff00000000 0000'),
    P,
    'status.length',
  ],
  [
    'status: message above its limit',
    hex(`13 00000001 00 ${zeros(8)} 0101 ${'61'.repeat(257)}`),
    P,
    'status.message: length 257',
  ],
  ['status: no message length', hex(`13 00000001 00 ${zeros(8)}`), P, 'status.message length'],
  [
    'chunk-announce: 1025 ranges (count checked before the bytes)',
    hex(`18 ${hash} 0401`),
    P,
    'chunk-announce.ranges: count 1025',
  ],
  [
    'chunk-announce: count claims more ranges than remain',
    hex(`18 ${hash} 0002 00000000 00000001`),
    P,
    'chunk-announce.ranges: needs 16 bytes but only 8 remain',
  ],
  [
    'chunk-announce: end equal to start',
    hex(`18 ${hash} 0001 00000005 00000005`),
    P,
    'chunk-announce.ranges[0]: end 5 must be greater than start 5',
  ],
  [
    'chunk-announce: end below start',
    hex(`18 ${hash} 0001 00000005 00000001`),
    P,
    'chunk-announce.ranges[0]',
  ],
  [
    'chunk-announce: overlapping ranges',
    hex(`18 ${hash} 0002 00000000 0000000a 00000005 00000014`),
    P,
    'chunk-announce.ranges[1]: start 5 is below',
  ],
  [
    'chunk-announce: unsorted ranges',
    hex(`18 ${hash} 0002 0000000a 00000014 00000000 00000005`),
    P,
    'chunk-announce.ranges[1]',
  ],
  [
    'chunk-announce: contentId cut short',
    hex(`18 ${'ab'.repeat(20)}`),
    P,
    'chunk-announce.contentId',
  ],
  ['chunk-announce: trailing bytes', hex(`18 ${hash} 0001 00000000 00000001 0000`), P, 'trailing'],
  ['chunk-remove: zero ranges', hex(`19 ${hash} 0000`), P, 'chunk-remove.ranges: count 0'],
  [
    'chunk-remove: overlapping ranges',
    hex(`19 ${hash} 0002 00000000 0000000a 00000009 00000014`),
    P,
    'chunk-remove.ranges[1]',
  ],
  [
    'fetch-assign: empty url',
    hex(`20 00000001 0000 ${zeros(8)} ${zeros(7)}01 0000 00`),
    P,
    'fetch-assign.url: length 0 is below the minimum 1',
  ],
  [
    'fetch-assign: url above its limit',
    hex(`20 00000001 2001 ${'61'.repeat(8193)} ${zeros(8)} ${zeros(7)}01 0000 00`),
    P,
    'fetch-assign.url: length 8193',
  ],
  [
    'fetch-assign: rangeEnd equal to rangeStart',
    hex(`20 00000001 0001 61 ${zeros(7)}05 ${zeros(7)}05 0000 00`),
    P,
    'fetch-assign.rangeEnd',
  ],
  [
    'fetch-assign: rangeEnd above 2^53 - 1',
    hex(`20 00000001 0001 61 ${zeros(8)} 0020000000000000 0000 00`),
    P,
    'fetch-assign.rangeEnd',
  ],
  [
    'fetch-assign: validator above its limit',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0101 ${'61'.repeat(257)} 00`),
    P,
    'fetch-assign.validator: length 257',
  ],
  [
    'fetch-assign: 33 headers',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0000 21`),
    P,
    'fetch-assign.headers: count 33',
  ],
  [
    'fetch-assign: header count claims more than remains',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0000 02 0001 61 0000`),
    P,
    'fetch-assign.headers: needs 8 bytes but only 5 remain',
  ],
  [
    'fetch-assign: header name with a space',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0000 01 0003 612062 0000`),
    P,
    'fetch-assign.headers[0].name: not an HTTP token',
  ],
  [
    'fetch-assign: empty header name',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0000 01 0000 0000`),
    P,
    'fetch-assign.headers[0].name: length 0',
  ],
  [
    'fetch-assign: header value with CR LF',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0000 01 0001 61 0004 610d0a62`),
    P,
    'fetch-assign.headers[0].value: contains control character 0x0d',
  ],
  [
    'fetch-assign: header value with DEL',
    hex(`20 00000001 0001 61 ${zeros(8)} ${zeros(7)}01 0000 01 0001 61 0001 7f`),
    P,
    'fetch-assign.headers[0].value',
  ],
  ['rpc-request: empty method', hex('30 00000001 0000'), P, 'rpc-request.method: length 0'],
  ['rpc-request: method cut short', hex('30 00000001 0005 6162'), P, 'rpc-request.method'],
  [
    'rpc-request: method above its limit',
    hex(`30 00000001 0101 ${'61'.repeat(257)}`),
    P,
    'rpc-request.method: length 257',
  ],
  ['rpc-response: callId cut short', hex('31 0000'), P, 'rpc-response.callId'],
  ['rpc-error: message cut short', hex('32 00000001 0194 0004 6e6f'), P, 'rpc-error.message'],
  [
    'rpc-error: message above its limit',
    hex(`32 00000001 0000 0401 ${'61'.repeat(1025)}`),
    P,
    'rpc-error.message: length 1025',
  ],
  ['rpc-error: trailing byte', hex('32 00000001 0000 0000 00'), P, 'trailing'],
];

describe('decodeMessage rejects malformed frames', () => {
  for (const [name, frame, reason, detail] of malformedFrames) {
    test(name, () => {
      const result = decodeMessage(frame);
      if (result.ok) assert.fail(`decoded as ${result.message.type}`);
      assert.equal(result.reason, reason, result.detail);
      assert.ok(result.detail.includes(detail), `detail "${result.detail}" lacks "${detail}"`);
    });
  }

  test('every strict prefix of a fixed-layout vector fails; of a rest-of-frame one, re-encodes', () => {
    for (const vector of vectors) {
      for (let length = 0; length < vector.frame.length; length += length < 64 ? 1 : 997) {
        const prefix = vector.frame.subarray(0, length);
        const result = decodeMessage(prefix);
        if (result.ok) {
          assert.ok(
            ['data', 'rpc-request', 'rpc-response', 'gossip', 'unknown'].includes(
              result.message.type,
            ),
            `${vector.name} prefix ${length} decoded`,
          );
          assert.equal(toHex(encodeMessage(result.message)), toHex(prefix));
        } else {
          assert.equal(result.reason, ReasonCode.protocolError);
        }
      }
    }
  });

  test('CHUNK_ANNOUNCE with zero ranges (interest) round-trips; CHUNK_REMOVE with zero is malformed', () => {
    const contentId = new Uint8Array(32).fill(7);
    const frame = encodeMessage({ type: 'chunk-announce', contentId, ranges: [] });
    assert.equal(frame.length, 35);
    const decoded = decodeMessage(frame);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.message, { type: 'chunk-announce', contentId, ranges: [] });
    const remove = frame.slice();
    remove[0] = 0x19;
    const refused = decodeMessage(remove);
    assert.ok(!refused.ok && refused.detail.includes('chunk-remove.ranges: count 0'));
    assert.throws(
      () => encodeMessage({ type: 'chunk-remove', contentId, ranges: [] }),
      /chunk-remove\.ranges/,
    );
  });

  test('unknown and reserved type codes decode to { type: unknown } with a zero-copy body', () => {
    const known = new Set<number>(Object.values(MessageType));
    for (let code = 0; code <= 0xff; code++) {
      if (known.has(code)) continue;
      const frame = hex(`${code.toString(16).padStart(2, '0')} 0102`);
      const message = decodeOk(frame);
      assert.deepStrictEqual(message, { type: 'unknown', code, body: hex('0102') });
      if (message.type === 'unknown') assert.equal(message.body.buffer, frame.buffer);
    }
  });

  test('DATA bytes and RPC bodies are views of the frame; hashes are copies', () => {
    const data = encodeDataFrame(1, 0, hex('aabbcc'));
    const dataMessage = decodeOk(data);
    assert.ok(dataMessage.type === 'data');
    assert.equal(dataMessage.bytes.buffer, data.buffer);
    assert.equal(dataMessage.bytes.byteOffset, DATA_HEADER_BYTES);
    const rpc = encodeMessage({ type: 'rpc-request', callId: 1, method: 'm', body: hex('01') });
    const rpcMessage = decodeOk(rpc);
    assert.ok(rpcMessage.type === 'rpc-request');
    assert.equal(rpcMessage.body.buffer, rpc.buffer);
    const request = encodeMessage({
      type: 'chunk-request',
      requestId: 1,
      chunkHash: hex(hash),
      priority: 0,
    });
    const requestMessage = decodeOk(request);
    assert.ok(requestMessage.type === 'chunk-request');
    assert.notEqual(requestMessage.chunkHash.buffer, request.buffer);
    assert.equal(requestMessage.chunkHash.length, HASH_BYTES);
  });

  test('a frame that is not a Uint8Array is a caller error, not a peer error', () => {
    assert.throws(() => decodeMessage([2, 0, 0, 0, 0, 1] as unknown as Uint8Array), {
      code: 'PEAPOD_ERR_INVALID_ARGUMENT',
    });
  });

  test('decodes a frame that is a view into a larger buffer', () => {
    const backing = concat(hex('ffff'), hex('02 01 00000009'), hex('ffff'));
    assert.deepStrictEqual(decodeOk(backing.subarray(2, 8)), {
      type: 'heartbeat',
      isReply: true,
      id: 9,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2b. Invalid messages the encoder refuses

const goodHello = {
  type: 'hello',
  versionMin: 1,
  versionMax: 1,
  capabilities: 0,
  listenPort: 0,
  deviceName: 'x',
} as const;
const goodFetch = {
  type: 'fetch-assign',
  requestId: 1,
  url: 'http://o.test/',
  rangeStart: 0,
  rangeEnd: 1,
  validator: '',
  headers: [],
} as const;
const manyHeaders: HttpHeader[] = Array.from({ length: 32 }, (_, i) => ({
  name: `x-${i}`.padEnd(64, 'h'),
  value: 'v'.repeat(Limits.headerValueBytes),
}));

/** [name, message (deliberately mistyped where needed), field named in the error]. */
const invalidMessages: readonly (readonly [string, unknown, string])[] = [
  ['null', null, 'message'],
  ['unknown type string', { type: 'nope' }, 'message.type'],
  ['hello: versionMin 0', { ...goodHello, versionMin: 0 }, 'hello.versionMin'],
  [
    'hello: versionMax below versionMin',
    { ...goodHello, versionMin: 2, versionMax: 1 },
    'hello.versionMin',
  ],
  ['hello: versionMin 1.5', { ...goodHello, versionMin: 1.5 }, 'hello.versionMin'],
  ['hello: versionMax 256', { ...goodHello, versionMax: 256 }, 'hello.versionMax'],
  ['hello: capabilities -1', { ...goodHello, capabilities: -1 }, 'hello.capabilities'],
  ['hello: capabilities 2^32', { ...goodHello, capabilities: 2 ** 32 }, 'hello.capabilities'],
  ['hello: listenPort 65536', { ...goodHello, listenPort: 65536 }, 'hello.listenPort'],
  [
    'hello: deviceName 65 bytes',
    { ...goodHello, deviceName: 'é'.repeat(32) + 'x' },
    'hello.deviceName',
  ],
  [
    'hello: deviceName with a lone surrogate',
    { ...goodHello, deviceName: 'a\ud800b' },
    'hello.deviceName',
  ],
  ['hello: deviceName not a string', { ...goodHello, deviceName: 7 }, 'hello.deviceName'],
  ['heartbeat: isReply not boolean', { type: 'heartbeat', isReply: 1, id: 0 }, 'heartbeat.isReply'],
  ['heartbeat: id 2^32', { type: 'heartbeat', isReply: false, id: 2 ** 32 }, 'heartbeat.id'],
  ['heartbeat: id NaN', { type: 'heartbeat', isReply: false, id: NaN }, 'heartbeat.id'],
  ['goodbye: reason 65536', { type: 'goodbye', reason: 65536, message: '' }, 'goodbye.reason'],
  [
    'goodbye: message 257 bytes',
    { type: 'goodbye', reason: 0, message: 'm'.repeat(257) },
    'goodbye.message',
  ],
  [
    'chunk-request: 31-byte hash',
    { type: 'chunk-request', requestId: 1, chunkHash: new Uint8Array(31), priority: 0 },
    'chunk-request.chunkHash',
  ],
  [
    'chunk-request: hash as a plain array',
    { type: 'chunk-request', requestId: 1, chunkHash: new Array(32).fill(0), priority: 0 },
    'chunk-request.chunkHash',
  ],
  [
    'chunk-request: priority 256',
    { type: 'chunk-request', requestId: 1, chunkHash: new Uint8Array(32), priority: 256 },
    'chunk-request.priority',
  ],
  [
    'chunk-request: requestId -1',
    { type: 'chunk-request', requestId: -1, chunkHash: new Uint8Array(32), priority: 0 },
    'chunk-request.requestId',
  ],
  [
    'data: empty bytes',
    { type: 'data', requestId: 1, offset: 0, bytes: new Uint8Array(0) },
    'data.bytes',
  ],
  [
    'data: MAX_DATA_BYTES + 1',
    { type: 'data', requestId: 1, offset: 0, bytes: new Uint8Array(MAX_DATA_BYTES + 1) },
    'data.bytes',
  ],
  [
    'data: offset -1',
    { type: 'data', requestId: 1, offset: -1, bytes: new Uint8Array(1) },
    'data.offset',
  ],
  [
    'data: offset 2^53',
    { type: 'data', requestId: 1, offset: 2 ** 53, bytes: new Uint8Array(1) },
    'data.offset',
  ],
  [
    'data: offset + length above 2^53 - 1',
    { type: 'data', requestId: 1, offset: Number.MAX_SAFE_INTEGER, bytes: new Uint8Array(1) },
    'data.bytes',
  ],
  ['cancel: requestId 2^32', { type: 'cancel', requestId: 2 ** 32 }, 'cancel.requestId'],
  [
    'status: unknown TransferStatus',
    { type: 'status', requestId: 1, status: 8, length: 0, message: '' },
    'status.status',
  ],
  [
    'status: length 2^53',
    { type: 'status', requestId: 1, status: 0, length: 2 ** 53, message: '' },
    'status.length',
  ],
  [
    'status: message 257 bytes',
    { type: 'status', requestId: 1, status: 0, length: 0, message: 's'.repeat(257) },
    'status.message',
  ],
  [
    'chunk-announce: 1025 ranges',
    {
      type: 'chunk-announce',
      contentId: new Uint8Array(32),
      ranges: Array.from({ length: 1025 }, (_, i) => ({ start: 2 * i, end: 2 * i + 1 })),
    },
    'chunk-announce.ranges',
  ],
  [
    'chunk-announce: end equal to start',
    { type: 'chunk-announce', contentId: new Uint8Array(32), ranges: [{ start: 3, end: 3 }] },
    'chunk-announce.ranges[0]',
  ],
  [
    'chunk-announce: overlapping',
    {
      type: 'chunk-announce',
      contentId: new Uint8Array(32),
      ranges: [
        { start: 0, end: 5 },
        { start: 4, end: 6 },
      ],
    },
    'chunk-announce.ranges[1]',
  ],
  [
    'chunk-announce: unsorted',
    {
      type: 'chunk-announce',
      contentId: new Uint8Array(32),
      ranges: [
        { start: 10, end: 11 },
        { start: 0, end: 1 },
      ],
    },
    'chunk-announce.ranges[1]',
  ],
  [
    'chunk-announce: end above u32',
    { type: 'chunk-announce', contentId: new Uint8Array(32), ranges: [{ start: 0, end: 2 ** 32 }] },
    'chunk-announce.ranges[0].end',
  ],
  [
    'chunk-announce: range not an object',
    { type: 'chunk-announce', contentId: new Uint8Array(32), ranges: [null] },
    'chunk-announce.ranges[0]',
  ],
  [
    'chunk-remove: 33-byte contentId',
    { type: 'chunk-remove', contentId: new Uint8Array(33), ranges: [{ start: 0, end: 1 }] },
    'chunk-remove.contentId',
  ],
  ['fetch-assign: empty url', { ...goodFetch, url: '' }, 'fetch-assign.url'],
  ['fetch-assign: url 8193 bytes', { ...goodFetch, url: 'u'.repeat(8193) }, 'fetch-assign.url'],
  [
    'fetch-assign: rangeEnd equal to rangeStart',
    { ...goodFetch, rangeStart: 5, rangeEnd: 5 },
    'fetch-assign.rangeEnd',
  ],
  [
    'fetch-assign: validator 257 bytes',
    { ...goodFetch, validator: 'v'.repeat(257) },
    'fetch-assign.validator',
  ],
  [
    'fetch-assign: header name with a space',
    { ...goodFetch, headers: [{ name: 'a b', value: '' }] },
    'fetch-assign.headers[0].name',
  ],
  [
    'fetch-assign: header value with CR LF',
    { ...goodFetch, headers: [{ name: 'a', value: 'x\r\nInjected: 1' }] },
    'fetch-assign.headers[0].value',
  ],
  [
    'fetch-assign: 33 headers',
    { ...goodFetch, headers: Array.from({ length: 33 }, () => ({ name: 'a', value: '' })) },
    'fetch-assign.headers',
  ],
  [
    'fetch-assign: frame above MAX_FRAME_BYTES',
    { ...goodFetch, headers: manyHeaders },
    'fetch-assign: the frame would be',
  ],
  [
    'rpc-request: empty method',
    { type: 'rpc-request', callId: 1, method: '', body: new Uint8Array(0) },
    'rpc-request.method',
  ],
  [
    'rpc-request: frame above MAX_FRAME_BYTES',
    { type: 'rpc-request', callId: 1, method: 'm', body: new Uint8Array(MAX_FRAME_BYTES - 7) },
    'rpc-request.body',
  ],
  [
    'rpc-response: frame above MAX_FRAME_BYTES',
    { type: 'rpc-response', callId: 1, body: new Uint8Array(MAX_FRAME_BYTES - 4) },
    'rpc-response.body',
  ],
  [
    'rpc-error: code 65536',
    { type: 'rpc-error', callId: 1, code: 65536, message: '' },
    'rpc-error.code',
  ],
  [
    'rpc-error: message 1025 bytes',
    { type: 'rpc-error', callId: 1, code: 0, message: 'e'.repeat(1025) },
    'rpc-error.message',
  ],
  [
    'unknown: a known type code',
    { type: 'unknown', code: MessageType.data, body: new Uint8Array(1) },
    'unknown.code',
  ],
  ['unknown: code 256', { type: 'unknown', code: 256, body: new Uint8Array(0) }, 'unknown.code'],
  [
    'unknown: frame above MAX_FRAME_BYTES',
    { type: 'unknown', code: 0x4f, body: new Uint8Array(MAX_FRAME_BYTES) },
    'unknown.body',
  ],
];

describe('encodeMessage refuses invalid messages, naming the field', () => {
  for (const [name, message, field] of invalidMessages) {
    test(name, () => {
      assert.throws(
        () => encodeMessage(message as WireMessage),
        (error: { code?: unknown; message?: unknown }) =>
          error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' &&
          typeof error.message === 'string' &&
          error.message.startsWith(`${field}`),
      );
    });
  }

  test('boundary sizes just inside the limits encode', () => {
    assert.equal(
      encodeMessage({
        type: 'rpc-request',
        callId: 1,
        method: 'm',
        body: new Uint8Array(MAX_FRAME_BYTES - 8),
      }).length,
      MAX_FRAME_BYTES,
    );
    assert.equal(
      encodeMessage({ type: 'rpc-response', callId: 1, body: new Uint8Array(MAX_FRAME_BYTES - 5) })
        .length,
      MAX_FRAME_BYTES,
    );
    assert.equal(
      encodeMessage({ type: 'unknown', code: 0x4f, body: new Uint8Array(MAX_FRAME_BYTES - 1) })
        .length,
      MAX_FRAME_BYTES,
    );
    assert.equal(
      encodeDataFrame(0, Number.MAX_SAFE_INTEGER - 1, new Uint8Array(1)).length,
      DATA_HEADER_BYTES + 1,
    );
    assert.equal(MAX_DATA_BYTES, 65_506);
  });

  test('encodeDataFrame matches encodeMessage and validates the same way', () => {
    const bytes = hex('000102');
    assert.equal(
      toHex(encodeDataFrame(5, 1000, bytes)),
      toHex(encodeMessage({ type: 'data', requestId: 5, offset: 1000, bytes })),
    );
    assert.throws(() => encodeDataFrame(5, 0, new Uint8Array(0)), /data\.bytes/);
    assert.throws(() => encodeDataFrame(2 ** 32, 0, bytes), /data\.requestId/);
  });
});

describe('TSDoc examples (codec.ts, record-framer.ts) run as written', () => {
  test('encodeDataFrame', () => {
    const frame = encodeDataFrame(7, 0, new Uint8Array([1, 2, 3]));
    assert.equal(toHex(frame), '11' + '00000007' + '0000000000000000' + '010203');
  });

  test('encodeMessage', () => {
    assert.equal(
      toHex(encodeMessage({ type: 'heartbeat', isReply: false, id: 1 })),
      '020000000001',
    );
  });

  test('decodeMessage', () => {
    const result = decodeMessage(fromHex('020000000001')!);
    assert.deepStrictEqual(result, {
      ok: true,
      message: { type: 'heartbeat', isReply: false, id: 1 },
    });
  });

  test('frameRecord', () => {
    assert.equal(toHex(frameRecord(new Uint8Array([0xaa, 0xbb]))), '0002aabb');
  });

  test('RecordStreamDecoder', () => {
    const decoder = new RecordStreamDecoder();
    decoder.push(new Uint8Array([0x00, 0x02, 0xaa]));
    assert.deepStrictEqual(decoder.next(), { kind: 'need-data' });
    decoder.push(new Uint8Array([0xbb]));
    const event = decoder.next();
    assert.ok(event.kind === 'record');
    assert.equal(toHex(event.record), 'aabb');
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Properties

/** Cuts a string so that its UTF-8 form fits `maxBytes`, never splitting a code point. */
function fitUtf8(text: string, maxBytes: number): string {
  let out = '';
  let bytes = 0;
  for (const char of text) {
    const size = utf8Encode(char).length;
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

/** Any well-formed string (all code points, incl. U+FEFF and astral) within a byte budget. */
function text(maxBytes: number, minBytes = 0): fc.Arbitrary<string> {
  const any = fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: maxBytes }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: maxBytes, size: 'max' }) },
    { weight: 1, arbitrary: fc.constantFrom('\ufeff', '\ufeffx', '\u0000', '🍐'.repeat(maxBytes)) },
  );
  return any.map((s) => fitUtf8(s, maxBytes)).filter((s) => utf8Encode(s).length >= minBytes);
}

/** fc.record with ordinary prototypes, so generated messages deep-equal decoded ones. */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as unknown as fc.Arbitrary<T>;
}

/** A record of `length` bytes with a cheap position-dependent pattern (no per-byte callback). */
function patterned(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < Math.min(length, 251); i++) out[i] = (i * 31 + seed) & 0xff;
  for (let filled = 251; filled < length; filled *= 2) out.copyWithin(filled, 0, filled);
  return out;
}

const u8Arb = fc.integer({ min: 0, max: 0xff });
const u16Arb = fc.integer({ min: 0, max: 0xffff });
const u32Arb = fc.integer({ min: 0, max: U32_MAX });
const u64Arb = fc.oneof(u32Arb, fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
const hashArb = fc.uint8Array({ minLength: HASH_BYTES, maxLength: HASH_BYTES });
const bodyArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096, size: 'max' }) },
);

const rangesArb: fc.Arbitrary<IndexRange[]> = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constant(0), fc.nat(16), fc.nat(2 ** 31)),
      fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 2 ** 31 - 1 })),
    ),
    { minLength: 1, maxLength: 40 },
  )
  .map((steps) => {
    const ranges: IndexRange[] = [];
    let previousEnd = 0;
    for (const [gap, length] of steps) {
      const start = previousEnd + gap;
      const end = start + length;
      if (end > U32_MAX) break;
      ranges.push({ start, end });
      previousEnd = end;
    }
    return ranges;
  })
  .filter((ranges) => ranges.length > 0);

const headerArb: fc.Arbitrary<HttpHeader> = rec({
  name: fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/),
  value: fc
    .string({
      unit: fc.oneof(
        fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
        fc.constantFrom('\t', 'é', '🍐', '\ufeff'),
      ),
      maxLength: 40,
    })
    .map((s) => fitUtf8(s, Limits.headerValueBytes)),
});

const knownCodes = new Set<number>(Object.values(MessageType));

const messageArb: fc.Arbitrary<WireMessage> = fc.oneof(
  rec({
    versionMin: fc.integer({ min: 1, max: 255 }),
    spread: u8Arb,
    capabilities: u32Arb,
    listenPort: u16Arb,
    deviceName: text(Limits.deviceNameBytes),
  }).map(({ versionMin, spread, capabilities, listenPort, deviceName }) => ({
    type: 'hello' as const,
    versionMin,
    versionMax: Math.min(255, versionMin + spread),
    capabilities,
    listenPort,
    deviceName,
  })),
  rec({ type: fc.constant('heartbeat' as const), isReply: fc.boolean(), id: u32Arb }),
  rec({
    type: fc.constant('goodbye' as const),
    reason: u16Arb,
    message: text(Limits.goodbyeMessageBytes),
  }),
  rec({
    type: fc.constant('chunk-request' as const),
    requestId: u32Arb,
    chunkHash: hashArb,
    priority: u8Arb,
  }),
  rec({
    requestId: u32Arb,
    offset: u64Arb,
    bytes: fc.oneof(
      { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
      {
        weight: 1,
        arbitrary: fc
          .integer({ min: 1, max: MAX_DATA_BYTES })
          .map((n) => new Uint8Array(n).fill(n & 0xff)),
      },
    ),
  }).map(({ requestId, offset, bytes }) => ({
    type: 'data' as const,
    requestId,
    offset: Math.min(offset, Number.MAX_SAFE_INTEGER - bytes.length),
    bytes,
  })),
  rec({ type: fc.constant('cancel' as const), requestId: u32Arb }),
  rec({
    type: fc.constant('status' as const),
    requestId: u32Arb,
    status: fc.constantFrom(...Object.values(TransferStatus)),
    length: u64Arb,
    message: text(Limits.statusMessageBytes),
  }),
  rec({
    type: fc.constant('chunk-announce' as const),
    contentId: hashArb,
    // No ranges: an interest announcement (docs/protocol.md 6.8).
    ranges: fc.oneof(rangesArb, fc.constant([])),
  }),
  rec({ type: fc.constant('chunk-remove' as const), contentId: hashArb, ranges: rangesArb }),
  rec({
    requestId: u32Arb,
    url: text(Limits.urlBytes, 1),
    rangeStart: u64Arb,
    rangeLength: fc.oneof(fc.integer({ min: 1, max: 2 ** 24 }), fc.maxSafeNat()),
    validator: text(Limits.validatorBytes),
    headers: fc.array(headerArb, { maxLength: Limits.headerCount }),
  }).map(({ requestId, url, rangeStart, rangeLength, validator, headers }) => {
    const start = Math.min(rangeStart, Number.MAX_SAFE_INTEGER - 1);
    return {
      type: 'fetch-assign' as const,
      requestId,
      url,
      rangeStart: start,
      rangeEnd: Math.min(Number.MAX_SAFE_INTEGER, start + Math.max(1, rangeLength)),
      validator,
      headers,
    };
  }),
  rec({
    type: fc.constant('rpc-request' as const),
    callId: u32Arb,
    method: text(Limits.rpcMethodBytes, 1),
    body: bodyArb,
  }),
  rec({ type: fc.constant('rpc-response' as const), callId: u32Arb, body: bodyArb }),
  rec({
    type: fc.constant('rpc-error' as const),
    callId: u32Arb,
    code: u16Arb,
    message: text(Limits.rpcErrorMessageBytes),
  }),
  rec({
    type: fc.constant('unknown' as const),
    code: u8Arb.filter((code) => !knownCodes.has(code)),
    body: bodyArb,
  }),
);

/** Frame bytes biased towards known type codes, so the body decoders get exercised. */
const frameBytesArb = fc
  .tuple(
    fc.oneof(fc.constantFrom(...knownCodes), u8Arb),
    fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ maxLength: 48 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600, size: 'max' }) },
    ),
  )
  .map(([code, body]) => concat(Uint8Array.of(code), body));

/** A decode result that is a failure, or a message that re-encodes to exactly `frame`. */
function assertCanonical(frame: Uint8Array, result: DecodeResult): void {
  if (result.ok) {
    assert.equal(toHex(encodeMessage(result.message)), toHex(frame));
  } else {
    assert.ok(Object.values(ReasonCode).includes(result.reason));
    assert.equal(typeof result.detail, 'string');
  }
}

describe('properties (fast-check)', () => {
  test(`valid messages round-trip exactly and canonically (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const frame = encodeMessage(message);
        assert.ok(frame.length >= 1 && frame.length <= MAX_FRAME_BYTES);
        const decoded = decodeOk(frame);
        assert.deepStrictEqual(decoded, message);
        assert.equal(toHex(encodeMessage(decoded)), toHex(frame));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test(`decodeMessage never throws on arbitrary bytes; whatever it accepts is canonical (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(frameBytesArb, fc.nat(8), (frame, shift) => {
        // Also feed the frame as a view at a non-zero offset of a larger buffer.
        const backing = new Uint8Array(frame.length + shift + 3).fill(0xee);
        backing.set(frame, shift);
        const view = backing.subarray(shift, shift + frame.length);
        const result = decodeMessage(view);
        assertCanonical(frame, result);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test(`mutated valid frames never make decodeMessage throw; whatever it accepts is canonical (${NUM_RUNS} runs)`, () => {
    const mutation = fc.oneof(
      rec({ kind: fc.constant('set' as const), at: fc.nat(), value: u8Arb }),
      rec({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      rec({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      }),
      rec({
        kind: fc.constant('delete' as const),
        at: fc.nat(),
        count: fc.integer({ min: 1, max: 8 }),
      }),
    );
    fc.assert(
      fc.property(
        messageArb,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (message, mutations) => {
          let frame = encodeMessage(message);
          for (const m of mutations) {
            const at = frame.length === 0 ? 0 : m.at % frame.length;
            if (m.kind === 'set' && frame.length > 0) {
              frame = frame.slice();
              frame[at] = m.value;
            } else if (m.kind === 'truncate') {
              frame = frame.subarray(0, at);
            } else if (m.kind === 'insert') {
              frame = concat(frame.subarray(0, at), m.bytes, frame.subarray(at));
            } else if (m.kind === 'delete') {
              frame = concat(frame.subarray(0, at), frame.subarray(at + m.count));
            }
          }
          assertCanonical(frame, decodeMessage(frame));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  /** Records of any size 1..65535; big ones filled from a seed to keep generation cheap. */
  const recordArb = fc.oneof(
    { weight: 8, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 100 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 1, max: MAX_RECORD_BYTES }), u8Arb)
        .map(([length, seed]) => patterned(length, seed)),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(new Uint8Array(MAX_RECORD_BYTES).fill(7), Uint8Array.of(1)),
    },
  );
  const cutsArb = fc.array(fc.nat(), { maxLength: 24 });

  test(`framed records split anywhere reassemble exactly (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 6 }), cutsArb, (records, cuts) => {
        const stream = concat(...records.map((record) => frameRecord(record)));
        const decoder = new RecordStreamDecoder();
        const received: Uint8Array[] = [];
        for (const piece of split(stream, cuts)) {
          received.push(...reassemble(decoder, [piece]));
          // Drained after every push: at most one partial record (plus header) stays buffered.
          assert.ok(decoder.bufferedBytes < RECORD_HEADER_BYTES + MAX_RECORD_BYTES);
        }
        assert.deepStrictEqual(received, records);
        assert.equal(decoder.bufferedBytes, 0);
        assert.equal(decoder.end(), undefined);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  type ModelOutcome = { records: string[]; error: ReasonCode | undefined; leftover: number };

  /** Reference parser: the whole stream at once, the simplest possible reading of the spec. */
  function modelParse(stream: Uint8Array, maxRecordBytes: number): ModelOutcome {
    const records: string[] = [];
    let at = 0;
    for (;;) {
      if (stream.length - at < 2)
        return { records, error: undefined, leftover: stream.length - at };
      const length = (stream[at]! << 8) | stream[at + 1]!;
      if (length === 0) return { records, error: ReasonCode.protocolError, leftover: 0 };
      if (length > maxRecordBytes) return { records, error: ReasonCode.frameTooLarge, leftover: 0 };
      if (stream.length - at - 2 < length)
        return { records, error: undefined, leftover: stream.length - at };
      records.push(toHex(stream.subarray(at + 2, at + 2 + length)));
      at += 2 + length;
    }
  }

  test(`RecordStreamDecoder never throws on arbitrary streams split arbitrarily and agrees with a reference parser (${NUM_RUNS} runs)`, () => {
    const streamArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // Mostly-valid streams with small lengths, so records and errors both occur.
      fc
        .array(fc.tuple(fc.integer({ min: 0, max: 40 }), u8Arb), { maxLength: 8 })
        .map((parts) =>
          concat(
            ...parts.map(([length, fill]) =>
              concat(Uint8Array.of(length >> 8, length & 0xff), new Uint8Array(length).fill(fill)),
            ),
          ),
        ),
      fc
        .tuple(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }))
        .map(([a, b]) => concat(a, b)),
    );
    fc.assert(
      fc.property(
        streamArb,
        cutsArb,
        fc.oneof(fc.constant(MAX_RECORD_BYTES), fc.integer({ min: 1, max: 64 })),
        (stream, cuts, maxRecordBytes) => {
          const decoder = new RecordStreamDecoder({ maxRecordBytes });
          const records: string[] = [];
          let error: ReasonCode | undefined;
          for (const piece of split(stream, cuts)) {
            decoder.push(piece);
            for (;;) {
              const event = decoder.next();
              if (event.kind === 'need-data') break;
              if (event.kind === 'error') {
                if (error !== undefined) assert.equal(event.reason, error, 'errors are sticky');
                error = event.reason;
                assert.equal(decoder.bufferedBytes, 0);
                break;
              }
              assert.ok(event.record.length >= 1 && event.record.length <= maxRecordBytes);
              records.push(toHex(event.record));
            }
          }
          const model = modelParse(stream, maxRecordBytes);
          assert.deepStrictEqual(records, model.records);
          assert.equal(error, model.error);
          if (error === undefined) assert.equal(decoder.bufferedBytes, model.leftover);
          const ended = decoder.end();
          assert.equal(
            ended,
            model.error ?? (model.leftover > 0 ? ReasonCode.truncated : undefined),
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  test(`an oversized or zero record length is rejected from its 2 header bytes, before any body is buffered (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MAX_RECORD_BYTES }).chain((max) =>
          rec({
            max: fc.constant(max),
            length:
              max === MAX_RECORD_BYTES
                ? fc.constant(0)
                : fc.oneof(fc.constant(0), fc.integer({ min: max + 1, max: 0xffff })),
          }),
        ),
        fc.boolean(),
        fc.uint8Array({ maxLength: 64 }),
        ({ max, length }, byteByByte, later) => {
          const decoder = new RecordStreamDecoder({ maxRecordBytes: max });
          const header = Uint8Array.of(length >> 8, length & 0xff);
          if (byteByByte) {
            decoder.push(header.subarray(0, 1));
            assert.equal(decoder.next().kind, 'need-data');
            assert.ok(decoder.bufferedBytes <= RECORD_HEADER_BYTES);
            decoder.push(header.subarray(1));
          } else {
            decoder.push(header);
          }
          const event = decoder.next();
          assert.equal(event.kind, 'error');
          if (event.kind === 'error') {
            assert.equal(
              event.reason,
              length === 0 ? ReasonCode.protocolError : ReasonCode.frameTooLarge,
            );
          }
          assert.ok(decoder.bufferedBytes <= RECORD_HEADER_BYTES);
          decoder.push(later); // the body (or anything else) arriving afterwards is not kept
          assert.ok(decoder.bufferedBytes <= RECORD_HEADER_BYTES);
          assert.deepStrictEqual(decoder.next(), event);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  /**
   * Length-prefixed fields: the bytes before the prefix (all valid), the prefix's offset, the
   * field's limit, and its unit size (8 bytes per range for a range count).
   */
  const prefixedFields = [
    {
      field: 'hello.deviceName',
      head: hex('01 01 01 00000000 0000'),
      limit: Limits.deviceNameBytes,
      unit: 1,
    },
    { field: 'goodbye.message', head: hex('03 0000'), limit: Limits.goodbyeMessageBytes, unit: 1 },
    {
      field: 'status.message',
      head: hex(`13 00000001 00 ${zeros(8)}`),
      limit: Limits.statusMessageBytes,
      unit: 1,
    },
    { field: 'fetch-assign.url', head: hex('20 00000001'), limit: Limits.urlBytes, unit: 1 },
    {
      field: 'rpc-request.method',
      head: hex('30 00000001'),
      limit: Limits.rpcMethodBytes,
      unit: 1,
    },
    {
      field: 'rpc-error.message',
      head: hex('32 00000001 0000'),
      limit: Limits.rpcErrorMessageBytes,
      unit: 1,
    },
    {
      field: 'chunk-announce.ranges',
      head: hex(`18 ${hash}`),
      limit: Limits.announceRanges,
      unit: 8,
    },
    {
      field: 'chunk-remove.ranges',
      head: hex(`19 ${hash}`),
      limit: Limits.announceRanges,
      unit: 8,
    },
  ] as const;

  /** A copy of `bytes` whose subarray/slice calls are recorded. */
  function instrumented(bytes: Uint8Array): { frame: Uint8Array; starts: number[] } {
    const frame = new Uint8Array(bytes);
    const starts: number[] = [];
    const subarray = frame.subarray.bind(frame);
    const slice = frame.slice.bind(frame);
    Object.defineProperty(frame, 'subarray', {
      value: (begin?: number, end?: number) => (starts.push(begin ?? 0), subarray(begin, end)),
    });
    Object.defineProperty(frame, 'slice', {
      value: (begin?: number, end?: number) => (starts.push(begin ?? 0), slice(begin, end)),
    });
    return { frame, starts };
  }

  test(`an inner length above its limit or above the bytes remaining is rejected before the field is sliced (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...prefixedFields),
        fc.oneof(fc.constant('above-limit' as const), fc.constant('above-remaining' as const)),
        fc.nat(),
        fc.nat(300),
        (spec, kind, seed, present) => {
          // Claimed length: either above the limit, or within it but above what is present.
          const claimed =
            kind === 'above-limit'
              ? spec.limit + 1 + (seed % (0xffff - spec.limit))
              : Math.max(1, (seed % spec.limit) + 1);
          const available =
            kind === 'above-limit' ? present : Math.min(present, claimed * spec.unit - 1);
          const prefixAt = spec.head.length;
          const { frame, starts } = instrumented(
            concat(
              spec.head,
              Uint8Array.of(claimed >> 8, claimed & 0xff),
              new Uint8Array(available).fill(0x61),
            ),
          );
          const result = decodeMessage(frame);
          assert.equal(result.ok, false);
          if (!result.ok) {
            assert.equal(result.reason, ReasonCode.protocolError);
            assert.ok(result.detail.startsWith(spec.field), result.detail);
            assert.match(
              result.detail,
              kind === 'above-limit'
                ? /exceeds the limit|outside [01] to/
                : /needs \d+ bytes but only \d+ remain/,
            );
          }
          // Nothing at or after the claimed field was sliced or copied.
          assert.ok(
            starts.every((start) => start < prefixAt),
            `sliced at ${starts.join(',')}`,
          );
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
