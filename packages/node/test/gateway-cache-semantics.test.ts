/**
 * The gateway's caching semantics (src/gateway/cache-semantics.ts): table-driven cases from
 * RFC 9110 and RFC 9111, each named after what it asserts; fast-check properties (header text
 * never throws, plans are well-formed, durations are finite and non-negative); and planRange
 * against a real nginx for single ranges, skipped with a message when nginx is absent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  cacheDecision,
  freshFor,
  storedFreshness,
  carriesCredentials,
  currentAgeMs,
  evaluatePreconditions,
  freshnessLifetimeMs,
  mayServeStale,
  multipartByteranges,
  mustRevalidate,
  parseCacheControl,
  parseHttpDate,
  planRange,
  responseStorable,
  revalidationHeaders,
  varyFieldNames,
  type HeaderFields,
  type RangePlan,
} from '../src/gateway/cache-semantics.js';
import { parseEntityTagList } from '../src/gateway/header-fields.js';
import { NGINX_MISSING, startNginx, type NginxServer } from './support/nginx.js';

const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
console.log(`fast-check SEED=${SEED} (set FC_SEED to replay)`);
const runs = { numRuns: 2000, seed: SEED };

const single = (start: number, end: number): RangePlan => ({ kind: 'single', start, end });
const multi = (...ranges: [number, number][]): RangePlan => ({
  kind: 'multi',
  ranges: ranges.map(([start, end]) => ({ start, end })),
});
const WHOLE: RangePlan = { kind: 'whole' };
const UNSATISFIABLE: RangePlan = { kind: 'unsatisfiable' };

describe('planRange', () => {
  const cases: [string, string | undefined, number, RangePlan][] = [
    ['no Range is the whole object', undefined, 10000, WHOLE],
    ['bytes=0-499 on a 10000-byte object is bytes 0-499', 'bytes=0-499', 10000, single(0, 500)],
    ['bytes=500-999 is the second 500 bytes', 'bytes=500-999', 10000, single(500, 1000)],
    [
      'bytes=-500 on a 10000-byte object is bytes 9500-9999',
      'bytes=-500',
      10000,
      single(9500, 10000),
    ],
    [
      'bytes=9500- on a 10000-byte object is bytes 9500-9999',
      'bytes=9500-',
      10000,
      single(9500, 10000),
    ],
    ['bytes=0-0 is the first byte', 'bytes=0-0', 10000, single(0, 1)],
    ['bytes=-1 is the last byte', 'bytes=-1', 10000, single(9999, 10000)],
    [
      'a last-pos past the end is clamped to total-1',
      'bytes=9000-20000',
      10000,
      single(9000, 10000),
    ],
    [
      'a huge last-pos (25 digits) is clamped',
      'bytes=5-9999999999999999999999999',
      10,
      single(5, 10),
    ],
    [
      'a suffix longer than the object is the whole object as one range',
      'bytes=-20000',
      10000,
      single(0, 10000),
    ],
    ['bytes=0- on one request-spec is a 206 of everything', 'bytes=0-', 10000, single(0, 10000)],
    ['the range unit is case-insensitive', 'BYTES=1-2', 10, single(1, 3)],
    ['a first-pos at the end is unsatisfiable', 'bytes=10000-', 10000, UNSATISFIABLE],
    ['a first-pos past the end is unsatisfiable', 'bytes=20000-20010', 10000, UNSATISFIABLE],
    ['a zero-length suffix is unsatisfiable', 'bytes=-0', 10000, UNSATISFIABLE],
    ['a huge first-pos is unsatisfiable', 'bytes=99999999999999999999-', 10, UNSATISFIABLE],
    ['an int-range on a zero-length object is unsatisfiable', 'bytes=0-0', 0, UNSATISFIABLE],
    ['bytes=0- on a zero-length object is unsatisfiable', 'bytes=0-', 0, UNSATISFIABLE],
    [
      'a non-zero suffix on a zero-length object is satisfiable: the whole (empty) object',
      'bytes=-5',
      0,
      WHOLE,
    ],
    ['last-pos below first-pos makes the header invalid: whole', 'bytes=5-4', 10, WHOLE],
    ['another unit is ignored: whole', 'items=0-1', 10, WHOLE],
    ['no range-spec is invalid: whole', 'bytes=', 10, WHOLE],
    ['garbage is ignored: whole', 'bytes=a-b', 10, WHOLE],
    ['one invalid range-spec invalidates the whole set', 'bytes=0-1,x', 10, WHOLE],
    ['a negative first-pos is invalid', 'bytes=--1', 10, WHOLE],
    ['empty list elements are allowed', 'bytes=, 0-1 ,', 10, single(0, 2)],
    [
      'bytes=0-1,5-9,-3 on 20 bytes is three parts',
      'bytes=0-1,5-9,-3',
      20,
      multi([0, 2], [5, 10], [17, 20]),
    ],
    ['several ranges are sorted', 'bytes=8-9,0-1', 20, multi([0, 2], [8, 10])],
    ['overlapping ranges coalesce', 'bytes=0-5,3-9,15-16', 20, multi([0, 10], [15, 17])],
    ['adjacent ranges coalesce', 'bytes=0-4,5-9,15-', 20, multi([0, 10], [15, 20])],
    ['ranges that coalesce to one are a single-part 206', 'bytes=0-4,5-9', 20, single(0, 10)],
    ['several ranges covering the whole object are answered whole', 'bytes=0-9,10-', 20, WHOLE],
    ['unsatisfiable ranges are dropped and the rest served', 'bytes=0-1,50-60', 20, single(0, 2)],
    ['several ranges all unsatisfiable are a 416', 'bytes=50-60,-0', 20, UNSATISFIABLE],
    [
      '16 parts are served as multipart',
      `bytes=${[...Array(16).keys()].map((i) => `${i * 2}-${i * 2}`).join(',')}`,
      100,
      multi(...[...Array(16).keys()].map((i): [number, number] => [i * 2, i * 2 + 1])),
    ],
    [
      '17 parts are answered whole',
      `bytes=${[...Array(17).keys()].map((i) => `${i * 2}-${i * 2}`).join(',')}`,
      100,
      WHOLE,
    ],
  ];
  for (const [name, header, total, expected] of cases) {
    test(name, () => assert.deepEqual(planRange(header, total, undefined, {}), expected));
  }

  test("multi: 'whole' answers several range-specs whole, as S3 does", () => {
    assert.deepEqual(planRange('bytes=0-1,5-9', 20, undefined, {}, { multi: 'whole' }), WHOLE);
    assert.deepEqual(planRange('bytes=50-,60-', 20, undefined, {}, { multi: 'whole' }), WHOLE);
    assert.deepEqual(planRange('bytes=5-9', 20, undefined, {}, { multi: 'whole' }), single(5, 10));
    assert.deepEqual(planRange('bytes=50-', 20, undefined, {}, { multi: 'whole' }), UNSATISFIABLE);
  });

  const lastModified = 'Sun, 06 Nov 1994 08:49:37 GMT';
  const ifRangeCases: [string, string, RangePlan][] = [
    ['If-Range with the current strong ETag serves the range', '"v1"', single(0, 2)],
    ['If-Range with another ETag serves the whole', '"v2"', WHOLE],
    ['If-Range with a weak ETag never matches (strong comparison)', 'W/"v1"', WHOLE],
    ['If-Range with the exact Last-Modified serves the range', lastModified, single(0, 2)],
    [
      'If-Range with the same instant in rfc850 form serves the range',
      'Sunday, 06-Nov-94 08:49:37 GMT',
      single(0, 2),
    ],
    [
      'If-Range with a later date serves the whole (only an equal date matches)',
      'Sun, 06 Nov 1994 08:49:38 GMT',
      WHOLE,
    ],
    ['If-Range that is neither a tag nor a date serves the whole', 'yesterday', WHOLE],
    ['an empty If-Range serves the whole', '', WHOLE],
  ];
  for (const [name, ifRange, expected] of ifRangeCases) {
    test(name, () => {
      assert.deepEqual(
        planRange('bytes=0-1', 10, ifRange, { etag: '"v1"', lastModified }),
        expected,
      );
    });
  }
  test('If-Range with a weak current ETag never matches', () => {
    assert.deepEqual(planRange('bytes=0-1', 10, 'W/"v1"', { etag: 'W/"v1"' }), WHOLE);
  });
  test('If-Range with a date and no current Last-Modified serves the whole', () => {
    assert.deepEqual(planRange('bytes=0-1', 10, lastModified, { etag: '"v1"' }), WHOLE);
  });
  test('a negative or fractional totalBytes is a RangeError', () => {
    assert.throws(() => planRange('bytes=0-1', -1, undefined, {}), RangeError);
    assert.throws(() => planRange('bytes=0-1', 1.5, undefined, {}), RangeError);
  });

  test('property: never throws on arbitrary text, and plans are sorted, disjoint, in range', () => {
    const rangeText = fc.oneof(
      fc.string(),
      fc
        .array(
          fc.oneof(
            fc.tuple(fc.nat(200), fc.option(fc.nat(200))).map(([a, b]) => `${a}-${b ?? ''}`),
            fc.nat(200).map((n) => `-${n}`),
            fc.constantFrom('', ' ', 'x', '-', '99999999999999999999-'),
          ),
          { minLength: 1, maxLength: 20 },
        )
        .map((specs) => `bytes=${specs.join(',')}`),
    );
    fc.assert(
      fc.property(
        rangeText,
        fc.nat(150),
        fc.option(fc.string()),
        fc.constantFrom('multipart' as const, 'whole' as const),
        (header, total, ifRange, mode) => {
          const plan = planRange(
            header,
            total,
            ifRange ?? undefined,
            { etag: '"a"' },
            { multi: mode },
          );
          const ranges = plan.kind === 'single' ? [plan] : plan.kind === 'multi' ? plan.ranges : [];
          let previousEnd = -1;
          for (const range of ranges) {
            assert.ok(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end));
            assert.ok(range.start >= 0 && range.start < range.end && range.end <= total);
            assert.ok(range.start > previousEnd, 'sorted, disjoint and not adjacent');
            previousEnd = range.end;
          }
          if (plan.kind === 'multi') {
            assert.ok(plan.ranges.length >= 2 && plan.ranges.length <= 16);
            assert.equal(mode, 'multipart');
          }
        },
      ),
      runs,
    );
  });

  test('property: a single range-spec agrees with a direct reading of RFC 9110 14.1.2', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.nat(100), fc.nat(100), (a, b, total) => {
        const [first, last] = a <= b ? [a, b] : [b, a];
        const plan = planRange(`bytes=${first}-${last}`, total, undefined, {});
        if (first >= total) assert.deepEqual(plan, UNSATISFIABLE);
        else assert.deepEqual(plan, single(first, Math.min(last, total - 1) + 1));
      }),
      runs,
    );
  });
});

describe('multipartByteranges', () => {
  test('frames parts as RFC 9110 14.6 shows, and Content-Length counts every byte', () => {
    const body = multipartByteranges(
      [
        { start: 500, end: 1000 },
        { start: 7000, end: 8000 },
      ],
      8000,
      'application/pdf',
      'THIS_STRING_SEPARATES',
    );
    assert.equal(body.contentType, 'multipart/byteranges; boundary=THIS_STRING_SEPARATES');
    assert.equal(
      body.parts[0]?.headerText,
      '--THIS_STRING_SEPARATES\r\nContent-Type: application/pdf\r\nContent-Range: bytes 500-999/8000\r\n\r\n',
    );
    assert.equal(
      body.parts[1]?.headerText,
      '\r\n--THIS_STRING_SEPARATES\r\nContent-Type: application/pdf\r\nContent-Range: bytes 7000-7999/8000\r\n\r\n',
    );
    assert.equal(body.closeText, '\r\n--THIS_STRING_SEPARATES--\r\n');
    const expected =
      body.parts.reduce((n, p) => n + p.headerText.length + p.end - p.start, 0) +
      body.closeText.length;
    assert.equal(body.contentLength, expected);
    assert.equal(body.parts[0]?.header.length, body.parts[0]?.headerText.length);
  });
  test('a boundary that is not a token is quoted in Content-Type', () => {
    const body = multipartByteranges([{ start: 0, end: 1 }], 1, undefined, 'a b:c');
    assert.equal(body.contentType, 'multipart/byteranges; boundary="a b:c"');
    assert.ok(!body.parts[0]?.headerText.includes('Content-Type'));
  });
  test('a Content-Type with a line break is left out of the parts, not thrown on', () => {
    const body = multipartByteranges([{ start: 0, end: 1 }], 1, 'text/plain\r\nX: y', 'b');
    assert.equal(body.parts[0]?.headerText, '--b\r\nContent-Range: bytes 0-0/1\r\n\r\n');
  });
  test('a bad boundary or range is a RangeError', () => {
    assert.throws(() => multipartByteranges([{ start: 0, end: 1 }], 1, undefined, ''), RangeError);
    assert.throws(
      () => multipartByteranges([{ start: 0, end: 1 }], 1, undefined, 'x'.repeat(71)),
      RangeError,
    );
    assert.throws(() => multipartByteranges([{ start: 1, end: 1 }], 1, undefined, 'b'), RangeError);
    assert.throws(() => multipartByteranges([{ start: 0, end: 2 }], 1, undefined, 'b'), RangeError);
  });
  test('property: the body assembled from the framing has exactly contentLength bytes', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: 1, max: 200 }),
        fc.string(),
        (header, total, type) => {
          const plan = planRange(header, total, undefined, {});
          if (plan.kind !== 'multi') return;
          const body = multipartByteranges(plan.ranges, total, type, '0123456789abcdef');
          let length = body.close.length;
          for (const part of body.parts) length += part.header.length + part.end - part.start;
          assert.equal(length, body.contentLength);
        },
      ),
      runs,
    );
  });
});

describe('parseHttpDate', () => {
  const instant = 784111777000;
  const cases: [string, string, number | undefined][] = [
    ['IMF-fixdate is read', 'Sun, 06 Nov 1994 08:49:37 GMT', instant],
    ['rfc850-date is read', 'Sunday, 06-Nov-94 08:49:37 GMT', instant],
    ['asctime-date is read', 'Sun Nov  6 08:49:37 1994', instant],
    ['surrounding whitespace is ignored', '  Sun, 06 Nov 1994 08:49:37 GMT ', instant],
    ['a lowercase month is not a date', 'Sun, 06 nov 1994 08:49:37 GMT', undefined],
    ['"0" is not a date', '0', undefined],
    ['30 Feb is not a date', 'Sun, 30 Feb 1994 08:49:37 GMT', undefined],
    ['hour 24 is not a date', 'Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    [
      'a list of two dates is not a date',
      'Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT',
      undefined,
    ],
    ['another zone is not a date', 'Sun, 06 Nov 1994 08:49:37 UTC', undefined],
  ];
  for (const [name, text, expected] of cases)
    test(name, () => assert.equal(parseHttpDate(text), expected));
  test('property: every Date round-trips through IMF-fixdate', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253402300799 }), (seconds) => {
        const date = new Date(seconds * 1000);
        assert.equal(parseHttpDate(date.toUTCString()), seconds * 1000);
      }),
      runs,
    );
  });
});

describe('header-field parsers never throw', () => {
  test('property: parseHttpDate gives an integer or undefined for any text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' })), (text) => {
        const ms = parseHttpDate(text);
        assert.ok(ms === undefined || Number.isSafeInteger(ms));
      }),
      runs,
    );
  });
  test('property: parseCacheControl reads back any list of directives it could be sent', () => {
    const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
    const argument = fc.oneof(
      fc.constant(undefined),
      fc.nat().map(String),
      fc.stringMatching(/^[ -!#-[\]-~]{0,8}$/).map((text) => `"${text}"`),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(token, argument), { selector: ([name]) => name }),
        (list) => {
          const text = list
            .map(([name, arg]) => (arg === undefined ? name : `${name}=${arg}`))
            .join(', ');
          const directives = parseCacheControl(text);
          assert.ok(directives !== undefined, text);
          for (const [name, arg] of list) {
            const unquoted = arg?.startsWith('"') ? arg.slice(1, -1) : arg;
            assert.equal(directives.get(name)?.argument, unquoted, text);
          }
          parseCacheControl(text + '"'); // never throws on a broken tail
        },
      ),
      runs,
    );
  });
  test('property: parseEntityTagList reads back a list of tags, commas inside tags included', () => {
    const tag = fc
      .tuple(fc.boolean(), fc.stringMatching(/^[!#-~]{0,8}$/))
      .map(([weak, opaque]) => `${weak ? 'W/' : ''}"${opaque}"`);
    fc.assert(
      fc.property(fc.array(tag, { minLength: 1, maxLength: 6 }), fc.string(), (tags, noise) => {
        const list = parseEntityTagList(tags.join(' , '));
        assert.ok(Array.isArray(list));
        assert.deepEqual(
          list.map((t) => `${t.weak ? 'W/' : ''}${t.opaqueTag}`),
          tags,
        );
        const other = parseEntityTagList(noise);
        assert.ok(other === undefined || other === '*' || Array.isArray(other));
      }),
      runs,
    );
  });
});

describe('parseCacheControl', () => {
  test('names are case-insensitive and quoted arguments unquoted', () => {
    const directives = parseCacheControl('Max-Age=60, no-cache="set-cookie, x", public');
    assert.equal(directives?.get('max-age')?.argument, '60');
    assert.equal(directives?.get('no-cache')?.argument, 'set-cookie, x');
    assert.equal(directives?.get('public')?.argument, undefined);
  });
  test('a repeated directive with another value is conflicting', () => {
    assert.equal(parseCacheControl('max-age=1, max-age=2')?.get('max-age')?.conflicting, true);
    assert.equal(parseCacheControl('max-age=1, max-age=1')?.get('max-age')?.conflicting, false);
  });
  test('an unterminated quoted string is invalid', () => {
    assert.equal(parseCacheControl('no-cache="a'), undefined);
  });
});

describe('evaluatePreconditions', () => {
  const lm = 'Sun, 06 Nov 1994 08:49:37 GMT';
  const earlier = 'Sat, 05 Nov 1994 08:49:37 GMT';
  const later = 'Mon, 07 Nov 1994 08:49:37 GMT';
  const current = { etag: '"v1"', lastModified: lm, exists: true };
  const weakCurrent = { etag: 'W/"v1"', lastModified: lm, exists: true };
  type Case = [
    string,
    string,
    HeaderFields,
    { etag?: string; lastModified?: string; exists: boolean },
    string,
  ];
  const cases: Case[] = [
    ['no conditionals proceed', 'GET', {}, current, 'proceed'],
    ['If-Match with the current tag proceeds', 'PUT', { 'if-match': '"v1"' }, current, 'proceed'],
    [
      'If-Match with a list holding the current tag proceeds',
      'PUT',
      { 'if-match': '"x", "v1"' },
      current,
      'proceed',
    ],
    [
      'If-Match with another tag is 412',
      'PUT',
      { 'if-match': '"v2"' },
      current,
      'precondition-failed',
    ],
    [
      'If-Match uses the strong comparison: a weak tag is 412',
      'GET',
      { 'if-match': 'W/"v1"' },
      weakCurrent,
      'precondition-failed',
    ],
    ['If-Match: * proceeds when the object exists', 'PUT', { 'if-match': '*' }, current, 'proceed'],
    [
      'If-Match: * is 412 when the object does not exist',
      'PUT',
      { 'if-match': '*' },
      { exists: false },
      'precondition-failed',
    ],
    [
      'an unparsable If-Match matches nothing: 412',
      'GET',
      { 'if-match': 'v1' },
      current,
      'precondition-failed',
    ],
    [
      'If-Unmodified-Since at Last-Modified proceeds',
      'PUT',
      { 'if-unmodified-since': lm },
      current,
      'proceed',
    ],
    [
      'If-Unmodified-Since before Last-Modified is 412',
      'GET',
      { 'if-unmodified-since': earlier },
      current,
      'precondition-failed',
    ],
    [
      'If-Unmodified-Since is ignored when If-Match is present',
      'GET',
      { 'if-match': '"v1"', 'if-unmodified-since': earlier },
      current,
      'proceed',
    ],
    [
      'an invalid If-Unmodified-Since is ignored',
      'GET',
      { 'if-unmodified-since': 'soon' },
      current,
      'proceed',
    ],
    [
      'If-None-Match with the current tag is 304 for GET',
      'GET',
      { 'if-none-match': '"v1"' },
      current,
      'not-modified',
    ],
    [
      'If-None-Match with the current tag is 304 for HEAD',
      'HEAD',
      { 'if-none-match': '"v1"' },
      current,
      'not-modified',
    ],
    [
      'If-None-Match with the current tag is 412 for PUT',
      'PUT',
      { 'if-none-match': '"v1"' },
      current,
      'precondition-failed',
    ],
    [
      'If-None-Match uses the weak comparison: W/"v1" matches "v1"',
      'GET',
      { 'if-none-match': 'W/"v1"' },
      current,
      'not-modified',
    ],
    [
      'If-None-Match with a comma inside a tag is read as one tag',
      'GET',
      { 'if-none-match': '"a,b", "v1"' },
      current,
      'not-modified',
    ],
    [
      'If-None-Match with other tags proceeds',
      'GET',
      { 'if-none-match': '"x", "y"' },
      current,
      'proceed',
    ],
    [
      'If-None-Match: * is 304 for GET when the object exists',
      'GET',
      { 'if-none-match': '*' },
      current,
      'not-modified',
    ],
    [
      'If-None-Match: * proceeds for a PUT that creates',
      'PUT',
      { 'if-none-match': '*' },
      { exists: false },
      'proceed',
    ],
    [
      'If-None-Match: * is 412 for a PUT over an existing object',
      'PUT',
      { 'if-none-match': '*' },
      current,
      'precondition-failed',
    ],
    [
      'If-Modified-Since at Last-Modified is 304',
      'GET',
      { 'if-modified-since': lm },
      current,
      'not-modified',
    ],
    [
      'If-Modified-Since after Last-Modified is 304',
      'GET',
      { 'if-modified-since': later },
      current,
      'not-modified',
    ],
    [
      'If-Modified-Since before Last-Modified proceeds',
      'GET',
      { 'if-modified-since': earlier },
      current,
      'proceed',
    ],
    [
      'If-Modified-Since is ignored when If-None-Match is present',
      'GET',
      { 'if-none-match': '"x"', 'if-modified-since': later },
      current,
      'proceed',
    ],
    [
      'If-Modified-Since is ignored for methods other than GET and HEAD',
      'POST',
      { 'if-modified-since': later },
      current,
      'proceed',
    ],
    [
      'an invalid If-Modified-Since is ignored',
      'GET',
      { 'if-modified-since': 'Sun, 06 Nov 1994' },
      current,
      'proceed',
    ],
    [
      'If-Modified-Since without a Last-Modified is ignored',
      'GET',
      { 'if-modified-since': later },
      { etag: '"v1"', exists: true },
      'proceed',
    ],
    [
      'If-Match is evaluated before If-None-Match',
      'GET',
      { 'if-match': '"v2"', 'if-none-match': '"v1"' },
      current,
      'precondition-failed',
    ],
    [
      'GET of a missing object ignores preconditions (its answer is 404)',
      'GET',
      { 'if-match': '"v1"' },
      { exists: false },
      'proceed',
    ],
  ];
  for (const [name, method, headers, representation, expected] of cases) {
    test(name, () =>
      assert.equal(evaluatePreconditions(method, headers, representation), expected),
    );
  }
  const headerValue = fc.oneof(
    fc.string(),
    fc.constantFrom('*', '"v1"', 'W/"v1"', '"a", "b"', 'Sun, 06 Nov 1994 08:49:37 GMT'),
    fc.array(fc.string(), { maxLength: 3 }),
  );
  test('property: never throws, and a request without conditionals proceeds', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE'),
        fc.dictionary(
          fc.constantFrom(
            'if-match',
            'if-none-match',
            'if-modified-since',
            'if-unmodified-since',
            'range',
            'x',
          ),
          headerValue,
        ),
        fc.record({
          etag: fc.option(fc.string()),
          lastModified: fc.option(fc.string()),
          exists: fc.boolean(),
        }),
        (method, headers, state) => {
          const representation = {
            etag: state.etag ?? undefined,
            lastModified: state.lastModified ?? undefined,
            exists: state.exists,
          };
          const verdict = evaluatePreconditions(method, headers, representation);
          assert.ok(['proceed', 'not-modified', 'precondition-failed'].includes(verdict));
          const plain = Object.fromEntries(
            Object.entries(headers).filter(([n]) => !n.startsWith('if-')),
          );
          assert.equal(evaluatePreconditions(method, plain, representation), 'proceed');
          if (method !== 'GET' && method !== 'HEAD') assert.notEqual(verdict, 'not-modified');
        },
      ),
      runs,
    );
  });
});

describe('revalidationHeaders', () => {
  test('sends If-None-Match and If-Modified-Since from the stored validators', () => {
    const lm = 'Sun, 06 Nov 1994 08:49:37 GMT';
    assert.deepEqual(revalidationHeaders({ etag: 'W/"v1"', lastModified: lm }), {
      'if-none-match': 'W/"v1"',
      'if-modified-since': lm,
    });
  });
  test('leaves out validators that do not parse', () => {
    assert.deepEqual(revalidationHeaders({ etag: 'v1', lastModified: 'yesterday' }), {});
    assert.deepEqual(revalidationHeaders({}), {});
  });
  test('what it sends makes evaluatePreconditions answer 304 for the same version', () => {
    const stored = { etag: '"v1"', lastModified: 'Sun, 06 Nov 1994 08:49:37 GMT' };
    assert.equal(
      evaluatePreconditions('GET', revalidationHeaders(stored), { ...stored, exists: true }),
      'not-modified',
    );
    assert.equal(
      evaluatePreconditions('GET', revalidationHeaders(stored), {
        ...stored,
        etag: '"v2"',
        exists: true,
      }),
      'proceed',
    );
  });
});

describe('responseStorable', () => {
  const cases: [string, string, number, HeaderFields, HeaderFields, boolean][] = [
    ['a plain 200 to GET is storable', 'GET', 200, {}, {}, true],
    ['a 200 with max-age is storable', 'GET', 200, {}, { 'cache-control': 'max-age=60' }, true],
    [
      'a 200 with no-cache is storable (revalidated on use)',
      'GET',
      200,
      {},
      { 'cache-control': 'no-cache' },
      true,
    ],
    ['HEAD responses are not stored as data', 'HEAD', 200, {}, {}, false],
    ['POST responses are not stored', 'POST', 200, {}, {}, false],
    ['206 is not stored (assembled by the gateway)', 'GET', 206, {}, {}, false],
    ['403 is never data', 'GET', 403, {}, {}, false],
    ['404 is never data', 'GET', 404, {}, { 'cache-control': 'max-age=60' }, false],
    ['503 is never data', 'GET', 503, {}, {}, false],
    [
      'response no-store is not stored',
      'GET',
      200,
      {},
      { 'cache-control': 'public, no-store' },
      false,
    ],
    ['request no-store is not stored', 'GET', 200, { 'cache-control': 'no-store' }, {}, false],
    [
      'private is not stored by a shared cache',
      'GET',
      200,
      {},
      { 'cache-control': 'private' },
      false,
    ],
    [
      'a qualified private is not stored either',
      'GET',
      200,
      {},
      { 'cache-control': 'private="x"' },
      false,
    ],
    [
      'with Authorization and no permission it is not stored',
      'GET',
      200,
      { authorization: 'Bearer t' },
      {},
      false,
    ],
    [
      'with Authorization and public it is stored',
      'GET',
      200,
      { authorization: 'Bearer t' },
      { 'cache-control': 'public' },
      true,
    ],
    [
      'with Authorization and s-maxage it is stored',
      'GET',
      200,
      { authorization: 'Bearer t' },
      { 'cache-control': 's-maxage=5' },
      true,
    ],
    [
      'with Authorization and must-revalidate it is stored',
      'GET',
      200,
      { authorization: 'Bearer t' },
      { 'cache-control': 'must-revalidate' },
      true,
    ],
    ['Vary: * is not stored', 'GET', 200, {}, { vary: 'Accept, *' }, false],
    ['Set-Cookie is not stored', 'GET', 200, {}, { 'set-cookie': ['a=b'] }, false],
    [
      'an unparsable Cache-Control is not stored',
      'GET',
      200,
      {},
      { 'cache-control': 'max-age="1' },
      false,
    ],
  ];
  for (const [name, method, status, req, res, expected] of cases) {
    test(name, () => {
      const verdict = responseStorable(method, status, req, res);
      assert.equal(verdict.storable, expected, JSON.stringify(verdict));
      if (!verdict.storable) assert.ok(verdict.reason.length > 0);
    });
  }
  test('varyFieldNames lowercases and dedupes', () => {
    assert.deepEqual(varyFieldNames({ vary: ['Origin, Accept-Encoding', 'origin'] }), [
      'origin',
      'accept-encoding',
    ]);
  });
});

describe('carriesCredentials', () => {
  test('Authorization, Cookie and presigned URLs carry credentials; a plain GET does not', () => {
    assert.match(
      carriesCredentials('https://b.test/k', { authorization: 'AWS4 x' }) ?? '',
      /authorization/,
    );
    assert.match(carriesCredentials('https://b.test/k', { cookie: 'a=b' }) ?? '', /cookie/);
    assert.match(carriesCredentials('https://b.test/k?X-Amz-Signature=ab', {}) ?? '', /presigned/);
    assert.equal(carriesCredentials('https://b.test/k?versionId=1', { accept: '*/*' }), undefined);
  });
});

describe('freshness', () => {
  const date = 'Sun, 06 Nov 1994 08:49:37 GMT';
  const dateMs = 784111777000;
  const cases: [string, HeaderFields, number][] = [
    ['s-maxage wins over max-age', { 'cache-control': 'max-age=60, s-maxage=5' }, 5000],
    [
      'max-age wins over Expires',
      { 'cache-control': 'max-age=60', date, expires: 'Sun, 06 Nov 1994 09:49:37 GMT' },
      60000,
    ],
    ['Expires - Date is the lifetime', { date, expires: 'Sun, 06 Nov 1994 09:49:37 GMT' }, 3600000],
    [
      'Expires before Date is a zero lifetime',
      { date, expires: 'Sun, 06 Nov 1994 07:49:37 GMT' },
      0,
    ],
    [
      'an invalid Expires ("0") means already expired',
      { date, expires: '0', 'last-modified': 'Sat, 05 Nov 1994 08:49:37 GMT' },
      0,
    ],
    ['an invalid max-age means stale', { 'cache-control': 'max-age=soon' }, 0],
    ['max-age in quoted form is read', { 'cache-control': 'max-age="7"' }, 7000],
    [
      'max-age repeated with another value means stale',
      { 'cache-control': 'max-age=60, max-age=70' },
      0,
    ],
    [
      'max-age beyond 2^31 s saturates',
      { 'cache-control': 'max-age=99999999999999999999' },
      2 ** 31 * 1000,
    ],
    [
      'the heuristic is 10% of Date - Last-Modified',
      { date, 'last-modified': 'Sun, 06 Nov 1994 06:49:37 GMT' },
      720000,
    ],
    [
      'the heuristic is capped at 24 hours',
      { date, 'last-modified': 'Sun, 06 Nov 1984 08:49:37 GMT' },
      86400000,
    ],
    ['no validator and no expiry is a zero lifetime', { date }, 0],
    [
      'a Last-Modified after Date is a zero lifetime',
      { date, 'last-modified': 'Mon, 07 Nov 1994 08:49:37 GMT' },
      0,
    ],
  ];
  for (const [name, headers, expected] of cases) {
    test(name, () => assert.equal(freshnessLifetimeMs(headers, dateMs), expected));
  }
  test('a missing Date is the response time for Expires and the heuristic', () => {
    assert.equal(freshnessLifetimeMs({ expires: 'Sun, 06 Nov 1994 08:50:37 GMT' }, dateMs), 60000);
  });
  test('no heuristic for a status that is not heuristically cacheable, unless public', () => {
    const headers = { date, 'last-modified': 'Sun, 06 Nov 1994 06:49:37 GMT' };
    assert.equal(freshnessLifetimeMs(headers, dateMs, 302), 0);
    assert.equal(
      freshnessLifetimeMs({ ...headers, 'cache-control': 'public' }, dateMs, 302),
      720000,
    );
  });

  test('current age: Age plus the response delay plus the resident time (RFC 9111 4.2.3)', () => {
    const timing = { requestTimeMs: dateMs - 2000, responseTimeMs: dateMs };
    assert.equal(currentAgeMs({ age: '10', date }, timing, dateMs + 5000), 10000 + 2000 + 5000);
  });
  test('current age: the apparent age wins when Date is older than Age says', () => {
    const timing = { requestTimeMs: dateMs + 60000, responseTimeMs: dateMs + 60000 };
    assert.equal(currentAgeMs({ age: '10', date }, timing, dateMs + 60000), 60000);
  });
  test('current age: an invalid Age is ignored (RFC 9111 5.1)', () => {
    const timing = { requestTimeMs: dateMs, responseTimeMs: dateMs };
    assert.equal(currentAgeMs({ age: '-5', date }, timing, dateMs + 1000), 1000);
  });
  test('current age: a list-based Age counts by its first member (RFC 9111 5.1)', () => {
    const timing = { requestTimeMs: dateMs, responseTimeMs: dateMs };
    assert.equal(currentAgeMs({ age: '7, 9', date }, timing, dateMs), 7000);
    assert.equal(currentAgeMs({ age: ['3', '4'], date }, timing, dateMs), 3000);
  });
  test('current age: a clock that went backwards does not make it negative', () => {
    assert.equal(currentAgeMs({}, { requestTimeMs: 10, responseTimeMs: 5 }, 0), 0);
  });

  const revalidationCases: [string, HeaderFields, HeaderFields, number, number, boolean][] = [
    ['a fresh response is served', {}, { 'cache-control': 'max-age=60' }, 1000, 60000, false],
    ['a stale response is revalidated', {}, {}, 60000, 60000, true],
    ['request no-cache revalidates', { 'cache-control': 'no-cache' }, {}, 0, 60000, true],
    [
      'request max-age=0 revalidates even at age 0',
      { 'cache-control': 'max-age=0' },
      {},
      0,
      60000,
      true,
    ],
    [
      'request max-age=10 revalidates at age 11 s',
      { 'cache-control': 'max-age=10' },
      {},
      11000,
      60000,
      true,
    ],
    [
      'request max-age=10 serves at age 10 s',
      { 'cache-control': 'max-age=10' },
      {},
      10000,
      60000,
      false,
    ],
    [
      'request min-fresh revalidates when too close to stale',
      { 'cache-control': 'min-fresh=30' },
      {},
      40000,
      60000,
      true,
    ],
    [
      'Pragma: no-cache without Cache-Control revalidates',
      { pragma: 'no-cache' },
      {},
      0,
      60000,
      true,
    ],
    [
      'Pragma is ignored when Cache-Control is present',
      { pragma: 'no-cache', 'cache-control': 'max-stale' },
      {},
      0,
      60000,
      false,
    ],
    [
      'response no-cache revalidates even when fresh',
      {},
      { 'cache-control': 'no-cache, max-age=60' },
      0,
      60000,
      true,
    ],
    [
      'must-revalidate does not stop serving a fresh response',
      {},
      { 'cache-control': 'must-revalidate' },
      0,
      60000,
      false,
    ],
    [
      'must-revalidate when stale revalidates',
      {},
      { 'cache-control': 'must-revalidate' },
      70000,
      60000,
      true,
    ],
    [
      'request max-stale does not make a stale response servable',
      { 'cache-control': 'max-stale=600' },
      {},
      70000,
      60000,
      true,
    ],
  ];
  for (const [name, req, res, age, lifetime, expected] of revalidationCases) {
    test(name, () => assert.equal(mustRevalidate(req, res, age, lifetime) !== undefined, expected));
  }
  test('mayServeStale is false for must-revalidate, proxy-revalidate, s-maxage and no-cache', () => {
    assert.equal(mayServeStale({ 'cache-control': 'max-age=60' }), true);
    for (const directive of ['must-revalidate', 'proxy-revalidate', 's-maxage=5', 'no-cache']) {
      assert.equal(mayServeStale({ 'cache-control': directive }), false, directive);
    }
  });

  test('cacheDecision: fresh within max-age, revalidate after, and always with credentials', () => {
    const stored = {
      headers: { 'cache-control': 'max-age=60', date },
      requestTimeMs: dateMs,
      responseTimeMs: dateMs,
    };
    const plain = { url: 'https://b.test/k', headers: {} };
    assert.equal(cacheDecision(plain, stored, dateMs + 59000), 'fresh');
    assert.equal(cacheDecision(plain, stored, dateMs + 60000), 'revalidate');
    assert.equal(
      cacheDecision({ ...plain, headers: { authorization: 'x' } }, stored, dateMs),
      'revalidate',
    );
    assert.equal(
      cacheDecision({ url: 'https://b.test/k?X-Amz-Signature=1', headers: {} }, stored, dateMs),
      'revalidate',
    );
  });

  const fieldNames = ['cache-control', 'expires', 'date', 'last-modified', 'age', 'vary', 'pragma'];
  const anyHeaders = fc.dictionary(
    fc.constantFrom(...fieldNames),
    fc.oneof(
      fc.string(),
      fc.constantFrom(
        'max-age=5',
        's-maxage=1, max-age=9',
        'no-cache',
        '0',
        '-1',
        'Sun, 06 Nov 1994 08:49:37 GMT',
        '99999999999999999999',
      ),
      fc.array(fc.string(), { maxLength: 3 }),
    ),
  );
  const time = fc.oneof(
    fc.integer({ min: 0, max: 4102444800000 }),
    fc.double({ min: 0, max: 4102444800000, noNaN: true }),
  );
  test('property: freshness functions never throw, and never return NaN or negative durations', () => {
    fc.assert(
      fc.property(
        anyHeaders,
        anyHeaders,
        time,
        time,
        time,
        fc.integer({ min: 100, max: 599 }),
        (req, res, t1, t2, now, status) => {
          const lifetime = freshnessLifetimeMs(res, t2, status);
          const age = currentAgeMs(res, { requestTimeMs: t1, responseTimeMs: t2 }, now);
          for (const ms of [lifetime, age])
            assert.ok(Number.isSafeInteger(ms) && ms >= 0, String(ms));
          const reason = mustRevalidate(req, res, age, lifetime);
          assert.ok(reason === undefined || typeof reason === 'string');
          const decision = cacheDecision(
            { url: 'https://b.test/k', headers: req },
            { headers: res, requestTimeMs: t1, responseTimeMs: t2, status },
            now,
          );
          assert.ok(decision === 'fresh' || decision === 'revalidate');
          if (lifetime === 0) assert.equal(decision, 'revalidate');
          // The hit path's split (facts once per stored version) decides as the parts do.
          const facts = storedFreshness({
            headers: res,
            requestTimeMs: t1,
            responseTimeMs: t2,
            status,
          });
          const parts =
            varyFieldNames(res) === '*' || reason !== undefined ? 'revalidate' : 'fresh';
          assert.equal(freshFor(req, facts, now), parts);
          if (carriesCredentials('https://b.test/k', req) === undefined)
            assert.equal(decision, parts);
          const verdict = responseStorable('GET', status, req, res);
          assert.equal(typeof verdict.storable, 'boolean');
          mayServeStale(res);
          varyFieldNames(res);
        },
      ),
      runs,
    );
  });
});

describe('the TSDoc @example of every export', () => {
  test('each example gives what its comment says', () => {
    assert.deepEqual(planRange('bytes=-500', 10000, undefined, {}), single(9500, 10000));
    assert.equal(
      evaluatePreconditions('GET', { 'if-none-match': '"v1"' }, { etag: '"v1"', exists: true }),
      'not-modified',
    );
    assert.deepEqual(revalidationHeaders({ etag: '"v1"' }), { 'if-none-match': '"v1"' });
    assert.deepEqual(responseStorable('GET', 200, {}, { 'cache-control': 'private' }), {
      storable: false,
      reason: 'the response is private',
    });
    assert.equal(
      carriesCredentials('https://b.test/k?X-Amz-Signature=ab', {}),
      'its URL is presigned (X-Amz-Signature)',
    );
    assert.deepEqual(varyFieldNames({ vary: 'Accept-Encoding, Origin' }), [
      'accept-encoding',
      'origin',
    ]);
    assert.equal(freshnessLifetimeMs({ 'cache-control': 'max-age=60, s-maxage=5' }, 0), 5000);
    assert.equal(currentAgeMs({ age: '10' }, { requestTimeMs: 0, responseTimeMs: 0 }, 5000), 15000);
    assert.equal(
      mustRevalidate({ 'cache-control': 'no-cache' }, {}, 0, 60000),
      'the request says no-cache',
    );
    assert.equal(
      cacheDecision(
        { url: 'https://b.test/k', headers: {} },
        { headers: { 'cache-control': 'max-age=60' }, requestTimeMs: 0, responseTimeMs: 0 },
        1000,
      ),
      'fresh',
    );
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), 784111777000);
    assert.equal(
      parseCacheControl('max-age=60, no-cache="set-cookie"')?.get('no-cache')?.argument,
      'set-cookie',
    );
    assert.equal(
      multipartByteranges(
        [
          { start: 0, end: 2 },
          { start: 5, end: 10 },
        ],
        10,
        'text/plain',
        'B',
      ).contentLength,
      142, // headers 62 + 64, bytes 2 + 5, close 9
    );
  });
});

/** One GET against nginx: its status, header fields and body. */
function fetchWhole(
  url: string,
  range: string,
): Promise<{ status: number; headers: HeaderFields; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { range } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** One GET against nginx: status and Content-Range. */
function fetchRange(
  url: string,
  range: string,
): Promise<{ status: number; contentRange: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { range } }, (res) => {
      res.resume();
      res.on('end', () => {
        const contentRange = res.headers['content-range'];
        resolve({ status: res.statusCode ?? 0, contentRange });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Where nginx and planRange knowingly differ, each a choice RFC 9110 leaves open:
 * - A syntactically invalid `bytes` Range (`bytes=5-4`, `bytes=abc`): nginx answers 416, which
 *   section 15.5.17 allows ("rejected due to invalid ranges"); planRange ignores it and serves
 *   the whole object, which section 14.2 allows ("MAY ignore"), as S3 does.
 * - A zero-length object and a range-spec starting at 0 (`bytes=0-`, `bytes=0-0`) or
 *   `bytes=-0`: nginx answers 200 with the empty body; planRange follows section 14.1.1 (no
 *   int-range, and no zero suffix, is satisfiable: 416). Both agree on `bytes=-500` (200) and
 *   on a first-pos past 0 (416).
 * The test asserts these differences exactly, so a change on either side shows up.
 */
const INVALID_BYTES_RANGES = new Set(['bytes=5-4', 'bytes=abc']);

function nginxAnswer(
  plan: RangePlan,
  header: string,
  size: number,
): { status: number; contentRange: string | undefined } {
  if (INVALID_BYTES_RANGES.has(header)) return { status: 416, contentRange: `bytes */${size}` };
  if (size === 0 && /^bytes=(0+-|-0+$)/i.test(header))
    return { status: 200, contentRange: undefined };
  switch (plan.kind) {
    case 'single':
      return { status: 206, contentRange: `bytes ${plan.start}-${plan.end - 1}/${size}` };
    case 'unsatisfiable':
      return { status: 416, contentRange: `bytes */${size}` };
    default:
      return { status: 200, contentRange: undefined };
  }
}

describe('planRange agrees with nginx on single ranges', { skip: NGINX_MISSING }, () => {
  let nginx: NginxServer;
  const sizes = [10000, 1, 0];
  const headers = [
    'bytes=0-499',
    'bytes=500-999',
    'bytes=-500',
    'bytes=9500-',
    'bytes=0-0',
    'bytes=-1',
    'bytes=9000-20000',
    'bytes=-20000',
    'bytes=0-',
    'bytes=10000-',
    'bytes=20000-20010',
    'bytes=-0',
    'BYTES=1-2',
    'bytes= 3-4',
    'bytes=5-4',
    'bytes=abc',
    'items=0-1',
    'bytes=0-9999999999999999',
  ];
  before(async () => {
    nginx = await startNginx({ plain: '' });
    for (const size of sizes) {
      const path = join(nginx.root, `object-${size}.bin`);
      await writeFile(path, randomBytes(size));
      await chmod(path, 0o644);
    }
  });
  after(async () => {
    await nginx?.close();
  });
  for (const size of sizes) {
    test(`${headers.length} Range headers on a ${size}-byte object: the same status and Content-Range, bar the documented differences`, async () => {
      const disagreements: string[] = [];
      for (const header of headers) {
        const observed = await fetchRange(`${nginx.urls.plain}/object-${size}.bin`, header);
        const plan = planRange(header, size, undefined, {}, { multi: 'multipart' });
        const expected = nginxAnswer(plan, header, size);
        if (
          observed.status !== expected.status ||
          observed.contentRange !== expected.contentRange
        ) {
          disagreements.push(
            `${header}: nginx ${JSON.stringify(observed)}, planRange ${JSON.stringify(plan)}`,
          );
        }
      }
      assert.deepEqual(disagreements, []);
    });
  }

  test('multipartByteranges frames ascending disjoint ranges byte for byte as nginx does', async () => {
    const url = `${nginx.urls.plain}/object-10000.bin`;
    const object = (await fetchWhole(url, 'bytes=0-')).body;
    const header = 'bytes=0-1,5-9,-3';
    const observed = await fetchWhole(url, header);
    assert.equal(observed.status, 206);
    const plan = planRange(header, 10000, undefined, {});
    assert.equal(plan.kind, 'multi');
    if (plan.kind !== 'multi') return;
    const boundary = /boundary=(\S+)/.exec(String(observed.headers['content-type']))?.[1] ?? '';
    const body = multipartByteranges(plan.ranges, 10000, 'application/octet-stream', boundary);
    assert.equal(body.contentType, observed.headers['content-type']);
    const ours = Buffer.concat([
      ...body.parts.flatMap((part) => [part.header, object.subarray(part.start, part.end)]),
      body.close,
    ]);
    // nginx opens with an empty preamble (a CRLF before the first delimiter); we do not.
    assert.equal(observed.body.subarray(0, 2).toString(), '\r\n');
    assert.equal(ours.toString('latin1'), observed.body.subarray(2).toString('latin1'));
    assert.equal(body.contentLength, Number(observed.headers['content-length']) - 2);
  });
});
