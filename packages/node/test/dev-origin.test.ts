/**
 * The dev origin over real HTTP on 127.0.0.1: deterministic synthesized objects and their
 * digests, the HTTP semantics the pooled path relies on (HEAD, Range, 416, If-Range, If-Match),
 * the fault switches, file serving, per-source-address rate limits, and the CLI. A rate limit is
 * checked only by the lower bound on time it guarantees; measured rates are a figure of
 * bench/rate-limits.ts, next to an unlimited origin in the same run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { parseDigestField } from '../src/http/digest-field.js';
import { TokenBucket } from '../src/rate-limit.js';

const MiB = 1024 * 1024;

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request; resolves with status, headers and the whole body. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, ...options }, async (res) => {
      const parts: Buffer[] = [];
      for await (const part of res) parts.push(part as Buffer);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) });
    });
    req.on('error', reject);
    req.end();
  });
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('dev origin objects and HTTP semantics', () => {
  let origin: DevOrigin;
  let whole: Buffer;
  let root: string;
  let directory: string;
  const size = 256 * 1024 + 7;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'peapod-dev-origin-'));
    directory = join(root, 'served');
    await mkdir(directory);
    await writeFile(join(directory, 'hello.txt'), 'hello, origin\n');
    await writeFile(join(root, 'secret.txt'), 'not served\n');
    origin = await startDevOrigin({
      directory,
      objects: [
        { name: 'o.bin', sizeBytes: size, seed: 5 },
        { name: 'dir/other seed.bin', sizeBytes: size, seed: 6 },
      ],
    });
    whole = (await send(`${origin.url}/o.bin`)).body;
  });
  after(async () => {
    await origin.close();
    await rm(root, { recursive: true, force: true });
  });

  test('synthesized bytes are deterministic, seed-dependent, and match their digests', async () => {
    const again = await startDevOrigin({ objects: [{ name: 'o.bin', sizeBytes: size, seed: 5 }] });
    try {
      assert.ok((await send(`${again.url}/o.bin`)).body.equals(whole));
      assert.equal(again.sha256('o.bin'), origin.sha256('o.bin'));
    } finally {
      await again.close();
    }
    assert.equal(whole.length, size);
    assert.equal(sha256Hex(whole), origin.sha256('o.bin'));
    const other = await send(`${origin.url}/dir/other%20seed.bin`);
    assert.equal(other.status, 200);
    assert.notEqual(sha256Hex(other.body), sha256Hex(whole));
    const full = await send(`${origin.url}/o.bin`);
    for (const field of ['repr-digest', 'content-digest'] as const) {
      const stated = parseDigestField(full.headers[field] as string)['sha-256'];
      assert.equal(Buffer.from(stated ?? []).toString('hex'), origin.sha256('o.bin'), field);
    }
  });

  test('ranges at any offset are the same bytes as the whole object', async () => {
    for (const [first, last] of [
      [0, 0],
      [63, 64],
      [64, 127],
      [65, 200_000],
      [size - 1, size - 1],
      [100, size + 1000],
    ] as const) {
      const answer = await send(`${origin.url}/o.bin`, {
        headers: { range: `bytes=${first}-${last}` },
      });
      const end = Math.min(last + 1, size);
      assert.equal(answer.status, 206);
      assert.equal(answer.headers['content-range'], `bytes ${first}-${end - 1}/${size}`);
      assert.equal(answer.headers['content-digest'], undefined);
      assert.ok(answer.body.equals(whole.subarray(first, end)), `${first}-${last}`);
    }
    const suffix = await send(`${origin.url}/o.bin`, { headers: { range: 'bytes=-10' } });
    assert.ok(suffix.body.equals(whole.subarray(size - 10)));
  });

  test('HEAD, 416, multi-range, 404, 405', async () => {
    const head = await send(`${origin.url}/o.bin`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(size));
    assert.equal(head.headers['accept-ranges'], 'bytes');
    assert.equal(head.body.length, 0);
    const unsatisfiable = await send(`${origin.url}/o.bin`, {
      headers: { range: `bytes=${size}-` },
    });
    assert.equal(unsatisfiable.status, 416);
    assert.equal(unsatisfiable.headers['content-range'], `bytes */${size}`);
    const multi = await send(`${origin.url}/o.bin`, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(multi.status, 200);
    assert.equal(multi.body.length, size);
    assert.equal((await send(`${origin.url}/nothing`)).status, 404);
    assert.equal((await send(`${origin.url}/o.bin`, { method: 'POST' })).status, 405);
  });

  test('If-Range and If-Match (RFC 9110 sections 13.1.1, 13.1.5)', async () => {
    const { etag, 'last-modified': lastModified } = (
      await send(`${origin.url}/o.bin`, { method: 'HEAD' })
    ).headers;
    assert.match(etag ?? '', /^"[0-9a-f]{24}"$/);
    const status = async (headers: Record<string, string>) =>
      (await send(`${origin.url}/o.bin`, { headers: { range: 'bytes=0-9', ...headers } })).status;
    assert.equal(await status({ 'if-range': etag! }), 206);
    assert.equal(await status({ 'if-range': '"other"' }), 200);
    assert.equal(await status({ 'if-range': `W/${etag!}` }), 200);
    assert.equal(await status({ 'if-range': lastModified! }), 206);
    assert.equal(await status({ 'if-range': 'Tue, 02 Jan 2024 00:00:00 GMT' }), 200);
    assert.equal(await status({ 'if-match': etag! }), 206);
    assert.equal(await status({ 'if-match': `"a", ${etag!}` }), 206);
    assert.equal(await status({ 'if-match': '*' }), 206);
    assert.equal(await status({ 'if-match': '"other"' }), 412);
    assert.equal(await status({ 'if-match': `W/${etag!}` }), 412);
  });

  test('fault switches: no ranges, ETag modes, no Last-Modified or digest, failures, a changing object', async () => {
    const url = `${origin.url}/o.bin`;
    origin.setFaults({ ranges: false });
    const noRanges = await send(url, { headers: { range: 'bytes=0-9' } });
    assert.equal(noRanges.status, 200);
    assert.equal(noRanges.headers['accept-ranges'], 'none');
    origin.setFaults({ etag: 'none' });
    assert.equal((await send(url, { method: 'HEAD' })).headers.etag, undefined);
    origin.setFaults({ etag: 'weak' });
    assert.match((await send(url, { method: 'HEAD' })).headers.etag ?? '', /^W\/"/);
    origin.setFaults({ etag: 's3' });
    const s3 = (await send(url, { method: 'HEAD' })).headers;
    assert.equal(s3.etag, `"${createHash('md5').update(whole).digest('hex')}"`);
    assert.equal(s3['x-amz-checksum-sha256'], createHash('sha256').update(whole).digest('base64'));
    assert.ok(s3['x-amz-request-id']);
    origin.setFaults({ etag: 'none', lastModified: false, digest: false });
    const bare = await send(url, { headers: { range: 'bytes=0-9' } });
    assert.equal(bare.status, 206);
    for (const field of ['etag', 'last-modified', 'repr-digest', 'content-digest']) {
      assert.equal(bare.headers[field], undefined, field);
    }
    assert.ok(bare.body.equals(whole.subarray(0, 10)));
    const bareWhole = await send(url);
    assert.equal(bareWhole.headers['content-digest'], undefined);
    assert.ok(bareWhole.body.equals(whole));
    // With no Last-Modified sent, no If-Range date can match: the whole object.
    const dated = await send(url, {
      headers: { range: 'bytes=0-9', 'if-range': 'Mon, 01 Jan 2024 00:00:00 GMT' },
    });
    assert.equal(dated.status, 200);
    origin.setFaults({ etag: 'weak', lastModified: true, digest: false });
    const weak = (await send(url, { method: 'HEAD' })).headers;
    assert.match(weak.etag ?? '', /^W\/"/);
    assert.equal(weak['last-modified'], 'Mon, 01 Jan 2024 00:00:00 GMT');
    assert.equal(weak['repr-digest'], undefined);
    origin.setFaults({ failEveryNth: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await send(url, { method: 'HEAD' })).status);
    assert.equal(statuses.filter((status) => status === 500).length, 2);
    assert.notEqual(statuses[0], statuses[1]);
    origin.setFaults({});

    const changing = await startDevOrigin({
      objects: [{ name: 'c.bin', sizeBytes: 1000, seed: 1 }],
      faults: { changeAfterBytes: 1500 },
    });
    try {
      const first = await send(`${changing.url}/c.bin`);
      const second = await send(`${changing.url}/c.bin`);
      const third = await send(`${changing.url}/c.bin`);
      assert.ok(first.body.equals(second.body)); // 2000 bytes sent during these two
      assert.notEqual(third.headers.etag, first.headers.etag);
      assert.ok(!third.body.equals(first.body));
      assert.equal(changing.sha256('c.bin'), sha256Hex(third.body));
    } finally {
      await changing.close();
    }
  });

  test('serves files under its directory, and nothing outside it', async () => {
    const file = await send(`${origin.url}/hello.txt`, { headers: { range: 'bytes=7-12' } });
    assert.equal(file.status, 206);
    assert.equal(file.body.toString(), 'origin');
    assert.match(file.headers.etag ?? '', /^"e-[0-9a-f]+"$/);
    const full = await send(`${origin.url}/hello.txt`);
    assert.equal(
      Buffer.from(
        parseDigestField(full.headers['repr-digest'] as string)['sha-256'] ?? [],
      ).toString('hex'),
      sha256Hex(Buffer.from('hello, origin\n')),
    );
    // Within the directory, `..` is harmless; out of it, nothing is served.
    assert.equal((await send(`${origin.url}/x%2f..%2fhello.txt`)).status, 200);
    assert.equal((await send(`${origin.url}/secret.txt`)).status, 404);
    assert.equal((await send(`${origin.url}/%2e%2e%2fsecret.txt`)).status, 404);
    assert.equal((await send(`${origin.url}/..%2fetc%2fpasswd`)).status, 404);
  });
});

describe('dev origin rate limits per source address', () => {
  const rate = 4e6;
  const bytes = 4 * MiB;
  let origin: DevOrigin;
  before(async () => {
    origin = await startDevOrigin({
      rateBytesPerSec: rate,
      objects: [{ name: 'r.bin', sizeBytes: bytes, seed: 1 }],
    });
  });
  after(() => origin.close());

  /** Downloads the object from each address at once; returns the milliseconds until the last. */
  async function together(...addresses: string[]): Promise<number> {
    const startedMs = performance.now();
    await Promise.all(
      addresses.map(async (localAddress) => {
        const answer = await send(`${origin.url}/r.bin`, { localAddress });
        assert.equal(answer.body.length, bytes);
      }),
    );
    return performance.now() - startedMs;
  }

  test('one client, two source addresses at once, two connections from one address', async () => {
    await together('127.0.0.2');
    await together('127.0.0.2', '127.0.0.3');
    const sharedMs = await together('127.0.0.4', '127.0.0.4');
    const clients = origin.clients();
    assert.equal(clients.get('127.0.0.2')?.bodyBytes, 2 * bytes);
    assert.equal(clients.get('127.0.0.3')?.bodyBytes, bytes);
    assert.equal(clients.get('127.0.0.4')?.requests, 2);
    // Both connections of 127.0.0.4 draw on one budget: the token bucket's guarantee
    // (rate-limit.ts) bounds what they got together, give or take the debt left at the end (a
    // 64 KiB chunk per connection, sent before its wait) and a timer that fires a little early
    // (another 64 KiB each: 16 ms at this rate). A busy machine only makes this slower, so it
    // cannot flake; the MB/s figures (and each address's own budget) are measured by
    // bench/rate-limits.ts.
    const slackBytes = 4 * 64 * 1024;
    const fastestMs = ((2 * bytes - new TokenBucket(rate).burstBytes - slackBytes) / rate) * 1000;
    assert.ok(
      sharedMs >= fastestMs,
      `two connections from one address got ${2 * bytes} bytes in ${sharedMs.toFixed(0)} ms: ` +
        `more than one budget allows (${fastestMs.toFixed(0)} ms)`,
    );
  });
});

describe('dev origin CLI', () => {
  test('serves a synthesized object and prints its URL', { timeout: 20_000 }, async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as AddressInfo;
    probe.close();
    await once(probe, 'close');
    const script = fileURLToPath(new URL('../src/dev-origin.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        script,
        ...['--size', '1MiB', '--rate', '50Mbit', '--port', String(port), '--etag', 's3'],
        ...['--no-last-modified', '--no-digest'],
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const url = (await lines.next()).value as string;
      const summary = (await lines.next()).value as string;
      console.log(`# ${url}\n# ${summary}`);
      assert.equal(url, `http://127.0.0.1:${port}/object.bin`);
      assert.match(
        summary,
        /1\.0 MiB \(1048576 bytes\), sha-256 [0-9a-f]{64}, 50\.0 Mbit\/s per client address/,
      );
      const answer = await send(url, { headers: { range: 'bytes=0-99' } });
      assert.equal(answer.status, 206);
      assert.equal(answer.body.length, 100);
      assert.match(answer.headers.etag ?? '', /^"[0-9a-f]{32}"$/);
      assert.equal(answer.headers['last-modified'], undefined);
      assert.equal(answer.headers['repr-digest'], undefined);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
