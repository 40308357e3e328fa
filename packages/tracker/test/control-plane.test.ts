/**
 * Control-plane endpoints (ElioP2P's): cluster nodes register their signed record, heartbeat
 * the contents they hold, and anyone asks who is live and who holds what. Real HTTP, real
 * SQLite and PostgreSQL, a driven clock. Includes the IP-sharing rule: a silent node, whose
 * requests come from its own address (127.0.0.2), appears in no answer and no table with it.
 */
import assert from 'node:assert/strict';
import { openPeerRecord } from '@peapod/core';
import { TrackerClient, type TrackerError } from '../src/client.js';
import { eachBackend } from './support/each-backend.js';
import { call, callFrom } from './support/http.js';
import {
  base64,
  newDevice,
  recordOf,
  signedBody,
  silentRecordOf,
  testCrypto,
} from './support/devices.js';
import { startTracker } from './support/tracker-fixture.js';

const contentId = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

eachBackend(
  'a node heartbeats its contents and chunk locations name it; a later heartbeat replaces the list',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend, { nodeTtlMs: 120_000 });
    try {
      const a = newDevice();
      const b = newDevice();
      const clientA = new TrackerClient(url, a.signer, { now: () => clock.ms });
      const clientB = new TrackerClient(url, b.signer, { now: () => clock.ms });
      const recordA = silentRecordOf(a, clock.ms);
      assert.deepEqual(await clientA.registerNode(recordA), { expiresAtMs: clock.ms + 120_000 });
      await clientB.registerNode(silentRecordOf(b, clock.ms));
      clock.ms += 10_000;
      assert.deepEqual(await clientA.heartbeat([contentId(1), contentId(2)]), {
        expiresAtMs: clock.ms + 120_000,
      });
      await clientB.heartbeat([contentId(2)]);
      const located = await clientA.chunkLocations([contentId(1), contentId(2), contentId(3)]);
      assert.deepEqual(located.get(hexOf(contentId(1))), [a.deviceIdHex]);
      assert.deepEqual(
        [...(located.get(hexOf(contentId(2))) ?? [])].sort(),
        [a.deviceIdHex, b.deviceIdHex].sort(),
        'both holders, in random order',
      );
      assert.equal(located.has(hexOf(contentId(3))), false, 'nobody holds content 3');
      const nodes = await clientA.nodes();
      const listedA = nodes.find((node) => node.deviceIdHex === a.deviceIdHex);
      assert.ok(listedA);
      assert.equal(base64(listedA.record), base64(recordA), 'the record verbatim');
      assert.equal(listedA.lastHeartbeatMs, clock.ms);
      assert.ok(openPeerRecord(testCrypto, listedA.record).ok, 'and it verifies');
      clock.ms += 1000;
      await clientA.heartbeat([contentId(2)]);
      const after = await clientA.chunkLocations([contentId(1), contentId(2)]);
      assert.equal(after.has(hexOf(contentId(1))), false, 'content 1 dropped with the new list');
      assert.deepEqual(
        [...(after.get(hexOf(contentId(2))) ?? [])].sort(),
        [a.deviceIdHex, b.deviceIdHex].sort(),
      );
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'a node that stops heartbeating leaves the list and the locations at its TTL',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend, { nodeTtlMs: 60_000 });
    try {
      const a = newDevice();
      const client = new TrackerClient(url, a.signer, { now: () => clock.ms });
      await client.registerNode(silentRecordOf(a, clock.ms));
      await client.heartbeat([contentId(7)]);
      clock.ms += 59_999;
      assert.equal((await client.nodes()).length, 1);
      clock.ms += 1;
      assert.equal((await client.nodes()).length, 0);
      assert.equal((await client.chunkLocations([contentId(7)])).size, 0);
      await assert.rejects(client.heartbeat([contentId(7)]), (error: TrackerError) => {
        assert.equal(error.status, 404);
        assert.equal(error.code, 'not-registered');
        return true;
      });
      assert.equal(await tracker.purge(), 2, 'the node row and its content row');
      await client.registerNode(silentRecordOf(a, clock.ms));
      assert.equal((await client.chunkLocations([contentId(7)])).size, 0, 'back with no contents');
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'heartbeats refuse another key, forgeries, replays, stale and bad lists, changing nothing',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const alice = newDevice();
      const mallory = newDevice();
      const stranger = newDevice();
      const aliceClient = new TrackerClient(url, alice.signer, { now: () => clock.ms });
      await aliceClient.registerNode(silentRecordOf(alice, clock.ms - 5000));
      await new TrackerClient(url, mallory.signer).registerNode(silentRecordOf(mallory, clock.ms));
      const path = `/api/v1/nodes/${alice.deviceIdHex}/heartbeat`;
      const ids = { contentIds: [hexOf(contentId(9))] };
      const send = (signed: { body: string; signature: string }, to = path) =>
        call(url, 'PUT', to, {
          body: signed.body,
          headers: { 'peapod-signature': signed.signature },
        });
      const accepted = signedBody(alice, 'PUT', path, clock.ms - 1000, ids);
      assert.equal((await send(accepted)).status, 200);
      const before = await backend.snapshot();
      const cases: [string, () => ReturnType<typeof send>, number, string][] = [
        [
          "Mallory's key on Alice's path",
          () => send(signedBody(mallory, 'PUT', path, clock.ms, ids)),
          403,
          'wrong-key',
        ],
        [
          "Alice's key, Mallory's signature",
          () => send(signedBody(alice, 'PUT', path, clock.ms, ids, mallory)),
          401,
          'bad-signature',
        ],
        ['replayed', () => send(accepted), 409, 'replayed'],
        [
          'stale',
          () => send(signedBody(alice, 'PUT', path, clock.ms - 31_000, ids)),
          422,
          'stale-timestamp',
        ],
        [
          'future',
          () => send(signedBody(alice, 'PUT', path, clock.ms + 31_000, ids)),
          422,
          'future-timestamp',
        ],
        [
          'unregistered node',
          () =>
            send(
              signedBody(
                stranger,
                'PUT',
                `/api/v1/nodes/${stranger.deviceIdHex}/heartbeat`,
                clock.ms,
                ids,
              ),
              `/api/v1/nodes/${stranger.deviceIdHex}/heartbeat`,
            ),
          404,
          'not-registered',
        ],
        [
          '201 content IDs',
          () =>
            send(
              signedBody(alice, 'PUT', path, clock.ms, {
                contentIds: Array.from({ length: 201 }, (_, i) => hexOf(contentId(i))),
              }),
            ),
          400,
          'bad-request',
        ],
        [
          '300 content IDs (a 20 KB body)',
          () =>
            send(
              signedBody(alice, 'PUT', path, clock.ms, {
                contentIds: Array.from({ length: 300 }, (_, i) => hexOf(contentId(i % 256))),
              }),
            ),
          413,
          'too-large',
        ],
        [
          'a repeated content ID',
          () =>
            send(
              signedBody(alice, 'PUT', path, clock.ms, {
                contentIds: [hexOf(contentId(1)), hexOf(contentId(1))],
              }),
            ),
          400,
          'bad-request',
        ],
        [
          'upper-case hex',
          () =>
            send(
              signedBody(alice, 'PUT', path, clock.ms, {
                contentIds: [hexOf(contentId(10)).toUpperCase()],
              }),
            ),
          400,
          'bad-request',
        ],
        [
          'contentIds missing',
          () => send(signedBody(alice, 'PUT', path, clock.ms)),
          400,
          'bad-request',
        ],
        [
          'upper-case device ID in the path',
          () =>
            send(
              signedBody(alice, 'PUT', path.toUpperCase(), clock.ms, ids),
              path.replace(alice.deviceIdHex, alice.deviceIdHex.toUpperCase()),
            ),
          404,
          'not-found',
        ],
      ];
      for (const [what, attempt, status, code] of cases) {
        const answer = await attempt();
        assert.equal(answer.status, status, what);
        assert.equal(answer.json['code'], code, what);
      }
      assert.equal(await backend.snapshot(), before);
    } finally {
      await tracker.close();
    }
  },
);

eachBackend('chunk-location queries are bounded and typed', async (backend) => {
  const { tracker, url } = await startTracker(backend);
  try {
    const before = await backend.snapshot();
    const cases: [string, unknown, number][] = [
      ['empty list', { contentIds: [] }, 400],
      ['65 IDs', { contentIds: Array.from({ length: 65 }, (_, i) => hexOf(contentId(i))) }, 400],
      ['not hex', { contentIds: ['zz'.repeat(32)] }, 400],
      ['a string', { contentIds: hexOf(contentId(1)) }, 400],
      ['extra field', { contentIds: [hexOf(contentId(1))], all: true }, 400],
    ];
    for (const [what, body, status] of cases) {
      const answer = await call(url, 'POST', '/api/v1/chunks/locations', {
        body: JSON.stringify(body),
      });
      assert.equal(answer.status, status, what);
      assert.equal(answer.json['code'], 'bad-request', what);
    }
    const sixtyFour = await call(url, 'POST', '/api/v1/chunks/locations', {
      body: JSON.stringify({
        contentIds: Array.from({ length: 64 }, (_, i) => hexOf(contentId(i))),
      }),
    });
    assert.equal(sixtyFour.status, 200);
    assert.deepEqual(sixtyFour.json, { locations: {} });
    assert.equal(await backend.snapshot(), before);
  } finally {
    await tracker.close();
  }
});

eachBackend(
  "a silent node's address is in no answer and no table (the IP-sharing rule)",
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const silentAddress = '127.0.0.2';
      const silent = newDevice();
      const loud = newDevice();
      const record = silentRecordOf(silent, clock.ms);
      // Everything the silent node sends comes from its own address.
      const registered = await callFrom(silentAddress, url, 'POST', '/api/v1/nodes', {
        body: JSON.stringify({ record: base64(record) }),
      });
      assert.equal(registered.status, 200);
      const path = `/api/v1/nodes/${silent.deviceIdHex}/heartbeat`;
      const beat = signedBody(silent, 'PUT', path, clock.ms, { contentIds: [hexOf(contentId(5))] });
      const heartbeat = await callFrom(silentAddress, url, 'PUT', path, {
        body: beat.body,
        headers: { 'peapod-signature': beat.signature },
      });
      assert.equal(heartbeat.status, 200);
      const asBootstrap = await callFrom(silentAddress, url, 'POST', '/api/v1/bootstrap/register', {
        body: JSON.stringify({ record: base64(record) }),
      });
      assert.equal(asBootstrap.status, 422, 'a silent record cannot be a bootstrap node');
      const loudClient = new TrackerClient(url, loud.signer, { now: () => clock.ms });
      await loudClient.register(recordOf(loud, clock.ms));
      await loudClient.registerNode(recordOf(loud, clock.ms));
      const answers = [
        registered.text,
        heartbeat.text,
        asBootstrap.text,
        (await call(url, 'GET', '/api/v1/nodes')).json,
        (await call(url, 'GET', '/api/v1/bootstrap/discover')).json,
        (
          await call(url, 'POST', '/api/v1/chunks/locations', {
            body: JSON.stringify({ contentIds: [hexOf(contentId(5))] }),
          })
        ).json,
      ].map((answer) => (typeof answer === 'string' ? answer : JSON.stringify(answer)));
      const nodes = await loudClient.nodes();
      const silentListed = nodes.find((node) => node.deviceIdHex === silent.deviceIdHex);
      assert.ok(silentListed, 'the silent node is listed, by its record');
      const opened = openPeerRecord(testCrypto, silentListed.record);
      assert.ok(opened.ok);
      assert.deepEqual(opened.record.addresses, [], 'its record carries no address');
      const ascii = Buffer.from(silentAddress).toString('hex');
      for (const text of [...answers, await backend.snapshot()]) {
        assert.ok(!text.includes(silentAddress), `no ${silentAddress} in ${text.slice(0, 120)}`);
        assert.ok(!text.includes(ascii), 'nor its bytes');
        assert.ok(!text.includes(Buffer.from(silentAddress).toString('base64').slice(0, 8)));
      }
      const discovered = await loudClient.discover();
      assert.equal(
        discovered.records.length,
        1,
        'only the broadcasting device is a bootstrap node',
      );
    } finally {
      await tracker.close();
    }
  },
);
