/**
 * The pin module (origin-pin.ts) and the plan built on it (pin-plan.ts), as pure functions:
 * - properties (fast-check, seed printed on failure): arbitrary header values never throw in
 *   `pinFromResponse` or `checkPinnedHead`, arbitrary strings never throw in `decodePin`;
 *   every pin encodes within the wire limit and decodes back to itself (a bare strong ETag as
 *   the bare ETag older peers send);
 * - a changed ETag, Last-Modified or total length is `changed` at every level that holds it,
 *   a missing validator the pin holds too, and the same head is `ok`;
 * - the request headers per level (a weak ETag is never sent), If-Range with a date only when
 *   the date is strong (RFC 9110 8.8.2.2);
 * - `planFromProbe`: a wrong --sha256 is refused naming both digests, --strict refuses weak pins
 *   without a digest, and the pinning report says what a digest adds.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  PIN_ENCODED_MAX_BYTES,
  checkPinnedHead,
  decodePin,
  encodePin,
  pinFromResponse,
  pinRequestHeaders,
  pinStrength,
  type OriginPin,
} from '../src/http/origin-pin.js';
import { describePinning, digestConflict, planFromProbe } from '../src/http/pin-plan.js';
import type { OriginDescription } from '../src/http/origin-probe.js';
import { userSha256 } from '../src/http/digest.js';

const LM = 'Thu, 01 Jan 2026 00:00:00 GMT';
const LATER = 'Thu, 01 Jan 2026 00:00:05 GMT';

/** Header values as Node hands them over: latin1 strings, or arrays for repeated fields. */
const headerValue = fc.oneof(
  fc.constant(undefined),
  fc.string({ unit: 'binary-ascii' }),
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)) }),
  fc.constantFrom(
    '"abc"',
    'W/"abc"',
    LM,
    'bytes 0-0/1000',
    'bytes 0-0/*',
    '"' + 'x'.repeat(300) + '"',
  ),
  fc.array(fc.string(), { maxLength: 3 }),
);
const headers = fc.record(
  {
    etag: headerValue,
    'last-modified': headerValue,
    date: headerValue,
    'content-range': headerValue,
  },
  { requiredKeys: [] },
) as fc.Arbitrary<IncomingHttpHeaders>;

test('arbitrary header values never throw; every pin fits the wire and round-trips', () => {
  fc.assert(
    fc.property(headers, headers, fc.nat({ max: 2 ** 40 }), (first, later, total) => {
      const pin = pinFromResponse(first, total);
      const encoded = encodePin(pin);
      assert.ok(Buffer.byteLength(encoded, 'utf8') <= PIN_ENCODED_MAX_BYTES, encoded);
      const decoded = decodePin(encoded);
      assert.equal(decoded.kind, 'pin', encoded);
      if (decoded.kind !== 'pin') return;
      // A bare strong ETag carries no length, so older peers read it as they always did.
      const expected = pin.level === 'strong-etag' ? { ...pin, totalBytes: undefined } : pin;
      assert.deepEqual(decoded.pin, expected);
      const check = checkPinnedHead(pin, later);
      assert.equal(typeof check.ok, 'boolean');
      pinRequestHeaders(pin);
    }),
  );
});

test('decodePin never throws on arbitrary strings', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string().map((text) => `peapod-pin/1 ${text}`),
        fc.jsonValue().map((value) => `peapod-pin/1 ${JSON.stringify(value)}`),
      ),
      (text) => {
        const decoded = decodePin(text);
        assert.ok(['none', 'pin', 'invalid'].includes(decoded.kind));
      },
    ),
  );
});

test("a peer's pin with CR/LF in a field value is invalid, never a request header", () => {
  const pin = pinFromResponse({ 'last-modified': LM }, 10);
  const evil = encodePin({ ...pin, lastModified: `${LM}\r\nX-Injected: 1` });
  assert.equal(decodePin(evil).kind, 'invalid');
  assert.equal(decodePin(encodePin(pin)).kind, 'pin');
});

test('the strongest validator wins; the level decides strength and request headers', () => {
  const strong = pinFromResponse({ etag: '"v1"', 'last-modified': LM }, 1000);
  assert.equal(strong.level, 'strong-etag');
  assert.equal(encodePin(strong), '"v1"'); // bare, as before pin levels
  assert.equal(pinStrength(strong), 'strong');
  assert.deepEqual(pinRequestHeaders(strong), { 'if-match': '"v1"', 'if-range': '"v1"' });

  const dated = pinFromResponse({ etag: 'W/"v1"', 'last-modified': LM, date: LATER }, 1000);
  assert.equal(dated.level, 'last-modified');
  assert.equal(dated.etag, 'W/"v1"');
  assert.equal(pinStrength(dated), 'weak');
  assert.deepEqual(pinRequestHeaders(dated), { 'if-unmodified-since': LM, 'if-range': LM });
  // A date as recent as its response's Date is weak: If-Range must not carry it (13.1.5).
  const recent = pinFromResponse({ 'last-modified': LM, date: LM }, 1000);
  assert.deepEqual(pinRequestHeaders(recent), { 'if-unmodified-since': LM });

  const weak = pinFromResponse({ etag: 'W/"v1"' }, 1000);
  assert.equal(weak.level, 'weak-etag');
  assert.deepEqual(pinRequestHeaders(weak), {}); // never a weak tag in If-Match or If-Range
  const none = pinFromResponse({}, 1000);
  assert.equal(none.level, 'length-only');
  assert.deepEqual(pinRequestHeaders(none), {});
  // A strong ETag too long for the wire is left out: a weaker pin, never a wrong one.
  const long = pinFromResponse({ etag: `"${'x'.repeat(300)}"`, 'last-modified': LM }, 1000);
  assert.equal(long.level, 'last-modified');
});

test("a changed ETag, Last-Modified or length is 'changed'; the same head is 'ok'", () => {
  const range = (total: number | string) => ({ 'content-range': `bytes 0-9/${total}` });
  const cases: Array<{
    pin: OriginPin;
    same: IncomingHttpHeaders;
    changes: IncomingHttpHeaders[];
  }> = [
    {
      pin: pinFromResponse({ etag: '"v1"' }, 1000),
      same: { etag: '"v1"', ...range(1000) },
      changes: [
        { etag: '"v2"', ...range(1000) },
        { etag: 'W/"v1"', ...range(1000) },
        { etag: '"v1"', ...range(1001) },
        { etag: '"v1"', ...range('*') },
      ],
    },
    {
      pin: pinFromResponse({ etag: 'W/"v1"', 'last-modified': LM }, 1000),
      same: { etag: 'W/"v1"', 'last-modified': LM, ...range(1000) },
      changes: [
        { etag: 'W/"v1"', 'last-modified': LATER, ...range(1000) },
        { etag: 'W/"v2"', 'last-modified': LM, ...range(1000) },
        { etag: 'W/"v1"', ...range(1000) },
        { 'last-modified': LM, ...range(1000) },
        { etag: 'W/"v1"', 'last-modified': LM, ...range(999) },
      ],
    },
    {
      pin: pinFromResponse({ etag: 'W/"v1"' }, 1000),
      same: { etag: '"v1"', ...range(1000) }, // weak comparison: the opaque tags agree
      changes: [{ etag: 'W/"v2"', ...range(1000) }, range(1000), { etag: 'W/"v1"', ...range(2) }],
    },
    {
      pin: pinFromResponse({}, 1000),
      same: range(1000),
      changes: [range(1001), {}],
    },
  ];
  for (const { pin, same, changes } of cases) {
    assert.deepEqual(checkPinnedHead(pin, same), { ok: true }, pin.level);
    for (const head of changes) {
      const check = checkPinnedHead(pin, head);
      assert.equal(check.ok, false, `${pin.level}: ${JSON.stringify(head)}`);
      if (!check.ok) assert.match(check.detail, /^the object changed: /);
    }
  }
});

/** A poolable probe with the given pin and digests (the other fields do not matter here). */
function probeWith(pin: OriginPin, digests: OriginDescription['digests'] = []): OriginDescription {
  return {
    kind: 'described',
    url: 'http://127.0.0.1/x',
    redirects: 0,
    status: 206,
    totalBytes: 1000,
    rangesSupported: true,
    pin,
    validator: encodePin(pin),
    lastModified: undefined,
    contentType: undefined,
    digests,
    reasonNotPoolable: undefined,
    rawHeaders: [],
  };
}

test('planFromProbe: a --sha256 that disagrees with the origin is refused, naming both', () => {
  const mine = userSha256('ab'.repeat(32));
  const theirs = {
    algorithm: 'sha-256' as const,
    digest: new Uint8Array(32).fill(0xcd),
    source: 'Repr-Digest',
  };
  const plan = planFromProbe(probeWith(pinFromResponse({}, 1000), [theirs]), [mine], {
    pool: true,
    strict: false,
  });
  assert.equal(plan.kind, 'refused');
  if (plan.kind !== 'refused') return;
  assert.match(
    plan.reason,
    new RegExp(`--sha256 ${'ab'.repeat(32)} .*Repr-Digest \\(${'cd'.repeat(32)}\\)`),
  );
  assert.equal(plan.reason.includes('\n'), false);
  assert.equal(digestConflict([mine], [{ ...theirs, digest: mine.digest }]), undefined);
  // Refused even with --no-pool: nothing is fetched for a digest that cannot match.
  assert.equal(
    planFromProbe(probeWith(pinFromResponse({}, 1000), [theirs]), [mine], {
      pool: false,
      strict: false,
    }).kind,
    'refused',
  );
});

test('planFromProbe: --strict pools only with a strong ETag or a known digest', () => {
  const options = { pool: true, strict: true };
  const weak = planFromProbe(
    probeWith(pinFromResponse({ 'last-modified': LM }, 1000)),
    [],
    options,
  );
  assert.equal(weak.kind, 'refused');
  if (weak.kind === 'refused')
    assert.match(
      weak.reason,
      /^--strict: the origin gives no strong ETag \(its best validator: last-modified\)/,
    );
  const strong = planFromProbe(probeWith(pinFromResponse({ etag: '"v1"' }, 1000)), [], options);
  assert.equal(strong.kind, 'pooled');
  const known = planFromProbe(
    probeWith(pinFromResponse({}, 1000)),
    [userSha256('ab'.repeat(32))],
    options,
  );
  assert.equal(known.kind, 'pooled');
  if (known.kind === 'pooled') {
    assert.equal(known.pinning.level, 'length-only');
    assert.equal(known.pinStrength, 'weak');
    assert.match(known.pinning.guarantee, /checked against --sha256, the strongest guarantee/);
  }
  assert.match(
    describePinning(pinFromResponse({}, 1000), []).guarantee,
    /no digest of the object is known/,
  );
});
