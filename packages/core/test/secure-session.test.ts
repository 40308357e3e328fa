/**
 * SecureSession through a pair harness: two sessions joined in memory, `drive()` moving records
 * across until both are quiet (quinn's Pair). Covers every suite, psk and suite policy, identity
 * proofs and policy, hostile transport records, rekeying, API misuse, and (fast-check) arbitrary
 * bytes fed at three points of a session's life. Randomness comes from a seeded provider, so every
 * run replays; property failures print fast-check's seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { concatBytes, toHex, utf8Encode } from '../src/bytes.js';
import type { CryptoProvider, KeyPair } from '../src/crypto-provider.js';
import { deriveDeviceId } from '../src/identity.js';
import { NoiseHandshake } from '../src/noise/handshake-state.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import {
  NoiseSuite,
  SESSION_MAX_PLAINTEXT_BYTES,
  SecureSession,
  type InitiatorSessionOptions,
  type NoiseSuiteName,
  type ResponderSessionOptions,
  type SessionEvent,
} from '../src/secure-session.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

const crypto = deterministicCrypto(20_240_601);
const identityA = crypto.ed25519GenerateKeyPair();
const identityB = crypto.ed25519GenerateKeyPair();
const staticA = crypto.x25519GenerateKeyPair();
const staticB = crypto.x25519GenerateKeyPair();
const podSecret = new Uint8Array(32).fill(7);
const otherSecret = new Uint8Array(32).fill(8);
const EMPTY = new Uint8Array(0);
const allSuites = Object.values(NoiseSuite);
const isPsk = (suite: NoiseSuiteName): boolean => suite.includes('psk');

type Side = 'initiator' | 'responder';
const other = (side: Side): Side => (side === 'initiator' ? 'responder' : 'initiator');

type InitiatorExtras = Partial<Omit<InitiatorSessionOptions, 'role'>>;
type ResponderExtras = Partial<Omit<ResponderSessionOptions, 'role'>>;

/** Two sessions and an in-memory, ordered, reliable link between them. */
class SessionPair {
  readonly sessions: Record<Side, SecureSession>;
  /** Every event each side emitted, transmits included, in order. */
  readonly events: Record<Side, SessionEvent[]> = { initiator: [], responder: [] };
  /** Records waiting to be delivered to each side. */
  readonly inbox: Record<Side, Uint8Array[]> = { initiator: [], responder: [] };
  /** Rewrites (or, returning undefined, drops) records in flight. */
  tap: ((from: Side, record: Uint8Array) => Uint8Array | undefined) | undefined;

  constructor(
    initiator: InitiatorExtras = {},
    responder: ResponderExtras = {},
    providers: { initiator?: CryptoProvider; responder?: CryptoProvider } = {},
  ) {
    this.sessions = {
      initiator: new SecureSession({
        role: 'initiator',
        crypto: providers.initiator ?? crypto,
        identity: identityA,
        staticKeyPair: staticA,
        ...initiator,
      }),
      responder: new SecureSession({
        role: 'responder',
        crypto: providers.responder ?? crypto,
        identity: identityB,
        staticKeyPair: staticB,
        ...responder,
      }),
    };
  }

  /** Drains both sessions; transmits go through the tap into the other side's inbox. */
  pump(): void {
    for (const side of ['initiator', 'responder'] as const) {
      const session = this.sessions[side];
      for (let event = session.poll(); event !== undefined; event = session.poll()) {
        this.events[side].push(event);
        if (event.type !== 'transmit') continue;
        const record = this.tap === undefined ? event.record : this.tap(side, event.record);
        if (record !== undefined) this.inbox[other(side)].push(record);
      }
    }
  }

  /** Delivers records both ways until nothing is in flight. */
  drive(maxSteps = 100): void {
    for (let step = 0; step < maxSteps; step++) {
      this.pump();
      if (this.inbox.initiator.length === 0 && this.inbox.responder.length === 0) return;
      for (const side of ['initiator', 'responder'] as const) {
        for (const record of this.inbox[side].splice(0)) this.sessions[side].receiveRecord(record);
      }
    }
    assert.fail('the pair did not settle');
  }

  /** start() plus drive(): the whole handshake. */
  connect(): this {
    this.sessions.initiator.start();
    this.drive();
    return this;
  }

  /** Seals `plaintext` on `side` and returns the record without delivering it. */
  seal(side: Side, plaintext: Uint8Array): Uint8Array {
    this.sessions[side].send(plaintext);
    const event = this.sessions[side].poll();
    assert.ok(event?.type === 'transmit');
    assert.equal(this.sessions[side].poll(), undefined);
    return event.record;
  }

  /** Feeds one record to `side` and returns the events it produced. */
  feed(side: Side, record: Uint8Array): SessionEvent[] {
    this.sessions[side].receiveRecord(record);
    return drain(this.sessions[side]);
  }

  ofType<T extends SessionEvent['type']>(
    side: Side,
    type: T,
  ): Extract<SessionEvent, { type: T }>[] {
    return this.events[side].filter(
      (e): e is Extract<SessionEvent, { type: T }> => e.type === type,
    );
  }

  closedReason(side: Side): ReasonCode | undefined {
    const closed = this.ofType(side, 'closed');
    assert.ok(closed.length <= 1, 'at most one closed event');
    return closed[0]?.reason;
  }
}

function drain(session: SecureSession): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (let event = session.poll(); event !== undefined; event = session.poll()) out.push(event);
  return out;
}

function openPair(suite: NoiseSuiteName = 'Noise_XX_25519_ChaChaPoly_SHA256'): SessionPair {
  const psk = isPsk(suite) ? { psk: podSecret } : {};
  const pair = new SessionPair({ suite, ...psk }, { allowedSuites: allSuites, psk: podSecret });
  pair.connect();
  assert.equal(pair.sessions.initiator.state, 'open');
  assert.equal(pair.sessions.responder.state, 'open');
  return pair;
}

const text = (value: string): Uint8Array => utf8Encode(value);

/** SHA-256 of each suite's golden transcript (see the test that uses it). */
const GOLDEN_TRANSCRIPT_DIGESTS: Record<string, string> = {
  Noise_XX_25519_ChaChaPoly_SHA256:
    'b7d302829e0d968010e8ffd0cc16ba31c1b36529b7d6f3ac5755b3ebf635e983',
  Noise_XX_25519_AESGCM_SHA256: '3708260993b20195df35561594c2dc7f5a2e72cd49f394d08f3892fe0c304296',
  Noise_XXpsk3_25519_ChaChaPoly_SHA256:
    'f877c4de9a090bc9f04b1b9855208d1293f6f5e07e668f7aacd1211a0c437b3c',
  Noise_XXpsk3_25519_AESGCM_SHA256:
    'f2f9f677bfb3c544f1b7388c2dfbb84490c67ea1734020c58c2d76700aa642ef',
};

/**
 * The noble provider with its public-key operations memoised. Results are identical (the
 * operations are deterministic); with fixed keys, each property run repeats the same handshake,
 * and caching makes 10,000 runs affordable. Hashing and AEAD stay real.
 */
function memoised(provider: CryptoProvider): CryptoProvider {
  const cache = new Map<string, unknown>();
  const memo =
    <A extends Uint8Array[], R>(name: string, fn: (...args: A) => R) =>
    (...args: A): R => {
      const key = `${name}:${args.map(toHex).join(':')}`;
      if (!cache.has(key)) cache.set(key, fn(...args));
      return cache.get(key) as R;
    };
  return {
    ...provider,
    x25519: memo('x25519', provider.x25519),
    x25519PublicKey: memo('x25519PublicKey', provider.x25519PublicKey),
    ed25519Sign: memo('ed25519Sign', provider.ed25519Sign),
    ed25519Verify: memo('ed25519Verify', provider.ed25519Verify),
  };
}

const fastCrypto = memoised(deterministicCrypto(99));
const fixedEphemeral = {
  initiator: crypto.x25519GenerateKeyPair(),
  responder: crypto.x25519GenerateKeyPair(),
};

function fixedPair(suite: NoiseSuiteName): SessionPair {
  const psk = isPsk(suite) ? { psk: podSecret } : {};
  return new SessionPair(
    { suite, ephemeralKeyPair: fixedEphemeral.initiator, ...psk },
    { ephemeralKeyPair: fixedEphemeral.responder, allowedSuites: allSuites, psk: podSecret },
    { initiator: fastCrypto, responder: fastCrypto },
  );
}

/** Genuine records of one fixed-key handshake, to mutate: message 1, 2, 3, confirmation, data. */
const transcript = ((): Record<'m1' | 'm2' | 'm3' | 'confirm' | 'data', Uint8Array> => {
  const pair = fixedPair('Noise_XX_25519_ChaChaPoly_SHA256');
  const records: Uint8Array[] = [];
  pair.tap = (_from, record) => {
    records.push(record);
    return record;
  };
  pair.connect();
  pair.sessions.initiator.send(text('some application data'));
  pair.drive();
  const [m1, m2, m3, confirm, data] = records;
  assert.ok(m1 && m2 && m3 && confirm && data);
  return { m1, m2, m3, confirm, data };
})();

test('sealParts: the pieces join to the record send() makes; the remote opens it', () => {
  const viaSend = fixedPair('Noise_XX_25519_AESGCM_SHA256');
  const viaParts = fixedPair('Noise_XX_25519_AESGCM_SHA256');
  const sent: Uint8Array[] = [];
  viaSend.tap = (_from, record) => {
    sent.push(record);
    return record;
  };
  viaSend.connect();
  viaParts.connect();
  const parts = [text('header'), new Uint8Array(0), new Uint8Array(70_000 - 16 * 1024).fill(9)];
  viaSend.sessions.initiator.send(concatBytes(...parts));
  viaSend.drive();
  const pieces = viaParts.sessions.initiator.sealParts(parts);
  assert.equal(toHex(concatBytes(...pieces)), toHex(sent.at(-1)!));
  viaParts.sessions.responder.receiveRecord(concatBytes(...pieces));
  viaParts.drive();
  const messages = viaParts.ofType('responder', 'message');
  assert.equal(toHex(messages.at(-1)!.plaintext), toHex(concatBytes(...parts)));
  assert.throws(() => viaParts.sessions.initiator.sealParts([new Uint8Array(65_520)]), {
    code: 'PEAPOD_ERR_INVALID_ARGUMENT',
  });
  const closed = openPair();
  closed.sessions.initiator.close(ReasonCode.goingAway);
  assert.throws(() => closed.sessions.initiator.sealParts([text('late')]), {
    code: 'PEAPOD_ERR_INVALID_STATE',
  });
});

// --- handshake ---------------------------------------------------------------------------------

for (const suite of allSuites) {
  test(`${suite}: the handshake completes and each side learns the other's Device ID`, () => {
    const pair = openPair(suite);
    const [initiatorOpen] = pair.ofType('initiator', 'open');
    const [responderOpen] = pair.ofType('responder', 'open');
    assert.ok(initiatorOpen && responderOpen);
    assert.equal(initiatorOpen.suite, suite);
    assert.equal(responderOpen.suite, suite);
    assert.deepEqual(initiatorOpen.remote.deviceId, deriveDeviceId(crypto, identityB.publicKey));
    assert.deepEqual(responderOpen.remote.deviceId, deriveDeviceId(crypto, identityA.publicKey));
    assert.deepEqual(initiatorOpen.remote.publicKey, identityB.publicKey);
    assert.deepEqual(initiatorOpen.remote.staticKey, staticB.publicKey);
    assert.deepEqual(responderOpen.remote.staticKey, staticA.publicKey);
    const hash = pair.sessions.initiator.handshakeHash;
    assert.ok(hash !== undefined && hash.length === 32);
    assert.deepEqual(hash, pair.sessions.responder.handshakeHash);
    assert.deepEqual(pair.sessions.initiator.remote, initiatorOpen.remote);

    // Records flow both ways, in order, and arrive as sent.
    for (let i = 0; i < 5; i++) {
      pair.sessions.initiator.send(text(`to responder ${i}`));
      pair.sessions.responder.send(text(`to initiator ${i}`));
    }
    pair.drive();
    const received = (side: Side) =>
      pair.ofType(side, 'message').map((event) => new TextDecoder().decode(event.plaintext));
    assert.deepEqual(
      received('responder'),
      [0, 1, 2, 3, 4].map((i) => `to responder ${i}`),
    );
    assert.deepEqual(
      received('initiator'),
      [0, 1, 2, 3, 4].map((i) => `to initiator ${i}`),
    );
  });
}

test('the wire: a 2-byte header, XX message sizes, and the initiator opens only on confirmation', () => {
  const pair = new SessionPair({ suite: 'Noise_XX_25519_AESGCM_SHA256' });
  const { initiator, responder } = pair.sessions;
  assert.equal(initiator.state, 'handshaking');
  initiator.start();
  const [first] = drain(initiator);
  assert.ok(first?.type === 'transmit');
  assert.deepEqual([...first.record.subarray(0, 2)], [1, 2], 'version 1, suite 2');
  assert.equal(first.record.length, 2 + 32, 'header + e + empty payload');
  const [second] = pair.feed('responder', first.record);
  assert.ok(second?.type === 'transmit');
  assert.equal(second.record.length, 32 + 48 + 96 + 16, 'e + s + identity proof');
  const third = pair.feed('initiator', second.record);
  assert.deepEqual(
    third.map((e) => e.type),
    ['transmit'],
  );
  assert.equal(initiator.state, 'handshaking', 'not open before key confirmation');
  assert.equal(initiator.handshakeHash, undefined);
  const [message3] = third;
  assert.ok(message3?.type === 'transmit');
  assert.equal(message3.record.length, 48 + 96 + 16);
  const confirmation = pair.feed('responder', message3.record);
  assert.deepEqual(
    confirmation.map((e) => e.type),
    ['transmit', 'open'],
  );
  assert.equal(responder.state, 'open');
  const [confirm] = confirmation;
  assert.ok(confirm?.type === 'transmit');
  assert.equal(confirm.record.length, 16, 'an empty transport record');
  assert.deepEqual(
    pair.feed('initiator', confirm.record).map((e) => e.type),
    ['open'],
  );
  assert.equal(initiator.state, 'open');
});

test('with a psk, message 1 is authenticated (e keys the cipher) and carries a 16-byte tag', () => {
  const pair = new SessionPair({ psk: podSecret }, { psk: podSecret });
  pair.sessions.initiator.start();
  const [first] = drain(pair.sessions.initiator);
  assert.ok(first?.type === 'transmit');
  assert.deepEqual([...first.record.subarray(0, 2)], [1, 3]);
  assert.equal(first.record.length, 2 + 32 + 16);
});

test('a psk mismatch fails both sides with handshakeFailed, without an exception', () => {
  for (const suite of [
    'Noise_XXpsk3_25519_ChaChaPoly_SHA256',
    'Noise_XXpsk3_25519_AESGCM_SHA256',
  ] as const) {
    const pair = new SessionPair({ suite, psk: podSecret }, { psk: otherSecret });
    pair.connect();
    assert.equal(pair.closedReason('responder'), ReasonCode.handshakeFailed);
    assert.equal(pair.closedReason('initiator'), ReasonCode.handshakeFailed);
    assert.equal(pair.ofType('initiator', 'open').length, 0, 'the initiator never opened');
    assert.equal(pair.ofType('responder', 'open').length, 0);
  }
});

test('suite policy: psk offered to a plain responder and plain offered to a pod both fail', () => {
  const pskToPlain = new SessionPair({ psk: podSecret }, {}).connect();
  assert.equal(pskToPlain.closedReason('responder'), ReasonCode.suiteUnsupported);
  assert.equal(pskToPlain.closedReason('initiator'), ReasonCode.suiteUnsupported);
  const plainToPod = new SessionPair({}, { psk: podSecret }).connect();
  assert.equal(plainToPod.closedReason('responder'), ReasonCode.suiteUnsupported);
  assert.equal(plainToPod.closedReason('initiator'), ReasonCode.suiteUnsupported);
  const cipherNotAllowed = new SessionPair(
    { suite: 'Noise_XX_25519_AESGCM_SHA256' },
    { allowedSuites: ['Noise_XX_25519_ChaChaPoly_SHA256'] },
  ).connect();
  assert.equal(cipherNotAllowed.closedReason('responder'), ReasonCode.suiteUnsupported);
});

test('a bad header: unknown version is versionUnsupported, unknown suite is unsupported', () => {
  const cases: [Uint8Array, ReasonCode][] = [
    [Uint8Array.of(2, 1, ...new Uint8Array(32)), ReasonCode.versionUnsupported],
    [Uint8Array.of(1, 9, ...new Uint8Array(32)), ReasonCode.suiteUnsupported],
    [Uint8Array.of(1, 0, ...new Uint8Array(32)), ReasonCode.suiteUnsupported],
    [Uint8Array.of(1), ReasonCode.protocolError],
    [EMPTY, ReasonCode.protocolError],
    [Uint8Array.of(1, 1, ...new Uint8Array(31)), ReasonCode.protocolError],
    [Uint8Array.of(1, 1, ...new Uint8Array(33)), ReasonCode.protocolError], // a payload
  ];
  for (const [record, reason] of cases) {
    const pair = new SessionPair();
    const events = pair.feed('responder', record);
    assert.deepEqual(
      events.map((e) => e.type),
      ['transmit', 'closed'],
      `abort then closed for ${toHex(record)}`,
    );
    const [abort, closed] = events;
    assert.ok(abort?.type === 'transmit' && closed?.type === 'closed');
    assert.deepEqual([...abort.record], [0, reason]);
    assert.equal(closed.reason, reason, toHex(record));
  }
});

test('a header changed in flight (suite downgrade) fails the handshake: it is in the prologue', () => {
  const pair = new SessionPair(
    { suite: 'Noise_XX_25519_AESGCM_SHA256' },
    { allowedSuites: allSuites, psk: podSecret },
  );
  pair.tap = (from, record) =>
    from === 'initiator' && record[0] === 1 && record[1] === 2
      ? Uint8Array.of(1, 1, ...record.subarray(2))
      : record;
  pair.connect();
  assert.equal(pair.closedReason('initiator'), ReasonCode.handshakeFailed);
  assert.equal(pair.closedReason('responder'), ReasonCode.handshakeFailed);
});

test('a low-order ephemeral key fails the handshake', () => {
  const pair = new SessionPair();
  const events = pair.feed('responder', Uint8Array.of(1, 1, ...new Uint8Array(32)));
  const closed = events.find((e) => e.type === 'closed');
  assert.ok(closed?.type === 'closed');
  assert.equal(closed.reason, ReasonCode.handshakeFailed);
  assert.match(closed.detail, /low-order/);
});

test('golden transcripts: fixed keys give these exact wire bytes for every suite', () => {
  // Keys from fixed bytes (not from a PRNG), so only a change to the wire format, the Noise
  // layer or a provider can change these digests. A change here breaks compatibility with every
  // deployed peer: update docs/protocol.md and the wire version with it.
  const fixed = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);
  const x25519 = (fill: number): KeyPair => ({
    secretKey: fixed(fill),
    publicKey: crypto.x25519PublicKey(fixed(fill)),
  });
  const ed25519 = (fill: number): KeyPair => ({
    secretKey: fixed(fill),
    publicKey: crypto.ed25519PublicKey(fixed(fill)),
  });
  const digests: Record<string, string> = {};
  for (const suite of allSuites) {
    const psk = isPsk(suite) ? { psk: podSecret } : {};
    const pair = new SessionPair(
      {
        suite,
        identity: ed25519(1),
        staticKeyPair: x25519(2),
        ephemeralKeyPair: x25519(3),
        ...psk,
      },
      {
        identity: ed25519(4),
        staticKeyPair: x25519(5),
        ephemeralKeyPair: x25519(6),
        allowedSuites: allSuites,
        psk: podSecret,
      },
    );
    const transcript: Uint8Array[] = [];
    pair.tap = (_from, record) => {
      transcript.push(Uint8Array.of(record.length >> 8, record.length & 0xff), record);
      return record;
    };
    pair.connect();
    pair.sessions.initiator.send(text('ping'));
    pair.sessions.responder.send(text('pong'));
    pair.drive();
    assert.equal(transcript.length, 2 * 6);
    digests[suite] = toHex(crypto.sha256(concatBytes(...transcript)));
  }
  assert.deepEqual(digests, GOLDEN_TRANSCRIPT_DIGESTS);
});

// --- identity ----------------------------------------------------------------------------------

const prologueFor = (suiteId: number): Uint8Array =>
  concatBytes(utf8Encode('PeaPod/1'), Uint8Array.of(1, suiteId));
const identityContext = utf8Encode('PeaPod/1 identity');

test('a bad identity signature from the initiator: the responder closes with identityInvalid', () => {
  const pair = new SessionPair();
  const fake = new NoiseHandshake(crypto, {
    protocolName: NoiseSuite[1],
    role: 'initiator',
    prologue: prologueFor(1),
    staticKeyPair: staticA,
  });
  const message1 = fake.writeMessage(EMPTY);
  assert.ok(message1.ok);
  const [message2] = pair.feed('responder', concatBytes(Uint8Array.of(1, 1), message1.message));
  assert.ok(message2?.type === 'transmit');
  assert.ok(fake.readMessage(message2.record).ok);
  // A genuine signature by identity A, but over a hash from another handshake: a replayed proof.
  const replayed = crypto.ed25519Sign(
    identityA.secretKey,
    concatBytes(identityContext, new Uint8Array(32)),
  );
  const message3 = fake.writeMessage(concatBytes(identityA.publicKey, replayed));
  assert.ok(message3.ok);
  const events = pair.feed('responder', message3.message);
  assert.deepEqual(
    events.map((e) => e.type),
    ['transmit', 'closed'],
  );
  const [abort, closed] = events;
  assert.ok(abort?.type === 'transmit' && closed?.type === 'closed');
  assert.deepEqual([...abort.record], [0, ReasonCode.identityInvalid]);
  assert.equal(closed.reason, ReasonCode.identityInvalid);
});

test('a bad identity signature from the responder: the initiator closes with identityInvalid', () => {
  for (const corrupt of ['signature', 'length'] as const) {
    const pair = new SessionPair();
    pair.sessions.initiator.start();
    const [message1] = drain(pair.sessions.initiator);
    assert.ok(message1?.type === 'transmit');
    const fake = new NoiseHandshake(crypto, {
      protocolName: NoiseSuite[1],
      role: 'responder',
      prologue: prologueFor(1),
      staticKeyPair: staticB,
    });
    assert.ok(fake.readMessage(message1.record.subarray(2)).ok);
    const message2 = fake.writeMessage((hash) => {
      const signature = crypto.ed25519Sign(identityB.secretKey, concatBytes(identityContext, hash));
      if (corrupt === 'length')
        return concatBytes(identityB.publicKey, signature, Uint8Array.of(0));
      signature[10]! ^= 1;
      return concatBytes(identityB.publicKey, signature);
    });
    assert.ok(message2.ok);
    const events = pair.feed('initiator', message2.message);
    const closed = events.at(-1);
    assert.ok(closed?.type === 'closed');
    assert.equal(closed.reason, ReasonCode.identityInvalid, corrupt);
  }
});

test('a correct proof made by hand is accepted (the documented proof format)', () => {
  const pair = new SessionPair();
  const fake = new NoiseHandshake(crypto, {
    protocolName: NoiseSuite[2],
    role: 'initiator',
    prologue: prologueFor(2),
    staticKeyPair: staticA,
  });
  const message1 = fake.writeMessage(EMPTY);
  assert.ok(message1.ok);
  const [message2] = pair.feed('responder', concatBytes(Uint8Array.of(1, 2), message1.message));
  assert.ok(message2?.type === 'transmit');
  const read = fake.readMessage(message2.record);
  assert.ok(read.ok);
  assert.ok(
    crypto.ed25519Verify(
      read.payload.subarray(0, 32),
      concatBytes(identityContext, read.handshakeHashBeforePayload),
      read.payload.subarray(32),
    ),
    "the responder's proof signs 'PeaPod/1 identity' || h",
  );
  const message3 = fake.writeMessage((hash) =>
    concatBytes(
      identityA.publicKey,
      crypto.ed25519Sign(identityA.secretKey, concatBytes(identityContext, hash)),
    ),
  );
  assert.ok(message3.ok);
  assert.deepEqual(
    pair.feed('responder', message3.message).map((e) => e.type),
    ['transmit', 'open'],
  );
});

test('acceptRemote returning false closes both sides with identityRejected', () => {
  const seen: string[] = [];
  const byResponder = new SessionPair(
    {},
    {
      acceptRemote: (deviceId, publicKey) => {
        seen.push(toHex(deviceId), toHex(publicKey));
        return false;
      },
    },
  ).connect();
  assert.deepEqual(seen, [
    toHex(deriveDeviceId(crypto, identityA.publicKey)),
    toHex(identityA.publicKey),
  ]);
  assert.equal(byResponder.closedReason('responder'), ReasonCode.identityRejected);
  assert.equal(byResponder.closedReason('initiator'), ReasonCode.identityRejected);

  const byInitiator = new SessionPair({ acceptRemote: () => false }, {}).connect();
  assert.equal(byInitiator.closedReason('initiator'), ReasonCode.identityRejected);
  assert.equal(byInitiator.closedReason('responder'), ReasonCode.identityRejected);
});

test('expectedRemoteDeviceId admits exactly that device', () => {
  const idA = deriveDeviceId(crypto, identityA.publicKey);
  const idB = deriveDeviceId(crypto, identityB.publicKey);
  const good = new SessionPair(
    { expectedRemoteDeviceId: idB },
    { expectedRemoteDeviceId: idA },
  ).connect();
  assert.equal(good.sessions.initiator.state, 'open');
  const wrong = new SessionPair({ expectedRemoteDeviceId: idA }, {}).connect();
  assert.equal(wrong.closedReason('initiator'), ReasonCode.identityRejected);
});

test('close() during the handshake tells the remote; after open it sends nothing', () => {
  const pair = new SessionPair();
  pair.sessions.initiator.start();
  pair.pump();
  pair.sessions.responder.receiveRecord(pair.inbox.responder.shift()!);
  pair.sessions.responder.close(ReasonCode.goingAway);
  pair.drive();
  assert.equal(pair.closedReason('responder'), ReasonCode.goingAway);
  assert.equal(pair.closedReason('initiator'), ReasonCode.goingAway);

  const open = openPair();
  open.sessions.initiator.close(ReasonCode.normal);
  assert.deepEqual(
    drain(open.sessions.initiator).map((e) => e.type),
    ['closed'],
  );
  open.sessions.initiator.close(ReasonCode.normal); // idempotent
  assert.equal(open.sessions.initiator.poll(), undefined);
  assert.equal(open.sessions.initiator.state, 'closed');
});

test('a record before the initiator started is a protocol error', () => {
  const pair = new SessionPair();
  const events = pair.feed('initiator', new Uint8Array(40));
  assert.deepEqual(
    events.map((e) => e.type),
    ['closed'],
  );
  const closed = events[0];
  assert.ok(closed?.type === 'closed');
  assert.equal(closed.reason, ReasonCode.protocolError);
});

// --- hostile transport records -----------------------------------------------------------------

/** Feeds `record` to an open responder and expects exactly one closed event with `reason`. */
function expectClosed(
  pair: SessionPair,
  record: Uint8Array,
  reason: ReasonCode,
  label: string,
): void {
  const events = pair.feed('responder', record);
  assert.deepEqual(
    events.map((e) => e.type),
    ['closed'],
    label,
  );
  const closed = events[0];
  assert.ok(closed?.type === 'closed');
  assert.equal(closed.reason, reason, label);
  assert.equal(pair.sessions.responder.state, 'closed');
  // Closed is final: further input is ignored, and send() is refused.
  assert.deepEqual(pair.feed('responder', record), []);
  assert.throws(() => pair.sessions.responder.send(EMPTY), { code: 'PEAPOD_ERR_INVALID_STATE' });
}

test('tampering: flipping any single byte of a record closes with decryptFailed', () => {
  for (const suite of [
    'Noise_XX_25519_ChaChaPoly_SHA256',
    'Noise_XX_25519_AESGCM_SHA256',
  ] as const) {
    const length = fixedPair(suite).connect().seal('initiator', text('hello')).length;
    assert.equal(length, 5 + 16);
    for (let position = 0; position < length; position++) {
      for (const flip of [0x01, 0x80]) {
        const pair = fixedPair(suite).connect();
        const tampered = pair.seal('initiator', text('hello'));
        tampered[position]! ^= flip;
        expectClosed(
          pair,
          tampered,
          ReasonCode.decryptFailed,
          `${suite} byte ${position} ^ ${flip}`,
        );
      }
    }
  }
});

test('replayed, reordered, truncated and foreign records close with decryptFailed', () => {
  {
    const pair = openPair();
    const record = pair.seal('initiator', text('once'));
    assert.deepEqual(
      pair.feed('responder', record).map((e) => e.type),
      ['message'],
    );
    expectClosed(pair, record, ReasonCode.decryptFailed, 'replayed');
  }
  {
    const pair = openPair();
    pair.seal('initiator', text('one'));
    const second = pair.seal('initiator', text('two'));
    expectClosed(pair, second, ReasonCode.decryptFailed, 'reordered');
  }
  for (const keep of [16, 20, 35]) {
    const pair = openPair();
    const record = pair.seal('initiator', text('twenty bytes of text'));
    expectClosed(pair, record.subarray(0, keep), ReasonCode.decryptFailed, `truncated to ${keep}`);
  }
  {
    const pair = openPair();
    const foreign = openPair().seal('initiator', text('elsewhere'));
    pair.seal('initiator', text('elsewhere')); // same nonce, other keys
    expectClosed(pair, foreign, ReasonCode.decryptFailed, 'another session');
  }
  {
    // The responder's own record reflected back to it (wrong direction key).
    const pair = openPair();
    const reflected = pair.seal('responder', text('echo'));
    expectClosed(pair, reflected, ReasonCode.decryptFailed, 'reflected');
  }
});

test('records shorter than a tag or longer than the limit are protocol and size errors', () => {
  expectClosed(openPair(), new Uint8Array(15), ReasonCode.protocolError, 'short');
  expectClosed(openPair(), EMPTY, ReasonCode.protocolError, 'empty');
  expectClosed(openPair(), new Uint8Array(65_536), ReasonCode.frameTooLarge, 'oversized');
  const small = new SessionPair({}, { maxRecordBytes: 1000 }).connect();
  expectClosed(small, new Uint8Array(1001), ReasonCode.frameTooLarge, 'over maxRecordBytes');
});

test('the largest plaintext (65519 bytes) round-trips; one byte more is refused', () => {
  const pair = openPair('Noise_XX_25519_AESGCM_SHA256');
  const big = new Uint8Array(SESSION_MAX_PLAINTEXT_BYTES).map((_, i) => i * 31);
  const record = pair.seal('initiator', big);
  assert.equal(record.length, 65_535);
  const [message] = pair.feed('responder', record);
  assert.ok(message?.type === 'message');
  assert.deepEqual(message.plaintext, big);
  assert.throws(
    () => pair.sessions.initiator.send(new Uint8Array(SESSION_MAX_PLAINTEXT_BYTES + 1)),
    {
      code: 'PEAPOD_ERR_INVALID_ARGUMENT',
    },
  );
  // An empty plaintext is a valid message.
  assert.deepEqual(pair.feed('responder', pair.seal('initiator', EMPTY)), [
    { type: 'message', plaintext: EMPTY },
  ]);
});

// --- rekey ---------------------------------------------------------------------------------------

test('rekey every 3 records: 20 messages both ways succeed, on every suite', () => {
  for (const suite of allSuites) {
    const psk = isPsk(suite) ? { psk: podSecret } : {};
    const pair = new SessionPair(
      { suite, rekeyIntervalRecords: 3, ...psk },
      { rekeyIntervalRecords: 3, allowedSuites: allSuites, psk: podSecret },
    ).connect();
    for (let i = 0; i < 20; i++) {
      pair.sessions.initiator.send(text(`i${i}`));
      pair.sessions.responder.send(text(`r${i}`));
      pair.drive();
    }
    assert.equal(pair.ofType('responder', 'message').length, 20, suite);
    assert.equal(pair.ofType('initiator', 'message').length, 20, suite);
    assert.equal(pair.sessions.initiator.state, 'open');
  }
});

test('a receiver with a different rekey interval fails at record 4', () => {
  for (const receiverInterval of [4, 5, 1000]) {
    const pair = new SessionPair(
      { rekeyIntervalRecords: 3 },
      { rekeyIntervalRecords: receiverInterval },
    );
    pair.connect();
    for (let record = 1; record <= 3; record++) {
      const events = pair.feed('responder', pair.seal('initiator', text(`record ${record}`)));
      assert.deepEqual(
        events.map((e) => e.type),
        ['message'],
        `record ${record}`,
      );
    }
    const events = pair.feed('responder', pair.seal('initiator', text('record 4')));
    assert.equal(events.length, 1);
    assert.ok(events[0]?.type === 'closed');
    assert.equal(events[0].reason, ReasonCode.decryptFailed);
  }
});

test('rekeying changes the key: without it the 4th record would seal differently', () => {
  const pairWithInterval = (rekeyIntervalRecords: number) =>
    new SessionPair(
      { rekeyIntervalRecords, ephemeralKeyPair: fixedEphemeral.initiator },
      { rekeyIntervalRecords, ephemeralKeyPair: fixedEphemeral.responder },
    ).connect();
  const sealed = (pair: SessionPair) =>
    [1, 2, 3, 4].map((i) => toHex(pair.seal('initiator', text(`${i}`))));
  const [a1, a2, a3, a4] = sealed(pairWithInterval(3));
  const [b1, b2, b3, b4] = sealed(pairWithInterval(9));
  assert.deepEqual([a1, a2, a3], [b1, b2, b3], 'same keys before the first rekey');
  assert.notEqual(a4, b4);
});

// --- API misuse ----------------------------------------------------------------------------------

test('send before open throws PEAPOD_ERR_INVALID_STATE; misuse throws stable codes', () => {
  const pair = new SessionPair();
  assert.throws(() => pair.sessions.initiator.send(text('early')), {
    code: 'PEAPOD_ERR_INVALID_STATE',
  });
  pair.sessions.initiator.start();
  assert.throws(() => pair.sessions.initiator.start(), { code: 'PEAPOD_ERR_INVALID_STATE' });
  assert.throws(() => pair.sessions.initiator.send(text('early')), {
    code: 'PEAPOD_ERR_INVALID_STATE',
  });
  const base = { crypto, identity: identityA } as const;
  const invalid = (options: unknown, name: string) =>
    assert.throws(
      () => new SecureSession(options as InitiatorSessionOptions),
      (error: unknown) => {
        assert.equal((error as { code?: string }).code, 'PEAPOD_ERR_INVALID_ARGUMENT', name);
        assert.match((error as Error).message, new RegExp(`^${name}`));
        return true;
      },
    );
  invalid({ ...base, role: 'server' }, 'role');
  invalid(
    { ...base, role: 'initiator', identity: { publicKey: EMPTY, secretKey: EMPTY } },
    'identity',
  );
  invalid({ ...base, role: 'initiator', suite: 'Noise_NN_25519_ChaChaPoly_SHA256' }, 'suite');
  invalid({ ...base, role: 'initiator', suite: 'Noise_XXpsk3_25519_AESGCM_SHA256' }, 'suite');
  invalid({ ...base, role: 'initiator', psk: podSecret, suite: NoiseSuite[1] }, 'suite');
  invalid({ ...base, role: 'initiator', psk: new Uint8Array(31) }, 'psk');
  invalid({ ...base, role: 'responder', allowedSuites: [] }, 'allowedSuites');
  invalid({ ...base, role: 'responder', allowedSuites: [NoiseSuite[3]] }, 'allowedSuites');
  invalid({ ...base, role: 'initiator', rekeyIntervalRecords: 0 }, 'rekeyIntervalRecords');
  invalid({ ...base, role: 'initiator', maxRecordBytes: 191 }, 'maxRecordBytes');
  invalid({ ...base, role: 'initiator', maxRecordBytes: 65_536 }, 'maxRecordBytes');
  invalid(
    { ...base, role: 'initiator', staticKeyPair: { publicKey: EMPTY, secretKey: EMPTY } },
    'staticKeyPair',
  );
  invalid({ ...base, role: 'initiator', expectedRemoteDeviceId: EMPTY }, 'expectedRemoteDeviceId');
  // A responder with a psk may also accept plain suites (mixed policy), and the smallest
  // maxRecordBytes still fits the handshake.
  const smallest = new SessionPair(
    { maxRecordBytes: 192 },
    { psk: podSecret, allowedSuites: allSuites, maxRecordBytes: 192 },
  ).connect();
  assert.equal(smallest.sessions.initiator.state, 'open');
});

test('the TSDoc example of SecureSession runs as written', () => {
  const initiator = new SecureSession({ role: 'initiator', crypto, identity: identityA });
  const responder = new SecureSession({ role: 'responder', crypto, identity: identityB });
  initiator.start();
  const move = (from: SecureSession, to: SecureSession): boolean => {
    let moved = false;
    for (let e = from.poll(); e; e = from.poll()) {
      if (e.type === 'transmit') {
        to.receiveRecord(e.record);
        moved = true;
      }
    }
    return moved;
  };
  while (move(initiator, responder) || move(responder, initiator));
  assert.equal(initiator.state, 'open');
  assert.equal(responder.state, 'open');
  initiator.send(utf8Encode('hello'));
  move(initiator, responder);
  assert.deepEqual(responder.poll(), { type: 'message', plaintext: utf8Encode('hello') });
});

// --- properties ----------------------------------------------------------------------------------

/** Arbitrary records: random bytes, mutated genuine records, and edge sizes. */
const recordArbitrary = (genuine: Uint8Array): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(genuine.length), fc.integer({ min: 1, max: 255 }), fc.boolean(), fc.nat(40))
        .map(([position, xor, truncate, cut]) => {
          const copy = Uint8Array.from(genuine);
          if (position < copy.length) copy[position]! ^= xor;
          return truncate ? copy.subarray(0, Math.max(0, copy.length - cut)) : copy;
        }),
    },
    { weight: 1, arbitrary: fc.constant(genuine) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(65_536)) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 2, maxLength: 2 }) },
  );

/** Feeds records and checks the session's invariants. `prior` are events emitted before. */
function checkConsistent(
  session: SecureSession,
  records: readonly Uint8Array[],
  prior: SessionEvent[],
): void {
  const events = [...prior];
  for (const record of records) {
    const wasClosed = session.state === 'closed';
    session.receiveRecord(record); // must not throw
    const produced = drain(session);
    if (wasClosed) assert.deepEqual(produced, [], 'no output after closed');
    events.push(...produced);
  }
  const closed = events.filter((e) => e.type === 'closed');
  const opened = events.filter((e) => e.type === 'open');
  assert.ok(closed.length <= 1, 'at most one closed event');
  assert.ok(opened.length <= 1, 'at most one open event');
  if (closed.length === 1) assert.equal(events.at(-1)?.type, 'closed', 'closed is the last event');
  assert.equal(session.state === 'closed', closed.length === 1, 'state matches events');
  if (session.state === 'open') {
    assert.equal(opened.length, 1);
    assert.ok(session.handshakeHash !== undefined);
    session.send(text('still usable'));
    assert.equal(drain(session)[0]?.type, 'transmit');
  } else {
    assert.equal(session.handshakeHash, undefined);
    assert.throws(() => session.send(EMPTY), { code: 'PEAPOD_ERR_INVALID_STATE' });
  }
  for (const event of closed) {
    assert.ok(event.type === 'closed' && Object.values(ReasonCode).includes(event.reason));
  }
  assert.equal(session.poll(), undefined);
}

const numRuns = 10_000;

test(`property: arbitrary records never throw at a fresh responder (${numRuns} runs)`, () => {
  fc.assert(
    fc.property(
      fc.array(recordArbitrary(transcript.m1), { minLength: 1, maxLength: 3 }),
      (records) => {
        const session = fixedPair('Noise_XX_25519_ChaChaPoly_SHA256').sessions.responder;
        checkConsistent(session, records, []);
      },
    ),
    { numRuns },
  );
});

test(`property: arbitrary records never throw at a mid-handshake initiator (${numRuns} runs)`, () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(recordArbitrary(transcript.m2), recordArbitrary(transcript.confirm)), {
        minLength: 1,
        maxLength: 3,
      }),
      (records) => {
        const pair = fixedPair('Noise_XX_25519_ChaChaPoly_SHA256');
        pair.sessions.initiator.start();
        const prior = drain(pair.sessions.initiator);
        checkConsistent(pair.sessions.initiator, records, prior);
      },
    ),
    { numRuns },
  );
});

test(`property: arbitrary records never throw at an open session (${numRuns} runs)`, () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(recordArbitrary(transcript.data), { minLength: 1, maxLength: 3 }),
      (atInitiator, records) => {
        const pair = fixedPair('Noise_XX_25519_ChaChaPoly_SHA256').connect();
        const side: Side = atInitiator ? 'initiator' : 'responder';
        const session = pair.sessions[side];
        assert.equal(session.state, 'open');
        checkConsistent(session, records, pair.ofType(side, 'open'));
      },
    ),
    { numRuns },
  );
});
