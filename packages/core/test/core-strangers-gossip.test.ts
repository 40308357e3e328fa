/**
 * Gossip routed by the Core over real stranger links (mesh harness): the Core hands gossip
 * frames to its one GossipEngine with the input's wall clock, sends the engine's frames on the
 * links it names, turns its dials into stranger `connect`s through the peer table (the device
 * that wants the link dials, whatever the Device IDs), and a content download with gossip on
 * dials the holders gossip told it of and completes from them, every chunk verified.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../src/bytes.js';
import type { GossipSelf, GossipSettings } from '../src/gossip/gossip-engine.js';
import { GossipCode } from '../src/gossip/messages.js';
import { lookupKeyOf } from '../src/gossip/lookup-key.js';
import { Capability, type GossipFrameMessage, type WireMessage } from '../src/wire/messages.js';
import { Mesh, type NodeOptions } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';

function self(index: number, broadcast: boolean): GossipSelf {
  return {
    broadcast,
    bootstrap: false,
    addresses: broadcast ? [`n${index}`] : [],
    listenPort: 9000,
    deviceName: `node-${index}`,
    capabilities: Capability.serveChunks,
  };
}

function node(
  index: number,
  broadcast: boolean,
  settings?: Partial<GossipSettings>,
  pod = index + 20,
): NodeOptions {
  return {
    podSecret: new Uint8Array(32).fill(pod),
    gossip: { self: self(index, broadcast), ...(settings === undefined ? {} : { settings }) },
  };
}

function dialStranger(mesh: Mesh, from: number, to: number): void {
  mesh.input(from, { type: 'dial-stranger', nowMs: mesh.nowMs, address: `n${to}`, port: 9000 });
  mesh.drive();
}

function accepted(mesh: Mesh, at: number, code: number, origin: number): number[] {
  const originHex = toHex(mesh.nodes[origin]!.deviceId);
  return mesh
    .eventsOf(at, 'gossip:accepted')
    .filter((e) => e.code === code && toHex(e.originDeviceId) === originHex)
    .map((e) => e.hops);
}

/** Lets the engines' timers run with the mesh's wall clock, so queued work goes out. */
function settle(mesh: Mesh, ms = 1_000): void {
  mesh.advance(ms);
}

test('gossip crosses stranger links: a PEER_UPDATE from gossip-self reaches the neighbour (1 hop) and its relay target (2 hops)', () => {
  const mesh = new Mesh([node(0, false), node(1, false), node(2, false)]);
  dialStranger(mesh, 0, 1);
  dialStranger(mesh, 2, 1);
  settle(mesh);
  mesh.input(0, {
    type: 'gossip-self',
    nowMs: mesh.nowMs,
    wallClockMs: mesh.wallClockMs,
    self: self(0, true),
  });
  settle(mesh);
  assert.deepEqual(accepted(mesh, 1, GossipCode.peerUpdate, 0), [1], 'node 1 heard node 0');
  assert.deepEqual(accepted(mesh, 2, GossipCode.peerUpdate, 0), [2], 'node 1 relayed it');
  const learnt = mesh.nodes[2]!.core.gossipEngine!.snapshot();
  assert.ok(learnt.some((p) => toHex(p.deviceId) === toHex(mesh.nodes[0]!.deviceId)));
});

test('find-peers sends a PEER_REQUEST the linked stranger accepts', () => {
  const mesh = new Mesh([node(0, false), node(1, true)]);
  dialStranger(mesh, 0, 1);
  settle(mesh);
  mesh.input(0, { type: 'find-peers', nowMs: mesh.nowMs, wallClockMs: mesh.wallClockMs });
  settle(mesh);
  assert.deepEqual(accepted(mesh, 1, GossipCode.peerRequest, 0), [1]);
});

test('an engine dial becomes a stranger connect; the silent node dials even when its Device ID is the larger', () => {
  const probe = new Mesh([{}, {}]);
  const [first, second] = [0, 1].map((i) => toHex(probe.nodes[i]!.deviceId));
  // The silent node is the one whose ID is larger: the pod rule would make it wait forever.
  const silent = first! > second! ? 0 : 1;
  const broadcaster = 1 - silent;
  const options = [0, 1].map((i) => node(i, i === broadcaster));
  const mesh = new Mesh(options);
  assert.ok(toHex(mesh.nodes[silent]!.deviceId) > toHex(mesh.nodes[broadcaster]!.deviceId));
  const record = mesh.nodes[broadcaster]!.core.gossipEngine!.ownRecord(mesh.wallClockMs);
  mesh.input(silent, {
    type: 'gossip-records',
    nowMs: mesh.nowMs,
    wallClockMs: mesh.wallClockMs,
    records: [record],
    source: 'tracker',
  });
  settle(mesh);
  const dial = mesh.nodes[silent]!.connects.find(
    (c) =>
      c.deviceId !== undefined && toHex(c.deviceId) === toHex(mesh.nodes[broadcaster]!.deviceId),
  );
  assert.equal(dial?.trust, 'stranger');
  assert.equal(dial?.address, `n${broadcaster}`);
  const [up] = mesh.eventsOf(silent, 'peer:connect');
  assert.equal(up?.remote.trust, 'stranger');
  assert.equal(
    mesh.eventsOf(broadcaster, 'peer:connect')[0]?.direction,
    'inbound',
    'the broadcaster was dialled (it never learnt where the silent node is)',
  );
  assert.equal(
    mesh.nodes[broadcaster]!.core.peers().find((p) => p.state === 'connected')?.address,
    '',
    "the stranger's address is not kept in the broadcaster's peer table",
  );
});

test('a content download with gossip on dials a holder that gossip told of and completes from it, every chunk verified', () => {
  const data = testBytes(6 * CHUNK, 91);
  const manifest = manifestOf(data);
  // 0 downloads (one gossip link wanted: it dials nothing for the view), 1 relays, 2 holds.
  const mesh = new Mesh([node(0, false, { activeLinks: 1 }), node(1, true), node(2, true)]);
  dialStranger(mesh, 0, 1);
  dialStranger(mesh, 2, 1);
  settle(mesh);
  const holder = mesh.nodes[2]!;
  // Published: the broadcasting holder's core originates CONTENT_AVAILABILITY by itself.
  mesh.seedContent(2, manifest, data, undefined, true);
  mesh.input(2, { type: 'timer-fired', nowMs: mesh.nowMs, wallClockMs: mesh.wallClockMs });
  settle(mesh);
  const holders = mesh.nodes[0]!.core.gossipEngine!.peersHolding(manifest.contentId);
  assert.deepEqual(
    holders.map((h) => toHex(h.deviceId)),
    [toHex(holder.deviceId)],
  );
  assert.equal(
    mesh.nodes[0]!.connects.filter((c) => c.deviceId !== undefined).length,
    0,
    'no dial to the holder before the download',
  );
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId },
  });
  mesh.runUntil(() => mesh.eventsOf(0, 'download:complete').length > 0, 60_000);
  const dial = mesh.nodes[0]!.connects.find(
    (c) => c.deviceId !== undefined && toHex(c.deviceId) === toHex(holder.deviceId),
  );
  assert.equal(dial?.trust, 'stranger', 'the holder was dialled as a stranger');
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  assert.ok(holder.readsAnswered > 0, 'the holder served it');
});

/** Every gossip frame and transfer message node `at` receives, recorded before it is handled. */
function tapReceived(mesh: Mesh, at: number): { frames: Uint8Array[]; messages: WireMessage[] } {
  const core = mesh.nodes[at]!.core as unknown as {
    gossip: { receive(linkId: number, frame: GossipFrameMessage, ...rest: number[]): void };
    transfers: { onMessage(linkId: number, message: WireMessage, nowMs: number): void };
  };
  const seen = { frames: [] as Uint8Array[], messages: [] as WireMessage[] };
  const receive = core.gossip.receive.bind(core.gossip);
  core.gossip.receive = (linkId, frame, ...rest) => {
    seen.frames.push(frame.body.slice());
    receive(linkId, frame, ...rest);
  };
  const onMessage = core.transfers.onMessage.bind(core.transfers);
  core.transfers.onMessage = (linkId, message, nowMs) => {
    seen.messages.push(message);
    onMessage(linkId, message, nowMs);
  };
  return seen;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

test('a relay stranger never sees the content ID: PEER_REQUEST and CONTENT_AVAILABILITY carry its lookup key, interest goes only to the learnt holder, and the download completes byte-exact', () => {
  const data = testBytes(4 * CHUNK, 93);
  const manifest = manifestOf(data);
  const mesh = new Mesh([node(0, false, { activeLinks: 1 }), node(1, true), node(2, true)]);
  dialStranger(mesh, 0, 1);
  dialStranger(mesh, 2, 1);
  settle(mesh);
  const relay = tapReceived(mesh, 1);
  mesh.seedContent(2, manifest, data, undefined, true);
  mesh.input(2, { type: 'timer-fired', nowMs: mesh.nowMs, wallClockMs: mesh.wallClockMs });
  settle(mesh);
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId },
  });
  mesh.runUntil(() => mesh.eventsOf(0, 'download:complete').length > 0, 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data, 'the download is byte-exact');
  const key = lookupKeyOf(mesh.nodes[0]!.core.gossipEngine!.options.crypto, manifest.contentId);
  assert.ok(relay.frames.length > 0, 'the relay received gossip');
  assert.ok(
    relay.frames.some((body) => contains(body, key)),
    'the lookup key crossed the relay (CONTENT_AVAILABILITY / PEER_REQUEST)',
  );
  assert.ok(
    !relay.frames.some((body) => contains(body, manifest.contentId)),
    'no gossip frame the relay got names the content ID',
  );
  const named = relay.messages.filter(
    (m) => 'contentId' in m && toHex(m.contentId) === toHex(manifest.contentId),
  );
  assert.deepEqual(named, [], 'no transfer message (interest, announce) to the relay names it');
  assert.ok(
    !relay.messages.some((m) => m.type === 'chunk-request'),
    'nothing was requested from the relay',
  );
});
