/**
 * probeOrigin against real HTTP servers on 127.0.0.1 (DESIGN.md, "Real parts in tests"): the dev
 * origin in each of its variants (strong, weak and no ETag, no ranges, S3 style, empty object),
 * plus small raw servers for what the dev origin never does (redirect chains, digests that must
 * not count, errors).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { probeOrigin, type OriginDescription } from '../src/http/origin-probe.js';
import { download, rawServer } from './support/http.js';

const MiB = 1024 * 1024;

function described(probe: Awaited<ReturnType<typeof probeOrigin>>): OriginDescription {
  assert.equal(probe.kind, 'described', probe.kind === 'failed' ? probe.detail : '');
  return probe as OriginDescription;
}

function digestSources(probe: OriginDescription): string[] {
  return probe.digests.map((d) => `${d.algorithm} ${d.source}`).sort();
}

describe('probeOrigin', () => {
  let origin: DevOrigin;
  before(async () => {
    origin = await startDevOrigin({
      objects: [
        { name: 'a.bin', sizeBytes: 3 * MiB + 17, seed: 1 },
        { name: 'big.bin', sizeBytes: 64 * MiB, seed: 2 },
        { name: 'empty.bin', sizeBytes: 0, seed: 3 },
      ],
    });
  });
  after(() => origin.close());

  test('a range-capable origin with a strong ETag and Repr-Digest is poolable', async () => {
    origin.setFaults({});
    const probe = described(await probeOrigin(`${origin.url}/a.bin`));
    assert.equal(probe.reasonNotPoolable, undefined);
    assert.equal(probe.status, 206);
    assert.equal(probe.totalBytes, 3 * MiB + 17);
    assert.equal(probe.rangesSupported, true);
    assert.match(probe.validator ?? '', /^"[0-9a-f]+"$/);
    assert.equal(probe.lastModified, 'Mon, 01 Jan 2024 00:00:00 GMT');
    assert.equal(probe.contentType, 'application/octet-stream');
    assert.equal(probe.redirects, 0);
    assert.equal(probe.url, `${origin.url}/a.bin`);
    // Repr-Digest only: a 206's Content-Digest would cover one byte.
    assert.deepEqual(digestSources(probe), ['sha-256 Repr-Digest']);
    assert.equal(Buffer.from(probe.digests[0]!.digest).toString('hex'), origin.sha256('a.bin'));
  });

  test('no range support: not poolable, size from Content-Length, Content-Digest counts, body not read', async () => {
    origin.setFaults({ ranges: false });
    const before = origin.clients().get('127.0.0.1')?.bodyBytes ?? 0;
    const probe = described(await probeOrigin(`${origin.url}/big.bin`));
    origin.setFaults({});
    assert.equal(probe.status, 200);
    assert.equal(probe.rangesSupported, false);
    assert.equal(probe.totalBytes, 64 * MiB);
    assert.match(probe.reasonNotPoolable ?? '', /does not support byte ranges/);
    assert.deepEqual(digestSources(probe), ['sha-256 Content-Digest', 'sha-256 Repr-Digest']);
    for (const digest of probe.digests) {
      assert.equal(Buffer.from(digest.digest).toString('hex'), origin.sha256('big.bin'));
    }
    // The probe closed the connection instead of reading the 64 MiB body: the origin's response
    // closes (cut off), and what it sent by then is counted.
    await origin.untilIdle();
    const sent = (origin.clients().get('127.0.0.1')?.bodyBytes ?? 0) - before;
    console.log(`# the origin sent ${sent} body bytes before the probe closed the connection`);
    assert.ok(sent < 32 * MiB, `the origin sent ${sent} bytes`);
  });

  test('no ETag or a weak ETag: poolable, pinned by Last-Modified (the weak ETag compared too)', async () => {
    origin.setFaults({ etag: 'none' });
    const none = described(await probeOrigin(`${origin.url}/a.bin`));
    origin.setFaults({ etag: 'weak' });
    const weak = described(await probeOrigin(`${origin.url}/a.bin`));
    origin.setFaults({});
    for (const probe of [none, weak]) {
      assert.equal(probe.reasonNotPoolable, undefined);
      assert.equal(probe.pin?.level, 'last-modified');
      assert.equal(probe.pin?.totalBytes, 3 * MiB + 17);
      assert.equal(probe.pin?.lastModified, probe.lastModified);
      assert.ok(probe.validator?.startsWith('peapod-pin/1 '), probe.validator);
    }
    assert.equal(none.pin?.etag, undefined);
    assert.match(weak.pin?.etag ?? '', /^W\/"[0-9a-f]+"$/);
    assert.equal(none.totalBytes, 3 * MiB + 17);
    assert.equal(weak.rangesSupported, true);
  });

  test('an S3-style origin states the MD5 (single-part ETag) and x-amz-checksum-sha256', async () => {
    origin.setFaults({ etag: 's3' });
    const probe = described(await probeOrigin(`${origin.url}/a.bin`));
    origin.setFaults({});
    assert.equal(probe.reasonNotPoolable, undefined);
    assert.deepEqual(digestSources(probe), [
      'md5 S3 ETag',
      'sha-256 Repr-Digest',
      'sha-256 x-amz-checksum-sha256',
    ]);
    const body = await download(`${origin.url}/a.bin`);
    const expected: Record<string, string> = {
      md5: createHash('md5').update(body).digest('hex'),
      'sha-256': createHash('sha256').update(body).digest('hex'),
    };
    for (const digest of probe.digests) {
      assert.equal(Buffer.from(digest.digest).toString('hex'), expected[digest.algorithm]);
    }
  });

  test('an empty object: 416 with its size, not poolable', async () => {
    const probe = described(await probeOrigin(`${origin.url}/empty.bin`));
    assert.equal(probe.status, 416);
    assert.equal(probe.totalBytes, 0);
    assert.equal(probe.reasonNotPoolable, 'the object is empty');
  });

  test("the request leaves from the given source address (a device's own link)", async () => {
    described(await probeOrigin(`${origin.url}/a.bin`, { localAddress: '127.0.0.2' }));
    assert.ok(origin.clients().has('127.0.0.2'), [...origin.clients().keys()].join(', '));
  });

  test('failures are results with a detail, never exceptions', async () => {
    const missing = await probeOrigin(`${origin.url}/missing.bin`);
    assert.equal(missing.kind, 'failed');
    assert.match(missing.kind === 'failed' ? missing.detail : '', /answered 404 Not Found/);
    const closed = await rawServer(() => undefined);
    await closed.close();
    const refused = await probeOrigin(`${closed.url}/x`);
    assert.equal(refused.kind, 'failed');
    assert.match(refused.kind === 'failed' ? refused.detail : '', /ECONNREFUSED/);
    const silent = await rawServer(() => undefined);
    const aborted = await probeOrigin(`${silent.url}/x`, { signal: AbortSignal.timeout(100) });
    await silent.close();
    assert.equal(aborted.kind, 'failed');
    await assert.rejects(probeOrigin('ftp://127.0.0.1/x'), { code: 'PEAPOD_ERR_INVALID_ARGUMENT' });
  });
});

describe('probeOrigin with raw servers', () => {
  test('follows up to 5 redirects, not 6', async () => {
    const server = await rawServer((req, res) => {
      const hops = Number(/^\/r\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1);
      if (hops > 0) res.writeHead(hops % 2 === 0 ? 302 : 307, { location: `/r/${hops - 1}` });
      else res.writeHead(206, { 'content-range': 'bytes 0-0/10', etag: '"v1"' });
      res.end(hops > 0 ? '' : 'x');
    });
    try {
      const five = described(await probeOrigin(`${server.url}/r/5`));
      assert.equal(five.redirects, 5);
      assert.equal(five.url, `${server.url}/r/0`);
      assert.equal(five.reasonNotPoolable, undefined);
      const six = await probeOrigin(`${server.url}/r/6`);
      assert.equal(six.kind, 'failed');
      assert.match(six.kind === 'failed' ? six.detail : '', /more than 5 redirects/);
    } finally {
      await server.close();
    }
  });

  test('credentials follow a same-origin redirect but not a cross-origin one', async () => {
    const seen: (string | undefined)[] = [];
    const target = await rawServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(206, { 'content-range': 'bytes 0-0/10', etag: '"v1"' }).end('x');
    });
    const redirector = await rawServer((req, res) => {
      if (req.url === '/same') res.writeHead(302, { location: '/final' }).end();
      else if (req.url === '/cross') res.writeHead(302, { location: `${target.url}/x` }).end();
      else {
        seen.push(req.headers.authorization);
        res.writeHead(206, { 'content-range': 'bytes 0-0/10', etag: '"v1"' }).end('x');
      }
    });
    try {
      const headers = [{ name: 'Authorization', value: 'Bearer secret' }];
      described(await probeOrigin(`${redirector.url}/same`, { headers }));
      described(await probeOrigin(`${redirector.url}/cross`, { headers }));
      assert.deepEqual(seen, ['Bearer secret', undefined]);
    } finally {
      await redirector.close();
      await target.close();
    }
  });

  test('digests that do not describe the whole object are not counted', async () => {
    let headers: IncomingHttpHeaders = {};
    const server = await rawServer((_req, res) => {
      res.writeHead(206, { 'content-range': 'bytes 0-0/10', ...headers }).end('x');
    });
    const sha256 = Buffer.alloc(32, 7).toString('base64');
    const probeWith = async (next: IncomingHttpHeaders) => {
      headers = next;
      return digestSources(described(await probeOrigin(`${server.url}/x`)));
    };
    try {
      // Content-Digest on a 206 covers the one byte sent.
      assert.deepEqual(await probeWith({ 'content-digest': `sha-256=:${sha256}:` }), []);
      // A composite (multipart) S3 checksum is a checksum of checksums.
      assert.deepEqual(
        await probeWith({ 'x-amz-checksum-sha256': sha256, 'x-amz-checksum-type': 'COMPOSITE' }),
        [],
      );
      assert.deepEqual(await probeWith({ 'x-amz-checksum-sha256': `${sha256}-3` }), []);
      // 32 hex digits from a server that is not S3, a multipart ETag, an SSE-KMS object.
      const md5 = '"0123456789abcdef0123456789abcdef"';
      assert.deepEqual(await probeWith({ etag: md5 }), []);
      assert.deepEqual(
        await probeWith({ etag: '"0123456789abcdef0123456789abcdef-4"', 'x-amz-request-id': 'A' }),
        [],
      );
      assert.deepEqual(
        await probeWith({
          etag: md5,
          'x-amz-request-id': 'A',
          'x-amz-server-side-encryption': 'aws:kms',
        }),
        [],
      );
      assert.deepEqual(await probeWith({ etag: md5, 'x-amz-id-2': 'B' }), ['md5 S3 ETag']);
      // A Repr-Digest with a wrong length, and a malformed one, state nothing.
      assert.deepEqual(await probeWith({ 'repr-digest': 'sha-256=:AAAA:' }), []);
      assert.deepEqual(await probeWith({ 'repr-digest': `sha-256=${sha256}` }), []);
    } finally {
      await server.close();
    }
  });

  test('a 206 without a usable Content-Range, or without a size, is not poolable', async () => {
    let contentRange = 'bytes 0-0/*';
    const server = await rawServer((_req, res) => {
      res.writeHead(206, { 'content-range': contentRange, etag: '"v1"' }).end('x');
    });
    try {
      const unknownSize = described(await probeOrigin(`${server.url}/x`));
      assert.equal(unknownSize.rangesSupported, true);
      assert.equal(unknownSize.reasonNotPoolable, "the origin does not state the object's size");
      contentRange = 'bytes 0-9/10';
      const wrong = described(await probeOrigin(`${server.url}/x`));
      assert.equal(wrong.rangesSupported, false);
      assert.match(wrong.reasonNotPoolable ?? '', /unusable Content-Range \(bytes 0-9\/10\)/);
    } finally {
      await server.close();
    }
  });
});
