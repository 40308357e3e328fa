/**
 * URL_QUERY (0x1a) and URL_ANSWER (0x1b) in the wire codec (docs/protocol.md 6.11):
 * 1. golden vectors (test/vectors/wire-url-v1.json, built with Python from the tables), both
 *    directions, and every strict prefix rejected;
 * 2. malformed frames with their expected reason; messages the encoder must refuse;
 * 3. fast-check, 10 000 runs each: valid messages round-trip canonically; arbitrary bodies and
 *    mutated valid frames never make decodeMessage throw, and whatever it accepts re-encodes
 *    to the same bytes.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex, utf8Encode } from '../src/bytes.js';
import { decodeMessage, encodeMessage, HASH_BYTES, type DecodeResult } from '../src/wire/codec.js';
import { Limits, MessageType, type WireMessage } from '../src/wire/messages.js';
import { ReasonCode } from '../src/wire/reason-codes.js';

const NUM_RUNS = 10_000;

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

interface RawVector {
  name: string;
  message: { type: string; queryId: number; url?: string; entries?: RawEntry[] };
  frame: string;
}
interface RawEntry {
  validator: string;
  contentId: string;
}

function loadVectors(): Array<{ name: string; message: WireMessage; frame: Uint8Array }> {
  const candidates = [
    new URL('./vectors/wire-url-v1.json', import.meta.url),
    new URL('../../test/vectors/wire-url-v1.json', import.meta.url),
  ];
  const url = candidates.find((candidate) => existsSync(candidate));
  assert.ok(url, 'test/vectors/wire-url-v1.json not found');
  const raw = JSON.parse(readFileSync(url, 'utf8')) as RawVector[];
  return raw.map(({ name, message, frame }) => {
    const parsed =
      message.entries === undefined
        ? message
        : {
            ...message,
            entries: message.entries.map((e) => ({
              validator: e.validator,
              contentId: hex(e.contentId),
            })),
          };
    return { name, message: parsed as WireMessage, frame: hex(frame) };
  });
}

const vectors = loadVectors();

describe('URL_QUERY / URL_ANSWER golden vectors (test/vectors/wire-url-v1.json)', () => {
  test('cover both types and the limits', () => {
    assert.ok(vectors.some((v) => v.message.type === 'url-query'));
    assert.ok(
      vectors.some(
        (v) =>
          v.message.type === 'url-query' && utf8Encode(v.message.url).length === Limits.urlBytes,
      ),
    );
    assert.ok(
      vectors.some((v) => v.message.type === 'url-answer' && v.message.entries.length === 0),
    );
    assert.ok(
      vectors.some(
        (v) =>
          v.message.type === 'url-answer' &&
          v.message.entries.length === Limits.urlAnswerEntries &&
          v.message.entries.some((e) => utf8Encode(e.validator).length === Limits.validatorBytes),
      ),
    );
    assert.equal(MessageType.urlQuery, 0x1a);
    assert.equal(MessageType.urlAnswer, 0x1b);
  });

  for (const vector of vectors) {
    test(`${vector.name}: encodes to the frozen frame and decodes back`, () => {
      assert.equal(toHex(encodeMessage(vector.message)), toHex(vector.frame));
      assert.deepStrictEqual(decodeOk(vector.frame), vector.message);
    });

    test(`${vector.name}: every strict prefix and a trailing byte are protocol errors`, () => {
      for (let length = 0; length < vector.frame.length; length += length < 80 ? 1 : 509) {
        const result = decodeMessage(vector.frame.subarray(0, length));
        assert.ok(!result.ok, `prefix ${length} decoded`);
        assert.equal(result.reason, ReasonCode.protocolError);
      }
      const trailing = decodeMessage(concat(vector.frame, Uint8Array.of(0)));
      assert.ok(!trailing.ok && trailing.detail.includes('trailing'));
    });
  }

  test('a decoded contentId is a copy, not a view of the frame', () => {
    const frame = vectors.find((v) => v.name === 'url-answer, one strong ETag')!.frame.slice();
    const message = decodeOk(frame);
    assert.ok(message.type === 'url-answer');
    frame.fill(0);
    assert.equal(toHex(message.entries[0]!.contentId), '11'.repeat(32));
  });
});

const id = '11'.repeat(32);
const malformed: ReadonlyArray<readonly [string, Uint8Array, string]> = [
  ['url-query: empty URL', hex('1a 00000001 0000'), 'url-query.url'],
  ['url-query: URL length past the frame', hex('1a 00000001 0005 6162'), 'url-query.url'],
  [
    'url-query: URL above 8192 bytes',
    concat(hex('1a 00000001 2001'), new Uint8Array(8193).fill(0x61)),
    'url-query.url',
  ],
  ['url-query: invalid UTF-8', hex('1a 00000001 0002 c328'), 'url-query.url'],
  ['url-query: no query ID', hex('1a 0000'), 'url-query.queryId'],
  ['url-answer: no count', hex('1b 00000001'), 'url-answer.entries count'],
  ['url-answer: 9 entries', concat(hex('1b 00000001 09'), new Uint8Array(9 * 34)), 'limit 8'],
  ['url-answer: count beyond the bytes', hex(`1b 00000001 02 0000 ${id}`), 'url-answer.entries'],
  ['url-answer: contentId cut short', hex(`1b 00000001 01 0001 61 ${id.slice(2)}`), 'contentId'],
  [
    'url-answer: validator above 256 bytes',
    concat(hex('1b 00000001 01 0101'), new Uint8Array(257).fill(0x61), hex(id)),
    'validator',
  ],
];

describe('URL_QUERY / URL_ANSWER: malformed frames and refused messages', () => {
  for (const [name, frame, field] of malformed) {
    test(name, () => {
      const result = decodeMessage(frame);
      if (result.ok) assert.fail(`decoded as ${result.message.type}`);
      assert.equal(result.reason, ReasonCode.protocolError);
      assert.ok(result.detail.includes(field), `detail "${result.detail}" lacks "${field}"`);
    });
  }

  const contentId = hex(id);
  const refused: ReadonlyArray<readonly [string, unknown, string]> = [
    ['empty URL', { type: 'url-query', queryId: 1, url: '' }, 'url-query.url'],
    ['URL too long', { type: 'url-query', queryId: 1, url: 'a'.repeat(8193) }, 'url-query.url'],
    ['lone surrogate', { type: 'url-query', queryId: 1, url: 'a\ud800' }, 'url-query.url'],
    ['query ID above u32', { type: 'url-query', queryId: 2 ** 32, url: 'a' }, 'url-query.queryId'],
    [
      'entries not an array',
      { type: 'url-answer', queryId: 1, entries: 'x' },
      'url-answer.entries',
    ],
    [
      '9 entries',
      { type: 'url-answer', queryId: 1, entries: Array(9).fill({ validator: '', contentId }) },
      'url-answer.entries',
    ],
    [
      'contentId of 31 bytes',
      {
        type: 'url-answer',
        queryId: 1,
        entries: [{ validator: '', contentId: new Uint8Array(31) }],
      },
      'url-answer.entries[0].contentId',
    ],
    [
      'validator of 257 bytes',
      { type: 'url-answer', queryId: 1, entries: [{ validator: 'v'.repeat(257), contentId }] },
      'url-answer.entries[0].validator',
    ],
    ['entry not an object', { type: 'url-answer', queryId: 1, entries: [null] }, 'entries[0]'],
  ];
  for (const [name, message, field] of refused) {
    test(`encodeMessage refuses: ${name}`, () => {
      assert.throws(
        () => encodeMessage(message as WireMessage),
        (error: { code?: unknown; message?: unknown }) =>
          error.code === 'PEAPOD_ERR_INVALID_ARGUMENT' && String(error.message).includes(field),
      );
    });
  }
});

/** Trims a string to at most `maxBytes` UTF-8 bytes, whole code points only. */
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

function text(maxBytes: number, minBytes = 0): fc.Arbitrary<string> {
  return fc
    .oneof(
      { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: maxBytes, size: 'max' }) },
      {
        weight: 1,
        arbitrary: fc.constantFrom('\ufeff', '🍐'.repeat(maxBytes), 'x'.repeat(maxBytes)),
      },
    )
    .map((s) => fitUtf8(s, maxBytes))
    .filter((s) => utf8Encode(s).length >= minBytes);
}

const u32Arb = fc.integer({ min: 0, max: 0xffff_ffff });
const urlMessageArb: fc.Arbitrary<WireMessage> = fc.oneof(
  fc
    .record({ queryId: u32Arb, url: text(Limits.urlBytes, 1) })
    .map(({ queryId, url }) => ({ type: 'url-query' as const, queryId, url })),
  fc
    .record({
      queryId: u32Arb,
      entries: fc.array(
        fc.record({
          validator: text(Limits.validatorBytes),
          contentId: fc.uint8Array({ minLength: HASH_BYTES, maxLength: HASH_BYTES }),
        }),
        { maxLength: Limits.urlAnswerEntries },
      ),
    })
    .map(({ queryId, entries }) => ({
      type: 'url-answer' as const,
      queryId,
      entries: entries.map((e) => ({ validator: e.validator, contentId: e.contentId })),
    })),
);

function assertCanonical(frame: Uint8Array, result: DecodeResult): void {
  if (result.ok) assert.equal(toHex(encodeMessage(result.message)), toHex(frame));
  else assert.ok(Object.values(ReasonCode).includes(result.reason));
}

describe('URL_QUERY / URL_ANSWER properties (fast-check)', () => {
  test(`valid messages round-trip exactly and canonically (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(urlMessageArb, (message) => {
        const frame = encodeMessage(message);
        const decoded = decodeOk(frame);
        assert.deepStrictEqual(decoded, message);
        assert.equal(toHex(encodeMessage(decoded)), toHex(frame));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test(`arbitrary bodies never make decodeMessage throw (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(MessageType.urlQuery, MessageType.urlAnswer),
        fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 2000, size: 'max' })),
        (code, body) => {
          const frame = concat(Uint8Array.of(code), body);
          assertCanonical(frame, decodeMessage(frame));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  test(`mutated valid frames never make decodeMessage throw (${NUM_RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        urlMessageArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 0xff }), fc.nat(3)), {
          minLength: 1,
          maxLength: 4,
        }),
        (message, mutations) => {
          let frame = encodeMessage(message);
          for (const [position, value, kind] of mutations) {
            const at = frame.length === 0 ? 0 : position % frame.length;
            if (kind === 0 && frame.length > 0) {
              frame = frame.slice();
              frame[at] = value;
            } else if (kind === 1) frame = frame.subarray(0, at);
            else if (kind === 2)
              frame = concat(frame.subarray(0, at), Uint8Array.of(value), frame.subarray(at));
            else frame = concat(frame.subarray(0, at), frame.subarray(at + 1));
          }
          assertCanonical(frame, decodeMessage(frame));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
