/**
 * The gateway's cluster RPC from a pod member's side, against a real `peapod daemon --gateway`
 * (a NodeHost holding the pod secret dials it and speaks RPC frames over the real link):
 * - hostile `gateway.lookup` / `gateway.segment` bodies (fast-check: random bytes, wrong JSON,
 *   huge keys) get RPC_ERROR or a well-formed answer, and the gateway keeps serving;
 * - `gateway.segment` for an address no route leads to is refused (RPC_ERROR 0x0101) and that
 *   address sees no connection: a member cannot make a gateway fetch what its operator did not
 *   route;
 * - an unknown method gets RPC_ERROR 0x0002; calls beyond `INBOUND_CALLS_MAX` waiting at once
 *   get RPC_ERROR 0x0003 (busy), and the waiting ones are still answered;
 * - `parseObject` (a member's answer) never throws on arbitrary JSON and keeps only the fields a
 *   hit replays.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { Capability, toHex } from '@peapod/core';
import { freeTcpPort, waitFor } from '../src/local-pod.js';
import { NodeHost } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import {
  INBOUND_CALLS_MAX,
  PodRpc,
  RpcFailed,
  RPC_ERROR_BUSY,
  RPC_ERROR_UNKNOWN_METHOD,
} from '../src/pod-rpc.js';
import {
  SEGMENT_METHOD,
  LOOKUP_METHOD,
  parseObject,
  RPC_ERROR_NOT_ROUTED,
} from '../src/gateway/cluster.js';
import { PodFixture } from './support/pod-fixture.js';

let pod: PodFixture;
let origin: Server;
let victim: Server;
let victimConnections = 0;
let member: NodeHost;
let rpc: PodRpc;
let daemonHex: string;
let gatewayPort: number;
const BODY = Buffer.alloc(200_000, 7);
/** An object whose fill stops after 1 MiB until `releaseSlow` (its segment 1 waits till then). */
const SLOW = Buffer.alloc(20 * 1024 * 1024, 3);
let releaseSlow: () => void = () => undefined;
const slowReleased = new Promise<void>((resolve) => (releaseSlow = resolve));

before(async () => {
  origin = createServer((req, res) => {
    if (req.url === '/slow.bin') {
      res.writeHead(200, {
        'content-length': SLOW.length,
        etag: '"s1"',
        'cache-control': 'max-age=3600',
      });
      res.write(SLOW.subarray(0, 1024 * 1024));
      void slowReleased.then(() => res.end(SLOW.subarray(1024 * 1024)));
      return;
    }
    if (req.url !== '/x.bin') return void res.writeHead(404, { 'content-length': 0 }).end();
    res.writeHead(200, {
      'content-length': BODY.length,
      etag: '"x1"',
      'cache-control': 'max-age=3600',
    });
    res.end(BODY);
  });
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  victim = createServer();
  victim.on('connection', (socket: Socket) => {
    victimConnections++;
    socket.destroy();
  });
  victim.listen(0, '127.0.0.1');
  await once(victim, 'listening');
  gatewayPort = await freeTcpPort();
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  pod = await PodFixture.start({
    daemons: 1,
    flags: { 0: ['--gateway', `127.0.0.1:${gatewayPort}`, '--route', `/o=${originUrl}`] },
  });
  const crypto = createNodeCryptoProvider();
  member = new NodeHost({
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: pod.secret,
    capabilities: Capability.rpc | Capability.serveChunks,
  });
  rpc = new PodRpc(member);
  await member.dial(pod.daemons[0]!.peerPort);
  await waitFor(async () => rpc.members().length === 1, 10_000, 'the link to the daemon');
  daemonHex = toHex(rpc.members()[0]!);
});
after(async () => {
  await member?.close();
  await pod?.stop();
  origin?.close();
  victim?.close();
});

async function answer(
  method: string,
  body: Uint8Array,
): Promise<{ ok: Uint8Array } | { code: number }> {
  try {
    return { ok: await rpc.call(daemonHex, method, body, 10_000) };
  } catch (error) {
    assert.ok(error instanceof RpcFailed, String(error));
    assert.notEqual(
      error.code,
      undefined,
      `an answer, not a timeout or a closed link: ${error.message}`,
    );
    return { code: error.code! };
  }
}

test('hostile lookup and fill bodies get an RPC error or a well-formed answer; the gateway keeps serving', async () => {
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 2048 }),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
    fc.string({ maxLength: 20_000 }).map((key) => Buffer.from(JSON.stringify({ key }))),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(LOOKUP_METHOD, SEGMENT_METHOD),
      body,
      async (method, bytes) => {
        const got = await answer(method, bytes);
        if ('ok' in got) {
          const reply = JSON.parse(Buffer.from(got.ok).toString()) as { object: unknown };
          assert.ok('object' in reply);
        }
      },
    ),
    { numRuns: 150, seed: 0x9a7e },
  );
  const response = await fetch(`http://127.0.0.1:${gatewayPort}/o/x.bin`);
  assert.equal(response.status, 200);
  assert.ok(Buffer.from(await response.arrayBuffer()).equals(BODY));
});

test('a fill for an address no route leads to is refused, and that address is never contacted', async () => {
  const port = (victim.address() as AddressInfo).port;
  for (const key of [
    `http://127.0.0.1:${port}/secret`,
    `http://127.0.0.1:${port}`,
    `http://169.254.169.254/latest/meta-data/`,
  ]) {
    const got = await answer(SEGMENT_METHOD, Buffer.from(JSON.stringify({ key, index: 0 })));
    assert.deepEqual(got, { code: RPC_ERROR_NOT_ROUTED }, key);
  }
  assert.equal(victimConnections, 0);
});

test('a fill for a routed key is answered with the object, and a lookup then finds it', async () => {
  const key = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/x.bin`;
  const filled = await answer(SEGMENT_METHOD, Buffer.from(JSON.stringify({ key, index: 0 })));
  assert.ok('ok' in filled);
  const object = parseObject(filled.ok, daemonHex);
  assert.equal(object?.totalBytes, BODY.length);
  assert.equal(object?.etag, '"x1"');
  const looked = await answer(LOOKUP_METHOD, Buffer.from(JSON.stringify({ key })));
  assert.ok('ok' in looked);
  assert.deepEqual(parseObject(looked.ok, daemonHex)?.contentId, object?.contentId);
});

test(`a member with ${INBOUND_CALLS_MAX} calls waiting gets RPC_ERROR 0x0003 (busy) for more; the waiting ones are answered`, async () => {
  const key = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/slow.bin`;
  const body = Buffer.from(JSON.stringify({ key, index: 1 }));
  const calls = Array.from({ length: INBOUND_CALLS_MAX + 4 }, () =>
    rpc.call(daemonHex, SEGMENT_METHOD, body, 60_000).then(
      () => 'answered',
      (error: RpcFailed) => error.code,
    ),
  );
  // The four beyond the bound are refused at once, while the others still wait.
  const early = await Promise.race([
    Promise.all(calls.slice(INBOUND_CALLS_MAX)),
    slowReleased.then(() => 'released'),
  ]);
  assert.deepEqual(early, [RPC_ERROR_BUSY, RPC_ERROR_BUSY, RPC_ERROR_BUSY, RPC_ERROR_BUSY]);
  releaseSlow();
  const waited = await Promise.all(calls.slice(0, INBOUND_CALLS_MAX));
  assert.deepEqual(new Set(waited), new Set(['answered']));
});

test('an unknown method gets RPC_ERROR 0x0002', async () => {
  assert.deepEqual(await answer('gateway.nope', new Uint8Array()), {
    code: RPC_ERROR_UNKNOWN_METHOD,
  });
});

test('parseObject never throws and keeps only the fields a hit replays', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const parsed = parseObject(Buffer.from(JSON.stringify({ object: value })), 'x');
      if (parsed === undefined) return;
      for (const [name] of parsed.headers)
        assert.match(
          name,
          /^(content-type|etag|last-modified|cache-control|expires|content-encoding|content-disposition|content-language|x-amz-.*)$/,
        );
    }),
    { numRuns: 2000, seed: 7 },
  );
  const valid = {
    contentId: 'ab'.repeat(32),
    totalBytes: 5,
    headers: [
      ['etag', '"a"'],
      ['set-cookie', 'session=stolen'],
      ['location', 'http://evil/'],
    ],
    etag: '"a"',
    lastModified: null,
    responseDateMs: 1,
    ageMs: 0,
    private: false,
  };
  const parsed = parseObject(Buffer.from(JSON.stringify({ object: valid })), 'x');
  assert.deepEqual(
    parsed?.headers,
    [['etag', '"a"']],
    'a member cannot make the gateway send other fields',
  );
  const split = { ...valid, headers: [['etag', '"a"\r\nset-cookie: x']] };
  assert.equal(parseObject(Buffer.from(JSON.stringify({ object: split })), 'x'), undefined);
});
