/**
 * What a receiving engine refuses, with the named reason, and that nothing refused is forwarded:
 * a line A - B - C, frames handed to B as if from A, and C watched for anything B relays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../src/bytes.js';
import { encodeGossip, withTtl, type UnsignedGossip } from '../src/gossip/gossip-codec.js';
import { GossipEngine } from '../src/gossip/gossip-engine.js';
import { GossipCode, GossipLimits } from '../src/gossip/messages.js';
import { buildPeerRecord } from '../src/gossip/peer-record.js';
import { Prng } from '../src/prng.js';
import type { GossipFrameMessage } from '../src/wire/messages.js';
import { GossipMesh, type MeshNode } from './support/gossip-mesh.js';

const A = 0;
const B = 1;
const C = 2;
const X = 3; // an origin linked to nobody: its frames reach B only through A

function line(settings = {}) {
  const mesh = new GossipMesh(42);
  for (let i = 0; i < 4; i++) mesh.add({ settings });
  mesh.autoDial = false;
  mesh.connect(A, B);
  mesh.connect(B, C);
  mesh.settle();
  const fromA = mesh.linkId(B, A)!;
  return { mesh, fromA };
}

let messageCounter = 0;
function messageId(): Uint8Array {
  const id = new Uint8Array(16);
  id[0] = 0xee;
  new DataView(id.buffer).setUint32(12, ++messageCounter);
  return id;
}

/** Signed by `node` as origin: `ttl = initialTtl`, as an origin sends it. */
function heartbeat(node: MeshNode, timestampMs: number, initialTtl = 2): GossipFrameMessage {
  return signed(node, {
    code: GossipCode.heartbeat,
    ttl: initialTtl,
    initialTtl,
    messageId: messageId(),
    timestampMs,
  });
}

function announcement(node: MeshNode, wall: number, recordAtMs = wall, broadcast = true) {
  const record = buildPeerRecord(node.crypto, node.identity, {
    issuedAtMs: recordAtMs,
    broadcast,
    bootstrap: false,
    leaving: false,
    capabilities: 0,
    listenPort: 9000,
    deviceName: `node-${node.index}`,
    addresses: broadcast ? [`10.0.${node.index}.1`] : [],
  });
  return signed(node, {
    code: GossipCode.peerAnnouncement,
    ttl: 32,
    initialTtl: 32,
    messageId: messageId(),
    timestampMs: wall,
    record,
  });
}

function signed(node: MeshNode, message: UnsignedGossip): GossipFrameMessage {
  return encodeGossip(node.crypto, node.identity, message);
}

function idOf(frame: GossipFrameMessage): string {
  return toHex(frame.body.subarray(1, 17));
}

function acceptedBy(mesh: GossipMesh, node: number, frame: GossipFrameMessage): boolean {
  return mesh.eventsOf(node, 'gossip:accepted').some((e) => toHex(e.messageId) === idOf(frame));
}

/** B learns X's record (relayed by A), so X's heartbeats are not 'unknown-origin'. */
function introduce(mesh: GossipMesh, fromA: number): void {
  assert.ok(offer(mesh, fromA, announcement(mesh.nodes[X]!, mesh.wall(X))).accepted);
}

/** Hands `frame` to B from A; returns B's new rejections and whether B sent anything. */
function offer(mesh: GossipMesh, fromA: number, frame: GossipFrameMessage) {
  const before = mesh.nodes[B]!.events.length;
  const sentBefore = mesh.nodes[B]!.engine.counters.sent;
  mesh.inject(B, fromA, frame);
  mesh.settle();
  const events = mesh.nodes[B]!.events.slice(before);
  return {
    rejected: events.flatMap((e) => (e.type === 'gossip:rejected' ? [e.rejection] : [])),
    forwarded: mesh.nodes[B]!.engine.counters.sent - sentBefore,
    accepted: events.some((e) => e.type === 'gossip:accepted'),
  };
}

test('a valid relayed announcement is accepted by B and forwarded to C (the baseline)', () => {
  const { mesh, fromA } = line();
  const frame = announcement(mesh.nodes[X]!, mesh.wall(X));
  const result = offer(mesh, fromA, frame);
  assert.deepEqual(result.rejected, []);
  assert.ok(result.accepted);
  assert.equal(result.forwarded, 1);
  assert.ok(acceptedBy(mesh, C, frame));
});

test("forged: a frame whose signature is not its origin's is rejected 'bad-signature' and not forwarded", () => {
  const { mesh, fromA } = line();
  const frame = announcement(mesh.nodes[X]!, mesh.wall(X));
  const body = frame.body.slice();
  body[body.length - 1]! ^= 0x01;
  const result = offer(mesh, fromA, { ...frame, body });
  assert.deepEqual(result.rejected, ['bad-signature']);
  assert.equal(result.forwarded, 0);
  assert.equal(acceptedBy(mesh, C, frame), false);
  assert.equal(mesh.nodes[B]!.engine.counters.rejected['bad-signature'], 1);
});

test('forged first: a forged copy with the real message ID does not suppress the real message', () => {
  const { mesh, fromA } = line();
  const frame = announcement(mesh.nodes[X]!, mesh.wall(X));
  const body = frame.body.slice();
  body[body.length - 10]! ^= 0x40;
  assert.deepEqual(offer(mesh, fromA, { ...frame, body }).rejected, ['bad-signature']);
  const real = offer(mesh, fromA, frame);
  assert.deepEqual(real.rejected, []);
  assert.ok(real.accepted);
  assert.ok(acceptedBy(mesh, C, frame), 'C got the real message');
});

test('replayed: the same frame again after forwarding is dropped as a duplicate, counted, not forwarded again', () => {
  const { mesh, fromA } = line();
  const frame = announcement(mesh.nodes[X]!, mesh.wall(X));
  assert.equal(offer(mesh, fromA, frame).forwarded, 1);
  const duplicatesBefore = mesh.nodes[B]!.engine.counters.duplicates;
  const again = offer(mesh, fromA, frame);
  assert.equal(again.accepted, false);
  assert.equal(again.forwarded, 0);
  assert.equal(mesh.nodes[B]!.engine.counters.duplicates, duplicatesBefore + 1);
  // The same frame relayed with a lower ttl is the same message.
  assert.equal(offer(mesh, fromA, withTtl(frame, 5)).forwarded, 0);
  assert.equal(
    mesh.eventsOf(C, 'gossip:accepted').filter((e) => toHex(e.messageId) === idOf(frame)).length,
    1,
  );
});

test("replayed: after the wall clock steps back, a frame the seen set forgot is rejected 'replayed' (the floor)", () => {
  const { mesh, fromA } = line();
  introduce(mesh, fromA);
  const wall = mesh.wall(B);
  const first = heartbeat(mesh.nodes[X]!, wall - 5_000);
  assert.ok(offer(mesh, fromA, first).accepted);
  // B's clock jumps 40 s ahead: the first entry falls out of the window and raises the floor.
  mesh.nodes[B]!.wallOffsetMs += 40_000;
  assert.ok(offer(mesh, fromA, heartbeat(mesh.nodes[X]!, mesh.wall(B))).accepted);
  assert.equal(mesh.nodes[B]!.engine.sizes.seen <= 2, true);
  // ...and steps back: the forgotten frame is inside the window again, but below the floor.
  mesh.nodes[B]!.wallOffsetMs -= 40_000;
  const result = offer(mesh, fromA, first);
  assert.deepEqual(result.rejected, ['replayed']);
  assert.equal(result.forwarded, 0);
  // A fresh message above the floor (X's announcement at `wall` raised it that far) gets through.
  assert.ok(offer(mesh, fromA, heartbeat(mesh.nodes[X]!, wall + 1_000)).accepted);
});

test("stale and future: timestamps beyond +-30 s of the receiver's wall clock are rejected by name; the edges pass", () => {
  const { mesh, fromA } = line();
  introduce(mesh, fromA);
  const wall = mesh.wall(B);
  const x = mesh.nodes[X]!;
  const stale = offer(mesh, fromA, heartbeat(x, wall - GossipLimits.clockSkewMs - 1));
  assert.deepEqual(stale.rejected, ['stale']);
  assert.equal(stale.forwarded, 0);
  const future = offer(mesh, fromA, heartbeat(x, wall + GossipLimits.clockSkewMs + 1));
  assert.deepEqual(future.rejected, ['future']);
  assert.equal(future.forwarded, 0);
  assert.ok(offer(mesh, fromA, heartbeat(x, wall - GossipLimits.clockSkewMs)).accepted);
  assert.ok(offer(mesh, fromA, heartbeat(x, wall + GossipLimits.clockSkewMs)).accepted);
});

test("stale: the clock is the receiver's wall clock, not its monotonic one", () => {
  const { mesh, fromA } = line();
  const frame = heartbeat(mesh.nodes[X]!, mesh.wall(X));
  mesh.nodes[B]!.wallOffsetMs = 31_000; // B's wall clock runs ahead; nowMs is unchanged
  assert.deepEqual(offer(mesh, fromA, frame).rejected, ['stale']);
});

test("oversized: a body over 32 KiB is rejected 'oversized' and not forwarded", () => {
  const { mesh, fromA } = line();
  const frame = announcement(mesh.nodes[X]!, mesh.wall(X));
  const body = new Uint8Array(GossipLimits.bodyBytes + 1);
  body.set(frame.body);
  const result = offer(mesh, fromA, { ...frame, body });
  assert.deepEqual(result.rejected, ['oversized']);
  assert.equal(result.forwarded, 0);
});

test("TTL-inflated: ttl above the signed initialTtl, or initialTtl above the type's budget, is rejected 'ttl-inflated'", () => {
  const { mesh, fromA } = line();
  const x = mesh.nodes[X]!;
  const raised = offer(mesh, fromA, withTtl(heartbeat(x, mesh.wall(X), 1), 2));
  assert.deepEqual(raised.rejected, ['ttl-inflated']);
  assert.equal(raised.forwarded, 0);
  const frame = heartbeat(x, mesh.wall(X));
  const body = frame.body.slice();
  body[0] = 3;
  body[1 + 16 + 32 + 8] = 3; // initialTtl 3 > the heartbeat budget of 2
  const overBudget = offer(mesh, fromA, { ...frame, body });
  assert.deepEqual(overBudget.rejected, ['ttl-inflated']);
  assert.equal(overBudget.forwarded, 0);
});

test('ttl: a heartbeat (TTL 2) goes two hops and no further', () => {
  const { mesh, fromA } = line();
  introduce(mesh, fromA);
  const frame = heartbeat(mesh.nodes[X]!, mesh.wall(X), 1);
  const result = offer(mesh, fromA, frame);
  assert.ok(result.accepted);
  assert.equal(result.forwarded, 0, 'ttl 1 arrives and stops');
  const two = heartbeat(mesh.nodes[X]!, mesh.wall(X), 2);
  assert.equal(offer(mesh, fromA, two).forwarded, 1);
  const atC = mesh.eventsOf(C, 'gossip:accepted').find((e) => toHex(e.messageId) === idOf(two));
  assert.equal(atC?.hops, 2);
});

test('address-not-broadcast: an announcement of a record without the broadcast flag is rejected and not forwarded', () => {
  const { mesh, fromA } = line();
  const result = offer(
    mesh,
    fromA,
    announcement(mesh.nodes[X]!, mesh.wall(X), mesh.wall(X), false),
  );
  assert.deepEqual(result.rejected, ['address-not-broadcast']);
  assert.equal(result.forwarded, 0);
  assert.equal(
    mesh.nodes[B]!.engine.snapshot().some(
      (p) => toHex(p.deviceId) === toHex(mesh.nodes[X]!.deviceId),
    ),
    false,
  );
});

test("stale record: an announcement whose record is older than the one held is rejected 'stale' and not forwarded", () => {
  const { mesh, fromA } = line();
  const wall = mesh.wall(X);
  assert.ok(offer(mesh, fromA, announcement(mesh.nodes[X]!, wall, wall)).accepted);
  const older = offer(mesh, fromA, announcement(mesh.nodes[X]!, wall + 1, wall - 5_000));
  assert.deepEqual(older.rejected, ['stale']);
  assert.equal(older.forwarded, 0);
  const held = mesh.nodes[B]!.engine.snapshot().find(
    (p) => toHex(p.deviceId) === toHex(mesh.nodes[X]!.deviceId),
  );
  assert.ok(held !== undefined);
});

test('not-gossip-link: a frame on a link the engine was never told about is rejected', () => {
  const { mesh } = line();
  const result = offer(mesh, 999, heartbeat(mesh.nodes[X]!, mesh.wall(X)));
  assert.deepEqual(result.rejected, ['not-gossip-link']);
});

test("record-mismatch: a table sync from a device other than the linked one is rejected; a second sync on a link is 'replayed'", () => {
  const { mesh, fromA } = line();
  const x = mesh.nodes[X]!;
  const records = [
    buildPeerRecord(x.crypto, x.identity, {
      issuedAtMs: mesh.wall(X),
      broadcast: true,
      bootstrap: false,
      leaving: false,
      capabilities: 0,
      listenPort: 9000,
      deviceName: 'x',
      addresses: ['10.9.9.9'],
    }),
  ];
  const sync = (node: MeshNode) =>
    signed(node, {
      code: GossipCode.peerListResponse,
      ttl: 1,
      initialTtl: 1,
      messageId: messageId(),
      timestampMs: mesh.wall(X),
      requestId: new Uint8Array(16),
      records,
    });
  assert.deepEqual(offer(mesh, fromA, sync(x)).rejected, ['record-mismatch']);
  // A's table was empty when its link to B came up, so A sent no sync then: the first is A's.
  const a = mesh.nodes[A]!;
  const first = offer(mesh, fromA, sync(a));
  const second = offer(mesh, fromA, sync(a));
  assert.deepEqual(first.rejected, []);
  assert.ok(first.accepted);
  assert.deepEqual(second.rejected, ['replayed']);
});

test("self: after a restart, a frame this device signed before is rejected 'self'", () => {
  const { mesh, fromA } = line();
  const b = mesh.nodes[B]!;
  const old = heartbeat(b, mesh.wall(B));
  const restarted = new GossipEngine({
    crypto: b.crypto,
    identity: b.identity,
    prng: new Prng(1),
    self: b.self,
  });
  restarted.linkUp(fromA, mesh.nodes[A]!.deviceId, mesh.nowMs, mesh.wall(B), { outbound: false });
  restarted.receive(fromA, old, mesh.nowMs, mesh.wall(B));
  const events: string[] = [];
  for (let o = restarted.takeOutput(); o !== undefined; o = restarted.takeOutput())
    if (o.type === 'event' && o.event.type === 'gossip:rejected') events.push(o.event.rejection);
  assert.deepEqual(events, ['self']);
});
