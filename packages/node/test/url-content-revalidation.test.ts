/**
 * The pieces of serving a URL from the pod (pod-source.ts, the conditional probe of
 * http/origin-probe.ts), against a real origin on loopback (support/revalidating-origin.ts):
 * - properties (fast-check, seed printed on failure): `revalidatable` never throws on an
 *   arbitrary validator string; `revalidationOf` lists at most 8 distinct ETags the copies
 *   have; `matchNotModified` never throws on arbitrary 304 header values and only ever returns
 *   candidates it was given, of one version; the conditional probe reads arbitrary 304 header
 *   values from a real server without throwing;
 * - which pins can be revalidated (strong and weak ETag, Last-Modified; never length-only),
 *   and the one set of conditions for several copies (every distinct ETag in one
 *   If-None-Match, else the newest date); a 206 that names a copy's version is an origin that
 *   ignored the condition, not a change;
 * - the conditional probe: 304 with the origin's digests and no body, the requester's
 *   Authorization carried; a changed object answers 206 and is described as a plain probe;
 * - `UrlLookups`: an answer that comes at once (no pod link) is not lost, copies whose pin
 *   cannot be revalidated are dropped;
 * - `CheckedSink`: the right bytes commit with their SHA-256, a digest or length mismatch
 *   refuses the commit and leaves the sink to its owner.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ObjectVerifier, userSha256 } from '../src/http/digest.js';
import { encodePin, pinFromResponse } from '../src/http/origin-pin.js';
import { probeConditional } from '../src/http/origin-probe.js';
import {
  CheckedSink,
  REVALIDATION_ETAGS_MAX,
  UrlLookups,
  matchNotModified,
  namesACopy,
  revalidatable,
  revalidationOf,
  type UrlCandidate,
} from '../src/pod-source.js';
import { FileSink } from '../src/sinks.js';
import { RevalidatingOrigin } from './support/revalidating-origin.js';

const LM = 'Mon, 01 Jan 2024 00:00:10 GMT';
const LATER = 'Mon, 01 Jan 2024 00:00:20 GMT';

function candidate(validator: string, holder = 'self', id = 1): UrlCandidate {
  const pin = revalidatable(validator);
  assert.ok(pin !== undefined, validator);
  return { holder, validator, pin, contentId: new Uint8Array(32).fill(id) };
}

const strong = encodePin(pinFromResponse({ etag: '"v1"' }, 100));
const strong2 = encodePin(pinFromResponse({ etag: '"v2"' }, 100));
const weak = encodePin(pinFromResponse({ etag: 'W/"w1"' }, 100));
const dated = encodePin(pinFromResponse({ 'last-modified': LM }, 100));
const lengthOnly = encodePin(pinFromResponse({}, 100));

test('revalidatable: ETags and dates can be revalidated, a length-only pin cannot', () => {
  assert.equal(revalidatable(strong)?.level, 'strong-etag');
  assert.equal(revalidatable(weak)?.level, 'weak-etag');
  assert.equal(revalidatable(dated)?.level, 'last-modified');
  assert.equal(revalidatable(lengthOnly), undefined);
  assert.equal(revalidatable(''), undefined);
  assert.equal(revalidatable('peapod-pin/1 {nonsense'), undefined);
});

test('revalidatable: arbitrary validator strings never throw', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string().map((text) => `peapod-pin/1 ${text}`),
      ),
      (text) => {
        const pin = revalidatable(text);
        assert.ok(pin === undefined || pin.level !== 'length-only');
      },
    ),
    { verbose: true },
  );
});

test('revalidationOf: every distinct ETag in one If-None-Match, else the newest date', () => {
  assert.deepEqual(
    revalidationOf([candidate(strong), candidate(strong, 'ab'), candidate(weak), candidate(dated)]),
    { 'if-none-match': '"v1", W/"w1"' },
  );
  assert.deepEqual(revalidationOf([candidate(dated)]), { 'if-modified-since': LM });
  assert.equal(revalidationOf([]), undefined);
});

test('revalidationOf: at most REVALIDATION_ETAGS_MAX distinct ETags, each one a copy has', () => {
  const tag = fc.stringMatching(/^[a-z0-9]{1,6}$/);
  const copy = fc.oneof(
    tag.map((t) => encodePin(pinFromResponse({ etag: `"${t}"` }, 100))),
    tag.map((t) => encodePin(pinFromResponse({ etag: `W/"${t}"` }, 100))),
    fc
      .integer({ min: 0, max: 1e9 })
      .map((s) =>
        encodePin(pinFromResponse({ 'last-modified': new Date(s * 1000).toUTCString() }, 100)),
      ),
  );
  fc.assert(
    fc.property(fc.array(copy, { maxLength: 20 }), (validators) => {
      const copies = validators.map((validator) => candidate(validator));
      const conditions = revalidationOf(copies);
      if (copies.length === 0) return assert.equal(conditions, undefined);
      assert.ok(conditions !== undefined);
      if ('if-none-match' in conditions) {
        const listed = conditions['if-none-match'].split(', ');
        assert.ok(listed.length <= REVALIDATION_ETAGS_MAX);
        assert.equal(new Set(listed).size, listed.length);
        assert.ok(listed.every((etag) => copies.some((c) => c.pin.etag === etag)));
      } else {
        assert.ok(copies.every((c) => c.pin.level === 'last-modified'));
        assert.equal(conditions['if-modified-since'], copies[0]!.pin.lastModified);
      }
    }),
    { verbose: true },
  );
});

test('matchNotModified: the copies of the version the 304 names', () => {
  const copies = [
    candidate(strong, 'aa', 1),
    candidate(strong2, 'bb', 2),
    candidate(strong, 'cc', 1),
  ];
  const conditions = revalidationOf(copies)!;
  const v1 = matchNotModified(copies, conditions, { etag: '"v1"', lastModified: undefined });
  assert.deepEqual(
    v1.map((copy) => copy.holder),
    ['aa', 'cc'],
  );
  assert.deepEqual(
    matchNotModified(copies, conditions, { etag: '"v3"', lastModified: undefined }),
    [],
  );
  // Two versions asked for and no ETag in the 304: which one is meant is unknown.
  assert.deepEqual(
    matchNotModified(copies, conditions, { etag: undefined, lastModified: undefined }),
    [],
  );
  const one = [candidate(strong)];
  assert.equal(
    matchNotModified(one, revalidationOf(one)!, { etag: undefined, lastModified: undefined })
      .length,
    1,
  );
  const byDate = [candidate(dated)];
  const conditionsByDate = revalidationOf(byDate)!;
  assert.equal(
    matchNotModified(byDate, conditionsByDate, { etag: undefined, lastModified: LM }).length,
    1,
  );
  assert.deepEqual(
    matchNotModified(byDate, conditionsByDate, { etag: undefined, lastModified: LATER }),
    [],
    'a 304 stating another date does not confirm the copy',
  );
});

test('namesACopy: a 206 with a copy ETag (or date) is an origin that ignored the condition', () => {
  const copies = [candidate(strong), candidate(dated)];
  assert.equal(namesACopy(copies, '"v1"', undefined), true);
  assert.equal(namesACopy(copies, 'W/"v1"', undefined), true);
  assert.equal(namesACopy(copies, '"v9"', undefined), false);
  assert.equal(namesACopy(copies, undefined, LM), true);
  assert.equal(namesACopy(copies, undefined, LATER), false);
  assert.equal(namesACopy(copies, 'not an etag', undefined), false);
});

test('matchNotModified: arbitrary 304 header values never throw and pick one version', () => {
  const copies = [
    candidate(strong, 'aa', 1),
    candidate(strong2, 'bb', 2),
    candidate(weak, 'cc', 3),
    candidate(dated, 'dd', 4),
  ];
  const value = fc.option(fc.oneof(fc.string(), fc.constantFrom('"v1"', '"v2"', 'W/"w1"', LM)), {
    nil: undefined,
  });
  fc.assert(
    fc.property(
      fc.subarray(copies, { minLength: 1 }),
      value,
      value,
      (offered, etag, lastModified) => {
        const conditions = revalidationOf(offered);
        if (conditions === undefined) return;
        const chosen = matchNotModified(offered, conditions, { etag, lastModified });
        assert.ok(chosen.every((copy) => offered.includes(copy)));
        assert.ok(new Set(chosen.map((copy) => copy.pin.etag ?? copy.pin.lastModified)).size <= 1);
      },
    ),
    { verbose: true },
  );
});

test('UrlLookups: an answer given at once is kept; unrevalidatable copies are dropped', async () => {
  const deviceId = new Uint8Array(32).fill(7);
  let lookups: UrlLookups | undefined = undefined;
  lookups = new UrlLookups((input) => {
    // As the core does when no pod link can be asked: the event comes inside `input`.
    lookups!.onLookup({
      type: 'url:lookup',
      lookupId: input.lookupId,
      url: input.url,
      holders: [
        { deviceId, validator: strong, contentId: new Uint8Array(32).fill(1) },
        { deviceId, validator: lengthOnly, contentId: new Uint8Array(32).fill(2) },
      ],
    });
  }, undefined);
  const found = await lookups.candidates('http://example.test/a');
  assert.deepEqual(
    found.map((copy) => [copy.holder, copy.validator]),
    [['07'.repeat(32), strong]],
  );
});

test('UrlLookups: a URL too long for URL_QUERY is looked up in this device alone', async () => {
  let asked = 0;
  const lookups = new UrlLookups(() => asked++, undefined);
  assert.deepEqual(await lookups.candidates(`http://example.test/${'x'.repeat(8192)}`), []);
  assert.equal(asked, 0);
});

describe('the conditional probe against a real origin', () => {
  let dir: string;
  let origin: RevalidatingOrigin;
  let bytes: Buffer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peapod-revalidate-'));
    await mkdir(join(dir, 'www'));
    bytes = randomBytes(200_000);
    await writeFile(join(dir, 'www', 'a.bin'), bytes);
    origin = await RevalidatingOrigin.start(join(dir, 'www'));
  });
  after(async () => {
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('304 carries the digests, no body, and the requester credentials reach the origin', async () => {
    const info = await stat(join(dir, 'www', 'a.bin'));
    const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    const since = origin.log.length;
    const answer = await probeConditional(
      `${origin.url}/a.bin`,
      { 'if-none-match': `"other", ${etag}` },
      { headers: [{ name: 'Authorization', value: 'Bearer mine' }] },
    );
    assert.equal(answer.kind, 'not-modified');
    assert.ok(answer.kind === 'not-modified');
    assert.equal(answer.etag, etag);
    const sha256 = createHash('sha256').update(bytes).digest();
    assert.ok(answer.digests.some((d) => d.source === 'Repr-Digest' && sha256.equals(d.digest)));
    await origin.untilIdle();
    const [seen] = origin.log.slice(since);
    assert.equal(seen?.status, 304);
    assert.equal(seen?.bodyBytes, 0);
    assert.equal(seen?.range, 'bytes=0-0');
    assert.equal(seen?.authorization, 'Bearer mine');
  });

  test('arbitrary 304 header values never make the conditional probe throw', async () => {
    const fieldValue = fc.string({
      unit: fc
        .integer({ min: 0x20, max: 0xff })
        .filter((c) => c !== 0x7f)
        .map((c) => String.fromCharCode(c)),
      maxLength: 80,
    });
    const fields = fc.record(
      {
        etag: fieldValue,
        'last-modified': fieldValue,
        'repr-digest': fieldValue,
        'x-amz-checksum-sha256': fieldValue,
        'x-amz-request-id': fieldValue,
      },
      { requiredKeys: [] },
    );
    let next: Record<string, string> = {};
    const server = createServer((_req, res) => res.writeHead(304, next).end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      await fc.assert(
        fc.asyncProperty(fields, async (headers) => {
          next = headers;
          const answer = await probeConditional(`http://127.0.0.1:${port}/x`, {
            'if-none-match': '"a"',
          });
          assert.equal(answer.kind, 'not-modified');
        }),
        { numRuns: 40, verbose: true },
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('a changed object answers 206 and is described as the plain probe describes it', async () => {
    const answer = await probeConditional(`${origin.url}/a.bin`, { 'if-none-match': '"old"' });
    assert.equal(answer.kind, 'described');
    assert.ok(answer.kind === 'described');
    assert.equal(answer.status, 206);
    assert.equal(answer.totalBytes, bytes.length);
    assert.equal(answer.pin?.level, 'strong-etag');
  });

  test('If-Modified-Since: 304 for the current date, 206 for an older one', async () => {
    const info = await stat(join(dir, 'www', 'a.bin'));
    const current = await probeConditional(`${origin.url}/a.bin`, {
      'if-modified-since': info.mtime.toUTCString(),
    });
    assert.equal(current.kind, 'not-modified');
    const older = await probeConditional(`${origin.url}/a.bin`, {
      'if-modified-since': new Date(info.mtimeMs - 60_000).toUTCString(),
    });
    assert.equal(older.kind, 'described');
  });
});

describe('CheckedSink', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peapod-checked-sink-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function sinkFor(name: string, bytes: Buffer, expectedSha256: string, totalBytes?: number) {
    const output = join(dir, name);
    const file = await FileSink.open(
      output,
      { url: 'http://example.test/x', validator: '"v1"', totalBytes: bytes.length },
      { force: false },
    );
    const checked = new CheckedSink(
      file,
      ObjectVerifier.create([userSha256(expectedSha256)], 'host'),
      totalBytes,
    );
    for (let offset = 0; offset < bytes.length; offset += 65536) {
      await checked.write(offset, bytes.subarray(offset, offset + 65536), false);
    }
    return { output, file, checked };
  }

  test('the right bytes commit, with their SHA-256 hashed once as written', async () => {
    const bytes = randomBytes(300_000);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const { output, checked } = await sinkFor('right.bin', bytes, sha256, bytes.length);
    await checked.commit();
    assert.equal(checked.report?.sha256Hex, sha256);
    assert.deepEqual(checked.report?.verified, ['sha-256 (--sha256)']);
    assert.ok((await readFile(output)).equals(bytes));
  });

  test('a digest mismatch refuses the commit; the sink stays its owner to close', async () => {
    const bytes = randomBytes(100_000);
    const { output, file, checked } = await sinkFor('wrong.bin', bytes, 'ab'.repeat(32));
    await assert.rejects(checked.commit(), /digest mismatch/);
    await checked.abort(); // the content job's abort: no effect on the file
    assert.equal(await stat(output).catch(() => undefined), undefined, 'nothing committed');
    await file.restart(); // the owner can still start over in it (the origin fallback)
    await file.abort(false);
  });

  test('a length other than the pinned version refuses the commit', async () => {
    const bytes = randomBytes(50_000);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const { file, checked } = await sinkFor('short.bin', bytes, sha256, bytes.length + 1);
    await assert.rejects(
      checked.commit(),
      /50000 bytes, but the version it was stored as is 50001/,
    );
    await file.abort(false);
  });
});
