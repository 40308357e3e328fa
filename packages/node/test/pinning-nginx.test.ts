/**
 * Pooled `peapod get` against an origin nobody here wrote: Debian's nginx, in four
 * configurations, one per pinning level (origin-pin.ts), through a pod of 2 real daemons.
 *
 * - `strong-etag`: nginx's default (a strong ETag and Last-Modified);
 * - `last-modified`: `etag off;` (Last-Modified only);
 * - `weak-etag`: `etag off;` and a weak ETag added with `add_header`, Last-Modified removed.
 *   nginx weakens its own ETag only when a filter (gzip) rewrites the body, and it never serves
 *   ranges of such a body; a weak ETag on ranged responses is what nginx in front of an
 *   application (Express/`send`) sends, which this configuration stands for;
 * - `length-only`: `etag off;` and Last-Modified removed: a bare range server with no
 *   validator at all.
 * Each test asserts the file's SHA-256, that the download was pooled (bytes from both devices
 * in `bySource`), and the pinning level reported in the `--json` summary and on stderr. The last
 * test changes the file mid-download: the job must re-probe and finish pooled on the new version.
 * `limit_rate` slows each connection so that the helper gets pieces on a fast loopback.
 * Skipped with a message when nginx is not installed (CI: apt-get install -y nginx).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../src/local-pod.js';
import { NGINX_MISSING, startNginx, type NginxServer } from './support/nginx.js';
import { summaryOf } from './support/get-summary.js';
import { PodFixture } from './support/pod-fixture.js';

const MiB = 1024 * 1024;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes `bytes` as `name` under the nginx root atomically, world-readable, with `mtime`. */
async function publish(root: string, name: string, bytes: Uint8Array, mtime: Date): Promise<void> {
  const temp = join(root, `.${name}.tmp`);
  await writeFile(temp, bytes);
  await chmod(temp, 0o644);
  await utimes(temp, mtime, mtime);
  await rename(temp, join(root, name));
}

const RATE = 'limit_rate 3m;';
const SERVERS = {
  'strong-etag': RATE,
  'last-modified': `${RATE} etag off;`,
  'weak-etag': `${RATE} etag off; add_header ETag 'W/"pin-test-1"'; add_header Last-Modified "";`,
  'length-only': `${RATE} etag off; add_header Last-Modified "";`,
};

describe('pooled peapod get against nginx, each validator kind', { skip: NGINX_MISSING }, () => {
  let nginx: NginxServer;
  let pod: PodFixture;
  const size = 16 * MiB;
  // nginx finishes a response from the file it opened, so only ranges requested after a change
  // see it: the changing objects have 8 pieces (4 MiB each), more than the first assignments.
  const changingSize = 32 * MiB;
  const object = randomBytes(size);

  before(async () => {
    nginx = await startNginx(SERVERS);
    await publish(nginx.root, 'object.bin', object, new Date('2026-01-01T00:00:00Z'));
    pod = await PodFixture.start({ daemons: 2 });
    await pod.connected(0, 1);
  });
  after(async () => {
    await pod?.stop();
    await nginx?.close();
  });

  for (const level of Object.keys(SERVERS)) {
    test(`${level}: pooled over both devices, byte-exact, and reported`, async () => {
      const url = `${nginx.urls[level]}/object.bin`;
      const output = join(pod.root, `nginx-${level}.bin`);
      const result = await pod.get(0, [url, '-o', output, '--json']);
      assert.equal(result.status, 0, result.stderr + result.stdout.toString());
      const summary = summaryOf(result);
      assert.equal(summary.ok, true);
      assert.equal(summary.pooled, true, summary.note);
      assert.equal(summary.sha256, sha256(object));
      assert.equal(sha256(await readFile(output)), sha256(object));
      assert.equal(summary.pinning.level, level);
      assert.ok(summary.pinning.guarantee.length > 0);
      const helpers = Object.entries(summary.bySource).filter(([name]) => name !== 'self');
      assert.ok((summary.bySource.self ?? 0) > 0, JSON.stringify(summary.bySource));
      assert.ok(
        helpers.some(([, bytes]) => bytes > 0),
        `no helper contributed: ${JSON.stringify(summary.bySource)}`,
      );

      const human = join(pod.root, `nginx-${level}-human.bin`);
      const plain = await pod.get(0, [url, '-o', human]);
      assert.equal(plain.status, 0, plain.stderr);
      assert.match(plain.stderr, new RegExp(`^peapod: pinning: ${level}: `, 'm'));
    });
  }

  test('--strict refuses to pool a Last-Modified-only origin, and names what is missing', async () => {
    // An object no device downloaded before: object.bin is kept as content by the tests above,
    // and a kept copy bound by --sha256 is served from the store instead of pooled.
    await publish(nginx.root, 'strict.bin', object, new Date('2026-01-01T00:00:00Z'));
    const url = `${nginx.urls['last-modified']}/strict.bin`;
    const output = join(pod.root, 'nginx-strict.bin');
    const refused = await pod.get(0, [url, '-o', output, '--strict', '-q']);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /--strict: the origin gives no strong ETag .*--sha256/);
    assert.equal(await stat(output).catch(() => undefined), undefined);
    // With the digest known, --strict pools.
    const allowed = await pod.get(0, [
      url,
      '-o',
      output,
      '--strict',
      '--sha256',
      sha256(object),
      '--json',
    ]);
    assert.equal(allowed.status, 0, allowed.stderr + allowed.stdout.toString());
    assert.equal(summaryOf(allowed).pooled, true);
  });

  test('the file changes mid-download: re-probed, pooled again on the new version', async () => {
    const name = 'changing.bin';
    const first = randomBytes(changingSize);
    const second = randomBytes(changingSize + 4096);
    await publish(nginx.root, name, first, new Date('2026-02-01T00:00:00Z'));
    const url = `${nginx.urls['last-modified']}/${name}`;
    const output = join(pod.root, 'nginx-changing.bin');
    const job = pod.get(0, [url, '-o', output, '--json']);
    await waitFor(
      async () =>
        ((await stat(`${output}.peapod-part`).catch(() => undefined))?.size ?? 0) > 4 * MiB,
      30_000,
      'the download to pass 4 MiB',
    );
    await publish(nginx.root, name, second, new Date('2026-03-01T00:00:00Z'));
    const result = await job;
    assert.equal(result.status, 0, result.stderr + result.stdout.toString());
    const summary = summaryOf(result);
    assert.match(
      summary.note,
      /the object changed during the pooled download .*new version pooled, pinned by last-modified/,
    );
    assert.equal(summary.pooled, true, summary.note);
    assert.equal(summary.sha256, sha256(second));
    assert.equal(sha256(await readFile(output)), sha256(second));
    assert.equal(summary.pinning.level, 'last-modified');
  });

  test('it changes a second time: the job falls back to the origin alone and says why', async () => {
    const name = 'twice.bin';
    const versions = [0, 1, 2].map(() => randomBytes(changingSize));
    const mtimes = ['2026-04-01', '2026-05-01', '2026-06-01'].map(
      (day) => new Date(`${day}T00:00:00Z`),
    );
    await publish(nginx.root, name, versions[0]!, mtimes[0]!);
    const output = join(pod.root, 'nginx-twice.bin');
    const job = pod.startGet(0, [`${nginx.urls['last-modified']}/${name}`, '-o', output]);
    let stderr = '';
    job.child.stderr!.on('data', (part: Buffer) => (stderr += part.toString()));
    const partBytes = async () =>
      (await stat(`${output}.peapod-part`).catch(() => undefined))?.size ?? 0;
    await waitFor(async () => (await partBytes()) > 4 * MiB, 30_000, 'the download to pass 4 MiB');
    await publish(nginx.root, name, versions[1]!, mtimes[1]!);
    await waitFor(
      async () => stderr.includes('downloading its new version pooled'),
      30_000,
      'the pooled restart',
    );
    await waitFor(async () => (await partBytes()) > 2 * MiB, 30_000, 'the restart to pass 2 MiB');
    await publish(nginx.root, name, versions[2]!, mtimes[2]!);
    const result = await job.done;
    assert.equal(result.status, 0, result.stderr);
    assert.match(
      result.stderr,
      /^peapod: pooled download stopped \(.*; the origin object changed again\); downloading from the origin alone$/m,
    );
    assert.equal(sha256(await readFile(output)), sha256(versions[2]!));
    assert.match(result.stderr, /^peapod: pinning: single-source: /m);
  });

  test('a wrong --sha256 and no digest from the origin: pooled, then it fails and says so', async () => {
    const url = `${nginx.urls['strong-etag']}/object.bin`;
    const right = sha256(object);
    const wrong = `${right.slice(0, 63)}${right[63] === '0' ? '1' : '0'}`;
    const output = join(pod.root, 'nginx-wrong.bin');
    const failed = await pod.get(0, [url, '-o', output, '--sha256', wrong, '-q']);
    assert.equal(failed.status, 1, failed.stderr);
    assert.match(failed.stderr, /^peapod: download failed: .*--sha256/m);
    // Both digests in full hex, as given: never rewritten as if they were Device IDs.
    assert.ok(failed.stderr.includes(wrong) && failed.stderr.includes(right), failed.stderr);
    assert.equal(await stat(output).catch(() => undefined), undefined);
  });
});
