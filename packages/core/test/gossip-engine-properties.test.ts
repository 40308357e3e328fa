/**
 * fast-check: random sequences of link ups and downs, arbitrary and mutated frames, replays,
 * commands and time never make an engine throw, and keep its invariants after every step: the
 * table within tableMax (plus links, which always get an entry), the seen set within seenMax,
 * and no silent engine's address in any snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { GossipFrameMessage } from '../src/wire/messages.js';
import { GossipMesh } from './support/gossip-mesh.js';

const SETTINGS = { tableMax: 5, seenMax: 12, activeLinks: 2, activeLinksMax: 3 };
const NODES = 5;
const silent = (i: number) => i % 2 === 1;

const node = fc.integer({ min: 0, max: NODES - 1 });
const op = fc.oneof(
  fc.record({ kind: fc.constant('connect' as const), a: node, b: node }),
  fc.record({ kind: fc.constant('disconnect' as const), a: node, pick: fc.nat() }),
  fc.record({
    kind: fc.constant('advance' as const),
    ms: fc.integer({ min: 0, max: 3 * 3_600_000 }),
  }),
  fc.record({
    kind: fc.constant('arbitrary' as const),
    a: node,
    pick: fc.nat(),
    code: fc.oneof(fc.integer({ min: 0x40, max: 0x45 }), fc.integer({ min: 0, max: 255 })),
    body: fc.uint8Array({ maxLength: 400 }),
  }),
  fc.record({
    kind: fc.constant('mutate' as const),
    a: node,
    pick: fc.nat(),
    frame: fc.nat(),
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
    cut: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('replay' as const), a: node, pick: fc.nat(), frame: fc.nat() }),
  fc.record({
    kind: fc.constant('skew' as const),
    a: node,
    ms: fc.integer({ min: -40_000, max: 40_000 }),
  }),
  fc.record({
    kind: fc.constant('command' as const),
    a: node,
    which: fc.constantFrom('announce', 'request', 'content', 'toggle', 'records', 'leave'),
    bytes: fc.uint8Array({ maxLength: 200 }),
  }),
);

test('random link changes, arbitrary/mutated/replayed frames, commands and timers never throw and keep the invariants', () => {
  fc.assert(
    fc.property(fc.integer(), fc.array(op, { maxLength: 40 }), (seed, ops) => {
      const mesh = new GossipMesh(seed & 0xffff);
      for (let i = 0; i < NODES; i++)
        mesh.add({
          broadcast: !silent(i),
          settings: SETTINGS,
          addresses: [silent(i) ? `192.168.77.${i}` : `10.1.${i}.1`],
        });
      const frames: GossipFrameMessage[] = [];
      mesh.tap = (d) => {
        if (frames.length < 200) frames.push(d.frame);
        return undefined;
      };
      const linkOf = (a: number, pick: number) => {
        const ids = [...mesh.nodes[a]!.links.keys()];
        return ids.length === 0 ? 12345 : ids[pick % ids.length]!;
      };
      for (const o of ops) {
        switch (o.kind) {
          case 'connect':
            if (o.a !== o.b && mesh.linkId(o.a, o.b) === undefined) mesh.connect(o.a, o.b);
            break;
          case 'disconnect':
            mesh.disconnect(o.a, linkOf(o.a, o.pick));
            break;
          case 'advance':
            mesh.advance(o.ms);
            break;
          case 'arbitrary':
            mesh.inject(o.a, linkOf(o.a, o.pick), { type: 'gossip', code: o.code, body: o.body });
            break;
          case 'mutate': {
            const frame = frames[o.frame % Math.max(1, frames.length)];
            if (frame === undefined) break;
            const body = o.cut ? frame.body.slice(0, o.at % frame.body.length) : frame.body.slice();
            if (!o.cut) body[o.at % body.length]! ^= o.xor;
            mesh.inject(o.a, linkOf(o.a, o.pick), { ...frame, body });
            break;
          }
          case 'replay': {
            const frame = frames[o.frame % Math.max(1, frames.length)];
            if (frame !== undefined) mesh.inject(o.a, linkOf(o.a, o.pick), frame);
            break;
          }
          case 'skew':
            mesh.nodes[o.a]!.wallOffsetMs = o.ms;
            break;
          case 'command': {
            const n = mesh.nodes[o.a]!;
            const wall = mesh.wall(o.a);
            if (o.which === 'announce') n.engine.announce(mesh.nowMs, wall);
            if (o.which === 'request')
              n.engine.requestPeers(
                o.bytes.length >= 32 ? o.bytes.slice(0, 32) : undefined,
                mesh.nowMs,
                wall,
              );
            if (o.which === 'content')
              n.engine.announceContent(
                [
                  {
                    contentId: new Uint8Array(32).fill(o.bytes.length),
                    held: o.bytes.length % 2 === 0,
                  },
                ],
                mesh.nowMs,
                wall,
              );
            if (o.which === 'toggle') {
              // A silent engine stays silent (its address must never leak); others may go quiet.
              if (!silent(o.a))
                n.engine.setSelf(
                  { ...n.self, broadcast: o.bytes.length % 2 === 0 },
                  mesh.nowMs,
                  wall,
                );
            }
            if (o.which === 'records') {
              const records = frames.slice(-3).map((f) => f.body.subarray(61, f.body.length - 64));
              n.engine.addRecords([o.bytes, ...records], 'tracker', mesh.nowMs, wall);
            }
            if (o.which === 'leave') n.engine.leave(mesh.nowMs, wall);
            mesh.drain(o.a);
            break;
          }
        }
        mesh.settle();
        for (const n of mesh.nodes) {
          const sizes = n.engine.sizes;
          assert.ok(sizes.table <= SETTINGS.tableMax + sizes.links, `table ${sizes.table}`);
          assert.ok(sizes.seen <= SETTINGS.seenMax, `seen ${sizes.seen}`);
          assert.ok(sizes.links <= SETTINGS.activeLinksMax, `links ${sizes.links}`);
          for (const peer of n.engine.snapshot()) {
            for (const address of peer.addresses)
              assert.ok(!address.startsWith('192.168.77.'), `silent address ${address}`);
            assert.ok(peer.score >= 0 && peer.score <= 1);
          }
        }
      }
    }),
    { numRuns: 60 },
  );
});
