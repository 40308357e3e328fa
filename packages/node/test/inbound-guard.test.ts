/**
 * The inbound guard's policy (inbound-guard.ts) on an injected clock: the bucket per address
 * group, the half-open caps, the handshake deadline, the bounded group table, and a fast-check
 * property that no group is ever admitted more than its bucket allows.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addressGroup, InboundGuard, InboundGuardDefaults } from '../src/inbound-guard.js';

/** Admits from `address` at `nowMs` and settles at once; returns the refusal or 'admitted'. */
function attempt(guard: InboundGuard, address: string, nowMs: number): string {
  const verdict = guard.admit(address, nowMs);
  if (!verdict.admitted) return verdict.refusal;
  guard.settle(verdict.ticket);
  return 'admitted';
}

test('one address gets its burst at once, then one handshake per refill interval', () => {
  const guard = new InboundGuard();
  const { burst, refillIntervalMs } = InboundGuardDefaults;
  for (let i = 0; i < burst; i++) assert.equal(attempt(guard, '192.0.2.7', 0), 'admitted');
  assert.equal(attempt(guard, '192.0.2.7', 0), 'rate');
  assert.equal(attempt(guard, '192.0.2.7', refillIntervalMs - 1), 'rate');
  assert.equal(attempt(guard, '192.0.2.7', refillIntervalMs), 'admitted');
  assert.equal(attempt(guard, '192.0.2.7', refillIntervalMs), 'rate');
  // Another address is not held back by the first one's flood.
  assert.equal(attempt(guard, '192.0.2.8', refillIntervalMs), 'admitted');
  // A long quiet refills the bucket to the burst, not beyond.
  const later = refillIntervalMs * 1000;
  for (let i = 0; i < burst; i++) assert.equal(attempt(guard, '192.0.2.7', later), 'admitted');
  assert.equal(attempt(guard, '192.0.2.7', later), 'rate');
});

test('IPv6 addresses count by their /64 (a neighbour alone), IPv4-mapped ones as IPv4', () => {
  const cases: Array<[string, string]> = [
    ['192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::ffff:c000:201', '192.0.2.1'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:eeee:dddd:cccc', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:0:0:0:9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0:0:0:0:1'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['', ''],
  ];
  for (const [address, group] of cases) assert.equal(addressGroup(address), group, address);
  // On this device's own /64 (a home LAN shares one), a neighbour counts alone.
  assert.equal(addressGroup('2001:db8:1:2::9', '2001:db8:1:2::1'), '2001:db8:1:2:0:0:0:9');
  assert.equal(addressGroup('2001:db8:1:3::9', '2001:db8:1:2::1'), '2001:db8:1:3::/64');
  assert.equal(addressGroup('192.0.2.9', '192.0.2.1'), '192.0.2.9');
  const guard = new InboundGuard({ burst: 1 });
  assert.equal(attempt(guard, '2001:db8:1:2::1', 0), 'admitted');
  assert.equal(attempt(guard, '2001:db8:1:2::abcd', 0), 'rate', 'same /64');
  assert.equal(attempt(guard, '2001:db8:1:3::1', 0), 'admitted', 'another /64');
  const lan = (address: string) => {
    const verdict = guard.admit(address, 0, '2001:db8:1:3::ffff');
    return verdict.admitted ? 'admitted' : verdict.refusal;
  };
  assert.equal(lan('2001:db8:1:3::2'), 'admitted', 'a neighbour on our /64 has its own bucket');
  assert.equal(lan('2001:db8:1:3::3'), 'admitted');
  assert.equal(lan('2001:db8:1:3::2'), 'rate');
});

test('half-open connections are capped per address and in all; a refusal costs no token', () => {
  const guard = new InboundGuard({ halfOpenPerAddressMax: 2, halfOpenMax: 3, burst: 4 });
  const a1 = guard.admit('198.51.100.1', 0);
  const a2 = guard.admit('198.51.100.1', 0);
  assert.ok(a1.admitted && a2.admitted);
  assert.deepEqual(guard.admit('198.51.100.1', 0), {
    admitted: false,
    refusal: 'half-open-address',
  });
  const b1 = guard.admit('198.51.100.2', 0);
  assert.ok(b1.admitted);
  assert.equal(guard.halfOpenCount, 3);
  assert.deepEqual(guard.admit('198.51.100.3', 0), { admitted: false, refusal: 'half-open' });
  // A settled handshake frees its slots; settling twice changes nothing.
  guard.settle(a1.ticket);
  guard.settle(a1.ticket);
  assert.equal(guard.halfOpenCount, 2);
  // 198.51.100.1 spent 2 of its 4 tokens; the refusal above spent none.
  assert.equal(attempt(guard, '198.51.100.1', 0), 'admitted');
  assert.equal(attempt(guard, '198.51.100.1', 0), 'admitted');
  assert.equal(attempt(guard, '198.51.100.1', 0), 'rate');
});

test('a half-open connection past the deadline is reported overdue once, and its slot frees', () => {
  const guard = new InboundGuard({ handshakeDeadlineMs: 10_000 });
  assert.equal(guard.nextDeadlineMs(), undefined);
  const first = guard.admit('203.0.113.5', 1_000);
  const second = guard.admit('203.0.113.6', 4_000);
  assert.ok(first.admitted && second.admitted);
  assert.equal(guard.nextDeadlineMs(), 11_000);
  assert.deepEqual(guard.overdue(10_999), []);
  assert.deepEqual(guard.overdue(11_000), [first.ticket]);
  assert.deepEqual(guard.overdue(11_000), []);
  assert.equal(guard.halfOpenCount, 1);
  assert.equal(guard.nextDeadlineMs(), 14_000);
  guard.settle(second.ticket); // completed in time
  assert.deepEqual(guard.overdue(60_000), []);
  assert.equal(guard.nextDeadlineMs(), undefined);
});

test('the group table is bounded: the least recently used idle group is forgotten', () => {
  const guard = new InboundGuard({ groupsMax: 2, burst: 1 });
  assert.equal(attempt(guard, '10.0.0.1', 0), 'admitted');
  const held = guard.admit('10.0.0.2', 0); // stays half-open: never forgotten
  assert.ok(held.admitted);
  assert.equal(attempt(guard, '10.0.0.1', 0), 'rate');
  assert.equal(attempt(guard, '10.0.0.3', 0), 'admitted'); // forgets 10.0.0.1, the idle one
  assert.equal(attempt(guard, '10.0.0.2', 0), 'rate', 'remembered: its bucket is still empty');
  assert.equal(attempt(guard, '10.0.0.1', 0), 'admitted', 'forgotten: a full bucket again');
});

test('strangers from many addresses share one bucket; a member address skips it', () => {
  const guard = new InboundGuard({ globalBurst: 3, globalRefillIntervalMs: 100 });
  // A member's address: its handshake completed once.
  const member = guard.admit('10.1.0.1', 0);
  assert.ok(member.admitted);
  guard.settle(member.ticket, true);
  assert.equal(attempt(guard, '10.2.0.1', 0), 'admitted');
  assert.equal(attempt(guard, '10.2.0.2', 0), 'admitted');
  assert.equal(attempt(guard, '10.2.0.3', 0), 'busy');
  assert.equal(attempt(guard, '10.1.0.1', 0), 'admitted', 'the member is not held back');
  assert.equal(attempt(guard, '10.2.0.3', 99), 'busy');
  assert.equal(attempt(guard, '10.2.0.3', 100), 'admitted');
  // After a long quiet the shared bucket holds its burst again, and no more.
  const later = 100_000;
  for (let i = 0; i < 3; i++) assert.equal(attempt(guard, '10.2.0.9', later), 'admitted');
  assert.equal(attempt(guard, '10.2.0.9', later), 'busy');
});

test('a member address is never forgotten from a full table', () => {
  const guard = new InboundGuard({ groupsMax: 2, burst: 1 });
  const member = guard.admit('10.3.0.1', 0);
  assert.ok(member.admitted);
  guard.settle(member.ticket, true);
  assert.equal(attempt(guard, '10.3.0.2', 0), 'admitted');
  assert.equal(attempt(guard, '10.3.0.3', 0), 'admitted'); // forgets 10.3.0.2, not the member
  assert.equal(attempt(guard, '10.3.0.2', 0), 'admitted', 'the stranger was forgotten');
  assert.equal(attempt(guard, '10.3.0.1', 0), 'rate', 'the member is remembered');
});

test('limits must be positive integers', () => {
  assert.throws(() => new InboundGuard({ burst: 0 }), RangeError);
  assert.throws(() => new InboundGuard({ refillIntervalMs: 0.5 }), RangeError);
});

test('property: no group, nor all together, is admitted more than its buckets allow', () => {
  const step = fc.record({
    address: fc.constantFrom('192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8::2', '2001:db9::1'),
    advanceMs: fc.integer({ min: 0, max: 700 }),
    settle: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
      const limits = {
        burst: 3,
        refillIntervalMs: 500,
        globalBurst: 5,
        globalRefillIntervalMs: 300,
        halfOpenMax: 4,
        halfOpenPerAddressMax: 2,
      };
      const guard = new InboundGuard(limits);
      const admitted = new Map<string, number>();
      const open: number[] = [];
      let nowMs = 0;
      for (const { address, advanceMs, settle } of steps) {
        nowMs += advanceMs;
        guard.overdue(nowMs);
        const verdict = guard.admit(address, nowMs);
        if (verdict.admitted) {
          const group = addressGroup(address);
          admitted.set(group, (admitted.get(group) ?? 0) + 1);
          if (settle) guard.settle(verdict.ticket);
          else open.push(verdict.ticket);
        } else if (open.length > 0) {
          guard.settle(open.shift()!);
        }
        assert.ok(guard.halfOpenCount <= limits.halfOpenMax);
        let total = 0;
        for (const count of admitted.values()) {
          assert.ok(count <= limits.burst + Math.floor(nowMs / limits.refillIntervalMs));
          total += count;
        }
        // No handshake completes here, so every group is a stranger's: the shared bound holds.
        assert.ok(total <= limits.globalBurst + Math.floor(nowMs / limits.globalRefillIntervalMs));
      }
    }),
  );
});

test('property: addressGroup never throws on arbitrary text', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (text) => {
      assert.equal(typeof addressGroup(text), 'string');
    }),
  );
});
