/**
 * The store's crash test under the gateway's load (issue 13 item 3): a real `peapod daemon
 * --gateway` fills its cache from an origin (many distinct objects, four clients at once) and
 * is killed with SIGKILL after a number of completed responses drawn from a seeded PRNG; then it
 * is started again on the same data directory. After every kill:
 * - the daemon starts (the store and gateway.db recover) and its gateway answers;
 * - no spool file and no object file without an index row is left in `gateway/objects`;
 * - every object `GET /api/cache` lists is served byte-exact, from the cache (the origin sees
 *   no request for it: its responses are fresh for an hour);
 * - every object is still served byte-exact through the gateway (a lost one is fetched again).
 * KILLS runs (default 5; `GATEWAY_CRASH_KILLS` overrides).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Prng } from '@peapod/core';
import {
  freeTcpPort,
  freeUdpPort,
  spawnLocalDaemon,
  waitFor,
  type LocalDaemon,
} from '../src/local-pod.js';

const KILLS = Number(process.env['GATEWAY_CRASH_KILLS'] ?? 5);
const OBJECTS = 40;
const CLIENTS = 4;

let root: string;
let origin: Server;
let originPort: number;
const requested: string[] = [];
const bodies = Array.from({ length: OBJECTS }, (_, i) => randomBytes(64 * 1024 + i * 37_001));

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-gw-crash-'));
  origin = createServer((req, res) => {
    const index = Number(/^\/o\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1);
    const body = bodies[index];
    if (body === undefined) return void res.writeHead(404).end();
    requested.push(req.url!);
    res.writeHead(200, {
      'content-length': String(body.length),
      etag: `"v1-${index}"`,
      'cache-control': 'max-age=3600',
    });
    res.end(body);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originPort = (origin.address() as AddressInfo).port;
});
after(async () => {
  origin?.close();
  await rm(root, { recursive: true, force: true });
});

async function startDaemon(
  secret: Uint8Array,
  discoveryPort: number,
  gatewayPort: number,
): Promise<LocalDaemon> {
  const daemon = await spawnLocalDaemon({
    root,
    index: 0,
    secret,
    discoveryPort,
    logLevel: 'warn',
    stdio: 'ignore',
    flags: [
      ...['--gateway', `127.0.0.1:${gatewayPort}`],
      ...['--route', `/o=http://127.0.0.1:${originPort}/o`],
    ],
  });
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${gatewayPort}/metrics`)).status === 200,
    30_000,
    'the gateway to answer',
  );
  return daemon;
}

async function body(url: string): Promise<Buffer> {
  const response = await fetch(url);
  assert.equal(response.status, 200, url);
  return Buffer.from(await response.arrayBuffer());
}

test(
  `the gateway's cache survives ${KILLS} SIGKILLs mid-fill: it restarts, leaves no leftovers, serves what it lists from the cache`,
  { timeout: 300_000 },
  async () => {
    const secret = randomBytes(32);
    const discoveryPort = await freeUdpPort();
    const gatewayPort = await freeTcpPort();
    const prng = new Prng(0x9a7e);
    const gateway = `http://127.0.0.1:${gatewayPort}/o`;
    let listedAfterKills = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const daemon = await startDaemon(secret, discoveryPort, gatewayPort);
      const exited = new Promise((resolve) => daemon.child.once('exit', resolve));
      // Load: CLIENTS loops over random objects until the kill, which lands after `after` responses.
      const killAfter = 3 + prng.nextInt(20);
      let done = 0;
      let killed = false;
      const clients = Array.from({ length: CLIENTS }, async () => {
        while (!killed) {
          const index = prng.nextInt(OBJECTS);
          try {
            const got = await body(`${gateway}/${index}`);
            assert.ok(got.equals(bodies[index]!), `object ${index} byte-exact under load`);
          } catch (error) {
            if (!killed) throw error;
          }
          if (++done >= killAfter && !killed) {
            killed = true;
            daemon.child.kill('SIGKILL');
          }
        }
      });
      await Promise.all(clients);
      await exited;

      const again = await startDaemon(secret, discoveryPort, gatewayPort);
      try {
        const objectsDir = join(daemon.home, 'gateway', 'objects');
        const listing = (await (
          await fetch(`http://127.0.0.1:${again.api.port}/api/cache`, {
            headers: { 'x-api-key': again.api.apiKey },
          })
        ).json()) as { objects: { key: string; contentId: string }[] };
        const files = await readdir(objectsDir);
        assert.deepEqual(
          files.filter((name) => name.startsWith('.spool-')),
          [],
          'no spool is left after the restart',
        );
        const named = new Set(listing.objects.map((o) => o.contentId));
        assert.deepEqual(
          files.filter((name) => !named.has(name)),
          [],
          'every object file is named by an index row',
        );
        listedAfterKills += listing.objects.length;
        const since = requested.length;
        for (const object of listing.objects) {
          const index = Number(/\/o\/(\d+)$/.exec(object.key)?.[1]);
          assert.ok((await body(`${gateway}/${index}`)).equals(bodies[index]!));
        }
        assert.deepEqual(requested.slice(since), [], 'what the cache lists is served from it');
        for (let index = 0; index < OBJECTS; index += 7)
          assert.ok((await body(`${gateway}/${index}`)).equals(bodies[index]!));
      } finally {
        again.child.kill('SIGTERM');
        await new Promise((resolve) => again.child.once('exit', resolve));
      }
    }
    assert.ok(listedAfterKills > 0, 'the cache held objects across the kills (the check had work)');
  },
);
