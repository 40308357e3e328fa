/**
 * The gateway's client keys (`--gateway-keys`, client-auth.ts), against clients nobody on the
 * team wrote: AWS's own SDK (`@aws-sdk/client-s3`, header-signed), its presigner
 * (`@aws-sdk/s3-request-presigner`), `curl --aws-sigv4`, and `@smithy/signature-v4` signing
 * generated requests; s3rver 3.7.1 is the S3 origin behind the gateway. Each test names what it
 * asserts: a valid signature by an issued key is served; no, a wrong or an unknown signature,
 * an expired presigned URL and a tampered request are refused with S3's error code, and the
 * origin never sees a refused request.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import {
  CopyObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import fc from 'fast-check';
import type S3rver from 's3rver';
import {
  ClientAuthenticator,
  loadGatewayKeys,
  parseGatewayKeys,
  type AuthVerdict,
} from '../src/gateway/client-auth.js';
import { Gateway } from '../src/gateway/gateway-server.js';
import { parseRoute, RouteTable } from '../src/gateway/routes.js';
import { freeTcpPort, waitFor } from '../src/local-pod.js';
import { PodFixture } from './support/pod-fixture.js';
import { S3RVER_CREDENTIALS, s3Client, startS3rver } from './support/s3.js';

const run = promisify(execFile);
const KEY = { accessKeyId: 'team-ml', secretAccessKey: 'b3kT9xq2-secret-for-tests' };
const KEYS = new Map([[KEY.accessKeyId, KEY.secretAccessKey]]);

function sdk(endpoint: string, credentials: { accessKeyId: string; secretAccessKey: string }) {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

describe('gateway client keys: SigV4 from real clients, s3rver behind', { timeout: 60_000 }, () => {
  let dir: string;
  let s3: InstanceType<typeof S3rver>;
  let gateway: Gateway;
  let gatewayUrl: string;
  const object = randomBytes(200_003);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'peapod-gw-auth-'));
    const started = await startS3rver(dir);
    s3 = started.s3;
    const s3Url = started.url;
    await s3Client(s3Url).send(
      new PutObjectCommand({ Bucket: 'models', Key: 'w.bin', Body: object }),
    );
    gateway = new Gateway({
      routes: new RouteTable([parseRoute(`/m=s3://models@${s3Url}`)]),
      credentials: S3RVER_CREDENTIALS,
      authenticator: new ClientAuthenticator(KEYS),
    });
    gatewayUrl = `http://127.0.0.1:${(await gateway.listen(0, '127.0.0.1')).port}`;
  });

  after(async () => {
    await gateway?.close();
    await s3?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the AWS SDK signing with an issued key gets, heads and puts through the gateway', async () => {
    const client = sdk(gatewayUrl, KEY);
    const got = await client.send(new GetObjectCommand({ Bucket: 'm', Key: 'w.bin' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(object));
    const head = await client.send(new HeadObjectCommand({ Bucket: 'm', Key: 'w.bin' }));
    assert.equal(head.ContentLength, object.length);
    await client.send(new PutObjectCommand({ Bucket: 'm', Key: 'up.txt', Body: 'hello' }));
    const back = await client.send(new GetObjectCommand({ Bucket: 'm', Key: 'up.txt' }));
    assert.equal(await back.Body!.transformToString(), 'hello');
  });

  test('a wrong secret is SignatureDoesNotMatch, an unknown key InvalidAccessKeyId, both 403', async () => {
    for (const [credentials, code] of [
      [{ ...KEY, secretAccessKey: 'not-the-secret-at-all' }, 'SignatureDoesNotMatch'],
      [{ accessKeyId: 'someone-else', secretAccessKey: KEY.secretAccessKey }, 'InvalidAccessKeyId'],
    ] as const) {
      await assert.rejects(
        sdk(gatewayUrl, credentials).send(new GetObjectCommand({ Bucket: 'm', Key: 'w.bin' })),
        (error: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
          assert.equal(error.name, code);
          assert.equal(error.$metadata?.httpStatusCode, 403);
          return true;
        },
      );
    }
  });

  test('an unsigned request is 403 AccessDenied, as XML, and no cached byte leaks', async () => {
    const response = await fetch(`${gatewayUrl}/m/w.bin`);
    assert.equal(response.status, 403);
    const body = await response.text();
    assert.match(body, /<Code>AccessDenied<\/Code>/);
    assert.ok(!body.includes(object.subarray(0, 16).toString('latin1')));
  });

  test('a presigned GET by the SDK presigner works; tampered or expired it is refused', async () => {
    const url = await getSignedUrl(
      sdk(gatewayUrl, KEY),
      new GetObjectCommand({ Bucket: 'm', Key: 'w.bin' }),
      { expiresIn: 60 },
    );
    const ok = await fetch(url);
    assert.equal(ok.status, 200);
    assert.ok(Buffer.from(await ok.arrayBuffer()).equals(object));
    const tampered = await fetch(url.replace('/w.bin', '/up.txt'));
    assert.equal(tampered.status, 403);
    assert.match(await tampered.text(), /SignatureDoesNotMatch/);
    // The same URL checked by a clock 61 s later.
    const later = new ClientAuthenticator(KEYS, () => Date.now() + 61_000);
    const verdict = await verdictOf(later, { url: new URL(url).pathname + new URL(url).search });
    assert.deepEqual(verdict, { ok: false, code: 'AccessDenied', message: 'Request has expired' });
  });

  test('curl --aws-sigv4 with an issued key gets the exact bytes; with another secret 403', async () => {
    const ok = await curlSigned(KEY.secretAccessKey, `${gatewayUrl}/m/w.bin`);
    assert.ok(Buffer.from(ok.stdout).equals(object), 'curl got the object');
    const refused = await curlSigned('wrong-secret-here', `${gatewayUrl}/m/w.bin`, [
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
    ]);
    assert.equal(refused.stdout.toString(), '403');
  });
});

test('an HTTP route: refused requests never reach the origin; a signed one arrives without the signature', async () => {
  const seen: Array<{ url: string; authorization: string | undefined }> = [];
  const origin = createServer((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end('origin bytes');
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  const gateway = new Gateway({
    routes: new RouteTable([parseRoute(`/files=${originUrl}/base`)]),
    authenticator: new ClientAuthenticator(KEYS),
  });
  const gatewayUrl = `http://127.0.0.1:${(await gateway.listen(0, '127.0.0.1')).port}`;
  try {
    assert.equal((await fetch(`${gatewayUrl}/files/a.txt`)).status, 403);
    const wrong = await presignedFor(gatewayUrl, '/files/a.txt', 'not-the-right-secret');
    assert.equal((await fetch(wrong)).status, 403);
    assert.deepEqual(seen, [], 'the origin saw no refused request');
    const url = await presignedFor(gatewayUrl, '/files/a.txt', KEY.secretAccessKey);
    const ok = await fetch(url);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'origin bytes');
    assert.deepEqual(seen, [{ url: '/base/a.txt', authorization: undefined }]);
  } finally {
    await gateway.close();
    origin.close();
  }
});

test(
  'peapod daemon --gateway-keys: an unsigned GET is 403; curl signing with a key of the file gets the bytes',
  { timeout: 60_000 },
  async () => {
    const origin = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      res.end('daemon origin bytes');
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const dir = mkdtempSync(join(tmpdir(), 'peapod-keys-daemon-'));
    const keys = join(dir, 'keys');
    writeFileSync(keys, `${KEY.accessKeyId} ${KEY.secretAccessKey}\n`, { mode: 0o600 });
    const port = await freeTcpPort();
    const pod = await PodFixture.start({
      daemons: 1,
      flags: {
        0: ['--gateway', `127.0.0.1:${port}`, '--gateway-keys', keys, '--route', `/f=${originUrl}`],
      },
    });
    try {
      await waitFor(
        () =>
          fetch(`http://127.0.0.1:${port}/metrics`).then(
            () => true,
            () => false,
          ),
        20_000,
        'the gateway to listen',
      );
      const unsigned = await fetch(`http://127.0.0.1:${port}/f/x.txt`);
      assert.equal(unsigned.status, 403);
      assert.match(await unsigned.text(), /<Code>AccessDenied<\/Code>/);
      const signed = await curlSigned(KEY.secretAccessKey, `http://127.0.0.1:${port}/f/x.txt`, [
        '--fail-with-body',
      ]);
      assert.equal(signed.stdout.toString(), 'daemon origin bytes');
      assert.match(pod.daemons[0]!.log(), /signed with one of 1 gateway keys/);
    } finally {
      await pod.stop();
      origin.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('what is sent on is what was signed: unsigned x-amz-* fields, signed fields a Connection token would drop, copies and the body digest', async () => {
  // A recording S3 endpoint behind an S3 route: it sees what the gateway signs and sends.
  const seen: Array<{ method: string; url: string; headers: Record<string, unknown> }> = [];
  const endpoint = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { etag: '"e"', 'content-length': 0 });
      res.end();
    });
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  const endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  const gateway = new Gateway({
    routes: new RouteTable([parseRoute(`/b=s3://bucket@${endpointUrl}`)]),
    credentials: { accessKeyId: 'GATEWAY', secretAccessKey: 'gateway-own-secret' },
    authenticator: new ClientAuthenticator(KEYS),
  });
  const gatewayUrl = `http://127.0.0.1:${(await gateway.listen(0, '127.0.0.1')).port}`;
  try {
    const client = sdk(gatewayUrl, KEY);
    const put = await getSignedUrl(client, new PutObjectCommand({ Bucket: 'b', Key: 'up.bin' }), {
      expiresIn: 60,
    });
    // An x-amz-* field added to a presigned PUT would be signed upstream by the gateway.
    const acl = await rawRequest(
      gatewayUrl,
      'PUT',
      pathOf(put),
      {
        'x-amz-acl': 'public-read',
        'content-length': '1',
      },
      'x',
    );
    assert.equal(acl.status, 403);
    assert.match(acl.body, /not signed: x-amz-acl/);
    // A signed field named in Connection would be stripped on the way: refused.
    const signedPut = await getSignedUrl(
      client,
      new PutObjectCommand({ Bucket: 'b', Key: 'once.bin', IfNoneMatch: '*' }),
      { expiresIn: 60, signableHeaders: new Set(['if-none-match']) },
    );
    assert.match(signedPut, /if-none-match/, 'the presigned PUT signs If-None-Match');
    const stripped = await rawRequest(
      gatewayUrl,
      'PUT',
      pathOf(signedPut),
      {
        'if-none-match': '*',
        connection: 'if-none-match',
        'content-length': '4',
      },
      'EVIL',
    );
    assert.equal(stripped.status, 403);
    assert.match(stripped.body, /hop-by-hop or named in Connection/);
    // A server-side copy names its own source bucket: refused, even signed.
    await assert.rejects(
      client.send(
        new CopyObjectCommand({ Bucket: 'b', Key: 'c.bin', CopySource: 'private/secret.bin' }),
      ),
      (error: { name?: string }) => error.name === 'AccessDenied',
    );
    assert.equal(seen.length, 0, 'no refused request reached the endpoint');
    // A signed body digest goes on in the gateway's own signature, so S3 would check the body.
    const body = Buffer.from('the exact body');
    await client.send(new PutObjectCommand({ Bucket: 'b', Key: 'ok.bin', Body: body }));
    assert.equal(seen.length, 1);
    assert.equal(
      seen[0]!.headers['x-amz-content-sha256'],
      createHash('sha256').update(body).digest('hex'),
    );
    assert.match(String(seen[0]!.headers.authorization), /Credential=GATEWAY\//);
  } finally {
    await gateway.close();
    endpoint.close();
  }
});

test('a refused request with a body is answered and its connection closed, its body unread', async () => {
  const gateway = new Gateway({
    routes: new RouteTable([parseRoute('/f=http://127.0.0.1:9')]),
    authenticator: new ClientAuthenticator(KEYS),
  });
  const { port } = await gateway.listen(0, '127.0.0.1');
  try {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (part: string) => (answer += part));
    socket.write('PUT /f/x HTTP/1.1\r\nHost: g\r\nContent-Length: 1000000000000\r\n\r\nabc');
    await once(socket, 'close');
    assert.match(answer, /^HTTP\/1\.1 403 /);
    assert.match(answer, /connection: close/i);
  } finally {
    await gateway.close();
  }
});

test('a presigned query value means the same to the check and to the origin: + is a space', async () => {
  const authenticator = new ClientAuthenticator(KEYS);
  const signer = new SignatureV4({
    service: 's3',
    region: 'us-east-1',
    credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey },
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });
  const presigned = await signer.presign(
    {
      method: 'GET',
      protocol: 'http:',
      hostname: 'h',
      path: '/b',
      query: { prefix: 'a+b' },
      headers: { host: 'h' },
    },
    { expiresIn: 60 },
  );
  const query = Object.entries(presigned.query as Record<string, string>)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  assert.match(query, /prefix=a%2Bb/);
  const asSigned = await verdictOf(authenticator, { url: `/b?${query}`, headers: { host: 'h' } });
  assert.equal(asSigned.ok, true);
  const plus = await verdictOf(authenticator, {
    url: `/b?${query.replace('a%2Bb', 'a+b')}`,
    headers: { host: 'h' },
  });
  assert.equal(plus.ok, false, '"a+b" is "a b", not what was signed');
});

/** `curl --aws-sigv4` GET of `url`, signed as the issued key ID with `secret`. */
function curlSigned(
  secret: string,
  url: string,
  extra: readonly string[] = ['--fail-with-body'],
): Promise<{ stdout: Buffer }> {
  return run(
    'curl',
    [
      '-sS',
      ...extra,
      '--aws-sigv4',
      'aws:amz:us-east-1:s3',
      '--user',
      `${KEY.accessKeyId}:${secret}`,
      url,
    ],
    { encoding: 'buffer', maxBuffer: 1 << 24 },
  );
}

/** One raw HTTP/1.1 request; the status and body of its answer. */
async function rawRequest(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: { host: url.host, ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (part: string) => (text += part));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function pathOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}

/** A presigned GET URL for `path` on `base`, by @smithy/signature-v4 with the issued key ID. */
async function presignedFor(base: string, path: string, secret: string): Promise<string> {
  const url = new URL(path, base);
  const signer = new SignatureV4({
    service: 's3',
    region: 'us-east-1',
    credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: secret },
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });
  const presigned = await signer.presign(
    {
      method: 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: {},
      headers: { host: url.host },
    },
    { expiresIn: 300 },
  );
  const query = new URLSearchParams(presigned.query as Record<string, string>).toString();
  return `${base}${url.pathname}?${query}`;
}

/**
 * Runs `authenticator` on a real request to a loopback server: the request-target, method and
 * header fields exactly as given (node:http, so nothing is normalized; `host` as signed).
 */
async function verdictOf(
  authenticator: ClientAuthenticator,
  request: { url: string; method?: string; headers?: Record<string, string> },
): Promise<AuthVerdict> {
  const server: Server = createServer((req, res) => {
    req.resume();
    // In a header: a HEAD response has no body.
    res.setHeader(
      'x-verdict',
      Buffer.from(JSON.stringify(authenticator.verify(req))).toString('base64'),
    );
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: request.method ?? 'GET',
          path: request.url,
          headers: { host: `127.0.0.1:${port}`, ...request.headers },
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            resolve(Buffer.from(String(res.headers['x-verdict']), 'base64').toString('utf8')),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    return JSON.parse(text) as AuthVerdict;
  } finally {
    server.close();
  }
}

describe('gateway client keys: generated requests signed by @smithy/signature-v4', () => {
  const segment = fc.stringMatching(/^[A-Za-z0-9._~!$'()*+,;=@ %-]{1,12}$/);
  const request = fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE'),
    segments: fc.array(segment, { minLength: 1, maxLength: 4 }),
    query: fc.array(
      fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), fc.string({ maxLength: 10 })),
      { maxLength: 3 },
    ),
    meta: fc.stringMatching(/^[ -~]{0,20}$/),
  });

  async function signed(
    input: { method: string; segments: string[]; query: [string, string][]; meta: string },
    secret: string,
  ): Promise<{ url: string; method: string; headers: Record<string, string> }> {
    const signer = new SignatureV4({
      service: 's3',
      region: 'eu-west-1',
      credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: secret },
      sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: false,
      applyChecksum: false,
    });
    const path = `/${input.segments.map((s: string) => encodeURIComponent(s)).join('/')}`;
    const query: Record<string, string> = {};
    for (const [name, value] of input.query) query[name] = value;
    const result = await signer.sign({
      method: input.method,
      protocol: 'http:',
      hostname: 'gateway.test',
      path,
      query,
      headers: {
        host: 'gateway.test',
        'x-amz-meta-note': input.meta,
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      },
    });
    const search = new URLSearchParams(query).toString().replace(/\+/g, '%20');
    return {
      url: `${path}${search === '' ? '' : `?${search}`}`,
      method: input.method,
      headers: Object.fromEntries(
        Object.entries(result.headers).map(([name, value]) => [name, String(value)]),
      ),
    };
  }

  test('every request signed with the issued key verifies; with another secret none does', async () => {
    const authenticator = new ClientAuthenticator(KEYS);
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
        const good = await signed(input, KEY.secretAccessKey);
        assert.deepEqual(await verdictOf(authenticator, withHost(good)), {
          ok: true,
          accessKeyId: KEY.accessKeyId,
        });
        const bad = await signed(input, 'another-secret-entirely');
        const verdict = await verdictOf(authenticator, withHost(bad));
        assert.equal(verdict.ok, false);
        assert.equal(!verdict.ok && verdict.code, 'SignatureDoesNotMatch');
      }),
      { numRuns: 40 },
    );
  });

  test('changing the method, the path or a signed field after signing is refused', async () => {
    const authenticator = new ClientAuthenticator(KEYS);
    await fc.assert(
      fc.asyncProperty(request, fc.constantFrom('method', 'path', 'field'), async (input, what) => {
        const good = withHost(await signed(input, KEY.secretAccessKey));
        const changed =
          what === 'method'
            ? { ...good, method: good.method === 'PUT' ? 'DELETE' : 'PUT' }
            : what === 'path'
              ? { ...good, url: `/x${good.url}` }
              : { ...good, headers: { ...good.headers, 'x-amz-meta-note': `${input.meta}!` } };
        const verdict = await verdictOf(authenticator, changed);
        assert.equal(verdict.ok, false, `changed ${what}`);
      }),
      { numRuns: 30 },
    );
  });

  test('hostile Authorization headers and presign queries get a verdict, never a throw', async () => {
    const authenticator = new ClientAuthenticator(KEYS);
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[ -~]{0,200}$/),
        fc.stringMatching(/^[A-Za-z0-9%&=_.~-]{0,120}$/),
        async (authorization, query) => {
          const verdict = await verdictOf(authenticator, {
            url: `/m/w.bin?X-Amz-Signature=${'0'.repeat(64)}&${query}`,
            headers: authorization === '' ? {} : { authorization },
          });
          assert.equal(verdict.ok, false);
        },
      ),
      { numRuns: 60 },
    );
  });
});

/** The request as sent: smithy's `host` field is the one it signed ('gateway.test'). */
function withHost(request: { url: string; method: string; headers: Record<string, string> }) {
  assert.equal(request.headers.host, 'gateway.test');
  return request;
}

describe('gateway key files', () => {
  test('lines of "ID SECRET" parse; comments and blank lines are skipped', () => {
    const keys = parseGatewayKeys(
      '# team keys\n\nteam-ml  s3cr3t-value-1\nci.bot s3cr3t-value-2\n',
    );
    assert.deepEqual(
      [...keys],
      [
        ['team-ml', 's3cr3t-value-1'],
        ['ci.bot', 's3cr3t-value-2'],
      ],
    );
  });

  test('a bad line, a repeated ID or no key at all is an error naming the line', () => {
    assert.throws(() => parseGatewayKeys('ok-key secret-long\nonly-one-field\n'), /line 2/);
    assert.throws(
      () => parseGatewayKeys('key1 secret-long\nkey1 secret-long-2\n'),
      /line 2: .*twice/,
    );
    assert.throws(() => parseGatewayKeys('a short\n'), /line 1/);
    assert.throws(() => parseGatewayKeys('# nothing\n'), /no keys/);
  });

  test('a key file readable by group or others is refused with the chmod to run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peapod-keys-'));
    try {
      const path = join(dir, 'keys');
      writeFileSync(path, 'team-ml secret-long-enough\n');
      chmodSync(path, 0o644);
      assert.throws(() => loadGatewayKeys(path), /readable by others.*chmod 600/);
      chmodSync(path, 0o600);
      assert.equal(loadGatewayKeys(path).get('team-ml'), 'secret-long-enough');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a key file that is no regular file, or (as root) another user's, is refused", () => {
    const dir = mkdtempSync(join(tmpdir(), 'peapod-keys-'));
    try {
      assert.throws(() => loadGatewayKeys(dir), /not a regular file/);
      if (process.getuid?.() === 0) {
        const path = join(dir, 'keys');
        writeFileSync(path, 'team-ml secret-long-enough\n', { mode: 0o600 });
        chownSync(path, 12345, 12345);
        assert.throws(() => loadGatewayKeys(path), /belongs to user 12345/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('peapod daemon: --gateway-keys is checked before start (exit 1 with the fix to make)', async () => {
    const home = mkdtempSync(join(tmpdir(), 'peapod-keys-home-'));
    try {
      const path = join(home, 'keys');
      writeFileSync(path, 'team-ml secret-long-enough\n');
      chmodSync(path, 0o644);
      const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
      const daemon = (args: string[]) =>
        run(process.execPath, [cli, 'daemon', ...args], {
          env: { ...process.env, PEAPOD_HOME: home },
        }).then(
          () => assert.fail('the daemon started'),
          (error: { code?: number; stderr?: string }) => error,
        );
      await run(process.execPath, [cli, 'init'], { env: { ...process.env, PEAPOD_HOME: home } });
      const open = await daemon(['--gateway', '127.0.0.1:18081', '--gateway-keys', path]);
      assert.equal(open.code, 1);
      assert.match(String(open.stderr), /--gateway-keys: .*readable by others.*chmod 600/);
      const alone = await daemon(['--gateway-keys', path]);
      assert.equal(alone.code, 1);
      assert.match(String(alone.stderr), /--gateway-keys need --gateway HOST:PORT/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
