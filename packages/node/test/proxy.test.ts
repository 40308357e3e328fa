/**
 * ForwardProxy with real clients and real servers on 127.0.0.1 (DESIGN.md, "Real parts in
 * tests"): `curl` and `wget` through `http_proxy`/`https_proxy` against a local origin, `curl -k`
 * through a CONNECT tunnel to a local TLS server (certificate made with `openssl` here), `npm
 * view` against a tiny local registry, Node's own client where a case needs a parsed 1xx or
 * trailer, and raw sockets for bytes no well-behaved client sends. Bodies are compared by
 * SHA-256. Every wait is for an event, bounded by the test timeout; nothing is timed.
 *
 * Cases whose tool is missing (curl, wget, openssl, npm) skip and say which tool.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import {
  ForwardProxy,
  isLoopbackAddress,
  parseAuthority,
  parseRequestTarget,
  stripHopByHop,
  type ProxiedGet,
} from '../src/proxy.js';
import { selfSignedCertificate } from './support/tls.js';

const TIMEOUT_MS = 60_000;
const PROPERTY_RUNS = 10_000;

/** Why a tool-dependent case skips, or `false` to run it. */
function missing(tool: string, args: string[]): string | false {
  const result = spawnSync(tool, args, { stdio: 'ignore' });
  return result.error === undefined && result.status === 0 ? false : `${tool} is not installed`;
}
const noCurl = missing('curl', ['--version']);
const noWget = missing('wget', ['--version']);
const noOpenssl = noCurl || missing('openssl', ['version']);
const noNpm = missing('npm', ['--version']);

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

interface RunResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs a tool asynchronously (the servers live in this process) with only the given env. */
function run(tool: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      tool,
      args,
      {
        encoding: 'buffer',
        maxBuffer: 64 << 20,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: workDir, ...env },
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

/** Writes `text` on a fresh socket to the proxy and returns everything it answers. */
async function rawExchange(port: number, text: string | Buffer): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(text);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

interface NodeResult {
  readonly status: number;
  readonly body: Buffer;
  readonly trailers: NodeJS.Dict<string>;
  readonly informational: { status: number; headers: NodeJS.Dict<string | string[]> }[];
}

/** Node's client sending an absolute-form request to the proxy (what a proxy-aware agent does). */
async function viaNode(
  proxyPort: number,
  url: string,
  headers: Record<string, string> = {},
): Promise<NodeResult> {
  const req = httpRequest({ host: '127.0.0.1', port: proxyPort, path: url, headers, agent: false });
  const informational: NodeResult['informational'] = [];
  req.on('information', (info) =>
    informational.push({ status: info.statusCode, headers: info.headers }),
  );
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return {
    status: res.statusCode ?? 0,
    body: Buffer.concat(chunks),
    trailers: res.trailers,
    informational,
  };
}

/** Header lines of a `curl -D` dump, last response only, as [name, value] in order. */
function headerLines(dump: string): [string, string][] {
  const blocks = dump.trimEnd().split(/\r\n\r\n/);
  const last = blocks[blocks.length - 1] ?? '';
  return last
    .split('\r\n')
    .slice(1)
    .map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon), line.slice(colon + 1).trim()];
    });
}

async function listenOn(server: Server | ReturnType<typeof createNetServer>, host = '127.0.0.1') {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

let workDir = '';
const blob = randomBytes(4 * 1024 * 1024 + 123);
const upload = randomBytes(3 * 1024 * 1024 + 7);
const packument = JSON.stringify({
  name: 'tiny-pkg',
  'dist-tags': { latest: '1.2.3' },
  versions: {
    '1.2.3': { name: 'tiny-pkg', version: '1.2.3', dist: { tarball: 'http://x/t.tgz' } },
  },
});
let continueRequests = 0;
/** Resolves with each request the origin's `/sink` route receives (the abort case). */
let sinkArrived: (req: IncomingMessage) => void = () => undefined;

/** The origin: every behaviour a case checks, selected by path. */
function serveOrigin(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '';
  if (path === '/blob') {
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': blob.length,
      ETag: '"blob-v1"',
      'Accept-Ranges': 'bytes',
    });
    res.end(req.method === 'HEAD' ? undefined : blob);
  } else if (path === '/headers') {
    const body = JSON.stringify(req.rawHeaders);
    res.sendDate = false;
    res.writeHead(200, 'Fine Thanks', [
      'Set-Cookie',
      'a=1; Path=/',
      'X-Mixed-Case',
      'Value',
      'Set-Cookie',
      'b=2',
      'x-dup',
      '1',
      'X-Dup',
      '2',
      'Connection',
      'X-Hop',
      'X-Hop',
      'must not pass',
      'Keep-Alive',
      'timeout=99',
      'Content-Type',
      'application/json',
      'Content-Length',
      String(Buffer.byteLength(body)),
    ]);
    res.end(body);
  } else if (path === '/status/404') {
    res.writeHead(404, 'Not Here', { 'Content-Type': 'text/plain' });
    res.end('nothing\n');
  } else if (path === '/status/500') {
    res.writeHead(500, 'Kaputt', { 'Content-Type': 'text/plain' });
    res.end('boom\n');
  } else if (path === '/echo') {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    req.on('end', () => {
      const framing = req.headers['transfer-encoding'] ?? `length ${req.headers['content-length']}`;
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, bytes, sha256: hash.digest('hex'), framing }));
    });
  } else if (path === '/trailers') {
    res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Checksum' });
    res.write('abc');
    res.addTrailers({ 'X-Checksum': 'xyz' });
    res.end();
  } else if (path === '/processing') {
    res.writeProcessing();
    res.end('processed');
  } else if (path === '/early-hints') {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.end('hinted');
  } else if (path === '/sink') {
    req.on('error', () => undefined); // the client's abort reaches here as 'aborted'
    sinkArrived(req);
    req.resume();
  } else if (path === '/tiny-pkg') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(packument);
  } else {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('from the origin');
  }
}

describe('ForwardProxy', { timeout: TIMEOUT_MS }, () => {
  let origin: Server;
  let originPort = 0;
  let originUrl = '';
  let proxy: ForwardProxy;
  let proxyPort = 0;
  let proxyUrl = '';
  /** A port nothing listens on (listened on once, then closed). */
  let downPort = 0;
  const poolCalls: ProxiedGet[] = [];
  const logLines: Record<string, unknown>[] = [];
  const logWaiters: { check: (line: Record<string, unknown>) => boolean; resolve: () => void }[] =
    [];

  /** Resolves once a log line matching `check` was written (at once if one already was). */
  function logged(check: (line: Record<string, unknown>) => boolean): Promise<void> {
    if (logLines.some(check)) return Promise.resolve();
    return new Promise((resolve) => logWaiters.push({ check, resolve }));
  }

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'peapod-proxy-'));
    writeFileSync(join(workDir, 'upload.bin'), upload);
    origin = createServer(serveOrigin);
    origin.on('checkContinue', (req, res) => {
      continueRequests += 1;
      res.writeContinue();
      serveOrigin(req, res);
    });
    originPort = await listenOn(origin);
    originUrl = `http://127.0.0.1:${originPort}`;
    const down = createNetServer();
    downPort = await listenOn(down);
    down.close();
    const logger = pino(
      { level: 'debug' },
      {
        write(text: string) {
          const line = JSON.parse(text) as Record<string, unknown>;
          logLines.push(line);
          for (const waiter of logWaiters) if (waiter.check(line)) waiter.resolve();
        },
      },
    );
    proxy = new ForwardProxy({
      logger,
      localHandler: (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`local ${req.method} ${req.url}`);
      },
      poolable: (request) => {
        poolCalls.push(request);
        const path = new URL(request.url).pathname;
        if (path === '/pooled') {
          return {
            async respond(res) {
              res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Pooled': 'yes' });
              res.end('from the pool');
            },
          };
        }
        if (path === '/pool-fails-early') {
          return { respond: () => Promise.reject(new Error('no peers')) };
        }
        if (path === '/pool-fails-late') {
          return {
            async respond(res) {
              res.writeHead(200, { 'Content-Length': '1000' });
              res.write('only ten b');
              throw new Error('a peer vanished');
            },
          };
        }
        if (path === '/hook-throws') throw new Error('hook bug');
        return undefined;
      },
    });
    proxyPort = (await proxy.listen(0)).port;
    proxyUrl = `http://127.0.0.1:${proxyPort}`;
  });

  after(async () => {
    await proxy.close();
    origin.closeAllConnections();
    origin.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  const curl = (args: string[], env: Record<string, string> = {}) =>
    run('curl', ['-q', '-sS', ...args], { http_proxy: proxyUrl, ...env });

  test('curl: a multi-MiB binary body arrives byte-identical', { skip: noCurl }, async () => {
    const result = await curl([`${originUrl}/blob`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.length, blob.length);
    assert.equal(sha256(result.stdout), sha256(blob));
    await logged(
      (line) =>
        line['msg'] === 'proxy request done' &&
        line['mode'] === 'pass-through' &&
        line['target'] === `${originUrl}/blob` &&
        line['status'] === 200 &&
        line['complete'] === true,
    );
  });

  test('wget: a multi-MiB binary body arrives byte-identical', { skip: noWget }, async () => {
    const file = join(workDir, 'wget.bin');
    const result = await run('wget', ['--no-config', '-q', '-O', file, `${originUrl}/blob`], {
      http_proxy: proxyUrl,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(sha256(readFileSync(file)), sha256(blob));
  });

  test('wget: a 404 from the origin stays a 404', { skip: noWget }, async () => {
    const result = await run(
      'wget',
      ['--no-config', '-S', '-O', '/dev/null', `${originUrl}/status/404`],
      { http_proxy: proxyUrl },
    );
    assert.equal(result.code, 8, 'wget exits 8 on an error status');
    assert.match(result.stderr, /HTTP\/1\.1 404 Not Here/);
  });

  test(
    'curl: response and request headers are preserved, hop-by-hop ones dropped',
    { skip: noCurl },
    async () => {
      const dump = join(workDir, 'headers.txt');
      const result = await curl([
        '-D',
        dump,
        '-H',
        'Connection: X-Secret',
        '-H',
        'X-Secret: for the proxy only',
        '-H',
        'Proxy-Authorization: Basic cGVhOnBvZA==',
        '-H',
        'TE: trailers',
        '-H',
        'X-Multi: 1',
        '-H',
        'x-multi: 2',
        '-H',
        'X-Custom-Case: kept',
        `${originUrl}/headers`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const text = readFileSync(dump, 'latin1');
      assert.match(text, /^HTTP\/1\.1 200 Fine Thanks\r\n/);
      const lines = headerLines(text);
      const values = (name: string) =>
        lines.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
      assert.deepEqual(values('set-cookie'), ['a=1; Path=/', 'b=2']);
      assert.deepEqual(values('x-dup'), ['1', '2']);
      assert.ok(lines.some(([name, value]) => name === 'X-Mixed-Case' && value === 'Value'));
      assert.deepEqual(values('x-hop'), []);
      assert.ok(!values('keep-alive').includes('timeout=99'));
      assert.deepEqual(values('date'), [], 'the proxy adds no Date the origin did not send');

      const seen = JSON.parse(result.stdout.toString('utf8')) as string[];
      const sent: [string, string][] = [];
      for (let i = 0; i + 1 < seen.length; i += 2) sent.push([seen[i]!, seen[i + 1]!]);
      const sentValues = (name: string) =>
        sent.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
      assert.deepEqual(sentValues('x-multi'), ['1', '2']);
      assert.ok(sent.some(([name, value]) => name === 'X-Custom-Case' && value === 'kept'));
      assert.deepEqual(sentValues('host'), [`127.0.0.1:${originPort}`]);
      for (const dropped of ['x-secret', 'proxy-authorization', 'proxy-connection', 'te']) {
        assert.deepEqual(sentValues(dropped), [], `${dropped} must not reach the origin`);
      }
    },
  );

  test('Host is replaced by the target authority', async () => {
    const result = await viaNode(proxyPort, `${originUrl}/headers`, { host: 'elsewhere.example' });
    const seen = JSON.parse(result.body.toString('utf8')) as string[];
    assert.equal(
      seen[seen.findIndex((n) => n.toLowerCase() === 'host') + 1],
      `127.0.0.1:${originPort}`,
    );
  });

  test(
    'curl: 404 and 500 pass through with status, reason phrase and body',
    { skip: noCurl },
    async () => {
      for (const [path, line, body] of [
        ['/status/404', 'HTTP/1.1 404 Not Here', 'nothing\n'],
        ['/status/500', 'HTTP/1.1 500 Kaputt', 'boom\n'],
      ] as const) {
        const result = await curl(['-i', `${originUrl}${path}`]);
        assert.equal(result.code, 0, result.stderr);
        const text = result.stdout.toString('latin1');
        assert.ok(text.startsWith(`${line}\r\n`), text);
        assert.ok(text.endsWith(`\r\n\r\n${body}`), text);
      }
    },
  );

  test('curl: HEAD returns the headers and no body', { skip: noCurl }, async () => {
    const calls = poolCalls.length;
    const result = await curl(['-I', `${originUrl}/blob`]);
    assert.equal(result.code, 0, result.stderr);
    const lines = headerLines(result.stdout.toString('latin1'));
    assert.ok(
      lines.some(([n, v]) => n.toLowerCase() === 'content-length' && v === String(blob.length)),
    );
    assert.ok(lines.some(([n, v]) => n === 'ETag' && v === '"blob-v1"'));
    assert.equal(poolCalls.length, calls, 'HEAD is never offered for pooling');
  });

  test('curl: POST and chunked PUT bodies reach the origin intact', { skip: noCurl }, async () => {
    const calls = poolCalls.length;
    const file = `@${join(workDir, 'upload.bin')}`;
    const post = await curl(['--data-binary', file, '-H', 'Expect:', `${originUrl}/echo`]);
    assert.equal(post.code, 0, post.stderr);
    assert.deepEqual(JSON.parse(post.stdout.toString('utf8')), {
      method: 'POST',
      bytes: upload.length,
      sha256: sha256(upload),
      framing: `length ${upload.length}`,
    });
    const put = await curl([
      '-X',
      'PUT',
      '--data-binary',
      file,
      '-H',
      'Transfer-Encoding: chunked',
      '-H',
      'Expect:',
      `${originUrl}/echo`,
    ]);
    assert.equal(put.code, 0, put.stderr);
    assert.deepEqual(JSON.parse(put.stdout.toString('utf8')), {
      method: 'PUT',
      bytes: upload.length,
      sha256: sha256(upload),
      framing: 'chunked',
    });
    assert.equal(poolCalls.length, calls, 'requests with bodies are never offered for pooling');
  });

  test(
    'curl: Expect: 100-continue goes to the origin and its 100 comes back',
    { skip: noCurl },
    async () => {
      const before = continueRequests;
      const file = `@${join(workDir, 'upload.bin')}`;
      const result = await curl([
        '-v',
        '--data-binary',
        file,
        '-H',
        'Expect: 100-continue',
        `${originUrl}/echo`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(continueRequests, before + 1, 'the origin saw the expectation');
      assert.match(result.stderr, /< HTTP\/1\.1 100 Continue/);
      assert.equal(
        (JSON.parse(result.stdout.toString('utf8')) as { sha256: string }).sha256,
        sha256(upload),
      );
    },
  );

  test('trailer fields of a chunked response are passed on', async () => {
    const result = await viaNode(proxyPort, `${originUrl}/trailers`);
    assert.equal(result.body.toString('utf8'), 'abc');
    assert.equal(result.trailers['x-checksum'], 'xyz');
  });

  test('103 Early Hints are relayed before the response', async () => {
    const result = await viaNode(proxyPort, `${originUrl}/early-hints`);
    assert.equal(result.body.toString('utf8'), 'hinted');
    assert.deepEqual(
      result.informational.map((info) => [info.status, info.headers['link']]),
      [[103, '</style.css>; rel=preload; as=style']],
    );
  });

  test('102 is relayed; 1xx Node cannot send, and malformed hints, are dropped', async () => {
    const processing = await viaNode(proxyPort, `${originUrl}/processing`);
    assert.equal(processing.body.toString('utf8'), 'processed');
    assert.deepEqual(
      processing.informational.map((info) => info.status),
      [102],
    );
    const odd = createNetServer((socket) =>
      socket.once('data', () =>
        socket.end(
          'HTTP/1.1 103 Early Hints\r\nLink: not a link\r\n\r\n' +
            'HTTP/1.1 199 Unassigned\r\n\r\n' +
            'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast',
        ),
      ),
    );
    const oddPort = await listenOn(odd);
    try {
      const result = await viaNode(proxyPort, `http://127.0.0.1:${oddPort}/`);
      assert.equal(result.status, 200);
      assert.equal(result.body.toString('utf8'), 'last');
      assert.deepEqual(result.informational, []);
    } finally {
      odd.close();
    }
    await logged((line) => line['msg'] === 'dropped 103 Early Hints');
    await logged(
      (line) => line['msg'] === 'dropped a 1xx Node cannot relay' && line['status'] === 199,
    );
  });

  test('curl: origin down gives 502 with a one-line reason', { skip: noCurl }, async () => {
    const result = await curl(['-i', `http://127.0.0.1:${downPort}/x`]);
    assert.equal(result.code, 0, result.stderr);
    const text = result.stdout.toString('utf8');
    assert.ok(text.startsWith('HTTP/1.1 502 Bad Gateway\r\n'), text);
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    assert.match(
      body,
      new RegExp(`^could not reach 127\\.0\\.0\\.1:${downPort}: .*ECONNREFUSED.*\\n$`),
    );
  });

  test('an origin response Node cannot re-send gives 502, and the proxy lives on', async () => {
    const bad = createNetServer((socket) =>
      socket.once('data', () =>
        socket.end('HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok', 'latin1'),
      ),
    );
    const badPort = await listenOn(bad);
    try {
      const result = await viaNode(proxyPort, `http://127.0.0.1:${badPort}/`);
      assert.equal(result.status, 502);
      assert.match(result.body.toString('utf8'), /sent a response head that cannot be passed on/);
      const garbage = createNetServer((socket) =>
        socket.once('data', () => socket.end('NONSENSE\r\n\r\n')),
      );
      const garbagePort = await listenOn(garbage);
      const second = await viaNode(proxyPort, `http://127.0.0.1:${garbagePort}/`);
      garbage.close();
      assert.equal(second.status, 502);
      assert.match(second.body.toString('utf8'), /sent a response that is not valid HTTP/);
    } finally {
      bad.close();
    }
  });

  test('bad request lines and targets get 400', async () => {
    const garbage = await rawExchange(proxyPort, 'NOT A REQUEST\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\nbad request: HPE_\w+\n$/);
    const ftp = await rawExchange(
      proxyPort,
      'GET ftp://127.0.0.1/file HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    );
    assert.match(ftp, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(ftp, /only http:\/\/ and https:\/\/ URLs can be proxied, not ftp:\/\/\n$/);
    const connectBad = await rawExchange(
      proxyPort,
      'CONNECT nonsense HTTP/1.1\r\nHost: nonsense\r\n\r\n',
    );
    assert.match(connectBad, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*CONNECT needs host:port/);
    const huge = await rawExchange(
      proxyPort,
      `GET ${originUrl}/blob HTTP/1.1\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`,
    );
    assert.match(huge, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });

  test('CONNECT to a port nothing listens on gives 502 with the reason', async () => {
    const text = await rawExchange(
      proxyPort,
      `CONNECT 127.0.0.1:${downPort} HTTP/1.1\r\nHost: 127.0.0.1:${downPort}\r\n\r\n`,
    );
    assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(
      text,
      new RegExp(`could not connect to 127\\.0\\.0\\.1:${downPort}: .*ECONNREFUSED`),
    );
  });

  test('a client that gives up mid-upload aborts the origin request; the proxy lives on', async () => {
    const arrived = new Promise<IncomingMessage>((resolve) => (sinkArrived = resolve));
    const socket = connect({ host: '127.0.0.1', port: proxyPort });
    socket.on('error', () => undefined);
    socket.write(
      `POST ${originUrl}/sink HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\nContent-Length: 1048576\r\n\r\n`,
    );
    socket.write(randomBytes(1000));
    const originReq = await arrived;
    socket.destroy();
    // Not `once()`: it would reject on the 'aborted' error that comes first.
    await new Promise((resolve) => originReq.once('close', resolve));
    assert.equal(originReq.complete, false);
    const after = await viaNode(proxyPort, `${originUrl}/status/404`);
    assert.equal(after.status, 404);
  });

  describe('pooling hook', () => {
    test('is offered a GET and its response is used', { skip: noCurl }, async () => {
      const calls = poolCalls.length;
      const dump = join(workDir, 'pooled.txt');
      const result = await curl([
        '-D',
        dump,
        '-H',
        'X-Custom: 7',
        '-H',
        'Connection: X-Gone',
        '-H',
        'X-Gone: 1',
        `${originUrl}/pooled`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.toString('utf8'), 'from the pool');
      assert.ok(
        headerLines(readFileSync(dump, 'latin1')).some(([n, v]) => n === 'X-Pooled' && v === 'yes'),
      );
      assert.equal(poolCalls.length, calls + 1);
      const call = poolCalls[calls]!;
      assert.equal(call.url, `${originUrl}/pooled`);
      assert.equal(call.clientAddress, '127.0.0.1');
      const names = call.headers.map((h) => h.name.toLowerCase());
      assert.ok(call.headers.some((h) => h.name === 'X-Custom' && h.value === '7'));
      for (const dropped of ['host', 'proxy-connection', 'connection', 'x-gone']) {
        assert.ok(!names.includes(dropped), `${dropped} is not offered to the hook`);
      }
      await logged((line) => line['mode'] === 'pooled' && line['target'] === `${originUrl}/pooled`);
    });

    test(
      'a responder that fails before responding falls back to the origin',
      { skip: noCurl },
      async () => {
        const result = await curl([`${originUrl}/pool-fails-early`]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout.toString('utf8'), 'from the origin');
        await logged((line) => line['msg'] === 'pooled response failed; passing through');
      },
    );

    test('a hook that throws falls back to the origin', { skip: noCurl }, async () => {
      const result = await curl([`${originUrl}/hook-throws`]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.toString('utf8'), 'from the origin');
    });

    test('a responder that fails mid-body cuts the connection', { skip: noCurl }, async () => {
      const result = await curl([`${originUrl}/pool-fails-late`]);
      assert.notEqual(result.code, 0, 'curl must notice the truncated response');
      assert.ok(result.stdout.length < 1000);
    });
  });

  describe('CONNECT tunnels and https origins', { skip: noOpenssl }, () => {
    let tlsServer: ReturnType<typeof createHttpsServer>;
    let tlsPort = 0;
    let cert = '';

    before(async () => {
      const made = await selfSignedCertificate(workDir);
      cert = made.cert;
      tlsServer = createHttpsServer({ key: made.key, cert }, serveOrigin);
      tlsPort = await listenOn(tlsServer);
    });

    after(() => {
      tlsServer.closeAllConnections();
      tlsServer.close();
    });

    test('curl -k over https_proxy: the body is byte-identical through the tunnel', async () => {
      const result = await curl(['-k', `https://127.0.0.1:${tlsPort}/blob`], {
        https_proxy: proxyUrl,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(sha256(result.stdout), sha256(blob));
      await logged(
        (line) =>
          line['msg'] === 'proxy tunnel closed' &&
          line['target'] === `127.0.0.1:${tlsPort}` &&
          (line['bytesDown'] as number) > blob.length,
      );
    });

    test('an absolute-form https:// target is fetched over TLS with the given agent', async () => {
      const tlsProxy = new ForwardProxy({ agents: { https: new HttpsAgent({ ca: cert }) } });
      const port = (await tlsProxy.listen(0)).port;
      try {
        const result = await viaNode(port, `https://127.0.0.1:${tlsPort}/blob`);
        assert.equal(result.status, 200);
        assert.equal(sha256(result.body), sha256(blob));
      } finally {
        await tlsProxy.close();
      }
    });
  });

  test(
    'curl: an origin that dies mid-body makes a visibly truncated response',
    { skip: noCurl },
    async () => {
      for (const head of [
        'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n',
      ]) {
        const dying = createNetServer((socket) =>
          socket.once('data', () => socket.write(head, () => socket.destroy())),
        );
        const dyingPort = await listenOn(dying);
        try {
          const result = await curl([`http://127.0.0.1:${dyingPort}/`]);
          assert.notEqual(result.code, 0, `curl must see the cut (${JSON.stringify(head)})`);
        } finally {
          dying.close();
        }
      }
    },
  );

  test('a misconfigured origin agent gives 500 with the reason', async () => {
    const misconfigured = new ForwardProxy({ agents: { http: new HttpsAgent() } });
    const port = (await misconfigured.listen(0)).port;
    try {
      const result = await viaNode(port, `${originUrl}/blob`);
      assert.equal(result.status, 500);
      assert.match(
        result.body.toString('utf8'),
        /^the proxy could not forward this request: .+\n$/,
      );
    } finally {
      await misconfigured.close();
    }
  });

  describe('local requests', () => {
    test('origin-form requests go to the local handler', { skip: noCurl }, async () => {
      const result = await run('curl', ['-q', '-sS', `${proxyUrl}/api/ping?x=1`], {});
      assert.equal(result.stdout.toString('utf8'), 'local GET /api/ping?x=1');
    });

    test(
      'a proxied request for the proxy itself is served locally, not looped',
      { skip: noCurl },
      async () => {
        const result = await curl([`http://localhost:${proxyPort}/api/ping`]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout.toString('utf8'), 'local GET /api/ping');
      },
    );

    test('without a local handler they get 404', async () => {
      const bare = new ForwardProxy();
      const port = (await bare.listen(0)).port;
      try {
        const text = await rawExchange(
          port,
          'GET /api/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        );
        assert.match(
          text,
          /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*\r\n\r\nthis is the PeaPod proxy; it has no page here\n$/,
        );
      } finally {
        await bare.close();
      }
    });
  });

  describe('client allow-list', () => {
    test('default: loopback addresses only', () => {
      for (const address of [
        '127.0.0.1',
        '127.8.9.10',
        '::1',
        '::ffff:127.0.0.1',
        '::FFFF:127.0.0.2',
      ]) {
        assert.equal(isLoopbackAddress(address), true, address);
      }
      for (const address of [
        '10.0.0.1',
        '192.168.1.2',
        '::',
        '::2',
        '::ffff:10.0.0.1',
        '128.0.0.1',
        '',
        'localhost',
      ]) {
        assert.equal(isLoopbackAddress(address), false, address);
      }
    });

    test(
      'a client outside the allow-list gets 403, for requests and tunnels',
      { skip: noCurl },
      async () => {
        const strict = new ForwardProxy({ allowClient: (address) => address === '127.0.0.1' });
        const port = (await strict.listen(0)).port;
        const strictUrl = `http://127.0.0.1:${port}`;
        try {
          const refused = await run(
            'curl',
            ['-q', '-sS', '-i', '--interface', '127.0.0.2', `${originUrl}/blob`],
            {
              http_proxy: strictUrl,
            },
          );
          assert.equal(refused.code, 0, refused.stderr);
          const text = refused.stdout.toString('utf8');
          assert.ok(text.startsWith('HTTP/1.1 403 Forbidden\r\n'), text);
          assert.ok(text.endsWith('\r\n\r\nclients at 127.0.0.2 may not use this proxy\n'), text);
          const tunnelRefused = await run(
            'curl',
            ['-q', '-sS', '-p', '--interface', '127.0.0.2', `${originUrl}/blob`],
            { http_proxy: strictUrl },
          );
          assert.match(tunnelRefused.stderr, /CONNECT tunnel failed, response 403/);
          const allowed = await run('curl', ['-q', '-sS', `${originUrl}/blob`], {
            http_proxy: strictUrl,
          });
          assert.equal(sha256(allowed.stdout), sha256(blob));
        } finally {
          await strict.close();
        }
      },
    );
  });

  test('npm view honours --proxy against a local registry', { skip: noNpm }, async () => {
    const userconfig = join(workDir, 'npmrc');
    writeFileSync(userconfig, '');
    const result = await run(
      'npm',
      [
        'view',
        'tiny-pkg',
        'version',
        '--registry',
        `${originUrl}/`,
        '--proxy',
        proxyUrl,
        '--cache',
        join(workDir, 'npm-cache'),
        '--userconfig',
        userconfig,
        '--no-update-notifier',
        '--no-audit',
        '--no-fund',
      ],
      { npm_config_update_notifier: 'false' },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString('utf8').trim(), '1.2.3');
    assert.ok(
      poolCalls.some((call) => call.url === `${originUrl}/tiny-pkg`),
      'the packument GET went through the proxy',
    );
  });
});

describe('parsing client-supplied bytes (properties)', () => {
  const authorityLike = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc
      .array(
        fc.constantFrom(
          '[',
          ']',
          ':',
          '.',
          '@',
          '%',
          '1',
          '0',
          'a',
          'Z',
          '-',
          '_',
          'f',
          ' ',
          '\u00e9',
        ),
        {
          maxLength: 40,
        },
      )
      .map((parts) => parts.join('')),
    fc.tuple(fc.domain(), fc.integer({ min: -5, max: 70_000 })).map(([h, p]) => `${h}:${p}`),
  );

  test('parseAuthority never throws; what it accepts is a host and a valid port', () => {
    fc.assert(
      fc.property(
        authorityLike,
        fc.option(fc.integer({ min: 1, max: 65_535 }), { nil: undefined }),
        (text, fallback) => {
          const parsed = parseAuthority(text, fallback);
          if (parsed !== undefined) {
            assert.ok(parsed.host.length > 0);
            assert.ok(Number.isInteger(parsed.port) && parsed.port >= 1 && parsed.port <= 65_535);
            assert.ok(!parsed.host.includes('@') && !parsed.host.includes('/'));
          }
        },
      ),
      { numRuns: PROPERTY_RUNS },
    );
  });

  test('parseAuthority reads back every valid host:port', () => {
    const host = fc.oneof(
      fc.domain(),
      fc.ipV4(),
      fc.ipV6().map((address) => `[${address}]`),
    );
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65_535 }), (name, port) => {
        const bare = name.startsWith('[') ? name.slice(1, -1) : name;
        assert.deepEqual(parseAuthority(`${name}:${port}`), { host: bare, port });
        assert.deepEqual(parseAuthority(name, 8080), { host: bare, port: 8080 });
        assert.equal(parseAuthority(name), undefined, 'CONNECT needs a port');
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  test('parseRequestTarget never throws; an absolute target keeps its path verbatim', () => {
    const target = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc
        .tuple(
          fc.constantFrom('http://', 'HTTPS://', 'ftp://', 'http:/', ''),
          authorityLike,
          fc.string({ unit: 'binary', maxLength: 40 }),
        )
        .map(([scheme, authority, rest]) => `${scheme}${authority}${rest}`),
      fc.webUrl({ withQueryParameters: true }),
    );
    fc.assert(
      fc.property(target, (text) => {
        const parsed = parseRequestTarget(text);
        if (text.startsWith('/')) assert.equal(parsed.form, 'origin');
        if (parsed.form !== 'absolute') return;
        // scheme://authority, then the path exactly as sent ('/' added only where none was).
        const head = `${parsed.scheme}://${parsed.authority}`;
        assert.equal(text.slice(0, head.length).toLowerCase(), head.toLowerCase());
        const rest = text.slice(head.length);
        assert.equal(parsed.path, rest.startsWith('/') ? rest : `/${rest}`);
        assert.deepEqual(parseAuthority(parsed.authority, parsed.port), {
          host: parsed.host,
          port: parsed.port,
        });
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  test('stripHopByHop keeps exactly the end-to-end fields, in order', () => {
    const name = fc.constantFrom(
      'Connection',
      'connection',
      'Keep-Alive',
      'Proxy-Connection',
      'Proxy-Authorization',
      'TE',
      'Trailer',
      'Transfer-Encoding',
      'Upgrade',
      'X-Named',
      'x-named',
      'Set-Cookie',
      'ETag',
      'X-Other',
    );
    const value = fc.oneof(
      fc.constantFrom('x-named', 'X-Other, close', 'keep-alive', ''),
      fc.string({ maxLength: 10 }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 12 }), (fields) => {
        const flat = fields.flat();
        const named = new Set(
          fields
            .filter(([n]) => n.toLowerCase() === 'connection')
            .flatMap(([, v]) => v.split(',').map((token) => token.trim().toLowerCase())),
        );
        const hop = [
          'connection',
          'keep-alive',
          'proxy-connection',
          'proxy-authorization',
          'te',
          'trailer',
          'transfer-encoding',
          'upgrade',
        ];
        const expected = fields
          .filter(([n]) => !hop.includes(n.toLowerCase()) && !named.has(n.toLowerCase()))
          .flat();
        assert.deepEqual(stripHopByHop(flat), expected);
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });
});
