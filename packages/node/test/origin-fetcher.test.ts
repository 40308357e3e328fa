/**
 * OriginFetcher against real HTTP servers on 127.0.0.1: byte-exact ranges from the dev origin
 * (synthesized and file-backed objects, many random ranges, concurrent over the keep-alive
 * pool), 'changed' when the pinned object changes (412 from If-Match, 200 from If-Range, a
 * foreign ETag on a 206), 'error' on truncation, 500, a wrong Content-Range or too many bytes,
 * and cancel. Random ranges come from fast-check, which prints the seed on failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import {
  OriginFetcher,
  type FetchOriginOutput,
  type FetchOutcome,
} from '../src/http/origin-fetcher.js';
import { probeOrigin } from '../src/http/origin-probe.js';
import { download, rawServer } from './support/http.js';

const MiB = 1024 * 1024;

interface FetchResult {
  readonly bytes: Buffer;
  readonly outcome: FetchOutcome;
  readonly detail: string;
}

let nextFetchId = 1;

/** Runs one fetch to its end; fails the test if a callback breaks the contract. */
function runFetch(
  fetcher: OriginFetcher,
  spec: Omit<FetchOriginOutput, 'type' | 'fetchId' | 'headers' | 'forPeer'> & {
    headers?: FetchOriginOutput['headers'];
    forPeer?: boolean;
  },
): Promise<FetchResult> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let ended = false;
    let insideStart = true;
    fetcher.start(
      { fetchId: nextFetchId++, headers: [], forPeer: false, ...spec },
      {
        onData: (bytes) => {
          if (ended) reject(new Error('onData after onEnd'));
          parts.push(Buffer.from(bytes));
        },
        onEnd: (outcome, detail) => {
          if (ended) reject(new Error('onEnd twice'));
          if (insideStart) reject(new Error('onEnd inside start()'));
          ended = true;
          assert.doesNotMatch(detail, /\n/);
          resolve({ bytes: Buffer.concat(parts), outcome, detail });
        },
      },
    );
    insideStart = false;
  });
}

async function validatorOf(url: string): Promise<string> {
  const probe = await probeOrigin(url);
  assert.equal(probe.kind, 'described');
  return probe.kind === 'described' ? (probe.validator ?? '') : '';
}

describe('OriginFetcher with the dev origin', () => {
  let origin: DevOrigin;
  let directory: string;
  let fileBytes: Buffer;
  const fetcher = new OriginFetcher({ localAddress: '127.0.0.3' });
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'peapod-fetcher-'));
    fileBytes = randomBytes(2 * MiB + 3);
    await writeFile(join(directory, 'file.bin'), fileBytes);
    origin = await startDevOrigin({
      directory,
      objects: [
        { name: 'synth.bin', sizeBytes: 4 * MiB + 5, seed: 11 },
        { name: 'changing.bin', sizeBytes: 2 * MiB, seed: 12 },
      ],
    });
  });
  after(async () => {
    fetcher.close();
    await origin.close();
    await rm(directory, { recursive: true, force: true });
  });

  for (const name of ['synth.bin', 'file.bin']) {
    test(`random ranges of ${name} are byte-exact (16 at a time over one pool)`, async () => {
      const url = `${origin.url}/${name}`;
      // file.bin is compared with the bytes written to disk; synth.bin with a plain full GET.
      const whole = name === 'file.bin' ? fileBytes : await download(url);
      const validator = await validatorOf(url);
      const range = fc
        .tuple(fc.nat({ max: whole.length - 1 }), fc.integer({ min: 1, max: 300_000 }))
        .map(([start, length]) => [start, Math.min(whole.length, start + length)] as const);
      await fc.assert(
        fc.asyncProperty(fc.array(range, { minLength: 16, maxLength: 16 }), async (ranges) => {
          const results = await Promise.all(
            ranges.map(([rangeStart, rangeEnd]) =>
              runFetch(fetcher, { url, rangeStart, rangeEnd, validator }),
            ),
          );
          results.forEach((result, i) => {
            const [start, end] = ranges[i]!;
            assert.equal(result.outcome, 'ok', result.detail);
            assert.ok(result.bytes.equals(whole.subarray(start, end)), `bytes ${start}-${end - 1}`);
          });
        }),
        { numRuns: 20 },
      );
      assert.equal(fetcher.activeCount, 0);
      assert.ok(origin.clients().has('127.0.0.3'));
    });
  }

  test("'changed' once the object changes (If-Match answers 412), never a wrong byte", async () => {
    const url = `${origin.url}/changing.bin`;
    const validator = await validatorOf(url);
    const before = await download(url);
    origin.setFaults({ changeAfterBytes: 2 * MiB + 512 * 1024 });
    const outcomes: FetchOutcome[] = [];
    try {
      for (let start = 0; start < 2 * MiB; start += 256 * 1024) {
        const result = await runFetch(fetcher, {
          url,
          rangeStart: start,
          rangeEnd: start + 256 * 1024,
          validator,
        });
        outcomes.push(result.outcome);
        if (result.outcome === 'ok') {
          assert.ok(result.bytes.equals(before.subarray(start, start + 256 * 1024)));
        } else {
          assert.equal(result.bytes.length, 0);
          assert.match(result.detail, /412 Precondition Failed: the object is no longer version "/);
        }
      }
    } finally {
      origin.setFaults({});
    }
    // 2 MiB were sent by the full GET, 512 KiB more by two ranges: then the version changed.
    assert.deepEqual(outcomes, [
      'ok',
      'ok',
      'changed',
      'changed',
      'changed',
      'changed',
      'changed',
      'changed',
    ]);
    assert.notEqual(await validatorOf(url), validator);
  });

  test("truncated bodies and 500s are 'error', never 'ok'", async () => {
    const url = `${origin.url}/synth.bin`;
    const validator = await validatorOf(url);
    origin.setFaults({ truncateEveryNth: 1 });
    const truncated = await runFetch(fetcher, {
      url,
      rangeStart: 1000,
      rangeEnd: 501_000,
      validator,
    });
    origin.setFaults({ failEveryNth: 1 });
    const failed = await runFetch(fetcher, { url, rangeStart: 0, rangeEnd: 10, validator });
    origin.setFaults({});
    assert.equal(truncated.outcome, 'error');
    assert.ok(truncated.bytes.length < 500_000);
    assert.match(truncated.detail, /of (the )?500000 bytes/);
    console.log(`# truncated: ${truncated.detail}`);
    assert.equal(failed.outcome, 'error');
    assert.equal(failed.detail, 'the origin answered 500 Internal Server Error for bytes 0-9');
  });

  test('cancel aborts the request and silences the fetch', { timeout: 10_000 }, async () => {
    // The server sends a few bytes, then holds the response open until the client goes away.
    let serverSawClose!: () => void;
    const closed = new Promise<void>((resolve) => (serverSawClose = resolve));
    const server = await rawServer((_req, res) => {
      res.writeHead(206, { 'content-range': 'bytes 0-999/1000', 'content-length': '1000' });
      res.write(Buffer.alloc(10));
      res.on('close', serverSawClose);
    });
    try {
      const fetchId = nextFetchId++;
      let ends = 0;
      await new Promise<void>((resolve) => {
        fetcher.start(
          {
            fetchId,
            url: `${server.url}/x`,
            rangeStart: 0,
            rangeEnd: 1000,
            validator: '',
            headers: [],
            forPeer: false,
          },
          { onData: () => resolve(), onEnd: () => ends++ },
        );
      });
      fetcher.cancel(fetchId);
      assert.equal(fetcher.activeCount, 0);
      // The abort destroyed the client's socket at once; the request's and response's 'error'
      // and 'close' events (all the fetch could still react to) are emitted on the next ticks,
      // before the origin, in this same process, can read the close from its socket. So once
      // the origin saw it, every callback the abort could cause has run.
      await closed;
      assert.equal(ends, 0);
    } finally {
      await server.close();
    }
  });

  test('a bad fetch ends in error asynchronously; a duplicate fetch ID is a host bug', async () => {
    const url = `${origin.url}/synth.bin`;
    const inverted = await runFetch(fetcher, { url, rangeStart: 10, rangeEnd: 10, validator: '' });
    assert.equal(inverted.outcome, 'error');
    assert.equal(inverted.detail, 'invalid range 10..10');
    const notHttp = await runFetch(fetcher, {
      url: 'file:///etc/passwd',
      rangeStart: 0,
      rangeEnd: 1,
      validator: '',
    });
    assert.equal(notHttp.outcome, 'error');
    const badHeader = await runFetch(fetcher, {
      url,
      rangeStart: 0,
      rangeEnd: 1,
      validator: '',
      headers: [{ name: 'bad header', value: 'x' }],
    });
    assert.match(badHeader.detail, /^cannot send the request/);
    const callbacks = { onData: () => undefined, onEnd: () => undefined };
    const sameId = { fetchId: 999_999, url, rangeStart: 0, rangeEnd: 1, validator: '' };
    fetcher.start({ ...sameId, headers: [], forPeer: false }, callbacks);
    assert.throws(() => fetcher.start({ ...sameId, headers: [], forPeer: false }, callbacks), {
      code: 'PEAPOD_ERR_INVALID_STATE',
    });
    fetcher.cancel(999_999);
  });

  test('the limiter is charged for every byte and the fetch still completes', async () => {
    let charged = 0;
    const limited = new OriginFetcher({
      limiter: {
        take: (bytes) => {
          charged += bytes;
          return 2;
        },
      },
    });
    try {
      const result = await runFetch(limited, {
        url: `${origin.url}/synth.bin`,
        rangeStart: 0,
        rangeEnd: MiB,
        validator: '',
      });
      assert.equal(result.outcome, 'ok', result.detail);
      assert.equal(charged, MiB);
    } finally {
      limited.close();
    }
  });
});

describe('OriginFetcher with odd servers', () => {
  const fetcher = new OriginFetcher();
  after(() => fetcher.close());

  /** Answers every request with `respond`; returns the server and its requests' headers. */
  async function serve(respond: (req: IncomingMessage, res: ServerResponse) => void) {
    const requests: IncomingMessage['headers'][] = [];
    const server = await rawServer((req, res) => {
      requests.push(req.headers);
      respond(req, res);
    });
    return { ...server, requests };
  }

  const cases: {
    name: string;
    respond: (req: IncomingMessage, res: ServerResponse) => void;
    validator: string;
    outcome: FetchOutcome;
    detail: RegExp;
  }[] = [
    {
      name: 'If-Range only: a changed object comes back whole (200)',
      respond: (_req, res) => res.writeHead(200, { etag: '"v2"' }).end(Buffer.alloc(1000)),
      validator: '"v1"',
      outcome: 'changed',
      detail:
        /answered 200 with the whole object instead of bytes 10-19: it is no longer version "v1"/,
    },
    {
      name: 'no preconditions honoured: a 206 of another version',
      respond: (_req, res) =>
        res
          .writeHead(206, { etag: '"v2"', 'content-range': 'bytes 10-19/1000' })
          .end(Buffer.alloc(10)),
      validator: '"v1"',
      outcome: 'changed',
      detail: /the object changed: it sent version "v2", not "v1" \(answering bytes 10-19\)/,
    },
    {
      name: 'Range ignored without a validator',
      respond: (_req, res) => res.writeHead(200).end(Buffer.alloc(1000)),
      validator: '',
      outcome: 'error',
      detail: /ignored the Range request for bytes 10-19 \(200\)/,
    },
    {
      name: 'a 206 for another range',
      respond: (_req, res) =>
        res.writeHead(206, { 'content-range': 'bytes 11-20/1000' }).end(Buffer.alloc(10)),
      validator: '"v1"',
      outcome: 'error',
      detail: /with Content-Range bytes 11-20\/1000/,
    },
    {
      name: 'a 206 with more bytes than the range (chunked)',
      respond: (_req, res) => {
        res.writeHead(206, { 'content-range': 'bytes 10-19/1000', 'transfer-encoding': 'chunked' });
        res.end(Buffer.alloc(25));
      },
      validator: '',
      outcome: 'error',
      detail: /sent more than the 10 bytes of bytes 10-19/,
    },
    {
      name: 'a 206 with fewer bytes than the range (chunked)',
      respond: (_req, res) => {
        res.writeHead(206, { 'content-range': 'bytes 10-19/1000', 'transfer-encoding': 'chunked' });
        res.end(Buffer.alloc(4));
      },
      validator: '',
      outcome: 'error',
      detail: /sent 4 of the 10 bytes of bytes 10-19/,
    },
    {
      name: 'a 206 whose connection closes early',
      respond: (_req, res) => {
        res.writeHead(206, { 'content-range': 'bytes 10-19/1000', 'content-length': '10' });
        res.write(Buffer.alloc(3), () => res.destroy());
      },
      validator: '',
      outcome: 'error',
      detail: /after 3 of (the )?10 bytes/,
    },
  ];
  for (const { name, respond, validator, outcome, detail } of cases) {
    test(name, async () => {
      const server = await serve(respond);
      try {
        const result = await runFetch(fetcher, {
          url: `${server.url}/x`,
          rangeStart: 10,
          rangeEnd: 20,
          validator,
        });
        assert.equal(result.outcome, outcome, result.detail);
        assert.match(result.detail, detail);
        if (outcome === 'changed') assert.equal(result.bytes.length, 0);
        assert.equal(server.requests[0]?.range, 'bytes=10-19');
        assert.equal(server.requests[0]?.['if-match'], validator === '' ? undefined : validator);
        assert.equal(server.requests[0]?.['if-range'], validator === '' ? undefined : validator);
      } finally {
        await server.close();
      }
    });
  }

  test('an unreachable origin is an error with a detail', async () => {
    const server = await rawServer(() => undefined);
    await server.close();
    const result = await runFetch(fetcher, {
      url: `${server.url}/x`,
      rangeStart: 0,
      rangeEnd: 1,
      validator: '',
    });
    assert.equal(result.outcome, 'error');
    assert.match(result.detail, /ECONNREFUSED/);
  });
});

/**
 * A versioned object (1000 bytes of the version number) whose validators are one of the pin
 * levels' kinds; `bump` changes the object (and `grow` its length). `honour` makes it evaluate
 * If-Match and If-Unmodified-Since (412); without it only the 206's own head can tell.
 */
async function versionedOrigin(
  kind: 'strong' | 'last-modified' | 'weak' | 'none',
  honour: boolean,
) {
  let version = 1;
  let length = 1000;
  const requests: IncomingMessage['headers'][] = [];
  const lastModified = () => new Date(Date.UTC(2026, 0, 1) + version * 1000).toUTCString();
  const server = await rawServer((req, res) => {
    requests.push(req.headers);
    const headers: Record<string, string> = {};
    if (kind === 'strong') headers.etag = `"v${version}"`;
    if (kind === 'weak') headers.etag = `W/"v${version}"`;
    if (kind === 'last-modified') headers['last-modified'] = lastModified();
    if (honour) {
      const ifMatch = req.headers['if-match'];
      const since = req.headers['if-unmodified-since'];
      if (
        (ifMatch !== undefined && ifMatch !== headers.etag) ||
        (since !== undefined && Date.parse(lastModified()) > Date.parse(since))
      ) {
        res.writeHead(412, headers).end();
        return;
      }
    }
    const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const body = Buffer.alloc(length, version);
    if (match === null) {
      res.writeHead(200, headers).end(body);
      return;
    }
    const first = Number(match[1]);
    const last = Math.min(Number(match[2]), length - 1);
    headers['content-range'] = `bytes ${first}-${last}/${length}`;
    res.writeHead(206, headers).end(body.subarray(first, last + 1));
  });
  return {
    ...server,
    requests,
    bump: (grow = false) => {
      version += 1;
      if (grow) length += 10;
    },
  };
}

describe('OriginFetcher pinned by each validator kind (origin-pin.ts)', () => {
  const fetcher = new OriginFetcher();
  after(() => fetcher.close());

  const kinds = [
    { kind: 'strong', level: 'strong-etag', sent: ['if-match', 'if-range'] },
    {
      kind: 'last-modified',
      level: 'last-modified',
      // Node's Date is now, long after the object's date: a strong date (RFC 9110 8.8.2.2).
      sent: ['if-unmodified-since', 'if-range'],
    },
    { kind: 'weak', level: 'weak-etag', sent: [] },
    { kind: 'none', level: 'length-only', sent: [] },
  ] as const;
  for (const { kind, level, sent } of kinds) {
    for (const honour of [true, false]) {
      const how = honour ? 'that honours preconditions' : 'that ignores preconditions';
      test(`${level}, an origin ${how}: byte-exact, then 'changed' once it changes`, async () => {
        const origin = await versionedOrigin(kind, honour);
        try {
          const probe = await probeOrigin(`${origin.url}/x`);
          assert.equal(probe.kind, 'described');
          if (probe.kind !== 'described') return;
          assert.equal(probe.reasonNotPoolable, undefined);
          assert.equal(probe.pin?.level, level);
          const validator = probe.validator ?? '';
          const spec = { url: `${origin.url}/x`, rangeStart: 100, rangeEnd: 200, validator };
          const ok = await runFetch(fetcher, spec);
          assert.equal(ok.outcome, 'ok', ok.detail);
          assert.ok(ok.bytes.equals(Buffer.alloc(100, 1)));
          const request = origin.requests.at(-1)!;
          for (const field of ['if-match', 'if-range', 'if-unmodified-since']) {
            assert.equal(field in request, (sent as readonly string[]).includes(field), field);
          }
          if (kind === 'weak') assert.equal(request['if-match'], undefined); // never a weak tag
          // A change the pin can see: a new validator, or (length only) a new length.
          origin.bump(kind === 'none');
          const changed = await runFetch(fetcher, spec);
          assert.equal(changed.outcome, 'changed', changed.detail);
          assert.equal(changed.bytes.length, 0);
          assert.match(changed.detail, honour && sent.length > 0 ? /412|changed/ : /changed/);
        } finally {
          await origin.close();
        }
      });
    }
  }

  test('length only: a change that keeps the length is not seen (the documented limit)', async () => {
    const origin = await versionedOrigin('none', false);
    try {
      const probe = await probeOrigin(`${origin.url}/x`);
      assert.equal(probe.kind === 'described' && probe.pin?.level, 'length-only');
      const validator = probe.kind === 'described' ? (probe.validator ?? '') : '';
      origin.bump(false);
      const result = await runFetch(fetcher, {
        url: `${origin.url}/x`,
        rangeStart: 0,
        rangeEnd: 10,
        validator,
      });
      // The pin cannot tell; the spot checks and a known digest are what catch this one.
      assert.equal(result.outcome, 'ok');
      assert.ok(result.bytes.equals(Buffer.alloc(10, 2)));
    } finally {
      await origin.close();
    }
  });

  test('strong ETag: the same tag with another total length is changed on own fetches', async () => {
    const server = await rawServer((_req, res) =>
      res.writeHead(206, { etag: '"v1"', 'content-range': 'bytes 0-9/1001' }).end(Buffer.alloc(10)),
    );
    try {
      const spec = { url: `${server.url}/x`, rangeStart: 0, rangeEnd: 10, validator: '"v1"' };
      // A helper's FETCH_ASSIGN carries no length: the strong ETag alone decides.
      assert.equal((await runFetch(fetcher, spec)).outcome, 'ok');
      const own = await runFetch(fetcher, { ...spec, totalBytes: 1000 });
      assert.equal(own.outcome, 'changed');
      assert.match(own.detail, /its length is 1001 bytes, it was 1000 bytes/);
    } finally {
      await server.close();
    }
  });

  test('a pin this version cannot read is an error before any request', async () => {
    const origin = await versionedOrigin('strong', true);
    try {
      const result = await runFetch(fetcher, {
        url: `${origin.url}/x`,
        rangeStart: 0,
        rangeEnd: 10,
        validator: 'peapod-pin/9 {}',
      });
      assert.equal(result.outcome, 'error');
      assert.match(result.detail, /pin/);
      assert.equal(origin.requests.length, 0);
    } finally {
      await origin.close();
    }
  });
});
