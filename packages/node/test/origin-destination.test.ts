/**
 * Where a helper's origin requests may go (DESIGN.md decision 14) and what they carry, with real
 * sockets and HTTP servers on loopback (and, as root, a network namespace of this test's own):
 * - a fetch for a peer to a loopback origin, by IP literal or by name, is refused before any
 *   connection is made; the same fetch for this device's own download, or with private origins
 *   allowed, goes through;
 * - the connected socket is checked before a byte of the request is written, and a pooled
 *   keep-alive socket is checked when it is reused;
 * - a DNS answer mixing refused and allowed addresses connects only to an allowed one;
 * - a redirect from a public origin to a loopback one is refused after the redirect, and the
 *   loopback origin never sees a request;
 * - credentials (`authorization`, `cookie`, `proxy-authorization`) never follow a redirect to
 *   another host or port, on every path: the probe, the range fetch and the whole fetch.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  Agent as HttpAgent,
  createServer,
  get as httpGet,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  addressRefusal,
  publicDestinations,
  type DestinationPolicy,
} from '../src/http/destination-policy.js';
import { OriginFetcher, type FetchOutcome } from '../src/http/origin-fetcher.js';
import { probeOrigin } from '../src/http/origin-probe.js';
import { guardedLookup, openOrigin, type HttpHeader } from '../src/http/origin-request.js';
import { fetchWhole } from '../src/http/origin-whole.js';

const BODY = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
const ETAG = '"object-v1"';

interface Seen {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly from: string;
}

interface TestServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly seen: Seen[];
  connections: number;
  close(): Promise<void>;
}

/** Serves BODY (ranges, ETag) at every path the `routes` do not redirect; logs each request. */
async function serve(
  host: string,
  routes: (path: string) => string | undefined = () => undefined,
  port = 0,
): Promise<TestServer> {
  const seen: Seen[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    seen.push({ path, headers: req.headers, from: req.socket.remoteAddress ?? '' });
    const location = routes(path);
    if (location !== undefined) {
      res.writeHead(302, { location, 'content-length': '0' }).end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range === null) {
      res.writeHead(200, { etag: ETAG, 'accept-ranges': 'bytes' }).end(BODY);
      return;
    }
    const start = Number(range[1]);
    const end = range[2] === '' ? BODY.length - 1 : Math.min(Number(range[2]), BODY.length - 1);
    res
      .writeHead(206, {
        etag: ETAG,
        'content-range': `bytes ${start}-${end}/${BODY.length}`,
        'content-length': String(end - start + 1),
      })
      .end(BODY.subarray(start, end + 1));
  };
  const server = createServer(handler);
  const result: TestServer = {
    host,
    port: 0,
    url: '',
    seen,
    connections: 0,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  server.on('connection', () => result.connections++);
  server.listen(port, host);
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  return Object.assign(result, { port: bound, url: `http://${host}:${bound}` });
}

/** Runs one fetch of the whole BODY through `fetcher`; resolves with how it ended. */
function fetchRange(
  fetcher: OriginFetcher,
  url: string,
  forPeer: boolean,
  headers: readonly HttpHeader[] = [],
): Promise<{ outcome: FetchOutcome; detail: string; bytes: Buffer }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    fetcher.start(
      {
        fetchId: nextFetchId++,
        url,
        rangeStart: 0,
        rangeEnd: BODY.length,
        validator: '',
        headers,
        forPeer,
      },
      {
        onData: (bytes) => parts.push(Buffer.from(bytes)),
        onEnd: (outcome, detail) => resolve({ outcome, detail, bytes: Buffer.concat(parts) }),
      },
    );
  });
}
let nextFetchId = 1;

describe('fetches for a peer reach public destinations only', () => {
  let origin: TestServer;
  let fetcher: OriginFetcher;
  before(async () => {
    origin = await serve('127.0.0.1');
    fetcher = new OriginFetcher(); // the default: publicDestinations for peers
  });
  after(async () => {
    fetcher.close();
    await origin.close();
  });

  test('an IP literal and a name of a loopback origin: refused, with no connection', async () => {
    for (const url of [`${origin.url}/x`, `http://localhost:${origin.port}/x`]) {
      const result = await fetchRange(fetcher, url, true, [{ name: 'cookie', value: 'c=1' }]);
      assert.equal(result.outcome, 'refused', url);
      assert.match(
        result.detail,
        /^refused to fetch (127\.0\.0\.1|localhost):\d+ for a pod peer: .*127\.0\.0\.1 is a loopback address.*--allow-private-origins/,
      );
      assert.equal(result.bytes.length, 0);
    }
    assert.equal(origin.connections, 0);
    assert.equal(origin.seen.length, 0);
  });

  test('an IPv6 literal of loopback and a mapped form of it are refused too', async () => {
    for (const url of [
      `http://[::1]:${origin.port}/x`,
      `http://[::ffff:127.0.0.1]:${origin.port}/x`,
    ]) {
      const result = await fetchRange(fetcher, url, true);
      assert.equal(result.outcome, 'refused', url);
    }
    assert.equal(origin.connections, 0);
  });

  test("this device's own fetch, and a peer's with private origins allowed, go through", async () => {
    const own = await fetchRange(fetcher, `${origin.url}/own`, false);
    assert.equal(own.outcome, 'ok', own.detail);
    assert.deepEqual(own.bytes, BODY);
    const allowing = new OriginFetcher({ peerDestinations: () => undefined });
    try {
      const peer = await fetchRange(allowing, `${origin.url}/peer`, true);
      assert.equal(peer.outcome, 'ok', peer.detail);
      assert.deepEqual(peer.bytes, BODY);
    } finally {
      allowing.close();
    }
    assert.deepEqual(
      origin.seen.map((s) => s.path),
      ['/own', '/peer'],
    );
  });
});

describe('the connected socket is checked before the request is written', () => {
  for (const scheme of ['http', 'https'] as const) {
    test(`${scheme}: a socket whose address is refused on connect carries no byte`, async () => {
      let received = 0;
      const raw = createNetServer((socket) => {
        socket.on('data', (bytes) => (received += bytes.length));
        socket.on('error', () => undefined);
      });
      const accepted = once(raw, 'connection');
      raw.listen(0, '127.0.0.1');
      await once(raw, 'listening');
      const { port } = raw.address() as AddressInfo;
      try {
        // The literal check passes (first call), the connected socket's check refuses (second):
        // only the socket check stands between the request (or, for https, the TLS
        // ClientHello) and the server.
        let calls = 0;
        const policy: DestinationPolicy = (address) =>
          ++calls === 1 ? undefined : `${address} is refused by this test`;
        const opened = await openOrigin({
          url: `${scheme}://127.0.0.1:${port}/secret`,
          headers: [{ name: 'authorization', value: 'Bearer t' }],
          protocolHeaders: {},
          redirectsMax: 0,
          idleTimeoutMs: 5_000,
          destinationPolicy: policy,
        });
        assert.equal(opened.kind, 'failed');
        assert.equal(opened.kind === 'failed' && opened.refused, true);
        assert.match(opened.kind === 'failed' ? opened.detail : '', /refused by this test/);
        assert.equal(calls, 2);
        // The TCP connection was made (that is what was checked), but not one byte was sent.
        const [socket] = (await accepted) as [Socket];
        if (!socket.closed) await once(socket, 'close');
        assert.equal(received, 0);
      } finally {
        raw.close();
      }
    });
  }

  test('a pooled keep-alive socket opened without the policy is checked when reused', async () => {
    const origin = await serve('127.0.0.1');
    const agents = {
      http: new HttpAgent({ keepAlive: true, maxSockets: 1 }),
      https: new HttpsAgent({ keepAlive: true }),
    };
    try {
      // By name: the reused socket skips `lookup`, so only the socket check can refuse it.
      const url = `http://localhost:${origin.port}/object`;
      const spec = { url, headers: [], protocolHeaders: {}, redirectsMax: 0, idleTimeoutMs: 5_000 };
      const freed = once(agents.http, 'free');
      const first = await openOrigin({ ...spec, agents });
      assert.equal(first.kind, 'response');
      if (first.kind === 'response') {
        first.response.resume();
        await once(first.response, 'end');
      }
      await freed;
      const second = await openOrigin({ ...spec, agents, destinationPolicy: addressRefusal });
      assert.equal(second.kind === 'failed' && second.refused, true);
      assert.equal(origin.connections, 1);
      assert.deepEqual(
        origin.seen.map((s) => s.path),
        ['/object'],
      );
    } finally {
      agents.http.destroy();
      await origin.close();
    }
  });
});

describe('a DNS answer mixing refused and allowed addresses', () => {
  // No resolver here can be told to answer a made-up name with several addresses, so the
  // resolver is given; the policy and the connections are the real ones.
  const answer = [
    { address: '127.0.0.1', family: 4 },
    { address: '8.8.8.8', family: 4 },
    { address: '::1', family: 6 },
    { address: '2606:4700:4700::1111', family: 6 },
  ];
  const resolver = (
    _name: string,
    _options: unknown,
    callback: (e: null, a: typeof answer) => void,
  ) => callback(null, answer);

  test('gives the socket only the allowed addresses, or refuses the name', async () => {
    const lookup = guardedLookup(addressRefusal, resolver);
    const all = await new Promise<unknown>((resolve) =>
      lookup('mixed.test', { all: true }, (error, addresses) => resolve(error ?? addresses)),
    );
    assert.deepEqual(all, [answer[1], answer[3]]);
    const one = await new Promise<unknown>((resolve) =>
      lookup('mixed.test', {}, (error, address, family) => resolve(error ?? { address, family })),
    );
    assert.deepEqual(one, { address: '8.8.8.8', family: 4 });
    const none = guardedLookup((address) => `${address} is refused`, resolver);
    const error = await new Promise<unknown>((resolve) =>
      none('mixed.test', { all: true }, (e) => resolve(e)),
    );
    assert.match(
      (error as Error).message,
      /^mixed\.test resolves only to refused addresses: 127\.0\.0\.1 is refused \(and 3 more\)$/,
    );
  });

  test('a real connection goes to the allowed address only', async () => {
    const refusedOne = await serve('127.0.0.2');
    const allowedOne = await serve('127.0.0.1', undefined, refusedOne.port);
    try {
      const mixed = (_name: string, _options: unknown, callback: (e: null, a: unknown[]) => void) =>
        callback(null, [
          { address: '127.0.0.2', family: 4 },
          { address: '127.0.0.1', family: 4 },
        ]);
      const policy: DestinationPolicy = (address) =>
        address === '127.0.0.2' ? 'refused by this test' : undefined;
      for (let i = 0; i < 3; i++) {
        const response = await new Promise<IncomingMessage>((resolve, reject) =>
          httpGet(
            `http://mixed.test:${refusedOne.port}/x`,
            { lookup: guardedLookup(policy, mixed as never), agent: false },
            resolve,
          ).on('error', reject),
        );
        response.resume();
        await once(response, 'end');
      }
      assert.equal(refusedOne.connections, 0);
      assert.equal(allowedOne.seen.length, 3);
    } finally {
      await allowedOne.close();
      await refusedOne.close();
    }
  });
});

describe('a redirect from a public origin to a private one', () => {
  test('is refused after the redirect (the public origin is a mock)', async () => {
    const inside = await serve('127.0.0.1');
    // Every server here is on loopback and no public address can be reached, so for this test
    // 127.0.0.5 counts as public: a mock of "public", the rest is publicDestinations.
    const outside = await serve('127.0.0.5', () => `${inside.url}/metadata`);
    const policy: DestinationPolicy = (address) =>
      address === '127.0.0.5' ? undefined : publicDestinations(address);
    const fetcher = new OriginFetcher({ peerDestinations: policy });
    try {
      const result = await fetchRange(fetcher, `${outside.url}/object`, true);
      assert.equal(result.outcome, 'refused');
      assert.match(result.detail, /^refused to fetch 127\.0\.0\.1:\d+ for a pod peer: .*loopback/);
      assert.equal(outside.seen.length, 1);
      assert.equal(inside.connections, 0);
    } finally {
      fetcher.close();
      await outside.close();
      await inside.close();
    }
  });

  test('is refused after the redirect (a public address in a network namespace)', async (t) => {
    const net = PublicNamespace.create();
    if (typeof net === 'string') {
      t.skip(net);
      return;
    }
    const inside = await serve('127.0.0.1');
    const fetcher = new OriginFetcher(); // publicDestinations: nothing mocked
    try {
      await net.startServer(`http://127.0.0.1:${inside.port}/metadata`);
      const direct = await fetchRange(fetcher, `${net.url}/object`, true);
      assert.equal(direct.outcome, 'ok', direct.detail);
      assert.deepEqual(direct.bytes, BODY);
      const redirected = await fetchRange(fetcher, `${net.url}/redirect`, true);
      assert.equal(redirected.outcome, 'refused');
      assert.match(redirected.detail, /127\.0\.0\.1 is a loopback address/);
      assert.equal(inside.connections, 0);
    } finally {
      fetcher.close();
      await inside.close();
      await net.close();
    }
  });
});

describe('credentials never follow a redirect to another host or port', () => {
  let home: TestServer;
  let other: TestServer;
  before(async () => {
    other = await serve('127.0.0.1', (path) =>
      path === '/bounce' ? `http://127.0.0.1:${home.port}/final/bounced` : undefined,
    );
    home = await serve('127.0.0.1', (path) => {
      if (path === '/same') return '/final/same';
      if (path === '/port') return `http://127.0.0.1:${other.port}/final/port`;
      if (path === '/host') return `http://localhost:${home.port}/final/host`;
      if (path === '/back') return `http://127.0.0.1:${other.port}/bounce`;
      return undefined;
    });
  });
  after(async () => {
    await home.close();
    await other.close();
  });

  const credentials: HttpHeader[] = [
    { name: 'Authorization', value: 'Bearer secret' },
    { name: 'Cookie', value: 'session=secret' },
    { name: 'Proxy-Authorization', value: 'Basic secret' },
    { name: 'X-Trace', value: 'kept' },
  ];

  const paths: ReadonlyArray<readonly [string, (url: string) => Promise<unknown>]> = [
    ['probe', (url) => probeOrigin(url, { headers: credentials })],
    [
      'range fetch',
      async (url) => {
        const fetcher = new OriginFetcher();
        try {
          return await fetchRange(fetcher, url, false, credentials);
        } finally {
          fetcher.close();
        }
      },
    ],
    ['whole fetch', (url) => fetchWhole(url, credentials, 0, '', () => Promise.resolve())],
  ];

  for (const [name, run] of paths) {
    test(`${name}: kept on the same origin, dropped for another port or host name`, async () => {
      const cases = [
        ['/same', '/final/same', true],
        ['/port', '/final/port', false],
        ['/host', '/final/host', false],
        ['/back', '/final/bounced', false], // away and back: still dropped
      ] as const;
      for (const [start, final, kept] of cases) {
        home.seen.length = 0;
        other.seen.length = 0;
        await run(`${home.url}${start}`);
        const arrived = [...home.seen, ...other.seen].filter((s) => s.path === final);
        assert.ok(arrived.length > 0, `${name} ${start}: reached ${final}`);
        for (const { headers } of arrived) {
          assert.equal(headers['x-trace'], 'kept');
          for (const header of ['authorization', 'cookie', 'proxy-authorization']) {
            assert.equal(headers[header] !== undefined, kept, `${name} ${start}: ${header}`);
          }
        }
        // The first hop always had them.
        assert.equal(home.seen.find((s) => s.path === start)?.headers.cookie, 'session=secret');
      }
    });
  }
});

/**
 * A network namespace of this test's own with a public-looking address (100.128.7.2, outside
 * every special range) on a veth pair to this namespace, and an HTTP server in it that serves
 * BODY at /object and redirects /redirect. Needs root (`ip netns add`).
 */
class PublicNamespace {
  static readonly ADDRESS = '100.128.7.2';
  private server: ChildProcess | undefined;
  private constructor(private readonly name: string) {}

  get url(): string {
    return `http://${PublicNamespace.ADDRESS}:8080`;
  }

  /** The namespace, or why it cannot be made here (the test then skips). */
  static create(): PublicNamespace | string {
    const name = `pp-dest-${process.pid}`;
    const veth = `ppd${process.pid % 100_000}`;
    try {
      execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
    } catch {
      return 'needs root to create a network namespace (ip netns add failed)';
    }
    const net = new PublicNamespace(name);
    try {
      const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
      ip('link', 'add', `${veth}a`, 'type', 'veth', 'peer', 'name', `${veth}b`);
      ip('link', 'set', `${veth}b`, 'netns', name);
      ip('addr', 'add', '100.128.7.1/30', 'dev', `${veth}a`);
      ip('link', 'set', `${veth}a`, 'up');
      ip(
        'netns',
        'exec',
        name,
        'ip',
        'addr',
        'add',
        `${PublicNamespace.ADDRESS}/30`,
        'dev',
        `${veth}b`,
      );
      ip('netns', 'exec', name, 'ip', 'link', 'set', `${veth}b`, 'up');
      ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
    } catch (error) {
      void net.close();
      return `cannot set up the network namespace: ${String(error)}`;
    }
    return net;
  }

  /** Starts the namespace's server; `/redirect` sends the client to `redirectTo`. */
  async startServer(redirectTo: string): Promise<void> {
    const body = BODY.toString('base64');
    const code = `
      const body = Buffer.from(${JSON.stringify(body)}, 'base64');
      require('node:http').createServer((req, res) => {
        if (req.url === '/redirect') return res.writeHead(302, { location: ${JSON.stringify(redirectTo)}, 'content-length': '0' }).end();
        const m = /^bytes=(\\d+)-(\\d+)$/.exec(req.headers.range || '');
        if (!m) return res.writeHead(200).end(body);
        const s = Number(m[1]), e = Number(m[2]);
        res.writeHead(206, { 'content-range': 'bytes ' + s + '-' + e + '/' + body.length, 'content-length': String(e - s + 1) }).end(body.subarray(s, e + 1));
      }).listen(8080, ${JSON.stringify(PublicNamespace.ADDRESS)}, () => console.log('listening'));`;
    const server = spawn('ip', ['netns', 'exec', this.name, process.execPath, '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (part: Buffer) => {
        if (part.toString().includes('listening')) resolve();
      });
      server.once('exit', (status) => reject(new Error(`namespace server exited (${status})`)));
    });
  }

  async close(): Promise<void> {
    if (this.server !== undefined && this.server.exitCode === null) {
      const exited = once(this.server, 'exit');
      this.server.kill();
      await exited;
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'pipe' }); // takes the veth pair
    } catch {
      // already gone
    }
  }
}
