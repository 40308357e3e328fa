/**
 * Dialing through the core's peer table on real sockets (node-host.ts): a `peer-discovered`
 * fed to the device with the smaller Device ID becomes a `connect` the host carries out (one
 * link per pair: the other side, told the same, waits), and the table shows the link; a dial to
 * a port nobody listens on is reported as `dial-failed` (the `dial:failed` event and the
 * table's failure count), after which the table backs off instead of redialling at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { deriveDeviceId, toHex } from '@peapod/core';
import { NodeHost, type DialFailedEvent } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';

const crypto = createNodeCryptoProvider();
const secret = new Uint8Array(32).fill(7);

function member(): { host: NodeHost; deviceId: Uint8Array } {
  const identity = crypto.ed25519GenerateKeyPair();
  const host = new NodeHost({ crypto, identity, podSecret: secret, deviceName: 'm' });
  return { host, deviceId: deriveDeviceId(crypto, identity.publicKey) };
}

/** A loopback port nobody listens on (a server bound it, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('the smaller Device ID dials what it discovers; the table shows one link', async () => {
  const [a, b] = [member(), member()];
  const [dialer, listener] = toHex(a.deviceId) < toHex(b.deviceId) ? [a, b] : [b, a];
  try {
    const { port } = await listener.host.listen(0);
    await dialer.host.listen(0);
    const connected = Promise.all([
      once(dialer.host, 'peer:connect'),
      once(listener.host, 'peer:connect'),
    ]);
    const nowMs = performance.now();
    // Each learns of the other; only the smaller ID's host gets a `connect` from its core.
    listener.host.input({
      type: 'peer-discovered',
      nowMs,
      deviceId: dialer.deviceId,
      address: '127.0.0.1',
      port: 1,
      source: 'lan',
    });
    dialer.host.input({
      type: 'peer-discovered',
      nowMs,
      deviceId: listener.deviceId,
      address: '127.0.0.1',
      port,
      source: 'cache',
    });
    assert.equal(dialer.host.core.peers()[0]!.state, 'connecting');
    assert.equal(listener.host.core.peers()[0]!.state, 'discovered');
    await connected;
    const [row] = dialer.host.core.peers();
    assert.equal(row!.deviceIdHex, toHex(listener.deviceId));
    assert.equal(row!.state, 'connected');
    assert.equal(row!.direction, 'outbound');
    assert.equal(row!.source, 'cache');
    assert.equal(row!.name, 'm');
    assert.equal(listener.host.core.peers()[0]!.direction, 'inbound');
    assert.equal(dialer.host.core.openLinkCount, 1);
    assert.equal(listener.host.core.openLinkCount, 1);
  } finally {
    await Promise.all([a.host.close(), b.host.close()]);
  }
});

test('a dial nobody answers is dial-failed: counted, and not redialled at once', async () => {
  const { host, deviceId } = member();
  // A Device ID above any other: this host is the one that dials it.
  const peer = new Uint8Array(32).fill(0xff);
  assert.ok(toHex(deviceId) < toHex(peer));
  try {
    const port = await closedPort();
    const failed = once(host, 'dial:failed') as Promise<[DialFailedEvent]>;
    const discovered = {
      type: 'peer-discovered',
      deviceId: peer,
      address: '127.0.0.1',
      port,
      source: 'lan',
    } as const;
    host.input({ ...discovered, nowMs: performance.now() });
    assert.equal(host.core.peers()[0]!.state, 'connecting');
    const [event] = await failed;
    assert.equal(event.port, port);
    assert.match(event.detail, /ECONNREFUSED/);
    const [row] = host.core.peers();
    assert.equal(row!.state, 'gone');
    assert.equal(row!.failures, 1);
    // The next beacon within the backoff does not dial (the table decides synchronously).
    host.input({ ...discovered, nowMs: performance.now() });
    assert.equal(host.core.peers()[0]!.state, 'discovered');
  } finally {
    await host.close();
  }
});
