/**
 * A content download's stall timeout (`DownloadSource.stallTimeoutMs`) between real Cores (mesh
 * harness, virtual clock): it fails 'unavailable' (fallback none) once nothing was verified for
 * that long while a needed chunk is held by no connected peer, naming counts and bytes; it keeps
 * waiting while every missing chunk has a holder, however stalled; before the manifest, it
 * fails only when no peer announced the content. Random partial holders against a model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import type { Manifest } from '../src/content/manifest.js';
import { formatSize } from '../src/transfer/unavailable-watch.js';
import { Mesh } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';

function start(
  mesh: Mesh,
  node: number,
  manifest: Manifest,
  stallTimeoutMs: number,
  withManifest = true,
): void {
  mesh.input(node, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: withManifest
      ? { kind: 'content', contentId: manifest.contentId, manifest, stallTimeoutMs }
      : { kind: 'content', contentId: manifest.contentId, stallTimeoutMs },
  });
}

function ended(mesh: Mesh, node: number): boolean {
  return (
    mesh.eventsOf(node, 'download:complete').length > 0 ||
    mesh.eventsOf(node, 'download:failed').length > 0
  );
}

test('the only holder leaves mid-download: unavailable, naming what is missing; not while it stayed', () => {
  const data = testBytes(8 * CHUNK, 61);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}, {}]);
  mesh.star();
  mesh.drive();
  // Node 1 holds the first half; node 2 holds everything but never answers.
  mesh.seedContent(1, manifest, data, [0, 1, 2, 3]);
  mesh.seedContent(2, manifest, data);
  mesh.drive();
  mesh.mute(2, 0);
  start(mesh, 0, manifest, 10_000);
  // Long past the timeout (within the 45 s a silent link lives): the second half still has a
  // holder, so the download waits.
  mesh.advance(40_000);
  assert.equal(ended(mesh, 0), false);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data.subarray(0, 4 * CHUNK));
  mesh.cut(0, 2);
  mesh.drive();
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.ok(failed, 'the download failed once the holder left');
  assert.equal(failed.reason, 'unavailable');
  assert.deepEqual(failed.fallback, { action: 'none' });
  assert.match(failed.detail, /^4 of 8 chunks \(256\.0 KiB\) are held by no connected pod member;/);
  assert.equal(mesh.nodes[0]!.core.downloadMemoryBytes(1), 0);
});

test('no newly verified byte is not enough: a download waits while the link of its silent holder lives', () => {
  const data = testBytes(4 * CHUNK, 62);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.drive();
  mesh.mute(1, 0);
  start(mesh, 0, manifest, 5_000);
  mesh.advance(40_000);
  assert.equal(ended(mesh, 0), false);
  // Once the silent link times out, nobody holds anything.
  mesh.advance(10_000);
  assert.match(mesh.eventsOf(0, 'download:failed')[0]?.detail ?? '', /^4 of 4 chunks/);
});

test('before the manifest: unavailable only when no connected peer announced the content', () => {
  const data = testBytes(2 * CHUNK, 63);
  const manifest = manifestOf(data);
  const alone = new Mesh([{}]);
  start(alone, 0, manifest, 5_000, false);
  alone.advance(4_000);
  assert.equal(ended(alone, 0), false);
  alone.advance(2_000);
  const [failed] = alone.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'unavailable');
  assert.equal(
    failed?.detail,
    `no connected pod member holds content ${toHex(manifest.contentId).slice(0, 12)}…; ` +
      'connect a device that has it and fetch again',
  );
  // A peer that announced the content but never answers keeps the download waiting.
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.drive();
  mesh.mute(1, 0);
  start(mesh, 0, manifest, 5_000, false);
  mesh.advance(40_000);
  assert.equal(ended(mesh, 0), false);
});

test('property: with one partial holder, the download completes or names exactly the missing chunks', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }).chain((count) =>
        fc.record({
          count: fc.constant(count),
          held: fc.subarray([...Array(count).keys()]),
          tail: fc.integer({ min: 1, max: CHUNK }),
        }),
      ),
      ({ count, held, tail }) => {
        const data = testBytes((count - 1) * CHUNK + tail, count * 7 + tail);
        const manifest = manifestOf(data);
        const mesh = new Mesh([{}, {}]);
        mesh.connect(0, 1);
        mesh.drive();
        mesh.seedContent(1, manifest, data, held);
        start(mesh, 0, manifest, 3_000);
        mesh.runUntil(() => ended(mesh, 0), 60_000);
        const missing = [...Array(count).keys()].filter((i) => !held.includes(i));
        const prefix = missing.length === 0 ? count : missing[0]!;
        assert.deepEqual(
          mesh.deliveredBytes(0, 1),
          data.subarray(0, Math.min(data.length, prefix * CHUNK)),
        );
        if (missing.length === 0) {
          assert.equal(mesh.eventsOf(0, 'download:complete').length, 1);
          return;
        }
        const size = (i: number): number => Math.min(data.length, (i + 1) * CHUNK) - i * CHUNK;
        const bytes = missing.reduce((sum, i) => sum + size(i), 0);
        const [failed] = mesh.eventsOf(0, 'download:failed');
        assert.equal(failed?.reason, 'unavailable');
        const noun = count === 1 ? 'chunk' : 'chunks';
        const verb = missing.length === 1 ? 'is' : 'are';
        assert.ok(
          failed.detail.startsWith(
            `${missing.length} of ${count} ${noun} (${formatSize(bytes)}) ${verb} held by no connected pod member;`,
          ),
          failed.detail,
        );
      },
    ),
    { numRuns: 30 },
  );
});
