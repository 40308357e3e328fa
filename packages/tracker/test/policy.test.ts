/**
 * The tracker's answers to the attacker review (docs/tracker.md, "Abuse"): each test mounts
 * the attack on a real tracker (SQLite and PostgreSQL, real HTTP on loopback) and names what
 * must hold.
 * - A registration may carry only its own source address: a record aimed at a victim is
 *   refused `403 wrong-address` and stored nowhere; with --trust-proxy the rightmost
 *   X-Forwarded-For entry is the source, without it the header is ignored.
 * - Replaying a victim's captured record is `409 not-newer` before its per-key budget is
 *   charged, so replays cannot rate-limit the victim out of renewing.
 * - With a cluster token, the control plane answers only requests that carry it; bootstrap
 *   stays open.
 * - Node lists and chunk locations are random samples: Sybils with the smallest device IDs do
 *   not crowd out a real holder.
 * - `maxConnections` caps open connections.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { foreignAddress, normalizeIp, sourceAddress } from '../src/address-match.js';
import { TrackerClient, type TrackerError } from '../src/client.js';
import { eachBackend } from './support/each-backend.js';
import { call } from './support/http.js';
import { base64, newDevice, recordOf, signedBody, silentRecordOf } from './support/devices.js';
import { startTracker } from './support/tracker-fixture.js';

const register = (url: string, record: Uint8Array, headers: Record<string, string> = {}) =>
  call(url, 'POST', '/api/v1/bootstrap/register', {
    body: JSON.stringify({ record: base64(record) }),
    headers,
  });

eachBackend(
  "a record whose address is not the request's source (a victim's) is refused 403 wrong-address and never handed out",
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const attacker = newDevice();
      for (const address of ['203.0.113.5', '10.0.0.1', 'victim.example']) {
        const answer = await register(
          url,
          recordOf(attacker, clock.ms++, { addresses: [address] }),
        );
        assert.equal(answer.status, 403, address);
        assert.equal(answer.json['code'], 'wrong-address');
      }
      const mixed = recordOf(attacker, clock.ms++, { addresses: ['127.0.0.1', '203.0.113.5'] });
      assert.equal(
        (await register(url, mixed)).json['code'],
        'wrong-address',
        'every address is checked',
      );
      const node = await call(url, 'POST', '/api/v1/nodes', {
        body: JSON.stringify({
          record: base64(recordOf(attacker, clock.ms++, { addresses: ['203.0.113.5'] })),
        }),
      });
      assert.equal(node.json['code'], 'wrong-address', 'cluster registrations too');
      const discovered = await call(url, 'GET', '/api/v1/bootstrap/discover');
      assert.deepEqual(discovered.json['records'], [], 'nothing stored');
      const own = await register(
        url,
        recordOf(attacker, clock.ms++, { addresses: ['::ffff:127.0.0.1'] }),
      );
      assert.equal(own.status, 200, 'its own address (IPv4-mapped spelling) is accepted');
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'X-Forwarded-For is the source only with trustProxy (its rightmost entry); otherwise it is ignored',
  async (backend) => {
    const behind = await startTracker(backend, { server: { trustProxy: true } });
    const direct = await startTracker(backend);
    try {
      const device = newDevice();
      const forwarded = { 'x-forwarded-for': '203.0.113.5, 198.51.100.7' };
      const record = recordOf(device, behind.clock.ms, { addresses: ['198.51.100.7'] });
      const viaProxy = await register(behind.url, record, forwarded);
      assert.equal(viaProxy.status, 200);
      assert.equal(viaProxy.json['observedAddress'], '198.51.100.7');
      const spoofed = recordOf(device, behind.clock.ms + 1, { addresses: ['203.0.113.5'] });
      assert.equal(
        (await register(behind.url, spoofed, forwarded)).json['code'],
        'wrong-address',
        'a client-written entry to the left is not the source',
      );
      const ignored = await register(
        direct.url,
        recordOf(newDevice(), direct.clock.ms, { addresses: ['198.51.100.7'] }),
        forwarded,
      );
      assert.equal(
        ignored.json['code'],
        'wrong-address',
        'without trustProxy the header is ignored',
      );
    } finally {
      await behind.tracker.close();
      await direct.tracker.close();
    }
  },
);

eachBackend(
  "replays of a victim's record are refused not-newer without spending its key budget: the victim still renews",
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend, {
      rateLimits: { addressRatePerSecond: 0, addressBurst: 1, keyRatePerSecond: 1, keyBurst: 3 },
    });
    try {
      const victim = newDevice();
      const captured = recordOf(victim, clock.ms);
      assert.equal((await register(url, captured)).status, 200);
      for (let i = 0; i < 10; i++) {
        const replay = await register(url, captured);
        assert.equal(replay.json['code'], 'not-newer', `replay ${i}`);
      }
      const renewed = await register(url, recordOf(victim, clock.ms + 1));
      assert.equal(renewed.status, 200, 'the victim renews (before the fix: 429 rate-limited)');
    } finally {
      await tracker.close();
    }
  },
);

const TOKEN = 'cluster-secret-0123456789';

eachBackend(
  'with a cluster token the control plane refuses requests without it (401 cluster-token); bootstrap stays open',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend, {
      server: { clusterToken: TOKEN },
    });
    try {
      const device = newDevice();
      const record = base64(silentRecordOf(device, clock.ms));
      const heartbeatPath = `/api/v1/nodes/${device.deviceIdHex}/heartbeat`;
      const beat = signedBody(device, 'PUT', heartbeatPath, clock.ms, { contentIds: [] });
      const attempts = [
        () => call(url, 'POST', '/api/v1/nodes', { body: JSON.stringify({ record }) }),
        () => call(url, 'GET', '/api/v1/nodes'),
        () =>
          call(url, 'PUT', heartbeatPath, {
            body: beat.body,
            headers: { 'peapod-signature': beat.signature },
          }),
        () =>
          call(url, 'POST', '/api/v1/chunks/locations', {
            body: JSON.stringify({ contentIds: ['ab'.repeat(32)] }),
          }),
      ];
      for (const attempt of attempts) {
        const answer = await attempt();
        assert.equal(answer.status, 401);
        assert.equal(answer.json['code'], 'cluster-token');
      }
      const wrong = await call(url, 'GET', '/api/v1/nodes', {
        headers: { authorization: `Bearer ${TOKEN}x` },
      });
      assert.equal(wrong.json['code'], 'cluster-token', 'a wrong token');
      assert.equal((await call(url, 'GET', '/api/v1/nodes')).status, 401);
      const member = new TrackerClient(url, device.signer, {
        now: () => clock.ms,
        clusterToken: TOKEN,
      });
      await member.registerNode(silentRecordOf(device, clock.ms + 1));
      assert.equal((await member.nodes()).length, 1, 'with the token, the control plane answers');
      assert.equal(
        (await call(url, 'GET', '/api/v1/bootstrap/discover')).status,
        200,
        'bootstrap needs no token',
      );
      const outsider = new TrackerClient(url, newDevice().signer, { now: () => clock.ms });
      await assert.rejects(
        outsider.nodes(),
        (error: TrackerError) => error.code === 'cluster-token',
      );
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'node lists and chunk locations are random samples: 40 Sybils with the smallest IDs do not crowd out the real holder',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend, { nodeTtlMs: 600_000 });
    try {
      const devices = Array.from({ length: 41 }, () => newDevice()).sort((a, b) =>
        a.deviceIdHex.localeCompare(b.deviceIdHex),
      );
      const honest = devices.at(-1)!; // the largest device ID: last in any ID order
      const content = new Uint8Array(32).fill(7);
      for (const device of devices) {
        const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
        await client.registerNode(silentRecordOf(device, clock.ms));
        await client.heartbeat([content]);
      }
      const client = new TrackerClient(url, honest.signer, { now: () => clock.ms });
      const seenInLocations = new Set<string>();
      const seenInNodes = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const holders = (await client.chunkLocations([content])).get(
          Buffer.from(content).toString('hex'),
        )!;
        assert.equal(holders.length, 32, 'at most 32 holders');
        holders.forEach((holder) => seenInLocations.add(holder));
        const listed = await call(url, 'GET', '/api/v1/nodes?limit=5');
        for (const node of listed.json['nodes'] as { deviceIdHex: string }[])
          seenInNodes.add(node.deviceIdHex);
      }
      // Ordered by ID with a limit, the honest holder would never appear (P(miss) = 0.2^12 now).
      assert.ok(seenInLocations.has(honest.deviceIdHex), 'the real holder is answered');
      assert.ok(seenInNodes.size > 5, 'node lists are not always the same 5 smallest IDs');
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'maxConnections: a connection past the cap is dropped, the open ones still served',
  async (backend) => {
    const { tracker, url } = await startTracker(backend, { server: { maxConnections: 2 } });
    const { hostname, port } = new URL(url);
    const sockets = [connect(Number(port), hostname), connect(Number(port), hostname)];
    try {
      await Promise.all(sockets.map((socket) => once(socket, 'connect')));
      // The server counts a connection once it has accepted it: a request on each proves it.
      for (const socket of sockets) {
        socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
        await once(socket, 'data');
      }
      const third = connect(Number(port), hostname);
      third.on('error', () => undefined);
      third.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
      let answered = false;
      third.on('data', () => (answered = true));
      await once(third, 'close');
      assert.equal(answered, false, 'the third connection got no answer');
      sockets[0]!.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
      const [reply] = (await once(sockets[0]!, 'data')) as [Buffer];
      assert.match(reply.toString(), /^HTTP\/1\.1 200/);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      await tracker.close();
    }
  },
);

test('the source-address checks never throw and agree with themselves, for any strings (fast-check)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.string({ maxLength: 60 }), fc.ipV4(), fc.ipV6()), { maxLength: 4 }),
      fc.oneof(fc.string({ maxLength: 60 }), fc.ipV4(), fc.ipV6()),
      fc.option(fc.string({ maxLength: 120 }), { nil: undefined }),
      fc.boolean(),
      (addresses, socket, forwarded, trust) => {
        const source = sourceAddress(socket, forwarded, trust);
        const foreign = foreignAddress(addresses, source);
        if (foreign !== undefined) assert.ok(addresses.includes(foreign));
        if (normalizeIp(source) !== undefined)
          assert.equal(
            foreignAddress([source], source),
            undefined,
            'its own address is never foreign',
          );
      },
    ),
  );
});
