/**
 * The gateway's cache (cached-get.ts, object-cache.ts) in endpoint mode with real parts: a real
 * HTTP origin that answers conditional requests and logs every request it saw
 * (support/revalidating-origin.ts), a real chunk store on disk, and plain `fetch` / node:http
 * clients. Each test says what the origin must have seen, so "served from the cache" is shown by
 * the origin's log (a 304 with no body, or no request at all), not assumed.
 *
 * The origin's files get a modification time in the future, so a response's heuristic
 * freshness (RFC 9111 4.2.2, 10% of Date - Last-Modified) is zero: every anonymous request is
 * revalidated, and nothing depends on how fast the test runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { execFile, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { ChunkStore } from '../src/store/chunk-store.js';
import { CachedGet } from '../src/gateway/cached-get.js';
import { forwardCacheResponder } from '../src/gateway/forward-cache.js';
import { ForwardProxy } from '../src/proxy.js';
import { Gateway } from '../src/gateway/gateway-server.js';
import { MemoryCache } from '../src/gateway/memory-cache.js';
import { ObjectCache } from '../src/gateway/object-cache.js';
import { ObjectIndex } from '../src/gateway/object-index.js';
import { SegmentFeeds } from '../src/gateway/segment-feed.js';
import { parseRoute, RouteTable } from '../src/gateway/routes.js';
import {
  RevalidatingOrigin,
  type RevalidatingOriginOptions,
} from './support/revalidating-origin.js';

const TIMEOUT_MS = 60_000;

interface Fixture {
  readonly dir: string;
  readonly origin: RevalidatingOrigin;
  readonly gateway: Gateway;
  readonly url: string;
  /** The forward proxy whose GETs go through the same cache (forward-cache.ts). */
  readonly proxyUrl: string;
  readonly bytesBySource: Map<string, number>;
  readonly revalidations: string[];
  readonly cachedGet: CachedGet;
  /** The gateway's log lines so far, and the next one to come. */
  readonly logged: Array<{ level: 'debug' | 'warn'; message: string }>;
  nextLog(): Promise<{ level: 'debug' | 'warn'; message: string }>;
  close(): Promise<void>;
}

async function fixture(
  files: Record<string, Uint8Array>,
  options: RevalidatingOriginOptions = {},
): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'peapod-gwc-'));
  const originDir = join(dir, 'origin');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(originDir);
  for (const [name, bytes] of Object.entries(files)) putFile(originDir, name, bytes);
  const origin = await RevalidatingOrigin.start(originDir, options);
  const store = await ChunkStore.open({ dir: join(dir, 'store'), budgetBytes: 2 ** 30 });
  const index = new ObjectIndex(join(dir, 'gateway.db'));
  const bytesBySource = new Map<string, number>();
  const revalidations: string[] = [];
  const cache = new ObjectCache({
    store,
    index,
    objectsDir: join(dir, 'objects'),
    crypto: createNodeCryptoProvider(),
    budgetBytes: 2 ** 30,
    memory: new MemoryCache({ maxBytes: 64 * 2 ** 20 }),
    nowMs: () => Date.now(),
    feeds: new SegmentFeeds(),
  });
  const cachedGet = new CachedGet(
    cache,
    {
      lookup: () => undefined,
      revalidated: (result) => revalidations.push(result),
      bytes: (source, count) => bytesBySource.set(source, (bytesBySource.get(source) ?? 0) + count),
    },
    () => Date.now(),
  );
  const logged: Array<{ level: 'debug' | 'warn'; message: string }> = [];
  let waiters: Array<(line: { level: 'debug' | 'warn'; message: string }) => void> = [];
  const log = (level: 'debug' | 'warn') => (_fields: unknown, message: string) => {
    const line = { level, message };
    logged.push(line);
    for (const wake of waiters) wake(line);
    waiters = [];
  };
  const gateway = new Gateway({
    routes: new RouteTable([parseRoute(`/files=${origin.url}`)]),
    cache: cachedGet,
    logger: { debug: log('debug'), warn: log('warn') },
  });
  const address = await gateway.listen(0, '127.0.0.1');
  const proxy = new ForwardProxy({
    poolable: (request) => forwardCacheResponder(cachedGet, request),
  });
  const proxyAddress = await proxy.listen(0, '127.0.0.1');
  return {
    dir,
    origin,
    gateway,
    url: `http://127.0.0.1:${address.port}/files`,
    proxyUrl: `http://127.0.0.1:${proxyAddress.port}`,
    bytesBySource,
    revalidations,
    cachedGet,
    logged,
    nextLog: () => new Promise((resolve) => waiters.push(resolve)),
    close: async () => {
      await proxy.close();
      await gateway.close();
      await origin.close();
      index.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Writes a file the origin serves, modified "in the future" (see the module comment), or
 * `agedDays` ago: then its heuristic freshness is a tenth of that (capped at a day).
 */
function putFile(dir: string, name: string, bytes: Uint8Array, agedDays?: number): void {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  const at = new Date(Date.now() + (agedDays === undefined ? 3_600_000 : -agedDays * 86_400_000));
  utimesSync(path, at, at);
}

/**
 * A GET whose body is not read until `rest()`: the gateway's fill for it stalls on TCP flow
 * control once the socket buffers are full, so a test can act while that fill runs.
 */
function stalledGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; rest(): Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      res.pause();
      resolve({
        status: res.statusCode ?? 0,
        rest: async () => {
          const pieces: Buffer[] = [];
          for await (const piece of res as AsyncIterable<Buffer>) pieces.push(piece);
          return Buffer.concat(pieces);
        },
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const response = await fetch(url, { headers });
  return {
    status: response.status,
    headers: response.headers,
    body: Buffer.from(await response.arrayBuffer()),
  };
}

describe('gateway cache, HTTP route, anonymous requests', { timeout: TIMEOUT_MS }, () => {
  const object = randomBytes(1_000_003);
  let f: Fixture;
  before(async () => {
    f = await fixture({ 'a.bin': object, 'b.bin': randomBytes(5000) });
  });
  after(() => f?.close());

  test('a miss is fetched once; the next GET is a 304 from the origin and the bytes come from the cache', async () => {
    const first = await get(`${f.url}/a.bin`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, object);
    const since = f.origin.log.length;
    const second = await get(`${f.url}/a.bin`);
    assert.equal(second.status, 200);
    assert.deepEqual(second.body, object);
    const seen = f.origin.log.slice(since);
    assert.deepEqual(
      seen.map((e) => [e.method, e.status, e.bodyBytes, e.ifNoneMatch !== undefined]),
      [['GET', 304, 0, true]],
    );
    assert.equal(second.headers.get('etag'), first.headers.get('etag'));
    assert.equal(second.headers.get('accept-ranges'), 'bytes');
  });

  test('ranges from the cache: single, suffix, open-ended, and 416 past the end', async () => {
    await get(`${f.url}/a.bin`);
    const cases: [string, number, Buffer | undefined, string | undefined][] = [
      ['bytes=0-9', 206, object.subarray(0, 10), `bytes 0-9/${object.length}`],
      [
        'bytes=-100',
        206,
        object.subarray(object.length - 100),
        `bytes ${object.length - 100}-${object.length - 1}/${object.length}`,
      ],
      [
        'bytes=999990-',
        206,
        object.subarray(999_990),
        `bytes 999990-${object.length - 1}/${object.length}`,
      ],
      [`bytes=${object.length}-`, 416, undefined, `bytes */${object.length}`],
    ];
    for (const [range, status, body, contentRange] of cases) {
      const since = f.origin.log.length;
      const got = await get(`${f.url}/a.bin`, { range });
      assert.equal(got.status, status, range);
      if (body !== undefined) assert.deepEqual(got.body, body, range);
      assert.equal(got.headers.get('content-range'), contentRange ?? null, range);
      // What the origin sent for it: a bodyless 304 at most.
      assert.ok(
        f.origin.log.slice(since).every((e) => e.bodyBytes === 0),
        range,
      );
    }
  });

  test('a multi-range request from the cache is multipart/byteranges with each part right', async () => {
    await get(`${f.url}/a.bin`);
    const got = await get(`${f.url}/a.bin`, { range: 'bytes=0-4,100-109' });
    assert.equal(got.status, 206);
    const type = got.headers.get('content-type') ?? '';
    const boundary = /boundary=(\S+)/.exec(type)?.[1];
    assert.ok(boundary !== undefined, type);
    const text = got.body.toString('latin1');
    assert.ok(text.includes(`Content-Range: bytes 0-4/${object.length}`), text.slice(0, 300));
    assert.ok(text.includes(object.subarray(0, 5).toString('latin1')));
    assert.ok(text.includes(object.subarray(100, 110).toString('latin1')));
    assert.ok(text.trimEnd().endsWith(`--${boundary}--`));
  });

  test("the client's If-None-Match with the cached ETag gets a 304 without a body", async () => {
    const first = await get(`${f.url}/a.bin`);
    const etag = first.headers.get('etag')!;
    const got = await get(`${f.url}/a.bin`, { 'if-none-match': etag });
    assert.equal(got.status, 304);
    assert.equal(got.body.length, 0);
  });

  test('a changed object (new ETag) is fetched fresh and replaces the cached one', async () => {
    await get(`${f.url}/b.bin`);
    const changed = randomBytes(6000);
    putFile(f.origin.directory, 'b.bin', changed);
    const since = f.origin.log.length;
    const got = await get(`${f.url}/b.bin`);
    assert.deepEqual(got.body, changed);
    assert.deepEqual(
      f.origin.log.slice(since).map((e) => e.status),
      [200],
    );
    const again = await get(`${f.url}/b.bin`);
    assert.deepEqual(again.body, changed);
  });

  test('three concurrent misses of one object cost one origin GET with a body', async () => {
    const fresh = randomBytes(2_000_000);
    putFile(f.origin.directory, 'c.bin', fresh);
    const since = f.origin.log.length;
    const results = await Promise.all([1, 2, 3].map(() => get(`${f.url}/c.bin`)));
    for (const result of results) assert.deepEqual(result.body, fresh);
    const withBody = f.origin.log.slice(since).filter((e) => e.bodyBytes > 0);
    assert.equal(withBody.length, 1, JSON.stringify(f.origin.log.slice(since)));
  });

  test('a plain miss while a fill runs streams that fill: its head comes before the fill ends, and the origin sends the object once', async () => {
    const big = randomBytes(40 * 2 ** 20);
    putFile(f.origin.directory, 'fill.bin', big, 10); // fresh for a day (heuristic freshness)
    const since = f.origin.log.length;
    const first = await stalledGet(`${f.url}/fill.bin`);
    assert.equal(first.status, 200);
    // The first client reads nothing, so the fill is stalled: this head can only come from it.
    const second = await stalledGet(`${f.url}/fill.bin`);
    assert.equal(second.status, 200);
    const [a, b] = await Promise.all([first.rest(), second.rest()]);
    assert.ok(a.equals(big), 'the first client got the object');
    assert.ok(b.equals(big), 'the second client got the object');
    assert.deepEqual(
      f.origin.log.slice(since).map((e) => [e.status, e.bodyBytes]),
      [[200, big.length]],
    );
  });

  test('a fresh anonymous object (heuristic freshness) is served without asking the origin', async () => {
    const old = randomBytes(3000);
    putFile(f.origin.directory, 'old.bin', old, 10);
    await get(`${f.url}/old.bin`);
    const since = f.origin.log.length;
    const got = await get(`${f.url}/old.bin`);
    assert.deepEqual(got.body, old);
    assert.deepEqual(f.origin.log.slice(since), []);
    assert.ok(Number(got.headers.get('age')) >= 0);
  });

  test('one cached copy serves every client: asked without Accept-Encoding, so a client that takes no gzip never gets gzip', async () => {
    // As nginx does by default (gzip on, gzip_vary off): gzip when asked, and no Vary field.
    const text = Buffer.from('<html>' + 'peapod '.repeat(2000) + '</html>');
    const gzipping = createServer((req, res) => {
      const gzip = /gzip/.test(req.headers['accept-encoding'] ?? '');
      const body = gzip ? gzipSync(text) : text;
      res.writeHead(200, {
        'content-type': 'text/html',
        etag: '"v1"',
        'cache-control': 'max-age=600',
        'content-length': body.length,
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      });
      res.end(body);
    });
    gzipping.listen(0, '127.0.0.1');
    await once(gzipping, 'listening');
    const { port } = gzipping.address() as AddressInfo;
    const local = new Gateway({
      routes: new RouteTable([parseRoute(`/z=http://127.0.0.1:${port}`)]),
      cache: f.cachedGet,
    });
    const at = await local.listen(0, '127.0.0.1');
    try {
      const plain = (accept?: string) =>
        new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
          const req = httpRequest(
            {
              host: '127.0.0.1',
              port: at.port,
              path: '/z/page.html',
              headers: accept === undefined ? {} : { 'accept-encoding': accept },
            },
            (res) => {
              const parts: Buffer[] = [];
              res.on('data', (p: Buffer) => parts.push(p));
              res.on('end', () =>
                resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(parts) }),
              );
            },
          );
          req.on('error', reject);
          req.end();
        });
      const first = await plain('gzip, br');
      const second = await plain();
      for (const got of [first, second]) {
        assert.equal(got.encoding, undefined);
        assert.deepEqual(got.body, text);
      }
    } finally {
      await local.close();
      gzipping.close();
    }
  });

  test('an origin error (404) passes through and nothing is cached as data', async () => {
    const got = await get(`${f.url}/missing.bin`);
    assert.equal(got.status, 404);
    const since = f.origin.log.length;
    const again = await get(`${f.url}/missing.bin`);
    assert.equal(again.status, 404);
    assert.deepEqual(
      f.origin.log.slice(since).map((e) => e.status),
      [404],
    );
  });

  test('a client that leaves in the middle of a hit is logged at debug, not as a failure', async () => {
    const big = randomBytes(12 * 2 ** 20 + 1); // three chunks: the gateway waits for drains
    const g = await fixture({ 'big.bin': big });
    try {
      assert.deepEqual((await get(`${g.url}/big.bin`)).body, big); // the fill
      const logged = g.nextLog();
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${g.url}/big.bin`, (res) => {
          res.once('data', () => {
            res.destroy(); // leave after the first bytes of the hit
            resolve();
          });
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(await logged, {
        level: 'debug',
        message: 'the client left before the response ended',
      });
      assert.deepEqual(
        g.logged.filter((line) => line.level === 'warn'),
        [],
      );
    } finally {
      await g.close();
    }
  });

  test('HEAD from the cache: the same head as a GET, with no body', async () => {
    await get(`${f.url}/a.bin`);
    const head = await new Promise<{ status: number; length: string | undefined; body: number }>(
      (resolve, reject) => {
        const req = httpRequest(`${f.url}/a.bin`, { method: 'HEAD' }, (res) => {
          let body = 0;
          res.on('data', (piece: Buffer) => (body += piece.length));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], body }),
          );
        });
        req.on('error', reject);
        req.end();
      },
    );
    assert.deepEqual(head, { status: 200, length: String(object.length), body: 0 });
  });
});

describe(
  'gateway cache never widens access (HTTP route, origin checks Authorization)',
  { timeout: TIMEOUT_MS },
  () => {
    const secret = randomBytes(200_000);
    let f: Fixture;
    before(async () => {
      f = await fixture({ 'private.bin': secret }, { authorization: 'Bearer good' });
    });
    after(() => f?.close());

    test('a client with valid credentials gets the object; it is cached', async () => {
      const got = await get(`${f.url}/private.bin`, { authorization: 'Bearer good' });
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, secret);
      const since = f.origin.log.length;
      const again = await get(`${f.url}/private.bin`, { authorization: 'Bearer good' });
      assert.deepEqual(again.body, secret);
      assert.deepEqual(
        f.origin.log.slice(since).map((e) => [e.status, e.bodyBytes]),
        [[304, 0]],
      );
    });

    test('a client with wrong or no credentials never receives the cached private object', async () => {
      await get(`${f.url}/private.bin`, { authorization: 'Bearer good' });
      for (const headers of [{ authorization: 'Bearer bad' }, {} as Record<string, string>]) {
        const got = await get(`${f.url}/private.bin`, headers);
        assert.equal(got.status, 401, JSON.stringify(headers));
        assert.ok(!got.body.includes(secret.subarray(0, 64)), 'no cached byte');
      }
      // Even when the cached copy would be fresh for an anonymous request (heuristic freshness of
      // an object last modified 10 days ago): fetched with credentials, it is always revalidated.
      putFile(f.origin.directory, 'old-private.bin', secret, 10);
      assert.equal(
        (await get(`${f.url}/old-private.bin`, { authorization: 'Bearer good' })).status,
        200,
      );
      const anonymous = await get(`${f.url}/old-private.bin`);
      assert.equal(anonymous.status, 401);
      assert.ok(!anonymous.body.includes(secret.subarray(0, 64)), 'no cached byte');
      // And with a range, too: the precondition is the origin's, not the cache's.
      const ranged = await get(`${f.url}/private.bin`, { range: 'bytes=0-99' });
      assert.equal(ranged.status, 401);
    });

    test('while a credentialed fill runs, wrong or no credentials get the refusal at once; valid ones join the fill after a 304', async () => {
      const big = randomBytes(40 * 2 ** 20);
      putFile(f.origin.directory, 'big-private.bin', big, 10);
      const url = `${f.url}/big-private.bin`;
      const since = f.origin.log.length;
      const first = await stalledGet(url, { authorization: 'Bearer good' });
      assert.equal(first.status, 200);
      // The fill is stalled (its client reads nothing): these answers cannot wait for its end.
      for (const headers of [{ authorization: 'Bearer bad' }, {} as Record<string, string>]) {
        const got = await get(url, headers);
        assert.equal(got.status, 401, JSON.stringify(headers));
        assert.ok(!got.body.includes(big.subarray(0, 64)), 'no byte of the fill');
      }
      const joined = await stalledGet(url, { authorization: 'Bearer good' });
      assert.equal(joined.status, 200);
      const [a, b] = await Promise.all([first.rest(), joined.rest()]);
      assert.ok(a.equals(big) && b.equals(big), 'both valid clients got the object');
      const seen = f.origin.log
        .slice(since)
        .map((e) => [e.status, e.status === 401 ? 0 : e.bodyBytes]);
      assert.deepEqual(
        seen.sort((x, y) => x[0]! - y[0]!),
        [
          [200, big.length],
          [304, 0],
          [401, 0],
          [401, 0],
        ],
      );
    });
  },
);

const CURL = spawnSync('curl', ['--version']).status === 0;

/** `curl` through the forward proxy: status and body (bytes). */
function curlVia(
  proxy: string,
  url: string,
  headers: Record<string, string> = {},
  extra: readonly string[] = [],
): Promise<{ status: number; body: Buffer }> {
  const args = ['-s', '-x', proxy, '-o', '-', '-w', '\n%{http_code}', ...extra, url];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  return new Promise((resolve, reject) => {
    execFile('curl', args, { encoding: 'buffer', maxBuffer: 64 * 2 ** 20 }, (error, stdout) => {
      if (error) return reject(error);
      const cut = stdout.lastIndexOf(0x0a);
      resolve({
        status: Number(stdout.subarray(cut + 1).toString()),
        body: stdout.subarray(0, cut),
      });
    });
  });
}

describe(
  'gateway forward-proxy mode (curl -x), same cache, same access rule',
  { timeout: TIMEOUT_MS, skip: CURL ? false : 'curl is not installed' },
  () => {
    const object = randomBytes(400_000);
    const secret = randomBytes(100_000);
    let open: Fixture;
    let closed: Fixture;
    let signed: Fixture;
    before(async () => {
      open = await fixture({ 'o.bin': object });
      closed = await fixture({ 's.bin': secret }, { authorization: 'Bearer good' });
      signed = await fixture({ 'k.bin': secret }, { sigV4Secrets: { AKIDPEAPODTEST: 'right' } });
    });
    after(async () => {
      await open?.close();
      await closed?.close();
      await signed?.close();
    });

    test("endpoint mode, S3 route, the same SigV4-verifying origin: the gateway's own signature is accepted, and a gateway holding wrong credentials serves no cached byte", async () => {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(signed.dir, 'origin', 'bkt'));
      putFile(join(signed.dir, 'origin'), 'bkt/e.bin', secret);
      const route = parseRoute(`/b=s3://bkt@${signed.origin.url}`);
      const gatewayWith = async (secretAccessKey: string) => {
        const gateway = new Gateway({
          routes: new RouteTable([route]),
          cache: signed.cachedGet,
          credentials: { accessKeyId: 'AKIDPEAPODTEST', secretAccessKey },
        });
        return { gateway, port: (await gateway.listen(0, '127.0.0.1')).port };
      };
      const right = await gatewayWith('right');
      const wrong = await gatewayWith('wrong');
      try {
        const url = (port: number) => `http://127.0.0.1:${port}/b/e.bin`;
        const first = await get(url(right.port));
        assert.equal(first.status, 200);
        assert.deepEqual(first.body, secret);
        const since = signed.origin.log.length;
        const again = await get(url(right.port));
        assert.deepEqual(again.body, secret);
        assert.deepEqual(
          signed.origin.log.slice(since).map((e) => [e.path, e.status, e.bodyBytes]),
          [['/bkt/e.bin', 304, 0]],
        );
        const refused = await get(url(wrong.port));
        assert.equal(refused.status, 403, 'the origin refused the wrong signature');
        assert.ok(!refused.body.includes(secret.subarray(0, 64)));
      } finally {
        await right.gateway.close();
        await wrong.gateway.close();
      }
    });

    test("an origin that verifies SigV4 (AWS's signer, a known secret): curl --aws-sigv4 through the proxy; a wrong or missing signature never gets a cached byte", async () => {
      const sigv4 = (secretKey: string) => [
        ...['--aws-sigv4', 'aws:amz:us-east-1:s3'],
        ...['--user', `AKIDPEAPODTEST:${secretKey}`],
      ];
      const url = `${signed.origin.url}/k.bin`;
      const first = await curlVia(signed.proxyUrl, url, {}, sigv4('right'));
      assert.equal(first.status, 200);
      assert.deepEqual(first.body, secret);
      const since = signed.origin.log.length;
      const second = await curlVia(signed.proxyUrl, url, {}, sigv4('right'));
      assert.equal(second.status, 200);
      assert.deepEqual(second.body, secret);
      assert.deepEqual(
        signed.origin.log.slice(since).map((e) => [e.status, e.bodyBytes]),
        [[304, 0]],
        "the client's own signature revalidated the stored copy: a 304, no body",
      );
      for (const extra of [sigv4('wrong'), [] as string[]]) {
        const got = await curlVia(signed.proxyUrl, url, {}, extra);
        assert.equal(got.status, 403, extra.join(' ') || 'unsigned');
        assert.ok(!got.body.includes(secret.subarray(0, 64)));
      }
    });

    test('curl through http_proxy: the second GET is a bodyless 304 upstream, bytes from the cache', async () => {
      const first = await curlVia(open.proxyUrl, `${open.origin.url}/o.bin`);
      assert.equal(first.status, 200);
      assert.deepEqual(first.body, object);
      const since = open.origin.log.length;
      const second = await curlVia(open.proxyUrl, `${open.origin.url}/o.bin`);
      assert.deepEqual(second.body, object);
      assert.deepEqual(
        open.origin.log.slice(since).map((e) => [e.status, e.bodyBytes]),
        [[304, 0]],
      );
      const ranged = await curlVia(open.proxyUrl, `${open.origin.url}/o.bin`, {
        range: 'bytes=-10',
      });
      assert.equal(ranged.status, 206);
      assert.deepEqual(ranged.body, object.subarray(object.length - 10));
    });

    test("the client's own Authorization reaches the origin intact; without valid credentials no cached byte", async () => {
      const good = await curlVia(closed.proxyUrl, `${closed.origin.url}/s.bin`, {
        authorization: 'Bearer good',
      });
      assert.equal(good.status, 200);
      assert.deepEqual(good.body, secret);
      assert.equal(closed.origin.log.at(-1)?.authorization, 'Bearer good');
      for (const headers of [{ authorization: 'Bearer bad' }, {} as Record<string, string>]) {
        const got = await curlVia(closed.proxyUrl, `${closed.origin.url}/s.bin`, headers);
        assert.equal(got.status, 401, JSON.stringify(headers));
        assert.ok(!got.body.includes(secret.subarray(0, 64)));
      }
    });
  },
);

describe('the object index (a real SQLite file)', () => {
  const object = (key: string, contentByte: number, totalBytes: number) => ({
    key,
    contentId: new Uint8Array(32).fill(contentByte),
    totalBytes,
    headers: [['etag', '"v1"']] as [string, string][],
    etag: '"v1"',
    lastModified: undefined,
    storedAtMs: 1_000,
    responseDateMs: 1_000,
    ageAtStoreMs: 0,
    private: false,
  });

  test('reads from memory agree with the file after a reopen: rows, usage, bytes, shared contents', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peapod-gwi-'));
    try {
      const path = join(dir, 'gateway.db');
      const index = new ObjectIndex(path);
      index.put(object('https://a.test/x', 1, 10), 2_000);
      index.put(object('https://a.test/y', 1, 10), 2_000); // the same bytes under a second URL
      index.put(object('https://a.test/z', 2, 5), 2_000);
      for (let i = 0; i < 3; i++) index.used('https://a.test/x', 3_000 + i);
      index.refreshed('https://a.test/z', 4_000, 4_500);
      assert.equal(index.get('https://a.test/x')?.hits, 3, 'usage is exact in memory at once');
      assert.equal(index.totalBytes(), 25);
      index.remove('https://a.test/y');
      assert.equal(index.contentInUse(new Uint8Array(32).fill(1)), true, 'x still uses it');
      index.remove('https://a.test/x');
      assert.equal(index.contentInUse(new Uint8Array(32).fill(1)), false);
      index.used('https://a.test/z', 5_000);
      const inMemory = index.all();
      index.close(); // writes the unwritten usage
      const reopened = new ObjectIndex(path);
      assert.deepEqual(reopened.all(), inMemory);
      assert.equal(reopened.get('https://a.test/z')?.hits, 1);
      assert.equal(reopened.get('https://a.test/z')?.lastUsedMs, 5_000);
      assert.equal(reopened.get('https://a.test/z')?.storedAtMs, 4_500);
      assert.equal(reopened.totalBytes(), 5);
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('usage is written in batches: after 1024 uses or a second, without a close', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peapod-gwi-'));
    try {
      const path = join(dir, 'gateway.db');
      const index = new ObjectIndex(path);
      index.put(object('https://a.test/x', 1, 10), 0);
      const onDisk = () => {
        const reader = new ObjectIndex(path); // a second connection reads what was committed
        const hits = reader.get('https://a.test/x')?.hits;
        reader.close();
        return hits;
      };
      index.used('https://a.test/x', 10);
      assert.equal(onDisk(), 0, 'one use is not written yet');
      index.used('https://a.test/x', 1_010);
      assert.equal(onDisk(), 2, 'a use a second after the oldest unwritten one writes both');
      for (let i = 0; i < 1024; i++) index.used('https://a.test/x', 1_020);
      assert.equal(onDisk(), 2 + 1024);
      index.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
