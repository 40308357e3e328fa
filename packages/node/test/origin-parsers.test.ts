/**
 * The parsers of header text from the network (http/content-range.ts, entity-tag.ts,
 * structured-field.ts, digest-field.ts): golden examples from the RFCs, then fast-check
 * properties, 10 000 runs each: arbitrary strings never throw, and format -> parse round trips.
 * On failure fast-check prints the seed and the shrunk counterexample.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  formatContentRange,
  formatRangeRequest,
  parseContentRange,
  parseRangeRequest,
  resolveRange,
  type ContentRange,
  type RangeRequest,
} from '../src/http/content-range.js';
import { formatDigestField, parseDigestField } from '../src/http/digest-field.js';
import { formatEntityTag, parseEntityTag, strongMatch } from '../src/http/entity-tag.js';
import {
  parseDictionary,
  serializeDictionary,
  type BareItem,
  type Member,
} from '../src/http/structured-field.js';

const NUM_RUNS = 10_000;
/** Strings biased towards the characters these grammars care about. */
const headerish = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: fc.constantFrom(...'bytes =-*/0123456789,;:"W\\ \t()?aAz+'), maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

describe('Content-Range and Range', () => {
  test('golden examples (RFC 9110 sections 14.1.2, 14.4)', () => {
    assert.deepEqual(parseContentRange('bytes 42-1233/1234'), {
      kind: 'satisfied',
      start: 42,
      end: 1234,
      totalBytes: 1234,
    });
    assert.deepEqual(parseContentRange('BYTES 0-0/*'), {
      kind: 'satisfied',
      start: 0,
      end: 1,
      totalBytes: undefined,
    });
    assert.deepEqual(parseContentRange(' bytes */1234 '), {
      kind: 'unsatisfied',
      totalBytes: 1234,
    });
    for (const bad of [
      undefined,
      '',
      'bytes 5-4/10',
      'bytes 0-10/10',
      'bytes 0-1',
      'items 0-1/2',
      'bytes 0-1/2, bytes 3-4/5',
      'bytes 1234567890123456-1234567890123457/*',
      'bytes -1-2/3',
    ]) {
      assert.equal(parseContentRange(bad), undefined, String(bad));
    }
    assert.deepEqual(parseRangeRequest('bytes=0-499'), { kind: 'from-to', first: 0, last: 499 });
    assert.deepEqual(parseRangeRequest('bytes=9500-'), { kind: 'from', first: 9500 });
    assert.deepEqual(parseRangeRequest('bytes=-500'), { kind: 'suffix', length: 500 });
    assert.equal(parseRangeRequest('bytes=0-1,5-6'), undefined);
    assert.equal(parseRangeRequest('bytes=5-1'), undefined);
    assert.deepEqual(resolveRange({ kind: 'from-to', first: 5, last: 99 }, 10), {
      start: 5,
      end: 10,
    });
    assert.deepEqual(resolveRange({ kind: 'suffix', length: 500 }, 10), { start: 0, end: 10 });
    assert.equal(resolveRange({ kind: 'from', first: 10 }, 10), 'unsatisfiable');
    assert.equal(resolveRange({ kind: 'suffix', length: 0 }, 10), 'unsatisfiable');
  });

  test('arbitrary strings never throw', () => {
    fc.assert(
      fc.property(headerish, (text) => {
        parseContentRange(text);
        parseContentRange(`bytes ${text}`);
        parseRangeRequest(text);
        parseRangeRequest(`bytes=${text}`);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  const position = fc.integer({ min: 0, max: 1e15 - 2 });
  const contentRange: fc.Arbitrary<ContentRange> = fc.oneof(
    fc
      .tuple(position, position, fc.option(position, { nil: undefined }))
      .map(([a, b, extra]): ContentRange => {
        const start = Math.min(a, b);
        const end = Math.max(a, b) + 1;
        return {
          kind: 'satisfied',
          start,
          end,
          totalBytes: extra === undefined ? undefined : Math.min(end + extra, 1e15 - 1),
        };
      }),
    position.map((totalBytes): ContentRange => ({ kind: 'unsatisfied', totalBytes })),
  );

  test('format -> parse round trips', () => {
    fc.assert(
      fc.property(contentRange, (range) => {
        assert.deepEqual(parseContentRange(formatContentRange(range)), range);
      }),
      { numRuns: NUM_RUNS },
    );
    const rangeRequest: fc.Arbitrary<RangeRequest> = fc.oneof(
      fc.tuple(position, position).map(([a, b]): RangeRequest => ({
        kind: 'from-to',
        first: Math.min(a, b),
        last: Math.max(a, b),
      })),
      position.map((first): RangeRequest => ({ kind: 'from', first })),
      position.map((length): RangeRequest => ({ kind: 'suffix', length })),
    );
    fc.assert(
      fc.property(rangeRequest, (range) => {
        assert.deepEqual(parseRangeRequest(formatRangeRequest(range)), range);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('a resolved range always lies inside the object', () => {
    fc.assert(
      fc.property(headerish, fc.integer({ min: 0, max: 1e12 }), (text, size) => {
        const request = parseRangeRequest(`bytes=${text}`);
        if (request === undefined) return;
        const resolved = resolveRange(request, size);
        if (resolved === 'unsatisfiable') return;
        assert.ok(resolved.start >= 0 && resolved.start < resolved.end && resolved.end <= size);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('ETag', () => {
  test('golden examples (RFC 9110 section 8.8.3)', () => {
    assert.deepEqual(parseEntityTag('"xyzzy"'), { weak: false, opaqueTag: '"xyzzy"' });
    assert.deepEqual(parseEntityTag('W/"xyzzy"'), { weak: true, opaqueTag: '"xyzzy"' });
    assert.deepEqual(parseEntityTag('""'), { weak: false, opaqueTag: '""' });
    for (const bad of [undefined, 'xyzzy', '"a"b"', 'w/"x"', '"x', 'W/ "x"', '"a b"']) {
      assert.equal(parseEntityTag(bad), undefined, String(bad));
    }
    // The strong comparison table of RFC 9110 section 8.8.3.2.
    const [weak1, weak2, strong1] = ['W/"1"', 'W/"2"', '"1"'].map(parseEntityTag);
    assert.equal(strongMatch(weak1, weak1), false);
    assert.equal(strongMatch(weak1, weak2), false);
    assert.equal(strongMatch(weak1, strong1), false);
    assert.equal(strongMatch(strong1, strong1), true);
  });

  test('arbitrary strings never throw; valid tags round trip', () => {
    fc.assert(
      fc.property(headerish, (text) => {
        const tag = parseEntityTag(text);
        if (tag !== undefined) assert.deepEqual(parseEntityTag(formatEntityTag(tag)), tag);
      }),
      { numRuns: NUM_RUNS },
    );
    const etagc = fc
      .integer({ min: 0x21, max: 0xff })
      .filter((code) => code !== 0x22 && code !== 0x7f)
      .map((code) => String.fromCharCode(code));
    fc.assert(
      fc.property(fc.boolean(), fc.string({ unit: etagc, maxLength: 40 }), (weak, body) => {
        const tag = { weak, opaqueTag: `"${body}"` };
        assert.deepEqual(parseEntityTag(formatEntityTag(tag)), tag);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('Structured Field Dictionaries and digest fields', () => {
  const SHA256_EMPTY = Buffer.from(
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'hex',
  );

  test('golden examples (RFC 9530 appendix B, RFC 8941)', () => {
    const both = parseDigestField(
      'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:, sha-512=:z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==:',
    );
    assert.deepEqual(Buffer.from(both['sha-256'] ?? []), SHA256_EMPTY);
    assert.equal(both['sha-512']?.length, 64);
    // Parameters and unknown or deprecated algorithms are ignored; unpadded base64 is read.
    const unpadded = parseDigestField(
      'md5=:1B2M2Y8AsgTpgAmY7PhCfg==:, sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU:;p=1',
    );
    assert.deepEqual(Object.keys(unpadded), ['sha-256']);
    // A wrong length or a wrong type states nothing.
    assert.deepEqual(parseDigestField('sha-256=:AAAA:, sha-512="abc"'), {});
    // One invalid member fails the whole field (RFC 8941 section 4.2).
    assert.deepEqual(
      parseDigestField('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:, Bad=1'),
      {},
    );
    assert.deepEqual(
      parseDigestField('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:,'),
      {},
    );
    assert.deepEqual(parseDigestField(undefined), {});
    // RFC 8941 examples.
    const dictionary = parseDictionary('a=?0, b, c; foo=bar, d=(1 2);x=4.5, e="q\\"s"');
    assert.deepEqual([...(dictionary?.keys() ?? [])], ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(dictionary?.get('a'), {
      kind: 'item',
      value: { type: 'boolean', value: false },
      parameters: new Map(),
    });
    assert.equal(parseDictionary('a=1, a=2')?.get('a')?.kind, 'item');
    assert.deepEqual(parseDictionary('a=1, a=2')?.get('a'), {
      kind: 'item',
      value: { type: 'integer', value: 2 },
      parameters: new Map(),
    });
    for (const bad of ['a=1.2345', 'a=1234567890123456', 'A=1', 'a=@1', 'a=(1', 'a="x', '=1']) {
      assert.equal(parseDictionary(bad), undefined, bad);
    }
  });

  test('arbitrary strings never throw', () => {
    fc.assert(
      fc.property(headerish, (text) => {
        parseDictionary(text);
        parseDigestField(text);
        parseDigestField(`sha-256=${text}`);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  const key = fc
    .tuple(
      fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz*'),
      fc.string({ unit: fc.constantFrom(...'abcxyz0123456789_-.*'), maxLength: 8 }),
    )
    .map(([first, rest]) => first + rest);
  const bareItem: fc.Arbitrary<BareItem> = fc.oneof(
    fc
      .integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 })
      .filter((n) => !Object.is(n, -0))
      .map((value): BareItem => ({ type: 'integer', value })),
    fc
      .integer({ min: -999_999_999_999, max: 999_999_999_999 })
      .chain((whole) =>
        fc
          .integer({ min: 0, max: 999 })
          // One division, so the value is the double nearest the 3-digit decimal (as a parser
          // reads it); `whole + milli / 1000` can land one ulp away (-2.3810000000000002).
          .map((milli) => (whole * 1000 + Math.sign(whole || 1) * milli) / 1000),
      )
      .filter((n) => !Object.is(n, -0))
      .map((value): BareItem => ({ type: 'decimal', value })),
    fc
      .string({
        unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
        maxLength: 20,
      })
      .map((value): BareItem => ({ type: 'string', value })),
    fc
      .tuple(
        fc.constantFrom(...'aZ*'),
        fc.string({ unit: fc.constantFrom(..."!#$%&'*+-.^_`|~09aZ:/"), maxLength: 10 }),
      )
      .map(([first, rest]): BareItem => ({ type: 'token', value: first + rest })),
    fc.uint8Array({ maxLength: 70 }).map((value): BareItem => ({ type: 'byte-sequence', value })),
    fc.boolean().map((value): BareItem => ({ type: 'boolean', value })),
  );
  const parameters = fc
    .array(fc.tuple(key, bareItem), { maxLength: 3 })
    .map((entries) => new Map(entries));
  const member: fc.Arbitrary<Member> = fc.oneof(
    fc.record({ kind: fc.constant('item' as const), value: bareItem, parameters }),
    fc.record({
      kind: fc.constant('inner-list' as const),
      items: fc.array(fc.record({ value: bareItem, parameters }), { maxLength: 3 }),
      parameters,
    }),
  );

  test('serialize -> parse round trips', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(key, member), { minLength: 1, maxLength: 5 }), (entries) => {
        const dictionary = new Map(entries);
        const parsed = parseDictionary(serializeDictionary(dictionary));
        assert.deepEqual(normalize(parsed), normalize(dictionary));
      }),
      { numRuns: NUM_RUNS },
    );
    fc.assert(
      fc.property(
        fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
        fc.option(fc.uint8Array({ minLength: 64, maxLength: 64 }), { nil: undefined }),
        (sha256, sha512) => {
          const digests = {
            ...(sha256 === undefined ? {} : { 'sha-256': sha256 }),
            ...(sha512 === undefined ? {} : { 'sha-512': sha512 }),
          };
          assert.deepEqual(parseDigestField(formatDigestField(digests)), digests);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

/** Byte sequences as plain arrays, so deepEqual compares contents, not Buffer vs Uint8Array. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (value instanceof Map) return [...value].map(([k, v]) => [k, normalize(v)]);
  if (Array.isArray(value)) return value.map(normalize);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}
