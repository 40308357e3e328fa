/**
 * Hostile input at the gateway's port (endpoint mode, with its cache on): arbitrary
 * request-targets, methods, header fields and Range values, sent as raw bytes over TCP. The
 * gateway must answer each with a complete HTTP response (or close the connection for a request
 * it cannot parse) and keep serving: after the whole run a plain GET still returns the object
 * byte for byte. Nothing here may reach a second origin: the only route is to a local origin.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { CachedGet } from '../src/gateway/cached-get.js';
import { Gateway } from '../src/gateway/gateway-server.js';
import { MemoryCache } from '../src/gateway/memory-cache.js';
import { ObjectCache } from '../src/gateway/object-cache.js';
import { ObjectIndex } from '../src/gateway/object-index.js';
import { parseRoute, RouteTable } from '../src/gateway/routes.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { ChunkStore } from '../src/store/chunk-store.js';
import { RevalidatingOrigin } from './support/revalidating-origin.js';

let dir: string;
let origin: RevalidatingOrigin;
let gateway: Gateway;
let store: ChunkStore;
let index: ObjectIndex;
let port: number;
const object = randomBytes(100_000);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'peapod-gwf-'));
  mkdirSync(join(dir, 'origin'));
  writeFileSync(join(dir, 'origin', 'a.bin'), object);
  origin = await RevalidatingOrigin.start(join(dir, 'origin'));
  store = await ChunkStore.open({ dir: join(dir, 'store'), budgetBytes: 2 ** 30 });
  index = new ObjectIndex(join(dir, 'gateway.db'));
  const cache = new ObjectCache({
    store,
    index,
    objectsDir: join(dir, 'objects'),
    crypto: createNodeCryptoProvider(),
    budgetBytes: 2 ** 30,
    memory: new MemoryCache({ maxBytes: 2 ** 24 }),
    nowMs: () => Date.now(),
  });
  const events = { lookup: () => undefined, revalidated: () => undefined, bytes: () => undefined };
  gateway = new Gateway({
    routes: new RouteTable([parseRoute(`/f=${origin.url}`)]),
    cache: new CachedGet(cache, events, () => Date.now()),
  });
  port = (await gateway.listen(0, '127.0.0.1')).port;
});

after(async () => {
  await gateway?.close();
  await origin?.close();
  index?.close();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends raw bytes; resolves with what came back before the server closed or 5 s of silence. */
function raw(bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    socket.on('data', (part: Buffer) => {
      parts.push(part);
      // One response is enough: stop once a full head arrived and its body is in.
      const text = Buffer.concat(parts).toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head))?.[1];
      if (head >= 0 && length !== undefined && text.length - head - 4 >= Number(length))
        socket.end();
    });
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('close', () => resolve(Buffer.concat(parts)));
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/);
const fieldValue = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});
const target = fc.oneof(
  fc.constant('/f/a.bin'),
  fc.string({ maxLength: 40 }).map((s) => `/f/${encodeURI(s)}`),
  fc
    .string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
      maxLength: 40,
    })
    .map((s) => `/${s}`),
  fc.constantFrom(
    '/f/../x',
    '/f/%2e%2e/x',
    '*',
    'http://other.invalid/x',
    '/f/a.bin?X-Amz-Signature=zz',
    '/metrics',
  ),
);

test('property: arbitrary requests get an HTTP answer or a closed connection, and the gateway keeps serving', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
      target,
      fc.array(fc.tuple(token, fieldValue), { maxLength: 6 }),
      fc.option(
        fc.oneof(
          fc.string({ maxLength: 30 }),
          fc.constantFrom('bytes=0-0,5-', 'bytes=-0', 'bytes=99999999999999999-', 'bytes=1-0'),
        ),
      ),
      async (method, path, fields, range) => {
        const lines = [
          `${method} ${path} HTTP/1.1`,
          `Host: 127.0.0.1:${port}`,
          'Connection: close',
        ];
        for (const [name, value] of fields)
          if (!/^(content-length|transfer-encoding|host|connection|expect)$/i.test(name))
            lines.push(`${name}: ${value}`);
        if (range !== null) lines.push(`Range: ${range.replace(/[\r\n]/g, '')}`);
        const answer = (await raw(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'))).toString(
          'latin1',
        );
        if (answer.length > 0) assert.match(answer, /^HTTP\/1\.1 [1-5]\d\d /, answer.slice(0, 80));
      },
    ),
    { numRuns: 150 },
  );
  const response = await fetch(`http://127.0.0.1:${port}/f/a.bin`);
  assert.equal(response.status, 200);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), object);
});
