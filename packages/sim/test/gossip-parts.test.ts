/**
 * The gossip simulation's parts that stand without an engine: the coverage arithmetic, node
 * addresses, the IP-sharing invariant (fed real signed records and frames) and the
 * verification memo (against OpenSSL's own answers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildPeerRecord,
  encodeGossip,
  GossipCode,
  toHex,
  type CryptoProvider,
  type GossipPeerSnapshot,
  type KeyPair,
} from '@peapod/core';
import { IpSharingInvariant } from '../src/gossip-ip-invariant.js';
import { gossipSimAddress, gossipSimIndex } from '../src/gossip-network.js';
import { coverageRounds, summarizeKind, type SpreadResult } from '../src/gossip-spread.js';
import { withVerifyMemo } from '../src/gossip-verify-memo.js';
import { createSeededCryptoProvider } from '../src/seeded-crypto.js';

const crypto: CryptoProvider = createSeededCryptoProvider(7);
const WALL = 1_800_000_000_000;

function record(identity: KeyPair, broadcast: boolean, address: string): Uint8Array {
  return buildPeerRecord(crypto, identity, {
    issuedAtMs: WALL,
    broadcast,
    bootstrap: false,
    leaving: false,
    capabilities: 0,
    listenPort: 7000,
    deviceName: 'n',
    addresses: broadcast ? [address] : [],
  });
}

test('coverageRounds: the least hop count covering 99.9% of the population, or undefined', () => {
  const hops = Array.from({ length: 1000 }, (_, i) => (i < 998 ? 1 + (i % 10) : 30));
  // 999 of 1000 needed: 998 within 10 hops, the 999th at 30.
  assert.equal(coverageRounds(hops, 1000), 30);
  assert.equal(coverageRounds(hops.slice(0, 999), 1000), 30);
  assert.equal(coverageRounds(hops.slice(0, 998), 1000), undefined);
  assert.equal(coverageRounds([0, 1, 1, 2], 4), 2);
  assert.equal(coverageRounds([], 0), undefined);
  // Members beyond the 99.9th percentile do not count against the rounds.
  const many = [...Array.from({ length: 9990 }, () => 5), ...Array.from({ length: 10 }, () => 20)];
  assert.equal(coverageRounds(many, 10_000), 5);
});

test('summarizeKind: worst rounds over origins, undefined when one origin missed the target', () => {
  const base: SpreadResult = {
    kind: 'peer-update',
    origin: 1,
    population: 100,
    covered: 100,
    rounds: 7,
    lastHop: 9,
    joinedNotLinked: 0,
    sends: 300,
    messagesPerNode: 3,
  };
  const good = summarizeKind(
    'peer-update',
    [base, { ...base, rounds: 9, messagesPerNode: 3.5 }],
    0,
  );
  assert.equal(good.roundsWorst, 9);
  assert.equal(good.messagesPerNodeMax, 3.5);
  assert.equal(good.messagesPerNodeMean, 3.25);
  const bad = summarizeKind('peer-update', [base, { ...base, rounds: undefined, covered: 90 }], 1);
  assert.equal(bad.roundsWorst, undefined);
  assert.equal(bad.coverageMin, 0.9);
  assert.equal(bad.unsent, 1);
});

test('node addresses: every index maps to a 10.x.y.z address and back, other strings to none', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: (1 << 24) - 1 }), (index) => {
      assert.equal(gossipSimIndex(gossipSimAddress(index)), index);
    }),
  );
  for (const other of ['', '10.0.0', '10.0.0.256', '11.0.0.1', 'example.org', '10.0.0.1 ']) {
    assert.equal(gossipSimIndex(other), undefined, other);
  }
});

test('IP invariant: a broadcasting record is clean; a silent node signing its address is a violation', () => {
  const loud = crypto.ed25519GenerateKeyPair();
  const quiet = crypto.ed25519GenerateKeyPair();
  const invariant = new IpSharingInvariant(crypto);
  invariant.addSilent('10.0.0.2', quiet.publicKey, crypto.sha256(quiet.publicKey));
  const learned = (bytes: Uint8Array) =>
    ({
      type: 'gossip:peer',
      change: 'learned',
      deviceId: new Uint8Array(32),
      source: 'gossip',
      record: bytes,
    }) as const;
  invariant.onEvent(5, learned(record(loud, true, '10.0.0.1')), 1);
  invariant.onEvent(5, learned(record(quiet, false, '10.0.0.2')), 1);
  assert.equal(invariant.ok, true);
  // The silent node's engine (wrongly) signs a broadcasting record with its address.
  invariant.onEvent(5, learned(record(quiet, true, '10.0.0.2')), 2);
  assert.equal(invariant.ok, false);
  assert.equal(invariant.violations[0]?.where, 'table-event');
  assert.match(invariant.violations[0]!.detail, /silent address 10\.0\.0\.2/);
  // A second, identical event is a violation again (clean verdicts only are remembered).
  const count = invariant.violationCount;
  invariant.onEvent(6, learned(record(quiet, true, '10.0.0.2')), 3);
  assert.ok(invariant.violationCount > count);
});

test('IP invariant: a sent announcement carrying a silent address and a dial to one are violations', () => {
  const quiet = crypto.ed25519GenerateKeyPair();
  const loud = crypto.ed25519GenerateKeyPair();
  const invariant = new IpSharingInvariant(crypto);
  invariant.addSilent('10.0.0.9', quiet.publicKey, crypto.sha256(quiet.publicKey));
  const announce = (identity: KeyPair, bytes: Uint8Array, ttl: number) =>
    encodeGossip(crypto, identity, {
      code: GossipCode.peerAnnouncement,
      ttl,
      initialTtl: 32,
      messageId: new Uint8Array(16).fill(ttl),
      timestampMs: WALL,
      record: bytes,
    });
  invariant.onSend(1, announce(loud, record(loud, true, '10.0.0.1'), 32), 1);
  invariant.onSend(1, announce(quiet, record(quiet, false, '10.0.0.9'), 31), 1);
  invariant.onDial(1, '10.0.0.1', 1);
  assert.equal(invariant.ok, true);
  invariant.onSend(2, announce(quiet, record(quiet, true, '10.0.0.9'), 30), 2);
  assert.equal(invariant.violations[0]?.where, 'message');
  invariant.onDial(3, '10.0.0.9', 3);
  assert.equal(invariant.violations.at(-1)?.where, 'dial');
  const mangled = announce(loud, record(loud, true, '10.0.0.1'), 29);
  mangled.body[60] = 0xff; // breaks the layout: a frame that cannot be checked is a violation
  const before = invariant.violationCount;
  invariant.onSend(4, mangled, 4);
  assert.equal(invariant.violationCount, before + 1);
});

test('IP invariant: a swept table listing a silent address, or a silent peer as broadcasting, fails', () => {
  const quiet = crypto.ed25519GenerateKeyPair();
  const deviceId = crypto.sha256(quiet.publicKey);
  const invariant = new IpSharingInvariant(crypto);
  invariant.addSilent('10.0.0.3', quiet.publicKey, deviceId);
  const entry: GossipPeerSnapshot = {
    deviceId,
    deviceIdHex: toHex(deviceId),
    deviceName: 'q',
    source: 'link',
    broadcast: false,
    bootstrap: false,
    addresses: [],
    listenPort: 7000,
    lastHeardMs: 0,
    score: 0,
    contents: 0,
    linked: true,
    record: record(quiet, false, ''),
  };
  invariant.sweep(1, [entry], 0);
  assert.equal(invariant.ok, true);
  invariant.sweep(1, [{ ...entry, addresses: ['10.0.0.3'] }], 0);
  assert.equal(invariant.ok, false);
  const fresh = new IpSharingInvariant(crypto);
  fresh.addSilent('10.0.0.3', quiet.publicKey, deviceId);
  fresh.sweep(1, [{ ...entry, broadcast: true, record: undefined }], 0);
  assert.match(fresh.violations[0]!.detail, /as broadcasting/);
});

test('verify memo: gives OpenSSL answer for every key/message/signature, altered bytes included', () => {
  const stats = { verified: 0, remembered: 0 };
  const memo = withVerifyMemo(crypto, stats);
  const identity = crypto.ed25519GenerateKeyPair();
  const other = crypto.ed25519GenerateKeyPair();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 80 }),
      fc.nat(),
      fc.constantFrom('message', 'signature', 'key', 'none'),
      (message, at, what) => {
        const signature = crypto.ed25519Sign(identity.secretKey, message);
        assert.equal(memo.ed25519Verify(identity.publicKey, message, signature), true);
        assert.equal(
          memo.ed25519Verify(identity.publicKey, message.slice(), signature.slice()),
          true,
        );
        const m = message.slice();
        const s = signature.slice();
        let key = identity.publicKey;
        if (what === 'message' && m.length > 0) m[at % m.length]! ^= 1;
        if (what === 'signature') s[at % 64]! ^= 1 << (at % 8);
        if (what === 'key') key = other.publicKey;
        assert.equal(memo.ed25519Verify(key, m, s), crypto.ed25519Verify(key, m, s));
      },
    ),
    { numRuns: 60 },
  );
  assert.ok(stats.remembered >= 60, 'identical repeats are answered from memory');
});

test('verify memo: stays correct after its memory fills and empties', () => {
  const stats = { verified: 0, remembered: 0 };
  const memo = withVerifyMemo(crypto, stats, 3);
  const identity = crypto.ed25519GenerateKeyPair();
  const messages = Array.from({ length: 10 }, (_, i) => Uint8Array.of(i));
  const signatures = messages.map((m) => crypto.ed25519Sign(identity.secretKey, m));
  for (let round = 0; round < 3; round++) {
    messages.forEach((m, i) => {
      assert.equal(memo.ed25519Verify(identity.publicKey, m, signatures[i]!), true);
      assert.equal(memo.ed25519Verify(identity.publicKey, m, signatures[(i + 1) % 10]!), false);
    });
  }
});
