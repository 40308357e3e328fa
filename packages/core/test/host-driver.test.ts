/**
 * The host driver (host-driver.ts): drains every output after each input, queues inputs that
 * arrive while draining instead of re-entering the core, and arms the timer only on change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Core, type CoreInput, type CoreOutput } from '../src/core.js';
import { HostDriver, unreachableOutput } from '../src/host-driver.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';

function core(seed: number): Core {
  const crypto = deterministicCrypto(seed);
  return new Core({ crypto, identity: crypto.ed25519GenerateKeyPair(), seed });
}

test('an input fed from inside perform is queued, not re-entered, and every output is drained', () => {
  const inner = core(1);
  const calls: string[] = [];
  const original = inner.handle.bind(inner);
  let depth = 0;
  inner.handle = (input: CoreInput) => {
    depth++;
    assert.equal(depth, 1, 'the core is never re-entered');
    calls.push(`handle ${input.type}`);
    try {
      original(input);
    } finally {
      depth--;
    }
  };
  const timers: (number | undefined)[] = [];
  let nowMs = 0;
  let answered = false;
  const driver: HostDriver = new HostDriver(inner, {
    perform(output: CoreOutput) {
      calls.push(`perform ${output.type}`);
      switch (output.type) {
        case 'send':
          // The first handshake bytes leave: the transport fails at once, synchronously.
          if (!answered) driver.handle({ type: 'link-closed', nowMs, linkId: 1 });
          answered = true;
          return;
        case 'disconnect':
        case 'event':
        case 'connect':
        case 'fetch-origin':
        case 'cancel-fetch':
        case 'read-chunk':
        case 'deliver':
        case 'read-delivered':
        case 'store-chunk':
          return;
        default:
          unreachableOutput(output);
      }
    },
    setTimer(deadlineMs) {
      timers.push(deadlineMs);
    },
  });
  driver.handle({
    type: 'link-opened',
    nowMs,
    linkId: 1,
    direction: 'outbound',
    remoteAddress: 'test:1',
  });
  // The drain of link-opened finished (every send of the handshake message) before the input
  // that arrived during it was fed.
  const closedAt = calls.indexOf('handle link-closed');
  assert.equal(calls[0], 'handle link-opened');
  assert.ok(closedAt > 1, 'link-closed was fed');
  assert.ok(calls.slice(1, closedAt).every((call) => call === 'perform send'));
  assert.ok(calls.slice(closedAt + 1).every((call) => call.startsWith('perform')));
  assert.equal(inner.poll(), undefined, 'nothing left undrained');
  assert.equal(driver.isDraining, false);
  // The handshake timer was armed while the link lived; it is disarmed once it closed.
  assert.equal(timers.at(-1), inner.nextDeadlineMs());
  nowMs = 5;
  const before = timers.length;
  driver.handle({ type: 'timer-fired', nowMs });
  assert.equal(timers.length, before, 'an unchanged deadline does not re-arm the timer');
  driver.timerFired(nowMs);
  assert.equal(timers.length, before + 1, 'a spent timer is always re-armed or disarmed');
  assert.equal(timers.at(-1), inner.nextDeadlineMs());
});

test('a host-misuse exception propagates and the driver keeps working', () => {
  const inner = core(2);
  const driver = new HostDriver(inner, { perform() {}, setTimer() {} });
  driver.handle({ type: 'timer-fired', nowMs: 10 });
  assert.throws(() => driver.handle({ type: 'timer-fired', nowMs: 5 }), /backwards/);
  assert.equal(driver.isDraining, false);
  driver.handle({ type: 'timer-fired', nowMs: 11 });
});
