/**
 * DigestVerifier: every algorithm matches on the right bytes whatever the split, any changed
 * byte fails with a message naming the source, and user input (--sha256) is checked.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DigestVerifier, userSha256, type ExpectedDigest } from '../src/http/digest.js';

function digestsOf(bytes: Uint8Array): ExpectedDigest[] {
  const of = (algorithm: string) => new Uint8Array(createHash(algorithm).update(bytes).digest());
  return [
    { algorithm: 'sha-256', digest: of('sha256'), source: 'Repr-Digest' },
    { algorithm: 'sha-512', digest: of('sha512'), source: 'Repr-Digest' },
    { algorithm: 'md5', digest: of('md5'), source: 'S3 ETag' },
    userSha256(createHash('sha256').update(bytes).digest('hex')),
  ];
}

function feed(verifier: DigestVerifier, bytes: Uint8Array, cuts: number[]): void {
  let start = 0;
  for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((a, b) => a - b)) {
    verifier.update(bytes.subarray(start, cut));
    start = cut;
  }
  verifier.update(bytes.subarray(start));
}

describe('DigestVerifier', () => {
  test('every digest matches the right bytes, however they are split', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 4096 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (bytes, cuts) => {
          const verifier = new DigestVerifier(digestsOf(bytes));
          feed(verifier, bytes, cuts);
          const report = verifier.finish();
          assert.equal(report.ok, true, report.message);
          assert.equal(report.checks.length, 4);
          assert.equal(report.bytesHashed, bytes.length);
          assert.match(report.message, /^verified end to end: sha-256 \(Repr-Digest\), sha-512/);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('one changed byte fails every digest, and the message says which and what to do', () => {
    const bytes = randomBytes(100_000);
    const verifier = new DigestVerifier(digestsOf(bytes));
    const corrupted = Buffer.from(bytes);
    corrupted[54_321] = corrupted[54_321]! ^ 0x01;
    verifier.update(corrupted);
    const report = verifier.finish();
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.map((check) => check.matched),
      [false, false, false, false],
    );
    assert.match(
      report.message,
      /^digest mismatch: sha-256 \(Repr-Digest\) expected [0-9a-f]{64}, got [0-9a-f]{64}; /,
    );
    assert.match(report.message, /md5 \(S3 ETag\) expected [0-9a-f]{32}/);
    assert.match(report.message, /sha-256 \(--sha256\)/);
    assert.match(report.message, /discard them and download again$/);
    assert.equal(verifier.finish(), report);
    assert.throws(() => verifier.update(bytes), { code: 'PEAPOD_ERR_INVALID_STATE' });
  });

  test('only the failing source fails when sources disagree', () => {
    const bytes = randomBytes(1000);
    const [repr, , , user] = digestsOf(bytes);
    const wrong: ExpectedDigest = {
      ...repr!,
      digest: new Uint8Array(32),
      source: 'x-amz-checksum-sha256',
    };
    const verifier = new DigestVerifier([repr!, wrong, user!]);
    verifier.update(bytes);
    const report = verifier.finish();
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.map((check) => [check.source, check.matched]),
      [
        ['Repr-Digest', true],
        ['x-amz-checksum-sha256', false],
        ['--sha256', true],
      ],
    );
  });

  test('nothing to check is ok, and the message says the bytes were not verified', () => {
    const verifier = new DigestVerifier([]);
    verifier.update(new Uint8Array(10));
    const report = verifier.finish();
    assert.equal(report.ok, true);
    assert.match(
      report.message,
      /^no digest is known for this object, so its 10 bytes were not verified/,
    );
  });

  test('expectations and --sha256 input are checked', () => {
    assert.throws(
      () => new DigestVerifier([{ algorithm: 'md5', digest: new Uint8Array(32), source: 'x' }]),
      { code: 'PEAPOD_ERR_INVALID_ARGUMENT' },
    );
    const hex = 'AB'.repeat(32);
    assert.deepEqual(userSha256(`sha256:${hex}`), userSha256(hex.toLowerCase()));
    for (const bad of ['', 'ab'.repeat(31), 'zz'.repeat(32), `md5:${hex}`]) {
      assert.throws(() => userSha256(bad), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' }, bad);
    }
  });
});
