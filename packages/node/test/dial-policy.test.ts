/**
 * The address policy on learnt stranger dials (dial-policy.ts): a self-signed record that
 * points at loopback, a private host or a victim must not make this device connect there.
 * Unit tests of `StrangerDialPolicy` (classification, `--peer` and pod exemptions, the
 * per-address cap and its refund, DNS names judged on what they resolve to, no throw on any
 * string), then the attack on real sockets: a NodeHost fed a record aimed at a loopback
 * listener never connects to it unless `--allow-private-peers` is on.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildPeerRecord, Capability, type GossipSelf } from '@peapod/core';
import { StrangerDialPolicy } from '../src/dial-policy.js';
import { NodeHost, type DialFailedEvent } from '../src/node-host.js';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';

const crypto = createNodeCryptoProvider();
const stranger = (address: string, port = 9000) => ({ address, port, trust: 'stranger' as const });

test('learnt stranger addresses that are loopback, private, link-local or CGNAT are refused; public ones allowed', () => {
  const policy = new StrangerDialPolicy({ allowPrivate: false, userGiven: [] });
  for (const address of [
    '127.0.0.1',
    '10.1.2.3',
    '192.168.0.7',
    '169.254.169.254',
    '100.64.0.1',
    '::1',
    'fd00::1',
    '::ffff:10.0.0.1',
    '0.0.0.0',
  ]) {
    const verdict = policy.check(stranger(address));
    assert.ok(verdict.refused !== undefined, `${address} refused`);
    assert.match(verdict.refused, /must be public/);
  }
  assert.equal(policy.check(stranger('93.184.215.14')).refused, undefined);
  assert.equal(policy.check(stranger('2606:2800:21f:cb07::1')).refused, undefined);
  assert.equal(policy.refusedCount, 9);
});

test('pod dials and the --peer addresses the user gave are dialled as given', () => {
  const policy = new StrangerDialPolicy({
    allowPrivate: false,
    userGiven: [{ host: '127.0.0.1', port: 7000 }],
  });
  assert.equal(policy.check(stranger('127.0.0.1', 7000)).refused, undefined);
  assert.notEqual(policy.check(stranger('127.0.0.1', 7001)).refused, undefined);
  assert.equal(
    policy.check({ address: '192.168.1.5', port: 9000, trust: 'pod' }).refused,
    undefined,
  );
});

test('--allow-private-peers lifts the address rule (and private addresses are not capped)', () => {
  const policy = new StrangerDialPolicy({ allowPrivate: true, userGiven: [] });
  for (let i = 0; i < 10; i++)
    assert.equal(policy.check(stranger('127.0.0.1', 9000 + i)).refused, undefined);
});

test('one public IP is dialled at most 2 times per 10 minutes whatever the ports; a link that came up refunds its dial', () => {
  let now = 0;
  const policy = new StrangerDialPolicy({ allowPrivate: false, userGiven: [], now: () => now });
  const ip = '93.184.215.14';
  assert.equal(policy.check(stranger(ip, 1)).refused, undefined);
  assert.equal(policy.check(stranger(ip, 2)).refused, undefined);
  assert.match(policy.check(stranger(ip, 3)).refused ?? '', /per-address cap/);
  assert.match(
    policy.check(stranger(`::ffff:${ip}`, 4)).refused ?? '',
    /per-address cap/,
    'mapped form is the same IP',
  );
  assert.equal(
    policy.check(stranger('93.184.215.15', 1)).refused,
    undefined,
    'another IP is not affected',
  );
  policy.linked(`${ip}:1`);
  assert.equal(policy.check(stranger(ip, 5)).refused, undefined, 'refunded by a link that came up');
  assert.notEqual(policy.check(stranger(ip, 6)).refused, undefined);
  now += 10 * 60_000;
  assert.equal(policy.check(stranger(ip, 7)).refused, undefined, 'the window passed');
});

test('a DNS name is judged on the addresses it resolves to', async () => {
  const resolved = (addresses: string[]) =>
    ((
      _host: string,
      _options: unknown,
      callback: (e: null, a: { address: string; family: number }[]) => void,
    ) =>
      callback(
        null,
        addresses.map((address) => ({ address, family: 4 })),
      )) as never;
  const lookupOf = (addresses: string[]) => {
    const policy = new StrangerDialPolicy({
      allowPrivate: false,
      userGiven: [],
      resolve: resolved(addresses),
    });
    const verdict = policy.check(stranger('peer.example'));
    assert.equal(verdict.refused, undefined);
    assert.ok(verdict.lookup !== undefined);
    return new Promise<{ error: Error | null; address: unknown }>((resolve) =>
      verdict.lookup!('peer.example', { family: 0 }, (error, address) =>
        resolve({ error, address }),
      ),
    );
  };
  const refused = await lookupOf(['127.0.0.1', '10.0.0.1']);
  assert.match(refused.error?.message ?? '', /loopback/);
  const allowed = await lookupOf(['10.0.0.1', '93.184.215.14']);
  assert.equal(allowed.error, null);
  assert.equal(allowed.address, '93.184.215.14', 'the first allowed address is connected to');
});

test('check never throws, whatever the address string (fast-check)', () => {
  const policy = new StrangerDialPolicy({
    allowPrivate: false,
    userGiven: [],
    resolve: (() => undefined) as never,
  });
  fc.assert(
    fc.property(
      fc.string({ maxLength: 80 }),
      fc.integer({ min: 0, max: 65535 }),
      (address, port) => {
        policy.check(stranger(address, port));
        policy.linked(address);
      },
    ),
  );
});

function gossipSelf(): GossipSelf {
  return {
    broadcast: false,
    bootstrap: false,
    addresses: [],
    listenPort: 0,
    deviceName: 'a',
    capabilities: Capability.serveChunks,
  };
}

/** A host fed one signed record whose address is the loopback "victim" listener. */
async function aimAtVictim(allowPrivate: boolean) {
  const victim = createServer((socket: Socket) => socket.destroy());
  victim.listen(0, '127.0.0.1');
  await once(victim, 'listening');
  const victimPort = (victim.address() as { port: number }).port;
  const policy = new StrangerDialPolicy({ allowPrivate, userGiven: [] });
  const host = new NodeHost({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    podSecret: new Uint8Array(32).fill(1),
    deviceName: 'a',
    gossip: { self: gossipSelf() },
    dialPolicy: (dial) => policy.check(dial),
  });
  const attacker = crypto.ed25519GenerateKeyPair();
  const record = buildPeerRecord(crypto, attacker, {
    issuedAtMs: Date.now(),
    broadcast: true,
    bootstrap: true,
    leaving: false,
    capabilities: Capability.serveChunks | Capability.gossip,
    listenPort: victimPort,
    deviceName: 'victim',
    addresses: ['127.0.0.1'],
  });
  const outcome = Promise.race([
    once(victim, 'connection').then(() => 'connected' as const),
    once(host, 'dial:failed').then(([event]) => event as DialFailedEvent),
  ]);
  host.input({
    type: 'gossip-records',
    nowMs: performance.now(),
    wallClockMs: Date.now(),
    records: [record],
    source: 'tracker',
  });
  try {
    return { outcome: await outcome, policy };
  } finally {
    await host.close();
    victim.close();
  }
}

test('attack: a record aimed at a loopback service makes the host refuse the dial; nothing connects to it', async () => {
  const { outcome, policy } = await aimAtVictim(false);
  assert.notEqual(outcome, 'connected');
  assert.match((outcome as DialFailedEvent).detail, /127\.0\.0\.1 is a loopback address/);
  assert.equal(policy.refusedCount, 1);
});

test('with --allow-private-peers the same record is dialled (tests and LANs)', async () => {
  const { outcome } = await aimAtVictim(true);
  assert.equal(outcome, 'connected');
});
