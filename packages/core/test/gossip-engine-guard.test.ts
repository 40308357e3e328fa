/**
 * The receive path against the attacker review's floods (issue 12): the seen-set flood, origins
 * nobody knows, forged frames that never closed their link. A line A - B - C (plus origins linked
 * to nobody whose frames reach B through A); frames are handed to B as if from A.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../src/bytes.js';
import { encodeGossip, type UnsignedGossip } from '../src/gossip/gossip-codec.js';
import { GossipCode } from '../src/gossip/messages.js';
import { buildPeerRecord } from '../src/gossip/peer-record.js';
import type { GossipFrameMessage } from '../src/wire/messages.js';
import { GossipMesh, type MeshNode } from './support/gossip-mesh.js';

const A = 0;
const B = 1;
const C = 2;
const FIRST_STRANGER = 3;

function line(strangers: number, settings = {}) {
  const mesh = new GossipMesh(7);
  for (let i = 0; i < FIRST_STRANGER + strangers; i++) mesh.add({ settings });
  mesh.autoDial = false;
  mesh.connect(A, B);
  mesh.connect(B, C);
  mesh.settle();
  mesh.announce(A); // C learns A beyond its links (a link itself brings a one-hop introduction)
  return { mesh, fromA: mesh.linkId(B, A)! };
}

let counter = 0;
function messageId(): Uint8Array {
  const id = new Uint8Array(16);
  id[0] = 0xab;
  new DataView(id.buffer).setUint32(12, ++counter);
  return id;
}

function signed(node: MeshNode, message: UnsignedGossip): GossipFrameMessage {
  return encodeGossip(node.crypto, node.identity, message);
}

function heartbeat(node: MeshNode, timestampMs: number): GossipFrameMessage {
  return signed(node, {
    code: GossipCode.heartbeat,
    ttl: 2,
    initialTtl: 2,
    messageId: messageId(),
    timestampMs,
  });
}

function announcement(node: MeshNode, wall: number): GossipFrameMessage {
  const record = buildPeerRecord(node.crypto, node.identity, {
    issuedAtMs: wall,
    broadcast: true,
    bootstrap: false,
    leaving: false,
    capabilities: 0,
    listenPort: 9000,
    deviceName: `node-${node.index}`,
    addresses: [`10.0.${node.index}.1`],
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

function offer(mesh: GossipMesh, linkId: number, frame: GossipFrameMessage) {
  const node = mesh.nodes[B]!;
  const before = node.events.length;
  const sentBefore = node.engine.counters.sent;
  mesh.inject(B, linkId, frame);
  mesh.settle();
  const events = node.events.slice(before);
  return {
    rejected: events.flatMap((e) => (e.type === 'gossip:rejected' ? [e.rejection] : [])),
    forwarded: node.engine.counters.sent - sentBefore,
    accepted: events.some((e) => e.type === 'gossip:accepted'),
  };
}

function acceptedBy(mesh: GossipMesh, node: number, frame: GossipFrameMessage): boolean {
  const id = toHex(frame.body.subarray(1, 17));
  return mesh.eventsOf(node, 'gossip:accepted').some((e) => toHex(e.messageId) === id);
}

/** After a flood, a fresh heartbeat of A's is accepted by B and relayed to C. */
function assertHonestGetsThrough(mesh: GossipMesh, fromA: number): void {
  const honest = heartbeat(mesh.nodes[A]!, mesh.wall(A));
  const result = offer(mesh, fromA, honest);
  assert.deepEqual(result.rejected, [], 'the honest heartbeat is not refused');
  assert.ok(result.accepted, 'B accepts it');
  assert.equal(result.forwarded, 1, 'B forwards it');
  assert.ok(acceptedBy(mesh, C, honest), 'C gets it');
}

test('seen-set flood by one key: past its quota its messages are refused over-quota, an honest message is accepted and forwarded', () => {
  const { mesh, fromA } = line(1, { seenMax: 200 });
  const x = mesh.nodes[FIRST_STRANGER]!;
  assert.ok(offer(mesh, fromA, announcement(x, mesh.wall(x.index))).accepted);
  let overQuota = 0;
  for (let i = 0; i < 300; i++) {
    const result = offer(mesh, fromA, heartbeat(x, mesh.wall(B) + 29_900));
    if (result.rejected.includes('over-quota')) {
      overQuota++;
      assert.equal(result.forwarded, 0, 'an over-quota message is not forwarded');
    }
  }
  assert.ok(overQuota >= 300 - 64, `over-quota ${overQuota}`);
  assert.ok(mesh.nodes[B]!.engine.sizes.seen <= 200);
  assertHonestGetsThrough(mesh, fromA);
});

test('seen-set flood by many keys stamped wall + 29.9 s fills the set but never lifts the floor over fresh messages', () => {
  const sybils = 8;
  const { mesh, fromA } = line(sybils, { seenMax: 200 });
  for (let s = 0; s < sybils; s++) {
    const node = mesh.nodes[FIRST_STRANGER + s]!;
    offer(mesh, fromA, announcement(node, mesh.wall(node.index)));
    for (let i = 0; i < 64; i++) offer(mesh, fromA, heartbeat(node, mesh.wall(B) + 29_900));
  }
  const sizes = mesh.nodes[B]!.engine.sizes;
  assert.equal(sizes.seen, 200, 'the flood filled the set');
  assert.equal(mesh.nodes[B]!.engine.counters.rejected.replayed ?? 0, 0);
  assertHonestGetsThrough(mesh, fromA);
});

test("unknown origin: a HEARTBEAT / CONTENT_AVAILABILITY from an origin B has no record of and no link to is refused 'unknown-origin', not recorded, not forwarded", () => {
  const { mesh, fromA } = line(1);
  const x = mesh.nodes[FIRST_STRANGER]!;
  const seenBefore = mesh.nodes[B]!.engine.sizes.seen;
  const beat = heartbeat(x, mesh.wall(B));
  const result = offer(mesh, fromA, beat);
  assert.deepEqual(result.rejected, ['unknown-origin']);
  assert.equal(result.forwarded, 0);
  assert.equal(mesh.nodes[B]!.engine.sizes.seen, seenBefore, 'not recorded');
  const content = signed(x, {
    code: GossipCode.contentAvailability,
    ttl: 32,
    initialTtl: 32,
    messageId: messageId(),
    timestampMs: mesh.wall(B),
    entries: [{ lookupKey: new Uint8Array(32).fill(5), held: true }],
  } as UnsignedGossip);
  assert.deepEqual(offer(mesh, fromA, content).rejected, ['unknown-origin']);
  // A direct link's own heartbeat, and a known origin's, pass.
  assertHonestGetsThrough(mesh, fromA);
  assert.ok(offer(mesh, fromA, announcement(x, mesh.wall(x.index))).accepted);
  assert.ok(offer(mesh, fromA, beat).accepted, 'once X is known the same heartbeat passes');
});

test('bad signatures: the 8th forged frame on a link makes B close that link, counted; fewer keep it', () => {
  const { mesh, fromA } = line(1);
  const x = mesh.nodes[FIRST_STRANGER]!;
  const engine = mesh.nodes[B]!.engine;
  for (let i = 0; i < 8; i++) {
    const frame = announcement(x, mesh.wall(x.index));
    const body = frame.body.slice();
    body[body.length - 1]! ^= 0x01;
    assert.deepEqual(offer(mesh, fromA, { ...frame, body }).rejected, ['bad-signature']);
    assert.equal(engine.counters.closedBadFrames, i === 7 ? 1 : 0, `after ${i + 1} bad frames`);
  }
  assert.equal(mesh.linkId(B, A), undefined, 'B closed its link to A');
});

function recordOf(node: MeshNode, wall: number): Uint8Array {
  return buildPeerRecord(node.crypto, node.identity, {
    issuedAtMs: wall,
    broadcast: true,
    bootstrap: false,
    leaving: false,
    capabilities: 0,
    listenPort: 9000,
    deviceName: `node-${node.index}`,
    addresses: [`10.0.${node.index}.1`],
  });
}

function request(node: MeshNode, wall: number): GossipFrameMessage {
  return signed(node, {
    code: GossipCode.peerRequest,
    ttl: 16,
    initialTtl: 16,
    messageId: messageId(),
    timestampMs: wall,
    lookupKey: new Uint8Array(32).fill(0x77), // nobody holds it: B forwards the request to C
    maxResults: 8,
  } as UnsignedGossip);
}

function answer(node: MeshNode, requestFrame: GossipFrameMessage, wall: number) {
  return signed(node, {
    code: GossipCode.peerListResponse,
    ttl: 16,
    initialTtl: 16,
    messageId: messageId(),
    timestampMs: wall,
    requestId: requestFrame.body.slice(1, 17),
    records: [recordOf(node, wall)],
  });
}

test("request answers: a PEER_LIST_RESPONSE from a link the request was not sent on is refused 'unsolicited' and not relayed; from the link it went to it is relayed back on the route", () => {
  const { mesh, fromA } = line(1);
  const x = mesh.nodes[FIRST_STRANGER]!;
  const fromC = mesh.linkId(B, C)!;
  const req = request(x, mesh.wall(B));
  assert.equal(offer(mesh, fromA, req).forwarded, 1, 'B forwarded the request to C');
  // X (or anyone who saw the ID) answers from A's side: B never asked A.
  const forged = offer(mesh, fromA, answer(x, req, mesh.wall(B)));
  assert.deepEqual(forged.rejected, ['unsolicited']);
  assert.equal(forged.forwarded, 0);
  // The answer from C, where the request went, travels back to A only.
  const real = offer(mesh, fromC, answer(mesh.nodes[C]!, req, mesh.wall(B)));
  assert.deepEqual(real.rejected, []);
  assert.equal(real.forwarded, 1);
});

test("request routes: one link's request flood is refused 'over-quota' past its quota and does not flush the routes of another link", () => {
  const { mesh, fromA } = line(1);
  const x = mesh.nodes[FIRST_STRANGER]!;
  const fromC = mesh.linkId(B, C)!;
  // C's request, routed first.
  const honest = request(mesh.nodes[C]!, mesh.wall(B));
  assert.equal(offer(mesh, fromC, honest).forwarded, 1);
  let overQuota = 0;
  for (let i = 0; i < 1100; i++)
    if (offer(mesh, fromA, request(x, mesh.wall(B))).rejected.includes('over-quota')) overQuota++;
  assert.ok(overQuota >= 1100 - 128, `over-quota ${overQuota}`);
  // The honest route survived: A's answer to C's request is relayed back to C.
  const back = offer(mesh, fromA, answer(mesh.nodes[A]!, honest, mesh.wall(B)));
  assert.deepEqual(back.rejected, []);
  assert.equal(back.forwarded, 1);
});

/**
 * Eclipse (attacker review, high 3): 40 Sybils dial a victim that holds 4 honest links, 2 it
 * dialled and 2 inbound ones up for 2 minutes (proven). Before the guard, each newcomer closed a
 * random link, so 40 dials left the victim linked to Sybils only.
 */
function eclipseAttempt(sybilAddress: (i: number) => string) {
  const mesh = new GossipMesh(41);
  const victim = mesh.add();
  const honest = Array.from({ length: 8 }, () => mesh.add());
  const sybils = Array.from({ length: 40 }, (_, i) => mesh.add({ addresses: [sybilAddress(i)] }));
  mesh.autoDial = false;
  mesh.connect(victim.index, honest[0]!.index);
  mesh.connect(victim.index, honest[1]!.index);
  mesh.connect(honest[2]!.index, victim.index);
  mesh.connect(honest[3]!.index, victim.index);
  mesh.settle();
  mesh.advance(120_000); // heartbeats: the four links are proven
  for (let round = 0; round < 2; round++) {
    for (const sybil of sybils) {
      if (mesh.linkId(sybil.index, victim.index) === undefined)
        mesh.connect(sybil.index, victim.index);
      mesh.settle();
    }
  }
  const peers = [...victim.links.values()].map((side) => side.peer);
  return {
    honestLinked: honest.filter((h) => peers.includes(h.index)).map((h) => h.index),
    sybilLinks: peers.filter((p) => sybils.some((s) => s.index === p)).length,
    honest,
  };
}

test('eclipse: 40 Sybils in 40 networks dialling in never displace the links the victim dialled or its two oldest proven inbound links', () => {
  const { honestLinked, sybilLinks, honest } = eclipseAttempt((i) => `100.${64 + i}.0.1`);
  assert.deepEqual(
    honestLinked.sort((a, b) => a - b),
    honest.slice(0, 4).map((h) => h.index),
    'all four honest links survive',
  );
  assert.ok(sybilLinks <= 1, `the Sybils hold the one spare slot at most (${sybilLinks})`);
});

test('eclipse: 40 Sybils in one /24 hold at most 2 inbound links (the group cap), and the honest links stay', () => {
  const { honestLinked, sybilLinks } = eclipseAttempt((i) => `203.0.113.${i + 1}`);
  assert.equal(honestLinked.length, 4);
  assert.ok(sybilLinks <= 1);
  // With a roomier view the cap, not the view, is the limit: 2 of one /24.
  const roomy = new GossipMesh(42);
  const target = roomy.add({ settings: { activeLinks: 2, activeLinksMax: 50 } });
  const group = Array.from({ length: 10 }, (_, i) =>
    roomy.add({ addresses: [`203.0.113.${i + 1}`] }),
  );
  roomy.autoDial = false;
  for (const sybil of group) roomy.connect(sybil.index, target.index);
  roomy.settle();
  assert.equal(target.engine.sizes.links, 2, 'two inbound links from one /24');
  assert.equal(target.engine.counters.refusedLinks, 8);
});
