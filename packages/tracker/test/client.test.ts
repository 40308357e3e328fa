/**
 * TrackerClient against real servers: a real tracker (signed requests with a frozen clock still
 * get strictly increasing timestamps), and real node:http servers that misbehave in the ways a
 * network does: nobody listening, no answer in time, an answer that is not the API's. Each must
 * be a TrackerError with status 0 and the code the client documents.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { TrackerClient, type TrackerError } from '../src/client.js';
import { SqliteStore } from '../src/sqlite-store.js';
import { createTracker } from '../src/tracker-server.js';
import { call } from './support/http.js';
import { newDevice, silentRecordOf } from './support/devices.js';
import { UNLIMITED } from './support/tracker-fixture.js';

async function serve(
  handler: Parameters<typeof createServer>[1],
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function expectCode(code: string, status = 0) {
  return (error: TrackerError): boolean => {
    assert.equal(error.name, 'TrackerError');
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    assert.ok(error.message.length > 0);
    return true;
  };
}

test('two signed requests in the same millisecond both apply: the client bumps its timestamp', async () => {
  const frozen = Date.now();
  const tracker = createTracker({
    db: ':memory:',
    now: () => frozen,
    rateLimits: UNLIMITED,
    purgeIntervalMs: 0,
  });
  const url = await tracker.listen(0, '127.0.0.1');
  try {
    const device = newDevice();
    const client = new TrackerClient(url, device.signer, { now: () => frozen });
    await client.registerNode(silentRecordOf(device, frozen));
    await client.heartbeat([]);
    await client.heartbeat([new Uint8Array(32).fill(1)]);
    assert.equal((await client.chunkLocations([new Uint8Array(32).fill(1)])).size, 1);
  } finally {
    await tracker.close();
  }
});

test('a tracker refusal is a TrackerError with its status and code', async () => {
  const tracker = createTracker({ db: ':memory:', rateLimits: UNLIMITED, purgeIntervalMs: 0 });
  const url = await tracker.listen(0, '127.0.0.1');
  try {
    const client = new TrackerClient(`${url}/`, newDevice().signer);
    await assert.rejects(client.heartbeat([]), expectCode('not-registered', 404));
    await assert.rejects(client.register(new Uint8Array(70)), expectCode('bad-record', 400));
  } finally {
    await tracker.close();
  }
});

test('nobody listening is code unreachable', async () => {
  const { server, url } = await serve(() => undefined);
  await new Promise((resolve) => server.close(resolve));
  await assert.rejects(
    new TrackerClient(url, newDevice().signer).discover(),
    expectCode('unreachable'),
  );
});

test('no answer within timeoutMs is code timeout', async () => {
  const held: { destroy(): void }[] = [];
  const { server, url } = await serve((request) => held.push(request.socket));
  try {
    const client = new TrackerClient(url, newDevice().signer, { timeoutMs: 200 });
    await assert.rejects(client.discover(), expectCode('timeout'));
  } finally {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('answers that are not the API are code bad-answer', async () => {
  const answers = [
    'not json',
    '{"records": "nope", "observedAddress": "x"}',
    '{"records": ["!!"], "observedAddress": "x"}',
    '[]',
  ];
  let next = 0;
  const { server, url } = await serve((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(answers[next++]);
  });
  try {
    const client = new TrackerClient(url, newDevice().signer);
    for (const answer of answers)
      await assert.rejects(client.discover(), expectCode('bad-answer'), answer);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a failing database is a 503 with Retry-After, and the tracker keeps serving', async () => {
  const store = new SqliteStore(':memory:');
  const tracker = createTracker({ store, rateLimits: UNLIMITED, purgeIntervalMs: 0 });
  const url = await tracker.listen(0, '127.0.0.1');
  try {
    await store.close(); // the database goes away under the running tracker
    const answer = await call(url, 'GET', '/api/v1/bootstrap/discover');
    assert.equal(answer.status, 503);
    assert.equal(answer.json['code'], 'unavailable');
    assert.equal(answer.headers.get('retry-after'), '5');
    await assert.rejects(
      new TrackerClient(url, newDevice().signer).nodes(),
      expectCode('unavailable', 503),
    );
    assert.equal((await call(url, 'GET', '/healthz')).status, 200);
  } finally {
    await tracker.close();
  }
});
