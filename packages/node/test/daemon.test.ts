/**
 * The daemon end to end, with real processes, real TCP links, real multicast on 127.0.0.1 and a
 * real HTTP origin (dev-origin.ts) that limits each source address like a separate internet
 * link. Figures (discovery latency) are printed, never asserted: the machines are shared.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatDeviceId, type BeaconKind } from '@peapod/core';
import { getPeers } from '../src/api-client.js';
import { startDevOrigin, type DevOrigin } from '../src/dev-origin.js';
import { LanDiscovery, type DiscoveredPeer } from '../src/discovery.js';
import { waitFor } from '../src/local-pod.js';
import { NodeHost } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { createPod } from '../src/pod.js';
import { summaryOf } from './support/get-summary.js';
import { PodFixture } from './support/pod-fixture.js';

const MiB = 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

describe('a pod of 4 daemons', () => {
  let origin: DevOrigin;
  let pod: PodFixture;
  const size = 48 * MiB;

  before(async () => {
    // 8 MB/s per source address: a 48 MiB download takes a few seconds, long enough to kill a
    // helper in the middle of it.
    origin = await startDevOrigin({
      host: '127.0.0.1',
      port: 0,
      rateBytesPerSec: 8e6,
      objects: [{ name: 'object.bin', sizeBytes: size, seed: 7 }],
    });
    pod = await PodFixture.start({ daemons: 4 });
    // Every test below needs the links up; waiting here keeps each test independent of the
    // others' order.
    const started = performance.now();
    for (let i = 0; i < 4; i++) await pod.connected(i, 3);
    console.log(
      `discovery + handshake: all 4 daemons connected ${(performance.now() - started).toFixed(0)} ms after the last one started`,
    );
  });
  after(async () => {
    await pod?.stop();
    await origin?.close();
  });

  test('discover each other over multicast and connect', async () => {
    const { peers } = await getPeers(pod.daemons[0]!.api);
    assert.deepEqual(peers.map((p) => p.name).sort(), ['device2', 'device3', 'device4']);
  });

  test('a pooled `peapod get` is byte-exact and uses the helpers', async () => {
    const output = join(pod.root, 'pooled.bin');
    const result = await pod.get(0, [`${origin.url}/object.bin`, '-o', output, '--json']);
    assert.equal(result.status, 0, result.stderr + result.stdout.toString());
    const summary = summaryOf(result);
    assert.equal(summary.ok, true);
    assert.equal(summary.pooled, true);
    assert.equal(await sha256File(output), origin.sha256('object.bin'));
    assert.equal(summary.sha256, origin.sha256('object.bin'));
    assert.ok(
      summary.verified.some((name) => name.includes('Repr-Digest')),
      summary.verified.join(),
    );
    const helpers = Object.keys(summary.bySource).filter((name) => name !== 'self');
    assert.ok(helpers.length >= 1, `no helper contributed: ${JSON.stringify(summary.bySource)}`);
  });

  test('`-o -` streams the object to stdout in order', async () => {
    const result = await pod.get(1, [`${origin.url}/object.bin`, '-o', '-', '-q']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.length, size);
    assert.equal(
      createHash('sha256').update(result.stdout).digest('hex'),
      origin.sha256('object.bin'),
    );
  });

  test('kill -9 of a helper mid-download: the download still completes byte-exact', async () => {
    const output = join(pod.root, 'killed.bin');
    const job = pod.get(0, [`${origin.url}/object.bin`, '-o', output, '--json']);
    await waitFor(
      async () =>
        ((await stat(`${output}.peapod-part`).catch(() => undefined))?.size ?? 0) > 8 * MiB,
      30_000,
      'the download to pass 8 MiB',
    );
    pod.daemons[3]!.child.kill('SIGKILL');
    const result = await job;
    assert.equal(result.status, 0, result.stderr + result.stdout.toString());
    assert.equal(await sha256File(output), origin.sha256('object.bin'));
  });
});

describe('a daemon that corrupts what it fetches for peers', () => {
  test('is banned, and the download completes byte-exact', async () => {
    const origin = await startDevOrigin({
      host: '127.0.0.1',
      port: 0,
      rateBytesPerSec: 8e6,
      objects: [{ name: 'object.bin', sizeBytes: 32 * MiB, seed: 9 }],
    });
    const pod = await PodFixture.start({ daemons: 3, flags: { 2: ['--test-corrupt-for-peers'] } });
    try {
      await pod.connected(0, 2);
      const output = join(pod.root, 'out.bin');
      const result = await pod.get(0, [`${origin.url}/object.bin`, '-o', output, '--json']);
      assert.equal(result.status, 0, result.stderr + result.stdout.toString());
      assert.equal(await sha256File(output), origin.sha256('object.bin'));
      await waitFor(
        async () => /peer banned/.test(pod.daemons[0]!.log()),
        5000,
        'the ban log line',
      );
    } finally {
      await pod.stop();
      await origin.close();
    }
  });
});

/**
 * A `LanDiscovery` of the test's own on a pod's discovery port: it records the beacons of its
 * pod it hears. Its Device ID is all zeros, the smallest, so no daemon dials it (the smaller ID
 * dials) and it never dials anyone.
 */
class Witness {
  private readonly heard: DiscoveredPeer[] = [];
  private readonly waiters: (() => void)[] = [];

  private constructor(private readonly discovery: LanDiscovery) {
    discovery.on('peer', (peer) => {
      this.heard.push(peer);
      for (const waiter of this.waiters.splice(0)) waiter();
    });
    discovery.on('error', (error) => assert.fail(`witness: ${error.message}`));
  }

  static async start(podSecret: Uint8Array, port: number): Promise<Witness> {
    const discovery = new LanDiscovery({
      podSecret,
      deviceId: new Uint8Array(32),
      peerPort: 9,
      port,
    });
    const witness = new Witness(discovery);
    await discovery.start();
    return witness;
  }

  /** Resolves once a beacon of `kind` from each of `deviceIds` (formatted) was heard. */
  async hears(deviceIds: readonly string[], kind: BeaconKind, fromIndex = 0): Promise<void> {
    const missing = () =>
      deviceIds.filter(
        (id) =>
          !this.heard
            .slice(fromIndex)
            .some((peer) => peer.kind === kind && formatDeviceId(peer.deviceId) === id),
      );
    while (missing().length > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Sends a query and resolves once each of `deviceIds` replied to it. */
  async queryAndHear(deviceIds: readonly string[]): Promise<void> {
    const from = this.heard.length;
    this.discovery.query();
    await this.hears(deviceIds, 'reply', from);
  }

  close(): Promise<void> {
    return this.discovery.close();
  }
}

describe('outsiders', () => {
  test("a daemon with another pod's secret neither connects nor reads beacons", async () => {
    const pod = await PodFixture.start({ daemons: 2 });
    const outsiderSecret = createPod();
    // Witnesses on the pod's discovery port, one per secret, started before the outsider.
    const podWitness = await Witness.start(pod.secret, pod.discoveryPort);
    const outsiderWitness = await Witness.start(outsiderSecret, pod.discoveryPort);
    let outsider: PodFixture | undefined;
    try {
      await pod.connected(0, 1);
      outsider = await PodFixture.start({
        daemons: 1,
        secret: outsiderSecret,
        discoveryPort: pod.discoveryPort,
      });
      const podIds = await Promise.all(
        pod.daemons.map(async (daemon) => (await getPeers(daemon.api)).deviceId),
      );
      const outsiderId = (await getPeers(outsider.daemons[0]!.api)).deviceId;
      // Multicast loopback queues a datagram at every member socket when it is sent, and each
      // socket is read in order. So: the outsider's start-up beacons were on the wire...
      await outsiderWitness.hears([outsiderId], 'announce');
      // ...before this query, so the pod daemons' replies show they had read (and dropped)
      // them; and those replies were on the wire before the next query, whose reply shows
      // that the outsider had read (and dropped) them. No sleep: each step is an event.
      await podWitness.queryAndHear(podIds);
      await outsiderWitness.queryAndHear([outsiderId]);
      const outsiderPeers = (await getPeers(outsider.daemons[0]!.api)).peers;
      assert.deepEqual(
        outsiderPeers.filter((peer) => podIds.includes(peer.deviceId)),
        [],
        'the outsider knows a pod daemon',
      );
      const podPeers = (await getPeers(pod.daemons[0]!.api)).peers;
      assert.deepEqual(
        podPeers.filter((peer) => peer.deviceId === outsiderId),
        [],
        'a pod daemon knows the outsider',
      );
      assert.deepEqual(
        podPeers.filter((peer) => peer.state === 'connected').map((peer) => peer.deviceId),
        [podIds[1]],
      );
      // Dialing directly: the handshake fails (XXpsk3 with another PSK), no link comes up.
      const crypto = createNodeCryptoProvider();
      const host = new NodeHost({
        identity: crypto.ed25519GenerateKeyPair(),
        podSecret: createPod(),
      });
      const closed = new Promise<string>((resolve) =>
        host.on('peer:disconnect', (event) => resolve(event.detail)),
      );
      let connected = false;
      host.on('peer:connect', () => (connected = true));
      await host.dial(pod.daemons[0]!.peerPort);
      const detail = await closed;
      assert.equal(connected, false, detail);
      await host.close();
    } finally {
      await outsider?.stop();
      await podWitness.close();
      await outsiderWitness.close();
      await pod.stop();
    }
  });

  test('a raw TCP client sending garbage is disconnected; the daemon keeps serving', async () => {
    const pod = await PodFixture.start({ daemons: 2 });
    try {
      await pod.connected(0, 1);
      const socket = connect({ port: pod.daemons[0]!.peerPort, host: '127.0.0.1' });
      await new Promise((resolve) => socket.once('connect', resolve));
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.on('error', () => undefined);
      socket.resume(); // read what the daemon answers (an abort record), so 'close' can come
      socket.write(randomBytes(70_000));
      await closed;
      const { peers } = await getPeers(pod.daemons[0]!.api);
      assert.equal(peers.filter((p) => p.state === 'connected').length, 1);
    } finally {
      await pod.stop();
    }
  });
});
