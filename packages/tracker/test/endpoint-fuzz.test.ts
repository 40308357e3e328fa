/**
 * fast-check over real HTTP: arbitrary requests to every endpoint of a tracker that already
 * holds a bootstrap entry and a cluster node. Bodies are arbitrary bytes, arbitrary JSON,
 * objects built from the API's own field names with arbitrary values, and one-character
 * mutations of valid requests (a registration and a heartbeat already applied, an unregister of
 * a device not registered);
 * methods, content types and signature headers vary too. Every answer must be a 4xx or a
 * 200 with JSON, never a 5xx, and the database must be exactly as before after every request.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TrackerClient } from '../src/client.js';
import { eachBackend } from './support/each-backend.js';
import { call } from './support/http.js';
import { base64, newDevice, recordOf, signedBody, silentRecordOf } from './support/devices.js';
import { startTracker } from './support/tracker-fixture.js';

const PATHS = [
  '/api/v1/bootstrap/register',
  '/api/v1/bootstrap/unregister',
  '/api/v1/bootstrap/discover',
  '/api/v1/nodes',
  '/api/v1/chunks/locations',
  '/healthz',
];

eachBackend(
  'arbitrary requests to every endpoint never get a 5xx and never change the database',
  async (backend) => {
    const { tracker, url, clock } = await startTracker(backend);
    try {
      const device = newDevice();
      const client = new TrackerClient(url, device.signer, { now: () => clock.ms });
      const registration = JSON.stringify({ record: base64(recordOf(device, clock.ms)) });
      assert.equal((await call(url, 'POST', PATHS[0]!, { body: registration })).status, 200);
      await client.registerNode(silentRecordOf(device, clock.ms));
      const heartbeatPath = `/api/v1/nodes/${device.deviceIdHex}/heartbeat`;
      const beat = signedBody(device, 'PUT', heartbeatPath, clock.ms, {
        contentIds: ['ab'.repeat(32)],
      });
      const beatHeaders = { 'peapod-signature': beat.signature };
      assert.equal(
        (await call(url, 'PUT', heartbeatPath, { body: beat.body, headers: beatHeaders })).status,
        200,
      );
      // Signed by a device with no registration: even sent intact it changes nothing (404).
      const unregister = signedBody(newDevice(), 'POST', PATHS[1]!, clock.ms);
      const before = await backend.snapshot();

      const fieldValue = fc.oneof(
        fc.jsonValue(),
        fc.string(),
        fc.base64String({ maxLength: 2000 }),
        fc.stringMatching(/^[0-9a-f]{64}$/),
        fc.constant(device.publicKeyHex),
        fc.integer(),
        fc.constant(clock.ms),
        fc.array(fc.stringMatching(/^[0-9a-f]{64}$/), { maxLength: 4 }),
      );
      const apiObject = fc
        .dictionary(
          fc.constantFrom('record', 'publicKey', 'timestampMs', 'contentIds', 'extra'),
          fieldValue,
        )
        .map((body) => JSON.stringify(body));
      const mutated = fc
        .tuple(
          fc.constantFrom(registration, beat.body, unregister.body),
          fc.nat(),
          fc.string({ minLength: 1, maxLength: 1 }),
        )
        .map(([text, at, char]) => {
          const index = at % text.length;
          return text.slice(0, index) + char + text.slice(index + 1);
        });
      const body = fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.jsonValue().map((value) => JSON.stringify(value)),
        apiObject,
        mutated,
        fc.constant(registration),
        fc.constant(beat.body),
        fc.constant(undefined),
      );
      const path = fc.oneof(
        fc.constantFrom(...PATHS, heartbeatPath),
        fc.stringMatching(/^\/api\/v1\/nodes\/[0-9a-f]{64}\/heartbeat$/),
        fc
          .constantFrom(...PATHS)
          .chain((p) =>
            fc.string({ maxLength: 20 }).map((q) => `${p}?${encodeURIComponent(q)}=${q.length}`),
          ),
        fc.stringMatching(/^\/[A-Za-z0-9/._~%-]{0,60}$/),
      );
      const headers = fc.record(
        {
          'content-type': fc.constantFrom(
            'application/json',
            'application/json; charset=utf-8',
            'text/plain',
            'application/json; charset=latin1',
            '',
          ),
          'peapod-signature': fc.oneof(
            fc.constant(beat.signature),
            fc.constant(unregister.signature),
            fc.stringMatching(/^[0-9a-f]{128}$/),
            fc.string({ maxLength: 130 }),
          ),
        },
        { requiredKeys: [] },
      );
      const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH');

      await fc.assert(
        fc.asyncProperty(method, path, body, headers, async (verb, target, payload, extra) => {
          const sendsBody = payload !== undefined && verb !== 'GET';
          const options: Parameters<typeof call>[3] = { headers: extra, json: false };
          if (sendsBody) options.body = payload;
          const answer = await call(url, verb, target, options);
          assert.ok(
            answer.status < 500,
            `${verb} ${target} answered ${answer.status}: ${JSON.stringify(answer.json)}`,
          );
          if (answer.status !== 200) {
            assert.equal(typeof answer.json['error'], 'string');
            assert.equal(typeof answer.json['code'], 'string');
          }
          assert.equal(await backend.snapshot(), before, `${verb} ${target} changed the database`);
        }),
        { numRuns: backend.name === 'sqlite' ? 400 : 200 },
      );
    } finally {
      await tracker.close();
    }
  },
);
