/**
 * Stranger links between real Cores (mesh harness, docs/protocol.md 3.1 and 7.5): a link's
 * trust is the suite its handshake used; with gossip on one listener accepts pod (XXpsk3) and
 * stranger (XX) links; a stranger link carries content by ID and gossip, never FETCH_ASSIGN,
 * URL lookups or RPC; CHUNK_ANNOUNCE goes to a stranger only for a content it announced itself.
 *
 * A "probe" is a Core without pod secret or gossip and with `handleTransfers: false`: its
 * outbound links run plain XX and every message it receives surfaces as `peer:message`, so it
 * sees exactly what a gossiping Core sends a stranger, and can send it anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../src/bytes.js';
import type { CoreEvent } from '../src/core.js';
import { RPC_ERROR_STRANGER_LINK } from '../src/core.js';
import type { GossipSelf } from '../src/gossip/gossip-engine.js';
import { Capability, TransferStatus, type WireMessage } from '../src/wire/messages.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import { Mesh, type NodeOptions } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';
import { tapSent } from './support/sent-messages.js';

const secret = (n: number): Uint8Array => new Uint8Array(32).fill(n);

function self(name: string): GossipSelf {
  return {
    broadcast: false,
    bootstrap: false,
    addresses: [],
    listenPort: 9000,
    deviceName: name,
    capabilities: Capability.serveChunks,
  };
}

/** A gossiping node in pod `pod` (undefined: a stranger-only node). */
function gossiper(pod: number | undefined, name: string, extra: NodeOptions = {}): NodeOptions {
  return {
    ...(pod === undefined ? {} : { podSecret: secret(pod) }),
    gossip: { self: self(name) },
    ...extra,
  };
}

const probe: NodeOptions = { handleTransfers: false };

function received(mesh: Mesh, node: number): WireMessage[] {
  return mesh.eventsOf(node, 'peer:message').map((e) => e.message);
}

function connected(mesh: Mesh, node: number): Extract<CoreEvent, { type: 'peer:connect' }>[] {
  return mesh.eventsOf(node, 'peer:connect');
}

/** Node `from` dials `to` as a stranger (`dial-stranger`), and the mesh settles. */
function dialStranger(mesh: Mesh, from: number, to: number, deviceId?: Uint8Array): void {
  mesh.input(from, {
    type: 'dial-stranger',
    nowMs: mesh.nowMs,
    address: `n${to}`,
    port: 9000,
    ...(deviceId === undefined ? {} : { deviceId }),
  });
  mesh.drive();
}

test('two gossiping Cores of different pods link as strangers: connect.trust, XX, trust on both ends, HELLO gossip bit', () => {
  const mesh = new Mesh([gossiper(1, 'a'), gossiper(2, 'b')]);
  dialStranger(mesh, 0, 1);
  const dial = mesh.nodes[0]!.connects[0]!;
  assert.equal(dial.trust, 'stranger');
  assert.equal(dial.deviceId, undefined, 'dialled by address alone');
  for (const node of [0, 1]) {
    const [event] = connected(mesh, node);
    assert.equal(event?.remote.trust, 'stranger', `node ${node} sees a stranger link`);
    assert.ok((event.remote.capabilities & Capability.gossip) !== 0, 'HELLO has the gossip bit');
  }
  const [row0] = mesh.nodes[0]!.core.peers();
  assert.equal(row0?.trust, 'stranger');
  assert.equal(row0?.source, 'manual', 'the dialler learnt it from dial-stranger');
  assert.equal(
    mesh.nodes[1]!.core.peers()[0]?.source,
    'gossip',
    'the dialled met it as a stranger',
  );
});

test('a pod pair with gossip on still runs XXpsk3 and gets trust pod', () => {
  const mesh = new Mesh([gossiper(3, 'a'), gossiper(3, 'b')]);
  mesh.connect(0, 1);
  mesh.drive();
  for (const node of [0, 1]) {
    assert.equal(connected(mesh, node)[0]?.remote.trust, 'pod', `node ${node}`);
    assert.equal(mesh.nodes[node]!.core.peers()[0]?.trust, 'pod');
  }
});

test('a gossiping pod member dialled as a stranger by a member of its own pod gets a stranger link, not a pod one', () => {
  // The suite decides: a dial that offers XX is a stranger link even between pod members.
  const mesh = new Mesh([gossiper(4, 'a'), gossiper(4, 'b')]);
  dialStranger(mesh, 0, 1);
  assert.equal(connected(mesh, 1)[0]?.remote.trust, 'stranger');
});

test('without gossip a stranger XX handshake is refused with suiteUnsupported, as before', () => {
  const mesh = new Mesh([probe, { podSecret: secret(5) }]);
  mesh.connect(0, 1);
  mesh.drive();
  assert.equal(connected(mesh, 1).length, 0, 'no link became ready');
  const [gone] = mesh.eventsOf(1, 'peer:disconnect');
  assert.equal(gone?.reason, ReasonCode.suiteUnsupported);
});

test('a stranger-only node (no pod secret, gossip on) accepts XX and refuses a pod (XXpsk3) dial', () => {
  const mesh = new Mesh([{ podSecret: secret(6) }, gossiper(undefined, 'b'), probe]);
  mesh.connect(0, 1);
  mesh.connect(2, 1);
  mesh.drive();
  const ready = connected(mesh, 1);
  assert.equal(ready.length, 1);
  assert.equal(ready[0]!.linkId, Mesh.linkId(2), 'the probe (XX) linked');
  assert.equal(ready[0]!.remote.trust, 'stranger');
  const refused = mesh.eventsOf(1, 'peer:disconnect').find((e) => e.linkId === Mesh.linkId(0));
  assert.equal(refused?.reason, ReasonCode.suiteUnsupported);
});

test('dial-stranger naming a Device ID closes a link answered by another device (identityRejected)', () => {
  const mesh = new Mesh([gossiper(1, 'a'), gossiper(2, 'b'), gossiper(3, 'c')]);
  dialStranger(mesh, 0, 1, mesh.nodes[2]!.deviceId);
  assert.equal(connected(mesh, 0).length, 0, 'node 0 never reports the wrong device');
  const [gone] = mesh.eventsOf(0, 'peer:disconnect');
  assert.equal(gone?.reason, ReasonCode.identityRejected);
});

test('a stranger FETCH_ASSIGN gets STATUS error and no origin fetch; URL_QUERY no answer; RPC_REQUEST RPC_ERROR; none reaches the host', () => {
  const mesh = new Mesh([
    probe,
    gossiper(7, 'b', {
      capabilities: Capability.serveChunks | Capability.fetchOrigin | Capability.rpc,
    }),
  ]);
  mesh.connect(0, 1);
  mesh.drive();
  assert.equal(connected(mesh, 1)[0]?.remote.trust, 'stranger');
  const send = (message: WireMessage): void =>
    mesh.input(0, { type: 'send-message', nowMs: mesh.nowMs, linkId: Mesh.linkId(1), message });
  send({
    type: 'fetch-assign',
    requestId: 1,
    url: 'https://example.com/x',
    rangeStart: 0,
    rangeEnd: 10,
    validator: '"v"',
    headers: [],
  });
  send({ type: 'url-query', queryId: 9, url: 'https://example.com/x' });
  send({ type: 'url-answer', queryId: 9, entries: [] });
  send({ type: 'rpc-request', callId: 5, method: 'store.has', body: new Uint8Array(3) });
  send({ type: 'rpc-response', callId: 6, body: new Uint8Array(0) });
  mesh.drive();
  const node1 = mesh.nodes[1]!;
  assert.equal(node1.fetches.length, 0, 'FETCH_ASSIGN from a stranger fetched nothing');
  assert.equal(mesh.eventsOf(1, 'peer:message').length, 0, 'no stranger frame reached the host');
  assert.deepEqual(node1.core.strangerRefusals, {
    'fetch-assign': 1,
    'url-query': 1,
    'url-answer': 1,
    rpc: 2,
  });
  const answers = received(mesh, 0);
  const status = answers.find((m) => m.type === 'status');
  assert.ok(status?.type === 'status' && status.requestId === 1);
  assert.equal(status.status, TransferStatus.error);
  assert.match(status.message, /pod links only/);
  assert.ok(!answers.some((m) => m.type === 'url-answer'), 'URL_QUERY was not answered');
  const rpc = answers.find((m) => m.type === 'rpc-error');
  assert.ok(rpc?.type === 'rpc-error');
  assert.equal(rpc.callId, 5);
  assert.equal(rpc.code, RPC_ERROR_STRANGER_LINK);
  assert.ok(mesh.nodes[1]!.core.openLinkCount === 1, 'the link stays up');
});

test('no unsolicited CHUNK_ANNOUNCE to a stranger, unlike a pod member; an interest in a published content gets the held ranges', () => {
  const data = testBytes(5 * CHUNK, 81);
  const manifest = manifestOf(data);
  const other = manifestOf(testBytes(2 * CHUNK, 82));
  const podProbe: NodeOptions = { podSecret: secret(8), handleTransfers: false };
  const mesh = new Mesh([probe, gossiper(8, 'holder'), podProbe]);
  mesh.seedContent(1, manifest, data, undefined, true);
  mesh.connect(0, 1);
  mesh.connect(2, 1);
  const toStranger = tapSent(mesh, 1, 0);
  mesh.drive();
  const announces = (node: number): WireMessage[] =>
    received(mesh, node).filter((m) => m.type === 'chunk-announce');
  assert.equal(announces(2).length, 1, 'the pod member hears of the held content at once');
  assert.equal(announces(0).length, 0, 'the stranger hears nothing unasked');
  // A content the holder gets later is announced to the pod member only.
  mesh.seedContent(1, other, testBytes(2 * CHUNK, 82));
  mesh.drive();
  assert.equal(announces(2).length, 2);
  assert.equal(announces(0).length, 0);
  // The stranger announces interest (no ranges): it is answered with what is held.
  mesh.input(0, {
    type: 'send-message',
    nowMs: mesh.nowMs,
    linkId: Mesh.linkId(1),
    message: { type: 'chunk-announce', contentId: manifest.contentId, ranges: [] },
  });
  mesh.drive();
  const answer = announces(0);
  assert.equal(answer.length, 1);
  assert.ok(answer[0]!.type === 'chunk-announce');
  assert.equal(toHex(answer[0].contentId), toHex(manifest.contentId));
  assert.deepEqual(answer[0].ranges, [{ start: 0, end: 5 }]);
  // An interest in a held but unpublished content (the stranger knows its ID) gets nothing.
  mesh.input(0, {
    type: 'send-message',
    nowMs: mesh.nowMs,
    linkId: Mesh.linkId(1),
    message: { type: 'chunk-announce', contentId: other.contentId, ranges: [] },
  });
  mesh.drive();
  assert.equal(announces(0).length, 1, 'the unpublished content is not announced to a stranger');
  // A second interest in the same content is not answered again, and nothing else leaked.
  mesh.input(0, {
    type: 'send-message',
    nowMs: mesh.nowMs,
    linkId: Mesh.linkId(1),
    message: { type: 'chunk-announce', contentId: manifest.contentId, ranges: [] },
  });
  mesh.drive();
  assert.equal(announces(0).length, 1);
  const leaked = toStranger.filter(
    (m) =>
      (m.type === 'chunk-announce' || m.type === 'chunk-remove') &&
      toHex(m.contentId) !== toHex(manifest.contentId),
  );
  assert.deepEqual(leaked, [], 'the other content ID never went to the stranger');
  // Removing the unasked content sends CHUNK_REMOVE to the pod member only.
  mesh.input(1, { type: 'content-removed', nowMs: mesh.nowMs, contentId: other.contentId });
  mesh.drive();
  assert.ok(received(mesh, 2).some((m) => m.type === 'chunk-remove'));
  assert.ok(!toStranger.some((m) => m.type === 'chunk-remove'));
});

test('a stranger asking for a held but unpublished content (manifest or chunk) gets notFound, as for a hash nobody holds; a published one is served', () => {
  const secretData = testBytes(3 * CHUNK, 84);
  const secretManifest = manifestOf(secretData);
  const publicData = testBytes(2 * CHUNK, 85);
  const publicManifest = manifestOf(publicData);
  const mesh = new Mesh([probe, gossiper(12, 'holder')]);
  mesh.seedContent(1, secretManifest, secretData);
  mesh.seedContent(1, publicManifest, publicData, undefined, true);
  mesh.connect(0, 1);
  mesh.drive();
  const ask = (requestId: number, chunkHash: Uint8Array): void => {
    mesh.input(0, {
      type: 'send-message',
      nowMs: mesh.nowMs,
      linkId: Mesh.linkId(1),
      message: { type: 'chunk-request', requestId, chunkHash, priority: 0 },
    });
    mesh.drive();
  };
  const statusOf = (requestId: number): number | undefined => {
    for (const m of received(mesh, 0))
      if (m.type === 'status' && m.requestId === requestId) return m.status;
    return undefined;
  };
  ask(1, secretManifest.contentId);
  ask(3, secretManifest.chunkHashes[0]!);
  ask(5, new Uint8Array(32).fill(0x5a)); // held by nobody
  assert.equal(statusOf(1), TransferStatus.notFound, 'the unpublished manifest is not served');
  assert.equal(statusOf(3), TransferStatus.notFound, 'an unpublished chunk is not served');
  assert.equal(statusOf(5), TransferStatus.notFound);
  const details = received(mesh, 0)
    .filter((m) => m.type === 'status')
    .map((m) => (m.type === 'status' ? m.message : ''));
  assert.equal(new Set(details).size, 1, 'the refusal reads exactly like "not held"');
  assert.equal(mesh.nodes[1]!.readsAnswered, 0, 'nothing of the private content was read');
  assert.ok(!received(mesh, 0).some((m) => m.type === 'data'), 'no DATA went to the stranger');
  ask(7, publicManifest.contentId);
  mesh.runUntil(() => statusOf(7) !== undefined, 10_000);
  assert.equal(statusOf(7), TransferStatus.ok, 'the published manifest is served');
});

test('a content download from strangers completes exactly: interest announced, manifest and chunks verified, a corrupting stranger costs re-fetches and a ban', () => {
  const data = testBytes(12 * CHUNK, 83);
  const manifest = manifestOf(data);
  const broadcasting = (n: number): GossipSelf => ({
    ...self(`n${n}`),
    broadcast: true,
    addresses: [`n${n}`],
  });
  const mesh = new Mesh([
    gossiper(undefined, 'requester'),
    { podSecret: secret(10), gossip: { self: broadcasting(1) } },
    {
      podSecret: secret(11),
      gossip: { self: broadcasting(2) },
      testFaults: { corruptServedChunks: true },
    },
  ]);
  dialStranger(mesh, 0, 2);
  dialStranger(mesh, 0, 1);
  for (const peer of [1, 2])
    assert.equal(connected(mesh, peer)[0]?.remote.trust, 'stranger', `node ${peer}`);
  // Both publish it: their cores announce it by lookup key (CONTENT_AVAILABILITY), so the
  // requester learns them as holders and may send its interest.
  for (const holder of [1, 2]) {
    mesh.seedContent(holder, manifest, data, undefined, true);
    mesh.input(holder, { type: 'timer-fired', nowMs: mesh.nowMs, wallClockMs: mesh.wallClockMs });
  }
  mesh.drive();
  assert.equal(mesh.nodes[0]!.core.gossipEngine!.peersHolding(manifest.contentId).length, 2);
  assert.equal(mesh.nodes[0]!.readsAnswered, 0);
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId },
  });
  mesh.runUntil(() => mesh.eventsOf(0, 'download:complete').length > 0, 120_000);
  assert.equal(mesh.eventsOf(0, 'download:failed').length, 0);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data, 'every delivered byte is the content');
  const stored = mesh.nodes[0]!.store.get(toHex(manifest.contentId))!;
  for (let i = 0; i < 12; i++)
    assert.deepEqual(stored.get(i), data.subarray(i * CHUNK, (i + 1) * CHUNK), `chunk ${i}`);
  const banned = mesh.eventsOf(0, 'peer:banned');
  assert.deepEqual(
    banned.map((e) => toHex(e.deviceId)),
    [toHex(mesh.nodes[2]!.deviceId)],
    'the liar, and only it, was caught by verification and banned',
  );
  // The liar served chunks (it was asked), and none of its bytes was kept.
  assert.ok(mesh.nodes[2]!.readsAnswered > 0, 'the corrupting stranger was asked for chunks');
});

test('unpublishing (content-available with published: false) takes effect at once: strangers get notFound, one that asked for it CHUNK_REMOVE, gossip says it is no longer held here, the pod is still served', () => {
  const data = testBytes(3 * CHUNK, 86);
  const manifest = manifestOf(data);
  const holderSelf: GossipSelf = { ...self('n1'), broadcast: true, addresses: ['n1'] };
  const mesh = new Mesh([
    probe,
    { podSecret: secret(13), gossip: { self: holderSelf } },
    gossiper(undefined, 'requester'),
    { podSecret: secret(13) }, // a pod member of the holder
  ]);
  mesh.connect(0, 1);
  mesh.connect(3, 1);
  dialStranger(mesh, 2, 1);
  mesh.seedContent(1, manifest, data, undefined, true);
  mesh.input(1, { type: 'timer-fired', nowMs: mesh.nowMs, wallClockMs: mesh.wallClockMs });
  mesh.drive();
  const holders = () => mesh.nodes[2]!.core.gossipEngine!.peersHolding(manifest.contentId).length;
  assert.equal(holders(), 1, 'published: announced by CONTENT_AVAILABILITY');
  const statusOf = (node: number, requestId: number): number | undefined => {
    for (const m of received(mesh, node))
      if (m.type === 'status' && m.requestId === requestId) return m.status;
    return undefined;
  };
  const ask = (node: number, requestId: number, chunkHash: Uint8Array): number | undefined => {
    mesh.input(node, {
      type: 'send-message',
      nowMs: mesh.nowMs,
      linkId: Mesh.linkId(1),
      message: { type: 'chunk-request', requestId, chunkHash, priority: 0 },
    });
    mesh.runUntil(() => statusOf(node, requestId) !== undefined, 10_000);
    return statusOf(node, requestId);
  };
  // Odd request IDs: the probe dialled (docs/protocol.md, request ID parity).
  assert.equal(ask(0, 1, manifest.chunkHashes[0]!), TransferStatus.ok, 'published: served');

  // The probe mentions the content (a download's interest): it is told the held ranges.
  mesh.input(0, {
    type: 'send-message',
    nowMs: mesh.nowMs,
    linkId: Mesh.linkId(1),
    message: { type: 'chunk-announce', contentId: manifest.contentId, ranges: [] },
  });
  mesh.drive();
  const toProbe = (type: string) => received(mesh, 0).filter((m) => m.type === type).length;
  assert.equal(toProbe('chunk-announce'), 1, 'the interest is answered');
  assert.equal(toProbe('chunk-remove'), 0);

  mesh.input(1, { type: 'content-available', nowMs: mesh.nowMs, manifest, published: false });
  mesh.input(1, { type: 'timer-fired', nowMs: mesh.nowMs, wallClockMs: mesh.wallClockMs });
  mesh.drive();
  assert.equal(toProbe('chunk-remove'), 1, 'the stranger that asked is told it is gone');
  assert.equal(ask(0, 3, manifest.chunkHashes[1]!), TransferStatus.notFound, 'a chunk: notFound');
  assert.equal(ask(0, 5, manifest.contentId), TransferStatus.notFound, 'the manifest: notFound');
  assert.equal(holders(), 0, 'gossip announced it no longer held here');
  // The content stays held: a pod member is still served it (its own links are pod links).
  mesh.input(3, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId },
  });
  mesh.runUntil(() => mesh.eventsOf(3, 'download:complete').length > 0, 60_000);
  assert.deepEqual(mesh.deliveredBytes(3, 1), data);
  // Published again: served again (the manifest: its chunks, which the pod member now holds
  // and announced, the seeding rule sends to that member).
  mesh.input(1, { type: 'content-available', nowMs: mesh.nowMs, manifest, published: true });
  mesh.drive();
  assert.equal(ask(0, 7, manifest.contentId), TransferStatus.ok, 'published again: served');
});
