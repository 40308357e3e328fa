/**
 * The gateway in a real `peapod daemon` process (`--gateway`, `--route`), with s3rver as the S3
 * origin and AWS's SDK as the client, and `peapod cache stats|ls|evict` as real CLI processes
 * against it. Shows the pieces assembled: flags, the cache over the daemon's store, the API
 * (and that a content removed from the store with `peapod rm` is a miss, not a cut response).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type S3rver from 's3rver';
import { s3Client as client, startS3rver } from './support/s3.js';
import type { CacheAnswer } from '../src/api-client.js';
import { freeTcpPort } from '../src/local-pod.js';
import { jsonOf, peapod } from './support/content-cli.js';
import { PodFixture } from './support/pod-fixture.js';

const TIMEOUT_MS = 90_000;

describe('peapod daemon --gateway with s3rver behind it', { timeout: TIMEOUT_MS }, () => {
  let dir: string;
  let s3: InstanceType<typeof S3rver>;
  let pod: PodFixture;
  let through: S3Client;
  let gatewayPort: number;
  const object = randomBytes(3 * 2 ** 20 + 17);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'peapod-gwd-'));
    const started = await startS3rver(dir);
    s3 = started.s3;
    const s3Port = new URL(started.url).port;
    await client(started.url).send(
      new PutObjectCommand({ Bucket: 'models', Key: 'w.bin', Body: object }),
    );
    gatewayPort = await freeTcpPort();
    // The gateway signs upstream with the standard AWS variables (s3rver accepts any secret).
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    pod = await PodFixture.start({
      daemons: 1,
      flags: {
        0: [
          '--gateway',
          `127.0.0.1:${gatewayPort}`,
          '--route',
          `/m=s3://models@http://127.0.0.1:${s3Port}`,
          '--cache-size',
          '1GiB',
        ],
      },
    });
    through = client(`http://127.0.0.1:${gatewayPort}`);
  });

  after(async () => {
    await pod?.stop();
    await s3?.close();
    rmSync(dir, { recursive: true, force: true });
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
  });

  test('GetObject through the daemon gateway twice: byte-exact, the second from the cache', async () => {
    for (let i = 0; i < 2; i++) {
      const got = await through.send(new GetObjectCommand({ Bucket: 'm', Key: 'w.bin' }));
      assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), object);
    }
    const answer = jsonOf<CacheAnswer>(await peapod(pod.daemons[0]!, ['cache', 'ls', '--json']));
    assert.equal(answer.running, true);
    assert.deepEqual(
      answer.objects?.map((o) => [o.key.endsWith('/models/w.bin'), o.bytes, o.hits, o.private]),
      [[true, object.length, 1, true]],
    );
    const stats = jsonOf<CacheAnswer>(await peapod(pod.daemons[0]!, ['cache', 'stats', '--json']));
    assert.equal(stats.stats?.bytesFromOrigin, object.length);
    assert.equal(stats.stats?.bytesFromCache, object.length);
    assert.equal(stats.stats?.revalidations.not_modified, 1);
    const text = await peapod(pod.daemons[0]!, ['cache', 'stats']);
    assert.match(text.stdout, /back-to-origin ratio 0\.500/);
  });

  test("peapod rm of a cached object's content: the next GET is a miss, whole from the origin", async () => {
    const daemon = pod.daemons[0]!;
    const before = jsonOf<CacheAnswer>(await peapod(daemon, ['cache', 'ls', '--json']));
    const contentId = before.objects![0]!.contentId;
    const fromOrigin = before.stats!.bytesFromOrigin;
    const removed = jsonOf<{ removed: boolean }>(await peapod(daemon, ['rm', contentId, '--json']));
    assert.equal(removed.removed, true);
    // One plain GET (an SDK would retry a cut response and hide it).
    const got = await fetch(`http://127.0.0.1:${gatewayPort}/m/w.bin`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), object);
    const after = jsonOf<CacheAnswer>(await peapod(daemon, ['cache', 'stats', '--json']));
    assert.equal(
      after.stats!.bytesFromOrigin - fromOrigin,
      object.length,
      'the object came whole from the origin, not from a copy the store no longer holds',
    );
  });

  test('peapod cache evict drops the object; the next GET goes to the origin again', async () => {
    const evicted = jsonOf<{ evicted: number }>(
      await peapod(pod.daemons[0]!, ['cache', 'evict', '--json']),
    );
    assert.equal(evicted.evicted, 1);
    const answer = jsonOf<CacheAnswer>(await peapod(pod.daemons[0]!, ['cache', 'ls', '--json']));
    assert.deepEqual(answer.objects, []);
    const got = await through.send(new GetObjectCommand({ Bucket: 'm', Key: 'w.bin' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), object);
  });
});
