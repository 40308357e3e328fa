/**
 * Which pod copies of a URL are trusted, end to end (pod-source.ts `podBinding`, url-content.ts
 * `privateRequestReason`): two real `peapod daemon` processes (PodFixture), `peapod get`,
 * `ls` and `fetch` as real processes, and a real origin in this process that logs every
 * request by source address (support/revalidating-origin.ts), here stating no digest.
 *
 * What each test pins down:
 * - a strong ETag and no digest: device 2 is served from device 1's copy after the
 *   revalidation (304, no body) and exactly one 16 KiB sample (206, `If-Match` with the ETag);
 *   the note says the sample bound it;
 * - a lying member: device 1 holds content X and answers device 2's URL lookup with the
 *   origin's real, current ETag and X's content ID (made by keeping X under the same size and
 *   modification time the origin's ETag is made of, then putting other bytes Y there: device 1's
 *   store and core then hold exactly what a member that learned the ETag with a HEAD and mapped
 *   the URL to its own content would). The origin answers 304, every chunk verifies against X's
 *   ID, and the sample differs: device 2 falls back to the origin, says so naming device 1,
 *   writes Y byte-exact, and never keeps X as its own;
 * - a weak ETag without a digest is not served from the pod: the get says why and downloads
 *   fresh;
 * - private gets: a presigned URL, one with a Cookie and one under --no-pool are not listed by
 *   `peapod ls` and not announced (device 2's `fetch` of the content ID finds no holder); a get
 *   with a Cookie is not looked up in the pod either (no conditional request from it, although
 *   device 1 holds the plain URL's copy);
 * - the human summary's no-digest line says what stood in: the sample for a pod copy, nothing
 *   for a --no-pool download.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Chunker, CHUNK_SIZE_BYTES_DEFAULT, toHex } from '@peapod/core';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { jsonOf, peapod } from './support/content-cli.js';
import type { PodFixture } from './support/pod-fixture.js';
import {
  DEVICE_1,
  DEVICE_2,
  MiB,
  podSummary,
  startPodAndOrigin,
  writeObject,
  type PodAndOrigin,
} from './support/pod-get-fixture.js';
import type { RevalidatingOrigin } from './support/revalidating-origin.js';

/** The content ID a URL download of `bytes` is kept as (4 MiB chunks, no file table). */
function contentIdOf(bytes: Uint8Array): string {
  const chunker = new Chunker(createNodeCryptoProvider(), {
    chunkSizeBytes: CHUNK_SIZE_BYTES_DEFAULT,
  });
  chunker.push(bytes);
  return toHex(chunker.finish().contentId);
}

describe('only pod copies bound to the URL are served, and private gets stay private', () => {
  let fixture: PodAndOrigin;
  let pod: PodFixture;
  let origin: RevalidatingOrigin;
  let dir: string;
  let www: string;

  before(async () => {
    fixture = await startPodAndOrigin('peapod-pod-trust-', { digest: false });
    ({ pod, origin, dir, www } = fixture);
  });

  after(async () => {
    await fixture?.stop();
  });

  /** Content IDs `peapod ls --json` lists on daemon `index`. */
  async function listed(index: number): Promise<string[]> {
    const result = await peapod(pod.daemons[index]!, ['ls', '--json']);
    assert.equal(result.status, 0, result.stderr);
    return jsonOf<{ contents: { contentId: string }[] }>(result).contents.map(
      (row) => row.contentId,
    );
  }

  test('a strong ETag without a digest: the revalidation and one 16 KiB sample', async () => {
    const bytes = randomBytes(9 * MiB + 4321);
    await writeObject(www, 'sampled.bin', bytes, 10);
    const url = `${origin.url}/sampled.bin`;
    podSummary(await pod.get(0, [url, '-o', join(dir, 'sampled-one.bin'), '--json']));
    await origin.untilIdle();
    const since = origin.log.length;
    const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'sampled-two.bin'), '--json']));
    assert.equal(two.servedFrom, 'pod', two.note);
    assert.match(two.note, /bound to the URL by a 16 KiB sample checked against the origin/);
    assert.deepEqual(two.verified, []);
    assert.ok((await readFile(join(dir, 'sampled-two.bin'))).equals(bytes), 'byte-exact');
    await origin.untilIdle();
    const seen = origin.from(DEVICE_2, since);
    assert.equal(seen.length, 2, JSON.stringify(seen));
    assert.deepEqual([seen[0]!.status, seen[0]!.bodyBytes], [304, 0]);
    assert.match(seen[0]!.ifNoneMatch ?? '', /^"/);
    const sample = seen[1]!;
    assert.deepEqual([sample.status, sample.bodyBytes], [206, 16 * 1024]);
    assert.equal(sample.ifMatch, seen[0]!.ifNoneMatch, 'the sample is pinned with If-Match');
    const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(sample.range ?? '') ?? [];
    assert.equal(Number(last) - Number(first) + 1, 16 * 1024);
    assert.ok(Number(last) < bytes.length);
    assert.equal(origin.from(DEVICE_1, since).length, 0);

    // What the person reads says what stood in for the missing digest.
    const human = await pod.get(1, [url, '-o', join(dir, 'sampled-three.bin')]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(
      human.stderr,
      /verified: no digest known \(a 16 KiB sample checked against the origin\)/,
    );
  });

  test('a lying member: the sample differs, the get falls back and writes the origin bytes', async () => {
    const lie = randomBytes(6 * MiB + 99);
    await writeObject(www, 'target.bin', lie, 20);
    const url = `${origin.url}/target.bin`;
    podSummary(await pod.get(0, [url, '-o', join(dir, 'target-one.bin'), '--json']));
    const lieId = contentIdOf(lie);
    assert.ok((await listed(0)).includes(lieId), 'device 1 maps the URL to content X');
    // The origin's object is now other bytes under the same ETag (same size, same mtime):
    // device 1's URL answer is the real, current ETag with the content ID of its own bytes.
    const real = randomBytes(lie.length);
    await writeObject(www, 'target.bin', real, 20);
    await origin.untilIdle();
    const since = origin.log.length;
    const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'target-two.bin'), '--json']));
    assert.equal(two.servedFrom, undefined);
    assert.match(
      two.note,
      /the pod's copy could not be used \(its bytes \d+-\d+ differ from the origin's: the copy device1 \([A-Z0-9]+\) answered with is not this URL's object\); downloading it from the origin/,
    );
    assert.ok((await readFile(join(dir, 'target-two.bin'))).equals(real), 'the origin bytes');
    await origin.untilIdle();
    const seen = origin.from(DEVICE_2, since);
    assert.equal(seen[0]?.status, 304);
    assert.deepEqual([seen[1]?.status, seen[1]?.bodyBytes], [206, 16 * 1024]);
    assert.notEqual(seen[1]?.ifMatch, undefined);
    const kept = await listed(1);
    assert.ok(!kept.includes(lieId), 'device 2 never keeps the lying copy as its own');
    assert.ok(kept.includes(contentIdOf(real)), 'it keeps what the origin sent');
    assert.match(pod.daemons[1]!.log(), /a pod copy was not used/);
  });

  test('a weak ETag without a digest is not served from the pod', async () => {
    origin.options = { digest: false, etag: 'weak' };
    try {
      const bytes = randomBytes(5 * MiB + 7);
      await writeObject(www, 'weak.bin', bytes, 30);
      const url = `${origin.url}/weak.bin`;
      podSummary(await pod.get(0, [url, '-o', join(dir, 'weak-one.bin'), '--json']));
      await origin.untilIdle();
      const since = origin.log.length;
      const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'weak-two.bin'), '--json']));
      assert.equal(two.servedFrom, undefined);
      assert.match(two.note, /nothing ties its bytes to this URL, so it comes from the origin/);
      assert.ok((await readFile(join(dir, 'weak-two.bin'))).equals(bytes), 'byte-exact');
      await origin.untilIdle();
      assert.ok(origin.from(DEVICE_2, since).some((entry) => entry.bodyBytes > 16 * 1024));
    } finally {
      origin.options = { digest: false };
    }
  });

  test('private gets are not kept, not announced and not looked up', async () => {
    const presigned = randomBytes(3 * MiB + 5);
    await writeObject(www, 'signed.bin', presigned, 40);
    const signedUrl = `${origin.url}/signed.bin?X-Amz-Credential=a&X-Amz-Signature=${'ab'.repeat(32)}`;
    podSummary(await pod.get(0, [signedUrl, '-o', join(dir, 'signed-one.bin'), '--json']));
    const cookied = randomBytes(3 * MiB + 6);
    await writeObject(www, 'cookie.bin', cookied, 41);
    const cookieUrl = `${origin.url}/cookie.bin`;
    const cookie = ['--header', 'Cookie: session=secret'];
    podSummary(
      await pod.get(0, [cookieUrl, '-o', join(dir, 'cookie-one.bin'), '--json', ...cookie]),
    );
    const unpooled = randomBytes(3 * MiB + 7);
    await writeObject(www, 'unpooled.bin', unpooled, 42);
    const unpooledUrl = `${origin.url}/unpooled.bin`;
    const alone = await pod.get(0, [unpooledUrl, '-o', join(dir, 'unpooled-one.bin'), '--no-pool']);
    assert.equal(alone.status, 0, alone.stderr);
    assert.match(alone.stderr, /verified: no digest known\n/, 'no pod helper was involved');
    const held = await listed(0);
    for (const bytes of [presigned, cookied, unpooled]) {
      assert.ok(!held.includes(contentIdOf(bytes)), 'not listed by peapod ls');
    }
    assert.match(pod.daemons[0]!.log(), /not kept for the pod: its URL is presigned/);
    assert.match(pod.daemons[0]!.log(), /not kept for the pod: the request carries a Cookie/);
    // Not announced: the other member finds nobody holding it (after its 3 s stall timeout).
    const fetched = await peapod(pod.daemons[1]!, [
      'fetch',
      contentIdOf(presigned),
      '-o',
      join(dir, 'signed-fetched.bin'),
    ]);
    assert.equal(fetched.status, 1, fetched.stderr);
    assert.match(fetched.stderr, /unavailable: no connected pod member holds content/);

    // Device 1 keeps the plain get of cookie.bin; device 2's get with a Cookie does not ask.
    podSummary(await pod.get(0, [cookieUrl, '-o', join(dir, 'cookie-plain.bin'), '--json']));
    assert.ok((await listed(0)).includes(contentIdOf(cookied)));
    await origin.untilIdle();
    const since = origin.log.length;
    const two = podSummary(
      await pod.get(1, [cookieUrl, '-o', join(dir, 'cookie-two.bin'), '--json', ...cookie]),
    );
    assert.equal(two.servedFrom, undefined);
    assert.ok((await readFile(join(dir, 'cookie-two.bin'))).equals(cookied));
    await origin.untilIdle();
    const seen = origin.from(DEVICE_2, since);
    assert.ok(seen.length > 0);
    assert.ok(
      seen.every((entry) => entry.ifNoneMatch === undefined),
      `no revalidation: ${JSON.stringify(seen)}`,
    );
    assert.ok(!(await listed(1)).includes(contentIdOf(cookied)), 'device 2 keeps it private');
  });
});
