/**
 * Content downloads and the chunks this device already holds, between real Cores (mesh
 * harness): held chunks are read back and verified, never requested from peers (counted on the
 * wire); a read-back that is lost or corrupt is fetched again; a re-run download resumes; a
 * `content-available` during a download is used; a `content-removed` makes chunks fetchable
 * again at once; a finished download leaves this device seeding every chunk, stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../src/bytes.js';
import type { Manifest } from '../src/content/manifest.js';
import { Mesh } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';
import { requestedHashes, tapSent } from './support/sent-messages.js';

function start(mesh: Mesh, node: number, downloadId: number, manifest: Manifest): void {
  mesh.input(node, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId,
    source: { kind: 'content', contentId: manifest.contentId, manifest },
  });
}

function completed(mesh: Mesh, node: number, downloadId: number): boolean {
  return mesh.eventsOf(node, 'download:complete').some((e) => e.downloadId === downloadId);
}

/** The hashes of chunks `indices`, hex, sorted. */
function hashesOf(manifest: Manifest, indices: readonly number[]): string[] {
  return indices.map((i) => toHex(manifest.chunkHashes[i]!)).sort();
}

/** The last progress event's per-source shares of a download. */
function finalShares(mesh: Mesh, node: number, downloadId: number): Record<string, number> {
  const progress = mesh
    .eventsOf(node, 'download:progress')
    .filter((e) => e.downloadId === downloadId);
  return progress[progress.length - 1]!.bySource;
}

test('held chunks are read back, not requested; a finished download seeds every chunk', () => {
  const data = testBytes(8 * CHUNK, 51);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.seedContent(0, manifest, data, [0, 2, 3, 6]);
  start(mesh, 0, 1, manifest);
  mesh.runUntil(() => completed(mesh, 0, 1), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  assert.deepEqual(requestedHashes(sent).sort(), hashesOf(manifest, [1, 4, 5, 7]));
  assert.deepEqual(finalShares(mesh, 0, 1), {
    self: 4 * CHUNK,
    [toHex(mesh.nodes[1]!.deviceId)]: 4 * CHUNK,
  });
  // Every chunk fetched was stored, verified.
  const stored = mesh.nodes[0]!.store.get(toHex(manifest.contentId))!;
  for (let i = 0; i < 8; i++)
    assert.deepEqual(stored.get(i), data.subarray(i * CHUNK, (i + 1) * CHUNK));
  // The only seed leaves; a newcomer gets everything from this device.
  mesh.cut(0, 1);
  mesh.connect(2, 0);
  mesh.drive();
  mesh.input(2, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId },
  });
  mesh.runUntil(() => completed(mesh, 2, 1), 60_000);
  assert.deepEqual(mesh.deliveredBytes(2, 1), data);
});

test('a held chunk whose read-back is lost or corrupt is fetched from a peer', () => {
  const data = testBytes(4 * CHUNK, 52);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.seedContent(0, manifest, data);
  // The store claims every chunk, but lost chunk 2 and holds a damaged chunk 1.
  const store = mesh.nodes[0]!.store.get(toHex(manifest.contentId))!;
  store.delete(2);
  store.get(1)![100] = store.get(1)![100]! ^ 1;
  start(mesh, 0, 1, manifest);
  mesh.runUntil(() => completed(mesh, 0, 1), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  assert.deepEqual(requestedHashes(sent).sort(), hashesOf(manifest, [1, 2]));
  assert.equal(finalShares(mesh, 0, 1).self, 2 * CHUNK);
});

test('a re-run download resumes: only the chunks the first run did not store are requested', () => {
  const data = testBytes(8 * CHUNK, 53);
  const manifest = manifestOf(data);
  const key = toHex(manifest.contentId);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  start(mesh, 0, 1, manifest);
  // Step until some chunks are stored, then stop the download.
  for (let i = 0; i < 10_000 && (mesh.nodes[0]!.store.get(key)?.size ?? 0) < 3; i++) mesh.step();
  mesh.input(0, { type: 'cancel-download', nowMs: mesh.nowMs, downloadId: 1 });
  mesh.drive();
  const held = [...mesh.nodes[0]!.store.get(key)!.keys()];
  assert.ok(held.length >= 3 && held.length < 8, `${held.length} chunks stored`);
  sent.length = 0;
  start(mesh, 0, 2, manifest);
  mesh.runUntil(() => completed(mesh, 0, 2), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 2), data);
  const missing = [...Array(8).keys()].filter((i) => !held.includes(i));
  assert.deepEqual(requestedHashes(sent).sort(), hashesOf(manifest, missing));
  assert.equal(finalShares(mesh, 0, 2).self, held.length * CHUNK);
});

test('chunks that become available during a download are read back; their fetches are cancelled', () => {
  const data = testBytes(6 * CHUNK, 54);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.drive();
  // The peer announced the chunks but never answers: its requests stall.
  mesh.mute(1, 0);
  start(mesh, 0, 1, manifest);
  mesh.advance(1_000);
  assert.equal(completed(mesh, 0, 1), false);
  assert.ok(requestedHashes(sent).length > 0, 'chunks were in flight from the peer');
  // The host copies the content in (another download, `peapod share`).
  mesh.seedContent(0, manifest, data);
  mesh.runUntil(() => completed(mesh, 0, 1), 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  assert.deepEqual(finalShares(mesh, 0, 1), { self: data.length });
  // Every request still open at the peer was cancelled (none was left to stall).
  const opened = sent.filter((m) => m.type === 'chunk-request').map((m) => m.requestId);
  const cancelled = sent.filter((m) => m.type === 'cancel').map((m) => m.requestId);
  assert.deepEqual([...cancelled].sort(), [...opened].sort());
});

test('content-removed during a download: the chunks are fetched from a peer at once', () => {
  const data = testBytes(8 * CHUNK, 55);
  const manifest = manifestOf(data);
  const key = toHex(manifest.contentId);
  // A window of two chunks, acknowledged by hand: chunks past it wait to be read back.
  const mesh = new Mesh([{ autoAck: false, reorderWindowBytes: 2 * CHUNK }, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.seedContent(0, manifest, data);
  start(mesh, 0, 1, manifest);
  mesh.drive();
  assert.deepEqual(requestedHashes(sent), []);
  // The host evicts chunks 4 and 5 before the delivery point reaches them.
  mesh.nodes[0]!.store.get(key)!.delete(4);
  mesh.nodes[0]!.store.get(key)!.delete(5);
  mesh.input(0, {
    type: 'content-removed',
    nowMs: mesh.nowMs,
    contentId: manifest.contentId,
    chunkIndices: [4, 5],
  });
  mesh.drive();
  // Requested now, while delivery still waits on the host at chunk 2.
  assert.equal(mesh.deliveredBytes(0, 1).length, 2 * CHUNK);
  assert.deepEqual(requestedHashes(sent).sort(), hashesOf(manifest, [4, 5]));
  for (let i = 0; i < 100 && !completed(mesh, 0, 1); i++) {
    mesh.acknowledgeDelivered(0, 1);
    mesh.drive();
  }
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  assert.deepEqual(requestedHashes(sent).sort(), hashesOf(manifest, [4, 5]));
});

test('a selection with some chunks held: only the selected chunks not held are requested', () => {
  const data = testBytes(10 * CHUNK + 99, 56);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.seedContent(0, manifest, data, [0, 3, 4, 10]);
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: {
      kind: 'content',
      contentId: manifest.contentId,
      manifest,
      chunks: [
        { start: 2, end: 5 },
        { start: 9, end: 11 },
      ],
    },
  });
  mesh.runUntil(() => completed(mesh, 0, 1), 60_000);
  assert.deepEqual(requestedHashes(sent).sort(), hashesOf(manifest, [2, 9]));
  assert.deepEqual(finalShares(mesh, 0, 1), {
    self: 2 * CHUNK + 99,
    [toHex(mesh.nodes[1]!.deviceId)]: 2 * CHUNK,
  });
  const pieces = mesh.nodes[0]!.delivered.get(1)!;
  assert.deepEqual(
    pieces.map((p) => p.offset),
    [2, 3, 4, 9, 10].map((i) => i * CHUNK),
  );
  for (const piece of pieces) {
    assert.deepEqual(piece.bytes, data.subarray(piece.offset, piece.offset + piece.bytes.length));
  }
});
