/**
 * The gateway's endpoint mode with real parts: `s3rver` 3.7.1 as the S3 origin, driven by AWS's
 * own `@aws-sdk/client-s3` pointed at the gateway (path-style), and plain `fetch` for presigned
 * URLs and raw paths. Objects are put straight to s3rver, then read through the gateway and
 * compared byte for byte. s3rver verifies no signature (any secret passes with the key
 * `S3RVER`), so these tests show the routing and the byte-exact relay, not the signing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import fc from 'fast-check';
import type S3rver from 's3rver';
import { S3RVER_CREDENTIALS, s3Client as client, startS3rver } from './support/s3.js';
import { Gateway } from '../src/gateway/gateway-server.js';
import { hasDotSegment, parseRoute, RouteError, RouteTable } from '../src/gateway/routes.js';

const TIMEOUT_MS = 60_000;

async function bytesOf(
  body: { transformToByteArray(): Promise<Uint8Array> } | undefined,
): Promise<Buffer> {
  assert.ok(body !== undefined, 'a body');
  return Buffer.from(await body.transformToByteArray());
}

describe(
  'gateway endpoint mode, s3rver behind it, AWS SDK in front',
  { timeout: TIMEOUT_MS },
  () => {
    let dir: string;
    let s3: InstanceType<typeof S3rver>;
    let gateway: Gateway;
    let direct: S3Client;
    let through: S3Client;
    let gatewayUrl: string;
    const object = randomBytes(300_001);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'peapod-gw-'));
      const started = await startS3rver(dir);
      s3 = started.s3;
      const s3Url = started.url;
      direct = client(s3Url);
      await direct.send(
        new PutObjectCommand({
          Bucket: 'models',
          Key: 'weights/a.bin',
          Body: object,
          ContentType: 'application/octet-stream',
        }),
      );
      await direct.send(
        new PutObjectCommand({ Bucket: 'models', Key: 'weights/b.bin', Body: Buffer.from('bee') }),
      );
      gateway = new Gateway({
        routes: new RouteTable([parseRoute(`/cache=s3://models@${s3Url}`)]),
        credentials: S3RVER_CREDENTIALS,
      });
      const address = await gateway.listen(0, '127.0.0.1');
      gatewayUrl = `http://127.0.0.1:${address.port}`;
      through = client(gatewayUrl);
    });

    after(async () => {
      await gateway?.close();
      await s3?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test('GetObject through the gateway returns the object byte for byte, with its ETag', async () => {
      const got = await through.send(
        new GetObjectCommand({ Bucket: 'cache', Key: 'weights/a.bin' }),
      );
      assert.deepEqual(await bytesOf(got.Body), object);
      const head = await direct.send(
        new HeadObjectCommand({ Bucket: 'models', Key: 'weights/a.bin' }),
      );
      assert.equal(got.ETag, head.ETag);
    });

    test('HeadObject through the gateway gives the origin length and ETag, no body', async () => {
      const head = await through.send(
        new HeadObjectCommand({ Bucket: 'cache', Key: 'weights/a.bin' }),
      );
      assert.equal(head.ContentLength, object.length);
      assert.match(head.ETag ?? '', /^"[0-9a-f]{32}"$/);
    });

    test('ranged GetObject: bytes=10-19 and the open-ended bytes=300000- are the right bytes', async () => {
      const mid = await through.send(
        new GetObjectCommand({ Bucket: 'cache', Key: 'weights/a.bin', Range: 'bytes=10-19' }),
      );
      assert.deepEqual(await bytesOf(mid.Body), object.subarray(10, 20));
      assert.equal(mid.ContentRange, `bytes 10-19/${object.length}`);
      const tail = await through.send(
        new GetObjectCommand({ Bucket: 'cache', Key: 'weights/a.bin', Range: 'bytes=300000-' }),
      );
      assert.deepEqual(await bytesOf(tail.Body), object.subarray(300_000));
    });

    test('ListObjectsV2 with a prefix passes through', async () => {
      const listed = await through.send(
        new ListObjectsV2Command({ Bucket: 'cache', Prefix: 'weights/' }),
      );
      assert.deepEqual(
        (listed.Contents ?? []).map((c) => [c.Key, c.Size]),
        [
          ['weights/a.bin', object.length],
          ['weights/b.bin', 3],
        ],
      );
    });

    test('a presigned GET for the gateway is fetched by plain fetch, byte for byte', async () => {
      const url = await getSignedUrl(
        through,
        new GetObjectCommand({ Bucket: 'cache', Key: 'weights/b.bin' }),
        { expiresIn: 60 },
      );
      assert.match(url, /X-Amz-Signature=/);
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.equal(Buffer.from(await response.arrayBuffer()).toString(), 'bee');
    });

    test('a missing key is the origin 404 NoSuchKey, passed through', async () => {
      await assert.rejects(
        through.send(new GetObjectCommand({ Bucket: 'cache', Key: 'weights/none.bin' })),
        (error: Error) => error.name === 'NoSuchKey',
      );
    });

    test('PutObject through the gateway lands in the origin bucket', async () => {
      const body = randomBytes(5000);
      await through.send(new PutObjectCommand({ Bucket: 'cache', Key: 'up/c.bin', Body: body }));
      const got = await direct.send(new GetObjectCommand({ Bucket: 'models', Key: 'up/c.bin' }));
      assert.deepEqual(await bytesOf(got.Body), body);
    });

    test('a streaming upload with the SDK default checksums (aws-chunked + trailer) is stored decoded', async () => {
      const defaults = new S3Client({
        endpoint: gatewayUrl,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
      });
      const body = randomBytes(200_000);
      await defaults.send(
        new PutObjectCommand({
          Bucket: 'cache',
          Key: 'up/streamed.bin',
          Body: Readable.from([body.subarray(0, 70_000), body.subarray(70_000)]),
          ContentLength: body.length,
        }),
      );
      const got = await direct.send(
        new GetObjectCommand({ Bucket: 'models', Key: 'up/streamed.bin' }),
      );
      assert.deepEqual(await bytesOf(got.Body), body);
    });

    test('an unrouted path is 404 with a sentence naming the routes', async () => {
      const response = await fetch(`${gatewayUrl}/other/x`);
      assert.equal(response.status, 404);
      assert.match(
        await response.text(),
        /no route for \/other\/x \(routes: \/cache=s3:\/\/models@/,
      );
    });

    test('a path climbing out of its bucket (/cache/../x, %2e%2e) matches no route', async () => {
      // Raw request-targets: fetch and curl would resolve the dot segments before sending.
      for (const path of [
        '/cache/../models/weights/b.bin',
        '/cache/%2e%2E/models/weights/b.bin',
        '/cache/weights/..%2fb.bin',
      ]) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpRequest(`${gatewayUrl}/`, { path }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.end();
        });
        assert.equal(status, 404, path);
      }
      // The same object by its plain path is served (the refusal is the dot segment's).
      assert.equal((await fetch(`${gatewayUrl}/cache/weights/b.bin`)).status, 200);
    });
  },
);

describe('gateway routes', () => {
  test('parseRoute reads prefix, host, HTTP and S3 targets', () => {
    const s3 = parseRoute('/models=s3://ml-models@http://127.0.0.1:9000?region=eu-west-1');
    assert.deepEqual(s3.match, { kind: 'prefix', prefix: '/models' });
    assert.equal(s3.target.kind, 's3');
    if (s3.target.kind === 's3') {
      assert.equal(s3.target.bucket, 'ml-models');
      assert.equal(s3.target.region, 'eu-west-1');
      assert.equal(s3.target.endpoint.host, '127.0.0.1:9000');
    }
    const host = parseRoute('CDN.local=http://10.0.0.5:8080/base');
    assert.deepEqual(host.match, { kind: 'host', host: 'cdn.local' });
  });

  test('parseRoute refuses what it cannot route, with a sentence', () => {
    for (const [spec, why] of [
      ['/models', /MATCH=TARGET/],
      ['/m=ftp://x', /http:\/\/, https:\/\/ or s3:\/\//],
      ['/m=s3://Bad_Bucket!', /not an S3 bucket name/],
      ['/m=http://user:pw@x', /no credentials/],
      ['/m=s3://b@http://h:1?color=red', /unknown option/],
    ] as const) {
      assert.throws(
        () => parseRoute(spec),
        (e: Error) => e instanceof RouteError && why.test(e.message),
        spec,
      );
    }
  });

  test('resolve: longest prefix on a segment boundary, host routes first, the rest appended', () => {
    const table = new RouteTable([
      parseRoute('/a=http://one:1/base'),
      parseRoute('/a/b=s3://bkt@http://two:2'),
      parseRoute('cdn.local=http://three:3'),
    ]);
    assert.equal(table.resolve('x', '/a/b/k?q=1')?.upstream.path, '/bkt/k?q=1');
    assert.equal(table.resolve('x', '/a/c')?.upstream.path, '/base/c');
    assert.equal(table.resolve('x', '/ab'), undefined);
    assert.equal(table.resolve('CDN.local:8081', '/a/c')?.upstream.origin.host, 'three:3');
  });

  test('property: resolve never throws, and what it resolves never holds a dot segment', () => {
    const table = new RouteTable([
      parseRoute('/a=http://one:1/base'),
      parseRoute('h=s3://bkt@http://two:2'),
    ]);
    fc.assert(
      fc.property(fc.option(fc.string()), fc.string(), (host, target) => {
        const resolved = table.resolve(host ?? undefined, target);
        if (resolved !== undefined) assert.equal(hasDotSegment(resolved.upstream.path), false);
      }),
      { numRuns: 2000 },
    );
  });
});
