/**
 * Content serving faults and removals between real Cores (mesh harness): a Core with
 * `testFaults.corruptServedChunks` serves every chunk with a byte flipped after its own check,
 * and the requester's verification bans it; `content-removed` goes out as CHUNK_REMOVE range
 * groups (counted on the wire) and the peer's view of what this device holds drops with it.
 * Random removals against a model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import type { Manifest } from '../src/content/manifest.js';
import { ReasonCode } from '../src/wire/reason-codes.js';
import type { IndexRange, WireMessage } from '../src/wire/messages.js';
import { Mesh } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';
import { tapSent } from './support/sent-messages.js';

function start(mesh: Mesh, node: number, manifest: Manifest, stallTimeoutMs?: number): void {
  mesh.input(node, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: {
      kind: 'content',
      contentId: manifest.contentId,
      manifest,
      ...(stallTimeoutMs === undefined ? {} : { stallTimeoutMs }),
    },
  });
}

function removes(sent: readonly WireMessage[]): IndexRange[][] {
  return sent.flatMap((m) => (m.type === 'chunk-remove' ? [m.ranges.map((r) => ({ ...r }))] : []));
}

test('a Core that corrupts what it serves is banned by the requester; the download is exact', () => {
  const data = testBytes(12 * CHUNK, 71);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, { testFaults: { corruptServedChunks: true } }, {}]);
  mesh.star();
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.seedContent(2, manifest, data);
  start(mesh, 0, manifest);
  mesh.runUntil(() => mesh.eventsOf(0, 'download:complete').length > 0, 120_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data);
  const banned = mesh.eventsOf(0, 'peer:banned');
  assert.equal(banned.length, 1);
  assert.deepEqual(banned[0]!.deviceId, mesh.nodes[1]!.deviceId);
  assert.match(banned[0]!.detail, /verification/);
  const gone = mesh.eventsOf(0, 'peer:disconnect').find((e) => e.linkId === Mesh.linkId(1));
  assert.equal(gone?.reason, ReasonCode.banned);
  // Its own copy is intact: the fault is in serving only.
  const stored = mesh.nodes[1]!.store.get(toHex(manifest.contentId))!;
  assert.deepEqual(stored.get(0), data.subarray(0, CHUNK));
});

test('the only peer corrupts: banned, and with a stall timeout the download reports it', () => {
  const data = testBytes(4 * CHUNK, 72);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, { testFaults: { corruptServedChunks: true } }]);
  mesh.connect(0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  start(mesh, 0, manifest, 5_000);
  mesh.runUntil(() => mesh.eventsOf(0, 'download:failed').length > 0, 60_000);
  assert.equal(mesh.eventsOf(0, 'peer:banned').length, 1);
  assert.equal(mesh.nodes[0]!.delivered.get(1), undefined);
  const [failed] = mesh.eventsOf(0, 'download:failed');
  assert.equal(failed?.reason, 'unavailable');
  assert.match(failed?.detail ?? '', /^4 of 4 chunks \(256\.0 KiB\)/);
});

test('content-removed sends CHUNK_REMOVE as ranges; the peer sees those chunks gone', () => {
  const data = testBytes(16 * CHUNK, 73);
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 1, 0);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.drive();
  mesh.input(1, {
    type: 'content-removed',
    nowMs: mesh.nowMs,
    contentId: manifest.contentId,
    // Unsorted, a repeat, and an index past the content: only what was held counts.
    chunkIndices: [8, 2, 1, 3, 7, 15, 2, 99],
  });
  mesh.drive();
  assert.deepEqual(removes(sent), [
    [
      { start: 1, end: 4 },
      { start: 7, end: 9 },
      { start: 15, end: 16 },
    ],
  ]);
  // The requester fetches the other ten, then reports the six nobody holds.
  start(mesh, 0, manifest, 2_000);
  mesh.runUntil(() => mesh.eventsOf(0, 'download:failed').length > 0, 60_000);
  assert.deepEqual(mesh.deliveredBytes(0, 1), data.subarray(0, CHUNK));
  assert.match(
    mesh.eventsOf(0, 'download:failed')[0]!.detail,
    /^6 of 16 chunks \(384\.0 KiB\) are held by no connected pod member/,
  );
  // Removing the whole content: the rest goes in one message too.
  sent.length = 0;
  mesh.input(1, { type: 'content-removed', nowMs: mesh.nowMs, contentId: manifest.contentId });
  mesh.drive();
  assert.deepEqual(removes(sent), [
    [
      { start: 0, end: 1 },
      { start: 4, end: 7 },
      { start: 9, end: 15 },
    ],
  ]);
});

test('property: CHUNK_REMOVE covers exactly the held chunks removed, merged, in one message', () => {
  const count = 24;
  const data = testBytes(count * CHUNK, 74);
  const manifest = manifestOf(data);
  const indexArb = fc.integer({ min: -2, max: count + 2 });
  fc.assert(
    fc.property(
      fc.subarray([...Array(count).keys()]),
      fc.array(indexArb, { maxLength: 40 }),
      (held, removed) => {
        const mesh = new Mesh([{}, {}]);
        mesh.connect(0, 1);
        const sent = tapSent(mesh, 1, 0);
        mesh.drive();
        mesh.seedContent(1, manifest, data, held);
        mesh.drive();
        mesh.input(1, {
          type: 'content-removed',
          nowMs: mesh.nowMs,
          contentId: manifest.contentId,
          chunkIndices: removed,
        });
        mesh.drive();
        const gone = [...new Set(removed.filter((i) => held.includes(i)))].sort((a, b) => a - b);
        const groups = removes(sent);
        if (gone.length === 0) {
          assert.deepEqual(groups, []);
          return;
        }
        assert.equal(groups.length, 1);
        const ranges = groups[0]!;
        const covered = ranges.flatMap(({ start, end }) =>
          Array.from({ length: end - start }, (_, i) => start + i),
        );
        assert.deepEqual(covered, gone);
        for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]!.start > ranges[i - 1]!.end);
      },
    ),
    { numRuns: 60 },
  );
});
