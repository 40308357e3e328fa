/**
 * The pieces that decide whether a pod copy of a URL may be trusted (pod-source.ts
 * `podBinding`, the sample check of `CheckedSink`) and whether a download is private
 * (url-content.ts `privateRequestReason`), without daemons:
 * - `podBinding`: the user's --sha256 or an origin SHA-256/SHA-512 binds any copy; an S3 MD5
 *   ETag does not; without a digest only a strong-ETag copy gets a sample; a weak ETag, a weak
 *   304 ETag or a Last-Modified pin gets nothing; `sampleRange` (fast-check: arbitrary lengths
 *   and draws): inside the object, min(16 KiB, length) long;
 * - `CheckedSink` with a sample: the right bytes commit; a copy whose bytes differ at the sample
 *   is refused before the sample's last bytes reach the sink, naming the holders; an origin
 *   that cannot give the sample refuses the copy too; bytes before the sample was placed (no
 *   manifest) are refused;
 * - `privateRequestReason`: credentials headers, userinfo and the documented presigned query
 *   parameters are private, plain URLs are not; property: arbitrary strings never throw.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ObjectVerifier, userSha256 } from '../src/http/digest.js';
import { encodePin, pinFromResponse } from '../src/http/origin-pin.js';
import {
  CheckedSink,
  SAMPLE_BYTES,
  podBinding,
  sampleRange,
  revalidatable,
  type SampleCheck,
} from '../src/pod-source.js';
import { FileSink } from '../src/sinks.js';
import { PRESIGNED_QUERY_PARAMETERS, privateRequestReason } from '../src/url-content.js';

function copyOf(headers: Record<string, string>, totalBytes: number) {
  const pin = revalidatable(encodePin(pinFromResponse(headers, totalBytes)));
  assert.ok(pin !== undefined);
  return { pin };
}

const sha256 = { algorithm: 'sha-256' as const, digest: new Uint8Array(32), source: 'Repr-Digest' };
const md5 = { algorithm: 'md5' as const, digest: new Uint8Array(16), source: 'S3 ETag' };

test('podBinding: digests bind any copy; otherwise a sample for a strong ETag only', () => {
  const strong = copyOf({ etag: '"v1"' }, 100_000);
  const weak = copyOf({ etag: 'W/"v1"' }, 100_000);
  const dated = copyOf({ 'last-modified': 'Mon, 01 Jan 2024 00:00:10 GMT' }, 100_000);
  const user = [userSha256('ab'.repeat(32))];
  for (const copy of [strong, weak, dated]) {
    assert.deepEqual(podBinding(copy, { etag: undefined, digests: [] }, user), {
      kind: 'digest',
      by: 'your --sha256',
    });
    assert.deepEqual(podBinding(copy, { etag: undefined, digests: [sha256] }, []), {
      kind: 'digest',
      by: 'origin digest',
    });
  }
  assert.deepEqual(podBinding(strong, { etag: '"v1"', digests: [md5] }, []), { kind: 'sample' });
  assert.deepEqual(podBinding(strong, { etag: undefined, digests: [] }, []), { kind: 'sample' });
  assert.equal(podBinding(strong, { etag: 'W/"v1"', digests: [] }, []), undefined);
  assert.equal(podBinding(weak, { etag: 'W/"v1"', digests: [md5] }, []), undefined);
  assert.equal(podBinding(dated, { etag: undefined, digests: [] }, []), undefined);
});

test('podBinding: arbitrary 304 ETags and digests never throw; no digest, no weak sample', () => {
  const digest = fc.constantFrom(sha256, md5, userSha256('cd'.repeat(32)));
  fc.assert(
    fc.property(
      fc.constantFrom('"v1"', 'W/"v1"'),
      fc.option(fc.string(), { nil: undefined }),
      fc.array(digest, { maxLength: 2 }),
      (etag, sent, digests) => {
        const copy = copyOf({ etag }, 1000);
        const user = digests.filter((d) => d.source === '--sha256');
        const origin = digests.filter((d) => d.source !== '--sha256');
        const binding = podBinding(copy, { etag: sent, digests: origin }, user);
        const bound = user.length > 0 || origin.some((d) => d.algorithm !== 'md5');
        if (bound) assert.equal(binding?.kind, 'digest');
        else if (copy.pin.level !== 'strong-etag') assert.equal(binding, undefined);
      },
    ),
    { verbose: true },
  );
});

test('sampleRange: inside the object, min(16 KiB, length) long', () => {
  assert.deepEqual(
    sampleRange(100, () => 0),
    { start: 0, end: 100 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 40 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (totalBytes, fraction) => {
        const range = sampleRange(totalBytes, (bound) => Math.floor(fraction * bound));
        assert.ok(range.start >= 0 && range.end <= totalBytes);
        assert.equal(range.end - range.start, Math.min(SAMPLE_BYTES, totalBytes));
        const drawn = sampleRange(totalBytes);
        assert.ok(drawn.start >= 0 && drawn.end <= totalBytes);
      },
    ),
    { verbose: true },
  );
});

describe('CheckedSink with a sample', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peapod-pod-trust-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `bytes` in 64 KiB pieces; the sink's writes are counted. */
  async function writeAll(name: string, bytes: Buffer, sample: SampleCheck, placed = true) {
    const output = join(dir, name);
    const file = await FileSink.open(
      output,
      { url: 'http://example.test/x', validator: '"v1"', totalBytes: bytes.length },
      { force: false },
    );
    const reached: number[] = [];
    const counting = Object.assign(Object.create(file) as FileSink, {
      write: (offset: number, part: Uint8Array) => {
        reached.push(offset + part.length);
        return file.write(offset, part);
      },
    });
    const checked = new CheckedSink(
      counting,
      ObjectVerifier.create([], 'host'),
      bytes.length,
      (totalBytes) => {
        assert.equal(totalBytes, bytes.length);
        return sample;
      },
    );
    if (placed) checked.place(bytes.length);
    let failure: unknown;
    try {
      for (let offset = 0; offset < bytes.length; offset += 65536) {
        await checked.write(offset, bytes.subarray(offset, offset + 65536), false);
      }
      await checked.commit();
    } catch (error) {
      failure = error;
    }
    return { output, file, reached, failure };
  }

  test('matching bytes commit', async () => {
    const bytes = randomBytes(300_000);
    const start = 70_000;
    const sample: SampleCheck = {
      start,
      end: start + SAMPLE_BYTES,
      origin: Promise.resolve(new Uint8Array(bytes.subarray(start, start + SAMPLE_BYTES))),
      holders: 'aa',
    };
    const { output, failure } = await writeAll('match.bin', bytes, sample);
    assert.equal(failure, undefined);
    assert.equal((await stat(output)).size, bytes.length);
  });

  test('differing bytes are refused before the sample range reaches the sink', async () => {
    const bytes = randomBytes(300_000);
    const start = 140_000;
    const sample: SampleCheck = {
      start,
      end: start + SAMPLE_BYTES,
      origin: Promise.resolve(new Uint8Array(randomBytes(SAMPLE_BYTES))),
      holders: 'ab'.repeat(32),
    };
    const { file, reached, failure } = await writeAll('lie.bin', bytes, sample);
    assert.match(
      String(failure),
      new RegExp(
        `bytes ${start}-${start + SAMPLE_BYTES - 1} differ .* ${'ab'.repeat(32)} answered`,
      ),
    );
    assert.ok(Math.max(...reached) < start + SAMPLE_BYTES, `the sink got ${reached.join()}`);
    await file.abort(false);
  });

  test('an origin that cannot give the sample refuses the copy', async () => {
    const bytes = randomBytes(100_000);
    const sample: SampleCheck = {
      start: 0,
      end: SAMPLE_BYTES,
      origin: Promise.resolve('changed: 412 Precondition Failed'),
      holders: 'aa',
    };
    const { file, failure } = await writeAll('gone.bin', bytes, sample);
    assert.match(String(failure), /sample of it could not be fetched \(changed: 412/);
    await file.abort(false);
  });

  test('bytes before the sample was placed are refused', async () => {
    const bytes = randomBytes(1000);
    const sample: SampleCheck = {
      start: 0,
      end: 1000,
      origin: Promise.resolve(new Uint8Array(bytes)),
      holders: 'aa',
    };
    const { file, reached, failure } = await writeAll('early.bin', bytes, sample, false);
    assert.match(String(failure), /before its manifest/);
    assert.deepEqual(reached, []);
    await file.abort(false);
  });
});

test('privateRequestReason: credentials, userinfo and presigned URLs are private', () => {
  const plain = 'https://example.test/a.iso?version=2';
  assert.equal(privateRequestReason(plain, []), undefined);
  assert.equal(privateRequestReason(plain, [{ name: 'Accept', value: '*/*' }]), undefined);
  for (const name of ['Authorization', 'cookie', 'Proxy-Authorization']) {
    assert.match(privateRequestReason(plain, [{ name, value: 'x' }]) ?? '', /carries a/);
  }
  assert.match(privateRequestReason('https://u:p@example.test/a', []) ?? '', /user name/);
  assert.match(privateRequestReason('https://u@example.test/a', []) ?? '', /user name/);
  for (const key of [...PRESIGNED_QUERY_PARAMETERS, 'X-Amz-Signature', 'Signature', 'SIG']) {
    assert.match(
      privateRequestReason(`https://example.test/a?x=1&${key}=abc`, []) ?? '',
      /presigned/,
      key,
    );
  }
  assert.match(privateRequestReason('not a url', []) ?? '', /cannot be parsed/);
});

test('privateRequestReason: arbitrary URLs and headers never throw', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string(), fc.webUrl({ withQueryParameters: true, withFragments: true })),
      fc.array(fc.record({ name: fc.string(), value: fc.string() }), { maxLength: 4 }),
      (url, headers) => {
        const reason = privateRequestReason(url, headers);
        assert.ok(reason === undefined || reason.length > 0);
      },
    ),
    { verbose: true },
  );
});
