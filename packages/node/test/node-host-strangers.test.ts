/**
 * Stranger links on real sockets (node-host.ts): two hosts of different pods with gossip on
 * link over loopback TCP when one dials the other by address (`dial-stranger`: the core's
 * `connect` says trust 'stranger' and the link runs Noise XX), and gossip flows over it with
 * the host's wall clock (`Date.now`) on every `bytes-received` and `timer-fired`: a PEER_UPDATE
 * one signs is accepted by the other (the +-30 s clock check passes). Without gossip, the same
 * dial is refused by the listener (suiteUnsupported), as before.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import {
  Capability,
  ReasonCode,
  deriveDeviceId,
  toHex,
  type CoreEvent,
  type GossipSelf,
} from '@peapod/core';
import { NodeHost } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';

const crypto = createNodeCryptoProvider();

function self(broadcast: boolean): GossipSelf {
  return {
    broadcast,
    bootstrap: false,
    addresses: broadcast ? ['127.0.0.1'] : [],
    listenPort: 9000,
    deviceName: 's',
    capabilities: Capability.serveChunks,
  };
}

function device(pod: number, gossip: boolean): { host: NodeHost; deviceId: Uint8Array } {
  const identity = crypto.ed25519GenerateKeyPair();
  const host = new NodeHost({
    crypto,
    identity,
    podSecret: new Uint8Array(32).fill(pod),
    deviceName: `pod-${pod}`,
    ...(gossip ? { gossip: { self: self(false) } } : {}),
  });
  return { host, deviceId: deriveDeviceId(crypto, identity.publicKey) };
}

type Connect = Extract<CoreEvent, { type: 'peer:connect' }>;
type Accepted = Extract<CoreEvent, { type: 'gossip:accepted' }>;

test('hosts of different pods with gossip on link as strangers over TCP and accept each other’s signed gossip', async () => {
  const [a, b] = [device(1, true), device(2, true)];
  try {
    const { port } = await b.host.listen(0);
    const connected = Promise.all([once(a.host, 'peer:connect'), once(b.host, 'peer:connect')]);
    a.host.input({ type: 'dial-stranger', nowMs: performance.now(), address: '127.0.0.1', port });
    const [[atA], [atB]] = (await connected) as [[Connect], [Connect]];
    assert.equal(atA.remote.trust, 'stranger');
    assert.equal(atB.remote.trust, 'stranger');
    assert.equal(toHex(atA.remote.deviceId), toHex(b.deviceId));
    const heard = new Promise<Accepted>((resolve) => {
      b.host.on('gossip:accepted', (event: Accepted) => {
        if (toHex(event.originDeviceId) === toHex(a.deviceId)) resolve(event);
      });
    });
    a.host.input({
      type: 'gossip-self',
      nowMs: performance.now(),
      wallClockMs: Date.now(),
      self: self(true),
    });
    const event = await heard;
    assert.equal(event.hops, 1);
    assert.equal(a.host.core.peers()[0]?.trust, 'stranger');
  } finally {
    await Promise.all([a.host.close(), b.host.close()]);
  }
});

test('a stranger dial to a host without gossip is refused by its listener (suiteUnsupported)', async () => {
  const [a, b] = [device(3, true), device(4, false)];
  try {
    const { port } = await b.host.listen(0);
    const refused = once(b.host, 'peer:disconnect');
    a.host.input({ type: 'dial-stranger', nowMs: performance.now(), address: '127.0.0.1', port });
    const [event] = (await refused) as [Extract<CoreEvent, { type: 'peer:disconnect' }>];
    assert.equal(event.reason, ReasonCode.suiteUnsupported);
    assert.equal(b.host.core.peers().length, 0, 'the listener recorded nobody');
  } finally {
    await Promise.all([a.host.close(), b.host.close()]);
  }
});
