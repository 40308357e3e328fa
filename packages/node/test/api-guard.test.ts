/**
 * `ApiGuard` (src/api-guard.ts) in a real node:http server on 127.0.0.1, driven over real TCP
 * with hand-written heads: arbitrary `Host`, `Origin` and key values never get through unless
 * they are exactly an accepted one, and the configured bind address (a wildcard bind) counts as
 * the daemon's own. The daemon-level tests are in local-api.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ApiGuard, refuse } from '../src/api-guard.js';

const KEY = 'k'.repeat(43);

/** A server whose handler is the guard, then 200 "ok"; `bindAddress` as the daemon was told. */
async function guarded(bindAddress: string): Promise<{ server: Server; port: number }> {
  const guard = new ApiGuard(KEY, bindAddress);
  const server = createServer((req, res) => {
    const reason = guard.refusal(req);
    if (reason !== undefined) return refuse(res, reason);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** The status code of one request with these head lines (and Connection: close). */
async function status(port: number, lines: readonly string[]): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (part: Buffer) => (text += part.toString('latin1')));
  socket.write(
    `GET /api/peers HTTP/1.1\r\n${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n`,
  );
  await once(socket, 'close');
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

describe('ApiGuard', () => {
  let loopback: { server: Server; port: number };
  let wildcard: { server: Server; port: number };
  before(async () => {
    loopback = await guarded('127.0.0.1');
    wildcard = await guarded('0.0.0.0');
  });
  after(() => {
    loopback.server.close();
    wildcard.server.close();
  });

  test('an empty key is a caller error', () => {
    assert.throws(() => new ApiGuard('', '127.0.0.1'), RangeError);
  });

  test('a wildcard bind also accepts its bind address (what daemon.json names) as Host', async () => {
    const { port } = wildcard;
    assert.equal(await status(port, [`Host: 0.0.0.0:${port}`, `X-API-Key: ${KEY}`]), 200);
    assert.equal(await status(port, [`Host: 127.0.0.1:${port}`, `X-API-Key: ${KEY}`]), 200);
    assert.equal(await status(port, [`Host: 10.1.2.3:${port}`, `X-API-Key: ${KEY}`]), 403);
    const specific = loopback.port;
    assert.equal(await status(specific, [`Host: 0.0.0.0:${specific}`, `X-API-Key: ${KEY}`]), 403);
  });

  test('property: arbitrary Host, Origin and key values pass only when exactly accepted', async () => {
    const { port } = loopback;
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
    const origins = hosts.map((host) => `http://${host}`);
    // Printable ASCII without CR/LF, so each value stays one field; Node's parser may refuse
    // some (400), which also does nothing.
    const text = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(String.fromCharCode) });
    const near = (values: readonly string[]) =>
      fc.oneof(
        fc.constantFrom(...values),
        fc
          .constantFrom(...values)
          .chain((value) =>
            fc.nat({ max: value.length - 1 }).map((i) => value.slice(0, i) + value.slice(i + 1)),
          ),
        fc.constantFrom(...values).map((value) => value.toUpperCase()),
        text,
      );
    await fc.assert(
      fc.asyncProperty(
        near(hosts),
        fc.option(near(origins)),
        fc.option(near([KEY, `Bearer ${KEY}`])),
        async (host, origin, key) => {
          const keyLine =
            key === null
              ? []
              : [key.startsWith('Bearer ') ? `Authorization: ${key}` : `X-API-Key: ${key}`];
          const code = await status(port, [
            `Host: ${host}`,
            ...(origin === null ? [] : [`Origin: ${origin}`]),
            ...keyLine,
          ]);
          const lower = (value: string) => value.trim().toLowerCase();
          const accepted =
            hosts.includes(lower(host)) &&
            (origin === null || origins.includes(lower(origin))) &&
            (key === KEY || key === `Bearer ${KEY}`);
          assert.equal(code, accepted ? 200 : code === 400 ? 400 : 403);
        },
      ),
      { numRuns: 400 },
    );
  });
});
