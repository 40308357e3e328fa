/**
 * Content downloads between real Cores (mesh harness): byte-exact in-order delivery from one
 * and from several peers, manifests fetched by request, corrupt chunks rejected and their
 * sender banned, priorities across downloads, serving limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../src/bytes.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import { Mesh } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';

function startContent(
  mesh: Mesh,
  node: number,
  downloadId: number,
  data: Uint8Array,
  withManifest = true,
  priority?: number,
): void {
  const manifest = manifestOf(data);
  mesh.input(node, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId,
    source: withManifest
      ? { kind: 'content', contentId: manifest.contentId, manifest }
      : { kind: 'content', contentId: manifest.contentId },
    ...(priority === undefined ? {} : { priority }),
  });
}

function completed(mesh: Mesh, node: number, downloadId: number): boolean {
  return mesh.eventsOf(node, 'download:complete').some((e) => e.downloadId === downloadId);
}

test('content from one peer arrives byte-exact, in order, exactly once', () => {
  const data = testBytes(5 * CHUNK + 1234);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  startContent(mesh, 0, 1, data);
  mesh.runUntil(() => completed(mesh, 0, 1), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.equal(done?.totalBytes, data.length);
  // Verified chunk by chunk against the manifest: no second, whole-object SHA-256 pass.
  assert.equal(done?.sha256, undefined);
  // Every chunk was handed to the store, verified.
  assert.equal(mesh.nodes[0]!.store.get(toHex(manifestOf(data).contentId))?.size, 6);
  assert.equal(mesh.nodes[0]!.core.downloadMemoryBytes(1), 0);
});

test('content from three peers uses several of them and is byte-exact', () => {
  const data = testBytes(24 * CHUNK, 11);
  const mesh = new Mesh([{}, {}, {}, {}]);
  mesh.star();
  mesh.drive();
  for (const node of [1, 2, 3]) mesh.seedContent(node, manifestOf(data), data);
  startContent(mesh, 0, 7, data);
  mesh.runUntil(() => completed(mesh, 0, 7), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 7), data);
  const served = [1, 2, 3].filter((n) => mesh.nodes[n]!.readsAnswered > 0);
  assert.ok(served.length >= 2, `chunks came from ${served.length} peer(s)`);
});

test('the manifest is fetched from a peer and checked against the content ID', () => {
  const data = testBytes(3 * CHUNK + 10, 3);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  startContent(mesh, 0, 2, data, false);
  mesh.runUntil(() => completed(mesh, 0, 2), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 2), data);
  // The host learned the manifest once, before any chunk was stored.
  const node = mesh.nodes[0]!;
  const reported = mesh.eventsOf(0, 'download:manifest');
  assert.equal(reported.length, 1);
  assert.equal(reported[0]!.downloadId, 2);
  assert.deepEqual(reported[0]!.manifest.contentId, manifestOf(data).contentId);
  const firstStore = node.events.findIndex((e) => e.type === 'download:progress');
  assert.ok(node.events.indexOf(reported[0]!) < firstStore, 'manifest reported before progress');
});

test('a download started before any peer announces waits, then completes', () => {
  const data = testBytes(2 * CHUNK, 4);
  const mesh = new Mesh([{}, {}]);
  startContent(mesh, 0, 3, data, false);
  mesh.advance(30_000);
  assert.equal(completed(mesh, 0, 3), false);
  assert.equal(mesh.eventsOf(0, 'download:failed').length, 0);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  mesh.runUntil(() => completed(mesh, 0, 3), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 3), data);
});

test('corrupt chunks are rejected and reassigned; the liar is banned; the result is exact', () => {
  const data = testBytes(12 * CHUNK, 21);
  const mesh = new Mesh([{}, { corruptServing: true }, {}]);
  mesh.star();
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  mesh.seedContent(2, manifestOf(data), data);
  startContent(mesh, 0, 4, data);
  mesh.runUntil(() => completed(mesh, 0, 4), 120_000);
  assert.deepEqual(mesh.deliveredBytes(0, 4), data);
  const [banned] = mesh.eventsOf(0, 'peer:banned');
  assert.ok(banned, 'the liar was banned');
  assert.deepEqual(banned.deviceId, mesh.nodes[1]!.deviceId);
  const gone = mesh.eventsOf(0, 'peer:disconnect').find((e) => e.linkId === Mesh.linkId(1));
  assert.equal(gone?.reason, ReasonCode.banned);
  // The honest peer never lost its link.
  assert.equal(
    mesh.eventsOf(0, 'peer:disconnect').filter((e) => e.linkId === Mesh.linkId(2)).length,
    0,
  );
});

test('a lying manifest is refused: the peer is banned and the download keeps waiting', () => {
  const data = testBytes(2 * CHUNK, 8);
  const mesh = new Mesh([{}, { corruptServing: true }]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  startContent(mesh, 0, 5, data, false);
  mesh.advance(10_000);
  assert.equal(mesh.eventsOf(0, 'peer:banned').length, 1);
  assert.equal(completed(mesh, 0, 5), false);
  assert.equal(mesh.eventsOf(0, 'download:failed').length, 0);
});

test('a peer that leaves mid-download: its chunks go to the others', () => {
  const data = testBytes(16 * CHUNK, 13);
  const mesh = new Mesh([{}, {}, {}]);
  mesh.star();
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  mesh.seedContent(2, manifestOf(data), data);
  // Node 1 goes silent (its bytes are dropped), then the link breaks.
  mesh.mute(1, 0);
  startContent(mesh, 0, 6, data);
  mesh.advance(1_000);
  mesh.cut(0, 1);
  mesh.runUntil(() => completed(mesh, 0, 6), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 6), data);
});

test('a stalled peer is detected by the stall timeout and its chunks reassigned', () => {
  const data = testBytes(8 * CHUNK, 14);
  const mesh = new Mesh([{ stallFloorMs: 2_000 }, {}, {}]);
  mesh.star();
  mesh.drive();
  mesh.seedContent(1, manifestOf(data), data);
  mesh.seedContent(2, manifestOf(data), data);
  mesh.mute(1, 0);
  startContent(mesh, 0, 8, data);
  mesh.runUntil(() => completed(mesh, 0, 8), 30_000);
  assert.ok(completed(mesh, 0, 8), 'completed despite the stall');
  assert.ok(mesh.nowMs < 30_000);
  assert.deepEqual(mesh.deliveredBytes(0, 8), data);
});

test('priorities: the more urgent download gets the shared pipeline first', () => {
  const slow = testBytes(8 * CHUNK, 31);
  const urgent = testBytes(8 * CHUNK, 32);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifestOf(slow), slow);
  mesh.seedContent(1, manifestOf(urgent), urgent);
  startContent(mesh, 0, 10, slow, true, 200);
  startContent(mesh, 0, 11, urgent, true, 1);
  mesh.runUntil(() => completed(mesh, 0, 10) && completed(mesh, 0, 11), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 10), slow);
  assert.deepEqual(mesh.deliveredBytes(0, 11), urgent);
  const events = mesh.nodes[0]!.events;
  const urgentDone = events.findIndex((e) => e.type === 'download:complete' && e.downloadId === 11);
  const slowDone = events.findIndex((e) => e.type === 'download:complete' && e.downloadId === 10);
  assert.ok(urgentDone < slowDone, 'the urgent download finished first');
});

test('serving: a request with the wrong parity closes the link with protocolError', () => {
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  mesh.drive();
  // Node 0 initiated, so it must use odd IDs; 2 is the responder's parity.
  mesh.input(0, {
    type: 'send-message',
    nowMs: 0,
    linkId: Mesh.linkId(1),
    message: { type: 'chunk-request', requestId: 2, chunkHash: new Uint8Array(32), priority: 0 },
  });
  mesh.drive();
  const gone = mesh.eventsOf(1, 'peer:disconnect')[0];
  assert.equal(gone?.reason, ReasonCode.protocolError);
});

test('serving: an unknown chunk is answered notFound, and swarming peers serve what they verified', () => {
  const data = testBytes(6 * CHUNK, 41);
  // 0 <- 1 <- 2: node 2 seeds, node 1 downloads and then serves node 0.
  const mesh = new Mesh([{}, {}, {}]);
  mesh.connect(0, 1);
  mesh.connect(1, 2);
  mesh.drive();
  mesh.seedContent(2, manifestOf(data), data);
  startContent(mesh, 1, 1, data);
  mesh.runUntil(() => completed(mesh, 1, 1), 60_000);
  startContent(mesh, 0, 1, data, false);
  mesh.runUntil(() => completed(mesh, 0, 1), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
});
