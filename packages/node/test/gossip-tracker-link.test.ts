/**
 * One tracker as the daemon uses it (src/tracker-link.ts) against a real tracker
 * (@peapod/tracker's `createTracker`, SQLite in a temporary directory, real HTTP on loopback):
 * a broadcasting device registers its signed record and unregisters on stop; a silent one only
 * discovers; a tracker that is down, or that refuses the registration with a 4xx, is logged
 * once per change of state, retried, and never throws into the daemon; a tracker that comes
 * back is used again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import {
  buildPeerRecord,
  Capability,
  decodePeerRecord,
  equalBytes,
  type KeyPair,
} from '@peapod/core';
import { createTracker, TrackerClient, type Tracker } from '@peapod/tracker';
import { freeTcpPort, waitFor } from '../src/local-pod.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { backoffMs, TrackerLink, trackerProblem } from '../src/tracker-link.js';

const crypto = createNodeCryptoProvider();
const root = await mkdtemp(join(tmpdir(), 'peapod-tracker-link-'));
after(() => rm(root, { recursive: true, force: true }));
let dbs = 0;

async function startTracker(port = 0): Promise<Tracker> {
  const tracker = createTracker({
    db: join(root, `tracker-${++dbs}.db`),
    rateLimits: { addressRatePerSecond: 0, keyRatePerSecond: 0 },
  });
  await tracker.listen(port, '127.0.0.1');
  return tracker;
}

function clientFor(url: string, identity: KeyPair): TrackerClient {
  return new TrackerClient(url, {
    publicKey: identity.publicKey,
    sign: (message) => crypto.ed25519Sign(identity.secretKey, message),
  });
}

function recordOf(identity: KeyPair, broadcast: boolean, addresses: string[]): Uint8Array {
  return buildPeerRecord(crypto, identity, {
    issuedAtMs: Date.now(),
    broadcast,
    bootstrap: broadcast,
    leaving: false,
    capabilities: Capability.serveChunks | Capability.gossip,
    listenPort: 9000,
    deviceName: 'link-test',
    addresses,
  });
}

/** A pino logger whose lines land in `lines` (JSON objects). */
function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('tracker-link', () => {
  test('a broadcasting device registers its signed record (learning its address first) and unregisters on stop', async () => {
    const tracker = await startTracker();
    const me = crypto.ed25519GenerateKeyPair();
    const observer = clientFor(tracker.url, crypto.ed25519GenerateKeyPair());
    const observed: string[] = [];
    const { logger, lines } = captureLogger();
    const link = new TrackerLink({
      client: clientFor(tracker.url, me),
      // The record names the address the tracker saw, as the daemon's does.
      ownRecord: () => (observed.length === 0 ? undefined : recordOf(me, true, [observed.at(-1)!])),
      onRecords: () => undefined,
      onObservedAddress: (address) => observed.push(address),
      logger,
    });
    link.start();
    await waitFor(
      async () => (await observer.discover()).records.length === 1,
      10_000,
      'the registration',
    );
    const [registered] = (await observer.discover()).records;
    const decoded = decodePeerRecord(registered!);
    assert.ok(decoded.ok);
    assert.ok(equalBytes(decoded.record.publicKey, me.publicKey));
    assert.deepEqual(decoded.record.addresses, ['127.0.0.1']);
    assert.equal(observed[0], '127.0.0.1');
    const status = link.status();
    assert.equal(status.state, 'reachable');
    assert.ok(Date.parse(status.registeredUntil!) > Date.now());
    await link.stop();
    assert.deepEqual((await observer.discover()).records, []);
    assert.equal(lines.filter((line) => line['msg'] === 'tracker reachable').length, 1);
    assert.equal(lines.filter((line) => line['msg'] === 'unregistered from the tracker').length, 1);
    await tracker.close();
  });

  test('a silent device only discovers: the records go to onRecords, nothing is registered', async () => {
    const tracker = await startTracker();
    const far = crypto.ed25519GenerateKeyPair();
    await clientFor(tracker.url, far).register(
      recordOf(far, true, ['127.0.0.1'] /* the source: a tracker takes only that */),
    );
    const got: Uint8Array[][] = [];
    const link = new TrackerLink({
      client: clientFor(tracker.url, crypto.ed25519GenerateKeyPair()),
      ownRecord: () => undefined,
      onRecords: (records) => got.push(records),
      onObservedAddress: () => undefined,
      logger: captureLogger().logger,
    });
    link.start();
    await waitFor(async () => got.length > 0, 10_000, 'the discover answer');
    assert.equal(got[0]!.length, 1);
    assert.equal(link.status().registeredUntil, undefined);
    const all = (await clientFor(tracker.url, far).discover()).records;
    assert.equal(all.length, 1, 'only the far device is registered');
    await link.stop();
    await tracker.close();
  });

  test('a tracker that is down is logged once, retried, and used when it comes back', async () => {
    const port = await freeTcpPort();
    const url = `http://127.0.0.1:${port}`;
    const me = crypto.ed25519GenerateKeyPair();
    const { logger, lines } = captureLogger();
    const link = new TrackerLink({
      client: clientFor(url, me),
      ownRecord: () => recordOf(me, true, ['127.0.0.1']),
      onRecords: () => undefined,
      onObservedAddress: () => undefined,
      logger,
    });
    link.start();
    // At least two failed rounds (1 s apart), one warning.
    await waitFor(
      async () => lines.filter((line) => line['msg'] === 'tracker round failed').length >= 2,
      15_000,
      'two failed rounds',
    );
    const warnings = lines.filter((line) => String(line['msg']).startsWith('tracker unreachable'));
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]!['error']), /\S/);
    assert.equal(link.status().state, 'unreachable');
    const tracker = await startTracker(port);
    await waitFor(async () => link.status().state === 'reachable', 20_000, 'the tracker again');
    assert.equal(
      (await clientFor(url, crypto.ed25519GenerateKeyPair()).discover()).records.length,
      1,
    );
    await link.stop();
    await tracker.close();
  });

  test('a registration refused with a 4xx is a sentence with the status, retried, never thrown', async () => {
    const tracker = await startTracker();
    const me = crypto.ed25519GenerateKeyPair();
    const { logger, lines } = captureLogger();
    const link = new TrackerLink({
      client: clientFor(tracker.url, me),
      ownRecord: () => recordOf(me, false, []), // a silent record: the tracker refuses it
      onRecords: () => undefined,
      onObservedAddress: () => undefined,
      logger,
    });
    link.start();
    await waitFor(async () => link.status().state === 'unreachable', 10_000, 'the refusal');
    assert.match(link.status().detail!, /^it answered HTTP 4\d\d: /);
    await waitFor(
      async () => lines.filter((line) => line['msg'] === 'tracker round failed').length >= 2,
      15_000,
      'a retry',
    );
    assert.equal(
      lines.filter((line) => String(line['msg']).startsWith('tracker unreachable')).length,
      1,
    );
    await link.stop();
    await tracker.close();
  });

  test('backoff doubles from 1 s to at most 5 minutes; failures read as sentences', () => {
    assert.deepEqual(
      [1, 2, 3, 9, 10, 100].map(backoffMs),
      [1_000, 2_000, 4_000, 256_000, 300_000, 300_000],
    );
    const refused = Object.assign(new Error('bad record'), { name: 'TrackerError', status: 400 });
    assert.equal(trackerProblem(refused), 'it answered HTTP 400: bad record');
    const down = Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    assert.equal(trackerProblem(down), 'fetch failed (ECONNREFUSED)');
  });
});
