/**
 * Bootstrap endpoints over real HTTP against real SQLite and real PostgreSQL: register,
 * discover and unregister with TTL expiry (the clock is driven, nothing sleeps), and every
 * refusal the API names, each followed by a check that the database did not change.
 */
import assert from 'node:assert/strict';
import type { TrackerError } from '../src/client.js';
import { TrackerClient } from '../src/client.js';
import { eachBackend } from './support/each-backend.js';
import { call } from './support/http.js';
import { base64, newDevice, recordOf, signedBody } from './support/devices.js';
import { startTracker } from './support/tracker-fixture.js';

const HOUR_MS = 3_600_000;

eachBackend(
  'a registered record is discovered verbatim with its expiry and the caller address',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const device = newDevice();
      const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
      const record = recordOf(device, clock.ms);
      const registered = await client.register(record);
      assert.equal(registered.expiresAtMs, clock.ms + HOUR_MS);
      assert.equal(registered.observedAddress, '127.0.0.1');
      const found = await client.discover();
      assert.deepEqual(found.records.map(base64), [base64(record)]);
      assert.equal(found.observedAddress, '127.0.0.1');
    } finally {
      await tracker.close();
    }
  },
);

eachBackend('a registration expires after its TTL and purge deletes the row', async (backend) => {
  const { tracker, url, clock } = await startTracker(backend, { ttlMs: 60_000 });
  try {
    const device = newDevice();
    const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
    await client.register(recordOf(device, clock.ms));
    clock.ms += 59_999;
    assert.equal((await client.discover()).records.length, 1, 'live 1 ms before expiry');
    clock.ms += 1;
    assert.equal((await client.discover()).records.length, 0, 'gone at expiry');
    assert.match(await backend.snapshot(), new RegExp(device.deviceIdHex), 'row kept until purge');
    assert.equal(await tracker.purge(), 1);
    assert.doesNotMatch(await backend.snapshot(), new RegExp(device.deviceIdHex));
  } finally {
    await tracker.close();
  }
});

eachBackend(
  'unregister removes the entry and a replayed registration cannot bring it back',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const device = newDevice();
      const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
      const record = recordOf(device, clock.ms);
      await client.register(record);
      clock.ms += 1000;
      await client.unregister();
      assert.equal((await client.discover()).records.length, 0);
      const before = await backend.snapshot();
      const replay = await call(url, 'POST', '/api/v1/bootstrap/register', {
        body: JSON.stringify({ record: base64(record) }),
      });
      assert.equal(replay.status, 409);
      assert.equal(replay.json['code'], 'not-newer');
      assert.equal(await backend.snapshot(), before, 'the replay changed nothing');
      assert.equal((await client.discover()).records.length, 0);
      clock.ms += 1;
      await client.register(recordOf(device, clock.ms));
      assert.equal((await client.discover()).records.length, 1, 'a fresh record registers again');
      await assert.doesNotReject(client.unregister());
      await assert.doesNotReject(client.unregister(), 'unregistering twice is done, not an error');
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'a record equal to or older than the stored one is refused 409 not-newer',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const device = newDevice();
      const older = recordOf(device, clock.ms - 1000);
      const newer = recordOf(device, clock.ms);
      const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
      await client.register(newer);
      const before = await backend.snapshot();
      for (const record of [newer, older]) {
        await assert.rejects(client.register(record), (error: TrackerError) => {
          assert.equal(error.status, 409);
          assert.equal(error.code, 'not-newer');
          return true;
        });
      }
      assert.equal(await backend.snapshot(), before);
      assert.deepEqual((await client.discover()).records.map(base64), [base64(newer)]);
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'records that may not register are refused with their code and change nothing',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const device = newDevice();
      const forged = recordOf(device, clock.ms);
      forged[forged.length - 1]! ^= 1;
      const cases: [string, Uint8Array, number, string][] = [
        [
          'no broadcast',
          recordOf(device, clock.ms, { broadcast: false, addresses: [] }),
          422,
          'record-refused',
        ],
        [
          'no bootstrap flag',
          recordOf(device, clock.ms, { bootstrap: false }),
          422,
          'record-refused',
        ],
        ['no address', recordOf(device, clock.ms, { addresses: [] }), 422, 'record-refused'],
        ['leaving', recordOf(device, clock.ms, { leaving: true }), 422, 'record-refused'],
        ['issued 31 s ago', recordOf(device, clock.ms - 31_000), 422, 'stale-timestamp'],
        ['issued 31 s ahead', recordOf(device, clock.ms + 31_000), 422, 'future-timestamp'],
        ['forged signature', forged, 401, 'bad-signature'],
        ['not a record', new Uint8Array(80), 400, 'bad-record'],
      ];
      const before = await backend.snapshot();
      for (const [what, record, status, code] of cases) {
        const answer = await call(url, 'POST', '/api/v1/bootstrap/register', {
          body: JSON.stringify({ record: base64(record) }),
        });
        assert.equal(answer.status, status, what);
        assert.equal(answer.json['code'], code, what);
        assert.equal(typeof answer.json['error'], 'string', what);
      }
      assert.equal(await backend.snapshot(), before);
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'unregister refuses forged, foreign, stale, future and replayed requests, changing nothing',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const alice = newDevice();
      const mallory = newDevice();
      const path = '/api/v1/bootstrap/unregister';
      const aliceClient = new TrackerClient(url, alice.signer, { now: () => clock.ms });
      await aliceClient.register(recordOf(alice, clock.ms - 5000));
      await new TrackerClient(url, mallory.signer).register(recordOf(mallory, clock.ms - 5000));
      const send = (signed: { body: string; signature: string }) =>
        call(url, 'POST', path, {
          body: signed.body,
          headers: { 'peapod-signature': signed.signature },
        });
      // Accepted once, so the same bytes can be replayed after Alice registers again.
      const accepted = signedBody(alice, 'POST', path, clock.ms - 2000);
      assert.equal((await send(accepted)).status, 200);
      await aliceClient.register(recordOf(alice, clock.ms - 1000));
      const tampered = signedBody(alice, 'POST', path, clock.ms);
      const before = await backend.snapshot();
      const cases: [string, Promise<Awaited<ReturnType<typeof send>>>, number, string][] = [
        [
          "signed by Mallory under Alice's key",
          send(signedBody(alice, 'POST', path, clock.ms, {}, mallory)),
          401,
          'bad-signature',
        ],
        [
          'signed for another path',
          send({ ...signedBody(alice, 'POST', '/api/v1/nodes', clock.ms), body: tampered.body }),
          401,
          'bad-signature',
        ],
        [
          'body changed after signing',
          send({ body: tampered.body.replace('{', '{ '), signature: tampered.signature }),
          401,
          'bad-signature',
        ],
        [
          'timestamp 31 s old',
          send(signedBody(alice, 'POST', path, clock.ms - 31_000)),
          422,
          'stale-timestamp',
        ],
        [
          'timestamp 31 s ahead',
          send(signedBody(alice, 'POST', path, clock.ms + 31_000)),
          422,
          'future-timestamp',
        ],
        ['replayed', send(accepted), 409, 'replayed'],
        ['unsigned', call(url, 'POST', path, { body: tampered.body }), 401, 'unsigned'],
      ];
      for (const [what, pending, status, code] of cases) {
        const answer = await pending;
        assert.equal(answer.status, status, what);
        assert.equal(answer.json['code'], code, what);
      }
      assert.equal(await backend.snapshot(), before);
      assert.equal((await aliceClient.discover()).records.length, 2, 'both still registered');
    } finally {
      await tracker.close();
    }
  },
);

eachBackend(
  'malformed, oversized and mistyped bodies get their 4xx and change nothing',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const device = newDevice();
      const record = base64(recordOf(device, clock.ms));
      const register = '/api/v1/bootstrap/register';
      const cases: [string, Parameters<typeof call>[3], number, string][] = [
        ['malformed JSON', { body: '{"record": ' }, 400, 'bad-json'],
        ['not an object', { body: JSON.stringify([record]) }, 400, 'bad-json'],
        ['record a number', { body: JSON.stringify({ record: 7 }) }, 400, 'bad-request'],
        [
          'record not base64',
          { body: JSON.stringify({ record: 'not base64!' }) },
          400,
          'bad-request',
        ],
        ['unknown field', { body: JSON.stringify({ record, extra: 1 }) }, 400, 'bad-request'],
        ['missing field', { body: '{}' }, 400, 'bad-request'],
        ['not UTF-8', { body: new Uint8Array([0x7b, 0xff, 0x7d]) }, 400, 'bad-json'],
        [
          '17 KiB body',
          { body: JSON.stringify({ record: 'A'.repeat(17 * 1024) }) },
          413,
          'too-large',
        ],
        [
          'text/plain',
          { body: JSON.stringify({ record }), headers: { 'content-type': 'text/plain' } },
          415,
          'unsupported-media-type',
        ],
        [
          'no content type',
          { body: JSON.stringify({ record }), json: false },
          415,
          'unsupported-media-type',
        ],
      ];
      const before = await backend.snapshot();
      for (const [what, options, status, code] of cases) {
        const answer = await call(url, 'POST', register, options);
        assert.equal(answer.status, status, what);
        assert.equal(answer.json['code'], code, what);
      }
      const queries: [string, string, number, string][] = [
        ['limit 0', '/api/v1/bootstrap/discover?limit=0', 400, 'bad-request'],
        ['limit 51', '/api/v1/bootstrap/discover?limit=51', 400, 'bad-request'],
        ['limit text', '/api/v1/bootstrap/discover?limit=ten', 400, 'bad-request'],
        ['unknown parameter', '/api/v1/bootstrap/discover?all=1', 400, 'bad-request'],
        ['unknown path', '/api/v1/bootstrap/everything', 404, 'not-found'],
      ];
      for (const [what, path, status, code] of queries) {
        const answer = await call(url, 'GET', path);
        assert.equal(answer.status, status, what);
        assert.equal(answer.json['code'], code, what);
      }
      const wrongMethod = await call(url, 'DELETE', register);
      assert.equal(wrongMethod.status, 405);
      assert.equal(wrongMethod.headers.get('allow'), 'POST');
      assert.equal(await backend.snapshot(), before);
    } finally {
      await tracker.close();
    }
  },
);

eachBackend('discover returns at most limit records, each a distinct live one', async (backend) => {
  const { tracker, url, clock } = await startTracker(backend);
  try {
    const devices = Array.from({ length: 12 }, () => newDevice());
    const records = new Set<string>();
    for (const device of devices) {
      const record = recordOf(device, clock.ms);
      records.add(base64(record));
      await new TrackerClient(url, device.signer).register(record);
    }
    const client = new TrackerClient(url, devices[0]!.signer);
    const five = await client.discover(5);
    assert.equal(five.records.length, 5);
    assert.equal(new Set(five.records.map(base64)).size, 5);
    for (const record of five.records) assert.ok(records.has(base64(record)));
    assert.equal((await client.discover(50)).records.length, 12);
  } finally {
    await tracker.close();
  }
});

eachBackend(
  'rate limits answer 429 with Retry-After, per address and per device key',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend, {
      rateLimits: { addressRatePerSecond: 1, addressBurst: 3, keyRatePerSecond: 1, keyBurst: 1 },
    });
    try {
      const device = newDevice();
      const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
      await client.register(recordOf(device, clock.ms));
      const before = await backend.snapshot();
      const keyLimited = await call(url, 'POST', '/api/v1/bootstrap/register', {
        body: JSON.stringify({ record: base64(recordOf(device, clock.ms + 1)) }),
      });
      assert.equal(keyLimited.status, 429, 'the key spent its burst of 1');
      assert.equal(keyLimited.json['code'], 'rate-limited');
      assert.equal(keyLimited.headers.get('retry-after'), '1');
      assert.equal(await backend.snapshot(), before, 'a limited registration changes nothing');
      assert.equal(
        (await call(url, 'GET', '/api/v1/bootstrap/discover')).status,
        200,
        'third from this address',
      );
      const addressLimited = await call(url, 'GET', '/api/v1/bootstrap/discover');
      assert.equal(addressLimited.status, 429, 'the address spent its burst of 3');
      assert.equal(addressLimited.headers.get('retry-after'), '1');
      assert.equal(
        (await call(url, 'GET', '/healthz')).status,
        200,
        'health checks are not limited',
      );
      clock.ms += 1000;
      assert.equal(
        (await call(url, 'GET', '/api/v1/bootstrap/discover')).status,
        200,
        'refilled after 1 s',
      );
    } finally {
      await tracker.close();
    }
  },
);
