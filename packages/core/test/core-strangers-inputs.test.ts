/**
 * The Core's gossip inputs and stranger links under fast-check: host misuse (a malformed
 * `gossip-records`, `gossip-self`, `find-peers`, `dial-stranger` or wall clock) throws
 * PEAPOD_ERR_INVALID_ARGUMENT naming the argument and changes nothing; well-formed inputs never
 * throw; bytes and frames from a stranger never throw. Also the peer table's stranger dials and
 * its duplicate-link rule, which both ends must compute alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import { Core, type CoreInput } from '../src/core.js';
import { PeapodError } from '../src/errors.js';
import { PeerTable, duplicateToClose, type ReadyLinkFacts } from '../src/peer-table.js';
import { GOSSIP_TYPE_CODES } from '../src/wire/messages.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { Mesh, WALL_CLOCK_EPOCH_MS } from './support/mesh.js';

const NUM_RUNS = 300;

function gossipCore(): Core {
  const crypto = deterministicCrypto(3);
  return new Core({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    seed: 3,
    gossip: {
      self: {
        broadcast: false,
        bootstrap: false,
        addresses: [],
        listenPort: 9000,
        deviceName: 'x',
        capabilities: 1,
      },
    },
  });
}

function drain(core: Core): void {
  while (core.poll() !== undefined);
}

/** Feeds `input`: returns 'ok', or the argument named by the PEAPOD_ERR_INVALID_ARGUMENT. */
function outcome(core: Core, input: unknown): string {
  try {
    core.handle(input as CoreInput);
    drain(core);
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof PeapodError, `not a PeapodError: ${String(error)}`);
    assert.equal(error.code, 'PEAPOD_ERR_INVALID_ARGUMENT', error.message);
    const named = /^(input\.[\w.[\]]+):/.exec(error.message);
    assert.ok(named !== null, `the message names no argument: ${error.message}`);
    return named[1]!;
  }
}

const anything = fc.oneof(
  fc.anything(),
  fc.uint8Array({ maxLength: 40 }),
  fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 3 }),
  fc.double(),
  fc.integer(),
  fc.string(),
);

test(`malformed gossip inputs throw naming the argument; well-formed ones never throw (${NUM_RUNS} runs each)`, () => {
  const wall = fc.oneof(fc.constant(WALL_CLOCK_EPOCH_MS), anything);
  const cases: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
    'gossip-records': fc.record({
      wallClockMs: wall,
      records: fc.oneof(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }), anything),
      source: fc.oneof(fc.constantFrom('tracker', 'cache'), anything),
    }),
    'gossip-self': fc.record({
      wallClockMs: wall,
      self: fc.oneof(
        fc.record({
          broadcast: fc.oneof(fc.boolean(), anything),
          bootstrap: fc.boolean(),
          addresses: fc.oneof(
            fc.constant(['192.0.2.1']),
            fc.array(fc.string({ maxLength: 300 }), { maxLength: 20 }),
            anything,
          ),
          listenPort: fc.oneof(fc.integer({ min: 0, max: 65535 }), anything),
          deviceName: fc.oneof(fc.string(), fc.string({ minLength: 200, maxLength: 400 })),
          capabilities: fc.oneof(fc.constant(1), anything),
        }),
        anything,
      ),
    }),
    'find-peers': fc.record(
      {
        wallClockMs: wall,
        contentId: fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), anything),
      },
      { requiredKeys: ['wallClockMs'] },
    ),
    'dial-stranger': fc.record(
      {
        address: fc.oneof(fc.constant('n1'), anything),
        port: fc.oneof(fc.integer({ min: 1, max: 65535 }), anything),
        deviceId: fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), anything),
      },
      { requiredKeys: ['address', 'port'] },
    ),
    'timer-fired': fc.record({ wallClockMs: wall }),
    'bytes-received': fc.record({ wallClockMs: wall, linkId: fc.constant(77) }),
  };
  // One well-formed input per type, run besides the generated ones: the chance that every field
  // of a generated gossip-self is well formed at once is near 1/100, too low to count on.
  const wellFormed: Record<string, Record<string, unknown>> = {
    'gossip-records': { wallClockMs: WALL_CLOCK_EPOCH_MS, records: [], source: 'tracker' },
    'gossip-self': {
      wallClockMs: WALL_CLOCK_EPOCH_MS,
      self: {
        broadcast: true,
        bootstrap: false,
        addresses: ['192.0.2.1'],
        listenPort: 9001,
        deviceName: 'y',
        capabilities: 1,
      },
    },
    'find-peers': { wallClockMs: WALL_CLOCK_EPOCH_MS },
    'dial-stranger': { address: 'n1', port: 9002 },
    'timer-fired': { wallClockMs: WALL_CLOCK_EPOCH_MS },
    'bytes-received': { wallClockMs: WALL_CLOCK_EPOCH_MS, linkId: 77 },
  };
  for (const [type, fields] of Object.entries(cases)) {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fields, (args) => {
        const core = gossipCore();
        const input = { type, nowMs: 0, bytes: new Uint8Array(0), ...args };
        const result = outcome(core, input);
        seen.add(result);
        // A refused input changed nothing: the next well-formed one is handled as on a new core.
        if (result !== 'ok')
          assert.equal(outcome(core, { type: 'timer-fired', nowMs: 1, wallClockMs: 5 }), 'ok');
      }),
      { numRuns: NUM_RUNS, examples: [[wellFormed[type]!]] },
    );
    assert.ok(seen.has('ok'), `${type}: some generated input was well formed`);
    assert.ok(seen.size > 1, `${type}: some generated input was refused`);
  }
});

test('a gossiping core refuses timer-fired without a wall clock; gossip inputs need gossip on', () => {
  assert.equal(outcome(gossipCore(), { type: 'timer-fired', nowMs: 0 }), 'input.wallClockMs');
  const crypto = deterministicCrypto(4);
  const plain = new Core({ crypto, identity: crypto.ed25519GenerateKeyPair(), seed: 4 });
  plain.handle({ type: 'timer-fired', nowMs: 0 }); // without gossip: as before
  assert.throws(
    () => plain.handle({ type: 'dial-stranger', nowMs: 0, address: 'h', port: 1 }),
    (e: unknown) => e instanceof PeapodError && e.code === 'PEAPOD_ERR_INVALID_STATE',
  );
});

test(`arbitrary bytes and gossip frames from a stranger never make a gossiping Core throw (${NUM_RUNS / 3} runs)`, () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({
            kind: fc.constant('frame' as const),
            code: fc.constantFrom(...GOSSIP_TYPE_CODES),
            body: fc.uint8Array({ maxLength: 300 }),
          }),
          fc.record({ kind: fc.constant('raw' as const), bytes: fc.uint8Array({ maxLength: 80 }) }),
        ),
        { minLength: 1, maxLength: 6 },
      ),
      (items) => {
        const mesh = new Mesh([{ handleTransfers: false }, { gossip: gossipCoreSelf() }]);
        mesh.connect(0, 1);
        mesh.drive();
        for (const item of items) {
          if (item.kind === 'frame') {
            mesh.input(0, {
              type: 'send-message',
              nowMs: mesh.nowMs,
              linkId: Mesh.linkId(1),
              message: { type: 'gossip', code: item.code, body: item.body },
            });
          } else {
            mesh.input(1, {
              type: 'bytes-received',
              nowMs: mesh.nowMs,
              linkId: Mesh.linkId(0),
              bytes: item.bytes,
              wallClockMs: mesh.wallClockMs,
            });
          }
          mesh.drive();
          if (item.kind === 'raw') break; // the raw bytes broke the session: the link is gone
        }
        assert.equal(mesh.eventsOf(1, 'peer:message').length, 0, 'gossip never surfaces raw');
      },
    ),
    { numRuns: NUM_RUNS / 3 },
  );
});

function gossipCoreSelf() {
  return {
    self: {
      broadcast: false,
      bootstrap: false,
      addresses: [],
      listenPort: 9000,
      deviceName: 'g',
      capabilities: 1,
    },
  };
}

const id = (n: number): Uint8Array => new Uint8Array(32).fill(n);

test('a stranger dial skips the smaller-ID rule but not a live link or a backoff', () => {
  const high = new PeerTable(toHex(id(9)));
  assert.equal(high.discovered(id(1), 'h', 1, 'lan', 0), undefined, 'pod rule: the smaller dials');
  const order = high.dialStranger(id(1), 'h', 1, 'gossip', 0);
  assert.equal(order?.trust, 'stranger');
  assert.equal(high.dialStranger(id(1), 'h', 1, 'gossip', 0), undefined, 'already connecting');
  high.dialFailed(order!.dialId, 10);
  assert.equal(high.dialStranger(id(1), 'h', 1, 'gossip', 20), undefined, 'backing off');
  assert.ok(high.dialStranger(id(1), 'h', 1, 'gossip', 5_000) !== undefined);
  const byAddress = high.dialStranger(undefined, 'h2', 2, 'manual', 0);
  assert.equal(byAddress?.deviceId, undefined);
  high.linkOpened(7, byAddress!.dialId);
  high.linkReady(7, id(3), 'x', 1, 'h2:2', 2, 'outbound', 1, 'stranger');
  const row = high.snapshot().find((r) => r.deviceIdHex === toHex(id(3)));
  assert.equal(row?.source, 'manual');
  assert.equal(row?.trust, 'stranger');
});

test(`duplicateToClose: both ends close the same link, or the non-dialler waits (${NUM_RUNS} runs)`, () => {
  const facts = fc.record({
    trust: fc.constantFrom('pod' as const, 'stranger' as const),
    dialledByA: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      facts,
      facts,
      (x, y, old, added) => {
        fc.pre(x !== y);
        const [a, b] = [toHex(id(x)), toHex(id(y))];
        const view = (side: 'a' | 'b', linkId: number, f: typeof old): ReadyLinkFacts => ({
          linkId,
          trust: f.trust,
          direction: f.dialledByA === (side === 'a') ? 'outbound' : 'inbound',
        });
        const atA = duplicateToClose(a, b, view('a', 1, old), view('a', 2, added));
        const atB = duplicateToClose(b, a, view('b', 1, old), view('b', 2, added));
        if (atA !== undefined && atB !== undefined) assert.equal(atA, atB);
        else {
          // Same dialler for both: only it decides, and it closes the newer link.
          assert.equal(old.dialledByA, added.dialledByA);
          assert.equal(old.trust, added.trust);
          assert.equal(atA ?? atB, 2);
        }
        if (old.trust !== added.trust) assert.equal(atA, old.trust === 'stranger' ? 1 : 2);
      },
    ),
    { numRuns: NUM_RUNS },
  );
});
