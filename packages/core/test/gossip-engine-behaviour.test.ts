/**
 * What the engine does with what it accepted: the IP-sharing rule across a mixed mesh, expiry,
 * the table bound, scoring, records from a cache, PEER_REQUEST answers along the reverse path,
 * content availability, leaving and withdrawn broadcast, and what a new link gets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex, utf8Encode } from '../src/bytes.js';
import { decodeGossip, encodeGossip } from '../src/gossip/gossip-codec.js';
import { GossipDefaults } from '../src/gossip/gossip-engine.js';
import { GossipCode } from '../src/gossip/messages.js';
import { buildPeerRecord, decodePeerRecord } from '../src/gossip/peer-record.js';
import { bootstrapMesh, GossipMesh, type MeshNode } from './support/gossip-mesh.js';

const HOUR_MS = 60 * 60 * 1000;

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function knows(node: MeshNode, other: MeshNode): boolean {
  return node.engine
    .snapshot()
    .some((p) => toHex(p.deviceId) === toHex(other.deviceId) && p.record !== undefined);
}

function recordOf(
  node: MeshNode,
  issuedAtMs: number,
  fields: Partial<{ broadcast: boolean; leaving: boolean; addresses: string[] }> = {},
) {
  const broadcast = fields.broadcast ?? true;
  return buildPeerRecord(node.crypto, node.identity, {
    issuedAtMs,
    broadcast,
    bootstrap: false,
    leaving: fields.leaving ?? false,
    capabilities: 0,
    listenPort: 9000,
    deviceName: `node-${node.index}`,
    addresses: fields.addresses ?? (broadcast ? [`10.2.${node.index}.1`] : []),
  });
}

let messageCounter = 0;
function announcementFrame(node: MeshNode, wall: number) {
  const messageId = new Uint8Array(16).fill(0xaa);
  new DataView(messageId.buffer).setUint32(12, ++messageCounter);
  return encodeGossip(node.crypto, node.identity, {
    code: GossipCode.peerAnnouncement,
    ttl: 32,
    initialTtl: 32,
    messageId,
    timestampMs: wall,
    record: recordOf(node, wall),
  });
}

test('IP-sharing rule: across a mesh of silent and broadcasting engines, no silent address is in any snapshot or any frame', () => {
  const silent = (i: number) => i % 3 === 1;
  const frames: Uint8Array[] = [];
  const mesh = bootstrapMesh(30, 7, silent);
  mesh.tap = (d) => {
    frames.push(d.frame.body);
    return undefined;
  };
  // Traffic of every kind: announcements, requests from silent nodes, content, heartbeats.
  for (const node of mesh.nodes) {
    node.engine.announce(mesh.nowMs, mesh.wall(node.index));
    node.engine.requestPeers(undefined, mesh.nowMs, mesh.wall(node.index));
    node.engine.announceContent(
      [{ contentId: new Uint8Array(32).fill(node.index), held: true }],
      mesh.nowMs,
      mesh.wall(node.index),
    );
    mesh.drain(node.index);
    mesh.settle();
  }
  mesh.advance(10 * 60_000);
  const silentNodes = mesh.nodes.filter((n) => silent(n.index));
  assert.ok(
    silentNodes.every((n) => n.engine.sizes.links > 0),
    'silent engines dialled out and are linked',
  );
  assert.ok(
    silentNodes.every((n) => n.engine.snapshot().filter((p) => p.record !== undefined).length > 5),
    'silent engines learnt peers',
  );
  for (const s of silentNodes) {
    const address = s.self.addresses[0]!;
    for (const node of mesh.nodes) {
      for (const peer of node.engine.snapshot()) {
        assert.ok(!peer.addresses.includes(address), `node ${node.index} lists ${address}`);
        if (toHex(peer.deviceId) === toHex(s.deviceId)) {
          assert.equal(peer.broadcast, false);
          assert.equal(peer.record, undefined);
        }
      }
    }
    const needle = utf8Encode(address);
    assert.ok(
      frames.every((body) => !contains(body, needle)),
      `a frame carried ${address}`,
    );
    const own = decodePeerRecord(s.engine.ownRecord(mesh.wall(s.index)));
    assert.ok(own.ok && own.record.addresses.length === 0 && !own.record.broadcast);
  }
  assert.ok(frames.length > 1000);
});

test('a silent engine originates no announcement and no content availability, and says why', () => {
  const mesh = new GossipMesh(3);
  const s = mesh.add({ broadcast: false, addresses: ['192.168.77.9'] });
  mesh.add();
  mesh.connect(0, 1);
  mesh.settle();
  const sentBefore = s.engine.counters.sent;
  const announced = s.engine.announce(mesh.nowMs, mesh.wall(0));
  const content = s.engine.announceContent(
    [{ contentId: new Uint8Array(32), held: true }],
    mesh.nowMs,
    mesh.wall(0),
  );
  assert.equal(announced.sent, false);
  assert.equal(content.sent, false);
  assert.match(announced.sent ? '' : announced.reason, /does not broadcast/);
  assert.match(content.sent ? '' : content.reason, /does not broadcast/);
  assert.equal(s.engine.counters.sent, sentBefore);
  // Its heartbeats go one hop (signed initialTtl 1): the neighbour accepts and relays nothing.
  mesh.advance(GossipDefaults.heartbeatIntervalMs * 2);
  const heartbeats = mesh
    .eventsOf(1, 'gossip:accepted')
    .filter((e) => e.code === GossipCode.heartbeat);
  assert.ok(heartbeats.length >= 1);
  assert.ok(heartbeats.every((e) => e.hops === 1));
});

test('a new link gets a table sync of broadcasting records (never the peer itself) and a one-hop announcement nobody relays', () => {
  const mesh = new GossipMesh(5);
  for (let i = 0; i < 4; i++) mesh.add({ broadcast: i !== 2 });
  mesh.autoDial = false;
  mesh.connect(0, 1);
  mesh.connect(0, 2); // silent
  mesh.settle();
  const syncs: string[][] = [];
  const announcements: string[] = [];
  mesh.tap = (d) => {
    if (d.from !== 0 || d.to !== 3) return undefined;
    const decoded = decodeGossip(d.frame);
    assert.ok(decoded.ok);
    const m = decoded.message;
    if (m.code === GossipCode.peerListResponse) {
      assert.equal(m.initialTtl, 1, 'a sync is for the neighbour only');
      syncs.push(
        m.records.map((r) => {
          const d2 = decodePeerRecord(r);
          assert.ok(d2.ok);
          return d2.record.deviceName;
        }),
      );
    }
    if (m.code === GossipCode.peerAnnouncement) {
      assert.equal(m.initialTtl, 1, 'a link-up announcement goes one hop (no N^2 join flood)');
      announcements.push(toHex(m.originPublicKey));
    }
    return undefined;
  };
  mesh.connect(0, 3);
  mesh.settle();
  assert.deepEqual(syncs, [['node-1']]);
  assert.deepEqual(announcements, [toHex(mesh.nodes[0]!.identity.publicKey)]);
});

test('expiry: a peer not heard for 2 hours is dropped (expired event), and not before', () => {
  const mesh = new GossipMesh(11);
  for (let i = 0; i < 3; i++) mesh.add();
  mesh.autoDial = false;
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.settle();
  mesh.announce(2);
  assert.ok(knows(mesh.nodes[0]!, mesh.nodes[2]!));
  // Node 2 falls silent (its link goes); node 0 hears of it no more.
  mesh.disconnect(1, mesh.linkId(1, 2)!);
  const interval = GossipDefaults.heartbeatIntervalMs;
  mesh.advance(2 * HOUR_MS - 2 * interval);
  assert.ok(knows(mesh.nodes[0]!, mesh.nodes[2]!), 'still there before 2 hours');
  mesh.advance(3 * interval);
  assert.equal(knows(mesh.nodes[0]!, mesh.nodes[2]!), false, 'gone after 2 hours');
  const expired = mesh.eventsOf(0, 'gossip:peer').filter((e) => e.change === 'expired');
  assert.deepEqual(
    expired.map((e) => toHex(e.deviceId)),
    [toHex(mesh.nodes[2]!.deviceId)],
  );
  assert.ok(knows(mesh.nodes[0]!, mesh.nodes[1]!), 'the linked peer, heard by heartbeat, stays');
});

test('a live broadcasting peer beyond heartbeat range does not expire: it re-announces every hour', () => {
  const mesh = new GossipMesh(12);
  for (let i = 0; i < 5; i++) mesh.add();
  mesh.autoDial = false;
  for (let i = 0; i < 4; i++) mesh.connect(i, i + 1);
  mesh.settle();
  mesh.advance(5 * HOUR_MS);
  assert.ok(knows(mesh.nodes[0]!, mesh.nodes[4]!), 'four hops away, still known');
});

test('table bound: a table never holds more than tableMax peers; a newcomer replaces one gone quiet, not a fresh one', () => {
  const mesh = new GossipMesh(13);
  const b = mesh.add({ settings: { tableMax: 8 } });
  const a = mesh.add();
  const others = Array.from({ length: 20 }, () => mesh.add());
  mesh.autoDial = false;
  mesh.connect(0, 1);
  mesh.settle();
  const fromA = mesh.linkId(0, 1)!;
  const relayAnnouncement = (o: MeshNode) =>
    mesh.inject(0, fromA, announcementFrame(o, mesh.wall(o.index)));
  // Twelve others' announcements arrive through A.
  for (const o of others.slice(0, 12)) {
    relayAnnouncement(o);
    assert.ok(b.engine.sizes.table <= 8);
  }
  mesh.settle();
  assert.equal(b.engine.sizes.table, 8);
  const heldBefore = new Set(b.engine.snapshot().map((p) => toHex(p.deviceId)));
  // Time passes; only A keeps being heard. A newcomer now takes a quiet peer's place.
  mesh.advance(20 * 60_000);
  const late = others[15]!;
  relayAnnouncement(late);
  const after = b.engine.snapshot().map((p) => toHex(p.deviceId));
  assert.equal(after.length, 8);
  assert.ok(after.includes(toHex(late.deviceId)), 'the newcomer got in');
  assert.ok(after.includes(toHex(a.deviceId)), 'the linked, heard peer stayed');
  assert.ok(
    [...heldBefore].some((id) => !after.includes(id)),
    'a quiet one went',
  );
});

test('scoring: a peer heard every interval and fast outranks one heard once and slow; scores stay in [0, 1]', () => {
  const mesh = new GossipMesh(14);
  for (let i = 0; i < 4; i++) mesh.add();
  mesh.autoDial = false;
  mesh.connect(0, 1); // heard every interval by heartbeat
  mesh.connect(1, 3);
  mesh.connect(0, 2);
  mesh.settle();
  mesh.announce(3); // node 0 learns node 3, two hops away
  mesh.disconnect(0, mesh.linkId(0, 2)!); // node 2 heard once, at link time
  const n0 = mesh.nodes[0]!;
  n0.engine.observe(mesh.nodes[1]!.deviceId, { rttMs: 20, bytesPerSecond: 5_000_000 });
  n0.engine.observe(mesh.nodes[2]!.deviceId, { rttMs: 900, bytesPerSecond: 10_000 });
  mesh.advance(30 * 60_000);
  const score = (i: number) =>
    n0.engine.snapshot().find((p) => toHex(p.deviceId) === toHex(mesh.nodes[i]!.deviceId))!.score;
  assert.ok(score(1) > score(3), `linked and fast ${score(1)} > two hops, unmeasured ${score(3)}`);
  assert.ok(
    score(3) > score(2),
    `heard by heartbeat ${score(3)} > heard once and slow ${score(2)}`,
  );
  for (const p of n0.engine.snapshot()) assert.ok(p.score >= 0 && p.score <= 1);
});

test('addRecords: cached records are verified; fresh broadcasting ones are accepted with source cache and dialled; others are ignored', () => {
  const mesh = new GossipMesh(15);
  const me = mesh.add();
  const peers = Array.from({ length: 6 }, () => mesh.add());
  mesh.autoDial = false;
  const wall = mesh.wall(0);
  const tampered = recordOf(peers[3]!, wall - 60_000);
  tampered[tampered.length - 1]! ^= 1;
  const records = [
    recordOf(peers[0]!, wall - 10 * 60_000),
    recordOf(peers[1]!, wall - 60_000),
    recordOf(peers[2]!, wall - 3 * HOUR_MS), // older than peerExpiryMs
    tampered,
    recordOf(peers[4]!, wall, { broadcast: false }), // silent: no table takes it
    me.engine.ownRecord(wall), // itself
    new Uint8Array([1, 2, 3]),
  ];
  assert.equal(me.engine.addRecords(records, 'cache', mesh.nowMs, wall), 2);
  mesh.drain(0);
  const snapshot = me.engine.snapshot();
  assert.deepEqual(snapshot.map((p) => p.deviceName).sort(), ['node-1', 'node-2']);
  assert.ok(snapshot.every((p) => p.source === 'cache'));
  const first = snapshot.find((p) => p.deviceName === 'node-1')!;
  assert.equal(
    first.lastHeardMs,
    mesh.nowMs - 10 * 60_000,
    'last heard is the record’s issue time',
  );
  assert.deepEqual(me.dials.map((d) => d.address).sort(), ['10.2.1.1', '10.2.2.1']);
  // The same records again change nothing and are not dialled twice.
  assert.equal(me.engine.addRecords(records.slice(0, 2), 'cache', mesh.nowMs, wall), 2);
  mesh.drain(0);
  assert.equal(me.dials.length, 2);
});

test('PEER_REQUEST: the one node holding a content answers, and the answer travels back along the path', () => {
  const mesh = new GossipMesh(16);
  const nodes = [mesh.add({ broadcast: false }), mesh.add(), mesh.add(), mesh.add()];
  mesh.autoDial = false;
  const contentId = new Uint8Array(32).fill(0xc1);
  // Node 3 published the content before it had links: only it knows.
  assert.ok(
    nodes[3]!.engine.announceContent([{ contentId, held: true }], mesh.nowMs, mesh.wall(3)).sent,
  );
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.connect(2, 3);
  mesh.settle();
  assert.equal(nodes[0]!.engine.peersHolding(contentId).length, 0);
  const responses: number[] = [];
  mesh.tap = (d) => {
    if (d.frame.code === GossipCode.peerListResponse) responses.push(d.from * 10 + d.to);
    return undefined;
  };
  nodes[0]!.engine.requestPeers(contentId, mesh.nowMs, mesh.wall(0));
  mesh.drain(0);
  mesh.settle();
  assert.deepEqual(
    responses,
    [32, 21, 10],
    'the answer went back 3 -> 2 -> 1 -> 0 and nowhere else',
  );
  const holders = nodes[0]!.engine.peersHolding(contentId);
  assert.deepEqual(
    holders.map((p) => p.deviceName),
    ['node-3'],
  );
  assert.deepEqual(holders[0]!.addresses, ['10.0.3.1']);
});

test('PEER_REQUEST without a content: the first node with broadcasting records answers; the silent asker learns and dials', () => {
  const mesh = new GossipMesh(17);
  const asker = mesh.add({ broadcast: false, settings: { activeLinks: 3 } });
  for (let i = 0; i < 5; i++) mesh.add();
  mesh.autoDial = false;
  mesh.connect(0, 1);
  for (let i = 2; i < 6; i++) mesh.connect(1, i);
  mesh.settle();
  const answers: number[] = [];
  mesh.tap = (d) => {
    const decoded = decodeGossip(d.frame);
    if (d.to === 0 && decoded.ok && decoded.message.code === GossipCode.peerListResponse)
      answers.push(decoded.message.records.length);
    return undefined;
  };
  asker.engine.requestPeers(undefined, mesh.nowMs, mesh.wall(0));
  mesh.drain(0);
  mesh.settle();
  assert.deepEqual(answers, [5], 'node 1 answers: its own record and its 4 broadcasting peers');
  assert.ok(asker.engine.snapshot().filter((p) => p.record !== undefined).length >= 4);
  assert.ok(asker.dials.length >= 1, 'it asked to dial what it learnt');
});

test('CONTENT_AVAILABILITY: receivers record the holder (gossip:content, peersHolding) and its withdrawal', () => {
  const mesh = new GossipMesh(18);
  for (let i = 0; i < 3; i++) mesh.add();
  mesh.autoDial = false;
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.settle();
  const contentId = new Uint8Array(32).fill(7);
  mesh.nodes[2]!.engine.announceContent([{ contentId, held: true }], mesh.nowMs, mesh.wall(2));
  mesh.drain(2);
  mesh.settle();
  const events = mesh.eventsOf(0, 'gossip:content');
  assert.equal(events.length, 1);
  assert.equal(toHex(events[0]!.deviceId), toHex(mesh.nodes[2]!.deviceId));
  assert.equal(events[0]!.held, true);
  assert.deepEqual(
    mesh.nodes[0]!.engine.peersHolding(contentId).map((p) => p.deviceName),
    ['node-2'],
  );
  mesh.nodes[2]!.engine.announceContent([{ contentId, held: false }], mesh.nowMs, mesh.wall(2));
  mesh.drain(2);
  mesh.settle();
  assert.equal(mesh.nodes[0]!.engine.peersHolding(contentId).length, 0);
});

test("PEER_UPDATE leaving: the peer is removed ('left') everywhere, and an older announcement cannot bring it back", () => {
  const mesh = new GossipMesh(19);
  for (let i = 0; i < 3; i++) mesh.add();
  mesh.autoDial = false;
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.settle();
  mesh.announce(2);
  const n2 = mesh.nodes[2]!;
  let oldAnnouncement;
  mesh.tap = (d) => {
    if (d.from === 2 && d.frame.code === GossipCode.peerAnnouncement) oldAnnouncement = d.frame;
    return undefined;
  };
  n2.engine.announce(mesh.nowMs, mesh.wall(2));
  mesh.drain(2);
  mesh.tap = undefined;
  const leaving = n2.engine.leave(mesh.nowMs, mesh.wall(2));
  assert.ok(leaving.sent);
  mesh.drain(2);
  mesh.settle();
  assert.equal(knows(mesh.nodes[0]!, n2), false);
  assert.ok(
    mesh
      .eventsOf(0, 'gossip:peer')
      .some((e) => e.change === 'left' && toHex(e.deviceId) === toHex(n2.deviceId)),
  );
  // The announcement signed before leaving, arriving late, is stale.
  mesh.inject(0, mesh.linkId(0, 1)!, oldAnnouncement!);
  assert.equal(knows(mesh.nodes[0]!, n2), false);
});

test('setSelf to silent: a PEER_UPDATE withdraws the address from every table', () => {
  const mesh = new GossipMesh(20);
  for (let i = 0; i < 3; i++) mesh.add();
  mesh.autoDial = false;
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.settle();
  mesh.announce(2);
  const n2 = mesh.nodes[2]!;
  assert.ok(
    mesh.nodes[0]!.engine.snapshot().some((p) => p.addresses.includes(n2.self.addresses[0]!)),
  );
  n2.engine.setSelf({ ...n2.self, broadcast: false }, mesh.nowMs, mesh.wall(2));
  mesh.drain(2);
  mesh.settle();
  mesh.advance(HOUR_MS);
  for (const node of mesh.nodes.slice(0, 2))
    assert.ok(node.engine.snapshot().every((p) => !p.addresses.includes(n2.self.addresses[0]!)));
});
