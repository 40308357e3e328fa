/**
 * The engine's parts on their own: the seen set (against a model), the request routes, the
 * active view's draws, the peer score's range and order, the table's record ordering and
 * tombstones, and the engine's refusals of host misuse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { chooseDials, ActiveView } from '../src/gossip/active-view.js';
import { addressPrefix } from '../src/gossip/address-prefix.js';
import { GossipEngine, GossipDefaults } from '../src/gossip/gossip-engine.js';
import { GossipTable, type HeldRecord, type TableEntry } from '../src/gossip/gossip-table.js';
import { PeerScore } from '../src/gossip/peer-score.js';
import { RequestRoutes } from '../src/gossip/request-routes.js';
import { SeenSet } from '../src/gossip/seen-set.js';
import { Prng } from '../src/prng.js';
import { gossipCrypto } from './support/gossip-mesh.js';

test('SeenSet against a model: bounded, entries kept by their own ts, floor = newest forgotten ts but never above wall - window', () => {
  const WALL = 100;
  const WINDOW = 60;
  const EDGE = WALL - WINDOW;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.array(
        fc.record({ key: fc.integer({ min: 0, max: 20 }), ts: fc.integer({ min: 0, max: 100 }) }),
        { maxLength: 60 },
      ),
      (capacity, adds) => {
        const set = new SeenSet(capacity, WINDOW);
        const held = new Map<string, number>();
        let floor = -1;
        for (const { key, ts } of adds) {
          const k = `k${key}`;
          const expected = ts <= floor ? 'replayed' : held.has(k) ? 'duplicate' : 'new';
          assert.equal(set.check(k, ts), expected);
          if (expected !== 'new') continue;
          set.add(k, ts, WALL);
          // The model forgets what fell out of the window (by its own ts), then the smallest ts.
          for (const [hk, hts] of [...held])
            if (hts < EDGE) {
              held.delete(hk);
              floor = Math.max(floor, hts);
            }
          if (held.size >= capacity) {
            let oldest: [string, number] | undefined;
            for (const e of held) if (oldest === undefined || e[1] < oldest[1]) oldest = e;
            held.delete(oldest![0]);
            floor = Math.max(floor, Math.min(oldest![1], EDGE));
          }
          held.set(k, ts);
          assert.ok(set.size <= capacity);
          assert.equal(set.size, held.size);
          assert.equal(set.floorMs, floor);
          assert.ok(set.floorMs <= EDGE, 'the floor never rises above wall - window');
        }
      },
    ),
  );
});

test('SeenSet per-origin quota: an origin at its quota is answered over-quota and never evicts others; quota frees as its entries age out', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 4, max: 20 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 80 }),
      (quota, capacity, origins) => {
        const set = new SeenSet(capacity, 30_000, quota);
        let n = 0;
        for (const o of origins) {
          const origin = `o${o}`;
          const key = `m${n++}`;
          const verdict = set.check(key, 1_000, origin, 1_000);
          assert.equal(verdict, set.countOf(origin) >= quota ? 'over-quota' : 'new');
          if (verdict === 'new') set.add(key, 1_000, 1_000, origin);
          assert.ok(set.countOf(origin) <= quota);
          assert.ok(set.size <= capacity);
          assert.equal(set.floorMs, -1, 'nothing stamped in the window raises the floor');
        }
      },
    ),
  );
  const set = new SeenSet(100, 30_000, 3);
  for (let i = 0; i < 3; i++) set.add(`f${i}`, 10_000, 10_000, 'flooder');
  assert.equal(set.check('f3', 10_000, 'flooder', 10_000), 'over-quota');
  assert.equal(set.check('h0', 10_000, 'honest', 10_000), 'new');
  assert.equal(set.check('f3', 50_000, 'flooder', 50_000), 'new', 'its entries aged out');
});

test('SeenSet forgets what fell out of the clock window (raising the floor) so idle memory stays small', () => {
  const set = new SeenSet(1000, 30_000);
  for (let i = 0; i < 10; i++) set.add(`a${i}`, 1_000 + i, 1_000 + i);
  assert.equal(set.size, 10);
  set.add('late', 50_000, 50_000);
  assert.equal(set.size, 1, 'entries older than wall - 30 s are gone');
  assert.equal(set.floorMs, 1_009);
  assert.equal(set.check('a3', 1_003), 'replayed');
});

test('RequestRoutes: bounded (oldest first), expire after their lifetime, the first route for an ID wins', () => {
  const routes = new RequestRoutes(3, 1_000);
  routes.add('r1', 1, undefined, 0);
  routes.add('r1', 2, undefined, 0);
  assert.equal(routes.get('r1', 10)?.linkId, 1);
  routes.add('r2', 2, undefined, 1);
  routes.add('r3', 3, undefined, 2);
  routes.add('r4', 4, 'c', 3);
  assert.equal(routes.size, 3);
  assert.equal(routes.get('r1', 3), undefined, 'the oldest went');
  assert.equal(routes.get('r4', 3)?.contentKey, 'c');
  assert.equal(routes.get('r4', 1_003), undefined, 'expired');
  routes.add('r5', 5, undefined, 2_000);
  assert.equal(routes.size, 1, 'expired routes pruned on add');
});

test('ActiveView: targets skip the sender and draw at most count; dial slots count dials in flight; dials time out', () => {
  const view = new ActiveView(60_000);
  for (let i = 1; i <= 6; i++) view.add(i, `d${i}`, { outbound: true }, 0);
  const prng = new Prng(1);
  for (let r = 0; r < 50; r++) {
    const t = view.targets(3, 4, prng);
    assert.equal(t.length, 3);
    assert.equal(new Set(t).size, 3);
    assert.ok(!t.includes(4));
  }
  assert.deepEqual(view.targets(10, 1, prng).sort(), [2, 3, 4, 5, 6]);
  const small = new ActiveView(60_000);
  small.add(1, 'a', { outbound: true }, 0);
  small.markDialing('b', '203.0.113.9', 0);
  assert.equal(small.dialSlots(4), 2);
  assert.deepEqual(small.expireDials(14_999), []);
  assert.deepEqual(small.expireDials(15_000), ['b']);
  small.markDialing('c', '203.0.113.10', 0);
  small.add(2, 'c', { outbound: true }, 0);
  assert.equal(small.isDialing('c'), false, 'a link that comes up ends its dial');
  const inboundOnly = new ActiveView(60_000);
  for (let i = 1; i <= 4; i++) inboundOnly.add(i, `i${i}`, { outbound: false }, 0);
  assert.equal(
    inboundOnly.dialSlots(4),
    1,
    'a view of inbound links only still dials one of its own',
  );
});

test('ActiveView.victimFor: outbound, pod and the two oldest proven links are never displaced by an inbound stranger; one /24 holds 2 inbound links', () => {
  const prng = new Prng(3);
  const view = new ActiveView(60_000);
  view.add(1, 'out', { outbound: true, address: '198.51.100.1' }, 0);
  view.add(2, 'pod', { outbound: false, pinned: true, address: '192.168.1.2' }, 0);
  for (const id of [3, 4]) {
    view.add(id, `old${id}`, { outbound: false, address: `203.0.${id}.1` }, 0);
    view.noteAccepted(id);
    view.noteAccepted(id);
  }
  view.add(5, 'young', { outbound: false, address: '192.0.2.5' }, 50_000);
  const stranger = (address: string) =>
    view.victimFor({ outbound: false, address }, 5, 70_000, prng);
  assert.deepEqual(
    stranger('100.64.9.9'),
    { victim: 5 },
    'only the unproven inbound link gives way',
  );
  view.remove(5);
  view.add(5, 'proven-young', { outbound: false, address: '192.0.2.5' }, 1_000);
  view.noteAccepted(5);
  view.noteAccepted(5);
  assert.deepEqual(
    stranger('100.64.9.9'),
    { victim: 5 },
    'a proven link beyond the two oldest gives way',
  );
  view.remove(5);
  assert.equal(stranger('100.64.9.9'), undefined, 'room: nothing displaced');
  view.add(5, 'x', { outbound: false, address: '100.64.9.1' }, 70_000);
  view.add(6, 'y', { outbound: false, address: '100.64.9.2' }, 70_000);
  assert.deepEqual(stranger('100.64.9.3'), { refused: 'group-full' });
  assert.equal(
    view.victimFor({ outbound: false, address: '127.0.0.1' }, 9, 70_000, prng),
    undefined,
    'loopback has no group cap',
  );
  view.remove(5);
  view.remove(6);
  view.add(5, 'p', { outbound: true, address: '100.64.8.1' }, 0);
  assert.deepEqual(
    stranger('100.64.7.7'),
    { refused: 'view-full' },
    'outbound, pod and protected links only: refused',
  );
  const ours = view.victimFor({ outbound: true, address: '100.64.7.7' }, 5, 70_000, prng);
  assert.ok(
    ours !== undefined && 'victim' in ours && [3, 4].includes(ours.victim),
    'a link this device dialled displaces an inbound one',
  );
});

test('chooseDials draws group first: every eligible group gets picked about equally, never an ineligible entry or a used group', () => {
  const entry = (i: number, address: string) =>
    ({
      key: `e${i}`,
      record: { addresses: [address], listenPort: 9000, dialGroup: addressPrefix(address) },
    }) as unknown as TableEntry;
  // 18 entries in one /24 (one operator), 6 entries in 6 other groups, 1 in a used group.
  const entries = [
    ...Array.from({ length: 18 }, (_, i) => entry(i, `198.51.100.${i + 1}`)),
    ...Array.from({ length: 6 }, (_, i) => entry(100 + i, `203.0.${i}.7`)),
    entry(200, '192.0.2.1'),
    entry(300, '100.64.0.1'),
  ];
  const prng = new Prng(2);
  const perGroup = new Map<string, number>();
  for (let r = 0; r < 3500; r++) {
    const picks = chooseDials(entries, 2, (x) => x.key !== 'e300', new Set(['v4:192.0.2']), prng);
    assert.equal(picks.length, 2);
    const groups = picks.map((p) => p.record!.addresses[0]!.split('.').slice(0, 3).join('.'));
    assert.notEqual(groups[0], groups[1], 'two picks never share a group');
    for (const g of groups) perGroup.set(g, (perGroup.get(g) ?? 0) + 1);
  }
  assert.equal(
    perGroup.size,
    7,
    'the operator group and the 6 others; never the used or ineligible one',
  );
  for (const [group, n] of perGroup)
    assert.ok(n > 700 && n < 1300, `${group} drawn ${n} times of an expected 1000`);
});

test('addressPrefix: a /24 for IPv4 (mapped too), a /48 for IPv6, none for loopback; never throws', () => {
  assert.equal(addressPrefix('203.0.113.77'), 'v4:203.0.113');
  assert.equal(addressPrefix('::ffff:203.0.113.9'), 'v4:203.0.113');
  assert.equal(addressPrefix('[2001:db8:1:2::5]'), 'v6:2001:db8:1');
  assert.equal(addressPrefix('2001:db8:1::'), addressPrefix('2001:0db8:0001:ffff::1%eth0'));
  assert.equal(addressPrefix('127.4.5.6'), undefined);
  assert.equal(addressPrefix('::1'), undefined);
  assert.equal(addressPrefix('::ffff:127.0.0.1'), undefined);
  assert.equal(addressPrefix('example.org'), 'other:example.org');
  assert.equal(addressPrefix('1.2.3.256'), 'other:1.2.3.256');
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (text) => {
      const group = addressPrefix(text);
      assert.ok(group === undefined || typeof group === 'string');
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 255 }), (ip, last) => {
      const sibling = ip.split('.').slice(0, 3).concat(String(last)).join('.');
      assert.equal(addressPrefix(sibling), addressPrefix(ip), 'same /24, same group');
    }),
  );
});

test('PeerScore: in [0, 1000]; availability counts one heard slot per interval; faster and better-heard score higher', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 10_000_000 }), { maxLength: 30 }),
      fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
      fc.option(fc.integer({ min: 0, max: 1e10 }), { nil: undefined }),
      (heardAt, rttMs, bytesPerSecond) => {
        const score = new PeerScore(0);
        for (const at of [...heardAt].sort((a, b) => a - b)) score.heard(at, 30_000);
        score.observe({
          ...(rttMs === undefined ? {} : { rttMs }),
          ...(bytesPerSecond === undefined ? {} : { bytesPerSecond }),
        });
        const p = score.permille(10_000_000, 30_000);
        assert.ok(p >= 0 && p <= 1000);
      },
    ),
  );
  const faithful = new PeerScore(0);
  const flaky = new PeerScore(0);
  for (let t = 30_000; t <= 600_000; t += 30_000) faithful.heard(t, 30_000);
  for (let t = 0; t < 100; t++) flaky.heard(1_000 + t, 30_000); // a burst counts once
  assert.equal(faithful.availabilityPermille(600_000, 30_000), 1000);
  assert.equal(flaky.availabilityPermille(600_000, 30_000), Math.floor(1000 / 21));
  const fast = new PeerScore(0);
  const slow = new PeerScore(0);
  fast.observe({ rttMs: 10 });
  slow.observe({ rttMs: 1_000 });
  assert.ok(fast.performancePermille() > 500 && slow.performancePermille() < 500);
});

test('GossipTable: records only move forward; a tombstone keeps an older record out; a linked record-less entry goes with its link', () => {
  const table = new GossipTable({
    tableMax: 10,
    peerExpiryMs: 1000,
    heartbeatIntervalMs: 100,
    prng: new Prng(3),
  });
  const rec = (issuedAtMs: number): HeldRecord => ({
    bytes: Uint8Array.of(issuedAtMs & 255),
    issuedAtMs,
    bootstrap: false,
    addresses: ['10.0.0.1'],
    dialGroup: 'v4:10.0.0',
    listenPort: 1,
    deviceName: 'p',
  });
  const id = new Uint8Array(32);
  assert.equal(table.putRecord('p', id, rec(10), 'gossip', 0, 0).change, 'learned');
  assert.equal(table.putRecord('p', id, rec(5), 'gossip', 0, 0).change, 'stale');
  assert.equal(table.putRecord('p', id, rec(10), 'gossip', 0, 0).change, 'refreshed');
  assert.equal(table.putRecord('p', id, rec(20), 'gossip', 0, 0).change, 'updated');
  table.leave('p', 30);
  assert.equal(table.size, 0);
  assert.equal(table.putRecord('p', id, rec(25), 'gossip', 0, 0).change, 'stale');
  assert.equal(table.putRecord('p', id, rec(31), 'gossip', 0, 0).change, 'learned');
  table.linked('q', id, 0);
  assert.equal(table.size, 2);
  table.unlinked('q');
  assert.equal(table.get('q'), undefined);
  assert.deepEqual(table.expire(999).length, 0);
  assert.deepEqual(
    table.expire(1000).map((e) => e.key),
    ['p'],
  );
});

test('GossipEngine refuses host misuse with PEAPOD_ERR_INVALID_ARGUMENT naming the argument', () => {
  const crypto = gossipCrypto(9);
  const identity = crypto.ed25519GenerateKeyPair();
  const self = {
    broadcast: true,
    bootstrap: false,
    addresses: ['10.0.0.1'],
    listenPort: 9000,
    deviceName: 'me',
    capabilities: 0,
  };
  const make = (settings = {}) =>
    new GossipEngine({ crypto, identity, prng: new Prng(1), self, settings });
  const refuses = (fn: () => unknown, name: RegExp) =>
    assert.throws(
      fn,
      (e: { code?: string; message?: string }) =>
        e.code === 'PEAPOD_ERR_INVALID_ARGUMENT' && name.test(e.message ?? ''),
    );
  refuses(() => make({ fanOut: 0 }), /settings\.fanOut/);
  refuses(() => make({ activeLinks: 5, activeLinksMax: 4 }), /settings\.activeLinksMax/);
  refuses(
    () =>
      new GossipEngine({ crypto, identity, prng: new Prng(1), self: { ...self, listenPort: 0 } }),
    /options\.self/,
  );
  const engine = make();
  refuses(() => engine.linkUp(1, new Uint8Array(31), 0, 1, { outbound: true }), /deviceId/);
  refuses(
    () =>
      engine.linkUp(1, new Uint8Array(32).fill(1), 0, 1, {} as unknown as { outbound: boolean }),
    /facts/,
  );
  engine.linkUp(1, new Uint8Array(32).fill(1), 10, 1, { outbound: true });
  refuses(() => engine.linkUp(1, new Uint8Array(32).fill(2), 10, 1, { outbound: true }), /linkId/);
  refuses(() => engine.timer(5, 1), /nowMs/);
  refuses(() => engine.timer(20, Number.NaN), /wallClockMs/);
  refuses(
    () => engine.announceContent([{ contentId: new Uint8Array(3), held: true }], 20, 1),
    /contentId/,
  );
  refuses(() => engine.observe(new Uint8Array(32), { rttMs: -1 }), /sample\.rttMs/);
  refuses(() => engine.addRecords([1 as unknown as Uint8Array], 'cache', 20, 1), /records/);
  // A silent self with addresses is fine: they are ignored, never put in a record.
  const quiet = new GossipEngine({
    crypto,
    identity,
    prng: new Prng(1),
    self: { ...self, broadcast: false },
  });
  assert.equal(quiet.snapshot().length, 0);
  assert.equal(GossipDefaults.peerExpiryMs, 2 * 60 * 60 * 1000);
});

test('GossipTable flush: records pushed in bulk by one link are capped per link and never evict peers heard directly', () => {
  const table = new GossipTable({
    tableMax: 64,
    peerExpiryMs: 10_000,
    heartbeatIntervalMs: 100,
    prng: new Prng(9),
  });
  const rec = (i: number): HeldRecord => ({
    bytes: Uint8Array.of(i & 255, i >> 8),
    issuedAtMs: 10,
    bootstrap: false,
    addresses: ['10.0.0.1'],
    dialGroup: 'v4:10.0.0',
    listenPort: 1,
    deviceName: `p${i}`,
  });
  const id = (i: number) => Uint8Array.of(i & 255, i >> 8, ...new Uint8Array(30));
  for (let i = 0; i < 40; i++) table.putRecord(`d${i}`, id(i), rec(i), 'gossip', 0, 0);
  // Much later (the direct peers' scores have aged), three links push 200 records each.
  for (const link of [7, 8, 9]) {
    let accepted = 0;
    for (let i = 0; i < 200; i++) {
      const n = 1000 * link + i;
      const out = table.putRecord(`b${n}`, id(n), rec(n), 'gossip', 5_000, 5_000, link);
      if (out.change === 'learned') accepted++;
    }
    assert.ok(accepted <= table.perLinkMax, `link ${link} brought ${accepted}`);
    assert.ok(table.bulkFrom(link) <= table.perLinkMax);
  }
  for (let i = 0; i < 40; i++) assert.ok(table.get(`d${i}`), `direct peer d${i} kept`);
  assert.ok(table.size <= 64);
  // A link to a bulk-learnt peer makes it a direct one (untagged).
  const tagged = table.all().find((e) => e.viaLink !== undefined)!;
  table.linked(tagged.key, tagged.deviceId, 5_000);
  assert.equal(tagged.viaLink, undefined);
});
