/**
 * URL downloads served from the pod (DESIGN.md decision 16), end to end: two real
 * `peapod daemon` processes (PodFixture), `peapod get` and curl as real processes, and a real
 * origin in this process that answers conditional requests and logs every request by source
 * address (support/revalidating-origin.ts; each daemon sends its origin traffic from its own
 * 127.0.0.x), plus Debian's nginx for one case.
 *
 * What each test pins down:
 * - device 1 gets a URL; device 2's `get` of it is byte-exact and served from the pod: the
 *   origin (which states its Repr-Digest in the 304 too) saw exactly one request from device
 *   2, conditional (If-None-Match), answered 304 with no body; the summary says from the pod,
 *   which device sent the bytes, the 304 and that the origin digest bound the copy; the same
 *   to stdout (`-o -`);
 * - the object changes at the origin (a new ETag): device 2 downloads it fresh (its
 *   conditional probe was answered 206 and served as the probe: one probe, no second), and the
 *   new version is kept: device 1's next `get` is served from device 2's copy;
 * - a GET through device 2's forward proxy (http_proxy, curl) is served from the pod the same
 *   way, byte-exact, with `X-PeaPod-Source: pod`; one with credentials passes through;
 * - an origin without a validator (no ETag, no Last-Modified) is never served from the pod;
 * - a Last-Modified pin is revalidated with If-Modified-Since;
 * - a 304 stating a digest the pod's copy fails: the copy is not used (one sentence says why)
 *   and the object is downloaded fresh, byte-exact;
 * - a pod copy that went bad (the user overwrote the file the store references) is never
 *   served: the content is unavailable and the get falls back to the origin, byte-exact;
 * - a get with Authorization is private (pod-trust.test.ts has the other cases): device 1 does
 *   not keep it (`peapod ls`), and device 2's get with its own token is never looked up in the
 *   pod: its only request is a plain one, which the origin refuses with 401 for a wrong token;
 * - nginx's strong ETag on a static file answers 304 to the conditional range probe; nginx
 *   states no digest, so the copy is bound by one 16 KiB sample.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { peapod } from './support/content-cli.js';
import { summaryOf } from './support/get-summary.js';
import { NGINX_MISSING, startNginx } from './support/nginx.js';
import type { PodFixture } from './support/pod-fixture.js';
import {
  DEVICE_2,
  MiB,
  podSummary,
  startPodAndOrigin,
  writeObject,
  type PodAndOrigin,
} from './support/pod-get-fixture.js';
import type { RevalidatingOrigin } from './support/revalidating-origin.js';

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (part: Buffer) => (stderr += part.toString()));
  return new Promise<{ status: number; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? -1, stderr }));
  });
}

describe('a URL another pod member downloaded is served from the pod', () => {
  let fixture: PodAndOrigin;
  let pod: PodFixture;
  let origin: RevalidatingOrigin;
  let dir: string;
  let www: string;

  before(async () => {
    fixture = await startPodAndOrigin('peapod-pod-get-');
    ({ pod, origin, dir, www } = fixture);
  });

  after(async () => {
    await fixture?.stop();
  });

  test('device 2 gets it from device 1 after one 304; a new version is fetched fresh and kept', async () => {
    const first = randomBytes(20 * MiB + 12345);
    await writeObject(www, 'object.bin', first, 10);
    const url = `${origin.url}/object.bin`;
    const one = await pod.get(0, [url, '-o', join(dir, 'one.bin'), '--json']);
    assert.equal(podSummary(one).servedFrom, undefined, 'device 1 had no copy to be served');
    await origin.untilIdle();

    const since = origin.log.length;
    const two = await pod.get(1, [url, '-o', join(dir, 'two.bin'), '--json']);
    const summary = podSummary(two);
    assert.ok((await readFile(join(dir, 'two.bin'))).equals(first), 'byte-exact');
    assert.equal(summary.servedFrom, 'pod');
    assert.match(summary.revalidation ?? '', /^304 Not Modified to If-None-Match: "/);
    assert.match(summary.note, /served from the pod: device1 \(/);
    assert.match(summary.note, /bound to the URL by origin digest/);
    assert.deepEqual(Object.keys(summary.bySource).length, 1, 'one holder sent every byte');
    assert.equal(Object.values(summary.bySource)[0], first.length);
    assert.ok(
      summary.verified.some((check) => check.includes('Repr-Digest')),
      summary.verified.join(),
    );
    await origin.untilIdle();
    const seen = origin.from(DEVICE_2, since);
    assert.equal(seen.length, 1, `one request from device 2: ${JSON.stringify(seen)}`);
    assert.equal(seen[0]!.status, 304);
    assert.equal(seen[0]!.bodyBytes, 0);
    assert.match(seen[0]!.ifNoneMatch ?? '', /^"/);
    assert.equal(origin.from('127.0.0.11', since).length, 0, 'device 1 fetched nothing for it');
    const rate = first.length / MiB / summary.seconds;
    console.log(
      `pod-get: ${(first.length / MiB).toFixed(1)} MiB served from the pod in ${summary.seconds.toFixed(2)} s ` +
        `(${rate.toFixed(0)} MiB/s on loopback); the origin sent device 2 ${seen[0]!.bodyBytes} body bytes`,
    );

    // To stdout (-o -): the same bytes from the pod, after one more 304.
    const streamSince = origin.log.length;
    const streamed = await pod.get(1, [url, '-o', '-', '--quiet']);
    assert.equal(streamed.status, 0, streamed.stderr);
    assert.ok(streamed.stdout.equals(first), 'byte-exact to stdout');
    await origin.untilIdle();
    assert.deepEqual(
      origin.from(DEVICE_2, streamSince).map((entry) => [entry.status, entry.bodyBytes]),
      [[304, 0]],
    );

    // A new version (new size and mtime: a new ETag).
    const second = randomBytes(20 * MiB + 777);
    await writeObject(www, 'object.bin', second, 20);
    const changedSince = origin.log.length;
    const fresh = await pod.get(1, [url, '-o', join(dir, 'fresh.bin'), '--json']);
    const freshSummary = podSummary(fresh);
    assert.equal(freshSummary.servedFrom, undefined, 'a changed object is not served from the pod');
    assert.match(freshSummary.note, /not current \(the origin answered 206/);
    assert.ok((await readFile(join(dir, 'fresh.bin'))).equals(second), 'byte-exact new version');
    await origin.untilIdle();
    const probes = origin
      .from(DEVICE_2, changedSince)
      .filter((entry) => entry.range === 'bytes=0-0');
    assert.equal(probes.length, 1, 'the conditional probe was the only probe');
    assert.notEqual(probes[0]!.ifNoneMatch, undefined);

    // The new version is kept: device 1 (holding the old one) is served from device 2's copy.
    const backSince = origin.log.length;
    const back = await pod.get(0, [url, '-o', join(dir, 'back.bin'), '--json']);
    const backSummary = podSummary(back);
    assert.equal(backSummary.servedFrom, 'pod');
    assert.match(backSummary.note, /device2 \(/);
    assert.ok((await readFile(join(dir, 'back.bin'))).equals(second));
    await origin.untilIdle();
    const asked = origin.from('127.0.0.11', backSince);
    assert.equal(asked.length, 1);
    assert.equal(asked[0]!.status, 304);
    // Both versions were offered in one If-None-Match; the 304 named the current one.
    assert.equal(asked[0]!.ifNoneMatch?.split(',').length, 2, asked[0]!.ifNoneMatch);
  });

  test('a GET through device 2 proxy is served from the pod after one 304', async () => {
    const bytes = randomBytes(17 * MiB + 99);
    await writeObject(www, 'proxied.bin', bytes, 30);
    const url = `${origin.url}/proxied.bin`;
    podSummary(await pod.get(0, [url, '-o', join(dir, 'proxied-one.bin'), '--json']));
    await origin.untilIdle();
    const since = origin.log.length;
    const body = join(dir, 'proxied-two.bin');
    const curl = await run('curl', ['-sS', '-D', `${body}.head`, '-o', body, url], {
      ...process.env,
      http_proxy: `http://127.0.0.1:${pod.daemons[1]!.api.port}`,
    });
    assert.equal(curl.status, 0, curl.stderr);
    assert.ok((await readFile(body)).equals(bytes), 'byte-exact through the proxy');
    const head = (await readFile(`${body}.head`, 'utf8')).toLowerCase();
    assert.match(head, /^http\/1\.1 200/);
    assert.match(head, /\r\nx-peapod-source: pod\r\n/);
    await origin.untilIdle();
    const seen = origin.from(DEVICE_2, since);
    assert.equal(seen.length, 1, JSON.stringify(seen));
    assert.equal(seen[0]!.status, 304);
    assert.equal(seen[0]!.bodyBytes, 0);

    // A GET with credentials is not poolable (proxy-policy.ts): it passes through to the origin.
    const withAuth = join(dir, 'proxied-auth.bin');
    const passed = await run(
      'curl',
      ['-sS', '-H', 'Authorization: Bearer z', '-D', `${withAuth}.head`, '-o', withAuth, url],
      { ...process.env, http_proxy: `http://127.0.0.1:${pod.daemons[1]!.api.port}` },
    );
    assert.equal(passed.status, 0, passed.stderr);
    assert.ok((await readFile(withAuth)).equals(bytes));
    assert.doesNotMatch(
      (await readFile(`${withAuth}.head`, 'utf8')).toLowerCase(),
      /x-peapod-source/,
    );
    await origin.untilIdle();
    assert.ok(
      origin.log.some((entry) => entry.authorization === 'Bearer z' && entry.status === 200),
    );
  });

  test('an origin without a validator is not served from the pod', async () => {
    origin.options = { etag: 'none', lastModified: false };
    try {
      const bytes = randomBytes(6 * MiB);
      await writeObject(www, 'plain.bin', bytes, 40);
      const url = `${origin.url}/plain.bin`;
      podSummary(await pod.get(0, [url, '-o', join(dir, 'plain-one.bin'), '--json']));
      await origin.untilIdle();
      const since = origin.log.length;
      const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'plain-two.bin'), '--json']));
      assert.equal(two.servedFrom, undefined);
      assert.equal(two.pinning.level, 'length-only');
      assert.ok((await readFile(join(dir, 'plain-two.bin'))).equals(bytes));
      await origin.untilIdle();
      const seen = origin.from(DEVICE_2, since);
      assert.ok(
        seen.every(
          (entry) => entry.ifNoneMatch === undefined && entry.ifModifiedSince === undefined,
        ),
      );
      assert.ok(
        seen.some((entry) => entry.bodyBytes > 1),
        'device 2 fetched bytes from the origin',
      );
    } finally {
      origin.options = {};
    }
  });

  test('a Last-Modified pin is revalidated with If-Modified-Since', async () => {
    origin.options = { etag: 'none' };
    try {
      const bytes = randomBytes(5 * MiB + 3);
      await writeObject(www, 'dated.bin', bytes, 50);
      const url = `${origin.url}/dated.bin`;
      podSummary(await pod.get(0, [url, '-o', join(dir, 'dated-one.bin'), '--json']));
      await origin.untilIdle();
      const since = origin.log.length;
      const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'dated-two.bin'), '--json']));
      assert.equal(two.servedFrom, 'pod');
      assert.match(two.revalidation ?? '', /If-Modified-Since: /);
      assert.match(two.note, /bound to the URL by origin digest/);
      assert.ok((await readFile(join(dir, 'dated-two.bin'))).equals(bytes));
      await origin.untilIdle();
      const seen = origin.from(DEVICE_2, since);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.status, 304);
      assert.notEqual(seen[0]!.ifModifiedSince, undefined);
    } finally {
      origin.options = {};
    }
  });

  test('a 304 whose digest the pod copy fails: the object comes fresh from the origin', async () => {
    const bytes = randomBytes(7 * MiB + 1);
    await writeObject(www, 'lie.bin', bytes, 60);
    const url = `${origin.url}/lie.bin`;
    podSummary(await pod.get(0, [url, '-o', join(dir, 'lie-one.bin'), '--json']));
    await origin.untilIdle();
    origin.options = { notModifiedSha256: createHash('sha256').update('another').digest() };
    try {
      const since = origin.log.length;
      const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'lie-two.bin'), '--json']));
      assert.equal(two.servedFrom, undefined);
      assert.match(
        two.note,
        /the pod's copy could not be used \(digest mismatch: .*\); downloading it from the origin/,
      );
      assert.ok((await readFile(join(dir, 'lie-two.bin'))).equals(bytes), 'byte-exact');
      await origin.untilIdle();
      const seen = origin.from(DEVICE_2, since);
      assert.equal(seen[0]?.status, 304, 'first the revalidation');
      assert.equal(seen[1]?.range, 'bytes=0-0', 'then a plain probe of the fresh download');
      assert.equal(seen[1]?.ifNoneMatch, undefined);
    } finally {
      origin.options = {};
    }
  });

  test('a pod copy that went bad is never served: the get falls back to the origin', async () => {
    const bytes = randomBytes(6 * MiB + 17);
    await writeObject(www, 'bad.bin', bytes, 65);
    const url = `${origin.url}/bad.bin`;
    const kept = join(dir, 'bad-one.bin');
    podSummary(await pod.get(0, [url, '-o', kept, '--json']));
    // Device 1's user overwrites the file its store references: every read of it fails its check.
    await writeFile(kept, randomBytes(bytes.length));
    const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'bad-two.bin'), '--json']));
    assert.equal(two.servedFrom, undefined);
    assert.match(
      two.note,
      /the pod's copy could not be used \(unavailable: .*\); downloading it from the origin/,
    );
    assert.ok((await readFile(join(dir, 'bad-two.bin'))).equals(bytes), 'byte-exact');
  });

  test('a get with Authorization is private: not kept, never looked up', async () => {
    origin.options = { authorization: 'Bearer one' };
    try {
      const bytes = randomBytes(4 * MiB + 9);
      await writeObject(www, 'private.bin', bytes, 70);
      const url = `${origin.url}/private.bin`;
      const auth = (token: string) => ['--header', `Authorization: Bearer ${token}`];
      podSummary(
        await pod.get(0, [url, '-o', join(dir, 'private-one.bin'), '--json', ...auth('one')]),
      );
      const listed = await peapod(pod.daemons[0]!, ['ls', '--json']);
      assert.equal(listed.status, 0, listed.stderr);
      assert.doesNotMatch(listed.stdout, /private\.bin/, 'not listed by peapod ls');
      assert.match(
        pod.daemons[0]!.log(),
        /not kept for the pod: the request carries a Authorization/,
      );
      await origin.untilIdle();
      const since = origin.log.length;
      const refused = await pod.get(1, [
        url,
        '-o',
        join(dir, 'private-two.bin'),
        '--json',
        ...auth('two'),
      ]);
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(summaryOf(refused).error ?? '', /401/);
      await assert.rejects(readFile(join(dir, 'private-two.bin')), { code: 'ENOENT' });
      await origin.untilIdle();
      const seen = origin.from(DEVICE_2, since);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.authorization, 'Bearer two');
      assert.equal(seen[0]!.ifNoneMatch, undefined, 'no revalidation: it was not looked up');
      const allowed = podSummary(
        await pod.get(1, [url, '-o', join(dir, 'private-two.bin'), '--json', ...auth('one')]),
      );
      assert.equal(allowed.servedFrom, undefined);
      assert.ok((await readFile(join(dir, 'private-two.bin'))).equals(bytes));
    } finally {
      origin.options = {};
    }
  });

  test('nginx answers the conditional range probe with 304', { skip: NGINX_MISSING }, async () => {
    const nginx = await startNginx({ plain: '' });
    try {
      const bytes = randomBytes(9 * MiB + 5);
      await writeFile(join(nginx.root, 'static.bin'), bytes, { mode: 0o644 });
      const url = `${nginx.urls.plain!}/static.bin`;
      podSummary(await pod.get(0, [url, '-o', join(dir, 'nginx-one.bin'), '--json']));
      const two = podSummary(await pod.get(1, [url, '-o', join(dir, 'nginx-two.bin'), '--json']));
      assert.equal(two.servedFrom, 'pod');
      assert.match(two.revalidation ?? '', /^304 Not Modified to If-None-Match: "/);
      // nginx states no digest: the revalidation and one 16 KiB sample bind the copy.
      assert.match(two.note, /bound to the URL by a 16 KiB sample checked against the origin/);
      assert.ok((await readFile(join(dir, 'nginx-two.bin'))).equals(bytes));
    } finally {
      await nginx.close();
    }
  });
});
